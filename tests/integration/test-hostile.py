#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Hostile and broken clients against vpmd's control socket.

Garbage, truncated, oversized, deeply nested and wrongly typed requests, pipelining,
byte-at-a-time writers, connection floods, idle connections and clients that never read:
each gets an error reply or a closed connection, and vpmd keeps serving a well-behaved
client throughout, without growing without bound.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

BUILD = os.environ["VPM_BUILD"]
VPMD = os.path.join(BUILD, "vpmd", "vpmd")
MAX_CLIENTS = 8
ROOT_RESERVE = 4


def fail(msg):
    print("FAIL:", msg, file=sys.stderr)
    sys.exit(1)


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(path)
    return s


def recv_reply(s):
    """One NUL-terminated reply, or None if vpmd closed the connection first."""
    buf = b""
    while b"\0" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            return None if not buf else fail("connection closed inside a reply")
        buf += chunk
    msg, _, rest = buf.partition(b"\0")
    if rest:
        fail("bytes after a reply although one request was in flight: %r" % rest[:60])
    return json.loads(msg)


def expect_closed(s, what):
    """vpmd closed the connection: EOF, or a reset when it dropped unread input."""
    try:
        data = s.recv(1)
    except ConnectionResetError:
        return
    if data != b"":
        fail("connection stayed open after %s" % what)


def request(s, obj):
    s.sendall(json.dumps(obj).encode() + b"\0")
    return recv_reply(s)


def expect_error(reply, errno_name, what):
    if reply is None:
        fail("%s: connection closed without an error reply" % what)
    err = reply.get("error")
    if not err or err.get("name") != errno_name:
        fail("%s: expected %s, got %r" % (what, errno_name, reply))
    if reply.get("protocol") != 1 or not err.get("message"):
        fail("%s: malformed error reply %r" % (what, reply))


