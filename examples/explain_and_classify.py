"""Explain a flagship model and decode task blocks on quickstart-like simulated data; writes OUT/explain.png (the README's
docs/img/explain.png is made with --png docs/img/explain.png).

    python examples/explain_and_classify.py --out /tmp/xc [--minutes 8] [--subjects 4] [--seed 0]

Simulates the default simulator with 20 s task blocks (``--task blocks``), prepares it, trains
``eeg2fmri_net`` (its recommended config; within-subject split), then runs ``eeg2fmri explain`` (whole
mask, Integrated Gradients on 128 test windows) and ``eeg2fmri classify`` (synth / eeg / bold), prints
both tables and composes channel topomap, band bars and learned HRFs into one PNG.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--subjects", type=int, default=4)
    p.add_argument("--minutes", type=float, default=8.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--permutations", type=int, default=100)
    p.add_argument("--reuse", action="store_true", help="reuse OUT/run (skip simulate, prepare, train)")
    p.add_argument("--png", default=None, help="figure path (default OUT/explain.png; a file of the checkout is never the default)")
    a = p.parse_args()
    if a.png is None:
        a.png = str(Path(a.out) / "explain.png")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from eeg2fmri.workflows.classify import classify_run, format_table
    from eeg2fmri.workflows.explain import explain_run

    out = Path(a.out)
    t0 = time.perf_counter()
    if not (a.reuse and (out / "run" / "model" / "model.json").exists()):
        _train(out, a)
    t1 = time.perf_counter()
    ex_dir, res = explain_run(out / "run", progress_bar=False, overwrite=True)
    ig = res["methods"]["integrated_gradients"]
    t2 = time.perf_counter()
    print(f"simulate + prepare + train: {t1 - t0:.0f} s (0 with --reuse); explain: {t2 - t1:.0f} s ({res['n_windows']} test windows)")
    print("band importance (IG, whole mask):", ", ".join(f"{b} {v:.3f}" for b, v in zip(res["band_names"], ig["band"])))
    top = sorted(zip(ig["channel"], res["channels"]), reverse=True)[:5]
    print("top channels:", ", ".join(f"{c} {v:.3f}" for v, c in top), "| IG convergence delta", f"{ig['convergence_delta']:.1e}")
    print(res.get("lrp_note", ""))
    cl_dir, cl = classify_run(out / "run", n_permutations=a.permutations, progress_bar=False, overwrite=True)
    print(format_table(cl))
    print(f"classify: {time.perf_counter() - t2:.0f} s")
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for ax, name in zip(axes, ("channels_topomap.png", "bands.png", "hrfs.png")):
        ax.imshow(plt.imread(ex_dir / name))
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(a.png, dpi=80)
    print("wrote", a.png)


def _train(out: Path, a: argparse.Namespace) -> None:
    """Simulate (task blocks), prepare, train eeg2fmri_net on the within-subject split, save OUT/run/model with its split."""
    from eeg2fmri.datasets import prepare_dataset
    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.models import get_model_class, save_model
    from eeg2fmri.simulate import simulate_dataset
    from eeg2fmri.training import fit_model

    bids = simulate_dataset(out / "bids", n_subjects=a.subjects, minutes=a.minutes, seed=a.seed, task="blocks", progress_bar=False)
    ds = prepare_dataset(bids, progress_bar=False)
    prep = ds.save(out / "prepared")
    sp = make_split(ds, "within")
    tcfg = {**get_model_class("eeg2fmri_net").recommended_train_config, "seed": a.seed, "trainer": {"progress_bar": False}}
    fitted = fit_model(ds, sp, "eeg2fmri_net", {"seed": a.seed}, targets=split_targets(ds, sp), train_config=tcfg)
    card = {"training data": {"prepared": str(prep)}, "split": {"protocol": "within", "gap_volumes": sp.gap}}
    save_model(fitted.model, out / "run" / "model", card=card, spec=fitted.spec, name="eeg2fmri_net", hparams={"seed": a.seed}, mask=ds.mask,
               affine=ds.affine, window={"n_frames": sp.n_frames, "lag": sp.lag}, prepare=ds.config.to_dict())


if __name__ == "__main__":
    main()
