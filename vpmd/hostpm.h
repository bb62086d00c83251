/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef VPMD_HOSTPM_H
#define VPMD_HOSTPM_H

#include <json-c/json.h>

/*
 * Enumerate the host's persistent memory with libndctl: NVDIMM buses, their regions and
 * namespaces (mode, size, block or dax device). A host without PM yields an empty list.
 * On success *ret holds {"regions": [...]} and 0 is returned.
 */
int hostpm_scan(struct json_object **ret);

#endif
