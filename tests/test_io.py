"""Reading and synchronisation: pairing, TR, markers, clear errors."""

from __future__ import annotations

import json
import logging
import re
import shutil

import mne
import nibabel as nib
import numpy as np
import pytest

from eeg2fmri.io import find_runs, read_bold, read_eeg, volume_onsets
from eeg2fmri.utils.validation import Eeg2fmriInputError


def test_find_runs_pairs_eeg_and_bold(tiny_bids):
    runs = find_runs(tiny_bids)
    assert [r.subject for r in runs] == ["01", "02"]
    assert runs[0].bold_path.name == "sub-01_task-rest_run-1_bold.nii.gz"
    assert runs[0].key == "sub-01_task-rest_run-1"


def test_missing_bold_is_named(tiny_bids, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(tiny_bids, root, ignore=shutil.ignore_patterns("derivatives"))
    (root / "sub-02/func/sub-02_task-rest_run-1_bold.nii.gz").unlink()
    with pytest.raises(Eeg2fmriInputError, match=r"sub-02_task-rest_run-1_eeg.vhdr: found EEG but no BOLD run; expected .*sub-02_task-rest_run-1_bold.nii.gz"):
        find_runs(root)
    assert len(find_runs(root, require_bold=False)) == 2


def test_not_a_bids_folder(tmp_path):
    with pytest.raises(Eeg2fmriInputError, match="expected EEG files sub-"):
        find_runs(tmp_path)
    with pytest.raises(Eeg2fmriInputError, match="expected a BIDS dataset folder, found nothing: the path does not exist"):
        find_runs(tmp_path / "nope")


def test_tr_from_sidecar_and_disagreement(tiny_bids, tmp_path):
    bold = tiny_bids / "sub-01/func/sub-01_task-rest_run-1_bold.nii.gz"
    img, tr = read_bold(bold)
    assert tr == 2.0 and img.shape[3] == 90
    dst = tmp_path / "sub-01_task-rest_bold.nii.gz"
    shutil.copy(bold, dst)
    (tmp_path / "sub-01_task-rest_bold.json").write_text(json.dumps({"RepetitionTime": 2.5}))
    with pytest.raises(Eeg2fmriInputError, match=r"TR disagreement: sidecar .* RepetitionTime=2.5 s, the NIfTI header says 2.0 s"):
        read_bold(dst)
    assert read_bold(dst, tr=2.0)[1] == 2.0


def test_truncated_and_3d_nifti(tmp_path):
    p = tmp_path / "vol.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6), np.float32), np.eye(4)), p)
    with pytest.raises(Eeg2fmriInputError, match=r"expected a 4D BOLD image .* found shape \(4, 5, 6\)\. A series of one file per volume \(SPM, Analyze \.img/\.hdr\)\? Stack it into one 4D file first: nilearn\.image\.concat_imgs"):
        read_bold(p)
    five = tmp_path / "five.nii.gz"  # (user test 35: a trailing 5th dimension of size 1 was refused with no fix)
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6, 7, 1), np.float32), np.eye(4)), five)
    with pytest.raises(Eeg2fmriInputError, match=r"five\.nii\.gz: expected a 4D BOLD image .* found shape \(4, 5, 6, 7, 1\)\. Its dimensions after "
                       r"the 4th have size 1: drop them first, e\.g\. nibabel\.funcs\.squeeze_image"):
        read_bold(five)
    bad = tmp_path / "bad.nii"
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6, 7), np.float32), np.eye(4)), bad)
    bad.write_bytes(bad.read_bytes()[:600])
    from eeg2fmri.io.bold import load_bold_data

    img, _ = read_bold(bad)
    with pytest.raises(Eeg2fmriInputError, match="may be truncated"):
        load_bold_data(img, str(bad))


def test_unsupported_eeg_format(tmp_path):
    p = tmp_path / "rec.xyz"
    p.write_text("x")
    with pytest.raises(Eeg2fmriInputError, match=r"unsupported EEG format '.xyz'"):
        read_eeg(p)


