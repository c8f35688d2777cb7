"""Infraslow-potential and alpha-coherence EEG-fMRI simulator (user test 59), written without reading the package's
simulators.

Question it poses: do EEG-BOLD couplings that are NOT classical band-power envelopes reach a model?

* ``infraslow`` region (medial prefrontal sphere): BOLD follows the SIGNED potential of a slow source
  (0.01-0.1 Hz, a radial dipole under Fz/FCz), which a DC-coupled BrainVision recording sees below 0.1 Hz, on top of
  a 1/f background that extends into the infraslow band and of independent per-electrode DC offsets and Brownian
  electrode drifts (as DC-coupled amplifiers record them).
* ``coherence`` region (precuneus sphere): BOLD follows the phase-locking value (PLV, 2-s windows) between two alpha
  sources (left and right parietal dipoles) whose amplitudes are CONSTANT: their relative phase follows a von-Mises
  (Kuramoto-like) diffusion ``d(delta) = -K(t) sin(delta - lag) dt + sigma dW`` whose locking strength ``K(t)`` is a
  slow process; the locking lag is 60 +- 15 deg per subject, so zero-lag sensor covariance carries only ~cos(lag) of
  it and sensor band power stays (in expectation) near constant.
* ``beta`` region (left M1 sphere): BOLD follows the power of a left-central beta source (positive control, the
  classical envelope coupling).
* ``null`` region (right temporal sphere): BOLD follows a slow process that is nowhere in the EEG.

EEG: 32 channels of the BrainVision 10-20 cap (``standard_1020`` names), 500 Hz, float32 in uV, DC-coupled
(header says Low Cutoff DC), a forward model of point dipoles in an infinite homogeneous medium with electrodes on
the unit sphere (positions from MNE's ``standard_1020`` montage), 40 background dipoles with 1/f^1.6 spectra,
an independent occipital alpha generator with its own fluctuating power, white sensor noise, 50 Hz line noise.
Scanner markers: one ``Response/R128`` per volume (TR 2 s), 4 % of them jittered by +-1-2 samples; the EEG starts
12-20 s before the first volume and ends 8 s after the last one. No gradient/BCG artefacts (as after cleaning).

BOLD: 4 mm MNI-like grid (37 x 46 x 35), ellipsoidal brain with a smooth grey/white-like baseline (~800-1200),
regions as Gaussian blobs whose centres move 0-4 mm per subject, a double-gamma HRF of our own (peak 4.5-6.5 s,
undershoot ratio 0.1-0.35, per subject and region), percent-signal amplitudes 0.5-0.9 % per region and subject,
voxel AR(1) noise (1 %), a global 1/f signal and three smooth spatial noise components, linear + quadratic drift.

Per subject: source positions jittered (~6 mm on a 95 mm head), dipole orientations tilted, gains 0.6-1.4,
individual alpha frequency 9-11 Hz, locking lag, HRFs, region centres.

Writes BIDS: ``dataset_description.json``, ``participants.tsv``, ``sub-XX/eeg/sub-XX_task-rest_eeg.{vhdr,vmrk,eeg}``
+ ``_eeg.json``, ``_channels.tsv``, ``_events.tsv``; ``sub-XX/func/sub-XX_task-rest_bold.nii.gz`` + ``_bold.json``;
ground truth under ``OUT/derivatives/truth`` (``sub-XX_truth.npz``: the four neural drives on the volume grid,
HRF-convolved, and the noise-free region BOLD), and an atlas of the four nominal regions (8 mm spheres)
``OUT/derivatives/truth/atlas_regions.nii.gz`` + ``atlas_regions.tsv`` (BIDS ``index``/``name``).

Usage::

    python benchmarks/sim_user_infraslow.py --out /tmp/sim --seed 0 [--subjects 4] [--minutes 7] [--tr 2.0]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import mne
import nibabel as nib
import numpy as np
from scipy import signal
from scipy.stats import gamma as gamma_dist

SFREQ = 500.0
CH_NAMES = ["Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "FC5", "FC1", "FC2", "FC6", "T7", "C3", "Cz", "C4", "T8",
            "TP9", "CP5", "CP1", "CP2", "CP6", "TP10", "P7", "P3", "Pz", "P4", "P8", "PO9", "O1", "Oz", "O2", "PO10"]
# region name -> nominal centre in MNI-like mm (the driver is named by the prefix)
REGIONS = {"infraslow_mPFC": (0.0, 50.0, 12.0), "coherence_precuneus": (0.0, -60.0, 38.0),
           "beta_leftM1": (-38.0, -20.0, 55.0), "null_rightTemporal": (56.0, -20.0, -5.0)}
# source positions on the unit-sphere head (x right, y anterior, z up) and nominal orientation ("radial" or vector)
SOURCES = {"infraslow": (0.0, 0.35, 0.62), "alpha_L": (-0.45, -0.5, 0.42), "alpha_R": (0.45, -0.5, 0.42),
           "beta": (-0.42, 0.02, 0.6), "alpha_occ": (0.0, -0.75, 0.2)}
GRID_SHAPE = (37, 46, 35)
GRID_ORIGIN = (-72.0, -108.0, -52.0)
VOX = 4.0


# ----------------------------------------------------------------------------------------------------------- signals
def band_noise(rng: np.random.Generator, n: int, fs: float, lo: float, hi: float) -> np.ndarray:
    """Gaussian noise band-limited to [lo, hi] Hz (cosine-tapered edges), unit variance. Shape (n,)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / fs)
    w = np.clip((f - lo * 0.8) / (lo * 0.4 + 1e-12), 0, 1) * np.clip((hi * 1.2 - f) / (hi * 0.4), 0, 1)
    x = np.fft.irfft(spec * np.sin(w * np.pi / 2) ** 2, n)
    return (x - x.mean()) / x.std()


