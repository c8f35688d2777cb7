"""Read BOLD NIfTI images (paths or nibabel images) and their repetition time."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["read_bold", "bold_sidecar"]


def bold_sidecar(path: Path) -> Path | None:
    """The ``*_bold.json`` next to a ``*_bold.nii[.gz]`` file, if it exists."""
    name = path.name
    for ext in (".nii.gz", ".nii"):
        if name.endswith(ext):
            cand = path.with_name(name[: -len(ext)] + ".json")
            return cand if cand.exists() else None
    return None


def _header_tr(img) -> float | None:
    zooms = img.header.get_zooms()
    if len(zooms) < 4 or not np.isfinite(zooms[3]) or zooms[3] <= 0:
        return None
    tr = float(zooms[3])
    unit = img.header.get_xyzt_units()[1] if hasattr(img.header, "get_xyzt_units") else "sec"
    if unit == "msec":
        tr /= 1000.0
    elif unit == "usec":
        tr /= 1e6
    return tr


def read_bold(bold, *, tr: float | None = None, tr_tolerance: float = 0.01):
    """Read a 4D BOLD image and its repetition time.

    Parameters
    ----------
    bold : path-like | nibabel.Nifti1Image
        4D image ``(X, Y, Z, n_volumes)``.
    tr : float | None
        Repetition time in seconds; by default taken from the BIDS sidecar
        (``RepetitionTime``) or else the NIfTI header (pixdim[4] with its unit).
    tr_tolerance : float
        Relative disagreement allowed between sidecar and header.

    Returns
    -------
    img : nibabel.Nifti1Image
        The image (data not loaded yet).
    tr : float
        Repetition time in seconds.
    """
    import nibabel as nib

    if isinstance(bold, (str, os.PathLike)):
        path = Path(bold)
        if not path.exists():
            raise Eeg2fmriInputError(f"{path}: BOLD file not found; check the path.")
        try:
            img = nib.load(path)
        except Exception as err:  # nibabel raises several types for damaged files
            raise Eeg2fmriInputError(f"{path}: could not read NIfTI ({type(err).__name__}: {err}); is it a complete .nii/.nii.gz?") from err
        where = str(path)
        sidecar = bold_sidecar(path)
    else:
        img, where, sidecar = bold, "BOLD image", None
    if len(img.shape) != 4 or img.shape[3] < 2:
        raise Eeg2fmriInputError(f"{where}: expected a 4D BOLD image (X, Y, Z, n_volumes) with >= 2 volumes, found shape {img.shape}.")
    header_tr = _header_tr(img)
    side_tr = None
    if sidecar is not None:
        meta = json.loads(sidecar.read_text())
        if "RepetitionTime" in meta:
            side_tr = float(meta["RepetitionTime"])
    if tr is None:
        tr = side_tr if side_tr is not None else header_tr
        if tr is None:
            raise Eeg2fmriInputError(f"{where}: no repetition time in a sidecar or the header; pass tr=<seconds>.")
        if side_tr is not None and header_tr is not None and abs(side_tr - header_tr) > tr_tolerance * side_tr:
            raise Eeg2fmriInputError(
                f"{where}: TR disagreement: sidecar {sidecar.name} says RepetitionTime={side_tr} s, the NIfTI header says {header_tr} s; "
                "fix the wrong one or pass tr=<seconds> explicitly."
            )
    return img, float(tr)


def load_bold_data(img, where: str = "BOLD image") -> np.ndarray:
    """Load image data as float32, turning truncation errors into clear messages."""
    try:
        return np.asarray(img.dataobj, dtype=np.float32)
    except Exception as err:
        raise Eeg2fmriInputError(f"{where}: could not read the image data ({type(err).__name__}: {err}); the file may be truncated, re-copy or re-export it.") from err
