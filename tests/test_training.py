"""Training: config validation, losses, Lightning fit/resume/early stopping, save/load, compatibility, CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from eeg2fmri.models.base import register_model
from eeg2fmri.utils.validation import Eeg2fmriInputError

MODEL = "_test_bandpower_mlp"


@register_model(MODEL)
class BandpowerMLP(nn.Module):
    """Tiny torch model for band-power windows (the prepared fixture's representation)."""

    def __init__(self, spec, hidden: int = 8, dropout: float = 0.1, aux: bool = False):
        super().__init__()
        if hidden < 1:
            raise Eeg2fmriInputError(f"{MODEL}: expected hidden >= 1, got {hidden}.")
        self.spec = spec
        self.aux = aux
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(spec.input_shape)), hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, spec.n_outputs))

    def forward(self, x, subject=None):
        return self.net(x).reshape(len(x), *self.spec.output_shape)

    def training_terms(self, x, y, subject=None):
        pred = self.forward(x, subject)
        terms = {"pred": pred}
        if self.aux:
            terms["log_scale"] = torch.zeros_like(pred)
            terms["kl"] = sum(p.square().sum() for p in self.parameters())
        return terms


BIAS = "_test_bias_only"


@register_model(BIAS)
class BiasOnly(nn.Module):
    """Predicts one learned value per output, whatever the input."""

    def __init__(self, spec):
        super().__init__()
        self.spec = spec
        self.bias = nn.Parameter(torch.zeros(spec.n_outputs))

    def forward(self, x, subject=None):
        return self.bias.expand(len(x), -1).reshape(len(x), *self.spec.output_shape)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _cfg(**opt):
    return {"seed": 0, "optimizer": {"lr": 1e-2, "batch_size": 8, "max_epochs": 4, "patience": None, **opt}, "trainer": {"log": ["csv"], "accelerator": "cpu"}}


class _Forbidden(dict):
    """A mapping that fails on any use: stands for the test selection."""

    def _no(self, *args, **kwargs):
        raise AssertionError("the test split was read during training")

    __getitem__ = __iter__ = __len__ = __contains__ = __bool__ = keys = items = values = get = _no


# ----------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        ({"optimizer": {"lr": -1}}, r"optimizer\.lr: expected a number > 0, found -1"),
        ({"optimizer": {"lrate": 0.1}}, r"optimizer\.lrate: expected one of the keys .*'lr'"),
        ({"optimizer": {"precision": "64"}}, r"optimizer\.precision: expected one of \['32', 'bf16-mixed', '16-mixed', 'auto'\], found '64'"),
        ({"optimizer": {"batch_size": 2.5}}, r"optimizer\.batch_size: expected an integer >= 1, found 2\.5"),
        ({"model": {"name": "no_such_model"}}, r"model\.name: expected a registered model .*found 'no_such_model'; list them with `eeg2fmri models`"),
        ({"model": {"name": "eeg2fmri-net"}}, r"model\.name: expected a registered model .*found 'eeg2fmri-net'; did you mean 'eeg2fmri_net'\?"),
        ({"model": {"hparams": {}}}, r"model\.name: expected a registered model name, found None"),
        ({"loss": {"mse": 0.0}}, r"loss: expected a weight > 0 for at least one of"),
        ({"loss": {"mse": -1.0}}, r"loss\.mse: expected a number >= 0, found -1\.0"),
        ({"loss": {"ssmi": 1.0}}, r"loss\.ssmi: expected one of the keys"),
        ({"split": {"protocol": "random"}}, r"split\.protocol: expected one of \['within', 'loso', 'kfold'\], found 'random'"),
        ({"split": {"gapp": 3}}, r"split\.gapp: expected protocol or an option of make_split: .*did you mean .gap."),
        ({"data": {"prepared": "a", "bids": "b"}}, r"data: expected one of data\.prepared or data\.bids, found 'both'"),
        ({"data": {"prepared": "a", "prepare": {"l_freq": 1.0}}}, r"data\.prepare: expected options only together with data\.bids"),
        ({"trainer": {"devices": 0}}, r"trainer\.devices: expected an integer >= 1, \"auto\", or a list of distinct GPU indices >= 0 such as \[1\], found 0"),
        ({"trainer": {"devices": [0, 0]}}, r"trainer\.devices: expected an integer >= 1, \"auto\", or a list of distinct GPU indices"),
        ({"trainer": {"devices": []}}, r"trainer\.devices: expected an integer >= 1, \"auto\", or a list"),
        ({"trainer": {"log": ["wandb"]}}, r"trainer\.log: expected \"auto\" or a list from \['csv', 'tensorboard'\]"),
        ({"tune": {"lr": {"low": 1e-2, "high": 1e-4}}}, r"tune\.lr: expected low < high"),
        ({"tune": {"lr": {"low": 0.0, "high": 1.0, "log": True}}}, r"tune\.lr\.low: expected a number > 0 with log: true"),
        ({"tune": {"trainer.devices": {"choices": [1, 2]}}}, r"tune\.trainer\.devices: expected a parameter of optimizer, loss, split or model\.hparams"),
        ({"tune": {"optimizer.lrr": {"choices": [1, 2]}}}, r"tune\.optimizer\.lrr: expected a key of optimizer: .*found 'lrr'"),
        ({"tune": {"lr": {"min": 1, "max": 2}}}, r"tune\.lr: expected \{low: \.\., high: \.\., log: false, step: null\} or \{choices: \[\.\.\.\]\}"),
        ({"seed": -3}, r"seed: expected an integer >= 0, found -3"),
        ({"sead": 1}, r"sead: expected one of the top-level sections"),
    ],
)
def test_config_errors_name_key_expected_found(cfg, match):
    from eeg2fmri.training.config import resolve_config

    full = {"model": {"name": MODEL}, **cfg}
    with pytest.raises(Eeg2fmriInputError, match=match):
        resolve_config(full, source="run.yaml")


def test_config_file_roundtrip_and_relative_paths(tmp_path):
    from eeg2fmri.training.config import dump_config, load_config

    (tmp_path / "c.toml").write_text(f'out = "runs/a"\n[data]\nprepared = "prep"\n[model]\nname = "{MODEL}"\n[optimizer]\nlr = 1e-3\nprecision = "bf16-mixed"\n')
    cfg = load_config(tmp_path / "c.toml")
    assert cfg["data"]["prepared"] == str(tmp_path / "prep") and cfg["out"] == str(tmp_path / "runs" / "a")
    assert cfg["optimizer"]["precision"] == "bf16-mixed" and cfg["loss"]["mse"] == 1.0 and cfg["trainer"]["devices"] == 1
    (tmp_path / "back.yaml").write_text(dump_config(cfg))
    assert load_config(tmp_path / "back.yaml") == cfg
    (tmp_path / "bad.yaml").write_text(f"model: {{name: {MODEL}}}\noptimizer: {{max_epochs: 0}}\n")
    with pytest.raises(Eeg2fmriInputError, match=r"bad\.yaml: optimizer\.max_epochs: expected an integer >= 1, found 0"):
        load_config(tmp_path / "bad.yaml")


# ----------------------------------------------------------------------------- losses
def test_ssim_padding_equals_numpy_symmetric_pad():
    """The SSIM loss's edge padding is numpy's "symmetric" pad (scipy.ndimage's "reflect"), also wider than the axis."""
    from eeg2fmri.training.losses import _reflect_index

    for n in (1, 2, 3, 7):
        for r in (0, 1, 4, 9):
            x = np.arange(n)
            assert np.array_equal(x[_reflect_index(n, r, torch.device("cpu")).numpy()], np.pad(x, r, mode="symmetric"))


@pytest.mark.parametrize("region", ["edges", "interior", "full"])
def test_ssim3d_loss_equals_skimage(region):
    """1 - ssim3d_loss equals skimage's Gaussian SSIM map averaged over the mask (edges reflected as scipy does), also
    for masks touching the volume's faces."""
    from skimage.metrics import structural_similarity

    from eeg2fmri.training.losses import ssim3d_loss

    rng = np.random.default_rng(4)
    a = rng.standard_normal((13, 14, 12)).cumsum(0).cumsum(1)
    batch = [0.8 * a + 2.0 * rng.standard_normal(a.shape) + 0.5, -0.3 * a + rng.standard_normal(a.shape)]
    mask = np.zeros(a.shape, bool)
    {"edges": lambda: mask.__setitem__((slice(0, 7), slice(3, 12), slice(6, 12)), True),
     "interior": lambda: mask.__setitem__((slice(5, 8), slice(5, 9), slice(5, 7)), True),
     "full": lambda: mask.fill(True)}[region]()
    dr = float(a.max() - a.min())
    expected = np.mean([structural_similarity(a, b, data_range=dr, full=True, gaussian_weights=True, sigma=1.5,
                                              use_sample_covariance=False)[1][mask].mean() for b in batch])
    pred = torch.tensor(np.stack(batch), dtype=torch.float32)
    got = 1.0 - float(ssim3d_loss(pred, torch.tensor(np.stack([a, a]), dtype=torch.float32), torch.tensor(mask), data_range=dr))
    assert got == pytest.approx(expected, abs=2e-6)


def test_losses_hand_computed():
    from eeg2fmri.training.losses import (
        WeightedLoss,
        corr_loss,
        gaussian_nll,
        laplace_nll,
        mae_loss,
        mse_loss,
        ssim3d_loss,
    )

    y = torch.tensor([[1.0, 0.0, 2.0], [3.0, 1.0, 0.0], [5.0, 2.0, 1.0]])
    p = 2 * y + 1  # perfectly correlated with every output
    assert float(corr_loss(p, y)) == pytest.approx(0.0, abs=1e-6)
    assert float(corr_loss(-p, y)) == pytest.approx(2.0, abs=1e-6)
    assert float(mae_loss(p, y)) == pytest.approx(float((y + 1).abs().mean()))
    assert float(mse_loss(p, y)) == pytest.approx(float(((y + 1) ** 2).mean()))
    s = torch.full_like(y, 0.5)
    assert float(laplace_nll(p, s, y)) == pytest.approx(float(((y + 1).abs() * np.exp(-0.5) + 0.5).mean() + np.log(2)), rel=1e-6)
    assert float(gaussian_nll(p, s, y)) == pytest.approx(float((0.5 * (y + 1) ** 2 * np.exp(-1.0) + 0.5).mean() + 0.5 * np.log(2 * np.pi)), rel=1e-6)
    # SSIM: 0 for identical volumes; vectors on a mask equal the same volumes
    mask = torch.zeros(5, 6, 4, dtype=torch.bool)
    mask[1:4, 1:5, 1:3] = True
    g = torch.Generator().manual_seed(0)
    vol = torch.randn(2, 5, 6, 4, generator=g) * mask
    other = torch.randn(2, 5, 6, 4, generator=g) * mask
    assert float(ssim3d_loss(vol, vol, mask)) == pytest.approx(0.0, abs=1e-6)
    assert float(ssim3d_loss(other, vol, mask)) == pytest.approx(float(ssim3d_loss(other[:, mask], vol[:, mask], mask)), rel=1e-6)
    assert 0.5 < float(ssim3d_loss(other, vol, mask)) < 1.5
    wl = WeightedLoss({"mse": 1.0, "corr": 2.0}, None)
    total, parts = wl({"pred": p}, y)
    assert float(total) == pytest.approx(float(parts["mse"] + 2 * parts["corr"]))
    with pytest.raises(Eeg2fmriInputError, match=r"loss\.kl: net returned no 'kl' term \(it returns \['pred'\]\); set loss\.kl: 0"):
        WeightedLoss({"mse": 1.0, "kl": 0.1})({"pred": p}, y, model_name="net")
    with pytest.raises(Eeg2fmriInputError, match=r"loss\.laplace_nll: net returned no 'log_scale'"):
        WeightedLoss({"laplace_nll": 1.0})({"pred": p}, y, model_name="net")


