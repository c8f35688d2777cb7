# ruff: noqa: C408, E701, E702, E731, F841, RUF046, RUF059, SIM115
"""A user-testing helper's own simultaneous EEG-fMRI generator (session 18, user test 4), kept as written: EEGLAB .set
(sub-01, ses-01, 1000 Hz, 'V' events) and EDF (sub-02/03, 500 Hz, 'TR' annotations) EEG, one bad channel per cap in
channels.tsv, ECG/EOG typed there only, 50 Hz line noise; TR 0.8 s int16 BOLD with scaling on an oblique 4 mm grid,
SliceTiming; theta/beta/broadband envelopes of three sources drive three regions (HRF peaks 4/6/8 s, 20 % of the
brain); ground truth (atlas + TSV, drives) and an EEG-only EDF.

    python benchmarks/sim_user_formats.py OUT      (needs eeglabio and edfio for MNE's exporters)

Original docstring:
Own simultaneous EEG-fMRI generator (ut18). Writes BIDS to /tmp/ut18/data/bids,
ground truth to /tmp/ut18/data/groundtruth, EEG-only to /tmp/ut18/data/eeg_only."""
import json
import os
import shutil
import sys

import mne
import nibabel as nib
import numpy as np
from scipy import signal, stats

OUT = sys.argv[1] if len(sys.argv) > 1 else "/tmp/ut18/data"
RNG = np.random.default_rng(18)
TR = 0.8
NVOL = 375                      # 5 min
GRID = (40, 48, 40); VOX = 4.0
CH = ["Fp1","Fp2","F7","F3","Fz","F4","F8","FC5","FC1","FC2","FC6","T7","C3","Cz","C4","T8",
      "TP9","CP5","CP1","CP2","CP6","TP10","P7","P3","Pz","P4","P8","PO9","O1","Oz","O2","PO10"]
MONT = mne.channels.make_standard_montage("standard_1020")
POS = MONT.get_positions()["ch_pos"]
EP = np.array([POS[c] for c in CH]); EP /= np.linalg.norm(EP, axis=1, keepdims=True)
HRF_PEAK = {1: 4.0, 2: 6.0, 3: 8.0}
REGIONS = {1: ("theta_A_pos", (12, 30, 26)), 2: ("beta_B_neg", (28, 24, 22)), 3: ("broad_C_pos", (18, 14, 16))}

def sph_gain(center_ch, width=0.6, sign=1.0):
    d = EP @ (np.array(POS[center_ch]) / np.linalg.norm(POS[center_ch]))
    ang = np.arccos(np.clip(d, -1, 1))
    return sign * np.exp(-ang**2 / (2 * width**2))

def bandnoise(n, sf, lo, hi, rng):
    sos = signal.butter(4, [lo, hi], "bandpass", fs=sf, output="sos")
    x = signal.sosfiltfilt(sos, rng.standard_normal(n)); return x / x.std()

def slow_latent(n10, rng):
    sos = signal.butter(2, [0.01, 0.1], "bandpass", fs=10, output="sos")
    x = signal.sosfiltfilt(sos, rng.standard_normal(n10 + 2000))[1000:-1000]; return (x - x.mean()) / x.std()

def hrf(peak, dt=0.1):
    t = np.arange(0, 32, dt); b = 0.9; a = peak / b + 1
    h = stats.gamma.pdf(t, a, scale=b) - stats.gamma.pdf(t, (peak + 10) / b + 1, scale=b) / 6
    return h / h.sum()

def envelope10(x, sf):       # mean |analytic| in 0.1 s bins -> 10 Hz
    e = np.abs(signal.hilbert(x)); step = int(sf / 10); n = len(e) // step
    return e[: n * step].reshape(n, step).mean(1)

