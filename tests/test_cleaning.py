"""Gradient (AAS) and pulse (BCG) artifact removal on tiny simulated in-scanner EEG with ground truth."""

from __future__ import annotations

import json
import re

import mne
import numpy as np
import pytest

from eeg2fmri.datasets.prepared import PrepareConfig, eeg_representation
from eeg2fmri.preprocessing.cleaning import (
    artifact_power_report,
    check_clean_options,
    clean_raw,
    parse_clean_steps,
    remove_bcg_artifacts,
    remove_gradient_artifacts,
)
from eeg2fmri.simulate.artifacts import simulate_scanner_eeg
from eeg2fmri.utils.validation import Eeg2fmriInputError

SF, TR = 250.0, 2.0
BANDS = {"theta": (4.0, 7.0), "alpha": (8.0, 12.0), "beta": (15.0, 25.0), "gamma": (30.0, 45.0)}


@pytest.fixture(scope="module")
def grad_sim():
    return simulate_scanner_eeg(n_channels=5, n_volumes=90, n_slices=20, kinds=("gradient",), random_state=3)


@pytest.fixture(scope="module")
def bcg_sim():
    return simulate_scanner_eeg(n_channels=3, n_volumes=30, kinds=("bcg",), random_state=4)


def _bandpower_r(cleaned, sim) -> np.ndarray:
    """Correlation with the ground truth of every (channel, band) band-power series, as prepare computes them."""
    cfg = PrepareConfig(bands=BANDS, frames_per_tr=4)
    on = np.round(sim["volume_onsets"] * SF) / SF
    a = eeg_representation(cleaned, cfg, tr=TR, onsets=on)["features"]
    b = eeg_representation(sim["clean"], cfg, tr=TR, onsets=on)["features"]
    return np.array([[np.corrcoef(a[:, c, k], b[:, c, k])[0, 1] for k in range(a.shape[2])] for c in range(a.shape[1])])


def test_aas_recovers_the_artifact_free_eeg(grad_sim):
    raw = grad_sim["raw"]
    before = raw.get_data().copy()
    cleaned, rep = clean_raw(raw, gradient="aas", bcg=None)
    np.testing.assert_array_equal(raw.get_data(), before)  # the input is not modified
    assert cleaned is not raw
    g = rep["gradient"]
    assert g["epochs"] == "volume" and g["n_epochs"] == 90 and g["epoch_samples"] == 500
    assert rep["artifact_power"]["volume_reduction_db"] > 20.0
    r = _bandpower_r(cleaned, grad_sim)
    uncleaned = _bandpower_r(raw, grad_sim)
    assert np.median(r) > 0.9 and r.min() > 0.8, r
    assert np.median(r) > np.median(uncleaned) + 0.3  # the artifact really spoilt the features
    # the residual is far smaller than the artifact
    eeg = mne.pick_types(raw.info, eeg=True)
    resid = (cleaned.get_data()[eeg] - grad_sim["clean"].get_data()[eeg]).std(axis=1)
    art = grad_sim["artifacts"]["gradient"].std(axis=1) * 1e-6
    assert np.all(resid < 0.02 * art)


def test_lost_volume_markers_are_filled_where_the_artifact_goes_on(grad_sim, caplog):
    """User test 20: two lost R128 markers left their volumes uncorrected (540 uV of artefact against 12-17 uV elsewhere)
    and nothing said so; the epochs are put back where the data go on at the artefact's size, not across a pause."""
    import logging

    raw = grad_sim["raw"].copy()
    vol = np.flatnonzero(raw.annotations.description == "Response/R128")
    raw.annotations.delete(vol[[40, 41]])  # volumes 40 and 41: a gap of three intervals
    sf = raw.info["sfreq"]
    on = grad_sim["volume_onsets"]
    span = slice(int(round(on[40] * sf)), int(round(on[42] * sf)))
    eeg = mne.pick_types(raw.info, eeg=True)
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        cleaned, rep = clean_raw(raw, gradient="aas", bcg=None)
    assert rep["gradient"]["epochs_filled_in"] == 2 and rep["gradient"]["n_epochs"] == 90
    assert "2 volume marker(s) missing where the artefact goes on" in caplog.text
    resid = (cleaned.get_data()[eeg, span] - grad_sim["clean"].get_data()[eeg, span]).std(axis=1)
    art = grad_sim["artifacts"]["gradient"][:, span].std(axis=1) * 1e-6
    assert np.all(resid < 0.05 * art)
    # a pause: no artefact in the gap (the scanner stopped for two volumes) -> nothing put there
    quiet = raw.copy()
    quiet._data[:, span] = grad_sim["clean"].get_data()[:, span]
    _, rep2 = clean_raw(quiet, gradient="aas", bcg=None)
    assert rep2["gradient"]["epochs_filled_in"] == 0 and rep2["gradient"]["n_epochs"] == 88


