"""Independent EEG-fMRI generator (not eeg2fmri.simulate), written in session 12 (2026-12-05) by a user-testing helper
that had not read the package's simulators: a probe of real-format quirks and of sparse signal, not a benchmark setting.

    python benchmarks/sim_user_blobs.py OUTDIR      (H1_TR=1.5 changes the TR; seed fixed at 1234)

The BIDS dataset goes to OUTDIR; the ground truth (truth.json, truth_*.npy) and an EEG-only recording (eeg_only/) with
its noise-free BOLD go NEXT to it, into OUTDIR's parent folder: give OUTDIR inside a folder of its own (e.g. ub/bids).

Generative model (mine): three latent AR(2) processes at 20 Hz
  z_vis1 -> suppresses posterior alpha amplitude; BOLD in an occipital blob rises with z_vis1
  z_vis2 -> raises central beta amplitude;     BOLD in a central blob FALLS with z_vis2
  z_hid  -> BOLD only (frontal blob), invisible in EEG
BOLD = baseline * (1 + 0.012*HRF*(drive) + AR(1) noise + drift) + thermal noise, HRF = my gamma-variate difference.
Subjects differ in format / rate / markers / TR encoding / timing offsets.
"""
import json
import os
import sys
from pathlib import Path

import mne
import nibabel as nib
import numpy as np
import pybv
from scipy.signal import butter, lfilter, sosfiltfilt

if len(sys.argv) > 1 and sys.argv[1].startswith("-"):  # --help (it wrote a dataset into a folder named '--help' next to it)
    print(__doc__)
    sys.exit(0 if sys.argv[1] in ("-h", "--help") else 2)
OUT = Path(sys.argv[1] if len(sys.argv) > 1 else "user_blobs_bids")
TR = float(os.environ.get("H1_TR", "2.2"))
EEG_CH = ["Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "FC5", "FC1", "FC2", "FC6", "T7", "C3", "Cz", "C4",
          "T8", "TP9", "CP5", "CP1", "CP2", "CP6", "TP10", "P7", "P3", "Pz", "P4", "P8", "PO9", "O1", "Oz",
          "O2", "PO10"]
SHAPE = (22, 26, 20)
VOX = (3.0, 3.0, 3.5)


def affine():
    th = np.deg2rad(9.0)  # oblique: pitch 9 degrees
    R = np.array([[1, 0, 0], [0, np.cos(th), -np.sin(th)], [0, np.sin(th), np.cos(th)]])
    A = np.eye(4)
    A[:3, :3] = R @ np.diag(VOX)
    center = np.array(SHAPE) / 2.0
    A[:3, 3] = -A[:3, :3] @ center + np.array([0.0, -18.0, 12.0])
    return A


def hrf(tr_dt, dur=30.0):
    t = np.arange(0, dur, tr_dt)
    h = (t / 5.2) ** 6 * np.exp(-(t - 5.2) / (5.2 / 6)) - 0.12 * (t / 12.0) ** 12 * np.exp(-(t - 12.0) / 1.0)
    return h / np.abs(h).sum()


def ar2(n, rng, r=0.995, f=0.004):
    # slow resonant AR(2) at 20 Hz samples: timescale ~10-20 s
    a1, a2 = 2 * r * np.cos(2 * np.pi * f), -r * r
    x = lfilter([1.0], [1.0, -a1, -a2], rng.standard_normal(n))
    return (x - x.mean()) / x.std()


def bandnoise(n, sf, lo, hi, rng):
    sos = butter(4, [lo, hi], btype="band", fs=sf, output="sos")
    x = sosfiltfilt(sos, rng.standard_normal(n))
    return x / x.std()


def pink(n, rng):
    X = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(X))
    f[0] = 1
    x = np.fft.irfft(X / np.sqrt(f), n)
    return x / x.std()


def topo(center_names, pos, width=0.045):
    c = np.mean([pos[n] for n in center_names], axis=0)
    d = np.array([np.linalg.norm(pos[n] - c) for n in EEG_CH])
    return np.exp(-(d / width) ** 2)


