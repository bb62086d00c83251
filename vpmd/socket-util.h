/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <sys/types.h>

/*
 * Bind the AF_UNIX socket fd under a temporary name next to path, give it mode and group
 * (group (gid_t)-1 keeps it), listen, and only then rename it to path: whoever finds the
 * path finds a socket that already listens, with its final permissions. A file at path is
 * replaced, so callers decide first whether it may be. Returns 0 or -errno; the caller logs.
 */
int socket_listen_at(int fd, const char *path, mode_t mode, gid_t group, int backlog);
