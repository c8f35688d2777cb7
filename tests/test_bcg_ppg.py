"""Pulse-artefact (BCG) removal with heartbeats from a pulse oximeter (PPG) instead of an ECG (user test 58 #8): a PPG
channel of the EEG file, a BIDS ``*_physio.tsv.gz`` cardiac column on the EEG's clock, the estimated delay from the pulse
peak to the artefact, and the error messages of the Python API, ``eeg2fmri clean`` and the prepare option ``clean``.

The simulated EEG (6 channels, 250 Hz, 80 s) holds a BCG locked to the R peaks of a neurokit2 ECG (two damped
oscillations 0.12-0.8 s after every R peak, random channel gains); the PPG's systolic peaks lag the R peaks by the pulse
transit time (250 ms, 5 ms jitter)."""

from __future__ import annotations

import gzip
import json
import logging

import mne
import numpy as np
import pytest

from eeg2fmri.preprocessing.cleaning import (
    check_clean_options,
    clean_for_prepare,
    clean_raw,
    estimate_bcg_delay,
    parse_clean_steps,
    physio_file_beats,
    remove_bcg_artifacts,
    trace_beats,
)
from eeg2fmri.utils.validation import Eeg2fmriInputError

SF, DUR, N_EEG, PTT = 250.0, 80.0, 6, 0.25


def _make(seed: int = 0, heart_rate: float = 68.0, ptt: float = PTT) -> dict:
    """EEG (pink noise 5 uV + 10 Hz alpha 4 uV) + BCG (30 uV) locked to the R peaks of an ECG channel, and a PPG channel
    (type misc) peaking ``ptt`` s after every R peak."""
    import neurokit2 as nk

    rng = np.random.default_rng(seed)
    n = int(DUR * SF)
    t = np.arange(n) / SF
    ecg = nk.ecg_simulate(duration=int(DUR), sampling_rate=int(SF), heart_rate=heart_rate, heart_rate_std=3, random_state=seed)[:n]
    r = np.asarray(nk.ecg_peaks(ecg, sampling_rate=int(SF))[1]["ECG_R_Peaks"], dtype=float) / SF
    b1, b2 = np.zeros(n), np.zeros(n)
    for rk in r:
        lo, hi = int(rk * SF), min(n, int((rk + 0.9) * SF))
        u1, u2 = t[lo:hi] - rk - 0.12, t[lo:hi] - rk - 0.2
        b1[lo:hi] += np.where(u1 > 0, np.exp(-u1 / 0.1) * np.sin(2 * np.pi * 4.5 * u1), 0.0)
        b2[lo:hi] += np.where((u2 > 0) & (u2 < 0.6), np.exp(-u2 / 0.15) * np.sin(2 * np.pi * 2.5 * u2 + 0.5), 0.0)
    bcg = np.outer(30 * rng.uniform(0.5, 1.5, N_EEG) * np.sign(rng.standard_normal(N_EEG)), b1) + np.outer(15 * rng.standard_normal(N_EEG), b2)
    f = np.fft.rfftfreq(n, 1 / SF)
    eeg = np.fft.irfft(np.fft.rfft(rng.standard_normal((N_EEG, n)), axis=1) / np.sqrt(np.maximum(f, 0.5)), n, axis=1)
    eeg *= 5 / eeg.std(axis=1, keepdims=True)
    eeg += 4 * np.sin(2 * np.pi * 10 * t + rng.uniform(0, 2 * np.pi, (N_EEG, 1)))
    p = r + ptt + 0.005 * rng.standard_normal(len(r))
    ppg = 0.02 * rng.standard_normal(n)
    for pk in p:  # a systolic upstroke, a slower decay and a dicrotic wave
        m = (t > pk - 0.35) & (t < pk + 0.7)
        u = t[m] - pk
        ppg[m] += np.where(u < 0, np.exp(-0.5 * (u / 0.09) ** 2), np.exp(-u / 0.25)) + 0.25 * np.exp(-0.5 * ((u - 0.3) / 0.06) ** 2)
    info = mne.create_info([f"E{i}" for i in range(N_EEG)] + ["ECG", "PPG"], SF, ["eeg"] * N_EEG + ["ecg", "misc"])
    raw = mne.io.RawArray(np.vstack([(eeg + bcg) * 1e-6, ecg[None] * 1e-3, ppg[None]]), info, verbose=False)
    return dict(raw=raw, eeg=eeg, bcg=bcg, r=r, ppg_times=p, ppg=ppg)


