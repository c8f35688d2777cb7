#!/usr/bin/env python
"""Independent simultaneous EEG-fMRI BIDS generator, written in session 16 (2026-12-05) by a user-testing helper that had
not read the package's simulators: real-scanner formats and sizes, not a benchmark setting (nothing was chosen on it).

python benchmarks/sim_user_5khz.py OUT [--sfreq 5000] [--seed 0]      (about 4 min and 1.8 GB on 2 cores)

3 subjects x 2 runs (~6.3-6.8 min), BrainVision int16 EEG (32 10-20 ch + ECG) at 5 kHz with
R128 (sub-02: Stimulus/S  1) volume markers (+-1 sample jitter; sub-02 run-2 misses one marker
in the middle), BOLD int16 NIfTI with scl_slope/inter, LAS affine, TR 2 s, 52x62x44 3.5 mm,
3 saturated first volumes, drift, global signal, blobs driven by EEG source alpha/gamma
envelopes through a single-gamma HRF (peak ~6.5 s, no undershoot).
Ground truth in OUT/derivatives/gt/.
"""
import argparse
import json
import os

import nibabel as nib
import numpy as np
import pybv
from scipy import signal, stats

CH = ["Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "FC5", "FC1", "FC2", "FC6", "T7", "C3", "Cz",
      "C4", "T8", "CP5", "CP1", "CP2", "CP6", "P7", "P3", "Pz", "P4", "P8", "PO9", "O1", "Oz",
      "O2", "PO10", "TP9", "TP10"]
TR = 2.0
NSRC = 4
GRID = (52, 62, 44)
VOX = (3.5, 3.5, 3.5)


def bandnoise(rng, n, sfreq, lo, hi):
    X = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / sfreq)
    X[(f < lo) | (f > hi)] = 0
    x = np.fft.irfft(X, n)
    return (x / x.std()).astype(np.float32)


def pink(rng, n, sfreq, fmin=0.3):
    X = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / sfreq)
    X /= np.sqrt(np.maximum(f, fmin))
    x = np.fft.irfft(X, n)
    return (x / x.std()).astype(np.float32)


def slow_env(rng, n_slow, fs_slow, fc=0.08):
    b, a = signal.butter(2, fc / (fs_slow / 2))
    z = signal.filtfilt(b, a, rng.standard_normal(n_slow + 400))[200:-200]
    return z / z.std()


def hrf(fs, peak=6.5, length=25.0):
    t = np.arange(0, length, 1 / fs)
    k = 6.0  # gamma shape; mode = (k-1)*theta
    h = stats.gamma.pdf(t, k, scale=peak / (k - 1))
    return h / h.sum()


