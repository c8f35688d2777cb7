"""Band-power representation: log-standardised band envelopes averaged over frames anchored at the volume onsets."""

from __future__ import annotations

from typing import Any

import numpy as np

from eeg2fmri.preprocessing.eeg import (
    band_envelopes,
    band_gains,
    bin_frames,
    envelope_length,
    standardize_features,
)
from eeg2fmri.preprocessing.representations.registry import Representation, register_representation
from eeg2fmri.utils.timing import step
from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["BANDPOWER", "SLOW_POTENTIAL_AUTO", "envelope_rate", "frame_starts", "slow_potential_frames", "slow_potential_rate"]

#: The band (Hz) of ``PrepareConfig.slow_potential="auto"``: the infraslow potential.
SLOW_POTENTIAL_AUTO = (0.01, 0.1)
#: Butterworth order of each edge of the slow-potential band-pass (applied forwards and backwards).
SLOW_POTENTIAL_ORDER = 2


def frame_starts(onsets: np.ndarray, tr: float, m: int, dur: float, where: str) -> tuple[np.ndarray, int]:
    """Starts (s from the first sample) of the band-power frames of volumes at ``onsets``: whole frames of ``tr / m`` s
    before the first volume, then ``m`` per volume from its onset; and the number before the first volume. Raises where
    the last frame ends after ``dur`` s."""
    flen = tr / m
    n_pre = int(np.floor(onsets[0] / flen + 1e-9))
    starts_pre = onsets[0] - flen * np.arange(n_pre, 0, -1)
    starts_in = (onsets[:, None] + flen * np.arange(m)[None, :]).ravel()
    if starts_in[-1] + flen > dur + 1e-6:
        raise Eeg2fmriInputError(f"{where}: the EEG ({dur:.3f} s) ends before the last volume does ({onsets[-1] + tr:.3f} s: its onset plus the TR); trim the BOLD run or supply the full EEG.")
    return np.concatenate([starts_pre, starts_in]), n_pre


def envelope_rate(n: int, sfreq: float, bands: dict, out_rate: float) -> float:
    """Rate of the power envelopes :func:`~eeg2fmri.preprocessing.band_envelopes` returns for ``n`` samples.

    The same computation as ``band_envelopes`` (:func:`~eeg2fmri.preprocessing.eeg.band_gains`
    and :func:`~eeg2fmri.preprocessing.eeg.envelope_length`), without its transforms.
    """
    m = envelope_length(n, sfreq, band_gains(n, sfreq, bands), out_rate)
    return float(sfreq * m / n)


def bandpower_frames(seg: np.ndarray, wsf: float, bands: dict, t_seg: float, starts: np.ndarray, flen: float, prate: float) -> np.ndarray:
    """Frame means of band power as the one-shot path computes them, from one padded segment.

    The one-shot path samples each band's power envelope at ``prate`` (a rate
    that depends on the recording's length) and averages the samples
    ``round(start * prate) <= j < round((start + flen) * prate)``. Here the
    envelopes of the segment are computed at the work rate with the same
    function (where the power is oversampled), interpolated (4-point cubic Lagrange) at exactly the sample times ``j / prate`` and averaged the same way.

    Parameters
    ----------
    seg : array, shape (n_chans, n)
        EEG segment at the work rate ``wsf``; its first sample is ``t_seg``
        seconds after the start of the recording.
    starts : array, shape (n_frames,)
        Frame starts in seconds from the recording start (inside the segment).

    Returns
    -------
    frames : array, shape (n_frames, n_chans, n_bands), float32
    """
    a = np.round(starts * prate).astype(np.int64)
    b = np.round((starts + flen) * prate).astype(np.int64)
    j0, j1 = int(a.min()), int(b.max())
    pos = (np.arange(j0, j1) / prate - t_seg) * wsf  # fractional sample positions of the one-shot's envelope samples
    n = seg.shape[1]
    i1 = np.clip(np.floor(pos).astype(np.int64), 1, n - 3)
    u = pos - i1
    # 4-point (cubic Lagrange) weights of samples i1 - 1, i1, i1 + 1, i1 + 2
    w = np.stack([-u * (u - 1) * (u - 2) / 6, (u + 1) * (u - 1) * (u - 2) / 2, -(u + 1) * u * (u - 2) / 2, (u + 1) * u * (u - 1) / 6])
    with step("envelopes"):
        power = band_envelopes(seg, wsf, bands)  # (B, C, n) at the work rate
    with step("frames"):
        out = np.empty((len(starts), seg.shape[0], len(bands)), dtype=np.float32)
        for bi in range(power.shape[0]):
            pb = power[bi]
            p = pb[:, i1 - 1] * w[0] + pb[:, i1] * w[1] + pb[:, i1 + 1] * w[2] + pb[:, i1 + 2] * w[3]
            cs = np.concatenate([np.zeros((p.shape[0], 1)), np.cumsum(p, axis=-1, dtype=np.float64)], axis=-1)
            out[:, :, bi] = ((cs[:, b - j0] - cs[:, a - j0]) / np.maximum(b - a, 1)).T
    return out


