"""Tests for the flagship model ``eeg2fmri_net`` (band-power and raw front ends)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from eeg2fmri.models import DataSpec, build_model, list_models
from eeg2fmri.models.flagship import EEG2fMRINet, canonical_hrf
from eeg2fmri.utils.validation import Eeg2fmriInputError

# a different size on every axis: batch 6, 5 channels, 4 bands, 7 frames, 3 subjects, outputs (11,) or (4, 3, 2)
BATCH, N_CHANS, N_BANDS, N_FRAMES, N_SUBJ = 6, 5, 4, 7, 3
BP = DataSpec("bandpower", (N_CHANS, N_BANDS, N_FRAMES), (11,), sfreq=250.0, tr=2.0, frame_rate=0.5, n_subjects=N_SUBJ)
BP_VOL = DataSpec("bandpower", (N_CHANS, N_BANDS, N_FRAMES), (4, 3, 2), sfreq=250.0, tr=2.0, frame_rate=0.5, n_subjects=N_SUBJ)
# raw: 5 channels, 130 samples at 40 Hz (3.25 s), frames of 0.5 s -> 6 frames
RAW = DataSpec("raw", (N_CHANS, 130), (11,), sfreq=40.0, tr=1.0, frame_rate=40.0, n_subjects=N_SUBJ)
RAW_KW = {"frame_s": 0.5, "raw_filter_len_s": 0.25}
# tangent: band power (4 bands) then each band's tangent-matrix row (4 x 5 entries) per channel
TAN = DataSpec("tangent", (N_CHANS, N_BANDS * (1 + N_CHANS), N_FRAMES), (11,), sfreq=250.0, tr=2.0, frame_rate=0.5, n_subjects=N_SUBJ)
SPECS = {"bandpower": (BP, {}), "volume": (BP_VOL, {}), "raw": (RAW, RAW_KW), "tangent": (TAN, {})}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _batch(spec: DataSpec, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(BATCH, *spec.input_shape, generator=g)
    y = torch.randn(BATCH, *spec.output_shape, generator=g)
    s = torch.arange(BATCH) % N_SUBJ
    return x, y, s


def test_registered():
    assert "eeg2fmri_net" in list_models()


@pytest.mark.parametrize("kind", sorted(SPECS))
def test_forward_backward_shapes(kind):
    spec, kw = SPECS[kind]
    model = build_model("eeg2fmri_net", spec, seed=0, subject_film=True, n_members=3, **kw)
    x, y, s = _batch(spec)
    out = model(x, subject=s)
    assert out.shape == (BATCH, *spec.output_shape)
    torch.nn.functional.mse_loss(out, y).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), name
    assert any(float(p.grad.abs().sum()) > 0 for n, p in model.named_parameters() if n == "unmix")
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (BATCH, *spec.output_shape)
        members = model.member_predictions(x)
        assert members.shape == (BATCH, 3, *spec.output_shape)
        torch.testing.assert_close(members.mean(1), model(x))
        # eval: each window's output depends on that window only
        torch.testing.assert_close(model(x[2:3]), model(x)[2:3])


def test_sizes_derived_from_spec():
    model = EEG2fMRINet(BP, seed=0)
    assert (model.n_bands, model.n_frames, model.n_sources) == (N_BANDS, N_FRAMES, N_CHANS)  # min(8, n_chans)
    assert model.latent_size == N_BANDS * N_CHANS
    assert model.rank == 11  # min(16, latent 20, 11 outputs)
    assert model.unmix.shape == (8, N_BANDS, N_CHANS, N_CHANS)
    assert model.decode.shape == (8, 11, 11)
    raw = EEG2fMRINet(RAW, seed=0, **RAW_KW)
    assert raw.n_frames == 6 and raw.n_bands == 4  # gamma (30-45 Hz) is above 0.9 x Nyquist (18 Hz) and dropped
    assert raw.filters.shape == (4, 1, 11)


def test_hrf_kernels_canonical_start():
    model = EEG2fMRINet(BP, seed=0)
    h = model.hrf_kernels().detach()
    assert h.shape == (8, N_BANDS, N_CHANS, N_FRAMES)
    torch.testing.assert_close(h.sum(-1), torch.ones(8, N_BANDS, N_CHANS))
    # oldest frame first: the newest frame (lag [0, 1] s after clamping) carries almost no weight, the peak is ~5 s back
    k = h[0, 0, 0]
    assert int(torch.argmax(k)) == N_FRAMES - 1 - 3 or int(torch.argmax(k)) == N_FRAMES - 1 - 2
    assert float(k[-1]) < 0.02
    canon = EEG2fMRINet(BP, seed=0, hrf="canonical").hrf_kernels()
    torch.testing.assert_close(canon, h)  # zero shift / unit width at the start
    assert float(canonical_hrf(torch.tensor([-1.0, 0.0]))[0]) == 0.0
    t = torch.linspace(0.1, 30, 300)
    assert 4.0 < float(t[torch.argmax(canonical_hrf(t))]) < 6.0


def test_overfits_tiny_batch():
    torch.manual_seed(0)
    model = EEG2fMRINet(BP, seed=0, n_members=1, dropout=0.0)
    x, y, _ = _batch(BP, seed=1)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    model.train()
    first = None
    for _ in range(300):
        loss = torch.nn.functional.mse_loss(model(x), y)
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        final = float(torch.nn.functional.mse_loss(model(x), y))
    assert final < 0.05 * first


def test_ensemble_members_trained_on_their_own_windows():
    model = EEG2fMRINet(BP, seed=0, n_members=4, dropout=0.0)
    x, y, _ = _batch(BP)
    model.train()
    torch.manual_seed(3)
    out = model(x)
    with torch.no_grad():
        members = model.member_predictions(x)  # no dropout: the same values the forward pass drew from
    dist = (members - out[:, None]).abs().amax(-1)  # (batch, n_members)
    assert bool((dist.amin(1) < 1e-6).all())  # each window's prediction is one member's
    used = set(dist.argmin(1).tolist())
    torch.nn.functional.mse_loss(out, y).backward()
    for k in range(4):
        assert bool(model.decode.grad[k].abs().sum() > 0) == (k in used), k


def test_deterministic_with_seed():
    x, _, _ = _batch(BP)
    a, b, c = (EEG2fMRINet(BP, seed=s).eval() for s in (4, 4, 5))
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x))
        assert not torch.allclose(a(x), c(x))
    state = torch.random.get_rng_state()
    EEG2fMRINet(BP, seed=4)
    assert torch.equal(state, torch.random.get_rng_state())  # seeded init leaves the global RNG alone


@pytest.mark.parametrize("kind", sorted(SPECS))
def test_save_load_safetensors(tmp_path, kind):
    spec, kw = SPECS[kind]
    model = EEG2fMRINet(spec, seed=0, subject_film=True, **kw)
    x, y, s = _batch(spec)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(3):  # move weights, batch-norm statistics and the seen-subject buffer away from their start
        loss = torch.nn.functional.mse_loss(model(x, subject=s), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "w.safetensors"))
    clone = EEG2fMRINet(spec, seed=1, subject_film=True, **kw)
    clone.load_state_dict(load_file(str(tmp_path / "w.safetensors")))
    clone.eval()
    with torch.no_grad():
        torch.testing.assert_close(clone(x), model(x), rtol=0, atol=0)
        torch.testing.assert_close(clone(x, subject=s), model(x, subject=s), rtol=0, atol=0)


def test_save_model_roundtrip(tmp_path):
    from eeg2fmri.models import load_model, save_model

    model = EEG2fMRINet(BP, seed=0, hrf="fir", n_members=2).eval()
    x, _, _ = _batch(BP)
    mask = np.ones((11, 1, 1), dtype=bool)
    save_model(model, tmp_path / "m", spec=BP, name="eeg2fmri_net", hparams={"hrf": "fir", "n_members": 2}, mask=mask, affine=np.eye(4),
               window={"n_frames": N_FRAMES, "lag": 0}, prepare={})
    loaded = load_model(tmp_path / "m").model
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_unseen_subject_uses_population_model():
    model = EEG2fMRINet(BP, seed=0, subject_film=True, subject_dropout=0.0, n_members=2)
    x, y, _ = _batch(BP)
    seen = torch.tensor([0, 1, 0, 1, 0, 1])  # subject 2 never seen in training
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    model.train()
    for _ in range(5):
        loss = torch.nn.functional.mse_loss(model(x, subject=seen), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert model.seen_subjects.tolist() == [1, 1, 0]
    assert float(model.film_gain[:2].detach().abs().sum()) > 0
    assert float(model.film_gain[2].detach().abs().sum()) == 0.0  # never trained
    model.eval()
    with torch.no_grad():
        population = model(x)
        torch.testing.assert_close(model(x, subject=torch.full((BATCH,), 2)), population, rtol=0, atol=0)
        assert not torch.allclose(model(x, subject=torch.zeros(BATCH, dtype=torch.long)), population)


def test_without_film_subject_is_ignored():
    model = EEG2fMRINet(BP, seed=0).eval()
    x, _, s = _batch(BP)
    with torch.no_grad():
        torch.testing.assert_close(model(x, subject=s), model(x), rtol=0, atol=0)


def test_wrong_input_kind():
    stft = DataSpec("stft", (N_CHANS, 13, N_FRAMES), (11,), sfreq=250.0, tr=2.0, frame_rate=0.5)
    with pytest.raises(Eeg2fmriInputError, match=r"expected input_kind 'bandpower' .* or 'raw' .*, got 'stft'"):
        EEG2fMRINet(stft)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"hrf": "spline"}, r"unknown hrf 'spline'"),
        ({"n_members": 0}, r"expected n_members to be an integer >= 1, got 0"),
        ({"dropout": 1.0}, r"expected dropout in \[0, 1\), got 1.0"),
        ({"subject_dropout": -0.1}, r"expected subject_dropout in \[0, 1\), got -0.1"),
        ({"rank": 2.5}, r"expected rank to be an integer >= 1, got 2.5"),
        ({"seed": -1}, r"expected seed to be a non-negative int or None, got -1"),
        ({"hrf_max_shift_s": 0}, r"expected hrf_max_shift_s > 0, got 0"),
        ({"ridge_blend": 1.5}, r"expected ridge_blend as a weight in \[0, 1\] or 'validation', got 1.5"),
        ({"ridge_blend": True}, r"expected ridge_blend as a weight in \[0, 1\] or 'validation', got True"),
        ({"ridge_blend": "best"}, r"unknown ridge_blend 'best'"),
        ({"output_rank": 0}, r"expected output_rank as a positive int, 'validation' or None, got 0"),
        ({"output_rank": 2.5}, r"expected output_rank as a positive int, 'validation' or None, got 2.5"),
        ({"output_rank": True}, r"expected output_rank as a positive int, 'validation' or None, got True"),
        ({"output_rank": "auto"}, r"expected output_rank as a positive int, 'validation' or None, got 'auto'"),
    ],
)
def test_bad_hparams(kwargs, match):
    with pytest.raises(Eeg2fmriInputError, match=match):
        EEG2fMRINet(BP, **kwargs)


def test_bad_raw_settings():
    with pytest.raises(Eeg2fmriInputError, match=r"shorter than one frame of 200 samples"):
        EEG2fMRINet(RAW, frame_s=5.0)
    with pytest.raises(Eeg2fmriInputError, match=r"expected raw_bands as \(low, high\) pairs with 0 < low < high < Nyquist \(20 Hz\)"):
        EEG2fMRINet(RAW, frame_s=0.5, raw_bands=[(8.0, 25.0)])
    no_rate = DataSpec("bandpower", (N_CHANS, N_BANDS, N_FRAMES), (11,), sfreq=250.0, tr=2.0)
    with pytest.raises(Eeg2fmriInputError, match=r"expected spec.frame_rate > 0, got None"):
        EEG2fMRINet(no_rate)


def test_bad_inputs():
    model = EEG2fMRINet(BP, seed=0, subject_film=True).eval()
    x, _, _ = _batch(BP)
    with pytest.raises(Eeg2fmriInputError, match=r"expected x of shape \(batch, 5, 4, 7\) \(bandpower\), got \(6, 5, 4, 8\)"):
        model(torch.randn(BATCH, N_CHANS, N_BANDS, N_FRAMES + 1))
    with pytest.raises(Eeg2fmriInputError, match=r"expected subject indices in \[0, 3\)"):
        model(x, subject=torch.full((BATCH,), 3))
    with pytest.raises(Eeg2fmriInputError, match=r"expected one subject index per window \(6\), got 2"):
        model(x, subject=torch.tensor([0, 1]))


def test_raw_front_end_is_band_power():
    """A pure sinusoid in one band lights up that band's envelope, not the others."""
    model = EEG2fMRINet(RAW, seed=0, **RAW_KW).eval()
    t = torch.arange(130) / 40.0
    x = torch.zeros(BATCH, N_CHANS, 130)
    x[:, 0] = torch.sin(2 * math.pi * 10.5 * t)  # alpha (8-13 Hz) in channel 0
    x = x + 0.01 * torch.randn(BATCH, N_CHANS, 130, generator=torch.Generator().manual_seed(0))
    model.power_norm.eval()
    with torch.no_grad():
        model.power_norm.running_mean.zero_()
        model.power_norm.running_var.fill_(1.0)
        bp = model.band_power(x)  # (B, C, F, T) = log power
    assert bp.shape == (BATCH, N_CHANS, 4, 6)
    alpha = bp[:, 0, 2].mean()
    assert alpha > bp[:, 0, [0, 1, 3]].mean() + 3.0
    assert alpha > bp[:, 1:, 2].mean() + 3.0


