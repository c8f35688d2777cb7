"""Checks every registered torch model must pass (the per-model files test the details)."""

from __future__ import annotations

import pytest
import torch

from eeg2fmri.models import DataSpec, build_model, get_model_class, list_models

# a different size on every axis: batch 6, 5 channels, 3 subjects, volume (6, 5, 4)
BATCH, N_SUBJ = 6, 3
SPECS = {
    "stft": DataSpec("stft", (5, 7, 4), (6, 5, 4), sfreq=250.0, tr=2.0, freqs=tuple(float(i + 1) for i in range(7)), frame_rate=0.5),
    "raw": DataSpec("raw", (5, 97), (6, 5, 4), sfreq=50.0, tr=2.0),
    "bandpower": DataSpec("bandpower", (5, 4, 7), (6, 5, 4), sfreq=250.0, tr=2.0, frame_rate=0.5, n_subjects=N_SUBJ),
}
INPUT_KIND = {"calhas2022": "stft", "eeg2fmri_net": "bandpower"}  # the others read raw EEG
SMALL = {"calhas2022": {"latent_dim": 16, "n_fourier": 24, "n_filters": 2}}
TORCH_MODELS = [m for m in list_models() if getattr(get_model_class(m), "kind", "torch") == "torch" and not m.startswith("_")]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_every_published_model_and_the_flagship_are_registered():
    assert {"calhas2022", "bricman_fc", "bricman_conv", "bricman_transformer", "beira", "eeg2fmri_net"} <= set(TORCH_MODELS)


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_trains_under_bf16_autocast_on_cpu(name):
    # optimizer.precision: bf16-mixed on the CPU: a training step runs, gives float32 predictions
    # of the target's shape and finite gradients that reach the parameters
    spec = SPECS[INPUT_KIND.get(name, "raw")]
    torch.manual_seed(0)
    model = build_model(name, spec, **SMALL.get(name, {})).train()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(BATCH, *spec.input_shape, generator=g).abs()
    y = torch.randn(BATCH, *spec.output_shape, generator=g)
    s = torch.arange(BATCH) % N_SUBJ
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pred = model.training_terms(x, y, subject=s)["pred"] if hasattr(model, "training_terms") else model(x, subject=s)
    assert pred.shape == y.shape and pred.dtype in (torch.float32, torch.bfloat16)
    (pred.float() - y).square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(gr is not None and float(gr.abs().sum()) > 0 for gr in grads)
    assert all(torch.isfinite(gr).all() for gr in grads if gr is not None)
