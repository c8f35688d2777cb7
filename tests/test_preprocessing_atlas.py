"""Atlases: labels, probabilistic maps and spheres -> ROI time series."""

from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from eeg2fmri.preprocessing.atlas import Atlas
from eeg2fmri.utils.validation import Eeg2fmriInputError

SHAPE = (5, 6, 7)


def _affine(vox, origin) -> np.ndarray:
    a = np.diag([*vox, 1.0])
    a[:3, 3] = origin
    return a


AFF = _affine((2.0, 2.0, 2.0), (-4.0, -6.0, -8.0))


def _mask() -> np.ndarray:
    m = np.ones(SHAPE, bool)
    m[4] = False  # last x-slab outside the brain
    return m


def _labels() -> np.ndarray:
    lab = np.zeros(SHAPE, np.int16)
    lab[0:2, 0:2, 0:2] = 3  # 8 voxels, all in the mask
    lab[2, :, 6] = 7  # 6 voxels
    lab[3:5, 5, 0] = 10  # 2 voxels, one outside the mask
    return lab


def _y(mask: np.ndarray, n_volumes: int = 4) -> np.ndarray:
    """Volume t, voxel (i, j, k): 100 t + 49 i + 7 j + k (unique, linear)."""
    i, j, k = np.argwhere(mask).T
    return (100.0 * np.arange(n_volumes)[:, None] + 49 * i + 7 * j + k).astype(np.float32)


def test_labels_atlas_averages_the_voxels_of_each_label():
    mask = _mask()
    atlas = Atlas.from_labels(nib.Nifti1Image(_labels(), AFF), names={3: "V1", 7: "M1"}).fit((mask, AFF))
    np.testing.assert_array_equal(atlas.labels_, [3, 7, 10])
    assert atlas.names_ == ["V1", "M1", "label-10"]
    np.testing.assert_array_equal(atlas.n_voxels_per_roi_, [8, 6, 1])
    rois = atlas.transform(_y(mask))
    assert rois.shape == (4, 3) and rois.dtype == np.float32
    t = 100.0 * np.arange(4)[:, None]
    # label 3: i, j, k in {0, 1} -> mean 49/2 + 7/2 + 1/2; label 7: i=2, k=6, j=0..5; label 10: (3, 5, 0)
    np.testing.assert_allclose(rois, t + [[28.5, 98 + 17.5 + 6, 147 + 35]], rtol=1e-6)
    np.testing.assert_allclose(atlas.weights_.sum(axis=1), 1.0, rtol=1e-6)
    assert repr(atlas) == "Atlas(kind='labels', n_rois=3, fitted on 168 voxels)"


def test_labels_atlas_on_a_finer_flipped_grid_is_resampled(caplog, tmp_path):
    # the same parcellation stored at 1 mm and with x flipped (LAS): nearest resampling
    # onto the 2 mm grid must give back the 2 mm labels
    fine = np.repeat(np.repeat(np.repeat(_labels(), 2, 0), 2, 1), 2, 2)[::-1]
    faff = _affine((-1.0, 1.0, 1.0), (AFF[0, 3] - 0.5 + 9.0, AFF[1, 3] - 0.5, AFF[2, 3] - 0.5))
    nib.save(nib.Nifti1Image(fine, faff), tmp_path / "atlas.nii.gz")
    nib.save(nib.Nifti1Image(_mask().astype(np.uint8), AFF), tmp_path / "mask.nii.gz")
    ref = Atlas.from_labels(nib.Nifti1Image(_labels(), AFF)).fit((_mask(), AFF))
    with caplog.at_level(logging.INFO, logger="eeg2fmri"):
        atlas = Atlas.from_labels(tmp_path / "atlas.nii.gz").fit(tmp_path / "mask.nii.gz")
    assert "resampling the atlas (10x12x14 voxels of 1x1x1 mm, LAS) to the BOLD grid (5x6x7 voxels of 2x2x2 mm, RAS) with nearest" in caplog.text
    assert (atlas.weights_ != ref.weights_).nnz == 0
    np.testing.assert_array_equal(atlas.labels_, ref.labels_)


