"""Models of your own (``register_model``) that get something wrong: refused early, by name, with the fix.

Each model here is registered under a ``_``-prefixed name (``tests/test_models_all.py`` skips those) and
misbehaves only while its switch in ``BROKEN`` is on, so that the same config can then train it.
"""

from __future__ import annotations

import json
import logging
import math
import re

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from eeg2fmri.models.base import register_model
from eeg2fmri.utils.validation import Eeg2fmriInputError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: Switches of the misbehaving models (on while a test wants them broken).
BROKEN = {"nan": False, "shape": False}


def _n_in(spec) -> int:
    return int(np.prod(spec.input_shape))


@register_model("_ext_linear")
class ExtLinear(nn.Module):
    """A linear map from band-power windows; NaN predictions while ``BROKEN["nan"]`` or ``poison``, one output short while
    ``BROKEN["shape"]`` (training batches only with ``hparams train_only_shape``)."""

    input_kinds = ("bandpower",)

    def __init__(self, spec, *, hidden: int = 4, train_only_shape: bool = False):
        super().__init__()
        self.spec = spec
        self.train_only_shape = train_only_shape
        self.poison = False
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(_n_in(spec), hidden), nn.Linear(hidden, spec.n_outputs))

    def forward(self, x, subject=None):
        out = self.net(x)
        if BROKEN["nan"] or self.poison:
            out = out * torch.tensor(float("nan"))
        if BROKEN["shape"] and (self.training or not self.train_only_shape):
            out = out[:, :-1]
        return out


@register_model("_ext_stft_only")
class ExtStftOnly(nn.Module):
    """Reads STFT windows only (its constructor would build on any input)."""

    input_kinds = ("stft",)

    def __init__(self, spec):
        super().__init__()
        self.lin = nn.Linear(_n_in(spec), spec.n_outputs)

    def forward(self, x, subject=None):
        return self.lin(x.flatten(1))


@register_model("_ext_flat")
class ExtFlat(nn.Module):
    """Forgot the voxel axis: returns ``(batch,)``."""

    input_kinds = ("bandpower",)

    def __init__(self, spec):
        super().__init__()
        self.lin = nn.Linear(_n_in(spec), 1)

    def forward(self, x, subject=None):
        return self.lin(x.flatten(1))[:, 0]


@register_model("_ext_no_params")
class ExtNoParams(nn.Module):
    """Predicts zeros: nothing to train."""

    input_kinds = ("bandpower",)

    def __init__(self, spec):
        super().__init__()
        self.n = spec.n_outputs

    def forward(self, x, subject=None):
        return torch.zeros(x.shape[0], self.n)


@register_model("_ext_recommended")
class ExtRecommended(nn.Module):
    """A torch model on band power with a recommended training config of its own (as benchmark trains it)."""

    input_kinds = ("bandpower",)
    recommended_train_config = {"optimizer": {"lr": 1e-2, "batch_size": 64, "max_epochs": 2, "patience": None}}

    def __init__(self, spec):
        super().__init__()
        self.lin = nn.Linear(_n_in(spec), spec.n_outputs)

    def forward(self, x, subject=None):
        return self.lin(x.flatten(1))


@pytest.fixture
def broken():
    """Turn a model's switch on for the test; everything off afterwards."""
    yield BROKEN
    for k in BROKEN:
        BROKEN[k] = False


def _cfg(**opt):
    return {"seed": 0, "optimizer": {"lr": 1e-2, "batch_size": 16, "max_epochs": 2, "patience": None, **opt},
            "trainer": {"log": ["csv"], "accelerator": "cpu", "progress_bar": False}}


def _run_cfg(prepared_dir, out, name="_ext_linear", **opt):
    return {"out": str(out), "data": {"prepared": str(prepared_dir)}, "model": {"name": name}, **_cfg(**opt)}


# ----------------------------------------------------------------------------- 1. non-finite predictions
def test_nan_predictions_fail_the_fit_naming_model_epoch_and_fix(tiny_prepared, split, tmp_path, broken):
    from eeg2fmri.training import fit_model

    broken["nan"] = True
    msg = (r"model '_ext_linear': expected finite predictions on the validation windows, got NaN/inf in every epoch \(epochs 0-1; "
           r"epoch 1: val_mse nan, val_loss nan\); check the model's forward .* or lower the learning rate \(optimizer\.lr, now 0\.01\)")
    with pytest.raises(Eeg2fmriInputError, match=msg):  # best weights kept in memory
        fit_model(tiny_prepared, split, "_ext_linear", train_config=_cfg())
    with pytest.raises(Eeg2fmriInputError, match=r"got NaN/inf in every epoch \(epoch 0: val_mse nan"):  # early stopping on, checkpoints on disk
        fit_model(tiny_prepared, split, "_ext_linear", train_config=_cfg(max_epochs=1, patience=2), out_dir=tmp_path / "run")
    # the checkpoints of NaN weights were this fit's own: removed (nothing to resume), the logs stay
    assert not (tmp_path / "run" / "checkpoints").exists() and (tmp_path / "run" / "logs" / "version_0").is_dir()
    broken["nan"] = False
    res = fit_model(tiny_prepared, split, "_ext_linear", train_config=_cfg(max_epochs=1), out_dir=tmp_path / "run")  # starts again there
    assert math.isfinite(res.info["history"][0]["val_mse"])


