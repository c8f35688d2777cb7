"""prepare() on published datasets' own layouts (tiny fixtures reproducing them)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from eeg2fmri.datasets import prepare_dataset
from eeg2fmri.utils.validation import Eeg2fmriInputError

from .test_layouts import build_ds4k, build_ds116, build_noddi


def _full_mask(root, pattern, tmp_path):
    import nibabel as nib
    import numpy as np

    img = nib.load(next(root.rglob(pattern)))
    p = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(np.ones(img.shape[:3], np.uint8), img.affine), p)
    return str(p)


def test_prepare_noddi_layout(tmp_path):
    root = build_noddi(tmp_path / "NODDI")
    with pytest.raises(Eeg2fmriInputError, match=r"rest_with_cross.nii.gz: the automatic brain mask .* is empty; pass a mask image"):
        prepare_dataset(root, layout="noddi", progress_bar=False)  # the fixture's BOLD is pure noise
    ds = prepare_dataset(root, {"mask": _full_mask(root, "*rest_with_cross.nii.gz", tmp_path)}, layout="noddi", progress_bar=False)
    assert ds.tr == pytest.approx(2.16)
    assert "ECG" not in ds.ch_names
    assert {r.subject for r in ds.runs} <= {"32", "35", "40", "50"}
    for r in ds.runs:
        assert r.bold.shape[0] == r.n_volumes == len(r.window_end)
    assert ds.provenance["layout"] == "noddi"


def test_prepare_ds000116_without_markers(tmp_path):
    root = build_ds116(tmp_path / "ds116")
    ds = prepare_dataset(root, {"mask": _full_mask(root, "bold.nii.gz", tmp_path)}, layout="ds000116", progress_bar=False)
    assert ds.tr == pytest.approx(2.0)
    assert all(n.startswith(("ECG", "STI")) is False for n in ds.ch_names)
    assert next(iter(ds.provenance["inputs"].values()))["sync"] == "regular"


def test_prepare_refuses_eeg_only(tmp_path):
    root = build_ds4k(tmp_path / "ds4000")
    with pytest.raises(Eeg2fmriInputError, match="have EEG but no BOLD"):
        prepare_dataset(root, layout="ds004000", progress_bar=False)


def test_prepare_options_atlas_grid_and_artifact_check(tiny_bids, tmp_path):
    import numpy as np

    from eeg2fmri.datasets import WindowDataset, load_prepared
    from eeg2fmri.datasets.targets import make_split, split_targets

    ds = prepare_dataset(tiny_bids, {"atlas": "power_2011", "atlas_radius": 10.0, "mask": "mni"}, progress_bar=False)
    n_roi = len(ds.rois["labels"])
    assert 10 < n_roi <= 264 and ds.runs[0].bold.shape == (ds.runs[0].n_volumes, n_roi)
    assert next(iter(ds.provenance["inputs"].values()))["gradient_artifact_check"]["detected"] is False
    back = load_prepared(ds.save(tmp_path / "roi"))
    assert back.rois["names"] == ds.rois["names"]
    sp = make_split(back, "within")
    wd = WindowDataset(back, sp.selections["train"], sp.n_frames, targets=split_targets(back, sp)["train"])
    assert wd.spec.output_shape == (n_roi,)
    g = prepare_dataset(tiny_bids, {"grid": [9, 11, 8], "mask": "mni", "check_artifacts": False}, progress_bar=False)
    assert g.mask.shape == (9, 11, 8) and np.isfinite(g.runs[0].bold).all()


def test_runs_at_different_rates_share_one_work_rate_and_other_channel_sets_are_refused(tiny_bids, tiny_prepared, tmp_path):
    """Runs sampled at different rates are all worked at the lowest run's work rate (the features barely change); runs
    whose channel sets differ are refused with the run named and the channels option as the fix."""
    import shutil

    import mne

    from eeg2fmri.datasets.prepared import _check_consistent, work_rate

    root = tmp_path / "copy"
    shutil.copytree(tiny_bids, root, ignore=shutil.ignore_patterns("derivatives"))
    recs = [type("R", (), {"eeg_path": root / f"sub-0{i}/eeg/sub-0{i}_task-rest_run-1_eeg.vhdr"})() for i in (1, 2)]
    base = {"sfreq": 100.0, "ch_names": ["A", "B"]}
    _check_consistent([base, {"sfreq": 250.0, "ch_names": ["A", "B"]}], recs)  # rates are not its business any more
    with pytest.raises(Eeg2fmriInputError, match=r"EEG channels \['A', 'C'\] differ from the first run's \['A', 'B'\] \(missing here: \['B'\]; only here: \['C'\]\)\. "
                                                  r"The EEG channels every run has \(1\): \['A'\]\. Give every run one channel set with the prepare option channels .* marked bad"):
        _check_consistent([base, {"sfreq": 100.0, "ch_names": ["A", "C"]}], recs)
    # user test 16: run 2 only spells its names in upper case, run 3 has an extra channel: run 3 is named (not run 2), with
    # every other run whose channels differ, and the channels all runs share
    recs3 = recs + [type("R", (), {"eeg_path": root / "sub-03.vhdr"})(), type("R", (), {"eeg_path": root / "sub-04.vhdr"})()]
    names = [["Fp1", "Cz", "Oz"], ["FP1", "CZ", "OZ"], ["Fp1", "Cz", "Oz", "FCz"], ["Fp1", "Oz"]]
    with pytest.raises(Eeg2fmriInputError, match=r"sub-03\.vhdr: EEG channels \['Fp1', 'Cz', 'Oz', 'FCz'\] differ from the first run's \['Fp1', 'Cz', 'Oz'\] "
                                                  r"\(missing here: \[\]; only here: \['FCz'\]\)\. Other runs with other channels; sub-04\.vhdr: missing \['Cz'\], "
                                                  r"only there \[\]\. The EEG channels every run has \(2\): \['Fp1', 'Oz'\]\."):
        _check_consistent([{"ch_names": n} for n in names], recs3)
    with pytest.raises(Eeg2fmriInputError, match=r"sub-02_task-rest_run-1_eeg\.vhdr: .*\(the same channels under names spelled differently\)\. Give every run"):
        _check_consistent([{"ch_names": n} for n in names[:2]], recs3[:2])  # the spelling alone (prepare reads such runs itself)
    # names compared as channels are matched (user test: every name listed as missing for a case difference)
    with pytest.raises(Eeg2fmriInputError, match=r"\(missing here: \['EXG1'\]; only here: \['ecg'\]\)"):
        _check_consistent([{"ch_names": ["FP1", "OZ", "EXG1"]}, {"ch_names": ["oz", "fp1", "ecg"]}], recs)
    # end to end: subject 02's recording at 125 Hz is worked at the 100 Hz recording's work rate
    vhdr = recs[1].eeg_path
    raw = mne.io.read_raw_brainvision(vhdr, preload=True, verbose=False).resample(125.0, verbose=False)
    for f in vhdr.parent.glob("sub-02_task-rest_run-1_eeg.*"):
        f.unlink()
    mne.export.export_raw(vhdr, raw, fmt="brainvision", verbose=False)
    ds = prepare_dataset(root, progress_bar=False)
    assert ds.config.work_sfreq == work_rate(100.0, tiny_prepared.config) == 100.0 and ds.sfreq == 100.0
    for a, b in zip(ds.runs, tiny_prepared.runs):
        assert a.features.shape == b.features.shape
        assert np.corrcoef(a.features.ravel(), b.features.ravel())[0, 1] > 0.99
    with pytest.raises(Eeg2fmriInputError, match=r"sub-01_task-rest_run-1_eeg\.vhdr: sampled at 100 Hz, below prepare option work_sfreq=120 Hz, while other "
                                                  r"runs are sampled at 125 Hz.*Choose work_sfreq at or below 100 Hz"):
        prepare_dataset(root, {"work_sfreq": 120}, progress_bar=False)


def test_runs_listing_channels_in_another_order_or_case_are_read_in_one_order(tiny_bids, tiny_prepared, tmp_path):
    """Subject 02 lists the same channels in reverse order, one in upper case, one as EDF exports write it ("EEG Fp1-REF"):
    every run is read in the first run's order under its names."""
    import shutil

    import mne

    root = tmp_path / "copy"
    shutil.copytree(tiny_bids, root, ignore=shutil.ignore_patterns("derivatives"))
    vhdr = root / "sub-02/eeg/sub-02_task-rest_run-1_eeg.vhdr"
    raw = mne.io.read_raw_brainvision(vhdr, preload=True, verbose=False)
    raw.reorder_channels(raw.ch_names[::-1])
    a, b = tiny_prepared.ch_names[:2]
    raw.rename_channels({a: a.upper(), b: f"EEG {b}-REF"})
    for f in vhdr.parent.glob("sub-02_task-rest_run-1_eeg.*"):
        f.unlink()
    mne.export.export_raw(vhdr, raw, fmt="brainvision", verbose=False)
    tsv = root / "sub-02/eeg/sub-02_task-rest_run-1_channels.tsv"
    if tsv.exists():
        tsv.unlink()
    ds = prepare_dataset(root, progress_bar=False)
    assert ds.ch_names == tiny_prepared.ch_names and ds.config.channels == list(tiny_prepared.ch_names)
    for a, b in zip(ds.runs, tiny_prepared.runs):  # (subject 02 went through a BrainVision export: not bit-identical)
        per_channel = [np.corrcoef(a.features[:, c].ravel(), b.features[:, c].ravel())[0, 1] for c in range(a.features.shape[1])]
        assert min(per_channel) > 0.99, per_channel


