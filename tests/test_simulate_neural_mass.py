"""Neural-mass generator (Jansen-Rit + Balloon-Windkessel): BIDS layout, emergent alpha, haemodynamics, determinism."""

from __future__ import annotations

import json

import mne
import nibabel as nib
import numpy as np
import pytest

from eeg2fmri.simulate import load_groundtruth, simulate_neural_mass_dataset
from eeg2fmri.simulate.neural_mass import _psp_step, balloon_windkessel, jansen_rit
from eeg2fmri.utils.validation import Eeg2fmriInputError

# 2 subjects, 1.5 min (45 volumes), 12 mm voxels, 8 channels, 10 regions, 125 Hz: every axis a different size
NM = dict(n_subjects=2, minutes=1.5, voxel_size=12.0, n_channels=8, sfreq=125.0, seed=3, n_regions=10)
N_VOLS = 45


@pytest.fixture(scope="module")
def nm_bids(tmp_path_factory):
    return simulate_neural_mass_dataset(tmp_path_factory.mktemp("nm") / "bids", **NM)


def _raw(root, sub):
    return mne.io.read_raw_brainvision(root / f"sub-{sub}" / "eeg" / f"sub-{sub}_task-rest_run-1_eeg.vhdr", preload=True, verbose=False)


def _bold(root, sub):
    return nib.load(root / f"sub-{sub}" / "func" / f"sub-{sub}_task-rest_run-1_bold.nii.gz")


def test_layout_and_prepare(nm_bids):
    from eeg2fmri.datasets import prepare_dataset

    root = nm_bids
    assert (root / "participants.tsv").read_text().count("sub-") == NM["n_subjects"]
    desc = json.loads((root / "dataset_description.json").read_text())
    assert "neural-mass" in desc["Name"] and desc["DatasetType"] == "raw"
    raw = _raw(root, "01")
    assert raw.info["sfreq"] == NM["sfreq"] and len(raw.ch_names) == NM["n_channels"]
    markers = np.array([a["onset"] for a in raw.annotations if a["description"] == "Response/R128"])
    assert len(markers) == N_VOLS and markers[0] > 1.0  # EEG starts before the first volume
    np.testing.assert_allclose(np.diff(markers), 2.0, atol=1.0 / NM["sfreq"])
    assert 3e-6 < np.median(raw.get_data().std(axis=1)) < 2e-4  # microvolts, stored in volts
    img = _bold(root, "01")
    assert img.get_data_dtype() == np.float32 and img.shape[3] == N_VOLS
    assert img.header.get_zooms() == pytest.approx((12.0, 12.0, 12.0, 2.0))
    assert json.loads((root / "sub-01/func/sub-01_task-rest_run-1_bold.json").read_text())["RepetitionTime"] == 2.0
    centre = img.affine @ np.r_[(np.array(img.shape[:3]) - 1) / 2, 1]
    assert np.all(np.abs(centre[:3]) < 40)  # MNI affine
    mask = np.asarray(nib.load(root / "derivatives/groundtruth/mask.nii.gz").dataobj) > 0
    inside = np.asarray(img.dataobj)[mask]
    assert 700 < np.median(inside) < 1400  # baseline ~1000
    gt = load_groundtruth(root, "01")
    rebuilt = gt["baseline"][None, :] * (1 + (gt["bold_clean"] + gt["noise"] + gt["drift"]) / 100.0)
    np.testing.assert_allclose(inside.T, rebuilt, rtol=1e-4)
    np.testing.assert_allclose(markers, gt["volume_onsets_eeg"], atol=1.0 / NM["sfreq"])
    assert gt["leadfield"].shape == (NM["n_channels"], NM["n_regions"])

    ds = prepare_dataset(root, progress_bar=False)
    assert len(ds.runs) == NM["n_subjects"]
    assert all(r.bold.shape[0] == N_VOLS for r in ds.runs)


def test_emergent_alpha_peak(nm_bids):
    """Jansen-Rit columns oscillate near 10 Hz: the EEG spectrum peaks in the alpha band (MNE's Welch PSD)."""
    for sub in ("01", "02"):
        x = _raw(nm_bids, sub).get_data()
        psd, freqs = mne.time_frequency.psd_array_welch(x, NM["sfreq"], fmin=1.0, fmax=40.0, n_fft=512, verbose=False)
        m = np.median(psd, axis=0)
        assert 8.0 <= freqs[np.argmax(m)] <= 13.0
        assert m[(freqs >= 8) & (freqs <= 13)].mean() > 5 * m[(freqs >= 1) & (freqs <= 5)].mean()


