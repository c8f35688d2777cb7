"""Channels by position: BioSemi-named recordings onto a model trained on 10-20 names (positions, interpolation, errors)."""

from __future__ import annotations

import json

import mne
import nibabel as nib
import numpy as np
import pytest

from eeg2fmri.preprocessing.channels import map_channels_by_position
from eeg2fmri.synthesis import synthesize
from eeg2fmri.utils.validation import Eeg2fmriInputError

from .test_synthesis import EEG_NAME, ridge_dir  # noqa: F401  (module fixture: a ridge model trained on 10-20 names)

BIOSEMI64 = mne.channels.make_standard_montage("biosemi64").ch_names
TEN20 = ["Fp1", "Fp2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2", "F7", "F8", "T7", "T8", "P7", "P8"]


def biosemi_name(site: str) -> str:
    """The BioSemi bank name (A1..B32) of a 10-20 site of the 64-channel cap."""
    i = BIOSEMI64.index(site)
    return f"{'AB'[i // 32]}{i % 32 + 1}"


def biosemi_raw(seed: int = 0, n_times: int = 2000) -> mne.io.RawArray:
    names = [f"{b}{i}" for b in "AB" for i in range(1, 33)]
    data = np.random.default_rng(seed).standard_normal((64, n_times)) * 1e-5
    return mne.io.RawArray(data, mne.create_info(names + [], 100.0, "eeg"), verbose=False)


def test_biosemi_names_by_montage_order_and_interpolation():
    raw = biosemi_raw()
    out, rep = map_channels_by_position(raw, TEN20, positions="biosemi64")
    assert out.ch_names == TEN20 and rep.interpolated == [] and rep.by_name == []
    assert rep.by_position == {s: biosemi_name(s) for s in TEN20} and set(rep.distances_mm.values()) == {0.0}
    np.testing.assert_array_equal(out.get_data(picks="O1"), raw.get_data(picks=biosemi_name("O1")))
    assert len(rep.ignored) == 64 - 16 and raw.ch_names[0] == "A1"  # the input is not changed
    # Cz's electrode missing: interpolated from its neighbours (spherical splines), and reported
    wanted = TEN20 + ["Cz"]
    smooth = mne.io.RawArray(np.tile(np.linspace(-1, 1, 64)[:, None], (1, 50)) * 1e-5, raw.info, verbose=False)  # a smooth field
    out, rep = map_channels_by_position(smooth.copy().drop_channels([biosemi_name("Cz")]), wanted, positions="biosemi64")
    assert rep.interpolated == ["Cz"] and out.ch_names == wanted and out.info["bads"] == []
    assert np.isfinite(out.get_data(picks="Cz")).all() and np.abs(out.get_data(picks="Cz")).max() > 0


def test_missing_channels_are_interpolated_from_every_recorded_electrode_as_mne_does():
    """Cz and Pz missing: rebuilt from all 62 recorded electrodes (MNE's interpolate_bads on the whole cap, same origin),
    not only from the 8 training channels found (5-6 % of the peak off before)."""
    raw = biosemi_raw(seed=3, n_times=300)
    wanted = ["Fp1", "Fp2", "C3", "C4", "O1", "O2", "P3", "P4", "Cz", "Pz"]
    gone = [biosemi_name("Cz"), biosemi_name("Pz")]
    out, rep = map_channels_by_position(raw.copy().drop_channels(gone), wanted, positions="biosemi64")
    assert sorted(rep.interpolated) == ["Cz", "Pz"] and out.ch_names == wanted
    # MNE on the whole cap: every electrode at its biosemi64 site, Cz and Pz marked bad
    ref = raw.copy().rename_channels(dict(zip(raw.ch_names, BIOSEMI64)))
    ref.set_montage("biosemi64")
    ref.info["bads"] = ["Cz", "Pz"]
    origin = mne.bem.fit_sphere_to_headshape(ref.info, dig_kinds=("eeg",), units="m", verbose=False)[1]
    ref.interpolate_bads(reset_bads=True, origin=tuple(origin), verbose=False)
    for ch in ("Cz", "Pz"):
        got, want = out.get_data(picks=ch)[0], ref.get_data(picks=ch)[0]
        assert np.abs(got - want).max() < 0.01 * np.abs(want).max(), ch


