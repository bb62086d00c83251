#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The libvirt test rig itself, end to end, before any test relies on it: libvirtd and
# virtlogd start by hand; two TCG domains with nvdimm devices (one with a vpm policy in its
# metadata) define and start, and their live XML has the dimm base address; a hook in
# /etc/libvirt/hooks/qemu.d/ sees prepare, start and started with the domain XML on stdin
# (the base address only from started on), stopped and release on destroy, and reconnect
# when libvirtd restarts; a hook failing in prepare makes `virsh start` fail with the hook's
# message; a domain survives libvirtd being killed (-9) and is still running, same QEMU,
# once libvirtd is back; and everything is undone at the end.
#
# usage: tests/libvirt/test-libvirtd-rig.sh      (root; installs the packages if missing)
# exit: 0 passed, 1 failed, 77 skipped (not root, or no way to get libvirtd)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=libvirtd-lib.sh
. "$here/libvirtd-lib.sh"

rc=0
lv_require || exit $?
trap lv_stop EXIT
t_begin=$EPOCHREALTIME

fail() { lv_log "FAIL: $*"; exit 1; }
step() { lv_log "--- $*"; }

# timed virsh: "op NAME took S s" in the log
timed() {
	local t0=$EPOCHREALTIME
	lv_virsh "$@" >/dev/null || return 1
	lv_log "virsh $* took $(lv_since "$t0") s"
}

# wait (bounded, 30 s) for a line matching $1 in the hook log
wait_hook() {
	local i
	for ((i = 0; i < 300; i++)); do
		grep -Eq "$1" "$LV_DIR/hook.log" 2>/dev/null && return 0
		sleep 0.1
	done
	fail "the hook never logged '$1'; it logged: $(cat "$LV_DIR/hook.log" 2>/dev/null)"
}

# the XML a hook got on stdin for domain $1, operation $2 (the last one)
hook_xml() {
	local f
	f=$(find "$LV_DIR/hook-xml" -name "$1.$2.*" | sort | tail -1)
	[ -n "$f" ] || fail "no XML saved by the hook for $1 $2"
	cat "$f"
}

write_hooks() {
	mkdir -p "$LV_DIR/hook-xml"
	# argv to hook.log, stdin to hook-xml/DOMAIN.OP.NANOSECONDS
	cat >"$LV_DIR/vpm-rig-log" <<EOF
#!/bin/sh
echo "\$*" >>"$LV_DIR/hook.log"
cat >"$LV_DIR/hook-xml/\$1.\$2.\$(date +%s%N)"
EOF
	# refuses to prepare one domain, with a message on stderr
	cat >"$LV_DIR/vpm-rig-refuse" <<'EOF'
#!/bin/sh
cat >/dev/null
if [ "$1" = vpm-rig-b ] && [ "$2" = prepare ]; then
	echo "vpm-rig: no pool for $1" >&2
	exit 1
fi
exit 0
EOF
}

step "packages"
lv_install || fail "could not install ${LV_PACKAGES[*]}"

step "daemons"
lv_start || fail "libvirtd did not start"
write_hooks
lv_install_hook "$LV_DIR/vpm-rig-log"

step "define two domains"
lv_domain_xml vpm-rig-a 128 a-pm0.img:64:128 a-pm1.img:32 >"$LV_DIR/vpm-rig-a.xml"
lv_define vpm-rig-a "$LV_DIR/vpm-rig-a.xml"
LV_POLICY="ratio='2' mode='epoch'" lv_domain_xml vpm-rig-b 128 b-pm0.img:48:128 \
	>"$LV_DIR/vpm-rig-b.xml"
lv_define vpm-rig-b "$LV_DIR/vpm-rig-b.xml"
lv_virsh dumpxml --inactive vpm-rig-b | grep -q "<vpm:policy .*ratio=.2. mode=.epoch." ||
	fail "the policy metadata of vpm-rig-b did not come back from libvirt"

step "start, hooks see prepare/start/started"
timed start vpm-rig-a || fail "vpm-rig-a did not start: $(tail -5 "/var/log/libvirt/qemu/vpm-rig-a.log")"
[ "$(lv_virsh domstate vpm-rig-a)" = running ] || fail "vpm-rig-a is not running after start"
live=$(lv_virsh dumpxml vpm-rig-a)
[ "$(grep -c "<address type='dimm' slot='[0-9]*' base='0x[0-9a-f]*'/>" <<<"$live")" = 2 ] ||
	fail "the live XML of vpm-rig-a lacks two dimm addresses with base: $live"
