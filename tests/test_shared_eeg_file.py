"""One continuous EEG recording across several BOLD runs (a runs table lists the file once per run): each run is cut to
its block of scanner markers (``marker_block``, given or in the order listed) or to ``eeg_start``/``eeg_stop``."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from eeg2fmri.utils.validation import Eeg2fmriInputError

PAUSE_S = 30.0  # the scanner stopped between the two runs; the EEG went on


@pytest.fixture(scope="module")
def continuous(tiny_bids, tmp_path_factory):
    """The tiny dataset's two runs recorded into one FIF file with a 30-s pause between them (EEG, no markers), and
    their two BOLD files: returns (folder, eeg path, [bold paths], [first sample of each run in the file])."""
    import mne

    out = tmp_path_factory.mktemp("continuous")
    raws = [mne.io.read_raw_brainvision(next((tiny_bids / s / "eeg").glob("*_eeg.vhdr")), preload=True, verbose=False)
            for s in ("sub-01", "sub-02")]
    sf = raws[0].info["sfreq"]
    pause = raws[0].get_data(start=int(150 * sf), stop=int((150 + PAUSE_S) * sf))  # EEG without scanner markers
    data = np.concatenate([raws[0].get_data(), pause, raws[1].get_data()], axis=1)
    starts = [0.0, (raws[0].n_times + pause.shape[1]) / sf]
    onset, desc = [], []
    for raw, t0 in zip(raws, starts):
        onset += list(raw.annotations.onset - raw.first_time + t0)
        desc += list(raw.annotations.description)
    both = mne.io.RawArray(data, raws[0].info.copy(), verbose=False)
    both.set_channel_types({"ECG": "ecg", "EOG": "eog"}, on_unit_change="ignore", verbose=False)  # (as channels.tsv types them)
    both.set_annotations(mne.Annotations(onset, np.zeros(len(onset)), desc))
    eeg = out / "session_raw.fif"
    both.save(eeg, fmt="double", verbose="error")
    bolds = [next((tiny_bids / s / "func").glob("*_bold.nii*")) for s in ("sub-01", "sub-02")]
    return out, eeg, bolds, starts


def _runs(eeg, bolds, **extra):
    return [{"eeg": str(eeg), "bold": str(b), "subject": "01", "task": "rest", "run": i + 1, **{k: v[i] for k, v in extra.items()}}
            for i, b in enumerate(bolds)]


def test_one_file_for_two_runs_takes_its_marker_blocks_in_order(continuous, tiny_prepared, caplog):
    """Listed twice without saying which part is whose, the file's two blocks of markers go to the runs in the order
    listed: each run's volumes have the onsets and BOLD of the same run prepared from its own file, its EEG features
    equal those of that file away from the cut's edges (filters start afresh there; up to the per-run standardisation), and the run's part of the file is
    recorded (``eeg_span_s``); the same spans given as eeg_start/eeg_stop give the same dataset."""
    import logging

    from eeg2fmri.datasets import prepare_dataset
    from eeg2fmri.datasets.prepared import runs_from_files

    _, eeg, bolds, starts = continuous
    with caplog.at_level(logging.INFO, logger="eeg2fmri"):
        recs = runs_from_files(_runs(eeg, bolds))
    assert [(r.marker_block, r.meta["runs_in_eeg_file"]) for r in recs] == [(1, 2), (2, 2)]
    assert "listed for 2 runs (sub-01_task-rest_run-1, sub-01_task-rest_run-2): each takes the file's block" in caplog.text
    # listed out of run order (user test 50: run 3's BOLD took the first block, silently): blocks in run order, warned
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        back = runs_from_files(_runs(eeg, bolds)[::-1])
    assert [(r.run, r.marker_block) for r in back] == [("2", 2), ("1", 1)]
    assert "listed for 2 runs out of run order; each takes the file's block of scanner markers in run order" in caplog.text
    ds = prepare_dataset(_runs(eeg, bolds), {"notch": 50}, progress_bar=False)
    spans = [ds.provenance["inputs"][r.key]["eeg_span_s"] for r in ds.runs]
    first_marker = [float(r.onsets[0]) for r in tiny_prepared.runs]
    # block 1 from the file's start (its first marker is < 20 s in); block 2 from 20 s before its first marker, or half the
    # pause after block 1's last volume where that is less (the cut holds no marker of the other run)
    first2, end1 = starts[1] + first_marker[1], float(tiny_prepared.runs[0].onsets[-1]) + tiny_prepared.tr
    assert spans[0][0] == 0.0 and spans[1][0] == pytest.approx(first2 - min(20.0, (first2 - end1) / 2), abs=0.006)
    for mine, own, span, t0 in zip(ds.runs, tiny_prepared.runs, spans, starts):
        np.testing.assert_allclose(np.asarray(mine.onsets) + span[0], np.asarray(own.onsets) + t0, atol=1e-4)  # (FIF: float32 onsets)
        np.testing.assert_array_equal(np.asarray(mine.bold), np.asarray(own.bold))
        a, b = np.asarray(mine.features), np.asarray(own.features)
        shift = int(own.window_end[0] - mine.window_end[0])  # the run's frames count from the cut (frames end at volume onsets)
        k0, k1 = 10, min(len(a), len(b) - shift) - 10
        # (standardised per run: the same up to each feature's scale and offset over the run's own frames)
        fa, fb = a[k0:k1].reshape(k1 - k0, -1), b[k0 + shift : k1 + shift].reshape(k1 - k0, -1)
        r = [np.corrcoef(fa[:, j], fb[:, j])[0, 1] for j in range(fa.shape[1])]
        assert min(r) > 0.995, min(r)  # (a frame off: below 0.4)
    from eeg2fmri.evaluation.protocol import _file_volumes

    # saved predictions (evaluate --save-predictions) time the volumes in seconds of the file, as the user reads it
    np.testing.assert_allclose(_file_volumes(ds, 1, np.arange(3))["onsets_s"], np.asarray(tiny_prepared.runs[1].onsets[:3]) + starts[1],
                               atol=1e-4)
    given = prepare_dataset(_runs(eeg, bolds, eeg_start=[s[0] for s in spans], eeg_stop=[s[1] for s in spans]), {"notch": 50},
                            progress_bar=False)
    for a, b in zip(given.runs, ds.runs):
        np.testing.assert_array_equal(np.asarray(a.features), np.asarray(b.features))
        np.testing.assert_array_equal(np.asarray(a.onsets), np.asarray(b.onsets))


def test_the_file_as_one_run_says_how_to_give_each_run_its_part(continuous, tiny_bids):
    """The whole recording as one run: the pause is refused with the blocks listed and the runs-table columns named."""
    from eeg2fmri.datasets import prepare_dataset

    _, eeg, bolds, _ = continuous
    with pytest.raises(Eeg2fmriInputError, match=r"session_raw\.fif: the scanner markers at .* If the file holds several BOLD runs "
                                                 r"\(the scanner stopped and started again: 2 blocks of markers, 1: 3\.7-183\.7 s, 90 "
                                                 r"markers; 2: .*\), give each run its part: in a runs table the columns marker_block"):
        prepare_dataset(_runs(eeg, bolds[:1]), {"notch": 50}, progress_bar=False)


def test_shared_file_errors_name_the_file_and_the_fix(continuous, tmp_path):
    from eeg2fmri.datasets import prepare_dataset
    from eeg2fmri.datasets.prepared import runs_from_files

    _, eeg, bolds, _ = continuous
    three = _runs(eeg, bolds) + [{"eeg": str(eeg), "bold": str(bolds[0]), "subject": "01", "task": "rest", "run": 3}]
    with pytest.raises(Eeg2fmriInputError, match=r"session_raw\.fif: the runs table gives this file to 3 runs, so its 'R128' markers "
                                                 r"should form 3 blocks \(parted by pauses > 4\.5 TRs\), found 2 \(1: 3\.7-183\.7 s, 90 "
                                                 r"markers; 2: .*\)\. Say which block is each run's: a marker_block column"):
        prepare_dataset(three, {"notch": 50}, progress_bar=False)
    with pytest.raises(Eeg2fmriInputError, match=r"marker_block 3 for run sub-01_task-rest_run-1: expected 1-2, the file's blocks of "
                                                 r"'R128' markers being 1: 3\.7-183\.7 s"):
        prepare_dataset(_runs(eeg, bolds[:1], marker_block=[3]), {"notch": 50}, progress_bar=False)
    with pytest.raises(Eeg2fmriInputError, match=r"expected either marker_block or eeg_start/eeg_stop for run sub-01_task-rest_run-1, "
                                                 r"got both"):
        prepare_dataset(_runs(eeg, bolds[:1], marker_block=[1], eeg_start=[0.0]), {"notch": 50}, progress_bar=False)
    with pytest.raises(Eeg2fmriInputError, match=r"eeg_start/eeg_stop for run sub-01_task-rest_run-1: expected 0 <= eeg_start < "
                                                 r"eeg_stop within the recording \(0-\d+\.\d s\), got 50\.0-20\.0"):
        prepare_dataset(_runs(eeg, bolds[:1], eeg_start=[50.0], eeg_stop=[20.0]), {"notch": 50}, progress_bar=False)
    with pytest.raises(Eeg2fmriInputError, match=r"marker_block 1 for run sub-01_task-rest_run-1 needs scanner volume markers, but the "
                                                 r"prepare option marker is null"):
        prepare_dataset(_runs(eeg, bolds[:1], marker_block=[1]), {"notch": 50, "marker": None, "first_onset": 3.69}, progress_bar=False)
    with pytest.raises(Eeg2fmriInputError, match=r"session_raw\.fif: this EEG file is listed for 2 runs; expected each to say which part "
                                                 r"of it is its own \(marker_block, or eeg_start/eeg_stop\) or when its first volume "
                                                 r"starts \(first_onset, s of the file\), found none for \['sub-01_task-rest_run-2'\]"):
        runs_from_files([{**_runs(eeg, bolds)[0], "marker_block": 1}, _runs(eeg, bolds)[1]])
    with pytest.raises(Eeg2fmriInputError, match=r"runs\[0\]: marker_block: expected a whole number >= 1 \(1 = the first block of "
                                                 r"scanner markers\), got '1\.5'"):
        runs_from_files(_runs(eeg, bolds[:1], marker_block=["1.5"]))
    with pytest.raises(Eeg2fmriInputError, match=r"runs\[0\]: eeg_start: expected a number \(seconds\), got 'soon'"):
        runs_from_files(_runs(eeg, bolds[:1], eeg_start=["soon"]))


def test_first_onset_counts_from_the_file_start(continuous, tiny_prepared):
    """Regular timing inside a cut (no markers): first_onset is given in seconds of the file, as the user reads it there."""
    from eeg2fmri.datasets import prepare_dataset

    _, eeg, bolds, starts = continuous
    t1 = starts[1] + float(tiny_prepared.runs[1].onsets[0])  # run 2's first volume in the file
    ds = prepare_dataset([{**_runs(eeg, bolds)[1], "eeg_start": starts[1] - 5.0, "first_onset": t1}], {"notch": 50, "marker": None},
                         progress_bar=False)
    span = ds.provenance["inputs"][ds.runs[0].key]["eeg_span_s"]
    np.testing.assert_allclose(np.asarray(ds.runs[0].onsets) + span[0], np.asarray(tiny_prepared.runs[1].onsets) + starts[1], atol=1e-4)


def test_runs_table_and_check_with_a_shared_file(continuous, capsys):
    """`eeg2fmri datasets --check runs.tsv` and `prepare runs.tsv` with one EEG file on two rows: checked and prepared as
    two runs, each its block (the check says which part of the file each run is)."""
    from eeg2fmri.cli import main
    from eeg2fmri.datasets import load_prepared

    folder, eeg, bolds, starts = continuous
    table = folder / "runs.tsv"
    table.write_text("eeg\tbold\tsubject\trun\n" + "".join(f"{eeg.name}\t{b}\t01\t{i + 1}\n" for i, b in enumerate(bolds)))
    assert main(["datasets", "--check", str(table)]) == 0
    out = capsys.readouterr().out
    assert "layout files: 2 complete run(s); OK" in out and "problem" not in out
    assert re.search(r"sub-01_run-2: EEG 201\.89-402\.4\d s of the file used: marker block 2 of 2 \(90 'R128' markers; the file's "
                     r"blocks: 1: 3\.7-183\.7 s, 90 markers; 2: 220\.1-400\.1 s, 90 markers\)", out)  # (to the file's end: < 20 s after)
    assert main(["prepare", str(table), "--out", str(folder / "prep"), "--config", json.dumps({"notch": 50}), "-q"]) == 0
    ds = load_prepared(folder / "prep")
    assert [ds.provenance["inputs"][r.key]["eeg_span_s"][0] > 0 for r in ds.runs] == [False, True]
    assert main(["prepare", str(table), "--out", str(folder / "prep"), "--config", json.dumps({"notch": 50}), "-q"]) == 0
    assert "up to date" in capsys.readouterr().out
    # other parts of the file (a review: "up to date", and the old cut kept): prepared again, what differs named
    table.write_text("eeg\tbold\tsubject\trun\teeg_start\teeg_stop\n"
                     + "".join(f"{eeg.name}\t{b}\t01\t{i + 1}\t{s:.3f}\t{e:.3f}\n" for i, (b, (s, e)) in
                               enumerate(zip(bolds, [(0.0, 190.0), (starts[1] - 2.0, starts[1] + 190.0)]))))
    assert main(["prepare", str(table), "--out", str(folder / "prep"), "--config", json.dumps({"notch": 50}), "-q"]) == 2
    assert ("a run's part of its EEG file or its own timing (marker_block, eeg_start/eeg_stop, first_onset, tr, marker of a runs "
            "table) changed in 2 run(s)") in capsys.readouterr().err
    assert main(["prepare", str(table), "--out", str(folder / "prep"), "--config", json.dumps({"notch": 50}), "-q", "--overwrite"]) == 0
    again = load_prepared(folder / "prep")
    assert again.provenance["inputs"][again.runs[1].key]["eeg_span_s"][0] == pytest.approx(starts[1] - 2.0, abs=0.006)


def _bids_with_one_recording(root, eeg, bolds):
    """A BIDS folder whose EEG has no run- entity beside BOLD runs run-1..run-n (copies of ``bolds``)."""
    import shutil

    (root / "sub-01" / "eeg").mkdir(parents=True)
    (root / "sub-01" / "func").mkdir(parents=True)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "one recording", "BIDSVersion": "1.8.0"}))
    shutil.copy(eeg, root / "sub-01" / "eeg" / "sub-01_task-rest_eeg.fif")
    for i, b in enumerate(bolds, start=1):
        shutil.copy(b, root / "sub-01" / "func" / f"sub-01_task-rest_run-{i}_bold.nii.gz")
        side = b.parent / b.name.replace(".nii.gz", ".json")
        if side.is_file():
            shutil.copy(side, root / "sub-01" / "func" / f"sub-01_task-rest_run-{i}_bold.json")
    return root


def test_bids_eeg_without_run_pairs_with_each_bold_run(continuous, tiny_prepared, tmp_path):
    """BIDS: an EEG recording named without run- beside BOLD runs run-1 and run-2 (the EEG ran on across the scanner's
    runs) pairs with both, each run taking its block of scanner markers in run order: the runs table's result; with one
    BOLD run, the EEG is simply that run's (a file named without run-)."""
    from eeg2fmri.datasets import prepare_dataset
    from eeg2fmri.io.pairing import pair_bids_runs

    _, eeg, bolds, starts = continuous
    root = _bids_with_one_recording(tmp_path / "bids", eeg, bolds)
    table = pair_bids_runs(root)
    assert [(r.key, r.status, r.marker_block, r.runs_in_eeg_file) for r in table.rows] == [
        ("sub-01_task-rest_run-1", "paired", 1, 2), ("sub-01_task-rest_run-2", "paired", 2, 2)]
    assert ("sub-01_task-rest_eeg.fif: an EEG recording without a run- entity, paired with the 2 BOLD runs run-1, run-2 of its "
            "subject/session/task: each run takes its block of scanner markers") in str(table)
    assert "sub-01_task-rest_eeg.fif [marker block 2 of 2] -> sub-01_task-rest_run-2_bold.nii.gz" in str(table)
    ds = prepare_dataset(root, {"notch": 50}, progress_bar=False)
    for mine, own, t0 in zip(ds.runs, tiny_prepared.runs, starts):
        span = ds.provenance["inputs"][mine.key]["eeg_span_s"]
        np.testing.assert_allclose(np.asarray(mine.onsets) + span[0], np.asarray(own.onsets) + t0, atol=1e-4)
        np.testing.assert_array_equal(np.asarray(mine.bold), np.asarray(own.bold))
    single = _bids_with_one_recording(tmp_path / "single", eeg, bolds[:1])
    table = pair_bids_runs(single)
    assert [(r.key, r.status, r.marker_block) for r in table.rows] == [("sub-01_task-rest_run-1", "paired", None)]
    assert "sub-01_task-rest_eeg.fif: an EEG recording without a run- entity, paired with the BOLD run run-1" in str(table)