def test_markers_and_fallback(tiny_bids):
    raw = read_eeg(tiny_bids / "sub-01/eeg/sub-01_task-rest_run-1_eeg.vhdr")
    assert set(raw.get_channel_types()) == {"eeg", "ecg", "eog"}  # typed from channels.tsv
    rep = volume_onsets(raw, 90, 2.0)
    assert rep.method == "markers" and rep.marker == "R128" and len(rep.onsets) == 90
    # dummy scans: fewer volumes than markers -> first markers dropped
    rep2 = volume_onsets(raw, 88, 2.0)
    assert rep2.dropped == 2 and rep2.onsets[0] == pytest.approx(rep.onsets[2])
    # ... or the last ones (markers after the last saved volume), or an error; the drop is a warning (it sets every onset)
    rep3 = volume_onsets(raw, 88, 2.0, dummy_scans="drop-last")
    assert rep3.dropped == 2 and rep3.onsets[0] == pytest.approx(rep.onsets[0]) and rep3.onsets[-1] == pytest.approx(rep.onsets[87])
    with pytest.raises(Eeg2fmriInputError, match=r"90 markers for 88 volumes; pass dummy_scans='drop-first' if the first 2 were dummy scans, "
                                                 r"or dummy_scans='drop-last'"):
        volume_onsets(raw, 88, 2.0, dummy_scans="error")
    with pytest.raises(Eeg2fmriInputError, match=r"expected dummy_scans in \['auto', 'drop-first', 'drop-last', 'error'\], got 'first'"):
        volume_onsets(raw, 88, 2.0, dummy_scans="first")
    # more extra markers than a scanner discards, without a pause (user test 8: the BOLD cut to its first volumes): refused
    # by default with the fixes; explicitly 'drop-first' drops them; 10 extra markers are still dummy scans
    with pytest.raises(Eeg2fmriInputError, match=r"90 'R128' markers for 60 volumes: dropping the first 30 as dummy scans \(volume 0 at "
                                                 r"[\d.]+ s\) is more than the 10 a scanner discards\. If the BOLD file holds only part of the scan .*dummy_scans='drop-first'.*dummy_scans='drop-last'"):
        volume_onsets(raw, 60, 2.0)
    assert volume_onsets(raw, 60, 2.0, dummy_scans="drop-first").dropped == 30 and volume_onsets(raw, 80, 2.0).dropped == 10
    with pytest.raises(Eeg2fmriInputError, match=r"found 90 'R128' markers but the BOLD run has 95 volumes"):
        volume_onsets(raw, 95, 2.0)
    with pytest.raises(Eeg2fmriInputError, match=r"markers are 2.0000 s apart but TR is 3.0 s; expected one marker per volume\. .*the TR is wrong: "
                                                 r"it comes from the run's \*_bold\.json RepetitionTime, else the NIfTI header .*--config '\{\"tr\": 2\}'"):
        volume_onsets(raw, 90, 3.0)
    # a layout that gives the TR says so (review: the message named the BOLD sidecar/header for ds003768's fixed 2.1 s)
    with pytest.raises(Eeg2fmriInputError, match=r"the TR is wrong: it is the one the ds003768 layout gives this run \(3 s; pass tr to override it\); "
                                                 r"pass the markers' interval as the TR"):
        volume_onsets(raw, 90, 3.0, tr_source="the one the ds003768 layout gives this run (3 s; pass tr to override it)")
    # a header TR in milliseconds read as seconds (user test 16): said so, with the TR to pass
    with pytest.raises(Eeg2fmriInputError, match=r"but TR is 2000.0 s \(the TR is 1000 times the markers' interval: a TR in milliseconds read as "
                                                 r"seconds.*prepare_dataset\(\.\.\., \{\"tr\": 2\}\)"):
        volume_onsets(raw, 90, 2000.0)
    with pytest.raises(Eeg2fmriInputError, match=r"expected scanner volume markers \['TR'\], found none") as err:
        volume_onsets(raw, 90, 2.0, marker="TR")
    # the fix for each command that prepares (a user test: train and benchmark users were told prepare's --config)
    assert "eeg2fmri train: data: {prepare: {marker: [<name>]}}" in str(err.value)
    assert """eeg2fmri benchmark: --train-config '{"data": {"prepare": {"marker": ["<name>"]}}}'""" in str(err.value)
    reg = volume_onsets(raw, 10, 2.0, marker=None, first_onset=1.5)
    assert reg.method == "regular" and reg.onsets[1] == pytest.approx(3.5)
    with pytest.raises(Eeg2fmriInputError, match="the EEG is shorter than the BOLD") as err:
        volume_onsets(raw, 1000, 2.0, marker=None, first_onset=0.0)
    # the way on (user test 12: the first_onset route's error offered none): the covered volumes, and how to keep them
    n_cov = int((raw.times[-1] + 1.0 / raw.info["sfreq"]) // 2.0)
    assert f"The EEG covers the first {n_cov} of the 1000 volumes ({1000 - n_cov} without EEG)" in str(err.value)
    assert f"img.slicer[..., :{n_cov}]" in str(err.value)
    with pytest.raises(Eeg2fmriInputError, match=r"No volume fits: volume 0 at 200.0 s is after the EEG's end; check first_onset"):
        volume_onsets(raw, 10, 2.0, marker=None, first_onset=200.0)


def _raw_with_markers(times, sfreq=250.0, dur=None):
    dur = dur or float(times[-1]) + 5.0
    info = mne.create_info(["Cz", "Pz"], sfreq, "eeg")
    raw = mne.io.RawArray(np.zeros((2, int(dur * sfreq))), info, verbose=False)
    raw.set_annotations(mne.Annotations(times, [0.0] * len(times), ["Response/R128"] * len(times)))
    return raw


def test_markers_with_jitter_missing_and_spurious(caplog):
    """Real marker streams: sample jitter kept as is, a lost marker filled in, a spurious one dropped."""
    from eeg2fmri.io.sync import repair_markers

    rng = np.random.default_rng(1)
    true = 3.0 + 2.0 * np.arange(40) + rng.integers(-1, 2, 40) / 250.0  # +-1 sample of jitter
    rep = volume_onsets(_raw_with_markers(true), 40, 2.0)
    np.testing.assert_array_equal(rep.onsets, true)
    assert not rep.notes
    lost = np.delete(true, [7, 20, 21])  # one and then two consecutive markers lost
    rep = volume_onsets(_raw_with_markers(lost), 40, 2.0)
    np.testing.assert_allclose(rep.onsets, true, atol=0.01)
    assert any("3 missed marker(s) filled in" in n for n in rep.notes)
    spurious = np.sort(np.concatenate([true, [true[11] + 0.13]]))
    rep = volume_onsets(_raw_with_markers(spurious), 40, 2.0)
    np.testing.assert_array_equal(rep.onsets, true)
    assert any("1 spurious marker(s)" in n for n in rep.notes)
    # a glitch just BEFORE a real marker (an audit: the first of the two was kept, so volume 11 moved 0.6 s early), and
    # one before the first marker and after the last: the marker nearest its neighbours' spacing is kept every time
    for glitch in (true[11] - 0.6, true[0] - 0.4, true[-1] + 0.3, true[25] + 0.9):
        rep = volume_onsets(_raw_with_markers(np.sort(np.concatenate([true, [glitch]]))), 40, 2.0)
        np.testing.assert_array_equal(rep.onsets, true)
        assert any(f"1 spurious marker(s) less than half a TR from a volume's marker dropped (at {glitch:.3f} s" in n for n in rep.notes), rep.notes
    # ... also where the marker next to the glitch was lost (a review: the glitch was kept, then the gap was refused)
    for lost_i, glitch in (([1], true[0] + 0.9), ([4, 6], true[5] + 0.8)):
        rep = volume_onsets(_raw_with_markers(np.sort(np.concatenate([np.delete(true, lost_i), [glitch]]))), 40, 2.0)
        np.testing.assert_allclose(rep.onsets, true, atol=0.01)
        assert any("1 spurious marker(s)" in n for n in rep.notes) and any("missed marker(s) filled in" in n for n in rep.notes)
    # dummy scans after a repair: the two repairs cancel out, as a pause does (user test 27: a 4-s pause read as 2 lost
    # markers + 2 dummy scans): refused by default; said to be dummies, the extra leading markers are the ones dropped
    with pytest.raises(Eeg2fmriInputError, match=r"missed 'R128' markers were filled in mid-run, and then 2 more markers than volumes would be "
                                                 r"dropped as dummy scans .* pass dummy_scans='drop-first'"):
        volume_onsets(_raw_with_markers(lost), 38, 2.0)
    rep = volume_onsets(_raw_with_markers(lost), 38, 2.0, dummy_scans="drop-first")
    assert rep.dropped == 2 and rep.onsets[0] == pytest.approx(true[2])
    # an interval of 1.5 TRs (a 1-s pause at TR 2 s) is neither jitter nor a lost marker (user test 27: passed in silence)
    with pytest.raises(Eeg2fmriInputError, match=r"are 3\.0\d\d s apart, not a whole number of the marker interval"):
        volume_onsets(_raw_with_markers(np.concatenate([true[:20], true[20:] + 1.0])), 40, 2.0)
    paused = np.concatenate([true[:20], true[20:] + 7.3])  # the scan paused 7.3 s: not a whole number of TRs
    with pytest.raises(Eeg2fmriInputError, match=r"EEG: the scanner markers at 4\d\.\d{3} s and 50\.\d{3} s are 9\.\d{3} s apart, not a whole number "
                                                 r"of the marker interval \(2\.0\d+ s\): the recording was interrupted .*\(eeg2fmri prepare --config "
                                                 r"'\{\"marker\": null, \"first_onset\": <s>\}'"):
        volume_onsets(_raw_with_markers(paused), 40, 2.0)
    # a whole number of intervals, but more markers missed in a row than are filled in (user test 12: called "not a whole number")
    with pytest.raises(Eeg2fmriInputError, match=r"are 8\.\d{3} s apart, 4 marker intervals \(2\.0\d+ s each\): more than 1 missed markers in a "
                                                 r"row are not filled in"):
        repair_markers(np.delete(true, [5, 6, 7]), 2.0, max_missing=1)
    # an interval of 1.08 TR (a 160-ms hiccup) is kept but said: more than jitter (user test 27: passed in silence)
    late = np.concatenate([true[:15], true[15:] + 0.16])
    want = (r"1 marker interval\(s\) differ from the median \(2\.0\d+ s\) by more than 5% \(2\.1\d\d s after 3\d\.\d{3} s\): "
                            r"more than a scanner's jitter; the volume onsets follow the markers there")
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        rep = volume_onsets(_raw_with_markers(late), 40, 2.0)
    np.testing.assert_allclose(rep.onsets, late, atol=1e-9)
    assert any(re.search(want, r.getMessage()) for r in caplog.records), [r.getMessage() for r in caplog.records]


def test_nan_and_flat_channels_rejected():
    from eeg2fmri.preprocessing import clean_eeg

    info = mne.create_info(["A", "B", "C"], 100.0, "eeg")
    data = np.random.default_rng(0).standard_normal((3, 1000)) * 1e-5
    data[1] = 0.0
    with pytest.raises(Eeg2fmriInputError, match=r"channel\(s\) \['B'\] are flat"):
        clean_eeg(mne.io.RawArray(data, info, verbose=False))
    data[1, 5] = np.nan
    with pytest.raises(Eeg2fmriInputError, match=r"channel\(s\) \['B'\] contain NaN/Inf"):
        clean_eeg(mne.io.RawArray(data, info, verbose=False))


def test_marker_times_match_names_as_prepare_and_cleaning_do():
    """One matcher for volume onsets, artefact cleaning and synthesis's --first-onset markers: case-insensitive, spaces
    ignored, with or without a Type/ prefix; the first name of the list that is present wins."""
    from eeg2fmri.io.sync import marker_times
    from eeg2fmri.preprocessing.cleaning import find_markers

    raw = mne.io.RawArray(np.zeros((1, 1000)), mne.create_info(["A"], 100.0, "eeg"), verbose=False)
    raw.set_annotations(mne.Annotations([3.0, 1.0, 2.0, 5.0], [0, 0, 0, 0], ["Response/R 128", "Response/R128", "Scanner/Scan Start", "Stimulus/S  1"]))
    name, t = marker_times(raw, ("TR", "r128", "Scan Start"))
    assert name == "r128" and t.tolist() == [1.0, 3.0]
    assert marker_times(raw, "scanstart")[1].tolist() == [2.0]
    assert marker_times(raw, "S1")[1].tolist() == [5.0]
    assert marker_times(raw, ("R12", "128")) == (None, None)  # no partial names
    times, found = find_markers(raw, ["Scan Start"])
    assert found == "Scan Start" and times.tolist() == [2.0]
    times, found = find_markers(raw, ["T1"])
    assert found is None and times.size == 0


def test_a_marker_name_with_spaces_is_suggested_quoted_for_the_shell(tmp_path):
    """BrainVision's 'Stimulus/S  1' as the likely volume marker: the suggested --marker is shell-quoted (unquoted,
    argparse would read 'S' and '1' as two names)."""
    import shlex

    from eeg2fmri.io.sync import volume_onsets

    raw = mne.io.RawArray(np.zeros((1, 3000)), mne.create_info(["A"], 100.0, "eeg"), verbose=False)
    raw.set_annotations(mne.Annotations(0.5 + 2.0 * np.arange(13), 0.0, ["Stimulus/S  1"] * 13))
    with pytest.raises(Eeg2fmriInputError, match=r'likely the volume marker, marker: \["S  1"\] \(eeg2fmri datasets --check: '
                                                 r"--marker 'S  1'\)") as err:
        volume_onsets(raw, 12, 2.0)
    suggested = str(err.value).split("--marker ", 1)[1].split(")", 1)[0]
    assert shlex.split(suggested) == ["S  1"]
    assert "events.tsv" not in str(err.value)  # no BIDS events file here: not mentioned
    # one marker lost (prepare fills in up to 3): still named as the likely volume marker
    onsets = np.delete(0.5 + 2.0 * np.arange(13), 6)
    raw.set_annotations(mne.Annotations(onsets, 0.0, ["Stimulus/S  1"] * 12))
    with pytest.raises(Eeg2fmriInputError, match=r"'Stimulus/S  1' occurs 12 times every 2\.000 s, about one per volume \(13 volumes: 1 missed, filled in when used\) "
                                                 r"of TR 2 s: likely the volume marker"):
        volume_onsets(raw, 13, 2.0)
    # beside a BIDS events.tsv the error says the annotations came from it
    (tmp_path / "sub-01_task-rest_run-1_events.tsv").write_text("onset\tduration\ttrial_type\n")
    with pytest.raises(Eeg2fmriInputError, match=r"\. The annotations come from sub-01_task-rest_run-1_events\.tsv, which replaces the "
                                                 r"recording's own markers"):
        volume_onsets(raw, 13, 2.0, marker="R128", where=str(tmp_path / "sub-01_task-rest_run-1_eeg.vhdr"))


def test_markers_drifting_against_the_tr_are_used_with_a_warning(caplog):
    """Markers 2% slower than the TR (a wrong TR, or an EEG clock off by 2%) pass the 5% tolerance: the onsets follow
    the markers, and a warning says how far they part from a TR grid."""

    from eeg2fmri.io.sync import volume_onsets

    times = 3.0 + np.arange(60) * 2.04
    raw = _raw_with_markers(times, dur=times[-1] + 10.0)
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        rep = volume_onsets(raw, 60, 2.0)
    np.testing.assert_allclose(rep.onsets, times, atol=1 / 250)
    msg = "'R128' markers are 2.0400 s apart but TR is 2.0 s (+2.00%): over 60 volumes the marker times and a TR grid part by 2.4 s"
    assert any(msg in r.getMessage() for r in caplog.records) and any(msg in n for n in rep.notes)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):  # sample-level jitter around the TR: no warning
        volume_onsets(_raw_with_markers(3.0 + np.arange(60) * 2.0 + np.random.default_rng(0).uniform(-0.004, 0.004, 60), dur=140.0), 60, 2.0)
    assert not any("apart but TR is" in r.getMessage() for r in caplog.records)


