// SPDX-License-Identifier: LGPL-2.1-or-later
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "log.h"
#include "parse-util.h"
#include "protocol.h"

#define CONFIG_FILE_MAX (1024 * 1024)
#define CONFIG_LINE_MAX 4096

static const char *const pool_kind_names[_POOL_KIND_MAX] = {
	[POOL_KIND_AUTO] = "auto",
	[POOL_KIND_DEVDAX] = "devdax",
	[POOL_KIND_FSDAX] = "fsdax",
	[POOL_KIND_EMULATED] = "emulated",
};

static const char *const backend_names[_BACKEND_MAX] = {
	[BACKEND_SIM] = "sim",
	[BACKEND_KVM] = "kvm",
};

static const char *const hook_on_vpmd_down_names[_HOOK_ON_VPMD_DOWN_MAX] = {
	[HOOK_ON_VPMD_DOWN_POLICY] = "policy",
	[HOOK_ON_VPMD_DOWN_FAIL] = "fail",
	[HOOK_ON_VPMD_DOWN_PASS] = "pass",
};

const char *pool_kind_to_string(enum pool_kind k)
{
	return k < _POOL_KIND_MAX ? pool_kind_names[k] : NULL;
}

const char *backend_kind_to_string(enum backend_kind b)
{
	return b < _BACKEND_MAX ? backend_names[b] : NULL;
}

const char *hook_on_vpmd_down_to_string(enum hook_on_vpmd_down h)
{
	return h < _HOOK_ON_VPMD_DOWN_MAX ? hook_on_vpmd_down_names[h] : NULL;
}

enum section_type {
	SECTION_NONE, /* before the first header */
	SECTION_DAEMON,
	SECTION_HOOK,
	SECTION_POOL,
	SECTION_UNKNOWN,
};

struct parse_state {
	struct vpmd_config *config;
	const char *file;
	const char *text, *pos; /* input and read position */
	unsigned line;		/* line the parser is on */
	enum section_type section;
	struct pool_config *pool;   /* current [pool NAME], if any */
	uint64_t seen_daemon_keys;  /* bitmask, to refuse repeated keys */
	uint64_t seen_hook_keys;
	uint64_t seen_pool_keys;
	FILE *errors;
	unsigned n_errors;
};

static void config_error(struct parse_state *s, const char *key, const char *fmt, ...)
	_printf_(3, 4);
static void config_error(struct parse_state *s, const char *key, const char *fmt, ...)
{
	va_list ap;

	s->n_errors++;
	if (!s->errors)
		return;
	if (key)
		fprintf(s->errors, "%s:%u: key '%s': ", s->file, s->line, key);
	else
		fprintf(s->errors, "%s:%u: ", s->file, s->line);
	va_start(ap, fmt);
	vfprintf(s->errors, fmt, ap);
	va_end(ap);
	fputc('\n', s->errors);
}

struct key_def;
typedef int (*value_parser)(struct parse_state *s, const struct key_def *def, const char *value,
			    void *field);

struct key_def {
	const char *name;
	value_parser parse;
	size_t offset;
	uint64_t min, max; /* for sizes and durations; max == 0: no bound */
	const char *range; /* the bounds as the operator writes them */
	bool allow_empty;
};

static int parse_string_field(struct parse_state *s, const struct key_def *def, const char *value,
			void *field)
{
	(void)s;
	(void)def;
	return free_and_strdup(field, value);
}

static int parse_abs_path_field(struct parse_state *s, const struct key_def *def, const char *value,
			void *field)
{
	const char *key = def->name;

	if (value[0] != '/' || strlen(value) >= PATH_MAX) {
		config_error(s, key, "'%s' is not an absolute path; write the full path, e.g. /%s",
			     value, value[0] == '/' ? "..." : value);
		return 0;
	}
	return free_and_strdup(field, value);
}

