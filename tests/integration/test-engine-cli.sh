#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# vpmctl's engine commands end to end (list, show, stats, set-ratio, set-mode, set-policy,
# set-priority) against vpmd with simulated guests: JSON fields, tables, --wait reaching the
# target, --watch frames, and bad requests refused with clear messages and status 1, whether
# vpmctl, libvpm or vpmd catches them. (Who may read and change is test-access.sh's part.)
. "$(dirname "$0")/lib.sh"
sim_test_env engine-cli

# a migration rate of 1 MiB/s makes a 16 MiB VM take seconds to converge
write_config "epoch_interval = 20ms" "migration_rate = 1M"
sed -i "s|^path = .*|path = $POOL|; s|^size = 16M|size = 128M|" "$CONF"
# a 64 MiB log: one epoch may commit 32 MiB, more than any VM here holds in DRAM
expect_rc 0 "$VPMD" --config "$CONF" --init-pool test --log-size 64M
start_vpmd

# guest NAME PAGES SECONDS [more vpm-simguest options]
guest() {
	local name=$1 pages=$2 secs=$3
	shift 3
	"$SIMGUEST" -s "$SIMSOCK" -n "$name" -p "$pages" -c 2 -w zipf-kv -d "$secs" -S 7 "$@" \
		>"$T/$name.out" 2>&1 &
	guests+=($!)
}

# vm_field NAME JQ: a field of one VM in 'vpmctl -j list'
vm_field() {
	"$VPMCTL" -s "$SOCK" -j list | jq -r --arg n "$1" ".vms[] | select(.name == \$n) | $2"
}

# raw METHOD PARAMS-JSON: vpmd's reply to a request vpmctl would never send
raw() {
	python3 - "$SOCK" "$1" "$2" <<'EOF'
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(json.dumps({"protocol": 1, "method": sys.argv[2],
                      "params": json.loads(sys.argv[3])}).encode() + b"\0")
buf = b""
while not buf.endswith(b"\0"):
    chunk = s.recv(65536)
    if not chunk:
        break
    buf += chunk
print(buf.rstrip(b"\0").decode())
EOF
}

guest kv1 256 60
guest log1 256 60 -w log
guest bt1 4096 60 -w btree
wait_vms 3
sleep 0.5

# ---- list: the old columns first, then the engine's ----
expect_rc 0 "$VPMCTL" -s "$SOCK" list
expect_grep "^kv1 *epoch *256 *2 " "$T/stdout"
expect_grep "RATIO" "$T/stdout"
expect_grep "POLICY" "$T/stdout"
expect_rc 0 "$VPMCTL" -s "$SOCK" -j list
cp "$T/stdout" "$T/list.json"
jq_check '.vms | length == 3' "$T/list.json"
jq_check '[.vms[] | has("policy", "priority", "ratio", "image_pages", "pm_target", "dram_share",
	"converged", "migrating_pages", "demotions", "promotions", "faults", "dirty_pages",
	"pause_usec_max", "page_table_bytes")] | all' "$T/list.json"
jq_check '.vms[] | select(.name == "kv1") | .ratio == 1 and .pm_target == 256 and
	.dram_share == 0' "$T/list.json"
jq_check '[.vms[] | .dram_pages + .pm_pages + .image_pages == .pages] | all' "$T/list.json"

# ---- show ----
expect_rc 0 "$VPMCTL" -s "$SOCK" show kv1
expect_grep "^name: *kv1" "$T/stdout"
expect_grep "^converged: " "$T/stdout"
expect_grep "^epoch pause: *p50 " "$T/stdout"
expect_grep "^device: *#[0-9]* in pool 'test'" "$T/stdout"
expect_rc 0 "$VPMCTL" -s "$SOCK" -j show kv1
jq_check 'keys == ["vm"]' "$T/stdout"
jq ".vm" "$T/stdout" >"$T/show.json"
jq_check '.name == "kv1" and .backend == "sim" and .epoch_interval_usec == 20000' "$T/show.json"
jq_check '.device.pool == "test" and (.device.index | type == "number") and
	(.device.image | type == "string")' "$T/show.json"
jq_check '.stats | has("pages", "epochs", "pause_usec", "dirty_pages_per_epoch", "log_bytes",
	"pm_bytes_written", "migrations", "ops", "modeled_ops_per_sec", "wall_ops_per_sec",
	"loss_window_usec", "hints", "faults")' "$T/show.json"
