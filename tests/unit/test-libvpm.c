// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libvpm's VM, vm-set, stats and hook calls against a canned vpmd: the requests they send,
 * what their getters read from replies, and the arguments they refuse before sending anything.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>

#include "check-main.h"
#include "vpm/libvpm.h"

/* ---- a vpmd that answers every request with one canned reply ---- */

struct fake {
	char dir[64], path[128];
	int listen_fd;
	pthread_t thread;
	const char *reply; /* the result object's JSON, or an error object with "error" */
	char request[65536];
	int requests;
};

static void *fake_run(void *userdata)
{
	struct fake *f = userdata;
	int fd;

	while ((fd = accept(f->listen_fd, NULL, NULL)) >= 0) {
		for (;;) {
			size_t len = 0;
			ssize_t n;
			char msg[8192];

			while ((n = read(fd, f->request + len, sizeof(f->request) - 1 - len)) > 0) {
				len += (size_t)n;
				if (memchr(f->request, '\0', len))
					break;
			}
			if (n <= 0)
				break;
			f->requests++;
			if (strncmp(f->reply, "{\"error\"", 8) == 0)
				snprintf(msg, sizeof(msg), "{\"protocol\": 1, %s", f->reply + 1);
			else
				snprintf(msg, sizeof(msg), "{\"protocol\": 1, \"result\": %s}",
					 f->reply);
			if (write(fd, msg, strlen(msg) + 1) < 0)
				break;
		}
		close(fd);
	}
	return NULL;
}

static void fake_start(struct fake *f, const char *reply)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	memset(f, 0, sizeof(*f));
	f->reply = reply;
	snprintf(f->dir, sizeof(f->dir), "/tmp/test-libvpm.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/vpmd.sock", f->dir);
	strcpy(sa.sun_path, f->path);
	f->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(f->listen_fd, 0);
	ck_assert_int_eq(bind(f->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(f->listen_fd, 4), 0);
	ck_assert_int_eq(pthread_create(&f->thread, NULL, fake_run, f), 0);
}

static void fake_stop(struct fake *f)
{
	shutdown(f->listen_fd, SHUT_RDWR);
	close(f->listen_fd);
	pthread_join(f->thread, NULL);
	unlink(f->path);
	rmdir(f->dir);
}

/* The last request's params; the caller puts the returned object. */
static struct json_object *fake_params(struct fake *f, const char *method)
{
	struct json_object *req = json_tokener_parse(f->request), *m, *p;

	ck_assert_ptr_nonnull(req);
	ck_assert(json_object_object_get_ex(req, "method", &m));
	ck_assert_str_eq(json_object_get_string(m), method);
	if (!json_object_object_get_ex(req, "params", &p) || !p) {
		json_object_put(req);
		return json_object_new_object();
	}
	json_object_get(p);
	json_object_put(req);
	return p;
}

static struct vpm_ctx *ctx_for(const char *path)
{
	struct vpm_ctx *ctx = NULL;

	ck_assert_int_eq(vpm_new(path, &ctx), 0);
	return ctx;
}

#define SUMMARY                                                                                    \
	"\"name\": \"kv1\", \"backend\": \"sim\", \"mode\": \"epoch\", \"policy\": \"lru\", "     \
	"\"priority\": 70, \"ratio\": 2.5, \"pages\": 256, \"vcpus\": 2, \"dram_pages\": 100, "  \
	"\"pm_pages\": 120, \"image_pages\": 36, \"pm_target\": 103, \"dram_share\": 153, "      \
	"\"converged\": false, \"migrating_pages\": 17, \"epoch\": 900, \"epochs\": 800, "       \
	"\"dirty_pages\": 5000, \"faults\": 300, \"promotions\": 40, \"demotions\": 60, "        \
	"\"pause_usec_max\": 2500, \"ops\": 123456, \"page_table_bytes\": 2048, "        \
	"\"stage_bytes\": 8192"

#define STATS                                                                                      \
	"{\"pages\": {\"dram\": 101, \"pm\": 119, \"image\": 36}, \"epochs\": 801, "             \
	"\"pause_usec\": {\"p50\": 45, \"p99\": 900, \"max\": 2501, \"samples\": 801}, "         \
	"\"dirty_pages_per_epoch\": {\"last\": 7, \"mean\": 6.25}, \"log_bytes\": 1000000, "     \
	"\"pm_bytes_written\": 3000000, "                                                        \
	"\"migrations\": {\"promotions\": 41, \"demotions\": 61, \"bytes\": 417792}, "           \
	"\"ops\": 123457, \"modeled_ops_per_sec\": 5000.5, \"wall_ops_per_sec\": 4000, "         \
	"\"loss_window_usec\": 21000, \"hints\": {\"persist\": 3, \"discard\": 4}, "             \
	"\"faults\": 301}"

/* ---- arguments refused before anything is sent ---- */