def make_run(rng, sf, n_vol, lead, tail, subj_gain):
    """Return eeg (n_ch, n) in volts, names, vol onsets (s), bold 4D float."""
    mont = mne.channels.make_standard_montage("standard_1020")
    pos = mont.get_positions()["ch_pos"]
    dur = lead + n_vol * TR + tail
    n = int(round(dur * sf))
    lat_sf = 20.0
    nl = int(np.ceil(dur * lat_sf)) + 1
    z1, z2, z3 = ar2(nl, rng), ar2(nl, rng, f=0.006), ar2(nl, rng)
    tl = np.arange(nl) / lat_sf
    t = np.arange(n) / sf
    Z1, Z2 = np.interp(t, tl, z1), np.interp(t, tl, z2)
    alpha = bandnoise(n, sf, 8.5, 11.5, rng) * np.exp(-0.5 * Z1)
    beta = bandnoise(n, sf, 16, 24, rng) * np.exp(0.45 * Z2)
    ta = topo(["O1", "Oz", "O2"], pos) * subj_gain
    tb = topo(["C3", "Cz", "C4"], pos, 0.04)
    eeg = 12e-6 * np.outer(ta, alpha) + 5e-6 * np.outer(tb, beta)
    for i in range(len(EEG_CH)):
        eeg[i] += 6e-6 * pink(n, rng) + 1.5e-6 * rng.standard_normal(n)
    eeg += 3e-6 * np.sin(2 * np.pi * 50 * t)[None] * rng.uniform(0.5, 1.5, (len(EEG_CH), 1))
    # blinks
    eog = 4e-6 * pink(n, rng)
    for b in rng.uniform(0, dur, int(dur / 5)):
        k = np.exp(-0.5 * ((t - b) / 0.08) ** 2) * 150e-6
        eog += k
        eeg[:2] += 0.4 * k
    # ECG
    ecg = 20e-6 * rng.standard_normal(n) * 0.05
    for beat in np.arange(rng.uniform(0, 1), dur, 0.9):
        ecg += 900e-6 * np.exp(-0.5 * ((t - beat) / 0.012) ** 2)
    onsets = lead + np.arange(n_vol) * TR
    # BOLD drive sampled at volume onsets (latent at 20 Hz convolved)
    h = hrf(1 / lat_sf)
    d1, d2, d3 = (np.convolve(z, h)[:nl] for z in (z1, z2, z3))
    s1, s2, s3 = (np.interp(onsets, tl, d) for d in (d1, d2, d3))
    s1, s2, s3 = ((s - s.mean()) / s.std() for s in (s1, s2, s3))
    return eeg, eog, ecg, onsets, (s1, s2, s3), dur


def brain_maps():
    ii, jj, kk = np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij")
    c = (np.array(SHAPE) - 1) / 2
    r = ((ii - c[0]) / 9.5) ** 2 + ((jj - c[1]) / 11.5) ** 2 + ((kk - c[2]) / 8.5) ** 2
    brain = r < 1
    def blob(p, w):
        return np.exp(-(((ii - p[0]) ** 2 + (jj - p[1]) ** 2 + (kk - p[2]) ** 2) / (2 * w * w))) * brain

    occ = blob((11, 3, 9), 2.5)     # posterior (j small)
    cen = blob((11, 13, 15), 2.5)   # central-superior
    fro = blob((11, 22, 10), 2.5)   # frontal
    return brain, occ, cen, fro


def make_bold(rng, sig, n_vol, maps):
    brain, occ, cen, fro = maps
    s1, s2, s3 = sig
    base = np.where(brain, rng.uniform(700, 1100) * (1 + 0.1 * rng.standard_normal(SHAPE)), 15.0)
    act = (occ[..., None] * s1 - cen[..., None] * s2 + fro[..., None] * s3) * 0.012
    noise = np.zeros(SHAPE + (n_vol,))
    e = rng.standard_normal(SHAPE + (n_vol,)) * 0.006
    for k in range(n_vol):
        noise[..., k] = (0.5 * noise[..., k - 1] if k else 0) + e[..., k]
    drift = np.linspace(-1, 1, n_vol) * 0.01 * rng.standard_normal(SHAPE)[..., None]
    y = base[..., None] * (1 + act + noise + drift) + rng.standard_normal(SHAPE + (n_vol,)) * 4.0
    return y, act


