// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libvirt domain XML, read the way libvirt 9.0 reads it (src/conf/domain_conf.c): sizes in
 * libvirt's units rounded up to KiB, a device's access defaulting to the domain's
 * <memoryBacking><access mode=...>, label, readonly, alignsize and pmem only for nvdimm.
 *
 * The document is parsed with a parser context of our own: no network, no DTD loading, no
 * entity substitution, and any <!ENTITY> declaration stops the parse (libvirt never writes a
 * DTD, and entities are how XML gets amplified). libxml2's errors go to the context's own
 * handler, never to stderr or to a handler other code installed. The tree is walked by hand
 * (no XPath): only fixed paths are looked at, so the work is linear in the document's size.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#include "domain-xml.h"
#include "engine.h"
#include "macro.h"
#include "parse-util.h"
#include "policy.h"

#define XML_OPTIONS (XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING)

#define PM_PAGE		 UINT64_C(4096)
#define NVDIMM_LABEL_MIN (UINT64_C(128) << 10) /* libvirt: "nvdimm label must be at least 128KiB"  \
						*/
#define SIZE_LIMIT	   ((uint64_t)INT64_MAX) /* libvirt caps memory sizes at LLONG_MAX bytes */
#define EPOCH_INTERVAL_MIN USEC_PER_MSEC
#define EPOCH_INTERVAL_MAX (60 * USEC_PER_SEC)
#define QUOTE_MAX	   64 /* bytes of untrusted text quoted in a message */

DEFINE_TRIVIAL_CLEANUP_FUNC(xmlDocPtr, xmlFreeDoc);
DEFINE_TRIVIAL_CLEANUP_FUNC(xmlParserCtxtPtr, xmlFreeParserCtxt);

static inline void xmlcharfreep(xmlChar **p)
{
	if (*p)
		xmlFree(*p);
}
#define _cleanup_xmlfree_ _cleanup_(xmlcharfreep)

struct errbuf {
	char *buf;
	size_t len;
};

/* Replace what must not be in a one-line message (control bytes, non-ASCII) with '?'. */
static void make_one_line(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			*s = '?';
}

static int fail(struct errbuf *e, int r, const char *fmt, ...) _printf_(3, 4);
static int fail(struct errbuf *e, int r, const char *fmt, ...)
{
	va_list ap;

	if (!e->buf || e->len == 0)
		return r;
	va_start(ap, fmt);
	vsnprintf(e->buf, e->len, fmt, ap);
	va_end(ap);
	make_one_line(e->buf);
	return r;
}

/* ---- reading the document ------------------------------------------------------------- */

struct read_state {
	bool entity_declared;
	char first_error[160];
};

static void refuse_entity_decl(void *ctx, const xmlChar *name, int type, const xmlChar *public_id,
			       const xmlChar *system_id, xmlChar *content)
{
	xmlParserCtxtPtr ctxt = ctx;
	struct read_state *st = ctxt->_private;

	(void)name;
	(void)type;
	(void)public_id;
	(void)system_id;
	(void)content;
	st->entity_declared = true;
	xmlStopParser(ctxt);
}

static void record_xml_error(void *ctx, xmlErrorPtr error)
{
	xmlParserCtxtPtr ctxt = ctx;
	struct read_state *st = ctxt->_private;

	if (st->first_error[0] || error->level < XML_ERR_ERROR)
		return;
	snprintf(st->first_error, sizeof(st->first_error), "line %d: %s", error->line,
		 error->message ? error->message : "parse error");
	make_one_line(st->first_error);
}

static int check_input(const char *xml, size_t len, struct errbuf *e)
{
	const char *nul;

	if (!xml || len == 0)
		return fail(e, -EINVAL, "empty input: expected an XML document");
	if (len > DOMAIN_XML_MAX)
		return fail(e, -E2BIG, "XML is %zu bytes, more than the %u accepted", len,
			    DOMAIN_XML_MAX);
	nul = memchr(xml, '\0', len);
	if (nul)
		return fail(e, -EINVAL, "XML contains a NUL byte at offset %zu",
			    (size_t)(nul - xml));
	return 0;
}

/* A parser context that loads nothing from outside and keeps its errors to itself. */
static xmlParserCtxtPtr new_parser(const char *xml, size_t len, struct read_state *st)
{
	xmlParserCtxtPtr ctxt;

	ctxt = xmlCreateMemoryParserCtxt(xml, (int)len);
	if (!ctxt)
		return NULL;
	xmlCtxtUseOptions(ctxt, XML_OPTIONS);
	/* these start from process-wide defaults: pin them whatever other code set */
	ctxt->loadsubset = 0;
	ctxt->replaceEntities = 0;
	ctxt->validate = 0;
	ctxt->_private = st;
	ctxt->sax->entityDecl = refuse_entity_decl;
	ctxt->sax->serror = record_xml_error;
	return ctxt;
}