def test_empty_rois_raise_or_drop():
    lab = _labels()
    lab[4, 0, 0] = 12  # only outside the mask
    lab[4, 1, 0] = 15
    img = nib.Nifti1Image(lab, AFF)
    with pytest.raises(Eeg2fmriInputError, match=r"atlas image: 2 ROI\(s\) have no voxel inside the BOLD mask after resampling: label-12, label-15; .* on_empty='drop'"):
        Atlas.from_labels(img).fit((_mask(), AFF))
    atlas = Atlas.from_labels(img, on_empty="drop").fit((_mask(), AFF))
    np.testing.assert_array_equal(atlas.labels_, [3, 7, 10])
    assert atlas.dropped_ == ["label-12", "label-15"]
    assert atlas.transform(_y(_mask())).shape == (4, 3)


def test_atlas_without_overlap_is_explained():
    far = _affine((2.0, 2.0, 2.0), (200.0, 0.0, 0.0))
    with pytest.raises(Eeg2fmriInputError, match=r"the atlas \(5x6x7 voxels of 2x2x2 mm, RAS, world box \[199.0, -1.0, -1.0\]..\[209.0, 11.0, 13.0\] mm\) and the BOLD \(5x6x7 voxels of 2x2x2 mm, RAS, world box \[-5.0, -7.0, -9.0\]..\[5.0, 5.0, 5.0\] mm\) do not overlap; are they in the same space"):
        Atlas.from_labels(nib.Nifti1Image(_labels(), far)).fit((_mask(), AFF))
    # boxes overlap but every labelled voxel falls outside the mask
    lab = np.zeros(SHAPE, np.int16)
    lab[4] = 2
    with pytest.raises(Eeg2fmriInputError, match=r"no ROI has a voxel inside the BOLD mask \(5x6x7 voxels of 2x2x2 mm, RAS, world box"):
        Atlas.from_labels(nib.Nifti1Image(lab, AFF)).fit((_mask(), AFF))


def test_labels_image_errors(tmp_path):
    frac = _labels().astype(np.float32)
    frac[0, 0, 0] = 0.25
    with pytest.raises(Eeg2fmriInputError, match=r"expected integer ROI labels \(0 = background\), found non-integer values \(e.g. 0.25, 1 voxels\); for probability maps use Atlas.from_probabilistic"):
        Atlas.from_labels(nib.Nifti1Image(frac, AFF))
    with pytest.raises(Eeg2fmriInputError, match=r"expected a 3D labels image \(X, Y, Z\), got shape \(5, 6, 7, 2\)"):
        Atlas.from_labels(nib.Nifti1Image(np.zeros(SHAPE + (2,), np.int16), AFF))
    with pytest.raises(Eeg2fmriInputError, match=r"expected at least one non-zero label, found only background"):
        Atlas.from_labels(nib.Nifti1Image(np.zeros(SHAPE, np.int16), AFF))
    with pytest.raises(Eeg2fmriInputError, match=r"expected 3 names \(one per non-zero label \[3, 7, 10\]...\), got 2"):
        Atlas.from_labels(nib.Nifti1Image(_labels(), AFF), names=["a", "b"])
    with pytest.raises(Eeg2fmriInputError, match=r"missing.nii.gz: atlas file not found"):
        Atlas.from_labels(tmp_path / "missing.nii.gz")
    # float labels with integral values (up to storage round-off) are fine
    atlas = Atlas.from_labels(nib.Nifti1Image(_labels().astype(np.float32) * np.float32(1.0000001), AFF), names=["a", "b", "c"])
    assert atlas.names == ["a", "b", "c"]
    np.testing.assert_array_equal(atlas.labels, [3, 7, 10])


def test_transform_errors():
    atlas = Atlas.from_labels(nib.Nifti1Image(_labels(), AFF))
    with pytest.raises(Eeg2fmriInputError, match=r"not fitted yet; call fit\(mask\)"):
        atlas.transform(np.zeros((3, 168)))
    atlas.fit((_mask(), AFF))
    with pytest.raises(Eeg2fmriInputError, match=r"expected an array of shape \(n_volumes, n_voxels=168\), got shape \(3, 210\)"):
        atlas.transform(np.zeros((3, 210)))
    with pytest.raises(Eeg2fmriInputError, match=r"expected an array of shape \(n_volumes, n_rois=3\), got shape \(3,\)"):
        atlas.inverse_transform(np.zeros(3))
    with pytest.raises(Eeg2fmriInputError, match=r"expected a non-empty brain mask, got 0 voxels"):
        atlas.fit((np.zeros(SHAPE, bool), AFF))
    with pytest.raises(Eeg2fmriInputError, match=r"unknown on_empty 'ignore'; choose one of: 'raise', 'drop'"):
        Atlas.from_labels(nib.Nifti1Image(_labels(), AFF), on_empty="ignore").fit((_mask(), AFF))


