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

# libvirt's qemu hook: executable, and running the installed vpmctl
cache() { sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt"; }
hook="$(cache VPM_LIBVIRT_HOOK_DIR)/vpm"
bindir=$(cache CMAKE_INSTALL_BINDIR)
case $bindir in /*) ;; *) bindir="$prefix/$bindir" ;; esac
if [ ! -f "$T/root$hook" ] || [ ! -x "$T/root$hook" ]; then
	echo "missing or not executable: $hook"
	exit 1
fi
[ "$(stat -c %a "$T/root$hook")" = 755 ] || { echo "$hook: mode is not 0755"; exit 1; }
grep -qxF "exec \"$bindir/vpmctl\" hook \"\$@\"" "$T/root$hook" ||
	{ echo "$hook does not run $bindir/vpmctl hook"; exit 1; }
[ -x "$T/root$bindir/vpmctl" ] || { echo "$hook: $bindir/vpmctl is not installed"; exit 1; }
sh -n "$T/root$hook" || { echo "$hook: not a valid sh script"; exit 1; }
# run it, with the path under DESTDIR: an op vpmctl passes at once, one for a missing vpmd
sed "s|\"$bindir/vpmctl\"|\"$T/root$bindir/vpmctl\"|" "$T/root$hook" >"$T/hook"
LD_LIBRARY_PATH="$libdir" sh "$T/hook" web start begin - </dev/null ||
	{ echo "$hook: failed for op start"; exit 1; }
out=$(echo '<domain><name>web</name></domain>' | LD_LIBRARY_PATH="$libdir" \
	VPM_SOCKET=/nonexistent/vpmd.sock VPM_CONFIG=/nonexistent/vpmd.conf \
	sh "$T/hook" web prepare begin - 2>&1) ||
	{ echo "$hook: failed for op prepare: $out"; exit 1; }
grep -q "VM 'web' starts without it" <<<"$out" ||
	{ echo "$hook: did not let a VM without VPM policy start without vpmd: $out"; exit 1; }

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
echo "check-install: all files in place; libvirt hook runs vpmctl; pkg-config client built and ran"
