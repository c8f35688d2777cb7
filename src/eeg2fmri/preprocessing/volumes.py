"""BOLD target side: MNI brain mask, confound regression, resampling to a target grid.

Train-only standardisation lives in :class:`eeg2fmri.preprocessing.bold.Standardizer`
and detrending in :func:`eeg2fmri.preprocessing.bold.detrend`; this module adds the
grid- and confound-related steps. Grids are ``(affine, shape)`` pairs; images are
accepted as paths or nibabel objects.
"""

from __future__ import annotations

import fnmatch
import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from eeg2fmri.io.bold import set_qform_if_exact
from eeg2fmri.utils.logs import logger
from eeg2fmri.utils.validation import Eeg2fmriInputError, check_finite

if TYPE_CHECKING:
    import pandas

__all__ = [
    "MOTION_PARAMS",
    "find_confounds",
    "grid_of",
    "mni_mask",
    "read_confounds",
    "regress_confounds",
    "resample_bold",
    "sample_nearest",
    "world_box",
]

#: The six rigid-body motion parameters of an fMRIPrep confounds file.
MOTION_PARAMS = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")


# --------------------------------------------------------------------------- grids
def _load_img(img, what: str):
    import nibabel as nib

    if isinstance(img, (str, os.PathLike)):
        path = Path(img)
        if not path.exists():
            raise Eeg2fmriInputError(f"{path}: {what} file not found; check the path.")
        try:
            return nib.load(path), str(path)
        except Exception as err:  # nibabel raises several types for damaged files
            raise Eeg2fmriInputError(f"{path}: could not read the {what} as NIfTI ({type(err).__name__}: {err}); is it a complete .nii/.nii.gz?") from err
    if hasattr(img, "affine") and hasattr(img, "shape") and hasattr(img, "dataobj"):
        return img, f"{what} image"
    raise Eeg2fmriInputError(f"{what}: expected a NIfTI path or nibabel image, got {type(img).__name__}.")


def grid_of(img_or_grid, what: str = "BOLD") -> tuple[np.ndarray, tuple[int, int, int]]:
    """The ``(affine, shape)`` of a 3D grid.

    Parameters
    ----------
    img_or_grid : path-like | nibabel image | (affine, shape) | (mask array, affine) | object with ``.mask`` and ``.affine``
        A 3D/4D image (its first three axes), an explicit grid, a boolean mask array with
        its affine, or a prepared dataset.
    what : str
        Name used in error messages.

    Returns
    -------
    affine : array, shape (4, 4), float64
    shape : tuple of 3 int
    """
    if hasattr(img_or_grid, "mask") and hasattr(img_or_grid, "affine") and not hasattr(img_or_grid, "dataobj"):
        return np.asarray(img_or_grid.affine, dtype=np.float64), tuple(int(s) for s in np.shape(img_or_grid.mask)[:3])
    if isinstance(img_or_grid, tuple) and len(img_or_grid) == 2:
        a, b = img_or_grid
        if np.shape(a) == (4, 4) and np.ndim(b) == 1 and len(b) >= 3:
            return np.asarray(a, dtype=np.float64), tuple(int(s) for s in b[:3])
        if np.ndim(a) == 3 and np.shape(b) == (4, 4):
            return np.asarray(b, dtype=np.float64), tuple(int(s) for s in np.shape(a))
        raise Eeg2fmriInputError(f"{what}: expected a grid as (affine (4, 4), shape (3,)) or (mask (X, Y, Z), affine (4, 4)), got shapes {np.shape(a)} and {np.shape(b)}.")
    img, _ = _load_img(img_or_grid, what)
    if len(img.shape) < 3:
        raise Eeg2fmriInputError(f"{what}: expected a 3D or 4D image, got shape {img.shape}.")
    return np.asarray(img.affine, dtype=np.float64), tuple(int(s) for s in img.shape[:3])


