# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared helpers for the integration tests: a private vpmd on a temporary socket, state
# directory and emulated pool. Source it; VPM_BUILD names the build directory.
set -euo pipefail

: "${VPM_BUILD:?VPM_BUILD must name the build directory}"
VPMD="$VPM_BUILD/vpmd/vpmd"
VPMCTL="$VPM_BUILD/cli/vpmctl"
T=$(mktemp -d /tmp/vpm-it.XXXXXX)
chmod 0755 "$T"
SOCK="$T/vpmd.sock"
CONF="$T/vpmd.conf"
VPMD_PID=

fail() {
	echo "FAIL: $*" >&2
	if [ -f "$T/vpmd.log" ]; then
		echo "--- vpmd log ---" >&2
		tail -n 40 "$T/vpmd.log" >&2
	fi
	exit 1
}

FAKE_PIDS=() # stand-in vpmds (start_fake_vpmd) and other helpers to kill at the end

# stop_pids PID...: SIGTERM to each, and wait for it
stop_pids() {
	local pid
	for pid in "$@"; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
}

cleanup() {
	stop_pids "${FAKE_PIDS[@]}"
	if [ -n "$VPMD_PID" ] && kill -0 "$VPMD_PID" 2>/dev/null; then
		kill -TERM "$VPMD_PID" 2>/dev/null || true
		wait "$VPMD_PID" 2>/dev/null || true
	fi
	rm -rf "$T"
}
trap cleanup EXIT

# write_config [extra [daemon] lines...]: a config with one 16 MiB emulated pool.
write_config() {
	{
		echo "[daemon]"
		echo "socket = $SOCK"
		echo "state_dir = $T/state"
		echo "libvirt_uri ="
		echo "socket_mode = 0666"
		for line in "$@"; do echo "$line"; done
		echo
		echo "[pool test]"
		echo "path = $T/pool0"
		echo "kind = emulated"
		echo "size = 16M"
	} >"$CONF"
}

# wait_ready: until vpmctl gets an answer, at most 10 s.
wait_ready() {
	for _ in $(seq 100); do
		if "$VPMCTL" -s "$SOCK" status >/dev/null 2>&1; then
			return 0
		fi
		if [ -n "$VPMD_PID" ] && ! kill -0 "$VPMD_PID" 2>/dev/null; then
			fail "vpmd exited during start-up"
		fi
		sleep 0.1
	done
	fail "vpmd did not answer on $SOCK within 10 s"
}

# start_vpmd: vpmd in the foreground, in the background of this shell.
start_vpmd() {
	"$VPMD" --foreground --config "$CONF" >>"$T/vpmd.log" 2>&1 &
	VPMD_PID=$!
	wait_ready
}

# stop_vpmd: SIGTERM; a child must exit 0, a detached daemon must be gone within 10 s.
stop_vpmd() {
	local rc=0
	kill -TERM "$VPMD_PID"
	if jobs -p | grep -qx "$VPMD_PID"; then
		wait "$VPMD_PID" || rc=$?
		[ "$rc" -eq 0 ] || fail "vpmd exited with $rc on SIGTERM"
	else
		for _ in $(seq 100); do
			kill -0 "$VPMD_PID" 2>/dev/null || break
			sleep 0.1
		done
		! kill -0 "$VPMD_PID" 2>/dev/null || fail "vpmd did not stop on SIGTERM"
	fi
	VPMD_PID=
}

# expect_rc CODE CMD...: run CMD, check its exit code, keep its stderr in $T/stderr.
expect_rc() {
	local want=$1 rc=0
	shift
	"$@" >"$T/stdout" 2>"$T/stderr" || rc=$?
	[ "$rc" -eq "$want" ] || fail "'$*' exited $rc, expected $want; stderr: $(cat "$T/stderr")"
}

expect_grep() {
	local pattern=$1 file=$2
	grep -q -- "$pattern" "$file" || fail "'$pattern' not in $file: $(cat "$file")"
}

# jq_check EXPR FILE: EXPR must be true for the JSON in FILE.
jq_check() {
	jq -e "$1" "$2" >/dev/null || fail "jq '$1' is false for $(cat "$2")"
}

# start_fake_vpmd SOCKET reply FILE | SOCKET hook LOG: the stand-in vpmd of fake-vpmd.py in the
# background (killed by cleanup), once its socket is there
start_fake_vpmd() {
	python3 "$(dirname "${BASH_SOURCE[0]}")/fake-vpmd.py" "$@" &
	FAKE_PIDS+=($!)
	for _ in $(seq 100); do
		[ -S "$1" ] && return 0
		sleep 0.1
	done
	fail "the stand-in vpmd did not start"
}

# ---- simulated guests ----------------------------------------------------------------------

# sim_test_env NAME: SIMGUEST, SIMCHECK, SIMSOCK and POOL (a pool file in /dev/shm, removed at
# exit) for a test of simulated guests; the guests in guests[] are stopped at exit.
sim_test_env() {
	SIMGUEST="$VPM_BUILD/vpmd/backend/sim/vpm-simguest"
	SIMCHECK="$VPM_BUILD/tests/vpm-simcheck"
	SIMSOCK="$T/state/sim.sock"
	local base=/dev/shm
	[ -w "$base" ] || base=$T
	POOL="$base/vpm-$1-test.$$.pool"
	guests=()
	trap 'stop_guests; cleanup; rm -f "$POOL"' EXIT
}

# stop_guests: SIGTERM to every guest in guests[] (each commits and leaves); waits for them.
stop_guests() {
	stop_pids "${guests[@]}"
	guests=()
}

# finish_guests: as stop_guests, but each guest must exit 0 and vpmd then serves no VM.
finish_guests() {
	local p
	kill -TERM "${guests[@]}"
	for p in "${guests[@]}"; do
		wait "$p" || fail "a guest failed: $(cat "$T"/*.out 2>/dev/null)"
	done
	guests=()
	wait_vms 0
}

# wait_vms N: until vpmd serves N VMs, at most 10 s
wait_vms() {
	for _ in $(seq 100); do
		"$VPMCTL" -s "$SOCK" -j list >"$T/vms.json" 2>/dev/null &&
			jq -e ".vms | length == $1" "$T/vms.json" >/dev/null && return 0
		sleep 0.1
	done
	fail "vpmd does not serve $1 VMs: $(cat "$T/vms.json")"
}

# check_final NAME:SEED...: every write of each guest (its history in $T/hist) is on its device
check_final() {
	local vm
	for vm in "$@"; do
		"$SIMCHECK" "$POOL" "${vm%%:*}" "$T/hist" "${vm#*:}" final >"$T/check.out" 2>&1 ||
			fail "${vm%%:*}: $(cat "$T/check.out")"
	done
}