static int read_xml(const char *xml, size_t len, xmlDocPtr *ret, struct errbuf *e)
{
	_cleanup_(xmlFreeParserCtxtp) xmlParserCtxtPtr ctxt = NULL;
	_cleanup_(xmlFreeDocp) xmlDocPtr doc = NULL;
	struct read_state st = {};
	int r;

	r = check_input(xml, len, e);
	if (r < 0)
		return r;
	ctxt = new_parser(xml, len, &st);
	if (!ctxt)
		return fail(e, -ENOMEM, "out of memory creating the XML parser");

	xmlParseDocument(ctxt);
	doc = TAKE_PTR(ctxt->myDoc);
	if (st.entity_declared)
		return fail(e, -EINVAL, "<!ENTITY> declarations are not accepted in domain XML");
	if (ctxt->errNo == XML_ERR_NO_MEMORY)
		return fail(e, -ENOMEM, "out of memory parsing XML");
	if (!ctxt->wellFormed || !doc || !xmlDocGetRootElement(doc))
		return fail(e, -EINVAL, "not well-formed XML: %s",
			    st.first_error[0] ? st.first_error : "no root element");
	*ret = TAKE_PTR(doc);
	return 0;
}

/* ---- tree helpers --------------------------------------------------------------------- */

/* An element of libvirt's schema (no namespace) called name. */
static bool is_element(const xmlNode *n, const char *name)
{
	return n->type == XML_ELEMENT_NODE && !n->ns && xmlStrEqual(n->name, BAD_CAST name);
}

/* The first child element called name, like libvirt's "./name[1]". */
static xmlNode *child(const xmlNode *parent, const char *name)
{
	if (!parent)
		return NULL;
	for (xmlNode *n = parent->children; n; n = n->next)
		if (is_element(n, name))
			return n;
	return NULL;
}

/* A malloc()ed copy of libxml2's string, so that callers free() it. */
static char *dup_xml_string(xmlChar *s)
{
	char *copy;

	if (!s)
		return NULL;
	copy = strdup((const char *)s);
	xmlFree(s);
	return copy;
}

/* An element's text; NULL only without memory. */
static char *text_of(const xmlNode *n)
{
	return dup_xml_string(xmlNodeGetContent(n));
}

/* An attribute's value, NULL when absent (or without memory). */
static char *attr_of(const xmlNode *n, const char *name)
{
	return dup_xml_string(xmlGetNoNsProp(n, BAD_CAST name));
}

/* Decimal or, with 0x, hexadecimal digits only: no sign, no space. */
static int parse_u64(const char *s, uint64_t *ret)
{
	int base = 10;
	const char *digits = "0123456789";
	char *end = NULL;
	unsigned long long v;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		digits = "0123456789abcdefABCDEF";
		s += 2;
	}
	if (!*s || strspn(s, digits) != strlen(s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, base);
	if (errno == ERANGE)
		return -ERANGE;
	*ret = v;
	return 0;
}

/* A number in element text: libvirt reads it with strtoull, so allow surrounding space. */
static int parse_u64_text(const char *s, uint64_t *ret)
{
	char buf[32];
	size_t l;

	while (isspace((unsigned char)*s))
		s++;
	l = strlen(s);
	while (l > 0 && isspace((unsigned char)s[l - 1]))
		l--;
	if (l == 0 || l >= sizeof(buf) || (s[0] == '0' && l > 1 && (s[1] == 'x' || s[1] == 'X')))
		return -EINVAL;
	memcpy(buf, s, l);
	buf[l] = '\0';
	return parse_u64(buf, ret);
}

/*
 * libvirt's unit suffixes (virScaleInteger), case-insensitive: b, byte, bytes; a single
 * k/m/g/t/p/e or that letter plus "iB" for powers of 1024; the letter plus "B" for powers of
 * 1000. Returns 0 for an unknown unit.
 */
static uint64_t unit_factor(const char *u)
{
	static const char powers[] = "kmgtpe";
	const char *p;
	uint64_t base, factor = 1;

	if (strcasecmp(u, "b") == 0 || strcasecmp(u, "byte") == 0 || strcasecmp(u, "bytes") == 0)
		return 1;
	if (u[0] == '\0')
		return 0;
	if (u[1] == '\0' || strcasecmp(u + 1, "iB") == 0)
		base = 1024;
	else if ((u[1] == 'b' || u[1] == 'B') && u[2] == '\0')
		base = 1000;
	else
		return 0;
	p = strchr(powers, tolower((unsigned char)u[0]));
	if (!p)
		return 0;
	for (const char *q = powers; q <= p; q++)
		factor *= base;
	return factor;
}