def save_bold(path, y, tr, dtype, tunits="sec"):
    A = affine()
    if dtype == "int16":
        img = nib.Nifti1Image(y.astype(np.float32), A)
        img.set_data_dtype(np.int16)  # nibabel computes scl_slope/scl_inter on save
    else:
        img = nib.Nifti1Image(y.astype(np.float32), A)
    img.set_sform(A, 4)
    img.set_qform(A, 1)
    img.header.set_xyzt_units("mm", tunits)
    img.header["pixdim"][4] = tr * (1000 if tunits == "msec" else 1)
    img.header["slice_duration"] = 0
    nib.save(img, str(path))


def write_eeg(fmt, path, sf, eeg, eog, ecg, names_style, markers, extra_status=False):
    """markers: list of (time_s, label)."""
    ecg_name = "EKG" if names_style == "ekg" else "ECG"
    names = list(EEG_CH)
    if names_style == "edfref":
        names = [f"EEG {n.upper()}-REF" for n in EEG_CH]
    data = np.vstack([eeg, eog[None], ecg[None]])
    all_names = names + ["EOG", ecg_name]
    types = ["eeg"] * len(names) + ["eog", "ecg"]
    if extra_status:
        st = np.zeros(eeg.shape[1])
        for tm, _ in markers:
            i = int(round(tm * sf))
            st[i:i + 5] = 128
        data = np.vstack([data, st[None]])
        all_names.append("Status")
        types.append("stim")
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "bv_int16" or fmt == "bv_float":
        evs = [{"onset": int(round(tm * sf)), "description": int(lab[1:]), "type": "Response"} for tm, lab in markers]
        pybv.write_brainvision(data=data[:len(all_names) - extra_status], sfreq=sf,
                               ch_names=all_names[:len(all_names) - extra_status],
                               fname_base=path.name.replace(".vhdr", ""), folder_out=path.parent,
                               events=evs, resolution=0.1 if fmt == "bv_int16" else 1e-6, unit="µV",
                               fmt="binary_int16" if fmt == "bv_int16" else "binary_float32", overwrite=True)
    else:
        info = mne.create_info(all_names, sf, types)
        raw = mne.io.RawArray(data, info, verbose=False)
        raw.set_annotations(mne.Annotations([m[0] for m in markers], [0.0] * len(markers), [m[1] for m in markers]))
        mne.export.export_raw(str(path), raw, fmt="edf" if fmt == "edf" else "eeglab", overwrite=True, verbose=False)
    return all_names, types


def sidecars(eegpath, names, types, sf, line, task, bold_json, tr_in_json, tr):
    base = str(eegpath).rsplit("_eeg.", 1)[0]
    ty = {"eeg": "EEG", "eog": "EOG", "ecg": "ECG", "stim": "TRIG"}
    with open(base + "_channels.tsv", "w") as f:
        f.write("name\ttype\tunits\tstatus\n")
        for n, t in zip(names, types):
            f.write(f"{n}\t{ty[t]}\t{'n/a' if t == 'stim' else 'µV'}\tgood\n")
    js = {"TaskName": task, "SamplingFrequency": sf, "EEGReference": "FCz", "SoftwareFilters": "n/a"}
    if line is not None:
        js["PowerLineFrequency"] = line
    json.dump(js, open(base + "_eeg.json", "w"), indent=1)
    bj = {"TaskName": task, "SliceTiming": list(np.round(np.linspace(0, tr - tr / 30, 30), 4))[:5]}
    if tr_in_json:
        bj["RepetitionTime"] = tr
    json.dump(bj, open(bold_json, "w"), indent=1)


