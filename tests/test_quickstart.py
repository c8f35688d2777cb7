"""End to end: prepare, split without leakage, fit, evaluate, synthesise, quickstart, CLI."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from eeg2fmri.cli import main
from eeg2fmri.datasets import load_prepared
from eeg2fmri.datasets.targets import make_split
from eeg2fmri.utils.validation import Eeg2fmriInputError
from eeg2fmri.workflows.quickstart import run_quickstart

from .conftest import TINY

TINY_SIM = {k: v for k, v in TINY.items() if k not in ("n_subjects", "minutes", "seed")}


def test_prepared_roundtrip_is_memory_mapped(tiny_prepared, tmp_path):
    out = tiny_prepared.save(tmp_path / "prep")
    ds = load_prepared(out)
    assert isinstance(ds.runs[0].features, np.memmap)
    np.testing.assert_array_equal(ds.runs[1].bold, tiny_prepared.runs[1].bold)
    assert ds.ch_names == tiny_prepared.ch_names and len(ds.ch_names) == TINY["n_channels"]
    with pytest.raises(Eeg2fmriInputError, match="already exists"):
        tiny_prepared.save(out)


def test_split_has_gap_and_no_overlap(tiny_prepared):
    sp = make_split(tiny_prepared, "within")
    for i in sp.selections["train"]:
        tr, va, te = (sp.selections[k][i] for k in ("train", "val", "test"))
        assert tr.max() + sp.gap < va.min() and va.max() + sp.gap < te.min()
        assert sp.gap >= sp.n_frames  # gap covers at least one EEG window
    loso = make_split(tiny_prepared, "loso", test_subjects=["01"])
    assert list(loso.selections["test"]) == [0] and 0 not in loso.selections["train"]
    with pytest.raises(Eeg2fmriInputError, match=r"subject\(s\) \['09'\] not in the dataset \['01', '02'\]"):
        make_split(tiny_prepared, "loso", test_subjects=["09"])


def test_quickstart_end_to_end(tmp_path):
    out = tmp_path / "qs"
    m = run_quickstart(out, subjects=2, minutes=6.0, seed=3, progress_bar=False, sim_overrides=TINY_SIM)
    for f in ("metrics.json", "report.md", "report.html", "slices.png", "timecourses.png", "model/model.json", "model/weights.safetensors", "model/MODEL_CARD.md"):
        assert (out / f).exists(), f
    import re

    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (out / "report.md").read_text())
    assert links and all((out / link).is_file() for link in links), links  # the flagship's insight/ figures too
    s = m["summary"]
    # the default model is the flagship, shown next to the ridge_hrf reference
    assert m["model"] == "eeg2fmri_net" and "ridge_hrf_median_r" in s and "ridge_hrf (reference)" in m["table"]
    # the model clearly beats the subject-mean baseline and the shifted null on held-out data
    assert s["model_r2"] > s["mean_r2"]
    assert s["model_median_r"] > s["null_shifted_median_r"] + 0.05
    assert s["model_median_r"] < s["noise_ceiling_median_r"]
    synth = nib.load(m["synthesized"])
    assert synth.ndim == 4 and synth.header.get_zooms()[3] == pytest.approx(2.0)
    np.testing.assert_allclose(synth.affine, nib.load(out / "model" / "mask.nii.gz").affine)
    assert (out / "model" / "calibration.json").is_file()  # synthesize --uncertainty works on the quickstart's model
    def no_nan(c):
        raise AssertionError(f"metrics.json is not strict JSON: {c}")

    doc = json.loads((out / "metrics.json").read_text(), parse_constant=no_nan)  # NaN -> null (user test 11: JSON.parse refused it)
    assert doc["split"]["gap_volumes"] >= 9
    # the table says when no null distribution could be formed, or gives its 5 % level
    from eeg2fmri.workflows.quickstart import format_table

    p95 = s.get("null_p95_median_r")
    assert ("no null distribution" in m["table"]) == (p95 is None or not np.isfinite(p95))
    assert "no null distribution: the test spans are too short" in format_table({**s, "null_p95_median_r": float("nan")}, "eeg2fmri_net")
    with_p95 = format_table({**s, "null_p95_median_r": 0.031}, "eeg2fmri_net")
    assert "time-shifted null, 5 % level" in with_p95 and "0.031" in with_p95 and "no null distribution" not in with_p95
    # provenance names the final paths, never the temporary folder the quickstart wrote into
    side = json.loads(Path(m["synthesized"].replace(".nii.gz", ".json")).read_text())
    assert side["ModelDir"] == str(out.absolute() / "model")
    assert side["VolumeGrid"]["anchor"].startswith("marker ")  # timed by the recording's scanner markers (it warned before: session 31)
    assert Path(side["Source"]).is_file() and Path(side["Source"]).is_relative_to(out.absolute())
    man = json.loads((out / "prepared" / "manifest.json").read_text())
    assert man["provenance"]["bids_root"] == str(out.absolute() / "bids")
    # the flagship's preferred input; the reference reads the band-power block of the same windows
    assert man["config"]["representation"] == "tangent" and np.isfinite(s["ridge_hrf_median_r"])
    assert json.loads((out / "model" / "model.json").read_text())["prepare"]["representation"] == "tangent"
    for f in out.rglob("*"):
        if f.suffix in (".json", ".yaml", ".md", ".tsv"):
            assert ".tmp-" not in f.read_text(), f
    # the user's umask, not mkdtemp's 0700 / mkstemp's 0600
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask
    for f in ("model/weights.safetensors", "metrics.json", "model/model.json", Path(m["synthesized"]).relative_to(out.absolute())):
        assert stat.S_IMODE((out / f).stat().st_mode) == 0o666 & ~umask, f
    # evaluate takes the quickstart folder with its recorded within split (user test 42: it crashed on the card's
    # test subjects), and the split rebuilt from the card has the recorded test windows
    from eeg2fmri.cli import main

    assert main(["evaluate", str(out), "--out", str(tmp_path / "ev"), "-q", "--n-boot", "0", "--no-report"]) == 0
    card = json.loads((out / "model" / "model.json").read_text())["card"]["split"]
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["split"]["n_test"] == card["n_test"]


def test_cli_help_and_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "quickstart" in capsys.readouterr().out
    for cmd in ("quickstart", "simulate", "prepare", "synthesize", "models"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        assert "usage: eeg2fmri " + cmd in capsys.readouterr().out
    assert main(["simulate", str(tmp_path / "s"), "--minutes", "0"]) == 2
    assert "expected minutes > 0, got 0.0; pass --minutes greater than 0" in capsys.readouterr().err
    assert main(["simulate", str(tmp_path / "s"), "--subjects", "0"]) == 2
    assert "expected n_subjects to be an integer >= 1, got 0" in capsys.readouterr().err
    assert main(["simulate", str(tmp_path / "s"), "--montage", "bogus"]) == 2
    assert "unknown montage 'bogus'" in capsys.readouterr().err
    (tmp_path / "exists").mkdir()
    assert main(["quickstart", "--out", str(tmp_path / "exists")]) == 2
    assert "already exists; choose another path or pass --overwrite." in capsys.readouterr().err
    assert main(["models"]) == 0
    assert "ridge_hrf" in capsys.readouterr().out


def test_synthesize_errors(tmp_path, tiny_bids):
    from eeg2fmri.synthesis import synthesize

    with pytest.raises(Eeg2fmriInputError, match="expected a model directory with model.json"):
        synthesize(tiny_bids / "sub-01/eeg/sub-01_task-rest_run-1_eeg.vhdr", tmp_path, tmp_path / "o.nii.gz")
    with pytest.raises(Eeg2fmriInputError, match="expected an output name ending in .nii.gz"):
        synthesize(tiny_bids / "sub-01/eeg/sub-01_task-rest_run-1_eeg.vhdr", tmp_path, tmp_path / "o.png")


def test_window_dataset_views_and_memory(tiny_prepared, tmp_path):
    import torch

    from eeg2fmri.datasets import WindowDataset, load_prepared
    from eeg2fmri.datasets.targets import split_targets
    from eeg2fmri.datasets.windows import run_windows

    ds = load_prepared(tiny_prepared.save(tmp_path / "p"))
    sp = make_split(ds, "within")
    tg = split_targets(ds, sp)
    wd = WindowDataset(ds, sp.selections["train"], sp.n_frames, targets=tg["train"])
    x, y, s = wd[3]
    assert x.dtype == torch.float32 and tuple(x.shape) == wd.spec.input_shape == (16, 5, sp.n_frames)
    assert y.shape == (int(ds.mask.sum()),) and s.item() == 0
    # windows are views of the memory-mapped continuous array (no copy, whatever the overlap)
    v = wd.window(3)
    assert np.shares_memory(v, ds.runs[0].features) or v.base is not None and not v.flags.owndata
    many = run_windows(ds.runs[0], np.arange(10, 40), sp.n_frames)
    assert np.shares_memory(many, ds.runs[0].features)
    # window k ends with its volume's own frame
    vol = sp.selections["train"][0][3]
    np.testing.assert_array_equal(x.numpy()[..., -1], ds.runs[0].features[ds.runs[0].window_end[vol] - 1])
    loader = torch.utils.data.DataLoader(wd, batch_size=7, num_workers=2, shuffle=True, generator=torch.Generator().manual_seed(0))
    xb, yb, sb = next(iter(loader))
    assert xb.shape[0] == 7 and yb.shape == (7, int(ds.mask.sum()))


def test_subject_splits(tiny_prepared):
    kf = make_split(tiny_prepared, "kfold", n_folds=2, fold=1)
    assert kf.test_subjects == ["02"] and list(kf.selections["test"]) == [1]
    ex = make_split(tiny_prepared, "subjects", test_subjects=["01"])
    assert list(ex.selections["test"]) == [0] and list(ex.selections["train"]) == [1] and list(ex.selections["val"]) == [1]
    assert ex.selections["train"][1].max() + ex.gap < ex.selections["val"][1].min()
    with pytest.raises(Eeg2fmriInputError, match=r"expected 2 <= n_folds <= 2"):
        make_split(tiny_prepared, "kfold", n_folds=3)
    with pytest.raises(Eeg2fmriInputError, match="are in both test_subjects and val_subjects"):
        make_split(tiny_prepared, "subjects", test_subjects=["01"], val_subjects=["01"])
    with pytest.raises(Eeg2fmriInputError, match=r"split: expected at least one training subject besides the test \['01'\] and validation "
                                                 r"\['02'\] subject\(s\), found 2 subject\(s\) \['01', '02'\] in the dataset: no training subject "
                                                 r"left; protocol 'subjects' needs at least 3 subjects\. .*--protocol within"):
        make_split(tiny_prepared, "subjects", test_subjects=["01"], val_subjects=["02"])


def test_reprepare_sees_companion_files_and_overwrite_redoes(tiny_bids, tmp_path):
    """A changed channels.tsv (or .vmrk, events.tsv, bold.json ...) is a changed input: prepare does not call the old
    output up to date; overwrite=True always prepares again."""
    import shutil

    from eeg2fmri.datasets import prepare

    root = tmp_path / "bids"
    shutil.copytree(tiny_bids, root)
    out, written = prepare(root, tmp_path / "p", progress_bar=False)
    n_ch = len(load_prepared(out).ch_names)
    assert written and not prepare(root, out, progress_bar=False)[1]
    assert prepare(root, out, progress_bar=False, overwrite=True)[1]  # unchanged inputs, but asked to redo
    first = load_prepared(out).ch_names[0]
    for tsv in sorted(root.glob("sub-*/eeg/*_channels.tsv")):  # the first EEG channel retyped MISC in every run
        lines = tsv.read_text().splitlines()
        lines = [("\t".join([c[0], "MISC", *c[2:]]) if c[0] == first else ln) for ln, c in ((ln, ln.split("\t")) for ln in lines)]
        tsv.write_text("\n".join(lines) + "\n")
    with pytest.raises(Eeg2fmriInputError, match=r"already holds a prepared dataset of other inputs or another config \(what differs: the EEG "
                                                 r"file or a companion of it \(marker file, channels\.tsv, events\.tsv, sidecars\) changed in "
                                                 r"\d+ run\(s\): sub-\w+.*\); nothing was prepared"):
        prepare(root, out, progress_bar=False)
    assert prepare(root, out, progress_bar=False, overwrite="stale")[1]  # stale: replaced ...
    assert not prepare(root, out, progress_bar=False, overwrite="stale")[1]  # ... then up to date: kept
    assert len(load_prepared(out).ch_names) == n_ch - 1 and first not in load_prepared(out).ch_names
    with pytest.raises(Eeg2fmriInputError, match=r"expected overwrite True, False or 'stale', got 'yes'"):
        prepare(root, out, progress_bar=False, overwrite="yes")


def test_raw_representation_and_noop_reprepare(tiny_bids, tmp_path):
    from eeg2fmri.datasets import WindowDataset, prepare

    out, written = prepare(tiny_bids, tmp_path / "raw", {"representation": "raw", "raw_sfreq": 50.0}, progress_bar=False)
    assert written
    ds = load_prepared(out)
    assert ds.runs[0].features.shape[1] == 16 and ds.frame_rate == 50.0
    sp = make_split(ds, "within")
    assert sp.n_frames == int((16 + 2) * 50)
    wd = WindowDataset(ds, sp.selections["test"], sp.n_frames)
    assert tuple(wd[0][0].shape) == (16, sp.n_frames) and wd.spec.input_kind == "raw"
    mtime = (out / "manifest.json").stat().st_mtime_ns
    _, written2 = prepare(tiny_bids, out, {"representation": "raw", "raw_sfreq": 50.0}, progress_bar=False)
    assert not written2 and (out / "manifest.json").stat().st_mtime_ns == mtime
    # a manifest written before a config key existed (the key at its default) is still the same config
    import json

    man = json.loads((out / "manifest.json").read_text())
    for key in ("clean", "channels", "channel_positions"):
        assert man["config"].pop(key) is None
    (out / "manifest.json").write_text(json.dumps(man))
    mtime = (out / "manifest.json").stat().st_mtime_ns
    _, written3 = prepare(tiny_bids, out, {"representation": "raw", "raw_sfreq": 50.0}, progress_bar=False)
    assert not written3 and (out / "manifest.json").stat().st_mtime_ns == mtime
    with pytest.raises(Eeg2fmriInputError, match=r"already holds a prepared dataset of other inputs or another config \(what differs: "
                                                 r"config raw_sfreq: 50\.0 there, 40\.0 now\); nothing was prepared"):
        prepare(tiny_bids, out, {"representation": "raw", "raw_sfreq": 40.0}, progress_bar=False)


def test_quickstart_default_is_the_flagship_and_ridge_is_one_option_away(tmp_path):
    import argparse

    from eeg2fmri.commands import quickstart as qs_cmd
    from eeg2fmri.workflows.quickstart import DEFAULT_MODEL

    parser = argparse.ArgumentParser()
    qs_cmd.add_arguments(parser)
    assert parser.parse_args([]).model == DEFAULT_MODEL == "eeg2fmri_net"
    m = run_quickstart(tmp_path / "qsr", subjects=2, minutes=6.0, seed=3, model="ridge_hrf", progress_bar=False, sim_overrides=TINY_SIM,
                       html_report=False)
    assert not (tmp_path / "qsr" / "report.html").exists()
    assert m["model"] == "ridge_hrf" and "ridge_hrf (reference)" not in m["table"]
    assert json.loads((tmp_path / "qsr" / "model" / "model.json").read_text())["model"] == "ridge_hrf"
    assert json.loads((tmp_path / "qsr" / "prepared" / "manifest.json").read_text())["config"]["representation"] == "bandpower"


def test_auto_bands_follow_the_sampling_rate(tmp_path):
    from eeg2fmri.datasets import prepare
    from eeg2fmri.preprocessing import DEFAULT_BANDS, auto_bands
    from eeg2fmri.simulate import simulate_dataset

    assert auto_bands(100.0) == DEFAULT_BANDS and auto_bands(250.0)["high_gamma"] == (55.0, 95.0) and "high_gamma" not in auto_bands(170.0)
    root = simulate_dataset(tmp_path / "b", progress_bar=False, **{**TINY, "n_subjects": 1, "minutes": 1.0, "sfreq": 250.0})
    out, written = prepare(root, tmp_path / "p", progress_bar=False)
    ds = load_prepared(out)
    # the manifest records the bands used, not "auto"
    assert written and ds.config.bands == auto_bands(250.0) and ds.runs[0].features.shape[2] == 6
    assert json.loads((out / "manifest.json").read_text())["config"]["bands"]["high_gamma"] == [55.0, 95.0]
    _, again = prepare(root, out, progress_bar=False)  # "auto" resolves to the recorded bands: nothing to do
    assert not again
    low = load_prepared(prepare(root, tmp_path / "q", {"work_sfreq": 125.0}, progress_bar=False)[0])
    assert low.config.bands == DEFAULT_BANDS  # a 125 Hz work rate leaves no room for high gamma
    # a recording that declares a low-pass below its Nyquist frequency (user test 17: ds002336's eeg_pp, 200 Hz low-passed
    # at 50 Hz, got a 55-80 Hz band of filter noise): the bands stop below the edge
    import mne

    from eeg2fmri.datasets import prepare_dataset

    vhdr = next(root.glob("sub-*/eeg/*_eeg.vhdr"))
    raw = mne.io.read_raw_brainvision(vhdr, preload=True, verbose=False)
    assert raw.info["lowpass"] == 125.0  # the simulator declares none: Nyquist
    with raw.info._unlock():
        raw.info["lowpass"] = 45.0
    run = {"eeg": raw, "bold": next(root.glob("sub-*/func/*_bold.nii.gz")), "subject": "01"}
    assert prepare_dataset([run], {"check_artifacts": False}, progress_bar=False).config.bands == DEFAULT_BANDS
    with pytest.raises(Eeg2fmriInputError, match="prepare option bands: expected 'auto' or a mapping name -> \\[low, high\\] in Hz, got 'wide'"):
        prepare(root, tmp_path / "r", {"bands": "wide"}, progress_bar=False)


def test_input_fingerprint_covers_companions_not_neighbours(tmp_path):
    """prepare's input fingerprint: a run's own companion files count (BIDS entities, or the same stem outside BIDS);
    other runs' files in the same folder do not (run-10 is not run-1, subj2 is not subj1)."""
    from eeg2fmri.datasets.prepared import _checksum

    for n in ["EEG_data_subj1.vhdr", "EEG_data_subj1.vmrk", "EEG_data_subj2.vhdr", "sub-01_task-rest_run-1_eeg.vhdr",
              "sub-01_task-rest_run-1_channels.tsv", "sub-01_task-rest_run-10_eeg.vhdr"]:
        (tmp_path / n).write_text(n)
    plain, bids = _checksum(tmp_path / "EEG_data_subj1.vhdr"), _checksum(tmp_path / "sub-01_task-rest_run-1_eeg.vhdr")
    (tmp_path / "EEG_data_subj2.vhdr").write_text("changed")
    (tmp_path / "sub-01_task-rest_run-10_eeg.vhdr").write_text("changed")
    assert _checksum(tmp_path / "EEG_data_subj1.vhdr") == plain and _checksum(tmp_path / "sub-01_task-rest_run-1_eeg.vhdr") == bids
    (tmp_path / "EEG_data_subj1.vmrk").write_text("changed")
    (tmp_path / "sub-01_task-rest_run-1_channels.tsv").write_text("changed")
    assert _checksum(tmp_path / "EEG_data_subj1.vhdr") != plain and _checksum(tmp_path / "sub-01_task-rest_run-1_eeg.vhdr") != bids
