#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# vpmd's life cycle: bad configurations, detaching, one instance per state directory, pools
# that must be refused, SIGHUP reloads (good and bad), stale sockets, clean stop.
. "$(dirname "$0")/lib.sh"

# A bad configuration is refused with file, line and key; nothing is left running.
cat >"$CONF" <<CONF
[daemon]
socket = $SOCK
state_dir = $T/state
epoch_interval = forever
colour = blue
CONF
expect_rc 1 "$VPMD" --foreground --config "$CONF"
expect_grep "$CONF:4: key 'epoch_interval'" "$T/stderr"
expect_grep "$CONF:5: key 'colour': unknown key" "$T/stderr"
expect_rc 1 "$VPMD" --foreground --config "$T/missing.conf"
expect_grep "missing.conf" "$T/stderr"
expect_rc 2 "$VPMD" --bogus
expect_rc 0 "$VPMD" --version

# A pool that cannot be what it claims: a plain file is not fsdax.
write_config
sed -i 's/^kind = emulated/kind = fsdax/' "$CONF"
expect_rc 1 "$VPMD" --foreground --config "$CONF"
expect_grep "not on a DAX filesystem" "$T/stderr"
expect_grep "kind = emulated" "$T/stderr"
[ ! -e "$T/pool0" ] || fail "a refused pool file was left behind"

# Detached start returns once vpmd answers; the pid file names the daemon.
write_config
expect_rc 0 "$VPMD" --config "$CONF"
VPMD_PID=$(cat "$T/state/vpmd.pid")
kill -0 "$VPMD_PID" || fail "detached vpmd is not running"
expect_rc 0 "$VPMCTL" -s "$SOCK" -j status
jq_check ".pid == $VPMD_PID" "$T/stdout"

# A second vpmd on the same state directory is refused and names the first.
expect_rc 1 "$VPMD" --foreground --config "$CONF"
expect_grep "Another vpmd (pid $VPMD_PID) is using state directory" "$T/stderr"
# ...and on another state directory but the same pool, the pool lock refuses it.
sed "s|^state_dir = .*|state_dir = $T/state2|; s|^socket = .*|socket = $T/other.sock|" \
	"$CONF" >"$T/other.conf"
expect_rc 1 "$VPMD" --foreground --config "$T/other.conf"
expect_grep "in use by another process" "$T/stderr"
# ...and on the same socket with its own state and pool, the live socket is not stolen.
sed "s|^state_dir = .*|state_dir = $T/state3|; s|^path = .*|path = $T/pool3|" \
	"$CONF" >"$T/third.conf"
expect_rc 1 "$VPMD" --foreground --config "$T/third.conf"
expect_grep "already listening on '$SOCK'" "$T/stderr"
expect_rc 0 "$VPMCTL" -s "$SOCK" status

# SIGHUP with a new pool: it is opened, the old one kept.
cat >>"$CONF" <<CONF

[pool second]
path = $T/pool1
kind = emulated
size = 8M
CONF
kill -HUP "$VPMD_PID"
for _ in $(seq 50); do
	"$VPMCTL" -s "$SOCK" -j status >"$T/status.json"
	jq -e '.reloads == 1' "$T/status.json" >/dev/null && break
	sleep 0.1
done
jq_check '.reloads == 1 and .pools.count == 2 and .last_reload_error == null' "$T/status.json"

# A broken file on SIGHUP: vpmd keeps running on the previous configuration and says why.
cp "$CONF" "$T/good.conf"
echo "max_clients = many" >>"$CONF"
kill -HUP "$VPMD_PID"
for _ in $(seq 50); do
	"$VPMCTL" -s "$SOCK" -j status >"$T/status.json"
	jq -e '.last_reload_error != null' "$T/status.json" >/dev/null && break
	sleep 0.1
done
jq_check '.reloads == 1 and .pools.count == 2' "$T/status.json"
jq_check '.last_reload_error | test("max_clients")' "$T/status.json"
expect_rc 1 "$VPMCTL" -s "$SOCK" reload
expect_grep "keeps its old configuration" "$T/stderr"
expect_grep "max_clients" "$T/stderr"

# Changing an open pool needs a restart: refused, old pool untouched.
sed 's/^size = 8M/size = 12M/' "$T/good.conf" >"$CONF"
expect_rc 1 "$VPMCTL" -s "$SOCK" reload
expect_grep "pool 'second' changed" "$T/stderr"
# A restart-only setting is kept at its running value, with a warning.
sed "s|^state_dir = .*|state_dir = $T/elsewhere|" "$T/good.conf" >"$CONF"
expect_rc 0 "$VPMCTL" -s "$SOCK" reload
expect_grep "state_dir changed from '$T/state' to '$T/elsewhere'; this takes effect when vpmd restarts" \
	"$T/stderr"
expect_rc 0 "$VPMCTL" -s "$SOCK" -j reload
jq_check '.reloaded == true and (.warnings | length == 1)' "$T/stdout"
expect_rc 0 "$VPMCTL" -s "$SOCK" -j status
jq_check ".state_dir == \"$T/state\" and .last_reload_error == null" "$T/stdout"
# Renaming a pool's section keeps the open pool under its new name.
sed 's/^\[pool second\]/[pool renamed]/' "$T/good.conf" >"$CONF"
expect_rc 0 "$VPMCTL" -s "$SOCK" reload
expect_rc 0 "$VPMCTL" -s "$SOCK" -j pools
jq_check '.pools | map(.name) == ["test", "renamed"]' "$T/stdout"
cp "$CONF" "$T/good.conf"
sed -i 's/^\[pool renamed\]/[pool second]/' "$T/good.conf"
cp "$T/good.conf" "$CONF"
expect_rc 0 "$VPMCTL" -s "$SOCK" reload
# Removing a pool closes it.
cp "$T/good.conf" "$CONF"
sed -i '/^\[pool second\]/,$d' "$CONF"
expect_rc 0 "$VPMCTL" -s "$SOCK" reload
expect_rc 0 "$VPMCTL" -s "$SOCK" -j pools
jq_check '.pools | map(.name) == ["test"]' "$T/stdout"

# SIGTERM: clean exit, socket removed, pools closed (another vpmd may take them).
stop_vpmd
[ ! -e "$SOCK" ] || fail "socket left behind after SIGTERM"

# A file that is not a socket is never taken for a stale socket.
echo "precious" >"$SOCK"
expect_rc 1 "$VPMD" --foreground --config "$CONF"
expect_grep "exists and is not a socket" "$T/stderr"
[ "$(cat "$SOCK")" = precious ] || fail "vpmd touched a regular file at its socket path"
rm "$SOCK"

# A stale socket file (nobody listening) is replaced at start.
python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])" "$SOCK"
[ -S "$SOCK" ] || fail "could not create a stale socket"
start_vpmd
grep -q "Replacing stale socket" "$T/vpmd.log" || fail "stale socket not reported"
kill -INT "$VPMD_PID"
wait "$VPMD_PID" || fail "vpmd exited non-zero on SIGINT"
VPMD_PID=
echo "test-daemon: ok"
