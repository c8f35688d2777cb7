"""BOLD target side: MNI mask, confounds (reader + regression), resampling to a grid."""

from __future__ import annotations

import logging
import re

import nibabel as nib
import numpy as np
import pytest

from eeg2fmri.preprocessing.volumes import (
    MOTION_PARAMS,
    find_confounds,
    grid_of,
    mni_mask,
    read_confounds,
    regress_confounds,
    resample_bold,
    sample_nearest,
    world_box,
)
from eeg2fmri.utils.validation import Eeg2fmriInputError


def _affine(vox, origin) -> np.ndarray:
    a = np.diag([*vox, 1.0])
    a[:3, 3] = origin
    return a


# --------------------------------------------------------------------------- grids
def test_sample_nearest_identity_flip_and_downsample():
    data = np.arange(4 * 5 * 6).reshape(4, 5, 6)
    aff = _affine((2.0, 2.0, 2.0), (-4.0, -5.0, -6.0))
    np.testing.assert_array_equal(sample_nearest(data, aff, aff, data.shape), data)
    # same world grid stored with the first axis flipped (LAS instead of RAS)
    flip = aff.copy()
    flip[0, 0], flip[0, 3] = -2.0, aff[0, 3] + 2.0 * 3
    np.testing.assert_array_equal(sample_nearest(data, aff, flip, data.shape), data[::-1])
    # 4 mm grid on the same corner: target centre (i) sits at source index 2i + 0.5 -> rounds up
    coarse = _affine((4.0, 4.0, 4.0), aff[:3, 3] + 1.0)
    out = sample_nearest(data, aff, coarse, (2, 3, 3), fill=-1)
    np.testing.assert_array_equal(out[:, :2, :], data[1::2, 1::2, 1::2][:, :2, :])
    assert (out[:, 2, :] == -1).all()  # centre at source index 5.5 -> 6 is outside (5 voxels on axis 1)
    ijk = np.array([[0, 0, 0], [1, 1, 2]])
    np.testing.assert_array_equal(sample_nearest(data, aff, coarse, ijk=ijk), out[ijk[:, 0], ijk[:, 1], ijk[:, 2]])


def test_grid_of_accepts_images_tuples_and_datasets(tmp_path):
    aff = _affine((3.0, 3.0, 4.0), (1.0, 2.0, 3.0))
    img = nib.Nifti1Image(np.zeros((5, 6, 7, 2), np.float32), aff)
    nib.save(img, tmp_path / "b.nii.gz")
    for obj in (img, tmp_path / "b.nii.gz", (aff, (5, 6, 7)), (np.zeros((5, 6, 7), bool), aff)):
        a, s = grid_of(obj)
        np.testing.assert_array_equal(a, aff)
        assert s == (5, 6, 7)

    class Prepared:
        mask = np.zeros((5, 6, 7), bool)
        affine = aff

    assert grid_of(Prepared())[1] == (5, 6, 7)
    with pytest.raises(Eeg2fmriInputError, match=r"expected a grid as \(affine \(4, 4\), shape \(3,\)\) or \(mask \(X, Y, Z\), affine \(4, 4\)\), got shapes \(3, 3\) and \(3,\)"):
        grid_of((np.eye(3), (5, 6, 7)))
    with pytest.raises(Eeg2fmriInputError, match=r"nope.nii: BOLD file not found"):
        grid_of(tmp_path / "nope.nii")
    with pytest.raises(Eeg2fmriInputError, match=r"BOLD: expected a NIfTI path or nibabel image, got int"):
        grid_of(3)


# --------------------------------------------------------------------------- MNI mask
def test_mni_mask_on_a_coarse_mni_grid():
    aff = _affine((12.0, 12.0, 12.0), (-90.0, -126.0, -72.0))
    shape = (16, 19, 15)
    mask = mni_mask((aff, shape))
    assert mask.shape == shape and mask.dtype == bool
    # about 1.9 l of brain / 1.728 ml per voxel, give or take the nearest sampling
    assert 900 < mask.sum() < 1300
    # world (0, -18, 18) is deep inside the brain; the grid corner is outside
    assert mask[8, 9, 8] and not mask[0, 0, 0]
    # same grid as an image, flipped on x: the mask flips with it
    flip = aff.copy()
    flip[0, 0], flip[0, 3] = -12.0, -90.0 + 12.0 * 15
    img = nib.Nifti1Image(np.zeros(shape + (3,), np.float32), flip)
    np.testing.assert_array_equal(mni_mask(img), mask[::-1])


