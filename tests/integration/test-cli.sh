#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# vpmctl against a private vpmd: JSON and table output, exit codes, error messages.
. "$(dirname "$0")/lib.sh"

# vpmd not running: exit 3, and the message names the socket that was tried.
expect_rc 3 "$VPMCTL" -s "$SOCK" status
expect_grep "cannot connect to vpmd at '$SOCK'" "$T/stderr"
expect_grep "is vpmd running" "$T/stderr"
expect_rc 3 "$VPMCTL" -s "$SOCK" version
expect_grep "not reachable" "$T/stdout"

# usage errors: exit 2
expect_rc 2 "$VPMCTL"
expect_rc 2 "$VPMCTL" frobnicate
expect_grep "unknown command 'frobnicate'" "$T/stderr"
expect_rc 2 "$VPMCTL" status extra-arg
expect_rc 2 "$VPMCTL" --no-such-option status
expect_rc 0 "$VPMCTL" help
expect_grep "status" "$T/stdout"

write_config
start_vpmd

expect_rc 0 "$VPMCTL" -s "$SOCK" -j status
cp "$T/stdout" "$T/status.json"
jq_check '.protocol == 1' "$T/status.json"
jq_check ".pid == $VPMD_PID" "$T/status.json"
jq_check ".socket == \"$SOCK\"" "$T/status.json"
jq_check ".state_dir == \"$T/state\"" "$T/status.json"
jq_check '.version | test("^[0-9]+\\.[0-9]+\\.[0-9]+$")' "$T/status.json"
jq_check '.pools.count == 1 and .pools.emulated == 1 and .pools.size == 16777216' \
	"$T/status.json"
jq_check '.backend == "sim" and .epoch_interval_usec == 100000' "$T/status.json"
jq_check '.socket_activated == false and .last_reload_error == null' "$T/status.json"
jq_check '.clients.connected == 1 and .clients.requests >= 1' "$T/status.json"

expect_rc 0 "$VPMCTL" -s "$SOCK" -j pools
cp "$T/stdout" "$T/pools.json"
jq_check '.pools | length == 1' "$T/pools.json"
jq_check '.pools[0].name == "test" and .pools[0].kind == "emulated"' "$T/pools.json"
jq_check ".pools[0].path == \"$T/pool0\"" "$T/pools.json"
jq_check '.pools[0].size == 16777216 and .pools[0].store_granularity == "page"' "$T/pools.json"
jq_check '.pools[0].persistent == false and (.pools[0].warning | test("power loss"))' \
	"$T/pools.json"
jq_check '.host.regions | type == "array"' "$T/pools.json"
if [ ! -d /sys/bus/nd/devices ]; then
	# No NVDIMMs here: an empty libndctl listing, not an error.
	jq_check '.host.regions == [] and (has("host_error") | not)' "$T/pools.json"
fi

# tables for people, with the lack of persistence spelled out
expect_rc 0 "$VPMCTL" -s "$SOCK" status
expect_grep "vpmd .* (pid $VPMD_PID)" "$T/stdout"
expect_grep "NOT persistent" "$T/stdout"
expect_rc 0 "$VPMCTL" -s "$SOCK" pools
expect_grep "^test  *emulated  *16 MiB  *page  *NO" "$T/stdout"
expect_grep "power loss" "$T/stdout"
expect_rc 0 "$VPMCTL" -s "$SOCK" version
expect_grep "^vpmd  *[0-9.]* (protocol 1)" "$T/stdout"
expect_rc 0 "$VPMCTL" -s "$SOCK" -j version
jq_check '.vpmd == .vpmctl and .protocol == 1' "$T/stdout"

# the socket from the environment
VPM_SOCKET="$SOCK" expect_rc 0 "$VPMCTL" -j status

# reload by root through the socket
expect_rc 0 "$VPMCTL" -s "$SOCK" reload
expect_rc 0 "$VPMCTL" -s "$SOCK" -j status
jq_check '.reloads == 1' "$T/stdout"

stop_vpmd
[ ! -e "$SOCK" ] || fail "vpmd left its socket behind"
echo "test-cli: ok"
