/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The engine with the simulated backend: vpm-simguest processes attach over
 * <state_dir>/sim.sock (see sim-proto.h); each becomes a VM whose guest PM is a device of the
 * first formatted pool. vpmd resolves their faults (first touch from the device's PM frame or
 * image, promotion of PM pages to DRAM on write), and every epoch_interval it pauses the VM,
 * harvests and clears the dirty bits, stages the dirty DRAM pages, resumes it and commits the
 * epoch to the pool; checkpoints run every second.
 */
#ifndef VPMD_ENGINE_H
#define VPMD_ENGINE_H

#include <systemd/sd-event.h>

#include <json-c/json.h>

#include "config.h"
#include "pool.h"

struct engine;

/* Listen for simulated guests; the pool must be formatted (its store open). */
int engine_new(sd_event *event, const struct vpmd_config *c, struct pool *pool,
	       struct engine **ret);
struct engine *engine_free(struct engine *en);
struct json_object *engine_vms_json(struct engine *en);
void engine_set_epoch_interval(struct engine *en, uint64_t usec);
/* The pool whose devices back the VMs. */
struct pool *engine_pool(struct engine *en);

#endif
