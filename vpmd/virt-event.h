/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef VPMD_VIRT_EVENT_H
#define VPMD_VIRT_EVENT_H

/*
 * libvirt's event loop on vpmd's sd-event loop (virEventRegisterImpl). libvirt needs an event
 * loop for domain events, keepalive and close detection of remote connections; this one maps
 * its fd watches to sd-event I/O sources and its timeouts to sd-event time sources. vpmd binds
 * it to the loop of its libvirt thread (virt-worker.h), where every libvirt call is made.
 *
 * libvirt accepts one implementation per process, for the life of the process, so the
 * implementation is bound to one sd_event at a time. libvirt must be called from
 * that loop's thread only (sd-event is not thread-safe); calls from other threads are refused
 * and logged.
 *
 * Semantics kept from libvirt's own loop:
 *  - watch and timer ids are unique and never reused (1, 2, 3, ...);
 *  - a timeout of -1 is disabled, 0 fires on every loop iteration until changed, n > 0 fires
 *    every n ms; updating a timeout restarts its period;
 *  - a watch with no events is disabled; ERROR and HANGUP are reported whatever was asked;
 *  - removing a watch or timeout (even from inside its own callback) stops its callbacks at
 *    once, and its free callback runs on a later loop iteration, never inside the remove.
 */

#include <stdint.h>
#include <systemd/sd-event.h>

/*
 * Register the implementation with libvirt (on the first call) and bind it to e. Binding again
 * to the same loop is a no-op; to another loop while bound: -EBUSY. Returns 0 or -errno.
 */
int virt_event_register(sd_event *e);

/*
 * Unbind from the loop, before it is freed: run the pending free callbacks and drop every
 * sd-event source. Watches and timeouts that libvirt still holds never fire again (close the
 * libvirt connections first). virt_event_register() may bind a new loop afterwards.
 */
void virt_event_unbind(void);

/* Live watches, live timeouts and removed ones whose free callback has not run yet. */
void virt_event_counts(unsigned *ret_handles, unsigned *ret_timeouts, unsigned *ret_pending);

/* VIR_EVENT_HANDLE_* <-> EPOLL* */
uint32_t virt_event_to_epoll(int events);
int virt_event_from_epoll(uint32_t revents);

#endif /* VPMD_VIRT_EVENT_H */
