#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The pool format through vpmd and vpmctl: unformatted pools, --init-pool and its refusals,
# --check-pool, recovery at start reported in status, pool-check and recover --check, and a
# damaged pool refused with a message that says which pool and what is wrong.
. "$(dirname "$0")/lib.sh"
PMSTRESS="$VPM_BUILD/tests/vpm-pmstress"

write_config
sed -i 's/^size = 16M/size = 8M/' "$CONF"
start_vpmd
expect_rc 0 "$VPMCTL" -s "$SOCK" -j pools
jq_check '.pools[0].formatted == false and (.pools[0] | has("store") | not)' "$T/stdout"
expect_rc 0 "$VPMCTL" -s "$SOCK" pools
expect_grep "unformatted" "$T/stdout"
expect_grep "vpmd --init-pool NAME" "$T/stdout"
expect_rc 0 "$VPMCTL" -s "$SOCK" pool-check
jq_check '.pools[0].state == "unformatted"' "$T/stdout"

# formatting needs the pool to itself: vpmd holds it
expect_rc 1 "$VPMD" --config "$CONF" --init-pool test
expect_grep "in use by another process" "$T/stderr"
stop_vpmd
expect_rc 1 "$VPMD" --config "$CONF" --init-pool nosuchpool
expect_grep "No \[pool nosuchpool\]" "$T/stderr"
expect_rc 0 "$VPMD" --config "$CONF" --init-pool test --log-size 1M
expect_grep "formatted" "$T/stderr"
expect_rc 1 "$VPMD" --config "$CONF" --init-pool test
expect_grep "already formatted; use --force" "$T/stderr"
expect_rc 0 "$VPMD" --config "$CONF" --init-pool test --log-size 1M --force
expect_rc 0 "$VPMD" --config "$CONF" --check-pool test
jq_check '.state == "ok" and .check.committed_epochs == 0' "$T/stdout"

# committed epochs left in the log (no checkpoint) are replayed when vpmd starts
mkdir -p "$T/work"
"$PMSTRESS" run "$T/pool0" "$T/work" 5 42 || fail "workload failed"
expect_rc 0 "$VPMD" --config "$CONF" --check-pool test
jq_check '.check.committed_epochs > 0 and .check.devices == 3' "$T/stdout"
start_vpmd
expect_rc 0 "$VPMCTL" -s "$SOCK" -j status
jq_check '.pools.formatted == 1 and .pools.recovery_replayed_bytes > 0' "$T/stdout"
expect_rc 0 "$VPMCTL" -s "$SOCK" -j pools
jq_check '.pools[0].formatted == true and (.pools[0].store.devices | length) == 3' "$T/stdout"
jq_check '.pools[0].recovery.committed_epochs > 0 and .pools[0].store.log_used == 0' \
	"$T/stdout"
jq_check '[.pools[0].store.devices[].name] == ["kv-store", "log-hint", "btree"]' "$T/stdout"
expect_rc 0 "$VPMCTL" -s "$SOCK" pools
expect_grep "^test .* vpm  *3 " "$T/stdout"
expect_rc 0 "$VPMCTL" -s "$SOCK" pool-check test
jq_check '.pools[0].state == "ok" and .pools[0].check.committed_epochs == 0' "$T/stdout"
expect_rc 0 "$VPMCTL" -s "$SOCK" recover --check
jq_check '.pools[0].check.discarded_records == 0' "$T/stdout"
expect_rc 2 "$VPMCTL" -s "$SOCK" recover
expect_rc 1 "$VPMCTL" -s "$SOCK" pool-check nosuchpool
expect_grep "no pool named 'nosuchpool'" "$T/stderr"
stop_vpmd
"$PMSTRESS" verify "$T/pool0" "$T/work" 5 >/dev/null || fail "vpmd's recovery lost data"

# both superblocks damaged: vpmd refuses to start and names the pool and the damage
printf 'XX' | dd of="$T/pool0" bs=1 seek=16 conv=notrunc status=none
printf 'XX' | dd of="$T/pool0" bs=1 seek=4112 conv=notrunc status=none
expect_rc 1 "$VPMD" --foreground --config "$CONF"
expect_grep "Pool 'test'.*no valid superblock" "$T/stderr"
expect_rc 1 "$VPMD" --config "$CONF" --check-pool test
jq_check '.state == "damaged" and (.check.problem | test("superblock"))' "$T/stdout"
echo "test-store: ok"