def test_review_cases_of_a_shared_file(continuous, tiny_prepared, tmp_path):
    """A review's cases (user test 49): rows timed by their own first_onset read the whole file as before; one MNE Raw
    listed twice is one file; one file by two spellings is one file; a recording paused between the runs (a join) bounds
    the cut (run 1's); a cut to the file's end keeps its last sample; a start between samples is recorded as the sample it took."""
    import mne

    from eeg2fmri.datasets import prepare_dataset
    from eeg2fmri.datasets.prepared import runs_from_files

    folder, eeg, bolds, starts = continuous
    t_first = [starts[i] + float(tiny_prepared.runs[i].onsets[0]) for i in range(2)]
    # 1. each row its own first_onset (s of the file), no markers: no block is assigned, each run reads the whole file
    recs = runs_from_files(_runs(eeg, bolds, first_onset=t_first))
    assert [r.marker_block for r in recs] == [None, None]
    ds = prepare_dataset(_runs(eeg, bolds, first_onset=t_first), {"notch": 50, "marker": None}, progress_bar=False)
    for mine, t0, own in zip(ds.runs, starts, tiny_prepared.runs):
        np.testing.assert_allclose(np.asarray(mine.onsets), np.asarray(own.onsets) + t0, atol=1e-4)  # (the whole file: no cut)
    with pytest.raises(Eeg2fmriInputError, match=r"listed for 2 runs, so run sub-01_task-rest_run-1 takes the file's block 1 of "
                                                 r"scanner markers, but the prepare option marker is null; give each run its part"):
        prepare_dataset(_runs(eeg, bolds), {"notch": 50, "marker": None, "first_onset": 3.69}, progress_bar=False)
    # 2. one Raw object listed for both runs: written once, each run its block
    raw = mne.io.read_raw_fif(eeg, preload=True, verbose=False)
    objs = prepare_dataset([{**r, "eeg": raw} for r in _runs(eeg, bolds)], {"notch": 50}, progress_bar=False)
    np.testing.assert_array_equal(np.asarray(objs.runs[1].bold), np.asarray(tiny_prepared.runs[1].bold))
    # 3. one file by two spellings
    (folder / "sub").mkdir(exist_ok=True)
    twice = runs_from_files([{**_runs(eeg, bolds)[0], "eeg": str(folder / "sub" / ".." / eeg.name)}, _runs(eeg, bolds)[1]])
    assert [r.marker_block for r in twice] == [1, 2]
    # 4. the recorder paused 3 s after run 1's last volume (a New Segment join): run 1's cut stops at the join
    joined = raw.copy()
    t_join = float(tiny_prepared.runs[0].onsets[-1]) + tiny_prepared.tr + 3.0
    joined.set_annotations(joined.annotations + mne.Annotations([t_join], [0.0], ["New Segment/"]))
    path = tmp_path / "joined_raw.fif"
    joined.save(path, fmt="double", verbose="error")
    ds = prepare_dataset(_runs(path, bolds), {"notch": 50}, progress_bar=False)
    spans = [ds.provenance["inputs"][r.key]["eeg_span_s"] for r in ds.runs]
    assert spans[0][1] == pytest.approx(t_join, abs=0.011) and spans[1][0] > t_join  # (run 1 would reach 18 s into the pause)
    # ... and run 2, after the join, takes its full 20 s margin (the EEG from the join on is its alone: no half-pause limit)
    assert spans[1][0] == pytest.approx(t_first[1] - 20.0, abs=0.011)
    # 5. a start between two samples: the sample the cut took is recorded, and first_onset moves by exactly that; to the
    # file's end (no eeg_stop): its last sample stays
    odd = prepare_dataset([{**_runs(eeg, bolds)[1], "eeg_start": starts[1] - 5.004, "first_onset": t_first[1]}], {"notch": 50, "marker": None},
                          progress_bar=False)
    span = odd.provenance["inputs"][odd.runs[0].key]["eeg_span_s"]
    assert abs(span[0] * raw.info["sfreq"] - round(span[0] * raw.info["sfreq"])) < 1e-6  # a whole sample
    assert span[1] == pytest.approx(raw.times[-1] + 1.0 / raw.info["sfreq"], abs=1e-6)
    np.testing.assert_allclose(np.asarray(odd.runs[0].onsets) + span[0], np.asarray(tiny_prepared.runs[1].onsets) + starts[1], atol=1e-4)