def test_inverse_transform_spreads_roi_values_back():
    mask = _mask()
    atlas = Atlas.from_labels(nib.Nifti1Image(_labels(), AFF)).fit((mask, AFF))
    rois = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 4.0]])
    back = atlas.inverse_transform(rois)
    lab = _labels()[mask]
    expect = np.zeros((2, mask.sum()), np.float32)
    for r, v in enumerate([3, 7, 10]):
        expect[:, lab == v] = rois[:, [r]]
    np.testing.assert_array_equal(back, expect)
    np.testing.assert_allclose(atlas.transform(back), rois, rtol=1e-6)


def test_probabilistic_maps_give_weighted_averages():
    mask = _mask()
    maps = np.zeros(SHAPE + (2,), np.float32)
    maps[0, 0, 0, 0], maps[1, 0, 0, 0] = 3.0, 1.0  # ROI 1: weights 3 and 1
    maps[..., 1] = 0.5  # ROI 2: uniform -> plain mean over the mask
    maps[4, :, :, 1] = 7.0  # outside the mask: ignored
    atlas = Atlas.from_probabilistic(nib.Nifti1Image(maps, AFF), names=["a", "b"]).fit((mask, AFF))
    y = _y(mask, 3)
    rois = atlas.transform(y)
    t = 100.0 * np.arange(3)
    np.testing.assert_allclose(rois[:, 0], t + (3 * 0 + 1 * 49) / 4, rtol=1e-6)
    np.testing.assert_allclose(rois[:, 1], y.mean(axis=1), rtol=1e-5)
    np.testing.assert_array_equal(atlas.n_voxels_per_roi_, [2, 168])
    assert atlas.names_ == ["a", "b"]


def test_probabilistic_maps_on_another_grid_use_linear_interpolation():
    # a map that is a linear ramp along x on a 1 mm grid, sampled at the 2 mm centres
    fine_shape = (10, 12, 14)
    faff = _affine((1.0, 1.0, 1.0), AFF[:3, 3] - 0.5)
    ramp = np.broadcast_to(np.arange(10, dtype=np.float32)[:, None, None, None] + 1.0, fine_shape + (1,)).copy()
    atlas = Atlas.from_probabilistic(nib.Nifti1Image(ramp, faff)).fit((np.ones(SHAPE, bool), AFF))
    w = atlas.membership_.toarray()[0].reshape(SHAPE)
    # 2 mm centre i sits at 1 mm index 2i + 0.5 -> ramp value 2i + 1.5
    np.testing.assert_allclose(w[:, 0, 0], [1.5, 3.5, 5.5, 7.5, 9.5], rtol=1e-6)


def test_probabilistic_errors():
    neg = np.zeros(SHAPE + (2,), np.float32)
    neg[0, 0, 0, 1] = -0.1
    with pytest.raises(Eeg2fmriInputError, match=r"expected non-negative weights in the probability maps, found 1 negative values \(min -0.1\)"):
        Atlas.from_probabilistic(nib.Nifti1Image(neg, AFF))
    with pytest.raises(Eeg2fmriInputError, match=r"expected 2 names \(one per map\), got 1"):
        Atlas.from_probabilistic(nib.Nifti1Image(np.ones(SHAPE + (2,), np.float32), AFF), names=["x"])
    maps = np.ones(SHAPE + (2,), np.float32)
    maps[..., 1] = 0
    maps[4, ..., 1] = 1  # only outside the mask
    with pytest.raises(Eeg2fmriInputError, match=r"1 ROI\(s\) have no voxel inside the BOLD mask after resampling: map-2"):
        Atlas.from_probabilistic(nib.Nifti1Image(maps, AFF)).fit((_mask(), AFF))


