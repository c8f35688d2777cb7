# ruff: noqa  (a user-testing helper's generator, kept as written so that its numbers reproduce)
"""Independent generator written in session 16 (2026-12-05) by a user-testing helper that had not read the package's
simulators: raw BIDS EEG (EDF+, EEGLAB) + fMRIPrep derivatives with confounds. Not a benchmark setting.

    python benchmarks/sim_user_fmriprep.py OUT_BIDS [SEED]    (seconds; writes OUT_BIDS/derivatives/fmriprep, atlas and eegonly/ beside)

SEED (default 0, the helper's dataset) draws another dataset of the same design (session 17: design seeds for the
flagship's validation rule, benchmarks/design_choice_rules.py).

sub-01: EDF+ with 'TR' annotations; sub-02: EEGLAB .set/.fdt with 'Volume' events; sub-03: EDF+ with 'TR'.
EEG 250 Hz, 31 EEG + ECG, starts 12 s before the scan. TR 2 s, 152 volumes (2 non-steady, brighter).
Three sources (alpha occipital, beta left motor, theta frontal) whose band envelopes drive three regions' BOLD.
Eyes-closed/open 30 s blocks modulate alpha (events in func/*_events.tsv).
Also writes eegonly/sub-04_rest_eegonly.edf (2.5 min, EEG-only, TR markers) for synthesize.
"""
import json
import sys
from pathlib import Path

import mne
import nibabel as nib
import numpy as np
from scipy import signal
from scipy.stats import gamma

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/ut16b/bids")
SEED = int(sys.argv[2]) if len(sys.argv) > 2 else 0
SF = 250.0
TR = 2.0
NV = 152
NSS = 2
PRE = 12.0
POST = 10.0
CH = ["Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "FC5", "FC1", "FC2", "FC6", "T7", "C3", "Cz", "C4", "T8",
      "CP5", "CP1", "CP2", "CP6", "P7", "P3", "Pz", "P4", "P8", "PO9", "O1", "Oz", "O2", "PO10", "FCz"]
mont = mne.channels.make_standard_montage("standard_1020")
pos = mont.get_positions()["ch_pos"]
XYZ = np.array([pos[c] for c in CH])
# MNI 4 mm grid, cropped
SHAPE = (36, 44, 36)
AFF = np.array([[4.0, 0, 0, -70], [0, 4.0, 0, -104], [0, 0, 4.0, -56], [0, 0, 0, 1]])
REGIONS = {  # name: (MNI centre, band, radius mm)
    "occipital_alpha": ((0, -84, 8), (8, 13), 14),
    "lmotor_beta": ((-38, -24, 52), (13, 30), 12),
    "frontal_theta": ((0, 44, 20), (4, 8), 12),
}
SRC_SITES = {"occipital_alpha": "Oz", "lmotor_beta": "C3", "frontal_theta": "Fz"}


def hrf(t):
    return gamma.pdf(t, 6) - gamma.pdf(t, 16) / 6.0


def vox_mm():
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij"), -1).reshape(-1, 3)
    return (np.c_[ijk, np.ones(len(ijk))] @ AFF.T)[:, :3].reshape(*SHAPE, 3)


def brain_mask():
    xyz = vox_mm()
    return (((xyz[..., 0]) / 68) ** 2 + ((xyz[..., 1] + 18) / 86) ** 2 + ((xyz[..., 2] - 8) / 62) ** 2) <= 1


def slow_noise(rng, n, sf, fc=0.08):
    b, a = signal.butter(2, fc / (sf / 2))
    x = signal.filtfilt(b, a, rng.standard_normal(n + 2000))[1000:-1000]
    return x / x.std()