lv_log "vpm-rig-a dimms: $(grep -o "base='0x[0-9a-f]*'" <<<"$live" | tr '\n' ' ')"
lv_log "QEMU of vpm-rig-a may run on CPUs $(awk '/^Cpus_allowed_list:/ { print $2 }' "/proc/$(lv_qemu_pid vpm-rig-a)/status")"
wait_hook "^vpm-rig-a started begin -$"
[ "$(grep '^vpm-rig-a ' "$LV_DIR/hook.log" | cut -d' ' -f2-4 | tr '\n' ,)" = \
	"prepare begin -,start begin -,started begin -," ] ||
	fail "hook calls for vpm-rig-a: $(grep '^vpm-rig-a ' "$LV_DIR/hook.log" | tr '\n' ,)"
hook_xml vpm-rig-a prepare | grep -q "<name>vpm-rig-a</name>" ||
	fail "the prepare hook got no domain XML on stdin"
! hook_xml vpm-rig-a prepare | grep -q "base=" ||
	fail "the prepare XML already has a dimm base address"
[ "$(hook_xml vpm-rig-a started | grep -c "<address type='dimm' .*base=")" = 2 ] ||
	fail "the started XML lacks the two dimm base addresses"

step "a hook failing in prepare refuses the start"
lv_install_hook "$LV_DIR/vpm-rig-refuse"
t0=$EPOCHREALTIME
if err=$(lv_virsh start vpm-rig-b 2>&1); then
	fail "vpm-rig-b started despite the refusing hook"
fi
lv_log "refused start took $(lv_since "$t0") s: $err"
grep -q "Hook script execution failed: .*vpm-rig-refuse vpm-rig-b prepare begin -).*vpm-rig: no pool for vpm-rig-b" \
	<<<"$err" || fail "virsh start failed without the hook's message: $err"
[ "$(lv_virsh domstate vpm-rig-b)" = "shut off" ] || fail "vpm-rig-b is not shut off"
wait_hook "^vpm-rig-b release end -$"
lv_remove_hook vpm-rig-refuse
timed start vpm-rig-b || fail "vpm-rig-b did not start once the refusing hook was gone"
hook_xml vpm-rig-b started | grep -q "<vpm:policy .*ratio=.2." ||
	fail "the started XML of vpm-rig-b lacks its policy metadata"

step "destroy runs stopped and release"
timed destroy vpm-rig-b || fail "virsh destroy vpm-rig-b failed"
wait_hook "^vpm-rig-b stopped end -$"
wait_hook "^vpm-rig-b release end -$"
[ -z "$(lv_qemu_pid vpm-rig-b)" ] || fail "vpm-rig-b still has a QEMU pid file"

step "libvirtd restart: reconnect"
qemu_pid=$(lv_qemu_pid vpm-rig-a)
{ [ -n "$qemu_pid" ] && lv_alive "$qemu_pid"; } || fail "no QEMU for vpm-rig-a"
: >"$LV_DIR/hook.log"
lv_restart_libvirtd || fail "libvirtd did not come back after a restart"
wait_hook "^vpm-rig-a reconnect begin -$"
! grep -q "^vpm-rig-b " "$LV_DIR/hook.log" || fail "hook ran for the shut off vpm-rig-b on restart"
[ "$(hook_xml vpm-rig-a reconnect | grep -c "<address type='dimm' .*base=")" = 2 ] ||
	fail "the reconnect XML lacks the two dimm base addresses"
[ "$(lv_virsh domstate vpm-rig-a)" = running ] || fail "vpm-rig-a is not running after restart"
[ "$(lv_qemu_pid vpm-rig-a)" = "$qemu_pid" ] || fail "vpm-rig-a has a new QEMU after restart"

step "kill -9 libvirtd: the domain keeps running"
: >"$LV_DIR/hook.log"
lv_kill_libvirtd
sleep 0.5
lv_alive "$qemu_pid" || fail "QEMU of vpm-rig-a (pid $qemu_pid) died with libvirtd"
lv_start_libvirtd || fail "libvirtd did not start after kill -9"
wait_hook "^vpm-rig-a reconnect begin -$"
[ "$(lv_virsh domstate vpm-rig-a)" = running ] || fail "vpm-rig-a is not running after kill -9"
[ "$(lv_qemu_pid vpm-rig-a)" = "$qemu_pid" ] || fail "vpm-rig-a has a new QEMU after kill -9"

step "clean up"
t0=$EPOCHREALTIME
lv_stop
lv_stop # twice is harmless
lv_log "cleanup took $(lv_since "$t0") s"
[ -z "$(lv_running libvirtd)" ] || fail "libvirtd still running after lv_stop"
lv_alive "$qemu_pid" && fail "QEMU (pid $qemu_pid) still running after lv_stop"
for h in vpm-rig-log vpm-rig-refuse; do
	[ ! -e "$LV_HOOK_DIR/$h" ] || fail "hook $h left in $LV_HOOK_DIR"
done
virsh -c "$LV_URI" version >/dev/null 2>&1 && fail "something still answers on $LV_URI"
lv_log "PASS in $(lv_since "$t_begin") s"
exit "$rc"
