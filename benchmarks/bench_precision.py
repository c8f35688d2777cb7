"""Published models' training time and validation r in float32 vs bfloat16 mixed precision, on the CPU.

Simulates the leaderboard's data (4 subjects x 10 min, seed 0) into ``--data`` once, prepares the
model's input, makes the first LOSO fold and trains each model for ``--epochs`` epochs (no early
stopping) with its recommended config at ``precision: "32"`` and ``"bf16-mixed"``; prints seconds and
the validation r per epoch.

    python benchmarks/bench_precision.py --data /tmp/lb [--epochs 3] [--threads 1] [--models calhas2022 ...]
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

INPUTS = {"calhas2022": "stft", "bricman_transformer": "raw", "bricman_conv": "raw", "bricman_fc": "raw", "beira": "raw"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="simulated BIDS root (written when missing)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", nargs="+", default=["calhas2022", "bricman_transformer", "bricman_conv", "beira"])
    args = ap.parse_args(argv)

    import torch

    from eeg2fmri.datasets import prepare_dataset
    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.models.base import get_model_class
    from eeg2fmri.simulate import simulate_dataset
    from eeg2fmri.training import fit_model
    from eeg2fmri.training.trainer import native_bf16

    torch.set_num_threads(args.threads)
    if not (args.data / "dataset_description.json").exists():
        simulate_dataset(args.data, n_subjects=4, minutes=10, seed=0)
    print(f"torch {torch.__version__}, {args.threads} thread(s), native bf16 on this CPU: {native_bf16('cpu')}, {args.epochs} epochs, LOSO fold 0")
    print("| model | float32 s | bf16-mixed s | speed-up | val r per epoch, float32 | val r per epoch, bf16 |")
    print("|---|---:|---:|---:|---|---|")
    for name in args.models:
        ds = prepare_dataset(args.data, {"representation": INPUTS[name]}, progress_bar=False)
        split = make_split(ds, "loso")
        split = split[0] if isinstance(split, list) else split
        targets = split_targets(ds, split)
        row = {}
        for prec in ("32", "bf16-mixed"):
            cfg = copy.deepcopy(get_model_class(name).recommended_train_config)
            cfg["optimizer"].update({"max_epochs": args.epochs, "patience": None, "precision": prec})
            cfg["trainer"] = {"accelerator": "cpu", "progress_bar": False}
            t0 = time.perf_counter()
            res = fit_model(ds, split, name, {}, targets=targets, train_config=cfg)
            row[prec] = (time.perf_counter() - t0, [round(float(h.get("val_r", float("nan"))), 4) for h in res.info["history"]])
        (a, ra), (b, rb) = row["32"], row["bf16-mixed"]
        print(f"| {name} | {a:.1f} | {b:.1f} | {a / b:.2f}x | {ra} | {rb} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
