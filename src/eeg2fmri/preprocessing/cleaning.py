"""Remove MRI gradient and pulse (BCG) artefacts from in-scanner EEG.

* :func:`remove_gradient_artifacts` -- average artefact subtraction (AAS, Allen et al. 2000)
  as in FASTR (Niazy et al. 2005): epochs locked to the volume (or slice) markers are
  aligned to a common reference to a fraction of a sample by cross-correlation, and each
  epoch's artefact is the mean of the ``n_template`` nearest other epochs, evaluated back
  at that epoch's own sub-sample position and subtracted (sub-sample shifts as phase ramps
  on the epochs' spectra: exact interpolation without upsampling); optionally the optimal basis set (OBS: the first principal components of the
  residual artefact over epochs, fitted per epoch and channel) removes what averaging
  leaves. Low-pass filtering is left to the band-power step.
* :func:`remove_bcg_artifacts` -- R peaks from the ECG channel
  (``mne.preprocessing.find_ecg_events``), or pulse-oximeter peaks (a PPG channel of the file, or a BIDS
  ``*_physio.tsv.gz`` cardiac column placed on the EEG's clock: :func:`physio_file_beats`) moved by their
  delay to the artefact (:func:`estimate_bcg_delay`), then PCA-OBS (MNE's ``apply_pca_obs`` algorithm, with
  the per-beat fits cross-faded where they meet) or AAS; the report holds
  :func:`bcg_coupling_report`.
* :func:`bcg_coupling_report` -- how much per-window EEG band power tracks heart rate and
  respiration depth, before and after the pulse-artefact removal (warns when cleaning raises it).
* :func:`artifact_power_report` -- power at the volume (``k / TR``) and slice
  (``k * n_slices / TR``) lines before and after, in dB (median over channels).
* :func:`clean_raw` -- the one entry point: gradient, then BCG, then the report.

Every function returns a new Raw and never modifies its input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from eeg2fmri.utils.logs import logger
from eeg2fmri.utils.validation import (
    Eeg2fmriInputError,
    check_choice,
    check_positive,
    check_positive_int,
)

__all__ = ["GRADIENT_METHODS", "BCG_BEATS", "BCG_METHODS", "COUPLING_BANDS", "artifact_power_report", "bcg_coupling_report", "clean_raw",
           "estimate_bcg_delay", "find_markers", "physio_file_beats", "remove_bcg_artifacts", "remove_gradient_artifacts", "trace_beats"]

GRADIENT_METHODS = (None, "aas")
BCG_METHODS = (None, "pca_obs", "aas")
#: Default scanner volume marker names (as in :mod:`eeg2fmri.io.sync`).
VOLUME_MARKERS = ("R128", "Scanner/Scan Start", "Scan Start", "TR")


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
    from eeg2fmri.io.sync import marker_times

    name, times = marker_times(raw, names)
    return (np.zeros(0), None) if name is None else (times, name)


# ---------------------------------------------------------------------------------------
# gradient artefact: AAS (+ OBS)


def _epochs(x: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """Rows ``x[s : s + length]`` (edge-padded outside ``x``), shape (n_epochs, length)."""
    idx = starts[:, None] + np.arange(length)[None, :]
    return x[np.clip(idx, 0, len(x) - 1)]


def _deramp(segs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``segs - (a + b t)`` with ``a``, ``b`` such that every row starts and ends at 0 (in place), and ``a``, ``b``.

    A segment whose ends meet has no jump where the FFT wraps it around, so a sub-sample
    shift by a phase ramp rings only from the (much smaller) change of slope there.
    """
    n = segs.shape[-1]
    a = segs[..., 0].copy()
    b = (segs[..., -1] - a) / (n - 1)
    segs -= a[..., None]
    segs -= b[..., None] * np.arange(n, dtype=segs.dtype)
    return segs, a, b


def _estimate_shifts(spec: np.ndarray, n: int, search: int, upsample: int, n_iter: int = 2) -> np.ndarray:
    """Sub-sample shifts (samples) aligning every epoch to the mean aligned epoch.

    ``spec`` (n_epochs, n_freqs): rFFTs of the de-ramped epoch segments (length ``n``) of one
    channel. The cross-correlation with the reference, ``g(s) = Re sum_f X_k(f) R*(f)
    exp(i w_f s)``, is the band-limited (exactly interpolated) correlation at any lag ``s``:
    it is evaluated at the whole lags within ``±search``, then on a grid of ``1 / upsample``
    samples within ±1 sample of the best one, and its peak refined by a parabola. Epoch
    ``k`` aligned is ``x_k(t + s_k)``; the reference is the mean aligned epoch (``n_iter``
    rounds, the first with no shifts).
    """
    nf = spec.shape[1]
    omega = 2 * np.pi * np.arange(nf) / n
    weight = np.full(nf, 2.0)
    weight[0] = 1.0
    if n % 2 == 0:
        weight[-1] = 1.0
    shifts = np.zeros(len(spec))
    whole = np.arange(-search, search + 1)
    fine = np.arange(-upsample, upsample + 1) / upsample
    e_whole = np.exp(1j * np.outer(omega, whole))
    e_fine = np.exp(1j * np.outer(omega, fine))
    rows = np.arange(len(spec))
    for _ in range(n_iter):
        phase = np.exp(1j * omega[None, :] * shifts[:, None])
        ref = (spec * phase).mean(axis=0)
        cross = spec * (np.conj(ref) * weight)[None, :]
        n0 = whole[np.argmax((cross @ e_whole).real, axis=1)]
        g = ((cross * np.exp(1j * omega[None, :] * n0[:, None])) @ e_fine).real
        best = np.clip(np.argmax(g, axis=1), 1, len(fine) - 2)
        y0, y1, y2 = g[rows, best - 1], g[rows, best], g[rows, best + 1]
        den = y0 - 2 * y1 + y2
        ok = np.abs(den) > 1e-30 * np.maximum(np.abs(y1), 1e-300)
        delta = np.where(ok, 0.5 * (y0 - y2) / np.where(ok, den, 1.0), 0.0)
        shifts = n0 + fine[best] + np.clip(delta, -1.0, 1.0) / upsample
        shifts -= np.median(shifts)  # keep the reference frame centred
        shifts = np.clip(shifts, -search, search)
    return shifts


def _sliding_mean(al: np.ndarray, n_template: int, axis: int = 0, center: bool = False) -> np.ndarray:
    """For every epoch (along ``axis``), the mean of the ``n_template`` nearest *other* epochs.

    The window of ``n_template + 1`` epochs (the epoch and ``n_template`` others) is centred
    on the epoch where it can be and slides no further than the ends. With ``center`` the
    mean over all epochs is taken out before the running sum and put back after, so that a
    float32 running sum of a large, nearly repeating artefact loses no precision.
    """
    al = np.moveaxis(al, axis, 0)
    n = len(al)
    k = min(n_template, n - 1)
    half = k // 2
    base = al.mean(axis=0) if center else 0.0
    csum = al - base if center else al.copy()
    np.cumsum(csum, axis=0, out=csum)
    win = np.empty((n - k,) + al.shape[1:], dtype=csum.dtype)  # sums over the windows [lo, lo + k], lo = 0 .. n - 1 - k
    win[0] = csum[k]
    np.subtract(csum[k + 1 :], csum[: n - 1 - k], out=win[1:])
    del csum
    out = np.empty_like(al)
    out[:half] = win[0]  # epoch e's window starts at clip(e - half, 0, n - 1 - k)
    out[half : half + n - k] = win
    out[half + n - k :] = win[-1]
    del win
    out -= al
    if center:
        out += base  # the window held the epoch's deviation from the mean, not the epoch
    out /= k
    if center:
        out += base
    return np.moveaxis(out, 0, axis)


def _obs(epochs: np.ndarray, n_components: int, learn: np.ndarray | None = None, view: np.ndarray | None = None) -> None:
    """Subtract (in place) from every epoch (row) its part in the span of the first principal components over epochs.

    The components are the leading right singular vectors of the (row-centred) epochs
    ``learn`` (default: all), from the eigenvectors of the smaller Gram matrix; every
    row's offset is EEG, not artefact, and is kept. With ``view`` (e.g. the epochs
    high-passed) the components are learnt from and fitted to ``view`` and the fit is
    subtracted from ``epochs``.
    """
    src = epochs if view is None else view
    rl = src if learn is None else src[learn]
    rl = rl.astype(np.float64)
    rl -= rl.mean(axis=1, keepdims=True)
    if rl.shape[0] <= rl.shape[1]:
        _, u = np.linalg.eigh(rl @ rl.T)
        v = u[:, ::-1][:, :n_components].T @ rl
        v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-300)
    else:
        _, v = np.linalg.eigh(rl.T @ rl)
        v = v[:, ::-1][:, :n_components].T
    # (r @ v.T) @ v with r the row-centred epochs, without forming r
    coef = src @ v.T.astype(src.dtype) - src.mean(axis=1, keepdims=True) * v.sum(axis=1).astype(src.dtype)[None, :]
    epochs -= coef @ v.astype(epochs.dtype)


