"""STFT representation: magnitude (or log power) spectrum of non-overlapping frames anchored at the volume onsets."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from eeg2fmri.preprocessing.eeg import standardize_features
from eeg2fmri.preprocessing.representations._checks import _check_data_2d
from eeg2fmri.preprocessing.representations.registry import Representation, register_representation
from eeg2fmri.utils.validation import (
    Eeg2fmriInputError,
    check_finite,
    check_positive,
    check_positive_int,
)

__all__ = ["STFT", "StftFrames", "stft_frames"]

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


class Stft(Representation):
    """STFT frames ``(n_frames, n_chans, n_freqs)``: amplitude (or log power) spectra of frames of
    ``tr / frames_per_tr`` s anchored at the volume onsets, bins ``stft_fmin``..``stft_fmax`` Hz."""

    name = "stft"
    order = 1
    frame_based = True
    rate_dependent_freqs = True

    def needed_fmax(self, config: Any) -> float:
        return float(config.stft_fmax)

    def compute(self, data, wsf, onsets, tr, config, *, where="EEG"):
        m = config.frames_per_tr
        fmax = min(config.stft_fmax, 0.99 * wsf / 2)
        feats, f, n_pre = stft_frames(data, wsf, onsets, tr / m, config.stft_fmin, fmax, frames_per_tr=m, log=config.stft_log)
        feats = standardize_features(feats, log=False) if config.stft_log else (feats / max(float(np.median(feats)), 1e-30)).astype(np.float32)
        freqs = [float(v) for v in f]
        window_end = n_pre + (np.arange(len(onsets)) + 1) * m
        frame_rate = m / tr
        return dict(features=feats, freqs=freqs, window_end=window_end, frame_rate=frame_rate)

    def stream_setup(self, config, *, wsf, n_work, tr, where="EEG"):
        flen = tr / int(config.frames_per_tr)
        fmax = min(config.stft_fmax, 0.99 * wsf / 2)
        n_len = int(round(flen * wsf))
        all_f = np.fft.rfftfreq(n_len, 1.0 / wsf)
        fsel = all_f[(all_f >= config.stft_fmin - 1e-9) & (all_f <= fmax + 1e-9)]
        return {"freqs": [float(f) for f in fsel], "fmax": fmax}

    def stream_frames(self, seg, wsf, t_seg, starts, keep, q, flen, config, state, *, where="EEG"):
        out = np.empty((len(keep), seg.shape[0], len(state["freqs"])), dtype=np.float32)
        for ph in range(q):
            sub = keep[(keep % q) == ph] if q > 1 else keep
            if len(sub) == 0:
                continue
            local = starts[sub] - t_seg
            res = stft_frames(seg, wsf, local, flen, config.stft_fmin, state["fmax"], frames_per_tr=1, log=config.stft_log, where=where)
            out[np.searchsorted(keep, sub)] = res.frames[res.n_pre :]
        return out

    def normalisation(self, config):
        return ("standardize", False) if config.stft_log else ("median", False)


STFT = register_representation(Stft())
