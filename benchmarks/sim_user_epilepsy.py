"""User-test generator (user test 45): interictal-epileptic-discharge (IED) EEG-fMRI in focal epilepsy.

Written by a user-testing helper without reading the package's simulators. Each subject has its own
epileptic focus (a different lobe) emitting spike-and-slow-wave IEDs as a clustered Poisson process,
seen on the EEG through a smooth dipole lead field of our own, plus 1/f background, posterior alpha,
blinks (EOG) and ECG. BOLD (TR 2.5 s, 5 mm oblique grid) responds to every IED in the focus with a
positive HRF (and, in some subjects, a small negative response in the default-mode network); every
other voxel is noise + drift + motion spikes.

Usage::

    python benchmarks/sim_user_epilepsy.py OUT --seed 0 [--subjects 4] [--minutes 10]

Writes a BIDS dataset (``sub-XX/ses-01/{eeg,func}``; ``sub-01/ses-02/eeg`` EEG only, no BOLD) and
``OUT/groundtruth`` (atlas + names, per-subject focus masks, true noiseless ROI BOLD per volume, true
IED times, parameters).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import mne
import nibabel as nib
import numpy as np
import pybv
from scipy.signal import lfilter
from scipy.stats import gamma as gamma_dist

SFREQ = 500.0
TR = 2.5
VOX = 5.0
SHAPE = (34, 40, 32)
CH_NAMES = ["Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "FC5", "FC1", "FC2", "FC6", "T7", "C3", "Cz",
            "C4", "T8", "CP5", "CP1", "CP2", "CP6", "P7", "P3", "Pz", "P4", "P8", "O1", "Oz", "O2",
            "FT9", "FT10", "TP9", "TP10"]
# regions of the atlas: name -> MNI centre (mm)
REGIONS = {
    "L_temporal": (-55.0, -15.0, -15.0),
    "R_temporal": (55.0, -15.0, -15.0),
    "L_frontal": (-38.0, 35.0, 30.0),
    "R_frontal": (38.0, 35.0, 30.0),
    "L_parietal": (-40.0, -55.0, 45.0),
    "R_parietal": (40.0, -55.0, 45.0),
    "L_occipital": (-25.0, -88.0, 5.0),
    "R_occipital": (25.0, -88.0, 5.0),
    "DMN_PCC": (0.0, -55.0, 28.0),
    "DMN_mPFC": (0.0, 50.0, 5.0),
}
ROI_RADIUS = 14.0
FOCI = {"01": "L_temporal", "02": "R_frontal", "03": "L_parietal", "04": "R_occipital"}
DMN_NEG = {"01": 0.0, "02": -0.35, "03": 0.0, "04": -0.3}   # relative to the focus amplitude


def make_affine() -> np.ndarray:
    ang = np.deg2rad(12.0)   # oblique: pitched about x
    rot = np.array([[1, 0, 0], [0, np.cos(ang), -np.sin(ang)], [0, np.sin(ang), np.cos(ang)]])
    a = np.eye(4)
    a[:3, :3] = rot * VOX
    centre_vox = (np.array(SHAPE) - 1) / 2
    a[:3, 3] = np.array([0.0, -18.0, 12.0]) - a[:3, :3] @ centre_vox
    return a


def world_coords(affine: np.ndarray) -> np.ndarray:
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij"), -1).reshape(-1, 3)
    return (ijk @ affine[:3, :3].T + affine[:3, 3]).reshape(*SHAPE, 3)


def brain_mask(xyz: np.ndarray) -> np.ndarray:
    c = np.array([0.0, -18.0, 12.0])
    r = np.array([68.0, 88.0, 62.0])
    return (((xyz - c) / r) ** 2).sum(-1) <= 1.0


def hrf(t: np.ndarray, peak: float = 6.0, under: float = 16.0, ratio: float = 1 / 6) -> np.ndarray:
    h = gamma_dist.pdf(t, peak) - ratio * gamma_dist.pdf(t, under)
    return h / h.max()


def pink(rng: np.random.Generator, n: int, n_sig: int, exponent: float = 1.0) -> np.ndarray:
    f = np.fft.rfftfreq(n, 1 / SFREQ)
    spec = rng.standard_normal((n_sig, f.size)) + 1j * rng.standard_normal((n_sig, f.size))
    scale = np.where(f > 0.5, f, 0.5) ** (-exponent / 2)
    x = np.fft.irfft(spec * scale, n=n, axis=-1)
    return x / x.std(axis=-1, keepdims=True)


def electrode_positions() -> np.ndarray:
    mont = mne.channels.make_standard_montage("colin27_1020" if "colin27_1020" in mne.channels.get_builtin_montages() else "standard_1020")
    pos = mont.get_positions()["ch_pos"]
    p = np.array([pos[c] for c in CH_NAMES])
    centre = p.mean(0) * np.array([1, 1, 0]) + np.array([0, 0, p[:, 2].min()])
    return p - centre   # roughly sphere-centred head frame, metres


def source_position(mni: tuple[float, float, float]) -> np.ndarray:
    v = np.array(mni) - np.array([0.0, -18.0, 0.0])
    return v / np.linalg.norm(v) * 0.062   # 62 mm from the head centre, direction of the region


def lead_field(src: np.ndarray, elec: np.ndarray) -> np.ndarray:
    """Smooth potential of a radial dipole in an infinite medium (our own forward model), average ref."""
    d = src / np.linalg.norm(src)
    diff = elec - src
    dist = np.linalg.norm(diff, axis=1)
    v = (diff @ d) / dist ** 3
    v = v - v.mean()
    return v / np.abs(v).max()


def ied_times(rng: np.random.Generator, dur: float, rate_per_min: float) -> np.ndarray:
    """Clustered Poisson: burst onsets, each 1-6 IEDs ~0.6-2 s apart; mean rate rate_per_min."""
    mean_burst = 2.5
    n_burst = rng.poisson(rate_per_min / mean_burst * dur / 60)
    starts = np.sort(rng.uniform(2.0, dur - 5.0, n_burst))
    times = []
    for s in starts:
        k = 1 + rng.poisson(mean_burst - 1)
        t = s + np.cumsum(np.r_[0, rng.uniform(0.6, 2.0, k - 1)])
        times.extend(t[t < dur - 1])
    t = np.sort(np.array(times))
    keep = np.r_[True, np.diff(t) > 0.45]
    return t[keep]


def ied_waveform(rng: np.random.Generator) -> np.ndarray:
    spike_ms = rng.uniform(20, 70)
    slow_ms = rng.uniform(200, 400)
    n_sp = int(spike_ms / 1000 * SFREQ)
    n_sl = int(slow_ms / 1000 * SFREQ)
    spike = -np.bartlett(n_sp + 2)[1:-1]                       # sharp negative spike
    slow = 0.45 * np.sin(np.pi * np.arange(n_sl) / n_sl)        # positive slow wave
    pre = 0.15 * np.sin(np.pi * np.arange(n_sp // 2) / max(n_sp // 2, 1))
    return np.r_[pre, spike, slow]


def simulate_eeg(rng, dur, elec, focus_name, rate, with_ieds=True):
    n = int(round(dur * SFREQ))
    n_ch = len(CH_NAMES)
    # background: 20 random cortical sources with 1/f activity
    dirs = rng.standard_normal((20, 3))
    dirs[:, 2] = np.abs(dirs[:, 2]) + 0.3
    srcs = dirs / np.linalg.norm(dirs, axis=1, keepdims=True) * 0.06
    L = np.stack([lead_field(s, elec) for s in srcs], 1)
    bg = L @ pink(rng, n, 20) * 12e-6
    # posterior alpha (~10 Hz, waxing/waning)
    f_a = rng.uniform(9, 11)
    t = np.arange(n) / SFREQ
    env = np.exp(0.6 * pink(rng, n, 1, 2.0)[0])
    env = np.convolve(env, np.ones(250) / 250, mode="same")
    alpha = env * np.sin(2 * np.pi * f_a * t + 0.3 * np.cumsum(rng.standard_normal(n)) / np.sqrt(SFREQ))
    la = lead_field(np.array([0.0, -0.055, 0.03]), elec)
    bg += np.outer(la, alpha) * 10e-6
    bg += rng.standard_normal((n_ch, n)) * 2e-6
    # IEDs
    times = ied_times(rng, dur, rate) if with_ieds else np.array([])
    amps = np.exp(rng.normal(0, 0.3, times.size))
    drive = np.zeros(n)
    for ti, a in zip(times, amps):
        w = ied_waveform(rng) * a
        i0 = int(ti * SFREQ)
        drive[i0:i0 + w.size] += w[: n - i0]
    lf = lead_field(source_position(REGIONS[focus_name]), elec)
    eeg = bg + np.outer(lf, drive) * rng.uniform(150e-6, 220e-6)
    # blinks on Fp1/Fp2 (+ F7/F8 leak) and EOG channel
    blink = np.zeros(n)
    for bt in np.sort(rng.uniform(0, dur - 1, int(dur / 60 * rng.uniform(8, 18)))):
        i0 = int(bt * SFREQ)
        w = np.hanning(int(0.35 * SFREQ))
        blink[i0:i0 + w.size] += w[: n - i0]
    leak = np.zeros(n_ch)
    for c, g in {"Fp1": 1.0, "Fp2": 1.0, "F7": 0.35, "F8": 0.35, "F3": 0.3, "F4": 0.3, "Fz": 0.3}.items():
        leak[CH_NAMES.index(c)] = g
    eeg += np.outer(leak, blink) * 120e-6
    eog = blink * 250e-6 + rng.standard_normal(n) * 5e-6
    # ECG
    hr = rng.uniform(1.0, 1.3)
    beats = np.cumsum(rng.normal(1 / hr, 0.04, int(dur * hr * 1.2)))
    ecg = np.zeros(n)
    qrs = np.r_[-0.1 * np.hanning(10), np.hanning(16), -0.25 * np.hanning(12)]
    for b in beats[beats < dur - 0.1]:
        i0 = int(b * SFREQ)
        ecg[i0:i0 + qrs.size] += qrs[: n - i0]
    ecg = ecg * 800e-6 + rng.standard_normal(n) * 10e-6
    eeg += np.outer(rng.normal(0, 0.01, n_ch), ecg)   # small cardiac leak
    data = np.vstack([eeg, eog[None], ecg[None]])
    return data, times, amps, drive


def write_eeg(folder: Path, base: str, data, onsets_samples, ied_marks):
    events = [{"onset": int(o), "description": 128, "type": "Response"} for o in onsets_samples]
    events += [{"onset": int(o), "description": "spike", "type": "Comment"} for o in ied_marks]
    events.sort(key=lambda e: e["onset"])
    pybv.write_brainvision(data=data, sfreq=SFREQ, ch_names=CH_NAMES + ["EOG", "ECG"],
                           fname_base=base, folder_out=str(folder), events=events or None,
                           resolution=0.1, unit="µV", fmt="binary_int16", overwrite=True)
    (folder / f"{base}.json").write_text(json.dumps({
        "TaskName": "rest", "SamplingFrequency": SFREQ, "PowerLineFrequency": 50,
        "EEGReference": "FCz", "EEGChannelCount": len(CH_NAMES), "EOGChannelCount": 1,
        "ECGChannelCount": 1, "RecordingDuration": data.shape[1] / SFREQ,
        "SoftwareFilters": "n/a", "Manufacturer": "Brain Products",
        "CapManufacturer": "EasyCap"}, indent=1))
    rows = ["name\ttype\tunits\tstatus"] + [f"{c}\tEEG\tuV\tgood" for c in CH_NAMES] + \
           ["EOG\tEOG\tuV\tgood", "ECG\tECG\tuV\tgood"]
    (folder / f"{base.replace('_eeg', '_channels')}.tsv").write_text("\n".join(rows) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--subjects", type=int, default=4)
    ap.add_argument("--minutes", type=float, default=10.0)
    a = ap.parse_args()
    out = Path(a.out)
    gt = out / "groundtruth"
    gt.mkdir(parents=True, exist_ok=True)
    (out / "dataset_description.json").write_text(json.dumps(
        {"Name": "IED EEG-fMRI (user test 45)", "BIDSVersion": "1.8.0", "DatasetType": "raw"}))
    (out / "participants.tsv").write_text("participant_id\tfocus\n" + "".join(
        f"sub-{s}\t{FOCI[s]}\n" for s in list(FOCI)[: a.subjects]))
    affine = make_affine()
    xyz = world_coords(affine)
    mask = brain_mask(xyz)
    atlas = np.zeros(SHAPE, np.int16)
    names = list(REGIONS)
    for k, (_nm, c) in enumerate(REGIONS.items(), 1):
        d = np.linalg.norm(xyz - np.array(c), axis=-1)
        atlas[(d <= ROI_RADIUS) & mask] = k
    hdr = nib.Nifti1Header()
    hdr.set_xyzt_units("mm", "sec")
    img = nib.Nifti1Image(atlas, affine)
    img.header.set_sform(affine, 2)
    img.header.set_qform(affine, 2)
    nib.save(img, gt / "atlas.nii.gz")
    (gt / "atlas.tsv").write_text("index\tname\n" + "".join(f"{k}\t{n}\n" for k, n in enumerate(names, 1)))
    elec = electrode_positions()
    dur = a.minutes * 60
    n_vol = int(dur // TR)
    truth = {"tr": TR, "sfreq": SFREQ, "affine": affine.tolist(), "shape": SHAPE, "regions": REGIONS,
             "subjects": {}}
    for si, sub in enumerate(list(FOCI)[: a.subjects]):
        srng = np.random.default_rng([a.seed, si])
        focus = FOCI[sub]
        rate = srng.uniform(8, 25)
        lead_in = srng.uniform(4, 7)             # EEG starts before the first volume
        eeg_dur = lead_in + n_vol * TR + 3.0
        data, times, amps, drive = simulate_eeg(srng, eeg_dur, elec, focus, rate)
        onsets = lead_in + np.arange(n_vol) * TR
        # clinician's marks: miss ~20% (weaker ones more often), +-30 ms jitter
        p_miss = np.clip(0.35 - 0.2 * (amps - 1), 0.05, 0.6)
        marked = times[srng.uniform(size=times.size) > p_miss]
        marked = marked + srng.normal(0, 0.03, marked.size)
        edir = out / f"sub-{sub}" / "ses-01" / "eeg"
        edir.mkdir(parents=True, exist_ok=True)
        base = f"sub-{sub}_ses-01_task-rest_eeg"
        write_eeg(edir, base, data, np.round(onsets * SFREQ), np.round(marked * SFREQ))
        ev = "onset\tduration\ttrial_type\n" + "".join(f"{t:.3f}\t0.0\tIED\n" for t in marked)
        (edir / f"sub-{sub}_ses-01_task-rest_events.tsv").write_text(ev)
        # BOLD: neural drive = IED impulses (amplitude-weighted) -> HRF, sampled at mid-acquisition
        peak = srng.uniform(5.0, 6.5)
        fs_n = 20.0
        tt = np.arange(0, eeg_dur, 1 / fs_n)
        imp = np.zeros(tt.size)
        np.add.at(imp, np.minimum((times * fs_n).astype(int), tt.size - 1), amps)
        resp = np.convolve(imp, hrf(np.arange(0, 32, 1 / fs_n), peak))[: tt.size]
        mid = onsets + TR / 2
        r_vol = np.interp(mid, tt, resp)
        r_vol = r_vol / r_vol.std()
        focus_amp = srng.uniform(0.012, 0.02)     # fractional signal change per SD of the response
        xyz_f = np.array(REGIONS[focus])
        d_f = np.linalg.norm(xyz - xyz_f, axis=-1)
        wmap = np.exp(-0.5 * (d_f / 9.0) ** 2) * (d_f <= ROI_RADIUS + 4)
        dmn = np.zeros(SHAPE)
        for nm in ("DMN_PCC", "DMN_mPFC"):
            d = np.linalg.norm(xyz - np.array(REGIONS[nm]), axis=-1)
            dmn += np.exp(-0.5 * (d / 9.0) ** 2) * (d <= ROI_RADIUS + 4)
        signal_map = focus_amp * wmap + focus_amp * DMN_NEG[sub] * dmn   # fraction per unit r_vol
        base_int = srng.uniform(700, 1100) * (1 + 0.1 * srng.standard_normal(SHAPE))
        base_int = np.where(mask, base_int, 30 + 5 * srng.standard_normal(SHAPE))
        vm = mask.reshape(-1)
        nv = int(vm.sum())
        noise = srng.standard_normal((n_vol, nv)) * 0.010
        phys = lfilter([1], [1, -0.45], srng.standard_normal((n_vol, nv)), axis=0) * 0.006
        glob = lfilter([1], [1, -0.6], srng.standard_normal(n_vol)) * 0.004
        tv = np.arange(n_vol) / n_vol
        drift = (np.outer(tv - 0.5, srng.normal(0, 0.015, nv))
                 + np.outer(np.cos(np.pi * tv * srng.uniform(1, 3)), srng.normal(0, 0.006, nv)))
        motion = np.zeros((n_vol, nv))
        spikes = np.sort(srng.choice(np.arange(10, n_vol - 5), 4, replace=False))
        grad = (xyz.reshape(-1, 3)[vm] @ srng.normal(0, 1, 3)) / 60.0
        for sp in spikes:
            motion[sp] += grad * srng.uniform(0.02, 0.05)
        frac = (np.outer(r_vol, signal_map.reshape(-1)[vm]) + noise + phys + glob[:, None] + drift + motion)
        vol = np.repeat(base_int.reshape(-1)[None], n_vol, 0).astype(np.float32)
        vol[:, vm] *= (1 + frac).astype(np.float32)
        vol[:, ~vm] += srng.standard_normal((n_vol, int((~vm).sum()))).astype(np.float32) * 3
        bold = vol.reshape(n_vol, *SHAPE).transpose(1, 2, 3, 0)
        fdir = out / f"sub-{sub}" / "ses-01" / "func"
        fdir.mkdir(parents=True, exist_ok=True)
        bimg = nib.Nifti1Image(bold.astype(np.float32), affine)
        bimg.header.set_sform(affine, 1)
        bimg.header.set_qform(affine, 1)
        bimg.header.set_xyzt_units("mm", "sec")
        bimg.header["pixdim"][4] = TR
        nib.save(bimg, fdir / f"sub-{sub}_ses-01_task-rest_bold.nii.gz")
        (fdir / f"sub-{sub}_ses-01_task-rest_bold.json").write_text(json.dumps(
            {"TaskName": "rest", "RepetitionTime": TR, "EchoTime": 0.03, "FlipAngle": 80,
             "SliceEncodingDirection": "k", "MagneticFieldStrength": 3}, indent=1))
        # ground truth
        clean_roi = {}
        sig_vox = (np.outer(r_vol, signal_map.reshape(-1)[vm]))   # fractional noiseless signal
        atl_v = atlas.reshape(-1)[vm]
        for k, nm in enumerate(names, 1):
            clean_roi[nm] = sig_vox[:, atl_v == k].mean(1) if (atl_v == k).any() else np.zeros(n_vol)
        cols = "\t".join(["onset"] + names)
        lines = [cols] + ["\t".join([f"{i * TR:.2f}"] + [f"{clean_roi[nm][i]:.6g}" for nm in names])
                          for i in range(n_vol)]
        (gt / f"sub-{sub}_roi_bold.tsv").write_text("\n".join(lines) + "\n")
        fm = nib.Nifti1Image((atlas == names.index(focus) + 1).astype(np.uint8), affine)
        nib.save(fm, gt / f"sub-{sub}_focus_mask.nii.gz")
        (gt / f"sub-{sub}_ied.tsv").write_text(
            "eeg_time_s\tscan_time_s\tamplitude\tmarked_by_clinician\n" + "".join(
                f"{t:.4f}\t{t - lead_in:.4f}\t{am:.3f}\t{int(np.min(np.abs(marked - t), initial=9) < 0.2)}\n"
                for t, am in zip(times, amps)))
        truth["subjects"][sub] = {"focus": focus, "rate_per_min": rate, "n_ied": int(times.size),
                                  "n_marked": int(marked.size), "eeg_lead_in_s": lead_in,
                                  "hrf_peak_s": peak, "focus_amp": focus_amp, "dmn_rel": DMN_NEG[sub],
                                  "motion_spike_volumes": spikes.tolist(), "n_volumes": n_vol}
        if sub == "01":
            # EEG-only second session (no scanner, no markers), with its true focus BOLD on a TR grid
            dur2 = 8 * 60.0
            data2, times2, amps2, _ = simulate_eeg(np.random.default_rng([a.seed, 99]), dur2, elec, focus, rate)
            edir2 = out / "sub-01" / "ses-02" / "eeg"
            edir2.mkdir(parents=True, exist_ok=True)
            write_eeg(edir2, "sub-01_ses-02_task-rest_eeg", data2, [], [])
            tt2 = np.arange(0, dur2, 1 / fs_n)
            imp2 = np.zeros(tt2.size)
            np.add.at(imp2, np.minimum((times2 * fs_n).astype(int), tt2.size - 1), amps2)
            resp2 = np.convolve(imp2, hrf(np.arange(0, 32, 1 / fs_n), peak))[: tt2.size]
            resp2 = resp2 / np.interp(mid, tt, resp).std()   # same units as the ses-01 r_vol
            (gt / "sub-01_ses-02_true_focus_bold.tsv").write_text(
                "time_s\tfocus_response\n" + "".join(f"{t:.2f}\t{v:.6g}\n" for t, v in zip(tt2[::5], resp2[::5])))
            (gt / "sub-01_ses-02_ied.tsv").write_text("eeg_time_s\tamplitude\n" + "".join(
                f"{t:.4f}\t{am:.3f}\n" for t, am in zip(times2, amps2)))
    (gt / "truth.json").write_text(json.dumps(truth, indent=1))
    print(json.dumps({s: {k: v for k, v in d.items() if k in ("focus", "n_ied", "n_marked", "rate_per_min")}
                      for s, d in truth["subjects"].items()}, indent=1))


if __name__ == "__main__":
    main()
