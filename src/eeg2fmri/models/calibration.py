"""The validation calibration stored in a model folder (``calibration.json`` + ``calibration.npz``).

Written by ``eeg2fmri train`` and the quickstart from
:func:`eeg2fmri.evaluation.uncertainty.calibrate_uncertainty` (validation
windows only), read by ``synthesize`` for a calibrated uncertainty NIfTI.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from eeg2fmri.utils.atomic import atomic_file
from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["CALIBRATION_NAME", "load_calibration", "save_calibration"]

#: File of a model folder holding its validation calibration (the arrays are in ``calibration.npz``).
CALIBRATION_NAME = "calibration.json"
_CALIBRATION_ARRAYS = "calibration.npz"


def save_calibration(model_dir: str | os.PathLike, cal: dict[str, Any], *, overwrite: bool = True) -> Path:
    """Write :func:`calibrate_uncertainty`'s result into a model folder (``calibration.json`` + ``calibration.npz``)."""
    folder = Path(model_dir)
    with atomic_file(folder / _CALIBRATION_ARRAYS, overwrite=overwrite) as tmp:
        with open(tmp, "wb") as fh:
            extra = {k: np.asarray(cal[k], dtype=np.float32) for k in ("val_r", "val_r_null95") if cal.get(k) is not None}
            extra.update({k: np.asarray(cal[k], dtype=np.float16) for k in ("val_true", "val_pred") if cal.get(k) is not None})
            np.savez(fh, halfwidths=np.asarray(cal["halfwidths"], dtype=np.float32), laplace_scale=np.asarray(cal["laplace_scale"], dtype=np.float32),
                     **extra)
    meta = {k: cal[k] for k in ("levels", "temperature", "meaning", "n_calibration")}
    for k in ("scale", "crossfit_nll", "own_scale_not_chosen", "own_scale_unavailable", "residuals", "interval_multipliers", "val_r_null"):
        if k in cal:
            meta[k] = cal[k]
    meta["method"] = ("per-output split-conformal half-widths and Laplace scale (mean |residual|) on the validation windows; "
                      "temperature: maximum-likelihood factor on the model's own scale (read as a Laplace scale); scale: the one synthesize "
                      "writes (own: the model's scale times the temperature; residuals: the per-output Laplace scale), the lower "
                      "cross-fitted validation NLL")
    meta["arrays"] = _CALIBRATION_ARRAYS
    with atomic_file(folder / CALIBRATION_NAME, overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return folder / CALIBRATION_NAME


def load_calibration(model_dir: str | os.PathLike, n_outputs: int | None = None) -> dict[str, Any] | None:
    """The calibration saved in a model folder, or None when it has none.

    Raises
    ------
    Eeg2fmriInputError
        The files are unreadable or hold another number of outputs than the model.
    """
    folder = Path(model_dir)
    if not (folder / CALIBRATION_NAME).is_file():
        return None
    try:
        meta = json.loads((folder / CALIBRATION_NAME).read_text(encoding="utf-8"))
        with np.load(folder / meta.get("arrays", _CALIBRATION_ARRAYS)) as z:
            arrays = {k: np.asarray(z[k]) for k in ("halfwidths", "laplace_scale")}
            arrays.update({k: np.asarray(z[k]) for k in ("val_r", "val_r_null95") if k in z.files})  # (since session 27)
            arrays.update({k: np.asarray(z[k]) for k in ("val_true", "val_pred") if k in z.files})  # (since session 33)
    except (OSError, ValueError, KeyError) as err:
        raise Eeg2fmriInputError(f"{folder / CALIBRATION_NAME}: unreadable calibration ({err}); re-run eeg2fmri train, or delete "
                                 f"{CALIBRATION_NAME} and {_CALIBRATION_ARRAYS} to synthesise without it.") from err
    if n_outputs is not None and arrays["laplace_scale"].shape != (n_outputs,):
        raise Eeg2fmriInputError(f"{folder / CALIBRATION_NAME}: expected a scale for each of the model's {n_outputs} outputs, "
                                 f"found {arrays['laplace_scale'].shape}; the calibration belongs to another model; re-run eeg2fmri train.")
    return {**meta, **arrays}
