"""Memory of the whole-brain linear fits (user test 40): no float64 copy of whole coefficient matrices comes back.

Peaks are measured with tracemalloc (numpy reports its array allocations to it) on problems with many outputs and few
features, where a float64 copy of the coefficients is the largest thing a step could allocate; the bounds are computed
from the arrays' sizes, and each test also checks that the float64 way would have crossed them.
"""

from __future__ import annotations

import dataclasses
import tracemalloc
import weakref

import numpy as np
import pytest
import torch

from eeg2fmri.models import DataSpec
from eeg2fmri.models.flagship import EEG2fMRINet
from eeg2fmri.models.ridge_hrf import RidgeHRF

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# a different size on every axis: 5 channels, 4 bands, 7 frames; many outputs
N_CHANS, N_BANDS, N_FRAMES = 5, 4, 7
BP = DataSpec("bandpower", (N_CHANS, N_BANDS, N_FRAMES), (30011,), sfreq=250.0, tr=2.0, frame_rate=0.5, n_subjects=3)
TAN = DataSpec("tangent", (N_CHANS, N_BANDS * (1 + N_CHANS), N_FRAMES), (20011,), sfreq=250.0, tr=2.0, frame_rate=0.5, n_subjects=3)


def _windows(spec: DataSpec, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows whose targets follow the band power linearly plus noise, float32."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *spec.input_shape)).astype(np.float32)
    w = np.random.default_rng(99).standard_normal((int(np.prod(spec.input_shape)), spec.n_outputs)).astype(np.float32) / 10
    y = x.reshape(n, -1) @ w + 0.5 * rng.standard_normal((n, spec.n_outputs)).astype(np.float32)
    return x, y


def _peak(fn, *args, **kw):
    """``fn(*args, **kw)`` and the peak of memory traced above what was allocated when it started, in bytes."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        out = fn(*args, **kw)
        return out, tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def test_window_sse_takes_no_float64_copy_of_the_coefficients():
    """_window_sse (the hrf="auto" margin): per-window squared errors equal to the float64 computation (1e-5), with a
    peak below half the float32 coefficients (the float64 copy of them alone was twice their size)."""
    model = RidgeHRF(BP, hrf="lags")
    x_val, y_val = _windows(BP, 37, 1)
    p, n_out = N_CHANS * N_BANDS * N_FRAMES, BP.n_outputs
    rng = np.random.default_rng(3)
    fit = {"x_mean_": rng.standard_normal(p), "x_scale_": 1.0 + rng.random(p), "coef_": (rng.standard_normal((p, n_out)) / 10).astype(np.float32),
           "intercept_": rng.standard_normal(n_out).astype(np.float32)}
    sse, peak = _peak(model._window_sse, fit, "lags", x_val, y_val)
    fz = (x_val.reshape(len(x_val), -1).astype(np.float64) - fit["x_mean_"]) / fit["x_scale_"]
    ref, ref_peak = _peak(lambda: ((y_val - (fz @ fit["coef_"].astype(np.float64) + fit["intercept_"])) ** 2).sum(1))
    np.testing.assert_allclose(sse, ref, rtol=1e-5)
    bound = fit["coef_"].nbytes // 2
    assert ref_peak > bound  # the float64 way crosses the bound: the test can fail
    assert peak < bound, f"_window_sse peak {peak / 2**20:.1f} MiB >= {bound / 2**20:.1f} MiB"


def test_auto_keeps_only_the_best_basis_coefficients_while_fitting():
    """hrf="auto" (MSE rule, validation windows): when a basis is fitted and when the margin is computed, at most one
    earlier basis's coefficients are alive (the best so far); the choice and the margin are those of fitting every basis
    on its own and comparing (float32 predictions, 1e-5)."""
    spec = dataclasses.replace(BP, output_shape=(211,))
    x, y = _windows(spec, 90, 2)
    xv, yv = _windows(spec, 40, 4)
    alive: list = []
    seen: list[int] = []
    orig_fit, orig_margin = RidgeHRF._fit_basis, RidgeHRF._basis_margin

    def fit_basis(self, *a, **k):
        seen.append(sum(r() is not None for r in alive))
        out = orig_fit(self, *a, **k)
        alive.append(weakref.ref(out["coef_"]))
        return out

    def margin(self, *a, **k):
        seen.append(sum(r() is not None for r in alive))
        return orig_margin(self, *a, **k)

    mp = pytest.MonkeyPatch()
    mp.setattr(RidgeHRF, "_fit_basis", fit_basis)
    mp.setattr(RidgeHRF, "_basis_margin", margin)
    try:
        auto = RidgeHRF(spec).fit(x, y, xv, yv)
    finally:
        mp.undo()
    assert len(seen) == 4 and max(seen) <= 1, seen  # (all three were alive at the margin before)
    m = auto.hrf_margin_
    assert auto.hrf_ == m["best"] == min(auto.hrf_scores_, key=auto.hrf_scores_.get)
    one = {h: RidgeHRF(spec, hrf=h).fit(x, y, xv, yv) for h in (m["best"], m["runner_up"])}
    np.testing.assert_array_equal(auto.coef_, one[m["best"]].coef_)
    d = (((yv - one[m["runner_up"]].predict(xv)) ** 2).sum(1) - ((yv - one[m["best"]].predict(xv)) ** 2).sum(1)) / yv.shape[1]
    assert m["gain"] == pytest.approx(d.mean(), rel=1e-5)


def _batches(x: np.ndarray, y: np.ndarray, bs: int = 13) -> list:
    return [(torch.from_numpy(x[i : i + bs]), torch.from_numpy(y[i : i + bs]), None) for i in range(0, len(x), bs)]


@pytest.mark.parametrize("form", ["factored", "dense"])
@pytest.mark.parametrize("spec", [BP, TAN], ids=["bandpower", "tangent"])
def test_linear_refit_folds_the_coefficients_without_float64_copies(spec, form):
    """eeg2fmri_net(linear_refit=True): from the refitted ridges to the path's buffers (folding the standardisation in,
    mixing the tangent ridge in) the peak stays below the float32 buffers it produces plus one float64 block of outputs
    (two float64 copies of the coefficients were four times their float32 size); the buffers equal the float64 folding
    of the refitted ridges to float32 rounding (1e-5). The band-power ridge in both forms: factored (the smaller one
    here, FIR lags of 140 features > 85 windows: ridge_hrf's factored="auto") and one matrix (factored=False)."""
    x_tr, y_tr = _windows(spec, 60, 1)
    x_va, y_va = _windows(spec, 25, 2)
    x_te, _ = _windows(spec, 9, 3)
    state: dict = {"ridges": []}
    orig_refit, orig_set = RidgeHRF.refit_chosen, EEG2fMRINet._set_ridge

    def refit_chosen(self, *a, **k):
        out = orig_refit(self, *a, **k)
        state["ridges"].append(self)
        tracemalloc.reset_peak()
        state["base"] = tracemalloc.get_traced_memory()[0]
        return out

    def set_ridge(self, *a, **k):
        if "base" in state:  # the refit's folding, not the first fit's
            state["peak"] = tracemalloc.get_traced_memory()[1] - state.pop("base")
        return orig_set(self, *a, **k)

    model = EEG2fMRINet(spec, seed=0, n_members=2, linear_refit=True, output_rank=None, tangent_rule="best", tangent_hrf="canonical")
    mp = pytest.MonkeyPatch()
    if form == "dense":  # the flagship's power ridge takes ridge_hrf's default form
        mp.setitem(RidgeHRF.__init__.__kwdefaults__, "factored", False)
    mp.setattr(RidgeHRF, "refit_chosen", refit_chosen)
    mp.setattr(EEG2fMRINet, "_set_ridge", set_ridge)
    tracemalloc.start()
    try:
        info = model.after_fit(_batches(x_va, y_va), train_batches=_batches(x_tr, y_tr))
    finally:
        tracemalloc.stop()
        mp.undo()
    assert info["linear_refit_windows"] == 85
    tangent = spec.input_kind == "tangent"
    assert len(state["ridges"]) == (2 if tangent else 1) and (not tangent or info["tangent_weight"] > 0)
    ridge = state["ridges"][0]
    v = info["tangent_weight"] if tangent else 0.0
    assert (getattr(ridge, "components_", None) is not None) == (form == "factored") == ("ridge_proj" in model._buffers)
    # the float64 folding: coefficients / scale, intercept - (mean / scale) @ coefficients (factored: the projection
    # components.T / scale, the coefficients as they are, intercept - (components @ (mean / scale)) @ coefficients)
    centre = ridge.x_mean_ / ridge.x_scale_
    if form == "factored":
        comp = ridge.components_.astype(np.float64)
        c64 = ridge.coef_.astype(np.float64)
        b64 = ridge.intercept_.astype(np.float64) - (comp @ centre) @ c64
        np.testing.assert_allclose(model.ridge_proj.numpy(), comp.T / ridge.x_scale_[:, None], rtol=1e-5, atol=1e-6 * np.abs(comp).max() / ridge.x_scale_.min())
    else:
        c64 = ridge.coef_.astype(np.float64) / ridge.x_scale_[:, None]
        b64 = ridge.intercept_.astype(np.float64) - centre @ ridge.coef_.astype(np.float64)
    out_bytes = model.ridge_coef.numel() * 4 + (model.ridge_proj.numel() * 4 if form == "factored" else 0)
    block = ridge.coef_.shape[0] * 8192 * 8
    if tangent:
        tr = state["ridges"][1]
        t64 = tr.coef_.astype(np.float64)
        tb64 = tr.intercept_.astype(np.float64) - ((tr.components_.astype(np.float64) @ (tr.x_mean_ / tr.x_scale_)) @ t64)
        np.testing.assert_allclose(model.ridge_tan_coef.numpy(), v * t64, rtol=1e-5, atol=1e-6 * np.abs(v * t64).max())
        b64 = (1 - v) * b64 + v * tb64
        out_bytes += model.ridge_tan_coef.numel() * 4
        block += tr.coef_.shape[0] * 8192 * 8
        float64_way = 2 * (c64.nbytes + t64.nbytes)
    else:
        float64_way = 2 * c64.nbytes
    np.testing.assert_allclose(model.ridge_coef.numpy(), (1 - v) * c64, rtol=1e-5, atol=1e-6 * np.abs(c64).max())
    np.testing.assert_allclose(model.ridge_bias.numpy(), b64, rtol=1e-5, atol=1e-6 * np.abs(b64).max())
    bound = out_bytes + block + (4 << 20)
    assert float64_way > bound  # the float64 folding crosses the bound: the test can fail
    assert state["peak"] < bound, f"folding peak {state['peak'] / 2**20:.1f} MiB >= {bound / 2**20:.1f} MiB"
    model.eval()
    with torch.no_grad():
        assert torch.isfinite(model(torch.from_numpy(x_te))).all()
