#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The engine benches still run end to end: each of bench/ratio-sweep.sh, pause.sh,
# migration.sh and hint-vs-epoch.sh on the smallest settings that exercise every step (vpmd on
# an emulated pool, simulated guests, the control requests they make, the report, CSV and
# plot). Only that they run and report is checked, never a figure: performance is measured by
# hand (bench/README.md), on an idle machine.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/../.." && pwd)
: "${VPM_BUILD:?VPM_BUILD names the build directory}"
export VPM_BUILD
RESULTS=$(mktemp -d /tmp/vpm-bench-smoke.XXXXXX)
export RESULTS MEMCPY_MIB=16 MEMCPY_RUNS=3
trap 'rm -rf "$RESULTS"' EXIT

fail() {
	echo "bench-smoke: FAIL: $*" >&2
	exit 1
}

# run NAME PATTERN COMMAND...: the bench exits 0 and its report says PATTERN
run() {
	local name=$1 pattern=$2 out
	shift 2
	echo "bench-smoke: $name"
	out=$("$@" 2>&1) || { echo "$out" | tail -n 30; fail "$name exited with $?"; }
	grep -qE "$pattern" <<<"$out" || { echo "$out" | tail -n 30; fail "$name: no '$pattern'"; }
}

# a CSV with a header and at least n rows
csv_rows() {
	local f
	f=$(ls "$RESULTS"/$1 2>/dev/null | head -n1)
	[ -n "$f" ] || fail "no $1 in the results"
	[ "$(($(wc -l <"$f") - 1))" -ge "$2" ] || fail "$f has fewer than $2 rows"
}

run ratio-sweep "summary|vpm" env WORKLOADS="zipf-kv log" RATIOS="1 2" POLICIES="vpm lru oracle" \
	PAGES=256 WARMUP=0.3 WINDOW=0.3 MIN_OPS=2000 "$SRC/bench/ratio-sweep.sh" --quick
csv_rows 'ratio-sweep-*[0-9].csv' 12
csv_rows 'ratio-sweep-*-targets.csv' 4
if command -v gnuplot >/dev/null; then
	ls "$RESULTS"/ratio-sweep-*.png >/dev/null 2>&1 || fail "ratio-sweep made no plot"
fi

run pause "target met at [0-9]+ of 1 sizes" env SIZES=1 DURATION=3 "$SRC/bench/pause.sh"
csv_rows 'pause-*.csv' 1

run migration "memcpy" env MIB=8 ROUNDS=1 "$SRC/bench/migration.sh"
csv_rows 'migration-*.csv' 1

run hint-vs-epoch "epoch" env OPS=20000 PAGES=256 WARMUP=0.5 "$SRC/bench/hint-vs-epoch.sh"
csv_rows 'hint-vs-epoch-*.csv' 2

echo "bench-smoke: every bench ran and reported"