def test_alpha_falls_as_input_rises(nm_bids):
    """Emergent (not prescribed) coupling: near the upper Hopf bifurcation alpha power falls with input."""
    gt = load_groundtruth(nm_bids, "01")
    keep = gt["t_neural"] > 0
    k = 20  # 2 s means at 10 Hz
    n = (int(keep.sum()) // k) * k
    power = gt["source_power"][keep][:n].reshape(-1, k, NM["n_regions"]).mean(1)
    drive = gt["input_slow"][keep][:n].reshape(-1, k, NM["n_regions"]).mean(1)
    r = [np.corrcoef(power[:, i], drive[:, i])[0, 1] for i in range(NM["n_regions"])]
    assert np.median(r) < -0.1


def test_psp_step_matches_matrix_exponential():
    """The exact PSP step equals scipy's matrix exponential of the augmented linear system."""
    from scipy.linalg import expm

    for rate, dt in ((100.0, 1e-3), (50.0, 2e-3)):
        aug = np.zeros((3, 3))
        aug[:2, :2] = [[0.0, 1.0], [-(rate**2), -2.0 * rate]]
        aug[1, 2] = 1.0
        e = expm(aug * dt)
        phi, gam = _psp_step(rate, dt)
        np.testing.assert_allclose(phi, e[:2, :2], atol=1e-12)
        np.testing.assert_allclose(gam, e[:2, 2], atol=1e-15)


def test_isolated_column_oscillates_in_alpha():
    rng = [np.random.default_rng(0), np.random.default_rng(1)]
    w = np.zeros((2, 3, 3))
    res = jansen_rit(8000, w, np.ones((2, 3, 3), int), np.zeros((1000, 2, 3)), rng, dt=1e-3, decimate=8,
                     coupling=0.0, input_mean=220.0, input_noise_sd=30.0)
    assert res["source"].shape == (1000, 2, 3)
    x = res["source"][200:].reshape(800, -1).T.astype(float)
    psd, freqs = mne.time_frequency.psd_array_welch(x, 125.0, fmin=1.0, fmax=40.0, n_fft=256, verbose=False)
    assert 8.0 <= freqs[np.argmax(psd.mean(0))] <= 12.0


def test_balloon_impulse_response():
    """Same equations and parameters as hrf.balloon_bold (Euler) give the same response; peak 3-7 s."""
    from nilearn.glm.first_level.hemodynamic_models import glover_hrf

    from eeg2fmri.simulate.hrf import balloon_bold
    from eeg2fmri.simulate.neural_mass import BALLOON, BOLD_OUTPUT, _bold_coefficients

    dt = 0.01
    u = np.zeros((3200, 1))
    u[:10] = 1.0  # 0.1 s of activity
    t = (np.arange(len(u)) + 1) * dt
    ours = balloon_windkessel(u, dt)[:, 0]  # Friston et al. 2000 values, as balloon_bold
    ref = balloon_bold(u, dt)[:, 0]
    assert np.corrcoef(ours, ref)[0, 1] > 0.9999
    assert abs(t[np.argmax(ours)] - t[np.argmax(ref)]) <= 0.05
    # the dataset's values (Stephan et al. 2007): peak 3-7 s, close to nilearn's canonical (Glover) shape
    kin = {k: v[0] for k, v in BALLOON.items()}
    used = balloon_windkessel(u, dt, v0=BOLD_OUTPUT["V0"], k=_bold_coefficients(np.array([kin["rho"]])), **kin)[:, 0]
    assert 3.0 <= t[np.argmax(used)] <= 7.0
    assert used.min() < 0 < used.max()  # post-stimulus undershoot
    g = glover_hrf(dt, oversampling=1, time_length=32.0)
    assert np.corrcoef(used[: len(g)], g)[0, 1] > 0.9


@pytest.mark.slow
def test_deterministic_by_seed(nm_bids, tmp_path):
    """A subject depends only on the seed and its index (not on how many subjects are simulated)."""
    one = {**NM, "n_subjects": 1}
    a = simulate_neural_mass_dataset(tmp_path / "a", **one)
    np.testing.assert_array_equal(np.asarray(_bold(a, "01").dataobj), np.asarray(_bold(nm_bids, "01").dataobj))
    np.testing.assert_array_equal(_raw(a, "01").get_data(), _raw(nm_bids, "01").get_data())
    b = simulate_neural_mass_dataset(tmp_path / "b", **{**one, "seed": NM["seed"] + 1})
    assert not np.array_equal(np.asarray(_bold(b, "01").dataobj), np.asarray(_bold(a, "01").dataobj))
    with pytest.raises(Eeg2fmriInputError, match="already exists"):
        simulate_neural_mass_dataset(tmp_path / "a", **one)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"model": "wilson_cowan"}, "unknown model 'wilson_cowan'"),
        ({"frobnicate": 1}, r"unknown neural-mass option\(s\) \['frobnicate'\]"),
        ({"integration_rate": 200.0}, "integration_rate >= 500"),
        ({"connection_density": 1.5}, r"connection_density in \[0, 1\]"),
        ({"coupling": -1.0}, "coupling to be a finite number >= 0"),
        ({"minutes": 0.2}, "at least 10 volumes"),
        ({"seed": -1}, "non-negative integer"),
        ({"n_regions": 1}, "n_regions >= 2"),
        ({"sfreq": 20.0}, "sfreq >= 50"),
        ({"n_channels": 0}, "n_channels to be an integer >= 1"),
        ({"montage": "nope"}, "unknown montage 'nope'"),
        ({"n_channels": 500}, "usable channels"),
    ],
)
def test_bad_options(tmp_path, kwargs, match):
    with pytest.raises(Eeg2fmriInputError, match=match):
        simulate_neural_mass_dataset(tmp_path / "x", **{**NM, **kwargs})
    assert not (tmp_path / "x").exists()