SUBJECTS = {
    # sub: (eeg format, sfreq, channel naming, marker style, bold dtype, line freq, lead, tail, status ch)
    "01": dict(fmt="bv_int16", sf=500.0, names="ekg", marker="R128", bold="int16", line=50, lead=10.0, tail=4.0),
    "02": dict(fmt="edf", sf=250.0, names="edfref", marker="TR", bold="float32", line=None, lead=6.0, tail=3.0,
               jitter=0.003, drop=1, status=True),
    "03": dict(fmt="eeglab", sf=1000.0, names="plain", marker="R128", bold="int16", line=50, lead=7.5, tail=8.0,
               dummies=2, tr_in_json_run2=False),
}
RUNS = {1: 80, 2: 60}  # volumes per run at TR 2.2 s: 176 s + 132 s = 5.1 min
TASK = "checker"


def main():
    rng = np.random.default_rng(1234)
    maps = brain_maps()
    OUT.mkdir(parents=True, exist_ok=True)
    json.dump({"Name": "h1 independent EEG-fMRI", "BIDSVersion": "1.8.0"}, open(OUT / "dataset_description.json", "w"))
    with open(OUT / "participants.tsv", "w") as f:
        f.write("participant_id\tage\n" + "".join(f"sub-{s}\t{20 + i}\n" for i, s in enumerate(SUBJECTS)))
    truth = {}
    for sub, cfg in SUBJECTS.items():
        gain = rng.lognormal(0, 0.2)
        for run, nv in RUNS.items():
            eeg, eog, ecg, onsets, sig, dur = make_run(rng, cfg["sf"], nv, cfg["lead"], cfg["tail"], gain)
            y, act = make_bold(rng, sig, nv, maps)
            stem = f"sub-{sub}_ses-01_task-{TASK}_run-{run}"
            fdir = OUT / f"sub-{sub}" / "ses-01" / "func"
            fdir.mkdir(parents=True, exist_ok=True)
            tunits = "sec"
            tr_json = True
            if sub == "03" and run == 2:
                tr_json = cfg.get("tr_in_json_run2", True)
            save_bold(fdir / f"{stem}_bold.nii.gz", y, TR, cfg["bold"], tunits)
            # markers
            mt = list(onsets)
            if cfg.get("dummies"):
                mt = [onsets[0] - TR * k for k in range(cfg["dummies"], 0, -1)] + mt
            if cfg.get("jitter"):
                mt = list(np.array(mt) + rng.uniform(-cfg["jitter"], cfg["jitter"], len(mt)))
            if cfg.get("drop"):
                del mt[len(mt) // 2]
            markers = [(m, cfg["marker"]) for m in mt]
            ext = {"bv_int16": "vhdr", "bv_float": "vhdr", "edf": "edf", "eeglab": "set"}[cfg["fmt"]]
            ep = OUT / f"sub-{sub}" / "ses-01" / "eeg" / f"{stem}_eeg.{ext}"
            names, types = write_eeg(cfg["fmt"], ep, cfg["sf"], eeg, eog, ecg, cfg["names"], markers,
                                     cfg.get("status", False))
            sidecars(ep, names, types, cfg["sf"], cfg["line"], TASK, fdir / f"{stem}_bold.json", tr_json, TR)
            truth[stem] = dict(onsets=onsets.tolist(), s=[s.tolist() for s in sig])
            np.save(OUT.parent / f"truth_{stem}_act.npy", act.astype(np.float32))
    # EEG-only recording for synthesis (unseen subject 04), BrainVision float32 5000 Hz, R128 markers
    eeg, eog, ecg, onsets, sig, dur = make_run(rng, 5000.0, 70, 9.0, 5.0, 1.0)
    y, act = make_bold(rng, sig, 70, maps)
    ep = OUT.parent / "eeg_only" / "sub-04_task-checker_eeg.vhdr"
    write_eeg("bv_float", ep, 5000.0, eeg, eog, ecg, "plain", [(m, "R128") for m in onsets])
    save_bold(OUT.parent / "eeg_only_truth_bold.nii.gz", y, TR, "float32")
    truth["sub-04_eeg_only"] = dict(onsets=onsets.tolist(), s=[s.tolist() for s in sig])
    json.dump(truth, open(OUT.parent / "truth.json", "w"))
    np.save(OUT.parent / "truth_maps.npy", np.stack(maps[1:]).astype(np.float32))
    print("wrote", OUT)


if __name__ == "__main__":
    main()
