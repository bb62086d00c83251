#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# build-modules.sh - build KVM from Debian's linux-source-6.1 as external modules.
#
# Usage: build-modules.sh [--abi ABI] [--patches DIR] [--out DIR] [--update-base]
#
#   --abi ABI       kernel ABI, e.g. 6.1.0-56-amd64 (default: the one the linux-image-amd64
#                   package depends on now; computed, the archive moves)
#   --patches DIR   patch series, applied as DIR/*.patch in name order with patch -p1
#                   (default: kvm-patch/patches; empty or absent: stock KVM)
#   --out DIR       where the results go (default: /var/cache/vpm-kvm/out)
#   --update-base   record the linux-source-6.1 version used in kvm-patch/BASE instead of
#                   failing when it differs from the one recorded there
#
# Steps: install the missing host packages (rig-lib.sh has the list); download with
# apt-get into /var/cache/vpm-kvm/debs linux-image-ABI, linux-source-6.1 and
# linux-headers-ABI (plus its -common and linux-kbuild-6.1), all pinned to the image's
# exact version (files already there are not downloaded again); check the source version
# against kvm-patch/BASE; unpack the image (dpkg-deb -x; kept: vmlinuz, irqbypass.ko,
# ccp.ko and the NVDIMM modules of run-rig.sh --nvdimm), the headers (into the cache, not
# installed) and only the KVM parts of the source; apply the patches; build kvm.ko,
# kvm-amd.ko and, if it builds, kvm-intel.ko against the headers; strip them and put them
# with irqbypass.ko, ccp.ko, the NVDIMM modules (with nvdimm-modules, their load order)
# and vmlinuz into OUT, with BUILD-INFO describing the build.  Unchanged sources are not
# rebuilt: a second run only checks.  One timed line per step; the full output is in
# /var/cache/vpm-kvm/logs/build-modules.log and its tail is shown when a step fails.
#
# Exit codes: 0 modules built and in OUT; 1 a step failed (named in the message);
# 2 usage error.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=rig-lib.sh
. "$HERE/rig-lib.sh"
RIG_NAME=build-modules

ABI=
PATCHES=$HERE/patches
OUT=$VPM_KVM_CACHE/out
UPDATE_BASE=0
BASE_FILE=$HERE/BASE

usage() {
	sed -n '5,16s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case $1 in
	--abi) [ $# -ge 2 ] || usage; ABI=$2; shift 2 ;;
	--patches) [ $# -ge 2 ] || usage; PATCHES=$2; shift 2 ;;
	--out) [ $# -ge 2 ] || usage; OUT=$2; shift 2 ;;
	--update-base) UPDATE_BASE=1; shift ;;
	-h|--help) usage ;;
	*) echo "build-modules: unknown argument: $1" >&2; usage ;;
	esac
done

