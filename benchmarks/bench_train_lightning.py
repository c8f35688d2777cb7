"""End-to-end `eeg2fmri train` throughput (Lightning, DataLoader from memory-mapped windows, DDP).

Builds a NODDI-sized prepared dataset with synthetic arrays (STFT 64 x 134 frames, 64x64x30
targets), then trains with `eeg2fmri.training.train` (the code behind `eeg2fmri train`) for a
fixed number of epochs with --devices 1, 2, ... and prints two rates: the steady-state
training rate (windows per second between consecutive training steps, all GPUs together,
the first steps of each epoch excluded) and the whole fit (train windows x epochs / fit
time, including start-up, validation and checkpoint writing every epoch).

    python benchmarks/bench_train_lightning.py [--volumes 3000] [--epochs 3] [--devices 1 2] [--batch 256] [--workers 8] [--threads 0]

``--threads N`` fetches batches with N threads of each training process (``trainer.loader_threads``)
instead of ``--workers`` DataLoader worker processes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from bench_dataloader import build  # noqa: E402


class StepTimer:
    """Lightning callback: time between consecutive training steps (rank 0 writes a JSON file)."""

    def __init__(self, path: str, skip: int = 3) -> None:
        import pytorch_lightning as pl

        self.__class__ = type("StepTimerCB", (StepTimer, pl.Callback), {})
        self.path, self.skip, self.times, self.sizes = path, skip, [], []

    def on_train_epoch_start(self, trainer, pl_module):
        self.epoch_times, self.epoch_sizes = [], []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        import time

        import torch

        torch.cuda.synchronize() if torch.cuda.is_available() else None
        self.epoch_times.append(time.perf_counter())
        self.epoch_sizes.append(len(batch[0]) * trainer.world_size)

    def on_train_epoch_end(self, trainer, pl_module):
        t, n = self.epoch_times[self.skip :], self.epoch_sizes[self.skip :]
        if len(t) > 1:
            self.times.append(t[-1] - t[0])
            self.sizes.append(sum(n[1:]))
        if trainer.global_rank == 0:
            Path(self.path).write_text(json.dumps({"seconds": sum(self.times), "windows": sum(self.sizes)}))


def single(args) -> None:
    """One training run on ``args.single`` devices (re-executed per rank by Lightning's DDP launcher)."""
    from eeg2fmri.workflows import train

    tmp = Path(args.workdir)
    cfg = yaml.safe_load((tmp / "cfg.yaml").read_text())
    train(cfg, out=tmp / f"run{args.single}", devices=args.single, overwrite=True, progress_bar=False, evaluate_test=False,
          callbacks=[StepTimer(str(tmp / f"steps{args.single}.json"))])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="calhas2022")
    ap.add_argument("--volumes", type=int, default=3000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--devices", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--threads", type=int, default=0, help="trainer.loader_threads (> 0: loader threads instead of worker processes)")
    ap.add_argument("--precision", default="bf16-mixed")
    ap.add_argument("--single", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.single is not None:
        single(args)
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        prep = build(tmp, args.volumes)
        for n in args.devices:
            cfg = {"seed": 0, "data": {"prepared": str(prep)}, "split": {"protocol": "within", "n_frames": 10},
                   "model": {"name": args.model}, "loss": {"mse": 1.0, "latent_cosine": 1.0, "organize_channels": 0.01},
                   "optimizer": {"batch_size": args.batch, "max_epochs": args.epochs, "patience": 1000, "precision": args.precision},
                   "trainer": {"devices": n, "num_workers": 0 if args.threads else args.workers, "loader_threads": args.threads,
                               "progress_bar": False}}
            (tmp / "cfg.yaml").write_text(yaml.safe_dump(cfg))
            out = tmp / f"run{n}"
            res = subprocess.run([sys.executable, __file__, "--single", str(n), "--workdir", str(tmp)], capture_output=True, text=True)
            if res.returncode:
                print(res.stdout[-3000:], res.stderr[-3000:])
                continue
            m = json.loads((out / "metrics.json").read_text())
            t = m["training"]
            st = json.loads((tmp / f"steps{n}.json").read_text())
            rows.append({"devices": n, "n_train": t["n_train"], "epochs": t["epochs"], "fit_s": t["fit_seconds"],
                         "fit_windows_per_s": t["n_train"] * t["epochs"] / t["fit_seconds"], "windows_per_s": st["windows"] / st["seconds"] if st["seconds"] > 0 else float("nan")})
    base = next((r["windows_per_s"] for r in rows if r["devices"] == 1), None)
    loader = f"{args.threads} threads" if args.threads else f"{args.workers} worker processes"
    print("| model | devices | loader (per GPU) | train windows | epochs | steady training rate | speed-up | whole fit (incl. start-up, validation, checkpoints) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        sp = f"{r['windows_per_s'] / base:.2f}x" if base else "-"
        print(f"| {args.model} | {r['devices']} | {loader} | {r['n_train']} | {r['epochs']} | {r['windows_per_s']:.0f} windows/s | {sp} | {r['fit_s']:.1f} s = {r['fit_windows_per_s']:.0f} windows/s |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
