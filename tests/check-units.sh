#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# systemd-analyze verify on the installed units; any message is a failure.
set -euo pipefail
build=$1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

DESTDIR="$T/root" cmake --install "$build" >/dev/null
units=$(find "$T/root" -path '*/systemd/system' -type d)
sbin=$(dirname "$(find "$T/root" -name vpmd -type f -perm -u+x)")
mkdir "$T/units"
# Point ExecStart at the staged binary: verify checks that it exists and is executable.
sed "s|^ExecStart=[^ ]*/vpmd |ExecStart=$sbin/vpmd |" "$units/vpmd.service" >"$T/units/vpmd.service"
cp "$units/vpmd.socket" "$T/units/"
grep -q "^ExecStart=$sbin/vpmd --foreground" "$T/units/vpmd.service"

export MANPATH="$(dirname "$(find "$T/root" -type d -name man8)")"
cd "$T/units"
out=$(systemd-analyze verify vpmd.service vpmd.socket 2>&1) || {
	echo "$out"
	echo "FAIL: systemd-analyze verify failed" >&2
	exit 1
}
if [ -n "$out" ]; then
	echo "$out"
	echo "FAIL: systemd-analyze verify complained" >&2
	exit 1
fi
# tmpfiles.d and sysusers.d entries parse
SYSTEMD_LOG_LEVEL=err systemd-tmpfiles --dry-run --create \
	"$(find "$T/root" -path '*tmpfiles.d/vpmd.conf')" >/dev/null 2>"$T/tmpfiles.err" ||
	true
if grep -qi "error\|invalid\|unknown" "$T/tmpfiles.err"; then
	cat "$T/tmpfiles.err"
	exit 1
fi
systemd-sysusers --dry-run "$(find "$T/root" -path '*sysusers.d/vpmd.conf')" >/dev/null
echo "check-units: vpmd.service and vpmd.socket verified"
