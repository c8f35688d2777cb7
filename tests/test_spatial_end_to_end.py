"""End to end, spatially: EEG drives one known region; its voxels must come out where they belong.

The dataset is written here, independently of :mod:`eeg2fmri.simulate` (its own affine, grid,
head shape, EEG writer and haemodynamics): BrainVision files through ``pybv`` and NIfTI through
``nibabel``. One sphere of known MNI coordinates follows the HRF-convolved alpha power of the EEG;
every other brain voxel carries slow fluctuations of the same size that the EEG does not see.
After ``eeg2fmri prepare``, ``train``, ``evaluate`` and ``synthesize`` (the command line, as a
user runs it), the voxels of highest test r (``r_map_*.nii.gz``) and of largest synthesised
variance (the output 4D NIfTI), located with nibabel's affine, must lie inside that sphere.
"""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from scipy.signal import butter, sosfiltfilt

from eeg2fmri.cli import main

TR = 2.0
SFREQ = 200.0
N_VOLS = 210  # 7 min
PRE = 6.0  # EEG starts 6 s before the first volume
CH = ["Fp1", "Fp2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2", "Cz", "Pz"]
CENTRE = np.array([-36.0, -24.0, 30.0])  # MNI mm: the EEG-driven region
RADIUS = 18.0
SHAPE = (17, 20, 15)  # 10 mm voxels, a different size on every axis
AFFINE = np.array([[-10.0, 0, 0, 80], [0, 10, 0, -115], [0, 0, 10, -60], [0, 0, 0, 1]])  # x flipped (radiological storage)


def _world(shape, affine):
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3)
    return nib.affines.apply_affine(affine, ijk).reshape(shape + (3,))


def _hrf(t):
    from scipy.stats import gamma

    return gamma.pdf(t, 6.0) - gamma.pdf(t, 16.0) / 6.0


def _slow(n, fs, rng, lo=0.01, hi=0.08):
    x = rng.standard_normal(n + 2000)
    x = sosfiltfilt(butter(2, [lo, hi], btype="band", fs=fs, output="sos"), x)[1000:-1000]
    return (x - x.mean()) / x.std()


