// SPDX-License-Identifier: LGPL-2.1-or-later
/* libFuzzer target: libvirt domain XML and vpmd's policy element. */
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "domain-xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A message: NUL-terminated inside its buffer, one line. */
static void check_message(const char *s, size_t max)
{
	size_t l = strnlen(s, max);

	if (l == 0 || l == max || strchr(s, '\n'))
		abort();
}

static void check_pmdev(const struct domain_pmdev *p)
{
	if (p->model != DOMAIN_PMDEV_NVDIMM && p->model != DOMAIN_PMDEV_VIRTIO_PMEM)
		abort();
	if (p->alias && strlen(p->alias) >= DOMAIN_NAME_MAX)
		abort();
	if (p->node < -1 || (p->model == DOMAIN_PMDEV_VIRTIO_PMEM && p->label_size))
		abort();
	if (p->problem) {
		check_message(p->problem, 4096);
		return;
	}
	/* what vpmd is told it can serve must hold up */
	if (!p->path || p->path[0] != '/' || strlen(p->path) >= PATH_MAX || !p->shared ||
	    p->size == 0 || p->size % 4096 || p->label_size >= p->size ||
	    (p->size - p->label_size) % 4096)
		abort();
}

static void check_policy(const struct domain_policy *p)
{
	struct domain_policy back;
	char err[256] = "";
	char *s = domain_policy_format(p);

	if (!s)
		abort(); /* whatever parses must format */
	if (domain_policy_parse(s, strlen(s), &back, err, sizeof(err)) != 0)
		abort();
	if (back.has_ratio != p->has_ratio || back.ratio != p->ratio || back.mode != p->mode ||
	    back.policy != p->policy || back.priority != p->priority ||
	    back.epoch_interval != p->epoch_interval)
		abort();
	free(s);
}

static void check_domain(const struct domain_info *d)
{
	if (strnlen(d->name, DOMAIN_NAME_MAX) == DOMAIN_NAME_MAX || !d->name[0])
		abort();
	if (strnlen(d->uuid, sizeof(d->uuid)) != 36 || strspn(d->uuid, "0123456789abcdef-") != 36)
		abort();
	if (d->n_pmdevs > DOMAIN_PMDEVS_MAX || (d->n_pmdevs > 0) != (d->pmdevs != NULL))
		abort();
	for (unsigned i = 0; i < d->n_pmdevs; i++)
		check_pmdev(&d->pmdevs[i]);
	if (d->has_policy)
		check_policy(&d->policy);
	(void)domain_pm_bytes(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct domain_info canary;
	struct domain_info *d = &canary; /* must be overwritten */
	struct domain_policy p;
	char err[256];
	int r;

	memset(err, 'x', sizeof(err));
	r = domain_xml_parse((const char *)data, size, &d, err, sizeof(err));
	if ((r == 0) != (d != NULL) || r > 0)
		abort();
	if (r < 0)
		check_message(err, sizeof(err));
	else
		check_domain(d);
	domain_info_free(d);

	memset(err, 'x', sizeof(err));
	r = domain_policy_parse((const char *)data, size, &p, err, sizeof(err));
	if (r > 0)
		abort();
	if (r < 0)
		check_message(err, sizeof(err));
	else
		check_policy(&p);
	return 0;
}
