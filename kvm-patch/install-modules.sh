#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# install-modules.sh - install the KVM modules build-modules.sh built (the VPM series) for
# the kernel they were built for, the way DKMS does: into /lib/modules/ABI/updates/vpm,
# which modprobe prefers to the kernel's own kvm modules, followed by depmod. Or package
# them as a .deb that does the same when installed and undoes it when removed.
#
# Usage: install-modules.sh [--modules DIR] [--root DIR] [--reload]
#        install-modules.sh [--modules DIR] --deb OUTDIR
#        install-modules.sh [--root DIR] --uninstall ABI
#
#   --modules DIR  build-modules.sh's output (default: $VPM_KVM_CACHE/out, i.e.
#                  /var/cache/vpm-kvm/out): kvm.ko, kvm-amd.ko, kvm-intel.ko, BUILD-INFO
#   --root DIR     install below DIR instead of / (for images and tests); no depmod unless
#                  DIR has the kernel's modules.dep
#   --reload       after installing for the running kernel: unload kvm_amd/kvm_intel and
#                  kvm (no VM may run) and load the new ones
#   --deb OUTDIR   write OUTDIR/vpm-kvm-modules-ABI_VERSION_amd64.deb instead (postinst runs
#                  depmod, postrm too); install it with apt-get install ./FILE.deb
#   --uninstall ABI  remove what an install for ABI put there, and run depmod
#
# Exit codes: 0 done, 1 failure (the reason on stderr), 2 usage error.

set -euo pipefail

VPM_KVM_CACHE=${VPM_KVM_CACHE:-/var/cache/vpm-kvm}
MODULES=$VPM_KVM_CACHE/out
ROOT=
RELOAD=0
DEB=
UNINSTALL=
KOS="kvm.ko kvm-amd.ko kvm-intel.ko"

die() {
	echo "install-modules: error: $*" >&2
	exit 1
}

usage() {
	sed -n '8,23s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case $1 in
	--modules) [ $# -ge 2 ] || usage; MODULES=$2; shift 2 ;;
	--root) [ $# -ge 2 ] || usage; ROOT=$2; shift 2 ;;
	--reload) RELOAD=1; shift ;;
	--deb) [ $# -ge 2 ] || usage; DEB=$2; shift 2 ;;
	--uninstall) [ $# -ge 2 ] || usage; UNINSTALL=$2; shift 2 ;;
	-h|--help) usage ;;
	*) echo "install-modules: unknown argument: $1" >&2; usage ;;
	esac
done

# info KEY: a line of BUILD-INFO
info() {
	sed -n "s/^$1=//p" "$MODULES/BUILD-INFO"
}

# vermagic KO: the kernel a module was built for (modinfo, or the string itself without kmod)
vermagic() {
	if command -v modinfo >/dev/null; then
		modinfo -F vermagic "$1" 2>/dev/null || true
	else
		strings -a "$1" | sed -n 's/^vermagic=//p' | head -n 1
	fi
}

run_depmod() {
	local abi=$1
	if [ -z "$ROOT" ]; then
		command -v depmod >/dev/null || die "depmod is missing: apt-get install kmod"
		depmod -a "$abi"
	elif [ -f "$ROOT/lib/modules/$abi/modules.dep" ]; then
		depmod -a -b "$ROOT" "$abi"
	fi
}

if [ -n "$UNINSTALL" ]; then
	rm -rf "$ROOT/lib/modules/$UNINSTALL/updates/vpm"
	run_depmod "$UNINSTALL" || die "depmod failed"
	echo "install-modules: removed the VPM KVM modules of $UNINSTALL"
	exit 0
fi

[ -f "$MODULES/BUILD-INFO" ] ||
	die "no build in '$MODULES' (BUILD-INFO missing): run kvm-patch/build-modules.sh first"
for ko in $KOS; do
	[ -f "$MODULES/$ko" ] || die "'$MODULES/$ko' is missing: run kvm-patch/build-modules.sh"
done
ABI=$(info abi)
VERSION=$(info version)
PATCHES=$(info patches)
[ -n "$ABI" ] && [ -n "$VERSION" ] || die "'$MODULES/BUILD-INFO' names no abi or version"
# every module must be built for that kernel
for ko in $KOS; do
	vm=$(vermagic "$MODULES/$ko")
	case $vm in
	"$ABI "*) ;;
	*) die "'$MODULES/$ko' is built for '${vm:-?}', not for kernel $ABI" ;;
	esac
done

if [ -n "$DEB" ]; then
	command -v dpkg-deb >/dev/null || die "dpkg-deb is needed for --deb"
	stage=$(mktemp -d)
	chmod 0755 "$stage"
	trap 'rm -rf "$stage"' EXIT
	pkg=vpm-kvm-modules-$ABI
	mkdir -p "$stage/DEBIAN" "$stage/lib/modules/$ABI/updates/vpm" \
		"$stage/usr/share/doc/$pkg"
	for ko in $KOS; do
		install -m 0644 "$MODULES/$ko" "$stage/lib/modules/$ABI/updates/vpm/$ko"
	done
	cp "$MODULES/BUILD-INFO" "$stage/usr/share/doc/$pkg/BUILD-INFO"
	cat >"$stage/DEBIAN/control" <<EOF
Package: $pkg
Version: $VERSION+vpm
Architecture: amd64
Maintainer: VPM developers <vpm@localhost>
Depends: linux-image-$ABI (= $VERSION)
Section: kernel
Priority: optional
Description: KVM modules with the VPM series for Linux $ABI
 kvm.ko, kvm-amd.ko and kvm-intel.ko of Debian's linux-source-6.1 $VERSION with
 the VPM patches ($PATCHES), installed in /lib/modules/$ABI/updates/vpm so that
 modprobe prefers them to the kernel's own. vpmd's kvm backend needs them.
EOF
	for script in postinst postrm; do
		printf '#!/bin/sh\nset -e\ndepmod -a %s || true\n' "$ABI" >"$stage/DEBIAN/$script"
		chmod 0755 "$stage/DEBIAN/$script"
	done
	mkdir -p "$DEB"
	out="$DEB/${pkg}_${VERSION}+vpm_amd64.deb"
	dpkg-deb --root-owner-group --build "$stage" "$out" >/dev/null
	echo "install-modules: wrote $out"
	exit 0
fi

dest="$ROOT/lib/modules/$ABI/updates/vpm"
mkdir -p "$dest"
for ko in $KOS; do
	install -m 0644 "$MODULES/$ko" "$dest/$ko"
done
cp "$MODULES/BUILD-INFO" "$dest/BUILD-INFO"
run_depmod "$ABI" || die "depmod failed"
echo "install-modules: installed into $dest (patches: $PATCHES)"

if [ "$RELOAD" = 1 ]; then
	[ -z "$ROOT" ] || die "--reload works only on this system (not with --root)"
	[ "$(uname -r)" = "$ABI" ] || die "the running kernel is $(uname -r), not $ABI: reboot into $ABI"
	vendor=kvm_amd
	grep -q GenuineIntel /proc/cpuinfo && vendor=kvm_intel
	modprobe -r "$vendor" kvm ||
		die "cannot unload $vendor and kvm: stop every VM (and anything holding /dev/kvm) first"
	modprobe "$vendor" || die "cannot load the new $vendor"
	[ "$(cat /sys/module/kvm/srcversion 2>/dev/null)" = "$(modinfo -F srcversion "$dest/kvm.ko")" ] ||
		die "the loaded kvm is not the one installed"
	echo "install-modules: $vendor and kvm reloaded"
fi

