"""BIDS pairing through mne-bids: sessions, acq-/echo- duplicates, fMRIPrep derivatives, the pairing table."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from eeg2fmri.io import find_runs
from eeg2fmri.io.layouts import check_layout, find_runs_layout
from eeg2fmri.io.pairing import pair_bids_runs, parse_bold_filter
from eeg2fmri.utils.validation import Eeg2fmriInputError

from .test_layouts import eeg_uv, write_bold, write_bv

CH = ["Fz", "Cz", "Pz", "Oz", "C3", "C4"]
SF, TR, NVOL = 100.0, 2.0, 12


def eeg_run(root: Path, stem: str, seed: int = 0, ses: str | None = None) -> Path:
    sub = stem.split("_")[0]
    d = root / sub / (f"ses-{ses}" if ses else "") / "eeg"
    n = int((NVOL * TR + 2.0) * SF)
    return write_bv(d, f"{stem}_eeg", eeg_uv(len(CH), n, seed), SF, CH, [("Response", "R128", int((0.5 + k * TR) * SF)) for k in range(NVOL)])


def bold_run(root: Path, name: str, seed: int = 0, ses: str | None = None) -> Path:
    sub = name.split("_")[0]
    return write_bold(root / sub / (f"ses-{ses}" if ses else "") / "func" / name, (4, 5, 3, NVOL), TR, seed=seed, sidecar={"RepetitionTime": TR})


def describe(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text('{"Name": "fixture", "BIDSVersion": "1.8.0"}')


@pytest.fixture
def sessions_root(tmp_path):
    root = tmp_path / "ses"
    describe(root)
    for ses in ("1", "2"):
        eeg_run(root, f"sub-01_ses-{ses}_task-rest_run-1", seed=int(ses), ses=ses)
        bold_run(root, f"sub-01_ses-{ses}_task-rest_run-1_bold.nii.gz", seed=int(ses), ses=ses)
    eeg_run(root, "sub-02_ses-1_task-rest_run-1", seed=5, ses="1")  # EEG without BOLD
    bold_run(root, "sub-02_ses-2_task-rest_run-1_bold.nii.gz", seed=6, ses="2")  # BOLD without EEG
    return root


def test_sessions_pair_within_their_session(sessions_root):
    table = pair_bids_runs(sessions_root)
    assert [(r.key, r.status) for r in table.rows] == [
        ("sub-01_ses-1_task-rest_run-1", "paired"), ("sub-01_ses-2_task-rest_run-1", "paired"),
        ("sub-02_ses-1_task-rest_run-1", "left out"), ("sub-02_ses-2_task-rest_run-1", "left out")]
    for r in table.paired:
        assert f"ses-{r.session}" in r.bold_path.name and f"ses-{r.session}" in r.eeg_path.name
    eeg_only, bold_only = table.left_out
    assert eeg_only.reason.startswith("no BOLD run; expected") and eeg_only.reason.endswith("sub-02/ses-1/func/sub-02_ses-1_task-rest_run-1_bold.nii.gz (or .nii)")
    assert bold_only.eeg_path is None and "BOLD without an EEG run" in bold_only.reason
    text = str(table)
    assert "2 paired, 2 left out" in text and "sub-02_ses-1_task-rest_run-1_eeg.vhdr: no BOLD run; expected" in text
    assert [r.session for r in pair_bids_runs(sessions_root, sessions=["2"]).paired] == ["2"]
    # the public function still raises for an EEG run without BOLD, unless require_bold=False
    with pytest.raises(Eeg2fmriInputError, match=r"sub-02_ses-1_task-rest_run-1_eeg.vhdr: found EEG but no BOLD run; expected .*sub-02_ses-1_task-rest_run-1_bold.nii.gz"):
        find_runs(sessions_root)
    runs = find_runs(sessions_root, require_bold=False)
    assert [(r.subject, r.session, r.bold_path is None) for r in runs] == [("01", "1", False), ("01", "2", False), ("02", "1", True)]
    # the bids layout leaves it out (warned, in the table) and keeps the complete runs
    lay = find_runs_layout(sessions_root)
    assert [r.key for r in lay] == ["sub-01_ses-1_task-rest_run-1", "sub-01_ses-2_task-rest_run-1"]
    with pytest.raises(Eeg2fmriInputError, match=r"strict pairing failed .*sub-02_ses-1_task-rest_run-1: EEG sub-02_ses-1_task-rest_run-1_eeg.vhdr left out: no BOLD run"):
        find_runs_layout(sessions_root, strict=True)
    with pytest.raises(Eeg2fmriInputError, match=r"found EEG but no BOLD run; expected"):
        find_runs_layout(sessions_root, require_bold=True)


@pytest.mark.parametrize("entity", ["echo", "acq"])
def test_duplicate_bold_runs_are_chosen_by_entity(tmp_path, entity):
    root = tmp_path / entity
    describe(root)
    eeg_run(root, "sub-01_task-rest_run-1")
    a, b = ("1", "2") if entity == "echo" else ("mb", "sb")
    names = {v: (f"sub-01_task-rest_echo-{v}_run-1_bold.nii.gz" if entity == "echo" else f"sub-01_task-rest_acq-{v}_run-1_bold.nii.gz") for v in (a, b)}
    for i, n in enumerate(names.values()):
        bold_run(root, n, seed=i)
    advice = rf"found 2 BOLD files match .*; choose one with bold_entities=\{{'{entity}': '{a}'\}} \(command line: --bold-filter {entity}={a}\)"
    with pytest.raises(Eeg2fmriInputError, match=advice):
        find_runs(root)
    with pytest.raises(Eeg2fmriInputError, match=advice):
        find_runs_layout(root)
    for v in (a, b):
        assert find_runs(root, bold_entities={entity: v})[0].bold_path.name == names[v]
        assert find_runs_layout(root, bold_entities=[f"{entity}={v}"])[0].bold_path.name == names[v]
    rep = check_layout(root, "bids")
    assert not rep.ok and "choose one with bold_entities" in rep.problems[0]
    with pytest.raises(Eeg2fmriInputError, match=r"no BOLD run left: bold_entities \{'echo': '9'\} excluded every BOLD file"):
        find_runs(root, bold_entities={"echo": "9"})
    with pytest.raises(Eeg2fmriInputError, match=r"bold filter 'colour': expected one of the entities"):
        parse_bold_filter(["colour=red"])
    with pytest.raises(Eeg2fmriInputError, match=r"expected ENTITY=VALUE such as echo=1"):
        parse_bold_filter(["echo"])
    assert parse_bold_filter(["acquisition=mb", "echo=none"]) == {"acq": "mb", "echo": None}


def fmriprep_root(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "raw"
    describe(root)
    eeg_run(root, "sub-01_task-rest_run-1", seed=1)
    eeg_run(root, "sub-02_task-rest_run-1", seed=2)
    bold_run(root, "sub-01_task-rest_run-1_bold.nii.gz", seed=1)  # raw BOLD, ignored with derivatives=
    deriv = root / "derivatives" / "fmriprep"
    rng = np.random.default_rng(0)
    for sub in ("01", "02"):
        stem = f"sub-{sub}_task-rest_run-1"
        for space in ("MNI152NLin2009cAsym_res-2", "T1w"):
            bold_run(deriv, f"{stem}_space-{space}_desc-preproc_bold.nii.gz", seed=int(sub))
        if sub == "01":  # sub-02 has no confounds file
            cols = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z", "global_signal"]
            rows = ["\t".join(f"{x:.5f}" for x in rng.normal(size=len(cols))) for _ in range(NVOL)]
            (deriv / f"sub-{sub}" / "func" / f"{stem}_desc-confounds_timeseries.tsv").write_text("\t".join(cols) + "\n" + "\n".join(rows) + "\n")
    return root, deriv


def test_fmriprep_derivatives_with_confounds(tmp_path):
    root, deriv = fmriprep_root(tmp_path)
    with pytest.raises(Eeg2fmriInputError, match=r"found 2 BOLD files match .*choose the fMRIPrep output space with space='MNI152NLin2009cAsym' \(command line: --space MNI152NLin2009cAsym\)"):
        find_runs(root, derivatives=deriv)
    table = pair_bids_runs(root, derivatives="derivatives/fmriprep", space="MNI152NLin2009cAsym")
    assert table.bold_root == deriv and [r.status for r in table.rows] == ["paired", "paired"]
    r1, r2 = table.rows
    assert r1.bold_path.name == "sub-01_task-rest_run-1_space-MNI152NLin2009cAsym_res-2_desc-preproc_bold.nii.gz"
    assert r1.confounds_path.name == "sub-01_task-rest_run-1_desc-confounds_timeseries.tsv" and r2.confounds_path is None
    assert table.notes == ["sub-02_task-rest_run-1: no *_desc-confounds_timeseries.tsv beside sub-02_task-rest_run-1_space-MNI152NLin2009cAsym_res-2_desc-preproc_bold.nii.gz (confound regression will fail for this run)"]
    assert "(+ sub-01_task-rest_run-1_desc-confounds_timeseries.tsv)" in str(table)
    runs = find_runs_layout(root, derivatives=deriv, space="T1w")
    assert [r.bold_path.name for r in runs] == [f"sub-0{i}_task-rest_run-1_space-T1w_desc-preproc_bold.nii.gz" for i in (1, 2)]
    assert runs[0].meta["confounds"].endswith("sub-01_task-rest_run-1_desc-confounds_timeseries.tsv")
    with pytest.raises(Eeg2fmriInputError, match=r"space='T1w': expected together with derivatives="):
        find_runs(root, space="T1w")
    with pytest.raises(Eeg2fmriInputError, match=r"nope: expected an fMRIPrep derivatives folder"):
        find_runs(root, derivatives="nope")
    no = pair_bids_runs(root, derivatives=deriv, space="MNI152NLin6Asym")
    assert [r.status for r in no.rows] == ["left out", "left out"] and "no preprocessed sub-01_task-rest_run-1*_space-MNI152NLin6Asym" in no.rows[0].reason
    assert no.rows[0].reason.endswith("; this run has the spaces MNI152NLin2009cAsym, T1w there: pick one (--space NAME)")


def test_prepare_from_fmriprep_derivatives_regresses_confounds(tmp_path):
    """prepare end to end on the preprocessed BOLD of one space, confounds regressed (sub-01 only: sub-02 has none)."""
    from eeg2fmri.datasets import prepare_dataset

    root, deriv = fmriprep_root(tmp_path)
    cfg = {"mask": "data", "confounds": ["trans_*", "rot_*"], "check_artifacts": False}
    import nibabel as nib

    mask = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((4, 5, 3), np.uint8), np.diag([3.0, 3.0, 4.0, 1.0])), mask)
    cfg["mask"] = str(mask)
    ds = prepare_dataset(root, cfg, subjects=["01"], layout_options={"derivatives": str(deriv), "space": "MNI152NLin2009cAsym"}, progress_bar=False)
    assert len(ds.runs) == 1 and ds.runs[0].bold.shape == (NVOL, 60)
    # confound regression leaves BOLD orthogonal to the motion columns (up to the later standardisation)
    import pandas as pd

    conf = pd.read_csv(deriv / "sub-01/func/sub-01_task-rest_run-1_desc-confounds_timeseries.tsv", sep="\t").to_numpy()[:, :6]
    conf = conf - conf.mean(0)
    # (fitted with the drift the targets' detrending removes: orthogonal once both are detrended)
    from eeg2fmri.preprocessing.bold import detrend

    np.testing.assert_allclose(detrend(conf, ds.tr).T @ detrend(ds.runs[0].bold, ds.tr), 0, atol=1e-3)
    # a changed confounds file makes the prepared folder stale (it is part of the run's fingerprint)
    from eeg2fmri.datasets.prepared import prepare

    opts = {"subjects": ["01"], "layout_options": {"derivatives": str(deriv), "space": "MNI152NLin2009cAsym"}, "progress_bar": False}
    out, done = prepare(root, tmp_path / "prep", cfg, **opts)
    assert done and not prepare(root, out, cfg, overwrite="stale", **opts)[1]
    tsv = deriv / "sub-01/func/sub-01_task-rest_run-1_desc-confounds_timeseries.tsv"
    lines = tsv.read_text().splitlines()
    lines[3] = "\t".join(str(float(v) + 0.5) if i == 0 else v for i, v in enumerate(lines[3].split("\t")))
    tsv.write_text("\n".join(lines) + "\n")
    assert prepare(root, out, cfg, overwrite="stale", **opts)[1]  # prepared again
    # a confounds file shorter than the BOLD: the error gives the counts in the files (before volumes are left out)
    tsv.write_text("\n".join(lines[:-2]) + "\n")
    with pytest.raises(Eeg2fmriInputError, match=rf"desc-confounds_timeseries\.tsv: {NVOL - 2} rows, but .*_bold\.nii\.gz has {NVOL} volumes; "
                                                 "expected one row per BOLD volume"):
        prepare_dataset(root, cfg, subjects=["01"], layout_options={"derivatives": str(deriv), "space": "MNI152NLin2009cAsym"}, progress_bar=False)


def test_cli_check_prints_the_pairing_table(capsys, sessions_root, tmp_path):
    from eeg2fmri.cli import main

    assert main(["datasets", "--check", str(sessions_root)]) == 0
    out = capsys.readouterr().out
    assert "layout bids: 2 complete run(s); OK" in out and "pairing of" in out and "2 paired, 2 left out" in out
    assert "left out   sub-02_ses-1_task-rest_run-1  sub-02_ses-1_task-rest_run-1_eeg.vhdr: no BOLD run; expected" in out
    assert "skipped: sub-02_ses-2_task-rest_run-1: BOLD sub-02_ses-2_task-rest_run-1_bold.nii.gz left out: BOLD without an EEG run" in out
    root = tmp_path / "echo"
    describe(root)
    eeg_run(root, "sub-01_task-rest_run-1")
    for e in ("1", "2"):
        bold_run(root, f"sub-01_task-rest_echo-{e}_run-1_bold.nii.gz")
    assert main(["datasets", "--check", str(root)]) == 1
    assert "--bold-filter echo=1" in capsys.readouterr().out
    assert main(["datasets", "--check", str(root), "--bold-filter", "echo=2"]) == 0
    assert "sub-01_task-rest_echo-2_run-1_bold.nii.gz" in capsys.readouterr().out


def test_cli_prepare_with_derivatives_and_space(tmp_path, capsys):
    import json

    import nibabel as nib

    from eeg2fmri.cli import main
    from eeg2fmri.datasets import load_prepared

    root, deriv = fmriprep_root(tmp_path)
    mask = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((4, 5, 3), np.uint8), np.diag([3.0, 3.0, 4.0, 1.0])), mask)
    cfg = tmp_path / "prep.json"
    cfg.write_text(json.dumps({"mask": str(mask), "confounds": ["trans_*"], "check_artifacts": False}))
    out = tmp_path / "prepared"
    assert main(["prepare", str(root), "--out", str(out), "--config", str(cfg), "--subjects", "01", "--derivatives", str(deriv),
                 "--space", "MNI152NLin2009cAsym", "--quiet"]) == 0
    ds = load_prepared(out)
    assert ds.provenance["inputs"]["sub-01_task-rest_run-1"]["bold"].endswith("_space-MNI152NLin2009cAsym_res-2_desc-preproc_bold.nii.gz")
    # the file name's space- entity decides the figures' template, before the NIfTI code (nibabel's default 2 here)
    assert ds.provenance["bold_space"] == "MNI152NLin2009cAsym" and ds.xform_code == 2 and ds.space == "mni"
    assert main(["prepare", str(root), "--out", str(tmp_path / "pt1"), "--config", str(cfg), "--subjects", "01", "--derivatives", str(deriv),
                 "--space", "T1w", "--quiet"]) == 0
    assert load_prepared(tmp_path / "pt1").space == "native"
    assert main(["prepare", str(root), "--out", str(tmp_path / "p2"), "--config", str(cfg), "--bold-filter", "colour=red"]) == 2
    assert "bold filter 'colour': expected one of the entities" in capsys.readouterr().err


def test_check_times_every_run_as_prepare_does(tmp_path, capsys):
    """datasets --check reads each run's scanner markers as prepare does: a run prepare would refuse (no volume markers
    of the names asked) is a problem naming the run and the fix; --marker / --first-onset check with prepare's settings."""
    from eeg2fmri.cli import main

    root = tmp_path / "bids"
    describe(root)
    eeg_run(root, "sub-01_task-rest_run-1", seed=1)
    bold_run(root, "sub-01_task-rest_run-1_bold.nii.gz", seed=1)
    n = int((NVOL * TR + 2.0) * SF)  # sub-02's scanner writes 'Volume' markers, one per TR
    write_bv(root / "sub-02" / "eeg", "sub-02_task-rest_run-1_eeg", eeg_uv(len(CH), n, 2), SF, CH,
             [("Stimulus", "Volume", int((0.5 + k * TR) * SF)) for k in range(NVOL)])
    bold_run(root, "sub-02_task-rest_run-1_bold.nii.gz", seed=2)
    rep = check_layout(root, "bids")
    assert len(rep.runs) == 2 and not rep.ok and len(rep.problems) == 1
    assert rep.problems[0].startswith("sub-02_task-rest_run-1: volume timing: ")
    assert "expected scanner volume markers ['R128', 'Scanner/Scan Start', 'Scan Start', 'TR'], found none" in rep.problems[0]
    assert "pass marker=<the scanner marker name>" in rep.problems[0]
    # the annotation that looks like a volume marker (one per volume, a TR apart) is named, with both ways to pass it
    assert re.search(r"'(Stimulus/)?Volume' occurs 12 times every 2\.000 s, one per volume of TR 2 s: likely the volume marker, "
                     r"marker: \[\"Volume\"\] \(eeg2fmri datasets --check: --marker Volume\)", rep.problems[0])
    assert f"sub-01_task-rest_run-1: {NVOL} volume(s) timed by {NVOL} 'R128' marker(s)" in rep.notes
    both = check_layout(root, "bids", marker=("R128", "Volume"))
    assert both.ok and f"sub-02_task-rest_run-1: {NVOL} volume(s) timed by {NVOL} 'Volume' marker(s)" in both.notes
    regular = check_layout(root, "bids", marker=None, first_onset=0.5)
    assert regular.ok and sum("timed by regular timing" in n for n in regular.notes) == 2
    assert not any("markers put it at" in n for n in regular.notes)  # the markers agree with 0.5 s
    off = check_layout(root, "bids", marker=None, first_onset=1.5)  # a second off the markers: noted, with the fix
    mine = [n for n in off.notes if n.startswith("sub-01_task-rest_run-1: regular timing puts")]
    assert off.ok and mine == ["sub-01_task-rest_run-1: regular timing puts volume 0 at 1.500 s, but the recording's 12 'Response/R128' markers put "
                               "it at 0.500 s (-1.000 s, dummy scans dropped): check --first-onset, or time by the markers (--marker R128)"], mine
    assert any(n.startswith("sub-02_task-rest_run-1: regular timing puts volume 0 at 1.500 s") and "(--marker Volume)" in n for n in off.notes)
    late = check_layout(root, "bids", marker=None, first_onset=5.0)  # 12 volumes from 5 s need 29 s of the 26 s recorded
    assert not late.ok and all("EEG is 26.0 s long but 12 volumes from 5.0 s need 29.0 s" in p for p in late.problems)
    assert main(["datasets", "--check", str(root)]) == 1
    assert "problem: sub-02_task-rest_run-1: volume timing:" in capsys.readouterr().out
    assert main(["datasets", "--check", str(root), "--marker", "R128", "Volume"]) == 0
    assert main(["datasets", "--check", str(root), "--first-onset", "0.5"]) == 0
    capsys.readouterr()
    for flag in (["--marker", "R128"], ["--first-onset", "0.5"]):
        assert main(["datasets", "bids", *flag]) == 2
        assert f"error: {flag[0]}: expected only together with --check ROOT" in capsys.readouterr().err


