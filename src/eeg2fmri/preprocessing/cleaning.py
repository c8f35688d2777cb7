"""Remove MRI gradient and pulse (BCG) artefacts from in-scanner EEG.

* :func:`remove_gradient_artifacts` -- average artefact subtraction (AAS, Allen et al. 2000)
  as in FASTR (Niazy et al. 2005): epochs locked to the volume (or slice) markers are
  upsampled (``scipy.signal.resample_poly``), aligned to a common reference to a fraction of
  a sample by cross-correlation, and each epoch's artefact is the mean of the ``n_template``
  nearest other epochs, evaluated back at that epoch's own sub-sample position and
  subtracted; optionally the optimal basis set (OBS: the first principal components of the
  residual artefact over epochs, fitted per epoch and channel) removes what averaging
  leaves. Low-pass filtering is left to the band-power step.
* :func:`remove_bcg_artifacts` -- R peaks from the ECG channel
  (``mne.preprocessing.find_ecg_events``), then PCA-OBS (``mne.preprocessing.apply_pca_obs``).
* :func:`artifact_power_report` -- power at the volume (``k / TR``) and slice
  (``k * n_slices / TR``) lines before and after, in dB (median over channels).
* :func:`clean_raw` -- the one entry point: gradient, then BCG, then the report.

Every function returns a new Raw and never modifies its input.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from eeg2fmri.utils.logs import logger
from eeg2fmri.utils.validation import (
    Eeg2fmriInputError,
    check_choice,
    check_positive,
    check_positive_int,
)

__all__ = ["GRADIENT_METHODS", "BCG_METHODS", "artifact_power_report", "clean_raw", "find_markers", "remove_bcg_artifacts",
           "remove_gradient_artifacts"]

GRADIENT_METHODS = (None, "aas")
BCG_METHODS = (None, "pca_obs", "aas")
#: Default scanner volume marker names (as in :mod:`eeg2fmri.io.sync`).
VOLUME_MARKERS = ("R128", "Scanner/Scan Start", "Scan Start", "TR")
#: Half-length (original samples) of the interpolation filter used for upsampling.
_HALF = 48


def _where(raw, where: str | None) -> str:
    if where:
        return where
    fn = raw.filenames[0] if getattr(raw, "filenames", None) and raw.filenames[0] else None
    return str(fn) if fn else "EEG"


def find_markers(raw, names, *, where: str = "EEG") -> tuple[np.ndarray, str | None]:
    """Times (s from the first sample) of the first marker name found among ``raw``'s annotations.

    Parameters
    ----------
    raw : mne.io.BaseRaw
    names : str | sequence of str
        Marker descriptions tried in order (case-insensitive, with or without a ``Type/``
        prefix, spaces ignored: ``"R128"`` matches ``"Response/R128"``).
    where : str
        Recording name for messages.

    Returns
    -------
    times : array, shape (n_markers,)
        Sorted; empty when no name matches.
    name : str | None
        The name that matched.
    """
    def norm(text: str) -> str:
        return str(text).strip().lower().replace(" ", "")

    def _match(desc: str, m: str) -> bool:
        d, m = norm(desc), norm(m)
        return d == m or d.endswith("/" + m)

    wanted = (names,) if isinstance(names, str) else tuple(names)
    descs = [str(d) for d in raw.annotations.description]
    times = np.asarray(raw.annotations.onset, dtype=float) - (raw.first_time if raw.annotations.orig_time is not None else 0.0)
    for m in wanted:
        hit = np.array([_match(d, m) for d in descs], dtype=bool)
        if hit.any():
            return np.sort(times[hit]), m
    return np.zeros(0), None


# ---------------------------------------------------------------------------------------
# gradient artefact: AAS (+ OBS)


def _epochs(x: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """Rows ``x[s : s + length]`` (edge-padded outside ``x``), shape (n_epochs, length)."""
    idx = starts[:, None] + np.arange(length)[None, :]
    return x[np.clip(idx, 0, len(x) - 1)]


def _frac_index(up: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """``up[k, pos[k, j]]`` at fractional positions, by linear interpolation between upsampled samples.

    ``up`` (n_epochs, n_up), ``pos`` (n_epochs, n) -> (n_epochs, n). Between samples of a
    ``upsample``-times oversampled signal linear interpolation is accurate to a few 1e-3.
    """
    i0 = np.clip(np.floor(pos).astype(np.int64), 0, up.shape[1] - 2)
    w = np.clip(pos - i0, 0.0, 1.0)
    rows = np.arange(len(up))[:, None]
    return up[rows, i0] * (1.0 - w) + up[rows, i0 + 1] * w


def _estimate_shifts(up: np.ndarray, base: int, length: int, search: int, n_iter: int = 2) -> np.ndarray:
    """Shifts (upsampled samples, fractional) aligning every epoch to the mean aligned epoch.

    ``up`` (n_epochs, n_up); the aligned epoch ``k`` is ``up[k, base + s_k : base + s_k + length]``.
    The cross-correlation is computed at whole upsampled lags within ``±search`` and its peak
    refined by a parabola through the best lag and its neighbours.
    """
    shifts = np.zeros(len(up))
    lags = np.arange(-search, search + 1)
    grid = np.arange(length)[None, :]
    for _ in range(n_iter):
        ref = _frac_index(up, base + shifts[:, None] + grid).mean(axis=0)
        ref = ref - ref.mean()
        score = np.empty((len(up), len(lags)))
        for j, lag in enumerate(lags):
            seg = up[:, base + lag : base + lag + length]
            seg = seg - seg.mean(axis=1, keepdims=True)
            score[:, j] = (seg @ ref) / np.maximum(np.linalg.norm(seg, axis=1), 1e-30)
        best = np.clip(np.argmax(score, axis=1), 1, len(lags) - 2)
        r = np.arange(len(up))
        y0, y1, y2 = score[r, best - 1], score[r, best], score[r, best + 1]
        den = y0 - 2 * y1 + y2
        delta = np.where(np.abs(den) > 1e-30, 0.5 * (y0 - y2) / np.where(np.abs(den) > 1e-30, den, 1.0), 0.0)
        shifts = lags[best] + np.clip(delta, -1.0, 1.0)
        shifts -= np.median(shifts)  # keep the reference frame centred
        shifts = np.clip(shifts, -search, search)
    return shifts


def _sliding_mean(al: np.ndarray, n_template: int) -> np.ndarray:
    """For every epoch, the mean of the ``n_template`` nearest *other* epochs, shape like ``al``."""
    n = len(al)
    k = min(n_template, n - 1)
    half = k // 2
    lo = np.clip(np.arange(n) - half, 0, n - 1 - k)  # window [lo, lo + k + 1) holds k others plus the epoch itself
    csum = np.concatenate([np.zeros((1,) + al.shape[1:]), np.cumsum(al, axis=0)])
    total = csum[lo + k + 1] - csum[lo]
    return (total - al) / k


def _obs(resid: np.ndarray, n_components: int) -> np.ndarray:
    """The part of every residual epoch (rows) in the span of the first principal components over epochs."""
    r = resid - resid.mean(axis=1, keepdims=True)  # each epoch's offset is EEG, not artefact
    _, _, vt = np.linalg.svd(r, full_matrices=False)
    v = vt[:n_components]
    return (r @ v.T) @ v


def remove_gradient_artifacts(
    raw,
    *,
    volume_onsets: np.ndarray | None = None,
    slice_onsets: np.ndarray | None = None,
    marker: str | tuple[str, ...] | None = VOLUME_MARKERS,
    slice_marker: str | tuple[str, ...] | None = None,
    n_template: int = 21,
    upsample: int = 10,
    obs_components: int = 3,
    search: int = 2,
    picks=("eeg", "ecg", "eog", "emg"),
    where: str | None = None,
):
    """Gradient artefact removal by average artefact subtraction (AAS), with optional OBS.

    Epochs start at the markers (slice markers when given, else volume markers) and last
    the median marker interval ``L``; each epoch is corrected over ``[marker, next
    marker)`` (at most ``L + 1`` samples; longer gaps are left as they are). For every
    channel:

    1. epochs (with margins for the filter) are mean-removed and upsampled ``upsample`` times
       (``resample_poly`` with a 97-sample Kaiser-windowed sinc);
    2. sub-sample shifts (within ``±search`` samples) align every epoch to the mean epoch:
       the peak of the cross-correlation at the upsampled lags, refined by a parabola
       (aligned epochs are read between upsampled samples by linear interpolation); they are
       estimated once, on the channel with the largest artefact, since timing is common
       to all channels;
    3. the template of epoch ``k`` is the mean of the ``n_template`` aligned epochs
       nearest to it (``k`` excluded, so that its own EEG is not subtracted), read back at
       ``k``'s own shift at the original samples and subtracted;
    4. with ``obs_components > 0``, the first principal components over epochs of the
       residual (the artefact left by imperfect alignment and slow changes) are fitted to
       every epoch by least squares and subtracted.

    Parameters
    ----------
    raw : mne.io.BaseRaw
        The recording (read into memory if it is not).
    volume_onsets, slice_onsets : array, shape (n_markers,) | None
        Marker times in seconds from the first sample; ``None`` reads them from the
        annotations named by ``marker`` / ``slice_marker``.
    marker, slice_marker : str | tuple of str | None
        Annotation names of volume and slice markers.
    n_template : int
        Epochs averaged into every template (default 21).
    upsample : int
        Upsampling factor for the sub-sample alignment.
    obs_components : int
        Principal components of the residual removed per epoch (0: none).
    search : int
        Largest alignment shift searched, in original samples.
    picks : sequence of str
        Channel types corrected (gradient artefacts reach every lead).
    where : str | None
        Recording name for messages (default: the file name).

    Returns
    -------
    cleaned : mne.io.BaseRaw
        A corrected copy.
    info : dict
        ``epochs`` ("slice" | "volume"), ``n_epochs``, ``epoch_samples``, ``shifts``
        (sub-sample shifts in samples, min/median/max), ``channels`` corrected.

    Raises
    ------
    Eeg2fmriInputError
        No markers, fewer than ``n_template + 1`` epochs, or bad settings.
    """
    import mne
    from scipy.signal import resample_poly

    where = _where(raw, where)
    n_template = check_positive_int(n_template, "n_template", where=where, fix="pass the number of epochs averaged, e.g. 21")
    upsample = check_positive_int(upsample, "upsample", where=where, fix="pass an upsampling factor such as 10")
    search = check_positive_int(search, "search", where=where)
    if not isinstance(obs_components, (int, np.integer)) or isinstance(obs_components, bool) or obs_components < 0:
        raise Eeg2fmriInputError(f"{where}: expected obs_components to be an integer >= 0, got {obs_components!r}; pass 0 to skip OBS.")
    sf = float(raw.info["sfreq"])
    kind = "slice"
    times = None if slice_onsets is None else np.sort(np.asarray(slice_onsets, dtype=float))
    if times is None and slice_marker is not None:
        times, _ = find_markers(raw, slice_marker, where=where)
        times = times if len(times) else None
    if times is None:
        kind = "volume"
        if volume_onsets is not None:
            times = np.sort(np.asarray(volume_onsets, dtype=float))
        elif marker is not None:
            times, _ = find_markers(raw, marker, where=where)
        if times is None or len(times) == 0:
            present = sorted({str(d) for d in raw.annotations.description})[:15]
            wanted = [marker] if isinstance(marker, str) else list(marker or [])
            raise Eeg2fmriInputError(
                f"{where}: expected scanner volume markers {wanted} to lock the gradient-artifact epochs to, found none "
                f"(annotations present: {present}); pass marker=<the volume marker name> (--marker on the command line) "
                "or volume_onsets=<times in s>."
            )
    starts = np.round(times * sf).astype(np.int64)
    starts = starts[(starts >= 0) & (starts < raw.n_times)]
    if len(starts) < n_template + 1:
        raise Eeg2fmriInputError(
            f"{where}: found {len(starts)} {kind} marker(s), expected at least n_template + 1 = {n_template + 1} artifact epochs to "
            f"build the sliding template; lower n_template (e.g. {max(len(starts) - 1, 1)}), use slice markers, or clean a longer recording."
        )
    gaps = np.diff(starts)
    length = int(np.round(np.median(gaps)))
    if length < 4:
        raise Eeg2fmriInputError(f"{where}: {kind} markers are {length} sample(s) apart, expected at least 4; check the marker name and the sampling rate.")
    tile = np.r_[np.minimum(gaps, length + 1), length]  # samples corrected after each marker
    tile = np.minimum(tile, raw.n_times - starts)
    out = raw.copy().load_data(verbose=False)
    types = set(picks)
    chans = [i for i, t in enumerate(out.get_channel_types()) if t in types]
    if not chans:
        raise Eeg2fmriInputError(f"{where}: expected channels of type {sorted(types)} to clean, found none; set the channel types (raw.set_channel_types).")
    data = out._data  # the copy's array, corrected in place
    margin = 2 * search + _HALF + 1  # the interpolation filter reaches _HALF original samples beyond the shifted frame
    from scipy.signal import firwin

    # a long Kaiser-windowed sinc: accurate interpolation up to ~0.95 x Nyquist (resample_poly's default is 10 samples long)
    interp = firwin(2 * _HALF * upsample + 1, 1.0 / upsample, window=("kaiser", 9.0))
    ext = length + 1 + 2 * search  # aligned frame: offsets -search .. length + search (original samples)
    n_seg = ext + 2 * (margin - search)
    seg_starts = starts - margin
    base = (margin - search) * upsample  # aligned frame start inside an upsampled segment, before shifting
    frame = ext * upsample
    # shifts from the channel with the largest artefact (the timing is common to all leads)
    ref_ch = chans[int(np.argmax([np.median(np.abs(_epochs(data[c], starts, length) - data[c].mean())) for c in chans]))]
    up_ref = resample_poly(_epochs(data[ref_ch], seg_starts, n_seg), upsample, 1, axis=1, window=interp)
    shifts = _estimate_shifts(up_ref, base, frame, search * upsample)
    del up_ref
    for c in chans:
        segs = _epochs(data[c], seg_starts, n_seg).astype(np.float64)
        segs -= segs.mean(axis=1, keepdims=True)
        up = resample_poly(segs, upsample, 1, axis=1, window=interp)
        aligned = _frac_index(up, base + shifts[:, None] + np.arange(frame)[None, :])
        template = _sliding_mean(aligned, n_template)
        # artefact of epoch k at its original samples i = 0 .. tile_k - 1: template at (i + search) * upsample - shift_k
        pos = (np.arange(length + 1)[None, :] + search) * upsample - shifts[:, None]
        art = _frac_index(template, pos)
        if obs_components:
            orig = _epochs(data[c], starts, length + 1)
            resid = orig - orig.mean(axis=1, keepdims=True) - art
            art = art + _obs(resid, obs_components)
        for k, s in enumerate(starts):
            data[c, s : s + tile[k]] -= art[k, : tile[k]]
    sh = shifts / upsample
    info = dict(epochs=kind, n_epochs=int(len(starts)), epoch_samples=length, channels=[out.ch_names[c] for c in chans],
                shifts=[float(sh.min()), float(np.median(sh)), float(sh.max())], n_template=n_template, upsample=upsample,
                obs_components=int(obs_components))
    logger.info("%s: gradient AAS on %d %s epochs of %d samples, %d channel(s), shifts %.2f..%.2f samples", where, len(starts), kind, length,
                len(chans), sh.min(), sh.max())
    if not isinstance(out, mne.io.BaseRaw):  # pragma: no cover - copy() keeps the type
        raise TypeError("internal error: copy of a Raw is not a Raw")
    return out, info


# ---------------------------------------------------------------------------------------
# pulse (BCG) artefact: PCA-OBS


def remove_bcg_artifacts(raw, *, method: str = "pca_obs", ecg_channel: str | None = None, n_components: int = 4, n_template: int = 21,
                         where: str | None = None):
    """Pulse (ballistocardiogram) artefact removal: R peaks from the ECG, then PCA-OBS or AAS.

    ``"pca_obs"`` is MNE's :func:`mne.preprocessing.apply_pca_obs` (Niazy et al. 2005): the
    mean heartbeat epoch plus ``n_components`` principal components over beats, fitted to
    every beat. When the EEG rhythms are strong next to the BCG, those components partly
    describe EEG (e.g. alpha) and fitting them removes some EEG too. ``"aas"`` (Allen et al.
    1998) subtracts from every beat the mean of its ``n_template`` nearest other beats
    (epochs from 0.25 to 0.75 of the median RR interval around the R peak), scaled to the
    beat by least squares: one dimension per beat, which leaves the EEG nearly untouched.

    Parameters
    ----------
    raw : mne.io.BaseRaw
        The recording (gradient artefacts already removed), with an ECG channel.
    ecg_channel : str | None
        Name of the ECG channel; ``None`` takes the (first) channel of type ``ecg``.
    method : {"pca_obs", "aas"}
        PCA-OBS (MNE) or average artefact subtraction.
    n_components : int
        Principal components of the heartbeat epochs fitted per beat (MNE's default, 4).
    n_template : int
        Beats averaged per template (``"aas"``).
    where : str | None
        Recording name for messages.

    Returns
    -------
    cleaned : mne.io.BaseRaw
        A corrected copy (EEG channels corrected; PCA-OBS also removes each channel's mean).
    info : dict
        ``method``, ``ecg_channel``, ``n_beats``, ``heart_rate_bpm``, ``n_components``.

    Raises
    ------
    Eeg2fmriInputError
        No ECG channel, too few R peaks, or an MNE without ``apply_pca_obs``.
    """
    import mne

    where = _where(raw, where)
    check_choice(method, "bcg method", ("pca_obs", "aas"), where=where)
    n_components = check_positive_int(n_components, "n_components", where=where)
    n_template = check_positive_int(n_template, "n_template", where=where)
    if method == "pca_obs" and not hasattr(mne.preprocessing, "apply_pca_obs"):
        raise Eeg2fmriInputError(f"{where}: pulse-artifact removal needs mne.preprocessing.apply_pca_obs (MNE >= 1.10), found MNE {mne.__version__}; "
                                 "upgrade MNE (pip install -U mne) or clean without bcg.")
    types = raw.get_channel_types()
    if ecg_channel is None:
        ecg = [n for n, t in zip(raw.ch_names, types) if t == "ecg"]
        if not ecg:
            guess = [n for n in raw.ch_names if any(s in n.upper() for s in ("ECG", "EKG"))]
            hint = f" (channel(s) {guess} look like ECG: raw.set_channel_types({{{guess[0]!r}: 'ecg'}}), or pass ecg_channel={guess[0]!r})" if guess else ""
            raise Eeg2fmriInputError(
                f"{where}: expected an ECG channel (channel type 'ecg') to find the R peaks for pulse (BCG) artifact removal, found none among "
                f"{raw.ch_names[:12]}{' ...' if len(raw.ch_names) > 12 else ''}{hint}; set its type, pass ecg_channel=<name> "
                "(--ecg-channel on the command line), or clean without bcg."
            )
        ecg_channel = ecg[0]
    elif ecg_channel not in raw.ch_names:
        raise Eeg2fmriInputError(f"{where}: expected an ECG channel named {ecg_channel!r}, found none among {raw.ch_names[:12]}; pass the ECG channel's name.")
    need = max(n_components + 2, 10)
    if raw.times[-1] < 20.0:
        raise Eeg2fmriInputError(
            f"{where}: the recording lasts {raw.times[-1]:.1f} s, expected at least 20 s (and {need} heartbeats) to find R peaks in ECG channel "
            f"{ecg_channel!r} and fit PCA-OBS; clean a longer recording."
        )
    out = raw.copy().load_data(verbose=False)
    events = mne.preprocessing.find_ecg_events(out, ch_name=ecg_channel, verbose=False)[0]
    qrs = (events[:, 0] - out.first_samp) / float(out.info["sfreq"])
    qrs = qrs[(qrs > 0) & (qrs < out.times[-1])].astype(np.float64)
    if len(qrs) < need:
        raise Eeg2fmriInputError(
            f"{where}: found {len(qrs)} R peak(s) in ECG channel {ecg_channel!r}, expected at least {need} heartbeats; "
            "check that the channel holds the ECG (and that gradient artifacts were removed first), or clean a longer recording."
        )
    eeg = [n for n, t in zip(out.ch_names, out.get_channel_types()) if t == "eeg" and n not in out.info["bads"]]
    if not eeg:
        raise Eeg2fmriInputError(f"{where}: expected EEG channels to remove pulse artifacts from, found none; set the channel types.")
    if method == "pca_obs":
        out = mne.preprocessing.apply_pca_obs(out, picks=eeg, qrs_times=qrs, n_components=n_components, copy=False, verbose=False)
    else:
        _bcg_aas(out, eeg, qrs, n_template, where)
    rate = 60.0 / float(np.median(np.diff(qrs)))
    logger.info("%s: BCG %s on %d channel(s), %d R peaks from %s (%.0f bpm)", where, method, len(eeg), len(qrs), ecg_channel, rate)
    return out, dict(method=method, ecg_channel=ecg_channel, n_beats=int(len(qrs)), heart_rate_bpm=rate, n_components=n_components)


def _bcg_aas(raw, picks: list[str], qrs: np.ndarray, n_template: int, where: str) -> None:
    """Average artefact subtraction of the pulse artefact, in place on ``raw`` (already a copy)."""
    sf = float(raw.info["sfreq"])
    r = np.round(qrs * sf).astype(np.int64)
    rr = int(np.round(np.median(np.diff(r))))
    starts = r - rr // 4
    keep = (starts >= 0) & (starts + rr <= raw.n_times)
    starts = starts[keep]
    if len(starts) < n_template + 1:
        raise Eeg2fmriInputError(f"{where}: {len(starts)} complete heartbeat epochs, expected at least n_template + 1 = {n_template + 1}; "
                                 "lower n_template or clean a longer recording.")
    tile = np.minimum(np.r_[np.diff(starts), rr], rr)
    idx = [raw.ch_names.index(c) for c in picks]
    for c in idx:
        ep = _epochs(raw._data[c], starts, rr)
        ep = ep - ep.mean(axis=1, keepdims=True)
        tpl = _sliding_mean(ep, n_template)
        tpl -= tpl.mean(axis=1, keepdims=True)
        scale = np.sum(ep * tpl, axis=1) / np.maximum(np.sum(tpl * tpl, axis=1), 1e-30)
        art = scale[:, None] * tpl
        for k, s0 in enumerate(starts):
            raw._data[c, s0 : s0 + tile[k]] -= art[k, : tile[k]]


# ---------------------------------------------------------------------------------------
# residual artefact power


def _line_power(raw, tr: float, n_slices: int | None, fmin: float, max_duration: float) -> dict[str, Any]:
    from scipy.signal import welch

    sf = float(raw.info["sfreq"])
    picks = [i for i, t in enumerate(raw.get_channel_types()) if t == "eeg" and raw.ch_names[i] not in raw.info["bads"]]
    if not picks:
        raise Eeg2fmriInputError("expected EEG channels to measure artifact power on, found none; set the channel types.")
    n = raw.n_times
    length = min(n, int(round(max_duration * sf)))
    start = (n - length) // 2
    x = raw.get_data(picks=picks, start=start, stop=start + length) * 1e6  # µV
    nperseg = min(length, int(round(8 * tr * sf)))
    f, p = welch(x, fs=sf, window="hann", nperseg=nperseg, noverlap=nperseg // 2, detrend="constant", axis=-1)
    df = f[1] - f[0]
    line = raw.info.get("line_freq") or None

    def lines(step: float) -> tuple[np.ndarray, np.ndarray]:
        k = np.arange(1, int(np.floor((sf / 2 - 2 * df) / step)) + 1)
        fk = k * step
        keep = fk >= fmin
        for lf in ([line] if line else [50.0, 60.0]):
            keep &= np.abs(fk - lf * np.rint(fk / lf)) > 1.0
        fk = fk[keep]
        idx = np.rint(fk / df).astype(int)
        pk = np.max(p[:, idx[:, None] + np.array([-1, 0, 1])[None, :]], axis=2)  # (n_chans, n_lines)
        return fk, pk

    res = {}
    fv, pv = lines(1.0 / tr)
    res["volume"] = (fv, pv)
    if n_slices:
        fs_, ps = lines(n_slices / tr)
        res["slice"] = (fs_, ps)
    return res


def artifact_power_report(
    before,
    after,
    *,
    tr: float,
    n_slices: int | None = None,
    fmin: float = 1.0,
    max_duration: float = 300.0,
    where: str | None = None,
) -> dict[str, Any]:
    """Residual gradient-artefact power at the volume and slice frequencies, before and after.

    Power spectra (Welch, ``8 * TR`` s Hann segments, of at most ``max_duration`` s from the
    middle of the recording, EEG channels, µV²/Hz) are read at every multiple of ``1 / TR``
    (the volume comb) and of ``n_slices / TR`` (the slice comb) between ``fmin`` and
    Nyquist, skipping lines within 1 Hz of a power-line harmonic (largest of the 3 bins
    around each line).

    Parameters
    ----------
    before, after : mne.io.BaseRaw
        The recording before and after cleaning (same channels and rate).
    tr : float
        Repetition time (s).
    n_slices : int | None
        Slice excitations per volume, when known.
    fmin : float
        Lowest line frequency (Hz).
    max_duration : float
        Seconds analysed.
    where : str | None
        Recording name for the log.

    Returns
    -------
    report : dict
        ``volume_hz`` and ``slice_hz`` (``None`` without ``n_slices``); for ``comb`` in
        ``("volume", "slice")``: ``{comb}_db_before``, ``{comb}_db_after`` (total power of
        the comb's lines, median over channels, dB re 1 µV²/Hz) and ``{comb}_reduction_db``
        (per-channel reduction, median over channels); ``fundamental_db_before/after``
        (power at ``1 / TR`` itself); ``n_lines``.
    """
    where = _where(before, where)
    tr = check_positive(tr, "tr", where=where, fix="pass the repetition time in seconds")
    if n_slices is not None:
        n_slices = check_positive_int(n_slices, "n_slices", where=where)
    b = _line_power(before, tr, n_slices, fmin, max_duration)
    a = _line_power(after, tr, n_slices, fmin, max_duration)
    tiny = 1e-30
    rep: dict[str, Any] = dict(volume_hz=1.0 / tr, slice_hz=None if n_slices is None else n_slices / tr)
    for comb in ("volume", "slice"):
        if comb not in b:
            continue
        fb, pb = b[comb]
        pa = a[comb][1]
        tb = 10 * np.log10(np.maximum(pb.sum(axis=1), tiny))
        ta = 10 * np.log10(np.maximum(pa.sum(axis=1), tiny))
        rep[f"{comb}_db_before"] = float(np.median(tb))
        rep[f"{comb}_db_after"] = float(np.median(ta))
        rep[f"{comb}_reduction_db"] = float(np.median(tb - ta))
        rep[f"{comb}_n_lines"] = int(len(fb))
    fb, pb = _line_power(before, tr, None, 0.0, max_duration)["volume"]
    pa = _line_power(after, tr, None, 0.0, max_duration)["volume"][1]
    rep["fundamental_db_before"] = float(np.median(10 * np.log10(np.maximum(pb[:, 0], tiny))))
    rep["fundamental_db_after"] = float(np.median(10 * np.log10(np.maximum(pa[:, 0], tiny))))
    msg = f"volume comb {rep['volume_db_before']:.1f} -> {rep['volume_db_after']:.1f} dB (-{rep['volume_reduction_db']:.1f} dB)"
    if n_slices:
        msg += f", slice comb {rep['slice_db_before']:.1f} -> {rep['slice_db_after']:.1f} dB (-{rep['slice_reduction_db']:.1f} dB)"
    logger.info("%s: residual gradient-artifact power (median over channels, dB re 1 uV^2/Hz): %s", where, msg)
    return rep


# ---------------------------------------------------------------------------------------
# entry point


def clean_raw(
    raw,
    *,
    gradient: str | None = "aas",
    bcg: str | None = "pca_obs",
    tr: float | None = None,
    volume_onsets: np.ndarray | None = None,
    slice_onsets: np.ndarray | None = None,
    marker: str | tuple[str, ...] | None = VOLUME_MARKERS,
    slice_marker: str | tuple[str, ...] | None = None,
    n_slices: int | None = None,
    ecg_channel: str | None = None,
    n_template: int = 21,
    upsample: int = 10,
    obs_components: int = 3,
    bcg_components: int = 4,
    random_state: int | None = None,
    verbose: bool | str | None = None,
    where: str | None = None,
):
    """Remove gradient and pulse artefacts from in-scanner EEG; returns a cleaned copy and a report.

    Parameters
    ----------
    raw : mne.io.BaseRaw
        The recording; never modified.
    gradient : {"aas", None}
        Gradient-artefact removal (:func:`remove_gradient_artifacts`) or none.
    bcg : {"pca_obs", "aas", None}
        Pulse-artefact removal (:func:`remove_bcg_artifacts`: MNE's PCA-OBS, or average
        artefact subtraction) or none.
    tr : float | None
        Repetition time (s) for the report; ``None`` takes the median volume-marker interval.
    volume_onsets, slice_onsets : array | None
        Marker times (s from the first sample); ``None`` reads them from the annotations.
    marker, slice_marker : str | tuple of str | None
        Annotation names of volume and slice markers.
    n_slices : int | None
        Slices per volume, for the report's slice comb; ``None`` derives it from the slice
        markers when there are any.
    ecg_channel : str | None
        ECG channel name (default: the channel of type ``ecg``).
    n_template, upsample, obs_components :
        AAS settings (see :func:`remove_gradient_artifacts`).
    bcg_components : int
        PCA-OBS components for the pulse artefact.
    random_state : int | None
        Accepted for a uniform API; both methods are deterministic.
    verbose : bool | str | None
        Log level for this call (``None``: unchanged).
    where : str | None
        Recording name for messages (default: the file name).

    Returns
    -------
    cleaned : mne.io.BaseRaw
        The cleaned copy (data in memory).
    report : dict
        ``gradient`` and ``bcg`` (what each step did, or ``None``), ``artifact_power``
        (:func:`artifact_power_report`, when the gradient step ran), ``where``.
    """
    import mne

    from eeg2fmri.utils.logs import set_log_level

    where = _where(raw, where)
    if not isinstance(raw, mne.io.BaseRaw):
        raise Eeg2fmriInputError(f"{where}: expected an mne.io.Raw, got {type(raw).__name__}; read the file with mne.io.read_raw or eeg2fmri.io.read_eeg.")
    check_choice(gradient, "gradient method", GRADIENT_METHODS, where=where)
    check_choice(bcg, "bcg method", BCG_METHODS, where=where)
    if verbose is not None:
        set_log_level(verbose)
    report: dict[str, Any] = dict(where=where, gradient=None, bcg=None, artifact_power=None)
    out = raw
    if gradient == "aas":
        out, report["gradient"] = remove_gradient_artifacts(raw, volume_onsets=volume_onsets, slice_onsets=slice_onsets, marker=marker,
                                                            slice_marker=slice_marker, n_template=n_template, upsample=upsample,
                                                            obs_components=obs_components, where=where)
        vol = np.sort(np.asarray(volume_onsets, dtype=float)) if volume_onsets is not None else find_markers(raw, marker or (), where=where)[0]
        if tr is None and len(vol) > 1:
            tr = float(np.median(np.diff(vol)))
        if n_slices is None and report["gradient"]["epochs"] == "slice" and tr:
            n_slices = int(round(tr * raw.info["sfreq"] / report["gradient"]["epoch_samples"]))
        if tr:
            report["artifact_power"] = artifact_power_report(raw, out, tr=tr, n_slices=n_slices, where=where)
    if bcg is not None:
        out, report["bcg"] = remove_bcg_artifacts(out, method=bcg, ecg_channel=ecg_channel, n_components=bcg_components, where=where)
    if out is raw:
        out = raw.copy()
    return out, report


#: Options of :func:`clean_raw` that a prepare config's ``clean`` mapping may set.
CLEAN_OPTIONS = ("gradient", "bcg", "slice_marker", "n_slices", "ecg_channel", "n_template", "upsample", "obs_components", "bcg_components")


def check_clean_options(options: Any, where: str = "prepare option clean") -> dict[str, Any]:
    """Validate a ``clean`` mapping (e.g. ``{"gradient": "aas", "bcg": "pca_obs"}``); missing steps are off.

    Returns
    -------
    options : dict
        With ``gradient`` and ``bcg`` present.
    """
    if not isinstance(options, dict):
        raise Eeg2fmriInputError(f"{where}: expected a mapping such as {{'gradient': 'aas', 'bcg': 'pca_obs'}}, got {options!r}.")
    unknown = sorted(set(options) - set(CLEAN_OPTIONS))
    if unknown:
        raise Eeg2fmriInputError(f"{where}: unknown key(s) {unknown}; valid: {list(CLEAN_OPTIONS)}.")
    out = {"gradient": None, "bcg": None, **options}
    check_choice(out["gradient"], "gradient method", GRADIENT_METHODS, where=where)
    check_choice(out["bcg"], "bcg method", BCG_METHODS, where=where)
    return out


def parse_clean_steps(text: str | None, *, gradient: str = "aas", bcg: str = "pca_obs") -> dict[str, Any] | None:
    """``"gradient,bcg"`` (the ``--clean`` option) -> ``{"gradient": "aas", "bcg": "pca_obs"}``; ``None``/``""`` -> ``None``.

    A step may name its method: ``"gradient=aas,bcg=aas"``.
    """
    if not text:
        return None
    out: dict[str, Any] = {"gradient": None, "bcg": None}
    for part in str(text).split(","):
        name, _, method = part.strip().partition("=")
        if name not in ("gradient", "bcg"):
            raise Eeg2fmriInputError(f"--clean: expected a comma-separated list of 'gradient' and 'bcg' (optionally 'bcg=aas'), got {part.strip()!r}; "
                                     "e.g. --clean gradient,bcg.")
        out[name] = method or (gradient if name == "gradient" else bcg)
    return check_clean_options(out, where="--clean")


def clean_for_prepare(raw, options: dict, *, tr: float, marker, onsets: np.ndarray, where: str):
    """The cleaning step of ``prepare``: :func:`clean_raw` with the config's options and a JSON-ready report.

    Volume markers are read from the annotations (``marker``: every scanner volume,
    dummy scans included); without markers the synchronised ``onsets`` are used.
    """
    opts = check_clean_options(options)
    markers = (marker,) if isinstance(marker, str) else tuple(marker or ())
    found = find_markers(raw, markers, where=where)[0] if markers else np.zeros(0)
    vol = None if len(found) else np.asarray(onsets, dtype=float)
    cleaned, report = clean_raw(raw, tr=tr, marker=markers or None, volume_onsets=vol, where=where, **opts)
    return cleaned, _jsonable(report)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x