static int parse_socket_field(struct parse_state *s, const struct key_def *def, const char *value,
			void *field)
{
	const char *key = def->name;

	/* sun_path holds 108 bytes including the terminator. */
	if (value[0] == '/' && strlen(value) > 107) {
		config_error(s, key, "socket path is %zu bytes; AF_UNIX allows at most 107",
			     strlen(value));
		return 0;
	}
	return parse_abs_path_field(s, def, value, field);
}

static int parse_mode_field(struct parse_state *s, const struct key_def *def, const char *value,
			void *field)
{
	const char *key = def->name;

	mode_t m;

	if (parse_mode(value, &m) < 0 || (m & ~0777)) {
		config_error(s, key, "'%s' is not a permission mode; use octal, e.g. 0660", value);
		return 0;
	}
	*(mode_t *)field = m;
	return 0;
}

static int parse_size_field(struct parse_state *s, const struct key_def *def, const char *value,
			void *field)
{
	const char *key = def->name;

	uint64_t v;

	if (parse_size(value, &v) < 0)
		config_error(s, key, "'%s' is not a size; use bytes or K, M, G, T suffixes, e.g. 4G",
			     value);
	else if (v < def->min || (def->max && v > def->max))
		config_error(s, key, "%s is out of range; use %s", value, def->range);
	else
		*(uint64_t *)field = v;
	return 0;
}

/* A consolidation ratio: a finite decimal number from 1 to VPM_RATIO_MAX. */
static int parse_ratio_field(struct parse_state *s, const struct key_def *def, const char *value,
			     void *field)
{
	double v;

	if (parse_ratio(value, &v) < 0)
		config_error(s, def->name, "'%s' is not a ratio; use a number from 1 to %d, e.g. 2 "
					   "or 1.5",
			     value, VPM_RATIO_MAX);
	else
		*(double *)field = v;
	return 0;
}

static int parse_duration_field(struct parse_state *s, const struct key_def *def, const char *value,
			void *field)
{
	const char *key = def->name;

	uint64_t v;

	if (parse_duration(value, &v) < 0)
		config_error(s, key,
			     "'%s' is not a duration; use a number with us, ms, s or min, e.g. 100ms",
			     value);
	else if (v < def->min || (def->max && v > def->max))
		config_error(s, key, "%s is out of range; use %s", value, def->range);
	else
		*(uint64_t *)field = v;
	return 0;
}

static int parse_max_clients(struct parse_state *s, const struct key_def *def, const char *value,
			void *field)
{
	const char *key = def->name;

	uint64_t v;

	if (parse_uint_range(value, 1, 4096, &v) < 0) {
		config_error(s, key, "'%s' is not a number between 1 and 4096", value);
		return 0;
	}
	*(unsigned *)field = (unsigned)v;
	return 0;
}

static int parse_copy_threads(struct parse_state *s, const struct key_def *def, const char *value,
			      void *field)
{
	uint64_t v;

	if (parse_uint_range(value, 0, VPMD_COPY_THREADS_MAX, &v) < 0) {
		config_error(s, def->name, "'%s' is not a number between 0 (automatic) and %u",
			     value, VPMD_COPY_THREADS_MAX);
		return 0;
	}
	*(unsigned *)field = (unsigned)v;
	return 0;
}

static int parse_backend(struct parse_state *s, const struct key_def *def, const char *value,
			void *field)
{
	const char *key = def->name;

	for (int b = 0; b < _BACKEND_MAX; b++)
		if (streq(value, backend_names[b])) {
			*(enum backend_kind *)field = b;
			return 0;
		}
	config_error(s, key, "unknown backend '%s'; choose sim or kvm", value);
	return 0;
}

static int parse_hook_on_vpmd_down(struct parse_state *s, const struct key_def *def,
				   const char *value, void *field)
{
	for (int h = 0; h < _HOOK_ON_VPMD_DOWN_MAX; h++)
		if (streq(value, hook_on_vpmd_down_names[h])) {
			*(enum hook_on_vpmd_down *)field = h;
			return 0;
		}
	config_error(s, def->name, "unknown value '%s'; choose policy, fail or pass", value);
	return 0;
}