def brain_geometry(rng):
    ii, jj, kk = np.meshgrid(*[np.arange(s) for s in GRID], indexing="ij")
    c = np.array([25.5, 30.0, 20.0])
    r = np.array([20.0, 25.0, 17.0])
    d = ((ii - c[0]) / r[0]) ** 2 + ((jj - c[1]) / r[1]) ** 2 + ((kk - c[2]) / r[2]) ** 2
    brain = d <= 1
    # blobs: 2 per source, fixed across subjects
    blobs = np.zeros(GRID, np.int16)
    grng = np.random.default_rng(1234)
    centres = []
    for s in range(NSRC):
        for _b in range(2):
            while True:
                p = c + (grng.uniform(-0.6, 0.6, 3) * r)
                if not any(np.linalg.norm(p - q) < 10 for q in centres):
                    break
            centres.append(p)
            dd = np.sqrt(((ii - p[0])) ** 2 + (jj - p[1]) ** 2 + (kk - p[2]) ** 2)
            blobs[(dd <= 5.5) & brain & (blobs == 0)] = s + 1
    return brain, blobs, d


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--sfreq", type=float, default=5000.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out = args.out
    sf = args.sfreq
    rng = np.random.default_rng(args.seed)
    os.makedirs(out, exist_ok=True)
    brain, blobs, dist = brain_geometry(rng)
    print(f"brain voxels {brain.sum()}, blob voxels {(blobs > 0).sum()} "
          f"({(blobs > 0).sum() / brain.sum():.1%})")
    gt = os.path.join(out, "derivatives", "gt")
    os.makedirs(gt, exist_ok=True)
    affine = np.diag([-VOX[0], VOX[1], VOX[2], 1.0])
    affine[:3, 3] = [VOX[0] * (GRID[0] - 1) / 2, -VOX[1] * (GRID[1] - 1) / 2 - 15,
                     -VOX[2] * (GRID[2] - 1) / 2 + 10]
    nib.save(nib.Nifti1Image(blobs, affine), os.path.join(gt, "blobs.nii.gz"))
    nib.save(nib.Nifti1Image(brain.astype(np.uint8), affine), os.path.join(gt, "brain.nii.gz"))
    json.dump({"Name": "ut16 independent EEG-fMRI sim", "BIDSVersion": "1.8.0",
               "DatasetType": "raw"}, open(os.path.join(out, "dataset_description.json"), "w"), indent=1)
    with open(os.path.join(out, "participants.tsv"), "w") as f:
        f.write("participant_id\tage\tsex\n")
        for s in range(1, 4):
            f.write(f"sub-{s:02d}\t{20 + 3 * s}\t{'MF'[s % 2]}\n")
    # source -> blob drive weights: alpha envelope negative, gamma positive
    w_alpha = np.array([-1.0, -0.7, -0.3, 0.0])
    w_gamma = np.array([0.3, 0.6, 1.0, 1.0])
    nslices = GRID[2]
    order = list(range(0, nslices, 2)) + list(range(1, nslices, 2))
    slice_timing = [0.0] * nslices
    for k, sl in enumerate(order):
        slice_timing[sl] = round(k * TR / nslices, 4)
    nvols = {(1, 1): 200, (1, 2): 192, (2, 1): 197, (2, 2): 189, (3, 1): 203, (3, 2): 195}
    truth = {}
    for sub in range(1, 4):
        srng = np.random.default_rng(args.seed * 100 + sub)
        mix = srng.standard_normal((32, NSRC)) * 8e-6  # V per unit source (random per subject)
        for run in (1, 2):
            nv = nvols[(sub, run)]
            lead_s = srng.uniform(8, 12)  # EEG recorded before first volume
            tail_s = srng.uniform(2, 5)
            dur = lead_s + nv * TR + tail_s
            n = int(round(dur * sf))
            # slow envelopes at 10 Hz
            fs_slow = 10.0
            n_slow = int(np.ceil(dur * fs_slow)) + 1
            t_slow = np.arange(n_slow) / fs_slow
            t = np.arange(n) / sf
            ealpha = np.stack([slow_env(srng, n_slow, fs_slow) for _ in range(NSRC)])
            egamma = np.stack([slow_env(srng, n_slow, fs_slow) for _ in range(NSRC)])
            S = np.zeros((NSRC, n), np.float32)
            for k in range(NSRC):
                amp_a = np.exp(0.5 * np.interp(t, t_slow, ealpha[k])).astype(np.float32)
                amp_g = np.exp(0.5 * np.interp(t, t_slow, egamma[k])).astype(np.float32)
                S[k] = 1.5 * amp_a * bandnoise(srng, n, sf, 8, 12) + 0.5 * amp_g * bandnoise(srng, n, sf, 40, 70)
            eeg = (mix @ S).astype(np.float32)
            del S
            for c in range(32):
                eeg[c] += 6e-6 * pink(srng, n, sf)
                eeg[c] += 0.3e-6 * srng.standard_normal(n).astype(np.float32)
            eeg += 0.5e-6 * np.sin(2 * np.pi * 50 * t).astype(np.float32)
            # blinks on frontal channels
            blink_times = np.cumsum(srng.exponential(5.0, size=int(dur / 3)))
            blink_times = blink_times[blink_times < dur - 1]
            bl = np.zeros(n, np.float32)
            w = int(0.4 * sf)
            shape = np.hanning(w).astype(np.float32)
            for bt in blink_times:
                i0 = int(bt * sf)
                if i0 + w < n:
                    bl[i0:i0 + w] += shape
            for name, g in (("Fp1", 150e-6), ("Fp2", 150e-6), ("F7", 60e-6), ("F8", 60e-6), ("F3", 40e-6),
                            ("Fz", 45e-6), ("F4", 40e-6)):
                eeg[CH.index(name)] += g * bl
            # ECG
            hr = srng.uniform(1.0, 1.3)
            beats = np.arange(0.3, dur, 1 / hr) + srng.normal(0, 0.02, int(np.ceil(dur * hr)))[: len(np.arange(0.3, dur, 1 / hr))]
            ecg = np.zeros(n, np.float32)
            qrs = signal.windows.gaussian(int(0.04 * sf), int(0.008 * sf)).astype(np.float32)
            for bt in beats:
                i0 = int(bt * sf)
                if i0 + len(qrs) < n:
                    ecg[i0:i0 + len(qrs)] += qrs
            ecg = 800e-6 * ecg + 20e-6 * srng.standard_normal(n).astype(np.float32)
            data = np.vstack([eeg, ecg[None]])
            # markers
            onsets = np.round(lead_s * sf + np.arange(nv) * TR * sf).astype(int) + srng.integers(-1, 2, nv)
            vol_times = onsets / sf  # true acquisition starts
            if sub == 2:
                evs = [{"onset": int(o), "description": 1, "type": "Stimulus"} for o in onsets]
            else:
                evs = [{"onset": int(o), "description": 128, "type": "Response"} for o in onsets]
            missing = None
            if (sub, run) == (2, 2):
                missing = nv // 2
                evs.pop(missing)
            base = f"sub-{sub:02d}_ses-01_task-rest_run-{run}"
            eegdir = os.path.join(out, f"sub-{sub:02d}", "ses-01", "eeg")
            funcdir = os.path.join(out, f"sub-{sub:02d}", "ses-01", "func")
            os.makedirs(eegdir, exist_ok=True)
            os.makedirs(funcdir, exist_ok=True)
            pybv.write_brainvision(data=data, sfreq=sf, ch_names=CH + ["ECG"], fname_base=base + "_eeg",
                                   folder_out=eegdir, events=evs, resolution=0.1, unit="µV", fmt="binary_int16",
                                   overwrite=True)
            del data, eeg
            json.dump({"TaskName": "rest", "SamplingFrequency": sf, "PowerLineFrequency": 50,
                       "EEGReference": "FCz", "EEGChannelCount": 32, "ECGChannelCount": 1,
                       "RecordingDuration": dur, "Manufacturer": "Brain Products"},
                      open(os.path.join(eegdir, base + "_eeg.json"), "w"), indent=1)
            with open(os.path.join(eegdir, base + "_channels.tsv"), "w") as f:
                f.write("name\ttype\tunits\tstatus\n")
                for c in CH:
                    f.write(f"{c}\tEEG\tµV\tgood\n")
                f.write("ECG\tECG\tµV\tgood\n")
            # BOLD drive: envelopes (power) through single-gamma HRF, sampled at mid-volume
            h = hrf(fs_slow)
            drive = np.zeros((NSRC, n_slow))
            for k in range(NSRC):
                pa = np.exp(ealpha[k])
                pg = np.exp(egamma[k])
                d = w_alpha[k] * (pa - pa.mean()) / pa.std() + w_gamma[k] * (pg - pg.mean()) / pg.std()
                drive[k] = np.convolve(d, h)[:n_slow]
            tv = vol_times + TR / 2
            bold_drive = np.stack([np.interp(tv, t_slow, drive[k]) for k in range(NSRC)])
            bold_drive = (bold_drive - bold_drive.mean(1, keepdims=True)) / bold_drive.std(1, keepdims=True)
            # BOLD image
            base_int = np.where(brain, 900.0 - 150 * np.clip(dist, 0, 1), 0.0)
            base_int *= srng.uniform(0.9, 1.1)
            glob = slow_env(srng, nv, 1 / TR, fc=0.05) * 0.004
            tt = np.arange(nv) / nv
            drift = 0.015 * tt + 0.005 * (tt - 0.5) ** 2
            Y = np.empty(GRID + (nv,), np.float32)
            sig = np.zeros((int(brain.sum()), nv), np.float32)
            bl_in = blobs[brain]
            for k in range(NSRC):
                sig[bl_in == k + 1] = 0.012 * bold_drive[k]
            noise = 0.01 * srng.standard_normal((int(brain.sum()), nv)).astype(np.float32)
            rel = 1 + sig + noise + glob[None] + drift[None]
            sat = np.ones(nv)
            sat[:3] = [1.6, 1.25, 1.07]
            rel = rel * sat[None]
            Yb = base_int[brain][:, None] * rel
            Y[:] = 0
            Y[brain] = Yb
            Y[~brain] = np.abs(8 * srng.standard_normal((int((~brain).sum()), nv)))
            img = nib.Nifti1Image(Y, affine)
            img.set_data_dtype(np.int16)
            img.header.set_xyzt_units("mm", "sec")
            img.header["pixdim"][4] = TR
            img.header.set_qform(affine, code=1)
            img.header.set_sform(affine, code=1)
            img.header.set_dim_info(slice=2)
            nib.save(img, os.path.join(funcdir, base + "_bold.nii.gz"))
            json.dump({"TaskName": "rest", "RepetitionTime": TR, "SliceTiming": slice_timing,
                       "EchoTime": 0.03, "FlipAngle": 80, "Manufacturer": "Siemens",
                       "PhaseEncodingDirection": "j-"},
                      open(os.path.join(funcdir, base + "_bold.json"), "w"), indent=1)
            truth[base] = {"n_vols": nv, "lead_s": lead_s, "dur_s": dur, "first_marker_s": float(vol_times[0]),
                           "missing_marker_index": missing,
                           "marker": "Stimulus/S  1" if sub == 2 else "Response/R128"}
            np.save(os.path.join(gt, base + "_drive.npy"), bold_drive)
            print(base, truth[base], flush=True)
    json.dump(truth, open(os.path.join(gt, "truth.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