def test_runs_on_the_same_shape_but_another_affine_are_refused(tiny_bids, tmp_path):
    """Voxels are pooled by index across runs: a run stored LAS (x flipped) next to RAS runs of the same shape used to be
    merged voxel by voxel; prepare now names it and the fix. A sub-0.01 mm difference (rounding) is accepted."""
    import shutil

    import nibabel as nib
    import numpy as np

    root = tmp_path / "copy"
    shutil.copytree(tiny_bids, root, ignore=shutil.ignore_patterns("derivatives"))
    path = next((root / "sub-02" / "func").glob("*_bold.nii.gz"))
    img = nib.load(path)
    flip = np.diag([-1.0, 1.0, 1.0, 1.0])
    flip[0, 3] = img.shape[0] - 1
    las = nib.Nifti1Image(np.asarray(img.dataobj)[::-1], img.affine @ flip, img.header)  # the same image, x axis stored flipped
    nib.save(las, path)
    with pytest.raises(Eeg2fmriInputError, match=r"sub-02_task-rest_run-1_bold.nii.gz: voxel-to-world affine differs from the first run's .* "
                                                  r"the same voxel index is a different place .* nibabel.as_closest_canonical"):
        prepare_dataset(root, progress_bar=False)
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), img.affine + 1e-4, img.header), path)  # rounding only
    assert len(prepare_dataset(root, progress_bar=False).runs) == len(prepare_dataset(tiny_bids, progress_bar=False).runs)


