"""ridge_hrf (the reference encoding model) checked against scikit-learn's Ridge on the same features."""

from __future__ import annotations

import numpy as np
import pytest

from eeg2fmri.models.base import DataSpec
from eeg2fmri.models.ridge_hrf import RidgeHRF
from eeg2fmri.utils.validation import Eeg2fmriInputError

# a different size on every axis: 5 channels, 3 bands, 7 frames, 11 outputs
SPEC = DataSpec(input_kind="bandpower", input_shape=(5, 3, 7), output_shape=(11,), sfreq=100.0, tr=2.0, ch_names=tuple("abcde"), frame_rate=0.5)


def _data(n: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 5, 3, 7))
    w = rng.standard_normal((5 * 3 * 7, 11)) * np.linspace(0.0, 0.3, 11)  # outputs from noise-only to strong
    y = x.reshape(n, -1) @ w + rng.standard_normal((n, 11))
    return x, y


def _standardised(model: RidgeHRF, x):
    return (x.reshape(len(x), -1) - model.x_mean_) / model.x_scale_


@pytest.mark.parametrize("per_target", [True, False])
def test_validation_choice_and_coefficients_equal_sklearn(per_target):
    """Per output: alpha_ = argmin of sklearn Ridge's validation MSE, coef_ == sklearn Ridge(alpha * n_features)."""
    from sklearn.linear_model import Ridge

    x, y = _data(130, 0)
    xv, yv = _data(47, 1)
    alphas = (0.01, 0.3, 3.0, 30.0, 300.0)
    m = RidgeHRF(SPEC, alphas=alphas, hrf="lags", alpha_per_target=per_target).fit(x, y, xv, yv)
    f, fv = _standardised(m, x), _standardised(m, xv)
    p = f.shape[1]
    fits = [Ridge(alpha=a * p).fit(f, y) for a in alphas]
    mse = np.stack([((yv - r.predict(fv)) ** 2).mean(0) for r in fits])  # (n_alphas, n_outputs)
    best = mse.argmin(0) if per_target else np.full(11, mse.mean(1).argmin())
    np.testing.assert_allclose(np.atleast_1d(m.alpha_) * np.ones(11), np.asarray(alphas)[best])
    ref = np.stack([fits[b].coef_[j] for j, b in enumerate(best)], axis=1)
    np.testing.assert_allclose(m.coef_, ref, rtol=2e-4, atol=1e-6)
    np.testing.assert_allclose(m.predict(xv), np.stack([fits[b].predict(fv)[:, j] for j, b in enumerate(best)], 1), rtol=1e-3, atol=1e-5)
    if per_target:  # the outputs really chose different penalties (else the case tests nothing)
        assert len(np.unique(m.alpha_)) > 1


def test_auto_keeps_the_basis_with_the_lowest_validation_error():
    x, y = _data(90, 2)
    xv, yv = _data(40, 4)
    auto = RidgeHRF(SPEC).fit(x, y, xv, yv)
    assert auto.hrf == "auto" and set(auto.hrf_scores_) == {"canonical", "basis", "lags"}
    assert auto.hrf_ == min(auto.hrf_scores_, key=auto.hrf_scores_.get)
    n_feat = {"canonical": 5 * 3, "basis": 5 * 3 * 3, "lags": 5 * 3 * 7}
    for h in ("canonical", "basis", "lags"):
        one = RidgeHRF(SPEC, hrf=h).fit(x, y, xv, yv)
        assert one.hrf_ == h and one.coef_.shape == (n_feat[h], 11)
        assert one.hrf_scores_[h] == pytest.approx(auto.hrf_scores_[h])
        if h == auto.hrf_:
            np.testing.assert_array_equal(one.predict(xv), auto.predict(xv))
    # the lag weights here are white noise over lags: only the full FIR can fit them
    assert auto.hrf_ == "lags"
    # the margin over the runner-up in jackknife SEs of per-window errors (user test 18: a 0.0002 whole-mask margin decided)
    m = auto.hrf_margin_
    second = sorted(auto.hrf_scores_, key=auto.hrf_scores_.get)[1]
    assert m["best"] == "lags" and m["runner_up"] == second
    fits = {h: RidgeHRF(SPEC, hrf=h).fit(x, y, xv, yv) for h in ("lags", second)}
    d = (((yv - fits[second].predict(xv)) ** 2).sum(1) - ((yv - fits["lags"].predict(xv)) ** 2).sum(1)) / yv.shape[1]
    assert m["gain"] == pytest.approx(d.mean(), rel=1e-3)
    blocks = np.array_split(d, 10)
    loo = np.array([np.concatenate([b for j, b in enumerate(blocks) if j != i]).mean() for i in range(10)])
    assert m["se"] == pytest.approx(np.sqrt(0.9 * ((loo - loo.mean()) ** 2).sum()), rel=1e-3)
    assert m["within_noise"] == (m["gain"] < 2 * m["se"])
    noise = RidgeHRF(SPEC).fit(x, rng_noise := np.random.default_rng(9).standard_normal(y.shape), xv, rng_noise[: len(xv)])
    assert noise.hrf_margin_["within_noise"]  # targets of pure noise: no basis is better
    assert RidgeHRF(SPEC).fit(x, y).hrf_margin_ is None  # (GCV without validation windows: no margin)