@pytest.fixture(scope="module")
def sim():
    return _make()


def _locked(err: np.ndarray, r: np.ndarray) -> float:
    """Mean power of the R-peak-locked average (0-0.8 s after every R peak) of ``err`` (channels x samples)."""
    idx = np.round(r * SF).astype(int)
    idx = idx[(idx > 0) & (idx + int(0.8 * SF) < err.shape[1])]
    avg = np.mean([err[:, i : i + int(0.8 * SF)] for i in idx], axis=0)
    return float(np.mean(avg**2))


def _residual(cleaned, sim) -> float:
    """The BCG left in (R-locked power of cleaned - true EEG) over the BCG's own R-locked power."""
    return _locked(cleaned.get_data(picks="eeg") * 1e6 - sim["eeg"], sim["r"]) / _locked(sim["bcg"], sim["r"])


def _truth_delay(sim, ptt: float = PTT) -> float:
    """The delay the estimator should find for beats ``ptt`` after the R peaks: its choice for R peaks on the BCG alone, - ptt."""
    return estimate_bcg_delay(sim["bcg"], SF, sim["r"])[0] - ptt


@pytest.mark.parametrize("method", ["aas", "pca_obs"])
def test_pulse_channel_cleans_nearly_as_well_as_the_ecg(sim, method):
    raw = sim["raw"]
    before = raw.get_data().copy()
    by_ecg, rep_ecg = remove_bcg_artifacts(raw, method=method, coupling=False)
    by_ppg, rep = remove_bcg_artifacts(raw, method=method, pulse_channel="PPG", coupling=False)
    np.testing.assert_array_equal(raw.get_data(), before)  # the input is not modified
    assert rep_ecg["beats"] == "ecg" and rep_ecg["beat_delay"] == "none" and rep_ecg["beat_delay_s"] == 0.0
    assert rep["beats"] == "pulse" and rep["beat_kind"] == "ppg" and rep["pulse_channel"] == "PPG" and rep["ecg_channel"] is None
    assert rep["beat_source"] == "pulse channel 'PPG'" and rep["beat_delay"] == "estimated"
    assert abs(rep["n_beats"] - rep_ecg["n_beats"]) <= 2
    assert rep["delay_estimate"]["peak_ratio"] > 2.0 and rep["delay_estimate"]["search_s"] == [-0.5, 0.5]
    # the detected PPG peaks sit a few ms from the true ones (band-passed upstroke): the delay absorbs that
    assert abs(rep["beat_delay_s"] - _truth_delay(sim)) < 0.02
    res_ecg, res_ppg, res_none = _residual(by_ecg, sim), _residual(by_ppg, sim), _residual(raw, sim)
    assert res_none == pytest.approx(1.0, abs=0.05)
    assert res_ecg < 0.12 and res_ppg < 1.3 * res_ecg + 0.01, (res_ecg, res_ppg)
    # the ECG and the PPG are left as recorded
    np.testing.assert_array_equal(by_ppg.get_data(picks=["ECG", "PPG"]), raw.get_data(picks=["ECG", "PPG"]))


@pytest.mark.parametrize("shift", [-0.15, 0.25, 0.4])
def test_delay_estimate_finds_the_shift_of_the_beats(sim, shift):
    """Beats ``shift`` s after the R peaks (negative: before them) get the delay that undoes it, within 2 samples."""
    x = sim["raw"].get_data(picks="eeg")
    d_r, _ = estimate_bcg_delay(x, SF, sim["r"])
    d, info = estimate_bcg_delay(x, SF, sim["r"] + shift)
    assert abs(d - _truth_delay(sim, shift)) <= 2 / SF and abs((d - d_r) + shift) <= 2 / SF, (d, d_r)
    assert len(info["profile"]) == len(info["profile_s"]) and max(info["profile"]) == 1.0
    assert info["n_beats"] <= len(sim["r"]) - 1  # beats whose span of the search leaves the recording are left out
    # EEG without a beat-locked artefact scores low (the warning's threshold is 1.5)
    assert estimate_bcg_delay(sim["eeg"], SF, sim["r"] + shift)[1]["peak_ratio"] < 1.5


