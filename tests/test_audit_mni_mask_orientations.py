"""volumes.mni_mask on LAS / LPI / oblique BOLD grids == nilearn's MNI152 brain mask resampled (nearest) onto them.

tests/test_library_mne_nilearn.py checks diagonal RAS grids only; a sign or axis-order slip in sample_nearest would
only show on a flipped or rotated grid.
"""

from __future__ import annotations

import numpy as np
import pytest
from nibabel.affines import from_matvec


def _grid(kind):
    vox = np.array([4.3, 5.1, 6.2])  # no voxel centre on a 1 mm tie
    if kind == "las":
        return from_matvec(np.diag(vox * [-1, 1, 1]), [88.7, -125.3, -71.9]), (43, 41, 29)
    if kind == "lpi":
        return from_matvec(np.diag(vox * [-1, -1, -1]), [88.7, 82.9, 101.3]), (43, 41, 29)
    if kind == "oblique_las":
        from scipy.spatial.transform import Rotation

        rot = Rotation.from_euler("xyz", [8.0, -5.0, 11.0], degrees=True).as_matrix()
        centre = np.array([0.0, -18.0, 18.0])
        shape = np.array([43, 41, 29])
        m = rot @ np.diag(vox * [-1, 1, 1])
        return from_matvec(m, centre - m @ ((shape - 1) / 2)), tuple(int(s) for s in shape)
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["las", "lpi", "oblique_las"])
def test_mni_mask_non_ras_grids_equal_nilearn_nearest(kind):
    import nibabel as nib
    from nilearn.datasets import load_mni152_brain_mask
    from nilearn.image import resample_img

    from eeg2fmri.preprocessing.volumes import mni_mask

    aff, shape = _grid(kind)
    got = mni_mask((aff, shape))
    ref = resample_img(load_mni152_brain_mask(resolution=1), target_affine=aff, target_shape=shape, interpolation="nearest",
                       force_resample=True, copy_header=True)
    ref = np.asarray(ref.dataobj) > 0
    assert got.shape == shape and got.sum() > 1000
    assert np.mean(got != ref) < 2e-3, np.mean(got != ref)
    # the flipped axis matters: the mask mirrored along it differs from nilearn's (the MNI brain is not symmetric in y/z)
    assert np.mean(got[:, ::-1] != ref) > 20 * max(np.mean(got != ref), 1e-4)
    # and the same world points: the brain's centre of mass in mm agrees within a voxel
    com = lambda m: nib.affines.apply_affine(aff, np.argwhere(m).mean(0))  # noqa: E731
    np.testing.assert_allclose(com(got), com(ref), atol=1.0)
