"""User test 58: simultaneous EEG-fMRI rest data whose physiology was logged by the SCANNER.

A generator written from textbook knowledge (not from the package's simulator):

* BOLD (TR 2 s, 18 axial slices acquired interleaved, every slice sampled at its own time) with
  (a) an occipital region driven by posterior EEG alpha power through a canonical double-gamma HRF (negative
  coupling), (b) physiological noise strongest in the ventricles and the sagittal sinus: cardiac pulsatility as the
  pulse-oximeter waveform itself, sampled at each slice's true time with a voxel-specific transit delay (not a Fourier
  series of the cardiac phase), a respiratory B0 term proportional to the belt signal plus its Hilbert phase, heart
  rate convolved with a single positive gamma (peak 5 s) and respiration amplitude (Hilbert envelope of the belt)
  convolved with a negative gamma (peak 7 s) -- response shapes of my own, unlike CRF/RRF, (c) a null region of thermal +
  AR(1) noise only.
* EEG (32 channels, 250 Hz, BrainVision with R128 volume markers, gradient artefact assumed removed, NO ECG channel):
  pink background, a posterior alpha source whose envelope drives (a), a pulse (BCG) artefact locked 200 ms after each
  PPG peak (amplitude modulated by breathing), breathing drifts proportional to the belt.
* Physiology as BIDS physio files beside the BOLD: ``recording-cardiac`` (PPG at 100 Hz, columns cardiac, trigger) and
  ``recording-respiratory`` (belt at 25 Hz, column respiratory), each with a NEGATIVE StartTime (recording began before
  the first volume).
* Truth (outside BIDS): labels atlas + TSV, per-subject true physiological regressors at each volume's middle and the
  true noise/alpha contribution per ROI.

Usage: python benchmarks/sim_user_physio2.py OUT --subjects 4 --minutes 5 --seed 58
"""
from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pybv
from scipy import signal, stats

FS = 500.0  # base rate of the continuous physiology (Hz)
EEG_FS = 250.0
PPG_FS = 100.0
RESP_FS = 25.0
CH = ["Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "FC5", "FC1", "FC2", "FC6", "T7", "C3", "Cz", "C4", "T8",
      "CP5", "CP1", "CP2", "CP6", "P7", "P3", "Pz", "P4", "P8", "POz", "O1", "Oz", "O2", "FT9", "FT10", "TP9"]
SHAPE = (20, 24, 18)
VOX = 7.0
N_SLICES = SHAPE[2]


def gamma_kernel(t: np.ndarray, peak: float, shape: float = 6.0) -> np.ndarray:
    scale = peak / (shape - 1.0)
    k = stats.gamma.pdf(t, shape, scale=scale)
    return k / k.max()


def hrf(t: np.ndarray) -> np.ndarray:
    h = stats.gamma.pdf(t, 6) - stats.gamma.pdf(t, 16) / 6.0
    return h / h.max()


def slow_noise(rng, n, fs, f_hi, f_lo=None):
    x = rng.standard_normal(n)
    if f_lo is None:
        b, a = signal.butter(2, f_hi / (fs / 2), "low")
    else:
        b, a = signal.butter(2, [f_lo / (fs / 2), f_hi / (fs / 2)], "band")
    y = signal.filtfilt(b, a, x)
    return (y - y.mean()) / y.std()


def pink(rng, n_ch, n):
    f = np.fft.rfftfreq(n, 1 / EEG_FS)
    spec = (rng.standard_normal((n_ch, f.size)) + 1j * rng.standard_normal((n_ch, f.size)))
    spec /= np.maximum(f, 0.5) ** 0.5
    x = np.fft.irfft(spec, n)
    return x / x.std(axis=1, keepdims=True)


def ppg_wave(phi: np.ndarray) -> np.ndarray:
    """Pulse-oximeter waveform over one cycle (phase in [0, 1)): systolic peak and dicrotic wave."""
    return np.exp(-((phi - 0.22) / 0.09) ** 2) + 0.35 * np.exp(-((phi - 0.52) / 0.10) ** 2)


