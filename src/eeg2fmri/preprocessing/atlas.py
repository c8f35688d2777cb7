"""Parcellations to ROI time series: labels, probabilistic maps, or spheres.

An :class:`Atlas` is fitted to the BOLD grid and mask once (resampling the atlas when
the grids differ) and becomes a sparse averaging matrix ``weights_`` of shape
``(n_rois, n_voxels)``; :meth:`Atlas.transform` maps masked BOLD ``(n_volumes,
n_voxels)`` to ROI time series ``(n_volumes, n_rois)`` with one sparse product.

Examples
--------
>>> atlas = Atlas.from_labels("atlas_dseg.nii.gz").fit((mask, affine))  # doctest: +SKIP
>>> rois = atlas.transform(bold)  # (n_volumes, n_rois)                  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eeg2fmri.preprocessing.volumes import _axcodes, _load_img, grid_of, sample_nearest, world_box
from eeg2fmri.utils.logs import logger
from eeg2fmri.utils.validation import Eeg2fmriInputError, check_choice, check_finite, check_positive

#: (atlas file, grid, message) already warned in this process: an atlas's resampling is said once, not once per fold
_SAID: set = set()

__all__ = ["Atlas", "atlas_roi_names", "load_labels"]

_KINDS = ("labels", "probabilistic", "spheres")


def _mask_of(mask_img_or_grid) -> tuple[np.ndarray, np.ndarray]:
    """(mask bool (X, Y, Z), affine) from a mask image/path, (mask, affine), (affine, shape) or a prepared dataset."""
    if hasattr(mask_img_or_grid, "mask") and hasattr(mask_img_or_grid, "affine") and not hasattr(mask_img_or_grid, "dataobj"):
        return np.asarray(mask_img_or_grid.mask) > 0, np.asarray(mask_img_or_grid.affine, dtype=np.float64)
    if isinstance(mask_img_or_grid, tuple) and len(mask_img_or_grid) == 2:
        a, b = mask_img_or_grid
        affine, shape = grid_of(mask_img_or_grid, "BOLD grid")
        mask = np.asarray(a) > 0 if np.ndim(a) == 3 else np.ones(shape, dtype=bool)
        return mask, affine
    img, where = _load_img(mask_img_or_grid, "mask")
    if len(img.shape) != 3 and not (len(img.shape) == 4 and img.shape[3] == 1):
        raise Eeg2fmriInputError(f"{where}: expected a 3D mask image (X, Y, Z), got shape {img.shape}; pass the brain mask of the BOLD grid.")
    data = np.asarray(img.dataobj).reshape(img.shape[:3])
    return data > 0, np.asarray(img.affine, dtype=np.float64)


def _same_grid(a_aff, a_shape, b_aff, b_shape) -> bool:
    return tuple(a_shape[:3]) == tuple(b_shape[:3]) and np.allclose(a_aff, b_aff, atol=1e-4)


def _fmt_grid(aff, shape) -> str:
    vox = np.linalg.norm(np.asarray(aff)[:3, :3], axis=0)
    return f"{'x'.join(str(int(s)) for s in shape[:3])} voxels of {'x'.join(f'{v:.3g}' for v in vox)} mm, {_axcodes(aff)}"


def label_names_beside(path: str | os.PathLike) -> dict[int, str] | None:
    """ROI names from the TSV beside a labels NIfTI (same name, ``.tsv``; BIDS ``*_dseg.tsv`` columns ``index`` and
    ``name``, or ``label``/``name``), or None when there is none or it has no such columns."""
    import csv

    p = Path(path)
    stem = p.name[: -len(".nii.gz")] if p.name.endswith(".nii.gz") else p.name.rsplit(".", 1)[0]
    tsv = p.with_name(stem + ".tsv")
    if not tsv.is_file():
        return None
    with open(tsv, newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    key = next((k for k in ("index", "label") if rows and k in rows[0]), None)
    if key is None or "name" not in rows[0]:
        return None
    out = {}
    for r in rows:
        try:
            out[int(float(r[key]))] = str(r["name"])
        except (TypeError, ValueError):
            continue
    return out or None


class Atlas:
    """A parcellation that turns masked BOLD into ROI time series.

    Build it with :meth:`from_labels`, :meth:`from_probabilistic`, :meth:`from_spheres`
    or :meth:`power_2011`, then :meth:`fit` it to the BOLD grid and mask.

    Parameters
    ----------
    kind : {"labels", "probabilistic", "spheres"}
    data : array
        Integer labels (X, Y, Z), non-negative maps (X, Y, Z, n_maps), or sphere centres
        (n_spheres, 3) in world mm.
    affine : array, shape (4, 4) | None
        Voxel-to-world affine of ``data`` (images only).
    labels : array of int, shape (n_rois,) | None
        ROI ids (the non-zero label values; map/sphere numbers ``1..n`` by default).
    names : list of str | None
        ROI names aligned with ``labels``.
    radius_mm : float | None
        Sphere radius (spheres only).
    on_empty : {"raise", "drop"}
        What to do with ROIs that have no voxel inside the mask after resampling.
    where : str
        Name used in messages.

    Attributes
    ----------
    weights_ : scipy.sparse.csr_array, shape (n_rois, n_voxels), float32
        Row ``r`` holds the averaging weights of ROI ``r`` (rows sum to one).
    labels_ : array of int, shape (n_rois,)
    names_ : list of str
    n_voxels_per_roi_ : array of int, shape (n_rois,)
        Voxels with a non-zero weight in each ROI.
    dropped_ : list of str
        Names of empty ROIs dropped (``on_empty="drop"``).
    mask_ : array of bool, shape (X, Y, Z)
    affine_ : array, shape (4, 4)
    """

    def __init__(
        self,
        kind: str,
        data: np.ndarray,
        affine: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        names: Sequence[str] | None = None,
        radius_mm: float | None = None,
        on_empty: str = "raise",
        where: str = "atlas",
    ) -> None:
        self.kind = kind
        self.data = data
        self.affine = affine
        self.labels = labels
        self.names = names
        self.radius_mm = radius_mm
        self.on_empty = on_empty
        self.where = where

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_labels(cls, img_or_path, names: Mapping[int, str] | Sequence[str] | None = None, *, on_empty: str = "raise") -> Atlas:
        """Atlas from a 3D image of integer ROI ids (0 = background).

        Parameters
        ----------
        img_or_path : path-like | nibabel image
        names : mapping label -> name | sequence of str | None
            Names for the sorted non-zero labels (a sequence must have one per label);
            default: those of a TSV beside a labels file given by path (:func:`label_names_beside`),
            else ``"label-<id>"``.
        on_empty : {"raise", "drop"}
        """
        img, where = _load_img(img_or_path, "atlas")
        if names is None and isinstance(img_or_path, (str, os.PathLike)):
            names = label_names_beside(img_or_path)
        shape = img.shape
        if len(shape) == 4 and shape[3] == 1:
            shape = shape[:3]
        if len(shape) != 3:
            raise Eeg2fmriInputError(f"{where}: expected a 3D labels image (X, Y, Z), got shape {img.shape}; for 4D probability maps use Atlas.from_probabilistic.")
        raw = np.asarray(img.dataobj).reshape(shape)
        if not np.issubdtype(raw.dtype, np.integer):
            raw = raw.astype(np.float64)
            check_finite(raw, "labels image", where=where)
            frac = np.abs(raw - np.round(raw)) > 1e-3  # tolerate float storage round-off
            if frac.any():
                ex = float(raw[frac].flat[0])
                raise Eeg2fmriInputError(
                    f"{where}: expected integer ROI labels (0 = background), found non-integer values (e.g. {ex:.4g}, {int(frac.sum())} voxels); "
                    "for probability maps use Atlas.from_probabilistic."
                )
        data = np.round(raw).astype(np.int64)
        labels = np.unique(data)
        labels = labels[labels != 0]
        if len(labels) == 0:
            raise Eeg2fmriInputError(f"{where}: expected at least one non-zero label, found only background (0); is this the right image?")
        if names is None:
            nm = [f"label-{int(v)}" for v in labels]
        elif isinstance(names, Mapping):
            nm = [str(names.get(int(v), names.get(str(int(v)), f"label-{int(v)}"))) for v in labels]
        else:
            nm = [str(n) for n in names]
            if len(nm) != len(labels):
                raise Eeg2fmriInputError(f"{where}: expected {len(labels)} names (one per non-zero label {labels[:5].tolist()}...), got {len(nm)}; pass a dict label -> name instead.")
        return cls("labels", data, np.asarray(img.affine, dtype=np.float64), labels, nm, on_empty=on_empty, where=where)

    @classmethod
    def from_probabilistic(cls, img_or_path, names: Sequence[str] | None = None, *, on_empty: str = "raise") -> Atlas:
        """Atlas from non-negative maps (X, Y, Z, n_maps): each ROI is a weighted average.

        Parameters
        ----------
        img_or_path : path-like | nibabel image
            4D maps (a 3D image is one map).
        names : sequence of str | None
            One name per map; default ``"map-<k>"`` (k from 1).
        on_empty : {"raise", "drop"}
        """
        img, where = _load_img(img_or_path, "atlas")
        if len(img.shape) not in (3, 4):
            raise Eeg2fmriInputError(f"{where}: expected 4D probability maps (X, Y, Z, n_maps), got shape {img.shape}.")
        data = np.asarray(img.get_fdata(dtype=np.float32))
        if data.ndim == 3:
            data = data[..., None]
        check_finite(data, "probability maps", where=where)
        if (data < 0).any():
            raise Eeg2fmriInputError(f"{where}: expected non-negative weights in the probability maps, found {int((data < 0).sum())} negative values (min {float(data.min()):.4g}); clip them or use a labels atlas.")
        k = data.shape[3]
        nm = [f"map-{i + 1}" for i in range(k)] if names is None else [str(n) for n in names]
        if len(nm) != k:
            raise Eeg2fmriInputError(f"{where}: expected {k} names (one per map), got {len(nm)}.")
        return cls("probabilistic", data, np.asarray(img.affine, dtype=np.float64), np.arange(1, k + 1), nm, on_empty=on_empty, where=where)

    @classmethod
    def from_spheres(cls, coords_mm, radius_mm: float, labels: Sequence | None = None, *, on_empty: str = "raise", where: str = "spheres atlas") -> Atlas:
        """Atlas of spheres around world coordinates (mm, the BOLD's space, e.g. MNI).

        A sphere holds the mask voxels whose centre lies within ``radius_mm`` of its
        centre, plus the voxel containing the centre (so a radius below the voxel size
        still gives one voxel). Spheres may overlap.

        Parameters
        ----------
        coords_mm : array, shape (n_spheres, 3)
        radius_mm : float
        labels : sequence | None
            One label per sphere: integers become ``labels_`` (and names), anything else
            the names; default ``1..n_spheres`` named ``"sphere-<k>"``.
        on_empty : {"raise", "drop"}
        where : str
        """
        c = np.asarray(coords_mm, dtype=np.float64)
        if c.ndim == 1 and c.shape == (3,):
            c = c[None]
        if c.ndim != 2 or c.shape[1] != 3 or len(c) == 0:
            raise Eeg2fmriInputError(f"{where}: expected coords_mm of shape (n_spheres, 3) in mm, got shape {c.shape}.")
        check_finite(c, "coords_mm", where=where)
        r = check_positive(radius_mm, "radius_mm", where=where, fix="pass the sphere radius in mm")
        if labels is None:
            lab = np.arange(1, len(c) + 1)
            nm = [f"sphere-{i}" for i in lab]
        else:
            lst = list(labels)
            if len(lst) != len(c):
                raise Eeg2fmriInputError(f"{where}: expected {len(c)} labels (one per sphere), got {len(lst)}.")
            if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in lst):
                lab = np.asarray(lst, dtype=np.int64)
            else:
                lab = np.arange(1, len(c) + 1)
            nm = [str(v) for v in lst]
        return cls("spheres", c, None, lab, nm, radius_mm=r, on_empty=on_empty, where=where)

    @classmethod
    def power_2011(cls, radius_mm: float = 5.0, *, on_empty: str = "raise") -> Atlas:
        """The 264 Power et al. (2011) MNI coordinates (bundled with nilearn; offline) as spheres.

        Only for BOLD in MNI space. ``radius_mm=5`` follows common practice; on coarse
        grids or partial fields of view pass ``on_empty="drop"``.
        """
        from nilearn.datasets import fetch_coords_power_2011

        rois = fetch_coords_power_2011().rois
        coords = rois[["x", "y", "z"]].to_numpy(dtype=np.float64)
        ids = rois["roi"].to_numpy(dtype=np.int64)
        atlas = cls.from_spheres(coords, radius_mm, [int(i) for i in ids], on_empty=on_empty, where="Power 2011 atlas")
        atlas.names = [f"power-{int(i):03d}" for i in ids]
        return atlas

    # ------------------------------------------------------------------ fit / transform
    def fit(self, mask_img_or_grid, y=None) -> Atlas:
        """Resample the atlas to the BOLD grid and build the averaging matrix.

        Parameters
        ----------
        mask_img_or_grid : path-like | nibabel image | (mask, affine) | (affine, shape) | PreparedDataset
            The brain mask of the BOLD grid (its voxels, in C order, are the columns of
            masked BOLD); a bare grid uses every voxel.

        Returns
        -------
        self : Atlas
        """
        import scipy.sparse as sp

        check_choice(self.kind, "atlas kind", _KINDS, where=self.where)
        check_choice(self.on_empty, "on_empty", ("raise", "drop"), where=self.where)
        mask, affine = _mask_of(mask_img_or_grid)
        ijk = np.argwhere(mask)  # C order, as data[mask]
        n_vox = len(ijk)
        if n_vox == 0:
            raise Eeg2fmriInputError(f"{self.where}: expected a non-empty brain mask, got 0 voxels; check the mask image.")
        labels = np.asarray(self.labels if self.labels is not None else np.arange(1, self._n_rois() + 1), dtype=np.int64)
        names = list(self.names) if self.names is not None else [str(v) for v in labels]
        if self.kind == "spheres":
            rows, cols, vals = self._sphere_entries(mask, affine, ijk)
        else:
            self._check_overlap(mask, affine)
            if not _same_grid(self.affine, self.data.shape, affine, mask.shape):
                logger.info("%s: resampling the atlas (%s) to the BOLD grid (%s) with %s interpolation", self.where, _fmt_grid(self.affine, self.data.shape),
                            _fmt_grid(affine, mask.shape), "nearest" if self.kind == "labels" else "linear")
            if self.kind == "labels":
                rows, cols, vals = self._label_entries(affine, ijk, labels)
            else:
                rows, cols, vals = self._map_entries(mask, affine, ijk)
        m = sp.csr_array((vals, (rows, cols)), shape=(len(labels), n_vox), dtype=np.float64)
        m.sum_duplicates()
        m.eliminate_zeros()
        count = np.diff(m.indptr)
        empty = np.flatnonzero(count == 0)
        if len(empty) == len(labels):
            lo, hi = world_box(affine, mask.shape)
            raise Eeg2fmriInputError(
                f"{self.where}: no ROI has a voxel inside the BOLD mask ({_fmt_grid(affine, mask.shape)}, world box {np.round(lo, 1).tolist()}..{np.round(hi, 1).tolist()} mm); "
                "are the atlas and the BOLD in the same space (e.g. both MNI) with correct orientation headers?"
            )
        dropped = []
        if len(empty):
            bad = [names[i] for i in empty]
            shown = ", ".join(bad[:10]) + (f" ... ({len(bad)} in all)" if len(bad) > 10 else "")
            if self.on_empty == "raise":
                raise Eeg2fmriInputError(
                    f"{self.where}: {len(bad)} ROI(s) have no voxel inside the BOLD mask after resampling: {shown}; "
                    "use a larger mask or field of view, or pass on_empty='drop' to leave them out."
                )
            logger.warning("%s: dropping %d ROI(s) with no voxel inside the BOLD mask: %s", self.where, len(bad), shown)
            keep = np.flatnonzero(count > 0)
            m = m[keep]
            labels, names, count, dropped = labels[keep], [names[i] for i in keep], count[keep], bad
        if self.kind == "labels":  # labels partly outside the mask (user test 37: 16 of 22 voxels kept, nothing said)
            self._report_partial(labels, names, count, affine)
        self.membership_ = m.astype(np.float32)  # raw memberships (1, or map weights)
        rowsum = np.asarray(m.sum(axis=1)).ravel()
        self.weights_ = sp.csr_array(sp.diags_array(1.0 / rowsum) @ m, dtype=np.float32)
        self.labels_ = labels
        self.names_ = names
        self.n_voxels_per_roi_ = count.astype(np.int64)
        self.dropped_ = dropped
        self.mask_ = mask
        self.affine_ = affine
        self.n_voxels_ = n_vox
        logger.info("%s: %d ROIs on %d voxels (median %d voxels per ROI)", self.where, len(labels), n_vox, int(np.median(count)))
        return self

    def _report_partial(self, labels: np.ndarray, names: list, count: np.ndarray, affine: np.ndarray) -> None:
        """Say which labels keep under half of their volume inside the BOLD mask (a warning) or lose some of it (info):
        their ROI series average only the voxels inside."""
        data = np.asarray(self.data)
        vol_atlas = abs(float(np.linalg.det(np.asarray(self.affine, float)[:3, :3])))
        vol_bold = abs(float(np.linalg.det(np.asarray(affine, float)[:3, :3])))
        if not (vol_atlas > 0 and vol_bold > 0):
            return
        vals, tot = np.unique(data[data > 0].astype(np.int64), return_counts=True)
        whole = dict(zip(vals.tolist(), (tot * vol_atlas / vol_bold).tolist()))  # each label's volume in BOLD voxels
        part = [(nm, int(c), whole[int(v)]) for v, nm, c in zip(labels, names, count) if int(v) in whole and c < 0.95 * whole[int(v)]]
        few = [x for x in part if x[1] < 0.5 * x[2]]
        fmt = "%s: %d of about %.0f"
        if few:
            logger.warning("%s: %d ROI(s) keep under half of their volume inside the BOLD mask (%s%s): their series average only those "
                           "voxels; check the mask (prepare option mask) and that the atlas is in the data's space", self.where, len(few),
                           ", ".join(fmt % x for x in few[:10]), ", ..." if len(few) > 10 else "")
        elif part:
            logger.info("%s: %d ROI(s) lose part of their volume outside the BOLD mask (%s%s)", self.where, len(part),
                        ", ".join(fmt % x for x in part[:10]), ", ..." if len(part) > 10 else "")

    def transform(self, y_masked: np.ndarray) -> np.ndarray:
        """ROI time series: the weighted average of each ROI's voxels.

        Parameters
        ----------
        y_masked : array, shape (n_volumes, n_voxels)
            Masked BOLD on the fitted mask (columns in C order of the 3D mask).

        Returns
        -------
        rois : array, shape (n_volumes, n_rois), float32
        """
        y = self._check_y(y_masked, self.n_voxels_ if hasattr(self, "n_voxels_") else None, "n_voxels")
        out = self.weights_ @ np.asarray(y, dtype=np.float32).T
        return np.ascontiguousarray(np.asarray(out).T, dtype=np.float32)

    def fit_transform(self, mask_img_or_grid, y_masked: np.ndarray) -> np.ndarray:
        """``fit(mask_img_or_grid).transform(y_masked)``."""
        return self.fit(mask_img_or_grid).transform(y_masked)

    def inverse_transform(self, rois: np.ndarray) -> np.ndarray:
        """Spread ROI values back onto the voxels (e.g. to write an ROI prediction as NIfTI).

        Each voxel gets the membership-weighted mean of the ROIs it belongs to (its
        ROI's value for a labels atlas); voxels outside every ROI get 0.

        Parameters
        ----------
        rois : array, shape (n_volumes, n_rois)

        Returns
        -------
        y : array, shape (n_volumes, n_voxels), float32
        """
        import scipy.sparse as sp

        r = self._check_y(rois, len(self.labels_) if hasattr(self, "labels_") else None, "n_rois")
        colsum = np.asarray(self.membership_.sum(axis=0)).ravel()
        inv = np.where(colsum > 0, 1.0 / np.where(colsum > 0, colsum, 1.0), 0.0).astype(np.float32)
        back = self.membership_ @ sp.diags_array(inv)  # (n_rois, n_voxels), columns sum to 1 or 0
        out = back.T @ np.asarray(r, dtype=np.float32).T
        return np.ascontiguousarray(np.asarray(out).T, dtype=np.float32)

    # ------------------------------------------------------------------ helpers
    def _n_rois(self) -> int:
        if self.kind == "probabilistic":
            return int(np.shape(self.data)[3])
        if self.kind == "spheres":
            return len(self.data)
        return len(np.unique(self.data)) - int((np.asarray(self.data) == 0).any())

    def _check_y(self, y, n_expected: int | None, what: str) -> np.ndarray:
        if n_expected is None:
            raise Eeg2fmriInputError(f"{self.where}: not fitted yet; call fit(mask) with the BOLD mask first.")
        arr = np.asarray(y)
        if arr.ndim != 2 or arr.shape[1] != n_expected:
            raise Eeg2fmriInputError(f"{self.where}: expected an array of shape (n_volumes, {what}={n_expected}), got shape {arr.shape}; mask the BOLD with the mask the atlas was fitted on.")
        return arr

    def _check_overlap(self, mask: np.ndarray, affine: np.ndarray) -> None:
        alo, ahi = world_box(self.affine, self.data.shape)
        blo, bhi = world_box(affine, mask.shape)
        if np.any(np.minimum(ahi, bhi) <= np.maximum(alo, blo)):
            raise Eeg2fmriInputError(
                f"{self.where}: the atlas ({_fmt_grid(self.affine, self.data.shape)}, world box {np.round(alo, 1).tolist()}..{np.round(ahi, 1).tolist()} mm) "
                f"and the BOLD ({_fmt_grid(affine, mask.shape)}, world box {np.round(blo, 1).tolist()}..{np.round(bhi, 1).tolist()} mm) do not overlap; "
                "are they in the same space (e.g. both MNI) with correct orientation headers?"
            )

    def _label_entries(self, affine, ijk, labels):
        lab = sample_nearest(self.data, self.affine, affine, ijk=ijk, fill=0)
        order = np.argsort(labels, kind="stable")
        pos = np.minimum(np.searchsorted(labels, lab, sorter=order), len(labels) - 1)
        row = order[pos]
        hit = (lab != 0) & (labels[row] == lab)
        cols = np.flatnonzero(hit)
        return row[hit], cols, np.ones(len(cols))

    def _map_entries(self, mask, affine, ijk):
        from scipy.ndimage import map_coordinates

        same = _same_grid(self.affine, self.data.shape, affine, mask.shape)
        if not same:
            m = np.linalg.solve(self.affine, affine)
            src = (ijk @ m[:3, :3].T + m[:3, 3]).T  # (3, n_voxels) continuous atlas voxel coordinates
        rows, cols, vals = [], [], []
        for k in range(self.data.shape[3]):
            w = self.data[..., k][mask] if same else map_coordinates(self.data[..., k], src, order=1, mode="constant", cval=0.0)
            nz = np.flatnonzero(w > 0)
            rows.append(np.full(len(nz), k))
            cols.append(nz)
            vals.append(w[nz].astype(np.float64))
        return np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)

    def _sphere_entries(self, mask, affine, ijk):
        from scipy.spatial import cKDTree

        xyz = ijk @ affine[:3, :3].T + affine[:3, 3]
        hits = cKDTree(xyz).query_ball_point(self.data, r=float(self.radius_mm) + 1e-6)
        index = np.full(mask.shape, -1, dtype=np.int64)
        index[mask] = np.arange(len(ijk))
        centre = np.floor(np.linalg.solve(affine, np.c_[self.data, np.ones(len(self.data))].T)[:3].T + 0.5).astype(np.int64)
        inside = np.all((centre >= 0) & (centre < np.asarray(mask.shape)), axis=1)
        rows, cols = [], []
        for s, h in enumerate(hits):
            vox = list(h)
            if inside[s]:
                c = index[tuple(centre[s])]
                if c >= 0:
                    vox.append(int(c))
            rows += [s] * len(vox)
            cols += vox
        rows_a, cols_a = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        # a centre voxel already inside the sphere appears twice: keep weight 1 per voxel
        key = np.unique(rows_a * len(ijk) + cols_a)
        return key // len(ijk), key % len(ijk), np.ones(len(key))

    def __repr__(self) -> str:
        n = len(self.labels_) if hasattr(self, "labels_") else (len(self.labels) if self.labels is not None else "?")
        fitted = f", fitted on {self.n_voxels_} voxels" if hasattr(self, "n_voxels_") else ""
        return f"Atlas(kind={self.kind!r}, n_rois={n}{fitted})"


def atlas_roi_names(atlas: Any, ids: np.ndarray) -> list[str]:
    """ROI names: ``index``/``name`` columns of a ``.tsv`` beside a labels file (nilearn's and BIDS' look-up tables), else the labels."""
    names = {int(v): str(int(v)) for v in ids}
    if isinstance(atlas, (str, os.PathLike)):
        name = Path(atlas).name
        stem = name[: -len(".nii.gz")] if name.endswith(".nii.gz") else name.rsplit(".", 1)[0] if name.endswith((".nii", ".mgz", ".img", ".hdr")) else name
        tsv = Path(atlas).with_name(stem + ".tsv")
        if tsv.is_file():
            import csv

            try:
                with open(tsv, newline="", encoding="utf-8-sig") as fh:
                    for row in csv.DictReader(fh, delimiter="\t"):
                        row = {str(k).strip().lower(): str(v or "").strip() for k, v in row.items() if k is not None}
                        if row.get("index", "").lstrip("-").isdigit() and row.get("name") and int(row["index"]) in names:
                            names[int(row["index"])] = row["name"]
            except (OSError, csv.Error, UnicodeDecodeError) as err:
                logger.info("%s: ROI names not read (%s); the labels name the columns", tsv, err)
    return [names[int(v)] for v in ids]


def load_labels(atlas: Any, mask: np.ndarray, affine: np.ndarray | None = None, *, where: str = "atlas") -> np.ndarray:
    """ROI labels of the masked voxels from an atlas.

    Parameters
    ----------
    atlas : path-like | nibabel image | array
        Integer labels (0 = background) on the data grid, as a volume
        ``(X, Y, Z)`` or one label per masked voxel ``(n_voxels,)``. A NIfTI
        on another grid is resampled to the data grid with nearest-neighbour
        interpolation (reported).
    mask : array of bool, shape (X, Y, Z)
    affine : array, shape (4, 4) | None
        Data grid affine (needed to resample an image on another grid).

    Returns
    -------
    labels : array of int64, shape (n_voxels,)
    """
    import nibabel as nib

    n_vox = int(mask.sum())
    if isinstance(atlas, (str, os.PathLike)):
        p = Path(atlas)
        if not p.exists():
            raise Eeg2fmriInputError(f"{p}: atlas file not found; pass a NIfTI of integer labels on the data grid.")
        atlas = nib.load(p)
    resampled = False  # (labels lost in resampling are reported there)
    # an atlas file's resampling warnings once per process and data grid (user test 54: once per LOSO fold, 4 times a run)
    said = None
    if isinstance(atlas, nib.spatialimages.SpatialImage) and atlas.get_filename():
        said = (str(Path(atlas.get_filename()).resolve()), tuple(mask.shape), None if affine is None else np.round(np.asarray(affine, float), 3).tobytes())

    def warn(*args: Any) -> None:
        if said is None or (said, args[0]) not in _SAID:
            logger.warning(*args)
            if said is not None:
                _SAID.add((said, args[0]))

    if isinstance(atlas, nib.spatialimages.SpatialImage):
        img = atlas
        if img.shape[:3] != mask.shape or (affine is not None and not np.allclose(img.affine, affine, atol=1e-3)):
            if affine is None:
                raise Eeg2fmriInputError(f"{where}: grid {img.shape[:3]} differs from the data grid {mask.shape}; resample the atlas to the data grid.")
            from nilearn.image import resample_img

            if img.shape[:3] == mask.shape:  # the same shape with another affine: often a header that is wrong, not another grid
                diff = float(np.max(np.abs(np.asarray(img.affine, float) - np.asarray(affine, float))))
                warn("%s: the atlas has the data's grid shape %s but another voxel-to-world affine (differences up to %.3g): it is "
                               "resampled by world coordinates; if it was made on the data grid and only its header differs, fix the header "
                               "(nibabel: set_sform/set_qform with the data's affine)", where, mask.shape, diff)
            else:  # a warning, not info: an atlas cut a voxel short of the data grid is more often a mistake than another grid (user test 10)
                warn("%s: the atlas's grid %s is not the data grid %s: it is resampled onto it by world coordinates (nearest "
                               "neighbour); if it was meant to be on the data grid, check how it was made", where, img.shape[:3], mask.shape)
            before = set(np.unique(np.asarray(img.dataobj)).tolist()) - {0}
            img = resample_img(img, target_affine=affine, target_shape=mask.shape, interpolation="nearest", force_resample=True, copy_header=True)
            resampled = True
            lost = sorted(before - set(np.unique(np.asarray(img.dataobj)[mask]).tolist()))
            if lost:
                warn("%s: %d of the atlas's %d labels have no voxel inside the data's brain mask after resampling (%s%s): they get no "
                               "ROI r; check that the atlas and the data are in the same space", where, len(lost), len(before),
                               ", ".join(str(v) for v in lost[:10]), ", ..." if len(lost) > 10 else "")
        lab = np.asarray(img.dataobj)
        if lab.ndim == 4 and lab.shape[3] == 1:
            lab = lab[..., 0]
    else:
        lab = np.asarray(atlas)
    if lab.shape == mask.shape:
        outside = sorted(set(np.unique(lab).tolist()) - set(np.unique(lab[mask]).tolist()) - {0}) if np.all(np.isfinite(lab)) else []
        if outside and not resampled:
            logger.warning("%s: %d label(s) have no voxel inside the data's brain mask (%s%s): they get no ROI r", where, len(outside),
                           ", ".join(str(v) for v in outside[:10]), ", ..." if len(outside) > 10 else "")
        if np.all(np.isfinite(lab)):  # labels partly outside the mask (user tests 37, 38: 12 of 96 voxels used, nothing said)
            vals, total = np.unique(lab[lab > 0], return_counts=True)
            inside = dict(zip(*np.unique(lab[mask & (lab > 0)], return_counts=True)))
            part = [(v, int(inside.get(v, 0)), int(t)) for v, t in zip(vals.tolist(), total.tolist()) if 0 < inside.get(v, 0) < t]
            few = [x for x in part if x[1] < 0.5 * x[2]]
            if few:
                logger.warning("%s: %d label(s) keep under half of their voxels inside the data's brain mask (%s%s): their ROI series "
                               "average only those voxels; check the mask (prepare option mask) and that the atlas is in the data's space",
                               where, len(few), ", ".join(f"{v}: {i} of {t}" for v, i, t in few[:10]), ", ..." if len(few) > 10 else "")
            elif part:
                logger.info("%s: %d label(s) lose some voxels outside the data's brain mask (%s%s)", where, len(part),
                            ", ".join(f"{v}: {i} of {t}" for v, i, t in part[:10]), ", ..." if len(part) > 10 else "")
        lab = lab[mask]
    if lab.shape != (n_vox,):
        raise Eeg2fmriInputError(
            f"{where}: expected labels of shape {mask.shape} (the data grid) or ({n_vox},) (one per masked voxel), got {lab.shape}; "
            "resample the atlas to the data grid."
        )
    if lab.dtype.kind not in "fiu" or not np.all(np.isfinite(lab)) or (lab < 0).any() or (lab != np.round(lab)).any():
        raise Eeg2fmriInputError(f"{where}: expected whole-number labels >= 0 (0 = background); resample atlases with nearest-neighbour interpolation.")
    lab = lab.astype(np.int64)
    if not lab.any():
        raise Eeg2fmriInputError(f"{where}: no ROI label inside the brain mask (all 0); check that the atlas is on the data's space.")
    return lab