# ----------------------------------------------------------------------------- fitting
def test_fit_model_trains_torch_model_loss_goes_down(tiny_prepared, split):
    from eeg2fmri.training import TorchPredictor, fit_model

    res = fit_model(tiny_prepared, split, MODEL, {"hidden": 16, "aux": True}, train_config=_cfg(max_epochs=6, gradient_clip=1.0, precision="bf16-mixed")
                    | {"loss": {"mse": 1.0, "corr": 0.5, "ssim": 0.1, "laplace_nll": 0.1, "kl": 1e-4}})
    hist = res.info["history"]
    # 2.02 -> 1.71 on the correctly read fixture (the shifted reader gave an easier, scrambled target)
    assert len(hist) == 6 and hist[-1]["train_loss"] < 0.9 * hist[0]["train_loss"]
    assert {"val_loss", "val_mse", "val_r", "val_corr", "val_ssim", "val_kl"} <= set(hist[0])
    assert isinstance(res.model, TorchPredictor)
    x = np.random.default_rng(0).standard_normal((5, *res.spec.input_shape)).astype(np.float32)
    pred = res.model.predict(x)
    assert pred.shape == (5, int(tiny_prepared.mask.sum())) and pred.dtype == np.float32
    with pytest.raises(Eeg2fmriInputError, match=r"expected windows of shape \(n, 16, 5, \d+\) \(bandpower\), got \(5, 3\)"):
        res.model.predict(np.zeros((5, 3)))
    # closed-form models still go through the same entry point
    ridge = fit_model(tiny_prepared, split, "ridge_hrf")
    assert ridge.model.predict(x).shape == pred.shape
    # a penalty at the top of its grid is flagged (user test 20), and only then
    assert ridge.info.get("alpha_at_grid_top", False) == (ridge.info["alpha"] >= max(ridge.model.alphas_))
    top = fit_model(tiny_prepared, split, "ridge_hrf", {"alphas": [1e-3, 1e14], "hrf": "canonical"})
    assert top.info["alpha"] == 1e14 and top.info["alpha_at_grid_top"] is True  # (1e14: every coefficient ~0 wins on this noise)


def test_resume_equals_uninterrupted_and_reruns_reproduce(tiny_prepared, split, tmp_path):
    import pytorch_lightning as pl

    from eeg2fmri.training.trainer import fit_torch

    class Crash(pl.Callback):
        def on_train_epoch_start(self, trainer, module):
            if trainer.current_epoch == 2:
                raise RuntimeError("simulated interruption")

    cfg = _cfg(max_epochs=5, scheduler="cosine", patience=3)
    hp = {"hidden": 8, "dropout": 0.3}
    full = fit_torch(tiny_prepared, split, MODEL, hp, train_config=cfg, out_dir=tmp_path / "a", progress_bar=False)
    with pytest.raises(RuntimeError, match="simulated interruption"):
        fit_torch(tiny_prepared, split, MODEL, hp, train_config=cfg, out_dir=tmp_path / "b", progress_bar=False, callbacks=[Crash()])
    assert (tmp_path / "b" / "checkpoints" / "last.ckpt").exists()
    with pytest.raises(Eeg2fmriInputError, match=r"holds checkpoints of an earlier run; resume it"):
        fit_torch(tiny_prepared, split, MODEL, hp, train_config=cfg, out_dir=tmp_path / "b", progress_bar=False)
    resumed = fit_torch(tiny_prepared, split, MODEL, hp, train_config=cfg, out_dir=tmp_path / "b", progress_bar=False, resume=True)
    again = fit_torch(tiny_prepared, split, MODEL, hp, train_config=cfg, progress_bar=False)
    a, b, c = (r.model.state_dict() for r in (full, resumed, again))
    assert all(torch.equal(a[k], b[k]) and torch.equal(a[k], c[k]) for k in a)
    assert full.info["history"] == resumed.info["history"] == again.info["history"]
    assert len(full.info["history"]) == 5
    # the resumed fit's time counts the interrupted run's epochs too
    assert 0 < resumed.info["seconds_before_resume"] < resumed.fit_seconds
    assert "seconds_before_resume" not in full.info
    with pytest.raises(Eeg2fmriInputError, match=r"expected checkpoints/last\.ckpt to resume from, found none"):
        fit_torch(tiny_prepared, split, MODEL, hp, train_config=cfg, out_dir=tmp_path / "c", resume=True)


def test_training_and_loading_leave_the_callers_global_rng_alone(tiny_prepared, split, tmp_path, monkeypatch):
    """House rule 8: a fit seeds its own streams; the user's random, numpy and torch draws do not change."""
    import os
    import random

    from eeg2fmri.models import load_model, save_model
    from eeg2fmri.training.trainer import fit_torch

    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)
    monkeypatch.delenv("PL_SEED_WORKERS", raising=False)

    def draws():
        return random.random(), np.random.rand(), torch.rand(1).item()  # noqa: NPY002 -- the legacy global stream is what is checked

    def reseed():
        random.seed(123)
        np.random.seed(123)  # noqa: NPY002
        torch.manual_seed(123)

    reseed()
    expected = draws()
    reseed()
    res = fit_torch(tiny_prepared, split, MODEL, {"hidden": 4}, train_config=_cfg(max_epochs=2), progress_bar=False)
    assert draws() == expected
    assert "PL_GLOBAL_SEED" not in os.environ and "PL_SEED_WORKERS" not in os.environ
    # also after a fit that fails
    reseed()
    with pytest.raises(Eeg2fmriInputError, match="resume=True needs out_dir"):
        fit_torch(tiny_prepared, split, MODEL, {"hidden": 4}, train_config=_cfg(max_epochs=2), resume=True)
    assert draws() == expected
    out = save_model(res.model.module, tmp_path / "m", spec=res.spec, name=MODEL, hparams={"hidden": 4}, mask=tiny_prepared.mask,
                     affine=tiny_prepared.affine, window={"n_frames": split.n_frames, "lag": split.lag}, prepare=tiny_prepared.config.to_dict())
    reseed()
    load_model(out)
    assert draws() == expected


def test_early_stopping_and_checkpoint_use_validation_only(tiny_prepared, split):
    from eeg2fmri.datasets import WindowDataset
    from eeg2fmri.training import fit_model
    from eeg2fmri.workflows.train import score_windows

    # training targets +1, validation targets -1: as the bias climbs towards +1 the training loss falls
    # every epoch and the validation loss rises every epoch, so only a validation-driven run stops early
    targets = {"train": {i: np.ones((len(v), int(tiny_prepared.mask.sum())), np.float32) for i, v in split.selections["train"].items()},
               "val": {i: -np.ones((len(v), int(tiny_prepared.mask.sum())), np.float32) for i, v in split.selections["val"].items()},
               "test": _Forbidden()}
    guarded = replace(split, selections={"train": split.selections["train"], "val": split.selections["val"], "test": _Forbidden()})
    res = fit_model(tiny_prepared, guarded, BIAS, {}, targets,
                    train_config={"seed": 0, "optimizer": {"lr": 2e-2, "batch_size": 8, "max_epochs": 20, "patience": 2}, "trainer": {"log": ["csv"], "accelerator": "cpu"}})
    hist = res.info["history"]
    train_loss, val_loss = [h["train_loss"] for h in hist], [h["val_loss"] for h in hist]
    assert np.all(np.diff(train_loss) < 0) and np.all(np.diff(val_loss) > 0)
    assert res.info["stopped_early"] and len(hist) == 3 and res.info["best_epoch"] == 0
    assert res.info["best_score"] == pytest.approx(val_loss[0], rel=1e-5)
    # the returned weights are the best validation epoch's
    wd = WindowDataset(tiny_prepared, selection=split.selections["val"], n_frames=split.n_frames, lag=split.lag, targets=targets["val"])
    assert score_windows(res.model, wd)["mse"] == pytest.approx(val_loss[0], rel=1e-5)
    # with targets computed inside, the test selection is not read either
    fit_model(tiny_prepared, guarded, MODEL, {"hidden": 4}, train_config=_cfg(max_epochs=1))
    assert not res.info["at_epoch_limit"]


def test_a_fit_still_improving_at_max_epochs_says_so(tiny_prepared, split, caplog):
    """Validation targets like the training ones (+1): the validation loss falls every epoch, so the epoch limit, not
    early stopping, ends the fit at its best epoch: recorded (at_epoch_limit) and warned, with the fix."""
    import logging

    from eeg2fmri.training import fit_model

    n_out = int(tiny_prepared.mask.sum())
    targets = {k: {i: np.ones((len(v), n_out), np.float32) for i, v in split.selections[k].items()} for k in ("train", "val")}
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        res = fit_model(tiny_prepared, split, BIAS, {}, {**targets, "test": _Forbidden()},
                        train_config={"seed": 0, "optimizer": {"lr": 2e-2, "batch_size": 8, "max_epochs": 4, "patience": 2},
                                      "trainer": {"accelerator": "cpu"}})
    val_loss = [h["val_loss"] for h in res.info["history"]]
    assert np.all(np.diff(val_loss) < 0) and res.info["best_epoch"] == 3 and not res.info["stopped_early"]
    assert res.info["at_epoch_limit"]
    assert ("had its best epoch among the last when training reached optimizer.max_epochs=4 (best epoch 3 of 4, 0-based): the model may be under-trained; "
            "raise optimizer.max_epochs (train config: optimizer: {max_epochs: 8}") in caplog.text


