"""The cheap-CPU-mask dropout (models/_dropout.py) against torch's own dropout."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from eeg2fmri.models import DataSpec, build_model
from eeg2fmri.models._dropout import Dropout, dropout, use_fast_dropout


@pytest.mark.parametrize("p", [0.1, 0.5, 0.73])
def test_drop_rate_and_mean_match_torch(p):
    x = torch.full((300, 701), 2.0)
    torch.manual_seed(3)
    out = dropout(x, p, training=True)
    torch.manual_seed(3)
    ref = F.dropout(x, p, training=True)
    n = x.numel()
    sd = math.sqrt(p * (1 - p) / n)
    # share of zeros: the requested p (quantised to 1/32768), as torch's
    assert abs(float((out == 0).float().mean()) - p) < 5 * sd + 1 / 32768
    assert abs(float((ref == 0).float().mean()) - p) < 5 * sd
    # kept values scaled so that the expectation is the input
    kept = out[out != 0]
    thr = round(p * 32768)
    assert torch.allclose(kept, torch.full_like(kept, 2.0 * 32768 / (32768 - thr)))
    assert abs(float(out.mean()) - 2.0) < 2.0 * 5 * math.sqrt(p / (1 - p) / n)


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_every_lane_of_a_draw_drops_at_p_independently(p):
    # the mask comes from four 15-bit lanes of each 64-bit draw: each lane position must drop at rate p, and neighbours
    # (lanes of one draw) must be uncorrelated
    torch.manual_seed(11)
    x = torch.ones(4 * 60_001)
    drop = (dropout(x, p, training=True) == 0).double()
    lanes = drop.reshape(-1, 4)
    n = lanes.shape[0]
    sd = math.sqrt(p * (1 - p) / n)
    for j in range(4):
        assert abs(float(lanes[:, j].mean()) - p) < 5 * sd, j
    for j in range(3):
        r = float(torch.corrcoef(torch.stack([lanes[:, j], lanes[:, j + 1]]))[0, 1])
        assert abs(r) < 5 / math.sqrt(n), (j, r)


def test_gradient_is_the_mask():
    x = torch.randn(57, 31, requires_grad=True)
    torch.manual_seed(0)
    out = dropout(x, 0.4, training=True)
    out.sum().backward()
    scale = 32768 / (32768 - round(0.4 * 32768))
    expected = torch.where(out.detach() != 0, torch.full_like(x, scale), torch.zeros_like(x))
    assert torch.allclose(x.grad, expected)


def test_seeded_runs_repeat_and_eval_is_identity():
    x = torch.randn(8, 9, 10)
    torch.manual_seed(5)
    a = dropout(x, 0.3)
    torch.manual_seed(5)
    b = dropout(x, 0.3)
    assert torch.equal(a, b)
    assert dropout(x, 0.3, training=False) is x
    assert dropout(x, 0.0) is x
    m = Dropout(0.3).eval()
    assert torch.equal(m(x), x)


def test_inplace_and_edge_probabilities():
    x = torch.ones(40, 50)
    y = x.clone()
    torch.manual_seed(1)
    out = dropout(y, 0.5, inplace=True)
    assert out.data_ptr() == y.data_ptr()
    assert set(torch.unique(out).tolist()) <= {0.0, 2.0}
    # p = 1 and p below the mask's resolution go through torch's dropout
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))
    torch.manual_seed(2)
    tiny = dropout(x, 1e-6)
    torch.manual_seed(2)
    assert torch.equal(tiny, F.dropout(x, 1e-6, True))


def test_use_fast_dropout_replaces_transformer_dropouts_only():
    layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.2, batch_first=True)
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    use_fast_dropout(layer)
    drops = [m for m in layer.modules() if isinstance(m, nn.Dropout)]
    assert drops and all(type(m) is Dropout and m.p == 0.2 for m in drops)
    assert all(torch.equal(before[k], v) for k, v in layer.state_dict().items())
    layer.eval()
    x = torch.randn(3, 5, 16)
    assert layer(x).shape == x.shape


@pytest.mark.parametrize("name", ["bricman_transformer", "bricman_conv", "beira"])
def test_raw_models_use_it(name):
    spec = DataSpec(input_kind="raw", input_shape=(5, 240), output_shape=(6, 7, 3), sfreq=40.0, tr=2.0, frame_rate=40.0)
    model = build_model(name, spec, dropout=0.2)
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert drops and all(type(m) is Dropout for m in drops)
