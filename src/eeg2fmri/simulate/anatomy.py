"""MNI152 anatomy for the simulator: a BOLD grid, brain/grey-matter maps, regions.

Everything here ships with nilearn (no download).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Anatomy", "make_anatomy"]


@dataclass
class Anatomy:
    """The simulated brain on a BOLD grid.

    Attributes
    ----------
    affine : array, shape (4, 4)
        Voxel-to-MNI (mm) affine of the grid.
    shape : tuple of int
        Grid shape ``(X, Y, Z)``.
    mask : array of bool, shape (X, Y, Z)
        Brain mask (voxels that carry BOLD signal).
    gm : array, shape (n_voxels,)
        Grey-matter probability of each in-mask voxel.
    wm : array, shape (n_voxels,)
        White-matter probability of each in-mask voxel.
    coords : array, shape (n_voxels, 3)
        MNI coordinates (mm) of the in-mask voxels, in ``mask`` order (C order).
    labels : array of int, shape (n_voxels,)
        Region index (0..n_regions-1) of each in-mask voxel.
    centroids : array, shape (n_regions, 3)
        MNI coordinates (mm) of the region centres.
    """

    affine: np.ndarray
    shape: tuple[int, int, int]
    mask: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    coords: np.ndarray
    labels: np.ndarray
    centroids: np.ndarray

    @property
    def n_voxels(self) -> int:
        return int(self.mask.sum())

    @property
    def n_regions(self) -> int:
        return int(self.centroids.shape[0])

    def depth(self) -> np.ndarray:
        """Depth of each region in [0, 1]: 1 at the brain centre, 0 at the cortex surface."""
        centre = self.coords.mean(axis=0)
        dist_vox = np.linalg.norm(self.coords - centre, axis=1)
        dist = np.linalg.norm(self.centroids - centre, axis=1)
        return np.clip(1.0 - dist / np.percentile(dist_vox, 99), 0.0, 1.0)


def _kmeans(points: np.ndarray, k: int, rng: np.random.Generator, n_iter: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Small deterministic k-means (k-means++ init) on 3D points."""
    centres = [points[rng.integers(len(points))]]
    for _ in range(1, k):
        d2 = np.min(((points[:, None, :] - np.asarray(centres)[None]) ** 2).sum(-1), axis=1)
        centres.append(points[rng.choice(len(points), p=d2 / d2.sum())])
    centres = np.asarray(centres, dtype=float)
    for _ in range(n_iter):
        lab = np.argmin(((points[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
        new = np.array([points[lab == j].mean(0) if np.any(lab == j) else centres[j] for j in range(k)])
        if np.allclose(new, centres):
            break
        centres = new
    lab = np.argmin(((points[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
    return centres, lab


def make_anatomy(voxel_size: float, n_regions: int, seed: int) -> Anatomy:
    """Build the BOLD grid and regions from nilearn's MNI152 templates.

    Parameters
    ----------
    voxel_size : float
        Isotropic voxel size of the BOLD grid in mm.
    n_regions : int
        Number of regions (k-means parcels of grey matter, seeded).
    seed : int
        Seed of the parcellation (group anatomy; the same for all subjects).
    """
    from nilearn import datasets, image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm_img = datasets.load_mni152_gm_template(resolution=2)
        wm_img = datasets.load_mni152_wm_template(resolution=2)
    extent = np.array(gm_img.shape) * np.abs(np.diag(gm_img.affine)[:3])
    shape = tuple(int(np.ceil(e / voxel_size)) for e in extent)
    affine = np.diag([voxel_size, voxel_size, voxel_size, 1.0])
    affine[:3, 3] = gm_img.affine[:3, 3]
    kw = dict(target_affine=affine, target_shape=shape, interpolation="continuous", force_resample=True, copy_header=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = np.clip(image.resample_img(gm_img, **kw).get_fdata(), 0, 1)
        wm = np.clip(image.resample_img(wm_img, **kw).get_fdata(), 0, 1)
    mask = (gm + wm) > 0.5
    ijk = np.argwhere(mask)
    coords = ijk @ affine[:3, :3].T + affine[:3, 3]
    gm_v, wm_v = gm[mask], wm[mask]
    rng = np.random.default_rng(seed)
    cortex = gm_v > np.median(gm_v)
    centroids, _ = _kmeans(coords[cortex], n_regions, rng)
    labels = np.argmin(((coords[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
    return Anatomy(affine, shape, mask, gm_v, wm_v, coords, labels, centroids)


def write_anatomy_maps(anat: Anatomy, folder: Path) -> None:
    """Ground-truth maps of an anatomy: ``mask.nii.gz``, ``regions.nii.gz`` (labels + 1) and ``gm.nii.gz``."""
    import nibabel as nib

    nib.save(nib.Nifti1Image(anat.mask.astype(np.uint8), anat.affine), folder / "mask.nii.gz")
    lab = np.zeros(anat.shape, dtype=np.int16)
    lab[anat.mask] = anat.labels + 1
    nib.save(nib.Nifti1Image(lab, anat.affine), folder / "regions.nii.gz")
    gm = np.zeros(anat.shape, dtype=np.float32)
    gm[anat.mask] = anat.gm
    nib.save(nib.Nifti1Image(gm, anat.affine), folder / "gm.nii.gz")