def make_atlas():
    idx = np.indices(SHAPE).astype(float)
    c = (np.array(SHAPE) - 1) / 2.0
    brain = (((idx[0] - c[0]) / 8.5) ** 2 + ((idx[1] - c[1]) / 10.5) ** 2 + ((idx[2] - c[2]) / 7.5) ** 2) <= 1
    lab = np.zeros(SHAPE, np.int16)

    def ball(cx, cy, cz, r):
        return ((idx[0] - cx) ** 2 + (idx[1] - cy) ** 2 + (idx[2] - cz) ** 2) <= r * r

    lab[ball(c[0], 3.5, c[2], 2.6) & brain] = 1  # alpha_occipital
    lab[(ball(c[0] - 1.6, 13, c[2] + 0.5, 1.6) | ball(c[0] + 1.6, 13, c[2] + 0.5, 1.6)) & brain] = 2  # ventricles
    shell = (((idx[0] - c[0]) / 7.5) ** 2 + ((idx[1] - c[1]) / 9.5) ** 2 + ((idx[2] - c[2]) / 6.5) ** 2) > 1
    lab[brain & shell & (np.abs(idx[0] - c[0]) <= 1.0) & (idx[2] > c[2] + 2)] = 3  # sagittal_sinus
    lab[ball(3.5, 16, c[2] - 1, 2.2) & brain] = 4  # null_lateral_frontal
    return brain, lab


def simulate_subject(rng, n_vol, tr, lead, tail):
    """Continuous physiology and EEG in scanner time (0 = first volume onset)."""
    t0 = -lead
    t1 = n_vol * tr + tail
    t = np.arange(t0, t1, 1 / FS)
    n = t.size
    # respiration: rate ~0.27 Hz wandering, depth slowly modulated, one or two sighs
    rr = 0.27 + 0.03 * slow_noise(rng, n, FS, 0.01)
    rphase = 2 * np.pi * np.cumsum(rr) / FS
    depth = np.exp(0.35 * slow_noise(rng, n, FS, 0.03))
    for s in rng.uniform(t0 + 30, t1 - 30, 2):
        depth *= 1 + 1.2 * np.exp(-0.5 * ((t - s) / 3.0) ** 2)
    belt_clean = depth * np.sin(rphase)
    # heart: rate ~66 bpm, slow drift, respiratory sinus arrhythmia
    hr = 66 + 4 * slow_noise(rng, n, FS, 0.02) + 2.5 * np.sin(rphase)
    cphase_cycles = np.cumsum(hr / 60.0) / FS
    phi = np.mod(cphase_cycles, 1.0)
    ppg = ppg_wave(phi)
    # PPG systolic peaks (phase 0.22) and the EEG pulse artefact 200 ms later
    k = np.arange(np.ceil(cphase_cycles[0] - 0.22), np.floor(cphase_cycles[-1] - 0.22) + 1)
    peak_t = np.interp(k + 0.22, cphase_cycles, t)
    # my own RV measure: Hilbert envelope of the belt; my own cardiac measure: instantaneous HR
    env = np.abs(signal.hilbert(belt_clean))
    return dict(t=t, belt=belt_clean, rphase=np.angle(signal.hilbert(belt_clean)), env=env, hr=hr,
                cycles=cphase_cycles, ppg=ppg, peak_t=peak_t)


