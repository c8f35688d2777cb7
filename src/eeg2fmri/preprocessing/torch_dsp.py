"""Torch versions of the EEG signal processing of synthesis, to run it on the model's GPU.

The chunked band-power path of :func:`eeg2fmri.synthesis.stream.stream_representation`
spends its time in four CPU steps: polyphase resampling to the work rate
(:func:`scipy.signal.resample_poly`), MNE's zero-phase FIR band-pass and notch
filters (:func:`mne.filter.filter_data`, :func:`mne.filter.notch_filter`), the
average re-reference and the band-power envelopes
(:func:`eeg2fmri.preprocessing.eeg.band_envelopes`, then the frame means of
:func:`eeg2fmri.preprocessing.representations.bandpower.bandpower_frames`).
This module computes the same quantities with torch on any device:

* :func:`resample_poly_torch`: ``resample_poly(x, up, down, window=h)`` with
  zero padding at the ends, as one strided convolution whose ``up`` output
  channels are the polyphase branches;
* :func:`fir_filter_torch`: MNE's overlap-add FIR filter (``phase="zero"``,
  edges padded by ``pad="reflect_limited"``, i.e. point-symmetric reflection),
  as one FFT convolution; :func:`mne_fir_kernels` designs the kernels with
  MNE itself (``mne.filter.create_filter``, the defaults of ``filter_data`` and
  ``notch_filter``), so both paths filter with the same taps;
* :func:`band_envelopes_torch` and :func:`bandpower_frames_torch`: the
  analytic-signal band power and its frame means, step for step as the
  NumPy code.

Precision follows the CPU path: resampling and filters in float64 (as SciPy
and MNE compute them; float64 also keeps cuDNN from using TF32 in the
convolution), the work-rate EEG rounded to float32 where the CPU path stores
it, the envelopes in single precision (``complex64``) as
:func:`~eeg2fmri.preprocessing.eeg.band_envelopes`, the frame means
accumulated in float64. The results equal the CPU path's to float32
rounding (relative differences ~1e-6 for the filtered EEG and ~1e-5 for
frame band power, see ``tests/test_torch_dsp.py``).

Every function takes and returns tensors of shape ``(n_chans, n_times)``
(time last) on the caller's device; nothing here moves data between devices.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np
import torch

from eeg2fmri.preprocessing.eeg import band_gains
from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["band_envelopes_torch", "bandpower_frames_torch", "default_resample_window", "fir_filter_torch", "mne_fir_kernels",
           "resample_poly_torch", "smart_pad_torch", "work_rate_eeg_torch"]


def default_resample_window(up: int, down: int) -> np.ndarray:
    """The anti-aliasing FIR :func:`scipy.signal.resample_poly` designs with its default ``window=("kaiser", 5.0)``."""
    from scipy.signal import firwin

    max_rate = max(up, down)
    return firwin(2 * 10 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0))


@lru_cache(maxsize=32)
def _polyphase_bank(up: int, down: int, h_bytes: bytes) -> tuple[np.ndarray, int]:
    """Kernels ``(up, 1, K)`` of the strided convolution that resamples by ``up / down``, and the left padding."""
    h = np.frombuffer(h_bytes, dtype=np.float64)
    n_h = len(h)
    half = (n_h - 1) // 2
    # output n = n0 + up * m:  y = up * sum_j h[p + j * up] * x[b0 + m * down - j], with t0 = n0 * down + half, p = t0 % up, b0 = t0 // up
    phases = []
    for n0 in range(up):
        t0 = n0 * down + half
        p, b0 = t0 % up, t0 // up
        taps = h[p::up] if p < n_h else np.zeros(0)
        phases.append((b0, taps))
    pad_left = max(0, max(len(taps) - 1 - b0 for b0, taps in phases))
    k_len = max(b0 for b0, _ in phases) + pad_left + 1
    bank = np.zeros((up, 1, k_len))
    for n0, (b0, taps) in enumerate(phases):
        j = np.arange(len(taps))
        bank[n0, 0, b0 - j + pad_left] = up * taps
    return bank, pad_left


def resample_poly_torch(x: torch.Tensor, up: int, down: int, h: np.ndarray | None = None) -> torch.Tensor:
    """:func:`scipy.signal.resample_poly` along the last axis (zero padding at both ends).

    Parameters
    ----------
    x : tensor, shape (n_chans, n)
    up, down : int
        Rate change ``up / down`` (reduced by their greatest common divisor).
    h : array | None
        The FIR filter (``window=h`` in SciPy); ``None``: SciPy's default
        (:func:`default_resample_window`).

    Returns
    -------
    y : tensor, shape (n_chans, ceil(n * up / down)), the dtype of ``x``
    """
    import math

    g = math.gcd(int(up), int(down))
    up, down = int(up) // g, int(down) // g
    if up == down == 1:
        return x.clone()
    if h is None:
        h = default_resample_window(up, down)
    n = x.shape[-1]
    n_out = -(-n * up // down)
    bank, pad_left = _polyphase_bank(up, down, np.ascontiguousarray(h, dtype=np.float64).tobytes())
    k_len = bank.shape[-1]
    m = -(-n_out // up)  # outputs per polyphase branch
    pad_right = max(0, (m - 1) * down + k_len - n - pad_left)
    w = torch.as_tensor(bank, dtype=x.dtype, device=x.device)
    xp = torch.nn.functional.pad(x.reshape(x.shape[0], 1, n), (pad_left, pad_right))
    y = torch.nn.functional.conv1d(xp, w, stride=down)[:, :, :m]  # (C, up, m): branch n0 holds outputs n0 + up * m
    return y.transpose(1, 2).reshape(x.shape[0], m * up)[:, :n_out]


def smart_pad_torch(x: torch.Tensor, n_pad: int) -> torch.Tensor:
    """MNE's ``_smart_pad(x, (n_pad, n_pad), "reflect_limited")`` along the last axis: point-symmetric
    reflection about the end samples (zeros beyond the signal's length)."""
    n = x.shape[-1]
    if n_pad <= 0:
        return x
    k = min(n_pad, n - 1)
    left = 2 * x[:, :1] - x[:, 1 : k + 1].flip(-1)
    right = 2 * x[:, -1:] - x[:, n - 1 - k : n - 1].flip(-1)
    z = x.new_zeros((x.shape[0], max(n_pad - n + 1, 0)))
    return torch.cat([z, left, x, right, z], dim=-1)


def fir_filter_torch(x: torch.Tensor, h: np.ndarray | torch.Tensor) -> torch.Tensor:
    """MNE's zero-phase FIR filtering (``_overlap_add_filter``, ``pad="reflect_limited"``) along the last axis.

    The signal is extended by ``len(h) - 1`` samples at both ends (point
    reflection), convolved with ``h`` (one FFT convolution, exact linear
    convolution like MNE's overlap-add), delayed by ``(len(h) - 1) // 2`` and
    cropped back to its length.

    Parameters
    ----------
    x : tensor, shape (n_chans, n)
    h : array, shape (n_taps,)
        A zero-phase (odd-length, symmetric) kernel, e.g. from :func:`mne_fir_kernels`.

    Returns
    -------
    y : tensor, shape (n_chans, n), the dtype of ``x``
    """
    from scipy.fft import next_fast_len

    n = x.shape[-1]
    ht = h.to(device=x.device, dtype=x.dtype) if isinstance(h, torch.Tensor) else torch.tensor(np.asarray(h), dtype=x.dtype, device=x.device)
    n_h = ht.shape[0]
    if n_h == 1:
        return x * ht[0]
    n_edge = max(min(n_h, n) - 1, 0)
    xe = smart_pad_torch(x, n_edge)
    n_fft = next_fast_len(xe.shape[-1] + n_h - 1, real=True)
    spec = torch.fft.rfft(xe, n=n_fft, dim=-1)
    spec *= torch.fft.rfft(ht, n=n_fft)
    full = torch.fft.irfft(spec, n=n_fft, dim=-1)
    shift = (n_h - 1) // 2 + n_edge
    return full[:, shift : shift + n]


@lru_cache(maxsize=32)
def _kernels(sfreq: float, l_freq: float | None, h_freq: float | None, notch: tuple[float, ...]) -> tuple[np.ndarray, ...]:
    import mne

    out = []
    if l_freq is not None or h_freq is not None:  # mne.filter.filter_data(x, sfreq, l_freq, h_freq) with its defaults
        out.append(mne.filter.create_filter(None, sfreq, l_freq, h_freq, verbose=False))
    if notch:  # mne.filter.notch_filter(x, sfreq, freqs) with its defaults: a band-stop FIR around every line harmonic
        freqs = np.asarray(notch, dtype=np.float64)
        widths = freqs / 200.0
        tb_2 = 1.0 / 2.0
        lows = [f - w / 2.0 - tb_2 for f, w in zip(freqs, widths)]
        highs = [f + w / 2.0 + tb_2 for f, w in zip(freqs, widths)]
        out.append(mne.filter.create_filter(None, sfreq, highs, lows, "auto", tb_2, tb_2, method="fir", phase="zero", fir_window="hamming",
                                            fir_design="firwin", verbose=False))
    for h in out:
        h.setflags(write=False)
    return tuple(out)


def mne_fir_kernels(sfreq: float, l_freq: float | None, h_freq: float | None, notch_freqs: Sequence[float] = ()) -> tuple[np.ndarray, ...]:
    """The FIR kernels of ``mne.filter.filter_data(x, sfreq, l_freq, h_freq)`` and ``mne.filter.notch_filter(x, sfreq, notch_freqs)``.

    Parameters
    ----------
    sfreq : float
    l_freq, h_freq : float | None
        Band-pass edges (``None`` for none; both ``None``: no band-pass kernel).
    notch_freqs : sequence of float
        Line frequency and harmonics (empty: no notch kernel).

    Returns
    -------
    kernels : tuple of arrays
        To apply in order with :func:`fir_filter_torch` (read-only, cached).
    """
    return _kernels(float(sfreq), None if l_freq is None else float(l_freq), None if h_freq is None else float(h_freq),
                    tuple(float(f) for f in notch_freqs))


def band_envelopes_torch(x: torch.Tensor, sfreq: float, bands: Mapping[str, tuple[float, float]], *, transition: float = 2.0) -> torch.Tensor:
    """:func:`eeg2fmri.preprocessing.eeg.band_envelopes` at the input rate (``out_rate=None``), in torch.

    Parameters
    ----------
    x : tensor, shape (n_chans, n)
        EEG (cast to float32, as the NumPy code does).

    Returns
    -------
    power : tensor, shape (n_bands, n_chans, n), float32
    """
    n = x.shape[-1]
    edges = band_gains(n, sfreq, bands, transition)
    spec = torch.fft.rfft(x.to(torch.float32), dim=-1)
    out = torch.empty((len(edges), x.shape[0], n), dtype=torch.float32, device=x.device)
    z = torch.zeros((x.shape[0], n), dtype=torch.complex64, device=x.device)
    for b, (a, e, g) in enumerate(edges):
        z.zero_()
        z[:, a:e] = spec[:, a:e] * torch.as_tensor((g * 2.0).astype(np.float32), device=x.device)
        analytic = torch.fft.ifft(z, dim=-1)
        torch.add(analytic.real.square(), analytic.imag.square(), out=out[b])
    return out


def bandpower_frames_torch(seg: torch.Tensor, wsf: float, bands: Mapping[str, tuple[float, float]], t_seg: float, starts: np.ndarray, flen: float,
                           prate: float) -> torch.Tensor:
    """:func:`eeg2fmri.preprocessing.representations.bandpower.bandpower_frames` in torch.

    Returns
    -------
    frames : tensor, shape (n_frames, n_chans, n_bands), float32, on ``seg``'s device
    """
    a = np.round(starts * prate).astype(np.int64)
    b = np.round((starts + flen) * prate).astype(np.int64)
    j0, j1 = int(a.min()), int(b.max())
    pos = (np.arange(j0, j1) / prate - t_seg) * wsf
    n = seg.shape[-1]
    if n < 4:
        raise Eeg2fmriInputError(f"an EEG segment of {n} samples is too short for band power frames; use longer chunks.")
    i1 = np.clip(np.floor(pos).astype(np.int64), 1, n - 3)
    u = pos - i1
    w = np.stack([-u * (u - 1) * (u - 2) / 6, (u + 1) * (u - 1) * (u - 2) / 2, -(u + 1) * u * (u - 2) / 2, (u + 1) * u * (u - 1) / 6])
    dev = seg.device
    power = band_envelopes_torch(seg, wsf, bands)  # (B, C, n) at the work rate
    idx = torch.as_tensor(i1, device=dev)
    wt = torch.as_tensor(w, dtype=torch.float64, device=dev)
    p = (power[..., idx - 1].double() * wt[0] + power[..., idx].double() * wt[1] + power[..., idx + 1].double() * wt[2]
         + power[..., idx + 2].double() * wt[3])
    del power
    cs = torch.nn.functional.pad(torch.cumsum(p, dim=-1), (1, 0))
    ta = torch.as_tensor(a - j0, device=dev)
    tb = torch.as_tensor(b - j0, device=dev)
    cnt = torch.as_tensor(np.maximum(b - a, 1).astype(np.float64), device=dev)
    frames = (cs[..., tb] - cs[..., ta]) / cnt  # (B, C, n_frames)
    return frames.permute(2, 1, 0).to(torch.float32)


def work_rate_eeg_torch(x: torch.Tensor, plan, kernels: Sequence[torch.Tensor], ch_names: Sequence[str], *, where: str = "EEG", check_flat: bool = True) -> torch.Tensor:
    """:func:`eeg2fmri.datasets.prepared.load_eeg_lowrate` of one segment, in torch.

    Checks (NaN/Inf, flat channels, with the same messages), rate change,
    band-pass and notch, average re-reference, rounded to float32 where the
    NumPy code stores its result.

    Parameters
    ----------
    x : tensor, shape (n_chans, n)
        The segment as read (float64 volts), on the device to compute on.
    plan : eeg2fmri.datasets.prepared.LowratePlan
        From :func:`~eeg2fmri.datasets.prepared.lowrate_plan` at the segment's rate.
    kernels : sequence of tensors
        :func:`mne_fir_kernels` of the plan, float64, on ``x``'s device.
    ch_names : sequence of str
        Channel names (for the messages).
    check_flat : bool
        Raise on a channel constant over the segment (synthesis checks the whole recording itself and passes False).

    Returns
    -------
    data : tensor, shape (n_chans, ceil(n * up / down)), float32
    """
    from eeg2fmri.utils.timing import step

    dev = x.device
    with step("checks", sync=dev):
        status = torch.stack([~torch.isfinite(x).all(dim=1), x.amax(dim=1) == x.amin(dim=1)]).cpu().numpy()
    if status[0].any():
        bad = [ch_names[i] for i in np.where(status[0])[0]]
        raise Eeg2fmriInputError(f"{where}: channel(s) {bad} contain NaN/Inf; interpolate them (raw.interpolate_bads) or drop them first.")
    if check_flat and status[1].any():
        flat = [ch_names[i] for i in np.where(status[1])[0]]
        raise Eeg2fmriInputError(f"{where}: channel(s) {flat} are flat (constant); mark them bad and interpolate, or drop them.")
    with step("resample", sync=dev):
        if plan.up != plan.down:
            x = resample_poly_torch(x, plan.up, plan.down, plan.h)
        x = x.to(torch.float32)  # the NumPy code keeps the work-rate EEG in float32 ...
    with step("filter", sync=dev):
        if len(kernels):
            x = x.to(torch.float64)  # ... and filters it in float64
            for h in kernels:
                x = fir_filter_torch(x, h)
            x = x.to(torch.float32)
    if plan.average_reference and x.shape[0] > 1:
        with step("reference", sync=dev):
            x = x - x.mean(dim=0, keepdim=True)
    return x
