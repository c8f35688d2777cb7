"""Random-window DataLoader throughput on NODDI-sized STFT inputs (64 x 134 x 10) with 64x64x30 targets.

Builds a prepared dataset on disk with synthetic continuous arrays (memory-mapped when
loaded), then reads random windows through ``WindowDataset.loader`` (``--workers``: DataLoader
worker processes, 0 = the main process) and through ``ThreadedBatchLoader`` (``--threads``: threads
of the main process, batches in page-locked memory when CUDA is available), and prints a table.

    python benchmarks/bench_dataloader.py [--volumes 1200] [--batch 64] [--workers 0 2] [--threads 2 4] [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def build(folder: Path, n_vol: int, n_ch=64, n_freq=134, grid=(64, 64, 30), tr=2.16) -> Path:
    from eeg2fmri.datasets.prepared import PrepareConfig, PreparedDataset, PreparedRun

    rng = np.random.default_rng(0)
    n_frames = n_vol + 10
    feats = rng.standard_normal((n_frames, n_ch, n_freq), dtype=np.float32)
    mask = np.ones(grid, dtype=bool)  # the whole 64x64x30 grid as target, as peers do
    bold = rng.standard_normal((n_vol, int(mask.sum())), dtype=np.float32)
    run = PreparedRun("sub-01_task-rest", "01", feats, np.arange(n_vol) + 11, bold, np.arange(n_vol) * tr)
    ds = PreparedDataset([run], mask, np.eye(4), tr, 250.0, [f"E{i}" for i in range(n_ch)],
                         PrepareConfig(representation="stft"), frame_rate=1 / tr, freqs=list(np.linspace(0.46, 62, n_freq)))
    return ds.save(folder / "prep")


def measure(path: Path, batch: int, workers: int, seconds: float, threads: int = 0) -> dict:
    import torch

    from eeg2fmri.datasets import WindowDataset, load_prepared
    from eeg2fmri.datasets.windows import ThreadedBatchLoader

    ds = load_prepared(path)
    n_vol = ds.runs[0].n_volumes
    wd = WindowDataset(ds, {0: np.arange(n_vol)}, n_frames=10)
    if threads:
        sampler = torch.utils.data.RandomSampler(wd, generator=torch.Generator().manual_seed(0))
        batches = torch.utils.data.BatchSampler(sampler, batch, drop_last=True)
        loader = ThreadedBatchLoader(wd, batches, num_threads=threads, pin_memory=torch.cuda.is_available())
    else:
        loader = wd.loader(batch, shuffle=True, num_workers=workers, seed=0, drop_last=True)
    n, t0, nbytes = 0, None, 0
    while True:
        for x, y, _s in loader:
            if t0 is None:  # skip the first batch (worker start-up)
                t0 = time.perf_counter()
                continue
            n += len(x)
            nbytes += x.numel() * 4 + y.numel() * 4
            if time.perf_counter() - t0 > seconds:
                dt = time.perf_counter() - t0
                return dict(loader=f"{threads} threads" if threads else f"{workers} worker processes", workers=workers, batch=batch, windows_per_s=n / dt, mb_per_s=nbytes / dt / 1e6, x_shape=list(x.shape[1:]), y_shape=list(y.shape[1:]))
        if t0 is not None and time.perf_counter() - t0 > seconds:
            break
    return {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--volumes", type=int, default=1200)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", type=int, nargs="*", default=[0, 2])
    ap.add_argument("--threads", type=int, nargs="*", default=[])
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = build(Path(tmp), args.volumes)
        rows = [measure(path, args.batch, w, args.seconds) for w in args.workers]
        rows += [measure(path, args.batch, 0, args.seconds, threads=t) for t in args.threads]
    print("| loader | batch | window (x) | target (y) | windows/s | MB/s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['loader']} | {r['batch']} | {'x'.join(map(str, r['x_shape']))} | {'x'.join(map(str, r['y_shape']))} | {r['windows_per_s']:.0f} | {r['mb_per_s']:.0f} |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
