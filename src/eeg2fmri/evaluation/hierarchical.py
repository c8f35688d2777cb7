"""Hierarchical (multi-level) bootstrap of a mean difference: resample groups, then units within them.

A benchmark over simulator seeds (or sites, datasets) and subjects has two
levels of variation: the generative setting drawn by the seed and the
subjects within it. Resampling subjects alone treats every subject as
independent and gives too narrow an interval; :func:`hierarchical_bootstrap`
resamples the top level (seeds) with replacement and, inside every drawn
group, its units (subjects) with replacement (Davison & Hinkley 1997, sec.
3.8; Saravanan et al. 2020, "Application of the hierarchical bootstrap to
multi-level data in neuroscience", NBDC 3:5).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

from eeg2fmri.evaluation.metrics import bootstrap_p_value
from eeg2fmri.utils.rng import check_random_state
from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["hierarchical_bootstrap"]


def hierarchical_bootstrap(
    groups: Mapping[object, ArrayLike] | Sequence[ArrayLike],
    *,
    n_boot: int = 2000,
    ci: float = 0.95,
    random_state: int | np.random.Generator | None = 0,
) -> dict[str, float | int]:
    """Mean of unit values over groups, with a two-level bootstrap interval.

    Parameters
    ----------
    groups : mapping or sequence of array-like, each shape (n_units_g,)
        The values (e.g. per-subject differences in median r) of each group
        (e.g. simulator seed); NaNs are dropped; groups may differ in size.
    n_boot : int
        Bootstrap resamples.
    ci : float
        Coverage of the percentile interval, in (0, 1).
    random_state : int | Generator | None
        Seed of the resampling.

    Returns
    -------
    result : dict
        ``mean`` (mean over groups of the group means), ``low``/``high``
        (percentile interval), ``p_value`` (two-sided,
        :func:`~eeg2fmri.evaluation.metrics.bootstrap_p_value` of the resampled
        means: ``2 (k + 1) / (n_boot + 1)``, ``k`` of them on the far side of 0),
        ``n_groups``, ``n_units``, ``n_boot``.
    """
    vals = list(groups.values()) if isinstance(groups, Mapping) else list(groups)
    arrs = []
    for v in vals:
        a = np.asarray(v, dtype=np.float64).ravel()
        a = a[np.isfinite(a)]
        if a.size:
            arrs.append(a)
    if not arrs:
        raise Eeg2fmriInputError(f"hierarchical_bootstrap: expected at least one group with a finite value, got {len(vals)} group(s) without any.")
    if not (isinstance(n_boot, (int, np.integer)) and n_boot >= 1):
        raise Eeg2fmriInputError(f"hierarchical_bootstrap: expected n_boot to be an integer >= 1, got {n_boot!r}.")
    if not 0 < ci < 1:
        raise Eeg2fmriInputError(f"hierarchical_bootstrap: expected ci in (0, 1), got {ci!r}.")
    rng = check_random_state(random_state)
    g = len(arrs)
    means = np.empty(n_boot)
    for b in range(n_boot):
        pick = rng.integers(0, g, g)
        means[b] = np.mean([arrs[k][rng.integers(0, arrs[k].size, arrs[k].size)].mean() for k in pick])
    est = float(np.mean([a.mean() for a in arrs]))
    lo, hi = np.quantile(means, [(1 - ci) / 2, 1 - (1 - ci) / 2])
    return {"mean": est, "low": float(lo), "high": float(hi), "p_value": bootstrap_p_value(means),
            "n_groups": g, "n_units": int(sum(a.size for a in arrs)), "n_boot": int(n_boot)}
