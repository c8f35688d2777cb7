"""Resting-state alpha-BOLD simulator (user test 44), written without reading the package's simulators.

Modelled on the classic eyes-closed resting-state alpha-BOLD findings (Goldman et al. 2002, Laufs et al.
2003, de Munck et al. 2007): a slow vigilance process (0.01-0.1 Hz) modulates posterior alpha power at an
individual alpha frequency (IAF, 8.5-11 Hz per subject); occipital BOLD follows alpha power NEGATIVELY,
thalamic BOLD POSITIVELY; a frontal-midline theta source (weakly coupled in amplitude to a parietal source)
drives a medial-frontal region positively. Everything else is noise, drift and aliased cardiac/respiratory
fluctuations.

Writes a BIDS dataset (EDF EEG via ``mne.export.export_raw`` with ``R128`` volume annotations carrying
sample-level jitter, hand-written sidecars / channels.tsv / electrodes.tsv; int16 NIfTI BOLD with
scl_slope on an oblique 6 mm grid) plus ``OUT/groundtruth`` (atlas, per-region noiseless BOLD, IAFs, HRF
peaks, coupling signs). Subject 04 is EEG-only (no BOLD); its true BOLD is in the ground truth, on a
0.5-s grid from the EEG's first sample.

Usage: ``python benchmarks/sim_user_alpha.py OUT --seed S [--subjects 3] [--minutes 8] [--tr 2.0]``
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

SFREQ = 250.0
CHANNELS = ["Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "FC5", "FC1", "FC2", "FC6", "T7", "C3", "Cz",
            "C4", "T8", "TP9", "CP5", "CP1", "CP2", "CP6", "TP10", "P7", "P3", "Pz", "P4", "P8", "PO9",
            "O1", "Oz", "O2", "PO10"]
# regions: label -> (name, centre in mm (RAS, MNI-like), radius mm, coupling)
REGIONS = {
    1: ("occipital", (0.0, -88.0, 4.0), 16.0, ("alpha", -1.0)),
    2: ("thalamus", (0.0, -16.0, 6.0), 10.0, ("alpha", +1.0)),
    3: ("medial_frontal", (0.0, 42.0, 28.0), 12.0, ("theta", +1.0)),
    4: ("control_parietal", (-40.0, -50.0, 44.0), 12.0, ("none", 0.0)),
}


def bandlimited(rng, n, fs, lo, hi, order=3):
    x = rng.standard_normal(n + int(20 * fs))
    b, a = signal.butter(order, [lo, hi], btype="band", fs=fs)
    y = signal.filtfilt(b, a, x)[int(10 * fs): int(10 * fs) + n]
    return y / y.std()


def slow_process(rng, n, fs, lo=0.01, hi=0.1):
    # generate at 10 Hz then interpolate (filters at 250 Hz with 0.01 Hz corners are ill-conditioned)
    fs_lo = 10.0
    m = int(np.ceil(n / fs * fs_lo)) + 2
    x = rng.standard_normal(m + int(400 * fs_lo))
    sos = signal.butter(2, [lo, hi], btype="band", fs=fs_lo, output="sos")
    y = signal.sosfiltfilt(sos, x)[int(200 * fs_lo): int(200 * fs_lo) + m]
    y = (y - y.mean()) / y.std()
    return np.interp(np.arange(n) / fs, np.arange(m) / fs_lo, y)


def pink(rng, shape, fs):
    n = shape[-1]
    f = np.fft.rfftfreq(n, 1 / fs)
    spec = rng.standard_normal(shape[:-1] + (len(f),)) + 1j * rng.standard_normal(shape[:-1] + (len(f),))
    scale = np.zeros_like(f)
    scale[1:] = 1.0 / np.sqrt(np.maximum(f[1:], 0.5))
    x = np.fft.irfft(spec * scale, n=n)
    return x / x.std(axis=-1, keepdims=True)


def hrf(t, peak, under=16.0, ratio=1 / 6.0, disp=1.0):
    a1 = peak / disp + 1
    h = gamma_dist.pdf(t, a1, scale=disp) - ratio * gamma_dist.pdf(t, under / disp + 1, scale=disp)
    return h / np.abs(h).sum()


def electrode_positions():
    mont = mne.channels.make_standard_montage("colin27_1020")
    pos = mont.get_positions()["ch_pos"]
    return np.array([pos[c] for c in CHANNELS]), mont


def lead_field(rng, src_pos, src_ori, elec):
    """Dipoles in an infinite homogeneous medium, plus a smooth random spatial distortion (skull)."""
    d = elec[None, :, :] - src_pos[:, None, :]
    r = np.linalg.norm(d, axis=-1)
    L = np.einsum("sk,sek->se", src_ori, d) / (4 * np.pi * r ** 3)
    # smooth multiplicative distortion: low-order function of electrode position
    u = elec / np.linalg.norm(elec, axis=1, keepdims=True)
    distort = 1 + 0.15 * (u @ rng.standard_normal((3, src_pos.shape[0]))).T
    L = L * distort
    return L / np.abs(L).max(axis=1, keepdims=True)  # unit peak per source


def grid():
    shape = (22, 26, 20)
    vox = 6.0
    th = np.deg2rad(8.0)  # oblique (pitched) acquisition
    rot = np.array([[1, 0, 0], [0, np.cos(th), -np.sin(th)], [0, np.sin(th), np.cos(th)]])
    A = np.eye(4)
    A[:3, :3] = rot * vox
    centre_vox = (np.array(shape) - 1) / 2
    A[:3, 3] = np.array([0.0, -18.0, 12.0]) - A[:3, :3] @ centre_vox
    return shape, A


def world_coords(shape, A):
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1).reshape(-1, 3)
    return (ijk @ A[:3, :3].T + A[:3, 3]).reshape(shape + (3,))


def brain_and_atlas(shape, A):
    xyz = world_coords(shape, A)
    c = np.array([0.0, -18.0, 12.0])
    rad = np.array([66.0, 84.0, 58.0])
    brain = (((xyz - c) / rad) ** 2).sum(-1) <= 1.0
    atlas = np.zeros(shape, np.int16)
    for lab, (_, cen, r, _) in REGIONS.items():
        atlas[(np.linalg.norm(xyz - np.array(cen), axis=-1) <= r) & brain] = lab
    return brain, atlas, xyz


def simulate_subject(rng, sub, minutes, tr, with_bold, shape, A, brain, atlas, xyz, elec):
    n_vol = int(round(minutes * 60 / tr))
    lead_in = rng.uniform(5, 10)
    lead_out = rng.uniform(3, 6)
    dur = lead_in + n_vol * tr + lead_out
    n = int(round(dur * SFREQ))
    t = np.arange(n) / SFREQ
    iaf = rng.uniform(8.5, 11.0)

    vig = slow_process(rng, n, SFREQ)
    theta_drive = slow_process(rng, n, SFREQ, 0.01, 0.08)
    # alpha: two posterior dipoles (left/right occipito-parietal), narrowband around the IAF
    alpha_env = np.exp(0.55 * vig)
    a1 = bandlimited(rng, n, SFREQ, iaf - 1.0, iaf + 1.0)
    a2 = 0.7 * a1 + 0.7 * bandlimited(rng, n, SFREQ, iaf - 1.0, iaf + 1.0)
    theta_env = np.exp(0.5 * theta_drive)
    th_f = rng.uniform(5.0, 7.0)
    th1 = bandlimited(rng, n, SFREQ, th_f - 1.0, th_f + 1.0)
    # weakly amplitude-coupled second theta source (parietal)
    th2_env = np.exp(0.2 * theta_drive + 0.45 * slow_process(rng, n, SFREQ))
    th2 = bandlimited(rng, n, SFREQ, th_f - 1.0, th_f + 1.0)

    src_pos = np.array([[-0.025, -0.075, 0.01], [0.025, -0.075, 0.01], [0.0, 0.04, 0.045], [0.02, -0.04, 0.06]])
    src_pos = src_pos + rng.normal(0, 0.004, src_pos.shape)
    ori = src_pos / np.linalg.norm(src_pos, axis=1, keepdims=True) + rng.normal(0, 0.3, src_pos.shape)
    ori /= np.linalg.norm(ori, axis=1, keepdims=True)
    L = lead_field(rng, src_pos, ori, elec)
    S = np.stack([alpha_env * a1, alpha_env * a2 * 0.9, 0.6 * theta_env * th1, 0.35 * th2_env * th2])
    S *= 20e-6  # ~20 uV peak-channel alpha
    eeg = S.T @ L
    # 1/f background from 60 random dipoles
    nb = 60
    bpos = rng.normal(0, 0.035, (nb, 3))
    bpos[:, 2] = np.abs(bpos[:, 2])
    bori = rng.normal(size=(nb, 3))
    bori /= np.linalg.norm(bori, axis=1, keepdims=True)
    Lb = lead_field(rng, bpos, bori, elec)
    eeg += (pink(rng, (nb, n), SFREQ) * 4e-6).T @ Lb
    eeg += rng.normal(0, 1.5e-6, eeg.shape)
    # blinks (eyes closed: fewer), in Fp1/Fp2 and VEOG
    veog = rng.normal(0, 3e-6, n)
    heog = pink(rng, (1, n), SFREQ)[0] * 8e-6
    blink_t = np.cumsum(rng.exponential(60 / 6, 200))
    blink_t = blink_t[blink_t < dur - 1]
    bl = np.zeros(n)
    for bt in blink_t:
        i0 = int(bt * SFREQ)
        w = np.arange(int(0.4 * SFREQ))
        bl[i0:i0 + len(w)] += rng.uniform(80, 200) * 1e-6 * np.sin(np.pi * w / len(w))[: n - i0] ** 2
    veog += bl
    front = {"Fp1": 0.9, "Fp2": 0.9, "F7": 0.25, "F8": 0.25, "F3": 0.2, "F4": 0.2, "Fz": 0.2}
    for ch, g in front.items():
        eeg[:, CHANNELS.index(ch)] += g * bl
    # ECG: ~65 bpm with HRV
    hr = rng.uniform(55, 75) / 60
    rr = 1 / hr * (1 + 0.05 * np.sin(2 * np.pi * 0.25 * np.arange(2000) / hr) + rng.normal(0, 0.02, 2000))
    beats = np.cumsum(rr)
    beats = beats[beats < dur]
    ecg = rng.normal(0, 10e-6, n)
    qrs_t = np.arange(-int(0.05 * SFREQ), int(0.05 * SFREQ)) / SFREQ
    qrs = np.exp(-(qrs_t / 0.012) ** 2) * 1e-3
    tw_t = np.arange(0, int(0.4 * SFREQ)) / SFREQ
    tw = 0.25e-3 * np.exp(-((tw_t - 0.25) / 0.06) ** 2)
    for b in beats:
        i0 = int(b * SFREQ)
        for wav, off in ((qrs, -len(qrs) // 2), (tw, 0)):
            s = i0 + off
            if s < 0 or s + len(wav) > n:
                continue
            ecg[s:s + len(wav)] += wav
    eeg += np.outer(ecg, rng.normal(0, 0.004, len(CHANNELS)))  # small cardiac field leak
    # line noise 50 Hz
    eeg += 0.5e-6 * np.sin(2 * np.pi * 50 * t)[:, None]

    data = np.vstack([eeg.T, veog[None], heog[None], ecg[None]])
    ch_names = CHANNELS + ["VEOG", "HEOG", "ECG"]
    info = mne.create_info(ch_names, SFREQ, ["eeg"] * len(CHANNELS) + ["eog", "eog", "ecg"])
    raw = mne.io.RawArray(data, info, verbose="error")
    raw.set_montage(mne.channels.make_standard_montage("colin27_1020"), on_missing="ignore")

    # volume markers: every TR from lead_in, with +/-1-2 samples of jitter
    jitter = rng.integers(-2, 3, n_vol) / SFREQ
    onsets = lead_in + np.arange(n_vol) * tr + jitter
    onsets = np.round(onsets * SFREQ) / SFREQ
    raw.set_annotations(mne.Annotations(onsets, [0.0] * n_vol, ["R128"] * n_vol))

    # ---- BOLD: continuous drive at 10 Hz
    fs_b = 10.0
    tb = np.arange(0, dur, 1 / fs_b)
    alpha_pow = np.interp(tb, t, alpha_env ** 2)
    theta_pow = np.interp(tb, t, theta_env ** 2)
    drives = {"alpha": (np.log(alpha_pow) - np.log(alpha_pow).mean()) / np.log(alpha_pow).std(),
              "theta": (np.log(theta_pow) - np.log(theta_pow).mean()) / np.log(theta_pow).std()}
    th = np.arange(0, 32, 1 / fs_b)
    region_true = {}
    region_peak = {}
    for _lab, (name, _, _, (band, sign)) in REGIONS.items():
        peak = rng.uniform(4.0, 7.0)
        region_peak[name] = peak
        if band == "none":
            region_true[name] = np.zeros_like(tb)
            continue
        h = hrf(th, peak)
        x = np.convolve(sign * drives[band], h)[: len(tb)]
        region_true[name] = x / x.std()
    out = dict(raw=raw, iaf=iaf, theta_freq=th_f, lead_in=lead_in, onsets=onsets, tr=tr, n_vol=n_vol,
               region_true_fine=(tb, region_true), region_peak=region_peak)
    if not with_bold:
        return out
    # sample at mid-acquisition of each volume (onset + TR/2, jitter-free nominal times)
    tv = lead_in + np.arange(n_vol) * tr + tr / 2
    vol_truth = {k: np.interp(tv, tb, v) for k, v in region_true.items()}
    nvox = int(brain.sum())
    base = rng.uniform(500, 1100) * (1 + 0.3 * rng.random(shape))
    psc = np.zeros((nvox, n_vol))
    lab_in = atlas[brain]
    amp = {1: 1.2, 2: 0.9, 3: 0.8, 4: 0.0}  # % signal change per SD
    for lab, (name, _, _, _) in REGIONS.items():
        sel = lab_in == lab
        gains = amp[lab] * rng.uniform(0.6, 1.2, sel.sum())
        psc[sel] += gains[:, None] * vol_truth[name][None]
    # spontaneous regional fluctuations the EEG does not see (smooth in space)
    k_fluct = 8
    cen_f = xyz[brain][rng.choice(nvox, k_fluct, replace=False)]
    for c in cen_f:
        w = np.exp(-np.sum((xyz[brain] - c) ** 2, -1) / (2 * 20.0 ** 2))
        ts = np.convolve(rng.standard_normal(n_vol), hrf(np.arange(0, 32, tr), 6.0))[:n_vol]
        psc += 0.5 * w[:, None] * (ts / ts.std())[None]
    # physiological noise: cardiac and respiratory phases sampled at TR (aliased)
    card_f = hr
    resp_f = rng.uniform(0.22, 0.32)
    resp_f_t = resp_f * (1 + 0.05 * slow_process(rng, n_vol, 1 / tr, 0.005, 0.05 * tr))
    resp_phase = 2 * np.pi * np.cumsum(resp_f_t) * tr
    card_phase = 2 * np.pi * card_f * tv + rng.normal(0, 0.3, n_vol).cumsum() * 0.1
    dist = np.linalg.norm(xyz[brain] - np.array([0.0, -18.0, 12.0]), axis=-1)
    card_w = 0.4 * np.exp(-dist / 25.0) + 0.1  # stronger near the centre (vessels / ventricles)
    resp_w = 0.3 + 0.3 * rng.random(nvox)
    psc += card_w[:, None] * np.sin(card_phase)[None] + resp_w[:, None] * np.sin(resp_phase)[None]
    # drift (linear + slow cosines) and thermal noise
    tt = np.arange(n_vol) / n_vol
    psc += rng.normal(0, 0.8, nvox)[:, None] * tt[None] + rng.normal(0, 0.4, nvox)[:, None] * np.cos(np.pi * tt)[None]
    psc += rng.normal(0, 1.0, psc.shape)
    vol = np.zeros(shape + (n_vol,), np.float32)
    vol[brain] = base[brain][:, None] * (1 + psc / 100)
    vol[~brain] = rng.normal(20, 5, ((~brain).sum(), n_vol)).clip(0)
    out.update(bold=vol, vol_truth=vol_truth, vol_times=tv)
    return out


def write_edf(raw, path):
    mne.export.export_raw(str(path), raw, fmt="edf", overwrite=True, verbose="error")


def write_bids_eeg(root, sub, res, tr):
    d = root / f"sub-{sub}" / "eeg"
    d.mkdir(parents=True, exist_ok=True)
    stem = f"sub-{sub}_task-rest"
    write_edf(res["raw"], d / f"{stem}_eeg.edf")
    raw = res["raw"]
    ch_rows = ["name\ttype\tunits\tsampling_frequency\tlow_cutoff\thigh_cutoff\tstatus"]
    for ch, typ in zip(raw.ch_names, raw.get_channel_types()):
        ch_rows.append(f"{ch}\t{typ.upper()}\t{'mV' if typ == 'ecg' else 'uV'}\t{SFREQ:g}\t0\t{SFREQ / 2:g}\tgood")
    # NB: the EDF stores every signal in its own physical unit (MNE writes uV); 'units' above is informative
    ch_rows = [r.replace("\tmV\t", "\tuV\t") for r in ch_rows]
    (d / f"{stem}_channels.tsv").write_text("\n".join(ch_rows) + "\n")
    (d / f"{stem}_eeg.json").write_text(json.dumps({
        "TaskName": "rest", "SamplingFrequency": SFREQ, "PowerLineFrequency": 50, "EEGReference": "FCz",
        "EEGChannelCount": len(CHANNELS), "EOGChannelCount": 2, "ECGChannelCount": 1,
        "SoftwareFilters": "n/a", "RecordingType": "continuous", "EEGPlacementScheme": "10-20",
        "Manufacturer": "sim_user_alpha"}, indent=2))
    elec, _ = electrode_positions()
    rows = ["name\tx\ty\tz"] + [f"{c}\t{p[0]:.4f}\t{p[1]:.4f}\t{p[2]:.4f}" for c, p in zip(CHANNELS, elec)]
    (d / f"sub-{sub}_electrodes.tsv").write_text("\n".join(rows) + "\n")
    (d / f"sub-{sub}_coordsystem.json").write_text(json.dumps({
        "EEGCoordinateSystem": "CapTrak", "EEGCoordinateUnits": "m"}, indent=2))
    ev = ["onset\tduration\ttrial_type\tsample"] + [
        f"{o:.4f}\t0\tR128\t{int(round(o * SFREQ))}" for o in res["onsets"]]
    (d / f"{stem}_events.tsv").write_text("\n".join(ev) + "\n")


def write_bold(root, sub, res, A, tr):
    d = root / f"sub-{sub}" / "func"
    d.mkdir(parents=True, exist_ok=True)
    vol = res["bold"]
    slope = float(np.ceil(vol.max() / 30000 * 1000) / 1000)
    ints = np.round(vol / slope).astype(np.int16)
    img = nib.Nifti1Image(ints, A)
    img.header.set_data_dtype(np.int16)
    img.header.set_slope_inter(slope, 0.0)
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = tr
    img.header.set_qform(A, code=1)
    img.header.set_sform(A, code=1)
    nib.save(img, d / f"sub-{sub}_task-rest_bold.nii.gz")
    (d / f"sub-{sub}_task-rest_bold.json").write_text(json.dumps({
        "TaskName": "rest", "RepetitionTime": tr, "EchoTime": 0.03, "MagneticFieldStrength": 3,
        "SliceEncodingDirection": "k"}, indent=2))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--subjects", type=int, default=3)
    p.add_argument("--minutes", type=float, default=8.0)
    p.add_argument("--tr", type=float, default=2.0)
    a = p.parse_args(argv)
    rng = np.random.default_rng(a.seed)
    out = Path(a.out)
    root = out / "bids"
    gt = out / "groundtruth"
    root.mkdir(parents=True, exist_ok=True)
    gt.mkdir(parents=True, exist_ok=True)
    shape, A = grid()
    brain, atlas, xyz = brain_and_atlas(shape, A)
    elec, _ = electrode_positions()
    (root / "dataset_description.json").write_text(json.dumps(
        {"Name": "sim_user_alpha", "BIDSVersion": "1.8.0", "DatasetType": "raw"}, indent=2))
    (root / "task-rest_bold.json").write_text(json.dumps({"TaskName": "rest", "RepetitionTime": a.tr}, indent=2))
    parts = ["participant_id\tage\tsex"]
    truth = {"tr": a.tr, "affine": A.tolist(), "shape": list(shape), "regions": {}, "subjects": {}}
    for lab, (name, cen, r, (band, sign)) in REGIONS.items():
        truth["regions"][name] = {"label": lab, "centre_mm": list(cen), "radius_mm": r, "band": band,
                                  "sign": sign, "n_voxels": int((atlas == lab).sum())}
    nib.save(nib.Nifti1Image(atlas.astype(np.int16), A), gt / "atlas.nii.gz")
    (gt / "atlas.tsv").write_text("index\tname\n" + "".join(f"{k}\t{v[0]}\n" for k, v in REGIONS.items()))
    nib.save(nib.Nifti1Image(brain.astype(np.uint8), A), gt / "brain_mask.nii.gz")
    for i in range(a.subjects + 1):
        sub = f"{i + 1:02d}"
        with_bold = i < a.subjects
        res = simulate_subject(rng, sub, a.minutes, a.tr, with_bold, shape, A, brain, atlas, xyz, elec)
        write_bids_eeg(root, sub, res, a.tr)
        parts.append(f"sub-{sub}\t{int(rng.integers(20, 40))}\t{'MF'[i % 2]}")
        tb, fine = res["region_true_fine"]
        step = 5  # 0.5 s
        names = list(fine)
        rows = ["time_s\t" + "\t".join(names)] + [
            f"{tb[j]:.2f}\t" + "\t".join(f"{fine[k][j]:.5f}" for k in names) for j in range(0, len(tb), step)]
        (gt / f"sub-{sub}_true_bold_fine.tsv").write_text("\n".join(rows) + "\n")
        info = {"iaf_hz": res["iaf"], "theta_hz": res["theta_freq"], "eeg_lead_in_s": res["lead_in"],
                "n_volumes": res["n_vol"], "hrf_peak_s": res["region_peak"], "has_bold": with_bold,
                "first_marker_s": float(res["onsets"][0])}
        if with_bold:
            write_bold(root, sub, res, A, a.tr)
            vt = res["vol_truth"]
            rows = ["volume\ttime_s\t" + "\t".join(names)] + [
                f"{j}\t{res['vol_times'][j]:.3f}\t" + "\t".join(f"{vt[k][j]:.5f}" for k in names)
                for j in range(res["n_vol"])]
            (gt / f"sub-{sub}_true_bold.tsv").write_text("\n".join(rows) + "\n")
        truth["subjects"][sub] = info
        print(f"sub-{sub}: IAF {res['iaf']:.2f} Hz, theta {res['theta_freq']:.2f} Hz, "
              f"{res['n_vol']} volumes, bold={with_bold}")
    (root / "participants.tsv").write_text("\n".join(parts) + "\n")
    (gt / "truth.json").write_text(json.dumps(truth, indent=2))
    print(f"wrote {root} and {gt}")


if __name__ == "__main__":
    main()
