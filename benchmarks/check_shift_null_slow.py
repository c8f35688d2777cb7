"""False-positive rate of the circular-shift 5 % level on unrelated slow series (user test 59 #9).

Pairs of independent AR(1) series of ``n`` volumes: the aligned r against the level that
:func:`eeg2fmri.utils.stats.circular_shift_level` takes from the r of every circular shift of the prediction. The
target is detrended as ``split_targets`` does (linear + DCT to 1/128 Hz at TR 2 s); the prediction either as it is or
detrended too. A calibrated test passes 5 % of the pairs.

    python benchmarks/check_shift_null_slow.py [--pairs 1500] [--seed 1]
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy.signal import lfilter

from eeg2fmri.preprocessing.bold import detrend
from eeg2fmri.utils.stats import circular_shift_level


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)

    def smooth(n: int, a: float) -> np.ndarray:
        return lfilter([1], [1, -a], rng.standard_normal(n + 200))[200:]

    print(f"pairs per cell {args.pairs}, seed {args.seed}; false-positive rate of the 5 % circular-shift level")
    print("| volumes | AR(1) | target detrended | both detrended |")
    print("|---:|---:|---:|---:|")
    for n in (35, 60, 150):
        for a in (0.9, 0.97):
            rates = []
            for both in (False, True):
                hits = tot = 0
                for _ in range(args.pairs):
                    p, y = smooth(n, a), smooth(n, a)
                    y = detrend(y[:, None], 2.0)[:, 0].astype(float)
                    if both:
                        p = detrend(p[:, None], 2.0)[:, 0].astype(float)
                    r0 = np.corrcoef(p, y)[0, 1]
                    sh = np.array([np.corrcoef(np.roll(p, k), y)[0, 1] for k in range(1, n)])
                    lvl = circular_shift_level(sh)
                    if np.isfinite(lvl):
                        tot += 1
                        hits += r0 > lvl
                rates.append(hits / tot)
            print(f"| {n} | {a} | {rates[0]:.3f} | {rates[1]:.3f} |", flush=True)


if __name__ == "__main__":
    main()
