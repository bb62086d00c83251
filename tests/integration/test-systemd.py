#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""vpmd's systemd protocol without systemd: a NOTIFY_SOCKET we read ourselves, the watchdog,
reload and stop notifications, and socket activation through systemd-socket-activate."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BUILD = os.environ["VPM_BUILD"]
VPMD = os.path.join(BUILD, "vpmd", "vpmd")
VPMCTL = os.path.join(BUILD, "cli", "vpmctl")


def fail(msg):
    print("FAIL:", msg, file=sys.stderr)
    sys.exit(1)


class Notify:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.path = path
        self.seen = []

    def wait_for(self, key, timeout=10.0):
        """Collect messages until one has a line starting with key; return that message."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                msg = self.sock.recv(4096).decode()
            except socket.timeout:
                break
            self.seen.append(msg)
            if any(line.startswith(key) for line in msg.split("\n")):
                return msg
        fail("no %s notification; saw %r" % (key, self.seen))


def vpmctl_status(sock):
    out = subprocess.run([VPMCTL, "-s", sock, "-j", "status"], capture_output=True, text=True)
    if out.returncode != 0:
        fail("vpmctl status failed: %s" % out.stderr)
    return json.loads(out.stdout)


def write_conf(tmp, sock):
    conf = os.path.join(tmp, "vpmd.conf")
    with open(conf, "w") as f:
        f.write("[daemon]\nsocket = %s\nstate_dir = %s/state\nlibvirt_uri =\n"
                "[pool p]\npath = %s/pool\nkind = emulated\nsize = 4M\n" % (sock, tmp, tmp))
    return conf


def check_notify(tmp):
    sock = os.path.join(tmp, "vpmd.sock")
    conf = write_conf(tmp, sock)
    notify = Notify(os.path.join(tmp, "notify.sock"))
    env = dict(os.environ, NOTIFY_SOCKET=notify.path, WATCHDOG_USEC="200000")
    # WATCHDOG_PID must name vpmd itself: let the shell exec into it.
    vpmd = subprocess.Popen(["sh", "-c", 'WATCHDOG_PID=$$ exec "$0" "$@"', VPMD,
                             "--foreground", "--config", conf],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ready = notify.wait_for("READY=1")
        # READY=1 comes only once the socket answers
        st = vpmctl_status(sock)
        if "MAINPID=%d" % vpmd.pid not in ready:
            fail("READY message lacks MAINPID: %r" % ready)
        notify.wait_for("STATUS=Serving 1 pool")
        if st["watchdog_usec"] != 200000:
            fail("watchdog not picked up: %r" % st["watchdog_usec"])
        # the event loop pets the watchdog at half the interval
        t0 = time.monotonic()
        for _ in range(3):
            notify.wait_for("WATCHDOG=1", timeout=1.0)
        if time.monotonic() - t0 > 1.0:
            fail("watchdog pings too slow")
        vpmd.send_signal(signal.SIGHUP)
        msg = notify.wait_for("RELOADING=1")
        if "MONOTONIC_USEC=" not in msg:
            fail("RELOADING=1 without MONOTONIC_USEC: %r" % msg)
        notify.wait_for("READY=1")
        vpmd.send_signal(signal.SIGTERM)
        notify.wait_for("STOPPING=1")
        if vpmd.wait(10) != 0:
            fail("vpmd exited %d" % vpmd.returncode)
    finally:
        if vpmd.poll() is None:
            vpmd.kill()
            vpmd.wait()


def check_socket_activation(tmp):
    activator = shutil.which("systemd-socket-activate")
    if not activator:
        fail("systemd-socket-activate is missing (package systemd)")
    sock = os.path.join(tmp, "activated.sock")
    conf = write_conf(tmp, os.path.join(tmp, "configured-but-unused.sock"))
    act = subprocess.Popen([activator, "-l", sock, VPMD, "--foreground", "--config", conf],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        st = vpmctl_status(sock)  # the first connection starts vpmd
        if st["socket_activated"] is not True:
            fail("vpmd did not use the passed socket: %r" % st)
        if os.path.exists(os.path.join(tmp, "configured-but-unused.sock")):
            fail("vpmd bound its configured path although a socket was passed")
        act.send_signal(signal.SIGTERM)
        if act.wait(10) != 0:
            fail("socket-activated vpmd exited %d" % act.returncode)
        if not os.path.exists(sock):
            fail("vpmd removed a socket that systemd owns")
    finally:
        if act.poll() is None:
            act.kill()
            act.wait()


def main():
    tmp = tempfile.mkdtemp(prefix="vpm-systemd.")
    try:
        check_notify(tmp)
        shutil.rmtree(os.path.join(tmp, "state"))
        check_socket_activation(tmp)
    finally:
        shutil.rmtree(tmp)
    print("test-systemd: ok")


if __name__ == "__main__":
    main()