def test_benchmark_prepares_fmriprep_derivatives_from_the_train_config(tmp_path, capsys):
    """benchmark BIDS_ROOT --train-config '{"data": {"layout_options": {"derivatives": ..., "space": ...}}}' prepares the
    preprocessed BOLD of that space (user test: the key was ignored and the raw scanner-space BOLD used)."""
    import json

    import nibabel as nib

    from eeg2fmri.cli import main

    root, deriv = fmriprep_root(tmp_path)
    mask = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((4, 5, 3), np.uint8), np.diag([3.0, 3.0, 4.0, 1.0])), mask)
    cfg = {"data": {"layout_options": {"derivatives": str(deriv), "space": "MNI152NLin2009cAsym"},
                    "prepare": {"mask": str(mask), "check_artifacts": False}, "subjects": ["01"]}}
    code = main(["benchmark", str(root), "--models", "mean", "--train-config", json.dumps(cfg), "--out", str(tmp_path / "b"),
                 "--n-boot", "0", "-q"])
    man = json.loads((tmp_path / "b" / "prepared" / "manifest.json").read_text())
    assert all("derivatives" in v["bold"] and "space-MNI152NLin2009cAsym" in v["bold"] for v in man["provenance"]["inputs"].values())
    assert man["provenance"]["inputs"], man
    err = capsys.readouterr().err  # (the fixture's 12 volumes are too few to split: what matters here is what was prepared)
    assert code == 2 and "cannot split 12 volumes" in err, err


