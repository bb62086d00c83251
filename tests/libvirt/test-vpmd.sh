#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# vpmd with a real libvirtd and QEMU (TCG) domains that have nvdimm devices, and vpm's qemu
# hook installed: vpmd discovers the domains and, once one runs, its dimm base address; the
# hook refuses a VM whose PM does not fit (virsh start fails showing vpmd's reason) and lets
# one that fits start (vpmd serves it with a sim guest of its size and its metadata policy);
# its policy follows `virsh metadata`, and `vpmctl set-ratio` writes it into the live and
# persistent metadata; destroying it releases everything; a libvirtd restart runs the
# reconnect hook and vpmd's connection comes back without serving the VM twice; vpmd survives
# libvirtd being killed (-9) and follows it again once it is back.
#
# usage: VPM_BUILD=build tests/libvirt/test-vpmd.sh   (root; installs packages)
# exit: 0 passed, 1 failed, 77 skipped (not root, or no way to get libvirtd)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=libvirtd-lib.sh
. "$here/libvirtd-lib.sh"
: "${VPM_BUILD:?VPM_BUILD must name the build directory}"
VPMD=$VPM_BUILD/vpmd/vpmd
VPMCTL=$VPM_BUILD/cli/vpmctl

lv_require || exit $?
T=$(mktemp -d /tmp/vpm-lv.XXXXXX)
SOCK=$T/vpmd.sock
VPMD_PID=

fail() {
	lv_log "FAIL: $*"
	[ -f "$T/vpmd.log" ] && tail -n 30 "$T/vpmd.log" >&2
	exit 1
}
step() { lv_log "--- $*"; }