def test_precision_auto_resolves_to_native_bf16_or_float32(tiny_prepared, split, monkeypatch):
    # "auto": bf16-mixed where the device computes bfloat16 natively, "32" elsewhere; the fit records which
    import eeg2fmri.training.trainer as tr
    from eeg2fmri.training import fit_model

    assert tr.resolve_precision("32", "cpu") == "32" and tr.resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"
    for native, expect in ((True, "bf16-mixed"), (False, "32")):
        monkeypatch.setattr(tr, "native_bf16", lambda accelerator="auto", native=native: native)
        assert tr.resolve_precision("auto", "cpu") == expect
        res = fit_model(tiny_prepared, split, MODEL, {"hidden": 16}, train_config=_cfg(max_epochs=1, precision="auto"))
        assert res.info["precision"] == expect
    monkeypatch.undo()
    # the CPU probe agrees with what the machine's flags say (torch's own probes of oneDNN's bf16 kernels)
    if Path("/proc/cpuinfo").exists():
        cpu_flags = {f for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags") for f in line.split(":", 1)[1].split()}
        assert tr.native_bf16("cpu") == bool({"avx512_bf16", "amx_bf16"} & cpu_flags)


def test_train_config_defaults_are_the_models_recommended_config():
    # `eeg2fmri train` gives a model the settings `benchmark` gives it, unless the config says otherwise
    from eeg2fmri.models.base import get_model_class
    from eeg2fmri.training.config import DEFAULTS, resolve_config

    rec = get_model_class("eeg2fmri_net").recommended_train_config
    cfg = resolve_config({"model": {"name": "eeg2fmri_net"}, "data": {"bids": "b"}})
    assert cfg["optimizer"] == {**DEFAULTS["optimizer"], **rec["optimizer"]} and cfg["optimizer"]["monitor"] == "val_r"
    assert cfg["data"]["prepare"] == {"representation": "tangent"}  # a BIDS root is prepared in the model's preferred input
    # keys the user gives win, one by one; a representation given is kept
    cfg = resolve_config({"model": {"name": "eeg2fmri_net"}, "data": {"bids": "b", "prepare": {"representation": "bandpower"}},
                          "optimizer": {"lr": 0.01, "patience": None}})
    assert cfg["optimizer"]["lr"] == 0.01 and cfg["optimizer"]["patience"] is None and cfg["optimizer"]["max_epochs"] == rec["optimizer"]["max_epochs"]
    assert cfg["data"]["prepare"] == {"representation": "bandpower"}
    # the model's loss terms apply only when the config has no loss section
    cal = get_model_class("calhas2022").recommended_train_config
    cfg = resolve_config({"model": {"name": "calhas2022"}, "data": {"prepared": "p"}})
    assert {k: v for k, v in cfg["loss"].items() if v} == cal["loss"] and cfg["optimizer"]["precision"] == "auto"
    cfg = resolve_config({"model": {"name": "calhas2022"}, "data": {"prepared": "p"}, "loss": {"corr": 1.0}})
    assert {k: v for k, v in cfg["loss"].items() if v} == {"mse": 1.0, "corr": 1.0}
    # a model without a recommended config, and a config without a model (fit_model's train_config), keep the generic defaults
    assert resolve_config({"model": {"name": "ridge_hrf"}, "data": {"prepared": "p"}})["optimizer"] == DEFAULTS["optimizer"]
    assert resolve_config({}, require_model=False)["optimizer"] == DEFAULTS["optimizer"]


def test_train_warns_when_a_model_gets_other_than_its_preferred_input(prepared_dir, tiny_tangent, tmp_path, caplog):
    """The flagship on band-power data trains, with a warning naming its preferred input and how to prepare it."""
    import logging

    from eeg2fmri.workflows.train import train

    cfg = {"out": str(tmp_path / "run"), "data": {"prepared": str(prepared_dir)}, "model": {"name": "eeg2fmri_net", "hparams": {"n_members": 2}},
           "optimizer": {"max_epochs": 1}, "trainer": {"progress_bar": False, "log": ["csv"]}}
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        train(cfg)
    assert "eeg2fmri_net reads 'tangent' windows best" in caplog.text and "--representation tangent" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):  # a closed-form model reads the same numbers from either: no warning
        train({"out": str(tmp_path / "r2"), "data": {"prepared": str(tiny_tangent.save(tmp_path / "tan"))}, "model": {"name": "ridge_hrf"}})
    assert "windows best" not in caplog.text


def test_train_config_names_the_layout_of_a_bids_root(tiny_bids, tmp_path):
    """data.layout / data.layout_options reach prepare (as eeg2fmri prepare --layout); refused next to data.prepared."""
    from eeg2fmri.training.config import resolve_config
    from eeg2fmri.workflows.train import train

    cfg = {"out": str(tmp_path / "run"), "data": {"bids": str(tiny_bids), "layout": "auto", "prepare": {"representation": "bandpower"}},
           "model": {"name": "ridge_hrf"}}
    res = train(cfg)
    assert res.metrics["test"]["n"] > 0 and (tmp_path / "run" / "prepared" / "manifest.json").exists()
    with pytest.raises(Eeg2fmriInputError, match=r"layout 'no_such_layout': expected one of \['bids'"):
        train({**cfg, "out": str(tmp_path / "r2"), "data": {**cfg["data"], "layout": "no_such_layout"}})
    with pytest.raises(Eeg2fmriInputError, match=r"data\.layout: expected 'bids' unless data\.bids is prepared .* found 'auto'"):
        resolve_config({"model": {"name": "ridge_hrf"}, "data": {"prepared": "p", "layout": "auto"}})


def test_published_models_train_in_auto_precision():
    # benchmark's recommended configs of the published models ask for "auto"; the flagship's stays float32
    from eeg2fmri.models.base import get_model_class

    for name in ("calhas2022", "bricman_fc", "bricman_conv", "bricman_transformer", "beira"):
        assert get_model_class(name).recommended_train_config["optimizer"]["precision"] == "auto", name
    assert get_model_class("eeg2fmri_net").recommended_train_config.get("optimizer", {}).get("precision", "32") == "32"


def test_fit_errors(tiny_prepared, split):
    from eeg2fmri.training import fit_model
    from eeg2fmri.training.trainer import fit_torch

    no_val = replace(split, selections={**split.selections, "val": {}})
    with pytest.raises(Eeg2fmriInputError, match=r"split: expected validation windows \(early stopping and checkpoint choice use them\), found none"):
        fit_model(tiny_prepared, no_val, MODEL, {}, train_config=_cfg())
    with pytest.raises(Eeg2fmriInputError, match=r'optimizer\.precision: expected "32" or "bf16-mixed" on the CPU, found "16-mixed"'):
        fit_torch(tiny_prepared, split, MODEL, {}, train_config=_cfg(precision="16-mixed") | {"trainer": {"accelerator": "cpu"}})
    with pytest.raises(Eeg2fmriInputError, match=r"loss\.kl: _test_bandpower_mlp returned no 'kl' term"):
        fit_model(tiny_prepared, split, MODEL, {}, train_config=_cfg(max_epochs=1) | {"loss": {"mse": 1.0, "kl": 1.0}})


# ----------------------------------------------------------------------------- train command, save/load, compatibility
def test_train_command_saves_loadable_model(prepared_dir, tmp_path, capsys):
    from safetensors.torch import load_file

    from eeg2fmri.cli import main
    from eeg2fmri.datasets import load_prepared
    from eeg2fmri.models import load_model
    from eeg2fmri.models._persist import load_predictor

    cfg_path = tmp_path / "train.yaml"
    cfg_path.write_text(
        f"seed: 4\nout: run\ndata: {{prepared: {prepared_dir}}}\nsplit: {{protocol: within}}\n"
        f"model: {{name: {MODEL}, hparams: {{hidden: 8}}}}\noptimizer: {{lr: 1.0e-2, batch_size: 8, max_epochs: 3, patience: 2}}\n"
        "loss: {mse: 1.0, corr: 0.2}\ntrainer: {log: [csv], accelerator: cpu}\n"
    )
    assert main(["train", str(cfg_path), "-q"]) == 0
    out = tmp_path / "run"
    printed = capsys.readouterr().out
    assert "validation: mse" in printed
    tr = json.loads((out / "metrics.json").read_text())["training"]  # what tune reports beside what evaluate does (user test 34)
    assert f"({tr['monitor']} {tr['best_score']:.4f}, over the validation windows pooled, as tune reports it)" in printed
    assert json.loads((out / "metrics.json").read_text())["model_hparams"]["hidden"] == 8
    vols = json.loads((out / "metrics.json").read_text())["split"]["volumes"]
    assert sum(vols[k] for k in ("used", "no_full_window", "gaps", "bad_eeg")) == vols["total"] > vols["used"] > 0
    n_runs = len(load_prepared(prepared_dir).runs)  # (gaps is the rest by construction: counted independently here)
    assert vols["gaps"] == 2 * json.loads((out / "metrics.json").read_text())["split"]["gap_volumes"] * n_runs and min(vols.values()) >= 0
    assert f"{vols['used']} of {vols['total']} volumes have a window in train/validation/test" in printed
    assert "chosen on the validation windows" not in printed  # a model without post-training choices
    assert "in-sample" not in printed and "validation_in_sample" not in json.loads((out / "metrics.json").read_text())
    assert {p.name for p in out.iterdir()} >= {"config.yaml", "checkpoints", "logs", "metrics.json", "model"}
    assert (out / "checkpoints" / "best.ckpt").exists() and (out / "logs" / "version_0" / "metrics.csv").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["validation"]["n"] == metrics["split"]["n_val"] and "test" in metrics and len(metrics["history"]) == 3
    # every output names the software that wrote it (version, and the commit of a source checkout)
    from eeg2fmri.utils.provenance import software, software_line

    assert metrics["software"] == software() == json.loads((out / "model" / "model.json").read_text())["software"]
    from eeg2fmri.datasets.prepared import data_fingerprint

    assert metrics["data_fingerprint"] == data_fingerprint(load_prepared(prepared_dir)) is not None  # (user test 41)
    assert (out / "config.yaml").read_text().startswith(f"# written by {software_line()}")
    assert software_line() in (out / "model" / "MODEL_CARD.md").read_text()
    assert {p.name for p in (out / "model").iterdir()} == {"model.json", "weights.safetensors", "mask.nii.gz", "MODEL_CARD.md", "train_config.json",
                                                        "calibration.json", "calibration.npz"}
    assert json.loads((out / "model" / "calibration.json").read_text())["levels"] == [0.5, 0.8, 0.95]
    card = (out / "model" / "MODEL_CARD.md").read_text()
    assert "## split" in card and "## validation metrics" in card and "## test metrics" in card
    assert set(load_file(str(out / "model" / "weights.safetensors"))) == {"net.1.weight", "net.1.bias", "net.4.weight", "net.4.bias"}
    # load -> identical predictions to the model that training returned
    from eeg2fmri.workflows.train import train

    ds = load_prepared(prepared_dir)
    lm = load_predictor(out / "model")
    assert isinstance(load_model(out / "model").model, nn.Module)
    from eeg2fmri.datasets.windows import window_matrix

    x, _, _ = window_matrix(ds, {0: np.arange(20, 30)}, lm.meta["window"]["n_frames"])
    rerun = train(cfg_path, out=tmp_path / "run2", progress_bar=False)
    assert np.array_equal(lm.model.predict(x), rerun.fit.model.predict(x))  # same config, same numbers
    assert np.array_equal(lm.predict(x), lm.model.predict(x))  # (user test 41: the loaded model's own predict wrapped it twice)
    assert json.loads((tmp_path / "run2" / "metrics.json").read_text())["validation"] == metrics["validation"]
    # existing output: refuse without --resume/--overwrite; a finished run resumes to nothing
    assert main(["train", str(cfg_path), "-q"]) == 2
    assert "output folder exists and is not empty; resume it (--resume)" in capsys.readouterr().err
    assert main(["train", str(cfg_path), "-q", "--resume"]) == 0
    changed = cfg_path.read_text().replace("lr: 1.0e-2", "lr: 2.0e-2")
    (tmp_path / "changed.yaml").write_text(changed)
    assert main(["train", str(tmp_path / "changed.yaml"), "-q", "--resume", "--out", str(out)]) == 2
    assert "the run to resume used other settings for ['optimizer.lr']" in capsys.readouterr().err