def test_fmriprep_non_steady_state_flags_decide_in_auto(tmp_path, caplog):
    """drop_volumes='auto' on fMRIPrep derivatives: the confounds' non_steady_state_outlier* columns (fMRIPrep's detector on
    the raw data) decide how many leading volumes are left out, with a warning where the package's own check disagrees."""
    import logging

    import nibabel as nib

    from eeg2fmri.datasets import prepare_dataset

    root, deriv = fmriprep_root(tmp_path)
    tsv = deriv / "sub-01/func/sub-01_task-rest_run-1_desc-confounds_timeseries.tsv"
    lines = tsv.read_text().splitlines()
    flags = [("1\t0" if i == 0 else "0\t1" if i == 1 else "0\t0") for i in range(len(lines) - 1)]
    tsv.write_text("\n".join([lines[0] + "\tnon_steady_state_outlier00\tnon_steady_state_outlier01"]
                             + [f"{row}\t{f}" for row, f in zip(lines[1:], flags)]) + "\n")
    mask = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((4, 5, 3), np.uint8), np.diag([3.0, 3.0, 4.0, 1.0])), mask)
    cfg = {"mask": str(mask), "check_artifacts": False}
    opts = {"subjects": ["01"], "layout_options": {"derivatives": str(deriv), "space": "MNI152NLin2009cAsym"}, "progress_bar": False}
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        ds = prepare_dataset(root, cfg, **opts)
    assert ds.runs[0].n_volumes == NVOL - 2 and next(iter(ds.provenance["inputs"].values()))["non_steady_state_volumes"] == 2
    assert "fMRIPrep's confounds flag the first 2 volume(s) as non-steady-state (non_steady_state_outlier*), this package's check found 0" in caplog.text
    assert prepare_dataset(root, {**cfg, "drop_volumes": 0}, **opts).runs[0].n_volumes == NVOL  # an explicit number wins


