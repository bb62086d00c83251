#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Tables, targets and the plot of a ratio sweep (ratio-sweep.sh writes its CSV).

    ratio-sweep-report.py RESULTS.csv [--png PLOT.png]

Per workload: the modeled throughput of each policy at each ratio (the median of the point's
repetitions), relative to the ratio-1 baseline (every page on PM; the vpm runs at ratio 1) and
to the DRAM-only baseline (ratio = pages, one page on PM), both measured in the same sweep;
then vpm against the other policies with the targets: vpm >= 0.95 x oracle at every ratio, and
ahead of (> 1 x) static, random and lru; each the ratio of the medians, with the range of the
ratios of the repetitions measured one after the other. The noise: how far apart the
repetitions of a point are, and the policies at ratio 1 (where every page is on PM whatever
the policy). Adds the relative columns to RESULTS.csv and writes RESULTS-targets.csv next to
it.
"""

import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys

ORACLE_TARGET = 0.95
TIE = 0.005  # a difference below this is within any point's noise
OTHERS = ("static", "random", "lru")
POLICY_ORDER = ("vpm", "static", "random", "lru", "oracle")


def load(path):
    """The runs, and the CSV's columns."""
    with open(path, newline="") as f:
        rd = csv.DictReader(f)
        rows = list(rd)
        fields = list(rd.fieldnames or [])
    for i, r in enumerate(rows):
        r["tput"] = float(r["modeled_ops_per_sec"])
        r.setdefault("rep", "")
        if not r["rep"]:
            r["rep"] = str(i)  # a sweep of one run per point: every run its own
    return rows, fields


def ordered(values, order):
    return [v for v in order if v in values] + sorted(v for v in values if v not in order)


def mark(ok):
    return "met" if ok else "NOT met"


class Point:
    """The runs of one (workload, policy, ratio): their median and spread."""

    def __init__(self, runs):
        self.runs = runs
        self.tput = statistics.median(r["tput"] for r in runs)
        lo = min(r["tput"] for r in runs)
        self.spread = max(r["tput"] for r in runs) / lo - 1 if lo > 0 else 0.0
        self.by_rep = {r["rep"]: r["tput"] for r in runs}


def paired(v, o):
    """vpm / other of the repetitions measured one after the other (same rep)."""
    return [v.by_rep[k] / o.by_rep[k] for k in v.by_rep if k in o.by_rep and o.by_rep[k] > 0]


def pct(x):
    return f"{x:.1%}"