def test_hrf_select_r_scores_group_means_by_correlation():
    """hrf_select="r": each basis scored by the mean validation correlation of group-mean series over the groups with the
    most validation signal (by hand here), and the basis with the highest one kept."""
    x, y = _data(90, 2)
    xv, yv = _data(40, 4)
    groups = np.arange(11) % 4  # 4 groups of outputs
    m = RidgeHRF(SPEC, hrf_select="r").fit(x, y, xv, yv, output_groups=groups)
    ref = {}
    preds = {h: RidgeHRF(SPEC, hrf=h).fit(x, y, xv, yv).predict(xv) for h in ("canonical", "basis", "lags")}
    yg = np.stack([yv[:, groups == k].mean(1) for k in range(4)], 1)
    for h, p in preds.items():
        pg = np.stack([p[:, groups == k].mean(1) for k in range(4)], 1)
        ref[h] = np.mean([np.corrcoef(yg[:, k], pg[:, k])[0, 1] for k in range(4)])  # (4 groups < 10: all kept)
    assert m.hrf_r_ == pytest.approx(ref, abs=1e-4)  # (predict rounds to float32)
    assert m.hrf_ == max(ref, key=ref.get)
    assert RidgeHRF(SPEC, hrf_select="r").get_params()["hrf_select"] == "r" and RidgeHRF(SPEC).get_params()["hrf_select"] == "mse"
    with pytest.raises(Eeg2fmriInputError, match=r"ridge_hrf: expected hrf_select one of \['mse', 'r'\], got 'R2'"):
        RidgeHRF(SPEC, hrf_select="R2")
    with pytest.raises(Eeg2fmriInputError, match=r"output_groups has 3 entries for 11 outputs"):
        RidgeHRF(SPEC, hrf_select="r").fit(x, y, xv, yv, output_groups=np.arange(3))


def test_canonical_signal_picks_a_small_basis():
    """Data made with the canonical HRF and few windows: the 1- or 3-function basis wins over 7 free lags."""
    from eeg2fmri.simulate.hrf import double_gamma_hrf

    rng = np.random.default_rng(5)
    h = double_gamma_hrf(2.0, length=14.0)[::-1]
    w = rng.standard_normal((15, 11))

    def make(n):
        x = rng.standard_normal((n, 5, 3, 7))
        return x, (x * h).sum(-1).reshape(n, -1) @ w * 0.5 + rng.standard_normal((n, 11))

    (x, y), (xv, yv) = make(60), make(40)
    m = RidgeHRF(SPEC).fit(x, y, xv, yv)
    assert m.hrf_ in ("canonical", "basis") and m.hrf_scores_[m.hrf_] < m.hrf_scores_["lags"]


def test_informed_basis_is_nilearns_spm_basis():
    """informed_basis == nilearn's spm_hrf / time / dispersion derivatives, averaged over frames."""
    from nilearn.glm.first_level.hemodynamic_models import spm_hrf, spm_time_derivative

    from eeg2fmri.models.ridge_hrf import informed_basis

    b = informed_basis(2.0, 9, oversampling=20)
    assert b.shape == (3, 9)
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0)
    ref = spm_hrf(2.0, oversampling=20, time_length=18.0).reshape(9, 20).mean(1)
    np.testing.assert_allclose(b[0], ref / np.linalg.norm(ref), rtol=1e-10)
    ref_t = spm_time_derivative(2.0, oversampling=20, time_length=18.0).reshape(9, 20).mean(1)
    np.testing.assert_allclose(b[1], ref_t / np.linalg.norm(ref_t), rtol=1e-10)
    assert 1 <= int(np.argmax(b[0])) <= 3  # the canonical peak lies at 4-6 s