@pytest.mark.parametrize("code", [1, 4])
def test_scanner_space_runs_of_different_subjects_are_refused_with_the_normalisation_advice(tiny_bids, tmp_path, code):
    """Runs of two subjects in their own scanner spaces (NIfTI code 1; user test 6: each subject's oblique grid): resampling
    by world coordinates would not line up two brains, so the error says to normalise to a template or prepare each
    subject alone; for MNI-space runs (code 4) the advice is only the resampling one."""
    import shutil

    import nibabel as nib
    import numpy as np

    root = tmp_path / "copy"
    shutil.copytree(tiny_bids, root, ignore=shutil.ignore_patterns("derivatives"))
    for sub, shift in (("01", 0.0), ("02", 7.0)):
        path = next((root / f"sub-{sub}" / "func").glob("*_bold.nii.gz"))
        img = nib.load(path)
        aff = img.affine.copy()
        aff[:3, 3] += shift
        out = nib.Nifti1Image(np.asarray(img.dataobj), aff, img.header)
        out.set_sform(aff, code=code)
        out.set_qform(aff, code=code)
        nib.save(out, path)
    advice = r"These runs are in the scanner space of different subjects \(sub-02 and sub-01\): resampling by world coordinates"
    with pytest.raises(Eeg2fmriInputError, match=r"sub-02_task-rest_run-1_bold.nii.gz: voxel-to-world affine differs .* by up to 7 ") as err:
        prepare_dataset(root, progress_bar=False)
    if code == 1:
        assert re.search(advice + r".*then prepare --derivatives DIR --space MNI152NLin2009cAsym\), or prepare each subject on its own "
                         r"\(prepare --subjects ID\)", str(err.value))
        # a layout without a derivatives option is not told to use one (user test 17: ds002336 refused --derivatives, which
        # it now takes; ds002158 still has none)
        from eeg2fmri.datasets.prepared import _native_space_hint

        rec = type("R", (), {"subject": "02", "layout": "ds002158", "bold_path": next((root / "sub-02" / "func").glob("*_bold.nii.gz"))})()
        hint = _native_space_hint(rec, nib.load(rec.bold_path), "sub-01_task-rest_run-1_bold.nii.gz")
        assert "then prepare the normalised runs as a BIDS dataset or a runs table (the ds002158 layout reads no derivatives)" in hint
        assert "--derivatives" not in hint
        rec.layout = "ds002336"
        assert "then prepare --derivatives DIR --space" in _native_space_hint(rec, nib.load(rec.bold_path), "sub-01_task-rest_run-1_bold.nii.gz")
    else:
        assert "scanner space of different subjects" not in str(err.value)