def test_estimated_delay_matters_when_the_pulse_lags_far():
    """95 bpm and a 400 ms pulse transit time: unmoved PPG beats put the artefact across the AAS epochs' edges (residual
    about twice the ECG's); the estimated delay brings it back to the ECG's."""
    far = _make(seed=1, heart_rate=95.0, ptt=0.4)
    by_ecg, _ = remove_bcg_artifacts(far["raw"], method="aas", coupling=False)
    est, rep = remove_bcg_artifacts(far["raw"], method="aas", pulse_channel="PPG", coupling=False)
    unmoved, rep0 = remove_bcg_artifacts(far["raw"], method="aas", pulse_channel="PPG", beat_delay=0.0, coupling=False)
    assert rep0["beat_delay"] == "given" and rep0["beat_delay_s"] == 0.0 and rep0["delay_estimate"] is None
    assert abs(rep["beat_delay_s"] - _truth_delay(far, 0.4)) < 0.02
    r_ecg, r_est, r0 = _residual(by_ecg, far), _residual(est, far), _residual(unmoved, far)
    assert r_est < 1.2 * r_ecg and r0 > 1.5 * r_est, (r_ecg, r_est, r0)


@pytest.mark.parametrize("method", ["aas", "pca_obs"])
def test_beats_moved_across_the_recording_edges(sim, method):
    """Given beats near both ends (some moved before the first sample or after the last) are dropped or cleaned there
    without index errors; the data stay finite and the report counts the beats kept."""
    raw = sim["raw"]
    beats = np.r_[0.05, sim["ppg_times"][(sim["ppg_times"] > 1.0) & (sim["ppg_times"] < DUR - 1.0)], DUR - 0.02]
    for delay in (-0.45, 0.45):
        out, rep = remove_bcg_artifacts(raw, method=method, beat_times=beats, beat_delay=delay, coupling=False)
        moved = beats + delay
        assert rep["n_beats"] == int(np.sum((moved > 0) & (moved < raw.times[-1])))
        assert np.isfinite(out.get_data()).all() and rep["beat_delay"] == "given"
    # and estimated: the first and last beats' span of the search leaves the recording (left out of the average)
    out, rep = remove_bcg_artifacts(raw, method=method, beat_times=beats, beat_source="test beats", coupling=False)
    assert rep["beats"] == "given" and rep["beat_source"] == "test beats" and rep["delay_estimate"]["n_beats"] < len(beats)
    assert np.isfinite(out.get_data()).all() and _residual(out, sim) < 0.2


def _write_physio(folder, stem: str, x: np.ndarray, sfreq: float, start: float, columns=("cardiac",)) -> object:
    path = folder / f"{stem}_physio.tsv.gz"
    with gzip.open(path, "wt") as fh:
        np.savetxt(fh, np.atleast_2d(x).T if np.ndim(x) == 1 else x, delimiter="\t", fmt="%.6f")
    (folder / f"{stem}_physio.json").write_text(json.dumps({"SamplingFrequency": sfreq, "StartTime": start, "Columns": list(columns)}))
    return path


