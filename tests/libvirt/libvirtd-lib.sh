# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
#
# The rig of the libvirt tests (tier 4): a real libvirtd with the QEMU driver, started and
# stopped by hand (no systemd), QEMU TCG domains with nvdimm devices and no disk, and hooks
# in /etc/libvirt/hooks/qemu.d/. Source it from a bash test running as root, then:
#
#	lv_require || exit $?     # 77 when the machine cannot run libvirtd + QEMU at all
#	trap lv_stop EXIT
#	lv_start
#	lv_domain_xml vm1 128 pm0.img:64:128 >"$LV_DIR/vm1.xml"
#	lv_define vm1 "$LV_DIR/vm1.xml"
#	lv_virsh start vm1
#
# Choices, and why:
# - The daemons use the system's default paths: qemu:///system at /run/libvirt/libvirt-sock,
#   state in /run/libvirt/qemu, definitions in /etc/libvirt/qemu. The QEMU driver only runs
#   privileged with those paths, and the hooks in /etc/libvirt/hooks/qemu.d/ -- what vpm
#   installs -- only run in such a daemon. So only one libvirtd can run on the machine:
#   lv_start REFUSES (fails, naming the pid) when some libvirtd is already running, since these
#   tests restart and kill libvirtd and must not do that to a daemon they did not start. An
#   already running virtlogd is used as it is, and left running.
# - libvirtd reads a private copy of /etc/libvirt/libvirtd.conf (--config) with its logging
#   pointed at $LV_DIR/libvirtd.log; all other settings stay the system's, so qemu:///system
#   is unchanged.
# - Without udev, /dev/kvm may be left root:root 0600. libvirt then probes QEMU with KVM but
#   finds it unusable for the QEMU user, and re-probes the capabilities (~4 s per binary) at
#   nearly every call: defining one domain took 35 s. lv_start applies what Debian's udev
#   rule does (root:kvm 0660) and leaves it so. The domains are type 'qemu' (TCG) anyway.
# - libvirt also re-probes when the host CPUID it reads differs from the cached one, and on
#   some VMs that depends on the CPU the daemon happens to run on: every other start then
#   took 8 s instead of 0.1 s. libvirtd is pinned to one CPU (taskset); libvirt gives each
#   QEMU all host CPUs again, so the domains are not pinned.
# - QEMU runs as the user of /etc/libvirt/qemu.conf (Debian's default: libvirt-qemu, with
#   dynamic_ownership, which chowns the images at start and back at stop). The images are
#   created in $LV_DIR (mode 0711 so that user can reach them) and chowned to that user,
#   which also works with dynamic_ownership = 0.
# - Hooks: a file added to qemu.d takes effect after SIGHUP to libvirtd (lv_install_hook does
#   it and waits for the reload). A hook failing in prepare aborts the start, and
#   `virsh start NAME` fails (exit 1) printing on stderr:
#	error: Failed to start domain 'NAME'
#	error: Hook script execution failed: internal error: Child process (LC_ALL=C
#	PATH=... HOME=/root /etc/libvirt/hooks/qemu.d/HOOK NAME prepare begin -) unexpected
#	exit status 1: <the hook's stderr>
#   (one line; the hook runs with only LC_ALL, PATH and HOME in its environment). stopped and
#   release still run after the refused start.
#
# Measured on a 2-core Debian 12 VM (libvirt 9.0, QEMU 7.2): lv_install of qemu-system-x86 +
# qemu-utils 10.5 s (the libvirt packages were there already); lv_start 0.1-0.2 s (12 s the
# first time, while libvirt probes and caches QEMU's capabilities); define 0.05 s, start
# 0.5-1.2 s, a start refused by a hook 0.05 s, destroy 1.4-2 s; SIGTERM to libvirtd until it
# exits 0.1 s (up to 2 s while it is busy).
#
# Variables: LV_DIR (private temp dir: logs, pid files, images, XML), LV_URI, LV_QEMU_USER,
# LV_POLICY (attributes of <vpm:policy> for lv_domain_xml; empty: no metadata).

LV_URI=qemu:///system
LV_HOOK_DIR=/etc/libvirt/hooks/qemu.d
LV_PACKAGES=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-daemon-system libvirt-clients
	qemu-system-x86 qemu-utils)
LV_DIR=${LV_DIR:-}
LV_QEMU_USER=
LV_LIBVIRTD_PID=
LV_VIRTLOGD_PID=
LV_DOMAINS=()
LV_HOOKS=()
LV_HOOK_DIRS_MADE=()

lv_log() { echo "[lv $(date +%T.%3N)] $*" >&2; }
lv_die() { lv_log "FAIL: $*"; return 1; }

# seconds since $1 (an $EPOCHREALTIME), two decimals
lv_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }

