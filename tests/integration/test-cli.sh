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
for cmd in show set-ratio set-mode set-policy set-priority stats; do
	expect_grep "^  $cmd" "$T/stdout"
done

# the engine commands' usage errors: exit 2, the message and usage on stderr, nothing on stdout
usage_error() {
	local want=$1
	shift
	expect_rc 2 "$VPMCTL" -s "$SOCK" "$@"
	expect_grep "$want" "$T/stderr"
	expect_grep "Usage: vpmctl $1" "$T/stderr"
	[ ! -s "$T/stdout" ] || fail "'$*' printed on stdout: $(cat "$T/stdout")"
}
usage_error "name the VM" show
usage_error "takes no further argument 'b'" show a b
usage_error "give a VM name (or --all) and the new value" set-ratio
usage_error "give a VM name (or --all) and the new value" set-ratio kv1
usage_error "with --all, give the new value and no VM name" set-ratio --all
usage_error "with --all, give the new value and no VM name" set-ratio --all kv1 2
usage_error "too many arguments ('3')" set-ratio kv1 2 3
usage_error "ratio 'two' is not a number" set-ratio kv1 two
usage_error "ratio '0x10' is not a number" set-ratio kv1 0x10
usage_error "ratio '' is not a number" set-ratio kv1 ''
usage_error "unknown option '--bogus'" set-ratio kv1 2 --bogus
usage_error "--timeout only applies with --wait" set-ratio kv1 2 --timeout 5
usage_error "--timeout needs a number of seconds" set-ratio kv1 2 --wait --timeout
usage_error "--timeout 'soon' is not a number of seconds" set-ratio kv1 2 --wait --timeout soon
usage_error "--timeout '-1' is not a number of seconds" set-ratio kv1 2 --wait --timeout=-1
usage_error "give a VM name (or --all) and the new value" set-mode kv1
usage_error "the mode is empty" set-mode kv1 ''
usage_error "with --all, give the new value and no VM name" set-policy --all
usage_error "unknown option '-x'" set-policy kv1 lru -x
usage_error "priority 'high' is not an integer" set-priority kv1 high
usage_error "priority '1.5' is not an integer" set-priority kv1 1.5
usage_error "too many arguments ('b')" stats a b
usage_error "unknown option '--frob'" stats --frob
usage_error "the --watch interval must be more than 0" stats --watch 0
usage_error "--watch 'often' is not a number of seconds" stats --watch=often

# values that cannot be right: exit 1 before vpmctl connects, so even without vpmd
for bad in 0.5 0 -1 -0.5 nan inf -inf 1e999 65536.5 1e9; do
	expect_rc 1 "$VPMCTL" -s "$SOCK" set-ratio kv1 "$bad"
	expect_grep "vpmctl: ratio '$bad' is out of range: use a finite number from 1" "$T/stderr"
done
expect_rc 1 "$VPMCTL" -s "$SOCK" set-ratio --all 0.99 --wait
expect_grep "ratio '0.99' is out of range" "$T/stderr"
for bad in -1 101 99999999999999999999; do
	expect_rc 1 "$VPMCTL" -s "$SOCK" set-priority kv1 "$bad"
	expect_grep "vpmctl: priority '$bad' is out of range: use an integer from 0 to 100" \
		"$T/stderr"
done
# good values get as far as connecting
expect_rc 3 "$VPMCTL" -s "$SOCK" set-ratio kv1 65536
expect_rc 3 "$VPMCTL" -s "$SOCK" set-ratio --all 1.5 --wait --timeout 2min
expect_rc 3 "$VPMCTL" -s "$SOCK" set-priority --all 0
expect_rc 3 "$VPMCTL" -s "$SOCK" set-mode kv1 epoch
expect_rc 3 "$VPMCTL" -s "$SOCK" stats kv1 --watch 0.5
expect_rc 3 "$VPMCTL" -s "$SOCK" show kv1

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

# VM commands with vpmd but no VMs (the pool is not formatted)
expect_rc 0 "$VPMCTL" -s "$SOCK" list
expect_grep "No VMs attached" "$T/stdout"
expect_rc 0 "$VPMCTL" -s "$SOCK" -j list
jq_check '.vms == []' "$T/stdout"

# the socket from the environment
VPM_SOCKET="$SOCK" expect_rc 0 "$VPMCTL" -j status

# reload by root through the socket
expect_rc 0 "$VPMCTL" -s "$SOCK" reload
expect_rc 0 "$VPMCTL" -s "$SOCK" -j status
jq_check '.reloads == 1' "$T/stdout"

