#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Install the Debian 12 packages VPM needs to build, test and benchmark; quiet, and a no-op
# when they are all there. Usage: scripts/deps.sh [build|test|bench|libvirt]
# (test = build + test tools (gnuplot: the benches' smoke test plots) + libvirt; libvirt =
# libvirtd and QEMU for the libvirt tests;
# bench = build + what bench/ runs: jq, python3, gnuplot)
set -euo pipefail

build_pkgs=(cmake make gcc pkg-config libvirt-dev libpmem2-dev libndctl-dev libdaxctl-dev
	libsystemd-dev libjson-c-dev libinih-dev check libsubunit-dev libxxhash-dev libxml2-dev)
test_pkgs=(jq python3 mandoc groff-base systemd util-linux binutils clang
	libclang-rt-14-dev gnuplot-nox)
bench_pkgs=(jq python3 gnuplot-nox)
libvirt_pkgs=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-daemon-system libvirt-clients
	qemu-system-x86 qemu-utils)

pkgs=("${build_pkgs[@]}")
case "${1:-build}" in
test) pkgs+=("${test_pkgs[@]}" "${libvirt_pkgs[@]}") ;;
bench) pkgs+=("${bench_pkgs[@]}") ;;
libvirt) pkgs+=("${libvirt_pkgs[@]}") ;;
esac

missing=()
for p in "${pkgs[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing+=("$p")
	fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "Missing packages: ${missing[*]}; run this as root to install them." >&2
	exit 1
fi
echo "Installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
