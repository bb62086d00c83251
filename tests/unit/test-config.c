// SPDX-License-Identifier: LGPL-2.1-or-later
#include "check-main.h"
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "parse-util.h"

/* Parse text; expect failure whose messages contain every needle (NULL-terminated). */
static void expect_errors(const char *text, const char *const *needles)
{
	struct vpmd_config *c = NULL;
	char *errors = NULL;
	int r = config_load_string(text, "test.conf", &c, &errors);

	ck_assert_int_eq(r, -EINVAL);
	ck_assert_ptr_null(c);
	ck_assert_ptr_nonnull(errors);
	for (; *needles; needles++)
		ck_assert_msg(strstr(errors, *needles), "'%s' not in errors:\n%s", *needles, errors);
	free(errors);
}

#define EXPECT_ERRORS(text, ...)                                                                   \
	do {                                                                                       \
		static const char *const _n[] = { __VA_ARGS__, NULL };                             \
		expect_errors(text, _n);                                                           \
	} while (0)

static struct vpmd_config *expect_ok(const char *text)
{
	struct vpmd_config *c = NULL;
	char *errors = NULL;
	int r = config_load_string(text, "test.conf", &c, &errors);

	ck_assert_msg(r == 0, "config failed: %s", errors ? errors : "?");
	ck_assert_ptr_null(errors);
	return c;
}

START_TEST(test_defaults)
{
	struct vpmd_config *c = expect_ok("");

	ck_assert_str_eq(c->socket_path, "/run/vpmd/vpmd.sock");
	ck_assert_str_eq(c->state_dir, "/var/lib/vpmd");
	ck_assert_str_eq(c->socket_group, "vpm");
	ck_assert_int_eq(c->socket_mode, 0660);
	ck_assert_int_eq(c->backend, BACKEND_SIM);
	ck_assert_str_eq(c->libvirt_uri, "qemu:///system");
	ck_assert_uint_eq(c->dram_budget, UINT64_C(1) << 30);
	ck_assert_uint_eq(c->epoch_interval_usec, 100 * USEC_PER_MSEC);
	ck_assert_uint_eq(c->max_clients, 64);
	ck_assert(c->default_ratio == 1.0);
	ck_assert_uint_eq(c->migration_rate, UINT64_C(1) << 30);
	ck_assert_int_eq(c->hook_on_vpmd_down, HOOK_ON_VPMD_DOWN_POLICY);
	ck_assert_uint_eq(c->n_pools, 0);
	config_free(c);
}
END_TEST

START_TEST(test_full_file)
{
	struct vpmd_config *c = expect_ok("# comment\n"
					  "; another\n"
					  "[daemon]\n"
					  "socket = /tmp/x.sock\n"
					  "socket_mode = 0600\n"
					  "socket_group = wheel\n"
					  "state_dir = /tmp/state\n"
					  "backend = kvm\n"
					  "libvirt_uri = test:///default\n"
					  "dram_budget = 1.5G\n"
					  "epoch_interval = 250ms ; inline comment\n"
					  "max_clients = 8\n"
					  "client_idle_timeout = 2min\n"
					  "max_request_size = 128K\n"
					  "log_level = debug\n"
					  "\n"
					  "[pool fast-0]\n"
					  "path = /dev/dax0.0\n"
					  "[pool slow.1]\n"
					  "path = /tmp/pool\n"
					  "kind = emulated\n"
					  "size = 64M\n"
					  "[hook]\n"
					  "on_vpmd_down = pass\n");
	const struct pool_config *p;

	ck_assert_str_eq(c->socket_path, "/tmp/x.sock");
	ck_assert_int_eq(c->socket_mode, 0600);
	ck_assert_str_eq(c->socket_group, "wheel");
	ck_assert_int_eq(c->backend, BACKEND_KVM);
	ck_assert_str_eq(c->libvirt_uri, "test:///default");
	ck_assert_uint_eq(c->dram_budget, UINT64_C(3) << 29);
	ck_assert_uint_eq(c->epoch_interval_usec, 250 * USEC_PER_MSEC);
	ck_assert_uint_eq(c->max_clients, 8);
	ck_assert_uint_eq(c->client_idle_timeout_usec, 120 * USEC_PER_SEC);
	ck_assert_uint_eq(c->max_request_size, 128 * 1024);
	ck_assert_int_eq(c->log_level, 7);
	ck_assert_uint_eq(c->n_pools, 2);
	p = config_find_pool(c, "fast-0");
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(p->path, "/dev/dax0.0");
	ck_assert_int_eq(p->kind, POOL_KIND_AUTO);
	ck_assert_uint_eq(p->size, 0);
	ck_assert_uint_eq(p->line, 17);
	p = config_find_pool(c, "slow.1");
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(p->kind, POOL_KIND_EMULATED);
	ck_assert_uint_eq(p->size, 64 << 20);
	ck_assert_ptr_null(config_find_pool(c, "nope"));
	ck_assert_int_eq(c->hook_on_vpmd_down, HOOK_ON_VPMD_DOWN_PASS);
	config_free(c);
}
END_TEST

