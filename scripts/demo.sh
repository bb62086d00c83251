#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The main job, end to end on this machine: build VPM, format an emulated PM pool (once),
# start vpmd on it (recovering the pool first) with libvirt's test driver as the host's VM
# inventory (tests/libvirt/test-node.xml: five domains, three of them running with nvdimm or
# virtio-pmem devices, one with a VPM policy in its metadata). vpmd finds the running VMs with
# PM and serves each with a simulated guest of its PM size and policy; vpmctl lists them beside
# libvirt's view, shows their stats, moves one VM to a higher consolidation ratio and back with
# set-ratio --wait (writing it into the domain's metadata), and shows the effect.
# Usage: scripts/demo.sh [--keep]
#   --keep   leave vpmd running afterwards (stop it with: kill $(cat $DEMO/state/vpmd.pid))
set -euo pipefail
cd "$(dirname "$0")/.."
keep=false
[ "${1:-}" = --keep ] && keep=true

scripts/deps.sh build
cmake -S . -B build/demo -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF >/dev/null
cmake --build build/demo -j"$(nproc)" >/dev/null

DEMO=${VPM_DEMO_DIR:-/var/tmp/vpm-demo}
VPMD=build/demo/vpmd/vpmd
VPMCTL=build/demo/cli/vpmctl
if [ -f "$DEMO/state/vpmd.pid" ] && kill -0 "$(cat "$DEMO/state/vpmd.pid")" 2>/dev/null; then
	kill "$(cat "$DEMO/state/vpmd.pid")"
	sleep 0.5
fi
mkdir -p "$DEMO"
cat >"$DEMO/vpmd.conf" <<CONF
# Demo configuration: one emulated PM pool (a plain file; no real persistence) and libvirt's
# test driver as the VM inventory.
[daemon]
socket = $DEMO/vpmd.sock
state_dir = $DEMO/state
dram_budget = 512M
epoch_interval = 100ms
libvirt_uri = test://$PWD/tests/libvirt/test-node.xml

[pool demo0]
path = $DEMO/pool2.pm
kind = emulated
size = 512M
CONF

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

stop_guests() {
	local f pid
	for f in "$DEMO"/state/guests/*.pid; do
		[ -e "$f" ] || continue
		pid=$(cat "$f")
		kill -TERM "$pid" 2>/dev/null || continue
		while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
	done
}
# sim guests an earlier run left behind (they outlive vpmd, as VMs do)
stop_guests
if [ ! -e "$DEMO/pool2.pm" ] ||
	"$VPMD" --config "$DEMO/vpmd.conf" --check-pool demo0 2>/dev/null | grep -q '"unformatted"'; then
	step "vpmd --config $DEMO/vpmd.conf --init-pool demo0 --force --log-size 128M"
	"$VPMD" --config "$DEMO/vpmd.conf" --init-pool demo0 --force --log-size 128M
fi
step "vpmd --config $DEMO/vpmd.conf --check-pool demo0"
"$VPMD" --config "$DEMO/vpmd.conf" --check-pool demo0
# a fresh run: forget the ratios an earlier run set (vpmd keeps them in state/vms/)
rm -rf "$DEMO/state/vms"
step "vpmd --config $DEMO/vpmd.conf"
"$VPMD" --config "$DEMO/vpmd.conf" 2>"$DEMO/vpmd.log"
echo "vpmd is ready (pid $(cat "$DEMO/state/vpmd.pid")); its log: $DEMO/vpmd.log"
export VPM_SOCKET="$DEMO/vpmd.sock"
step "vpmctl version"
"$VPMCTL" version
step "vpmctl status"
"$VPMCTL" status
step "vpmctl pools"
"$VPMCTL" pools
step "libvirt's running VMs with PM attach: shop (64 MiB nvdimm, ratio 2 from its metadata), journal (two nvdimms), index (virtio-pmem); batch is shut off, web has no PM"
for _ in $(seq 100); do
	"$VPMCTL" list >"$DEMO/list.out"
	grep -q '^shop ' "$DEMO/list.out" && grep -q '^journal ' "$DEMO/list.out" &&
		grep -q '^index ' "$DEMO/list.out" && break
	sleep 0.1
done
sleep 1
step "vpmctl list"
"$VPMCTL" list
step "vpmctl stats"
"$VPMCTL" stats
step "vpmctl set-ratio shop 4 --wait   (shop gives back 3/4 of its PM frames: its hottest pages move to DRAM)"
"$VPMCTL" set-ratio shop 4 --wait
sleep 1
step "vpmctl show shop"
"$VPMCTL" show shop
step "vpmctl set-ratio shop 1 --wait   (every page of shop on PM again)"
"$VPMCTL" set-ratio shop 1 --wait
sleep 1
step "vpmctl stats shop"
"$VPMCTL" stats shop
step "the sim guests stop (SIGTERM); each one's last epoch is committed as it leaves (libvirt's test driver still calls the VMs running: nothing serves them now)"
stop_guests
tail -qn 1 "$DEMO"/state/guests/{shop,journal,index}.log
step "vpmctl list"
"$VPMCTL" list
step "vpmctl recover --check"
"$VPMCTL" recover --check | grep -E '"(state|devices|committed_epochs)"'

if $keep; then
	echo
	echo "vpmd keeps running: VPM_SOCKET=$VPM_SOCKET $VPMCTL status"
else
	step "kill -TERM \$(cat $DEMO/state/vpmd.pid)"
	pid=$(cat "$DEMO/state/vpmd.pid")
	kill -TERM "$pid"
	while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
	echo "vpmd stopped cleanly."
fi