def test_positions_from_the_files_digitisation():
    """Positions of the recording's own montage (here biosemi64 sites, renamed) against the 10-05 sites of the training names."""
    raw = biosemi_raw(1)
    pos = mne.channels.make_standard_montage("biosemi64").get_positions()["ch_pos"]
    dig = mne.channels.make_dig_montage(ch_pos={biosemi_name(s): pos[s] for s in BIOSEMI64}, coord_frame="head")
    raw.set_montage(dig, verbose=False)
    out, rep = map_channels_by_position(raw, TEN20 + ["Cz", "Fz"], positions="file")
    assert rep.positions == "file" and rep.by_position == {s: biosemi_name(s) for s in TEN20 + ["Cz", "Fz"]}
    assert max(rep.distances_mm.values()) < 25.0 and rep.interpolated == []
    with pytest.raises(Eeg2fmriInputError, match=r"channel_positions='file' but the recording carries no electrode positions"):
        map_channels_by_position(biosemi_raw(), TEN20, positions="file")


def test_too_few_channels_and_bad_montage():
    raw = biosemi_raw().pick([biosemi_name("Fp1"), biosemi_name("O2")])
    with pytest.raises(Eeg2fmriInputError, match=r"only 2 of the model's 16 training channels were found by name or position .* expected at least 50%"):
        map_channels_by_position(raw, TEN20, positions="biosemi64")
    with pytest.raises(Eeg2fmriInputError, match=r"channel_positions='biosemi65': expected 'file' or an MNE standard montage"):
        map_channels_by_position(raw, TEN20, positions="biosemi65")
    out, rep = map_channels_by_position(raw, TEN20, positions="biosemi64", min_share=0.1)
    assert sorted(rep.by_position) == ["Fp1", "O2"] and len(rep.interpolated) == 14 and out.ch_names == TEN20


def _biosemi_recording(tiny_bids):
    raw = mne.io.read_raw_brainvision(tiny_bids / EEG_NAME, preload=True, verbose=False)
    raw.set_channel_types({"ECG": "ecg", "EOG": "eog"}, verbose=False)
    return raw, raw.copy().rename_channels({s: biosemi_name(s) for s in TEN20})