def test_bad_spans_equal_the_samples_mne_rejects():
    """io.eeg.bad_spans follows MNE's convention: the samples inside its spans are those MNE sets to NaN with
    reject_by_annotation="NaN" (descriptions starting with "bad", any case, any Type/ prefix); joins are not spans."""
    from eeg2fmri.io.eeg import bad_spans

    sfreq = 100.0
    raw = mne.io.RawArray(np.ones((2, 6000)), mne.create_info(["Cz", "Pz"], sfreq, "eeg"), verbose=False)
    raw.set_annotations(mne.Annotations([5.0, 12.25, 30.0, 44.0, 50.0], [2.0, 0.5, 3.3, 0.0, 1.0],
                                        ["BAD_motion", "bad blink", "Response/R128", "BAD boundary", "bad_acq_skip"]))
    spans = bad_spans(raw)
    ours = np.zeros(raw.n_times, bool)
    for a, b in spans:
        ours[int(np.ceil(a * sfreq - 1e-9)) : int(np.ceil(b * sfreq - 1e-9))] = True
    theirs = np.isnan(raw.get_data(reject_by_annotation="NaN")[0])
    np.testing.assert_allclose(spans, [[5.0, 7.0], [12.25, 12.75], [50.0, 51.0]])
    np.testing.assert_array_equal(ours, theirs)