def make_run(sf, rng, pre, with_bold=True):
    """pre: seconds of EEG before volume 0."""
    dur = pre + NVOL * TR + 4.0
    n = int(round(dur * sf)); n10 = n // int(sf / 10)
    lat = {k: slow_latent(n10, rng) for k in "ABC"}
    up = lambda z: np.interp(np.arange(n) / sf, np.arange(n10) / 10, z)
    srcA = bandnoise(n, sf, 4, 7, rng) * np.exp(0.6 * up(lat["A"]))
    srcB = bandnoise(n, sf, 15, 25, rng) * np.exp(0.6 * up(lat["B"]))
    srcC = bandnoise(n, sf, 1, 40, rng) * np.exp(0.5 * up(lat["C"]))
    gA = sph_gain("Fz", 0.5) * 12e-6; gB = sph_gain("C3", 0.45) * 6e-6; gC = sph_gain("Pz", 0.6) * 8e-6
    eeg = np.outer(gA, srcA) + np.outer(gB, srcB) + np.outer(gC, srcC)
    # background: occipital alpha + 6 pink sources + sensor noise
    alpha = bandnoise(n, sf, 8, 12, rng) * np.exp(0.4 * up(slow_latent(n10, rng)))
    eeg += np.outer(sph_gain("Oz", 0.6) * 15e-6, alpha)
    f = np.fft.rfftfreq(n, 1 / sf); f[0] = 1
    for c in rng.choice(CH, 6, replace=False):
        pink = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) / np.sqrt(f), n); pink /= pink.std()
        eeg += np.outer(sph_gain(c, 0.7, rng.choice([-1, 1])) * 8e-6, pink)
    eeg += 2e-6 * rng.standard_normal(eeg.shape)
    t = np.arange(n) / sf
    eeg += np.outer(rng.uniform(2, 8, len(CH)) * 1e-6, np.sin(2 * np.pi * 50 * t + rng.uniform(0, 6)))
    # ECG and EOG
    hr = 1.1; beats = np.cumsum(rng.normal(1 / hr, 0.05, int(dur * hr) + 5)); ecg = np.zeros(n)
    for b in beats[beats < dur - 1]:
        i = int(b * sf); w = np.arange(int(0.1 * sf)); ecg[i:i + len(w)] += 1e-3 * np.exp(-((w - len(w) / 2) / (0.01 * sf))**2)
    ecg += 20e-6 * rng.standard_normal(n)
    eog = 5e-6 * rng.standard_normal(n)
    for b in np.cumsum(rng.exponential(4, int(dur / 2))):
        if b < dur - 1:
            i = int(b * sf); w = np.arange(int(0.3 * sf)); eog[i:i + len(w)] += 150e-6 * np.sin(np.pi * w / len(w))
    for c, k in [("Fp1", .2), ("Fp2", .2), ("F7", .08), ("F8", .08), ("F3", .06), ("F4", .06)]:
        eeg[CH.index(c)] += k * eog
    data = np.vstack([eeg, ecg[None], eog[None]])
    onsets = pre + np.arange(NVOL) * TR
    # drives at 10 Hz (true envelopes / power), then HRF -> volume times
    eA = envelope10(bandnoise(0, 1, .1, .2, rng) if False else srcA, sf)
    eB = envelope10(srcB, sf); eC = envelope10(srcC, sf) ** 2
    drives = {}
    for reg, (e, sign) in {1: (eA, 1), 2: (eB, -1), 3: (eC, 1)}.items():
        z = (e - e.mean()) / e.std()
        conv = np.convolve(z, hrf(HRF_PEAK[reg]))[: len(z)]
        tv = np.interp(onsets, np.arange(len(z)) / 10, conv)
        drives[reg] = sign * (tv - tv.mean()) / tv.std()
    return data, sf, onsets, drives, dur

def brain():
    i, j, k = np.indices(GRID); c = np.array(GRID) / 2 - 0.5
    m = ((i - c[0]) / 16)**2 + ((j - c[1]) / 20)**2 + ((k - c[2]) / 15)**2 <= 1
    atlas = np.zeros(GRID, np.int16)
    for r, (_, ctr) in REGIONS.items():
        d = np.sqrt((i - ctr[0])**2 + (j - ctr[1])**2 + (k - ctr[2])**2)
        atlas[(d <= 7) & m] = r
    return m, atlas

def affine():
    a, b = np.deg2rad(7), np.deg2rad(4)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    rz = np.array([[np.cos(b), -np.sin(b), 0], [np.sin(b), np.cos(b), 0], [0, 0, 1]])
    A = np.eye(4); A[:3, :3] = rz @ rx * VOX
    A[:3, 3] = -A[:3, :3] @ (np.array(GRID) / 2 - 0.5) + np.array([0, -18, 10]); return A

