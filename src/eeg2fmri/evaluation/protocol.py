"""Evaluate a fitted model on the test set of a split, with the baselines and ceilings.

Every report shows, on the same test windows:

* the model's voxel-wise Pearson r (median over the brain mask, with a
  per-subject block-bootstrap CI), RMSE and R² in standardised units;
* the subject-mean baseline (predicts the subject's mean training volume; its r
  is undefined because it is constant, so it is compared by RMSE and R²);
* the time-shifted null (the model's own prediction circularly shifted by half
  the test span: what r looks like with the right spectrum but no alignment);
* on simulated data, the noise ceiling and oracle ceiling from the ground truth
  on the same voxels and volumes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from eeg2fmri.datasets.prepared import PreparedDataset
from eeg2fmri.datasets.targets import Split
from eeg2fmri.datasets.windows import run_windows
from eeg2fmri.evaluation.metrics import bootstrap_median_r, pearson_r
from eeg2fmri.utils.logs import logger

__all__ = ["evaluate_split", "groundtruth_ceilings"]


def _r2(y: np.ndarray, p: np.ndarray) -> float:
    ss_res = ((y - p) ** 2).sum()
    ss_tot = ((y - y.mean(0)) ** 2).sum()
    return float(1 - ss_res / ss_tot) if ss_tot > 0 else float("nan")


def groundtruth_ceilings(ds: PreparedDataset, run_index: int, volumes: np.ndarray) -> dict[str, np.ndarray] | None:
    """Noise/oracle ceilings of a simulated run on ``volumes``, on the prepared voxels.

    Returns ``None`` when the dataset has no ``derivatives/groundtruth``.
    Voxels of the prepared mask outside the simulated brain get NaN.
    """
    import nibabel as nib

    from eeg2fmri.simulate import ceilings, load_groundtruth

    root = ds.provenance.get("bids_root")
    if not root:
        return None
    gt_dir = Path(root) / "derivatives" / "groundtruth"
    if not (gt_dir / "mask.nii.gz").exists():
        return None
    run = ds.runs[run_index]
    parts = dict(p.split("-", 1) for p in run.key.split("_"))
    gt = load_groundtruth(root, parts["sub"], int(parts.get("run", 1)), parts.get("task"))
    gmask = np.asarray(nib.load(gt_dir / "mask.nii.gz").dataobj) > 0
    if gmask.shape != ds.mask.shape:
        return None
    c = ceilings(gt, np.asarray(volumes))
    gidx = np.cumsum(gmask.ravel()) - 1
    flat = np.flatnonzero(ds.mask.ravel())
    inside = gmask.ravel()[flat]
    out = {}
    for k, v in c.items():
        arr = np.full(len(flat), np.nan, dtype=np.float64)
        arr[inside] = v[gidx[flat[inside]]]
        out[k] = arr
    return out


def evaluate_split(
    ds: PreparedDataset,
    split: Split,
    targets: dict,
    model: Any,
    *,
    baseline: Any | None = None,
    n_boot: int = 200,
    random_state: int = 0,
) -> dict[str, Any]:
    """Metrics of ``model`` (and baselines) on the test set, per subject and overall.

    Parameters
    ----------
    ds : PreparedDataset
    split : Split
    targets : dict
        From :func:`eeg2fmri.datasets.targets.split_targets`.
    model : object with ``predict(x)``
        Fitted model mapping windows to (n, n_voxels).
    baseline : object with ``predict(x, subjects=...)`` | None
        Fitted subject-mean baseline.
    n_boot : int
        Block-bootstrap resamples for the CI of the median r.

    Returns
    -------
    results : dict
        ``subjects`` (per-subject dicts) and ``summary`` (means over subjects).
    """
    per_subject: dict[str, dict[str, Any]] = {}
    rows: dict[str, list] = {}
    for i, vols in split.selections["test"].items():
        run = ds.runs[i]
        x = run_windows(run, vols, split.n_frames, split.lag)
        y = targets["test"][i]
        p = np.asarray(model.predict(x)).reshape(len(y), -1)
        r = pearson_r(y, p)
        shift = np.roll(p, len(p) // 2, axis=0)
        r_null = pearson_r(y, shift)
        ci = bootstrap_median_r(y, p, n_boot=n_boot, random_state=random_state)
        res = {
            "run": run.key,
            "n_test": int(len(y)),
            "model_median_r": float(np.nanmedian(r)),
            "model_median_r_ci": [float(ci["low"]), float(ci["high"])],
            "model_rmse": float(np.sqrt(np.mean((y - p) ** 2))),
            "model_r2": _r2(y, p),
            "null_shifted_median_r": float(np.nanmedian(r_null)),
        }
        if baseline is not None:
            b = np.asarray(baseline.predict(x, subjects=np.full(len(x), run.subject))).reshape(len(y), -1)
            res["mean_rmse"] = float(np.sqrt(np.mean((y - b) ** 2)))
            res["mean_r2"] = _r2(y, b)
        ceil = groundtruth_ceilings(ds, i, vols)
        if ceil is not None:
            ok = np.isfinite(ceil["noise"]) & np.isfinite(r)
            res["noise_ceiling_median_r"] = float(np.median(ceil["noise"][ok]))
            res["oracle_ceiling_median_r"] = float(np.median(ceil["oracle"][ok]))
            res["model_median_r_in_groundtruth_mask"] = float(np.median(r[ok]))
            res["fraction_of_oracle"] = res["model_median_r_in_groundtruth_mask"] / res["oracle_ceiling_median_r"]
        res["_r"] = r
        per_subject.setdefault(run.subject, {})[run.key] = res
        for k, v in res.items():
            if isinstance(v, float):
                rows.setdefault(k, []).append(v)
    summary = {k: float(np.mean(v)) for k, v in rows.items()}
    logger.info("test median r (mean over runs): %.3f", summary.get("model_median_r", float("nan")))
    return {"protocol": split.protocol, "subjects": per_subject, "summary": summary}