def test_per_target_and_single_alpha_shapes():
    x, y = _data(90, 2)
    per = RidgeHRF(SPEC, hrf="lags", alpha_per_target=True).fit(x, y)
    assert per.coef_.shape == (5 * 3 * 7, 11) and np.shape(per.alpha_) == (11,)
    one = RidgeHRF(SPEC, hrf="canonical").fit(x, y)
    assert one.coef_.shape == (5 * 3, 11) and isinstance(one.alpha_, float)


def test_state_roundtrip_keeps_per_target_alphas():
    x, y = _data(90, 3)
    m = RidgeHRF(SPEC, alpha_per_target=True).fit(x, y)
    m2 = RidgeHRF(SPEC, alpha_per_target=True).load_state_dict(m.state_dict())
    assert m2.hrf_ == m.hrf_
    np.testing.assert_array_equal(m2.alpha_, m.alpha_)
    np.testing.assert_array_equal(m2.predict(x), m.predict(x))


def test_bad_input_errors():
    from eeg2fmri.utils.validation import Eeg2fmriInputError

    with pytest.raises(Eeg2fmriInputError, match=r"unknown hrf 'fir'; choose one of 'auto', 'canonical', 'basis', 'lags'"):
        RidgeHRF(SPEC, hrf="fir")
    m = RidgeHRF(SPEC)
    with pytest.raises(Eeg2fmriInputError, match=r"ridge_hrf: expected windows of shape \(n, 5, 3, 7\), got \(4, 5, 3, 6\)"):
        m.fit(np.zeros((4, 5, 3, 6)), np.zeros((4, 11)))
    with pytest.raises(Eeg2fmriInputError, match=r"ridge_hrf: call fit\(\) before predict\(\)"):
        m.predict(np.zeros((4, 5, 3, 7)))


def test_shared_penalty_validation_error_equals_the_predictions_error():
    """The closed form used to choose one penalty for all outputs equals the error of the explicit predictions."""
    from eeg2fmri.models.ridge_hrf import _shared_alpha_val_error

    rng = np.random.default_rng(3)
    proj, uty, y = rng.standard_normal((23, 11)), rng.standard_normal((11, 37)), rng.standard_normal((23, 37))
    s = rng.random(11) + 0.05
    pens = np.logspace(-3, 4, 9)
    brute = [((y - proj @ ((s / (s**2 + a))[:, None] * uty)) ** 2).mean() for a in pens]
    np.testing.assert_allclose(_shared_alpha_val_error(proj, uty, y, s, pens), brute, rtol=1e-10, atol=1e-12)