def _fill_missing_epochs(starts: np.ndarray, length: int, data: np.ndarray, chans: list[int]) -> tuple[np.ndarray, int]:
    """Epoch starts with the markers a recording lost put back: a gap of ``k >= 2`` marker intervals (within 1 % or 2
    samples per interval) gets ``k - 1`` evenly spaced starts, where the data of each such epoch spread as widely as the
    marked epochs' (median over channels of the standard deviation at least half the marked epochs' median), so that a
    pause of the scanner that happens to last whole intervals is not given an artefact to subtract.

    Returns
    -------
    starts : array of int64
    n_filled : int
    """
    gaps = np.diff(starts)
    k = np.rint(gaps / float(length)).astype(int)
    cand = np.flatnonzero((k >= 2) & (np.abs(gaps - k * length) <= np.maximum(2, 0.01 * length) * k))
    if not len(cand) or not chans:
        return starts, 0
    probe = np.asarray(chans)[np.unique(np.linspace(0, len(chans) - 1, min(len(chans), 8)).astype(int))]

    def spread(s0: int) -> float:
        return float(np.median(np.std(data[probe, s0 : s0 + length], axis=1)))

    marked = [spread(int(s0)) for s0 in starts[np.unique(np.linspace(0, len(starts) - 2, min(len(starts) - 1, 32)).astype(int))]]
    level = 0.5 * float(np.median(marked))
    new = []
    for i in cand:
        step = gaps[i] / float(k[i])
        fill = [int(round(starts[i] + j * step)) for j in range(1, int(k[i]))]
        if all(spread(f) >= level for f in fill):
            new += fill
    if not new:
        return starts, 0
    return np.sort(np.r_[starts, np.asarray(new, dtype=np.int64)]), len(new)


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
    obs_highpass: float | None = None,
    search: int = 2,
    picks=("eeg", "ecg", "eog", "emg", "resp"),
    n_jobs: int = 1,
    where: str | None = None,
):
    """Gradient artefact removal by average artefact subtraction (AAS), with optional OBS.

    Epochs start at the markers (slice markers when given, else volume markers) and last
    the median marker interval ``L``; each epoch is corrected over ``[marker, next
    marker)`` (at most ``L + 1`` samples; longer gaps are left as they are). Every epoch
    is taken with ``max(32, 4 * search)`` samples of margin either side, a line through its
    two ends is taken out (so that its ends meet), and it is Fourier transformed (rFFT,
    float32). For every channel:

    1. sub-sample shifts (within ``±search`` samples) align every epoch to the mean epoch:
       the peak of the band-limited cross-correlation, evaluated from the spectra at the
       whole lags, then on a ``1 / upsample``-sample grid around the best one, refined by a
       parabola; they are estimated once, on the channel with the largest artefact, since
       the timing is common to all channels;
    2. the template of epoch ``k`` is the mean of the ``n_template`` aligned epochs
       nearest to it (``k`` excluded, so that its own EEG is not subtracted), evaluated at
       ``k``'s own shift: in the frequency domain, the epochs aligned by phase ramps
       ``exp(i w s_j)``, averaged, and shifted back by ``exp(-i w s_k)`` -- exact (sinc)
       interpolation without upsampling; the lines taken out are shifted exactly too, and
       every epoch keeps its own mean (EEG);
    3. with ``obs_components > 0``, the first principal components over epochs of the
       residual (the artefact left by imperfect alignment and slow changes; learnt from at
       most 256 epochs spread over the recording) are fitted to every epoch by least
       squares and subtracted.

    Channels are processed in chunks (about 8 M float32 segment samples each, a few times
    that at the peak), in ``n_jobs`` threads; memory beyond the cleaned copy stays bounded
    whatever the recording's length.

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
        Resolution of the sub-sample shift search: ``1 / upsample`` samples (then refined
        by a parabola).
    obs_components : int
        Principal components of the residual removed per epoch (0: none).
    obs_highpass : float | None
        When set (Hz), the OBS components are learnt from and fitted to the residual
        high-passed at this frequency (FASTR's practice, 70 Hz there), so that they cannot
        remove EEG below it; ``None``: the full-band residual.
    search : int
        Largest alignment shift searched, in original samples.
    picks : sequence of str
        Channel types corrected (gradient artefacts reach every lead).
    n_jobs : int
        Threads working on channel chunks in parallel (numpy and ``scipy.fft`` release
        the GIL).
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
    from scipy.fft import irfft, next_fast_len, rfft

    where = _where(raw, where)
    n_template = check_positive_int(n_template, "n_template", where=where, fix="pass the number of epochs averaged, e.g. 21")
    upsample = check_positive_int(upsample, "upsample", where=where, fix="pass an upsampling factor such as 10")
    search = check_positive_int(search, "search", where=where)
    n_jobs = check_positive_int(n_jobs, "n_jobs", where=where)
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
    out = raw.copy().load_data(verbose=False)
    types = set(picks)
    chans = [i for i, t in enumerate(out.get_channel_types()) if t in types]
    starts, n_filled = _fill_missing_epochs(starts, length, out._data, chans)
    if n_filled:  # (user test 20: two lost R128 markers left 540 uV of artefact in their volumes, nothing said)
        logger.warning("%s: %d %s marker(s) missing where the artefact goes on (gaps of a whole number of marker intervals whose "
                       "data are as large as the marked epochs'): epochs placed there, so those stretches are corrected too",
                       where, n_filled, kind)
        gaps = np.diff(starts)
    tile = np.r_[np.minimum(gaps, length + 1), length]  # samples corrected after each marker
    tile = np.minimum(tile, raw.n_times - starts)
    if not chans:
        raise Eeg2fmriInputError(f"{where}: expected channels of type {sorted(types)} to clean, found none; set the channel types (raw.set_channel_types).")
    data = out._data  # the copy's array, corrected in place
    n_ep = len(starts)
    # segments: the epoch (length + 1 samples) with ``margin`` samples either side, so that the
    # ringing of a phase-ramp shift at the wrapped ends stays outside the corrected part
    margin = max(32, 4 * search)
    n_seg = next_fast_len(length + 1 + 2 * margin, real=True)
    itype = np.int32 if raw.n_times < 2**31 else np.int64
    seg_idx = np.clip((starts - margin)[:, None] + np.arange(n_seg, dtype=np.int64)[None, :], 0, raw.n_times - 1).astype(itype)
    core = slice(margin, margin + length + 1)
    tt = np.arange(length + 1, dtype=np.float32) + margin
    # shifts from the channel with the largest artefact (the timing is common to all leads), judged on <= 16 epochs
    probe = starts[np.unique(np.linspace(0, n_ep - 1, min(n_ep, 16)).astype(int))]
    ref_ch = chans[int(np.argmax([np.std(_epochs(data[c], probe, length)) for c in chans]))]
    ref = _deramp(data[ref_ch][seg_idx].astype(np.float64))[0]
    shifts = _estimate_shifts(rfft(ref, axis=1), n_seg, search, upsample)
    del ref
    omega = 2 * np.pi * np.arange(n_seg // 2 + 1) / n_seg
    phase = np.exp(1j * omega[None, :] * shifts[:, None]).astype(np.complex64)  # aligns epoch k: x_k(t + s_k)
    sub = np.unique(np.linspace(0, n_ep - 1, min(n_ep, 256)).astype(int))  # epochs the OBS components are learnt from
    conj_phase = np.conj(phase)
    inner = np.flatnonzero((starts - margin >= 0) & (starts - margin + n_seg <= raw.n_times))  # segments inside the data
    edge = np.setdiff1d(np.arange(n_ep), inner)
    workers = 1 if n_jobs > 1 else None  # threads already share the channels
    n_cut = 0 if not obs_highpass else int(np.ceil(float(obs_highpass) * n_seg / sf))  # spectral bins below the OBS high-pass

    def clean_chunk(cs: list[int]) -> None:
        x = np.empty((len(cs), n_ep, n_seg), dtype=np.float32)
        for i, c in enumerate(cs):
            row = data[c]
            for k in inner:  # contiguous copies (cast to float32 on the way)
                s0 = starts[k] - margin
                x[i, k] = row[s0 : s0 + n_seg]
            if len(edge):
                x[i, edge] = row[seg_idx[edge]]
        x, a, b = _deramp(x)
        own = x[..., core].mean(axis=-1) + a + b * tt.mean()  # every epoch keeps its mean (EEG)
        spec = rfft(x, axis=-1, workers=workers)
        del x
        tpl = spec * phase
        tpl = _sliding_mean(tpl, n_template, axis=1, center=True)  # template of every epoch, aligned frame ...
        tpl *= conj_phase  # ... evaluated at the epoch's own shift
        spec -= tpl
        del tpl
        hp = None
        if obs_components and n_cut:
            spec_hp = spec.copy()
            spec_hp[..., :n_cut] = 0
            hp = irfft(spec_hp, n=n_seg, axis=-1, workers=workers)[..., core]
            del spec_hp
        cleaned = irfft(spec, n=n_seg, axis=-1, workers=workers)[..., core]
        del spec
        # the ramps: the epoch's own, minus the template's, mean_j a_j + b_j (t - s_k + s_j) (a ramp shifts exactly)
        # (the constant parts drop out: every epoch keeps its own mean)
        b = b.astype(np.float64)
        slope = (b - _sliding_mean(b, n_template, axis=1)).astype(np.float32)
        offset = own - cleaned.mean(axis=-1) - slope * tt.mean()
        cleaned += offset.astype(np.float32)[..., None] + slope[..., None] * tt
        for i, c in enumerate(cs):
            ep = cleaned[i]
            if obs_components:
                _obs(ep, obs_components, sub, None if hp is None else hp[i])
            row = data[c]
            for k, s0 in enumerate(starts):
                row[s0 : s0 + tile[k]] = ep[k, : tile[k]]

    # channels in chunks of about 8M samples of float32 segments (peak: a few times that per thread)
    chunk = max(1, int(2**23 // max(n_ep * n_seg, 1)))
    groups = [chans[c0 : c0 + chunk] for c0 in range(0, len(chans), chunk)]
    if n_jobs > 1 and len(groups) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=n_jobs) as ex:
            list(ex.map(clean_chunk, groups))
    else:
        for g in groups:
            clean_chunk(g)
    sh = shifts
    info = dict(epochs=kind, n_epochs=int(len(starts)), epochs_filled_in=int(n_filled), epoch_samples=length, channels=[out.ch_names[c] for c in chans],
                shifts=[float(sh.min()), float(np.median(sh)), float(sh.max())], n_template=n_template, upsample=upsample,
                obs_components=int(obs_components))
    logger.info("%s: gradient AAS on %d %s epochs of %d samples, %d channel(s), shifts %.2f..%.2f samples", where, len(starts), kind, length,
                len(chans), sh.min(), sh.max())
    if not isinstance(out, mne.io.BaseRaw):  # pragma: no cover - copy() keeps the type
        raise TypeError("internal error: copy of a Raw is not a Raw")
    return out, info


# ---------------------------------------------------------------------------------------
# pulse (BCG) artefact: PCA-OBS


def _raised_cosine(u: np.ndarray) -> np.ndarray:
    """0 for ``u <= 0``, 1 for ``u >= 1``, ``(1 - cos(pi u)) / 2`` between (two complementary ramps sum to 1)."""
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(u, 0.0, 1.0))


def _pca_obs(data: np.ndarray, rows: list[int], r: np.ndarray, n_components: int, crossfade: float) -> dict[str, Any]:
    """PCA-OBS (Niazy et al. 2005, as ``mne.preprocessing.apply_pca_obs``) in place on ``data[rows]``, fits cross-faded.

    Every beat's epoch spans ``±(h + round(median RR / 2))`` samples around its R peak (``h =
    round(crossfade * median RR / 2)``), its mean taken out (the epoch's offset is EEG, not
    artefact). The template is the mean epoch and the first ``n_components`` principal
    components over beats (learnt, as MNE does, from the complete epochs after the first
    beat), fitted to every beat by least squares. Beat ``p`` owns the samples from half-way
    to the previous R peak to half-way to the next (at most ``round(median RR / 2)`` either
    side, as in MNE); with ``h > 0`` neighbouring fits are cross-faded (raised cosine) over
    ``±h`` samples around every such boundary, and a fit fades out over ``±h`` where no
    neighbour takes over, instead of stopping with a step. MNE writes the fit one sample
    early (``fitted_art[pk - pre - 1 : pk + post] = fit[pk - pre : pk + post + 1]``); here
    it is written where it was fitted.

    Parameters
    ----------
    data : array, shape (n_channels, n_times)
        Corrected in place (rows ``rows``).
    rows : list of int
    r : array of int, shape (n_beats,)
        R-peak samples, sorted.
    n_components : int
    crossfade : float
        ``h`` as a fraction of half the median RR interval (0: abutting fits, hard edges).

    Returns
    -------
    info : dict
        ``epoch_samples`` (``2 (h + pr) + 1``), ``crossfade_samples`` (``h``).
    """
    n = data.shape[1]
    r = np.asarray(r, dtype=np.int64)
    pr = int(round(float(np.median(np.diff(r))) / 2))
    h = int(round(crossfade * pr))
    w_half = pr + h
    t = np.arange(-w_half, w_half + 1)
    pos = r[:, None] + t[None, :]  # (n_beats, 2 W + 1)
    inside = (pos >= 0) & (pos < n)
    idx = np.clip(pos, 0, n - 1)
    complete = np.flatnonzero(inside.all(axis=1))
    learn = complete[complete > 0] if np.sum(complete > 0) > n_components + 1 else complete
    # ownership: from half-way to the previous R peak to half-way to the next, at most pr away
    prev_gap = np.r_[2 * pr + 1, np.diff(r)]
    next_gap = np.r_[np.diff(r), 2 * pr + 1]
    lo = r - np.minimum(prev_gap // 2, pr)
    hi = r + np.minimum(next_gap - next_gap // 2, pr + 1)  # exclusive; lo[p + 1] == hi[p] where beats abut
    if h:
        w = _raised_cosine((pos - (lo - h)[:, None] + 0.5) / (2 * h)) * _raised_cosine(((hi + h)[:, None] - pos - 0.5) / (2 * h))
    else:
        w = ((pos >= lo[:, None]) & (pos < hi[:, None])).astype(np.float64)
    w[~inside] = 0.0
    flat = idx.ravel()
    wsum = np.maximum(np.bincount(flat, weights=w.ravel(), minlength=n), 1.0)  # 1 where beats abut; < 1 only where a fit fades out
    for c in rows:
        ep = data[c][idx].astype(np.float64)
        ep -= ep.mean(axis=1, keepdims=True)
        le = ep[learn]
        mean = le.mean(axis=0)
        dev = le - mean
        if dev.shape[0] <= dev.shape[1]:  # components from the smaller Gram matrix
            _, u = np.linalg.eigh(dev @ dev.T)
            comp = u[:, ::-1][:, :n_components].T @ dev
        else:
            _, v = np.linalg.eigh(dev.T @ dev)
            comp = v[:, ::-1][:, :n_components].T
        tpl = np.c_[mean, comp.T]  # (2 W + 1, 1 + n_components)
        fit = (ep @ np.linalg.pinv(tpl).T) @ tpl.T  # every beat's least-squares fit
        art = np.bincount(flat, weights=(w * fit).ravel(), minlength=n) / wsum
        data[c] -= art.astype(data.dtype)
    return dict(epoch_samples=int(2 * w_half + 1), crossfade_samples=h)


#: Where the heartbeats of the pulse-artefact removal come from (clean option ``bcg_beats``): the ECG channel of the EEG
#: file (R peaks), a pulse-oximeter (PPG) channel of the EEG file, or the run's BIDS ``*_physio.tsv.gz`` cardiac column.
BCG_BEATS = ("ecg", "pulse", "physio")
#: Channel names (upper case, start of the name) taken as a pulse oximeter when ``pulse_channel="auto"``.
PULSE_NAMES = ("PPG", "PULSE", "PLETH")
#: Delays (s) searched for pulse-oximeter beats (:func:`estimate_bcg_delay`): the PPG peak reaches the finger 150-300 ms
#: after the R wave, the BCG follows the R wave by 200-300 ms, so the BCG may come before or after the PPG peak.
BCG_DELAY_SEARCH_S = (-0.5, 0.5)
#: The span after an R peak (s) that holds the pulse artefact: the delay puts the artefact's energy there.
BCG_DELAY_WINDOW_S = (0.0, 0.4)
#: A delay whose score is below this many times the search range's mean is warned about (no clear heartbeat-locked artefact;
#: EEG without one scored 1.14-1.20 over 90 s, with a 30 uV BCG 3.7).
BCG_DELAY_MIN_RATIO = 1.5
_BEAT_RATE_HZ = 250.0  # rate at which pulse traces are searched for beats, and the EEG for the delay


def _pulse_channel_name(raw, name: str, where: str, caller: str) -> str:
    """The pulse-oximeter channel: ``name``, or for ``"auto"`` the one channel whose name starts with PPG / Pulse / Pleth."""
    if name != "auto":
        if name not in raw.ch_names:
            raise Eeg2fmriInputError(f"{where}: expected a pulse-oximeter (PPG) channel named {name!r}, found none among "
                                     f"{raw.ch_names[:12]}{' ...' if len(raw.ch_names) > 12 else ''}; pass the pulse channel's name "
                                     f"({_option('pulse_channel', caller)}).")
        return name
    found = [n for n in raw.ch_names if n.strip().upper().startswith(PULSE_NAMES)]
    if len(found) != 1:
        raise Eeg2fmriInputError(f"{where}: expected one pulse-oximeter channel named PPG*, Pulse* or Pleth*, found "
                                 f"{len(found) or 'none'}{f' ({found})' if found else ''} among {raw.ch_names[:12]}"
                                 f"{' ...' if len(raw.ch_names) > 12 else ''}; name it ({_option('pulse_channel', caller)}).")
    return found[0]


def _option(name: str, caller: str) -> str:
    """How ``caller`` (``"clean"``: the command, ``"prepare"`` / ``"synthesize"``: the clean option, else Python) sets ``name``."""
    if caller == "clean":
        return "--" + name.replace("_", "-") + " <name>"
    if caller in ("prepare", "synthesize"):
        return f"clean option {name}: <name>"
    return f"{name}=<name>"


def _upsampled(x: np.ndarray, sfreq: float) -> tuple[np.ndarray, float]:
    """``x`` brought to about :data:`_BEAT_RATE_HZ` (anti-aliased down, or polyphase up for a slow pulse log: beat times
    finer than the log's samples), and its rate."""
    from scipy.signal import resample_poly

    x = np.asarray(x, dtype=np.float64)
    if sfreq >= 2 * _BEAT_RATE_HZ:
        q = int(sfreq // _BEAT_RATE_HZ)
        return resample_poly(x - np.median(x), 1, q), sfreq / q
    if sfreq < _BEAT_RATE_HZ / 2:
        u = int(np.ceil(_BEAT_RATE_HZ / sfreq))
        return resample_poly(x - np.median(x), u, 1), sfreq * u
    return x, sfreq


def trace_beats(x: np.ndarray, sfreq: float, *, kind: str = "ppg", where: str = "cardiac") -> tuple[np.ndarray, str]:
    """Heartbeat times (s from the trace's first sample) of a pulse-oximeter or ECG trace, for the pulse-artefact removal.

    The trace is brought to about 250 Hz (anti-aliased decimation, or polyphase upsampling of a slow scanner log, so that
    the beat times are finer than its samples) and its beats found by
    :func:`eeg2fmri.preprocessing.physio.cardiac_peaks`.

    Parameters
    ----------
    x : array, shape (n_samples,)
    sfreq : float
    kind : {"ppg", "ecg", "auto"}
        The detector (see :func:`~eeg2fmri.preprocessing.physio.cardiac_peaks`).
    where : str

    Returns
    -------
    times : array, shape (n_beats,)
    kind : str
        The detector used (``"ppg"`` or ``"ecg"``).
    """
    from eeg2fmri.preprocessing.physio import cardiac_peaks

    y, sf = _upsampled(x, float(sfreq))
    peaks, used = cardiac_peaks(y, sf, kind=kind, where=where)
    return peaks / sf, used


def physio_file_beats(files, bold_start: float, *, where: str = "physio", caller: str = "prepare") -> tuple[np.ndarray, str, str]:
    """Heartbeats of a run's BIDS ``*_physio.tsv.gz`` cardiac column, on the EEG's clock.

    The file is read by :func:`eeg2fmri.preprocessing.physio.read_bids_physio` (its ``StartTime`` counts from the BOLD
    file's first volume), so a beat at ``t`` s of the file's clock is at ``bold_start + t`` s of the EEG (``bold_start``:
    the EEG time of the BOLD file's first volume, as the prepare option ``physio`` places the file).

    Parameters
    ----------
    files : sequence of path-like
        The run's physio files (:func:`eeg2fmri.preprocessing.physio.find_physio_files`); the first with a cardiac column
        is read.
    bold_start : float
        EEG time (s from its first sample) of the BOLD file's first volume.
    where : str
        Name used in messages.
    caller : {"prepare", "clean"}
        The interface whose options the error messages name.

    Returns
    -------
    times : array, shape (n_beats,)
        Seconds from the EEG's first sample.
    kind : str
        ``"ppg"`` (pulse peaks) or ``"ecg"`` (R peaks), as :func:`trace_beats` detected them.
    source : str
        The file and column, for the report.
    """
    from eeg2fmri.preprocessing.physio import read_bids_physio

    files = [Path(f) for f in files]
    seen = []
    for f in files:
        traces = read_bids_physio(f)
        seen.append(f"{f.name} ({', '.join(traces) or 'no cardiac or respiration column'})")
        if "cardiac" in traces:
            values, sfreq, start = traces["cardiac"]
            times, kind = trace_beats(values, sfreq, kind="auto", where=f"{f} cardiac column")
            return bold_start + start + times, kind, f"{f.name} cardiac column"
    if caller == "clean":
        asked, fix = "--physio", ("give a BIDS physio file with a 'cardiac' column in its .json Columns, or take the beats from the EEG "
                                  "file: --ecg-channel <name> (an ECG channel) or --pulse-channel <name> (a pulse-oximeter channel)")
    else:
        asked, fix = "clean option bcg_beats='physio'", (
            "expected a <bold stem>_physio.tsv.gz (+ .json with SamplingFrequency, StartTime and Columns naming a 'cardiac' column) "
            "beside the run's BOLD, or take the beats from the EEG file: bcg_beats 'ecg' (an ECG channel; ecg_channel: <name>) or "
            "'pulse' (a pulse-oximeter channel; pulse_channel: <name>)")
    raise Eeg2fmriInputError(f"{where}: {asked} takes the heartbeats from a BIDS *_physio.tsv.gz cardiac column, found "
                             f"{'; '.join(seen) if seen else 'no physio file beside the BOLD'}; {fix}.")


def estimate_bcg_delay(
    data: np.ndarray,
    sfreq: float,
    beats: np.ndarray,
    *,
    search: tuple[float, float] = BCG_DELAY_SEARCH_S,
    window: tuple[float, float] = BCG_DELAY_WINDOW_S,
    max_channels: int = 16,
    where: str = "EEG",
) -> tuple[float, dict[str, Any]]:
    """The delay from pulse-oximeter beats to the pulse artefact: how far to move the beats to stand for R peaks.

    The pulse wave reaches the finger 150-300 ms after the R wave while the BCG follows the R wave by 200-300 ms, so the
    artefact may come before or after the PPG peak. Every delay ``d`` in ``search`` (on a grid of about 4 ms, refined by a
    parabola) is scored by the energy of the beat-locked average of the EEG (at most ``max_channels`` channels, each
    high-passed at 0.5 Hz and scaled to unit variance, decimated to about 250 Hz) over ``window`` after the moved beats,
    weighted by a Hann taper: the delay that centres the artefact's energy in that window (by default 200 ms after the
    moved beat, as a BCG follows an R peak) wins. Beats whose span of the search leaves the recording are left out of the
    average.

    Parameters
    ----------
    data : array, shape (n_channels, n_times)
        EEG channels (any unit).
    sfreq : float
        Their rate (Hz).
    beats : array, shape (n_beats,)
        Beat times (s from the first sample).
    search : (float, float)
        Delays tried (s).
    window : (float, float)
        Span after the moved beat where the artefact is placed (s).
    max_channels : int
        Channels used (an evenly spread subset of more).
    where : str
        Name used in messages.

    Returns
    -------
    delay : float
        Seconds to add to the beats.
    info : dict
        ``search_s``, ``window_s``, ``n_beats`` (averaged), ``peak_ratio`` (best score over the mean score of the search
        range: near 1, no clear beat-locked artefact), ``profile_s`` and ``profile`` (the scores on the search grid, best 1).
    """
    from scipy.signal import butter, resample_poly, sosfiltfilt

    lo_s, hi_s = (float(v) for v in search)
    w0, w1 = (float(v) for v in window)
    if not (np.isfinite([lo_s, hi_s, w0, w1]).all() and lo_s < hi_s and w0 < w1):
        raise Eeg2fmriInputError(f"{where}: expected a delay search range (low, high) and a window (start, stop) in seconds with "
                                 f"low < high and start < stop, got search={search!r}, window={window!r}; e.g. search=(-0.5, 0.5), "
                                 "window=(0.0, 0.4).")
    x = np.asarray(data, dtype=np.float64)
    if x.ndim != 2 or not len(x):
        raise Eeg2fmriInputError(f"{where}: expected EEG data of shape (n_channels, n_times) to estimate the pulse-artefact delay, got "
                                 f"shape {x.shape}.")
    if len(x) > max_channels:
        x = x[np.unique(np.linspace(0, len(x) - 1, max_channels).round().astype(int))]
    sf = float(sfreq)
    q = max(1, int(sf // _BEAT_RATE_HZ))
    x = x - x.mean(axis=1, keepdims=True)
    if q > 1:
        x = resample_poly(x, 1, q, axis=1)
    sfd = sf / q
    x = sosfiltfilt(butter(2, 0.5, btype="highpass", fs=sfd, output="sos"), x, axis=1)
    x /= np.maximum(x.std(axis=1, keepdims=True), 1e-30)
    lo, hi = int(np.floor(lo_s * sfd)), int(np.ceil(hi_s * sfd))
    a, b = int(round(w0 * sfd)), max(int(round(w1 * sfd)), int(round(w0 * sfd)) + 3)
    span = (hi - lo) + b  # epoch offsets lo + a .. hi + b - 1 from every beat
    start = np.round(np.asarray(beats, dtype=np.float64) * sfd).astype(np.int64) + lo + a
    start = start[(start >= 0) & (start + span - a <= x.shape[1])]
    if len(start) < 5:
        raise Eeg2fmriInputError(f"{where}: {len(start)} heartbeat(s) lie {-lo_s:g} s or more from the start and {hi_s + w1:g} s from the "
                                 "end of the recording, expected at least 5 to estimate the delay of the pulse artefact after the "
                                 "beats; give the delay (bcg_delay) or clean a longer recording.")
    avg = np.zeros((len(x), span - a))
    for s0 in start:
        avg += x[:, s0 : s0 + span - a]
    avg /= len(start)
    energy = np.sum(avg * avg, axis=0)  # (span - a,): offset lo + a + i
    taper = np.hanning(b - a + 2)[1:-1]
    score = np.correlate(energy, taper, mode="valid")  # score[j]: window starting at offset lo + a + j, i.e. delay lo + j
    k = int(np.argmax(score))
    frac = 0.0
    if 0 < k < len(score) - 1:
        y0, y1, y2 = score[k - 1], score[k], score[k + 1]
        den = y0 - 2 * y1 + y2
        frac = float(np.clip(0.5 * (y0 - y2) / den, -0.5, 0.5)) if den < 0 else 0.0
    delay = (lo + k + frac) / sfd
    ratio = float(score[k] / max(float(np.mean(score)), 1e-300))
    grid = (lo + np.arange(len(score))) / sfd
    info = dict(search_s=[lo_s, hi_s], window_s=[w0, w1], n_beats=int(len(start)), peak_ratio=ratio,
                profile_s=[round(float(v), 4) for v in grid], profile=[round(float(v), 4) for v in score / score[k]])
    if k in (0, len(score) - 1):
        logger.warning("%s: the pulse artefact's delay after the beats is at the edge of the range searched (%.3f s in %g..%g s): the "
                       "artefact may lie further from the beats; give the delay (bcg_delay) or check the beats", where, delay, lo_s, hi_s)
    return float(delay), info


def _beats_from_pulse_channel(raw, name: str, where: str) -> np.ndarray:
    """Pulse peaks (s from the first sample) of the EEG file's pulse-oximeter channel ``name``."""
    x = raw.get_data(picks=[name])[0]
    return trace_beats(x, float(raw.info["sfreq"]), kind="ppg", where=f"{where}: pulse channel {name!r}")[0]


def remove_bcg_artifacts(raw, *, method: str = "pca_obs", ecg_channel: str | None = None, n_components: int = 4, n_template: int = 21,
                         crossfade: float | None = 0.5, coupling: bool = True, window: float = 2.0, pulse_channel: str | None = None,
                         beat_times: np.ndarray | None = None, beat_kind: str = "ppg", beat_delay: float | str | None = None,
                         beat_source: str | None = None, delay_search: tuple[float, float] = BCG_DELAY_SEARCH_S, caller: str = "python",
                         where: str | None = None):
    """Pulse (ballistocardiogram) artefact removal: heartbeats (R peaks of the ECG, or pulse-oximeter peaks moved by their
    estimated delay), then PCA-OBS or AAS.

    ``"pca_obs"`` is the optimal basis set of Niazy et al. (2005) as MNE's
    :func:`mne.preprocessing.apply_pca_obs` implements it: every heartbeat epoch (± half the
    median RR interval around its R peak, mean removed) is fitted by the mean epoch plus
    ``n_components`` principal components over beats, and the fit subtracted where the beat
    owns the data (half-way to the neighbouring R peaks). MNE places consecutive fits edge
    to edge, so wherever two fits disagree the subtracted signal steps; slow respiration
    drift, which the first components describe (a ramp across the epoch), makes those steps
    follow the breathing and turns respiration depth into broadband power (user test 57:
    beta to high-gamma power tracking respiration after cleaning). With ``crossfade`` (the
    default) the epochs are longer by ``crossfade`` times half the median RR either side and
    neighbouring fits are cross-faded over that margin, which removes the steps; ``crossfade=0``
    keeps MNE's edge-to-edge placement, and ``crossfade=None`` calls MNE's
    ``apply_pca_obs`` itself (which also removes each channel's mean and writes each fit one
    sample early). Where the EEG rhythms are strong next to the BCG the components partly
    describe EEG (e.g. alpha) and fitting them removes some EEG too. ``"aas"`` (Allen et al.
    1998) subtracts from every beat the mean of its ``n_template`` nearest other beats
    (epochs from 0.25 to 0.75 of the median RR interval around the R peak), scaled to the
    beat by least squares: one dimension per beat, which leaves the EEG nearly untouched.

    The heartbeats come from, in this order: ``beat_times`` (e.g. a BIDS physio file's cardiac column on the EEG's clock,
    :func:`physio_file_beats`), the pulse-oximeter channel ``pulse_channel`` of the recording, or its ECG channel. Pulse
    peaks (``beat_kind="ppg"``) lag the R wave by the pulse transit time, and the artefact may precede or follow them: unless
    ``beat_delay`` gives the delay, :func:`estimate_bcg_delay` picks the shift (within ``delay_search``) that centres the
    artefact's energy 0-400 ms after the moved beats, as after R peaks, and the report records it. Moved beats outside the
    recording are dropped; the epochs of the beats near its ends are handled as for R peaks there.

    Parameters
    ----------
    raw : mne.io.BaseRaw
        The recording (gradient artefacts already removed), with an ECG channel unless the beats are given otherwise.
    method : {"pca_obs", "aas"}
        PCA-OBS or average artefact subtraction.
    ecg_channel : str | None
        Name of the ECG channel; ``None`` takes the (first) channel of type ``ecg``.
    n_components : int
        Principal components of the heartbeat epochs fitted per beat (MNE's default, 4).
    n_template : int
        Beats averaged per template (``"aas"``).
    crossfade : float | None
        PCA-OBS: margin over which neighbouring beat fits are cross-faded, as a fraction
        (0-1) of half the median RR interval (default 0.5); 0: edge to edge; ``None``: MNE's
        ``apply_pca_obs`` as it is.
    coupling : bool
        Measure the coupling of band power to heart rate and respiration before and after
        (:func:`bcg_coupling_report`; a few seconds on an hour of 64 channels) and warn when
        cleaning raises it.
    window : float
        Window (s) of the band-power series of the coupling measure (e.g. the TR).
    pulse_channel : str | None
        A pulse-oximeter (PPG) channel of the recording to take the beats from (any channel type; it is not cleaned);
        ``"auto"``: the one channel named PPG*, Pulse* or Pleth*.
    beat_times : array, shape (n_beats,) | None
        Heartbeat times in seconds from the recording's first sample (the EEG's clock).
    beat_kind : {"ppg", "ecg", "qrs"}
        What ``beat_times`` mark: pulse peaks (their delay is estimated), R peaks (used as they are), or R peaks a QRS
        detector found in a trace not known to be an ECG (a BIDS physio ``cardiac`` column: the delay is estimated where the
        artefact is clear, else 0).
    beat_delay : float | "auto" | None
        Seconds added to the beats; ``None`` / ``"auto"``: estimated for pulse peaks, 0 for R peaks.
    beat_source : str | None
        Where ``beat_times`` came from, for the report and the log.
    delay_search : (float, float)
        Delays (s) searched for pulse peaks.
    caller : {"python", "clean", "prepare", "synthesize"}
        The interface whose options the error messages name (``eeg2fmri clean``'s flags, the clean option's keys, or
        this function's arguments).
    where : str | None
        Recording name for messages.

    Returns
    -------
    cleaned : mne.io.BaseRaw
        A corrected copy (EEG channels corrected).
    info : dict
        ``method``, ``beats`` (``"ecg"``, ``"pulse"`` or ``"given"``), ``beat_source``, ``beat_kind`` (``"ecg"``: R peaks,
        ``"ppg"``: pulse peaks), ``ecg_channel`` (``None`` for other beats), ``pulse_channel``, ``beat_delay_s`` (seconds
        added to the beats), ``beat_delay`` (``"estimated"``, ``"given"`` or ``"none"``), ``delay_estimate``
        (:func:`estimate_bcg_delay`'s info without its profile, or ``None``), ``n_beats``, ``heart_rate_bpm``,
        ``n_components``, ``crossfade`` (PCA-OBS), ``coupling`` (:func:`bcg_coupling_report`, or ``None``).

    Raises
    ------
    Eeg2fmriInputError
        No ECG channel (and no other beats), too few beats, bad settings, or ``crossfade=None`` with an MNE
        without ``apply_pca_obs``.
    """
    import mne

    where = _where(raw, where)
    check_choice(method, "bcg method", ("pca_obs", "aas"), where=where)
    check_choice(beat_kind, "beat kind", ("ppg", "ecg", "qrs"), where=where)
    n_components = check_positive_int(n_components, "n_components", where=where)
    n_template = check_positive_int(n_template, "n_template", where=where)
    window = check_positive(window, "window", where=where, fix="pass the band-power window in seconds, e.g. the TR")
    if crossfade is not None and (isinstance(crossfade, bool) or not isinstance(crossfade, (int, float, np.integer, np.floating))
                                  or not 0.0 <= float(crossfade) <= 1.0):
        raise Eeg2fmriInputError(f"{where}: expected crossfade between 0 and 1 (a fraction of half the median RR interval) or None, got "
                                 f"{crossfade!r}; pass 0.5 (default), 0 for edge-to-edge fits, or None for MNE's apply_pca_obs.")
    beat_delay = _check_delay(beat_delay, "beat_delay" if caller == "python" else "--bcg-delay" if caller == "clean" else "bcg_delay", where)
    if method == "pca_obs" and crossfade is None and not hasattr(mne.preprocessing, "apply_pca_obs"):
        raise Eeg2fmriInputError(f"{where}: crossfade=None needs mne.preprocessing.apply_pca_obs (MNE >= 1.10), found MNE {mne.__version__}; "
                                 "upgrade MNE (pip install -U mne) or pass crossfade=0.5.")
    if beat_times is not None:
        beats_from, kind = "given", beat_kind
        qrs = np.sort(np.asarray(beat_times, dtype=np.float64).ravel())
        if not np.isfinite(qrs).all():
            raise Eeg2fmriInputError(f"{where}: expected finite heartbeat times (s from the first sample), got {int(np.sum(~np.isfinite(qrs)))} "
                                     "non-finite value(s); drop them.")
        source = beat_source or "given beat times"
        ecg_channel = None
        pulse_name = None
    elif pulse_channel is not None:
        beats_from, kind = "pulse", "ppg"
        pulse_name = _pulse_channel_name(raw, str(pulse_channel), where, caller)
        source = f"pulse channel {pulse_name!r}"
        ecg_channel = None
    else:
        beats_from, kind, pulse_name = "ecg", "ecg", None
        ecg_channel = _ecg_channel_name(raw, ecg_channel, where, caller)
        source = f"ECG channel {ecg_channel!r}"
    need = max(n_components + 2, 10)
    if raw.times[-1] < 20.0:
        raise Eeg2fmriInputError(
            f"{where}: the recording lasts {raw.times[-1]:.1f} s, expected at least 20 s (and {need} heartbeats) to find "
            f"{'R peaks in ' + source[0].upper() + source[1:] if beats_from == 'ecg' else 'heartbeats in the ' + source} and fit PCA-OBS; "
            "clean a longer recording."
        )
    out = raw.copy().load_data(verbose=False)
    if beats_from == "ecg":
        events = mne.preprocessing.find_ecg_events(out, ch_name=ecg_channel, verbose=False)[0]
        qrs = (events[:, 0] - out.first_samp) / float(out.info["sfreq"])
    elif beats_from == "pulse":
        qrs = _beats_from_pulse_channel(out, pulse_name, where)
    # the respiration belt: a channel typed 'resp', else the one channel named Resp*/Breath* (a bare file types it EEG)
    resp = [n for n, t in zip(out.ch_names, out.get_channel_types()) if t == "resp"]
    if not resp:
        named_resp = [n for n in out.ch_names if n.strip().upper().startswith(("RESP", "BREATH"))]
        resp = named_resp if len(named_resp) == 1 else []
    resp_channel = resp[0] if resp else None
    # (the ECG and pulse channels are left as recorded, also where their type says EEG: a bare file whose ECG was found by its name)
    eeg = [n for n, t in zip(out.ch_names, out.get_channel_types())
           if t == "eeg" and n not in out.info["bads"] and n not in (ecg_channel, resp_channel, pulse_name)]
    if not eeg:
        raise Eeg2fmriInputError(f"{where}: expected EEG channels to remove pulse artifacts from, found none; set the channel types.")
    sf = float(out.info["sfreq"])
    delay_how, delay_info = "none", None
    if beat_delay is not None:
        delay, delay_how = float(beat_delay), "given"
    elif kind in ("ppg", "qrs"):
        inside = qrs[(qrs > 0) & (qrs < out.times[-1])]
        if len(inside) < need:
            raise Eeg2fmriInputError(f"{where}: found {len(inside)} heartbeat(s) within the recording from the {source}, expected at least "
                                     f"{need}; check that it holds the pulse or ECG trace for this recording (and its clock), or clean a "
                                     "longer recording.")
        few = [eeg[i] for i in np.unique(np.linspace(0, len(eeg) - 1, min(len(eeg), 16)).round().astype(int))]  # (as the estimate
        delay, delay_info = estimate_bcg_delay(out.get_data(picks=few), sf, inside, search=delay_search, where=where)  # picks: no copy of all)
        delay_how = "estimated"
        delay_info.pop("profile_s")
        delay_info.pop("profile")
        if delay_info["peak_ratio"] < BCG_DELAY_MIN_RATIO and kind == "qrs":  # R peaks of a trace of unknown kind: kept where found
            logger.info("%s: no clear pulse artefact around the beats of the %s (score %.2f): its R peaks are used as found (delay 0)",
                        where, source, delay_info["peak_ratio"])
            delay, delay_how = 0.0, "none (R peaks; no clear artefact to place)"
        elif delay_info["peak_ratio"] < BCG_DELAY_MIN_RATIO:
            logger.warning("%s: the EEG averaged around the beats of the %s holds no clear pulse artefact (best delay's score %.2f x the "
                           "mean over %g..%g s): its delay (%.3f s) is a guess; check the beats or give the delay (%s)", where, source,
                           delay_info["peak_ratio"], delay_search[0], delay_search[1], delay,
                           "--bcg-delay" if caller == "clean" else "bcg_delay")
    else:
        delay = 0.0
    qrs = qrs + delay
    qrs = qrs[(qrs > 0) & (qrs < out.times[-1])].astype(np.float64)
    if len(qrs) < need:
        what = f"R peak(s) in ECG channel {ecg_channel!r}" if beats_from == "ecg" else f"heartbeat(s) within the recording from the {source}"
        raise Eeg2fmriInputError(
            f"{where}: found {len(qrs)} {what}, expected at least {need} heartbeats; "
            + ("check that the channel holds the ECG (and that gradient artifacts were removed first), or clean a longer recording."
               if beats_from == "ecg" else "check that the beats belong to this recording and its clock, or clean a longer recording.")
        )
    info: dict[str, Any] = dict(method=method, beats=beats_from, beat_source=source, beat_kind=kind, ecg_channel=ecg_channel,
                                pulse_channel=pulse_name, beat_delay_s=round(float(delay), 6), beat_delay=delay_how,
                                delay_estimate=delay_info, n_beats=int(len(qrs)), heart_rate_bpm=None, n_components=n_components)
    if method == "pca_obs":
        info["crossfade"] = None if crossfade is None else float(crossfade)
        from threadpoolctl import threadpool_limits

        # one BLAS thread: one small decomposition (beats x epoch samples) per channel, which a multi-threaded BLAS on a
        # busy machine slowed ~100x (2 s per channel on 2 loaded cores; user test 17: 85 s CPU per 5-min run at 5 kHz)
        with threadpool_limits(limits=1, user_api="blas"):
            if crossfade is None:
                out = mne.preprocessing.apply_pca_obs(out, picks=eeg, qrs_times=qrs, n_components=n_components, copy=False, verbose=False)
            else:
                r = np.round(qrs * sf).astype(np.int64)
                info.update(_pca_obs(out._data, [out.ch_names.index(c) for c in eeg], r, n_components, float(crossfade)))
    else:
        _bcg_aas(out, eeg, qrs, n_template, where)
    rate = 60.0 / float(np.median(np.diff(qrs)))
    info["heart_rate_bpm"] = rate
    shift = f", moved by {delay * 1e3:+.0f} ms ({delay_how})" if delay_how != "none" else ""
    logger.info("%s: BCG %s on %d channel(s), %d beats from the %s%s (%.0f bpm)", where, method, len(eeg), len(qrs), source, shift, rate)
    info["coupling"] = None
    if coupling:
        info["coupling"] = bcg_coupling_report(raw, out, qrs, picks=eeg, resp_channel=resp_channel, window=window, method=method,
                                               crossfade=crossfade, where=where)
    return out, info


def _check_delay(value: Any, name: str, where: str) -> float | None:
    """``None`` for "auto" (estimated for pulse beats), else the delay in seconds (within ±1 s)."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not -1.0 <= float(value) <= 1.0:
        raise Eeg2fmriInputError(f"{where}: expected {name} 'auto' (estimated for pulse-oximeter beats) or seconds from -1 to 1 added to "
                                 f"the heartbeats, got {value!r}; e.g. {name} -0.2 (the artefact begins 200 ms before the pulse peak) "
                                 "or leave it out.")
    return float(value)


def _ecg_channel_name(raw, ecg_channel: str | None, where: str, caller: str) -> str:
    """The ECG channel for the R peaks; when there is none, an error naming the other sources of heartbeats ``caller`` has."""
    types = raw.get_channel_types()
    if ecg_channel is not None:
        if ecg_channel not in raw.ch_names:
            raise Eeg2fmriInputError(f"{where}: expected an ECG channel named {ecg_channel!r}, found none among {raw.ch_names[:12]}; pass "
                                     "the ECG channel's name.")
        return ecg_channel
    ecg = [n for n, t in zip(raw.ch_names, types) if t == "ecg"]
    named = [n for n in raw.ch_names if n.strip().upper().startswith(("ECG", "EKG"))]
    if not ecg and len(named) == 1:  # a bare .vhdr/.edf types every channel EEG: one channel named ECG*/EKG* is the ECG
        logger.info("%s: no channel is typed ECG; using %r, named as one, for the R peaks (pass ecg_channel to choose another)", where, named[0])
        ecg = named
    if ecg:
        return ecg[0]
    guess = [n for n in raw.ch_names if any(s in n.upper() for s in ("ECG", "EKG"))]
    pulse = [n for n in raw.ch_names if n.strip().upper().startswith(PULSE_NAMES)]
    hint = ""
    if guess:
        hint = f" (channel(s) {guess} look like ECG: raw.set_channel_types({{{guess[0]!r}: 'ecg'}}), or {_option('ecg_channel', caller).replace('<name>', repr(guess[0]) if caller not in ('clean',) else guess[0])})"
    elif pulse:
        hint = f" (channel(s) {pulse} look like a pulse oximeter: {_option('pulse_channel', caller).replace('<name>', repr(pulse[0]) if caller not in ('clean',) else pulse[0])})"
    chans = f"{raw.ch_names[:12]}{' ...' if len(raw.ch_names) > 12 else ''}"
    if caller == "clean":
        fix = ("pass --ecg-channel <name> (an ECG channel of the file), --pulse-channel <name> (a pulse-oximeter channel of the file), or "
               "--physio FILE_physio.tsv.gz (a BIDS physio file's cardiac column; --physio-start: the EEG time of its StartTime 0, "
               "default the first volume marker), or run with --bcg none")
    elif caller == "prepare":
        fix = ("take the heartbeats from the run's BIDS *_physio.tsv.gz cardiac column (clean option bcg_beats: 'physio'; "
               "--clean bcg,bcg_beats=physio or --config '{\"clean\": {\"bcg\": \"pca_obs\", \"bcg_beats\": \"physio\"}}'), from a "
               "pulse-oximeter channel of the EEG file (bcg_beats: 'pulse', pulse_channel: <name>), or from an ECG channel of "
               "another name (ecg_channel: <name>); or clean without bcg (--clean gradient)")
    elif caller == "synthesize":
        fix = ("clean with the heartbeats of a pulse-oximeter channel (clean={'bcg': 'aas', 'bcg_beats': 'pulse', 'pulse_channel': <name>}; "
               "--clean bcg=aas,bcg_beats=pulse,pulse_channel=<name>) or an ECG channel of another name (ecg_channel), or without bcg")
    else:
        fix = ("set its type, pass ecg_channel=<name>, pulse_channel=<name> (a pulse-oximeter channel) or beat_times (heartbeats on the "
               "EEG's clock, e.g. physio_file_beats(...) of a BIDS physio file), or clean without bcg")
    raise _NoHeartbeatSource(
        f"{where}: expected an ECG channel (channel type 'ecg') to find the R peaks for pulse (BCG) artifact removal, found none among "
        f"{chans}{hint}; {fix}.")


class _NoHeartbeatSource(Eeg2fmriInputError):
    """No ECG channel and no other heartbeats: prepare adds what the run's physio files offer."""


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
# physiological coupling of band power, before and after the pulse-artefact removal

#: Bands (Hz) of the coupling measure; those above 0.45 x the analysis rate are left out.
COUPLING_BANDS = {"delta": (1.0, 4.0), "theta": (4.0, 8.0), "alpha": (8.0, 13.0), "beta": (13.0, 30.0), "gamma": (30.0, 45.0),
                  "high_gamma": (55.0, 95.0)}
#: Cleaning "raises" a coupling when the median |r| grows by at least this much ...
COUPLING_RAISE = 0.15
#: ... to at least this (and at least 3 / sqrt(n_windows), beyond chance).
COUPLING_MIN = 0.3
#: Respiration depth: the belt's standard deviation over a centred span of at least this many seconds (about a breath or two).
RESP_SPAN_S = 6.0


def _window_band_power(x: np.ndarray, sf: float, window: float, bands: dict[str, tuple[float, float]]) -> np.ndarray:
    """Log band power of consecutive non-overlapping windows (Welch, 1-s Hann segments, half overlap, inside every window).

    Parameters
    ----------
    x : array, shape (n_channels, n_times)
    sf : float
    window : float
        Seconds per window.
    bands : dict
        Name -> (low, high) Hz; power is the mean density over ``low <= f < high``.

    Returns
    -------
    logpow : array, shape (n_bands, n_channels, n_windows)
    """
    from scipy.signal import welch

    length = int(round(window * sf))
    n_win = x.shape[1] // length
    frames = x[:, : n_win * length].reshape(x.shape[0], n_win, length)
    nper = min(length, int(round(sf)))
    f, p = welch(frames, fs=sf, window="hann", nperseg=nper, noverlap=nper // 2, detrend="constant", axis=-1)
    out = np.empty((len(bands), x.shape[0], n_win))
    for k, (lo, hi) in enumerate(bands.values()):
        sel = (f >= lo) & (f < hi)
        out[k] = np.log(np.maximum(p[..., sel].mean(axis=-1), 1e-300))
    return out


def _rolling_sd(x: np.ndarray, centres: np.ndarray, half: int) -> np.ndarray:
    """Standard deviation of ``x`` over ``[c - half, c + half)`` (clipped to the data) for every centre sample ``c``."""
    from eeg2fmri.utils.stats import rolling_sd

    return rolling_sd(x, centres - half, centres + half)


def _median_abs_corr(logpow: np.ndarray, cov: np.ndarray) -> np.ndarray | None:
    """Median over channels of |Pearson r| between every (band, channel) series and ``cov``; shape (n_bands,); None if ``cov`` is flat."""
    c = cov - cov.mean()
    if not np.isfinite(c).all() or np.sqrt(np.mean(c * c)) <= 1e-12 * max(np.abs(cov).max(), 1e-300):
        return None
    z = logpow - logpow.mean(axis=-1, keepdims=True)
    den = np.sqrt((z * z).sum(axis=-1) * (c * c).sum())
    r = np.where(den > 0, (z * c).sum(axis=-1) / np.where(den > 0, den, 1.0), 0.0)
    return np.median(np.abs(r), axis=1)


def bcg_coupling_report(
    before,
    after,
    qrs: np.ndarray,
    *,
    picks: list[str] | None = None,
    resp_channel: str | None = None,
    window: float = 2.0,
    bands: dict[str, tuple[float, float]] | None = None,
    max_channels: int = 16,
    method: str | None = None,
    crossfade: float | None = None,
    where: str | None = None,
) -> dict[str, Any]:
    """How much per-window EEG band power tracks heart rate and respiration, before and after cleaning.

    The EEG (at most ``max_channels`` channels spread over ``picks``) is decimated
    (:func:`scipy.signal.resample_poly`) to about 250 Hz, cut into consecutive
    ``window``-s windows, and the log band power of every window taken (Welch, 1-s Hann
    segments). Heart rate: ``60 / RR`` from the R peaks (irregular intervals left out),
    interpolated at the window centres. Respiration depth: the standard deviation of the respiration channel over a
    centred span of ``max(6 s, window)``. For every band the report gives the median over
    channels of ``|r|`` (Pearson, over windows) between band power and each covariate,
    before and after. A band whose coupling grows by ``COUPLING_RAISE`` (0.15) or more to at
    least ``max(COUPLING_MIN, 3 / sqrt(n_windows))`` is listed under ``raised`` and logged as
    a warning: the cleaning made band power track the physiology more, either by adding
    physiology-locked power (PCA-OBS with fits edge to edge turns respiration drift into
    steps) or by removing the pulse artefact that masked a respiration artefact already there.

    Parameters
    ----------
    before, after : mne.io.BaseRaw
        The recording before and after the pulse-artefact removal (same channels and rate).
    qrs : array, shape (n_beats,)
        R-peak times (s from the first sample).
    picks : list of str | None
        EEG channel names (default: the good EEG channels).
    resp_channel : str | None
        Respiration-belt channel (``None``: no respiration covariate).
    window : float
        Seconds per band-power window (e.g. the TR).
    bands : dict | None
        Name -> (low, high) Hz (default :data:`COUPLING_BANDS`).
    max_channels : int
        EEG channels analysed (an evenly spread subset when there are more).
    method, crossfade : str | None, float | None
        The cleaning that ran, for the warning's advice.
    where : str | None
        Recording name for messages.

    Returns
    -------
    report : dict
        ``window_s``, ``n_windows``, ``channels`` (used), ``bands`` (name -> [low, high]),
        ``resp_channel``, ``irregular_rr`` (RR intervals more than 35 % off the running median
        of 9, missed or extra R peaks, left out of the heart rate); ``heart_rate`` and ``respiration``: ``{"before": {band: r},
        "after": {band: r}}`` (median |r| over channels; ``respiration`` is ``None`` without a
        belt, a covariate that does not vary is ``None`` too); ``raised``: list of
        ``{"covariate", "band", "before", "after"}``; ``skipped``: why nothing was measured,
        or ``None``.
    """
    from scipy.ndimage import median_filter
    from scipy.signal import resample_poly

    where = _where(before, where)
    window = check_positive(window, "window", where=where, fix="pass the band-power window in seconds, e.g. the TR")
    max_channels = check_positive_int(max_channels, "max_channels", where=where)
    bands = dict(COUPLING_BANDS if bands is None else bands)
    if picks is None:
        picks = [n for n, t in zip(before.ch_names, before.get_channel_types()) if t == "eeg" and n not in before.info["bads"]]
    if resp_channel is not None and resp_channel not in before.ch_names:
        raise Eeg2fmriInputError(f"{where}: expected a respiration channel named {resp_channel!r}, found none among {before.ch_names[:12]}; "
                                 "pass the belt's channel name or None.")
    if len(picks) > max_channels:
        picks = [picks[i] for i in np.unique(np.linspace(0, len(picks) - 1, max_channels).round().astype(int))]
    sf = float(before.info["sfreq"])
    q = max(1, int(sf // 250.0))
    sfd = sf / q
    bands = {k: (float(lo), float(hi)) for k, (lo, hi) in bands.items() if hi <= 0.45 * sfd}
    rep: dict[str, Any] = dict(window_s=window, n_windows=0, channels=list(picks), bands={k: list(v) for k, v in bands.items()},
                               resp_channel=resp_channel, irregular_rr=None, heart_rate=None, respiration=None, raised=[], skipped=None)
    n_win = int(before.n_times // int(round(window * sf)))
    if not picks or not bands or n_win < 10 or len(qrs) < 3:
        rep["skipped"] = (f"{n_win} window(s) of {window:g} s, {len(picks)} EEG channel(s), {len(bands)} band(s) below "
                          f"{0.45 * sfd:.0f} Hz, {len(qrs)} R peak(s): expected at least 10 windows, 1 channel, 1 band and 3 R peaks")
        logger.info("%s: BCG coupling report skipped: %s", where, rep["skipped"])
        return rep

    def logpow(raw) -> np.ndarray:
        x = raw.get_data(picks=picks) * 1e6
        x = x - x.mean(axis=1, keepdims=True)
        if q > 1:
            x = resample_poly(x, 1, q, axis=-1)
        return _window_band_power(x, sfd, window, bands)

    lp_b, lp_a = logpow(before), logpow(after)
    n_win = lp_b.shape[-1]
    rep["n_windows"] = int(n_win)
    centres = (np.arange(n_win) + 0.5) * window
    qrs = np.sort(np.asarray(qrs, dtype=float))
    rr = np.diff(qrs)
    # a missed or extra R peak gives an RR interval far from its neighbours': left out (else the windows where the pulse artefact
    # was not removed, and the heart rate looks halved, make band power seem to track heart rate)
    regular = np.abs(rr / median_filter(rr, size=9, mode="nearest") - 1.0) <= 0.35
    rep["irregular_rr"] = int(np.sum(~regular))
    if regular.sum() < 3:
        regular[:] = True
    hr = np.interp(centres, (0.5 * (qrs[1:] + qrs[:-1]))[regular], 60.0 / rr[regular])
    covs = {"heart_rate": hr}
    if resp_channel is not None:
        belt = before.get_data(picks=[resp_channel])[0]
        if q > 1:
            belt = resample_poly(belt - belt.mean(), 1, q)
        half = int(round(max(RESP_SPAN_S, window) * sfd / 2))
        covs["respiration"] = _rolling_sd(belt, np.round(centres * sfd).astype(np.int64), half)
    names = list(bands)
    floor = max(COUPLING_MIN, 3.0 / np.sqrt(n_win))
    for cov_name, cov in covs.items():
        rb, ra = _median_abs_corr(lp_b, cov), _median_abs_corr(lp_a, cov)
        if rb is None or ra is None:
            continue
        rep[cov_name] = {"before": {k: float(v) for k, v in zip(names, rb)}, "after": {k: float(v) for k, v in zip(names, ra)}}
        for k, b, a in zip(names, rb, ra):
            if a - b >= COUPLING_RAISE and a >= floor:
                rep["raised"].append(dict(covariate=cov_name, band=k, before=float(b), after=float(a)))

    def fmt(cov_name: str) -> str:
        c = rep[cov_name]
        return ", ".join(f"{k} {c['before'][k]:.2f}->{c['after'][k]:.2f}" for k in names)

    msg = f"heart rate {fmt('heart_rate')}" if rep["heart_rate"] else "heart rate: constant"
    msg += f"; respiration ({resp_channel}) {fmt('respiration')}" if rep["respiration"] else "; respiration: no belt channel"
    logger.info("%s: band power vs physiology (median |r| over %d channels, %d windows of %g s), before->after: %s", where, len(picks), n_win,
                window, msg)
    if rep["raised"]:
        what = "; ".join(f"{d['band']} vs {d['covariate'].replace('_', ' ')} {d['before']:.2f} -> {d['after']:.2f}" for d in rep["raised"])
        if method == "pca_obs" and crossfade is not None and float(crossfade) > 0:
            advice = ("compare with --bcg aas (method='aas'): if it raises the same bands, removing the pulse artefact unmasked a "
                      "respiration artefact already in the EEG")
        elif method == "pca_obs":
            advice = ("PCA-OBS with fits edge to edge turns respiration drift into steps: use the default cross-faded PCA-OBS "
                      "(crossfade=0.5) or --bcg aas (method='aas')")
        else:
            advice = "removing the pulse artefact may have unmasked a respiration or cardiac artefact already in the EEG"
        logger.warning(
            "%s: after pulse-artifact (BCG) cleaning, EEG band power tracks the physiology more than before (median |r| over channels "
            "of per-%g-s band power with heart rate / respiration depth: %s). Such power lets a model 'predict' the BOLD's physiological "
            "noise (CSF, vessels), which a leaderboard reads as a gain; %s, and regress the physiology from the BOLD (prepare option "
            "physio: \"regress\") or drop the affected bands (README: 'Pulse-artifact cleaning and physiological noise')",
            where, window, what, advice)
    return rep


# ---------------------------------------------------------------------------------------
# residual artefact power


def _psd(raw, tr: float, max_duration: float, max_channels: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Welch PSD (µV²/Hz) of the EEG channels over at most ``max_duration`` s from the middle; channels in groups (bounded memory)."""
    from scipy.signal import welch

    sf = float(raw.info["sfreq"])
    picks = [i for i, t in enumerate(raw.get_channel_types()) if t == "eeg" and raw.ch_names[i] not in raw.info["bads"]]
    if not picks:
        raise Eeg2fmriInputError("expected EEG channels to measure artifact power on, found none; set the channel types.")
    if len(picks) > max_channels:  # a median over channels: an evenly spread subset will do
        picks = [picks[i] for i in np.unique(np.linspace(0, len(picks) - 1, max_channels).round().astype(int))]
    n = raw.n_times
    length = min(n, int(round(max_duration * sf)))
    start = (n - length) // 2
    nperseg = min(length, int(round(8 * tr * sf)))
    group = max(1, int(2**23 // max(length, 1)))
    parts = []
    for g0 in range(0, len(picks), group):
        x = raw.get_data(picks=picks[g0 : g0 + group], start=start, stop=start + length) * 1e6  # µV
        f, p = welch(x, fs=sf, window="hann", nperseg=nperseg, noverlap=nperseg // 2, detrend="constant", axis=-1)
        parts.append(p)
    return f, np.concatenate(parts)


def _line_power(raw, f: np.ndarray, p: np.ndarray, tr: float, n_slices: int | None, fmin: float) -> dict[str, Any]:
    sf = float(raw.info["sfreq"])
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
    max_duration: float = 120.0,
    max_channels: int = 16,
    where: str | None = None,
) -> dict[str, Any]:
    """Residual gradient-artefact power at the volume and slice frequencies, before and after.

    Power spectra (Welch, ``8 * TR`` s Hann segments, of at most ``max_duration`` s from the
    middle of the recording, at most ``max_channels`` EEG channels spread over the montage,
    µV²/Hz) are read at every multiple of ``1 / TR``
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
    max_channels : int
        EEG channels analysed (an evenly spread subset when there are more).
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
    psd_b = _psd(before, tr, max_duration, max_channels)
    psd_a = _psd(after, tr, max_duration, max_channels)
    b = _line_power(before, *psd_b, tr, n_slices, fmin)
    a = _line_power(after, *psd_a, tr, n_slices, fmin)
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
    fb, pb = _line_power(before, *psd_b, tr, None, 0.0)["volume"]
    pa = _line_power(after, *psd_a, tr, None, 0.0)["volume"][1]
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
    bcg_crossfade: float | None = 0.5,
    pulse_channel: str | None = None,
    beat_times: np.ndarray | None = None,
    beat_kind: str = "ppg",
    beat_source: str | None = None,
    bcg_delay: float | str | None = None,
    n_jobs: int = 1,
    random_state: int | None = None,
    verbose: bool | str | None = None,
    caller: str = "python",
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
        Pulse-artefact removal (:func:`remove_bcg_artifacts`: PCA-OBS, or average artefact
        subtraction) or none; its report includes the coupling of band power to heart rate
        and respiration before and after (:func:`bcg_coupling_report`, windows of ``tr`` s,
        2 s when unknown).
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
    bcg_crossfade : float | None
        PCA-OBS: cross-fade of neighbouring beat fits, a fraction of half the median RR
        interval (default 0.5; 0: edge to edge; ``None``: MNE's ``apply_pca_obs``).
    pulse_channel : str | None
        Take the heartbeats from this pulse-oximeter (PPG) channel of the recording instead of an ECG (``"auto"``: the
        one channel named PPG*, Pulse* or Pleth*); their delay to the artefact is estimated
        (:func:`estimate_bcg_delay`).
    beat_times : array | None
        Heartbeat times (s from the first sample, the EEG's clock), e.g. :func:`physio_file_beats` of a BIDS physio
        file; they take precedence over ``pulse_channel`` and the ECG.
    beat_kind : {"ppg", "ecg"}
        What ``beat_times`` mark: pulse peaks (delay estimated) or R peaks (used as they are).
    beat_source : str | None
        Where ``beat_times`` came from (report, log).
    bcg_delay : float | "auto" | None
        Seconds added to the heartbeats; ``None`` / ``"auto"``: estimated for pulse peaks, 0 for R peaks.
    n_jobs : int
        Threads for the gradient AAS (:func:`remove_gradient_artifacts`).
    random_state : int | None
        Accepted for a uniform API; both methods are deterministic.
    verbose : bool | str | None
        Log level for this call (``None``: unchanged).
    caller : {"python", "clean", "prepare", "synthesize"}
        The interface whose options the error messages name.
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
    import os

    import mne

    from eeg2fmri.utils.logs import set_log_level

    if isinstance(raw, (str, os.PathLike)):  # a path, as synthesize and the readers take: read with eeg2fmri.io.read_eeg
        from eeg2fmri.io.eeg import read_eeg

        where = where or str(raw)
        raw = read_eeg(raw, preload=True)
    where = _where(raw, where)
    if not isinstance(raw, mne.io.BaseRaw):
        raise Eeg2fmriInputError(f"{where}: expected an mne.io.Raw or a path to an EEG file, got {type(raw).__name__}; read the file "
                                 "with mne.io.read_raw or eeg2fmri.io.read_eeg, or pass its path.")
    check_choice(gradient, "gradient method", GRADIENT_METHODS, where=where)
    check_choice(bcg, "bcg method", BCG_METHODS, where=where)
    if verbose is not None:
        set_log_level(verbose)
    report: dict[str, Any] = dict(where=where, gradient=None, bcg=None, artifact_power=None)
    out = raw
    if gradient == "aas":
        out, report["gradient"] = remove_gradient_artifacts(raw, volume_onsets=volume_onsets, slice_onsets=slice_onsets, marker=marker,
                                                            slice_marker=slice_marker, n_template=n_template, upsample=upsample,
                                                            obs_components=obs_components, n_jobs=n_jobs, where=where)
        vol = np.sort(np.asarray(volume_onsets, dtype=float)) if volume_onsets is not None else find_markers(raw, marker or (), where=where)[0]
        if tr is None and len(vol) > 1:
            tr = float(np.median(np.diff(vol)))
        if n_slices is None and report["gradient"]["epochs"] == "slice" and tr:
            n_slices = int(round(tr * raw.info["sfreq"] / report["gradient"]["epoch_samples"]))
        if tr:
            report["artifact_power"] = ap = artifact_power_report(raw, out, tr=tr, n_slices=n_slices, where=where)
            if ap["volume_reduction_db"] < LOW_REDUCTION_DB:  # (user test 20: 8.7 dB on aliased data, nothing said, synthesis spoilt)
                ap["low_reduction"] = True
                logger.warning(
                    "%s: gradient AAS lowered the artefact's volume comb by %.1f dB only (%.1f -> %.1f dB re 1 uV^2/Hz; a clean "
                    "removal takes 30-40 dB): expected an artefact that repeats from volume to volume. The EEG may have been "
                    "recorded without an anti-aliasing filter below its Nyquist frequency (then the artefact differs between "
                    "volumes: record at a higher rate or with the amplifier's low-pass), the markers may not be locked to the "
                    "artefact (check the marker name), or the data were already cleaned; look at the cleaned EEG before using it",
                    where, ap["volume_reduction_db"], ap["volume_db_before"], ap["volume_db_after"])
    if bcg is not None:
        if tr is None:  # the coupling windows: the TR where the volume markers give it
            vol = np.sort(np.asarray(volume_onsets, dtype=float)) if volume_onsets is not None else find_markers(raw, marker or (), where=where)[0]
            tr = float(np.median(np.diff(vol))) if len(vol) > 1 else None
        out, report["bcg"] = remove_bcg_artifacts(out, method=bcg, ecg_channel=ecg_channel, n_components=bcg_components,
                                                  crossfade=bcg_crossfade, window=tr if tr and 0.5 <= tr <= 10.0 else 2.0,
                                                  pulse_channel=pulse_channel, beat_times=beat_times, beat_kind=beat_kind,
                                                  beat_source=beat_source, beat_delay=bcg_delay, caller=caller, where=where)
    if out is raw:
        out = raw.copy()
    return out, report


#: A gradient removal that lowers the volume comb by less than this (dB) is warned about (``low_reduction`` in the report).
LOW_REDUCTION_DB = 20.0

#: Options of :func:`clean_raw` that a prepare config's ``clean`` mapping may set (``bcg_beats`` is the mapping's own:
#: where the heartbeats come from, :data:`BCG_BEATS`).
CLEAN_OPTIONS = ("gradient", "bcg", "slice_marker", "n_slices", "ecg_channel", "n_template", "upsample", "obs_components", "bcg_components",
                 "bcg_crossfade", "bcg_beats", "pulse_channel", "bcg_delay", "n_jobs")


def check_clean_options(options: Any, where: str = "prepare option clean") -> dict[str, Any]:
    """Validate a ``clean`` mapping (e.g. ``{"gradient": "aas", "bcg": "pca_obs"}``); missing steps are off.

    ``bcg_beats`` says where the pulse-artefact removal finds the heartbeats: ``"ecg"`` (default: the ECG channel of the
    EEG file, or ``ecg_channel``), ``"pulse"`` (a pulse-oximeter channel of the EEG file: ``pulse_channel``, or the one
    named PPG*, Pulse* or Pleth*) or ``"physio"`` (the run's BIDS ``*_physio.tsv.gz`` cardiac column, placed on the EEG's
    clock by its ``StartTime``; prepare only). Pulse peaks are moved by ``bcg_delay`` seconds, estimated when it is left
    out or ``"auto"`` (:func:`estimate_bcg_delay`).

    Returns
    -------
    options : dict
        With ``gradient`` and ``bcg`` present, and ``bcg_crossfade`` (0.5, the default) for ``bcg="pca_obs"``.
    """
    if not isinstance(options, dict):
        raise Eeg2fmriInputError(f"{where}: expected a mapping such as {{'gradient': 'aas', 'bcg': 'pca_obs'}}, got {options!r}.")
    unknown = sorted(set(options) - set(CLEAN_OPTIONS))
    if unknown:
        raise Eeg2fmriInputError(f"{where}: unknown key(s) {unknown}; valid: {list(CLEAN_OPTIONS)}.")
    out = {"gradient": None, "bcg": None, **options}
    check_choice(out["gradient"], "gradient method", GRADIENT_METHODS, where=where)
    check_choice(out["bcg"], "bcg method", BCG_METHODS, where=where)
    if out["bcg"] == "pca_obs" and "bcg_crossfade" not in out:  # written out, so that a model says which PCA-OBS its data had
        out["bcg_crossfade"] = 0.5
    cf = out.get("bcg_crossfade")
    if cf is not None and (isinstance(cf, bool) or not isinstance(cf, (int, float)) or not 0.0 <= float(cf) <= 1.0):
        raise Eeg2fmriInputError(f"{where}: expected bcg_crossfade from 0 to 1 (a fraction of half the median RR interval) or null (MNE's "
                                 f"apply_pca_obs), got {cf!r}; e.g. 0.5 (the default).")
    beats = out.get("bcg_beats")
    beat_keys = [k for k in ("bcg_beats", "pulse_channel", "bcg_delay", "ecg_channel") if out.get(k) is not None]
    if out["bcg"] is None and beat_keys:
        raise Eeg2fmriInputError(f"{where}: {beat_keys[0]}={out[beat_keys[0]]!r} sets the heartbeats of the pulse-artifact removal, but "
                                 "bcg is off; expected bcg 'aas' or 'pca_obs' with it (e.g. {'bcg': 'aas', 'bcg_beats': 'physio'}), or "
                                 f"leave {beat_keys[0]} out.")
    if beats is not None and beats not in BCG_BEATS:
        raise Eeg2fmriInputError(f"{where}: expected bcg_beats 'ecg' (the ECG channel of the EEG file), 'pulse' (a pulse-oximeter channel "
                                 "of the EEG file) or 'physio' (the run's BIDS *_physio.tsv.gz cardiac column), got "
                                 f"{beats!r}; e.g. {{'bcg': 'aas', 'bcg_beats': 'physio'}}.")
    for key in ("pulse_channel", "ecg_channel"):
        v = out.get(key)
        if v is not None and (not isinstance(v, str) or not v.strip()):
            raise Eeg2fmriInputError(f"{where}: expected {key} as a channel name, got {v!r}; e.g. {{'{key}': 'PPG'}}." if key == "pulse_channel"
                                     else f"{where}: expected {key} as a channel name, got {v!r}; e.g. {{'{key}': 'ECG'}}.")
    if out.get("pulse_channel") is not None and (beats or "pulse") != "pulse":
        raise Eeg2fmriInputError(f"{where}: pulse_channel={out['pulse_channel']!r} takes the heartbeats from a pulse-oximeter channel, but "
                                 f"bcg_beats is {beats!r}; expected bcg_beats 'pulse' with it, or leave pulse_channel out.")
    if out.get("ecg_channel") is not None and (beats or "ecg") != "ecg":
        raise Eeg2fmriInputError(f"{where}: ecg_channel={out['ecg_channel']!r} takes the R peaks from an ECG channel, but bcg_beats is "
                                 f"{beats!r}; expected bcg_beats 'ecg' with it, or leave ecg_channel out.")
    if out.get("bcg_delay") is not None:  # (seconds as a number, also from --clean's text)
        delay = _check_delay(out["bcg_delay"], "bcg_delay", where)
        out["bcg_delay"] = "auto" if delay is None else delay
    return out


#: Keys that ``--clean`` takes as ``key=value`` beside its steps.
_CLEAN_STEP_KEYS = ("bcg_beats", "pulse_channel", "ecg_channel", "bcg_delay")


def parse_clean_steps(text: str | None, *, gradient: str = "aas", bcg: str = "pca_obs") -> dict[str, Any] | None:
    """``"gradient,bcg"`` (the ``--clean`` option) -> ``{"gradient": "aas", "bcg": "pca_obs"}``; ``None``/``""`` -> ``None``.

    A step may name its method: ``"gradient=aas,bcg=aas"``; the heartbeats of the pulse step may be set by
    ``bcg_beats=physio``, ``bcg_beats=pulse``, ``pulse_channel=NAME``, ``ecg_channel=NAME`` and ``bcg_delay=SECONDS``.
    """
    if not text:
        return None
    out: dict[str, Any] = {"gradient": None, "bcg": None}
    for part in str(text).split(","):
        name, eq, method = (v.strip() for v in part.strip().partition("="))
        if name in _CLEAN_STEP_KEYS and eq and method:
            out[name] = method
            continue
        if name not in ("gradient", "bcg"):
            raise Eeg2fmriInputError(f"--clean: expected a comma-separated list of 'gradient' and 'bcg' (optionally 'bcg=aas', and the "
                                     f"heartbeats: {', '.join(k + '=...' for k in _CLEAN_STEP_KEYS)}), got {part.strip()!r}; e.g. --clean "
                                     "gradient,bcg or --clean bcg=aas,bcg_beats=physio.")
        out[name] = method or (gradient if name == "gradient" else bcg)
    if out.get("pulse_channel") and "bcg_beats" not in out:
        out["bcg_beats"] = "pulse"
    return check_clean_options(out, where="--clean")


def clean_for_prepare(raw, options: dict, *, tr: float, marker, onsets: np.ndarray, where: str, physio_files=None,
                      bold_start: float | None = None, caller: str | None = None):
    """The cleaning step of ``prepare``: :func:`clean_raw` with the config's options and a JSON-ready report.

    Volume markers are read from the annotations (``marker``: every scanner volume,
    dummy scans included); without markers the synchronised ``onsets`` are used. With ``bcg_beats: "physio"`` the
    heartbeats come from ``physio_files`` (the run's BIDS physio files, :func:`physio_file_beats`), whose time 0 is the
    BOLD file's first volume at ``bold_start`` s of the EEG.

    Parameters
    ----------
    raw : mne.io.BaseRaw
    options : dict
        The ``clean`` mapping (:func:`check_clean_options`).
    tr : float
    marker : str | sequence of str | None
    onsets : array
        The volumes' onsets (s of the EEG).
    where : str
    physio_files : sequence of path-like | None
        The run's BIDS physio files (``None``: not known, as in synthesis from an EEG file alone).
    bold_start : float | None
        EEG time (s) of the BOLD file's first volume (the physio files' ``StartTime`` counts from it).
    caller : {"prepare", "synthesize"} | None
        The interface whose options the error messages name (``None``: ``"prepare"`` when ``physio_files`` is given, else
        ``"synthesize"``).
    """
    opts = check_clean_options(options)
    caller = caller or ("prepare" if physio_files is not None else "synthesize")
    beats = opts.pop("bcg_beats", None) or "ecg"
    extra: dict[str, Any] = {}
    if opts["bcg"] is not None and beats == "pulse":
        opts["pulse_channel"] = opts.get("pulse_channel") or "auto"
    elif opts["bcg"] is not None and beats == "physio":
        if physio_files is None or bold_start is None:
            raise Eeg2fmriInputError(
                f"{where}: clean option bcg_beats='physio' takes the heartbeats from the run's BIDS *_physio.tsv.gz, which prepare "
                "finds beside the BOLD; here there is none (synthesis reads the EEG alone, e.g. clean='training' of a model prepared "
                "so): clean with the heartbeats of the EEG file instead (clean={'bcg': 'aas', 'bcg_beats': 'pulse', 'pulse_channel': "
                "<name>} or an ECG channel, 'bcg_beats': 'ecg'), or without bcg.")
        times, kind, source = physio_file_beats(physio_files, float(bold_start), where=where)
        # (R peaks of a column that does not say it is an ECG: placed by the artefact where it is clear, else kept: a review)
        extra = dict(beat_times=times, beat_kind="qrs" if kind == "ecg" else "ppg",
                     beat_source=f"{source} ({'QRS' if kind == 'ecg' else 'pulse'} detector)")
        _warn_uncovered(times, onsets, tr, source, where)
    markers = (marker,) if isinstance(marker, str) else tuple(marker or ())
    found = find_markers(raw, markers, where=where)[0] if markers else np.zeros(0)
    vol = None if len(found) else np.asarray(onsets, dtype=float)
    try:
        cleaned, report = clean_raw(raw, tr=tr, marker=markers or None, volume_onsets=vol, where=where, caller=caller, **extra, **opts)
    except _NoHeartbeatSource as err:
        offer = _physio_offer(physio_files)
        if not offer:
            raise
        raise Eeg2fmriInputError(f"{err} This run has {offer}: bcg_beats 'physio' uses it.") from None
    return cleaned, _jsonable(report)


def _physio_offer(physio_files) -> str | None:
    """"a BIDS physio file X with a cardiac column" when one of ``physio_files`` has one (unreadable files: ``None``)."""
    from eeg2fmri.preprocessing.physio import read_bids_physio

    for f in physio_files or ():
        try:
            if "cardiac" in read_bids_physio(f):
                return f"a BIDS physio file with a cardiac column, {Path(f).name}"
        except Eeg2fmriInputError:
            continue
    return None


def _warn_uncovered(beats: np.ndarray, onsets: np.ndarray, tr: float, source: str, where: str) -> None:
    """Warn when the heartbeats of ``source`` leave more than 2 s of the volumes' span (EEG clock) without beats."""
    on = np.asarray(onsets, dtype=float)
    if not len(on) or not len(beats):
        return
    span = (float(on[0]), float(on[-1]) + float(tr))
    rr = float(np.median(np.diff(beats))) if len(beats) > 1 else 1.0
    before = max(0.0, float(beats[0]) - rr - span[0])
    after = max(0.0, span[1] - float(beats[-1]) - rr)
    if before + after > 2.0:
        logger.warning("%s: the heartbeats of %s run from %.1f to %.1f s of the EEG, the volumes from %.1f to %.1f s: the pulse artifact of "
                       "%.1f s of the scan is left in (check the file's StartTime, or the recording was stopped early)", where, source,
                       beats[0], beats[-1], span[0], span[1], before + after)


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