stop_vpmd_and_guests() {
	local f
	if [ -n "$VPMD_PID" ]; then
		kill -TERM "$VPMD_PID" 2>/dev/null || true
		wait "$VPMD_PID" 2>/dev/null || true
		VPMD_PID=
	fi
	for f in "$T"/state/guests/*.pid; do
		[ -e "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
	done
	return 0
}
cleanup() {
	lv_stop || true
	stop_vpmd_and_guests
	rm -rf "$T"
}
trap cleanup EXIT

list() {
	"$VPMCTL" -s "$SOCK" -j list >"$T/list.json" || fail "vpmctl list failed"
}

# wait_for JQ_EXPR [SECONDS]: until vpmd's list satisfies it
wait_for() {
	local i
	for ((i = 0; i < ${2:-30} * 10; i++)); do
		if "$VPMCTL" -s "$SOCK" -j list >"$T/list.json" 2>/dev/null &&
			jq -e "$1" "$T/list.json" >/dev/null; then
			return 0
		fi
		kill -0 "$VPMD_PID" 2>/dev/null || fail "vpmd exited"
		sleep 0.1
	done
	fail "never true: $1: $(cat "$T/list.json")"
}

lv_start

step "vpmd on an emulated pool, following qemu:///system"
cat >"$T/vpmd.conf" <<EOF
[daemon]
socket = $SOCK
state_dir = $T/state
libvirt_uri = qemu:///system
epoch_interval = 100ms

[pool pm0]
path = $T/pool.pm
kind = emulated
size = 256M
EOF
"$VPMD" --config "$T/vpmd.conf" --init-pool pm0 --log-size 64M >"$T/init.log" 2>&1 ||
	fail "vpmd --init-pool: $(cat "$T/init.log")"
"$VPMD" --foreground --config "$T/vpmd.conf" >>"$T/vpmd.log" 2>&1 &
VPMD_PID=$!
wait_for '.libvirt.connected == true' 10

step "the hook: vpm's, talking to this vpmd"
cat >"$T/vpm-hook" <<EOF
#!/bin/sh
exec "$VPMCTL" -s "$SOCK" hook "\$@"
EOF
lv_install_hook "$T/vpm-hook" vpm-test

step "two domains: 'fits' (32 MiB nvdimm, ratio 2), 'toobig' (1 GiB nvdimm, ratio 1)"
LV_POLICY="ratio='2' mode='epoch'" lv_domain_xml fits 128 fits.img:32:128 >"$T/fits.xml"
lv_define fits "$T/fits.xml"
LV_POLICY="ratio='1'" lv_domain_xml toobig 128 toobig.img:1024:128 >"$T/toobig.xml"
lv_define toobig "$T/toobig.xml"
wait_for '[.libvirt.vms[] | select(.state == "shutoff") | .name] | sort == ["fits", "toobig"]'
jq -e '.libvirt.vms[] | select(.name == "fits") | .pm_pages == 8160 and .policy.ratio == 2' \
	"$T/list.json" >/dev/null || fail "fits as vpmd sees it: $(cat "$T/list.json")"

step "virsh start toobig: refused by the hook, with vpmd's reason"
if lv_virsh start toobig >"$T/virsh.out" 2>&1; then
	fail "toobig started although its PM cannot fit"
fi
grep -q "VM 'toobig' cannot start: .* short" "$T/virsh.out" ||
	fail "virsh does not show vpmd's reason: $(cat "$T/virsh.out")"
lv_log "virsh said: $(grep -o "VM 'toobig' cannot start.*" "$T/virsh.out")"
list
jq -e '.libvirt.vms[] | select(.name == "toobig") | .reserved == false and .attached == false' \
	"$T/list.json" >/dev/null || fail "toobig holds something: $(cat "$T/list.json")"

step "virsh start fits: served with its size, its policy and its dimm base address"
lv_virsh start fits >/dev/null || fail "virsh start fits failed"
wait_for '.vms[] | select(.name == "fits") | .pages == 8160 and .ratio == 2 and .libvirt_state == "running"'
wait_for '.libvirt.vms[] | select(.name == "fits") | .devices[0].base != null and .devices[0].alias == "nvdimm0"'
guest=$(jq -r '.libvirt.vms[] | select(.name == "fits") | .sim_guest_pid' "$T/list.json")
lv_log "fits: dimm base $(jq -r '.libvirt.vms[] | select(.name == "fits") | .devices[0].base' "$T/list.json"), sim guest pid $guest"

step "the policy in the metadata: virsh metadata applies to the running VM; set-ratio writes it"
NS=https://vpm.dev/xmlns/libvirt-domain/1.0
lv_virsh metadata fits --uri "$NS" --key vpm --set "<policy ratio='4' mode='epoch'/>" --live \
	--config >/dev/null || fail "virsh metadata --set failed"
wait_for '.vms[] | select(.name == "fits") | .ratio == 4'
"$VPMCTL" -s "$SOCK" set-ratio fits 3 >/dev/null || fail "vpmctl set-ratio fits 3 failed"
for flag in --live --config; do
	for ((i = 0; i < 100; i++)); do
		lv_virsh metadata fits --uri "$NS" "$flag" >"$T/meta.xml" 2>&1 || true
		grep -q "ratio=.3." "$T/meta.xml" && break
		sleep 0.1
	done
	grep -q "ratio=.3." "$T/meta.xml" ||
		fail "set-ratio did not reach the $flag metadata: $(cat "$T/meta.xml")"
done
wait_for '.vms[] | select(.name == "fits") | .ratio == 3'

step "libvirtd restarts: the reconnect hook and vpmd's connection; fits is served once"
lv_restart_libvirtd
wait_for '.libvirt.connected == true and .libvirt.reconnects >= 1' 30
list
[ "$(jq '[.vms[] | select(.name == "fits")] | length' "$T/list.json")" -eq 1 ] ||
	fail "fits is served twice: $(cat "$T/list.json")"
[ "$(jq -r '.libvirt.vms[] | select(.name == "fits") | .sim_guest_pid' "$T/list.json")" = "$guest" ] ||
	fail "fits got a new sim guest after the restart"

step "kill -9 libvirtd: vpmd keeps serving and follows libvirt again once it is back"
lv_kill_libvirtd
wait_for '.libvirt.connected == false' 30
"$VPMCTL" -s "$SOCK" status >/dev/null || fail "vpmd does not answer without libvirtd"
jq -e '.vms[] | select(.name == "fits")' "$T/list.json" >/dev/null ||
	fail "fits was dropped while libvirtd was away"
lv_start_libvirtd
wait_for '.libvirt.connected == true and .libvirt.reconnects >= 2' 60
wait_for '.vms[] | select(.name == "fits") | .libvirt_state == "running"'

step "virsh destroy fits: stopped and release free everything"
lv_virsh destroy fits >/dev/null || fail "virsh destroy fits failed"
wait_for '[.vms[].name] | index("fits") == null' 30
wait_for '.libvirt.vms[] | select(.name == "fits") | .state == "shutoff" and .reserved == false and .sim_guest_pid == null'

step "destroy and start again at once: the old guest's last commit does not keep the new start unserved"
lv_virsh start fits >/dev/null || fail "virsh start fits (again) failed"
wait_for '.vms[] | select(.name == "fits") | .libvirt_state == "running"' 30
lv_virsh destroy fits >/dev/null || fail "virsh destroy fits (again) failed"
lv_virsh start fits >/dev/null || fail "virsh start fits (third) failed"
wait_for '.vms[] | select(.name == "fits") | .libvirt_state == "running"' 30
wait_for '.libvirt.vms[] | select(.name == "fits") | .reserved == false and .sim_guest_pid != null'
lv_virsh destroy fits >/dev/null || fail "virsh destroy fits (third) failed"
wait_for '[.vms[].name] | index("fits") == null' 30

stop_vpmd_and_guests
lv_log "passed in $SECONDS s"
