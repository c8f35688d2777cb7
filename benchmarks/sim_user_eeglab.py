# ruff: noqa
"""Simulate a small simultaneous EEG-fMRI study in BIDS, the way a lab using EEGLAB would hand it over.

What it generates (OUTDIR):

- 3 subjects x 2 sessions (ses-1, ses-2) x 1 run of task "rest" (~5 min each) with simultaneous EEG + BOLD,
  plus one EEG-only session (ses-3) per subject (no BOLD) for synthesis.
- EEG: EEGLAB .set + .fdt (written by hand with scipy.io.savemat in EEGLAB's format, data in uV, float32, in a
  separate .fdt), 500 Hz, 31 scalp channels of a BrainCap-MR-like 10-20 layout (recorded against FCz, which is not in
  the file) plus one ECG channel. channels.tsv types the ECG as ECG and marks one scalp channel per run "bad" (that
  channel really is noisy). The EEG starts ~10 s before the first volume. The .set holds NO events: volume onsets are
  only in the BIDS *_events.tsv (trial_type "volume"), with +-1-2 samples of jitter. Gradient/BCG artefacts are
  taken as already removed (a small ECG leak, blinks and 50 Hz line noise remain).
- BOLD: uncompressed .nii, int16 with a non-trivial scl_slope/scl_inter (chosen by nibabel), TR 1.8 s, 167 volumes,
  4 mm grid 40 x 48 x 38 in MNI152NLin2009cAsym space given as sform/qform code 4 in the raw func/ file (no
  derivative). *_bold.json has RepetitionTime and SliceTiming (interleaved ascending, 38 slices along z); the
  simulated signal of each voxel IS sampled at its slice's acquisition time.
- Ground truth (OUTDIR/groundtruth): atlas.nii.gz (int16 labels 1-4, same grid as the BOLD) + atlas.tsv
  (index/name), README.json (what drives what), and for every run (EEG-only sessions too) the true source band
  power at 10 Hz and the true noise-free region BOLD responses on the volume grid (*_truth.npz).

Generative model: EEG sources are dipoles (MNE three-shell spherical forward model, standard_1020 positions) with
band-limited oscillations whose amplitude is modulated by slow (0.01-0.12 Hz) latent drives; 24 background dipoles
carry 1/f activity. Each target region's BOLD follows the *band power* (squared Hilbert envelope, linear, not log)
of one source, convolved with a subject-specific haemodynamic response (gamma-variate peak 4.8-6.2 s with a small
late undershoot), with the coupling sign of the literature (alpha/beta power down with BOLD up, frontal theta up).
Noise elsewhere: thermal (0.9 %), AR(1) physiological (0.7 %, partly global), slow drift, a respiratory-like
0.3 Hz term aliased by the TR.

Run:  python benchmarks/sim_user_eeglab.py OUTDIR --seed N      (about 30-60 s on 2 cores)
"""
import argparse
import json
import os
import time

import numpy as np
import scipy.io
import scipy.signal as ss
import nibabel as nib
import mne

SFREQ = 500.0
TR = 1.8
N_VOL = 167
LEAD_IN = 10.0  # EEG starts ~10 s before the first volume
TAIL = 6.0
SHAPE = (40, 48, 38)
VOX = 4.0
ORIGIN = np.array([-78.0, -112.0, -70.0])  # MNI mm of voxel (0, 0, 0)

EEG_CH = ["Fp1", "Fp2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2", "F7", "F8", "T7", "T8", "P7", "P8",
          "Fz", "Cz", "Pz", "Oz", "FC1", "FC2", "CP1", "CP2", "FC5", "FC6", "CP5", "CP6", "TP9", "TP10", "POz"]
ALL_CH = EEG_CH + ["ECG"]

