"""Tests of the Calhas & Henriques (2022) synthesiser (``calhas2022``)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from eeg2fmri.models import DataSpec, build_model, list_models
from eeg2fmri.models.calhas2022 import Calhas2022, laplace_nll, organize_channels
from eeg2fmri.utils.validation import Eeg2fmriInputError

BATCH = 3
IN_SHAPE = (5, 7, 4)  # channels, freqs, frames: a different size on every axis
VOLUME = (6, 5, 4)
VECTOR = (11,)
SMALL = {"latent_dim": 16, "n_fourier": 24, "n_filters": 2, "fmri_hidden": 32}


def make_spec(output_shape=VOLUME, input_shape=IN_SHAPE, input_kind="stft") -> DataSpec:
    n_freqs = input_shape[1] if input_kind != "raw" else 0
    return DataSpec(
        input_kind=input_kind,
        input_shape=input_shape,
        output_shape=output_shape,
        sfreq=250.0,
        tr=2.0,
        freqs=tuple(float(i + 1) for i in range(n_freqs)) if n_freqs else None,
        frame_rate=0.5 if input_kind != "raw" else None,
    )


def make_batch(
    spec: DataSpec, seed: int = 0, batch: int = BATCH
) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand((batch, *spec.input_shape), generator=gen)
    y = torch.randn((batch, *spec.output_shape), generator=gen)
    return x, y


def build(spec: DataSpec, torch_seed: int = 0, **hparams) -> Calhas2022:
    torch.manual_seed(torch_seed)
    return build_model("calhas2022", spec, **{**SMALL, **hparams})


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(params=[VOLUME, VECTOR], ids=["volume", "vector"])
def spec(request) -> DataSpec:
    return make_spec(request.param)


def test_registered():
    assert "calhas2022" in list_models()


def test_forward_backward_shapes(spec):
    model = build(spec)
    x, y = make_batch(spec)
    out = model(x)
    assert out.shape == (BATCH, *spec.output_shape)
    terms = model.training_terms(x, y)
    assert terms["pred"].shape == (BATCH, *spec.output_shape)
    for key in ("latent_cosine", "organize_channels"):
        assert terms[key].shape == ()
        assert torch.isfinite(terms[key])
    assert "log_scale" not in terms and "kl" not in terms
    assert 0.0 <= terms["latent_cosine"].item() <= 2.0
    loss = (
        (terms["pred"] - y).abs().mean() + terms["latent_cosine"] + 0.1 * terms["organize_channels"]
    )
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
    # the attention key matrix and the Fourier length scale learn
    assert model.attention.weight.grad.abs().sum() > 0
    assert model.fourier.log_lengthscale.grad.abs() > 0
    # the frozen Fourier projection is a buffer, not a parameter
    assert "fourier.projection" in model.state_dict()
    assert all("projection" not in n for n, _ in model.named_parameters())


def test_default_hparams_and_shapes_follow_spec():
    # default latent size (343) and a time axis of 3 frames / a length-1 axis
    for in_shape, out_shape in [((4, 9, 3), (3, 4, 5)), ((3, 6, 1), (2, 1, 7)), ((2, 5, 3), (13,))]:
        spec = make_spec(out_shape, input_shape=in_shape)
        torch.manual_seed(0)
        model = build_model("calhas2022", spec)
        assert model.hparams["latent_dim"] == 343
        assert model.head.out_features == spec.n_outputs
        assert model.attention.weight.shape == (in_shape[0], in_shape[1] * in_shape[2])
        x, y = make_batch(spec, batch=2)
        assert model(x).shape == (2, *out_shape)
        model.training_terms(x, y)["pred"].sum().backward()


def test_attention_scores_and_regulariser():
    spec = make_spec()
    model = build(spec)
    x, _ = make_batch(spec)
    scores = model.attention_scores(x)
    assert scores.shape == (BATCH, IN_SHAPE[0], IN_SHAPE[0])
    torch.testing.assert_close(scores.sum(-1), torch.ones(BATCH, IN_SHAPE[0]))
    # OrganizeChannels: ~0 for a permutation, large when one channel takes everything, finite at 0
    c = 4
    perm = torch.eye(c)[[2, 0, 3, 1]].expand(2, c, c)
    collapsed = torch.zeros(2, c, c)
    collapsed[:, :, 0] = 1.0
    assert abs(float(organize_channels(perm))) < 1e-4
    value = organize_channels(collapsed)
    assert torch.isfinite(value) and float(value) > 10.0


def test_overfits_tiny_batch(spec):
    model = build(spec, dropout=0.0)
    x, y = make_batch(spec)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    with torch.no_grad():
        first = float((model(x) - y).abs().mean())
    for _ in range(250):
        opt.zero_grad()
        terms = model.training_terms(x, y)
        mae = (terms["pred"] - y).abs().mean()
        (mae + terms["latent_cosine"] + 0.01 * terms["organize_channels"]).backward()
        opt.step()
    last = mae.item()
    # the best input-independent prediction (per-output median) still has MAE ~0.5 here
    assert first > 0.5
    assert last < 0.05 * first, (first, last)
    assert terms["latent_cosine"].item() < 0.1


def test_deterministic_with_seed(spec):
    x, _ = make_batch(spec)
    outs = []
    for _ in range(2):
        model = build(spec, torch_seed=123).eval()
        with torch.no_grad():
            outs.append(model(x))
    assert torch.equal(outs[0], outs[1])
    # the frozen Fourier projection depends only on the explicit seed hparam
    a, b, c = (
        build(spec, torch_seed=1),
        build(spec, torch_seed=2),
        build(spec, torch_seed=1, seed=7),
    )
    assert torch.equal(a.fourier.projection, b.fourier.projection)
    assert torch.equal(a.fourier.phase, b.fourier.phase)
    assert not torch.equal(a.fourier.projection, c.fourier.projection)
    # eval-mode forward is deterministic call to call
    model = build(spec).eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


@pytest.mark.parametrize(
    "options", [{}, {"aleatoric": True, "variational": True}], ids=["plain", "uncertain"]
)
def test_safetensors_roundtrip(spec, tmp_path, options):
    model = build(spec, torch_seed=0, **options)
    x, y = make_batch(spec)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):  # move weights and BatchNorm running statistics away from init
        opt.zero_grad()
        model.training_terms(x, y)["pred"].pow(2).mean().backward()
        opt.step()
    path = tmp_path / "calhas2022.safetensors"
    save_file(model.state_dict(), str(path))
    fresh = build(spec, torch_seed=99, **options)
    fresh.load_state_dict(load_file(str(path)), strict=True)
    model.eval()
    fresh.eval()
    with torch.no_grad():
        assert torch.equal(model(x), fresh(x))


def test_aleatoric(spec):
    model = build(spec, aleatoric=True)
    x, y = make_batch(spec)
    terms = model.training_terms(x, y)
    assert terms["log_scale"].shape == (BATCH, *spec.output_shape)
    nll = laplace_nll(terms["pred"], terms["log_scale"], y)
    assert nll.shape == () and torch.isfinite(nll)
    (nll + terms["latent_cosine"]).backward()
    assert model.log_scale_bias.grad is not None and model.log_scale_bias.grad.abs().sum() > 0
    mean, scale = model.predict_uncertainty(x)
    assert mean.shape == scale.shape == (BATCH, *spec.output_shape)
    assert (scale > 0).all()
    assert model.training  # mode restored
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(mean, model(x))
    with pytest.raises(Eeg2fmriInputError, match="variational=True"):
        model.predict_mc(x)


def test_laplace_nll_value():
    pred = torch.tensor([0.0, 1.0])
    y = torch.tensor([1.0, 1.0])
    log_scale = torch.log(torch.tensor([2.0, 0.5]))
    expected = ((1.0 / 2.0 + torch.log(torch.tensor(4.0))) + torch.log(torch.tensor(1.0))) / 2
    torch.testing.assert_close(laplace_nll(pred, log_scale, y), expected)


def test_variational(spec):
    model = build(spec, variational=True, aleatoric=True)
    x, y = make_batch(spec)
    terms = model.training_terms(x, y)
    assert terms["kl"].shape == () and terms["kl"].item() > 0
    assert terms["log_scale"].shape == (BATCH, *spec.output_shape)
    (terms["pred"].abs().mean() + 1e-6 * terms["kl"]).backward()
    assert model.head.weight_rho.grad is not None and model.head.weight_rho.grad.abs().sum() > 0
    # training-mode forward samples the head (posterior std widened so the noise shows)
    with torch.no_grad():
        model.head.weight_rho.fill_(0.5)
        assert not torch.equal(model(x), model(x))
    mean, std = model.predict_mc(x, n_samples=8, generator=torch.Generator().manual_seed(0))
    assert mean.shape == std.shape == (BATCH, *spec.output_shape)
    assert (std > 0).all()
    mean2, std2 = model.predict_mc(x, n_samples=8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(mean, mean2) and torch.equal(std, std2)
    mean_u, scale = model.predict_uncertainty(x, n_samples=4)
    assert mean_u.shape == scale.shape == (BATCH, *spec.output_shape)
    assert model.training  # mode restored after MC
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))  # eval: posterior means, deterministic


def test_wrong_input_kind_raises():
    spec = make_spec(input_shape=(5, 100), input_kind="raw")
    with pytest.raises(Eeg2fmriInputError, match="expected input_kind 'stft'"):
        build_model("calhas2022", spec)
    spec = make_spec(input_shape=IN_SHAPE, input_kind="bandpower")
    with pytest.raises(Eeg2fmriInputError, match="got 'bandpower'"):
        Calhas2022(spec)


def test_bad_inputs_raise():
    spec = make_spec()
    model = build(spec)
    x, y = make_batch(spec)
    with pytest.raises(Eeg2fmriInputError, match="expected x of shape"):
        model(x[:, :-1])
    with pytest.raises(Eeg2fmriInputError, match="expected y of shape"):
        model.training_terms(x, y[:, :-1])
    with pytest.raises(Eeg2fmriInputError, match="kernel_size"):
        build(spec, kernel_size=4)
    with pytest.raises(Eeg2fmriInputError, match="dropout"):
        build(spec, dropout=1.0)
    with pytest.raises(Eeg2fmriInputError, match="latent_dim"):
        build(spec, latent_dim=0)
    with pytest.raises(Eeg2fmriInputError, match="aleatoric=True"):
        model.predict_uncertainty(x)
    with pytest.raises(Eeg2fmriInputError, match="output_shape"):
        Calhas2022(make_spec(output_shape=(4, 5)))


@pytest.mark.parametrize(
    ("shape", "kernel"),
    [((3, 1, 6, 8, 10), (3, 3, 3)), ((2, 1, 5, 7, 4), (3, 1, 5)), ((2, 1, 4, 3, 1), (1, 3, 1)),
     ((2, 4, 5, 6, 7), (3, 3, 3)), ((3, 3, 4, 2, 5), (1, 3, 5))],
)
def test_banded_conv_equals_conv3d(shape, kernel):
    # the CUDA fast path for few-map inputs (a 2D convolution over the first two
    # axes with (last axis, map) pairs as channels) gives conv3d's values and gradients
    from eeg2fmri.models.calhas2022 import _banded_weight, _conv3d_banded

    torch.manual_seed(0)
    conv = torch.nn.Conv3d(shape[1], 5, kernel, padding=tuple(k // 2 for k in kernel), bias=True).double()
    x = torch.randn(shape, dtype=torch.float64).contiguous(memory_format=torch.channels_last_3d).requires_grad_(True)
    ref = conv(x)
    out = _conv3d_banded(x, conv)
    assert out.shape == ref.shape
    assert out.is_contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(out, ref)
    g_ref = torch.autograd.grad(ref.square().sum(), [x, conv.weight, conv.bias])
    g_out = torch.autograd.grad(out.square().sum(), [x, conv.weight, conv.bias])
    for a, b in zip(g_out, g_ref):
        torch.testing.assert_close(a, b)
    band = _banded_weight(conv.weight, shape[-1])
    c = shape[1]
    assert band.shape == (shape[-1] * 5, shape[-1] * c, kernel[0], kernel[1])
    # filter (w_out=0, o=0) reaches input positions 0 .. kw//2 only (channels (w_in, c) in that order)
    assert torch.count_nonzero(band[0, (kernel[2] // 2 + 1) * c :]) == 0
    # filter (w_out=0, o=1) on input channel (w_in=0, c=last) is weight[1, last, :, :, kw // 2]
    torch.testing.assert_close(band[1, c - 1], conv.weight[1, c - 1, :, :, kernel[2] // 2])


@pytest.mark.parametrize("kernel", [(2, 2, 2), (2, 3, 1)])
def test_amax_pool_equals_max_pool(kernel):
    # the deterministic CUDA pooling (reshape + amax, -inf padding for ceil_mode) equals max_pool3d
    from eeg2fmri.models.calhas2022 import _max_pool3d_amax

    torch.manual_seed(2)
    h = torch.randn(2, 3, 5, 7, 3, dtype=torch.float64).contiguous(memory_format=torch.channels_last_3d)
    h.requires_grad_(True)
    ref = torch.nn.functional.max_pool3d(h, kernel, kernel, ceil_mode=True)
    out = _max_pool3d_amax(h, kernel)
    torch.testing.assert_close(out, ref)
    g_ref = torch.autograd.grad(ref.square().sum(), h)[0]
    g_out = torch.autograd.grad(out.square().sum(), h)[0]
    torch.testing.assert_close(g_out, g_ref)


def test_resblock_split_matches_slicing(spec):
    # the residual block splits its merged conv output with split(); same values as slicing
    from eeg2fmri.models.calhas2022 import _ResBlock3d

    torch.manual_seed(1)
    block = _ResBlock3d(1, 3, (6, 5, 4), (3, 3, 3), (2, 2, 2)).double().eval()
    x = torch.randn(2, 1, 6, 5, 4, dtype=torch.float64)
    h = block.bn_in(block.pool(block.conv_in(x)))
    main, skip = h[:, :3], h[:, 3:]
    expected = torch.relu(torch.relu(block.bn_mid(block.conv_mid(torch.relu(main)))) + skip)
    torch.testing.assert_close(block(x), expected)
    assert block(x).shape == (2, 3, *block.out_size) and block.out_size == (3, 3, 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("banded_max_axis", [64, 0])
def test_cuda_layout_matches_cpu(spec, banded_max_axis, monkeypatch):
    # the CUDA path runs convolutions channels-last, one-map inputs as a banded 2D
    # convolution (or, for long last axes, zero-padded to 8 maps): same values
    import copy

    import eeg2fmri.models.calhas2022 as calhas

    monkeypatch.setattr(calhas, "_BANDED_MAX_AXIS", banded_max_axis)

    model = build(spec, dropout=0.0)
    gpu = copy.deepcopy(model).cuda()
    x, y = make_batch(spec)
    prev = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        terms_cpu = model.training_terms(x, y)
        terms_gpu = gpu.training_terms(x.cuda(), y.cuda())
        for key in ("pred", "latent_cosine", "organize_channels"):
            torch.testing.assert_close(terms_gpu[key].cpu(), terms_cpu[key], atol=1e-4, rtol=1e-4)
        for terms in (terms_cpu, terms_gpu):
            (
                terms["pred"].square().mean()
                + terms["latent_cosine"]
                + 0.1 * terms["organize_channels"]
            ).backward()
        for (name, p_cpu), p_gpu in zip(model.named_parameters(), gpu.parameters()):
            torch.testing.assert_close(p_gpu.grad.cpu(), p_cpu.grad, atol=1e-4, rtol=1e-3, msg=name)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = gpu(x.cuda())
        assert out.shape == (BATCH, *spec.output_shape) and torch.isfinite(out).all()
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = prev
