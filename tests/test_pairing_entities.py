"""BIDS pairing by entities: the EEG's acq- label, zero-padded run indices, non-alphanumeric labels, unknown subjects."""

from __future__ import annotations

import numpy as np
import pytest

from eeg2fmri.io import find_runs
from eeg2fmri.io.layouts import check_layout, find_runs_layout
from eeg2fmri.io.pairing import pair_bids_runs
from eeg2fmri.utils.validation import Eeg2fmriInputError

from .test_pairing import bold_run, describe, eeg_run


@pytest.fixture
def two_acq_root(tmp_path):
    """sub-01 recorded twice in one run: acq-a and acq-b, each with its own EEG and BOLD."""
    root = tmp_path / "two_acq"
    describe(root)
    for i, acq in enumerate(("a", "b")):
        eeg_run(root, f"sub-01_task-rest_acq-{acq}_run-1", seed=i)
        bold_run(root, f"sub-01_task-rest_acq-{acq}_run-1_bold.nii.gz", seed=i)
    return root


def test_eeg_acq_label_pairs_with_the_bold_of_the_same_acq(two_acq_root, tmp_path):
    table = pair_bids_runs(two_acq_root)
    assert [(r.key, r.status, r.acquisition) for r in table.rows] == [
        ("sub-01_task-rest_acq-a_run-1", "paired", "a"), ("sub-01_task-rest_acq-b_run-1", "paired", "b")]
    assert [(r.eeg_path.name, r.bold_path.name) for r in table.rows] == [
        ("sub-01_task-rest_acq-a_run-1_eeg.vhdr", "sub-01_task-rest_acq-a_run-1_bold.nii.gz"),
        ("sub-01_task-rest_acq-b_run-1_eeg.vhdr", "sub-01_task-rest_acq-b_run-1_bold.nii.gz")]
    assert table.notes == []
    runs = find_runs(two_acq_root)
    assert [(r.key, r.acquisition) for r in runs] == [("sub-01_task-rest_acq-a_run-1", "a"), ("sub-01_task-rest_acq-b_run-1", "b")]
    lay = find_runs_layout(two_acq_root)
    assert [(r.key, r.bold_path.name) for r in lay] == [("sub-01_task-rest_acq-a_run-1", "sub-01_task-rest_acq-a_run-1_bold.nii.gz"),
                                                        ("sub-01_task-rest_acq-b_run-1", "sub-01_task-rest_acq-b_run-1_bold.nii.gz")]
    assert check_layout(two_acq_root, "bids").ok
    # a filter on acq now only keeps the EEG run of that acq; the other is left out, never paired across acq labels
    rows = pair_bids_runs(two_acq_root, bold_entities={"acq": "b"}).rows
    assert [(r.key, r.status) for r in rows] == [("sub-01_task-rest_acq-a_run-1", "left out"), ("sub-01_task-rest_acq-b_run-1", "paired")]
    assert rows[0].reason.startswith("no BOLD run left: bold_entities {'acq': 'b'} excluded every BOLD file of the run (sub-01_task-rest_acq-a_run-1_bold")


def test_two_acq_runs_prepare_together(two_acq_root, tmp_path):
    import nibabel as nib

    from eeg2fmri.datasets import prepare_dataset

    mask = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((4, 5, 3), np.uint8), np.diag([3.0, 3.0, 4.0, 1.0])), mask)
    ds = prepare_dataset(two_acq_root, {"mask": str(mask), "check_artifacts": False}, progress_bar=False)
    assert [r.key for r in ds.runs] == ["sub-01_task-rest_acq-a_run-1", "sub-01_task-rest_acq-b_run-1"]
    assert [v["bold"].rsplit("/", 1)[-1] for v in ds.provenance["inputs"].values()] == [
        "sub-01_task-rest_acq-a_run-1_bold.nii.gz", "sub-01_task-rest_acq-b_run-1_bold.nii.gz"]


