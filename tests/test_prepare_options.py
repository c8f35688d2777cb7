"""Prepare options checked before any work, and BOLD/mask problems named with their file."""

from __future__ import annotations

import re
import shutil

import nibabel as nib
import numpy as np
import pytest

from eeg2fmri.datasets import prepare_dataset
from eeg2fmri.utils.validation import Eeg2fmriInputError


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"reference": "Cz"}, r"prepare option reference: expected 'average' or null .* got 'Cz'; .*raw\.set_eeg_reference"),
        ({"reference": "avg"}, r"prepare option reference: expected 'average' or null"),
        ({"l_freq": -1}, r"prepare option: expected l_freq > 0, got -1; or null to switch l_freq off"),
        ({"notch": "sixty"}, r"prepare option: expected notch > 0, got 'sixty'"),
        ({"h_freq": 40, "l_freq": 45}, r"l_freq=45, h_freq=40: expected h_freq above l_freq"),
        ({"h_freq": 60}, r"_eeg\.vhdr: prepare option h_freq=60 Hz is at or above the Nyquist frequency \(50 Hz\) of this recording's 100 Hz"),
        ({"first_onset": "7.7"}, r"prepare option first_onset: expected the onset of volume 0 in seconds .* got '7\.7'"),
        ({"first_onset": {"sub-09_task-rest_run-1": 1.0}}, r"first_onset names run\(s\) \['sub-09_task-rest_run-1'\] that are not in the data set; the runs are \['sub-01"),
        ({"first_onset": {"sub-01_task-rest_run-1": None}}, r"first_onset\['sub-01_task-rest_run-1'\]: expected the onset"),
        ({"marker": [128]}, r"prepare option marker: expected a list of marker names"),
        ({"mask": "no/such/mask.nii.gz"}, r"prepare option mask: expected 'data', 'mni', 'fmriprep' or the path of a mask NIfTI, got 'no/such/mask\.nii\.gz' \(no such file\)"),
        ({"raw_sfreq": 0}, r"expected raw_sfreq > 0, got 0"),
    ],
)
def test_bad_prepare_options_are_refused_with_the_fix(tiny_bids, config, message):
    with pytest.raises(Eeg2fmriInputError, match=message):
        prepare_dataset(tiny_bids, config, progress_bar=False)


def test_first_onset_per_run_equals_the_marker_timing(tiny_bids, tiny_prepared):
    """Without markers, one onset per run (runs that started at different times) gives the markers' volume grid."""
    onsets = {r.key: float(r.onsets[0]) for r in tiny_prepared.runs}
    assert len(set(np.round(list(onsets.values()), 3))) == len(onsets)  # the runs did start at different times
    ds = prepare_dataset(tiny_bids, {"marker": None, "first_onset": onsets}, progress_bar=False)
    for a, b in zip(ds.runs, tiny_prepared.runs):
        assert a.key == b.key
        np.testing.assert_allclose(a.onsets, b.onsets, atol=0.02)  # markers: sample-level jitter around the TR grid
        np.testing.assert_array_equal(a.window_end, b.window_end)


def _copy(tiny_bids, tmp_path):
    root = tmp_path / "bids"
    shutil.copytree(tiny_bids, root)
    return root


def test_nan_voxels_inside_the_mask_are_named(tiny_bids, tiny_prepared, tmp_path):
    root = _copy(tiny_bids, tmp_path)
    path = next((root / "sub-02" / "func").glob("*_bold.nii.gz"))
    img = nib.load(path)
    data = np.asarray(img.dataobj, dtype=np.float32).copy()
    i, j, k = np.argwhere(tiny_prepared.mask)[5]
    data[i, j, k, 3:5] = np.nan
    nib.save(nib.Nifti1Image(data, img.affine, img.header), path)
    with pytest.raises(Eeg2fmriInputError, match=rf"sub-02_task-rest_run-1_bold\.nii\.gz: 1 voxel\(s\) inside the brain mask hold NaN or Inf "
                                                 rf"\(2 values; voxels \[\({i}, {j}, {k}\)\] \(i, j, k\), in 2 volume\(s\) from volume \d+\)\. "
                                                 r"Expected finite BOLD inside the mask"):
        prepare_dataset(root, progress_bar=False)


def test_nan_and_constant_voxels_outside_a_given_mask_are_said(tiny_bids, tiny_prepared, tmp_path, caplog):
    """User test 24: NaN voxels of the first run left the data mask without a word, and voxels zeroed in a later run
    stayed targets without a word (train then advised the data mask, which was in use)."""
    import logging

    root = _copy(tiny_bids, tmp_path)
    first = next((root / "sub-01" / "func").glob("*_bold.nii.gz"))
    img = nib.load(first)
    data = np.asarray(img.dataobj, dtype=np.float32).copy()
    i, j, k = np.argwhere(tiny_prepared.mask)[7]
    data[i, j, k, 10:20] = np.nan
    nib.save(nib.Nifti1Image(data, img.affine, img.header), first)
    later = next((root / "sub-02" / "func").glob("*_bold.nii.gz"))
    img2 = nib.load(later)
    data2 = np.asarray(img2.dataobj, dtype=np.float32).copy()
    zeroed = np.argwhere(tiny_prepared.mask)[[3, 40, 41]]
    for a, b, c in zeroed:
        data2[a, b, c, :] = 0.0
    nib.save(nib.Nifti1Image(data2, img2.affine, img2.header), later)
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        ds = prepare_dataset(root, progress_bar=False)
    said = [r.getMessage() for r in caplog.records]
    assert not ds.mask[i, j, k] and any("sub-01_task-rest_run-1_bold.nii.gz: 1 voxel(s) hold NaN/Inf in some volume; the data mask leaves "
                                        "them out" in m for m in said)
    kept = sum(bool(ds.mask[a, b, c]) for a, b, c in zeroed)
    assert kept and any(f"sub-02_task-rest_run-1_bold.nii.gz: {kept} of {int(ds.mask.sum())} mask voxels are constant over this run" in m
                        and "the mask comes from the first run's data" in m for m in said)


def test_a_mask_on_another_grid_of_the_same_shape_is_refused(tiny_bids, tiny_prepared, tmp_path):
    affine = np.asarray(tiny_prepared.affine, float)
    good = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(tiny_prepared.mask.astype(np.uint8), affine), good)
    shifted = affine.copy()
    shifted[:3, 3] += 12.0
    bad = tmp_path / "mask_shifted.nii.gz"
    nib.save(nib.Nifti1Image(tiny_prepared.mask.astype(np.uint8), shifted), bad)
    with pytest.raises(Eeg2fmriInputError, match=r"mask_shifted\.nii\.gz: voxel-to-world affine differs from the BOLD's \(.*_bold\.nii\.gz\) by up to 12 "
                                                 r"\(mm\), although the grid shapes agree.*resample_to_img\(mask, bold, interpolation='nearest'\)"):
        prepare_dataset(tiny_bids, {"mask": str(bad)}, progress_bar=False, subjects=["01"])
    ds = prepare_dataset(tiny_bids, {"mask": str(good)}, progress_bar=False, subjects=["01"])
    np.testing.assert_array_equal(ds.mask, tiny_prepared.mask)


