"""Coverage of the evaluation's confidence intervals of median r and of Δr, on data with a known answer.

``evaluate``/``benchmark`` report, per subject, a circular block-bootstrap percentile interval of the median
voxel r (block length from the residuals' autocorrelation, :func:`measured_block_len`) and of the paired
difference Δr to the reference; across subjects the interval of the mean over subjects comes from the mean of the
per-subject draws. With a weak focal signal a percentile interval can lie wholly above its own point estimate
(seen in a user test: ``0.011 [0.012, 0.018]``): resampling widens every noise voxel's r, and the median over
mostly-noise voxels moves up with that spread. This script asks whether that makes the interval wrong, and whether
the usual corrections (the basic / reverse-percentile interval, Efron's bias-corrected percentile interval) or the
percentile interval moved so that the draws' median sits on the estimate (``centred``,
:func:`eeg2fmri.evaluation.metrics.centred_interval`) do better.

The truth is the expected value of the statistic at the test length (the mean over ``--truth-reps`` independent
replicates of the same generative process): the quantity a repeat of the experiment would scatter around.
Each replicate: ``--voxels`` voxels x ``--volumes`` volumes per subject; a smooth AR(1) latent signal drives a
fraction of the voxels (``--fractions``); AR(1) noise everywhere; model A predicts the latent signal at gain 1,
model B at gain 0.6, each with its own AR noise per voxel (so most voxels' r scatter around 0).

    python benchmarks/bench_ci_coverage.py [--reps 200] [--subjects 1 4] [--between 0 0.8]

With ``--between B`` subjects differ (each one's signal gain uniform in [1 - B, 1 + B]); the truth is then the
population mean, and an interval of the mean over subjects that keeps the subjects fixed misses their spread: the
``two-level`` columns resample subjects, then time (:func:`eeg2fmri.evaluation.protocol.hierarchical_draws`, what the
evaluation reports across subjects since session 14).

Prints one table: rows = (fraction of voxels with signal, between-subject spread, subjects); columns = coverage of
the nominal 95 % interval for median r and for Δr under each interval type (subjects fixed), the two-level
intervals, and how often the percentile interval of median r lies wholly above its point estimate.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.stats import norm

from eeg2fmri.evaluation.metrics.bootstrap import _boot_median_r, _weights, block_bootstrap_indices
from eeg2fmri.evaluation.metrics.correlation import median_r
from eeg2fmri.evaluation.protocol import hierarchical_draws, measured_block_len

TR = 2.0


def _ar(rng: np.random.Generator, n: int, v: int, rho: float) -> np.ndarray:
    e = rng.standard_normal((n, v))
    out = np.empty_like(e)
    out[0] = e[0]
    c = np.sqrt(1.0 - rho**2)
    for t in range(1, n):
        out[t] = rho * out[t - 1] + c * e[t]
    return out


#: model B: "focal" predicts the latent (gain 0.6) in every voxel like model A; "diffuse" predicts it smoothly, with
#: little noise of its own, so that in the voxels without signal its predictions are slow and alike (as a reduced-rank
#: model's are), unlike model A's white-ish ones: the two models' r over noise voxels then spread differently
MODEL_B = "focal"


def _subject(rng: np.random.Generator, n: int, v: int, frac: float, between: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = _ar(rng, n, 1, 0.8)
    load = np.zeros(v)
    load[: int(round(frac * v))] = 0.6 * (rng.uniform(1.0 - between, 1.0 + between) if between else 1.0)
    y = load * s + _ar(rng, n, v, 0.6)
    if MODEL_B == "diffuse":
        pb = 0.6 * s + 0.3 * _ar(rng, n, v, 0.95)
    else:
        pb = 0.6 * s + _ar(rng, n, v, 0.6)
    return y, s + _ar(rng, n, v, 0.6), pb


def _intervals(draws: np.ndarray, est: float, ci: float = 0.95) -> dict[str, tuple[float, float]]:
    a = (1.0 - ci) / 2.0
    ok = draws[np.isfinite(draws)]
    lo, hi = np.quantile(ok, [a, 1.0 - a])
    p0 = (np.count_nonzero(ok < est) + 0.5 * np.count_nonzero(ok == est)) / ok.size
    z0 = norm.ppf(np.clip(p0, 1.0 / (ok.size + 1), 1.0 - 1.0 / (ok.size + 1)))
    bc = np.quantile(ok, norm.cdf(2.0 * z0 + norm.ppf([a, 1.0 - a])))
    mid = np.median(ok)
    return {"percentile": (lo, hi), "basic": (2 * est - hi, 2 * est - lo), "bias-corrected": (bc[0], bc[1]),
            "centred": (est - (mid - lo), est + (hi - mid))}


def _replicate(rng, n_sub, n, v, frac, n_boot, between):
    """Point estimates (mean over subjects); draws of the mean with subjects fixed (the mean of the per-subject draws)
    and resampled (two-level: :func:`eeg2fmri.evaluation.protocol.hierarchical_draws`, what evaluation reports)."""
    ea, ed, per = [], [], []
    for _ in range(n_sub):
        y, pa, pb = _subject(rng, n, v, frac, between)
        a, b = median_r(y, pa), median_r(y, pb)
        bl = measured_block_len(y - pa, TR)
        idx = block_bootstrap_indices(n, n_boot, bl, "circular", rng)
        per.append(_boot_median_r(y, [pa, pb], _weights(idx, n)))
        ea.append(a)
        ed.append(a - b)
    fixed = np.mean(per, axis=0)
    two = hierarchical_draws(per, rng)
    return float(np.mean(ea)), float(np.mean(ed)), fixed, two


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.0, 0.08, 0.5])
    ap.add_argument("--subjects", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--volumes", type=int, default=300)
    ap.add_argument("--voxels", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--truth-reps", type=int, default=2000)
    ap.add_argument("--n-boot", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--between", type=float, nargs="+", default=[0.0],
                    help="subjects differ: each subject's signal gain is uniform in [1 - B, 1 + B] (0: identical subjects)")
    ap.add_argument("--model-b", choices=("focal", "diffuse"), default="focal",
                    help="model B's predictions: like model A's ('focal', default) or smooth and alike in every voxel ('diffuse')")
    args = ap.parse_args(argv)
    global MODEL_B
    MODEL_B = args.model_b
    rng = np.random.default_rng(args.seed)
    kinds = ("percentile", "basic", "bias-corrected", "centred")
    print(f"# {args.reps} replicates per row, truth from {args.truth_reps} subject replicates, {args.volumes} volumes x "
          f"{args.voxels} voxels per subject, n_boot {args.n_boot}, nominal 95 %, seed {args.seed}, model B {args.model_b}")
    print("# subjects fixed: the mean of the per-subject draws; two-level: subjects resampled, then time (reported since session 14)")
    head = ("| signal voxels | between-subject gain ± | subjects | truth median r | truth Δr | "
            + " | ".join(f"{k} r | {k} Δr" for k in kinds)
            + " | two-level centred r | two-level percentile Δr | pct. interval above its point |")
    print(head)
    print("|" + "---:|" * (head.count("|") - 1))
    for between in args.between:
        for frac in args.fractions:
            t0 = time.perf_counter()
            ma, md = [], []
            for _ in range(args.truth_reps):
                y, pa, pb = _subject(rng, args.volumes, args.voxels, frac, between)
                a = median_r(y, pa)
                ma.append(a)
                md.append(a - median_r(y, pb))
            truth_r, truth_d = float(np.mean(ma)), float(np.mean(md))  # the mean over subjects has the same expectation
            for n_sub in args.subjects:
                hits = {k: [0, 0] for k in (*kinds, "two")}
                above = 0
                for _ in range(args.reps):
                    er, ed, fixed, two = _replicate(rng, n_sub, args.volumes, args.voxels, frac, args.n_boot, between)
                    ir, idf = _intervals(fixed[0], er), _intervals(fixed[0] - fixed[1], ed)
                    above += ir["percentile"][0] > er
                    for k in kinds:
                        hits[k][0] += ir[k][0] <= truth_r <= ir[k][1]
                        hits[k][1] += idf[k][0] <= truth_d <= idf[k][1]
                    tr_, td_ = _intervals(two[0], er)["centred"], _intervals(two[0] - two[1], ed)["percentile"]
                    hits["two"][0] += tr_[0] <= truth_r <= tr_[1]
                    hits["two"][1] += td_[0] <= truth_d <= td_[1]
                cells = " | ".join(f"{hits[k][0] / args.reps:.3f} | {hits[k][1] / args.reps:.3f}" for k in (*kinds, "two"))
                print(f"| {frac:.0%} | {between:g} | {n_sub} | {truth_r:.4f} | {truth_d:.4f} | {cells} | {above}/{args.reps} |", flush=True)
            print(f"<!-- {frac:.0%}, between {between:g}: {time.perf_counter() - t0:.0f} s -->", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
