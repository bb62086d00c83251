#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# vpmctl hook, libvirt's qemu hook, without vpmd: which ops it sends, what it does when vpmd
# cannot be reached (on_vpmd_down), its exit codes and one-line refusals, the bounds on its
# input, and a vpmd.conf it cannot use. A few lines of Python stand in for vpmd where an
# answer is needed. The domain XML is as libvirt 9.0 passes it (data/hook/).
. "$(dirname "$0")/lib.sh"

D="$(cd "$(dirname "$0")" && pwd)/data/hook"
unset VPM_SOCKET VPM_CONFIG
NOSOCK="$T/nothing-here.sock"

# run_hook WANT XML ARGS...: vpmctl ARGS... with the file XML on stdin; output in $T/std*.
run_hook() {
	local want=$1 xml=$2 rc=0
	shift 2
	"$VPMCTL" "$@" <"$xml" >"$T/stdout" 2>"$T/stderr" || rc=$?
	[ "$rc" -eq "$want" ] ||
		fail "'vpmctl $*' <$(basename "$xml") exited $rc, expected $want; stderr: $(cat "$T/stderr")"
}

# A refusal is what the user sees in virsh: exactly one line on stderr, nothing on stdout.
expect_refusal() {
	[ "$(wc -l <"$T/stderr")" -eq 1 ] || fail "refusal is not one line: $(cat "$T/stderr")"
	[ ! -s "$T/stdout" ] || fail "refusal printed on stdout: $(cat "$T/stdout")"
	for pattern in "$@"; do
		expect_grep "$pattern" "$T/stderr"
	done
}

expect_silent() {
	[ ! -s "$T/stdout" ] || fail "printed on stdout: $(cat "$T/stdout")"
	[ ! -s "$T/stderr" ] || fail "printed on stderr: $(cat "$T/stderr")"
}

# conf LINE...: $T/conf with these lines
conf() {
	printf '%s\n' "$@" >"$T/conf"
}

# every file is there and is what its name says
for vm in shop web; do
	for op in prepare started stopped release; do
		[ -s "$D/$vm-$op.xml" ] || fail "missing $D/$vm-$op.xml"
	done
done
for f in "$D"/shop-*.xml; do
	grep -q "https://vpm.dev/xmlns/libvirt-domain/1.0" "$f" || fail "$f has no vpm policy"
	grep -q "<memory model='nvdimm' access='shared'>" "$f" || fail "$f has no shared nvdimm"
done
for f in "$D"/web-*.xml; do
	! grep -q "vpm.dev\|<memory model=" "$f" || fail "$f has PM or a vpm policy"
done
! grep -q "base=" "$D/shop-prepare.xml" || fail "prepare XML has a dimm base address"
grep -q "<alias name='nvdimm0'/>" "$D/shop-started.xml" || fail "started XML has no alias"
grep -q "<address type='dimm' slot='0' base='0x100000000'/>" "$D/shop-started.xml" ||
	fail "started XML has no dimm base address"

# ---- usage errors: status 2 ----
run_hook 2 /dev/null hook
expect_grep "Usage: vpmctl hook DOMAIN OP SUBOP \[EXTRA\]" "$T/stderr"
run_hook 2 /dev/null hook shop
run_hook 2 /dev/null hook shop prepare
run_hook 2 /dev/null hook '' prepare begin -
expect_grep "the domain name is empty" "$T/stderr"
run_hook 2 /dev/null hook shop '' begin -
expect_grep "the op is empty" "$T/stderr"
run_hook 2 /dev/null hook shop prepare begin - extra
expect_grep "takes no further argument 'extra'" "$T/stderr"
run_hook 2 /dev/null hook --config
run_hook 2 /dev/null --config

# ---- ops vpmd does not hear of: status 0 at once, silent, stdin unread ----
conf "[hook]" "on_vpmd_down = fail"
for op in start migrate restore attach shutdown frobnicate; do
	run_hook 0 "$D/shop-prepare.xml" -j --config "$T/conf" -s "$NOSOCK" hook shop "$op" begin -
	expect_silent