def world_box(affine: np.ndarray, shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """World (mm) bounding box of a grid's voxels, edges included.

    Returns
    -------
    lo, hi : arrays, shape (3,)
        Minimum and maximum world coordinate over the 8 outer voxel corners.
    """
    s = np.asarray(shape[:3], dtype=np.float64)
    corners = np.array([[i, j, k] for i in (-0.5, s[0] - 0.5) for j in (-0.5, s[1] - 0.5) for k in (-0.5, s[2] - 0.5)])
    w = corners @ np.asarray(affine)[:3, :3].T + np.asarray(affine)[:3, 3]
    return w.min(axis=0), w.max(axis=0)


def _axcodes(affine: np.ndarray) -> str:
    import nibabel as nib

    return "".join(str(c) for c in nib.aff2axcodes(affine))


def sample_nearest(
    data: np.ndarray,
    src_affine: np.ndarray,
    dst_affine: np.ndarray,
    dst_shape: Sequence[int] | None = None,
    *,
    ijk: np.ndarray | None = None,
    fill: float = 0,
) -> np.ndarray:
    """Nearest-neighbour lookup of a 3D volume at the voxel centres of another grid.

    Each target voxel takes the value of the source voxel that contains its centre
    (ties at exact voxel boundaries go to the higher index); centres outside the source
    field of view get ``fill``. Works for any pair of affines (orientation, voxel size,
    field of view).

    Parameters
    ----------
    data : array, shape (X, Y, Z)
        Source volume.
    src_affine, dst_affine : array, shape (4, 4)
        Voxel-to-world affines of the source and target grids.
    dst_shape : tuple of 3 int | None
        Target grid shape; the result is a full volume of this shape.
    ijk : array, shape (n, 3) | None
        Instead of ``dst_shape``: only these target voxel indices (e.g. the voxels of a
        mask, ``np.argwhere(mask)``); the result has shape (n,).
    fill : scalar
        Value outside the source field of view.

    Returns
    -------
    out : array, shape ``dst_shape`` or (n,), dtype of ``data``
    """
    data = np.asarray(data)
    m = np.linalg.solve(np.asarray(src_affine, dtype=np.float64), np.asarray(dst_affine, dtype=np.float64))
    if ijk is None:
        if dst_shape is None:
            raise Eeg2fmriInputError("sample_nearest: expected dst_shape or ijk, got neither; pass the target grid shape.")
        shape = tuple(int(s) for s in dst_shape[:3])
        out = np.full(shape, fill, dtype=data.dtype)
        jj, kk = np.meshgrid(np.arange(shape[1]), np.arange(shape[2]), indexing="ij")
        for i in range(shape[0]):  # one target slice at a time bounds the memory
            pts = np.stack([np.full(jj.size, i), jj.ravel(), kk.ravel()], axis=1)
            out[i] = _lookup(data, m, pts, fill).reshape(shape[1], shape[2])
        return out
    return _lookup(data, m, np.asarray(ijk), fill)


def _lookup(data: np.ndarray, m: np.ndarray, pts: np.ndarray, fill) -> np.ndarray:
    src = np.floor(pts @ m[:3, :3].T + m[:3, 3] + 0.5).astype(np.int64)
    inside = np.all((src >= 0) & (src < np.asarray(data.shape[:3])), axis=1)
    out = np.full(len(pts), fill, dtype=data.dtype)
    s = src[inside]
    out[inside] = data[s[:, 0], s[:, 1], s[:, 2]]
    return out


# --------------------------------------------------------------------------- MNI mask
@functools.lru_cache(maxsize=1)
def _mni_brain():
    from nilearn.datasets import load_mni152_brain_mask

    img = load_mni152_brain_mask(resolution=1)
    data = np.asarray(img.dataobj) > 0
    data.setflags(write=False)
    return data, np.asarray(img.affine, dtype=np.float64)


def mni_mask(img_or_affine_shape, *, min_coverage: float = 0.5, where: str = "BOLD") -> np.ndarray:
    """nilearn's MNI152 brain mask (1 mm, bundled) sampled onto the BOLD grid (nearest).

    Only meaningful for BOLD already in MNI space (e.g. fMRIPrep
    ``space-MNI152NLin2009cAsym``). Combine it with a data mask if the field of view is
    partial: ``mni_mask(img) & compute_mask(img)``.

    Parameters
    ----------
    img_or_affine_shape : path-like | nibabel image | (affine, shape)
        The BOLD image (3D or 4D) or its grid.
    min_coverage : float
        Log a warning when the mask covers less than this fraction of the MNI brain
        volume (partial field of view, or data not in MNI space).
    where : str
        Name used in messages.

    Returns
    -------
    mask : array of bool, shape (X, Y, Z)
    """
    affine, shape = grid_of(img_or_affine_shape, where)
    brain, brain_aff = _mni_brain()
    mask = sample_nearest(brain, brain_aff, affine, shape, fill=False)
    if not mask.any():
        lo, hi = world_box(affine, shape)
        raise Eeg2fmriInputError(
            f"{where}: the MNI152 brain mask does not overlap the BOLD grid (world box {np.round(lo, 1).tolist()}..{np.round(hi, 1).tolist()} mm, "
            f"orientation {_axcodes(affine)}); mask='mni' needs BOLD in MNI space (e.g. fMRIPrep space-MNI152NLin2009cAsym), otherwise use the data mask."
        )
    voxel_mm3 = abs(np.linalg.det(affine[:3, :3]))
    coverage = mask.sum() * voxel_mm3 / (brain.sum() * abs(np.linalg.det(brain_aff[:3, :3])))
    if coverage < min_coverage:
        logger.warning("%s: the MNI brain mask on this grid covers only %.0f%% of the MNI brain; is the BOLD in MNI space with a full field of view?", where, 100 * coverage)
    logger.info("%s: MNI152 brain mask on the %s grid: %d voxels (%.0f%% of the MNI brain)", where, "x".join(map(str, shape)), int(mask.sum()), 100 * coverage)
    return mask


# --------------------------------------------------------------------------- confounds
_SPATIAL_ENTITIES = ("space", "res", "den", "cohort", "desc")


def bold_stems(bold_path: str | os.PathLike) -> tuple[str, str] | None:
    """``(name, raw)`` of a BIDS BOLD file: its name without ``_bold.nii[.gz]``, and that name without the spatial
    entities fMRIPrep adds (``space``, ``res``, ``den``, ``cohort``, ``desc``): the raw run's name. None when the file
    name does not end in ``_bold.nii[.gz]``."""
    name = Path(bold_path).name
    for ext in (".nii.gz", ".nii"):
        if name.endswith(ext):
            name = name[: -len(ext)]
            break
    if not name.endswith("_bold"):
        return None
    name = name[: -len("_bold")]
    return name, "_".join(p for p in name.split("_") if p.split("-", 1)[0] not in _SPATIAL_ENTITIES)


def find_confounds(bold_path: str | os.PathLike) -> Path:
    """The fMRIPrep confounds file of a preprocessed BOLD run (same folder).

    ``sub-01_task-rest_run-1_space-MNI152NLin2009cAsym_res-2_desc-preproc_bold.nii.gz``
    maps to ``sub-01_task-rest_run-1_desc-confounds_timeseries.tsv`` (or the older
    ``_desc-confounds_regressors.tsv``): the entities ``space``, ``res``, ``den``,
    ``cohort`` and ``desc`` are dropped.

    Returns
    -------
    path : Path
    """
    path = Path(bold_path)
    stems = bold_stems(path)
    if stems is None:
        raise Eeg2fmriInputError(f"{path}: expected a BIDS BOLD file name ending in _bold.nii[.gz]; pass the confounds TSV path explicitly.")
    stem = stems[1]
    tried = [path.with_name(f"{stem}_desc-confounds_{kind}.tsv") for kind in ("timeseries", "regressors")]
    for cand in tried:
        if cand.exists():
            return cand
    raise Eeg2fmriInputError(f"{path}: no confounds file found; expected {tried[0].name} (fMRIPrep) next to the BOLD; put the run's confounds TSV there under that name (as fMRIPrep writes it), or drop the confounds option.")


def read_confounds(path: str | os.PathLike, columns: Sequence[str] | str) -> pandas.DataFrame:
    """Read chosen columns of a BIDS/fMRIPrep ``*_desc-confounds_timeseries.tsv``.

    Parameters
    ----------
    path : path-like
        Tab-separated file with a header row; ``n/a`` marks missing values.
    columns : str | sequence of str
        Column names or shell-style patterns (``"trans_*"``, ``"a_comp_cor_0[0-4]"``,
        ``"motion_outlier*"``), kept in the requested order (a pattern's matches in file
        order, duplicates once). :data:`MOTION_PARAMS` lists the six motion parameters.

    Returns
    -------
    confounds : pandas.DataFrame, shape (n_volumes, n_confounds), float64
        Missing values at the start of a column (the first row of ``*_derivative1``,
        ``framewise_displacement``, ``dvars``) are replaced by the column's mean, which
        makes them neutral in :func:`regress_confounds`.
    """
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise Eeg2fmriInputError(f"{path}: confounds file not found; expected a *_desc-confounds_timeseries.tsv next to the preprocessed BOLD.")
    try:
        df = pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=True)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise Eeg2fmriInputError(f"{path}: could not read a tab-separated table with a header row ({type(err).__name__}: {err}); expected a BIDS confounds TSV.") from err
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise Eeg2fmriInputError(f"{path}: expected a header row and one row per volume, found {df.shape[0]} row(s) and {df.shape[1]} column(s).")
    requested = [columns] if isinstance(columns, str) else list(columns)
    if not requested:
        raise Eeg2fmriInputError(f"{path}: expected at least one confound column, got none; e.g. columns=MOTION_PARAMS.")
    names, missing = [], []
    for pat in requested:
        hits = [c for c in df.columns if fnmatch.fnmatchcase(c, pat)] if any(ch in pat for ch in "*?[") else ([pat] if pat in df.columns else [])
        if not hits:
            missing.append(pat)
        names += [h for h in hits if h not in names]
    if missing:
        shown = ", ".join(list(df.columns[:25])) + (" ..." if df.shape[1] > 25 else "")
        raise Eeg2fmriInputError(f"{path}: column(s) {missing} not found; available: {shown}; pass names or patterns such as 'trans_*'.")
    out = {}
    for c in names:
        col = pd.to_numeric(df[c], errors="coerce")
        bad = col.isna() & df[c].notna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise Eeg2fmriInputError(f"{path}: column {c!r} holds non-numeric value {df[c].iloc[i]!r} at row {i}; expected numbers or n/a.")
        v = col.to_numpy(dtype=np.float64, copy=True)
        fin = np.isfinite(v)
        if not fin.any():
            raise Eeg2fmriInputError(f"{path}: column {c!r} is entirely n/a; drop it from columns.")
        first = int(np.argmax(fin))
        if not fin[first:].all():
            rows = (np.flatnonzero(~fin[first:]) + first)[:5].tolist()
            raise Eeg2fmriInputError(f"{path}: column {c!r} has n/a at row(s) {rows} after its first value; only leading n/a (derivatives) are filled; fix or drop the column.")
        v[:first] = v[first:].mean()
        out[c] = v
    return pd.DataFrame(out)


