#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# vpmd with libvirt's test driver as its VM inventory (tests/libvirt/test-node.xml): the
# running domains with PM get sim guests of their PM size and their metadata policy; a shut-off
# one and one without PM do not; vpmctl set-ratio writes the policy back; libvirt's qemu hook
# (vpmctl hook) reserves capacity at prepare, refuses a VM that does not fit with the reason,
# releases at stopped/release (idempotently), attaches at started; sim guests outlive vpmd and
# the next vpmd adopts them without starting them twice.
. "$(dirname "$0")/lib.sh"
SRC=$(cd "$(dirname "$0")/../.." && pwd)
base=/dev/shm
[ -w "$base" ] || base=$T
POOL="$base/vpm-libvirt-test.$$.pool"

kill_guests() {
	local f
	for f in "$T"/state/guests/*.pid; do
		[ -e "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
	done
	return 0
}
trap 'kill_guests; cleanup; rm -f "$POOL"' EXIT

cp "$SRC/tests/libvirt/test-node.xml" "$T/node.xml"
write_config "epoch_interval = 50ms"
sed -i "s|^libvirt_uri =.*|libvirt_uri = test://$T/node.xml|; s|^path = .*|path = $POOL|; s|^size = 16M|size = 512M|" "$CONF"
expect_rc 0 "$VPMD" --config "$CONF" --init-pool test --log-size 128M
start_vpmd

list() {
	"$VPMCTL" -s "$SOCK" -j list >"$T/list.json" || fail "vpmctl list failed"
}

# wait_for JQ_EXPR: until the list satisfies it, at most 15 s
wait_for() {
	for _ in $(seq 150); do
		list
		jq -e "$1" "$T/list.json" >/dev/null && return 0
		sleep 0.1
	done
	fail "never true: $1: $(cat "$T/list.json")"
}

# The running domains with PM devices are served; the policy comes from the metadata.
wait_for '[.vms[].name] | sort == ["index", "journal", "shop"]'
jq_check '.libvirt.connected == true' "$T/list.json"
jq_check '.vms[] | select(.name == "shop") | .ratio == 2 and .priority == 80' "$T/list.json"
jq_check '.vms[] | select(.name == "journal") | .pages == 12256' "$T/list.json"
jq_check '.libvirt.vms[] | select(.name == "batch") | .state == "shutoff" and .attached == false' \
	"$T/list.json"
jq_check '[.libvirt.vms[].name] | index("web") == null' "$T/list.json"
jq_check '.libvirt.vms[] | select(.name == "shop") | .policy.epoch_interval_usec == 100000' \
	"$T/list.json"
jq_check '.libvirt.vms[] | select(.name == "journal") | [.devices[].size] == [33554432, 16777216]' \
	"$T/list.json"
jq_check '.vms[] | select(.name == "index") | .libvirt_state == "running"' "$T/list.json"

# set-ratio on a libvirt VM applies and goes into its metadata.
expect_rc 0 "$VPMCTL" -s "$SOCK" set-ratio shop 3
wait_for '.vms[] | select(.name == "shop") | .ratio == 3'
wait_for '.libvirt.vms[] | select(.name == "shop") | .policy.ratio == 3'

# libvirt's qemu hook. A VM with one 32 MiB nvdimm and a vpm policy, as libvirt passes it.
domain_xml() {
	local name=$1 size_mib=$2
	cat <<XML
<domain type='qemu'>
  <name>$name</name>
  <uuid>5b0ba3c2-86a1-4d3b-9c3e-$(printf '%012d' "$size_mib")</uuid>
  <metadata>
    <vpm:policy xmlns:vpm='https://vpm.dev/xmlns/libvirt-domain/1.0' ratio='2' mode='epoch'/>
  </metadata>
  <memory unit='KiB'>1048576</memory>
  <devices>
    <memory model='nvdimm' access='shared'>
      <source><path>/var/lib/libvirt/images/$name.img</path></source>
      <target><size unit='MiB'>$size_mib</size><node>0</node>
        <label><size unit='KiB'>128</size></label></target>
    </memory>
  </devices>
</domain>
XML
}
hook() {
	local name=$1 size=$2 op=$3
	domain_xml "$name" "$size" >"$T/hook.xml"
	"$VPMCTL" -s "$SOCK" hook "$name" "$op" begin - <"$T/hook.xml"
}

expect_rc 0 hook small 32 prepare
list
jq_check '.libvirt.vms[] | select(.name == "small") | .reserved == true' "$T/list.json"
# far larger than the pool: refused before it boots, with the shortfall
expect_rc 1 hook huge 65536 prepare
expect_grep "VM 'huge' cannot start" "$T/stderr"
expect_grep "short" "$T/stderr"
[ "$(wc -l <"$T/stderr")" -eq 1 ] || fail "a refusal must be one line: $(cat "$T/stderr")"
# stopped and release run after a failed prepare too; they never fail
expect_rc 0 hook huge 65536 stopped
expect_rc 0 hook huge 65536 release
expect_rc 0 hook small 32 release
list
jq_check '[.libvirt.vms[] | select(.name == "small")] | all(.reserved == false)' "$T/list.json"
expect_rc 0 hook small 32 release
# started attaches (a sim guest of its size), stopped detaches
expect_rc 0 hook small 32 prepare
expect_rc 0 hook small 32 started
wait_for '.vms[] | select(.name == "small") | .pages == 8160 and .ratio == 2'
expect_rc 0 hook small 32 stopped
wait_for '[.vms[].name] | index("small") == null'

# Sim guests outlive vpmd; the next vpmd adopts them instead of starting them again.
stop_vpmd
for vm in shop journal index; do
	kill -0 "$(cat "$T/state/guests/$vm.pid")" 2>/dev/null || fail "the sim guest of $vm stopped with vpmd"
done
pids_before=$(cat "$T"/state/guests/*.pid | sort)
start_vpmd
wait_for '[.vms[].name] | sort == ["index", "journal", "shop"]'
[ "$(cat "$T"/state/guests/*.pid | sort)" = "$pids_before" ] ||
	fail "sim guests were started again instead of adopted"
wait_for '[.libvirt.vms[] | select(.sim_guest_pid != null)] | length == 3'
expect_grep "adopted its running sim guest" "$T/vpmd.log"
# The hook with the XML libvirt 9.0 passes for each operation (recorded; shop renamed, as
# the test driver's shop runs already): the action vpmd takes at each.
DATA=$SRC/tests/integration/data/hook
recorded() {
	local vm=$1 op=$2 want=$3
	sed "s|<name>shop</name>|<name>rec</name>|" "$DATA/$vm-$op.xml" >"$T/rec.xml"
	local name=$vm
	[ "$vm" = shop ] && name=rec
	"$VPMCTL" -s "$SOCK" -j hook "$name" "$op" begin - <"$T/rec.xml" >"$T/hook.json" ||
		fail "hook $name $op failed: $(cat "$T/hook.json")"
	jq -e --arg a "$want" '.action | test("^(" + $a + ")$")' "$T/hook.json" >/dev/null ||
		fail "hook $name $op: expected action $want, got $(cat "$T/hook.json")"
}
recorded shop prepare reserved
recorded shop started attached
wait_for '.vms[] | select(.name == "rec") | .pages == 16384 and .ratio == 2'
recorded shop reconnect reattached
recorded shop stopped detached
wait_for '[.vms[].name] | index("rec") == null'
recorded shop release 'none|released'
for op in prepare started stopped release; do
	recorded web "$op" none
done
echo "libvirt (test driver): discovery, metadata policy, set-ratio into metadata, hooks, adoption"
