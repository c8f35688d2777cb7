"""The pulse-artefact (BCG) step's coupling report and the cross-faded PCA-OBS, on a tiny synthetic in-scanner recording
whose EEG holds a heartbeat-locked BCG and a respiration drift (user test 57: PCA-OBS with fits edge to edge made band
power track respiration)."""

from __future__ import annotations

import logging

import mne
import numpy as np
import pytest
from scipy.stats import pearsonr

from eeg2fmri.preprocessing.cleaning import (
    _median_abs_corr,
    _pca_obs,
    _rolling_sd,
    _window_band_power,
    bcg_coupling_report,
    clean_raw,
    remove_bcg_artifacts,
)
from eeg2fmri.utils.validation import Eeg2fmriInputError

SF, DUR, N_EEG = 200.0, 150.0, 5  # 5 EEG + ECG + Resp channels, 30000 samples, 75 windows of 2 s, 5 bands below 90 Hz


def _make(seed: int = 0) -> tuple[mne.io.RawArray, np.ndarray]:
    """EEG (white noise 4 uV + BCG 15-45 uV after every beat + respiration drift 20-60 uV x belt), ECG spikes, belt."""
    rng = np.random.default_rng(seed)
    n = int(DUR * SF)
    t = np.arange(n) / SF
    hr = 65 + 8 * np.sin(2 * np.pi * t / 37.0 + 1.0)  # bpm, slow changes
    beats = np.interp(np.arange(1, int(np.sum(hr / 60) / SF)), np.cumsum(hr / 60 / SF), t)
    beats = beats[(beats > 0.6) & (beats < DUR - 1.2)]
    belt = (1 + 0.6 * np.sin(2 * np.pi * t / 23.0) ** 2) * np.cos(2 * np.pi * 0.25 * t)  # depth varies slowly
    eeg = 4 * rng.standard_normal((N_EEG, n))
    tt = np.arange(int(0.6 * SF)) / SF
    wave = np.exp(-tt / 0.12) * np.sin(2 * np.pi * 5 * tt)
    bcg = np.zeros(n)
    ecg = 0.05 * rng.standard_normal(n)
    for b in beats:
        s = int(round((b + 0.2) * SF))
        bcg[s : s + len(tt)] += wave[: n - s]
        c = int(round(b * SF))
        ecg[c - 3 : c + 3] += np.hanning(6)
    eeg += np.outer(30 * rng.uniform(0.5, 1.5, N_EEG) * np.sign(rng.standard_normal(N_EEG)), bcg)
    eeg += np.outer(40 * rng.uniform(0.5, 1.5, N_EEG), belt)
    info = mne.create_info([f"E{i}" for i in range(N_EEG)] + ["ECG", "Resp"], SF, ["eeg"] * N_EEG + ["ecg", "resp"])
    return mne.io.RawArray(np.vstack([eeg * 1e-6, ecg * 1e-3, belt * 1e-3]), info, verbose=False), beats


@pytest.fixture(scope="module")
def sim():
    return _make()


def test_report_keys_and_values(sim):
    raw, beats = sim
    cleaned, info = remove_bcg_artifacts(raw, method="pca_obs")
    pr = np.median(np.diff(beats)) * SF / 2  # half the median RR interval, samples
    assert info["crossfade"] == 0.5 and abs(info["crossfade_samples"] - 0.5 * pr) <= 1
    assert abs(info["epoch_samples"] - 2 * (info["crossfade_samples"] + pr) - 1) <= 2
    c = info["coupling"]
    assert c["skipped"] is None and c["window_s"] == 2.0 and c["n_windows"] == int(DUR / 2.0)
    assert c["channels"] == [f"E{i}" for i in range(N_EEG)] and c["resp_channel"] == "Resp"  # ECG and belt are not EEG here
    assert list(c["bands"]) == ["delta", "theta", "alpha", "beta", "gamma"]  # high gamma (55-95 Hz) is above 0.45 x 200 Hz
    assert abs(info["n_beats"] - len(beats)) <= 2 and c["irregular_rr"] <= 2
    for cov in ("heart_rate", "respiration"):
        for when in ("before", "after"):
            vals = np.array(list(c[cov][when].values()))
            assert vals.shape == (5,) and np.all((vals >= 0) & (vals <= 1))
    assert c["respiration"]["before"]["delta"] > 0.8  # the drift: delta power follows the breathing depth
    assert c["raised"] == []  # the cross-faded PCA-OBS adds no physiology-locked power
    # the BCG is removed: the R-peak-locked average of the cleaned EEG is a fraction of the raw one
    r = np.round(beats * SF).astype(int)[2:-2]
    def ev(x: np.ndarray) -> float:
        avg = np.mean([x[:, i : i + int(0.8 * SF)] for i in r], axis=0)
        return float(np.abs(avg - avg.mean(axis=1, keepdims=True)).max())

    assert ev(cleaned.get_data(picks="eeg")) < 0.15 * ev(raw.get_data(picks="eeg"))