def make_bold(drives, mask, atlas, rng):
    from scipy.ndimage import gaussian_filter
    nv = mask.sum(); base = np.where(mask, 800 + 400 * rng.random(GRID), 30 + 5 * rng.random(GRID))
    sig = np.zeros(GRID + (NVOL,), np.float32)
    thermal = rng.standard_normal(GRID + (NVOL,)).astype(np.float32) * 0.010
    phys = np.zeros_like(thermal); e = rng.standard_normal(GRID + (NVOL,)).astype(np.float32)
    for t in range(NVOL):
        sm = gaussian_filter(e[..., t], 1.0) * 2.0
        phys[..., t] = (0.8 * phys[..., t - 1] + 0.6 * sm) if t else sm
    phys *= 0.006 / phys[mask].std()
    g = signal.sosfiltfilt(signal.butter(2, 0.1, fs=1 / TR, output="sos"), rng.standard_normal(NVOL)); g = 0.004 * g / g.std()
    tt = np.linspace(-1, 1, NVOL); drift = (rng.normal(0, .01, GRID)[..., None] * tt + rng.normal(0, .005, GRID)[..., None] * tt**2)
    rel = thermal + phys + g + drift
    for r in (1, 2, 3):
        w = rng.uniform(0.008, 0.015, GRID) * (atlas == r)
        rel += w[..., None] * drives[r][None, None, None, :]
    bold = base[..., None] * (1 + rel) * np.where(mask, 1, 0.2)[..., None]
    return bold.astype(np.float32)

def save_bold(path, bold):
    img = nib.Nifti1Image(bold, affine()); img.set_data_dtype(np.int16)
    img.header.set_zooms((VOX, VOX, VOX, TR)); img.header.set_xyzt_units("mm", "sec")
    img.header.set_qform(affine(), 1); img.header.set_sform(affine(), 1)
    nib.save(img, path)

def make_raw(data, sf, onsets, desc, rng, drop=None):
    info = mne.create_info(CH + ["ECG", "EOG"], sf, ["eeg"] * len(CH) + ["ecg", "eog"])
    raw = mne.io.RawArray(data, info, verbose=False)
    samp = np.round(onsets * sf).astype(int) + rng.integers(-1, 2, len(onsets))
    keep = np.ones(len(samp), bool)
    if drop is not None: keep[drop] = False
    samp = samp[keep]
    raw.set_annotations(mne.Annotations(samp / sf, [0.0] * len(samp), [desc] * len(samp)))
    return raw, samp

def write_sidecars(base, raw, desc, samp, sf, bad):
    eegdir = os.path.dirname(base)
    with open(base + "_channels.tsv", "w") as f:
        f.write("name\ttype\tunits\tstatus\tstatus_description\n")
        for c in raw.ch_names:
            ty = {"ECG": "ECG", "EOG": "VEOG"}.get(c, "EEG")
            st = "bad" if c == bad else "good"
            f.write(f"{c}\t{ty}\tuV\t{st}\t{'high noise' if c == bad else 'n/a'}\n")
    json.dump({"TaskName": "rest", "SamplingFrequency": sf, "PowerLineFrequency": 50, "EEGReference": "FCz",
               "EEGChannelCount": len(CH), "ECGChannelCount": 1, "EOGChannelCount": 1,
               "RecordingDuration": raw.times[-1], "SoftwareFilters": "n/a", "Manufacturer": "ut18"},
              open(base + "_eeg.json", "w"), indent=1)
    with open(base + "_events.tsv", "w") as f:
        f.write("onset\tduration\ttrial_type\tvalue\tsample\n")
        f.writelines(f"{s / sf:.4f}\t0\t{desc}\t1\t{s}\n" for s in samp)