def pink(rng: np.random.Generator, n_series: int, n: int, fs: float, beta: float, fmin: float = 0.004) -> np.ndarray:
    """1/f^beta noise (below fmin flat), unit variance per series. Shape (n_series, n)."""
    f = np.fft.rfftfreq(n, 1.0 / fs)
    amp = 1.0 / np.maximum(f, fmin) ** (beta / 2)
    amp[0] = 0.0
    spec = (rng.standard_normal((n_series, f.size)) + 1j * rng.standard_normal((n_series, f.size))) * amp
    x = np.fft.irfft(spec, n, axis=1)
    x -= x.mean(axis=1, keepdims=True)
    return x / x.std(axis=1, keepdims=True)


def bandpass(x: np.ndarray, fs: float, lo: float | None, hi: float | None, order: int = 4) -> np.ndarray:
    """Zero-phase Butterworth (SOS) filter along the last axis."""
    if lo and hi:
        sos = signal.butter(order, [lo, hi], "bandpass", fs=fs, output="sos")
    elif lo:
        sos = signal.butter(order, lo, "highpass", fs=fs, output="sos")
    else:
        sos = signal.butter(order, hi, "lowpass", fs=fs, output="sos")
    return signal.sosfiltfilt(sos, x, axis=-1)


def hrf(t: np.ndarray, peak: float, undershoot: float) -> np.ndarray:
    """Our double-gamma HRF: a gamma bump peaking at ``peak`` s minus ``undershoot`` x a later, wider one."""
    a1 = peak / 0.9 + 1.0  # shape with mode (a1 - 1) * scale = peak at scale 0.9
    h = gamma_dist.pdf(t, a1, scale=0.9) - undershoot * gamma_dist.pdf(t, a1 + 6.0, scale=1.0)
    return h / np.abs(h).sum()