def test_bids_recording_with_other_blocks_than_runs(continuous, tiny_prepared, tmp_path, caplog):
    """A BIDS recording named without run- whose markers form more blocks than its BOLD runs: a short block (a localizer's
    2 markers; user test 50: refused) is left out, warned, where that leaves one block per run; a block as long as a run's
    cannot be told from one: refused, the message naming a runs table (a BIDS user has no marker_block column to add)."""
    import logging

    import mne

    from eeg2fmri.datasets import prepare_dataset

    _, eeg, bolds, starts = continuous
    raw = mne.io.read_raw_fif(eeg, preload=True, verbose=False)
    loc = raw.copy()
    loc.set_annotations(raw.annotations + mne.Annotations([100.0, 196.0, 198.0], [0.0] * 3, ["Comment/x", "Response/R128", "Response/R128"]))
    src = tmp_path / "localizer_raw.fif"
    loc.save(src, fmt="double", verbose="error")
    root = _bids_with_one_recording(tmp_path / "bids", src, bolds)
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        ds = prepare_dataset(root, {"notch": 50}, progress_bar=False)
    assert "1 short block(s) of 'R128' markers left out (196.0-200.0 s, 2 markers: a localizer or shim scan?); the 2 runs take" in caplog.text
    for mine, own, t0 in zip(ds.runs, tiny_prepared.runs, starts):
        span = ds.provenance["inputs"][mine.key]["eeg_span_s"]
        np.testing.assert_allclose(np.asarray(mine.onsets) + span[0], np.asarray(own.onsets) + t0, atol=1e-4)
    # a block that is not short beside the runs' (here: 4 markers, with the share set to 0) cannot be told from a run's
    from eeg2fmri.io import layouts

    four = raw.copy()
    four.set_annotations(raw.annotations + mne.Annotations(196.0 + 2.0 * np.arange(4), [0.0] * 4, ["Response/R128"] * 4))
    src2 = tmp_path / "four_raw.fif"
    four.save(src2, fmt="double", verbose="error")
    root2 = _bids_with_one_recording(tmp_path / "bids2", src2, bolds)
    mp = pytest.MonkeyPatch()
    mp.setattr(layouts, "STRAY_BLOCK_SHARE", 0.0)
    try:
        with pytest.raises(Eeg2fmriInputError, match=r"this recording \(named without run-\) is paired with 2 runs, so its 'R128' markers "
                                                     r"should form 2 blocks .* found 3 \(.*2: 196\.0-204\.0 s, 4 markers.*\)\. Say which "
                                                     r"block is each run's: list the runs in a runs table"):
            prepare_dataset(root2, {"notch": 50}, progress_bar=False)
    finally:
        mp.undo()


def test_unequal_leading_drops_of_one_recording_are_warned(continuous, tmp_path, caplog):
    """User test 50: of runs cut from one recording, a BOLD file cut short by 2 volumes has 2 extra markers, taken as leading
    dummy scans (every volume 2 TRs late) while the other run dropped none: warned, naming the run and the fixes."""
    import logging

    import nibabel as nib

    from eeg2fmri.datasets import prepare_dataset

    _, eeg, bolds, _ = continuous
    img = nib.load(bolds[1])
    short = tmp_path / "run2_bold.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[..., :-2], img.affine, img.header), short)
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        prepare_dataset(_runs(eeg, [bolds[0], short]), {"notch": 50}, progress_bar=False)
    assert ("session_raw.fif: runs cut from this recording dropped different numbers of leading scanner markers as dummy scans "
            "(sub-01_task-rest_run-1: 0, sub-01_task-rest_run-2: 2); a scanner discards as many in every run, so "
            "sub-01_task-rest_run-2 may be a BOLD file cut short") in caplog.text