START_TEST(test_set_refuses_bad_values)
{
	/* nobody listens here: a call that got as far as connecting would fail with ENOENT */
	struct vpm_ctx *ctx = ctx_for("/nonexistent/vpmd.sock");
	const double bad[] = { NAN, INFINITY, -INFINITY, 0.0, 0.999, -1.0, 65536.001, 1e300 };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_eq(vpm_vm_set_ratio(ctx, "kv1", bad[i]), -EINVAL);
		ck_assert_ptr_nonnull(strstr(vpm_errormsg(), "out of range"));
		ck_assert_int_eq(vpm_vm_set_ratio(ctx, NULL, bad[i]), -EINVAL);
	}
	ck_assert_int_eq(vpm_vm_set_ratio(ctx, "kv1", 1.0), -ENOENT);
	ck_assert_int_eq(vpm_vm_set_ratio(ctx, NULL, 65536.0), -ENOENT);
	ck_assert_int_eq(vpm_vm_set_ratio(ctx, "", 2.0), -EINVAL);
	ck_assert_ptr_nonnull(strstr(vpm_errormsg(), "empty"));

	ck_assert_int_eq(vpm_vm_set_priority(ctx, "kv1", -1), -EINVAL);
	ck_assert_ptr_nonnull(strstr(vpm_errormsg(), "0 to 100"));
	ck_assert_int_eq(vpm_vm_set_priority(ctx, "kv1", 101), -EINVAL);
	ck_assert_int_eq(vpm_vm_set_priority(ctx, "kv1", 100), -ENOENT);
	ck_assert_int_eq(vpm_vm_set_priority(ctx, NULL, 0), -ENOENT);

	ck_assert_int_eq(vpm_vm_set_mode(ctx, "kv1", NULL), -EINVAL);
	ck_assert_int_eq(vpm_vm_set_mode(ctx, "kv1", ""), -EINVAL);
	ck_assert_int_eq(vpm_vm_set_mode(ctx, "kv1", "epoch"), -ENOENT);
	ck_assert_int_eq(vpm_vm_set_policy(ctx, NULL, NULL), -EINVAL);
	ck_assert_int_eq(vpm_vm_set_policy(ctx, NULL, ""), -EINVAL);
	ck_assert_int_eq(vpm_vm_set_policy(ctx, NULL, "lru"), -ENOENT);
	ck_assert_int_eq(vpm_vm_set_ratio(NULL, "kv1", 2.0), -EINVAL);
	vpm_unref(ctx);
}
END_TEST

START_TEST(test_show_and_stats_refuse_bad_arguments)
{
	struct vpm_ctx *ctx = ctx_for("/nonexistent/vpmd.sock");
	struct vpm_vm *vm = NULL;
	struct vpm_stats *s = NULL;

	ck_assert_int_eq(vpm_vm_show(ctx, NULL, &vm), -EINVAL);
	ck_assert_int_eq(vpm_vm_show(ctx, "", &vm), -EINVAL);
	ck_assert_int_eq(vpm_vm_show(ctx, "kv1", NULL), -EINVAL);
	ck_assert_int_eq(vpm_vm_show(ctx, "kv1", &vm), -ENOENT);
	ck_assert_ptr_null(vm);
	ck_assert_int_eq(vpm_stats_get(ctx, NULL, NULL), -EINVAL);
	ck_assert_int_eq(vpm_stats_get(ctx, "", &s), -EINVAL);
	ck_assert_int_eq(vpm_stats_get(ctx, NULL, &s), -ENOENT);
	ck_assert_ptr_null(s);
	vpm_unref(ctx);
}
END_TEST

START_TEST(test_null_objects)
{
	ck_assert_ptr_null(vpm_vm_ref(NULL));
	ck_assert_ptr_null(vpm_vm_unref(NULL));
	ck_assert_ptr_null(vpm_vm_get_json(NULL, true));
	ck_assert_ptr_null(vpm_vm_get_policy(NULL));
	ck_assert_int_eq(vpm_vm_get_priority(NULL), -1);
	ck_assert(vpm_vm_get_ratio(NULL) == 0);
	ck_assert(!vpm_vm_is_converged(NULL));
	ck_assert(!vpm_vm_has_stats(NULL));
	ck_assert_uint_eq(vpm_vm_get_pause_usec_p99(NULL), 0);
	ck_assert(vpm_vm_get_modeled_ops_per_sec(NULL) == 0);
	ck_assert_int_eq(vpm_vm_get_device_index(NULL), -1);
	ck_assert_ptr_null(vpm_vm_get_device_pool(NULL));
	ck_assert_ptr_null(vpm_stats_ref(NULL));
	ck_assert_ptr_null(vpm_stats_unref(NULL));
	ck_assert_ptr_null(vpm_stats_get_json(NULL, false));
	ck_assert_ptr_null(vpm_stats_get_first_vm(NULL));
	ck_assert_uint_eq(vpm_stats_get_pm_frames_free(NULL), 0);
	ck_assert_ptr_null(vpm_vm_get_libvirt_state(NULL));
	ck_assert(!vpm_vm_list_has_libvirt(NULL));
	ck_assert_ptr_null(vpm_vm_list_get_libvirt_uri(NULL));
	ck_assert(!vpm_vm_list_is_libvirt_connected(NULL));
	ck_assert_ptr_null(vpm_vm_list_get_libvirt_error(NULL));
	ck_assert_ptr_null(vpm_libvirt_vm_get_first(NULL));
	ck_assert_ptr_null(vpm_libvirt_vm_get_next(NULL));
	ck_assert_ptr_null(vpm_libvirt_vm_get_name(NULL));
	ck_assert_ptr_null(vpm_libvirt_vm_get_uuid(NULL));
	ck_assert_ptr_null(vpm_libvirt_vm_get_state(NULL));
	ck_assert_uint_eq(vpm_libvirt_vm_get_pm_pages(NULL), 0);
	ck_assert_ptr_null(vpm_libvirt_vm_get_problem(NULL));
	ck_assert(!vpm_libvirt_vm_is_attached(NULL));
	ck_assert(!vpm_libvirt_vm_is_reserved(NULL));
	ck_assert(vpm_libvirt_vm_get_policy_ratio(NULL) == 0);
	ck_assert_ptr_null(vpm_libvirt_vm_get_policy_mode(NULL));
}
END_TEST

/* ---- requests and replies ---- */

