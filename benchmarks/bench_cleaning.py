"""Does cleaning in-scanner EEG recover the clean-EEG encoding accuracy? (issue 12)

For every seed the same BIDS dataset (``--subjects`` x ``--minutes``, ``--sfreq`` Hz EEG,
TR 2 s, ``--slices`` slices per volume) is simulated twice with the package simulator:
without scanner artefacts, and with gradient + pulse (BCG) artefacts
(``SimulationConfig(scanner_artifacts=["gradient", "bcg"])``; the artefacts come from their
own random stream, so the EEG, BOLD and ground truth are otherwise identical). It is then
prepared (package defaults: band power, ``bands="auto"``) under these conditions:

=================  ==================================================================
clean_eeg          the artefact-free recording (the reference)
artifacts          with artefacts, prepared without cleaning
aas+pca_obs        with artefacts, ``clean={"gradient": "aas", "bcg": "pca_obs"}``
aas+aas            with artefacts, ``clean={"gradient": "aas", "bcg": "aas"}``
gradient_only      (with ``--gradient-only``) ``clean={"gradient": "aas"}``
=================  ==================================================================

and ``ridge_hrf`` (plus ``--models``) is fitted and scored under the ``within`` protocol
through the package's Python API (``fit_model`` + ``evaluate_models``, as
``bench_robustness.py``). Printed: the test median voxel r per condition and seed (mean over
test subjects), the mean over seeds, the difference to ``clean_eeg``, and ``feat r``: the
median over runs, channels and bands of the correlation of a condition's band-power
features with the artefact-free ones (1.0 for ``clean_eeg``).

The simulator builds the gradient artefact at 16x the EEG rate and low-passes it at 0.4x
the EEG rate (the amplifier's anti-alias filter) before decimation, so at 250 Hz the
artefact is 100 Hz band-limited and a slice (TR / slices) spans only a few samples.
``--sfreq 1000`` (the default here) gives 50 samples per slice and a 400 Hz-wide artefact.

Usage::

    python benchmarks/bench_cleaning.py --out /tmp/cleanbench [--seeds 0 1] [--subjects 3] [--minutes 6] [--sfreq 1000]
        [--models eeg2fmri_net] [--threads 2] [--gradient-only]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

CONDITIONS = {
    "clean_eeg": (False, None),
    "artifacts": (True, None),
    "aas+pca_obs": (True, {"gradient": "aas", "bcg": "pca_obs"}),
    "aas+aas": (True, {"gradient": "aas", "bcg": "aas"}),
}


def _feature_r(ds, ref) -> tuple[float, dict[str, float]]:
    """Median over runs, channels and bands of corr(features of ``ds``, features of ``ref``); and per band."""
    import numpy as np

    by_key = {r.key: r for r in ref.runs}
    rs = []
    for run in ds.runs:
        a = np.asarray(run.features, dtype=np.float64)
        b = np.asarray(by_key[run.key].features, dtype=np.float64)
        n = min(len(a), len(b))
        a, b = a[:n].reshape(n, -1), b[:n].reshape(n, -1)
        a = a - a.mean(0)
        b = b - b.mean(0)
        rs.append(((a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0) + 1e-300)).reshape(run.features.shape[1:]))
    per = np.concatenate(rs, axis=0)  # (runs x channels, bands)
    return float(np.median(per)), {band: float(np.median(per[:, i])) for i, band in enumerate(ds.bands)}


def _score(ds, models: dict, args) -> dict[str, float]:
    """Mean over test subjects of the per-subject median voxel r, per model (within protocol)."""
    import numpy as np

    from eeg2fmri.datasets.targets import split_targets
    from eeg2fmri.evaluation.protocol import evaluate_models
    from eeg2fmri.models import get_model_class
    from eeg2fmri.training import fit_model
    from eeg2fmri.workflows.benchmark import _folds

    (split,) = _folds(ds, "within", 5, {})
    targets = split_targets(ds, split)
    fitted = {}
    for label, (name, hp) in models.items():
        cfg = None
        if getattr(get_model_class(name), "kind", "torch") != "sklearn":
            rec = getattr(get_model_class(name), "recommended_train_config", {})
            cfg = {**rec, "seed": 0, "trainer": {"accelerator": "cpu", "log": [], "progress_bar": False}}
        fitted[label] = fit_model(ds, split, name, hp, targets=targets, train_config=cfg).model
    res = evaluate_models(ds, split, targets, fitted, fit_missing=True, n_boot=20, random_state=0)
    return {m: float(np.mean([np.nanmedian(v["_r"][m]) for v in res["per_subject"].values()])) for m in models}


def run_seed(seed: int, args, conditions: dict) -> dict:
    from eeg2fmri.datasets.prepared import prepare_dataset
    from eeg2fmri.simulate import simulate_dataset

    models = {"ridge_hrf": ("ridge_hrf", {}), **{m: (m, {"seed": 0}) for m in args.models}}
    sim = dict(n_subjects=args.subjects, minutes=args.minutes, seed=seed, sfreq=args.sfreq, n_slices=args.slices, progress_bar=False)
    roots = {}
    t0 = time.perf_counter()
    for dirty in (False, True):
        root = Path(args.out) / f"s{seed}_n{args.subjects}_m{args.minutes:g}_f{args.sfreq:g}_{'scanner' if dirty else 'clean'}"
        if not (root / "dataset_description.json").exists():
            simulate_dataset(root, scanner_artifacts=["gradient", "bcg"] if dirty else None, overwrite=root.exists(), **sim)
        roots[dirty] = root
    out = {"seconds": {"simulate": time.perf_counter() - t0}, "r": {}, "feat_r": {}, "band_r": {}}
    ref = None
    for cond, (dirty, clean) in conditions.items():
        t1 = time.perf_counter()
        cfg = {} if clean is None else {"clean": {**clean, "n_jobs": args.threads}}
        ds = prepare_dataset(roots[dirty], cfg, progress_bar=False)
        t2 = time.perf_counter()
        if ref is None:
            ref = ds
        out["feat_r"][cond], out["band_r"][cond] = _feature_r(ds, ref)
        out["r"][cond] = _score(ds, models, args)
        out["seconds"][cond] = {"prepare": t2 - t1, "fit": time.perf_counter() - t2}
        print(f"  seed {seed} {cond:14s} r " + " ".join(f"{m} {v:.4f}" for m, v in out["r"][cond].items())
              + f"  feat r {out['feat_r'][cond]:.3f}  prepare {t2 - t1:.0f} s, fit+score {time.perf_counter() - t2:.0f} s", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="folder for the simulated BIDS datasets (reused when present)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="several seeds (overrides --seed)")
    ap.add_argument("--subjects", type=int, default=3)
    ap.add_argument("--minutes", type=float, default=6.0)
    ap.add_argument("--sfreq", type=float, default=1000.0, help="EEG sampling rate of the simulation (Hz)")
    ap.add_argument("--slices", type=int, default=20, help="slices per volume (gradient artefact)")
    ap.add_argument("--models", nargs="*", default=[], help="models besides ridge_hrf (e.g. eeg2fmri_net)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--gradient-only", action="store_true", help="also a condition with gradient cleaning only (BCG left in)")
    args = ap.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(args.threads))
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    seeds = args.seeds if args.seeds is not None else [args.seed]
    conditions = dict(CONDITIONS)
    if args.gradient_only:
        conditions["gradient_only"] = (True, {"gradient": "aas"})
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    docs = {}
    for seed in seeds:
        print(f"seed {seed}", flush=True)
        docs[seed] = run_seed(seed, args, conditions)
    models = ["ridge_hrf", *args.models]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        commit = "unknown"
    print(f"\n## In-scanner EEG cleaning: test median voxel r (within protocol, mean over {args.subjects} test subjects), "
          f"{args.subjects} subjects x {args.minutes:g} min, EEG {args.sfreq:g} Hz, TR 2 s, {args.slices} slices, gradient + BCG artefacts\n")
    for m in models:
        from scipy import stats

        head = ["condition"] + [f"seed {s}" for s in seeds] + ["mean", "Δ vs clean_eeg", "Δ 95% CI (seeds)", "feat r"]
        body = []
        base = np.array([docs[s]["r"]["clean_eeg"][m] for s in seeds])
        for cond in conditions:
            vals = np.array([docs[s]["r"][cond][m] for s in seeds])
            mean = float(np.mean(vals))
            d = vals - base  # paired by seed: same EEG, BOLD and ground truth
            half = float(stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
            fr = float(np.mean([docs[s]["feat_r"][cond] for s in seeds]))
            body.append([cond] + [f"{v:.4f}" for v in vals] + [f"{mean:.4f}", f"{d.mean():+.4f}", f"[{d.mean() - half:+.4f}, {d.mean() + half:+.4f}]",
                                                              f"{fr:.3f}"])
        widths = [max(len(x) for x in col) for col in zip(head, *body)]
        print(f"model {m}")
        print("\n".join("  ".join(x.ljust(w) if i == 0 else x.rjust(w) for i, (x, w) in enumerate(zip(row, widths))) for row in [head] + body))
        print()
    bands = list(docs[seeds[0]]["band_r"]["clean_eeg"])
    print("feat r per band (median over runs and channels, mean over seeds)")
    head = ["condition", *bands]
    body = [[c] + [f"{np.mean([docs[s]['band_r'][c][b] for s in seeds]):.3f}" for b in bands] for c in conditions]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    print("\n".join("  ".join(x.ljust(w) if i == 0 else x.rjust(w) for i, (x, w) in enumerate(zip(row, widths))) for row in [head] + body))
    print()
    print("feat r: median correlation of the prepared band-power features with the artefact-free ones (runs x channels x bands), mean over seeds")
    prep = {c: np.mean([docs[s]["seconds"][c]["prepare"] for s in seeds]) for c in conditions}
    print("prepare seconds per dataset (mean over seeds): " + ", ".join(f"{c} {v:.0f}" for c, v in prep.items()))
    print(f"\n{time.perf_counter() - t0:.0f} s; commit {commit or 'unknown'}; command: python benchmarks/bench_cleaning.py "
          f"{' '.join(argv if argv is not None else sys.argv[1:])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
