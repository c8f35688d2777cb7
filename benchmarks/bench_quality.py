"""Prediction quality of the flagship model against ridge_hrf, the baselines, the published models and the ceilings.

For every simulator seed, simulates ``--subjects`` subjects x ``--minutes``
minutes (default 6 mm grid), prepares the representations the models need
(the flagship's preferred input -- ``tangent`` windows, whose band-power block
its ``ridge_hrf`` reference reads; ``--flagship-input bandpower`` for band power
-- raw EEG and STFT for the published models and the flagship's raw front end)
and runs :func:`eeg2fmri.workflows.benchmark.run_benchmark` under
each protocol:

* ``within``: each run's later 20 % is the test span, the 20 % before it the
  validation span, with a gap of (EEG window + 16 s) between spans;
* ``loso``: every subject held out in turn (validation: the later span of
  the training subjects' runs).

Every model is trained with :func:`eeg2fmri.training.fit_model` (Lightning
for the torch models); early stopping and checkpoint choice use the
validation windows only, never the test windows. The flagship uses its
recommended training config (``EEG2fMRINet.recommended_train_config``);
``calhas2022`` the settings of ``examples/train_calhas2022.yaml`` (MSE + 0.5
correlation + latent cosine + channel regulariser, at most 60 epochs); the
raw-EEG published models a generic one (AdamW, lr 1e-3, batch 32, up to 60
epochs, patience 10, checkpoint on validation r). Each group of models is scored
together with its own ``ridge_hrf`` reference (for raw/STFT data, ridge on
band power computed from the same data), the subject-mean baseline, the
time-shifted null and the ground-truth oracle and noise ceilings.

Prints one table per seed and protocol and a summary over seeds:
median voxel r (mean over test subjects; 95 % CI from the per-subject block
bootstrap; for the time-shifted null, the 95th percentile of the median r over
50 circular shifts, "p95"), the paired difference to ridge_hrf with its CI and p-value, R²,
fraction of the oracle ceiling, fit time and parameter count.

Usage::

    python benchmarks/bench_quality.py [--seeds 0 1] [--protocols within loso] [--published] [--raw]
        [--subjects 4] [--minutes 8] [--sim JSON] [--cache DIR] [--threads 2] [--accelerator cpu|gpu]
        [--json results.json]

Runtime on a shared 2-core CPU: about 15 minutes per seed for the flagship,
ridge_hrf and mean (within + loso); the published models (``--published``)
and the raw front end (``--raw``) train on raw/STFT windows and take much
longer.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

#: Generic training config for the published raw-EEG models (validation-only model selection).
PUBLISHED_TRAIN_CONFIG = {"optimizer": {"lr": 1e-3, "batch_size": 32, "max_epochs": 60, "patience": 10, "monitor": "val_r"}}
#: calhas2022: the settings of examples/train_calhas2022.yaml (its loss terms included), at most 60 epochs, float32 on the CPU,
#: early stopping on the validation loss: the config the README's all-models quality table was measured with. ``eeg2fmri
#: benchmark`` uses ``Calhas2022.recommended_train_config`` instead, which monitors the validation r since 2026-12-04.
CALHAS_TRAIN_CONFIG = {
    "optimizer": {"lr": 1e-3, "weight_decay": 1e-4, "batch_size": 16, "max_epochs": 60, "patience": 10, "monitor": "val_loss",
                  "gradient_clip": 1.0, "scheduler": "cosine"},
    "loss": {"mse": 1.0, "corr": 0.5, "latent_cosine": 1.0, "organize_channels": 0.01},
}
PUBLISHED_RAW = ["bricman_fc", "bricman_conv", "bricman_transformer", "beira"]
PUBLISHED_STFT = ["calhas2022"]
#: EEG work rate for preparation: an integer ratio to the simulator's 250 Hz.
PREPARE = {"work_sfreq": 125.0}


def _groups(args: argparse.Namespace) -> list[dict]:
    from eeg2fmri.models.flagship import EEG2fMRINet

    flagship_cfg = EEG2fMRINet.recommended_train_config
    # the flagship on its preferred input (tangent windows since 2026-12-04; its reference reads their band-power block)
    rep = args.flagship_input or EEG2fMRINet.input_kinds[0]
    groups = [{"name": rep, "representation": rep, "models": ["eeg2fmri_net"], "config": flagship_cfg}]
    if args.raw:
        groups.append({"name": "raw (flagship)", "representation": "raw", "models": ["eeg2fmri_net"], "config": flagship_cfg})
    if args.published:
        groups.append({"name": "raw (published)", "representation": "raw", "models": list(PUBLISHED_RAW), "config": PUBLISHED_TRAIN_CONFIG})
        groups.append({"name": "stft (published)", "representation": "stft", "models": list(PUBLISHED_STFT), "config": CALHAS_TRAIN_CONFIG})
    return groups


def _dataset(cache: Path, seed: int, representation: str, args: argparse.Namespace):
    from eeg2fmri.datasets import load_prepared
    from eeg2fmri.datasets.prepared import prepare
    from eeg2fmri.simulate import simulate_dataset

    tag = "" if not args.sim else "_" + hashlib.sha1(json.dumps(args.sim, sort_keys=True).encode()).hexdigest()[:8]
    bids = cache / f"sim_s{seed}_n{args.subjects}_m{args.minutes:g}{tag}"
    if not (bids / "dataset_description.json").exists():
        simulate_dataset(bids, n_subjects=args.subjects, minutes=args.minutes, seed=seed, progress_bar=False, overwrite=bids.exists(), **args.sim)
    out = cache / f"{bids.name}_{representation}"
    prepare(bids, out, {**PREPARE, "representation": representation}, progress_bar=False, overwrite=True)
    return load_prepared(out)


def _fmt(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.{digits}f}"


def _ci(v) -> str:
    return "-" if not v else f"[{_fmt(v[0])}, {_fmt(v[1])}]"


def _rows(bench: dict, group: dict) -> list[dict]:
    """Flat rows of one run_benchmark result: models, reference, baseline, null, ceilings."""
    g = bench["results"]["group"]
    rows = []
    for r in bench["leaderboard"]:
        if r.get("error"):
            rows.append({"model": r["name"], "input": group["representation"], "error": r["error"]})
            continue
        role = r["role"]
        name = r["name"] if role != "null" else f"time-shifted null ({r['name'].split('(')[-1].rstrip(')')})"
        rows.append({"model": name, "input": group["representation"], "role": role, "median_r": r.get("median_r"), "median_r_ci": r.get("median_r_ci"),
                     "diff": r.get("diff_vs_reference"), "diff_ci": r.get("diff_ci"), "p": r.get("p_value"), "r2": r.get("r2"),
                     "oracle_fraction": r.get("fraction_of_oracle"), "fit_s": r.get("fit_seconds"), "n_params": r.get("n_params"),
                     "null_p95": r.get("null_p95_median_r")})
    if "ceilings" in g:
        rows.append({"model": "oracle ceiling (EEG-visible)", "input": "ground truth", "role": "ceiling", "median_r": g["ceilings"]["oracle_median_r"]})
        rows.append({"model": "noise ceiling", "input": "ground truth", "role": "ceiling", "median_r": g["ceilings"]["noise_median_r"]})
    return rows


def _table(rows: list[dict]) -> str:
    head = ["model", "input", "median r", "95% CI", "Δr vs ridge_hrf", "Δ 95% CI", "p", "R²", "÷ oracle", "fit s", "params"]
    body = []
    for r in rows:
        if r.get("error"):
            body.append([r["model"], r["input"], "not trained: " + r["error"][:70]] + [""] * 8)
            continue
        if r.get("role") == "reference":
            name = r["model"] + " (reference)"
        elif r.get("role") == "baseline":
            name = r["model"] + " (subject mean)"
        else:
            name = r["model"]
        ci_cell = _ci(r.get("median_r_ci")) if r.get("role") != "null" or r.get("null_p95") is None else f"p95 {_fmt(r['null_p95'])}"
        body.append([name, r["input"], _fmt(r.get("median_r")), ci_cell, _fmt(r.get("diff")), _ci(r.get("diff_ci")),
                     "-" if r.get("p") is None else ("<0.001" if r["p"] < 0.001 else f"{r['p']:.3f}"), _fmt(r.get("r2")),
                     _fmt(r.get("oracle_fraction")), _fmt(r.get("fit_s"), 1), "-" if r.get("n_params") is None else f"{r['n_params']:,}"])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    return "\n".join("  ".join(str(x).ljust(w) if i < 2 else str(x).rjust(w) for i, (x, w) in enumerate(zip(row, widths))) for row in [head] + body)


def _summary(all_rows: dict) -> str:
    """Mean over seeds per (model, input) and protocol."""
    protocols = sorted({p for (_, p) in all_rows}, key=["within", "loso"].index)
    acc: dict[tuple, dict[str, dict[str, list]]] = {}
    order: list[tuple] = []
    for (_, proto), rows in all_rows.items():
        for r in rows:
            if r.get("error"):
                continue
            key = (r["model"], r["input"])
            if key not in acc:
                acc[key] = {}
                order.append(key)
            d = acc[key].setdefault(proto, {"median_r": [], "r2": [], "oracle_fraction": [], "diff": []})
            for k in d:
                if r.get(k) is not None and math.isfinite(r[k]):
                    d[k].append(r[k])
    head = ["model", "input"]
    for p in protocols:
        head += [f"{p} r", f"{p} Δr", f"{p} R²", f"{p} ÷oracle"]
    body = []
    seen_ceiling = set()
    for key in order:
        if key[1] == "ground truth":
            if key[0] in seen_ceiling:
                continue
            seen_ceiling.add(key[0])
        row = list(key)
        for p in protocols:
            d = acc[key].get(p, {})
            row += [_fmt(sum(v) / len(v)) if v else "-" for v in (d.get("median_r"), d.get("diff"), d.get("r2"), d.get("oracle_fraction"))]
        body.append(row)
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    return "\n".join("  ".join(str(x).ljust(w) if i < 2 else str(x).rjust(w) for i, (x, w) in enumerate(zip(row, widths))) for row in [head] + body)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="simulator seeds (default 0 1)")
    ap.add_argument("--protocols", nargs="+", default=["within", "loso"], choices=["within", "loso"])
    ap.add_argument("--subjects", type=int, default=4)
    ap.add_argument("--minutes", type=float, default=8.0)
    ap.add_argument("--sim", type=json.loads, default={}, metavar="JSON",
                    help='other simulator settings (SimulationConfig fields), e.g. \'{"hemodynamics": "balloon", "n_channels": 64}\'')
    ap.add_argument("--published", action="store_true", help="also train the published models (raw and STFT inputs; slow on a CPU)")
    ap.add_argument("--raw", action="store_true", help="also train the flagship on raw EEG (learned filter bank; slow on a CPU)")
    ap.add_argument("--model-seed", type=int, default=0, help="seed of model initialisation and training order")
    ap.add_argument("--n-boot", type=int, default=200, help="block-bootstrap resamples per subject")
    ap.add_argument("--cache", type=Path, default=None, help="folder for simulated/prepared data (kept; default: a temporary folder)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--accelerator", default="cpu", choices=["cpu", "gpu", "auto"],
                    help="where the torch models train (default cpu; ridge and evaluation always run on the CPU)")
    ap.add_argument("--json", type=Path, default=None, help="write every table row as JSON")
    ap.add_argument("--flagship-input", default=None, choices=["tangent", "bandpower"],
                    help="the flagship's input (default: its preferred one, EEG2fMRINet.input_kinds[0])")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import torch

    from eeg2fmri.utils.logs import set_log_level
    from eeg2fmri.workflows.benchmark import run_benchmark

    torch.set_num_threads(args.threads)
    if args.verbose:
        set_log_level("info")
    tmp = None
    if args.cache is None:
        tmp = tempfile.TemporaryDirectory(prefix="eeg2fmri-bench-quality-")
        cache = Path(tmp.name)
    else:
        cache = args.cache
        cache.mkdir(parents=True, exist_ok=True)
    groups = _groups(args)
    all_rows: dict[tuple, list[dict]] = {}
    t_start = time.perf_counter()
    try:
        for seed in args.seeds:
            datasets = {rep: _dataset(cache, seed, rep, args) for rep in dict.fromkeys(g["representation"] for g in groups)}
            for proto in args.protocols:
                rows: list[dict] = []
                for group in groups:
                    cfg = {**group["config"], "seed": args.model_seed,
                           "trainer": {"accelerator": args.accelerator, "log": ["csv"], "progress_bar": bool(args.verbose), **group["config"].get("trainer", {})}}
                    hp = {m: {"seed": args.model_seed} for m in group["models"]}
                    bench = run_benchmark(datasets[group["representation"]], proto, group["models"], hparams=hp, train_config=cfg,
                                          n_boot=args.n_boot, random_state=0)
                    new = _rows(bench, group)
                    if rows:  # one set of ceilings per table (the same test volumes up to window validity)
                        new = [r for r in new if r.get("role") != "ceiling"]
                    rows += new
                all_rows[(seed, proto)] = rows
                print(f"\n## seed {seed}, {proto} ({args.subjects} subjects x {args.minutes:g} min{', ' + json.dumps(args.sim) if args.sim else ''}; test = "
                      f"{'later 20% of each run' if proto == 'within' else 'each subject in turn'})\n", flush=True)
                print(_table(rows), flush=True)
        print(f"\n## summary: mean over seeds {args.seeds} (Δr: paired difference to the group's ridge_hrf)\n")
        print(_summary(all_rows))
        import subprocess

        try:
            commit = os.environ.get("EEG2FMRI_COMMIT") or subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent).stdout.strip()
        except OSError:
            commit = "unknown"
        print(f"\ntotal {time.perf_counter() - t_start:.0f} s; commit {commit or 'unknown'}; command: python benchmarks/bench_quality.py {' '.join(argv if argv is not None else sys.argv[1:])}")
        if args.json is not None:
            args.json.write_text(json.dumps({f"seed{s}_{p}": r for (s, p), r in all_rows.items()}, indent=1, default=float))
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