class _PoisonAfterFirstEpoch(pl.Callback):
    def on_train_epoch_end(self, trainer, pl_module):
        pl_module.model.poison = True


@pytest.mark.parametrize("on_disk", [False, True])
def test_a_run_that_diverges_after_finite_epochs_keeps_its_best_finite_epoch(tiny_prepared, split, tmp_path, on_disk):
    """Early stopping's check_finite stops a run whose validation turns NaN; the best (finite) epoch is kept, no error."""
    from eeg2fmri.training.trainer import fit_torch

    for patience in (3, None):
        res = fit_torch(tiny_prepared, split, "_ext_linear", train_config=_cfg(max_epochs=4, patience=patience), callbacks=[_PoisonAfterFirstEpoch()],
                        out_dir=tmp_path / f"p{patience}" if on_disk else None)
        hist = res.info["history"]
        assert math.isfinite(hist[0]["val_mse"]) and not math.isfinite(hist[1]["val_mse"])
        assert res.info["best_epoch"] == 0 and len(hist) == (2 if patience else 4)  # check_finite stops at the first NaN epoch
        assert res.info["stopped_early"] == bool(patience)
        res.model.module.poison = False
        x = np.zeros((2, *res.spec.input_shape), np.float32)
        assert np.isfinite(res.model.predict(x)).all()


def test_chosen_epoch_with_non_finite_predictions_is_refused():
    """val_r can stay finite (a mean over voxels ignoring NaN) while some predictions are NaN: val_mse says so."""
    from eeg2fmri.training.trainer import _check_finite

    hist = [{"epoch": 0, "val_mse": 1.0, "val_loss": 1.0, "val_r": 0.1}, {"epoch": 1, "val_mse": math.nan, "val_loss": math.nan, "val_r": 0.3}]
    _check_finite("m", hist, 0, "val_r", 1e-3)
    with pytest.raises(Eeg2fmriInputError, match=r"model 'm': expected finite predictions on the validation windows from the chosen checkpoint "
                                                 r"\(epoch 1, chosen on val_r\), got NaN/inf \(val_mse nan, val_loss nan, val_r 0\.3\); check the "
                                                 r"model's forward .* lower the learning rate \(optimizer\.lr, now 0\.001\)"):
        _check_finite("m", hist, 1, "val_r", 1e-3)
    _check_finite("m", [], None, "val_loss", 1e-3)


def test_train_command_fails_on_nan_predictions(prepared_dir, tmp_path, capsys, broken):
    import yaml

    from eeg2fmri.cli import main

    cfg = tmp_path / "nan.yaml"
    cfg.write_text(yaml.safe_dump(_run_cfg(prepared_dir, tmp_path / "run", max_epochs=1)))
    broken["nan"] = True
    assert main(["train", str(cfg), "-q"]) == 2
    err = capsys.readouterr().err
    assert "model '_ext_linear': expected finite predictions on the validation windows, got NaN/inf in every epoch (epoch 0" in err
    assert not (tmp_path / "run" / "model").exists() and not (tmp_path / "run" / "metrics.json").exists()