def regress_confounds(y: np.ndarray, confounds, *, keep_mean: bool = True, drift: np.ndarray | None = None,
                      where: str = "BOLD") -> np.ndarray:
    """Remove confound time courses from every column by least squares.

    The confounds are centred, so the mean of each column of ``y`` is untouched
    (``keep_mean=True``); the residual is ``y - Q Q^T y`` with ``Q`` an orthonormal
    basis of the centred confounds (rank-deficient or duplicated confounds are fine).
    With ``drift``, the confounds are fitted together with those columns and only
    the confounds' part is removed (the drift stays): their effect is then estimated
    net of the slow trends a later :func:`~eeg2fmri.preprocessing.bold.detrend`
    removes, so the detrended residual holds none of the confounds (Frisch-Waugh-Lovell;
    nilearn's ``signal.clean`` filters the confounds with the signal for the same reason).
    Without it, the slow part of a confound (a lagged heart rate, a motion drift) also
    fits the drift, and detrending then leaves its mirror image in the data.

    Parameters
    ----------
    y : array, shape (n_volumes, n_voxels)
        Masked BOLD (or ROI time series).
    confounds : array | DataFrame, shape (n_volumes, n_confounds) or (n_volumes,)
        E.g. from :func:`read_confounds`.
    keep_mean : bool
        ``False`` also removes each column's mean.
    drift : array, shape (n_volumes, n_drift) | None
        Columns fitted jointly and kept, e.g. :func:`~eeg2fmri.preprocessing.bold.drift_basis`.
    where : str
        Name used in error messages.

    Returns
    -------
    residuals : array, shape (n_volumes, n_voxels), float32
    """
    yv = np.asarray(y)
    if yv.ndim != 2:
        raise Eeg2fmriInputError(f"{where}: expected y of shape (n_volumes, n_voxels), got shape {yv.shape}; use y[:, None] for one time series.")
    c = np.asarray(confounds, dtype=np.float64)
    if c.ndim == 1:
        c = c[:, None]
    if c.ndim != 2:
        raise Eeg2fmriInputError(f"{where}: expected confounds of shape (n_volumes, n_confounds), got shape {c.shape}.")
    n = yv.shape[0]
    if c.shape[0] != n:
        raise Eeg2fmriInputError(
            f"{where}: confounds have {c.shape[0]} rows but the BOLD has {n} volumes; expected one row per volume "
            + (f"(drop the rows of discarded dummy scans, e.g. confounds[{c.shape[0] - n}:], if the BOLD was trimmed)."
               if c.shape[0] > n else "(fewer rows than volumes: are they the confounds of this run, from the same fMRIPrep output?).")
        )
    check_finite(c, "confounds", where=where)
    check_finite(yv, "y", where=where)
    if c.shape[1] >= n - 1:
        raise Eeg2fmriInputError(f"{where}: expected fewer confounds than volumes - 1, got {c.shape[1]} confounds for {n} volumes; select fewer columns.")
    cc = c - c.mean(axis=0)
    if drift is not None:
        d = np.asarray(drift, dtype=np.float64)
        if d.ndim != 2 or d.shape[0] != n:
            raise Eeg2fmriInputError(f"{where}: expected drift of shape ({n}, n_columns), got shape {d.shape}.")
        du, ds, _ = np.linalg.svd(np.column_stack([np.ones(n), d]), full_matrices=False)  # (a rank-safe basis: the constant may repeat)
        dq = du[:, ds > ds.max() * max(n, d.shape[1] + 1) * np.finfo(np.float64).eps]
        if cc.shape[1] + dq.shape[1] >= n:
            raise Eeg2fmriInputError(f"{where}: expected fewer confounds plus drift columns than volumes, got {cc.shape[1]} confounds and "
                                     f"{dq.shape[1]} drift columns for {n} volumes; select fewer columns.")
        perp = cc - dq @ (dq.T @ cc)  # the confounds net of the drift (and the mean)
        u, s, _ = np.linalg.svd(perp, full_matrices=False)
        # cut relative to the confounds' own scale: a confound inside the drift (fMRIPrep's cosineXX, a trend) has nothing left
        # to fit (a review: its rounding residue, divided by ~1e-16, blew the BOLD up to 1e5)
        scale = np.linalg.svd(cc, compute_uv=False).max() if cc.size else 0.0
        q = u[:, s > scale * 1e-8]
        # FWL: once detrended, y - q q^T y is the joint fit's residual (q is orthogonal to the drift and the mean, which stay)
        remove = q
    else:
        u, s, _ = np.linalg.svd(cc, full_matrices=False)
        keep = s > (s.max() if len(s) else 0.0) * max(cc.shape) * np.finfo(np.float64).eps
        q = u[:, keep]
        remove = q
    out = np.empty(yv.shape, dtype=np.float32)
    step = max(1, (1 << 22) // max(n, 1))  # ~32 MiB of float64 per block
    for j in range(0, yv.shape[1], step):
        blk = np.asarray(yv[:, j : j + step], dtype=np.float64)
        res = blk - remove @ (q.T @ blk)
        if not keep_mean:
            res -= res.mean(axis=0)
        out[:, j : j + step] = res
    return out


# --------------------------------------------------------------------------- resampling
def _as_triplet(v, name: str, where: str, integer: bool) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(v, dtype=np.float64))
    if arr.size == 1 and not integer:
        arr = np.repeat(arr, 3)
    ok = arr.shape == (3,) and np.all(np.isfinite(arr)) and np.all(arr > 0)
    if ok and integer:
        ok = np.all(arr == np.round(arr))
    if not ok:
        kind = "3 integers >= 1" if integer else "a positive number or 3 positive numbers (mm)"
        raise Eeg2fmriInputError(f"{where}: expected {name} as {kind}, got {v!r}.")
    return arr


