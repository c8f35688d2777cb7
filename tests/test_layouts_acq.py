"""acq- labels in the layouts of BIDS-like published datasets (ds002336/ds002338, ds002158, ds004000).

They pair EEG and BOLD files as the generic BIDS pairing does (:func:`eeg2fmri.io.pairing.pair_bids_runs`): files
that differ only by ``acq-`` are separate runs with their own keys, an ``acq-`` label on both files must be the same,
a BOLD without ``acq-`` serves an EEG with one, and an EEG without ``acq-`` facing several BOLD files that differ by
it is refused with the files named. (NODDI, CWL, ds000116 and NeuroBOLT name their files by fixed patterns without
BIDS entities: no acq- label can occur in them.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from eeg2fmri.io.layouts import find_runs_layout, get_layout
from eeg2fmri.utils.validation import Eeg2fmriInputError

from .test_layouts import (
    BRAINCAP,
    EPFL_NVOL,
    EPFL_SF,
    EPFL_TR,
    XP1_NVOL,
    XP1_TR,
    build_ds4k,
    eeg_uv,
    write_bold,
    write_bv,
    xp_runs,
)


# ---------------------------------------------------------------------------------------------
# ds002336 / ds002338 (Lioi et al.)
# ---------------------------------------------------------------------------------------------
def test_xp_runs_that_differ_by_acq_pair_with_their_own_bold(tmp_path):
    root = tmp_path / "ds002336"
    xp_runs(root, "xp101", "task-motorloc_acq-a", XP1_TR, XP1_NVOL, seed=1)
    xp_runs(root, "xp101", "task-motorloc_acq-b", XP1_TR, XP1_NVOL, seed=2)
    for eeg in ("pp", "raw"):
        runs = find_runs_layout(root, layout="ds002336", eeg=eeg)
        assert [(r.key, r.acquisition) for r in runs] == [("sub-xp101_task-motorloc_acq-a", "a"), ("sub-xp101_task-motorloc_acq-b", "b")]
        for r in runs:
            assert f"acq-{r.acquisition}_" in r.eeg_path.name and r.bold_path.name == f"sub-xp101_task-motorloc_acq-{r.acquisition}_bold.nii.gz"
    pp = find_runs_layout(root, layout="ds002336")
    assert [Path(r.meta["marker_source"]).name for r in pp] == ["sub-xp101_task-motorloc_acq-a_eeg.vhdr", "sub-xp101_task-motorloc_acq-b_eeg.vhdr"]


def test_xp_acq_on_one_side_mismatched_or_ambiguous(tmp_path):
    # acq- on the EEG only: both EEG runs pair with the one BOLD file, with a note
    root = tmp_path / "eeg_acq"
    xp_runs(root, "xp101", "task-motorloc_acq-a", XP1_TR, XP1_NVOL, bold=False, seed=1)
    xp_runs(root, "xp101", "task-motorloc_acq-b", XP1_TR, XP1_NVOL, bold=False, seed=2)
    xp_runs(root, "xp101", "task-motorloc", XP1_TR, XP1_NVOL, raw=False, pp=False, seed=3)
    sc = get_layout("ds002336").scan(root)
    assert [(r.key, r.bold_path.name) for r in sc.runs] == [("sub-xp101_task-motorloc_acq-a", "sub-xp101_task-motorloc_bold.nii.gz"),
                                                            ("sub-xp101_task-motorloc_acq-b", "sub-xp101_task-motorloc_bold.nii.gz")]
    assert sc.notes == ["sub-xp101_task-motorloc_bold.nii.gz is the BOLD of 2 EEG runs (sub-xp101_task-motorloc_acq-a, "
                        "sub-xp101_task-motorloc_acq-b); each is prepared with it"] and not sc.skipped
    # acq- on both, different: never paired; both files named
    root = tmp_path / "mismatch"
    xp_runs(root, "xp101", "task-motorloc_acq-a", XP1_TR, XP1_NVOL, bold=False, seed=1)
    xp_runs(root, "xp101", "task-motorloc_acq-c", XP1_TR, XP1_NVOL, raw=False, pp=False, seed=2)
    sc = get_layout("ds002336").scan(root)
    assert not sc.runs
    assert sc.skipped == [
        "sub-xp101_task-motorloc_acq-a: EEG (sub-xp101_task-motorloc_acq-a_eeg_pp.vhdr) but no BOLD func/sub-xp101_task-motorloc_acq-a_bold.nii.gz: "
        "BOLD with another acq- label only (sub-xp101_task-motorloc_acq-c_bold.nii.gz; an acq- label on both files must be the same: rename them "
        "so that they agree)",
        "sub-xp101_task-motorloc_acq-c: BOLD but no EEG derivatives/sub-*/eeg_pp/*_eeg_pp.vhdr"]
    # an EEG without acq- and two BOLD files that differ by it: which one is its recording is unknown
    root = tmp_path / "ambiguous"
    xp_runs(root, "xp101", "task-motorloc", XP1_TR, XP1_NVOL, bold=False, seed=1)
    for i, acq in enumerate("ab"):
        xp_runs(root, "xp101", f"task-motorloc_acq-{acq}", XP1_TR, XP1_NVOL, raw=False, pp=False, seed=2 + i)
    with pytest.raises(Eeg2fmriInputError, match=r"sub-xp101_task-motorloc_eeg_pp.vhdr: expected one BOLD file for this EEG run, found 2 that differ "
                                                  r"by their acq- label \(sub-xp101_task-motorloc_acq-a_bold.nii.gz, sub-xp101_task-motorloc_acq-b_bold.nii.gz\); "
                                                  r"give the EEG file the acq- label of its BOLD file"):
        find_runs_layout(root, layout="ds002336")


def test_xp_files_with_the_same_entities_are_refused(tmp_path):
    """Two BOLD files of one sub/task/acq/run (here .nii and .nii.gz) used to overwrite each other silently."""
    root = tmp_path / "ds002338"
    xp_runs(root, "xp220", "task-1dNF_acq-a_run-01", 1.0, 9, pp_prefix="d_", seed=1)
    write_bold(root / "sub-xp220/func/sub-xp220_task-1dNF_acq-a_run-01_bold.nii", (5, 4, 3, 9), 1.0, seed=2)
    with pytest.raises(Eeg2fmriInputError, match=r"sub-xp220_task-1dNF_acq-a_run-01_bold.nii.gz: expected one BOLD file per sub/ses/task/acq/run, "
                                                  r"found it and sub-xp220_task-1dNF_acq-a_run-01_bold.nii with the same entities "
                                                  r"\(sub-xp220_task-1dNF_acq-a_run-01\)"):
        find_runs_layout(root, layout="ds002338")


# ---------------------------------------------------------------------------------------------
# ds002158 (CN-EPFL)
# ---------------------------------------------------------------------------------------------
def epfl_files(root: Path, stem: str, *, eeg=True, bold=True, seed=0) -> None:
    """One CN-EPFL run named ``stem`` (``sub-XX_ses-001_task-main[_acq-L]_run-00N``)."""
    sub = stem.split("_")[0]
    base = root / sub / "ses-001"
    n = int((0.5 + EPFL_NVOL * EPFL_TR + 0.7) * EPFL_SF)
    mk = [("Response", "R128", int(round((0.5 + k * EPFL_TR) * EPFL_SF))) for k in range(EPFL_NVOL)]
    if eeg:
        write_bv(base / "eeg", f"{stem}_eeg", eeg_uv(64, n, seed), EPFL_SF, BRAINCAP, mk, fmt="INT_16", resolution=0.5)
    if bold:
        write_bold(base / "func" / f"{stem}_bold.nii.gz", (4, 6, 5, EPFL_NVOL), EPFL_TR, seed=seed, sidecar={"RepetitionTime": EPFL_TR, "TaskName": "main"})


def test_ds002158_runs_that_differ_by_acq(tmp_path):
    root = tmp_path / "ds002158-download"
    for i, acq in enumerate("ab"):
        epfl_files(root, f"sub-02_ses-001_task-main_acq-{acq}_run-001", seed=i)
    epfl_files(root, "sub-03_ses-001_task-main_acq-x_run-001", bold=False, seed=3)  # acq- on the EEG only
    epfl_files(root, "sub-03_ses-001_task-main_run-001", eeg=False, seed=4)
    epfl_files(root, "sub-04_ses-001_task-main_acq-a_run-001", bold=False, seed=5)  # different acq- labels
    epfl_files(root, "sub-04_ses-001_task-main_acq-b_run-001", eeg=False, seed=6)
    sc = get_layout("ds002158").scan(root)
    assert [(r.key, r.acquisition, r.eeg_path.name.replace("_eeg.vhdr", ""), r.bold_path.name.replace("_bold.nii.gz", "")) for r in sc.runs] == [
        ("sub-02_ses-001_task-main_acq-a_run-001", "a", "sub-02_ses-001_task-main_acq-a_run-001", "sub-02_ses-001_task-main_acq-a_run-001"),
        ("sub-02_ses-001_task-main_acq-b_run-001", "b", "sub-02_ses-001_task-main_acq-b_run-001", "sub-02_ses-001_task-main_acq-b_run-001"),
        ("sub-03_ses-001_task-main_acq-x_run-001", "x", "sub-03_ses-001_task-main_acq-x_run-001", "sub-03_ses-001_task-main_run-001")]
    assert sorted(sc.skipped) == [
        "sub-04_ses-001_task-main_acq-a_run-001: EEG but no BOLD func/sub-04_ses-001_task-main_acq-a_run-001_bold.nii.gz: BOLD with another acq- "
        "label only (sub-04_ses-001_task-main_acq-b_run-001_bold.nii.gz; an acq- label on both files must be the same: rename them so that they agree)",
        "sub-04_ses-001_task-main_acq-b_run-001: BOLD but no EEG eeg/sub-04_ses-001_task-main_acq-b_run-001_eeg.vhdr"]
    assert not sc.notes
    # an EEG without acq- beside BOLD files that differ by it: refused, the files named
    epfl_files(root, "sub-02_ses-001_task-main_run-001", bold=False, seed=7)
    with pytest.raises(Eeg2fmriInputError, match=r"sub-02_ses-001_task-main_run-001_eeg.vhdr: expected one BOLD file for this EEG run, found 2 that "
                                                  r"differ by their acq- label \(sub-02_ses-001_task-main_acq-a_run-001_bold.nii.gz, "
                                                  r"sub-02_ses-001_task-main_acq-b_run-001_bold.nii.gz\)"):
        find_runs_layout(root, layout="ds002158")
    assert [r.key for r in find_runs_layout(root, layout="ds002158", subjects=["03"])] == ["sub-03_ses-001_task-main_acq-x_run-001"]


# ---------------------------------------------------------------------------------------------
# ds004000 (EEG only)
# ---------------------------------------------------------------------------------------------
def test_ds004000_recordings_that_differ_by_acq_keep_their_own_keys(tmp_path):
    root = build_ds4k(tmp_path / "ds004000")
    d = root / "sub-000" / "eeg"
    src = d / "sub-000_task-proposer_run-1_eeg"
    for acq in ("a", "b"):  # the proposer recording twice, under two acq- labels
        for ext in (".vhdr", ".vmrk", ".eeg"):
            text = src.with_suffix(ext).read_bytes().replace(b"sub-000_task-proposer_run-1_eeg", f"sub-000_task-proposer_acq-{acq}_run-1_eeg".encode())
            (d / f"sub-000_task-proposer_acq-{acq}_run-1_eeg{ext}").write_bytes(text)
    runs = find_runs_layout(root, layout="ds004000", subjects=["000"], task="proposer")
    assert [(r.key, r.acquisition, r.eeg_path.name) for r in runs] == [
        ("sub-000_task-proposer_run-1", None, "sub-000_task-proposer_run-1_eeg.vhdr"),
        ("sub-000_task-proposer_acq-a_run-1", "a", "sub-000_task-proposer_acq-a_run-1_eeg.vhdr"),
        ("sub-000_task-proposer_acq-b_run-1", "b", "sub-000_task-proposer_acq-b_run-1_eeg.vhdr")]
    assert len({r.key for r in runs}) == 3