[ "$(id -u)" -eq 0 ] || rig_die "must run as root (apt-get, dpkg-deb -x of root-owned trees)"
case $PATCHES in /*) ;; *) PATCHES=$PWD/$PATCHES ;; esac
case $OUT in /*) ;; *) OUT=$PWD/$OUT ;; esac

DEBS=$VPM_KVM_CACHE/debs
mkdir -p "$DEBS" "$VPM_KVM_CACHE/logs" "$OUT"
RIG_LOG=$VPM_KVM_CACHE/logs/build-modules.log
: >"$RIG_LOG"
RESOLVED=$VPM_KVM_CACHE/logs/build-modules.resolved

# One build at a time: the cache is shared.
exec 9>"$VPM_KVM_CACHE/.lock"
flock -w 1800 9 || rig_die "cannot lock $VPM_KVM_CACHE/.lock"

# deb_of PKG VER: the cached .deb of PKG at VER, or nothing.
deb_of() {
	local f
	for f in "$DEBS/${1}_${2}_"*.deb; do
		[ -f "$f" ] && { echo "$f"; return 0; }
	done
	return 0
}

# The ABI of the image whose package version is $1 (BASE), if the archive still has it.
abi_of_version() {
	local want=$1 p
	for p in $(apt-cache pkgnames linux-image-6.1.0- 2>/dev/null |
		grep -E '^linux-image-6\.1\.0-[0-9]+-amd64$' | sort -V -r); do
		if apt-cache madison "$p" 2>/dev/null | awk -F'|' '{gsub(/ /, "", $2); print $2}' |
			grep -qxF "$want"; then
			echo "${p#linux-image-}"
			return 0
		fi
	done
	return 1
}

# Compute ABI and VER (the image's package version); offline, fall back to the cache.
# Without --abi the series' BASE decides (the archive keeps older kernels for a while), so
# that the build does not break when Debian moves on; with --update-base, the newest.
resolve() {
	local abi=$ABI ver='' how=archive f pat base=''
	[ -s "$BASE_FILE" ] && base=$(tr -d ' \t\n' <"$BASE_FILE")
	if [ -z "$abi" ] && [ -n "$base" ] && [ "$UPDATE_BASE" -eq 0 ] &&
		abi=$(abi_of_version "$base"); then
		ver=$base
		how="archive (kvm-patch/BASE)"
	fi
	if [ -z "$abi" ]; then
		abi=$(apt-cache depends linux-image-amd64 2>/dev/null |
			sed -n 's/^ *Depends: linux-image-\([0-9].*\)$/\1/p' | sort -V | tail -n 1 ||
			true)
	fi
	if [ -n "$abi" ] && [ -z "$ver" ]; then
		ver=$(apt-cache policy "linux-image-$abi" 2>/dev/null |
			sed -n 's/^ *Candidate: //p' || true)
		[ "$ver" = "(none)" ] && ver=
	fi
	if [ -z "$ver" ]; then
		# No archive information: use the newest image already downloaded.
		how=cache
		pat=${abi:-[0-9]*}
		# shellcheck disable=SC2086
		f=$(printf '%s\n' "$DEBS"/linux-image-${pat}_*.deb | sort -V | tail -n 1)
		[ -f "$f" ] || f=
		[ -n "$f" ] || { echo "cannot compute the kernel ABI: apt-cache has no" \
			"linux-image-${abi:-amd64} and $DEBS has no image"; return 1; }
		abi=$(dpkg-deb -f "$f" Package)
		abi=${abi#linux-image-}
		ver=$(dpkg-deb -f "$f" Version)
	fi
	printf 'ABI=%q\nVER=%q\n' "$abi" "$ver" >"$RESOLVED"
	rig_note "ABI $abi, version $ver, from the $how"
}

# check_base VER WHEN: compare the linux-source-6.1 version with kvm-patch/BASE.
check_base() {
	local ver=$1 base
	if [ ! -s "$BASE_FILE" ]; then
		echo "$ver" >"$BASE_FILE"
		rig_note "kvm-patch/BASE was empty: recorded $ver"
		return 0
	fi
	base=$(tr -d ' \t\n' <"$BASE_FILE")
	[ "$base" = "$ver" ] && { rig_note "linux-source-6.1 $ver = kvm-patch/BASE"; return 0; }
	if [ "$UPDATE_BASE" -eq 1 ]; then
		echo "$ver" >"$BASE_FILE"
		rig_note "kvm-patch/BASE updated: $base -> $ver"
		return 0
	fi
	echo "linux-source-6.1 $ver does not match kvm-patch/BASE $base: the patches were" \
		"written against $base. Rebase them and rerun with --update-base, or pass" \
		"--abi for the ABI of $base if its packages are still available or cached."
	return 1
}

download() {
	local p f n=0 deps
	local -a files want=("linux-image-$ABI" linux-source-6.1 "linux-headers-$ABI")
	cd "$DEBS"
	fetch() {
		[ -n "$(deb_of "$1" "$VER")" ] && return 0
		command -v apt-get >/dev/null || { echo "no apt-get and $1 $VER is not cached"; return 1; }
		rm -rf "$DEBS/partial" && mkdir -p "$DEBS/partial"
		(cd "$DEBS/partial" && apt-get download -q -o APT::Sandbox::User=root "$1=$VER")
		mv "$DEBS/partial/"*.deb "$DEBS/"
		rmdir "$DEBS/partial"
		n=$((n + 1))
	}
	for p in "${want[@]}"; do
		fetch "$p"
	done
	# The headers' own kernel packages (-common and linux-kbuild-6.1), same version.
	deps=$(dpkg-deb -f "$(deb_of "linux-headers-$ABI" "$VER")" Depends | tr ',' '\n' |
		sed -n 's/^ *\(linux-\(headers\|kbuild\)-[^ ]*\).*/\1/p')
	for p in $deps; do
		fetch "$p"
		want+=("$p")
	done
	for p in "${want[@]}"; do
		f=$(deb_of "$p" "$VER")
		if [ "$(dpkg-deb -f "$f" Package)" != "$p" ] ||
			[ "$(dpkg-deb -f "$f" Version)" != "$VER" ]; then
			echo "$f is not $p $VER"
			return 1
		fi
		echo "$f"
	done >"$RESOLVED.debs"
	mapfile -t files <"$RESOLVED.debs"
	rig_note "$n of ${#want[@]} downloaded; $(du -cm "${files[@]}" | tail -n 1 | cut -f1) MB in $DEBS"
}

