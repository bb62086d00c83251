// SPDX-License-Identifier: LGPL-2.1-or-later
#include <errno.h>
#include <string.h>

#include "check-main.h"
#include "parse-util.h"

START_TEST(test_parse_size)
{
	uint64_t v;

	ck_assert_int_eq(parse_size("4096", &v), 0);
	ck_assert_uint_eq(v, 4096);
	ck_assert_int_eq(parse_size("64K", &v), 0);
	ck_assert_uint_eq(v, 65536);
	ck_assert_int_eq(parse_size("64 KiB", &v), 0);
	ck_assert_uint_eq(v, 65536);
	ck_assert_int_eq(parse_size("1.5G", &v), 0);
	ck_assert_uint_eq(v, UINT64_C(3) << 29);
	ck_assert_int_eq(parse_size("2t", &v), 0);
	ck_assert_uint_eq(v, UINT64_C(2) << 40);
	ck_assert_int_eq(parse_size("8E", &v), 0);
	ck_assert_uint_eq(v, UINT64_C(1) << 63);
	ck_assert_int_eq(parse_size("9E", &v), -ERANGE);
	ck_assert_int_eq(parse_size("99999999999999999999", &v), -ERANGE);
	ck_assert_int_eq(parse_size("", &v), -EINVAL);
	ck_assert_int_eq(parse_size("-1", &v), -EINVAL);
	ck_assert_int_eq(parse_size("1.", &v), -EINVAL);
	ck_assert_int_eq(parse_size("12Q", &v), -EINVAL);
	ck_assert_int_eq(parse_size("1G1", &v), -EINVAL);
}
END_TEST

START_TEST(test_parse_duration)
{
	uint64_t v;

	ck_assert_int_eq(parse_duration("100ms", &v), 0);
	ck_assert_uint_eq(v, 100000);
	ck_assert_int_eq(parse_duration("100", &v), 0); /* bare number: milliseconds */
	ck_assert_uint_eq(v, 100000);
	ck_assert_int_eq(parse_duration("2.5s", &v), 0);
	ck_assert_uint_eq(v, 2500000);
	ck_assert_int_eq(parse_duration("3min", &v), 0);
	ck_assert_uint_eq(v, 180000000);
	ck_assert_int_eq(parse_duration("250us", &v), 0);
	ck_assert_uint_eq(v, 250);
	ck_assert_int_eq(parse_duration("1h", &v), 0);
	ck_assert_uint_eq(v, UINT64_C(3600000000));
	ck_assert_int_eq(parse_duration("1 fortnight", &v), -EINVAL);
}
END_TEST

START_TEST(test_parse_misc)
{
	uint64_t u;
	bool b;
	mode_t m;

	ck_assert_int_eq(parse_uint_range("17", 1, 20, &u), 0);
	ck_assert_uint_eq(u, 17);
	ck_assert_int_eq(parse_uint_range("21", 1, 20, &u), -ERANGE);
	ck_assert_int_eq(parse_uint_range("0", 1, 20, &u), -ERANGE);
	ck_assert_int_eq(parse_uint_range("+3", 1, 20, &u), -EINVAL);
	ck_assert_int_eq(parse_uint_range("3x", 1, 20, &u), -EINVAL);
	ck_assert_int_eq(parse_boolean("Yes", &b), 0);
	ck_assert(b);
	ck_assert_int_eq(parse_boolean("off", &b), 0);
	ck_assert(!b);
	ck_assert_int_eq(parse_boolean("maybe", &b), -EINVAL);
	ck_assert_int_eq(parse_mode("0660", &m), 0);
	ck_assert_int_eq(m, 0660);
	ck_assert_int_eq(parse_mode("0999", &m), -EINVAL);
	ck_assert_int_eq(parse_mode("17777", &m), -ERANGE);
	{
		double r;

		ck_assert_int_eq(parse_ratio("1.5", &r), 0);
		ck_assert(r == 1.5);
		ck_assert_int_eq(parse_ratio("65536", &r), 0);
		ck_assert_int_eq(parse_ratio("65537", &r), -ERANGE);
		ck_assert_int_eq(parse_ratio("0.99", &r), -ERANGE);
		ck_assert_int_eq(parse_ratio("nan", &r), -EINVAL);
		ck_assert_int_eq(parse_ratio("inf", &r), -EINVAL);
		ck_assert_int_eq(parse_ratio("-2", &r), -EINVAL);
		ck_assert_int_eq(parse_ratio("1e3", &r), -EINVAL);
		ck_assert_int_eq(parse_ratio("1..2", &r), -ERANGE);
		ck_assert(!ratio_valid(0.0 / 0.0) && !ratio_valid(1.0 / 0.0) && ratio_valid(1.0));
	}
}
END_TEST

START_TEST(test_format)
{
	char buf[64];

	ck_assert_str_eq(format_bytes(buf, sizeof(buf), 512), "512 B");
	ck_assert_str_eq(format_bytes(buf, sizeof(buf), 64 << 20), "64 MiB");
	ck_assert_str_eq(format_bytes(buf, sizeof(buf), UINT64_C(3) << 29), "1.5 GiB");
	ck_assert_str_eq(format_duration(buf, sizeof(buf), 999), "999us");
	ck_assert_str_eq(format_duration(buf, sizeof(buf), 100000), "100ms");
	ck_assert_str_eq(format_duration(buf, sizeof(buf), 2500000), "2.500s");
	ck_assert_str_eq(format_duration(buf, sizeof(buf), 125 * UINT64_C(1000000)), "2min 5s");
	ck_assert_str_eq(format_duration(buf, sizeof(buf), 3 * UINT64_C(86400000000)), "3d 0h");
}
END_TEST

START_TEST(test_utf8_and_sanitize)
{
	char buf[8];

	ck_assert(utf8_valid("plain"));
	ck_assert(utf8_valid("qemu:///syst\xc3\xa9m"));
	ck_assert(utf8_valid("\xf0\x9f\x98\x80"));
	ck_assert(!utf8_valid("syst\xe9m"));         /* Latin-1 */
	ck_assert(!utf8_valid("\xc0\xaf"));          /* overlong */
	ck_assert(!utf8_valid("\xed\xa0\x80"));      /* surrogate */
	ck_assert(!utf8_valid("\xc3"));              /* cut short */
	ck_assert_str_eq(sanitize_text(buf, sizeof(buf), "ab\xc3\xa9\ncd", 64), "ab???cd");
	ck_assert_str_eq(sanitize_text(buf, sizeof(buf), "abcdefghij", 64), "abcdefg");
	ck_assert_str_eq(sanitize_text(buf, sizeof(buf), "abcdefghij", 3), "abc");
}
END_TEST

static Suite *parse_util_suite(void)
{
	Suite *s = suite_create("parse-util");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_parse_size);
	tcase_add_test(tc, test_parse_duration);
	tcase_add_test(tc, test_parse_misc);
	tcase_add_test(tc, test_format);
	tcase_add_test(tc, test_utf8_and_sanitize);
	suite_add_tcase(s, tc);
	return s;
}

VPM_CHECK_MAIN(parse_util_suite)
