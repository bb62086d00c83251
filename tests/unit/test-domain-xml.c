// SPDX-License-Identifier: LGPL-2.1-or-later
#include "check-main.h"
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/xmlerror.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "domain-xml.h"
#include "engine.h"
#include "macro.h"
#include "parse-util.h"
#include "policy.h"

#define UUID "6695eb01-f6a4-8304-79aa-97f2502e1931"
#define NS   DOMAIN_METADATA_NS

#define NVDIMM_SHARED(path, size_kib)                                                              \
	"<memory model='nvdimm' access='shared'><source><path>" path "</path></source>"            \
	"<target><size unit='KiB'>" size_kib "</size><node>0</node></target></memory>"

static char errbuf[512];

/* A domain around the given <metadata> content and <devices> content. */
static char *domain_xml(const char *metadata, const char *devices)
{
	char *s;

	ck_assert_int_ge(asprintf(&s,
				  "<domain type='kvm'>\n"
				  "  <name>pmvm</name>\n"
				  "  <uuid>" UUID "</uuid>\n"
				  "  <metadata>%s</metadata>\n"
				  "  <memory unit='KiB'>4194304</memory>\n"
				  "  <devices>%s</devices>\n"
				  "</domain>\n",
				  metadata, devices),
			 0);
	return s;
}

static struct domain_info *parse_ok(const char *xml)
{
	struct domain_info *d = NULL;
	int r;

	errbuf[0] = '\0';
	r = domain_xml_parse(xml, strlen(xml), &d, errbuf, sizeof(errbuf));
	ck_assert_msg(r == 0, "parse failed (%d): %s", r, errbuf);
	ck_assert_ptr_nonnull(d);
	return d;
}

static struct domain_info *parse_devices_ok(const char *devices)
{
	_cleanup_free_ char *xml = domain_xml("", devices);

	return parse_ok(xml);
}

/* Expect the parse to fail with r and a one-line message containing needle. */
static void expect_fail_len(const char *xml, size_t len, int r, const char *needle)
{
	struct domain_info *d = (struct domain_info *)0x1;

	memset(errbuf, 0, sizeof(errbuf));
	ck_assert_int_eq(domain_xml_parse(xml, len, &d, errbuf, sizeof(errbuf)), r);
	ck_assert_ptr_null(d);
	ck_assert_msg(errbuf[0], "no message");
	ck_assert_msg(!strchr(errbuf, '\n'), "message spans lines: %s", errbuf);
	ck_assert_msg(strstr(errbuf, needle), "'%s' not in '%s'", needle, errbuf);
}

static void expect_fail(const char *xml, int r, const char *needle)
{
	expect_fail_len(xml, strlen(xml), r, needle);
}

static void expect_devices_fail(const char *devices, int r, const char *needle)
{
	_cleanup_free_ char *xml = domain_xml("", devices);

	expect_fail(xml, r, needle);
}

static void expect_metadata_fail(const char *metadata, const char *needle)
{
	_cleanup_free_ char *xml = domain_xml(metadata, "");

	expect_fail(xml, -EINVAL, needle);
}

/* The device's problem must be one line and contain every needle. */
static void expect_problem(const struct domain_pmdev *p, const char *n1, const char *n2)
{
	ck_assert_msg(p->problem, "no problem reported");
	ck_assert_msg(!strchr(p->problem, '\n'), "problem spans lines: %s", p->problem);
	ck_assert_msg(strstr(p->problem, n1), "'%s' not in '%s'", n1, p->problem);
	if (n2)
		ck_assert_msg(strstr(p->problem, n2), "'%s' not in '%s'", n2, p->problem);
}