# target regions: label, name, MNI centres (one or two spheres), radius mm, driving source, band, coupling sign
REGIONS = [
    dict(label=1, name="occipital_bilateral", centres=[(-18, -92, 4), (20, -90, 4)], radius=11.0,
         source="occipital_alpha", band=(8.0, 12.0), sign=-1.0, gain=1.1),
    dict(label=2, name="right_precentral", centres=[(38, -20, 56)], radius=11.0,
         source="right_motor_beta", band=(15.0, 25.0), sign=-1.0, gain=0.9),
    dict(label=3, name="medial_prefrontal", centres=[(0, 40, 28)], radius=12.0,
         source="frontal_midline_theta", band=(4.5, 7.5), sign=+1.0, gain=0.8),
    dict(label=4, name="left_inferior_parietal", centres=[(-44, -60, 42)], radius=11.0,
         source="left_parietal_alpha", band=(9.0, 11.5), sign=-1.0, gain=0.9),
]
# EEG sources (MNI mm, amplitude in nAm-ish units scaled later)
SOURCES = {
    "occipital_alpha": dict(pos=[(-18, -92, 4), (20, -90, 4)], band=(8.0, 12.0), amp=3.0),
    "right_motor_beta": dict(pos=[(38, -20, 56)], band=(15.0, 25.0), amp=1.6),
    "frontal_midline_theta": dict(pos=[(0, 40, 28)], band=(4.5, 7.5), amp=1.6),
    "left_parietal_alpha": dict(pos=[(-44, -60, 42)], band=(9.0, 11.5), amp=1.8),
}


_MONT = None


def _montage():
    global _MONT
    if _MONT is None:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            _MONT = mne.channels.make_standard_montage("standard_1020")
    return _MONT


def affine():
    a = np.diag([VOX, VOX, VOX, 1.0])
    a[:3, 3] = ORIGIN
    return a


def mni_coords():
    ijk = np.indices(SHAPE).reshape(3, -1).T.astype(float)
    return (ijk * VOX + ORIGIN).reshape(SHAPE + (3,))


def brain_mask(xyz):
    c = np.array([0.0, -18.0, 14.0])
    r = np.array([68.0, 88.0, 62.0])
    d = ((xyz - c) / r) ** 2
    inside = d.sum(-1) <= 1.0
    # cut the part below the temporal lobes / cerebellum a bit
    inside &= xyz[..., 2] > -52
    return inside


def hrf(t, peak, under_ratio=0.15):
    # gamma-variate peaking at `peak` s, plus a small undershoot peaking ~10 s later
    a1 = 6.0
    b1 = peak / (a1 - 1.0)
    g1 = (t / (b1 * (a1 - 1))) ** (a1 - 1) * np.exp(-(t - b1 * (a1 - 1)) / b1)
    a2 = 12.0
    b2 = (peak + 10.0) / (a2 - 1.0)
    g2 = (t / (b2 * (a2 - 1))) ** (a2 - 1) * np.exp(-(t - b2 * (a2 - 1)) / b2)
    h = g1 - under_ratio * g2
    h[t < 0] = 0
    return h / np.abs(h).sum()


def slow_drive(rng, n, fs, lo=0.01, hi=0.12):
    x = rng.standard_normal(n + int(200 * fs))
    sos = ss.butter(2, [lo, hi], btype="band", fs=fs, output="sos")
    y = ss.sosfiltfilt(sos, x)[int(100 * fs):int(100 * fs) + n]
    return (y - y.mean()) / y.std()


def bandlimited(rng, n, band, fs):
    x = rng.standard_normal(n)
    sos = ss.butter(4, band, btype="band", fs=fs, output="sos")
    y = ss.sosfiltfilt(sos, x)
    return y / y.std()


def pink(rng, n_sig, n, fs, exponent=1.0):
    f = np.fft.rfftfreq(n, 1 / fs)
    spec = rng.standard_normal((n_sig, f.size)) + 1j * rng.standard_normal((n_sig, f.size))
    w = np.zeros_like(f)
    w[1:] = 1.0 / f[1:] ** (exponent / 2)
    w[f < 0.3] = w[f >= 0.3][0] * (f[f < 0.3] / 0.3)  # roll off below 0.3 Hz
    y = np.fft.irfft(spec * w, n=n, axis=1)
    return y / y.std(axis=1, keepdims=True)


def make_info():
    info = mne.create_info(EEG_CH, SFREQ, "eeg")
    info.set_montage(_montage())
    return info