def make_eeg(rng, dur, blocks=None, t0_scan=PRE):
    n = int(dur * SF)
    t = np.arange(n) / SF
    # background: pink-ish noise, spatially mixed
    wn = rng.standard_normal((len(CH), n))
    b, a = signal.butter(1, 2.0 / (SF / 2))
    bg = signal.lfilter(b, a, wn) * 3 + wn * 0.5
    mix = np.exp(-np.linalg.norm(XYZ[:, None] - XYZ[None], axis=-1) / 0.04)
    bg = mix @ bg / mix.sum(1, keepdims=True) * 8e-6
    envs = {}
    data = bg.copy()
    for name, (c, band, r) in REGIONS.items():
        env = slow_noise(rng, n, SF, 0.05)
        if name == "occipital_alpha" and blocks is not None:
            box = np.zeros(n)
            for on, du in blocks:
                box[(t >= t0_scan + on) & (t < t0_scan + on + du)] = 1.0
            env = 0.6 * env + 1.5 * (box - box.mean())
        amp = np.exp(0.5 * env)  # positive amplitude
        osc = signal.filtfilt(*signal.butter(4, [band[0] / (SF / 2), band[1] / (SF / 2)], "band"), rng.standard_normal(n))
        osc /= osc.std()
        s = amp * osc
        site = XYZ[CH.index(SRC_SITES[name])]
        topo = np.exp(-np.linalg.norm(XYZ - site, axis=1) ** 2 / (2 * 0.035 ** 2))
        data += np.outer(topo, s) * 12e-6
        envs[name] = amp
    # ECG
    hr = 1.1
    ecg = np.zeros(n)
    beats = np.arange(0.3, dur, 1 / hr) + rng.normal(0, 0.02, int(np.ceil(dur * hr)))[: len(np.arange(0.3, dur, 1 / hr))]
    for bt in beats:
        i = int(bt * SF)
        if i < n - 10:
            ecg[i:i + 10] += np.hanning(10)
    ecg = ecg * 1e-3 + rng.standard_normal(n) * 1e-5
    return data, ecg, envs


def bold_from_envs(rng, envs, dur_eeg, mask):
    # volume k acquired at PRE + k*TR in EEG time; envelope -> HRF
    t = np.arange(int(dur_eeg * SF)) / SF
    h = hrf(np.arange(0, 32, 1 / SF))
    xyz = vox_mm()
    nvox = mask.sum()
    base = 800 + 400 * rng.random(SHAPE)
    base = signal.convolve(base, np.ones((3, 3, 3)) / 27, mode="same")
    Y = np.zeros(SHAPE + (NV,), np.float32)
    vt = PRE + np.arange(NV) * TR + TR / 2
    idx = np.clip((vt * SF).astype(int), 0, len(t) - 1)
    # motion confounds
    mot = np.cumsum(rng.normal(0, 0.01, (NV, 6)), axis=0)
    mot[:, 3:] *= 0.02
    noise = rng.standard_normal((NV,) + SHAPE)
    for k in range(1, NV):
        noise[k] = 0.4 * noise[k - 1] + noise[k]
    drive = {}
    for name, env in envs.items():
        z = (env - env.mean()) / env.std()
        conv = signal.fftconvolve(z, h)[: len(z)] / SF
        s = conv[idx]
        drive[name] = (s - s.mean()) / s.std()
    pct = np.zeros((NV,) + SHAPE)
    for name, (c, band, r) in REGIONS.items():
        d = np.linalg.norm(xyz - np.array(c), axis=-1)
        w = np.clip(1.2 - d / r, 0, 1)
        pct += drive[name][:, None, None, None] * w[None] * 0.012
    glob = slow_noise(rng, NV, 1 / TR, 0.05) * 0.003
    Yt = base[None] * (1 + pct + 0.006 * noise + glob[:, None, None, None] + 0.004 * mot[:, 0, None, None, None])
    Yt[:NSS] *= np.array([1.6, 1.3])[:, None, None, None]  # non-steady-state, brighter
    Yt *= mask[None]
    Y = np.moveaxis(Yt, 0, -1).astype(np.float32)
    return Y, mot


