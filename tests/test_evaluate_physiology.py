"""``eeg2fmri evaluate``: the physiology-only row (a ridge from the physiological regressors alone), as in benchmark."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from eeg2fmri.cli import main
from eeg2fmri.evaluation.protocol import PHYSIOLOGY
from eeg2fmri.workflows.evaluate import evaluate_run

NO_ROW = "1 run(s) have no usable physiological regressors"


@pytest.fixture(scope="module")
def physio_bold(tiny_prepared, tmp_path_factory):
    """The tiny dataset with physiological noise added to its BOLD (a fixed map per regressor), saved; a ridge_hrf and a
    mean model fitted leave-one-subject-out (02 held out), whose cards record the dataset and the split; and the same
    data with subject 01's regressors dropped."""
    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.models import save_model
    from eeg2fmri.training import fit_model

    root = tmp_path_factory.mktemp("evphys")
    rng = np.random.default_rng(3)
    n_reg = tiny_prepared.runs[0].physio.shape[1]
    w = rng.standard_normal((n_reg, tiny_prepared.runs[0].bold.shape[1])).astype(np.float32)
    # (each voxel's noise on its own BOLD's scale, n_reg regressors of unit variance: about as strong as the BOLD's own fluctuations)
    runs = [dataclasses.replace(r, bold=np.asarray(r.bold) + (r.physio @ w) * np.asarray(r.bold).std(0) / np.sqrt(n_reg)) for r in tiny_prepared.runs]
    ds = dataclasses.replace(tiny_prepared, runs=runs)
    prep = ds.save(root / "prepared")
    sp = make_split(ds, "loso", test_subjects=["02"])
    targets = split_targets(ds, sp)
    card = {"training data": {"prepared": str(prep)}, "split": {"protocol": "loso", "test_subjects": ["02"], "gap_volumes": sp.gap}}
    for name in ("ridge_hrf", "mean"):
        fitted = fit_model(ds, sp, name, targets=targets)
        save_model(fitted.model, root / name / "model", card=card, spec=fitted.spec, name=name, hparams=fitted.model.get_params(),
                   mask=ds.mask, affine=ds.affine, window={"n_frames": sp.n_frames, "lag": sp.lag}, prepare=ds.config.to_dict())
    partial = dataclasses.replace(ds, runs=[dataclasses.replace(r, physio=None, physio_names=None) if r.subject == "01" else r
                                            for r in ds.runs])
    assert sum(r.subject == "01" for r in ds.runs) == 1  # (NO_ROW counts subject 01's runs)
    return root, ds, partial.save(root / "partial")


