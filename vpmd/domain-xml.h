/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * libvirt domain XML as vpmd needs it: the domain's name, UUID and persistent memory devices
 * (<memory model='nvdimm'> and <memory model='virtio-pmem'>), and vpmd's policy element in
 * the domain's <metadata>. Parsed with libxml2 without network access, external entities or
 * DTD loading, from at most DOMAIN_XML_MAX bytes; every size and count is bounded, so hostile
 * XML gets an error and never more memory than its own size.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* vpmd's metadata namespace in domain XML (stable: it is part of the on-host format) */
#define DOMAIN_METADATA_NS "https://vpm.dev/xmlns/libvirt-domain/1.0"
#define DOMAIN_METADATA_PREFIX "vpm"
#define DOMAIN_METADATA_ELEMENT "policy"

#define DOMAIN_XML_MAX (4u << 20)  /* bytes of XML accepted */
#define DOMAIN_PMDEVS_MAX 64       /* PM devices per domain */
#define DOMAIN_NAME_MAX 256        /* bytes, NUL included */

enum domain_pmdev_model {
	DOMAIN_PMDEV_NVDIMM,
	DOMAIN_PMDEV_VIRTIO_PMEM,
};

struct domain_pmdev {
	enum domain_pmdev_model model;
	char *alias;          /* <alias name=...>, live XML only; NULL otherwise */
	char *path;           /* <source><path>: the image file */
	uint64_t size;        /* <target><size>, bytes: the whole image, label included */
	uint64_t label_size;  /* <target><label><size>, bytes; 0 without a label */
	uint64_t align_size;  /* <source><alignsize>, bytes; 0 when absent */
	bool shared;          /* access='shared' (guest writes reach the image) */
	bool readonly;        /* <target><readonly/> */
	bool pmem;            /* <source><pmem/>: the image is on real PM */
	int node;             /* <target><node>, or -1 */
	bool has_base;        /* <address type='dimm' base=...>, live XML from 'started' on */
	uint64_t base;
	uint32_t slot;        /* <address slot=...>, valid with has_base */
	char *problem;        /* NULL when vpmd can serve the device, else why not (one line) */
};

/* vpmd's policy for a domain; each field is optional (has_* false: use vpmd's default) */
struct domain_policy {
	bool has_ratio;
	double ratio;             /* as parse_ratio() accepts */
	int mode;                 /* enum vm_mode, or -1 */
	int policy;               /* enum policy_kind, or -1 */
	int priority;             /* 0..100, or -1 */
	uint64_t epoch_interval;  /* usec, 0: default */
};

struct domain_info {
	char name[DOMAIN_NAME_MAX];
	char uuid[37];             /* canonical lower-case form */
	bool has_policy;           /* the metadata element was there */
	struct domain_policy policy;
	unsigned n_pmdevs;
	struct domain_pmdev *pmdevs;
};

/* A policy with nothing set. */
void domain_policy_init(struct domain_policy *p);

/*
 * Parse a domain's XML (virDomainGetXMLDesc or a hook's stdin). Returns 0 and a new
 * domain_info, or -EINVAL/-E2BIG/-ENOMEM with a one-line reason in errbuf (which element or
 * attribute, what was wrong). A device vpmd cannot serve does not fail the parse: it is kept
 * with ->problem set. A bad vpmd policy element does fail it (a policy must not be ignored).
 */
int domain_xml_parse(const char *xml, size_t len, struct domain_info **ret, char *errbuf,
		     size_t errlen);
struct domain_info *domain_info_free(struct domain_info *d);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct domain_info *, domain_info_free);
/* A deep copy: 0, or -ENOMEM. */
int domain_info_dup(const struct domain_info *d, struct domain_info **ret);

/*
 * The policy element alone, as virDomainGetMetadata(VIR_DOMAIN_METADATA_ELEMENT) returns it
 * (<policy ratio=... .../>: libvirt 9.0 drops the namespace; DOMAIN_METADATA_NS is accepted
 * too, any other namespace is not). Same errors as above.
 */
int domain_policy_parse(const char *xml, size_t len, struct domain_policy *ret, char *errbuf,
			size_t errlen);

/* The element for virDomainSetMetadata (without namespace declaration: libvirt adds it). */
char *domain_policy_format(const struct domain_policy *p);

/* Total PM bytes (->size, label included) of the domain's servable devices; saturates. */
uint64_t domain_pm_bytes(const struct domain_info *d);
