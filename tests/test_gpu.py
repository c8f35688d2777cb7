"""CUDA-only checks: skipped (with the reason shown) where no GPU is visible, as on CI.

Run them on a GPU machine with ``pytest tests/test_gpu.py``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from eeg2fmri.models import build_model
from tests.test_models_all import BATCH, INPUT_KIND, N_SUBJ, SMALL, SPECS, TORCH_MODELS

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture
def deterministic():
    """``torch.use_deterministic_algorithms(True)`` (what ``trainer.deterministic: true`` sets), restored afterwards."""
    prev = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    env = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(prev[0], warn_only=prev[1])
    if env is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    else:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = env


def _train_steps(name: str, n_steps: int = 3) -> dict[str, torch.Tensor]:
    spec = SPECS[INPUT_KIND.get(name, "raw")]
    torch.manual_seed(0)
    model = build_model(name, spec, **SMALL.get(name, {})).cuda().train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(BATCH, *spec.input_shape, generator=g).abs().cuda()
    y = torch.randn(BATCH, *spec.output_shape, generator=g).cuda()
    s = (torch.arange(BATCH) % N_SUBJ).cuda()
    for _ in range(n_steps):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            if hasattr(model, "training_terms"):
                terms = model.training_terms(x, y, subject=s)
                loss = (terms["pred"].float() - y).square().mean() + sum(
                    v.float() for k, v in terms.items() if k in ("latent_cosine", "organize_channels")
                )
            else:
                loss = (model(x, subject=s).float() - y).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_training_is_bitwise_repeatable_in_deterministic_mode(name, deterministic):
    # every registered torch model trains under torch.use_deterministic_algorithms(True) on CUDA
    # (no op without a deterministic kernel) and two runs from one seed give identical weights
    a = _train_steps(name)
    b = _train_steps(name)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), name
    assert all(torch.isfinite(v).all() for v in a.values() if v.is_floating_point())


def test_trainer_deterministic_gpu_run_reproduces(tiny_prepared):
    # `trainer.deterministic: true` on a GPU: two fits of the flagship give the same weights and history
    from eeg2fmri.datasets.targets import make_split
    from eeg2fmri.training.trainer import fit_torch

    split = make_split(tiny_prepared, "within")
    cfg = {"seed": 3, "optimizer": {"max_epochs": 3, "batch_size": 16, "precision": "bf16-mixed", "patience": None},
           "trainer": {"accelerator": "gpu", "devices": 1, "deterministic": True, "log": [], "progress_bar": False}}
    runs = [fit_torch(tiny_prepared, split, "eeg2fmri_net", {"n_members": 2}, train_config=cfg, progress_bar=False) for _ in range(2)]
    a, b = (r.model.state_dict() for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert runs[0].info["history"] == runs[1].info["history"]
    assert np.isfinite(runs[0].info["history"][-1]["val_loss"])
