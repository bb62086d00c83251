// SPDX-License-Identifier: LGPL-2.1-or-later
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "json-util.h"
#include "libvpm-private.h"
#include "macro.h"
#include "parse-util.h"
#include "protocol.h"

#define DEFAULT_TIMEOUT_USEC (30 * USEC_PER_SEC)

struct vpm_ctx {
	unsigned refcount;
	char *socket_path;
	int fd;
	bool used; /* fd has carried a complete exchange */
	uint64_t timeout_usec;
};

static __thread char errmsg[1024];
static __thread char warnmsg[1024];

_public_ const char *vpm_errormsg(void)
{
	return errmsg[0] ? errmsg : "no error";
}

_public_ const char *vpm_warningmsg(void)
{
	return warnmsg[0] ? warnmsg : NULL;
}

/* The warnings of a reply ("warnings": array of strings), one per line; none clears them. */
void vpm_set_warnings(struct json_object *result)
{
	struct json_object *a;
	size_t n = 0;

	warnmsg[0] = '\0';
	if (!result || !json_object_object_get_ex(result, "warnings", &a) ||
	    !json_object_is_type(a, json_type_array))
		return;
	for (size_t i = 0; i < json_object_array_length(a) && n < sizeof(warnmsg) - 1; i++) {
		struct json_object *w = json_object_array_get_idx(a, i);

		if (json_object_is_type(w, json_type_string))
			n += (size_t)snprintf(warnmsg + n, sizeof(warnmsg) - n, "%s%s",
					      n ? "\n" : "", json_object_get_string(w));
	}
}

int vpm_set_error(int error, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errmsg, sizeof(errmsg), fmt, ap);
	va_end(ap);
	return -abs(error);
}

_public_ const char *vpm_version(void)
{
	return VPM_VERSION;
}

/* ---- context -------------------------------------------------------------------------- */

_public_ int vpm_new(const char *socket_path, struct vpm_ctx **ret_ctx)
{
	struct vpm_ctx *ctx;
	const char *path = socket_path;

	if (!ret_ctx)
		return vpm_set_error(EINVAL, "vpm_new: ret_ctx is NULL");
	if (!path)
		path = secure_getenv(VPM_SOCKET_ENV);
	if (!path || !*path)
		path = VPM_SOCKET_DEFAULT;
	if (strlen(path) >= sizeof(((struct sockaddr_un *)NULL)->sun_path))
		return vpm_set_error(ENAMETOOLONG,
				     "socket path '%s' is too long for an AF_UNIX socket", path);

	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return vpm_set_error(ENOMEM, "out of memory");
	ctx->refcount = 1;
	ctx->fd = -1;
	ctx->timeout_usec = DEFAULT_TIMEOUT_USEC;
	ctx->socket_path = strdup(path);
	if (!ctx->socket_path) {
		free(ctx);
		return vpm_set_error(ENOMEM, "out of memory");
	}
	*ret_ctx = ctx;
	return 0;
}

_public_ struct vpm_ctx *vpm_ref(struct vpm_ctx *ctx)
{
	if (ctx)
		ctx->refcount++;
	return ctx;
}

_public_ struct vpm_ctx *vpm_unref(struct vpm_ctx *ctx)
{
	if (!ctx || --ctx->refcount > 0)
		return NULL;
	safe_close(ctx->fd);
	free(ctx->socket_path);
	free(ctx);
	return NULL;
}

_public_ const char *vpm_get_socket_path(const struct vpm_ctx *ctx)
{
	return ctx ? ctx->socket_path : NULL;
}

_public_ int vpm_set_timeout(struct vpm_ctx *ctx, uint64_t timeout_usec)
{
	if (!ctx)
		return vpm_set_error(EINVAL, "vpm_set_timeout: ctx is NULL");
	ctx->timeout_usec = timeout_usec;
	return 0;
}

/* now + timeout, 0 for no timeout, saturating rather than wrapping */
static uint64_t deadline_after(uint64_t timeout_usec)
{
	uint64_t now = now_usec(CLOCK_MONOTONIC);

	if (!timeout_usec)
		return 0;
	return timeout_usec > UINT64_MAX - now ? UINT64_MAX : now + timeout_usec;
}