/*
 * A libvirt memory size element (<size unit='...'>N</size>) in bytes, rounded up to KiB as
 * libvirt stores it. Absent: 0. The unit defaults to KiB, as does an empty one.
 */
static int parse_size_element(const xmlNode *n, const char *what, uint64_t *ret, struct errbuf *e)
{
	_cleanup_free_ char *unit = NULL, *text = NULL;
	uint64_t v, factor = 1024;

	*ret = 0;
	if (!n)
		return 0;
	unit = attr_of(n, "unit");
	if (unit && unit[0]) {
		factor = unit_factor(unit);
		if (factor == 0)
			return fail(e, -EINVAL, "%s: unknown unit '%.*s'", what, QUOTE_MAX, unit);
	}
	text = text_of(n);
	if (!text)
		return fail(e, -ENOMEM, "out of memory");
	if (parse_u64_text(text, &v) < 0)
		return fail(e, -EINVAL, "%s: '%.*s' is not a decimal number", what, QUOTE_MAX,
			    text);
	if (v > SIZE_LIMIT / factor)
		return fail(e, -EINVAL, "%s: %.*s %s overflows: at most %" PRIu64 " bytes", what,
			    QUOTE_MAX, text, unit && unit[0] ? unit : "KiB", SIZE_LIMIT);
	v *= factor;
	*ret = (v + 1023) / 1024 * 1024;
	return 0;
}

/* ---- devices -------------------------------------------------------------------------- */

struct dev_ctx {
	unsigned index;	     /* among the domain's PM devices */
	bool default_shared; /* <memoryBacking><access mode='shared'/> */
	struct errbuf *e;
	char what[96]; /* "nvdimm #0", for errors */
};

static const char *model_name(enum domain_pmdev_model m)
{
	return m == DOMAIN_PMDEV_NVDIMM ? "nvdimm" : "virtio-pmem";
}

/* A <memory> element's PM model, or -1 for volatile models (dimm, virtio-mem, ...). */
static int pm_model_of(const xmlNode *mem)
{
	_cleanup_free_ char *model = attr_of(mem, "model");

	if (!model)
		return -1;
	if (streq(model, "nvdimm"))
		return DOMAIN_PMDEV_NVDIMM;
	if (streq(model, "virtio-pmem"))
		return DOMAIN_PMDEV_VIRTIO_PMEM;
	return -1;
}

static int parse_access(const xmlNode *mem, struct domain_pmdev *d, struct dev_ctx *c)
{
	_cleanup_free_ char *access = attr_of(mem, "access");

	/* libvirt takes the domain's default for nvdimm only; virtio-pmem must say shared */
	if (!access || !access[0])
		d->shared = d->model == DOMAIN_PMDEV_NVDIMM && c->default_shared;
	else if (streq(access, "shared"))
		d->shared = true;
	else if (streq(access, "private"))
		d->shared = false;
	else
		return fail(c->e, -EINVAL, "%s: access='%.*s' is neither 'shared' nor 'private'",
			    c->what, QUOTE_MAX, access);
	return 0;
}

static int parse_source(const xmlNode *source, struct domain_pmdev *d, struct dev_ctx *c)
{
	char what[128];
	xmlNode *path = child(source, "path");
	int r;

	if (path) {
		d->path = text_of(path);
		if (!d->path)
			return fail(c->e, -ENOMEM, "out of memory");
	}
	if (d->model != DOMAIN_PMDEV_NVDIMM)
		return 0;
	d->pmem = child(source, "pmem") != NULL;
	snprintf(what, sizeof(what), "%s <source><alignsize>", c->what);
	r = parse_size_element(child(source, "alignsize"), what, &d->align_size, c->e);
	return r;
}

static int parse_node(const xmlNode *node, struct domain_pmdev *d, struct dev_ctx *c)
{
	_cleanup_free_ char *text = NULL;
	uint64_t v;

	d->node = -1;
	if (!node)
		return 0;
	text = text_of(node);
	if (!text)
		return fail(c->e, -ENOMEM, "out of memory");
	if (parse_u64_text(text, &v) < 0 || v > INT_MAX)
		return fail(c->e, -EINVAL, "%s <target><node>: '%.*s' is not a NUMA node number",
			    c->what, QUOTE_MAX, text);
	d->node = (int)v;
	return 0;
}

static int parse_target(const xmlNode *target, struct domain_pmdev *d, struct dev_ctx *c)
{
	char what[128];
	int r;

	snprintf(what, sizeof(what), "%s <target><size>", c->what);
	r = parse_size_element(child(target, "size"), what, &d->size, c->e);
	if (r < 0)
		return r;
	r = parse_node(child(target, "node"), d, c);
	if (r < 0 || d->model != DOMAIN_PMDEV_NVDIMM)
		return r;
	d->readonly = child(target, "readonly") != NULL;
	snprintf(what, sizeof(what), "%s <target><label><size>", c->what);
	return parse_size_element(child(child(target, "label"), "size"), what, &d->label_size,
				  c->e);
}