START_TEST(test_vm_set_requests)
{
	struct fake f;
	struct vpm_ctx *ctx;
	struct json_object *p, *v;

	fake_start(&f, "{\"vms\": []}");
	ctx = ctx_for(f.path);

	ck_assert_int_eq(vpm_vm_set_ratio(ctx, "kv1", 1.5), 0);
	p = fake_params(&f, "vm-set");
	ck_assert_int_eq(json_object_object_length(p), 2);
	ck_assert(json_object_object_get_ex(p, "name", &v));
	ck_assert_str_eq(json_object_get_string(v), "kv1");
	ck_assert(json_object_object_get_ex(p, "ratio", &v));
	ck_assert(json_object_get_double(v) == 1.5);
	json_object_put(p);

	/* all VMs: {"all": true}, never a name */
	ck_assert_int_eq(vpm_vm_set_ratio(ctx, NULL, 3.0), 0);
	p = fake_params(&f, "vm-set");
	ck_assert_int_eq(json_object_object_length(p), 2);
	ck_assert(json_object_object_get_ex(p, "all", &v));
	ck_assert(json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v));
	ck_assert(json_object_object_get_ex(p, "ratio", &v));
	ck_assert(json_object_get_double(v) == 3.0);
	json_object_put(p);

	ck_assert_int_eq(vpm_vm_set_mode(ctx, "kv1", "hint"), 0);
	p = fake_params(&f, "vm-set");
	ck_assert(json_object_object_get_ex(p, "mode", &v));
	ck_assert_str_eq(json_object_get_string(v), "hint");
	json_object_put(p);

	ck_assert_int_eq(vpm_vm_set_policy(ctx, NULL, "oracle"), 0);
	p = fake_params(&f, "vm-set");
	ck_assert(json_object_object_get_ex(p, "policy", &v));
	ck_assert_str_eq(json_object_get_string(v), "oracle");
	ck_assert(json_object_object_get_ex(p, "all", &v));
	json_object_put(p);

	ck_assert_int_eq(vpm_vm_set_priority(ctx, "kv1", 0), 0);
	p = fake_params(&f, "vm-set");
	ck_assert(json_object_object_get_ex(p, "priority", &v));
	ck_assert(json_object_is_type(v, json_type_int));
	ck_assert_int_eq(json_object_get_int(v), 0);
	json_object_put(p);

	ck_assert_int_eq(f.requests, 5);
	ck_assert_ptr_null(vpm_warningmsg()); /* a reply without warnings */
	vpm_unref(ctx);
	fake_stop(&f);
}
END_TEST

START_TEST(test_vm_set_warnings)
{
	struct fake f;
	struct vpm_ctx *ctx;

	fake_start(&f, "{\"vms\": [], \"warnings\": [\"VM 'a': metadata not updated\", 7, "
		       "\"VM 'b': metadata not updated\"]}");
	ctx = ctx_for(f.path);
	ck_assert_int_eq(vpm_vm_set_ratio(ctx, NULL, 2.0), 0);
	ck_assert_str_eq(vpm_warningmsg(),
			 "VM 'a': metadata not updated\nVM 'b': metadata not updated");
	/* a failed call does not leave the last one's warnings behind */
	ck_assert_int_eq(vpm_vm_set_ratio(ctx, NULL, 0.5), -EINVAL);
	vpm_unref(ctx);
	fake_stop(&f);
	ctx = ctx_for("/nonexistent/vpmd.sock");
	ck_assert_int_eq(vpm_vm_set_ratio(ctx, "kv1", 2.0), -ENOENT);
	ck_assert_ptr_null(vpm_warningmsg());
	vpm_unref(ctx);
}
END_TEST

START_TEST(test_vm_set_error)
{
	struct fake f;
	struct vpm_ctx *ctx;

	fake_start(&f, "{\"error\": {\"errno\": 28, \"name\": \"ENOSPC\", \"message\": \"ratio 1.5 "
		       "for 'kv1' needs 342 PM frames but pool 'test' has 200 free\"}}");
	ctx = ctx_for(f.path);
	ck_assert_int_eq(vpm_vm_set_ratio(ctx, "kv1", 1.5), -ENOSPC);
	ck_assert_str_eq(vpm_errormsg(),
			 "ratio 1.5 for 'kv1' needs 342 PM frames but pool 'test' has 200 free");
	vpm_unref(ctx);
	fake_stop(&f);
}
END_TEST

START_TEST(test_vm_list_summary)
{
	struct fake f;
	struct vpm_ctx *ctx;
	struct vpm_vm_list *l = NULL;
	struct vpm_vm *vm, *held;

	fake_start(&f, "{\"vms\": [{" SUMMARY "}, {\"name\": \"old\", \"mode\": \"epoch\", "
		       "\"pages\": 8, \"ratio\": 3}]}");
	ctx = ctx_for(f.path);
	ck_assert_int_eq(vpm_vm_list_get(ctx, &l), 0);
	vm = vpm_vm_get_first(l);
	ck_assert_str_eq(vpm_vm_get_name(vm), "kv1");
	ck_assert_str_eq(vpm_vm_get_backend(vm), "sim");
	ck_assert_str_eq(vpm_vm_get_policy(vm), "lru");
	ck_assert_int_eq(vpm_vm_get_priority(vm), 70);
	ck_assert(vpm_vm_get_ratio(vm) == 2.5);
	ck_assert_uint_eq(vpm_vm_get_pages(vm), 256);
	ck_assert_uint_eq(vpm_vm_get_dram_pages(vm), 100);
	ck_assert_uint_eq(vpm_vm_get_pm_pages(vm), 120);
	ck_assert_uint_eq(vpm_vm_get_image_pages(vm), 36);
	ck_assert_uint_eq(vpm_vm_get_pm_target(vm), 103);
	ck_assert_uint_eq(vpm_vm_get_dram_share(vm), 153);
	ck_assert(!vpm_vm_is_converged(vm));
	ck_assert_uint_eq(vpm_vm_get_migrating_pages(vm), 17);
	ck_assert_uint_eq(vpm_vm_get_epoch(vm), 900);
	ck_assert_uint_eq(vpm_vm_get_epochs(vm), 800);
	ck_assert_uint_eq(vpm_vm_get_dirty_pages(vm), 5000);
	ck_assert_uint_eq(vpm_vm_get_faults(vm), 300);
	ck_assert_uint_eq(vpm_vm_get_promotions(vm), 40);
	ck_assert_uint_eq(vpm_vm_get_demotions(vm), 60);
	ck_assert_uint_eq(vpm_vm_get_pause_usec_max(vm), 2500);
	ck_assert_uint_eq(vpm_vm_get_ops(vm), 123456);
	ck_assert_uint_eq(vpm_vm_get_page_table_bytes(vm), 2048);
	ck_assert_uint_eq(vpm_vm_get_stage_bytes(vm), 8192);
	/* a summary has no statistics and no device */
	ck_assert(!vpm_vm_has_stats(vm));
	ck_assert_uint_eq(vpm_vm_get_pause_usec_p50(vm), 0);
	ck_assert_uint_eq(vpm_vm_get_log_bytes(vm), 0);
	ck_assert_ptr_null(vpm_vm_get_device_pool(vm));
	ck_assert_int_eq(vpm_vm_get_device_index(vm), -1);
	ck_assert_ptr_nonnull(strstr(vpm_vm_get_json(vm, false), "\"pm_target\":103"));

	/* an integer ratio, missing fields */
	vm = vpm_vm_get_next(vm);
	ck_assert(vpm_vm_get_ratio(vm) == 3.0);
	ck_assert_int_eq(vpm_vm_get_priority(vm), -1);
	ck_assert_ptr_null(vpm_vm_get_policy(vm));
	ck_assert_ptr_null(vpm_vm_get_next(vm));

	/* a VM keeps its list alive */
	held = vpm_vm_ref(vpm_vm_get_first(l));
	l = vpm_vm_list_unref(l);
	ck_assert_str_eq(vpm_vm_get_name(held), "kv1");
	ck_assert_ptr_null(vpm_vm_unref(held));
	vpm_unref(ctx);
	fake_stop(&f);
}
END_TEST