def test_check_reports_confounds_that_do_not_fit_the_bold(tmp_path):
    """datasets --check on fMRIPrep derivatives: a confounds file with fewer rows than the BOLD volumes is a problem, missing
    values after the first row a note naming the columns (user test: the check said OK, prepare failed later)."""
    from eeg2fmri.io.layouts import check_layout

    root, deriv = fmriprep_root(tmp_path)
    opts = {"derivatives": str(deriv), "space": "MNI152NLin2009cAsym"}
    assert not [p for p in check_layout(root, "bids", **opts).problems if "confounds" in p]
    tsv = deriv / "sub-01/func/sub-01_task-rest_run-1_desc-confounds_timeseries.tsv"
    lines = tsv.read_text().splitlines()
    cells = lines[4].split("\t")
    cells[1] = "n/a"
    lines[4] = "\t".join(cells)
    tsv.write_text("\n".join(lines[:-1]) + "\n")
    rep = check_layout(root, "bids", **opts)
    col = lines[0].split("\t")[1]
    assert not rep.ok and any(p.startswith(f"sub-01_task-rest_run-1: {tsv.name}: {NVOL - 1} rows for {NVOL} BOLD volumes; expected one row per volume")
                              for p in rep.problems), rep.problems
    assert any(n == f"sub-01_task-rest_run-1: {tsv.name}: missing values after the first row in {col}; prepare refuses these columns as confounds"
               for n in rep.notes), rep.notes


