"""Noise and oracle ceilings of a simulated dataset on the voxels of its prepared version.

The evaluation protocol (:mod:`eeg2fmri.evaluation.protocol`) reports them
next to every model on simulated data; the simulator-specific part (where
the ground truth is, how a run maps to its file) lives here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from eeg2fmri.simulate.simulator import ceilings, load_groundtruth

__all__ = ["groundtruth_ceilings"]


def groundtruth_ceilings(ds: Any, run_index: int, volumes: np.ndarray) -> dict[str, np.ndarray] | None:
    """Noise/oracle ceilings of a simulated run on ``volumes``, on the prepared voxels.

    Parameters
    ----------
    ds : PreparedDataset
        A prepared dataset (:class:`eeg2fmri.datasets.PreparedDataset`; read:
        ``provenance["bids_root"]``, ``runs[run_index].key`` and ``mask``).
    run_index : int
        Index of the run in ``ds.runs``.
    volumes : array of int, shape (n,)
        Volumes of the run to score.

    Returns
    -------
    ceilings : dict | None
        ``noise`` and ``oracle``, arrays of shape (n_voxels,) (NaN for
        prepared voxels outside the simulated brain); ``None`` when the
        dataset has no ``derivatives/groundtruth``.
    """
    import nibabel as nib

    root = ds.provenance.get("bids_root")
    if not root:
        return None
    gt_dir = Path(root) / "derivatives" / "groundtruth"
    if not (gt_dir / "mask.nii.gz").exists():
        return None
    run = ds.runs[run_index]
    parts = dict(p.split("-", 1) for p in run.key.split("_") if "-" in p)
    if "sub" not in parts:
        return None
    gt = load_groundtruth(root, parts["sub"], int(parts.get("run", 1)), parts.get("task"))
    gmask = np.asarray(nib.load(gt_dir / "mask.nii.gz").dataobj) > 0
    if gmask.shape != ds.mask.shape:
        return None
    # prepared volume k is BOLD volume k + the first one prepare kept (dummy scans, non-steady-state volumes left out)
    info = (ds.provenance.get("inputs") or {}).get(run.key, {})
    if info.get("volume_times_s"):  # resampled in time: no ground-truth volume is a prepared one
        from eeg2fmri.utils.logs import logger

        logger.info("%s: resampled in time (prepare option resample_tr): no noise ceiling from the simulator's volumes", run.key)
        return None
    first = int((info.get("volumes") or [0])[0] or 0)
    c = ceilings(gt, np.asarray(volumes) + first)
    gidx = np.cumsum(gmask.ravel()) - 1
    flat = np.flatnonzero(ds.mask.ravel())
    inside = gmask.ravel()[flat]
    out = {}
    for k, v in c.items():
        arr = np.full(len(flat), np.nan, dtype=np.float64)
        arr[inside] = v[gidx[flat[inside]]]
        out[k] = arr
    return out
