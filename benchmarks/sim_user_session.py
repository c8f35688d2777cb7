#!/usr/bin/env python
"""One continuous BrainVision EEG session per subject spanning several BOLD runs (user test 50).

Written by user-testing helper UT50 (session 2026-12) WITHOUT reading the package's simulators; numpy / scipy /
mne (montage positions only) / nibabel / pybv only. Nothing in the package was tuned on it.

python benchmarks/sim_user_session.py OUT --seed S [--subjects 3] [--runs 3] [--minutes 5] [--tr 2.0]
    [--localizer 01,03] [--paused 02] [--declare 01] [--one-run ""] [--cut-short ""]

What it models
--------------
* EEG: 32 channels (10-20 names) at 500 Hz, BrainVision int16 (0.1 uV), already free of MRI artefacts (as after
  AAS / OBS). Four cortical rhythm sources with smooth log-amplitude envelopes (Gaussian processes low-passed at
  ~0.08 Hz): occipital alpha (IAF 9.3-10.7 Hz), bilateral central beta (18-24 Hz), frontal-midline theta (5-7 Hz)
  and a parietal "control" alpha-like source with no haemodynamic partner, mixed into the channels with smooth
  Gaussian topographies around the standard-1020 electrode positions; plus 6 spatially smooth pink-noise latent
  sources and independent pink noise per channel.
* Coupling: the log power of a source (its envelope, in z units) drives a region through a region-specific
  double-gamma HRF: occipital <- -1.0 x alpha (peak 5.0 s), motor <- -0.8 x beta (peak 6.0 s), frontal <- +0.9 x theta
  (peak 4.5 s); region 4 ("control") carries only physiological noise. The brain is simulated on the session clock
  and continues while the scanner (or the recorder) is stopped.
* Session timeline (one EEG file per subject): pre-scan rest 30-60 s; optional localizer/shim block of 3-8 R128
  markers (the first localizer subject at TR spacing, the others at 0.75 s), 20-60 s before run 1; then the BOLD runs,
  separated by 20-90 s; each run sends 2-4 dummy-scan markers (not saved) then one marker per saved volume, R128
  every TR, each marker jittered by -1/0/+1 sample. In "paused" subjects the recorder is paused between runs (from
  2-5 s after a run's last volume to 5-15 s before the next run's first marker): the samples are missing from the file
  and a "New Segment" marker is written where recording resumes. Post-scan rest 10-30 s.
* BOLD: one NIfTI per run, float32, 6 mm isotropic grid 20x24x20 (RAS, centred like MNI), ellipsoid brain with smooth
  baseline intensity; 4 spherical regions (radius 2 voxels, Gaussian weight): BOLD = baseline x (1 + 1.5 % x
  region signal + 0.6 % x regional physiological noise) + 1 % thermal noise + slow drift. Volume k of a run is
  acquired from its marker for one TR; the signal is sampled at mid-acquisition (marker + TR/2). Dummy volumes are not
  saved. Runs have per_run = minutes*60/TR saved volumes +- up to 5.
* Two layouts of the same data:
  OUT/bids:  sub-XX/eeg/sub-XX_task-rest_eeg.{vhdr,vmrk,eeg,json} + _channels.tsv (no run- entity),
             sub-XX/func/sub-XX_task-rest_run-N_bold.{nii.gz,json} (NumberOfVolumesDiscardedByScanner in --declare
             subjects only; RepetitionTime always).
  OUT/plain: subXX/session.{vhdr,vmrk,eeg}, subXX/runN.nii.gz, runs.tsv (eeg bold subject run tr, one row per run,
             the one EEG file listed for each of its runs, in time order) and runs_shuffled.tsv (same rows, each
             subject's runs in reverse order).
* --cut-short SUB:RUN:N drops the last N saved volumes of that run from its NIfTI (markers unchanged: a BOLD file cut
  short). --one-run SUBS gives those subjects one run only.
* Ground truth in OUT/groundtruth: atlas.nii.gz (+ atlas.tsv index/name), truth.json (per subject: file length,
  pauses, localizer marker samples, per run all marker samples, n_dummy, the file sample of the first SAVED volume's
  marker as recorded and unjittered, n_volumes saved in the NIfTI, declared or not), and
  sub-XX_run-N_regions.tsv: noiseless per-region BOLD at each saved volume of the NIfTI (z units x coupling).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import re
from pathlib import Path

import mne
import nibabel as nib
import numpy as np
import pybv
from scipy import stats

CH = ["Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "FC5", "FC1", "FC2", "FC6", "T7", "C3", "Cz", "C4", "T8",
      "CP5", "CP1", "CP2", "CP6", "P7", "P3", "Pz", "P4", "P8", "POz", "O1", "Oz", "O2", "FCz", "TP9", "TP10"]
SFREQ = 500.0
SLOW_FS = 10.0
GRID = (20, 24, 20)
VOX = 6.0
REGIONS = [  # name, centre (voxel index), band source, coupling, HRF peak (s)
    ("occipital", (10, 3, 8), "alpha", -1.0, 5.0),
    ("motor", (6, 12, 15), "beta", -0.8, 6.0),
    ("frontal", (10, 20, 11), "theta", 0.9, 4.5),
    ("control", (14, 9, 13), None, 0.0, 5.0),
]
SOURCES = {  # name: (band lo, hi), amplitude uV, scalp centres (channels)
    "alpha": ((9.0, 11.0), 14.0, ["Oz", "O1", "O2"]),
    "beta": ((18.0, 24.0), 5.0, ["C3", "C4"]),
    "theta": ((5.0, 7.0), 6.0, ["Fz", "FCz"]),
    "control": ((8.0, 12.0), 8.0, ["P3", "Pz"]),
}


def _fft_filter(x: np.ndarray, fs: float, lo: float | None, hi: float | None, pink: bool = False) -> np.ndarray:
    """Band-limit (or pink-shape) white noise along the last axis via FFT; unit SD per row."""
    n = x.shape[-1]
    X = np.fft.rfft(x, axis=-1)
    f = np.fft.rfftfreq(n, 1 / fs)
    if pink:
        X /= np.sqrt(np.maximum(f, 0.5))
    if lo is not None:
        X[..., f < lo] = 0
    if hi is not None:
        X[..., f > hi] = 0
    y = np.fft.irfft(X, n, axis=-1)
    return y / y.std(axis=-1, keepdims=True)


def _hrf(fs: float, peak: float, length: float = 30.0) -> np.ndarray:
    """Double-gamma HRF with the given peak time (undershoot 1/6 at peak+10 s), unit sum."""
    t = np.arange(0, length, 1 / fs)
    h = stats.gamma.pdf(t, peak + 1.0) - stats.gamma.pdf(t, peak + 11.0) / 6.0
    return h / h.sum()


def _timeline(rng: np.random.Generator, n_runs: int, n_vol: int, tr: float, localizer: float | None,
              paused: bool) -> dict:
    """Session clock (s) of every marker, pause and run."""
    t = rng.uniform(30, 60)
    loc = []
    if localizer is not None:
        n_loc = int(rng.integers(3, 9))
        loc = [t + j * localizer for j in range(n_loc)]
        t = loc[-1] + localizer + rng.uniform(20, 60)
    runs, pauses = [], []
    for r in range(n_runs):
        n_dummy = int(rng.integers(2, 5))
        n_saved = int(n_vol + rng.integers(-5, 6))
        times = [t + j * tr for j in range(n_dummy + n_saved)]
        runs.append({"n_dummy": n_dummy, "n_saved": n_saved, "times": times})
        end = times[-1] + tr
        if r < n_runs - 1:
            nxt = end + rng.uniform(20, 90)
            if paused:
                p0, p1 = end + rng.uniform(2, 5), nxt - rng.uniform(5, 15)
                if p1 - p0 > 2.0:
                    pauses.append((p0, p1))
            t = nxt
        else:
            t = end
    total = t + rng.uniform(10, 30)
    return {"localizer": loc, "runs": runs, "pauses": pauses, "total": total}


def _eeg(rng: np.random.Generator, n: int, drives: dict[str, np.ndarray]) -> np.ndarray:
    """(32, n) EEG in volts on the session clock; drives are z-scored log-power series at SFREQ."""
    name = "colin27_1020" if "colin27_1020" in mne.channels.get_builtin_montages() else "standard_1020"
    mont = mne.channels.make_standard_montage(name)
    pos = mont.get_positions()["ch_pos"]
    xyz = np.array([pos[c] for c in CH]) * 1000.0  # mm
    data = np.zeros((len(CH), n), np.float64)
    for name, ((lo, hi), amp, centres) in SOURCES.items():
        if name == "alpha":
            iaf = rng.uniform(9.3, 10.7)
            lo, hi = iaf - 1.0, iaf + 1.0
        osc = _fft_filter(rng.standard_normal(n), SFREQ, lo, hi)
        # log power = drive (z): amplitude = exp(drive / 2)
        env = np.exp(0.5 * drives[name])
        src = osc * env / np.sqrt(np.mean(env ** 2))
        topo = np.zeros(len(CH))
        for c in centres:
            d = np.linalg.norm(xyz - xyz[CH.index(c)], axis=1)
            topo += np.exp(-d ** 2 / (2 * 40.0 ** 2))
        data += np.outer(topo * amp, src)
    # smooth background
    for _ in range(6):
        centre = xyz[rng.integers(len(CH))]
        topo = np.exp(-np.linalg.norm(xyz - centre, axis=1) ** 2 / (2 * 60.0 ** 2))
        data += np.outer(topo * 6.0, _fft_filter(rng.standard_normal(n), SFREQ, 0.3, 200.0, pink=True))
    data += 3.0 * _fft_filter(rng.standard_normal((len(CH), n)), SFREQ, 0.3, 200.0, pink=True)
    return data * 1e-6


def _write_vmrk_segments(vmrk: Path, resumes: list[tuple[int, dt.datetime]]) -> None:
    """Add 'New Segment' markers (file sample 0-based, date) and renumber markers by position."""
    text = vmrk.read_text(encoding="utf-8")
    head, _, body = text.partition("[Marker Infos]")
    lines = body.splitlines()
    keep_head = [ln for ln in lines if not re.match(r"^Mk\d+=", ln)]
    marks = []
    for ln in lines:
        m = re.match(r"^Mk\d+=(.*)$", ln)
        if m:
            fields = m.group(1).split(",")
            marks.append(fields)
    for pos, when in resumes:
        marks.append(["New Segment", "", str(pos + 1), "1", "0", when.strftime("%Y%m%d%H%M%S%f")])
    marks.sort(key=lambda f: (int(f[2]), 0 if f[0] == "New Segment" else 1))
    out = [f"Mk{i + 1}=" + ",".join(f) for i, f in enumerate(marks)]
    vmrk.write_text(head + "[Marker Infos]" + "\n".join(keep_head).rstrip("\n") + "\n" + "\n".join(out) + "\n",
                    encoding="utf-8")


def _write_eeg(folder: Path, base: str, data_file: np.ndarray, markers: list[int],
               resumes: list[tuple[int, dt.datetime]], start: dt.datetime) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    events = [{"onset": int(m), "description": 128, "type": "Response"} for m in markers]
    pybv.write_brainvision(data=data_file, sfreq=SFREQ, ch_names=CH, fname_base=base, folder_out=str(folder),
                           events=events, fmt="binary_int16", resolution=0.1, unit="µV", meas_date=start,
                           overwrite=True)
    if resumes:
        _write_vmrk_segments(folder / f"{base}.vmrk", resumes)


def _ids(arg: str | None, default: list[str]) -> list[str]:
    if arg is None:
        return default
    return [s.strip() for s in arg.split(",") if s.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--subjects", type=int, default=3)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--minutes", type=float, default=5.0, help="saved minutes per run (approx.)")
    ap.add_argument("--tr", type=float, default=2.0)
    ap.add_argument("--localizer", help="subjects with a localizer block (default 01,03)")
    ap.add_argument("--paused", help="subjects whose recorder pauses between runs (default 02)")
    ap.add_argument("--declare", help="subjects whose bold.json declare NumberOfVolumesDiscardedByScanner (default 01)")
    ap.add_argument("--one-run", default="", help="subjects with one run only")
    ap.add_argument("--cut-short", default="", help="SUB:RUN:N[,...] drop the last N saved volumes of that NIfTI")
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    out = Path(args.out)
    subs = [f"{i + 1:02d}" for i in range(args.subjects)]
    loc_subs = _ids(args.localizer, [s for s in ("01", "03") if s in subs])
    paused_subs = _ids(args.paused, [s for s in ("02",) if s in subs])
    declare_subs = _ids(args.declare, [s for s in ("01",) if s in subs])
    one_run = _ids(args.one_run, [])
    cuts = {}
    for c in _ids(args.cut_short, []):
        s, r, k = c.split(":")
        cuts[(s, int(r))] = int(k)
    tr = args.tr
    n_vol = int(round(args.minutes * 60 / tr))

    # anatomy, shared by every subject (one template space)
    ii, jj, kk = np.meshgrid(*[np.arange(g) for g in GRID], indexing="ij")
    c0 = (np.array(GRID) - 1) / 2
    brain = (((ii - c0[0]) / 8.5) ** 2 + ((jj - c0[1]) / 10.5) ** 2 + ((kk - c0[2]) / 8.5) ** 2) <= 1.0
    affine = np.diag([VOX, VOX, VOX, 1.0])
    affine[:3, 3] = -c0 * VOX
    atlas = np.zeros(GRID, np.int16)
    weights = np.zeros((len(REGIONS),) + GRID, np.float32)
    for ri, (_name, cen, *_r) in enumerate(REGIONS):
        d2 = (ii - cen[0]) ** 2 + (jj - cen[1]) ** 2 + (kk - cen[2]) ** 2
        inside = (d2 <= 4.0) & brain
        atlas[inside] = ri + 1
        weights[ri] = np.where(d2 <= 9.0, np.exp(-d2 / (2 * 1.5 ** 2)), 0) * brain
    gt = out / "groundtruth"
    gt.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(atlas, affine), gt / "atlas.nii.gz")
    (gt / "atlas.tsv").write_text("index\tname\n" + "".join(f"{i + 1}\t{r[0]}\n" for i, r in enumerate(REGIONS)))

    bids = out / "bids"
    plain = out / "plain"
    bids.mkdir(parents=True, exist_ok=True)
    plain.mkdir(parents=True, exist_ok=True)
    (bids / "dataset_description.json").write_text(json.dumps(
        {"Name": "UT50 continuous-session EEG-fMRI", "BIDSVersion": "1.8.0", "DatasetType": "raw"}, indent=1))
    (bids / "participants.tsv").write_text("participant_id\n" + "".join(f"sub-{s}\n" for s in subs))
    runs_rows, truth = [], {"tr": tr, "sfreq": SFREQ, "seed": args.seed, "subjects": {}}

    for si, sub in enumerate(subs):
        n_runs = 1 if sub in one_run else args.runs
        loc_int = None
        if sub in loc_subs:
            loc_int = tr if loc_subs.index(sub) == 0 else 0.75
        tl = _timeline(rng, n_runs, n_vol, tr, loc_int, sub in paused_subs)
        n = int(np.ceil(tl["total"] * SFREQ))
        n_slow = int(np.ceil(tl["total"] * SLOW_FS)) + 1
        slow = {}
        for name in SOURCES:
            z = _fft_filter(rng.standard_normal(n_slow + 600), SLOW_FS, None, 0.08)[300:-300]
            slow[name] = (z - z.mean()) / z.std()
        t_slow = np.arange(n_slow) / SLOW_FS
        t_fast = np.arange(n) / SFREQ
        drives = {k: np.interp(t_fast, t_slow, v) for k, v in slow.items()}
        eeg = _eeg(rng, n, drives)
        del drives
        # region signals on the slow clock (z units x coupling)
        reg = np.zeros((len(REGIONS), n_slow))
        phys = np.zeros((len(REGIONS), n_slow))
        for ri, (_name, _c, band, coup, peak) in enumerate(REGIONS):
            if band is not None:
                conv = np.convolve(slow[band], _hrf(SLOW_FS, peak))[:n_slow]
                conv = conv[int(30 * SLOW_FS):]
                sd = conv.std()
                full = np.convolve(slow[band], _hrf(SLOW_FS, peak))[:n_slow]
                reg[ri] = coup * (full - conv.mean()) / sd
            p = _fft_filter(rng.standard_normal(n_slow + 600), SLOW_FS, None, 0.12)[300:-300]
            phys[ri] = p / p.std()
        # file samples: drop paused spans
        keep = np.ones(n, bool)
        for p0, p1 in tl["pauses"]:
            keep[int(round(p0 * SFREQ)):int(round(p1 * SFREQ))] = False
        file_index = np.cumsum(keep) - 1  # session sample -> file sample (valid where keep)

        def to_file(t: float, jitter: bool = True, keep=keep, file_index=file_index) -> int:
            s = int(round(t * SFREQ)) + (int(rng.integers(-1, 2)) if jitter else 0)
            assert keep[s], "marker inside a pause"
            return int(file_index[s])

        markers, loc_samples = [], []
        for t in tl["localizer"]:
            loc_samples.append(to_file(t))
        markers += loc_samples
        start = dt.datetime(2026, 3, 2, 9, 0, 0) + dt.timedelta(hours=si)
        resumes = [(int(file_index[int(round(p1 * SFREQ))]), start + dt.timedelta(seconds=p1))
                   for _p0, p1 in tl["pauses"]]
        sub_truth = {"n_samples_file": int(keep.sum()), "session_seconds": tl["total"],
                     "pauses_session_s": tl["pauses"], "new_segment_samples": [r[0] for r in resumes],
                     "localizer_samples": loc_samples, "localizer_interval_s": loc_int,
                     "paused": sub in paused_subs, "declared": sub in declare_subs, "runs": []}
        for r, run in enumerate(tl["runs"], start=1):
            samples = [to_file(t) for t in run["times"]]
            markers += samples
            nd = run["n_dummy"]
            t_saved = np.array(run["times"][nd:])
            n_cut = cuts.get((sub, r), 0)
            n_file = run["n_saved"] - n_cut
            t_mid = t_saved[:n_file] + tr / 2
            truth_reg = np.stack([np.interp(t_mid, t_slow, reg[k]) for k in range(len(REGIONS))], 1)
            phys_reg = np.stack([np.interp(t_mid, t_slow, phys[k]) for k in range(len(REGIONS))], 1)
            # voxels
            base = (800 + 150 * _fft_filter(rng.standard_normal(GRID), 1.0, None, 0.15).reshape(GRID)) * brain + 30
            sig = 0.015 * np.einsum("tr,rxyz->txyz", truth_reg, weights) + 0.006 * np.einsum(
                "tr,rxyz->txyz", phys_reg, weights)
            tt = np.arange(n_file) / max(n_file - 1, 1)
            drift = 0.01 * (rng.uniform(-1, 1) * tt + rng.uniform(-0.5, 0.5) * np.cos(np.pi * tt))
            vol = base[None] * (1 + sig + drift[:, None, None, None])
            vol += rng.standard_normal(vol.shape) * (0.01 * 800 * brain + 8)
            vol = np.moveaxis(vol, 0, -1).astype(np.float32)
            img = nib.Nifti1Image(vol, affine)
            img.header.set_xyzt_units("mm", "sec")
            img.header["pixdim"][4] = tr
            img.header.set_qform(affine, 1)
            img.header.set_sform(affine, 1)
            func = bids / f"sub-{sub}" / "func"
            func.mkdir(parents=True, exist_ok=True)
            stem = f"sub-{sub}_task-rest_run-{r}_bold"
            nib.save(img, func / f"{stem}.nii.gz")
            side = {"RepetitionTime": tr, "TaskName": "rest"}
            if sub in declare_subs:
                side["NumberOfVolumesDiscardedByScanner"] = nd
            (func / f"{stem}.json").write_text(json.dumps(side, indent=1))
            (plain / f"sub{sub}").mkdir(parents=True, exist_ok=True)
            nib.save(img, plain / f"sub{sub}" / f"run{r}.nii.gz")
            runs_rows.append((f"sub{sub}/session.vhdr", f"sub{sub}/run{r}.nii.gz", sub, r, tr))
            np.savetxt(gt / f"sub-{sub}_run-{r}_regions.tsv", truth_reg, delimiter="\t", fmt="%.6f",
                       header="\t".join(x[0] for x in REGIONS), comments="")
            first_saved = samples[nd]
            sub_truth["runs"].append({
                "run": r, "n_dummy": nd, "n_markers": len(samples), "marker_samples": samples,
                "first_saved_sample": first_saved,
                "first_saved_sample_unjittered": int(file_index[int(round(run["times"][nd] * SFREQ))]),
                "n_saved_by_scanner": run["n_saved"], "n_volumes_nifti": n_file, "cut_short": n_cut,
                "last_marker_sample": samples[-1]})
        truth["subjects"][sub] = sub_truth
        data_file = eeg[:, keep].astype(np.float32)
        del eeg
        eeg_dir = bids / f"sub-{sub}" / "eeg"
        _write_eeg(eeg_dir, f"sub-{sub}_task-rest_eeg", data_file, markers, resumes, start)
        _write_eeg(plain / f"sub{sub}", "session", data_file, markers, resumes, start)
        (eeg_dir / f"sub-{sub}_task-rest_eeg.json").write_text(json.dumps({
            "TaskName": "rest", "SamplingFrequency": SFREQ, "PowerLineFrequency": 50, "EEGReference": "FCz",
            "SoftwareFilters": "n/a", "EEGChannelCount": len(CH), "RecordingType": "continuous"}, indent=1))
        (eeg_dir / f"sub-{sub}_task-rest_channels.tsv").write_text(
            "name\ttype\tunits\tstatus\n" + "".join(f"{c}\tEEG\tµV\tgood\n" for c in CH), encoding="utf-8")
        print(f"sub-{sub}: {len(tl['runs'])} runs, {keep.sum() / SFREQ:.0f} s of EEG, localizer "
              f"{len(loc_samples)} markers, {len(resumes)} New Segment(s), declared={sub in declare_subs}", flush=True)

    header = "eeg\tbold\tsubject\trun\ttr\n"
    (plain / "runs.tsv").write_text(header + "".join("\t".join(map(str, r)) + "\n" for r in runs_rows))
    shuffled = []
    for sub in subs:
        shuffled += [r for r in runs_rows if r[2] == sub][::-1]
    (plain / "runs_shuffled.tsv").write_text(header + "".join("\t".join(map(str, r)) + "\n" for r in shuffled))
    (gt / "truth.json").write_text(json.dumps(truth, indent=1))


if __name__ == "__main__":
    main()
