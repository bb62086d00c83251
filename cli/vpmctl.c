// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * vpmctl: the command-line client of vpmd, built only on libvpm.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <ini.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "domain-xml.h"
#include "macro.h"
#include "parse-util.h"
#include "vpm/libvpm.h"

/* vpmd's configuration file, which the hook command reads; cli/CMakeLists.txt sets it. */
#ifndef VPMD_DEFAULT_CONFIG
#define VPMD_DEFAULT_CONFIG "/etc/vpm/vpmd.conf"
#endif
#define VPM_CONFIG_ENV "VPM_CONFIG"

/* Exit codes; documented in vpmctl(8). */
enum {
	EXIT_OK = 0,
	EXIT_FAILED = 1,      /* vpmd refused or failed the request */
	EXIT_USAGE = 2,       /* bad command line */
	EXIT_UNREACHABLE = 3, /* vpmd not running, not answering, or connection lost */
	EXIT_DENIED = 4,      /* vpmd refused this user */
	EXIT_PROTOCOL = 5,    /* vpmd speaks another protocol version or sent garbage (EPROTO) */
};

struct args {
	const char *socket;
	const char *config; /* --config: vpmd.conf for the hook command */
	bool json;
	const struct command *cmd;
	int argc;
	char **argv;
};

struct command {
	const char *name;
	int (*run)(const struct args *a);
	int max_args;
	const char *usage;
	const char *summary;
};

DEFINE_TRIVIAL_CLEANUP_FUNC(struct vpm_ctx *, vpm_unref);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct vpm_status *, vpm_status_unref);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct vpm_pool_list *, vpm_pool_list_unref);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct vpm_vm_list *, vpm_vm_list_unref);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct vpm_vm *, vpm_vm_unref);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct vpm_stats *, vpm_stats_unref);

/* Exit code for a failed request on a connection that was established (see open_ctx). */
static int exit_code_for(int r)
{
	switch (-r) {
	case ECONNRESET:
	case EPIPE:
	case ETIMEDOUT:
		return EXIT_UNREACHABLE;
	case EACCES:
	case EPERM:
		return EXIT_DENIED;
	case EPROTO:
		return EXIT_PROTOCOL;
	default:
		return EXIT_FAILED;
	}
}

static int fail(int r)
{
	fprintf(stderr, "vpmctl: %s\n", vpm_errormsg());
	return exit_code_for(r);
}

/* A context that is already connected, so that "not running" is told apart from request errors. */
static int open_ctx(const struct args *a, struct vpm_ctx **ret)
{
	_cleanup_(vpm_unrefp) struct vpm_ctx *ctx = NULL;
	int r;

	r = vpm_new(a->socket, &ctx);
	if (r < 0)
		return fail(r);
	r = vpm_connect(ctx);
	if (r < 0) {
		fprintf(stderr, "vpmctl: %s\n", vpm_errormsg());
		return r == -EACCES || r == -EPERM ? EXIT_DENIED : EXIT_UNREACHABLE;
	}
	*ret = TAKE_PTR(ctx);
	return EXIT_OK;
}


static void print_json_string(const char *s, size_t len)
{
	putchar('"');
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

/* ---- status ---- */

static void print_status(const struct vpm_status *s)
{
	char b1[64], b2[64];
	const char *reload_error = vpm_status_get_last_reload_error(s);
	unsigned emulated = vpm_status_get_emulated_pool_count(s);

	printf("vpmd %s (pid %d), up %s, protocol %d\n", vpm_status_get_version(s),
	       (int)vpm_status_get_pid(s),
	       format_duration(b1, sizeof(b1), vpm_status_get_uptime_usec(s)),
	       vpm_status_get_protocol(s));
	printf("  %-14s %s\n", "config:", vpm_status_get_config_file(s));
	printf("  %-14s %s\n", "state dir:", vpm_status_get_state_dir(s));
	printf("  %-14s %s%s\n", "socket:", vpm_status_get_socket(s),
	       vpm_status_is_socket_activated(s) ? " (socket-activated)" : "");
	printf("  %-14s %s\n", "backend:", vpm_status_get_backend(s));
	printf("  %-14s %s\n", "libvirt:", vpm_status_get_libvirt_uri(s));
	printf("  %-14s %u (%s)", "pools:", vpm_status_get_pool_count(s),
	       format_bytes(b1, sizeof(b1), vpm_status_get_pool_size(s)));
	if (emulated)
		printf(", %u emulated: NOT persistent across host crashes", emulated);
	printf("\n");
	printf("  %-14s %s\n", "DRAM budget:", format_bytes(b1, sizeof(b1), vpm_status_get_dram_budget(s)));
	printf("  %-14s %s\n", "epoch:",
	       format_duration(b2, sizeof(b2), vpm_status_get_epoch_interval_usec(s)));
	printf("  %-14s %u connected, %" PRIu64 " requests served\n", "clients:",
	       vpm_status_get_clients(s), vpm_status_get_requests(s));
	printf("  %-14s %s, %s of committed log replayed\n", "recovery:",
	       format_duration(b1, sizeof(b1), vpm_status_get_recovery_usec(s)),
	       format_bytes(b2, sizeof(b2), vpm_status_get_recovery_replayed_bytes(s)));
	printf("  %-14s %u%s%s\n", "reloads:", vpm_status_get_reloads(s),
	       reload_error ? ", last one FAILED: " : "", reload_error ? reload_error : "");
}

static int cmd_status(const struct args *a)
{
	_cleanup_(vpm_unrefp) struct vpm_ctx *ctx = NULL;
	_cleanup_(vpm_status_unrefp) struct vpm_status *s = NULL;
	int r;

	r = open_ctx(a, &ctx);
	if (r != EXIT_OK)
		return r;
	r = vpm_status_get(ctx, &s);
	if (r < 0)
		return fail(r);
	if (a->json)
		printf("%s\n", vpm_status_get_json(s, true));
	else
		print_status(s);
	return EXIT_OK;
}

/* ---- pools ---- */

static void print_pools(struct vpm_pool_list *l)
{
	struct vpm_pool *p;
	struct vpm_region *rg;
	struct vpm_namespace *ns;
	bool any_emulated = false;
	char b1[32], b2[32];

	bool any_unformatted = false;

	if (!vpm_pool_get_first(l))
		printf("No pools configured: add a [pool NAME] section to vpmd.conf.\n");
	else
		printf("%-16s %-9s %10s  %-11s %-10s %-11s %7s %9s %5s  %s\n", "POOL", "KIND",
		       "SIZE", "GRANULARITY", "PERSISTENT", "FORMAT", "DEVICES", "FREE", "LOG",
		       "PATH");
	vpm_pool_foreach(l, p)
	{
		bool persistent = vpm_pool_is_persistent(p), formatted = vpm_pool_is_formatted(p);
		char devs[16] = "-", free_frames[32] = "-", log_use[16] = "-";

		any_emulated |= !persistent;
		any_unformatted |= !formatted;
		if (formatted) {
			snprintf(devs, sizeof(devs), "%u", vpm_pool_get_device_count(p));
			format_bytes(free_frames, sizeof(free_frames),
				     vpm_pool_get_frames_free(p) * 4096);
			/* how full the redo log is: near 100% commits wait for checkpoints */
			snprintf(log_use, sizeof(log_use), "%u%%",
				 (unsigned)(vpm_pool_get_log_used(p) * 100 /
					    MAX(vpm_pool_get_log_size(p), (uint64_t)1)));
		}
		printf("%-16s %-9s %10s  %-11s %-10s %-11s %7s %9s %5s  %s\n", vpm_pool_get_name(p),
		       vpm_pool_kind_to_string(vpm_pool_get_kind(p)),
		       format_bytes(b1, sizeof(b1), vpm_pool_get_size(p)),
		       vpm_pool_get_store_granularity(p), persistent ? "yes" : "NO *",
		       formatted ? "vpm" : "unformatted", devs, free_frames, log_use,
		       vpm_pool_get_path(p));
	}
	if (any_emulated)
		printf("* emulated PM: data survives a vpmd crash, but not a host crash or power "
		       "loss.\n");
	if (any_unformatted)
		printf("Format a pool with 'vpmd --init-pool NAME' while vpmd is stopped.\n");

	printf("\nHost persistent memory (libndctl):\n");
	if (vpm_pool_list_get_host_error(l)) {
		printf("  unknown: %s\n", vpm_pool_list_get_host_error(l));
		return;
	}
	if (!vpm_region_get_first(l)) {
		printf("  none: this host has no NVDIMM regions.\n");
		return;
	}
	printf("  %-10s %-5s %10s %10s  %-15s %-7s %10s  %s\n", "REGION", "TYPE", "SIZE", "FREE",
	       "NAMESPACE", "MODE", "SIZE", "DEVICE");
	vpm_region_foreach(l, rg)
	{
		bool first = true;

		printf("  %-10s %-5s %10s %10s", vpm_region_get_name(rg), vpm_region_get_type(rg),
		       format_bytes(b1, sizeof(b1), vpm_region_get_size(rg)),
		       format_bytes(b2, sizeof(b2), vpm_region_get_available_size(rg)));
		vpm_namespace_foreach(rg, ns)
		{
			const char *dev = vpm_namespace_get_device(ns);

			if (!first)
				printf("  %-10s %-5s %10s %10s", "", "", "", "");
			printf("  %-15s %-7s %10s  %s\n", vpm_namespace_get_name(ns),
			       vpm_namespace_get_mode(ns),
			       format_bytes(b1, sizeof(b1), vpm_namespace_get_size(ns)),
			       dev ? dev : "-");
			first = false;
		}
		if (first)
			printf("  (no namespaces)\n");
	}
}

static int cmd_pools(const struct args *a)
{
	_cleanup_(vpm_unrefp) struct vpm_ctx *ctx = NULL;
	_cleanup_(vpm_pool_list_unrefp) struct vpm_pool_list *l = NULL;
	int r;

	r = open_ctx(a, &ctx);
	if (r != EXIT_OK)
		return r;
	r = vpm_pool_list_get(ctx, &l);
	if (r < 0)
		return fail(r);
	if (a->json)
		printf("%s\n", vpm_pool_list_get_json(l, true));
	else
		print_pools(l);
	return EXIT_OK;
}

/* ---- helpers for the VM commands ---- */

/* "2", "1.5": as "%g" does, or "-" when vpmd did not report it. */
static const char *format_ratio(char *buf, size_t len, double ratio)
{
	if (ratio <= 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%g", ratio);
	return buf;
}

static struct vpm_vm *find_vm(struct vpm_vm_list *l, const char *name)
{
	struct vpm_vm *vm;

	vpm_vm_foreach(l, vm)
		if (streq_ptr(vpm_vm_get_name(vm), name))
			return vm;
	return NULL;
}

/*
 * Whether the VM's placement meets its ratio. A VM in native mode has no epoch boundaries to
 * say so: switching to native moves all its pages to PM at once, and nothing moves later.
 */
static bool vm_settled(const struct vpm_vm *vm)
{
	if (vpm_vm_get_migrating_pages(vm))
		return false;
	return vpm_vm_is_converged(vm) || streq_ptr(vpm_vm_get_mode(vm), "native");
}

/* Print a usage error for the running command and return EXIT_USAGE. */
static int usage_error(const struct args *a, const char *fmt, ...) _printf_(2, 3);
static int usage_error(const struct args *a, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "vpmctl: %s: ", a->cmd->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, ". Usage: vpmctl %s\n", a->cmd->usage);
	return EXIT_USAGE;
}

/* "-1", "-0.5", "-inf": an operand with a bad value, not an option. */
static bool looks_numeric(const char *s)
{
	if (*s == '-' || *s == '+')
		s++;
	return isdigit((unsigned char)*s) || *s == '.' || strncasecmp(s, "inf", 3) == 0 ||
	       strncasecmp(s, "nan", 3) == 0;
}

static bool is_option(const char *s)
{
	return s[0] == '-' && s[1] != '\0' && !looks_numeric(s);
}

/*
 * A ratio argument: any decimal number, so that "0.5", "nan" or "1e9" get the range error
 * (status 1) like vpmd's; -EINVAL for text that is no number at all.
 */
static int parse_ratio_arg(const char *s, double *ret)
{
	char *end = NULL;

	if (parse_ratio(s, ret) == 0)
		return 0;
	if (!*s || isspace((unsigned char)*s) || strpbrk(s, "xX"))
		return -EINVAL;
	*ret = strtod(s, &end); /* inf for 1e999: out of range, as it should be */
	return *end == '\0' ? 0 : -EINVAL;
}

/* An integer argument; values beyond int saturate (they are out of any range anyway). */
static int parse_int_arg(const char *s, int *ret)
{
	char *end = NULL;
	long v;

	if (!*s || isspace((unsigned char)*s))
		return -EINVAL;
	v = strtol(s, &end, 10);
	if (*end != '\0')
		return -EINVAL;
	*ret = v > INT_MAX ? INT_MAX : v < INT_MIN ? INT_MIN : (int)v;
	return 0;
}

/* Seconds: "2", "0.5", or a duration with a unit: "500ms", "2min". */
static int parse_seconds(const char *s, uint64_t *ret_usec)
{
	if (*s && strspn(s, "0123456789.") == strlen(s)) {
		char *end = NULL;
		double v;

		errno = 0;
		v = strtod(s, &end);
		if (errno || *end != '\0' || !isfinite(v) || v > 1e9)
			return -EINVAL;
		*ret_usec = (uint64_t)(v * 1e6 + 0.5);
		return 0;
	}
	return parse_duration(s, ret_usec) < 0 ? -EINVAL : 0;
}

/* Once caught, SIGINT and SIGTERM stay blocked except in pause_usec(), which they end. */
static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig)
{
	stop_signal = sig;
}

