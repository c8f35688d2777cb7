"""EEG preprocessing: keep EEG channels, re-reference, filter, and band-power envelopes."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import scipy.fft as sp_fft

from eeg2fmri.utils.logs import logger
from eeg2fmri.utils.parallel import n_cores as _n_cores
from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["DEFAULT_BANDS", "FLAT_SECONDS", "HIGH_GAMMA", "FlatScan", "amplitude_outliers", "auto_bands", "band_envelopes", "band_gains", "envelope_length", "bin_frames", "clean_eeg", "check_channels", "flat_message", "standardize_features"]

#: Default frequency bands (Hz) of band-power features.
DEFAULT_BANDS: dict[str, tuple[float, float]] = {
    "delta": (1.0, 4.0),
    "theta": (4.0, 8.0),
    "alpha": (8.0, 13.0),
    "beta": (13.0, 30.0),
    "gamma": (30.0, 45.0),
}

#: High-gamma band added by :func:`auto_bands` where the sampling rate allows it (above 50 Hz mains).
HIGH_GAMMA: tuple[float, float] = (55.0, 95.0)


def auto_bands(sfreq: float) -> dict[str, tuple[float, float]]:
    """The default band set for EEG sampled at ``sfreq``: the classical bands up to what the rate allows.

    :data:`DEFAULT_BANDS` (1-45 Hz) plus ``high_gamma`` from 55 Hz (above 50 Hz
    mains) to ``min(95, 0.4 * sfreq)`` Hz when that band is at least 15 Hz
    wide (e.g. 55-95 Hz at 250 Hz, 55-80 Hz at 200 Hz, none at 100 Hz).

    Parameters
    ----------
    sfreq : float
        Sampling rate of the lowest-rate recording, in Hz.

    Returns
    -------
    bands : dict
        Band name -> (low, high) in Hz.
    """
    bands = dict(DEFAULT_BANDS)
    hi = min(HIGH_GAMMA[1], 0.4 * float(sfreq))
    if hi - HIGH_GAMMA[0] >= 15.0:
        bands["high_gamma"] = (HIGH_GAMMA[0], float(hi))
    return bands


#: Hardware high-pass (Hz) under which a recording is taken to keep slow potentials (DC-coupled amplifiers record from 0 Hz).
SLOW_HIGHPASS_HZ = 0.05


def slow_band_note(runs, l_freq: float | None) -> str | None:
    """For ``datasets --check``: where recordings keep frequencies below ``SLOW_HIGHPASS_HZ`` (their header's high-pass,
    MNE's ``info["highpass"]``: 0 for DC-coupled amplifiers) and the prepare option ``l_freq`` removes them, a note saying
    that slow potentials reach no model (user test 59: a DC-coupled recording's infraslow coupling, silently filtered out);
    ``None`` otherwise. A run whose EEG cannot be read is left to the check's own problems."""
    from eeg2fmri.io.layouts import read_layout_eeg

    if l_freq is None:
        return None
    slow = []
    for run in runs:
        try:
            hp = float(read_layout_eeg(run, preload=False).info["highpass"])
        except Exception:  # noqa: BLE001  (the check's own finding)
            continue
        if hp < min(SLOW_HIGHPASS_HZ, float(l_freq)):
            slow.append(hp)
    if not slow:
        return None
    lo = "0 Hz (a DC-coupled amplifier, or a header that gives no high-pass)" if min(slow) == 0 else f"{min(slow):g} Hz"
    return (f"{len(slow)} recording(s) declare a hardware high-pass of {lo}, and prepare's l_freq {float(l_freq):g} Hz removes "
            f"everything below {float(l_freq):g} Hz: slow potentials below it reach no model. Band power is an envelope, so the sign "
            "of a slow potential is lost in any band; the raw representation (l_freq null) keeps it, for the networks that read raw "
            "windows (README: l_freq)")


def check_channels(raw, where: str = "EEG") -> None:
    """Raise on NaN/Inf or flat EEG channels, naming them and the fix."""
    data = raw.get_data()
    bad_nan = [raw.ch_names[i] for i in np.where(~np.isfinite(data).all(axis=1))[0]]
    if bad_nan:
        raise Eeg2fmriInputError(f"{where}: channel(s) {bad_nan} contain NaN/Inf; interpolate them (raw.interpolate_bads) or drop them (raw.drop_channels) first.")
    flat = [raw.ch_names[i] for i in np.where(np.ptp(data, axis=1) == 0)[0]]
    if flat:
        raise Eeg2fmriInputError(f"{where}: channel(s) {flat} are flat (constant); mark them bad and interpolate, or drop them.")


def amplitude_outliers(raw, picks: list[str] | None = None, *, ratio: float = 20.0, max_seconds: float = 60.0) -> dict[str, float]:
    """Channels whose amplitude is ``ratio`` times above or below the median channel's.

    A channel recorded in other units (mV read as µV) or a lifted electrode; the average reference would spread it
    into every other channel. The robust scale (median absolute deviation from the median) of up to ``max_seconds``
    from the middle of the recording, per channel, is compared with the median over the channels.

    Returns
    -------
    outliers : dict
        Channel name -> its scale over the median channel's (only the outliers; empty if there are none).
    """
    names = list(picks) if picks is not None else [raw.ch_names[i] for i in _eeg_picks(raw)]
    if len(names) < 3:
        return {}
    n = raw.n_times
    length = min(n, int(round(max_seconds * raw.info["sfreq"])))
    start = (n - length) // 2
    x = raw.get_data(picks=names, start=start, stop=start + length)
    scale = np.median(np.abs(x - np.median(x, axis=1, keepdims=True)), axis=1)
    ref = float(np.median(scale))
    if not np.isfinite(ref) or ref <= 0:
        return {}
    rel = scale / ref
    return {c: float(r) for c, r in zip(names, rel) if r > ratio or r < 1.0 / ratio}


#: Robust amplitude (median over channels of the median absolute deviation, volts) outside which a recording's EEG is
#: not in volts as MNE gives it: scalp EEG is some µV to tens of µV, in the scanner with gradient artefacts up to mV.
PLAUSIBLE_SCALE_V = (1e-8, 0.05)


def implausible_scale(raw, picks: list[str] | None = None, *, max_seconds: float = 20.0) -> str | None:
    """A message when the EEG's typical amplitude is no EEG's in volts (units written wrongly: user test 32's EEG was
    1e6 times too large and every command ran, since log band power is scale-free), else ``None``.

    The median over channels of each channel's median absolute deviation, on up to ``max_seconds`` from the middle of
    the recording, is compared with :data:`PLAUSIBLE_SCALE_V`.
    """
    names = list(picks) if picks is not None else [raw.ch_names[i] for i in _eeg_picks(raw)]
    if not names:
        return None
    n = raw.n_times
    length = min(n, int(round(max_seconds * raw.info["sfreq"])))
    start = (n - length) // 2
    x = raw.get_data(picks=names, start=start, stop=start + length)
    ref = float(np.median(np.median(np.abs(x - np.median(x, axis=1, keepdims=True)), axis=1)))
    lo, hi = PLAUSIBLE_SCALE_V
    if not np.isfinite(ref) or ref == 0 or lo <= ref <= hi:
        return None
    return (f"the EEG's typical amplitude is {ref:.3g} V (median channel's robust scale), expected {lo:g}-{hi:g} V for EEG in "
            "volts: were the data written in other units (µV stored as V, a wrong resolution in the header)? The band-power "
            "features do not show it (log power is scale-free), but raw-EEG models and the average reference of mixed "
            "recordings do; fix the units (raw.apply_function(lambda x: x * 1e-6)) before preparing.")


def outlier_message(outliers: dict[str, float]) -> str:
    """The warning about :func:`amplitude_outliers`' channels (the same words in ``prepare`` and ``synthesize``)."""
    sizes = ", ".join(f"{c}: {v:.3g} x" for c, v in sorted(outliers.items()))
    return (f"channel(s) {sorted(outliers)} have an amplitude far from the other channels' ({sizes} the median channel's "
            "robust scale: other units, a lifted or flat electrode?); through the average reference they affect every channel. "
            "Fix their scale, or mark them bad and interpolate them (raw.info['bads'] + raw.interpolate_bads), first.")


#: Shortest stretch (s) of bit-identical consecutive samples that :class:`FlatScan` reports: recorded EEG never holds a
#: value that long (a disconnected or saturated channel, zeroed data, a writer's padding does).
FLAT_SECONDS = 2.0


class FlatScan:
    """Constant stretches of each channel, from consecutive blocks of a recording.

    Feed the recording's samples in time order, without overlap (:meth:`update`); :attr:`constant` then says which
    channels never changed, :meth:`stretches` which held one value for at least ``min_seconds``. A few vectorised
    passes per block; only a channel with many equal neighbours in a block is searched stretch by stretch.

    Parameters
    ----------
    ch_names : list of str
        Channel names, in the rows' order.
    sfreq : float
        Sampling rate (Hz) of the samples fed.
    min_seconds : float
        Shortest stretch reported by :meth:`stretches`.
    """

    def __init__(self, ch_names: list[str], sfreq: float, min_seconds: float = FLAT_SECONDS) -> None:
        self.ch_names = list(ch_names)
        self.sfreq = float(sfreq)
        self.min_seconds = float(min_seconds)
        n = len(self.ch_names)
        self.n_samples = 0
        self._last = np.full(n, np.nan)  # each channel's last sample
        self._run = np.zeros(n, dtype=np.int64)  # length of the stretch ending at the last sample
        self._run_start = np.zeros(n, dtype=np.int64)
        self._best = np.zeros(n, dtype=np.int64)  # longest stretch so far and where it starts
        self._best_start = np.zeros(n, dtype=np.int64)

    def update(self, x: np.ndarray) -> None:
        """Add the next samples, ``x`` of shape (n_chans, n_samples), following the previous block without a gap."""
        x = np.asarray(x)
        n = x.shape[1]
        if n == 0:
            return
        base = self.n_samples
        need = max(2, int(np.ceil(self.min_seconds * self.sfreq)))
        if n > 1:
            change = x[:, 1:] != x[:, :-1]  # (n_chans, n - 1): True where a sample differs from the one before
            n_change = change.sum(axis=1)
            first = change.argmax(axis=1)  # index of the first change (0 also when there is none)
            last = (n - 2) - change[:, ::-1].argmax(axis=1)
        for c in range(x.shape[0]):
            cont = x[c, 0] == self._last[c]  # the block's first stretch continues the one that ended the previous block
            if n == 1 or n_change[c] == 0:  # the whole block is one stretch
                length, start = n + (self._run[c] if cont else 0), (self._run_start[c] if cont else base)
                if length > self._best[c]:
                    self._best[c], self._best_start[c] = length, start
                self._run[c], self._run_start[c], self._last[c] = length, start, x[c, -1]
                continue
            lead = int(first[c]) + 1 + (self._run[c] if cont else 0)  # samples of the first stretch
            lead_start = self._run_start[c] if cont else base
            if lead > self._best[c]:
                self._best[c], self._best_start[c] = lead, lead_start
            if (n - 1) - n_change[c] >= need - 1:  # enough equal neighbours for a long stretch inside: find the stretches
                idx = np.flatnonzero(change[c]) + 1
                lengths = np.diff(idx)
                if len(lengths):
                    k = int(np.argmax(lengths))
                    if lengths[k] > self._best[c]:
                        self._best[c], self._best_start[c] = lengths[k], base + idx[k]
            tail = n - 1 - int(last[c])  # samples of the last stretch
            if tail > self._best[c]:
                self._best[c], self._best_start[c] = tail, base + n - tail
            self._run[c], self._run_start[c], self._last[c] = tail, base + n - tail, x[c, -1]
        self.n_samples += n

    @property
    def constant(self) -> list[str]:
        """Channels that held one value over everything fed."""
        return [c for c, b in zip(self.ch_names, self._best) if self.n_samples > 0 and b == self.n_samples]

    def stretches(self) -> dict[str, tuple[float, float]]:
        """Channels with a stretch of one value of at least ``min_seconds`` (the constant ones included).

        Returns
        -------
        dict
            Channel name -> (start, duration) in seconds of its longest such stretch.
        """
        need = max(2, int(np.ceil(self.min_seconds * self.sfreq)))
        return {c: (float(s / self.sfreq), float(b / self.sfreq)) for c, b, s in zip(self.ch_names, self._best, self._best_start) if b >= need}


def flat_message(stretches: dict[str, tuple[float, float]], duration: float) -> str:
    """The warning about channels holding one value for a while (the same words in ``prepare`` and ``synthesize``)."""
    items = sorted(stretches.items(), key=lambda kv: kv[1][0])
    parts = ", ".join(f"{c} {s:.1f}-{s + d:.1f} s" for c, (s, d) in items[:10]) + (f" and {len(items) - 10} more" if len(items) > 10 else "")
    tail = all(s + d >= duration - 1e-6 for _, (s, d) in items) and len(items) > 1
    why = " (they all end at the recording's end: a file writer's padding, e.g. EDF's last data record?)" if tail else ""
    return (f"channel(s) hold one value for {FLAT_SECONDS:g} s or longer: {parts}{why}; recorded EEG never does (a disconnected or saturated "
            "electrode, zeroed data). Their features there are not EEG. Mark such channels bad and interpolate them "
            "(raw.info['bads'] + raw.interpolate_bads), or mark the stretch bad (an annotation starting with BAD, e.g. BAD_flat, "
            "in events.tsv or raw.annotations: windows over it are left out), first; a stretch at the start or end can also be "
            "cropped off (raw.crop), not one inside the run (a cut recording is refused).")


def _eeg_picks(raw) -> np.ndarray:
    import mne

    return mne.pick_types(raw.info, eeg=True, exclude="bads")


def clean_eeg(
    raw,
    *,
    l_freq: float | None = 0.5,
    h_freq: float | None = None,
    notch: float | None = None,
    reference: str | None = "average",
    resample: float | None = None,
    where: str = "EEG",
):
    """Keep EEG channels only, re-reference, band-pass/notch and resample (in place on a copy).

    Parameters
    ----------
    raw : mne.io.BaseRaw
        Recording (gradient and pulse artifacts already removed by the user's pipeline).
    l_freq, h_freq : float | None
        Band-pass edges in Hz (``None`` skips that edge).
    notch : float | None
        Line frequency in Hz; its harmonics below Nyquist are notched. ``None``
        uses ``raw.info["line_freq"]`` when set.
    reference : str | None
        ``"average"`` or ``None`` (keep the recording reference).
    resample : float | None
        New sampling rate in Hz.

    Returns
    -------
    raw : mne.io.BaseRaw
        A cleaned copy with EEG channels only (bad channels dropped).
    """
    raw = raw.copy()
    if not raw.preload:
        raw.load_data(verbose=False)
    types = raw.get_channel_types()
    drop = [c for c, t in zip(raw.ch_names, types) if t != "eeg"] + [c for c in raw.info["bads"] if c in raw.ch_names]
    drop = list(dict.fromkeys(drop))
    if drop:
        logger.info("%s: dropping %d non-EEG/bad channel(s): %s", where, len(drop), ", ".join(drop))
        raw.drop_channels(drop)
    if len(raw.ch_names) == 0:
        raise Eeg2fmriInputError(f"{where}: no EEG channels left after dropping {drop}; check channel types (channels.tsv) or set them with raw.set_channel_types.")
    check_channels(raw, where)
    if reference == "average" and len(raw.ch_names) > 1:
        raw.set_eeg_reference("average", projection=False, verbose=False)
    sf = raw.info["sfreq"]
    notch = raw.info.get("line_freq") if notch is None else notch
    if notch:
        freqs = np.arange(notch, sf / 2 - 1, notch)
        if len(freqs):
            raw.notch_filter(freqs, verbose=False)
    if l_freq is not None or h_freq is not None:
        hf = None if h_freq is None or h_freq >= sf / 2 else h_freq
        raw.filter(l_freq, hf, verbose=False)
    if resample is not None and abs(resample - sf) > 1e-6:
        raw.resample(resample, verbose=False)
    return raw


def band_gains(n: int, sfreq: float, bands: Mapping[str, tuple[float, float]], transition: float = 2.0) -> list[tuple[int, int, np.ndarray]]:
    """The frequency-domain band-pass gains of :func:`band_envelopes` for ``n`` samples.

    Returns
    -------
    edges : list of (first, end, gain)
        For every band, the ``rfft`` bins ``first:end`` it passes and their
        raised-cosine gains (float64, between 0 and 1).
    """
    freqs = np.fft.rfftfreq(n, 1.0 / sfreq)
    edges = []
    for name, (lo, hi) in bands.items():
        if not 0 < lo < hi < sfreq / 2:
            raise Eeg2fmriInputError(f"band {name!r}={lo, hi} Hz is outside (0, {sfreq / 2}) Hz (Nyquist at sfreq={sfreq}); drop the band or keep a higher sampling rate.")
        t = min(transition, (hi - lo) / 2)
        gain = np.clip((freqs - (lo - t / 2)) / t, 0, 1) * np.clip(((hi + t / 2) - freqs) / t, 0, 1)
        gain = 0.5 - 0.5 * np.cos(np.pi * gain)  # raised cosine edges
        k = np.nonzero(gain)[0]
        edges.append((k[0], k[-1] + 1, gain[k[0] : k[-1] + 1]))
    return edges


def envelope_length(n: int, sfreq: float, edges: list[tuple[int, int, np.ndarray]], out_rate: float | None) -> int:
    """Samples of the envelopes :func:`band_envelopes` returns for ``n`` input samples and the gains ``edges``
    (from :func:`band_gains`): ``n`` without ``out_rate``."""
    if out_rate is None:
        return n
    widest = max(b - a for a, b, _ in edges)
    return int(min(n, max(np.ceil(n * out_rate / sfreq), 2 * widest)))


def band_envelopes(data: np.ndarray, sfreq: float, bands: Mapping[str, tuple[float, float]], *, transition: float = 2.0,
                   out_rate: float | None = None, chunk_channels: int = 8, workers: int | None = None) -> np.ndarray | tuple[np.ndarray, float]:
    """Band-limited power envelopes, computed in the frequency domain.

    Each channel is Fourier-transformed once; for every band the positive
    frequencies inside the band (with raised-cosine edges ``transition`` Hz
    wide) give the analytic signal, whose squared magnitude is the band
    power. This equals band-pass filtering (zero phase) followed by the
    Hilbert envelope, at a fraction of the cost of one FIR filter per band.

    Parameters
    ----------
    data : array, shape (n_chans, n_times)
        EEG in volts.
    sfreq : float
        Sampling frequency in Hz.
    bands : mapping
        Band name -> (low, high) in Hz; bands outside (0, Nyquist) raise.
    transition : float
        Width of the raised-cosine band edges in Hz.
    out_rate : float | None
        ``None`` returns the power at ``sfreq``. A rate (Hz) returns it
        demodulated to baseband at (about) that rate, which is exact for the
        envelope as long as ``out_rate`` exceeds the widest band plus twice the
        transition; the actual rate is returned too.
    chunk_channels : int
        Channels transformed at once (bounds memory).
    workers : int | None
        Threads of the Fourier transforms (:mod:`scipy.fft`); ``None``: the
        cores this process may use, at most ``chunk_channels``.

    Returns
    -------
    power : array, shape (n_bands, n_chans, n_out), float32

    Notes
    -----
    The transforms run in single precision (``complex64``): against double
    precision the median relative difference of the power is ~3e-7 (larger
    only at the envelope's near-zero minima, which frame averages smooth
    out), far below the noise of any EEG recording, at half the memory
    traffic.
    rate : float
        Only when ``out_rate`` is given: the rate of ``power`` in Hz.
    """
    data = np.asarray(data)
    n_ch, n = data.shape
    edges = band_gains(n, sfreq, bands, transition)
    m = envelope_length(n, sfreq, edges, out_rate)
    if workers is None:
        workers = min(_n_cores(), chunk_channels)
    out = np.empty((len(edges), n_ch, m), dtype=np.float32)
    for c0 in range(0, n_ch, chunk_channels):
        spec = sp_fft.rfft(np.asarray(data[c0 : c0 + chunk_channels], dtype=np.float32), axis=-1, workers=workers)
        z = np.empty((spec.shape[0], m), dtype=np.complex64)
        for b, (a, e, g) in enumerate(edges):
            z.fill(0)
            g32 = (g * (2.0 * m / n)).astype(np.float32)
            if m == n:
                np.multiply(spec[:, a:e], g32, out=z[:, a:e])
            else:  # shift the band to baseband: the envelope is unchanged
                np.multiply(spec[:, a:e], g32, out=z[:, : e - a])
            analytic = sp_fft.ifft(z, axis=-1, workers=workers, overwrite_x=False)
            np.add(np.square(analytic.real), np.square(analytic.imag), out=out[b, c0 : c0 + spec.shape[0]])
    if out_rate is None:
        return out
    return out, sfreq * m / n


def bin_frames(x: np.ndarray, sfreq: float, starts: np.ndarray, length: float) -> np.ndarray:
    """Average a continuous signal over frames ``[start, start + length)``.

    Parameters
    ----------
    x : array, shape (..., n_times)
    sfreq : float
    starts : array, shape (n_frames,)
        Frame starts in seconds from the first sample (each frame must lie inside the signal).
    length : float
        Frame length in seconds.

    Returns
    -------
    frames : array, shape (n_frames, ...), float32
    """
    a = np.round(np.asarray(starts) * sfreq).astype(int)
    b = np.round((np.asarray(starts) + length) * sfreq).astype(int)
    if len(a) and (a.min() < 0 or b.max() > x.shape[-1]):
        raise Eeg2fmriInputError("frames extend beyond the EEG recording; the EEG must cover every volume's window.")
    lead = x.shape[:-1]
    flat = x.reshape(-1, x.shape[-1])
    out = np.empty((len(a), flat.shape[0]), dtype=np.float32)
    n = np.maximum(b - a, 1)
    for r in range(flat.shape[0]):  # one row at a time keeps the float64 cumulative sum small
        c = np.concatenate([[0.0], np.cumsum(flat[r], dtype=np.float64)])
        out[:, r] = (c[b] - c[a]) / n
    return out.reshape((len(a),) + lead)


def standardize_features(frames: np.ndarray, log: bool = True) -> np.ndarray:
    """Log-transform and robustly standardise per channel and band within one recording.

    Parameters
    ----------
    frames : array, shape (n_frames, n_chans, n_bands)

    Returns
    -------
    z : array, same shape, float32 (median 0, IQR-based unit scale per channel/band)
    """
    x = np.log(np.maximum(frames, 1e-30)) if log else frames.astype(np.float64)
    med = np.median(x, axis=0, keepdims=True)
    q75, q25 = np.percentile(x, [75, 25], axis=0, keepdims=True)
    scale = (q75 - q25) / 1.349
    scale[scale <= 0] = 1.0
    return ((x - med) / scale).astype(np.float32)
