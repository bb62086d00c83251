// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The control socket: accepts clients, frames NUL-terminated JSON messages, decides each
 * peer's access from its credentials and hands well-formed requests to the dispatcher.
 * Everything is non-blocking on the daemon's sd-event loop; every resource a client can make
 * us hold is bounded (connections, request size, idle time, one reply in flight).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>

#include "control.h"
#include "json-util.h"
#include "log.h"
#include "socket-util.h"

#define READ_CHUNK 4096

struct client {
	struct control_server *server;
	struct client *prev, *next;
	int fd;
	sd_event_source *io;
	sd_event_source *idle;
	struct control_peer peer;

	char *in; /* received bytes not yet consumed */
	size_t in_len, in_alloc;
	char *out; /* reply being sent */
	size_t out_len, out_sent;
	bool close_after_reply;
	bool eof;
};

struct control_server {
	sd_event *event;
	int fd;
	sd_event_source *listen;
	struct control_limits limits;
	struct control_stats stats;
	struct client *clients;
	control_dispatch_fn dispatch;
	void *userdata;
};

static void client_free(struct client *c)
{
	struct control_server *s;

	if (!c)
		return;
	s = c->server;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->stats.clients--;
	sd_event_source_disable_unref(c->io);
	sd_event_source_disable_unref(c->idle);
	safe_close(c->fd);
	free(c->in);
	free(c->out);
	free(c);
}

static bool peer_in_group(int fd, const struct ucred *cred, gid_t gid)
{
	gid_t groups[64], *g = groups;
	socklen_t len = sizeof(groups);
	bool found = false;

	if (cred->gid == gid)
		return true;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) < 0) {
		if (errno != ERANGE)
			return false;
		g = malloc(len);
		if (!g || getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) < 0) {
			free(g);
			return false;
		}
	}
	for (size_t i = 0; i < len / sizeof(gid_t); i++)
		if (g[i] == gid) {
			found = true;
			break;
		}
	if (g != groups)
		free(g);
	return found;
}

static enum vpm_access peer_access(const struct control_server *s, int fd,
				   const struct ucred *cred)
{
	if (cred->uid == 0)
		return VPM_ACCESS_CHANGE;
	if (s->limits.has_read_gid && peer_in_group(fd, cred, s->limits.read_gid))
		return VPM_ACCESS_READ;
	return VPM_ACCESS_NONE;
}