START_TEST(test_errors_name_file_line_key)
{
	EXPECT_ERRORS("[daemon]\nsocket = /a\nbogus = 1\n", "test.conf:3: key 'bogus'",
		      "unknown key");
	EXPECT_ERRORS("[daemon]\nmax_clients = lots\n", "test.conf:2: key 'max_clients'",
		      "'lots' is not a number");
	EXPECT_ERRORS("[daemon]\nepoch_interval = 5h\n", "test.conf:2: key 'epoch_interval'",
		      "out of range");
	EXPECT_ERRORS("[daemon]\ndram_budget = 12Q\n", "test.conf:2: key 'dram_budget'",
		      "not a size");
	EXPECT_ERRORS("[daemon]\nbackend = xen\n", "key 'backend'", "unknown backend 'xen'");
	EXPECT_ERRORS("[daemon]\nsocket_mode = rw\n", "key 'socket_mode'");
	EXPECT_ERRORS("[daemon]\nstate_dir = relative/dir\n", "key 'state_dir'",
		      "not an absolute path");
	EXPECT_ERRORS("[daemon]\nlog_level = chatty\n", "key 'log_level'");
	EXPECT_ERRORS("[daemon]\ndefault_ratio = 0.5\n", "key 'default_ratio'", "not a ratio");
	EXPECT_ERRORS("[daemon]\ndefault_ratio = nan\n", "key 'default_ratio'", "not a ratio");
	EXPECT_ERRORS("[daemon]\nmigration_rate = 4K\n", "key 'migration_rate'", "out of range");
	EXPECT_ERRORS("[daemon]\ncopy_threads = 17\n", "key 'copy_threads'", "between 0");
	EXPECT_ERRORS("[daemon]\ncopy_threads = two\n", "key 'copy_threads'", "between 0");
	EXPECT_ERRORS("[daemon]\nmax_request_size = 16M\n", "key 'max_request_size'",
		      "out of range");
	EXPECT_ERRORS("[daemon]\nlibvirt_uri = qemu:///syst\xe9m\n", "key 'libvirt_uri'",
		      "not valid UTF-8");
	EXPECT_ERRORS("[hook]\non_vpmd_down = maybe\n", "test.conf:2: key 'on_vpmd_down'",
		      "unknown value 'maybe'; choose policy, fail or pass");
	EXPECT_ERRORS("[hook]\non_vpmd_down = fail\nsocket = /a\n", "test.conf:3: key 'socket'",
		      "unknown key");
}
END_TEST

START_TEST(test_structure_errors)
{
	EXPECT_ERRORS("socket = /a\n", "test.conf:1: key 'socket'", "outside any section");
	EXPECT_ERRORS("[daemon]\n[mystery]\nx = 1\n", "test.conf:2:", "unknown section [mystery]");
	EXPECT_ERRORS("[daemon]\nsocket = /a\nsocket = /b\n", "test.conf:3: key 'socket'",
		      "set twice");
	EXPECT_ERRORS("[pool a]\npath = /x\n[pool a]\npath = /y\n", "test.conf:3:",
		      "defined twice");
	EXPECT_ERRORS("[pool bad/name]\npath = /x\n", "pool name 'bad/name' is invalid");
	EXPECT_ERRORS("[pool empty]\n", "test.conf:1:", "pool 'empty' has no path");
	EXPECT_ERRORS("[daemon]\nthis line has no equals sign\n", "test.conf:2:", "syntax error");
	EXPECT_ERRORS("[daemon]\nsocket =\n", "key 'socket'", "empty value");
	EXPECT_ERRORS("[pool a]\npath = /x\nkind = nvme\n", "key 'kind'", "unknown pool kind");
	EXPECT_ERRORS("[pool a]\npath = /x\nsize = 5000\n", "not a multiple of 4K");
	EXPECT_ERRORS("[pool a]\npath = /dev/dax0.0\nkind = devdax\nsize = 1G\n",
		      "its size comes from the device");
	EXPECT_ERRORS("[pool a]\npath = /x\n[pool b]\npath = /x\n", "same path as pool 'a'");
}
END_TEST

