"""Library cross-checks of routines the package computes itself and that no other test compared with a library
(audit session 36; the inventory is in the session report).

* ``datasets.prepared.load_eeg_lowrate`` (block-wise polyphase rate change, band-pass, notch, average reference): the
  whole recording through ``scipy.signal.resample_poly`` and ``mne.filter`` in one piece, and the sample timing against
  ``mne.filter.resample`` (an independent anti-aliasing filter). Until now it was compared only with its own torch twin.
* ``io.layouts._readers.read_ds000116_mat`` / ``_code_events`` (markers from a code channel): ``mne.find_events``.
* ``io.eeg.edf_plus_d_records`` / ``read_eeg`` on EDF+D (a byte-level header and TAL reader): a file written by
  ``edfio`` (two signals of different rates before the annotation signal), read back by ``edfio``; markers on the
  samples' time axis checked against spikes in the data bytes, read by MNE.
* ``training.losses.corr_loss`` / ``gaussian_nll`` / ``laplace_nll`` and ``utils.stats.laplace_nll``:
  ``scipy.stats.pearsonr``, ``torch.nn.functional.gaussian_nll_loss``, ``scipy.stats.norm`` / ``laplace``.
* the raw representation's per-channel scaling (``representations.raw.Raw.compute``):
  ``sklearn.preprocessing.RobustScaler(unit_variance=True)`` after ``scipy.signal.resample_poly``.
* ``preprocessing.events.event_regressors`` (short events counted per frame): ``numpy.histogram``.

Every comparison was checked to fail: see the session report (perturbed copies under /tmp/ut55).
"""

from __future__ import annotations

import numpy as np
import pytest

mne = pytest.importorskip("mne")


# ---------------------------------------------------------------------------------------------------------------
# load_eeg_lowrate vs scipy.signal.resample_poly + mne.filter on the whole recording


