"""Tangent representation: band power plus band covariances in the tangent space at the recording's mean.

Every EEG channel records a mixture of sources (volume conduction). The log power of a
channel mixes the sources' powers non-linearly, so no linear model on channel log power
can undo the mixing. The covariance of the channels in a band holds what unmixing needs:
the power of any spatial filter ``w`` is ``w' C w``. Mapped to the tangent space of the
symmetric positive definite matrices at a reference ``M`` (Barachant et al. 2012;
Sabbagh et al. 2019, NeuroImage 196: 2019 "Manifold-regression to predict from MEG/EEG
brain signals without source modeling"), ``T = logm(M^-1/2 C M^-1/2)``, the log powers of the
sources become (close to) linear in ``T`` whatever the mixing, so a linear model on ``T``
can regress on them.

The reference ``M`` is the arithmetic mean of the recording's own frame covariances
(re-centring, Zanini et al. 2018, IEEE TBME 65: 1107): it uses the EEG of that recording
only (also available when synthesising), removes the recording's mixing geometry from
the features (a cross-subject alignment) and leaks nothing from the BOLD.

Features ``(n_frames, n_chans, n_bands * (1 + n_chans))``, float32, along axis 2:

* ``[0, n_bands)``: the band-power representation (log-standardised band power,
  exactly as :mod:`.bandpower` computes it);
* then, for band ``b``, entries ``n_bands + b * n_chans + d``: row ``c`` of the band's
  tangent matrix ``T_b[c, d]`` (the full symmetric matrix, so that an inner product of
  two windows counts each off-diagonal entry twice -- the usual ``sqrt(2)`` weighting of
  tangent vectors).

Frame covariances: the zero-phase band-passed signal (the real part of the analytic signal
of :func:`~eeg2fmri.preprocessing.band_envelopes`: the same raised-cosine band edges),
``C = X X' / n`` over the frame's samples, shrunk towards ``trace(C) / n_chans * I`` by
``TANGENT_SHRINK`` (the average reference leaves ``C`` singular).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from scipy import fft as sp_fft

from eeg2fmri.preprocessing.eeg import band_gains, standardize_features
from eeg2fmri.preprocessing.representations.bandpower import BANDPOWER, frame_starts
from eeg2fmri.preprocessing.representations.registry import Representation, register_representation
from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["TANGENT", "TANGENT_SHRINK", "band_covariances", "split_tangent", "tangent_space"]

#: Shrinkage of every frame covariance towards ``trace / n_chans * I`` (fraction).
TANGENT_SHRINK = 1e-3
# Channels band-passed at once (bounds the temporary spectra).
_CHAN_BLOCK = 8


def band_covariances(data: np.ndarray, wsf: float, bands: dict, starts: np.ndarray, flen: float, *, t0: float = 0.0) -> np.ndarray:
    """Covariance of the band-passed channels over every frame.

    Parameters
    ----------
    data : array, shape (n_chans, n_times)
        EEG at ``wsf`` Hz; its first sample is ``t0`` seconds after the recording start.
    bands : dict
        Band name -> (low, high) Hz.
    starts : array, shape (n_frames,)
        Frame starts in seconds from the recording start; frame ``k`` holds samples
        ``round(starts[k] * wsf) <= j < round((starts[k] + flen) * wsf)`` of the recording.
    flen : float
        Frame length in seconds.

    Returns
    -------
    cov : array, shape (n_frames, n_bands, n_chans, n_chans), float64
        Not shrunk (see :func:`tangent_space`).
    """
    x = np.asarray(data)
    n_ch, n = x.shape
    off = int(round(t0 * wsf))
    a = np.round(np.asarray(starts) * wsf).astype(np.int64) - off
    b = np.round((np.asarray(starts) + flen) * wsf).astype(np.int64) - off
    if len(a) and (a.min() < 0 or b.max() > n):
        raise Eeg2fmriInputError("frames extend beyond the EEG recording; the EEG must cover every volume's window.")
    # single precision, one transform of the recording, one band at a time in channel blocks: peak memory about
    # twice the recording's float32 size
    workers = max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)))
    spec = sp_fft.rfft(np.asarray(x, dtype=np.float32), axis=-1, workers=workers)
    out = np.empty((len(a), len(bands), n_ch, n_ch))
    xb = np.empty((n_ch, n), dtype=np.float32)
    for bi, (lo_bin, hi_bin, gain) in enumerate(band_gains(n, wsf, bands)):
        g32 = gain.astype(np.float32)
        for c0 in range(0, n_ch, _CHAN_BLOCK):
            z = np.zeros((min(n_ch, c0 + _CHAN_BLOCK) - c0, spec.shape[1]), dtype=np.complex64)
            z[:, lo_bin:hi_bin] = spec[c0 : c0 + _CHAN_BLOCK, lo_bin:hi_bin] * g32
            xb[c0 : c0 + len(z)] = sp_fft.irfft(z, n=n, axis=-1, workers=workers)
        for k in range(len(a)):
            seg = xb[:, a[k] : b[k]].astype(np.float64)
            out[k, bi] = seg @ seg.T / max(seg.shape[1], 1)
    return out


def _shrunk(cov: np.ndarray) -> np.ndarray:
    n_ch = cov.shape[-1]
    scale = np.trace(cov, axis1=-2, axis2=-1)[..., None, None] / n_ch
    return (1 - TANGENT_SHRINK) * cov + TANGENT_SHRINK * np.maximum(scale, 1e-30) * np.eye(n_ch)


def tangent_space(cov: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """Map frame covariances to the tangent space at a reference (re-centred log map).

    Parameters
    ----------
    cov : array, shape (n_frames, n_bands, n_chans, n_chans)
        Frame covariances (e.g. from :func:`band_covariances`); shrunk here.
    reference : array, shape (n_bands, n_chans, n_chans) | None
        Reference per band (shrunk here); ``None``: the mean of the shrunk ``cov``.

    Returns
    -------
    t : array, shape (n_frames, n_bands, n_chans, n_chans), float64
        ``logm(M^-1/2 C M^-1/2)`` per frame and band (symmetric).
    """
    c = _shrunk(np.asarray(cov, dtype=np.float64))
    m = c.mean(0) if reference is None else _shrunk(np.asarray(reference, dtype=np.float64))
    out = np.empty_like(c)
    for bi in range(c.shape[1]):
        w, v = np.linalg.eigh(m[bi])
        isq = (v / np.sqrt(np.maximum(w, 1e-300))) @ v.T
        white = isq @ c[:, bi] @ isq
        ww, vv = np.linalg.eigh(white)
        out[:, bi] = (vv * np.log(np.maximum(ww, 1e-300))[:, None, :]) @ np.swapaxes(vv, -1, -2)
    return out


def _rows(m: np.ndarray) -> np.ndarray:
    """``(n_frames, n_bands, n_chans, n_chans)`` matrices -> rows ``(n_frames, n_chans, n_bands * n_chans)``:
    entry ``[t, c, b * n_chans + d]`` is ``m[t, b, c, d]``."""
    n_frames, n_b, n_ch, _ = m.shape
    return np.transpose(m, (0, 2, 1, 3)).reshape(n_frames, n_ch, n_b * n_ch)


def _unrows(rows: np.ndarray, n_chans: int) -> np.ndarray:
    """The inverse of :func:`_rows` (float64)."""
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), n_chans, -1, n_chans).transpose(0, 2, 1, 3)


def _pack(power: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """``(n_frames, n_chans, n_bands)`` and ``(n_frames, n_bands, n_chans, n_chans)`` -> the features, float32."""
    return np.concatenate([power, _rows(matrices)], axis=2).astype(np.float32)


def split_tangent(x: np.ndarray, n_chans: int) -> tuple[np.ndarray, np.ndarray]:
    """Split tangent windows ``(..., n_chans, n_bands * (1 + n_chans), n_frames)`` into their two blocks.

    Returns
    -------
    power : array, shape (..., n_chans, n_bands, n_frames)
    tangent : array, shape (..., n_chans, n_bands * n_chans, n_frames)
        Entry ``[..., c, b * n_chans + d, t]`` is ``T_b[c, d]`` of frame ``t``.
    """
    n_axis = x.shape[-2]
    if n_axis % (1 + n_chans):
        raise Eeg2fmriInputError(f"tangent windows: expected axis -2 of size n_bands * (1 + n_chans) = k * {1 + n_chans}, got {n_axis}; "
                                 "prepare the data with representation='tangent'.")
    n_b = n_axis // (1 + n_chans)
    return x[..., :n_b, :], x[..., n_b:, :]


class Tangent(Representation):
    """Band power and band covariances in the tangent space at the recording's mean, frames anchored at the
    volume onsets: ``(n_frames, n_chans, n_bands * (1 + n_chans))`` (see the module docstring)."""

    name = "tangent"
    order = 3
    frame_based = True
    periodic_edges = True

    def needed_fmax(self, config: Any) -> float:
        return BANDPOWER.needed_fmax(config)

    def compute(self, data, wsf, onsets, tr, config, *, where="EEG"):
        rep = BANDPOWER.compute(data, wsf, onsets, tr, config, where=where)
        m = config.frames_per_tr
        starts, _ = frame_starts(onsets, tr, m, data.shape[1] / wsf, where)
        cov = band_covariances(data, wsf, config.bands, starts, tr / m)
        rep["features"] = _pack(rep["features"], tangent_space(cov))
        rep["freqs"] = self.feature_freqs(rep["freqs"], data.shape[0])
        return rep

    def stream_setup(self, config, *, wsf, n_work, tr, where="EEG"):
        return BANDPOWER.stream_setup(config, wsf=wsf, n_work=n_work, tr=tr, where=where)

    def feature_freqs(self, freqs, n_chans):
        return list(freqs) * (1 + int(n_chans))

    def stream_frames(self, seg, wsf, t_seg, starts, keep, q, flen, config, state, *, where="EEG"):
        power = BANDPOWER.stream_frames(seg, wsf, t_seg, starts, keep, q, flen, config, state, where=where)
        return _pack(power, band_covariances(seg, wsf, config.bands, starts[keep], flen, t0=t_seg))  # covariances: mapped in normalise()

    def normalisation(self, config):
        return ("custom", False)

    def normalise(self, feats: np.ndarray, n_chans: int, config: Any) -> None:
        """The within-recording step of the chunked computation, in place: the power block is
        log-standardised, the covariance block mapped to the tangent space at the recording's mean."""
        n_b = feats.shape[2] // (1 + n_chans)
        feats[:, :, :n_b] = standardize_features(np.asarray(feats[:, :, :n_b]), log=True)
        feats[:, :, n_b:] = _rows(tangent_space(_unrows(feats[:, :, n_b:], n_chans))).astype(np.float32)


TANGENT = register_representation(Tangent())