jq_check '.stats.pause_usec.p50 <= .stats.pause_usec.p99 and
	.stats.pause_usec.p99 <= .stats.pause_usec.max and .stats.pause_usec.samples > 0' \
	"$T/show.json"
jq_check '.stats.loss_window_usec >= 20000' "$T/show.json"
jq_check '.stats.pm_bytes_written >= .stats.log_bytes and .stats.log_bytes > 0' "$T/show.json"
expect_rc 1 "$VPMCTL" -s "$SOCK" show nope
expect_grep "no VM named 'nope'; see 'vpmctl list'" "$T/stderr"

# ---- stats ----
expect_rc 0 "$VPMCTL" -s "$SOCK" -j stats
cp "$T/stdout" "$T/stats.json"
jq_check '.vms | length == 3' "$T/stats.json"
jq_check '[.vms[] | has("name", "mode", "ratio", "stats")] | all' "$T/stats.json"
jq_check '.totals | has("dram_budget_pages", "dram_used_pages", "pm_frames_total",
	"pm_frames_free", "log_bytes", "pm_bytes_written", "migrations")' "$T/stats.json"
jq_check '.totals.dram_budget_pages == 262144 and
	.totals.pm_frames_free <= .totals.pm_frames_total' "$T/stats.json"
jq_check '.totals.log_bytes == ([.vms[].stats.log_bytes] | add)' "$T/stats.json"
expect_rc 0 "$VPMCTL" -s "$SOCK" -j stats kv1
jq_check '.vms | length == 1 and .[0].name == "kv1"' "$T/stdout"
expect_rc 0 "$VPMCTL" -s "$SOCK" stats
expect_grep "^VM *MODE *RATIO *DRAM *PM *EPOCHS *PAUSE-P50" "$T/stdout"
expect_grep "^kv1 *epoch *1 " "$T/stdout"
expect_grep "^total: DRAM [0-9]* of 262144 pages in use" "$T/stdout"
expect_rc 1 "$VPMCTL" -s "$SOCK" stats nope
expect_grep "no VM named 'nope'" "$T/stderr"

# --watch: one JSON document per line and frame, exit 0 on SIGINT and SIGTERM
for sig in INT TERM; do
	"$VPMCTL" -s "$SOCK" -j stats --watch 0.2 >"$T/watch.out" 2>"$T/watch.err" &
	w=$!
	sleep 1.1
	kill -"$sig" "$w"
	rc=0
	wait "$w" || rc=$?
	[ "$rc" -eq 0 ] || fail "stats --watch exited $rc on SIG$sig: $(cat "$T/watch.err")"
	[ "$(wc -l <"$T/watch.out")" -ge 4 ] || fail "stats --watch: $(cat "$T/watch.out")"
	while read -r line; do
		jq -e '.vms | length == 3' <<<"$line" >/dev/null || fail "--watch frame: $line"
	done <"$T/watch.out"
done
# without a tty no screen clearing, frames separated by a blank line
"$VPMCTL" -s "$SOCK" stats --watch 0.2 >"$T/watch.out" 2>&1 &
w=$!
sleep 0.7
kill -INT "$w"
wait "$w" || fail "stats --watch (table) failed: $(cat "$T/watch.out")"
! grep -q $'\033' "$T/watch.out" || fail "stats --watch cleared a screen that is no tty"
[ "$(grep -c '^total:' "$T/watch.out")" -ge 2 ] || fail "$(cat "$T/watch.out")"

# ---- set-ratio --wait reaches the target ----
expect_rc 0 "$VPMCTL" -s "$SOCK" set-ratio kv1 4 --wait --timeout 60
expect_grep "^VM *MODE *POLICY *PRIO *RATIO *PM-TARGET *DRAM-SHARE" "$T/stdout"
expect_grep "^kv1 .* 4 *64 *192 *yes" "$T/stdout"
# (converged describes the last epoch boundary: a writing guest may be a page or two off
# again at the next one, so only the ratio and targets are checked afterwards)
[ "$(vm_field kv1 .ratio)" = 4 ] || fail "kv1's ratio is $(vm_field kv1 .ratio)"
[ "$(vm_field kv1 '[.pm_target, .dram_share] | @csv')" = 64,192 ] || fail "kv1's targets"