def main():
    if os.path.exists(OUT): shutil.rmtree(OUT)
    bids = f"{OUT}/bids"; gt = f"{OUT}/groundtruth"; os.makedirs(gt); os.makedirs(f"{OUT}/eeg_only")
    mask, atlas = brain()
    nib.save(nib.Nifti1Image(atlas, affine()), f"{gt}/atlas.nii.gz")
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine()), f"{gt}/brainmask.nii.gz")
    with open(f"{gt}/atlas.tsv", "w") as f:
        f.write("index\tname\n" + "".join(f"{r}\t{REGIONS[r][0]}\n" for r in REGIONS))
    print("brain voxels", mask.sum(), "region voxels", [(atlas == r).sum() for r in (1, 2, 3)],
          "fraction", (atlas > 0).sum() / mask.sum())
    json.dump({"description": "ut18", "Name": "ut18", "BIDSVersion": "1.8.0"}, open(f"{OUT}/README_gt.json", "w"))
    os.makedirs(bids)
    json.dump({"Name": "ut18 sim", "BIDSVersion": "1.8.0", "DatasetType": "raw"}, open(f"{bids}/dataset_description.json", "w"))
    open(f"{bids}/participants.tsv", "w").write("participant_id\tage\nsub-01\t30\nsub-02\t31\nsub-03\t32\n")
    # slice timing: 40 slices, multiband 4 -> 10 shots, interleaved
    shots = 10; order = list(range(0, shots, 2)) + list(range(1, shots, 2))
    st = [order.index(s % shots) * TR / shots for s in range(GRID[2])]
    plan = [("01", "ses-01", 1, "eeglab", 1000.0, "TP10", None),
            ("02", None, 1, "edf", 500.0, None, None),
            ("02", None, 2, "edf", 500.0, None, 187),
            ("03", None, 1, "edf", 500.0, "T8", None)]
    gt_rows = []
    for sub, ses, run, fmt, sf, bad, drop in plan:
        rng = np.random.default_rng(hash((sub, run)) % 2**32 if False else int(sub) * 10 + run)
        pre = rng.uniform(5, 9)
        data, sf, onsets, drives, dur = make_run(sf, rng, pre)
        if bad: data[CH.index(bad)] += 60e-6 * rng.standard_normal(data.shape[1])
        desc = "V" if fmt == "eeglab" else "TR"
        raw, samp = make_raw(data, sf, onsets, desc, rng, drop)
        sesdir = f"/{ses}" if ses else ""; sesent = f"_{ses}" if ses else ""
        stem = f"sub-{sub}{sesent}_task-rest_run-{run}"
        ed = f"{bids}/sub-{sub}{sesdir}/eeg"; fd = f"{bids}/sub-{sub}{sesdir}/func"; os.makedirs(ed, exist_ok=True); os.makedirs(fd, exist_ok=True)
        ext = {"eeglab": ".set", "edf": ".edf"}[fmt]
        mne.export.export_raw(f"{ed}/{stem}_eeg{ext}", raw, fmt=fmt, overwrite=True, verbose=False)
        write_sidecars(f"{ed}/{stem}", raw, desc, samp, sf, bad)
        bold = make_bold(drives, mask, atlas, rng)
        save_bold(f"{fd}/{stem}_bold.nii.gz", bold)
        json.dump({"TaskName": "rest", "RepetitionTime": TR, "SliceTiming": st, "MultibandAccelerationFactor": 4,
                   "EchoTime": 0.03}, open(f"{fd}/{stem}_bold.json", "w"), indent=1)
        np.savetxt(f"{gt}/{stem}_drives.tsv", np.column_stack([onsets] + [drives[r] for r in (1, 2, 3)]),
                   delimiter="\t", header="onset_s\tregion1\tregion2\tregion3", comments="", fmt="%.5f")
        gt_rows.append(dict(stem=stem, fmt=fmt, sfreq=sf, first_volume_s=pre, markers=len(samp), dropped=drop, bad=bad, n_vol=NVOL))
        print(stem, fmt, sf, "pre", round(pre, 3), "markers", len(samp))
    # EEG-only recording of sub-02 (EDF, TR markers; drives saved)
    rng = np.random.default_rng(99); pre = 6.3
    data, sf, onsets, drives, dur = make_run(500.0, rng, pre)
    raw, samp = make_raw(data, sf, onsets, "TR", rng)
    mne.export.export_raw(f"{OUT}/eeg_only/sub-02_task-rest_run-3_eeg.edf", raw, fmt="edf", overwrite=True, verbose=False)
    np.savetxt(f"{gt}/eegonly_sub-02_run-3_drives.tsv", np.column_stack([onsets] + [drives[r] for r in (1, 2, 3)]),
               delimiter="\t", header="onset_s\tregion1\tregion2\tregion3", comments="", fmt="%.5f")
    gt_rows.append(dict(stem="eegonly_sub-02_run-3", fmt="edf", sfreq=500.0, first_volume_s=pre, markers=len(samp), n_vol=NVOL))
    json.dump(dict(TR=TR, hrf_peaks=HRF_PEAK, regions={r: REGIONS[r][0] for r in REGIONS}, runs=gt_rows,
                   affine=affine().tolist()), open(f"{gt}/truth.json", "w"), indent=1, default=str)

if __name__ == "__main__":
    main()
