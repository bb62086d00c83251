#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The consolidation engine through vpmctl: set-ratio up and down with --wait reaches the
# target share of PM frames exactly; modes switch under a running guest without losing a
# write; admission control refuses what does not fit (PM frames, DRAM budget, log capacity)
# and changes nothing then; bad requests get clear errors; settings survive a vpmd restart
# while the guest runs on and re-attaches.
. "$(dirname "$0")/lib.sh"
sim_test_env engine

# DRAM budget 11M = 2816 pages; a 32M log lets one epoch commit about 4000 pages
write_config "epoch_interval = 20ms" "dram_budget = 11M"
sed -i "s|^path = .*|path = $POOL|; s|^size = 16M|size = 64M|" "$CONF"
expect_rc 0 "$VPMD" --config "$CONF" --init-pool test --log-size 32M
start_vpmd
mkdir "$T/hist"
ctl() { "$VPMCTL" -s "$SOCK" "$@"; }
show() { ctl -j show "$1" | jq -r ".vm.$2"; }

# a: 1024 pages of read-mostly scans (every page touched within a second)
"$SIMGUEST" -s "$SIMSOCK" -n a -p 1024 -c 2 -w scan -r 2 -d 120 -R 30 -S 3 -H "$T/hist" \
	>"$T/a.out" 2>&1 &
guests+=($!)
for _ in $(seq 100); do
	[ "$(ctl -j list 2>/dev/null | jq '.vms[0].image_pages')" = 0 ] && break
	sleep 0.1
done
[ "$(show a image_pages)" = 0 ] || fail "guest a did not touch all its pages: $(ctl -j show a)"