static sigset_t catch_stop_signals(void)
{
	struct sigaction sa = { .sa_handler = on_stop_signal };
	sigset_t mask, old;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigprocmask(SIG_BLOCK, &mask, &old);
	sigdelset(&old, SIGINT);
	sigdelset(&old, SIGTERM);
	return old;
}

/* Sleep usec, or less when a stop signal comes; true when one came. */
static bool pause_usec(uint64_t usec, const sigset_t *unblocked)
{
	uint64_t end = now_usec(CLOCK_MONOTONIC) + usec;

	while (!stop_signal) {
		uint64_t now = now_usec(CLOCK_MONOTONIC);
		struct timespec ts;

		if (now >= end)
			break;
		ts.tv_sec = (time_t)((end - now) / USEC_PER_SEC);
		ts.tv_nsec = (long)((end - now) % USEC_PER_SEC * NSEC_PER_USEC);
		ppoll(NULL, 0, &ts, unblocked);
	}
	return stop_signal != 0;
}

/* ---- list ---- */

static const char *or_dash(const char *s)
{
	return s ? s : "-";
}

/* libvirt VMs worth a line under the table: those not attached and those with a problem. */
static bool libvirt_vm_listed(const struct vpm_libvirt_vm *lvm)
{
	return !vpm_libvirt_vm_is_attached(lvm) || vpm_libvirt_vm_get_problem(lvm);
}

/* libvirt's connection, then its VMs with PM that are not attached or have a problem. */
static void print_libvirt(struct vpm_vm_list *l)
{
	const char *uri = or_dash(vpm_vm_list_get_libvirt_uri(l));
	const char *error = vpm_vm_list_get_libvirt_error(l);
	struct vpm_libvirt_vm *lvm;
	int name_w = 0, state_w = 0;

	if (vpm_vm_list_is_libvirt_connected(l))
		printf("\nlibvirt: %s, connected\n", uri);
	else if (error)
		printf("\nlibvirt: %s, NOT connected: %s\n", uri, error);
	else
		printf("\nlibvirt: %s, NOT connected\n", uri);
	vpm_libvirt_vm_foreach(l, lvm)
	{
		if (!libvirt_vm_listed(lvm))
			continue;
		name_w = MAX(name_w, (int)strlen(or_dash(vpm_libvirt_vm_get_name(lvm))));
		state_w = MAX(state_w, (int)strlen(or_dash(vpm_libvirt_vm_get_state(lvm))));
	}
	vpm_libvirt_vm_foreach(l, lvm)
	{
		const char *problem = vpm_libvirt_vm_get_problem(lvm);
		uint64_t pages = vpm_libvirt_vm_get_pm_pages(lvm);

		if (!libvirt_vm_listed(lvm))
			continue;
		printf("  %-*s  %-*s  %" PRIu64 " page%s of PM  ", name_w,
		       or_dash(vpm_libvirt_vm_get_name(lvm)), state_w,
		       or_dash(vpm_libvirt_vm_get_state(lvm)), pages, pages == 1 ? "" : "s");
		if (problem)
			printf("problem: %s\n", problem);
		else
			printf("(not attached%s)\n",
			       vpm_libvirt_vm_is_reserved(lvm) ? ", capacity reserved" : "");
	}
}