def _recording(sfreq: float, seconds: float, seed: int = 0):
    """5 EEG channels (one marked bad) + 1 ECG channel: noise, a DC offset, alpha-range tones and 50 Hz line noise."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sfreq)) + 7  # not a whole number of blocks
    t = np.arange(n) / sfreq
    x = rng.standard_normal((6, n)) * 4e-6 + 15e-6
    for c in range(6):
        x[c] += 10e-6 * np.sin(2 * np.pi * (8.3 + 1.1 * c) * t + c) + 3e-6 * np.sin(2 * np.pi * 50.0 * t)
    info = mne.create_info(["Fz", "Cz", "Pz", "Oz", "C3", "ECG"], sfreq, ["eeg"] * 5 + ["ecg"])
    info["line_freq"] = 50.0
    raw = mne.io.RawArray(x, info, verbose=False)
    raw.info["bads"] = ["Oz"]
    return raw


@pytest.mark.parametrize(
    ("sfreq", "cfg"),
    [
        (500.0, {}),  # 19/40 to 237.5 Hz, 0.5 Hz high-pass, notch 50 + 100 Hz, average reference
        (1000.0, {"h_freq": 40.0, "notch": 60.0, "reference": None}),  # 19/80, band-pass, a 60-Hz notch, no reference
        (250.0, {"representation": "raw", "raw_sfreq": 50.0}),  # 2/5 to 100 Hz (the line at the new Nyquist: no notch)
    ],
)
def test_load_eeg_lowrate_in_blocks_equals_the_whole_recording_through_scipy_and_mne(sfreq, cfg):
    """Read in 3-s blocks (with margins), the work-rate EEG equals the whole recording resampled by
    scipy.signal.resample_poly (the plan's own window) and filtered by mne.filter in one piece: no block edge, no lost or
    doubled sample, the bad and non-EEG channels dropped, the reference after the filters."""
    from scipy.signal import resample_poly

    from eeg2fmri.datasets.prepared import PrepareConfig, load_eeg_lowrate, lowrate_plan

    raw = _recording(sfreq, 21.3)
    config = PrepareConfig(**cfg).resolved(sfreq)
    got, wsf, names = load_eeg_lowrate(raw, config, block_seconds=3.0)
    plan = lowrate_plan(sfreq, config, raw.info["line_freq"])
    assert names == ["Fz", "Cz", "Pz", "C3"] and wsf == plan.wsf

    x = raw.get_data(picks=names)
    want = resample_poly(x, plan.up, plan.down, axis=1, window=plan.h) if plan.up != plan.down else x
    if plan.l_freq is not None or plan.h_freq is not None:
        want = mne.filter.filter_data(want, wsf, plan.l_freq, plan.h_freq, verbose=False)
    if len(plan.notch_freqs):
        want = mne.filter.notch_filter(want, wsf, plan.notch_freqs, verbose=False)
    if plan.average_reference:
        want = want - want.mean(axis=0, keepdims=True)
    assert got.shape == want.shape and got.dtype == np.float32
    # float32 storage of the resampled block before the filters: ~6e-8 of the largest value (measured 1.1e-7 .. 2.3e-7 of
    # it); one work sample of misplacement at a block edge is > 1e-2 of it (the 8-13 Hz tones move 0.2-0.35 rad a sample)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6 * np.abs(want).max())


def _tones(sfreq: float, n: int, specs=((3.0, 0.1), (7.5, 1.0), (11.0, 2.0))) -> np.ndarray:
    t = np.arange(n) / sfreq
    return np.stack([1e-5 * np.sin(2 * np.pi * f * t + p) for f, p in specs])


def test_load_eeg_lowrate_sample_times_equal_mne_polyphase_resample():
    """The timing convention (work sample j at j / wsf s from the first sample) against an independent anti-aliasing
    filter, mne.filter.resample(method="polyphase"), and against the tones themselves, away from the edges. (A length
    whose rate change gives a whole number of samples: MNE otherwise stretches the time base, see the raw_continuous
    test below; its FFT method with the default npad=100 is half an output sample early at 500 -> 237.5 Hz.)"""
    from eeg2fmri.datasets.prepared import PrepareConfig, load_eeg_lowrate, lowrate_plan

    sfreq, n = 500.0, 10000  # 20 s -> 4750 samples at 237.5 Hz
    x = _tones(sfreq, n)
    raw = mne.io.RawArray(x, mne.create_info(["Fz", "Cz", "Pz"], sfreq, "eeg"), verbose=False)
    config = PrepareConfig(l_freq=None, reference=None, notch=0.0).resolved(sfreq)
    plan = lowrate_plan(sfreq, config, None)
    assert plan.l_freq is None and plan.h_freq is None and not len(plan.notch_freqs) and plan.up != plan.down
    got, wsf, _ = load_eeg_lowrate(raw, config, block_seconds=3.0)
    want = mne.filter.resample(x, up=wsf, down=sfreq, axis=-1, method="polyphase", verbose=False)
    assert got.shape == want.shape == (3, 4750)
    mid = slice(int(2 * wsf), int(-2 * wsf))
    # both filters pass 3-11 Hz with gains within 1.5e-3 of 1 (measured: 3.3e-4 of the amplitude apart, 1.2e-3 and
    # 1.4e-3 from the tones); half a work sample late would be 0.145 of the amplitude, one sample 0.29
    np.testing.assert_allclose(got[:, mid], want[:, mid], rtol=0, atol=2e-3 * 1e-5)
    np.testing.assert_allclose(got[:, mid], _tones(wsf, got.shape[1])[:, mid], rtol=0, atol=3e-3 * 1e-5)


# (finding 1 of session 36's audit, fixed: MNE's stretched time base and fractional padding shift)
@pytest.mark.parametrize("method", ["fft", "polyphase"])
def test_raw_continuous_sample_times_equal_scipy_resample_poly(method):
    """raw_continuous(resample=) promises sample j at j / rate s: scipy.signal.resample_poly (a whole rate change of
    25/64, 256 -> 100 Hz) keeps that on a recording of 20 s + 1 sample; so do the tones themselves."""
    from scipy.signal import resample_poly

    from eeg2fmri.preprocessing.representations import raw_continuous

    n = 256 * 20 + 1
    x = _tones(256.0, n)
    got = raw_continuous(x, 256.0, resample=100.0, method=method)  # (n_samples, n_chans)
    want = resample_poly(x, 25, 64, axis=1)
    assert got.shape == (2000, 3) and want.shape == (3, 2001)  # round(n * ratio) = 2000 samples vs ceil = 2001
    mid = slice(300, 1700)
    # scipy's default Kaiser anti-aliasing filter passes 3-11 Hz within 2e-3 of unit gain (measured 1.1e-3 from the
    # tones); the time base of MNE's output drifts to half an output sample (5 ms) by the end: 0.09-0.15 of the amplitude
    np.testing.assert_allclose(want[:, mid], _tones(100.0, want.shape[1])[:, mid], rtol=0, atol=3e-3 * 1e-5)
    np.testing.assert_allclose(got.T[:, mid], want[:, mid], rtol=0, atol=3e-3 * 1e-5)


# ---------------------------------------------------------------------------------------------------------------
# ds000116 code channels vs mne.find_events


def test_ds000116_code_channel_markers_equal_mne_find_events(tmp_path):
    """read_ds000116_mat's annotations (every step of a code channel to a non-zero value, also to another code without
    passing 0, and a code already set at the first sample) are mne.find_events(consecutive=True, initial_event=True) on
    the returned stim channels, at their samples; EEG rows scaled microvolts -> volts."""
    from scipy.io import savemat

    from eeg2fmri.io.layouts._readers import DS000116_FILES, read_ds000116_mat

    key, names, types, scale = DS000116_FILES["EEG_rereferenced.mat"]
    n = 3011
    rng = np.random.default_rng(5)
    arr = np.zeros((len(names), n))
    arr[:-2] = rng.normal(scale=12.0, size=(len(names) - 2, n))
    stim, behav = arr[-2], arr[-1]
    stim[:4] = 3  # set at the first sample
    stim[700:705], stim[705:709] = 125, 150  # a step to another code without passing 0
    stim[1500] = 7  # one sample
    stim[2990:] = 9  # to the end
    behav[1200:1230] = 100
    behav[2400:2401] = 101
    savemat(tmp_path / "EEG_rereferenced.mat", {key: arr})
    raw = read_ds000116_mat(tmp_path / "EEG_rereferenced.mat", sfreq=250.0)
    got = sorted((int(round(o * 250.0)), d) for o, d in zip(raw.annotations.onset, raw.annotations.description))
    want = []
    for ch, prefix in (("STI stim", "Stimulus/S"), ("STI behav", "Response/R")):
        ev = mne.find_events(raw, stim_channel=ch, consecutive=True, initial_event=True, shortest_event=1, min_duration=0.0,
                             verbose=False)
        want += [(int(s), f"{prefix}{int(v)}") for s, _, v in ev]
    assert got == sorted(want)
    assert [d for _, d in got][:3] == ["Stimulus/S3", "Stimulus/S125", "Stimulus/S150"]  # (the comparison is not empty)
    np.testing.assert_allclose(raw.get_data(picks=[0])[0], arr[0] * scale, rtol=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# EDF+D: record times and markers vs edfio and MNE


def _edfio_plus_d(path, shift_from: int, pause: int, markers_real: list[float], spikes_samples: list[float]):
    """An EDF+ file written by edfio: 8 records of 1 s, EEG at 64 and 48 Hz (different byte counts per record) before
    edfio's annotation signal; record ``shift_from`` on made to start ``pause`` s late (the time-keeping TALs
    ``+k``, found by their bytes, rewritten), the header's reserved field set to EDF+D. Markers at ``markers_real``
    (the recording's real time, as EDF+ stores them); E0 carries a spike at each time of ``spikes_samples`` (s of the
    samples laid end to end)."""
    from edfio import Edf, EdfAnnotation, EdfSignal

    rng = np.random.default_rng(11)
    e0 = rng.standard_normal(8 * 64) * 5.0
    for s in spikes_samples:
        e0[int(round(s * 64))] = 400.0
    e1 = rng.standard_normal(8 * 48) * 5.0
    signals = [EdfSignal(e0, sampling_frequency=64, label="Fz", physical_dimension="uV", physical_range=(-500, 500)),
               EdfSignal(e1, sampling_frequency=48, label="Cz", physical_dimension="uV", physical_range=(-500, 500))]
    edf = Edf(signals, annotations=[EdfAnnotation(m, None, "R128") for m in markers_real], data_record_duration=1.0)
    b = bytearray(edf.to_bytes())
    assert b[192:197] == b"EDF+C"
    b[192:236] = b"EDF+D".ljust(44)
    if pause:
        for k in range(7, shift_from - 1, -1):  # highest first: a rewritten onset is never rewritten again
            old, new = f"+{k}\x14\x14".encode(), f"+{k + pause}\x14\x14".encode()
            assert len(old) == len(new) and bytes(b).count(old) == 1
            i = bytes(b).index(old)
            b[i : i + len(old)] = new
    path.write_bytes(bytes(b))
    return path


def test_edf_plus_d_record_times_and_markers_equal_edfio_and_the_data(tmp_path):
    """edf_plus_d_records reads the record start times edfio wrote (and edfio reads back: is_continuous), in a file whose
    annotation signal follows two signals of different rates; read_eeg then puts each marker on the sample that carries
    its spike in the data (MNE's samples), i.e. markers after the pause move back by the pause."""
    edfio = pytest.importorskip("edfio")
    from eeg2fmri.io.eeg import discontinuities, edf_plus_d_joins, edf_plus_d_records, read_eeg

    spikes = [0.5, 2.25, 5.75]  # s of the samples laid end to end; the last lies after the 2-s pause (record 4 on)
    real = [0.5, 2.25, 5.75 + 2.0]
    gap = _edfio_plus_d(tmp_path / "gap.edf", 4, 2, real, spikes)
    flat = _edfio_plus_d(tmp_path / "nogap.edf", 4, 0, spikes, spikes)
    assert edfio.read_edf(gap).is_continuous is False and edfio.read_edf(flat).is_continuous is True
    assert edf_plus_d_records(gap) == ([0.0, 1.0, 2.0, 3.0, 6.0, 7.0, 8.0, 9.0], 1.0)
    assert edf_plus_d_records(flat) == ([float(k) for k in range(8)], 1.0)
    assert edf_plus_d_joins(gap) == [4.0] and edf_plus_d_joins(flat) == []

    raw = read_eeg(gap)
    assert discontinuities(raw) == [4.0]
    sf = raw.info["sfreq"]
    data = raw.get_data(picks=["Fz"])[0]
    spike_samples = np.flatnonzero(data > 300e-6)  # volts: the spikes as MNE read the data records
    marks = sorted(float(o - raw.first_time) for o, d in zip(raw.annotations.onset, raw.annotations.description) if d == "R128")
    assert len(spike_samples) == 3
    # a marker's time is exact in the TAL (1/64 s multiples) and MNE's samples are at 64 Hz: the same sample
    np.testing.assert_array_equal(np.round(np.asarray(marks) * sf).astype(int), spike_samples)


# ---------------------------------------------------------------------------------------------------------------
# training losses vs scipy / torch


def test_training_losses_equal_scipy_and_torch():
    """corr_loss = 1 - mean over outputs of scipy.stats.pearsonr across the batch; gaussian_nll = torch's
    gaussian_nll_loss(full=True) = -mean scipy.stats.norm.logpdf; laplace_nll (losses and utils.stats) =
    -mean scipy.stats.laplace.logpdf; on outputs of shape (3, 5) and a batch of 7."""
    import torch
    from scipy import stats

    from eeg2fmri.training.losses import corr_loss, gaussian_nll
    from eeg2fmri.training.losses import laplace_nll as loss_laplace
    from eeg2fmri.utils.stats import laplace_nll as stats_laplace

    rng = np.random.default_rng(8)
    y = rng.standard_normal((7, 3, 5))
    p = 0.6 * y + 0.8 * rng.standard_normal((7, 3, 5)) + 2.0  # an offset: r ignores it
    s = rng.uniform(-1.0, 0.7, (7, 3, 5))  # log scale
    tp, ty, ts = (torch.tensor(a, dtype=torch.float32) for a in (p, y, s))
    p32, y32, s32 = (a.astype(np.float32).astype(np.float64) for a in (p, y, s))  # the float32 inputs the losses see

    r = np.array([stats.pearsonr(p32[:, i, j], y32[:, i, j])[0] for i in range(3) for j in range(5)])
    # float32 sums over 7 windows (~1e-7) and eps=1e-8 against sums of squares ~5: 1e-6 absolute
    assert float(corr_loss(tp, ty)) == pytest.approx(1.0 - r.mean(), abs=1e-6)

    want_g = -stats.norm.logpdf(y32, p32, np.exp(s32)).mean()
    torch_g = float(torch.nn.functional.gaussian_nll_loss(tp, ty, torch.exp(2.0 * ts), full=True, reduction="mean"))
    assert torch_g == pytest.approx(want_g, rel=1e-5)  # (the two libraries agree: the reference is sound)
    assert float(gaussian_nll(tp, ts, ty)) == pytest.approx(want_g, rel=1e-5)  # float32 means of ~1: 1e-5 relative

    want_l = -stats.laplace.logpdf(y32, p32, np.exp(s32)).mean()
    assert float(loss_laplace(tp, ts, ty)) == pytest.approx(want_l, rel=1e-5)
    assert float(stats_laplace(tp, ts, ty)) == pytest.approx(want_l, rel=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# raw representation scaling vs sklearn RobustScaler


def test_raw_representation_scaling_equals_sklearn_robust_scaler():
    """Raw.compute: each channel resampled (scipy.signal.resample_poly) and scaled by median and IQR as
    sklearn.preprocessing.RobustScaler(unit_variance=True) does; 4 channels, 150 Hz -> 60 Hz, 11 volumes."""
    from scipy.signal import resample_poly
    from sklearn.preprocessing import RobustScaler

    from eeg2fmri.datasets.prepared import PrepareConfig
    from eeg2fmri.preprocessing.representations import get_representation

    rng = np.random.default_rng(2)
    wsf, tr = 150.0, 2.0
    data = (rng.standard_normal((4, int(25 * wsf))) * np.array([[1.0], [3.0], [0.2], [7.0]]) + np.array([[0.5], [-2.0], [0.0], [9.0]])) * 1e-5
    onsets = 1.0 + tr * np.arange(11)
    out = get_representation("raw").compute(data.astype(np.float32), wsf, onsets, tr, PrepareConfig(representation="raw", raw_sfreq=60.0))
    x = resample_poly(data.astype(np.float32).astype(np.float64), 2, 5, axis=1).T  # (n_samples, n_chans)
    want = RobustScaler(unit_variance=True).fit_transform(x)
    assert out["features"].shape == want.shape and out["frame_rate"] == 60.0
    # float32 output (~1e-7 of values up to ~4); sklearn's exact normal IQR 1.3489795 vs the package's 1.349: 1.5e-5 relative
    np.testing.assert_allclose(out["features"], want, rtol=5e-5, atol=1e-5)
    # window ends: the sample at each volume's acquisition end (onset + TR), at 60 Hz
    np.testing.assert_array_equal(out["window_end"], np.round((onsets + tr) * 60.0).astype(np.int64))


# ---------------------------------------------------------------------------------------------------------------
# event regressors vs numpy.histogram


def test_event_regressors_of_short_events_equal_numpy_histogram():
    """Short events counted in frames anchored on jittered volume onsets (contiguous ends): numpy.histogram of the
    onsets over the frame edges (half-open bins; the last frame's end is past every onset)."""
    from eeg2fmri.preprocessing.events import contiguous_ends, event_regressors

    rng = np.random.default_rng(9)
    starts = 0.4 + np.cumsum(np.r_[0.0, 1.5 + rng.uniform(-0.02, 0.02, 36)])  # 37 frames of a 1.5-s TR
    on_a = np.sort(rng.uniform(0.0, starts[-1] + 1.4, 41))
    on_a[:3] = starts[[4, 9, 20]]  # exactly on a frame start: counted in that frame, as a half-open bin does
    on_b = np.sort(rng.uniform(0.0, 30.0, 13))
    ev = {"Stimulus/S  1": (on_a, np.zeros(41)), "Stimulus/S  2": (on_b, np.full(13, 0.3))}
    ends = contiguous_ends(starts, 1.5)
    got = event_regressors(ev, {"one": ["S 1"], "two": ["S 2"]}, starts, 1.5, ends=ends)
    edges = np.r_[starts, ends[-1]]
    inside = lambda o: o[o < ends[-1]]  # noqa: E731  (np.histogram's last bin is closed; none lies on its end)
    want = np.stack([np.histogram(inside(on_a), edges)[0], np.histogram(inside(on_b), edges)[0]], axis=1)
    np.testing.assert_array_equal(got, want.astype(np.float32))  # counts: exact
    assert got[:, 0].sum() == np.sum((on_a >= starts[0]) & (on_a < ends[-1]))