source_version() {
	local v
	v=$(dpkg-deb -f "$(deb_of linux-source-6.1 "$VER")" Version)
	check_base "$v"
}

# The image's modules for an emulated NVDIMM (run-rig.sh --nvdimm): ACPI NFIT, libnvdimm,
# its namespace drivers and device DAX (CONFIG_DAX is built in), under kernel/.
NVDIMM_MODULES="drivers/nvdimm/libnvdimm drivers/acpi/nfit/nfit drivers/nvdimm/nd_btt
drivers/nvdimm/nd_pmem drivers/dax/device_dax drivers/dax/dax_pmem"

# nvdimm_load_order DIR: the names of NVDIMM_MODULES (their .ko files in DIR), each after
# the modules its modinfo "depends=" names; fails on a dependency outside the set.
nvdimm_load_order() {
	local dir=$1 m d left='' done=' ' progress
	for m in $NVDIMM_MODULES; do
		left="$left ${m##*/}"
	done
	while [ -n "${left// /}" ]; do
		progress=0
		for m in $left; do
			for d in $(modinfo_field "$dir/$m.ko" depends | tr ',' ' '); do
				case $done in *" $d "*) ;; *) continue 2 ;; esac
			done
			echo "$m"
			done="$done$m "
			left=$(echo " $left " | sed "s/ $m / /")
			progress=1
		done
		[ "$progress" = 1 ] || { echo "NVDIMM modules with unmet dependencies:$left" >&2; return 1; }
	done
}

IMG=
extract_image() {
	local tmp=$IMG.tmp m p
	if [ -f "$IMG/.done" ] && [ -s "$IMG/nvdimm-modules" ]; then
		rig_note "cached"
		return 0
	fi
	rm -rf "$tmp" "$IMG"
	mkdir -p "$tmp"
	dpkg-deb -x "$(deb_of "linux-image-$ABI" "$VER")" "$tmp/root"
	m=$tmp/root/lib/modules/$ABI/kernel
	mkdir -p "$tmp/keep"
	cp "$tmp/root/boot/vmlinuz-$ABI" "$tmp/keep/vmlinuz"
	cp "$m/virt/lib/irqbypass.ko" "$m/drivers/crypto/ccp/ccp.ko" "$tmp/keep/"
	for p in $NVDIMM_MODULES; do
		cp "$m/$p.ko" "$tmp/keep/"
	done
	nvdimm_load_order "$tmp/keep" >"$tmp/keep/nvdimm-modules"
	cp "$tmp/root/boot/config-$ABI" "$tmp/keep/config"
	mv "$tmp/keep" "$IMG"
	rm -rf "$tmp"
	touch "$IMG/.done"
	rig_note "NVDIMM modules: $(paste -sd ' ' "$IMG/nvdimm-modules")"
}

HDR=
extract_headers() {
	local tmp=$HDR.tmp p mk
	if [ -f "$HDR/.done" ]; then
		rig_note "cached"
		return 0
	fi
	rm -rf "$tmp" "$HDR"
	mkdir -p "$tmp"
	grep -E '/linux-(headers|kbuild)-' "$RESOLVED.debs" | while read -r p; do
		dpkg-deb -x "$p" "$tmp"
	done
	# The arch Makefile includes the -common one by absolute path: point it at ours.
	mk=$tmp/usr/src/linux-headers-$ABI/Makefile
	grep -q '^include /usr/src/linux-headers-.*-common/Makefile$' "$mk" ||
		{ echo "unexpected $mk:"; cat "$mk"; return 1; }
	sed -i "s|^include /usr/src/|include $HDR/usr/src/|" "$mk"
	mv "$tmp" "$HDR"
	touch "$HDR/.done"
}