def test_physio_file_beats_on_the_eeg_clock(sim, tmp_path, caplog):
    """A 100 Hz BIDS pulse log whose StartTime is -3 s (3 s before the first volume, which is at 5 s of the EEG): its
    beats land on the EEG's clock where the EEG file's own PPG channel has them, finer than the log's 10 ms samples."""
    bold_start, start, sf = 5.0, -3.0, 100.0
    first = bold_start + start  # EEG time of the log's first sample
    t_log = first + np.arange(int((DUR - first - 1.0) * sf)) / sf
    log = np.interp(t_log, sim["raw"].times, sim["ppg"])
    f = _write_physio(tmp_path, "sub-01_task-rest", log, sf, start)
    times, kind, source = physio_file_beats([f], bold_start)
    ref = trace_beats(sim["ppg"], SF)[0]
    assert kind == "ppg" and source == "sub-01_task-rest_physio.tsv.gz cardiac column"
    near = np.array([ref[np.argmin(np.abs(ref - b))] - b for b in times])
    assert len(times) >= len(ref) - 4 and np.median(np.abs(near)) < 0.004, np.median(np.abs(near))
    # prepare's cleaning step with bcg_beats 'physio': the file's beats, moved by the estimated delay
    onsets = bold_start + 2.0 * np.arange(36)
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        cleaned, rep = clean_for_prepare(sim["raw"], {"bcg": "aas", "bcg_beats": "physio"}, tr=2.0, marker=None, onsets=onsets,
                                         where="run-1", physio_files=[f], bold_start=bold_start)
    b = rep["bcg"]
    assert b["beats"] == "given" and b["beat_source"] == "sub-01_task-rest_physio.tsv.gz cardiac column (pulse detector)"
    assert b["beat_delay"] == "estimated" and abs(b["beat_delay_s"] - _truth_delay(sim)) < 0.02
    assert _residual(cleaned, sim) < 0.15 and "left in" not in caplog.text
    # a log that stops 20 s before the last volume ends: said
    short = _write_physio(tmp_path, "sub-02_task-rest", log[: int((onsets[-1] - 18.0 - first) * sf)], sf, start)
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        clean_for_prepare(sim["raw"], {"bcg": "aas", "bcg_beats": "physio"}, tr=2.0, marker=None, onsets=onsets, where="run-2",
                          physio_files=[short], bold_start=bold_start)
    assert "run-2: the heartbeats of sub-02_task-rest_physio.tsv.gz cardiac column run from" in caplog.text
    assert "the pulse artifact of 1" in caplog.text and "s of the scan is left in" in caplog.text


def test_clean_options_for_the_heartbeats():
    assert check_clean_options({"bcg": "aas", "bcg_beats": "physio"}) == {"gradient": None, "bcg": "aas", "bcg_beats": "physio"}
    assert parse_clean_steps("bcg=aas,bcg_beats=physio") == {"gradient": None, "bcg": "aas", "bcg_beats": "physio"}
    assert parse_clean_steps("bcg,pulse_channel=Pleth,bcg_delay=-0.2") == {"gradient": None, "bcg": "pca_obs", "bcg_crossfade": 0.5,
                                                                          "pulse_channel": "Pleth", "bcg_delay": -0.2, "bcg_beats": "pulse"}
    w = "prepare option clean"
    with pytest.raises(Eeg2fmriInputError, match=rf"{w}: expected bcg_beats 'ecg' \(the ECG channel of the EEG file\), 'pulse' .* 'physio' "
                       r"\(the run's BIDS \*_physio.tsv.gz cardiac column\), got 'ppg'; e.g. \{'bcg': 'aas', 'bcg_beats': 'physio'\}"):
        check_clean_options({"bcg": "aas", "bcg_beats": "ppg"})
    with pytest.raises(Eeg2fmriInputError, match=rf"{w}: bcg_beats='physio' sets the heartbeats of the pulse-artifact removal, but bcg is off; "
                       r"expected bcg 'aas' or 'pca_obs' with it"):
        check_clean_options({"gradient": "aas", "bcg_beats": "physio"})
    with pytest.raises(Eeg2fmriInputError, match=rf"{w}: pulse_channel='PPG' takes the heartbeats from a pulse-oximeter channel, but "
                       r"bcg_beats is 'physio'; expected bcg_beats 'pulse' with it"):
        check_clean_options({"bcg": "aas", "bcg_beats": "physio", "pulse_channel": "PPG"})
    with pytest.raises(Eeg2fmriInputError, match=rf"{w}: ecg_channel='EKG' takes the R peaks from an ECG channel, but bcg_beats is 'pulse'"):
        check_clean_options({"bcg": "aas", "bcg_beats": "pulse", "ecg_channel": "EKG"})
    with pytest.raises(Eeg2fmriInputError, match=rf"{w}: expected bcg_delay 'auto' \(estimated for pulse-oximeter beats\) or seconds from "
                       r"-1 to 1 added to the heartbeats, got 2; e.g. bcg_delay -0.2"):
        check_clean_options({"bcg": "aas", "bcg_beats": "pulse", "bcg_delay": 2})
    with pytest.raises(Eeg2fmriInputError, match=rf"{w}: expected pulse_channel as a channel name, got 3"):
        check_clean_options({"bcg": "aas", "bcg_beats": "pulse", "pulse_channel": 3})
    with pytest.raises(Eeg2fmriInputError, match=r"--clean: expected a comma-separated list of 'gradient' and 'bcg' .* bcg_beats=\.\.\., "
                       r"pulse_channel=\.\.\., ecg_channel=\.\.\., bcg_delay=\.\.\.\), got 'beats=physio'"):
        parse_clean_steps("bcg,beats=physio")