static int cmd_list(const struct args *a)
{
	_cleanup_(vpm_unrefp) struct vpm_ctx *ctx = NULL;
	_cleanup_(vpm_vm_list_unrefp) struct vpm_vm_list *l = NULL;
	struct vpm_vm *vm;
	int r;

	r = open_ctx(a, &ctx);
	if (r != EXIT_OK)
		return r;
	r = vpm_vm_list_get(ctx, &l);
	if (r < 0)
		return fail(r);
	if (a->json) {
		printf("%s\n", vpm_vm_list_get_json(l, true));
		return EXIT_OK;
	}
	if (!vpm_vm_get_first(l))
		printf("No VMs attached.\n");
	else
		printf("%-20s %-6s %8s %5s %6s %8s %8s %8s %-7s %4s %8s %10s %8s %12s %s\n", "VM",
		       "MODE", "PAGES", "VCPUS", "RATIO", "DRAM", "PM", "IMAGE", "POLICY", "PRIO",
		       "MOVING", "EPOCH", "EPOCHS", "OPS", "LIBVIRT");
	vpm_vm_foreach(l, vm)
	{
		char ratio[32], moving[32] = "-", prio[16] = "-";
		const char *policy = vpm_vm_get_policy(vm);

		if (!vm_settled(vm))
			snprintf(moving, sizeof(moving), "%" PRIu64,
				 vpm_vm_get_migrating_pages(vm));
		if (vpm_vm_get_priority(vm) >= 0)
			snprintf(prio, sizeof(prio), "%d", vpm_vm_get_priority(vm));
		printf("%-20s %-6s %8" PRIu64 " %5u %6s %8" PRIu64 " %8" PRIu64 " %8" PRIu64
		       " %-7s %4s %8s %10" PRIu64 " %8" PRIu64 " %12" PRIu64 " %s\n",
		       vpm_vm_get_name(vm), vpm_vm_get_mode(vm), vpm_vm_get_pages(vm),
		       vpm_vm_get_vcpus(vm),
		       format_ratio(ratio, sizeof(ratio), vpm_vm_get_ratio(vm)),
		       vpm_vm_get_dram_pages(vm), vpm_vm_get_pm_pages(vm),
		       vpm_vm_get_image_pages(vm), policy ? policy : "-", prio, moving,
		       vpm_vm_get_epoch(vm), vpm_vm_get_epochs(vm), vpm_vm_get_ops(vm),
		       or_dash(vpm_vm_get_libvirt_state(vm)));
	}
	if (vpm_vm_list_has_libvirt(l))
		print_libvirt(l);
	return EXIT_OK;
}

/* ---- show ---- */

static const char *pages_text(char *buf, size_t len, uint64_t pages)
{
	char b[32];

	snprintf(buf, len, "%" PRIu64 " page%s (%s)", pages, pages == 1 ? "" : "s",
		 format_bytes(b, sizeof(b), pages * 4096));
	return buf;
}

static void print_vm(const struct vpm_vm *vm)
{
	char b1[64], b2[64], b3[64];
	const char *pool = vpm_vm_get_device_pool(vm), *image = vpm_vm_get_device_image(vm);
	uint64_t loss = vpm_vm_get_loss_window_usec(vm);

#define KV(key, fmt, ...) printf("%-17s " fmt "\n", key ":", __VA_ARGS__)
	KV("name", "%s", vpm_vm_get_name(vm));
	KV("backend", "%s", vpm_vm_get_backend(vm) ? vpm_vm_get_backend(vm) : "-");
	KV("mode", "%s", vpm_vm_get_mode(vm));
	KV("policy", "%s", vpm_vm_get_policy(vm) ? vpm_vm_get_policy(vm) : "-");
	KV("priority", "%d", vpm_vm_get_priority(vm));
	KV("ratio", "%s", format_ratio(b1, sizeof(b1), vpm_vm_get_ratio(vm)));
	KV("size", "%s, %u vCPU%s", pages_text(b1, sizeof(b1), vpm_vm_get_pages(vm)),
	   vpm_vm_get_vcpus(vm), vpm_vm_get_vcpus(vm) == 1 ? "" : "s");
	KV("DRAM", "%s", pages_text(b1, sizeof(b1), vpm_vm_get_dram_pages(vm)));
	KV("PM frames", "%s", pages_text(b1, sizeof(b1), vpm_vm_get_pm_pages(vm)));
	KV("image only", "%s", pages_text(b1, sizeof(b1), vpm_vm_get_image_pages(vm)));
	KV("PM target", "%" PRIu64 " frames, DRAM share %" PRIu64 " pages",
	   vpm_vm_get_pm_target(vm), vpm_vm_get_dram_share(vm));
	if (vm_settled(vm))
		KV("converged", "%s", "yes");
	else if (vpm_vm_get_migrating_pages(vm))
		KV("converged", "no, %" PRIu64 " pages still to move",
		   vpm_vm_get_migrating_pages(vm));
	else
		KV("converged", "%s", "not yet: the next epoch boundary tells");
	KV("epoch", "%" PRIu64 " (%" PRIu64 " committed since attach, every %s)",
	   vpm_vm_get_epoch(vm), vpm_vm_get_epochs(vm),
	   format_duration(b1, sizeof(b1), vpm_vm_get_epoch_interval_usec(vm)));
	KV("epoch pause", "p50 %s, p99 %s, max %s (%" PRIu64 " samples)",
	   format_duration(b1, sizeof(b1), vpm_vm_get_pause_usec_p50(vm)),
	   format_duration(b2, sizeof(b2), vpm_vm_get_pause_usec_p99(vm)),
	   format_duration(b3, sizeof(b3), vpm_vm_get_pause_usec_max(vm)),
	   vpm_vm_get_pause_samples(vm));
	KV("dirty pages", "%" PRIu64 " in all; %" PRIu64 " in the last epoch, %.1f per epoch",
	   vpm_vm_get_dirty_pages(vm), vpm_vm_get_dirty_pages_last_epoch(vm),
	   vpm_vm_get_dirty_pages_per_epoch(vm));
	KV("log written", "%s", format_bytes(b1, sizeof(b1), vpm_vm_get_log_bytes(vm)));
	KV("PM written", "%s (log and PM frames: wear)",
	   format_bytes(b1, sizeof(b1), vpm_vm_get_pm_bytes_written(vm)));
	KV("migrations", "%" PRIu64 " promotions, %" PRIu64 " demotions, %s moved",
	   vpm_vm_get_promotions(vm), vpm_vm_get_demotions(vm),
	   format_bytes(b1, sizeof(b1), vpm_vm_get_migrated_bytes(vm)));
	KV("faults", "%" PRIu64, vpm_vm_get_faults(vm));
	KV("operations", "%" PRIu64 ", %.0f/s modeled, %.0f/s wall clock", vpm_vm_get_ops(vm),
	   vpm_vm_get_modeled_ops_per_sec(vm), vpm_vm_get_wall_ops_per_sec(vm));
	if (loss || streq_ptr(vpm_vm_get_mode(vm), "epoch"))
		KV("loss window", "%s (writes a host crash may lose)",
		   format_duration(b1, sizeof(b1), loss));
	else
		KV("loss window", "none in %s mode", vpm_vm_get_mode(vm));
	KV("hints", "%" PRIu64 " persist, %" PRIu64 " discard", vpm_vm_get_hints_persist(vm),
	   vpm_vm_get_hints_discard(vm));
	KV("page table", "%s", format_bytes(b1, sizeof(b1), vpm_vm_get_page_table_bytes(vm)));
	KV("staging", "%s", format_bytes(b1, sizeof(b1), vpm_vm_get_stage_bytes(vm)));
	if (pool)
		KV("device", "#%d in pool '%s', image %s", vpm_vm_get_device_index(vm), pool,
		   image ? image : "-");
#undef KV
}

/* {"key": value} around pretty-printed JSON, indented one more level: vpmd's reply. */
static void print_json_member(const char *key, const char *pretty)
{
	printf("{\n  \"%s\": ", key);
	for (const char *p = pretty; *p; p++) {
		putchar(*p);
		if (*p == '\n')
			fputs("  ", stdout);
	}
	printf("\n}\n");
}

/* One VM in detail (show, attach): JSON with -j, else the table. */
static void print_vm_reply(const struct args *a, struct vpm_vm *vm)
{
	if (a->json)
		print_json_member("vm", vpm_vm_get_json(vm, true));
	else
		print_vm(vm);
}

static int cmd_show(const struct args *a)
{
	_cleanup_(vpm_unrefp) struct vpm_ctx *ctx = NULL;
	_cleanup_(vpm_vm_unrefp) struct vpm_vm *vm = NULL;
	int r;

	if (a->argc != 1 || is_option(a->argv[0]))
		return a->argc == 0 ? usage_error(a, "name the VM to show")
				    : usage_error(a, "takes one VM name");
	r = open_ctx(a, &ctx);
	if (r != EXIT_OK)
		return r;
	r = vpm_vm_show(ctx, a->argv[0], &vm);
	if (r < 0)
		return fail(r);
	print_vm_reply(a, vm);
	return EXIT_OK;
}

/* ---- attach ---- */

/* A guest-physical address: hexadecimal with 0x, or decimal. */
static int parse_gpa_arg(const char *s, uint64_t *ret)
{
	char *end = NULL;

	if (!*s || isspace((unsigned char)*s) || *s == '-')
		return -EINVAL;
	errno = 0;
	*ret = strtoull(s, &end, 0);
	return errno || *end ? -EINVAL : 0;
}

struct attach_args {
	const char *name, *mode, *policy;
	uint64_t pid, gpa, size;
	bool has_gpa; /* 0 is guest RAM in any VM: the range is never implied */
	double ratio;
};