def test_acq_on_one_side_or_mismatched(tmp_path):
    # BOLD acq- where the EEG has none: unchanged, the filter advice
    root = tmp_path / "bold_acq"
    describe(root)
    eeg_run(root, "sub-01_task-rest_run-1")
    for acq in ("mb", "sb"):
        bold_run(root, f"sub-01_task-rest_acq-{acq}_run-1_bold.nii.gz")
    with pytest.raises(Eeg2fmriInputError, match=r"found 2 BOLD files match .*; choose one with bold_entities=\{'acq': 'mb'\} \(command line: --bold-filter acq=mb\)"):
        find_runs(root)
    assert find_runs(root, bold_entities={"acq": "sb"})[0].key == "sub-01_task-rest_run-1"
    # EEG acq- with a BOLD that has none: they pair (an entity present on one file only is not compared); two EEG acq
    # runs on one BOLD are both paired, with a note
    root = tmp_path / "eeg_acq"
    describe(root)
    eeg_run(root, "sub-01_task-rest_acq-a_run-1")
    eeg_run(root, "sub-01_task-rest_acq-b_run-1", seed=1)
    bold_run(root, "sub-01_task-rest_run-1_bold.nii.gz")
    table = pair_bids_runs(root)
    assert [(r.key, r.status, r.bold_path.name) for r in table.rows] == [
        ("sub-01_task-rest_acq-a_run-1", "paired", "sub-01_task-rest_run-1_bold.nii.gz"),
        ("sub-01_task-rest_acq-b_run-1", "paired", "sub-01_task-rest_run-1_bold.nii.gz")]
    assert table.notes == ["sub-01_task-rest_run-1_bold.nii.gz is the BOLD of 2 EEG runs (sub-01_task-rest_acq-a_run-1, sub-01_task-rest_acq-b_run-1); each is prepared with it"]
    # acq- on both but different: not paired, and both files named
    root = tmp_path / "mismatch"
    describe(root)
    eeg_run(root, "sub-01_task-rest_acq-a_run-1")
    bold_run(root, "sub-01_task-rest_acq-c_run-1_bold.nii.gz")
    table = pair_bids_runs(root)
    assert [(r.key, r.status) for r in table.rows] == [("sub-01_task-rest_acq-a_run-1", "left out"), ("sub-01_task-rest_acq-c_run-1", "left out")]
    assert table.rows[1].reason == "BOLD without an EEG run of the same sub/ses/task/run/acq (the EEG has acq-a)"
    with pytest.raises(Eeg2fmriInputError, match=r"sub-01_task-rest_acq-a_run-1_eeg.vhdr: found EEG but no BOLD run with acq-a: found only "
                                                  r"sub-01_task-rest_acq-c_run-1_bold.nii.gz, with another acq- label .*; rename the files so that their acq- labels agree"):
        find_runs(root)


def test_run_indices_compare_as_integers(tmp_path):
    root = tmp_path / "pad"
    describe(root)
    eeg_run(root, "sub-01_task-rest_run-1")
    bold_run(root, "sub-01_task-rest_run-01_bold.nii.gz")
    eeg_run(root, "sub-01_task-rest_run-02", seed=1)
    bold_run(root, "sub-01_task-rest_run-2_bold.nii.gz", seed=1)
    eeg_run(root, "sub-01_task-rest_run-3", seed=2)
    bold_run(root, "sub-01_task-rest_run-13_bold.nii.gz", seed=2)  # 13 is not 3
    table = pair_bids_runs(root)
    assert {r.key: (r.status, r.bold_path.name if r.bold_path else None) for r in table.rows} == {
        "sub-01_task-rest_run-1": ("paired", "sub-01_task-rest_run-01_bold.nii.gz"),  # keys keep the EEG's spelling
        "sub-01_task-rest_run-02": ("paired", "sub-01_task-rest_run-2_bold.nii.gz"),
        "sub-01_task-rest_run-3": ("left out", None),
        "sub-01_task-rest_run-13": ("left out", "sub-01_task-rest_run-13_bold.nii.gz")}
    assert sorted(r.key for r in find_runs_layout(root)) == ["sub-01_task-rest_run-02", "sub-01_task-rest_run-1"]