/* Best-effort error to a connection we are about to drop; never blocks. */
static void send_refusal(int fd, int error, const char *message)
{
	_cleanup_json_ struct json_object *reply = vpm_reply_new_error(error, message);
	_cleanup_free_ char *text = NULL;
	size_t len;

	if (!reply)
		return;
	text = vpm_message_serialize(reply, &len);
	if (text)
		(void)!send(fd, text, len + 1, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static int client_update_events(struct client *c)
{
	uint32_t events = c->out ? EPOLLOUT : (c->eof ? 0 : EPOLLIN);

	if (events == 0)
		return sd_event_source_set_enabled(c->io, SD_EVENT_OFF);
	return sd_event_source_set_io_events(c->io, events);
}

static int client_queue_reply(struct client *c, struct json_object *reply)
{
	size_t len;

	c->out = vpm_message_serialize(reply, &len);
	if (!c->out)
		return -ENOMEM;
	c->out_len = len + 1; /* with its NUL terminator */
	c->out_sent = 0;
	return 0;
}

static int client_queue_error(struct client *c, int error, const char *message)
{
	_cleanup_json_ struct json_object *reply = vpm_reply_new_error(error, message);

	if (!reply)
		return -ENOMEM;
	c->server->stats.errors++;
	return client_queue_reply(c, reply);
}

static const char *access_name(enum vpm_access a)
{
	return a == VPM_ACCESS_CHANGE ? "change" : a == VPM_ACCESS_READ ? "read" : "none";
}

/* Handle one complete message of len bytes (without its NUL). */
static int client_handle_message(struct client *c, const char *msg, size_t len)
{
	struct control_server *s = c->server;
	struct vpm_request req = {};
	_cleanup_json_ struct json_object *result = NULL, *reply = NULL;
	char errbuf[512] = "";
	int r;

	s->stats.requests++;
	r = vpm_request_parse(msg, len, &req, errbuf, sizeof(errbuf));
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		s->stats.protocol_errors++;
		log_debug("Client pid %d: bad request: %s", (int)c->peer.pid, errbuf);
		return client_queue_error(c, r, errbuf);
	}

	log_debug("Client pid %d uid %u (%s): %s", (int)c->peer.pid, (unsigned)c->peer.uid,
		  access_name(c->peer.access), req.method);
	r = s->dispatch(s->userdata, &c->peer, req.method, req.params, &result, errbuf,
			sizeof(errbuf));
	vpm_request_done(&req);
	if (r < 0)
		return client_queue_error(c, r, errbuf[0] ? errbuf : NULL);

	reply = vpm_reply_new_result(result);
	if (!reply)
		return -ENOMEM;
	return client_queue_reply(c, reply);
}

/* Process the next buffered message, if a whole one is there and no reply is pending. */
static int client_process_input(struct client *c)
{
	struct control_server *s = c->server;
	char *nul;
	size_t len;
	int r;

	if (c->out || c->close_after_reply)
		return 0;

	nul = c->in_len ? memchr(c->in, '\0', c->in_len) : NULL;
	if (!nul) {
		if (c->in_len > s->limits.max_request_size) {
			s->stats.protocol_errors++;
			c->close_after_reply = true;
			return client_queue_error(c, EMSGSIZE,
						  "request exceeds the maximum size "
						  "(max_request_size in vpmd.conf)");
		}
		if (c->eof && c->in_len > 0) {
			s->stats.protocol_errors++;
			c->close_after_reply = true;
			return client_queue_error(c, EBADMSG,
						  "connection closed in the middle of a request");
		}
		return 0;
	}

	len = (size_t)(nul - c->in);
	if (len > s->limits.max_request_size) {
		s->stats.protocol_errors++;
		c->close_after_reply = true;
		return client_queue_error(c, EMSGSIZE,
					  "request exceeds the maximum size (max_request_size in "
					  "vpmd.conf)");
	}
	r = client_handle_message(c, c->in, len);
	memmove(c->in, nul + 1, c->in_len - len - 1);
	c->in_len -= len + 1;
	return r;
}

static int client_read(struct client *c)
{
	size_t limit = c->server->limits.max_request_size + 1;
	ssize_t n;

	if (c->in_len >= limit)
		return 0; /* client_process_input will refuse it */
	if (c->in_alloc - c->in_len < READ_CHUNK && c->in_alloc < limit + READ_CHUNK) {
		size_t na = MIN(MAX(c->in_alloc * 2, (size_t)READ_CHUNK * 2), limit + READ_CHUNK);
		char *p = realloc(c->in, na);

		if (!p)
			return -ENOMEM;
		c->in = p;
		c->in_alloc = na;
	}
	n = recv(c->fd, c->in + c->in_len, c->in_alloc - c->in_len, MSG_DONTWAIT);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	if (n == 0)
		c->eof = true;
	c->in_len += (size_t)n;
	return 0;
}

static int client_write(struct client *c)
{
	ssize_t n;

	n = send(c->fd, c->out + c->out_sent, c->out_len - c->out_sent, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	c->out_sent += (size_t)n;
	if (c->out_sent == c->out_len) {
		free(c->out);
		c->out = NULL;
		c->out_len = c->out_sent = 0;
	}
	return 0;
}

static int client_reset_idle(struct client *c)
{
	return sd_event_source_set_time_relative(c->idle, c->server->limits.idle_timeout_usec);
}

static int client_on_io(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
	struct client *c = userdata;
	int r = 0;

	(void)src;
	(void)fd;
	/* only whole requests and reply progress count as activity: a trickle of bytes does not */
	if (revents & EPOLLIN)
		r = client_read(c);
	if (r >= 0 && (revents & EPOLLOUT) && c->out) {
		r = client_write(c);
		if (r >= 0)
			r = client_reset_idle(c); /* a client reading a long reply is not idle */
	}
	/* Answer everything already buffered, one reply at a time. */
	while (r >= 0 && !c->out && !c->close_after_reply) {
		size_t before = c->in_len;

		r = client_process_input(c);
		if (r < 0 || (!c->out && c->in_len == before))
			break;
		if (r >= 0)
			r = client_reset_idle(c);
		if (r >= 0 && c->out)
			r = client_write(c);
	}
	if (r < 0) {
		if (r != -EPIPE && r != -ECONNRESET)
			log_debug_errno(r, "Client pid %d: dropping connection: %m",
					(int)c->peer.pid);
		client_free(c);
		return 0;
	}
	if (!c->out && (c->close_after_reply || (c->eof && c->in_len == 0))) {
		client_free(c);
		return 0;
	}
	if ((revents & (EPOLLHUP | EPOLLERR)) && !(revents & EPOLLIN) && c->out) {
		client_free(c);
		return 0;
	}
	if (client_update_events(c) < 0)
		client_free(c);
	return 0;
}

static int client_on_idle(sd_event_source *src, uint64_t usec, void *userdata)
{
	struct client *c = userdata;

	(void)src;
	(void)usec;
	c->server->stats.idle_closed++;
	log_debug("Client pid %d idle for too long, closing", (int)c->peer.pid);
	client_free(c);
	return 0;
}

static unsigned clients_of(const struct control_server *s, uid_t uid)
{
	unsigned n = 0;

	for (const struct client *c = s->clients; c; c = c->next)
		n += c->peer.uid == uid;
	return n;
}

/*
 * Full for this peer? Root has CONTROL_ROOT_RESERVE slots beyond max_clients; any other user
 * may hold at most a quarter of max_clients, so that one user cannot lock out the others.
 */
static bool server_full(const struct control_server *s, const struct ucred *cred)
{
	if (cred->uid == 0)
		return s->stats.clients >= s->limits.max_clients + CONTROL_ROOT_RESERVE;
	return s->stats.clients >= s->limits.max_clients ||
	       clients_of(s, cred->uid) >= MAX(1u, s->limits.max_clients / 4);
}

static int client_add(struct control_server *s, int fd, const struct ucred *cred,
		      enum vpm_access access)
{
	struct client *c;
	int r;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->server = s;
	c->fd = fd;
	c->peer = (struct control_peer){
		.pid = cred->pid, .uid = cred->uid, .gid = cred->gid, .access = access
	};
	c->next = s->clients;
	if (s->clients)
		s->clients->prev = c;
	s->clients = c;
	s->stats.clients++;
	s->stats.max_clients_seen = MAX(s->stats.max_clients_seen, s->stats.clients);

	r = sd_event_add_io(s->event, &c->io, fd, EPOLLIN, client_on_io, c);
	if (r >= 0)
		r = sd_event_add_time_relative(s->event, &c->idle, CLOCK_MONOTONIC,
					       s->limits.idle_timeout_usec, 0, client_on_idle, c);
	if (r < 0) {
		c->fd = -1; /* the caller closes it */
		client_free(c);
	}
	return r;
}

static int server_on_connect(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
	struct control_server *s = userdata;
	_cleanup_close_ int cfd = -1;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	enum vpm_access access;
	int r;

	(void)src;
	(void)revents;
	cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (cfd < 0) {
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			log_warning_errno(errno, "Failed to accept a control connection: %m");
		return 0;
	}
	s->stats.connections++;
	if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		log_warning_errno(errno, "Failed to read peer credentials, refusing client: %m");
		s->stats.refused++;
		return 0;
	}

	access = peer_access(s, cfd, &cred);
	if (access == VPM_ACCESS_NONE) {
		log_debug("Refusing pid %d uid %u: no access", (int)cred.pid, (unsigned)cred.uid);
		s->stats.refused++;
		send_refusal(cfd, EACCES,
			     "access to vpmd denied: only root and members of the vpmd read group "
			     "(socket_group in vpmd.conf, 'vpm' by default) may connect");
		return 0;
	}
	if (server_full(s, &cred)) {
		log_warning("Refusing pid %d uid %u: %u clients connected (max_clients)",
			    (int)cred.pid, (unsigned)cred.uid, s->stats.clients);
		s->stats.refused++;
		send_refusal(cfd, EBUSY,
			     "vpmd has too many clients connected; retry later or raise "
			     "max_clients in vpmd.conf");
		return 0;
	}

	r = client_add(s, cfd, &cred, access);
	if (r < 0) {
		log_warning_errno(r, "Failed to set up control client: %m");
		return 0; /* keep accepting others */
	}
	TAKE_FD(cfd);
	return 0;
}

/* Refuse a path that another vpmd listens on or that is not a socket; a stale socket is fine */
static int check_socket_path(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int probe = -1;
	struct stat st;

	if (strlen(path) >= sizeof(sa.sun_path))
		return log_error_errno(ENAMETOOLONG, "Socket path '%s' is too long", path);
	strcpy(sa.sun_path, path);
	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return log_error_errno(errno, "Cannot look at socket path '%s': %m", path);
	}
	if (!S_ISSOCK(st.st_mode))
		return log_error_errno(EEXIST,
				       "'%s' exists and is not a socket; remove it or configure "
				       "another socket path",
				       path);
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		return log_error_errno(EADDRINUSE,
				       "Another vpmd is already listening on '%s'; stop it or "
				       "configure a different socket",
				       path);
	log_info("Replacing stale socket '%s'", path);
	return 0;
}