def test_volume_markers_from_a_trigger_channel(tmp_path):
    """BDF 'Status' / EDF trigger channels: their events are markers named by code ('128' or 'Status/128'), at the times
    mne.find_events gives; without a marker name that matches, the error lists them and suggests the code."""
    from eeg2fmri.io.sync import stim_events

    sf, tr, n_vol = 250.0, 2.0, 12
    n = int(sf * (3.0 + tr * n_vol + 4.0))
    rng = np.random.default_rng(3)
    stim = np.zeros(n)
    first = int(3.004 * sf)
    for k in range(n_vol):
        stim[first + int(k * tr * sf) : first + int(k * tr * sf) + 3] = 128
    stim[int(1.0 * sf) : int(1.0 * sf) + 3] = 7  # another code (a task trigger) once
    info = mne.create_info(["Cz", "Pz", "Oz", "Status"], sf, ["eeg", "eeg", "eeg", "stim"])
    raw = mne.io.RawArray(np.vstack([rng.standard_normal((3, n)) * 1e-5, stim]), info, verbose=False)
    ev = mne.find_events(raw, stim_channel="Status", shortest_event=1, verbose=False)
    want = (ev[ev[:, 2] == 128, 0] - raw.first_samp) / sf
    got = stim_events(raw)
    assert set(got) == {"Status/128", "Status/7"}
    np.testing.assert_allclose(got["Status/128"], want)
    for name in ("128", "Status/128", "status/128"):
        rep = volume_onsets(raw, n_vol, tr, marker=(name,))
        np.testing.assert_allclose(rep.onsets, want)
        assert rep.method == "markers"
    with pytest.raises(Eeg2fmriInputError, match=r"found none \(annotations present: \[\]; trigger-channel events present: Status/128 \(12x\), "
                                                 r"Status/7 \(1x\) \(select one by its code, e\.g\. marker: \[\"128\"\]\)\)"):
        volume_onsets(raw, n_vol, tr)
    # annotations come first: a matching annotation wins over the trigger channel
    raw.set_annotations(mne.Annotations(want + 0.5, 0.0, ["128"] * len(want)))
    np.testing.assert_allclose(volume_onsets(raw, n_vol, tr, marker=("128",)).onsets, want + 0.5)