/* ---- libvirt's view in the vms reply ---- */

/* libvirt's connection in a vms reply, up and down */
#define LIBVIRT_UP                                                                                 \
	"\"uri\": \"qemu:///system\", \"connected\": true, \"connects\": 1, \"reconnects\": 0, "   \
	"\"failed_attempts\": 0, \"last_error\": null, \"domains\": 5"
#define LIBVIRT_DOWN                                                                               \
	"\"uri\": \"qemu:///system\", \"connected\": false, \"connects\": 2, \"reconnects\": 1, "  \
	"\"failed_attempts\": 3, \"last_error\": \"Failed to connect socket to "                   \
	"'/run/libvirt/libvirt-sock': No such file or directory\", \"domains\": 0"

/* libvirt's VMs with PM: attached with a full policy; shut off with capacity reserved and no
 * policy; one with a problem, no state, and a policy with an integer ratio and no mode */
#define LIBVIRT_VMS                                                                                \
	"[{\"name\": \"shop\", \"uuid\": \"5b0ba3c2-86a1-4d3b-9c3e-000000000001\", \"state\": "    \
	"\"running\", \"pm_pages\": 8160, \"problem\": null, \"policy\": {\"ratio\": 2.5, "        \
	"\"mode\": \"epoch\", \"policy\": \"lru\", \"priority\": 80, \"epoch_interval_usec\": "    \
	"100000}, \"sim_guest_pid\": 4242, \"attached\": true, \"reserved\": false}, "             \
	"{\"name\": \"batch\", \"uuid\": \"5b0ba3c2-86a1-4d3b-9c3e-000000000002\", \"state\": "    \
	"\"shutoff\", \"pm_pages\": 12256, \"problem\": null, \"policy\": null, "                  \
	"\"sim_guest_pid\": null, \"attached\": false, \"reserved\": true}, "                      \
	"{\"name\": \"odd\", \"uuid\": \"5b0ba3c2-86a1-4d3b-9c3e-000000000003\", \"state\": "      \
	"null, \"pm_pages\": 0, \"problem\": \"nvdimm /var/lib/odd.img: no size\", \"policy\": "   \
	"{\"ratio\": 4, \"priority\": 10}, \"sim_guest_pid\": null, \"attached\": false, "         \
	"\"reserved\": false}]"