def slow_potential_rate(band: tuple[float, float], flen: float, wsf: float) -> float:
    """The rate (Hz) at which the slow potential is band-passed: at least 10 Hz, 5 x the band's upper edge and 4 samples
    per frame of ``flen`` s, never above the work rate ``wsf``."""
    return float(min(wsf, max(10.0, 5.0 * float(band[1]), 4.0 / float(flen))))


def slow_potential_frames(data: np.ndarray, wsf: float, band: tuple[float, float], starts: np.ndarray, flen: float, *,
                          where: str = "EEG") -> np.ndarray:
    """The signed slow potential of every channel averaged over frames, standardised within the recording.

    ``data`` is EEG that no high-pass has touched (re-referenced and notched like the other features). Each channel has
    its least-squares line removed (electrode offsets and linear drift, so that neither the resampling nor the filter
    starts with a step), is resampled to :func:`slow_potential_rate` (``scipy.signal.resample_poly``, anti-aliased,
    ``padtype="line"``), band-passed to ``band``
    (Butterworth of order :data:`SLOW_POTENTIAL_ORDER` per edge, ``scipy.signal.sosfiltfilt``: zero phase, odd
    extension of one period of the low edge) and averaged over every frame ``[start, start + flen)``
    (:func:`~eeg2fmri.preprocessing.eeg.bin_frames`); then standardised per channel (median and IQR, as the band power,
    without the log).

    Parameters
    ----------
    data : array, shape (n_chans, n_times)
        EEG at ``wsf`` Hz, not high-passed.
    band : (low, high)
        Hz, ``0 < low < high``.
    starts : array, shape (n_frames,)
        Frame starts in seconds from the first sample.
    flen : float
        Frame length (s).

    Returns
    -------
    frames : array, shape (n_frames, n_chans), float32
    """
    from fractions import Fraction

    from scipy.signal import butter, resample_poly, sosfiltfilt

    lo, hi = (float(v) for v in band)
    srate = slow_potential_rate((lo, hi), flen, wsf)
    dur = data.shape[1] / float(wsf)
    if hi >= srate / 2:
        raise Eeg2fmriInputError(f"{where}: prepare option slow_potential={[lo, hi]} Hz: expected an upper edge below {srate / 2:g} Hz (half "
                                 f"the rate it is filtered at, {srate:g} Hz, at most the work rate), got {hi:g}; choose a lower upper edge "
                                 "(the slow potential is meant for < 1 Hz; faster activity is in the bands).")
    if dur < 1.0 / lo:
        raise Eeg2fmriInputError(f"{where}: prepare option slow_potential={[lo, hi]} Hz: expected a run of at least one period of the low edge "
                                 f"(1 / {lo:g} Hz = {1.0 / lo:.0f} s), found {dur:.0f} s of EEG; raise the low edge to at least "
                                 f"{1.0 / dur:.3g} Hz or leave slow_potential out.")
    frac = Fraction(srate / float(wsf)).limit_denominator(1000)
    up, down = frac.numerator, frac.denominator
    srate = float(wsf) * up / down
    x = np.asarray(data, dtype=np.float64)
    t = np.arange(x.shape[1]) / float(wsf)
    design = np.stack([np.ones_like(t), t - t.mean()], axis=1)
    x = x - (np.linalg.lstsq(design, x.T, rcond=None)[0].T @ design.T)
    if up != down:
        x = resample_poly(x, up, down, axis=1, padtype="line")
    sos = butter(SLOW_POTENTIAL_ORDER, [lo, hi], btype="bandpass", fs=srate, output="sos")
    x = sosfiltfilt(sos, x, axis=1, padtype="odd", padlen=min(x.shape[1] - 1, int(np.ceil(srate / lo))))
    frames = bin_frames(x, srate, np.asarray(starts, dtype=np.float64), float(flen))  # (n_frames, n_chans)
    return standardize_features(frames[:, :, None], log=False)[:, :, 0]


