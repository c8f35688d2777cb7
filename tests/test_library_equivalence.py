"""Golden tests: what eeg2fmri computes itself == what the field's reference libraries compute.

Each test builds the reference with the library's own functions on the same tiny synthetic
input (a different size on every axis, explicit ``numpy.random.Generator`` seeds) and names
the library in its docstring:

* band power (``band_envelopes`` -> ``bin_frames`` -> ``standardize_features``, as
  ``datasets/prepared.py`` chains them) -- MNE FIR band-pass (``mne.filter.filter_data``) +
  MNE Hilbert envelope (``Raw.apply_hilbert``), scikit-learn ``RobustScaler``;
* STFT frames (``stft_frames``) -- ``scipy.signal.ShortTimeFFT`` / ``scipy.fft.rfft``;
* HRFs (``simulate.hrf.double_gamma_hrf``, ``models.flagship.canonical_hrf`` and its frame
  kernel, the ``ridge_hrf`` canonical weights) -- ``nilearn.glm.first_level.spm_hrf``;
* grid resampling (``resample_bold``, ``sample_nearest``) -- ``nilearn.image.resample_to_img``
  / ``resample_img``;
* SSIM / PSNR (``ssim3d``, ``ssim3d_series``, ``psnr``) -- ``skimage.metrics``.

Every test also checks that a deliberate perturbation (a band edge moved, frames shifted by
one, a different kernel or window) breaks the agreement, so the tolerances cannot hide an error.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

# --------------------------------------------------------------------------------------
# band power vs MNE

BP_SFREQ = 128.0
BP_DUR = 40.0  # s; every frequency below is a multiple of 1 / BP_DUR = 0.025 Hz: the signal is periodic
BP_N = int(BP_SFREQ * BP_DUR)  # 5120 = 2**10 * 5 samples (a fast FFT length: MNE's Hilbert pads nothing)
BP_CHANS = 4
BP_BANDS = {"theta": (4.0, 8.0), "alpha": (8.0, 13.0), "beta": (13.0, 25.0)}  # 3 bands, 4 channels
BP_TRANSITION = 2.0  # band_envelopes' default raised-cosine edge width (Hz)
# Tones inside the flat passbands (lo + 1 .. hi - 1 Hz) or far outside every band, with amplitude
# modulations <= 0.5 Hz: no energy in any band's transition region (lo -+ 1 Hz, hi -+ 1 Hz), where
# the raised-cosine edges of band_envelopes and MNE's Hamming-window FIR edges have different shapes.
BP_TONES = (1.5, 6.0, 9.5, 11.0, 17.0, 22.5, 35.0)


def _tone_eeg(seed: int) -> np.ndarray:
    """(BP_CHANS, BP_N) amplitude-modulated tones in volts, periodic over the record, float32-exact."""
    rng = np.random.default_rng(seed)
    t = np.arange(BP_N) / BP_SFREQ
    am_f = np.arange(1, 21) / BP_DUR  # 0.025 .. 0.5 Hz
    x = np.zeros((BP_CHANS, BP_N))
    for c in range(BP_CHANS):
        for f in BP_TONES:
            w = rng.uniform(0.0, 1.0, (len(am_f), 1)) / np.sqrt(len(am_f))
            ph = rng.uniform(0.0, 2 * np.pi, (len(am_f), 1))
            am = 1.0 + 0.6 * np.sum(w * np.cos(2 * np.pi * am_f[:, None] * t + ph), axis=0)
            x[c] += rng.uniform(0.8, 1.25) * am * np.cos(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    # the prepared path stores the EEG as float32: give both sides the same float32 values
    return (1e-5 * x).astype(np.float32).astype(np.float64)


def _mne_band_power(x: np.ndarray, bands: dict) -> np.ndarray:
    """Reference: MNE zero-phase FIR band-pass, MNE Hilbert envelope, squared -> (n_bands, n_chans, n).

    band_envelopes' band (lo, hi) has gain 0.5 (-6 dB) at lo and hi, raised-cosine edges
    ``transition`` wide (zero at lo - t/2, one at lo + t/2). MNE's firwin design puts -6 dB at
    ``l_freq - l_trans_bandwidth / 2`` and the pass-band edge at ``l_freq``; so
    ``l_freq = lo + t/2``, ``h_freq = hi - t/2`` with both transition bandwidths ``t`` give the
    same pass band, -6 dB points and stop band. The signal is periodic over the record and
    band_envelopes filters circularly (one FFT), so the reference filters three copies end to
    end and keeps the middle one (no edge padding effect from MNE either).
    """
    import mne

    n = x.shape[1]
    info = mne.create_info(x.shape[0], BP_SFREQ, "eeg")
    out = []
    for lo, hi in bands.values():
        t = min(BP_TRANSITION, (hi - lo) / 2)
        y = mne.filter.filter_data(np.tile(x, 3), BP_SFREQ, lo + t / 2, hi - t / 2, l_trans_bandwidth=t, h_trans_bandwidth=t,
                                   method="fir", phase="zero", fir_window="hamming", fir_design="firwin", verbose=False)
        raw = mne.io.RawArray(y, info, verbose=False)  # RawArray keeps y (not a copy): y is ours
        raw.apply_hilbert(envelope=True, verbose=False)  # |analytic signal|
        out.append(raw.get_data()[:, n : 2 * n] ** 2)  # band_envelopes returns the power |analytic|**2
    return np.stack(out)


@pytest.fixture(scope="module")
def tone_eeg():
    x = _tone_eeg(seed=11)
    return x, _mne_band_power(x, BP_BANDS)


# Hamming-window FIR (MNE's default): pass-band ripple and stop-band leakage delta ~2.2e-3 of the
# amplitude (-53 dB). The in-band power then carries cross terms ~2 delta x (out-of-band / in-band
# amplitude, <= 1.6 here) per neighbouring tone: up to ~1e-2 of its peak (measured 1.9e-3 .. 4.4e-3);
# the alpha band's low edge moved by 1 Hz changes it by > 0.1.
ENVELOPE_RTOL = 1e-2


def _envelope_error(p: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Max |p - ref| per band and channel, relative to the reference's peak there."""
    return np.abs(p - ref).max(-1) / ref.max(-1)


