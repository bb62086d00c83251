/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef VPMD_DAEMON_H
#define VPMD_DAEMON_H

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "control.h"
#include "pool.h"

struct daemon {
	sd_event *event;
	char *config_file;
	struct vpmd_config *config;
	struct pool **pools;
	size_t n_pools;
	struct control_server *control;
	struct engine *engine; /* the sim backend, once a formatted pool is there */
	struct virt_vms *virt_vms; /* libvirt's VMs: connection, hooks, sim guests */
	int lock_fd;            /* flock on <state_dir>/vpmd.pid */
	char *bound_socket;     /* path we bound and remove at exit; NULL when activated */
	bool socket_activated;
	uint64_t start_monotonic;
	uint64_t start_realtime;
	uint64_t watchdog_usec;
	unsigned reloads;
	char *last_reload_error; /* NULL when the last reload worked */
};

/* Load the configuration, take the state directory, open pools and the control socket. */
int daemon_new(const char *config_file, struct daemon **ret_daemon);
struct daemon *daemon_free(struct daemon *d);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct daemon *, daemon_free);

/* Tell systemd we are ready and run until SIGTERM/SIGINT. */
int daemon_run(struct daemon *d);

/*
 * Re-read the configuration. Either all of it applies or none does; on failure *ret_error
 * says why (one line per problem). Settings that need a restart are listed in *ret_warnings
 * (a JSON array of strings) and otherwise ignored.
 */
int daemon_reload(struct daemon *d, char **ret_error, struct json_object **ret_warnings);

/* Offline: format a configured pool (vpmd --init-pool), or check one and print a report. */
int daemon_init_pool(const char *config_file, const char *name, uint64_t log_size, bool force);
int daemon_check_pool(const char *config_file, const char *name);

/* The control protocol's method dispatcher. */
int daemon_dispatch(void *userdata, const struct control_peer *peer, const char *method,
		    struct json_object *params, struct json_object **ret_result, char *errbuf,
		    size_t errlen);

#endif