@pytest.mark.parametrize("how", ["typed_eeg", "no_channels_tsv", "biosemi_exg"])
def test_ecg_and_eog_named_channels_are_not_eeg_whatever_their_type(tiny_bids, tmp_path, caplog, how):
    """ECG/EOG channels typed EEG in channels.tsv (or with no channels.tsv, as BrainVision files type every channel EEG)
    are typed by their names, reported as a warning and not used as EEG features; so are BioSemi's external electrodes
    EXG1-8 (user test: an ECG on EXG1 was read as EEG)."""
    import logging
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(tiny_bids, root, ignore=shutil.ignore_patterns("derivatives"))
    names = ["ECG", "EOG"]
    if how == "biosemi_exg":
        names = ["EXG1", "EXG2"]
        for vhdr in sorted(root.glob("sub-*/eeg/*_eeg.vhdr")):
            vhdr.write_text(vhdr.read_text().replace("=ECG,", "=EXG1,").replace("=EOG,", "=EXG2,"))
    for tsv in sorted(root.glob("sub-*/eeg/*_channels.tsv")):
        if how != "typed_eeg":
            tsv.unlink()
            continue
        rows = [ln.split("\t") for ln in tsv.read_text().splitlines()]
        tsv.write_text("\n".join("\t".join([r[0], "EEG" if r[0] in ("ECG", "EOG") else r[1], *r[2:]]) for r in rows) + "\n")
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        ds = prepare_dataset(root, progress_bar=False)
    assert not set(names) & set(ds.ch_names)
    assert ds.ch_names == prepare_dataset(tiny_bids, progress_bar=False).ch_names
    assert any(f"{names} are typed EEG but named as non-EEG" in r.getMessage() for r in caplog.records)
    # the manifest says per run which channels were not read as EEG, and as what (user test: BIDS runs said nothing)
    for key, info in ds.provenance["inputs"].items():
        assert info["channels_not_used"]["non_eeg"] == {names[0]: "eog" if how == "biosemi_exg" else "ecg", names[1]: "eog"}, key
        assert info["channels_not_used"]["bad"] == []


def test_prepare_dummy_scans_option_decides_which_extra_markers_go(tiny_bids, tmp_path, caplog):
    """More markers than volumes (here the BOLD lost its last 2 volumes): by default the first markers are taken as dummy
    scans (a warning says so, and how to choose otherwise); dummy_scans='drop-last' keeps the first markers instead."""
    import logging
    import shutil

    import nibabel as nib
    import numpy as np

    root = tmp_path / "copy"
    shutil.copytree(tiny_bids, root, ignore=shutil.ignore_patterns("derivatives"))
    for path in sorted(root.glob("sub-*/func/*_bold.nii.gz")):
        img = nib.load(path)
        nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[..., :-2], img.affine, img.header), path)
    full = prepare_dataset(tiny_bids, progress_bar=False)
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        first = prepare_dataset(root, progress_bar=False)
    assert any("2 more marker(s) than volumes: the first 2 treated as dummy scans" in r.getMessage() and "dummy_scans='drop-last'" in r.getMessage()
               for r in caplog.records)
    last = prepare_dataset(root, {"dummy_scans": "drop-last"}, progress_bar=False)
    for f, la, fu in zip(first.runs, last.runs, full.runs):
        np.testing.assert_allclose(f.onsets, fu.onsets[2:])
        np.testing.assert_allclose(la.onsets, fu.onsets[:-2])
    with pytest.raises(Eeg2fmriInputError, match=r"dummy_scans"):
        prepare_dataset(root, {"dummy_scans": "last"}, progress_bar=False)