def test_a_removal_that_lowers_the_artifact_little_is_warned(grad_sim, caplog):
    """User test 20: AAS on an aliased artefact reduced it 8.7 dB, 399 uV of residual stayed, nothing said and synthesis
    was spoilt. Here: cleaning data that hold no repeating artefact any more (already cleaned) lowers nothing."""
    import logging

    once, rep = clean_raw(grad_sim["raw"], gradient="aas", bcg=None)
    assert "low_reduction" not in rep["artifact_power"]
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        _, rep2 = clean_raw(once, gradient="aas", bcg=None)
    assert rep2["artifact_power"]["low_reduction"] is True and rep2["artifact_power"]["volume_reduction_db"] < 20.0
    assert re.search(r"gradient AAS lowered the artefact's volume comb by -?\d+\.\d dB only .*a clean removal takes 30-40 dB\): expected "
                     r"an artefact that repeats from volume to volume\. The EEG may have been recorded without an anti-aliasing filter",
                     caplog.text)


@pytest.mark.slow
def test_aas_with_slice_markers_and_without_obs(grad_sim):
    cleaned, info = remove_gradient_artifacts(grad_sim["raw"], slice_marker="R2", obs_components=0)
    assert info["epochs"] == "slice" and info["n_epochs"] == 1800 and info["epoch_samples"] == 25
    rep = artifact_power_report(grad_sim["raw"], cleaned, tr=TR, n_slices=20)
    assert rep["slice_hz"] == pytest.approx(10.0)
    assert rep["slice_reduction_db"] > 20.0 and rep["volume_reduction_db"] > 20.0
    # explicit onsets give the same result as the annotations
    again, _ = remove_gradient_artifacts(grad_sim["raw"], slice_onsets=np.round(grad_sim["slice_onsets"] * SF) / SF, obs_components=0)
    np.testing.assert_allclose(again.get_data(), cleaned.get_data(), atol=1e-12)


@pytest.mark.parametrize("method, min_r", [("aas", 0.9), ("pca_obs", 0.6)])
def test_bcg_cleaning_against_ground_truth(bcg_sim, method, min_r):
    raw = bcg_sim["raw"]
    before = raw.get_data().copy()
    cleaned, rep = clean_raw(raw, gradient=None, bcg=method)
    np.testing.assert_array_equal(raw.get_data(), before)
    b = rep["bcg"]
    assert b["ecg_channel"] == "ECG" and b["method"] == method
    assert abs(b["n_beats"] - len(bcg_sim["r_peaks"])) <= 3
    assert rep["artifact_power"] is None
    r = _bandpower_r(cleaned, bcg_sim)
    assert np.median(r) > min_r, r
    eeg = mne.pick_types(raw.info, eeg=True)
    truth = bcg_sim["clean"].get_data()[eeg]
    truth = truth - truth.mean(axis=1, keepdims=True)
    err_before = (raw.get_data()[eeg] - truth).std(axis=1)
    err_after = (cleaned.get_data()[eeg] - cleaned.get_data()[eeg].mean(axis=1, keepdims=True) - truth).std(axis=1)
    if method == "aas":
        assert err_after.sum() < 0.5 * err_before.sum()


