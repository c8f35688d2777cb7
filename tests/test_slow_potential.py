"""Prepare option slow_potential: the signed slow EEG potential as one more band-power entry (user test 59).

Checked against an independent computation (scipy, and MNE's FIR filter), end to end on the tiny fixture (prepare,
manifest, ridge_hrf, streaming synthesis), on a synthetic BOLD driven by a slow signed potential, and its errors."""

from __future__ import annotations

import mne
import numpy as np
import pytest
from scipy import signal

from eeg2fmri.datasets.prepared import PrepareConfig, eeg_representation, prepare_dataset
from eeg2fmri.models.base import DataSpec
from eeg2fmri.models.ridge_hrf import RidgeHRF
from eeg2fmri.utils.validation import Eeg2fmriInputError

BAND = (0.01, 0.1)


def _slow_source(n: int, sfreq: float, seed: int, band=(0.015, 0.08)) -> np.ndarray:
    """A random signed signal band-limited to ``band`` (unit standard deviation)."""
    rng = np.random.default_rng(seed)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / sfreq)
    spec[(f < band[0]) | (f > band[1])] = 0
    s = np.fft.irfft(spec, n)
    return s / s.std()


def _raw(sfreq: float, seconds: float, n_chans: int, seed: int, slow: np.ndarray | None = None, pattern=None) -> mne.io.RawArray:
    """EEG with electrode offsets, a linear drift, alpha, white noise and (optionally) ``pattern x slow``, in volts."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sfreq))
    t = np.arange(n) / sfreq
    x = rng.standard_normal((n_chans, n)) * 4e-6
    x += rng.uniform(-1e-3, 1e-3, (n_chans, 1)) + rng.uniform(-2e-8, 2e-8, (n_chans, 1)) * t  # offsets, linear drift
    x += 8e-6 * np.sin(2 * np.pi * 10.0 * t + rng.uniform(0, 6, (n_chans, 1)))
    if slow is not None:
        x += np.asarray(pattern)[:, None] * slow[None] * 15e-6
    info = mne.create_info([f"E{i}" for i in range(n_chans)], sfreq, "eeg")
    return mne.io.RawArray(x, info, verbose=False)


def _robust_z(v: np.ndarray) -> np.ndarray:
    med = np.median(v, axis=0)
    q75, q25 = np.percentile(v, [75, 25], axis=0)
    return (v - med) / ((q75 - q25) / 1.349)


def _frame_means(x: np.ndarray, fs: float, starts: np.ndarray, flen: float) -> np.ndarray:
    return np.stack([x[:, int(round(s * fs)) : int(round((s + flen) * fs))].mean(1) for s in starts])


def test_feature_equals_an_independent_scipy_and_mne_computation():
    """The slow entry equals the documented recipe computed directly with scipy (average reference, linear detrend, resample_poly to
    10 Hz in one step, Butterworth 2 sosfiltfilt, frame means, median/IQR per channel), and follows MNE's
    IIR band-pass of the same EEG; the sign is kept; the other entries are those without the option."""
    sf, seconds, n_ch, tr, m = 160.0, 231.0, 5, 1.5, 2
    slow = _slow_source(int(sf * seconds), sf, seed=3)
    pattern = np.array([1.0, -0.6, 0.5, 0.9, -1.2])
    raw = _raw(sf, seconds, n_ch, seed=1, slow=slow, pattern=pattern)
    onsets = 7.3 + np.arange(140) * tr
    cfg = PrepareConfig(bands={"theta": (4.0, 8.0), "alpha": (8.0, 13.0), "beta": (13.0, 30.0)}, frames_per_tr=m, slow_potential=list(BAND))
    rep = eeg_representation(raw, cfg, tr=tr, onsets=onsets)
    base = eeg_representation(raw, PrepareConfig(bands=cfg.bands, frames_per_tr=m), tr=tr, onsets=onsets)
    feats = rep["features"]
    assert feats.shape == base["features"].shape[:2] + (4,) and feats.dtype == np.float32
    np.testing.assert_array_equal(feats[:, :, :3], base["features"])  # the bands untouched
    assert rep["freqs"] == base["freqs"] + [pytest.approx(0.055)]
    # independent: frames of tr/m s, whole ones before the first volume
    flen = tr / m
    n_pre = int(np.floor(onsets[0] / flen))
    starts = np.concatenate([onsets[0] - flen * np.arange(n_pre, 0, -1), (onsets[:, None] + flen * np.arange(m)).ravel()])
    x = raw.get_data()
    x = x - x.mean(0, keepdims=True)
    xs = signal.resample_poly(signal.detrend(x, axis=1, type="linear"), 1, 16, axis=1, padtype="line")  # 160 -> 10 Hz
    sos = signal.butter(2, BAND, btype="bandpass", fs=10.0, output="sos")
    ref = _robust_z(_frame_means(signal.sosfiltfilt(sos, xs, axis=1, padlen=1000), 10.0, starts, flen))
    got = feats[:, :, 3]
    assert got.shape == ref.shape == (len(starts), n_ch)
    inner = slice(len(starts) // 8, -len(starts) // 8)  # (the two resampling chains differ at the ends: 160 -> 100 -> 10 Hz there)
    np.testing.assert_allclose(got[inner], ref[inner], atol=0.08)
    np.testing.assert_allclose(got, ref, atol=0.25)
    assert min(np.corrcoef(got[:, c], ref[:, c])[0, 1] for c in range(n_ch)) > 0.999
    # MNE's band-pass at the recording's rate, without resampling (its IIR path: the run is too short for its FIR at 0.01 Hz)
    xm = mne.filter.filter_data(signal.detrend(x, axis=1), sf, BAND[0], BAND[1], method="iir",
                                iir_params=dict(order=2, ftype="butter", output="sos"), verbose=False)
    ref_mne = _robust_z(_frame_means(xm, sf, starts, flen))
    for c in range(n_ch):
        assert np.corrcoef(got[inner, c], ref_mne[inner, c])[0, 1] > 0.97
    # signed: each channel follows the source with the sign of its pattern
    s_frames = _frame_means(slow[None], sf, starts, flen)[:, 0]
    r = [np.corrcoef(got[:, c], s_frames)[0, 1] for c in range(n_ch)]
    assert np.all(np.sign(r) == np.sign(pattern - pattern.mean()))
    assert max(abs(v) for v in r) > 0.8


def test_prepare_ridge_hrf_and_streaming_synthesis_end_to_end(tiny_bids, tmp_path):
    """prepare with slow_potential: one more band (named, with its centre frequency), the band in the saved manifest,
    ridge_hrf built from the data's sizes trains and predicts, and the streaming synthesis computes the same features."""
    from eeg2fmri.datasets.prepared import load_prepared
    from eeg2fmri.datasets.targets import make_split
    from eeg2fmri.datasets.windows import dataset_spec
    from eeg2fmri.synthesis import stream_representation, synthesize
    from eeg2fmri.training import fit_model
    from eeg2fmri.training.fit import save_fit

    ds = prepare_dataset(tiny_bids, {"slow_potential": "auto"}, progress_bar=False)
    n_b = len(ds.config.bands)
    assert ds.config.slow_potential == [0.01, 0.1]  # "auto" resolved: the manifest records the band
    assert ds.bands == list(ds.config.bands) + ["slow_potential"]
    assert ds.freqs[-1] == pytest.approx(0.055) and len(ds.freqs) == n_b + 1
    assert all(r.features.shape[2] == n_b + 1 for r in ds.runs)
    assert all(np.isfinite(r.features).all() for r in ds.runs)
    saved = ds.save(tmp_path / "prep")
    assert load_prepared(saved).config.slow_potential == [0.01, 0.1]
    split = make_split(ds, "within")
    assert dataset_spec(ds, 4).input_shape[1] == n_b + 1
    fit = fit_model(ds, split, "ridge_hrf")
    assert fit.model.n_bands == n_b + 1
    x = np.stack([r.features[r.window_end[-3] - fit.model.spec.input_shape[2] : r.window_end[-3]].transpose(1, 2, 0) for r in ds.runs[:2]])
    pred = fit.model.predict(x)
    assert pred.shape == (2, ds.n_outputs) and np.isfinite(pred).all()
    # EEG-only recording prepared like the training data: the streamed features (slow entry included) are the one-shot's
    raw = mne.io.read_raw(tiny_bids / "sub-01/eeg/sub-01_task-rest_run-1_eeg.vhdr", preload=True, verbose=False)
    one = eeg_representation(raw, ds.config, tr=2.0)["features"]
    st = stream_representation(raw, ds.config, tr=2.0, chunk_seconds=60.0, pad_seconds=15.0)
    got = np.asarray(st.features)
    assert got.shape == one.shape and st.freqs[-1] == pytest.approx(0.055)
    np.testing.assert_array_equal(got[:, :, -1], one[:, :, -1])
    np.testing.assert_allclose(got, one, atol=1e-2, rtol=0)  # (the bands: the streaming envelopes' interpolation)
    folder = save_fit(fit, tmp_path / "model")
    out = synthesize(tiny_bids / "sub-01/eeg/sub-01_task-rest_run-1_eeg.vhdr", folder, tmp_path / "s_bold.nii.gz", progress_bar=False,
                     first_onset=0)
    import nibabel as nib

    assert nib.load(out).shape[3] > 10


