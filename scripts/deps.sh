#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Install the Debian 12 packages VPM needs to build and test; quiet, and a no-op when they
# are all there. Usage: scripts/deps.sh [build|test]   (test = build + test tools)
set -euo pipefail

build_pkgs=(cmake make gcc pkg-config libvirt-dev libpmem2-dev libndctl-dev libdaxctl-dev
	libsystemd-dev libjson-c-dev libinih-dev check libsubunit-dev libxxhash-dev)
test_pkgs=(jq python3 mandoc groff-base systemd util-linux binutils clang
	libclang-rt-14-dev)

pkgs=("${build_pkgs[@]}")
[ "${1:-build}" = test ] && pkgs+=("${test_pkgs[@]}")

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