def test_no_ecg_errors_name_the_options_of_each_interface(sim, tmp_path):
    raw = sim["raw"].copy().drop_channels(["ECG"])
    with pytest.raises(Eeg2fmriInputError, match=r"rec: expected an ECG channel \(channel type 'ecg'\) .* found none .*\(channel\(s\) "
                       r"\['PPG'\] look like a pulse oximeter: pulse_channel='PPG'\); set its type, pass ecg_channel=<name>, "
                       r"pulse_channel=<name> .* or beat_times .*physio_file_beats"):
        clean_raw(raw, gradient=None, bcg="aas", where="rec")
    with pytest.raises(Eeg2fmriInputError, match=r"look like a pulse oximeter: --pulse-channel PPG\); pass --ecg-channel <name> .* "
                       r"--pulse-channel <name> .* --physio FILE_physio.tsv.gz .*--physio-start.* or run with --bcg none"):
        clean_raw(raw, gradient=None, bcg="aas", caller="clean", where="rec")
    with pytest.raises(Eeg2fmriInputError, match=r"clean option pulse_channel: 'PPG'\); take the heartbeats from the run's BIDS "
                       r"\*_physio.tsv.gz cardiac column \(clean option bcg_beats: 'physio'; --clean bcg,bcg_beats=physio or --config"):
        clean_for_prepare(raw, {"bcg": "aas"}, tr=2.0, marker=None, onsets=5.0 + 2.0 * np.arange(36), where="rec", physio_files=[],
                          bold_start=5.0)
    # prepare names the run's physio file when it has a cardiac column
    f = _write_physio(tmp_path, "sub-01_task-rest", np.interp(np.arange(0, 70, 0.01), raw.times, sim["ppg"]), 100.0, 0.0)
    with pytest.raises(Eeg2fmriInputError, match=r"or clean without bcg \(--clean gradient\)\. This run has a BIDS physio file with a "
                       r"cardiac column, sub-01_task-rest_physio.tsv.gz: bcg_beats 'physio' uses it\."):
        clean_for_prepare(raw, {"bcg": "aas"}, tr=2.0, marker=None, onsets=5.0 + 2.0 * np.arange(30), where="rec", physio_files=[f],
                          bold_start=5.0)
    # synthesis (no physio files known): the options it has
    with pytest.raises(Eeg2fmriInputError, match=r"rec: clean option bcg_beats='physio' takes the heartbeats from the run's BIDS "
                       r"\*_physio.tsv.gz, which prepare finds beside the BOLD; here there is none \(synthesis reads the EEG alone"):
        clean_for_prepare(raw, {"bcg": "aas", "bcg_beats": "physio"}, tr=2.0, marker=None, onsets=np.zeros(0), where="rec")
    with pytest.raises(Eeg2fmriInputError, match=r"--clean bcg=aas,bcg_beats=pulse,pulse_channel=<name>\) or an ECG channel"):
        clean_for_prepare(raw, {"bcg": "aas"}, tr=2.0, marker=None, onsets=np.zeros(0), where="rec")
    with pytest.raises(Eeg2fmriInputError, match=r"rec: clean option bcg_beats='physio' takes the heartbeats from a BIDS \*_physio.tsv.gz "
                       r"cardiac column, found no physio file beside the BOLD; expected a <bold stem>_physio.tsv.gz"):
        clean_for_prepare(raw, {"bcg": "aas", "bcg_beats": "physio"}, tr=2.0, marker=None, onsets=np.zeros(0), where="rec",
                          physio_files=[], bold_start=0.0)
    resp = _write_physio(tmp_path, "sub-03_task-rest", np.sin(np.arange(3000) / 9.0), 50.0, 0.0, columns=("respiratory",))
    with pytest.raises(Eeg2fmriInputError, match=r"found sub-03_task-rest_physio.tsv.gz \(respiratory\); expected"):
        clean_for_prepare(raw, {"bcg": "aas", "bcg_beats": "physio"}, tr=2.0, marker=None, onsets=np.zeros(0), where="rec",
                          physio_files=[resp], bold_start=0.0)
    with pytest.raises(Eeg2fmriInputError, match=r"rec: expected a pulse-oximeter \(PPG\) channel named 'Pleth', found none among "
                       r"\['E0', .*\]; pass the pulse channel's name \(--pulse-channel <name>\)"):
        clean_raw(raw, gradient=None, bcg="aas", pulse_channel="Pleth", caller="clean", where="rec")
    two = raw.copy().add_channels([mne.io.RawArray(raw.get_data(picks=["PPG"]), mne.create_info(["Pulse2"], SF, ["misc"]), verbose=False)])
    with pytest.raises(Eeg2fmriInputError, match=r"rec: expected one pulse-oximeter channel named PPG\*, Pulse\* or Pleth\*, found 2 "
                       r"\(\['PPG', 'Pulse2'\]\) .*; name it \(clean option pulse_channel: <name>\)"):
        clean_for_prepare(two, {"bcg": "aas", "bcg_beats": "pulse"}, tr=2.0, marker=None, onsets=np.zeros(0), where="rec")
    with pytest.raises(Eeg2fmriInputError, match=r"rec: expected finite heartbeat times .* got 1 non-finite value\(s\); drop them"):
        remove_bcg_artifacts(raw, beat_times=np.r_[sim["ppg_times"], np.nan], where="rec")
    with pytest.raises(Eeg2fmriInputError, match=r"rec: found 3 heartbeat\(s\) within the recording from the given beat times, expected "
                       r"at least 10"):
        remove_bcg_artifacts(raw, beat_times=np.array([5.0, 6.0, 7.0, 300.0]), where="rec")
    with pytest.raises(Eeg2fmriInputError, match=r"EEG: expected a delay search range \(low, high\) and a window \(start, stop\) in seconds "
                       r"with low < high and start < stop, got search=\(0.5, -0.5\)"):
        estimate_bcg_delay(sim["eeg"], SF, sim["r"], search=(0.5, -0.5))
    with pytest.raises(Eeg2fmriInputError, match=r"EEG: 3 heartbeat\(s\) lie 0.5 s or more from the start and 0.9 s from the end of the "
                       r"recording, expected at least 5"):
        estimate_bcg_delay(sim["eeg"], SF, sim["r"][:3])