static char *read_data_file(const char *name, size_t *len)
{
	_cleanup_free_ char *src = strdup(__FILE__);
	char path[PATH_MAX], *buf;
	FILE *f;
	long n;

	snprintf(path, sizeof(path), "%s/data/%s", dirname(src), name);
	f = fopen(path, "re");
	ck_assert_msg(f, "cannot open %s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* ---- devices ------------------------------------------------------------------------- */

START_TEST(test_nvdimm_inactive_all_fields)
{
	struct domain_info *d =
	    parse_devices_ok("<memory model='nvdimm' access='shared'>"
			     "  <source><path>/var/lib/libvirt/images/nv0.img</path>"
			     "    <alignsize unit='KiB'>2048</alignsize><pmem/></source>"
			     "  <target><size unit='KiB'>524416</size><node>1</node>"
			     "    <label><size unit='KiB'>128</size></label></target>"
			     "</memory>");
	const struct domain_pmdev *p;

	ck_assert_str_eq(d->name, "pmvm");
	ck_assert_str_eq(d->uuid, UUID);
	ck_assert(!d->has_policy);
	ck_assert_uint_eq(d->n_pmdevs, 1);
	p = &d->pmdevs[0];
	ck_assert_int_eq(p->model, DOMAIN_PMDEV_NVDIMM);
	ck_assert_ptr_null(p->alias);
	ck_assert_str_eq(p->path, "/var/lib/libvirt/images/nv0.img");
	ck_assert_uint_eq(p->size, UINT64_C(524416) << 10);
	ck_assert_uint_eq(p->label_size, UINT64_C(128) << 10);
	ck_assert_uint_eq(p->align_size, UINT64_C(2) << 20);
	ck_assert(p->shared);
	ck_assert(!p->readonly);
	ck_assert(p->pmem);
	ck_assert_int_eq(p->node, 1);
	ck_assert(!p->has_base);
	ck_assert_ptr_null(p->problem);
	ck_assert_uint_eq(domain_pm_bytes(d), UINT64_C(524416) << 10);
	domain_info_free(d);
}
END_TEST

START_TEST(test_live_xml_file)
{
	size_t len;
	_cleanup_free_ char *xml = read_data_file("domain-pm-live.xml", &len);
	struct domain_info *d = NULL;
	const struct domain_pmdev *nv, *vp;

	ck_assert_int_eq(domain_xml_parse(xml, len, &d, errbuf, sizeof(errbuf)), 0);
	ck_assert_str_eq(d->name, "pm-guest");
	ck_assert_str_eq(d->uuid, "3f0a1c52-9d4e-4b8a-a1c7-5e2f7d9b0c13");
	ck_assert(d->has_policy);
	ck_assert(d->policy.has_ratio && d->policy.ratio == 2.0);
	ck_assert_int_eq(d->policy.mode, VM_MODE_EPOCH);
	ck_assert_int_eq(d->policy.policy, POLICY_LRU);
	ck_assert_int_eq(d->policy.priority, 40);
	ck_assert_uint_eq(d->policy.epoch_interval, 250 * USEC_PER_MSEC);
	ck_assert_uint_eq(d->n_pmdevs, 2); /* the dimm is not PM */
	nv = &d->pmdevs[0];
	ck_assert_int_eq(nv->model, DOMAIN_PMDEV_NVDIMM);
	ck_assert_str_eq(nv->alias, "nvdimm0");
	ck_assert(nv->has_base);
	ck_assert_uint_eq(nv->base, UINT64_C(0x140000000));
	ck_assert_uint_eq(nv->slot, 0);
	ck_assert_ptr_null(nv->problem);
	vp = &d->pmdevs[1];
	ck_assert_int_eq(vp->model, DOMAIN_PMDEV_VIRTIO_PMEM);
	ck_assert_str_eq(vp->alias, "virtio-pmem0");
	ck_assert_str_eq(vp->path, "/var/lib/libvirt/images/vp0.img");
	ck_assert_uint_eq(vp->size, UINT64_C(256) << 20);
	ck_assert(!vp->has_base);
	ck_assert_int_eq(vp->node, -1);
	ck_assert_ptr_null(vp->problem);
	ck_assert_uint_eq(domain_pm_bytes(d), (UINT64_C(524416) << 10) + (UINT64_C(256) << 20));
	domain_info_free(d);
}
END_TEST

START_TEST(test_address_base_forms)
{
	struct domain_info *d = parse_devices_ok(
	    "<memory model='nvdimm' access='shared'><source><path>/a</path></source>"
	    "<target><size>4096</size></target><alias name='nvdimm3'/>"
	    "<address type='dimm' slot='3' base='4294967296'/></memory>"
	    "<memory model='nvdimm' access='shared'><source><path>/b</path></source>"
	    "<target><size>4096</size></target><address type='dimm' slot='4'/></memory>");

	ck_assert(d->pmdevs[0].has_base);
	ck_assert_uint_eq(d->pmdevs[0].base, UINT64_C(1) << 32);
	ck_assert_uint_eq(d->pmdevs[0].slot, 3);
	ck_assert(!d->pmdevs[1].has_base); /* inactive XML: libvirt has not placed it yet */
	domain_info_free(d);

	expect_devices_fail("<memory model='nvdimm' access='shared'><source><path>/a</path>"
			    "</source><target><size>4096</size></target>"
			    "<address type='dimm' slot='0' base='0xzz'/></memory>",
			    -EINVAL, "base='0xzz'");
	expect_devices_fail("<memory model='nvdimm' access='shared'><source><path>/a</path>"
			    "</source><target><size>4096</size></target>"
			    "<address type='dimm' slot='-1' base='0x0'/></memory>",
			    -EINVAL, "slot='-1'");
	expect_devices_fail("<memory model='nvdimm' access='shared'><source><path>/a</path>"
			    "</source><target><size>4096</size></target>"
			    "<address type='dimm' base='0x1ffffffffffffffff'/></memory>",
			    -EINVAL, "<address>");
}
END_TEST

START_TEST(test_nvdimm_without_access)
{
	struct domain_info *d = parse_devices_ok(
	    "<memory model='nvdimm'><source><path>/tmp/nv.img</path></source>"
	    "<target><size unit='MiB'>512</size></target><alias name='nvdimm0'/></memory>");

	ck_assert(!d->pmdevs[0].shared);
	expect_problem(&d->pmdevs[0], "nvdimm 'nvdimm0' (/tmp/nv.img)", "set access='shared'");
	ck_assert(strstr(d->pmdevs[0].problem, "never reach the image file"));
	ck_assert_uint_eq(domain_pm_bytes(d), 0);
	domain_info_free(d);
}
END_TEST

START_TEST(test_nvdimm_domain_default_access)
{
	_cleanup_free_ char *xml = NULL;
	struct domain_info *d;

	ck_assert_int_ge(asprintf(&xml,
				  "<domain><name>x</name><uuid>%s</uuid>"
				  "<memoryBacking><access mode='shared'/></memoryBacking><devices>"
				  "<memory model='nvdimm'><source><path>/a</path></source>"
				  "<target><size>8192</size></target></memory>"
				  "<memory model='virtio-pmem'><source><path>/b</path></source>"
				  "<target><size>8192</size></target></memory>"
				  "</devices></domain>",
				  UUID),
			 0);
	d = parse_ok(xml);
	ck_assert(d->pmdevs[0].shared);
	ck_assert_ptr_null(d->pmdevs[0].problem);
	/* libvirt wants access='shared' on virtio-pmem itself */
	ck_assert(!d->pmdevs[1].shared);
	expect_problem(&d->pmdevs[1], "virtio-pmem #1 (/b)", "access='shared'");
	domain_info_free(d);
}
END_TEST

START_TEST(test_nvdimm_private)
{
	struct domain_info *d = parse_devices_ok(
	    "<memory model='nvdimm' access='private'><source><path>/a.img</path></source>"
	    "<target><size>8192</size></target></memory>");

	ck_assert(!d->pmdevs[0].shared);
	expect_problem(&d->pmdevs[0], "nvdimm #0 (/a.img)", "set access='shared'");
	domain_info_free(d);

	expect_devices_fail("<memory model='nvdimm' access='public'><source><path>/a</path>"
			    "</source><target><size>8192</size></target></memory>",
			    -EINVAL, "access='public'");
}
END_TEST

START_TEST(test_virtio_pmem)
{
	struct domain_info *d = parse_devices_ok(
	    "<memory model='virtio-pmem' access='shared'><source><path>/tmp/vp.img</path>"
	    "</source><target><size unit='MiB'>256</size></target>"
	    "<address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/>"
	    "</memory>"
	    "<memory model='virtio-pmem' access='shared'><source><path>/tmp/vq.img</path>"
	    "</source><target><size unit='MiB'>256</size><node>0</node></target></memory>"
	    "<memory model='virtio-pmem'><source><path>/tmp/vr.img</path></source>"
	    "<target><size unit='MiB'>256</size></target></memory>");

	ck_assert_uint_eq(d->n_pmdevs, 3);
	ck_assert_int_eq(d->pmdevs[0].model, DOMAIN_PMDEV_VIRTIO_PMEM);
	ck_assert_uint_eq(d->pmdevs[0].size, UINT64_C(256) << 20);
	ck_assert(!d->pmdevs[0].has_base);
	ck_assert_uint_eq(d->pmdevs[0].slot, 0);
	ck_assert_ptr_null(d->pmdevs[0].problem);
	expect_problem(&d->pmdevs[1], "virtio-pmem #1 (/tmp/vq.img)", "NUMA");
	expect_problem(&d->pmdevs[2], "virtio-pmem #2 (/tmp/vr.img)", "access='shared'");
	ck_assert_uint_eq(domain_pm_bytes(d), UINT64_C(256) << 20);
	domain_info_free(d);
}
END_TEST

START_TEST(test_readonly)
{
	struct domain_info *d = parse_devices_ok(
	    "<memory model='nvdimm' access='shared'><source><path>/ro.img</path></source>"
	    "<target><size unit='GiB'>1</size><readonly/></target></memory>");

	ck_assert(d->pmdevs[0].readonly);
	ck_assert_ptr_null(d->pmdevs[0].problem);
	ck_assert_int_eq(d->pmdevs[0].node, -1);
	domain_info_free(d);
}
END_TEST

START_TEST(test_label_sizes)
{
	struct domain_info *d = parse_devices_ok(
	    "<memory model='nvdimm' access='shared'><source><path>/l0</path></source>"
	    "<target><size unit='KiB'>524416</size><label><size unit='KiB'>128</size></label>"
	    "</target></memory>"
	    "<memory model='nvdimm' access='shared'><source><path>/l1</path></source>"
	    "<target><size unit='KiB'>524416</size><label><size unit='KiB'>64</size></label>"
	    "</target></memory>"
	    "<memory model='nvdimm' access='shared'><source><path>/l2</path></source>"
	    "<target><size unit='KiB'>128</size><label><size unit='KiB'>128</size></label>"
	    "</target></memory>"
	    "<memory model='nvdimm' access='shared'><source><path>/l3</path></source>"
	    "<target><size unit='KiB'>524416</size><label><size unit='KiB'>130</size></label>"
	    "</target></memory>"
	    "<memory model='nvdimm' access='shared'><source><path>/l4</path></source>"
	    "<target><size unit='MiB'>2</size><label><size unit='MiB'>1</size></label>"
	    "</target></memory>");

	ck_assert_uint_eq(d->pmdevs[0].label_size, UINT64_C(128) << 10);
	ck_assert_ptr_null(d->pmdevs[0].problem);
	expect_problem(&d->pmdevs[1], "nvdimm #1 (/l1)", "below 128 KiB");
	expect_problem(&d->pmdevs[2], "nvdimm #2 (/l2)", "not smaller than the device");
	expect_problem(&d->pmdevs[3], "nvdimm #3 (/l3)", "multiple of 4 KiB");
	ck_assert_ptr_null(d->pmdevs[4].problem);
	ck_assert_uint_eq(domain_pm_bytes(d), (UINT64_C(524416) << 10) + (UINT64_C(2) << 20));
	domain_info_free(d);
}
END_TEST

struct unit_case {
	const char *value, *unit;
	uint64_t bytes;
};

START_TEST(test_every_unit)
{
	static const struct unit_case cases[] = {
	    {"4096", NULL, UINT64_C(4096) << 10},
	    {"4096", "", UINT64_C(4096) << 10},
	    {"4194304", "b", UINT64_C(4194304)},
	    {"4194304", "bytes", UINT64_C(4194304)},
	    {"4194304", "Byte", UINT64_C(4194304)},
	    {"4000", "B", UINT64_C(4096)}, /* libvirt rounds up to whole KiB */
	    {"4096", "KiB", UINT64_C(4096) << 10},
	    {"4096", "K", UINT64_C(4096) << 10},
	    {"4096", "k", UINT64_C(4096) << 10},
	    {"4096", "kib", UINT64_C(4096) << 10},
	    {"4096", "KB", UINT64_C(4096000)},
	    {"4096", "kb", UINT64_C(4096000)},
	    {"4", "MiB", UINT64_C(4) << 20},
	    {"4", "M", UINT64_C(4) << 20},
	    {"4", "m", UINT64_C(4) << 20},
	    {"4", "MB", UINT64_C(3907) << 10}, /* 4000000 rounded up to KiB */
	    {"2", "GiB", UINT64_C(2) << 30},
	    {"2", "G", UINT64_C(2) << 30},
	    {"2", "GB", UINT64_C(2000000000)},
	    {"2", "TiB", UINT64_C(2) << 40},
	    {"2", "t", UINT64_C(2) << 40},
	    {"2", "TB", UINT64_C(2000000000000)},
	    {"2", "PiB", UINT64_C(2) << 50},
	    {"2", "P", UINT64_C(2) << 50},
	    {"2", "PB", UINT64_C(2000000000000000)},
	    {"7", "EiB", UINT64_C(7) << 60},
	    {"7", "e", UINT64_C(7) << 60},
	    {"8", "EB", UINT64_C(8000000000000000000)},
	    {" 16 ", "KiB", UINT64_C(16) << 10},
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		_cleanup_free_ char *dev = NULL;
		struct domain_info *d;
		char unit[64] = "";

		if (cases[i].unit)
			snprintf(unit, sizeof(unit), " unit='%s'", cases[i].unit);
		ck_assert_int_ge(asprintf(&dev,
					  "<memory model='virtio-pmem' access='shared'>"
					  "<source><path>/p</path></source><target><size%s>%s"
					  "</size></target></memory>",
					  unit, cases[i].value),
				 0);
		d = parse_devices_ok(dev);
		ck_assert_msg(d->pmdevs[0].size == cases[i].bytes, "%s %s: %" PRIu64 " != %" PRIu64,
			      cases[i].value, unit, d->pmdevs[0].size, cases[i].bytes);
		domain_info_free(d);
	}
}
END_TEST

START_TEST(test_bad_units_and_overflow)
{
#define BAD_SIZE_FMT                                                                               \
	"<memory model='nvdimm' access='shared'><source><path>/p</path></source>"                  \
	"<target><size unit='%s'>%s</size></target></memory>"
	static const char *const bad[][3] = {
	    {"furlongs", "1", "unknown unit 'furlongs'"},
	    {"Ki", "1", "unknown unit 'Ki'"},
	    {"KiBi", "1", "unknown unit"},
	    {"x", "1", "unknown unit 'x'"},
	    {"EiB", "8", "overflows"},
	    {"E", "16", "overflows"},
	    {"b", "9223372036854775808", "overflows"},
	    {"KiB", "99999999999999999999999", "not a decimal number"},
	    {"KiB", "-1", "not a decimal number"},
	    {"KiB", "0x10", "not a decimal number"},
	    {"KiB", "1.5", "not a decimal number"},
	    {"KiB", "", "not a decimal number"},
	};

	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		_cleanup_free_ char *dev = NULL;

		ck_assert_int_ge(asprintf(&dev, BAD_SIZE_FMT, bad[i][0], bad[i][1]), 0);
		expect_devices_fail(dev, -EINVAL, bad[i][2]);
		ck_assert(strstr(errbuf, "<target><size>"));
	}
	expect_devices_fail("<memory model='nvdimm' access='shared'><source><path>/p</path>"
			    "<alignsize unit='parsec'>2</alignsize></source><target><size>8</size>"
			    "</target></memory>",
			    -EINVAL, "<source><alignsize>: unknown unit 'parsec'");
	expect_devices_fail("<memory model='nvdimm' access='shared'><source><path>/p</path>"
			    "</source><target><size>8</size><node>x</node></target></memory>",
			    -EINVAL, "<target><node>: 'x'");
}
END_TEST

START_TEST(test_huge_size_ok)
{
	/* the largest size libvirt takes; 2^63 after rounding up to KiB */
	struct domain_info *d = parse_devices_ok(
	    "<memory model='nvdimm' access='shared'><source><path>/h</path></source>"
	    "<target><size unit='b'>9223372036854775807</size></target></memory>"
	    "<memory model='nvdimm' access='shared'><source><path>/i</path></source>"
	    "<target><size unit='EiB'>7</size></target></memory>"
	    "<memory model='nvdimm' access='shared'><source><path>/j</path></source>"
	    "<target><size unit='EiB'>7</size></target></memory>");

	ck_assert_uint_eq(d->pmdevs[0].size, UINT64_C(1) << 63);
	ck_assert_ptr_null(d->pmdevs[0].problem);
	ck_assert_uint_eq(domain_pm_bytes(d), UINT64_MAX); /* saturates */
	domain_info_free(d);
}
END_TEST

START_TEST(test_size_problems)
{
	struct domain_info *d = parse_devices_ok(
	    "<memory model='nvdimm' access='shared'><source><path>/s0</path></source>"
	    "<target><size>0</size></target></memory>"
	    "<memory model='nvdimm' access='shared'><source><path>/s1</path></source>"
	    "<target><size>6</size></target></memory>"
	    "<memory model='nvdimm' access='shared'><source><path>/s2</path></source>"
	    "<target/></memory>"
	    "<memory model='virtio-pmem' access='shared'><source><path>/s3</path></source>"
	    "</memory>");

	expect_problem(&d->pmdevs[0], "nvdimm #0 (/s0)", "size");
	expect_problem(&d->pmdevs[1], "nvdimm #1 (/s1)", "multiple of 4 KiB");
	expect_problem(&d->pmdevs[2], "nvdimm #2 (/s2)", "<target><size>");
	expect_problem(&d->pmdevs[3], "virtio-pmem #3 (/s3)", "<target><size>");
	ck_assert_uint_eq(domain_pm_bytes(d), 0);
	domain_info_free(d);
}
END_TEST

START_TEST(test_path_problems)
{
	_cleanup_free_ char *longpath = malloc(PATH_MAX + 2), *dev = NULL;
	struct domain_info *d;

	memset(longpath, 'a', PATH_MAX + 1);
	longpath[0] = '/';
	longpath[PATH_MAX + 1] = '\0';
	ck_assert_int_ge(
	    asprintf(&dev,
		     "<memory model='nvdimm' access='shared'><target><size>8</size>"
		     "</target><alias name='nv-nopath'/></memory>"
		     "<memory model='nvdimm' access='shared'><source><path></path></source>"
		     "<target><size>8</size></target></memory>"
		     "<memory model='nvdimm' access='shared'><source><path>rel/x.img"
		     "</path></source><target><size>8</size></target></memory>"
		     "<memory model='nvdimm' access='shared'><source><path>/a&#10;b"
		     "</path></source><target><size>8</size></target></memory>"
		     "<memory model='nvdimm' access='shared'><source><path>%s</path>"
		     "</source><target><size>8</size></target></memory>",
		     longpath),
	    0);
	d = parse_devices_ok(dev);
	expect_problem(&d->pmdevs[0], "nvdimm 'nv-nopath' (no path)", "<source><path>");
	expect_problem(&d->pmdevs[1], "nvdimm #1", "<source><path>");
	expect_problem(&d->pmdevs[2], "nvdimm #2 (rel/x.img)", "not absolute");
	ck_assert_str_eq(d->pmdevs[3].path, "/a\nb");
	ck_assert_ptr_null(d->pmdevs[3].problem); /* odd, but a valid file name */
	expect_problem(&d->pmdevs[4], "nvdimm #4", "PATH_MAX");
	domain_info_free(d);
}
END_TEST

START_TEST(test_problem_is_one_line)
{
	struct domain_info *d = parse_devices_ok(
	    "<memory model='nvdimm'><source><path>/x&#10;y&#13;z\xc3\xa9</path></source>"
	    "<target><size>8</size></target><alias name='a&#10;b'/></memory>");

	expect_problem(&d->pmdevs[0],
		       "nvdimm 'a?b' (/x?y?z?"
		       "?)",
		       "access='shared'");
	domain_info_free(d);
}
END_TEST

START_TEST(test_other_memory_models_skipped)
{
	struct domain_info *d = parse_devices_ok(
	    "<memory model='dimm'><target><size unit='MiB'>512</size><node>0</node></target>"
	    "</memory>"
	    "<memory model='virtio-mem'><target><size unit='GiB'>1</size><node>0</node>"
	    "<block unit='KiB'>2048</block><requested unit='KiB'>0</requested></target></memory>"
	    "<memory><target><size unit='furlongs'>1</size></target></memory>"
	    "<memory model='sgx-epc'><target><size>1</size></target></memory>"
	    "<disk type='file' device='disk'><source file='/a'/></disk>");

	ck_assert_uint_eq(d->n_pmdevs, 0);
	ck_assert_ptr_null(d->pmdevs);
	ck_assert_uint_eq(domain_pm_bytes(d), 0);
	domain_info_free(d);
}
END_TEST

static char *many_devices(unsigned n)
{
	char *s = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&s, &len);

	ck_assert_ptr_nonnull(f);
	for (unsigned i = 0; i < n; i++)
		fprintf(f,
			i % 2 ? NVDIMM_SHARED("/nv%u", "1024")
			      : "<memory model='virtio-pmem' access='shared'><source><path>/vp%u"
				"</path></source><target><size>1024</size></target></memory>",
			i);
	fclose(f);
	return s;
}