class Bandpower(Representation):
    """Band-power frames ``(n_frames, n_chans, n_bands)``: the mean power envelope of each band over
    frames of ``tr / frames_per_tr`` s anchored at the volume onsets, log-standardised per channel and band."""

    name = "bandpower"
    order = 0
    frame_based = True
    periodic_edges = True

    def needed_fmax(self, config: Any) -> float:
        if isinstance(config.bands, str):
            raise ValueError("bands='auto' must be resolved with PrepareConfig.resolved(sfreq) first")
        return float(max(hi for _, hi in config.bands.values()))

    def compute(self, data, wsf, onsets, tr, config, *, where="EEG"):
        m = config.frames_per_tr
        dur = data.shape[1] / wsf
        starts, n_pre = frame_starts(onsets, tr, m, dur, where)
        power, prate = band_envelopes(data, wsf, config.bands, out_rate=max(8.0 * m / tr, 10.0))
        frames = bin_frames(power, prate, starts, tr / m)  # (n_frames, n_bands, n_chans)
        del power
        feats = standardize_features(np.transpose(frames, (0, 2, 1)))
        freqs = [float(np.mean(b)) for b in config.bands.values()]
        window_end = n_pre + (np.arange(len(onsets)) + 1) * m
        frame_rate = m / tr
        return dict(features=feats, freqs=freqs, window_end=window_end, frame_rate=frame_rate)

    def stream_setup(self, config, *, wsf, n_work, tr, where="EEG"):
        for name, (lo, hi) in config.bands.items():
            if not 0 < lo < hi < wsf / 2:
                raise Eeg2fmriInputError(
                    f"{where}: band {name!r}={lo, hi} Hz needs a sampling rate above {2 * hi:g} Hz, the EEG is filtered at {wsf:g} Hz; "
                    "use a recording sampled faster (the training rate)."
                )
        m = int(config.frames_per_tr)
        freqs = [float(np.mean(b)) for b in config.bands.values()]
        prate = envelope_rate(n_work, wsf, config.bands, max(8.0 * m / tr, 10.0))
        return {"freqs": freqs, "prate": prate}

    def stream_frames(self, seg, wsf, t_seg, starts, keep, q, flen, config, state, *, where="EEG"):
        return bandpower_frames(seg, wsf, config.bands, t_seg, starts[keep], flen, state["prate"])

    def stream_frames_torch(self, seg, wsf, t_seg, starts, keep, q, flen, config, state, *, where="EEG"):
        from eeg2fmri.preprocessing.torch_dsp import bandpower_frames_torch

        with step("envelopes", sync=seg.device):
            out = bandpower_frames_torch(seg, wsf, config.bands, t_seg, starts[keep], flen, state["prate"])
        with step("frames to host"):
            return out.cpu().numpy()

    def normalisation(self, config):
        return ("standardize", True)


BANDPOWER = register_representation(Bandpower())