def test_synthesize_biosemi_recording_with_a_10_20_model(tiny_bids, ridge_dir, tmp_path, caplog):  # noqa: F811
    raw, bio = _biosemi_recording(tiny_bids)
    base = np.asarray(nib.load(synthesize(raw, ridge_dir, tmp_path / "base.nii.gz", progress_bar=False)).dataobj)
    # BioSemi names (A1..B32) are no 10-05 sites: mapped by name as prepare does, too few are found; the cap is asked for
    with pytest.raises(Eeg2fmriInputError, match=r"16 are missing here: .*\. Mapped by the 10-05 sites of their names \(colin27_1005\) as "
                                                 r"prepare does, only 2 of the model's 16 training channels were found by name or position.*: "
                                                 r"name the montage it was recorded with \(e\.g\. --channel-positions biosemi64"):
        synthesize(bio, ridge_dir, tmp_path / "no.nii.gz", progress_bar=False)
    assert not (tmp_path / "no.nii.gz").exists()
    # the old 10-20 names (T3 for T7, ...) of a recording without positions: mapped by their 10-05 sites as prepare maps them
    # (user test 30: prepare did, synthesize refused), said, and recorded in the sidecar
    import logging

    old = raw.copy().set_montage(None).rename_channels({"T7": "T3", "T8": "T4", "P7": "T5", "P8": "T6"})
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        synthesize(old, ridge_dir, tmp_path / "old.nii.gz", progress_bar=False)
    assert any("the recording's channels differ from the model's; mapped by the 10-05 sites of their names" in r.getMessage()
               for r in caplog.records)
    np.testing.assert_allclose(np.asarray(nib.load(tmp_path / "old.nii.gz").dataobj), base, atol=1e-5)
    assert json.loads((tmp_path / "old.json").read_text())["ChannelMapping"]["by_position"]["T7"] == "T3"
    synthesize(bio, ridge_dir, tmp_path / "bio.nii.gz", progress_bar=False, channel_positions="biosemi64")
    np.testing.assert_allclose(np.asarray(nib.load(tmp_path / "bio.nii.gz").dataobj), base, atol=1e-5)
    side = json.loads((tmp_path / "bio.json").read_text())
    assert side["ChannelMapping"]["by_position"]["O1"] == biosemi_name("O1") and side["ChannelMapping"]["interpolated"] == []
    assert side["ChannelsUsed"] == TEN20
    # O1's electrode missing: interpolated and recorded in the sidecar
    synthesize(bio.copy().drop_channels([biosemi_name("O1")]), ridge_dir, tmp_path / "interp.nii.gz", progress_bar=False, channel_positions="biosemi64")
    side = json.loads((tmp_path / "interp.json").read_text())
    assert side["ChannelMapping"]["interpolated"] == ["O1"] and "O1" not in side["ChannelMapping"]["by_position"]
    got = np.asarray(nib.load(tmp_path / "interp.nii.gz").dataobj)
    assert got.shape == base.shape and np.isfinite(got).all()
    # too few channels left: refused
    few = bio.copy().pick([biosemi_name(s) for s in ("Fp1", "Fp2", "F3")] + ["ECG"])
    with pytest.raises(Eeg2fmriInputError, match=r"only 3 of the model's 16 training channels were found by name or position"):
        synthesize(few, ridge_dir, tmp_path / "few.nii.gz", progress_bar=False, channel_positions="biosemi64")
    assert not (tmp_path / "few.nii.gz").exists()


def _biosemi_bids(tiny_bids, root):
    """A copy of the tiny dataset whose sub-01 names its channels the BioSemi way (A1..B32) and has no electrodes.tsv."""
    import shutil

    shutil.copytree(tiny_bids, root, ignore=shutil.ignore_patterns("derivatives"))
    eeg = root / "sub-01" / "eeg"
    for f in eeg.glob("*electrodes*"):
        f.unlink()
    for f in eeg.glob("*coordsystem*"):
        f.unlink()
    ren = {s: biosemi_name(s) for s in TEN20}
    vhdr = eeg / "sub-01_task-rest_run-1_eeg.vhdr"
    lines = vhdr.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Ch") and "=" in line and "," in line:
            key, rest = line.split("=", 1)
            name, tail = rest.split(",", 1)
            lines[i] = f"{key}={ren.get(name, name)},{tail}"
    vhdr.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tsv = eeg / "sub-01_task-rest_run-1_channels.tsv"
    rows = tsv.read_text(encoding="utf-8").splitlines()
    tsv.write_text("\n".join([rows[0]] + [ren.get(r.split("\t", 1)[0], r.split("\t", 1)[0]) + "\t" + r.split("\t", 1)[1] for r in rows[1:]]) + "\n", encoding="utf-8")
    return root