static int parse_pool_kind(struct parse_state *s, const struct key_def *def, const char *value,
			void *field)
{
	const char *key = def->name;

	for (int k = 0; k < _POOL_KIND_MAX; k++)
		if (streq(value, pool_kind_names[k])) {
			*(enum pool_kind *)field = k;
			return 0;
		}
	config_error(s, key, "unknown pool kind '%s'; choose devdax, fsdax, emulated or auto",
		     value);
	return 0;
}

static int parse_log_level(struct parse_state *s, const struct key_def *def, const char *value,
			void *field)
{
	const char *key = def->name;

	int l = log_level_from_string(value);

	if (l < 0) {
		config_error(s, key, "unknown log level '%s'; choose err, warning, notice, info or "
				     "debug",
			     value);
		return 0;
	}
	*(int *)field = l;
	return 0;
}

#define DAEMON_KEY(n, p, f)  { n, p, offsetof(struct vpmd_config, f), 0, 0, NULL, false }
#define DAEMON_KEY_RANGE(n, p, f, lo, hi, t)                                                       \
	{ n, p, offsetof(struct vpmd_config, f), lo, hi, t, false }
#define POOL_KEY(n, p, f)    { n, p, offsetof(struct pool_config, f), 0, 0, NULL, false }

static const struct key_def daemon_keys[] = {
	DAEMON_KEY("socket", parse_socket_field, socket_path),
	DAEMON_KEY("socket_mode", parse_mode_field, socket_mode),
	/* empty: nobody but root may use vpmd */
	{ "socket_group", parse_string_field, offsetof(struct vpmd_config, socket_group), 0, 0, NULL,
	  true },
	DAEMON_KEY("state_dir", parse_abs_path_field, state_dir),
	DAEMON_KEY("runtime_dir", parse_abs_path_field, runtime_dir),
	DAEMON_KEY("backend", parse_backend, backend),
	/* empty: vpmd does not talk to libvirt */
	{ "libvirt_uri", parse_string_field, offsetof(struct vpmd_config, libvirt_uri), 0, 0, NULL,
	  true },
	DAEMON_KEY_RANGE("dram_budget", parse_size_field, dram_budget, 4096, 0, "at least 4K"),
	DAEMON_KEY_RANGE("epoch_interval", parse_duration_field, epoch_interval_usec,
			 USEC_PER_MSEC, 60 * USEC_PER_SEC, "1ms to 60s"),
	DAEMON_KEY("default_ratio", parse_ratio_field, default_ratio),
	DAEMON_KEY_RANGE("migration_rate", parse_size_field, migration_rate, 1024 * 1024, 0,
			 "at least 1M (bytes per second)"),
	DAEMON_KEY("copy_threads", parse_copy_threads, copy_threads),
	DAEMON_KEY("max_clients", parse_max_clients, max_clients),
	DAEMON_KEY_RANGE("client_idle_timeout", parse_duration_field, client_idle_timeout_usec,
			 USEC_PER_SEC, 24 * 3600 * USEC_PER_SEC, "1s to 24h"),
	DAEMON_KEY_RANGE("max_request_size", parse_size_field, max_request_size, 1024,
			 VPM_REQUEST_MAX_LIMIT, "1K to 1M"),
	DAEMON_KEY("log_level", parse_log_level, log_level),
};

/* [hook]'s settings are kept in struct vpmd_config too */
static const struct key_def hook_keys[] = {
	DAEMON_KEY("on_vpmd_down", parse_hook_on_vpmd_down, hook_on_vpmd_down),
};

static const struct key_def pool_keys[] = {
	POOL_KEY("path", parse_abs_path_field, path),
	POOL_KEY("kind", parse_pool_kind, kind),
	POOL_KEY("size", parse_size_field, size),
};

static bool valid_pool_name(const char *n)
{
	size_t l = strlen(n);

	if (l == 0 || l > VPMD_POOL_NAME_MAX)
		return false;
	for (const char *p = n; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("_.-", *p))
			return false;
	return true;
}

