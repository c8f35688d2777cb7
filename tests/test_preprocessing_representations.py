"""EEG representations: STFT frames anchored at volume onsets, raw waveform, robust scaling."""

from __future__ import annotations

import mne
import numpy as np
import pytest

from eeg2fmri.preprocessing.representations import (
    NORMAL_IQR,
    RobustScaler,
    StftFrames,
    raw_continuous,
    robust_standardize,
    stft_frames,
)
from eeg2fmri.utils.validation import Eeg2fmriInputError

SF = 100.0


def _sines(n_times: int, specs) -> np.ndarray:
    """One channel per (amplitude, frequency, offset) spec."""
    t = np.arange(n_times) / SF
    return np.stack([a * np.sin(2 * np.pi * f * t) + c for a, f, c in specs])


def test_stft_of_sinusoids_peaks_at_their_bins_with_their_amplitude():
    # 3 channels x 61 s; volumes every 2 s from 5 s: frames of 200 samples, bins every 0.5 Hz
    x = _sines(6100, [(3.0, 10.0, 0.0), (2.0, 5.0, 1.5), (0.5, 17.5, 0.0)])
    onsets = np.arange(5.0, 55.0, 2.0)  # 25 volumes
    frames, freqs, n_pre = stft_frames(x, SF, onsets, 2.0, 0.0, 20.0)
    assert n_pre == 2  # frames at 1 s and 3 s fit before the first onset
    assert frames.shape == (2 + 25, 3, 41) and frames.dtype == np.float32
    np.testing.assert_allclose(freqs, np.arange(41) * 0.5)
    np.testing.assert_array_equal(freqs[frames.argmax(axis=2)[n_pre]], [10.0, 5.0, 17.5])
    np.testing.assert_allclose(frames[:, 0, 20], 3.0, rtol=1e-5)  # amplitude normalisation
    np.testing.assert_allclose(frames[:, 2, 35], 0.5, rtol=1e-5)
    np.testing.assert_allclose(frames[:, 1, 0], 1.5, rtol=1e-5)  # DC bin = mean (not doubled)
    assert frames[:, 0, [19, 21]].max() < 1e-4  # on-bin tone: no leakage with a boxcar


def test_stft_frames_start_at_onsets_and_log_power():
    # 4 channels; a 10 Hz burst only in [9, 11) s, volumes at irregular onsets
    x = np.zeros((4, 3000))
    t = np.arange(3000) / SF
    burst = (t >= 9.0) & (t < 11.0)
    x[:, burst] = np.sin(2 * np.pi * 10.0 * t[burst])
    onsets = np.array([3.0, 5.0, 7.0, 9.0, 11.0, 13.01])  # last onset 1 sample late
    res = stft_frames(x, SF, onsets, 1.0, 8.0, 12.0, frames_per_tr=2, log=True)
    assert isinstance(res, StftFrames)
    assert res.n_pre == 3 and res.frames.shape == (3 + 12, 4, 5)
    np.testing.assert_allclose(res.freqs, [8, 9, 10, 11, 12])
    power10 = res.frames[:, 0, 2]
    # frames of volume 3 (onset 9 s) are indices n_pre + 3*2 and + 1
    assert np.flatnonzero(power10 > np.log(0.5)).tolist() == [9, 10]
    np.testing.assert_allclose(power10[[9, 10]], 0.0, atol=1e-5)  # log(1 ** 2)
    assert power10[0] == pytest.approx(np.log(1e-30))  # silent: floored


def test_stft_hann_window_keeps_amplitude_scale():
    x = _sines(1200, [(4.0, 6.0, 0.0), (1.0, 11.0, 0.0)])
    frames, freqs, _ = stft_frames(x, SF, np.array([0.0, 4.0, 8.0]), 4.0, 5.0, 12.0, window="hann")
    np.testing.assert_allclose(frames[:, 0, np.flatnonzero(freqs == 6.0)[0]], 4.0, rtol=1e-5)
    np.testing.assert_allclose(frames[:, 1, np.flatnonzero(freqs == 11.0)[0]], 1.0, rtol=1e-5)