# ----------------------------------------------------------------------------- 2. input kinds
def test_fit_refuses_a_representation_the_model_does_not_read(tiny_prepared, split, prepared_dir, tmp_path):
    from eeg2fmri.training import fit_model
    from eeg2fmri.training.fit import check_input_kind
    from eeg2fmri.training.trainer import fit_torch
    from eeg2fmri.workflows.train import train

    msg = (r"model '_ext_stft_only' reads stft windows \(its input_kinds\), the dataset holds bandpower; prepare the data with "
           r"representation=stft \(eeg2fmri prepare ROOT --out DIR --representation stft")
    with pytest.raises(Eeg2fmriInputError, match=msg):
        fit_model(tiny_prepared, split, "_ext_stft_only", train_config=_cfg())
    with pytest.raises(Eeg2fmriInputError, match=msg):
        fit_torch(tiny_prepared, split, "_ext_stft_only", train_config=_cfg())
    with pytest.raises(Eeg2fmriInputError, match=msg):  # refused before the output folder is made
        train(_run_cfg(prepared_dir, tmp_path / "run", name="_ext_stft_only"))
    assert not (tmp_path / "run").exists()
    # the built-in models' lists: the flagship reads tangent, band power or raw EEG; ridge_hrf band power or tangent; mean anything
    check_input_kind("eeg2fmri_net", "raw")
    check_input_kind("ridge_hrf", "tangent")
    for kind in ("bandpower", "stft", "raw", "tangent"):
        check_input_kind("mean", kind)
    with pytest.raises(Eeg2fmriInputError, match=r"model 'ridge_hrf' reads bandpower or tangent windows \(its input_kinds\), the dataset holds stft"):
        check_input_kind("ridge_hrf", "stft")
    with pytest.raises(Eeg2fmriInputError, match=r"model 'calhas2022' reads stft windows .* the dataset holds bandpower"):
        check_input_kind("calhas2022", "bandpower")
    # a model without input_kinds accepts any representation (tests/test_training.py's model has none)
    from tests.test_training import MODEL

    check_input_kind(MODEL, "stft")
    fit_model(tiny_prepared, split, MODEL, {"hidden": 4}, train_config=_cfg(max_epochs=1))


# ----------------------------------------------------------------------------- 3. output shape, parameters
def test_wrong_output_shape_and_no_parameters_are_refused_by_name(tiny_prepared, split, broken):
    from eeg2fmri.training import fit_model

    n = int(tiny_prepared.mask.sum())
    n_val = min(64, split.n_samples("val"))  # the first validation batch
    broken["shape"] = True
    with pytest.raises(Eeg2fmriInputError, match=rf"model '_ext_linear': expected predictions of shape \(batch, n_outputs\) = \({n_val}, {n}\) "
                                                 rf"from its DataSpec, got \({n_val}, {n - 1}\) on its first validation batch of {n_val} windows; "
                                                 r"make forward\(x, subject=None\) return one row of spec\.n_outputs"):
        fit_model(tiny_prepared, split, "_ext_linear", train_config=_cfg(batch_size=64))
    # wrong only in training mode: the first training batch is checked too
    with pytest.raises(Eeg2fmriInputError, match=rf"expected predictions of shape \(batch, n_outputs\) = \(16, {n}\) from its DataSpec, got "
                                                 rf"\(16, {n - 1}\) on its first training batch of 16 windows"):
        fit_model(tiny_prepared, split, "_ext_linear", {"train_only_shape": True}, train_config=_cfg())
    with pytest.raises(Eeg2fmriInputError, match=rf"model '_ext_flat': expected predictions of shape \(batch, n_outputs\) = \(\d+, {n}\) .*, "
                                                 r"got \(\d+,\) on its first validation batch"):
        fit_model(tiny_prepared, split, "_ext_flat", train_config=_cfg())
    with pytest.raises(Eeg2fmriInputError, match=r"model '_ext_no_params' has no trainable parameters: expected at least one torch\.nn\.Parameter"):
        fit_model(tiny_prepared, split, "_ext_no_params", train_config=_cfg())


def test_output_shape_check_accepts_volumes_and_runs_once_per_stage():
    from eeg2fmri.training.losses import WeightedLoss
    from eeg2fmri.training.trainer import LitModel

    lit = LitModel(nn.Linear(2, 3), WeightedLoss({"mse": 1.0}), {}, 0, "vol", output_shape=(2, 3, 4))
    lit._check_output(torch.zeros(5, 24), 5, "training")  # (batch, n_outputs)
    lit._check_output(torch.zeros(5, 2, 3, 4), 5, "validation")  # (batch, *output_shape)
    lit._check_output(torch.zeros(5, 7), 5, "validation")  # checked already: no cost after the first batch
    lit = LitModel(nn.Linear(2, 3), WeightedLoss({"mse": 1.0}), {}, 0, "vol", output_shape=(2, 3, 4))
    with pytest.raises(Eeg2fmriInputError, match=r"expected predictions of shape \(batch, n_outputs\) = \(5, 24\) or \(batch, \*output_shape\) = "
                                                 r"\(5, 2, 3, 4\) from its DataSpec, got \(5, 4, 3, 2\)"):
        lit._check_output(torch.zeros(5, 4, 3, 2), 5, "training")
    with pytest.raises(Eeg2fmriInputError, match=r"model 'vol': expected forward\(x, subject=None\) to return a tensor, got tuple"):
        lit._check_output((torch.zeros(5, 24),), 5, "validation")