def _direct_median_r(ds, subject: str) -> float:
    """The physiology-only row's median r on ``subject``'s test windows, computed apart from eeg2fmri's model: scikit-learn's
    RidgeCV (generalised cross-validation over the same penalties) from the regressors of the LOSO split's training
    windows to their targets, r per voxel over the subject's test windows, median over voxels."""
    from sklearn.linear_model import RidgeCV

    from eeg2fmri.datasets.targets import make_split, split_targets

    sp = make_split(ds, "loso", test_subjects=["02"])
    targets = split_targets(ds, sp)
    train = sp.selections["train"]
    x = np.concatenate([ds.runs[i].physio[v] for i, v in train.items()]).astype(np.float64)
    y = np.concatenate([targets["train"][i] for i in train]).astype(np.float64)
    ridge = RidgeCV(alphas=np.logspace(-1, 5, 13)).fit(x, y)
    test = [i for i in sp.selections["test"] if ds.runs[i].subject == subject]
    yt = np.concatenate([targets["test"][i] for i in test]).astype(np.float64)
    pt = ridge.predict(np.concatenate([ds.runs[i].physio[sp.selections["test"][i]] for i in test]).astype(np.float64))
    yc, pc = yt - yt.mean(0), pt - pt.mean(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (yc * pc).sum(0) / np.sqrt((yc**2).sum(0) * (pc**2).sum(0))
    return float(np.nanmedian(r))


def test_evaluate_scores_the_physiology_only_row_as_fitted_on_the_split(physio_bold):
    """The row is a ridge from the regressors alone, fitted on the recorded split's training windows: its score is
    RidgeCV's on the same test windows; it sits after the reference in every output, and the notes name the models that
    score no higher."""
    root, ds, _ = physio_bold
    out, res = evaluate_run(root / "ridge_hrf", n_boot=20, html_report=True, progress_bar=False)
    assert res["models"] == ["ridge_hrf", PHYSIOLOGY, "mean"] and res["roles"]["physiology"] == PHYSIOLOGY
    assert res["physiology"]["available"] and res["physiology"]["reason"] is None
    assert res["physiology"]["regressors"] == ds.runs[0].physio_names and len(ds.runs[0].physio_names) == ds.runs[0].physio.shape[1]
    phys = res["per_subject"]["02"]["models"][PHYSIOLOGY]["median_r"]
    assert phys == pytest.approx(_direct_median_r(ds, "02"), abs=1e-4)
    assert res["group"]["models"][PHYSIOLOGY]["median_r"] == pytest.approx(phys, abs=1e-9)  # one test subject
    # the BOLD holds physiological noise: the regressors explain more of it than the EEG's ridge
    ridge = res["group"]["models"]["ridge_hrf"]["median_r"]
    assert phys > 0.3 and phys > ridge + 0.1 and res["physiology"]["not_above"] == (["ridge_hrf"] if ridge > 0 else [])
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["models"] == ["ridge_hrf", PHYSIOLOGY, "mean"] and doc["roles"]["physiology"] == PHYSIOLOGY
    assert list(doc["group"]["models"]) == ["ridge_hrf", PHYSIOLOGY, "mean"]  # (the HTML page's table follows this order)
    assert doc["group"]["models"][PHYSIOLOGY]["median_r"] == pytest.approx(phys, abs=1e-6) and doc["physiology"]["available"]
    note = doc["notes"][PHYSIOLOGY]
    assert note.startswith(f"'{PHYSIOLOGY}' is a ridge from the physiological regressors alone") and f"median r {phys:.3f}" in note
    assert ("; ridge_hrf scores no higher: compare the per-ROI table" in note) == (ridge > 0)
    # the tiny recordings' ECG channel, no confounds regressed: benchmark's caveat too
    assert doc["notes"]["physiological recordings"].startswith("the data include physiological recordings (ecg) and no confounds")
    assert "no physiology-only row" not in doc["notes"]
    report = (out / "report.md").read_text()
    table = report[report.index("## Models, reference and baselines"):report.index("## Per subject")]
    assert table.index("| ridge_hrf (reference) |") < table.index(f"| {PHYSIOLOGY} | {phys:.3f} |") < table.index("| mean (subject-mean baseline) |")
    assert f"- {PHYSIOLOGY}: '{PHYSIOLOGY}' is a ridge from the physiological regressors alone" in report
    html = (out / "report.html").read_text()
    assert html.index("ridge_hrf") < html.index(PHYSIOLOGY) < html.index("mean")


def test_evaluate_places_the_row_after_the_reference_for_another_model(physio_bold, tmp_path, capsys):
    """An evaluated model that is not the reference (here the mean model): the row still follows the reference (benchmark
    ranks it after the models, the reference and the nulls), and the command prints it."""
    root, _, _ = physio_bold
    assert main(["evaluate", str(root / "mean"), "--out", str(tmp_path / "ev"), "--n-boot", "0", "--no-report", "-q"]) == 0
    printed = capsys.readouterr().out
    doc = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert doc["models"] == ["ridge_hrf", PHYSIOLOGY, "mean"]
    v = doc["group"]["models"][PHYSIOLOGY]["median_r"]
    line = f"{PHYSIOLOGY} (a ridge from the physiological regressors alone, no EEG): median test r {v:.3f}"
    assert line in printed
    below = doc["physiology"]["not_above"]
    assert (f"{line}; ridge_hrf scores no higher: compare the ROI r before crediting the EEG" in printed) == (below == ["ridge_hrf"])


def test_evaluate_says_why_there_is_no_physiology_row(physio_bold, tmp_path, capsys):
    """Runs without the regressors (subject 01's dropped): no row, and the notes, metrics.json and the terminal say why."""
    root, _, partial = physio_bold
    out, res = evaluate_run(root / "ridge_hrf", data=partial, out=tmp_path / "ev", n_boot=0, html_report=False, progress_bar=False)
    assert res["models"] == ["ridge_hrf", "mean"] and res["roles"]["physiology"] is None
    assert res["physiology"] == {"name": PHYSIOLOGY, "available": False, "reason": NO_ROW, "regressors": None, "not_above": []}
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["notes"]["no physiology-only row"] == f"no '{PHYSIOLOGY}' row: {NO_ROW}" and PHYSIOLOGY not in doc["notes"]
    assert PHYSIOLOGY not in doc["group"]["models"]
    assert f"- no physiology-only row: no '{PHYSIOLOGY}' row: {NO_ROW}" in (out / "report.md").read_text()
    assert main(["evaluate", str(root / "ridge_hrf"), "--data", str(partial), "--out", str(tmp_path / "cli"), "--n-boot", "0", "--no-report",
                 "-q"]) == 0
    assert f"no '{PHYSIOLOGY}' row: {NO_ROW}" in capsys.readouterr().out


def test_physiology_row_rule_is_benchmarks(physio_bold):
    """The rule both commands apply: every run with BOLD holds the same regressors, and not across datasets."""
    from eeg2fmri.datasets import load_prepared
    from eeg2fmri.evaluation.protocol import physiology_row

    _, ds, partial = physio_bold
    assert physiology_row(ds, "loso") == (True, None) and physiology_row(ds, "within") == (True, None)
    assert physiology_row(ds, "cross") == (False, "not with protocol 'cross'")
    assert physiology_row(load_prepared(partial), "loso") == (False, NO_ROW)
    fewer = dataclasses.replace(ds, runs=[dataclasses.replace(r, physio=r.physio[:, :4], physio_names=r.physio_names[:4]) if i == 0 else r
                                          for i, r in enumerate(ds.runs)])
    assert physiology_row(fewer, "loso") == (False, "the runs' physiological regressors differ (a trace some runs lack)")
    none = dataclasses.replace(ds, runs=[dataclasses.replace(r, physio=None, physio_names=None) for r in ds.runs])
    assert physiology_row(none, "loso") == (False, None)  # no regressors at all: nothing to say


def test_cross_dataset_evaluation_has_no_physiology_row(physio_bold, tmp_path):
    """Another dataset's test windows: no row, though the test data hold regressors, and the notes say so."""
    root, ds, _ = physio_bold
    other = dataclasses.replace(ds, provenance={"bids_root": ds.provenance["bids_root"]}).save(tmp_path / "other")  # no shared inputs
    out, res = evaluate_run(root / "ridge_hrf", data=other, protocol="cross", out=tmp_path / "ev", n_boot=0, html_report=False,
                            progress_bar=False)
    assert res["models"] == ["ridge_hrf", "mean"] and res["roles"]["physiology"] is None
    assert res["physiology"]["available"] is False and res["physiology"]["reason"] == "not with protocol 'cross'"
    notes = json.loads((out / "metrics.json").read_text())["notes"]
    assert notes["no physiology-only row"] == f"no '{PHYSIOLOGY}' row: not with protocol 'cross'" and PHYSIOLOGY not in notes


def test_evaluate_refuses_data_of_another_slow_potential(physio_bold, tmp_path):
    """The model's recorded prepare settings name its slow_potential: data prepared with another band (or without one,
    when the model had one) are refused, whether or not the training dataset can be found (a review of session 40)."""
    root, ds, _ = physio_bold
    other = dataclasses.replace(ds, config=dataclasses.replace(ds.config, slow_potential=[0.02, 0.1])).save(tmp_path / "slow")
    from eeg2fmri.utils.validation import Eeg2fmriInputError

    with pytest.raises(Eeg2fmriInputError, match=r"expected the slow_potential the model was trained with \(none\), got \[0\.02, 0\.1\]; "
                                        r"prepare the data with the prepare option slow_potential as for training \(--config "
                                        r"'\{\"slow_potential\": null\}'\)"):
        evaluate_run(root / "ridge_hrf" / "model", data=other, out=tmp_path / "ev", progress_bar=False)
