# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash disable=SC2034
# Shared helpers of the engine benches (ratio-sweep.sh, pause.sh, migration.sh,
# hint-vs-epoch.sh): a private vpmd on an emulated pool in /dev/shm, simulated guests, and
# vpmd's control socket through vpmreq.py. Source it. VPM_BUILD names the build directory
# (default: build/release, else build); RESULTS the directory of the results (bench/results).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC_DIR=$(dirname "$BENCH_DIR")
if [ -z "${VPM_BUILD:-}" ]; then
	for b in "$SRC_DIR/build/release" "$SRC_DIR/build"; do
		if [ -x "$b/vpmd/vpmd" ]; then
			VPM_BUILD=$b
			break
		fi
	done
fi
VPM_BUILD=${VPM_BUILD:-$SRC_DIR/build/release}
VPMD="$VPM_BUILD/vpmd/vpmd"
SIMGUEST="$VPM_BUILD/vpmd/backend/sim/vpm-simguest"
MEMCPY="$VPM_BUILD/bench/bench-memcpy"
RESULTS=${RESULTS:-$BENCH_DIR/results}
BENCH_NAME=$(basename "$0" .sh)
# the system's interpreter: a version manager's shim costs ~0.1 s of CPU per call
PYTHON=${PYTHON:-$(command -v /usr/bin/python3 || command -v python3 || echo python3)}
STAMP=$(date +%Y%m%d-%H%M%S)

# Pools and state in /dev/shm: fast, and as durable as files on this kind of pool anyway.
base=/dev/shm
[ -w "$base" ] || base=/tmp
T=$(mktemp -d "$base/vpm-bench.XXXXXX")
SOCK="$T/vpmd.sock"
SIMSOCK="$T/state/sim.sock"
CONF="$T/vpmd.conf"
VPMD_PID=
GUEST_PIDS=()

bench_log() {
	echo "$BENCH_NAME: $*" >&2
}

bench_fail() {
	echo "$BENCH_NAME: FAILED: $*" >&2
	if [ -f "$T/vpmd.log" ]; then
		echo "--- last lines of the vpmd log ---" >&2
		tail -n 20 "$T/vpmd.log" >&2
	fi
	exit 1
}

bench_cleanup() {
	local p
	for p in "${GUEST_PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${GUEST_PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	if [ -n "$VPMD_PID" ] && kill -0 "$VPMD_PID" 2>/dev/null; then
		kill -TERM "$VPMD_PID" 2>/dev/null || true
		wait "$VPMD_PID" 2>/dev/null || true
	fi
	rm -rf "$T"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

# bench_need FILE...: the executables the bench runs must be built.
bench_need() {
	local f
	for f in "$@"; do
		[ -x "$f" ] || bench_fail "$f is missing; build the tree first (see bench/README.md)"
	done
	command -v "$PYTHON" >/dev/null || bench_fail "python3 is missing; run scripts/deps.sh bench"
	command -v jq >/dev/null || bench_fail "jq is missing; run scripts/deps.sh bench"
	mkdir -p "$RESULTS"
}

# req METHOD [KEY=VALUE...]: one request to vpmd; the result as JSON on stdout.
req() {
	"$PYTHON" "$BENCH_DIR/vpmreq.py" -s "$SOCK" "$@"
}

# bench_start_vpmd POOL_SIZE LOG_SIZE [DAEMON_LINE...]: a fresh pool and a vpmd serving it.
bench_start_vpmd() {
	local size=$1 log_size=$2 line
	shift 2
	bench_stop_vpmd
	rm -rf "$T/state" "$T/pool"
	{
		echo "[daemon]"
		echo "socket = $SOCK"
		echo "state_dir = $T/state"
		echo "libvirt_uri ="
		echo "socket_mode = 0600"
		echo "log_level = warning"
		echo "copy_threads = ${COPY_THREADS:-0}"
		for line in "$@"; do echo "$line"; done
		echo
		echo "[pool bench]"
		echo "path = $T/pool"
		echo "kind = emulated"
		echo "size = $size"
	} >"$CONF"
	"$VPMD" --config "$CONF" --init-pool bench --log-size "$log_size" >>"$T/vpmd.log" 2>&1 ||
		bench_fail "vpmd --init-pool failed"
	"$VPMD" --foreground --config "$CONF" >>"$T/vpmd.log" 2>&1 &
	VPMD_PID=$!
	for _ in $(seq 100); do
		if req status >/dev/null 2>&1; then
			return 0
		fi
		kill -0 "$VPMD_PID" 2>/dev/null || bench_fail "vpmd exited during start-up"
		sleep 0.1
	done
	bench_fail "vpmd did not answer on $SOCK within 10 s"
}

bench_stop_vpmd() {
	if [ -n "$VPMD_PID" ]; then
		kill -TERM "$VPMD_PID" 2>/dev/null || true
		wait "$VPMD_PID" 2>/dev/null || true
		VPMD_PID=
	fi
	rm -f "$T/pool"
}

# bench_guest NAME GUEST_ARGS...: start a simulated guest in the background (GUEST_PID) and
# wait until vpmd has attached it. Its output goes to $T/NAME.out.
bench_guest() {
	local name=$1
	shift
	"$SIMGUEST" -s "$SIMSOCK" -n "$name" "$@" >"$T/$name.out" 2>&1 &
	GUEST_PID=$!
	GUEST_PIDS+=("$GUEST_PID")
	req wait-vm "$name" 20 >/dev/null ||
		bench_fail "guest '$name' did not attach: $(cat "$T/$name.out")"
}

# bench_stop_guest: end the last guest cleanly (SIGTERM) and wait until vpmd lets it go.
bench_stop_guest() {
	local name=$1 p keep=()
	kill -TERM "$GUEST_PID" 2>/dev/null || true
	wait "$GUEST_PID" 2>/dev/null || true
	for p in "${GUEST_PIDS[@]}"; do
		[ "$p" = "$GUEST_PID" ] || keep+=("$p")
	done
	GUEST_PIDS=("${keep[@]}")
	req wait-gone "$name" 20 >/dev/null || bench_fail "VM '$name' was not detached"
}

# vm_stats NAME: the STATS object of one VM.
vm_stats() {
	req stats name="$1" | jq -c '.vms[0].stats'
}

# vm_summary NAME: the VMSUMMARY of one VM.
vm_summary() {
	req vms | jq -c --arg n "$1" '.vms[] | select(.name == $n)'
}

# memcpy_bandwidth: MiB/s of memcpy on large buffers, measured now (bench-memcpy).
memcpy_bandwidth() {
	"$MEMCPY" -m "${MEMCPY_MIB:-256}" -r "${MEMCPY_RUNS:-7}" -j | jq -r '.median_mib_per_sec'
}

# bench_env: one line naming the machine and the build, for the top of every report.
bench_env() {
	printf '%s: %s, %s CPUs, %s; build %s (%s)\n' "$BENCH_NAME" "$(date -Is)" "$(nproc)" \
		"$(uname -r)" "$VPM_BUILD" \
		"$(git -C "$SRC_DIR" describe --always --dirty 2>/dev/null || echo unknown)"
}