static int start_section(struct parse_state *s, const char *name)
{
	struct pool_config *pools;

	s->pool = NULL;
	s->seen_pool_keys = 0;

	if (streq(name, "daemon")) {
		s->section = SECTION_DAEMON;
		return 0;
	}
	if (streq(name, "hook")) {
		s->section = SECTION_HOOK;
		return 0;
	}
	if (strncmp(name, "pool", 4) != 0 || (name[4] != ' ' && name[4] != '\t')) {
		s->section = SECTION_UNKNOWN;
		config_error(s, NULL,
			     "unknown section [%s]; sections are [daemon], [hook] and [pool NAME]",
			     name);
		return 0;
	}

	s->section = SECTION_POOL;
	name += 5;
	while (*name == ' ' || *name == '\t')
		name++;
	if (!valid_pool_name(name)) {
		config_error(s, NULL,
			     "pool name '%s' is invalid; use 1-%d letters, digits, '_', '.' or '-'",
			     name, VPMD_POOL_NAME_MAX);
		s->section = SECTION_UNKNOWN;
		return 0;
	}
	if (config_find_pool(s->config, name)) {
		config_error(s, NULL, "pool '%s' is defined twice; give each pool its own name",
			     name);
		s->section = SECTION_UNKNOWN;
		return 0;
	}
	if (s->config->n_pools >= VPMD_MAX_POOLS) {
		config_error(s, NULL, "more than %d pools", VPMD_MAX_POOLS);
		s->section = SECTION_UNKNOWN;
		return 0;
	}

	pools = realloc(s->config->pools, (s->config->n_pools + 1) * sizeof(*pools));
	if (!pools)
		return -ENOMEM;
	s->config->pools = pools;
	s->pool = &pools[s->config->n_pools];
	*s->pool = (struct pool_config){ .line = s->line, .kind = POOL_KIND_AUTO };
	s->pool->name = strdup(name);
	if (!s->pool->name)
		return -ENOMEM;
	s->config->n_pools++;
	return 0;
}

/* Note section headers as the reader passes them, so that empty sections are seen too. */
static int scan_section_header(struct parse_state *s, const char *line)
{
	const char *p = line, *end;
	char name[128];

	while (*p == ' ' || *p == '\t')
		p++;
	if (*p != '[')
		return 0;
	end = strchr(p, ']');
	if (!end)
		return 0; /* inih reports the syntax error */
	p++;
	while (*p == ' ' || *p == '\t')
		p++;
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if ((size_t)(end - p) >= sizeof(name)) {
		config_error(s, NULL, "section name too long");
		s->section = SECTION_UNKNOWN;
		s->pool = NULL;
		return 0;
	}
	memcpy(name, p, (size_t)(end - p));
	name[end - p] = '\0';
	return start_section(s, name);
}

static char *config_reader(char *str, int num, void *stream)
{
	struct parse_state *s = stream;
	const char *nl;
	size_t len;

	if (!*s->pos)
		return NULL;
	s->line++;
	nl = strchr(s->pos, '\n');
	len = nl ? (size_t)(nl - s->pos) + 1 : strlen(s->pos);
	if (len >= (size_t)num) {
		config_error(s, NULL, "line longer than %d bytes", num - 2);
		s->pos += len;
		strcpy(str, ";\n"); /* hand inih a comment instead */
		return str;
	}
	memcpy(str, s->pos, len);
	str[len] = '\0';
	s->pos += len;
	if (scan_section_header(s, str) < 0)
		return NULL;
	return str;
}

static int set_key(struct parse_state *s, const struct key_def *defs, size_t n, uint64_t *seen,
		   void *base, const char *name, const char *value)
{
	for (size_t i = 0; i < n; i++) {
		if (!streq(defs[i].name, name))
			continue;
		if (*seen & (UINT64_C(1) << i)) {
			config_error(s, name, "set twice in the same section; keep one line");
			return 0;
		}
		*seen |= UINT64_C(1) << i;
		if (*value == '\0' && !defs[i].allow_empty) {
			config_error(s, name, "empty value");
			return 0;
		}
		if (!utf8_valid(value)) {
			config_error(s, name, "value is not valid UTF-8; write it in UTF-8");
			return 0;
		}
		return defs[i].parse(s, &defs[i], value, (char *)base + defs[i].offset);
	}
	config_error(s, name, "unknown key in this section; see vpmd.conf(5)");
	return 0;
}

