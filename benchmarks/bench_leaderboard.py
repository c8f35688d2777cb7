"""One-command leaderboard: wall time of ``eeg2fmri benchmark --models all``.

Simulates a BIDS dataset (``--subjects`` x ``--minutes``, default 4 x 10 min, seed 0) unless
``--bids`` is given, then runs ``eeg2fmri benchmark BIDS --models all --protocol PROTOCOL`` in a
fresh process (so the device choice is made before torch is imported) and prints a table: total
wall time, the time spent preparing each representation, and every model's fit time summed over
folds, next to the issue's targets (<= 10 min on a 2-core CPU, <= 2 min on one GPU).

    python benchmarks/bench_leaderboard.py --device cpu  [--threads 2] [--protocol loso]
    python benchmarks/bench_leaderboard.py --device cuda [--jobs 4]

``--device cpu`` hides every GPU (``CUDA_VISIBLE_DEVICES=``); pin cores with ``taskset -c 0,1``
to reproduce a 2-core machine on a larger one.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bids", type=Path, default=None, help="BIDS root (default: simulate one)")
    ap.add_argument("--subjects", type=int, default=4)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--protocol", default="loso")
    ap.add_argument("--models", nargs="+", default=["all"])
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch/BLAS threads (default: all cores)")
    ap.add_argument("--jobs", type=int, default=1, help="benchmark --jobs: folds run at once in worker processes")
    ap.add_argument("--out", type=Path, default=None, help="benchmark output folder (default: temporary)")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bids = args.bids
        t_sim = 0.0
        if bids is None:
            bids = tmp / "bids"
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "eeg2fmri", "simulate", str(bids), "--subjects", str(args.subjects),
                            "--minutes", str(args.minutes), "--seed", str(args.seed)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            t_sim = time.perf_counter() - t0
        out = args.out or tmp / "bench"
        env = dict(os.environ)
        if args.device == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = ""
        if args.threads:
            for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
                env[k] = str(args.threads)
        cmd = [sys.executable, "-m", "eeg2fmri", "benchmark", str(bids), "--protocol", args.protocol, "--models", *args.models,
               "--out", str(out), "--overwrite", "-q", "-v", "--device", args.device, "--jobs", str(args.jobs)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            print(proc.stdout[-4000:], proc.stderr[-4000:], sep="\n")
            return proc.returncode
        board = json.loads((out / "leaderboard.json").read_text())
        fits = board.get("fits", {})
        rows = board.get("leaderboard", [])
        prep = {p.name: p for p in sorted(out.glob("prepared*")) if (p / "manifest.json").exists()}

    import platform

    target = 600.0 if args.device == "cpu" else 120.0
    print(f"## benchmark --models {' '.join(args.models)} --protocol {args.protocol}: {args.subjects} subjects x {args.minutes:g} min "
          f"(simulated, seed {args.seed}; simulation {t_sim:.0f} s, not counted)")
    print(f"device {args.device}, {len(os.sched_getaffinity(0))} usable cores, threads {args.threads or 'all'}, jobs {args.jobs}, {platform.processor() or platform.machine()}")
    print()
    print("| what | seconds |")
    print("|---|---:|")
    total_fit = 0.0
    for name, f in fits.items():
        fs = f.get("fit_seconds")
        if fs is not None:
            total_fit += float(fs)
            ep = f" (epochs per fold: {', '.join(str(e) for e in f['epochs'])})" if f.get("epochs") else ""
            print(f"| fit {name} (all folds){ep}{' FAILED' if f.get('error') else ''} | {float(fs):.1f} |")
    print(f"| fits together | {total_fit:.1f} |")
    print(f"| prepared representations | {', '.join(prep) or '-'} |")
    timings = board.get("timings") or {}
    for rep, s in (timings.get("prepare_s") or {}).items():
        print(f"| prepare/load {rep} | {float(s):.1f} |")
    for rep, s in (timings.get("run_s") or {}).items():
        print(f"| fit + score the group {rep} (all folds; groups overlap with --jobs > 1) | {float(s):.1f} |")
    for rep, folds in (timings.get("folds") or {}).items():
        for part in ("fit", "score", "calibration"):
            print(f"| {part}: group {rep} (sum over folds, in the worker that ran each) | {sum(float(f.get(part, 0)) for f in folds):.1f} |")
    if "startup_s" in timings:
        print(f"| the command's start-up (imports, model registry, argument checks) | {float(timings['startup_s']):.1f} |")
    if "total_s" in timings:
        print(f"| inside the benchmark command (after its imports) | {float(timings['total_s']):.1f} |")
        rest = wall - float(timings["total_s"]) - float(timings.get("startup_s", 0.0))
        print(f"| the rest: interpreter start, writing the leaderboard and report, exit | {rest:.1f} |")
    print(f"| **total wall** | **{wall:.1f}** |")
    print()
    print("| model | median r |")
    print("|---|---:|")
    for r in rows:
        mr = r.get("median_r")
        print(f"| {r.get('name')} | {'-' if mr is None else f'{float(mr):.3f}'} |")
    print()
    verdict = "met" if wall <= target else "missed"
    print(f"target <= {target:.0f} s on {'a 2-core CPU' if args.device == 'cpu' else 'one GPU'}: {verdict} ({wall:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