def test_sphere_voxel_counts_on_a_known_grid():
    grid = (np.ones((11, 12, 13), bool), _affine((2.0, 2.0, 2.0), (0.0, 0.0, 0.0)))
    counts = {}
    for r in (0.5, 2.0, 2.9, 3.5):
        counts[r] = Atlas.from_spheres([[10.0, 10.0, 10.0]], r).fit(grid).n_voxels_per_roi_[0]
    # centre voxel; + 6 face neighbours (2 mm); + 12 edge (2.83 mm); + 8 corner (3.46 mm)
    assert counts == {0.5: 1, 2.0: 7, 2.9: 19, 3.5: 27}
    # a sphere at the grid corner keeps the in-grid quarter; two spheres may overlap
    two = Atlas.from_spheres([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]], 2.0, labels=[4, 9]).fit(grid)
    np.testing.assert_array_equal(two.n_voxels_per_roi_, [4, 5])
    np.testing.assert_array_equal(two.labels_, [4, 9])
    assert two.names_ == ["4", "9"]
    assert (two.weights_[[0]].multiply(two.weights_[[1]])).nnz == 2  # voxels (0,0,0) and (1,0,0) shared
    # radius smaller than the voxel, centre off-centre: the voxel holding the centre
    one = Atlas.from_spheres(np.array([10.9, 10.0, 10.0]), 0.5, labels=["PCC"]).fit(grid)
    assert one.names_ == ["PCC"] and one.n_voxels_per_roi_.tolist() == [1]
    assert one.weights_.indices.tolist() == [np.ravel_multi_index((5, 5, 5), (11, 12, 13))]


def test_sphere_errors():
    grid = (np.ones((11, 12, 13), bool), _affine((2.0, 2.0, 2.0), (0.0, 0.0, 0.0)))
    with pytest.raises(Eeg2fmriInputError, match=r"spheres atlas: 1 ROI\(s\) have no voxel inside the BOLD mask after resampling: far"):
        Atlas.from_spheres([[10.0, 10.0, 10.0], [100.0, 0.0, 0.0]], 3.0, labels=["near", "far"]).fit(grid)
    with pytest.raises(Eeg2fmriInputError, match=r"expected coords_mm of shape \(n_spheres, 3\) in mm, got shape \(2, 2\)"):
        Atlas.from_spheres([[1.0, 2.0], [3.0, 4.0]], 3.0)
    with pytest.raises(Eeg2fmriInputError, match=r"expected radius_mm > 0, got 0; pass the sphere radius in mm"):
        Atlas.from_spheres([[1.0, 2.0, 3.0]], 0)
    with pytest.raises(Eeg2fmriInputError, match=r"expected 1 labels \(one per sphere\), got 2"):
        Atlas.from_spheres([[1.0, 2.0, 3.0]], 3.0, labels=["a", "b"])


def test_power_2011_works_offline_on_an_mni_grid():
    aff = _affine((8.0, 8.0, 8.0), (-90.0, -126.0, -72.0))
    atlas = Atlas.power_2011(radius_mm=5.0).fit((aff, (23, 28, 23)))  # bare grid: every voxel
    assert len(atlas.labels_) == 264 and atlas.names_[0] == "power-001"
    np.testing.assert_array_equal(atlas.labels_[:3], [1, 2, 3])
    # ROI 1 at (-25, -98, -12) mm: its centre voxel (8, 3.5 -> 4, 7.5 -> 8) is in the ROI
    centre = np.ravel_multi_index((8, 4, 8), (23, 28, 23))
    assert centre in atlas.weights_[[0]].indices
    assert atlas.n_voxels_per_roi_.min() >= 1 and atlas.n_voxels_per_roi_.max() <= 4


def test_labels_atlas_takes_names_from_the_tsv_beside_it(tmp_path):
    """A labels file given by path with a BIDS-style TSV beside it (index, name): those names (user test: label-1...)."""
    from eeg2fmri.preprocessing.atlas import label_names_beside

    nib.save(nib.Nifti1Image(_labels(), AFF), tmp_path / "atlas_dseg.nii.gz")
    labels = [int(v) for v in np.unique(_labels()) if v]
    (tmp_path / "atlas_dseg.tsv").write_text("index\tname\n" + "".join(f"{v}\troi_{v}\n" for v in labels))
    atlas = Atlas.from_labels(tmp_path / "atlas_dseg.nii.gz").fit((_mask(), AFF))
    assert list(atlas.names_) == [f"roi_{v}" for v in atlas.labels_]
    assert list(Atlas.from_labels(nib.Nifti1Image(_labels(), AFF)).fit((_mask(), AFF)).names_) == [f"label-{v}" for v in atlas.labels_]
    (tmp_path / "atlas_dseg.tsv").write_text("foo\tbar\n1\tx\n")  # not a labels table: ignored
    assert label_names_beside(tmp_path / "atlas_dseg.nii.gz") is None