START_TEST(test_vm_list_libvirt)
{
	struct fake f;
	struct vpm_ctx *ctx;
	struct vpm_vm_list *l = NULL;
	struct vpm_vm *vm, *held;
	struct vpm_libvirt_vm *lvm;
	unsigned n = 0;

	fake_start(&f, "{\"vms\": [{\"name\": \"shop\", \"mode\": \"epoch\", \"pages\": 8160, "
		       "\"libvirt_state\": \"running\"}, {\"name\": \"kv1\", \"mode\": \"hint\", "
		       "\"libvirt_state\": null}, {\"name\": \"odd\", \"libvirt_state\": 7}], "
		       "\"libvirt\": {" LIBVIRT_UP ", \"vms\": " LIBVIRT_VMS "}}");
	ctx = ctx_for(f.path);
	ck_assert_int_eq(vpm_vm_list_get(ctx, &l), 0);

	/* each attached VM says its libvirt state; null or another type reads as NULL */
	vm = vpm_vm_get_first(l);
	ck_assert_str_eq(vpm_vm_get_libvirt_state(vm), "running");
	vm = vpm_vm_get_next(vm);
	ck_assert_str_eq(vpm_vm_get_name(vm), "kv1");
	ck_assert_ptr_null(vpm_vm_get_libvirt_state(vm));
	ck_assert_ptr_null(vpm_vm_get_libvirt_state(vpm_vm_get_next(vm)));

	/* the connection */
	ck_assert(vpm_vm_list_has_libvirt(l));
	ck_assert_str_eq(vpm_vm_list_get_libvirt_uri(l), "qemu:///system");
	ck_assert(vpm_vm_list_is_libvirt_connected(l));
	ck_assert_ptr_null(vpm_vm_list_get_libvirt_error(l));

	vpm_libvirt_vm_foreach(l, lvm)
	{
		n++;
	}
	ck_assert_uint_eq(n, 3);

	/* attached, with a full policy */
	lvm = vpm_libvirt_vm_get_first(l);
	ck_assert_str_eq(vpm_libvirt_vm_get_name(lvm), "shop");
	ck_assert_str_eq(vpm_libvirt_vm_get_uuid(lvm), "5b0ba3c2-86a1-4d3b-9c3e-000000000001");
	ck_assert_str_eq(vpm_libvirt_vm_get_state(lvm), "running");
	ck_assert_uint_eq(vpm_libvirt_vm_get_pm_pages(lvm), 8160);
	ck_assert_ptr_null(vpm_libvirt_vm_get_problem(lvm));
	ck_assert(vpm_libvirt_vm_is_attached(lvm));
	ck_assert(!vpm_libvirt_vm_is_reserved(lvm));
	ck_assert(vpm_libvirt_vm_get_policy_ratio(lvm) == 2.5);
	ck_assert_str_eq(vpm_libvirt_vm_get_policy_mode(lvm), "epoch");

	/* shut off with capacity reserved, no policy */
	lvm = vpm_libvirt_vm_get_next(lvm);
	ck_assert_str_eq(vpm_libvirt_vm_get_name(lvm), "batch");
	ck_assert_str_eq(vpm_libvirt_vm_get_state(lvm), "shutoff");
	ck_assert_uint_eq(vpm_libvirt_vm_get_pm_pages(lvm), 12256);
	ck_assert(!vpm_libvirt_vm_is_attached(lvm));
	ck_assert(vpm_libvirt_vm_is_reserved(lvm));
	ck_assert(vpm_libvirt_vm_get_policy_ratio(lvm) == 0);
	ck_assert_ptr_null(vpm_libvirt_vm_get_policy_mode(lvm));

	/* a problem, a null state, a policy with an integer ratio and no mode */
	lvm = vpm_libvirt_vm_get_next(lvm);
	ck_assert_str_eq(vpm_libvirt_vm_get_name(lvm), "odd");
	ck_assert_ptr_null(vpm_libvirt_vm_get_state(lvm));
	ck_assert_uint_eq(vpm_libvirt_vm_get_pm_pages(lvm), 0);
	ck_assert_str_eq(vpm_libvirt_vm_get_problem(lvm), "nvdimm /var/lib/odd.img: no size");
	ck_assert(!vpm_libvirt_vm_is_attached(lvm));
	ck_assert(!vpm_libvirt_vm_is_reserved(lvm));
	ck_assert(vpm_libvirt_vm_get_policy_ratio(lvm) == 4.0);
	ck_assert_ptr_null(vpm_libvirt_vm_get_policy_mode(lvm));
	ck_assert_ptr_null(vpm_libvirt_vm_get_next(lvm));

	/* the libvirt VMs belong to the list: a reference to the list or one of its VMs keeps
	 * them valid */
	lvm = vpm_libvirt_vm_get_first(l);
	ck_assert_ptr_eq(vpm_vm_list_ref(l), l);
	ck_assert_ptr_null(vpm_vm_list_unref(l));
	ck_assert_str_eq(vpm_libvirt_vm_get_name(lvm), "shop");
	held = vpm_vm_ref(vpm_vm_get_first(l));
	l = vpm_vm_list_unref(l);
	ck_assert_str_eq(vpm_libvirt_vm_get_name(lvm), "shop");
	ck_assert_str_eq(vpm_libvirt_vm_get_name(vpm_libvirt_vm_get_next(lvm)), "batch");
	ck_assert_str_eq(vpm_vm_get_libvirt_state(held), "running");
	ck_assert_ptr_null(vpm_vm_unref(held));
	vpm_unref(ctx);
	fake_stop(&f);
}
END_TEST

START_TEST(test_vm_list_libvirt_disconnected)
{
	struct fake f;
	struct vpm_ctx *ctx;
	struct vpm_vm_list *l = NULL;

	/* no VM attached, libvirt not reachable, no libvirt VM known */
	fake_start(&f, "{\"vms\": [], \"libvirt\": {" LIBVIRT_DOWN ", \"vms\": []}}");
	ctx = ctx_for(f.path);
	ck_assert_int_eq(vpm_vm_list_get(ctx, &l), 0);
	ck_assert_ptr_null(vpm_vm_get_first(l));
	ck_assert(vpm_vm_list_has_libvirt(l));
	ck_assert_str_eq(vpm_vm_list_get_libvirt_uri(l), "qemu:///system");
	ck_assert(!vpm_vm_list_is_libvirt_connected(l));
	ck_assert_str_eq(vpm_vm_list_get_libvirt_error(l),
			 "Failed to connect socket to '/run/libvirt/libvirt-sock': No such file "
			 "or directory");
	ck_assert_ptr_null(vpm_libvirt_vm_get_first(l));
	l = vpm_vm_list_unref(l);

	/* a libvirt member without VMs or with fields of other types */
	f.reply = "{\"vms\": [], \"libvirt\": {\"uri\": 5, \"connected\": \"yes\", "
		  "\"last_error\": false, \"vms\": {}}}";
	ck_assert_int_eq(vpm_vm_list_get(ctx, &l), 0);
	ck_assert(vpm_vm_list_has_libvirt(l));
	ck_assert_ptr_null(vpm_vm_list_get_libvirt_uri(l));
	ck_assert(!vpm_vm_list_is_libvirt_connected(l));
	ck_assert_ptr_null(vpm_vm_list_get_libvirt_error(l));
	ck_assert_ptr_null(vpm_libvirt_vm_get_first(l));
	l = vpm_vm_list_unref(l);
	vpm_unref(ctx);
	fake_stop(&f);
}
END_TEST

START_TEST(test_vm_list_without_libvirt)
{
	static const char *const replies[] = {
	    /* vpmd serves no libvirt VMs */
	    "{\"vms\": [{\"name\": \"kv1\", \"mode\": \"epoch\", \"libvirt_state\": null}], "
	    "\"libvirt\": null}",
	    /* an older vpmd: neither member */
	    "{\"vms\": [{\"name\": \"kv1\", \"mode\": \"epoch\"}]}",
	    /* a libvirt member that is no object */
	    "{\"vms\": [{\"name\": \"kv1\", \"mode\": \"epoch\"}], \"libvirt\": [{\"name\": "
	    "\"x\"}]}",
	};
	struct fake f;
	struct vpm_ctx *ctx;

	for (size_t i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
		struct vpm_vm_list *l = NULL;
		struct vpm_vm *vm;

		fake_start(&f, replies[i]);
		ctx = ctx_for(f.path);
		ck_assert_int_eq(vpm_vm_list_get(ctx, &l), 0);
		vm = vpm_vm_get_first(l);
		ck_assert_str_eq(vpm_vm_get_name(vm), "kv1");
		ck_assert_ptr_null(vpm_vm_get_libvirt_state(vm));
		ck_assert(!vpm_vm_list_has_libvirt(l));
		ck_assert_ptr_null(vpm_vm_list_get_libvirt_uri(l));
		ck_assert(!vpm_vm_list_is_libvirt_connected(l));
		ck_assert_ptr_null(vpm_vm_list_get_libvirt_error(l));
		ck_assert_ptr_null(vpm_libvirt_vm_get_first(l));
		vpm_vm_list_unref(l);
		vpm_unref(ctx);
		fake_stop(&f);
	}
}
END_TEST