# The parts of the source tree the KVM modules are built from (and patches may touch).
SRC_PARTS="arch/x86/kvm virt/kvm include/kvm include/linux/kvm*.h include/uapi/linux/kvm*.h
arch/x86/include/asm/kvm*.h arch/x86/include/uapi/asm/kvm*.h include/trace/events/kvm.h"

SRC=
extract_source() {
	local tmp=$SRC.tmp p
	local -a members=()
	if [ -f "$SRC/.done" ]; then
		rig_note "cached"
		return 0
	fi
	rm -rf "$tmp" "$SRC"
	mkdir -p "$tmp"
	for p in $SRC_PARTS; do
		members+=("linux-source-6.1/$p")
	done
	dpkg-deb --fsys-tarfile "$(deb_of linux-source-6.1 "$VER")" |
		tar -xO ./usr/src/linux-source-6.1.tar.xz |
		tar -xJ -C "$tmp" --strip-components=1 --wildcards "${members[@]}"
	mv "$tmp" "$SRC"
	touch "$SRC/.done"
	rig_note "$(find "$SRC" -type f | wc -l) files, $(du -sm "$SRC" | cut -f1) MB"
}

# Copy the files of tree $1 that differ into tree $2 and delete sources $2 has beyond
# $1, keeping build products, so that make rebuilds only what changed.
sync_tree() {
	local from=$1 to=$2 f
	mkdir -p "$to"
	(cd "$from" && find . -type f ! -name .done) | while read -r f; do
		cmp -s "$from/$f" "$to/$f" || { mkdir -p "$(dirname "$to/$f")"; cp "$from/$f" "$to/$f"; }
	done
	(cd "$to" && find . -type f \( -name '*.[chS]' -o -name 'Makefile*' -o -name Kconfig \
		-o -name '*.lds' \) ! -name '*.mod.c' ! -name 'kvm-asm-offsets.h') |
		while read -r f; do
			[ -e "$from/$f" ] || rm -f "$to/$f"
		done
}

