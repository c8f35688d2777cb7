"""Region (ROI / parcel) time series given as tables instead of BOLD volumes.

Many labs keep the fMRI side of a recording as region series already extracted (a nilearn masker's output saved with
pandas or numpy, a parcellation's time courses, the NeuroBOLT release's DiFuMo-64 tables): one row per volume, one
column per region. :func:`read_target_table` reads such a file and :func:`table_image` wraps it as a 4D image of one
voxel per region along the first axis (identity affine), so that the rest of ``prepare`` -- volume timing, leading
volumes, detrending, windows -- treats it like BOLD whose "voxels" are the regions. A dataset prepared from tables
records ``rois = {"names": [...], "source": "table"}`` and has no voxel grid.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["TABLE_SUFFIXES", "INDEX_COLUMNS", "is_target_table", "read_target_table", "table_image", "TABLE_SOURCE"]

#: File endings read as region tables (``.pkl``: a pandas DataFrame, read without running code from the file).
TABLE_SUFFIXES = (".tsv", ".csv", ".npy", ".pkl")
#: Header names of a first column that numbers or times the rows instead of holding a region (pandas' index, the
#: ``onset`` column of ``eeg2fmri synthesize``'s region file): dropped.
INDEX_COLUMNS = ("", "index", "unnamed: 0", "onset", "time", "time_s", "volume", "volume_index", "frame")
#: ``PreparedDataset.rois["source"]`` of a dataset prepared from tables.
TABLE_SOURCE = "table"


def is_target_table(path: str | os.PathLike | None) -> bool:
    """Whether ``path`` names a region table (by its ending, :data:`TABLE_SUFFIXES`) rather than a NIfTI image."""
    return path is not None and isinstance(path, (str, os.PathLike)) and Path(path).suffix.lower() in TABLE_SUFFIXES


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_delimited(path: Path) -> tuple[np.ndarray, list[str]]:
    delim = "\t" if path.suffix.lower() == ".tsv" else ","
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = [row for row in csv.reader(fh, delimiter=delim) if row and any(c.strip() for c in row)]
    if not rows:
        raise Eeg2fmriInputError(f"{path}: expected a table of region series (one row per volume, one column per region), found an "
                                 "empty file.")
    head = [c.strip() for c in rows[0]]
    if all(_is_number(c) for c in head):  # no header (numpy.savetxt): regions numbered
        names, body = [f"roi_{i + 1}" for i in range(len(head))], rows
    else:
        names, body = head, rows[1:]
    widths = {len(r) for r in body}
    if len(widths) > 1 or (body and len(body[0]) != len(names)):
        bad = next(i for i, r in enumerate(body) if len(r) != len(names))
        raise Eeg2fmriInputError(f"{path}: expected {len(names)} fields on every row (as the first row has), found {len(body[bad])} on "
                                 f"data row {bad + 1}; every volume needs one value per region ('{'tab' if delim == chr(9) else delim}'-separated).")
    drop = 1 if names and names[0].strip().lower() in INDEX_COLUMNS else 0
    try:
        values = np.array([[float(v) if v.strip().lower() not in ("n/a", "nan", "") else np.nan for v in r[drop:]] for r in body],
                          dtype=np.float64)
    except ValueError as err:
        raise Eeg2fmriInputError(f"{path}: expected numbers below the header row, found {err}; one row per volume, one column per "
                                 "region, the header (if any) naming the regions.") from None
    return values.reshape(len(body), len(names) - drop), names[drop:]


def read_target_table(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """Read a region table: one row per volume (in acquisition order), one column per region.

    Parameters
    ----------
    path : path-like
        ``.tsv`` / ``.csv`` (a header row naming the regions, or none: ``roi_1``, ``roi_2``, ...; a first column
        named as in :data:`INDEX_COLUMNS` -- pandas' index, ``onset`` -- is dropped), ``.npy`` (a 2D array; regions
        ``roi_1``, ...) or ``.pkl`` (a pandas DataFrame, read with a restricted unpickler; the NeuroBOLT release's
        global-signal columns are dropped).

    Returns
    -------
    values : array, shape (n_volumes, n_regions), float32
    names : list of str
        The regions' names.

    Raises
    ------
    Eeg2fmriInputError
        A file that does not exist or cannot be read as such a table, a table with fewer than 3 rows, missing or
        non-finite values, repeated region names or a region constant over the run (each named, with the fix).
    """
    path = Path(path)
    if not path.is_file():
        raise Eeg2fmriInputError(f"{path}: region table not found; check the path.")
    suffix = path.suffix.lower()
    if suffix in (".tsv", ".csv"):
        values, names = _read_delimited(path)
    elif suffix == ".npy":
        try:
            values = np.load(path, allow_pickle=False)
        except ValueError as err:
            raise Eeg2fmriInputError(f"{path}: expected a numeric .npy array (volumes x regions), found one that needs pickle ({err}); "
                                     "save it with numpy.save(path, array.astype('float32')).") from None
        if values.ndim != 2 or not np.issubdtype(values.dtype, np.number):
            raise Eeg2fmriInputError(f"{path}: expected a 2D numeric array (volumes x regions), found shape {values.shape} of "
                                     f"{values.dtype}; save the region series as one row per volume, one column per region.")
        names = [f"roi_{i + 1}" for i in range(values.shape[1])]
    elif suffix == ".pkl":
        from eeg2fmri.io.layouts.neurobolt import read_roi_targets

        values, names = read_roi_targets(path)
    else:
        raise Eeg2fmriInputError(f"{path}: expected a region table ending in {', '.join(TABLE_SUFFIXES)}, got {path.suffix!r}.")
    values = np.asarray(values, dtype=np.float64)
    if values.shape[0] < 3 or values.shape[1] < 1:
        raise Eeg2fmriInputError(f"{path}: expected at least 3 volumes (rows) and 1 region (column), found {values.shape[0]} x "
                                 f"{values.shape[1]}; is the table transposed (regions as rows)? One row per volume, please.")
    bad = ~np.isfinite(values)
    if bad.any():
        rows, cols = np.nonzero(bad)
        raise Eeg2fmriInputError(f"{path}: expected a value for every volume and region, found {int(bad.sum())} missing or non-finite "
                                 f"(first: volume {int(rows[0])}, region {names[int(cols[0])]!r}); fill them or leave those regions or "
                                 "volumes out of the file.")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise Eeg2fmriInputError(f"{path}: expected one column per region, found the name(s) {dup[:5]} more than once; rename them.")
    flat = np.ptp(values, axis=0) == 0
    if flat.any():
        raise Eeg2fmriInputError(f"{path}: region(s) {[names[i] for i in np.nonzero(flat)[0][:5]]} are constant over the run "
                                 "(no series to learn); leave them out of the table.")
    return values.astype(np.float32), list(names)


def table_image(values: np.ndarray, tr: float):
    """A region table as a 4D NIfTI image: one voxel per region along the first axis, identity affine, TR ``tr``.

    Parameters
    ----------
    values : array, shape (n_volumes, n_regions)
    tr : float
        Repetition time (s), written to the header's fourth zoom.

    Returns
    -------
    nibabel.Nifti1Image, shape (n_regions, 1, 1, n_volumes)
    """
    import nibabel as nib

    data = np.ascontiguousarray(np.asarray(values, dtype=np.float32).T[:, None, None, :])
    img = nib.Nifti1Image(data, np.eye(4))
    img.header.set_zooms((1.0, 1.0, 1.0, float(tr)))
    img.header.set_xyzt_units("mm", "sec")
    return img
