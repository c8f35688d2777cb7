"""Tests for the raw-EEG models: bricman_fc, bricman_conv, bricman_transformer, beira."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from eeg2fmri.models import DataSpec, build_model, list_models
from eeg2fmri.utils.validation import Eeg2fmriInputError

MODELS = ["bricman_fc", "bricman_conv", "bricman_transformer", "beira"]

# a different size on every axis: batch 3, 5 channels, 97 samples, outputs (6, 5, 4) / (7,)
BATCH, N_CHANS, N_TIMES, SFREQ = 3, 5, 97, 50.0
SPECS = {
    "volume": DataSpec("raw", (N_CHANS, N_TIMES), (6, 5, 4), sfreq=SFREQ, tr=2.0),
    "vector": DataSpec("raw", (N_CHANS, N_TIMES), (7,), sfreq=SFREQ, tr=2.0),
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _batch(spec: DataSpec, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(BATCH, *spec.input_shape, generator=g)
    y = torch.randn(BATCH, *spec.output_shape, generator=g)
    return x, y


def test_registered():
    assert set(MODELS) <= set(list_models())


@pytest.mark.parametrize("kind", sorted(SPECS))
@pytest.mark.parametrize("name", MODELS)
def test_forward_backward_shapes(name, kind):
    spec = SPECS[kind]
    model = build_model(name, spec, seed=0)
    x, y = _batch(spec)
    x.requires_grad_(True)
    out = model(x)
    assert out.shape == (BATCH, *spec.output_shape)
    assert torch.isfinite(out).all()
    torch.nn.functional.mse_loss(out, y).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{pname} got no gradient"
        assert torch.isfinite(p.grad).all(), pname
    # each sample's output depends on its own input only (no mixing across the batch in eval)
    model.eval()
    with torch.no_grad():
        full = model(x)
        single = model(x[1:2])
    torch.testing.assert_close(single, full[1:2], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", sorted(SPECS))
@pytest.mark.parametrize("name", MODELS)
def test_overfits_tiny_batch(name, kind):
    spec = SPECS[kind]
    torch.manual_seed(0)
    model = build_model(name, spec, seed=0, dropout=0.0)
    x, y = _batch(spec, seed=1)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(250):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # targets are unit-variance noise: the best input-independent prediction (the batch mean)
    # leaves ~2/3 of the initial loss; memorising the 3 windows drives it to ~0
    assert losses[-1] < 0.05 * losses[0], (losses[0], losses[-1])


@pytest.mark.parametrize("name", MODELS)
def test_seed_determinism(name):
    spec = SPECS["volume"]
    x, _ = _batch(spec)
    state_before = torch.random.get_rng_state()
    a = build_model(name, spec, seed=7).eval()
    assert torch.equal(torch.random.get_rng_state(), state_before), (
        "seeded init touched the global RNG"
    )
    b = build_model(name, spec, seed=7).eval()
    c = build_model(name, spec, seed=8).eval()
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
        assert not torch.equal(a(x), c(x))
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka


@pytest.mark.parametrize("name", MODELS)
def test_safetensors_roundtrip(name, tmp_path):
    spec = SPECS["vector"]
    x, y = _batch(spec)
    model = build_model(name, spec, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(3):  # move weights and batch-norm statistics away from their init
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    path = tmp_path / "model.safetensors"
    save_file(model.state_dict(), str(path))
    fresh = build_model(name, spec, seed=1)
    fresh.load_state_dict(load_file(str(path)))
    model.eval()
    fresh.eval()
    with torch.no_grad():
        assert torch.equal(model(x), fresh(x))


@pytest.mark.parametrize("name", MODELS)
def test_wrong_input_kind_raises(name):
    spec = DataSpec(
        "stft", (N_CHANS, 9, 11), (7,), sfreq=SFREQ, tr=2.0, freqs=tuple(range(9)), frame_rate=4.0
    )
    with pytest.raises(
        Eeg2fmriInputError, match=r"expected input_kind 'raw'.*got 'stft'.*representation='raw'"
    ):
        build_model(name, spec)


@pytest.mark.parametrize("name", MODELS)
def test_wrong_input_shape_raises(name):
    model = build_model(name, SPECS["vector"], seed=0)
    with pytest.raises(Eeg2fmriInputError, match=r"expected x of shape \(batch, 5, "):
        model(torch.randn(BATCH, N_CHANS + 1, N_TIMES))
    with pytest.raises(Eeg2fmriInputError, match="add a batch axis"):
        model(torch.randn(N_CHANS, N_TIMES))


def test_fc_requires_window_length():
    model = build_model("bricman_fc", SPECS["vector"], seed=0)
    with pytest.raises(
        Eeg2fmriInputError, match=f"expected x of shape \\(batch, {N_CHANS}, {N_TIMES}\\)"
    ):
        model(torch.randn(BATCH, N_CHANS, N_TIMES + 4))


@pytest.mark.parametrize(
    ("name", "hparams", "match"),
    [
        ("bricman_fc", {"emb_dim": 0}, "emb_dim"),
        ("bricman_fc", {"dropout": 1.0}, "dropout"),
        ("bricman_conv", {"head_hidden": "wide"}, "head_hidden"),
        ("bricman_transformer", {"d_model": 30, "nhead": 4}, "divisible by nhead"),
        ("bricman_transformer", {"n_chunks": 8}, "n_chunks"),
        ("beira", {"freq_range_hz": (1.0, 30.0)}, "Nyquist"),
        ("beira", {"n_virtual": 0}, "n_virtual"),
        ("beira", {"seed": -1}, "seed"),
    ],
)
def test_bad_hparams_raise(name, hparams, match):
    with pytest.raises(Eeg2fmriInputError, match=match):
        build_model(name, SPECS["vector"], **hparams)


def test_fc_time_pool_and_transformer_chunks():
    spec = SPECS["vector"]
    x, _ = _batch(spec)
    fc = build_model("bricman_fc", spec, time_pool=4, seed=0)
    assert fc.embedder.n_pooled == N_TIMES // 4
    assert fc(x).shape == (BATCH, 7)
    tr = build_model("bricman_transformer", spec, n_chunks=3, seed=0)
    assert (tr.n_tokens, tr.token_size) == (3, 3)
    assert tr(x).shape == (BATCH, 7)
    vol = build_model("bricman_transformer", SPECS["volume"], seed=0)
    assert (vol.n_tokens, vol.token_size) == (4, 30)


def test_transformer_slice_layout():
    """Decoder token k fills slice k along the last (Z) axis, as an (X, Y) image."""
    spec = SPECS["volume"]
    model = build_model("bricman_transformer", spec, seed=0).eval()
    x, _ = _batch(spec)
    captured = {}
    handle = model.to_slice.register_forward_hook(lambda mod, inp, out: captured.update(tokens=out))
    with torch.no_grad():
        out = model(x)
    handle.remove()
    tokens = captured["tokens"]  # (batch, Z, X * Y)
    assert tokens.shape == (BATCH, 4, 30)
    for z in range(4):
        assert torch.equal(out[..., z], tokens[:, z].reshape(BATCH, 6, 5))


@pytest.mark.parametrize("kind", sorted(SPECS))
def test_beira_interpretability(kind):
    spec = SPECS[kind]
    model = build_model("beira", spec, n_virtual=6, seed=0)
    w = model.spatial_patterns()
    assert w.shape == (6, N_CHANS)
    assert torch.equal(w, model.unmix.weight[:, :, 0])
    x, _ = _batch(spec)
    patterns = model.spatial_patterns(x)
    assert patterns.shape == (6, N_CHANS)
    assert torch.isfinite(patterns).all()

    freqs, mag = model.filter_responses(n_freqs=41)
    assert freqs.shape == (41,)
    assert mag.shape == (6, 41)
    assert freqs[0] == 0 and freqs[-1] == pytest.approx(SFREQ / 2)
    # initialised as band-pass filters: zero DC gain, unit gain near increasing centre frequencies
    assert torch.allclose(mag[:, 0], torch.zeros(6), atol=1e-5)
    peaks = freqs[mag.argmax(dim=1)]
    assert torch.all(peaks[1:] >= peaks[:-1])
    assert peaks[-1] > 3 * peaks[0]
    assert torch.all(peaks < SFREQ / 2)
    centres = torch.tensor(model.centre_freqs_hz)
    assert torch.all(centres < SFREQ / 2)
    assert torch.allclose(mag.max(dim=1).values, torch.ones(6), atol=0.02)
    # low-pass initialised as a moving average
    assert torch.allclose(model.lowpass.weight.sum(-1), torch.ones(6, 1))
    # response of a longer FFT agrees (exact DTFT samples, no truncation of the filter)
    f2, mag2 = model.filter_responses(n_freqs=81)
    torch.testing.assert_close(mag2[:, ::2], mag, rtol=1e-4, atol=1e-5)
    with pytest.raises(Eeg2fmriInputError, match="n_freqs"):
        model.filter_responses(n_freqs=1)


def test_beira_feature_rate():
    spec = SPECS["vector"]
    model = build_model("beira", spec, envelope_sfreq=10.0, seed=0)
    assert model.decimation == 5
    x, _ = _batch(spec)
    assert model.features(x).shape == (BATCH, 16, (N_TIMES - 1) // 5 + 1)


@pytest.mark.parametrize(("n_in", "n_out"), [(13, 4), (12, 4), (5, 5), (7, 1), (3, 5)])
def test_adaptive_avg_matrix_equals_adaptive_pool(n_in, n_out):
    # the deterministic CUDA form of the embedders' adaptive average pooling gives PyTorch's values
    from eeg2fmri.models._bricman_common import adaptive_avg_matrix

    x = torch.randn(2, 3, n_in, dtype=torch.float64)
    ref = torch.nn.functional.adaptive_avg_pool1d(x, n_out)
    torch.testing.assert_close(x @ adaptive_avg_matrix(n_in, n_out).double(), ref)
