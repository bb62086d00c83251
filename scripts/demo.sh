#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The main job, end to end on this machine: build VPM, format an emulated PM pool (once),
# start vpmd on it (recovering the pool first), let three simulated VMs with different
# workloads and modes run against it, show them with vpmctl list and stats, move one VM to
# a higher consolidation ratio and back with set-ratio --wait, and show the effect.
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
# Demo configuration: one emulated PM pool (a plain file; no real persistence).
[daemon]
socket = $DEMO/vpmd.sock
state_dir = $DEMO/state
dram_budget = 512M
epoch_interval = 100ms

[pool demo0]
path = $DEMO/pool0.pm
kind = emulated
size = 256M
CONF

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

if [ ! -e "$DEMO/pool0.pm" ] ||
	"$VPMD" --config "$DEMO/vpmd.conf" --check-pool demo0 2>/dev/null | grep -q '"unformatted"'; then
	step "vpmd --config $DEMO/vpmd.conf --init-pool demo0 --force"
	"$VPMD" --config "$DEMO/vpmd.conf" --init-pool demo0 --force
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
SIMGUEST=build/demo/vpmd/backend/sim/vpm-simguest
step "three simulated VMs attach: shop (zipf-kv, ratio 2), journal (log with persist hints, hint mode), index (btree, ratio 1.5)"
guests=()
for spec in shop:zipf-kv:2:epoch journal:log:2:hint index:btree:1.5:epoch; do
	IFS=: read -r name wl ratio mode <<<"$spec"
	"$SIMGUEST" -s "$DEMO/state/sim.sock" -n "$name" -p 4096 -c 2 -w "$wl" -r "$ratio" \
		-m "$mode" -d 60 >"$DEMO/$name.out" 2>&1 &
	guests+=($!)
done
sleep 2
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
step "the guests stop (SIGTERM); each one's last epoch is committed as it leaves"
kill -TERM "${guests[@]}"
wait "${guests[@]}"
cat "$DEMO"/shop.out "$DEMO"/journal.out "$DEMO"/index.out
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