def test_tiny_prepared_end_to_end(tiny_prepared):
    """Sizes come from a prepared dataset's DataSpec; a few steps lower the training loss."""
    from eeg2fmri.datasets import WindowDataset
    from eeg2fmri.datasets.targets import make_split, split_targets

    split = make_split(tiny_prepared, "within", fractions=(0.5, 0.25, 0.25))
    targets = split_targets(tiny_prepared, split)
    wd = WindowDataset(tiny_prepared, split.selections["train"], split.n_frames, split.lag, targets=targets["train"])
    spec = wd.spec
    model = EEG2fMRINet(spec, seed=0, n_members=2)
    assert model.unmix.shape[-1] == len(tiny_prepared.ch_names)
    assert model.decode.shape[-1] == int(tiny_prepared.mask.sum())
    x = torch.stack([wd[i][0] for i in range(len(wd))])
    y = torch.stack([wd[i][1] for i in range(len(wd))])
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model.train()
    torch.manual_seed(0)
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-5:]) < np.mean(losses[:5])


@pytest.mark.parametrize("kind", sorted(SPECS))
def test_trains_under_bf16_autocast(kind):
    # bf16 mixed precision (optimizer.precision: bf16-mixed): the per-member routing of the
    # training forward mixes bf16 codes with float32 decoders; the output is float32
    spec, kw = SPECS[kind]
    model = EEG2fMRINet(spec, seed=0, n_members=3, **kw).train()
    x, y, s = _batch(spec)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, s)
    assert out.dtype == torch.float32 and out.shape == y.shape
    (out - y).square().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert model.decode.grad is not None and float(model.decode.grad.abs().sum()) > 0