def test_mask_fmriprep_intersects_every_runs_brain_mask(tmp_path, caplog):
    """prepare option mask='fmriprep': the intersection of fMRIPrep's *_desc-brain_mask.nii.gz of every run (user test: the
    EPI mask of the data differed from it; the first run's mask alone kept voxels outside another subject's brain),
    equal to nilearn's intersect_masks; a missing mask, masks with nothing in common or on another grid: errors naming
    the file and the fixes."""
    import logging

    import nibabel as nib
    from nilearn.masking import intersect_masks

    from eeg2fmri.datasets import prepare_dataset

    root, deriv = fmriprep_root(tmp_path)
    opts = {"layout_options": {"derivatives": str(deriv), "space": "MNI152NLin2009cAsym"}, "progress_bar": False}
    cfg = {"mask": "fmriprep", "check_artifacts": False}
    stem = "sub-{s}/func/sub-{s}_task-rest_run-1_space-MNI152NLin2009cAsym_res-2_desc-{d}.nii.gz"
    with pytest.raises(Eeg2fmriInputError, match=r"sub-01_task-rest_run-1_space-MNI152NLin2009cAsym_res-2_desc-brain_mask\.nii\.gz: prepare "
                                                 r"option mask='fmriprep' expected fMRIPrep's brain mask of the first run here, found none"):
        prepare_dataset(root, cfg, **opts)
    bold = nib.load(deriv / stem.format(s="01", d="preproc_bold"))
    m1 = np.zeros(bold.shape[:3], np.uint8)
    m1[1:3, 1:4, :2] = 1
    nib.save(nib.Nifti1Image(m1, bold.affine), deriv / stem.format(s="01", d="brain_mask"))
    with pytest.raises(Eeg2fmriInputError, match=r"sub-02_task-rest_run-1_space-MNI152NLin2009cAsym_res-2_desc-brain_mask\.nii\.gz: prepare "
                                                 r"option mask='fmriprep' expected fMRIPrep's brain mask of run sub-02\S* here, found none; "
                                                 r"give a mask's path as mask, or use mask 'data'"):
        prepare_dataset(root, cfg, **opts)
    m2 = np.zeros(bold.shape[:3], np.uint8)
    m2[2:4, 0:3, :3] = 1
    nib.save(nib.Nifti1Image(m2, bold.affine), deriv / stem.format(s="02", d="brain_mask"))
    with caplog.at_level(logging.INFO, logger="eeg2fmri"):
        ds = prepare_dataset(root, cfg, **opts)
    ref = intersect_masks([nib.Nifti1Image(m, bold.affine) for m in (m1, m2)], threshold=1, connected=False)
    np.testing.assert_array_equal(ds.mask, np.asarray(ref.dataobj) > 0)
    assert ds.mask.sum() == 4 and (m1 > 0).sum() == 12
    assert "8 of the first run's 12 brain-mask voxels lie outside another run's brain mask and are left out" in caplog.text
    # the first subject alone: its own mask
    np.testing.assert_array_equal(prepare_dataset(root, cfg, subjects=["01"], **opts).mask, m1 > 0)
    m3 = np.zeros_like(m2)
    m3[0, 4, 2] = 1
    nib.save(nib.Nifti1Image(m3, bold.affine), deriv / stem.format(s="02", d="brain_mask"))
    with pytest.raises(Eeg2fmriInputError, match=r"desc-brain_mask\.nii\.gz: prepare option mask='fmriprep': the runs' fMRIPrep brain masks \(2\) "
                                                 r"have no voxel in common; check that every run is in the same --space"):
        prepare_dataset(root, cfg, **opts)
    nib.save(nib.Nifti1Image(m2, bold.affine @ np.diag([1.0, 1.0, 1.0, 1.0]) + np.array([[0, 0, 0, 2.0]] * 3 + [[0, 0, 0, 0]])),
             deriv / stem.format(s="02", d="brain_mask"))
    with pytest.raises(Eeg2fmriInputError, match=r"sub-02\S*desc-brain_mask\.nii\.gz: voxel-to-world affine differs from the BOLD's .* by up to 2 "
                                                 r"\(mm\), although the grid shapes agree"):
        prepare_dataset(root, cfg, **opts)
    with pytest.raises(Eeg2fmriInputError, match=r"prepare option mask='fmriprep' needs fMRIPrep's preprocessed BOLD"):
        prepare_dataset(root, {**cfg, "mask": "fmriprep"}, progress_bar=False)  # the raw BIDS BOLD