def leadfield(rng, info, positions_mni, subj_scale):
    """Gain (n_ch, n_src) for fixed-orientation dipoles, MNE spherical forward model, FCz reference."""
    sphere = mne.make_sphere_model("auto", "auto", info, verbose=False)
    center = np.array(sphere["r0"])
    R = sphere.radius
    rr = []
    for p in positions_mni:
        v = (np.asarray(p, float) - np.array([0.0, -18.0, 18.0])) / 1000.0 * (R / 0.095) * subj_scale
        nv = np.linalg.norm(v)
        if nv > 0.82 * R:
            v *= 0.82 * R / nv
        rr.append(center + v)
    rr = np.array(rr)
    nn = rr - center
    nn /= np.linalg.norm(nn, axis=1, keepdims=True)
    # radial-ish orientation with per-subject tilt
    nn = nn + 0.35 * rng.standard_normal(nn.shape)
    nn /= np.linalg.norm(nn, axis=1, keepdims=True)
    src = mne.setup_volume_source_space(pos=dict(rr=rr, nn=nn), sphere=sphere, verbose=False)
    fwd = mne.make_forward_solution(info, trans=None, src=src, bem=sphere, eeg=True, meg=False, verbose=False)
    G = fwd["sol"]["data"]  # (n_ch, 3 * n_src), free orientation, head coords
    Gf = np.stack([G[:, 3 * i:3 * i + 3] @ nn[i] for i in range(len(rr))], axis=1)
    # re-reference to FCz (recording reference), which is not a recorded channel
    fcz = _montage().get_positions()["ch_pos"]["FCz"]
    info_ref = mne.create_info(["FCz"], SFREQ, "eeg")
    info_ref.set_montage(mne.channels.make_dig_montage(ch_pos={"FCz": fcz}, coord_frame="head"), on_missing="ignore")
    fwd_r = mne.make_forward_solution(info_ref, trans=None, src=src, bem=sphere, eeg=True, meg=False, verbose=False)
    Gr = fwd_r["sol"]["data"]
    Grf = np.array([Gr[:, 3 * i:3 * i + 3] @ nn[i] for i in range(len(rr))]).T  # (1, n_src)
    # MNE's forward applies an average reference to EEG; undo nothing, just subtract FCz's potential
    return Gf - Grf


def ecg_wave(rng, n, fs):
    t = np.arange(n) / fs
    hr = rng.uniform(58, 76) / 60.0
    beats = [rng.uniform(0, 1 / hr)]
    while beats[-1] < t[-1]:
        beats.append(beats[-1] + 1 / hr * (1 + 0.05 * rng.standard_normal() + 0.04 * np.sin(2 * np.pi * 0.25 * beats[-1])))
    sig = np.zeros(n)
    tk = np.arange(-0.3, 0.5, 1 / fs)
    qrs = (1.0 * np.exp(-(tk / 0.012) ** 2) - 0.15 * np.exp(-((tk + 0.03) / 0.01) ** 2)
           - 0.25 * np.exp(-((tk - 0.03) / 0.012) ** 2) + 0.2 * np.exp(-((tk - 0.25) / 0.05) ** 2)
           + 0.1 * np.exp(-((tk + 0.16) / 0.03) ** 2))
    for b in beats:
        i0 = int(round(b * fs)) + int(tk[0] * fs)
        lo, hi = max(i0, 0), min(i0 + tk.size, n)
        if hi > lo:
            sig[lo:hi] += qrs[lo - i0:hi - i0]
    return sig


