"""Peak memory and time of one ``ridge_hrf`` fit at many outputs (whole-brain voxel counts), on random data.

Run it under ``/usr/bin/time -v`` and read "Maximum resident set size"; prints the fit time, the basis chosen and the
size of the inputs (windows x features, windows x outputs, float32, plus a quarter of each as validation windows).

    /usr/bin/time -v python benchmarks/bench_ridge_memory.py [--windows 1500] [--voxels 100000] [--chans 32 --bands 6 --frames 10]
        [--hrf auto|canonical|basis|lags] [--factored auto|true|false]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, default=1500)
    ap.add_argument("--voxels", type=int, default=100_000)
    ap.add_argument("--chans", type=int, default=32)
    ap.add_argument("--bands", type=int, default=6)
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--hrf", default="auto", choices=["auto", "canonical", "basis", "lags"])
    ap.add_argument("--factored", default="auto", choices=["auto", "true", "false"])
    args = ap.parse_args()
    from eeg2fmri.datasets.spec import DataSpec
    from eeg2fmri.models.ridge_hrf import RidgeHRF

    rng = np.random.default_rng(0)
    shape = (args.chans, args.bands, args.frames)
    n, nv = args.windows, args.voxels
    x, xv = rng.standard_normal((n, *shape), dtype=np.float32), rng.standard_normal((n // 4, *shape), dtype=np.float32)
    y, yv = rng.standard_normal((n, nv), dtype=np.float32), rng.standard_normal((n // 4, nv), dtype=np.float32)
    spec = DataSpec(input_kind="bandpower", input_shape=shape, output_shape=(nv,), sfreq=250.0, tr=2.0, frame_rate=0.5)
    t0 = time.perf_counter()
    factored = {"auto": "auto", "true": True, "false": False}[args.factored]
    m = RidgeHRF(spec, hrf=args.hrf, factored=factored).fit(x, y, xv, yv)
    comp = getattr(m, "components_", None)
    print(f"fit {time.perf_counter() - t0:.1f} s, basis {m.hrf_}, coefficients {m.coef_.shape}"
          f"{'' if comp is None else f' x components {comp.shape}'} ({(m.coef_.nbytes + (0 if comp is None else comp.nbytes)) / 1e6:.0f} MB), "
          f"inputs {(x.nbytes + xv.nbytes + y.nbytes + yv.nbytes) / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
