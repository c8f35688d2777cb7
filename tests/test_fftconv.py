"""Depthwise convolution by FFT (models/_fftconv.py) against torch's F.conv1d, values and gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from eeg2fmri.models._fftconv import FFT_MIN_TAPS, depthwise_conv1d


def _pair(c, k, stride, bias, seed=0):
    torch.manual_seed(seed)
    conv = nn.Conv1d(c, c, k, stride=stride, padding=k // 2, groups=c, bias=bias).double()
    x = torch.randn(3, c, 211, dtype=torch.float64)
    return conv, x


@pytest.mark.parametrize(("k", "stride", "bias"), [(17, 1, False), (51, 1, True), (25, 4, False), (33, 3, True)])
def test_values_and_gradients_match_conv1d(k, stride, bias):
    conv, x = _pair(5, k, stride, bias)
    conv32 = nn.Conv1d(5, 5, k, stride=stride, padding=k // 2, groups=5, bias=bias)
    conv32.load_state_dict({n: v.float() for n, v in conv.state_dict().items()})
    x32 = x.float().requires_grad_()
    xd = x.clone().requires_grad_()
    ref = conv(xd)  # float64 reference
    out = depthwise_conv1d(x32, conv32)
    assert out.shape == ref.shape == (3, 5, (211 - 1) // stride + 1)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, rtol=0, atol=2e-5 * float(ref.detach().abs().max()))
    g = torch.randn_like(ref)
    ref.backward(g)
    out.backward(g.float())
    torch.testing.assert_close(x32.grad.double(), xd.grad, rtol=0, atol=2e-5 * float(xd.grad.abs().max()))
    torch.testing.assert_close(conv32.weight.grad.double(), conv.weight.grad, rtol=0, atol=2e-5 * float(conv.weight.grad.abs().max()))
    if bias:
        torch.testing.assert_close(conv32.bias.grad.double(), conv.bias.grad, rtol=0, atol=1e-4 * float(conv.bias.grad.abs().max()))


def test_bfloat16_input_under_autocast_is_computed_in_float32():
    conv, x = _pair(4, 21, 1, False, seed=2)
    conv = conv.float()
    with torch.no_grad():
        ref = conv(x.float())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = depthwise_conv1d(x.to(torch.bfloat16), conv)
    assert out.dtype == torch.float32
    # only the input's bfloat16 rounding remains (a bfloat16 convolution would add its own)
    assert float((out - ref).abs().max()) < 0.02 * float(ref.detach().abs().max())


@pytest.mark.parametrize("case", ["short", "even", "not_depthwise", "valid_padding", "dilated"])
def test_other_convolutions_are_applied_as_they_are(case):
    torch.manual_seed(1)
    k = FFT_MIN_TAPS - 1 if case == "short" else 20 if case == "even" else 19
    kw = {"padding": k // 2, "groups": 6}
    if case == "not_depthwise":
        kw["groups"] = 3
    if case == "valid_padding":
        kw["padding"] = 0
    if case == "dilated":
        kw["dilation"] = 2
    conv = nn.Conv1d(6, 6, k, bias=False, **kw)
    x = torch.randn(2, 6, 97)
    assert torch.equal(depthwise_conv1d(x, conv), conv(x))


def test_beira_front_end_is_the_convolutions_it_holds():
    from eeg2fmri.models import DataSpec, build_model

    spec = DataSpec(input_kind="raw", input_shape=(7, 613), output_shape=(9,), sfreq=100.0, tr=2.0, ch_names=tuple(f"c{i}" for i in range(7)))
    model = build_model("beira", spec, n_virtual=5, seed=0).eval()
    x = torch.randn(4, 7, 613)
    with torch.no_grad():
        fast = model.features(x)
        direct = model.lowpass(model.bandpass(model.unmix(x)).abs())
    assert model.bandpass.kernel_size[0] >= FFT_MIN_TAPS  # the FFT path is the one compared
    torch.testing.assert_close(fast, direct, rtol=0, atol=1e-5 * float(direct.abs().max()))
