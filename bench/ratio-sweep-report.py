#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Tables, targets and the plot of a ratio sweep (ratio-sweep.sh writes its CSV).

    ratio-sweep-report.py RESULTS.csv [--png PLOT.png]

Per workload: the modeled throughput of each policy at each ratio, relative to the ratio-1
baseline (every page on PM; the vpm run at ratio 1) and to the DRAM-only baseline (ratio =
pages, one page on PM), both measured in the same sweep; then vpm against the other policies
with the targets: vpm >= 0.95 x oracle at every ratio, and ahead of (> 1 x) static, random and
lru. Adds the relative columns to RESULTS.csv and writes RESULTS-targets.csv next to it.
"""

import argparse
import csv
import os
import shutil
import subprocess
import sys

ORACLE_TARGET = 0.95
OTHERS = ("static", "random", "lru")
POLICY_ORDER = ("vpm", "static", "random", "lru", "oracle")


def load(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["tput"] = float(r["modeled_ops_per_sec"])
    return rows


def ordered(values, order):
    return [v for v in order if v in values] + sorted(v for v in values if v not in order)


def mark(ok):
    return "met" if ok else "NOT met"


def report(rows):
    """Print the tables; return (rows with relative columns, target rows)."""
    workloads = ordered({r["workload"] for r in rows}, ("zipf-kv", "btree", "scan", "log"))
    targets = []
    summary = []
    for wl in workloads:
        rs = [r for r in rows if r["workload"] == wl]
        dram = next((r for r in rs if r["ratio_label"] == "dram-only"), None)
        sweep = [r for r in rs if r["ratio_label"] != "dram-only"]
        ratios = sorted({float(r["ratio"]) for r in sweep})
        policies = ordered({r["policy"] for r in sweep}, POLICY_ORDER)
        cell = {(float(r["ratio"]), r["policy"]): r for r in sweep}
        r1 = cell.get((1.0, "vpm"))
        base1 = r1["tput"] if r1 else None
        based = dram["tput"] if dram else None
        pages, vcpus = rs[0]["pages"], rs[0]["vcpus"]
        print(f"\n== {wl}: {pages} pages, {vcpus} vCPUs, epoch mode ==")
        print("baselines measured in this sweep (policy vpm):")
        if base1:
            print(f"  ratio 1: every page on a PM frame              {base1 / 1e6:8.3f} Mops/s")
        else:
            print("  ratio 1: not measured (no vpm run at ratio 1)")
        if based:
            print(f"  DRAM-only: ratio {pages} = pages, one page on PM  "
                  f"{based / 1e6:8.3f} Mops/s")
        if base1 and based:
            print(f"  ratio 1 / DRAM-only = {base1 / based:.2f}")
        for r in rs:
            r["rel_ratio1"] = f"{r['tput'] / base1:.4f}" if base1 else ""
            r["rel_dram_only"] = f"{r['tput'] / based:.4f}" if based else ""

        print("\nmodeled Mops/s  [relative to ratio 1 | relative to DRAM-only]")
        print("ratio " + "".join(f"  {p:<21}" for p in policies))
        for ratio in ratios:
            line = f"{ratio:<5g} "
            for p in policies:
                r = cell.get((ratio, p))
                if not r:
                    line += f"  {'-':<21}"
                    continue
                a = f"{r['tput'] / base1:4.2f}" if base1 else "  - "
                b = f"{r['tput'] / based:4.2f}" if based else "  - "
                line += f"  {r['tput'] / 1e6:6.3f} [{a} | {b}] "
            print(line.rstrip())

        if "vpm" not in policies:
            continue
        cols = [p for p in ("oracle",) + OTHERS if p in policies]
        head = {"oracle": f"vpm/oracle (>= {ORACLE_TARGET})"}
        print("\nvpm against the other policies, and the targets")
        print("ratio " + "".join(f"  {head.get(p, f'vpm/{p} (> 1)'):<24}" for p in cols))
        met = {p: 0 for p in cols}
        n = {p: 0 for p in cols}
        for ratio in ratios:
            v = cell.get((ratio, "vpm"))
            line = f"{ratio:<5g} "
            t = {"workload": wl, "ratio": f"{ratio:g}"}
            for p in cols:
                o = cell.get((ratio, p))
                if not v or not o or o["tput"] <= 0:
                    line += f"  {'-':<24}"
                    continue
                q = v["tput"] / o["tput"]
                ok = q >= ORACLE_TARGET if p == "oracle" else q > 1.0
                met[p] += ok
                n[p] += 1
                t[f"vpm_vs_{p}"] = f"{q:.4f}"
                t[f"{p}_target_met"] = "yes" if ok else "no"
                line += f"  {q:5.2f} {mark(ok):<18}"
            targets.append(t)
            print(line.rstrip())
        at1 = [cell[(1.0, p)]["tput"] for p in policies if (1.0, p) in cell]
        if len(at1) > 1:
            print(f"noise: at ratio 1 every page is on PM whatever the policy; the {len(at1)} "
                  f"policies there differ by {max(at1) / min(at1) - 1:.1%} (max/min - 1)")
        summary.append((wl, {p: (met[p], n[p]) for p in cols}))

    if summary:
        print("\n== targets, all workloads (ratios at which each is met) ==")
        cols = ("oracle",) + OTHERS
        print(f"{'workload':<10}" + "".join(
            f"  {('vpm >= 0.95 x oracle' if p == 'oracle' else f'vpm ahead of {p}'):<22}"
            for p in cols))
        for wl, m in summary:
            line = f"{wl:<10}"
            for p in cols:
                if p in m and m[p][1]:
                    k, n = m[p]
                    line += f"  {f'{k}/{n} ' + ('met' if k == n else 'NOT met'):<22}"
                else:
                    line += f"  {'-':<22}"
            print(line.rstrip())
    return rows, targets


def shown(path):
    """A path as the reader would type it: relative when under the current directory."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def write_csv(path, rows, fields):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in fields})