START_TEST(test_vm_show)
{
	struct fake f;
	struct vpm_ctx *ctx;
	struct vpm_vm *vm = NULL;
	struct json_object *p, *v;

	fake_start(&f, "{\"vm\": {" SUMMARY ", \"stats\": " STATS ", \"epoch_interval_usec\": "
		       "20000, \"device\": {\"pool\": \"test\", \"index\": 0, \"image\": "
		       "\"/var/lib/vpmd/images/kv1.img\"}}}");
	ctx = ctx_for(f.path);
	ck_assert_int_eq(vpm_vm_show(ctx, "kv1", &vm), 0);
	p = fake_params(&f, "vm-show");
	ck_assert_int_eq(json_object_object_length(p), 1);
	ck_assert(json_object_object_get_ex(p, "name", &v));
	ck_assert_str_eq(json_object_get_string(v), "kv1");
	json_object_put(p);

	ck_assert_str_eq(vpm_vm_get_name(vm), "kv1");
	ck_assert_ptr_null(vpm_vm_get_next(vm));
	ck_assert(vpm_vm_has_stats(vm));
	/* the summary's own fields win over the statistics' */
	ck_assert_uint_eq(vpm_vm_get_dram_pages(vm), 100);
	ck_assert_uint_eq(vpm_vm_get_pause_usec_max(vm), 2500);
	ck_assert_uint_eq(vpm_vm_get_pause_usec_p50(vm), 45);
	ck_assert_uint_eq(vpm_vm_get_pause_usec_p99(vm), 900);
	ck_assert_uint_eq(vpm_vm_get_pause_samples(vm), 801);
	ck_assert_uint_eq(vpm_vm_get_dirty_pages_last_epoch(vm), 7);
	ck_assert(vpm_vm_get_dirty_pages_per_epoch(vm) == 6.25);
	ck_assert_uint_eq(vpm_vm_get_log_bytes(vm), 1000000);
	ck_assert_uint_eq(vpm_vm_get_pm_bytes_written(vm), 3000000);
	ck_assert_uint_eq(vpm_vm_get_migrated_bytes(vm), 417792);
	ck_assert(vpm_vm_get_modeled_ops_per_sec(vm) == 5000.5);
	ck_assert(vpm_vm_get_wall_ops_per_sec(vm) == 4000.0);
	ck_assert_uint_eq(vpm_vm_get_loss_window_usec(vm), 21000);
	ck_assert_uint_eq(vpm_vm_get_hints_persist(vm), 3);
	ck_assert_uint_eq(vpm_vm_get_hints_discard(vm), 4);
	ck_assert_uint_eq(vpm_vm_get_epoch_interval_usec(vm), 20000);
	ck_assert_str_eq(vpm_vm_get_device_pool(vm), "test");
	ck_assert_int_eq(vpm_vm_get_device_index(vm), 0);
	ck_assert_str_eq(vpm_vm_get_device_image(vm), "/var/lib/vpmd/images/kv1.img");
	ck_assert_ptr_nonnull(strstr(vpm_vm_get_json(vm, false), "\"epoch_interval_usec\":20000"));
	vm = vpm_vm_unref(vm);
	vpm_unref(ctx);
	fake_stop(&f);
}
END_TEST

START_TEST(test_vm_show_unknown)
{
	struct fake f;
	struct vpm_ctx *ctx;
	struct vpm_vm *vm = NULL;

	fake_start(&f, "{\"error\": {\"errno\": 2, \"name\": \"ENOENT\", \"message\": \"no VM "
		       "named 'x'; see 'vpmctl list'\"}}");
	ctx = ctx_for(f.path);
	ck_assert_int_eq(vpm_vm_show(ctx, "x", &vm), -ENOENT);
	ck_assert_ptr_null(vm);
	ck_assert_str_eq(vpm_errormsg(), "no VM named 'x'; see 'vpmctl list'");
	vpm_unref(ctx);
	fake_stop(&f);

	/* a reply without the VM is vpmd's fault */
	fake_start(&f, "{}");
	ctx = ctx_for(f.path);
	ck_assert_int_eq(vpm_vm_show(ctx, "x", &vm), -EPROTO);
	vpm_unref(ctx);
	fake_stop(&f);
}
END_TEST