def test_labels_atlas_a_voxel_off_the_data_grid_or_with_labels_outside_the_mask_is_said(caplog):
    """User test 10: a labels image of 32x39x32 for a 33x39x32 grid was resampled with an info message only (silent by
    default), and a label lying wholly outside the brain mask was dropped without a word."""
    from eeg2fmri.preprocessing.atlas import load_labels

    mask = np.zeros((9, 8, 7), bool)
    mask[2:7, 2:6, 1:6] = True
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    lab = np.zeros(mask.shape, np.int16)
    lab[2:5, 2:6, 1:6], lab[5:7, 2:6, 1:6], lab[0, 0, 0] = 1, 2, 99  # label 99 outside the mask
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        got = load_labels(nib.Nifti1Image(lab, affine), mask, affine)
    assert set(np.unique(got)) == {1, 2}
    assert "atlas: 1 label(s) have no voxel inside the data's brain mask (99): they get no ROI r" in caplog.text
    assert "keep under half" not in caplog.text  # labels 1 and 2 lie wholly inside
    # a label mostly outside the mask (user test 38: 12 of 96 voxels used, nothing said)
    caplog.clear()
    part = lab.copy()
    part[2:5, 6:8, 1:6] = 1  # label 1: 60 voxels inside, 30 more outside
    part[7:9, 0:8, 0:7] = 2  # label 2: 40 inside, 112 more outside
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        load_labels(nib.Nifti1Image(part, affine), mask, affine)
    assert "atlas: 1 label(s) keep under half of their voxels inside the data's brain mask (2: 40 of 152)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        cut = load_labels(nib.Nifti1Image(lab[:8], affine), mask, affine)  # one voxel short in x, the same affine
    assert "atlas: the atlas's grid (8, 8, 7) is not the data grid (9, 8, 7): it is resampled onto it by world coordinates" in caplog.text
    np.testing.assert_array_equal(cut, got)  # the cut row lay outside the mask: the same labels after resampling
    # an atlas file: said once per process and grid, not once per LOSO fold (user test 54); an in-memory image each time
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "cut_atlas.nii.gz"
        nib.save(nib.Nifti1Image(lab[:8], affine), f)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
            for _ in range(3):
                np.testing.assert_array_equal(load_labels(f, mask, affine), got)
        assert caplog.text.count("is not the data grid (9, 8, 7)") == 1
        with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
            load_labels(f, mask[:, :, :6], affine)  # another data grid: said again
        assert caplog.text.count("is not the data grid") == 2


def test_labels_atlas_says_when_an_roi_lies_mostly_outside_the_mask(caplog):
    """User tests 37 and 38: ROIs kept 16 of 22 and 12 of 96 voxels inside the mask, and prepare (atlas option) said nothing;
    an ROI with under half its volume inside is warned, one that loses some is noted (info), one wholly inside neither."""
    mask = np.zeros((10, 9, 8), bool)
    mask[2:8, 2:7, 2:6] = True
    lab = np.zeros(mask.shape, np.int16)
    lab[2:8, 2:4, 2:6] = 1  # wholly inside
    lab[2:8, 6:9, 2:6] = 2  # 24 inside (j = 6), 48 outside (j = 7, 8)
    lab[2:5, 4:6, 1:6] = 3  # 24 inside, 6 outside (k = 1)
    with caplog.at_level(logging.INFO, logger="eeg2fmri"):
        Atlas.from_labels(nib.Nifti1Image(lab, AFF), names={1: "in", 2: "out", 3: "edge"}).fit((mask, AFF))
    assert "atlas image: 1 ROI(s) keep under half of their volume inside the BOLD mask (out: 24 of about 72)" in caplog.text
    assert "edge: 24 of about 30" not in caplog.text  # (the warning names only the ROIs under half)
    caplog.clear()
    lab[2:8, 6:9, 2:6] = 0
    with caplog.at_level(logging.INFO, logger="eeg2fmri"):
        Atlas.from_labels(nib.Nifti1Image(lab, AFF), names={1: "in", 3: "edge"}).fit((mask, AFF))
    assert "atlas image: 1 ROI(s) lose part of their volume outside the BOLD mask (edge: 24 of about 30)" in caplog.text and "keep under half" not in caplog.text