def test_errors_name_the_recording_and_the_fix(grad_sim):
    raw = grad_sim["raw"]
    with pytest.raises(Eeg2fmriInputError, match=r"run-7: expected an ECG channel \(channel type 'ecg'\).*found none.*ecg_channel=<name>.*clean without bcg"):
        remove_bcg_artifacts(raw, where="run-7")
    renamed = raw.copy().rename_channels({"EEG00": "cardio_ECG"})
    with pytest.raises(Eeg2fmriInputError, match=r"\['cardio_ECG'\] look like ECG"):
        remove_bcg_artifacts(renamed, where="run-7")
    with pytest.raises(Eeg2fmriInputError, match=r"expected an ECG channel named 'EKG'"):
        remove_bcg_artifacts(raw, ecg_channel="EKG")
    bare = raw.copy().set_annotations(None)
    with pytest.raises(Eeg2fmriInputError, match=r"run-7: expected scanner volume markers \['R128'.*found none.*pass marker=<the volume marker name>"):
        remove_gradient_artifacts(bare, where="run-7")
    with pytest.raises(Eeg2fmriInputError, match=r"found 90 volume marker\(s\), expected at least n_template \+ 1 = 101 .*lower n_template \(e.g. 89\)"):
        remove_gradient_artifacts(raw, n_template=100)
    with pytest.raises(Eeg2fmriInputError, match="expected obs_components to be an integer >= 0"):
        remove_gradient_artifacts(raw, obs_components=-1)
    with pytest.raises(Eeg2fmriInputError, match="unknown gradient method 'fastr'"):
        clean_raw(raw, gradient="fastr")
    with pytest.raises(Eeg2fmriInputError, match="expected an mne.io.Raw or a path to an EEG file, got ndarray"):
        clean_raw(raw.get_data())
    with pytest.raises(Eeg2fmriInputError, match=r"--clean: expected a comma-separated list of 'gradient' and 'bcg'.*got 'pulse'"):
        parse_clean_steps("gradient,pulse")
    with pytest.raises(Eeg2fmriInputError, match="expected a mapping such as"):
        check_clean_options("gradient")


def test_parse_clean_steps():
    assert parse_clean_steps("gradient,bcg") == {"gradient": "aas", "bcg": "pca_obs", "bcg_crossfade": 0.5}  # (written out)
    assert parse_clean_steps("gradient") == {"gradient": "aas", "bcg": None}
    assert parse_clean_steps("bcg=aas") == {"gradient": None, "bcg": "aas"}
    assert parse_clean_steps("") is None
    from eeg2fmri.preprocessing.cleaning import check_clean_options

    with pytest.raises(Eeg2fmriInputError, match=r"expected bcg_crossfade from 0 to 1 .* got '0.5'"):  # checked before any cleaning
        check_clean_options({"bcg": "pca_obs", "bcg_crossfade": "0.5"})
    assert check_clean_options({"bcg": "pca_obs", "bcg_crossfade": None})["bcg_crossfade"] is None


def test_too_few_heartbeats():
    sim = simulate_scanner_eeg(n_channels=2, n_volumes=3, kinds=("bcg",), random_state=1, pre=0.5, post=0.5)
    with pytest.raises(Eeg2fmriInputError, match=r"lasts 7.0 s, expected at least 20 s \(and 10 heartbeats\) to find R peaks in ECG channel 'ECG'"):
        remove_bcg_artifacts(sim["raw"])
    flat = simulate_scanner_eeg(n_channels=2, n_volumes=12, kinds=("bcg",), random_state=1)["raw"]
    flat._data[-1] = 0.0  # an ECG channel without a heartbeat
    with pytest.raises(Eeg2fmriInputError, match=r"found 0 R peak\(s\) in ECG channel 'ECG', expected at least 10 heartbeats"):
        remove_bcg_artifacts(flat)