# ------------------------------------------------------------------------------------------------------- forward
def electrode_positions() -> np.ndarray:
    """Unit-sphere positions of CH_NAMES from MNE's standard_1020 montage (head frame). Shape (n_chans, 3)."""
    name = "colin27_1020" if "colin27_1020" in mne.channels.get_builtin_montages() else "standard_1020"
    pos = mne.channels.make_standard_montage(name).get_positions()["ch_pos"]
    xyz = np.array([pos[c] for c in CH_NAMES], dtype=float)
    return xyz / np.linalg.norm(xyz, axis=1, keepdims=True)


def leadfield(elec: np.ndarray, pos: np.ndarray, ori: np.ndarray) -> np.ndarray:
    """Potential of a unit dipole at ``pos`` (orientation ``ori``) at each electrode, infinite medium, average
    referenced, unit peak. Shape (n_chans,)."""
    d = elec - pos
    v = d @ ori / np.linalg.norm(d, axis=1) ** 3
    v -= v.mean()
    return v / np.abs(v).max()


def jitter_dipole(rng: np.random.Generator, p: np.ndarray, pos_sd: float = 0.06,
                  tilt_sd: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Per-subject position (unit sphere, ~6 mm SD) and radial-ish orientation with a random tilt."""
    pos = p + rng.normal(0, pos_sd, 3)
    pos *= min(1.0, 0.85 / np.linalg.norm(pos))
    ori = pos / np.linalg.norm(pos) + rng.normal(0, tilt_sd, 3)
    return pos, ori / np.linalg.norm(ori)


# ------------------------------------------------------------------------------------------------------ one subject
def simulate_subject(rng: np.random.Generator, n_vol: int, tr: float) -> dict:
    """EEG (uV), markers, drives and BOLD of one subject."""
    fs = SFREQ
    t_pre = float(rng.uniform(12, 20))
    t_post = 8.0
    n = int(round((t_pre + n_vol * tr + t_post) * fs))
    elec = electrode_positions()
    n_ch = len(CH_NAMES)

    # --- latent slow processes (0.01-0.1 Hz), one per coupling + null
    z_inf = band_noise(rng, n, fs, 0.01, 0.1)
    z_lock = band_noise(rng, n, fs, 0.01, 0.1)
    z_beta = band_noise(rng, n, fs, 0.01, 0.1)
    z_null = band_noise(rng, n, fs, 0.01, 0.1)
    z_occ = band_noise(rng, n, fs, 0.01, 0.15)

    # --- alpha pair: constant amplitude, phase difference with slow locking strength
    iaf = rng.uniform(9.0, 11.0)
    lag = np.deg2rad(rng.uniform(45.0, 75.0))
    dt = 1.0 / fs
    freq_jit = 0.3 * band_noise(rng, n, fs, 0.05, 2.0)  # slow IAF wander (Hz)
    phi1 = np.cumsum(2 * np.pi * (iaf + freq_jit) * dt) + rng.uniform(0, 2 * np.pi)
    sigma2 = 20.0  # rad^2/s: free phase diffusion decorrelates in ~0.5 s
    k_t = 45.0 / (1.0 + np.exp(-2.0 * z_lock))  # 0..45 /s ~ von Mises kappa 0..4.5
    eta = rng.standard_normal(n) * np.sqrt(sigma2 * dt)
    delta = np.empty(n)
    d = lag
    for i in range(n):  # Euler-Maruyama on the circle
        d = d - dt * k_t[i] * np.sin(d - lag) + eta[i]
        delta[i] = d
    phi2 = phi1 + delta
    alpha_l = np.cos(phi1)
    alpha_r = np.cos(phi2)
    # ground-truth coherence: PLV of the relative phase over 2-s windows
    win = int(2 * fs)
    ker = np.ones(win) / win
    plv = np.abs(np.convolve(np.exp(1j * (delta - lag)), ker, mode="same"))

    # --- beta source: envelope-modulated narrow-band noise
    beta_env = np.exp(0.55 * z_beta)
    beta_sig = band_noise(rng, n, fs, 16.0, 24.0) * beta_env
    beta_pow = bandpass(beta_sig, fs, 16.0, 24.0) ** 2

    # --- occipital alpha (independent power fluctuations) -- a distractor, as real resting alpha
    occ = band_noise(rng, n, fs, iaf - 1.5, iaf + 1.5) * np.exp(0.6 * z_occ)

    # --- scalp projection
    def src(name: str) -> np.ndarray:
        p, o = jitter_dipole(rng, np.array(SOURCES[name]))
        return leadfield(elec, p, o) * rng.uniform(0.6, 1.4)

    L = {k: src(k) for k in SOURCES}
    bg_pos = rng.normal(0, 1, (40, 3))
    bg_pos *= (rng.uniform(0.3, 0.8, 40) / np.linalg.norm(bg_pos, axis=1))[:, None]
    bg_L = np.stack([leadfield(elec, p, o / np.linalg.norm(o)) for p, o in zip(bg_pos, rng.normal(0, 1, (40, 3)))])
    bg = bg_L.T @ pink(rng, 40, n, fs, beta=1.6)  # (n_ch, n)

    def rms_band(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
        """RMS in [lo, hi] Hz; the infraslow band on a 5 Hz decimated copy."""
        if hi < 1.0:
            xd = signal.decimate(signal.decimate(x, 10, axis=-1), 10, axis=-1)
            return bandpass(xd, fs / 100, lo, hi, order=2).std(axis=-1)
        return bandpass(x, fs, lo, hi).std(axis=-1)

    bg *= 12.0 / np.median(rms_band(bg, 1.0, 30.0))  # ~12 uV background (1-30 Hz) per channel
    drift = np.cumsum(rng.standard_normal((n_ch, n)), axis=1)
    drift -= drift.mean(axis=1, keepdims=True)
    drift *= rng.uniform(10.0, 30.0, (n_ch, 1)) / drift.std(axis=1, keepdims=True)  # electrode drift, 10-30 uV
    offsets = rng.uniform(-2000.0, 2000.0, (n_ch, 1))  # DC electrode offsets (uV)

    eeg = bg + drift + offsets
    # infraslow source: SNR (in 0.01-0.1 Hz) at its peak channel set against the background there
    pk = int(np.argmax(np.abs(L["infraslow"])))
    slow_noise = rms_band((bg + drift)[pk], 0.01, 0.1)
    s_inf = z_inf * float(slow_noise) * 0.8  # source amplitude at unit leadfield peak
    eeg += np.outer(L["infraslow"], s_inf)
    eeg += np.outer(L["alpha_L"], 6.0 * np.sqrt(2) * alpha_l)  # 6 uV rms at its peak channel
    eeg += np.outer(L["alpha_R"], 6.0 * np.sqrt(2) * alpha_r)
    eeg += np.outer(L["beta"], 3.0 * beta_sig / beta_sig.std())
    eeg += np.outer(L["alpha_occ"], 8.0 * occ / occ.std())
    tt = np.arange(n) / fs
    eeg += 1.5 * np.sin(2 * np.pi * 50.0 * tt + rng.uniform(0, 6.3, (n_ch, 1)))
    eeg += rng.normal(0, 1.0, (n_ch, n))

    # --- volume markers (4 % jittered by 1-2 samples)
    onsets = t_pre + tr * np.arange(n_vol)
    samples = np.round(onsets * fs).astype(int)
    jit = rng.random(n_vol) < 0.04
    samples[jit] += rng.choice([-2, -1, 1, 2], jit.sum())

    # --- drives on a 10 Hz grid, HRF per region, sampled at acquisition middles
    q = int(fs // 10)
    def to10(x: np.ndarray) -> np.ndarray:
        return x[: (x.size // q) * q].reshape(-1, q).mean(axis=1)
    drives = {"infraslow_mPFC": to10(s_inf), "coherence_precuneus": to10(plv),
              "beta_leftM1": to10(beta_pow), "null_rightTemporal": to10(z_null)}
    t10 = (np.arange(drives["null_rightTemporal"].size) + 0.5) / 10
    th = np.arange(0, 32, 0.1)
    t_vol = onsets + tr / 2
    reg = {}
    hrf_pars = {}
    for name, x in drives.items():
        x = (x - x.mean()) / x.std()
        pk_t, us = rng.uniform(4.5, 6.5), rng.uniform(0.1, 0.35)
        hrf_pars[name] = (pk_t, us)
        c = np.convolve(x, hrf(th, pk_t, us))[: x.size]
        reg[name] = np.interp(t_vol, t10, c)
        reg[name] = (reg[name] - reg[name].mean()) / reg[name].std()
    return {"eeg": eeg.astype(np.float32), "samples": samples, "n_samples": n, "reg": reg, "iaf": iaf,
            "lag_deg": float(np.rad2deg(lag)), "hrf": hrf_pars, "t_pre": t_pre,
            "drives_tr": {k: np.interp(t_vol, t10, v) for k, v in drives.items()}}


def grid_affine() -> np.ndarray:
    aff = np.diag([VOX, VOX, VOX, 1.0])
    aff[:3, 3] = GRID_ORIGIN
    return aff


def mm_coords() -> np.ndarray:
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in GRID_SHAPE], indexing="ij"), -1).reshape(-1, 3)
    return ijk * VOX + np.array(GRID_ORIGIN)


def brain_mask(xyz: np.ndarray) -> np.ndarray:
    c, ax = np.array([0.0, -17.0, 14.0]), np.array([68.0, 86.0, 62.0])
    return (((xyz - c) / ax) ** 2).sum(1) <= 1.0


def smooth_field(rng: np.random.Generator, xyz: np.ndarray, n_blobs: int, width: float) -> np.ndarray:
    cent = rng.uniform(xyz.min(0), xyz.max(0), (n_blobs, 3))
    w = rng.normal(0, 1, n_blobs)
    return sum(wi * np.exp(-((xyz - ci) ** 2).sum(1) / (2 * width**2)) for ci, wi in zip(cent, w))


def make_bold(rng: np.random.Generator, reg: dict, n_vol: int) -> tuple[np.ndarray, dict]:
    """4D BOLD (float32) and noise-free region percent signal."""
    xyz = mm_coords()
    mask = brain_mask(xyz)
    base = np.where(mask, 1000.0 + 150 * np.tanh(smooth_field(rng, xyz, 30, 15.0)), 30.0)
    t = np.linspace(-1, 1, n_vol)
    data = np.zeros((xyz.shape[0], n_vol), dtype=np.float64)
    ib = np.where(mask)[0]
    xb = xyz[ib]
    sig = np.zeros((ib.size, n_vol))
    clean = {}
    for name, centre in REGIONS.items():
        c = np.array(centre) + rng.normal(0, 2.0, 3)
        w = np.exp(-((xb - c) ** 2).sum(1) / (2 * 6.0**2))
        amp = rng.uniform(0.5, 0.9)
        sig += np.outer(w * amp, reg[name])
        clean[name] = amp * reg[name]
    glob = pink(rng, 1, n_vol, 0.5, 1.0)[0]
    noise = 0.35 * np.outer(0.5 + rng.random(ib.size), glob)
    for _ in range(3):
        sp = smooth_field(rng, xb, 4, 25.0)
        noise += 0.3 * np.outer(sp / np.abs(sp).max(), pink(rng, 1, n_vol, 0.5, 1.0)[0])
    e = rng.normal(0, 1.0, (ib.size, n_vol))
    ar = np.empty_like(e)
    ar[:, 0] = e[:, 0]
    for k in range(1, n_vol):
        ar[:, k] = 0.3 * ar[:, k - 1] + np.sqrt(1 - 0.09) * e[:, k]
    drift = np.outer(rng.normal(0, 0.8, ib.size), t) + np.outer(rng.normal(0, 0.4, ib.size), t**2)
    pct = sig + noise + ar + drift
    data[ib] = base[ib, None] * (1 + pct / 100.0)
    out = np.where(mask[:, None], data, base[:, None] + rng.normal(0, 5.0, (xyz.shape[0], n_vol)))
    return out.reshape(*GRID_SHAPE, n_vol).astype(np.float32), clean


# ------------------------------------------------------------------------------------------------------------ writers
def write_brainvision(path: Path, eeg_uv: np.ndarray, samples: np.ndarray) -> None:
    """BrainVision triplet (float32 uV, multiplexed) with one Response/R128 marker per volume."""
    stem = path.stem
    (path.with_suffix(".eeg")).write_bytes(np.ascontiguousarray(eeg_uv.T, dtype="<f4").tobytes())
    chans = "\n".join(f"Ch{i + 1}={c},,1,µV" for i, c in enumerate(CH_NAMES))
    amp = "\n".join(f"{i + 1:<6}{c:<10}{i + 1:<14}1 µV{'':14}DC{'':15}250{'':16}Off"
                    for i, c in enumerate(CH_NAMES))
    hdr = f"""Brain Vision Data Exchange Header File Version 1.0
; Data created by sim_user_infraslow.py (user test 59)

[Common Infos]
Codepage=UTF-8
DataFile={stem}.eeg
MarkerFile={stem}.vmrk
DataFormat=BINARY
; Data orientation: MULTIPLEXED=ch1,pt1, ch2,pt1 ...
DataOrientation=MULTIPLEXED
NumberOfChannels={len(CH_NAMES)}
; Sampling interval in microseconds
SamplingInterval={int(1e6 / SFREQ)}

[Binary Infos]
BinaryFormat=IEEE_FLOAT_32

[Channel Infos]
; Each entry: Ch<Channel number>=<Name>,<Reference channel name>,
; <Resolution in "Unit">,<Unit>, Future extensions..
{chans}

[Comment]

A m p l i f i e r  S e t u p
============================
Number of channels: {len(CH_NAMES)}
Sampling Rate [Hz]: {int(SFREQ)}
Sampling Interval [µS]: {int(1e6 / SFREQ)}

Channels
--------
#     Name      Phys. Chn.    Resolution / Unit   Low Cutoff [s]   High Cutoff [Hz]   Notch [Hz]
{amp}
"""
    path.write_text(hdr, encoding="utf-8")
    mk = ["Mk1=New Segment,,1,1,0,20261208090000000000"]
    mk += [f"Mk{i + 2}=Response,R128,{s + 1},1,0" for i, s in enumerate(samples)]
    vmrk = f"""Brain Vision Data Exchange Marker File, Version 1.0

[Common Infos]
Codepage=UTF-8
DataFile={stem}.eeg

[Marker Infos]
; Each entry: Mk<Marker number>=<Type>,<Description>,<Position in data points>,
; <Size in data points>, <Channel number (0 = marker is related to all channels)>
""" + "\n".join(mk) + "\n"
    path.with_suffix(".vmrk").write_text(vmrk, encoding="utf-8")


def write_tsv(path: Path, header: list[str], rows: list[list]) -> None:
    path.write_text("\t".join(header) + "\n" + "".join("\t".join(str(v) for v in r) + "\n" for r in rows))


def write_atlas(out: Path) -> None:
    xyz = mm_coords()
    lab = np.zeros(xyz.shape[0], dtype=np.int16)
    for i, c in enumerate(REGIONS.values(), 1):
        lab[((xyz - np.array(c)) ** 2).sum(1) <= 8.0**2] = i
    nib.save(nib.Nifti1Image(lab.reshape(GRID_SHAPE), grid_affine()), out / "atlas_regions.nii.gz")
    write_tsv(out / "atlas_regions.tsv", ["index", "name"], [[i, k] for i, k in enumerate(REGIONS, 1)])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output BIDS folder (created)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ap.add_argument("--subjects", type=int, default=4)
    ap.add_argument("--minutes", type=float, default=7.0)
    ap.add_argument("--tr", type=float, default=2.0)
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=False)
    truth = out / "derivatives" / "truth"
    truth.mkdir(parents=True)
    rng = np.random.default_rng(a.seed)
    n_vol = int(round(a.minutes * 60 / a.tr))
    (out / "dataset_description.json").write_text(json.dumps(
        {"Name": "user test 59: infraslow + alpha coherence", "BIDSVersion": "1.8.0", "DatasetType": "raw"}, indent=1))
    write_tsv(out / "participants.tsv", ["participant_id", "age", "sex"],
              [[f"sub-{s + 1:02d}", int(rng.integers(20, 40)), rng.choice(["F", "M"])] for s in range(a.subjects)])
    write_atlas(truth)
    meta = {}
    for s in range(a.subjects):
        sub = f"{s + 1:02d}"
        srng = np.random.default_rng([a.seed, s])
        sim = simulate_subject(srng, n_vol, a.tr)
        eeg_dir = out / f"sub-{sub}" / "eeg"
        func = out / f"sub-{sub}" / "func"
        eeg_dir.mkdir(parents=True)
        func.mkdir(parents=True)
        stem = f"sub-{sub}_task-rest"
        write_brainvision(eeg_dir / f"{stem}_eeg.vhdr", sim["eeg"], sim["samples"])
        (eeg_dir / f"{stem}_eeg.json").write_text(json.dumps({
            "TaskName": "rest", "SamplingFrequency": SFREQ, "PowerLineFrequency": 50, "EEGReference": "FCz",
            "EEGChannelCount": len(CH_NAMES), "RecordingType": "continuous", "SoftwareFilters": "n/a",
            "HardwareFilters": {"LowCutoff": "DC", "HighCutoff": "250 Hz"},
            "RecordingDuration": sim["n_samples"] / SFREQ, "CapManufacturer": "EasyCap"}, indent=1))
        write_tsv(eeg_dir / f"{stem}_channels.tsv", ["name", "type", "units", "low_cutoff", "high_cutoff", "status"],
                  [[c, "EEG", "µV", 0, 250, "good"] for c in CH_NAMES])
        write_tsv(eeg_dir / f"{stem}_events.tsv", ["onset", "duration", "trial_type", "value", "sample"],
                  [[f"{v / SFREQ:.4f}", 0, "R128", "R128", int(v)] for v in sim["samples"]])
        bold, clean = make_bold(srng, sim["reg"], n_vol)
        img = nib.Nifti1Image(bold, grid_affine())
        img.header.set_xyzt_units("mm", "sec")
        img.header["pixdim"][4] = a.tr
        img.header.set_qform(grid_affine(), 1)
        img.header.set_sform(grid_affine(), 4)
        nib.save(img, func / f"{stem}_bold.nii.gz")
        (func / f"{stem}_bold.json").write_text(json.dumps({"TaskName": "rest", "RepetitionTime": a.tr}, indent=1))
        np.savez_compressed(truth / f"sub-{sub}_truth.npz", **{f"reg_{k}": v for k, v in sim["reg"].items()},
                            **{f"clean_{k}": v for k, v in clean.items()},
                            **{f"drive_{k}": v for k, v in sim["drives_tr"].items()},
                            volume_onsets=sim["samples"] / SFREQ)
        meta[sub] = {"iaf": sim["iaf"], "lag_deg": sim["lag_deg"], "hrf": sim["hrf"], "t_pre": sim["t_pre"]}
        print(f"sub-{sub}: {sim['n_samples'] / SFREQ:.0f} s EEG, {n_vol} volumes, IAF {sim['iaf']:.2f} Hz, "
              f"lag {sim['lag_deg']:.0f} deg", flush=True)
    (truth / "params.json").write_text(json.dumps({"seed": a.seed, "tr": a.tr, "subjects": meta}, indent=1))


if __name__ == "__main__":
    main()
