"""EEG preprocessing: keep EEG channels, re-reference, filter, and band-power envelopes."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from eeg2fmri.utils.logs import logger
from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["DEFAULT_BANDS", "band_envelopes", "bin_frames", "clean_eeg", "check_channels", "standardize_features"]

#: Default frequency bands (Hz) of band-power features.
DEFAULT_BANDS: dict[str, tuple[float, float]] = {
    "delta": (1.0, 4.0),
    "theta": (4.0, 8.0),
    "alpha": (8.0, 13.0),
    "beta": (13.0, 30.0),
    "gamma": (30.0, 45.0),
}


def check_channels(raw, where: str = "EEG") -> None:
    """Raise on NaN/Inf or flat EEG channels, naming them and the fix."""
    data = raw.get_data()
    bad_nan = [raw.ch_names[i] for i in np.where(~np.isfinite(data).all(axis=1))[0]]
    if bad_nan:
        raise Eeg2fmriInputError(f"{where}: channel(s) {bad_nan} contain NaN/Inf; interpolate them (raw.interpolate_bads) or drop them (raw.drop_channels) first.")
    flat = [raw.ch_names[i] for i in np.where(np.ptp(data, axis=1) == 0)[0]]
    if flat:
        raise Eeg2fmriInputError(f"{where}: channel(s) {flat} are flat (constant); mark them bad and interpolate, or drop them.")


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


def band_envelopes(data: np.ndarray, sfreq: float, bands: Mapping[str, tuple[float, float]]) -> np.ndarray:
    """Band-limited power envelopes (squared Hilbert amplitude).

    Parameters
    ----------
    data : array, shape (n_chans, n_times)
        EEG in volts.
    sfreq : float
        Sampling frequency in Hz.
    bands : mapping
        Band name -> (low, high) in Hz; bands at or above Nyquist raise.

    Returns
    -------
    power : array, shape (n_bands, n_chans, n_times), float32
    """
    import mne
    from scipy.signal import hilbert

    out = np.empty((len(bands), data.shape[0], data.shape[1]), dtype=np.float32)
    n_fft = int(2 ** np.ceil(np.log2(data.shape[1])))
    data = np.asarray(data, dtype=np.float64)
    for b, (name, (lo, hi)) in enumerate(bands.items()):
        if not 0 < lo < hi < sfreq / 2:
            raise Eeg2fmriInputError(f"band {name!r}={lo, hi} Hz is outside (0, {sfreq / 2}) Hz (Nyquist at sfreq={sfreq}); drop the band or keep a higher sampling rate.")
        filt = mne.filter.filter_data(data, sfreq, lo, hi, verbose=False)
        amp = np.abs(hilbert(filt, N=n_fft, axis=-1)[:, : data.shape[1]])
        out[b] = amp**2
    return out


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
    frames : array, shape (n_frames, ...)
    """
    c = np.concatenate([np.zeros(x.shape[:-1] + (1,)), np.cumsum(x, axis=-1, dtype=np.float64)], axis=-1)
    a = np.round(np.asarray(starts) * sfreq).astype(int)
    b = np.round((np.asarray(starts) + length) * sfreq).astype(int)
    if len(a) and (a.min() < 0 or b.max() > x.shape[-1]):
        raise Eeg2fmriInputError("frames extend beyond the EEG recording; the EEG must cover every volume's window.")
    vals = (c[..., b] - c[..., a]) / np.maximum(b - a, 1)
    return np.moveaxis(vals, -1, 0).astype(np.float32)


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