def test_mni_mask_errors_and_partial_coverage(caplog):
    far = _affine((4.0, 4.0, 4.0), (500.0, 500.0, 500.0))
    with pytest.raises(Eeg2fmriInputError, match=r"the MNI152 brain mask does not overlap the BOLD grid \(world box \[498.0, 498.0, 498.0\]..\[518.0, 522.0, 526.0\] mm, orientation RAS\); mask='mni' needs BOLD in MNI space"):
        mni_mask((far, (5, 6, 7)))
    small = _affine((4.0, 4.0, 4.0), (-10.0, -10.0, 0.0))
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        mask = mni_mask((small, (5, 6, 7)))
    assert mask.all()
    assert re.search(r"covers only \d+% of the MNI brain; is the BOLD in MNI space", caplog.text)


# --------------------------------------------------------------------------- confounds
TSV = (
    "trans_x\ttrans_y\ttrans_z\trot_x\trot_y\trot_z\tframewise_displacement\ta_comp_cor_00\ta_comp_cor_01\tglobal_signal\tnote\n"
    "0.1\t0.2\t0.3\t0.01\t0.02\t0.03\tn/a\t1\t5\t100\tx\n"
    "0.2\t0.1\t0.3\t0.02\t0.01\t0.03\t0.5\t2\t4\t101\tx\n"
    "0.3\t0.2\t0.1\t0.03\t0.02\t0.01\t0.3\t3\t3\t102\tx\n"
    "0.4\t0.3\t0.2\t0.04\t0.03\t0.02\t0.1\t4\t2\t99\tx\n"
)


def test_read_confounds_names_patterns_and_leading_na(tmp_path):
    p = tmp_path / "sub-01_task-rest_desc-confounds_timeseries.tsv"
    p.write_text(TSV)
    df = read_confounds(p, list(MOTION_PARAMS) + ["framewise_displacement", "a_comp_cor_*", "trans_x"])
    assert list(df.columns) == [*MOTION_PARAMS, "framewise_displacement", "a_comp_cor_00", "a_comp_cor_01"]
    assert df.shape == (4, 9)
    np.testing.assert_allclose(df["framewise_displacement"], [0.3, 0.5, 0.3, 0.1])  # leading n/a -> mean
    np.testing.assert_allclose(df["a_comp_cor_01"], [5, 4, 3, 2])
    assert list(read_confounds(p, "global_signal").columns) == ["global_signal"]


@pytest.mark.parametrize(
    ("text", "columns", "match"),
    [
        (TSV, ["trans_x", "motion_outlier*", "csf"], r"column\(s\) \['motion_outlier\*', 'csf'\] not found; available: trans_x, trans_y"),
        (TSV, ["note"], r"column 'note' holds non-numeric value 'x' at row 0; expected numbers or n/a"),
        (TSV, [], r"expected at least one confound column, got none"),
        ("a\tb\n1\tn/a\nn/a\tn/a\n3\tn/a\n", ["a"], r"column 'a' has n/a at row\(s\) \[1\] after its first value"),
        ("a\tb\n1\tn/a\n2\tn/a\n", ["b"], r"column 'b' is entirely n/a; drop it from columns"),
        ("", ["a"], r"could not read a tab-separated table with a header row \(EmptyDataError"),
        ("a\tb\n", ["a"], r"expected a header row and one row per volume, found 0 row\(s\) and 2 column\(s\)"),
    ],
)
def test_read_confounds_errors(tmp_path, text, columns, match):
    p = tmp_path / "c.tsv"
    p.write_text(text)
    with pytest.raises(Eeg2fmriInputError, match=match):
        read_confounds(p, columns)


def test_read_confounds_missing_file(tmp_path):
    with pytest.raises(Eeg2fmriInputError, match=r"none.tsv: confounds file not found; expected a \*_desc-confounds_timeseries.tsv"):
        read_confounds(tmp_path / "none.tsv", MOTION_PARAMS)