START_TEST(test_too_many_devices)
{
	_cleanup_free_ char *ok = many_devices(DOMAIN_PMDEVS_MAX);
	_cleanup_free_ char *bad = many_devices(DOMAIN_PMDEVS_MAX + 1);
	struct domain_info *d = parse_devices_ok(ok);

	ck_assert_uint_eq(d->n_pmdevs, DOMAIN_PMDEVS_MAX);
	ck_assert_str_eq(d->pmdevs[DOMAIN_PMDEVS_MAX - 1].path, "/nv63");
	ck_assert_uint_eq(domain_pm_bytes(d), (uint64_t)DOMAIN_PMDEVS_MAX << 20);
	domain_info_free(d);
	expect_devices_fail(bad, -E2BIG, "65 persistent memory devices");
}
END_TEST

/* ---- domain identity ----------------------------------------------------------------- */

START_TEST(test_name_and_uuid)
{
	struct domain_info *d;
	char name[DOMAIN_NAME_MAX + 1], *xml = NULL;

	d = parse_ok("<domain><name>a b</name>"
		     "<uuid>6695EB01-F6A4-8304-79AA-97F2502E1931</uuid></domain>");
	ck_assert_str_eq(d->name, "a b");
	ck_assert_str_eq(d->uuid, UUID);
	ck_assert_uint_eq(d->n_pmdevs, 0);
	domain_info_free(d);

	d = parse_ok("<domain><name>x</name><uuid> 6695eb01f6a4830479aa97f2502e1931\n</uuid>"
		     "</domain>");
	ck_assert_str_eq(d->uuid, UUID);
	domain_info_free(d);

	expect_fail("<domain><uuid>" UUID "</uuid></domain>", -EINVAL, "no <name>");
	expect_fail("<domain><name></name><uuid>" UUID "</uuid></domain>", -EINVAL,
		    "<name> is empty");
	expect_fail("<domain><name>x</name></domain>", -EINVAL, "no <uuid>");
	expect_fail("<domain><name>x</name><uuid>6695eb01-f6a4-8304-79aa-97f2502e193</uuid>"
		    "</domain>",
		    -EINVAL, "is not a UUID");
	expect_fail("<domain><name>x</name><uuid>6695eb01-f6a4-8304-79aa-97f2502e1931ff</uuid>"
		    "</domain>",
		    -EINVAL, "<uuid>");
	expect_fail("<domain><name>x</name><uuid>g695eb01-f6a4-8304-79aa-97f2502e1931</uuid>"
		    "</domain>",
		    -EINVAL, "<uuid>");
	expect_fail("<domain><name>x</name><uuid></uuid></domain>", -EINVAL, "<uuid>");

	memset(name, 'n', DOMAIN_NAME_MAX - 1);
	name[DOMAIN_NAME_MAX - 1] = '\0';
	ck_assert_int_ge(
	    asprintf(&xml, "<domain><name>%s</name><uuid>%s</uuid></domain>", name, UUID), 0);
	d = parse_ok(xml);
	ck_assert_str_eq(d->name, name);
	domain_info_free(d);
	free(xml);
	strcat(name, "n");
	ck_assert_int_ge(
	    asprintf(&xml, "<domain><name>%s</name><uuid>%s</uuid></domain>", name, UUID), 0);
	expect_fail(xml, -EINVAL, "<name> is 256 bytes");
	free(xml);
}
END_TEST