# ---- set-ratio --wait: the placement after the boundary is the target, exactly ----
for ratio_pm in 4:256 1.5:683 8:128 1:1024 2:512; do
	ratio=${ratio_pm%%:*} want=${ratio_pm#*:}
	expect_rc 0 ctl set-ratio a "$ratio" --wait --timeout 30
	ctl -j show a >"$T/a.json"
	jq_check ".vm.pm_target == $want and .vm.dram_share == 1024 - $want" "$T/a.json"
	jq_check ".vm.converged and .vm.boundary_pm_pages == $want and
		  .vm.boundary_dram_pages == 1024 - $want" "$T/a.json"
done
jq_check '.vm.ratio == 2 and .vm.page_table_bytes == 1024 * 8' "$T/a.json"

# ---- bad requests: a clear message, nothing changes, vpmd lives on ----
expect_rc 1 ctl set-ratio nosuchvm 2
expect_grep "no VM named 'nosuchvm'" "$T/stderr"
for bad in 0.5 0 -1 nan NaN inf 1e9 70000 abc ""; do
	rc=0
	ctl set-ratio a "$bad" >"$T/stdout" 2>"$T/stderr" || rc=$?
	[ "$rc" -ne 0 ] || fail "set-ratio a '$bad' succeeded"
	grep -qi "ratio" "$T/stderr" || fail "set-ratio a '$bad': no word of the ratio: $(cat "$T/stderr")"
done
rc=0
ctl set-mode a turbo >"$T/stdout" 2>"$T/stderr" || rc=$?
[ "$rc" -ne 0 ] && grep -q "native" "$T/stderr" || fail "set-mode a turbo: $(cat "$T/stderr")"
expect_rc 1 ctl show nosuchvm
expect_grep "no VM named" "$T/stderr"
[ "$(show a ratio)" = 2 ] || fail "a bad request changed the ratio"

# ---- admission control ----
# b: 2048 pages at ratio 2 fit (DRAM: a 512 + 64 headroom, b 1024 + 128 of 2816 pages)
"$SIMGUEST" -s "$SIMSOCK" -n b -p 2048 -c 1 -w zipf-kv -r 2 -d 120 -R 30 -S 4 -H "$T/hist" \
	>"$T/b.out" 2>&1 &
guests+=($!)
for _ in $(seq 100); do
	[ "$(ctl -j list | jq '.vms | length')" = 2 ] && break
	sleep 0.1
done
[ "$(ctl -j list | jq '.vms | length')" = 2 ] || fail "b did not attach: $(cat "$T/b.out")"
# all of both in DRAM (1023 + 1, 2047 + 1 pages) does not fit 2816 pages: refused whole
expect_rc 1 ctl set-ratio --all 65536
expect_grep "dram_budget" "$T/stderr"
expect_grep "short" "$T/stderr"
[ "$(show a ratio)" = 2 ] && [ "$(show b ratio)" = 2 ] ||
	fail "a refused --all changed a ratio"
# a guest whose PM frames cannot fit at ratio 1: refused at attach, with the shortfall named
"$SIMGUEST" -s "$SIMSOCK" -n huge -p 16384 -c 1 -w scan -r 1 -o 1000 >"$T/huge.out" 2>&1 &&
	fail "a guest needing 16384 PM frames of a 64M pool was admitted"
grep -q "refused" "$T/huge.out" || fail "the refused guest was not told: $(cat "$T/huge.out")"
grep -q "PM frames.*short" "$T/vpmd.log" || fail "vpmd did not log the PM shortfall"
# the DRAM budget: 3072 + 256 pages for this one alone
"$SIMGUEST" -s "$SIMSOCK" -n fat -p 4096 -c 1 -w scan -r 4 -o 1000 >"$T/fat.out" 2>&1 &&
	fail "a guest whose DRAM share overflows dram_budget was admitted"
grep -q "dram_budget.*short" "$T/vpmd.log" || fail "vpmd did not log the DRAM shortfall"

# ---- modes under a running guest: native, hint, epoch ----
expect_rc 0 ctl set-mode a native
ctl -j show a >"$T/a.json"
jq_check '.vm.mode == "native" and .vm.ratio == 1 and .vm.dram_pages == 0' "$T/a.json"
sleep 0.3
expect_rc 0 ctl set-mode a hint
jq_check '.vm.mode == "hint"' <(ctl -j show a)
sleep 0.3
expect_rc 0 ctl set-mode a epoch
expect_rc 0 ctl set-ratio a 3 --wait --timeout 30
expect_rc 0 ctl set-policy a oracle
expect_rc 0 ctl set-priority a 90
ctl -j show a >"$T/a.json"
jq_check '.vm.mode == "epoch" and .vm.policy == "oracle" and .vm.priority == 90' "$T/a.json"

# ---- stats ----
ctl -j stats >"$T/stats.json"
jq_check '.vms | length == 2' "$T/stats.json"
jq_check '[.vms[].stats | .pause_usec.p50, .pause_usec.p99, .pause_usec.max, .log_bytes,
	   .pm_bytes_written, .migrations.promotions, .modeled_ops_per_sec, .loss_window_usec,
	   .dirty_pages_per_epoch.mean] | all(. != null)' "$T/stats.json"
jq_check '.totals.dram_budget_pages == 2816' "$T/stats.json"
expect_rc 0 ctl stats a
expect_grep "^a " "$T/stdout"

# ---- a reload that lowers dram_budget below what the VMs hold: they keep it, with a warning
sed -i 's/^dram_budget = 11M$/dram_budget = 1M/' "$CONF"
expect_rc 0 ctl -j reload
jq_check '.warnings | any(test("dram_budget is [0-9]+ pages below"))' "$T/stdout"
jq_check '.vms | length == 2' <(ctl -j list)
expect_rc 1 ctl set-ratio a 4
sed -i 's/^dram_budget = 1M$/dram_budget = 11M/' "$CONF"
expect_rc 0 ctl reload

# ---- settings survive a restart; the running guests re-attach ----
stop_vpmd
sleep 0.3
start_vpmd
for _ in $(seq 100); do
	[ "$(ctl -j list | jq '.vms | length')" = 2 ] && break
	sleep 0.1
done
ctl -j show a >"$T/a.json"
jq_check '.vm.ratio == 3 and .vm.policy == "oracle" and .vm.priority == 90' "$T/a.json"
grep -q "VM 'a' re-attached" "$T/vpmd.log" || fail "a did not re-attach"

# ---- the guests finish: every write they made is on their devices ----
finish_guests
stop_vpmd
check_final a:3 b:4
echo "test-engine: ok"