def test_no_run_error_repeats_the_derivatives_in_its_check_command(tmp_path):
    """A --space without preprocessed BOLD: the error's `datasets --check` command keeps --derivatives and --space (user
    test 2: it suggested a check of the raw folder)."""
    from eeg2fmri.io.layouts import find_runs_layout

    root, deriv = fmriprep_root(tmp_path)
    with pytest.raises(Eeg2fmriInputError, match=rf"Check the folder with `eeg2fmri datasets bids --check {root} --derivatives {deriv} "
                                                 r"--space MNI152NLin6Asym`"):
        find_runs_layout(root, derivatives=deriv, space="MNI152NLin6Asym")


def test_raw_bold_read_beside_fmriprep_derivatives_is_said(tmp_path, caplog):
    """A BIDS root with derivatives/fmriprep, prepared without --derivatives: a warning (and a check note) says the raw BOLD
    is read and how to use the preprocessed one (user test 2: benchmark silently used the raw BOLD)."""
    import logging

    from eeg2fmri.io.layouts import check_layout, find_runs_layout

    root, deriv = fmriprep_root(tmp_path)
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        find_runs_layout(root, strict=False)
    assert f"{deriv} exists but the raw BOLD is read; to use fMRIPrep's preprocessed BOLD pass --derivatives {deriv} --space NAME" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        find_runs_layout(root, derivatives=deriv, space="T1w")
    assert "exists but the raw BOLD is read" not in caplog.text
    assert any("exists but the raw BOLD is read" in n for n in check_layout(root, "bids").notes)


