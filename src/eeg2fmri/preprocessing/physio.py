"""Physiological noise regressors from recorded cardiac and respiratory signals.

The BOLD carries cardiac and respiratory noise; the EEG carries the same rhythms as artefacts
(ballistocardiogram, breathing drifts), so EEG features can "predict" that noise (user test 57).
This module turns the recordings' own ECG/pulse and respiration signals into the standard
regressors, sampled at the middle of every volume:

* **RETROICOR** (Glover, Li & Ress 2000): cardiac phase (linear from one beat to the next) and
  respiratory phase (histogram-equalised amplitude, signed by the direction of breathing), each
  expanded as ``cos(m phase), sin(m phase)`` for ``m = 1..order``;
* **HR x CRF** (Chang, Cunningham & Glover 2009): heart rate in a 6-s window around each time,
  convolved with the cardiac response function;
* **RV x RRF** (Chang & Glover 2009; RRF of Birn et al. 2008): respiration volume (standard
  deviation of the belt in a 6-s window), convolved with the respiration response function.

R peaks of an ECG come from MNE (``mne.preprocessing.find_ecg_events``), the peaks of a pulse-oximeter
(PPG) trace (as BIDS ``*_physio.tsv.gz`` ``cardiac`` columns often are) from ``scipy.signal.find_peaks``;
without a declared kind, the more regular of the two rhythms is taken.
:func:`physio_regressors` is the entry point; :func:`find_physio_files` and
:func:`read_bids_physio` read BIDS physiological recordings.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eeg2fmri.utils.logs import logger
from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = [
    "DEFAULT_GROUPS",
    "PHYSIO_LAGS_S",
    "PHYSIO_REGRESSORS",
    "PhysioCoverageError",
    "cardiac_peaks",
    "cardiac_phase",
    "check_physio_option",
    "crf",
    "find_physio_files",
    "physio_check",
    "physio_note",
    "heart_rate",
    "physio_regressors",
    "read_bids_physio",
    "regressors_from_traces",
    "traces_needed",
    "respiration_volume",
    "respiratory_phase",
    "rrf",
    "trigger_offset",
]

#: The regressor groups :func:`physio_regressors` builds (prepare option ``physio``).
PHYSIO_REGRESSORS = ("retroicor", "hr", "rv", "hr_lags", "rv_lags")
#: The groups of ``physio: "regress"``: RETROICOR and the lagged heart rate and respiration volume. With the CRF and RRF
#: instead of lags, user test 58's generator (its own heart-rate and breathing responses) kept the ventricles "above
#: chance" after the regression (LOSO ROI r 0.173; lags: 0.082, chance) and its whole-mask r (0.014; lags: 0.002).
DEFAULT_GROUPS = ("retroicor", "hr_lags", "rv_lags")
#: Delays (s) of the lagged heart-rate and respiration-volume regressors (Birn et al. 2006 shifted RVT by 0-20 s): their
#: span holds any response of the HR / RV series of about that length, not only the CRF's and RRF's.
PHYSIO_LAGS_S = (0.0, 4.0, 8.0, 12.0, 16.0)
#: Column names (lower case) of a BIDS physio file read as cardiac / respiratory traces.
CARDIAC_COLUMNS = ("cardiac", "ecg", "pulse", "ppg", "pleth")
RESPIRATORY_COLUMNS = ("respiratory", "respiration", "resp", "breathing")
_GRID_HZ = 10.0  # HR and RV are built on this grid, convolved there, then sampled at the volumes
_WINDOW_S = 6.0  # Chang et al. 2009's window for heart rate and respiration volume
_MIN_BPM, _MAX_BPM = 30.0, 200.0
_MIN_QRS_SFREQ = 24.0  # MNE's QRS detector needs its 5 Hz-and-up band below the Nyquist frequency


def check_physio_option(value: Any, where: str = "prepare option physio") -> tuple[str, ...] | None:
    """Validate the prepare option ``physio``: ``None``, ``"regress"`` (every group) or a list of groups.

    Returns
    -------
    groups : tuple of str | None
        The regressor groups among :data:`PHYSIO_REGRESSORS`, in that order; ``None`` for none.
    """
    if value is None or value is False:
        return None
    if isinstance(value, str):
        if value == "regress":
            return DEFAULT_GROUPS
        value = [value]
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) for v in value):
        raise Eeg2fmriInputError(f"{where}: expected 'regress' or a list of regressor groups among {list(PHYSIO_REGRESSORS)}, got "
                                 f"{value!r}; e.g. --config '{{\"physio\": \"regress\"}}'.")
    bad = sorted(set(value) - set(PHYSIO_REGRESSORS))
    if bad:
        raise Eeg2fmriInputError(f"{where}: unknown regressor group(s) {bad}; expected 'regress' or groups among {list(PHYSIO_REGRESSORS)} "
                                 "(retroicor: cardiac and respiratory phase; hr: heart rate x CRF; rv: respiration volume x RRF; "
                                 f"hr_lags / rv_lags: heart rate / respiration volume delayed by {', '.join(f'{d:g}' for d in PHYSIO_LAGS_S)} s).")
    return tuple(g for g in PHYSIO_REGRESSORS if g in value)


# --------------------------------------------------------------------------- cardiac
def _plausible(peaks: np.ndarray, sfreq: float) -> tuple[bool, float]:
    """Whether beats at ``peaks`` (samples) form a heart rhythm: 30-200 bpm and regular (robust spread of intervals)."""
    if len(peaks) < 5:
        return False, np.nan
    bpm = 60.0 / float(np.median(np.diff(peaks) / sfreq))
    return bool(_MIN_BPM <= bpm <= _MAX_BPM and _spread(peaks, sfreq) < 0.15), bpm


def _spread(peaks: np.ndarray, sfreq: float) -> float:
    """Median absolute deviation of the beat intervals over their median (irregularity; inf for fewer than 3 beats)."""
    if len(peaks) < 3:
        return float("inf")
    ibi = np.diff(peaks) / sfreq
    med = float(np.median(ibi))
    return float(np.median(np.abs(ibi - med)) / med)


def _ppg_peaks(x: np.ndarray, sfreq: float) -> tuple[np.ndarray, np.ndarray]:
    """Systolic peaks of a pulse trace and the band-passed trace they were found on."""
    from scipy.signal import butter, find_peaks, sosfiltfilt

    sos = butter(2, [0.5, min(8.0, 0.45 * sfreq)], btype="bandpass", fs=sfreq, output="sos")
    y = sosfiltfilt(sos, x - np.median(x))
    scale = np.subtract(*np.percentile(y, [95, 5]))
    peaks, _ = find_peaks(y, distance=max(1, int(60.0 / _MAX_BPM * sfreq)), prominence=0.3 * scale)
    return peaks, y


def _qrs_signal(x: np.ndarray, sfreq: float, peaks: np.ndarray) -> np.ndarray:
    """The ECG's QRS band (5-30 Hz), signed so that the detected R peaks are positive."""
    from scipy.signal import butter, sosfiltfilt

    y = sosfiltfilt(butter(2, [5.0, min(30.0, 0.45 * sfreq)], btype="bandpass", fs=sfreq, output="sos"), x - np.median(x))
    return y * (np.sign(np.median(y[peaks])) or 1.0) if len(peaks) else y


