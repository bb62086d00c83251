#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Modeled guest throughput against the consolidation ratio, per workload and placement policy.
#
# For each workload, ratio and policy one simulated guest runs in epoch mode with that ratio
# and policy (vpm-simguest -r -P -m epoch); after a warm-up (the policies need epochs to
# converge) two 'stats' snapshots a window apart give its steady-state modeled throughput:
# delta ops * vCPUs / (delta modeled_ns / 1e9). Every point is measured REPS
# times, the repetitions interleaved (all ratios and policies of a workload, then again), and
# the report takes the median. Baselines, measured in the same run: ratio 1 (every page on a
# PM frame; its vpm runs) and DRAM-only (ratio = pages: one page on PM).
# ratio-sweep-report.py prints the tables, the targets (vpm >= 0.95 x oracle at every ratio,
# and ahead of static, random and lru) and plots the sweep.
#
# The guest's latency model is scaled by LAT_SCALE (10) and the throughput multiplied back:
# the time a vCPU waits in an epoch pause is real time, which the machine's load stretches
# (it was 0-28 % of the modeled time of the same run, and most of the noise); scaled op and
# fault costs make it weigh 1/LAT_SCALE as much, and the figures stay in the units of the
# published latencies. LAT_SCALE=1 measures as before.
#
#   bench/ratio-sweep.sh [--quick]
#
# --quick: one repetition (REPS=1), a third of the time, for a first look.
# Environment: WORKLOADS, RATIOS, POLICIES (space-separated), PAGES (2048), VCPUS (2),
# SEED (42), REPS (3), WARMUP (1 s), WINDOW (1 s), MIN_OPS (16 x PAGES), LAT_SCALE (10),
# VPM_BUILD, RESULTS.
# Results: bench/results/ratio-sweep-*.csv and .png. Each workload gets a fresh pool and vpmd;
# each run a new VM.
. "$(dirname "$0")/lib.sh"

if [ "${1:-}" = --quick ]; then
	REPS=${REPS:-1}
