"""EEG representations computed once on continuous data (windows are views into them).

Three building blocks, all pure functions of arrays (MNE ``Raw`` accepted at the edge):

* :func:`stft_frames` -- magnitude (or log power) spectrum of non-overlapping frames
  anchored at the volume onsets (one frame per TR by default, as in the EEG-to-fMRI
  package of Calhas & Henriques), continuous along time: ``(n_frames, n_chans, n_freqs)``.
* :func:`raw_continuous` -- the (optionally resampled) waveform, time first:
  ``(n_samples, n_chans)``.
* :class:`RobustScaler` / :func:`robust_standardize` -- per-channel median/IQR scaling
  whose statistics can be stored and re-applied to other runs.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from eeg2fmri.utils.validation import (
    Eeg2fmriInputError,
    check_choice,
    check_finite,
    check_positive,
    check_positive_int,
)

__all__ = ["RobustScaler", "StftFrames", "raw_continuous", "robust_standardize", "stft_frames"]

#: IQR of the standard normal distribution (2 * Phi^-1(0.75)); IQR / this estimates the SD.
NORMAL_IQR = 1.3489795003921634

# Upper bound on the float32 elements gathered per FFT block (64 MiB): long recordings
# are transformed in a few vectorised blocks instead of one huge copy.
#: Overlap of consecutive volumes' frames allowed for scanner-marker jitter (fraction of a frame).
_JITTER_TOLERANCE = 0.05
_BLOCK_ELEMENTS = 16 * 1024 * 1024


class StftFrames(NamedTuple):
    """Result of :func:`stft_frames` (unpacks as ``frames, freqs, n_pre``).

    Attributes
    ----------
    frames : array, shape (n_frames, n_chans, n_freqs), float32
        Amplitude spectrum (or log power) of each frame.
    freqs : array, shape (n_freqs,), float64
        Frequency (Hz) of each bin.
    n_pre : int
        Frames before the first volume onset; frame ``n_pre + i * frames_per_tr + k``
        starts at ``onsets[i] + k * frame_len``.
    """

    frames: np.ndarray
    freqs: np.ndarray
    n_pre: int


def _check_data_2d(data, where: str) -> np.ndarray:
    arr = np.asarray(data)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise Eeg2fmriInputError(f"{where}: expected EEG data of shape (n_chans, n_times), got shape {arr.shape}; pass raw.get_data() or a 2D array.")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise Eeg2fmriInputError(f"{where}: expected real numeric EEG data, got dtype {arr.dtype}; convert it with np.asarray(data, dtype=float).")
    check_finite(arr, "EEG data", where=where)
    return arr


def _check_onsets(onsets, where: str) -> np.ndarray:
    on = np.asarray(onsets, dtype=np.float64)
    if on.ndim != 1 or len(on) == 0:
        raise Eeg2fmriInputError(f"{where}: expected volume onsets of shape (n_volumes,) with n_volumes >= 1, got shape {on.shape}; pass the onsets (s from the EEG start) from volume_onsets().")
    check_finite(on, "volume onsets", where=where)
    if on[0] < 0:
        raise Eeg2fmriInputError(f"{where}: expected volume onsets >= 0 s from the EEG start, got first onset {on[0]:.4g} s; the EEG must start before the first volume.")
    if len(on) > 1 and np.any(np.diff(on) <= 0):
        i = int(np.argmax(np.diff(on) <= 0))
        raise Eeg2fmriInputError(f"{where}: expected strictly increasing volume onsets, found onset {i + 1} ({on[i + 1]:.4g} s) <= onset {i} ({on[i]:.4g} s); check the scanner markers.")
    return on


def stft_frames(
    data: np.ndarray,
    sfreq: float,
    onsets: np.ndarray,
    frame_len: float,
    fmin: float,
    fmax: float,
    frames_per_tr: int = 1,
    log: bool = False,
    *,
    window: str = "boxcar",
    where: str = "EEG",
) -> StftFrames:
    """Short-time spectrum of non-overlapping frames anchored at the volume onsets.

    Volume ``i`` gets ``frames_per_tr`` consecutive frames starting at ``onsets[i]``,
    each ``frame_len`` seconds long (``frame_len = TR / frames_per_tr`` tiles the run,
    the EEG-to-fMRI convention is one frame per TR). Frames of the same length are
    also laid out backwards from the first onset for as long as the EEG covers them,
    so that windows can reach into the EEG recorded before the scan started.

    The frames are gathered from a strided view of the data and transformed with one
    real FFT per block (a block holds all frames unless the recording is very long).
    The amplitude is normalised so that a sinusoid of amplitude ``A`` whose frequency
    falls on a bin has value ``A`` in that bin (``2 |X_k| / sum(window)``; the DC and
    Nyquist bins are not doubled).

    Parameters
    ----------
    data : array, shape (n_chans, n_times)
        Continuous EEG (e.g. ``clean_eeg(raw).get_data()``), channels first as in MNE.
    sfreq : float
        Sampling frequency in Hz.
    onsets : array, shape (n_volumes,)
        Volume onsets in seconds from the first sample, strictly increasing.
    frame_len : float
        Frame length in seconds (``round(frame_len * sfreq)`` samples; the frequency
        resolution is ``1 / frame_len``).
    fmin, fmax : float
        Keep the bins with ``fmin <= f <= fmax`` (Hz), ``0 <= fmin < fmax <= sfreq / 2``.
    frames_per_tr : int
        Frames per volume; ``frames_per_tr * frame_len`` must not exceed the shortest
        interval between onsets by more than 5% of a frame (scanner-marker jitter;
        frames of consecutive volumes overlap by at most that much).
    log : bool
        Return ``log(amplitude ** 2)`` (natural log of power, floored at 1e-30) instead
        of the amplitude.
    window : str
        Taper applied to every frame (any :func:`scipy.signal.get_window` name);
        ``"boxcar"`` (no taper) matches the EEG-to-fMRI package.
    where : str
        Recording name used in error messages.

    Returns
    -------
    result : StftFrames
        ``(frames, freqs, n_pre)``: frames of shape (n_frames, n_chans, n_freqs),
        float32, with ``n_frames = n_pre + n_volumes * frames_per_tr``; the bin
        frequencies of shape (n_freqs,); the number of frames before the first onset.
    """
    from numpy.lib.stride_tricks import sliding_window_view
    from scipy import fft as sfft
    from scipy.signal import get_window

    x = _check_data_2d(data, where)
    sfreq = check_positive(sfreq, "sfreq", where=where)
    frame_len = check_positive(frame_len, "frame_len", where=where, fix="pass the frame length in seconds (usually TR / frames_per_tr)")
    m = check_positive_int(frames_per_tr, "frames_per_tr", where=where)
    on = _check_onsets(onsets, where)
    n = int(round(frame_len * sfreq))
    if n < 2:
        raise Eeg2fmriInputError(f"{where}: expected frames of >= 2 samples, got frame_len={frame_len} s at {sfreq} Hz = {n} sample(s); use a longer frame_len.")
    if not (np.isfinite(fmin) and np.isfinite(fmax) and 0 <= fmin < fmax <= sfreq / 2):
        raise Eeg2fmriInputError(f"{where}: expected 0 <= fmin < fmax <= {sfreq / 2:g} Hz (Nyquist at sfreq={sfreq:g}), got fmin={fmin}, fmax={fmax}; choose a band below Nyquist.")
    if len(on) > 1:
        # scanner markers jitter by a sample or a few: frames of one TR may then overlap the next
        # volume's first frame by that much (at most 5% of a frame), which changes nothing that matters
        gaps = np.diff(on)
        shortest = float(np.min(gaps))
        if m * frame_len > shortest + max(0.5 / sfreq, _JITTER_TOLERANCE * frame_len):
            i = int(np.argmin(gaps))
            raise Eeg2fmriInputError(
                f"{where}: frames would overlap: frames_per_tr * frame_len = {m} x {frame_len:g} s = {m * frame_len:g} s exceeds "
                f"the shortest interval between volume onsets ({shortest:g} s, volumes {i} and {i + 1}, median {float(np.median(gaps)):g} s) "
                f"by more than the {_JITTER_TOLERANCE:.0%} of a frame allowed for marker jitter; use frame_len = TR / frames_per_tr, "
                "and check the scanner markers near that volume."
            )
    all_freqs = sfft.rfftfreq(n, 1.0 / sfreq)
    sel = np.flatnonzero((all_freqs >= fmin - 1e-9) & (all_freqs <= fmax + 1e-9))
    if len(sel) == 0:
        raise Eeg2fmriInputError(f"{where}: no frequency bin between fmin={fmin} and fmax={fmax} Hz at the frame resolution of {1 / frame_len:g} Hz (bins at multiples of 1/frame_len); widen the band or lengthen frame_len.")

    n_times = x.shape[1]
    dur = n_times / sfreq
    n_pre = int(np.floor(on[0] / frame_len + 1e-9))
    starts_pre = on[0] - frame_len * np.arange(n_pre, 0, -1)
    starts_in = (on[:, None] + frame_len * np.arange(m)[None, :]).ravel()
    a_pre = np.rint(starts_pre * sfreq).astype(np.int64)
    a_pre = a_pre[a_pre >= 0]
    n_pre = len(a_pre)
    a_in = np.rint(starts_in * sfreq).astype(np.int64)
    if a_in[-1] + n > n_times:
        raise Eeg2fmriInputError(
            f"{where}: the EEG ({dur:.2f} s, {n_times} samples) ends before the last frame ({(a_in[-1] + n) / sfreq:.2f} s); "
            f"trim the BOLD run or supply the full EEG (and check that data is shaped (n_chans, n_times), got {x.shape})."
        )
    starts = np.concatenate([a_pre, a_in])

    win = get_window(window, n, fftbins=True).astype(np.float32) if window != "boxcar" else np.ones(n, dtype=np.float32)
    scale = np.full(len(sel), 2.0 / float(win.sum()))
    scale[all_freqs[sel] == 0] /= 2.0
    if n % 2 == 0:
        scale[sel == n // 2] /= 2.0
    scale = scale.astype(np.float32)

    view = sliding_window_view(x, n, axis=1).transpose(1, 0, 2)  # (n_times - n + 1, n_chans, n), no copy
    out = np.empty((len(starts), x.shape[0], len(sel)), dtype=np.float32)
    block = max(1, _BLOCK_ELEMENTS // (x.shape[0] * n))
    for b0 in range(0, len(starts), block):
        seg = view[starts[b0 : b0 + block]].astype(np.float32, copy=False)  # gathered copy (n_block, n_chans, n)
        if window != "boxcar":
            seg = seg * win
        spec = sfft.rfft(seg, axis=-1)[..., sel]
        amp = np.abs(spec) * scale
        if log:
            amp = np.log(np.maximum(amp.astype(np.float64) ** 2, 1e-30))
        out[b0 : b0 + block] = amp
    return StftFrames(out, all_freqs[sel].astype(np.float64), n_pre)


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
        New sampling rate in Hz (:func:`mne.filter.resample`, with its anti-aliasing;
        ``round(n_times * resample / sfreq)`` samples); ``None`` keeps the rate.
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
            x = mne.filter.resample(np.asarray(x, dtype=np.float64), up=resample, down=sfreq, axis=-1, method=method, verbose=False)
    return np.ascontiguousarray(np.asarray(x).T, dtype=np.float32)


class RobustScaler:
    """Median/IQR scaling along one axis, with statistics that can be stored and re-applied.

    ``fit`` computes, for every position of the other axes (e.g. every channel of
    ``(n_samples, n_chans)`` or every channel/frequency of ``(n_frames, n_chans,
    n_freqs)``), the median ``center_`` and the inter-quartile range; ``transform``
    returns ``(x - center_) / scale_``. Positions with a zero IQR get scale 1.

    Parameters
    ----------
    axis : int
        The axis the statistics are computed along (time, usually 0).
    unit_variance : bool
        Divide the IQR by that of the standard normal (1.349) so that Gaussian data get
        unit standard deviation (as :func:`~eeg2fmri.preprocessing.standardize_features`).

    Attributes
    ----------
    center_ : array, float32
        Medians, shape of the fitted data without ``axis``.
    scale_ : array, float32
        Scales, same shape.
    n_samples_seen_ : int
        Length of the fitted data along ``axis``.
    """

    def __init__(self, axis: int = 0, unit_variance: bool = True) -> None:
        self.axis = axis
        self.unit_variance = unit_variance

    def _moved(self, x, what: str) -> np.ndarray:
        arr = np.asarray(x)
        if not isinstance(self.axis, (int, np.integer)) or not -arr.ndim <= self.axis < arr.ndim:
            raise Eeg2fmriInputError(f"RobustScaler: expected axis in [-{arr.ndim}, {arr.ndim}) for {what} of shape {arr.shape}, got axis={self.axis!r}; pass the time axis.")
        return np.moveaxis(arr, self.axis, 0)

    def fit(self, x: np.ndarray, y=None) -> RobustScaler:
        """Compute the medians and scales of ``x`` along ``axis``; returns ``self``."""
        xm = self._moved(x, "x")
        if xm.shape[0] < 2:
            raise Eeg2fmriInputError(f"RobustScaler: expected >= 2 samples along axis {self.axis}, got shape {np.shape(x)}; fit on the time axis of a whole run.")
        check_finite(xm, "x", where="RobustScaler")
        q25, med, q75 = np.percentile(xm, [25.0, 50.0, 75.0], axis=0)
        iqr = q75 - q25
        if self.unit_variance:
            iqr = iqr / NORMAL_IQR
        self.center_ = np.asarray(med, dtype=np.float32)
        self.scale_ = np.asarray(np.where(iqr > 0, iqr, 1.0), dtype=np.float32)
        self.n_samples_seen_ = int(xm.shape[0])
        return self

    def _check_fitted(self, x, what: str) -> np.ndarray:
        if not hasattr(self, "center_"):
            raise Eeg2fmriInputError("RobustScaler: not fitted yet; call fit(x) first (or load stored center_/scale_).")
        xm = self._moved(x, what)
        if xm.shape[1:] != self.center_.shape:
            raise Eeg2fmriInputError(f"RobustScaler: expected {what} with shape (..., {self.center_.shape}) around axis {self.axis}, got {np.shape(x)}; transform data with the fitted channel layout.")
        return xm

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Scale ``x`` (any length along ``axis``); float32, same shape."""
        xm = self._check_fitted(x, "x")
        z = (xm.astype(np.float32, copy=False) - self.center_) / self.scale_
        return np.moveaxis(z, 0, self.axis)

    def fit_transform(self, x: np.ndarray, y=None) -> np.ndarray:
        """``fit(x).transform(x)``."""
        return self.fit(x).transform(x)

    def inverse_transform(self, z: np.ndarray) -> np.ndarray:
        """Undo :meth:`transform`; float32, same shape."""
        zm = self._check_fitted(z, "z")
        return np.moveaxis(zm.astype(np.float32, copy=False) * self.scale_ + self.center_, 0, self.axis)


def robust_standardize(x: np.ndarray, axis: int = 0, *, unit_variance: bool = True) -> tuple[np.ndarray, RobustScaler]:
    """Median/IQR-standardise ``x`` along ``axis`` and return the fitted scaler.

    Parameters
    ----------
    x : array, e.g. shape (n_samples, n_chans) or (n_frames, n_chans, n_freqs)
    axis : int
        Time axis (statistics are per position of the other axes).
    unit_variance : bool
        See :class:`RobustScaler`.

    Returns
    -------
    z : array, same shape as ``x``, float32
    scaler : RobustScaler
        Holds ``center_`` and ``scale_`` to store and re-apply (``scaler.transform``).
    """
    scaler = RobustScaler(axis=axis, unit_variance=unit_variance)
    return scaler.fit_transform(x), scaler