static void disconnect(struct vpm_ctx *ctx)
{
	ctx->fd = safe_close(ctx->fd);
	ctx->used = false;
}

static const char *connect_hint(int error)
{
	switch (error) {
	case ENOENT:
	case ECONNREFUSED:
		return "is vpmd running? Start it with 'systemctl start vpmd', or point "
		       "VPM_SOCKET or -s at the socket it listens on";
	case EACCES:
	case EPERM:
		return "only root and members of group 'vpm' may talk to vpmd";
	default:
		return "check that vpmd is running and listening there";
	}
}

_public_ int vpm_connect(struct vpm_ctx *ctx)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (!ctx)
		return vpm_set_error(EINVAL, "vpm_connect: ctx is NULL");
	if (ctx->fd >= 0)
		return 0;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return vpm_set_error(errno, "cannot create a socket: %s", strerror(errno));
	strcpy(sa.sun_path, ctx->socket_path);
	/* a stalled vpmd with a full backlog answers EAGAIN: retry until the timeout */
	for (uint64_t deadline = deadline_after(ctx->timeout_usec);;) {
		int e;

		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			break;
		e = errno;
		if ((e == EAGAIN || e == EINTR) &&
		    (!deadline || now_usec(CLOCK_MONOTONIC) < deadline)) {
			usleep(10000);
			continue;
		}
		safe_close(fd);
		if (e == EAGAIN)
			return vpm_set_error(ETIMEDOUT,
					     "vpmd at '%s' does not accept connections (its backlog "
					     "is full); is it stuck?",
					     ctx->socket_path);
		return vpm_set_error(e, "cannot connect to vpmd at '%s': %s (%s)", ctx->socket_path,
				     strerror(e), connect_hint(e));
	}
	ctx->fd = fd;
	ctx->used = false;
	return 0;
}

/* ---- one request/reply exchange ------------------------------------------------------ */

static int wait_fd(struct vpm_ctx *ctx, short events, uint64_t deadline)
{
	struct pollfd p = { .fd = ctx->fd, .events = events };
	int timeout = -1, r;

	if (deadline) {
		uint64_t now = now_usec(CLOCK_MONOTONIC);

		if (now >= deadline)
			return -ETIMEDOUT;
		timeout = (int)MIN((deadline - now + 999) / 1000, (uint64_t)INT32_MAX);
	}
	do
		r = poll(&p, 1, timeout);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	return r == 0 ? -ETIMEDOUT : 0;
}