# ----------------------------------------------------------------------------- 4. benchmark: one group per representation
def test_benchmark_groups_are_representations_with_per_model_configs():
    from eeg2fmri.commands.benchmark import _groups
    from eeg2fmri.models import get_model_class

    groups, refused = _groups(["_ext_recommended", "ridge_hrf", "eeg2fmri_net", "mean"], "bandpower", None)
    assert not refused and len(groups) == 1
    g = groups[0]
    assert g["representation"] == "bandpower" and g["models"] == ["_ext_recommended", "ridge_hrf", "eeg2fmri_net", "mean"]
    assert g["train_config"] is None
    assert g["model_train_configs"] == {"_ext_recommended": ExtRecommended.recommended_train_config,
                                        "eeg2fmri_net": get_model_class("eeg2fmri_net").recommended_train_config}
    # a --train-config is merged onto each torch model's recommended config (key by key, as `train` does)
    cfg = {"optimizer": {"max_epochs": 1}}
    groups, _ = _groups(["_ext_recommended", "ridge_hrf"], "bandpower", cfg)
    rec = ExtRecommended.recommended_train_config
    assert len(groups) == 1 and groups[0]["train_config"] is None
    assert groups[0]["model_train_configs"] == {"_ext_recommended": {**rec, "optimizer": {**rec["optimizer"], "max_epochs": 1}}}


def test_benchmark_cli_lists_the_reference_once_next_to_a_model_with_its_own_config(prepared_dir, tmp_path, capsys, monkeypatch):
    import eeg2fmri.training as training
    from eeg2fmri.cli import main

    seen, epochs = {}, {}
    real = training.fit_model

    def spy(ds, split, name, *args, train_config=None, **kw):
        seen.setdefault(name, []).append(train_config)
        res = real(ds, split, name, *args, train_config=train_config, **kw)
        epochs[name] = res.info.get("epochs")
        return res

    monkeypatch.setattr(training, "fit_model", spy)
    out = tmp_path / "bench"
    assert main(["benchmark", str(prepared_dir), "--models", "_ext_recommended", "ridge_hrf", "--out", str(out), "--n-boot", "0", "-q",
                 "--no-report", "--device", "cpu"]) == 0
    capsys.readouterr()
    board = json.loads((out / "leaderboard.json").read_text())
    names = [r["name"] for r in board["leaderboard"]]
    assert sorted(names) == sorted(["_ext_recommended", "ridge_hrf", "mean", "time-shifted null (ridge_hrf)", "physiology only"])  # each once, no "[bandpower]"
    assert len(board["groups"]) == 1 and board["groups"][0]["models"] == ["_ext_recommended", "ridge_hrf"]
    assert len(seen["ridge_hrf"]) == len(seen["mean"]) == 1  # fitted once (not once more for a second band-power group)
    own = seen["_ext_recommended"][0]
    assert own["optimizer"]["max_epochs"] == 2 and own["optimizer"]["lr"] == 1e-2 and own["trainer"]["accelerator"] == "cpu"
    assert epochs["_ext_recommended"] == 2


def test_run_benchmark_model_train_configs_errors(tiny_prepared):
    from eeg2fmri.workflows.benchmark import run_benchmark

    with pytest.raises(Eeg2fmriInputError, match=r"model_train_configs\['_ext_recommended'\]: expected no split section \(every model of a "
                                                 r"benchmark is scored on the same folds\)"):
        run_benchmark(tiny_prepared, "within", ["_ext_recommended"], model_train_configs={"_ext_recommended": {"split": {"n_frames": 4}}})
    with pytest.raises(Eeg2fmriInputError, match=r"model_train_configs\['_ext_linear'\]: expected a benchmarked model"):
        run_benchmark(tiny_prepared, "within", ["ridge_hrf"], model_train_configs={"_ext_linear": {}})