def _bids_edf(root, names: list[str]):
    """A one-run BIDS dataset in ``root``: sub-01/eeg/sub-01_task-rest_eeg.edf with EEG channels ``names`` (10 s, 250 Hz)."""
    info = mne.create_info(names, 250.0, "eeg")
    raw = mne.io.RawArray(np.random.default_rng(0).standard_normal((len(names), 2500)) * 1e-5, info, verbose=False)
    eeg_dir = root / "sub-01" / "eeg"
    eeg_dir.mkdir(parents=True)
    edf = eeg_dir / "sub-01_task-rest_eeg.edf"
    mne.export.export_raw(edf, raw, fmt="edf", verbose=False)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "t", "BIDSVersion": "1.8.0"}))
    (root / "participants.tsv").write_text("participant_id\nsub-01\n")
    return edf


def test_line_frequency_from_the_eeg_json_without_channels_tsv(tmp_path, caplog):
    """User test 12: a BIDS run without channels.tsv (RECOMMENDED only) was read without its *_eeg.json's
    PowerLineFrequency, so it alone was not notched; it is now read from the sidecar, as mne-bids does."""
    import mne_bids

    edf = _bids_edf(tmp_path, ["Fp1", "Cz", "O1"])
    eeg_dir = edf.parent
    side = eeg_dir / "sub-01_task-rest_eeg.json"
    side.write_text(json.dumps({"PowerLineFrequency": 60, "SamplingFrequency": 250, "TaskName": "rest", "EEGReference": "n/a"}))
    ours = read_eeg(edf)
    with pytest.warns(RuntimeWarning, match="Did not find any channels.tsv"):  # (mne-bids warns, then reads the sidecar)
        theirs = mne_bids.read_raw_bids(mne_bids.get_bids_path_from_fname(edf), verbose=False)
    assert ours.info["line_freq"] == theirs.info["line_freq"] == 60.0
    side.write_text(json.dumps({"PowerLineFrequency": "n/a"}))  # not a number: left undeclared (prepare then warns)
    assert read_eeg(edf).info["line_freq"] is None
    side.write_text("{not json")
    with caplog.at_level("WARNING", logger="eeg2fmri"):
        assert read_eeg(edf).info["line_freq"] is None
    assert any("could not read it as JSON; its PowerLineFrequency is not used" in r.getMessage() for r in caplog.records)
    side.unlink()
    assert read_eeg(edf).info["line_freq"] is None
    # inherited from the dataset root (BIDS inheritance; user test 17: ds002336's top-level task-*_eeg.json), the most
    # specific one at the nearest level; one with an entity the file does not have is not its sidecar
    (tmp_path / "task-rest_eeg.json").write_text(json.dumps({"PowerLineFrequency": 50}))
    (tmp_path / "task-other_eeg.json").write_text(json.dumps({"PowerLineFrequency": 60}))
    assert read_eeg(edf).info["line_freq"] == 50.0
    (tmp_path / "sub-01" / "sub-01_task-rest_eeg.json").write_text(json.dumps({"PowerLineFrequency": 60}))
    assert read_eeg(edf).info["line_freq"] == 60.0
    (tmp_path / "sub-01" / "sub-01_task-rest_eeg.json").unlink()
    (tmp_path / "task-rest_run-2_eeg.json").write_text(json.dumps({"PowerLineFrequency": 60}))  # run-2 is not this file's
    assert read_eeg(edf).info["line_freq"] == 50.0
    # beside the file, a less specific one (review: same-folder inheritance was skipped)
    (eeg_dir / "sub-01_eeg.json").write_text(json.dumps({"PowerLineFrequency": 60}))
    assert read_eeg(edf).info["line_freq"] == 60.0
    # outside a BIDS dataset (no dataset_description.json above): nothing is inherited from unrelated folders
    (tmp_path / "dataset_description.json").unlink()
    assert read_eeg(edf).info["line_freq"] is None