done
# stdin is not even read: a never-ending one does not matter
timeout 10 "$VPMCTL" -s "$NOSOCK" hook shop start begin - </dev/zero ||
	fail "vpmctl hook read stdin for op start"

# ---- vpmd not running: on_vpmd_down ----
starts=(prepare started)
stops=(stopped release)

# policy (also the default): refuse VMs with a VPM policy, start the others
for setting in "" "on_vpmd_down = policy"; do
	conf "[daemon]" "socket = $NOSOCK" "[hook]" "$setting"
	for op in "${starts[@]}"; do
		run_hook 1 "$D/shop-$op.xml" --config "$T/conf" hook shop "$op" begin -
		expect_refusal "^vpmctl: VM 'shop' has a VPM policy, but vpmd is not running" \
			"no socket at '$NOSOCK'" "systemctl start vpmd" \
			"remove the VM's VPM policy" "on_vpmd_down = pass" "\[hook\] of $T/conf\$"
		run_hook 0 "$D/web-$op.xml" --config "$T/conf" hook web "$op" begin -
		expect_grep "note: vpmd is not running (no socket at '$NOSOCK'); VM 'web' starts" \
			"$T/stderr"
		expect_grep "it has no VPM policy" "$T/stderr"
		[ ! -s "$T/stdout" ] || fail "printed on stdout without -j"
	done
done

# fail: refuse every VM
conf "[hook]" "on_vpmd_down = fail"
for vm in shop web; do
	for op in "${starts[@]}"; do
		run_hook 1 "$D/$vm-$op.xml" --config "$T/conf" -s "$NOSOCK" hook "$vm" "$op" begin -
		expect_refusal "^vpmctl: VM '$vm' may not start: vpmd is not running" \
			"on_vpmd_down = fail in \[hook\] of $T/conf" "systemctl start vpmd" \
			"set on_vpmd_down = pass or policy"
	done
done

# pass: start every VM; -j gives the result on stdout
conf "[hook]" "on_vpmd_down = pass"
for vm in shop web; do
	for op in "${starts[@]}"; do
		run_hook 0 "$D/$vm-$op.xml" --config "$T/conf" -s "$NOSOCK" -j hook "$vm" "$op" begin -
		expect_grep "VM '$vm' starts without it (on_vpmd_down = pass)" "$T/stderr"
		jq_check '.action == "none" and (.message | test("vpmd is not running"))' \
			"$T/stdout"
	done
done

# stops and reconnects never fail for a missing vpmd, whatever the setting
for setting in policy fail pass; do
	conf "[hook]" "on_vpmd_down = $setting"
	for vm in shop web; do
		for op in "${stops[@]}"; do
			run_hook 0 "$D/$vm-$op.xml" --config "$T/conf" -s "$NOSOCK" hook "$vm" "$op" \
				end -
			expect_grep "note: vpmd is not running.*not told about VM '$vm' ($op)" \
				"$T/stderr"
		done
	done
	run_hook 0 "$D/shop-reconnect.xml" --config "$T/conf" -s "$NOSOCK" hook shop reconnect \
		begin -
	expect_grep "not told about VM 'shop' (reconnect)" "$T/stderr"
done
# nobody listening on the socket is the same as no socket
python3 -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' \
	"$T/dead.sock"
run_hook 1 "$D/shop-prepare.xml" --config "$T/conf.none" -s "$T/dead.sock" hook shop prepare \
	begin -
expect_refusal "vpmd is not running (nothing listens on '$T/dead.sock')"
run_hook 0 "$D/shop-release.xml" -s "$T/dead.sock" hook shop release end -

# ---- where the socket and the configuration come from ----
conf "[daemon]" "socket = $T/from-conf.sock"
run_hook 1 "$D/shop-prepare.xml" --config "$T/conf" hook shop prepare begin -
expect_refusal "no socket at '$T/from-conf.sock'"
# -s and $VPM_SOCKET win over the configuration
run_hook 1 "$D/shop-prepare.xml" --config "$T/conf" -s "$NOSOCK" hook shop prepare begin -
expect_refusal "no socket at '$NOSOCK'"
VPM_SOCKET="$T/from-env.sock" run_hook 1 "$D/shop-prepare.xml" --config "$T/conf" \
	hook shop prepare begin -
