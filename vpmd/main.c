// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * vpmd: the VPM daemon.
 *
 *   vpmd [--config FILE] [--foreground]
 *   vpmd [--config FILE] --init-pool NAME [--force] [--log-size SIZE]
 *   vpmd [--config FILE] --check-pool NAME
 *
 * Without --foreground vpmd detaches and the command returns once the daemon is ready (exit 0)
 * or has failed to start (its exit status), so init scripts see start-up errors. The pool
 * actions run offline and exit: 0 done, 1 failed, 2 usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "parse-util.h"

static void help(void)
{
	printf("Usage: vpmd [OPTIONS]\n\n"
	       "The VPM daemon: virtualized persistent memory for KVM guests.\n\n"
	       "  -c, --config FILE   configuration file (default %s)\n"
	       "  -f, --foreground    do not detach; log to stderr (use this under systemd)\n"
	       "      --init-pool NAME  format pool NAME for VPM and exit (vpmd must not run)\n"
	       "      --force         with --init-pool: erase a formatted pool or foreign data\n"
	       "      --log-size SIZE with --init-pool: size of the redo log (default 1/8)\n"
	       "      --check-pool NAME check pool NAME without changing it, print a report\n"
	       "  -h, --help          show this help\n"
	       "      --version       show the version\n\n"
	       "See vpmd(8) and vpmd.conf(5).\n",
	       VPMD_DEFAULT_CONFIG);
}

/*
 * Detach: fork twice and start a new session. Returns in the daemon with the write end of a
 * pipe on which it reports readiness; the original process waits there and exits with the
 * daemon's start-up status.
 */
static int detach(int *ret_ready_fd)
{
	int pipefd[2];
	pid_t pid;

	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return log_error_errno(errno, "Failed to create a pipe: %m");
	pid = fork();
	if (pid < 0)
		return log_error_errno(errno, "Failed to fork: %m");
	if (pid > 0) {
		unsigned char status = 1;

		close(pipefd[1]);
		if (read(pipefd[0], &status, 1) != 1)
			status = 1; /* the daemon died before it got ready */
		_exit(status);
	}
	close(pipefd[0]);
	if (setsid() < 0)
		return log_error_errno(errno, "Failed to start a new session: %m");
	pid = fork();
	if (pid < 0)
		return log_error_errno(errno, "Failed to fork: %m");
	if (pid > 0)
		_exit(0);
	if (chdir("/") < 0)
		return log_error_errno(errno, "Failed to change to /: %m");
	*ret_ready_fd = pipefd[1];
	return 0;
}

/* Tell the waiting parent how start-up went and let go of the terminal. */
static void report_ready(int *ready_fd, unsigned char status)
{
	int null;

	if (*ready_fd < 0)
		return;
	(void)!write(*ready_fd, &status, 1);
	*ready_fd = safe_close(*ready_fd);
	/* A terminal is no place for a daemon's log; a file or pipe a supervisor gave us is. */
	if (isatty(STDERR_FILENO))
		log_use_syslog();
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		if (isatty(STDERR_FILENO))
			dup2(null, STDERR_FILENO);
		safe_close(null);
	}
}

/* The daemon changes to / when it detaches, and SIGHUP re-reads the file: keep an absolute path. */
static char *absolute_path(const char *path)
{
	char *cwd, *abs = NULL;

	if (path[0] == '/')
		return strdup(path);
	cwd = get_current_dir_name();
	if (cwd && asprintf(&abs, "%s/%s", cwd, path) < 0)
		abs = NULL;
	free(cwd);
	return abs;
}

int main(int argc, char *argv[])
{
	static const struct option options[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "init-pool", required_argument, NULL, 'I' },
		{ "check-pool", required_argument, NULL, 'K' },
		{ "force", no_argument, NULL, 'F' },
		{ "log-size", required_argument, NULL, 'L' },
		{}
	};
	const char *init_pool = NULL, *check_pool = NULL;
	uint64_t log_size = 0;
	bool force = false;
	_cleanup_(daemon_freep) struct daemon *d = NULL;
	_cleanup_free_ char *config_path = NULL;
	const char *config = VPMD_DEFAULT_CONFIG;
	bool foreground = false;
	int ready_fd = -1, c, r;

	log_open();
	while ((c = getopt_long(argc, argv, "c:fh", options, NULL)) >= 0) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'f':
			foreground = true;
			break;
		case 'h':
			help();
			return 0;
		case 'V':
			printf("vpmd %s\n", VPM_VERSION);
			return 0;
		case 'I':
			init_pool = optarg;
			break;
		case 'K':
			check_pool = optarg;
			break;
		case 'F':
			force = true;
			break;
		case 'L':
			if (parse_size(optarg, &log_size) < 0) {
				fprintf(stderr, "vpmd: --log-size: '%s' is not a size\n", optarg);
				return 2;
			}
			break;
		default:
			fprintf(stderr, "Try 'vpmd --help'.\n");
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "vpmd: unexpected argument '%s'. Try 'vpmd --help'.\n", argv[optind]);
		return 2;
	}

	config_path = absolute_path(config);
	if (!config_path) {
		log_oom();
		return 1;
	}
	if (init_pool && check_pool) {
		fprintf(stderr, "vpmd: --init-pool and --check-pool are separate actions; give one\n");
		return 2;
	}
	if ((force || log_size) && !init_pool) {
		fprintf(stderr, "vpmd: --force and --log-size go with --init-pool\n");
		return 2;
	}
	if (init_pool)
		return daemon_init_pool(config_path, init_pool, log_size, force) < 0 ? 1 : 0;
	if (check_pool)
		return daemon_check_pool(config_path, check_pool) < 0 ? 1 : 0;
	if (!foreground) {
		r = detach(&ready_fd);
		if (r < 0)
			return 1;
	}
	r = daemon_new(config_path, &d);
	if (r < 0) {
		report_ready(&ready_fd, 1);
		return 1;
	}
	report_ready(&ready_fd, 0);
	r = daemon_run(d);
	log_info("vpmd stopped");
	return r < 0 ? 1 : 0;
}