/* ---- policy -------------------------------------------------------------------------- */

static void expect_policy_eq(const struct domain_policy *a, const struct domain_policy *b)
{
	ck_assert_int_eq(a->has_ratio, b->has_ratio);
	ck_assert_msg(a->ratio == b->ratio, "ratio %.17g != %.17g", a->ratio, b->ratio);
	ck_assert_int_eq(a->mode, b->mode);
	ck_assert_int_eq(a->policy, b->policy);
	ck_assert_int_eq(a->priority, b->priority);
	ck_assert_uint_eq(a->epoch_interval, b->epoch_interval);
}

START_TEST(test_policy_in_domain)
{
	_cleanup_free_ char *xml = domain_xml(
	    "<other:thing xmlns:other='urn:other'><other:policy ratio='bogus'/></other:thing>"
	    "<policy xmlns='urn:someone-else' ratio='nonsense'/>"
	    "<x:policy xmlns:x='" NS "' ratio='1.5' mode='hint' policy='oracle' priority='0'"
	    " epoch-interval='1500us'><!-- a comment --> </x:policy>",
	    "");
	struct domain_info *d = parse_ok(xml);

	ck_assert(d->has_policy);
	ck_assert(d->policy.has_ratio);
	ck_assert(d->policy.ratio == 1.5);
	ck_assert_int_eq(d->policy.mode, VM_MODE_HINT);
	ck_assert_int_eq(d->policy.policy, POLICY_ORACLE);
	ck_assert_int_eq(d->policy.priority, 0);
	ck_assert_uint_eq(d->policy.epoch_interval, 1500);
	domain_info_free(d);
}
END_TEST