static int parse_alias(const xmlNode *alias, struct domain_pmdev *d, struct dev_ctx *c)
{
	if (!alias)
		return 0;
	d->alias = attr_of(alias, "name");
	if (d->alias && strlen(d->alias) >= DOMAIN_NAME_MAX)
		return fail(c->e, -EINVAL, "%s <alias>: name is %zu bytes, at most %u are accepted",
			    c->what, strlen(d->alias), DOMAIN_NAME_MAX - 1);
	return 0;
}

/* <address type='dimm' slot='N' base='0x...'>: libvirt writes base in hex; decimal is taken too. */
static int parse_address(const xmlNode *address, struct domain_pmdev *d, struct dev_ctx *c)
{
	_cleanup_free_ char *type = NULL, *slot = NULL, *base = NULL;
	uint64_t v;

	if (!address)
		return 0;
	type = attr_of(address, "type");
	if (!type || !streq(type, "dimm"))
		return 0; /* virtio-pmem sits on PCI: no base */
	slot = attr_of(address, "slot");
	if (slot) {
		if (parse_u64(slot, &v) < 0 || v > UINT32_MAX)
			return fail(c->e, -EINVAL, "%s <address>: slot='%.*s' is not a slot number",
				    c->what, QUOTE_MAX, slot);
		d->slot = (uint32_t)v;
	}
	base = attr_of(address, "base");
	if (base) {
		if (parse_u64(base, &d->base) < 0)
			return fail(c->e, -EINVAL, "%s <address>: base='%.*s' is not an address",
				    c->what, QUOTE_MAX, base);
		d->has_base = true;
	}
	return 0;
}

static int set_problem(struct domain_pmdev *d, const struct dev_ctx *c, const char *fmt, ...)
    _printf_(3, 4);
static int set_problem(struct domain_pmdev *d, const struct dev_ctx *c, const char *fmt, ...)
{
	char head[DOMAIN_NAME_MAX + 160], tail[256];
	va_list ap;

	if (d->alias)
		snprintf(head, sizeof(head), "%s '%s'", model_name(d->model), d->alias);
	else
		snprintf(head, sizeof(head), "%s #%u", model_name(d->model), c->index);
	va_start(ap, fmt);
	vsnprintf(tail, sizeof(tail), fmt, ap);
	va_end(ap);
	if (asprintf(&d->problem, "%s (%.*s): %s", head, 2 * QUOTE_MAX,
		     d->path ? d->path : "no path", tail) < 0) {
		d->problem = NULL;
		return -ENOMEM;
	}
	make_one_line(d->problem);
	return 0;
}

static int check_path(struct domain_pmdev *d, const struct dev_ctx *c)
{
	if (!d->path || !d->path[0])
		return set_problem(d, c, "no <source><path>: add the image file's path");
	if (strlen(d->path) >= PATH_MAX)
		return set_problem(d, c,
				   "<source><path> is %zu bytes, longer than PATH_MAX: "
				   "use a shorter path",
				   strlen(d->path));
	if (d->path[0] != '/')
		return set_problem(d, c,
				   "<source><path> is not absolute: use the image file's "
				   "full path");
	return 1;
}

/*
 * Sizes: d->size is <target><size> as libvirt has it, i.e. the whole image file (QEMU's
 * memory-backend-file size=), label area included. The guest sees size - label_size bytes
 * of PM; QEMU needs that to be a multiple of the page size, and vpmd maps the whole file in
 * 4 KiB pages, so both size and size - label_size must be multiples of 4 KiB.
 */
static int check_sizes(struct domain_pmdev *d, const struct dev_ctx *c)
{
	if (d->size == 0)
		return set_problem(d, c, "no <target><size> or size 0: set the device's size");
	if (d->size % PM_PAGE)
		return set_problem(d, c,
				   "size %" PRIu64 " KiB is not a multiple of 4 KiB: round "
				   "<target><size> to a multiple of 4 KiB",
				   d->size >> 10);
	if (d->label_size && d->label_size < NVDIMM_LABEL_MIN)
		return set_problem(d, c,
				   "label size %" PRIu64 " KiB is below 128 KiB: set "
				   "<label><size unit='KiB'>128</size> or more",
				   d->label_size >> 10);
	if (d->label_size >= d->size)
		return set_problem(d, c,
				   "label size %" PRIu64 " KiB is not smaller than the device "
				   "(%" PRIu64 " KiB): grow <target><size> or shrink the label",
				   d->label_size >> 10, d->size >> 10);
	if ((d->size - d->label_size) % PM_PAGE)
		return set_problem(d, c,
				   "size minus label size (%" PRIu64 " KiB) is not a multiple "
				   "of 4 KiB: make the label size a multiple of 4 KiB",
				   (d->size - d->label_size) >> 10);
	return 1;
}