static int config_handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse_state *s = user;
	int r = 0;

	(void)section;
	switch (s->section) {
	case SECTION_NONE:
		config_error(s, name,
			     "outside any section; put it under [daemon], [hook] or [pool NAME]");
		break;
	case SECTION_DAEMON:
		r = set_key(s, daemon_keys, ELEMENTSOF(daemon_keys), &s->seen_daemon_keys,
			    s->config, name, value);
		break;
	case SECTION_HOOK:
		r = set_key(s, hook_keys, ELEMENTSOF(hook_keys), &s->seen_hook_keys, s->config,
			    name, value);
		break;
	case SECTION_POOL:
		r = set_key(s, pool_keys, ELEMENTSOF(pool_keys), &s->seen_pool_keys, s->pool, name,
			    value);
		break;
	case SECTION_UNKNOWN:
		break; /* already reported at the header */
	}
	return r < 0 ? 0 : 1;
}

static int set_defaults(struct vpmd_config *c)
{
	c->socket_mode = 0660;
	c->backend = BACKEND_SIM;
	c->dram_budget = UINT64_C(1) << 30;
	c->epoch_interval_usec = 100 * USEC_PER_MSEC;
	c->default_ratio = 1.0;
	c->migration_rate = UINT64_C(1) << 30;
	c->max_clients = 64;
	c->client_idle_timeout_usec = 60 * USEC_PER_SEC;
	c->max_request_size = VPM_REQUEST_MAX_DEFAULT;
	c->log_level = 6; /* LOG_INFO */
	c->hook_on_vpmd_down = HOOK_ON_VPMD_DOWN_POLICY;
	if (free_and_strdup(&c->socket_path, VPM_DEFAULT_SOCKET) < 0 ||
	    free_and_strdup(&c->socket_group, "vpm") < 0 ||
	    free_and_strdup(&c->state_dir, "/var/lib/vpmd") < 0 ||
	    free_and_strdup(&c->runtime_dir, "/run/vpmd") < 0 ||
	    free_and_strdup(&c->libvirt_uri, "qemu:///system") < 0)
		return -ENOMEM;
	return 0;
}

/* Checks that need the whole file: relations between keys. */
static void validate(struct parse_state *s)
{
	struct vpmd_config *c = s->config;

	for (size_t i = 0; i < c->n_pools; i++) {
		struct pool_config *p = &c->pools[i];

		s->line = p->line;
		if (!p->path) {
			config_error(s, NULL, "pool '%s' has no path; add path = /dev/daxX.Y or a file",
				     p->name);
			continue;
		}
		if (p->size && p->size % 4096)
			config_error(s, "size", "pool '%s': %llu is not a multiple of 4K", p->name,
				     (unsigned long long)p->size);
		if (p->size && p->kind == POOL_KIND_DEVDAX)
			config_error(s, "size",
				     "pool '%s' is a devdax device; its size comes from the device, "
				     "remove the size key",
				     p->name);
		for (size_t j = 0; j < i; j++)
			if (c->pools[j].path && streq(c->pools[j].path, p->path))
				config_error(s, "path", "pool '%s' uses the same path as pool '%s'",
					     p->name, c->pools[j].name);
	}
	s->line = 0;
}

static void finish_errors(struct parse_state *s, char **buf, size_t *len, char **ret_errors)
{
	if (s->errors)
		fclose(s->errors);
	s->errors = NULL;
	if (ret_errors && s->n_errors > 0) {
		/* strip the final newline */
		if (*len > 0 && (*buf)[*len - 1] == '\n')
			(*buf)[*len - 1] = '\0';
		*ret_errors = TAKE_PTR(*buf);
	}
	free(*buf);
	*buf = NULL;
}

