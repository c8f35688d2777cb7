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
        "1\ttask-sleep_run-1\t0\tW\n1\ttask-sleep_run-1\t30\t1\n1\ttask-sleep_run-2\t0\t2\n1\ttask-rest_run-1\t0\tW\n")
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
    assert runs[1].meta["sleep_stages"] == ((0.0, "W"), (30.0, "1")) and runs[2].meta["sleep_stages"] == ((0.0, "2"),)
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
    for r in ds.runs:
        assert r.bold.shape == (NVOL, 100) and r.n_volumes == len(r.window_end) == NVOL
