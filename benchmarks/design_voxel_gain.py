"""Design experiment (session 21): the flagship's per-output gain rule, scored on held-out windows.

    python benchmarks/design_voxel_gain.py PREPARED:ATLAS:FOLD [PREPARED:ATLAS:FOLD ...]

``FOLD`` is ``within`` or a subject (one LOSO fold: that subject held out). Each fold trains the flagship once
(defaults); its validation windows are kept, and the gain buffers are then refitted under each rule (none, the slope
per output as measured -- ``voxel_gain=True`` -- and, at commit ae4c8df where it exists, the empirical-Bayes shrunk
slope -- ``"shrunk"``, rejected: results/design_voxel_gain.txt). The gain
is a positive factor per output, so voxel r does not move; what does is the ROI r (the mean over a region's outputs
weights them by their gains), R² and RMSE. One line per fold and rule, then the mean over folds per rule.
"""
from __future__ import annotations

import logging
import sys
import time


def main(specs: list[str]) -> None:
    import numpy as np
    from diag_linear_parts import fit_fold  # (benchmarks/, the script's folder, is on the path)

    from eeg2fmri.evaluation import evaluate_split
    from eeg2fmri.models.flagship import EEG2fMRINet

    logging.disable(logging.WARNING)
    captured: dict[str, list] = {}
    original = EEG2fMRINet._fit_voxel_gain

    def capture(self, val):  # the validation windows of the fit, as the trainer hands them over
        captured["val"] = val
        return original(self, val)

    EEG2fMRINet._fit_voxel_gain = capture
    from eeg2fmri.models import flagship

    rules = {"none": False, "voxel": "voxel"}
    if "shrunk" in getattr(flagship, "_GAIN_RULES", ()):  # the rejected rule exists at commit ae4c8df only
        rules["shrunk"] = "shrunk"
    rows: dict[str, list] = {k: [] for k in rules}
    print(f"{'fold':44s} {'rule':7s} {'median r':>9s} {'ROI r':>7s} {'R2':>8s} {'RMSE':>7s}  gain q10/q50/q90", flush=True)
    for spec in specs:
        prepared, atlas, fold = spec.rsplit(":", 2)
        t0 = time.time()
        ds, split, targets, ref, base, net = fit_fold(prepared, fold)
        module = net.model.module
        print("  choices:", {k: (round(v, 4) if isinstance(v, float) else v) for k, v in net.info.items()
                             if k in ("tangent_weight", "tangent_hrf", "val_r_power_ridge", "val_r_tangent_ridge", "ridge_weight", "output_rank")}, flush=True)
        for label, rule in rules.items():
            module.fit_voxel_gain = rule
            if rule:
                info = original(module, captured["val"])
                q = "/".join(f"{v:.2f}" for v in info["voxel_gain_quantiles"])
            else:
                for name in module._GAIN_BUFFERS:
                    module._buffers.pop(name, None)
                q = "-"
            g = evaluate_split(ds, split, targets, net.model, baseline=base.model, reference=ref.model, atlas=atlas if atlas != "-" else None,
                               n_boot=0)["group"]["models"]
            key = next(k for k in g if k not in ("ridge_hrf", "mean"))
            m = g[key]
            roi = m.get("roi_median_r")
            rows[label].append((m["median_r"], np.nan if roi is None else roi, m["r2"], m["rmse"]))
            name = f"{prepared.rstrip('/').split('/')[-2]} {fold}"
            print(f"{name:44s} {label:7s} {m['median_r']:9.4f} {np.nan if roi is None else roi:7.4f} {m['r2']:8.4f} {m['rmse']:7.4f}  {q}", flush=True)
        print(f"  ({time.time() - t0:.0f} s; ridge_hrf: median r {g['ridge_hrf']['median_r']:.4f}, ROI r "
              f"{np.nan if g['ridge_hrf'].get('roi_median_r') is None else g['ridge_hrf']['roi_median_r']:.4f}, R2 {g['ridge_hrf']['r2']:.4f})", flush=True)
    print("\nmean over folds (ROI r over the folds with an atlas)")
    for label, vals in rows.items():
        a = np.asarray(vals, dtype=float)
        print(f"  {label:7s} median r {a[:, 0].mean():.4f}  ROI r {np.nanmean(a[:, 1]):.4f}  R2 {a[:, 2].mean():.5f}  RMSE {a[:, 3].mean():.5f}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    main(sys.argv[1:])
