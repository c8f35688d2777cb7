"""One model on one benchmark fold: fit time, epochs and the validation history per epoch.

Shows why a fit takes as long as it does (how early stopping behaved): for each epoch the
validation loss, the validation mean voxel r and the training loss. The model trains with
its ``recommended_train_config`` (what ``eeg2fmri benchmark`` gives it) unless
``--monitor``/``--patience``/``--max-epochs`` replace those keys.

    python benchmarks/fit_history.py PREPARED --model calhas2022 [--protocol loso] [--fold 1] [--threads 1]
        [--monitor val_r] [--patience 10] [--max-epochs 60]

PREPARED is a prepared dataset of the representation the model reads (e.g. ``OUT/prepared_stft``
of ``eeg2fmri benchmark BIDS --out OUT``).
"""

from __future__ import annotations

import argparse
import time


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("prepared")
    ap.add_argument("--model", required=True)
    ap.add_argument("--protocol", default="loso")
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--monitor", default=None)
    ap.add_argument("--patience", type=int, default=None)
    ap.add_argument("--max-epochs", type=int, default=None)
    args = ap.parse_args(argv)

    import torch

    from eeg2fmri.datasets import load_prepared
    from eeg2fmri.datasets.targets import split_targets
    from eeg2fmri.models import get_model_class
    from eeg2fmri.training import fit_model
    from eeg2fmri.workflows.benchmark import _folds

    torch.set_num_threads(args.threads)
    ds = load_prepared(args.prepared)
    folds = _folds(ds, args.protocol, 5, {})
    split = folds[args.fold]
    targets = split_targets(ds, split)
    rec = dict(getattr(get_model_class(args.model), "recommended_train_config", {}))
    opt = dict(rec.get("optimizer", {}))
    for key, val in (("monitor", args.monitor), ("patience", args.patience), ("max_epochs", args.max_epochs)):
        if val is not None:
            opt[key] = val
    cfg = {**rec, "optimizer": opt, "seed": args.seed, "trainer": {"accelerator": "cpu", "log": [], "progress_bar": False}}
    t0 = time.perf_counter()
    res = fit_model(ds, split, args.model, {}, targets=targets, train_config=cfg)
    dt = time.perf_counter() - t0
    info = res.info
    print(f"{args.model}, {args.protocol} fold {args.fold + 1}/{len(folds)}, {args.threads} thread(s): fit {dt:.1f} s, "
          f"{info.get('epochs')} epochs, {info.get('n_train')} training / {info.get('n_val')} validation windows, "
          f"monitor {info.get('monitor')}, stopped early: {info.get('stopped_early')}")
    print("| epoch | val_loss | val_r | train_loss |")
    print("|---:|---:|---:|---:|")
    for h in info.get("history", []):
        print(f"| {h['epoch']} | {h.get('val_loss', float('nan')):.4f} | {h.get('val_r', float('nan')):+.4f} | {h.get('train_loss', float('nan')):.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