def test_check_compatible_errors():
    from eeg2fmri.models._persist import check_compatible

    meta = {"model": "m", "spec": {"input_kind": "stft", "ch_names": ["Fp1", "Cz", "O1"], "sfreq": 250.0}}
    check_compatible(meta, ["Fp1", "Cz", "O1"], 250.0, "stft")
    with pytest.raises(Eeg2fmriInputError, match=r"rec\.vhdr: m was trained on 'stft' EEG, got 'raw'; prepare the EEG with representation='stft'"):
        check_compatible(meta, ["Fp1", "Cz", "O1"], 250.0, "raw", where="rec.vhdr")
    with pytest.raises(Eeg2fmriInputError, match=r"missing \['Fp1'\], not used in training \['FP1'\]; rename channels, e.g. raw\.rename_channels\(\{'FP1': 'Fp1'\}\)"):
        check_compatible(meta, ["FP1", "Cz", "O1"], 250.0, "stft")
    with pytest.raises(Eeg2fmriInputError, match=r"missing \['O1'\], not used in training \[\]; map your channel names"):
        check_compatible(meta, ["Fp1", "Cz"], 250.0, "stft")
    with pytest.raises(Eeg2fmriInputError, match=r"in another order; reorder them first, e\.g\. raw\.reorder_channels\(\['Fp1', 'Cz', 'O1'\]\)"):
        check_compatible(meta, ["Cz", "Fp1", "O1"], 250.0, "stft")
    with pytest.raises(Eeg2fmriInputError, match=r"sampled at 250 Hz, got 500 Hz; resample first, e\.g\. raw\.resample\(250\)"):
        check_compatible(meta, ["Fp1", "Cz", "O1"], 500.0, "stft")


# ----------------------------------------------------------------------------- registered models of the package
def test_registered_models_train_save_load(tiny_bids, tmp_path):
    """calhas2022 (STFT, every auxiliary term) and beira (raw EEG) through fit_model -> save -> load."""
    from eeg2fmri.datasets import prepare_dataset
    from eeg2fmri.datasets.targets import make_split
    from eeg2fmri.models._persist import check_compatible, load_predictor, save_trained_model
    from eeg2fmri.training import fit_model
    from eeg2fmri.workflows.train import split_info

    cases = [
        ("stft", {"stft_fmax": 12.0}, "calhas2022",
         {"latent_dim": 6, "n_filters": 2, "n_eeg_blocks": 1, "n_fmri_blocks": 1, "fmri_hidden": 5, "aleatoric": True, "variational": True},
         {"mse": 1.0, "latent_cosine": 0.5, "organize_channels": 0.01, "laplace_nll": 0.1, "kl": 1e-4}),
        ("raw", {"raw_sfreq": 50.0}, "beira", {"n_virtual": 3, "latent_dim": 7}, {"mse": 1.0, "corr": 0.5}),
    ]
    for rep, opts, name, hp, loss in cases:
        ds = prepare_dataset(tiny_bids, {"representation": rep, **opts}, progress_bar=False)
        split = make_split(ds, "within", n_frames=4 if rep == "stft" else 300)
        cfg = {"seed": 1, "optimizer": {"max_epochs": 2, "batch_size": 8, "patience": None}, "loss": loss, "trainer": {"log": ["csv"], "progress_bar": False, "accelerator": "cpu"}}
        res = fit_model(ds, split, name, hp, train_config=cfg)
        hist = res.info["history"]
        assert len(hist) == 2 and all(np.isfinite(h["train_loss"]) for h in hist)
        assert {f"val_{k}" for k in loss} <= set(hist[0])
        out = save_trained_model(res.model, tmp_path / name, spec=res.spec, name=name, hparams=hp, mask=ds.mask, affine=ds.affine,
                                 window={"n_frames": split.n_frames, "lag": split.lag}, prepare=ds.config.to_dict(), config=cfg,
                                 split=split_info(split), metrics={"validation": hist[-1]})
        lm = load_predictor(out)
        x = np.random.default_rng(2).standard_normal((3, *res.spec.input_shape)).astype(np.float32)
        assert np.array_equal(lm.model.predict(x), res.model.predict(x))
        check_compatible(lm.meta, ds.ch_names, res.spec.sfreq, rep)
        with pytest.raises(Eeg2fmriInputError, match=rf"{name} was trained on '{rep}' EEG, got 'bandpower'"):
            check_compatible(lm.meta, ds.ch_names, res.spec.sfreq, "bandpower")


def test_train_from_bids_closed_form_model(tiny_bids, tmp_path):
    """A config with a BIDS root prepares the data under out/ once; closed-form models use the same command."""
    from eeg2fmri.workflows.train import train

    cfg = {"out": str(tmp_path / "r"), "data": {"bids": str(tiny_bids), "prepare": {"l_freq": 1.0}}, "split": {"protocol": "loso"},
           "model": {"name": "ridge_hrf", "hparams": {"hrf": "lags"}}, "trainer": {"progress_bar": False}}
    res = train(cfg)
    assert (tmp_path / "r" / "prepared" / "manifest.json").exists() and not (tmp_path / "r" / "checkpoints").exists()
    assert res.metrics["split"]["test_subjects"] == ["02"] and res.metrics["test"]["n"] == res.metrics["split"]["n_test"]
    assert json.loads((tmp_path / "r" / "model" / "train_config.json").read_text())["model"]["hparams"] == {"hrf": "lags"}
    again = train(cfg, resume=True)  # finished: nothing to do, same numbers
    assert again.fit is None and again.metrics == res.metrics
    with pytest.raises(Eeg2fmriInputError, match=r"config: out: expected an output folder, found null; set out: in the config or pass --out"):
        train({**cfg, "out": None})


def test_example_config_is_valid():
    from pathlib import Path

    from eeg2fmri.training.config import load_config

    path = Path(__file__).resolve().parents[1] / "examples" / "train_calhas2022.yaml"
    cfg = load_config(path)
    assert cfg["model"]["name"] == "calhas2022" and cfg["data"]["prepare"]["representation"] == "stft"
    assert cfg["tune"]["latent_dim"] == {"choices": [64, 125, 343]}


def test_loader_threads_give_the_same_batches_and_run(tiny_prepared, split):
    # ThreadedBatchLoader: the same batches, in the sampler's order, as the DataLoader path; a
    # training run with loader threads equals one with the main-process loader
    from eeg2fmri.datasets import WindowDataset
    from eeg2fmri.datasets.windows import ThreadedBatchLoader
    from eeg2fmri.training.trainer import EpochShuffleSampler, _EpochBatchSampler, fit_torch

    wd = WindowDataset(tiny_prepared, split.selections["train"], n_frames=4)
    batches = _EpochBatchSampler(EpochShuffleSampler(len(wd), seed=5), 7, drop_last=False)
    expected = [wd.get_batch(b) for b in batches]
    for threads, prefetch in ((1, None), (3, 2), (4, 50)):
        loader = ThreadedBatchLoader(wd, batches, num_threads=threads, prefetch=prefetch)
        assert len(loader) == len(expected) and loader.sampler is batches.sampler
        got = list(loader)
        assert len(got) == len(expected)
        for (x, y, s), (xe, ye, se) in zip(got, expected):
            assert torch.equal(x, xe) and torch.equal(y, ye) and torch.equal(s, se)
    # a new epoch through the sampler (what Lightning calls) gives a new order
    batches.set_epoch(1)
    first = next(iter(ThreadedBatchLoader(wd, batches, num_threads=2)))
    assert not torch.equal(first[2], expected[0][2]) or not torch.equal(first[0], expected[0][0])
    with pytest.raises(Eeg2fmriInputError, match=r"ThreadedBatchLoader: expected a WindowDataset, got list; use a torch DataLoader"):
        ThreadedBatchLoader([1, 2], batches)
    with pytest.raises(Eeg2fmriInputError, match=r"num_threads"):
        ThreadedBatchLoader(wd, batches, num_threads=0)
    if not torch.cuda.is_available():
        with pytest.raises(Eeg2fmriInputError, match=r"pin_memory=True needs CUDA .*found no CUDA device; pass pin_memory=False"):
            ThreadedBatchLoader(wd, batches, pin_memory=True)

    hp = {"hidden": 8}
    plain = fit_torch(tiny_prepared, split, MODEL, hp, train_config=_cfg(max_epochs=3), progress_bar=False)
    cfg = _cfg(max_epochs=3)
    cfg["trainer"]["loader_threads"] = 3
    threaded = fit_torch(tiny_prepared, split, MODEL, hp, train_config=cfg, progress_bar=False)
    a, b = plain.model.state_dict(), threaded.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert plain.info["history"] == threaded.info["history"]


def test_loader_threads_config_error():
    from eeg2fmri.training.config import resolve_config

    with pytest.raises(Eeg2fmriInputError, match=r"trainer\.loader_threads"):
        resolve_config({"model": {"name": "mean"}, "trainer": {"loader_threads": -1}}, require_model=False)


def test_window_loader_with_threads(tiny_prepared, split):
    from eeg2fmri.datasets import WindowDataset
    from eeg2fmri.datasets.windows import ThreadedBatchLoader

    wd = WindowDataset(tiny_prepared, split.selections["train"], n_frames=4)
    plain = list(wd.loader(6, shuffle=True, seed=2))
    threaded = wd.loader(6, shuffle=True, seed=2, num_threads=2)
    assert isinstance(threaded, ThreadedBatchLoader) and len(threaded) == len(plain)
    for (x, y, s), (xe, ye, se) in zip(threaded, plain):
        assert torch.equal(x, xe) and torch.equal(y, ye) and torch.equal(s, se)
    with pytest.raises(Eeg2fmriInputError, match=r"num_threads=2 replaces the DataLoader, so it takes no num_workers; pass either"):
        wd.loader(6, num_threads=2, num_workers=1)
    with pytest.raises(Eeg2fmriInputError, match=r"so it takes no prefetch_factor; pass either"):
        wd.loader(6, num_threads=2, prefetch_factor=2)


def test_flagship_output_calibrated_on_validation_windows_only(tiny_prepared, split):
    # after training, fit_torch restores the best weights and calls the model's after_fit with the
    # validation windows: eeg2fmri_net's output gain is then the least-squares shrinkage on them
    from eeg2fmri.datasets import WindowDataset
    from eeg2fmri.datasets.targets import split_targets
    from eeg2fmri.training.trainer import fit_torch

    guarded = replace(split, selections={"train": split.selections["train"], "val": split.selections["val"], "test": _Forbidden()})
    targets = split_targets(tiny_prepared, split)
    targets = {"train": targets["train"], "val": targets["val"], "test": _Forbidden()}
    cfg = {"seed": 1, "optimizer": {"lr": 3e-2, "batch_size": 16, "max_epochs": 3, "patience": None}, "trainer": {"log": ["csv"], "accelerator": "cpu"}}
    res = fit_torch(tiny_prepared, guarded, "eeg2fmri_net", {"n_members": 2, "seed": 0}, targets=targets, train_config=cfg, progress_bar=False)
    module = res.model.module
    gain = float(module.output_gain)
    assert res.info["output_gain"] == gain and 0.0 <= gain <= 1.0
    assert 0.0 < res.info["after_fit_seconds"] < res.fit_seconds  # the post-training step counts as fitting time
    # the same gain from the validation windows directly
    val = WindowDataset(tiny_prepared, split.selections["val"], split.n_frames, split.lag, targets=targets["val"])
    x, y, s = val.get_batch(np.arange(len(val)))
    module.output_gain.fill_(1.0)
    module.calibrate(x, y, s)
    assert float(module.output_gain) == pytest.approx(gain, abs=1e-6)
    # calibrate_output=False leaves the gain at 1
    off = fit_torch(tiny_prepared, guarded, "eeg2fmri_net", {"n_members": 2, "seed": 0, "calibrate_output": False}, targets=targets,
                    train_config=cfg, progress_bar=False)
    assert off.info["output_gain"] == 1.0 and float(off.model.module.output_gain) == 1.0


