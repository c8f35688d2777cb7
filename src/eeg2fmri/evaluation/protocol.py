"""Evaluate fitted models on the test set of a split, with baselines, a reference and ceilings.

Every evaluation scores, on the very same test windows:

* the model(s): voxel-wise temporal Pearson r (distribution in the brain mask,
  median with a per-subject block-bootstrap CI), RMSE, MAE and R² in the mask
  (standardised units), 3D SSIM in the mask and PSNR with a *stated* data
  range (the 1st-99th percentile range of the measured test data, recorded),
  ROI r when an atlas is given;
* the peers' own metrics, labelled as theirs (``calhas_rmse`` over the whole
  grid including background, ``calhas_ssim`` slice-wise), on unmasked volumes
  (zero outside the mask, in both the measured and the predicted data);
* the reference ``ridge_hrf`` (fitted on the split's training windows when not
  given) and a paired block bootstrap of model minus reference on the same
  resampled blocks, with a two-sided p-value;
* the subject-mean baseline (constant over time, so its r is undefined: it is
  compared by RMSE, MAE, R², SSIM and PSNR);
* the time-shifted null (each model's own prediction circularly shifted by half
  of each test run: the right spectrum, no alignment), and the level of a 5 %
  test of the median r against every circular shift of the prediction within
  each test run (up to 200 shifts; ``null_p95_median_r``, the
  ``floor(0.05 N)``-th largest shifted median r: a model's median r not above
  it is not distinguishable from chance alignment); over subjects, the level of
  the mean median r is the 5 % level of the mean of one shift drawn per subject
  (:func:`group_null_level`), not the mean of the subjects' levels (user test 34:
  that was stricter than a 5 % test);
* on simulated data, the noise and oracle ceilings from the ground truth on the
  same voxels and volumes, and the fraction of each that the model reaches.

Results are per run, per subject (the test runs of a subject concatenated)
and over subjects (means of the per-subject values; the CIs over subjects
come from a two-level bootstrap, subjects and then time: :func:`hierarchical_draws`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eeg2fmri.datasets.prepared import PreparedDataset
from eeg2fmri.datasets.targets import HRF_SPAN, Split, check_split_fits, volume_accounting
from eeg2fmri.datasets.windows import run_windows
from eeg2fmri.evaluation.metrics import (
    _boot_median_r,
    _weights,
    block_bootstrap_indices,
    bootstrap_p_value,
    calhas_ssim,
    ceiling_fraction,
    pearson_r,
    rmse,
    roi_r,
    ssim3d_series,
    summarize_r,
)
from eeg2fmri.evaluation.metrics import (
    _interval as _boot_interval,
)
from eeg2fmri.preprocessing.atlas import load_labels
from eeg2fmri.simulate.groundtruth import groundtruth_ceilings
from eeg2fmri.training.predictor import predict_windows
from eeg2fmri.utils.jsonable import to_jsonable
from eeg2fmri.utils.logs import logger, progress
from eeg2fmri.utils.rng import check_random_state
from eeg2fmri.utils.validation import Eeg2fmriInputError, check_like, check_positive_int

__all__ = [
    "hierarchical_draws",
    "BASELINE",
    "STIMULUS",
    "DEFAULT_N_BOOT",
    "DEFAULT_SSIM_VOLUMES",
    "REFERENCE",
    "default_block_len",
    "evaluate_models",
    "evaluate_split",
    "groundtruth_ceilings",
    "load_labels",
    "merge_results",
    "PHYSIOLOGY",
    "physiology_model",
    "physiology_not_above",
    "physiology_notes",
    "physiology_row",
    "predict_windows",
    "reference_model",
    "results_to_json",
    "score_runs",
]

#: Name of the reference model shown in every report.
REFERENCE = "ridge_hrf"
#: Name of the subject-mean baseline.
BASELINE = "mean"
#: Name of the physiology-only row: a ridge from the physiological regressors prepare stored (PreparedRun.physio) alone.
PHYSIOLOGY = "physiology only"
#: Name of the stimulus GLM: a row wherever the data carry event regressors (prepare option ``events``).
STIMULUS = "stimulus_glm"
#: Bootstrap resamples per subject: sized so that a NODDI-sized test set
#: (600 volumes x 30k voxels, model + reference) is scored in seconds.
DEFAULT_N_BOOT = 200
#: 3D SSIM (and the peers' slice SSIM) are averaged over at most this many
#: evenly spaced test volumes per subject (recorded in the results).
DEFAULT_SSIM_VOLUMES = 40
#: Percentiles of the measured test data (in the mask) whose difference is the
#: data range of SSIM and PSNR.
DATA_RANGE_PERCENTILES = (1.0, 99.0)


def _r2(y: np.ndarray, p: np.ndarray) -> float:
    y = np.asarray(y, dtype=np.float64)
    ss_res = float(((y - p) ** 2).sum())
    ss_tot = float(((y - y.mean(0)) ** 2).sum())
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")


def default_block_len(n_times: int, tr: float) -> int:
    """Bootstrap block length in volumes: the HRF span, at least ``n ** (1/3)``.

    Residual BOLD is autocorrelated over roughly the haemodynamic response
    (16 s), so blocks cover at least that; capped at half the series.

    Parameters
    ----------
    n_times : int
        Volumes in the series.
    tr : float
        Repetition time in seconds.

    Returns
    -------
    block_len : int
        ``clip(max(ceil(16 s / tr), round(n ** (1/3))), 1, max(1, n // 2))``.
    """
    bl = max(int(math.ceil(HRF_SPAN / float(tr) - 1e-9)), int(round(n_times ** (1.0 / 3.0))))
    return int(min(max(bl, 1), max(1, n_times // 2)))


#: Voxels (evenly spaced) whose residual autocorrelation gives the median of :func:`measured_block_len`: the median of
#: each lag over 8,192 voxels is that over every voxel to sampling error -- the block length to within one lag, where
#: the median crosses the threshold there (a NODDI-sized mask has 33,784 voxels).
ACF_VOXELS = 8192


def measured_block_len(residuals: np.ndarray, tr: float, *, threshold: float = 0.1) -> int:
    """Bootstrap block length from the residuals' measured autocorrelation, never below :func:`default_block_len`.

    The autocorrelation of every column (voxel) of ``residuals`` is computed
    (FFT, biased estimator; at most :data:`ACF_VOXELS` evenly spaced columns);
    the block length is twice the first lag at which the median over voxels
    falls below ``threshold``, at least the HRF-span rule of
    :func:`default_block_len` and at most half the series.

    Parameters
    ----------
    residuals : array, shape (n_times, n_voxels)
        Measured minus predicted test series (of the reference model).
    tr : float
        Repetition time in seconds.
    threshold : float
        Autocorrelation regarded as negligible.

    Returns
    -------
    block_len : int
    """
    from scipy import fft as sfft

    x = np.asarray(residuals)
    x = x.reshape(len(x), -1)
    n = len(x)
    base = default_block_len(n, tr)
    if n < 4 or x.shape[1] == 0:
        return base
    if x.shape[1] > ACF_VOXELS:  # the median over voxels of each lag's autocorrelation, from evenly spaced voxels
        x = x[:, np.unique(np.linspace(0, x.shape[1] - 1, ACF_VOXELS).round().astype(int))]
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(0)
    var = (x**2).sum(0)
    keep = var > 0
    if not keep.any():
        return base
    f = sfft.rfft(x[:, keep], n=2 * n, axis=0, workers=-1)
    acf = sfft.irfft(np.abs(f) ** 2, axis=0, workers=-1)[:n] / var[keep]
    med = np.median(acf, axis=1)
    below = np.nonzero(med < threshold)[0]
    lag = int(below[0]) if len(below) else n
    return int(min(max(base, 2 * lag), max(1, n // 2)))


# --------------------------------------------------------------------------- scoring


def _volumes(mask: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(X, Y, Z, n) float32 volumes, zero outside the mask, from (n, n_voxels) rows."""
    vol = np.zeros(mask.shape + (len(rows),), dtype=np.float32)
    vol[mask] = np.asarray(rows, dtype=np.float32).T
    return vol


def _ssim_box(mask: np.ndarray, sigma: float = 1.5, truncate: float = 3.5) -> tuple[slice, slice, slice]:
    """Bounding box of the mask grown by the SSIM window's radius (clipped to the grid).

    Every in-mask voxel's Gaussian window lies inside it, and where it meets
    the grid's edge it is that edge, so the SSIM averaged over the mask is the
    same on the cropped volumes (at a fraction of the cost).
    """
    radius = int(truncate * sigma + 0.5) + 1
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(axis=0) - radius, 0)
    hi = np.minimum(idx.max(axis=0) + radius + 1, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))  # type: ignore[return-value]


