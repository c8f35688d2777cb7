"""Auditory-oddball simultaneous EEG-fMRI generator (user test 48).

Written by a user-testing helper from textbook knowledge of the paradigm (Debener et al. 2005, J Neurosci 25:11730;
Eichele et al. 2005, PNAS 102:17798: single-trial "EEG-informed fMRI"), WITHOUT reading the package's own
simulators, so that eeg2fmri is tested on data whose assumptions it was not designed from.

What it models
--------------
Task: standard (80 %) and deviant (20 %) tones, stimulus onset asynchrony jittered uniformly in 1.2-2.0 s, no
two deviants in a row.

EEG (32 scalp channels of the 10-20 system + one ECG channel, 500 Hz, BrainVision float32 in uV):

* a four-layer spherical head model fitted to the cap (``mne.make_sphere_model``) and current dipoles (``mne.make_forward_dipole``),
  placed per subject with a few mm of jitter:
  - N1 (~100 ms): two tangential auditory-cortex dipoles (supratemporal plane, pointing up/forward), giving a
    fronto-central negativity; every tone, single-trial amplitude lognormal, deviants 1.4x;
  - P3b (~350 ms, width ~110 ms): a parietal dipole pair (TPJ / posterior parietal, radial-ish, pointing up), giving a
    positive parietal maximum (Pz); deviants only (standards get 10 % of it); single-trial amplitude =
    attention(t) x lognormal(0, 0.45) with attention(t) a slow fatigue decay over the run plus a ~90-s
    fluctuation;
  - P3 latency jitter +-40 ms per trial;
* background EEG: 24 random cortical dipoles with 1/f (pink) time courses, an occipital alpha rhythm at the
  subject's individual alpha frequency (9-11.5 Hz) with slowly waxing/waning amplitude that grows a little as
  attention falls (realistic, and a slow confound), and 1 uV white sensor noise;
* eye blinks (15/min, 150-250 uV at Fp1/Fp2, decaying to F-row), more likely 300-800 ms after deviants;
* residual pulse (BCG) artefact: heart rate 60-75 bpm with variability, an ECG channel, and a per-channel residual
  template of a few uV 200-600 ms after each R peak (what remains after AAS/OBS cleaning);
* 50 Hz line noise (small);
* scanner markers ``Response/R128`` at every volume onset with +-1 sample jitter; stimulus markers
  ``Stimulus/S  1`` (standard) and ``Stimulus/S  2`` (deviant). The EEG starts 8-14 s before the first volume
  and ends ~10 s after the last one.

BOLD (MNI-like 6-mm grid, TR 2 s, float32 NIfTI, slice-time corrected to mid-acquisition: each volume samples the
continuous signal at marker + TR/2):

* regions (per subject, centres jittered +-4 mm, Gaussian profile sigma 6 mm within 12 mm, both hemispheres where
  bilateral): 1 auditory cortex (every tone x its single-trial N1 amplitude), 2 TPJ / supramarginal (deviants x
  single-trial P3 amplitude), 3 anterior cingulate (deviants: 50 % constant + 50 % single-trial P3 amplitude),
  4 control region (left DLPFC) driven by a slow random process the EEG does not see;
* region-specific double-gamma HRFs with peaks 4.5 / 6.0 / 5.5 / 6.5 s (+-0.4 s per subject), undershoot ratio
  1/6;
* per-voxel baseline ~ 600-1000, slow drift (linear + quadratic + a random cosine), physiological noise (global
  respiration/cardiac-aliased AR(1) components with smooth spatial maps) and thermal white noise.

Ground truth in ``OUT/groundtruth``: ``atlas.nii.gz`` (labels 1..4 at the nominal MNI centres, 12-mm spheres,
on the BOLD grid) + ``atlas.tsv`` (``index``/``name``), per run ``sub-XX_run-Y_regions.tsv`` (each region's
noiseless BOLD in percent signal change at every volume, and the subject's region drive), ``trials.tsv`` per run
(onset, type, true N1 and P3 amplitudes), and ``subject_regions.json`` (each subject's centres and HRF peaks).

Usage::

    python benchmarks/sim_user_oddball.py OUT --seed 0 [--subjects 4] [--runs 2] [--minutes 6] [--tr 2.0]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import mne
import nibabel as nib
import numpy as np
from scipy import signal, stats

SFREQ = 500.0
CH_NAMES = [
    "Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "FC5", "FC1", "FC2", "FC6", "T7", "C3", "Cz", "C4", "T8",
    "TP9", "CP5", "CP1", "CP2", "CP6", "TP10", "P7", "P3", "Pz", "P4", "P8", "PO9", "O1", "Oz", "O2", "PO10",
]
REGIONS = [  # name, MNI centres (one per hemisphere), HRF peak (s), signal amplitude (% signal change scale)
    ("auditory_cortex", [(-50, -22, 8), (52, -20, 8)], 4.5, 1.0),
    ("tpj_supramarginal", [(-54, -46, 28), (56, -44, 26)], 6.0, 0.8),
    ("anterior_cingulate", [(0, 22, 32)], 5.5, 0.7),
    ("control_dlpfc", [(-42, 30, 28)], 6.5, 0.8),
]
VOX = 6.0
SHAPE = (27, 33, 27)
AFFINE = np.array([[VOX, 0, 0, -78.0], [0, VOX, 0, -114.0], [0, 0, VOX, -60.0], [0, 0, 0, 1]])


def pink_noise(rng: np.random.Generator, n: int, n_series: int, exponent: float = 1.0) -> np.ndarray:
    """Unit-variance 1/f^exponent noise, shape (n_series, n)."""
    spec = rng.standard_normal((n_series, n // 2 + 1)) + 1j * rng.standard_normal((n_series, n // 2 + 1))
    f = np.fft.rfftfreq(n, 1 / SFREQ)
    f[0] = f[1]
    spec *= f ** (-exponent / 2)
    spec[:, f < 0.3] *= 0.2
    x = np.fft.irfft(spec, n)
    return x / x.std(axis=1, keepdims=True)


def double_gamma(t: np.ndarray, peak: float) -> np.ndarray:
    """Double-gamma HRF with its maximum near ``peak`` s (scale 1 s), undershoot 1/6."""
    h = stats.gamma.pdf(t, peak + 1) - stats.gamma.pdf(t, peak + 11) / 6.0
    return h / h.max()


def make_trials(rng: np.random.Generator, t_start: float, t_end: float) -> list[tuple[float, int]]:
    """Stimulus onsets (s) and types (1 standard, 2 deviant)."""
    out: list[tuple[float, int]] = []
    t = t_start
    prev = 1
    while t < t_end:
        typ = 2 if (prev == 1 and rng.random() < 0.25) else 1  # no two deviants in a row: 20 % overall
        out.append((t, typ))
        prev = typ
        t += rng.uniform(1.2, 2.0)
    return out


def erp_kernel(t: np.ndarray, latency: float, width: float) -> np.ndarray:
    """Gaussian component waveform."""
    return np.exp(-0.5 * ((t - latency) / width) ** 2)


def dipole_fields(info: mne.Info, sphere, pos_mm: np.ndarray, ori: np.ndarray) -> np.ndarray:
    """Sensor gain (n_chans, n_dipoles) in V per A*m for fixed dipoles in the 4-shell sphere fitted to the cap."""
    ori = ori / np.linalg.norm(ori, axis=1, keepdims=True)
    dip = mne.Dipole(np.zeros(len(pos_mm)), pos_mm / 1000.0, np.ones(len(pos_mm)) * 1e-8, ori, np.ones(len(pos_mm)))
    fwd, _ = mne.make_forward_dipole(dip, sphere, info, verbose=False)
    return fwd["sol"]["data"]


def head_to_sphere(rng: np.random.Generator, sphere, mni: tuple[float, float, float], jitter: float) -> np.ndarray:
    """A crude MNI -> head-frame mapping (mm): the MNI brain centre (0, -18, 15) to the sphere's centre, scaled so
    that a point 75 mm from the brain centre lies at 0.8 of the head radius."""
    p = np.asarray(mni, float) + rng.uniform(-jitter, jitter, 3) - np.array([0.0, -18.0, 15.0])
    r0 = np.asarray(sphere["r0"]) * 1000.0
    radius = float(sphere.radius) * 1000.0
    return r0 + p * (0.8 * radius / 75.0)


def simulate_run(rng, subj, run_idx, minutes, tr, info, gains, out_root, subject_params):
    n_vol = int(round(minutes * 60 / tr))
    lead = rng.uniform(8, 14)
    tail = 10.0
    dur = lead + n_vol * tr + tail
    n = int(dur * SFREQ)
    t = np.arange(n) / SFREQ
    vol_on = lead + np.arange(n_vol) * tr
    vol_samp = np.round(vol_on * SFREQ).astype(int) + rng.integers(-1, 2, n_vol)

    trials = make_trials(rng, lead + 4.0, lead + n_vol * tr - 6.0)
    onsets = np.array([o for o, _ in trials])
    types = np.array([k for _, k in trials])
    # attention: fatigue decay + ~90 s fluctuation (run-specific), in [~0.4, ~1.3]
    phase = rng.uniform(0, 2 * np.pi)
    period = rng.uniform(70, 110)

    def att(s: np.ndarray) -> np.ndarray:
        return 1.0 - 0.35 * (s - lead) / (n_vol * tr) + 0.25 * np.sin(2 * np.pi * s / period + phase)

    a_n1 = np.exp(rng.normal(0, 0.35, len(trials))) * np.where(types == 2, 1.4, 1.0)
    a_p3 = np.clip(att(onsets), 0.2, None) * np.exp(rng.normal(0, 0.45, len(trials))) * np.where(types == 2, 1.0, 0.1)
    lat_p3 = 0.35 + rng.normal(0, 0.04, len(trials))

    # source time courses (A*m)
    g_n1, g_p3, g_bg, g_alpha, g_bcg = gains
    src_n1 = np.zeros(n)
    src_p3 = np.zeros(n)
    tk = np.arange(int(0.9 * SFREQ)) / SFREQ
    for o, a1, a3, l3 in zip(onsets, a_n1, a_p3, lat_p3):
        i0 = int(o * SFREQ)
        seg = slice(i0, min(n, i0 + len(tk)))
        m = seg.stop - seg.start
        src_n1[seg] += a1 * (-erp_kernel(tk, 0.10, 0.022) + 0.5 * erp_kernel(tk, 0.19, 0.035))[:m]
        src_p3[seg] += a3 * erp_kernel(tk, l3, 0.11)[:m]
    eeg = np.outer(g_n1, src_n1) * subject_params["n1_scale"] + np.outer(g_p3, src_p3) * subject_params["p3_scale"]

    # background: pink-noise dipoles + alpha
    bg = pink_noise(rng, n, g_bg.shape[1])
    eeg += g_bg @ bg * subject_params["bg_scale"]
    iaf = subject_params["iaf"]
    b, a = signal.butter(2, [iaf - 1.0, iaf + 1.0], btype="band", fs=SFREQ)
    alpha_src = signal.filtfilt(b, a, rng.standard_normal((2, n)), axis=1)
    alpha_src /= alpha_src.std(axis=1, keepdims=True)
    env = np.exp(np.cumsum(rng.standard_normal(n)) / np.sqrt(SFREQ) * 0.35)
    env = env / env.mean()
    env *= 1.0 + 0.4 * (1.0 - np.clip(att(t), 0.2, 1.5))
    eeg += g_alpha @ (alpha_src * env) * subject_params["alpha_scale"]

    # blinks (V), more likely 0.3-0.8 s after deviants
    blink_t = list(rng.uniform(0, dur, int(15 * dur / 60)))
    blink_t += list(onsets[(types == 2) & (rng.random(len(trials)) < 0.3)] + rng.uniform(0.3, 0.8))
    blink_w = np.hanning(int(0.35 * SFREQ))
    blink = np.zeros(n)
    for bt in blink_t:
        i0 = int(bt * SFREQ)
        m = min(n, i0 + len(blink_w)) - i0
        if m > 0:
            blink[i0:i0 + m] += rng.uniform(150e-6, 250e-6) * blink_w[:m]
    blink_map = np.array([{"Fp1": 1.0, "Fp2": 1.0, "F7": 0.35, "F8": 0.35, "F3": 0.3, "F4": 0.3, "Fz": 0.3,
                           "FC1": 0.1, "FC2": 0.1}.get(c, 0.02) for c in CH_NAMES])
    eeg += np.outer(blink_map, blink)

    # residual pulse artefact + ECG channel
    hr = rng.uniform(60, 75) / 60
    beats = [rng.uniform(0, 1 / hr)]
    while beats[-1] < dur:
        beats.append(beats[-1] + (1 / hr) * (1 + 0.05 * rng.standard_normal()))
    beats = np.array(beats[:-1])
    ecg = np.zeros(n)
    bcg = np.zeros(n)
    qrs = erp_kernel(np.arange(int(0.1 * SFREQ)) / SFREQ, 0.05, 0.008)
    bcg_k = np.sin(2 * np.pi * np.arange(int(0.4 * SFREQ)) / SFREQ / 0.4) * np.hanning(int(0.4 * SFREQ))
    for bt in beats:
        i0 = int(bt * SFREQ)
        m = min(n, i0 + len(qrs)) - i0
        ecg[i0:i0 + m] += 1e-3 * qrs[:m]
        j0 = i0 + int(0.2 * SFREQ)
        m = min(n, j0 + len(bcg_k)) - j0
        if m > 0:
            bcg[j0:j0 + m] += bcg_k[:m] * (1 + 0.2 * rng.standard_normal())
    eeg += np.outer(g_bcg, bcg)
    ecg += 20e-6 * rng.standard_normal(n)

    eeg += 1e-6 * rng.standard_normal(eeg.shape)
    eeg += 0.5e-6 * np.sin(2 * np.pi * 50 * t + rng.uniform(0, 2 * np.pi))[None]
    data = np.vstack([eeg, ecg[None]])

    # --- BOLD ---
    dt = 0.1
    tf = np.arange(0, dur, dt)
    hrf_t = np.arange(0, 32, dt)
    drives = np.zeros((len(REGIONS), len(tf)))
    idx = np.clip((onsets / dt).astype(int), 0, len(tf) - 1)
    dev = types == 2
    np.add.at(drives[0], idx, a_n1)
    np.add.at(drives[1], idx[dev], a_p3[dev])
    np.add.at(drives[2], idx[dev], 0.5 * np.mean(a_p3[dev]) + 0.5 * a_p3[dev])
    ctl = signal.filtfilt(*signal.butter(2, 0.05, fs=1 / dt), rng.standard_normal(len(tf)))
    drives[3] = ctl - ctl.min()
    samp_t = vol_samp / SFREQ + tr / 2
    region_bold = np.zeros((len(REGIONS), n_vol))
    for k in range(len(REGIONS)):
        h = double_gamma(hrf_t, subject_params["hrf_peaks"][k])
        conv = np.convolve(drives[k], h)[: len(tf)] * dt
        series = np.interp(samp_t, tf, conv)
        series = (series - series.mean()) / (series.std() + 1e-12)
        region_bold[k] = series * REGIONS[k][3]  # percent signal change

    maps = subject_params["maps"]  # (k, x, y, z) in [0, 1]
    brain = subject_params["brain"]
    base = subject_params["baseline"]
    vox = np.flatnonzero(brain)
    nv = len(vox)
    signal_pct = np.einsum("kv,kt->vt", maps.reshape(len(REGIONS), -1)[:, vox], region_bold)
    tt = np.arange(n_vol) / n_vol
    drift = (rng.normal(0, 1.0, (nv, 1)) * (tt - 0.5) + rng.normal(0, 0.6, (nv, 1)) * ((tt - 0.5) ** 2 - 1 / 12)
             + rng.normal(0, 0.3, (nv, 1)) * np.cos(np.pi * tt * rng.uniform(1, 3)))
    phys = np.zeros((nv, n_vol))
    coords = np.array(np.unravel_index(vox, SHAPE)).T.astype(float)
    for _ in range(4):
        comp = signal.lfilter([1.0], [1.0, -0.7], rng.standard_normal(n_vol))
        c0 = coords[rng.integers(nv)]
        smap = np.exp(-0.5 * np.sum((coords - c0) ** 2, axis=1) / (6.0 ** 2)) + 0.3
        phys += np.outer(smap, comp) * 0.25
    thermal = rng.standard_normal((nv, n_vol)) * 0.75
    pct = signal_pct + drift + phys + thermal
    vol = np.zeros(SHAPE + (n_vol,), np.float32)
    flat = vol.reshape(-1, n_vol)
    flat[vox] = (base[vox, None] * (1 + pct / 100.0)).astype(np.float32)
    outside = np.setdiff1d(np.arange(flat.shape[0]), vox)
    flat[outside] = np.abs(rng.normal(0, 15, (len(outside), n_vol))).astype(np.float32)

    # --- write ---
    task = "oddball"
    stem = f"sub-{subj}_task-{task}_run-{run_idx}"
    eeg_dir = out_root / f"sub-{subj}" / "eeg"
    func_dir = out_root / f"sub-{subj}" / "func"
    eeg_dir.mkdir(parents=True, exist_ok=True)
    func_dir.mkdir(parents=True, exist_ok=True)
    events = [{"onset": int(s), "duration": 1, "description": 128, "type": "Response"} for s in vol_samp]
    events += [{"onset": int(round(o * SFREQ)), "duration": 1, "description": int(k), "type": "Stimulus"}
               for o, k in trials]
    events.sort(key=lambda e: e["onset"])
    from pybv import write_brainvision

    write_brainvision(data=data, sfreq=SFREQ, ch_names=CH_NAMES + ["ECG"],
                      fname_base=f"{stem}_eeg", folder_out=str(eeg_dir), events=events, unit="µV",
                      fmt="binary_float32", overwrite=True)
    with open(eeg_dir / f"{stem}_events.tsv", "w") as f:
        f.write("onset\tduration\ttrial_type\tvalue\tsample\n")
        for o, k in trials:
            s = int(round(o * SFREQ))
            f.write(f"{s / SFREQ:.4f}\t0.0\t{'standard' if k == 1 else 'deviant'}\t{k}\t{s}\n")
    with open(eeg_dir / f"{stem}_channels.tsv", "w") as f:
        f.write("name\ttype\tunits\tlow_cutoff\thigh_cutoff\tstatus\n")
        for c in CH_NAMES:
            f.write(f"{c}\tEEG\tµV\t0.016\t250\tgood\n")
        f.write("ECG\tECG\tµV\t0.016\t250\tgood\n")
    with open(eeg_dir / f"sub-{subj}_electrodes.tsv", "w") as f:
        f.write("name\tx\ty\tz\n")
        for ch in info["chs"]:
            x, y, z = ch["loc"][:3]
            f.write(f"{ch['ch_name']}\t{x:.5f}\t{y:.5f}\t{z:.5f}\n")
    (eeg_dir / f"sub-{subj}_coordsystem.json").write_text(json.dumps({
        "EEGCoordinateSystem": "CapTrak", "EEGCoordinateUnits": "m",
        "EEGCoordinateSystemDescription": "template EasyCap positions (MNE easycap-M1), head frame"}, indent=1))
    (eeg_dir / f"{stem}_eeg.json").write_text(json.dumps({
        "TaskName": task, "SamplingFrequency": SFREQ, "PowerLineFrequency": 50, "EEGReference": "FCz",
        "EEGChannelCount": len(CH_NAMES), "ECGChannelCount": 1, "RecordingDuration": dur,
        "SoftwareFilters": {"MR artefact correction": {"method": "AAS + OBS (simulated residual)"}},
        "Manufacturer": "Brain Products", "ManufacturersModelName": "BrainAmp MR plus",
        "TaskDescription": "auditory oddball, 80% standards 1000 Hz, 20% deviants 1200 Hz, SOA 1.2-2.0 s"},
        indent=1))
    img = nib.Nifti1Image(vol, AFFINE)
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = tr
    img.set_sform(AFFINE, code=4)
    img.set_qform(AFFINE, code=4)
    nib.save(img, func_dir / f"{stem}_bold.nii.gz")
    (func_dir / f"{stem}_bold.json").write_text(json.dumps({"RepetitionTime": tr, "TaskName": task,
                                                            "SliceTimingCorrected": True}, indent=1))
    gt = out_root / "groundtruth"
    with open(gt / f"sub-{subj}_run-{run_idx}_regions.tsv", "w") as f:
        f.write("volume\tonset\t" + "\t".join(r[0] for r in REGIONS) + "\n")
        for i in range(n_vol):
            f.write(f"{i}\t{vol_on[i] - lead:.3f}\t" + "\t".join(f"{v:.6f}" for v in region_bold[:, i]) + "\n")
    with open(gt / f"sub-{subj}_run-{run_idx}_trials.tsv", "w") as f:
        f.write("onset_eeg_s\ttype\tn1_amp\tp3_amp\tp3_latency\n")
        for o, k, a1, a3, l3 in zip(onsets, types, a_n1, a_p3, lat_p3):
            f.write(f"{o:.4f}\t{'standard' if k == 1 else 'deviant'}\t{a1:.4f}\t{a3:.4f}\t{l3:.4f}\n")
    return len(trials), int(dev.sum())


def region_maps(centres: list[list[np.ndarray]], sigma: float, radius: float) -> np.ndarray:
    ijk = np.array(np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij")).reshape(3, -1)
    xyz = (AFFINE[:3, :3] @ ijk + AFFINE[:3, 3:4]).T
    out = np.zeros((len(centres), int(np.prod(SHAPE))))
    for k, cs in enumerate(centres):
        for c in cs:
            d = np.linalg.norm(xyz - c, axis=1)
            out[k] = np.maximum(out[k], np.where(d <= radius, np.exp(-0.5 * (d / sigma) ** 2), 0.0))
    return out.reshape((len(centres),) + SHAPE)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--subjects", type=int, default=4)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--minutes", type=float, default=6.0)
    p.add_argument("--tr", type=float, default=2.0)
    a = p.parse_args()
    rng = np.random.default_rng(a.seed)
    out = Path(a.out)
    (out / "groundtruth").mkdir(parents=True, exist_ok=True)
    (out / "dataset_description.json").write_text(json.dumps(
        {"Name": "UT48 simulated auditory oddball EEG-fMRI", "BIDSVersion": "1.8.0", "DatasetType": "raw"}))
    (out / "participants.tsv").write_text("participant_id\n" + "".join(f"sub-{i + 1:02d}\n" for i in range(a.subjects)))

    info = mne.create_info(CH_NAMES, SFREQ, "eeg")
    info.set_montage("easycap-M1")  # EasyCap 10-20 positions (BrainCap MR-like)
    sphere = mne.make_sphere_model("auto", "auto", info, verbose=False)
    # brain mask: ellipsoid in MNI space; atlas at nominal centres
    ijk = np.array(np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij")).reshape(3, -1)
    xyz = (AFFINE[:3, :3] @ ijk + AFFINE[:3, 3:4]).T
    brain = (((xyz[:, 0]) / 70) ** 2 + ((xyz[:, 1] + 18) / 92) ** 2 + ((xyz[:, 2] - 10) / 60) ** 2) <= 1
    nominal = region_maps([[np.array(c, float) for c in r[1]] for r in REGIONS], 1e9, 12.0)
    atlas = np.zeros(SHAPE, np.int16)
    for k in range(len(REGIONS)):
        atlas[(nominal[k] > 0) & brain.reshape(SHAPE)] = k + 1
    nib.save(nib.Nifti1Image(atlas, AFFINE), out / "groundtruth" / "atlas.nii.gz")
    (out / "groundtruth" / "atlas.tsv").write_text(
        "index\tname\n" + "".join(f"{k + 1}\t{r[0]}\n" for k, r in enumerate(REGIONS)))
    subj_info = {}
    for s in range(a.subjects):
        subj = f"{s + 1:02d}"
        centres = [[np.array(c, float) + rng.uniform(-4, 4, 3) for c in r[1]] for r in REGIONS]
        maps = region_maps(centres, 6.0, 12.0) * brain.reshape(SHAPE)[None]
        # EEG sources (head frame, mm) with per-subject jitter
        ac = [head_to_sphere(rng, sphere, (-50, -22, 8), 4), head_to_sphere(rng, sphere, (52, -20, 8), 4)]
        p3 = [head_to_sphere(rng, sphere, (-30, -60, 45), 4), head_to_sphere(rng, sphere, (30, -60, 45), 4),
              head_to_sphere(rng, sphere, (0, -55, 40), 4)]
        g = dipole_fields(info, sphere, np.array(ac), np.array([[0.3, 0.3, 1.0], [-0.3, 0.3, 1.0]]))
        g_n1 = g.sum(axis=1)  # sign set so that the (negative) N1 kernel is negative at Fz
        g_n1 = g_n1 / np.abs(g_n1).max() * 6e-6 * np.sign(g_n1[CH_NAMES.index("Fz")])
        gp = dipole_fields(info, sphere, np.array(p3),
                           np.array([[0.2, -0.3, 1.0], [-0.2, -0.3, 1.0], [0.0, -0.3, 1.0]]))
        g_p3 = gp.sum(axis=1)
        g_p3 = g_p3 / np.abs(g_p3).max() * 12e-6 * np.sign(g_p3[CH_NAMES.index("Pz")])
        n_bg = 24
        bg_pos = []
        while len(bg_pos) < n_bg:  # cortex-like positions: 45-70 mm from the brain centre, not below the temporal base
            v = rng.standard_normal(3)
            v = v / np.linalg.norm(v) * rng.uniform(45, 70)
            if v[2] > -25:
                bg_pos.append(head_to_sphere(rng, sphere, tuple(v + np.array([0.0, -18.0, 15.0])), 0))
        g_bg = dipole_fields(info, sphere, np.array(bg_pos), rng.standard_normal((n_bg, 3)))
        g_bg = g_bg / np.sqrt((g_bg ** 2).sum(axis=0).mean()) * 10e-6 / np.sqrt(n_bg) * np.sqrt(len(CH_NAMES))
        alpha_pos = np.array([head_to_sphere(rng, sphere, (-15, -90, 10), 3),
                              head_to_sphere(rng, sphere, (15, -90, 10), 3)])
        g_alpha = dipole_fields(info, sphere, alpha_pos, np.array([[0.0, -0.5, 1.0], [0.0, -0.5, 1.0]]))
        g_alpha = g_alpha / np.abs(g_alpha).max() * 10e-6
        g_bcg = rng.normal(0, 3e-6, len(CH_NAMES)) + 2e-6 * np.sign(rng.standard_normal())
        params = {
            "n1_scale": float(rng.uniform(0.8, 1.2)), "p3_scale": float(rng.uniform(0.8, 1.2)),
            "bg_scale": float(rng.uniform(0.8, 1.2)), "alpha_scale": float(rng.uniform(0.6, 1.4)),
            "iaf": float(rng.uniform(9.0, 11.5)),
            "hrf_peaks": [float(r[2] + rng.uniform(-0.4, 0.4)) for r in REGIONS],
            "maps": maps, "brain": brain,
            "baseline": (rng.uniform(600, 1000) * (1 + 0.1 * rng.standard_normal(brain.size))).clip(300),
        }
        subj_info[subj] = {"centres_mm": {r[0]: [c.round(1).tolist() for c in cs] for r, cs in zip(REGIONS, centres)},
                           "hrf_peaks_s": dict(zip([r[0] for r in REGIONS], params["hrf_peaks"])),
                           "iaf_hz": params["iaf"]}
        for r in range(a.runs):
            n_tr, n_dev = simulate_run(rng, subj, r + 1, a.minutes, a.tr, info,
                                       (g_n1, g_p3, g_bg, g_alpha, g_bcg), out, params)
            print(f"sub-{subj} run-{r + 1}: {n_tr} tones, {n_dev} deviants")
    (out / "groundtruth" / "subject_regions.json").write_text(json.dumps(subj_info, indent=1))


if __name__ == "__main__":
    main()