def test_train_mean_baseline_saves_and_reloads(tiny_prepared, tmp_path):
    """`eeg2fmri train` with model.name: mean (it crashed while saving: no state_dict)."""
    from eeg2fmri.models import load_model
    from eeg2fmri.workflows.train import train

    prep = tmp_path / "prep"
    tiny_prepared.save(prep)
    cfg = {"out": str(tmp_path / "m"), "data": {"prepared": str(prep)}, "split": {"protocol": "within"},
           "model": {"name": "mean"}, "trainer": {"progress_bar": False}}
    res = train(cfg)
    fitted = res.fit.model
    fitted = getattr(fitted, "model", fitted)
    loaded = load_model(tmp_path / "m" / "model").model
    assert set(map(str, loaded.means_)) == set(map(str, fitted.means_)) == {"01", "02"}
    np.testing.assert_array_equal(loaded.grand_mean_, fitted.grand_mean_)
    x, subs = np.zeros((3, 1)), np.array(["02", "01", "99"])  # "99": unseen subject, the grand mean
    np.testing.assert_array_equal(loaded.predict(x, subs), fitted.predict(x, subs))
    np.testing.assert_array_equal(loaded.predict(x, subs)[2], fitted.grand_mean_)


def test_devices_accepts_gpu_indices():
    """``benchmark --device cuda:N`` passes ``trainer.devices: [N]`` (Lightning's GPU-index form)."""
    from eeg2fmri.training.config import resolve_config

    cfg = resolve_config({"model": {"name": "mean"}, "trainer": {"devices": [1]}}, require_model=False)
    assert cfg["trainer"]["devices"] == [1]
    assert resolve_config({"model": {"name": "mean"}, "trainer": {"devices": 2}}, require_model=False)["trainer"]["devices"] == 2


def test_best_weights_in_memory_equal_the_checkpoint(tiny_prepared, split, tmp_path):
    """Without an output folder the best epoch is kept in memory; it must be the checkpoint's epoch and weights."""
    import torch

    from eeg2fmri.training.trainer import fit_torch

    cfg = _cfg(max_epochs=5, lr=3e-2) | {"trainer": {"log": [], "accelerator": "cpu"}}
    mem = fit_torch(tiny_prepared, split, MODEL, {"hidden": 8}, train_config=cfg)
    disk = fit_torch(tiny_prepared, split, MODEL, {"hidden": 8}, train_config=cfg, out_dir=tmp_path / "run")
    assert "checkpoints" in disk.info and "checkpoints" not in mem.info
    assert mem.info["best_epoch"] == disk.info["best_epoch"]
    assert mem.info["best_score"] == pytest.approx(disk.info["best_score"], abs=1e-7)
    for (k, a), (_, b) in zip(mem.model.module.state_dict().items(), disk.model.module.state_dict().items()):
        torch.testing.assert_close(a, b, msg=k)


def test_fused_optimizer_only_where_lightning_allows_it():
    import torch

    from eeg2fmri.training.trainer import _fused_ok

    p = [torch.nn.Parameter(torch.zeros(3))]
    assert _fused_ok(p, "32")
    assert _fused_ok(p, "bf16-mixed", None)
    assert _fused_ok(p, "bf16-mixed", 1.0)  # no scaler: LitModel.configure_gradient_clipping clips (tests/test_training_clip.py)
    assert not _fused_ok(p, "16-mixed", 1.0)  # the gradients are still scaled where Lightning clips
    assert not _fused_ok([], "32")
    assert not _fused_ok([torch.zeros(3, dtype=torch.long)], "32")


def test_workflows_train_and_tune_are_the_functions_even_after_their_modules_are_imported():
    import eeg2fmri.workflows.train  # noqa: F401 - the submodule, imported first on purpose
    import eeg2fmri.workflows.tune  # noqa: F401
    from eeg2fmri.workflows import train, tune
    from eeg2fmri.workflows.train import train as train_fn
    from eeg2fmri.workflows.tune import tune as tune_fn

    assert train is train_fn and tune is tune_fn


@pytest.fixture(scope="module")
def tiny_tangent(tiny_bids):
    from eeg2fmri.datasets import prepare_dataset
    from eeg2fmri.datasets.prepared import PrepareConfig

    return prepare_dataset(tiny_bids, PrepareConfig(representation="tangent"), progress_bar=False)


def test_window_dataset_with_features_keeps_the_leading_block(tiny_tangent, tiny_prepared):
    from eeg2fmri.datasets import WindowDataset
    from eeg2fmri.datasets.targets import make_split

    sel = make_split(tiny_tangent, "within").selections["train"]
    full = WindowDataset(tiny_tangent, sel, n_frames=4)
    n_bands = len(tiny_tangent.config.bands)
    part = full.with_features(n_bands)
    idx = np.array([0, 5, len(full) - 1, 3])
    x, y, s = full.get_batch(idx)
    xp, yp, sp = part.get_batch(idx)
    assert xp.shape == (len(idx), x.shape[1], n_bands, 4) and x.shape[2] == n_bands * (1 + x.shape[1])
    assert torch.equal(xp, x[:, :, :n_bands]) and torch.equal(yp, y) and torch.equal(sp, s)
    np.testing.assert_array_equal(part.window(5), full.window(5)[:, :n_bands])
    assert torch.equal(part[5][0], x[1, :, :n_bands])
    assert part.spec.input_shape == (x.shape[1], n_bands, 4) and full.spec.input_shape == tuple(x.shape[1:])
    assert full._n_features is None and full.with_features(x.shape[2])._n_features is None  # all of them: no slicing
    with pytest.raises(Eeg2fmriInputError, match=rf"expected n_features <= {x.shape[2]} \(the windows' feature axis\), got {x.shape[2] + 1}"):
        full.with_features(x.shape[2] + 1)
    with pytest.raises(Eeg2fmriInputError, match="n_features"):
        full.with_features(0)


def test_with_features_refuses_raw_windows(tiny_bids):
    from eeg2fmri.datasets import WindowDataset, prepare_dataset
    from eeg2fmri.datasets.prepared import PrepareConfig
    from eeg2fmri.datasets.targets import make_split

    raw = prepare_dataset(tiny_bids, PrepareConfig(representation="raw"), progress_bar=False)
    sp = make_split(raw, "within", n_frames=50)
    wd = WindowDataset(raw, sp.selections["train"], n_frames=50)
    with pytest.raises(Eeg2fmriInputError, match=r"expected frame-based windows \(n_chans, n_features, n_frames\), got 'raw' features of 1 axes"):
        wd.with_features(1)


def test_flagship_trains_on_the_power_block_of_tangent_windows(tiny_tangent, monkeypatch):
    """fit_torch copies only the band-power block of tangent windows into training batches (the network reads
    nothing else); the fitted model -- network and stacked linear path on full windows -- is the same as
    with full training batches."""
    from eeg2fmri.datasets import WindowDataset
    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.models.flagship import EEG2fMRINet
    from eeg2fmri.training.trainer import fit_torch

    sp = make_split(tiny_tangent, "within")
    targets = split_targets(tiny_tangent, sp)
    shapes = []

    class Spy(WindowDataset):
        def _fetch(self, indices, **kw):
            out = super()._fetch(indices, **kw)
            shapes.append(tuple(out[0].shape[1:]))
            return out

    cfg = {"seed": 0, "optimizer": {"max_epochs": 2, "batch_size": 16, "patience": None}, "trainer": {"accelerator": "cpu", "log": []}}
    hp = {"n_members": 2, "seed": 0}
    sliced = fit_torch(tiny_tangent, sp, "eeg2fmri_net", hp, targets=targets, train_config=cfg, progress_bar=False, window_dataset=Spy)
    n_ch, n_feat, n_fr = sliced.spec.input_shape
    n_bands = n_feat // (n_ch + 1)
    assert (n_ch, n_bands, n_fr) in shapes and (n_ch, n_feat, n_fr) in shapes  # training batches sliced, after_fit's full
    assert "tangent_weight" in sliced.info
    monkeypatch.setattr(EEG2fMRINet, "training_features", property(lambda self: None))
    shapes.clear()
    full = fit_torch(tiny_tangent, sp, "eeg2fmri_net", hp, targets=targets, train_config=cfg, progress_bar=False, window_dataset=Spy)
    assert set(shapes) == {(n_ch, n_feat, n_fr)}
    a, b = sliced.model.module.state_dict(), full.model.module.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert sliced.info["history"] == full.info["history"]


def test_model_format_versions(tiny_prepared, tmp_path):
    """Models are written in format 6 (a flagship may hold a factored tangent ridge, format 2, a reduced-rank
    output, 3, a per-output shrinkage, 4, outputs kept at full rank, 5, a factored band-power ridge, 6); formats 1-5 still load; others are refused with the file named and what to do."""
    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.models import load_model, save_model
    from eeg2fmri.training import fit_model

    sp = make_split(tiny_prepared, "within")
    fitted = fit_model(tiny_prepared, sp, "ridge_hrf", targets=split_targets(tiny_prepared, sp))
    assert fitted.model.get_params()["factored"] == "auto"  # scikit-learn's contract: every parameter (user test 31)
    out = save_model(fitted.model, tmp_path / "m", spec=fitted.spec, name="ridge_hrf", hparams=fitted.model.get_params(), mask=tiny_prepared.mask,
                     affine=tiny_prepared.affine, window={"n_frames": sp.n_frames, "lag": sp.lag}, prepare=tiny_prepared.config.to_dict())
    meta = json.loads((out / "model.json").read_text())
    assert meta["format_version"] == 6
    for version in (1, 2, 3, 4, 5, 6):
        (out / "model.json").write_text(json.dumps({**meta, "format_version": version}))
        assert load_model(out).meta["format_version"] == version
    (out / "model.json").write_text(json.dumps({**meta, "format_version": 7}))
    with pytest.raises(Eeg2fmriInputError, match=r"model\.json: model format 7 is not supported \(expected one of 1, 2, 3, 4, 5, 6\); retrain or upgrade eeg2fmri"):
        load_model(out)


def test_with_features_cuts_the_frequencies_of_stft_windows(tiny_bids):
    from eeg2fmri.datasets import WindowDataset, prepare_dataset
    from eeg2fmri.datasets.prepared import PrepareConfig
    from eeg2fmri.datasets.targets import make_split

    stft = prepare_dataset(tiny_bids, PrepareConfig(representation="stft", stft_fmax=40.0), progress_bar=False)
    wd = WindowDataset(stft, make_split(stft, "within").selections["train"], n_frames=3)
    full = wd.spec
    part = wd.with_features(4).spec
    assert len(full.freqs) == full.input_shape[1] > 4
    assert part.input_shape[1] == 4 and part.freqs == full.freqs[:4]