def test_thin_svd_of_wide_matrices_equals_lapacks():
    """Wide feature matrices (p >= 2 n) are decomposed through their Gram matrix: same singular values and the same
    ridge solutions as numpy's SVD, numerically null directions dropped (a centred matrix has rank n - 1)."""
    from eeg2fmri.models.ridge_hrf import _thin_svd

    rng = np.random.default_rng(3)
    a = rng.standard_normal((37, 211)) * rng.uniform(0.1, 3.0, 211)
    a -= a.mean(0)
    for got, want in zip(_thin_svd(a), np.linalg.svd(a, full_matrices=False)):  # without gram=True: LAPACK's SVD
        np.testing.assert_array_equal(got, want)
    u, s, vt = _thin_svd(a, gram=True)
    u0, s0, vt0 = np.linalg.svd(a, full_matrices=False)
    assert len(s) == 37 and s0[-1] < 1e-10 * s0[0]  # the centred matrix's null direction: at the floor, 1e-13 x the top squared
    np.testing.assert_allclose(s[:36], s0[:36], rtol=1e-10)
    np.testing.assert_allclose(s[36], np.sqrt(1e-13) * s0[0], rtol=1e-10)
    np.testing.assert_allclose(u @ np.diag(s) @ vt, a, atol=1e-10)
    np.testing.assert_allclose(vt[:36] @ vt[:36].T, np.eye(36), atol=1e-10)
    y = rng.standard_normal((37, 4))
    for alpha in (1e-2, 10.0, 1e4):
        def ridge(u, s, vt, alpha=alpha):
            return vt.T @ ((s / (s**2 + alpha))[:, None] * (u.T @ y))

        np.testing.assert_allclose(ridge(u, s, vt), ridge(u0, s0, vt0), rtol=1e-8, atol=1e-12)
    tall = rng.standard_normal((50, 30))  # p < 2 n: LAPACK's SVD itself
    for got, want in zip(_thin_svd(tall, gram=True), np.linalg.svd(tall, full_matrices=False)):
        np.testing.assert_array_equal(got, want)
    # a spectrum over nine decades: at penalties of the features' scale (the flagship's grid starts at 0.01 x n_features)
    # the ridge solutions still agree
    q1, _ = np.linalg.qr(rng.standard_normal((211, 37)))
    q2, _ = np.linalg.qr(rng.standard_normal((37, 37)))
    bad = (q2 * np.logspace(0, -9, 37)) @ q1.T * 50.0
    u, s, vt = _thin_svd(bad, gram=True)
    u0, s0, vt0 = np.linalg.svd(bad, full_matrices=False)
    for alpha in (0.01 * 211, 211.0):
        want = ridge(u0, s0, vt0, alpha)
        np.testing.assert_allclose(ridge(u, s, vt, alpha), want, rtol=0, atol=1e-9 * np.abs(want).max())
    zero = _thin_svd(np.zeros((5, 12)), gram=True)  # nothing to fit
    assert [z.shape for z in zero] == [(5, 0), (0,), (0, 12)]


