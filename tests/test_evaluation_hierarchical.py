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
    assert res["low"] > 0.08 and res["p_value"] == pytest.approx(1 / 500) and res["n_units"] == 7
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