def test_inherited_channels_tsv_is_used_or_its_fault_named(tmp_path, caplog):
    """User test 17 p10: ds002336's top-level task-*_channels.tsv (the only file typing channel 32 as ECG) was passed over
    in silence; an inherited table is now applied as mne-bids applies the one beside the file, or a warning says why not."""
    import mne_bids

    edf = _bids_edf(tmp_path, ["Fp1", "Cz", "O1", "HEOG", "EKG2", "PPG"])
    eeg_dir = edf.parent
    table = "name\ttype\tunits\tstatus\nFp1\tEEG\tuV\tgood\nCz\tEEG\tuV\tbad\nO1\tEEG\tuV\tgood\nHEOG\tEOG\tuV\tgood\nEKG2\tECG\tuV\tgood\nPPG\tPPG\tuV\tgood\n"
    # the same table beside the file, read by mne-bids: the reference for the inherited one
    (eeg_dir / "sub-01_task-rest_channels.tsv").write_text(table)
    (eeg_dir / "sub-01_task-rest_eeg.json").write_text(json.dumps({"PowerLineFrequency": 50, "SamplingFrequency": 250, "TaskName": "rest",
                                                                    "EEGReference": "n/a"}))
    with pytest.warns(RuntimeWarning, match=r'No BIDS -> MNE mapping found for channel type "PPG"\. Type of channel "PPG" will be set to "misc"'):
        theirs = mne_bids.read_raw_bids(mne_bids.get_bids_path_from_fname(edf), verbose=False)
    (eeg_dir / "sub-01_task-rest_channels.tsv").unlink()
    (tmp_path / "task-rest_channels.tsv").write_text(table)
    ours = read_eeg(edf)
    # a type MNE has no name for (PPG) is misc, as mne-bids sets it (review: kept as EEG it became a model input)
    assert ours.get_channel_types() == theirs.get_channel_types() == ["eeg", "eeg", "eeg", "eog", "ecg", "misc"]
    assert ours.info["bads"] == theirs.info["bads"] == ["Cz"]
    # ds002336's: space separated, quoted names -> not used, and said so
    (tmp_path / "task-rest_channels.tsv").write_text("name   type   units\n'Fp1'   EEG   microV\n'Cz'   EEG   microV\n")
    with caplog.at_level("WARNING", logger="eeg2fmri"):
        plain = read_eeg(edf)
    assert plain.get_channel_types() == ["eeg"] * 6 and plain.info["bads"] == []
    assert (f"{tmp_path / 'task-rest_channels.tsv'}: inherited by sub-01_task-rest_eeg.edf but not a BIDS channels table: expected "
            "tab-separated columns name, type (status), found the header 'name   type   units'") in caplog.text
    caplog.clear()
    (tmp_path / "task-rest_channels.tsv").write_text("name\ttype\nFp1\tEEG\nCz\tEEG\n")
    with caplog.at_level("WARNING", logger="eeg2fmri"):
        read_eeg(edf)
    assert "but it names other channels (only in the table: []; only in the file: ['O1', 'HEOG', 'EKG2', 'PPG'])" in caplog.text