elif [ $# -gt 0 ]; then
	echo "usage: $0 [--quick]" >&2
	exit 2
fi
WORKLOADS=${WORKLOADS:-zipf-kv btree scan log}
RATIOS=${RATIOS:-1 1.5 2 3 4 8}
POLICIES=${POLICIES:-vpm static random lru oracle}
PAGES=${PAGES:-2048}
VCPUS=${VCPUS:-2}
SEED=${SEED:-42}
REPS=${REPS:-3}
WARMUP=${WARMUP:-1}
WINDOW=${WINDOW:-1}
MIN_OPS=${MIN_OPS:-$((16 * PAGES))}
LAT_SCALE=${LAT_SCALE:-10}
MAX_DEVICES=60 # a pool's device table holds 64; each run creates one

bench_need "$VPMD" "$SIMGUEST"
command -v gnuplot >/dev/null || bench_log "gnuplot is missing (scripts/deps.sh bench): no plot"
CSV="$RESULTS/ratio-sweep-$STAMP.csv"
PNG="$RESULTS/ratio-sweep-$STAMP.png"
devices=0
# the published latencies (vpmd/backend/sim/latency.h), LAT_SCALE times
LATENCY=$(awk -v s="$LAT_SCALE" 'BEGIN {
	printf "dram_read=%d,dram_write=%d,pm_read=%d,pm_write=%d,fault=%d",
		81 * s, 86 * s, 305 * s, 94 * s, 4000 * s }')

fresh_vpmd() {
	# a pool whose log takes a whole DRAM-only commit, and frames for every run's device
	bench_start_vpmd 512M 64M "epoch_interval = 100ms"
	devices=0
}

# measure NAME PID: after the warm-up, the stats over the window, then the guest stopped
# (SIGTERM) and gone from vpmd; one CSV line of the run's figures (without its first five
# columns). Warm-up and window last WARMUP and WINDOW seconds and at least MIN_OPS guest
# operations each (polled every 50 ms): a slow guest still gets to its steady state and
# measures all of it (an append-only log touches a page in ~14 operations, so MIN_OPS = 16 x
# pages covers one round of its ring). One Python process per run: the client's start-up is
# not free on two CPUs.
measure() {
	PYTHONPATH="$BENCH_DIR" PYTHONDONTWRITEBYTECODE=1 "$PYTHON" - "$SOCK" "$1" "$2" "$WARMUP" \
		"$WINDOW" "$MIN_OPS" "$LAT_SCALE" <<'EOF'
import os, signal, sys, time
from vpmreq import Client

sock, name, pid, warmup, window, min_ops, scale = sys.argv[1:]


def wait(c, seconds, since):
    """The stats once seconds have passed and min_ops operations since the stats since."""
    end = time.monotonic() + 21 * float(seconds)
    time.sleep(float(seconds))
    while True:
        s = c.vm_stats(name)
        s["t"] = time.monotonic()
        if s["ops"] - since["ops"] >= int(min_ops) or s["t"] > end:
            return s  # past the end: a guest that hardly runs; measure what there is
        time.sleep(0.05)


with Client(sock) as c:
    c.wait_vm(name, 20)
    a = wait(c, warmup, c.vm_stats(name))
    b = wait(c, window, a)
    v = c.vm(name)
    os.kill(int(pid), signal.SIGTERM)
    c.wait_vm(name, 20, gone=True)
try:
    with open("/proc/pressure/cpu") as f:
        psi = f.readline().split()[1].split("=")[1]  # some avg10: % of time a task waited
except OSError:
    psi = ""
ops, ns = b["ops"] - a["ops"], b["modeled_ns"] - a["modeled_ns"]
d = lambda k, s=None: (b[s][k] - a[s][k]) if s else b[k] - a[k]
print(",".join(str(x) for x in (
    v["pages"], v["vcpus"], v["pm_target"], v["dram_share"], ops, ns, scale,
    ops * v["vcpus"] * 1e9 * float(scale) / ns if ns > 0 else 0,
    b["pages"]["dram"], b["pages"]["pm"], str(v["converged"]).lower(), d("epochs"),
    d("early_epochs"), d("faults"), d("promotions", "migrations"),
    d("demotions", "migrations"), b["pause_usec"]["p99"], psi, f"{b['t'] - a['t']:.2f}")))
EOF
}

# run WORKLOAD POLICY RATIO LABEL REP: one guest, one CSV line.
run() {
	local wl=$1 pol=$2 ratio=$3 label=$4 rep=$5 name line p keep=()
	if [ "$devices" -ge "$MAX_DEVICES" ]; then
		fresh_vpmd
	fi
	devices=$((devices + 1))
	name="$wl-$pol-r${label//./_}-$rep"
	"$SIMGUEST" -s "$SIMSOCK" -n "$name" -p "$PAGES" -c "$VCPUS" -w "$wl" -S "$SEED" -m epoch \
		-r "$ratio" -P "$pol" -l "$LATENCY" -d 600 >"$T/$name.out" 2>&1 &
	GUEST_PID=$!
	GUEST_PIDS+=("$GUEST_PID")
	line=$(measure "$name" "$GUEST_PID") ||
		bench_fail "run $name failed: $(cat "$T/$name.out")"
	wait "$GUEST_PID" 2>/dev/null || true
	for p in "${GUEST_PIDS[@]}"; do
		[ "$p" = "$GUEST_PID" ] || keep+=("$p")
	done
	GUEST_PIDS=("${keep[@]}")
	echo "$wl,$pol,$ratio,$label,$rep,$line" >>"$CSV"
	awk -F, '{ printf "  %-8s %-7s ratio %-9s rep %s %7.3f Mops/s  (%s ops, %s)\n",
		$1, $2, $4, $5, $13 / 1e6, $10, "cpu pressure " $23 " %" }' \
		<<<"$wl,$pol,$ratio,$label,$rep,$line" >&2
}

echo "workload,policy,ratio,ratio_label,rep,pages,vcpus,pm_target,dram_share,ops,modeled_ns,lat_scale,modeled_ops_per_sec,dram_pages,pm_pages,converged,epochs,early_epochs,faults,promotions,demotions,pause_p99_usec,cpu_pressure_pct,window_sec" >"$CSV"
bench_env
echo "ratio-sweep: $PAGES pages, $VCPUS vCPUs, seed $SEED, epoch mode, $REPS repetitions of" \
	"${WARMUP} s warm-up + ${WINDOW} s window, latency model x $LAT_SCALE; load:" \
	"$(cut -d' ' -f1-3 /proc/loadavg)"
t0=$(date +%s)
read -ra pols <<<"$POLICIES"
for wl in $WORKLOADS; do
	bench_log "$wl: fresh pool and vpmd"
	fresh_vpmd
	for rep in $(seq "$REPS"); do
		# DRAM-only baseline: ratio = pages leaves one page on PM
		run "$wl" vpm "$PAGES" dram-only "$rep"
		for ratio in $RATIOS; do
			# the policies in a different order each time round
			for ((i = 0; i < ${#pols[@]}; i++)); do
				pol=${pols[(i + rep - 1) % ${#pols[@]}]}
				run "$wl" "$pol" "$ratio" "$ratio" "$rep"
			done
		done
	done
	bench_stop_vpmd
done
echo "ratio-sweep: $(($(date +%s) - t0)) s of runs; load at the end:" \
	"$(cut -d' ' -f1-3 /proc/loadavg)"
"$PYTHON" "$BENCH_DIR/ratio-sweep-report.py" "$CSV" ${PNG:+--png "$PNG"}
