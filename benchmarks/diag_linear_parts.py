"""Diagnostic (session 20): train the flagship on one fold, then score it on the test windows with parts of its fitted
linear path removed (the reduced-rank output, the tangent ridge, the per-output gain), next to ``ridge_hrf``.

    python benchmarks/diag_linear_parts.py PREPARED ATLAS TEST_SUBJECT     (one LOSO fold: that subject held out)
    python benchmarks/diag_linear_parts.py PREPARED ATLAS within

It prints the validation choices of the fold and one line per variant: whole-mask median r and ROI r.
"""
from __future__ import annotations

import copy
import logging
import sys

_PARTS = {
    "default": (),
    "no output rank": ("out_basis", "out_centre"),
    "no tangent ridge": ("ridge_tan_coef", "ridge_tan_proj", "ridge_tan_basis"),
    "band-power ridge alone": ("out_basis", "out_centre", "ridge_tan_coef", "ridge_tan_proj", "ridge_tan_basis"),
    "band-power ridge, no gain": ("out_basis", "out_centre", "ridge_tan_coef", "ridge_tan_proj", "ridge_tan_basis", "voxel_gain", "gain_centre"),
}
_INFO = ("tangent_weight", "tangent_hrf", "output_rank", "ridge_weight", "val_r_power_ridge", "val_r_tangent_ridge", "val_r_ridge",
         "val_r_output_rank")


def fit_fold(prepared: str, test: str) -> tuple:
    """One fold (``test``: ``"within"`` or the held-out subject) of a prepared dataset: the dataset, split, targets and
    the fitted ``ridge_hrf``, ``mean`` and flagship (defaults, seed 0, its recommended training config)."""
    from eeg2fmri.datasets import load_prepared
    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.models.flagship import EEG2fMRINet
    from eeg2fmri.training import fit_model

    ds = load_prepared(prepared)
    split = make_split(ds, "within") if test == "within" else make_split(ds, "subjects", test_subjects=[test])
    targets = split_targets(ds, split)
    ref = fit_model(ds, split, "ridge_hrf", targets=targets)
    base = fit_model(ds, split, "mean", targets=targets)
    net = fit_model(ds, split, "eeg2fmri_net", {"seed": 0}, targets=targets, train_config=EEG2fMRINet.recommended_train_config)
    return ds, split, targets, ref, base, net


def main(prepared: str, atlas: str, test: str) -> None:
    from eeg2fmri.evaluation import evaluate_split

    logging.disable(logging.WARNING)
    ds, split, targets, ref, base, net = fit_fold(prepared, test)
    print({k: v for k, v in net.info.items() if k in _INFO})
    for label, drop in _PARTS.items():
        model = copy.deepcopy(net.model)
        for name in drop:
            model.module._buffers.pop(name, None)
        g = evaluate_split(ds, split, targets, model, baseline=base.model, reference=ref.model, atlas=atlas, n_boot=0)["group"]["models"]
        key = next(k for k in g if k not in ("ridge_hrf", "mean"))
        print(f"{label:28s} r {g[key]['median_r']:.4f} ROI {g[key].get('roi_median_r') or float('nan'):.4f}   "
              f"ridge_hrf r {g['ridge_hrf']['median_r']:.4f} ROI {g['ridge_hrf'].get('roi_median_r') or float('nan'):.4f}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    main(*sys.argv[1:])
