"""Conformal intervals per voxel: calibrated on validation windows, coverage measured on test windows, reported by evaluate."""

from __future__ import annotations

import json

import numpy as np
import pytest

from eeg2fmri.evaluation.uncertainty import conformal_halfwidths, interval_coverage
from eeg2fmri.utils.validation import Eeg2fmriInputError


def test_halfwidths_hand_computed():
    r = np.array([[1.0, -4.0], [-2.0, 1.0], [3.0, 2.0], [0.5, -3.0]])  # |r| sorted: [0.5, 1, 2, 3] and [1, 2, 3, 4]
    h = conformal_halfwidths(r, (0.5, 0.75, 0.95))
    # ceil((4 + 1) * 0.5) = 3rd, ceil(3.75) = 4th, ceil(4.75) = 5th > n: infinite
    np.testing.assert_allclose(h[:2], [[2.0, 3.0], [3.0, 4.0]])
    assert np.isinf(h[2]).all()
    cov = interval_coverage(np.array([[0.0, 0.0], [2.5, 0.0]]), np.zeros((2, 2)), h[:1])
    np.testing.assert_allclose(cov, [[0.5, 1.0]])


def test_exchangeable_residuals_reach_the_nominal_coverage():
    """On i.i.d. residuals (the assumption of conformal prediction) the coverage is the level within sampling error;
    calibrated on residuals 3x too small, the same check fails."""
    rng = np.random.default_rng(0)
    levels = (0.5, 0.8, 0.95)
    scale = rng.uniform(0.5, 2.0, 40)  # every voxel its own noise level
    cal = rng.standard_t(4, (400, 40)) * scale
    test = rng.standard_t(4, (3000, 40)) * scale
    cov = interval_coverage(test, np.zeros_like(test), conformal_halfwidths(cal, levels)).mean(1)
    np.testing.assert_allclose(cov, levels, atol=0.03)
    bad = interval_coverage(test, np.zeros_like(test), conformal_halfwidths(cal / 3, levels)).mean(1)
    assert (np.abs(bad - levels) > 0.1).all()


def test_errors():
    with pytest.raises(Eeg2fmriInputError, match=r"expected coverage levels in \(0, 1\)"):
        conformal_halfwidths(np.ones((3, 2)), (0.5, 1.0))
    with pytest.raises(Eeg2fmriInputError, match=r"expected residuals of shape \(n_calibration, n_outputs\)"):
        conformal_halfwidths(np.ones(3))
    with pytest.raises(Eeg2fmriInputError, match="expected y and pred"):
        interval_coverage(np.ones((3, 2)), np.ones((3, 3)), np.ones((1, 2)))


@pytest.mark.slow
def test_evaluate_reports_interval_coverage(tiny_prepared, tmp_path):
    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.evaluation.uncertainty import conformal_coverage
    from eeg2fmri.models import save_model
    from eeg2fmri.training import fit_model
    from eeg2fmri.workflows.evaluate import evaluate_run

    sp = make_split(tiny_prepared, "within")
    tg = split_targets(tiny_prepared, sp)
    fitted = fit_model(tiny_prepared, sp, "ridge_hrf", {"hrf": "canonical"}, targets=tg)
    res = conformal_coverage(fitted.model, tiny_prepared, sp, tg)
    assert res["levels"] == [0.5, 0.8, 0.95] and res["halfwidths"].shape == (3, int(tiny_prepared.mask.sum()))
    assert res["coverage"][0] < res["coverage"][1] < res["coverage"][2] and 0.2 < res["coverage"][0] and res["coverage"][2] > 0.8
    prep = tiny_prepared.save(tmp_path / "prepared")
    card = {"training data": {"prepared": str(prep)}, "split": {"protocol": "within", "gap_volumes": sp.gap}}
    save_model(fitted.model, tmp_path / "run" / "model", card=card, spec=fitted.spec, name="ridge_hrf", hparams=fitted.model.get_params(),
               mask=tiny_prepared.mask, affine=tiny_prepared.affine, window={"n_frames": sp.n_frames, "lag": sp.lag},
               prepare=tiny_prepared.config.to_dict())
    out, _ = evaluate_run(tmp_path / "run", n_boot=0, progress_bar=False)
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["conformal"]["coverage"] == pytest.approx(res["coverage"]) and "halfwidths" not in doc["conformal"]
    assert "80% -> " in doc["notes"]["conformal intervals"]
    assert "test NLL" in doc["notes"]["conformal NLL"] and np.isfinite(doc["conformal"]["nll_laplace"])
    assert "model uncertainty" not in doc["notes"] and "model_uncertainty" not in doc  # ridge_hrf has no scale of its own
    assert "conformal intervals" in (out / "report.md").read_text()