@pytest.mark.parametrize("per_target", [True, False])
def test_wide_features_and_factored_coefficients_equal_sklearn(per_target):
    """More features than windows (the Gram path) and factored=True give sklearn Ridge's solution and predictions."""
    from sklearn.linear_model import Ridge

    x, y = _data(41, 4)
    xv, yv = _data(23, 5)
    alphas = (0.01, 0.3, 3.0, 30.0)
    dense = RidgeHRF(SPEC, alphas=alphas, hrf="lags", alpha_per_target=per_target).fit(x, y, xv, yv)
    fact = RidgeHRF(SPEC, alphas=alphas, hrf="lags", alpha_per_target=per_target, factored=True).fit(x, y, xv, yv)
    np.testing.assert_allclose(dense.x_mean_, x.reshape(len(x), -1).mean(0), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dense.x_scale_, x.reshape(len(x), -1).std(0), rtol=1e-12)  # numpy's std, computed in place here
    f = _standardised(dense, x)
    p = f.shape[1]
    best = np.searchsorted(alphas, np.atleast_1d(dense.alpha_) * np.ones(11))
    ref = np.stack([Ridge(alpha=alphas[b] * p).fit(f, y[:, j]).coef_ for j, b in enumerate(best)], axis=1)
    np.testing.assert_allclose(dense.coef_, ref, rtol=1e-4, atol=1e-6)
    assert fact.coef_.shape == (41, 11) and fact.components_.shape == (41, p)  # one component per training window
    np.testing.assert_allclose(fact.components_.T @ fact.coef_, dense.coef_, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(fact.predict(xv), dense.predict(xv), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(np.atleast_1d(fact.alpha_), np.atleast_1d(dense.alpha_))
    again = RidgeHRF(SPEC, alphas=alphas, hrf="lags", alpha_per_target=per_target, factored=True).load_state_dict(fact.state_dict())
    np.testing.assert_array_equal(again.predict(xv), fact.predict(xv))
    assert "components" not in dense.state_dict() and RidgeHRF(SPEC).load_state_dict(dense.state_dict()).components_ is None


def test_factored_auto_takes_the_smaller_form_with_the_same_predictions():
    """factored="auto" (the default): the factored form where n_components * (n_features + n_outputs) < n_features *
    n_outputs (lag features of many outputs), one matrix otherwise; predictions equal the dense fit's either way."""
    rng = np.random.default_rng(3)
    spec = DataSpec(input_kind="bandpower", input_shape=(5, 3, 7), output_shape=(300,), sfreq=100.0, tr=2.0, ch_names=tuple("abcde"),
                    frame_rate=0.5)
    x, xv = rng.standard_normal((37, 5, 3, 7)), rng.standard_normal((19, 5, 3, 7))
    w = rng.standard_normal((105, 300)) * 0.1
    y, yv = x.reshape(37, -1) @ w + rng.standard_normal((37, 300)), xv.reshape(19, -1) @ w + rng.standard_normal((19, 300))
    auto = RidgeHRF(spec, hrf="lags").fit(x, y, xv, yv)
    dense = RidgeHRF(spec, hrf="lags", factored=False).fit(x, y, xv, yv)
    assert RidgeHRF(spec).get_params()["factored"] == "auto"
    assert auto.components_.shape == (37, 105) and auto.coef_.shape == (37, 300)  # 37 x (105 + 300) < 105 x 300
    assert dense.coef_.shape == (105, 300) and getattr(dense, "components_", None) is None
    np.testing.assert_array_equal(np.atleast_1d(auto.alpha_), np.atleast_1d(dense.alpha_))
    np.testing.assert_allclose(auto.predict(xv), dense.predict(xv), rtol=1e-4, atol=1e-5)
    few = RidgeHRF(SPEC, hrf="lags").fit(*_data(37, 0), *_data(19, 1))  # 11 outputs: 37 x (105 + 11) > 105 x 11
    assert few.coef_.shape == (105, 11) and getattr(few, "components_", None) is None
    with pytest.raises(Eeg2fmriInputError, match=r"ridge_hrf: expected factored as true, false or \"auto\", got 'yes'"):
        RidgeHRF(SPEC, factored="yes")


@pytest.mark.parametrize("factored", [False, True])
def test_coefficients_in_output_blocks_equal_one_product(monkeypatch, factored):
    """fit computes the coefficients a few outputs at a time (memory): the same bits as one product for all outputs,
    with per-output penalties that differ (several groups of columns)."""
    from eeg2fmri.models import ridge_hrf

    x, y = _data(130, 0)
    xv, yv = _data(47, 1)
    kw = dict(alphas=(0.01, 0.3, 3.0, 30.0, 300.0), hrf="lags", alpha_per_target=True, factored=factored)
    whole = RidgeHRF(SPEC, **kw).fit(x, y, xv, yv)
    monkeypatch.setattr(ridge_hrf, "_COEF_BLOCK_ELEMS", 2 * whole.coef_.shape[0])  # two outputs per block
    blocked = RidgeHRF(SPEC, **kw).fit(x, y, xv, yv)
    assert len(np.unique(whole.alpha_)) > 1
    np.testing.assert_array_equal(blocked.coef_, whole.coef_)
    np.testing.assert_array_equal(blocked.predict(xv), whole.predict(xv))


@pytest.mark.parametrize("kw", [dict(hrf="auto"), dict(hrf="lags", alpha_per_target=True), dict(hrf="basis", factored=True)])
@pytest.mark.parametrize("validation", [True, False])
@pytest.mark.parametrize("keep", [True, False])
def test_targets_in_output_blocks_equal_one_pass(monkeypatch, kw, validation, keep):
    """fit takes the targets a block of outputs at a time (memory at whole-brain voxel counts): the same penalties,
    bases and coefficients as one pass (scores to rounding), with the projections kept or recomputed, validation or GCV."""
    from eeg2fmri.models import ridge_hrf

    x, y = _data(130, 0)
    xv, yv = _data(47, 1)
    kw = dict(alphas=(0.01, 0.3, 3.0, 30.0, 300.0), **kw)
    args = (x, y, xv, yv) if validation else (x, y)
    whole = RidgeHRF(SPEC, **kw).fit(*args)
    monkeypatch.setattr(ridge_hrf, "_Y_BLOCK_ELEMS", 3 * len(x) if keep else 1)  # three outputs per block, or one
    y0, yv0 = y.copy(), yv.copy()
    blocked = RidgeHRF(SPEC, **kw).fit(*args)
    np.testing.assert_array_equal(y, y0)  # float64 targets: centred in a copy, never in the caller's array
    np.testing.assert_array_equal(yv, yv0)
    assert blocked.hrf_ == whole.hrf_  # validation sums over outputs accumulate per block: equal to rounding
    assert blocked.hrf_scores_ == pytest.approx(whole.hrf_scores_, rel=1e-12) and blocked.val_scores_ == pytest.approx(whole.val_scores_, rel=1e-12)
    np.testing.assert_array_equal(np.atleast_1d(blocked.alpha_), np.atleast_1d(whole.alpha_))
    np.testing.assert_array_equal(blocked.coef_, whole.coef_)
    np.testing.assert_array_equal(blocked.intercept_, whole.intercept_)


@pytest.mark.parametrize("per_target", [True, False])
def test_refit_uses_the_validation_choices_on_every_window(per_target):
    """refit=True: basis and penalties as chosen on the validation windows without refit, coefficients those of
    sklearn's Ridge with those penalties on the training and validation windows together (standardised on both)."""
    from sklearn.linear_model import Ridge

    x, y = _data(130, 0)
    xv, yv = _data(47, 1)
    alphas = (0.01, 0.3, 3.0, 30.0, 300.0)
    kw = dict(alphas=alphas, hrf="auto", alpha_per_target=per_target)
    plain = RidgeHRF(SPEC, **kw).fit(x, y, xv, yv)
    m = RidgeHRF(SPEC, refit=True, **kw).fit(x, y, xv, yv)
    assert m.hrf_ == plain.hrf_ and np.array_equal(np.atleast_1d(m.alpha_), np.atleast_1d(plain.alpha_))
    assert m.hrf_scores_ == plain.hrf_scores_ and (plain.n_fit_windows_, m.n_fit_windows_) == (130, 177)
    both_x, both_y = np.concatenate([x, xv]), np.concatenate([y, yv])
    f = _standardised(m, both_x) if m.hrf_ == "lags" else None
    if f is not None:  # the lags basis: features are the windows themselves, so sklearn sees the same matrix
        p = f.shape[1]
        alpha = np.atleast_1d(m.alpha_) * np.ones(11) * p
        ref = Ridge(alpha=alpha).fit(f, both_y)
        np.testing.assert_allclose(m.coef_, ref.coef_.T, rtol=2e-4, atol=1e-6)
    # whatever the basis: equal to a plain fit on both window sets with only the chosen penalty (GCV has one choice)
    if not per_target:
        one = RidgeHRF(SPEC, alphas=(float(m.alpha_),), hrf=m.hrf_).fit(both_x, both_y)
        np.testing.assert_allclose(m.predict(xv), one.predict(xv), rtol=1e-5, atol=1e-6)
    assert not np.allclose(m.predict(xv), plain.predict(xv))
    assert m.get_params()["refit"] is True and plain.get_params()["refit"] is False


@pytest.mark.parametrize("per_target", [True, False])
def test_gcv_without_validation_equals_its_definition(per_target):
    """No validation windows: the penalty by generalised cross-validation, GCV(a) = mean((y - y_hat)^2) /
    (1 - tr(H)/n)^2 with H the hat matrix of the fit *including its intercept* (tr = sum s^2/(s^2 + a) + 1),
    y_hat from sklearn's Ridge and tr(H) from the explicit hat matrix."""
    from sklearn.linear_model import Ridge

    x, y = _data(60, 0)  # few windows: the intercept's degree of freedom matters (n = 60, 105 features)
    alphas = (0.01, 0.3, 3.0, 30.0, 300.0)
    m = RidgeHRF(SPEC, alphas=alphas, hrf="lags", alpha_per_target=per_target).fit(x, y)
    f = _standardised(m, x)
    n, p = f.shape
    scores = []
    for a in alphas:
        fit = Ridge(alpha=a * p).fit(f, y)
        fc = f - f.mean(0)
        hat = fc @ np.linalg.solve(fc.T @ fc + a * p * np.eye(p), fc.T) + np.ones((n, n)) / n
        gcv = ((y - fit.predict(f)) ** 2).mean(0) / (1 - np.trace(hat) / n) ** 2
        scores.append(gcv)
    scores = np.array(scores)  # (n_alphas, n_outputs)
    np.testing.assert_allclose(m.val_scores_, scores.mean(1), rtol=1e-6)
    expected = alphas[int(np.argmin(scores.mean(1)))] if not per_target else np.array(alphas)[np.argmin(scores, axis=0)]
    np.testing.assert_array_equal(np.atleast_1d(m.alpha_), np.atleast_1d(expected))


def test_refit_chosen_keeps_the_basis_and_penalty_and_needs_a_fit_first():
    """RidgeHRF.refit_chosen(x, y): the basis and penalty fit() chose, coefficients from the windows given -- what
    refit=True does with the training and validation windows; before fit() it says what to call first."""
    from eeg2fmri.utils.validation import Eeg2fmriInputError

    spec = DataSpec("bandpower", (3, 4, 6), (5,), sfreq=100.0, tr=2.0, frame_rate=0.5)
    rng = np.random.default_rng(0)
    x, xv = rng.standard_normal((50, 3, 4, 6)), rng.standard_normal((20, 3, 4, 6))
    w = rng.standard_normal((72, 5))
    y, yv = x.reshape(50, -1) @ w + rng.standard_normal((50, 5)), xv.reshape(20, -1) @ w + rng.standard_normal((20, 5))
    with pytest.raises(Eeg2fmriInputError, match=r"ridge_hrf: call fit\(\) before refit_chosen\(\)"):
        RidgeHRF(spec).refit_chosen(x, y)
    m = RidgeHRF(spec, hrf="lags").fit(x, y, xv, yv)
    alpha, hrf = m.alpha_, m.hrf_
    both = RidgeHRF(spec, hrf="lags", refit=True).fit(x, y, xv, yv)
    m.refit_chosen(np.concatenate([x, xv]), np.concatenate([y, yv]))
    assert (m.alpha_, m.hrf_, m.n_fit_windows_) == (alpha, hrf, 70)
    np.testing.assert_allclose(m.predict(xv), both.predict(xv), rtol=1e-6)
    # the ridge solution itself (scikit-learn's Ridge on the same standardised lags, penalty alpha * n_features)
    from sklearn.linear_model import Ridge

    f = np.concatenate([x, xv]).reshape(70, -1)
    mu, sd = f.mean(0), f.std(0)
    ref = Ridge(alpha=alpha * f.shape[1]).fit((f - mu) / sd, np.concatenate([y, yv]))
    np.testing.assert_allclose(m.predict(xv), ref.predict((xv.reshape(20, -1) - mu) / sd), rtol=1e-4, atol=1e-5)


def test_fit_model_says_when_ridge_hrf_was_refitted_on_the_validation_windows(tiny_prepared):
    """User test 10: fit_model's info read n_train/n_val alike with refit=True and without."""
    from eeg2fmri.datasets.targets import make_split
    from eeg2fmri.training import fit_model

    sp = make_split(tiny_prepared, "within")
    plain = fit_model(tiny_prepared, sp, "ridge_hrf", {"hrf": "canonical"})
    again = fit_model(tiny_prepared, sp, "ridge_hrf", {"hrf": "canonical", "refit": True})
    assert "n_fit_windows" not in plain.info and again.info["n_fit_windows"] == again.info["n_train"] + again.info["n_val"]


def test_guarded_penalties_per_output_match_a_jackknife_computed_with_sklearn():
    """alpha_per_target="guarded": an output keeps its own best penalty only where that lowers its validation squared
    error by more than GUARD_SE jackknife SEs (10 contiguous blocks) against the common penalty; recomputed here from
    scikit-learn Ridge fits on the same standardised features."""
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(5)
    x, xv = rng.standard_normal((130, 5, 3, 7)), rng.standard_normal((60, 5, 3, 7))
    w = np.zeros((5 * 3 * 7, 11))
    w[:4, :3] = rng.standard_normal((4, 3)) * 2.0  # three outputs driven by a few features, strongly; eight noise outputs
    y = x.reshape(130, -1) @ w + rng.standard_normal((130, 11))
    yv = xv.reshape(60, -1) @ w + rng.standard_normal((60, 11))
    alphas = (0.01, 0.3, 3.0, 30.0, 300.0)
    m = RidgeHRF(SPEC, alphas=alphas, hrf="lags", alpha_per_target="guarded").fit(x, y, xv, yv)
    f, fv = _standardised(m, x), _standardised(m, xv)
    p = f.shape[1]
    sq = np.stack([(yv - Ridge(alpha=a * p).fit(f, y).predict(fv)) ** 2 for a in alphas])  # (n_alphas, n_val, n_outputs)
    common, own = sq.mean((1, 2)).argmin(), sq.mean(1).argmin(0)
    want = np.full(11, common)
    edges = np.linspace(0, 60, 11).astype(int)
    for j in range(11):
        d = sq[common, :, j] - sq[own[j], :, j]
        loo = np.array([np.delete(d, np.s_[edges[b]:edges[b + 1]]).mean() for b in range(10)])
        se = np.sqrt(9 / 10 * ((loo - loo.mean()) ** 2).sum())
        if d.mean() > RidgeHRF.GUARD_SE * se:
            want[j] = own[j]
    np.testing.assert_allclose(m.alpha_, np.asarray(alphas)[want])
    assert (want != common).any()  # some outputs kept their own penalty ...
    assert m.own_alpha_fraction_ == pytest.approx(np.mean(want != common))
    assert (own != common).sum() > (want != common).sum()  # ... and the guard refused some (else the case tests nothing)
    np.testing.assert_allclose(m.predict(xv), np.stack([Ridge(alpha=alphas[b] * p).fit(f, y).predict(fv)[:, j] for j, b in enumerate(want)], 1),
                               rtol=1e-3, atol=1e-5)
    # saved and loaded; without validation windows one penalty (GCV); anything else refused
    again = RidgeHRF(SPEC, alphas=alphas, hrf="lags", alpha_per_target="guarded").load_state_dict(m.state_dict())
    np.testing.assert_allclose(again.predict(xv), m.predict(xv), rtol=1e-6)
    gcv = RidgeHRF(SPEC, alphas=alphas, hrf="lags", alpha_per_target="guarded").fit(x, y)
    assert len(np.unique(gcv.alpha_)) == 1 and gcv.own_alpha_fraction_ == 0.0
    with pytest.raises(Exception, match=r"ridge_hrf: expected alpha_per_target as true, false, \"guarded\" or \"auto\", got 'yes'"):
        RidgeHRF(SPEC, alpha_per_target="yes")


def test_a_band_power_fit_reads_the_band_power_block_of_tangent_windows():
    """A ridge_hrf fitted on band-power windows predicts tangent windows of the same EEG from their band-power block (the
    first n_bands entries of axis 1), as a tangent-fitted one does (user test 16: refused as the reference of a tangent
    evaluation); other shapes are still refused."""
    x, y = _data(60, 3)
    m = RidgeHRF(SPEC, hrf="lags").fit(x, y)
    rng = np.random.default_rng(0)
    tangent = np.concatenate([x, rng.standard_normal((60, 5, 3 * 5, 7))], axis=2)  # (n, C, F * (1 + C), T)
    np.testing.assert_array_equal(m.predict(tangent), m.predict(x))
    with pytest.raises(Exception, match=r"ridge_hrf: expected windows of shape \(n, 5, 3, 7\), got \(60, 5, 17, 7\)"):
        m.predict(tangent[:, :, :17])


def test_hrf_select_r_through_fit_model_and_the_train_line(tiny_prepared):
    """fit_model passes supervoxels of the mask to ridge_hrf(hrf_select="r"); train's line names the rule and its scores
    and reports no MSE margin for it (review: the line named the MSE ranking of another basis)."""
    from eeg2fmri.commands.train import choices_line
    from eeg2fmri.datasets.targets import make_split
    from eeg2fmri.training import fit_model
    from eeg2fmri.training.fit import supervoxels

    g = supervoxels(tiny_prepared)
    ijk = np.argwhere(tiny_prepared.mask)
    assert len(g) == len(ijk) and len(np.unique(g)) == len(np.unique(ijk // 3, axis=0))
    sp = make_split(tiny_prepared, "within")
    res = fit_model(tiny_prepared, sp, "ridge_hrf", {"hrf_select": "r"})
    assert set(res.info["hrf_r"]) == {"canonical", "basis", "lags"} and res.info["hrf"] == max(res.info["hrf_r"], key=res.info["hrf_r"].get)
    assert "hrf_margin" not in res.info and res.model.hrf_margin_ is None
    assert f"HRF basis {res.info['hrf']} (validation r of supervoxel means where the signal is canonical" in choices_line(res.info)
