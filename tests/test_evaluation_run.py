"""``eeg2fmri evaluate``: model directory -> metrics.json, report and figures; recorded split; errors."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from eeg2fmri.cli import main
from eeg2fmri.datasets import load_prepared
from eeg2fmri.utils.validation import Eeg2fmriInputError
from eeg2fmri.workflows.evaluate import evaluate_run, resolve_run


@pytest.fixture(scope="module")
def trained(tiny_prepared, tmp_path_factory):
    """A prepared dataset on disk and a ridge_hrf model whose card records it and the split."""
    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.models import save_model
    from eeg2fmri.training import fit_model

    root = tmp_path_factory.mktemp("evalrun")
    prep = tiny_prepared.save(root / "prepared")
    sp = make_split(tiny_prepared, "loso", test_subjects=["02"])
    fitted = fit_model(tiny_prepared, sp, "ridge_hrf", {"hrf": "lags"}, targets=split_targets(tiny_prepared, sp))
    card = {"training data": {"prepared": str(prep)}, "split": {"protocol": "loso", "test_subjects": ["02"], "gap_volumes": sp.gap}}
    kw = dict(spec=fitted.spec, name="ridge_hrf", hparams=fitted.model.get_params(), mask=tiny_prepared.mask, affine=tiny_prepared.affine,
              window={"n_frames": sp.n_frames, "lag": sp.lag}, prepare=tiny_prepared.config.to_dict())
    save_model(fitted.model, root / "run" / "model", card=card, **kw)
    save_model(fitted.model, root / "elsewhere" / "bare_model", **kw)  # records nothing, no prepared/ beside it
    return root, prep


def test_evaluate_run_writes_report(trained):
    root, prep = trained
    out, res = evaluate_run(root / "run", n_boot=40, html_report=True, progress_bar=False)
    assert out == root / "run" / "evaluation"
    for f in ("metrics.json", "report.md", "report.html", "r_map_ridge_hrf.png", "r_distributions.png", "subjects.png", "timecourses.png"):
        assert (out / f).exists(), f
    # the recorded split: subject 02 held out, so the test set is subject 02 only
    assert sorted(res["per_subject"]) == ["02"] and res["protocol"] == "loso"
    rmap = nib.load(out / "r_map_ridge_hrf.nii.gz").header  # a viewer reads it as an r estimate in mm
    assert rmap.get_intent() == ("estimate", (), "test r") and rmap.get_xyzt_units()[0] == "mm"
    vols = res["split"]["volumes"]  # where every volume went (also in the report's settings)
    assert sum(vols[k] for k in ("used", "no_full_window", "gaps", "bad_eeg")) == vols["total"] and vols["no_full_window"] > 0
    n_train_runs = sum(r.subject != "02" for r in load_prepared(prep).runs)  # LOSO: one gap per training run (before validation)
    assert vols["gaps"] == res["split"]["gap_volumes"] * n_train_runs > 0 and min(vols.values()) >= 0
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["model"] == "ridge_hrf" and doc["data"] == str(prep.absolute()) and "rebuilt from the split recorded in the model card" in doc["notes"]["split"]
    assert doc["group"]["models"]["mean"]["rmse"] > 0 and doc["per_subject"]["02"]["data_range"]["value"] > 0
    assert doc["conformal"]["levels"] == [0.5, 0.8, 0.95] and len(doc["conformal"]["coverage"]) == 3  # intervals calibrated on validation
    report = (out / "report.md").read_text()
    for text in ("**ridge_hrf** reaches a median voxel-wise r of", "subject-mean baseline", "## Per subject", "Peers' own metrics",
                 "calhas_rmse", "1st-99th percentile range", "![r_map_ridge_hrf](r_map_ridge_hrf.png)", "noise ceiling",
                 f"{vols['used']} of {vols['total']} volumes have a window in train/validation/test"):
        assert text in report, text
    import re

    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert links and all((out / link).is_file() for link in links), links  # figures in insight/ are linked as insight/NAME.png
    html = (out / "report.html").read_text()  # eeg2fmri.workflows.report: self-contained, with the calibration curve
    assert "data:image/png;base64," in html and "Calibration" in html and "<script" not in html
    with pytest.raises(Eeg2fmriInputError, match="output directory already exists; choose another --out or pass overwrite=True"):
        evaluate_run(root / "run", n_boot=0, progress_bar=False)


def test_evaluate_cli_and_errors(trained, tmp_path, capsys):
    root, prep = trained
    out = tmp_path / "ev"
    assert main(["evaluate", "--model", str(root / "elsewhere" / "bare_model"), "--data", str(prep), "--protocol", "within", "--out", str(out), "-q",
                 "--n-boot", "20", "--save-predictions"]) == 0
    printed = capsys.readouterr().out
    assert "ridge_hrf: median test r" in printed and f"wrote {out}/metrics.json" in printed
    # --save-predictions (user test 34): the scored arrays, from which the metrics recompute with scipy
    from scipy.stats import pearsonr

    doc = json.loads((out / "metrics.json").read_text())
    files = sorted((out / "predictions").glob("*.npz"))
    assert files and len(files) == len(doc["runs"])
    by_subject: dict = {}
    ds = load_prepared(prep)
    runs = {r.key: r for r in ds.runs}
    for f in files:
        with np.load(f) as z:
            assert {"y", "volumes", "subject", "tr", "pred_ridge_hrf", "pred_mean", "bold_volumes", "onsets_s"} <= set(z.files)
            assert z["y"].shape == z["pred_ridge_hrf"].shape
            # user test 39: volumes count prepared volumes; bold_volumes are the BOLD file's (prepare's first kept one
            # added), onsets_s the volumes' onsets in the EEG recording
            first = ds.provenance["inputs"][f.stem]["volumes"][0]
            assert np.array_equal(z["bold_volumes"], z["volumes"] + first)
            assert np.allclose(z["onsets_s"], runs[f.stem].onsets[z["volumes"]])
            by_subject.setdefault(str(z["subject"]), []).append((z["y"], z["pred_ridge_hrf"]))
    for subj, parts in by_subject.items():
        y = np.concatenate([a for a, _ in parts])
        p = np.concatenate([b for _, b in parts])
        r = [pearsonr(y[:, j], p[:, j])[0] for j in range(y.shape[1]) if np.std(y[:, j]) > 0 and np.std(p[:, j]) > 0]
        assert np.median(r) == pytest.approx(doc["per_subject"][subj]["models"]["ridge_hrf"]["median_r"], abs=1e-4)
    notes = doc["notes"]
    assert "rebuilt from the command line" in notes["split"]
    assert main(["evaluate", str(tmp_path / "nothing"), "-q"]) == 2
    assert "expected a model directory (model.json) or a run folder with model/model.json, found neither" in capsys.readouterr().err
    assert main(["evaluate", "--model", str(root / "elsewhere" / "bare_model"), "--out", str(tmp_path / "x"), "-q"]) == 2
    assert "the model records no prepared dataset; pass --data PREPARED" in capsys.readouterr().err
    assert main(["evaluate", "--model", str(root / "elsewhere" / "bare_model"), "--data", str(prep), "--out", str(tmp_path / "x"), "-q"]) == 2
    assert "the model records no split; pass --protocol within|loso|kfold|subjects" in capsys.readouterr().err
    # the recorded prepared dataset was moved (user test 11: the error said to create it with eeg2fmri prepare)
    import shutil

    moved = tmp_path / "moved_run"
    shutil.copytree(root / "run" / "model", moved / "model")
    card = json.loads((moved / "model" / "model.json").read_text())
    card["card"]["training data"]["prepared"] = str(tmp_path / "gone" / "prepared")
    (moved / "model" / "model.json").write_text(json.dumps(card))
    assert main(["evaluate", str(moved), "--out", str(tmp_path / "y"), "-q"]) == 2
    assert (f"the model was trained on the prepared dataset {tmp_path / 'gone' / 'prepared'}, which is not there any more (moved or "
            "deleted?); pass --data with its new place") in capsys.readouterr().err
    assert main(["evaluate", str(moved), "--data", str(prep), "--out", str(tmp_path / "y"), "-q", "--n-boot", "0"]) == 0
    assert not (tmp_path / "x").exists()
    # a metric of your own from the command line (user test 25: only the Python API took one)
    (tmp_path / "my_metrics.py").write_text("import numpy as np\ndef mean_abs(y, p):\n    return float(np.mean(np.abs(y - p)))\n")
    capsys.readouterr()
    assert main(["evaluate", str(moved), "--data", str(prep), "--out", str(tmp_path / "z"), "-q", "--n-boot", "0",
                 "--metric", f"mae2={tmp_path / 'my_metrics.py'}:mean_abs"]) == 0
    g = json.loads((tmp_path / "z" / "metrics.json").read_text())["group"]["models"]
    assert g["ridge_hrf"]["mae2"] == pytest.approx(g["ridge_hrf"]["mae"], rel=1e-5) and "mae2: ridge_hrf" in capsys.readouterr().out
    assert main(["evaluate", str(moved), "--data", str(prep), "--out", str(tmp_path / "w"), "-q", "--metric", "nope"]) == 2
    assert "--metric: expected NAME=MODULE:FUNCTION" in capsys.readouterr().err
    assert main(["evaluate", str(moved), "--data", str(prep), "--out", str(tmp_path / "w"), "-q", "--metric", "a=no_such_mod_x:f"]) == 2
    assert "metric 'a': could not import 'no_such_mod_x:f' (ModuleNotFoundError" in capsys.readouterr().err
    with pytest.raises(Eeg2fmriInputError, match="expected RUN_DIR"):
        resolve_run(None)


def test_evaluate_refuses_a_protocol_that_tests_on_training_windows(trained, tmp_path):
    """The run was trained leave-one-subject-out with subject 02 held out: a within-subject split would test it on the
    last span of subject 01, which it was trained on -- refused with the fix; the recorded split still evaluates."""
    root, _ = trained
    with pytest.raises(Eeg2fmriInputError, match=r"the model was trained with protocol 'loso' \(test subjects 02\); the requested split tests it on "
                                                 r"\d+ of \d+ windows that lie within \d+ volumes of windows it was trained or validated on, so its scores "
                                                 r"would not be held out\. Evaluate with the recorded split"):
        evaluate_run(root / "run", protocol="within", out=tmp_path / "leak", n_boot=0, progress_bar=False)
    assert not (tmp_path / "leak").exists()
    # the held-out subject alone, within-subject spans: none of its windows trained or validated the model (user test 21:
    # refused, with a message that said to use protocol 'within')
    out, res = evaluate_run(root / "run", protocol="within", subjects=["02"], out=tmp_path / "held", n_boot=0, progress_bar=False)
    assert sorted(res["per_subject"]) == ["02"]
    with pytest.raises(Eeg2fmriInputError, match=r"holding out subject\(s\) \[.02.\] only; the subject\(s\) asked for, \[.01.\], trained or validated it, so their scores would not be held out\. Evaluate the held-out subject\(s\) \(--subjects 02\)"):  # a training subject alone is refused
        evaluate_run(root / "run", protocol="within", subjects=["01"], out=tmp_path / "seen", n_boot=0, progress_bar=False)


def test_evaluate_cross_dataset(trained, tiny_prepared, tmp_path):
    from eeg2fmri.evaluation.crossdata import restrict_dataset

    root, prep = trained
    names = tiny_prepared.ch_names
    upper = restrict_dataset(tiny_prepared, names[::-1], names=[c.upper() for c in names[::-1]])
    with pytest.raises(Eeg2fmriInputError, match="the test dataset holds recordings of the training dataset"):
        evaluate_run(root / "run", data=upper.save(tmp_path / "same"), protocol="cross", n_boot=0, progress_bar=False, out=tmp_path / "ev0")
    with pytest.raises(Eeg2fmriInputError, match="this is the model's training dataset; a cross-dataset test needs another dataset"):
        evaluate_run(root / "run", data=prep, protocol="cross", n_boot=0, progress_bar=False, out=tmp_path / "ev1")
    upper.provenance = {"bids_root": upper.provenance["bids_root"]}  # "another" dataset: no shared input checksums
    other = upper.save(tmp_path / "other")
    out, res = evaluate_run(root / "run", data=other, protocol="cross", n_boot=0, progress_bar=False, out=tmp_path / "ev")
    assert sorted(res["per_subject"]) == ["test-01", "test-02"] and res["models"] == ["ridge_hrf", "mean"]
    assert res["cross_dataset"]["n_channels"] == 16 and res["cross_dataset"]["train_data"] == str(prep.absolute())
    # the test dataset's targets are on its own scale, and the files say so (user test 21: labelled as the training's)
    assert res["settings"]["units"].startswith("targets of the test dataset detrended per span and standardised with its own runs'")
    assert "Units: targets of the test dataset detrended per span and standardised with its own runs'" in (out / "report.md").read_text()
    fewer = restrict_dataset(tiny_prepared, names[2:]).save(tmp_path / "fewer")
    with pytest.raises(Eeg2fmriInputError, match=r"2 are missing here: \['Fp1', 'Fp2'\]"):
        evaluate_run(root / "run", data=fewer, protocol="cross", n_boot=0, progress_bar=False, out=tmp_path / "ev2")
    with pytest.raises(Eeg2fmriInputError, match=r"its EEG channels differ from the model's \(14 vs 16: the model's missing here "
                                                  r"\['Fp1', 'Fp2'\], not the model's \[\]\); .* use --protocol cross"):
        evaluate_run(root / "run", data=fewer, n_boot=0, progress_bar=False, out=tmp_path / "ev3")
    shuffled = restrict_dataset(tiny_prepared, names[::-1]).save(tmp_path / "shuffled")  # (user test 21: "differ ... (20 vs 20)")
    with pytest.raises(Eeg2fmriInputError, match=r"its EEG channels differ from the model's \(the same channels in another order\)"):
        evaluate_run(root / "run", data=shuffled, n_boot=0, progress_bar=False, out=tmp_path / "ev4")


def test_evaluate_prints_the_roi_r_with_an_atlas(trained, tiny_prepared, tmp_path, capsys):
    """With --atlas the console gives the ROI median r next to the whole-mask r (user test 13: only report.md had it),
    and the wrote line names report.html when it is written."""
    import numpy as np

    root, prep = trained
    mask = np.asarray(tiny_prepared.mask, dtype=bool)
    labels = np.zeros(mask.shape, dtype=np.int16)
    idx = np.flatnonzero(mask)
    labels.flat[idx] = 1 + np.arange(len(idx)) * 3 // len(idx)  # three ROIs over the mask
    nib.save(nib.Nifti1Image(labels, tiny_prepared.affine), tmp_path / "atlas.nii.gz")
    out = tmp_path / "ev"
    assert main(["evaluate", str(root / "run"), "--atlas", str(tmp_path / "atlas.nii.gz"), "--out", str(out), "-q", "--n-boot", "0"]) == 0
    printed = capsys.readouterr().out
    roi = json.loads((out / "metrics.json").read_text())["group"]["models"]["ridge_hrf"]["roi_median_r"]
    assert f"ROI r (ROI-average series, 3 ROIs): ridge_hrf median {roi:.3f}; per ROI in {out}/report.md" in printed
    assert f"wrote {out}/metrics.json, {out}/report.md, {out}/report.html and figures" in printed
    assert main(["evaluate", str(root / "run"), "--out", str(tmp_path / "ev2"), "-q", "--n-boot", "0", "--no-report"]) == 0
    printed = capsys.readouterr().out
    assert "ROI r" not in printed and f"wrote {tmp_path / 'ev2'}/metrics.json, {tmp_path / 'ev2'}/report.md and figures" in printed


def test_saved_prediction_volumes_name_the_bold_file_volumes():
    """User test 39: prepare drops dummy/non-steady-state volumes, so prepared volume k is BOLD-file volume k + the first
    kept one (manifest inputs[run].volumes); bold_volumes says so, onsets_s gives their onsets; after a resampling in
    time there is no file index."""
    from types import SimpleNamespace

    from eeg2fmri.evaluation.protocol import _file_volumes

    run = SimpleNamespace(key="sub-01_run-1", onsets=np.arange(50) * 1.95 + 7.3)
    ds = SimpleNamespace(runs=[run], provenance={"inputs": {"sub-01_run-1": {"volumes": [3, 53]}}})
    got = _file_volumes(ds, 0, np.array([4, 5, 9]))
    assert got["bold_volumes"].tolist() == [7, 8, 12] and np.allclose(got["onsets_s"], [7.3 + 4 * 1.95, 7.3 + 5 * 1.95, 7.3 + 9 * 1.95])
    ds.provenance["inputs"]["sub-01_run-1"]["resampled_in_time"] = {"from_tr": 2.0, "to_tr": 1.0}
    assert "bold_volumes" not in _file_volumes(ds, 0, np.array([4]))