def test_prepare_tr_from_config_or_an_inherited_sidecar(tiny_bids, tmp_path):
    """A placeholder header TR that contradicts the sidecar is an error that names the fix; PrepareConfig.tr overrides both;
    a run sidecar without RepetitionTime inherits it from the top-level task-<task>_bold.json (BIDS inheritance)."""
    import json
    import shutil

    import nibabel as nib
    import numpy as np

    root = tmp_path / "copy"
    shutil.copytree(tiny_bids, root, ignore=shutil.ignore_patterns("derivatives"))
    for path in sorted(root.glob("sub-*/func/*_bold.nii.gz")):
        img = nib.load(path)
        img.header.set_zooms(img.header.get_zooms()[:3] + (1.0,))  # a placeholder TR in the header
        nib.save(nib.Nifti1Image(np.asarray(img.dataobj), img.affine, img.header), path)
    with pytest.raises(Eeg2fmriInputError, match=r"TR disagreement: .* --config '\{\"tr\": <seconds>\}'\)\. The EEG's \d+ 'R128' "
                       r"markers \(sub-01_task-rest_run-1_eeg\.vhdr\) are a median 2 s apart: they support the sidecar's 2 s "
                       r"\(--config '\{\"tr\": 2\}'\)\."):
        prepare_dataset(root, progress_bar=False)
    from eeg2fmri.io.layouts import check_layout

    rep = check_layout(root, "auto")  # datasets --check says the same
    assert not rep.ok and any("they support the sidecar's 2 s" in p for p in rep.problems)
    full = prepare_dataset(tiny_bids, progress_bar=False)
    fixed = prepare_dataset(root, {"tr": 2.0}, progress_bar=False)
    assert fixed.tr == 2.0 and all(np.allclose(a.onsets, b.onsets) for a, b in zip(fixed.runs, full.runs))
    for side in sorted(root.glob("sub-*/func/*_bold.json")):  # the runs' sidecars lose RepetitionTime ...
        meta = json.loads(side.read_text())
        meta.pop("RepetitionTime")
        side.write_text(json.dumps(meta))
    (root / "task-rest_bold.json").write_text(json.dumps({"RepetitionTime": 2.0}))  # ... which the top level gives
    assert prepare_dataset(root, progress_bar=False).tr == 2.0  # (the header alone says 1.0)
    with pytest.raises(Eeg2fmriInputError, match="tr"):
        prepare_dataset(root, {"tr": -1.0}, progress_bar=False)


def test_channels_option_interpolates_a_channel_marked_bad(tiny_bids, tmp_path):
    """A channel marked bad in one run's channels.tsv (good in the others) is interpolated at its site in that run, like a
    missing channel, so all runs agree: by default (user test 7) and with the prepare option channels=[training names]."""
    import shutil

    import numpy as np

    root = tmp_path / "copy"
    shutil.copytree(tiny_bids, root, ignore=shutil.ignore_patterns("derivatives"))
    tsv = next(root.glob("sub-02/eeg/*_channels.tsv"))
    rows = [ln.split("\t") for ln in tsv.read_text().splitlines()]
    status = rows[0].index("status")
    names = [r[0] for r in rows[1:] if r[1] == "EEG"]
    bad = names[4]
    rows = [[*r[:status], "bad", *r[status + 1:]] if r[0] == bad else r for r in rows]
    tsv.write_text("\n".join("\t".join(r) for r in rows) + "\n")
    for given in ({}, {"channels": names}):  # by default (the sets differ by channels marked bad only) and as an option
        ds = prepare_dataset(root, given, progress_bar=False)
        assert ds.ch_names == names and all(np.isfinite(r.features).all() for r in ds.runs)
        mapping = next(v for k, v in ds.provenance["inputs"].items() if "sub-02" in k)["channel_mapping"]
        assert mapping["interpolated"] == [bad]
        assert ds.config.channels == names  # recorded in the prepared dataset's config
    from eeg2fmri.io.layouts import check_layout

    rep = check_layout(root, "auto")  # datasets --check says what prepare will do
    assert rep.ok and any(re.search(rf"differ only by the channels some runs mark bad \(sub-02_task-rest_run-1: {bad}\): prepare keeps "
                                    rf"all {len(names)} in every run", n) for n in rep.notes), rep.notes
    # a channel the run does not have at all (removed from the file): a problem, with the fix
    import mne

    vhdr = next(root.glob("sub-02/eeg/*_eeg.vhdr"))
    raw = mne.io.read_raw_brainvision(vhdr, preload=True, verbose=False).drop_channels([bad])
    for f in root.glob("sub-02/eeg/*_eeg.*"):
        f.unlink()
    mne.export.export_raw(vhdr, raw, fmt="brainvision", verbose=False)
    tsv.write_text("\n".join("\t".join([*r[:status], "good", *r[status + 1:]] if r[0] != "name" else r) for r in rows if r[0] != bad) + "\n")
    rep = check_layout(root, "auto")
    assert not rep.ok and any(re.search(rf"sub-02_task-rest_run-1: EEG channels differ from the first run's \(sub-01_task-rest_run-1\): "
                                        rf"missing here \['{bad}'\], only here \[\]; prepare refuses .*prepare option channels", p)
                              for p in rep.problems), rep.problems


