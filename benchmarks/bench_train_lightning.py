"""End-to-end `eeg2fmri train` throughput (Lightning, DataLoader from memory-mapped windows, DDP).

Builds a NODDI-sized prepared dataset with synthetic arrays (STFT 64 x 134 frames, 64x64x30
targets), then runs `eeg2fmri train` for a fixed number of epochs with --devices 1, 2, ...
and prints windows per second of training (train windows x epochs / fit time, validation
included) and the speed-up over one device.

    python benchmarks/bench_train_lightning.py [--volumes 3000] [--epochs 3] [--devices 1 2] [--batch 256] [--workers 8]
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="calhas2022")
    ap.add_argument("--volumes", type=int, default=3000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--devices", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--precision", default="bf16-mixed")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        prep = build(tmp, args.volumes)
        for n in args.devices:
            cfg = {"seed": 0, "data": {"prepared": str(prep)}, "split": {"protocol": "within", "n_frames": 10},
                   "model": {"name": args.model}, "loss": {"mse": 1.0, "latent_cosine": 1.0, "organize_channels": 0.01},
                   "optimizer": {"batch_size": args.batch, "max_epochs": args.epochs, "patience": 1000, "precision": args.precision},
                   "trainer": {"devices": n, "num_workers": args.workers, "progress_bar": False}}
            cpath = tmp / f"cfg{n}.yaml"
            cpath.write_text(yaml.safe_dump(cfg))
            out = tmp / f"run{n}"
            res = subprocess.run([sys.executable, "-m", "eeg2fmri", "train", str(cpath), "--out", str(out), "--no-test", "-q"], capture_output=True, text=True)
            if res.returncode:
                print(res.stdout[-3000:], res.stderr[-3000:])
                continue
            m = json.loads((out / "metrics.json").read_text())
            t = m["training"]
            rows.append({"devices": n, "n_train": t["n_train"], "epochs": t["epochs"], "fit_s": t["fit_seconds"],
                         "windows_per_s": t["n_train"] * t["epochs"] / t["fit_seconds"]})
    base = next((r["windows_per_s"] for r in rows if r["devices"] == 1), None)
    print("| model | devices | train windows | epochs | fit time | windows/s | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {args.model} | {r['devices']} | {r['n_train']} | {r['epochs']} | {r['fit_s']:.1f} s | {r['windows_per_s']:.0f} | {r['windows_per_s'] / base:.2f}x |" if base else r)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