def test_runs_are_in_numeric_order(tmp_path):
    """run-10 comes after run-2 (a string sort put it first), in the pairing table and in the layout's run list."""
    from eeg2fmri.io.pairing import natural_key

    root = tmp_path / "runs"
    describe(root)
    for run in ("10", "2", "1"):
        eeg_run(root, f"sub-01_task-rest_run-{run}", seed=int(run))
        bold_run(root, f"sub-01_task-rest_run-{run}_bold.nii.gz", seed=int(run))
    assert [r.run for r in pair_bids_runs(root).rows] == ["1", "2", "10"]
    assert [r.key for r in find_runs_layout(root)] == [f"sub-01_task-rest_run-{k}" for k in ("1", "2", "10")]
    assert sorted(["10", "2", "01", "1", "b", "a2", "a10"], key=natural_key) == ["1", "01", "2", "10", "a2", "a10", "b"]
    assert natural_key(None) == natural_key("") == ()


def test_check_says_what_slice_timing_means_here(tmp_path):
    """User test 27: `datasets --check` said nothing of a run's SliceTiming (prepare does not read it)."""
    from eeg2fmri.io.bold import slice_timing_note

    root = tmp_path / "st"
    describe(root)
    eeg_run(root, "sub-01_task-rest_run-1")
    bold = bold_run(root, "sub-01_task-rest_run-1_bold.nii.gz")
    side = bold.with_name("sub-01_task-rest_run-1_bold.json")
    assert slice_timing_note(bold, TR) is None  # the fixture's sidecar gives no slice times
    side.write_text(json.dumps({"RepetitionTime": TR, "SliceTiming": [0.0, 0.95, 0.3, 1.25, 0.6, 1.6]}))
    note = ("sub-01_task-rest_run-1: sub-01_task-rest_run-1_bold.json: slices acquired 0.000-1.600 s after each volume's start "
            "(TR 2 s, 6 slices), not slice-time corrected: prepare does not correct slice times")
    assert any(n.startswith(note) for n in check_layout(root, "bids").notes)
    # a slice-time corrected derivative with its reference, inherited from the dataset's top-level sidecar (BIDS)
    side.unlink()
    (root / "task-rest_bold.json").write_text(json.dumps({"RepetitionTime": TR, "SliceTiming": [0.0, 1.0, 0.5],
                                                          "SliceTimingCorrected": True, "StartTime": 0.0}))
    assert slice_timing_note(bold, TR).startswith("task-rest_bold.json: slices acquired 0.000-1.000 s after each volume's start "
                                                  "(TR 2 s, 3 slices), slice-time corrected to 0.000 s (StartTime): ")
    (root / "task-rest_bold.json").write_text(json.dumps({"SliceTiming": "0 1 2"}))
    assert slice_timing_note(bold, TR) == "task-rest_bold.json: SliceTiming is not a list of seconds (0 1 2); it is not read here"


