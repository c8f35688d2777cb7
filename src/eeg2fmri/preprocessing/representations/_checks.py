"""Input checks shared by the representations (private)."""

from __future__ import annotations

import numpy as np

from eeg2fmri.utils.validation import (
    Eeg2fmriInputError,
    check_finite,
)


def _check_data_2d(data, where: str) -> np.ndarray:
    arr = np.asarray(data)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise Eeg2fmriInputError(f"{where}: expected EEG data of shape (n_chans, n_times), got shape {arr.shape}; pass raw.get_data() or a 2D array.")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise Eeg2fmriInputError(f"{where}: expected real numeric EEG data, got dtype {arr.dtype}; convert it with np.asarray(data, dtype=float).")
    check_finite(arr, "EEG data", where=where)
    return arr