def test_regress_confounds_removes_an_injected_regressor_exactly():
    rng = np.random.default_rng(0)
    n, v = 37, 11
    conf = np.stack([np.linspace(-1, 1, n) ** 2 + 3.0, np.sin(np.arange(n) / 3.0)], axis=1)  # (37, 2), non-zero mean
    signal = rng.normal(size=(n, v))
    cc = conf - conf.mean(axis=0)
    signal -= cc @ np.linalg.lstsq(cc, signal, rcond=None)[0]  # orthogonal to the centred confounds
    signal += np.arange(v) * 10.0  # column means must survive
    beta = rng.normal(size=(2, v)) * 5
    y = (signal + conf @ beta).astype(np.float32)
    res = regress_confounds(y, conf)
    assert res.dtype == np.float32 and res.shape == (n, v)
    np.testing.assert_allclose(res, signal + (conf.mean(axis=0) @ beta), atol=1e-4)
    np.testing.assert_allclose(res.mean(axis=0), y.mean(axis=0), atol=1e-4)
    # duplicated / rank-deficient confounds give the same residuals; keep_mean=False centres
    res2 = regress_confounds(y, np.c_[conf, conf[:, :1] * 2.0], keep_mean=False)
    np.testing.assert_allclose(res2, res - res.mean(axis=0), atol=1e-4)
    # a single confound as a 1D array, and a DataFrame input
    import pandas as pd

    one = regress_confounds(y, conf[:, 1])
    np.testing.assert_allclose(one, regress_confounds(y, pd.DataFrame({"c": conf[:, 1]})))


def test_regress_confounds_errors():
    y = np.zeros((10, 3))
    with pytest.raises(Eeg2fmriInputError, match=r"confounds have 12 rows but the BOLD has 10 volumes; .* e.g. confounds\[2:\]"):
        regress_confounds(y, np.zeros((12, 2)))
    with pytest.raises(Eeg2fmriInputError, match=r"confounds have 8 rows but the BOLD has 10 volumes; expected one row per volume \(fewer rows "
                                                 r"than volumes: are they the confounds of this run"):
        regress_confounds(y, np.random.default_rng(1).normal(size=(8, 2)))
    with pytest.raises(Eeg2fmriInputError, match=r"expected fewer confounds than volumes - 1, got 9 confounds for 10 volumes"):
        regress_confounds(y, np.random.default_rng(0).normal(size=(10, 9)))
    with pytest.raises(Eeg2fmriInputError, match=r"expected finite values in confounds, found 1 NaN/Inf"):
        regress_confounds(y, np.r_[np.nan, np.ones(9)])
    with pytest.raises(Eeg2fmriInputError, match=r"expected y of shape \(n_volumes, n_voxels\), got shape \(10,\)"):
        regress_confounds(np.zeros(10), np.ones(10))
    with pytest.raises(Eeg2fmriInputError, match=r"expected confounds of shape \(n_volumes, n_confounds\), got shape \(10, 1, 1\)"):
        regress_confounds(y, np.ones((10, 1, 1)))


# --------------------------------------------------------------------------- resampling
def _bold(shape=(8, 10, 6, 4), vox=(3.0, 3.0, 4.0), origin=(-12.0, -15.0, -10.0), seed=0) -> nib.Nifti1Image:
    data = np.random.default_rng(seed).normal(size=shape).astype(np.float32) + 100.0
    img = nib.Nifti1Image(data, _affine(vox, origin))
    img.header.set_zooms(tuple(vox) + (2.5,))
    img.header.set_xyzt_units("mm", "sec")
    return img


def test_resample_to_target_shape_keeps_the_world_box_and_tr():
    img = _bold()
    out = resample_bold(img, target_shape=(4, 5, 3))
    assert out.shape == (4, 5, 3, 4) and out.get_data_dtype() == np.float32
    for a, b in zip(world_box(out.affine, out.shape), world_box(img.affine, img.shape)):
        np.testing.assert_allclose(a, b)
    np.testing.assert_allclose(np.diag(out.affine)[:3], [6.0, 6.0, 8.0])
    assert out.header.get_zooms() == (6.0, 6.0, 8.0, 2.5)
    assert out.header.get_xyzt_units() == ("mm", "sec")
    assert int(out.header["sform_code"]) > 0