def write_bids_common():
    ROOT.mkdir(parents=True, exist_ok=True)
    (ROOT / "dataset_description.json").write_text(json.dumps({"Name": "ut16b", "BIDSVersion": "1.8.0"}))
    (ROOT / "participants.tsv").write_text("participant_id\tgroup\nsub-01\tA\nsub-02\tB\nsub-03\tA\n")
    d = ROOT / "derivatives" / "fmriprep"
    d.mkdir(parents=True, exist_ok=True)
    (d / "dataset_description.json").write_text(json.dumps({"Name": "fMRIPrep - fMRI PREProcessing workflow", "BIDSVersion": "1.8.0",
                                                          "DatasetType": "derivative", "GeneratedBy": [{"Name": "fMRIPrep", "Version": "23.2.1"}]}))


def write_subject(sub, fmt, marker, seed):
    rng = np.random.default_rng(seed)
    dur = PRE + NV * TR + POST
    blocks = [(on, 30.0) for on in np.arange(20, NV * TR - 30, 60.0)]  # eyes closed blocks (alpha up)
    data, ecg, envs = make_eeg(rng, dur, blocks)
    info = mne.create_info(CH + ["ECG"], SF, ["eeg"] * len(CH) + ["ecg"])
    raw = mne.io.RawArray(np.vstack([data, ecg[None]]), info, verbose="error")
    raw.set_montage(mont, on_missing="ignore")
    onsets = PRE + np.arange(NV) * TR
    raw.set_annotations(mne.Annotations(onsets, [0.0] * NV, [marker] * NV))
    eegd = ROOT / f"sub-{sub}" / "eeg"
    eegd.mkdir(parents=True, exist_ok=True)
    stem = f"sub-{sub}_task-rest"
    if fmt == "edf":
        mne.export.export_raw(eegd / f"{stem}_eeg.edf", raw, fmt="edf", overwrite=True, verbose="error")
    else:
        mne.export.export_raw(eegd / f"{stem}_eeg.set", raw, fmt="eeglab", overwrite=True, verbose="error")
    (eegd / f"{stem}_eeg.json").write_text(json.dumps({"TaskName": "rest", "SamplingFrequency": SF, "PowerLineFrequency": 50,
                                                       "EEGReference": "FCz", "SoftwareFilters": "n/a", "EEGChannelCount": len(CH),
                                                       "ECGChannelCount": 1, "RecordingDuration": dur}))
    with open(eegd / f"{stem}_channels.tsv", "w") as fh:
        fh.write("name\ttype\tunits\tstatus\n")
        for c in CH:
            fh.write(f"{c}\tEEG\tuV\tgood\n")
        fh.write("ECG\tECG\tuV\tgood\n")
    mask = brain_mask()
    Y, mot = bold_from_envs(rng, envs, dur, mask)
    # raw func (native-ish, scanner space)
    fd = ROOT / f"sub-{sub}" / "func"
    fd.mkdir(parents=True, exist_ok=True)
    raw_img = nib.Nifti1Image(Y, AFF)
    raw_img.header.set_xyzt_units("mm", "sec")
    raw_img.header["pixdim"][4] = TR
    raw_img.set_sform(AFF, 1); raw_img.set_qform(AFF, 1)
    nib.save(raw_img, fd / f"{stem}_bold.nii.gz")
    (fd / f"{stem}_bold.json").write_text(json.dumps({"TaskName": "rest", "RepetitionTime": TR}))
    with open(fd / f"{stem}_events.tsv", "w") as fh:
        fh.write("onset\tduration\ttrial_type\n")
        for on, du in blocks:
            fh.write(f"{on:.1f}\t{du:.1f}\teyes_closed\n")
    # fMRIPrep derivatives
    dd = ROOT / "derivatives" / "fmriprep" / f"sub-{sub}" / "func"
    dd.mkdir(parents=True, exist_ok=True)
    pre = f"{stem}_space-MNI152NLin2009cAsym_res-2"
    img = nib.Nifti1Image(Y, AFF)
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = TR
    img.set_sform(AFF, 4); img.set_qform(AFF, 4)
    img.header.set_data_dtype(np.float32)
    nib.save(img, dd / f"{pre}_desc-preproc_bold.nii.gz")
    (dd / f"{pre}_desc-preproc_bold.json").write_text(json.dumps({"RepetitionTime": TR, "SkullStripped": False, "TaskName": "rest"}))
    m = nib.Nifti1Image(mask.astype(np.uint8), AFF)
    m.set_sform(AFF, 4); m.set_qform(AFF, 4)
    nib.save(m, dd / f"{pre}_desc-brain_mask.nii.gz")
    # confounds
    xyz = vox_mm()
    Ym = Y[mask]
    gs = Ym.mean(0)
    csf_m = mask & (np.linalg.norm(xyz - np.array([0, -10, 12]), axis=-1) < 10)
    wm_m = mask & (np.linalg.norm(xyz - np.array([26, -10, 30]), axis=-1) < 10)
    csf = Y[csf_m].mean(0); wm = Y[wm_m].mean(0)
    dm = np.diff(mot, axis=0)
    fdv = np.abs(dm[:, :3]).sum(1) + 50 * np.abs(dm[:, 3:]).sum(1)
    cols = ["global_signal", "csf", "white_matter", "trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z",
            "framewise_displacement", "non_steady_state_outlier00", "non_steady_state_outlier01"]
    with open(dd / f"{stem}_desc-confounds_timeseries.tsv", "w") as fh:
        fh.write("\t".join(cols) + "\n")
        for k in range(NV):
            row = [f"{gs[k]:.4f}", f"{csf[k]:.4f}", f"{wm[k]:.4f}"] + [f"{v:.6f}" for v in mot[k]]
            row.append("n/a" if k == 0 else f"{fdv[k-1]:.6f}")
            row += ["1" if k == 0 else "0", "1" if k == 1 else "0"]
            fh.write("\t".join(row) + "\n")