@pytest.mark.parametrize("kind", ["New Segment/", "Comment/boundary", "boundary", "New Segment/ only in the marker file"])
def test_a_recording_joined_from_pieces_is_refused(tiny_bids, tmp_path, kind):
    """A BrainVision recording paused and resumed (New Segment) or with data cut out (EEGLAB's boundary, also as a
    BrainVision Comment), marked in the marker file and events.tsv as mne-bids writes them: the EEG after the join is out
    of step with the volumes, so prepare refuses it as synthesize does. Also when only the marker file has it and
    events.tsv lists the volume markers alone, as a lab's script writes it (user test 24: prepared, every later volume
    paired with the wrong EEG)."""
    root = _copy(tiny_bids, tmp_path)
    eeg = root / "sub-02" / "eeg"
    vmrk, events = next(eeg.glob("*.vmrk")), next(eeg.glob("*_events.tsv"))
    only_vmrk = kind.endswith("only in the marker file")
    kind = kind.split(" only")[0].strip()
    mtype, desc = kind.split("/") if "/" in kind else ("Comment", kind)
    vmrk.write_text(vmrk.read_text().rstrip("\n") + f"\nMk900={mtype},{desc},6001,1,0\n")
    if not only_vmrk:
        events.write_text(events.read_text().rstrip("\n") + f"\n60.000\t0.0\t{kind}\t1\t6000\n")
    with pytest.raises(Eeg2fmriInputError, match=r"sub-02_task-rest_run-1_eeg\.vhdr: the recording is not continuous: data are joined at 60\.000 s .* "
                                                 r"Expected one continuous recording per BOLD run.* prepare each continuous piece as a run of its own"):
        prepare_dataset(root, progress_bar=False)
    from eeg2fmri.io.layouts import check_layout

    rep = check_layout(root)  # `eeg2fmri datasets --check` says so before prepare (user test 24: it said OK)
    assert not rep.ok and any(p.startswith("sub-02_task-rest_run-1: sub-02_task-rest_run-1_eeg.vhdr: the recording is not continuous: "
                                           "joined or paused at 60.000 s, so prepare refuses it") for p in rep.problems)


def test_outlier_message_names_each_channel_with_its_ratio():
    from eeg2fmri.preprocessing.eeg import outlier_message

    msg = outlier_message({"O2": 0.0, "Fp1": 66.8})
    assert msg.startswith("channel(s) ['Fp1', 'O2'] have an amplitude far from the other channels' (Fp1: 66.8 x, O2: 0 x the median channel's robust scale")


def test_channel_names_disagreeing_with_channels_tsv_are_listed(tiny_bids, tmp_path):
    """mne-bids refuses a file whose names differ from channels.tsv and suggests an API call the CLI cannot make: the
    error lists the names on each side and the fix instead."""
    root = _copy(tiny_bids, tmp_path)
    tsv = next((root / "sub-01" / "eeg").glob("*_channels.tsv"))
    lines = tsv.read_text().splitlines()
    first = lines[1].split("\t")[0]
    lines[1] = lines[1].replace(first, f"EEG {first}-REF", 1)
    tsv.write_text("\n".join(lines) + "\n")
    with pytest.raises(Eeg2fmriInputError, match=rf"sub-01_task-rest_run-1_eeg\.vhdr: its channel names and those of sub-01_task-rest_run-1_channels\.tsv "
                                                 rf"differ \(\d+ vs \d+ channels; names only in the file: \['{first}'\]; only in .*\['EEG {first}-REF'\]\); "
                                                 r"BIDS requires them to agree\. Correct the name column of channels\.tsv"):
        prepare_dataset(root, progress_bar=False)


@pytest.mark.parametrize("case", ["empty", "short"])
def test_a_channels_tsv_mne_bids_ignores_is_warned(tiny_bids, tmp_path, caplog, case):
    """An empty channels.tsv, or one listing fewer channels than the file: mne-bids only warns and ignores it (types and
    bad status from the file alone); read_eeg says so at warning level, naming both files and the fix."""
    import logging

    from eeg2fmri.io import read_eeg

    root = _copy(tiny_bids, tmp_path)
    eeg = next((root / "sub-01" / "eeg").glob("*_eeg.vhdr"))
    tsv = next((root / "sub-01" / "eeg").glob("*_channels.tsv"))
    lines = tsv.read_text().splitlines()
    n_file = len(lines) - 1
    tsv.write_text("\n".join(lines[:1] if case == "empty" else lines[:-2]) + "\n")
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        read_eeg(eeg, preload=False)
    why = "it is empty" if case == "empty" else f"it lists {n_file - 2} channel\\(s\\) but the EEG file has {n_file}"
    assert re.search(rf"{tsv.name}: {why}, so mne-bids ignored it: channel types and bad-channel status come from {eeg.name} alone", caplog.text)
    assert f"List every channel of the file, in its order, in {tsv.name}" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        read_eeg(next((root / "sub-02" / "eeg").glob("*_eeg.vhdr")), preload=False)  # an intact channels.tsv: no warning
    assert "mne-bids ignored it" not in caplog.text


