"""Moving-block bootstrap over time: indices, confidence intervals, the median r, paired differences."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from eeg2fmri.evaluation.metrics._common import (
    _BOOT_ELEMS,
    _CHUNK_ELEMS,
    _REL_VAR_FLOOR,
    _STATS_ELEMS,
    _as_real_array,
    _prepare_pair,
)
from eeg2fmri.evaluation.metrics.correlation import _nanmedian_rows, median_r
from eeg2fmri.utils.rng import check_random_state
from eeg2fmri.utils.validation import (
    Eeg2fmriInputError,
    check_choice,
    check_finite,
    check_positive_int,
)

__all__ = ["INTERVALS", "block_bootstrap_ci", "block_bootstrap_indices", "bootstrap_median_r", "bootstrap_p_value", "centred_interval", "paired_bootstrap"]

#: Interval types of :func:`block_bootstrap_ci`: the percentile interval of the draws, or that interval moved so
#: that the draws' median sits on the estimate (:func:`centred_interval`).
INTERVALS = ("percentile", "centred")


# --------------------------------------------------------------------------- bootstrap


def _check_block_args(
    n_times: int, n_boot: Any, block_len: Any, ci: Any, method: Any, where: str
) -> tuple[int, int, float, str]:
    nb = check_positive_int(n_boot, "n_boot", where=where, fix="pass e.g. n_boot=1000")
    if block_len is None:
        bl = max(1, int(round(n_times ** (1.0 / 3.0))))
    else:
        bl = check_positive_int(block_len, "block_len", where=where, fix="pass a block length in time points, or None for round(n_times ** (1/3))")
    if bl > n_times:
        raise Eeg2fmriInputError(
            f"{where}: expected block_len <= n_times ({n_times}), got {bl}; use shorter blocks."
        )
    try:
        c = float(ci)
    except (TypeError, ValueError):
        c = float("nan")
    if not 0.0 < c < 1.0:
        raise Eeg2fmriInputError(
            f"{where}: expected ci strictly between 0 and 1, got {ci!r}; e.g. ci=0.95 for a 95% interval."
        )
    m = check_choice(method, "method", ["circular", "moving"], where=where)
    return nb, bl, c, m


def block_bootstrap_indices(
    n_times: int,
    n_boot: int,
    block_len: int,
    method: str = "circular",
    random_state: int | np.random.Generator | None = None,
    *,
    segments: Sequence[int] | None = None,
) -> np.ndarray:
    """Time indices of block-bootstrap resamples.

    Each resample concatenates ``ceil(n_times / block_len)`` contiguous blocks
    with uniformly drawn starts and keeps the first ``n_times`` indices.
    ``"circular"`` (Politis & Romano): starts anywhere, blocks wrap around the
    end, so every time point is equally likely. ``"moving"`` (Kuensch): starts
    in ``[0, n_times - block_len]``, no wrapping.

    Parameters
    ----------
    n_times, n_boot, block_len : int
    method : {"circular", "moving"}
    random_state : int, Generator or None
    segments : sequence of int | None
        Lengths of consecutive independent segments (e.g. runs) that make up
        the ``n_times`` points. Each segment is resampled on its own (blocks of
        at most half its length, wrapping within it), so no block joins the end of
        one run to the start of the next, and every resample keeps each
        segment's length. ``None``: one segment.

    Returns
    -------
    idx : ndarray of int, shape (n_boot, n_times)
    """
    where = "block_bootstrap_indices"
    n = check_positive_int(n_times, "n_times", where=where)
    nb, bl, _, m = _check_block_args(n, n_boot, block_len, 0.5, method, where)
    rng = check_random_state(random_state)
    if segments is not None:
        lens = [int(x) for x in segments]
        if any(x < 1 for x in lens) or sum(lens) != n:
            raise Eeg2fmriInputError(
                f"{where}: expected segments of positive lengths summing to n_times={n}, got {lens} (sum {sum(lens)}); "
                "pass the number of time points of each run, in order."
            )
        if len(lens) > 1:
            parts, start = [], 0
            for x in lens:
                # blocks of at most half the run: a block as long as the run would only rotate it (every draw the estimate)
                parts.append(block_bootstrap_indices(x, nb, min(bl, max(1, x // 2)), m, rng) + start)
                start += x
            return np.concatenate(parts, axis=1)
    n_blocks = -(-n // bl)
    high = n if m == "circular" else n - bl + 1
    starts = rng.integers(0, high, size=(nb, n_blocks))
    idx = (starts[:, :, None] + np.arange(bl)).reshape(nb, -1)[:, :n]
    if m == "circular":
        idx %= n
    return idx


def _prepare_boot(
    y_true: ArrayLike, preds: list[ArrayLike], names: list[str], where: str
) -> tuple[np.ndarray, list[np.ndarray]]:
    t = _as_real_array(y_true, "y_true", where)
    if t.ndim == 1:
        t = t[:, None]
    if t.ndim != 2:
        raise Eeg2fmriInputError(
            f"{where}: expected y_true of shape (n_times, n_voxels), got {t.ndim}D with shape "
            f"{t.shape}; flatten volumes first, e.g. y[mask].T for (X, Y, Z, n_times) data."
        )
    out = []
    for pr, name in zip(preds, names):
        p = _as_real_array(pr, name, where)
        if p.ndim == 1:
            p = p[:, None]
        _, p = _prepare_pair(t, p, where, pred_name=name, finite=False)
        check_finite(p, name, where=where)
        out.append(p)
    check_finite(t, "y_true", where=where)
    if t.shape[0] < 2:
        raise Eeg2fmriInputError(f"{where}: expected at least 2 time points, got {t.shape[0]}.")
    return t, out


def _scalar(value: Any, where: str) -> float:
    arr = np.asarray(value)
    if arr.size != 1 or arr.dtype.kind not in "fiub":
        raise Eeg2fmriInputError(
            f"{where}: expected metric to return one number, got {type(value).__name__} with shape "
            f"{arr.shape}; reduce it, e.g. with np.median."
        )
    return float(arr.reshape(()))


def _weights(idx: np.ndarray, n: int) -> np.ndarray:
    """How many times each time point appears in each resample, (n_boot, n) float64."""
    nb = idx.shape[0]
    flat = (idx + n * np.arange(nb)[:, None]).ravel()
    return np.bincount(flat, minlength=nb * n).reshape(nb, n).astype(np.float64)


def _boot_median_r(y_true: np.ndarray, preds: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """Median voxel r of every resample, from resampled sufficient statistics.

    A resample's sums of x, y, x^2, y^2 and xy are ``weights @ stats`` (the
    (n_boot, n_times) multiplicity of each time point times the per-time
    statistics), BLAS matrix products per chunk of voxels, instead of
    copying the data for every draw. Series are standardised over the full
    recording first, into float32 copies (r is invariant to that; it keeps
    the sums well conditioned), which makes float32 products accurate to
    ~1e-6 in r at twice the float64 speed. A resample whose variance falls below
    ``_REL_VAR_FLOOR`` of the full series' (a spike left out of the draw) loses that
    accuracy, so those (resample, voxel) pairs are computed again in float64 from the
    data (:func:`_resampled_r_exact`). Memory: those copies plus at most
    ``_BOOT_ELEMS`` float32 draws of r at once. Returns (n_pred, n_boot).
    """
    n, v = y_true.shape
    nb = weights.shape[0]
    n_pred = len(preds)
    k = 2 + 3 * n_pred
    meds = np.empty((n_pred, nb))
    vstep = max(1, _STATS_ELEMS // (n * k))
    bstep = max(1, _BOOT_ELEMS // (v * n_pred))
    w32 = weights.astype(np.float32)

    def standardise(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """float32 z-scores per column (computed in float64, by chunks) and constant flags."""
        out = np.empty(a.shape, dtype=np.float32)
        const = np.empty(a.shape[1], dtype=bool)
        for v0 in range(0, a.shape[1], vstep):
            vs = slice(v0, min(v0 + vstep, a.shape[1]))
            z = np.array(a[:, vs], dtype=np.float64)
            z -= z.mean(axis=0)
            cst = np.ptp(z, axis=0) == 0
            sd = np.sqrt(np.einsum("ij,ij->j", z, z) / n)
            sd[cst] = 1.0
            z /= sd
            out[:, vs] = z
            const[vs] = cst
        return out, const

    zx, cx_all = standardise(y_true)
    zs = [standardise(p) for p in preds]
    # buffers reused by every chunk (fresh large temporaries per chunk cost a page fault per page: a third of the
    # evaluation time on a VM of session 30); views of their first elements keep every chunk's arrays contiguous
    bmax, vmax = min(bstep, nb), min(vstep, v)
    buf_sx = np.empty(n * 2 * vmax, dtype=np.float32)
    buf_sy = np.empty(n * 3 * vmax, dtype=np.float32)
    buf_mx = np.empty(bmax * 2 * vmax, dtype=np.float32)
    buf_my = np.empty(bmax * 3 * vmax, dtype=np.float32)
    buf_t = [np.empty(bmax * vmax, dtype=np.float32) for _ in range(4)]
    r_all = np.empty((n_pred, bmax, v), dtype=np.float32)
    for b0 in range(0, nb, bstep):
        bs = slice(b0, min(b0 + bstep, nb))
        w = w32[bs]
        m = w.shape[0]
        for v0 in range(0, v, vstep):
            vs = slice(v0, min(v0 + vstep, v))
            c = vs.stop - vs.start
            x, cx = zx[:, vs], cx_all[vs]
            vx, my2, vy, r = (t[: m * c].reshape(m, c) for t in buf_t)
            # One product for the x statistics and one per prediction (same shapes, so
            # identical predictions give bitwise identical draws).
            sx = buf_sx[: n * 2 * c].reshape(n, 2, c)
            sx[:, 0] = x
            np.multiply(x, x, out=sx[:, 1])
            s_x = np.matmul(w, sx.reshape(n, 2 * c), out=buf_mx[: m * 2 * c].reshape(m, 2 * c)).reshape(m, 2, c)
            s_x *= np.float32(1.0 / n)
            mx = s_x[:, 0]
            np.multiply(mx, mx, out=vx)
            np.subtract(s_x[:, 1], vx, out=vx)
            for j, (zy, cy_all) in enumerate(zs):
                y, cy = zy[:, vs], cy_all[vs]
                sy = buf_sy[: n * 3 * c].reshape(n, 3, c)
                sy[:, 0] = y
                np.multiply(y, y, out=sy[:, 1])
                np.multiply(x, y, out=sy[:, 2])
                s_y = np.matmul(w, sy.reshape(n, 3 * c), out=buf_my[: m * 3 * c].reshape(m, 3 * c)).reshape(m, 3, c)
                s_y *= np.float32(1.0 / n)
                my = s_y[:, 0]
                np.multiply(my, my, out=my2)
                np.subtract(s_y[:, 1], my2, out=vy)
                cov = s_y[:, 2]
                np.multiply(mx, my, out=my2)
                np.subtract(cov, my2, out=cov)
                with np.errstate(divide="ignore", invalid="ignore"):
                    np.multiply(vx, vy, out=my2)
                    np.sqrt(my2, out=my2)
                    np.divide(cov, my2, out=r)
                r[:, cx | cy] = np.nan
                # a resample whose variance is a small fraction of the full series' (a spike left out): the float32
                # sums lose r there (or the variance entirely), so those pairs are computed again from the data
                low = ((vx <= _REL_VAR_FLOOR) | (vy <= _REL_VAR_FLOOR)) & ~(cx | cy)[None, :]
                if low.any():
                    rows, cols = np.nonzero(low)
                    r[rows, cols] = _resampled_r_exact(y_true[:, vs], preds[j][:, vs], weights[bs], rows, cols)
                np.clip(r, -1.0, 1.0, out=r)
                r_all[j, :m, vs] = r
        for j in range(n_pred):
            meds[j, bs] = _nanmedian_rows(r_all[j, :m])
    return meds


def _resampled_r_exact(x: np.ndarray, y: np.ndarray, weights: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Pearson r of resample ``rows[i]`` of column ``cols[i]`` in float64, centred on each resample's own mean.

    ``weights`` (n_boot, n_times) counts each time point in each resample. NaN where a
    resampled series is constant (every time point it draws has one value), as :func:`pearson_r`.
    """
    out = np.empty(len(rows), dtype=np.float64)
    step = max(1, _CHUNK_ELEMS // max(1, 4 * x.shape[0]))
    for i in range(0, len(rows), step):
        rr, cc = rows[i : i + step], cols[i : i + step]
        w = weights[rr]  # (m, n)
        a = np.asarray(x[:, cc], dtype=np.float64).T
        b = np.asarray(y[:, cc], dtype=np.float64).T
        tot = w.sum(1, keepdims=True)
        a = a - (w * a).sum(1, keepdims=True) / tot
        b = b - (w * b).sum(1, keepdims=True) / tot
        drawn = w > 0
        const = (np.where(drawn, a, -np.inf).max(1) == np.where(drawn, a, np.inf).min(1)) | (
            np.where(drawn, b, -np.inf).max(1) == np.where(drawn, b, np.inf).min(1))
        with np.errstate(divide="ignore", invalid="ignore"):
            r = (w * a * b).sum(1) / np.sqrt((w * a * a).sum(1) * (w * b * b).sum(1))
        r[const] = np.nan
        out[i : i + step] = r
    return out


def bootstrap_p_value(diffs: ArrayLike) -> float:
    """Two-sided bootstrap p-value of a difference from its resampled values.

    ``min(1, 2 (k + 1) / (B + 1))`` with ``k`` the number of the ``B`` finite
    draws on the far side of 0 (``<= 0`` or ``>= 0``, whichever is fewer):
    the +1 counts the observed statistic among the draws (Davison & Hinkley
    1997, eq. 4.11), so the p-value is never 0. NaN when no draw is finite.
    Every p-value of the package's bootstraps (paired, per subject, group,
    hierarchical over seeds) uses it.

    Parameters
    ----------
    diffs : array_like, shape (n_boot,)
        Resampled differences (non-finite ones are ignored).
    """
    d = np.asarray(diffs, dtype=np.float64).ravel()
    ok = d[np.isfinite(d)]
    if ok.size == 0:
        return float("nan")
    tail = min(np.count_nonzero(ok <= 0), np.count_nonzero(ok >= 0)) + 1
    return float(min(1.0, 2.0 * tail / (ok.size + 1)))


def centred_interval(draws: ArrayLike, estimate: float, ci: float = 0.95) -> tuple[float, float]:
    """The percentile interval of bootstrap draws, moved so that the draws' median sits on the estimate.

    ``(estimate - (q50 - q_lo), estimate + (q_hi - q50))`` with ``q`` the
    quantiles of the finite draws: the spread of the percentile interval,
    without the draws' offset from the estimate. That offset is large for the
    median voxel r of a weak, focal effect: most voxels' r is noise around 0,
    a resample widens every one of them, and the median over them moves up
    with that spread, so the percentile interval can lie wholly above its own
    estimate. On data with a known answer (``benchmarks/bench_ci_coverage.py``:
    signal in 8 % of the voxels, 4 subjects) the nominal 95 % percentile
    interval of the mean median r covered the truth 66 % of the time, this one
    97 %; with signal in half the voxels both covered about 89-92 %.

    Parameters
    ----------
    draws : array_like, shape (n_boot,)
        Bootstrap draws of the statistic (non-finite ones are ignored).
    estimate : float
        The statistic on the original data.
    ci : float
        Coverage.

    Returns
    -------
    low, high : float
        NaN when no draw is finite.
    """
    d = np.asarray(draws, dtype=np.float64).ravel()
    ok = d[np.isfinite(d)]
    if ok.size == 0:
        return float("nan"), float("nan")
    alpha = (1.0 - ci) / 2.0
    lo, mid, hi = np.quantile(ok, [alpha, 0.5, 1.0 - alpha])
    return float(estimate - (mid - lo)), float(estimate + (hi - mid))


def _interval(draws: np.ndarray, ci: float, estimate: float | None = None) -> tuple[float, float, int]:
    ok = draws[np.isfinite(draws)]
    if ok.size == 0:
        return float("nan"), float("nan"), 0
    if estimate is not None:
        lo, hi = centred_interval(ok, estimate, ci)
        return lo, hi, int(ok.size)
    alpha = (1.0 - ci) / 2.0
    lo, hi = np.quantile(ok, [alpha, 1.0 - alpha])
    return float(lo), float(hi), int(ok.size)


def block_bootstrap_ci(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    metric: Callable[[np.ndarray, np.ndarray], float],
    n_boot: int = 1000,
    block_len: int | None = None,
    ci: float = 0.95,
    random_state: int | np.random.Generator | None = None,
    method: str = "circular",
    interval: str = "percentile",
) -> dict[str, Any]:
    """Block-bootstrap confidence interval of a metric, resampling time.

    BOLD is autocorrelated, so time points are resampled in contiguous blocks
    (see :func:`block_bootstrap_indices`) and the metric is recomputed on
    each resample; the interval is the percentile interval of those draws.
    Run it per subject (or per test span).

    Parameters
    ----------
    y_true, y_pred : array_like, shape (n_times, n_voxels) or (n_times,)
        Observed and predicted series; time on the first axis (for volumes,
        pass e.g. ``y[mask].T``).
    metric : callable
        ``metric(y_true, y_pred) -> float`` on 2D ``(n_times, n_voxels)``
        arrays, e.g. :func:`median_r`. Passing :func:`median_r` itself uses
        the fast sufficient-statistics path (same resamples, the same interval
        as the generic loop to ~1e-6; see :func:`bootstrap_median_r`).
    n_boot : int, default 1000
        Number of resamples.
    block_len : int, optional
        Block length in time points; default ``round(n_times ** (1/3))``, at
        least 1. Use at least the autocorrelation length of the residuals.
    ci : float, default 0.95
        Coverage of the interval.
    random_state : int, Generator or None
    method : {"circular", "moving"}, default "circular"
    interval : {"percentile", "centred"}, default "percentile"
        The percentile interval of the draws, or that interval moved so that
        the draws' median sits on the estimate (:func:`centred_interval`; what
        ``evaluate`` reports for the median r).

    Returns
    -------
    result : dict
        ``estimate`` (metric on the original data), ``low``, ``high`` (the
        interval), ``std`` (bootstrap standard deviation), ``n_boot``,
        ``n_valid`` (draws with a finite value, the ones used),
        ``block_len``, ``ci``, ``method``, ``interval``.

    Raises
    ------
    Eeg2fmriInputError
        Shape mismatch, invalid ``n_boot``/``block_len``/``ci``/``method``,
        non-finite data, a metric that does not return one number.
    """
    where = "block_bootstrap_ci"
    if not callable(metric):
        raise Eeg2fmriInputError(
            f"{where}: expected metric to be a callable metric(y_true, y_pred) -> float, got "
            f"{type(metric).__name__}; e.g. metric=median_r."
        )
    iv = check_choice(interval, "interval", INTERVALS, where=where)
    t, (p,) = _prepare_boot(y_true, [y_pred], ["y_pred"], where)
    n = t.shape[0]
    nb, bl, c, m = _check_block_args(n, n_boot, block_len, ci, method, where)
    idx = block_bootstrap_indices(n, nb, bl, m, random_state)
    if metric is median_r:
        estimate = median_r(t, p)
        draws = _boot_median_r(t, [p], _weights(idx, n))[0]
    else:
        estimate = _scalar(metric(t, p), where)
        draws = np.array([_scalar(metric(t[i], p[i]), where) for i in idx])
    lo, hi, n_valid = _interval(draws, c, float(estimate) if iv == "centred" else None)
    return {
        "estimate": float(estimate),
        "low": lo,
        "high": hi,
        "std": float(np.std(draws[np.isfinite(draws)])) if n_valid else float("nan"),
        "n_boot": nb,
        "n_valid": n_valid,
        "block_len": bl,
        "ci": c,
        "method": m,
        "interval": iv,
    }


def bootstrap_median_r(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    n_boot: int = 1000,
    block_len: int | None = None,
    ci: float = 0.95,
    random_state: int | np.random.Generator | None = None,
    method: str = "circular",
    interval: str = "centred",
) -> dict[str, Any]:
    """Block-bootstrap CI of the median voxel-wise r, fast path.

    Equivalent to ``block_bootstrap_ci(y_true, y_pred, median_r, ...,
    interval="centred")`` (the interval ``evaluate`` reports; see
    :func:`centred_interval` for why not the percentile interval): a
    resample's r per voxel comes from resampled sums of x, y, x^2, y^2 and
    xy, obtained as a (n_boot, n_times) count matrix times the per-time
    statistics, a BLAS matrix product over chunks of voxels, instead of
    copying the data for every draw. Cost O(n_boot * n_times * n_voxels)
    flops at matrix-product speed.

    Parameters
    ----------
    y_true, y_pred : array_like, shape (n_times, n_voxels)
    n_boot, block_len, ci, random_state, method
        As in :func:`block_bootstrap_ci`.
    interval : {"centred", "percentile"}, default "centred"
        As in :func:`block_bootstrap_ci` (another default).

    Returns
    -------
    result : dict
        As :func:`block_bootstrap_ci`.
    """
    return block_bootstrap_ci(
        y_true, y_pred, median_r, n_boot=n_boot, block_len=block_len, ci=ci,
        random_state=random_state, method=method, interval=interval,
    )


def paired_bootstrap(
    y_true: ArrayLike,
    pred_a: ArrayLike,
    pred_b: ArrayLike,
    metric: Callable[[np.ndarray, np.ndarray], float],
    n_boot: int = 1000,
    block_len: int | None = None,
    ci: float = 0.95,
    random_state: int | np.random.Generator | None = None,
    method: str = "circular",
) -> dict[str, Any]:
    """Paired block bootstrap of the difference ``metric(a) - metric(b)``.

    Both models are scored on the very same resampled blocks, so the
    interval reflects the uncertainty of the *difference* (the shared
    difficulty of the time points cancels).

    Parameters
    ----------
    y_true, pred_a, pred_b : array_like, shape (n_times, n_voxels) or (n_times,)
    metric : callable
        As in :func:`block_bootstrap_ci`; :func:`median_r` itself uses the
        fast path. For an error metric (lower is better) a positive
        difference means model A is worse.
    n_boot, block_len, ci, random_state, method
        As in :func:`block_bootstrap_ci`.

    Returns
    -------
    result : dict
        ``estimate`` (difference on the original data), ``estimate_a``,
        ``estimate_b``, ``low``, ``high`` (percentile interval of the
        difference), ``p_value``, ``n_boot``, ``n_valid``, ``block_len``,
        ``ci``, ``method``. The two-sided p-value is
        ``min(1, 2 * min(#(d* <= 0) + 1, #(d* >= 0) + 1) / (n_valid + 1))``
        over the bootstrap differences ``d*`` (the add-one form of the
        share of draws on the other side of 0, doubled: close to, and never
        below, the smallest two-sided level at which the percentile interval
        excludes 0 -- e.g. 5 of 200 draws <= 0 give p = 0.06 while the 95 %
        interval just excludes 0); identical predictions give 1.
    """
    where = "paired_bootstrap"
    if not callable(metric):
        raise Eeg2fmriInputError(
            f"{where}: expected metric to be a callable metric(y_true, y_pred) -> float, got "
            f"{type(metric).__name__}; e.g. metric=median_r."
        )
    t, (a, b) = _prepare_boot(y_true, [pred_a, pred_b], ["pred_a", "pred_b"], where)
    n = t.shape[0]
    nb, bl, c, m = _check_block_args(n, n_boot, block_len, ci, method, where)
    idx = block_bootstrap_indices(n, nb, bl, m, random_state)
    if metric is median_r:
        est_a, est_b = median_r(t, a), median_r(t, b)
        meds = _boot_median_r(t, [a, b], _weights(idx, n))
        diffs = meds[0] - meds[1]
    else:
        est_a, est_b = _scalar(metric(t, a), where), _scalar(metric(t, b), where)
        diffs = np.array(
            [_scalar(metric(t[i], a[i]), where) - _scalar(metric(t[i], b[i]), where) for i in idx]
        )
    lo, hi, n_valid = _interval(diffs, c)
    p_value = bootstrap_p_value(diffs)
    return {
        "estimate": float(est_a - est_b),
        "estimate_a": float(est_a),
        "estimate_b": float(est_b),
        "low": lo,
        "high": hi,
        "p_value": float(p_value),
        "n_boot": nb,
        "n_valid": n_valid,
        "block_len": bl,
        "ci": c,
        "method": m,
    }
