// SPDX-License-Identifier: LGPL-2.1-or-later
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check-main.h"
#include "hostpm.h"
#include "json-util.h"
#include "log.h"
#include "pool.h"

static char dir[] = "/tmp/vpm-test-pool-XXXXXX";

static void setup(void)
{
	ck_assert_ptr_nonnull(mkdtemp(dir));
	log_set_max_level(LOG_CRIT); /* the refusals below are expected */
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
	strcpy(dir, "/tmp/vpm-test-pool-XXXXXX");
}

static char *path_in_dir(const char *name)
{
	char *p;

	ck_assert_int_ge(asprintf(&p, "%s/%s", dir, name), 0);
	return p;
}

static void make_file(const char *path, off_t size)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, size), 0);
	close(fd);
}

static int open_pool(const char *path, enum pool_kind kind, uint64_t size, struct pool **ret)
{
	_cleanup_free_ char *p = strdup(path);
	char name[] = "t";
	struct pool_config pc = { .name = name, .path = p, .kind = kind, .size = size };

	return pool_open(&pc, ret);
}

START_TEST(test_emulated_created)
{
	_cleanup_free_ char *path = path_in_dir("pool");
	struct pool *p = NULL;
	struct json_object *j;
	struct stat st;

	ck_assert_int_eq(open_pool(path, POOL_KIND_EMULATED, 8 << 20, &p), 0);
	ck_assert_int_eq(p->kind, POOL_KIND_EMULATED);
	ck_assert_uint_eq(p->size, 8 << 20);
	ck_assert(p->created);
	ck_assert_int_eq(p->granularity, PMEM2_GRANULARITY_PAGE);
	ck_assert(!pool_is_persistent(p));
	ck_assert_ptr_nonnull(p->addr);
	/* the mapping is real and shared with the file */
	memcpy(p->addr, "VPMTEST", 8);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_size, 8 << 20);

	j = pool_to_json(p);
	ck_assert_str_eq(json_object_get_string(json_object_object_get(j, "kind")), "emulated");
	ck_assert_str_eq(json_object_get_string(json_object_object_get(j, "store_granularity")),
			 "page");
	ck_assert(!json_object_get_boolean(json_object_object_get(j, "persistent")));
	ck_assert_ptr_nonnull(json_object_object_get(j, "warning"));
	json_object_put(j);
	pool_close(p);

	/* reopen: the data is there, nothing is created */
	ck_assert_int_eq(open_pool(path, POOL_KIND_EMULATED, 0, &p), 0);
	ck_assert(!p->created);
	ck_assert_str_eq(p->addr, "VPMTEST");
	pool_close(p);
}
END_TEST

START_TEST(test_refusals)
{
	_cleanup_free_ char *path = path_in_dir("pool"), *small = path_in_dir("small"),
			    *missing = path_in_dir("missing");
	struct pool *p = NULL, *q = NULL;

	make_file(path, 4 << 20);
	make_file(small, 1 << 20);

	/* size that disagrees with the file */
	ck_assert_int_eq(open_pool(path, POOL_KIND_EMULATED, 8 << 20, &p), -EINVAL);
	/* missing file without a size to create it */
	ck_assert_int_eq(open_pool(missing, POOL_KIND_EMULATED, 0, &p), -ENOENT);
	/* too small */
	ck_assert_int_eq(open_pool(small, POOL_KIND_EMULATED, 0, &p), -EINVAL);
	/* a regular file cannot be a devdax pool */
	ck_assert_int_eq(open_pool(path, POOL_KIND_DEVDAX, 0, &p), -EINVAL);
	/* a directory is no pool */
	ck_assert_int_eq(open_pool(dir, POOL_KIND_AUTO, 0, &p), -EISDIR);
	/* a character device that is not devdax: libpmem2 refuses it */
	ck_assert_int_lt(open_pool("/dev/null", POOL_KIND_AUTO, 0, &p), 0);
	ck_assert_int_eq(open_pool("/dev/null", POOL_KIND_EMULATED, 0, &p), -EINVAL);
	/* a device's size is the device's: a size key is refused, not ignored */
	ck_assert_int_eq(open_pool("/dev/null", POOL_KIND_AUTO, 8 << 20, &p), -EINVAL);
	/* a missing device is never created as a file */
	ck_assert_int_eq(open_pool("/dev/dax99.9", POOL_KIND_AUTO, 8 << 20, &p), -ENOENT);
	ck_assert_int_eq(access("/dev/dax99.9", F_OK), -1);
	ck_assert_ptr_null(p);

	/* one owner at a time */
	ck_assert_int_eq(open_pool(path, POOL_KIND_EMULATED, 0, &p), 0);
	ck_assert_int_eq(open_pool(path, POOL_KIND_EMULATED, 0, &q), -EBUSY);
	ck_assert_ptr_null(q);
	pool_close(p);
}
END_TEST

START_TEST(test_fsdax_needs_dax)
{
	_cleanup_free_ char *path = path_in_dir("pool");
	struct pool *p = NULL;

	/* /tmp is not a DAX filesystem: fsdax (explicit or detected) is refused... */
	ck_assert_int_eq(open_pool(path, POOL_KIND_FSDAX, 4 << 20, &p), -EOPNOTSUPP);
	/* ...and the file vpmd created for it is gone again */
	ck_assert_int_eq(access(path, F_OK), -1);
	make_file(path, 4 << 20);
	ck_assert_int_eq(open_pool(path, POOL_KIND_AUTO, 0, &p), -EOPNOTSUPP);
	/* the existing file is left alone */
	ck_assert_int_eq(access(path, F_OK), 0);
}
END_TEST

START_TEST(test_hostpm_scan)
{
	struct json_object *o = NULL, *regions;

	ck_assert_int_eq(hostpm_scan(&o), 0);
	regions = json_object_object_get(o, "regions");
	ck_assert(json_object_is_type(regions, json_type_array));
	/* A host without an nd bus lists no regions, and that is not an error. */
	if (access("/sys/bus/nd/devices", F_OK) < 0)
		ck_assert_int_eq(json_object_array_length(regions), 0);
	json_object_put(o);
}
END_TEST

static Suite *pool_suite(void)
{
	Suite *s = suite_create("pool");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_emulated_created);
	tcase_add_test(tc, test_refusals);
	tcase_add_test(tc, test_fsdax_needs_dax);
	tcase_add_test(tc, test_hostpm_scan);
	suite_add_tcase(s, tc);
	return s;
}

VPM_CHECK_MAIN(pool_suite)
