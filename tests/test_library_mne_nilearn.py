"""Library cross-checks against MNE (annotations) and nilearn (maskers, MNI mask) on tiny synthetic inputs."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

# ----------------------------------------------------------------------------- bad spans vs MNE reject_by_annotation

def _cropped_raw(meas_date: bool):
    """A raw cropped at 10 s (first_samp = 10 s * sf), with or without a measurement date."""
    import datetime

    import mne

    sf = 64.0
    raw = mne.io.RawArray(np.random.default_rng(0).standard_normal((3, 3907)), mne.create_info(3, sf, "eeg"), verbose=False)
    if meas_date:
        raw.set_meas_date(datetime.datetime(2020, 1, 2, tzinfo=datetime.timezone.utc))
    raw.set_annotations(mne.Annotations(
        onset=[12.03, 21.5, 27.25, 30.0, 35.0, 13.0, 15.0, 17.0], duration=[1.5, 0.75, 0.0, 2.0, 0.0, 0, 0, 0],
        description=["BAD_motion", "bad blink", "BAD_zero", "stim", "BAD boundary", "R128", "R128", "R128"],
        orig_time=raw.info["meas_date"]))
    return raw.crop(tmin=10.0)

@pytest.mark.parametrize("meas_date", [True, False])
def test_bad_spans_equal_mne_reject_by_annotation(meas_date):
    """io.eeg.bad_spans == the samples MNE sets to NaN with get_data(reject_by_annotation='NaN'), on a cropped raw."""
    from eeg2fmri.io.eeg import bad_spans

    raw = _cropped_raw(meas_date)
    sf = raw.info["sfreq"]
    assert raw.first_samp == 640
    got = bad_spans(raw)
    nan = np.isnan(raw.get_data(reject_by_annotation="NaN")[0])
    ours = np.zeros(raw.n_times, bool)
    for a, b in got:
        ours[int(np.ceil(a * sf - 1e-9)) : int(np.ceil(b * sf - 1e-9))] = True
    np.testing.assert_allclose(got, [[2.03, 3.53], [11.5, 12.25]], atol=1e-9)  # seconds from the first sample
    np.testing.assert_array_equal(ours, nan)

@pytest.mark.parametrize("meas_date", [True, False])
def test_marker_times_equal_mne_events_from_annotations(meas_date):
    """io.sync.marker_times == mne.events_from_annotations sample / sfreq (from the first sample), on a cropped raw."""
    import mne

    from eeg2fmri.io.sync import marker_times

    raw = _cropped_raw(meas_date)
    ev, ids = mne.events_from_annotations(raw, event_id={"R128": 1}, verbose=False)
    want = (ev[:, 0] - raw.first_samp) / raw.info["sfreq"]
    name, got = marker_times(raw, "R128")
    np.testing.assert_allclose(want, [3.0, 5.0, 7.0])
    np.testing.assert_allclose(got, want, atol=1e-9)

def test_discontinuities_equal_mne_concatenate_raws_boundaries():
    """io.eeg.discontinuities == the join times of mne.concatenate_raws (its BAD/EDGE boundary annotations)."""
    import mne

    from eeg2fmri.io.eeg import discontinuities

    sf = 50.0
    rng = np.random.default_rng(1)
    parts = [mne.io.RawArray(rng.standard_normal((2, k)), mne.create_info(2, sf, "eeg"), verbose=False) for k in (301, 177, 240)]
    raw = mne.concatenate_raws(parts, verbose=False)
    got = discontinuities(raw)
    np.testing.assert_allclose(got, [301 / sf, (301 + 177) / sf], atol=1e-6)
    mne_edges = sorted({round(float(o) - (raw.first_time if raw.annotations.orig_time is not None else 0.0), 6)
                        for o, d in zip(raw.annotations.onset, raw.annotations.description) if "boundary" in d.lower()})
    np.testing.assert_allclose(got, mne_edges, atol=1e-6)

# ----------------------------------------------------------------------------- ROI -> voxels vs nilearn inverse_transform

SHAPE = (9, 11, 7)
AFF = np.diag([3.0, 2.5, 4.0, 1.0])
AFF[:3, 3] = [-12.0, -13.0, -12.0]

def _mask():
    m = np.zeros(SHAPE, bool)
    m[1:8, 1:10, 1:6] = True
    return m

def _rois_dict(atlas):
    w = atlas.weights_.tocoo()
    return {"weights": {"rows": w.row.tolist(), "cols": w.col.tolist(), "values": w.data.tolist()}}

def test_labels_atlas_inverse_equals_nilearn_labels_masker_inverse():
    """Atlas.inverse_transform and prepared.rois_to_voxels == NiftiLabelsMasker.inverse_transform (labels atlas)."""
    from nilearn.maskers import NiftiLabelsMasker

    from eeg2fmri.datasets.prepared import rois_to_voxels
    from eeg2fmri.preprocessing.atlas import Atlas

    rng = np.random.default_rng(2)
    mask = _mask()
    labels = nib.Nifti1Image(rng.integers(0, 4, SHAPE).astype(np.int16), AFF)
    atlas = Atlas.from_labels(labels).fit((mask, AFF))
    vals = rng.standard_normal((5, len(atlas.labels_))).astype(np.float32)
    masker = NiftiLabelsMasker(labels, mask_img=nib.Nifti1Image(mask.astype(np.uint8), AFF)).fit()
    ref = np.asarray(masker.inverse_transform(vals).dataobj)[mask].T
    np.testing.assert_allclose(atlas.inverse_transform(vals), ref, atol=1e-6)
    np.testing.assert_allclose(rois_to_voxels(_rois_dict(atlas), vals, int(mask.sum())), ref, atol=1e-6)

def test_overlapping_spheres_inverse_equals_nilearn_spheres_masker_inverse():
    """Overlapping spheres: nilearn's NiftiSpheresMasker(allow_overlap=True).inverse_transform gives each voxel the
    mean of its spheres' values. Atlas.inverse_transform does the same (and rois_to_voxels away from the overlaps)."""
    from nilearn.maskers import NiftiSpheresMasker

    from eeg2fmri.datasets.prepared import rois_to_voxels
    from eeg2fmri.preprocessing.atlas import Atlas

    mask = _mask()
    centres = np.array([[0.0, 0.0, 0.0], [4.0, 2.5, 0.0], [-6.0, -5.0, 4.0]])
    radius = 5.0
    atlas = Atlas.from_spheres(centres, radius).fit((mask, AFF))
    vals = np.array([[1.0, 10.0, 100.0], [-2.0, 3.0, 5.0]], dtype=np.float32)
    masker = NiftiSpheresMasker(centres, radius=radius, allow_overlap=True, mask_img=nib.Nifti1Image(mask.astype(np.uint8), AFF)).fit()
    ref = np.asarray(masker.inverse_transform(vals).dataobj)[mask].T
    member = atlas.membership_.toarray() if hasattr(atlas.membership_, "toarray") else np.asarray(atlas.membership_)
    overlap = (member > 0).sum(0) > 1
    assert overlap.any()  # the case the test is about
    np.testing.assert_allclose(atlas.inverse_transform(vals), ref, atol=1e-6)
    painted = rois_to_voxels(_rois_dict(atlas), vals, int(mask.sum()))
    np.testing.assert_allclose(painted[:, ~overlap], ref[:, ~overlap], atol=1e-6)

