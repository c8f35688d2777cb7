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
TABLE_SUFFIXES = (".tsv", ".csv", ".txt", ".npy", ".pkl")
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


def _is_ramp(col: np.ndarray) -> bool:
    """Whether a column counts or times the rows instead of holding a region: 0..n-1, 1..n, or evenly spaced increasing
    values (onsets)."""
    col = np.asarray(col, dtype=np.float64)
    if len(col) < 3 or not np.isfinite(col).all():
        return False
    steps = np.diff(col)
    return bool(steps[0] > 0 and np.allclose(steps, steps[0], rtol=1e-3, atol=1e-6))


def _read_delimited(path: Path) -> tuple[np.ndarray, list[str]]:
    suffix = path.suffix.lower()
    delim = {".tsv": "\t", ".csv": ","}.get(suffix)
    with open(path, newline="", encoding="utf-8-sig") as fh:
        if delim is None:  # .txt: numpy.savetxt's whitespace (or tabs)
            rows = [line.split() for line in fh if line.strip()]
        else:
            rows = [row for row in csv.reader(fh, delimiter=delim) if row and any(c.strip() for c in row)]
    if not rows:
        raise Eeg2fmriInputError(f"{path}: expected a table of region series (one row per volume, one column per region), found an "
                                 "empty file.")
    if rows[0] and rows[0][0].lstrip().startswith("#"):  # numpy.savetxt(..., header=...) writes "# name1,name2"
        if delim:  # the csv reader split the header already: only the "#" of its first cell goes
            rows[0] = [rows[0][0].lstrip()[1:].strip(), *(c.strip() for c in rows[0][1:])]
            if not rows[0][0]:
                rows[0] = rows[0][1:]
        else:
            rows[0] = " ".join(rows[0]).lstrip()[1:].strip().replace(",", " ").split()
    head = [c.strip() for c in rows[0]]
    header = not all(_is_number(c) for c in head)
    if not header and len(rows) > 1 and len(head) > 1 and all(float(c).is_integer() for c in head):
        ints = [int(float(c)) for c in head]
        body_ints = all(float(c).is_integer() for r in rows[1:11] for c in r if _is_number(c))
        if ints in (list(range(len(head))), list(range(1, len(head) + 1))) or (
                not body_ints and all(b > a for a, b in zip(ints, ints[1:]))):
            # pandas' integer column names (DataFrame(array).to_csv(index=False)), or atlas label values (1001, 2001, ...)
            # over series that are not whole numbers: a header, not volume 0 (a review)
            header = True
    if header:
        names, body = head, rows[1:]
    else:  # no header (numpy.savetxt): regions numbered
        names, body = [f"roi_{i + 1}" for i in range(len(head))], rows
    widths = {len(r) for r in body}
    if len(widths) > 1 or (body and len(body[0]) != len(names)):
        bad = next(i for i, r in enumerate(body) if len(r) != len(names))
        sep = {"\t": "tab", ",": "comma", None: "whitespace"}[delim]
        raise Eeg2fmriInputError(f"{path}: expected {len(names)} fields on every row (as the first row has), found {len(body[bad])} on "
                                 f"data row {bad + 1}; every volume needs one value per region ({sep}-separated).")
    try:
        values = np.array([[float(v) if v.strip().lower() not in ("n/a", "nan", "") else np.nan for v in r] for r in body],
                          dtype=np.float64).reshape(len(body), len(names))
    except ValueError as err:
        raise Eeg2fmriInputError(f"{path}: expected numbers below the header row, found {err}; one row per volume, one column per "
                                 "region, the header (if any) naming the regions.") from None
    # columns that count or time the rows (pandas' index, an onset column), wherever they are; an unnamed first column only
    # where its values are such a ramp (user test 26: an empty first header cell over a region dropped that region)
    keep = []
    for j, nm in enumerate(names):
        low = nm.strip().lower()
        if header and low in INDEX_COLUMNS and low != "":
            continue
        if header and low == "":
            if j == 0 and _is_ramp(values[:, 0]):
                continue
            raise Eeg2fmriInputError(f"{path}: column {j + 1} has no name in the header row and holds {'no row index' if j == 0 else 'values'}; "
                                     "expected a name for every region (a first column without a name is dropped only when it numbers "
                                     "or times the rows, as pandas' index does): name it, or remove it.")
        if not header and j == 0 and _is_ramp(values[:, 0]):  # a headerless table written with its row index
            from eeg2fmri.utils.logs import logger

            logger.warning("%s: the first column counts the rows (%g, %g, ...), as a written index does: left out; name the columns "
                           "in a header row to keep it", path, values[0, 0], values[1, 0])
            continue
        keep.append(j)
    return values[:, keep], [names[j] for j in keep]


def read_target_table(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """Read a region table: one row per volume (in acquisition order), one column per region.

    Parameters
    ----------
    path : path-like
        ``.tsv`` / ``.csv`` / ``.txt`` (whitespace-separated, as ``numpy.savetxt`` writes; a header row naming the
        regions, or none: ``roi_1``, ``roi_2``, ...; columns named as in :data:`INDEX_COLUMNS` -- pandas' index,
        ``onset`` -- are dropped wherever they are, an unnamed first column only where it numbers or times the rows, and so
        is a header-less first column that does), ``.npy`` (a 2D array; regions ``roi_1``, ...) or ``.pkl`` (a pandas DataFrame, read with a restricted unpickler; the NeuroBOLT release's
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
    if suffix in (".tsv", ".csv", ".txt"):
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
                                 "(no series to learn); leave them out of every run's table (every run needs the same columns), or "
                                 "leave this run out.")
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