@pytest.mark.parametrize("where", ["eeg", "bold"])
def test_non_alphanumeric_label_is_refused_naming_the_file(tmp_path, capsys, where):
    from eeg2fmri.cli import main

    root = tmp_path / "hyphen"
    describe(root)
    if where == "eeg":
        eeg_run(root, "sub-01_task-eyes-closed_run-1")
        bold_run(root, "sub-01_task-eyes-closed_run-1_bold.nii.gz")
        name, seg, fix = "sub-01_task-eyes-closed_run-1_eeg.vhdr", "task-eyes-closed", "task-eyesclosed"
    else:  # mne-bids would read task-eyes from it and pair nothing, silently
        eeg_run(root, "sub-01_task-rest_run-1")
        bold_run(root, "sub-01_task-rest_acq-mb+4_run-1_bold.nii.gz")
        name, seg, fix = "sub-01_task-rest_acq-mb+4_run-1_bold.nii.gz", "acq-mb+4", "acq-mb4"
    msg = (rf"{name}: expected KEY-LABEL entities with alphanumeric labels \(BIDS allows letters and digits only; '_' separates entities\), "
           rf"found '{seg}'; rename the run's files \(EEG, BOLD and sidecars\), e.g. to '{fix}'")
    with pytest.raises(Eeg2fmriInputError, match=msg.replace("+", r"\+")):
        pair_bids_runs(root)
    with pytest.raises(Eeg2fmriInputError, match=msg.replace("+", r"\+")):
        find_runs_layout(root)
    assert main(["datasets", "--check", str(root)]) == 1
    out = capsys.readouterr().out
    assert f"problem: {root / 'sub-01' / where.replace('bold', 'func') / name}: expected KEY-LABEL entities" in out
    assert main(["prepare", str(root), "--out", str(tmp_path / "p"), "-q"]) == 2
    assert f"found '{seg}'" in capsys.readouterr().err


def test_unknown_subjects_are_named_with_the_available_ones(tmp_path, capsys):
    from eeg2fmri.cli import main

    root = tmp_path / "subs"
    describe(root)
    for i, sub in enumerate(("01", "02", "003", "0003")):
        eeg_run(root, f"sub-{sub}_task-rest_run-1", seed=i)
        bold_run(root, f"sub-{sub}_task-rest_run-1_bold.nii.gz", seed=i)
    with pytest.raises(Eeg2fmriInputError, match=r"^subject\(s\) 07 not found in .*subs; available: 01, 02, 003, 0003; pass subject labels from that list \(without 'sub-'\)\.$"):
        pair_bids_runs(root, subjects=["07"])
    # an unpadded label that matches exactly one padded label: said, not remapped
    with pytest.raises(Eeg2fmriInputError, match=r"subject\(s\) 1 not found in .*; available: 01, 02, 003, 0003 \('1' is not '01': labels are matched exactly, as written after 'sub-'; pass 01\); pass subject"):
        find_runs(root, subjects=["1"])
    with pytest.raises(Eeg2fmriInputError, match=r"subject\(s\) 3 not found in .*; available: 01, 02, 003, 0003; pass subject labels"):
        find_runs_layout(root, subjects=["3"])  # two padded labels match: no guess
    # some found: the others are named in the table's notes, the found ones paired
    table = pair_bids_runs(root, subjects=["sub-01", "7"])
    assert [r.key for r in table.paired] == ["sub-01_task-rest_run-1"]
    assert table.notes == [f"subject(s) 7 not found in {root}; available: 01, 02, 003, 0003"]
    assert main(["prepare", str(root), "--out", str(tmp_path / "p"), "--subjects", "07", "-q"]) == 2
    assert f"subject(s) 07 not found in {root}; available: 01, 02, 003, 0003" in capsys.readouterr().err
    assert main(["datasets", "--check", str(root), "--subjects", "2"]) == 1
    assert "problem: subject(s) 2 not found in" in capsys.readouterr().out