def _slow_coupled_windows(seed: int, slow_potential, n_frames: int = 8):
    """Windows and targets of one synthetic run whose BOLD follows the HRF-convolved slow signed potential."""
    from eeg2fmri.preprocessing.hrf import double_gamma_hrf

    sf, seconds, n_ch, tr = 50.0, 300.0, 6, 2.0
    n = int(sf * seconds)
    slow = _slow_source(n, sf, seed=100 + seed)
    pattern = np.array([1.0, 0.7, 0.3, -0.2, -0.6, -1.0])
    raw = _raw(sf, seconds, n_ch, seed=seed, slow=slow, pattern=pattern)
    cfg = PrepareConfig(bands={"alpha": (8.0, 13.0), "beta": (13.0, 20.0)}, slow_potential=slow_potential)
    rep = eeg_representation(raw, cfg, tr=tr)
    n_vol = len(rep["window_end"])
    drive = slow[: n_vol * int(sf * tr)].reshape(n_vol, -1).mean(1)  # the potential per volume
    h = double_gamma_hrf(tr, length=30.0)
    bold = np.convolve(drive, h)[:n_vol]
    rng = np.random.default_rng(seed + 7)
    y = np.stack([bold / bold.std() + rng.standard_normal(n_vol) * 0.6, rng.standard_normal(n_vol)], axis=1)  # coupled, null
    f = rep["features"]
    keep = np.arange(n_vol)[rep["window_end"] >= n_frames]
    x = np.stack([f[rep["window_end"][v] - n_frames : rep["window_end"][v]].transpose(1, 2, 0) for v in keep])
    return x, y[keep], rep["freqs"]