def test_resample_to_voxel_size_reproduces_a_linear_ramp():
    # a linear ramp in world space is reproduced exactly by linear interpolation (every
    # 4 mm centre lies between 2 mm centres) and closely by the default cubic spline
    shape = (12, 10, 8)
    aff = _affine((2.0, 2.0, 2.0), (-11.0, -9.0, -7.0))
    ijk = np.indices(shape).reshape(3, -1).T
    xyz = ijk @ aff[:3, :3].T + aff[:3, 3]
    ramp = (xyz @ np.array([0.5, -0.25, 1.0]) + 50.0).reshape(shape).astype(np.float32)
    out = resample_bold(nib.Nifti1Image(ramp, aff), voxel_size=4.0, interpolation="linear")
    assert out.shape == (6, 5, 4)
    for a, b in zip(world_box(out.affine, out.shape), world_box(aff, shape)):
        np.testing.assert_allclose(a, b)
    oxyz = np.indices(out.shape).reshape(3, -1).T @ out.affine[:3, :3].T + out.affine[:3, 3]
    expect = (oxyz @ np.array([0.5, -0.25, 1.0]) + 50.0).reshape(out.shape)
    np.testing.assert_allclose(np.asarray(out.dataobj), expect, atol=1e-3)
    spline = resample_bold(nib.Nifti1Image(ramp, aff), voxel_size=4.0)
    inner = (slice(1, -1),) * 3  # the spline's boundary handling bends the outer voxels
    np.testing.assert_allclose(np.asarray(spline.dataobj)[inner], expect[inner], atol=0.1)
    # non-divisible voxel size: the grid grows to whole voxels, centred on the same box
    odd = resample_bold(nib.Nifti1Image(ramp, aff), voxel_size=(5.0, 3.0, 7.0))
    assert odd.shape == (5, 7, 3)
    lo, hi = world_box(odd.affine, odd.shape)
    olo, ohi = world_box(aff, shape)
    np.testing.assert_allclose((lo + hi) / 2, (olo + ohi) / 2)


def test_resample_to_another_images_grid_and_int_data(tmp_path):
    img = _bold()
    ints = nib.Nifti1Image(np.round(np.asarray(img.dataobj)).astype(np.int16), img.affine)
    nib.save(ints, tmp_path / "b.nii.gz")
    target = _affine((2.0, 2.0, 2.0), (-10.0, -12.0, -8.0))
    out = resample_bold(tmp_path / "b.nii.gz", target_shape=(7, 9, 5), target_affine=target)
    np.testing.assert_array_equal(out.affine, target)
    assert out.shape == (7, 9, 5, 4)
    near = resample_bold(ints, target_shape=(8, 10, 6), target_affine=ints.affine, interpolation="nearest")
    np.testing.assert_array_equal(np.asarray(near.dataobj), np.asarray(ints.dataobj, dtype=np.float32))


def test_resample_onto_the_same_box_stored_flipped_keeps_every_edge_voxel():
    """User test 19: a run of the first run's box stored with one axis flipped (an oblique grid, so the composed affine
    carries rounding) lost its edge voxels to the fill value (mapped to -4e-07); every voxel must be nibabel's value."""
    rng = np.random.default_rng(3)
    c, s_ = np.cos(0.3), np.sin(0.3)
    rot = np.array([[1.0, 0.0, 0.0], [0.0, c, -s_], [0.0, s_, c]])
    first = np.eye(4)
    first[:3, :3] = rot @ np.diag([4.0, 3.0, 5.0])
    first[:3, 3] = (-13.3, -40.7, 2.9)
    shape = (6, 7, 5)
    data = rng.normal(100.0, 10.0, (*shape, 3)).astype(np.float32)
    flip = first.copy()  # the same box, y axis stored the other way round
    flip[:3, 1] = -first[:3, 1]
    flip[:3, 3] = first[:3, 3] + first[:3, 1] * (shape[1] - 1)
    flipped = nib.Nifti1Image(data[:, ::-1].copy(), flip)
    out = resample_bold(flipped, target_shape=shape, target_affine=first)
    got = np.asarray(out.dataobj)
    assert np.count_nonzero(np.all(got == 0, axis=3)) == 0
    # nibabel's reading of the flipped file at every target voxel's world point (nearest index: the points are on its grid)
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3)
    world = nib.affines.apply_affine(first, ijk)
    src = np.rint(nib.affines.apply_affine(np.linalg.inv(flip), world)).astype(int)
    expect = np.asarray(flipped.dataobj)[src[:, 0], src[:, 1], src[:, 2]].reshape(*shape, 3)
    np.testing.assert_allclose(got, expect, rtol=1e-5, atol=1e-3)
    # a box one voxel shorter along y: the missing plane is outside the field of view (0), the rest nibabel's values
    short = nib.Nifti1Image(data[:, 1:].copy(), first @ _affine((1.0, 1.0, 1.0), (0.0, 1.0, 0.0)))
    got = np.asarray(resample_bold(short, target_shape=shape, target_affine=first).dataobj)
    assert np.all(got[:, 0] == 0)
    np.testing.assert_allclose(got[:, 1:], data[:, 1:], rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(), r"expected exactly one of target_shape, voxel_size, or target_affine together with target_shape, got none"),
        (dict(target_shape=(4, 5, 3), voxel_size=2.0), r"got \['target_shape', 'voxel_size'\]"),
        (dict(target_affine=np.eye(4)), r"got \['target_affine'\]"),
        (dict(target_shape=(4, 5)), r"expected target_shape as 3 integers >= 1, got \(4, 5\)"),
        (dict(target_shape=(4, 5, 2.5)), r"expected target_shape as 3 integers >= 1"),
        (dict(voxel_size=-2.0), r"expected voxel_size as a positive number or 3 positive numbers \(mm\), got -2.0"),
        (dict(target_shape=(4, 5, 3), target_affine=np.zeros((4, 4))), r"expected target_affine as an invertible \(4, 4\) voxel-to-mm matrix"),
        (dict(voxel_size=2.0, interpolation="cubic"), r"unknown interpolation 'cubic'; choose one of: 'continuous', 'linear', 'nearest'"),
    ],
)
def test_resample_errors(kwargs, match):
    with pytest.raises(Eeg2fmriInputError, match=match):
        resample_bold(_bold(), **kwargs)