def _box_affine(affine: np.ndarray, shape: np.ndarray, new_shape: np.ndarray, new_vox: np.ndarray) -> np.ndarray:
    """Affine of a grid with the source's axis directions, ``new_vox`` spacing, same centre."""
    rot = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    out = np.eye(4)
    out[:3, :3] = rot * new_vox
    centre = affine[:3, :3] @ ((shape - 1) / 2) + affine[:3, 3]
    out[:3, 3] = centre - out[:3, :3] @ ((new_shape - 1) / 2)
    return out


#: Target voxels within this distance (in source voxels) outside the source box read its edge (rounding of the composed
#: affines); farther ones are outside the field of view (0).
_EDGE_TOL = 1e-4


def _just_outside_source_box(affine: np.ndarray, shape: np.ndarray, new_aff: np.ndarray, new_shape: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """Target voxels within ``_EDGE_TOL`` source voxels of a source box's face (either side, on some axis, and nowhere
    farther outside), with their source coordinates clipped into the box; ``None`` when there are none.

    Returns
    -------
    index : array of int, shape (n_near, 3)
        The target voxels.
    coords : array of float, shape (n_near, 3)
        Their source voxel coordinates, clipped to ``[0, n - 1]``.
    """
    a = np.linalg.inv(np.asarray(affine, np.float64)) @ np.asarray(new_aff, np.float64)
    dims = [int(v) for v in new_shape]
    grids = np.meshgrid(*[np.arange(d, dtype=np.float64) for d in dims], indexing="ij", sparse=True)
    near = np.zeros(dims, dtype=bool)
    far = np.zeros(dims, dtype=bool)
    for ax in range(3):
        c = a[ax, 0] * grids[0] + a[ax, 1] * grids[1] + a[ax, 2] * grids[2] + a[ax, 3]
        beyond = np.maximum(-c, c - (float(shape[ax]) - 1.0))  # > 0 outside the box on this axis
        near |= np.abs(beyond) <= _EDGE_TOL  # on the edge up to rounding, either side (SciPy may place it just beyond)
        far |= beyond > _EDGE_TOL
    near &= ~far
    if not near.any():
        return None
    index = np.argwhere(near)
    coords = index.astype(np.float64) @ a[:3, :3].T + a[:3, 3]
    return index, np.clip(coords, 0.0, np.asarray(shape, np.float64)[:3] - 1.0)


def _values_at(data: np.ndarray, coords: np.ndarray, nearest: bool) -> np.ndarray:
    """``data`` (X, Y, Z[, T]) at source voxel coordinates ``coords`` (n, 3) inside the box: nearest voxel, or trilinear
    interpolation (for the few voxels on the box's edge: no spline prefilter over the whole volume)."""
    shape = np.asarray(data.shape[:3])
    if nearest:
        i = np.clip(np.rint(coords).astype(int), 0, shape - 1)
        return data[i[:, 0], i[:, 1], i[:, 2]]
    i0 = np.clip(np.floor(coords).astype(int), 0, np.maximum(shape - 2, 0))
    w = coords - i0
    out = 0.0
    for dx in (0, 1):
        for dy in (0, 1):
            for dz in (0, 1):
                j = np.minimum(i0 + (dx, dy, dz), shape - 1)
                wt = (w[:, 0] if dx else 1 - w[:, 0]) * (w[:, 1] if dy else 1 - w[:, 1]) * (w[:, 2] if dz else 1 - w[:, 2])
                out = out + wt.reshape(-1, *([1] * (data.ndim - 3))) * data[j[:, 0], j[:, 1], j[:, 2]]
    return np.asarray(out, dtype=data.dtype)


def resample_bold(
    img,
    target_shape: Sequence[int] | None = None,
    voxel_size: float | Sequence[float] | None = None,
    target_affine: np.ndarray | None = None,
    *,
    interpolation: str = "continuous",
    where: str | None = None,
):
    """Resample a 3D/4D image to a target grid (nilearn, continuous interpolation by default).

    Exactly one way of naming the grid:

    * ``target_shape`` alone: the same world box (field of view and centre), divided into
      ``target_shape`` voxels along the image's own axes (e.g. ``(64, 64, 30)`` for parity
      with published pipelines);
    * ``voxel_size`` alone: voxels of that size (mm, scalar or per axis) along the image's
      axes, ``ceil(extent / voxel_size)`` of them, centred on the same world box;
    * ``target_affine`` (4, 4) and ``target_shape``: that exact grid (e.g. another image's).

    The data are cast to float32 first (no integer-casting warnings); NaN/Inf raise.
    The repetition time (4th zoom) and units of the header are kept.

    Parameters
    ----------
    img : path-like | nibabel image
        BOLD (4D) or any 3D image.
    target_shape : tuple of 3 int | None
    voxel_size : float | tuple of 3 float | None
    target_affine : array, shape (4, 4) | None
    interpolation : {"continuous", "linear", "nearest"}
        As :func:`nilearn.image.resample_img`.
    where : str | None
        Name used in error messages (default: the path).

    Returns
    -------
    img : nibabel.Nifti1Image
        float32, shape ``target_shape (+ n_volumes)``.
    """
    import nibabel as nib
    from nilearn.image import resample_img

    src, name = _load_img(img, "BOLD")
    where = where or name
    if interpolation not in ("continuous", "linear", "nearest"):
        raise Eeg2fmriInputError(f"{where}: unknown interpolation {interpolation!r}; choose one of: 'continuous', 'linear', 'nearest'.")
    if len(src.shape) not in (3, 4):
        raise Eeg2fmriInputError(f"{where}: expected a 3D or 4D image, got shape {src.shape}.")
    if src.affine is None:
        raise Eeg2fmriInputError(f"{where}: the image has no affine, so the orientation is unknown; build it with an affine (nib.Nifti1Image(data, affine)).")
    affine = np.asarray(src.affine, dtype=np.float64)
    shape = np.asarray(src.shape[:3], dtype=np.float64)
    given = [k for k, v in (("target_shape", target_shape), ("voxel_size", voxel_size), ("target_affine", target_affine)) if v is not None]
    if given == ["target_shape"]:
        new_shape = _as_triplet(target_shape, "target_shape", where, integer=True)
        new_vox = shape * np.linalg.norm(affine[:3, :3], axis=0) / new_shape
        new_aff = _box_affine(affine, shape, new_shape, new_vox)
    elif given == ["voxel_size"]:
        new_vox = _as_triplet(voxel_size, "voxel_size", where, integer=False)
        extent = shape * np.linalg.norm(affine[:3, :3], axis=0)
        new_shape = np.ceil(extent / new_vox - 1e-6)
        new_aff = _box_affine(affine, shape, new_shape, new_vox)
    elif given == ["target_shape", "target_affine"]:
        new_shape = _as_triplet(target_shape, "target_shape", where, integer=True)
        new_aff = np.asarray(target_affine, dtype=np.float64)
        if new_aff.shape != (4, 4) or not np.all(np.isfinite(new_aff)) or abs(np.linalg.det(new_aff[:3, :3])) < 1e-12:
            raise Eeg2fmriInputError(f"{where}: expected target_affine as an invertible (4, 4) voxel-to-mm matrix, got {np.array2string(new_aff, precision=3)}.")
    else:
        raise Eeg2fmriInputError(
            f"{where}: expected exactly one of target_shape, voxel_size, or target_affine together with target_shape, got {given or 'none'}; "
            "e.g. target_shape=(64, 64, 30) or voxel_size=3.0."
        )
    hdr = src.header
    is_nifti = isinstance(hdr, nib.Nifti1Header)
    sform_code = int(hdr["sform_code"]) if is_nifti else 1
    qform_code = int(hdr["qform_code"]) if is_nifti else 0
    if sform_code == 0 and qform_code == 0:
        raise Eeg2fmriInputError(f"{where}: the header has neither an sform nor a qform, so the orientation is unknown; fix the NIfTI header (e.g. with fslorient or nibabel set_sform).")
    from eeg2fmri.io.bold import iter_bold_chunks

    # streamed like every BOLD read: a .nii.gz is read to its gzip trailer, so a damaged file fails its CRC check (a review:
    # get_fdata never reaches it)
    data = np.concatenate([x for _, x in iter_bold_chunks(src, where=where)], axis=3) if len(src.shape) == 4 else \
        np.asarray(src.get_fdata(dtype=np.float32))
    check_finite(data, "BOLD data", where=where)
    zooms = tuple(float(z) for z in hdr.get_zooms())
    # target voxels that map onto the source box's edge up to rounding (user test 19: a run of the same box stored flipped
    # mapped its edge voxels to -4e-07; SciPy's constant mode leaves points beyond the edge at the fill value, so real brain
    # voxels became 0): their values are read at the clipped coordinates after resampling; everything else is nilearn's
    edge = _just_outside_source_box(affine, shape, new_aff, new_shape)
    src_aff = affine
    src32 = nib.Nifti1Image(data, src_aff)
    src32.header.set_sform(src_aff, code=max(sform_code, 1))
    out = resample_img(
        src32,
        target_affine=new_aff,
        target_shape=tuple(int(s) for s in new_shape),
        interpolation=interpolation,
        force_resample=True,
        copy_header=True,
        fill_value=0.0,
    )
    res_data = np.asarray(out.dataobj, dtype=np.float32)
    if edge is not None:  # only where SciPy left the fill value (it placed the point beyond the edge); elsewhere nilearn's value
        idx, coords = edge
        got = res_data[idx[:, 0], idx[:, 1], idx[:, 2]]
        filled = np.all(got.reshape(len(idx), -1) == 0.0, axis=1)
        if filled.any():
            idx, coords = idx[filled], coords[filled]
            res_data[idx[:, 0], idx[:, 1], idx[:, 2]] = _values_at(data, coords, nearest=interpolation == "nearest")
    res = nib.Nifti1Image(res_data, new_aff)
    res.set_sform(new_aff, code=max(sform_code, 1))
    set_qform_if_exact(res, new_aff, 1)
    new_vox_sizes = tuple(float(v) for v in np.linalg.norm(new_aff[:3, :3], axis=0))
    res.header.set_zooms(new_vox_sizes + zooms[3:4] if data.ndim == 4 and len(zooms) > 3 else new_vox_sizes)
    if hasattr(hdr, "get_xyzt_units"):
        res.header.set_xyzt_units(*hdr.get_xyzt_units())
    if not np.allclose(new_aff, affine) or tuple(new_shape) != tuple(shape):
        logger.info("%s: resampled %s grid (%s mm) to %s (%s mm)", where, "x".join(str(int(s)) for s in shape),
                    "x".join(f"{v:.3g}" for v in np.linalg.norm(affine[:3, :3], axis=0)), "x".join(str(int(s)) for s in new_shape),
                    "x".join(f"{v:.3g}" for v in new_vox_sizes))
    return res


# --------------------------------------------------------------------------- resampling in time


def resampled_times(onsets: np.ndarray, tr: float, native_tr: float | None = None, end: float | None = None) -> np.ndarray:
    """Onsets of a run resampled in time to ``tr``, on the package's timing convention (a volume is the sample of its
    acquisition's middle, onset + TR/2): the new volumes' middles step by ``tr`` from the first old volume's middle to
    the last one's.

    Parameters
    ----------
    onsets : array, shape (n_volumes,)
        The run's volume onsets (s), increasing.
    tr : float
        The new repetition time (s).
    native_tr : float | None
        The run's own TR (s); ``None``: the onsets' median step.
    end : float | None
        The EEG's end (s): new volumes whose acquisition would end after it (or start before 0) are left out.

    Returns
    -------
    new_onsets : array, shape (n_new,)
    """
    on = np.asarray(onsets, dtype=np.float64)
    ntr = float(np.median(np.diff(on))) if native_tr is None else float(native_tr)
    a, b = on[0] + ntr / 2.0, on[-1] + ntr / 2.0  # the first and last old volumes' middles
    n_new = int(np.floor((b - a) / float(tr) + 1e-6)) + 1
    new_on = a + np.arange(n_new) * float(tr) - float(tr) / 2.0
    keep = new_on >= -1e-9
    if end is not None:
        keep &= new_on + float(tr) <= float(end) + 1e-6
    return new_on[keep]


def resample_bold_time(bold: np.ndarray, times: np.ndarray, new_times: np.ndarray, *, where: str = "BOLD",
                       chunk: int = 4096) -> np.ndarray:
    """Voxel (or region) series resampled in time: low-pass below the new Nyquist frequency, then a cubic spline.

    Parameters
    ----------
    bold : array, shape (n_volumes, n_voxels)
        The series, sampled at ``times``.
    times : array, shape (n_volumes,)
        Sample times (s), increasing (a run's marker onsets: regular up to the scanner's jitter).
    new_times : array, shape (n_new,)
        Where to sample them, within ``[times[0], times[-1]]``.
    where : str
        The run, for messages.
    chunk : int
        Voxels per step (memory: a few float64 copies of ``n_volumes x chunk``).

    Returns
    -------
    new_bold : array, shape (n_new, n_voxels), float32

    Notes
    -----
    Where the new step is longer than the old one, each series is filtered first (4th-order Butterworth, forward and
    backward, at 0.9 times the new Nyquist frequency) so that no power above the new Nyquist frequency folds into the
    resampled series; a shorter step interpolates only (nothing above the old Nyquist frequency can be recovered).
    """
    from scipy.interpolate import CubicSpline
    from scipy.signal import butter, sosfiltfilt

    y = np.asarray(bold)
    t = np.asarray(times, dtype=np.float64)
    tn = np.asarray(new_times, dtype=np.float64)
    if y.ndim != 2 or len(t) != len(y):
        raise Eeg2fmriInputError(f"{where}: expected BOLD of shape (n_volumes, n_voxels) with one time per volume, got {y.shape} and "
                                 f"{len(t)} times.")
    if len(t) < 4 or not np.all(np.diff(t) > 0):
        raise Eeg2fmriInputError(f"{where}: expected at least 4 volumes at increasing times to resample in time, got {len(t)}; leave "
                                 "the run out or prepare it without resample_tr.")
    if len(tn) and (tn[0] < t[0] - 1e-6 or tn[-1] > t[-1] + 1e-6):
        raise Eeg2fmriInputError(f"{where}: expected the new volume times within the run's {t[0]:.3f}-{t[-1]:.3f} s, got "
                                 f"{tn[0]:.3f}-{tn[-1]:.3f} s.")
    step = float(np.median(np.diff(t)))
    new_step = float(np.median(np.diff(tn))) if len(tn) > 1 else step
    # the filter and the spline are linear in the series: one (n_new, n_volumes) operator for every voxel, applied to the
    # voxels' deviations from their means by chunks (a spline per chunk held 4 x n_volumes x chunk float64 coefficients)
    op = np.eye(len(t))
    if new_step > step * (1 + 1e-6):
        cutoff = 0.9 * 0.5 / new_step  # Hz, below the new Nyquist frequency
        sos = butter(4, cutoff, btype="low", fs=1.0 / step, output="sos")
        op = sosfiltfilt(sos, op, axis=0, padlen=min(len(t) - 1, 3 * 2 * 4))
    op = CubicSpline(t, op, axis=0)(tn)
    out = np.empty((len(tn), y.shape[1]), dtype=np.float32)
    for v0 in range(0, y.shape[1], chunk):
        part = np.asarray(y[:, v0 : v0 + chunk], dtype=np.float64)
        mean = part.mean(axis=0)
        out[:, v0 : v0 + chunk] = op @ (part - mean) + mean
    return out
