"""User-test generator (user test 54): a two-site simultaneous EEG-fMRI study in BIDS.

Written independently of the package's simulator. Site A: 31 EEG + ECG channels, BrainVision
(int16, 0.1 uV), 500 Hz, ``R128`` volume markers in the ``.vmrk``, 50 Hz mains, BOLD on a 4 mm
isotropic LAS grid. Site B: 37 EEG + ECG + 2 EOG channels, EDF+ at 250 Hz, upper-case names, some
``EEG XX-REF``, TP9 missing and seven channels site A lacks, ``Volume`` triggers as EDF annotations
and in ``events.tsv``, 60 Hz mains, BOLD on a 3 mm oblique grid that also keeps two
non-steady-state volumes. Both BOLD grids are in one MNI-like space (sform/qform code 4), int16 with
``scl_slope``.

Ground truth: three regions whose BOLD follows the HRF-convolved log power of one EEG rhythm each
(occipital: -alpha, anterior cingulate: +frontal-midline theta, left motor: -left-central beta)
and a control region with slow noise unrelated to the EEG. The HRF is a two-gamma shape with a
per-subject peak time (5.0-6.2 s). A region's signal is sampled at mid-acquisition (marker + TR/2).

Nuisances: sub-02's EEG starts 20 s before the first volume and stops before the last 4 volumes;
sub-01 lost one R128 marker mid-run; every marker has +-1 sample of jitter.

Writes ``OUT/bids`` (4 subjects), ``OUT/eeg_only/sub-05_task-rest_eeg.edf`` (site B, no scanner, no
markers) and ``OUT/truth`` (atlas on the MNI 2 mm grid + TSV of names, per-subject region series at
the BOLD volumes, continuous region series on the EEG file's clock, parameters).

    python benchmarks/sim_user_multisite.py --out /tmp/ut54/data --seed 0
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import mne
import nibabel as nib
import numpy as np
from scipy import ndimage, signal

TR = 2.0
N_VOL = 180
DT = 0.1  # resolution of the latent drives (s)

SITE_A_EEG = ["Fp1", "Fp2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2", "F7", "F8", "T7", "T8",
              "P7", "P8", "Fz", "Cz", "Pz", "Oz", "FC1", "FC2", "CP1", "CP2", "FC5", "FC6", "CP5",
              "CP6", "TP9", "TP10", "POz"]
SITE_B_EXTRA = ["AF3", "AF4", "F1", "F2", "FCz", "CPz", "PO3"]
SITE_B_EEG = [c for c in SITE_A_EEG if c != "TP9"] + SITE_B_EXTRA  # 37

# regions: name, MNI centre (mm), radius (mm), driving rhythm or None, coupling sign/gain (% signal)
REGIONS = [
    ("occipital_alpha", (0.0, -86.0, 6.0), 14.0, "alpha", -1.2),
    ("acc_theta", (0.0, 26.0, 30.0), 12.0, "theta", 0.9),
    ("lmotor_beta", (-36.0, -22.0, 56.0), 12.0, "beta", -0.9),
    ("rtemporal_control", (56.0, -20.0, -8.0), 12.0, None, 0.9),
]
# rhythms: centre frequency (Hz), half bandwidth, scalp sites whose mean direction is the source, amplitude (uV)
RHYTHMS = {
    "alpha": (10.0, 1.5, ["O1", "O2", "Oz", "POz"], 14.0),
    "theta": (6.0, 1.0, ["Fz", "FCz", "Cz"], 7.0),
    "beta": (20.0, 3.0, ["C3", "CP5", "FC5"], 5.0),
}
BRAIN_C = np.array([0.0, -17.0, 15.0])
BRAIN_AX = np.array([70.0, 87.0, 64.0])


def _hrf(t: np.ndarray, peak: float) -> np.ndarray:
    """Two-gamma HRF of our own: response peaking near ``peak`` s, undershoot at ~peak + 6 s."""
    a1, a2 = 7.0, 13.0
    h = (t / peak) ** a1 * np.exp(-a1 * (t / peak - 1.0))
    p2 = peak + 6.0
    h2 = (t / p2) ** a2 * np.exp(-a2 * (t / p2 - 1.0))
    out = np.where(t > 0, h - 0.25 * h2, 0.0)
    return out / out.sum()


def _slow_gauss(rng: np.random.Generator, n: int, cutoff_hz: float) -> np.ndarray:
    """Unit-variance Gaussian process on the DT grid, low-passed at ``cutoff_hz``."""
    sos = signal.butter(2, cutoff_hz, fs=1.0 / DT, output="sos")
    x = signal.sosfiltfilt(sos, rng.standard_normal(n + 400))[200:-200]
    return (x - x.mean()) / x.std()


def _pink(rng: np.random.Generator, n: int, fs: float) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / fs)
    f[0] = f[1]
    x = np.fft.irfft(spec / np.sqrt(f), n)
    return x / x.std()


_POS: dict = {}


def _unit_positions(names: list[str]) -> np.ndarray:
    if not _POS:
        kind = "colin27_1005" if "colin27_1005" in mne.channels.get_builtin_montages() else "standard_1005"
        _POS.update({k.lower(): v for k, v in
                     mne.channels.make_standard_montage(kind).get_positions()["ch_pos"].items()})
    lut = _POS
    p = np.array([lut[n.lower()] for n in names]) - np.array([0.0, -0.015, 0.0])
    return p / np.linalg.norm(p, axis=1, keepdims=True)


def make_eeg(rng, names, fs, t0_drive, drives, duration, line_hz, n_bg=12):
    """EEG (n_chans, n) in uV on the file clock 0..duration; ``drives[k]`` on the DT grid from ``t0_drive``."""
    n = int(round(duration * fs))
    t = np.arange(n) / fs
    u = _unit_positions(names)
    eeg = np.zeros((len(names), n))
    for name, (f0, bw, sites, amp) in RHYTHMS.items():
        d = _unit_positions(sites).mean(0)
        d /= np.linalg.norm(d)
        ang = np.arccos(np.clip(u @ d, -1, 1))
        gain = np.exp(-0.5 * (ang / 0.5) ** 2) + 0.08
        sos = signal.butter(4, [f0 - bw, f0 + bw], btype="band", fs=fs, output="sos")
        carrier = signal.sosfiltfilt(sos, rng.standard_normal(n))
        carrier /= carrier.std()
        z = np.interp(t, t0_drive + np.arange(len(drives[name])) * DT, drives[name])
        env = np.exp(0.5 * 0.8 * z)  # log power = 0.8 z + const
        eeg += amp * gain[:, None] * (carrier * env / np.sqrt(np.mean(env ** 2)))[None, :]
    # background: pink sources at random scalp directions + sensor noise + mains
    for _ in range(n_bg):
        d = rng.standard_normal(3)
        d[2] = abs(d[2])
        d /= np.linalg.norm(d)
        gain = np.exp(-0.5 * (np.arccos(np.clip(u @ d, -1, 1)) / 0.6) ** 2)
        eeg += 6.0 * gain[:, None] * _pink(rng, n, fs)[None, :]
    eeg += 1.5 * rng.standard_normal(eeg.shape)
    eeg += rng.uniform(1, 6, len(names))[:, None] * np.sin(2 * np.pi * line_hz * t + rng.uniform(0, 6.28))[None, :]
    # blinks into the frontal channels
    blinks = np.zeros(n)
    for tb in np.cumsum(rng.exponential(4.0, int(duration / 2))):
        if tb < duration - 1:
            i = int(tb * fs)
            w = int(0.3 * fs)
            blinks[i:i + w] += 120 * np.hanning(w)
    frontal = np.clip(u[:, 1], 0, None) ** 3
    eeg += frontal[:, None] * blinks[None, :] * 0.6
    return eeg, blinks


def make_ecg(rng, fs, duration):
    n = int(round(duration * fs))
    ecg = 20 * rng.standard_normal(n)
    tb = 0.3
    w = max(3, int(0.08 * fs))
    while tb < duration - 0.2:
        i = int(tb * fs)
        ecg[i:i + w] += 1000 * np.hanning(w)
        tb += 60 / 68 + rng.normal(0, 0.03)
    return ecg


def region_truth(rng, drives, t_grid, peak):
    """Region signals (% change) on ``t_grid`` (the DT grid) for every region."""
    h = _hrf(np.arange(0, 32, DT), peak)
    out = {}
    for name, _c, _r, rhythm, g in REGIONS:
        if rhythm is None:
            x = _slow_gauss(rng, len(t_grid), 0.05)
        else:
            x = np.convolve(drives[rhythm], h)[: len(t_grid)]
        x = (x - x[400:].mean()) / x[400:].std()
        out[name] = g * x
    return out


def _grid_world(affine, shape):
    ijk = np.indices(shape).reshape(3, -1).T
    return (ijk @ affine[:3, :3].T + affine[:3, 3]).reshape(*shape, 3)


def make_bold(rng, affine, shape, onsets, t_grid, truth, baseline, slope, n_nss=0):
    """int16 4D NIfTI (scaled by ``slope``) on ``affine``/``shape``; volume k sampled at onsets[k] + TR/2."""
    xyz = _grid_world(affine, shape)
    r = np.sqrt((((xyz - BRAIN_C) / BRAIN_AX) ** 2).sum(-1))
    brain = 1.0 / (1.0 + np.exp((r - 1.0) / 0.03))
    vent = np.exp(-0.5 * (((xyz - np.array([0, -10, 15])) / np.array([8, 20, 8])) ** 2).sum(-1))
    texture = ndimage.gaussian_filter(rng.standard_normal(shape), 2.0)
    texture /= texture.std()
    base = baseline * brain * (1.0 - 0.5 * vent + 0.05 * texture)
    nt = len(onsets)
    mid = np.asarray(onsets) + TR / 2
    sig = np.zeros(shape + (nt,), np.float32)
    for name, c, rad, _rh, _g in REGIONS:
        d = np.linalg.norm(xyz - np.array(c), axis=-1)
        w = np.where(d <= rad, np.exp(-0.5 * (d / (0.6 * rad)) ** 2), 0.0).astype(np.float32)
        s = np.interp(mid, t_grid, truth[name]).astype(np.float32)
        sig += w[..., None] * s[None, None, None, :]
    vox = min(abs(np.linalg.eigvals(affine[:3, :3])))
    smooth = np.zeros_like(sig)
    prev = np.zeros(shape, np.float32)
    for k in range(nt):
        e = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), 6.0 / vox)
        prev = 0.7 * prev + e
        smooth[..., k] = prev
    smooth *= 0.7 / smooth.std()
    white = rng.standard_normal(sig.shape).astype(np.float32)
    glob = 0.3 * _slow_gauss(rng, nt, 0.8)
    drift = np.linspace(-0.5, 0.5, nt)
    pct = sig + smooth + 1.0 * white + (glob + drift)[None, None, None, :]
    data = base[..., None] * (1.0 + 0.01 * pct)
    for k in range(n_nss):
        data[..., k] *= (1.25, 1.1, 1.04)[k]
    data += np.abs(8.0 * rng.standard_normal(data.shape).astype(np.float32))  # Rician-like floor
    raw = np.clip(np.round(data / slope), -32768, 32767).astype(np.int16)
    img = nib.Nifti1Image(raw, affine)
    img.header.set_slope_inter(slope, 0.0)
    img.header.set_xyzt_units("mm", "sec")
    zooms = list(img.header.get_zooms()[:3]) + [TR]
    img.header.set_zooms(zooms)
    img.set_sform(affine, code=4)
    img.set_qform(affine, code=4)
    return img


def _rot(ax: str, deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    if ax == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def site_grid(site: str):
    if site == "A":
        shape = (40, 48, 37)
        aff = np.diag([-4.0, 4.0, 4.0, 1.0])
        aff[:3, 3] = [78.0, -112.0, -56.0]
        return aff, shape
    shape = (64, 64, 50)
    m = _rot("x", 12.0) @ _rot("z", -6.0) @ np.diag([3.0, 3.0, 3.0])
    aff = np.eye(4)
    aff[:3, :3] = m
    aff[:3, 3] = BRAIN_C - m @ ((np.array(shape) - 1) / 2)
    return aff, shape


def write_brainvision(path: Path, data_uv: np.ndarray, names, fs, markers):
    """BrainVision int16 (0.1 uV; ECG 0.5 uV), ``markers``: list of (sample0, description)."""
    res = np.array([0.5 if n == "ECG" else 0.1 for n in names])
    raw = np.clip(np.round(data_uv / res[:, None]), -32768, 32767).astype("<i2")
    stem = path.stem
    raw.T.tofile(path.with_suffix(".eeg"))
    ch = "\n".join(f"Ch{i + 1}={n},,{r:g},µV" for i, (n, r) in enumerate(zip(names, res)))
    path.with_suffix(".vhdr").write_text(
        "Brain Vision Data Exchange Header File Version 1.0\n; Data created by the Vision Recorder\n\n"
        f"[Common Infos]\nCodepage=UTF-8\nDataFile={stem}.eeg\nMarkerFile={stem}.vmrk\nDataFormat=BINARY\n"
        f"DataOrientation=MULTIPLEXED\nNumberOfChannels={len(names)}\nSamplingInterval={1e6 / fs:g}\n\n"
        "[Binary Infos]\nBinaryFormat=INT_16\n\n[Channel Infos]\n" + ch + "\n", encoding="utf-8")
    mk = ["Mk1=New Segment,,1,1,0,20240315101500000000"]
    for i, (s, desc) in enumerate(markers):
        mk.append(f"Mk{i + 2}=Response,{desc},{s + 1},1,0")
    path.with_suffix(".vmrk").write_text(
        "Brain Vision Data Exchange Marker File, Version 1.0\n\n[Common Infos]\nCodepage=UTF-8\n"
        f"DataFile={stem}.eeg\n\n[Marker Infos]\n" + "\n".join(mk) + "\n", encoding="utf-8")


def write_edf(path: Path, data_uv: np.ndarray, labels, fs, annotations):
    from edfio import Edf, EdfAnnotation, EdfSignal

    sigs = []
    for x, lab in zip(data_uv, labels):
        rng_ = 8000.0 if lab == "ECG" else 3200.0
        sigs.append(EdfSignal(np.clip(x, -rng_, rng_), fs, label=lab, physical_dimension="uV",
                              physical_range=(-rng_, rng_), prefiltering="HP:0.1Hz LP:100Hz"))
    ann = [EdfAnnotation(o, None, d) for o, d in annotations]
    Edf(sigs, annotations=ann, starttime=datetime.time(9, 30, 0), data_record_duration=1.0).write(path)


def b_label(name: str, i: int) -> str:
    return f"EEG {name.upper()}-REF" if i < 20 else name.upper()


def _tsv(path: Path, header, rows):
    path.write_text("\t".join(header) + "\n" + "".join("\t".join(str(v) for v in r) + "\n" for r in rows))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    out = args.out
    bids, truth_dir, eo = out / "bids", out / "truth", out / "eeg_only"
    for d in (bids, truth_dir, eo):
        d.mkdir(parents=True, exist_ok=True)
    (bids / "dataset_description.json").write_text(json.dumps(
        {"Name": "two-site rest EEG-fMRI (user test 54)", "BIDSVersion": "1.8.0", "DatasetType": "raw"}, indent=1))
    _tsv(bids / "participants.tsv", ["participant_id", "site"],
         [["sub-01", "A"], ["sub-02", "A"], ["sub-03", "B"], ["sub-04", "B"]])
    # subject: site, EEG seconds before the first volume, seconds after the last volume's end (<0: ends early)
    subjects = {"01": ("A", 8.3, 6.0), "02": ("A", 20.0, -7.5), "03": ("B", 5.1, 4.0),
                "04": ("B", 11.7, 8.0), "05": ("B", None, None)}
    params = {"TR": TR, "n_vol": N_VOL, "regions": REGIONS, "rhythms": RHYTHMS, "subjects": {}}
    # atlas on the MNI152 2 mm grid
    aff2 = np.array([[-2.0, 0, 0, 90], [0, 2, 0, -126], [0, 0, 2, -72], [0, 0, 0, 1]])
    xyz2 = _grid_world(aff2, (91, 109, 91))
    lab = np.zeros((91, 109, 91), np.int16)
    for i, (_name, c, rad, _rh, _g) in enumerate(REGIONS):
        lab[np.linalg.norm(xyz2 - np.array(c), axis=-1) <= rad] = i + 1
    atl = nib.Nifti1Image(lab, aff2)
    atl.set_sform(aff2, code=4)
    atl.set_qform(aff2, code=4)
    nib.save(atl, truth_dir / "atlas_mni2mm.nii.gz")
    _tsv(truth_dir / "atlas_mni2mm.tsv", ["index", "name"], [[i + 1, r[0]] for i, r in enumerate(REGIONS)])

    for sub, (site, pre, post) in subjects.items():
        fs = 500.0 if site == "A" else 250.0
        eeg_only = pre is None
        if eeg_only:
            duration = 360.0
            onsets_true = None
        else:
            scan_end = pre + N_VOL * TR
            duration = float(np.floor(scan_end + post)) if site == "B" else scan_end + post
            onsets_true = pre + TR * np.arange(N_VOL)
        # latent drives on the DT grid from -40 s (HRF history before the EEG starts)
        t0 = -40.0
        t_grid = t0 + np.arange(int((duration + 60) / DT)) * DT
        drives = {k: _slow_gauss(rng, len(t_grid), 0.12) for k in RHYTHMS}
        peak = float(rng.uniform(5.0, 6.2))
        truth = region_truth(rng, drives, t_grid, peak)
        names = SITE_A_EEG if site == "A" else SITE_B_EEG
        line = 50.0 if site == "A" else 60.0
        eeg, blinks = make_eeg(rng, names, fs, t0, drives, duration, line)
        ecg = make_ecg(rng, fs, duration)
        markers = []
        if onsets_true is not None:
            for k, o in enumerate(onsets_true):
                s = int(round(o * fs)) + int(rng.integers(-1, 2))
                if s < int(round(duration * fs)) - 1:
                    markers.append((k, s))
            if sub == "01":
                markers = [m for m in markers if m[0] != 57]  # one lost marker
        params["subjects"][sub] = {"site": site, "sfreq": fs, "hrf_peak_s": peak, "eeg_duration_s": duration,
                                   "first_volume_onset_s": pre, "n_markers": len(markers),
                                   "missing_marker_volumes": [57] if sub == "01" else [],
                                   "line_hz": line}
        # truth: continuous (BOLD of an acquisition centred at time t, file clock) and per volume
        keep = (t_grid >= -30) & (t_grid <= duration + 10)
        np.savez_compressed(truth_dir / f"sub-{sub}_continuous.npz", t=t_grid[keep],
                            **{k: v[keep] for k, v in truth.items()},
                            **{f"drive_{k}": v[keep] for k, v in drives.items()})
        if onsets_true is not None:
            mid = onsets_true + TR / 2
            _tsv(truth_dir / f"sub-{sub}_roi_truth.tsv", ["volume", "onset_s"] + [r[0] for r in REGIONS],
                 [[k, f"{onsets_true[k]:.4f}"] + [f"{np.interp(mid[k], t_grid, truth[r[0]]):.5f}" for r in REGIONS]
                  for k in range(N_VOL)])
        if site == "A":
            d = bids / f"sub-{sub}" / "eeg"
            d.mkdir(parents=True, exist_ok=True)
            stem = d / f"sub-{sub}_task-rest_eeg.vhdr"
            write_brainvision(stem, np.vstack([eeg, ecg[None]]), names + ["ECG"], fs,
                              [(s, "R128") for _k, s in markers])
            chans = [[n, "EEG", "µV", "good"] for n in names] + [["ECG", "ECG", "µV", "good"]]
            manuf, ref = "Brain Products", "FCz"
        else:
            labels = [b_label(n, i) for i, n in enumerate(names)] + ["ECG", "EOG L", "EOG R"]
            eog_l = blinks + 30 * _pink(rng, len(blinks), fs)
            eog_r = 0.9 * blinks + 30 * _pink(rng, len(blinks), fs)
            data = np.vstack([eeg, ecg[None], eog_l[None], eog_r[None]])
            ann = [(s / fs, "Volume") for _k, s in markers]
            d = (eo if eeg_only else bids / f"sub-{sub}" / "eeg")
            d.mkdir(parents=True, exist_ok=True)
            stem = d / f"sub-{sub}_task-rest_eeg.edf"
            write_edf(stem, data, labels, fs, ann)
            chans = ([[lb, "EEG", "uV", "good"] for lb in labels[:-3]]
                     + [["ECG", "ECG", "uV", "good"], ["EOG L", "EOG", "uV", "good"], ["EOG R", "EOG", "uV", "good"]])
            manuf, ref = "Compumedics", "linked ears"
            if not eeg_only:
                _tsv(d / f"sub-{sub}_task-rest_events.tsv", ["onset", "duration", "trial_type", "sample"],
                     [[f"{s / fs:.4f}", "0", "Volume", s] for _k, s in markers])
        if eeg_only:
            continue
        _tsv(d / f"sub-{sub}_task-rest_channels.tsv", ["name", "type", "units", "status"], chans)
        (d / f"sub-{sub}_task-rest_eeg.json").write_text(json.dumps({
            "TaskName": "rest", "SamplingFrequency": fs, "PowerLineFrequency": line, "EEGReference": ref,
            "SoftwareFilters": "n/a", "Manufacturer": manuf, "EEGChannelCount": len(names),
            "ECGChannelCount": 1, "EOGChannelCount": 0 if site == "A" else 2,
            "RecordingDuration": duration, "EEGPlacementScheme": "10-20"}, indent=1))
        f = bids / f"sub-{sub}" / "func"
        f.mkdir(parents=True, exist_ok=True)
        aff, shape = site_grid(site)
        img = make_bold(rng, aff, shape, onsets_true, t_grid, truth, baseline=1000.0 if site == "A" else 620.0,
                        slope=0.25 if site == "A" else 0.1, n_nss=2 if site == "B" else 0)
        nib.save(img, f / f"sub-{sub}_task-rest_bold.nii.gz")
        (f / f"sub-{sub}_task-rest_bold.json").write_text(json.dumps(
            {"TaskName": "rest", "RepetitionTime": TR,
             "Manufacturer": "Siemens" if site == "A" else "Philips"}, indent=1))
        print(f"sub-{sub} site {site}: EEG {duration:.1f} s at {fs:g} Hz, {len(markers)} markers, BOLD {shape}")
    (truth_dir / "params.json").write_text(json.dumps(params, indent=1, default=str))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