static int parse_attach_option(const struct args *a, const char *opt, const char *val,
			       struct attach_args *t)
{
	if (streq(opt, "--pid")) {
		if (parse_uint_range(val, 1, INT32_MAX, &t->pid) < 0)
			return usage_error(a, "--pid takes the VMM's process id");
	} else if (streq(opt, "--gpa")) {
		if (parse_gpa_arg(val, &t->gpa) < 0)
			return usage_error(a, "--gpa takes the guest-physical base of the vPM range, "
					      "e.g. 0x100000000");
		t->has_gpa = true;
	} else if (streq(opt, "--size")) {
		if (parse_size(val, &t->size) < 0)
			return usage_error(a, "--size takes the size of the vPM range, e.g. 512M");
	} else if (streq(opt, "--ratio")) {
		if (parse_ratio_arg(val, &t->ratio) < 0)
			return usage_error(a, "--ratio takes a number from 1 to %d", VPM_RATIO_MAX);
	} else if (streq(opt, "--mode")) {
		t->mode = val;
	} else if (streq(opt, "--policy")) {
		t->policy = val;
	} else {
		return usage_error(a, "unknown option '%s'", opt);
	}
	return EXIT_OK;
}

static int cmd_attach(const struct args *a)
{
	_cleanup_(vpm_unrefp) struct vpm_ctx *ctx = NULL;
	_cleanup_(vpm_vm_unrefp) struct vpm_vm *vm = NULL;
	struct attach_args t = {};
	int r;

	for (int i = 0; i < a->argc; i++) {
		if (!is_option(a->argv[i])) {
			if (t.name)
				return usage_error(a, "takes one VM name");
			t.name = a->argv[i];
			continue;
		}
		if (i + 1 >= a->argc)
			return usage_error(a, "%s needs a value", a->argv[i]);
		r = parse_attach_option(a, a->argv[i], a->argv[i + 1], &t);
		if (r != EXIT_OK)
			return r;
		i++;
	}
	if (!t.name || !t.pid || !t.has_gpa || !t.size)
		return usage_error(a, "name the VM and give --pid, --gpa and --size");
	r = open_ctx(a, &ctx);
	if (r != EXIT_OK)
		return r;
	r = vpm_vm_attach_kvm(ctx, t.name, (pid_t)t.pid, t.gpa, t.size, t.ratio, t.mode, t.policy,
			      &vm);
	if (r < 0)
		return fail(r);
	print_vm_reply(a, vm);
	return EXIT_OK;
}

/* ---- set-ratio, set-mode, set-policy, set-priority ---- */

#define WAIT_POLL_USEC		  (100 * USEC_PER_MSEC)
#define WAIT_TIMEOUT_DEFAULT_USEC (300 * USEC_PER_SEC)
#define PROGRESS_WIDTH		  30

enum setting { SET_RATIO, SET_MODE, SET_POLICY, SET_PRIORITY };

struct waiting {
	const char *name;
	uint64_t left, most; /* pages still to move now, and the most seen */
	bool converged;
};

static void print_set_result(const struct args *a, struct vpm_vm_list *l, struct waiting *w,
			     size_t n)
{
	if (a->json) {
		printf("{\n  \"vms\": [");
		for (size_t i = 0; i < n; i++)
			printf("%s\n    %s", i ? "," : "",
			       vpm_vm_get_json(find_vm(l, w[i].name), false));
		printf("%s]\n}\n", n ? "\n  " : "");
		return;
	}
	if (n == 0) {
		printf("No VMs attached.\n");
		return;
	}
	printf("%-20s %-6s %-7s %4s %6s %10s %10s  %s\n", "VM", "MODE", "POLICY", "PRIO", "RATIO",
	       "PM-TARGET", "DRAM-SHARE", "CONVERGED");
	for (size_t i = 0; i < n; i++) {
		struct vpm_vm *vm = find_vm(l, w[i].name);
		const char *policy = vpm_vm_get_policy(vm);
		char ratio[32], conv[48] = "yes";

		if (vpm_vm_get_migrating_pages(vm))
			snprintf(conv, sizeof(conv), "no (%" PRIu64 " pages to move)",
				 vpm_vm_get_migrating_pages(vm));
		else if (!vm_settled(vm))
			snprintf(conv, sizeof(conv), "not yet (next epoch boundary)");
		printf("%-20s %-6s %-7s %4d %6s %10" PRIu64 " %10" PRIu64 "  %s\n",
		       vpm_vm_get_name(vm), vpm_vm_get_mode(vm), policy ? policy : "-",
		       vpm_vm_get_priority(vm),
		       format_ratio(ratio, sizeof(ratio), vpm_vm_get_ratio(vm)),
		       vpm_vm_get_pm_target(vm), vpm_vm_get_dram_share(vm), conv);
	}
}

/* Update w from l; -ENOENT with a message when one of the VMs is gone. */
static int update_waiting(struct vpm_vm_list *l, struct waiting *w, size_t n, bool *ret_done)
{
	bool done = true;

	for (size_t i = 0; i < n; i++) {
		struct vpm_vm *vm = find_vm(l, w[i].name);

		if (!vm) {
			fprintf(stderr,
				"vpmctl: VM '%s' disappeared while vpmctl waited for it to "
				"converge\n",
				w[i].name);
			return -ENOENT;
		}
		w[i].left = vpm_vm_get_migrating_pages(vm);
		w[i].most = MAX(w[i].most, w[i].left);
		/*
		 * Once is enough: a guest that writes makes vpmd promote pages between epoch
		 * boundaries, so a converged VM can be a few pages off again at the next one.
		 */
		w[i].converged |= vm_settled(vm);
		done &= w[i].converged;
	}
	*ret_done = done;
	return 0;
}

static void draw_progress(const struct waiting *w, size_t n)
{
	uint64_t total = 0, left = 0, moved;
	char bar[PROGRESS_WIDTH + 1];
	size_t fill;

	for (size_t i = 0; i < n; i++) {
		total += w[i].most;
		left += w[i].converged ? 0 : w[i].left;
	}
	moved = total - MIN(left, total);
	fill = total ? (size_t)((double)moved / (double)total * PROGRESS_WIDTH) : 0;
	memset(bar, '#', fill);
	memset(bar + fill, ' ', PROGRESS_WIDTH - fill);
	bar[PROGRESS_WIDTH] = '\0';
	if (total)
		fprintf(stderr, "\r[%s] %" PRIu64 "/%" PRIu64 " pages moved\033[K", bar, moved,
			total);
	else
		fprintf(stderr, "\r[%s] waiting for the next epoch boundary\033[K", bar);
}

static void print_moving(const struct waiting *w, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (w[i].converged)
			continue;
		if (w[i].left)
			fprintf(stderr, "%s: %" PRIu64 " pages still to move\n", w[i].name,
				w[i].left);
		else
			fprintf(stderr, "%s: waiting for the next epoch boundary\n", w[i].name);
	}
}

static void print_not_converged(const struct waiting *w, size_t n)
{
	bool first = true;

	for (size_t i = 0; i < n; i++) {
		if (w[i].converged)
			continue;
		fprintf(stderr, "%s%s", first ? "" : ", ", w[i].name);
		if (w[i].left)
			fprintf(stderr, " (%" PRIu64 " pages to move)", w[i].left);
		first = false;
	}
}

/* Poll the VMs until all in w have converged; on success *ret_list is the last list. */
static int wait_converged(struct vpm_ctx *ctx, struct waiting *w, size_t n, uint64_t timeout_usec,
			  struct vpm_vm_list **ret_list)
{
	uint64_t start = now_usec(CLOCK_MONOTONIC), last_line = start;
	bool tty = isatty(STDERR_FILENO), drawn = false;
	sigset_t unblocked = catch_stop_signals();
	char b[64];

	for (;;) {
		struct vpm_vm_list *l = NULL;
		uint64_t now;
		bool done;
		int r;

		r = vpm_vm_list_get(ctx, &l);
		if (r < 0) {
			if (drawn)
				fprintf(stderr, "\n");
			return fail(r);
		}
		r = update_waiting(l, w, n, &done);
		if (r == 0 && done) {
			if (drawn) {
				draw_progress(w, n);
				fprintf(stderr, "\n");
			}
			*ret_list = l;
			return EXIT_OK;
		}
		if (r < 0) {
			if (drawn)
				fprintf(stderr, "\n");
			vpm_vm_list_unref(l);
			return EXIT_FAILED;
		}
		now = now_usec(CLOCK_MONOTONIC);
		if (tty) {
			draw_progress(w, n);
			drawn = true;
		} else if (now - last_line >= USEC_PER_SEC) {
			print_moving(w, n);
			last_line = now;
		}
		vpm_vm_list_unref(l);
		if (timeout_usec && now - start >= timeout_usec) {
			fprintf(stderr, "%svpmctl: not converged after %s: ", drawn ? "\n" : "",
				format_duration(b, sizeof(b), timeout_usec));
			break;
		}
		if (pause_usec(WAIT_POLL_USEC, &unblocked)) {
			fprintf(stderr,
				"%svpmctl: interrupted; not converged yet: ", drawn ? "\n" : "");
			break;
		}
	}
	print_not_converged(w, n);
	fprintf(stderr, ". The change stays; vpmd goes on moving pages ('vpmctl list' shows "
			"them).\n");
	return EXIT_FAILED;
}