def test_cli_round_trip(grad_sim, tmp_path, capsys):
    from eeg2fmri.cli import main

    src = tmp_path / "in_raw.fif"
    grad_sim["raw"].save(src, verbose=False)
    out = tmp_path / "out" / "cleaned_eeg.fif"
    rep = tmp_path / "report.json"
    assert main(["clean", str(src), "--out", str(out), "--bcg", "none", "--report", str(rep)]) == 0
    text = capsys.readouterr().out
    assert "residual artifact power" in text and "reduced" in text and str(out) in text
    back = mne.io.read_raw_fif(out, verbose=False)
    direct, _ = clean_raw(grad_sim["raw"], bcg=None)
    np.testing.assert_allclose(back.get_data(), direct.get_data(), atol=1e-9)
    assert json.loads(rep.read_text())["artifact_power"]["volume_reduction_db"] > 20
    assert main(["clean", str(src), "--out", str(out), "--bcg", "none"]) != 0
    assert "output already exists; choose another --out or pass --overwrite" in capsys.readouterr().err
    assert main(["clean", str(src), "--out", str(src), "--bcg", "none", "--overwrite"]) != 0
    assert "would overwrite the input" in capsys.readouterr().err
    assert main(["clean", str(src), "--out", str(out), "--bcg", "none", "--overwrite"]) == 0
    vhdr = tmp_path / "bv" / "cleaned.vhdr"
    assert main(["clean", str(src), "--out", str(vhdr), "--bcg", "none"]) == 0
    bv = mne.io.read_raw_brainvision(vhdr, verbose=False)
    np.testing.assert_allclose(bv.get_data(), direct.get_data(), atol=1e-6)
    assert sorted(p.name for p in (tmp_path / "bv").iterdir()) == ["cleaned.eeg", "cleaned.vhdr", "cleaned.vmrk"]


@pytest.mark.slow
def test_prepare_with_clean_records_the_report(tmp_path, capsys):
    from eeg2fmri.datasets import prepare_dataset
    from eeg2fmri.simulate import simulate_dataset

    root = simulate_dataset(tmp_path / "bids", n_subjects=1, minutes=1.5, n_channels=16, n_regions=6, voxel_size=10.0,
                            scanner_artifacts=["gradient", "bcg"], progress_bar=False)
    ds = prepare_dataset(root, {"clean": {"gradient": "aas", "bcg": "aas"}, "bands": BANDS}, progress_bar=False)
    prov = next(iter(ds.provenance["inputs"].values()))
    assert prov["cleaning"]["artifact_power"]["volume_reduction_db"] > 20
    assert prov["cleaning"]["bcg"]["ecg_channel"] == "ECG"
    assert prov["gradient_artifact_check"]["detected"] is False
    with pytest.warns(UserWarning, match="prepare with --clean gradient"):
        prepare_dataset(root, {"bands": BANDS}, progress_bar=False)
    # datasets --check says it before any preparing (user test 20: "OK" of raw in-scanner EEG and nothing else)
    from eeg2fmri.cli import main

    assert main(["datasets", "--check", str(root)]) == 0
    assert "sub-01_task-rest_run-1: the EEG looks uncorrected for MRI gradient artefacts" in capsys.readouterr().out


def test_bcg_uses_the_one_channel_named_ecg_and_clean_raw_reads_a_path(bcg_sim, tmp_path):
    """A bare recording types every channel EEG: the one channel named ECG*/EKG* is then the ECG (docs audit: the README's
    eeg2fmri clean example failed on a bare .vhdr); clean_raw takes a path as well as a Raw (README)."""
    import mne

    raw = bcg_sim["raw"]
    ecg = [c for c, t in zip(raw.ch_names, raw.get_channel_types()) if t == "ecg"]
    assert ecg
    bare = raw.copy().set_channel_types({ecg[0]: "eeg"}, on_unit_change="ignore", verbose=False)
    typed, info_typed = remove_bcg_artifacts(raw)
    guessed, info_guessed = remove_bcg_artifacts(bare)
    assert info_guessed["ecg_channel"] == info_typed["ecg_channel"] == ecg[0] and info_guessed["n_beats"] == info_typed["n_beats"]
    picks = [c for c in raw.ch_names if c != ecg[0] and raw.get_channel_types([c])[0] == "eeg"]
    np.testing.assert_allclose(guessed.get_data(picks), typed.get_data(picks), atol=1e-12)
    np.testing.assert_array_equal(guessed.get_data([ecg[0]]), bare.get_data([ecg[0]]))  # the ECG is left as recorded (review)
    fif = tmp_path / "rec_raw.fif"
    raw.save(fif, verbose=False)
    from_path, rep = clean_raw(fif, gradient=None, bcg="pca_obs")
    from_raw, _ = clean_raw(mne.io.read_raw_fif(fif, preload=True, verbose=False), gradient=None, bcg="pca_obs")
    np.testing.assert_allclose(from_path.get_data(), from_raw.get_data())
    assert rep["where"] == str(fif)