def test_edge_to_edge_pca_obs_raises_respiration_coupling_and_warns(sim, caplog):
    raw, _ = sim
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        _, info = remove_bcg_artifacts(raw, method="pca_obs", crossfade=None, where="run-3")  # MNE's apply_pca_obs as it is
    c = info["coupling"]
    raised = {(d["covariate"], d["band"]) for d in c["raised"]}
    assert {("respiration", "theta"), ("respiration", "alpha"), ("respiration", "beta"), ("heart_rate", "beta")} <= raised
    assert c["respiration"]["after"]["gamma"] > c["respiration"]["before"]["gamma"] + 0.2
    assert re_search(r"run-3: after pulse-artifact \(BCG\) cleaning, EEG band power tracks the physiology more than before", caplog.text)
    assert re_search(r"beta vs respiration 0\.\d\d -> 0\.\d\d", caplog.text) and "crossfade=0.5" in caplog.text and "--bcg aas" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        _, info = remove_bcg_artifacts(raw, method="pca_obs", crossfade=0.5, where="run-3")
    assert info["coupling"]["raised"] == [] and "tracks the physiology" not in caplog.text
    assert info["coupling"]["respiration"]["after"]["beta"] < 0.2


def re_search(pattern: str, text: str) -> bool:
    import re

    return re.search(pattern, text) is not None


def test_warning_on_constructed_before_after(sim, caplog):
    raw, _ = sim
    rng = np.random.default_rng(7)
    eeg = mne.pick_types(raw.info, eeg=True)
    belt = raw.get_data(picks="Resp")[0]
    depth = _rolling_sd(belt, np.arange(raw.n_times), int(3 * SF))
    added = raw.copy()
    added._data[eeg] += 4e-6 * rng.standard_normal((len(eeg), raw.n_times)) * (depth / depth.mean())[None, :] ** 3  # broadband, with breathing
    same = raw.copy()
    same._data[eeg] += 4e-6 * rng.standard_normal((len(eeg), raw.n_times))  # broadband, unrelated
    qrs = np.arange(0.7, DUR - 1, 0.9)
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        rep = bcg_coupling_report(raw, added, qrs, resp_channel="Resp", where="constructed")
    bands = {d["band"] for d in rep["raised"] if d["covariate"] == "respiration"}
    assert {"beta", "gamma"} <= bands and not {"delta", "theta"} & bands  # the added noise dominates the high bands only
    assert "constructed: after pulse-artifact (BCG) cleaning" in caplog.text and "gamma vs respiration" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        rep = bcg_coupling_report(raw, same, qrs, resp_channel="Resp", where="constructed")
    assert rep["raised"] == [] and caplog.text == ""
    assert rep["heart_rate"] is None  # a constant heart rate is no covariate
    without = bcg_coupling_report(raw, same, qrs, window=3.0, where="constructed")
    assert without["respiration"] is None and without["n_windows"] == int(DUR / 3.0)


def test_short_recording_is_skipped_and_errors_name_the_fix(sim):
    raw, _ = sim
    short = raw.copy().crop(0, 15.0)
    rep = bcg_coupling_report(short, short, np.arange(0.5, 14, 0.9), window=2.0)
    assert rep["skipped"].startswith("7 window(s) of 2 s") and rep["heart_rate"] is None
    with pytest.raises(Eeg2fmriInputError, match=r"run-1: expected a respiration channel named 'Belt', found none.*pass the belt's channel name or None"):
        bcg_coupling_report(raw, raw, np.arange(0.5, 140, 0.9), resp_channel="Belt", where="run-1")
    with pytest.raises(Eeg2fmriInputError, match=r"run-1: expected crossfade between 0 and 1 .* got 1\.5; pass 0\.5 \(default\)"):
        remove_bcg_artifacts(raw, crossfade=1.5, where="run-1")
    with pytest.raises(Eeg2fmriInputError, match=r"run-1: expected window > 0, got -2"):
        remove_bcg_artifacts(raw, window=-2, where="run-1")


def test_clean_raw_reports_the_coupling(sim):
    raw, _ = sim
    _, rep = clean_raw(raw, gradient=None, bcg="aas")
    assert rep["artifact_power"] is None and rep["bcg"]["method"] == "aas" and "crossfade" not in rep["bcg"]
    assert rep["bcg"]["coupling"]["window_s"] == 2.0 and rep["bcg"]["coupling"]["respiration"] is not None
    _, rep = clean_raw(raw, gradient=None, bcg="pca_obs", bcg_crossfade=0.25, tr=3.0)
    assert rep["bcg"]["crossfade"] == 0.25 and rep["bcg"]["coupling"]["window_s"] == 3.0


