"""ds003768 (Penn State sleep study): a tiny fixture reproducing the OpenNeuro listing, paired and prepared end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eeg2fmri.io.layouts import (
    check_layout,
    detect_layout,
    find_runs_layout,
    get_layout,
    layout_volume_onsets,
    read_layout_bold,
    read_layout_eeg,
)
from eeg2fmri.io.layouts.ds003768 import read_sleep_stages
from eeg2fmri.utils.validation import Eeg2fmriInputError

from .test_layouts import eeg_uv, write_bold, write_bv

SF, TR, NVOL = 250.0, 2.1, 8
CH = ["Fp1", "Fp2", "F3", "F4", "C3", "C4", "O1", "O2", "ECG"]  # 32 channels in the dataset; a few here
FIRST = 1.3  # s: first R128


def build_ds003768(root: Path) -> Path:
    """sub-01 (rest run-1, sleep run-1, sleep run-2), sub-02 (rest run-1 only; EEG of sleep run-1 without BOLD), sleep stages."""
    (root / "sourcedata").mkdir(parents=True)
    (root / "dataset_description.json").write_text('{"Name": "ds003768 fixture", "BIDSVersion": "1.4.0"}')
    runs = {"01": [("rest", "1"), ("sleep", "1"), ("sleep", "2")], "02": [("rest", "1"), ("sleep", "1")]}
    for s, (sub, rr) in enumerate(runs.items()):
        for k, (task, run) in enumerate(rr):
            stem = f"sub-{sub}_task-{task}_run-{run}"
            n = int((FIRST + NVOL * TR + 1.0) * SF)
            mk = [("Response", "R128", int(round((FIRST + v * TR) * SF))) for v in range(NVOL)] + [("Stimulus", "S  1", 10)]
            write_bv(root / f"sub-{sub}" / "eeg", f"{stem}_eeg", eeg_uv(len(CH), n, 10 * s + k), SF, CH, sorted(mk, key=lambda m: m[2]),
                     fmt="INT_16", resolution=0.5)
            if not (sub == "02" and task == "sleep"):
                write_bold(root / f"sub-{sub}" / "func" / f"{stem}_bold.nii.gz", (5, 5, 4, NVOL), TR, seed=10 * s + k,
                           sidecar={"RepetitionTime": TR, "TaskName": task})
        (root / f"sub-{sub}" / "anat").mkdir()
    # sub-01's file has a leading subject column and padded names (both spellings exist in the dataset)
    (root / "sourcedata" / "sub-01-sleep-stage.tsv").write_text(
        "subject\tsession \tepoch_start_time_sec\t30-sec_epoch_sleep_stage\n"
        "1\ttask-sleep_run-1\t0\tW (uncertain)\n1\ttask-sleep_run-1\t8.4\t1\n1\ttask-sleep_run-1\t12.6\t2 or 3 (unscorable)\n"
        "1\ttask-sleep_run-2\t0\t2\n1\ttask-rest_run-1\t0\tW\n")
    (root / "sourcedata" / "sub-02-sleep-stage.tsv").write_text("session\tepoch_start_time_sec\t30-sec_epoch_sleep_stage\ntask-rest_run-1\t0\tW\n")
    return root


@pytest.fixture(scope="module")
def ds3768_root(tmp_path_factory):
    return build_ds003768(tmp_path_factory.mktemp("ds3768") / "ds003768")


def test_ds003768_pairing_stages_and_sync(ds3768_root):
    assert detect_layout(ds3768_root) == "ds003768"
    runs = find_runs_layout(ds3768_root, layout="auto")
    assert [r.key for r in runs] == ["sub-01_task-rest_run-1", "sub-01_task-sleep_run-1", "sub-01_task-sleep_run-2", "sub-02_task-rest_run-1"]
    assert all(r.layout == "ds003768" and r.marker == ("R128",) and r.tr == 2.1 for r in runs)
    assert runs[1].meta["sleep_stages"] == ((0.0, "W (uncertain)"), (8.4, "1"), (12.6, "2 or 3 (unscorable)"))
    assert runs[2].meta["sleep_stages"] == ((0.0, "2"),)
    assert runs[1].meta["volume_label_epochs"]["sleep_stage"] == ((0.0, "W"), (8.4, "1"), (12.6, None))
    assert runs[1].meta["volume_label_epochs"]["sleep_stage_certain"] == ((0.0, None), (8.4, "1"), (12.6, None))
    assert [r.task for r in find_runs_layout(ds3768_root, layout="ds003768", tasks="sleep")] == ["sleep", "sleep"]
    raw = read_layout_eeg(runs[0])
    assert dict(zip(raw.ch_names, raw.get_channel_types()))["ECG"] == "ecg"
    np.testing.assert_allclose(raw.get_data(picks="Fp1")[0, :3] * 1e6, np.round(eeg_uv(len(CH), 10, 0)[0, :3] / 0.5) * 0.5, atol=1e-6)
    img, tr = read_layout_bold(runs[0])
    assert img.shape == (5, 5, 4, NVOL) and tr == pytest.approx(2.1)
    sync = layout_volume_onsets(runs[0], raw, img.shape[3], tr)
    np.testing.assert_allclose(sync.onsets, FIRST + np.arange(NVOL) * TR, atol=1.0 / SF)
    with pytest.raises(Eeg2fmriInputError, match=r"ds003768: tasks=\['nap'\]; expected 'rest' and/or 'sleep'"):
        find_runs_layout(ds3768_root, layout="ds003768", tasks=["nap"])


def test_ds003768_check_names_unpaired_files(ds3768_root, capsys):
    from eeg2fmri.cli import main

    rep = check_layout(ds3768_root)
    assert rep.layout == "ds003768" and rep.ok
    assert rep.skipped == ["sub-02_task-sleep_run-1: EEG sub-02_task-sleep_run-1_eeg.vhdr left out: no BOLD run; expected "
                           f"{ds3768_root}/sub-02/func/sub-02_task-sleep_run-1_bold.nii.gz (or .nii)"]
    assert main(["datasets", "--check", str(ds3768_root)]) == 0
    out = capsys.readouterr().out
    assert "layout ds003768: 4 complete run(s); OK" in out and "4 paired, 1 left out" in out
    assert main(["datasets", "ds003768"]) == 0
    assert "'R128'" in capsys.readouterr().out


def test_read_sleep_stages_errors(tmp_path):
    p = tmp_path / "sub-01-sleep-stage.tsv"
    p.write_text("run\tonset\nx\t0\n")
    with pytest.raises(Eeg2fmriInputError, match=r"expected columns session, epoch_start_time_sec and 30-sec_epoch_sleep_stage, found \['run', 'onset'\]"):
        read_sleep_stages(p)
    assert get_layout("ds003768").TR == 2.1


def test_prepare_ds003768(ds3768_root, tmp_path):
    import nibabel as nib

    from eeg2fmri.datasets import prepare_dataset

    mask = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((5, 5, 4), np.uint8), np.diag([3.0, 3.0, 4.0, 1.0])), mask)
    ds = prepare_dataset(ds3768_root, {"mask": str(mask), "check_artifacts": False}, layout="ds003768", progress_bar=False)
    assert ds.tr == pytest.approx(2.1) and ds.ch_names == CH[:-1] and ds.provenance["layout"] == "ds003768"
    auto = prepare_dataset(ds3768_root, {"mask": str(mask), "check_artifacts": False}, layout="auto", progress_bar=False, subjects=["02"])
    assert auto.provenance["layout"] == "ds003768" and auto.provenance["layout_requested"] == "auto"  # the one detected (user test 17)
    assert [r.subject for r in ds.runs] == ["01", "01", "01", "02"]
    # the sleep stages per volume in the prepared dataset (user test 17: they stopped at run.meta): volume k at k * TR
    # from the run's first volume; W (uncertain) to 8.4 s, 1 to 12.6 s, then an unscorable epoch
    stored = ds.provenance["inputs"]["sub-01_task-sleep_run-1"]["volume_labels"]
    assert stored["sleep_stage"] == ["W"] * 4 + ["1"] * 2 + [None] * 2
    assert stored["sleep_stage_certain"] == [None] * 4 + ["1"] * 2 + [None] * 2
    assert ds.provenance["inputs"]["sub-01_task-sleep_run-2"]["volume_labels"]["sleep_stage"] == ["2"] * NVOL
    from eeg2fmri.datasets import load_prepared
    from eeg2fmri.evaluation.classify import stored_volume_labels

    ds.save(tmp_path / "prep")
    again = load_prepared(tmp_path / "prep")  # as classify reads it back from disk
    lab = stored_volume_labels(again, "sleep_stage")
    assert list(lab[1]) == ["W"] * 4 + ["1"] * 2 + [None] * 2 and list(lab[2]) == ["2"] * NVOL
    with pytest.raises(Eeg2fmriInputError, match=r"got 'stage'; this dataset stores \['sleep_stage', 'sleep_stage_certain'\]\."):
        stored_volume_labels(ds, "stage")
    for r in ds.runs:
        assert r.bold.shape == (NVOL, 100) and r.n_volumes == len(r.window_end) == NVOL


def test_sleep_stage_labels_normalised_and_per_volume():
    from eeg2fmri.io.layouts import labels_of_volumes
    from eeg2fmri.io.layouts.ds003768 import normalise_sleep_stage

    assert [normalise_sleep_stage(x) for x in ("W", " w ", "W (uncertain)", "N2", "REM", "R", "S4", "unscorable",
                                                "2 or 3 (unscorable)", "", "?")] == [
        ("W", False), ("W", False), ("W", True), ("2", False), ("R", False), ("R", False), ("3", False), (None, False),
        (None, False), (None, False), (None, False)]
    ep = ((0.0, "W"), (30.0, "1"), (60.0, None))
    assert labels_of_volumes(ep, np.array([-1.0, 0.0, 29.9, 30.0, 61.0, 89.9, 90.0])) == [None, "W", "W", "1", None, None, None]
    assert labels_of_volumes(((0.0, "W"),), np.array([0.0, 29.0, 31.0]), epoch_s=30.0) == ["W", "W", None]
    # an epoch missing from the file is a gap, not the previous stage carried on (review)
    assert labels_of_volumes(((0.0, "W"), (60.0, "2")), np.array([10.0, 40.0, 70.0]), epoch_s=30.0) == ["W", None, "2"]
    assert labels_of_volumes((), np.arange(2.0)) == [None, None]