def test_prepare_maps_channels_by_position(tiny_bids, tmp_path):
    import eeg2fmri.datasets.prepared as prepared
    from eeg2fmri.datasets import prepare_dataset

    root = _biosemi_bids(tiny_bids, tmp_path / "bio")
    real = prepared._prepare_eeg

    def never(*a, **k):  # other channel sets are refused from the headers, before any run is prepared (user test 16)
        raise AssertionError("a run was prepared")

    prepared._prepare_eeg = never
    try:
        with pytest.raises(Eeg2fmriInputError, match=r"EEG channels .* differ from the first run's"):
            prepare_dataset(root, {"check_artifacts": False}, progress_bar=False)
    finally:
        prepared._prepare_eeg = real
    wanted = TEN20 + ["Cz"]
    ds = prepare_dataset(root, {"channels": wanted, "channel_positions": "biosemi64", "check_artifacts": False}, progress_bar=False)
    assert ds.ch_names == wanted and len(ds.runs) == 2
    m1 = ds.provenance["inputs"]["sub-01_task-rest_run-1"]["channel_mapping"]
    m2 = ds.provenance["inputs"]["sub-02_task-rest_run-1"]["channel_mapping"]
    assert m1["by_position"] == {s: biosemi_name(s) for s in TEN20} and m1["interpolated"] == ["Cz"] and m1["by_name"] == []
    assert m2["by_name"] == TEN20 and m2["by_position"] == {} and m2["interpolated"] == ["Cz"]
    assert all(np.isfinite(r.features).all() and r.features.shape[1] == len(wanted) for r in ds.runs)
    with pytest.raises(Eeg2fmriInputError, match=r"channel_positions='biosemi64': expected together with channels="):
        prepare_dataset(root, {"channel_positions": "biosemi64"}, progress_bar=False)


def test_channel_key_and_decorated_names_map_by_name():
    """EDF-style names ("EEG Fp1-REF", "FP1.") are the training channels by name: no positions needed."""
    import mne

    from eeg2fmri.preprocessing.channels import channel_key, map_channels_by_position

    assert [channel_key(n) for n in ("EEG Fp1", "EEG-FP1", "Fp1-REF", "FP1-LE", "Fc5..", "EEG", "Fp1-A2")] == ["fp1", "fp1", "fp1", "fp1", "fc5", "eeg", "fp1"]
    # mastoid/ear references after a separator (user test: Fp1-M1 was not Fp1); a bipolar pair and the reference sites
    # themselves stay as they are
    assert [channel_key(n) for n in ("Fp1-M1", "O2_m2", "C3 A1", "Fp1-F7", "M1", "A2", "TP9")] == ["fp1", "o2", "c3", "fp1-f7", "m1", "a2", "tp9"]
    names = ["EEG FP1-REF", "EEG Cz-REF", "Pz.", "O2"]
    raw = mne.io.RawArray(np.arange(4 * 50, dtype=float).reshape(4, 50), mne.create_info(names, 100.0, "eeg"), verbose=False)
    out, rep = map_channels_by_position(raw, ["Cz", "Fp1", "O2", "Pz"])  # no positions in the file: by name only
    assert out.ch_names == ["Cz", "Fp1", "O2", "Pz"] and rep.by_name == ["Cz", "Fp1", "O2", "Pz"]
    np.testing.assert_array_equal(out.get_data(), raw.get_data()[[1, 0, 3, 2]])
    # two names of one channel in a file: only the case is folded, so the decorated one is not taken for it
    raw2 = mne.io.RawArray(np.zeros((2, 50)), mne.create_info(["Fp1", "EEG Fp1"], 100.0, "eeg"), verbose=False)
    out2, _ = map_channels_by_position(raw2, ["Fp1"])
    assert out2.ch_names == ["Fp1"]


def test_match_channels_takes_decorated_names_as_prepare_does():
    """synthesize/evaluate's match_channels: case first, then EDF-style decorations (channel_key), never a guess between two."""
    from eeg2fmri.synthesis import match_channels

    picks, extra = match_channels(["EEG FP1-REF", "eeg cz-ref", "O2", "Status"], ["Cz", "Fp1", "O2"])
    assert picks == ["eeg cz-ref", "EEG FP1-REF", "O2"] and extra == ["Status"]
    picks, _ = match_channels(["EEG Fp1", "fp1"], ["Fp1"])  # a name equal but for case wins over a decorated one
    assert picks == ["fp1"]
    with pytest.raises(Eeg2fmriInputError, match=r"1 are missing here: \['Fp1'\] \(channels of the recording the model does not use: "
                       r"\['EEG Fp1-REF', 'EEG Fp1-LE'\]\); map them .* rename the channels to the training names .*EDF-style decorations"):
        match_channels(["EEG Fp1-REF", "EEG Fp1-LE"], ["Fp1"])  # two decorated names of one key: none is taken


