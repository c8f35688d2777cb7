"""A second, independent EEG-fMRI generator: neural masses on a connectome + Balloon-Windkessel.

:func:`simulate_dataset` (``simulator.py``) builds EEG from *prescribed* band
envelopes that follow a latent drive, and BOLD from that same drive: the
assumptions our models are designed from. This module writes a dataset from a
different generator family, in which oscillations, their envelopes and the
BOLD all *emerge* from the dynamics of coupled neural-mass models. Nothing in
it prescribes a band, an envelope or an EEG-BOLD coupling sign.

Generative model (per subject; every parameter is saved in ``derivatives/groundtruth``):

1. **Anatomy.** The MNI152 grid and grey-matter parcels of
   :func:`eeg2fmri.simulate.anatomy.make_anatomy` (``n_regions`` regions).
2. **Connectome.** A random, sparse, distance-dependent structural connectome
   over the region centres (group level: an edge between regions at distance
   ``d`` with probability proportional to ``exp(-d / connection_length_mm)``,
   symmetric, log-normal weights scaled by the same exponential), perturbed per
   subject (log-normal weight noise ``connectome_sd``), normalised to a mean
   in-strength of 1. Conduction delays are ``d / conduction_velocity``.
3. **Neural masses** (``model="jansen_rit"``; Jansen & Rit 1995, Biol. Cybern.
   73:357-366; coupling as in David & Friston 2003, NeuroImage 20:1743-1755).
   Each region is a cortical column of pyramidal cells (PSP ``y0``),
   excitatory (``y1``) and inhibitory (``y2``) interneuron feedback::

       S(v)  = 2 e0 / (1 + exp(r (v0 - v)))                       (firing rate, 1/s)
       y0'' = A a S(y1 - y2)                              - 2 a y0' - a^2 y0
       y1'' = A a (p_i(t) + C2 S(C1 y0) + K sum_j w_ij S(y1_j - y2_j)(t - d_ij/c))
                                                          - 2 a y1' - a^2 y1
       y2'' = B b C4 S(C3 y0)                             - 2 b y2' - b^2 y2

   with A = 3.25 mV, B = 22 mV, a = 100 /s, b = 50 /s, C = 135, C1 = C,
   C2 = 0.8 C, C3 = C4 = 0.25 C, e0 = 2.5 /s, v0 = 6 mV, r = 0.56 /mV
   (Jansen & Rit 1995, Table 1), K = ``coupling``. The extrinsic input
   ``p_i(t)`` (pulses/s) is ``input_mean`` plus a slow Ornstein-Uhlenbeck
   process (std ``input_slow_sd``, time constant ``input_slow_tau``, a share
   ``input_global_share`` of its variance common to all regions) plus white
   noise (std ``input_noise_sd`` per 1 ms sample, the classic 120-320 pulses/s
   input of Jansen & Rit is std 58). Integration at ``integration_rate`` Hz
   (>= 500; a multiple of ``sfreq``) with the exact (zero-order-hold)
   discretisation of the linear PSP kernels, the sigmoid inputs held over each
   step. Nothing is tuned to a band: with these values an isolated column sits
   on its ~10 Hz (alpha) limit cycle, whose amplitude *falls* as the input
   rises towards its upper Hopf bifurcation (p ~ 315) while the synaptic
   activity rises -- any EEG-BOLD relation comes from that.
4. **EEG.** The EEG source of a region is the mean pyramidal membrane
   potential ``y1 - y2`` (mean removed), averaged over each EEG sample
   (boxcar anti-aliasing), projected through the fixed-orientation lead field
   of a three-shell spherical head (MNE, the same forward model as
   :func:`simulate_dataset`; dipoles at the region centres, mostly radial
   orientations, per-subject head shift and scale), scaled to a median channel
   std of ``eeg_amplitude`` microvolts, plus white + 1/f sensor noise
   (``sensor_noise`` microvolts). An ``R128`` marker at every volume onset; the
   EEG starts 3-8 s before the first volume.
5. **BOLD.** The Balloon-Windkessel model (Buxton et al. 1998; Friston et al.
   2000, NeuroImage 12:466-477) with the kinetics and output equation of
   Stephan et al. 2007 (NeuroImage 38:387-401; SPM's DCM for fMRI)::

       s' = eps u(t) - kappa s - gamma (f - 1)      (vasodilatory signal)
       f' = s                                       (inflow)
       tau v' = f - v^(1/alpha)                     (volume)
       tau q' = f E(f, E0) / E0 - v^(1/alpha) q / v,   E = 1 - (1 - E0)^(1/f)
       y = V0 (k1 (1 - q) + k2 (1 - q/v) + k3 (1 - v)),
       k1 = 4.3 theta0 E0 TE, k2 = epsilon_v r0 E0 TE, k3 = 1 - epsilon_v

   kappa = 0.64 /s, gamma = 0.32 /s, tau = 2 s, alpha = 0.32, E0 = 0.4,
   V0 = 0.04, theta0 = 40.3 /s, r0 = 25 /s, TE = 0.04 s, epsilon_v = 1 (impulse
   response peaks at ~4.5 s). kappa, gamma, tau, alpha and E0 vary per subject
   and region, log-normally with the coefficients of variation of Friston et
   al. 2003 (NeuroImage 19:1273-1302, Table 1: 19, 11, 24, 12 and 14 %, scaled
   by ``hemodynamic_sd``). Integrated with 4th-order Runge-Kutta at 50 Hz. The
   neurovascular input ``u`` is the region's *afferent synaptic activity onto
   pyramidal cells* (``p + C2 S(C1 y0) + C4 S(C3 y0) + K sum_j w_ij S_j``,
   excitatory and inhibitory; Logothetis 2001) relative to its mean,
   ``u = z / mean(z) - 1``, and ``eps`` = ``neurovascular_gain``. The region
   BOLD (sampled mid-volume) is spread onto voxels (a Gaussian of
   ``smoothing_mm`` FWHM within the brain), scaled per voxel by grey-matter
   content, on a baseline intensity around 1000, plus
   thermal noise, AR(1) physiological noise (partly global) and slow drift.

The noise-free BOLD, noise and drift are saved as in :func:`simulate_dataset`
(so :func:`~eeg2fmri.simulate.ceilings` gives the noise ceiling). This
generator has no separable "EEG-visible" drive, so ``bold_visible`` is the
whole noise-free BOLD and the oracle ceiling equals the noise ceiling.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from eeg2fmri.simulate.anatomy import Anatomy, make_anatomy, write_anatomy_maps
from eeg2fmri.simulate.signals import pink_noise
from eeg2fmri.simulate.simulator import (
    SimulationConfig,
    _channel_names,
    _jsonable,
    _leadfield,
    _write_bold,
    _write_eeg,
    scratch_dir,
)
from eeg2fmri.utils.atomic import atomic_dir
from eeg2fmri.utils.logs import logger, progress
from eeg2fmri.utils.validation import (
    Eeg2fmriInputError,
    check_choice,
    check_positive,
    check_positive_int,
)

__all__ = [
    "BALLOON",
    "BOLD_OUTPUT",
    "JANSEN_RIT",
    "NEURAL_MASS_DEFAULTS",
    "balloon_windkessel",
    "jansen_rit",
    "simulate_neural_mass_dataset",
]

#: Jansen & Rit (1995) column parameters (mV, 1/s, dimensionless).
JANSEN_RIT = dict(A=3.25, B=22.0, a=100.0, b=50.0, C=135.0, c1=1.0, c2=0.8, c3=0.25, c4=0.25, e0=2.5, v0=6.0, r=0.56)

#: Balloon-Windkessel kinetics: (mean, coefficient of variation between regions). Means of
#: Stephan et al. 2007 (SPM DCM), coefficients of variation of Friston et al. 2003 (Table 1).
BALLOON = dict(kappa=(0.64, 0.19), gamma=(0.32, 0.11), tau=(2.0, 0.24), alpha=(0.32, 0.12), rho=(0.4, 0.14))
#: BOLD output (Stephan et al. 2007): V0, theta0 (1/s), r0 (1/s), TE (s), epsilon.
BOLD_OUTPUT = dict(V0=0.04, theta0=40.3, r0=25.0, TE=0.04, epsilon=1.0)


def _bold_coefficients(rho: np.ndarray) -> tuple:
    """Stephan et al. 2007 output coefficients ``(k1, k2, k3)`` for resting extraction ``rho`` (E0)."""
    b = BOLD_OUTPUT
    return (4.3 * b["theta0"] * rho * b["TE"], b["epsilon"] * b["r0"] * rho * b["TE"], 1.0 - b["epsilon"])

#: Options of :func:`simulate_neural_mass_dataset` and their defaults.
NEURAL_MASS_DEFAULTS: dict[str, Any] = dict(
    n_regions=24,
    coupling=10.0,
    connection_density=0.3,
    connection_length_mm=40.0,
    connectome_sd=0.3,
    conduction_velocity=6.0,
    input_mean=230.0,
    input_slow_sd=35.0,
    input_slow_tau=5.0,
    input_global_share=0.3,
    input_noise_sd=30.0,
    integration_rate=1000.0,
    neurovascular_gain=1.5,
    hemodynamic_sd=1.0,
    eeg_amplitude=20.0,
    sensor_noise=2.0,
    montage="easycap-M1",
    smoothing_mm=6.0,
    thermal_noise=0.8,
    physio_noise=0.8,
    physio_ar=0.5,
    physio_global=0.3,
    drift=1.0,
)

MODELS = ("jansen_rit",)
NEURAL_RATE = 10.0  # Hz, rate of the region-level ground truth series
_BALLOON_DT = 0.02  # s, Balloon-Windkessel step (50 Hz)
_PRE = 30.0  # s simulated before the first volume (transients; the EEG starts within it)
_BATCH = 8  # subjects integrated together (vectorised)


# ---------------------------------------------------------------------------------------
# models


def _sigmoid(v: np.ndarray, p: dict, out: np.ndarray | None = None) -> np.ndarray:
    """Jansen-Rit potential-to-rate sigmoid ``2 e0 / (1 + exp(r (v0 - v)))``."""
    out = np.subtract(p["v0"], v, out=out)
    out *= p["r"]
    np.exp(out, out=out)
    out += 1.0
    return np.divide(2.0 * p["e0"], out, out=out)


def _psp_step(rate: float, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact zero-order-hold step of ``y'' + 2 k y' + k^2 y = x`` (``k = rate``).

    Returns ``Phi`` (2x2) and ``gam`` (2,) with ``[y, y']_{n+1} = Phi [y, y']_n + gam x_n``.
    """
    e = np.exp(-rate * dt)
    phi = e * np.array([[1.0 + rate * dt, dt], [-(rate**2) * dt, 1.0 - rate * dt]])
    gam = np.array([(1.0 - e * (1.0 + rate * dt)) / rate**2, dt * e])
    return phi, gam