def test_windows_over_eeg_marked_bad_are_left_out_of_every_split(tiny_bids, tiny_prepared, tmp_path):
    """A BAD_motion span in events.tsv: prepare records it, make_split leaves out exactly the windows whose EEG overlaps it
    (training and test alike), and the targets of the remaining volumes are those of the contiguous span."""
    from eeg2fmri.datasets import load_prepared
    from eeg2fmri.datasets.targets import make_split, split_targets, volume_accounting, volumes_line

    root = _copy(tiny_bids, tmp_path)
    events = next((root / "sub-01" / "eeg").glob("*_events.tsv"))
    events.write_text(events.read_text().rstrip("\n") + "\n40.000\t10.0\tBAD_motion\t1\t4000\n150.000\t3.0\tbad blink\t1\t15000\n")
    ds = load_prepared(prepare_dataset(root, progress_bar=False).save(tmp_path / "prepared"))
    np.testing.assert_allclose(ds.runs[0].bad_spans, [[40.0, 50.0], [150.0, 153.0]])
    assert ds.runs[1].bad_spans is None
    for protocol in ("within", "loso"):
        ref = make_split(tiny_prepared, protocol)
        sp = make_split(ds, protocol)
        fr, run = ds.frame_rate, ds.runs[0]
        total = 0
        for name in ("train", "val", "test"):
            before = ref.selections[name].get(0, np.array([], int))
            end = run.onsets[before] + ds.tr
            overlaps = ((end - sp.n_frames / fr < 50.0) & (end > 40.0)) | ((end - sp.n_frames / fr < 153.0) & (end > 150.0))
            np.testing.assert_array_equal(sp.selections[name].get(0, np.array([], int)), before[~overlaps])
            np.testing.assert_array_equal(sp.selections[name].get(1), ref.selections[name].get(1))  # subject 02: nothing marked
            total += int(overlaps.sum())
        assert total > 0 and sum(sp.excluded.values()) == total
        # where every volume went: counted independently of volume_accounting
        acc = volume_accounting(ds, sp)
        starts = sum(int(np.sum((r.onsets + ds.tr) * fr < sp.n_frames)) for r in ds.runs)  # window would begin before the EEG
        ref_used = sum(len(v) for sel in ref.selections.values() for v in sel.values())
        assert acc == {"total": sum(r.n_volumes for r in ds.runs), "used": ref_used - total, "no_full_window": starts,
                       "bad_eeg": total, "gaps": sum(r.n_volumes for r in ds.runs) - ref_used - starts}
        assert starts > 0 and acc["gaps"] == (4 if protocol == "within" else 1) * sp.gap  # 2 gaps in each of the 2 runs within; LOSO: one, before validation
        assert volumes_line(acc, ds.tr).startswith(f"{ref_used - total} of {acc['total']} volumes have a window in train/validation/test; "
                                                   f"{acc['total'] - ref_used + total} left out: {starts} at run starts/ends")
    sp = make_split(ds, "within")
    t, t_ref = split_targets(ds, sp), split_targets(tiny_prepared, make_split(tiny_prepared, "within"))
    train = sp.selections["train"][0]
    full = make_split(tiny_prepared, "within").selections["train"][0]
    rows = np.searchsorted(full, train)
    # detrended over the same contiguous span as without the bad span: the kept rows' values agree before scaling
    a = t["train"][0] / t["train"][0].std(0)
    b = t_ref["train"][0][rows] / t_ref["train"][0][rows].std(0)
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_recorded_inputs_are_absolute_and_old_relative_ones_are_found(tiny_bids, tiny_prepared, tmp_path, monkeypatch):
    """The manifest records input files as absolute paths (classify reads the events beside the BOLD, explain the
    electrodes beside the EEG, from any directory); a relative path of an older manifest is found from the BIDS root."""
    from dataclasses import replace
    from pathlib import Path

    from eeg2fmri.datasets.prepared import recorded_input

    key = tiny_prepared.runs[0].key
    assert all(Path(v["eeg"]).is_absolute() and Path(v["bold"]).is_absolute() for v in tiny_prepared.provenance["inputs"].values())
    bold = recorded_input(tiny_prepared, key, "bold")
    assert bold.exists() and bold.name.endswith("_bold.nii.gz")
    rel = Path(tiny_bids.name) / bold.relative_to(tiny_bids)  # as a prepare run from the BIDS root's parent recorded it
    prov = {**tiny_prepared.provenance, "inputs": {key: {**tiny_prepared.provenance["inputs"][key], "bold": str(rel)}}}
    monkeypatch.chdir(tmp_path)  # another directory: the relative path alone does not exist here
    assert not rel.exists()
    assert recorded_input(replace(tiny_prepared, provenance=prov), key, "bold") == bold
    assert recorded_input(tiny_prepared, "no-such-run", "bold") is None


def test_a_recording_without_line_frequency_is_warned_not_silently_unfiltered(tiny_bids, tiny_prepared, tmp_path, caplog):
    """Without PowerLineFrequency (a bare file, another layout) no notch can be chosen: a warning says so and how to set it;
    with notch given the features equal those of the recordings that declare it (BIDS 50 Hz)."""
    import json
    import logging

    root = tmp_path / "bids"
    shutil.copytree(tiny_bids, root)
    for side in root.glob("sub-*/eeg/*_eeg.json"):
        meta = json.loads(side.read_text())
        assert meta.pop("PowerLineFrequency") == 50
        side.write_text(json.dumps(meta))
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        prepare_dataset(root, progress_bar=False)
    assert "declares no power-line frequency" in caplog.text and "--config '{\"notch\": 50}'" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        given = prepare_dataset(root, {"notch": 50}, progress_bar=False)
    assert "power-line" not in caplog.text
    for a, b in zip(given.runs, tiny_prepared.runs):
        np.testing.assert_array_equal(np.asarray(a.features), np.asarray(b.features))


def test_runs_given_as_explicit_file_pairs(tiny_bids, tiny_prepared, tmp_path):
    """Data in a layout of one's own (no BIDS, no adapter): prepare_dataset takes the EEG/BOLD file pairs themselves and
    gives the same dataset as the BIDS folder of the same recordings (markers from the .vmrk, TR from the NIfTI header)."""
    from eeg2fmri.datasets.prepared import runs_from_files

    runs = []
    for i, sub in enumerate(sorted(p.name for p in tiny_bids.glob("sub-*"))):
        d = tmp_path / f"subj{i}"
        d.mkdir()
        for f in (tiny_bids / sub / "eeg").glob("*_eeg.*"):  # .vhdr/.vmrk/.eeg keep their names (the header names its files)
            if f.suffix in (".vhdr", ".vmrk", ".eeg"):
                shutil.copy(f, d / f.name)
        bold = next((tiny_bids / sub / "func").glob("*_bold.nii*"))
        shutil.copy(bold, d / "bold.nii.gz")
        runs.append({"eeg": str(next(d.glob("*.vhdr"))), "bold": str(d / "bold.nii.gz"), "subject": sub[4:], "task": "rest", "run": 1})
    ds = prepare_dataset(runs, {"notch": 50}, progress_bar=False)  # (no BIDS sidecar declares the line frequency here)
    assert [r.key for r in ds.runs] == [r.key for r in tiny_prepared.runs] and ds.tr == tiny_prepared.tr
    assert np.array_equal(ds.mask, tiny_prepared.mask)
    for a, b in zip(ds.runs, tiny_prepared.runs):
        np.testing.assert_array_equal(np.asarray(a.features), np.asarray(b.features))
        np.testing.assert_array_equal(np.asarray(a.bold), np.asarray(b.bold))
    assert ds.provenance["layout"] == "files"
    one = prepare_dataset(runs, {"notch": 50}, subjects=[runs[0]["subject"]], progress_bar=False)
    assert [r.key for r in one.runs] == [tiny_prepared.runs[0].key]
    with pytest.raises(Eeg2fmriInputError, match=r"runs\[0\]: unknown key\(s\) \['bids'\]; expected some of"):
        runs_from_files([{**runs[0], "bids": "x"}])
    with pytest.raises(Eeg2fmriInputError, match=r"runs\[1\]: expected subject \(subject label\), found none"):
        runs_from_files([runs[0], {k: v for k, v in runs[1].items() if k != "subject"}])
    with pytest.raises(Eeg2fmriInputError, match=r"runs\[0\]: bold file .*nope\.nii\.gz does not exist"):
        runs_from_files([{**runs[0], "bold": str(tmp_path / "nope.nii.gz")}])
    with pytest.raises(Eeg2fmriInputError, match=r"runs: expected one run per key, found \['sub-01_task-rest_run-1'\] more than once"):
        runs_from_files([runs[0], runs[0]])


