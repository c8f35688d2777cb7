"""Evaluation speed on a NODDI-sized test set (model inference excluded).

A test set the size of one NODDI subject's held-out data: 600 volumes on a
64 x 64 x 30 grid with about 30,000 in-mask voxels, measured BOLD with
autocorrelated noise, and three predictors already computed (the model, the
reference ``ridge_hrf`` and the constant subject-mean baseline).
:func:`eeg2fmri.evaluation.protocol.score_runs` computes everything a report
shows: voxel r (distribution, time-shifted null), per-subject block-bootstrap
CIs of the median r for the model and the reference and their paired
difference (default ``n_boot``), RMSE, MAE, R², 3D SSIM and PSNR with the
stated data range, the peers' ``calhas_rmse`` (all volumes) and
``calhas_ssim``, and optionally ROI r for a 100-ROI atlas. Model inference and
fitting are excluded (they depend on the model); everything else is timed.

Usage::

    python benchmarks/bench_evaluation.py [--repeat 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def _data(seed: int = 0):
    import numpy as np
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    shape = (64, 64, 30)
    ii, jj, kk = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    mask = (ii**2 + jj**2 / 1.1 + kk**2 / 1.2) < 0.62
    v, n = int(mask.sum()), 600
    signal = lfilter([1.0], [1.0, -0.8], rng.standard_normal((n, 64)), axis=0)[:, rng.integers(0, 64, v)]
    noise = lfilter([1.0], [1.0, -0.5], rng.standard_normal((n, v)), axis=0)
    y = (signal + 2.0 * noise).astype(np.float32)
    y = (y - y.mean(0)) / y.std(0)
    model = (0.3 * signal + rng.standard_normal((n, v))).astype(np.float32)
    ridge = (0.2 * signal + rng.standard_normal((n, v))).astype(np.float32)
    mean = np.zeros((n, v), np.float32)
    labels = rng.integers(0, 101, v)
    return mask, y, {"model": model, "ridge_hrf": ridge, "mean": mean}, labels


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(k, str(args.threads))
    from eeg2fmri.evaluation.protocol import DEFAULT_N_BOOT, DEFAULT_SSIM_VOLUMES, score_runs

    mask, y, preds, labels = _data()
    names = ["model", "ridge_hrf", "mean"]
    print(f"evaluation of a NODDI-sized test set: {y.shape[0]} volumes, grid {mask.shape}, {y.shape[1]} in-mask voxels; "
          f"predictors {names}; inference excluded; {args.threads} threads")
    print(f"{'setting':<44} {'best s':>8} {'median r model':>15} {'CI':>18}")
    settings = [(f"default (n_boot={DEFAULT_N_BOOT}, SSIM on {DEFAULT_SSIM_VOLUMES} volumes)", {}),
                ("default + ROI r (100 ROIs)", {"labels": labels}),
                ("no bootstrap (n_boot=0)", {"n_boot": 0}),
                ("n_boot=1000", {"n_boot": 1000})]
    for label, kw in settings:
        times = []
        for _ in range(args.repeat if "1000" not in label else 1):
            runs = [{"key": "sub-01_run-1", "subject": "01", "y": y, "preds": preds}]
            t0 = time.perf_counter()
            core = score_runs(runs, names, mask, 2.16, **kw)
            times.append(time.perf_counter() - t0)
        m = core["per_subject"]["01"]["models"]["model"]
        ci = m.get("median_r_ci")
        print(f"{label:<44} {min(times):>8.2f} {m['median_r']:>15.3f} {str([round(c, 3) for c in ci]) if ci else '—':>18}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
