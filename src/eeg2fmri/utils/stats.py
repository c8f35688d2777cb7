"""The package's one Pearson r (NumPy, and from streamed sums for NumPy or torch) and one Laplace NLL.

* :func:`pearson_columns` -- r between matching columns of two arrays (the
  evaluation metrics, the simulator's ceilings, the flagship's validation
  blend);
* :func:`pearson_from_sums` -- r per output from sums accumulated over
  batches (the trainer's ``val_r``, the scores of ``eeg2fmri train``);
* :func:`jackknife_mean_r` -- the mean r over columns on all rows and with
  each contiguous block of rows left out (the flagship's noise-robust
  validation choices);
* :func:`laplace_nll` -- the Laplace negative log-likelihood of the training
  losses and of ``calhas2022``.

Torch is never imported here: the torch paths use tensor methods only.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["CHUNK_ELEMS", "circular_shift_level", "rolling_sd", "jackknife_mean_r", "jackknife_r_columns", "jackknife_se", "laplace_nll", "pearson_columns", "pearson_from_sums",
           "validation_r_and_null"]

#: Elements per float64 block in column-chunked computations (16 MiB).
CHUNK_ELEMS = 1 << 21

_LOG2 = math.log(2.0)


def pearson_columns(a: np.ndarray, b: np.ndarray, *, constant: float = np.nan, clip: bool = True) -> np.ndarray:
    """Pearson r between matching columns of two ``(n, m)`` arrays, in float64 column chunks.

    Parameters
    ----------
    a, b : array, shape (n_samples, n_columns)
        Two arrays of the same shape (not checked: callers validate user input).
    constant : float
        The value of r for a column that is exactly constant (after centring)
        in either array: NaN (undefined; the evaluation metrics) or 0.0.
    clip : bool
        Clip r to [-1, 1] (rounding can step over by an ulp).

    Returns
    -------
    r : array, shape (n_columns,), float64
    """
    n, m = a.shape
    out = np.empty(m, dtype=np.float64)
    step = max(1, CHUNK_ELEMS // max(n, 1))
    for start in range(0, m, step):
        sl = slice(start, min(start + step, m))
        x = np.array(a[:, sl], dtype=np.float64)
        y = np.array(b[:, sl], dtype=np.float64)
        x -= x.mean(axis=0)
        y -= y.mean(axis=0)
        sxy = np.einsum("ij,ij->j", x, y)
        sxx = np.einsum("ij,ij->j", x, x)
        syy = np.einsum("ij,ij->j", y, y)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = sxy / np.sqrt(sxx * syy)
        # A constant series (exactly, after centring) has no defined r.
        const = (np.ptp(x, axis=0) == 0) | (np.ptp(y, axis=0) == 0)
        r[const] = constant
        out[sl] = np.clip(r, -1.0, 1.0) if clip else r
    return out


def rolling_sd(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, *, ddof: int = 0) -> np.ndarray:
    """Standard deviation of ``x[lo[k]:hi[k]]`` for every window ``k``, from cumulative sums (one pass, any overlap).

    Parameters
    ----------
    x : array, shape (n_samples,)
    lo, hi : array of int, shape (n_windows,)
        Window bounds, clipped to ``[0, n_samples]``; an empty window gives 0.
    ddof : int
        Delta degrees of freedom (0: population SD, as ``numpy.std``; 1: sample SD, as ``pandas``' rolling ``std``).

    Returns
    -------
    sd : array, shape (n_windows,), float64
    """
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean() if len(x) else x  # (the SD does not change; the sums' cancellation does: a belt's offset cost 1e-6)
    c1 = np.r_[0.0, np.cumsum(x)]
    c2 = np.r_[0.0, np.cumsum(x * x)]
    lo = np.clip(np.asarray(lo, dtype=np.int64), 0, len(x))
    hi = np.clip(np.asarray(hi, dtype=np.int64), 0, len(x))
    n = np.maximum(hi - lo, 1)
    mean = (c1[hi] - c1[lo]) / n
    var = np.maximum((c2[hi] - c2[lo]) / n - mean * mean, 0.0) * n / np.maximum(n - ddof, 1)
    return np.sqrt(var)


def pearson_from_sums(n: Any, sp: Any, st: Any, spp: Any, stt: Any, spt: Any) -> Any:
    """Pearson r per output from sums over samples (NumPy arrays or torch tensors).

    Parameters
    ----------
    n : int | float | Tensor
        Number of samples summed.
    sp, st, spp, stt, spt : array or Tensor, shape (n_outputs,)
        Sums of ``p``, ``t``, ``p * p``, ``t * t`` and ``p * t``.

    Returns
    -------
    r, ok : array or Tensor, shape (n_outputs,)
        r (NaN where ``p`` or ``t`` has no variance) and the mask of outputs
        where both variances are positive. Variances are the biased moments
        clipped at 0; the denominator is clamped at 1e-30.
    """
    mp, mt = sp / n, st / n
    cov = spt / n - mp * mt
    if isinstance(cov, np.ndarray):
        vp = np.clip(spp / n - mp**2, 0, None)
        vt = np.clip(stt / n - mt**2, 0, None)
        ok = (vp > 0) & (vt > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(ok, cov / np.maximum(np.sqrt(vp * vt), 1e-30), np.nan)
        return r, ok
    vp = (spp / n - mp**2).clamp_min(0)
    vt = (stt / n - mt**2).clamp_min(0)
    ok = (vp > 0) & (vt > 0)
    r = cov / (vp * vt).sqrt().clamp_min(1e-30)
    return r.where(ok, r.new_full((), float("nan"))), ok


def jackknife_r_columns(p: np.ndarray, y: np.ndarray, n_blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """Pearson r of every column, on all rows and with each contiguous block of rows left out.

    Columns whose prediction or target is constant (on the rows used) get r = 0, as in the flagship's validation
    scores.

    Parameters
    ----------
    p, y : array, shape (n_samples, n_columns)
        Predictions and targets, rows in time order.
    n_blocks : int
        Contiguous blocks of rows (``numpy.array_split`` of the row index);
        at most ``n_samples``.

    Returns
    -------
    full : array, shape (n_columns,)
        r of each column on every row.
    loo : array, shape (n_blocks, n_columns)
        r of each column with block ``b`` left out (no rows with a single block).
    """
    n, m = p.shape
    blocks = np.array_split(np.arange(n), max(1, min(int(n_blocks), n)))
    sums = np.zeros((len(blocks), 5, m))
    step = max(1, CHUNK_ELEMS // max(n, 1))
    for start in range(0, m, step):
        sl = slice(start, min(start + step, m))
        a = np.array(p[:, sl], dtype=np.float64)
        b = np.array(y[:, sl], dtype=np.float64)
        a -= a.mean(axis=0)  # shift-invariant; centring first keeps the sums' differences exact enough
        b -= b.mean(axis=0)
        for k, idx in enumerate(blocks):
            ak, bk = a[idx], b[idx]
            sums[k, :, sl] = [ak.sum(0), bk.sum(0), (ak * ak).sum(0), (bk * bk).sum(0), (ak * bk).sum(0)]
    counts = np.array([len(idx) for idx in blocks], dtype=np.float64)

    def col_r(s: np.ndarray, count: float) -> np.ndarray:
        r, ok = pearson_from_sums(count, *s)
        # a variance that is rounding noise (relative to the raw second moment) counts as constant
        tiny = (s[2] - s[0] ** 2 / count <= 1e-12 * np.maximum(s[2], 1e-300)) | (s[3] - s[1] ** 2 / count <= 1e-12 * np.maximum(s[3], 1e-300))
        return np.where(ok & ~tiny, r, 0.0)

    total = sums.sum(axis=0)
    loo = np.array([col_r(total - sums[k], n - counts[k]) for k in range(len(blocks))]) if len(blocks) > 1 else np.zeros((0, m))
    return col_r(total, float(n)), loo


def jackknife_mean_r(p: np.ndarray, y: np.ndarray, n_blocks: int) -> tuple[float, np.ndarray]:
    """Mean over columns of Pearson r, on all rows and with each contiguous block of rows left out.

    Columns whose prediction or target is constant (on the rows used) count
    as r = 0, as in the flagship's validation scores.

    Parameters
    ----------
    p, y : array, shape (n_samples, n_columns)
        Predictions and targets, rows in time order.
    n_blocks : int
        Contiguous blocks of rows (``numpy.array_split`` of the row index);
        at most ``n_samples``.

    Returns
    -------
    full : float
        Mean r over columns on every row.
    loo : array, shape (n_blocks,)
        Mean r over columns with block ``b`` left out.
    """
    full, loo = jackknife_r_columns(p, y, n_blocks)
    return float(full.mean()), loo.mean(axis=1)


def jackknife_se(loo_a: np.ndarray, loo_b: np.ndarray | None = None) -> float:
    """Jackknife standard error of a statistic (or of the difference of two) from its leave-one-block-out values.

    Parameters
    ----------
    loo_a : array, shape (n_blocks,)
        Leave-one-block-out values of a statistic (:func:`jackknife_mean_r`).
    loo_b : array, shape (n_blocks,) | None
        Those of a second statistic on the same blocks: the SE of ``a - b``.

    Returns
    -------
    float
        ``sqrt((B - 1) / B * sum((v_b - mean(v))**2))``; 0 with fewer than two blocks.
    """
    v = np.asarray(loo_a, dtype=np.float64) - (0.0 if loo_b is None else np.asarray(loo_b, dtype=np.float64))
    b = len(v)
    if b < 2:
        return 0.0
    return float(np.sqrt((b - 1) / b * np.sum((v - v.mean()) ** 2)))


def laplace_nll(pred: Any, log_scale: Any, y: Any) -> Any:
    """Laplace negative log-likelihood, ``mean(|y - mu| / b + log b) + log 2``, in float32.

    Parameters
    ----------
    pred : Tensor, shape (batch, *output_shape)
        Location ``mu``.
    log_scale : Tensor, shape (batch, *output_shape)
        ``log b`` of the Laplace scale ``b``.
    y : Tensor, shape (batch, *output_shape)
        Observed values.

    Returns
    -------
    Tensor, shape ()
    """
    s = log_scale.float()
    return ((y.float() - pred.float()).abs() * (-s).exp() + s).mean() + _LOG2


def circular_shift_level(shifted: np.ndarray, level: float = 0.05) -> np.ndarray | float:
    """The value an aligned score must exceed to pass a level-``level`` test against its circular shifts.

    With ``N - 1`` shifted scores (every shift but the aligned one), the aligned score's p-value is
    ``(1 + #{shifts >= score}) / N``; it is at most ``level`` exactly when the score exceeds the ``floor(level N)``-th
    largest shifted score, which this returns (the time-shifted nulls of evaluation and of synthesis' ValidationR).

    Parameters
    ----------
    shifted : array, shape (n_shifts,) or (n_shifts, n_outputs)
        Scores of the shifted predictions (finite).
    level : float

    Returns
    -------
    float | array, shape (n_outputs,)
        NaN where ``floor(level N) < 1`` (too few shifts for the level).
    """
    v = np.asarray(shifted, dtype=np.float64)
    k = int(np.floor(level * (len(v) + 1) + 1e-9))
    if k < 1 or len(v) < k:
        return float("nan") if v.ndim == 1 else np.full(v.shape[1:], np.nan)
    out = -np.partition(-v, k - 1, axis=0)[k - 1]
    return float(out) if v.ndim == 1 else out


def shift_mean_r(p: np.ndarray, y: np.ndarray, *others: np.ndarray) -> np.ndarray:
    """Mean over columns of Pearson r between ``y`` and ``p`` circularly shifted by every lag.

    Columns whose prediction or target is constant count as r = 0, as in :func:`jackknife_mean_r` (whose full value is
    the lag-0 entry).

    Parameters
    ----------
    p, y : array, shape (n_samples, n_columns)
        Predictions and targets, rows in time order.
    *others : array, shape (n_samples, n_columns)
        More predictions against the same ``y`` (its transform computed once).

    Returns
    -------
    array, shape (n_samples,), or (1 + len(others), n_samples) with ``others``
        Entry ``s``: the mean over columns of r(``y[t]``, ``p[(t + s) mod n]``); entry 0 is the aligned mean r.
    """
    preds = (p, *others)
    n, m = y.shape
    out = np.zeros((len(preds), n))
    step = max(1, CHUNK_ELEMS // max(n, 1))
    for start in range(0, m, step):
        sl = slice(start, min(start + step, m))
        b = np.array(y[:, sl], dtype=np.float64)
        b -= b.mean(axis=0)
        nb = (b * b).sum(0)
        okb = nb > 1e-300
        if not okb.any():
            continue
        fb = np.conj(np.fft.rfft(b[:, okb], axis=0))  # once per chunk, for every prediction
        for i, q in enumerate(preds):
            a = np.array(q[:, sl][:, okb], dtype=np.float64)
            a -= a.mean(axis=0)
            na = (a * a).sum(0)
            ok = na > 1e-300  # a constant prediction column counts as r = 0
            cc = np.fft.irfft(fb * np.fft.rfft(a, axis=0), n=n, axis=0)
            out[i] += (cc[:, ok] / np.sqrt(na[ok] * nb[okb][ok])).sum(axis=1)
    out /= max(m, 1)
    return out[0] if not others else out


def shift_gain_level(choice: np.ndarray, default: np.ndarray, y: np.ndarray, level: float = 0.05) -> tuple[float, float]:
    """The validation gain of ``choice`` over ``default`` in mean r over columns, and the level it must exceed by chance.

    Both predictions are shifted together by every circular lag (1 .. n - 1 rows): the shifted gains are what the two
    predictions' structure gives against targets they are not aligned with (a smooth low-rank prediction's mean r
    swings far more under shifts than a full one's where the targets share noise across columns). The aligned gain
    passes a level-``level`` test when it exceeds :func:`circular_shift_level` of the shifted gains.

    Parameters
    ----------
    choice, default : array, shape (n_samples, n_columns)
        The two predictions (rows in time order).
    y : array, shape (n_samples, n_columns)
        Targets.
    level : float

    Returns
    -------
    gain : float
        Mean r of ``choice`` minus that of ``default``, aligned.
    threshold : float
        The ``floor(level n)``-th largest shifted gain; NaN with fewer than ``1 / level`` rows.
    """
    both = shift_mean_r(choice, y, default)
    g = both[0] - both[1]
    return float(g[0]), float(circular_shift_level(g[1:], level))


def validation_r_and_null(y: np.ndarray, p: np.ndarray, *, level: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Per-output Pearson r of predictions ``p`` with targets ``y`` and the level an output's r must pass under circular shifts.

    The null compares the aligned r with the r of *every* circular shift of the predictions (1 .. n - 1 windows, one
    FFT per chunk of outputs): under no relation between two (circularly) stationary series the aligned pair is one of
    the n shifts at random, so ``r > null95`` is a test of level ``level`` (``p = (1 + #{shifts with r >= r_0}) / n``).
    Shifts near 0 stay in: leaving them out (as before user test 19) compared the aligned r with a few effectively
    independent far shifts and passed 10-13 % of unrelated autocorrelated outputs instead of 5 %.

    Parameters
    ----------
    y, p : array, shape (n_windows, n_outputs)
        Validation targets and held-out predictions (windows in time order).
    level : float
        Test level (0.05: ``null95`` is the ``floor(0.05 n)``-th largest shifted r).

    Returns
    -------
    r, null95 : arrays, shape (n_outputs,), float32
        NaN where an output is constant; ``null95`` NaN everywhere with fewer than ``1 / level`` windows (the test cannot
        reach the level).
    """
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    p = np.asarray(p, dtype=np.float64).reshape(len(p), -1)
    n, m = y.shape
    yc, pc = y - y.mean(0), p - p.mean(0)
    ny, npp = np.sqrt((yc ** 2).sum(0)), np.sqrt((pc ** 2).sum(0))
    ok = (ny > 0) & (npp > 0)
    den = np.where(ok, ny * npp, 1.0)
    r = np.where(ok, (yc * pc).sum(0) / den, np.nan)
    null95 = np.full(m, np.nan)
    if np.floor(level * n + 1e-9) >= 1:  # r_0 above the floor(level n)-th largest of the n - 1 shifts  <=>  p <= level
        step = max(1, CHUNK_ELEMS // max(n, 1))
        for c0 in range(0, m, step):
            sl = slice(c0, min(c0 + step, m))
            cc = np.fft.irfft(np.conj(np.fft.rfft(yc[:, sl], axis=0)) * np.fft.rfft(pc[:, sl], axis=0), n=n, axis=0)[1:]
            null95[sl] = circular_shift_level(cc, level) / den[sl]
        null95 = np.where(ok, null95, np.nan)
    return r.astype(np.float32), null95.astype(np.float32)