START_TEST(test_policy_partial_and_default_ns)
{
	_cleanup_free_ char *xml = domain_xml("<policy xmlns='" NS "' policy='static'/>", "");
	struct domain_info *d = parse_ok(xml);
	struct domain_policy want;

	domain_policy_init(&want);
	want.policy = POLICY_STATIC;
	ck_assert(d->has_policy);
	expect_policy_eq(&d->policy, &want);
	domain_info_free(d);

	d = parse_ok("<domain><name>x</name><uuid>" UUID "</uuid></domain>");
	domain_policy_init(&want);
	ck_assert(!d->has_policy);
	expect_policy_eq(&d->policy, &want);
	domain_info_free(d);
}
END_TEST

START_TEST(test_policy_bad_values)
{
	static const char *const bad[][2] = {
	    {"ratio='0.5'", "ratio='0.5'"},
	    {"ratio='65537'", "ratio='65537'"},
	    {"ratio='inf'", "ratio='inf'"},
	    {"ratio='2x'", "ratio='2x'"},
	    {"ratio=''", "ratio=''"},
	    {"mode='turbo'", "mode='turbo'"},
	    {"mode='Native'", "mode='Native'"},
	    {"policy='fifo'", "policy='fifo'"},
	    {"priority='101'", "priority='101'"},
	    {"priority='-1'", "priority='-1'"},
	    {"priority='high'", "priority='high'"},
	    {"epoch-interval='0'", "epoch-interval='0'"},
	    {"epoch-interval='999us'", "epoch-interval='999us'"},
	    {"epoch-interval='61s'", "epoch-interval='61s'"},
	    {"epoch-interval='soon'", "epoch-interval='soon'"},
	    {"colour='blue'", "unknown attribute 'colour'"},
	    {"Ratio='2'", "unknown attribute 'Ratio'"},
	    {"x:ratio='2'", "unknown attribute 'x:ratio'"},
	};

	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		_cleanup_free_ char *md = NULL;

		ck_assert_int_ge(asprintf(&md, "<x:policy xmlns:x='%s' %s/>", NS, bad[i][0]), 0);
		expect_metadata_fail(md, bad[i][1]);
		ck_assert(strstr(errbuf, "<policy>"));
	}
	expect_metadata_fail("<x:policy xmlns:x='" NS "'><x:ratio>2</x:ratio></x:policy>",
			     "must be empty");
	expect_metadata_fail("<x:policy xmlns:x='" NS "'>2</x:policy>", "must be empty");
	expect_metadata_fail("<x:policy xmlns:x='" NS "' ratio='2'/><y:policy xmlns:y='" NS "'/>",
			     "two <policy> elements");
	expect_metadata_fail("<x:settings xmlns:x='" NS "'/>", "unknown element <settings>");
}
END_TEST