def test_nll_and_spearman_match_scipy():
    from scipy import stats

    from eeg2fmri.evaluation.uncertainty import gaussian_nll, laplace_nll, spearman

    rng = np.random.default_rng(3)
    y, mu = rng.standard_normal((7, 5)), rng.standard_normal((7, 5))
    sc = rng.uniform(0.3, 2.0, 5)
    assert laplace_nll(y, mu, sc) == pytest.approx(-stats.laplace.logpdf(y, mu, sc).mean(), rel=1e-12)
    assert gaussian_nll(y, mu, sc) == pytest.approx(-stats.norm.logpdf(y, mu, sc).mean(), rel=1e-12)
    a, b = rng.standard_normal(30), rng.standard_normal(30)
    b[:5] = b[5]  # ties
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, rel=1e-12)
    assert np.isnan(spearman(np.ones(5), np.arange(5.0)))


class _HeteroModel:
    """predict(x) = x[:, :, 0]; predict_uncertainty returns 2x the true Laplace scale of the noise (kept in x[:, :, 1])."""

    def predict(self, x):
        return x[:, :, 0]

    def predict_uncertainty(self, x):
        return x[:, :, 0], 2.0 * x[:, :, 1]


class _Span:
    def __init__(self, n, n_out, rng):
        self.scale = rng.uniform(0.2, 3.0, (n, n_out))  # every window and output its own noise level
        self.mu = rng.standard_normal((n, n_out))
        self.y = self.mu + rng.laplace(0.0, self.scale)


def test_model_uncertainty_calibrates_a_scale_that_is_twice_too_wide(monkeypatch):
    """A model whose scale is 2x the truth: the validation temperature is ~0.5, test coverage within 5 points of
    nominal, calibrated NLL below the uncalibrated one, and the scale ranks the errors (Spearman > 0.3)."""
    import eeg2fmri.evaluation.uncertainty as unc

    rng = np.random.default_rng(4)
    spans = {"val": _Span(1500, 13, rng), "test": _Span(2500, 13, rng)}

    def fake_span(model, ds, split, targets, span):
        sp = spans[span]
        mean, scale = model.predict_uncertainty(np.stack([sp.mu, sp.scale], axis=2))
        return sp.y, mean, scale, "Laplace scale"

    monkeypatch.setattr(unc, "_predict_span_uncertainty", fake_span)
    res = unc.model_uncertainty(_HeteroModel(), None, None, None)
    assert res["temperature"] == pytest.approx(0.5, abs=0.03)
    np.testing.assert_allclose(res["coverage"], res["levels"], atol=0.05)
    assert res["nll_laplace"] < res["nll_laplace_uncalibrated"]
    assert res["scale_error_spearman"] > 0.3


