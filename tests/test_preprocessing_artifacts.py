"""Gradient-artifact check: a spectral comb at k / TR warns, clean EEG does not."""

from __future__ import annotations

import warnings

import mne
import numpy as np
import pytest
from scipy.signal import lfilter

from eeg2fmri.preprocessing.artifacts import check_gradient_artifacts
from eeg2fmri.utils.validation import Eeg2fmriInputError

SF, TR, N_SLICES = 250.0, 1.6, 16  # 400 samples per volume, 25 per slice


def _eeg(n_chans: int = 5, seconds: float = 48.0, seed: int = 0) -> np.ndarray:
    """Brown-ish noise plus an alpha rhythm, in volts."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SF)
    x = lfilter([1.0], [1.0, -0.95], rng.normal(size=(n_chans, n)), axis=1) * 2e-6
    return x + 5e-6 * np.sin(2 * np.pi * 10.3 * np.arange(n) / SF)


def _artifact(n_times: int, amplitude: float) -> np.ndarray:
    """A slice-periodic gradient waveform (25 samples: ramp up, plateau, ramp down)."""
    per = int(SF * TR / N_SLICES)
    one = np.r_[np.linspace(0, 1, 5), np.ones(8), np.linspace(1, -1, 6), -np.ones(6)]
    assert len(one) == per
    return amplitude * np.tile(one, n_times // per + 1)[:n_times]


def _no_warning(*args, **kwargs) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return check_gradient_artifacts(*args, **kwargs)


def test_clean_eeg_passes_quietly():
    for seed in range(3):
        rep = _no_warning(_eeg(seed=seed), SF, TR)
        assert rep["detected"] is False and rep["peak_ratio"] < 3.0
        assert rep["volume_ratio"] < 2.0 and rep["slice_ratio"] is None
        assert rep["seconds"] == pytest.approx(48.0)


def test_uncorrected_gradient_artifact_warns_with_the_measured_ratio():
    x = _eeg()
    x = x + _artifact(x.shape[1], 50e-6)
    with pytest.warns(UserWarning, match=r"run-1: strong periodic power at multiples of 10 Hz \(k x 1/TR, TR=1.6 s\).*uncorrected for MRI gradient artifacts: prepare with --clean gradient.*eeg2fmri clean"):
        rep = check_gradient_artifacts(x, SF, TR, where="run-1")
    assert rep["detected"] is True and rep["peak_ratio"] > 100.0
    assert rep["comb_hz"] == pytest.approx(N_SLICES / TR)  # found without n_slices
    with pytest.warns(UserWarning, match="gradient artifacts"):
        known = check_gradient_artifacts(x, SF, TR, n_slices=N_SLICES)
    assert known["slice_ratio"] == pytest.approx(rep["peak_ratio"])
    # a faint residual after correction stays below the threshold
    weak = _no_warning(_eeg() + _artifact(x.shape[1], 1.5e-6), SF, TR, n_slices=N_SLICES)
    assert 1.5 < weak["slice_ratio"] < 10.0 and weak["detected"] is False


def test_volume_periodic_artifact_and_raw_input():
    x = _eeg(n_chans=3, seconds=40.0, seed=4)
    n = x.shape[1]
    vol = np.zeros(n)
    vol[(np.arange(n) % 400) < 5] = 100e-6  # a 20 ms pulse once per volume (every 1.6 s)
    raw = mne.io.RawArray(x + vol, mne.create_info(["Fz", "Cz", "ECG"], SF, ["eeg", "eeg", "ecg"]), verbose=False)
    with pytest.warns(UserWarning, match=r"multiples of 0.625 Hz"):
        rep = check_gradient_artifacts(raw, tr=TR)
    assert rep["volume_ratio"] > 20.0 and rep["comb_hz"] == pytest.approx(1 / TR)
    with pytest.raises(Eeg2fmriInputError, match=r"sfreq=500 Hz disagrees with the recording's 250.0 Hz"):
        check_gradient_artifacts(raw, 500, TR)


def test_line_noise_on_the_comb_is_not_an_artifact():
    x = _eeg(seed=2)
    t = np.arange(x.shape[1]) / SF
    x = x + 40e-6 * np.sin(2 * np.pi * 50.0 * t)  # 50 Hz = 80 x 1/TR
    assert _no_warning(x, SF, TR)["detected"] is False


def test_simulated_dataset_passes(tiny_bids):
    from eeg2fmri.io import find_runs, read_bold, read_eeg

    run = find_runs(tiny_bids)[0]
    _, tr = read_bold(run.bold_path)
    rep = _no_warning(read_eeg(run.eeg_path), tr=tr, where=str(run.eeg_path))
    assert rep["peak_ratio"] < 3.0


def test_short_recording_and_errors():
    rep = _no_warning(_eeg(seconds=10.0), SF, TR)  # < 8 x TR = 12.8 s
    assert np.isnan(rep["peak_ratio"]) and rep["detected"] is False
    with pytest.raises(Eeg2fmriInputError, match=r"expected tr > 0, got None; pass the repetition time in seconds"):
        check_gradient_artifacts(_eeg(), SF)
    with pytest.raises(Eeg2fmriInputError, match=r"expected n_slices to be an integer >= 1, got 2.5"):
        check_gradient_artifacts(_eeg(), SF, TR, n_slices=2.5)
    with pytest.raises(Eeg2fmriInputError, match=r"expected sfreq \(Hz\) with an array input, got None"):
        check_gradient_artifacts(_eeg(), tr=TR)
    with pytest.raises(Eeg2fmriInputError, match=r"expected EEG data of shape \(n_chans, n_times\), got shape \(2, 3, 4\)"):
        check_gradient_artifacts(np.zeros((2, 3, 4)), SF, TR)
    raw = mne.io.RawArray(np.zeros((1, 5000)), mne.create_info(["ECG"], SF, "ecg"), verbose=False)
    with pytest.raises(Eeg2fmriInputError, match=r"expected EEG channels to check, found none among \['ECG'\]"):
        check_gradient_artifacts(raw, tr=TR)


def test_a_nan_channel_is_named():
    """A channel full of NaN stops the check with its name (not only a count of NaN samples)."""
    rng = np.random.default_rng(3)
    info = mne.create_info(["Fz", "Cz", "O2", "Pz"], 250.0, "eeg")
    data = rng.standard_normal((4, 250 * 40)) * 1e-5
    data[2] = np.nan
    raw = mne.io.RawArray(data, info, verbose=False)
    with pytest.raises(Eeg2fmriInputError, match=r"rec: channel\(s\) \['O2'\] contain NaN/Inf; interpolate them"):
        check_gradient_artifacts(raw, tr=2.0, where="rec")