expect_refusal "no socket at '$T/from-env.sock'"
# $VPM_CONFIG names the file when --config does not
conf "[hook]" "on_vpmd_down = fail"
VPM_CONFIG="$T/conf" run_hook 1 "$D/web-prepare.xml" -s "$NOSOCK" hook web prepare begin -
expect_refusal "on_vpmd_down = fail in \[hook\] of $T/conf"
cp "$T/conf" "$T/fail.conf"
conf "[hook]" "on_vpmd_down = pass"
VPM_CONFIG="$T/fail.conf" run_hook 0 "$D/web-prepare.xml" --config "$T/conf" -s "$NOSOCK" \
	hook web prepare begin -
# vpmd's other settings and sections do not matter to the hook
conf "# comment" "[daemon]" "socket_mode = 0660" "dram_budget = 4G" "[pool pm0]" \
	"path = /dev/dax0.0" "[hook]" "on_vpmd_down = pass ; inline comment"
run_hook 0 "$D/shop-prepare.xml" --config "$T/conf" -s "$NOSOCK" hook shop prepare begin -
expect_grep "on_vpmd_down = pass" "$T/stderr"
! grep -q "using the defaults\|using policy\|syntax error" "$T/stderr" ||
	fail "a valid file got a note: $(cat "$T/stderr")"

# ---- a configuration the hook cannot use: the defaults, and a note ----
# missing (when named), a directory, a FIFO, a bad value, a bad socket, syntax errors
mkfifo "$T/fifo.conf"
printf '[hook]\non_vpmd_down = maybe\n' >"$T/bad-value.conf"
printf '[daemon]\nsocket = relative.sock\n[hook]\non_vpmd_down = pass\n' >"$T/bad-socket.conf"
for c in "$T/missing.conf" "$T" "$T/fifo.conf" "$T/bad-value.conf"; do
	run_hook 1 "$D/shop-prepare.xml" --config "$c" -s "$NOSOCK" hook shop prepare begin -
	expect_refusal "VM 'shop' has a VPM policy" "(note: .*$c.*using"
	run_hook 0 "$D/web-prepare.xml" --config "$c" -s "$NOSOCK" hook web prepare begin -
	expect_grep "^vpmctl: note: .*$c" "$T/stderr"
	expect_grep "VM 'web' starts without it" "$T/stderr"
	run_hook 0 "$D/shop-stopped.xml" --config "$c" -s "$NOSOCK" hook shop stopped end -
done
run_hook 0 "$D/web-prepare.xml" --config "$T" -s "$NOSOCK" hook web prepare begin -
expect_grep "note: $T is not a regular file of at most 1 MiB; using the defaults" "$T/stderr"
run_hook 0 "$D/web-prepare.xml" --config "$T/bad-value.conf" -s "$NOSOCK" hook web prepare \
	begin -
expect_grep "on_vpmd_down 'maybe' is not policy, fail or pass; using policy" "$T/stderr"
VPM_SOCKET="$NOSOCK" run_hook 0 "$D/shop-prepare.xml" --config "$T/bad-socket.conf" \
	hook shop prepare begin -
expect_grep "socket 'relative.sock' is not an absolute path of at most 107 bytes" "$T/stderr"
printf '[hook]\nthis is no setting\non_vpmd_down = pass\n' >"$T/syntax.conf"
run_hook 0 "$D/shop-prepare.xml" --config "$T/syntax.conf" -s "$NOSOCK" hook shop prepare \
	begin -
expect_grep "syntax.conf:2: syntax error" "$T/stderr"
if [ "$(id -u)" -ne 0 ]; then
	printf '[hook]\non_vpmd_down = pass\n' >"$T/secret.conf"
	chmod 000 "$T/secret.conf"
	run_hook 1 "$D/shop-prepare.xml" --config "$T/secret.conf" -s "$NOSOCK" hook shop prepare \
		begin -
	expect_refusal "Permission denied; using the defaults"
fi

