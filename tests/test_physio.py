"""Physiological noise regressors (prepare option ``physio``), checked against neurokit2, pandas and scipy."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import warnings

import numpy as np
import pytest

from eeg2fmri.preprocessing.physio import (
    cardiac_peaks,
    cardiac_phase,
    check_physio_option,
    crf,
    find_physio_files,
    heart_rate,
    physio_regressors,
    read_bids_physio,
    respiration_volume,
    respiratory_phase,
    rrf,
)
from eeg2fmri.utils.validation import Eeg2fmriInputError


def _nk():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import neurokit2 as nk
    return nk


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


@pytest.mark.parametrize("bpm, sfreq", [(58, 128.0), (97, 500.0)])
def test_cardiac_peaks_match_neurokit2_on_ecg_and_ppg(bpm, sfreq):
    """R peaks of an ECG (MNE's QRS detector) and systolic peaks of a pulse trace (ours) sit where neurokit2 puts them, and
    'auto' picks the right detector for each (a QRS detector on a pulse trace takes extra beats)."""
    nk = _nk()
    ecg = _quiet(nk.ecg_simulate, duration=130, sampling_rate=int(sfreq), heart_rate=bpm, heart_rate_std=3, random_state=bpm)
    ppg = _quiet(nk.ppg_simulate, duration=110, sampling_rate=int(sfreq), heart_rate=bpm, random_state=bpm + 1)
    ours, kind = cardiac_peaks(ecg, sfreq)
    ref = _quiet(nk.ecg_peaks, ecg, sampling_rate=int(sfreq))[1]["ECG_R_Peaks"]
    assert kind == "ecg"
    assert abs(len(ours) - len(ref)) <= 1
    inner = ours[(ours > ref[0] + sfreq) & (ours < ref[-1] - sfreq)]
    assert np.median(np.abs(inner[:, None] - ref[None]).min(1)) / sfreq < 0.02  # within 20 ms
    ours, kind = cardiac_peaks(ppg, sfreq)
    ref = _quiet(nk.ppg_peaks, ppg, sampling_rate=int(sfreq))[1]["PPG_Peaks"]
    assert kind == "ppg"
    assert abs(len(ours) - len(ref)) <= 2
    assert abs(len(ours) - bpm * 110 / 60) <= 3
    inner = ours[(ours > ref[0] + sfreq) & (ours < ref[-1] - sfreq)]
    assert np.median(np.abs(inner[:, None] - ref[None]).min(1)) / sfreq < 0.05


def test_cardiac_peaks_of_a_pulse_log_at_a_low_rate():
    """A scanner's pulse log at 50 Hz (older Siemens PMU files): no QRS band below its Nyquist frequency, so the pulse
    detector alone (review: MNE's detector raised a bare ValueError); an ECG that slow is refused with the fix."""
    nk = _nk()
    ppg = _quiet(nk.ppg_simulate, duration=95, sampling_rate=50, heart_rate=66, random_state=8)
    peaks, kind = cardiac_peaks(ppg, 50.0)
    assert kind == "ppg" and abs(len(peaks) - 66 * 95 / 60) <= 3
    with pytest.raises(Eeg2fmriInputError, match=r"expected an ECG sampled at 24 Hz or more for the QRS detector, got 20 Hz"):
        cardiac_peaks(ppg[::2][: 20 * 60], 20.0, kind="ecg")


def test_cardiac_peaks_refuse_what_is_no_heart_rhythm():
    rng = np.random.default_rng(3)
    with pytest.raises(Eeg2fmriInputError, match=r"found no plausible heart rhythm .* expected regular beats at 30-200 bpm"):
        cardiac_peaks(rng.standard_normal(3100), 100.0)
    with pytest.raises(Eeg2fmriInputError, match=r"expected a finite, non-constant cardiac trace of at least 10 s, got 5.0 s"):
        cardiac_peaks(rng.standard_normal(500), 100.0)
    with pytest.raises(Eeg2fmriInputError, match=r"expected kind 'auto', 'ecg' or 'ppg', got 'pulse'"):
        cardiac_peaks(rng.standard_normal(3000), 100.0, kind="pulse")


def test_cardiac_phase_and_heart_rate():
    """Phase 0 at each beat and pi half-way; heart rate 60 / interval, following a change of rhythm."""
    beats = np.concatenate([np.arange(0.0, 30.0, 0.8), 30.0 + np.arange(1, 60) * 0.6])  # median interval 0.6 s
    t = np.array([0.8 * 5, 0.8 * 5 + 0.4, 30.0 + 0.6 * 10 + 0.15, -0.2, beats[-1] + 0.3])
    ph = cardiac_phase(beats, t)
    np.testing.assert_allclose(ph[:3], [0.0, np.pi, np.pi / 2], atol=1e-9)
    np.testing.assert_allclose(ph[3:], [2 * np.pi * (1 - 0.2 / 0.6), 2 * np.pi * 0.5], atol=1e-9)  # continued at the median interval
    hr = heart_rate(beats, np.array([10.0, 45.0]))
    np.testing.assert_allclose(hr, [75.0, 100.0], rtol=1e-6)


def test_respiration_volume_matches_pandas_rolling_std():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(5)
    sf = 25.0
    r = np.cumsum(rng.standard_normal(2437)) * 0.1 + np.sin(2 * np.pi * 0.27 * np.arange(2437) / sf)
    idx = np.arange(100, 2300, 37)
    ours = respiration_volume(r, sf, idx / sf, window=6.0)
    ref = pd.Series(r).rolling(int(6 * sf) + 1, center=True).std().to_numpy()[idx]
    np.testing.assert_allclose(ours, ref, rtol=1e-6)


def test_respiratory_phase_is_the_signed_empirical_cdf():
    """|phase| / pi is the histogram-equalised amplitude (scipy's empirical CDF to within a bin); the sign follows breathing in."""
    from scipy.stats import rankdata

    sf = 20.0
    t = np.arange(0, 173.0, 1 / sf)
    r = np.sin(2 * np.pi * 0.25 * t) + 0.3 * np.sin(2 * np.pi * 0.031 * t)
    ph = respiratory_phase(r, sf)
    from scipy.signal import butter, sosfiltfilt

    low = sosfiltfilt(butter(4, 1.0, fs=sf, output="sos"), r)
    ecdf = rankdata(low, method="max") / len(low)
    assert np.max(np.abs(np.abs(ph) / np.pi - ecdf)[50:-50]) < 0.03
    rising = np.gradient(low) > 0.01
    falling = np.gradient(low) < -0.01
    assert np.all(ph[rising][30:-30] > 0) and np.all(ph[falling][30:-30] < 0)


def test_response_functions_peak_where_the_papers_put_them():
    t = np.arange(0, 40, 0.01)
    assert 3.5 < t[np.argmax(crf(t))] < 5.0 and 10.0 < t[np.argmin(crf(t))] < 14.0  # Chang 2009: positive ~4 s, undershoot ~12 s
    assert 2.5 < t[np.argmax(rrf(t))] < 4.0 and 12.0 < t[np.argmin(rrf(t))] < 17.0  # Birn 2008: peak ~3 s, undershoot ~15 s


def test_physio_regressors_on_neurokit2_signals_and_errors(caplog):
    nk = _nk()
    ecg = _quiet(nk.ecg_simulate, duration=190, sampling_rate=250, heart_rate=71, heart_rate_std=3, random_state=2)  # (std 1 hung ecgsyn)
    rsp = _quiet(nk.rsp_simulate, duration=185, sampling_rate=50, respiratory_rate=14, random_state=3)
    times = 2.0 + np.arange(87) * 2.0
    x, names, summary = physio_regressors(times, cardiac=ecg, cardiac_sfreq=250.0, resp=rsp, resp_sfreq=50.0, groups=["retroicor", "hr", "rv"])
    assert x.shape == (87, 10) and names[-2:] == ["hr_crf", "rv_rrf"] and names[0] == "retroicor_c1_cos"
    xd, names_d, _ = physio_regressors(times, cardiac=ecg, cardiac_sfreq=250.0, resp=rsp, resp_sfreq=50.0)  # "regress": lags
    assert xd.shape == (87, 18) and names_d[8:] == [f"{k}_lag{d}s" for k in ("hr", "rv") for d in (0, 4, 8, 12, 16)]
    np.testing.assert_allclose(xd[:, :8], x[:, :8])
    # the lag-0 heart rate is the 6-s window heart rate at the volumes (demeaned); lag 4 s the same 4 s earlier
    from eeg2fmri.preprocessing.physio import cardiac_peaks as peaks_of

    pk = peaks_of(ecg, 250.0)[0] / 250.0
    for j, d in ((8, 0.0), (9, 4.0)):
        hr = heart_rate(pk, times - d)
        np.testing.assert_allclose(xd[:, j], hr - hr.mean(), atol=1e-9)
    assert summary["cardiac_detector"] == "ecg" and abs(summary["heart_rate_bpm"] - 71) < 4 and abs(summary["breaths_per_min"] - 14) < 2
    assert np.all(np.abs(x[:, :8]) <= 1) and np.all(np.isfinite(x))
    x2, names2, _ = physio_regressors(times, resp=rsp, resp_sfreq=50.0, groups=["rv"])
    assert names2 == ["rv_rrf"]
    np.testing.assert_allclose(x2[:, 0], x[:, -1])
    with pytest.raises(Eeg2fmriInputError, match=r"the respiration recording covers 10.0 to 195.0 s, but the volumes' middles run from 2.0"):
        physio_regressors(times, resp=rsp, resp_sfreq=50.0, resp_start=10.0, groups=["rv"])
    with pytest.raises(Eeg2fmriInputError, match=r"no physiological regressor could be built for groups \['hr'\]: they need a "
                       r"cardiac trace .* found a respiration trace; give the trace"):
        physio_regressors(times, resp=rsp, resp_sfreq=50.0, groups=["hr"])
    # a belt that came loose half-way: warned, and the summary says how much of the run (user test 58 #4)
    import logging

    loose = rsp.copy()
    loose[len(loose) // 2 :] = loose[len(loose) // 2]
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        _, _, s_loose = physio_regressors(times, resp=loose, resp_sfreq=50.0, groups=["rv"])
    assert "the respiration trace is nearly flat" in caplog.text and 0.4 < s_loose["respiration_flat_fraction"] < 0.6
    assert "respiration_flat_fraction" not in summary
    with pytest.raises(Eeg2fmriInputError, match=r"expected a finite, non-constant respiration trace, got a constant"):
        physio_regressors(times, resp=np.ones(9000), resp_sfreq=50.0, groups=["rv"])


def test_check_physio_option():
    assert check_physio_option(None) is None
    assert check_physio_option("regress") == ("retroicor", "hr_lags", "rv_lags")
    assert check_physio_option(["rv", "retroicor"]) == ("retroicor", "rv")
    with pytest.raises(Eeg2fmriInputError, match=r"unknown regressor group\(s\) \['rvt'\]"):
        check_physio_option(["rvt"])
    with pytest.raises(Eeg2fmriInputError, match=r"expected 'regress' or a list of regressor groups .* got 3"):
        check_physio_option(3)


def _write_physio(func, stem, columns, data, sfreq, start, sidecar=True):
    path = func / f"{stem}_physio.tsv.gz"
    with gzip.open(path, "wt") as f:
        for row in data:
            f.write("\t".join(f"{v:.6f}" for v in row) + "\n")
    if sidecar:
        (func / f"{stem}_physio.json").write_text(json.dumps({"SamplingFrequency": sfreq, "StartTime": start, "Columns": columns}))
    return path


def test_read_bids_physio_and_its_errors(tmp_path, caplog):
    func = tmp_path / "sub-01" / "func"
    func.mkdir(parents=True)
    (func / "sub-01_task-rest_bold.nii.gz").write_bytes(b"")
    assert find_physio_files(func / "sub-01_task-rest_bold.nii.gz") == []
    data = np.column_stack([np.arange(37.0), np.arange(37.0) * 2, np.zeros(37)])
    p = _write_physio(func, "sub-01_task-rest", ["trigger", "Respiratory", "cardiac"], data, 50.0, -1.5)
    assert find_physio_files(func / "sub-01_task-rest_bold.nii.gz") == [p]
    got = read_bids_physio(p)
    assert sorted(got) == ["cardiac", "respiratory", "trigger"]
    np.testing.assert_allclose(got["respiratory"][0], np.arange(37.0) * 2)  # the column Columns names so (any case)
    assert got["cardiac"][1:] == (50.0, -1.5)
    # missing samples: short runs interpolated with a warning, a long one refused with its time (user test 58)
    gappy = np.column_stack([np.zeros(400), np.sin(np.arange(400) / 7.0), np.zeros(400)])
    gappy[100:130, 1] = np.nan  # 0.6 s at 50 Hz
    p_gap = _write_physio(func, "sub-01_task-rest", ["trigger", "respiratory", "cardiac"], gappy, 50.0, -1.5)
    import logging

    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        filled = read_bids_physio(p_gap)["respiratory"][0]
    assert "30 missing (n/a) sample(s) in 1 run(s) of at most 0.60 s filled by linear interpolation" in caplog.text
    np.testing.assert_allclose(filled[100:130], np.interp(np.arange(100, 130), [99, 130], gappy[[99, 130], 1]), atol=2e-6)  # (6 decimals)
    gappy[200:350, 1] = np.nan  # 3 s
    _write_physio(func, "sub-01_task-rest", ["trigger", "respiratory", "cardiac"], gappy, 50.0, -1.5)
    with pytest.raises(Eeg2fmriInputError, match=r"2 run\(s\) of missing \(n/a\) samples, the longest 3.0 s \(2.5-5.5 s from the first volume\)"):
        read_bids_physio(p_gap)
    _write_physio(func, "sub-01_task-rest", ["trigger", "Respiratory", "cardiac"], data, 50.0, -1.5)
    (func / "sub-01_task-rest_physio.json").write_text(json.dumps({"SamplingFrequency": 50.0, "Columns": ["a", "b", "c"]}))
    with pytest.raises(Eeg2fmriInputError, match=r"expected the BIDS keys SamplingFrequency, StartTime and Columns, missing \['StartTime'\]"):
        read_bids_physio(p)
    (func / "sub-01_task-rest_physio.json").write_text(json.dumps({"SamplingFrequency": 50.0, "StartTime": 0, "Columns": ["a", "b"]}))
    with pytest.raises(Eeg2fmriInputError, match=r"3 column\(s\), but sub-01_task-rest_physio.json lists 2"):
        read_bids_physio(p)
    (func / "sub-01_task-rest_physio.json").unlink()
    with pytest.raises(Eeg2fmriInputError, match=r"expected its sidecar sub-01_task-rest_physio.json .* found none \(nor one it inherits"):
        read_bids_physio(p)
    # BIDS inheritance: one task-rest_physio.json at the dataset root serves every run (review)
    (tmp_path / "dataset_description.json").write_text(json.dumps({"Name": "x", "BIDSVersion": "1.9.0"}))
    (tmp_path / "task-rest_physio.json").write_text(json.dumps({"SamplingFrequency": 25.0, "StartTime": 0.5,
                                                                 "Columns": ["trigger", "respiratory", "cardiac"]}))
    assert read_bids_physio(p)["cardiac"][1:] == (25.0, 0.5)
    # fMRIPrep derivatives: the preprocessed BOLD's physio files are the raw run's, beside the EEG folder's func (review)
    deriv = tmp_path / "derivatives" / "fmriprep" / "sub-01" / "func"
    deriv.mkdir(parents=True)
    pre = deriv / "sub-01_task-rest_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"
    assert find_physio_files(pre) == []
    assert find_physio_files(pre, tmp_path / "sub-01" / "eeg" / "sub-01_task-rest_eeg.vhdr") == [p]


def test_prepare_regresses_physiology_from_the_ecg_channel(tiny_bids, tiny_prepared):
    """physio='regress' on the tiny recordings (an ECG channel, no belt): the cardiac regressors at every kept volume's
    middle, regressed from the BOLD exactly as regress_confounds does; the note about unregressed physiology goes."""
    from eeg2fmri.datasets import prepare_dataset
    from eeg2fmri.datasets.prepared import physiology_unregressed
    from eeg2fmri.io.eeg import read_eeg
    from eeg2fmri.preprocessing.bold import drift_basis
    from eeg2fmri.preprocessing.volumes import regress_confounds

    ds = prepare_dataset(tiny_bids, {"physio": "regress"}, progress_bar=False)
    run = ds.runs[0]
    info = ds.provenance["inputs"][run.key]["physio"]
    assert info["names"] == ["retroicor_c1_cos", "retroicor_c1_sin", "retroicor_c2_cos", "retroicor_c2_sin",
                             *(f"hr_lag{d}s" for d in (0, 4, 8, 12, 16))]
    assert info["source"] == {"cardiac": "ECG (EEG file)"} and info["cardiac_detector"] == "ecg"
    assert 0 < info["variance_explained_median"] < 1
    assert physiology_unregressed(tiny_prepared) == ["ecg"] and physiology_unregressed(ds) == []
    from eeg2fmri.io.layouts import find_runs_layout
    from eeg2fmri.preprocessing.physio import physio_note

    note = physio_note(find_runs_layout(tiny_bids)[:2])
    assert note.startswith("physiological recordings: 2 recording(s) with an EEG channel typed ecg. The EEG's pulse artefact")
    # the same regressors built here, from the file's ECG, remove the same part of the unregressed BOLD
    base = tiny_prepared.runs[0]
    raw = read_eeg(ds.provenance["inputs"][run.key]["eeg"], preload=False)
    ecg = raw.get_data(picks=[c for c, t in zip(raw.ch_names, raw.get_channel_types()) if t == "ecg"][:1])[0]
    tr = float(np.median(np.diff(run.onsets)))
    x, _, _ = physio_regressors(np.asarray(run.onsets) + tr / 2, cardiac=ecg, cardiac_sfreq=raw.info["sfreq"])
    np.testing.assert_allclose(run.bold, regress_confounds(base.bold, x, drift=drift_basis(len(x), tr)), atol=1e-4)
    assert not np.allclose(run.bold, base.bold, atol=1e-3)


def test_prepare_reads_bids_physio_files_and_says_when_there_is_none(tiny_bids, tmp_path, capsys, caplog):
    """Without ECG/resp channels, the run's BIDS *_physio.tsv.gz is read (times from the first volume); without either, a
    clear error."""
    from eeg2fmri.datasets import prepare_dataset
    from eeg2fmri.datasets.prepared import physiology_unregressed

    root = tmp_path / "bids"
    shutil.copytree(tiny_bids, root)
    for f in [*root.rglob("*_channels.tsv"), *root.rglob("*.vhdr")]:  # the ECG becomes an AUX channel: no cardiac trace in the EEG
        f.write_text(f.read_text().replace("ECG\tECG\t", "AUX1\tMISC\t").replace("=ECG,", "=AUX1,"))
    with pytest.raises(Eeg2fmriInputError, match=r"prepare option physio='regress' needs a cardiac or respiration recording, found none"):
        prepare_dataset(root, {"physio": "regress"}, progress_bar=False, subjects=["01"])
    bold = sorted((root / "sub-01" / "func").glob("*_bold.nii.gz"))[0]
    stem = bold.name[: -len("_bold.nii.gz")]
    sf = 25.0
    t = np.arange(-3.0, 200.0, 1 / sf)
    resp = np.sin(2 * np.pi * 0.23 * t) * (1 + 0.4 * np.sin(2 * np.pi * 0.02 * t))
    _write_physio(bold.parent, stem, ["respiratory"], resp[:, None], sf, -3.0)
    from eeg2fmri.cli import main

    capsys.readouterr()
    assert main(["datasets", "--check", str(root), "--subjects", "01"]) == 0  # (user test 57: the physio files went unmentioned)
    assert ("note: physiological recordings: BIDS physio files beside 1 BOLD run(s) (columns: respiratory 1x). The EEG's pulse "
            "artefact") in capsys.readouterr().out
    ds = prepare_dataset(root, {"physio": ["rv", "retroicor"]}, progress_bar=False, subjects=["01"])
    run = ds.runs[0]
    # without the option, the files are recorded and named as physiology left in (user test 58: only channels counted)
    plain = prepare_dataset(root, progress_bar=False, subjects=["01"])
    assert plain.provenance["inputs"][plain.runs[0].key]["physio_files"] == [f"{stem}_physio.tsv.gz"]
    assert physiology_unregressed(plain) == ["BIDS physio files"] and physiology_unregressed(ds) == []
    info = ds.provenance["inputs"][run.key]["physio"]
    assert info["names"] == ["retroicor_r1_cos", "retroicor_r1_sin", "retroicor_r2_cos", "retroicor_r2_sin", "rv_rrf"]
    assert info["source"] == {"respiratory": f"{stem}_physio.tsv.gz column"} and abs(info["breaths_per_min"] - 13.8) < 1
    # the timing: StartTime -3 s counts from the BOLD file's first volume; the kept volumes' middles (k + 0.5) TR
    from eeg2fmri.preprocessing.bold import drift_basis
    from eeg2fmri.preprocessing.volumes import regress_confounds

    base = prepare_dataset(root, progress_bar=False, subjects=["01"]).runs[0]
    first, stop = ds.provenance["inputs"][run.key]["volumes"]
    tr = float(np.median(np.diff(run.onsets)))
    t_mid = (np.arange(first, stop) + 0.5) * tr
    right, _, _ = physio_regressors(t_mid, resp=resp, resp_sfreq=sf, resp_start=-3.0, groups=["rv", "retroicor"])
    wrong, _, _ = physio_regressors(t_mid, resp=resp, resp_sfreq=sf, resp_start=-2.0, groups=["rv", "retroicor"])  # 1 s off
    err_right = np.abs(run.bold - regress_confounds(base.bold, right, drift=drift_basis(len(right), tr))).max()
    err_wrong = np.abs(run.bold - regress_confounds(base.bold, wrong, drift=drift_basis(len(right), tr))).max()
    assert err_right < 0.05 < 1.0 < err_wrong  # (float rounding of the 0.1-s convolution grid; 1 s off: ~16)
    # each trace from where it is: the EEG file's ECG (typed again) and the BIDS belt together (review: all or nothing)
    for f in [*root.rglob("*_channels.tsv"), *root.rglob("*.vhdr")]:
        f.write_text(f.read_text().replace("AUX1\tMISC\t", "ECG\tECG\t").replace("=AUX1,", "=ECG,"))
    ds = prepare_dataset(root, {"physio": "regress"}, progress_bar=False, subjects=["01"])
    info = ds.provenance["inputs"][ds.runs[0].key]["physio"]
    assert info["source"] == {"cardiac": "ECG (EEG file)", "respiratory": f"{stem}_physio.tsv.gz column"}
    assert info["names"][-1] == "rv_lag16s" and len(info["names"]) == 18
    assert info["sampling_hz"] == {"cardiac": 100.0, "respiratory": 25.0}
    # a needed trace found nowhere: its regressors are left out with a warning (user test 58: a trigger-only file, in silence)
    import logging

    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        ds = prepare_dataset(root, {"physio": ["hr_lags", "rv_lags"]}, progress_bar=False, subjects=["01"])
    names = ds.provenance["inputs"][ds.runs[0].key]["physio"]["names"]
    assert names == [f"hr_lag{d}s" for d in (0, 4, 8, 12, 16)] + [f"rv_lag{d}s" for d in (0, 4, 8, 12, 16)]
    (bold.parent / f"{stem}_physio.json").write_text(json.dumps({"SamplingFrequency": sf, "StartTime": -3.0, "Columns": ["trigger"]}))
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        ds = prepare_dataset(root, {"physio": "regress"}, progress_bar=False, subjects=["01"])
    assert f"no respiratory trace for this run (no EEG channel typed resp, no 'respiratory' column in {stem}_physio.tsv.gz)" in caplog.text
    assert ds.provenance["inputs"][ds.runs[0].key]["physio"]["names"][-1] == "hr_lag16s"


def test_trigger_offset_and_the_starttime_it_gives(tmp_path):
    """The trigger column's pulses against StartTime (user test 58 #10): about 0 when right, the shift (modulo TR) when not;
    a sidecar without StartTime is refused with the value the first pulse gives."""
    from eeg2fmri.preprocessing.physio import PhysioCoverageError, trigger_offset

    sf, tr = 50.0, 2.0
    trig = np.zeros(int(130 * sf))
    first = int(7.3 * sf)  # the first volume starts 7.3 s after the recording's first sample: StartTime -7.3
    for k in range(60):
        trig[first + int(k * tr * sf): first + int(k * tr * sf) + 3] = 5.0
    off, n = trigger_offset(trig, sf, -7.3, tr)
    assert n == 60 and abs(off) < 1e-9
    off, _ = trigger_offset(trig, sf, -7.3 + 0.5, tr)  # StartTime 0.5 s too late: the pulses appear 0.5 s after the volume starts
    assert abs(off - 0.5) < 1e-9
    off, _ = trigger_offset(trig, sf, -7.3 + 2.5, tr)  # 2.5 s: seen modulo the TR
    assert abs(off - 0.5) < 1e-9
    off, n = trigger_offset(5.0 - trig, sf, -7.3 + 0.5, tr)  # active-low pulses: the same
    assert n == 60 and abs(off - 0.5) < 1e-9
    near_half = np.zeros_like(trig)
    for k in range(60):  # pulses 0.98 and 1.02 s after the volume starts, in turn: half wrap to -0.98 s (a median gave ~0)
        i = first + int(k * tr * sf) + (int(round(1.02 * sf)) if k % 2 else int(round(0.98 * sf)))
        near_half[i: i + 2] = 1.0
    assert abs(abs(trigger_offset(near_half, sf, -7.3, tr)[0]) - 1.0) < 0.03
    per_slice = np.zeros(int(30 * sf))
    per_slice[:: int(0.1 * sf)] = 1.0  # one pulse per slice, not per volume
    assert trigger_offset(per_slice, sf, 0.0, tr) is None and trigger_offset(np.zeros(99), sf, 0.0, tr) is None
    func = tmp_path / "sub-01" / "func"
    func.mkdir(parents=True)
    p = _write_physio(func, "sub-01_task-rest", ["trigger", "cardiac"], np.column_stack([trig, np.sin(np.arange(len(trig)))]), sf, 0.0)
    (func / "sub-01_task-rest_physio.json").write_text(json.dumps({"SamplingFrequency": sf, "Columns": ["trigger", "cardiac"]}))
    with pytest.raises(Eeg2fmriInputError, match=r"missing \['StartTime'\] .* Its 'trigger' column has 60 pulse\(s\), the first at 7.300 s "
                       r"from the recording's start: if that pulse is the BOLD file's first volume, StartTime is -7.300"):
        read_bids_physio(p)
    # a recording that does not overlap the run: StartTime named, and milliseconds suspected when far off (user test 58 #7)
    times = 1.0 + np.arange(60) * 2.0
    with pytest.raises(PhysioCoverageError, match=r"covers -10262.0 to -10142.0 s, .* does not overlap the run at all: check the BIDS "
                       r"StartTime .* a StartTime in milliseconds, or on another clock\? Prepare option physio_incomplete: 'trim'"):
        physio_regressors(times, resp=np.sin(np.arange(6000) / 9.0), resp_sfreq=50.0, resp_start=-10262.0, groups=["rv"])
    with pytest.raises(PhysioCoverageError, match=r"covers 30.0 to 150.0 s, but the volumes' middles run from 1.0 to 119.0 s; expected it "
                       r"to cover the whole run \(BIDS physio: StartTime relative to the first volume\)\. Prepare option") as info:
        physio_regressors(times, resp=np.sin(np.arange(6000) / 9.0), resp_sfreq=50.0, resp_start=30.0, groups=["rv"])
    assert info.value.span == (30.0, 150.0)


def test_prepare_physio_incomplete_trims_or_leaves_runs_unregressed(tiny_bids, tmp_path, caplog, capsys):
    """A BIDS belt recording that stops before the run ends (user test 58 #7): refused by default, the uncovered volumes left
    out with 'trim' (the rest regressed as a full recording of that span would be), the run prepared without regressors
    with 'unregressed'; a trigger column that contradicts StartTime is warned about (#10)."""
    import logging

    from eeg2fmri.commands.prepare import pooling_summary
    from eeg2fmri.datasets import prepare_dataset
    from eeg2fmri.preprocessing.bold import drift_basis
    from eeg2fmri.preprocessing.volumes import regress_confounds

    root = tmp_path / "bids"
    shutil.copytree(tiny_bids, root)
    for f in [*root.rglob("*_channels.tsv"), *root.rglob("*.vhdr")]:  # no ECG channel: the physio file is the only trace
        f.write_text(f.read_text().replace("ECG\tECG\t", "AUX1\tMISC\t").replace("=ECG,", "=AUX1,"))
    bold = sorted((root / "sub-01" / "func").glob("*_bold.nii.gz"))[0]
    stem = bold.name[: -len("_bold.nii.gz")]
    base = prepare_dataset(root, progress_bar=False, subjects=["01"])
    first, stop = base.provenance["inputs"][base.runs[0].key]["volumes"]
    tr = float(np.median(np.diff(base.runs[0].onsets)))
    sf = 25.0
    end = (first + 0.5 * (stop - first)) * tr  # the belt stops half-way through the kept volumes
    t = np.arange(-3.0, end, 1 / sf)
    resp = np.sin(2 * np.pi * 0.23 * t) * (1 + 0.4 * np.sin(2 * np.pi * 0.02 * t))
    trig = np.zeros_like(t)
    from eeg2fmri.io.bold import read_bold

    tr_file = read_bold(bold)[1]
    for k in range(int(end // tr_file) + 1):  # pulses 0.32 s after the volume starts StartTime implies
        i = int(round((3.0 + k * tr_file + 0.32) * sf))
        trig[i: i + 2] = 1.0
    _write_physio(bold.parent, stem, ["respiratory", "trigger"], np.column_stack([resp, trig]), sf, -3.0)
    with pytest.raises(Eeg2fmriInputError, match=r"the respiration recording covers .* physio_incomplete: 'trim' leaves out the volumes"):
        prepare_dataset(root, {"physio": ["rv_lags"]}, progress_bar=False, subjects=["01"])
    with pytest.raises(Eeg2fmriInputError, match=r"unknown physio_incomplete 'drop'; choose one of: 'error', 'trim', 'unregressed'"):
        prepare_dataset(root, {"physio": ["rv_lags"], "physio_incomplete": "drop"}, progress_bar=False, subjects=["01"])
    # datasets --check with the prepare config checks the physio files as prepare will (user test 58 #6)
    from eeg2fmri.cli import main

    capsys.readouterr()
    assert main(["datasets", "--check", str(root), "--subjects", "01", "--config", '{"physio": ["rv_lags"]}']) == 1
    out = capsys.readouterr().out
    assert "physio: sub-01_task-rest_run-1: physiology (respiratory from" in out and "the respiration recording covers -3.0 to" in out
    assert f"{stem}_physio.tsv.gz: 25 Hz, StartTime -3 s, covers -3.0 to" in out and "used: respiratory" in out
    assert "trigger pulses fall +0.320 s from the volume starts StartTime implies (StartTime off?)" in out
    assert "prepare --config '{\"physio\": \"regress\"}' regresses" not in out  # (no advice to do what the config does)
    assert main(["datasets", "--check", str(root), "--subjects", "01", "--config",
                 '{"physio": ["rv_lags"], "physio_incomplete": "trim"}']) == 0
    assert re.search(r"physio: prepare will leave out the \d+ volume\(s\) the recording does not cover", capsys.readouterr().out)
    # the check applies prepare's rules: too little left to trim to is a problem (a review: "OK", then prepare refused)
    short = _write_physio(bold.parent, stem, ["respiratory"], resp[: int(16 * sf), None], sf, -3.0)
    assert main(["datasets", "--check", str(root), "--subjects", "01", "--config",
                 '{"physio": ["rv_lags"], "physio_incomplete": "trim"}']) == 1
    assert "volumes would remain: fewer than" in capsys.readouterr().out
    # a recording that starts late by a few volumes that drop_volumes leaves out is no problem (a review)
    late = np.sin(2 * np.pi * 0.23 * np.arange(0, 400, 1 / sf))
    _write_physio(bold.parent, stem, ["respiratory"], late[:, None], sf, 9.0)
    assert main(["datasets", "--check", str(root), "--subjects", "01", "--config", '{"physio": ["rv_lags"], "drop_volumes": 5}']) == 0
    assert main(["datasets", "--check", str(root), "--subjects", "01", "--config", '{"physio": ["rv_lags"]}']) == 1
    assert ("the recording misses only the first 4 volume(s): prepare stops unless its non-steady-state check (drop_volumes "
            "'auto') happens to leave them out; set drop_volumes: 4") in capsys.readouterr().out
    assert main(["datasets", "--check", str(root), "--subjects", "01", "--config", '{"physio": ["rv_lags"], "drop_volumes": 0}']) == 1
    capsys.readouterr()
    _write_physio(bold.parent, stem, ["respiratory", "trigger"], np.column_stack([resp, trig]), sf, -3.0)
    del short
    assert main(["datasets", "--check", str(root), "--config", '{"physio": "regress", "physio_incomplete": "all"}']) != 0
    assert "--config: unknown physio_incomplete 'all'; choose one of: 'error', 'trim', 'unregressed'" in capsys.readouterr().err
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        ds = prepare_dataset(root, {"physio": ["rv_lags"], "physio_incomplete": "trim"}, progress_bar=False, subjects=["01"])
    assert "trigger column's" in caplog.text and "+0.320 s (on average) from the volume starts its StartTime (-3 s) implies" in caplog.text
    prov = ds.provenance["inputs"][ds.runs[0].key]
    left = prov["physio_trimmed"]["volumes_left_out"]
    n = stop - first
    assert left[0] == 0 and 0.4 * n < left[1] < 0.6 * n and prov["volumes"] == [first, stop - left[1]]
    assert prov["physio_trimmed"]["kept"] == prov["volumes"]
    assert "do not cover the first 0 and the last" in caplog.text
    run = ds.runs[0]
    assert len(run.bold) == len(run.onsets) == n - left[1]
    np.testing.assert_allclose(run.onsets, base.runs[0].onsets[: n - left[1]])
    t_mid = (np.arange(first, stop - left[1]) + 0.5) * tr  # the BOLD file's clock, on which StartTime is given
    x, _, _ = physio_regressors(t_mid, resp=resp, resp_sfreq=sf, resp_start=-3.0, groups=["rv_lags"])
    np.testing.assert_allclose(run.bold, regress_confounds(base.runs[0].bold[: n - left[1]], x, drift=drift_basis(len(x), tr)), atol=1e-4)
    assert any("left out (first+last; physio_incomplete: 'trim') in 1 run(s)" in line for line in pooling_summary(ds))
    # 'unregressed': the whole run, its BOLD untouched, the reason in the manifest
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        ds = prepare_dataset(root, {"physio": ["rv_lags"], "physio_incomplete": "unregressed"}, progress_bar=False, subjects=["01"])
    prov = ds.provenance["inputs"][ds.runs[0].key]
    assert "physio" not in prov and "the respiration recording covers" in prov["physio_unregressed"]
    assert "prepared WITHOUT physiological regressors" in caplog.text
    np.testing.assert_allclose(ds.runs[0].bold, base.runs[0].bold)
    assert any("physiological noise NOT regressed" in line for line in pooling_summary(ds))
    # too little left to trim to: refused, naming the other way out
    _write_physio(bold.parent, stem, ["respiratory"], resp[: int(8 * tr * sf), None], sf, -3.0)
    with pytest.raises(Eeg2fmriInputError, match=r"cover \d of the run's \d+ kept volumes .* expected at least \d+ for prepare option "
                       r"physio_incomplete: 'trim'.* \(physio_incomplete: 'unregressed'\)"):
        prepare_dataset(root, {"physio": ["rv_lags"], "physio_incomplete": "trim"}, progress_bar=False, subjects=["01"])


def test_prepare_stores_physio_regressors_and_benchmark_scores_a_physiology_only_row(tiny_prepared, tmp_path):
    """Prepare keeps each run's physiological regressors (standardised) even without the physio option; benchmark's
    'physiology only' row is a ridge from them alone (sklearn's RidgeCV on the training windows), scored on the same test
    windows: high where the BOLD holds physiological noise, and the note names the models at or below it."""
    import dataclasses

    from sklearn.linear_model import RidgeCV

    from eeg2fmri.datasets.prepared import PreparedDataset, load_prepared
    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.evaluation.protocol import PHYSIOLOGY, physiology_model
    from eeg2fmri.workflows.benchmark import leaderboard_notes, run_benchmark

    run = tiny_prepared.runs[0]
    assert run.physio.shape == (run.n_volumes, 9) and run.physio.dtype == np.float32
    assert run.physio_names[:2] == ["retroicor_c1_cos", "retroicor_c1_sin"] and run.physio_names[-1] == "hr_lag16s"
    np.testing.assert_allclose(run.physio.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(run.physio.std(0), 1, atol=1e-4)
    tiny_prepared.save(tmp_path / "p")
    back = load_prepared(tmp_path / "p")
    np.testing.assert_array_equal(back.runs[1].physio, tiny_prepared.runs[1].physio)
    assert back.runs[1].physio_names == tiny_prepared.runs[1].physio_names
    # BOLD = physiological noise (a fixed map per regressor) + a little noise: the row finds it, the EEG's ridge much less
    rng = np.random.default_rng(0)
    w = rng.standard_normal((9, run.bold.shape[1])).astype(np.float32)
    runs = [dataclasses.replace(r, bold=r.physio @ w + 0.5 * rng.standard_normal(r.bold.shape).astype(np.float32)) for r in tiny_prepared.runs]
    ds = PreparedDataset(runs, tiny_prepared.mask, tiny_prepared.affine, tiny_prepared.tr, tiny_prepared.sfreq, tiny_prepared.ch_names,
                         tiny_prepared.config, tiny_prepared.frame_rate, tiny_prepared.freqs, tiny_prepared.provenance, tiny_prepared.rois)
    split = make_split(ds, "loso", test_subjects=[ds.subjects[0]])
    targets = split_targets(ds, split)
    model, reason = physiology_model(ds, split, targets)
    assert reason is None and model.names == run.physio_names
    train = split.selections["train"]
    x = np.concatenate([ds.runs[i].physio[v] for i, v in train.items()])
    y = np.concatenate([targets["train"][i] for i in train])
    i, v = next(iter(split.selections["test"].items()))
    np.testing.assert_allclose(model.predict(model.windows(i, v)), RidgeCV(alphas=np.logspace(-1, 5, 13)).fit(x, y).predict(ds.runs[i].physio[v]),
                               rtol=1e-4, atol=1e-4)
    bench = run_benchmark(ds, "loso", ["ridge_hrf"], n_boot=20)
    rows = {r["name"]: r for r in bench["leaderboard"]}
    assert rows[PHYSIOLOGY]["role"] == "physiology" and rows[PHYSIOLOGY]["median_r"] > 0.8
    assert rows[PHYSIOLOGY]["median_r"] > rows["ridge_hrf"]["median_r"] + 0.3
    assert any("'physiology only' is a ridge from the physiological regressors alone" in n and "ridge_hrf scores no higher: compare "
               "the per-ROI table" in n for n in leaderboard_notes(bench["leaderboard"]))
    # runs without the same regressors: no row, and the model says why
    runs[1] = dataclasses.replace(runs[1], physio=None, physio_names=None)
    ds2 = PreparedDataset(runs, ds.mask, ds.affine, ds.tr, ds.sfreq, ds.ch_names, ds.config, ds.frame_rate, ds.freqs, ds.provenance, ds.rois)
    assert physiology_model(ds2, split, targets) == (None, "no physiological regressors for run(s) ['sub-02_task-rest_run-1'] (no cardiac "
                                                           "or respiration trace, or none usable)")
    rows2 = run_benchmark(ds2, "loso", ["ridge_hrf"], n_boot=10)["leaderboard"]
    assert PHYSIOLOGY not in {r["name"] for r in rows2}
    assert "no 'physiology only' row: 1 run(s) have no usable physiological regressors" in leaderboard_notes(rows2)


def test_rolling_sd_matches_numpy_on_every_window():
    """The one rolling SD of the belt (respiration volume, ddof 1) and of the BCG coupling report (ddof 0), against
    numpy's std window by window, windows clipped at the edges."""
    from eeg2fmri.utils.stats import rolling_sd

    x = np.random.default_rng(3).standard_normal(257) * 5 + 40  # (a large mean: cumulative sums must not lose it)
    lo = np.array([-5, 0, 10, 100, 250, 256])
    hi = np.array([3, 17, 11, 160, 300, 257])
    for ddof in (0, 1):
        want = [np.std(x[max(a, 0):min(b, 257)], ddof=ddof) if min(b, 257) - max(a, 0) > ddof else 0.0 for a, b in zip(lo, hi)]
        np.testing.assert_allclose(rolling_sd(x, lo, hi, ddof=ddof), want, rtol=1e-7, atol=1e-6)  # (sqrt of a rounding-level variance)
    assert rolling_sd(x, np.array([5]), np.array([5]))[0] == 0.0


def test_a_broken_physio_sidecar_is_refused_clearly_and_never_stops_prepare_without_the_option(tiny_bids, tmp_path):
    """A sidecar with "StartTime": null (a review: TypeError in prepare, which reads physio files for the physiology-only row
    even without the option): a clear error where the option asks for it, no row and no failure where it does not."""
    from eeg2fmri.datasets import prepare_dataset

    root = tmp_path / "bids"
    shutil.copytree(tiny_bids, root)
    for f in [*root.rglob("*_channels.tsv"), *root.rglob("*.vhdr")]:
        f.write_text(f.read_text().replace("ECG\tECG\t", "AUX1\tMISC\t").replace("=ECG,", "=AUX1,"))
    bold = sorted((root / "sub-01" / "func").glob("*_bold.nii.gz"))[0]
    stem = bold.name[: -len("_bold.nii.gz")]
    p = _write_physio(bold.parent, stem, ["cardiac"], np.sin(np.arange(5000) / 3.0)[:, None], 25.0, 0.0)
    (bold.parent / f"{stem}_physio.json").write_text(json.dumps({"SamplingFrequency": 25, "StartTime": None, "Columns": ["cardiac"]}))
    with pytest.raises(Eeg2fmriInputError, match=r"_physio.json: expected StartTime as a number \(s\), got None; fix the sidecar"):
        read_bids_physio(p)
    (bold.parent / f"{stem}_physio.json").write_text(json.dumps([1, 2]))
    with pytest.raises(Eeg2fmriInputError, match=r"_physio.json: expected a JSON object \(SamplingFrequency, StartTime, Columns\), got a list"):
        read_bids_physio(p)
    ds = prepare_dataset(root, progress_bar=False, subjects=["01"])
    assert ds.runs[0].physio is None