TREE=
prepare_tree() {
	local stage=$TREE.stage p n=0 mk
	local -a series=()
	rm -rf "$stage"
	mkdir -p "$(dirname "$TREE")"
	cp -a "$SRC" "$stage"
	if [ -d "$PATCHES" ]; then
		for p in "$PATCHES"/*.patch; do
			[ -f "$p" ] && series+=("$p")
		done
	fi
	for p in ${series[@]+"${series[@]}"}; do
		echo "applying $(basename "$p")"
		patch -d "$stage" -p1 --batch --forward --fuzz=0 --no-backup-if-mismatch <"$p" ||
			{ echo "patch $(basename "$p") does not apply to linux-source-6.1 $VER"; return 1; }
		n=$((n + 1))
	done
	find "$stage" -name '*.orig' -delete
	# Build out of tree: local includes and the trace headers from the extracted
	# source; virt/kvm from it too; its include/ and arch/x86/include win over the
	# headers package, so patched headers take effect.
	mk=$stage/arch/x86/kvm/Makefile
	# shellcheck disable=SC2016 # make variables, not shell ones
	if ! grep -q '^ccflags-y += -I $(srctree)/arch/x86/kvm$' "$mk" ||
		! grep -q '^include $(srctree)/virt/kvm/Makefile.kvm$' "$mk"; then
		echo "arch/x86/kvm/Makefile changed: adjust prepare_tree"
		return 1
	fi
	# shellcheck disable=SC2016
	sed -i -e 's|^ccflags-y += -I $(srctree)/arch/x86/kvm$|ccflags-y += -I $(src) -I $(src)/..|' \
		-e 's|^include $(srctree)/virt/kvm/Makefile.kvm$|include $(src)/../../../virt/kvm/Makefile.kvm|' \
		"$mk"
	cat >>"$mk" <<'EOF'

# Added by kvm-patch/build-modules.sh: the extracted (patched) headers come first.
KVM_TREE := $(abspath $(src)/../../..)
NOSTDINC_FLAGS += -I $(KVM_TREE)/arch/x86/include -I $(KVM_TREE)/arch/x86/include/uapi \
		  -I $(KVM_TREE)/include -I $(KVM_TREE)/include/uapi
EOF
	sync_tree "$stage" "$TREE"
	rm -rf "$stage"
	if [ "$n" -eq 0 ]; then
		echo "no patches in $PATCHES: building stock KVM"
		rig_note "no patches in $PATCHES: stock KVM"
	else
		rig_note "$n patch(es) applied"
	fi
	: >"$RESOLVED.series"
	for p in ${series[@]+"${series[@]}"}; do
		basename "$p" >>"$RESOLVED.series"
	done
}

build() {
	local kdir=$HDR/usr/src/linux-headers-$ABI
	local -a mk=(make -C "$kdir" M="$TREE/arch/x86/kvm" -j"$(nproc)")
	rm -f "$TREE/arch/x86/kvm/kvm-intel.ko"
	if "${mk[@]}" modules; then
		rig_note "kvm.ko kvm-amd.ko kvm-intel.ko"
		return 0
	fi
	echo "full build failed; retrying without kvm-intel"
	"${mk[@]}" CONFIG_KVM_INTEL= modules
	rm -f "$TREE/arch/x86/kvm/kvm-intel.ko"
	rig_note "kvm.ko kvm-amd.ko; kvm-intel.ko does not build"
}

modinfo_field() {
	objcopy -O binary --only-section=.modinfo "$1" /dev/stdout | tr '\0' '\n' |
		sed -n "s/^$2=//p"
}

# install_file SRC NAME: put SRC into OUT/NAME unless it is already there unchanged.
install_file() {
	cmp -s "$1" "$OUT/$2" && return 0
	cp "$1" "$OUT/.$2.tmp"
	mv "$OUT/.$2.tmp" "$OUT/$2"
	echo "updated $OUT/$2"
}

install_out() {
	local m tmp=$VPM_KVM_CACHE/build/strip.tmp want have n=0
	want=$(modinfo_field "$IMG/irqbypass.ko" vermagic)
	mkdir -p "$tmp"
	for m in kvm kvm-amd kvm-intel; do
		if [ ! -f "$TREE/arch/x86/kvm/$m.ko" ]; then
			rm -f "$OUT/$m.ko"
			continue
		fi
		have=$(modinfo_field "$TREE/arch/x86/kvm/$m.ko" vermagic)
		[ "$have" = "$want" ] ||
			{ echo "$m.ko vermagic '$have' differs from the image's '$want'"; return 1; }
		strip --strip-debug -o "$tmp/$m.ko" "$TREE/arch/x86/kvm/$m.ko"
		install_file "$tmp/$m.ko" "$m.ko"
		n=$((n + 1))
	done
	rm -rf "$tmp"
	for m in irqbypass ccp $(cat "$IMG/nvdimm-modules"); do
		install_file "$IMG/$m.ko" "$m.ko"
	done
	install_file "$IMG/nvdimm-modules" nvdimm-modules
	install_file "$IMG/vmlinuz" vmlinuz
	{
		echo "abi=$ABI"
		echo "version=$VER"
		echo "base=$(cat "$BASE_FILE")"
		echo "vermagic=$want"
		echo "patches=$(paste -sd ' ' "$RESOLVED.series")"
	} >"$OUT/BUILD-INFO.tmp"
	install_file "$OUT/BUILD-INFO.tmp" BUILD-INFO
	rm -f "$OUT/BUILD-INFO.tmp"
	rig_note "$OUT: $n KVM modules, $(du -sh --exclude=vmlinuz "$OUT" | cut -f1) of modules"
}

T0=$(date +%s.%N)
rig_step "host packages" rig_install_packages
rig_step "resolve ABI" resolve
# shellcheck source=/dev/null
. "$RESOLVED"
rig_step "check version against BASE" check_base "$VER"
rig_step "download (cache: $DEBS)" download
rig_step "check linux-source-6.1 against BASE" source_version
IMG=$VPM_KVM_CACHE/image/$VER
HDR=$VPM_KVM_CACHE/headers/$VER
SRC=$VPM_KVM_CACHE/source/$VER
TREE=$VPM_KVM_CACHE/build/$VER
rig_step "extract image" extract_image
rig_step "extract headers" extract_headers
rig_step "extract KVM source" extract_source
rig_step "patch tree" prepare_tree
rig_step "build modules" build
rig_step "install into out" install_out
echo "build-modules: done in $(rig_elapsed "$T0")s: $OUT"