def _fill_gaps(y: np.ndarray, peaks: np.ndarray, sfreq: float) -> np.ndarray:
    """Beats a detector missed: in every interval longer than 1.5 median intervals, the ``k`` beats it should hold are
    taken at the maxima of ``y`` within a quarter interval of their evenly spaced positions (a missed beat puts the cardiac
    phase a whole cycle off for two beats)."""
    if len(peaks) < 5:
        return peaks
    med = float(np.median(np.diff(peaks)))
    half = max(1, int(0.25 * med))
    extra = []
    for a, b in zip(peaks[:-1], peaks[1:]):
        k = int(round((b - a) / med)) - 1
        if (b - a) <= 1.5 * med or k < 1:
            continue
        for j in range(1, k + 1):
            c = int(round(a + j * (b - a) / (k + 1)))
            lo, hi = max(a + half, c - half), min(b - half, c + half + 1)
            if hi > lo:
                extra.append(lo + int(np.argmax(y[lo:hi])))
    return np.unique(np.concatenate([peaks, np.asarray(extra, dtype=np.int64)])) if extra else peaks


def cardiac_peaks(x: np.ndarray, sfreq: float, *, kind: str = "auto", where: str = "cardiac") -> tuple[np.ndarray, str]:
    """Heartbeats of an ECG or pulse (PPG) trace.

    Parameters
    ----------
    x : array, shape (n_samples,)
        The trace.
    sfreq : float
        Its sampling rate (Hz).
    kind : {"auto", "ecg", "ppg"}
        ``"ecg"``: R peaks by MNE's QRS detector (``mne.preprocessing.find_ecg_events``); ``"ppg"``: systolic peaks
        (``scipy.signal.find_peaks`` on the 0.5-8 Hz band); ``"auto"``: both, and the more regular plausible rhythm
        (30-200 bpm); the QRS detector's where they are as regular (below 24 Hz, as some scanners log pulse traces, only the
        pulse detector). Intervals longer than 1.5 median intervals get the
        beats the detector missed (the trace's maxima near their evenly spaced positions).
    where : str
        Name used in messages.

    Returns
    -------
    peaks : array of int, shape (n_beats,)
        Sample indices of the beats, increasing.
    kind : str
        The detector that was used (``"ecg"`` or ``"ppg"``).
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    if kind not in ("auto", "ecg", "ppg"):
        raise Eeg2fmriInputError(f"{where}: expected kind 'auto', 'ecg' or 'ppg', got {kind!r}.")
    if not np.all(np.isfinite(x)) or len(x) < 10 * sfreq or np.ptp(x) == 0:
        raise Eeg2fmriInputError(f"{where}: expected a finite, non-constant cardiac trace of at least 10 s, got {len(x) / sfreq:.1f} s"
                                 f"{' with non-finite values' if not np.all(np.isfinite(x)) else ''}; check the channel or column.")
    found = {}
    if kind == "ecg" and sfreq < _MIN_QRS_SFREQ:
        raise Eeg2fmriInputError(f"{where}: expected an ECG sampled at {_MIN_QRS_SFREQ:g} Hz or more for the QRS detector, got {sfreq:g} "
                                 "Hz; pass kind='ppg' for a pulse trace, or give the recording at its own rate.")
    if kind in ("auto", "ecg") and sfreq >= _MIN_QRS_SFREQ:  # (a 50 Hz pulse log has no QRS band below its Nyquist frequency)
        import mne

        info = mne.create_info(["ECG"], float(sfreq), ["ecg"])
        raw = mne.io.RawArray(x[None] * (1e-3 / max(np.std(x), 1e-30)), info, verbose=False)  # scale-free (QRS detector thresholds)
        events = mne.preprocessing.find_ecg_events(raw, ch_name="ECG", h_freq=min(35.0, 0.45 * sfreq), verbose=False)[0]
        qrs = np.unique(np.asarray(events[:, 0], dtype=np.int64))
        found["ecg"] = _fill_gaps(_qrs_signal(x, sfreq, qrs), qrs, sfreq)
    if kind in ("auto", "ppg"):
        ppg, y = _ppg_peaks(x, sfreq)
        found["ppg"] = _fill_gaps(y, ppg, sfreq)
    checked = {k: (*_plausible(p, sfreq), _spread(p, sfreq)) for k, p in found.items()}
    good = [k for k, (ok, _, _) in checked.items() if ok]
    if not good:
        tried = "; ".join(f"{'QRS' if k == 'ecg' else 'pulse'} detector: {len(found[k])} beats ({checked[k][1]:.0f} bpm)" for k in found)
        raise Eeg2fmriInputError(f"{where}: found no plausible heart rhythm ({tried}), expected regular beats at "
                                 f"{_MIN_BPM:.0f}-{_MAX_BPM:.0f} bpm; check the channel/column (is it the ECG or pulse trace, "
                                 "recorded for the whole run, with the MR gradient artefact removed from an ECG recorded with the EEG: "
                                 "prepare option clean?) or leave 'retroicor' and 'hr' out of the physio option.")
    # both plausible: the more regular rhythm (a QRS detector on a pulse trace also takes dicrotic notches; a pulse
    # detector on an ECG, T waves); the QRS detector where they are as regular
    best = min(good, key=lambda k: checked[k][2] * (1.0 if k == "ecg" else 1.1))
    return found[best], best


def cardiac_phase(peak_times: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Cardiac phase (rad, 0..2 pi) at ``times``: linear from one beat to the next (Glover et al. 2000).

    Times before the first or after the last beat continue the phase at the median beat interval.

    Parameters
    ----------
    peak_times : array, shape (n_beats,)
        Beat times (s), increasing.
    times : array, shape (n_times,)
        Where to evaluate (s), same clock.
    """
    pk = np.asarray(peak_times, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    med = float(np.median(np.diff(pk)))
    cycles = np.interp(t, pk, np.arange(len(pk), dtype=np.float64))
    cycles = np.where(t < pk[0], (t - pk[0]) / med, cycles)
    cycles = np.where(t > pk[-1], len(pk) - 1 + (t - pk[-1]) / med, cycles)
    return 2 * np.pi * np.mod(cycles, 1.0)


def heart_rate(peak_times: np.ndarray, times: np.ndarray, window: float = _WINDOW_S) -> np.ndarray:
    """Heart rate (bpm) at ``times``: 60 over the mean interval between the beats within ``window`` s around each time
    (Chang et al. 2009); where a window holds fewer than two beats, the nearest defined value.

    Returns
    -------
    hr : array, shape (n_times,)
    """
    pk = np.asarray(peak_times, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    lo = np.searchsorted(pk, t - window / 2, side="left")
    hi = np.searchsorted(pk, t + window / 2, side="right") - 1
    n = hi - lo
    span = pk[np.clip(hi, 0, len(pk) - 1)] - pk[np.clip(lo, 0, len(pk) - 1)]
    ok = n >= 1
    hr = np.full(len(t), np.nan)
    hr[ok] = 60.0 * n[ok] / np.maximum(span[ok], 1e-9)
    if not ok.any():
        raise Eeg2fmriInputError(f"heart rate: expected at least two beats within {window:g} s of some time, got none; the beats are too sparse.")
    idx = np.flatnonzero(ok)
    return np.interp(np.arange(len(t)), idx, hr[idx])


def crf(t: np.ndarray) -> np.ndarray:
    """Cardiac response function of Chang et al. (2009): ``0.6 t^2.7 e^(-t/1.6) - 16/sqrt(18 pi) e^(-(t-12)^2/18)``."""
    t = np.asarray(t, dtype=np.float64)
    return 0.6 * t**2.7 * np.exp(-t / 1.6) - 16.0 / np.sqrt(2 * np.pi * 9) * np.exp(-0.5 * (t - 12.0) ** 2 / 9.0)


def rrf(t: np.ndarray) -> np.ndarray:
    """Respiration response function of Birn et al. (2008): ``0.6 t^2.1 e^(-t/1.6) - 0.0023 t^3.54 e^(-t/4.25)``."""
    t = np.asarray(t, dtype=np.float64)
    return 0.6 * t**2.1 * np.exp(-t / 1.6) - 0.0023 * t**3.54 * np.exp(-t / 4.25)


# --------------------------------------------------------------------------- respiration
def _lowpass(x: np.ndarray, sfreq: float, cutoff: float = 1.0) -> np.ndarray:
    from scipy.signal import butter, sosfiltfilt

    if cutoff >= 0.45 * sfreq:
        return np.asarray(x, dtype=np.float64)
    return sosfiltfilt(butter(4, cutoff, fs=sfreq, output="sos"), np.asarray(x, dtype=np.float64))


def respiratory_phase(resp: np.ndarray, sfreq: float, n_bins: int = 100) -> np.ndarray:
    """Respiratory phase (rad, -pi..pi) of every sample, after Glover et al. (2000).

    The belt (low-passed at 1 Hz) is histogram-equalised over the recording -- the phase's magnitude is ``pi`` times the
    fraction of samples at or below the current amplitude -- and signed by the direction of breathing (positive while
    breathing in, i.e. the amplitude rising).

    Parameters
    ----------
    resp : array, shape (n_samples,)
    sfreq : float
    n_bins : int
        Histogram bins (Glover: 100).

    Returns
    -------
    phase : array, shape (n_samples,)
    """
    r = _lowpass(resp, sfreq)
    r = r - r.min()
    edges = np.linspace(0.0, max(float(r.max()), 1e-30), n_bins + 1)
    hist, _ = np.histogram(r, bins=edges)
    cdf = np.cumsum(hist) / max(hist.sum(), 1)
    b = np.clip(np.searchsorted(edges, r, side="right") - 1, 0, n_bins - 1)
    # direction of breathing from a 1-s smoothed derivative (Glover's sign of dR/dt)
    k = max(1, int(round(sfreq)))
    d = np.convolve(np.gradient(r), np.ones(k) / k, mode="same")
    return np.pi * cdf[b] * np.sign(d)


def respiration_volume(resp: np.ndarray, sfreq: float, times: np.ndarray, window: float = _WINDOW_S) -> np.ndarray:
    """Respiration volume (Chang & Glover 2009): the standard deviation of the belt within ``window`` s around each time.

    Returns
    -------
    rv : array, shape (n_times,)
    """
    from eeg2fmri.utils.stats import rolling_sd

    t = np.asarray(times, dtype=np.float64)
    lo = np.round((t - window / 2) * sfreq).astype(np.int64)
    hi = np.round((t + window / 2) * sfreq).astype(np.int64) + 1
    return rolling_sd(resp, lo, hi, ddof=1)


# --------------------------------------------------------------------------- regressors
def _convolved(values: np.ndarray, grid_t: np.ndarray, kernel, times: np.ndarray) -> np.ndarray:
    """Demeaned ``values`` (on the regular grid ``grid_t``) convolved with ``kernel(t)`` (0-40 s), sampled at ``times``."""
    dt = grid_t[1] - grid_t[0]
    h = kernel(np.arange(0.0, 40.0, dt))
    v = values - values.mean()
    y = np.convolve(v, h)[: len(v)] * dt
    return np.interp(times, grid_t, y)


class PhysioCoverageError(Eeg2fmriInputError):
    """A physiological trace that does not cover every volume of its run; ``span`` = (start, stop) s it covers."""

    def __init__(self, message: str, span: tuple[float, float]):
        super().__init__(message)
        self.span = (float(span[0]), float(span[1]))


#: How far (s) past its first or last sample a trace still counts as covering a volume's middle.
COVER_SLACK_S = 1.0


def _check_cover(times: np.ndarray, start: float, stop: float, what: str, where: str) -> None:
    if times[0] < start - COVER_SLACK_S or times[-1] > stop + COVER_SLACK_S:
        hint = ""
        run = float(times[-1] - times[0])
        if stop < times[0] or start > times[-1]:  # no overlap at all (user test 58 #7: "covers -10262.0--9947.7 s")
            hint = (" It does not overlap the run at all: check the BIDS StartTime (seconds from the first volume, negative when the "
                    "recording began before it)")
            hint += ("; it starts further from the run than the run is long: a StartTime in milliseconds, or on another clock?"
                     if abs(start) > 2 * run + 60 else ".")
        raise PhysioCoverageError(
            f"{where}: the {what} recording covers {start:.1f} to {stop:.1f} s, but the volumes' middles run from {times[0]:.1f} to "
            f"{times[-1]:.1f} s; expected it to cover the whole run (BIDS physio: StartTime relative to the first volume).{hint} "
            "Prepare option physio_incomplete: 'trim' leaves out the volumes it does not cover, 'unregressed' prepares such runs "
            "without physiological regressors (both warned and recorded in the manifest).", (start, stop))


def physio_regressors(
    times: np.ndarray,
    *,
    cardiac: np.ndarray | None = None,
    cardiac_sfreq: float | None = None,
    cardiac_start: float = 0.0,
    cardiac_kind: str = "auto",
    resp: np.ndarray | None = None,
    resp_sfreq: float | None = None,
    resp_start: float = 0.0,
    groups: Sequence[str] = DEFAULT_GROUPS,
    order: int = 2,
    where: str = "physio",
    quiet: bool = False,
) -> tuple[np.ndarray, list[str], dict]:
    """Physiological noise regressors sampled at ``times`` (the volumes' middles).

    Parameters
    ----------
    times : array, shape (n_volumes,)
        Seconds on the clock of the recordings (``cardiac_start`` / ``resp_start`` is the time of their first sample).
    cardiac, resp : array, shape (n_samples,) | None
        The ECG or pulse trace and the respiration belt; a group needing a missing trace is left out (logged).
    cardiac_sfreq, resp_sfreq : float | None
        Their sampling rates (Hz).
    cardiac_kind : {"auto", "ecg", "ppg"}
        See :func:`cardiac_peaks`.
    groups : sequence of str
        Among ``"retroicor"`` (cardiac and respiratory phase, ``order`` harmonics each), ``"hr"`` (heart rate x CRF),
        ``"rv"`` (respiration volume x RRF), ``"hr_lags"`` / ``"rv_lags"`` (heart rate / respiration volume delayed by
        :data:`PHYSIO_LAGS_S`: responses other than the CRF and RRF).
    order : int
        RETROICOR harmonics (Glover et al.: 2).
    where : str
        Name used in messages.
    quiet : bool
        Log what would be warned about (a flat belt) at debug level instead: for regressors nobody asked for.

    Returns
    -------
    regressors : array, shape (n_volumes, n_regressors), float64
    names : list of str
        E.g. ``retroicor_c1_cos``, ``hr_crf``, ``rv_rrf``.
    summary : dict
        Beats and heart rate, breaths per minute, the cardiac detector used.
    """
    t = np.asarray(times, dtype=np.float64)
    groups = check_physio_option(list(groups), where) or ()
    cols: list[np.ndarray] = []
    names: list[str] = []
    summary: dict[str, Any] = {}
    need = traces_needed(groups)
    need_c, need_r = "cardiac" in need, "respiratory" in need
    if need_c and cardiac is None:
        logger.info("%s: no cardiac trace, so no cardiac regressors", where)
    if need_r and resp is None:
        logger.info("%s: no respiration trace, so no respiratory regressors", where)
    pk_t = None
    if need_c and cardiac is not None:
        c = np.asarray(cardiac, dtype=np.float64)
        _check_cover(t, cardiac_start, cardiac_start + len(c) / cardiac_sfreq, "cardiac", where)
        peaks, kind = cardiac_peaks(c, float(cardiac_sfreq), kind=cardiac_kind, where=where)
        pk_t = cardiac_start + peaks / float(cardiac_sfreq)
        summary.update({"cardiac_detector": kind, "beats": int(len(peaks)), "heart_rate_bpm": round(60.0 / float(np.median(np.diff(pk_t))), 1)})
    r_phase = None
    if need_r and resp is not None:
        r = np.asarray(resp, dtype=np.float64)
        rs = float(resp_sfreq)
        _check_cover(t, resp_start, resp_start + len(r) / rs, "respiration", where)
        if not np.all(np.isfinite(r)) or np.ptp(r) == 0:
            raise Eeg2fmriInputError(f"{where}: expected a finite, non-constant respiration trace, got "
                                     f"{'non-finite values' if not np.all(np.isfinite(r)) else 'a constant'}; check the channel or column.")
        r_phase = (r, rs)
        # a belt that slipped or came loose: flat (little breathing depth) over a long part of the run (user test 58 #4)
        depth = respiration_volume(r, rs, t - resp_start)
        flat = depth < 0.1 * float(np.median(depth))
        if flat.mean() > 0.2:
            from eeg2fmri.utils.logs import warn_once_per_process

            at = t[flat]
            (logger.debug if quiet else warn_once_per_process)(f"{where}: the respiration trace is nearly flat (breathing depth under a tenth of its median) at "
                                  f"{flat.mean():.0%} of the volumes, from {at[0]:.0f} to {at[-1]:.0f} s: a belt that slipped or came "
                                  "loose; its respiratory regressors describe only the rest of the run")
            summary["respiration_flat_fraction"] = round(float(flat.mean()), 3)
        from scipy.signal import welch

        f, p = welch(r - r.mean(), fs=rs, nperseg=min(len(r), int(64 * rs)))
        band = (f >= 0.05) & (f <= 1.0)
        if band.any():
            summary["breaths_per_min"] = round(60.0 * float(f[band][np.argmax(p[band])]), 1)
    if "retroicor" in groups:
        if pk_t is not None:
            ph = cardiac_phase(pk_t, t)
            for m in range(1, order + 1):
                cols += [np.cos(m * ph), np.sin(m * ph)]
                names += [f"retroicor_c{m}_cos", f"retroicor_c{m}_sin"]
        if r_phase is not None:
            r, rs = r_phase
            ph_all = respiratory_phase(r, rs)
            ph = ph_all[np.clip(np.round((t - resp_start) * rs).astype(np.int64), 0, len(r) - 1)]
            for m in range(1, order + 1):
                cols += [np.cos(m * ph), np.sin(m * ph)]
                names += [f"retroicor_r{m}_cos", f"retroicor_r{m}_sin"]
    if "hr" in groups and pk_t is not None:
        grid = np.arange(min(t[0], pk_t[0]) - 40.0, t[-1] + 1.0, 1.0 / _GRID_HZ)
        cols.append(_convolved(heart_rate(pk_t, grid), grid, crf, t))
        names.append("hr_crf")
    if "rv" in groups and r_phase is not None:
        r, rs = r_phase
        rel = np.arange(int(len(r) / rs * _GRID_HZ)) / _GRID_HZ  # (from the recording's first sample: the same on any clock)
        cols.append(_convolved(respiration_volume(r, rs, rel), resp_start + rel, rrf, t))
        names.append("rv_rrf")
    if "hr_lags" in groups and pk_t is not None:
        for d in PHYSIO_LAGS_S:
            v = heart_rate(pk_t, t - d)
            cols.append(v - v.mean())
            names.append(f"hr_lag{d:g}s")
    if "rv_lags" in groups and r_phase is not None:
        r, rs = r_phase
        for d in PHYSIO_LAGS_S:
            v = respiration_volume(r, rs, t - d - resp_start)
            cols.append(v - v.mean())
            names.append(f"rv_lag{d:g}s")
    if not cols:
        have = [k for k, v in (("a cardiac trace", cardiac), ("a respiration trace", resp)) if v is not None]
        raise Eeg2fmriInputError(f"{where}: no physiological regressor could be built for groups {list(groups)}: they need "
                                 f"{'a cardiac trace' if need_c else 'a respiration trace'}{' or a respiration trace' if need_c and need_r else ''} "
                                 "(ECG/pulse: channel type 'ecg' or a BIDS *_physio.tsv.gz 'cardiac' column; belt: channel type 'resp' or "
                                 f"a 'respiratory' column), found {' and '.join(have) or 'neither'}; give the trace or choose other groups.")
    return np.column_stack(cols), names, summary


#: The trace each regressor group is built from.
_GROUP_TRACE = {"retroicor": ("cardiac", "respiratory"), "hr": ("cardiac",), "hr_lags": ("cardiac",), "rv": ("respiratory",),
                "rv_lags": ("respiratory",)}


def traces_needed(groups: Sequence[str]) -> set[str]:
    """The traces (``"cardiac"``, ``"respiratory"``) that regressor ``groups`` are built from."""
    return {k for g in groups for k in _GROUP_TRACE[g]}


def regressors_from_traces(times: np.ndarray, traces: dict, groups: Sequence[str], *, where: str = "physio",
                           quiet: bool = False) -> tuple[np.ndarray, list[str], dict]:
    """:func:`physio_regressors` of ``traces`` = ``{"cardiac" | "respiratory": {"values", "sfreq", "start"}}`` (either may
    be missing)."""
    c, r = traces.get("cardiac"), traces.get("respiratory")
    return physio_regressors(
        np.asarray(times, dtype=np.float64),
        cardiac=None if c is None else c["values"], cardiac_sfreq=None if c is None else c["sfreq"],
        cardiac_start=0.0 if c is None else c["start"], resp=None if r is None else r["values"],
        resp_sfreq=None if r is None else r["sfreq"], resp_start=0.0 if r is None else r["start"], groups=groups,
        where=where, quiet=quiet)


# --------------------------------------------------------------------------- BIDS physio files
def find_physio_files(bold_path: str | os.PathLike, eeg_path: str | os.PathLike | None = None) -> list[Path]:
    """BIDS physiological recordings of a BOLD run: ``<stem>_physio.tsv.gz`` and ``<stem>_recording-<label>_physio.tsv.gz``
    next to ``<stem>_bold.nii[.gz]`` or, for a preprocessed BOLD of derivatives (``_space-``, ``_res-``, ``_den-``,
    ``_desc-`` entities dropped from the stem), in the raw ``func`` folder beside the run's EEG folder (``eeg_path``).
    Empty list if none."""
    p = Path(bold_path)
    name = p.name
    for suffix in ("_bold.nii.gz", "_bold.nii"):
        if name.endswith(suffix):
            stem = name[: -len(suffix)]
            break
    else:
        return []
    stem = "_".join(e for e in stem.split("_") if not e.startswith(("space-", "res-", "den-", "desc-")))
    folders = [p.parent] + ([Path(eeg_path).parent.parent / "func"] if eeg_path is not None else [])
    found: list[Path] = []
    for d in dict.fromkeys(folders):
        found += [d / f"{stem}_physio.tsv.gz", *sorted(d.glob(f"{stem}_recording-*_physio.tsv.gz"))]
    return list(dict.fromkeys(f for f in found if f.is_file()))


def _physio_sidecar(path: Path) -> Path:
    """The ``.json`` of a ``*_physio.tsv.gz``: its own, else one it inherits (BIDS inheritance: e.g. ``task-rest_physio.json``
    at the dataset root); the own name where there is none."""
    from eeg2fmri.io.bids import inherited_sidecars

    own = path.with_name(path.name[: -len(".tsv.gz")] + ".json")
    if own.is_file():
        return own
    up = inherited_sidecars(path.with_name(path.name[: -len(".gz")]), "physio", "physio.json")
    return up[0] if up else own


TRIGGER_COLUMNS = ("trigger",)


def _rising_edges(x: np.ndarray) -> np.ndarray:
    """Samples where a pulse train enters its pulse level: the rarer of its two levels (a scanner's trigger pulses are short;
    active-low pulses too), a first sample already at it counted."""
    x = np.asarray(x, dtype=np.float64)
    good = x[np.isfinite(x)]
    if len(good) < 2 or np.ptp(good) == 0:
        return np.zeros(0, dtype=np.int64)
    high = np.nan_to_num(x, nan=float(np.median(good))) > (good.min() + good.max()) / 2
    if high.mean() > 0.5:  # pulses low (review: active-low triggers gave "StartTime is -0.000")
        high = ~high
    return np.flatnonzero(np.r_[high[0], high[1:] & ~high[:-1]])


def trigger_offset(values: np.ndarray, sfreq: float, start: float, tr: float) -> tuple[float, int] | None:
    """Where a BIDS physio file's ``trigger`` column puts the volume starts against its ``StartTime``.

    Parameters
    ----------
    values : array, shape (n_samples,)
        The trigger column (scanner pulses, any two levels).
    sfreq : float
        Its sampling rate (Hz).
    start : float
        ``StartTime`` (s; the first sample's time from the BOLD file's first volume).
    tr : float
        The run's repetition time (s).

    Returns
    -------
    (offset, n_pulses) | None
        The mean time (s, circular over the TR) of the pulses from the nearest volume start that ``StartTime`` implies (``k * tr``),
        in ``[-tr/2, tr/2)``: about 0 when ``StartTime`` is right (it can tell a shift only modulo the TR), and the number
        of pulses; ``None`` with fewer than 3 pulses or pulses not one per TR (e.g. one per slice).
    """
    edges = _rising_edges(values)
    if len(edges) < 3:
        return None
    t = float(start) + edges / float(sfreq)
    if abs(float(np.median(np.diff(t))) - tr) > 0.05 * tr:
        return None
    # circular mean of the phases within the TR (a median of values wrapped at +-TR/2 split near there: a review)
    off = float(np.angle(np.mean(np.exp(2j * np.pi * t / tr))) * tr / (2 * np.pi))
    return (off if off < tr / 2 else off - tr), int(len(edges))


def read_bids_physio(path: str | os.PathLike, *, quiet: bool = False) -> dict[str, tuple[np.ndarray, float, float]]:
    """Read a BIDS ``*_physio.tsv.gz`` with its ``.json`` sidecar (``SamplingFrequency``, ``StartTime``, ``Columns``).

    Returns
    -------
    traces : dict
        ``{"cardiac": (values, sfreq, start), "respiratory": (...), "trigger": (...)}`` for the columns found (names in
        :data:`CARDIAC_COLUMNS` / :data:`RESPIRATORY_COLUMNS` / :data:`TRIGGER_COLUMNS`); ``start`` in seconds from the first
        volume. ``quiet``: missing samples filled are logged at debug level instead of warned about.
    """
    path = Path(path)
    side = _physio_sidecar(path)
    if not side.is_file():
        raise Eeg2fmriInputError(f"{path}: expected its sidecar {side.name} (BIDS: SamplingFrequency, StartTime, Columns), found none "
                                 "(nor one it inherits from a folder above); write it beside the recording.")
    try:
        meta = json.loads(side.read_text())
    except (OSError, ValueError) as err:
        raise Eeg2fmriInputError(f"{side}: could not read JSON ({err}); expected a BIDS physio sidecar.") from None
    if not isinstance(meta, dict):
        raise Eeg2fmriInputError(f"{side}: expected a JSON object (SamplingFrequency, StartTime, Columns), got a {type(meta).__name__}.")
    missing = [k for k in ("SamplingFrequency", "Columns") if k not in meta]
    if missing:
        raise Eeg2fmriInputError(f"{side}: expected the BIDS keys SamplingFrequency, StartTime and Columns, missing "
                                 f"{missing + (['StartTime'] if 'StartTime' not in meta else [])}; add them.")
    for k in ("SamplingFrequency", "StartTime"):  # (a review: "StartTime": null crashed prepare with a TypeError)
        if k in meta and (isinstance(meta[k], bool) or not isinstance(meta[k], (int, float))):
            raise Eeg2fmriInputError(f"{side}: expected {k} as a number ({'Hz' if k == 'SamplingFrequency' else 's'}), got {meta[k]!r}; "
                                     "fix the sidecar.")
    if not isinstance(meta["Columns"], list):
        raise Eeg2fmriInputError(f"{side}: expected Columns as a list of column names, got {meta['Columns']!r}; fix the sidecar.")
    sfreq, columns = float(meta["SamplingFrequency"]), [str(c) for c in meta["Columns"]]
    if not sfreq > 0:
        raise Eeg2fmriInputError(f"{side}: expected SamplingFrequency > 0, got {meta['SamplingFrequency']!r}.")
    import pandas as pd

    try:
        table = pd.read_csv(path, sep="\t", header=None, compression="gzip", dtype=np.float64, na_values=["n/a"])
    except (OSError, ValueError, EOFError) as err:
        raise Eeg2fmriInputError(f"{path}: could not read a gzipped headerless TSV of numbers ({type(err).__name__}: {err}); expected "
                                 "the BIDS physio format (one column per entry of Columns in the sidecar).") from None
    if table.shape[1] != len(columns):
        raise Eeg2fmriInputError(f"{path}: {table.shape[1]} column(s), but {side.name} lists {len(columns)} ({columns}); expected one "
                                 "column per name in Columns.")
    if "StartTime" not in meta:  # (user test 58 #10: the trigger column gives it)
        hint = ""
        trig = [c for c in columns if c.lower() in TRIGGER_COLUMNS]
        if trig:
            edges = _rising_edges(table[columns.index(trig[0])].to_numpy())
            if len(edges):
                hint = (f" Its {trig[0]!r} column has {len(edges)} pulse(s), the first at {edges[0] / sfreq:.3f} s from the "
                        f"recording's start: if that pulse is the BOLD file's first volume, StartTime is {-edges[0] / sfreq:.3f}.")
        raise Eeg2fmriInputError(f"{side}: expected the BIDS keys SamplingFrequency, StartTime and Columns, missing ['StartTime'] "
                                 f"(seconds from the first volume to the recording's first sample; negative when it began before); add it.{hint}")
    start = float(meta["StartTime"])
    out = {}
    for name in columns:
        key = name.lower()
        kind = ("cardiac" if key in CARDIAC_COLUMNS else "respiratory" if key in RESPIRATORY_COLUMNS else
                "trigger" if key in TRIGGER_COLUMNS else None)
        if kind and kind not in out:
            raw = table[columns.index(name)].to_numpy()
            values = raw if kind == "trigger" else _fill_dropouts(raw, sfreq, start, f"{path} column {name!r}", quiet)
            out[kind] = (values, sfreq, start)
    return out


#: The longest run of missing (``n/a``) samples filled by linear interpolation (s): scanner pulse and belt logs drop samples.
MAX_DROPOUT_S = 2.0


def _fill_dropouts(x: np.ndarray, sfreq: float, start: float, where: str, quiet: bool = False) -> np.ndarray:
    """``x`` with runs of missing samples up to :data:`MAX_DROPOUT_S` long filled by linear interpolation (a warning says
    how many); a longer run is an error naming its time (s from the first volume)."""
    x = np.asarray(x, dtype=np.float64)
    bad = ~np.isfinite(x)
    if not bad.any():
        return x
    if bad.all():
        raise Eeg2fmriInputError(f"{where}: every sample is missing (n/a); expected a recorded trace; leave the column out of Columns.")
    edges = np.diff(np.r_[0, bad.astype(np.int8), 0])
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    longest = int(np.argmax(stops - starts))
    if (stops[longest] - starts[longest]) / sfreq > MAX_DROPOUT_S:
        t0, t1 = start + starts[longest] / sfreq, start + stops[longest] / sfreq
        raise Eeg2fmriInputError(f"{where}: {len(starts)} run(s) of missing (n/a) samples, the longest {t1 - t0:.1f} s ({t0:.1f}-{t1:.1f} s "
                                 f"from the first volume), expected none longer than {MAX_DROPOUT_S:g} s (filled by interpolation); "
                                 "the trace cannot time heartbeats or breaths across such a gap: prepare this run without the "
                                 "physio option (its own dataset), or cut the BOLD to the part the trace covers.")
    from eeg2fmri.utils.logs import warn_once_per_process

    good = np.flatnonzero(~bad)
    x = x.copy()
    x[bad] = np.interp(np.flatnonzero(bad), good, x[good])
    (logger.debug if quiet else warn_once_per_process)(f"{where}: {int(bad.sum())} missing (n/a) sample(s) in {len(starts)} run(s) of at most "
                          f"{(stops - starts).max() / sfreq:.2f} s filled by linear interpolation")
    return x


def physio_note(runs: Sequence[Any]) -> str | None:
    """For ``eeg2fmri datasets --check``: the physiological recordings the runs have -- EEG channels typed ``ecg`` /
    ``resp`` and BIDS ``*_physio.tsv.gz`` files beside the BOLD (their columns) -- and the prepare option that uses them,
    or None without any. A run whose EEG cannot be read is left to the check's own problems."""
    from eeg2fmri.io.layouts import read_layout_eeg

    channels: dict[str, int] = {}
    columns: dict[str, int] = {}
    n_files = 0
    seen: set[str] = set()
    for run in runs:
        path = str(getattr(run, "eeg_path", ""))
        if path not in seen:
            seen.add(path)
            try:
                types = read_layout_eeg(run, preload=False).get_channel_types()
            except Exception:  # noqa: BLE001  (a file that cannot be read is the check's own finding)
                types = []
            for t in sorted(set(types) & {"ecg", "resp"}):
                channels[t] = channels.get(t, 0) + 1
        bold = getattr(run, "bold_path", None)
        files = find_physio_files(bold, getattr(run, "eeg_path", None)) if bold is not None else []
        n_files += bool(files)
        for f in files:
            try:
                cols = json.loads(_physio_sidecar(f).read_text()).get("Columns") or []
            except (OSError, ValueError):
                cols = ["(no readable sidecar)"]
            for c in cols:
                columns[str(c)] = columns.get(str(c), 0) + 1
    if not channels and not n_files:
        return None
    found = [f"{n} recording(s) with an EEG channel typed {t}" for t, n in channels.items()]
    if n_files:
        found.append(f"BIDS physio files beside {n_files} BOLD run(s) (columns: {', '.join(f'{c} {n}x' for c, n in columns.items())})")
    return ("physiological recordings: " + "; ".join(found) + ". The EEG's pulse artefact and breathing drifts can predict the BOLD's "
            "physiological noise, which scores would credit to the EEG: prepare --config '{\"physio\": \"regress\"}' regresses "
            "RETROICOR, heart rate and respiration volume regressors built from them out of the BOLD")


def physio_check(runs: Sequence[Any], physio: Any, incomplete: str = "error", drop_volumes: Any = "auto") -> tuple[list[str], list[str]]:
    """For ``eeg2fmri datasets --check --config`` with the prepare option ``physio``: what prepare will find of each run's
    physiological traces, checked as prepare checks them (user test 58 #6).

    Each run's BIDS ``*_physio.tsv.gz`` files (for the traces its EEG file has no channel for) are read, their span
    compared with the BOLD's volumes (on the BIDS clock: volume ``k``'s middle at ``(k + 0.5) * TR``), the trigger column
    with ``StartTime``, and the regressors built as prepare builds them.

    Parameters
    ----------
    runs : sequence of LayoutRun
        The runs of the check.
    physio : "regress" | list of str
        The prepare option.
    incomplete : {"error", "trim", "unregressed"}
        The prepare option ``physio_incomplete``: with ``"error"`` a run that prepare would refuse is a problem, else a note
        (``"trim"``: a problem where less than a quarter of the run, or 10 volumes, would remain).
    drop_volumes : int | "auto"
        The prepare option: the leading volumes it leaves out are not checked; with ``"auto"`` (detected by prepare) a
        recording that misses only the first 10 volumes is a note.

    Returns
    -------
    problems, notes : list of str
        One note per physio file read (rate, ``StartTime``, span against the volumes, columns taken, detector, rates).
    """
    from eeg2fmri.io.bold import read_bold
    from eeg2fmri.io.layouts import read_layout_eeg

    groups = check_physio_option(physio, "--config physio") or ()
    need = traces_needed(groups)
    problems: list[str] = []
    notes: list[str] = []
    for run in runs:
        bold = getattr(run, "bold_path", None)
        if bold is None:
            continue
        key = getattr(run, "key", str(bold))
        try:
            types = set(read_layout_eeg(run, preload=False).get_channel_types())
        except Exception:  # noqa: BLE001  (an EEG that cannot be read is the check's own finding)
            types = set()
        have = {k for k, t in (("cardiac", "ecg"), ("respiratory", "resp")) if t in types and k in need}
        traces: dict[str, tuple[np.ndarray, float, float]] = {}
        taken: dict[str, str] = {}
        failed: Eeg2fmriInputError | None = None
        try:
            img, tr = read_bold(bold)
            n_vol = int(img.shape[3])
            first = int(drop_volumes) if isinstance(drop_volumes, (int, np.integer)) and not isinstance(drop_volumes, bool) else 0
            middles = (np.arange(min(first, n_vol - 1), n_vol) + 0.5) * tr
            for f in find_physio_files(bold, getattr(run, "eeg_path", None)) if need - have else []:
                found = read_bids_physio(f)
                used = [k for k in found if k in need - have and k not in traces]
                for k in used:
                    traces[k] = found[k]
                    taken[k] = f.name
                sf, start = next(iter(found.values()))[1:] if found else (float("nan"), float("nan"))
                lens = [len(v[0]) / v[1] for v in found.values()]
                line = (f"{f.name}: {sf:g} Hz, StartTime {start:g} s, covers {start:.1f} to {start + max(lens, default=0):.1f} s "
                        f"of the volumes' middles {0.5 * tr:.1f} to {(n_vol - 0.5) * tr:.1f} s; used: {', '.join(used) or 'nothing'}")
                if "trigger" in found:
                    off = trigger_offset(*found["trigger"], tr)
                    if off is not None and abs(off[0]) > max(2.0 / found["trigger"][1], 0.02):
                        line += f"; its {off[1]} trigger pulses fall {off[0]:+.3f} s from the volume starts StartTime implies (StartTime off?)"
                    elif off is not None:
                        line += f"; its {off[1]} trigger pulses agree with StartTime"
                notes.append(line)
            if not traces and not have:
                raise Eeg2fmriInputError(f"{key}: no cardiac or respiration recording (no EEG channel typed ecg/resp, no BIDS physio file "
                                         "with a cardiac or respiratory column)")
            if traces:
                _, _, summary = regressors_from_traces(
                    middles, {k: dict(zip(("values", "sfreq", "start"), v)) for k, v in traces.items()}, groups,
                    where=f"{key}: physiology ({', '.join(f'{k} from {v}' for k, v in taken.items())})")
                notes.append(f"{key}: physio regressors can be built" + "".join(f", {k} {v}" for k, v in summary.items()))
        except Eeg2fmriInputError as err:
            failed = err
        if failed is None:
            continue
        covered = None
        if isinstance(failed, PhysioCoverageError):  # which volume middles the recording covers (as prepare counts them)
            lo, hi = failed.span
            covered = (middles >= lo - COVER_SLACK_S) & (middles <= hi + COVER_SLACK_S)
        if incomplete == "unregressed":
            notes.append(f"physio: prepare will prepare this run without physiological regressors (physio_incomplete: 'unregressed'): {failed}")
        elif incomplete == "trim" and covered is not None and covered.sum() >= max(10, len(middles) // 4):
            notes.append(f"physio: prepare will leave out the {int((~covered).sum())} volume(s) the recording does not cover "
                         f"(physio_incomplete: 'trim'): {failed}")
        elif covered is not None and drop_volumes == "auto" and (~covered).any() and np.flatnonzero(~covered).max() < 10:
            k = int(np.flatnonzero(~covered).max()) + 1  # (a review: a note and exit 0, then prepare refused)
            problems.append(f"physio: the recording misses only the first {k} volume(s): prepare stops unless its non-steady-state "
                            f"check (drop_volumes 'auto') happens to leave them out; set drop_volumes: {k} (or physio_incomplete: "
                            f"'trim'): {failed}")
        else:
            problems.append(f"physio: {failed}" + (f" (with 'trim', {int(covered.sum())} of {len(middles)} volumes would remain: "
                                                   f"fewer than {max(10, len(middles) // 4)})" if incomplete == "trim" and covered is not None else ""))
    return problems, notes