def test_edge_to_edge_fit_matches_mne_one_sample_later(sim):
    """With crossfade=0 every beat's fit is MNE's; MNE writes it one sample early (compared inside the beats)."""
    raw, _ = sim
    picks = ["E0", "E3"]
    qrs = (mne.preprocessing.find_ecg_events(raw, ch_name="ECG", verbose=False)[0][:, 0] - raw.first_samp) / SF
    qrs = qrs[(qrs > 1.0) & (qrs < DUR - 1.0)]
    x = raw.get_data(picks=picks)
    ref = mne.preprocessing.apply_pca_obs(raw, picks=picks, qrs_times=qrs, n_components=4, copy=True, verbose=False)
    art_mne = (x - x.mean(axis=1, keepdims=True)) - ref.get_data(picks=picks)
    own = x.copy()
    r = raw.time_as_index(qrs).astype(np.int64)  # MNE's R-peak samples (it floors the times; the package rounds them)
    _pca_obs(own, [0, 1], r, 4, 0.0)
    art_own = x - own
    pr = round(np.median(np.diff(r)) / 2)
    inner = np.concatenate([np.arange(p - pr // 2, p + pr // 2) for p in r[1:-1]])
    np.testing.assert_allclose(art_mne[:, inner], art_own[:, inner + 1], atol=1e-9 * np.abs(art_mne).max())
    assert np.abs(art_mne[:, inner] - art_own[:, inner]).max() > 0.05 * np.abs(art_mne).max()  # not where it was fitted


def test_helpers_match_library_computations():
    rng = np.random.default_rng(3)
    sf, win = 128.0, 2.0
    x = rng.standard_normal((3, int(7 * win * sf)))  # 3 channels, 7 windows
    bands = {"theta": (4.0, 8.0), "beta": (13.0, 30.0)}
    lp = _window_band_power(x, sf, win, bands)
    assert lp.shape == (2, 3, 7)
    seg = x[1, int(4 * win * sf) : int(5 * win * sf)]
    p, f = mne.time_frequency.psd_array_welch(seg, sf, fmin=0, fmax=sf / 2, n_fft=int(sf), n_per_seg=int(sf), n_overlap=int(sf) // 2,
                                             window="hann", average="mean", verbose=False)
    for k, (lo, hi) in enumerate(bands.values()):
        np.testing.assert_allclose(lp[k, 1, 4], np.log(p[(f >= lo) & (f < hi)].mean()), rtol=1e-10)
    cov = rng.standard_normal(7)
    expect = [np.median([abs(pearsonr(lp[k, c], cov)[0]) for c in range(3)]) for k in range(2)]
    np.testing.assert_allclose(_median_abs_corr(lp, cov), expect, rtol=1e-10)
    assert _median_abs_corr(lp, np.full(7, 5.0)) is None
    y = rng.standard_normal(500)
    centres = np.array([0, 3, 250, 498])
    np.testing.assert_allclose(_rolling_sd(y, centres, 40), [np.std(y[max(c - 40, 0) : c + 40]) for c in centres], rtol=1e-9)


def test_cli_bcg_crossfade(sim, tmp_path, capsys):
    """`clean --bcg-crossfade`: 'mne' runs MNE's apply_pca_obs, a fraction the cross-faded fit (the console names which);
    anything else is refused with the accepted forms."""
    from eeg2fmri.cli import main

    raw, _ = sim
    src = tmp_path / "in_raw.fif"
    raw.save(src, verbose=False)
    outs = {}
    for value, words in (("0.5", "fits cross-faded over 0.5 x half an RR"), ("mne", "MNE's apply_pca_obs"), ("0", "fits edge to edge")):
        out = tmp_path / f"c{value}_raw.fif"
        assert main(["clean", str(src), "--out", str(out), "--gradient", "none", "--bcg-crossfade", value]) == 0
        assert f"bcg: pca_obs ({words})" in capsys.readouterr().out
        outs[value] = mne.io.read_raw_fif(out, verbose=False).get_data(picks="eeg")
    assert not np.allclose(outs["0.5"], outs["mne"]) and not np.allclose(outs["0.5"], outs["0"])
    assert main(["clean", str(src), "--out", str(tmp_path / "x_raw.fif"), "--gradient", "none", "--bcg-crossfade", "2"]) != 0
    assert "--bcg-crossfade: expected a number from 0 to 1 or 'mne', got '2'" in capsys.readouterr().err
