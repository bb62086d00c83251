#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The measured part of migration.sh: rounds of 'vm-set ratio 1' on a VM whose pages are in
DRAM, each timed to convergence, with vpmd's demotion batch statistics.

    migration-rounds.py SOCKET VM PAGES ROUNDS MEMCPY_MIB_PER_SEC CSV

Each round: stats; vm-set ratio 1; poll 'vms' every millisecond until the VM reports
converged; stats again. The deltas of migrations.batch_bytes and batch_usec (demotion batches
of 2 MiB or more, as vpmd times them) give the demotion throughput; the target is >= 0.7 x
memcpy bandwidth, judged on the median round. Between rounds 'vm-set ratio PAGES' brings the
pages back to DRAM.
"""

import csv
import os
import statistics
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vpmreq import Client  # noqa: E402

TARGET = 0.7


def wait_converged(c, name, t0, timeout=120.0):
    while True:
        v = c.vm(name)
        if v and v["converged"]:
            return time.monotonic() - t0, v
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"VM '{name}' did not converge within {timeout} s")
        time.sleep(0.001)


def main():
    sock, name, pages, rounds, bw, path = sys.argv[1:7]
    pages, rounds, bw = int(pages), int(rounds), float(bw)
    c = Client(sock)
    rows = []
    for rnd in range(1, rounds + 1):
        before = c.vm_stats(name)
        vb = c.vm(name)
        t0 = time.monotonic()
        c.vm_set(name, ratio=1)
        t_reply = time.monotonic() - t0
        t_conv, va = wait_converged(c, name, t0)
        after = c.vm_stats(name)
        mb, ma = before["migrations"], after["migrations"]
        dbytes = ma["batch_bytes"] - mb["batch_bytes"]
        dusec = ma["batch_usec"] - mb["batch_usec"]
        mibs = dbytes / 2**20 / (dusec / 1e6) if dusec > 0 else 0.0
        rows.append({
            "round": rnd,
            "dram_pages_before": vb["dram_pages"],
            "demotions": ma["demotions"] - mb["demotions"],
            "batches": ma["batches"] - mb["batches"],
            "batch_bytes": dbytes,
            "batch_usec": dusec,
            "batch_mib_per_sec": round(mibs),
            "memcpy_mib_per_sec": round(bw),
            "ratio_to_memcpy": round(mibs / bw, 3),
            "target_met": "yes" if mibs / bw >= TARGET else "no",
            "vm_set_reply_ms": round(t_reply * 1e3, 1),
            "converged_ms": round(t_conv * 1e3, 1),
            "dram_pages_after": va["dram_pages"],
            "pm_pages_after": va["pm_pages"],
        })
        if rnd < rounds:
            # the pages back to DRAM for the next round
            c.vm_set(name, ratio=pages)
            wait_converged(c, name, time.monotonic())
            time.sleep(0.5)

    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)

    print(f"\n{'round':>5} {'DRAM pages':>10} {'demoted':>8} {'batches':>7} {'batch MiB':>9} "
          f"{'batch ms':>8} {'MiB/s':>7} {'/memcpy':>7} {'target >= 0.7':<13} "
          f"{'vm-set reply':>12} {'converged':>10}")
    for r in rows:
        print(f"{r['round']:>5} {r['dram_pages_before']:>10} {r['demotions']:>8} "
              f"{r['batches']:>7} {r['batch_bytes'] / 2**20:>9.1f} {r['batch_usec'] / 1e3:>8.1f} "
              f"{r['batch_mib_per_sec']:>7} {r['ratio_to_memcpy']:>7.3f} "
              f"{'met' if r['target_met'] == 'yes' else 'NOT met':<13} "
              f"{r['vm_set_reply_ms']:>9.1f} ms {r['converged_ms']:>7.1f} ms")
    med = statistics.median(r["ratio_to_memcpy"] for r in rows)
    medmibs = statistics.median(r["batch_mib_per_sec"] for r in rows)
    medconv = statistics.median(r["converged_ms"] for r in rows)
    print(f"\nmemcpy bandwidth {bw:.0f} MiB/s; median demotion throughput {medmibs:.0f} MiB/s = "
          f"{med:.3f} x memcpy: target (>= {TARGET}) {'met' if med >= TARGET else 'NOT met'}")
    print(f"median convergence {medconv:.1f} ms from the vm-set request to 'converged' "
          f"(includes waiting for the next epoch boundary)")


if __name__ == "__main__":
    main()
