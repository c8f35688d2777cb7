"""The closed-form models (``ridge_hrf``, ``mean``) on a dataset prepared with ``representation: tangent``.

``benchmark`` fits the reference ``ridge_hrf`` on tangent data through its band-power view
(:func:`eeg2fmri.evaluation.reference.bandpower_view`: the band-power block of the same windows);
``eeg2fmri train`` gives the same model, which then evaluates and synthesises from tangent windows.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from eeg2fmri.utils.validation import Eeg2fmriInputError


@pytest.fixture(scope="module")
def tangent_dir(tiny_bids, tmp_path_factory):
    from eeg2fmri.datasets import prepare_dataset
    from eeg2fmri.datasets.prepared import PrepareConfig

    return prepare_dataset(tiny_bids, PrepareConfig(representation="tangent"), progress_bar=False).save(tmp_path_factory.mktemp("tan") / "prep")


def _config(prepared, out, name: str) -> dict:
    return {"out": str(out), "data": {"prepared": str(prepared)}, "split": {"protocol": "within"}, "model": {"name": name},
            "trainer": {"progress_bar": False}}


def test_train_ridge_hrf_on_tangent_data_is_the_benchmark_reference(tangent_dir, tiny_prepared, tmp_path):
    """`train` fits ridge_hrf on tangent data; its predictions on the test windows equal those of the reference that
    benchmark/evaluate fit on the band-power view of the same volumes, and of ridge_hrf trained on a band-power preparation."""
    from eeg2fmri.datasets import load_prepared
    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.datasets.windows import run_windows
    from eeg2fmri.evaluation.protocol import _OnView, reference_model
    from eeg2fmri.models import load_model
    from eeg2fmri.training import fit_model
    from eeg2fmri.workflows.train import train

    res = train(_config(tangent_dir, tmp_path / "run", "ridge_hrf"))
    assert res.fit.spec.input_kind == "tangent" and res.metrics["test"]["n"] == res.metrics["split"]["n_test"] > 0
    assert np.isfinite(res.metrics["validation"]["median_r"])
    meta = json.loads((tmp_path / "run" / "model" / "model.json").read_text())
    assert meta["spec"]["input_kind"] == "tangent" and meta["prepare"]["representation"] == "tangent"
    loaded = load_model(tmp_path / "run" / "model").model

    ds = load_prepared(tangent_dir)
    split = make_split(ds, "within")
    ref, reason = reference_model(ds, split, split_targets(ds, split))  # as benchmark fits it: on the band-power view
    assert reason is None and isinstance(ref, _OnView)
    n_bands = len(ds.config.bands)
    for i, vols in split.selections["test"].items():
        x = run_windows(ds.runs[i], vols, split.n_frames, split.lag)
        got = res.fit.model.predict(x)
        np.testing.assert_array_equal(got, ref.predict(ref.windows(i, vols)))
        np.testing.assert_array_equal(loaded.predict(x), got)
        np.testing.assert_array_equal(ref.windows(i, vols), x[:, :, :n_bands])  # the view is the band-power block

    # the same model as ridge_hrf on a band-power preparation of the same recordings
    sp_bp = make_split(tiny_prepared, "within")
    bp = fit_model(tiny_prepared, sp_bp, "ridge_hrf", targets=split_targets(tiny_prepared, sp_bp)).model
    assert bp.hrf_ == res.fit.model.hrf_ and bp.alpha_ == res.fit.model.alpha_
    np.testing.assert_array_equal(bp.coef_, res.fit.model.coef_)


def test_ridge_hrf_trained_on_tangent_data_evaluates_and_synthesises(tangent_dir, tiny_bids, tmp_path):
    """The run folder evaluates on its tangent data (the trained model is the reference) and synthesises from EEG."""
    import nibabel as nib

    from eeg2fmri.synthesis import synthesize
    from eeg2fmri.workflows.evaluate import evaluate_run
    from eeg2fmri.workflows.train import train

    run = train(_config(tangent_dir, tmp_path / "run", "ridge_hrf"))
    _, results = evaluate_run(tmp_path / "run", out=tmp_path / "ev", n_boot=0, progress_bar=False)
    assert results["models"] == ["ridge_hrf", "physiology only", "mean"] and results["reference"]["available"]
    assert results["group"]["models"]["ridge_hrf"]["median_r"] == pytest.approx(run.metrics["test"]["median_r"], abs=1e-6)
    eeg = tiny_bids / "sub-01/eeg/sub-01_task-rest_run-1_eeg.vhdr"
    out = synthesize(eeg, tmp_path / "run" / "model", tmp_path / "syn.nii.gz", progress_bar=False)
    data = np.asarray(nib.load(out).dataobj)
    assert data.ndim == 4 and data.shape[3] > 0 and np.isfinite(data).all()
    assert json.loads((tmp_path / "syn.json").read_text())["Representation"] == "tangent"


def test_mean_trains_on_tangent_data_and_closed_form_models_read_tangent(tangent_dir, tmp_path):
    """`mean` trains on tangent data too; both closed-form models list tangent among their inputs, so that
    `benchmark PREPARED_TANGENT --models ridge_hrf mean` does not refuse them."""
    from eeg2fmri.commands.benchmark import _groups
    from eeg2fmri.models.base import model_input_kinds
    from eeg2fmri.workflows.train import train

    res = train(_config(tangent_dir, tmp_path / "m", "mean"))
    assert res.fit.spec.input_kind == "tangent" and set(map(str, res.fit.model.means_)) == {"01", "02"}
    assert model_input_kinds("ridge_hrf")[0] == model_input_kinds("mean")[0] == "bandpower"  # a BIDS folder: prepared as band power
    assert "tangent" in model_input_kinds("ridge_hrf") and "tangent" in model_input_kinds("mean")
    groups, refused = _groups(["ridge_hrf", "mean"], "tangent", None)
    assert not refused and [(g["representation"], g["models"]) for g in groups] == [("tangent", ["ridge_hrf", "mean"])]


@pytest.mark.parametrize("kind, shape", [("stft", (3, 5, 4)), ("raw", (3, 40))])
def test_ridge_hrf_refusal_names_the_representations_it_reads(kind, shape):
    from eeg2fmri.models import DataSpec
    from eeg2fmri.models.base import build_model

    spec = DataSpec(input_kind=kind, input_shape=shape, output_shape=(7,), sfreq=100.0, tr=2.0, frame_rate=0.5)
    with pytest.raises(Eeg2fmriInputError, match=rf"ridge_hrf: expected input_kind 'bandpower' .* or 'tangent' .*, got '{kind}'; "
                                                 r"prepare the data with representation='bandpower' or 'tangent'"):
        build_model("ridge_hrf", spec)


def test_ridge_hrf_refuses_tangent_windows_of_another_shape():
    from eeg2fmri.models import DataSpec
    from eeg2fmri.models.base import build_model

    with pytest.raises(Eeg2fmriInputError, match=r"tangent windows: expected axis 1 of size n_bands \* \(1 \+ n_chans\) = k \* 4, got 10"):
        build_model("ridge_hrf", DataSpec(input_kind="tangent", input_shape=(3, 10, 4), output_shape=(7,), sfreq=100.0, tr=2.0))
    model = build_model("ridge_hrf", DataSpec(input_kind="tangent", input_shape=(3, 8, 4), output_shape=(7,), sfreq=100.0, tr=2.0, frame_rate=0.5))
    assert model.n_bands == 2
    with pytest.raises(Eeg2fmriInputError, match=r"ridge_hrf: expected windows of shape \(n, 3, 8, 4\), got \(5, 3, 2, 4\); pass tangent windows"):
        model.fit(np.zeros((5, 3, 2, 4)), np.zeros((5, 7)))


def test_cross_dataset_evaluation_of_a_tangent_model_fits_the_reference(tangent_dir, tmp_path):
    """`evaluate --protocol cross --train-data` fits the reference ridge_hrf on tangent training data too (it was skipped);
    a trained subject-mean model evaluates with its report figures (the time-course figure, which ranks voxels by the
    model's r, crashed on a model that has none)."""
    from eeg2fmri.datasets import load_prepared
    from eeg2fmri.evaluation.crossdata import restrict_dataset
    from eeg2fmri.workflows.evaluate import evaluate_run
    from eeg2fmri.workflows.train import train

    train(_config(tangent_dir, tmp_path / "run", "mean"))
    ds = load_prepared(tangent_dir)
    names = ds.ch_names
    other = restrict_dataset(ds, names[::-1], names=[c.upper() for c in names[::-1]])
    other.provenance = {"bids_root": other.provenance["bids_root"]}  # "another" dataset: no shared input checksums
    _, res = evaluate_run(tmp_path / "run", data=other.save(tmp_path / "other"), protocol="cross", train_data=tangent_dir, n_boot=0,
                          progress_bar=False, out=tmp_path / "ev")
    assert sorted(res["models"]) == ["mean", "ridge_hrf"] and res["cross_dataset"]["train_data"] == str(tangent_dir.absolute())
    assert np.isfinite(res["group"]["models"]["ridge_hrf"]["median_r"])
    assert (tmp_path / "ev" / "r_map_ridge_hrf.nii.gz").exists() and not (tmp_path / "ev" / "r_map_mean.nii.gz").exists()