def test_grid_first_resamples_every_run_onto_the_first_runs_grid(tiny_bids, tmp_path, caplog):
    """Runs in one space but another box (a run cropped by two slices and shifted): refused with the fix named; with
    grid='first' each such run is resampled onto the first run's grid, its BOLD equal to nilearn's resample_to_img of the
    run onto the first run (continuous interpolation); mask voxels outside a run's own box are warned about."""
    import shutil

    import nibabel as nib
    import numpy as np
    from nilearn.image import resample_to_img

    root = tmp_path / "copy"
    shutil.copytree(tiny_bids, root, ignore=shutil.ignore_patterns("derivatives"))
    first = nib.load(next((root / "sub-01" / "func").glob("*_bold.nii.gz")))
    path = next((root / "sub-02" / "func").glob("*_bold.nii.gz"))
    img = nib.load(path)
    orig = np.asarray(img.dataobj, dtype=np.float32)
    data = orig[:, :, 1:-1]  # two axial slices fewer, the box shifted up one slice
    shifted = img.affine.copy()
    shifted[:3, 3] += img.affine[:3, 2]
    cropped = nib.Nifti1Image(data, shifted, img.header)
    nib.save(cropped, path)
    with pytest.raises(Eeg2fmriInputError, match=r"grid \(\d+, \d+, \d+\) differs from the first run's .* pass prepare option grid='first'"):
        prepare_dataset(root, progress_bar=False)
    ds = prepare_dataset(root, {"grid": "first"}, progress_bar=False)
    ref = np.asarray(resample_to_img(nib.Nifti1Image(data, shifted), first, interpolation="continuous", force_resample=True,
                                     copy_header=True).dataobj)
    np.testing.assert_allclose(ds.runs[1].bold, ref[ds.mask].T, rtol=1e-4, atol=1e-3 * np.abs(ref[ds.mask]).max())
    np.testing.assert_array_equal(ds.affine, first.affine)
    # the file's own grid recorded and said by the prepare summary (user test 54); the first run is not resampled
    from eeg2fmri.commands.prepare import pooling_summary

    src = ds.provenance["inputs"]["sub-02_task-rest_run-1"]["bold_grid_source"]
    assert src["shape"] == list(data.shape[:3]) and src["voxel_mm"] == [12.0, 12.0, 12.0] and src["oblique"] is False
    assert "bold_grid_source" not in ds.provenance["inputs"]["sub-01_task-rest_run-1"]
    want = f"  BOLD resampled onto the dataset's grid in 1 run(s): sub-02_task-rest_run-1 ({'x'.join(map(str, data.shape[:3]))} of 12x12x12 mm)"
    assert want in pooling_summary(ds)
    # a box that misses the mask's lowest slices: those voxels are zero in that run, and the warning says so
    low = nib.Nifti1Image(orig[:, :, 3:], img.affine @ np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 3], [0, 0, 0, 1.0]]),
                          img.header)
    nib.save(low, path)
    caplog.clear()
    ds = prepare_dataset(root, {"grid": "first"}, progress_bar=False)
    assert re.search(r"sub-02_task-rest_run-1_bold.nii.gz: \d+ of \d+ mask voxels lie outside this run's field of view", caplog.text)
    assert int(np.count_nonzero(~np.any(ds.runs[1].bold != 0, axis=0))) > 0
    with pytest.raises(Eeg2fmriInputError, match=r"prepare option grid: expected a grid shape such as \[64, 64, 30\], 'first' .* or the "
                                                 r"path of a NIfTI image whose grid the runs are resampled onto, got 'last' \(no such file\)"):
        prepare_dataset(root, {"grid": "last"}, progress_bar=False)
    with pytest.raises(Eeg2fmriInputError, match=r"grid='first' and voxel_size=3: expected one way of naming the grid; drop one"):
        prepare_dataset(root, {"grid": "first", "voxel_size": 3}, progress_bar=False)