def _cpu_train_steps(name: str, n_steps: int = 2) -> dict[str, torch.Tensor]:
    from eeg2fmri.models import build_model
    from tests.test_models_all import BATCH, INPUT_KIND, N_SUBJ, SMALL, SPECS

    spec = SPECS[INPUT_KIND.get(name, "raw")]
    torch.manual_seed(0)
    model = build_model(name, spec, **SMALL.get(name, {})).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(BATCH, *spec.input_shape, generator=g).abs()
    y = torch.randn(BATCH, *spec.output_shape, generator=g)
    s = torch.arange(BATCH) % N_SUBJ
    for _ in range(n_steps):
        if hasattr(model, "training_terms"):
            terms = model.training_terms(x, y, subject=s)
            loss = (terms["pred"] - y).square().mean() + sum(v for k, v in terms.items() if k in ("latent_cosine", "organize_channels"))
        else:
            loss = (model(x, subject=s) - y).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _all_torch_models():
    from tests.test_models_all import TORCH_MODELS

    return TORCH_MODELS


@pytest.mark.parametrize("name", _all_torch_models())
def test_no_model_reads_memory_it_did_not_write(name):
    """Training turns off PyTorch's NaN-filling of new tensors in deterministic mode (trainer.FILL_UNINITIALIZED_MEMORY):
    safe only if no op reads memory before writing it. Every registered torch model trains to bit-identical weights with
    the fills on and off (a read of unwritten memory would give NaN with them on)."""
    import torch.utils.deterministic as torch_det

    prev = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(), torch_det.fill_uninitialized_memory
    try:
        torch.use_deterministic_algorithms(True)
        got = {}
        for fill in (True, False):
            torch_det.fill_uninitialized_memory = fill
            got[fill] = _cpu_train_steps(name)
    finally:
        torch.use_deterministic_algorithms(prev[0], warn_only=prev[1])
        torch_det.fill_uninitialized_memory = prev[2]
    assert got[True].keys() == got[False].keys()
    assert all(torch.equal(got[True][k], got[False][k]) for k in got[True]), name
    assert all(torch.isfinite(v).all() for v in got[True].values() if v.is_floating_point())


def test_fit_turns_the_fills_off_and_restores_the_users_setting(tiny_prepared, split, monkeypatch):
    import torch.utils.deterministic as torch_det

    from eeg2fmri.training import fit_model, trainer

    seen = []
    orig = trainer.pl.Trainer.fit

    def spy(self, *args, **kwargs):
        seen.append((torch.are_deterministic_algorithms_enabled(), torch_det.fill_uninitialized_memory))
        return orig(self, *args, **kwargs)

    monkeypatch.setattr(trainer.pl.Trainer, "fit", spy)
    prev = torch_det.fill_uninitialized_memory
    try:
        torch_det.fill_uninitialized_memory = True
        a = fit_model(tiny_prepared, split, MODEL, {"hidden": 8}, train_config=_cfg(max_epochs=2))
        assert seen == [(True, False)]  # deterministic on the CPU ("auto"), without the fills
        assert torch_det.fill_uninitialized_memory is True and not torch.are_deterministic_algorithms_enabled()
        monkeypatch.setattr(trainer, "FILL_UNINITIALIZED_MEMORY", True)
        b = fit_model(tiny_prepared, split, MODEL, {"hidden": 8}, train_config=_cfg(max_epochs=2))
        assert seen[-1] == (True, True)
    finally:
        torch_det.fill_uninitialized_memory = prev
    sa, sb = a.model.module.state_dict(), b.model.module.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_score_windows_r_is_per_subject_as_evaluate_reports_it(tiny_prepared, split):
    """train's validation/test r: each subject's voxel r over its own windows (scipy), median over voxels, mean over
    subjects -- the group median r of `eeg2fmri evaluate`, not r over windows pooled across subjects."""
    from scipy.stats import pearsonr

    from eeg2fmri.datasets import WindowDataset
    from eeg2fmri.datasets.targets import split_targets
    from eeg2fmri.training import fit_model
    from eeg2fmri.workflows.train import score_windows

    targets = split_targets(tiny_prepared, split)
    res = fit_model(tiny_prepared, split, "ridge_hrf", {"hrf": "lags"}, targets=targets)
    wd = WindowDataset(tiny_prepared, selection=split.selections["test"], n_frames=split.n_frames, lag=split.lag, targets=targets["test"])
    items = [wd[i] for i in range(len(wd))]
    x, y, s = (np.stack([np.asarray(it[j]) for it in items]) for j in range(3))
    p = res.model.predict(x).reshape(len(y), -1).astype(np.float64)
    y = y.reshape(len(y), -1).astype(np.float64)
    got = score_windows(res.model, wd, batch_size=7)  # batches cut across subjects
    expected = {}
    for i in np.unique(s):
        rows = np.asarray(s) == i
        expected[tiny_prepared.subjects[i]] = float(np.median([pearsonr(p[rows, v], y[rows, v])[0] for v in range(y.shape[1])]))
    assert len(expected) > 1 and got["per_subject"].keys() == expected.keys()
    for subj, med in expected.items():
        assert got["per_subject"][subj]["median_r"] == pytest.approx(med, abs=1e-9)
    assert got["median_r"] == pytest.approx(np.mean(list(expected.values())), abs=1e-9)
    assert got["mse"] == pytest.approx(float(((p - y) ** 2).mean()), rel=1e-6)


def test_train_prints_the_flagships_validation_choices():
    """eeg2fmri train prints eeg2fmri_net's blend weight and output rank, and why the full rank was kept."""
    from eeg2fmri.commands.train import choices_line

    assert choices_line({"ridge_weight": 0.35, "output_rank": 6}) == "chosen on the validation windows: linear-path weight 0.35, output rank 6"
    why = "rank 1's validation mean voxel r 0.0097 is below 0.02 (...)"
    assert choices_line({"ridge_weight": 0.0, "output_rank": None, "output_rank_kept_full": why}) == (
        f"chosen on the validation windows: linear-path weight 0.00, output rank: full (kept: {why})")
    assert choices_line({"output_rank": None}) == "chosen on the validation windows: output rank: full"
    # ridge_hrf: its basis and penalty (user test 15: the basis was neither printed nor stored); the flagship's linear-path basis
    assert choices_line({"hrf": "canonical", "hrf_scores": {"canonical": 0.98, "basis": 0.99, "lags": 1.0}, "alpha": 100.0}) == (
        "chosen on the validation windows: HRF basis canonical (validation MSE canonical 0.9800, basis 0.9900, lags 1.0000), penalty 100")
    # a penalty at the top of its grid (user test 20: 1e5, a near-constant prediction, said nowhere)
    assert "penalty 100000 -- the largest of its grid: over the whole mask the validation windows favour a prediction shrunk" in (
        choices_line({"hrf": "canonical", "alpha": 1e5, "alpha_at_grid_top": True}))
    assert "largest of its grid" not in choices_line({"hrf": "canonical", "alpha": 1e5})
    assert choices_line({"ridge_weight": 1.0, "ridge_hrf": "lags", "output_rank": None}) == (
        "chosen on the validation windows: linear-path weight 1.00, linear-path HRF basis lags, output rank: full")
    kept = "weight 0.6's validation mean voxel r 0.2100 gains 0.0010 over the linear path alone, within 1 jackknife SE (0.0030)"
    assert choices_line({"ridge_weight": 1.0, "ridge_weight_kept_linear": kept, "output_rank": 4}) == (
        f"chosen on the validation windows: linear-path weight 1.00 (the network is not used: {kept}), output rank 4")
    assert choices_line({"output_rank": 1, "output_rank_outputs_kept_full": 110}) == (
        "chosen on the validation windows: output rank 1 (110 outputs keep the full prediction: the rank lowered their validation r) -- the "
        "other outputs follow one time course: where regions driven by different EEG features matter, compare with "
        "model.hparams.output_rank: null (evaluate --atlas)")
    assert choices_line({"output_rank": 3}) == "chosen on the validation windows: output rank 3"  # (no hint above rank 2)
    # a whole-mask validation r at noise level (user test 44: a focal signal): the way to give the network a chance
    import numpy as np

    from eeg2fmri.models.flagship import _earned

    rng = np.random.default_rng(0)
    y = rng.standard_normal((60, 40))
    _, noisy = _earned(rng.standard_normal((60, 40)), rng.standard_normal((60, 40)), y, "weight 0", "the linear path alone")
    assert noisy.startswith("weight 0's validation mean voxel r") and "is below 0.02" in noisy  # what the guard writes (a review)
    line = choices_line({"ridge_weight": 1.0, "ridge_weight_kept_linear": noisy})
    assert line.endswith("-- for a focal signal, train on region targets (prepare option atlas: LABELS.nii.gz) or on a mask of your regions "
                         "(prepare option mask), where the network can be chosen, or give the linear path a penalty per voxel where it "
                         "earns one (hparams ridge_alpha_per_target: guarded; user test 56: LOSO ROI r 0.41 -> 0.53), and compare ROI r "
                         "(evaluate --atlas)")
    assert "for a focal signal" not in choices_line({"ridge_weight": 1.0, "ridge_weight_kept_linear": kept})