def test_clean_command_with_a_pulse_channel_or_a_physio_file(sim, tmp_path, capsys):
    from eeg2fmri.cli import main

    raw = sim["raw"].copy().drop_channels(["ECG"])
    raw.set_annotations(mne.Annotations(5.0 + 2.0 * np.arange(36), 0.0, "R128"))
    src = tmp_path / "rec_raw.fif"
    raw.save(src, verbose=False)
    out = tmp_path / "clean_raw.fif"
    assert main(["clean", str(src), "--out", str(out), "--gradient", "none", "--bcg", "aas"]) != 0
    assert "look like a pulse oximeter: --pulse-channel PPG); pass --ecg-channel <name>" in capsys.readouterr().err
    assert main(["clean", str(src), "--out", str(out), "--gradient", "none", "--bcg", "aas", "--pulse-channel", "PPG"]) == 0
    text = capsys.readouterr().out
    assert "bcg: aas with" in text and "beats from pulse channel 'PPG'" in text and "bcg: beats moved by -2" in text
    direct, _ = clean_raw(raw, gradient=None, bcg="aas", pulse_channel="PPG")
    np.testing.assert_allclose(mne.io.read_raw_fif(out, verbose=False).get_data(), direct.get_data(), rtol=1e-5, atol=1e-11)  # (float32 FIF)
    # a BIDS physio file: its time 0 at the first R128 marker (5 s), or where --physio-start puts it
    log = np.interp(5.0 + np.arange(0, 70, 0.01), raw.times, sim["ppg"])
    f = _write_physio(tmp_path, "sub-01_task-rest", log, 100.0, 0.0)
    rep = tmp_path / "rep.json"
    assert main(["clean", str(src), "--out", str(out), "--gradient", "none", "--bcg", "aas", "--physio", str(f), "--report", str(rep),
                 "--overwrite"]) == 0
    text = capsys.readouterr().out
    assert "physio: sub-01_task-rest_physio.tsv.gz's time 0 placed at the first 'R128' marker, 5.000 s of the EEG" in text
    b = json.loads(rep.read_text())["bcg"]
    assert b["beat_source"] == "sub-01_task-rest_physio.tsv.gz cardiac column (pulse detector)"
    assert abs(b["beat_delay_s"] - _truth_delay(sim)) < 0.02
    assert main(["clean", str(src), "--out", str(out), "--gradient", "none", "--bcg", "aas", "--physio", str(f), "--physio-start", "5.0",
                 "--bcg-delay", "-0.2", "--report", str(rep), "--overwrite"]) == 0
    assert "beats moved by -200 ms (given)" in capsys.readouterr().out
    assert json.loads(rep.read_text())["bcg"]["beat_delay_s"] == -0.2
    for args, msg in (
        (["--physio-start", "5"], "--physio-start: expected together with --physio FILE"),
        (["--pulse-channel", "PPG", "--physio", str(f)], "--pulse-channel and --physio: expected one source of heartbeats, got 2"),
        (["--bcg-delay", "late"], "--bcg-delay: expected --bcg-delay 'auto' (estimated for pulse-oximeter beats) or seconds from -1 to 1"),
        (["--physio", str(tmp_path / "none_physio.tsv.gz")], "none_physio.tsv.gz: --physio file not found"),
    ):
        assert main(["clean", str(src), "--out", str(out), "--gradient", "none", "--bcg", "aas", "--overwrite", *args]) != 0
        assert msg in capsys.readouterr().err
    assert main(["clean", str(src), "--out", str(out), "--bcg", "none", "--pulse-channel", "PPG", "--overwrite"]) != 0
    assert "--pulse-channel: sets the heartbeats of the pulse-artifact removal, but --bcg is none" in capsys.readouterr().err


