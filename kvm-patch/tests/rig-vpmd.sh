# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
#
# rig-vpmd.sh - what the rig's VM scripts (tests/vm-level.sh, bench/vm-pause.sh) share: a vpmd
# with the kvm backend in $W, on the devdax namespace of the VM's emulated NVDIMM that
# libndctl reports. run-rig.sh --script puts it next to the script (/rig-vpmd.sh). Source it
# after setting W, SOCK and CONF and defining fail MESSAGE (busybox sh).

VPMD_PID=

ctl() { vpmctl -s "$SOCK" "$@"; }

start_vpmd() {
	vpmd --foreground --config "$CONF" >>"$W/vpmd.log" 2>&1 &
	VPMD_PID=$!
	i=0
	while ! ctl status >/dev/null 2>&1; do
		kill -0 "$VPMD_PID" 2>/dev/null || fail "vpmd exited during start-up"
		i=$((i + 1))
		[ $i -lt 300 ] || fail "vpmd did not answer within 30 s"
		sleep 0.1
	done
}

stop_vpmd() {
	kill -TERM "$VPMD_PID"
	wait "$VPMD_PID" || fail "vpmd exited with $? on SIGTERM"
	VPMD_PID=
}

# write_config POOL_PATH [config lines...]: vpmd's config (pool pm0 at POOL_PATH unless empty)
write_config() {
	pool=$1
	shift
	{
		printf '[daemon]\nsocket = %s\nstate_dir = %s/state\n' "$SOCK" "$W"
		printf 'runtime_dir = /run/vpmd\nbackend = kvm\nlibvirt_uri =\n'
		for line in "$@"; do
			echo "$line"
		done
		[ -z "$pool" ] || printf '\n[pool pm0]\npath = %s\n' "$pool"
	} >"$CONF"
}

# rig_pool LOG_SIZE [config lines...]: a fresh $W; DAX = the devdax namespace libndctl reports
# (dax0.0, say), formatted as pool pm0 with a log of LOG_SIZE under a config with those lines;
# DAX empty when there is none (nothing formatted then).
rig_pool() {
	log_size=$1
	shift
	rm -rf "$W" /run/vpmd
	mkdir -p "$W/state"
	write_config "" "$@"
	start_vpmd
	ctl -j pools >"$W/pools.json" || fail "vpmctl pools failed"
	stop_vpmd
	DAX=$(sed -n 's/.*"chardev": *"\(dax[0-9.]*\)".*/\1/p' "$W/pools.json" | head -n 1)
	[ -n "$DAX" ] || return 0
	write_config "/dev/$DAX" "$@"
	vpmd --config "$CONF" --init-pool pm0 --force --log-size "$log_size" >"$W/init.log" 2>&1 ||
		fail "vpmd --init-pool: $(cat "$W/init.log")"
}