START_TEST(test_policy_parse_alone)
{
	struct domain_policy p;

	/* as virDomainGetMetadata() returns it: no namespace */
	ck_assert_int_eq(domain_policy_parse("<policy ratio='4' mode='native'/>", 33, &p, errbuf,
					     sizeof(errbuf)),
			 0);
	ck_assert(p.has_ratio && p.ratio == 4.0);
	ck_assert_int_eq(p.mode, VM_MODE_NATIVE);
	ck_assert_int_eq(p.policy, -1);
	ck_assert_int_eq(p.priority, -1);
	ck_assert_uint_eq(p.epoch_interval, 0);

#define POLICY_PARSE(s) domain_policy_parse(s, strlen(s), &p, errbuf, sizeof(errbuf))
	ck_assert_int_eq(POLICY_PARSE("<vpm:policy xmlns:vpm='" NS "' priority='7'/>"), 0);
	ck_assert_int_eq(p.priority, 7);
	ck_assert_int_eq(POLICY_PARSE("<policy xmlns='" NS "'/>"), 0);
	ck_assert(!p.has_ratio);
	ck_assert_int_eq(POLICY_PARSE("<policy xmlns='urn:x' ratio='2'/>"), -EINVAL);
	ck_assert(strstr(errbuf, "namespace 'urn:x'"));
	ck_assert_int_eq(POLICY_PARSE("<domain/>"), -EINVAL);
	ck_assert(strstr(errbuf, "root element is <domain>"));
	ck_assert_int_eq(POLICY_PARSE("<policy ratio='2' bogus='1'/>"), -EINVAL);
	ck_assert(strstr(errbuf, "unknown attribute 'bogus'"));
	ck_assert_int_eq(POLICY_PARSE("<policy ratio='2'"), -EINVAL);
	ck_assert(strstr(errbuf, "not well-formed"));
	ck_assert_int_eq(POLICY_PARSE(""), -EINVAL);
#undef POLICY_PARSE
}
END_TEST

static void round_trip(const struct domain_policy *in)
{
	_cleanup_free_ char *s = domain_policy_format(in);
	struct domain_policy out;

	ck_assert_ptr_nonnull(s);
	ck_assert_msg(domain_policy_parse(s, strlen(s), &out, errbuf, sizeof(errbuf)) == 0,
		      "%s: %s", s, errbuf);
	expect_policy_eq(&out, in);
}

START_TEST(test_policy_format_round_trip)
{
	static const double ratios[] = {1,
					1.5,
					2,
					1.1,
					3.3333333333333335,
					1.0000000000000002,
					65536,
					65535.999999999993,
					1234.5678,
					1.7976931348623157};
	static const uint64_t intervals[] = {0,	     1000,    1001,    1500,	250000,
					     999999, 1000000, 1500000, 60000000};
	struct domain_policy p;
	char *s;

	domain_policy_init(&p);
	round_trip(&p);
	s = domain_policy_format(&p);
	ck_assert_str_eq(s, "<policy/>");
	free(s);

	for (size_t i = 0; i < ELEMENTSOF(ratios); i++) {
		domain_policy_init(&p);
		p.has_ratio = true;
		p.ratio = ratios[i];
		round_trip(&p);
	}
	for (size_t i = 0; i < ELEMENTSOF(intervals); i++) {
		domain_policy_init(&p);
		p.epoch_interval = intervals[i];
		round_trip(&p);
	}
	for (int m = -1; m < _VM_MODE_MAX; m++)
		for (int k = -1; k < _POLICY_MAX; k++) {
			domain_policy_init(&p);
			p.mode = m;
			p.policy = k;
			p.priority = (m + 1) * 10 + k + 1;
			round_trip(&p);
		}

	p = (struct domain_policy){.has_ratio = true,
				   .ratio = 2,
				   .mode = VM_MODE_EPOCH,
				   .policy = POLICY_VPM,
				   .priority = 100,
				   .epoch_interval = 250000};
	s = domain_policy_format(&p);
	ck_assert_str_eq(s, "<policy ratio='2' mode='epoch' policy='vpm' priority='100' "
			    "epoch-interval='250ms'/>");
	free(s);
	p.epoch_interval = 1500;
	s = domain_policy_format(&p);
	ck_assert(strstr(s, "epoch-interval='1500us'"));
	free(s);

	/* what the parser would refuse is not formatted */
	p.ratio = 0.5;
	errno = 0;
	ck_assert_ptr_null(domain_policy_format(&p));
	ck_assert_int_eq(errno, EINVAL);
	p.ratio = 2;
	p.priority = 101;
	ck_assert_ptr_null(domain_policy_format(&p));
	p.priority = 1;
	p.mode = _VM_MODE_MAX;
	ck_assert_ptr_null(domain_policy_format(&p));
	p.mode = -1;
	p.epoch_interval = 999;
	ck_assert_ptr_null(domain_policy_format(&p));
	ck_assert_ptr_null(domain_policy_format(NULL));
}
END_TEST

/* ---- through libvirt's test driver --------------------------------------------------- */

static void quiet_libvirt(void *data, virErrorPtr err)
{
	(void)data;
	(void)err;
}