# ---- the domain XML: at most 4 MiB, no NUL bytes ----
conf "[hook]" "on_vpmd_down = pass"
head -c $((4 << 20)) /dev/zero | tr '\0' ' ' >"$T/4mib.xml"
run_hook 0 "$T/4mib.xml" --config "$T/conf" -s "$NOSOCK" hook big prepare begin -
head -c $(((4 << 20) + 1)) /dev/zero | tr '\0' ' ' >"$T/big.xml"
for op in prepare started stopped release; do
	run_hook 1 "$T/big.xml" --config "$T/conf" -s "$NOSOCK" hook big "$op" begin -
	expect_refusal "^vpmctl: the domain XML of VM 'big' on standard input is larger than 4 MiB"
done
run_hook 0 "$T/big.xml" --config "$T/conf" -s "$NOSOCK" hook big reconnect begin -
expect_grep "larger than 4 MiB, so vpmd was not told about it; the VM keeps running" "$T/stderr"
printf '<domain>\0</domain>' >"$T/nul.xml"
run_hook 1 "$T/nul.xml" --config "$T/conf" -s "$NOSOCK" hook nul prepare begin -
expect_refusal "contains a NUL byte"

# ---- a stand-in vpmd: what is sent, and how answers and refusals come out ----
FAKE="$T/fake.sock"
start_fake_vpmd "$FAKE" hook "$T/requests.jsonl"

conf "[hook]" "on_vpmd_down = fail"
for step in "started begin" "stopped end" "release end"; do
	op=${step% *} subop=${step#* }
	run_hook 0 "$D/shop-$op.xml" --config "$T/conf" -s "$FAKE" hook shop "$op" "$subop" -
	expect_grep "^VM 'shop': $op $subop done\$" "$T/stdout"
	[ ! -s "$T/stderr" ] || fail "stderr on success: $(cat "$T/stderr")"
	tail -n 1 "$T/requests.jsonl" >"$T/request.json"
	jq_check '.method == "hook" and (.params | keys) == ["domain", "op", "subop", "xml"]' \
		"$T/request.json"
	jq_check ".params.domain == \"shop\" and .params.op == \"$op\" and .params.subop == \"$subop\"" \
		"$T/request.json"
	jq -e --rawfile x "$D/shop-$op.xml" '.params.xml == $x' "$T/request.json" >/dev/null ||
		fail "the XML sent for $op is not the XML read"
done
run_hook 0 "$D/web-prepare.xml" --config "$T/conf" -s "$FAKE" -j hook web prepare begin -
jq_check '.action == "attached" and .message == "VM '"'web'"': prepare begin done"' \
	"$T/stdout"
# vpmd's refusal: status 1, its message on one line
run_hook 1 "$D/shop-prepare.xml" --config "$T/conf" -s "$FAKE" -j hook shop prepare begin -
expect_refusal "^vpmctl: VM 'shop' does not fit: needs 16384 PM frames, 2000 free in pool 'pm0'; free frames or lower its ratio\$"
# ... but a failing reconnect hook makes libvirt kill the VM: status 0 and a note
run_hook 0 "$D/shop-reconnect.xml" --config "$T/conf" -s "$FAKE" hook shop reconnect begin -
expect_grep "note: vpmd did not take back VM 'shop': VM 'shop' does not fit" "$T/stderr"
expect_grep "the VM keeps running" "$T/stderr"
# ops that pass at once never reach vpmd
n=$(wc -l <"$T/requests.jsonl")
run_hook 0 "$D/shop-prepare.xml" -s "$FAKE" hook shop start begin -
[ "$(wc -l <"$T/requests.jsonl")" -eq "$n" ] || fail "op start was sent to vpmd"

# ---- a vpmd that never answers: the hook gives up within its bound ----
python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(8)
time.sleep(120)' "$T/stuck.sock" &
FAKE_PIDS+=($!)
for _ in $(seq 100); do
	[ -S "$T/stuck.sock" ] && break
	sleep 0.1
done
start=$(date +%s)
run_hook 1 "$D/shop-prepare.xml" --config "$T/conf" -s "$T/stuck.sock" hook shop prepare begin -
expect_refusal "VM 'shop' may not start: vpmd at '$T/stuck.sock' is not answering"
[ $(($(date +%s) - start)) -le 15 ] || fail "the hook waited more than 15 s for vpmd"

echo "test-hook-cli: ok"