def test_check_finds_the_grid_differences_prepare_refuses(tmp_path):
    """User test 30: `datasets --check` passed runs on other grids (3 vs 4 mm, a box shifted by 2 mm) that prepare then
    refused; and the runs were compared only once every run's own problems were fixed."""
    import nibabel as nib

    from .test_layouts import write_bold

    root = tmp_path / "grids"
    describe(root)
    for sub in ("01", "02", "03"):
        eeg_run(root, f"sub-{sub}_task-rest_run-1", seed=int(sub))
    bold_run(root, "sub-01_task-rest_run-1_bold.nii.gz")
    write_bold(root / "sub-02" / "func" / "sub-02_task-rest_run-1_bold.nii.gz", (4, 5, 4, NVOL), TR, sidecar={"RepetitionTime": TR})
    p3 = bold_run(root, "sub-03_task-rest_run-1_bold.nii.gz")
    img = nib.load(p3)
    shifted = img.affine.copy()
    shifted[0, 3] += 2.0
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), shifted, img.header), p3)
    rep = check_layout(root, "bids")
    assert any("sub-02_task-rest_run-1: BOLD grid (4, 5, 4) differs from the first run's (sub-01_task-rest_run-1) (4, 5, 3); prepare "
               "refuses it unless the runs are put on one grid: prepare option grid='first'" in p for p in rep.problems), rep.problems
    assert any("sub-03_task-rest_run-1: BOLD voxel-to-world affine differs from the first run's (sub-01_task-rest_run-1) by up to 2 mm"
               in p for p in rep.problems), rep.problems


def test_a_stray_file_at_the_root_is_no_subject(sessions_root, tmp_path):
    """User test 32: a file such as notes_sub-01.txt at the BIDS root ended prepare and the check in an AttributeError from
    mne_bids.get_entity_vals."""
    (sessions_root / "truth_sub-01.npz").write_bytes(b"x")
    (sessions_root / "notes_sub-01.txt").write_text("x")
    assert [r.key for r in pair_bids_runs(sessions_root).paired] == ["sub-01_ses-1_task-rest_run-1", "sub-01_ses-2_task-rest_run-1"]
    with pytest.raises(Eeg2fmriInputError, match=r"subject\(s\) 7 not found in .*; available: 01, 02"):
        pair_bids_runs(sessions_root, subjects=["7"])
