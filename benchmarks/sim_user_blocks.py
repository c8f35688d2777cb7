"""Task EEG-fMRI generator: visual checkerboard blocks + button presses (user test 51).

Written from textbook knowledge of block-design EEG-fMRI, WITHOUT reading the package's simulators
(``src/eeg2fmri/simulate``) or ``benchmarks/sim_user_oddball.py``.

What it models, per subject and run (TR 2 s, 6 min by default):

* **Design.** 16/20/24-s checkerboard blocks (contrast 25/50/100 %, reversing at 7.5 Hz) alternating with
  14-22 s of fixation; occasional right-hand button presses (a Poisson stream, ~1 per 12 s, >= 3 s apart,
  in blocks and rest alike). BrainVision markers: ``Stimulus/S 11`` at each block onset (size 1 sample, as
  recorders write them), ``Response/R  1`` at each press, ``Response/R128`` at each volume onset with
  +-2 samples of jitter. The BIDS ``*_events.tsv`` (EEG and func, each in its own time base) lists
  ``checkerboard`` blocks with their duration and a ``contrast`` column (a parametric modulator) and
  ``button_press`` events of duration 0.
* **EEG** (250 Hz, 32 scalp channels of the 10-20/10-10 system + ECG): 1/f background from 20 spatially
  smooth sources plus channel noise; an occipital alpha source at a subject-specific IAF (9-11 Hz) whose
  amplitude = spontaneous slow log-amplitude fluctuation (0.01-0.1 Hz) x task desynchronisation during
  visual blocks (-35..-55 % with contrast); an occipital 15-Hz SSVEP during blocks; a left central (C3)
  beta source with press-locked desynchronisation and post-movement rebound; blinks (fewer during blocks);
  50 Hz line noise; ECG. Written with pybv (float32 BrainVision).
* **BOLD** (NIfTI via nibabel, int16 with scl_slope, 8-mm MNI-like grid, brain-shaped ellipsoid):
  ``visual`` (calcarine) follows the blocks x contrast^0.4 with a small onset transient; ``motor_left``
  (left M1) follows the presses; ``thalamus`` follows the SPONTANEOUS part of alpha log-amplitude
  (positively: resting-state-like, visible in the EEG but absent from the design); ``control`` (right
  prefrontal) and the rest of the brain are noise only. Every subject has its own double-gamma HRF (peak
  4.5-7 s, region offsets +-0.4 s); one press peaks at 1 %, a full-contrast block reaches 2.2 % and settles near 1.7 %, the thalamus
  series has SD 0.8 %. Noise: spatially smooth AR(1) noise, white noise, global
  fluctuation, slow drift, voxel baselines ~ 600-1000.

Also writes ``OUT/groundtruth``: ``atlas.nii.gz`` + ``atlas.tsv`` (index/name), per run the noiseless region
BOLD (percent change, one row per volume) and the design, ``truth.json`` (HRF peaks, IAFs, coupling), and
``OUT/heldout``: subject ``hold`` recorded with EEG only (BOLD withheld, its truth in groundtruth):
``hold_eeg.vhdr`` (same marker names), ``hold_renamed_eeg.vhdr`` (blocks ``Stimulus/S 21``, presses
``Response/R  2``), ``hold_dur_eeg.vhdr`` (block markers carrying their 20 s duration in the .vmrk), and the
measured BOLD ``hold_bold.nii.gz`` for comparison.

Usage: ``python benchmarks/sim_user_blocks.py OUT --seed N [--subjects 4] [--runs 2] [--minutes 6]``
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import mne
import nibabel as nib
import numpy as np
import pybv
from scipy import ndimage, signal
from scipy.stats import gamma as gamma_dist

SFREQ = 250.0
TR = 2.0
VOX = 8.0
TASK = "checker"
CHANNELS = ["Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "FC5", "FC1", "FC2", "FC6", "T7", "C3", "Cz", "C4", "T8",
            "TP9", "CP5", "CP1", "CP2", "CP6", "TP10", "P7", "P3", "Pz", "P4", "P8", "PO9", "O1", "Oz", "O2", "PO10"]
# label -> (name, centre mm (MNI-like RAS), radius mm)
REGIONS = {1: ("visual", (0.0, -88.0, 4.0), 14.0),
           2: ("motor_left", (-38.0, -22.0, 56.0), 12.0),
           3: ("thalamus", (0.0, -16.0, 6.0), 12.0),
           4: ("control", (30.0, 50.0, 20.0), 12.0)}


def hrf(t: np.ndarray, peak: float) -> np.ndarray:
    """Double gamma with its positive peak at ``peak`` s, undershoot 10 s later, ratio 1/6; unit sum."""
    a1 = peak + 1.0
    a2 = a1 + 10.0
    h = gamma_dist.pdf(t, a1, scale=1.0) - gamma_dist.pdf(t, a2, scale=1.0) / 6.0
    return h / h.sum()


def pink(rng, n: int, alpha: float = 1.0, sfreq: float = SFREQ, fmin: float = 0.5) -> np.ndarray:
    """1/f^alpha noise, unit variance."""
    f = np.fft.rfftfreq(n, 1 / sfreq)
    s = (rng.standard_normal(f.size) + 1j * rng.standard_normal(f.size))
    s /= np.maximum(f, fmin) ** (alpha / 2)
    s[0] = 0
    x = np.fft.irfft(s, n)
    return x / x.std()


def narrowband(rng, n: int, f0: float, bw: float) -> np.ndarray:
    b, a = signal.butter(2, [(f0 - bw / 2) / (SFREQ / 2), (f0 + bw / 2) / (SFREQ / 2)], "bandpass")
    x = signal.filtfilt(b, a, rng.standard_normal(n))
    return x / x.std()


def slow_process(rng, n: int, fs: float, lo: float = 0.01, hi: float = 0.1) -> np.ndarray:
    b, a = signal.butter(2, [lo / (fs / 2), hi / (fs / 2)], "bandpass")
    x = signal.filtfilt(b, a, rng.standard_normal(n + 2000))[1000:-1000]
    return x / x.std()


def topo(pos: np.ndarray, focus: np.ndarray, width: float = 0.045) -> np.ndarray:
    d = np.linalg.norm(pos - focus, axis=1)
    return np.exp(-(d ** 2) / (2 * width ** 2))


def make_design(rng, t_scan: float):
    """Blocks (onset, duration, contrast) and presses (onsets), in s from the first volume."""
    blocks, t = [], rng.uniform(10, 16)
    while True:
        dur = float(rng.choice([16.0, 20.0, 24.0]))
        if t + dur > t_scan - 20:
            break
        blocks.append((round(t, 3), dur, float(rng.choice([0.25, 0.5, 1.0]))))
        t += dur + rng.uniform(14, 22)
    presses, t = [], rng.uniform(4, 10)
    while t < t_scan - 6:
        presses.append(round(t, 3))
        t += 3.0 + rng.exponential(9.0)
    return blocks, np.asarray(presses)


def grid():
    """8-mm MNI-like grid, its affine, voxel centres (mm) and an ellipsoidal brain mask."""
    shape = (23, 27, 23)
    aff = np.diag([VOX, VOX, VOX, 1.0])
    aff[:3, 3] = (-88.0, -124.0, -72.0)
    ijk = np.indices(shape).reshape(3, -1).T
    xyz = ijk @ aff[:3, :3].T + aff[:3, 3]
    brain = (((xyz[:, 0]) / 70) ** 2 + ((xyz[:, 1] + 18) / 102) ** 2 + ((xyz[:, 2] - 10) / 70) ** 2) <= 1.0
    return shape, aff, xyz, brain.reshape(shape)


def simulate_run(rng, subj: dict, minutes: float, n_chan_noise: float, markers: dict):
    """One run: EEG (V, channels x samples), events (for the vmrk), BOLD (x, y, z, t), truth."""
    n_vol = int(round(minutes * 60 / TR))
    t_scan = n_vol * TR
    lead, tail = rng.uniform(8, 15), rng.uniform(8, 12)
    n = int(round((lead + t_scan + tail) * SFREQ))
    t = np.arange(n) / SFREQ
    blocks, presses = make_design(rng, t_scan)
    # neural time courses on the EEG grid (times in s from the EEG's first sample)
    vis = np.zeros(n)
    box = np.zeros(n)
    for on, dur, c in blocks:
        sel = (t >= lead + on) & (t < lead + on + dur)
        amp = c ** 0.4
        vis[sel] = amp * (0.75 + 0.25 * np.exp(-(t[sel] - lead - on) / 4.0))
        box[sel] = c
    press_t = lead + presses
    spont = slow_process(rng, n, SFREQ)  # spontaneous alpha log-amplitude fluctuation, unit SD
    box_s = ndimage.gaussian_filter1d(box, 0.4 * SFREQ)
    desync = subj["desync"] * np.clip(box_s, 0, None) ** 0.5  # stronger with contrast
    alpha_amp = subj["alpha_uv"] * np.exp(0.35 * spont) * (1 - desync)
    # press-locked beta ERD (-0.5..1.5 s) and rebound (1.5..3 s)
    erd = np.zeros(n)
    for p in press_t:
        dt = t - p
        erd -= 0.5 * np.exp(-((dt - 0.5) ** 2) / (2 * 0.5 ** 2))
        erd += 0.3 * np.exp(-((dt - 2.3) ** 2) / (2 * 0.45 ** 2))
    beta_amp = 3.0 * np.exp(0.2 * slow_process(rng, n, SFREQ, 0.02, 0.2)) * np.clip(1 + erd, 0.2, None)

    pos = subj["pos"]
    eeg = np.zeros((len(CHANNELS), n))
    for _ in range(20):  # 1/f background, spatially smooth
        focus = pos[rng.integers(len(pos))] + rng.normal(0, 0.01, 3)
        eeg += np.outer(topo(pos, focus, 0.05), pink(rng, n, 1.1)) * rng.uniform(4, 8) * 1e-6
    eeg += np.stack([pink(rng, n, 0.8) for _ in CHANNELS]) * n_chan_noise * 1e-6
    occ = topo(pos, pos[CHANNELS.index("Oz")], 0.045)
    eeg += np.outer(occ, alpha_amp * narrowband(rng, n, subj["iaf"], 1.6)) * 1e-6
    ssvep = np.sin(2 * np.pi * 15.0 * t + rng.uniform(0, 6.3)) * 1.5 * ndimage.gaussian_filter1d(box, 0.1 * SFREQ) ** 0.5
    eeg += np.outer(occ, ssvep) * 1e-6
    c3 = topo(pos, pos[CHANNELS.index("C3")], 0.035)
    eeg += np.outer(c3, beta_amp * narrowband(rng, n, subj["beta_f"], 4.0)) * 1e-6
    # blinks: ~15/min at rest, ~6/min in blocks
    k, blink = 0.0, np.zeros(n)
    shape_t = np.arange(int(0.5 * SFREQ)) / SFREQ
    bshape = gamma_dist.pdf(shape_t, 4, scale=0.05)
    bshape /= bshape.max()
    while True:
        k += rng.exponential(4.0)
        i = int(k * SFREQ)
        if i + bshape.size >= n:
            break
        if box[i] > 0 and rng.random() < 0.6:
            continue
        blink[i:i + bshape.size] += bshape * rng.uniform(80, 160)
    front = np.exp(-((pos[:, 1] - pos[:, 1].max()) ** 2) / (2 * 0.035 ** 2))
    eeg += np.outer(front, blink) * 1e-6
    eeg += np.outer(rng.uniform(1, 12, len(CHANNELS)), np.sin(2 * np.pi * 50.0 * t + rng.uniform(0, 6))) * 1e-6
    # ECG
    hr = rng.uniform(0.9, 1.2)
    ecg = np.zeros(n)
    beat = np.arange(0, t[-1], 1 / hr) + rng.normal(0, 0.02, int(t[-1] * hr) + 1)[: len(np.arange(0, t[-1], 1 / hr))]
    for b_ in beat:
        ecg += 800 * np.exp(-((t - b_) ** 2) / (2 * 0.012 ** 2)) - 150 * np.exp(-((t - b_ - 0.25) ** 2) / (2 * 0.05 ** 2))
    data = np.vstack([eeg, ecg * 1e-6 + rng.normal(0, 5e-6, n)])

    # scanner markers with jitter
    vol_on = lead + np.arange(n_vol) * TR
    vol_samp = np.round(vol_on * SFREQ).astype(int) + rng.integers(-2, 3, n_vol)
    events = [{"onset": int(s), "duration": 1, "description": 128, "type": "Response"} for s in vol_samp]
    for on, dur, _c in blocks:
        d = int(round(dur * SFREQ)) if markers.get("block_duration") else 1
        events.append({"onset": int(round((lead + on) * SFREQ)), "duration": d, "description": markers["block"], "type": "Stimulus"})
    for p in press_t:
        events.append({"onset": int(round(p * SFREQ)), "duration": 1, "description": markers["press"], "type": "Response"})
    events.sort(key=lambda e: e["onset"])

    # BOLD drivers on a 0.1-s grid, sampled at the middle of each volume
    dt = 0.1
    tt = np.arange(0, lead + t_scan + 1, dt)
    vis_f = np.interp(tt, t, vis)
    press_f = np.zeros_like(tt)
    for p in press_t:
        press_f[int(round(p / dt)):int(round((p + 0.5) / dt))] += 1.0
    spont_f = np.interp(tt, t, spont)
    hk = np.arange(0, 32, dt)
    drv = {"visual": np.convolve(vis_f, hrf(hk, subj["peak"] + subj["off"][0]))[: tt.size] * 2.2,
           "motor_left": np.convolve(press_f, hrf(hk, subj["peak"] + subj["off"][1]))[: tt.size],
           "thalamus": np.convolve(spont_f, hrf(hk, subj["peak"] + subj["off"][2]))[: tt.size],
           "control": np.zeros(tt.size)}
    one = np.convolve(np.ones(int(round(0.5 / dt))), hrf(hk, subj["peak"] + subj["off"][1])).max()
    drv["motor_left"] *= 1.0 / one  # one press: 1.0 % peak
    sd_th = drv["thalamus"][int(lead / dt):].std()
    drv["thalamus"] *= 0.8 / sd_th
    samp = np.round((vol_on - lead + TR / 2 + lead) / dt).astype(int)
    truth = {k: v[samp] for k, v in drv.items()}  # percent signal change
    return data, events, truth, blocks, presses, lead, vol_on, vol_samp


def make_bold(rng, truth: dict, maps: dict, brain: np.ndarray, base: np.ndarray) -> np.ndarray:
    n_vol = len(next(iter(truth.values())))
    shape = brain.shape
    pct = np.zeros(shape + (n_vol,), dtype=np.float32)
    for name, w in maps.items():
        pct += w[..., None] * truth[name][None, None, None, :]
    # spatially smooth AR(1) noise
    e = rng.standard_normal(shape + (n_vol,)).astype(np.float32)
    e = ndimage.gaussian_filter(e, sigma=(1.2, 1.2, 1.2, 0))
    e /= e[brain].std()
    e = signal.lfilter([1.0], [1.0, -0.35], e, axis=-1)
    pct += 0.6 * e
    pct += 0.45 * rng.standard_normal(pct.shape).astype(np.float32)
    glob = ndimage.gaussian_filter1d(rng.standard_normal(n_vol), 2.0)
    pct += 0.25 * glob / glob.std()
    tv = np.linspace(-1, 1, n_vol)
    drift = rng.normal(0, 0.8, shape)[..., None] * tv + rng.normal(0, 0.4, shape)[..., None] * np.cos(np.pi * (tv + 1))
    pct += drift
    img = base[..., None] * (1 + pct / 100.0)
    img[~brain] = rng.normal(30, 8, (int((~brain).sum()), n_vol))
    return img.astype(np.float32)


def save_nifti(img: np.ndarray, aff: np.ndarray, path: Path, tr: float = TR) -> None:
    slope = float(np.abs(img).max()) / 32000
    im = nib.Nifti1Image(np.round(img / slope).astype(np.int16), aff)
    im.header.set_slope_inter(slope, 0.0)
    im.header.set_xyzt_units("mm", "sec")
    im.header.set_zooms((VOX, VOX, VOX, tr))
    im.set_sform(aff, code=4)
    im.set_qform(aff, code=4)
    nib.save(im, path)


def write_tsv(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w") as f:
        f.write("\t".join(header) + "\n")
        for r in rows:
            f.write("\t".join(str(v) for v in r) + "\n")


def write_eeg(data, events, folder: Path, base: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pybv.write_brainvision(data=data, sfreq=SFREQ, ch_names=CHANNELS + ["ECG"], fname_base=base, folder_out=str(folder),
                           events=events, unit="µV", resolution=0.05, fmt="binary_float32", overwrite=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--subjects", type=int, default=4)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--minutes", type=float, default=6.0)
    a = ap.parse_args(argv)
    out = Path(a.out)
    rng = np.random.default_rng(a.seed)
    mont = mne.channels.make_standard_montage("easycap-M1").get_positions()["ch_pos"]
    pos = np.array([mont[c] for c in CHANNELS])
    shape, aff, xyz, brain = grid()
    atlas = np.zeros(shape, dtype=np.int16)
    maps = {}
    for lab, (name, c, r) in REGIONS.items():
        d = np.linalg.norm(xyz - np.asarray(c), axis=1).reshape(shape)
        atlas[(d <= r) & brain] = lab
        maps[name] = (np.exp(-(d ** 2) / (2 * (r * 0.7) ** 2)) * brain).astype(np.float32)
    gt = out / "groundtruth"
    gt.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(atlas, aff), gt / "atlas.nii.gz")
    write_tsv(gt / "atlas.tsv", ["index", "name"], [[k, v[0]] for k, v in REGIONS.items()])
    (out / "dataset_description.json").write_text(json.dumps({"Name": "checkerboard blocks + presses (user test 51)",
                                                              "BIDSVersion": "1.8.0", "DatasetType": "raw"}, indent=1))
    (out / f"task-{TASK}_bold.json").write_text(json.dumps({"RepetitionTime": TR, "TaskName": TASK}, indent=1))
    truth_all = {"regions": {str(k): v[0] for k, v in REGIONS.items()}, "subjects": {}}
    subs = [f"{i + 1:02d}" for i in range(a.subjects)] + ["hold"]
    parts = []
    for sub in subs:
        subj = {"pos": pos, "peak": float(rng.uniform(4.5, 7.0)), "off": rng.uniform(-0.4, 0.4, 3),
                "iaf": float(rng.uniform(9.0, 11.0)), "alpha_uv": float(rng.uniform(12, 20)),
                "desync": float(rng.uniform(0.35, 0.55)), "beta_f": float(rng.uniform(18, 24))}
        truth_all["subjects"][sub] = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in subj.items() if k != "pos"}
        base = (rng.uniform(600, 1000) * (1 + 0.15 * ndimage.gaussian_filter(rng.standard_normal(shape), 2))).astype(np.float32)
        if sub != "hold":
            parts.append([f"sub-{sub}", "n/a", "n/a"])
        for run in range(1, (a.runs if sub != "hold" else 1) + 1):
            mk = {"block": 11, "press": 1}
            data, events, truth, blocks, presses, lead, vol_on, vol_samp = simulate_run(rng, subj, a.minutes, 3.0, mk)
            bold = make_bold(rng, truth, maps, brain, base)
            first = vol_samp[0] / SFREQ
            ev_rows_eeg = sorted([[f"{lead + on:.4f}", f"{dur:.1f}", "checkerboard", "S 11", int(round((lead + on) * SFREQ)), c] for on, dur, c in blocks]
                                 + [[f"{p + lead:.4f}", "0.0", "button_press", "R  1", int(round((p + lead) * SFREQ)), "n/a"] for p in presses],
                                 key=lambda r: float(r[0]))
            if sub == "hold":
                ho = out / "heldout"
                write_eeg(data, events, ho, "hold_eeg")
                ev2 = [dict(e, description=21) if (e["type"] == "Stimulus") else
                       (dict(e, description=2) if e["description"] == 1 else e) for e in events]
                write_eeg(data, ev2, ho, "hold_renamed_eeg")
                ev3 = [dict(e, duration=int(round(next(d for o, d, c in blocks if abs(lead + o - e["onset"] / SFREQ) < 0.01) * SFREQ)))
                       if e["type"] == "Stimulus" else e for e in events]
                write_eeg(data, ev3, ho, "hold_dur_eeg")
                save_nifti(bold, aff, ho / "hold_bold.nii.gz")
                write_tsv(ho / "hold_events.tsv", ["onset", "duration", "trial_type", "value", "sample", "contrast"], ev_rows_eeg)
                write_tsv(gt / "hold_regions.tsv", ["onset_eeg_s"] + list(truth),
                          [[f"{vol_on[i]:.3f}"] + [f"{truth[k][i]:.5f}" for k in truth] for i in range(len(vol_on))])
                continue
            stem = f"sub-{sub}_task-{TASK}_run-{run}"
            eegdir, funcdir = out / f"sub-{sub}" / "eeg", out / f"sub-{sub}" / "func"
            funcdir.mkdir(parents=True, exist_ok=True)
            write_eeg(data, events, eegdir, f"{stem}_eeg")
            (eegdir / f"{stem}_eeg.json").write_text(json.dumps({
                "TaskName": TASK, "SamplingFrequency": SFREQ, "PowerLineFrequency": 50, "EEGReference": "FCz",
                "EEGChannelCount": len(CHANNELS), "ECGChannelCount": 1, "SoftwareFilters": "n/a",
                "Manufacturer": "Brain Products", "CapManufacturer": "EasyCap"}, indent=1))
            write_tsv(eegdir / f"{stem}_channels.tsv", ["name", "type", "units", "status"],
                      [[c, "EEG", "µV", "good"] for c in CHANNELS] + [["ECG", "ECG", "µV", "good"]])
            write_tsv(eegdir / f"{stem}_events.tsv", ["onset", "duration", "trial_type", "value", "sample", "contrast"], ev_rows_eeg)
            save_nifti(bold, aff, funcdir / f"{stem}_bold.nii.gz")
            write_tsv(funcdir / f"{stem}_events.tsv", ["onset", "duration", "trial_type", "contrast"],
                      sorted([[f"{lead + on - first:.4f}", f"{dur:.1f}", "checkerboard", c] for on, dur, c in blocks]
                             + [[f"{p + lead - first:.4f}", "0.0", "button_press", "n/a"] for p in presses], key=lambda r: float(r[0])))
            write_tsv(gt / f"{stem}_regions.tsv", ["onset_eeg_s"] + list(truth),
                      [[f"{vol_on[i]:.3f}"] + [f"{truth[k][i]:.5f}" for k in truth] for i in range(len(vol_on))])
    write_tsv(out / "participants.tsv", ["participant_id", "age", "sex"], parts)
    (gt / "truth.json").write_text(json.dumps(truth_all, indent=1))
    print(f"wrote {out}: {a.subjects} subjects x {a.runs} runs x {a.minutes} min + heldout/hold_*_eeg.vhdr; atlas {gt / 'atlas.nii.gz'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
