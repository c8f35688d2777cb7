#!/usr/bin/env python
# ruff: noqa  (a user-testing helper's generator, session 20, written without reading the package's simulators; kept as written so that its numbers reproduce)
"""Independent simulated simultaneous EEG-fMRI dataset: coupled stochastic Kuramoto populations.

Written as an outside test generator for eeg2fmri (it shares no code or design with the package's
own simulators). Everything is generated offline from numpy/scipy/mne/mne-bids/nibabel/nilearn.

Generative model
----------------
1. Anatomy. A 5 mm MNI152 grid (nilearn's bundled template and brain mask, cropped to the brain's
   box + 2 voxels). N_REGIONS (default 32) cortical region centroids are spread over the brain by
   farthest-point sampling among mask voxels 5-15 mm deep (cerebellum excluded). The atlas gives every
   brain voxel its nearest centroid when it lies within 2.2 sigma_r (sigma_r ~ U(11,17) mm) of it;
   the voxel's gain is a Gaussian fall-off with distance times a log-normal factor.
2. Head model. 63 EEG electrodes of the BrainAmp-MR 64 cap (standard_1005 positions) + FCz (the
   recording reference). A 3-shell sphere fitted to the electrodes (mne.make_sphere_model), a 6 mm
   volume source space inside it and an MNE sphere-model forward solution. MNI centroids go to head
   coordinates through the montage's fsaverage-MRI -> head transform (fsaverage ~ MNI), pulled inward
   to stay in the source space. Each region is a patch (source-space points within 9 mm of a
   per-subject jittered centroid, sd 4 mm per axis) of roughly radial dipoles (orientation jitter).
3. Neural dynamics. Every region holds three populations of K=20 phase oscillators (alpha ~10 Hz,
   beta ~20 Hz, gamma ~40 Hz; region and subject specific peak offsets, Gaussian spread of natural
   frequencies) integrated in the band's rotating frame at 250 Hz (Euler-Maruyama, phase diffusion).
   Local Kuramoto coupling K_loc(t) = Kc * kappa_r * exp(+-beta u_r(t)) sits near the critical coupling,
   modulated by a slow latent state u_r(t) (OU processes: 5 bilateral "networks", a global vigilance
   term, a private term) -- alpha/beta coupling falls, gamma coupling rises with u. Alpha and beta
   populations are also coupled between regions over a random sparse, distance-dependent, symmetric
   connectome with conduction delays (d / v, v ~ U(5,10) m/s per subject); gamma coupling is
   modulated by the local alpha phase (phase-amplitude coupling). Band power is therefore the
   population synchrony |Z|^2 (finite-size, noisy, nonlinear in u); no envelope is drawn directly.
4. EEG. Region source = sum_b A_rb Re(Z_rb(t)) (alpha amplitude larger posteriorly, beta centrally),
   projected through the patch lead fields; + 60 random background dipoles with 1/f (pink) noise;
   + white sensor noise, weak 50 Hz line noise; + eye blinks (Poisson, ~10-20/min, 80-200 uV at Fp1/Fp2
   decaying with distance from the eyes); + a weak cardiac far-field (QRS, ~2-4 uV) and pulse residual;
   all as potentials at the 64 positions, re-referenced to FCz (FCz is not stored). 500 Hz, volts.
   ECG channel: synthetic P-QRS-T waveform (~0.6-1.2 mV) with heart-rate variability and respiratory
   sinus arrhythmia, baseline wander. No MR gradient / BCG artefact (assumed already cleaned).
   Scanner markers "R128" (BrainVision Response) at every volume onset with +-1 sample jitter;
   the EEG starts 8-15 s before the first volume and ends 3-6 s after the last.
5. Neurovascular coupling, per region (weights/constants per subject and region):
   drive = w_g tanh(Pg / c_g) - w_a Pa / (Pa + k_a) - w_b Pb / (Pb + 1),  P = |Z|^2 / median,
   then a first-order low-pass (tau 0.4-1.2 s), a delay 0.5-2.5 s, standardised (sd 0.08) to the flow
   input z.
6. Haemodynamics: the Balloon-Windkessel model (Friston 2000 / Stephan 2007 BOLD equation) per region
   with per-subject, per-region kappa, gamma, tau, alpha, E0 (impulse-response peaks ~4-8 s reported).
7. BOLD image: baseline EPI-like intensity B_v (from the inverted T1 template, ~1000-2000) times
   (1 + s * gain_v * y_region(v)(t_k + TR/2)) + noise: thermal (0.6-0.9 %), Legendre drifts +
   scanner drift, RETROICOR-style cardiac and respiratory terms from the same heart/breathing signals
   as the ECG (aliased by sampling at the TR), global RVT/HR terms (convolved with the RRF/CRF),
   EEG-invisible slow spatial fluctuations (6 smooth maps), and 3 head-motion spikes (edge voxels
   + global, spin-history tail). The per-subject signal scale s is set so the median over driven
   voxels of corr(noise-free, noisy) hits a per-subject target drawn from U(0.38, 0.52).
   Written as int16 NIfTI, sform/qform code 4 (MNI).

Outputs (OUT/):
  bids/  BIDS: sub-XX/eeg/sub-XX_task-rest_run-1_eeg.vhdr (+ channels.tsv, events.tsv, eeg.json),
         sub-XX/func/sub-XX_task-rest_run-1_bold.nii.gz + _bold.json, dataset_description.json
  groundtruth/  atlas.nii.gz, mask.nii.gz, regions.tsv, README.txt, sub-XX.npz (see README.txt)

Usage: python sim_user_kuramoto.py OUT [--subjects 4] [--minutes 6] [--seed 0] [--tr 1.5]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from scipy import ndimage, signal
from scipy.cluster.vq import kmeans2

SFREQ = 500.0
SIM_DT = 1.0 / 250.0          # neural integration step (rotating frame)
SLOW_DT = 0.04                # 25 Hz: slow latent state, power envelopes, haemodynamics
BURN = 5.0                    # s of neural burn-in before EEG time 0
K_OSC = 20                    # oscillators per population
BANDS = ("alpha", "beta", "gamma")
BAND_HZ = np.array([10.0, 20.0, 40.0])       # rotating-frame frequencies
SPREAD_HZ = np.array([0.5, 1.2, 2.5])        # sd of natural frequencies within a population
DETUNE_HZ = np.array([1.5, 3.0, 5.0])        # half-range of region peak offsets
CHANNELS = ("Fp1 Fp2 F3 F4 C3 C4 P3 P4 O1 O2 F7 F8 T7 T8 P7 P8 Fz Cz Pz Oz FC1 FC2 CP1 CP2 FC5 FC6 "
            "CP5 CP6 TP9 TP10 POz F1 F2 C1 C2 P1 P2 AF3 AF4 FC3 FC4 CP3 CP4 PO3 PO4 F5 F6 C5 C6 P5 "
            "P6 AF7 AF8 FT7 FT8 TP7 TP8 PO7 PO8 FT9 FT10 Fpz CPz").split()
REF = "FCz"
TASK = "rest"


def log(msg, t0=[time.time()]):
    print(f"[{time.time() - t0[0]:6.1f}s] {msg}", flush=True)


# ----------------------------------------------------------------------------------------------
# anatomy: MNI grid, regions, atlas
# ----------------------------------------------------------------------------------------------
def build_grid(res):
    from nilearn import datasets
    tmpl = datasets.load_mni152_template(resolution=res)
    mimg = datasets.load_mni152_brain_mask(resolution=res)
    mask = mimg.get_fdata() > 0.5
    t1 = tmpl.get_fdata().astype(np.float64)
    ijk = np.argwhere(mask)
    lo = np.maximum(ijk.min(0) - 2, 0)
    hi = np.minimum(ijk.max(0) + 3, mask.shape)
    sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    aff = mimg.affine.copy()
    aff[:3, 3] = aff[:3, :3] @ lo + aff[:3, 3]
    return mask[sl], t1[sl], aff


def vox2mni(ijk, aff):
    return ijk @ aff[:3, :3].T + aff[:3, 3]


def place_regions(mask, aff, n, rng):
    vs = abs(aff[0, 0])
    depth = ndimage.distance_transform_edt(mask, sampling=vs)
    ijk = np.argwhere(mask)
    xyz = vox2mni(ijk, aff)
    d = depth[mask]
    cereb = (xyz[:, 1] < -50) & (xyz[:, 2] < -15)
    cand = xyz[(d >= 5) & (d <= 15) & ~cereb & (xyz[:, 2] > -40)]
    chosen = [cand[rng.integers(len(cand))]]
    mind = np.linalg.norm(cand - chosen[0], axis=1)
    for _ in range(n - 1):
        i = int(np.argmax(mind))
        chosen.append(cand[i])
        mind = np.minimum(mind, np.linalg.norm(cand - cand[i], axis=1))
    pos = np.array(chosen)
    names = []
    for k, (x, y, z) in enumerate(pos):
        hemi = "L" if x < -4 else ("R" if x > 4 else "M")
        if y > 20:
            lobe = "frontal"
        elif y < -65:
            lobe = "occipital"
        elif z < 5 and y > -55:
            lobe = "temporal"
        elif y < -30:
            lobe = "parietal"
        else:
            lobe = "central"
        names.append(f"{hemi}_{lobe}_{k + 1:02d}")
    return pos, names


def make_atlas(mask, aff, pos, rng):
    ijk = np.argwhere(mask)
    xyz = vox2mni(ijk, aff)
    dist = np.linalg.norm(xyz[:, None, :] - pos[None], axis=2)
    near = dist.argmin(1)
    dmin = dist[np.arange(len(xyz)), near]
    sigma = rng.uniform(11.0, 17.0, len(pos))
    labelled = dmin < 2.2 * sigma[near]
    gain = np.exp(-dmin ** 2 / (2 * sigma[near] ** 2)) * np.exp(0.35 * rng.standard_normal(len(xyz)))
    gain = np.where(labelled, gain, 0.0)
    labels = np.where(labelled, near + 1, 0).astype(np.int16)
    return ijk, labels, gain, sigma


# ----------------------------------------------------------------------------------------------
# head model
# ----------------------------------------------------------------------------------------------
def head_model():
    import mne
    mon = mne.channels.make_standard_montage("standard_1005")
    info = mne.create_info(CHANNELS + [REF], SFREQ, "eeg")
    info.set_montage(mon, verbose=False)
    head_t = mne.channels.compute_native_head_t(mon)
    sph = mne.make_sphere_model("auto", "auto", info, verbose=False)
    src = mne.setup_volume_source_space(sphere=sph, pos=6.0, mindist=5.0, verbose=False)
    fwd = mne.make_forward_solution(info, trans=None, src=src, bem=sph, eeg=True, meg=False,
                                    verbose=False)
    gain = fwd["sol"]["data"]                     # (64, 3 * n_src), V / (A m)
    rr = fwd["source_rr"]
    elec = np.array([info["chs"][i]["loc"][:3] for i in range(len(info["chs"]))])
    return dict(mon=mon, head_t=head_t, r0=np.asarray(sph["r0"]), rr=rr,
                L=gain.reshape(gain.shape[0], -1, 3), elec=elec, rmax=np.linalg.norm(rr - sph["r0"], axis=1).max())


def mni_to_head(pos_mm, hm):
    import mne
    h = mne.transforms.apply_trans(hm["head_t"], pos_mm / 1000.0)
    v = h - hm["r0"]
    r = np.linalg.norm(v, axis=-1, keepdims=True)
    lim = hm["rmax"] - 0.006
    return hm["r0"] + v * np.minimum(1.0, lim / r)


def region_leadfields(centers, hm, rng):
    """Patch lead fields (64 positions x R) for per-subject jittered centroids."""
    R = len(centers)
    G = np.zeros((hm["L"].shape[0], R))
    info = []
    for r in range(R):
        c = centers[r] + rng.normal(0, 0.004, 3)
        v = c - hm["r0"]
        c = hm["r0"] + v * min(1.0, (hm["rmax"] - 0.006) / np.linalg.norm(v))
        d = np.linalg.norm(hm["rr"] - c, axis=1)
        idx = np.flatnonzero(d < 0.009)
        if len(idx) < 3:
            idx = np.argsort(d)[:5]
        nn = hm["rr"][idx] - hm["r0"]
        nn /= np.linalg.norm(nn, axis=1, keepdims=True)
        nn = nn + 0.35 * rng.standard_normal(nn.shape)
        nn /= np.linalg.norm(nn, axis=1, keepdims=True)
        G[:, r] = np.einsum("cpk,pk->c", hm["L"][:, idx, :], nn) / len(idx)
        info.append((c, len(idx)))
    return G, np.array([i[0] for i in info]), np.array([i[1] for i in info])


# ----------------------------------------------------------------------------------------------
# slow latent state, connectome, neural simulation
# ----------------------------------------------------------------------------------------------
def ou(n, tau, dt, rng, size=()):
    a = np.exp(-dt / np.asarray(tau))
    e = rng.standard_normal((n,) + tuple(size)) * np.sqrt(1 - a ** 2)
    x = np.empty_like(e)
    x[0] = rng.standard_normal(size)
    if np.ndim(a) == 0:
        x[1:] = signal.lfilter([1.0], [1.0, -float(a)], e[1:], axis=0, zi=(a * x[0])[None])[0]
    else:
        for j in np.ndindex(*size):
            x[(slice(1, None),) + j] = signal.lfilter([1.0], [1.0, -a[j]], e[(slice(1, None),) + j],
                                                      zi=[a[j] * x[(0,) + j]])[0]
    return x


def connectome(pos_mm, rng):
    R = len(pos_mm)
    d = np.linalg.norm(pos_mm[:, None] - pos_mm[None], axis=2)
    p = 0.55 * np.exp(-d / 45.0)
    mirror = pos_mm * np.array([-1, 1, 1])
    homo = np.linalg.norm(pos_mm[:, None] - mirror[None], axis=2).argmin(1)
    A = np.triu(rng.random((R, R)) < p, 1)
    A = A | A.T
    A[np.arange(R), homo] = True
    A[homo, np.arange(R)] = True
    np.fill_diagonal(A, False)
    W = np.where(A, rng.lognormal(0, 0.5, (R, R)), 0.0)
    W = np.triu(W, 1)
    W = W + W.T
    W /= np.maximum(W.sum(1, keepdims=True), 1e-12)
    return W, d


def simulate_neural(subj, pos_mm, n_eeg, rng):
    """All subjects at once. Returns per subject Y (n_sim, R, 3) complex64 (rotating frame) and
    P (n_slow, R, 3) block mean |Z|^2 at 25 Hz; sample 0 of both = EEG time -BURN."""
    S, R, B = len(subj), len(pos_mm), 3
    n_sim = int(round((BURN + n_eeg / SFREQ) / SIM_DT)) + 4
    per_slow = int(round(SLOW_DT / SIM_DT))
    n_slow = n_sim // per_slow + 2
    N = S * R * B
    sw = 2 * np.pi * SPREAD_HZ
    D = 0.3 * sw                                  # phase diffusion, rad^2/s
    Kc = 1.6 * sw + 2 * D
    dw = np.empty((S, R, B, K_OSC), np.float32)
    Kloc = np.empty((n_slow, S, R, B), np.float32)
    edges = []
    pac = np.empty((S, R), np.float32)
    pac_phase = np.empty((S, R), np.float32)
    comm_lab = kmeans2(np.c_[np.abs(pos_mm[:, 0]), pos_mm[:, 1:]], 5, seed=int(rng.integers(1 << 30)),
                       minit="++")[1]
    for s, p in enumerate(subj):
        r_ = p["rng"]
        iaf = r_.normal(0, 0.7)
        for b in range(B):
            off = r_.uniform(-DETUNE_HZ[b], DETUNE_HZ[b], R) + (iaf if b == 0 else 0.0)
            dw[s, :, b, :] = 2 * np.pi * (off[:, None] + SPREAD_HZ[b] * r_.standard_normal((R, K_OSC)))
        # slow latent state u (25 Hz): network + global vigilance + private
        net = ou(n_slow, 20.0, SLOW_DT, r_, (5,))
        glob = ou(n_slow, 60.0, SLOW_DT, r_)
        priv = ou(n_slow, r_.uniform(5, 15, R), SLOW_DT, r_, (R,))
        a_net = r_.uniform(0.45, 0.75, R)
        a_glob = r_.uniform(0.15, 0.35, R)
        u = a_net * net[:, comm_lab] + a_glob * glob[:, None] + np.sqrt(
            np.clip(1 - a_net ** 2 - a_glob ** 2, 0.05, 1)) * priv
        kap = np.stack([r_.uniform(0.8, 1.5, R), r_.uniform(0.8, 1.3, R), r_.uniform(0.6, 1.2, R)], 1)
        beta = np.array([-0.55, -0.3, 0.6]) * r_.uniform(0.7, 1.3, (R, 1))
        Kloc[:, s] = Kc * kap * np.exp(beta * u[:, :, None])
        p["u"] = u.astype(np.float32)
        p["kappa"] = kap
        p["comm"] = comm_lab
        # connectome with delays (alpha, beta)
        W, dist = connectome(pos_mm, r_)
        vel = r_.uniform(5.0, 10.0)
        G = np.array([r_.uniform(0.2, 0.6), r_.uniform(0.1, 0.4), 0.0]) * Kc
        p["W"], p["velocity"], p["G_inter"] = W, vel, G
        ii, jj = np.nonzero(W)
        tau = dist[ii, jj] / 1000.0 / vel + 0.002
        for b in (0, 1):
            ph = np.exp(-1j * 2 * np.pi * BAND_HZ[b] * tau) * W[ii, jj] * G[b]
            dst = (s * R + ii) * B + b
            srcn = (s * R + jj) * B + b
            edges.append((dst, srcn, np.maximum(1, np.round(tau / SIM_DT)).astype(int), ph))
        pac[s] = r_.uniform(0.1, 0.4, R)
        pac_phase[s] = r_.uniform(0, 2 * np.pi, R)
    dst = np.concatenate([e[0] for e in edges])
    srcn = np.concatenate([e[1] for e in edges])
    dly = np.concatenate([e[2] for e in edges])
    cph = np.concatenate([e[3] for e in edges])
    cr, ci = cph.real.astype(np.float32), cph.imag.astype(np.float32)
    L = int(dly.max()) + 2
    Hr = np.zeros((L, N), np.float32)
    Hi = np.zeros((L, N), np.float32)
    phi = rng.uniform(0, 2 * np.pi, (N, K_OSC)).astype(np.float32)
    dwf = dw.reshape(N, K_OSC) * np.float32(SIM_DT)
    noise_sd = np.broadcast_to(np.sqrt(2 * D * SIM_DT)[None, None, :], (S, R, B)).reshape(N, 1).astype(np.float32)
    Kl_all = Kloc.reshape(n_slow, N)
    a_idx = np.arange(0, N, B)
    g_idx = np.arange(2, N, B)
    pacf = pac.reshape(-1)
    pacc = np.exp(-1j * pac_phase.reshape(-1))
    w_alpha = 2 * np.pi * BAND_HZ[0]
    Y = np.empty((n_sim, N), np.complex64)
    Pacc = np.zeros((n_slow, N), np.float64)
    chunk = 250
    dt32 = np.float32(SIM_DT)
    for c0 in range(0, n_sim, chunk):
        nz = rng.standard_normal((min(chunk, n_sim - c0), N, K_OSC), dtype=np.float32) * noise_sd
        for k in range(nz.shape[0]):
            n = c0 + k
            c = np.cos(phi)
            sn = np.sin(phi)
            yr = c.mean(1)
            yi = sn.mean(1)
            ptr = n % L
            Hr[ptr] = yr
            Hi[ptr] = yi
            rows = (ptr - dly) % L
            hr = Hr[rows, srcn]
            hi = Hi[rows, srcn]
            ir = np.bincount(dst, cr * hr - ci * hi, N)
            ii_ = np.bincount(dst, cr * hi + ci * hr, N)
            kl = Kl_all[n // per_slow].copy()
            # phase-amplitude coupling: gamma coupling follows the local alpha phase
            za = (yr[a_idx] + 1j * yi[a_idx]) * np.exp(1j * w_alpha * n * SIM_DT) * pacc
            kl[g_idx] *= 1 + pacf * 2 * za.real
            wr = kl * yr + ir
            wi = kl * yi + ii_
            phi += dwf + dt32 * (wi[:, None] * c - wr[:, None] * sn) + nz[k]
            Y[n] = yr + 1j * yi
        phi %= np.float32(2 * np.pi)
    P = np.abs(Y) ** 2
    nb = n_sim // per_slow
    Pacc[:nb] = P[: nb * per_slow].reshape(nb, per_slow, N).mean(1)
    Pacc[nb:] = Pacc[nb - 1]
    Y = Y.reshape(n_sim, S, R, B)
    Pacc = Pacc.reshape(n_slow, S, R, B)
    return [Y[:, s] for s in range(S)], [Pacc[:, s] for s in range(S)]


# ----------------------------------------------------------------------------------------------
# neurovascular coupling and Balloon-Windkessel haemodynamics
# ----------------------------------------------------------------------------------------------
def neural_drive(P, rng):
    """P: (n_slow, R, 3) synchrony power. Returns z (n_slow, R) and the parameters."""
    n, R, _ = P.shape
    Pn = P / np.median(P, axis=0, keepdims=True)
    c_g = rng.uniform(1.0, 2.5, R)
    k_a = rng.uniform(0.5, 2.0, R)
    w = np.stack([rng.uniform(0.3, 1.2, R), rng.uniform(0.0, 0.5, R), rng.uniform(0.4, 1.2, R)], 1)
    h_g = np.tanh(Pn[..., 2] / c_g)
    h_a = Pn[..., 0] / (Pn[..., 0] + k_a)
    h_b = Pn[..., 1] / (Pn[..., 1] + 1.0)
    drive = w[:, 2] * h_g - w[:, 0] * h_a - w[:, 1] * h_b
    tau_nv = rng.uniform(0.4, 1.2, R)
    a = np.exp(-SLOW_DT / tau_nv)
    lp = np.empty_like(drive)
    for r in range(R):
        lp[:, r] = signal.lfilter([1 - a[r]], [1, -a[r]], drive[:, r], zi=[a[r] * drive[0, r]])[0]
    delay = rng.uniform(0.5, 2.5, R)
    dsh = np.round(delay / SLOW_DT).astype(int)
    z = np.empty_like(lp)
    for r in range(R):
        z[:, r] = np.r_[np.full(dsh[r], lp[0, r]), lp[: n - dsh[r], r]]
    z = (z - z.mean(0)) / z.std(0)
    return 0.08 * z, dict(c_gamma=c_g, k_alpha=k_a, w_alpha=w[:, 0], w_beta=w[:, 1], w_gamma=w[:, 2],
                          tau_nv=tau_nv, nv_delay=delay), drive


def balloon_params(R, rng, subj_factor):
    return dict(kappa=np.clip(rng.normal(0.6, 0.1, R), 0.4, 0.9) / subj_factor,
                gamma=np.clip(rng.normal(0.41, 0.06, R), 0.25, 0.6),
                tau=np.clip(rng.normal(1.6, 0.35, R), 0.9, 2.6) * subj_factor,
                alpha=np.clip(rng.normal(0.32, 0.03, R), 0.25, 0.4),
                E0=np.clip(rng.normal(0.34, 0.05, R), 0.2, 0.5))


def balloon(z, prm, sub=2):
    """Balloon-Windkessel; z (n, R) at SLOW_DT. Returns fractional BOLD y (n, R) and min flow."""
    n, R = z.shape
    dt = SLOW_DT / sub
    s = np.zeros(R)
    f = np.ones(R)
    v = np.ones(R)
    q = np.ones(R)
    k, g, tau, al, E0 = prm["kappa"], prm["gamma"], prm["tau"], prm["alpha"], prm["E0"]
    y = np.empty((n, R))
    fmin = np.inf
    V0, k1, k2, k3 = 0.02, 7 * E0, 2.0, 2 * E0 - 0.2
    for i in range(n):
        for _ in range(sub):
            fv = v ** (1 / al)
            ds = z[i] - k * s - g * (f - 1)
            df = s
            dv = (f - fv) / tau
            dq = (f * (1 - (1 - E0) ** (1 / f)) / E0 - fv * q / v) / tau
            s = s + dt * ds
            f = np.maximum(f + dt * df, 0.2)
            v = np.maximum(v + dt * dv, 0.2)
            q = np.maximum(q + dt * dq, 0.2)
        fmin = min(fmin, f.min())
        y[i] = V0 * (k1 * (1 - q) + k2 * (1 - q / v) + k3 * (1 - v))
    return y, fmin


def hrf_peaks(prm, nv):
    """Peak latency (s) of the impulse response of low-pass + delay + Balloon, per region."""
    R = len(prm["kappa"])
    n = int(30 / SLOW_DT)
    z = np.zeros((n, R))
    z[0] = 1.0 / SLOW_DT * 0.01
    a = np.exp(-SLOW_DT / nv["tau_nv"])
    for r in range(R):
        z[:, r] = signal.lfilter([1 - a[r]], [1, -a[r]], z[:, r])
        d = int(round(nv["nv_delay"][r] / SLOW_DT))
        z[:, r] = np.r_[np.zeros(d), z[: n - d, r]]
    y, _ = balloon(z, prm)
    return y.argmax(0) * SLOW_DT


# ----------------------------------------------------------------------------------------------
# physiology: heart and breathing
# ----------------------------------------------------------------------------------------------
def physiology(dur, rng):
    fs = 50.0
    t = np.arange(0, dur + 5, 1 / fs)
    f_resp = rng.uniform(0.22, 0.30) * (1 + 0.08 * ou(len(t), 30.0, 1 / fs, rng))
    ph_resp = 2 * np.pi * np.cumsum(f_resp) / fs + rng.uniform(0, 2 * np.pi)
    amp_resp = np.exp(0.25 * ou(len(t), 20.0, 1 / fs, rng))
    resp = amp_resp * np.sin(ph_resp)
    hr = rng.uniform(58, 75)
    rr_mean = 60.0 / hr
    hrv = ou(len(t), 15.0, 1 / fs, rng)
    beats = [rng.uniform(0, rr_mean)]
    while beats[-1] < dur + 2:
        i = min(int(beats[-1] * fs), len(t) - 1)
        rr = rr_mean * (1 + 0.04 * np.sin(ph_resp[i]) + 0.04 * hrv[i])
        beats.append(beats[-1] + rr)
    beats = np.array(beats)
    rvt = amp_resp * f_resp
    hr_t = 60.0 / np.interp(t, beats[1:], np.diff(beats))
    return dict(t=t, resp=resp, ph_resp=ph_resp, beats=beats, rvt=rvt, hr=hr_t, hr_mean=hr)


def cardiac_phase(tq, beats):
    k = np.clip(np.searchsorted(beats, tq) - 1, 0, len(beats) - 2)
    return 2 * np.pi * (tq - beats[k]) / (beats[k + 1] - beats[k])


def ecg_wave(n, beats, rng):
    t = np.arange(n) / SFREQ
    ecg = np.zeros(n)
    qrs = np.zeros(n)
    pulse = np.zeros(n)
    comps = [(-0.20, 0.12, 0.025), (-0.035, -0.12, 0.010), (0.0, 1.0, 0.011), (0.035, -0.28, 0.011)]
    for k in range(len(beats) - 1):
        tb = beats[k]
        rr = beats[k + 1] - beats[k]
        i0, i1 = max(0, int((tb - 0.4) * SFREQ)), min(n, int((tb + 0.8) * SFREQ))
        if i1 <= i0:
            continue
        tt = t[i0:i1] - tb
        w = sum(a * np.exp(-(tt - mu) ** 2 / (2 * sd ** 2)) for mu, a, sd in comps)
        qrs[i0:i1] += w
        ecg[i0:i1] += w + 0.3 * np.exp(-(tt - 0.28 * np.sqrt(rr)) ** 2 / (2 * 0.06 ** 2))
        pulse[i0:i1] += np.exp(-(tt - 0.25) ** 2 / (2 * 0.08 ** 2))
    return ecg, qrs, pulse


def pink(n, m, rng):
    b = [0.049922035, -0.095993537, 0.050612699, -0.004408786]
    a = [1, -2.494956002, 2.017265875, -0.522189400]
    x = signal.lfilter(b, a, rng.standard_normal((m, n + 2000)), axis=1)[:, 2000:]
    return x / x.std(1, keepdims=True)


# ----------------------------------------------------------------------------------------------
# per-subject EEG and BOLD
# ----------------------------------------------------------------------------------------------
def make_eeg(p, Y, hm, G, amps, phys, rng):
    n = p["n_eeg"]
    burn_steps = int(round(BURN / SIM_DT))
    R = Y.shape[1]
    # rotating-frame envelope at 250 Hz -> 500 Hz (linear interpolation), back to the lab frame
    src = np.zeros((n, R), np.float64)
    t = np.arange(n) / SFREQ
    for b in range(3):
        yb = Y[burn_steps: burn_steps + n // 2 + 2, :, b]
        up = np.empty((2 * len(yb) - 1, R), np.complex64)
        up[0::2] = yb
        up[1::2] = 0.5 * (yb[:-1] + yb[1:])
        rot = np.exp(1j * 2 * np.pi * BAND_HZ[b] * t).astype(np.complex64)
        src += amps[:, b] * (up[:n] * rot[:, None]).real
    neural = G @ src.T                                            # (64, n)
    nref = neural[:-1] - neural[-1]
    neural *= p["uv_neural"] * 1e-6 / np.median(nref.std(1))
    # background: random dipoles with 1/f time courses
    nbg = 60
    pts = rng.choice(hm["rr"].shape[0], nbg, replace=False)
    ori = rng.standard_normal((nbg, 3))
    ori /= np.linalg.norm(ori, axis=1, keepdims=True)
    Gbg = np.einsum("cpk,pk->cp", hm["L"][:, pts, :], ori)
    bg = Gbg @ pink(n, nbg, rng)
    bref = bg[:-1] - bg[-1]
    bg *= p["uv_bg"] * 1e-6 / np.median(bref.std(1))
    eeg = neural + bg
    del neural, bg
    eeg += 0.8e-6 * rng.standard_normal(eeg.shape)
    eeg += 0.5e-6 * rng.uniform(0.3, 1.5, (eeg.shape[0], 1)) * np.sin(
        2 * np.pi * 50.0 * t + rng.uniform(0, 2 * np.pi, (eeg.shape[0], 1)))
    # cardiac
    ecg, qrs, pulse = ecg_wave(n, phys["beats"], rng)
    el = hm["elec"] - hm["r0"]
    hd = np.array([0.6, 0.3, -0.75])
    hd /= np.linalg.norm(hd)
    w_qrs = el @ hd / np.linalg.norm(el, axis=1).max() * rng.uniform(2.0, 4.0) * 1e-6
    cpat = el @ rng.standard_normal(3) + 30 * (el ** 2) @ rng.standard_normal(3)
    cpat = cpat / np.abs(cpat).max() * rng.uniform(1.5, 3.0) * 1e-6
    eeg += np.outer(w_qrs, qrs) + np.outer(cpat, pulse)
    # blinks
    fp1, fp2 = hm["elec"][CHANNELS.index("Fp1")], hm["elec"][CHANNELS.index("Fp2")]
    eyes = [fp1 + np.array([0, 0.01, -0.035]), fp2 + np.array([0, 0.01, -0.035])]
    wb = sum(np.exp(-np.linalg.norm(hm["elec"] - e, axis=1) / 0.03) for e in eyes)
    wb /= max(wb[CHANNELS.index("Fp1")], wb[CHANNELS.index("Fp2")])
    rate = rng.uniform(10, 20) / 60.0
    bt = np.cumsum(rng.exponential(1 / rate, int(n / SFREQ * rate * 2) + 10))
    bt = bt[bt < n / SFREQ - 1]
    blink = np.zeros(n)
    for tb in bt:
        tau = rng.uniform(0.045, 0.07)
        i0 = int(tb * SFREQ)
        tt = np.arange(int(8 * tau * SFREQ)) / SFREQ
        wv = (tt / (2 * tau)) ** 2 * np.exp(2 - tt / tau)
        i1 = min(n, i0 + len(wv))
        blink[i0:i1] += rng.normal(140, 30) * wv[: i1 - i0]
    eeg += np.outer(wb, blink) * 1e-6
    eeg = eeg[:-1] - eeg[-1]                                      # reference FCz
    # ECG channel
    wander = 80 * ou(n // 50 + 2, 4.0, 0.1, rng)
    ecg_ch = (rng.uniform(600, 1200) * ecg + np.interp(np.arange(n), np.arange(len(wander)) * 50, wander)
              + 5 * rng.standard_normal(n)) * 1e-6
    return eeg.astype(np.float64), ecg_ch, dict(blink_times=bt)


def write_eeg(root, label, eeg, ecg, onsets, meas_date, hm, tmpdir):
    import mne
    import mne_bids
    info = mne.create_info(CHANNELS + ["ECG"], SFREQ, ["eeg"] * len(CHANNELS) + ["ecg"])
    raw = mne.io.RawArray(np.vstack([eeg, ecg[None]]), info, verbose=False)
    raw.set_meas_date(meas_date)
    raw.set_annotations(mne.Annotations(onsets / SFREQ + 1e-6, 0.0, "Response/R128", orig_time=meas_date))
    tmp = Path(tmpdir) / f"sub-{label}.vhdr"
    mne.export.export_raw(tmp, raw, fmt="brainvision", overwrite=True, verbose=False)
    raw2 = mne.io.read_raw_brainvision(tmp, preload=False, verbose=False)
    raw2.set_channel_types({"ECG": "ecg"}, verbose=False)
    raw2.info["line_freq"] = 50.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw2.set_montage(hm["mon"], on_missing="ignore", verbose=False)
    bp = mne_bids.BIDSPath(subject=label, task=TASK, run=1, datatype="eeg", root=root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mne_bids.write_raw_bids(raw2, bp, overwrite=True, verbose=False)
    return bp


def write_bold(root, label, vol, aff, tr):
    import nibabel as nib
    d = Path(root) / f"sub-{label}" / "func"
    d.mkdir(parents=True, exist_ok=True)
    fpath = d / f"sub-{label}_task-{TASK}_run-1_bold.nii.gz"
    img = nib.Nifti1Image(vol, aff)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_sform(aff, code=4)
    img.header.set_qform(aff, code=4)
    zooms = list(img.header.get_zooms()[:3]) + [tr]
    img.header.set_zooms(zooms)
    nib.save(img, str(fpath))
    side = {"TaskName": TASK, "RepetitionTime": tr, "EchoTime": 0.03, "FlipAngle": 75,
            "MagneticFieldStrength": 3, "Manufacturer": "simulated (sim_user_kuramoto)",
            "SkullStripped": False}
    fpath.with_name(fpath.name.replace(".nii.gz", ".json")).write_text(json.dumps(side, indent=2))
    return fpath


def smooth_field(shape, sigma, rng):
    f = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return f / f.std()


def corr_rows(a, b):
    a = a - a.mean(0)
    b = b - b.mean(0)
    return (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0) + 1e-30)


def calibrate_scale(sig, noise, target, driven):
    a = sig.var(0)[driven]
    b = ((sig - sig.mean(0)) * (noise - noise.mean(0))).mean(0)[driven]
    c = noise.var(0)[driven]

    def med(s):
        return np.median((s * a + b) / np.sqrt(a * (s * s * a + 2 * s * b + c) + 1e-30))

    lo, hi = 1e-3, 1e4
    for _ in range(80):
        mid = np.sqrt(lo * hi)
        lo, hi = (mid, hi) if med(mid) < target else (lo, mid)
    return np.sqrt(lo * hi)


def make_bold(p, y_reg, mask, t1, aff, ijk, labels, gain, phys, tr, rng):
    n_vol = p["n_vol"]
    nvox = len(ijk)
    shape = mask.shape
    # baseline EPI-like intensity
    t1n = t1 / np.percentile(t1[mask], 99)
    base3 = np.where(mask, 1000 + 900 * np.clip(1 - t1n, 0, 1) + 150 * smooth_field(shape, 3, rng), 0.0)
    base3 = ndimage.gaussian_filter(base3, 0.6)
    base = np.clip(base3[mask], 600, None)
    # acquisition times: volume k acquired around onset_k + TR/2
    t_acq = p["t0"] + np.arange(n_vol) * tr + tr / 2
    tslow = np.arange(y_reg.shape[0]) * SLOW_DT - BURN
    yv = np.stack([np.interp(t_acq, tslow, y_reg[:, r]) for r in range(y_reg.shape[1])], 1)
    g = gain * np.exp(0.15 * rng.standard_normal(nvox))
    lab = labels.astype(int)
    sig = np.zeros((n_vol, nvox))
    d = lab > 0
    sig[:, d] = yv[:, lab[d] - 1] * g[d]
    # noise, in fractions of the baseline
    tt = np.linspace(-1, 1, n_vol)
    xyz = vox2mni(ijk, aff)
    rel = np.linalg.norm((xyz - xyz.mean(0)) / xyz.std(0), axis=1) / 2
    noise = 0.007 * (0.85 + 0.3 * rng.random(nvox)) * (1 + 0.2 * rel) * rng.standard_normal((n_vol, nvox))
    leg = np.stack([tt, 1.5 * tt ** 2 - 0.5], 1)
    noise += leg @ (0.004 * rng.standard_normal((2, nvox)))
    noise += (0.004 * ou(n_vol, 60.0, tr, rng))[:, None] * (1 + 0.2 * rng.standard_normal(nvox))
    ph_c = cardiac_phase(t_acq, phys["beats"])
    ph_r = np.interp(t_acq, phys["t"], phys["ph_resp"])
    camp = 0.0015 * (0.5 + smooth_field(shape, 2, rng)[mask] ** 2)
    ramp = 0.0015 * (0.5 + smooth_field(shape, 3, rng)[mask] ** 2)
    for m in (1, 2):
        noise += np.outer(np.cos(m * ph_c), camp * rng.standard_normal(nvox) / m)
        noise += np.outer(np.sin(m * ph_c), camp * rng.standard_normal(nvox) / m)
        noise += np.outer(np.cos(m * ph_r), ramp * rng.standard_normal(nvox) / m)
        noise += np.outer(np.sin(m * ph_r), ramp * rng.standard_normal(nvox) / m)
    fs = 1 / (phys["t"][1] - phys["t"][0])
    th = np.arange(0, 40, 1 / fs)
    rrf = 0.6 * th ** 2.1 * np.exp(-th / 1.6) - 0.0023 * th ** 3.54 * np.exp(-th / 4.25)
    crf = 0.6 * th ** 2.7 * np.exp(-th / 1.6) - 16 / np.sqrt(2 * np.pi * 9) * np.exp(-(th - 12) ** 2 / 18)
    rv = signal.fftconvolve(phys["rvt"] - phys["rvt"].mean(), rrf)[: len(phys["t"])]
    hc = signal.fftconvolve(phys["hr"] - phys["hr"].mean(), crf)[: len(phys["t"])]
    gl = np.interp(t_acq, phys["t"], rv / rv.std()) + 0.5 * np.interp(t_acq, phys["t"], hc / hc.std())
    noise += np.outer(0.003 * gl, 1 + 0.3 * rng.standard_normal(nvox))
    for _ in range(6):
        mp = smooth_field(shape, 4, rng)[mask]
        noise += np.outer(0.0025 * ou(n_vol, rng.uniform(8, 20), tr, rng), mp)
    # head-motion spikes
    edge = ndimage.gaussian_gradient_magnitude(base3, 1.0)[mask]
    edge /= np.percentile(edge, 99)
    spikes = np.sort(rng.choice(np.arange(12, n_vol - 3), 3, replace=False))
    for k in spikes:
        sp = rng.choice([-1, 1]) * rng.uniform(0.02, 0.06) * edge * np.sign(rng.standard_normal(nvox)) \
            + rng.uniform(-0.015, 0.01)
        noise[k] += sp
        noise[k + 1] += 0.35 * sp
    driven = gain > 0
    target = p["corr_target"]
    s = calibrate_scale(sig, noise, target, driven)
    clean = base * (1 + s * sig)
    noisy = base * (1 + s * sig + noise)
    vol = np.zeros(shape + (n_vol,), np.float64)
    bg_level = 25 + 10 * rng.random(shape)
    vol[~mask] = (bg_level[~mask][:, None] + 8 * np.abs(rng.standard_normal(((~mask).sum(), n_vol))))
    vol[mask] = noisy.T
    vol = np.clip(np.round(vol), 0, 32767).astype(np.int16)
    noisy_q = vol[mask].T.astype(np.float64)
    r = corr_rows(clean, noisy_q)
    return vol, clean.astype(np.float32), dict(
        scale=s, corr=r.astype(np.float32), spikes=spikes, baseline=base.astype(np.float32),
        psc_sd=(100 * s * sig.std(0)).astype(np.float32), gain_subject=g.astype(np.float32),
        region_bold_tr=yv.astype(np.float32), t_acq=t_acq)


# ----------------------------------------------------------------------------------------------
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--subjects", type=int, default=4)
    ap.add_argument("--minutes", type=float, default=6.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tr", type=float, default=1.5)
    ap.add_argument("--regions", type=int, default=32)
    ap.add_argument("--voxel-size", type=int, default=5, help="MNI grid spacing in mm (integer)")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=RuntimeWarning, module="mne")
    out = Path(args.out)
    root = out / "bids"
    gt = out / "groundtruth"
    tmpdir = out / ".tmp_export"
    for d in (root, gt, tmpdir):
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
    rng = np.random.default_rng(args.seed)
    tr = args.tr
    n_vol = int(round(args.minutes * 60 / tr))

    import mne
    import mne_bids
    import nibabel as nib
    mne.set_log_level("ERROR")

    mask, t1, aff = build_grid(args.voxel_size)
    pos_mm, names = place_regions(mask, aff, args.regions, rng)
    ijk, labels, gain, sigma = make_atlas(mask, aff, pos_mm, rng)
    atlas = np.zeros(mask.shape, np.int16)
    atlas[tuple(ijk.T)] = labels
    for fname, arr in (("atlas.nii.gz", atlas), ("mask.nii.gz", mask.astype(np.uint8))):
        img = nib.Nifti1Image(arr, aff)
        img.header.set_sform(aff, code=4)
        img.header.set_qform(aff, code=4)
        nib.save(img, str(gt / fname))
    cover = (labels > 0).mean()
    log(f"grid {mask.shape} @ {args.voxel_size} mm, {mask.sum()} brain voxels, {args.regions} regions, "
        f"{100 * cover:.1f}% of brain voxels driven")
    hm = head_model()
    centers = mni_to_head(pos_mm, hm)
    log(f"head model: sphere r0={np.round(hm['r0'] * 1000, 1)} mm, {hm['rr'].shape[0]} source points")

    subj = []
    for s in range(args.subjects):
        r_ = np.random.default_rng([args.seed, s + 1])
        lead = round(r_.uniform(8, 15) * SFREQ) / SFREQ
        tail = r_.uniform(3, 6)
        n_eeg = int(round((lead + n_vol * tr + tail) * SFREQ))
        subj.append(dict(label=f"{s + 1:02d}", rng=r_, t0=lead, n_eeg=n_eeg, n_vol=n_vol,
                         uv_neural=r_.uniform(10, 16), uv_bg=r_.uniform(6, 10),
                         corr_target=r_.uniform(0.38, 0.52), hrf_factor=r_.lognormal(0, 0.1)))
    Ys, Ps = simulate_neural(subj, pos_mm, max(p["n_eeg"] for p in subj), rng)
    log(f"neural simulation done ({len(subj)} subjects x {args.regions} regions x 3 bands x {K_OSC} oscillators)")

    regions_tsv = ["index\tname\tx_mni\ty_mni\tz_mni\tsigma_mm\tn_voxels"]
    for r in range(args.regions):
        regions_tsv.append(f"{r + 1}\t{names[r]}\t{pos_mm[r, 0]:.1f}\t{pos_mm[r, 1]:.1f}\t{pos_mm[r, 2]:.1f}"
                           f"\t{sigma[r]:.1f}\t{int((labels == r + 1).sum())}")
    (gt / "regions.tsv").write_text("\n".join(regions_tsv) + "\n")

    summary = []
    for s, p in enumerate(subj):
        r_ = p["rng"]
        label = p["label"]
        Y, P = Ys[s], Ps[s]
        # EEG
        G, cen_s, npts = region_leadfields(centers, hm, r_)
        yy = pos_mm[:, 1]
        amps = np.stack([1.0 + 2.0 / (1 + np.exp((yy + 30) / 15)),
                         0.5 + 0.7 * np.exp(-(yy + 15) ** 2 / (2 * 25 ** 2)),
                         np.full(len(yy), 0.25)], 1) * r_.lognormal(0, 0.25, (len(yy), 3))
        amps[:, 0] *= r_.lognormal(0, 0.3)
        phys = physiology(p["n_eeg"] / SFREQ, r_)
        eeg, ecg, extra = make_eeg(p, Y, hm, G, amps, phys, r_)
        step = int(round(tr * SFREQ))
        onsets = int(round(p["t0"] * SFREQ)) + np.arange(n_vol) * step
        onsets = onsets + r_.choice([-1, 0, 1], n_vol, p=[0.25, 0.5, 0.25])
        meas_date = datetime(2024, 3, 4 + s, 9, 30, tzinfo=timezone.utc)
        write_eeg(root, label, eeg, ecg, onsets, meas_date, hm, tmpdir)
        # drive, haemodynamics, BOLD
        z, nv, drive = neural_drive(P, r_)
        bprm = balloon_params(args.regions, r_, p["hrf_factor"])
        y_reg, fmin = balloon(z, bprm)
        peaks = hrf_peaks(bprm, nv)
        vol, clean, info = make_bold(p, y_reg, mask, t1, aff, ijk, labels, gain, phys, tr, r_)
        write_bold(root, label, vol, aff, tr)
        driven = labels > 0
        medr = float(np.median(info["corr"][driven]))
        np.savez_compressed(
            gt / f"sub-{label}.npz",
            bold_clean=clean, mask_ijk=ijk.astype(np.int16), labels=labels, gain=gain.astype(np.float32),
            gain_subject=info["gain_subject"], baseline=info["baseline"], signal_scale=info["scale"],
            corr_clean_noisy=info["corr"], psc_sd=info["psc_sd"], motion_spike_volumes=info["spikes"],
            region_bold_tr=info["region_bold_tr"], volume_acq_times=info["t_acq"],
            marker_samples=onsets, first_volume_time=p["t0"],
            region_drive_25hz=drive.astype(np.float32), region_z_25hz=z.astype(np.float32),
            region_bold_25hz=y_reg.astype(np.float32), synchrony_power_25hz=P.astype(np.float32),
            slow_state_25hz=p["u"], time_25hz=np.arange(P.shape[0]) * SLOW_DT - BURN,
            region_centers_head_m=cen_s, region_patch_points=npts, region_leadfields_fczref=G[:-1] - G[-1],
            band_amplitudes=amps, connectome=p["W"], conduction_velocity=p["velocity"],
            coupling_kappa=p["kappa"], communities=p["comm"], hrf_peak_s=peaks,
            **{f"balloon_{k}": v for k, v in bprm.items()}, **{f"nv_{k}": v for k, v in nv.items()},
            ecg_r_peaks=phys["beats"], blink_times=extra["blink_times"], heart_rate_bpm=phys["hr_mean"])
        ch_sd = eeg.std(1) * 1e6
        summary.append(dict(subject=label, n_eeg_samples=p["n_eeg"], first_volume_s=p["t0"],
                            median_corr=medr, target=p["corr_target"], scale=float(info["scale"]),
                            psc_sd_median=float(np.median(info["psc_sd"][driven])),
                            eeg_sd_uv_median=float(np.median(ch_sd)), eeg_sd_uv_range=[float(ch_sd.min()), float(ch_sd.max())],
                            hrf_peak_range_s=[float(peaks.min()), float(peaks.max())], balloon_min_flow=float(fmin),
                            heart_rate=float(phys["hr_mean"]), n_blinks=int(len(extra["blink_times"]))))
        log(f"sub-{label}: EEG {len(CHANNELS)}+ECG x {p['n_eeg']} samples (median sd {np.median(ch_sd):.1f} uV), "
            f"BOLD {vol.shape}, median corr(clean, noisy) over driven voxels {medr:.3f}, "
            f"median PSC sd {summary[-1]['psc_sd_median']:.2f}%, HRF peaks {peaks.min():.1f}-{peaks.max():.1f} s")
    mne_bids.make_dataset_description(path=root, name="sim_user_kuramoto: Kuramoto-population EEG-fMRI simulation",
                                      dataset_type="raw", authors=["sim_user_kuramoto.py"], overwrite=True,
                                      verbose=False)
    shutil.rmtree(tmpdir, ignore_errors=True)
    readme = [__doc__, "",
              f"Run: subjects={args.subjects} minutes={args.minutes} seed={args.seed} tr={tr} regions={args.regions} "
              f"voxel_size={args.voxel_size}",
              f"Grid {mask.shape}, affine (MNI, code 4):\n{aff}", f"brain voxels {int(mask.sum())}, driven "
              f"{int((labels > 0).sum())} ({100 * cover:.1f}%)", "",
              "sub-XX.npz: bold_clean (n_volumes, n_mask_voxels) noise-free BOLD in image units; voxel order = "
              "mask_ijk (np.argwhere(mask) on the BOLD grid, C order); labels/gain per voxel (0 = undriven); "
              "baseline; corr_clean_noisy per voxel; psc_sd (% signal change sd); region_drive_25hz / region_z_25hz / "
              "region_bold_25hz / synchrony_power_25hz (alpha, beta, gamma |Z|^2) on time_25hz (EEG seconds); "
              "region_bold_tr at volume_acq_times (onset + TR/2); marker_samples (R128 samples, with jitter); "
              "balloon_*/nv_* haemodynamic and neurovascular parameters, hrf_peak_s; region_leadfields_fczref (63 x R, "
              "V/(A m) patch means, arbitrary source scaling); connectome; ecg_r_peaks; blink_times.", "",
              "Per-subject summary:"] + [json.dumps(x) for x in summary]
    (gt / "README.txt").write_text("\n".join(readme) + "\n")
    log("done")
    return summary


if __name__ == "__main__":
    main()