static int send_all(struct vpm_ctx *ctx, const char *buf, size_t len, uint64_t deadline)
{
	while (len > 0) {
		ssize_t n = send(ctx->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			int r = wait_fd(ctx, POLLOUT, deadline);

			if (r < 0)
				return r;
			continue;
		}
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Read one NUL-terminated message; *ret_buf is NUL-terminated and *ret_len excludes it. */
static int recv_message(struct vpm_ctx *ctx, char **ret_buf, size_t *ret_len, uint64_t deadline)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0, alloc = 0;

	for (;;) {
		ssize_t n;

		if (len > VPM_REPLY_MAX)
			return -EMSGSIZE;
		if (alloc - len < 4096) {
			char *p;

			alloc = alloc ? MIN(alloc * 2, (size_t)VPM_REPLY_MAX + 8192) : 16384;
			p = realloc(buf, alloc);
			if (!p)
				return -ENOMEM;
			buf = p;
		}
		n = recv(ctx->fd, buf + len, alloc - len, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			int r = wait_fd(ctx, POLLIN, deadline);

			if (r < 0)
				return r;
			continue;
		}
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ECONNRESET; /* closed before or in the middle of the reply */
		if (memchr(buf + len, '\0', (size_t)n)) {
			len += (size_t)n;
			/* One request in flight, so the NUL ends our reply and nothing follows. */
			*ret_len = strlen(buf);
			*ret_buf = TAKE_PTR(buf);
			return 0;
		}
		len += (size_t)n;
	}
}

/* Send a request and read its reply on a connected context. */
static int exchange(struct vpm_ctx *ctx, const char *req, size_t req_len, char **ret_reply,
		    size_t *ret_len)
{
	uint64_t deadline = deadline_after(ctx->timeout_usec);
	int r, rs;

	/* vpmd answers refused connections before it closes them: read even if send failed. */
	rs = send_all(ctx, req, req_len + 1, deadline);
	if (rs == -ETIMEDOUT)
		return rs;
	r = recv_message(ctx, ret_reply, ret_len, deadline);
	if (r < 0 && rs < 0)
		return rs;
	return r;
}

static int exchange_error(struct vpm_ctx *ctx, const char *method, int e)
{
	switch (e) {
	case -ETIMEDOUT:
		return vpm_set_error(e, "vpmd at '%s' did not answer '%s' in time",
				     ctx->socket_path, method);
	case -EMSGSIZE:
		return vpm_set_error(e, "reply to '%s' from vpmd exceeds %u bytes", method,
				     VPM_REPLY_MAX);
	case -ECONNRESET:
	case -EPIPE:
		return vpm_set_error(e, "vpmd at '%s' closed the connection without answering '%s'",
				     ctx->socket_path, method);
	default:
		return vpm_set_error(e, "request '%s' to vpmd at '%s' failed: %s", method,
				     ctx->socket_path, strerror(-e));
	}
}

/* Connect if needed and exchange one message; retry once if a reused connection was gone. */
static int transact(struct vpm_ctx *ctx, const char *method, const char *req, size_t req_len,
		    char **ret_reply, size_t *ret_len)
{
	for (int attempt = 0;; attempt++) {
		bool reused;
		int r;

		r = vpm_connect(ctx);
		if (r < 0)
			return r;
		reused = ctx->used;
		r = exchange(ctx, req, req_len, ret_reply, ret_len);
		if (r >= 0) {
			ctx->used = true;
			return 0;
		}
		disconnect(ctx);
		/* vpmd closes idle connections; a reused one may be gone. */
		if (!(reused && attempt == 0 && (r == -ECONNRESET || r == -EPIPE)))
			return exchange_error(ctx, method, r);
	}
}

int vpm_call(struct vpm_ctx *ctx, const char *method, struct json_object *params,
	     struct json_object **ret_result)
{
	_cleanup_json_ struct json_object *req = NULL;
	_cleanup_free_ char *text = NULL, *reply = NULL;
	char err[768] = "";
	size_t len, reply_len = 0;
	int r, remote = 0;

	if (!ctx)
		return vpm_set_error(EINVAL, "%s: ctx is NULL", method);
	req = vpm_request_new(method, params);
	if (!req)
		return vpm_set_error(ENOMEM, "out of memory");
	text = vpm_message_serialize(req, &len);
	if (!text)
		return vpm_set_error(ENOMEM, "out of memory");

	r = transact(ctx, method, text, len, &reply, &reply_len);
	if (r < 0)
		return r;

	r = vpm_reply_parse(reply, reply_len, ret_result, &remote, err, sizeof(err));
	if (r < 0) {
		/* whatever went wrong, it is the protocol that failed: -EPROTO */
		disconnect(ctx);
		return vpm_set_error(EPROTO, "bad reply from vpmd to '%s': %s", method, err);
	}
	if (remote < 0) {
		if (remote == -EACCES || remote == -EBUSY || remote == -EMSGSIZE)
			disconnect(ctx); /* vpmd closes these connections */
		return vpm_set_error(remote, "%s", err);
	}
	return 0;
}

/* ---- JSON field access ---------------------------------------------------------------- */

const char *vpm_json_str(struct json_object *o, const char *key)
{
	const char *s = NULL;

	return vpm_json_get_string(o, key, &s) < 0 ? NULL : s;
}

uint64_t vpm_json_u64(struct json_object *o, const char *key)
{
	uint64_t v = 0;

	return vpm_json_get_uint64(o, key, &v) < 0 ? 0 : v;
}

int vpm_json_int(struct json_object *o, const char *key, int fallback)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		return fallback;
	return json_object_get_int(v);
}