def test_model_uncertainty_is_none_without_a_method(tiny_prepared):
    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.evaluation.uncertainty import model_uncertainty
    from eeg2fmri.training import fit_model

    sp = make_split(tiny_prepared, "within")
    tg = split_targets(tiny_prepared, sp)
    fitted = fit_model(tiny_prepared, sp, "ridge_hrf", {"hrf": "canonical"}, targets=tg)
    assert model_uncertainty(fitted.model, tiny_prepared, sp, tg) is None
    from eeg2fmri.evaluation.uncertainty import conformal_coverage

    res = conformal_coverage(fitted.model, tiny_prepared, sp, tg)
    for key in ("nll_laplace", "nll_gaussian", "nll_laplace_shared_scale", "scale_error_spearman"):
        assert np.isfinite(res[key])


def test_mc_dropout_for_any_torch_model_with_dropout():
    """A plain torch module with dropout gets Monte-Carlo dropout: the mean of dropout-on passes, a positive spread,
    reproducible, and the module's train/eval state restored; a module without dropout gets nothing."""
    import torch

    from eeg2fmri.training.predictor import predict_windows_uncertainty, uncertainty_methods

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(32, 5)).eval()
    (fn, meaning), = uncertainty_methods(net)
    assert fn.__name__ == "mc_dropout" and "Monte-Carlo dropout" in meaning
    x = np.random.default_rng(0).standard_normal((11, 6)).astype(np.float32)
    mean, std, _ = predict_windows_uncertainty(net, x, batch_size=4)
    mean2, std2, _ = predict_windows_uncertainty(net, x, batch_size=4)
    np.testing.assert_array_equal(std, std2)
    assert mean.shape == std.shape == (11, 5) and (std > 0).all()
    with torch.no_grad():
        det = net(torch.as_tensor(x)).numpy()
    assert not net.training and not net[2].training
    assert np.abs(mean - det).mean() < np.abs(det).mean()  # dropout-on passes average near the deterministic output
    assert uncertainty_methods(torch.nn.Sequential(torch.nn.Linear(6, 5))) == []


def test_conformal_rank_is_exact_where_floats_round_up():
    """The rank ceil((n + 1) * level) as an exact fraction: 25 * 0.28 is 7.000000000000001 in floats (rank 8 before)."""
    import math
    from fractions import Fraction

    for n in (24, 99, 199, 1999):
        r = np.arange(1, n + 1, dtype=float)[:, None]
        for lv in (0.07, 0.28, 0.29, 0.5, 0.57, 0.8, 0.95):
            k = math.ceil((n + 1) * Fraction(str(lv)))
            want = r[k - 1, 0] if k <= n else np.inf
            assert conformal_halfwidths(r, (lv,))[0, 0] == want, (n, lv)


def test_conformal_refuses_non_finite_residuals():
    """A NaN residual would sort last and be counted in n: [1, 2, NaN, 3] at level 0.5 gave 3 (the rank on the three
    finite values is 2) and NaN at 0.7; refused, naming the outputs."""
    r = np.array([[1.0, 1.0], [2.0, 2.0], [np.nan, 2.5], [3.0, 3.0]])
    with pytest.raises(Eeg2fmriInputError, match=r"conformal: expected finite residuals, got NaN/inf in 1 of 2 output\(s\) \(first: \[0\]\)"):
        conformal_halfwidths(r, (0.5,))
    assert conformal_halfwidths(r[:, 1:], (0.5,))[0, 0] == 2.5