def test_band_envelopes_equal_mne_filter_hilbert(tone_eeg):
    """band_envelopes (full rate and demodulated) == MNE filter_data band-pass + Raw.apply_hilbert envelope, squared."""
    from eeg2fmri.preprocessing.eeg import band_envelopes

    x, ref = tone_eeg
    full = band_envelopes(x, BP_SFREQ, BP_BANDS)
    assert full.shape == (len(BP_BANDS), BP_CHANS, BP_N) and full.dtype == np.float32
    assert _envelope_error(full, ref).max() < ENVELOPE_RTOL

    # demodulated to baseband at out_rate = sfreq / 4: exact samples of the same envelope at every 4th sample
    low, rate = band_envelopes(x, BP_SFREQ, BP_BANDS, out_rate=BP_SFREQ / 4)
    assert rate == BP_SFREQ / 4 and low.shape == (len(BP_BANDS), BP_CHANS, BP_N // 4)
    assert _envelope_error(low, ref[..., ::4]).max() < ENVELOPE_RTOL
    np.testing.assert_allclose(low, full[..., ::4], rtol=1e-4, atol=1e-6 * float(full.max()))  # float32 storage

    # the comparison can fail: a band edge moved by 1 Hz, or the envelope one sample late
    moved = band_envelopes(x, BP_SFREQ, {"theta": (4.0, 8.0), "alpha": (9.0, 13.0), "beta": (13.0, 25.0)})
    err = _envelope_error(moved, ref)
    assert err[[0, 2]].max() < ENVELOPE_RTOL and err[1].min() > 5 * ENVELOPE_RTOL  # the 9.5 Hz tone now lies on the edge
    assert _envelope_error(np.roll(full, 1, axis=-1), ref).max() > 5 * ENVELOPE_RTOL


def _robust_z(log_frames: np.ndarray) -> np.ndarray:
    """scikit-learn RobustScaler (median / IQR) per channel and band, (n_frames, n_chans, n_bands).

    RobustScaler(unit_variance=True) divides the IQR by that of the standard normal,
    2 * Phi^-1(0.75) = 1.3489795...; standardize_features documents (and uses) 1.349:
    a constant factor 1.3489795 / 1.349 (1.5e-5 away from 1) that is applied here.
    """
    from scipy.stats import norm
    from sklearn.preprocessing import RobustScaler

    nf = log_frames.shape[0]
    z = RobustScaler(unit_variance=True).fit_transform(log_frames.reshape(nf, -1))
    return (z * (2 * norm.ppf(0.75) / 1.349)).reshape(log_frames.shape)


def _min_corr(a: np.ndarray, b: np.ndarray) -> float:
    """Smallest Pearson r across frames over all (channel, band) pairs."""
    return min(float(np.corrcoef(a[:, c, k], b[:, c, k])[0, 1]) for c in range(a.shape[1]) for k in range(a.shape[2]))


def test_prepared_bandpower_frames_equal_mne(tone_eeg):
    """The prepared 'bandpower' features (eeg_representation) == MNE band-pass + Hilbert power, frame means, log, scikit-learn RobustScaler.

    What datasets/prepared.py computes, read from the code: band_envelopes demodulated to
    ``prate`` (``out_rate = max(8 frames_per_tr / TR, 10)`` Hz, raised if a band is wider), the
    mean of those samples ``round(start * prate) <= j < round((start + len) * prate)`` per frame
    (frames of TR / frames_per_tr from the first onset, and backwards before it), natural log,
    robust z per channel and band. With TR = 1 s and 4 frames per TR, ``prate = 32 Hz =
    sfreq / 4`` exactly, so the frame edges fall on both grids and the package's samples are
    every 4th sample of MNE's envelope: the reference averages exactly those.

    That frame mean is an 8-point (left-endpoint) quadrature of the power over the frame: the
    exact mean over [start, start + 0.25 s) (all 32 MNE samples) agrees only to r > 0.98
    (measured 0.984; as a left-endpoint rule the package's frames behave as if they started
    half an envelope sample, 16 ms, early). That approximation is the package's documented design
    (synthesis/stream.py reproduces it for parity), checked here as such.
    """
    import mne

    from eeg2fmri.datasets.prepared import PrepareConfig, eeg_representation
    from eeg2fmri.preprocessing.eeg import band_envelopes

    x, ref = tone_eeg
    tr, m = 1.0, 4
    flen = tr / m
    onsets = np.arange(3.0, BP_DUR - tr + 1e-9, tr)  # 37 volumes; 12 frames before the first onset
    cfg = PrepareConfig(bands=dict(BP_BANDS), frames_per_tr=m, l_freq=None, h_freq=None, notch=None, reference=None,
                        work_sfreq=BP_SFREQ, representation="bandpower")
    raw = mne.io.RawArray(x.copy(), mne.create_info(BP_CHANS, BP_SFREQ, "eeg"), verbose=False)
    rep = eeg_representation(raw, cfg, tr=tr, onsets=onsets)
    feats = rep["features"]
    n_frames = int(round(BP_DUR / flen))  # frames tile the record from 0 s: 3 s / 0.25 s = 12 before the first onset
    assert feats.shape == (n_frames, BP_CHANS, len(BP_BANDS)) and rep["frame_rate"] == m / tr
    np.testing.assert_array_equal(rep["window_end"], 12 + (np.arange(len(onsets)) + 1) * m)
    # precondition of the exact comparison: the rate prepared.py asks for is sfreq / 4 for this record
    assert band_envelopes(x[:1], BP_SFREQ, BP_BANDS, out_rate=max(8.0 * m / tr, 10.0))[1] == BP_SFREQ / 4

    def ref_z(power: np.ndarray, step: int, shift: int = 0) -> np.ndarray:
        p = np.roll(power, -shift * int(flen * BP_SFREQ), axis=-1)[..., ::step]  # (bands, chans, samples)
        means = p.reshape(p.shape[0], p.shape[1], n_frames, -1).mean(-1)  # frame k: samples of [k flen, (k + 1) flen)
        return _robust_z(np.log(means).transpose(2, 1, 0))

    z = ref_z(ref, 4)
    # tolerance: the envelopes agree to <= 4.4e-3 of their peak (FIR ripple, previous test) and the
    # 8-sample frame means average that ripple; log frame power spans a factor <= 27 here and the
    # robust scales are >= 0.33: |dz| < 0.05 (measured 0.013); frames one late give |dz| > 3
    assert np.abs(feats - z).max() < 0.05
    assert _min_corr(feats, z) > 0.999
    # the exact frame mean (every MNE sample in the frame): the 8-point quadrature's documented error
    assert _min_corr(feats, ref_z(ref, 1)) > 0.98
    # the comparison can fail: frames shifted by one, or the alpha band's low edge moved by 1 Hz
    shifted = ref_z(ref, 4, shift=1)
    assert np.abs(feats - shifted).max() > 1.0 and _min_corr(feats, shifted) < 0.5
    moved = ref_z(_mne_band_power(x, {"theta": (4.0, 8.0), "alpha": (9.0, 13.0), "beta": (13.0, 25.0)}), 4)
    assert np.abs(feats - moved)[..., 1].max() > 0.2


# --------------------------------------------------------------------------------------
# STFT frames vs scipy

ST_SFREQ = 160.0
ST_TR, ST_M = 1.5, 2  # frames of 0.75 s = 120 samples, 2 per volume
ST_N = int(round(ST_TR / ST_M * ST_SFREQ))
ST_FMIN, ST_FMAX = 1.0, 40.0


def _stft_eeg(seed: int, n_chans: int = 3, dur: float = 20.0) -> np.ndarray:
    """(n_chans, n_times) random-walk + white noise + an 11 Hz tone (no bin far below float32 noise)."""
    rng = np.random.default_rng(seed)
    n = int(dur * ST_SFREQ)
    t = np.arange(n) / ST_SFREQ
    x = 0.05 * np.cumsum(rng.standard_normal((n_chans, n)), axis=1) + rng.standard_normal((n_chans, n))
    return (x + 2.0 * np.sin(2 * np.pi * 11.0 * t)) * 1e-5


def _shorttime_fft(x: np.ndarray, window: str, first_start: int, n_frames: int):
    """Reference: scipy.signal.ShortTimeFFT, non-overlapping frames starting at sample first_start.

    ``fft_mode="onesided2X"`` with ``scale_to="magnitude"`` is scipy's single-sided amplitude
    spectrum (``2 |X_k| / sum(window)``, DC and Nyquist not doubled): the amplitude convention
    stft_frames documents. ShortTimeFFT centres slice ``p`` on sample ``p * hop + k_offset``,
    i.e. it starts at ``p * hop + k_offset - n // 2``.
    """
    from scipy.signal import ShortTimeFFT

    sft = ShortTimeFFT.from_window(window, ST_SFREQ, ST_N, 0, symmetric_win=False, fft_mode="onesided2X", scale_to="magnitude")
    k_off = first_start + ST_N // 2
    spec = sft.stft(x, p0=0, p1=n_frames, k_offset=k_off)  # (n_chans, n_freqs, n_frames)
    starts = sft.t(x.shape[-1], p0=0, p1=n_frames, k_offset=k_off) - (ST_N // 2) / ST_SFREQ
    return np.abs(spec).transpose(2, 0, 1), sft.f, starts


@pytest.mark.parametrize("window", ["boxcar", "hann"])
def test_stft_frames_equal_scipy_shorttimefft(window):
    """stft_frames on volume-anchored frames == scipy.signal.ShortTimeFFT (onesided2X, magnitude) on the same frame edges."""
    from eeg2fmri.preprocessing.representations import stft_frames

    x = _stft_eeg(seed=21)
    onsets = 2.1 + ST_TR * np.arange(11)  # frames every 0.75 s from 2.1 - 2 * 0.75 = 0.6 s (sample 96)
    frames, freqs, n_pre = stft_frames(x, ST_SFREQ, onsets, ST_TR / ST_M, ST_FMIN, ST_FMAX, frames_per_tr=ST_M, window=window)
    assert n_pre == 2 and frames.shape[:2] == (n_pre + len(onsets) * ST_M, 3) and frames.dtype == np.float32
    ref, f, starts = _shorttime_fft(x, window, first_start=96, n_frames=len(frames))
    np.testing.assert_allclose(starts, onsets[0] - n_pre * ST_TR / ST_M + np.arange(len(frames)) * ST_TR / ST_M, atol=1e-9)
    sel = (f >= ST_FMIN - 1e-9) & (f <= ST_FMAX + 1e-9)
    np.testing.assert_allclose(freqs, f[sel], rtol=1e-12)
    ref = ref[..., sel]
    assert frames.shape == ref.shape == (24, 3, 30)
    # float32 FFT of 120 samples: relative error ~1e-6 of the frame's spectrum
    atol = 1e-5 * float(ref.max())
    np.testing.assert_allclose(frames, ref, rtol=1e-4, atol=atol)
    # every bin, DC and Nyquist (120 samples: bin 60) included: neither is doubled, in both
    every = stft_frames(x, ST_SFREQ, onsets, ST_TR / ST_M, 0.0, ST_SFREQ / 2, frames_per_tr=ST_M, window=window)
    assert every.frames.shape[-1] == ST_N // 2 + 1 and every.freqs[0] == 0.0 and every.freqs[-1] == ST_SFREQ / 2
    np.testing.assert_allclose(every.frames, _shorttime_fft(x, window, first_start=96, n_frames=len(frames))[0], rtol=1e-4, atol=atol)
    log_frames = stft_frames(x, ST_SFREQ, onsets, ST_TR / ST_M, ST_FMIN, ST_FMAX, frames_per_tr=ST_M, window=window, log=True).frames
    big = ref > 1e-3 * ref.max()  # log of float32 amplitudes: 1e-4 where the amplitude is not tiny
    assert big.mean() > 0.95
    np.testing.assert_allclose(log_frames[big], np.log(ref[big] ** 2), atol=1e-4)
    # the comparison can fail: frames one sample late, or another window
    late, _, _ = _shorttime_fft(x, window, first_start=97, n_frames=len(frames))
    assert np.abs(frames - late[..., sel]).max() > 100 * atol
    other, _, _ = _shorttime_fft(x, "hamming", first_start=96, n_frames=len(frames))
    assert np.abs(frames - other[..., sel]).max() > 100 * atol


def test_stft_frames_jittered_onsets_equal_scipy_rfft():
    """stft_frames with jittered onsets (each volume re-anchors its frames) == scipy.fft.rfft of the same frames, single-sided amplitude."""
    from scipy.fft import rfft, rfftfreq

    from eeg2fmri.preprocessing.representations import stft_frames

    rng = np.random.default_rng(22)
    x = _stft_eeg(seed=23, n_chans=2, dur=15.0)
    # TR of 240 samples +- 2 samples of marker jitter (frames of neighbouring volumes may overlap by up to
    # 4 samples, within the 5% of a frame stft_frames allows for jitter)
    on_samples = 200 + 240 * np.arange(9) + rng.integers(-2, 3, 9)
    onsets = on_samples / ST_SFREQ
    frames, freqs, n_pre = stft_frames(x, ST_SFREQ, onsets, ST_TR / ST_M, ST_FMIN, ST_FMAX, frames_per_tr=ST_M)
    # reference frame edges: before the first onset every 120 samples back while >= 0, then ST_M per onset
    first = on_samples[0]
    starts = [first - k * ST_N for k in range(first // ST_N, 0, -1)] + [o + k * ST_N for o in on_samples for k in range(ST_M)]
    assert n_pre == first // ST_N == 1
    seg = np.stack([x[:, s : s + ST_N] for s in starts]).astype(np.float32).astype(np.float64)  # (n_frames, n_chans, ST_N)
    amp = np.abs(rfft(seg, axis=-1))
    f = rfftfreq(ST_N, 1.0 / ST_SFREQ)
    amp *= 2.0 / ST_N  # single-sided amplitude of a boxcar frame (DC and Nyquist not doubled: outside 1-40 Hz here)
    sel = (f >= ST_FMIN) & (f <= ST_FMAX)
    np.testing.assert_allclose(freqs, f[sel])
    np.testing.assert_allclose(frames, amp[..., sel], rtol=1e-4, atol=1e-5 * float(amp.max()))
    # a sinusoid of amplitude A on a bin has amplitude A there (the 11 Hz tone is not on a bin: use 12 Hz, bin 9)
    tone = 3.0 * np.cos(2 * np.pi * 12.0 * np.arange(x.shape[1]) / ST_SFREQ)[None]
    tf, tfreq, _ = stft_frames(tone, ST_SFREQ, onsets, ST_TR / ST_M, ST_FMIN, ST_FMAX, frames_per_tr=ST_M)
    np.testing.assert_allclose(tf[:, 0, np.flatnonzero(np.isclose(tfreq, 12.0))[0]], 3.0, rtol=1e-5)


def test_prepared_stft_features_equal_scipy():
    """The prepared 'stft' features (eeg_representation: amplitude / its median) == scipy.signal.ShortTimeFFT amplitude / its median."""
    import mne

    from eeg2fmri.datasets.prepared import PrepareConfig, eeg_representation

    x = _stft_eeg(seed=24, n_chans=3, dur=18.0).astype(np.float32).astype(np.float64)
    onsets = 2.1 + ST_TR * np.arange(10)
    cfg = PrepareConfig(representation="stft", frames_per_tr=ST_M, l_freq=None, h_freq=None, notch=None, reference=None,
                        work_sfreq=ST_SFREQ, stft_fmin=ST_FMIN, stft_fmax=ST_FMAX, stft_log=False)
    raw = mne.io.RawArray(x.copy(), mne.create_info(3, ST_SFREQ, "eeg"), verbose=False)
    rep = eeg_representation(raw, cfg, tr=ST_TR, onsets=onsets)
    ref, f, _ = _shorttime_fft(x, "boxcar", first_start=96, n_frames=2 + len(onsets) * ST_M)
    ref = ref[..., (f >= ST_FMIN - 1e-9) & (f <= ST_FMAX + 1e-9)]
    np.testing.assert_allclose(rep["freqs"], f[(f >= ST_FMIN - 1e-9) & (f <= ST_FMAX + 1e-9)])
    np.testing.assert_allclose(rep["features"], ref / np.median(ref), rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------------------
# HRFs vs nilearn


def _nilearn_spm_hrf_at(t0: float, dt: float, n: int) -> np.ndarray:
    """nilearn's spm_hrf at exactly t0, t0 + dt, ..., t0 + (n - 1) dt, normalised to unit sum.

    nilearn samples its HRF (``_gamma_difference_hrf``) at ``linspace(0, time_length, N) - onset``
    with ``N = rint(time_length / dt')``, ``dt' = t_r / oversampling``, and evaluates the gammas
    with ``loc=dt'``: its grid step is ``time_length / (N - 1)``, not ``dt'``, and the curve is
    one ``dt'`` late. So ``spm_hrf(t_r, oversampling)`` is *not* the SPM HRF at multiples of
    ``t_r / oversampling`` (off by up to 3% of the peak at dt = 0.1 s). The public parameters
    still give exact samples: ``time_length = (n - 1) dt`` and ``t_r = time_length / n``
    (``oversampling=1``) make ``N = n`` and the step ``dt``; ``onset = -t0 - t_r`` cancels the
    ``loc``. nilearn divides by the sum over its grid, i.e. the same n points.
    """
    from nilearn.glm.first_level import spm_hrf

    length = (n - 1) * dt
    t_r = length / n
    h = spm_hrf(t_r, oversampling=1, time_length=length, onset=-t0 - t_r)
    assert h.shape == (n,)
    return h


# nilearn's ratio of undershoot to peak is 0.167, SPM's (spm_hrf.m, p(5) = 6) and the package's 1/6:
# the normalised kernels then differ by 4e-4 of the peak (measured 3.9e-4 .. 4.0e-4); a shift by one
# sample of 0.1 s differs by 3.5e-2.
RATIO_TOL = 1e-3


@pytest.mark.parametrize(("dt", "length"), [(0.1, 32.0), (0.7, 25.2), (2.0, 30.0)])
def test_double_gamma_hrf_equals_nilearn_spm_hrf(dt, length):
    """simulate.hrf.double_gamma_hrf == nilearn.glm.first_level.spm_hrf on the same time grid, both with unit sum."""
    from eeg2fmri.preprocessing.hrf import double_gamma_hrf

    h = double_gamma_hrf(dt, length=length, undershoot_ratio=0.167)  # nilearn's ratio
    ref = _nilearn_spm_hrf_at(0.0, dt, len(h))
    np.testing.assert_allclose(h, ref, rtol=0, atol=1e-12 * ref.max())  # float64: the same formula
    default = double_gamma_hrf(dt, length=length)  # SPM's 1/6
    assert np.abs(default - ref).max() < RATIO_TOL * ref.max()
    # the comparison can fail: the peak 10% of a sample later, or the undershoot 1 s later
    late = double_gamma_hrf(dt, length=length, undershoot_ratio=0.167, peak_delay=6.0 + 0.1 * dt)
    assert np.abs(late - ref).max() > 1e-4 * ref.max()
    assert np.abs(double_gamma_hrf(dt, length=length, undershoot_delay=17.0) - ref).max() > 10 * RATIO_TOL * ref.max()


def test_flagship_and_ridge_canonical_hrfs_equal_nilearn_spm_hrf():
    """models.flagship.canonical_hrf, the flagship's frame kernel and ridge_hrf's 'canonical' weights == nilearn.glm.first_level.spm_hrf."""
    import torch

    from eeg2fmri.models.base import DataSpec
    from eeg2fmri.models.flagship import _SUBSTEPS, EEG2fMRINet, canonical_hrf
    from eeg2fmri.models.ridge_hrf import RidgeHRF
    from eeg2fmri.preprocessing.hrf import double_gamma_hrf

    # 1. the function, float64, on a 0.05 s grid from 0 to 30 s
    dt, n = 0.05, 601
    c = canonical_hrf(torch.arange(n, dtype=torch.float64) * dt).numpy()
    c = c / c.sum()
    ref = _nilearn_spm_hrf_at(0.0, dt, n)
    assert np.abs(c - ref).max() < RATIO_TOL * ref.max()
    np.testing.assert_allclose(c, double_gamma_hrf(dt, length=n * dt - dt / 2), rtol=0, atol=1e-12 * ref.max())  # both 1/6
    late = canonical_hrf(torch.arange(n, dtype=torch.float64) * dt - dt).numpy()
    assert np.abs(late / late.sum() - ref).max() > 10 * RATIO_TOL * ref.max()

    # 2. the flagship's canonical kernel: the HRF averaged over each frame's lag interval
    # [k len - TR / 2, (k + 1) len - TR / 2) (midpoint rule, _SUBSTEPS points), oldest frame first, unit sum
    n_chans, n_bands, n_frames, tr = 3, 4, 9, 2.0
    spec = DataSpec("bandpower", (n_chans, n_bands, n_frames), (5,), sfreq=250.0, tr=tr, frame_rate=1.0 / tr)
    kernel = EEG2fMRINet(spec, seed=0, hrf="canonical").hrf_kernels().detach().double().numpy()
    assert kernel.shape[1:] == (n_bands, min(8, n_chans), n_frames)
    step = tr / _SUBSTEPS
    pts = _nilearn_spm_hrf_at(-tr / 2 + step / 2, step, n_frames * _SUBSTEPS)  # midpoints, newest lag first
    want = pts.reshape(n_frames, _SUBSTEPS).mean(1)[::-1]
    want = want / want.sum()
    # float32 lag points and HRF in torch (~1e-6) + the 0.167 vs 1/6 ratio
    np.testing.assert_allclose(kernel, np.broadcast_to(want, kernel.shape), rtol=0, atol=RATIO_TOL * want.max())
    assert np.abs(kernel[0, 0, 0] - np.roll(want, 1)).max() > 10 * RATIO_TOL * want.max()

    # 3. ridge_hrf 'canonical': the HRF sampled at lags 0, dt, ..., newest frame last, unit sum
    rspec = DataSpec("bandpower", (2, 3, 7), (4,), sfreq=100.0, tr=2.0, frame_rate=0.5)
    eye = np.zeros((7, 2, 3, 7))
    eye[np.arange(7), :, :, np.arange(7)] = 1.0  # window k: 1 in frame k only -> the feature is weight k
    w = RidgeHRF(rspec, hrf="canonical")._features(eye, "canonical")[:, 0]
    want = _nilearn_spm_hrf_at(0.0, 2.0, 7)[::-1]
    assert np.abs(w - want).max() < RATIO_TOL * want.max()


# --------------------------------------------------------------------------------------
# grid resampling vs nilearn

RS_SHAPE = (9, 11, 13, 5)  # 4D BOLD, a different size on every axis
RS_AFFINE = np.array([[3.0, 0, 0, -12.0], [0, 3.5, 0, -20.0], [0, 0, 4.0, -25.0], [0, 0, 0, 1]])


def _bold(seed: int) -> nib.Nifti1Image:
    rng = np.random.default_rng(seed)
    data = rng.standard_normal(RS_SHAPE).cumsum(0).cumsum(1) + 100.0  # smooth-ish, float64
    img = nib.Nifti1Image(data, RS_AFFINE)
    img.header.set_zooms((3.0, 3.5, 4.0, 2.0))
    img.header.set_xyzt_units("mm", "sec")
    return img


def _oblique_affine(vox=(2.7, 3.1, 3.3), origin=(-10.0, -17.0, -22.0)) -> np.ndarray:
    """A rotated (10, -7, 5 degrees), anisotropic target grid: no voxel centre on a tie."""
    from nibabel.affines import from_matvec
    from scipy.spatial.transform import Rotation

    rot = Rotation.from_euler("xyz", [10.0, -7.0, 5.0], degrees=True).as_matrix()
    return from_matvec(rot @ np.diag(vox), origin)


@pytest.mark.parametrize("interpolation", ["continuous", "linear", "nearest"])
def test_resample_bold_equals_nilearn_resample_to_img(interpolation):
    """preprocessing.volumes.resample_bold onto a given grid == nilearn.image.resample_to_img onto an image on that grid."""
    from nilearn.image import resample_to_img

    from eeg2fmri.preprocessing.volumes import resample_bold

    src = _bold(seed=31)
    t_aff, t_shape = _oblique_affine(), (10, 12, 14)
    out = resample_bold(src, target_shape=t_shape, target_affine=t_aff, interpolation=interpolation)
    ref = resample_to_img(src, nib.Nifti1Image(np.zeros(t_shape, np.int8), t_aff), interpolation=interpolation,
                          force_resample=True, copy_header=True)
    r = np.asarray(ref.dataobj, dtype=np.float64)
    assert out.shape == r.shape == t_shape + (RS_SHAPE[3],)
    np.testing.assert_allclose(out.affine, ref.affine, atol=1e-12)
    assert out.header.get_zooms()[3] == 2.0 and out.get_data_dtype() == np.float32
    # resample_bold casts to float32 first: relative error ~1e-7 of values ~100
    np.testing.assert_allclose(out.get_fdata(), r, rtol=0, atol=1e-5 * np.abs(r).max())
    assert (np.abs(r) > 0).mean() > 0.3  # the grids overlap: the comparison is not of zeros
    other = {"continuous": "linear", "linear": "nearest", "nearest": "continuous"}[interpolation]
    o = np.asarray(resample_to_img(src, nib.Nifti1Image(np.zeros(t_shape, np.int8), t_aff), interpolation=other,
                                   force_resample=True, copy_header=True).dataobj)
    assert np.abs(out.get_fdata() - o).max() > 100 * 1e-5 * np.abs(r).max()  # the interpolation matters


@pytest.mark.parametrize("kw", [{"target_shape": (6, 8, 7)}, {"voxel_size": (4.0, 4.5, 5.0)}])
def test_resample_bold_box_grids_equal_nilearn_resample_img(kw):
    """resample_bold(target_shape=... | voxel_size=...) keeps the world box (nibabel) and == nilearn.image.resample_img on that grid."""
    from nibabel.affines import apply_affine
    from nilearn.image import resample_img

    from eeg2fmri.preprocessing.volumes import resample_bold

    src = _bold(seed=32)
    out = resample_bold(src, **kw)

    def box(affine, shape):
        s = np.asarray(shape[:3], dtype=float)
        corners = np.array([[i, j, k] for i in (-0.5, s[0] - 0.5) for j in (-0.5, s[1] - 0.5) for k in (-0.5, s[2] - 0.5)])
        w = apply_affine(affine, corners)
        return w.min(0), w.max(0), w.mean(0)

    zooms = np.linalg.norm(out.affine[:3, :3], axis=0)
    if "target_shape" in kw:
        assert out.shape[:3] == kw["target_shape"]
        for got, want in zip(box(out.affine, out.shape), box(RS_AFFINE, RS_SHAPE)):  # same field of view and centre
            np.testing.assert_allclose(got, want, atol=1e-4)  # the header keeps the affine in float32: ~1e-6 mm
    else:
        np.testing.assert_allclose(zooms, kw["voxel_size"], rtol=1e-6)
        extent = np.asarray(RS_SHAPE[:3]) * np.array([3.0, 3.5, 4.0])
        assert out.shape[:3] == tuple(int(v) for v in np.ceil(extent / np.asarray(kw["voxel_size"])))
        np.testing.assert_allclose(box(out.affine, out.shape)[2], box(RS_AFFINE, RS_SHAPE)[2], atol=1e-4)  # same centre
    np.testing.assert_allclose(out.affine[:3, :3] / zooms, np.eye(3), atol=1e-7)  # the source's axis directions
    ref = resample_img(src, target_affine=out.affine, target_shape=out.shape[:3], interpolation="continuous",
                       force_resample=True, copy_header=True)
    r = np.asarray(ref.dataobj, dtype=np.float64)
    np.testing.assert_allclose(out.get_fdata(), r, rtol=0, atol=1e-5 * np.abs(r).max())


def test_sample_nearest_equals_nilearn_nearest():
    """preprocessing.volumes.sample_nearest == nilearn.image.resample_img(interpolation="nearest").

    One documented convention differs: sample_nearest's field of view is the source voxels'
    full extent (a target centre in the outer half-voxel shell takes the edge voxel), while
    nilearn (scipy.ndimage, mode="constant") fills everything beyond the outer voxel *centres*.
    Inside the centres they must agree exactly; in the shell, sample_nearest must equal nilearn
    on the source padded by one edge voxel (whose outer centres then lie beyond the shell).
    """
    from nilearn.image import resample_img

    from eeg2fmri.preprocessing.volumes import sample_nearest

    vol = np.asarray(_bold(seed=33).dataobj)[..., 0]
    t_aff, t_shape = _oblique_affine(), (10, 12, 14)
    got = sample_nearest(vol, RS_AFFINE, t_aff, t_shape)

    def nearest(data, affine):
        img = resample_img(nib.Nifti1Image(data, affine), target_affine=t_aff, target_shape=t_shape, interpolation="nearest",
                           force_resample=True, copy_header=True)
        return np.asarray(img.dataobj)

    m = np.linalg.solve(RS_AFFINE, t_aff)
    pos = (np.indices(t_shape).reshape(3, -1).T @ m[:3, :3].T + m[:3, 3]).reshape(t_shape + (3,))  # source voxel coordinates
    hi = np.asarray(vol.shape, dtype=float) - 1
    inside = np.all((pos >= 0) & (pos <= hi), axis=-1)
    shell = np.all((pos >= -0.5) & (pos < hi + 0.5), axis=-1) & ~inside
    assert inside.sum() > 500 and shell.sum() > 50 and (~inside & ~shell).sum() > 50  # all three cases present
    np.testing.assert_array_equal(got[inside], nearest(vol, RS_AFFINE)[inside])
    pad_aff = RS_AFFINE.copy()
    pad_aff[:3, 3] -= RS_AFFINE[:3, :3] @ np.ones(3)  # voxel (0, 0, 0) of the padded volume is voxel (-1, -1, -1)
    np.testing.assert_array_equal(got[shell], nearest(np.pad(vol, 1, mode="edge"), pad_aff)[shell])
    assert np.all(got[~inside & ~shell] == 0)
    # the comparison can fail: the target grid half a voxel off along x
    off = t_aff.copy()
    off[:3, 3] += 0.5 * t_aff[:3, 0]
    assert np.mean(sample_nearest(vol, RS_AFFINE, off, t_shape)[inside] != got[inside]) > 0.2


# --------------------------------------------------------------------------------------
# SSIM / PSNR vs scikit-image

SS_SHAPE = (13, 14, 15)  # >= 11 on every axis: skimage's Gaussian window (sigma 1.5, truncate 3.5) is 11 wide
SS_KW = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)  # Wang et al. 2004, as ssim3d


def _volumes(seed: int):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(SS_SHAPE).cumsum(0).cumsum(1)  # spatial structure
    b = 0.8 * a + rng.standard_normal(SS_SHAPE) * 2.0 + 0.5
    return a, b, float(a.max() - a.min())


def test_ssim3d_equals_skimage_structural_similarity():
    """evaluation.metrics.ssim3d / ssim3d_series == skimage.metrics.structural_similarity (gaussian_weights, sigma 1.5, population covariance).

    By design ssim3d averages the SSIM map over the mask (all voxels by default), while skimage
    averages it over the volume minus a border of (win_size - 1) / 2 = 5 voxels; the maps are the
    same (both scipy.ndimage Gaussian filters, truncate 3.5, mode "reflect", C1 = (0.01 R)^2,
    C2 = (0.03 R)^2). So: no mask == the mean of skimage's full map; a mask of the interior box ==
    skimage's mean SSIM; any mask == the mean of skimage's map there.
    """
    from skimage.metrics import structural_similarity

    from eeg2fmri.evaluation.metrics import ssim3d, ssim3d_series

    a, b, dr = _volumes(seed=41)
    mssim, smap = structural_similarity(a, b, data_range=dr, full=True, **SS_KW)
    tol = 1e-12  # float64 on both sides, the same filters
    assert abs(ssim3d(a, b, dr) - smap.mean()) < tol
    inner = np.zeros(SS_SHAPE, dtype=bool)
    inner[5:-5, 5:-5, 5:-5] = True
    assert abs(ssim3d(a, b, dr, mask=inner) - mssim) < tol
    mask = np.random.default_rng(42).random(SS_SHAPE) < 0.4
    assert abs(ssim3d(a, b, dr, mask=mask) - smap[mask].mean()) < tol
    assert abs(mssim - smap.mean()) > 1e-3  # the border convention matters on volumes this small
    # series: per volume the same, with one data range for the series
    a2, b2 = np.stack([a, 0.5 * a + 3.0], -1), np.stack([b, 0.7 * b], -1)
    per = ssim3d_series(a2, b2, dr, per_volume=True)
    want = [structural_similarity(a2[..., i], b2[..., i], data_range=dr, full=True, **SS_KW)[1].mean() for i in range(2)]
    np.testing.assert_allclose(per, want, rtol=0, atol=tol)
    # float32 input: skimage filters in float32, ssim3d in float64 -> ~1e-7
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    assert abs(ssim3d(a32, b32, dr) - structural_similarity(a32, b32, data_range=dr, full=True, **SS_KW)[1].mean()) < 1e-5
    # the comparison can fail: another window width, another data range, sample covariance
    assert abs(ssim3d(a, b, dr, sigma=1.0) - smap.mean()) > 1e-3
    assert abs(ssim3d(a, b, 2 * dr) - smap.mean()) > 1e-3
    alt = structural_similarity(a, b, data_range=dr, full=True, gaussian_weights=True, sigma=1.5, use_sample_covariance=True)[1]
    assert abs(ssim3d(a, b, dr) - alt.mean()) > 1e-6  # NP / (NP - 1) = 1.00075 for an 11**3 window: small, but 1e6 x tol


def test_psnr_equals_skimage_peak_signal_noise_ratio():
    """evaluation.metrics.psnr == skimage.metrics.peak_signal_noise_ratio (same data_range; masked = skimage on the masked voxels)."""
    from skimage.metrics import peak_signal_noise_ratio

    from eeg2fmri.evaluation.metrics import psnr

    a, b, dr = _volumes(seed=43)
    assert abs(psnr(a, b, dr) - peak_signal_noise_ratio(a, b, data_range=dr)) < 1e-10  # float64, same formula
    mask = np.random.default_rng(44).random(SS_SHAPE) < 0.3
    assert abs(psnr(a, b, dr, mask=mask) - peak_signal_noise_ratio(a[mask], b[mask], data_range=dr)) < 1e-10
    a32, b32 = a.astype(np.float32), b.astype(np.float32)  # float32 in, float64 MSE in both
    assert abs(psnr(a32, b32, dr) - peak_signal_noise_ratio(a32, b32, data_range=dr)) < 1e-4
    assert psnr(a, a, dr) == np.inf
    # the comparison can fail: the range enters squared (6.02 dB per factor 2)
    assert abs(psnr(a, b, 2 * dr) - peak_signal_noise_ratio(a, b, data_range=dr) - 20 * np.log10(2)) < 1e-10


def test_flat_stretches_equal_mne_annotate_amplitude():
    """FlatScan's stretches of one value (>= 2 s) against MNE's ``annotate_amplitude`` with a flat threshold below any
    sample-to-sample change: the same channels, onsets and durations (MNE counts the equal neighbours, one sample
    fewer than the stretch), whatever the blocks the scan is fed in."""
    import mne

    from eeg2fmri.preprocessing.eeg import FlatScan

    sf, n = 250.0, 250 * 240
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, n)) * 1e-5
    planted = {"E1": (30.0, 4.0), "E3": (100.0, 2.6), "E4": (200.0, 7.0)}  # each under 5 % of 240 s: annotations, not bads
    for ch, (t0, d) in planted.items():
        i, k = int(t0 * sf), int(d * sf)
        x[int(ch[1]), i : i + k] = x[int(ch[1]), i]
    x[0, 5000:5100] = x[0, 5000]  # 0.4 s: shorter than FLAT_SECONDS, in neither
    raw = mne.io.RawArray(x, mne.create_info([f"E{i}" for i in range(5)], sf, "eeg"), verbose=False)
    mne_found = {}
    for ch in raw.ch_names:  # one channel at a time: MNE's flat annotations are not per channel
        annot, bads = mne.preprocessing.annotate_amplitude(raw, flat=1e-20, min_duration=2.0, bad_percent=5, picks=[ch], verbose=False)
        assert bads == []
        flat = [(a["onset"], a["duration"]) for a in annot if a["description"] == "BAD_flat"]
        assert len(flat) <= 1
        if flat:
            mne_found[ch] = flat[0]
    for blocks in ([n], [7001, 7001, n - 14002]):
        scan = FlatScan(raw.ch_names, sf)
        a = 0
        for b in blocks:
            scan.update(x[:, a : a + b])
            a += b
        ours = scan.stretches()
        assert set(ours) == set(mne_found) == set(planted)
        for ch, (t0, d) in ours.items():
            m0, md = mne_found[ch]
            assert t0 == pytest.approx(m0, abs=1.5 / sf) and d == pytest.approx(md, abs=1.5 / sf)
            assert (t0, d) == pytest.approx(planted[ch], abs=0.5 / sf)