bool vpm_json_bool(struct json_object *o, const char *key)
{
	bool b = false;

	return vpm_json_get_bool(o, key, &b) < 0 ? false : b;
}

double vpm_json_double(struct json_object *o, const char *key)
{
	struct json_object *v = vpm_json_child(o, key);

	if (!v ||
	    !(json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int)))
		return 0;
	return json_object_get_double(v);
}

struct json_object *vpm_json_child(struct json_object *o, const char *key)
{
	struct json_object *v;

	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

size_t vpm_json_array(struct json_object *o, const char *key, struct json_object **ret_array)
{
	struct json_object *a = vpm_json_child(o, key);

	if (!a || !json_object_is_type(a, json_type_array)) {
		*ret_array = NULL;
		return 0;
	}
	*ret_array = a;
	return json_object_array_length(a);
}

const char *vpm_json_text(struct json_object *o, bool pretty)
{
	int flags = JSON_C_TO_STRING_NOSLASHESCAPE;

	flags |= pretty ? JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED : JSON_C_TO_STRING_PLAIN;
	return json_object_to_json_string_ext(o, flags);
}

/* ---- control -------------------------------------------------------------------------- */

/* Join the strings of a JSON array, one per line; NULL for an empty or missing array. */
static int join_lines(struct json_object *array, char **ret)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f;
	size_t n;

	*ret = NULL;
	if (!array || !json_object_is_type(array, json_type_array))
		return 0;
	n = json_object_array_length(array);
	if (n == 0)
		return 0;
	f = open_memstream(&buf, &len);
	if (!f)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s%s", i ? "\n" : "",
			json_object_get_string(json_object_array_get_idx(array, i)));
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	*ret = buf;
	return 0;
}

_public_ int vpm_reload(struct vpm_ctx *ctx, char **ret_warnings)
{
	_cleanup_json_ struct json_object *result = NULL;
	int r;

	if (ret_warnings)
		*ret_warnings = NULL;
	r = vpm_call(ctx, "reload", NULL, &result);
	if (r < 0)
		return r;
	if (ret_warnings && join_lines(vpm_json_child(result, "warnings"), ret_warnings) < 0)
		return vpm_set_error(ENOMEM, "out of memory");
	return 0;
}

/* ---- libvirt hook --------------------------------------------------------------------- */

_public_ int vpm_hook_run(struct vpm_ctx *ctx, const char *domain, const char *op,
			  const char *subop, const char *xml, char **ret_action, char **ret_message)
{
	_cleanup_json_ struct json_object *params = NULL, *result = NULL;
	_cleanup_free_ char *action = NULL, *message = NULL;
	const char *a, *m;
	int r;

	if (ret_action)
		*ret_action = NULL;
	if (ret_message)
		*ret_message = NULL;
	if (!domain || !op || !subop || !xml)
		return vpm_set_error(EINVAL, "vpm_hook_run: %s is NULL",
				     !domain  ? "domain"
				     : !op    ? "op"
				     : !subop ? "subop"
					      : "xml");
	if (!*domain || !*op)
		return vpm_set_error(EINVAL, "vpm_hook_run: the %s is empty",
				     !*domain ? "domain name" : "op");

	params = json_object_new_object();
	if (!params || json_add(params, "domain", json_object_new_string(domain)) < 0 ||
	    json_add(params, "op", json_object_new_string(op)) < 0 ||
	    json_add(params, "subop", json_object_new_string(subop)) < 0 ||
	    json_add(params, "xml", json_object_new_string(xml)) < 0)
		return vpm_set_error(ENOMEM, "out of memory");
	r = vpm_call(ctx, "hook", params, &result);
	if (r < 0)
		return r;
	a = vpm_json_str(result, "action");
	if (!a || !*a)
		return vpm_set_error(EPROTO, "bad reply from vpmd to 'hook': no \"action\" string");
	m = vpm_json_str(result, "message");
	action = strdup(a);
	if (!action || (m && !(message = strdup(m))))
		return vpm_set_error(ENOMEM, "out of memory");
	if (ret_action)
		*ret_action = TAKE_PTR(action);
	if (ret_message)
		*ret_message = TAKE_PTR(message);
	return 0;
}