def test_stft_long_recording_is_blocked_identically(monkeypatch):
    import eeg2fmri.preprocessing.representations as rep

    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 4100))
    onsets = np.arange(1.5, 39.0, 1.5)
    whole = stft_frames(x, SF, onsets, 1.5, 1.0, 30.0)
    monkeypatch.setattr(rep, "_BLOCK_ELEMENTS", 5 * 150 * 4)  # 4 frames per block
    blocked = stft_frames(x, SF, onsets, 1.5, 1.0, 30.0)
    np.testing.assert_array_equal(whole.frames, blocked.frames)
    # frame 1 (the first in-scan frame) equals the hand-made FFT of samples [150, 300)
    ref = np.abs(np.fft.rfft(x[:, 150:300], axis=1)) * 2 / 150
    np.testing.assert_allclose(whole.frames[1], ref[:, (whole.freqs * 1.5).round().astype(int)], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(data=np.zeros(50)), r"expected EEG data of shape \(n_chans, n_times\), got shape \(50,\)"),
        (dict(data=np.full((2, 600), np.nan)), r"expected finite values in EEG data, found 1200 NaN/Inf"),
        (dict(onsets=np.array([2.0, 1.0])), r"strictly increasing volume onsets, found onset 1 \(1 s\) <= onset 0"),
        (dict(onsets=np.array([-1.0, 1.0])), r"volume onsets >= 0 s .* got first onset -1 s"),
        (dict(onsets=np.zeros((0,))), r"n_volumes >= 1, got shape \(0,\)"),
        (dict(frame_len=0.01), r"expected frames of >= 2 samples, got frame_len=0.01 s at 100.0 Hz = 1 sample"),
        (dict(frame_len=-1.0), r"expected frame_len > 0, got -1.0; pass the frame length in seconds"),
        (dict(fmax=60.0), r"expected 0 <= fmin < fmax <= 50 Hz .* got fmin=1.0, fmax=60.0"),
        (dict(fmin=1.1, fmax=1.4), r"no frequency bin between fmin=1.1 and fmax=1.4 Hz at the frame resolution of 0.5 Hz"),
        (dict(frames_per_tr=2), r"frames would overlap: frames_per_tr \* frame_len = 2 x 2 s = 4 s exceeds .* \(2 s, volumes 0 and 1, median 2 s\) by more than the 5% of a frame allowed for marker jitter"),
        (dict(onsets=np.array([1.0, 2.8])), r"frames would overlap: .* \(1.8 s, volumes 0 and 1, median 1.8 s\)"),
        (dict(frames_per_tr=0), r"expected frames_per_tr to be an integer >= 1, got 0"),
        (dict(onsets=np.array([1.0, 3.0, 5.0])), r"the EEG \(6.00 s, 600 samples\) ends before the last frame \(7.00 s\).*got \(2, 600\)"),
    ],
)
def test_stft_errors(kwargs, match):
    args = dict(data=np.zeros((2, 600)), sfreq=SF, onsets=np.array([1.0, 3.0]), frame_len=2.0, fmin=1.0, fmax=20.0)
    args.update(kwargs)
    with pytest.raises(Eeg2fmriInputError, match=match):
        stft_frames(**args)


def test_stft_tolerates_marker_jitter():
    """Onsets jittered by a few samples (real scanner markers) still give one frame per volume, as scipy computes it."""
    from scipy.signal import get_window

    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 2500)).astype(np.float32)
    onsets = 1.0 + 2.0 * np.arange(10) + np.array([0, 0.004, -0.003, 0.002, 0, -0.004, 0.001, 0, 0.003, 0])
    assert np.diff(onsets).min() < 2.0  # frames of 2 s overlap the next volume's by up to 7 ms
    out = stft_frames(x, SF, onsets, 2.0, 1.0, 20.0, window="hann")
    assert out.frames.shape[0] == out.n_pre + 10
    # frame of volume 5 == scipy's rfft of the hann-windowed samples from its onset's sample
    a = int(np.rint(onsets[5] * SF))
    w = get_window("hann", 200, fftbins=True)
    ref = np.abs(np.fft.rfft(x[:, a : a + 200] * w, axis=-1)) * 2 / w.sum()
    sel = (np.fft.rfftfreq(200, 1 / SF) >= 1.0 - 1e-9) & (np.fft.rfftfreq(200, 1 / SF) <= 20.0 + 1e-9)
    np.testing.assert_allclose(out.frames[out.n_pre + 5], ref[:, sel], rtol=1e-4, atol=1e-6)