def test_save_fit_writes_a_model_folder_that_loads_and_predicts_the_same(tiny_prepared, tmp_path, capsys):
    """training.save_fit: a fit_model result saved as a model folder (README's Python API) loads with load_model and
    predicts what the fitted model predicts; its window and mask are the split's and the dataset's."""
    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.models import load_model
    from eeg2fmri.training import fit_model, save_fit, stack_split

    split = make_split(tiny_prepared, "within")
    targets = split_targets(tiny_prepared, split)
    fitted = fit_model(tiny_prepared, split, "ridge_hrf", {"hrf": "canonical"}, targets=targets)
    out = save_fit(fitted, tiny_prepared, split, tmp_path / "m")
    loaded = load_model(out)
    x, _, _ = stack_split(tiny_prepared, split, targets, "test")
    np.testing.assert_allclose(loaded.predict(x), fitted.model.predict(x), rtol=1e-5, atol=1e-6)
    assert loaded.meta["window"]["n_frames"] == split.n_frames and np.array_equal(loaded.mask, tiny_prepared.mask)
    with pytest.raises(Eeg2fmriInputError, match="already exists"):
        save_fit(fitted, tiny_prepared, split, out)
    # save_fit(result, FOLDER): the dataset and split the result was fitted on
    short = save_fit(fitted, tmp_path / "m2")
    card_split = json.loads((short / "model.json").read_text())["card"]["split"]
    assert card_split["train_subjects"] == card_split["val_subjects"] == card_split["test_subjects"] == list(tiny_prepared.subjects)
    assert json.loads((short / "model.json").read_text())["window"] == loaded.meta["window"]
    np.testing.assert_allclose(load_model(short).predict(x), loaded.predict(x), rtol=1e-6)
    # evaluate takes the folder with its recorded within split (user test 42: the card's test subjects were passed as a
    # split option that protocol within refuses, so no quickstart or save_fit folder could be evaluated)
    from eeg2fmri.cli import main

    prep = tiny_prepared.save(tmp_path / "prep")
    assert main(["evaluate", "--model", str(short), "--data", str(prep), "--out", str(tmp_path / "ev"), "-q", "--n-boot", "0", "--no-report"]) == 0
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["protocol"] == "within"
    # other shares than the defaults: the card records the split's options and evaluate rebuilds the same split (session 33)
    odd = make_split(tiny_prepared, "within", fractions=[0.8, 0.1, 0.1])
    odd_dir = save_fit(fit_model(tiny_prepared, odd, "ridge_hrf", {"hrf": "canonical"}, targets=split_targets(tiny_prepared, odd)),
                       tiny_prepared, odd, tmp_path / "m_odd")
    card = json.loads((odd_dir / "model.json").read_text())
    assert card["card"]["split"]["options"] == {"fractions": [0.8, 0.1, 0.1]}
    assert main(["evaluate", "--model", str(odd_dir), "--data", str(prep), "--out", str(tmp_path / "ev2"), "-q", "--n-boot", "0", "--no-report"]) == 0
    ev2 = json.loads((tmp_path / "ev2" / "metrics.json").read_text())["split"]
    assert ev2["n_test"] == odd.n_samples("test") and ev2["n_train"] == odd.n_samples("train") and ev2["options"] == {"fractions": [0.8, 0.1, 0.1]}
    assert odd.n_samples("test") != split.n_samples("test")  # (the default shares would give another test set)
    # (a review) a card written before the options were recorded: other shares than the defaults are refused, not scored on
    # windows the model was trained near
    del card["card"]["split"]["options"]
    (odd_dir / "model.json").write_text(json.dumps(card))
    capsys.readouterr()
    assert main(["evaluate", "--model", str(odd_dir), "--data", str(prep), "--out", str(tmp_path / "ev2b"), "-q", "--n-boot", "0"]) == 2
    assert "expected the split recorded in the model card" in capsys.readouterr().err
    # a kfold card: its fold's test subjects, held out whole (the defaults scored a training subject)
    kf = make_split(tiny_prepared, "kfold", n_folds=2, fold=1)
    kf_dir = save_fit(fit_model(tiny_prepared, kf, "ridge_hrf", {"hrf": "canonical"}, targets=split_targets(tiny_prepared, kf)),
                      tiny_prepared, kf, tmp_path / "m_kf")
    assert main(["evaluate", "--model", str(kf_dir), "--data", str(prep), "--out", str(tmp_path / "ev3"), "-q", "--n-boot", "0", "--no-report"]) == 0
    assert sorted(json.loads((tmp_path / "ev3" / "metrics.json").read_text())["per_subject"]) == kf.test_subjects
    # the card records n_folds/fold now, but a fold depends on the subjects loaded: the recorded test subjects decide (a review)
    from eeg2fmri.models import load_model
    from eeg2fmri.workflows.evaluate import _recorded

    rec = _recorded(kf_dir, None, load_model(kf_dir).meta)[1]
    assert rec == {"protocol": "subjects", "test_subjects": kf.test_subjects, "gap": kf.gap}
    import dataclasses

    bare = dataclasses.replace(fitted, dataset=None, split=None)  # a result made by hand
    with pytest.raises(Eeg2fmriInputError, match=r"save_fit: expected the dataset and split the model was fitted on, found none .*save_fit\(result, ds, split, FOLDER\)"):
        save_fit(bare, tmp_path / "m3")
    with pytest.raises(Eeg2fmriInputError, match=r"save_fit: expected the model folder to write, got none"):
        save_fit(fitted)
    with pytest.raises(Eeg2fmriInputError, match=r"save_fit: expected fitted as a FitResult, got .*fit_model\(ds, split, name\) returns one"):
        save_fit(tmp_path / "m4", fitted)


# ---------------------------------------------------------------------------------------------
# optimizer.refit: a fresh model on training + validation windows for the chosen epochs


def test_merged_train_val_holds_both_selections_with_their_targets(tiny_prepared, split):
    """The refit's dataset: every training and validation window once, each with the window and target the split's own
    datasets give it."""
    from eeg2fmri.datasets.targets import split_targets
    from eeg2fmri.training.trainer import merged_train_val, train_val_datasets

    targets = split_targets(tiny_prepared, split)
    tr, va = train_val_datasets(tiny_prepared, split, targets)
    merged = merged_train_val(tiny_prepared, split, targets)
    assert len(merged) == len(tr) + len(va)
    want = {}
    for part in (tr, va):
        xb, yb, _ = part.get_batch(np.arange(len(part)))
        keys = list(zip(part._run.tolist(), part._vol.tolist()))
        want.update({k: (xb[n], yb[n]) for n, k in enumerate(keys)})
    xb, yb, _ = merged.get_batch(np.arange(len(merged)))
    keys = list(zip(merged._run.tolist(), merged._vol.tolist()))
    assert sorted(keys) == sorted(want) and len(set(keys)) == len(keys)
    for n, k in enumerate(keys):
        np.testing.assert_array_equal(np.asarray(xb[n]), np.asarray(want[k][0]))
        np.testing.assert_array_equal(np.asarray(yb[n]), np.asarray(want[k][1]))


def test_refit_trains_a_fresh_model_on_training_and_validation_windows_for_the_chosen_epochs(tiny_prepared, split, one_torch_thread):
    """optimizer.refit: the chosen epoch count (best_epoch + 1) on train + val windows, deterministic, weights unlike the
    first fit's; off by default; a non-bool value refused with the key named."""
    from eeg2fmri.datasets.targets import split_targets
    from eeg2fmri.training.trainer import fit_torch

    cfg = _cfg(max_epochs=5, patience=2, monitor="val_r")
    cfg["trainer"]["log"] = []
    first = fit_torch(tiny_prepared, split, MODEL, {"hidden": 4}, train_config=cfg, progress_bar=False)
    assert "refit" not in first.info
    on = {**cfg, "optimizer": {**cfg["optimizer"], "refit": True}}
    a = fit_torch(tiny_prepared, split, MODEL, {"hidden": 4}, train_config=on, progress_bar=False)
    b = fit_torch(tiny_prepared, split, MODEL, {"hidden": 4}, train_config=on, progress_bar=False)
    assert a.info["best_epoch"] == first.info["best_epoch"]  # the same first fit chose the epochs
    assert a.info["refit"]["epochs"] == first.info["best_epoch"] + 1
    assert a.info["refit"]["n_windows"] == first.info["n_train"] + first.info["n_val"]
    sa, sb, s0 = (r.model.module.state_dict() for r in (a, b, first))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)  # reproducible from the seed
    assert any(not torch.equal(sa[k], s0[k]) for k in sa)  # not the first fit's weights
    x = np.asarray(split_targets(tiny_prepared, split)["val"][next(iter(split.selections["val"]))][:1])
    assert np.isfinite(x).all()
    with pytest.raises(Eeg2fmriInputError, match=r"optimizer\.refit.*true or false"):
        fit_torch(tiny_prepared, split, MODEL, {"hidden": 4}, train_config={**cfg, "optimizer": {**cfg["optimizer"], "refit": "yes"}})


def test_refit_keeps_the_flagships_validation_choices_and_skips_an_unused_network(tiny_prepared, one_torch_thread, monkeypatch):
    """eeg2fmri_net: the refitted network's parameters AND buffers (its batch-norm statistics: a review found them left
    from the first network) replace the first one's, and what after_fit chose on the validation windows (blend weight,
    linear path, output gain) is kept; where the blend kept the linear path alone the network is unused and the refit is
    skipped, with the reason; a multi-node run is refused."""
    import eeg2fmri.training.trainer as trainer_mod
    from eeg2fmri.datasets.targets import make_split
    from eeg2fmri.training.trainer import fit_torch

    sp = make_split(tiny_prepared, "within")
    cfg = {"seed": 0, "optimizer": {"max_epochs": 3, "patience": None, "monitor": "val_r", "refit": True}, "trainer": {"log": [], "accelerator": "cpu"}}
    hp = {"n_members": 2, "ridge_blend": 0.5, "output_rank": None, "voxel_gain": False}
    built = []
    real_build = trainer_mod.build_model
    monkeypatch.setattr(trainer_mod, "build_model", lambda *a, **k: built.append(real_build(*a, **k)) or built[-1])
    res = fit_torch(tiny_prepared, sp, "eeg2fmri_net", hp, train_config=cfg, progress_bar=False)
    fresh = built[-1]  # the refitted network, as trained
    plain = fit_torch(tiny_prepared, sp, "eeg2fmri_net", hp, train_config={**cfg, "optimizer": {**cfg["optimizer"], "refit": False}}, progress_bar=False)
    m, p = res.model.module, plain.model.module
    assert res.info["refit"]["epochs"] == plain.info["best_epoch"] + 1
    for name in ("ridge_weight", "output_gain", "ridge_coef", "ridge_bias"):
        assert torch.equal(getattr(m, name), getattr(p, name)), name
    kept = set(m.after_fit_state)
    mine, new = m.state_dict(), fresh.state_dict()
    assert {k for k in new if k.split(".")[0] in kept} <= {"output_gain", "ridge_weight"}  # (the rest is registered by after_fit)
    for k, v in new.items():
        if k.split(".")[0] not in kept:
            assert torch.equal(mine[k], v), k
    assert not torch.equal(m.latent_norm.running_mean, p.latent_norm.running_mean)  # the new network's statistics
    assert any(not torch.equal(a, b) for a, b in zip(m.parameters(), p.parameters()))
    with pytest.raises(Eeg2fmriInputError, match=r"optimizer\.refit: expected a single-node run .* got trainer\.num_nodes=2"):
        trainer_mod._check_refit_nodes(2)
    lin = fit_torch(tiny_prepared, sp, "eeg2fmri_net", {**hp, "ridge_blend": 1.0}, train_config=cfg, progress_bar=False)
    assert "not used" in lin.info["refit"]["skipped"]


def test_train_says_when_its_validation_windows_are_in_sample(prepared_dir, tmp_path, capsys, caplog, monkeypatch):
    """optimizer.refit (and refit=True) put the validation windows into the model's training data: train's validation
    line, metrics.json and the calibration warning say so (a review: they were reported as held out)."""
    import logging

    from eeg2fmri.cli import main
    from eeg2fmri.training.fit import FitResult
    from eeg2fmri.workflows.train import in_sample_reason

    cfg_path = tmp_path / "train.yaml"
    cfg_path.write_text(
        f"seed: 4\nout: run\ndata: {{prepared: {prepared_dir}}}\nsplit: {{protocol: within}}\n"
        f"model: {{name: {MODEL}, hparams: {{hidden: 8}}}}\noptimizer: {{lr: 1.0e-2, batch_size: 8, max_epochs: 3, patience: 2, refit: true}}\n"
        "trainer: {log: [], accelerator: cpu}\n"
    )
    with caplog.at_level(logging.INFO, logger="eeg2fmri"):
        assert main(["train", str(cfg_path), "-q"]) == 0
    why = "optimizer.refit trained the network on the validation windows too"
    assert f"(in-sample: {why})" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["validation_in_sample"] == why and metrics["training"]["refit"]["epochs"] == metrics["training"]["best_epoch"] + 1
    # the residuals before the refit were kept: calibration.json is held out (no in-sample warning)
    assert json.loads((tmp_path / "run" / "model" / "calibration.json").read_text())["residuals"].startswith("held out: kept from the fit")
    assert "comes from in-sample residuals" not in caplog.text
    # a model that refitted without keeping them (e.g. a plugin's): warned
    import types

    import eeg2fmri.evaluation.uncertainty as unc
    from eeg2fmri.workflows.train import _save_calibration

    caplog.clear()
    monkeypatch.setattr(unc, "calibrate_uncertainty", lambda *a, **k: (_ for _ in ()).throw(Eeg2fmriInputError("no windows")))
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        _save_calibration(types.SimpleNamespace(), None, types.SimpleNamespace(selections={"val": {0: [1]}}), {}, tmp_path, why)
    assert f"calibration.json (synthesize --uncertainty) comes from in-sample residuals: {why}" in caplog.text
    fr = FitResult(None, None, "ridge_hrf", {"refit": True}, 0.0, {})
    assert in_sample_reason(fr) == "refit=True fitted the model on the validation windows too"
    assert in_sample_reason(FitResult(None, None, "eeg2fmri_net", {}, 0.0, {"refit": {"skipped": "unused"}})) is None