START_TEST(test_libvirt_metadata_round_trip)
{
	struct domain_policy p = {.has_ratio = true,
				  .ratio = 2.5,
				  .mode = VM_MODE_EPOCH,
				  .policy = POLICY_LRU,
				  .priority = 60,
				  .epoch_interval = 1500};
	struct domain_policy got;
	_cleanup_free_ char *fmt = domain_policy_format(&p);
	char *meta, *xml;
	struct domain_info *d;
	virConnectPtr conn;
	virDomainPtr dom;

	virSetErrorFunc(NULL, quiet_libvirt);
	conn = virConnectOpen("test:///default");
	ck_assert_ptr_nonnull(conn);
	dom = virDomainLookupByName(conn, "test");
	ck_assert_ptr_nonnull(dom);
	ck_assert_ptr_nonnull(fmt);
	ck_assert_int_eq(virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, fmt,
					      DOMAIN_METADATA_PREFIX, DOMAIN_METADATA_NS,
					      VIR_DOMAIN_AFFECT_LIVE),
			 0);

	meta = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, DOMAIN_METADATA_NS,
				    VIR_DOMAIN_AFFECT_LIVE);
	ck_assert_ptr_nonnull(meta);
	ck_assert_msg(domain_policy_parse(meta, strlen(meta), &got, errbuf, sizeof(errbuf)) == 0,
		      "%s: %s", meta, errbuf);
	expect_policy_eq(&got, &p);
	free(meta);

	xml = virDomainGetXMLDesc(dom, 0);
	ck_assert_ptr_nonnull(xml);
	ck_assert_msg(strstr(xml, "<" DOMAIN_METADATA_PREFIX ":policy"), "%s", xml);
	d = parse_ok(xml);
	ck_assert_str_eq(d->name, "test");
	ck_assert(d->has_policy);
	expect_policy_eq(&d->policy, &p);
	domain_info_free(d);
	free(xml);

	/* replacing it keeps one element */
	p.priority = 5;
	free(fmt);
	fmt = domain_policy_format(&p);
	ck_assert_int_eq(virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, fmt,
					      DOMAIN_METADATA_PREFIX, DOMAIN_METADATA_NS,
					      VIR_DOMAIN_AFFECT_LIVE),
			 0);
	xml = virDomainGetXMLDesc(dom, 0);
	d = parse_ok(xml);
	ck_assert_int_eq(d->policy.priority, 5);
	domain_info_free(d);
	free(xml);

	virDomainFree(dom);
	virConnectClose(conn);
}
END_TEST

START_TEST(test_libvirt_defined_devices)
{
	static const char def[] =
	    "<domain type='test'><name>pmvm</name><uuid>" UUID "</uuid>"
	    "<maxMemory slots='16' unit='GiB'>32</maxMemory><memory unit='GiB'>4</memory>"
	    "<vcpu>2</vcpu><os><type arch='x86_64'>hvm</type></os>"
	    "<cpu><numa><cell id='0' cpus='0-1' memory='2' unit='GiB'/></numa></cpu>"
	    "<devices>"
	    "<memory model='nvdimm' access='shared'><source><path>/nv0.img</path>"
	    "<alignsize unit='MiB'>2</alignsize><pmem/></source><target><size unit='b'>"
	    "536871000</size><node>0</node><label><size unit='KiB'>128</size></label>"
	    "<readonly/></target></memory>"
	    "<memory model='virtio-pmem' access='shared'><source><path>/vp.img</path></source>"
	    "<target><size unit='MiB'>256</size></target></memory>"
	    "<memory model='dimm'><target><size unit='MiB'>512</size><node>0</node></target>"
	    "</memory>"
	    "</devices></domain>";
	virConnectPtr conn;
	virDomainPtr dom;
	struct domain_info *d;
	char *xml;

	virSetErrorFunc(NULL, quiet_libvirt);
	conn = virConnectOpen("test:///default");
	ck_assert_ptr_nonnull(conn);
	dom = virDomainDefineXML(conn, def);
	ck_assert_ptr_nonnull(dom);
	xml = virDomainGetXMLDesc(dom, VIR_DOMAIN_XML_INACTIVE);
	ck_assert_ptr_nonnull(xml);
	d = parse_ok(xml);
	ck_assert_uint_eq(d->n_pmdevs, 2);
	/* libvirt rounded 536871000 bytes up to 524289 KiB, which is not 4 KiB aligned */
	ck_assert_uint_eq(d->pmdevs[0].size, UINT64_C(524289) << 10);
	expect_problem(&d->pmdevs[0], "nvdimm #0 (/nv0.img)", "multiple of 4 KiB");
	ck_assert_uint_eq(d->pmdevs[0].label_size, UINT64_C(128) << 10);
	ck_assert_uint_eq(d->pmdevs[0].align_size, UINT64_C(2) << 20);
	ck_assert(d->pmdevs[0].readonly && d->pmdevs[0].pmem && d->pmdevs[0].shared);
	ck_assert_int_eq(d->pmdevs[0].node, 0);
	ck_assert_uint_eq(d->pmdevs[1].size, UINT64_C(256) << 20);
	ck_assert_ptr_null(d->pmdevs[1].problem);
	domain_info_free(d);
	free(xml);
	virDomainUndefine(dom);
	virDomainFree(dom);
	virConnectClose(conn);
}
END_TEST

/* ---- hostile and broken input -------------------------------------------------------- */

START_TEST(test_billion_laughs)
{
	static const char xml[] =
	    "<?xml version='1.0'?>\n"
	    "<!DOCTYPE domain [\n"
	    " <!ENTITY lol 'lol'>\n"
	    " <!ENTITY lol1 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>\n"
	    " <!ENTITY lol2 '&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;'>\n"
	    " <!ENTITY lol3 '&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'>\n"
	    " <!ENTITY lol4 '&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;'>\n"
	    " <!ENTITY lol5 '&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;'>\n"
	    " <!ENTITY lol6 '&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;'>\n"
	    " <!ENTITY lol7 '&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;'>\n"
	    " <!ENTITY lol8 '&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;'>\n"
	    " <!ENTITY lol9 '&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;'>\n"
	    "]>\n"
	    "<domain><name>&lol9;</name><uuid>" UUID "</uuid></domain>\n";
	struct domain_policy p;
	time_t start = time(NULL);

	expect_fail(xml, -EINVAL, "<!ENTITY>");
	ck_assert_int_eq(domain_policy_parse(xml, strlen(xml), &p, errbuf, sizeof(errbuf)),
			 -EINVAL);
	ck_assert_int_le(time(NULL) - start, 2);
}
END_TEST

START_TEST(test_external_entities)
{
	static const char general[] =
	    "<!DOCTYPE domain [<!ENTITY xxe SYSTEM 'file:///etc/passwd'>]>"
	    "<domain><name>&xxe;</name><uuid>" UUID "</uuid></domain>";
	static const char parameter[] = "<!DOCTYPE domain [<!ENTITY % p SYSTEM "
					"'file:///etc/passwd'> %p;]>"
					"<domain><name>x</name><uuid>" UUID "</uuid></domain>";
	char dtd[] = "/tmp/test-domain-xml-XXXXXX";
	_cleanup_free_ char *xml = NULL;
	struct domain_info *d;
	int fd;

	expect_fail(general, -EINVAL, "<!ENTITY>");
	ck_assert(!strstr(errbuf, "root:"));
	expect_fail(parameter, -EINVAL, "<!ENTITY>");

	/* an external DTD is not loaded: if it were, its entity declaration would fail the parse */
	fd = mkstemp(dtd);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_gt(write(fd, "<!ENTITY e 'loaded'>\n", 21), 0);
	close(fd);
	ck_assert_int_ge(asprintf(&xml,
				  "<!DOCTYPE domain SYSTEM 'file://%s'>"
				  "<domain><name>x</name><uuid>%s</uuid></domain>",
				  dtd, UUID),
			 0);
	d = parse_ok(xml);
	ck_assert_str_eq(d->name, "x");
	domain_info_free(d);
	unlink(dtd);

	/* nor fetched from the network */
	d = parse_ok("<!DOCTYPE domain PUBLIC '-//x//y' 'http://127.0.0.1:1/x.dtd'>"
		     "<domain><name>x</name><uuid>" UUID "</uuid></domain>");
	domain_info_free(d);
}
END_TEST