def test_raw_continuous_time_first_and_resampled():
    x = _sines(900, [(1.0, 2.0, 0.0), (2.0, 3.0, 0.5), (0.5, 1.0, 0.0), (1.0, 4.0, -1.0)])  # 4 ch, 9 s
    out = raw_continuous(x, SF)
    assert out.shape == (900, 4) and out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_allclose(out, x.T, rtol=1e-6, atol=1e-6)
    down = raw_continuous(x, SF, resample=50.0)
    assert down.shape == (450, 4)
    # band-limited sines survive decimation: compare away from the edges
    t = np.arange(450) / 50.0
    np.testing.assert_allclose(down[50:400, 1], 2.0 * np.sin(2 * np.pi * 3.0 * t[50:400]) + 0.5, atol=1e-3)
    info = mne.create_info([f"E{i}" for i in range(4)], SF, "eeg")
    raw = mne.io.RawArray(x, info, verbose=False)
    np.testing.assert_allclose(raw_continuous(raw, resample=50.0), down, atol=1e-6)
    poly = raw_continuous(raw, resample=50.0, method="polyphase")
    np.testing.assert_allclose(poly[50:400], down[50:400], atol=5e-3)


def test_raw_continuous_errors():
    info = mne.create_info(["a", "b"], SF, "eeg")
    raw = mne.io.RawArray(np.zeros((2, 300)), info, verbose=False)
    with pytest.raises(Eeg2fmriInputError, match=r"sfreq=250 Hz disagrees with the recording's 100.0 Hz; leave sfreq=None"):
        raw_continuous(raw, 250)
    with pytest.raises(Eeg2fmriInputError, match=r"expected sfreq \(Hz\) with an array input, got None"):
        raw_continuous(np.zeros((2, 300)))
    with pytest.raises(Eeg2fmriInputError, match=r"EEG: unknown resampling method 'sinc'; choose one of: 'fft', 'polyphase'"):
        raw_continuous(np.zeros((2, 300)), SF, resample=50, method="sinc")
    with pytest.raises(Eeg2fmriInputError, match=r"expected resample > 0, got -5; pass the new sampling rate"):
        raw_continuous(np.zeros((2, 300)), SF, resample=-5)


def test_robust_scaler_matches_hand_values_and_reapplies():
    # column 0: 1..9 (median 5, IQR 4); column 1: constant (scale 1); column 2: 10x column 0
    x = np.stack([np.arange(1.0, 10.0), np.full(9, 7.0), np.arange(10.0, 100.0, 10.0)], axis=1)
    z, sc = robust_standardize(x)
    np.testing.assert_allclose(sc.center_, [5.0, 7.0, 50.0])
    np.testing.assert_allclose(sc.scale_, [4.0 / NORMAL_IQR, 1.0, 40.0 / NORMAL_IQR], rtol=1e-6)
    np.testing.assert_allclose(z[:, 0], (np.arange(1.0, 10.0) - 5.0) * NORMAL_IQR / 4.0, rtol=1e-6)
    np.testing.assert_allclose(z[:, 0], z[:, 2], rtol=1e-6)
    assert z.dtype == np.float32 and sc.n_samples_seen_ == 9
    other = np.array([[5.0, 8.0, 90.0], [1.0, 7.0, 10.0]])  # another run, different length
    np.testing.assert_allclose(sc.inverse_transform(sc.transform(other)), other, rtol=1e-6)
    raw_iqr = RobustScaler(unit_variance=False).fit(x)
    np.testing.assert_allclose(raw_iqr.scale_, [4.0, 1.0, 40.0])


def test_robust_scaler_other_axis_and_3d():
    rng = np.random.default_rng(0)
    frames = rng.normal(size=(40, 3, 5)) * np.arange(1, 6) + np.arange(3)[:, None]
    z, sc = robust_standardize(frames, axis=0)
    assert sc.center_.shape == (3, 5) and z.shape == (40, 3, 5)
    np.testing.assert_allclose(np.median(z, axis=0), 0.0, atol=1e-5)
    zt, sct = robust_standardize(np.moveaxis(frames, 0, -1), axis=-1)
    np.testing.assert_allclose(np.moveaxis(zt, -1, 0), z, rtol=1e-5, atol=1e-6)