static int check_model_rules(struct domain_pmdev *d, const struct dev_ctx *c)
{
	if (d->model == DOMAIN_PMDEV_NVDIMM && !d->shared)
		return set_problem(d, c,
				   "access is not 'shared', so guest writes would never reach "
				   "the image file: set access='shared'");
	if (d->model == DOMAIN_PMDEV_VIRTIO_PMEM && !d->shared)
		return set_problem(d, c,
				   "libvirt runs virtio-pmem only with shared access: set "
				   "access='shared'");
	if (d->model == DOMAIN_PMDEV_VIRTIO_PMEM && d->node >= 0)
		return set_problem(d, c,
				   "virtio-pmem does not support NUMA nodes: remove "
				   "<target><node>");
	return 1;
}

/*
 * Whether vpmd can serve the device; the first reason it cannot becomes ->problem. A
 * readonly nvdimm (QEMU's unarmed=on) is fine: the guest only reads, ->readonly says so.
 */
static int check_servable(struct domain_pmdev *d, const struct dev_ctx *c)
{
	int r;

	r = check_path(d, c);
	if (r <= 0)
		return r;
	r = check_sizes(d, c);
	if (r <= 0)
		return r;
	r = check_model_rules(d, c);
	return r < 0 ? r : 0;
}

static int parse_pmdev(const xmlNode *mem, struct domain_pmdev *d, struct dev_ctx *c)
{
	int r;

	snprintf(c->what, sizeof(c->what), "<memory model='%s'> #%u", model_name(d->model),
		 c->index);
	r = parse_access(mem, d, c);
	if (r >= 0)
		r = parse_source(child(mem, "source"), d, c);
	if (r >= 0)
		r = parse_target(child(mem, "target"), d, c);
	if (r >= 0)
		r = parse_alias(child(mem, "alias"), d, c);
	if (r >= 0)
		r = parse_address(child(mem, "address"), d, c);
	if (r >= 0)
		r = check_servable(d, c);
	if (r == -ENOMEM)
		return fail(c->e, r, "out of memory");
	return r;
}

static unsigned count_pmdevs(const xmlNode *devices)
{
	unsigned n = 0;

	for (xmlNode *m = devices ? devices->children : NULL; m; m = m->next)
		if (is_element(m, "memory") && pm_model_of(m) >= 0)
			n++;
	return n;
}

static bool default_access_shared(const xmlNode *domain)
{
	_cleanup_free_ char *mode = NULL;
	xmlNode *access = child(child(domain, "memoryBacking"), "access");

	if (!access)
		return false;
	mode = attr_of(access, "mode");
	return mode && streq(mode, "shared");
}