def test_synthesize_cleans_an_in_scanner_recording_as_training_did(tmp_path):
    """User test 20: an EEG-only in-scanner recording had to be cleaned in a separate step (where it could be cleaned
    otherwise than the training runs were). synthesize(clean="training") cleans it with the model's prepare.clean and the
    training's volume markers: the same output as cleaning it first with clean_raw."""
    import nibabel as nib

    from eeg2fmri.datasets import prepare_dataset
    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.io import read_eeg
    from eeg2fmri.simulate import simulate_dataset
    from eeg2fmri.synthesis.synthesize import synthesize
    from eeg2fmri.training import fit_model
    from eeg2fmri.training.fit import save_fit

    root = simulate_dataset(tmp_path / "bids", n_subjects=1, minutes=3.0, n_channels=12, n_regions=6, voxel_size=12.0,
                            scanner_artifacts=["gradient"], progress_bar=False)
    steps = {"gradient": "aas", "bcg": None}
    ds = prepare_dataset(root, {"clean": steps, "bands": BANDS}, progress_bar=False)
    sp = make_split(ds, "within")
    model = save_fit(fit_model(ds, sp, "ridge_hrf", {"hrf": "canonical"}, targets=split_targets(ds, sp)), tmp_path / "model")
    eeg = next(root.glob("sub-*/eeg/*_eeg.vhdr"))
    with pytest.raises(Exception, match=r"gradient"):  # raw in-scanner EEG is refused without cleaning (the documented check)
        synthesize(eeg, model, tmp_path / "raw.nii.gz", progress_bar=False, uncertainty=False)
    out = synthesize(eeg, model, tmp_path / "a.nii.gz", progress_bar=False, uncertainty=False, clean="training")
    side = json.loads(out.with_name("a.json").read_text())
    assert side["Cleaning"]["steps"] == {"gradient": "aas"} and side["Cleaning"]["report"]["artifact_power"]["volume_reduction_db"] > 20
    first, _ = clean_raw(read_eeg(eeg, preload=True), marker=ds.config.marker, **steps)
    ref = synthesize(first, model, tmp_path / "b.nii.gz", progress_bar=False, uncertainty=False)
    np.testing.assert_allclose(np.asarray(nib.load(out).dataobj), np.asarray(nib.load(ref).dataobj), rtol=1e-5, atol=1e-6)
    plain = save_fit(fit_model(prepare_dataset(root, {"bands": BANDS, "check_artifacts": False}, progress_bar=False), sp, "ridge_hrf",
                               {"hrf": "canonical"}), tmp_path / "plain")
    with pytest.raises(Eeg2fmriInputError, match=r"model.json: clean='training', but the model's training runs were not cleaned"):
        synthesize(eeg, plain, tmp_path / "c.nii.gz", progress_bar=False, clean="training")
    with pytest.raises(Eeg2fmriInputError, match=r"synthesize: clean: expected 'training', steps such as 'gradient,bcg'"):
        synthesize(eeg, model, tmp_path / "d.nii.gz", progress_bar=False, clean="everything")


def test_synthesis_cleans_as_an_older_model_was_cleaned(monkeypatch, tmp_path):
    """A model whose prepare.clean has PCA-OBS without bcg_crossfade was prepared with MNE's apply_pca_obs (before the
    cross-fade): clean='training' cleans a recording the same way; a newer model's cross-fade is kept."""
    import importlib

    import eeg2fmri.preprocessing.cleaning as cleaning
    from eeg2fmri.datasets.prepared import PrepareConfig

    syn = importlib.import_module("eeg2fmri.synthesis.synthesize")  # (the package exports a function of that name)
    seen = []
    monkeypatch.setattr(cleaning, "clean_for_prepare", lambda raw, opts, **kw: (seen.append(dict(opts)) or (raw, {})))
    monkeypatch.setattr(syn, "read_eeg", lambda eeg, preload=False: eeg)
    for clean, expected in (({"gradient": "aas", "bcg": "pca_obs"}, None), ({"gradient": "aas", "bcg": "pca_obs", "bcg_crossfade": 0.25}, 0.25)):
        syn._clean_like_training("raw", "training", PrepareConfig(clean=clean), 2.0, "rec", tmp_path)
        assert seen[-1]["bcg_crossfade"] == expected