START_TEST(test_stats)
{
	struct fake f;
	struct vpm_ctx *ctx;
	struct vpm_stats *s = NULL;
	struct vpm_vm *vm, *held;
	struct json_object *p, *v;
	unsigned n = 0;

	fake_start(&f, "{\"vms\": [{\"name\": \"kv1\", \"mode\": \"epoch\", \"ratio\": 2.5, "
		       "\"stats\": " STATS "}, {\"name\": \"log1\", \"mode\": \"hint\", "
		       "\"ratio\": 1, \"stats\": {}}], \"totals\": {\"dram_budget_pages\": 262144, "
		       "\"dram_used_pages\": 101, \"pm_frames_total\": 4000, \"pm_frames_free\": "
		       "3000, \"log_bytes\": 1000000, \"pm_bytes_written\": 3000000, "
		       "\"migrations\": 102}}");
	ctx = ctx_for(f.path);

	ck_assert_int_eq(vpm_stats_get(ctx, NULL, &s), 0);
	p = fake_params(&f, "stats");
	ck_assert_int_eq(json_object_object_length(p), 0);
	json_object_put(p);
	ck_assert_uint_eq(vpm_stats_get_dram_budget_pages(s), 262144);
	ck_assert_uint_eq(vpm_stats_get_dram_used_pages(s), 101);
	ck_assert_uint_eq(vpm_stats_get_pm_frames_total(s), 4000);
	ck_assert_uint_eq(vpm_stats_get_pm_frames_free(s), 3000);
	ck_assert_uint_eq(vpm_stats_get_log_bytes(s), 1000000);
	ck_assert_uint_eq(vpm_stats_get_pm_bytes_written(s), 3000000);
	ck_assert_uint_eq(vpm_stats_get_migrations(s), 102);
	vpm_stats_foreach_vm(s, vm)
		n++;
	ck_assert_uint_eq(n, 2);

	/* entries: name, mode and ratio, the rest from their statistics */
	vm = vpm_stats_get_first_vm(s);
	ck_assert_str_eq(vpm_vm_get_name(vm), "kv1");
	ck_assert_str_eq(vpm_vm_get_mode(vm), "epoch");
	ck_assert(vpm_vm_get_ratio(vm) == 2.5);
	ck_assert(vpm_vm_has_stats(vm));
	ck_assert_uint_eq(vpm_vm_get_dram_pages(vm), 101);
	ck_assert_uint_eq(vpm_vm_get_pm_pages(vm), 119);
	ck_assert_uint_eq(vpm_vm_get_image_pages(vm), 36);
	ck_assert_uint_eq(vpm_vm_get_epochs(vm), 801);
	ck_assert_uint_eq(vpm_vm_get_ops(vm), 123457);
	ck_assert_uint_eq(vpm_vm_get_faults(vm), 301);
	ck_assert_uint_eq(vpm_vm_get_promotions(vm), 41);
	ck_assert_uint_eq(vpm_vm_get_demotions(vm), 61);
	ck_assert_uint_eq(vpm_vm_get_pause_usec_max(vm), 2501);
	ck_assert_uint_eq(vpm_vm_get_pause_usec_p99(vm), 900);
	ck_assert_uint_eq(vpm_vm_get_pm_target(vm), 0);
	ck_assert_int_eq(vpm_vm_get_priority(vm), -1);
	vm = vpm_vm_get_next(vm);
	ck_assert_str_eq(vpm_vm_get_name(vm), "log1");
	ck_assert(vpm_vm_get_ratio(vm) == 1.0);
	ck_assert_uint_eq(vpm_vm_get_loss_window_usec(vm), 0);

	/* an entry outlives its stats object */
	held = vpm_vm_ref(vm);
	s = vpm_stats_unref(s);
	ck_assert_str_eq(vpm_vm_get_mode(held), "hint");
	vpm_vm_unref(held);

	/* one VM by name */
	ck_assert_int_eq(vpm_stats_get(ctx, "kv1", &s), 0);
	p = fake_params(&f, "stats");
	ck_assert(json_object_object_get_ex(p, "name", &v));
	ck_assert_str_eq(json_object_get_string(v), "kv1");
	json_object_put(p);
	ck_assert_ptr_nonnull(strstr(vpm_stats_get_json(s, false), "\"totals\""));
	vpm_stats_unref(s);
	vpm_unref(ctx);
	fake_stop(&f);
}
END_TEST

/* ---- the libvirt hook ---- */

START_TEST(test_hook_refuses_bad_arguments)
{
	struct vpm_ctx *ctx = ctx_for("/nonexistent/vpmd.sock");
	char *action = (char *)"stale", *message = (char *)"stale";

	ck_assert_int_eq(
	    vpm_hook_run(ctx, NULL, "prepare", "begin", "<domain/>", &action, &message), -EINVAL);
	/* the out-parameters are cleared before anything can fail */
	ck_assert_ptr_null(action);
	ck_assert_ptr_null(message);
	ck_assert_int_eq(vpm_hook_run(ctx, "shop", NULL, "begin", "<domain/>", NULL, NULL),
			 -EINVAL);
	ck_assert_int_eq(vpm_hook_run(ctx, "shop", "prepare", NULL, "<domain/>", NULL, NULL),
			 -EINVAL);
	ck_assert_int_eq(vpm_hook_run(ctx, "shop", "prepare", "begin", NULL, NULL, NULL), -EINVAL);
	ck_assert_ptr_nonnull(strstr(vpm_errormsg(), "xml is NULL"));
	ck_assert_int_eq(vpm_hook_run(ctx, "", "prepare", "begin", "<domain/>", NULL, NULL),
			 -EINVAL);
	ck_assert_ptr_nonnull(strstr(vpm_errormsg(), "empty"));
	ck_assert_int_eq(vpm_hook_run(ctx, "shop", "", "begin", "<domain/>", NULL, NULL), -EINVAL);
	ck_assert_int_eq(vpm_hook_run(NULL, "shop", "prepare", "begin", "<domain/>", NULL, NULL),
			 -EINVAL);
	/* good arguments get as far as connecting */
	ck_assert_int_eq(vpm_hook_run(ctx, "shop", "prepare", "begin", "<domain/>", NULL, NULL),
			 -ENOENT);
	vpm_unref(ctx);
}
END_TEST

/* A domain XML of some size with what JSON must escape: quotes, line breaks, tabs, UTF-8. */
static char *hook_xml(void)
{
	size_t len = 0;
	char *xml = NULL;
	FILE *f = open_memstream(&xml, &len);

	ck_assert_ptr_nonnull(f);
	fprintf(f, "<domain type='kvm' id='5'>\n  <name>shop</name>\n  <description>caf\xc3\xa9 "
		   "\\ \"db\"\t</description>\n  <metadata>\n    <vpm:policy "
		   "xmlns:vpm=\"https://vpm.dev/xmlns/libvirt-domain/1.0\" ratio=\"2\" "
		   "mode=\"epoch\"/>\n  </metadata>\n  <devices>\n");
	for (int i = 0; i < 100; i++)
		fprintf(f, "    <controller type='pci' index='%d' model='pcie-root-port'/>\n", i);
	fprintf(f, "  </devices>\n</domain>\n");
	ck_assert_int_eq(fclose(f), 0);
	return xml;
}