def test_robust_scaler_errors():
    with pytest.raises(Eeg2fmriInputError, match=r"not fitted yet; call fit\(x\) first"):
        RobustScaler().transform(np.zeros((3, 2)))
    sc = RobustScaler().fit(np.arange(12.0).reshape(4, 3))
    with pytest.raises(Eeg2fmriInputError, match=r"expected x with shape \(\.\.\., \(3,\)\) around axis 0, got \(4, 2\)"):
        sc.transform(np.zeros((4, 2)))
    with pytest.raises(Eeg2fmriInputError, match=r"expected axis in \[-2, 2\) for x of shape \(4, 3\), got axis=2"):
        RobustScaler(axis=2).fit(np.zeros((4, 3)))
    with pytest.raises(Eeg2fmriInputError, match=r"expected >= 2 samples along axis 0, got shape \(1, 3\)"):
        RobustScaler().fit(np.zeros((1, 3)))
    with pytest.raises(Eeg2fmriInputError, match=r"expected finite values in x, found 1 NaN/Inf"):
        RobustScaler().fit(np.array([[1.0, np.inf], [2.0, 3.0]]))


# --------------------------------------------------------------------------- the registry


def test_registry_lists_and_describes_every_representation():
    from eeg2fmri.datasets.prepared import REPRESENTATIONS, PrepareConfig
    from eeg2fmri.datasets.spec import INPUT_KINDS
    from eeg2fmri.preprocessing.representations import (
        Representation,
        get_representation,
        list_representations,
    )

    assert list_representations() == ("bandpower", "stft", "raw", "tangent") == REPRESENTATIONS
    assert set(INPUT_KINDS) == set(list_representations())
    for name in list_representations():
        rep = get_representation(name)
        assert isinstance(rep, Representation) and rep.name == rep.input_kind == name
    cfg = PrepareConfig(frames_per_tr=2, raw_sfreq=50.0, stft_fmax=30.0, bands={"alpha": (8.0, 12.0), "beta": (13.0, 30.0)})
    bp, st, raw = (get_representation(n) for n in ("bandpower", "stft", "raw"))
    assert bp.frame_based and st.frame_based and not raw.frame_based
    assert st.rate_dependent_freqs and not bp.rate_dependent_freqs
    assert bp.frame_rate(cfg, 2.0) == st.frame_rate(cfg, 2.0) == 1.0 and raw.frame_rate(cfg, 2.0) == 50.0
    assert bp.rows_per_tr(cfg, 2.0) == 2.0 and raw.rows_per_tr(cfg, 2.0) == 100.0
    assert bp.default_window(cfg, 2.0, 16.0) == 18 and raw.default_window(cfg, 2.0, 16.0) == 900
    assert bp.input_shape(4, 2, 18) == (4, 2, 18) and raw.input_shape(4, None, 900) == (4, 900)
    assert (bp.needed_fmax(cfg), st.needed_fmax(cfg), raw.needed_fmax(cfg)) == (30.0, 30.0, 20.0)
    assert cfg.needed_fmax() == 30.0
    with pytest.raises(Eeg2fmriInputError, match=r"expected one of \['bandpower', 'stft', 'raw', 'tangent'\], got 'wavelet'"):
        get_representation("wavelet")


def test_registry_compute_is_what_prepare_stores():
    """eeg_representation is the registered representation's compute on the work-rate EEG."""
    from eeg2fmri.datasets.prepared import PrepareConfig, eeg_representation, load_eeg_lowrate
    from eeg2fmri.preprocessing.representations import get_representation

    rng = np.random.default_rng(0)
    info = mne.create_info([f"E{i}" for i in range(3)], 200.0, "eeg")
    raw = mne.io.RawArray(rng.standard_normal((3, 200 * 60)) * 1e-5, info, verbose=False)
    onsets = np.arange(1.0, 55.0, 2.0)
    for cfg in (PrepareConfig(), PrepareConfig(representation="stft", stft_fmax=40.0), PrepareConfig(representation="raw", raw_sfreq=50.0)):
        got = eeg_representation(raw, cfg, tr=2.0, onsets=onsets)
        c = cfg.resolved(200.0)
        data, wsf, _ = load_eeg_lowrate(raw, c)
        want = get_representation(cfg.representation).compute(data, wsf, onsets, 2.0, c)
        np.testing.assert_array_equal(got["features"], want["features"])
        np.testing.assert_array_equal(got["window_end"], want["window_end"])
        assert got["frame_rate"] == want["frame_rate"] and got["freqs"] == want["freqs"]
