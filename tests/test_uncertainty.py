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
    assert "conformal intervals" in (out / "report.md").read_text()
