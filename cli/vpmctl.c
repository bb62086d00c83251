// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * vpmctl: the command-line client of vpmd, built only on libvpm.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "parse-util.h"
#include "vpm/libvpm.h"

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
	bool json;
	int argc;
	char **argv;
};

DEFINE_TRIVIAL_CLEANUP_FUNC(struct vpm_ctx *, vpm_unref);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct vpm_status *, vpm_status_unref);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct vpm_pool_list *, vpm_pool_list_unref);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct vpm_vm_list *, vpm_vm_list_unref);

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

/* ---- list ---- */

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
	if (!vpm_vm_get_first(l)) {
		printf("No VMs attached.\n");
		return EXIT_OK;
	}
	printf("%-20s %-6s %8s %5s %8s %8s %10s %10s %12s\n", "VM", "MODE", "PAGES", "VCPUS",
	       "DRAM", "PM", "EPOCH", "EPOCHS", "OPS");
	vpm_vm_foreach(l, vm)
		printf("%-20s %-6s %8" PRIu64 " %5u %8" PRIu64 " %8" PRIu64 " %10" PRIu64
		       " %10" PRIu64 " %12" PRIu64 "\n",
		       vpm_vm_get_name(vm), vpm_vm_get_mode(vm), vpm_vm_get_pages(vm),
		       vpm_vm_get_vcpus(vm), vpm_vm_get_dram_pages(vm), vpm_vm_get_pm_pages(vm),
		       vpm_vm_get_epoch(vm), vpm_vm_get_epochs(vm), vpm_vm_get_ops(vm));
	return EXIT_OK;
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

struct command {
	const char *name;
	int (*run)(const struct args *a);
	int max_args;
	const char *usage;
	const char *summary;
};

static const struct command commands[] = {
	{ "status", cmd_status, 0, "status", "show vpmd's state, configuration and clients" },
	{ "list", cmd_list, 0, "list", "show the VMs vpmd serves: tiers, epochs, operations" },
	{ "pools", cmd_pools, 0, "pools", "show PM pools and the host's NVDIMM regions" },
	{ "pool-check", cmd_pool_check, 1, "pool-check [POOL]",
	  "re-read a pool's structures and report damage (JSON)" },
	{ "recover", cmd_recover, 2, "recover --check [POOL]",
	  "show what recovery would replay, discard and free" },
	{ "reload", cmd_reload, 0, "reload", "make vpmd re-read its configuration (root)" },
	{ "version", cmd_version, 0, "version", "show the versions of vpmctl, libvpm and vpmd" },
	{ "help", cmd_help, 0, "help", "show this help" },
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: vpmctl [OPTIONS] COMMAND\n\n"
		"Control vpmd, the VPM daemon.\n\n"
		"Options:\n"
		"  -s, --socket PATH  vpmd's socket (default: $%s or %s)\n"
		"  -j, --json         print JSON on stdout\n"
		"  -h, --help         show this help\n"
		"      --version      same as the version command\n\n"
		"Commands:\n",
		VPM_SOCKET_ENV, VPM_SOCKET_DEFAULT);
	for (size_t i = 0; i < ELEMENTSOF(commands); i++)
		fprintf(f, "  %-16s %s\n", commands[i].usage, commands[i].summary);
	fprintf(f, "\nExit status: 0 ok, 1 vpmd refused or failed the request, 2 usage error,\n"
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
	a.argc = argc - optind - 1;
	a.argv = argv + optind + 1;
	if (a.argc > cmd->max_args) {
		fprintf(stderr, "vpmctl: '%s' takes no argument '%s'. Usage: vpmctl %s\n",
			cmd->name, a.argv[0], cmd->usage);
		return EXIT_USAGE;
	}
	return cmd->run(&a);
}