def test_calibrate_shrinks_fluctuations_keeps_r():
    model = EEG2fMRINet(BP, seed=0, n_members=2).eval()
    x, _, _ = _batch(BP)
    with torch.no_grad():
        raw = model(x)
    base = model.bias.detach().mean(0)
    y = base + 0.25 * (raw - base)  # the right prediction is a quarter of the fluctuations
    assert float(model.output_gain) == 1.0
    assert model.calibrate(x.numpy(), y.numpy()) is model
    assert float(model.output_gain) == pytest.approx(0.25, abs=1e-5)
    assert not model.training
    with torch.no_grad():
        torch.testing.assert_close(model(x), y, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(model.member_predictions(x).mean(1), model(x), rtol=1e-4, atol=1e-6)
    # never inflates, never flips the sign
    model.calibrate(x, base + 3.0 * (raw - base))
    assert float(model.output_gain) == 1.0
    model.calibrate(x, base - (raw - base))
    assert float(model.output_gain) == pytest.approx(1e-3)  # floored: predictions stay non-constant, r unchanged
    # the gain is saved with the weights
    model.calibrate(x, y, batch_size=4)
    assert float(model.output_gain) == pytest.approx(0.25, abs=1e-5)
    clone = EEG2fMRINet(BP, seed=3, n_members=2)
    clone.load_state_dict(model.state_dict())
    assert float(clone.output_gain) == pytest.approx(0.25, abs=1e-5)


def test_calibrate_bad_input():
    model = EEG2fMRINet(BP, seed=0)
    x, y, _ = _batch(BP)
    with pytest.raises(Eeg2fmriInputError, match=r"calibrate: expected >= 2 windows and as many targets of 11 outputs, got 6 windows and targets of shape \(5, 11\)"):
        model.calibrate(x, y[:5])


def _windows(spec: DataSpec, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows whose targets follow a linear function of the band power (so a ridge has something to find)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *spec.input_shape, generator=g)
    w = torch.randn(int(np.prod(spec.input_shape)), spec.n_outputs, generator=torch.Generator().manual_seed(99)) / 10
    y = x.reshape(n, -1) @ w + 0.5 * torch.randn(n, spec.n_outputs, generator=g)
    return x, y.reshape(n, *spec.output_shape)


def _batches(x, y, bs=13):
    return [(x[i : i + bs], y[i : i + bs], None) for i in range(0, len(x), bs)]


@pytest.mark.parametrize("spec", [BP, BP_VOL], ids=["rois", "volume"])
def test_stacked_linear_path_equals_ridge_hrf(spec, tmp_path):
    """after_fit fits ridge_hrf on the training windows; with ridge_blend=0.5 the output is the 0.5/0.5 blend; it survives save/load."""
    from eeg2fmri.models.ridge_hrf import RidgeHRF

    x_tr, y_tr = _windows(spec, 60, 1)
    x_va, y_va = _windows(spec, 25, 2)
    x_te, _ = _windows(spec, 9, 3)
    model = EEG2fMRINet(spec, seed=0, n_members=2, calibrate_output=False, output_rank=None, ridge_blend=0.5, voxel_gain=False)
    model.eval()
    with torch.no_grad():
        net = model(x_te).reshape(9, -1)
    info = model.after_fit(_batches(x_va, y_va), train_batches=_batches(x_tr, y_tr))
    ref = RidgeHRF(spec).fit(x_tr.numpy(), y_tr.reshape(60, -1).numpy(), x_va.numpy(), y_va.reshape(25, -1).numpy())
    assert info["ridge_weight"] == 0.5 and info["ridge_hrf"] == ref.hrf_
    with torch.no_grad():
        lin = model.ridge_prediction(x_te)
        out = model(x_te).reshape(9, -1)
        members = model.member_predictions(x_te).reshape(9, 2, -1)
    np.testing.assert_allclose(lin.numpy(), ref.predict(x_te.numpy()).reshape(9, -1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out.numpy(), (0.5 * net + 0.5 * lin).numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(members.mean(1).numpy(), out.numpy(), rtol=1e-4, atol=1e-5)
    model.train()
    with torch.no_grad():  # training mode: the network alone (the path is fitted after training)
        assert model(x_te).shape == (9, *spec.output_shape)
    # the fitted path is part of the saved state; a fresh model of the same spec loads it
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "w.safetensors"))
    again = EEG2fMRINet(spec, seed=5, n_members=2)
    again.load_state_dict(load_file(str(tmp_path / "w.safetensors")))
    again.eval()
    model.eval()
    with torch.no_grad():
        np.testing.assert_allclose(again(x_te).numpy(), model(x_te).numpy(), rtol=1e-5, atol=1e-6)


def test_stacked_linear_path_options():
    x_tr, y_tr = _windows(BP, 60, 1)
    x_va, y_va = _windows(BP, 25, 2)
    off = EEG2fMRINet(BP, seed=0, n_members=2, ridge_blend=0)
    info = off.after_fit(_batches(x_va, y_va), train_batches=_batches(x_tr, y_tr))
    assert "ridge_weight" not in info and float(off.ridge_weight) == 0.0
    with pytest.raises(Eeg2fmriInputError, match="the linear path is not fitted; it is fitted by after_fit"):
        off.ridge_prediction(x_va)
    # without the training windows (e.g. a caller that only calibrates) nothing is fitted
    assert "ridge_weight" not in EEG2fMRINet(BP, seed=0).after_fit(_batches(x_va, y_va))
    # chosen on validation: the grid point with the highest mean voxel r (here the targets are linear: the ridge dominates)
    val = EEG2fMRINet(BP, seed=0, n_members=2, ridge_blend="validation")
    info = val.after_fit(_batches(x_va, y_va), train_batches=_batches(x_tr, y_tr))
    assert info["ridge_weight"] in np.round(np.linspace(0, 1, 21), 2) and info["ridge_weight"] >= 0.5
    assert info["val_r_blend"] >= max(info["val_r_network"], info["val_r_ridge"]) - 1e-9
    # ... which is the default (since 2026-12-04, session 7): the same choice without the keyword
    default = EEG2fMRINet(BP, seed=0, n_members=2)
    assert default.ridge_blend == "validation"
    info_default = default.after_fit(_batches(x_va, y_va), train_batches=_batches(x_tr, y_tr))
    assert info_default["ridge_weight"] == info["ridge_weight"] and info_default["val_r_blend"] == info["val_r_blend"]
    # the raw front end has no fixed band power to fit a ridge on: no path
    raw = EEG2fMRINet(RAW, seed=0, **RAW_KW)
    xr = torch.randn(20, *RAW.input_shape)
    yr = torch.randn(20, *RAW.output_shape)
    assert "ridge_weight" not in raw.after_fit(_batches(xr, yr), train_batches=_batches(xr, yr))


def test_predict_ensemble_is_the_members_mean_and_spread():
    model = EEG2fMRINet(BP, seed=0, n_members=3).eval()
    x, _, _ = _batch(BP)
    with torch.no_grad():
        mean, std = model.predict_ensemble(x)
        members = model.member_predictions(x)
        torch.testing.assert_close(mean, model(x), rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(std, members.std(1))
    assert (std > 0).all()
    single = EEG2fMRINet(BP, seed=0, n_members=1).eval()
    with torch.no_grad():
        assert (single.predict_ensemble(x)[1] == 0).all()
    # with the per-output shrinkage the mean is shrunk and the spread is the members' before it (the shrinkage is of
    # fluctuations the validation targets do not follow, not of the uncertainty about them)
    n_out = int(np.prod(BP.output_shape))
    gain = torch.linspace(0.001, 1.0, n_out)
    model.register_buffer("voxel_gain", gain)
    model.register_buffer("gain_centre", torch.zeros(n_out))
    with torch.no_grad():
        mean_g, std_g = model.predict_ensemble(x)
        torch.testing.assert_close(mean_g, model(x), rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(mean_g, mean * gain.reshape(BP.output_shape), rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(std_g, std, rtol=1e-3, atol=1e-6)


def test_tangent_input_network_reads_the_power_block():
    model = EEG2fMRINet(TAN, seed=0, n_members=2).eval()
    assert model.n_bands == N_BANDS and model.latent_size == N_BANDS * model.n_sources
    x = torch.randn(BATCH, *TAN.input_shape)
    x2 = x.clone()
    x2[:, :, N_BANDS:] = torch.randn_like(x2[:, :, N_BANDS:])  # another tangent block: the network alone does not see it
    with torch.no_grad():
        torch.testing.assert_close(model.band_power(x), x[:, :, :N_BANDS])
        torch.testing.assert_close(model(x), model(x2))
    # before the linear path is fitted (training) the band-power block alone is accepted, afterwards full windows only
    assert model.training_features == N_BANDS and EEG2fMRINet(BP, seed=0).training_features is None
    with torch.no_grad():
        torch.testing.assert_close(model(x[:, :, :N_BANDS]), model(x))
    x_tr, y_tr = _windows(TAN, 40, 1)
    model.after_fit(_batches(x_tr[:20], y_tr[:20]), train_batches=_batches(x_tr[20:], y_tr[20:]))
    with pytest.raises(Eeg2fmriInputError, match=rf"expected x of shape \(batch, {N_CHANS}, {N_BANDS * (N_CHANS + 1)}, {N_FRAMES}\) \(tangent\)"):
        model(x[:, :, :N_BANDS])
    bad = DataSpec("tangent", (N_CHANS, 7, N_FRAMES), (11,), sfreq=250.0, tr=2.0, frame_rate=0.5)
    with pytest.raises(Eeg2fmriInputError, match=r"tangent windows need axis 1 of size n_bands \* \(1 \+ n_chans\) = k \* 6, got 7"):
        EEG2fMRINet(bad)


def test_tangent_sources_read_the_band_covariances():
    """tangent_sources: w^T T w per band and frame for a unit filter w; training then reads the whole window."""
    m_t = 2
    model = EEG2fMRINet(TAN, seed=0, n_members=2, tangent_sources=m_t).eval()
    assert model.n_all_sources == model.n_sources + m_t and model.latent_size == N_BANDS * model.n_all_sources
    assert model.training_features is None and model.hrf_kernels().shape == (2, N_BANDS, model.n_all_sources, N_FRAMES)
    x = torch.randn(BATCH, *TAN.input_shape)
    blocks = x[:, :, N_BANDS:].reshape(BATCH, N_CHANS, N_BANDS, N_CHANS, N_FRAMES)  # [b, c, f, d, t] = T_f[c, d]
    w = (model.tan_filters / model.tan_filters.norm(dim=-1, keepdim=True)).detach()
    expected = torch.stack([torch.stack([torch.stack([torch.stack([torch.stack([
        w[k, f, m] @ blocks[b, :, f, :, t] @ w[k, f, m] for t in range(N_FRAMES)]) for m in range(m_t)]) for f in range(N_BANDS)])
        for k in range(2)]) for b in range(BATCH)])  # (B, K, F, M', T)
    with torch.no_grad():
        z = model.latent(x)  # the tangent sources' signals, weighted by their HRFs and standardised, are the last of each band
        src = (expected * model.hrf_kernels()[None, :, :, model.n_sources:]).sum(-1)  # (B, K, F, M')
        x2 = x.clone()
        x2[:, :, N_BANDS:] = torch.randn_like(x2[:, :, N_BANDS:])
        assert not torch.allclose(model(x), model(x2))  # the network now reads the tangent block
    got = z.reshape(BATCH, 2, N_BANDS, model.n_all_sources)[:, :, :, model.n_sources:]
    rm = model.latent_norm.running_mean.reshape(2, N_BANDS, model.n_all_sources)[:, :, model.n_sources:]
    rv = model.latent_norm.running_var.reshape(2, N_BANDS, model.n_all_sources)[:, :, model.n_sources:]
    torch.testing.assert_close(got, (src - rm) / (rv + model.latent_norm.eps).sqrt(), rtol=1e-4, atol=1e-4)
    # the default draws the same parameters as before the option existed (no tangent sources)
    base, again = EEG2fMRINet(TAN, seed=0), EEG2fMRINet(TAN, seed=0, tangent_sources=0)
    assert all(torch.equal(a, b) for a, b in zip(base.parameters(), again.parameters()))
    with pytest.raises(Eeg2fmriInputError, match=r"expected tangent_sources as a non-negative int, got -1"):
        EEG2fMRINet(TAN, tangent_sources=-1)
    with pytest.raises(Eeg2fmriInputError, match=r"tangent_sources=3 reads band covariances, but the input is 'bandpower'"):
        EEG2fMRINet(BP, tangent_sources=3)


def _assert_tangent_roundtrip(model, x, out, tmp_path):
    """A fitted tangent-input flagship saved as safetensors and loaded into a fresh one predicts ``out`` again."""
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "tangent.safetensors"))
    again = EEG2fMRINet(TAN, seed=3, n_members=2)
    again.load_state_dict(load_file(str(tmp_path / "tangent.safetensors")))
    with torch.no_grad():
        np.testing.assert_allclose(again.eval()(x).numpy(), out.numpy(), rtol=1e-5, atol=1e-6)


def test_tangent_linear_path_mixes_power_and_tangent_ridges(tmp_path):
    """With tangent input the linear path is (1 - v) * ridge on band power + v * ridge on the tangent block (canonical HRF),
    v chosen on validation; targets driven by the tangent block pull v up; the path survives save/load."""
    from eeg2fmri.models.ridge_hrf import RidgeHRF
    from eeg2fmri.preprocessing.hrf import double_gamma_hrf

    def windows(n, seed):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(n, *TAN.input_shape, generator=g)
        h = torch.from_numpy(double_gamma_hrf(2.0, length=2.0 * N_FRAMES)[:N_FRAMES][::-1].copy()).float()
        drive = torch.einsum("ncft,t->ncf", x[:, :, N_BANDS:], h).reshape(n, -1)
        w = torch.randn(drive.shape[1], 11, generator=torch.Generator().manual_seed(7)) / 5
        return x, drive @ w + 0.3 * torch.randn(n, 11, generator=g)

    x_tr, y_tr = windows(80, 1)
    x_va, y_va = windows(30, 2)
    x_te, _ = windows(9, 3)
    model = EEG2fMRINet(TAN, seed=0, n_members=2, calibrate_output=False, tangent_hrf="canonical", output_rank=None)
    info = model.after_fit(_batches(x_va, y_va), train_batches=_batches(x_tr, y_tr))
    v = info["tangent_weight"]
    assert v in np.round(np.linspace(0, 1, 11), 2) and v >= 0.5
    assert info["val_r_tangent_ridge"] > info["val_r_power_ridge"]
    # the folded path equals the two ridges fitted separately and mixed with v
    pspec = DataSpec("bandpower", (N_CHANS, N_BANDS, N_FRAMES), (11,), sfreq=250.0, tr=2.0, frame_rate=0.5)
    pr = RidgeHRF(pspec).fit(x_tr[:, :, :N_BANDS].numpy(), y_tr.numpy(), x_va[:, :, :N_BANDS].numpy(), y_va.numpy())
    h = double_gamma_hrf(2.0, length=2.0 * N_FRAMES)[:N_FRAMES][::-1]
    conv = lambda x: np.einsum("ncft,t->ncf", x[:, :, N_BANDS:].numpy().astype(np.float64), h)[..., None]  # noqa: E731
    tspec = DataSpec("bandpower", (N_CHANS, N_BANDS * N_CHANS, 1), (11,), sfreq=250.0, tr=2.0, frame_rate=0.5)
    tr_ = RidgeHRF(tspec, hrf="lags", alphas=tuple(np.logspace(-2, 7, 19))).fit(conv(x_tr), y_tr.numpy(), conv(x_va), y_va.numpy())
    want = (1 - v) * pr.predict(x_te[:, :, :N_BANDS].numpy()) + v * tr_.predict(conv(x_te))
    model.eval()
    with torch.no_grad():
        np.testing.assert_allclose(model.ridge_prediction(x_te).numpy(), want, rtol=1e-3, atol=1e-4)
        out = model(x_te)
    _assert_tangent_roundtrip(model, x_te, out, tmp_path)


def test_linear_refit_fits_the_path_again_on_training_and_validation_windows_with_the_choices_kept():
    """linear_refit=True: every choice is made as without it (same weights, basis, penalty, per-output gain), then the
    band-power ridge and the tangent ridge are fitted again on training + validation windows with those choices:
    the path equals ridge_hrf(refit=True) and the tangent ridge refitted the same way, mixed with the same weight."""
    from eeg2fmri.models.base import target_fingerprint
    from eeg2fmri.models.ridge_hrf import RidgeHRF
    from eeg2fmri.preprocessing.hrf import double_gamma_hrf

    def windows(n, seed):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(n, *TAN.input_shape, generator=g)
        h = torch.from_numpy(double_gamma_hrf(2.0, length=2.0 * N_FRAMES)[:N_FRAMES][::-1].copy()).float()
        drive = torch.einsum("ncft,t->ncf", x[:, :, N_BANDS:], h).reshape(n, -1)
        power = torch.einsum("ncft,t->n", x[:, :2, :N_BANDS], h)[:, None]
        w = torch.randn(drive.shape[1], 11, generator=torch.Generator().manual_seed(7)) / 5
        return x, drive @ w + power + 0.3 * torch.randn(n, 11, generator=g)

    x_tr, y_tr = windows(80, 1)
    x_va, y_va = windows(30, 2)
    x_te, _ = windows(9, 3)
    kw = dict(seed=0, n_members=2, calibrate_output=False, tangent_hrf="canonical", output_rank=None)
    plain = EEG2fMRINet(TAN, **kw)
    info0 = plain.after_fit(_batches(x_va, y_va), train_batches=_batches(x_tr, y_tr))
    model = EEG2fMRINet(TAN, linear_refit=True, **kw)
    info = model.after_fit(_batches(x_va, y_va), train_batches=_batches(x_tr, y_tr))
    for key in ("ridge_weight", "tangent_weight", "ridge_hrf", "ridge_alpha", "tangent_alpha", "voxel_gain_quantiles"):
        assert info[key] == info0[key], key
    assert info["linear_refit_windows"] == 110 and "linear_refit_windows" not in info0
    v = info["tangent_weight"]
    assert 0 < v < 1
    pspec = DataSpec("bandpower", (N_CHANS, N_BANDS, N_FRAMES), (11,), sfreq=250.0, tr=2.0, frame_rate=0.5)
    pr = RidgeHRF(pspec, refit=True).fit(x_tr[:, :, :N_BANDS].numpy(), y_tr.numpy(), x_va[:, :, :N_BANDS].numpy(), y_va.numpy())
    h = double_gamma_hrf(2.0, length=2.0 * N_FRAMES)[:N_FRAMES][::-1]
    conv = lambda x: np.einsum("ncft,t->ncf", x[:, :, N_BANDS:].numpy().astype(np.float64), h)[..., None]  # noqa: E731
    tspec = DataSpec("bandpower", (N_CHANS, N_BANDS * N_CHANS, 1), (11,), sfreq=250.0, tr=2.0, frame_rate=0.5)
    tr_ = RidgeHRF(tspec, hrf="lags", alphas=tuple(np.logspace(-2, 7, 19)), refit=True).fit(conv(x_tr), y_tr.numpy(), conv(x_va), y_va.numpy())
    want = (1 - v) * pr.predict(x_te[:, :, :N_BANDS].numpy()) + v * tr_.predict(conv(x_te))
    model.eval()
    plain.eval()
    with torch.no_grad():
        np.testing.assert_allclose(model.ridge_prediction(x_te).numpy(), want, rtol=1e-3, atol=1e-4)
        assert not np.allclose(model.ridge_prediction(x_te).numpy(), plain.ridge_prediction(x_te).numpy(), atol=1e-3)
        held_out = (y_va - plain(x_va)).numpy()  # the model before its refit is the plain one
    assert "_pending_refit" not in model.__dict__
    # the validation residuals before the refit are kept for conformal calibration (in-sample after it)
    np.testing.assert_allclose(model.val_residuals_, held_out, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model.val_target_check_, target_fingerprint(y_va.numpy()), rtol=1e-12)
    assert getattr(plain, "val_residuals_", None) is None


def test_tangent_rule_guarded_keeps_the_power_ridge_unless_the_tangent_ridge_earns_its_weight(tmp_path):
    """tangent_rule="guarded": on pure noise the best tangent mix's validation mean r is near 0, so the band-power
    ridge alone is kept (tangent weight 0, no tangent buffers, the reason recorded; its predictions equal that ridge's
    and survive save/load); on targets driven by the tangent block the mix passes the guard and equals "best"'s; an
    unknown rule is refused."""
    from eeg2fmri.models.ridge_hrf import RidgeHRF
    from eeg2fmri.preprocessing.hrf import double_gamma_hrf

    g = torch.Generator().manual_seed(4)
    x_tr, y_tr = torch.randn(80, *TAN.input_shape, generator=g), torch.randn(80, 11, generator=g)
    x_va, y_va = torch.randn(30, *TAN.input_shape, generator=g), torch.randn(30, 11, generator=g)
    x_te = torch.randn(9, *TAN.input_shape, generator=g)
    kw = {"seed": 0, "n_members": 2, "calibrate_output": False, "voxel_gain": False, "output_rank": None, "tangent_hrf": "canonical"}
    best = EEG2fMRINet(TAN, **kw).after_fit(_batches(x_va, y_va), train_batches=_batches(x_tr, y_tr))
    assert best["tangent_weight"] > 0 and "tangent_weight_kept_power" not in best  # the default ("best") mixes on noise
    model = EEG2fMRINet(TAN, tangent_rule="guarded", **kw)
    info = model.after_fit(_batches(x_va, y_va), train_batches=_batches(x_tr, y_tr))
    assert info["tangent_weight"] == 0.0 and info["tangent_weight_gain_se"] > 0
    assert info["tangent_weight_kept_power"].startswith(f"tangent weight {best['tangent_weight']:g}'s validation mean voxel r")
    assert "ridge_tan_coef" not in model._buffers and "ridge_tan_basis" not in model._buffers
    pspec = DataSpec("bandpower", (N_CHANS, N_BANDS, N_FRAMES), (11,), sfreq=250.0, tr=2.0, frame_rate=0.5)
    pr = RidgeHRF(pspec).fit(x_tr[:, :, :N_BANDS].numpy(), y_tr.numpy(), x_va[:, :, :N_BANDS].numpy(), y_va.numpy())
    model.eval()
    with torch.no_grad():
        np.testing.assert_allclose(model.ridge_prediction(x_te).numpy(), pr.predict(x_te[:, :, :N_BANDS].numpy()), rtol=1e-3, atol=1e-4)
        out = model(x_te)
    _assert_tangent_roundtrip(model, x_te, out, tmp_path)
    # targets driven by the tangent block: the mix earns its weight, as "best" chooses it
    h = torch.from_numpy(double_gamma_hrf(2.0, length=2.0 * N_FRAMES)[:N_FRAMES][::-1].copy()).float()
    w = torch.randn(N_CHANS * N_BANDS * N_CHANS, 11, generator=torch.Generator().manual_seed(7)) / 5
    drive = lambda x: torch.einsum("ncft,t->ncf", x[:, :, N_BANDS:], h).reshape(len(x), -1) @ w  # noqa: E731
    ys, yv = drive(x_tr) + 0.3 * torch.randn(80, 11, generator=g), drive(x_va) + 0.3 * torch.randn(30, 11, generator=g)
    sig = EEG2fMRINet(TAN, tangent_rule="guarded", **kw).after_fit(_batches(x_va, yv), train_batches=_batches(x_tr, ys))
    ref = EEG2fMRINet(TAN, **kw).after_fit(_batches(x_va, yv), train_batches=_batches(x_tr, ys))
    assert sig["tangent_weight"] == ref["tangent_weight"] >= 0.5 and "tangent_weight_kept_power" not in sig
    with pytest.raises(Eeg2fmriInputError, match="tangent_rule"):
        EEG2fMRINet(TAN, tangent_rule="one_se")


def test_tangent_cv_subjects_chooses_the_weight_that_transfers_across_subjects(caplog):
    """tangent_cv="subjects": the tangent weight is chosen by refitting both ridges without each training subject. Targets
    follow band power the same way in every subject but the tangent block with a subject-specific map: the validation
    windows (from the training subjects) like the tangent ridge; the cross-fit, which scores it on subjects it was not
    fitted on, gives it less weight. Without subjects or with < 3 the validation choice stays (logged); an unknown value
    is refused."""
    import logging

    from eeg2fmri.preprocessing.hrf import double_gamma_hrf

    h = torch.from_numpy(double_gamma_hrf(2.0, length=2.0 * N_FRAMES)[:N_FRAMES][::-1].copy()).float()
    n_tan = N_CHANS * N_BANDS * N_CHANS
    w_pow = torch.randn(N_CHANS * N_BANDS, 11, generator=torch.Generator().manual_seed(1)) / 3
    w_tan = [torch.randn(n_tan, 11, generator=torch.Generator().manual_seed(10 + s)) / 4 for s in range(4)]

    def windows(n, seed):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(n, *TAN.input_shape, generator=g)
        subj = torch.arange(n) % 4
        pw = torch.einsum("ncft,t->ncf", x[:, :, :N_BANDS], h).reshape(n, -1) @ w_pow
        tw = torch.stack([torch.einsum("cft,t->cf", x[i, :, N_BANDS:], h).reshape(-1) @ w_tan[int(subj[i])] for i in range(n)])
        return x, pw + tw + 0.3 * torch.randn(n, 11, generator=g), subj

    def batches(x, y, s, bs=13):
        return [(x[i : i + bs], y[i : i + bs], s[i : i + bs]) for i in range(0, len(x), bs)]

    x_tr, y_tr, s_tr = windows(160, 1)
    x_va, y_va, s_va = windows(60, 2)
    kw = {"seed": 0, "n_members": 2, "calibrate_output": False, "voxel_gain": False, "output_rank": None, "tangent_hrf": "canonical"}
    val = EEG2fMRINet(TAN, **kw).after_fit(batches(x_va, y_va, s_va), train_batches=batches(x_tr, y_tr, s_tr))
    cv = EEG2fMRINet(TAN, tangent_cv="subjects", **kw).after_fit(batches(x_va, y_va, s_va), train_batches=batches(x_tr, y_tr, s_tr))
    assert cv["tangent_weight_validation"] == val["tangent_weight"] and cv["tangent_weight_cv_subjects"] == 4
    assert cv["tangent_weight"] < val["tangent_weight"], (cv["tangent_weight"], val["tangent_weight"])
    with caplog.at_level(logging.INFO, logger="eeg2fmri"):
        none = EEG2fMRINet(TAN, tangent_cv="subjects", **kw).after_fit(_batches(x_va, y_va), train_batches=_batches(x_tr, y_tr))
        two = EEG2fMRINet(TAN, tangent_cv="subjects", **kw).after_fit(batches(x_va, y_va, s_va % 2), train_batches=batches(x_tr, y_tr, s_tr % 2))
    assert none["tangent_weight"] == val["tangent_weight"] and "tangent_weight_cv_subjects" not in none and "tangent_weight_cv_subjects" not in two
    assert "needs the subject of every training window" in caplog.text and "needs >= 3 training subjects, got 2" in caplog.text
    with pytest.raises(Eeg2fmriInputError, match="tangent_cv"):
        EEG2fMRINet(TAN, tangent_cv="runs")


def test_tangent_ridge_window_cap():
    """The tangent ridge keeps at most tangent_max_windows evenly spaced windows (the power ridge all of them)."""
    x_tr, y_tr = _windows(TAN, 80, 1)
    x_va, y_va = _windows(TAN, 30, 2)
    model = EEG2fMRINet(TAN, seed=0, n_members=2, tangent_max_windows=20)
    info = model.after_fit(_batches(x_va, y_va), train_batches=_batches(x_tr, y_tr))
    assert info["tangent_windows"] == [20, 15]  # every 4th of 80, every 2nd of 30
    full = EEG2fMRINet(TAN, seed=0, n_members=2).after_fit(_batches(x_va, y_va), train_batches=_batches(x_tr, y_tr))
    assert full["tangent_windows"] == [80, 30] and full["ridge_alpha"] == info["ridge_alpha"]
    with torch.no_grad():
        assert model.eval().ridge_prediction(x_va).shape == (30, 11)
    with pytest.raises(Eeg2fmriInputError, match="tangent_max_windows"):
        EEG2fMRINet(TAN, tangent_max_windows=0)


def test_tangent_hrf_auto_keeps_the_better_basis_on_validation():
    x_tr, y_tr = _windows(TAN, 70, 1)
    x_va, y_va = _windows(TAN, 30, 2)
    fits = {}
    for hrf in ("canonical", "basis", "auto"):
        model = EEG2fMRINet(TAN, seed=0, n_members=2, tangent_hrf=hrf, calibrate_output=False)
        info = model.after_fit(_batches(x_va, y_va), train_batches=_batches(x_tr, y_tr))
        with torch.no_grad():
            fits[hrf] = (info, model.eval().ridge_prediction(x_va).numpy())
    info, pred = fits["auto"]
    assert info["tangent_hrf"] in ("canonical", "basis") and fits["canonical"][0]["tangent_hrf"] == "canonical"
    assert EEG2fMRINet(TAN).tangent_hrf == "auto"  # the default
    assert tuple(fits["basis"][0]["tangent_hrf"] for _ in range(1)) == ("basis",)
    np.testing.assert_allclose(pred, fits[info["tangent_hrf"]][1], rtol=1e-5, atol=1e-6)  # the chosen variant, exactly
    with pytest.raises(Eeg2fmriInputError, match="tangent_hrf"):
        EEG2fMRINet(TAN, tangent_hrf="lags")


def test_tangent_ridge_is_stored_factored_and_old_models_still_load():
    """With many outputs the tangent ridge is kept as proj (n_features, n_components) @ coef (n_components, n_outputs),
    n_components <= the training windows; with few outputs as one matrix (the smaller form). A model saved with one
    (n_features, n_outputs) matrix (before 2026-12-04) loads and predicts the same, also into a model whose linear path
    is already fitted (its buffers are resized, a stale proj dropped)."""
    import dataclasses

    wide = dataclasses.replace(TAN, output_shape=(400,))
    x_tr, y_tr = _windows(wide, 50, 1)
    x_va, y_va = _windows(wide, 20, 2)
    model = EEG2fMRINet(wide, seed=0, n_members=2, tangent_hrf="canonical")
    model.after_fit(_batches(x_va, y_va), train_batches=_batches(x_tr, y_tr))
    n_feat = N_CHANS * N_BANDS * N_CHANS
    assert model.ridge_tan_proj.shape == (n_feat, 50)  # one component per training window
    assert model.ridge_tan_coef.shape == (50, 400)
    model.eval()
    with torch.no_grad():
        want = model(x_va).numpy()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["ridge_tan_coef"] = state.pop("ridge_tan_proj") @ state["ridge_tan_coef"]  # the old layout
    for target in (EEG2fMRINet(wide, seed=4, n_members=2), model):  # a fresh model, and one with a fitted (factored) path
        target.load_state_dict(state)
        assert "ridge_tan_proj" not in target._buffers and target.ridge_tan_coef.shape == (n_feat, 400)
        with torch.no_grad():
            np.testing.assert_allclose(target.eval()(x_va).numpy(), want, rtol=1e-4, atol=1e-5)
    # few outputs: 50 x (144 + 11) values would exceed 144 x 11, so one matrix is kept
    small = EEG2fMRINet(TAN, seed=0, n_members=2, tangent_hrf="canonical")
    x_tr, y_tr = _windows(TAN, 50, 1)
    x_va, y_va = _windows(TAN, 20, 2)
    small.after_fit(_batches(x_va, y_va), train_batches=_batches(x_tr, y_tr))
    assert "ridge_tan_proj" not in small._buffers and small.ridge_tan_coef.shape == (n_feat, 11)


@pytest.mark.parametrize("linear_refit", [False, True])
def test_band_power_ridge_is_stored_factored_where_smaller(linear_refit, tmp_path):
    """Lag features of many outputs: the band-power ridge is kept as ridge_proj (n_features, n_components) @ ridge_coef
    (n_components, n_outputs) -- the smaller form, as ridge_hrf(factored="auto") fits it -- and predicts what ridge_hrf
    predicts; saved and loaded (also into a fresh model), and from the one-matrix layout of format 5 and before."""
    import dataclasses

    from eeg2fmri.models.ridge_hrf import RidgeHRF

    wide = dataclasses.replace(BP, output_shape=(300,))
    x_tr, y_tr = _windows(wide, 40, 1)
    x_va, y_va = _windows(wide, 17, 2)
    x_te, _ = _windows(wide, 9, 3)
    model = EEG2fMRINet(wide, seed=0, n_members=2, calibrate_output=False, output_rank=None, ridge_blend=1.0, voxel_gain=False,
                        linear_refit=linear_refit)
    model.after_fit(_batches(x_va, y_va), train_batches=_batches(x_tr, y_tr))
    n_feat = N_CHANS * N_BANDS * N_FRAMES
    ref = RidgeHRF(wide, hrf="lags").fit(x_tr.numpy(), y_tr.numpy(), x_va.numpy(), y_va.numpy())
    if linear_refit:  # (after_fit refitted the path on training + validation windows)
        ref.refit_chosen(np.concatenate([x_tr.numpy(), x_va.numpy()]), np.concatenate([y_tr.numpy(), y_va.numpy()]))
    n_win = 57 if linear_refit else 40
    # (validation chooses the lags here, as for the flagship's path: what makes the features outnumber the windows)
    assert RidgeHRF(wide).fit(x_tr.numpy(), y_tr.numpy(), x_va.numpy(), y_va.numpy()).hrf_ == "lags"
    assert model.ridge_proj.shape == (n_feat, n_win) and model.ridge_coef.shape == (n_win, 300)  # 140 features, 300 outputs
    model.eval()
    with torch.no_grad():
        lin = model.ridge_prediction(x_te).numpy()
        want = model(x_te).numpy()
    np.testing.assert_allclose(lin, ref.predict(x_te.numpy()), rtol=1e-4, atol=1e-4)
    assert model.n_fitted_values() == n_feat * n_win + n_win * 300 + 300
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "w.safetensors"))
    state = load_file(str(tmp_path / "w.safetensors"))
    old = {k: v.clone() for k, v in state.items()}
    old["ridge_coef"] = old.pop("ridge_proj") @ old["ridge_coef"]  # format 5 and before: one (n_features, n_outputs) matrix
    for saved in (state, old):
        for target in (EEG2fMRINet(wide, seed=4, n_members=2), model):  # a fresh model, and one whose path is fitted
            target.load_state_dict(saved)
            assert ("ridge_proj" in target._buffers) == (saved is state)
            with torch.no_grad():
                np.testing.assert_allclose(target.eval()(x_te).numpy(), want, rtol=1e-4, atol=1e-4)