stop_vpmd
[ ! -e "$SOCK" ] || fail "vpmd left its socket behind"

# ---- list with libvirt's view, from a stand-in vpmd that answers with $T/reply.json ----
FAKE="$T/fake.sock"
start_fake_vpmd "$FAKE" reply "$T/reply.json"

# lvm NAME STATE PM_PAGES PROBLEM ATTACHED RESERVED: one VM of libvirt's view, as JSON
lvm() {
	printf '{"name": "%s", "uuid": "u-%s", "state": %s, "pm_pages": %s, "problem": %s, ' \
		"$1" "$1" "$2" "$3" "$4"
	printf '"policy": null, "sim_guest_pid": null, "attached": %s, "reserved": %s}' "$5" "$6"
}
cat >"$T/reply.json" <<JSON
{"vms": [{"name": "shop", "backend": "sim", "mode": "epoch", "policy": "vpm", "priority": 80,
  "ratio": 2, "pages": 8160, "vcpus": 1, "dram_pages": 10, "pm_pages": 20, "image_pages": 8130,
  "converged": true, "migrating_pages": 0, "epoch": 5, "epochs": 4, "ops": 100,
  "libvirt_state": "running"},
 {"name": "kv1", "backend": "sim", "mode": "hint", "ratio": 1, "pages": 256, "vcpus": 2,
  "converged": true, "libvirt_state": null}],
 "libvirt": {"uri": "test:///default", "connected": true, "last_error": null, "vms": [
  $(lvm shop '"running"' 8160 null true false),
  $(lvm batch '"shutoff"' 12256 null false false),
  $(lvm small null 8160 null false true),
  $(lvm odd '"running"' 0 '"nvdimm /img/odd.img: no size"' false false)]}}
JSON
expect_rc 0 "$VPMCTL" -s "$FAKE" list
expect_grep "^VM .* OPS LIBVIRT$" "$T/stdout"
expect_grep "^shop *epoch *8160 .* running$" "$T/stdout"
expect_grep "^kv1 *hint *256 .* -$" "$T/stdout"
expect_grep "^libvirt: test:///default, connected$" "$T/stdout"
expect_grep "^  batch  shutoff  12256 pages of PM  (not attached)$" "$T/stdout"
expect_grep "^  small  -        8160 pages of PM  (not attached, capacity reserved)$" "$T/stdout"
expect_grep "^  odd    running  0 pages of PM  problem: nvdimm /img/odd.img: no size$" "$T/stdout"
! grep -q "^  shop" "$T/stdout" || fail "an attached libvirt VM is listed: $(cat "$T/stdout")"
# LIBVIRT starts at the same column in the header and the rows
[ "$(head -n 3 "$T/stdout" | awk '{ print length($0) - length($NF) }' | sort -u | wc -l)" -eq 1 ] ||
	fail "the LIBVIRT column is not aligned: $(cat "$T/stdout")"
expect_rc 0 "$VPMCTL" -s "$FAKE" -j list
jq_check '.libvirt.vms | length == 4' "$T/stdout"

# no VM attached and libvirt down: the libvirt part still comes
cat >"$T/reply.json" <<JSON
{"vms": [], "libvirt": {"uri": "qemu:///system", "connected": false,
  "last_error": "Failed to connect socket", "vms": [$(lvm batch null 12256 null false false)]}}
JSON
expect_rc 0 "$VPMCTL" -s "$FAKE" list
expect_grep "^No VMs attached.$" "$T/stdout"
expect_grep "^libvirt: qemu:///system, NOT connected: Failed to connect socket$" "$T/stdout"
expect_grep "^  batch  -  12256 pages of PM  (not attached)$" "$T/stdout"

# without libvirt, and from an older vpmd: no libvirt part
echo '{"vms": [], "libvirt": null}' >"$T/reply.json"
expect_rc 0 "$VPMCTL" -s "$FAKE" list
[ "$(cat "$T/stdout")" = "No VMs attached." ] || fail "unexpected list: $(cat "$T/stdout")"
echo '{"vms": [{"name": "kv1", "mode": "epoch", "pages": 256, "vcpus": 2, "ratio": 1}]}' \
	>"$T/reply.json"
expect_rc 0 "$VPMCTL" -s "$FAKE" list
[ "$(wc -l <"$T/stdout")" -eq 2 ] || fail "unexpected list: $(cat "$T/stdout")"
expect_grep "^kv1 .* -$" "$T/stdout"
echo "test-cli: ok"
