"""Gradient clipping with the fused Adam/AdamW step under bfloat16 mixed precision (trainer.LitModel)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from eeg2fmri.training.losses import WeightedLoss
from eeg2fmri.training.trainer import LitModel, _fused_ok


def test_fused_step_allowed_with_clipping_under_bf16_but_not_16_mixed():
    ps = [nn.Parameter(torch.zeros(3))]
    assert _fused_ok(ps, "bf16-mixed", 1.0)  # no gradient scaler: the module clips the true gradients itself
    assert _fused_ok(ps, "32", 1.0)
    assert not _fused_ok(ps, "16-mixed", 1.0)  # gradients still scaled where Lightning clips
    assert _fused_ok(ps, "16-mixed", None)
    assert not _fused_ok([], "32", None)


def _lit(precision: str, clip: float) -> tuple[LitModel, torch.optim.Optimizer]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(7, 5), nn.ReLU(), nn.Linear(5, 3))
    opt = {"name": "adamw", "lr": 1e-3, "weight_decay": 0.0, "scheduler": None, "max_epochs": 2, "precision": precision, "gradient_clip": clip}
    lit = LitModel(net, WeightedLoss({"mse": 1.0}), opt, seed=0)
    optim = lit.configure_optimizers()
    x = torch.randn(11, 7) * 50
    (net(x) ** 2).mean().backward()  # gradients with a norm far above the clip
    return lit, optim


@pytest.mark.parametrize("algorithm", ["norm", "value"])
def test_fused_bf16_clipping_equals_torch_clipping(algorithm):
    lit, optim = _lit("bf16-mixed", 0.5)
    assert optim.defaults.get("fused") is True
    grads = [p.grad.clone() for p in lit.model.parameters()]
    ref = [nn.Parameter(torch.zeros_like(g)) for g in grads]
    for r, g in zip(ref, grads):
        r.grad = g.clone()
    if algorithm == "norm":
        assert float(torch.nn.utils.get_total_norm(grads)) > 0.5
        torch.nn.utils.clip_grad_norm_(ref, 0.5)
    else:
        torch.nn.utils.clip_grad_value_(ref, 0.5)
    lit.configure_gradient_clipping(optim, 0.5, algorithm)
    for p, r in zip(lit.model.parameters(), ref):
        assert torch.equal(p.grad, r.grad)
    if algorithm == "norm":
        assert float(torch.nn.utils.get_total_norm([p.grad for p in lit.model.parameters()])) == pytest.approx(0.5, rel=1e-4)


def test_unfused_optimizer_still_goes_through_lightning(monkeypatch):
    lit, optim = _lit("16-mixed", 0.5)
    assert not optim.defaults.get("fused")
    seen = {}
    monkeypatch.setattr(lit, "clip_gradients", lambda o, gradient_clip_val=None, gradient_clip_algorithm=None: seen.update(v=gradient_clip_val, a=gradient_clip_algorithm))
    before = copy.deepcopy([p.grad for p in lit.model.parameters()])
    lit.configure_gradient_clipping(optim, 0.5, "norm")
    assert seen == {"v": 0.5, "a": "norm"}
    assert all(torch.equal(p.grad, b) for p, b in zip(lit.model.parameters(), before))


def test_calhas2022_trains_with_clipping_under_bf16_mixed(tiny_bids, monkeypatch):
    """The published model's recommended config (gradient_clip 1.0, precision auto) under bf16-mixed: trains, fused, clipped."""
    from eeg2fmri.datasets import prepare_dataset
    from eeg2fmri.datasets.targets import make_split
    from eeg2fmri.training import fit_model

    ds = prepare_dataset(tiny_bids, {"representation": "stft", "stft_fmax": 12.0}, progress_bar=False)
    split = make_split(ds, "within", n_frames=4)
    hp = {"latent_dim": 6, "n_filters": 2, "n_eeg_blocks": 1, "n_fmri_blocks": 1, "fmri_hidden": 5}
    cfg = {"seed": 1, "optimizer": {"max_epochs": 2, "batch_size": 8, "patience": None, "gradient_clip": 1.0, "precision": "bf16-mixed"},
           "trainer": {"log": [], "progress_bar": False, "accelerator": "cpu"}}
    seen = []
    orig = LitModel.configure_gradient_clipping

    def spy(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        seen.append((bool(optimizer.defaults.get("fused")), gradient_clip_val))
        return orig(self, optimizer, gradient_clip_val, gradient_clip_algorithm)

    monkeypatch.setattr(LitModel, "configure_gradient_clipping", spy)
    res = fit_model(ds, split, "calhas2022", hp, train_config=cfg)
    assert len(res.info["history"]) == 2
    assert seen and set(seen) == {(True, 1.0)}  # every step: the fused optimizer, clipped at 1.0