# virsh against the rig's daemon, bounded: a hung libvirtd must not hang the test
lv_virsh() { timeout 60 virsh -q -c "$LV_URI" "$@"; }

# alive and not a zombie (an orphan's zombie lingers where PID 1 does not reap promptly)
lv_alive() {
	local state
	state=$(awk '/^State:/ { print $2 }' "/proc/$1/status" 2>/dev/null) || return 1
	[ -n "$state" ] && [ "$state" != Z ]
}

# the pid of a live process named $1, if any (pgrep also lists zombies)
lv_running() {
	local pid
	for pid in $(pgrep -x "$1"); do
		lv_alive "$pid" && { echo "$pid"; return 0; }
	done
	return 0
}

# wait up to $2 tenths of a second for pid $1 to exit
lv_wait_exit() {
	local i
	for ((i = 0; i < $2; i++)); do
		lv_alive "$1" || return 0
		sleep 0.1
	done
	return 1
}

# 0 when this machine can run the rig at all, 77 (with the reason) when it cannot
lv_require() {
	if [ "$(id -u)" != 0 ]; then
		echo "skipped: the libvirt tests need root (system libvirtd, hooks in /etc)"
		return 77
	fi
	if ! command -v apt-get >/dev/null && ! command -v libvirtd >/dev/null; then
		echo "skipped: no libvirtd, and no apt-get to install it"
		return 77
	fi
	if [ ! -d /proc/1 ]; then
		echo "skipped: no /proc"
		return 77
	fi
	return 0
}

# install what the rig needs: idempotent, quiet, no recommends
lv_install() {
	local p missing=() t0=$EPOCHREALTIME
	for p in "${LV_PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	lv_log "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null ||
		lv_die "apt-get update failed" || return 1
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >"${TMPDIR:-/tmp}/lv-apt.$$.log" 2>&1 || {
		tail -20 "${TMPDIR:-/tmp}/lv-apt.$$.log" >&2
		lv_die "apt-get install ${missing[*]} failed"
		return 1
	}
	rm -f "${TMPDIR:-/tmp}/lv-apt.$$.log"
	lv_log "installed in $(lv_since "$t0") s"
}

lv_init_dir() {
	[ -n "$LV_DIR" ] && [ -d "$LV_DIR" ] && return 0
	LV_DIR=$(mktemp -d /tmp/vpm-libvirt.XXXXXX)
	chmod 0711 "$LV_DIR" # QEMU, as its own user, opens the images in here
}