# ----------------------------------------------------------------------------- 5. a run that failed during training starts again
@pytest.mark.parametrize("failure", ["shape", "nan"])
def test_a_run_that_failed_before_its_first_checkpoint_starts_over_in_place(prepared_dir, tmp_path, capsys, caplog, broken, failure):
    """The folder holds config.yaml and logs/version_0 but no checkpoint: nothing to resume, so it starts again in place
    (with a corrected config too), no --overwrite needed."""
    import yaml

    from eeg2fmri.cli import main

    run = tmp_path / "run"
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump(_run_cfg(prepared_dir, run, max_epochs=1)))
    broken[failure] = True
    assert main(["train", str(cfg), "-q"]) == 2
    capsys.readouterr()
    assert {p.name for p in run.iterdir()} == {"config.yaml", "logs"} and (run / "logs" / "version_0").is_dir()
    # the model fixed and the config changed too (the usual next step): it starts over in place, saying what changed
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(_run_cfg(prepared_dir, run, max_epochs=2)))
    broken[failure] = False
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        assert main(["train", str(other), "-q"]) == 0
    assert "stopped during training before its first checkpoint" in caplog.text and "['optimizer.max_epochs']" in caplog.text
    capsys.readouterr()
    assert (run / "metrics.json").exists() and (run / "model").is_dir() and (run / "logs" / "version_1").is_dir()
    assert yaml.safe_load((run / "config.yaml").read_text())["optimizer"]["max_epochs"] == 2
    # a finished run (checkpoints, metrics) still needs --resume or --overwrite
    assert main(["train", str(cfg), "-q"]) == 2
    assert "output folder exists and is not empty; resume it (--resume)" in capsys.readouterr().err


def test_a_failed_run_folder_with_files_of_the_user_is_not_restarted(prepared_dir, tmp_path, capsys, broken):
    import yaml

    from eeg2fmri.cli import main

    run = tmp_path / "run"
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump(_run_cfg(prepared_dir, run, max_epochs=1)))
    broken["shape"] = True
    assert main(["train", str(cfg), "-q"]) == 2
    broken["shape"] = False
    (run / "notes.txt").write_text("mine")
    (run / "logs" / "mine.csv").write_text("1")
    for extra in ("notes.txt", "logs/mine.csv"):
        assert main(["train", str(cfg), "-q"]) == 2
        assert "output folder exists and is not empty; resume it (--resume), choose another --out, or pass --overwrite" in capsys.readouterr().err
        (run / extra).unlink()
    assert main(["train", str(cfg), "-q"]) == 0


# ----------------------------------------------------------------------------- 6. tune: hyperparameter names checked first
def test_tune_refuses_a_misspelt_hyperparameter_before_any_trial(prepared_dir, tmp_path):
    import yaml

    from eeg2fmri.workflows.tune import tune

    base = _run_cfg(prepared_dir, tmp_path / "search", max_epochs=1)
    path = tmp_path / "tune.yaml"
    for space, hparams, key, got, close in (
        ({"hiden": {"low": 2, "high": 8}}, {}, "tune.hiden", "hiden", "hidden"),
        ({"model.hparams.hiddn": {"choices": [2, 4]}}, {}, "tune.model.hparams.hiddn", "hiddn", "hidden"),
        ({"lrr": {"low": 1e-3, "high": 1e-2}}, {}, "tune.lrr", "lrr", "lr"),
        ({"lr": {"low": 1e-3, "high": 1e-2}}, {"hiden": 4}, "model.hparams.hiden", "hiden", "hidden"),
    ):
        path.write_text(yaml.safe_dump({**base, "model": {"name": "_ext_linear", "hparams": hparams}, "tune": space}))
        with pytest.raises(Eeg2fmriInputError, match=rf"{re.escape(path.name)}: {re.escape(key)}: expected a hyperparameter of model '_ext_linear' "
                                                     rf"\(hidden, train_only_shape\).*, got '{got}' \(did you mean '{close}'\?\); fix the name "
                                                     r"\(no trial was run\)"):
            tune(path, trials=3)
        assert not (tmp_path / "search").exists()
    # one setting searched under two keys (docs audit: both recorded, one used)
    path.write_text(yaml.safe_dump({**base, "model": {"name": "_ext_linear", "hparams": {}},
                                    "tune": {"hidden": {"choices": [2, 4]}, "model.hparams.hidden": {"low": 2, "high": 8}}}))
    with pytest.raises(Eeg2fmriInputError, match=r"tune: 'hidden' and 'model.hparams.hidden' both search model\.hparams\.hidden; expected each "
                                                 r"setting once .* keep one of the two keys \(no trial was run\)"):
        tune(path, trials=3)
    assert not (tmp_path / "search").exists()
    # train refuses it the same way, before its output folder exists (user test 11: it named neither the file nor the
    # key, and left a folder holding config.yaml)
    from eeg2fmri.workflows.train import train

    path.write_text(yaml.safe_dump({**base, "model": {"name": "_ext_linear", "hparams": {"hiden": 4}}}))
    with pytest.raises(Eeg2fmriInputError, match=rf"{re.escape(path.name)}: model\.hparams\.hiden: expected a hyperparameter of model "
                                                 r"'_ext_linear' .*\(did you mean 'hidden'\?\); fix the name \(nothing was written\)"):
        train(path)
    assert not (tmp_path / "search").exists()