int config_load_string(const char *text, const char *file, struct vpmd_config **ret_config,
		       char **ret_errors)
{
	_cleanup_(config_freep) struct vpmd_config *c = NULL;
	char *errbuf = NULL;
	size_t errlen = 0;
	struct parse_state s = { .file = file, .text = text, .pos = text };

	if (strncmp(text, "\xef\xbb\xbf", 3) == 0)
		s.pos += 3; /* UTF-8 byte order mark */
	int r;

	if (ret_errors)
		*ret_errors = NULL;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	s.config = c;
	c->file = strdup(file);
	if (!c->file || set_defaults(c) < 0)
		return -ENOMEM;
	s.errors = open_memstream(&errbuf, &errlen);
	if (!s.errors)
		return -ENOMEM;

	/* Debian's inih has these as run-time settings; the defaults are too tight for paths. */
	ini_use_stack = false;
	ini_max_line = CONFIG_LINE_MAX;
	ini_initial_alloc = CONFIG_LINE_MAX;
	ini_allow_realloc = false;
	ini_allow_bom = false; /* skipped below, so that our reader sees the same first line */
	ini_allow_multiline = false;
	ini_allow_no_value = false;
	ini_stop_on_first_error = false;

	r = ini_parse_stream(config_reader, &s, config_handler, &s);
	if (r == -2) {
		finish_errors(&s, &errbuf, &errlen, NULL);
		return -ENOMEM;
	}
	if (r > 0) {
		s.line = (unsigned)r;
		config_error(&s, NULL, "syntax error; expected [section], key = value or a comment");
	}
	validate(&s);

	r = s.n_errors > 0 ? -EINVAL : 0;
	finish_errors(&s, &errbuf, &errlen, ret_errors);
	if (r < 0)
		return r;
	*ret_config = TAKE_PTR(c);
	return 0;
}

int config_load(const char *file, struct vpmd_config **ret_config, char **ret_errors)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *text = NULL;
	struct stat st;
	size_t done = 0;

	if (ret_errors)
		*ret_errors = NULL;
	fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return negative_errno();
	if (fstat(fd, &st) < 0)
		return negative_errno();
	if (!S_ISREG(st.st_mode))
		return -EBADFD;
	if (st.st_size > CONFIG_FILE_MAX)
		return -EFBIG;
	text = malloc((size_t)st.st_size + 1);
	if (!text)
		return -ENOMEM;
	while (done < (size_t)st.st_size) {
		ssize_t n = read(fd, text + done, (size_t)st.st_size - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return negative_errno();
		if (n == 0)
			break;
		done += (size_t)n;
	}
	text[done] = '\0';
	if (strlen(text) != done) {
		if (ret_errors && asprintf(ret_errors, "%s: contains a NUL byte; not a text file",
					   file) < 0)
			*ret_errors = NULL;
		return -EINVAL;
	}
	return config_load_string(text, file, ret_config, ret_errors);
}

struct vpmd_config *config_free(struct vpmd_config *c)
{
	if (!c)
		return NULL;
	for (size_t i = 0; i < c->n_pools; i++) {
		free(c->pools[i].name);
		free(c->pools[i].path);
	}
	free(c->pools);
	free(c->file);
	free(c->socket_path);
	free(c->socket_group);
	free(c->state_dir);
	free(c->runtime_dir);
	free(c->libvirt_uri);
	free(c);
	return NULL;
}

const struct pool_config *config_find_pool(const struct vpmd_config *c, const char *name)
{
	for (size_t i = 0; i < c->n_pools; i++)
		if (c->pools[i].name && streq(c->pools[i].name, name))
			return &c->pools[i];
	return NULL;
}

bool pool_config_equal(const struct pool_config *a, const struct pool_config *b)
{
	return streq(a->name, b->name) && streq_ptr(a->path, b->path) && a->kind == b->kind &&
	       a->size == b->size;
}