def write_eeglab(path_set, data_uv, ch_names, ch_types, sfreq):
    """Write EEGLAB .set (MATLAB v5 struct) + .fdt (float32, channels x samples, column-major)."""
    base = os.path.basename(path_set)
    fdt = base[:-4] + ".fdt"
    data_uv = np.asarray(data_uv, np.float32)
    data_uv.T.astype("<f4").tofile(os.path.join(os.path.dirname(path_set), fdt))
    mont = _montage().get_positions()["ch_pos"]
    dt = [("labels", object), ("type", object), ("X", object), ("Y", object), ("Z", object),
          ("theta", object), ("radius", object), ("sph_theta", object), ("sph_phi", object),
          ("sph_radius", object), ("urchan", object), ("ref", object)]
    chanlocs = np.zeros((1, len(ch_names)), dtype=dt)
    for i, (nm, tp) in enumerate(zip(ch_names, ch_types)):
        if nm in mont:
            # EEGLAB's X/Y/Z: X towards the nose, Y towards the left ear (mm); MNE head frame: x right, y nose
            x, y, z = mont[nm] * 1000.0
            X, Y, Z = y, -x, z
            sph_theta = np.degrees(np.arctan2(Y, X))
            hyp = np.hypot(X, Y)
            sph_phi = np.degrees(np.arctan2(Z, hyp))
            sph_r = np.sqrt(X * X + Y * Y + Z * Z)
            theta = -sph_theta
            radius = 0.5 - sph_phi / 180.0
            vals = (nm, tp, X, Y, Z, theta, radius, sph_theta, sph_phi, sph_r, float(i + 1), "FCz")
        else:
            e = np.zeros((0, 0))
            vals = (nm, tp, e, e, e, e, e, e, e, e, float(i + 1), "FCz")
        for (k, _), v in zip(dt, vals):
            chanlocs[0, i][k] = v
    n = data_uv.shape[1]
    EEG = {
        "setname": base[:-4], "filename": base, "filepath": "", "subject": "", "group": "", "condition": "",
        "session": np.zeros((0, 0)), "comments": "simulated; gradient and BCG artefacts removed (simulated)",
        "nbchan": float(len(ch_names)), "trials": 1.0, "pnts": float(n), "srate": float(sfreq),
        "xmin": 0.0, "xmax": float((n - 1) / sfreq), "times": np.zeros((0, 0)),
        "data": fdt, "icaact": np.zeros((0, 0)), "icawinv": np.zeros((0, 0)), "icasphere": np.zeros((0, 0)),
        "icaweights": np.zeros((0, 0)), "icachansind": np.zeros((0, 0)), "chanlocs": chanlocs,
        "urchanlocs": np.zeros((0, 0)), "chaninfo": {"plotrad": np.zeros((0, 0)), "shrink": np.zeros((0, 0)),
                                                     "nosedir": "+X", "icachansind": np.zeros((0, 0))},
        "ref": "FCz", "event": np.zeros((0, 0)), "urevent": np.zeros((0, 0)), "eventdescription": np.zeros((0, 0)),
        "epoch": np.zeros((0, 0)), "epochdescription": np.zeros((0, 0)), "reject": np.zeros((0, 0)),
        "stats": np.zeros((0, 0)), "specdata": np.zeros((0, 0)), "specicaact": np.zeros((0, 0)),
        "splinefile": "", "icasplinefile": "", "dipfit": np.zeros((0, 0)), "history": "", "saved": "justloaded",
        "etc": np.zeros((0, 0)), "datfile": fdt, "run": np.zeros((0, 0)),
    }
    scipy.io.savemat(path_set, {"EEG": EEG}, format="5", oned_as="row", long_field_names=True)


def tsv(path, header, rows):
    with open(path, "w") as f:
        f.write("\t".join(header) + "\n")
        for r in rows:
            f.write("\t".join(str(x) for x in r) + "\n")


def jdump(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)