static int run_set(const struct args *a, enum setting what)
{
	_cleanup_(vpm_unrefp) struct vpm_ctx *ctx = NULL;
	_cleanup_(vpm_vm_list_unrefp) struct vpm_vm_list *first = NULL, *last = NULL;
	_cleanup_free_ struct waiting *w = NULL;
	uint64_t timeout_usec = WAIT_TIMEOUT_DEFAULT_USEC;
	const char *operands[2], *name, *value;
	bool all = false, wait = false, timeout_given = false, options_done = false;
	size_t n_operands = 0, n = 0;
	double ratio = 0;
	int priority = 0, r;

	for (int i = 0; i < a->argc; i++) {
		const char *arg = a->argv[i];

		if (options_done || !is_option(arg)) {
			if (n_operands == ELEMENTSOF(operands))
				return usage_error(a, "too many arguments ('%s')", arg);
			operands[n_operands++] = arg;
		} else if (streq(arg, "--"))
			options_done = true;
		else if (streq(arg, "--all"))
			all = true;
		else if (streq(arg, "--wait"))
			wait = true;
		else if (streq(arg, "--timeout") || strncmp(arg, "--timeout=", 10) == 0) {
			const char *v = NULL;

			if (arg[9] == '=')
				v = arg + 10;
			else if (i + 1 < a->argc)
				v = a->argv[++i];

			if (!v)
				return usage_error(a, "--timeout needs a number of seconds");
			if (parse_seconds(v, &timeout_usec) < 0)
				return usage_error(a, "--timeout '%s' is not a number of seconds",
						   v);
			timeout_given = true;
		} else
			return usage_error(a, "unknown option '%s'", arg);
	}
	if (all && n_operands != 1)
		return usage_error(a, "with --all, give the new value and no VM name");
	if (!all && n_operands != 2)
		return usage_error(a, "give a VM name (or --all) and the new value");
	if (timeout_given && !wait)
		return usage_error(a, "--timeout only applies with --wait");
	name = all ? NULL : operands[0];
	value = operands[all ? 0 : 1];

	/* values that cannot be right fail here, as vpmd would refuse them (status 1) */
	switch (what) {
	case SET_RATIO:
		if (parse_ratio_arg(value, &ratio) < 0)
			return usage_error(a, "ratio '%s' is not a number", value);
		if (!ratio_valid(ratio)) {
			fprintf(stderr,
				"vpmctl: ratio '%s' is out of range: use a finite number "
				"from 1 (every page on PM) to %d\n",
				value, VPM_RATIO_MAX);
			return EXIT_FAILED;
		}
		break;
	case SET_PRIORITY:
		if (parse_int_arg(value, &priority) < 0)
			return usage_error(a, "priority '%s' is not an integer", value);
		if (priority < 0 || priority > 100) {
			fprintf(stderr,
				"vpmctl: priority '%s' is out of range: use an integer from "
				"0 to 100\n",
				value);
			return EXIT_FAILED;
		}
		break;
	case SET_MODE:
	case SET_POLICY:
		if (!*value)
			return usage_error(a, "the %s is empty",
					   what == SET_MODE ? "mode" : "policy");
		break;
	}

	r = open_ctx(a, &ctx);
	if (r != EXIT_OK)
		return r;
	switch (what) {
	case SET_RATIO:
		r = vpm_vm_set_ratio(ctx, name, ratio);
		break;
	case SET_MODE:
		r = vpm_vm_set_mode(ctx, name, value);
		break;
	case SET_POLICY:
		r = vpm_vm_set_policy(ctx, name, value);
		break;
	case SET_PRIORITY:
		r = vpm_vm_set_priority(ctx, name, priority);
		break;
	}
	if (r < 0)
		return fail(r);
	if (vpm_warningmsg())
		fprintf(stderr, "vpmctl: warning: %s\n", vpm_warningmsg());

	/* the VMs changed: the one named, or all that are attached now */
	r = vpm_vm_list_get(ctx, &first);
	if (r < 0)
		return fail(r);
	if (all) {
		struct vpm_vm *vm;

		vpm_vm_foreach(first, vm)
			n++;
	} else
		n = 1;
	w = calloc(MAX(n, (size_t)1), sizeof(*w));
	if (!w) {
		fprintf(stderr, "vpmctl: out of memory\n");
		return EXIT_FAILED;
	}
	if (all) {
		struct vpm_vm *vm;
		size_t i = 0;

		vpm_vm_foreach(first, vm)
			w[i++].name = vpm_vm_get_name(vm);
	} else
		w[0].name = name;
	if (wait) {
		r = wait_converged(ctx, w, n, timeout_usec, &last);
		if (r != EXIT_OK)
			return r;
	} else {
		bool done;

		if (update_waiting(first, w, n, &done) < 0)
			return EXIT_FAILED;
	}
	print_set_result(a, last ? last : first, w, n);
	return EXIT_OK;
}

static int cmd_set_ratio(const struct args *a)
{
	return run_set(a, SET_RATIO);
}

static int cmd_set_mode(const struct args *a)
{
	return run_set(a, SET_MODE);
}

static int cmd_set_policy(const struct args *a)
{
	return run_set(a, SET_POLICY);
}

static int cmd_set_priority(const struct args *a)
{
	return run_set(a, SET_PRIORITY);
}

/* ---- stats ---- */

static void print_stats(struct vpm_stats *s)
{
	char b[8][32];
	struct vpm_vm *vm;

	if (!vpm_stats_get_first_vm(s))
		printf("No VMs attached.\n");
	else
		printf("%-16s %-6s %6s %8s %8s %8s %9s %9s %9s %11s %10s %10s %10s %13s %11s\n",
		       "VM", "MODE", "RATIO", "DRAM", "PM", "EPOCHS", "PAUSE-P50", "PAUSE-P99",
		       "PAUSE-MAX", "DIRTY/EPOCH", "LOG", "PM-WRITTEN", "MIGRATIONS",
		       "MODELED-OPS/S", "LOSS-WINDOW");
	vpm_stats_foreach_vm(s, vm)
	{
		bool paused = vpm_vm_get_pause_samples(vm) > 0;
		uint64_t loss = vpm_vm_get_loss_window_usec(vm);

		printf("%-16s %-6s %6s %8" PRIu64 " %8" PRIu64 " %8" PRIu64
		       " %9s %9s %9s %11.1f %10s %10s %10" PRIu64 " %13.0f %11s\n",
		       vpm_vm_get_name(vm), vpm_vm_get_mode(vm),
		       format_ratio(b[0], sizeof(b[0]), vpm_vm_get_ratio(vm)),
		       vpm_vm_get_dram_pages(vm), vpm_vm_get_pm_pages(vm), vpm_vm_get_epochs(vm),
		       paused ? format_duration(b[1], sizeof(b[1]), vpm_vm_get_pause_usec_p50(vm))
			      : "-",
		       paused ? format_duration(b[2], sizeof(b[2]), vpm_vm_get_pause_usec_p99(vm))
			      : "-",
		       paused ? format_duration(b[3], sizeof(b[3]), vpm_vm_get_pause_usec_max(vm))
			      : "-",
		       vpm_vm_get_dirty_pages_per_epoch(vm),
		       format_bytes(b[4], sizeof(b[4]), vpm_vm_get_log_bytes(vm)),
		       format_bytes(b[5], sizeof(b[5]), vpm_vm_get_pm_bytes_written(vm)),
		       vpm_vm_get_promotions(vm) + vpm_vm_get_demotions(vm),
		       vpm_vm_get_modeled_ops_per_sec(vm),
		       loss ? format_duration(b[6], sizeof(b[6]), loss) : "-");
	}
	printf("total: DRAM %" PRIu64 " of %" PRIu64 " pages in use, PM frames %" PRIu64
	       " of %" PRIu64 " free, log %s, PM written %s, %" PRIu64 " migrations\n",
	       vpm_stats_get_dram_used_pages(s), vpm_stats_get_dram_budget_pages(s),
	       vpm_stats_get_pm_frames_free(s), vpm_stats_get_pm_frames_total(s),
	       format_bytes(b[0], sizeof(b[0]), vpm_stats_get_log_bytes(s)),
	       format_bytes(b[1], sizeof(b[1]), vpm_stats_get_pm_bytes_written(s)),
	       vpm_stats_get_migrations(s));
}