START_TEST(test_all_errors_reported)
{
	/* Three independent problems: all three are reported, not just the first. */
	EXPECT_ERRORS("[daemon]\nfoo = 1\nmax_clients = 0\n[pool p]\nkind = emulated\n",
		      "test.conf:2: key 'foo'", "test.conf:3: key 'max_clients'",
		      "pool 'p' has no path");
}
END_TEST

START_TEST(test_long_line)
{
	char *text = malloc(10000);

	strcpy(text, "[daemon]\nsocket = /");
	memset(text + strlen(text), 'a', 6000);
	strcpy(text + 19 + 6000, "\n");
	EXPECT_ERRORS(text, "test.conf:2:", "line longer than");
	free(text);

	/* A long socket path is refused with the AF_UNIX limit named. */
	text = malloc(300);
	strcpy(text, "[daemon]\nsocket = /");
	memset(text + strlen(text), 'b', 150);
	strcpy(text + 19 + 150, "\n");
	EXPECT_ERRORS(text, "AF_UNIX allows at most 107");
	free(text);
}
END_TEST

START_TEST(test_bom_empty_group_long_path)
{
	struct vpmd_config *c;
	char *text = malloc(8192);
	size_t n;

	/* a UTF-8 byte order mark before the first section */
	c = expect_ok("\xef\xbb\xbf[daemon]\nmax_clients = 3\n");
	ck_assert_uint_eq(c->max_clients, 3);
	config_free(c);

	/* an empty socket_group means root only; other keys still need a value */
	c = expect_ok("[daemon]\nsocket_group =\n");
	ck_assert_str_eq(c->socket_group, "");
	config_free(c);

	/* lines up to 4094 bytes are fine (a long image or pool path) */
	n = (size_t)sprintf(text, "[pool p]\nkind = emulated\nsize = 4M\npath = /");
	memset(text + n, 'p', 4000);
	strcpy(text + n + 4000, "\n");
	c = expect_ok(text);
	ck_assert_uint_eq(strlen(c->pools[0].path), 4001);
	config_free(c);
	free(text);
}
END_TEST

START_TEST(test_file_errors)
{
	struct vpmd_config *c = NULL;
	char *errors = NULL;

	ck_assert_int_eq(config_load("/nonexistent/vpmd.conf", &c, &errors), -ENOENT);
	ck_assert_ptr_null(errors);
	ck_assert_int_eq(config_load("/", &c, &errors), -EBADFD);
	ck_assert_ptr_null(c);
}
END_TEST

START_TEST(test_pool_config_equal)
{
	char n[] = "p", x[] = "/x", y[] = "/y";
	struct pool_config a = { .name = n, .path = x, .kind = POOL_KIND_FSDAX, .size = 4096 };
	struct pool_config b = a;

	ck_assert(pool_config_equal(&a, &b));
	b.size = 8192;
	ck_assert(!pool_config_equal(&a, &b));
	b = a;
	b.path = y;
	ck_assert(!pool_config_equal(&a, &b));
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_full_file);
	tcase_add_test(tc, test_errors_name_file_line_key);
	tcase_add_test(tc, test_structure_errors);
	tcase_add_test(tc, test_all_errors_reported);
	tcase_add_test(tc, test_long_line);
	tcase_add_test(tc, test_bom_empty_group_long_path);
	tcase_add_test(tc, test_file_errors);
	tcase_add_test(tc, test_pool_config_equal);
	suite_add_tcase(s, tc);
	return s;
}

VPM_CHECK_MAIN(config_suite)