def test_model_uncertainty_with_a_zero_spread_is_not_reported(monkeypatch, caplog):
    """An ensemble whose members carry no weight (the flagship with ridge_weight 1) has a spread of ~0: the fitted
    temperature was 7.8e11 and coverage 0 at every level (user test). Reported as unavailable, with the reason; the
    calibration for synthesize falls back to the conformal half-widths (no temperature)."""
    import logging

    import eeg2fmri.evaluation.uncertainty as unc

    rng = np.random.default_rng(5)
    spans = {"val": _Span(300, 7, rng), "test": _Span(400, 7, rng)}

    def fake_span(model, ds, split, targets, span):
        sp = spans[span]
        return sp.y, sp.mu, np.full_like(sp.mu, 1e-13), "spread of the ensemble members"

    monkeypatch.setattr(unc, "_predict_span_uncertainty", fake_span)
    monkeypatch.setattr(unc, "_predict_span", lambda model, ds, split, targets, span: (spans[span].y, spans[span].mu))
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        res = unc.model_uncertainty(object(), None, None, None)
        cal = unc.calibrate_uncertainty(object(), None, None, None)
    assert res["available"] is False and "temperature" not in res and "coverage" not in res
    assert res["reason"].startswith("the model's own predictive scale (spread of the ensemble members) is ~0 (median 1e-13")
    assert "ridge_weight = 1" in res["reason"] and "No model uncertainty is reported" in caplog.text
    assert cal["temperature"] is None and "is ~0" in cal["own_scale_unavailable"] and cal["halfwidths"].shape == (3, 7)
    # the flagship at blend weight 1 (its linear path alone, the usual case under blend_rule="guarded"): the same
    # outcome, logged as information, not as a warning
    import types

    import torch

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="eeg2fmri"):
        unc.calibrate_uncertainty(types.SimpleNamespace(ridge_weight=torch.tensor(1.0)), None, None, None)
        flagship = types.SimpleNamespace(ridge_weight=torch.tensor(1.0))
        unc.calibrate_uncertainty(types.SimpleNamespace(module=flagship), None, None, None)  # as fit_model returns it (a predictor)
    assert [r.levelname for r in caplog.records if "is ~0" in r.getMessage()] == ["INFO", "INFO"]