def _errors_per_volume(y: np.ndarray, p: np.ndarray, block: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Sums of squared and of absolute errors of every time point (row), float64, in blocks of rows."""
    sq = np.empty(len(y))
    ab = np.empty(len(y))
    for a in range(0, len(y), block):
        d = np.asarray(y[a : a + block], dtype=np.float64) - p[a : a + block]
        sq[a : a + block] = np.einsum("ij,ij->i", d, d)
        ab[a : a + block] = np.abs(d).sum(axis=1)
    return sq, ab


def _ss_total(y: np.ndarray, block: int = 8192) -> float:
    """Sum over voxels of the squared deviations from each voxel's mean (the R² denominator)."""
    tot = 0.0
    for a in range(0, y.shape[1], block):
        c = np.asarray(y[:, a : a + block], dtype=np.float64)
        c -= c.mean(axis=0)
        tot += float(np.einsum("ij,ij->", c, c))
    return tot


def _interval(draws: np.ndarray, ci: float, estimate: float | None = None) -> list[float]:
    """Percentile interval of bootstrap draws; with a finite ``estimate``, the same interval moved so that the draws'
    median sits on the estimate (:func:`eeg2fmri.evaluation.metrics.centred_interval`)."""
    use = float(estimate) if estimate is not None and np.isfinite(estimate) else None
    lo, hi, _ = _boot_interval(np.asarray(draws, dtype=np.float64), ci, use)
    return [lo, hi]


def _nanmedian(a: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64)
    a = a[np.isfinite(a)]
    return float(np.median(a)) if a.size else float("nan")


#: Keys of the built-in per-model metrics (an extra metric may not reuse them).
_BUILTIN_KEYS = ("rmse", "mae", "r2", "psnr", "calhas_rmse", "ssim", "calhas_ssim", "r", "median_r", "null_median_r", "null_p95_median_r",
                 "null_shifts", "roi_r", "roi_median_r", "median_r_ci", "median_r_in_groundtruth_mask", "fraction_of_noise", "fraction_of_oracle")


def _check_extra_metrics(extra_metrics: Mapping[str, Callable] | None) -> tuple[str, ...]:
    """Names of the caller's metrics, refused when not callables or named like a built-in metric."""
    if not extra_metrics:
        return ()
    if not isinstance(extra_metrics, Mapping):
        raise Eeg2fmriInputError(f"extra_metrics: expected a mapping name -> function(y_true, y_pred) -> float, got {type(extra_metrics).__name__}.")
    for key, fn in extra_metrics.items():
        if not isinstance(key, str) or key in _BUILTIN_KEYS or key.startswith("_"):
            raise Eeg2fmriInputError(f"extra_metrics: expected a new metric name, got {key!r} (a built-in metric's name or not a plain string); "
                                     "rename it.")
        if not callable(fn):
            raise Eeg2fmriInputError(f"extra_metrics[{key!r}]: expected a function (y_true, y_pred) -> float, got {type(fn).__name__}.")
    return tuple(extra_metrics)


def _extra_value(key: str, fn: Callable, y: np.ndarray, p: np.ndarray) -> float:
    val = fn(y, p)
    try:
        return float(np.asarray(val).item())
    except (TypeError, ValueError):
        raise Eeg2fmriInputError(f"extra_metrics[{key!r}]: expected one number per subject (a float from y_true, y_pred of shape {y.shape}), "
                                 f"got {type(val).__name__} of shape {np.shape(val)}; reduce it (e.g. the median over voxels).") from None


def _score_subject(
    subject: str,
    runs: list[dict[str, Any]],
    names: list[str],
    r_names: list[str],
    reference: str | None,
    mask: np.ndarray | None,
    labels: np.ndarray | None,
    tr: float,
    *,
    n_boot: int,
    block_len: int | None,
    ci: float,
    rng: np.random.Generator,
    ssim_volumes: int,
    extra_metrics: Mapping[str, Callable] | None = None,
) -> tuple[dict[str, Any], np.ndarray | None]:
    """Metrics of every predictor on one subject's concatenated test runs; returns (result, draws)."""
    y = np.concatenate([r["y"] for r in runs]).astype(np.float32, copy=False)
    preds = {nm: np.concatenate([r["preds"][nm] for r in runs]) for nm in names}
    n, v = y.shape
    p_lo, p_hi = np.percentile(y, DATA_RANGE_PERCENTILES)
    dr = float(p_hi - p_lo)
    if not dr > 0:
        dr = float(np.ptp(y)) or 1.0
    k = min(n, ssim_volumes)
    ssim_idx = np.unique(np.linspace(0, n - 1, k).round().astype(int))
    # voxels of the mask; ROI targets (an atlas) and region tables (mask None) have no volumes: no SSIM, no peers' grid metrics
    on_grid = mask is not None and v == int(mask.sum())
    vol_y_ssim = _volumes(mask, y[ssim_idx]) if on_grid else None
    box = _ssim_box(mask) + (slice(None),) if on_grid else None
    n_grid = int(np.prod(mask.shape)) if mask is not None else v
    ss_tot = _ss_total(y)
    res: dict[str, Any] = {
        "runs": [r["key"] for r in runs],
        "n_test": int(n),
        "n_voxels": int(v),
        "data_range": {"value": dr, "low": float(p_lo), "high": float(p_hi), "percentiles": list(DATA_RANGE_PERCENTILES),
                       "definition": "1st-99th percentile range of the measured test data in the brain mask (standardised units)"},
        "ssim_volumes": int(len(ssim_idx)),
        "models": {},
    }
    rs: dict[str, np.ndarray] = {}
    r_nulls: dict[str, np.ndarray] = {}
    drift: dict[str, Any] = {}  # the targets' drift bases (:func:`_drift_bases`), computed at the first model scored
    roi_pools: dict[str, dict[str, np.ndarray]] = {}
    for nm in names:
        p = preds[nm]
        # one pass over the errors gives our RMSE, MAE, R² and PSNR and the peers' RMSE; each equals the
        # function of the same name in evaluation.metrics (see the tests), without repeating the pass
        sse_t, sae_t = _errors_per_volume(y, p)
        mse = float(sse_t.sum()) / (n * v)
        m: dict[str, Any] = {
            "rmse": math.sqrt(mse),
            "mae": float(sae_t.sum()) / (n * v),
            "r2": 1.0 - float(sse_t.sum()) / ss_tot if ss_tot > 0 else float("nan"),
            # = metrics.psnr(y, p, dr) = 10 log10(dr^2 / MSE), from the same squared errors
            "psnr": 10.0 * math.log10(dr * dr / mse) if mse > 0 else float("inf"),
            # = metrics.calhas_rmse on the unmasked volumes (zero outside the mask in both): per volume
            # sqrt(sum of squared errors / all grid voxels), background included, then the mean over volumes
            "calhas_rmse": float(np.mean(np.sqrt(sse_t / n_grid))) if on_grid else float("nan"),
        }
        if on_grid:
            vol_p = _volumes(mask, p[ssim_idx])
            m["ssim"] = float(ssim3d_series(vol_y_ssim[box], vol_p[box], dr, mask[box[:3]]))
            m["calhas_ssim"] = float(calhas_ssim(vol_y_ssim, vol_p)) if min(mask.shape[:2]) >= 11 and mask.shape[2] >= 3 else float("nan")
            del vol_p
        else:
            m["ssim"] = m["calhas_ssim"] = float("nan")
        for key, fn in (extra_metrics or {}).items():  # metrics of the caller's own, on the same arrays
            m[key] = _extra_value(key, fn, y, p)
        if nm in r_names:
            r = np.asarray(pearson_r(y, p), dtype=np.float64)
            rs[nm] = r
            m["r"] = summarize_r(r)
            m["median_r"] = m["r"]["median"]
            # each run's prediction rolled by half its length (the same computation as the null distribution's shifts)
            if "bases" not in drift:  # (the targets' drift bases: the same for every model)
                drift["bases"] = _drift_bases(y, [len(rr["y"]) for rr in runs], tr)
            # (in the same pass as the null distribution's shifts: each pass computes the FFTs of every run once)
            dist, r_null = _shift_null_distribution(y, runs, nm, tr=tr, bases=drift["bases"], also=tuple(len(rr["y"]) // 2 for rr in runs))
            r_nulls[nm] = r_null
            m["null_median_r"] = _nanmedian(r_null)
            if dist is not None:
                m["null_p95_median_r"] = _null_level(dist)
                m["null_shifts"] = int(len(dist))
                # the distribution itself: the level of the mean over subjects is formed from every subject's (_group)
                m["null_median_r_shifts"] = [round(float(v), 6) for v in dist]
            if labels is not None:
                rr_roi = roi_r(y, p, labels)
                m["roi_r"] = {str(key): val for key, val in rr_roi.items()}
                m["roi_median_r"] = _nanmedian(np.array(list(rr_roi.values())))
                keys = list(rr_roi)
                roi_shifts = _roi_shift_r(y, runs, nm, labels, keys, tr=tr)
                if roi_shifts is not None:  # per ROI: the 5 % level of its r over every circular shift
                    m["roi_null_p95"] = {str(key): _null_level(roi_shifts[:, j]) for j, key in enumerate(keys)}
                    # each ROI's pool (its shifts and its aligned r), for the level of the mean over subjects (_group)
                    roi_pools[nm] = {str(key): np.append(roi_shifts[:, j], rr_roi[key]).astype(np.float32) for j, key in enumerate(keys)}
        else:
            m["median_r"] = float("nan")
            m["r"] = None
        res["models"][nm] = m
    # block bootstrap: all predictors with an r on the same resampled blocks
    draws = None
    if r_names and n >= 2 and n_boot > 0:
        if block_len is None:
            resid_src = reference if reference in r_names else r_names[0]
            bl = measured_block_len(y - preds[resid_src], tr)
        else:
            bl = int(min(block_len, n))
        # each run resampled on its own (blocks never join two runs; every resample keeps the runs' lengths)
        idx = block_bootstrap_indices(n, n_boot, bl, "circular", rng, segments=[len(r["y"]) for r in runs])
        draws = _boot_median_r(y, [preds[nm] for nm in r_names], _weights(idx, n))
        res["bootstrap"] = {"n_boot": int(n_boot), "block_len": int(bl), "ci": float(ci),
                            "method": ("circular block bootstrap over time (block length from the residuals' autocorrelation)"
                                       if block_len is None else "circular block bootstrap over time")
                            + (f", within each of the {len(runs)} runs" if len(runs) > 1 else "")}
        if n < MIN_BOOT_BLOCKS * bl:  # (user test 34: 22 test volumes in blocks of 8; 12-17 % of intervals excluded a true r of 0)
            res["bootstrap"]["note"] = (f"{n} test volumes hold {n / bl:.1f} blocks of {bl}: with fewer than {MIN_BOOT_BLOCKS} blocks a block "
                                        "bootstrap's intervals are too narrow (in a user test 12-17 % of them excluded a true r of 0 instead "
                                        "of 5 %); hold out longer test spans (split fractions) or compare over subjects")
            logger.warning("subject %s: %s", ",".join(sorted({str(r.get('subject', '?')) for r in runs})), res["bootstrap"]["note"])
        for j, nm in enumerate(r_names):
            res["models"][nm]["median_r_ci"] = _interval(draws[j], ci, res["models"][nm]["median_r"])
        if reference is not None and reference in r_names:
            jr = r_names.index(reference)
            res["paired"] = {}
            for j, nm in enumerate(r_names):
                if nm == reference:
                    continue
                d = draws[j] - draws[jr]
                lo, hi = _interval(d, ci)
                res["paired"][nm] = {"vs": reference, "diff_median_r": res["models"][nm]["median_r"] - res["models"][reference]["median_r"],
                                     "low": lo, "high": hi, "p_value": bootstrap_p_value(d)}
    # ground-truth ceilings (simulated data): per-voxel, length-weighted over the subject's runs
    ceils = [r["ceilings"] for r in runs]
    if all(c is not None for c in ceils) and ceils:
        w = np.array([len(r["y"]) for r in runs], dtype=np.float64)
        noise = sum(c["noise"] * wi for c, wi in zip(ceils, w)) / w.sum()
        oracle = sum(c["oracle"] * wi for c, wi in zip(ceils, w)) / w.sum()
        ok = np.isfinite(noise) & np.isfinite(oracle)
        cres: dict[str, Any] = {"noise_median_r": _nanmedian(noise[ok]), "oracle_median_r": _nanmedian(oracle[ok]), "n_voxels": int(ok.sum()),
                                "definition": "simulator ground truth on the same volumes; noise: corr(noise-free, measured), oracle: corr(EEG-visible part, measured)"}
        for nm, r in rs.items():
            okr = ok & np.isfinite(r)
            mm = res["models"][nm]
            mm["median_r_in_groundtruth_mask"] = _nanmedian(r[okr])
            for cname, cvals in (("noise", noise), ("oracle", oracle)):
                if okr.any() and _nanmedian(cvals[okr]) > 0:
                    mm[f"fraction_of_{cname}"] = ceiling_fraction(r[okr], cvals[okr])
                else:
                    mm[f"fraction_of_{cname}"] = float("nan")
        res["ceilings"] = cres
    res["_r"] = rs
    res["_r_null"] = r_nulls
    res["_roi_pools"] = roi_pools
    return res, draws


#: At most this many circular shifts behind a time-shifted null (every shift of runs up to this many volumes; longer
#: runs are shifted by evenly spaced fractions of their length).
NULL_SHIFTS = 200

#: Bytes of shifted voxel r held at once by the whole-mask null (its shifts are computed in as few passes as fit).
NULL_MEMORY = 1 << 28

#: Test level of the time-shifted nulls: a score passes when its p-value over the shifts is at most this.
NULL_LEVEL = 0.05


def _shift_null_distribution(y: np.ndarray, runs: list[dict[str, Any]], name: str, n_shifts: int = NULL_SHIFTS,
                             tr: float | None = None, bases: Any = "auto", also: tuple[int, ...] | None = None) -> Any:
    """Median r of the prediction circularly shifted within each run, over every shift (:func:`_null_shifts`).

    Under no relation between prediction and target the aligned median r is one of these at random, so it passes a
    level-5 % test when it exceeds :func:`_null_level` of them. Shifts near 0 stay in: the null of sessions 1-27 kept
    them 10 % of a run and the HRF span (16 s) away, and compared the aligned r with a few effectively independent far
    shifts: unrelated slow series passed 10-12 % of the time instead of 5 % (user test 19; tests/test_evaluation.py).
    ``None`` when the runs are too short for a 5 % test (under 20 volumes). With ``tr``, runs whose targets are
    detrended (:func:`_drift_bases`) get the drift-projected shifts of :func:`_circular_shift_r`; ``bases``: those
    bases when the caller has them already (``"auto"``: computed here from ``tr``). ``also``: one more shift tuple
    whose per-voxel r are computed in the first pass too (the half-run shift of the null row); then the return value is
    ``(distribution or None, r of that shift)``.
    """
    order = _null_shifts([len(rr["y"]) for rr in runs], n_shifts)
    preds = [rr["preds"][name] for rr in runs]
    if order is None and also is None:
        return None
    if isinstance(bases, str):
        bases = _drift_bases(y, [len(pr) for pr in preds], tr)
    per = max(1, NULL_MEMORY // (8 * max(int(np.prod(y.shape[1:])), 1)))  # shifts of every voxel held at once: bounded memory
    todo = ([also] if also is not None else []) + list(order or [])
    out, first = [], None
    for c0 in range(0, len(todo), per):
        rs = _circular_shift_r(y, preds, todo[c0 : c0 + per], bases=bases)
        if c0 == 0 and also is not None:
            first = rs.pop(0)
        out += [_nanmedian(r) for r in rs]
    dist = np.array(out) if order is not None else None
    return (dist, first) if also is not None else dist


def _null_shifts(lens: list[int], n_shifts: int = NULL_SHIFTS, tr: float | None = None) -> list[tuple[int, ...]] | None:
    """Every circular shift of the runs, one shift per run in each tuple: the same fraction ``i / N`` of each run's
    length, ``i = 1 .. N - 1``, ``N`` the shortest run's length (at most ``n_shifts``); ``None`` when ``N`` is too small
    for a 5 % test (:func:`_null_level`). ``tr`` is not used (kept for callers)."""
    n = min(min(lens), int(n_shifts))
    if int(np.floor(NULL_LEVEL * n + 1e-9)) < 1:
        return None
    return [tuple(int(round(i * m / n)) % m for m in lens) for i in range(1, n)]


def _null_level(values: np.ndarray, level: float = NULL_LEVEL) -> float:
    """The level an aligned score must exceed: :func:`~eeg2fmri.utils.stats.circular_shift_level` of the finite shifted
    scores ``values`` (the ``floor(level N)``-th largest of ``N - 1``: ``score > level_value`` <=> ``p <= level``)."""
    from eeg2fmri.utils.stats import circular_shift_level

    v = np.asarray(values, dtype=np.float64)
    return circular_shift_level(v[np.isfinite(v)], level)


def _roi_shift_null_p95(y: np.ndarray, runs: list[dict[str, Any]], name: str, labels: np.ndarray, keys: list,
                        tr: float | None = None) -> dict | None:
    """Per ROI (``keys``, labels of ``labels``): the level its r must pass, a 5 % test against every circular shift of its
    mean predicted series within each run (:func:`_null_shifts`, :func:`_null_level`; an aligned r above it has
    p <= 0.05). Slow region series correlate well above 0 by chance. ``None`` where the runs are too short. With
    ``tr``: the drift-projected shifts of detrended targets (:func:`_circular_shift_r`)."""
    rs = _roi_shift_r(y, runs, name, labels, keys, tr=tr)
    if rs is None:
        return None
    return {key: _null_level(rs[:, j]) for j, key in enumerate(keys)}


def _roi_shift_r(y: np.ndarray, runs: list[dict[str, Any]], name: str, labels: np.ndarray, keys: list,
                 tr: float | None = None) -> np.ndarray | None:
    """Every ROI's r over the circular shifts of :func:`_roi_shift_null_p95`, array ``(n_shifts, len(keys))``;
    ``None`` where the runs are too short (or no ROI). With ``tr``, runs whose ROI-mean targets are detrended
    (:func:`_drift_bases`) get the drift-projected shifts of :func:`_circular_shift_r`."""
    order = _null_shifts([len(rr["y"]) for rr in runs], max(NULL_SHIFTS, 1000))
    if order is None or not keys:
        return None
    lab = np.asarray(labels).reshape(-1)
    cols = [np.flatnonzero(lab == key) for key in keys]

    def means(a: np.ndarray) -> np.ndarray:
        a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
        return np.stack([a[:, c].mean(1) for c in cols], 1)

    ym = means(y)
    preds = [means(rr["preds"][name]) for rr in runs]
    return np.stack(_circular_shift_r(ym, preds, order, bases=_drift_bases(ym, [len(pr) for pr in preds], tr)))  # (n_shifts, n_roi)


#: A run's targets count as detrended with its drift basis (:func:`_drift_bases`) when their energy in the basis, their
#: own mean left aside, is at most this fraction of their energy about that mean (``split_targets``' float32 targets:
#: ~1e-14; series that were not detrended: a few % and more).
DRIFT_FREE_TOL = 1e-6


def _drift_bases(y: np.ndarray, lens: list[int], tr: float | None) -> list[np.ndarray | None] | None:
    """Per run: the orthonormalised drift basis its targets were detrended with, or ``None`` for a run that was not.

    The basis is :func:`eeg2fmri.preprocessing.bold.drift_basis` of the run's length at ``tr`` (linear + discrete
    cosines below 1/128 Hz: what :func:`eeg2fmri.datasets.targets.split_targets` removes from every test span), made
    orthonormal; a run counts as detrended with it when the targets' energy in it, their own mean left aside, is at
    most :data:`DRIFT_FREE_TOL` of their energy about that mean. Targets detrended otherwise keep the plain shifts: a
    test span with left-out windows (detrended over its whole length, then the kept volumes taken), targets detrended
    at another TR, or targets a caller of :func:`score_runs` did not detrend.

    Parameters
    ----------
    y : array, shape (n_volumes, n_outputs)
        The runs' targets, concatenated.
    lens : list of int
        The runs' lengths, in order.
    tr : float | None
        Repetition time (s); ``None``: no run is treated as detrended.

    Returns
    -------
    list of (array, shape (n_run, n_columns), float64 | None) | None
        The basis's columns but the constant (orthogonal to it: the means are left to the global centring of
        :func:`pearson_r`, so that a run's offset counts in every shift as in the aligned r); ``None`` when no run is
        detrended (the plain shifts, exactly as without ``tr``).
    """
    if tr is None or not np.isfinite(tr) or tr <= 0:
        return None
    from eeg2fmri.preprocessing.bold import drift_basis
    from eeg2fmri.utils.stats import CHUNK_ELEMS

    n, m = y.shape
    starts = np.cumsum([0] + list(lens))
    step = max(1, CHUNK_ELEMS // max(n, 1))
    qs: list[np.ndarray | None] = []
    for nj in lens:
        q = np.linalg.qr(drift_basis(nj, float(tr)))[0] if nj > 2 else None
        qs.append(q if q is not None and q.shape[1] < nj - 1 else None)  # (a basis that leaves under two dimensions: none)
    e_drift, e_tot = np.zeros(len(lens)), np.zeros(len(lens))
    for j, q in enumerate(qs):
        for c0 in range(0, m, step) if q is not None else ():
            a = np.array(y[starts[j] : starts[j + 1], c0 : c0 + step], dtype=np.float64)
            a -= a.mean(axis=0)  # (a run's own offset is no drift: the projection takes it off the shifts, pearson_r off the runs)
            g = q[:, 1:].T @ a  # (q[:, 0] is the constant: QR keeps the polynomials' nested spans)
            e_drift[j] += float(np.einsum("ij,ij->", g, g))
            e_tot[j] += float(np.einsum("ij,ij->", a, a))
    out = [q[:, 1:] if q is not None and e_drift[j] <= DRIFT_FREE_TOL * e_tot[j] else None for j, q in enumerate(qs)]
    return out if any(q is not None for q in out) else None


def _circular_shift_r(y: np.ndarray, preds: list[np.ndarray], shifts: list[tuple[int, ...]],
                      bases: list[np.ndarray | None] | None = None) -> list[np.ndarray]:
    """Voxel-wise r between ``y`` and the runs' predictions, each run circularly shifted by its entry of each shift tuple.

    Without ``bases``: equals ``pearson_r(y, concat(np.roll(pred_j, k_j, axis=0)))`` for every ``(k_j)`` in ``shifts``:
    the means, spreads and constant voxels of the concatenated prediction do not change when each run is rolled within
    itself, and the cross terms of all shifts of a run come from one FFT (circular cross-correlation), in chunks of
    voxels.

    With ``bases`` (one orthonormal drift basis ``Q_j`` or ``None`` per run, :func:`_drift_bases`): the targets of a run
    with a basis are detrended, so only the part of a prediction off the basis can correlate with them. Rolling a
    drift-free prediction puts slow content and a jump at the wrap point, which the target cannot match: the plain
    shifted r are too narrow a null, and unrelated slow series of 60 volumes passed the 5 % level 10-11 % of the time
    (benchmarks/check_shift_null_slow.py). So each rolled run (the prediction centred over all runs, as pearson_r
    does) is projected off its basis, ``x_kj = (I - Q_j Q_j^T) roll(pred_j, k_j)`` (a run without a basis is rolled
    only), and the cross product with the target is scaled by its own null spread, the spread it has when the target's
    Fourier phases are random::

        s_k^2 = sum_j sum_f |Y_j(f)|^2 |X_kj(f)|^2 / n_j^2                    (full DFTs of y_j and x_kj)
        r_k   = sum_j y_j . x_kj / (||y - mean(y)|| ||p - mean(p)||) * s_0 / s_k

    ``s_0`` the aligned prediction's (``k = 0``), so that ``r_0 = pearson_r(y, p)`` (up to the targets' rounding in
    the basis) and every shifted r is on the aligned r's scale. The projection alone, with the norm of ``x_k`` in place
    of ``s_k``, left 7-8 % on 60 volumes; weighting by the target's spectrum takes the jump's fast content (which slow
    targets hardly meet) out of the scale. ``Q_j^T roll(pred_j, k)`` and the cross terms of ``s_k`` for every ``k`` are
    circular cross-correlations too: a few FFTs per basis column, in the same voxel chunks (fewer voxels a chunk).

    Parameters
    ----------
    y : array, shape (n_volumes, n_voxels)
        The runs' targets, concatenated in the order of ``preds``.
    preds : list of array, shape (n_volumes_of_run, n_voxels)
    shifts : list of tuple of int
        One shift per run in each tuple.
    bases : list of (array, shape (n_volumes_of_run, n_columns) | None) | None
        Orthonormal drift bases of the runs (:func:`_drift_bases`); ``None``: no projection (the plain r).

    Returns
    -------
    list of array, shape (n_voxels,), float64
        NaN for a voxel constant in ``y`` or the prediction, as :func:`pearson_r` (and, with ``bases``, for a voxel
        whose aligned or shifted prediction has no part off the drift bases that the target's spectrum meets).
    """
    import scipy.fft as sfft  # (about twice numpy's FFT speed here: the null is a large share of scoring)

    from eeg2fmri.utils.stats import CHUNK_ELEMS

    lens = [len(pr) for pr in preds]
    n, m = y.shape
    starts = np.cumsum([0] + lens)
    out = [np.empty(m, dtype=np.float64) for _ in shifts]
    if bases is not None and all(q is None for q in bases):
        bases = None
    # arrays of (n, chunk) held at once: yc, pc, cross, spread, and per run the batched products (complex, c x n_f), h and
    # the spread's cross terms (c x n each)
    n_cols = 1 if bases is None else 4 + 3 * max(q.shape[1] for q in bases if q is not None)
    step = max(1, CHUNK_ELEMS // max(n * n_cols, 1))
    for c0 in range(0, m, step):
        sl = slice(c0, min(c0 + step, m))
        yc = np.array(y[:, sl], dtype=np.float64)
        pc = np.concatenate([np.asarray(pr[:, sl], dtype=np.float64) for pr in preds])
        yc -= yc.mean(axis=0)
        pc -= pc.mean(axis=0)
        yy = np.einsum("ij,ij->j", yc, yc)
        pp = np.einsum("ij,ij->j", pc, pc)
        norm = np.sqrt(yy * pp)
        const = (np.ptp(yc, axis=0) == 0) | (np.ptp(pc, axis=0) == 0)
        cross = []  # per run: sum_t y[t] p[t - k] for every k, shape (n_run, n_chunk)
        spread: list[np.ndarray] = []  # per run (with bases): s_j^2 for every k, shape (n_run, n_chunk) or (n_chunk,)
        for j, nj in enumerate(lens):
            a, b = yc[starts[j] : starts[j + 1]], pc[starts[j] : starts[j + 1]]
            fa, fb = sfft.rfft(a, axis=0), np.conj(sfft.rfft(b, axis=0))
            cr = sfft.irfft(fa * fb, n=nj, axis=0)
            if bases is not None:
                amp = (fa.real**2 + fa.imag**2) / float(nj) ** 2  # |Y_j(f)|^2 / n_j^2, half spectrum
                w = np.full(len(amp), 2.0)  # each half-spectrum bin stands for f and -f, but 0 and Nyquist
                w[0] = 1.0
                if nj % 2 == 0:
                    w[-1] = 1.0
                wamp = w[:, None] * amp
                s2 = np.einsum("fj,fj->j", wamp, fb.real**2 + fb.imag**2)  # sum_f |Y|^2 |B|^2 / n^2: the plain roll's
                q = bases[j]
                if q is not None:
                    nc = q.shape[1]
                    fq = sfft.rfft(q, axis=0)  # (n_f, n_columns)
                    g = q.T @ a  # the target's part in the basis (~0): off the cross products too
                    # Q^T roll(b, k) and the cross terms G_c(k) of the spread, for every k: one batched inverse FFT each
                    # (columns on a leading axis; the products built in place: the null is a large share of scoring)
                    prod = fq.T[:, :, None] * fb[None]  # (c, n_f, n_chunk)
                    h = sfft.irfft(prod, n=nj, axis=1)  # (c, n_run, n_chunk): Q^T roll(b, k)
                    cr -= np.einsum("cj,ckj->kj", g, h)
                    # s^2(k) = s2 - 2 sum_c h_c(k) G_c(k) + sum_cd h_c(k) h_d(k) M_cd, X_k = e^{-iwk} B - sum_c h_c(k) Q_c
                    prod *= amp[None]
                    gk = sfft.irfft(prod, n=nj, axis=1)  # (c, n_run, n_chunk)
                    del prod
                    gk *= h
                    s2 = s2 - (2.0 * nj) * gk.sum(0)
                    del gk
                    mix = fq[:, :, None] * np.conj(fq[:, None, :])  # (n_f, c, d)
                    mcd = (mix.real.reshape(len(mix), -1).T @ wamp).reshape(nc, nc, -1)  # M_cd per voxel
                    for c in range(nc):  # sum_cd h_c h_d M_cd = sum_c h_c (M_cc h_c + 2 sum_{d > c} M_cd h_d): M is symmetric
                        t = np.einsum("dj,dkj->kj", mcd[c, c + 1 :], h[c + 1 :]) if c + 1 < nc else np.zeros_like(h[c])
                        t *= 2.0
                        t += mcd[c, c] * h[c]
                        t *= h[c]
                        s2 += t
                spread.append(s2)
            cross.append(cr)
        if bases is not None:
            tiny = 1e-12 * yy * pp
            s0 = sum((v[0] if v.ndim == 2 else v) for v in spread)  # s_0^2
            s0 = np.where(s0 > tiny, s0, np.nan)
        for i, sh in enumerate(shifts):
            sxy = sum(cr[k % nj] for cr, k, nj in zip(cross, sh, lens))
            with np.errstate(divide="ignore", invalid="ignore"):
                if bases is None:
                    r = sxy / norm
                else:  # r on the aligned prediction's scale: sxy / norm * s_0 / s_k
                    sk = sum((v[k % nj] if v.ndim == 2 else v) for v, k, nj in zip(spread, sh, lens))  # s_k^2
                    r = sxy / (norm * np.sqrt(np.where(sk > tiny, sk, np.nan) / s0))
            r[const] = np.nan
            out[i][sl] = np.clip(r, -1.0, 1.0)
    return out


#: Seed of the subject resampling of the group intervals (:func:`hierarchical_draws`) when none is given.
GROUP_SEED = 0


def _group_seed(random_state: Any) -> int:
    """The seed of the group (subject-resampling) draws: the evaluation's integer seed, else :data:`GROUP_SEED`."""
    return int(random_state) if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool) else GROUP_SEED


def hierarchical_draws(draws: Sequence[np.ndarray], random_state: int | np.random.Generator | None = GROUP_SEED) -> np.ndarray:
    """Bootstrap draws of the mean over subjects, resampling subjects and then time (a two-level bootstrap).

    Draw ``b`` is the mean, over ``n_subjects`` subjects drawn with replacement, of one of each drawn
    subject's own draws (its block bootstrap over time), picked at random and independently for every
    copy of a subject drawn more than once (a subject drawn twice does not count the same time resample
    twice, which would count the within-subject variance about ``2 - 1/n_subjects`` times). The spread
    between subjects thus enters the interval of the mean, which a mean of the per-subject draws (subjects
    fixed) leaves out: the question a leave-one-subject-out score answers is how a model does on *another*
    subject. Every predictor gets the same subjects and time resamples (differences stay paired). One
    subject: its draws.

    Parameters
    ----------
    draws : sequence of array, shape (n_predictors, n_boot)
        Each subject's draws (the same number of resamples for all).
    random_state : int | Generator | None
        Seed of the subject resampling.

    Returns
    -------
    draws : array, shape (n_predictors, n_boot)
        Subjects drawn once per resample and shared by every predictor (paired differences stay paired).
    """
    stack = np.stack([np.asarray(d, dtype=np.float64) for d in draws])  # (n_sub, n_pred, n_boot)
    n_sub, _, nb = stack.shape
    if n_sub == 1:
        return stack[0]
    rng = check_random_state(random_state)
    pick = rng.integers(0, n_sub, size=(nb, n_sub))
    which = rng.integers(0, nb, size=(nb, n_sub))  # an independent time resample for every subject drawn
    return stack[pick, :, which].mean(axis=1).T


GROUP_NULL_DRAWS = 100_000
#: Fewer blocks than this in a subject's test span: its block-bootstrap intervals are marked as too narrow.
MIN_BOOT_BLOCKS = 5


def group_null_level(dists: Sequence[np.ndarray], random_state: int | np.random.Generator | None = GROUP_SEED,
                     n_draws: int = GROUP_NULL_DRAWS, level: float = NULL_LEVEL) -> float:
    """The level the mean over subjects of the median r must exceed: a 5 % test against the mean of one circular shift
    drawn per subject.

    Parameters
    ----------
    dists : sequence of array, shape (n_shifts_s,)
        Every subject's median r over the circular shifts of its prediction (:func:`_shift_null_distribution`), and
        its aligned median r (under no relation one of them at random: :func:`_group` appends it).
    random_state : int | Generator | None
        Seed of the draws (the result is reproducible from it).
    n_draws : int
        Means drawn (one shift per subject each, independently over subjects: under no relation every subject's aligned
        median r is one of its shifts at random, independently of the others').
    level : float
        Test level.

    Returns
    -------
    float
        :func:`_null_level` of the drawn means (one subject: that subject's own level over its shifts, exactly). The mean of the
        subjects' levels, used before, lies above it: averaging narrows the null distribution (user test 34: 0.145
        against 0.092 over four subjects).
    """
    ds = [np.asarray(d, dtype=np.float64) for d in dists]
    if len(ds) == 1:  # one subject: its own level, over its shifts (the aligned value, last, is no shift -- a review)
        return _null_level(ds[0][:-1], level) if len(ds[0]) > 1 else float("nan")
    ds = [d[np.isfinite(d)] for d in ds]
    if not ds or any(len(d) == 0 for d in ds):
        return float("nan")
    rng = check_random_state(random_state)
    means = np.zeros(int(n_draws))
    for d in ds:
        means += d[rng.integers(0, len(d), size=int(n_draws))]
    return _null_level(means / len(ds), level)


def group_roi_null_levels(pools: Sequence[Mapping[str, np.ndarray]], random_state: int | np.random.Generator | None = GROUP_SEED,
                          n_draws: int = GROUP_NULL_DRAWS, level: float = NULL_LEVEL, chunk: int = 64) -> dict[str, float]:
    """Per ROI, :func:`group_null_level` over the subjects whose pool holds that ROI: the level the mean over those
    subjects of its r must exceed.

    Parameters
    ----------
    pools : sequence of dict
        One per subject: ROI key -> array, shape (n_shifts_s + 1,), the ROI's r over the subject's circular shifts and its
        aligned r (every ROI of a subject over the same shifts). A pool with a non-finite value leaves that subject out
        of that ROI's level.
    random_state, n_draws, level
        As in :func:`group_null_level`; one set of shift indices is drawn per subject and used for all its ROIs (an ROI
        every subject holds gets exactly :func:`group_null_level`'s value; an ROI only one subject holds, that subject's
        own level over its shifts).
    chunk : int
        ROIs drawn at once (memory: ``n_draws * chunk`` floats).

    Returns
    -------
    dict
        ROI key -> level (NaN for an ROI no subject has a finite pool of).
    """
    rng = check_random_state(random_state)
    keys = sorted({k for p in pools for k in p}, key=lambda k: (len(k), k))
    subs = [p for p in pools if p]
    if not keys:
        return {}
    if len(subs) == 1:  # its own level over its shifts (the aligned r, last, is no shift -- a review)
        return {k: (_null_level(np.asarray(subs[0][k], dtype=np.float64)[:-1]) if k in subs[0] and np.isfinite(subs[0][k]).all()
                    else float("nan")) for k in keys}
    from eeg2fmri.utils.stats import circular_shift_level

    sizes = [len(next(iter(p.values()))) for p in subs]
    draws = [rng.integers(0, n, size=int(n_draws)) for n in sizes]  # (subject by subject, as group_null_level draws)
    out: dict[str, float] = {}
    for c0 in range(0, len(keys), chunk):
        ck = keys[c0:c0 + chunk]
        total = np.zeros((len(ck), int(n_draws)))  # (ROI, draw): each ROI's draws contiguous
        count = np.zeros(len(ck))
        only: dict[int, np.ndarray] = {}  # an ROI's pool while it is the only one (one subject: its own level, below)
        for p, idx in zip(subs, draws):
            for j, k in enumerate(ck):
                pool = np.asarray(p[k], dtype=np.float64) if k in p else None
                if pool is not None and np.isfinite(pool).all():
                    total[j] += pool[idx]  # (row by row: faster than one fancy index over the chunk)
                    count[j] += 1
                    only[j] = pool
        for j, k in enumerate(ck):
            if count[j] == 1:  # one subject holds it: its own level over its shifts, as with one subject in all (a review)
                out[k] = _null_level(only[j][:-1], level)
            else:
                out[k] = float(circular_shift_level(total[j] / count[j], level)) if count[j] else float("nan")
    return out


def _group(per_subject: dict[str, dict], draws: dict[str, np.ndarray | None], names: list[str], r_names: list[str], reference: str | None,
           ci: float, extra_keys: tuple[str, ...] = (), random_state: int | np.random.Generator | None = GROUP_SEED) -> dict[str, Any]:
    """Means over subjects; CIs of the mean median r from draws that resample subjects, then time (:func:`hierarchical_draws`)."""
    subs = sorted(per_subject)
    out: dict[str, Any] = {"n_subjects": len(subs), "models": {}, "paired": {}}
    scalar_keys = ("median_r", "null_median_r", "null_p95_median_r", "rmse", "mae", "r2", "ssim", "psnr", "calhas_rmse", "calhas_ssim", "roi_median_r",
                   "median_r_in_groundtruth_mask", "fraction_of_noise", "fraction_of_oracle") + tuple(extra_keys)
    have_draws = all(draws.get(s) is not None for s in subs) and subs
    mean_draws = hierarchical_draws([draws[s] for s in subs], random_state) if have_draws else None
    if mean_draws is not None:
        out["bootstrap"] = {"subjects": "resampled with replacement in every draw, then each drawn subject's block-bootstrap draw "
                                        "(two-level bootstrap)" if len(subs) > 1 else "one subject: its block-bootstrap draws"}
    for nm in names:
        g: dict[str, Any] = {}
        for key in scalar_keys:
            vals = [per_subject[s]["models"][nm].get(key) for s in subs]
            have = [v for v in vals if isinstance(v, float)]
            if not have:
                continue
            ok = [v for v in have if np.isfinite(v)]
            g[key] = float(np.mean(ok)) if ok else float("nan")
            if ok and len(ok) < len(subs):  # a subject without it (a short test span: no null distribution) or with NaN
                g.setdefault("n_subjects_with", {})[key] = len(ok)  # the mean is over these subjects only: recorded, not hidden
        # the level of the mean over subjects (each subject's pool: its shifts and its aligned value, as for one subject);
        # subjects without a null (a short test span) are left out of the level and of the median r it is compared with
        have = [s for s in subs if per_subject[s]["models"][nm].get("null_median_r_shifts")
                and isinstance(per_subject[s]["models"][nm].get("median_r"), float) and np.isfinite(per_subject[s]["models"][nm]["median_r"])]
        if len(subs) > 1 and have:
            pools = [np.append(np.asarray(per_subject[s]["models"][nm]["null_median_r_shifts"], dtype=np.float64),
                               per_subject[s]["models"][nm]["median_r"]) for s in have]
            g["null_p95_median_r"] = group_null_level(pools, random_state)
            g["null_level_over_subjects"] = "the 5 % level of the mean of one circular shift drawn per subject"
            if len(have) < len(subs):
                g["null_level_over_subjects"] += f" (the {len(have)} of {len(subs)} subjects with a null)"
                g["median_r_subjects_with_null"] = float(np.mean([per_subject[s]["models"][nm]["median_r"] for s in have]))
        # per ROI likewise (subjects whose test span had a null for that ROI): the level of the mean over them
        roi_pools = [per_subject[s].get("_roi_pools", {}).get(nm) for s in subs]
        roi_pools = [p for p in roi_pools if p]
        if len(subs) > 1 and roi_pools:
            g["roi_null_p95"] = group_roi_null_levels(roi_pools, random_state)
            with_null: dict[str, list[float]] = {}
            for s in subs:
                pool = per_subject[s].get("_roi_pools", {}).get(nm) or {}
                for k, v in (per_subject[s]["models"][nm].get("roi_r") or {}).items():
                    if k in pool and np.isfinite(pool[k]).all():
                        with_null.setdefault(k, []).append(float(v))
            g["roi_r_subjects_with_null"] = {k: float(np.mean(v)) for k, v in with_null.items()}
        if mean_draws is not None and nm in r_names:
            g["median_r_ci"] = _interval(mean_draws[r_names.index(nm)], ci, g.get("median_r"))
        out["models"][nm] = g
    if mean_draws is not None and reference in r_names:
        jr = r_names.index(reference)
        for j, nm in enumerate(r_names):
            if nm == reference:
                continue
            d = mean_draws[j] - mean_draws[jr]
            lo, hi = _interval(d, ci)
            out["paired"][nm] = {"vs": reference, "diff_median_r": out["models"][nm]["median_r"] - out["models"][reference]["median_r"],
                                 "low": lo, "high": hi, "p_value": bootstrap_p_value(d)}
    ce = [per_subject[s].get("ceilings") for s in subs]
    if subs and all(c is not None for c in ce):
        out["ceilings"] = {"noise_median_r": float(np.mean([c["noise_median_r"] for c in ce])),
                           "oracle_median_r": float(np.mean([c["oracle_median_r"] for c in ce]))}
    return out


def score_runs(
    runs: list[dict[str, Any]],
    names: list[str],
    mask: np.ndarray | None,
    tr: float,
    *,
    reference: str | None = REFERENCE,
    baseline: str | None = BASELINE,
    labels: np.ndarray | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    block_len: int | None = None,
    ci: float = 0.95,
    random_state: int | np.random.Generator | None = 0,
    ssim_volumes: int = DEFAULT_SSIM_VOLUMES,
    extra_metrics: Mapping[str, Callable] | None = None,
) -> dict[str, Any]:
    """Score predictions that are already computed (no model involved).

    Parameters
    ----------
    runs : list of dict
        One per test run: ``key`` (str), ``subject`` (str), ``y`` (measured,
        ``(n, n_voxels)``), ``preds`` (name -> ``(n, n_voxels)``), and
        optionally ``volumes`` and ``ceilings`` (from
        :func:`groundtruth_ceilings`, or ``None``).
    names : list of str
        Predictors to score (keys of every run's ``preds``).
    mask : array of bool, shape (X, Y, Z) | None
        Brain mask of the voxel columns (for SSIM and the peers' metrics); ``None`` for targets without a voxel grid
        (region tables).
    tr : float
        Repetition time (s): the default bootstrap block length, and the drift basis of targets detrended per run
        (``split_targets``), whose circular-shift nulls are drift-projected (:func:`_circular_shift_r`).
    reference, baseline : str | None
        Names of the reference (paired comparisons) and of the constant
        baseline (no r) among ``names``.
    labels : array of int, shape (n_voxels,) | None
        ROI labels for ROI r.
    n_boot, block_len, ci, random_state, ssim_volumes
        As in :func:`evaluate_models`.

    Returns
    -------
    core : dict
        ``per_subject``, ``group``, ``runs`` (see :func:`evaluate_models`),
        plus ``_draws`` and ``_r_names``.
    """
    r_names = [nm for nm in names if nm != baseline]
    by_subject: dict[str, list[dict[str, Any]]] = {}
    for rr in runs:
        rr.setdefault("ceilings", None)
        rr.setdefault("volumes", np.arange(len(rr["y"])))
        by_subject.setdefault(rr["subject"], []).append(rr)
    extra = _check_extra_metrics(extra_metrics)  # (before any scoring)
    rng = check_random_state(random_state)
    per_subject: dict[str, dict] = {}
    draws: dict[str, np.ndarray | None] = {}
    runs_out: dict[str, dict] = {}
    for subj in sorted(by_subject):
        sruns = by_subject[subj]
        res, d = _score_subject(subj, sruns, names, r_names, reference if reference in names else None, mask, labels, tr, n_boot=n_boot,
                                block_len=block_len, ci=ci, rng=rng, ssim_volumes=ssim_volumes, extra_metrics=extra_metrics)
        per_subject[subj] = res
        draws[subj] = d
        for rr in sruns:
            y = rr["y"]
            one: dict[str, Any] = {"subject": subj, "n_test": int(len(y)), "models": {}, "_preds": rr["preds"], "_y": y, "_volumes": rr["volumes"]}
            for nm in names:
                p = rr["preds"][nm]
                if len(sruns) == 1:  # the subject's own numbers
                    sm = res["models"][nm]
                    mm: dict[str, Any] = {"rmse": sm["rmse"], "r2": sm["r2"]}
                    if nm in r_names:
                        mm.update(median_r=sm["median_r"], null_median_r=sm["null_median_r"], _r=res["_r"][nm])
                else:
                    mm = {"rmse": rmse(y, p), "r2": _r2(y, p)}
                    if nm in r_names:
                        r = np.asarray(pearson_r(y, p), dtype=np.float64)
                        # (the half-shift null of the run, as the subject's: drift-projected on detrended targets; a review)
                        half = _circular_shift_r(np.asarray(y), [p], [(len(p) // 2,)], bases=_drift_bases(np.asarray(y), [len(y)], tr))[0]
                        mm.update(median_r=_nanmedian(r), null_median_r=_nanmedian(half), _r=r)
                one["models"][nm] = mm
            runs_out[rr["key"]] = one
    # the group draws from their own seed, not from what the subject draws left of rng, so that merge_results (benchmark)
    # gives the same group CI for the same predictions (user test 21: [-0.0018, 0.0265] vs [0.0011, 0.0279])
    group = _group(per_subject, draws, names, r_names, reference if reference in names else None, ci, extra, _group_seed(random_state))
    return {"per_subject": per_subject, "group": group, "runs": runs_out, "_draws": draws, "_r_names": r_names, "_extra_metrics": list(extra)}


# --------------------------------------------------------------------------- entry points


class _OnView:
    """A model fitted on another view of the same volumes (band-power windows of an STFT/raw dataset)."""

    kind = "sklearn"

    def __init__(self, model: Any, view: PreparedDataset, split: Split, note: str) -> None:
        self.model, self.view, self.split, self.note = model, view, split, note

    def windows(self, run_index: int, volumes: np.ndarray) -> np.ndarray:
        return run_windows(self.view.runs[run_index], volumes, self.split.n_frames, self.split.lag)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict(x)


class _OnPhysio(_OnView):
    """A ridge from the physiological regressors of each volume (:attr:`PreparedRun.physio`) to its targets."""

    def __init__(self, model: Any, ds: PreparedDataset, names: list[str]) -> None:
        super().__init__(model, ds, None, "a ridge from the physiological regressors alone (RETROICOR, lagged heart rate and "
                                         f"respiration volume: {len(names)} columns), no EEG")
        self.names = list(names)

    def windows(self, run_index: int, volumes: np.ndarray) -> np.ndarray:
        return np.asarray(self.view.runs[run_index].physio, dtype=np.float32)[np.asarray(volumes)]


def physiology_model(ds: PreparedDataset, split: Split, targets: dict) -> tuple[Any, str | None]:
    """The physiology-only model: a ridge (penalty by generalised cross-validation on the training windows) from every
    volume's physiological regressors to its targets, fitted on the split's training windows.

    Parameters
    ----------
    ds : PreparedDataset
        Its runs' ``physio`` (prepare stores them where the recordings hold a cardiac or respiration trace).
    split : Split
    targets : dict
        ``split_targets(ds, split)``.

    Returns
    -------
    model : object | None
        Pass it among the models of :func:`evaluate_models` (under :data:`PHYSIOLOGY`); it reads its own windows.
    reason : str | None
        Why there is none: a run of the split without regressors, or runs with different ones.
    """
    used = sorted({i for sel in split.selections.values() for i in sel})
    missing = [ds.runs[i].key for i in used if ds.runs[i].physio is None]
    if missing:
        return None, f"no physiological regressors for run(s) {missing[:3]} (no cardiac or respiration trace, or none usable)"
    names = {tuple(ds.runs[i].physio_names or ()) for i in used}
    if len(names) != 1:
        return None, "the runs' physiological regressors differ (a trace some runs lack): " + " vs ".join(sorted(",".join(n[:2]) + "..." for n in names))
    train = split.selections.get("train") or {}
    if not train:
        return None, "no training windows"
    x = np.concatenate([np.asarray(ds.runs[i].physio, dtype=np.float64)[np.asarray(v)] for i, v in train.items()])
    model = _LooRidge().fit(x, [targets["train"][i] for i in train])
    return _OnPhysio(model, ds, list(next(iter(names)))), None


def physiology_row(ds: PreparedDataset, protocol: str) -> tuple[bool, str | None]:
    """Whether an evaluation of ``ds`` under ``protocol`` gets the physiology-only row (:func:`physiology_model`), and why not.

    There is a row where every run with BOLD holds the same physiological regressors (prepare stores them from the ECG /
    belt channels or BIDS physio files) and the protocol is not ``"cross"`` (``benchmark`` and ``evaluate`` apply the
    same rule).

    Parameters
    ----------
    ds : PreparedDataset
    protocol : str
        ``"cross"`` (another dataset's test windows) gets no row.

    Returns
    -------
    row : bool
    reason : str | None
        Why there is no row where some run holds regressors (for the notes: the row should not go in silence); ``None``
        where there is a row or where no run holds any.
    """
    names = {tuple(r.physio_names or ()) if r.physio is not None else None for r in ds.runs if r.bold is not None}
    row = protocol != "cross" and len(names) == 1 and None not in names
    if row or not any(r.physio is not None for r in ds.runs):
        return row, None
    return False, ("not with protocol 'cross'" if protocol == "cross" else
                   f"{sum(r.physio is None for r in ds.runs if r.bold is not None)} run(s) have no usable physiological regressors"
                   if None in names else "the runs' physiological regressors differ (a trace some runs lack)")


def physiology_not_above(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Names of the models and references whose median r is positive and no higher than the physiology-only row's.

    Parameters
    ----------
    rows : sequence of mapping
        Rows with ``name``, ``role`` (``"model"``, ``"reference"``, ``"physiology"``, ...) and ``median_r``
        (benchmark's leaderboard rows, or evaluate's models).

    Returns
    -------
    names : list of str
        Empty where there is no physiology-only row with a positive median r.
    """
    phys = next((r for r in rows if r.get("role") == "physiology" and isinstance(r.get("median_r"), float)), None)
    if phys is None or not phys["median_r"] > 0:
        return []
    v = phys["median_r"]
    return [r["name"] for r in rows if r.get("role") in ("model", "reference") and isinstance(r.get("median_r"), float)
            and math.isfinite(r["median_r"]) and 0 < r["median_r"] <= v]


def physiology_notes(rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Notes about physiology for a table of rows: where the recordings carry ECG/respiration channels and no confounds
    were regressed from the BOLD (user test 57: the pulse artefact and breathing drifts in the EEG predicted the BOLD's
    physiological noise, and the whole-mask r, the time-shifted null and the ROI chance marks credited the EEG for it);
    what the physiology-only row says; and why there is none.

    Parameters
    ----------
    rows : sequence of mapping
        Rows with ``name``, ``role`` and ``median_r``; the reference row carries the dataset's facts:
        ``physiology_unregressed`` (:func:`~eeg2fmri.datasets.prepared.physiology_unregressed`) and ``physiology_row``
        (the reason of :func:`physiology_row`).

    Returns
    -------
    notes : dict of str to str
        ``"physiological recordings"``, ``"physiology only"`` and ``"no physiology-only row"``, each where it applies, in
        that order.
    """
    out: dict[str, str] = {}
    ref = next((r for r in rows if r.get("role") == "reference" and r.get("physiology_unregressed")), None)
    phys = next((r for r in rows if r.get("role") == "physiology" and isinstance(r.get("median_r"), float)), None)
    if ref is not None:
        kinds = ", ".join(ref["physiology_unregressed"])
        out["physiological recordings"] = (
            f"the data include physiological recordings ({kinds}) and no confounds were regressed from the BOLD: the EEG's pulse "
            "artefact and breathing drifts share the cardiac and respiratory rhythms with the BOLD's physiological noise (ventricles, "
            "vessels), and the r above, the time-shifted null and the ROI chance marks cannot tell that from neural coupling "
            "(user test 57: whole-mask r 0.064 'above chance', 0.002 once physiological regressors were removed); prepare again "
            "with the physiological noise regressed (prepare option physio: \"regress\" -- RETROICOR, heart rate and respiration "
            "volume from those channels; or confounds: fMRIPrep's CSF / white-matter columns) and compare")
    if phys is not None:
        v = phys["median_r"]
        regressed = any(r.get("role") == "reference" and not r.get("physiology_unregressed") for r in rows) and ref is None
        below = physiology_not_above(rows)
        out[PHYSIOLOGY] = (f"'{PHYSIOLOGY}' is a ridge from the physiological regressors alone (RETROICOR, heart rate and respiration "
                           f"volume delayed 0-16 s; no EEG), fitted on the training windows and scored on the same test windows: median r {v:.3f}"
                           + (f"; {', '.join(below)} score{'s' if len(below) == 1 else ''} no higher: compare the per-ROI table (the "
                              "physiology's regions: ventricles, vessels) before crediting the EEG" if below else "")
                           + ("; where prepare regressed these regressors from the BOLD (physio option), about 0 by construction"
                              if regressed and abs(v) < 0.05 else ""))
    no_row = next((r.get("physiology_row") for r in rows if r.get("role") == "reference" and r.get("physiology_row")), None)
    if no_row:
        out["no physiology-only row"] = f"no '{PHYSIOLOGY}' row: {no_row}"
    return out


class _LooRidge:
    """Ridge regression with an intercept and one penalty for every target, the penalty with the least exact leave-one-out
    squared error summed over targets (as scikit-learn's ``RidgeCV`` chooses it by generalised cross-validation), for
    few inputs and many targets: the targets are read in column blocks (float64 one block at a time), so memory stays
    near one copy of them in their own dtype (a review: RidgeCV's float64 copies took 1.9 GB for 2000 x 20k targets)."""

    alphas = np.logspace(-1, 5, 13)
    block = 4096

    def fit(self, x: np.ndarray, y_parts: list[np.ndarray]) -> _LooRidge:
        x = np.asarray(x, dtype=np.float64)
        n = len(x)
        self.x_mean_ = x.mean(axis=0)
        u, s, vt = np.linalg.svd(x - self.x_mean_, full_matrices=False)
        keep = s > (s.max() if len(s) else 0.0) * max(x.shape) * np.finfo(np.float64).eps
        u, s, vt = u[:, keep], s[keep], vt[keep]
        n_out = int(y_parts[0].shape[1])
        uty = np.empty((len(s), n_out))
        y_mean = np.empty(n_out)
        err = np.zeros(len(self.alphas))
        shrink = [s**2 / (s**2 + a) for a in self.alphas]
        loo = [1.0 - 1.0 / n - (u**2) @ d for d in shrink]  # 1 - the hat matrix's diagonal (the intercept's 1/n included)
        for j in range(0, n_out, self.block):
            yb = np.concatenate([np.asarray(p[:, j : j + self.block], dtype=np.float64) for p in y_parts])
            y_mean[j : j + self.block] = yb.mean(axis=0)
            yb -= y_mean[j : j + self.block]
            uty[:, j : j + self.block] = u.T @ yb
            for k, (d, one_minus_h) in enumerate(zip(shrink, loo)):
                r = (yb - u @ (d[:, None] * uty[:, j : j + self.block])) / one_minus_h[:, None]
                err[k] += float(np.einsum("ij,ij->", r, r))
        best = int(np.argmin(err))
        self.alpha_ = float(self.alphas[best])
        self.coef_ = (vt.T @ ((s / (s**2 + self.alpha_))[:, None] * uty)).astype(np.float32)  # (n_inputs, n_targets)
        self.intercept_ = (y_mean - self.x_mean_ @ self.coef_).astype(np.float32)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float32) @ self.coef_ + self.intercept_


def _fit_reference(ds: PreparedDataset, split: Split, targets: dict, name: str, hparams: dict | None = None) -> tuple[Any, str | None]:
    """Fit ``name`` (with ``hparams``) on the split's training windows; (model, None) or (None, reason)."""
    from eeg2fmri.training.fit import fit_model

    if not split.selections.get("train"):
        return None, "no training windows in this split (pass the fitted model)"
    if name == REFERENCE and ds.representation != "bandpower":
        from eeg2fmri.datasets.targets import split_targets
        from eeg2fmri.evaluation.reference import bandpower_view

        try:
            view, vsplit = bandpower_view(ds, split)
        except ValueError as err:
            return None, f"ridge_hrf needs band-power windows and none could be derived from the {ds.representation} windows: {err}"
        model = fit_model(view, vsplit, name, hparams, targets=split_targets(view, vsplit)).model
        return _OnView(model, view, vsplit, f"fitted on band-power windows derived from the {ds.representation} data of the same volumes"), None
    return fit_model(ds, split, name, hparams, targets=targets).model, None


def reference_model(ds: PreparedDataset, split: Split, targets: dict) -> tuple[Any, str | None]:
    """The reference ``ridge_hrf`` fitted on the split's training windows, as the evaluation fits it.

    On band-power data on its windows; on STFT, raw or tangent data on band-power windows of the same
    volumes (:func:`eeg2fmri.evaluation.reference.bandpower_view`; for tangent data its band-power
    block), wrapped so that :func:`evaluate_split` / :func:`evaluate_models` read those windows.

    Parameters
    ----------
    ds : PreparedDataset
    split : Split
    targets : dict
        ``split_targets(ds, split)``.

    Returns
    -------
    model : object | None
        The fitted reference (pass it as ``reference=``), or None.
    reason : str | None
        Why there is none (e.g. no band below the raw data's Nyquist frequency).
    """
    return _fit_reference(ds, split, targets, REFERENCE)


def _region_labels(rois: dict, n: int) -> np.ndarray:
    """The label of each of the ``n`` output regions: the atlas's own (``rois["labels"]``, positive distinct integers),
    else 1..n (region tables without labels)."""
    lab = rois.get("labels") if isinstance(rois, dict) else None
    try:
        arr = np.asarray(lab, dtype=np.int64).reshape(-1) if lab is not None else None
    except (TypeError, ValueError):
        arr = None
    if arr is None or len(arr) != n or len(np.unique(arr)) != n or (arr <= 0).any():
        return np.arange(1, n + 1)
    return arr


def _region_voxels(rois: dict, n: int, labels: np.ndarray | None = None) -> dict[str, int] | None:
    """Voxels of each output ROI of a dataset prepared with an atlas (keyed like ``roi_r``: the region labels, 1..n by
    default); ``None`` for region tables, whose regions have no voxels here (a review: the report's column said 1 for
    every region)."""
    w = rois.get("weights") if isinstance(rois, dict) else None
    if not w or "rows" not in w:
        return None
    keys = np.arange(1, n + 1) if labels is None else np.asarray(labels)
    counts = np.bincount(np.asarray(w["rows"], dtype=np.int64), minlength=n)[:n]
    return {str(int(k)): int(c) for k, c in zip(keys, counts)}


def _roi_names(atlas: Any) -> dict[str, str] | None:
    """ROI names from a TSV beside an atlas file (``index``/``label`` and ``name`` columns), keyed like ``roi_r``."""
    if not isinstance(atlas, (str, os.PathLike)):
        return None
    from eeg2fmri.preprocessing.atlas import label_names_beside

    names = label_names_beside(atlas)
    return None if not names else {str(int(k)): str(v) for k, v in names.items()}


def evaluate_models(
    ds: PreparedDataset,
    split: Split,
    targets: dict,
    models: Mapping[str, Any],
    *,
    baseline: Any | None = None,
    reference: Any | None = None,
    fit_missing: bool = True,
    atlas: Any = None,
    n_boot: int = DEFAULT_N_BOOT,
    block_len: int | None = None,
    ci: float = 0.95,
    random_state: int | np.random.Generator | None = 0,
    ssim_volumes: int = DEFAULT_SSIM_VOLUMES,
    batch_size: int = 256,
    progress_bar: bool = False,
    extra_metrics: Mapping[str, Callable] | None = None,
    keep_predictions: bool = False,
) -> dict[str, Any]:
    """Score several fitted models, the reference and the baselines on a split's test set.

    Parameters
    ----------
    ds : PreparedDataset
    split : Split
        Its ``test`` selection is scored; its ``train`` selection fits missing
        baselines.
    targets : dict
        From :func:`eeg2fmri.datasets.targets.split_targets` (needs ``"test"``).
    models : mapping of str to fitted model
        Name -> model with ``predict(x)`` (or a torch module). A model named
        ``"ridge_hrf"`` or ``"mean"`` is used as the reference or baseline.
    baseline : fitted ``mean`` model | None
        Subject-mean baseline; fitted on the training windows when ``None``.
    reference : fitted ``ridge_hrf`` model | None
        Reference model; fitted on the training windows when ``None`` (band-
        power datasets with training windows; otherwise the reason is recorded
        in ``results["reference"]``).
    fit_missing : bool
        Fit missing baseline/reference (``False`` leaves them out).
    atlas : path-like | image | array | None
        ROI labels on the data grid (see :func:`load_labels`) for ROI r.
    n_boot : int
        Block-bootstrap resamples per subject (0 skips the CIs).
    block_len : int | None
        Bootstrap block length in volumes (default: measured per subject, :func:`measured_block_len`).
    ci : float
        Coverage of the intervals.
    random_state : int | Generator | None
        Seed of the bootstrap.
    ssim_volumes : int
        SSIM volumes per subject (evenly spaced; recorded).
    batch_size : int
        Windows per forward pass of torch models.
    progress_bar : bool
    extra_metrics : mapping | None
        Metrics of your own, ``{"name": fn}`` with ``fn(y_true, y_pred) -> float`` on one subject's test
        windows (arrays ``(n_windows, n_voxels)``, z units): computed for every model next to the
        built-in ones (``per_subject[s]["models"][m]["name"]``) and averaged over subjects in ``group``.
    keep_predictions : bool
        Also return every test run's targets and predictions (``results["_predictions"]``: run key -> ``subject``,
        ``volumes`` (indices into the run), ``y`` and ``preds`` (name -> array, shape (n_windows, n_outputs)), as
        scored; :func:`save_predictions` writes them).

    Returns
    -------
    results : dict
        ``protocol``, ``models`` (names scored, in order), ``roles``
        (``reference``, ``baseline``), ``reference`` (availability),
        ``per_subject`` (see the module docstring), ``group`` (means over
        subjects with CIs and the paired comparison), ``runs`` (per-run point
        estimates), ``settings``. Keys starting with ``_`` hold arrays (voxel
        r, predictions) for figures; :func:`results_to_json` drops them.
    """
    n_boot = int(n_boot)
    if n_boot < 0:
        raise Eeg2fmriInputError(f"evaluate: expected n_boot >= 0, got {n_boot}; pass e.g. n_boot=200 (0 skips the CIs).")
    ssim_volumes = check_positive_int(ssim_volumes, "ssim_volumes", where="evaluate")
    if not (0.0 < float(ci) < 1.0):
        raise Eeg2fmriInputError(f"evaluate: expected 0 < ci < 1, got {ci}; e.g. ci=0.95.")
    if not split.selections.get("test"):
        raise Eeg2fmriInputError(f"split ({split.protocol}): expected a test selection, found none; make the split with a test span (a test share in fractions, e.g. [0.6, 0.2, 0.2]) or test subjects.")
    models = dict(models)
    if not models:
        raise Eeg2fmriInputError("evaluate: expected at least one model to score, got none.")
    ref_status: dict[str, Any] = {"name": REFERENCE, "available": True, "fitted_here": False}
    to_fit = [nm for nm, have, given in ((REFERENCE, REFERENCE in models, reference), (BASELINE, BASELINE in models, baseline))
              if fit_missing and not have and given is None]
    if to_fit:  # (user test 40: the reference's fit took minutes on a whole-brain grid with nothing on screen)
        logger.info("evaluate: fitting %s on the training windows (compared with every model)", " and ".join(to_fit))
    fitted_here = {nm: _fit_reference(ds, split, targets, nm)
                   for nm in progress(to_fit, desc=f"fit {' and '.join(to_fit)} on the training windows", enabled=progress_bar and bool(to_fit))}
    if REFERENCE in models:
        reference = models[REFERENCE]
    elif REFERENCE in fitted_here:
        reference, reason = fitted_here[REFERENCE]
        ref_status["fitted_here"] = reference is not None
        if reason:
            ref_status.update(available=False, reason=reason)
        elif isinstance(reference, _OnView):
            ref_status["note"] = reference.note
    elif reference is None:
        ref_status.update(available=False, reason="not requested (fit_missing=False)")
    if BASELINE in models:
        baseline = models.pop(BASELINE)
    elif BASELINE in fitted_here:
        baseline = fitted_here[BASELINE][0]
    names = list(models)
    if reference is not None and REFERENCE not in models:
        models[REFERENCE] = reference
        names.append(REFERENCE)
    if baseline is not None:
        models[BASELINE] = baseline
        names.append(BASELINE)
    r_names = [nm for nm in names if nm != BASELINE]
    ref_name = REFERENCE if REFERENCE in models else None
    grid = getattr(ds, "has_grid", True)
    rois = getattr(ds, "rois", None)
    regions = isinstance(rois, dict) and rois.get("names") is not None and len(rois["names"]) == ds.n_outputs  # outputs are regions
    if regions and atlas is not None:
        what = "region tables (no voxel grid)" if not grid else f"the ROIs of the atlas it was prepared with ({rois.get('source')})"
        raise Eeg2fmriInputError(f"atlas {atlas}: the dataset's targets are {ds.n_outputs} regions, {what}, so another atlas cannot group "
                                 "them; leave the atlas out: every region is scored on its own (roi_r).")
    labels = None if atlas is None else load_labels(atlas, ds.mask, ds.affine)
    region_labels = _region_labels(rois, ds.n_outputs) if regions else None
    if regions:  # region targets (tables, or an atlas's ROIs): each output is its own ROI (per-region r, named, with its chance level),
        labels = region_labels  # keyed by the atlas's own labels (user test 37: labels 10, 20, 50 were scored as 1, 2, 3)
    n_vox = ds.n_outputs  # voxels of the mask, or the ROIs of an atlas
    trained_subjects = {ds.runs[i].subject for i in split.selections.get("train", {})}
    train_index = {s: k for k, s in enumerate(ds.subjects)}

    by_subject: dict[str, list[dict[str, Any]]] = {}
    for i, vols in progress(split.selections["test"].items(), desc="evaluate runs", enabled=progress_bar):
        run = ds.runs[i]
        x = run_windows(run, vols, split.n_frames, split.lag)
        y = np.asarray(targets["test"][i], dtype=np.float32)
        sidx = train_index.get(run.subject) if run.subject in trained_subjects else None
        preds = {nm: predict_windows(models[nm], models[nm].windows(i, vols) if isinstance(models[nm], _OnView) else x, n_outputs=n_vox,
                                     mask=ds.mask, subject=run.subject, subject_index=sidx, batch_size=batch_size) for nm in names}
        for nm, p in preds.items():
            if len(p) != len(y):
                raise Eeg2fmriInputError(f"{run.key}: {nm} returned {len(p)} predictions for {len(y)} test windows.")
        by_subject.setdefault(run.subject, []).append(
            {"index": i, "key": run.key, "subject": run.subject, "volumes": np.asarray(vols), "y": y, "preds": preds,
             "ceilings": groundtruth_ceilings(ds, i, vols) if grid and n_vox == int(ds.mask.sum()) else None})  # (voxel ceilings; none for ROIs)

    core = score_runs([rr for subj in sorted(by_subject) for rr in by_subject[subj]], names, ds.mask if grid else None, ds.tr, reference=ref_name,
                      baseline=BASELINE if BASELINE in models else None, labels=labels, n_boot=n_boot, block_len=block_len, ci=ci,
                      random_state=random_state, ssim_volumes=ssim_volumes, extra_metrics=extra_metrics)
    r_names, per_subject, draws, runs_out, group = core["_r_names"], core["per_subject"], core["_draws"], core["runs"], core["group"]
    shortest = min((int(v.get("n_test", 0)) for v in per_subject.values()), default=0)
    if 0 < shortest < _FEW_TEST_WINDOWS:
        short = sorted(s_ for s_, v in per_subject.items() if int(v.get("n_test", 0)) < _FEW_TEST_WINDOWS)
        if len(ds.subjects) < 2:  # (user test 38: one subject was told to hold out whole subjects or leave itself out)
            logger.warning("the test span has %d windows (subject %s, the dataset's only subject): its r and every CI are very uncertain; "
                           "use a longer recording, or give the test a larger share of it (split option fractions, e.g. "
                           "[0.6, 0.2, 0.2] -> [0.5, 0.2, 0.3]).", shortest, ", ".join(short))
        else:
            logger.warning("the shortest test span has %d windows (per subject; subject(s) %s): its r and every CI are very uncertain, each "
                           "subject counts equally in the group median, and the ranking of models may not hold; use longer recordings (quickstart "
                           "and simulate: --minutes), hold out whole subjects (protocol loso: evaluate/benchmark --protocol loso), or leave the "
                           "short subject(s) out (train/tune: data.subjects in the config; prepare/evaluate: --subjects; benchmark: "
                           "--train-config '{\"data\": {\"subjects\": [...]}}').", shortest, ", ".join(short))
    kept = ({rr["key"]: {"subject": rr["subject"], "volumes": rr["volumes"], "y": rr["y"], "preds": rr["preds"],
                         **_file_volumes(ds, rr["index"], rr["volumes"])}
             for subj in sorted(by_subject) for rr in by_subject[subj]} if keep_predictions else None)
    return {
        **({"_predictions": kept} if kept is not None else {}),
        "protocol": split.protocol,
        "models": names,
        "roles": {"reference": ref_name, "baseline": BASELINE if BASELINE in models else None,
                  "null": "each model's own prediction circularly shifted by half of each test run"},
        "reference": ref_status,
        "per_subject": per_subject,
        "group": group,
        "runs": runs_out,
        "settings": {"seed": int(random_state) if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool) else None,
                     "n_boot": n_boot, "block_len": block_len if block_len is not None else "measured per subject: twice the lag where the reference's residual autocorrelation falls below 0.1, at least max(ceil(16 s / TR), round(n ** (1/3)))",
                     "ci": float(ci), "ssim_volumes_max": int(ssim_volumes), "ssim_window": "Gaussian, sigma 1.5 voxels, truncate 3.5",
                     "data_range": "per subject: 1st-99th percentile range of the measured test data in the mask",
                     "units": ("targets of the test dataset detrended per span and standardised with its own runs' standard deviation "
                               "(another dataset: none of its spans trained the model; R², RMSE, MAE and PSNR are on that scale, not "
                               "the training's)" if split.protocol == "cross-dataset" else
                               "targets detrended per span and standardised with the training span's scale (z units)"),
                     "atlas": None if atlas is None else (str(atlas) if isinstance(atlas, (str, os.PathLike)) else "array"),
                     "n_rois": None if labels is None else int(len(np.unique(labels[labels > 0]))),
                     "roi_voxels": _region_voxels(rois, ds.n_outputs, region_labels) if regions else (
                         None if labels is None else {str(int(k)): int(n) for k, n in zip(*np.unique(labels[labels > 0], return_counts=True))}),
                     "roi_names": {str(int(k)): str(nm) for k, nm in zip(region_labels, rois["names"])} if regions else _roi_names(atlas),
                     # what the outputs are: the mask's voxels, or the ROIs of an atlas the data were prepared on (prepare option atlas)
                     "targets": (f"{len(ds.rois['names'])} ROIs" if isinstance(getattr(ds, "rois", None), dict) and ds.rois.get("names") is not None
                                 else "voxels")},
        "split": {"protocol": split.protocol, "n_frames": int(split.n_frames), "lag": int(split.lag), "gap_volumes": int(split.gap),
                  "test_subjects": list(split.test_subjects), **{f"n_{k}": split.n_samples(k) for k in ("train", "val", "test")},
                  **({f"{k}_subjects": v for k, v in split.subjects(ds).items() if k != "test"} if hasattr(split, "subjects") else {}),
                  **({"options": dict(split.options)} if getattr(split, "options", None) else {}),
                  "volumes": volume_accounting(ds, split), "tr": float(ds.tr)},
        "_r_names": r_names,
        "_draws": draws,
        "_ci": float(ci),
        "_extra_metrics": core["_extra_metrics"],
    }


#: Fewer test windows than this in a subject's span: evaluate_models warns that its scores are very uncertain.
_FEW_TEST_WINDOWS = 20


def _file_volumes(ds: PreparedDataset, index: int, volumes: np.ndarray) -> dict[str, Any]:
    """Where prepared volumes ``volumes`` of run ``index`` come from: ``onsets_s`` (their onsets, s from the EEG file's
    first sample -- a run cut from a longer recording, ``eeg_span_s``, counts from the file's start too) and,
    unless the BOLD was resampled in time, ``bold_volumes`` (their indices in the BOLD file: prepare drops dummy and
    non-steady-state volumes, so prepared volume k is file volume k + the first kept one; user test 39)."""
    run = ds.runs[index]
    vols = np.asarray(volumes, dtype=np.int64)
    info = ((ds.provenance or {}).get("inputs") or {}).get(run.key) if isinstance(ds.provenance, dict) else None
    span = info.get("eeg_span_s") if isinstance(info, dict) else None
    offset = float(span[0]) if isinstance(span, (list, tuple)) and span else 0.0
    out: dict[str, Any] = {"onsets_s": np.asarray(run.onsets, dtype=np.float64)[vols] + offset}
    kept = info.get("volumes") if isinstance(info, dict) else None
    if isinstance(kept, (list, tuple)) and len(kept) == 2 and kept[0] is not None and not info.get("resampled_in_time"):
        out["bold_volumes"] = vols + int(kept[0])
    return out


def save_predictions(predictions: Mapping[str, Mapping[str, Any]], folder: str | os.PathLike, tr: float) -> list[Path]:
    """Write the scored test targets and predictions, one ``.npz`` per test run (``<run key>.npz``).

    Parameters
    ----------
    predictions : mapping
        ``results["_predictions"]`` of :func:`evaluate_models` (``keep_predictions=True``).
    folder : path-like
        Where to write (created).
    tr : float
        Repetition time (s), stored beside the arrays.

    Returns
    -------
    list of Path
        The files: each holds ``y`` (measured, shape (n_windows, n_outputs), standardised as scored), one array per
        model named ``pred_<model>`` of the same shape, ``volumes`` (the windows' target volumes: indices in the
        *prepared* run, after prepare dropped dummy and non-steady-state volumes), ``bold_volumes`` (the same volumes'
        indices in the BOLD file; absent when prepare resampled the BOLD in time), ``onsets_s`` (their onsets, s from
        the EEG recording's start), ``subject`` and ``tr``; recomputing ``pearson_r`` per output from them gives the
        scores in ``metrics.json``.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for key, rec in predictions.items():
        arrays = {"y": np.asarray(rec["y"], np.float32), "volumes": np.asarray(rec["volumes"], np.int64),
                  "subject": np.array(str(rec["subject"])), "tr": np.array(float(tr))}
        for extra in ("bold_volumes", "onsets_s"):
            if rec.get(extra) is not None:
                arrays[extra] = np.asarray(rec[extra])
        arrays.update({f"pred_{nm}": np.asarray(p, np.float32) for nm, p in rec["preds"].items()})
        path = out / f"{key}.npz"
        np.savez_compressed(path, **arrays)
        files.append(path)
    return files


def merge_results(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Combine the results of several folds (disjoint test subjects) into one.

    Parameters
    ----------
    parts : list of dict
        Outputs of :func:`evaluate_models` for the folds of one protocol (e.g.
        every held-out subject of leave-one-subject-out), scoring the same
        models.

    Returns
    -------
    results : dict
        Same layout; ``per_subject`` and ``runs`` are the union, ``group``
        is recomputed over all subjects (CIs from the per-subject bootstrap
        draws), ``folds`` holds each fold's split description.
    """
    if not parts:
        raise Eeg2fmriInputError("merge_results: expected at least one fold's results, got none.")
    first = parts[0]
    for p in parts[1:]:
        if p["models"] != first["models"]:
            raise Eeg2fmriInputError(f"merge_results: folds scored different models ({first['models']} vs {p['models']}); score the same models in every fold.")
    per_subject: dict[str, dict] = {}
    draws: dict[str, np.ndarray | None] = {}
    runs: dict[str, dict] = {}
    for p in parts:
        for subj, res in p["per_subject"].items():
            key = subj if subj not in per_subject else f"{subj} (fold {parts.index(p)})"
            per_subject[key] = res
            draws[key] = p["_draws"].get(subj)
        runs.update(p["runs"])
    out = dict(first)
    out.update(per_subject=per_subject, runs=runs, _draws=draws, folds=[p["split"] for p in parts])
    if len(parts) > 1 and isinstance(first.get("split"), dict):  # (user test 10: read as the whole benchmark's split)
        out["split"] = {**first["split"], "note": f"the first of {len(parts)} folds; folds lists each fold's split"}
    seed = (first.get("settings") or {}).get("seed")
    out["group"] = _group(per_subject, draws, first["models"], first["_r_names"], first["roles"]["reference"], first["_ci"],
                          tuple(first.get("_extra_metrics", ())), _group_seed(seed))
    ref = [p["reference"] for p in parts]
    out["reference"] = ref[0] if all(r == ref[0] for r in ref) else {"name": REFERENCE, "per_fold": ref}
    return out


def seen_test_windows(ds: PreparedDataset, split: Split, trained: Split) -> tuple[int, int]:
    """How many of ``split``'s test windows lie within ``trained.gap`` volumes of a window of ``trained``'s training or
    validation span (in the same run), and how many test windows there are: ``(seen, total)``.

    Both splits must be of ``ds`` (the same runs in the same order). The gap is the splits' own guarantee (at least the
    EEG window plus the HRF span, in volumes, between spans; :func:`~eeg2fmri.datasets.splits.temporal_split`): a
    test volume ``gap + 1`` or more volumes from every training and validation volume is held out, as the split the
    model was fitted with places it. Distances are measured on the volume onsets (half a TR of tolerance for jitter).
    """
    limit = (trained.gap + 0.5) * ds.tr  # (session 22 also padded by the EEG window, which flagged the model's own split)
    seen, total = 0, 0
    for i, vols in split.selections["test"].items():
        used = np.concatenate([trained.selections[k].get(i, np.array([], int)) for k in ("train", "val")])
        total += len(vols)
        if not len(used):
            continue
        on = np.asarray(ds.runs[i].onsets, float)
        near = np.abs(on[np.asarray(vols)][:, None] - on[used][None, :]) < limit
        seen += int(near.any(1).sum())
    return seen, total


def _refuse_seen(ds: PreparedDataset, split: Split, trained: Any, what: str) -> None:
    """Refuse scoring ``what`` on ``split``'s test windows if it was fitted (split ``trained``) on windows within the gap."""
    if trained is None or tuple(getattr(trained, "run_keys", ())) != tuple(r.key for r in ds.runs):
        return
    seen, total = seen_test_windows(ds, split, trained)
    if seen:
        subs = trained.subjects(ds)
        raise Eeg2fmriInputError(
            f"evaluate_split: {what} was fitted on subjects {subs['train']} (validated on {subs['val']}) with protocol "
            f"{trained.protocol!r}; {seen} of this split's {total} test windows lie within {trained.gap} volumes of windows it was "
            "trained or validated on, so its scores would not be held out; evaluate with the split it was fitted with, or fit "
            "a model on this split (fit_model(ds, split, ...)).")


def evaluate_split(
    ds: PreparedDataset,
    split: Split,
    targets: dict,
    model: Any,
    *,
    baseline: Any | None = None,
    reference: Any | None = None,
    model_name: str | None = None,
    atlas: Any = None,
    n_boot: int = DEFAULT_N_BOOT,
    block_len: int | None = None,
    ci: float = 0.95,
    random_state: int | np.random.Generator | None = 0,
    ssim_volumes: int = DEFAULT_SSIM_VOLUMES,
    progress_bar: bool = False,
    extra_metrics: Mapping[str, Callable] | None = None,
) -> dict[str, Any]:
    """Metrics of one model, the reference ``ridge_hrf`` and the baselines on the test set.

    Parameters
    ----------
    ds, split, targets
        As in :func:`evaluate_models`.
    model : fitted model | FitResult
        Predicts windows (``predict(x)``) or a torch module; or what :func:`~eeg2fmri.training.fit_model` returned,
        whose split is then checked against this one: test windows within the gap of windows it was trained or
        validated on are refused.
    baseline, reference : fitted models | None
        Subject-mean baseline and ``ridge_hrf``; fitted when ``None``. When
        ``model`` is itself a ``ridge_hrf`` it is its own reference.
    model_name : str | None
        Name shown for the model (default its registry name).
    atlas, n_boot, block_len, ci, random_state, ssim_volumes, progress_bar, extra_metrics
        As in :func:`evaluate_models`.

    Returns
    -------
    results : dict
        Everything :func:`evaluate_models` returns, plus ``model`` (the
        model's name), ``summary`` (flat floats, means over subjects:
        ``model_median_r``, ``model_r2``, ``model_rmse``, ``model_mae``,
        ``model_ssim``, ``model_psnr``, ``null_shifted_median_r``,
        ``mean_r2``/``mean_rmse``/..., ``ridge_hrf_median_r``/... (with an atlas
        ``ridge_hrf_roi_median_r`` beside ``model_roi_median_r``),
        ``diff_vs_ridge_hrf``/``p_vs_ridge_hrf``, ceilings and
        ``fraction_of_oracle``/``fraction_of_noise`` on simulated data) and
        ``subjects`` (``{subject: {run_key: per-run dict}}``, each with the
        voxel r of the model under ``"_r"``).
    """
    check_like(ds, ("runs", "ch_names"), "ds", "a PreparedDataset", where="evaluate_split", fix="prepare_dataset(...) returns one, load_prepared(PATH) reads one from its folder; the order is evaluate_split(ds, split, targets, model)")
    check_like(split, ("selections",), "split", "a Split", where="evaluate_split", fix="make_split(ds, protocol) returns one; the order is evaluate_split(ds, split, targets, model)")
    check_split_fits(ds, split, targets, where="evaluate_split")
    if all(hasattr(model, a) for a in ("model", "spec", "name", "split")):  # a fit_model result: its split says what it saw
        trained, fit_name, model = model.split, model.name, model.model
        model_name = model_name or fit_name
    else:  # a bare fitted model: fit_model left its split on it (fit_split_); a model from elsewhere cannot be checked
        trained = getattr(model, "fit_split_", None)
        if trained is None:
            logger.info("evaluate_split: the model carries no record of the windows it was fitted on (not fitted by fit_model in "
                        "this session); its test windows are not checked against them -- pass fit_model's result to have them checked")
    _refuse_seen(ds, split, trained, "the model")
    for what, other in (("baseline", baseline), ("reference", reference)):
        if other is not None:
            _refuse_seen(ds, split, getattr(other, "split", None) if hasattr(other, "model") else getattr(other, "fit_split_", None), f"the {what}")
    # fit_model results as reference/baseline too, as for the model (user test 25: refused, naming the fix)
    if baseline is not None and all(hasattr(baseline, a) for a in ("model", "spec", "name", "split")):
        baseline = baseline.model
    if reference is not None and all(hasattr(reference, a) for a in ("model", "spec", "name", "split")):
        reference = reference.model
    name = model_name or getattr(model, "registry_name", None) or "model"
    if name == BASELINE:
        raise Eeg2fmriInputError("evaluate_split: the subject-mean baseline is always shown; evaluate another model, or use evaluate_models.")
    if name == REFERENCE and reference is None:
        reference = model
    res = evaluate_models(ds, split, targets, {name: model} if name != REFERENCE else {REFERENCE: model}, baseline=baseline,
                          reference=None if name == REFERENCE else reference, atlas=atlas, n_boot=n_boot, block_len=block_len, ci=ci,
                          random_state=random_state, ssim_volumes=ssim_volumes, progress_bar=progress_bar, extra_metrics=extra_metrics)
    res["model"] = name
    g = res["group"]["models"]
    summary: dict[str, float] = {}
    for key in ("median_r", "r2", "rmse", "mae", "ssim", "psnr", "calhas_rmse", "calhas_ssim", "roi_median_r",
                "median_r_in_groundtruth_mask", "fraction_of_oracle", "fraction_of_noise"):
        if key in g[name]:
            summary[f"model_{key}"] = g[name][key]
    summary["null_shifted_median_r"] = g[name].get("null_median_r", float("nan"))
    summary["null_p95_median_r"] = g[name].get("null_p95_median_r", float("nan"))
    for legacy in ("fraction_of_oracle", "fraction_of_noise"):  # the quickstart's table reads these names
        if f"model_{legacy}" in summary:
            summary[legacy] = summary[f"model_{legacy}"]
    for other in (BASELINE, REFERENCE):
        if other in g and other != name:
            for key in ("median_r", "r2", "rmse", "mae", "ssim", "psnr", "calhas_rmse", "calhas_ssim", "roi_median_r"):
                if key in g[other] and not (other == BASELINE and key == "median_r"):
                    summary[f"{other}_{key}"] = g[other][key]
    if name in res["group"]["paired"]:
        pr = res["group"]["paired"][name]
        summary[f"diff_vs_{REFERENCE}"] = pr["diff_median_r"]
        summary[f"p_vs_{REFERENCE}"] = pr["p_value"]
    if "ceilings" in res["group"]:
        summary["noise_ceiling_median_r"] = res["group"]["ceilings"]["noise_median_r"]
        summary["oracle_ceiling_median_r"] = res["group"]["ceilings"]["oracle_median_r"]
    res["summary"] = summary
    subjects: dict[str, dict[str, dict]] = {}
    for key, one in res["runs"].items():
        mm = one["models"][name]
        legacy = {"run": key, "n_test": one["n_test"], "model_median_r": mm["median_r"], "model_rmse": mm["rmse"], "model_r2": mm["r2"],
                  "null_shifted_median_r": mm["null_median_r"], "_r": mm["_r"]}
        if BASELINE in one["models"]:
            legacy["mean_rmse"] = one["models"][BASELINE]["rmse"]
            legacy["mean_r2"] = one["models"][BASELINE]["r2"]
        subjects.setdefault(one["subject"], {})[key] = legacy
    res["subjects"] = subjects
    return res


def results_to_json(results: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-safe copy of evaluation results.

    Keys starting with ``_`` (arrays for figures) are dropped, NumPy values
    become Python numbers and NaN/inf become ``None`` (strict JSON).
    """
    return to_jsonable(dict(results), drop_private=True, finite=True)