START_TEST(test_hook_request_and_reply)
{
	struct fake f;
	struct vpm_ctx *ctx;
	struct json_object *p, *v;
	char *xml = hook_xml(), *action = NULL, *message = NULL;

	fake_start(&f, "{\"action\": \"reserved\", \"message\": \"VM 'shop': 8208 PM frames "
		       "reserved in pool 'pm0'\"}");
	ctx = ctx_for(f.path);
	ck_assert_int_eq(vpm_hook_run(ctx, "shop", "prepare", "begin", xml, &action, &message), 0);
	ck_assert_str_eq(action, "reserved");
	ck_assert_str_eq(message, "VM 'shop': 8208 PM frames reserved in pool 'pm0'");
	free(action);
	free(message);

	/* the request: method "hook" and exactly these params, the XML byte for byte */
	p = fake_params(&f, "hook");
	ck_assert_int_eq(json_object_object_length(p), 4);
	ck_assert(json_object_object_get_ex(p, "domain", &v));
	ck_assert_str_eq(json_object_get_string(v), "shop");
	ck_assert(json_object_object_get_ex(p, "op", &v));
	ck_assert_str_eq(json_object_get_string(v), "prepare");
	ck_assert(json_object_object_get_ex(p, "subop", &v));
	ck_assert_str_eq(json_object_get_string(v), "begin");
	ck_assert(json_object_object_get_ex(p, "xml", &v));
	ck_assert(json_object_is_type(v, json_type_string));
	ck_assert_str_eq(json_object_get_string(v), xml);
	json_object_put(p);

	/* the out-parameters are optional */
	ck_assert_int_eq(vpm_hook_run(ctx, "shop", "started", "begin", xml, NULL, NULL), 0);
	p = fake_params(&f, "hook");
	ck_assert(json_object_object_get_ex(p, "op", &v));
	ck_assert_str_eq(json_object_get_string(v), "started");
	json_object_put(p);
	ck_assert_int_eq(f.requests, 2);
	vpm_unref(ctx);
	fake_stop(&f);

	/* a reply without a message */
	fake_start(&f, "{\"action\": \"none\"}");
	ctx = ctx_for(f.path);
	ck_assert_int_eq(vpm_hook_run(ctx, "web", "release", "end", "", &action, &message), 0);
	ck_assert_str_eq(action, "none");
	ck_assert_ptr_null(message);
	free(action);
	vpm_unref(ctx);
	fake_stop(&f);
	free(xml);
}
END_TEST

START_TEST(test_hook_refused)
{
	struct fake f;
	struct vpm_ctx *ctx;
	char *action = NULL, *message = NULL;

	fake_start(&f, "{\"error\": {\"errno\": 28, \"name\": \"ENOSPC\", \"message\": \"VM "
		       "'shop' does not fit: needs 16384 PM frames, 2000 free in pool 'pm0'; free "
		       "frames or lower its ratio\"}}");
	ctx = ctx_for(f.path);
	ck_assert_int_eq(
	    vpm_hook_run(ctx, "shop", "prepare", "begin", "<domain/>", &action, &message), -ENOSPC);
	ck_assert_str_eq(vpm_errormsg(), "VM 'shop' does not fit: needs 16384 PM frames, 2000 "
					 "free in pool 'pm0'; free frames or lower its ratio");
	ck_assert_ptr_null(action);
	ck_assert_ptr_null(message);
	vpm_unref(ctx);
	fake_stop(&f);

	/* root only */
	fake_start(&f, "{\"error\": {\"errno\": 1, \"name\": \"EPERM\", \"message\": "
		       "\"'hook' needs root\"}}");
	ctx = ctx_for(f.path);
	ck_assert_int_eq(vpm_hook_run(ctx, "shop", "stopped", "end", "<domain/>", NULL, NULL),
			 -EPERM);
	vpm_unref(ctx);
	fake_stop(&f);

	/* a result without an action is vpmd's fault */
	fake_start(&f, "{\"message\": \"done\"}");
	ctx = ctx_for(f.path);
	ck_assert_int_eq(
	    vpm_hook_run(ctx, "shop", "started", "begin", "<domain/>", &action, &message), -EPROTO);
	ck_assert_ptr_nonnull(strstr(vpm_errormsg(), "action"));
	ck_assert_ptr_null(action);
	ck_assert_ptr_null(message);
	vpm_unref(ctx);
	fake_stop(&f);
}
END_TEST

static Suite *libvpm_suite(void)
{
	Suite *s = suite_create("libvpm");
	TCase *tc = tcase_create("vms");

	tcase_add_test(tc, test_set_refuses_bad_values);
	tcase_add_test(tc, test_show_and_stats_refuse_bad_arguments);
	tcase_add_test(tc, test_null_objects);
	tcase_add_test(tc, test_vm_set_requests);
	tcase_add_test(tc, test_vm_set_error);
	tcase_add_test(tc, test_vm_set_warnings);
	tcase_add_test(tc, test_vm_list_summary);
	tcase_add_test(tc, test_vm_list_libvirt);
	tcase_add_test(tc, test_vm_list_libvirt_disconnected);
	tcase_add_test(tc, test_vm_list_without_libvirt);
	tcase_add_test(tc, test_vm_show);
	tcase_add_test(tc, test_vm_show_unknown);
	tcase_add_test(tc, test_stats);
	suite_add_tcase(s, tc);

	tc = tcase_create("hook");
	tcase_add_test(tc, test_hook_refuses_bad_arguments);
	tcase_add_test(tc, test_hook_request_and_reply);
	tcase_add_test(tc, test_hook_refused);
	suite_add_tcase(s, tc);
	return s;
}

VPM_CHECK_MAIN(libvpm_suite)