def test_grid_reference_image_puts_every_run_on_its_grid(tiny_bids, tmp_path, caplog):
    """User test 54 #4b: the prepare option grid as a NIfTI path (another site's mask.nii.gz): every run, the first included,
    is resampled onto that image's grid, its BOLD equal to nilearn's resample_to_img onto the image (clip=True: spline
    overshoots clipped to the run's range, as resample_img's default); a dataset prepared so
    is on the reference's grid (shape, affine); a wrong path, a non-image and grid + voxel_size are refused."""
    import nibabel as nib
    import numpy as np
    from nilearn.image import resample_to_img

    first = nib.load(next((tiny_bids / "sub-01" / "func").glob("*_bold.nii.gz")))
    # the reference: another site's grid over the same space -- 10 mm voxels on a box shifted by 3 mm, 3D, int mask
    aff = np.diag([10.0, 10.0, 10.0, 1.0])
    aff[:3, 3] = first.affine[:3, 3] + 3.0
    ref_shape = (19, 23, 18)
    ref = tmp_path / "site_a_mask.nii.gz"
    nib.save(nib.Nifti1Image(np.ones(ref_shape, dtype=np.uint8), aff), ref)
    ds = prepare_dataset(tiny_bids, {"grid": str(ref)}, progress_bar=False)
    assert ds.mask.shape == ref_shape
    np.testing.assert_allclose(ds.affine, aff)
    for k, run in enumerate(ds.runs):
        src = nib.load(next((tiny_bids / f"sub-0{k + 1}" / "func").glob("*_bold.nii.gz")))
        want = np.asarray(resample_to_img(nib.Nifti1Image(np.asarray(src.dataobj, dtype=np.float32), src.affine), nib.load(ref),
                                          interpolation="continuous", force_resample=True, copy_header=True, clip=True).dataobj)
        np.testing.assert_allclose(run.bold, want[ds.mask].T, rtol=1e-4, atol=1e-3 * np.abs(want[ds.mask]).max())
        assert ds.provenance["inputs"][run.key]["bold_grid_source"]["shape"] == list(src.shape[:3])  # every run resampled, said
    # a run already on the reference's grid is read as it is (no resampling, no grid source recorded)
    same = prepare_dataset(tiny_bids, {"grid": str(next((tiny_bids / "sub-01" / "func").glob("*_bold.nii.gz")))}, progress_bar=False)
    assert "bold_grid_source" not in same.provenance["inputs"][same.runs[0].key]
    np.testing.assert_array_equal(same.affine, first.affine)
    with pytest.raises(Eeg2fmriInputError, match=r"got '.*nowhere\.nii\.gz' \(no such file\); check the path"):
        prepare_dataset(tiny_bids, {"grid": str(tmp_path / "nowhere.nii.gz")}, progress_bar=False)
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(Eeg2fmriInputError, match=r"notes\.txt: prepare option grid: expected a NIfTI image .* but nibabel cannot read it"):
        prepare_dataset(tiny_bids, {"grid": str(tmp_path / "notes.txt")}, progress_bar=False)
    with pytest.raises(Eeg2fmriInputError, match=r"grid='.*site_a_mask\.nii\.gz' and voxel_size=3: expected one way of naming the grid"):
        prepare_dataset(tiny_bids, {"grid": str(ref), "voxel_size": 3}, progress_bar=False)