static int cmd_stats(const struct args *a)
{
	_cleanup_(vpm_unrefp) struct vpm_ctx *ctx = NULL;
	const char *name = NULL;
	uint64_t interval_usec = USEC_PER_SEC;
	bool watch = false, options_done = false, tty = isatty(STDOUT_FILENO);
	sigset_t unblocked;
	unsigned frames = 0;
	int r;

	for (int i = 0; i < a->argc; i++) {
		const char *arg = a->argv[i];

		if (options_done || !is_option(arg)) {
			if (name)
				return usage_error(a, "too many arguments ('%s')", arg);
			name = arg;
		} else if (streq(arg, "--"))
			options_done = true;
		else if (streq(arg, "--watch")) {
			watch = true;
			/* an optional interval: the next argument, if it is one */
			if (i + 1 < a->argc && parse_seconds(a->argv[i + 1], &interval_usec) == 0)
				i++;
			else
				interval_usec = USEC_PER_SEC;
		} else if (strncmp(arg, "--watch=", 8) == 0) {
			watch = true;
			if (parse_seconds(arg + 8, &interval_usec) < 0)
				return usage_error(a, "--watch '%s' is not a number of seconds",
						   arg + 8);
		} else
			return usage_error(a, "unknown option '%s'", arg);
	}
	if (watch && interval_usec == 0)
		return usage_error(a, "the --watch interval must be more than 0");

	r = open_ctx(a, &ctx);
	if (r != EXIT_OK)
		return r;
	sigemptyset(&unblocked);
	if (watch)
		unblocked = catch_stop_signals();
	for (;;) {
		_cleanup_(vpm_stats_unrefp) struct vpm_stats *s = NULL;

		r = vpm_stats_get(ctx, name, &s);
		if (r < 0)
			return fail(r);
		if (a->json)
			printf("%s\n", vpm_stats_get_json(s, !watch));
		else {
			if (watch && tty)
				printf("\033[H\033[2J"); /* home, clear */
			else if (frames)
				printf("\n");
			print_stats(s);
		}
		frames++;
		fflush(stdout);
		if (!watch || pause_usec(interval_usec, &unblocked))
			return EXIT_OK;
	}
}

/* ---- pool check ---- */

static int run_pool_check(const struct args *a, const char *pool)
{
	_cleanup_(vpm_unrefp) struct vpm_ctx *ctx = NULL;
	struct vpm_pool_check *c = NULL;
	unsigned damaged;
	int r;

	r = open_ctx(a, &ctx);
	if (r != EXIT_OK)
		return r;
	r = vpm_pool_check(ctx, pool, &c);
	if (r < 0)
		return fail(r);
	printf("%s\n", vpm_pool_check_get_json(c, true));
	damaged = vpm_pool_check_get_damaged(c);
	vpm_pool_check_unref(c);
	if (damaged) {
		fprintf(stderr,
			"vpmctl: %u pool%s not sound (damaged, of a later layout, or unreadable); "
			"see \"state\" and \"problem\" above\n",
			damaged, damaged == 1 ? " is" : "s are");
		return EXIT_FAILED;
	}
	return EXIT_OK;
}

static int cmd_pool_check(const struct args *a)
{
	return run_pool_check(a, a->argc ? a->argv[0] : NULL);
}

static int cmd_recover(const struct args *a)
{
	if (a->argc < 1 || !streq(a->argv[0], "--check")) {
		fprintf(stderr, "vpmctl: vpmd recovers every pool when it starts; 'vpmctl recover "
				"--check [POOL]' shows what recovery would do now.\n");
		return EXIT_USAGE;
	}
	return run_pool_check(a, a->argc > 1 ? a->argv[1] : NULL);
}

/* ---- reload ---- */


static int cmd_reload(const struct args *a)
{
	_cleanup_(vpm_unrefp) struct vpm_ctx *ctx = NULL;
	_cleanup_free_ char *warnings = NULL;
	int r;

	r = open_ctx(a, &ctx);
	if (r != EXIT_OK)
		return r;
	r = vpm_reload(ctx, &warnings);
	if (r < 0)
		return fail(r);
	if (a->json) {
		printf("{\n  \"reloaded\": true,\n  \"warnings\": [");
		for (char *w = warnings, *nl; w; w = nl ? nl + 1 : NULL) {
			nl = strchr(w, '\n');
			printf("%s\n    ", w == warnings ? "" : ",");
			print_json_string(w, nl ? (size_t)(nl - w) : strlen(w));
		}
		printf("%s]\n}\n", warnings ? "\n  " : "");
	} else {
		fprintf(stderr, "vpmd reloaded its configuration.\n");
		if (warnings)
			fprintf(stderr, "%s\n", warnings);
	}
	return EXIT_OK;
}

/* ---- hook: libvirt's qemu hook ---- */

/*
 * libvirt runs the hook synchronously, with the domain XML on stdin, and shows its stderr to
 * the user when it fails a start: a refusal is one line there. vpmctl only asks vpmd; it never
 * calls libvirt, which waits for the hook.
 */
#define HOOK_XML_MAX		  DOMAIN_XML_MAX
#define HOOK_CONNECT_TIMEOUT_USEC (3 * USEC_PER_SEC)
#define HOOK_TIMEOUT_USEC	  (10 * USEC_PER_SEC) /* connect and request together */
#define HOOK_CONFIG_MAX		  (1024 * 1024)	      /* as vpmd reads it */
#define HOOK_CONFIG_LINE_MAX	  4096

enum on_vpmd_down {
	ON_VPMD_DOWN_POLICY, /* refuse VMs that have a VPM policy, start the others */
	ON_VPMD_DOWN_FAIL,   /* refuse every VM */
	ON_VPMD_DOWN_PASS,   /* start every VM */
};

static const char *const on_vpmd_down_names[] = {
	[ON_VPMD_DOWN_POLICY] = "policy",
	[ON_VPMD_DOWN_FAIL] = "fail",
	[ON_VPMD_DOWN_PASS] = "pass",
};

/* What the hook takes from vpmd.conf: [daemon] socket and [hook] on_vpmd_down. */
struct hook_config {
	const char *file;
	char *socket; /* NULL: libvpm's default */
	enum on_vpmd_down on_down;
	char note[512]; /* why (some of) the file was not used; empty when all of it was */
};

static void hook_config_note(struct hook_config *c, const char *fmt, ...) _printf_(2, 3);
static void hook_config_note(struct hook_config *c, const char *fmt, ...)
{
	va_list ap;

	if (c->note[0])
		return; /* the first problem is enough for one line */
	va_start(ap, fmt);
	vsnprintf(c->note, sizeof(c->note), fmt, ap);
	va_end(ap);
}

static void hook_config_done(struct hook_config *c)
{
	free(c->socket);
}

/* A section name as inih passes it, compared the way vpmd does: blanks around it ignored. */
static bool section_is(const char *section, const char *name)
{
	size_t len;

	section += strspn(section, " \t");
	len = strlen(section);
	while (len > 0 && (section[len - 1] == ' ' || section[len - 1] == '\t'))
		len--;
	return len == strlen(name) && strncmp(section, name, len) == 0;
}

static int hook_config_handler(void *user, const char *section, const char *name, const char *value)
{
	struct hook_config *c = user;

	if (section_is(section, "daemon") && streq(name, "socket")) {
		if (value[0] != '/' || strlen(value) > 107)
			hook_config_note(c,
					 "%s: socket '%s' is not an absolute path of at most 107 "
					 "bytes; using %s",
					 c->file, value, VPM_SOCKET_DEFAULT);
		else if (free_and_strdup(&c->socket, value) < 0)
			return 0;
	} else if (section_is(section, "hook") && streq(name, "on_vpmd_down")) {
		for (size_t i = 0; i < ELEMENTSOF(on_vpmd_down_names); i++)
			if (streq(value, on_vpmd_down_names[i])) {
				c->on_down = (enum on_vpmd_down)i;
				return 1;
			}
		c->on_down = ON_VPMD_DOWN_POLICY;
		hook_config_note(c,
				 "%s: on_vpmd_down '%s' is not policy, fail or pass; using policy",
				 c->file, value);
	}
	return 1; /* everything else is vpmd's business */
}

/*
 * Read the two settings; a file that is missing gives the defaults, one that cannot be read
 * gives them with a note. named: the file was asked for (--config, $VPM_CONFIG).
 */
static void hook_config_load(struct hook_config *c, bool named)
{
	_cleanup_fclose_ FILE *f = NULL;
	struct stat st;
	int fd, r;

	/* O_NONBLOCK: a FIFO must not hang the hook; reads of regular files ignore it */
	fd = open(c->file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		if (errno != ENOENT || named)
			hook_config_note(c, "cannot read %s: %s; using the defaults", c->file,
					 strerror(errno));
		return;
	}
	f = fdopen(fd, "r");
	if (!f) {
		safe_close(fd);
		hook_config_note(c, "cannot read %s: %s; using the defaults", c->file,
				 strerror(errno));
		return;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > HOOK_CONFIG_MAX) {
		hook_config_note(c, "%s is not a regular file of at most 1 MiB; using the defaults",
				 c->file);
		return;
	}
	/* Debian's inih has these as run-time settings; vpmd reads its file with the same */
	ini_use_stack = false;
	ini_max_line = HOOK_CONFIG_LINE_MAX;
	ini_initial_alloc = HOOK_CONFIG_LINE_MAX;
	ini_allow_realloc = false;
	ini_allow_bom = true;
	ini_allow_multiline = false;
	ini_allow_no_value = false;
	ini_stop_on_first_error = false;
	r = ini_parse_file(f, hook_config_handler, c);
	if (r < 0 || ferror(f)) {
		/* out of memory or a read error: nothing read can be trusted */
		free(c->socket);
		c->socket = NULL;
		c->on_down = ON_VPMD_DOWN_POLICY;
		c->note[0] = '\0';
		hook_config_note(c, "cannot read %s%s; using the defaults", c->file,
				 r == -2 ? ": out of memory" : "");
	} else if (r > 0)
		hook_config_note(c, "%s:%d: syntax error (vpmd refuses the file); line ignored",
				 c->file, r);
}