# fractional ratios: pm_target = ceil(pages / ratio)
expect_rc 0 "$VPMCTL" -s "$SOCK" -j set-ratio log1 1.5 --wait --timeout 60
jq_check '.vms | length == 1 and .[0].name == "log1" and .[0].ratio == 1.5 and
	.[0].pm_target == 171 and .[0].dram_share == 85' "$T/stdout"

# --all, all-or-nothing, JSON result
expect_rc 0 "$VPMCTL" -s "$SOCK" -j set-ratio --all 2 --wait --timeout 120
jq_check '.vms | length == 3 and all(.ratio == 2)' "$T/stdout"
jq_check '.vms[] | select(.name == "bt1") | .pm_target == 2048' "$T/stdout"

# --timeout: status 1, the message names the VMs that have not converged; the change stays
expect_rc 0 "$VPMCTL" -s "$SOCK" set-ratio bt1 1 --wait --timeout 60
expect_rc 1 "$VPMCTL" -s "$SOCK" set-ratio bt1 16 --wait --timeout 0.1
expect_grep "not converged after 100ms: bt1" "$T/stderr"
expect_grep "The change stays" "$T/stderr"
[ "$(vm_field bt1 .ratio)" = 16 ] || fail "the ratio did not stay after --timeout"

# without a tty: a line per second per VM still moving, no progress bar
expect_rc 0 "$VPMCTL" -s "$SOCK" set-ratio bt1 1 --wait --timeout 60
rc=0
"$VPMCTL" -s "$SOCK" set-ratio bt1 16 --wait --timeout 2.5 >"$T/stdout" 2>"$T/stderr" || rc=$?
case $rc in
0) ;; # converged in time; lines appear only after a second
1)
	expect_grep "not converged after 2.500s: bt1" "$T/stderr"
	expect_grep "^bt1: \(.* pages still to move\|waiting for the next epoch boundary\)" \
		"$T/stderr"
	;;
*) fail "set-ratio --wait exited $rc: $(cat "$T/stderr")" ;;
esac
! grep -q $'\r' "$T/stderr" || fail "progress bar drawn on a non-tty: $(cat "$T/stderr")"
# on a tty a progress bar, redrawn in place
if command -v script >/dev/null; then
	expect_rc 0 "$VPMCTL" -s "$SOCK" set-ratio bt1 1 --wait --timeout 60
	rc=0
	script -qec "'$VPMCTL' -s '$SOCK' set-ratio bt1 16 --wait --timeout 1.5" /dev/null \
		>"$T/tty.out" 2>&1 || rc=$?
	[ "$rc" -le 1 ] || fail "set-ratio on a tty exited $rc: $(cat "$T/tty.out")"
	grep -q '\[[# ]*\] \([0-9]*/[0-9]* pages moved\|waiting for the next epoch\)' \
		"$T/tty.out" || fail "no progress bar on a tty: $(cat -A "$T/tty.out")"
fi

# a VM that goes away while vpmctl waits for it: 3840 pages to move at 256 pages a second
# (migration_rate), and with a 60 s epoch interval few boundaries to do it
guest gone1 4096 120
gone=${guests[-1]}
wait_vms 4
sleep 1
sed -i 's/^epoch_interval = .*/epoch_interval = 60s/' "$CONF"
expect_rc 0 "$VPMCTL" -s "$SOCK" reload
sleep 0.3
"$VPMCTL" -s "$SOCK" set-ratio gone1 16 --wait --timeout 60 >"$T/gone.out" 2>&1 &
w=$!
sleep 1
kill -9 "$gone"
wait "$gone" 2>/dev/null || true
rc=0
wait "$w" || rc=$?
[ "$rc" -eq 1 ] || fail "set-ratio --wait on a VM that went away exited $rc: $(cat "$T/gone.out")"
expect_grep "VM 'gone1' disappeared" "$T/gone.out"
sed -i 's/^epoch_interval = .*/epoch_interval = 20ms/' "$CONF"
expect_rc 0 "$VPMCTL" -s "$SOCK" reload
wait_vms 3

# ---- bad requests: clear errors, status 1 ----
expect_rc 1 "$VPMCTL" -s "$SOCK" set-ratio nope 2
expect_grep "no VM named 'nope'" "$T/stderr"
for bad in 0.5 0 -1 nan inf 1e9 65537; do
	expect_rc 1 "$VPMCTL" -s "$SOCK" set-ratio kv1 "$bad"
	expect_grep "ratio '$bad' is out of range" "$T/stderr"
