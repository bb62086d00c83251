#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A stand-in vpmd for the client tests: one reply per connection, over vpmd's framing.

    fake-vpmd.py SOCKET reply FILE   every request gets {"result": <the JSON in FILE>}, FILE
                                     read again for each request (tests change it)
    fake-vpmd.py SOCKET hook LOG     requests are appended to LOG (one JSON line each); a
                                     hook request for VM 'shop' at prepare or reconnect is
                                     refused with ENOSPC and a two-line message, any other
                                     gets {"action": "attached", "message": "VM 'D': OP SUBOP done"}

The socket appears (renamed into place) only once it listens.
"""
import json
import os
import socket
import sys


def reply_from_file(path, _req):
    with open(path, "rb") as f:
        return b'{"protocol": 1, "result": ' + f.read().strip() + b"}"


def reply_to_hook(log, req):
    with open(log, "a") as f:
        f.write(json.dumps(req) + "\n")
    p = req.get("params", {})
    if p.get("domain") == "shop" and p.get("op") in ("prepare", "reconnect"):
        reply = {"error": {"errno": 28, "name": "ENOSPC", "message":
                           "VM 'shop' does not fit: needs 16384 PM frames, 2000 free in pool "
                           "'pm0'\nfree frames or lower its ratio"}}
    else:
        reply = {"result": {"action": "attached", "message":
                            "VM '%s': %s %s done" % (p.get("domain"), p.get("op"),
                                                     p.get("subop"))}}
    reply["protocol"] = 1
    return json.dumps(reply).encode()


def main():
    path, mode, arg = sys.argv[1:4]
    answer = {"reply": reply_from_file, "hook": reply_to_hook}[mode]
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path + ".tmp")
    srv.listen(8)
    os.rename(path + ".tmp", path)
    while True:
        conn, _ = srv.accept()
        buf = b""
        while not buf.endswith(b"\0"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            buf += chunk
        if buf.endswith(b"\0"):
            conn.sendall(answer(arg, json.loads(buf[:-1])) + b"\0")
        conn.close()


main()