def report(rows):
    """Print the tables; return (rows with relative columns, target rows)."""
    workloads = ordered({r["workload"] for r in rows}, ("zipf-kv", "btree", "scan", "log"))
    targets = []
    summary = []
    spreads = []
    at1_spreads = []
    sizes = {}
    for r in rows:
        k = (r["workload"], r["ratio_label"], r["policy"])
        sizes[k] = sizes.get(k, 0) + 1
    reps = max(sizes.values())
    psi = [float(r["cpu_pressure_pct"]) for r in rows if r.get("cpu_pressure_pct")]
    scale = {r.get("lat_scale") or "1" for r in rows}
    print(f"runs: {len(rows)}; repetitions per point: up to {reps}; latency model x "
          f"{'/'.join(sorted(scale))}")
    if psi:
        print(f"machine load: CPU pressure (some, avg10, at the end of each run) median "
              f"{statistics.median(psi):.0f} %, max {max(psi):.0f} %")
    for wl in workloads:
        rs = [r for r in rows if r["workload"] == wl]
        groups = {}
        for r in rs:
            groups.setdefault((r["ratio_label"], r["policy"]), []).append(r)
        points = {k: Point(v) for k, v in groups.items()}
        spreads += [p.spread for p in points.values() if len(p.runs) > 1]
        dram = next((p for (lab, _), p in points.items() if lab == "dram-only"), None)
        sweep = {(float(lab), pol): p for (lab, pol), p in points.items() if lab != "dram-only"}
        ratios = sorted({k[0] for k in sweep})
        policies = ordered({k[1] for k in sweep}, POLICY_ORDER)
        cell = sweep
        r1 = cell.get((1.0, "vpm"))
        base1 = r1.tput if r1 else None
        based = dram.tput if dram else None
        pages, vcpus = rs[0]["pages"], rs[0]["vcpus"]
        print(f"\n== {wl}: {pages} pages, {vcpus} vCPUs, epoch mode ==")
        print("baselines measured in this sweep (policy vpm; medians):")
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

        print("\nmodeled Mops/s  [relative to ratio 1 | relative to DRAM-only]  "
              "(spread of the repetitions: max/min - 1)")
        print("ratio " + "".join(f"  {p:<28}" for p in policies))
        for ratio in ratios:
            line = f"{ratio:<5g} "
            for p in policies:
                c = cell.get((ratio, p))
                if not c:
                    line += f"  {'-':<28}"
                    continue
                a = f"{c.tput / base1:4.2f}" if base1 else "  - "
                b = f"{c.tput / based:4.2f}" if based else "  - "
                sp = f"{c.spread:4.0%}" if len(c.runs) > 1 else "   -"
                line += f"  {c.tput / 1e6:6.3f} [{a} | {b}] {sp} "
            print(line.rstrip())

        if "vpm" not in policies:
            continue
        cols = [p for p in ("oracle",) + OTHERS if p in policies]
        head = {"oracle": f"vpm/oracle (>= {ORACLE_TARGET})"}
        print("\nvpm against the other policies (ratio of the medians [range of the paired "
              "repetitions]), and the targets")
        print("ratio " + "".join(f"  {head.get(p, f'vpm/{p} (> 1)'):<27}" for p in cols))
        met = {p: 0 for p in cols}
        n = {p: 0 for p in cols}
        ties = {p: 0 for p in cols}
        for ratio in ratios:
            v = cell.get((ratio, "vpm"))
            line = f"{ratio:<5g} "
            t = {"workload": wl, "ratio": f"{ratio:g}"}
            for p in cols:
                o = cell.get((ratio, p))
                if not v or not o or o.tput <= 0:
                    line += f"  {'-':<27}"
                    continue
                q = v.tput / o.tput
                pr = paired(v, o)
                bar = ORACLE_TARGET if p == "oracle" else 1.0
                ok = q >= bar if p == "oracle" else q > bar
                # undecided: the repetitions measured one after the other fall on both sides,
                # or the medians are within TIE of the target (less than a point's noise)
                close = (len(pr) > 1 and min(pr) <= bar <= max(pr)) or abs(q - bar) < TIE
                met[p] += ok
                n[p] += 1
                ties[p] += close
                t[f"vpm_vs_{p}"] = f"{q:.4f}"
                t[f"vpm_vs_{p}_min"] = f"{min(pr):.4f}" if pr else ""
                t[f"vpm_vs_{p}_max"] = f"{max(pr):.4f}" if pr else ""
                t[f"{p}_target_met"] = "yes" if ok else "no"
                t[f"{p}_within_noise"] = "yes" if close else "no"
                rng = f"[{min(pr):.2f}-{max(pr):.2f}]" if len(pr) > 1 else ""
                line += f"  {q:5.2f} {rng:<11} {mark(ok) + ('~' if close else ''):<8}"
            targets.append(t)
            print(line.rstrip())
        at1 = [cell[(1.0, p)].tput for p in policies if (1.0, p) in cell]
        if len(at1) > 1:
            at1_spreads.append((wl, max(at1) / min(at1) - 1))
            print(f"noise: at ratio 1 every page is on PM whatever the policy; the {len(at1)} "
                  f"policies there differ by {pct(max(at1) / min(at1) - 1)} (max/min - 1)")
        ps = [p.spread for p in points.values() if len(p.runs) > 1]
        if ps:
            print(f"noise: repetitions of a point differ by {pct(statistics.median(ps))} "
                  f"(median over the points; max {pct(max(ps))})")
        if any(ties.values()):
            print(f"~: within noise (the paired repetitions fall on both sides of the target, "
                  f"or the medians are within {TIE:.1%} of it)")
        summary.append((wl, {p: (met[p], n[p], ties[p]) for p in cols}))

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
                    k, n, c = m[p]
                    text = f"{k}/{n} " + ("met" if k == n else "NOT met")
                    line += f"  {text + (f' ({c}~)' if c else ''):<22}"
                else:
                    line += f"  {'-':<22}"
            print(line.rstrip())
    if spreads or at1_spreads:
        print("\n== noise, all workloads ==")
        if spreads:
            print(f"repetitions of a point: median spread {pct(statistics.median(spreads))}, "
                  f"90th percentile {pct(sorted(spreads)[int(0.9 * (len(spreads) - 1))])}, "
                  f"max {pct(max(spreads))} (max/min - 1, over {len(spreads)} points)")
        if at1_spreads:
            print("policies at ratio 1 (medians): " +
                  ", ".join(f"{wl} {pct(x)}" for wl, x in at1_spreads))
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
        r1 = [float(r["rel_dram_only"]) for r in rs
              if float(r["ratio"]) == 1.0 and r["policy"] == "vpm"]
        plots = []
        for i, p in enumerate(policies):
            name = f"$d_{wl.replace('-', '_')}_{p}"
            g.append(f"{name} << EOD")
            by_ratio = {}
            for r in rs:
                if r["policy"] == p:
                    by_ratio.setdefault(float(r["ratio"]), []).append(float(r["rel_dram_only"]))
            for ratio in sorted(by_ratio):
                g.append(f"{ratio:g} {statistics.median(by_ratio[ratio]):.4f}")
            g.append("EOD")
            plots.append(f"{name} using 1:2 with linespoints lw 2 pt {i + 5} title '{p}'")
        if r1:
            plots.append(f"{statistics.median(r1):.4f} with lines dt 2 lc rgb 'gray40' "
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
    rows, fields = load(a.csv)
    if not rows:
        sys.exit(f"ratio-sweep-report: {a.csv} has no runs")
    fields = [k for k in fields if k not in ("rel_ratio1", "rel_dram_only")]
    rows, targets = report(rows)
    write_csv(a.csv, rows, fields + ["rel_ratio1", "rel_dram_only"])
    tpath = a.csv[:-4] + "-targets.csv" if a.csv.endswith(".csv") else a.csv + "-targets.csv"
    tfields = ["workload", "ratio"]
    for p in ("oracle",) + OTHERS:
        tfields += [f"vpm_vs_{p}", f"vpm_vs_{p}_min", f"vpm_vs_{p}_max", f"{p}_target_met",
                    f"{p}_within_noise"]
    write_csv(tpath, targets, tfields)
    print(f"\nresults: {shown(a.csv)}, {shown(tpath)}")
    if a.png:
        plot(rows, a.png)


if __name__ == "__main__":
    main()