def test_prepare_command_reads_a_runs_table(tiny_bids, tiny_prepared, tmp_path, capsys):
    """`eeg2fmri prepare runs.tsv --out DIR`: the runs as a table of file pairs (paths relative to the table), the same
    dataset as the BIDS folder; a second call with the same inputs is up to date; bad columns are named."""
    from eeg2fmri.cli import main
    from eeg2fmri.datasets import load_prepared

    lines = ["eeg\tbold\tsubject\ttask\trun"]
    for sub in sorted(p.name for p in tiny_bids.glob("sub-*")):
        eeg = next((tiny_bids / sub / "eeg").glob("*_eeg.vhdr"))
        bold = next((tiny_bids / sub / "func").glob("*_bold.nii*"))
        lines.append(f"{eeg}\t{bold.relative_to(tiny_bids)}\t{sub[4:]}\trest\t1")
    table = tiny_bids / "runs.tsv"  # (bold paths relative to the table's folder)
    try:
        table.write_text("\n".join(lines) + "\n")
        assert main(["prepare", str(table), "--out", str(tmp_path / "p"), "--config", '{"notch": 50}', "-q"]) == 0
        assert "wrote" in capsys.readouterr().out
        ds = load_prepared(tmp_path / "p")
        assert [r.key for r in ds.runs] == [r.key for r in tiny_prepared.runs]
        for a, b in zip(ds.runs, tiny_prepared.runs):
            np.testing.assert_array_equal(np.asarray(a.features), np.asarray(b.features))
        assert main(["prepare", str(table), "--out", str(tmp_path / "p"), "--config", '{"notch": 50}', "-q"]) == 0
        assert "up to date" in capsys.readouterr().out
        table.write_text("eeg\tbold\tsubj\n" + "\n".join(lines[1:]) + "\n")
        assert main(["prepare", str(table), "--out", str(tmp_path / "q"), "-q"]) == 2
        assert "runs.tsv: unknown column(s) ['subj']; expected some of" in capsys.readouterr().err
    finally:
        table.unlink(missing_ok=True)


def test_runs_given_as_mne_raw_and_nibabel_objects(tiny_bids, tiny_prepared):
    """Objects at the edge (house style): an MNE Raw and a nibabel image per run give the dataset their files give."""
    import mne

    runs = []
    for sub in sorted(p.name for p in tiny_bids.glob("sub-*")):
        raw = mne.io.read_raw_brainvision(next((tiny_bids / sub / "eeg").glob("*_eeg.vhdr")), preload=False, verbose=False)
        raw.set_channel_types({c: "ecg" if c.upper().startswith("ECG") else "eog" for c in raw.ch_names
                               if c.upper().startswith(("ECG", "EOG", "HEOG", "VEOG"))}, verbose=False)
        runs.append({"eeg": raw, "bold": nib.load(next((tiny_bids / sub / "func").glob("*_bold.nii*"))), "subject": sub[4:], "task": "rest", "run": 1})
    ds = prepare_dataset(runs, {"notch": 50}, progress_bar=False)
    assert [r.key for r in ds.runs] == [r.key for r in tiny_prepared.runs] and "objects" in ds.provenance["bids_root"]
    for a, b in zip(ds.runs, tiny_prepared.runs):
        # (float32 features: the FIF copy is read in other blocks than the .eeg file: differences of ~1e-5 standard deviations)
        np.testing.assert_allclose(np.asarray(a.features), np.asarray(b.features), rtol=2e-5, atol=5e-5)  # (z units)
        np.testing.assert_array_equal(np.asarray(a.bold), np.asarray(b.bold))
    with pytest.raises(Eeg2fmriInputError, match=r"runs\[0\]: eeg: expected a file path or an MNE Raw, got ndarray"):
        prepare_dataset([{**runs[0], "eeg": np.zeros((3, 10))}], progress_bar=False)
    # an error about a run given as objects names the objects, not the temporary copies (user test 8), and for a TR that
    # disagrees with the markers says how to give the TR of an in-memory image
    img = runs[0]["bold"]
    one = nib.Nifti1Image(np.asarray(img.dataobj), img.affine)  # zooms (1, 1, 1, 1): TR 1 s, the markers 2 s apart
    with pytest.raises(Eeg2fmriInputError, match=r"^runs\[0\]\['eeg'\] \(the mne\.io\.Raw given\): '\S+' markers are 2\.0000 s apart but TR "
                                                 r"is 1\.0 s.* pass the run's 'tr'\.$") as err:
        prepare_dataset([{**runs[0], "bold": one}], {"notch": 50}, progress_bar=False)
    assert "eeg2fmri-objects" not in str(err.value)


def test_warnings_about_objects_name_the_objects(tiny_bids, caplog):
    """A warning about a run given as an MNE Raw names runs[i]['eeg'], not its temporary copy (user test 22)."""
    import logging

    import mne

    sub = sorted(p.name for p in tiny_bids.glob("sub-*"))[0]
    raw = mne.io.read_raw_brainvision(next((tiny_bids / sub / "eeg").glob("*_eeg.vhdr")), preload=False, verbose=False)
    raw.set_channel_types({c: "ecg" if c.upper().startswith("ECG") else "eog" for c in raw.ch_names
                           if c.upper().startswith(("ECG", "EOG", "HEOG", "VEOG"))}, verbose=False)
    runs = [{"eeg": raw, "bold": nib.load(next((tiny_bids / sub / "func").glob("*_bold.nii*"))), "subject": sub[4:]}]
    with caplog.at_level(logging.INFO, logger="eeg2fmri"):
        prepare_dataset(runs, {"notch": 50, "first_onset": 0.25}, progress_bar=False)
    texts = [r.getMessage() for r in caplog.records]
    said = [t for t in texts if "first_onset (0.25) is not used" in t]
    assert said and said[0].startswith("runs[0]['eeg'] (the mne.io.Raw given)")
    assert not any("eeg2fmri-objects" in t for t in texts)
    # outside the call the package's messages are left as they are
    assert not [f for name in ("eeg2fmri", "mne") for f in logging.getLogger(name).filters if type(f).__name__ == "_RenameFilter"]


def test_prepared_dataset_and_run_repr_show_shapes_not_arrays(tiny_prepared):
    """print(ds) and print(run) say what they hold in one line each (user test: the dataclass repr dumped every array)."""
    ds = tiny_prepared
    text = repr(ds)
    assert text == (f"PreparedDataset(bandpower, {len(ds.runs)} run(s) of {len(ds.subjects)} subject(s), "
                    f"{sum(r.n_volumes for r in ds.runs)} volumes, TR {ds.tr:g} s, {len(ds.ch_names)} channels, "
                    f"{len(ds.config.bands)} bands -> {int(ds.mask.sum())} voxels of a {'x'.join(map(str, ds.mask.shape))} mask)")
    run = ds.runs[0]
    assert repr(run) == (f"PreparedRun({run.key!r}, subject={run.subject!r}, volumes={run.n_volumes}, "
                         f"features={'x'.join(map(str, run.features.shape))}, bold={'x'.join(map(str, run.bold.shape))})")
    assert "\n" not in text and len(text) < 300


