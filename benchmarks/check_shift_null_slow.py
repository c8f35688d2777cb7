"""False-positive rate of the circular-shift 5 % level on unrelated slow series (user test 59 #9; session 40).

Pairs of independent series, TR 2 s: the target detrended per run as ``split_targets`` does (linear + DCT to
1/128 Hz), the prediction either as generated ("raw") or detrended with the same basis ("drift-free", as a model
trained on detrended targets tends to predict). Each pair is one output column; its aligned r is tested against the
5 % level (:func:`eeg2fmri.evaluation.protocol._null_level`) of its r over every circular shift of the prediction
within each run (:func:`~eeg2fmri.evaluation.protocol._null_shifts`), computed by the package's own
:func:`~eeg2fmri.evaluation.protocol._circular_shift_r`:

* current -- the plain shifted r (``bases=None``: the rule up to session 39);
* projection only -- each rolled run projected off the run's drift basis, its r put on the aligned prediction's scale
  by the norms (the candidate of session 39, computed here with np.roll);
* adopted -- the projected cross product scaled by its spread under the target's own spectrum
  (``bases=_drift_bases(y, lens, tr)``: the rule from session 40).

A calibrated test passes 5 % of the pairs (binomial s.e. at 1500 pairs: 0.6 %). A second table does the same for the
whole-mask statistic, the median r over voxels (:func:`~eeg2fmri.evaluation.protocol._shift_null_distribution`), and a
third gives the power on a weak shared signal, a fourth the time of the whole-mask null.

    OMP_NUM_THREADS=1 python benchmarks/check_shift_null_slow.py [--pairs 1500] [--seed 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.signal import lfilter

from eeg2fmri.evaluation.protocol import (
    _circular_shift_r,
    _drift_bases,
    _null_level,
    _null_shifts,
    _shift_null_distribution,
)
from eeg2fmri.preprocessing.bold import detrend
from eeg2fmri.preprocessing.hrf import double_gamma_hrf
from eeg2fmri.utils.stats import circular_shift_level

TR = 2.0
#: Run lengths (volumes) of each case: one run, or several runs of different lengths (one subject's test spans).
SPANS = {"35": (35,), "60": (60,), "150": (150,), "3 runs 35+48+60": (35, 48, 60), "2 runs 60+90": (60, 90)}
SMOOTH = ("AR(1) 0.9", "AR(1) 0.97", "HRF * white", "HRF * AR(1) 0.9")
BURN = 200


def series(rng: np.random.Generator, n: int, cols: int, kind: str) -> np.ndarray:
    """``cols`` independent series of ``n`` volumes, shape (n, cols), of smoothness ``kind``."""
    e = rng.standard_normal((n + BURN, cols))
    if kind.startswith("AR(1)"):
        return lfilter([1.0], [1.0, -float(kind.split()[-1])], e, axis=0)[BURN:]
    if kind == "HRF * AR(1) 0.9":
        e = lfilter([1.0], [1.0, -0.9], e, axis=0)
    return lfilter(double_gamma_hrf(TR), [1.0], e, axis=0)[BURN:]


def runs_of(rng: np.random.Generator, lens: tuple[int, ...], cols: int, kind: str, drift_free: bool, signal: float = 0.0,
            shared: float = 0.0) -> tuple[np.ndarray, list[np.ndarray]]:
    """Targets (detrended per run, concatenated) and predictions (per run); ``signal``: weight of a component both share;
    ``shared``: weight of a component common to all columns of the target (and, independently, of the prediction)."""
    ys, ps = [], []
    for n in lens:
        s = series(rng, n, cols, kind)
        y = series(rng, n, cols, kind) + signal * s + shared * series(rng, n, 1, kind)
        p = series(rng, n, cols, kind) + signal * s + shared * series(rng, n, 1, kind)
        ys.append(detrend(y, TR))
        ps.append(detrend(p, TR) if drift_free else p.astype(np.float32))
    return np.concatenate(ys), ps


def projected_only(y: np.ndarray, ps: list[np.ndarray], order: list[tuple[int, ...]], bases: list[np.ndarray]) -> np.ndarray:
    """The candidate of session 39, computed here with np.roll: r of the target with each rolled run projected off its
    drift basis, on the aligned prediction's scale (the norm of the projected prediction in place of the adopted rule's
    spectrum-weighted spread). Shape (n_shifts, cols)."""
    yc = y - y.mean(0)
    pc = np.concatenate(ps).astype(np.float64)
    pc -= pc.mean(0)
    st = np.cumsum([0] + [len(p) for p in ps])

    def x(sh: tuple[int, ...]) -> np.ndarray:
        parts = [np.roll(pc[st[j] : st[j + 1]], k, axis=0) for j, k in enumerate(sh)]
        x = np.concatenate([v - q @ (q.T @ v) for v, q in zip(parts, bases)])
        return x - x.mean(0)

    x0 = np.linalg.norm(x((0,) * len(ps)), axis=0)
    out = []
    for sh in order:
        xk = x(sh)
        out.append((yc * xk).sum(0) / (np.linalg.norm(yc, axis=0) * np.linalg.norm(xk, axis=0)) * x0 / np.linalg.norm(pc, axis=0))
    return np.array(out)


def pass_rates(y: np.ndarray, ps: list[np.ndarray], projected: bool = True) -> list[float]:
    """Share of columns whose aligned r exceeds the 5 % level: current rule, [projection only,] adopted rule."""
    lens = [len(p) for p in ps]
    order = _null_shifts(lens, 1000)
    aligned = _circular_shift_r(y, ps, [(0,) * len(lens)])[0]
    bases = _drift_bases(y, lens, TR)
    if bases is None or any(q is None for q in bases):
        raise RuntimeError("the targets were not recognised as detrended")
    nulls = [np.stack(_circular_shift_r(y, ps, order))]  # (n_shifts, cols)
    if projected:
        nulls.append(projected_only(y, ps, order, bases))
    nulls.append(np.stack(_circular_shift_r(y, ps, order, bases=bases)))
    return [float(np.mean(aligned > circular_shift_level(sh))) for sh in nulls]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    t0 = time.perf_counter()

    print(f"pairs per cell {args.pairs}, seed {args.seed}, TR {TR} s; false-positive rate of the 5 % circular-shift level "
          "(unrelated target and prediction; target detrended per run)")
    print("\n## One output (a voxel or an ROI): r against its own shifts\n")
    print("| volumes | smoothness | prediction | current | projection only | adopted |")
    print("|---|---|---|---:|---:|---:|")
    worst = [0.0, 0.0, 0.0]
    for si, (span, lens) in enumerate(SPANS.items()):
        for ki, kind in enumerate(SMOOTH):
            for drift_free in (False, True):
                rng = np.random.default_rng([args.seed, si, ki, int(drift_free)])
                y, ps = runs_of(rng, lens, args.pairs, kind, drift_free)
                rates = pass_rates(y, ps)
                worst = [max(w, r) for w, r in zip(worst, rates)]
                print(f"| {span} | {kind} | {'drift-free' if drift_free else 'raw'} | " + " | ".join(f"{r:.3f}" for r in rates) + " |", flush=True)
    print("| **largest** | | | " + " | ".join(f"**{w:.3f}**" for w in worst) + " |")

    reps = max(1, args.pairs // 3)
    print(f"\n## Whole mask: median r over 40 voxels (a shared slow component in each of target and prediction), {reps} "
          "subjects per cell\n")
    print("| volumes | smoothness | prediction | current | adopted |")
    print("|---|---|---|---:|---:|")
    for si, (span, lens) in enumerate(SPANS.items()):
        if span == "150":
            continue
        for ki, kind in enumerate(("AR(1) 0.97", "HRF * white")):
            for drift_free in (False, True):
                rng = np.random.default_rng([args.seed, 100 + si, ki, int(drift_free)])
                hits = np.zeros(2)
                for _ in range(reps):
                    y, ps = runs_of(rng, lens, 40, kind, drift_free, shared=0.7)
                    runs = [{"y": y[a:b], "preds": {"m": p}} for p, a, b in zip(ps, np.cumsum([0, *lens[:-1]]), np.cumsum(lens))]
                    med = float(np.nanmedian(_circular_shift_r(y, ps, [(0,) * len(lens)])[0]))
                    for j, tr in enumerate((None, TR)):
                        hits[j] += med > _null_level(_shift_null_distribution(y, runs, "m", tr=tr))
                print(f"| {span} | {kind} | {'drift-free' if drift_free else 'raw'} | {hits[0] / reps:.3f} | {hits[1] / reps:.3f} |", flush=True)

    print("\n## Power: a shared component of weight 0.5 in target and prediction (one output)\n")
    print("| volumes | smoothness | prediction | current | adopted |")
    print("|---|---|---|---:|---:|")
    for si, (span, lens) in enumerate(SPANS.items()):
        for ki, kind in enumerate(("AR(1) 0.97", "HRF * white")):
            for drift_free in (False, True):
                rng = np.random.default_rng([args.seed, 200 + si, ki, int(drift_free)])
                y, ps = runs_of(rng, lens, args.pairs, kind, drift_free, signal=0.5)
                cur, new = pass_rates(y, ps, projected=False)
                print(f"| {span} | {kind} | {'drift-free' if drift_free else 'raw'} | {cur:.3f} | {new:.3f} |", flush=True)
    print("\n## Time of the whole-mask null (_shift_null_distribution; one thread if OMP_NUM_THREADS=1)\n")
    print("| runs (volumes) | voxels | shifts | current (s) | adopted (s) |")
    print("|---|---:|---:|---:|---:|")
    for lens in ((300,), (150, 200)):
        rng = np.random.default_rng([args.seed, 300, len(lens)])
        runs = [{"y": detrend(series(rng, n, 20_000, "HRF * white"), TR), "preds": {"m": series(rng, n, 20_000, "HRF * white").astype(np.float32)}}
                for n in lens]
        y = np.concatenate([r["y"] for r in runs])
        secs = []
        for tr in (None, TR):
            t = time.perf_counter()
            dist = _shift_null_distribution(y, runs, "m", tr=tr)
            secs.append(time.perf_counter() - t)
        print(f"| {'+'.join(map(str, lens))} | 20000 | {len(dist)} | {secs[0]:.2f} | {secs[1]:.2f} |", flush=True)
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
