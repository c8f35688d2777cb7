"""Time and size of the flagship's stacked linear path on tangent windows (``EEG2fMRINet.after_fit``).

Random tangent-layout windows of ``--chans`` channels, ``--bands`` bands and ``--frames`` frames with
``--voxels`` targets; ``--windows`` training and a sixth as many validation windows. For each
``--tangent-hrf`` the script times ``after_fit`` (output calibration, the band-power ridge with its
basis chosen on validation, the tangent ridge(s), the blend weights) and prints the number of values
in the linear path's buffers (what a saved model holds on top of the network).

Only the linear algebra is measured: the data are noise, so the chosen penalties and weights mean
nothing. To compare with an older commit, run this file with ``PYTHONPATH`` pointing at that
commit's ``src`` (``git worktree add /tmp/old COMMIT``).

    python benchmarks/bench_linear_path.py [--chans 60] [--bands 6] [--frames 9] [--windows 900]
        [--voxels 5000] [--tangent-hrf auto canonical] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chans", type=int, default=60)
    ap.add_argument("--bands", type=int, default=6)
    ap.add_argument("--frames", type=int, default=9)
    ap.add_argument("--windows", type=int, default=900)
    ap.add_argument("--voxels", type=int, default=5000)
    ap.add_argument("--tangent-hrf", nargs="+", default=["auto", "canonical"])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    from eeg2fmri.datasets.spec import DataSpec
    from eeg2fmri.models.flagship import EEG2fMRINet

    c, f, t, v = args.chans, args.bands, args.frames, args.voxels
    spec = DataSpec("tangent", (c, f * (c + 1), t), (v,), sfreq=250.0, tr=2.0, frame_rate=0.5, n_subjects=4)
    gen = torch.Generator().manual_seed(0)
    n_tr, n_va = args.windows, max(3, args.windows // 6)
    x = torch.randn(n_tr + n_va, *spec.input_shape, generator=gen)
    y = torch.randn(n_tr + n_va, v, generator=gen)

    def batches(lo: int, hi: int):
        return [(x[i : min(i + 256, hi)], y[i : min(i + 256, hi)], None) for i in range(lo, hi, 256)]

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        commit = "?"
    print(f"## eeg2fmri_net.after_fit on tangent windows: {c} channels x {f} bands x {t} frames, {n_tr} training + {n_va} "
          f"validation windows, {v} voxels; {args.threads} threads, {platform.machine()}, commit {os.environ.get('EEG2FMRI_COMMIT', commit)}")
    print()
    print("| tangent_hrf | after_fit s | chosen | linear-path buffer values |")
    print("|---|---:|---|---:|")
    for hrf in args.tangent_hrf:
        model = EEG2fMRINet(spec, seed=0, n_members=2, tangent_hrf=hrf)
        t0 = time.perf_counter()
        info = model.after_fit(batches(n_tr, n_tr + n_va), train_batches=batches(0, n_tr))
        dt = time.perf_counter() - t0
        size = sum(b.numel() for k, b in model.named_buffers() if k.startswith("ridge"))
        print(f"| {hrf} | {dt:.1f} | {info.get('tangent_hrf')} | {size:,} |")


if __name__ == "__main__":
    main()
