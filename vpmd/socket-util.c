// SPDX-License-Identifier: LGPL-2.1-or-later
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "socket-util.h"

int socket_listen_at(int fd, const char *path, mode_t mode, gid_t group, int backlog)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	mode_t old_umask;
	int n, r;

	n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s.%d.new", path, (int)getpid());
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	(void)unlink(sa.sun_path); /* a leftover of an earlier vpmd with our pid */
	old_umask = umask(0777 & ~mode);
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old_umask);
	if (r < 0)
		return -errno;
	if (chmod(sa.sun_path, mode) < 0 ||
	    (group != (gid_t)-1 && chown(sa.sun_path, (uid_t)-1, group) < 0) ||
	    listen(fd, backlog) < 0 || rename(sa.sun_path, path) < 0) {
		r = -errno;
		(void)unlink(sa.sun_path);
		return r;
	}
	return 0;
}
