/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef VPMD_CONTROL_H
#define VPMD_CONTROL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include <json-c/json.h>

#include "macro.h"
#include "protocol.h"

/* Root keeps this many connections beyond max_clients, so that it can always get in. */
#define CONTROL_ROOT_RESERVE 4

struct control_limits {
	unsigned max_clients;
	uint64_t idle_timeout_usec;
	size_t max_request_size;
	bool has_read_gid; /* members of read_gid may read */
	gid_t read_gid;
};

struct control_stats {
	uint64_t connections;
	uint64_t requests;
	uint64_t errors;          /* requests answered with an error */
	uint64_t refused;         /* connections refused: no access or too many clients */
	uint64_t protocol_errors; /* malformed, oversized or truncated messages */
	uint64_t idle_closed;
	unsigned clients;
	unsigned max_clients_seen;
};

/* What a method handler is told about its caller. */
struct control_peer {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	enum vpm_access access;
};

/*
 * Called for each well-formed request. Returns 0 and a new result object in *ret_result, or
 * -errno and a message for the peer in errbuf. Access checks are the dispatcher's job.
 */
typedef int (*control_dispatch_fn)(void *userdata, const struct control_peer *peer,
				   const char *method, struct json_object *params,
				   struct json_object **ret_result, char *errbuf, size_t errlen);

struct control_server;

/*
 * Take over the socket passed by systemd, or bind path with the given mode and group
 * (group -1: leave the group alone). Returns a listening fd; logs its errors.
 */
int control_socket_open(const char *path, mode_t mode, gid_t group, bool *ret_activated);

int control_server_new(sd_event *event, int listen_fd, const struct control_limits *limits,
		       control_dispatch_fn dispatch, void *userdata,
		       struct control_server **ret_server);
struct control_server *control_server_free(struct control_server *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct control_server *, control_server_free);

/* New limits apply to new connections and messages; nobody is dropped. */
void control_server_set_limits(struct control_server *s, const struct control_limits *limits);
const struct control_stats *control_server_get_stats(const struct control_server *s);

#endif