def test_resample_rejects_nan_and_unknown_orientation():
    img = _bold()
    data = np.asarray(img.dataobj).copy()
    data[0, 0, 0, 0] = np.nan
    with pytest.raises(Eeg2fmriInputError, match=r"BOLD image: expected finite values in BOLD data, found 1 NaN/Inf"):
        resample_bold(nib.Nifti1Image(data, img.affine), voxel_size=6.0)
    with pytest.raises(Eeg2fmriInputError, match=r"the image has no affine, so the orientation is unknown"):
        resample_bold(nib.Nifti1Image(np.ones((4, 5, 6), np.float32), None), voxel_size=2.0)
    bare = nib.Nifti1Image(np.ones((4, 5, 6), np.float32), np.eye(4))
    bare.header["sform_code"] = 0
    bare.header["qform_code"] = 0
    with pytest.raises(Eeg2fmriInputError, match=r"the header has neither an sform nor a qform, so the orientation is unknown"):
        resample_bold(bare, voxel_size=2.0)
    with pytest.raises(Eeg2fmriInputError, match=r"expected a 3D or 4D image, got shape \(4, 5\)"):
        resample_bold(nib.Nifti1Image(np.ones((4, 5), np.float32), np.eye(4)), voxel_size=2.0)


def test_find_confounds_next_to_fmriprep_bold(tmp_path):
    bold = tmp_path / "sub-01_ses-2_task-rest_run-1_space-MNI152NLin2009cAsym_res-2_desc-preproc_bold.nii.gz"
    with pytest.raises(Eeg2fmriInputError, match=r"no confounds file found; expected sub-01_ses-2_task-rest_run-1_desc-confounds_timeseries.tsv \(fMRIPrep\)"):
        find_confounds(bold)
    old = tmp_path / "sub-01_ses-2_task-rest_run-1_desc-confounds_regressors.tsv"
    old.write_text(TSV)
    assert find_confounds(bold) == old
    new = tmp_path / "sub-01_ses-2_task-rest_run-1_desc-confounds_timeseries.tsv"
    new.write_text(TSV)
    assert find_confounds(str(bold)) == new
    with pytest.raises(Eeg2fmriInputError, match=r"expected a BIDS BOLD file name ending in _bold.nii\[.gz\]"):
        find_confounds(tmp_path / "sub-01_T1w.nii.gz")