def status(path):
    with connect(path) as s:
        r = request(s, {"protocol": 1, "method": "status"})
    if not r or "result" not in r:
        fail("status failed: %r" % r)
    return r["result"]


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class GoodClient(threading.Thread):
    """A long-lived client (as an orchestrator's) asking for status in a loop on one
    connection, often enough not to be idle; every request must succeed, floods or not."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path, self.stop, self.count, self.error = path, False, 0, None
        self.sock = connect(path)  # connected before any flood: it holds one of the slots

    def run(self):
        try:
            with self.sock as s:
                while not self.stop:
                    r = request(s, {"protocol": 1, "method": "status"})
                    if not r or "result" not in r:
                        raise RuntimeError("status failed: %r" % r)
                    self.count += 1
                    time.sleep(0.01)
        except Exception as e:  # reported by the main thread
            self.error = e


def check_malformed(path):
    cases = [
        (b"\0", "EBADMSG", "empty message"),
        (b"this is not json\0", "EBADMSG", "garbage"),
        (bytes(range(1, 256)) + b"\0", "EBADMSG", "binary garbage"),
        (b'{"protocol":1,"method":"status"\0', "EBADMSG", "truncated JSON"),
        (b"[1,2,3]\0", "EBADMSG", "array instead of object"),
        (b'{"method":"status"}\0', "EPROTO", "missing protocol"),
        (b'{"protocol":"1","method":"status"}\0', "EINVAL", "protocol as a string"),
        (b'{"protocol":99,"method":"status"}\0', "EPROTONOSUPPORT", "future protocol"),
        (b'{"protocol":1,"method":5}\0', "EINVAL", "method as a number"),
        (b'{"protocol":1,"method":"status","params":[]}\0', "EINVAL", "params as an array"),
        (b'{"protocol":1,"method":"status","params":{"x":1}}\0', "EINVAL", "unexpected param"),
        (b'{"protocol":1,"method":"status","sneaky":true}\0', "EINVAL", "unknown field"),
        (b'{"protocol":1,"method":"selfdestruct"}\0', "EOPNOTSUPP", "unknown method"),
        (b'{"protocol":1,"method":"status","params":' + b"[" * 5000 + b"\0", None,
         "deeply nested"),
        (b'{"protocol":1,"method":"status","params":{"a":' * 40 + b"1" + b"}" * 81 + b"\0",
         None, "nested objects"),
    ]
    # All on one connection: a malformed request costs an error reply, not the connection.
    with connect(path) as s:
        for data, name, what in cases:
            s.sendall(data)
            r = recv_reply(s)
            if name:
                expect_error(r, name, what)
            elif r is None or "error" not in r:
                fail("%s: expected an error reply, got %r" % (what, r))
        r = request(s, {"protocol": 1, "method": "status"})
        if "result" not in r:
            fail("connection unusable after malformed requests: %r" % r)


def check_pipelined_and_slow(path):
    with connect(path) as s:
        req = json.dumps({"protocol": 1, "method": "status"}).encode() + b"\0"
        s.sendall(req + req + req)
        buf = b""
        while buf.count(b"\0") < 3:
            chunk = s.recv(65536)
            if not chunk:
                fail("pipelined requests: connection closed")
            buf += chunk
        replies = [json.loads(m) for m in buf.split(b"\0")[:3]]
        if not all("result" in r for r in replies):
            fail("pipelined requests: %r" % replies)
    with connect(path) as s:
        for b in json.dumps({"protocol": 1, "method": "pools"}).encode() + b"\0":
            s.send(bytes([b]))
        r = recv_reply(s)
        if "result" not in r or "pools" not in r["result"]:
            fail("byte-at-a-time request: %r" % r)


def check_truncated(path):
    # closed mid-message: vpmd just drops it
    s = connect(path)
    s.sendall(b'{"protocol":1,"meth')
    s.close()
    # half-closed mid-message: an error reply, then the connection closes
    with connect(path) as s:
        s.sendall(b'{"protocol":1,"meth')
        s.shutdown(socket.SHUT_WR)
        expect_error(recv_reply(s), "EBADMSG", "half-closed mid-message")
        expect_closed(s, "a truncated request")


def check_oversized(path):
    # 1 MiB without a terminator, and 1 MiB of valid JSON with one: both refused
    for payload in (b"x" * (1 << 20),
                    b'{"protocol":1,"method":"status","params":{"pad":"' + b"a" * (1 << 20) +
                    b'"}}\0'):
        with connect(path) as s:
            try:
                s.sendall(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # vpmd stops reading at its limit; its reply is already queued
            expect_error(recv_reply(s), "EMSGSIZE", "1 MiB request")
            expect_closed(s, "an oversized request")


def check_flood(path):
    conns = []
    try:
        # the well-behaved client holds one slot all along
        for _ in range(MAX_CLIENTS + ROOT_RESERVE - 1):
            conns.append(connect(path))
        # everyone is connected; one more is refused with EBUSY
        with connect(path) as s:
            expect_error(recv_reply(s), "EBUSY", "connection beyond max_clients")
        # the connected ones still work
        r = request(conns[0], {"protocol": 1, "method": "status"})
        if r["result"]["clients"]["connected"] != MAX_CLIENTS + ROOT_RESERVE:
            fail("client count wrong during flood: %r" % r["result"]["clients"])
    finally:
        for c in conns:
            c.close()


def check_idle_timeout(path):
    with connect(path) as s:
        s.settimeout(10)
        t0 = time.monotonic()
        if s.recv(1) != b"":
            fail("idle connection got data")
        dt = time.monotonic() - t0
        if dt < 0.8 or dt > 6:
            fail("idle connection closed after %.1f s, expected about 1 s" % dt)


def check_trickle(path):
    """A byte now and then is not activity: only whole requests keep a connection open."""
    with connect(path) as s:
        s.settimeout(10)
        t0 = time.monotonic()
        try:
            for b in b'{"protocol":1,"method":"status"':
                s.send(bytes([b]))
                time.sleep(0.25)
        except (BrokenPipeError, ConnectionResetError):
            pass
        dt = time.monotonic() - t0
        if dt > 6:
            fail("a trickling client kept its connection for %.1f s" % dt)


def check_never_reads(path):
    """A client that sends forever and never reads holds one reply, not an unbounded queue,
    and is dropped as idle once vpmd has had nothing to do with it for client_idle_timeout."""
    s = connect(path)
    s.setblocking(False)
    req = json.dumps({"protocol": 1, "method": "pools"}).encode() + b"\0"
    sent = 0
    deadline = time.monotonic() + 8
    while True:
        if time.monotonic() > deadline:
            fail("a client that never reads was not dropped")
        try:
            sent += s.send(req * 64)
        except BlockingIOError:
            time.sleep(0.01)
        except (BrokenPipeError, ConnectionResetError):
            break
    s.close()
    return sent


def main():
    tmp = tempfile.mkdtemp(prefix="vpm-hostile.")
    sock = os.path.join(tmp, "vpmd.sock")
    conf = os.path.join(tmp, "vpmd.conf")
    with open(conf, "w") as f:
        f.write("[daemon]\nsocket = %s\nstate_dir = %s/state\nlibvirt_uri =\nmax_clients = %d\n"
                "client_idle_timeout = 1s\nlog_level = warning\n"
                "[pool p]\npath = %s/pool\nkind = emulated\nsize = 4M\n"
                % (sock, tmp, MAX_CLIENTS, tmp))
    log = open(os.path.join(tmp, "vpmd.log"), "w")
    # Under AddressSanitizer freed memory sits in a quarantine (256 MiB by default) that would
    # read as growth; keep it small so that the bound below measures vpmd, not the sanitizer.
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=4").lstrip(":")
    vpmd = subprocess.Popen([VPMD, "--foreground", "--config", conf], stdout=log, stderr=log,
                            env=env)
    try:
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.1)
        status(sock)
        rss0 = rss_kib(vpmd.pid)
        good = GoodClient(sock)
        good.start()

        check_malformed(sock)
        check_pipelined_and_slow(sock)
        check_truncated(sock)
        check_oversized(sock)
        check_flood(sock)
        check_idle_timeout(sock)
        check_trickle(sock)
        sent = check_never_reads(sock)
        for _ in range(3):  # repeat the heavy ones: memory must not creep
            check_oversized(sock)
            check_malformed(sock)

        good.stop = True
        good.join(10)
        if good.error:
            fail("well-behaved client failed meanwhile: %r" % good.error)
        if good.count < 10:
            fail("well-behaved client was starved: %d requests" % good.count)
        if vpmd.poll() is not None:
            fail("vpmd died (exit %s)" % vpmd.returncode)
        st = status(sock)
        rss1 = rss_kib(vpmd.pid)
        if st["clients"]["protocol_errors"] < 20:
            fail("protocol errors not counted: %r" % st["clients"])
        if st["clients"]["refused"] < 1 or st["clients"]["idle_closed"] < 1:
            fail("refusals or idle closes not counted: %r" % st["clients"])
        if rss1 - rss0 > 32 * 1024:
            fail("vpmd grew from %d to %d KiB" % (rss0, rss1))
        print("test-hostile: ok (good client: %d requests; never-reading client pushed %d "
              "bytes; RSS %d -> %d KiB)" % (good.count, sent, rss0, rss1))
    finally:
        if vpmd.poll() is None:
            vpmd.send_signal(signal.SIGTERM)
            try:
                vpmd.wait(10)
            except subprocess.TimeoutExpired:
                vpmd.kill()
        log.close()
        if os.environ.get("VPM_KEEP_TMP"):
            print("kept", tmp)
        else:
            shutil.rmtree(tmp)
    if vpmd.returncode != 0:
        fail("vpmd exited %d on SIGTERM" % vpmd.returncode)


if __name__ == "__main__":
    main()