START_TEST(test_nul_and_size_limits)
{
	static const char with_nul[] = "<domain><name>x\0y</name><uuid>" UUID "</uuid></domain>";
	_cleanup_free_ char *big = malloc(DOMAIN_XML_MAX + 1);
	struct domain_info *d = NULL;
	struct domain_policy p;

	expect_fail_len(with_nul, sizeof(with_nul) - 1, -EINVAL, "NUL byte at offset 15");
	ck_assert_int_eq(domain_policy_parse("<policy/>\0", 10, &p, errbuf, sizeof(errbuf)),
			 -EINVAL);
	memset(big, ' ', DOMAIN_XML_MAX + 1);
	expect_fail_len(big, DOMAIN_XML_MAX + 1, -E2BIG, "more than");
	expect_fail_len("", 0, -EINVAL, "empty");
	expect_fail_len(NULL, 0, -EINVAL, "empty");
	/* no errbuf at all is fine */
	ck_assert_int_eq(domain_xml_parse("<x", 2, &d, NULL, 0), -EINVAL);
	ck_assert_ptr_null(d);
}
END_TEST

START_TEST(test_broken_input)
{
	size_t len;
	_cleanup_free_ char *live = read_data_file("domain-pm-live.xml", &len);

	expect_fail_len(live, len / 2, -EINVAL, "not well-formed XML: line");
	expect_fail("<domain><name>x</name><uuid>" UUID "</uuid>", -EINVAL, "not well-formed");
	expect_fail("this is not XML", -EINVAL, "not well-formed");
	expect_fail("{\"domain\": 1}", -EINVAL, "not well-formed");
	expect_fail("<?xml version='1.0'?>", -EINVAL, "not well-formed");
	expect_fail("<domain><name>x</name><uuid>" UUID "</uuid></domain><domain/>", -EINVAL,
		    "not well-formed");
	expect_fail("<network><name>x</name></network>", -EINVAL,
		    "root element is <network>, expected <domain>");
	expect_fail("<domstatus><domain/></domstatus>", -EINVAL, "root element is <domstatus>");
	expect_fail("<d:domain xmlns:d='urn:x'><name>x</name></d:domain>", -EINVAL,
		    "expected <domain>");
	expect_fail("<domain><name>&undefined;</name><uuid>" UUID "</uuid></domain>", -EINVAL,
		    "not well-formed");
	expect_fail("\xff\xfe<\0d\0", -EINVAL, "not well-formed");
}
END_TEST

static unsigned global_handler_calls;

static void global_handler(void *data, xmlErrorPtr err)
{
	(void)data;
	(void)err;
	global_handler_calls++;
}

START_TEST(test_errors_stay_quiet)
{
	char path[] = "/tmp/test-domain-xml-stderr-XXXXXX";
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);
	struct domain_info *d = NULL;
	struct stat st;

	ck_assert_int_ge(fd, 0);
	xmlSetStructuredErrorFunc(NULL, global_handler);
	fflush(stderr);
	dup2(fd, STDERR_FILENO);
	ck_assert_int_lt(domain_xml_parse("<domain><name>", 14, &d, errbuf, sizeof(errbuf)), 0);
	ck_assert_int_lt(domain_xml_parse("<a></b>", 7, &d, NULL, 0), 0);
	ck_assert_int_lt(
	    domain_xml_parse("<domain><name>&x;</name></domain>", 33, &d, errbuf, sizeof(errbuf)),
	    0);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	ck_assert_int_eq(fstat(fd, &st), 0);
	ck_assert_int_eq(st.st_size, 0);
	close(fd);
	unlink(path);
	/* another component's handler saw nothing and is still installed */
	ck_assert_uint_eq(global_handler_calls, 0);
	ck_assert_ptr_eq((void *)xmlStructuredError, (void *)global_handler);
	xmlSetStructuredErrorFunc(NULL, NULL);
}
END_TEST

static Suite *domain_xml_suite(void)
{
	Suite *s = suite_create("domain-xml");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_nvdimm_inactive_all_fields);
	tcase_add_test(tc, test_live_xml_file);
	tcase_add_test(tc, test_address_base_forms);
	tcase_add_test(tc, test_nvdimm_without_access);
	tcase_add_test(tc, test_nvdimm_domain_default_access);
	tcase_add_test(tc, test_nvdimm_private);
	tcase_add_test(tc, test_virtio_pmem);
	tcase_add_test(tc, test_readonly);
	tcase_add_test(tc, test_label_sizes);
	tcase_add_test(tc, test_every_unit);
	tcase_add_test(tc, test_bad_units_and_overflow);
	tcase_add_test(tc, test_huge_size_ok);
	tcase_add_test(tc, test_size_problems);
	tcase_add_test(tc, test_path_problems);
	tcase_add_test(tc, test_problem_is_one_line);
	tcase_add_test(tc, test_other_memory_models_skipped);
	tcase_add_test(tc, test_too_many_devices);
	tcase_add_test(tc, test_name_and_uuid);
	tcase_add_test(tc, test_policy_in_domain);
	tcase_add_test(tc, test_policy_partial_and_default_ns);
	tcase_add_test(tc, test_policy_bad_values);
	tcase_add_test(tc, test_policy_parse_alone);
	tcase_add_test(tc, test_policy_format_round_trip);
	tcase_add_test(tc, test_libvirt_metadata_round_trip);
	tcase_add_test(tc, test_libvirt_defined_devices);
	tcase_add_test(tc, test_billion_laughs);
	tcase_add_test(tc, test_external_entities);
	tcase_add_test(tc, test_nul_and_size_limits);
	tcase_add_test(tc, test_broken_input);
	tcase_add_test(tc, test_errors_stay_quiet);
	suite_add_tcase(s, tc);
	return s;
}

VPM_CHECK_MAIN(domain_xml_suite)