def test_eeg_that_stops_before_the_scan_says_so():
    """User test 12: EEG cut before the scan ended was told to pass first_onset (which then failed with no fix); the error
    now gives the EEG's end, the volumes without EEG and how to keep the covered ones; markers missing mid-recording keep
    the general advice, in command-line terms."""
    true = 3.0 + 2.0 * np.arange(72)
    with pytest.raises(Eeg2fmriInputError, match=r"found 72 'R128' markers but the BOLD run has 100 volumes: the EEG \(146\.0 s\) ends 1\.0 s after "
                                                 r"its last marker, so it stopped about 57 s before the scan did \(29 volumes without a whole acquisition of EEG\)\. "
                                                 r"Use the volumes the EEG covers: save the BOLD's first 71 volumes .*img\.slicer\[\.\.\., :71\]\) and "
                                                 r"prepare with dummy_scans 'drop-last' \(its last 1 marker\(s\) then have no volume"):
        volume_onsets(_raw_with_markers(true, dur=146.0), 100, 2.0)  # the last marker's volume (145-147 s) is half covered
    with pytest.raises(Eeg2fmriInputError, match=r"save the BOLD's first 72 volumes .*img\.slicer\[\.\.\., :72\]\), or leave"):
        volume_onsets(_raw_with_markers(true, dur=147.5), 100, 2.0)  # every marker's volume covered: no drop-last needed
    with pytest.raises(Eeg2fmriInputError, match=r"found 72 'R128' markers but the BOLD run has 100 volumes; expected at least one marker per "
                                                 r"volume\. .*eeg2fmri prepare --config '\{\"marker\": null, \"first_onset\": <s>\}'"):
        volume_onsets(_raw_with_markers(true, dur=400.0), 100, 2.0)  # the EEG goes on without markers


def _write_edf_plus(path, starts, sfreq=100, kind="EDF+D", markers=(), n_records=None, tal_duration=False):
    """A minimal EDF+ (or BDF+) file: one EEG channel and the annotation signal, 1-s records starting at ``starts`` (s)."""
    bdf = kind.startswith("BDF")
    bps = 3 if bdf else 2
    n_sig, n_ann = int(sfreq), 60  # samples per record of the EEG channel and of the annotation signal
    g = np.random.default_rng(0)

    def field(v, n):
        return str(v).ljust(n)[:n].encode("ascii")

    labels, dims = ["Fz", "BDF Annotations" if bdf else "EDF Annotations"], ["uV", ""]
    version = b"\xffBIOSEMI" if bdf else field("0", 8)
    head = (version + field("X X X X", 80) + field("Startdate 01-JAN-2020 X X X", 80) + field("01.01.20", 8) + field("00.00.00", 8)
            + field(256 * 3, 8) + field(kind, 44) + field(len(starts) if n_records is None else n_records, 8) + field(1, 8) + field(2, 4))
    head += b"".join(field(x, 16) for x in labels) + b"".join(field("", 80) for _ in labels) + b"".join(field(x, 8) for x in dims)
    lo, hi = (-(2 ** 23), 2 ** 23 - 1) if bdf else (-32768, 32767)
    head += field(-3200, 8) + field(-1, 8) + field(3200, 8) + field(1, 8) + field(lo, 8) + field(lo, 8) + field(hi, 8) + field(hi, 8)
    head += b"".join(field("", 80) for _ in labels) + field(n_sig, 8) + field(n_ann, 8) + b"".join(field("", 32) for _ in labels)
    body = b""
    for t in starts:
        x = (g.standard_normal(n_sig) * 1000).astype(np.int32)
        eeg = b"".join(int(v).to_bytes(3, "little", signed=True) for v in x) if bdf else x.astype("<i2").tobytes()
        keep = f"+{t:g}\x151\x14\x14\x00" if tal_duration else f"+{t:g}\x14\x14\x00"
        tal = keep.encode("ascii") + b"".join(f"+{m:g}\x14R128\x14\x00".encode("ascii") for m in markers if t <= m < t + 1)
        body += eeg + tal.ljust(bps * n_ann, b"\x00")
    path.write_bytes(head + body)
    return path


def test_edf_plus_d_pauses_are_found_from_the_record_times(tmp_path):
    """MNE reads EDF+D as one continuous recording (a pause between data records is dropped without an annotation): the
    record start times of the annotation signal give the pauses (user test 27: every volume after a 1-s pause was paired
    with EEG 1 s late), and the recording is then refused as a joined one."""
    import mne

    from eeg2fmri.io.eeg import check_continuous, discontinuities, edf_plus_d_joins, read_eeg

    starts = [0, 1, 2, 3, 4, 6, 7, 8, 9, 10]  # a 1-s pause after the fifth record
    gap = _write_edf_plus(tmp_path / "gap.edf", starts, markers=(0.5, 2.5, 6.5))
    mne_raw = mne.io.read_raw_edf(gap, verbose="error")
    assert mne_raw.n_times == 1000 and discontinuities(mne_raw) == []  # what MNE alone sees: no pause
    assert edf_plus_d_joins(gap) == [5.0]
    raw = read_eeg(gap, preload=False)
    assert discontinuities(raw) == [5.0]
    # the markers lie on the samples' time axis: the one 0.5 s into the record after the pause (6.5 s of real time, where
    # MNE puts it) is at 5.5 s of the samples (a review: a piece cut out after the pause kept its markers 1 s late)
    marks = sorted(float(o - raw.first_time) for o, d in zip(raw.annotations.onset, raw.annotations.description) if d == "R128")
    assert sorted(float(o - mne_raw.first_time) for o, d in zip(mne_raw.annotations.onset, mne_raw.annotations.description)
                  if d == "R128") == [0.5, 2.5, 6.5]
    np.testing.assert_allclose(marks, [0.5, 2.5, 5.5])
    # BDF+D (3-byte samples, 'BDF Annotations'), a time-keeping TAL with a duration, an unknown record count (-1)
    assert edf_plus_d_joins(_write_edf_plus(tmp_path / "gap.bdf", starts, kind="BDF+D")) == [5.0]
    assert edf_plus_d_joins(_write_edf_plus(tmp_path / "dur.edf", starts, tal_duration=True)) == [5.0]
    assert edf_plus_d_joins(_write_edf_plus(tmp_path / "unknown.edf", starts, n_records=-1)) == [5.0]
    with pytest.raises(Eeg2fmriInputError, match=r"gap\.edf: the recording is not continuous: data are joined at 5\.000 s"):
        check_continuous(raw, str(gap), ".")
    # records that follow each other (EDF+D without a pause, EDF+C) and plain EDF: nothing
    assert edf_plus_d_joins(_write_edf_plus(tmp_path / "nogap.edf", list(range(10)))) == []
    assert edf_plus_d_joins(_write_edf_plus(tmp_path / "cont.edf", [0, 1, 2, 3, 4, 6, 7], kind="EDF+C")) == []
    assert discontinuities(read_eeg(tmp_path / "nogap.edf", preload=False)) == []


