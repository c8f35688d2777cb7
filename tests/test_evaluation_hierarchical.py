"""Two-level bootstrap: resample seeds, then subjects within each."""

from __future__ import annotations

import numpy as np
import pytest

from eeg2fmri.evaluation.hierarchical import hierarchical_bootstrap
from eeg2fmri.utils.validation import Eeg2fmriInputError


def test_mean_and_interval_cover_the_truth():
    rng = np.random.default_rng(0)
    # 6 seeds with their own offset (between-seed sd 0.05), 4 subjects each (within sd 0.02)
    groups = {s: 0.03 + 0.05 * rng.standard_normal() + 0.02 * rng.standard_normal(4) for s in range(6)}
    res = hierarchical_bootstrap(groups, n_boot=3000, random_state=1)
    assert res["mean"] == pytest.approx(np.mean([g.mean() for g in groups.values()]))
    assert res["low"] < res["mean"] < res["high"] and res["n_groups"] == 6 and res["n_units"] == 24
    # wider than a bootstrap that pools subjects as if independent (it ignores the seed level)
    pooled = np.concatenate(list(groups.values()))
    flat = [pooled[rng.integers(0, 24, 24)].mean() for _ in range(3000)]
    lo, hi = np.quantile(flat, [0.025, 0.975])
    assert res["high"] - res["low"] > 1.5 * (hi - lo)


def test_clear_effect_small_p_and_nan_dropped():
    res = hierarchical_bootstrap([[0.10, 0.11, np.nan], [0.09, 0.12], [0.10, 0.10, 0.13]], n_boot=500, random_state=0)
    assert res["low"] > 0.08 and res["p_value"] == pytest.approx(2 / 501) and res["n_units"] == 7
    same = hierarchical_bootstrap([[0.1, 0.2], [0.3]], n_boot=200, random_state=5)
    assert same == hierarchical_bootstrap([[0.1, 0.2], [0.3]], n_boot=200, random_state=5)


@pytest.mark.parametrize(
    ("args", "kw", "match"),
    [
        ([[np.nan], []], {}, r"expected at least one group with a finite value, got 2 group\(s\) without any"),
        ([[1.0]], {"n_boot": 0}, r"expected n_boot to be an integer >= 1, got 0"),
        ([[1.0]], {"ci": 1.5}, r"expected ci in \(0, 1\), got 1.5"),
    ],
)
def test_errors(args, kw, match):
    with pytest.raises(Eeg2fmriInputError, match=match):
        hierarchical_bootstrap(args, **kw)


def test_p_value_convention_shared_with_the_other_bootstraps():
    """hierarchical_bootstrap's p-value is metrics.bootstrap_p_value of its resampled means, 2 (k + 1) / (B + 1)
    with k draws on the far side of 0 -- the convention of paired_bootstrap and the leaderboards (it was
    2 k / B, at least 1 / B)."""
    from eeg2fmri.evaluation.metrics import bootstrap_p_value

    assert bootstrap_p_value([0.1, -0.2, 0.3, 0.4, np.nan]) == pytest.approx(2 * 2 / 5)
    assert bootstrap_p_value([1.0] * 9) == pytest.approx(2 / 10)
    assert bootstrap_p_value([0.0, 1.0, -1.0]) == 1.0 and np.isnan(bootstrap_p_value([np.nan]))
    groups = [[0.01, -0.02, 0.03], [0.0, 0.02], [-0.01, 0.01, 0.02]]
    res = hierarchical_bootstrap(groups, n_boot=400, random_state=3)
    rng = np.random.default_rng(3)  # the same draws, by hand
    arrs = [np.asarray(g) for g in groups]
    means = []
    for _ in range(400):
        pick = rng.integers(0, 3, 3)
        means.append(np.mean([arrs[k][rng.integers(0, arrs[k].size, arrs[k].size)].mean() for k in pick]))
    means = np.asarray(means)
    k = min((means <= 0).sum(), (means >= 0).sum())
    assert res["p_value"] == pytest.approx(min(1.0, 2 * (k + 1) / 401))