def write_eegonly(seed=99):
    rng = np.random.default_rng(seed)
    dur = 150.0
    data, ecg, envs = make_eeg(rng, dur, None)
    info = mne.create_info(CH + ["ECG"], SF, ["eeg"] * len(CH) + ["ecg"])
    raw = mne.io.RawArray(np.vstack([data, ecg[None]]), info, verbose="error")
    on = 8.0 + np.arange(65) * TR
    raw.set_annotations(mne.Annotations(on, [0.0] * len(on), ["TR"] * len(on)))
    out = ROOT.parent / "eegonly"
    out.mkdir(exist_ok=True)
    mne.export.export_raw(out / "sub-04_rest_eegonly.edf", raw, fmt="edf", overwrite=True, verbose="error")
    np.save(out / "envs.npy", np.stack([envs[k] for k in REGIONS]))


def write_atlas():
    xyz = vox_mm()
    lab = np.zeros(SHAPE, np.int16)
    extra = {"ctrl_right_temporal": ((56, -20, -4), None, 10), "ctrl_right_parietal": ((40, -60, 40), None, 10)}
    for i, (name, (c, _, r)) in enumerate(list(REGIONS.items()) + list(extra.items()), 1):
        lab[np.linalg.norm(xyz - np.array(c), axis=-1) < 10] = i
    lab[~brain_mask()] = 0
    img = nib.Nifti1Image(lab, AFF)
    img.set_sform(AFF, 4); img.set_qform(AFF, 4)
    nib.save(img, ROOT.parent / "atlas_labels.nii.gz")
    (ROOT.parent / "atlas_labels.tsv").write_text("index\tname\n" + "".join(f"{i}\t{n}\n" for i, n in enumerate(list(REGIONS) + list(extra), 1)))


if __name__ == "__main__":
    write_bids_common()
    write_subject("01", "edf", "TR", 1 + 3 * SEED)
    write_subject("02", "set", "Volume", 2 + 3 * SEED)
    write_subject("03", "edf", "TR", 3 + 3 * SEED)
    write_eegonly(99 + SEED)
    write_atlas()
    print("done", ROOT)