def test_discarded_volumes_are_read_from_the_run_sidecar_or_an_inherited_one(tmp_path):
    """BIDS NumberOfVolumesDiscardedByScanner/ByUser: the run's own *_bold.json first, then a top-level task-<task>_bold.json
    it inherits (a review: only the run's own was read); another task's sidecar is not inherited."""
    import json

    from eeg2fmri.io.bold import declared_discarded_volumes

    (tmp_path / "dataset_description.json").write_text("{}")
    f = tmp_path / "sub-01" / "func" / "sub-01_task-rest_run-1_bold.nii.gz"
    f.parent.mkdir(parents=True)
    f.write_bytes(b"")
    assert declared_discarded_volumes(f) is None and declared_discarded_volumes(None) is None
    (tmp_path / "task-other_bold.json").write_text(json.dumps({"NumberOfVolumesDiscardedByScanner": 9}))
    assert declared_discarded_volumes(f) is None
    (tmp_path / "task-rest_bold.json").write_text(json.dumps({"NumberOfVolumesDiscardedByScanner": 3}))
    assert declared_discarded_volumes(f) == {"scanner": 3, "user": 0}
    own = f.with_name("sub-01_task-rest_run-1_bold.json")
    own.write_text(json.dumps({"RepetitionTime": 2.0, "NumberOfVolumesDiscardedByUser": 2}))
    assert declared_discarded_volumes(f) == {"scanner": 0, "user": 2}
    own.write_text(json.dumps({"NumberOfVolumesDiscardedByUser": "two"}))
    with pytest.raises(Eeg2fmriInputError, match=r"sub-01_task-rest_run-1_bold\.json: expected NumberOfVolumesDiscardedByScanner as a whole number|"
                                                 r"expected NumberOfVolumesDiscardedByUser as a whole number of volumes, got 'two'"):
        declared_discarded_volumes(f)


def test_eeg_in_other_units_is_said():
    """User test 32: EEG written 1e6 times too large (±6 kV) ran through prepare, train and synthesize without a word."""
    from eeg2fmri.preprocessing.eeg import implausible_scale

    rng = np.random.default_rng(3)
    info = mne.create_info(["Fz", "Cz", "Pz", "Oz", "C3"], 250.0, "eeg")
    volts = rng.normal(scale=20e-6, size=(5, 2500))
    assert implausible_scale(mne.io.RawArray(volts, info, verbose=False)) is None
    assert implausible_scale(mne.io.RawArray(volts * 100, info, verbose=False)) is None  # mV-level (gradient artefacts)
    msg = implausible_scale(mne.io.RawArray(volts * 1e6, info, verbose=False))
    assert re.match(r"the EEG's typical amplitude is 1\d\.\d V \(median channel's robust scale\), expected 1e-08-0\.05 V", msg)
    assert "1e-08" in implausible_scale(mne.io.RawArray(volts * 1e-6, info, verbose=False))


def test_bold_without_orientation_is_warned(tmp_path, caplog):
    """User test 35: sform and qform codes 0 (no orientation): nibabel's fallback affine is used and written on as aligned,
    without a word; a header with an sform says nothing."""
    import logging

    p = tmp_path / "noxform.nii.gz"
    img = nib.Nifti1Image(np.zeros((4, 5, 6, 7), np.float32), None)
    img.header["pixdim"][4] = 2.0
    nib.save(img, p)
    assert int(nib.load(p).header["sform_code"]) == 0 and int(nib.load(p).header["qform_code"]) == 0
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        read_bold(p)
    assert "noxform.nii.gz: the header gives no orientation (sform and qform codes 0): nibabel's fallback affine is used" in caplog.text
    caplog.clear()
    q = tmp_path / "xform.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6, 7), np.float32), np.eye(4)), q)
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        read_bold(q, tr=2.0)
    assert "no orientation" not in caplog.text