def _write_subject(root, sub, rng):
    import pybv

    n_eeg = int((PRE + N_VOLS * TR + 4.0) * SFREQ)
    t = np.arange(n_eeg) / SFREQ
    drive = _slow(n_eeg // 20, SFREQ / 20, rng)  # slow drive at 10 Hz
    drive = np.interp(t, np.arange(len(drive)) * 20 / SFREQ, drive)
    amp = np.exp(-0.5 * drive)  # alpha amplitude falls when the region is active
    alpha = amp * np.sin(2 * np.pi * 10.0 * t + 0.3 * np.cumsum(rng.standard_normal(n_eeg)) / np.sqrt(SFREQ))
    gains = rng.uniform(0.5, 1.5, len(CH)) * np.linspace(0.4, 1.0, len(CH))  # posterior channels strongest
    eeg = np.outer(gains, alpha) * 10e-6
    eeg += 3e-6 * rng.standard_normal(eeg.shape)
    onsets = PRE + np.arange(N_VOLS) * TR
    events = [{"onset": int(round(o * SFREQ)), "description": 128, "type": "Response"} for o in onsets]
    eeg_dir = root / f"sub-{sub}" / "eeg"
    pybv.write_brainvision(data=eeg, sfreq=SFREQ, ch_names=CH, fname_base=f"sub-{sub}_task-rest_eeg", folder_out=eeg_dir, events=events)

    # BOLD: the HRF-convolved alpha *power* (not the drive) in the sphere, independent slow signals elsewhere
    power = amp**2
    k = _hrf(np.arange(0, 32, 1 / SFREQ)) / SFREQ
    bold_region = np.convolve(power - power.mean(), k)[: n_eeg]
    bold_region = np.interp(onsets + TR / 2, t, bold_region)
    bold_region = -(bold_region - bold_region.mean()) / bold_region.std()  # more activity, less alpha, more BOLD
    xyz = _world(SHAPE, AFFINE)
    brain = (((xyz - [0, -18, 10]) / [70, 95, 70]) ** 2).sum(-1) < 1
    region = np.linalg.norm(xyz - CENTRE, axis=-1) < RADIUS
    assert region.sum() >= 8 and (region & ~brain).sum() == 0
    data = np.zeros(SHAPE + (N_VOLS,), np.float32)
    n_b = int(brain.sum())
    other = np.stack([_slow(N_VOLS, 1 / TR, rng) for _ in range(6)], 1) @ rng.standard_normal((6, n_b))  # unseen networks
    other /= other.std(0)
    sig = np.where(region[brain][None, :], bold_region[:, None], other)
    sig = sig + 0.7 * rng.standard_normal(sig.shape)
    base = rng.uniform(600, 1200, n_b)
    data[brain] = (base * (1 + 0.01 * sig)).T
    data[~brain] = np.abs(rng.normal(0, 15, (int((~brain).sum()), N_VOLS)))
    img = nib.Nifti1Image(data, AFFINE)
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = TR
    func = root / f"sub-{sub}" / "func"
    func.mkdir(parents=True)
    nib.save(img, func / f"sub-{sub}_task-rest_bold.nii.gz")
    (func / f"sub-{sub}_task-rest_bold.json").write_text(json.dumps({"RepetitionTime": TR, "TaskName": "rest"}))
    return region, brain


@pytest.fixture(scope="module")
def spatial_bids(tmp_path_factory):
    root = tmp_path_factory.mktemp("spatial") / "bids"
    root.mkdir()
    (root / "dataset_description.json").write_text(json.dumps({"Name": "spatial", "BIDSVersion": "1.8.0"}))
    rng = np.random.default_rng(2026)
    for sub in ("01", "02"):
        region, brain = _write_subject(root, sub, rng)
    return root, region, brain


def _inside(ijk, affine):
    xyz = nib.affines.apply_affine(affine, ijk)
    return np.linalg.norm(xyz - CENTRE, axis=-1) < RADIUS + 1e-6


def test_eeg_driven_region_lands_in_its_world_coordinates(spatial_bids, tmp_path):
    root, region, brain = spatial_bids
    prep, run = tmp_path / "prepared", tmp_path / "run"
    assert main(["prepare", str(root), "--out", str(prep), "-q"]) == 0
    cfg = tmp_path / "train.yaml"
    cfg.write_text(f"data:\n  prepared: {prep}\nmodel:\n  name: ridge_hrf\nsplit:\n  protocol: within\nout: {run}\n")
    assert main(["train", str(cfg), "-q"]) == 0
    assert main(["evaluate", str(run), "--n-boot", "20", "-q"]) == 0

    # the prepared mask is the brain (nibabel reading, world coordinates of the prepared grid)
    mask_img = nib.load(run / "model" / "mask.nii.gz")
    np.testing.assert_allclose(mask_img.affine, AFFINE)
    mask = np.asarray(mask_img.dataobj) > 0
    dice = 2 * (mask & brain).sum() / (mask.sum() + brain.sum())
    assert dice > 0.9, dice

    # highest test r: inside the sphere
    r_img = nib.load(run / "evaluation" / "r_map_ridge_hrf.nii.gz")
    np.testing.assert_allclose(r_img.affine, AFFINE)
    r = np.asarray(r_img.dataobj)
    top = np.argsort(r, axis=None)[::-1][:8]
    ijk = np.stack(np.unravel_index(top, r.shape), 1)
    assert _inside(ijk, r_img.affine).all(), nib.affines.apply_affine(r_img.affine, ijk)
    assert np.median(r[region]) > 0.4 and np.median(r[brain & ~region]) < 0.15

    # largest synthesised variance: inside the sphere, read back from the output NIfTI
    out = tmp_path / "synth" / "sub-01_desc-synth_bold.nii.gz"
    eeg = root / "sub-01" / "eeg" / "sub-01_task-rest_eeg.vhdr"
    assert main(["synthesize", str(eeg), "--model", str(run / "model"), "--out", str(out), "-q"]) == 0
    syn = nib.load(out)
    np.testing.assert_allclose(syn.affine, AFFINE)
    var = np.asarray(syn.dataobj).var(axis=3)
    top = np.argsort(var, axis=None)[::-1][:8]
    ijk = np.stack(np.unravel_index(top, var.shape), 1)
    assert _inside(ijk, syn.affine).all(), nib.affines.apply_affine(syn.affine, ijk)
    side = json.loads(out.with_name(out.name.replace(".nii.gz", ".json")).read_text())
    assert side["ModelDir"] == str((run / "model").absolute())