def eeg_for(rng, ph, lead, n_vol, tr, pos, alpha_env_fn):
    t_eeg = np.arange(-lead, n_vol * tr + 8.0, 1 / EEG_FS)
    n = t_eeg.size
    nc = len(CH)
    bg = pink(rng, nc, n)
    common = pink(rng, 1, n)
    bg = 8e-6 * (0.8 * bg + 0.4 * common)
    occ = np.array([0.0, -0.095, 0.03])
    w_alpha = np.exp(-np.sum((pos - occ) ** 2, axis=1) / (2 * 0.045 ** 2))
    carrier = slow_noise(rng, n, EEG_FS, 11.0, 9.0)
    env = alpha_env_fn(t_eeg)
    alpha = 14e-6 * env * carrier
    # pulse artefact 200 ms after each PPG peak, damped 3.5 Hz oscillation; lateral channels strongest
    bcg_ts = np.zeros(n)
    tt = np.arange(0, 0.7, 1 / EEG_FS)
    wave = np.sin(2 * np.pi * 3.5 * tt) * np.exp(-tt / 0.18)
    belt_e = np.interp(t_eeg, ph["t"], ph["belt"])
    for pt in ph["peak_t"] + 0.2:
        i = int(round((pt + lead) * EEG_FS))
        if 0 <= i < n - tt.size:
            amp = 1 + 0.25 * belt_e[i] + 0.1 * rng.standard_normal()
            bcg_ts[i:i + tt.size] += amp * wave
    w_bcg = 0.4 + 0.8 * np.abs(pos[:, 0]) / np.abs(pos[:, 0]).max() + 0.2 * rng.standard_normal(nc)
    w_bcg *= np.sign(pos[:, 0] + 1e-3)
    w_resp = 0.5 + rng.standard_normal(nc) * 0.6
    b, a = signal.butter(2, 0.6 / (EEG_FS / 2), "low")
    drift = signal.filtfilt(b, a, belt_e)
    data = bg + np.outer(w_alpha, alpha) + 25e-6 * np.outer(w_bcg, bcg_ts) + 18e-6 * np.outer(w_resp, drift)
    return t_eeg, data.astype(np.float32)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--subjects", type=int, default=4)
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--tr", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=58)
    ap.add_argument("--write-noise", action="store_true",
                    help="also write truth/sub-XX_physio_noise.nii.gz: the physiological part of every voxel (BOLD units)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    bids = out / "bids"
    truth = out / "truth"
    truth.mkdir(parents=True, exist_ok=True)
    (bids).mkdir(parents=True, exist_ok=True)
    tr = args.tr
    n_vol = int(round(args.minutes * 60 / tr))
    brain, lab = make_atlas()
    aff = np.diag([VOX, VOX, VOX, 1.0])
    aff[:3, 3] = -(np.array(SHAPE) - 1) / 2.0 * VOX
    img = nib.Nifti1Image(lab, aff)
    img.set_sform(aff, 4)
    img.set_qform(aff, 4)
    nib.save(img, truth / "atlas.nii.gz")
    names = {1: "alpha_occipital", 2: "ventricles", 3: "sagittal_sinus", 4: "null_lateral_frontal"}
    (truth / "atlas.tsv").write_text("index\tname\n" + "".join(f"{k}\t{v}\n" for k, v in names.items()))
    import mne
    mont = mne.channels.make_standard_montage("standard_1020")
    mpos = mont.get_positions()["ch_pos"]
    pos = np.array([mpos[c] for c in CH])
    (bids / "dataset_description.json").write_text(json.dumps({"Name": "user test 58 physio files",
                                                               "BIDSVersion": "1.9.0"}))
    (bids / "participants.tsv").write_text("participant_id\n" + "".join(
        f"sub-{s + 1:02d}\n" for s in range(args.subjects)))
    # slice order: interleaved ascending (0, 2, 4, ..., 1, 3, ...)
    order = list(range(0, N_SLICES, 2)) + list(range(1, N_SLICES, 2))
    slice_time = np.zeros(N_SLICES)
    for k, z in enumerate(order):
        slice_time[z] = k * tr / N_SLICES
    lead_eeg = 15.0
    summary = []
    for s in range(args.subjects):
        sub = f"{s + 1:02d}"
        rng = np.random.default_rng([args.seed, s])
        ph = simulate_subject(rng, n_vol, tr, lead=25.0, tail=12.0)
        t = ph["t"]
        # alpha envelope (log-normal, slow)
        t_fine = np.arange(t[0], t[-1], 0.1)
        log_env = 0.45 * slow_noise(rng, t_fine.size, 10.0, 0.06)
        env_fine = np.exp(log_env)

        def alpha_env_fn(tq, tf=t_fine, ef=env_fine):
            return np.interp(tq, tf, ef)

        # continuous drivers at 10 Hz
        dt = 0.1
        kt = np.arange(0, 32, dt)
        apow = env_fine ** 2
        alpha_bold = np.convolve(apow - apow.mean(), hrf(kt))[: t_fine.size] * dt
        alpha_bold /= alpha_bold.std()
        hr_f = np.interp(t_fine, t, ph["hr"])
        env_f = np.interp(t_fine, t, ph["env"])
        hr_resp = np.convolve(hr_f - hr_f.mean(), gamma_kernel(kt, 5.0))[: t_fine.size] * dt
        hr_resp /= hr_resp.std()
        rv_resp = -np.convolve(env_f - env_f.mean(), gamma_kernel(kt, 7.0, 5.0))[: t_fine.size] * dt
        rv_resp /= rv_resp.std()
        belt_n = ph["belt"] / ph["belt"].std()

        def at(x_base, tq, t=t):
            return np.interp(tq, t, x_base)

        def at_f(x_fine, tq, t_fine=t_fine):
            return np.interp(tq, t_fine, x_fine)

        onsets = np.arange(n_vol) * tr
        # voxel weights
        rngv = np.random.default_rng([args.seed, s, 7])
        nvox = int(brain.sum())
        vi = np.nonzero(brain)
        labv = lab[vi]
        w_card = 0.15 + 0.1 * rngv.random(nvox)
        w_hr = 0.15 * rngv.standard_normal(nvox)
        w_rv = 0.2 + 0.1 * rngv.random(nvox)
        w_rb = 0.15 * rngv.standard_normal(nvox)
        w_alpha = np.zeros(nvox)
        for lbl, (wc, wh, wr, wb) in {2: (2.2, 1.0, 1.6, 0.8), 3: (2.8, 1.3, 1.2, 0.5),
                                      4: (0, 0, 0, 0)}.items():
            m = labv == lbl
            w_card[m] = wc * (0.8 + 0.4 * rngv.random(m.sum()))
            w_hr[m] = wh * (0.8 + 0.4 * rngv.random(m.sum()))
            w_rv[m] = wr * (0.8 + 0.4 * rngv.random(m.sum()))
            w_rb[m] = wb * rngv.standard_normal(m.sum())
        w_alpha[labv == 1] = -1.6 * (0.8 + 0.4 * rngv.random((labv == 1).sum()))
        delay = rngv.uniform(0.0, 0.25, nvox)  # pulse transit delay per voxel (s)
        # BOLD in percent signal change, each voxel at its slice's time
        sig = np.zeros((nvox, n_vol), np.float64)
        z = vi[2]
        noise_phys = np.zeros_like(sig)
        for zz in range(N_SLICES):
            m = z == zz
            if not m.any():
                continue
            tq = onsets + slice_time[zz]
            cyc = at(ph["cycles"], tq[None, :] - delay[m][:, None])
            pulsat = ppg_wave(np.mod(cyc, 1.0)) - 0.35
            rb = at(belt_n, tq)
            rph = at(ph["rphase"], tq)
            phys = (w_card[m][:, None] * pulsat + w_hr[m][:, None] * at_f(hr_resp, tq)[None]
                    + w_rv[m][:, None] * at_f(rv_resp, tq)[None]
                    + w_rb[m][:, None] * (rb + 0.5 * np.sin(rph))[None])
            noise_phys[m] = phys
            sig[m] = phys + w_alpha[m][:, None] * at_f(alpha_bold, tq)[None]
        ar = np.zeros_like(sig)
        e = rngv.standard_normal(sig.shape)
        for i in range(1, n_vol):
            ar[:, i] = 0.5 * ar[:, i - 1] + e[:, i]
        ar *= 0.5 / np.sqrt(1 / (1 - 0.25))
        thermal = 0.9 * rngv.standard_normal(sig.shape)
        total = sig + ar + thermal
        base = np.where(labv == 2, 1300.0, 1000.0) * (1 + 0.05 * rngv.standard_normal(nvox))
        vol = np.zeros(SHAPE + (n_vol,), np.float32)
        vol[vi] = (base[:, None] * (1 + total / 100.0)).astype(np.float32)
        func = bids / f"sub-{sub}" / "func"
        eegd = bids / f"sub-{sub}" / "eeg"
        func.mkdir(parents=True, exist_ok=True)
        eegd.mkdir(parents=True, exist_ok=True)
        bimg = nib.Nifti1Image(vol, aff)
        bimg.set_sform(aff, 4)
        bimg.set_qform(aff, 4)
        bimg.header.set_zooms((VOX, VOX, VOX, tr))
        bimg.header.set_xyzt_units("mm", "sec")
        nib.save(bimg, func / f"sub-{sub}_task-rest_bold.nii.gz")
        if args.write_noise:
            nz = np.zeros(SHAPE + (n_vol,), np.float32)
            nz[vi] = (base[:, None] * noise_phys / 100.0).astype(np.float32)
            nimg = nib.Nifti1Image(nz, aff)
            nimg.set_sform(aff, 4)
            nib.save(nimg, truth / f"sub-{sub}_physio_noise.nii.gz")
        (func / f"sub-{sub}_task-rest_bold.json").write_text(json.dumps(
            {"RepetitionTime": tr, "TaskName": "rest", "SliceTiming": [round(x, 4) for x in slice_time]}))
        # physio files: PPG 100 Hz, belt 25 Hz, negative StartTime
        st_c = -round(rng.uniform(8, 14), 3)
        st_r = -round(rng.uniform(5, 9), 3)
        end = n_vol * tr + rng.uniform(3, 8)
        tc = np.arange(st_c, end, 1 / PPG_FS)
        ppg_rec = at(ph["ppg"], tc) + 0.03 * rng.standard_normal(tc.size) + 0.1 * np.sin(2 * np.pi * 0.05 * tc)
        trig = np.zeros(tc.size, int)
        ti = np.round((onsets - st_c) * PPG_FS).astype(int)
        trig[ti[(ti >= 0) & (ti < tc.size)]] = 1
        trr = np.arange(st_r, end, 1 / RESP_FS)
        resp_rec = 2000 + 400 * at(ph["belt"], trr) + 8 * rng.standard_normal(trr.size)
        with gzip.open(func / f"sub-{sub}_task-rest_recording-cardiac_physio.tsv.gz", "wt") as f:
            for a, b in zip(ppg_rec, trig):
                f.write(f"{a:.5f}\t{b}\n")
        (func / f"sub-{sub}_task-rest_recording-cardiac_physio.json").write_text(json.dumps(
            {"SamplingFrequency": PPG_FS, "StartTime": st_c, "Columns": ["cardiac", "trigger"],
             "cardiac": {"Description": "pulse oximeter (finger PPG)", "Units": "a.u."}}, indent=1))
        with gzip.open(func / f"sub-{sub}_task-rest_recording-respiratory_physio.tsv.gz", "wt") as f:
            for a in resp_rec:
                f.write(f"{a:.3f}\n")
        (func / f"sub-{sub}_task-rest_recording-respiratory_physio.json").write_text(json.dumps(
            {"SamplingFrequency": RESP_FS, "StartTime": st_r, "Columns": ["respiratory"],
             "respiratory": {"Description": "respiration belt", "Units": "a.u."}}, indent=1))
        # EEG
        t_eeg, data = eeg_for(rng, ph, lead_eeg, n_vol, tr, pos, alpha_env_fn)
        ev_samples = np.round((onsets + lead_eeg) * EEG_FS).astype(int)
        events = [{"onset": int(i), "duration": 1, "description": 128, "type": "Response"} for i in ev_samples]
        pybv.write_brainvision(data=data, sfreq=EEG_FS, ch_names=CH, fname_base=f"sub-{sub}_task-rest_eeg",
                               folder_out=str(eegd), events=events, unit="µV", overwrite=True)
        (eegd / f"sub-{sub}_task-rest_eeg.json").write_text(json.dumps(
            {"TaskName": "rest", "SamplingFrequency": EEG_FS, "PowerLineFrequency": 50, "EEGReference": "FCz",
             "EEGChannelCount": len(CH), "ECGChannelCount": 0, "RecordingType": "continuous",
             "SoftwareFilters": {"GradientAAS": {"note": "gradient artefact removed, pulse artefact left in"}}}))
        (eegd / f"sub-{sub}_task-rest_channels.tsv").write_text(
            "name\ttype\tunits\n" + "".join(f"{c}\tEEG\tµV\n" for c in CH))
        # truth: regressors at each volume's middle + ROI contributions
        mid = onsets + tr / 2
        cyc_mid = at(ph["cycles"], mid)
        rows = {"onset_mid": mid, "pulse_wave_d0": ppg_wave(np.mod(cyc_mid, 1)),
                "pulse_wave_d125": ppg_wave(np.mod(at(ph["cycles"], mid - 0.125), 1)),
                "pulse_wave_d250": ppg_wave(np.mod(at(ph["cycles"], mid - 0.25), 1))}
        for h in (1, 2, 3):
            rows[f"card_cos{h}"] = np.cos(2 * np.pi * h * cyc_mid)
            rows[f"card_sin{h}"] = np.sin(2 * np.pi * h * cyc_mid)
        rows["hr_bpm"] = at(ph["hr"], mid)
        rows["hr_x_gamma5"] = at_f(hr_resp, mid)
        rows["resp_env"] = at(ph["env"], mid)
        rows["respenv_x_neggamma7"] = at_f(rv_resp, mid)
        rows["belt"] = at(belt_n, mid)
        rows["resp_sin"] = np.sin(at(ph["rphase"], mid))
        rows["alpha_x_hrf"] = at_f(alpha_bold, mid)
        for lbl, nm in names.items():
            m = labv == lbl
            rows[f"roi_{nm}_physio"] = noise_phys[m].mean(0)
            rows[f"roi_{nm}_alpha"] = (w_alpha[m][:, None] * at_f(alpha_bold, mid)[None]).mean(0)
            rows[f"roi_{nm}_total"] = total[m].mean(0)
        cols = list(rows)
        arr = np.column_stack([rows[c] for c in cols])
        np.savetxt(truth / f"sub-{sub}_truth.tsv", arr, delimiter="\t", header="\t".join(cols), comments="",
                   fmt="%.6f")
        pv = noise_phys.var(1) / total.var(1)
        summary.append(dict(subject=sub, n_vol=n_vol, beats=int(ph["peak_t"].size),
                            mean_hr=float(ph["hr"].mean()), st_cardiac=st_c, st_resp=st_r,
                            physio_var_share_median=float(np.median(pv)),
                            physio_var_share_by_roi={nm: float(np.median(pv[labv == k])) for k, nm in names.items()}))
    (truth / "summary.json").write_text(json.dumps(dict(seed=args.seed, tr=tr, n_vol=n_vol, slice_time=list(
        slice_time), subjects=summary), indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