done
expect_rc 2 "$VPMCTL" -s "$SOCK" set-ratio kv1 two
[ "$(vm_field kv1 .ratio)" = 2 ] || fail "a refused ratio changed kv1"
# vpmd itself refuses what vpmctl and libvpm never send
for params in '{"name": "kv1", "ratio": 0.5}' '{"name": "kv1", "ratio": 1e9}' \
	'{"name": "kv1", "ratio": "2"}' '{"name": "kv1", "ratio": -1}' \
	'{"name": "kv1", "priority": 101}' '{"name": "kv1", "mode": "turbo"}' \
	'{"name": "kv1", "policy": "best"}' '{"name": "kv1"}' '{"ratio": 2}' \
	'{"name": "kv1", "all": true, "ratio": 2}'; do
	raw vm-set "$params" >"$T/raw.json"
	jq_check '.error.errno == 22 and (.error.message | length > 10)' "$T/raw.json"
done
raw vm-set '{"name": "kv1", "ratio": 0.5}' >"$T/raw.json"
jq_check '.error.message | test("ratio")' "$T/raw.json"
raw vm-set '{"name": "nope", "ratio": 2}' >"$T/raw.json"
jq_check '.error.errno == 2' "$T/raw.json"
raw vm-show '{}' >"$T/raw.json"
jq_check '.error' "$T/raw.json"
# admission control (ENOSPC): big1 may not hold more DRAM pages than one epoch can commit
# (half the log: 8057 pages); with --all, nothing changes when one VM is refused
guest big1 8192 60 -r 2
wait_vms 4
expect_rc 1 "$VPMCTL" -s "$SOCK" set-ratio big1 64
expect_grep "'big1'.*short" "$T/stderr"
expect_rc 1 "$VPMCTL" -s "$SOCK" set-ratio --all 64
expect_grep "'big1'.*short" "$T/stderr"
[ "$(vm_field kv1 .ratio)" = 2 ] || fail "a refused --all changed kv1"
[ "$(vm_field big1 .ratio)" = 2 ] || fail "a refused ratio changed big1"
kill "${guests[-1]}"
wait_vms 3

# ---- set-mode, set-policy, set-priority ----
# native: all pages go to PM at once and no epoch boundary follows; --wait still returns
expect_rc 0 "$VPMCTL" -s "$SOCK" -j set-mode kv1 native --wait --timeout 10
jq_check '.vms[0].mode == "native" and .vms[0].ratio == 1 and .vms[0].dram_pages == 0' \
	"$T/stdout"
expect_rc 0 "$VPMCTL" -s "$SOCK" -j show kv1
jq_check '.vm.stats.loss_window_usec == 0' "$T/stdout"
expect_rc 0 "$VPMCTL" -s "$SOCK" set-mode kv1 epoch --wait --timeout 60
expect_rc 1 "$VPMCTL" -s "$SOCK" set-mode kv1 turbo
expect_grep "mode" "$T/stderr"
expect_rc 0 "$VPMCTL" -s "$SOCK" set-policy kv1 lru
[ "$(vm_field kv1 .policy)" = lru ] || fail "policy not set"
expect_rc 1 "$VPMCTL" -s "$SOCK" set-policy kv1 best
expect_grep "policy" "$T/stderr"
expect_rc 0 "$VPMCTL" -s "$SOCK" set-priority kv1 90
[ "$(vm_field kv1 .priority)" = 90 ] || fail "priority not set"
expect_rc 1 "$VPMCTL" -s "$SOCK" set-priority kv1 101
expect_rc 0 "$VPMCTL" -s "$SOCK" -j set-priority --all 50
jq_check '.vms | length == 3 and all(.priority == 50)' "$T/stdout"

stop_guests
wait_vms 0
expect_rc 0 "$VPMCTL" -s "$SOCK" -j stats
jq_check '.vms == [] and .totals.dram_used_pages == 0' "$T/stdout"
expect_rc 0 "$VPMCTL" -s "$SOCK" -j set-ratio --all 2
jq_check '.vms == []' "$T/stdout"
stop_vpmd
echo "test-engine-cli: ok"