static int parse_pmdevs(const xmlNode *domain, struct domain_info *info, struct errbuf *e)
{
	xmlNode *devices = child(domain, "devices");
	struct dev_ctx c = {.e = e, .default_shared = default_access_shared(domain)};
	unsigned n = count_pmdevs(devices);
	int r;

	if (n > DOMAIN_PMDEVS_MAX)
		return fail(e, -E2BIG,
			    "<devices>: %u persistent memory devices, at most %u are "
			    "supported",
			    n, DOMAIN_PMDEVS_MAX);
	if (n == 0)
		return 0;
	info->pmdevs = calloc(n, sizeof(*info->pmdevs));
	if (!info->pmdevs)
		return fail(e, -ENOMEM, "out of memory");

	for (xmlNode *m = devices->children; m; m = m->next) {
		struct domain_pmdev *d;
		int model;

		if (!is_element(m, "memory"))
			continue;
		model = pm_model_of(m);
		if (model < 0)
			continue; /* volatile memory: not ours */
		d = &info->pmdevs[info->n_pmdevs++];
		d->model = model;
		d->node = -1;
		c.index = info->n_pmdevs - 1;
		r = parse_pmdev(m, d, &c);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- name and UUID -------------------------------------------------------------------- */

static int hex_value(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = (char)tolower((unsigned char)ch);
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

/*
 * As libvirt's virUUIDParse: leading space, 16 bytes of two hex digits each with '-' or ' '
 * between bytes, trailing space. Written back in the canonical lower-case 8-4-4-4-12 form.
 */
static int normalize_uuid(const char *s, char out[static 37])
{
	uint8_t bytes[16];
	unsigned i = 0;
	size_t o = 0;

	while (isspace((unsigned char)*s))
		s++;
	while (i < sizeof(bytes)) {
		int hi, lo;

		if (*s == '-' || *s == ' ') {
			s++;
			continue;
		}
		hi = hex_value(s[0]);
		lo = hi < 0 ? -1 : hex_value(s[1]);
		if (lo < 0)
			return -EINVAL;
		bytes[i++] = (uint8_t)(hi << 4 | lo);
		s += 2;
	}
	while (isspace((unsigned char)*s))
		s++;
	if (*s)
		return -EINVAL;
	for (i = 0; i < sizeof(bytes); i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		o += (size_t)sprintf(out + o, "%02x", bytes[i]);
	}
	return 0;
}

static int parse_name(const xmlNode *domain, struct domain_info *info, struct errbuf *e)
{
	_cleanup_free_ char *name = NULL;
	xmlNode *n = child(domain, "name");

	if (!n)
		return fail(e, -EINVAL, "<domain>: no <name> element");
	name = text_of(n);
	if (!name)
		return fail(e, -ENOMEM, "out of memory");
	if (!name[0])
		return fail(e, -EINVAL, "<name> is empty");
	if (strlen(name) >= DOMAIN_NAME_MAX)
		return fail(e, -EINVAL, "<name> is %zu bytes, at most %u are accepted",
			    strlen(name), DOMAIN_NAME_MAX - 1);
	strcpy(info->name, name);
	return 0;
}

static int parse_uuid(const xmlNode *domain, struct domain_info *info, struct errbuf *e)
{
	_cleanup_free_ char *uuid = NULL;
	xmlNode *n = child(domain, "uuid");

	if (!n)
		return fail(e, -EINVAL, "<domain>: no <uuid> element");
	uuid = text_of(n);
	if (!uuid)
		return fail(e, -ENOMEM, "out of memory");
	if (normalize_uuid(uuid, info->uuid) < 0)
		return fail(e, -EINVAL, "<uuid>: '%.*s' is not a UUID", QUOTE_MAX, uuid);
	return 0;
}

/* ---- the policy element --------------------------------------------------------------- */

void domain_policy_init(struct domain_policy *p)
{
	*p = (struct domain_policy){
	    .has_ratio = false,
	    .ratio = 0,
	    .mode = -1,
	    .policy = -1,
	    .priority = -1,
	    .epoch_interval = 0,
	};
}

static bool in_our_namespace(const xmlNode *n)
{
	return n->ns && n->ns->href && xmlStrEqual(n->ns->href, BAD_CAST DOMAIN_METADATA_NS);
}

static int parse_policy_value(struct domain_policy *p, const char *name, const char *v,
			      struct errbuf *e)
{
	uint64_t u;
	int r;

	if (streq(name, "ratio")) {
		if (parse_ratio(v, &p->ratio) < 0)
			return fail(e, -EINVAL,
				    "<policy> ratio='%.*s': expected a number from 1 to %d",
				    QUOTE_MAX, v, VPM_RATIO_MAX);
		p->has_ratio = true;
	} else if (streq(name, "mode")) {
		r = vm_mode_from_string(v);
		if (r < 0)
			return fail(e, -EINVAL,
				    "<policy> mode='%.*s': expected native, epoch or hint",
				    QUOTE_MAX, v);
		p->mode = r;
	} else if (streq(name, "policy")) {
		r = policy_kind_from_string(v);
		if (r < 0)
			return fail(e, -EINVAL,
				    "<policy> policy='%.*s': expected vpm, static, "
				    "random, lru or oracle",
				    QUOTE_MAX, v);
		p->policy = r;
	} else if (streq(name, "priority")) {
		if (parse_uint_range(v, 0, 100, &u) < 0)
			return fail(e, -EINVAL, "<policy> priority='%.*s': expected 0 to 100",
				    QUOTE_MAX, v);
		p->priority = (int)u;
	} else if (streq(name, "epoch-interval")) {
		if (parse_duration(v, &u) < 0 || u < EPOCH_INTERVAL_MIN || u > EPOCH_INTERVAL_MAX)
			return fail(e, -EINVAL,
				    "<policy> epoch-interval='%.*s': expected a duration "
				    "from 1ms to 60s, e.g. 100ms",
				    QUOTE_MAX, v);
		p->epoch_interval = u;
	} else {
		return fail(e, -EINVAL,
			    "<policy>: unknown attribute '%.*s' (known: ratio, mode, "
			    "policy, priority, epoch-interval)",
			    QUOTE_MAX, name);
	}
	return 0;
}

static int parse_policy_attr(const xmlAttr *a, struct domain_policy *p, struct errbuf *e)
{
	_cleanup_xmlfree_ xmlChar *value = NULL;

	if (a->ns)
		return fail(e, -EINVAL, "<policy>: unknown attribute '%.*s:%.*s'", QUOTE_MAX,
			    a->ns->prefix ? (const char *)a->ns->prefix : "", QUOTE_MAX,
			    (const char *)a->name);
	value = xmlNodeListGetString(a->doc, a->children, 1);
	if (!value)
		value = xmlStrdup(BAD_CAST "");
	if (!value)
		return fail(e, -ENOMEM, "out of memory");
	return parse_policy_value(p, (const char *)a->name, (const char *)value, e);
}

static bool is_blank_text(const xmlNode *n)
{
	return (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) && xmlIsBlankNode(n);
}

static int parse_policy_element(const xmlNode *n, struct domain_policy *ret, struct errbuf *e)
{
	struct domain_policy p;
	int r;

	domain_policy_init(&p);
	for (const xmlAttr *a = n->properties; a; a = a->next) {
		r = parse_policy_attr(a, &p, e);
		if (r < 0)
			return r;
	}
	for (const xmlNode *c = n->children; c; c = c->next)
		if (c->type != XML_COMMENT_NODE && !is_blank_text(c))
			return fail(e, -EINVAL,
				    "<policy> must be empty: all settings are "
				    "attributes");
	*ret = p;
	return 0;
}

/* vpmd's element in <metadata>: at most one; other namespaces belong to others. */
static int parse_metadata(const xmlNode *domain, struct domain_info *info, struct errbuf *e)
{
	xmlNode *metadata = child(domain, "metadata");
	int r;

	for (xmlNode *n = metadata ? metadata->children : NULL; n; n = n->next) {
		if (n->type != XML_ELEMENT_NODE || !in_our_namespace(n))
			continue;
		if (!xmlStrEqual(n->name, BAD_CAST DOMAIN_METADATA_ELEMENT))
			return fail(e, -EINVAL,
				    "<metadata>: unknown element <%.*s> in namespace %s", QUOTE_MAX,
				    (const char *)n->name, DOMAIN_METADATA_NS);
		if (info->has_policy)
			return fail(e, -EINVAL,
				    "<metadata>: two <policy> elements in namespace %s: "
				    "keep one",
				    DOMAIN_METADATA_NS);
		r = parse_policy_element(n, &info->policy, e);
		if (r < 0)
			return r;
		info->has_policy = true;
	}
	return 0;
}

/* ---- entry points --------------------------------------------------------------------- */

static int parse_domain(const xmlNode *root, struct domain_info *info, struct errbuf *e)
{
	int r;

	if (!is_element(root, "domain"))
		return fail(e, -EINVAL, "root element is <%.*s>, expected <domain>", QUOTE_MAX,
			    (const char *)root->name);
	r = parse_name(root, info, e);
	if (r >= 0)
		r = parse_uuid(root, info, e);
	if (r >= 0)
		r = parse_metadata(root, info, e);
	if (r >= 0)
		r = parse_pmdevs(root, info, e);
	return r;
}

int domain_xml_parse(const char *xml, size_t len, struct domain_info **ret, char *errbuf,
		     size_t errlen)
{
	_cleanup_(xmlFreeDocp) xmlDocPtr doc = NULL;
	_cleanup_(domain_info_freep) struct domain_info *info = NULL;
	struct errbuf e = {errbuf, errlen};
	int r;

	*ret = NULL;
	if (errbuf && errlen)
		errbuf[0] = '\0';
	r = read_xml(xml, len, &doc, &e);
	if (r < 0)
		return r;
	info = calloc(1, sizeof(*info));
	if (!info)
		return fail(&e, -ENOMEM, "out of memory");
	domain_policy_init(&info->policy);
	r = parse_domain(xmlDocGetRootElement(doc), info, &e);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(info);
	return 0;
}

struct domain_info *domain_info_free(struct domain_info *d)
{
	if (!d)
		return NULL;
	for (unsigned i = 0; i < d->n_pmdevs; i++) {
		free(d->pmdevs[i].alias);
		free(d->pmdevs[i].path);
		free(d->pmdevs[i].problem);
	}
	free(d->pmdevs);
	free(d);
	return NULL;
}

static int dup_string(char **dst, const char *src)
{
	*dst = NULL;
	if (!src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : -ENOMEM;
}

int domain_info_dup(const struct domain_info *d, struct domain_info **ret)
{
	_cleanup_(domain_info_freep) struct domain_info *n = calloc(1, sizeof(*n));

	if (!n)
		return -ENOMEM;
	*n = *d;
	n->n_pmdevs = 0;
	n->pmdevs = calloc(MAX(d->n_pmdevs, 1u), sizeof(*n->pmdevs));
	if (!n->pmdevs)
		return -ENOMEM;
	for (unsigned i = 0; i < d->n_pmdevs; i++) {
		n->pmdevs[i] = d->pmdevs[i];
		n->pmdevs[i].alias = n->pmdevs[i].path = n->pmdevs[i].problem = NULL;
		n->n_pmdevs = i + 1;
		if (dup_string(&n->pmdevs[i].alias, d->pmdevs[i].alias) < 0 ||
		    dup_string(&n->pmdevs[i].path, d->pmdevs[i].path) < 0 ||
		    dup_string(&n->pmdevs[i].problem, d->pmdevs[i].problem) < 0)
			return -ENOMEM;
	}
	*ret = TAKE_PTR(n);
	return 0;
}

/*
 * virDomainGetMetadata(VIR_DOMAIN_METADATA_ELEMENT) returns the element without a namespace
 * (libvirt 9.0 strips it); the element as it stands in domain XML carries ours. Either is
 * taken, any other namespace is not.
 */
int domain_policy_parse(const char *xml, size_t len, struct domain_policy *ret, char *errbuf,
			size_t errlen)
{
	_cleanup_(xmlFreeDocp) xmlDocPtr doc = NULL;
	struct errbuf e = {errbuf, errlen};
	xmlNode *root;
	int r;

	if (errbuf && errlen)
		errbuf[0] = '\0';
	r = read_xml(xml, len, &doc, &e);
	if (r < 0)
		return r;
	root = xmlDocGetRootElement(doc);
	if (!xmlStrEqual(root->name, BAD_CAST DOMAIN_METADATA_ELEMENT))
		return fail(&e, -EINVAL, "root element is <%.*s>, expected <%s>", QUOTE_MAX,
			    (const char *)root->name, DOMAIN_METADATA_ELEMENT);
	if (root->ns && !in_our_namespace(root))
		return fail(&e, -EINVAL, "<policy> is in namespace '%.*s', expected %s", QUOTE_MAX,
			    root->ns->href ? (const char *)root->ns->href : "", DOMAIN_METADATA_NS);
	return parse_policy_element(root, ret, &e);
}

/* The shortest decimal form that reads back as exactly r, without an exponent. */
static void format_ratio(char *buf, size_t len, double r)
{
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, len, "%.*g", prec, r);
		if (!strchr(buf, 'e') && strtod(buf, NULL) == r)
			return;
	}
	snprintf(buf, len, "%.17g", r);
}

/* A whole number of ms when exact, else us: both read back by parse_duration(). */
static void format_interval(char *buf, size_t len, uint64_t usec)
{
	if (usec % USEC_PER_MSEC == 0)
		snprintf(buf, len, "%" PRIu64 "ms", usec / USEC_PER_MSEC);
	else
		snprintf(buf, len, "%" PRIu64 "us", usec);
}

static bool policy_valid(const struct domain_policy *p)
{
	return (!p->has_ratio || ratio_valid(p->ratio)) && p->mode >= -1 &&
	       p->mode < _VM_MODE_MAX && p->policy >= -1 && p->policy < _POLICY_MAX &&
	       p->priority >= -1 && p->priority <= 100 &&
	       (p->epoch_interval == 0 || (p->epoch_interval >= EPOCH_INTERVAL_MIN &&
					   p->epoch_interval <= EPOCH_INTERVAL_MAX));
}

/*
 * <policy ratio='2' mode='epoch' .../>, without a namespace: virDomainSetMetadata() puts it
 * in the namespace it is given (uri DOMAIN_METADATA_NS, key DOMAIN_METADATA_PREFIX). NULL
 * with errno EINVAL for a policy domain_policy_parse() would refuse, ENOMEM without memory.
 */
char *domain_policy_format(const struct domain_policy *p)
{
	char buf[256], v[64];
	size_t n = 0;
	char *s;

	if (!p || !policy_valid(p)) {
		errno = EINVAL;
		return NULL;
	}
	n += (size_t)snprintf(buf + n, sizeof(buf) - n, "<%s", DOMAIN_METADATA_ELEMENT);
	if (p->has_ratio) {
		format_ratio(v, sizeof(v), p->ratio);
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, " ratio='%s'", v);
	}
	if (p->mode >= 0)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, " mode='%s'",
				      vm_mode_to_string(p->mode));
	if (p->policy >= 0)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, " policy='%s'",
				      policy_kind_to_string(p->policy));
	if (p->priority >= 0)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, " priority='%d'", p->priority);
	if (p->epoch_interval) {
		format_interval(v, sizeof(v), p->epoch_interval);
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, " epoch-interval='%s'", v);
	}
	snprintf(buf + n, sizeof(buf) - n, "/>");
	s = strdup(buf);
	if (!s)
		errno = ENOMEM;
	return s;
}

uint64_t domain_pm_bytes(const struct domain_info *d)
{
	uint64_t total = 0;

	if (!d)
		return 0;
	for (unsigned i = 0; i < d->n_pmdevs; i++) {
		if (d->pmdevs[i].problem)
			continue;
		if (d->pmdevs[i].size > UINT64_MAX - total)
			return UINT64_MAX;
		total += d->pmdevs[i].size;
	}
	return total;
}
