#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Peer credentials decide: root changes state, members of socket_group read (as primary or
# supplementary group), everyone else is refused with EACCES; readers asking for a change
# get EPERM. Runs vpmctl as other users with setpriv, so it needs root.
. "$(dirname "$0")/lib.sh"

if [ "$(id -u)" -ne 0 ]; then
	echo "test-access: needs root to run clients as other users (setpriv)"
	exit 77
fi
command -v setpriv >/dev/null || fail "setpriv (util-linux) is missing"

NOBODY=65534
READER_GID=$(getent group nogroup | cut -d: -f3)
OTHER_GID=$(getent group daemon | cut -d: -f3)
[ -n "$READER_GID" ] && [ -n "$OTHER_GID" ] || fail "groups nogroup and daemon are needed"

# vpmctl and libvpm where an unprivileged user can run them
mkdir -m 0755 "$T/bin"
cp "$VPMCTL" "$T/bin/"
cp -P "$VPM_BUILD"/libvpm/libvpm.so* "$T/bin/"
chmod -R a+rX "$T/bin"
as_user() {
	local gid=$1 groups=$2
	shift 2
	setpriv --reuid="$NOBODY" --regid="$gid" --groups="$groups" \
		env LD_LIBRARY_PATH="$T/bin" "$T/bin/vpmctl" -s "$SOCK" "$@"
}

write_config "socket_group = nogroup" "max_clients = 8"
start_vpmd

# reader: primary group
expect_rc 0 as_user "$READER_GID" "$READER_GID" -j status
jq_check '.protocol == 1' "$T/stdout"
expect_rc 0 as_user "$READER_GID" "$READER_GID" pools
# reader: supplementary group only (SO_PEERGROUPS)
expect_rc 0 as_user "$OTHER_GID" "$READER_GID" -j status
# a reader may not change state
expect_rc 4 as_user "$READER_GID" "$READER_GID" reload
expect_grep "needs root" "$T/stderr"
# not a member: refused outright
expect_rc 4 as_user "$OTHER_GID" "$OTHER_GID" status
expect_grep "access to vpmd denied" "$T/stderr"
# one user may hold at most a quarter of max_clients (8 here): the third connection is refused
cat >"$T/hold.py" <<'PY'
import json, socket, sys
held = []
for _ in range(2):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    held.append(s)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.settimeout(5)
try:
    s.sendall(b'{"protocol":1,"method":"status"}\0')
except OSError:
    pass
reply = json.loads(s.recv(65536).split(b"\0")[0])
print(reply["error"]["name"])
PY
chmod a+r "$T/hold.py"
[ "$(setpriv --reuid="$NOBODY" --regid="$READER_GID" --groups="$READER_GID" \
	/usr/bin/python3 "$T/hold.py" "$SOCK")" = EBUSY ] || fail "per-user connection cap missing"
# root may change state
expect_rc 0 "$VPMCTL" -s "$SOCK" reload
expect_rc 0 "$VPMCTL" -s "$SOCK" -j status
jq_check '.clients.refused == 2 and .clients.errors == 1 and .reloads == 1' "$T/stdout"
stop_vpmd

# The default socket mode 0660 with the socket's group set to socket_group: outsiders cannot
# even connect.
write_config "socket_group = nogroup" "socket_mode = 0660"
sed -i '/^socket_mode = 0666$/d' "$CONF"
start_vpmd
[ "$(stat -c '%a %G' "$SOCK")" = "660 nogroup" ] || fail "socket is $(stat -c '%a %G' "$SOCK")"
expect_rc 0 as_user "$READER_GID" "$READER_GID" status
expect_rc 4 as_user "$OTHER_GID" "$OTHER_GID" status
expect_grep "Permission denied" "$T/stderr"
stop_vpmd
echo "test-access: ok"