/* Print "vpmctl: " and the text on one line: line breaks become "; ", control bytes ' '. */
static void hook_line(FILE *f, const char *fmt, ...) _printf_(2, 3);
static void hook_line(FILE *f, const char *fmt, ...)
{
	_cleanup_free_ char *text = NULL;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&text, fmt, ap);
	va_end(ap);
	fputs("vpmctl: ", f);
	if (r < 0) {
		fputs("out of memory\n", f);
		return;
	}
	/* no trailing separator for a message that ends in a line break */
	for (size_t n = strlen(text); n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'); n--)
		text[n - 1] = '\0';
	for (const char *p = text; *p; p++) {
		if (*p == '\n')
			fputs("; ", f);
		else if ((unsigned char)*p < 0x20 || *p == 0x7f)
			fputc(' ', f);
		else
			fputc(*p, f);
	}
	fputc('\n', f);
}

/* Refuse: one line on stderr, with the note about vpmd.conf when there is one; status 1. */
static int hook_refuse(const struct hook_config *conf, const char *fmt, ...) _printf_(2, 3);
static int hook_refuse(const struct hook_config *conf, const char *fmt, ...)
{
	_cleanup_free_ char *text = NULL;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&text, fmt, ap);
	va_end(ap);
	if (r < 0)
		hook_line(stderr, "out of memory");
	else if (conf->note[0])
		hook_line(stderr, "%s (note: %s)", text, conf->note);
	else
		hook_line(stderr, "%s", text);
	return EXIT_FAILED;
}

/* Read all of fd: at most max bytes, NUL-terminated. -EFBIG beyond, -EBADMSG for a NUL. */
static int read_all(int fd, size_t max, char **ret, size_t *ret_len)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0, alloc = 0;

	for (;;) {
		ssize_t n;

		if (len == alloc) {
			size_t want = alloc ? MIN(alloc * 2, max + 1) : MIN((size_t)65536, max + 1);
			char *p = realloc(buf, want + 1);

			if (!p)
				return -ENOMEM;
			buf = p;
			alloc = want;
		}
		n = read(fd, buf + len, alloc - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			struct pollfd p = { .fd = fd, .events = POLLIN };

			(void)poll(&p, 1, -1);
			continue;
		}
		if (n < 0)
			return negative_errno();
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max)
			return -EFBIG;
	}
	buf[len] = '\0';
	if (memchr(buf, '\0', len))
		return -EBADMSG;
	*ret_len = len;
	*ret = TAKE_PTR(buf);
	return 0;
}

/* The ops vpmd hears of; libvirt's others (start, migrate, restore, attach...) pass at once. */
static bool hook_op_for_vpmd(const char *op)
{
	static const char *const ops[] = { "prepare", "started", "stopped", "release", "reconnect" };

	for (size_t i = 0; i < ELEMENTSOF(ops); i++)
		if (streq(op, ops[i]))
			return true;
	return false;
}

/* Errors that mean vpmd is not there to ask (vpmctl's status 3), as opposed to refusing. */
static bool vpmd_down_error(int r, bool connecting)
{
	if (connecting)
		return r != -EACCES && r != -EPERM && r != -ENOMEM && r != -ENAMETOOLONG;
	return exit_code_for(r) == EXIT_UNREACHABLE;
}

/* "vpmd is not running (no socket at '...')" and the like, with the way to fix it. */
static void describe_vpmd_down(int r, const char *socket, char *cause, size_t cause_len,
			       const char **fix)
{
	switch (-r) {
	case ENOENT:
		snprintf(cause, cause_len, "vpmd is not running (no socket at '%s')", socket);
		*fix = "start it with 'systemctl start vpmd'";
		break;
	case ECONNREFUSED:
		snprintf(cause, cause_len, "vpmd is not running (nothing listens on '%s')", socket);
		*fix = "start it with 'systemctl start vpmd'";
		break;
	case ETIMEDOUT:
		snprintf(cause, cause_len, "vpmd at '%s' is not answering", socket);
		*fix = "see 'systemctl status vpmd' and restart it";
		break;
	case ECONNRESET:
	case EPIPE:
		snprintf(cause, cause_len, "vpmd at '%s' closed the connection without answering",
			 socket);
		*fix = "see 'systemctl status vpmd' and 'journalctl -u vpmd'";
		break;
	default:
		snprintf(cause, cause_len, "vpmd is not reachable at '%s' (%s)", socket,
			 strerror(-r));
		*fix = "start it with 'systemctl start vpmd'";
		break;
	}
}

/* Success without vpmd's answer: notes on stderr and, with -j, the JSON result. */
static int hook_pass(const struct args *a, const struct hook_config *conf, const char *note)
{
	if (conf->note[0])
		hook_line(stderr, "note: %s", conf->note);
	hook_line(stderr, "note: %s", note);
	if (a->json) {
		printf("{\n  \"action\": \"none\",\n  \"message\": ");
		print_json_string(note, strlen(note));
		printf("\n}\n");
	}
	return EXIT_OK;
}

/* vpmd cannot be asked: stops pass, starts follow on_vpmd_down. */
static int hook_vpmd_down(const struct args *a, const struct hook_config *conf, int r,
			  const char *socket, const char *domain, const char *op, bool policy)
{
	char cause[PATH_MAX + 128], note[PATH_MAX + 512];
	const char *fix;

	describe_vpmd_down(r, socket, cause, sizeof(cause), &fix);
	if (!streq(op, "prepare") && !streq(op, "started")) {
		snprintf(note, sizeof(note), "%s, so it was not told about VM '%s' (%s)", cause,
			 domain, op);
		return hook_pass(a, conf, note);
	}
	if (conf->on_down == ON_VPMD_DOWN_FAIL)
		return hook_refuse(conf,
				   "VM '%s' may not start: %s and on_vpmd_down = fail in [hook] of "
				   "%s; %s, or set on_vpmd_down = pass or policy there",
				   domain, cause, conf->file, fix);
	if (conf->on_down == ON_VPMD_DOWN_POLICY && policy)
		return hook_refuse(conf,
				   "VM '%s' has a VPM policy, but %s: %s, or remove the VM's VPM "
				   "policy, or set on_vpmd_down = pass in [hook] of %s",
				   domain, cause, fix, conf->file);
	snprintf(note, sizeof(note), "%s; VM '%s' starts without it (%s)", cause, domain,
		 conf->on_down == ON_VPMD_DOWN_PASS ? "on_vpmd_down = pass"
						    : "it has no VPM policy");
	return hook_pass(a, conf, note);
}

static int cmd_hook(const struct args *a)
{
	_cleanup_(vpm_unrefp) struct vpm_ctx *ctx = NULL;
	_cleanup_free_ char *xml = NULL, *action = NULL, *message = NULL;
	_cleanup_(hook_config_done) struct hook_config conf = { .on_down = ON_VPMD_DOWN_POLICY };
	const char *domain, *op, *subop, *env, *socket;
	bool policy, connecting = true;
	uint64_t start = 0;
	size_t xml_len = 0;
	int r;

	if (a->argc < 3)
		return usage_error(a, "give the domain name, the op and the subop libvirt passes");
	domain = a->argv[0];
	op = a->argv[1];
	subop = a->argv[2];
	if (!*domain || !*op)
		return usage_error(a, "the %s is empty", *domain ? "op" : "domain name");
	if (!hook_op_for_vpmd(op))
		return EXIT_OK; /* and nothing on stdout: libvirt reads it as XML for some ops */

	env = secure_getenv(VPM_CONFIG_ENV);
	conf.file = a->config ? a->config : env && *env ? env : VPMD_DEFAULT_CONFIG;
	hook_config_load(&conf, a->config || (env && *env));

	r = read_all(STDIN_FILENO, HOOK_XML_MAX, &xml, &xml_len);
	if (r < 0) {
		char why[128];

		if (r == -EFBIG)
			snprintf(why, sizeof(why), "is larger than %u MiB", HOOK_XML_MAX >> 20);
		else if (r == -EBADMSG)
			snprintf(why, sizeof(why), "contains a NUL byte");
		else
			snprintf(why, sizeof(why), "cannot be read: %s", strerror(-r));
		if (streq(op, "reconnect")) {
			char note[512];

			snprintf(note, sizeof(note),
				 "the domain XML of VM '%s' on standard input %s, so vpmd was not "
				 "told about it; the VM keeps running",
				 domain, why);
			return hook_pass(a, &conf, note);
		}
		return hook_refuse(&conf,
				   "the domain XML of VM '%s' on standard input %s; vpmctl hook "
				   "expects the XML libvirt passes",
				   domain, why);
	}
	/* vpmd parses the XML; vpmctl only needs to know whether vpmd's policy is in it */
	policy = strstr(xml, DOMAIN_METADATA_NS) != NULL;

	/* -s, then $VPM_SOCKET (libvpm reads it), then vpmd.conf, then the default */
	env = secure_getenv(VPM_SOCKET_ENV);
	socket = a->socket ? a->socket : env && *env ? NULL : conf.socket;
	r = vpm_new(socket, &ctx);
	if (r >= 0) {
		start = now_usec(CLOCK_MONOTONIC);
		(void)vpm_set_timeout(ctx, HOOK_CONNECT_TIMEOUT_USEC);
		r = vpm_connect(ctx);
	}
	if (r >= 0) {
		uint64_t spent = now_usec(CLOCK_MONOTONIC) - start;

		connecting = false;
		(void)vpm_set_timeout(ctx, spent < HOOK_TIMEOUT_USEC - USEC_PER_SEC
					       ? HOOK_TIMEOUT_USEC - spent
					       : USEC_PER_SEC);
		r = vpm_hook_run(ctx, domain, op, subop, xml, &action, &message);
	}
	if (r >= 0) {
		if (conf.note[0])
			hook_line(stderr, "note: %s", conf.note);
		if (a->json) {
			printf("{\n  \"action\": ");
			print_json_string(action, strlen(action));
			printf(",\n  \"message\": ");
			if (message)
				print_json_string(message, strlen(message));
			else
				printf("null");
			printf("\n}\n");
		} else
			printf("%s\n", message ? message : action);
		return EXIT_OK;
	}

	if (ctx && vpmd_down_error(r, connecting))
		return hook_vpmd_down(a, &conf, r, vpm_get_socket_path(ctx), domain, op, policy);
	if (streq(op, "reconnect")) {
		char note[1024];

		/* libvirt kills a running VM whose reconnect hook fails: never fail it */
		snprintf(note, sizeof(note),
			 "vpmd did not take back VM '%s': %s; the VM keeps running", domain,
			 vpm_errormsg());
		return hook_pass(a, &conf, note);
	}
	return hook_refuse(&conf, "%s", vpm_errormsg());
}

