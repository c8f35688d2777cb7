"""User test 57: an independent simulator of simultaneous EEG-fMRI with physiological noise on both sides.

Written from scratch for a methods review ("does the package credit EEG for what is physiological noise?"); it imports
nothing from ``eeg2fmri``. Generative truth, per subject:

* a slowly varying heart rate (beats from its integrated phase, respiratory sinus arrhythmia) and a respiration belt
  signal (slowly varying rate and depth, occasional sighs);
* EEG (32 BioSemi channels, 10-20/10-10 names, 1024 Hz, BDF 24 bit written by our own writer): 1/f background,
  a posterior alpha source whose log power is a slow random process, a ballistocardiogram (BCG) artefact locked to
  every heartbeat (three damped-oscillation basis waveforms, channel patterns with a left/right polarity flip,
  beat-to-beat jitter, amplitude modulated by the respiration phase), respiration-related slow drifts and a
  breath-onset transient scaled by breath depth, 50 Hz line noise; ECG and respiration-belt channels; volume
  triggers as code 128 in the ``Status`` channel with BioSemi's "CMS in range" system bit 20 set throughout;
* BOLD (TR 2 s, 3.5 mm, 26x30x22 MNI-like box, ellipsoid brain): (a) an occipital region following
  -alpha log power convolved with the canonical HRF; (b) physiological noise: RETROICOR phase terms (cardiac and
  respiratory, 2 harmonics), heart rate convolved with the cardiac response function (Chang 2009) and respiration
  volume per time convolved with the respiration response function (Birn 2008), strongest in 'ventricles' and a
  'sagittal sinus', decaying with distance into the rest of the brain; (c) a frontal 'null' region with neither
  neural coupling nor physiological noise (thermal + AR(1) noise only);
* ground truth (regressors, weights, atlas) outside the BIDS folder; an fMRIPrep-style derivatives folder whose
  confounds file holds ``csf``, ``white_matter``, ``global_signal``, six (small) motion columns and physiological
  regressors computed from the recorded ECG/respiration (RETROICOR, HR*CRF, RVT*RRF), as a PhysIO-like toolbox
  would add them.

Usage: ``python benchmarks/sim_user_physio.py --out /tmp/ut57/data --subjects 4 --minutes 6 --seed 57``
"""
from __future__ import annotations

import argparse
import gzip
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import signal
from scipy.ndimage import distance_transform_edt, gaussian_filter

CH_NAMES = ['Fp1', 'AF3', 'F7', 'F3', 'FC1', 'FC5', 'T7', 'C3', 'CP1', 'CP5', 'P7', 'P3', 'Pz', 'PO3', 'O1', 'Oz', 'O2',
            'PO4', 'P4', 'P8', 'CP6', 'CP2', 'C4', 'T8', 'FC6', 'FC2', 'F4', 'F8', 'AF4', 'Fp2', 'Fz', 'Cz']
SHAPE = (26, 30, 22)
VOX = 3.5
TR = 2.0
SFREQ = 1024
LEAD_S = 12.0
TAIL_S = 8.0
REGIONS = {1: "alpha_occipital", 2: "null_frontal", 3: "ventricles", 4: "sagittal_sinus"}


