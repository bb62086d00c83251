#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A small client of vpmd's control protocol for the benchmarks.

The protocol (vpmd(8)): one JSON object per message, NUL-terminated, over an AF_UNIX stream
socket; one request in flight per connection.

    request  {"protocol": 1, "method": "stats", "params": {...}}
    reply    {"protocol": 1, "result": {...}}  or  {"protocol": 1, "error": {...}}

As a module:

    with Client("/path/vpmd.sock") as c:
        c.vm_set("kv1", ratio=2, policy="lru")
        s = c.vm_stats("kv1")          # the STATS object of one VM
        c.vms()                        # the VM summaries

As a command (prints the result as JSON; exit 1 with the error on stderr):

    vpmreq.py -s SOCKET METHOD [KEY=VALUE...]     e.g. vm-set name=kv1 ratio=2 policy=lru
    vpmreq.py -s SOCKET wait-vm NAME [SECONDS]    until the VM is attached
    vpmreq.py -s SOCKET wait-gone NAME [SECONDS]  until it is no longer attached
    vpmreq.py -s SOCKET wait-until NAME EXPR [SECONDS [INTERVAL]]
        until the Python expression EXPR is true of the VM's stats s and summary v, e.g.
        "s['pages']['image'] == 0"; prints {"elapsed_sec", "stats", "vm"} when it is

VALUEs are JSON when they parse as JSON (numbers, true/false), strings otherwise.
"""

import argparse
import json
import socket
import sys
import time

PROTOCOL = 1
REPLY_MAX = 16 * 1024 * 1024


class VpmError(Exception):
    """vpmd answered with an error."""

    def __init__(self, method, error):
        self.method = method
        self.errno = error.get("errno", 0)
        self.name = error.get("name", "")
        self.message = error.get("message", "")
        super().__init__(f"{method}: {self.name or self.errno}: {self.message}")


class Client:
    def __init__(self, path, timeout=30.0):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""

    def close(self):
        if self.sock:
            self.sock.close()
            self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def request(self, method, params=None):
        msg = {"protocol": PROTOCOL, "method": method}
        if params:
            msg["params"] = params
        self.sock.sendall(json.dumps(msg).encode() + b"\0")
        while b"\0" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"{method}: vpmd closed the connection")
            self.buf += chunk
            if len(self.buf) > REPLY_MAX:
                raise ConnectionError(f"{method}: reply larger than {REPLY_MAX} bytes")
        text, _, self.buf = self.buf.partition(b"\0")
        reply = json.loads(text)
        if "error" in reply:
            raise VpmError(method, reply["error"])
        return reply.get("result", {})

    # ---- the methods the benches use ----

    def status(self):
        return self.request("status")

    def vms(self):
        return self.request("vms")["vms"]

    def vm(self, name):
        """The summary of one attached VM, or None."""
        for v in self.vms():
            if v["name"] == name:
                return v
        return None

    def vm_show(self, name):
        return self.request("vm-show", {"name": name})["vm"]

    def stats(self, name=None):
        return self.request("stats", {"name": name} if name else None)

    def vm_stats(self, name):
        """The STATS object of one VM."""
        return self.stats(name)["vms"][0]["stats"]

    def vm_set(self, name=None, ratio=None, mode=None, policy=None, priority=None):
        """Change one VM (name) or, with name None, all of them."""
        p = {"name": name} if name else {"all": True}
        for k, v in (("ratio", ratio), ("mode", mode), ("policy", policy),
                     ("priority", priority)):
            if v is not None:
                p[k] = v
        return self.request("vm-set", p)["vms"]

    def wait_until(self, name, pred, timeout=30.0, interval=0.05):
        """Until pred(stats, summary) is true of the VM; returns (seconds, stats, summary)."""
        t0 = time.monotonic()
        while True:
            v = self.vm(name)
            if v is None:
                raise VpmError("vms", {"name": "ENOENT", "message": f"no VM named '{name}'"})
            s = self.vm_stats(name)
            if pred(s, v):
                return time.monotonic() - t0, s, v
            if time.monotonic() - t0 >= timeout:
                raise TimeoutError(f"VM '{name}': condition not met within {timeout} s")
            time.sleep(interval)

    def wait_vm(self, name, timeout=30.0, gone=False, interval=0.02):
        """Until the VM is attached (or, gone=True, no longer attached)."""
        end = time.monotonic() + timeout
        while True:
            v = self.vm(name)
            if (v is None) == gone:
                return v
            if time.monotonic() >= end:
                state = "detached" if gone else "attached"
                raise TimeoutError(f"VM '{name}' was not {state} within {timeout} s")
            time.sleep(interval)


def _value(text):
    try:
        return json.loads(text)
    except ValueError:
        return text


def main(argv=None):
    ap = argparse.ArgumentParser(description="Send one request to vpmd; print the result.")
    ap.add_argument("-s", "--socket", default="/run/vpmd/vpmd.sock")
    ap.add_argument("method")
    ap.add_argument("args", nargs="*")
    a = ap.parse_args(argv)
    try:
        with Client(a.socket) as c:
            if a.method in ("wait-vm", "wait-gone"):
                if not a.args:
                    ap.error(f"{a.method} NAME [SECONDS]")
                timeout = float(a.args[1]) if len(a.args) > 1 else 30.0
                r = c.wait_vm(a.args[0], timeout, gone=a.method == "wait-gone")
                print(json.dumps(r))
                return 0
            if a.method == "wait-until":
                if len(a.args) < 2:
                    ap.error("wait-until NAME EXPR [SECONDS [INTERVAL]]")
                expr = compile(a.args[1], "EXPR", "eval")
                timeout = float(a.args[2]) if len(a.args) > 2 else 30.0
                interval = float(a.args[3]) if len(a.args) > 3 else 0.05
                dt, s, v = c.wait_until(a.args[0], lambda s, v: eval(expr, {}, {"s": s, "v": v}),
                                        timeout, interval)
                print(json.dumps({"elapsed_sec": dt, "stats": s, "vm": v}))
                return 0
            params = {}
            for kv in a.args:
                k, sep, v = kv.partition("=")
                if not sep:
                    ap.error(f"'{kv}' is not KEY=VALUE")
                params[k] = _value(v)
            print(json.dumps(c.request(a.method, params)))
    except (VpmError, OSError, TimeoutError, ValueError) as e:
        print(f"vpmreq: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