def test_prepare_takes_the_heartbeats_from_the_runs_physio_file(tmp_path):
    """prepare with clean {"bcg": "aas", "bcg_beats": "physio"} on a simulated in-scanner run whose EEG file has no ECG:
    the beats of the BIDS pulse log (100 Hz, StartTime -5 s, peaks 250 ms after the simulation's R peaks) are placed on the
    EEG's clock at its first volume (7.7 s into the EEG), so the estimated delay is the R peaks' minus 250 ms; without
    bcg_beats the refusal names the run's physio file."""
    import shutil

    from eeg2fmri.datasets import prepare_dataset
    from eeg2fmri.preprocessing.cleaning import find_markers
    from eeg2fmri.simulate import simulate_dataset

    root = simulate_dataset(tmp_path / "bids", n_subjects=1, minutes=1.0, n_channels=12, n_regions=4, voxel_size=12.0,
                            scanner_artifacts=["bcg"], progress_bar=False)
    vhdr = next(root.rglob("*_eeg.vhdr"))
    from eeg2fmri.io.eeg import read_eeg

    raw = read_eeg(vhdr, preload=True)
    sf = float(raw.info["sfreq"])
    r = trace_beats(raw.get_data(picks=["ECG"])[0], sf, kind="ecg")[0]
    first = float(find_markers(raw, ("R128",))[0][0])
    d_r = estimate_bcg_delay(raw.get_data(picks=[c for c in raw.ch_names if c not in ("ECG", "EOG")]), sf, r)[0]
    for f in [*root.rglob("*_channels.tsv"), vhdr]:  # no ECG channel: the physio file is the only heartbeat
        f.write_text(f.read_text(encoding="utf-8").replace("ECG\tECG\t", "AUX1\tMISC\t").replace("=ECG,", "=AUX1,"), encoding="utf-8")
    t_file = -5.0 + np.arange(int((raw.times[-1] - first + 5.0 - 0.5) * 100)) / 100.0  # the log's clock: 0 at the first volume
    ppg = np.zeros_like(t_file)
    for pk in r + PTT - first:
        u = t_file - pk
        m = (u > -0.35) & (u < 0.7)
        ppg[m] += np.where(u[m] < 0, np.exp(-0.5 * (u[m] / 0.09) ** 2), np.exp(-u[m] / 0.25)) + 0.25 * np.exp(-0.5 * ((u[m] - 0.3) / 0.06) ** 2)
    ppg += 0.02 * np.random.default_rng(5).standard_normal(len(ppg))
    bold = next(root.rglob("*_bold.nii.gz"))
    _write_physio(bold.parent, bold.name[: -len("_bold.nii.gz")], ppg, 100.0, -5.0)
    bands = {"theta": (4.0, 7.0), "alpha": (8.0, 12.0)}
    with pytest.raises(Eeg2fmriInputError, match=r"expected an ECG channel .*\(clean option bcg_beats: 'physio'.* This run has a BIDS physio "
                       r"file with a cardiac column, sub-01_task-rest_run-1_physio.tsv.gz: bcg_beats 'physio' uses it\."):
        prepare_dataset(root, {"clean": {"bcg": "aas"}, "bands": bands}, progress_bar=False)
    ds = prepare_dataset(root, {"clean": {"bcg": "aas", "bcg_beats": "physio"}, "bands": bands}, progress_bar=False)
    assert ds.config.clean == {"gradient": None, "bcg": "aas", "bcg_beats": "physio"}
    b = next(iter(ds.provenance["inputs"].values()))["cleaning"]["bcg"]
    assert b["beat_source"] == "sub-01_task-rest_run-1_physio.tsv.gz cardiac column (pulse detector)" and b["beat_delay"] == "estimated"
    assert abs(b["n_beats"] - len(r)) <= 2 and abs(b["beat_delay_s"] - (d_r - PTT)) < 0.02, (b["beat_delay_s"], d_r)
    shutil.rmtree(root)