def test_overlapping_spheres_rois_to_voxels_equals_nilearn_mean():
    """prepared.rois_to_voxels (synthesis output, PreparedDataset.to_voxels) at voxels of several spheres == nilearn's
    mean of their values (until session 16 it painted the value of the one ROI with the largest row-normalised weight);
    a NaN ROI value leaves that ROI out of the mean, NaN only where it alone covers a voxel."""
    from nilearn.maskers import NiftiSpheresMasker

    from eeg2fmri.datasets.prepared import rois_to_voxels
    from eeg2fmri.preprocessing.atlas import Atlas

    mask = _mask()
    centres = np.array([[0.0, 0.0, 0.0], [4.0, 2.5, 0.0], [-6.0, -5.0, 4.0]])
    atlas = Atlas.from_spheres(centres, 5.0).fit((mask, AFF))
    vals = np.array([[1.0, 10.0, 100.0], [-2.0, 3.0, 5.0]], dtype=np.float32)
    masker = NiftiSpheresMasker(centres, radius=5.0, allow_overlap=True, mask_img=nib.Nifti1Image(mask.astype(np.uint8), AFF)).fit()
    ref = np.asarray(masker.inverse_transform(vals).dataobj)[mask].T
    np.testing.assert_allclose(rois_to_voxels(_rois_dict(atlas), vals, int(mask.sum())), ref, atol=1e-6)
    member = atlas.membership_.toarray() if hasattr(atlas.membership_, "toarray") else np.asarray(atlas.membership_)
    nan_vals = vals.copy()
    nan_vals[:, 0] = np.nan  # e.g. the r of a constant ROI
    painted = rois_to_voxels(_rois_dict(atlas), nan_vals, int(mask.sum()))
    only0 = (member[0] > 0) & ((member[1:] > 0).sum(0) == 0)
    shared = (member[0] > 0) & ((member[1:] > 0).sum(0) > 0)
    assert only0.any() and shared.any()
    assert np.isnan(painted[:, only0]).all() and np.isfinite(painted[:, ~only0]).all()
    ref1 = np.asarray(NiftiSpheresMasker(centres[1:], radius=5.0, allow_overlap=True,
                                         mask_img=nib.Nifti1Image(mask.astype(np.uint8), AFF)).fit().inverse_transform(vals[:, 1:]).dataobj)[mask].T
    np.testing.assert_allclose(painted[:, shared], ref1[:, shared], atol=1e-6)  # the other spheres' mean there

# ----------------------------------------------------------------------------- MNI mask vs nilearn resampling

@pytest.mark.parametrize("vox,shape,origin", [((4.0, 5.0, 6.0), (45, 41, 29), (-90.0, -126.0, -72.0)),
                                             ((7.0, 6.0, 8.0), (23, 31, 19), (-80.0, -115.0, -60.0))])
def test_mni_mask_equals_nilearn_resample_nearest(vox, shape, origin):
    """volumes.mni_mask == nilearn's load_mni152_brain_mask(resolution=1) resampled to the grid (nearest), outside = 0."""
    from nilearn.datasets import load_mni152_brain_mask
    from nilearn.image import resample_img

    from eeg2fmri.preprocessing.volumes import mni_mask

    aff = np.diag(list(vox) + [1.0])
    aff[:3, 3] = origin
    got = mni_mask((aff, shape))
    ref = resample_img(load_mni152_brain_mask(resolution=1), target_affine=aff, target_shape=shape, interpolation="nearest",
                       force_resample=True, copy_header=True)
    ref = np.asarray(ref.dataobj) > 0
    assert got.shape == shape and got.sum() > 100
    # nearest-neighbour ties (a grid point exactly halfway between two 1 mm voxels) may round differently
    assert np.mean(got != ref) < 2e-3, np.mean(got != ref)
    assert np.mean(np.roll(got, 1, axis=0) != ref) > 10 * max(np.mean(got != ref), 1e-4)