# ----------------------------------------------------------------------------------------------------------- helpers
def ou(n: int, dt: float, tau: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance Ornstein-Uhlenbeck process sampled every ``dt`` s."""
    a = np.exp(-dt / tau)
    e = rng.standard_normal(n) * np.sqrt(1 - a * a)
    x = signal.lfilter([1.0], [1.0, -a], e)
    return (x - x.mean()) / x.std()


def pink(n_ch: int, n: int, rng: np.random.Generator, fs: float, fmin: float = 0.5) -> np.ndarray:
    """1/f noise, unit SD per channel."""
    spec = rng.standard_normal((n_ch, n // 2 + 1)) + 1j * rng.standard_normal((n_ch, n // 2 + 1))
    f = np.fft.rfftfreq(n, 1 / fs)
    spec *= 1.0 / np.sqrt(np.maximum(f, fmin))
    x = np.fft.irfft(spec, n=n, axis=1)
    return x / x.std(axis=1, keepdims=True)


def canonical_hrf(dt: float, length: float = 32.0) -> np.ndarray:
    from scipy.stats import gamma
    t = np.arange(0, length, dt)
    h = gamma.pdf(t, 6) - gamma.pdf(t, 16) / 6.0
    return h / h.sum()


def crf(dt: float, length: float = 32.0) -> np.ndarray:
    """Cardiac response function (Chang et al. 2009)."""
    t = np.arange(0, length, dt)
    return 0.6 * t ** 2.7 * np.exp(-t / 1.6) - 16.0 / np.sqrt(2 * np.pi * 9) * np.exp(-0.5 * (t - 12) ** 2 / 9)


def rrf(dt: float, length: float = 40.0) -> np.ndarray:
    """Respiration response function (Birn et al. 2008)."""
    t = np.arange(0, length, dt)
    return 0.6 * t ** 2.1 * np.exp(-t / 1.6) - 0.0023 * t ** 3.54 * np.exp(-t / 4.25)


def conv_causal(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    return np.convolve(x, h)[: len(x)]


def zs(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() + 1e-12)


# -------------------------------------------------------------------------------------------------------- BDF writer
def write_bdf(path: Path, data_phys: list[np.ndarray], labels: list[str], units: list[str], pmin: list[float],
              pmax: list[float], transducers: list[str], status: np.ndarray, sfreq: int, start="01.01.26", time="12.00.00") -> None:
    """BioSemi BDF (24 bit), 1-s data records; ``status`` is written raw (digital == physical) as channel 'Status'."""
    n = len(status)
    n_rec = int(np.ceil(n / sfreq))
    pad = n_rec * sfreq - n
    ns = len(labels) + 1
    dmin, dmax = -8388608, 8388607

    def field(s, w):
        s = str(s)[:w]
        return s.ljust(w).encode("ascii")

    def num(x, w):
        s = f"{x:.6g}" if not float(x).is_integer() else str(int(x))
        if len(s) > w:
            s = f"{x:.{w - 6}e}"
        return field(s, w)

    hdr = b"\xffBIOSEMI" + field("X X X X", 80) + field("Startdate 01-JAN-2026 X ut57 BioSemi ActiveTwo", 80)
    hdr += field(start, 8) + field(time, 8) + field(256 * (ns + 1), 8) + field("24BIT", 44) + field(n_rec, 8)
    hdr += field(1, 8) + field(ns, 4)
    labs = labels + ["Status"]
    hdr += b"".join(field(s, 16) for s in labs)
    hdr += b"".join(field(s, 80) for s in transducers + ["Triggers and Status"])
    hdr += b"".join(field(s, 8) for s in units + ["Boolean"])
    hdr += b"".join(num(v, 8) for v in pmin + [dmin])
    hdr += b"".join(num(v, 8) for v in pmax + [dmax])
    hdr += b"".join(field(dmin, 8) for _ in labs)
    hdr += b"".join(field(dmax, 8) for _ in labs)
    hdr += b"".join(field("HP:DC, LP:209 Hz" if i < len(labels) else "No filtering", 80) for i in range(ns))
    hdr += b"".join(field(sfreq, 8) for _ in labs)
    hdr += b"".join(field("", 32) for _ in labs)
    assert len(hdr) == 256 * (ns + 1)
    dig = np.empty((ns, n_rec * sfreq), dtype=np.int32)
    for i, x in enumerate(data_phys):
        gain = (dmax - dmin) / (pmax[i] - pmin[i])
        d = np.round((x - pmin[i]) * gain + dmin)
        d = np.clip(d, dmin, dmax).astype(np.int64)
        dig[i] = np.r_[d, np.full(pad, d[-1])]
    dig[-1] = np.r_[status.astype(np.int64), np.full(pad, status[-1])]
    # records: (n_rec, ns, sfreq) 24-bit little endian
    rec = dig.reshape(ns, n_rec, sfreq).transpose(1, 0, 2).astype("<i4")
    b = rec.view(np.uint8).reshape(n_rec, ns, sfreq, 4)[..., :3]
    with open(path, "wb") as f:
        f.write(hdr)
        f.write(np.ascontiguousarray(b).tobytes())


# ---------------------------------------------------------------------------------------------------------- geometry
def geometry() -> dict:
    affine = np.diag([VOX, VOX, VOX, 1.0])
    # centre of the box at MNI (0, -18, 12)
    centre_vox = (np.array(SHAPE) - 1) / 2.0
    affine[:3, 3] = np.array([0.0, -18.0, 12.0]) - VOX * centre_vox
    ijk = np.indices(SHAPE).reshape(3, -1).T
    xyz = ijk @ affine[:3, :3].T + affine[:3, 3]
    rel = xyz - np.array([0.0, -18.0, 12.0])
    brain = ((rel[:, 0] / 42) ** 2 + (rel[:, 1] / 50) ** 2 + (rel[:, 2] / 35) ** 2) <= 1.0
    labels = np.zeros(len(xyz), dtype=np.int16)

    def ell(c, r):
        return (((xyz - np.array(c)) / np.array(r)) ** 2).sum(1) <= 1.0

    labels[ell([0, -48, 8], [12, 11, 11]) & brain] = 1          # occipital alpha region
    labels[ell([20, 12, 6], [12, 12, 11]) & brain] = 2          # right frontal null region
    vent = (ell([-8, -16, 14], [5, 16, 6]) | ell([8, -16, 14], [5, 16, 6])) & brain
    labels[vent] = 3
    # superior sagittal sinus: a tube along y under the top of the ellipsoid (x~0), plus its posterior descent
    z_top = 12 + 35 * np.sqrt(np.clip(1 - (rel[:, 1] / 50) ** 2, 0, 1)) - 6
    sinus = (np.abs(xyz[:, 0]) <= 4.0) & (np.abs(xyz[:, 2] - z_top) <= 4.0) & brain & (rel[:, 1] > -45)
    labels[sinus & (labels == 0)] = 4
    lab3 = labels.reshape(SHAPE)
    src = (lab3 == 3) | (lab3 == 4)
    dist = distance_transform_edt(~src, sampling=VOX).ravel()
    w_phys = np.where(src.ravel(), 1.0, 0.2 + 0.6 * np.exp(-dist / 8.0))
    w_phys[labels == 2] = 0.0                                     # the null region: no physiology at all
    w_phys[~brain] = 0.0
    return dict(affine=affine, brain=brain, labels=labels, w_phys=w_phys, xyz=xyz)


# -------------------------------------------------------------------------------------------------------- physiology
def physiology(duration: float, rng: np.random.Generator, fs: int) -> dict:
    dt = 1.0 / fs
    n = int(round(duration * fs))
    t = np.arange(n) * dt
    # respiration: phase from a slowly varying rate, depth from a slow process with sighs
    k = 16  # compute slow processes at 16 Hz and interpolate
    ts = np.arange(0, duration + 1, 1.0 / k)
    rate_r = rng.uniform(0.24, 0.30) + 0.03 * ou(len(ts), 1 / k, 40.0, rng)
    depth = np.exp(0.28 * ou(len(ts), 1 / k, 15.0, rng))
    for c in rng.uniform(20, duration - 20, size=int(duration // 70)):  # sighs: one deep breath
        depth *= 1 + 1.2 * np.exp(-0.5 * ((ts - c) / 2.5) ** 2)
    phr_s = 2 * np.pi * np.cumsum(rate_r) / k + rng.uniform(0, 2 * np.pi)
    phr = np.interp(t, ts, phr_s)
    dep = np.interp(t, ts, depth)
    resp = dep * (np.cos(phr) + 0.25 * np.cos(2 * phr + 0.6))  # belt (arbitrary units, inhalation up)
    # heart: slow heart-rate changes + respiratory sinus arrhythmia
    hr_mean = rng.uniform(60, 74)
    hr_s = hr_mean + 4.5 * ou(len(ts), 1 / k, 25.0, rng) + 2.5 * np.interp(ts, t, np.cos(phr - 0.5) * dep) / depth.mean()
    phc_s = 2 * np.pi * np.cumsum(hr_s / 60.0) / k
    beats = np.interp(2 * np.pi * np.arange(1, int(phc_s[-1] / (2 * np.pi))), phc_s, ts)
    beats = beats[(beats > 0.5) & (beats < duration - 1.0)]
    hr = np.interp(t, ts, hr_s)
    # cardiac phase (RETROICOR: linear between R peaks)
    phc = np.interp(t, beats, 2 * np.pi * np.arange(len(beats)), left=np.nan, right=np.nan)
    phc = np.mod(np.nan_to_num(phc, nan=0.0), 2 * np.pi)
    return dict(t=t, resp=resp, phr=np.mod(phr, 2 * np.pi), depth=dep, beats=beats, hr=hr, phc=phc, hr_mean=hr_mean)


def rvt_from_belt(t: np.ndarray, resp: np.ndarray, fs: float) -> np.ndarray:
    """Respiration volume per time from the belt: peak-trough amplitude over breath period, interpolated."""
    b, a = signal.butter(2, 1.0 / (fs / 2))
    r = signal.filtfilt(b, a, resp)
    pk, _ = signal.find_peaks(r, distance=int(1.5 * fs))
    tr_, _ = signal.find_peaks(-r, distance=int(1.5 * fs))
    if len(pk) < 3 or len(tr_) < 3:
        return np.zeros_like(t)
    amp_p = np.interp(t, t[pk], r[pk])
    amp_t = np.interp(t, t[tr_], r[tr_])
    period = np.interp(t, t[pk][1:], np.diff(t[pk]))
    return (amp_p - amp_t) / period


def hr_from_ecg(t: np.ndarray, ecg: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    b, a = signal.butter(3, [5 / (fs / 2), 30 / (fs / 2)], "band")
    e = signal.filtfilt(b, a, ecg)
    pk, _ = signal.find_peaks(e, distance=int(0.4 * fs), height=0.5 * np.percentile(e, 99.5))
    tb = t[pk]
    hr = np.interp(t, tb[1:], 60.0 / np.diff(tb))
    return tb, hr


# ---------------------------------------------------------------------------------------------------------- subject
def simulate_subject(sub: str, n_vols: int, geo: dict, rng: np.random.Generator, root: Path, truth: Path, deriv: Path) -> dict:
    fs = SFREQ
    duration = LEAD_S + n_vols * TR + TAIL_S
    n = int(round(duration * fs))
    ph = physiology(duration, rng, fs)
    t = ph["t"]
    t0 = LEAD_S + rng.uniform(-2, 2)
    onsets = t0 + TR * np.arange(n_vols)
    mids = onsets + TR / 2

    # ---------------------------------------------------------------- EEG
    import mne
    mont = mne.channels.make_standard_montage("biosemi32")
    pos = np.array([mont.get_positions()["ch_pos"][c] for c in CH_NAMES])
    pos = pos / np.linalg.norm(pos, axis=1, keepdims=True)
    n_ch = len(CH_NAMES)
    eeg = 6.0 * pink(n_ch, n, rng, fs)                     # uV, channel noise
    # correlated background: 6 smooth sources
    for _ in range(6):
        c = rng.standard_normal(3)
        c /= np.linalg.norm(c)
        w = np.exp(-((pos - c) ** 2).sum(1) / (2 * 0.5 ** 2))
        eeg += 5.0 * np.outer(w, pink(1, n, rng, fs)[0])
    # alpha: posterior source, narrowband around IAF, slow log-power process
    iaf = rng.uniform(9.3, 10.7)
    k = 16
    ts = np.arange(0, duration + 1, 1.0 / k)
    la_s = 0.55 * ou(len(ts), 1 / k, 4.0, rng)               # log amplitude
    la = np.interp(t, ts, la_s)
    bb, aa = signal.butter(2, [(iaf - 0.9) / (fs / 2), (iaf + 0.9) / (fs / 2)], "band")
    carrier = signal.filtfilt(bb, aa, rng.standard_normal(n))
    carrier /= carrier.std()
    alpha_src = 9.0 * np.exp(la) * carrier
    occ = np.array([0.0, -0.93, 0.3])
    occ /= np.linalg.norm(occ)
    w_alpha = np.exp(-((pos - occ) ** 2).sum(1) / (2 * 0.45 ** 2))
    eeg += np.outer(w_alpha, alpha_src)
    # BCG: 3 basis waveforms per beat, channel patterns with left/right polarity flip
    L = int(0.8 * fs)
    tt = np.arange(L) / fs
    basis = np.stack([np.exp(-tt / 0.12) * np.sin(2 * np.pi * 4.0 * tt),
                      np.exp(-tt / 0.08) * np.sin(2 * np.pi * 7.0 * tt + 1.0),
                      np.exp(-tt / 0.25) * np.sin(2 * np.pi * 1.8 * tt + 0.3)])
    basis /= np.abs(basis).max(1, keepdims=True)
    lateral = pos[:, 0]
    W_bcg = np.stack([35 * lateral + 10 * rng.standard_normal(n_ch),
                      20 * np.abs(lateral) + 15 * pos[:, 1] + 6 * rng.standard_normal(n_ch),
                      25 * (0.6 - pos[:, 2]) * np.sign(lateral + 1e-3) + 6 * rng.standard_normal(n_ch)], axis=1)
    bcg = np.zeros((3, n))
    delay = int(0.21 * fs)
    resp_mod = np.interp(ph["beats"], t, np.cos(ph["phr"]))
    for j, b in enumerate(ph["beats"]):
        s = int(round(b * fs)) + delay
        if s + L > n:
            continue
        amp = (1 + 0.15 * resp_mod[j]) * (1 + 0.12 * rng.standard_normal())
        for q in range(3):
            bcg[q, s:s + L] += amp * (1 + 0.15 * rng.standard_normal()) * basis[q]
    eeg += W_bcg @ bcg
    # respiration-related artefacts: slow drift with the belt, plus a breath-onset transient scaled by depth
    w_drift = 30 * (0.3 + np.abs(lateral)) * (1 + 0.3 * rng.standard_normal(n_ch))
    eeg += np.outer(w_drift, ph["resp"] - ph["resp"].mean())
    onsets_breath = np.where(np.diff((ph["phr"] > np.pi).astype(int)) < 0)[0]  # phase wraps: start of inhalation
    Lb = int(1.0 * fs)
    tb = np.arange(Lb) / fs
    bw = np.exp(-tb / 0.25) * np.sin(2 * np.pi * 1.5 * tb)
    trans = np.zeros(n)
    for s in onsets_breath:
        if s + Lb < n:
            trans[s:s + Lb] += ph["depth"][s] ** 1.5 * bw
    w_trans = 25 * (0.5 + pos[:, 1] * 0.0 + np.abs(lateral)) * np.sign(rng.standard_normal(n_ch) + 0.5)
    eeg += np.outer(w_trans, trans)
    eeg += 1.5 * np.sin(2 * np.pi * 50 * t + rng.uniform(0, 6.28))[None, :]
    # ECG channel (uV): PQRST per beat, resp baseline wander, noise
    ecg = 40 * rng.standard_normal(n) * 0.3
    for b in ph["beats"]:
        for off, wid, amp in ((-0.16, 0.025, 120), (0.0, 0.008, 1100), (0.03, 0.01, -250), (0.26, 0.045, 300)):
            c = int(round((b + off) * fs))
            lo, hi = max(c - int(4 * wid * fs), 0), min(c + int(4 * wid * fs), n)
            ecg[lo:hi] += amp * np.exp(-0.5 * ((np.arange(lo, hi) / fs - (b + off)) / wid) ** 2)
    ecg += 80 * (ph["resp"] - ph["resp"].mean())
    resp_ch = 2000.0 * ph["resp"] + 30 * rng.standard_normal(n)
    # Status: system bit 20 (CMS in range) always set, volume trigger code 128 for 10 ms at each onset
    status = np.full(n, 1 << 20, dtype=np.int64)
    for o in onsets:
        s = int(round(o * fs))
        status[s:s + 10] |= 128
    eeg_dir = root / f"sub-{sub}" / "eeg"
    eeg_dir.mkdir(parents=True, exist_ok=True)
    stem = f"sub-{sub}_task-rest"
    labels = CH_NAMES + ["ECG", "Resp"]
    data = [eeg[i] for i in range(n_ch)] + [ecg, resp_ch]
    write_bdf(eeg_dir / f"{stem}_eeg.bdf", data, labels, ["uV"] * (n_ch + 2), [-262144.0] * (n_ch + 2),
              [262143.0] * (n_ch + 2), ["Active Electrode"] * n_ch + ["Flat Active Electrode", "Respiration Belt"], status, fs)
    (eeg_dir / f"{stem}_eeg.json").write_text(json.dumps(dict(
        TaskName="rest", SamplingFrequency=fs, PowerLineFrequency=50, EEGReference="CMS/DRL", SoftwareFilters="n/a",
        EEGChannelCount=n_ch, ECGChannelCount=1, MiscChannelCount=1, TriggerChannelCount=1, RecordingDuration=duration,
        Manufacturer="BioSemi", ManufacturersModelName="ActiveTwo MR-compatible (simulated)", RecordingType="continuous",
        EEGPlacementScheme="10-20 (BioSemi 32)"), indent=1))
    rows = ["name\ttype\tunits\tstatus"] + [f"{c}\tEEG\tuV\tgood" for c in CH_NAMES] + ["ECG\tECG\tuV\tgood", "Resp\tRESP\tuV\tgood", "Status\tTRIG\tn/a\tgood"]
    (eeg_dir / f"{stem}_channels.tsv").write_text("\n".join(rows) + "\n")

    # ---------------------------------------------------------------- physiological regressors (truth and as recorded)
    dtk = 1.0 / k
    hr_k = np.interp(ts, t, ph["hr"])
    rvt_true = rvt_from_belt(t, ph["resp"], fs)
    rvt_k = np.interp(ts, t, rvt_true)
    hr_crf = conv_causal(hr_k - hr_k.mean(), crf(dtk) * dtk)
    rvt_rrf = conv_causal(rvt_k - rvt_k.mean(), rrf(dtk) * dtk)
    alpha_pow = 2 * la_s                                      # log power of the alpha source
    alpha_bold = conv_causal(alpha_pow - alpha_pow.mean(), canonical_hrf(dtk))
    at = lambda x: np.interp(mids, ts, x)  # noqa: E731
    reg = dict(hr_crf=zs(at(hr_crf)), rvt_rrf=zs(at(rvt_rrf)), alpha=zs(at(alpha_bold)))
    phc_v = np.interp(mids, t, np.unwrap(ph["phc"]))
    phr_v = np.interp(mids, t, np.unwrap(ph["phr"]))
    ret = np.stack([np.cos(phc_v), np.sin(phc_v), np.cos(2 * phc_v), np.sin(2 * phc_v),
                    np.cos(phr_v), np.sin(phr_v), np.cos(2 * phr_v), np.sin(2 * phr_v)], 1)

    # ---------------------------------------------------------------- BOLD (percent signal change)
    V = int(geo["brain"].sum())
    bi = np.where(geo["brain"])[0]
    lab = geo["labels"][bi]
    wp = geo["w_phys"][bi]
    # voxel-specific physio loadings: smooth random fields
    def field3(scale):
        f = np.zeros(np.prod(SHAPE))
        f3 = gaussian_filter(rng.standard_normal(SHAPE), 1.2)
        f[:] = (f3 / f3.std()).ravel()
        return f[bi] * scale
    b_hr = 1.0 * (0.8 + 0.3 * field3(1.0))
    b_rvt = 1.2 * (0.8 + 0.3 * field3(1.0))
    b_ret = np.stack([field3(1.0) for _ in range(8)], 1) * 0.45
    phys = wp[:, None] * (b_hr[:, None] * reg["hr_crf"][None] + b_rvt[:, None] * reg["rvt_rrf"][None]
                          + b_ret @ ret.T)                  # (V, T) in %
    neural = np.zeros((V, n_vols))
    neural[lab == 1] = -0.9 * reg["alpha"][None]
    # AR(1) noise (spatially smooth) + thermal
    ar = np.zeros((n_vols,) + SHAPE)
    e = rng.standard_normal((n_vols,) + SHAPE)
    for i in range(n_vols):
        e[i] = gaussian_filter(e[i], 0.8)
    e /= e.std()
    for i in range(n_vols):
        ar[i] = (0.5 * ar[i - 1] if i else 0) + np.sqrt(1 - 0.25) * e[i]
    arv = ar.reshape(n_vols, -1)[:, bi].T * 0.5
    thermal = 0.8 * rng.standard_normal((V, n_vols))
    drift = np.outer(rng.standard_normal(V) * 0.3, np.linspace(-1, 1, n_vols))
    pct = neural + phys + arv + thermal + drift
    base = np.where(lab == 3, 1500.0, 900.0) + 60 * field3(1.0)
    vol = np.zeros((np.prod(SHAPE), n_vols), dtype=np.float32)
    vol[:] = 15.0 + 5.0 * np.abs(rng.standard_normal((np.prod(SHAPE), 1)))
    vol[bi] = base[:, None] * (1 + pct / 100.0)
    img4 = vol.reshape(SHAPE + (n_vols,))
    img = nib.Nifti1Image(img4, geo["affine"])
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = TR
    img.set_sform(geo["affine"], code=4)
    img.set_qform(geo["affine"], code=4)
    func = root / f"sub-{sub}" / "func"
    func.mkdir(parents=True, exist_ok=True)
    nib.save(img, func / f"{stem}_bold.nii.gz")
    (func / f"{stem}_bold.json").write_text(json.dumps(dict(TaskName="rest", RepetitionTime=TR), indent=1))
    # BIDS physio beside the BOLD (cardiac, respiratory, trigger) at the EEG rate, starting at the first volume
    s0 = int(round(t0 * fs))
    s1 = int(round((t0 + n_vols * TR) * fs))
    trig = np.zeros(n, dtype=int)
    for o in onsets:
        trig[int(round(o * fs))] = 1
    with gzip.open(func / f"{stem}_physio.tsv.gz", "wt") as f:
        for i in range(s0, s1, 4):  # 256 Hz
            f.write(f"{ecg[i]:.2f}\t{resp_ch[i]:.2f}\t{trig[i]}\n")
    (func / f"{stem}_physio.json").write_text(json.dumps(dict(SamplingFrequency=fs / 4, StartTime=0.0,
                                                              Columns=["cardiac", "respiratory", "trigger"]), indent=1))

    # ---------------------------------------------------------------- fMRIPrep-style derivatives with physio confounds
    fd = deriv / f"sub-{sub}" / "func"
    fd.mkdir(parents=True, exist_ok=True)
    shutil.copy(func / f"{stem}_bold.nii.gz", fd / f"{stem}_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz")
    (fd / f"{stem}_space-MNI152NLin2009cAsym_desc-preproc_bold.json").write_text(json.dumps(dict(RepetitionTime=TR, TaskName="rest")))
    # physio regressors "as recorded": from the ECG channel's R peaks and the belt, as a PhysIO-like tool computes them
    tb_rec, hr_rec = hr_from_ecg(t, ecg, fs)
    phc_rec = np.interp(mids, tb_rec, 2 * np.pi * np.arange(len(tb_rec)))
    hr_rec_k = np.interp(ts, t, hr_rec)
    rvt_rec_k = np.interp(ts, t, rvt_from_belt(t, resp_ch, fs))
    hrc = zs(at(conv_causal(hr_rec_k - hr_rec_k.mean(), crf(dtk) * dtk)))
    rvc = zs(at(conv_causal(rvt_rec_k - rvt_rec_k.mean(), rrf(dtk) * dtk)))
    resp_f = signal.filtfilt(*signal.butter(2, 1.0 / (fs / 2)), resp_ch)
    phr_rec = np.interp(mids, t, np.unwrap(np.angle(signal.hilbert(resp_f - resp_f.mean()))))
    mean_in = lambda m: vol[bi][m].mean(0)  # noqa: E731
    cols = dict(global_signal=vol[bi].mean(0), csf=mean_in(lab == 3),
                white_matter=mean_in((wp < 0.3) & (lab == 0)),
                **{c: 0.01 * np.cumsum(rng.standard_normal(n_vols)) * 0.1 for c in ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")},
                hr_crf=hrc, rvt_rrf=rvc,
                retroicor_c1_cos=np.cos(phc_rec), retroicor_c1_sin=np.sin(phc_rec),
                retroicor_c2_cos=np.cos(2 * phc_rec), retroicor_c2_sin=np.sin(2 * phc_rec),
                retroicor_r1_cos=np.cos(phr_rec), retroicor_r1_sin=np.sin(phr_rec),
                retroicor_r2_cos=np.cos(2 * phr_rec), retroicor_r2_sin=np.sin(2 * phr_rec))
    names = list(cols)
    with open(fd / f"{stem}_desc-confounds_timeseries.tsv", "w") as f:
        f.write("\t".join(names) + "\n")
        for i in range(n_vols):
            f.write("\t".join(f"{cols[c][i]:.6f}" for c in names) + "\n")

    # ---------------------------------------------------------------- truth (outside BIDS)
    np.savez_compressed(truth / f"sub-{sub}_truth.npz", onsets=onsets, mids=mids, hr_crf=reg["hr_crf"], rvt_rrf=reg["rvt_rrf"],
                        alpha_bold=reg["alpha"], retroicor=ret, beats=ph["beats"], hr_mean=ph["hr_mean"], iaf=iaf,
                        brain_index=bi, labels=lab, w_phys=wp, neural_pct=neural.astype(np.float32),
                        phys_pct=phys.astype(np.float32), noise_pct=(arv + thermal).astype(np.float32),
                        hr_crf_recorded=hrc, rvt_rrf_recorded=rvc,
                        alpha_logpow_16hz=alpha_pow.astype(np.float32), hr_16hz=hr_k.astype(np.float32),
                        rvt_16hz=rvt_k.astype(np.float32))
    # variance shares per region
    out = {}
    for L_, name in REGIONS.items():
        m = lab == L_
        out[name] = dict(n_vox=int(m.sum()), sd_neural=float(neural[m].std(1).mean()), sd_phys=float(phys[m].std(1).mean()),
                         sd_noise=float((arv + thermal)[m].std(1).mean()))
    m = lab == 0
    out["rest_of_brain"] = dict(n_vox=int(m.sum()), sd_neural=0.0, sd_phys=float(phys[m].std(1).mean()),
                                sd_noise=float((arv + thermal)[m].std(1).mean()))
    out["n_beats"] = int(len(ph["beats"]))
    out["hr_mean_bpm"] = float(ph["hr_mean"])
    out["t0"] = float(t0)
    out["corr_hrcrf_rvtrrf"] = float(np.corrcoef(reg["hr_crf"], reg["rvt_rrf"])[0, 1])
    out["corr_alpha_hrcrf"] = float(np.corrcoef(reg["alpha"], reg["hr_crf"])[0, 1])
    out["corr_alpha_rvtrrf"] = float(np.corrcoef(reg["alpha"], reg["rvt_rrf"])[0, 1])
    out["corr_recorded_vs_true_hrcrf"] = float(np.corrcoef(hrc, reg["hr_crf"])[0, 1])
    out["corr_recorded_vs_true_rvtrrf"] = float(np.corrcoef(rvc, reg["rvt_rrf"])[0, 1])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--subjects", type=int, default=4)
    ap.add_argument("--minutes", type=float, default=6.0)
    ap.add_argument("--seed", type=int, default=57)
    a = ap.parse_args()
    out = Path(a.out)
    root, truth, deriv = out / "bids", out / "truth", out / "fmriprep"
    for p in (root, truth, deriv):
        p.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(json.dumps(dict(Name="ut57 physio", BIDSVersion="1.9.0", DatasetType="raw")))
    (deriv / "dataset_description.json").write_text(json.dumps(dict(Name="fMRIPrep (simulated)", BIDSVersion="1.9.0", DatasetType="derivative",
                                                                   GeneratedBy=[{"Name": "fMRIPrep", "Version": "23.2.0"}])))
    geo = geometry()
    lab3 = geo["labels"].reshape(SHAPE)
    nib.save(nib.Nifti1Image(lab3.astype(np.int16), geo["affine"]), truth / "atlas.nii.gz")
    (truth / "atlas.tsv").write_text("index\tname\n" + "".join(f"{k}\t{v}\n" for k, v in REGIONS.items()))
    nib.save(nib.Nifti1Image(geo["w_phys"].reshape(SHAPE).astype(np.float32), geo["affine"]), truth / "physio_weight.nii.gz")
    n_vols = int(round(a.minutes * 60 / TR))
    subs = [f"{i + 1:02d}" for i in range(a.subjects)]
    (root / "participants.tsv").write_text("participant_id\n" + "".join(f"sub-{s}\n" for s in subs))
    summary = {}
    for i, s in enumerate(subs):
        rng = np.random.default_rng([a.seed, i])
        summary[s] = simulate_subject(s, n_vols, geo, rng, root, truth, deriv)
        print(s, json.dumps(summary[s]))
    (truth / "summary.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