def test_resample_bold_time_against_the_truth_and_scipy():
    """resample_bold_time: sinusoids below the new Nyquist frequency come back at the new times; at a whole factor it
    agrees with scipy.signal.resample_poly (anti-aliased decimation) inside the run."""
    from scipy.signal import resample_poly

    from eeg2fmri.preprocessing.volumes import resample_bold_time, resampled_times

    t = 3.0 + 1.5 * np.arange(240) + np.random.default_rng(0).integers(-1, 2, 240) / 500.0  # sample jitter of the markers
    f = np.array([0.01, 0.03, 0.06])
    y = np.sin(2 * np.pi * f * t[:, None] + np.arange(3))
    tn = resampled_times(t, 2.0, 1.5)
    # the new volumes' middles (onset + TR/2) step from the first old middle to the last (user test 32: onsets mapped to
    # onsets shifted the BOLD by half the TR difference against the package's own timing)
    assert tn[0] + 1.0 == pytest.approx(t[0] + 0.75) and np.allclose(np.diff(tn), 2.0) and t[-1] + 0.75 - 2.0 < tn[-1] + 1.0 <= t[-1] + 0.75
    assert resampled_times(t, 2.0, 1.5, end=t[-1] + 1.5)[-1] + 2.0 <= t[-1] + 1.5 + 1e-9  # every new acquisition inside the EEG
    assert resampled_times(np.array([0.1, 2.1, 4.1]), 3.0, 2.0)[0] > 0  # none before the recording starts
    tn = t[0] + 2.0 * np.arange(int((t[-1] - t[0]) // 2.0) + 1)  # sample times (the middles) of the new series
    out = resample_bold_time(y.astype(np.float32), t, tn)
    assert out.dtype == np.float32 and out.shape == (len(tn), 3)
    truth = np.sin(2 * np.pi * f * tn[:, None] + np.arange(3))
    assert np.abs(out - truth)[8:-8].max() < 2e-3
    tr = 3.0 + 1.5 * np.arange(240)
    yr = np.sin(2 * np.pi * f * tr[:, None] + np.arange(3))
    t3 = tr[::2]
    ref = resample_poly(yr, 1, 2, axis=0)[: len(t3)]
    assert np.abs(resample_bold_time(yr, tr, t3) - ref)[10:-10].max() < 5e-3
    # a shorter TR interpolates (no filter)
    t1 = tr[0] + np.arange(int(tr[-1] - tr[0]) + 1, dtype=float)
    up = resample_bold_time(yr, tr, t1)
    assert np.abs(up - np.sin(2 * np.pi * f * t1[:, None] + np.arange(3)))[8:-8].max() < 2e-3
    with pytest.raises(Eeg2fmriInputError, match=r"run-1: expected the new volume times within the run's 3\.000-361\.500 s, got"):
        resample_bold_time(yr, tr, tr + 1.0, where="run-1")
    with pytest.raises(Eeg2fmriInputError, match=r"expected at least 4 volumes at increasing times to resample in time, got 3"):
        resample_bold_time(yr[:3], tr[:3], tr[:2])


def test_prepare_pools_runs_of_different_trs_with_resample_tr(tmp_path):
    """User test 30: a multi-site study (TR 2 s and 1.5 s) could not be prepared as one dataset. resample_tr resamples
    every run's BOLD in time after its volumes are paired with its markers; the EEG windows end at the new times."""
    import json

    import nibabel as nib

    from eeg2fmri.datasets import prepare_dataset
    from eeg2fmri.preprocessing.volumes import resample_bold_time

    from .test_layouts import eeg_uv, write_bv

    root = tmp_path / "sites"
    (root).mkdir()
    (root / "dataset_description.json").write_text('{"Name": "sites", "BIDSVersion": "1.8.0"}')
    ch, sf = ["Fz", "Cz", "Pz", "Oz", "C3", "C4", "P3"], 100.0
    for sub, tr, nvol in (("01", 2.0, 40), ("02", 1.5, 53)):
        n = int((nvol * tr + 3.0) * sf)
        write_bv(root / f"sub-{sub}" / "eeg", f"sub-{sub}_task-rest_eeg", eeg_uv(len(ch), n, int(sub)), sf, ch,
                 [("Response", "R128", int((1.0 + k * tr) * sf)) for k in range(nvol)])
        t = 1.0 + tr * np.arange(nvol)
        data = 100 + 5 * np.sin(2 * np.pi * 0.02 * t)[None, None, None, :] * np.linspace(0.5, 1.5, 5 * 4 * 3).reshape(5, 4, 3, 1)
        img = nib.Nifti1Image(data.astype(np.float32), np.diag([4.0, 4.0, 4.0, 1.0]))
        img.header.set_zooms((4.0, 4.0, 4.0, tr))
        img.header.set_xyzt_units("mm", "sec")
        func = root / f"sub-{sub}" / "func"
        func.mkdir(parents=True)
        nib.save(img, func / f"sub-{sub}_task-rest_bold.nii.gz")
        (func / f"sub-{sub}_task-rest_bold.json").write_text(json.dumps({"RepetitionTime": tr}))
    mask = np.zeros((5, 4, 3), dtype=np.uint8)
    mask[1:4, 1:3, :] = 1
    nib.save(nib.Nifti1Image(mask, np.diag([4.0, 4.0, 4.0, 1.0])), tmp_path / "mask.nii.gz")
    opts = {"mask": str(tmp_path / "mask.nii.gz"), "drop_volumes": 0}
    with pytest.raises(Eeg2fmriInputError, match=r"TR 1\.5 s differs from the first run's .* 2 s; .*--layout-option "
                                                 r"'tasks=\[\.\.\.\]'.* or resample the BOLD in time: prepare option resample_tr "
                                                 r"\(--config '\{\"resample_tr\": 2\}'"):
        prepare_dataset(root, opts)
    ds = prepare_dataset(root, {**opts, "resample_tr": 2.0})
    assert ds.tr == 2.0 and [r.n_volumes for r in ds.runs] == [40, 40]  # 53 volumes at 1.5 s span 78 s: 40 at 2 s
    on = ds.runs[1].onsets
    # middles on middles: the first new volume's middle (onset + 1 s) is the first old one's (1.0 + 0.75 s)
    assert on[0] == pytest.approx(0.75) and np.allclose(np.diff(on), 2.0) and on[-1] + 1.0 <= 1.0 + 1.5 * 52 + 0.75
    prov = ds.provenance["inputs"]["sub-02_task-rest"]["resampled_in_time"]
    assert prov == {"from_tr": 1.5, "to_tr": 2.0, "volumes": [53, 40]}
    # a run already at resample_tr keeps its onsets and values (a review: it was re-gridded and re-interpolated)
    assert "resampled_in_time" not in ds.provenance["inputs"]["sub-01_task-rest"]
    raw1 = np.asarray(nib.load(root / "sub-01" / "func" / "sub-01_task-rest_bold.nii.gz").dataobj)[ds.mask].T
    np.testing.assert_array_equal(np.asarray(ds.runs[0].bold), raw1.astype(np.float32))
    assert ds.provenance["inputs"]["sub-02_task-rest"]["volume_times_s"] == [pytest.approx(-0.25), 2.0]  # from the first saved volume
    # the command prints what pooling changed (user test 30: only -v said it)
    from types import SimpleNamespace

    from eeg2fmri.commands.prepare import pooling_summary

    assert pooling_summary(ds)[1] == "  BOLD resampled in time in 1 run(s): sub-02_task-rest (TR 1.5 -> 2 s)"
    fake = SimpleNamespace(provenance={"inputs": {
        "a": {"channel_mapping": {"by_position": {"T7": "T3", "Cz": "Cz"}, "interpolated": ["FT9"], "ignored": ["X1", "X2"]}, "notch_hz": 50.0,
              "bold_grid_source": {"shape": [64, 64, 50], "voxel_mm": [3.0, 3.0, 3.0], "oblique": True}},
        "b": {"non_steady_state_volumes": 3, "notch_hz": 60.0,
              "slice_timing": "b_bold.json: slices acquired 0-1.9 s after each volume's start (TR 2 s, 30 slices), not slice-time corrected"},
        "c": {"slice_timing": "c_bold.json: slices acquired 0-1 s after each volume's start (TR 2 s, 3 slices), slice-time corrected to 0.5 s"}}})
    assert pooling_summary(fake) == ["what prepare changed (details: manifest.json, provenance.inputs):",
                                     "  channels renamed by electrode position in 1 run(s): a (T3->T7)",
                                     "  training channels interpolated in 1 run(s): a (FT9)",
                                     "  EEG channels left out (not in the channel set) in 1 run(s): a (X1, X2)",
                                     "  BOLD resampled onto the dataset's grid in 1 run(s): a (64x64x50 of 3x3x3 mm, oblique)",
                                     "  leading non-steady-state volumes left out in 1 run(s): b (3)",
                                     "  SliceTiming given but not read (volumes taken at marker + TR/2; README: SliceTiming) in 1 run(s): b",
                                     "  power-line notch: 50 Hz in 1 run(s); 60 Hz in 1 run(s)"]
    assert pooling_summary(SimpleNamespace(provenance={"inputs": {"a": {"notch_hz": 50.0}}})) == []
    # the resampled series are the run's own series through resample_bold_time, at the new times
    raw = np.asarray(nib.load(root / "sub-02" / "func" / "sub-02_task-rest_bold.nii.gz").dataobj)[ds.mask].T
    want = resample_bold_time(raw, 1.0 + 1.5 * np.arange(53) + 0.75, on + 1.0)
    np.testing.assert_allclose(np.asarray(ds.runs[1].bold), want, rtol=1e-5, atol=1e-4)
    # raw windows end at the new volumes' ends (onset + TR), sample by sample
    rawds = prepare_dataset(root, {**opts, "resample_tr": 2.0, "representation": "raw"})
    rs = rawds.config.raw_sfreq
    np.testing.assert_array_equal(rawds.runs[1].window_end, np.round((rawds.runs[1].onsets + 2.0) * rs).astype(int))
    # leading volumes left out before resampling: the new volumes whose middle precedes the first kept one's go too
    dropped = prepare_dataset(root, {**opts, "resample_tr": 2.0, "drop_volumes": 3})
    on3 = dropped.runs[1].onsets
    assert on3[0] + 1.0 >= 1.0 + 1.5 * 3 + 0.75 - 1e-6 and on3[0] + 1.0 - 2.0 < 1.0 + 1.5 * 3 + 0.75
    np.testing.assert_allclose(np.asarray(dropped.runs[1].bold), resample_bold_time(raw[3:], 1.0 + 1.5 * np.arange(3, 53) + 0.75, on3 + 1.0),
                               rtol=1e-5, atol=1e-4)
    with pytest.raises(Eeg2fmriInputError, match=r"expected at least one volume at resample_tr=500\.0 s within the run, got none"):
        prepare_dataset(root, {**opts, "resample_tr": 500.0})


def test_regress_confounds_with_drift_is_the_joint_least_squares_fit():
    """drift=: the confounds' coefficients of numpy's joint least-squares fit [confounds, drift], only their part removed
    (mean and drift kept); once detrended, the residual is orthogonal to the detrended confounds (without drift= it is not)."""
    from eeg2fmri.preprocessing.bold import detrend, drift_basis
    from eeg2fmri.preprocessing.volumes import regress_confounds

    rng = np.random.default_rng(4)
    n, tr = 137, 1.7
    d = drift_basis(n, tr)
    c = np.cumsum(rng.standard_normal((n, 3)), axis=0)  # slow confounds (random walks), like lagged heart rate
    y = c @ rng.standard_normal((3, 5)) + d @ rng.standard_normal((d.shape[1], 5)) * 4 + rng.standard_normal((n, 5)) + 50
    b = np.linalg.lstsq(np.column_stack([c, d]), y, rcond=None)[0]
    want = y - np.column_stack([c, d]) @ b  # the joint fit's residual
    got = regress_confounds(y, c, drift=d)
    np.testing.assert_allclose(detrend(got, tr), want, atol=2e-4)  # the same once the drift (kept) is detrended
    np.testing.assert_allclose(got.mean(axis=0), y.mean(axis=0), rtol=1e-5)  # the mean kept
    np.testing.assert_allclose(regress_confounds(y, c, drift=d[:, 1:]), got, atol=1e-4)  # the constant may be given or not
    # a confound inside the drift (fMRIPrep's cosine columns, a trend) removes nothing (a review: 1e5 from rounding residue)
    inside = np.column_stack([c, d[:, 1:3], np.round(d[:, 3], 6)])  # (written with 6 decimals: a rounding residue remains)
    assert np.abs(regress_confounds(y, inside, drift=d) - got).max() < 0.5 * y.std()  # bounded (was ~1e5 x the data)
    only = regress_confounds(y, d[:, 1:3], drift=d)
    np.testing.assert_allclose(only, y, atol=1e-3)
    with pytest.raises(Eeg2fmriInputError, match=r"expected fewer confounds plus drift columns than volumes, got 133 confounds"):
        regress_confounds(y, rng.standard_normal((n, 133)), drift=d)
    assert np.abs(detrend(c, tr).T @ detrend(got, tr)).max() < 1e-2
    assert np.abs(detrend(c, tr).T @ detrend(regress_confounds(y, c), tr)).max() > 10
    with pytest.raises(Eeg2fmriInputError, match=r"expected drift of shape \(137, n_columns\), got shape \(136, 5\)"):
        regress_confounds(y, c, drift=d[1:])