@pytest.mark.parametrize("option", [None, [0.01, 0.1]])
def test_bold_driven_by_the_slow_potential_is_predicted_only_with_the_option(option):
    """Train on one synthetic run, validate on another, test on a third (different seeds): with slow_potential ridge_hrf
    predicts the coupled output (r > 0.5); without it, it cannot (|r| < 0.3): band power loses the sign."""
    (xt, yt, freqs), (xv, yv, _), (xs, ys, _) = (_slow_coupled_windows(s, option) for s in (0, 1, 2))
    spec = DataSpec(input_kind="bandpower", input_shape=xt.shape[1:], output_shape=(2,), sfreq=50.0, tr=2.0,
                    ch_names=tuple(f"E{i}" for i in range(xt.shape[1])), freqs=tuple(freqs), frame_rate=0.5)
    model = RidgeHRF(spec).fit(xt, yt, xv, yv)
    r = np.corrcoef(model.predict(xs)[:, 0], ys[:, 0])[0, 1]
    if option is None:
        assert xt.shape[2] == 2 and abs(r) < 0.3
    else:
        assert xt.shape[2] == 3 and r > 0.5


@pytest.mark.parametrize(
    ("option", "extra", "match"),
    [
        ([0, 0.1], {}, r"prepare option slow_potential=\[0\.0, 0\.1\]: expected 0 < low < high \(Hz; a low edge of 0 would keep"),
        ([0.1, 0.05], {}, r"slow_potential=\[0\.1, 0\.05\]: expected 0 < low < high"),
        ("dc", {}, r"prepare option slow_potential: expected null, 'auto' or \[low, high\] in Hz, got 'dc'; e\.g\. --config"),
        ([0.01], {}, r"expected null, 'auto' or \[low, high\] in Hz, got \[0\.01\]"),
        ("auto", {"representation": "tangent"}, r"slow_potential: expected representation 'bandpower' .*got 'tangent'; prepare with "
                                                 r"--representation bandpower, or leave slow_potential out"),
    ],
)
def test_invalid_options_are_refused(tiny_bids, option, extra, match):
    with pytest.raises(Eeg2fmriInputError, match=match):
        prepare_dataset(tiny_bids, {"slow_potential": option, **extra}, progress_bar=False)


def test_run_too_short_and_band_too_fast_are_refused():
    raw = _raw(40.0, 80.0, 3, seed=4)
    with pytest.raises(Eeg2fmriInputError, match=r"EEG: prepare option slow_potential=\[0\.01, 0\.1\] Hz: expected a run of at least one "
                                                 r"period of the low edge \(1 / 0\.01 Hz = 100 s\), found 80 s of EEG; raise the low edge to "
                                                 r"at least 0\.0125 Hz"):
        eeg_representation(raw, PrepareConfig(bands={"alpha": (8.0, 13.0)}, slow_potential=[0.01, 0.1]), tr=2.0)
    with pytest.raises(Eeg2fmriInputError, match=r"slow_potential=\[0\.1, 25\.0\] Hz: expected an upper edge below 20 Hz .*choose a lower "
                                                 r"upper edge"):
        eeg_representation(raw, PrepareConfig(bands={"alpha": (8.0, 13.0)}, slow_potential=[0.1, 25.0]), tr=2.0)


def test_streaming_refuses_a_slow_potential_of_another_representation():
    from eeg2fmri.synthesis import stream_representation

    raw = _raw(100.0, 120.0, 3, seed=5)
    cfg = PrepareConfig(representation="stft", slow_potential=[0.02, 0.1])  # (a hand-edited model.json: prepare refuses it)
    with pytest.raises(Eeg2fmriInputError, match=r"EEG: slow_potential is not supported by the streaming synthesis for the 'stft' "
                                                 r"representation: .*retrain the model on data prepared with representation 'bandpower'"):
        stream_representation(raw, cfg, tr=2.0)