def simulate_run(rng, subj, info, G_src, G_bg, src_names, n_src_dip, hrf_peaks, n_vol, with_bold,
                 region_w, mask, xyz, S0, slice_times):
    n_eeg = int(round((LEAD_IN + n_vol * TR + TAIL) * SFREQ)) if with_bold else int(round(300.0 * SFREQ))
    t = np.arange(n_eeg) / SFREQ
    fs_d = 10.0
    n_d = int(np.ceil(n_eeg / SFREQ * fs_d)) + 1
    td = np.arange(n_d) / fs_d
    shared = slow_drive(rng, n_d, fs_d)
    src_sig = []  # per source name (may span several dipoles)
    power10 = {}
    for name in src_names:
        z = np.sqrt(0.7) * slow_drive(rng, n_d, fs_d) + np.sqrt(0.3) * shared * (1 if "alpha" in name else 0.5)
        z = (z - z.mean()) / z.std()
        amp = np.exp(0.45 * z)
        amp_t = np.interp(t, td, amp)
        carrier = bandlimited(rng, n_eeg, SOURCES[name]["band"], SFREQ)
        s = SOURCES[name]["amp"] * amp_t * carrier
        src_sig.append(s)
        env2 = np.abs(ss.hilbert(s)) ** 2
        # band power at 10 Hz: mean over 0.1 s bins
        nb = int(SFREQ / fs_d)
        m = (n_eeg // nb) * nb
        p = env2[:m].reshape(-1, nb).mean(1)
        power10[name] = np.interp(td, (np.arange(p.size) + 0.5) / fs_d, p)
    # dipole time courses
    dip = []
    for name, s in zip(src_names, src_sig):
        for _ in range(n_src_dip[name]):
            dip.append(s)
    dip = np.array(dip)
    bg = pink(rng, G_bg.shape[1], n_eeg, SFREQ) * 2.2
    eeg = G_src @ dip + G_bg @ bg  # arbitrary units -> scale to uV below
    scale = 12.0 / np.median(eeg.std(axis=1))
    eeg *= scale  # median channel SD ~12 uV before noise
    eeg += 1.5 * rng.standard_normal(eeg.shape)  # sensor noise
    # 50 Hz line noise, varying per channel
    eeg += (rng.uniform(0.3, 2.0, (eeg.shape[0], 1)) * np.sin(2 * np.pi * 50 * t + rng.uniform(0, 2 * np.pi, (eeg.shape[0], 1))))
    # blinks on frontal channels
    fp = {ch: w for ch, w in [("Fp1", 1.0), ("Fp2", 1.0), ("F7", 0.35), ("F8", 0.35), ("F3", 0.3), ("F4", 0.3), ("Fz", 0.3)]}
    blink = np.zeros(n_eeg)
    tb = 2.0
    while tb < t[-1] - 1:
        i0 = int(tb * SFREQ)
        k = np.arange(int(0.4 * SFREQ))
        blink[i0:i0 + k.size] += 90.0 * np.exp(-((k / SFREQ - 0.15) / 0.06) ** 2)[: n_eeg - i0]
        tb += rng.exponential(4.0) + 0.8
    for ch, w in fp.items():
        eeg[EEG_CH.index(ch)] += w * blink
    # residual ECG leak after BCG cleaning (a few uV) + the ECG channel itself (mV-level -> uV units)
    ecg = ecg_wave(rng, n_eeg, SFREQ)
    leak = rng.uniform(-2.0, 2.0, (eeg.shape[0], 1))
    eeg += leak * ecg
    ecg_ch = 900.0 * ecg + 20.0 * rng.standard_normal(n_eeg) + 50 * np.sin(2 * np.pi * 0.25 * t)
    # one bad channel per run: loose electrode (large drift + noise bursts)
    bad = str(rng.choice([c for c in EEG_CH if c not in ("Cz", "Pz", "Oz", "O1", "O2")]))
    bi = EEG_CH.index(bad)
    eeg[bi] += 150.0 * slow_drive(rng, n_eeg, SFREQ, 0.05, 0.5) + 25.0 * rng.standard_normal(n_eeg)
    data = np.vstack([eeg, ecg_ch[None]])
    # slow DC offsets (per channel) as in a DC-coupled MR amplifier after AAS
    data[:-1] += rng.uniform(-40, 40, (eeg.shape[0], 1))
    out = dict(data=data, bad=bad, power10=power10, td=td)
    if not with_bold:
        # truth on a hypothetical TR grid starting LEAD_IN s after the EEG start
        n_v = int((t[-1] - LEAD_IN - 20) / TR)
        onsets = LEAD_IN + np.arange(n_v) * TR
        out["onsets_true"] = onsets
        out["region_bold"] = region_responses(power10, td, hrf_peaks, onsets[:, None])[..., 0]
        return out
    # volume onsets: exact TR grid from LEAD_IN (scanner clock) + 1-2 sample jitter in the recorded markers
    onsets = LEAD_IN + rng.uniform(-0.02, 0.02) + np.arange(n_vol) * TR
    jit = rng.choice([-2, -1, 1, 2, 0, 0], size=n_vol)
    onset_samples = np.round(onsets * SFREQ).astype(int) + jit
    out["onsets_true"] = onsets
    out["onset_samples"] = onset_samples
    # BOLD: each voxel sampled at its slice time
    st = np.asarray(slice_times)  # per z slice
    tz = onsets[:, None] + st[None, :]  # (n_vol, n_z)
    reg = region_responses(power10, td, hrf_peaks, tz)  # (n_reg, n_vol, n_z)
    out["region_bold"] = region_responses(power10, td, hrf_peaks, onsets[:, None])[..., 0]
    mask_idx = np.nonzero(mask)
    nvox = mask_idx[0].size
    zi = mask_idx[2]
    sig = np.zeros((n_vol, nvox), np.float32)
    for r_i, reg_def in enumerate(REGIONS):
        w = region_w[r_i][mask_idx]
        sel = w > 0
        sig[:, sel] += (reg_def["sign"] * reg_def["gain"] * w[sel])[None, :] * reg[r_i][:, zi[sel]]
    # noise: AR(1) physiological (30 % global), thermal, drift, aliased respiration
    rho = 0.45
    e = rng.standard_normal((n_vol, nvox)).astype(np.float32)
    g = rng.standard_normal(n_vol).astype(np.float32)
    phys = np.empty_like(e)
    gl = np.empty(n_vol, np.float32)
    phys[0], gl[0] = e[0], g[0]
    for k in range(1, n_vol):
        phys[k] = rho * phys[k - 1] + np.sqrt(1 - rho ** 2) * e[k]
        gl[k] = rho * gl[k - 1] + np.sqrt(1 - rho ** 2) * g[k]
    phys = np.sqrt(0.7) * phys + np.sqrt(0.3) * gl[:, None]
    tt = onsets - onsets[0]
    drift = (np.outer(tt / tt[-1] - 0.5, rng.normal(0, 1.0, nvox)) + np.outer(np.cos(np.pi * tt / tt[-1]), rng.normal(0, 0.5, nvox)))
    resp = np.outer(np.sin(2 * np.pi * 0.3 * tt + rng.uniform(0, 6.3)), rng.uniform(0, 0.4, nvox) * (xyz[mask_idx][:, 2] < 0))
    pct = sig + 0.7 * phys + drift + resp  # percent signal change
    s0 = S0[mask_idx]
    vals = s0[None, :] * (1 + 0.01 * pct) + 0.009 * s0[None, :] * rng.standard_normal((n_vol, nvox))
    bold = np.zeros(SHAPE + (n_vol,), np.float32)
    # background: low-level noise (Rician-like magnitude), some ghosting
    bg_noise = np.abs(12.0 * rng.standard_normal(SHAPE + (n_vol,)) + 1j * 12.0 * rng.standard_normal(SHAPE + (n_vol,)))
    bold[:] = bg_noise
    bold[mask_idx[0], mask_idx[1], mask_idx[2], :] = vals.T
    out["bold"] = bold
    return out


def region_responses(power10, td, hrf_peaks, t_query):
    """Noise-free BOLD response of each region (z-scored over the run) at times t_query (n_vol, n_z)."""
    fs_d = 1.0 / (td[1] - td[0])
    th = np.arange(0, 30, 1 / fs_d)
    res = []
    for r_i, reg in enumerate(REGIONS):
        p = power10[reg["source"]]
        p = (p - p.mean()) / p.std()
        conv = np.convolve(p, hrf(th, hrf_peaks[r_i]))[: p.size]
        q = np.interp(t_query.ravel(), td, conv).reshape(t_query.shape)
        q = (q - q.mean()) / q.std()
        res.append(q)
    return np.array(res)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.time()
    rng = np.random.default_rng(args.seed)
    out = args.outdir
    os.makedirs(out, exist_ok=True)
    A = affine()
    xyz = mni_coords()
    mask = brain_mask(xyz)
    # region weights (Gaussian fall-off inside each sphere) and the atlas
    atlas = np.zeros(SHAPE, np.int16)
    region_w = []
    for reg in REGIONS:
        w = np.zeros(SHAPE)
        for c in reg["centres"]:
            d = np.linalg.norm(xyz - np.array(c, float), axis=-1)
            inside = (d <= reg["radius"]) & mask
            w = np.maximum(w, np.where(inside, np.exp(-0.5 * (d / (0.7 * reg["radius"])) ** 2), 0))
            atlas[inside] = reg["label"]
        region_w.append(w)
    # baseline intensity: smooth spatial variation, darker in "white matter" core
    d0 = np.linalg.norm((xyz - np.array([0, -18, 14])) / np.array([68, 88, 62]), axis=-1)
    slice_order = list(range(0, SHAPE[2], 2)) + list(range(1, SHAPE[2], 2))
    slice_times = np.zeros(SHAPE[2])
    for k, z in enumerate(slice_order):
        slice_times[z] = round(k * TR / SHAPE[2], 4)

    dd = {"Name": "Simulated simultaneous EEG-fMRI (EEGLAB) study", "BIDSVersion": "1.8.0", "DatasetType": "raw",
          "Authors": ["sim_user_eeglab.py"], "GeneratedBy": [{"Name": "sim_user_eeglab.py", "Description": f"seed {args.seed}"}]}
    jdump(os.path.join(out, "dataset_description.json"), dd)
    subjects = ["01", "02", "03"]
    tsv(os.path.join(out, "participants.tsv"), ["participant_id", "age", "sex"],
        [[f"sub-{s}", int(rng.integers(21, 40)), str(rng.choice(["F", "M"]))] for s in subjects])
    jdump(os.path.join(out, "participants.json"), {"age": {"Description": "age", "Units": "year"}, "sex": {"Description": "sex"}})
    jdump(os.path.join(out, "task-rest_bold.json"), {"TaskName": "rest"})
    info = make_info()
    gt_dir = os.path.join(out, "groundtruth")
    os.makedirs(gt_dir, exist_ok=True)
    gt_runs = {}
    src_names = list(SOURCES)
    n_src_dip = {k: len(v["pos"]) for k, v in SOURCES.items()}
    for s in subjects:
        srng = np.random.default_rng([args.seed, int(s)])
        positions = [p for k in src_names for p in SOURCES[k]["pos"]]
        bg_pos = []
        while len(bg_pos) < 24:
            p = srng.uniform([-65, -100, -30], [65, 65, 75])
            if brain_mask(np.asarray(p)[None, :])[0]:
                bg_pos.append(tuple(p))
        G = leadfield(srng, info, positions + bg_pos, subj_scale=srng.uniform(0.95, 1.05))
        G_src, G_bg = G[:, : len(positions)], G[:, len(positions):]
        hrf_peaks = srng.uniform(4.8, 6.2) + srng.uniform(-0.4, 0.4, len(REGIONS))
        S0 = np.where(mask, (700 + 250 * (1 - d0) + 60 * srng.standard_normal(SHAPE)) * srng.uniform(0.85, 1.2), 0)
        S0 = np.clip(S0, 200, None) * mask
        for ses in ["1", "2", "3"]:
            with_bold = ses != "3"
            rrng = np.random.default_rng([args.seed, int(s), int(ses)])
            r = simulate_run(rrng, s, info, G_src, G_bg, src_names, n_src_dip, hrf_peaks, N_VOL, with_bold,
                             region_w, mask, xyz, S0, slice_times)
            eeg_dir = os.path.join(out, f"sub-{s}", f"ses-{ses}", "eeg")
            os.makedirs(eeg_dir, exist_ok=True)
            stem = f"sub-{s}_ses-{ses}_task-rest"
            data = r["data"]
            write_eeglab(os.path.join(eeg_dir, f"{stem}_eeg.set"), data, ALL_CH, ["EEG"] * 31 + ["ECG"], SFREQ)
            rows = []
            for ch in ALL_CH:
                typ = "ECG" if ch == "ECG" else "EEG"
                status = "bad" if ch == r["bad"] else "good"
                desc = "loose electrode, high impedance" if status == "bad" else "n/a"
                rows.append([ch, typ, "uV", "0.016", "250", "FCz" if typ == "EEG" else "n/a", status, desc])
            tsv(os.path.join(eeg_dir, f"{stem}_channels.tsv"),
                ["name", "type", "units", "low_cutoff", "high_cutoff", "reference", "status", "status_description"], rows)
            jdump(os.path.join(eeg_dir, f"{stem}_eeg.json"), {
                "TaskName": "rest", "SamplingFrequency": SFREQ, "PowerLineFrequency": 50, "EEGReference": "FCz",
                "EEGGround": "AFz", "EEGChannelCount": 31, "ECGChannelCount": 1, "EOGChannelCount": 0,
                "EMGChannelCount": 0, "MiscChannelCount": 0, "TriggerChannelCount": 0,
                "RecordingDuration": round(data.shape[1] / SFREQ, 3), "RecordingType": "continuous",
                "SoftwareFilters": {"FMRIB AAS + OBS (simulated)": {"gradient": "removed", "bcg": "removed"}},
                "Manufacturer": "Brain Products", "ManufacturersModelName": "BrainAmp MR plus",
                "CapManufacturer": "EasyCap", "CapManufacturersModelName": "BrainCap MR 32",
                "EEGPlacementScheme": "10-20"})
            tsv(os.path.join(eeg_dir, f"{stem}_electrodes.tsv"), ["name", "x", "y", "z"],
                [[ch, *np.round(_montage().get_positions()["ch_pos"][ch], 5)] for ch in EEG_CH])
            jdump(os.path.join(eeg_dir, f"{stem}_coordsystem.json"),
                  {"EEGCoordinateSystem": "CapTrak", "EEGCoordinateUnits": "m"})
            rec = {"bad_channel": r["bad"], "n_eeg_samples": int(data.shape[1])}
            if with_bold:
                osamp = r["onset_samples"]
                tsv(os.path.join(eeg_dir, f"{stem}_events.tsv"), ["onset", "duration", "trial_type", "value", "sample"],
                    [[f"{o / SFREQ:.4f}", "0", "volume", "1", int(o)] for o in osamp])
                jdump(os.path.join(eeg_dir, f"{stem}_events.json"), {
                    "trial_type": {"LongName": "MR volume trigger", "Levels": {"volume": "start of an fMRI volume (scanner trigger)"}},
                    "sample": {"Description": "sample index in the EEG (0-based)"}})
                func_dir = os.path.join(out, f"sub-{s}", f"ses-{ses}", "func")
                os.makedirs(func_dir, exist_ok=True)
                img = nib.Nifti1Image(r["bold"], A)
                img.header.set_data_dtype(np.int16)
                img.header.set_xyzt_units("mm", "sec")
                img.header["pixdim"][4] = TR
                img.set_sform(A, code=4)
                img.set_qform(A, code=4)
                img.header.set_dim_info(slice=2)
                nib.save(img, os.path.join(func_dir, f"{stem}_bold.nii"))
                jdump(os.path.join(func_dir, f"{stem}_bold.json"), {
                    "TaskName": "rest", "RepetitionTime": TR, "SliceTiming": [float(x) for x in slice_times],
                    "SliceEncodingDirection": "k", "EchoTime": 0.03, "FlipAngle": 75,
                    "MagneticFieldStrength": 3, "Manufacturer": "Siemens",
                    "SpatialReference": "MNI152NLin2009cAsym (sform/qform code 4)"})
                rec.update(first_volume_onset_s=float(r["onsets_true"][0]), n_volumes=N_VOL)
                np.savez_compressed(os.path.join(gt_dir, f"{stem}_truth.npz"), region_bold_at_volumes=r["region_bold"],
                                    onsets_true=r["onsets_true"], power10_t=r["td"],
                                    **{f"power10_{k}": v for k, v in r["power10"].items()})
            else:
                rec.update(hypothetical_first_volume_onset_s=LEAD_IN, note="EEG only (no BOLD); truth on a TR grid from 10 s")
                np.savez_compressed(os.path.join(gt_dir, f"{stem}_truth.npz"), region_bold_at_volumes=r["region_bold"],
                                    onsets_true=r["onsets_true"], power10_t=r["td"],
                                    **{f"power10_{k}": v for k, v in r["power10"].items()})
            gt_runs[stem] = rec
        gt_runs[f"sub-{s}_hrf_peaks_s"] = {reg["name"]: float(p) for reg, p in zip(REGIONS, hrf_peaks)}
    a_img = nib.Nifti1Image(atlas, A)
    a_img.set_sform(A, code=4)
    a_img.set_qform(A, code=4)
    nib.save(a_img, os.path.join(gt_dir, "atlas.nii.gz"))
    tsv(os.path.join(gt_dir, "atlas.tsv"), ["index", "name"], [[r["label"], r["name"]] for r in REGIONS])
    readme = {
        "generator": "benchmarks/sim_user_eeglab.py", "seed": args.seed,
        "space": "MNI152NLin2009cAsym, sform/qform code 4, 4 mm grid %s, origin %s" % (list(SHAPE), ORIGIN.tolist()),
        "TR_s": TR, "n_volumes_per_bold_run": N_VOL, "eeg_lead_in_s": LEAD_IN, "eeg_sfreq": SFREQ,
        "bold_storage": "int16 .nii with scl_slope/scl_inter chosen by nibabel",
        "regions": [{k: v for k, v in r.items() if k not in ("centres",)} | {"centres_mni": r["centres"],
                     "drive": f"BOLD = {r['sign']:+.0f} * {r['gain']} * HRF * z(band power {r['band']} Hz of EEG source '{r['source']}') [percent signal change per SD], "
                              "Gaussian fall-off from the sphere centre, sampled at the voxel's slice time"} for r in REGIONS],
        "sources": {k: {"mni": v["pos"], "band_hz": v["band"]} for k, v in SOURCES.items()},
        "hrf": "gamma-variate (shape 6) peaking at a subject-specific time (4.8-6.2 s) + region offset (+-0.4 s), minus 0.15 x a later gamma (undershoot)",
        "noise_elsewhere": "thermal 0.9 %, AR(1) physiological 0.7 % (rho 0.45 per volume, 30 % global), linear+cosine drift ~1 %, aliased 0.3 Hz respiration in inferior slices",
        "eeg": "31 scalp + ECG, FCz reference, median scalp SD ~12 uV, 24 background 1/f dipoles, 1.5 uV sensor noise, 50 Hz line, blinks, ECG leak; one bad (noisy) scalp channel per run",
        "eeg_only_sessions": "ses-3 of each subject: EEG only (no func/, no events); truth of the BOLD it would have caused on a TR grid from 10 s",
        "runs": gt_runs,
    }
    jdump(os.path.join(gt_dir, "README.json"), readme)
    print(f"wrote {out} in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