def test_calibration_chooses_the_scale_with_the_lower_crossfitted_nll(monkeypatch):
    """calibrate_uncertainty keeps the model's own scale (with its temperature) only where, fitted on one half of the
    validation windows and scored on the other, it predicts the errors better than the per-voxel residual scale; the
    cross-fitted NLL equals the Laplace NLL computed by hand (scipy.stats.laplace)."""
    from scipy.stats import laplace

    import eeg2fmri.evaluation.uncertainty as unc

    rng = np.random.default_rng(3)
    n, v = 200, 6
    vox_scale = np.linspace(0.2, 2.0, v)  # the errors' scale differs by voxel, not by window
    mu = rng.standard_normal((n, v))
    y = mu + rng.laplace(size=(n, v)) * vox_scale
    informative = np.broadcast_to(vox_scale, (n, v)).copy()  # an own scale that knows it
    useless = np.exp(rng.standard_normal((n, v)))  # an own scale unrelated to the errors
    for own, expect in ((informative, "own"), (useless, "residuals")):
        monkeypatch.setattr(unc, "_predict_span", lambda *a, **k: (y, mu))
        monkeypatch.setattr(unc, "_predict_span_uncertainty", lambda *a, own=own, **k: (y, mu, own, "spread"))
        cal = unc.calibrate_uncertainty(object(), None, None, None)
        assert cal["scale"] == expect and (cal["temperature"] is None) == (expect == "residuals")
    # the residual scale's cross-fitted NLL by hand
    res = np.abs(y - mu)
    a, b = slice(0, n // 2), slice(n // 2, n)
    by_hand = np.mean([-laplace.logpdf(y[s2], mu[s2], res[s1].mean(0)).mean() for s1, s2 in ((a, b), (b, a))])
    assert cal["crossfit_nll"]["residuals"] == pytest.approx(by_hand)


def test_refit_models_calibrate_on_their_held_out_validation_residuals(tiny_prepared):
    """ridge_hrf(refit=True) refits on the validation windows after choosing on them; its conformal intervals must come
    from the residuals of the fit before (held out), not from the refitted model's in-sample ones (user test 14: under
    benchmark's LOSO default the 80 % intervals covered 0.62 of a held-out subject's ROI series)."""
    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.evaluation.uncertainty import (
        calibrate_uncertainty,
        conformal_coverage,
        held_out_residuals_of,
    )
    from eeg2fmri.models.base import target_fingerprint
    from eeg2fmri.training import fit_model

    sp = make_split(tiny_prepared, "within")
    tg = split_targets(tiny_prepared, sp)
    hp = {"hrf": "lags", "alphas": (0.01, 1.0, 100.0)}
    plain = fit_model(tiny_prepared, sp, "ridge_hrf", hp, targets=tg).model
    refit = fit_model(tiny_prepared, sp, "ridge_hrf", {**hp, "refit": True}, targets=tg).model
    assert held_out_residuals_of(plain) is None and refit.n_fit_windows_ > plain.n_fit_windows_
    res, sums = held_out_residuals_of(refit)
    y_va = np.concatenate([tg["val"][i] for i in sp.selections["val"]])
    c_plain, c_refit = conformal_coverage(plain, tiny_prepared, sp, tg), conformal_coverage(refit, tiny_prepared, sp, tg)
    np.testing.assert_allclose(c_refit["halfwidths"], c_plain["halfwidths"], rtol=1e-5, atol=1e-6)  # the same calibration
    np.testing.assert_allclose(sums, target_fingerprint(y_va), rtol=1e-12)
    np.testing.assert_allclose(target_fingerprint(y_va[:7]) + target_fingerprint(y_va[7:], start=7), sums, rtol=1e-12)  # batch by batch
    assert res.shape == (len(y_va), tiny_prepared.n_outputs)
    cal = calibrate_uncertainty(refit, tiny_prepared, sp, tg)
    np.testing.assert_allclose(cal["halfwidths"], calibrate_uncertainty(plain, tiny_prepared, sp, tg)["halfwidths"], rtol=1e-5, atol=1e-6)
    # without the kept residuals the refitted model's own validation residuals are in-sample: narrower intervals
    refit.val_residuals_ = None
    narrow = conformal_coverage(refit, tiny_prepared, sp, tg)
    assert np.median(narrow["halfwidths"][1]) < np.median(c_plain["halfwidths"][1])
    # other validation windows than those it kept residuals of (e.g. a second dataset's): their own residuals
    other = make_split(tiny_prepared, "within", fractions=(0.5, 0.3, 0.2))
    tg2 = split_targets(tiny_prepared, other)
    own = conformal_coverage(refit, tiny_prepared, other, tg2)
    refit.val_residuals_ = res
    assert sum(len(v) for v in other.selections["val"].values()) != len(res)
    np.testing.assert_array_equal(conformal_coverage(refit, tiny_prepared, other, tg2)["halfwidths"], own["halfwidths"])
    # the same number of validation windows, other windows (every span moved 5 volumes earlier; targets detrended per
    # span, so a position-weighted sum could not tell them apart): their own residuals
    import copy

    shifted = copy.deepcopy(sp)
    shifted.selections["val"] = {i: np.asarray(v) - 5 for i, v in sp.selections["val"].items()}
    tg3 = split_targets(tiny_prepared, shifted)
    y3 = np.concatenate([tg3["val"][i] for i in shifted.selections["val"]])
    assert y3.shape == y_va.shape and not np.allclose(y3, y_va)
    refit.val_residuals_ = None
    own3 = conformal_coverage(refit, tiny_prepared, shifted, tg3)
    refit.val_residuals_ = res
    np.testing.assert_array_equal(conformal_coverage(refit, tiny_prepared, shifted, tg3)["halfwidths"], own3["halfwidths"])


def test_evaluate_says_when_its_intervals_are_calibrated_in_sample(prepared_dir, tmp_path):
    """A saved model keeps no residuals from before its refit: evaluate's conformal note says the intervals of a model
    fitted on its validation windows are calibrated in-sample, and that train's calibration.json is not."""
    from eeg2fmri.cli import main
    from eeg2fmri.workflows.evaluate import evaluate_run

    cfg = tmp_path / "ridge.yaml"
    cfg.write_text(f"seed: 0\nout: run\ndata: {{prepared: {prepared_dir}}}\nsplit: {{protocol: within}}\n"
                   "model: {name: ridge_hrf, hparams: {hrf: canonical, refit: true}}\n")
    assert main(["train", str(cfg), "-q"]) == 0
    assert json.loads((tmp_path / "run" / "model" / "calibration.json").read_text())["residuals"].startswith("held out")
    _, res = evaluate_run(tmp_path / "run", n_boot=0, progress_bar=False, html_report=False)
    note = res["notes"]["conformal intervals"] if "notes" in res else json.loads((tmp_path / "run" / "evaluation" / "metrics.json").read_text())["notes"]["conformal intervals"]
    assert "(refit=True fitted the model on the validation windows too): the intervals are calibrated on in-sample residuals" in note


def test_interval_multipliers_follow_the_split_conformal_rank():
    """k_p = the ceil((n + 1) p)-th smallest ratio; past the largest (too few windows for the level) None, as the
    conformal half-widths give inf (a review: the largest ratio was returned)."""
    from eeg2fmri.evaluation.uncertainty import conformal_halfwidths, interval_multipliers

    r = np.arange(1.0, 11.0)
    assert interval_multipliers(r, (0.5, 0.8, 0.95)) == [6.0, 9.0, None]
    h = conformal_halfwidths(r[:, None], (0.5, 0.8, 0.95))[:, 0]
    assert list(h[:2]) == [6.0, 9.0] and np.isinf(h[2])


def test_validation_r_and_its_shift_null_match_scipy():
    """Per-output validation r (scipy.stats.pearsonr) and the 95th percentile of r under circular shifts: a predicted
    output is above its null, an unpredictable one is not (user test 18: synthesis did not say which outputs are which)."""
    from scipy.stats import pearsonr

    from eeg2fmri.evaluation.uncertainty import validation_r_and_null

    rng = np.random.default_rng(0)
    n = 300
    slow = np.convolve(rng.standard_normal(n + 20), np.ones(20) / 20, mode="valid")[:n]  # an autocorrelated signal
    y = np.stack([slow + 0.5 * rng.standard_normal(n), rng.standard_normal(n), np.ones(n)], 1)
    p = np.stack([slow, np.convolve(rng.standard_normal(n + 20), np.ones(20) / 20, mode="valid")[:n], rng.standard_normal(n)], 1)
    r, null95 = validation_r_and_null(y, p)
    np.testing.assert_allclose(r[:2], [pearsonr(y[:, k], p[:, k])[0] for k in range(2)], rtol=1e-5)
    assert np.isnan(r[2]) and np.isnan(null95[2])  # a constant target
    assert r[0] > null95[0] and not r[1] > null95[1]
    # by hand: the 15th largest (floor(0.05 * 300)) r of the 299 circular shifts, so that r > null95 <=> p <= 0.05
    want = sorted((pearsonr(y[:, 1], np.roll(p[:, 1], s))[0] for s in range(1, n)), reverse=True)[14]
    assert null95[1] == pytest.approx(want, rel=1e-4)
    _, short = validation_r_and_null(y[:19], p[:19])  # 19 windows cannot reach the 5 % level
    assert np.isnan(short).all()


def test_validation_r_null_passes_five_percent_of_unrelated_autocorrelated_outputs():
    """User test 19: unrelated AR(0.9) series passed the old far-shift null 10-13 % of the time instead of 5 %."""
    from scipy.signal import lfilter

    from eeg2fmri.evaluation.uncertainty import validation_r_and_null

    rng = np.random.default_rng(1)
    n, m = 90, 3000
    for y_ar in (0.0, 0.9):
        p = lfilter([1.0], [1.0, -0.9], rng.standard_normal((n + 100, m)), axis=0)[100:]
        y = lfilter([1.0], [1.0, -y_ar], rng.standard_normal((n + 100, m)), axis=0)[100:]
        r, null95 = validation_r_and_null(y, p)
        assert 0.025 < np.mean(r > null95) < 0.07
