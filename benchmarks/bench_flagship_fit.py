"""Flagship fit time on the CPU, next to its validation and test r (issue 14, target 1).

For every seed a BIDS dataset of ``--subjects`` x ``--minutes`` is simulated (package simulator,
reused from ``--out`` when present) and prepared with the package defaults; then ``eeg2fmri_net``
is fitted on the ``within`` fold (the benchmark's split: validation and test spans separated by
the temporal gap) once per training variant:

* ``recommended`` - ``EEG2fMRINet.recommended_train_config`` as it is (the baseline);
* each ``--variant NAME='{"optimizer": {...}, "hparams": {...}}'`` - the recommended config with
  those optimizer keys and model hyperparameters replaced.

Printed per seed and variant: fit seconds (``fit_model``, the whole call: training, restoring the
best epoch, calibration and the stacked linear path), epochs run, the best validation r of the
network (the early-stopping monitor), the validation r of the blend, and the test median voxel r
(mean over test subjects). A variant is only an improvement if its validation r is not lower
(the issue: "at equal or better validation r"); the test r is printed as a check, never used to
choose.

Threads: ``--threads`` torch/BLAS threads per fit. Pin the process to cores to reproduce a 2-core
machine on a larger one (``taskset -c 0,1``); ``--parallel N`` runs the variants in N processes
pinned to disjoint blocks of ``--threads`` cores (only where the machine has N x threads cores).

    python benchmarks/bench_flagship_fit.py --out /tmp/ffit [--seeds 0 1] [--subjects 4] [--minutes 10]
        [--variant b256='{"optimizer": {"batch_size": 256, "lr": 0.006}}'] [--threads 2] [--parallel 4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def _dataset(out: Path, seed: int, subjects: int, minutes: float):
    from eeg2fmri.datasets.prepared import load_prepared, prepare
    from eeg2fmri.simulate import simulate_dataset

    out = Path(out)
    root = out / f"bids_s{seed}_n{subjects}_m{minutes:g}"
    if not (root / "dataset_description.json").exists():
        simulate_dataset(root, n_subjects=subjects, minutes=minutes, seed=seed, overwrite=root.exists(), progress_bar=False)
    prep = out / f"prepared_s{seed}_n{subjects}_m{minutes:g}"
    if not (prep / "manifest.json").exists():
        prepare(root, prep, {}, progress_bar=False)
    return load_prepared(prep)


def _fit_one(prepared_args: tuple, variant: dict, threads: int) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    from eeg2fmri.datasets.targets import split_targets
    from eeg2fmri.evaluation.protocol import evaluate_models
    from eeg2fmri.models import get_model_class
    from eeg2fmri.training import fit_model
    from eeg2fmri.workflows.benchmark import _folds

    ds = _dataset(*prepared_args)
    (split,) = _folds(ds, "within", 5, {})
    targets = split_targets(ds, split)
    rec = get_model_class("eeg2fmri_net").recommended_train_config
    cfg = {**rec, "optimizer": {**rec["optimizer"], **variant.get("optimizer", {})}, "seed": 0,
           "trainer": {"accelerator": "cpu", "log": [], "progress_bar": False}}
    hp = {"seed": 0, **variant.get("hparams", {})}
    t0 = time.perf_counter()
    res = fit_model(ds, split, "eeg2fmri_net", hp, targets=targets, train_config=cfg)
    dt = time.perf_counter() - t0
    ev = evaluate_models(ds, split, targets, {"eeg2fmri_net": res.model}, fit_missing=False, n_boot=2, random_state=0)
    test_r = float(np.mean([np.nanmedian(v["_r"]["eeg2fmri_net"]) for v in ev["per_subject"].values()]))
    info = res.info
    return {"fit_s": dt, "epochs": info.get("epochs"), "val_r": info.get("best_score"), "val_r_blend": info.get("val_r_blend"),
            "test_r": test_r, "threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="folder for the simulated and prepared datasets (reused)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--subjects", type=int, default=4)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--variant", action="append", default=[], help="NAME=JSON with optimizer and/or hparams overrides")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--parallel", type=int, default=1, help="variants at once, each pinned to its own block of --threads cores")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(args.threads))
    if args.child:
        job = json.loads(args.child)
        print(json.dumps(_fit_one(tuple(job["data"]), job["variant"], args.threads)))
        return 0
    variants = {"recommended": {}}
    for v in args.variant:
        name, _, spec = v.partition("=")
        variants[name] = json.loads(spec)
    args.out.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:  # simulate and prepare once, before any timed fit
        _dataset(args.out, seed, args.subjects, args.minutes)
    jobs = [(seed, name) for seed in args.seeds for name in variants]
    cores = sorted(os.sched_getaffinity(0))
    blocks = [cores[i * args.threads:(i + 1) * args.threads] for i in range(max(1, args.parallel))]
    if args.parallel > 1 and len(cores) < args.parallel * args.threads:
        ap.error(f"--parallel {args.parallel} x --threads {args.threads} needs {args.parallel * args.threads} cores, found {len(cores)}")
    results: dict = {}
    running: list = []
    t_all = time.perf_counter()
    while jobs or running:
        while jobs and len(running) < len(blocks):
            seed, name = jobs.pop(0)
            used = {b for _, _, _, b in running}
            block = next(i for i in range(len(blocks)) if i not in used)
            child = json.dumps({"data": [str(args.out), seed, args.subjects, args.minutes], "variant": variants[name]})
            cmd = [sys.executable, __file__, "--out", str(args.out), "--threads", str(args.threads), "--child", child]
            if args.parallel > 1:
                cmd = ["taskset", "-c", ",".join(map(str, blocks[block])), *cmd]
            running.append((seed, name, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), block))
        time.sleep(0.5)
        for item in list(running):
            seed, name, proc, _ = item
            if proc.poll() is not None:
                out, err = proc.communicate()
                running.remove(item)
                if proc.returncode:
                    print(f"seed {seed} {name}: failed\n{err[-3000:]}", file=sys.stderr)
                    continue
                results[(seed, name)] = json.loads(out.strip().splitlines()[-1])
                r = results[(seed, name)]
                print(f"  seed {seed} {name}: fit {r['fit_s']:.1f} s, {r['epochs']} epochs, val r {r['val_r']:.4f}, test r {r['test_r']:.4f}", flush=True)
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        commit = "unknown"
    print(f"\n## eeg2fmri_net fit, within fold, {args.subjects} subjects x {args.minutes:g} min (simulated), {args.threads} threads per fit"
          f"{f', {args.parallel} fits at once on disjoint cores' if args.parallel > 1 else ''}\n")
    print("| variant | config | seed | fit s | epochs | val r (network) | val r (blend) | test r |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for (seed, name), r in sorted(results.items(), key=lambda kv: (list(variants).index(kv[0][1]), kv[0][0])):
        blend = r["val_r_blend"]
        print(f"| {name} | {json.dumps(variants[name]) if variants[name] else '-'} | {seed} | {r['fit_s']:.1f} | {r['epochs']} | {r['val_r']:.4f} | "
              f"{'-' if blend is None else f'{blend:.4f}'} | {r['test_r']:.4f} |")
    print(f"\ntarget: <= 15 s per fit on 2 CPU cores at equal or better validation r; {time.perf_counter() - t_all:.0f} s in all; commit {commit}; "
          f"command: python benchmarks/bench_flagship_fit.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
