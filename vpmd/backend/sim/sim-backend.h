/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The sim backend: vpm-simguest processes attach over <state_dir>/sim.sock (sim-proto.h).
 * Each connection that says HELLO becomes a VM of the engine; its EPT stand-in and DRAM
 * frames are memfds shared with the guest, and its PM frames are the pool's, which the guest
 * maps whole. A guest that re-attaches after a vpmd restart hands back its memfds, and the
 * engine adopts the mappings it runs on.
 */
#ifndef VPMD_SIM_BACKEND_H
#define VPMD_SIM_BACKEND_H

#include <systemd/sd-event.h>

struct engine;
struct sim_backend;

int sim_backend_new(struct engine *en, sd_event *event, const char *sock_path,
		    struct sim_backend **ret);
/* Let every guest go (they keep running and re-attach to the next vpmd); stop listening. */
struct sim_backend *sim_backend_free(struct sim_backend *sb);

#endif