def test_r_peaks_of_a_trace_of_unknown_kind_are_moved_only_where_the_artefact_is_clear(sim):
    """beat_kind='qrs' (R peaks a QRS detector found in a BIDS 'cardiac' column, a review: an ECG column's R peaks were
    moved by a guessed 0.39 s): the delay is estimated where the artefact is clear, else the R peaks stay (delay 0)."""
    raw = sim["raw"]
    _, rep = remove_bcg_artifacts(raw, method="aas", beat_times=sim["r"], beat_kind="qrs", coupling=False)
    assert rep["beat_delay"] == "estimated" and abs(rep["beat_delay_s"]) < 0.02  # the R peaks' own place
    clean = mne.io.RawArray(np.vstack([sim["eeg"] * 1e-6, raw.get_data(picks=["ECG", "PPG"])]), raw.info, verbose=False)
    _, rep0 = remove_bcg_artifacts(clean, method="aas", beat_times=sim["r"], beat_kind="qrs", coupling=False)
    assert rep0["beat_delay_s"] == 0.0 and rep0["beat_delay"].startswith("none (R peaks; no clear artefact")
    _, rep_ppg = remove_bcg_artifacts(clean, method="aas", beat_times=sim["r"], beat_kind="ppg", coupling=False)
    assert rep_ppg["beat_delay"] == "estimated"  # (pulse peaks: a guess, warned about)