# the user QEMU runs as, from qemu.conf (Debian's default: libvirt-qemu)
lv_qemu_user() {
	local u
	u=$(sed -n 's/^[[:space:]]*user[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' \
		/etc/libvirt/qemu.conf 2>/dev/null | tail -1)
	u=${u#+}
	echo "${u:-libvirt-qemu}"
}

# what Debian's udev rule does to /dev/kvm; see the header
lv_kvm_access() {
	[ -c /dev/kvm ] || return 0
	getent group kvm >/dev/null || return 0
	if [ "$(stat -c %G /dev/kvm)" != kvm ] || [ "$(($(stat -c 0%a /dev/kvm) & 060))" != 48 ]; then
		lv_log "/dev/kvm is $(stat -c '%U:%G %a' /dev/kvm): making it root:kvm 0660 as udev would"
		chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
	fi
}

lv_write_conf() {
	{
		grep -Ev '^[[:space:]]*(log_outputs|log_filters|log_level)[[:space:]]*=' \
			/etc/libvirt/libvirtd.conf 2>/dev/null || true
		echo "log_filters = \"2:daemon.libvirtd\""
		echo "log_outputs = \"2:file:$LV_DIR/libvirtd.log\""
	} >"$LV_DIR/libvirtd.conf"
}

lv_start_virtlogd() {
	local pid
	pid=$(lv_running virtlogd)
	if [ -n "$pid" ]; then
		lv_log "virtlogd already running (pid $pid): using it, leaving it running"
		return 0
	fi
	virtlogd -d -p "$LV_DIR/virtlogd.pid" || lv_die "virtlogd did not start" || return 1
	LV_VIRTLOGD_PID=$(cat "$LV_DIR/virtlogd.pid")
}

# the first CPU this process may run on (see the header: libvirtd is pinned there)
lv_first_cpu() {
	awk -F'[,-]' '/^Cpus_allowed_list:/ { sub(/^[^0-9]*/, "", $1); print $1 }' /proc/self/status
}

# refuse a libvirtd we did not start (see the header)
lv_no_libvirtd() {
	local pid
	pid=$(lv_running libvirtd)
	[ -z "$pid" ] && return 0
	lv_die "a libvirtd is already running (pid $pid: $(tr '\0' ' ' </proc/"$pid"/cmdline)):" \
		"the libvirt tests restart and kill libvirtd, so they start their own; stop it first"
}

# start libvirtd, wait (bounded) until qemu:///system answers
lv_start_libvirtd() {
	local t0=$EPOCHREALTIME i
	lv_no_libvirtd || return 1
	rm -f "$LV_DIR/libvirtd.pid"
	taskset -c "$(lv_first_cpu)" libvirtd -d -f "$LV_DIR/libvirtd.conf" -p "$LV_DIR/libvirtd.pid" ||
		lv_die "libvirtd -d failed" || return 1
	for ((i = 0; i < 1200; i++)); do
		if [ -z "$LV_LIBVIRTD_PID" ] && [ -s "$LV_DIR/libvirtd.pid" ]; then
			LV_LIBVIRTD_PID=$(cat "$LV_DIR/libvirtd.pid")
		fi
		if [ -n "$LV_LIBVIRTD_PID" ] && ! lv_alive "$LV_LIBVIRTD_PID"; then
			break
		fi
		if [ -n "$LV_LIBVIRTD_PID" ] &&
			timeout 10 virsh -c "$LV_URI" version >/dev/null 2>&1; then
			lv_log "libvirtd up (pid $LV_LIBVIRTD_PID) in $(lv_since "$t0") s"
			return 0
		fi
		sleep 0.1
	done
	tail -30 "$LV_DIR/libvirtd.log" >&2 2>/dev/null || true
	lv_die "libvirtd (pid ${LV_LIBVIRTD_PID:-none}) did not answer on $LV_URI within 120 s"
}

# virtlogd and libvirtd, in a fresh private directory
lv_start() {
	lv_no_libvirtd || return 1
	lv_init_dir
	LV_QEMU_USER=$(lv_qemu_user)
	lv_kvm_access
	lv_write_conf
	lv_start_virtlogd || return 1
	lv_start_libvirtd
}

# SIGTERM libvirtd and wait for it; SIGKILL if it lingers. Running domains keep running.
lv_stop_libvirtd() {
	local pid=$LV_LIBVIRTD_PID
	[ -n "$pid" ] || return 0
	kill "$pid" 2>/dev/null || true
	if ! lv_wait_exit "$pid" 300; then
		lv_log "libvirtd (pid $pid) ignored SIGTERM for 30 s: SIGKILL"
		kill -9 "$pid" 2>/dev/null || true
		lv_wait_exit "$pid" 50 || true
	fi
	LV_LIBVIRTD_PID=
}

lv_restart_libvirtd() {
	local t0=$EPOCHREALTIME
	lv_stop_libvirtd
	lv_log "libvirtd stopped in $(lv_since "$t0") s"
	lv_start_libvirtd
}

# kill -9 libvirtd (no restart); its domains keep running
lv_kill_libvirtd() {
	local pid=$LV_LIBVIRTD_PID
	[ -n "$pid" ] || lv_die "lv_kill_libvirtd: no libvirtd of ours running" || return 1
	kill -9 "$pid"
	lv_wait_exit "$pid" 50 || lv_die "libvirtd (pid $pid) survived SIGKILL" || return 1
	LV_LIBVIRTD_PID=
}

# lv_domain_xml NAME MEM_MIB [NVDIMM_SPEC...], NVDIMM_SPEC = path:size_mib[:label_kib]
# Prints a domain XML that boots under TCG with no disk (SeaBIOS finds nothing to boot, and
# keeps QEMU running), with one shared nvdimm per spec. A relative path is a file in $LV_DIR;
# the image is created (sparse) unless it exists, and given to the QEMU user.
lv_domain_xml() {
	local name=$1 mem=$2 spec path size label total=$2 devs=""
	shift 2
	lv_init_dir
	[ -n "$LV_QEMU_USER" ] || LV_QEMU_USER=$(lv_qemu_user)
	for spec in "$@"; do
		IFS=: read -r path size label <<<"$spec"
		[ -n "$path" ] && [ -n "$size" ] || lv_die "bad nvdimm spec '$spec'" || return 1
		[ "${path#/}" != "$path" ] || path=$LV_DIR/$path
		[ -e "$path" ] || truncate -s "${size}M" "$path" || return 1
		chown "$LV_QEMU_USER:" "$path" 2>/dev/null || true
		total=$((total + size))
		devs+="
    <memory model='nvdimm' access='shared'>
      <source><path>$path</path></source>
      <target>
        <size unit='MiB'>$size</size>
        <node>0</node>${label:+
        <label><size unit='KiB'>$label</size></label>}
      </target>
    </memory>"
	done
	cat <<EOF
<domain type='qemu'>
  <name>$name</name>${LV_POLICY:+
  <metadata>
    <vpm:policy xmlns:vpm='https://vpm.dev/xmlns/libvirt-domain/1.0' $LV_POLICY/>
  </metadata>}
  <maxMemory slots='4' unit='MiB'>$((total + 1024))</maxMemory>
  <memory unit='MiB'>$total</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <features><acpi/></features>
  <cpu><numa><cell id='0' cpus='0' memory='$mem' unit='MiB'/></numa></cpu>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <memballoon model='none'/>$devs
  </devices>
</domain>
EOF
}

# lv_define NAME [XMLFILE]: define the domain (XML from the file, else stdin) and remember
# it for lv_stop. Not at the end of a pipeline: that runs in a subshell, which forgets.
lv_define() {
	local name=$1
	lv_init_dir
	if [ -n "${2:-}" ]; then
		[ "$2" = "$LV_DIR/$name.xml" ] || cp "$2" "$LV_DIR/$name.xml"
	else
		cat >"$LV_DIR/$name.xml"
	fi
	if lv_virsh dominfo "$name" >/dev/null 2>&1; then
		lv_die "a domain named $name exists already: not ours, not touching it"
		return 1
	fi
	LV_DOMAINS+=("$name")
	lv_virsh define "$LV_DIR/$name.xml" >/dev/null || lv_die "virsh define $name failed"
}

# the pid of a running domain's QEMU
lv_qemu_pid() { cat "/run/libvirt/qemu/$1.pid" 2>/dev/null; }

# SIGHUP libvirtd and wait until it has begun reloading (hooks are read then)
lv_reload() {
	local n i
	[ -n "$LV_LIBVIRTD_PID" ] || return 0
	n=$(grep -c "Reloading configuration on SIGHUP" "$LV_DIR/libvirtd.log" 2>/dev/null) || true
	kill -HUP "$LV_LIBVIRTD_PID"
	for ((i = 0; i < 100; i++)); do
		[ "$(grep -c "Reloading configuration on SIGHUP" "$LV_DIR/libvirtd.log")" -gt "${n:-0}" ] &&
			break
		sleep 0.05
	done
	lv_virsh version >/dev/null
}

# lv_install_hook SCRIPT [NAME]: SCRIPT as /etc/libvirt/hooks/qemu.d/NAME (default: its
# basename), 0755, removed by lv_stop; an existing file of that name is not overwritten
lv_install_hook() {
	local script=$1 name=${2:-$(basename "$1")} d
	for d in "${LV_HOOK_DIR%/*}" "$LV_HOOK_DIR"; do
		[ -d "$d" ] && continue
		mkdir -m 0755 "$d" || return 1
		LV_HOOK_DIRS_MADE=("$d" "${LV_HOOK_DIRS_MADE[@]}")
	done
	[ ! -e "$LV_HOOK_DIR/$name" ] ||
		lv_die "$LV_HOOK_DIR/$name exists already: not ours, not replacing it" || return 1
	LV_HOOKS+=("$name")
	install -m 0755 "$script" "$LV_HOOK_DIR/$name" || return 1
	lv_reload
}

lv_remove_hook() {
	local name=$1 h keep=()
	rm -f "$LV_HOOK_DIR/$name"
	for h in "${LV_HOOKS[@]}"; do
		[ "$h" = "$name" ] || keep+=("$h")
	done
	LV_HOOKS=("${keep[@]}")
	lv_reload
}

# everything undone, in order; safe to call twice, and from an EXIT trap
lv_stop() {
	local name d
	for name in "${LV_HOOKS[@]}"; do
		rm -f "$LV_HOOK_DIR/$name"
	done
	LV_HOOKS=()
	for d in "${LV_HOOK_DIRS_MADE[@]}"; do
		rmdir "$d" 2>/dev/null || true
	done
	LV_HOOK_DIRS_MADE=()
	if [ ${#LV_DOMAINS[@]} -gt 0 ]; then
		# a killed libvirtd is started again to take its domains down properly
		[ -n "$LV_LIBVIRTD_PID" ] || [ -z "$LV_DIR" ] || lv_start_libvirtd || true
		if [ -n "$LV_LIBVIRTD_PID" ]; then
			lv_reload || true
			for name in "${LV_DOMAINS[@]}"; do
				lv_virsh destroy "$name" >/dev/null 2>&1 || true
				lv_virsh undefine "$name" >/dev/null 2>&1 || true
				rm -f "/var/log/libvirt/qemu/$name.log"*
			done
		fi
		LV_DOMAINS=()
	fi
	lv_stop_libvirtd
	if [ -n "$LV_VIRTLOGD_PID" ]; then
		kill "$LV_VIRTLOGD_PID" 2>/dev/null || true
		lv_wait_exit "$LV_VIRTLOGD_PID" 50 || kill -9 "$LV_VIRTLOGD_PID" 2>/dev/null || true
		LV_VIRTLOGD_PID=
	fi
	if [ -n "$LV_DIR" ] && [ -z "${LV_KEEP:-}" ]; then
		rm -rf "$LV_DIR"
	fi
	LV_DIR=
}
