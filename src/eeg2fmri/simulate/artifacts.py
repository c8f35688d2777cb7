"""MRI scanner artefacts for simulated in-scanner EEG: gradient bursts and pulse (BCG) artefacts.

* **Gradient artefact.** Every slice excitation induces ``dG/dt`` of three gradient axes
  (slice-select trapezoids, phase-encoding blips, an alternating readout train) in every
  lead. The waveforms are built at ``oversample`` times the EEG rate at the *true*
  (continuous) slice times -- volume onset + ``j * TR / n_slices``, the volume onsets with a
  sub-sample phase that drifts (the scanner's clock is not the amplifier's) plus a small
  jitter -- then low-passed at 0.4 times the EEG rate
  (a causal 4th-order Butterworth, the amplifier's anti-alias filter) and decimated. Each
  channel sees its own mix of the three axes (loop orientation), slowly modulated by about
  1 % (head motion). The markers, like a real scanner's, sit on whole EEG samples, so the
  artefact is shifted from its marker by a fraction of a sample that varies per slice.
* **ECG and BCG.** A heartbeat of 60-80 bpm with beat-to-beat variability (respiratory
  sinus arrhythmia plus random variation); the ECG channel shows a QRS-T complex at every R
  peak, and every EEG channel a ballistocardiogram artefact that follows the R peak by about
  200 ms: a per-channel mix of three smooth waveforms, scaled per beat.

All randomness comes from the ``numpy.random.Generator`` passed in. The clean EEG is never
modified: :func:`scanner_artifacts` returns the artefacts to add, and
:func:`simulate_scanner_eeg` the artefact-free EEG next to the contaminated one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from eeg2fmri.utils.validation import Eeg2fmriInputError, check_positive, check_positive_int

__all__ = ["SCANNER_ARTIFACTS", "SLICE_MARKER", "heartbeat", "scanner_artifacts", "simulate_scanner_eeg"]

#: The artefact kinds :func:`scanner_artifacts` can add.
SCANNER_ARTIFACTS = ("gradient", "bcg")
#: Slice marker written by the simulator (a BrainVision response code, read back as ``Response/R  2``).
SLICE_MARKER = "R2"


def _check_kinds(kinds, where: str = "scanner_artifacts") -> tuple[str, ...]:
    if kinds is None:
        return ()
    if isinstance(kinds, str):
        kinds = (kinds,)
    out = tuple(kinds)
    bad = [k for k in out if k not in SCANNER_ARTIFACTS]
    if bad or not out:
        raise Eeg2fmriInputError(f"{where}: expected a list from {list(SCANNER_ARTIFACTS)} (or None), got {kinds!r}; e.g. ['gradient', 'bcg'].")
    return out


def heartbeat(duration: float, rng: np.random.Generator, *, bpm: float | None = None) -> np.ndarray:
    """R-peak times (s) of a heartbeat with beat-to-beat variability.

    Parameters
    ----------
    duration : float
        Seconds covered.
    rng : numpy.random.Generator
    bpm : float | None
        Mean heart rate; ``None`` draws one uniformly in 60-80 bpm.

    Returns
    -------
    r_peaks : array, shape (n_beats,)
        Increasing times in ``[0, duration)``. RR intervals vary by respiratory sinus
        arrhythmia (4 %, at 0.2-0.33 Hz) plus 3 % random variation.
    """
    rate = float(rng.uniform(60.0, 80.0)) if bpm is None else float(bpm)
    rr0 = 60.0 / rate
    f_resp = float(rng.uniform(0.2, 0.33))
    phase = float(rng.uniform(0, 2 * np.pi))
    t = float(rng.uniform(0.0, rr0))
    out = []
    while t < duration:
        out.append(t)
        t += rr0 * (1.0 + 0.04 * np.sin(2 * np.pi * f_resp * t + phase) + 0.03 * rng.standard_normal())
    return np.asarray(out)


def _slice_waveforms(n: int, dt: float) -> np.ndarray:
    """dG/dt of the three gradient axes over one slice of ``n`` samples at step ``dt`` (s), shape (3, n)."""
    t = np.arange(n) * dt
    ts = n * dt

    def trap(t0: float, ramp: float, flat: float, amp: float = 1.0) -> np.ndarray:
        g = np.clip((t - t0) / ramp, 0, 1) - np.clip((t - t0 - ramp - flat) / ramp, 0, 1)
        return amp * g

    gz = trap(0.0, 0.0015, 0.004, 1.0) + trap(0.0075, 0.001, 0.002, -0.6)  # slice select + refocusing
    n_lines = 24
    start, stop = 0.012, 0.92 * ts
    width = (stop - start) / n_lines
    gx = np.zeros(n)
    gy = np.zeros(n)
    for k in range(n_lines):  # alternating readout lobes with a phase-encoding blip between them
        gx += trap(start + k * width, 0.15 * width, 0.6 * width, 1.0 if k % 2 == 0 else -1.0)
        gy += trap(start + (k + 0.85) * width, 0.05 * width, 0.02 * width, 0.3)
    g = np.vstack([gx, gy, gz])
    return np.gradient(g, dt, axis=1) * dt  # induced voltage ~ dG/dt (arbitrary units)


def _slow(n: int, sfreq: float, n_series: int, rng: np.random.Generator, fmax: float = 0.05) -> np.ndarray:
    """Slow smooth fluctuations (unit std), shape (n_series, n)."""
    knots = max(4, int(n / sfreq * fmax * 2) + 2)
    x = rng.standard_normal((n_series, knots))
    return np.vstack([np.interp(np.linspace(0, knots - 1, n), np.arange(knots), row) for row in x])


def scanner_artifacts(
    n_times: int,
    sfreq: float,
    n_channels: int,
    volume_onsets: np.ndarray,
    tr: float,
    rng: np.random.Generator,
    *,
    kinds=SCANNER_ARTIFACTS,
    n_slices: int = 20,
    gradient_rms: float = 1500.0,
    jitter: float = 0.02,
    clock_ppm: float = 20.0,
    modulation: float = 0.01,
    oversample: int = 16,
    bcg_peak: float = 40.0,
    ecg_amplitude: float = 800.0,
) -> dict[str, Any]:
    """Scanner artefacts to add to ``n_channels`` EEG channels (microvolts).

    Parameters
    ----------
    n_times : int
        Samples of the EEG.
    sfreq : float
        EEG sampling rate (Hz).
    n_channels : int
        EEG channels.
    volume_onsets : array, shape (n_volumes,)
        True volume onsets in seconds from the EEG start (continuous, not rounded).
    tr : float
        Repetition time (s).
    rng : numpy.random.Generator
    kinds : sequence of {"gradient", "bcg"}
        Artefacts to make.
    n_slices : int
        Slice excitations per volume (equally spaced over the TR).
    gradient_rms : float
        Median RMS of the gradient artefact over channels (µV); EEG is ~15 µV RMS, so the
        default is about 100 times the EEG (peaks several hundred times).
    jitter : float
        Standard deviation of each volume's white timing jitter in EEG samples; slices within
        a volume keep the scanner's exact spacing.
    clock_ppm : float
        Rate difference of the scanner and EEG clocks (parts per million): the volumes'
        sub-sample phase drifts by ``clock_ppm * 1e-6 * tr * sfreq`` samples per volume.
    modulation : float
        Standard deviation of the slow (< 0.05 Hz) relative amplitude change of every
        channel's gradient artefact (head motion).
    oversample : int
        Rate factor at which gradient waveforms are built before anti-aliased decimation.
    bcg_peak : float
        Median peak BCG amplitude over channels (µV).
    ecg_amplitude : float
        R-peak amplitude of the ECG channel (µV).

    Returns
    -------
    out : dict
        ``eeg`` (n_channels, n_times) artefacts to add to the EEG; ``ecg`` (n_times,) an ECG
        channel (heartbeat, with its own gradient artefact) or ``None`` without "bcg";
        ``gradient`` and ``bcg`` (n_channels, n_times) each artefact alone (zeros when not
        made); ``ecg_gradient`` (n_times,) the gradient artefact inside ``ecg``;
        ``volume_onsets`` (n_volumes,) true volume times (s; markers go at these, rounded to
        samples); ``slice_onsets`` (n_volumes * n_slices,) true slice times (s);
        ``r_peaks`` (n_beats,) R-peak times (s).
    """
    kinds = _check_kinds(kinds)
    sfreq = check_positive(sfreq, "sfreq", where="scanner_artifacts")
    n_slices = check_positive_int(n_slices, "n_slices", where="scanner_artifacts")
    oversample = check_positive_int(oversample, "oversample", where="scanner_artifacts")
    onsets = np.asarray(volume_onsets, dtype=np.float64)
    ts = tr / n_slices
    # EEG and scanner clocks are not synchronised: the scanner's TR, in EEG time, is off by clock_ppm, so the
    # volumes' sub-sample phase drifts (centred on the given onsets), plus a small white jitter
    k = np.arange(len(onsets)) - (len(onsets) - 1) / 2.0
    vol_t = onsets + clock_ppm * 1e-6 * tr * k + jitter / sfreq * rng.standard_normal(len(onsets))
    slice_t = (vol_t[:, None] + np.arange(n_slices)[None, :] * ts).ravel()
    grad = np.zeros((n_channels, n_times))
    ecg_grad = np.zeros(n_times)
    if "gradient" in kinds:
        from scipy.signal import resample_poly

        hs = sfreq * oversample
        n_hi = n_times * oversample
        w = _slice_waveforms(int(np.floor(ts * hs)) - 1, 1.0 / hs)
        g_hi = np.zeros((3, n_hi))
        for t0 in slice_t:
            i0 = int(round(t0 * hs))
            i1 = min(i0 + w.shape[1], n_hi)
            if 0 <= i0 < n_hi:
                g_hi[:, i0:i1] += w[:, : i1 - i0]
        from scipy.signal import butter, sosfilt

        g_hi = sosfilt(butter(4, 0.4 * sfreq, fs=hs, output="sos"), g_hi, axis=1)  # the amplifier's (causal) anti-alias filter
        g = resample_poly(g_hi, 1, oversample, axis=1)[:, :n_times]
        del g_hi
        mix = rng.standard_normal((n_channels + 1, 3)) * np.array([1.0, 0.6, 1.2])
        mod = 1.0 + modulation * _slow(n_times, sfreq, n_channels + 1, rng)
        art = (mix @ g) * mod
        rms = np.sqrt(np.mean(art[:-1] ** 2, axis=1))
        art *= gradient_rms / max(float(np.median(rms)), 1e-30)
        grad, ecg_grad = art[:-1], 0.5 * art[-1]
    bcg = np.zeros((n_channels, n_times))
    ecg = None
    r_peaks = np.zeros(0)
    if "bcg" in kinds:
        dur = n_times / sfreq
        r_peaks = heartbeat(dur, rng)
        tt = np.arange(-0.3, 0.8, 1.0 / sfreq)
        qrs = np.exp(-0.5 * (tt / 0.012) ** 2) - 0.15 * np.exp(-0.5 * ((tt - 0.03) / 0.01) ** 2) + 0.25 * np.exp(-0.5 * ((tt - 0.25) / 0.05) ** 2)
        d = tt - 0.2  # the BCG follows the R peak by ~200 ms
        basis = np.vstack([
            np.exp(-0.5 * (d / 0.06) ** 2),
            -d / 0.08 * np.exp(-0.5 * (d / 0.08) ** 2),
            np.sin(2 * np.pi * 3.0 * d) * np.exp(-0.5 * (d / 0.15) ** 2),
        ])
        weights = rng.standard_normal((n_channels, 3)) * np.array([1.0, 0.7, 0.4])
        shapes = weights @ basis
        shapes *= bcg_peak / max(float(np.median(np.abs(shapes).max(axis=1))), 1e-30)
        ecg = np.zeros(n_times)
        for r in r_peaks:
            i0 = int(round((r - 0.3) * sfreq))
            lo, hi = max(i0, 0), min(i0 + len(tt), n_times)
            if hi <= lo:
                continue
            seg = slice(lo - i0, hi - i0)
            scale = 1.0 + 0.1 * rng.standard_normal()
            chan = 1.0 + 0.05 * rng.standard_normal((n_channels, 1))
            bcg[:, lo:hi] += scale * chan * shapes[:, seg]
            ecg[lo:hi] += ecg_amplitude * (1.0 + 0.05 * rng.standard_normal()) * qrs[seg]
        ecg += 10.0 * rng.standard_normal(n_times) + ecg_grad
    return dict(eeg=grad + bcg, ecg=ecg, gradient=grad, bcg=bcg, ecg_gradient=ecg_grad, volume_onsets=vol_t, slice_onsets=slice_t, r_peaks=r_peaks)


def simulate_scanner_eeg(
    *,
    n_channels: int = 6,
    sfreq: float = 250.0,
    tr: float = 2.0,
    n_volumes: int = 40,
    n_slices: int = 20,
    kinds=SCANNER_ARTIFACTS,
    pre: float = 3.0,
    post: float = 2.0,
    random_state: int | np.random.Generator | None = 0,
    **artifact_options: Any,
) -> dict[str, Any]:
    """A small in-scanner EEG recording with its artefact-free ground truth (for tests and examples).

    The clean EEG is band-limited noise in theta/alpha/beta/gamma whose amplitude envelopes
    follow slow fluctuations (so band power changes over time), plus 1/f background.

    Parameters
    ----------
    n_channels, sfreq, tr, n_volumes, n_slices :
        Recording size (EEG channels, Hz, s, volumes, slices per volume).
    kinds : sequence of {"gradient", "bcg"}
        Artefacts added.
    pre, post : float
        Seconds of EEG before the first and after the last volume.
    random_state : int | Generator | None
        Seed.
    **artifact_options
        Passed to :func:`scanner_artifacts`.

    Returns
    -------
    sim : dict
        ``raw`` (mne Raw, EEG channels plus ``ECG`` when "bcg" is made, with ``R128``
        volume and ``R2`` slice markers as annotations at whole samples), ``clean`` (the
        same Raw without artefacts; the ECG channel is kept), ``volume_onsets`` (s, true),
        ``slice_onsets`` (s, true), ``r_peaks`` (s), ``artifacts`` (the dict of
        :func:`scanner_artifacts`).
    """
    import mne

    from eeg2fmri.simulate.signals import band_noise, pink_noise, slow_fluctuations

    rng = random_state if isinstance(random_state, np.random.Generator) else np.random.default_rng(random_state)
    kinds = _check_kinds(kinds)
    n_times = int(round((pre + n_volumes * tr + post) * sfreq))
    onsets = pre + float(rng.uniform(0, 1.0 / sfreq)) + np.arange(n_volumes) * tr
    eeg = 0.5 * pink_noise(n_times, n_channels, sfreq, rng)
    for band in ((4.0, 7.0), (8.0, 12.0), (15.0, 25.0), (30.0, 45.0)):
        env = np.exp(0.6 * slow_fluctuations(n_times, n_channels, sfreq, rng, low=0.02, high=0.2))
        eeg += env * band_noise(n_times, n_channels, sfreq, band, rng)
    eeg = (eeg * 15.0 / eeg.std(axis=0).mean()).T  # (n_channels, n_times), ~15 µV
    art = scanner_artifacts(n_times, sfreq, n_channels, onsets, tr, rng, kinds=kinds, n_slices=n_slices, **artifact_options)
    names = [f"EEG{i:02d}" for i in range(n_channels)]
    types = ["eeg"] * n_channels
    clean = eeg
    dirty = eeg + art["eeg"]
    if art["ecg"] is not None:
        names.append("ECG")
        types.append("ecg")
        clean = np.vstack([clean, (art["ecg"] - art["ecg_gradient"])[None]])  # the heartbeat without the gradient artefact
        dirty = np.vstack([dirty, art["ecg"][None]])
    info = mne.create_info(names, sfreq, types)
    raw = mne.io.RawArray(dirty * 1e-6, info, verbose=False)
    truth = mne.io.RawArray(clean * 1e-6, info.copy(), verbose=False)
    onsets = art["volume_onsets"]
    vol = np.round(onsets * sfreq) / sfreq
    sl = np.round(art["slice_onsets"] * sfreq) / sfreq
    desc = ["Response/R128"] * len(vol) + ([f"Response/{SLICE_MARKER[0]}  {SLICE_MARKER[1:]}"] * len(sl) if "gradient" in kinds else [])
    times = np.r_[vol, sl] if "gradient" in kinds else vol
    order = np.argsort(times, kind="stable")
    ann = mne.Annotations(times[order], np.zeros(len(times)), np.asarray(desc)[order])
    raw.set_annotations(ann)
    truth.set_annotations(ann)
    return dict(raw=raw, clean=truth, volume_onsets=onsets, slice_onsets=art["slice_onsets"], r_peaks=art["r_peaks"], artifacts=art)