def test_grid_reference_as_path_object_relative_or_replaced(tiny_bids, tmp_path, monkeypatch, caplog, capsys):
    """A review of the grid reference (session 37): a pathlib.Path is stored as one absolute string (the manifest is
    JSON), the same file spelt relatively is the same config, a reference replaced since is prepared again only with
    overwrite (the no-op check compares its grid, not its name), the first run's voxels outside its box are warned
    about, and `datasets --check --config` reads the file as prepare does."""
    import json
    from pathlib import Path

    import nibabel as nib
    import numpy as np

    from eeg2fmri.cli import main
    from eeg2fmri.datasets import load_prepared, prepare

    first = nib.load(next((tiny_bids / "sub-01" / "func").glob("*_bold.nii.gz")))
    aff = np.diag([10.0, 10.0, 10.0, 1.0])
    aff[:3, 3] = first.affine[:3, 3] - 20.0  # a box reaching 20 mm past the runs' on the low sides
    (tmp_path / "ref").mkdir()
    ref = tmp_path / "ref" / "site_a_mask.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((24, 28, 23), dtype=np.uint8), aff), ref)
    with pytest.raises(Eeg2fmriInputError, match=r"grid=PosixPath\(.*site_a_mask.nii.gz'\) and voxel_size=3: expected one way of naming"):
        prepare_dataset(tiny_bids, {"grid": Path(ref), "voxel_size": 3}, progress_bar=False)
    caplog.clear()
    out, written = prepare(tiny_bids, tmp_path / "prep_fov", {"grid": Path(ref), "mask": str(ref)}, progress_bar=False)
    assert written and json.loads((out / "manifest.json").read_text())["config"]["grid"] == str(ref.absolute())
    # every run, the first included, is said to miss part of the reference's box
    for sub in ("sub-01", "sub-02"):
        assert re.search(rf"{sub}_task-rest_run-1_bold.nii.gz: \d+ of \d+ mask voxels lie outside this run's field of view \(zero "
                         rf"after resampling onto the grid of .*site_a_mask.nii.gz\)", caplog.text), sub
    monkeypatch.chdir(tmp_path)
    assert prepare(tiny_bids, tmp_path / "prep", {"grid": Path(ref)}, progress_bar=False)[1]
    assert prepare(tiny_bids, tmp_path / "prep", {"grid": "ref/site_a_mask.nii.gz"}, progress_bar=False)[1] is False  # the same file
    # the reference replaced by another grid: not "up to date"
    nib.save(nib.Nifti1Image(np.ones((21, 25, 20), dtype=np.uint8), aff), ref)
    with pytest.raises(Eeg2fmriInputError, match=r"already holds a prepared dataset of other inputs or another config \(what differs: the "
                                                 r"grid of .*site_a_mask.nii.gz, replaced since\)"):
        prepare(tiny_bids, tmp_path / "prep", {"grid": "ref/site_a_mask.nii.gz"}, progress_bar=False)
    out, written = prepare(tiny_bids, tmp_path / "prep", {"grid": "ref/site_a_mask.nii.gz"}, progress_bar=False, overwrite="stale")
    assert written and load_prepared(out).mask.shape == (21, 25, 20)
    # the check reads the reference as prepare does
    assert main(["datasets", "--check", str(tiny_bids), "--config", json.dumps({"grid": "ref/nowhere.nii.gz"})]) == 1
    assert "prepare option grid: expected a grid shape such as [64, 64, 30]" in capsys.readouterr().out


def test_a_run_of_another_tr_is_a_problem_of_the_check_and_prepare_says_how_to_split(tiny_bids, tmp_path):
    """User test 19: `datasets --check` passed a dataset with one run at TR 2.5 s among runs at 2 s, which prepare then
    refused with "prepare runs with different TRs separately" and no way to do so."""
    import shutil

    from eeg2fmri.cli import main
    from eeg2fmri.io.layouts import check_layout
    from eeg2fmri.simulate import simulate_dataset

    from .conftest import TINY

    root = tmp_path / "mixed"
    shutil.copytree(tiny_bids, root, ignore=shutil.ignore_patterns("derivatives"))
    other = simulate_dataset(tmp_path / "tr25", progress_bar=False, **{**TINY, "n_subjects": 1, "tr": 2.5, "minutes": 2.0})
    for f in sorted(other.glob("sub-01/**/*")):
        if f.is_file():
            dest = root / str(f.relative_to(other)).replace("sub-01", "sub-03")
            dest.parent.mkdir(parents=True, exist_ok=True)
            text = f.read_text(errors="strict") if f.suffix in (".vhdr", ".vmrk") else None
            if text is not None:  # the BrainVision header names its data and marker files
                dest.write_text(text.replace("sub-01", "sub-03"))
            else:
                shutil.copy(f, dest)
    rep = check_layout(root)
    assert not rep.ok
    want = (r"sub-03_task-rest(_run-1)?: TR 2.5 s differs from the first run's \(sub-01_task-rest(_run-1)?\) 2 s; prepare pools only "
            r"runs of one TR .* prepare the runs of each TR as a dataset of their own \(--subjects, or the layout options sessions/tasks")
    assert any(re.search(want, p) for p in rep.problems), rep.problems
    assert main(["datasets", "--check", str(root)]) != 0
    with pytest.raises(Eeg2fmriInputError, match=r"_bold.nii.gz: sub-03_task-rest(_run-1)?: TR 2.5 s differs from the first run's "
                                                  r"\(sub-01_task-rest(_run-1)?_bold.nii.gz\) 2 s; prepare pools only runs of one TR"):
        prepare_dataset(root, progress_bar=False)