def jansen_rit(
    n_steps: int,
    weights: np.ndarray,
    delays: np.ndarray,
    slow_input: np.ndarray,
    rngs: list[np.random.Generator],
    *,
    dt: float,
    decimate: int,
    coupling: float,
    input_mean: float,
    input_noise_sd: float,
    params: dict | None = None,
) -> dict[str, np.ndarray]:
    """Integrate coupled Jansen-Rit columns (several independent networks at once).

    Parameters
    ----------
    n_steps : int
        Integration steps (a multiple of ``decimate``).
    weights : array, shape (n_nets, n_regions, n_regions)
        ``weights[s, i, j]``: connection from region ``j`` to region ``i``.
    delays : array of int, shape (n_nets, n_regions, n_regions)
        Conduction delays in steps (>= 1 where ``weights`` is non-zero).
    slow_input : array, shape (n_steps // decimate, n_nets, n_regions)
        Slow part of the extrinsic input (pulses/s), held over each output sample.
    rngs : list of numpy.random.Generator
        One per network (white input noise), so a network does not depend on the others.
    dt : float
        Step in seconds.
    decimate : int
        Output every ``decimate`` steps (block means).
    coupling : float
        Global coupling ``K``.
    input_mean, input_noise_sd : float
        Mean extrinsic input and std of its white part per 1 ms sample (pulses/s).
    params : dict | None
        Column parameters (default :data:`JANSEN_RIT`).

    Returns
    -------
    dict of float32 arrays of shape (n_steps // decimate, n_nets, n_regions):
        ``source`` (``y1 - y2``, mV), ``synaptic`` (afferent synaptic activity onto
        pyramidal cells, pulses/s) and ``firing`` (pyramidal firing rate ``S(y1 - y2)``, 1/s).
    """
    p = {**JANSEN_RIT, **(params or {})}
    S, R = weights.shape[:2]
    SR = S * R
    C = p["C"]
    c1, c2, c3, c4 = C * p["c1"], C * p["c2"], C * p["c3"], C * p["c4"]
    pa, ga = _psp_step(p["a"], dt)
    pb, gb = _psp_step(p["b"], dt)
    # rows: y0 (pyramidal PSP, kernel a), y1 (excitatory, a), y2 (inhibitory, b)
    phi = np.stack([pa, pa, pb])
    gain = np.array([p["A"] * p["a"], p["A"] * p["a"], p["B"] * p["b"]])
    p00, p01, p10, p11 = (phi[:, i, j][:, None] for i, j in ((0, 0), (0, 1), (1, 0), (1, 1)))
    g0 = (np.array([ga[0], ga[0], gb[0]]) * gain)[:, None]
    g1 = (np.array([ga[1], ga[1], gb[1]]) * gain)[:, None]
    # sigmoid arguments: [y1 - y2, c1 y0, c3 y0]; inputs: [S0, p + c2 S1 + coupling, c4 S2]
    in_gain = np.array([1.0, c2, c4])[:, None]
    # sparse delayed coupling through a ring buffer of the pyramidal firing
    s_idx, i_idx, j_idx = np.nonzero(weights)
    w_e = coupling * weights[s_idx, i_idx, j_idx]
    d_e = delays[s_idx, i_idx, j_idx].astype(np.int64)
    if np.any(d_e < 1):
        raise ValueError("internal error: conduction delays must be >= 1 step")
    D = int(d_e.max()) + 1 if len(d_e) else 1
    tgt = s_idx * R + i_idx
    base = (s_idx * R + j_idx) - d_e * SR
    ring = np.zeros(D * SR)
    # state: y (3, SR), y' (3, SR); starts at rest (zero PSPs), the first _PRE s absorb the transient
    y = np.zeros((3, SR))
    yd = np.zeros((3, SR))
    arg = np.empty((3, SR))
    sig = np.empty((3, SR))
    x = np.empty((3, SR))
    tmp = np.empty((3, SR))
    n_out = n_steps // decimate
    out = {k: np.empty((n_out, S, R), dtype=np.float32) for k in ("source", "synaptic", "firing")}
    acc_src = np.zeros(SR)
    acc_syn = np.zeros(SR)
    acc_fir = np.zeros(SR)
    noise_scale = input_noise_sd * np.sqrt(1e-3 / dt)  # white noise of the same spectral density at any step
    chunk = 200 * decimate
    for c0 in range(0, n_steps, chunk):
        m = min(chunk, n_steps - c0)
        noise = np.empty((m, S, R))
        for s, g in enumerate(rngs):
            noise[:, s] = g.standard_normal((m, R))
        noise *= noise_scale
        noise += input_mean
        noise = noise.reshape(m, SR)
        for k in range(m):
            step = c0 + k
            np.subtract(y[1], y[2], out=arg[0])
            np.multiply(c1, y[0], out=arg[1])
            np.multiply(c3, y[0], out=arg[2])
            _sigmoid(arg, p, out=sig)
            ring[(step % D) * SR : (step % D + 1) * SR] = sig[0]
            np.multiply(in_gain, sig, out=x)
            ext = noise[k] + slow_input[step // decimate].reshape(SR)
            if len(d_e):
                idx = (base + step * SR) % (D * SR)
                ext += np.bincount(tgt, weights=w_e * ring[idx], minlength=SR)
            x[1] += ext
            # afferent synaptic activity onto pyramidal cells (before the update)
            acc_syn += x[1]
            acc_syn += x[2]
            acc_src += arg[0]
            acc_fir += sig[0]
            # exact ZOH update of the three PSP kernels
            np.multiply(p00, y, out=tmp)
            tmp += p01 * yd
            tmp += g0 * x
            yd *= p11
            yd += p10 * y
            yd += g1 * x
            y, tmp = tmp, y
            if (step + 1) % decimate == 0:
                o = step // decimate
                out["source"][o] = (acc_src / decimate).reshape(S, R)
                out["synaptic"][o] = (acc_syn / decimate).reshape(S, R)
                out["firing"][o] = (acc_fir / decimate).reshape(S, R)
                acc_src[:] = 0.0
                acc_syn[:] = 0.0
                acc_fir[:] = 0.0
    return out


def balloon_windkessel(
    u: np.ndarray,
    dt: float,
    *,
    kappa: float | np.ndarray = 0.65,
    gamma: float | np.ndarray = 0.41,
    tau: float | np.ndarray = 0.98,
    alpha: float | np.ndarray = 0.32,
    rho: float | np.ndarray = 0.34,
    v0: float = 0.02,
    k: tuple[float, float, float] | None = None,
    gain: float = 1.0,
) -> np.ndarray:
    """Balloon-Windkessel BOLD (Friston et al. 2000, 2003), 4th-order Runge-Kutta.

    Parameters
    ----------
    u : array, shape (n_times, n_regions)
        Neurovascular input (0 at rest), held constant over each step.
    dt : float
        Step in seconds.
    kappa, gamma, tau, alpha, rho : float or array of shape (n_regions,)
        Signal decay (1/s), flow autoregulation (1/s), transit time (s), Grubb
        exponent, resting oxygen extraction fraction.
    v0 : float
        Resting venous blood volume fraction.
    k : (k1, k2, k3) | None
        Output coefficients; ``None``: Friston et al. 2000's ``(7 rho, 2, 2 rho - 0.2)``
        (with the defaults this is :func:`eeg2fmri.simulate.hrf.balloon_bold`'s model).
    gain : float
        Neurovascular efficacy ``eps``.

    Returns
    -------
    bold : array, shape (n_times, n_regions)
        Fractional BOLD change at the end of each step.
    """
    u = np.asarray(u, dtype=np.float64)
    if u.ndim != 2:
        raise Eeg2fmriInputError(f"expected u of shape (n_times, n_regions), got shape {u.shape}; add a region axis.")
    R = u.shape[1]
    kappa, gamma, tau, alpha, rho = (np.broadcast_to(np.asarray(v, dtype=float), (R,)) for v in (kappa, gamma, tau, alpha, rho))
    inv_a = 1.0 / alpha
    k1, k2, k3 = (7.0 * rho, 2.0, 2.0 * rho - 0.2) if k is None else k
    log1mrho = np.log1p(-rho)

    def rhs(st: np.ndarray, ui: np.ndarray) -> np.ndarray:
        s, f, v, q = st
        f = np.maximum(f, 1e-6)
        v = np.maximum(v, 1e-6)
        fout = v**inv_a
        e = -np.expm1(log1mrho / f)  # 1 - (1 - rho)^(1/f)
        return np.stack([
            gain * ui - kappa * s - gamma * (f - 1.0),
            s,
            (f - fout) / tau,
            (f * e / rho - fout * q / v) / tau,
        ])

    st = np.stack([np.zeros(R), np.ones(R), np.ones(R), np.ones(R)])
    out = np.empty_like(u)
    for i in range(u.shape[0]):
        ui = u[i]
        a1 = rhs(st, ui)
        a2 = rhs(st + 0.5 * dt * a1, ui)
        a3 = rhs(st + 0.5 * dt * a2, ui)
        a4 = rhs(st + dt * a3, ui)
        st = st + dt / 6.0 * (a1 + 2 * a2 + 2 * a3 + a4)
        _, _, v, q = st
        out[i] = v0 * (k1 * (1.0 - q) + k2 * (1.0 - q / v) + k3 * (1.0 - v))
    return out


# ---------------------------------------------------------------------------------------
# options and parameters


def _check_options(options: dict[str, Any], *, n_subjects, minutes, seed, n_channels, sfreq, voxel_size, tr, model) -> dict[str, Any]:
    import mne

    unknown = sorted(set(options) - set(NEURAL_MASS_DEFAULTS))
    if unknown:
        raise Eeg2fmriInputError(f"unknown neural-mass option(s) {unknown}; choose from {sorted(NEURAL_MASS_DEFAULTS)}.")
    o = {**NEURAL_MASS_DEFAULTS, **options}
    check_choice(model, "model", MODELS)
    check_positive_int(n_subjects, "n_subjects")
    check_positive_int(n_channels, "n_channels")
    check_positive_int(o["n_regions"], "n_regions")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise Eeg2fmriInputError(f"expected seed to be a non-negative integer, got {seed!r}; pass e.g. seed=0.")
    for name, value in (("minutes", minutes), ("sfreq", sfreq), ("voxel_size", voxel_size), ("tr", tr)):
        check_positive(value, name)
    for name in ("connection_length_mm", "conduction_velocity", "input_slow_tau", "integration_rate", "eeg_amplitude"):
        check_positive(o[name], name)
    for name in ("coupling", "connectome_sd", "input_mean", "input_slow_sd", "input_noise_sd", "neurovascular_gain",
                 "hemodynamic_sd", "sensor_noise", "smoothing_mm", "thermal_noise", "physio_noise", "drift"):
        v = o[name]
        if not isinstance(v, (int, float, np.integer, np.floating)) or isinstance(v, bool) or not np.isfinite(v) or v < 0:
            raise Eeg2fmriInputError(f"expected {name} to be a finite number >= 0, got {v!r}.")
    for name in ("connection_density", "input_global_share", "physio_global"):
        v = o[name]
        if not isinstance(v, (int, float, np.integer, np.floating)) or isinstance(v, bool) or not 0 <= v <= 1:
            raise Eeg2fmriInputError(f"expected {name} in [0, 1], got {v!r}.")
    if not 0 <= o["physio_ar"] < 1:
        raise Eeg2fmriInputError(f"expected physio_ar in [0, 1), got {o['physio_ar']!r}.")
    if o["integration_rate"] < 500:
        raise Eeg2fmriInputError(
            f"expected integration_rate >= 500 Hz (the Jansen-Rit kernels have 10-20 ms time constants), "
            f"got {o['integration_rate']!r}; leave the default 1000."
        )
    if sfreq < 50:
        raise Eeg2fmriInputError(f"expected sfreq >= 50 Hz (the EEG must resolve the ~10 Hz rhythm and beyond), got {sfreq!r}.")
    if minutes * 60 < 10 * tr:
        raise Eeg2fmriInputError(
            f"expected at least 10 volumes, got minutes={minutes} with tr={tr} ({int(minutes * 60 / tr)} volumes); increase minutes."
        )
    if o["n_regions"] < 2:
        raise Eeg2fmriInputError(f"expected n_regions >= 2 (a network), got {o['n_regions']!r}.")
    check_choice(o["montage"], "montage", mne.channels.get_builtin_montages())
    return o


def _connectome(centroids: np.ndarray, o: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Group connectome: sparse, symmetric, distance-dependent weights (zero diagonal) and distances (mm)."""
    R = len(centroids)
    dist = np.linalg.norm(centroids[:, None] - centroids[None], axis=-1)
    iu = np.triu_indices(R, 1)
    decay = np.exp(-dist[iu] / o["connection_length_mm"])
    n_edges = int(round(o["connection_density"] * len(decay)))
    # edges drawn without replacement with probability proportional to exp(-d / length)
    chosen = rng.choice(len(decay), size=n_edges, replace=False, p=decay / decay.sum()) if n_edges else np.array([], int)
    w = np.zeros(len(decay))
    w[chosen] = decay[chosen] * np.exp(0.5 * rng.standard_normal(n_edges))
    W = np.zeros((R, R))
    W[iu] = w
    W = W + W.T
    return W, dist


def _subject_connectome(W: np.ndarray, o: dict, rng: np.random.Generator) -> np.ndarray:
    noise = np.exp(o["connectome_sd"] * rng.standard_normal(W.shape))
    noise = np.sqrt(noise * noise.T)  # symmetric perturbation
    Ws = W * noise
    strength = Ws.sum(1).mean()
    return Ws / strength if strength > 0 else Ws


def _slow_input(n: int, rate: float, R: int, o: dict, rng: np.random.Generator) -> np.ndarray:
    """Ornstein-Uhlenbeck input (n, R) with std ``input_slow_sd``, stationary from the start."""
    from scipy.signal import lfilter

    phi = np.exp(-1.0 / (rate * o["input_slow_tau"]))
    g = o["input_global_share"]
    z = np.sqrt(g) * rng.standard_normal((n, 1)) + np.sqrt(1 - g) * rng.standard_normal((n, R))
    x0 = np.sqrt(g) * rng.standard_normal(1) + np.sqrt(1 - g) * rng.standard_normal(R)
    x = lfilter([np.sqrt(1 - phi**2)], [1.0, -phi], z, axis=0, zi=phi * x0[None, :])[0]
    return o["input_slow_sd"] * x


def _subject_parameters(anat: Anatomy, info, W: np.ndarray, dist: np.ndarray, o: dict, seed: int, s: int) -> dict[str, Any]:
    rng = np.random.default_rng([seed, 101, s])
    R = anat.n_regions
    Ws = _subject_connectome(W, o, rng)
    centre = anat.coords.mean(0)
    radial = (anat.centroids - centre) / np.linalg.norm(anat.centroids - centre, axis=1, keepdims=True).clip(1e-6)
    orient = radial + 0.6 * rng.standard_normal((R, 3))
    orient /= np.linalg.norm(orient, axis=1, keepdims=True)
    shift = rng.normal(0, 0.004, 3)
    head_scale = float(rng.uniform(0.95, 1.05))
    with warnings.catch_warnings():
        # few electrodes: MNE warns that its head-sphere fit from them may be inaccurate (the fit is only the head model)
        warnings.filterwarnings("ignore", message=".*head digitization points.*", category=RuntimeWarning)
        lf = _leadfield(info, anat.centroids, anat.coords, orient, shift, head_scale)
    hemo = {name: mean * np.exp(o["hemodynamic_sd"] * cv * rng.standard_normal(R)) for name, (mean, cv) in BALLOON.items()}
    hemo["rho"] = np.clip(hemo["rho"], 0.05, 0.9)
    voxel_gain = (0.25 + 0.75 * anat.gm) * np.exp(0.15 * rng.standard_normal(anat.n_voxels))
    baseline = 1000.0 * (0.7 + 0.35 * anat.gm + 0.15 * anat.wm) * float(rng.uniform(0.85, 1.15)) * np.exp(0.05 * rng.standard_normal(anat.n_voxels))
    return dict(
        connectome=Ws, orientation=orient, head_shift_m=shift, head_scale=head_scale, leadfield=lf,
        hemodynamics=hemo, voxel_gain=voxel_gain, baseline=baseline,
        eeg_pre=float(rng.uniform(3.0, 8.0)), eeg_post=float(rng.uniform(2.0, 4.0)),
    )


# ---------------------------------------------------------------------------------------
# measurement


def _block_mean(x: np.ndarray, k: int) -> np.ndarray:
    n = (len(x) // k) * k
    return x[:n].reshape(n // k, k, *x.shape[1:]).mean(1)


def _bold_volumes(region_bold: np.ndarray, t_bold: np.ndarray, anat: Anatomy, sp: dict, o: dict, n_vols: int, tr: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Region BOLD (fraction) -> 4D image; noise-free signal, noise and drift in percent."""
    from scipy.ndimage import gaussian_filter

    acq = np.arange(n_vols) * tr + tr / 2.0
    reg = np.stack([np.interp(acq, t_bold, region_bold[:, r]) for r in range(region_bold.shape[1])], axis=1)
    reg = 100.0 * (reg - reg.mean(0))  # percent signal change around the run mean
    vox = reg[:, anat.labels]
    if o["smoothing_mm"] > 0:
        sigma = o["smoothing_mm"] / (np.abs(np.diag(anat.affine)[:3]).mean() * np.sqrt(8 * np.log(2)))
        vol = np.zeros(anat.shape + (n_vols,))
        vol[anat.mask] = vox.T
        w = gaussian_filter(anat.mask.astype(float), sigma)
        vol = gaussian_filter(vol, sigma=(sigma, sigma, sigma, 0.0))
        vox = (vol[anat.mask] / w[anat.mask][:, None]).T
    clean = sp["voxel_gain"][None, :] * vox
    V = anat.n_voxels
    rho = o["physio_ar"] ** (tr / 2.0)
    g = np.sqrt(o["physio_global"])
    innov = g * rng.standard_normal((n_vols, 1)) + np.sqrt(1 - g**2) * rng.standard_normal((n_vols, V))
    phys = np.empty_like(innov)
    phys[0] = innov[0]
    for t in range(1, n_vols):
        phys[t] = rho * phys[t - 1] + np.sqrt(1 - rho**2) * innov[t]
    baseline = sp["baseline"]
    noise = o["physio_noise"] * phys + o["thermal_noise"] * 1000.0 / baseline[None, :] * rng.standard_normal((n_vols, V))
    tt = np.linspace(-1, 1, n_vols)[:, None]
    drift = o["drift"] * (rng.standard_normal((1, V)) * tt + 0.5 * rng.standard_normal((1, V)) * np.cos(np.pi * (tt + 1)))
    bold = np.zeros(anat.shape + (n_vols,), dtype=np.float32)
    outside = ~anat.mask
    bold[outside] = (30.0 + 10.0 * np.abs(rng.standard_normal((int(outside.sum()), n_vols)))).astype(np.float32)
    bold[anat.mask] = (baseline[None, :] * (1.0 + (clean + noise + drift) / 100.0)).T.astype(np.float32)
    return dict(bold=bold, clean=clean, noise=noise, drift=drift, acq=acq)


# ---------------------------------------------------------------------------------------
# the dataset


def simulate_neural_mass_dataset(
    out: str | os.PathLike,
    *,
    n_subjects: int = 4,
    minutes: float = 8.0,
    seed: int = 0,
    n_channels: int = 32,
    sfreq: float = 250.0,
    voxel_size: float = 6.0,
    tr: float = 2.0,
    model: str = "jansen_rit",
    progress_bar: bool = False,
    overwrite: bool = False,
    **options: Any,
) -> Path:
    """Simulate a BIDS EEG-fMRI dataset from coupled neural masses + Balloon-Windkessel BOLD.

    The layout is that of :func:`~eeg2fmri.simulate.simulate_dataset` (BrainVision
    EEG with an ``R128`` marker per volume, ``func/*_bold.nii.gz`` on an MNI
    grid, sidecars, ``participants.tsv``, ``derivatives/groundtruth``), so
    :func:`eeg2fmri.datasets.prepare_dataset` reads it unchanged. The model is
    described in the module docstring (:mod:`eeg2fmri.simulate.neural_mass`).

    Parameters
    ----------
    out : path-like
        Output BIDS root (must not exist unless ``overwrite``).
    n_subjects : int
        Number of subjects (one resting run each).
    minutes : float
        Scan length in minutes.
    seed : int
        Master seed; a subject's data depend only on ``seed`` and its index.
    n_channels : int
        EEG channels (the first ``n_channels`` of the simulator's channel order in ``montage``).
    sfreq : float
        EEG sampling frequency in Hz (>= 50).
    voxel_size : float
        Isotropic BOLD voxel size in mm.
    tr : float
        Repetition time in seconds.
    model : {"jansen_rit"}
        Neural-mass model.
    progress_bar : bool
        Show a progress bar over subject batches.
    overwrite : bool
        Replace an existing ``out``.
    **options
        Any of :data:`NEURAL_MASS_DEFAULTS` (connectome, input, coupling,
        haemodynamic and noise settings).

    Returns
    -------
    root : Path
        The BIDS root.
    """
    import mne

    o = _check_options(options, n_subjects=n_subjects, minutes=minutes, seed=seed, n_channels=n_channels,
                       sfreq=sfreq, voxel_size=voxel_size, tr=tr, model=model)
    sfreq, tr, minutes, voxel_size = float(sfreq), float(tr), float(minutes), float(voxel_size)
    names = _channel_names(o["montage"], n_channels)
    info = mne.create_info(names, sfreq, "eeg")
    info.set_montage(o["montage"], verbose=False)
    wcfg = SimulationConfig(sfreq=sfreq, n_channels=n_channels, montage=o["montage"], tr=tr, seed=seed)
    decimate = max(1, int(np.ceil(o["integration_rate"] / sfreq)))
    dt = 1.0 / (decimate * sfreq)
    n_vols = int(round(minutes * 60.0 / tr))
    scan_len = n_vols * tr
    # common time axis (EEG samples) from -_PRE to scan_len + 4 s (the longest EEG tail)
    n_samp = int(np.ceil((_PRE + scan_len + 4.0 + 1.0) * sfreq))
    logger.info("simulating %d subject(s) of %.1f min (%s, %d regions, %.0f Hz)", n_subjects, minutes, model, o["n_regions"], 1 / dt)
    anat = make_anatomy(voxel_size, o["n_regions"], seed)
    R = anat.n_regions
    W, dist = _connectome(anat.centroids, o, np.random.default_rng([seed, 100]))
    delays = np.maximum(1, np.round(dist / 1000.0 / o["conduction_velocity"] / dt)).astype(np.int64)
    k_bold = max(1, int(round(_BALLOON_DT * sfreq)))
    dt_bold = k_bold / sfreq
    k_gt = max(1, int(round(sfreq / NEURAL_RATE)))
    task = "rest"
    with atomic_dir(out, overwrite=overwrite, marker="derivatives/groundtruth") as root, scratch_dir() as scratch:
        gt_root = root / "derivatives" / "groundtruth"
        gt_root.mkdir(parents=True)
        batches = [list(range(b, min(b + _BATCH, n_subjects))) for b in range(0, n_subjects, _BATCH)]
        for batch in progress(batches, desc="simulate subject batches", enabled=progress_bar):
            sps = [_subject_parameters(anat, info, W, dist, o, seed, s) for s in batch]
            rng_in = [np.random.default_rng([seed, 102, s]) for s in batch]
            slow = np.stack([_slow_input(n_samp, sfreq, R, o, g) for g in rng_in], axis=1)
            res = jansen_rit(
                n_samp * decimate, np.stack([sp["connectome"] for sp in sps]), np.broadcast_to(delays, (len(batch), R, R)),
                slow, rng_in, dt=dt, decimate=decimate, coupling=o["coupling"], input_mean=o["input_mean"],
                input_noise_sd=o["input_noise_sd"],
            )
            # BOLD: afferent synaptic activity relative to its mean (after the first 5 s of
            # transient) -> Balloon-Windkessel at 50 Hz, all subjects of the batch at once
            zb = _block_mean(res["synaptic"].astype(np.float64), k_bold).reshape(-1, len(batch) * R)
            u = zb / zb[int(5.0 / dt_bold):].mean(0, keepdims=True) - 1.0
            hemo = {k: np.concatenate([sp["hemodynamics"][k] for sp in sps]) for k in BALLOON}
            bold_all = balloon_windkessel(
                u, dt_bold, gain=o["neurovascular_gain"], v0=BOLD_OUTPUT["V0"], k=_bold_coefficients(hemo["rho"]), **hemo
            ).reshape(len(u), len(batch), R)
            t_bold = (np.arange(len(u)) + 1) * dt_bold - _PRE  # state at the end of each step
            for b_i, s in enumerate(batch):
                sub = f"{s + 1:02d}"
                sp = sps[b_i]
                rng = np.random.default_rng([seed, 103, s])
                src = res["source"][:, b_i].astype(np.float64)
                syn = res["synaptic"][:, b_i].astype(np.float64)
                region_bold = bold_all[:, b_i]
                vols = _bold_volumes(region_bold, t_bold, anat, sp, o, n_vols, tr, rng)
                # EEG: the samples from -eeg_pre to scan_len + eeg_post
                i0 = int(round((_PRE - sp["eeg_pre"]) * sfreq))
                n_eeg = int(round((sp["eeg_pre"] + scan_len + sp["eeg_post"]) * sfreq))
                seg = src[i0 : i0 + n_eeg]
                seg = seg - seg.mean(0)
                eeg = seg @ sp["leadfield"].T
                eeg *= o["eeg_amplitude"] / np.median(eeg.std(axis=0))
                eeg += o["sensor_noise"] * (0.7 * rng.standard_normal(eeg.shape) + 0.7 * pink_noise(n_eeg, eeg.shape[1], sfreq, rng))
                t_first = i0 / sfreq - _PRE  # time of the first EEG sample (first volume at 0)
                onsets = np.arange(n_vols) * tr - t_first  # volume onsets, seconds from the first EEG sample
                _write_eeg(root, scratch, sub, 1, wcfg, info, eeg.T, {}, onsets, task)
                _write_bold(root, sub, 1, task, anat, vols["bold"], tr, [])
                gdir = gt_root / f"sub-{sub}"
                gdir.mkdir()
                t_gt = (np.arange(n_samp // k_gt) + 0.5) * k_gt / sfreq - _PRE
                clean = vols["clean"].astype(np.float32)
                np.savez_compressed(
                    gdir / f"sub-{sub}_task-{task}_run-1_groundtruth.npz",
                    t_neural=t_gt.astype(np.float32),
                    input_slow=_block_mean(slow[:, b_i], k_gt).astype(np.float32),
                    synaptic_activity=_block_mean(syn, k_gt).astype(np.float32),
                    pyramidal_firing=_block_mean(res["firing"][:, b_i], k_gt).astype(np.float32),
                    source_power=_block_mean((src - src.mean(0)) ** 2, k_gt).astype(np.float32),
                    region_bold=np.stack([np.interp(t_gt, t_bold, region_bold[:, r]) for r in range(R)], 1).astype(np.float32),
                    bold_clean=clean, bold_visible=clean,
                    noise=vols["noise"].astype(np.float32), drift=vols["drift"].astype(np.float32),
                    baseline=sp["baseline"].astype(np.float32), acquisition_times=vols["acq"].astype(np.float32),
                    volume_onsets_eeg=onsets.astype(np.float64), leadfield=sp["leadfield"].astype(np.float32),
                    labels=anat.labels.astype(np.int32),
                )
                params = dict(subject=sub, **{k: v for k, v in sp.items() if k not in ("voxel_gain", "baseline")})
                (gdir / f"sub-{sub}_parameters.json").write_text(json.dumps(_jsonable(params)), encoding="utf-8")
            del res
        _write_common(root, gt_root, anat, W, dist, delays * dt, o, names, dict(
            n_subjects=n_subjects, minutes=minutes, seed=seed, n_channels=n_channels, sfreq=sfreq,
            voxel_size=voxel_size, tr=tr, model=model, integration_rate=1.0 / dt))
    logger.info("wrote %s", out)
    return Path(out).absolute()


def _write_common(root: Path, gt_root: Path, anat: Anatomy, W, dist, delays_s, o: dict, names: list[str], settings: dict) -> None:

    from eeg2fmri import __version__

    write_anatomy_maps(anat, gt_root)
    meta = dict(
        generator="eeg2fmri.simulate.neural_mass", settings=settings, options=o, channels=names,
        jansen_rit=JANSEN_RIT, balloon_windkessel=dict(kinetics_mean_cv=BALLOON, output=BOLD_OUTPUT), neural_rate=NEURAL_RATE, pre_seconds=_PRE,
        group_connectome=W, distances_mm=dist, delays_s=delays_s, region_centroids_mm=anat.centroids,
        note="no separable EEG-visible drive: bold_visible is the whole noise-free BOLD (oracle ceiling = noise ceiling)",
    )
    (gt_root / "simulation.json").write_text(json.dumps(_jsonable(meta), indent=1), encoding="utf-8")
    gen = [{"Name": "eeg2fmri.simulate.neural_mass", "Version": __version__}]
    (gt_root / "dataset_description.json").write_text(json.dumps({
        "Name": "eeg2fmri neural-mass simulator ground truth", "BIDSVersion": "1.9.0", "DatasetType": "derivative", "GeneratedBy": gen,
    }, indent=2), encoding="utf-8")
    p = root / "dataset_description.json"
    d = json.loads(p.read_text(encoding="utf-8")) if p.exists() else {}
    d.update({"Name": f"eeg2fmri neural-mass ({settings['model']}) simulated EEG-fMRI (seed {settings['seed']})",
              "BIDSVersion": d.get("BIDSVersion", "1.9.0"), "DatasetType": "raw", "GeneratedBy": gen})
    p.write_text(json.dumps(d, indent=2), encoding="utf-8")