def test_prepare_bad_channel_in_one_run_without_positions(tiny_bids, tmp_path, caplog):
    """User tests 4 and 7: one run marks a channel bad, the files carry no electrode positions (EDF / EEGLAB without a
    digitisation). The channel sets differ by that channel alone: every run keeps the whole cap by default (it used to
    fail, asking for the prepare option channels) and, as with the option, the 10-05 sites of the channel names place
    the electrodes, as synthesize does, and the bad channel is interpolated (it used to fail asking for a montage such
    as biosemi64)."""
    import logging
    import shutil

    from eeg2fmri.datasets import prepare_dataset

    root = tmp_path / "bids"
    shutil.copytree(tiny_bids, root)
    for f in list(root.rglob("*_electrodes.tsv")) + list(root.rglob("*_coordsystem.json")):
        f.unlink()
    tsvs = sorted(root.glob("sub-02/**/*_channels.tsv"))
    rows = tsvs[0].read_text(encoding="utf-8").splitlines()
    head = rows[0].split("\t")
    status = head.index("status") if "status" in head else None
    bad = rows[2].split("\t")[0]
    new = [rows[0] if status is not None else rows[0] + "\tstatus"]
    for r in rows[1:]:
        cells = r.split("\t")
        if status is None:
            cells.append("good")
        cells[status if status is not None else -1] = "bad" if cells[0] == bad else cells[status if status is not None else -1]
        new.append("\t".join(cells))
    tsvs[0].write_text("\n".join(new) + "\n", encoding="utf-8")
    first = prepare_dataset(root, {"check_artifacts": False}, subjects=["01"], progress_bar=False).ch_names
    for given in ({}, {"channels": first}):  # by default (user test 7: a bad channel per run is routine) and as an option
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="eeg2fmri"):
            ds = prepare_dataset(root, {**given, "check_artifacts": False}, progress_bar=False)
        assert ds.ch_names == first
        maps = {k: v["channel_mapping"] for k, v in ds.provenance["inputs"].items()}
        assert [m["interpolated"] for k, m in maps.items() if k.startswith("sub-02")] == [[bad]]
        assert "no electrode positions in the recording: channels placed at their 10-05 sites by name" in caplog.text
        assert all(np.isfinite(r.features).all() for r in ds.runs)
        note = "differ only by the channels some runs mark bad; every run keeps all 16 and its bad ones are interpolated"
        assert (note in caplog.text and f"sub-02_task-rest_run-1_eeg.vhdr: {bad}" in caplog.text) == (not given)


def test_default_positions_are_mnes_montage_sites():
    """default_positions: the file's digitisation where the recording has one, else MNE's 10-05 montage; the sites it
    gives by name equal MNE's own montage positions for those names."""
    import mne

    from eeg2fmri.preprocessing.channels import (
        _recording_positions,
        default_positions,
        training_montage_name,
    )

    names = ["Fp1", "Cz", "TP10", "O2"]
    raw = mne.io.RawArray(np.zeros((4, 20)), mne.create_info(names, 100.0, "eeg"), verbose=False)
    assert default_positions(raw) == training_montage_name()
    got = _recording_positions(raw, names, default_positions(raw), "r")
    want = mne.channels.make_standard_montage(training_montage_name()).get_positions()["ch_pos"]
    for n in names:
        np.testing.assert_allclose(got[n], want[n])
    raw.set_montage(mne.channels.make_standard_montage(training_montage_name()), verbose=False)
    assert default_positions(raw) == "file"
