"""Signal generators for the simulator: slow drives, oscillations, 1/f noise, artifacts.

All functions take an explicit ``numpy.random.Generator``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["band_noise", "blink_train", "cardiac_train", "pink_noise", "slow_fluctuations"]


def _shaped_noise(n: int, n_series: int, sfreq: float, gain: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """White Gaussian noise shaped in the frequency domain, unit std per series."""
    spec = rng.standard_normal((n_series, n // 2 + 1)) + 1j * rng.standard_normal((n_series, n // 2 + 1))
    x = np.fft.irfft(spec * gain[None, :], n=n, axis=1)
    x -= x.mean(axis=1, keepdims=True)
    sd = x.std(axis=1, keepdims=True)
    return (x / np.where(sd > 0, sd, 1.0)).T


def slow_fluctuations(n: int, n_series: int, sfreq: float, rng: np.random.Generator, low: float = 0.01, high: float = 0.1) -> np.ndarray:
    """Slow band-limited fluctuations (resting-state-like), shape (n, n_series), unit std.

    The spectrum is flat between ``low`` and ``high`` Hz with smooth (Gaussian)
    roll-off on both sides.
    """
    f = np.fft.rfftfreq(n, 1.0 / sfreq)
    gain = np.ones_like(f)
    gain[f < low] = np.exp(-0.5 * ((f[f < low] - low) / (low / 2)) ** 2)
    gain[f > high] = np.exp(-0.5 * ((f[f > high] - high) / (high / 2)) ** 2)
    gain[0] = 0.0
    return _shaped_noise(n, n_series, sfreq, gain, rng)


def band_noise(n: int, n_series: int, sfreq: float, band: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """Narrow-band Gaussian noise (an oscillation with random phase/amplitude), shape (n, n_series)."""
    f = np.fft.rfftfreq(n, 1.0 / sfreq)
    lo, hi = band
    centre, half = (lo + hi) / 2, (hi - lo) / 2
    gain = np.exp(-0.5 * ((f - centre) / half) ** 4)  # flat-topped band
    return _shaped_noise(n, n_series, sfreq, gain, rng)


def pink_noise(n: int, n_series: int, sfreq: float, rng: np.random.Generator, exponent: float = 1.0, fmin: float = 0.5) -> np.ndarray:
    """1/f^exponent (power) background, shape (n, n_series), unit std."""
    f = np.fft.rfftfreq(n, 1.0 / sfreq)
    gain = 1.0 / np.maximum(f, fmin) ** (exponent / 2.0)
    gain[0] = 0.0
    return _shaped_noise(n, n_series, sfreq, gain, rng)


def cardiac_train(n: int, sfreq: float, rng: np.random.Generator, rate_hz: float = 1.1) -> tuple[np.ndarray, np.ndarray]:
    """ECG-like waveform (unit peak) and the R-peak sample indices."""
    t_beats = []
    t = rng.uniform(0, 1.0 / rate_hz)
    while t < n / sfreq:
        t_beats.append(t)
        t += (1.0 / rate_hz) * rng.normal(1.0, 0.05)
    beats = (np.asarray(t_beats) * sfreq).astype(int)
    tt = np.arange(-0.3, 0.5, 1.0 / sfreq)
    qrs = np.exp(-0.5 * (tt / 0.012) ** 2) - 0.15 * np.exp(-0.5 * ((tt - 0.03) / 0.01) ** 2) + 0.25 * np.exp(-0.5 * ((tt - 0.25) / 0.05) ** 2)
    x = np.zeros(n + len(tt))
    off = int(0.3 * sfreq)
    for b in beats:
        x[b : b + len(tt)] += qrs
    return x[off : off + n], beats


def blink_train(n: int, sfreq: float, rng: np.random.Generator, rate_hz: float = 0.25) -> np.ndarray:
    """Eye-blink waveform (unit peak, ~300 ms bumps at random times)."""
    x = np.zeros(n)
    n_blinks = rng.poisson(rate_hz * n / sfreq)
    tt = np.arange(-0.3, 0.3, 1.0 / sfreq)
    bump = np.exp(-0.5 * (tt / 0.07) ** 2)
    for c in rng.integers(0, n, n_blinks):
        lo, hi = c - len(tt) // 2, c - len(tt) // 2 + len(tt)
        a, b = max(lo, 0), min(hi, n)
        x[a:b] += bump[a - lo : len(tt) - (hi - b)] * rng.uniform(0.7, 1.3)
    return x