def test_non_steady_state_volumes_are_detected_and_left_out(tiny_bids, tiny_prepared, tmp_path, caplog):
    """Brighter first volumes (T1 saturation) of one run are found and left out with a warning (drop_volumes='auto'); the
    remaining volumes keep their BOLD and onsets; drop_volumes=N drops N of every run, 0 keeps them; bad values refused.
    The simulated runs have no saturation: 'auto' drops nothing there."""
    import logging

    import nibabel as nib

    from eeg2fmri.preprocessing.bold import non_steady_state_volumes

    assert all(r["non_steady_state_volumes"] == 0 for r in tiny_prepared.provenance["inputs"].values())
    root = _copy(tiny_bids, tmp_path)
    path = next((root / "sub-01" / "func").glob("*_bold.nii.gz"))
    img = nib.load(path)
    data = np.asarray(img.dataobj, dtype=np.float32)
    data[..., :3] *= np.array([1.6, 1.25, 1.07], np.float32)  # saturation of the first three volumes
    nib.save(nib.Nifti1Image(data, img.affine, img.header), path)
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        ds = prepare_dataset(root, progress_bar=False)
    import re

    assert re.search(r"the first 3 volume\(s\) \(from volume 0\) are non-steady-state \(brain signal 1\.(59|60)x, 1\.2[45]x, 1\.0[67]x of "
                     r"the steady level\): left out; prepare option drop_volumes sets how many", caplog.text)
    key0, key1 = tiny_prepared.runs[0].key, tiny_prepared.runs[1].key
    assert ds.provenance["inputs"][key0]["non_steady_state_volumes"] == 3 and ds.provenance["inputs"][key1]["non_steady_state_volumes"] == 0
    # the same runs prepared again in this process (another representation, a second call in a script): said at info level
    # (user test 16: nine repeated warning lines)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="eeg2fmri"):
        again = prepare_dataset(root, {"representation": "stft"}, progress_bar=False)
    said = [r for r in caplog.records if "are non-steady-state" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.INFO and again.provenance["inputs"][key0]["non_steady_state_volumes"] == 3
    a, b = ds.runs[0], tiny_prepared.runs[0]
    assert a.n_volumes == b.n_volumes - 3
    np.testing.assert_array_equal(a.onsets, b.onsets[3:])
    np.testing.assert_array_equal(a.window_end, b.window_end[3:])
    np.testing.assert_allclose(a.bold, b.bold[3:], rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(ds.runs[1].bold, tiny_prepared.runs[1].bold)
    assert non_steady_state_volumes(np.asarray(b.bold)) == 0 and non_steady_state_volumes(data[ds.mask].T) == 3
    # what is not saturation: first volumes 0.6 % brighter in very quiet data (far above the noise, below the 1 % floor),
    # a demeaned series; a weaker saturation still counts
    rng = np.random.default_rng(3)
    series = 1000.0 + 0.5 * rng.standard_normal((120, 7))
    series[:2] *= 1.006
    assert non_steady_state_volumes(series) == 0 and non_steady_state_volumes(series, min_excess=0.0) == 2
    assert non_steady_state_volumes(weak_sat := series * np.r_[1.3, 1.0, np.ones(118)][:, None] - 1000.0) == 0  # demeaned: not searched
    assert weak_sat.mean() < 20 and non_steady_state_volumes(weak_sat + 1000.0) == 1
    weak = series.copy()
    weak[:4] *= np.array([1.3, 1.08, 1.02, 1.006])[:, None]
    assert non_steady_state_volumes(weak) == 3  # the 0.6 % fourth volume is below the 1 % floor
    fixed = prepare_dataset(root, {"drop_volumes": 2}, progress_bar=False)
    assert [r.n_volumes for r in fixed.runs] == [r.n_volumes - 2 for r in tiny_prepared.runs]
    from eeg2fmri.simulate.groundtruth import groundtruth_ceilings

    vols = np.arange(20, 60)  # the simulator's ceilings of prepared volume k are those of BOLD volume k + 2
    a_c, b_c = groundtruth_ceilings(fixed, 1, vols), groundtruth_ceilings(tiny_prepared, 1, vols + 2)
    np.testing.assert_array_equal(a_c["oracle"], b_c["oracle"])
    assert not np.array_equal(a_c["oracle"], groundtruth_ceilings(tiny_prepared, 1, vols)["oracle"], equal_nan=True)
    kept = prepare_dataset(root, {"drop_volumes": 0}, progress_bar=False)
    assert kept.runs[0].n_volumes == b.n_volumes and kept.provenance["inputs"][key0]["non_steady_state_volumes"] == 0
    for bad in ("some", -1, 1.5, True):
        with pytest.raises(Eeg2fmriInputError, match=r"prepare option drop_volumes: expected 'auto' or a whole number >= 0 of leading "
                                                     r"volumes to leave out, got .*; e\.g\. --config '\{\"drop_volumes\": 3\}'"):
            prepare_dataset(root, {"drop_volumes": bad}, progress_bar=False)
    with pytest.raises(Eeg2fmriInputError, match=r"_bold\.nii\.gz: prepare option drop_volumes leaves out 5000 of the run's \d+ volumes"):
        prepare_dataset(root, {"drop_volumes": 5000}, progress_bar=False)


def test_prepare_refuses_an_existing_output_before_the_work(tiny_bids, tmp_path, monkeypatch):
    """An existing --out of other inputs or config (or any folder) is refused before anything is read (a user test: the
    data were read, warnings printed, and only then the output refused); an up-to-date one is still a no-op."""
    from eeg2fmri.datasets import prepared as prep_mod
    from eeg2fmri.datasets.prepared import PrepareConfig, prepare

    out, changed = prepare(tiny_bids, tmp_path / "p", None, progress_bar=False)
    assert changed
    assert prepare(tiny_bids, out, None, progress_bar=False) == (out, False)  # same inputs and config: nothing to do

    def boom(*a, **k):
        raise AssertionError("prepare_dataset ran before the refusal")

    monkeypatch.setattr(prep_mod, "prepare_dataset", boom)
    with pytest.raises(Eeg2fmriInputError, match=r"already holds a prepared dataset of other inputs or another config \(what differs: config "
                                                 r"bands: .* there, \{'alpha': \[8\.0, 12\.0\]\} now\); nothing was prepared\. "
                                                 r"Choose another --out, or pass overwrite=True \(--overwrite on the command line\)"):
        prepare(tiny_bids, out, PrepareConfig(bands={"alpha": (8.0, 12.0)}), progress_bar=False)
    (tmp_path / "other").mkdir()
    with pytest.raises(Eeg2fmriInputError, match=r"other: already holds a folder; nothing was prepared"):
        prepare(tiny_bids, tmp_path / "other", None, progress_bar=False)


@pytest.mark.parametrize(("code", "name", "warned"), [(1, "bold.nii.gz", True), (4, "bold.nii.gz", False),
                                                      (1, "sub-01_space-MNI152NLin2009cAsym_bold.nii.gz", False),
                                                      (4, "sub-01_space-T1w_bold.nii.gz", True)])
def test_mni_mask_on_bold_not_in_mni_space_is_warned(tmp_path, caplog, code, name, warned):
    """User test 19: mask='mni' on scanner-space BOLD (sform code 1, oblique) was accepted silently and 1,360 of its
    2,930 mask voxels lay outside the brain. The file name's space- entity comes first, then the header's code."""
    import logging

    from eeg2fmri.datasets.prepared import PrepareConfig, _resolve_mask

    aff = np.diag([12.0, 12.0, 12.0, 1.0])
    aff[:3, 3] = (-78.0, -114.0, -66.0)
    img = nib.Nifti1Image(np.ones((14, 17, 13, 3), np.float32), aff)
    img.set_sform(aff, code=code)
    img.set_qform(aff, code=code)
    nib.save(img, tmp_path / name)
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        mask, _ = _resolve_mask(PrepareConfig(mask="mni"), nib.load(tmp_path / name))
    assert mask.any()
    hit = re.search(r"prepare option mask='mni' places the MNI152 brain mask on this grid by its world coordinates, but (its header "
                    r"\(sform/qform code 1: scanner space\)|its file name's space-T1w) says the BOLD is not in MNI space", caplog.text)
    assert bool(hit) == warned


def test_loading_a_dataset_prepared_from_uncleaned_eeg_says_so(tiny_prepared, tmp_path, caplog):
    """User test 20: after prepare's one warning, train/evaluate/classify never said the EEG kept its gradient artefacts."""
    import json
    import logging

    from eeg2fmri.datasets import load_prepared

    path = tiny_prepared.save(tmp_path / "prep")
    man = json.loads((path / "manifest.json").read_text())
    keys = list(man["provenance"]["inputs"])
    for k in keys:
        man["provenance"]["inputs"][k]["gradient_artifact_check"] = {"peak_ratio": 1.1, "detected": False}
    (path / "manifest.json").write_text(json.dumps(man))
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        load_prepared(path)
    assert "uncorrected for MRI gradient artefacts" not in caplog.text
    man["provenance"]["inputs"][keys[0]]["gradient_artifact_check"] = {"peak_ratio": 31.4, "detected": True}
    (path / "manifest.json").write_text(json.dumps(man))
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        load_prepared(path)
    assert re.search(rf"prep: prepare found the EEG uncorrected for MRI gradient artefacts in 1 of its {len(keys)} run\(s\) .*prepare "
                     r"again with --clean gradient", caplog.text)


def test_a_first_onset_that_markers_override_is_said(tiny_bids, tmp_path, caplog):
    """User test 22: first_onset on runs with scanner markers was recorded in the manifest and silently not used."""
    import logging

    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        ds = prepare_dataset(tiny_bids, {"first_onset": 7.7}, subjects=["01"], progress_bar=False)
    assert ds.runs
    assert re.search(r"prepare option first_onset \(7\.7\) is not used for this run: its volumes are timed by its \d+ '.+' scanner "
                     r"marker\(s\); to time them by first_onset instead, pass marker: null as well", caplog.text)


@pytest.mark.parametrize("case", ["declared-other", "declared-same", "bright-start"])
def test_extra_markers_are_dummies_only_where_nothing_says_otherwise(tiny_bids, tmp_path, case, caplog):
    """A BOLD file that lacks its last 3 volumes leaves 3 markers more than volumes; by default the first 3 are taken as
    dummy scans, which pairs every volume with EEG 3 TRs late (user test 24). A sidecar declaring another number of
    discarded volumes, or bright (non-steady-state) first volumes -- a scanner that saved its run from the start --
    refute it: refused with the fix; a sidecar declaring 3 confirms it."""
    import json

    root = _copy(tiny_bids, tmp_path)
    path = next((root / "sub-02" / "func").glob("*_bold.nii.gz"))
    img = nib.load(path)
    data = np.asarray(img.dataobj, dtype=np.float32)[..., :-3]
    if case == "bright-start":
        data[..., :3] *= np.array([1.4, 1.25, 1.12], dtype=np.float32)
    nib.save(nib.Nifti1Image(data, img.affine, img.header), path)
    side = path.with_name(path.name.replace(".nii.gz", ".json"))
    meta = json.loads(side.read_text()) if side.exists() else {"RepetitionTime": float(img.header.get_zooms()[3])}
    if case.startswith("declared"):
        meta["NumberOfVolumesDiscardedByUser"] = 0 if case == "declared-other" else 3
    side.write_text(json.dumps(meta))
    if case == "declared-same":
        import logging

        with caplog.at_level(logging.INFO, logger="eeg2fmri"):
            ds = prepare_dataset(root, progress_bar=False, subjects=["02"])
        # said as what the sidecar declares, at info level, without the drop-last hint (user test 27: the warning contradicted it)
        assert "the first 3 dropped as the dummy scans the BOLD sidecar declares" in caplog.text
        assert not any("drop-last" in r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
        assert ds.provenance["inputs"][ds.runs[0].key]["volumes"][0] == 0
        assert any("agree with the BOLD sidecar (NumberOfVolumesDiscardedByScanner 0, NumberOfVolumesDiscardedByUser 3)" in n
                   for n in ds.provenance["inputs"][ds.runs[0].key]["sync_notes"])
        return
    want = (r"\d+ 'R128' markers for \d+ volumes, 3 more, but sub-02_task-rest_run-1_bold\.nii\.gz's sidecar declares "
            r"NumberOfVolumesDiscardedByScanner 0, NumberOfVolumesDiscardedByUser 0: the extra markers are not all dummy scans.*dummy_scans='drop-last'"
            if case == "declared-other" else
            r"3 more 'R128' markers than the BOLD's volumes were taken as dummy scans before the first saved volume, but the first \d "
            r"saved volume\(s\) of sub-02_task-rest_run-1_bold\.nii\.gz are non-steady-state \(brighter\).*dummy_scans='drop-last'")
    with pytest.raises(Eeg2fmriInputError, match=want):
        prepare_dataset(root, progress_bar=False, subjects=["02"])
    ds = prepare_dataset(root, {"dummy_scans": "drop-last"}, progress_bar=False, subjects=["02"])  # the fix it names
    assert ds.runs[0].n_volumes > 0


def test_volumes_before_the_eeg_are_refused_naming_the_run(tiny_bids):
    """User test 24: EEG that began 20 s after the scan, timed with first_onset -20: the error named no file and no fix."""
    with pytest.raises(Eeg2fmriInputError, match=r"sub-01_task-rest_run-1_eeg\.vhdr: the EEG \([\d.]+ s\) does not cover every volume's window: "
                                                 r"volumes are timed from -20\.0 s .* save the BOLD from the first volume the EEG covers"):
        prepare_dataset(tiny_bids, {"marker": None, "first_onset": -20.0}, progress_bar=False, subjects=["01"])


@pytest.mark.parametrize("declared", [False, True])
def test_a_lost_marker_and_declared_dummy_scans(tiny_bids, tmp_path, declared):
    """A marker lost mid-run and extra leading markers: refused as a pause would be (user test 27), unless the sidecar
    declares exactly those dummy scans (a review: documented dummies were refused with one lost marker)."""
    import json

    root = _copy(tiny_bids, tmp_path)
    eeg = root / "sub-02" / "eeg"
    events = next(eeg.glob("*_events.tsv"))
    lines = events.read_text().splitlines()
    events.write_text("\n".join(lines[:30] + lines[31:]) + "\n")  # the 30th marker lost (events.tsv is what mne-bids reads)
    path = next((root / "sub-02" / "func").glob("*_bold.nii.gz"))
    img = nib.load(path)
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[..., 2:], img.affine, img.header), path)  # 2 dummy scans not saved
    side = path.with_name(path.name.replace(".nii.gz", ".json"))
    meta = json.loads(side.read_text()) if side.exists() else {"RepetitionTime": float(img.header.get_zooms()[3])}
    if declared:
        meta["NumberOfVolumesDiscardedByScanner"] = 2
    side.write_text(json.dumps(meta))
    if not declared:
        with pytest.raises(Eeg2fmriInputError, match=r"missed 'R128' markers were filled in mid-run, and then 2 more markers than volumes .*"
                                                     r"declare NumberOfVolumesDiscardedByScanner"):
            prepare_dataset(root, progress_bar=False, subjects=["02"])
        return
    ds = prepare_dataset(root, progress_bar=False, subjects=["02"])
    onsets = np.asarray(ds.runs[0].onsets)
    first = float(lines[3].split("\t")[0])  # the third marker (header row first) is the first saved volume's
    assert onsets[0] == pytest.approx(first, abs=0.02) and np.allclose(np.diff(onsets), np.diff(onsets).mean(), atol=0.02)


def test_renamed_brainvision_files_are_read_in_a_bids_folder(tiny_bids, tiny_prepared, tmp_path):
    """User test 29: BrainVision files renamed (their header's DataFile=/MarkerFile= still the old names) were refused in a
    BIDS folder although `datasets --check` announced the repair; the repair is used, with the BIDS sidecars."""
    root = _copy(tiny_bids, tmp_path)
    for folder in (root / "sub-02" / "eeg", root / "sub-02" / "func"):
        for f in list(folder.iterdir()):
            f.rename(f.with_name(f.name.replace("_run-1_", "_run-2_")))
    vhdr = next((root / "sub-02" / "eeg").glob("*.vhdr"))
    assert "DataFile=sub-02_task-rest_run-1_eeg.eeg" in vhdr.read_text()  # (stale)
    ds = prepare_dataset(root, progress_bar=False, subjects=["02"])
    want = next(r for r in tiny_prepared.runs if r.subject == "02")
    np.testing.assert_allclose(np.asarray(ds.runs[0].features), np.asarray(want.features), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(ds.runs[0].onsets, want.onsets)


def test_a_prepared_folder_and_an_upper_case_header_are_named(tiny_bids, tiny_prepared, tmp_path):
    """User test 29: a prepared folder given to prepare was 'not a BIDS EEG dataset'; an upper-case .VHDR got MNE's message."""
    from eeg2fmri.io import read_eeg

    prep = tiny_prepared.save(tmp_path / "prepared")
    with pytest.raises(Eeg2fmriInputError, match=r"prepared: expected a dataset of EEG and BOLD runs, found a prepared dataset \(its "
                                                 r"manifest\.json\); it is ready: pass it to train, evaluate or benchmark"):
        prepare_dataset(prep, progress_bar=False)
    vhdr = next((tiny_bids / "sub-01" / "eeg").glob("*.vhdr"))
    upper = tmp_path / (vhdr.stem + ".VHDR")
    upper.write_bytes(vhdr.read_bytes())
    with pytest.raises(Eeg2fmriInputError, match=r"\.VHDR: expected a BrainVision header ending in \.vhdr, found '\.VHDR'.*rename the header"):
        read_eeg(upper, preload=False)


def test_file_markers_at_the_scanner_markers_of_events_tsv_are_not_stimuli(tiny_bids, tmp_path, caplog):
    """User test 56: mne-bids/pybv write R128 annotations into the .vmrk as 'Stimulus, S  1' and into events.tsv as R128;
    the file's S  1 (every event at a scanner marker's time) is not kept as a stimulus -- it was offered to `events: auto`
    and became a regressor of one event per volume -- while a real stimulus marker of the file still is."""
    import logging

    import mne

    from eeg2fmri.io import read_eeg
    from eeg2fmri.preprocessing.events import stimulus_names

    root = _copy(tiny_bids, tmp_path)
    eeg = root / "sub-02" / "eeg"
    vhdr, events = next(eeg.glob("*_eeg.vhdr")), next(eeg.glob("*_events.tsv"))
    raw = mne.io.read_raw_brainvision(vhdr, preload=True, verbose=False)
    own = raw.annotations
    vol = np.asarray([o for o, d in zip(own.onset, own.description) if d.endswith("R128")]) - raw.first_time
    stim = vol[:-1][::7] + 0.73  # a few real stimuli between volumes
    raw.set_annotations(mne.Annotations(np.r_[vol, stim], 0.0, ["Stimulus/S  1"] * len(vol) + ["Stimulus/S  2"] * len(stim)))
    for f in eeg.glob(vhdr.name.replace(".vhdr", ".*")):
        f.unlink()
    mne.export.export_raw(vhdr, raw, fmt="brainvision", verbose=False)
    header = events.read_text().splitlines()[0].split("\t")
    rows = ["\t".join({"onset": f"{t:.4f}", "duration": "0.0", "trial_type": "R128", "value": "1", "sample": "0"}.get(h, "n/a")
                      for h in header) for t in vol]
    events.write_text("\n".join(["\t".join(header), *rows]) + "\n")
    with caplog.at_level(logging.INFO, logger="eeg2fmri"):
        got = read_eeg(vhdr)
    desc = [str(d) for d in got.annotations.description]
    assert sum(d.endswith("R128") for d in desc) == len(vol) and not any(d.endswith("S  1") for d in desc)
    assert sum(d.endswith("S  2") for d in desc) == len(stim)  # a marker of its own times stays
    assert any(f"the recording's marker 'Stimulus/S  1' ({len(vol)} events) marks the times of events.tsv's scanner markers"
               in r.getMessage() for r in caplog.records)
    assert sorted(stimulus_names(got)) == ["Stimulus/S  2"]  # what `events: auto` and the check's note offer
    # stimuli triggered by the scanner's pulse (every 5th volume, at its marker's time) are stimuli: kept
    locked = vol[::5]
    raw.set_annotations(mne.Annotations(np.r_[vol, locked], 0.0, ["Stimulus/S  1"] * len(vol) + ["Stimulus/S  3"] * len(locked)))
    for f in eeg.glob(vhdr.name.replace(".vhdr", ".*")):
        f.unlink()
    mne.export.export_raw(vhdr, raw, fmt="brainvision", verbose=False)
    desc = [str(d) for d in read_eeg(vhdr).annotations.description]
    assert sum(d.endswith("S  3") for d in desc) == len(locked) and not any(d.endswith("S  1") for d in desc)


def test_markers_an_events_tsv_leaves_out_are_kept_from_the_file(tiny_bids, tmp_path, caplog):
    """User test 45 (high): an events.tsv listing only a clinician's spike marks replaced the .vmrk's volume markers
    (mne-bids reads events.tsv instead of the file's markers), so nothing could be prepared; markers whose names
    events.tsv does not list are kept from the file, with a warning; a name it lists (with or without the Type/ prefix)
    is not added twice."""
    import logging

    import mne

    from eeg2fmri.io import read_eeg

    root = _copy(tiny_bids, tmp_path)
    eeg = root / "sub-02" / "eeg"
    vhdr, events = next(eeg.glob("*_eeg.vhdr")), next(eeg.glob("*_events.tsv"))
    own = mne.io.read_raw_brainvision(vhdr, verbose=False).annotations
    vol = [i for i, d in enumerate(own.description) if d.endswith("R128")]
    assert len(vol) > 50
    header = events.read_text().splitlines()[0].split("\t")
    row = {"onset": "12.340", "duration": "0.0", "trial_type": "IED", "value": "7", "sample": "1234"}
    events.write_text("\t".join(header) + "\n" + "\t".join(row.get(h, "n/a") for h in header) + "\n")
    with caplog.at_level(logging.INFO, logger="eeg2fmri"):  # (a warning the first time these names are kept in a process, then info)
        raw = read_eeg(vhdr)
    desc = np.asarray(raw.annotations.description)
    assert "IED" in desc
    kept = [i for i, d in enumerate(desc) if d.endswith("R128")]
    np.testing.assert_allclose(np.sort(raw.annotations.onset[kept] - raw.first_time), np.sort(own.onset[vol]), atol=1e-9)
    assert any("events.tsv does not list the recording's own marker(s)" in r.getMessage() and "kept from the EEG file" in r.getMessage()
               for r in caplog.records)
    ds = prepare_dataset(root, progress_bar=False)  # prepares: the scanner markers are the file's
    assert len(ds.runs) == 2
    # events.tsv listing the volume markers without the Type/ prefix: not added a second time
    lines = ["\t".join(header)] + ["\t".join({"onset": f"{own.onset[i]:.4f}", "duration": "0.0", "trial_type": "R128", "value": "1",
                                              "sample": "0"}.get(h, "n/a") for h in header) for i in vol]
    events.write_text("\n".join(lines) + "\n")
    raw2 = read_eeg(vhdr)
    assert sum(str(d).endswith("R128") for d in raw2.annotations.description) == len(vol)
    # spelled with spaces or another case (BrainVision's "Stimulus/S  1" vs events.tsv's "S1"): one marker, as the sync code
    # matches names (a review: the file's markers were added a second time and the marker interval was 0)
    lines = ["\t".join(header)] + ["\t".join({"onset": f"{own.onset[i]:.4f}", "duration": "0.0", "trial_type": "r 128", "value": "1",
                                              "sample": "0"}.get(h, "n/a") for h in header) for i in vol]
    events.write_text("\n".join(lines) + "\n")
    raw3 = read_eeg(vhdr)
    assert len(raw3.annotations) == len(vol)
    from eeg2fmri.io.sync import marker_times

    assert len(marker_times(raw3, "R128")[1]) == len(vol)
    # the same marker listed twice at one time is one volume (a safeguard of marker_times)
    dup = raw3.copy()
    dup.annotations.append(dup.annotations.onset[:5], 0.0, ["Response/R128"] * 5)
    name, t = marker_times(dup, "R128")
    assert len(t) == len(vol) and np.all(np.diff(t) > 0)
    # events.tsv listing the volumes under another name ("volume"): the kept markers are said to be the same events (user
    # test 48: stimuli listed as standard/deviant read as missing)
    lines = ["\t".join(header)] + ["\t".join({"onset": f"{own.onset[i] - 0.0:.4f}", "duration": "0.0", "trial_type": "volume", "value": "1",
                                              "sample": "0"}.get(h, "n/a") for h in header) for i in vol]
    events.write_text("\n".join(lines) + "\n")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="eeg2fmri"):
        read_eeg(vhdr)
    assert any(f"{len(vol)} of them at the time of an events.tsv row: the same events under another name there" in r.getMessage()
               for r in caplog.records)


def test_a_run_cut_short_after_declared_dummies_is_timed_by_its_own_dummy_scans(tiny_bids, tmp_path):
    """User test 50: a run whose sidecar declares 1 leading dummy and whose BOLD lacks its last 2 volumes (3 markers more than
    volumes): refused, naming the per-run fix; dummy_scans='drop-last' for that run alone (a runs-table column) drops the
    declared leading marker first and the other 2 from the end -- the onsets of the intact file's volumes 1..n-2 -- while
    the other run keeps the default (the prepare option would have applied drop-last to every run)."""
    import json

    from eeg2fmri.datasets.prepared import runs_from_files

    root = _copy(tiny_bids, tmp_path)
    full = prepare_dataset(root, progress_bar=False, subjects=["02"])
    path = next((root / "sub-02" / "func").glob("*_bold.nii.gz"))
    img = nib.load(path)
    data = np.asarray(img.dataobj, dtype=np.float32)[..., 1:-2]  # the first volume a dummy, the last two lost
    nib.save(nib.Nifti1Image(data, img.affine, img.header), path)
    side = path.with_name(path.name.replace(".nii.gz", ".json"))
    meta = json.loads(side.read_text()) if side.exists() else {"RepetitionTime": float(img.header.get_zooms()[3])}
    side.write_text(json.dumps({**meta, "NumberOfVolumesDiscardedByUser": 1}))
    runs = [{"eeg": str(next((root / s / "eeg").glob("*_eeg.vhdr"))), "bold": str(next((root / s / "func").glob("*_bold.nii.gz"))),
             "subject": s[4:], "task": "rest", "run": 1} for s in ("sub-01", "sub-02")]
    with pytest.raises(Eeg2fmriInputError, match=r"sidecar declares NumberOfVolumesDiscardedByScanner 0, NumberOfVolumesDiscardedByUser 1: "
                                                 r"the extra markers are not all dummy scans before the first saved volume\. If the BOLD "
                                                 r"file lacks its last 2 volumes \(cut short\), pass dummy_scans='drop-last' \(the 1 "
                                                 r"declared leading markers are dropped first, the other 2 from the end\) for this run -- a "
                                                 r"dummy_scans column in a runs table"):
        prepare_dataset(runs, {"notch": 50}, progress_bar=False)
    ds = prepare_dataset([runs[0], {**runs[1], "dummy_scans": "drop-last"}], {"notch": 50}, progress_bar=False)
    np.testing.assert_allclose(np.asarray(ds.runs[1].onsets), np.asarray(full.runs[0].onsets)[1:-2], atol=1e-9)
    assert ds.provenance["inputs"][ds.runs[1].key]["given"]["dummy_scans"] == "drop-last"
    with pytest.raises(Eeg2fmriInputError, match=r"runs\[1\]: dummy_scans: expected one of \['auto', 'drop-first', 'drop-last', 'error'\], "
                                                 r"got 'last'"):
        runs_from_files([runs[0], {**runs[1], "dummy_scans": "last"}])
