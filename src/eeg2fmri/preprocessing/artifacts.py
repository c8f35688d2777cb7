"""Detect EEG that still carries MRI gradient artifacts (remove them with :mod:`eeg2fmri.preprocessing.cleaning`).

Gradient artifacts repeat with every slice and every volume, so uncorrected EEG shows
a comb of sharp spectral lines at multiples of ``1 / TR`` (strongest at the slice rate
``n_slices / TR`` and its harmonics) that tower over the neighbouring frequencies.
:func:`check_gradient_artifacts` measures that contrast and warns when it is obvious.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from eeg2fmri.utils.logs import logger
from eeg2fmri.utils.validation import (
    Eeg2fmriInputError,
    check_finite,
    check_positive,
    check_positive_int,
)

__all__ = ["check_gradient_artifacts", "layout_gradient_notes"]

_MIN_HARMONICS = 8  # a comb must have this many usable lines to be scored
_MAX_BASE = 128  # candidate slice rates searched when n_slices is unknown: k / TR, k = 2..128


def _get_data(raw_or_data, sfreq, max_duration: float, where: str) -> tuple[np.ndarray, float, float | None]:
    import mne

    if isinstance(raw_or_data, mne.io.BaseRaw):
        raw = raw_or_data
        rsf = float(raw.info["sfreq"])
        if sfreq is not None and abs(float(sfreq) - rsf) > 1e-6 * rsf:
            raise Eeg2fmriInputError(f"{where}: sfreq={sfreq} Hz disagrees with the recording's {rsf} Hz; leave sfreq=None for a Raw.")
        picks = mne.pick_types(raw.info, eeg=True, exclude="bads")
        if len(picks) == 0:
            raise Eeg2fmriInputError(f"{where}: expected EEG channels to check, found none among {raw.ch_names[:10]}; set the channel types (raw.set_channel_types).")
        n = raw.n_times
        length = min(n, int(round(max_duration * rsf)))
        start = (n - length) // 2
        data = raw.get_data(picks=picks, start=start, stop=start + length)
        bad = [raw.ch_names[p] for p, row in zip(picks, data) if not np.isfinite(row).all()]
        if bad:  # named here, where the channel names are known
            raise Eeg2fmriInputError(f"{where}: channel(s) {bad} contain NaN/Inf; interpolate them (raw.interpolate_bads) or drop them "
                                     "(raw.drop_channels, or mark them bad in channels.tsv) first.")
        return data, rsf, raw.info.get("line_freq")
    if sfreq is None:
        raise Eeg2fmriInputError(f"{where}: expected sfreq (Hz) with an array input, got None; pass sfreq=... or an mne Raw.")
    sfreq = check_positive(sfreq, "sfreq", where=where)
    data = np.asarray(raw_or_data)
    if data.ndim == 1:
        data = data[None]
    if data.ndim != 2 or data.shape[1] < 2:
        raise Eeg2fmriInputError(f"{where}: expected EEG data of shape (n_chans, n_times), got shape {np.shape(raw_or_data)}.")
    n = data.shape[1]
    length = min(n, int(round(max_duration * sfreq)))
    start = (n - length) // 2
    return data[:, start : start + length], sfreq, None


def check_gradient_artifacts(
    raw_or_data,
    sfreq: float | None = None,
    tr: float | None = None,
    n_slices: int | None = None,
    *,
    where: str = "EEG",
    threshold: float = 10.0,
    max_duration: float = 120.0,
    max_channels: int = 16,
    fmin: float = 1.0,
    line_freq: float | None = None,
) -> dict:
    """Warn when the EEG shows the spectral comb of uncorrected MRI gradient artifacts.

    The power spectrum (Welch, ``8 * TR`` second Hann segments, so that 8 bins separate
    neighbouring multiples of ``1 / TR``; median over channels) is compared, at every
    multiple ``f_k = k / TR`` above ``fmin``, between the line (largest of the 3 bins
    around ``f_k``) and its neighbourhood (median of the bins 0.25 to 0.45 ``/ TR``
    away on both sides). Multiples within 1 Hz of a power-line harmonic are skipped.
    A comb's score is the lower quartile of the ratios of its lines (most lines must
    stand out); scored combs are every multiple of ``1 / TR`` (volume rate), the slice
    rate ``n_slices / TR`` when known, and else every candidate rate ``k / TR`` for
    ``k = 2..128`` with at least 8 usable lines. Clean EEG scores about 1; uncorrected
    gradient artifacts score in the hundreds or more.

    Parameters
    ----------
    raw_or_data : mne.io.BaseRaw | array, shape (n_chans, n_times)
        The EEG as it will be used (EEG channels of a Raw are checked).
    sfreq : float | None
        Sampling frequency (Hz); required for arrays, taken from a Raw.
    tr : float
        Repetition time of the fMRI in seconds.
    n_slices : int | None
        Slice excitations per TR (slices / multiband factor), when known.
    where : str
        Recording name used in the warning.
    threshold : float
        Warn when the largest comb score reaches this power ratio.
    max_duration : float
        Seconds analysed, from the middle of the recording (speed).
    max_channels : int
        Channels analysed, evenly spread over the montage (gradient artifacts reach every
        channel).
    fmin : float
        Lowest line frequency scored (Hz), avoiding the 1/f slope near DC.
    line_freq : float | None
        Power-line frequency; default ``raw.info["line_freq"]``, else both 50 and 60 Hz.

    Returns
    -------
    report : dict
        ``peak_ratio`` (the largest comb score), ``volume_ratio``, ``slice_ratio``
        (``None`` without ``n_slices``), ``comb_hz`` (base frequency of the finest comb
        scoring at least half of ``peak_ratio``), ``n_lines`` (lines in that comb),
        ``detected`` (bool),
        ``threshold`` and ``seconds`` analysed. Ratios are NaN when the recording is
        shorter than ``8 * TR`` or no line can be scored.

    Warns
    -----
    UserWarning
        When ``peak_ratio >= threshold``: the EEG looks uncorrected for gradient
        artifacts; the message says to use ``--clean gradient`` (average artifact
        subtraction, AAS) or ``eeg2fmri clean``.
    """
    from scipy.signal import welch

    tr = check_positive(tr, "tr", where=where, fix="pass the repetition time in seconds")
    threshold = check_positive(threshold, "threshold", where=where)
    max_duration = check_positive(max_duration, "max_duration", where=where)
    if n_slices is not None:
        n_slices = check_positive_int(n_slices, "n_slices", where=where, fix="pass the number of slice excitations per TR, or None")
    max_channels = check_positive_int(max_channels, "max_channels", where=where)
    data, sfreq, raw_line = _get_data(raw_or_data, sfreq, max_duration, where)
    if data.shape[0] > max_channels:
        data = data[np.unique(np.linspace(0, data.shape[0] - 1, max_channels).round().astype(int))]
    check_finite(data, "EEG data", where=where)
    line_freq = line_freq if line_freq is not None else raw_line
    seconds = data.shape[1] / sfreq
    report = dict(peak_ratio=float("nan"), volume_ratio=float("nan"), slice_ratio=None if n_slices is None else float("nan"),
                  comb_hz=float("nan"), n_lines=0, detected=False, threshold=threshold, seconds=seconds)
    nperseg = int(round(8 * tr * sfreq))
    if data.shape[1] < nperseg:
        logger.info("%s: %.1f s of EEG is too short to check for gradient artifacts (needs 8 x TR = %.1f s)", where, seconds, 8 * tr)
        return report
    f, p = welch(np.asarray(data, dtype=np.float64), fs=sfreq, window="hann", nperseg=nperseg, noverlap=nperseg // 2, detrend="constant", axis=-1)
    pm = np.median(p, axis=0)
    df = f[1] - f[0]
    lo = int(np.ceil(0.25 / (tr * df) - 1e-9))
    hi = int(np.floor(0.45 / (tr * df) + 1e-9))
    offs = np.r_[-np.arange(lo, hi + 1), np.arange(lo, hi + 1)]
    k = np.arange(1, int(np.floor((sfreq / 2) * tr)) + 1)
    fk = k / tr
    idx = np.rint(fk / df).astype(np.int64)
    ok = (fk >= fmin) & (idx + hi < len(f)) & (idx - hi >= 0)
    lines = [line_freq] if line_freq else [50.0, 60.0]
    for lf in lines:
        ok &= np.abs(fk - lf * np.rint(fk / lf)) > 1.0
    if not ok.any():
        logger.info("%s: no multiple of 1/TR between %g Hz and Nyquist to check for gradient artifacts", where, fmin)
        return report
    k, idx = k[ok], idx[ok]
    peak = np.max(pm[idx[:, None] + np.array([-1, 0, 1])[None, :]], axis=1)
    neigh = np.median(pm[idx[:, None] + offs[None, :]], axis=1)
    ratio = peak / np.maximum(neigh, np.finfo(np.float64).tiny)

    def comb(base: int) -> tuple[float, int]:
        sel = ratio[k % base == 0]
        return (float(np.percentile(sel, 25)), len(sel)) if len(sel) else (float("nan"), 0)

    vol, n_vol = comb(1)
    scores = [(vol, 1, n_vol)]
    if n_slices is not None:
        sl, n_sl = comb(n_slices)
        report["slice_ratio"] = sl
        if n_sl:
            scores.append((sl, n_slices, n_sl))
    else:
        for base in range(2, _MAX_BASE + 1):
            s, n_s = comb(base)
            if n_s >= _MIN_HARMONICS:
                scores.append((s, base, n_s))
    scores = [s for s in scores if np.isfinite(s[0])]
    top = max((s[0] for s in scores), default=float("nan"))
    # the finest comb (smallest base) that scores at least half the top score names the artifact
    best = min((s for s in scores if s[0] >= top / 2), key=lambda s: s[1], default=(float("nan"), 1, 0))
    report.update(peak_ratio=top, volume_ratio=vol, comb_hz=best[1] / tr, n_lines=best[2], detected=bool(top >= threshold))
    if report["detected"]:
        warnings.warn(
            f"{where}: strong periodic power at multiples of {best[1] / tr:.4g} Hz (k x 1/TR, TR={tr:g} s): the spectral lines are "
            f"{best[0]:.3g} times the power next to them (lower quartile over {best[2]} lines; clean EEG is about 1, threshold {threshold:g}). "
            "The EEG looks uncorrected for MRI gradient artifacts: prepare with --clean gradient (or --clean gradient,bcg to remove "
            "pulse artifacts too; clean={'gradient': 'aas'} in Python), clean the file with `eeg2fmri clean`, or correct it in your own "
            "pipeline (e.g. FMRIB / average artifact subtraction (AAS) in EEGLAB or BrainVision Analyzer).",
            UserWarning,
            stacklevel=2,
        )
    else:
        logger.info("%s: gradient-artifact check passed (largest comb ratio %.3g < %g)", where, top, threshold)
    return report


def layout_gradient_notes(runs: Sequence[Any], marker: Any = None) -> list[str]:
    """One note per run whose EEG shows the comb of uncorrected MRI gradient artefacts (:func:`check_gradient_artifacts` on
    its first 2 minutes, with the run's BOLD TR), for ``eeg2fmri datasets --check`` (user test 20: the check said OK of raw
    in-scanner EEG). Runs whose files cannot be read are left to the check's own problems."""
    from eeg2fmri.io.layouts import read_layout_bold, read_layout_eeg

    notes = []
    for run in runs:
        if getattr(run, "bold_path", None) is None:
            continue
        try:
            tr = float(read_layout_bold(run, **({"marker": marker} if marker is not None else {}))[1])
            raw = read_layout_eeg(run, preload=False)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # (the note says it; prepare warns when it prepares the run)
                art = check_gradient_artifacts(raw, tr=tr, where=run.key)
        except Exception:  # noqa: BLE001  (a check that cannot run is no finding about the file)
            continue
        if art.get("detected"):
            notes.append(f"{run.key}: the EEG looks uncorrected for MRI gradient artefacts (spectral lines at multiples of 1/TR "
                         f"{art['peak_ratio']:.3g} times the power next to them; clean EEG is about 1): prepare with --clean "
                         "gradient (or gradient,bcg), or clean the files first (eeg2fmri clean)")
    return notes