static int mkdir_parents(const char *path, mode_t mode)
{
	_cleanup_free_ char *p = strdup(path);

	if (!p)
		return -ENOMEM;
	for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
		*s = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	return 0;
}

int control_socket_open(const char *path, mode_t mode, gid_t group, bool *ret_activated)
{
	_cleanup_close_ int fd = -1;
	int n, r;

	n = sd_listen_fds(1);
	if (n < 0)
		return log_error_errno(n, "Failed to read sockets passed by systemd: %m");
	if (n > 1)
		return log_error_errno(EINVAL, "systemd passed %d sockets; vpmd.socket must have "
					       "exactly one ListenStream=",
				       n);
	if (n == 1) {
		fd = SD_LISTEN_FDS_START;
		r = sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0);
		if (r <= 0)
			return log_error_errno(r < 0 ? r : EINVAL,
					       "The socket passed by systemd is not a listening "
					       "AF_UNIX stream socket; fix vpmd.socket");
		if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 ||
		    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
			return log_error_errno(errno, "Failed to set up the passed socket: %m");
		*ret_activated = true;
		log_info("Using control socket passed by systemd");
		return TAKE_FD(fd);
	}

	r = mkdir_parents(path, 0755);
	if (r < 0)
		return log_error_errno(r, "Failed to create the directory of socket '%s': %m", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return log_error_errno(errno, "Failed to create control socket: %m");
	r = check_socket_path(path);
	if (r < 0)
		return r;
	r = socket_listen_at(fd, path, mode, group, SOMAXCONN);
	if (r < 0)
		return log_error_errno(r, "Failed to listen on control socket '%s': %m", path);
	*ret_activated = false;
	log_info("Listening on %s", path);
	return TAKE_FD(fd);
}

int control_server_new(sd_event *event, int listen_fd, const struct control_limits *limits,
		       control_dispatch_fn dispatch, void *userdata,
		       struct control_server **ret_server)
{
	_cleanup_(control_server_freep) struct control_server *s = NULL;
	int r;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->event = sd_event_ref(event);
	s->fd = listen_fd;
	s->limits = *limits;
	s->dispatch = dispatch;
	s->userdata = userdata;
	r = sd_event_add_io(event, &s->listen, listen_fd, EPOLLIN, server_on_connect, s);
	if (r < 0) {
		s->fd = -1; /* stays the caller's on failure */
		return r;
	}
	*ret_server = TAKE_PTR(s);
	return 0;
}

struct control_server *control_server_free(struct control_server *s)
{
	if (!s)
		return NULL;
	while (s->clients)
		client_free(s->clients);
	sd_event_source_disable_unref(s->listen);
	safe_close(s->fd);
	sd_event_unref(s->event);
	free(s);
	return NULL;
}

void control_server_set_limits(struct control_server *s, const struct control_limits *limits)
{
	s->limits = *limits;
}

const struct control_stats *control_server_get_stats(const struct control_server *s)
{
	return &s->stats;
}