def _low_rank_windows(spec: DataSpec, n: int, seed: int, rank: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows whose targets share ``rank`` time courses (linear in the band power), plus independent noise per output."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *spec.input_shape, generator=g)
    w = torch.randn(int(np.prod(spec.input_shape)), rank, generator=torch.Generator().manual_seed(99)) / 10
    mix = torch.randn(rank, spec.n_outputs, generator=torch.Generator().manual_seed(98))
    y = (x.reshape(n, -1) @ w) @ mix + 1.5 * torch.randn(n, spec.n_outputs, generator=g)
    return x, y.reshape(n, *spec.output_shape)


@pytest.mark.parametrize("shape", [(30,), (5, 3, 2)], ids=["rois", "volume"])
def test_output_rank_projects_on_the_linear_paths_leading_components(tmp_path, shape):
    """output_rank="validation" (the default): the blended prediction is projected on the leading right singular vectors
    of the linear path's fitted values on the training windows (checked against numpy's SVD), the rank chosen on the
    validation windows; targets of rank 2 plus noise get a low rank and a higher validation r than the full rank."""
    import dataclasses

    spec = dataclasses.replace(BP, output_shape=shape)
    x_tr, y_tr = _low_rank_windows(spec, 70, 1)
    x_va, y_va = _low_rank_windows(spec, 30, 2)
    x_te, _ = _low_rank_windows(spec, 9, 3)
    assert EEG2fMRINet(spec).output_rank == "validation"
    model = EEG2fMRINet(spec, seed=0, n_members=2, calibrate_output=False, voxel_gain=False, rank_output_check=True)  # (every output projected)
    info = model.after_fit(_batches(x_va, y_va), train_batches=_batches(x_tr, y_tr))
    k = info["output_rank"]
    assert isinstance(k, int) and 1 <= k <= 4, info
    assert info["val_r_output_rank"] > info["val_r_blend"]
    assert model.out_basis.shape == (k, 30) and model.out_centre.shape == (30,)
    model.eval()
    with torch.no_grad():
        fitted = model.ridge_prediction(x_tr).double().numpy()  # every training window (fewer than the cap)
        out = model(x_te).numpy()
        members = model.member_predictions(x_te).numpy()
    assert out.shape == (9, *shape) and members.shape == (9, 2, *shape)
    out, members = out.reshape(9, 30), members.reshape(9, 2, 30)
    _, _, vt = np.linalg.svd(fitted - fitted.mean(0), full_matrices=False)
    basis = model.out_basis.double().numpy()
    np.testing.assert_allclose(basis.T @ basis, vt[:k].T @ vt[:k], atol=1e-4)  # the same subspace
    np.testing.assert_allclose(model.out_centre.numpy(), fitted.mean(0), rtol=1e-4, atol=1e-5)
    # the output is the unprojected blend, projected
    plain = EEG2fMRINet(spec, seed=0, n_members=2, calibrate_output=False, voxel_gain=False)
    plain.load_state_dict({n: v for n, v in model.state_dict().items() if not n.startswith("out_")})
    assert "out_basis" not in plain._buffers  # (a state without the projection: a model saved before 2026-12-05)
    with torch.no_grad():
        blend = plain.eval()(x_te).numpy().reshape(9, 30)
    c = model.out_centre.numpy()
    np.testing.assert_allclose(out, c + ((blend - c) @ basis.T) @ basis, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(members.mean(1), out, rtol=1e-4, atol=1e-5)
    # saved and loaded into a fresh model (and into one without a projection): the same predictions
    save_file({n: v.contiguous() for n, v in model.state_dict().items()}, str(tmp_path / "r.safetensors"))
    for target in (EEG2fMRINet(spec, seed=5, n_members=2), plain):
        target.load_state_dict(load_file(str(tmp_path / "r.safetensors")))
        with torch.no_grad():
            np.testing.assert_allclose(target.eval()(x_te).numpy().reshape(9, 30), out, rtol=1e-5, atol=1e-6)
    # fitted again (e.g. a loaded model refitted): the same choices as the first time, not scored through the old projection
    first = {k: v for k, v in info.items() if k != "output_gain"}
    again = model.after_fit(_batches(x_va, y_va), train_batches=_batches(x_tr, y_tr))
    assert {k: v for k, v in again.items() if k != "output_gain"} == first
    with torch.no_grad():
        np.testing.assert_allclose(model.eval()(x_te).numpy().reshape(9, 30), out, rtol=1e-5, atol=1e-6)


def test_output_rank_fixed_or_off():
    import dataclasses

    spec = dataclasses.replace(BP, output_shape=(30,))
    x_tr, y_tr = _low_rank_windows(spec, 70, 1)
    x_va, y_va = _low_rank_windows(spec, 30, 2)
    two = EEG2fMRINet(spec, seed=0, n_members=2, output_rank=2)
    info = two.after_fit(_batches(x_va, y_va), train_batches=_batches(x_tr, y_tr))
    assert info["output_rank"] == 2 and two.out_basis.shape == (2, 30)
    with torch.no_grad():
        pred = two.eval()(x_va).double().numpy()
    s = np.linalg.svd(pred - two.out_centre.double().numpy(), compute_uv=False)
    assert s[2] < 1e-4 * s[0]  # every prediction lies in the rank-2 affine subspace
    off = EEG2fMRINet(spec, seed=0, n_members=2, output_rank=None)
    info = off.after_fit(_batches(x_va, y_va), train_batches=_batches(x_tr, y_tr))
    assert "output_rank" not in info and "out_basis" not in off._buffers
    # a rank >= the number of outputs leaves the prediction as it is; one above what the training windows allow is cut to it
    many = EEG2fMRINet(spec, seed=0, n_members=2, output_rank=30)
    assert many.after_fit(_batches(x_va, y_va), train_batches=_batches(x_tr, y_tr))["output_rank"] is None
    assert "out_basis" not in many._buffers
    few = EEG2fMRINet(spec, seed=0, n_members=2, output_rank=25)
    assert few.after_fit(_batches(x_va, y_va), train_batches=_batches(x_tr[:12], y_tr[:12]))["output_rank"] == 11
    # an explicit rank needs the linear path
    for kwargs, why in (({"ridge_blend": 0}, "ridge_blend=0"), ({"spec": RAW, **RAW_KW}, "raw input")):
        kw = {"spec": spec, **kwargs}
        with pytest.raises(Eeg2fmriInputError, match=rf"output_rank=3 projects on the linear path's fitted values, but this model has no linear path \({why}\)"):
            EEG2fMRINet(output_rank=3, **kw)
    assert EEG2fMRINet(RAW, **RAW_KW).output_rank == "validation"  # the default is a no-op there


def test_output_rank_with_tangent_input_uses_the_tangent_ridges_windows():
    """With tangent input the subspace comes from the linear path's fit on the tangent ridge's (evenly spaced) windows."""
    import dataclasses

    spec = dataclasses.replace(TAN, output_shape=(30,))
    x_tr, y_tr = _low_rank_windows(spec, 80, 1)
    x_va, y_va = _low_rank_windows(spec, 30, 2)
    model = EEG2fMRINet(spec, seed=0, n_members=2, tangent_max_windows=20, tangent_hrf="canonical", output_rank=6)
    info = model.after_fit(_batches(x_va, y_va), train_batches=_batches(x_tr, y_tr))
    assert info["tangent_windows"] == [20, 15] and info["output_rank"] == 6
    with torch.no_grad():
        fitted = model.eval().ridge_prediction(x_tr[::4]).double().numpy()  # every 4th of 80 windows
    _, _, vt = np.linalg.svd(fitted - fitted.mean(0), full_matrices=False)
    basis = model.out_basis.double().numpy()
    np.testing.assert_allclose(basis.T @ basis, vt[:6].T @ vt[:6], atol=1e-4)
    np.testing.assert_allclose(model.out_centre.numpy(), fitted.mean(0), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape", [(40, 300), (300, 40)], ids=["wide", "tall"])
def test_leading_right_vectors_equal_numpys_svd(shape):
    """Exact leading right singular vectors (Gram matrix of the smaller side, in blocks) -- against numpy's SVD, also deep
    into a slowly decaying spectrum (where a randomized SVD drifts); a lower-rank matrix gives fewer vectors."""
    from eeg2fmri.models.flagship import leading_right_vectors

    rng = np.random.default_rng(0)
    n, m = shape
    r = min(n, m)
    s = np.concatenate([[50.0, 30.0, 20.0], np.linspace(4.0, 0.5, r - 3)])
    u, _ = np.linalg.qr(rng.standard_normal((n, r)))
    w, _ = np.linalg.qr(rng.standard_normal((m, r)))
    a = ((u * s) @ w.T).astype(np.float32)
    _, _, vt = np.linalg.svd(a.astype(np.float64), full_matrices=False)
    got = leading_right_vectors(a, 30, block=7)
    assert got.shape == (30, m) and got.dtype == np.float32
    np.testing.assert_allclose(got.astype(np.float64) @ got.T, np.eye(30), atol=1e-5)
    for k in (1, 3, 10, 30):  # the same subspaces (up to the sign and order within equal singular values)
        np.testing.assert_allclose(got[:k].T.astype(np.float64) @ got[:k], vt[:k].T @ vt[:k], atol=2e-4)
    low = (a[:, :1] * rng.standard_normal((1, m))).astype(np.float32) if n <= m else (rng.standard_normal((n, 1)) * a[:1]).astype(np.float32)
    assert len(leading_right_vectors(low, 5)) == 1  # rank 1


def test_voxel_gain_flattens_outputs_the_model_does_not_predict():
    """voxel_gain (default): each output's fluctuations shrink by the validation least-squares slope (in [0.001, 1]); an
    output without signal becomes nearly flat, one with signal keeps most of it; voxel r is unchanged; the buffers survive
    save/load, and a state without them (a model saved before 2026-12-05) loads into a model without the shrinkage."""
    import dataclasses

    spec = dataclasses.replace(BP, output_shape=(30,))
    x_tr, y_tr = _low_rank_windows(spec, 70, 1)
    x_va, y_va = _low_rank_windows(spec, 30, 2)
    x_te, y_te = _low_rank_windows(spec, 40, 3)
    noise = torch.Generator().manual_seed(7)
    for y in (y_tr, y_va, y_te):  # outputs 0-4 carry no signal: pure noise
        y[:, :5] = torch.randn(len(y), 5, generator=noise)
    plain = EEG2fMRINet(spec, seed=0, n_members=2, voxel_gain=False, output_rank=None)
    plain.after_fit(_batches(x_va, y_va), train_batches=_batches(x_tr, y_tr))
    model = EEG2fMRINet(spec, seed=0, n_members=2, output_rank=None)
    info = model.after_fit(_batches(x_va, y_va), train_batches=_batches(x_tr, y_tr))
    g = model.voxel_gain.numpy()
    assert g.shape == (30,) and g.min() >= 0.001 and g.max() <= 1.0 and len(info["voxel_gain_quantiles"]) == 3
    with torch.no_grad():
        p0, p1 = plain.eval()(x_va).double().numpy(), model.eval()(x_va).double().numpy()
    # the gain is the least-squares slope of y on the plain prediction (centred), clipped
    yv = y_va.double().numpy()
    pc, yc = p0 - p0.mean(0), yv - yv.mean(0)
    np.testing.assert_allclose(g, np.clip((pc * yc).sum(0) / (pc * pc).sum(0), 0.001, 1.0), rtol=1e-4, atol=1e-6)
    with torch.no_grad():
        t0, t1 = plain(x_te).double().numpy(), model(x_te).double().numpy()
    from eeg2fmri.evaluation.metrics import voxelwise_r

    np.testing.assert_allclose(voxelwise_r(y_te.numpy(), t1), voxelwise_r(y_te.numpy(), t0), atol=1e-5)  # r unchanged
    assert np.all(t1.std(0) <= t0.std(0) + 1e-6)  # it only shrinks
    assert ((p1 - yv) ** 2).mean() <= ((p0 - yv) ** 2).mean()  # a better least-squares fit of the validation data
    state = {n: v.contiguous() for n, v in model.state_dict().items()}
    fresh = EEG2fMRINet(spec, seed=5, n_members=2, output_rank=None)
    fresh.load_state_dict(state)
    with torch.no_grad():
        np.testing.assert_allclose(fresh.eval()(x_te).double().numpy(), t1, rtol=1e-5, atol=1e-6)
    old = EEG2fMRINet(spec, seed=5, n_members=2, output_rank=None)
    old.load_state_dict({n: v for n, v in state.items() if n not in ("voxel_gain", "gain_centre")})
    assert "voxel_gain" not in old._buffers
    with torch.no_grad():
        np.testing.assert_allclose(old.eval()(x_te).double().numpy(), t0, rtol=1e-5, atol=1e-6)
    # predictions as a network gives them where it learned noise: full-size fluctuations in outputs 0-4 that the
    # validation targets do not follow; the fitted gains make those nearly flat and keep the others
    rng = np.random.default_rng(0)
    pred = yv + 0.3 * rng.standard_normal(yv.shape)
    pred[:, :5] = 2.0 * rng.standard_normal((len(yv), 5))
    fake = EEG2fMRINet(spec, seed=0, n_members=2)
    rows = iter(np.split(pred, np.cumsum([len(b[0]) for b in _batches(x_va, y_va)])[:-1]))
    fake.forward = lambda xb, sb=None: torch.as_tensor(next(rows), dtype=torch.float32)
    fake._fit_voxel_gain(_batches(x_va, y_va))
    gain = fake.voxel_gain.numpy()
    assert gain[:5].max() < 0.3 and gain[5:].min() > 0.7, gain


def test_an_output_rank_chosen_on_a_noise_level_validation_r_is_warned(caplog):
    """Targets of pure noise, choice_rule="best": the validation mean voxel r is near 0, and a rank chosen on it is a
    choice among noise; it is recorded (output_rank_on_noise) and warned, with the alternative (user test: rank 1 lost
    the driven regions)."""
    import logging

    spec, x_tr, y_tr, x_va, y_va = _noise_windows()
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        info = EEG2fMRINet(spec, seed=0, n_members=2, choice_rule="best").after_fit(_batches(x_va, y_va), train_batches=_batches(x_tr, y_tr))
    assert info["output_rank"] is not None and info["val_r_output_rank"] < 0.02 and info["output_rank_on_noise"]
    assert f"output rank {info['output_rank']} chosen on a validation mean voxel r of" in caplog.text
    assert "compare with model.hparams.output_rank: null" in caplog.text


def _noise_windows(seed: int = 3):
    import dataclasses

    spec = dataclasses.replace(BP, output_shape=(30,))
    g = torch.Generator().manual_seed(seed)
    x_tr, y_tr = torch.randn(70, *spec.input_shape, generator=g), torch.randn(70, 30, generator=g)
    x_va, y_va = torch.randn(30, *spec.input_shape, generator=g), torch.randn(30, 30, generator=g)
    return spec, x_tr, y_tr, x_va, y_va


def test_choice_rule_guarded_keeps_the_full_prediction_on_noise_and_chooses_a_rank_on_signal(caplog):
    """choice_rule="guarded" (default): on pure noise the best rank's validation mean r is below 0.02, so the
    full prediction is kept (the reason recorded, nothing warned); on low-rank targets with signal the rank is chosen as
    with "best"; an unknown rule is refused."""
    import dataclasses
    import logging

    spec0, x_tr, y_tr, x_va, y_va = _noise_windows()
    best = EEG2fMRINet(spec0, seed=0, n_members=2, choice_rule="best").after_fit(_batches(x_va, y_va), train_batches=_batches(x_tr, y_tr))
    assert best["output_rank"] is not None  # the old rule projects on noise (the test above)
    model = EEG2fMRINet(spec0, seed=0, n_members=2)
    assert model.choice_rule == "guarded"
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        info = model.after_fit(_batches(x_va, y_va), train_batches=_batches(x_tr, y_tr))
    assert info["output_rank"] is None and "out_basis" not in model._buffers
    assert "validation mean voxel r" in info["output_rank_kept_full"] and "is below 0.02" in info["output_rank_kept_full"]
    assert info["output_rank_gain_se"] > 0
    assert "output rank" not in caplog.text
    spec = dataclasses.replace(BP, output_shape=(40,))
    xs, ys = _low_rank_windows(spec, 120, 1)
    xv, yv = _low_rank_windows(spec, 60, 2)
    sig = EEG2fMRINet(spec, seed=0, n_members=2).after_fit(_batches(xv, yv), train_batches=_batches(xs, ys))
    ref = EEG2fMRINet(spec, seed=0, n_members=2, choice_rule="best").after_fit(_batches(xv, yv), train_batches=_batches(xs, ys))
    assert sig["output_rank"] == ref["output_rank"] and sig["output_rank"] is not None
    assert sig["val_r_output_rank"] >= 0.02 and "output_rank_kept_full" not in sig
    with pytest.raises(Eeg2fmriInputError, match="choice_rule"):
        EEG2fMRINet(spec, choice_rule="one_se")


def test_outputs_lost_by_rank_are_those_whose_validation_r_falls_by_more_than_two_jackknife_se():
    """rank_output_check's test (user test 13: rank 1 kept the alpha region's pattern and took the theta region from ROI r
    0.74 to -0.20): outputs whose signal the ranked prediction lost are found, those it kept or never had are not."""
    g = np.random.default_rng(0)
    n = 160
    s1, s2 = g.standard_normal(n), g.standard_normal(n)
    y = np.column_stack([np.tile(s1[:, None], 4), np.tile(s2[:, None], 6), np.zeros((n, 10))]) + g.standard_normal((n, 20))
    full = np.column_stack([np.tile(s1[:, None], 4), np.tile(s2[:, None], 6), g.standard_normal((n, 10))]) + 0.3 * g.standard_normal((n, 20))
    ranked = full.copy()
    ranked[:, :4] = 0.2 * s2[:, None] + 0.1 * g.standard_normal((n, 4))  # outputs 0-3: their own signal lost (s2's pattern instead)
    ranked[:, 4:10] = s2[:, None]  # outputs 4-9: the pattern the rank kept, denoised
    lost = EEG2fMRINet._outputs_lost_by_rank(full, ranked, y)
    assert lost.dtype == bool and lost[:4].all() and not lost[4:].any(), lost
    assert EEG2fMRINet._outputs_lost_by_rank(full[:1], ranked[:1], y[:1]) is None  # one window: no jackknife
    # "evident": the same, plus outputs evidently predicted in full that the rank lowers at all (user test 23); the
    # denoised ones (4-9) and the unpredicted ones (10-19, no evident r) keep the rank
    ranked[:, 9] = s2 + 0.3 * g.standard_normal(n)  # output 9: lowered a little (r 0.727 -> 0.715), within 2 SEs of the change
    evident = EEG2fMRINet._outputs_lost_by_rank(full, ranked, y, evident=True)
    plain = EEG2fMRINet._outputs_lost_by_rank(full, ranked, y)
    assert evident[:4].all() and evident[9] and not plain[9] and not evident[4:9].any() and not evident[10:].any(), evident


def test_rank_output_check_keeps_the_full_prediction_for_the_outputs_a_rank_loses(tmp_path, monkeypatch):
    """The outputs the check finds keep the unprojected blend (out_keep), the others the rank's projection; saved and
    loaded with the model; rank_output_check=False projects every output; a non-bool is refused."""
    import dataclasses

    spec = dataclasses.replace(BP, output_shape=(30,))
    x_tr, y_tr = _low_rank_windows(spec, 70, 1)
    x_va, y_va = _low_rank_windows(spec, 30, 2)
    x_te, _ = _low_rank_windows(spec, 9, 3)
    off = EEG2fMRINet(spec, seed=0, n_members=2, calibrate_output=False, voxel_gain=False, rank_output_check=False)
    info_off = off.after_fit(_batches(x_va, y_va), train_batches=_batches(x_tr, y_tr))
    assert isinstance(info_off["output_rank"], int) and "out_keep" not in off._buffers
    assert EEG2fMRINet(spec).rank_output_check == "evident"  # (the default since session 29)
    kept = np.zeros(30, dtype=bool)
    kept[[0, 3, 7]] = True
    seen = {}

    def fake(full, ranked, y, evident=False):
        seen["shapes"] = (full.shape, ranked.shape, y.shape)
        return kept

    monkeypatch.setattr(EEG2fMRINet, "_outputs_lost_by_rank", staticmethod(fake))
    model = EEG2fMRINet(spec, seed=0, n_members=2, calibrate_output=False, voxel_gain=False)
    info = model.after_fit(_batches(x_va, y_va), train_batches=_batches(x_tr, y_tr))
    assert seen["shapes"] == ((30, 30), (30, 30), (30, 30))
    assert info["output_rank"] == info_off["output_rank"] and info["output_rank_outputs_kept_full"] == 3
    np.testing.assert_array_equal(model.out_keep.numpy(), kept.astype(np.float32))
    plain = EEG2fMRINet(spec, seed=0, n_members=2, calibrate_output=False, voxel_gain=False)
    plain.load_state_dict({n: v for n, v in model.state_dict().items() if not n.startswith("out_")})
    with torch.no_grad():
        out, blend, projected = model.eval()(x_te).numpy(), plain.eval()(x_te).numpy(), off.eval()(x_te).numpy()
    np.testing.assert_allclose(out[:, kept], blend[:, kept], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[:, ~kept], projected[:, ~kept], rtol=1e-5, atol=1e-6)
    save_file({n: v.contiguous() for n, v in model.state_dict().items()}, str(tmp_path / "k.safetensors"))
    fresh = EEG2fMRINet(spec, seed=5, n_members=2)
    fresh.load_state_dict(load_file(str(tmp_path / "k.safetensors")))
    with torch.no_grad():
        np.testing.assert_allclose(fresh.eval()(x_te).numpy(), out, rtol=1e-5, atol=1e-6)
    off.load_state_dict(load_file(str(tmp_path / "k.safetensors")))  # a model without out_keep takes it on
    assert "out_keep" in off._buffers
    with pytest.raises(Eeg2fmriInputError, match='rank_output_check as true, false or "evident", got .yes.'):
        EEG2fMRINet(spec, rank_output_check="yes")


def test_shift_guard_rejects_a_smooth_prediction_that_gains_by_chance():
    """shift_guard: with noise shared across outputs, a one-pattern prediction's validation gain over a full one is
    tested against the gains both show under circular shifts; a gain of real signal passes."""
    from eeg2fmri.models.flagship import _earned, _shift_guard

    rng = np.random.default_rng(5)
    n, m = 120, 300
    common = np.convolve(rng.standard_normal(n + 20), np.ones(12) / 12, "valid")[:n]  # slow noise shared by every output
    y = common[:, None] * rng.uniform(0.5, 1.5, m) + 0.5 * rng.standard_normal((n, m))
    full = rng.standard_normal((n, m))  # a full prediction of nothing
    found = None
    for seed in range(200):  # a smooth prediction of nothing that happens to follow the shared noise a little
        g = np.convolve(np.random.default_rng(seed).standard_normal(n + 20), np.ones(12) / 12, "valid")[:n]
        smooth = g[:, None] * np.ones(m) + 0.05 * rng.standard_normal((n, m))
        if 0.1 < np.corrcoef(g, common)[0, 1] < 0.25:
            found = smooth
            break
    assert found is not None
    why = _shift_guard(found, full, y, "rank 1", "the full prediction")
    assert why is not None and why.startswith("rank 1's validation gain") and "circular shifts" in why and "shift_guard" in why
    # a prediction of the signal itself gains far beyond what shifts give
    signal = y + 2.0 * rng.standard_normal((n, m))
    assert _shift_guard(signal, full, y, "weight 0.3", "the linear path alone") is None
    # through _earned: the jackknife passes the chance gain; only shifts=True keeps the default
    se, plain = _earned(found, full, y, "weight 0.2", "the linear path alone")
    _, guarded = _earned(found, full, y, "weight 0.2", "the linear path alone", shifts=True)
    assert plain is None and guarded is not None and "weight 0.2's validation gain" in guarded


def test_shift_guard_option_is_validated():
    from eeg2fmri.models import build_model

    with pytest.raises(Eeg2fmriInputError, match="expected shift_guard as true or false, got 'yes'"):
        build_model("eeg2fmri_net", BP, shift_guard="yes")


def test_rank_guard_conditions():
    """The guard keeps the full prediction when the rank's validation r is below 0.02 or its gain within one SE."""
    from eeg2fmri.models.flagship import _rank_guard

    assert _rank_guard(3, 0.05, 0.04, 0.004) is None  # gain 0.01 > 1 SE, r >= 0.02: the rank is taken
    assert "is below 0.02" in _rank_guard(1, 0.0197, 0.005, 0.0001)  # noise level, however large the gain in SEs
    assert "within 1 jackknife SE (0.0120)" in _rank_guard(6, 0.15, 0.14, 0.012)
    assert _rank_guard(6, 0.15, 0.14, 0.0099) is None



def test_blend_rule_guarded_keeps_the_linear_path_unless_the_network_earns_its_weight():
    """blend_rule="guarded" (the default since session 19): on pure noise the best blend weight's validation mean r is
    below 0.02, so the linear path alone is kept (weight 1, the reason recorded); "best" takes the argmax; an unknown
    rule is refused."""
    for seed, why in ((5, "is below 0.02"), (9, "over the linear path alone, within 1 jackknife SE")):
        spec, x_tr, y_tr, x_va, y_va = _noise_windows(seed)
        best_model = EEG2fMRINet(spec, seed=0, n_members=2, output_rank=None, blend_rule="best")
        best = best_model.after_fit(_batches(x_va, y_va), train_batches=_batches(x_tr, y_tr))
        assert best["ridge_weight"] < 1.0 and "ridge_weight_kept_linear" not in best  # the argmax of noise
        model = EEG2fMRINet(spec, seed=0, n_members=2, output_rank=None)
        assert model.blend_rule == "guarded"
        info = model.after_fit(_batches(x_va, y_va), train_batches=_batches(x_tr, y_tr))
        assert info["ridge_weight"] == 1.0 and float(model.ridge_weight) == 1.0
        assert info["ridge_weight_kept_linear"].startswith(f"weight {best['ridge_weight']:g}'s validation mean voxel r")
        assert why in info["ridge_weight_kept_linear"] and info["ridge_weight_gain_se"] > 0
        # at weight 1 the network is not run in evaluation mode: the prediction is the linear path's (+ shrinkage) as
        # the full blend computes it, and the network's layers are never called
        model.eval()
        xb = torch.as_tensor(x_va[:7]).float()
        with torch.no_grad():
            full = model._blend(model._ranked(xb, None).new_ones((7, spec.n_outputs)) * 1e3, xb)  # any network output: weight 0
            calls = []
            orig = model._ranked
            model._ranked = lambda *a, calls=calls, orig=orig, **k: calls.append(1) or orig(*a, **k)
            fast = model(xb)
            mean, std = model.predict_ensemble(xb)  # every member is the linear path: its mean, no spread
            assert calls == [] and torch.allclose(fast.reshape(7, -1), full.reshape(7, -1), atol=1e-5)
            assert torch.equal(mean, fast) and not std.any()
            # the benchmark's params: the linear path's fitted values alone at weight 1 (not the unused network's)
            from eeg2fmri.workflows.benchmark import count_parameters

            lin_n = sum(int(model._buffers[k].numel()) for k in ("ridge_coef", "ridge_bias", "ridge_tan_coef", "ridge_tan_proj",
                                                                "out_basis", "out_centre", "voxel_gain", "gain_centre") if k in model._buffers)
            net_n = sum(int(p.numel()) for p in model.parameters())
            assert lin_n > 0 and count_parameters(model) == lin_n
            model.ridge_weight.fill_(0.95)  # any other weight: the network runs (and its parameters count)
            model(xb)
            assert count_parameters(model) == lin_n + net_n
            model._ranked = orig
        assert calls == [1]
    with pytest.raises(Eeg2fmriInputError, match="blend_rule"):
        EEG2fMRINet(spec, blend_rule="one_se")


def test_tangent_rule_floor_keeps_the_power_ridge_where_the_validation_r_is_noise():
    """tangent_rule="floor" (default): with many outputs of pure noise the best mix's validation mean voxel r is below 0.02 (a
    choice among noise, as on focal data): the band-power ridge alone is kept, the reason recorded, no tangent buffers;
    where the tangent block drives the targets the mix is kept as "best" chooses it."""
    import dataclasses

    from eeg2fmri.preprocessing.hrf import double_gamma_hrf

    spec = dataclasses.replace(TAN, output_shape=(150,))
    g = torch.Generator().manual_seed(7)  # (a seed where "best" mixes on the noise: weight 0.5)
    x_tr, y_tr = torch.randn(160, *spec.input_shape, generator=g), torch.randn(160, 150, generator=g)
    x_va, y_va = torch.randn(120, *spec.input_shape, generator=g), torch.randn(120, 150, generator=g)
    kw = {"seed": 0, "n_members": 2, "calibrate_output": False, "voxel_gain": False, "output_rank": None, "tangent_hrf": "canonical"}
    best = EEG2fMRINet(spec, tangent_rule="best", **kw).after_fit(_batches(x_va, y_va), train_batches=_batches(x_tr, y_tr))
    assert best["tangent_weight"] > 0 and "tangent_weight_kept_power" not in best
    model = EEG2fMRINet(spec, **kw)  # "floor" is the default (session 21)
    assert model.tangent_rule == "floor"
    info = model.after_fit(_batches(x_va, y_va), train_batches=_batches(x_tr, y_tr))
    assert info["tangent_weight"] == 0.0 and "tangent_weight_gain_se" not in info
    assert re.fullmatch(rf"tangent weight {best['tangent_weight']:g}'s validation mean voxel r -?0\.\d{{4}} is below 0\.02", info["tangent_weight_kept_power"])
    assert "ridge_tan_coef" not in model._buffers and "ridge_tan_basis" not in model._buffers
    h = torch.from_numpy(double_gamma_hrf(2.0, length=2.0 * N_FRAMES)[:N_FRAMES][::-1].copy()).float()
    w = torch.randn(N_CHANS * N_BANDS * N_CHANS, 150, generator=torch.Generator().manual_seed(7)) / 5
    drive = lambda x: torch.einsum("ncft,t->ncf", x[:, :, N_BANDS:], h).reshape(len(x), -1) @ w  # noqa: E731
    ys, yv = drive(x_tr) + 0.3 * torch.randn(160, 150, generator=g), drive(x_va) + 0.3 * torch.randn(120, 150, generator=g)
    sig = EEG2fMRINet(spec, tangent_rule="floor", **kw).after_fit(_batches(x_va, yv), train_batches=_batches(x_tr, ys))
    ref = EEG2fMRINet(spec, tangent_rule="best", **kw).after_fit(_batches(x_va, yv), train_batches=_batches(x_tr, ys))
    assert sig["tangent_weight"] == ref["tangent_weight"] >= 0.5 and "tangent_weight_kept_power" not in sig


def test_ridge_alpha_per_target_gives_the_linear_path_a_penalty_per_output():
    """ridge_alpha_per_target=True (opt-in): the band-power ridge of the linear path chooses one penalty per output, as
    ridge_hrf(alpha_per_target=True) fitted on the same windows does (its coefficients, folded, give the same
    prediction); a non-bool is refused."""
    import dataclasses

    from eeg2fmri.models.ridge_hrf import RidgeHRF

    spec = dataclasses.replace(BP, output_shape=(30,))
    x_tr, y_tr = _low_rank_windows(spec, 70, 1)
    x_va, y_va = _low_rank_windows(spec, 30, 2)
    x_te, _ = _low_rank_windows(spec, 9, 3)
    kw = dict(seed=0, n_members=2, calibrate_output=False, voxel_gain=False, output_rank=None, ridge_blend=1.0)
    model = EEG2fMRINet(spec, ridge_alpha_per_target=True, **kw)
    model.after_fit(_batches(x_va, y_va), train_batches=_batches(x_tr, y_tr))
    ref = RidgeHRF(spec, alpha_per_target=True).fit(x_tr.numpy(), y_tr.numpy(), x_va.numpy(), y_va.numpy())
    assert np.asarray(ref.alpha_).shape == (30,) and len(set(np.asarray(ref.alpha_).tolist())) > 1
    with torch.no_grad():
        np.testing.assert_allclose(model.eval()(x_te).numpy(), ref.predict(x_te.numpy()), rtol=1e-3, atol=1e-4)
    one = EEG2fMRINet(spec, **kw)
    one.after_fit(_batches(x_va, y_va), train_batches=_batches(x_tr, y_tr))
    with torch.no_grad():
        assert not np.allclose(one.eval()(x_te).numpy(), model(x_te).numpy(), atol=1e-4)
    # "guarded": as ridge_hrf(alpha_per_target="guarded") on the same windows; the share of own penalties in info
    guarded = EEG2fMRINet(spec, ridge_alpha_per_target="guarded", **kw)
    info = guarded.after_fit(_batches(x_va, y_va), train_batches=_batches(x_tr, y_tr))
    gref = RidgeHRF(spec, alpha_per_target="guarded").fit(x_tr.numpy(), y_tr.numpy(), x_va.numpy(), y_va.numpy())
    assert info["ridge_own_alpha_fraction"] == gref.own_alpha_fraction_
    with torch.no_grad():
        np.testing.assert_allclose(guarded.eval()(x_te).numpy(), gref.predict(x_te.numpy()), rtol=1e-3, atol=1e-4)
    with pytest.raises(Eeg2fmriInputError, match=r"ridge_alpha_per_target as true, false, \"guarded\" or \"auto\", got 1"):
        EEG2fMRINet(spec, ridge_alpha_per_target=1)


def test_linear_refit_on_more_windows_changes_the_tangent_form_cleanly():
    """User test 34: a LOSO fold's first fit (one subject's windows) kept the tangent ridge factored, the refit on more
    windows as one matrix, and the first fit's projection stayed behind: predicting raised "mat1 and mat2 shapes cannot be
    multiplied". 200 outputs, 100 tangent features: 50 training windows give the factored form (50 x (100 + 200) < 100 x
    200), the refit on 50 + 70 windows one matrix (120 x 300 > 20,000)."""
    import dataclasses

    wide = dataclasses.replace(TAN, output_shape=(200,))
    x_tr, y_tr = _windows(wide, 50, 1)
    x_va, y_va = _windows(wide, 70, 2)
    kw = dict(seed=0, n_members=2, tangent_hrf="canonical", output_rank=None, tangent_rule="best")
    plain = EEG2fMRINet(wide, **kw)
    plain.after_fit(_batches(x_va, y_va), train_batches=_batches(x_tr, y_tr))
    assert plain.ridge_tan_proj.shape == (N_CHANS * N_BANDS * N_CHANS, 50)  # the first fit: factored
    model = EEG2fMRINet(wide, linear_refit=True, **kw)
    info = model.after_fit(_batches(x_va, y_va), train_batches=_batches(x_tr, y_tr))
    assert info["tangent_weight"] > 0 and info["linear_refit_windows"] == 120
    assert "ridge_tan_proj" not in model._buffers and model.ridge_tan_coef.shape == (N_CHANS * N_BANDS * N_CHANS, 200)
    with torch.no_grad():
        assert model.eval()(x_va).shape == (70, 200)
