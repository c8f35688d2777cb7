"""How much of the neural masses' input can be read from the EEG features at all? (an analysis, not a model).

The input oracles of ``bench_robustness.py --oracles`` show how well the BOLD could be predicted if a model knew the
ground-truth slow input of every region. This script asks the step before: how well that input can be *decoded*
from the package's EEG features, split into its mean over regions (the global part) and each region's deviation
from that mean (the region-specific part, which is what a model needs to predict one region's BOLD better than
another's). For every subject of every cell: the features averaged over each volume's frames, the input averaged
over each volume; a ridge (penalty by leave-one-out, scikit-learn's ``RidgeCV``) fitted on the first 70 % of the
volumes and scored on the volumes after a gap of 3; Pearson r, mean over regions for the region part. Features:
``bandpower`` (log band power per channel, the default) and ``tangent`` (band power plus the band covariances in
the tangent space, the flagship's input).

It reads the data folders that ``bench_robustness.py --out DIR`` wrote (``DIR/data/<setting>_s<seed>_n<subjects>``
with the ``_prepared`` and ``_prepared_tangent`` copies), so run that first for the same settings and seeds, e.g.::

    python benchmarks/bench_robustness.py --out /tmp/orc --settings neurolib_wc neural_mass --seeds 0 1 2 3 4 --oracles ...
    python benchmarks/bench_input_decoding.py --data /tmp/orc/data --settings neurolib_wc neural_mass --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def volume_means(features: np.ndarray, window_end: np.ndarray, per_volume: int) -> np.ndarray:
    """Mean of the ``per_volume`` frames that end at each volume's ``window_end``: ``(n_volumes, n_features)``."""
    flat = features.reshape(len(features), -1).astype(np.float64)
    c = np.vstack([np.zeros((1, flat.shape[1])), np.cumsum(flat, axis=0)])
    end = np.asarray(window_end, int)
    start = end - per_volume
    if start.min() < 0:
        raise ValueError(f"a volume's frames start before the recording (window_end {end.min()}, {per_volume} frames per volume)")
    return (c[end] - c[start]) / per_volume


def input_per_volume(t_in: np.ndarray, x_in: np.ndarray, n_volumes: int, tr: float, n_sub: int = 8) -> np.ndarray:
    """The input averaged over each volume's acquisition ``[v tr, (v + 1) tr)``: ``(n_volumes, n_regions)``."""
    t = (np.arange(n_volumes)[:, None] + (np.arange(n_sub) + 0.5)[None, :] / n_sub) * tr
    return np.stack([np.interp(t, t_in, x_in[:, r]).mean(1) for r in range(x_in.shape[1])], 1)


def decode(features: np.ndarray, target: np.ndarray, *, train: float = 0.7, gap: int = 3) -> float:
    """Pearson r (mean over the target's columns) of a ridge fitted on the first ``train`` share, scored after ``gap``."""
    from sklearn.linear_model import RidgeCV

    cut = int(train * len(features))
    mu, sd = features[:cut].mean(0), features[:cut].std(0) + 1e-12
    z = (features - mu) / sd
    model = RidgeCV(alphas=np.logspace(-1, 7, 17)).fit(z[:cut], target[:cut])
    pred = model.predict(z[cut + gap :]).reshape(-1, target.shape[1])
    true = target[cut + gap :]
    p, t = pred - pred.mean(0), true - true.mean(0)
    return float(np.mean((p * t).sum(0) / np.sqrt((p * p).sum(0) * (t * t).sum(0) + 1e-30)))


def run(data: Path, settings: list[str], seeds: list[int], subjects: int) -> list[dict]:
    from bench_robustness import _groundtruth_input

    from eeg2fmri.datasets import load_prepared

    rows = []
    for setting in settings:
        for seed in seeds:
            bids = data / f"{setting}_s{seed}_n{subjects}"
            reps = {"bandpower": load_prepared(Path(f"{bids}_prepared")), "tangent": load_prepared(Path(f"{bids}_prepared_tangent"))}
            for i, run_bp in enumerate(reps["bandpower"].runs):
                t_in, x_in = _groundtruth_input(bids, run_bp.subject)
                x = input_per_volume(t_in, x_in, run_bp.n_volumes, reps["bandpower"].tr)
                glob = x.mean(1, keepdims=True)
                row = {"setting": setting, "seed": seed, "subject": run_bp.subject}
                for name, ds in reps.items():
                    r = ds.runs[i]
                    per_volume = int(round(ds.frame_rate * ds.tr))
                    f = volume_means(r.features, r.window_end, per_volume)
                    row[f"{name} global"] = decode(f, glob)
                    row[f"{name} region"] = decode(f, x - glob)
                rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="the data/ folder of a bench_robustness.py --out")
    ap.add_argument("--settings", nargs="+", default=["neurolib_wc", "neural_mass"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--subjects", type=int, default=4)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    rows = run(args.data, args.settings, args.seeds, args.subjects)
    cols = ["bandpower global", "tangent global", "bandpower region", "tangent region"]
    print("## Decoding the neural masses' slow input from the EEG features (Pearson r on the last 27 % of each run; "
          "mean over subjects and seeds; region = each region's deviation from the mean over regions, mean over regions)\n")
    print("| setting | seeds | subjects | " + " | ".join(cols) + " |")
    print("|---|---:|---:|" + "---:|" * len(cols))
    for st in args.settings:
        sel = [r for r in rows if r["setting"] == st]
        vals = " | ".join(f"{np.mean([r[c] for r in sel]):.3f}" for c in cols)
        print(f"| {st} | {len({r['seed'] for r in sel})} | {len(sel)} | {vals} |")
    print(f"\n{time.perf_counter() - t0:.0f} s; command: python benchmarks/bench_input_decoding.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
