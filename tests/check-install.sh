#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# cmake --install puts every piece in its GNUInstallDirs place, and a program builds against
# the installed libvpm through pkg-config alone.
set -euo pipefail
build=$1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

DESTDIR="$T/root" cmake --install "$build" >/dev/null
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt")
R="$T/root$prefix"
missing=0
for f in sbin/vpmd bin/vpmctl include/vpm/libvpm.h lib/systemd/system/vpmd.service \
	lib/systemd/system/vpmd.socket lib/tmpfiles.d/vpmd.conf lib/sysusers.d/vpmd.conf \
	share/man/man8/vpmd.8 share/man/man8/vpmctl.8 share/man/man5/vpmd.conf.5 \
	share/man/man3/libvpm.3; do
	[ -e "$R/$f" ] || { echo "missing: $prefix/$f"; missing=1; }
done
libdir=$(dirname "$(find "$R" -name 'libvpm.so.0' | head -n1)")
[ -n "$libdir" ] || { echo "missing: libvpm.so.0"; missing=1; }
[ -e "$libdir/pkgconfig/libvpm.pc" ] || { echo "missing: libvpm.pc"; missing=1; }
[ "$missing" -eq 0 ] || exit 1

cat >"$T/client.c" <<'C'
#include <stdio.h>
#include <vpm/libvpm.h>
int main(void)
{
	struct vpm_ctx *ctx = NULL;
	if (vpm_new("/nonexistent/vpmd.sock", &ctx) < 0)
		return 1;
	/* no vpmd there: a clear error, not a crash */
	if (vpm_connect(ctx) != -2)
		return 2;
	printf("%s: %s\n", vpm_version(), vpm_errormsg());
	vpm_unref(ctx);
	return 0;
}
C
export PKG_CONFIG_SYSROOT_DIR="$T/root" PKG_CONFIG_PATH="$libdir/pkgconfig"
# a sanitizer build's libvpm needs the sanitizer runtime in the program too
san=
grep -q '^VPM_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" && san=-fsanitize=address,undefined
# shellcheck disable=SC2046
cc $san -o "$T/client" "$T/client.c" $(pkg-config --cflags --libs libvpm)
LD_LIBRARY_PATH="$libdir" "$T/client" | grep -q "cannot connect to vpmd at '/nonexistent/vpmd.sock'"
echo "check-install: all files in place; pkg-config client built and ran"