def plot(rows, png):
    """One panel per workload: throughput relative to DRAM-only against the ratio."""
    if not shutil.which("gnuplot"):
        print("ratio-sweep-report: gnuplot is missing (scripts/deps.sh bench): no plot",
              file=sys.stderr)
        return
    workloads = ordered({r["workload"] for r in rows}, ("zipf-kv", "btree", "scan", "log"))
    n = len(workloads)
    ncols = 2 if n > 1 else 1
    nrows = (n + ncols - 1) // ncols
    g = [f"set terminal pngcairo size {700 * ncols},{480 * nrows} font 'sans,10'",
         f"set output '{png}'",
         "set datafile separator whitespace",
         "set logscale x 2",
         "set xtics (1, 1.5, 2, 3, 4, 8)",
         "set xrange [0.9:9]",
         "set xlabel 'consolidation ratio R (PM frames = pages / R)'",
         "set ylabel 'modeled throughput / DRAM-only'",
         "set key top left horizontal maxcols 4 samplen 2",
         "set grid",
         f"set multiplot layout {nrows},{ncols} title "
         "'VPM ratio sweep: modeled guest throughput relative to DRAM-only (ratio = pages)'"]
    for wl in workloads:
        rs = [r for r in rows if r["workload"] == wl and r["ratio_label"] != "dram-only"
              and r.get("rel_dram_only")]
        policies = ordered({r["policy"] for r in rs}, POLICY_ORDER)
        r1 = next((r for r in rs if float(r["ratio"]) == 1.0 and r["policy"] == "vpm"), None)
        plots = []
        for i, p in enumerate(policies):
            name = f"$d_{wl.replace('-', '_')}_{p}"
            g.append(f"{name} << EOD")
            for r in sorted((r for r in rs if r["policy"] == p), key=lambda r: float(r["ratio"])):
                g.append(f"{float(r['ratio']):g} {r['rel_dram_only']}")
            g.append("EOD")
            plots.append(f"{name} using 1:2 with linespoints lw 2 pt {i + 5} title '{p}'")
        if r1:
            plots.append(f"{r1['rel_dram_only']} with lines dt 2 lc rgb 'gray40' "
                         "title 'ratio 1'")
        plots.append("1 with lines dt 1 lc rgb 'gray60' title 'DRAM-only'")
        g.append(f"set title '{wl}'")
        top = max([1.0] + [float(r["rel_dram_only"]) for r in rs])
        g.append(f"set yrange [0:{top * 1.3:.2f}]")
        g.append("plot " + ", ".join(plots))
    g.append("unset multiplot")
    r = subprocess.run(["gnuplot"], input="\n".join(g) + "\n", text=True, capture_output=True)
    if r.returncode != 0:
        print(f"ratio-sweep-report: gnuplot failed: {r.stderr.strip()}", file=sys.stderr)
    else:
        print(f"plot: {shown(png)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("csv")
    ap.add_argument("--png")
    a = ap.parse_args()
    rows = load(a.csv)
    if not rows:
        sys.exit(f"ratio-sweep-report: {a.csv} has no runs")
    fields = [k for k in rows[0] if k not in ("tput", "rel_ratio1", "rel_dram_only")]
    rows, targets = report(rows)
    write_csv(a.csv, rows, fields + ["rel_ratio1", "rel_dram_only"])
    tpath = a.csv[:-4] + "-targets.csv" if a.csv.endswith(".csv") else a.csv + "-targets.csv"
    tfields = ["workload", "ratio"]
    for p in ("oracle",) + OTHERS:
        tfields += [f"vpm_vs_{p}", f"{p}_target_met"]
    write_csv(tpath, targets, tfields)
    print(f"\nresults: {shown(a.csv)}, {shown(tpath)}")
    if a.png:
        plot(rows, a.png)


if __name__ == "__main__":
    main()