def test_train_saves_a_ridge_with_a_penalty_per_output(prepared_dir, tmp_path, capsys):
    """ridge_hrf alpha_per_target=True through eeg2fmri train (user test 14: the per-output penalties, an array, crashed
    the writing of model.json, and nothing was saved): saved, loaded, the penalties summarised in metrics.json."""
    from eeg2fmri.cli import main
    from eeg2fmri.models import load_model

    cfg_path = tmp_path / "ridge.yaml"
    cfg_path.write_text(f"seed: 0\nout: run\ndata: {{prepared: {prepared_dir}}}\nsplit: {{protocol: within}}\n"
                        "model: {name: ridge_hrf, hparams: {alpha_per_target: true, hrf: canonical}}\n")
    assert main(["train", str(cfg_path), "-q"]) == 0
    out = tmp_path / "run"
    tr = json.loads((out / "metrics.json").read_text())["training"]
    apt = tr["alpha_per_target"]
    assert apt["min"] <= apt["median"] == tr["alpha"] <= apt["max"]
    assert tr["hrf"] == "canonical" and "hrf_scores" not in tr  # (given, not chosen)
    assert f"chosen on the validation windows: HRF basis canonical, penalty {tr['alpha']:g} (median over outputs)" in capsys.readouterr().out
    loaded = load_model(out / "model")
    assert np.asarray(loaded.model.alpha_).shape == (int(np.asarray(loaded.mask).sum()),)
    assert json.loads((out / "model" / "model.json").read_text())["card"]


def test_optimizer_floor_stops_a_fit_whose_validation_score_stays_below_it(tiny_prepared, split):
    """optimizer.floor = [value, epochs]: a fit whose best monitored value has not reached ``value`` after ``epochs``
    epochs stops there (recorded as stopped_at_floor, no epoch-limit advice); one that reached it goes on; bad values are
    refused. eeg2fmri_net recommends [0.02, 10] on val_r: the level its blend guard requires of the validation r."""
    import re

    from eeg2fmri.models.flagship import _NOISY_VAL_R, EEG2fMRINet
    from eeg2fmri.training import fit_model
    from eeg2fmri.training.config import resolve_config

    n_out = int(tiny_prepared.mask.sum())
    targets = {k: {i: np.ones((len(v), n_out), np.float32) for i, v in split.selections[k].items()} for k in ("train", "val")}
    targets["test"] = _Forbidden()

    def fit(floor):
        return fit_model(tiny_prepared, split, BIAS, {}, targets, train_config={
            "seed": 0, "optimizer": {"lr": 2e-2, "batch_size": 8, "max_epochs": 5, "patience": None, "floor": floor},
            "trainer": {"accelerator": "cpu", "log": [], "progress_bar": False}})

    low = fit([-1.0, 2])  # val_loss (min) never reaches -1: stopped after epoch 1
    assert len(low.info["history"]) == 2 and low.info["stopped_early"] and not low.info["at_epoch_limit"]
    assert re.fullmatch(r"the validation val_loss's best in the first 2 epoch\(s\), [\d.e+-]+, did not reach optimizer\.floor -1",
                        low.info["stopped_at_floor"])
    best = min(h["val_loss"] for h in low.info["history"])
    assert f"{best:.4g}" in low.info["stopped_at_floor"]
    high = fit([1e9, 2])  # reached at once: the fit runs to max_epochs
    assert len(high.info["history"]) == 5 and "stopped_at_floor" not in high.info
    assert EEG2fMRINet.recommended_train_config["optimizer"]["floor"] == [_NOISY_VAL_R, 10]
    assert resolve_config({"model": {"name": "eeg2fmri_net"}}, require_model=False)["optimizer"]["floor"] == [0.02, 10]
    # the recommended floor is a validation r: another monitor drops it unless given with it (review: a loss never falls
    # below 0.02, so every fit stopped after 10 epochs); benchmark's merge does the same
    from eeg2fmri.commands.benchmark import _merge_onto_recommended

    assert resolve_config({"model": {"name": "eeg2fmri_net"}, "optimizer": {"monitor": "val_loss"}}, require_model=False)["optimizer"]["floor"] is None
    assert resolve_config({"model": {"name": "eeg2fmri_net"}, "optimizer": {"monitor": "val_loss", "floor": [0.9, 3]}},
                          require_model=False)["optimizer"]["floor"] == [0.9, 3]
    merged = _merge_onto_recommended(EEG2fMRINet.recommended_train_config, {"optimizer": {"monitor": "val_mse"}})
    assert "floor" not in merged["optimizer"]
    assert resolve_config({**merged, "model": {"name": "eeg2fmri_net"}}, require_model=False)["optimizer"]["floor"] is None
    for bad in ([0.02], [0.02, 0], [0.02, 2.5], "0.02", [float("nan"), 3], [0.02, float("inf")], [0.02, float("nan")]):
        with pytest.raises(Eeg2fmriInputError, match=r"optimizer\.floor.*null or \[value, epochs\]"):
            resolve_config({"optimizer": {"floor": bad}}, require_model=False)


def test_closed_form_models_keep_the_scikit_learn_contract(tiny_prepared):
    """User test 31: ridge_hrf and mean, "scikit-learn style", had no get_params(deep=...), set_params or clone, and
    ridge_hrf turned alphas=None into a tuple of 15 floats (parameters did not round-trip)."""
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.models import build_model
    from eeg2fmri.models.ridge_hrf import DEFAULT_ALPHAS
    from eeg2fmri.training import fit_model
    from eeg2fmri.training.fit import stack_split

    sp = make_split(tiny_prepared, "within")
    fitted = fit_model(tiny_prepared, sp, "ridge_hrf", {"hrf": "lags"})
    m = fitted.model
    params = m.get_params(deep=True)
    assert params["alphas"] is None and params["hrf"] == "lags" and params["spec"] is fitted.spec
    twin = clone(m)  # unfitted, same parameters
    assert twin.get_params() == params and not hasattr(twin, "coef_")
    with pytest.raises(NotFittedError):
        check_is_fitted(twin)
    check_is_fitted(m)
    assert twin.set_params(hrf="canonical", alpha_per_target=True) is twin and twin.hrf == "canonical" and twin.alpha_per_target is True
    # parameters set after __init__ are checked at fit, those given to it at once (a review: a scalar alphas crashed in fit)
    x, y, _ = stack_split(tiny_prepared, sp, split_targets(tiny_prepared, sp), "train")
    with pytest.raises(Eeg2fmriInputError, match=r"unknown hrf 'bogus'; choose one of"):
        clone(m).set_params(hrf="bogus").fit(x, y)
    with pytest.raises(Eeg2fmriInputError, match=r"ridge_hrf: expected alphas as a non-empty list of positive numbers, or null for the "
                                                 r"default grid, got 10; e\.g\. alphas: \[0\.1, 1, 10\]"):
        build_model("ridge_hrf", fitted.spec, alphas=10)
    with pytest.raises(Eeg2fmriInputError, match=r"expected alphas as a non-empty list of positive numbers.*got \[1, -2\]"):
        build_model("ridge_hrf", fitted.spec, alphas=[1, -2])
    assert m.alpha_ in DEFAULT_ALPHAS or np.isin(np.atleast_1d(m.alpha_), DEFAULT_ALPHAS).all()
    again = fit_model(tiny_prepared, sp, "ridge_hrf", {k: v for k, v in params.items() if k != "spec"})
    base = build_model("mean", fitted.spec)
    assert clone(base).get_params() == {"spec": fitted.spec}
    assert again.model.get_params() == params | {"spec": again.model.spec}


def test_a_split_prints_its_counts(tiny_prepared):
    """User test 31: print(split) printed every volume index (hundreds of lines)."""
    from eeg2fmri.datasets.targets import make_split

    sp = make_split(tiny_prepared, "within")
    text = repr(sp)
    assert text.startswith("Split(protocol='within', train=") and "\n" not in text and len(text) < 300
    assert f"test={sp.n_samples('test')} windows in" in text and f"n_frames={sp.n_frames}" in text


def test_sigterm_during_training_exits_143_and_says_how_to_resume(prepared_dir, tmp_path):
    """User test 41: SIGTERM (a scheduler's time limit, kill) during train exited with status 0 and no word -- Lightning
    turns it into a SystemExit without a code -- so `train && evaluate` went on. Now status 143 and the resume advice.
    (In a subprocess: a signal sent to the test process itself would stop pytest if a handler were missing.)"""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(f"""
        import os, signal
        import pytorch_lightning as pl
        from eeg2fmri.datasets import load_prepared
        from eeg2fmri.datasets.targets import make_split
        from eeg2fmri.training.trainer import fit_torch
        import tests.test_training as tt

        class Term(pl.Callback):
            def on_train_epoch_end(self, trainer, module):
                if trainer.current_epoch == 1:
                    os.kill(os.getpid(), signal.SIGTERM)

        ds = load_prepared({str(prepared_dir)!r})
        fit_torch(ds, make_split(ds, "within"), tt.MODEL, {{"hidden": 4}}, out_dir={str(tmp_path / "run")!r}, progress_bar=False,
                  train_config={{"optimizer": {{"max_epochs": 6, "batch_size": 8, "patience": None}}, "trainer": {{"accelerator": "cpu"}}}},
                  callbacks=[Term()])
        print("finished")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=str(Path(__file__).parents[1]))
    assert done.returncode == 143, (done.returncode, done.stderr[-2000:])
    assert "finished" not in done.stdout
    assert f"training terminated by SIGTERM at epoch 2; the last completed epoch's checkpoint is in {tmp_path / 'run'}: run the same " \
           "command again (train: with --resume, Python: resume=True; tune: it runs the trial again)" in done.stderr
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()


def test_rerun_warns_when_the_prepared_data_changed(tiny_prepared, tmp_path, caplog):
    """User test 41: a prepared folder re-made in place from changed inputs gave a re-run of the recorded config another
    test error in silence. metrics.json records a data fingerprint (the runs, their inputs' checksums, the prepare
    options); a re-run beside a finished run whose fingerprint differs is warned."""
    import copy
    import logging

    from eeg2fmri.datasets.prepared import data_fingerprint
    from eeg2fmri.workflows.train import changed_data

    fp = data_fingerprint(tiny_prepared)
    assert fp is not None and len(fp) == 64 and fp == data_fingerprint(copy.deepcopy(tiny_prepared))
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"data_fingerprint": fp}))
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        assert changed_data(metrics, tiny_prepared) is False
    assert "prepared data differ" not in caplog.text
    changed = copy.deepcopy(tiny_prepared)
    key = changed.runs[0].key
    changed.provenance["inputs"][key]["bold_sha1"] = "0" * 40  # one BOLD file changed since
    assert data_fingerprint(changed) != fp
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        assert changed_data(metrics, changed) is True
    assert f"the prepared data differ from those the run in {tmp_path} was trained on (data fingerprint {fp[:12]}..." in caplog.text