/* ---- version ---- */

static int cmd_version(const struct args *a)
{
	_cleanup_(vpm_unrefp) struct vpm_ctx *ctx = NULL;
	_cleanup_(vpm_status_unrefp) struct vpm_status *s = NULL;
	int r, ret = EXIT_OK;

	r = vpm_new(a->socket, &ctx);
	if (r >= 0)
		r = vpm_connect(ctx);
	if (r < 0) {
		fprintf(stderr, "vpmctl: cannot ask vpmd for its version: %s\n", vpm_errormsg());
		ret = r == -EACCES || r == -EPERM ? EXIT_DENIED : EXIT_UNREACHABLE;
	} else {
		r = vpm_status_get(ctx, &s);
		if (r < 0) {
			fprintf(stderr, "vpmctl: cannot ask vpmd for its version: %s\n",
				vpm_errormsg());
			ret = exit_code_for(r);
		}
	}
	if (a->json) {
		printf("{\n  \"vpmctl\": \"%s\",\n  \"libvpm\": \"%s\",\n", VPM_VERSION,
		       vpm_version());
		if (s && vpm_status_get_version(s)) {
			const char *v = vpm_status_get_version(s);

			printf("  \"vpmd\": ");
			print_json_string(v, strlen(v));
			printf(",\n  \"protocol\": %d\n}\n", vpm_status_get_protocol(s));
		} else
			printf("  \"vpmd\": null,\n  \"protocol\": null\n}\n");
	} else {
		printf("vpmctl %s (libvpm %s)\n", VPM_VERSION, vpm_version());
		if (s)
			printf("vpmd   %s (protocol %d)\n", vpm_status_get_version(s),
			       vpm_status_get_protocol(s));
		else
			printf("vpmd   not reachable\n");
	}
	return ret;
}

/* ---- help ---- */

static int cmd_help(const struct args *a);

static const struct command commands[] = {
	{ "status", cmd_status, 0, "status", "show vpmd's state, configuration and clients" },
	{ "list", cmd_list, 0, "list", "show the VMs vpmd serves: tiers, ratios, epochs" },
	{ "show", cmd_show, 1, "show VM", "show one VM in detail, with its statistics" },
	{ "attach", cmd_attach, 13,
	  "attach VM --pid PID --gpa ADDR --size SIZE [--ratio R] [--mode M] [--policy P]",
	  "serve a running KVM VM's vPM range (backend kvm; root)" },
	{ "set-ratio", cmd_set_ratio, 6, "set-ratio VM|--all RATIO [--wait [--timeout SEC]]",
	  "set how many guest PM pages share a PM frame (root)" },
	{ "set-mode", cmd_set_mode, 6, "set-mode VM|--all MODE [--wait [--timeout SEC]]",
	  "set the durability mode: native, epoch or hint (root)" },
	{ "set-policy", cmd_set_policy, 6, "set-policy VM|--all POLICY [--wait [--timeout SEC]]",
	  "set the placement policy: vpm, static, random, lru or oracle (root)" },
	{ "set-priority", cmd_set_priority, 6, "set-priority VM|--all N [--wait [--timeout SEC]]",
	  "set the migration priority, 0 to 100 (root)" },
	{ "stats", cmd_stats, 4, "stats [VM] [--watch [SEC]]",
	  "show pauses, log and PM writes, migrations and throughput" },
	{ "pools", cmd_pools, 0, "pools", "show PM pools and the host's NVDIMM regions" },
	{ "pool-check", cmd_pool_check, 1, "pool-check [POOL]",
	  "re-read a pool's structures and report damage (JSON)" },
	{ "recover", cmd_recover, 2, "recover --check [POOL]",
	  "show what recovery would replay, discard and free" },
	{ "reload", cmd_reload, 0, "reload", "make vpmd re-read its configuration (root)" },
	{ "hook", cmd_hook, 4, "hook DOMAIN OP SUBOP [EXTRA]",
	  "libvirt's qemu hook, domain XML on stdin (root; see vpmctl(8))" },
	{ "version", cmd_version, 0, "version", "show the versions of vpmctl, libvpm and vpmd" },
	{ "help", cmd_help, 0, "help", "show this help" },
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: vpmctl [OPTIONS] COMMAND [ARGUMENTS]\n\n"
		"Control vpmd, the VPM daemon.\n\n"
		"Options (before the command):\n"
		"  -s, --socket PATH  vpmd's socket (default: $%s or %s)\n"
		"  -j, --json         print JSON on stdout\n"
		"      --config FILE  vpmd.conf for the hook command\n"
		"                     (default: $%s or %s)\n"
		"  -h, --help         show this help\n"
		"      --version      same as the version command\n\n"
		"Commands:\n",
		VPM_SOCKET_ENV, VPM_SOCKET_DEFAULT, VPM_CONFIG_ENV, VPMD_DEFAULT_CONFIG);
	for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
		if (strlen(commands[i].usage) > 18)
			fprintf(f, "  %s\n  %-18s %s\n", commands[i].usage, "",
				commands[i].summary);
		else
			fprintf(f, "  %-18s %s\n", commands[i].usage, commands[i].summary);
	}
	fprintf(f,
		"\nset-* change the VM named or, with --all, every VM; --wait waits until the\n"
		"placement has converged (at most --timeout seconds, default 300, 0 for ever).\n"
		"stats --watch repeats every SEC seconds (default 1) until interrupted.\n"
		"hook is run by libvirt: it exits 0 to let a VM start or stop, 1 to refuse.\n"
		"\nExit status: 0 ok, 1 vpmd refused or failed the request, 2 usage error,\n"
		"3 vpmd not reachable, 4 permission denied, 5 protocol mismatch. See vpmctl(8).\n");
}

static int cmd_help(const struct args *a)
{
	(void)a;
	usage(stdout);
	return EXIT_OK;
}

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < ELEMENTSOF(commands); i++)
		if (streq(commands[i].name, name))
			return &commands[i];
	return NULL;
}

int main(int argc, char *argv[])
{
	static const struct option options[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "config", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{}
	};
	struct args a = {};
	const struct command *cmd;
	bool version = false;
	int c;

	/* Options stop at the command name; the command's own arguments follow it. */
	while ((c = getopt_long(argc, argv, "+s:jh", options, NULL)) >= 0) {
		switch (c) {
		case 's':
			a.socket = optarg;
			break;
		case 'j':
			a.json = true;
			break;
		case 'C':
			a.config = optarg;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case 'V':
			version = true;
			break;
		default:
			fprintf(stderr, "Try 'vpmctl help'.\n");
			return EXIT_USAGE;
		}
	}
	if (version)
		return cmd_version(&a);
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	cmd = find_command(argv[optind]);
	if (!cmd) {
		fprintf(stderr, "vpmctl: unknown command '%s'. Try 'vpmctl help'.\n", argv[optind]);
		return EXIT_USAGE;
	}
	a.cmd = cmd;
	a.argc = argc - optind - 1;
	a.argv = argv + optind + 1;
	if (a.argc > cmd->max_args) {
		fprintf(stderr, "vpmctl: '%s' takes no %sargument '%s'. Usage: vpmctl %s\n",
			cmd->name, cmd->max_args ? "further " : "", a.argv[cmd->max_args],
			cmd->usage);
		return EXIT_USAGE;
	}
	return cmd->run(&a);
}
