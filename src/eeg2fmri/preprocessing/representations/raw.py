"""Raw representation: the (optionally resampled) EEG waveform, time first."""

from __future__ import annotations

from typing import Any

import numpy as np

from eeg2fmri.preprocessing.representations._checks import _check_data_2d
from eeg2fmri.preprocessing.representations.registry import Representation, register_representation
from eeg2fmri.utils.validation import (
    Eeg2fmriInputError,
    check_choice,
    check_positive,
)

__all__ = ["RAW", "raw_continuous"]


def raw_continuous(
    raw_or_array, sfreq: float | None = None, resample: float | None = None, *, method: str = "fft", where: str = "EEG"
) -> np.ndarray:
    """Continuous EEG waveform, time first, optionally resampled.

    Parameters
    ----------
    raw_or_array : mne.io.BaseRaw | array, shape (n_chans, n_times)
        A (cleaned) recording; every channel it holds is kept, in order. An array is
        channels first, as returned by ``raw.get_data()``.
    sfreq : float | None
        Sampling frequency of an array in Hz (required for arrays); for a ``Raw`` it
        defaults to ``raw.info["sfreq"]`` and must agree with it when given.
    resample : float | None
        New sampling rate in Hz (:func:`mne.filter.resample`, with its anti-aliasing, at the ratio
        ``resample / sfreq`` as a fraction with a denominator up to 1000; ``round(n_times * resample / sfreq)``
        samples); ``None`` keeps the rate.
    method : {"fft", "polyphase"}
        MNE's resampling method (``"polyphase"`` is faster on long recordings).
    where : str
        Recording name used in error messages.

    Returns
    -------
    x : array, shape (n_samples, n_chans), float32, C-contiguous
        Sample ``j`` is at time ``j / rate`` s from the first sample, with
        ``rate = resample or sfreq``.
    """
    import mne

    if isinstance(raw_or_array, mne.io.BaseRaw):
        raw = raw_or_array
        rsf = float(raw.info["sfreq"])
        if sfreq is not None and abs(float(sfreq) - rsf) > 1e-6 * rsf:
            raise Eeg2fmriInputError(f"{where}: sfreq={sfreq} Hz disagrees with the recording's {rsf} Hz; leave sfreq=None for a Raw.")
        sfreq = rsf
        data = raw.get_data()
    else:
        if sfreq is None:
            raise Eeg2fmriInputError(f"{where}: expected sfreq (Hz) with an array input, got None; pass sfreq=... or an mne Raw.")
        data = raw_or_array
    x = _check_data_2d(data, where)
    sfreq = check_positive(sfreq, "sfreq", where=where)
    check_choice(method, "resampling method", ("fft", "polyphase"), where=where)
    if resample is not None:
        resample = check_positive(resample, "resample", where=where, fix="pass the new sampling rate in Hz, or None")
        if abs(resample - sfreq) > 1e-9 * sfreq:
            from fractions import Fraction

            # MNE stretches the time base where the output is not a whole number of samples and shifts it by a fraction
            # of a sample where its padding is not (UT55: up to half an output sample late by the end): pad the input to
            # a whole number of output samples at the exact ratio p / q, and the padding to a multiple of q
            fr = Fraction(resample / sfreq).limit_denominator(1000)
            p, q = fr.numerator, fr.denominator
            n_in = x.shape[-1]
            n_out = int(round(n_in * resample / sfreq))
            pad_end = (-n_in) % q
            xp = np.pad(np.asarray(x, dtype=np.float64), [(0, 0)] * (x.ndim - 1) + [(0, pad_end)], mode="reflect" if n_in > pad_end else "edge")
            npad = int(np.ceil(100 / q)) * q
            x = mne.filter.resample(xp, up=p, down=q, axis=-1, npad=npad, method=method, verbose=False)[..., :n_out]
    return np.ascontiguousarray(np.asarray(x).T, dtype=np.float32)


class Raw(Representation):
    """Raw samples ``(n_samples, n_chans)`` at ``raw_sfreq``, median/IQR-standardised per channel."""

    name = "raw"
    order = 2
    frame_based = False

    def needed_fmax(self, config: Any) -> float:
        return float(config.raw_sfreq) / 2.5

    def frame_rate(self, config: Any, tr: float) -> float:
        return float(config.raw_sfreq)

    def compute(self, data, wsf, onsets, tr, config, *, where="EEG"):
        dur = data.shape[1] / wsf
        rsf = float(config.raw_sfreq)
        if abs(rsf - wsf) < 1e-9:
            x = data
        else:
            from fractions import Fraction

            from scipy.signal import resample_poly

            fr = Fraction(rsf / wsf).limit_denominator(1000)
            x = resample_poly(data.astype(np.float64), fr.numerator, fr.denominator, axis=1)
        med = np.median(x, axis=1, keepdims=True)
        q75, q25 = np.percentile(x, [75, 25], axis=1, keepdims=True)
        scale = (q75 - q25) / 1.349
        scale[scale <= 0] = 1.0
        feats = np.ascontiguousarray(((x - med) / scale).T, dtype=np.float32)  # (n_samples, n_chans)
        freqs = None
        window_end = np.round((onsets + tr) * rsf).astype(np.int64)
        if window_end[-1] > len(feats):
            raise Eeg2fmriInputError(f"{where}: the EEG ({dur:.3f} s) ends before the last volume does ({onsets[-1] + tr:.3f} s: its onset plus the TR); trim the BOLD run or supply the full EEG.")
        frame_rate = rsf
        return dict(features=feats, freqs=freqs, window_end=window_end, frame_rate=frame_rate)

    def normalisation(self, config):
        return ("robust", False)


RAW = register_representation(Raw())
