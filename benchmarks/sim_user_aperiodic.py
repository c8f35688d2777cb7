"""A user's own simultaneous EEG-fMRI generator: BOLD follows the EEG's aperiodic (1/f) exponent.

Written from scratch for user test 56 (it does not import or copy ``eeg2fmri.simulate``).

Hypothesis encoded: the BOLD of a few cortical regions follows the slowly varying aperiodic exponent
chi(t) of the local field (E/I balance; Gao et al. 2017, Donoghue et al. 2020): a higher exponent (steeper
spectrum, more inhibition) means lower BOLD. An occipital alpha rhythm whose power varies slowly is in the
EEG too but is NOT coupled to BOLD (a distractor), and two further sources carry their own aperiodic
fluctuations that no BOLD region follows.

EEG: per source, 1/f^chi(t) noise made by spectral shaping of white noise in 1-s segments overlapped by
50 % with sine windows (so the variance is constant across segment joins), spectrum pivoting at 20 Hz
(a higher exponent raises delta/theta and lowers beta/gamma power); dipoles in an infinite homogeneous
medium projected to 32 standard 10-20 electrodes, with subject-specific dipole positions (+-10 mm) and
orientations (radial +- ~35 deg), channel gains, white + line sensor noise, plus an ECG channel.
Scanner volume markers ``Response/R128`` with +-2 samples of jitter. BrainVision through mne-bids.

BOLD: 4 mm MNI-like box, ellipsoid "brain", four Gaussian blobs whose signal is -chi(t) of their source
(z-scored), convolved with a double-gamma HRF peaking at ~6.5 s (per-subject jitter), sampled at
mid-acquisition; thermal + spatially smooth AR(1) noise + drift; TR 1.5 s.

Also writes two EEG-only recordings (no markers) for synthesis: ``sub-01`` session 2 (same head) and a new
``sub-05``, with their chi series. Ground truth (region masks, labels TSV, chi series continuous at 10 Hz
and per volume, HRF parameters) goes to ``OUT/truth`` outside the BIDS folder.

Usage: ``python benchmarks/sim_user_aperiodic.py --out /tmp/ut56/data --seed 0``
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import mne
import nibabel as nib
import numpy as np
from mne_bids import BIDSPath, write_raw_bids
from scipy import signal
from scipy.ndimage import gaussian_filter
from scipy.stats import gamma

SFREQ = 500.0
TR = 1.5
VOX = 4.0
CH_NAMES = ["Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "FC5", "FC1", "FC2", "FC6", "T7", "C3", "Cz", "C4",
            "T8", "TP9", "CP5", "CP1", "CP2", "CP6", "TP10", "P7", "P3", "Pz", "P4", "P8", "PO9", "O1", "Oz",
            "O2", "PO10"]
# BOLD-coupled regions (name, MNI centre in mm); their sources' chi drives their BOLD
REGIONS = [("L_sensorimotor", (-40.0, -20.0, 52.0)),
           ("R_parietal", (40.0, -56.0, 44.0)),
           ("medial_prefrontal", (0.0, 44.0, 24.0)),
           ("L_temporal", (-56.0, -20.0, -4.0))]
# sources with their own aperiodic fluctuation but no BOLD region
UNCOUPLED = [("R_temporal", (56.0, -20.0, -4.0)), ("R_frontal", (36.0, 40.0, 28.0))]
ALPHA_SRC = ("occipital_alpha", (0.0, -88.0, 8.0))
HEAD_CENTRE = np.array([0.0, -18.0, 12.0])  # mm, MNI: rough centre of the head sphere


def slow_walk(n: int, fs: float, rng: np.random.Generator, fmax: float = 0.08) -> np.ndarray:
    """Smooth random walk: white noise low-passed below ``fmax`` Hz, z-scored. Shape (n,)."""
    pad = int(60 * fs)
    x = rng.standard_normal(n + 2 * pad)
    b, a = signal.butter(3, fmax / (fs / 2))
    y = signal.filtfilt(b, a, x)[pad:pad + n]
    return (y - y.mean()) / y.std()


def aperiodic_noise(chi_seg: np.ndarray, seg_len: int, rng: np.random.Generator) -> np.ndarray:
    """1/f^chi noise with one exponent per segment, 50 % overlapped sine windows. Shape (n_seg*hop+hop,)."""
    hop = seg_len // 2
    n_seg = chi_seg.size
    f = np.fft.rfftfreq(seg_len, 1 / SFREQ)
    f_eff = np.maximum(f, 1.0)
    amp = (f_eff[None, :] / 20.0) ** (-chi_seg[:, None] / 2.0)  # power (f/20)^-chi: pivot at 20 Hz
    amp[:, 0] = 0.0
    spec = np.fft.rfft(rng.standard_normal((n_seg, seg_len)), axis=1) * amp
    seg = np.fft.irfft(spec, n=seg_len, axis=1)
    win = np.sin(np.pi * (np.arange(seg_len) + 0.5) / seg_len)  # sin^2 windows at 50 % overlap sum to 1
    out = np.zeros((n_seg + 1) * hop)
    for i in range(n_seg):
        out[i * hop:i * hop + seg_len] += win * seg[i]
    return out


def dipole_leadfield(src_pos: np.ndarray, src_ori: np.ndarray, el_pos: np.ndarray) -> np.ndarray:
    """Potential of unit current dipoles in an infinite homogeneous medium. (n_el, n_src)."""
    d = el_pos[:, None, :] - src_pos[None, :, :]
    r3 = np.linalg.norm(d, axis=2) ** 3
    return np.einsum("esk,sk->es", d, src_ori) / r3


def mni_to_head(mni: np.ndarray, radius: float) -> np.ndarray:
    """Map an MNI point to the electrode sphere's frame (x right, y front, z up), at 0.65 of its radius."""
    v = np.asarray(mni, float) - HEAD_CENTRE
    return v / np.linalg.norm(v) * radius * 0.65


def double_gamma(t: np.ndarray, peak: float, under: float = 15.0, ratio: float = 0.2) -> np.ndarray:
    """Double-gamma HRF with the given peak time (s) and undershoot peak. Shape like t."""
    h = gamma.pdf(t, peak + 1.0, scale=1.0) - ratio * gamma.pdf(t, under + 1.0, scale=1.0)
    return h / h.max()


def ecg_trace(n: int, rng: np.random.Generator) -> np.ndarray:
    """Synthetic ECG (V): P, QRS, T Gaussians at a heart rate of 60-75 bpm with HRV. Shape (n,)."""
    t = np.arange(n) / SFREQ
    hr = rng.uniform(60, 75) / 60.0
    beats, tb = [], rng.uniform(0, 1)
    while tb < t[-1] + 1:
        beats.append(tb)
        tb += (1 / hr) * (1 + 0.05 * rng.standard_normal())
    x = np.zeros(n)
    for b in beats:
        for off, w, a in ((-0.18, 0.025, 0.12), (0.0, 0.010, 1.0), (-0.02, 0.008, -0.15), (0.25, 0.04, 0.3)):
            x += a * np.exp(-0.5 * ((t - b - off) / w) ** 2)
    return 1e-3 * x + 5e-6 * rng.standard_normal(n)


def simulate_eeg(subject_rng: np.random.Generator, head: dict, n: int, rng: np.random.Generator,
                 montage_pos: np.ndarray) -> tuple[np.ndarray, dict]:
    """EEG (V) of one recording (32 EEG channels + ECG) and the chi series at 10 Hz.

    Returns data (33, n) and a dict: chi (n_regions+n_uncoupled, n10), alpha_logpow (n10,), t10 (n10,).
    """
    seg_len = int(SFREQ)
    hop = seg_len // 2
    n_seg = int(np.ceil(n / hop))
    fs_seg = SFREQ / hop
    srcs = REGIONS + UNCOUPLED
    shared = slow_walk(n_seg, fs_seg, rng)
    chi = np.empty((len(srcs), n_seg))
    for k in range(len(srcs)):
        z = 0.3 * shared + np.sqrt(1 - 0.09) * slow_walk(n_seg, fs_seg, rng)
        chi[k] = np.clip(1.6 + 0.3 * z, 1.0, 2.2)
    src_ts = np.empty((len(srcs) + 1, n))
    for k in range(len(srcs)):
        src_ts[k] = aperiodic_noise(chi[k], seg_len, rng)[:n]
    # alpha distractor: narrow-band at the subject's IAF, log-amplitude a slow walk independent of chi
    iaf = head["iaf"]
    b, a = signal.butter(2, [(iaf - 1.2) / (SFREQ / 2), (iaf + 1.2) / (SFREQ / 2)], btype="band")
    carrier = signal.filtfilt(b, a, rng.standard_normal(n))
    carrier /= carrier.std()
    alpha_log_amp = 0.6 * slow_walk(n, SFREQ, rng, fmax=0.1)
    src_ts[-1] = 2.5 * carrier * np.exp(alpha_log_amp)
    lf = head["leadfield"]  # (32, n_src)
    eeg = lf @ src_ts
    eeg *= 12e-6 / np.median(eeg.std(axis=1))  # median channel SD ~ 12 uV
    t = np.arange(n) / SFREQ
    eeg += 1.5e-6 * rng.standard_normal(eeg.shape)
    eeg += 1.0e-6 * np.sin(2 * np.pi * 50.0 * t + rng.uniform(0, 2 * np.pi, (eeg.shape[0], 1)))
    data = np.vstack([eeg, ecg_trace(n, rng)[None]])
    # chi at 10 Hz: segment centres at (i*hop + seg_len/2)/SFREQ
    t_seg = (np.arange(n_seg) * hop + seg_len / 2) / SFREQ
    t10 = np.arange(0, n / SFREQ, 0.1)
    chi10 = np.stack([np.interp(t10, t_seg, c) for c in chi])
    alpha10 = np.interp(t10, t, 2 * alpha_log_amp)
    return data, {"chi": chi10, "alpha_logpow": alpha10, "t10": t10}


def make_head(rng: np.random.Generator, montage_pos: np.ndarray) -> dict:
    """Subject-specific forward model and rhythm parameters."""
    radius = np.median(np.linalg.norm(montage_pos, axis=1))
    pos, ori = [], []
    for _, mni in REGIONS + UNCOUPLED + [ALPHA_SRC]:
        p = mni_to_head(np.asarray(mni) + rng.normal(0, 10.0, 3), radius)
        radial = p / np.linalg.norm(p)
        o = radial + 0.7 * rng.standard_normal(3)
        pos.append(p)
        ori.append(o / np.linalg.norm(o))
    lf = dipole_leadfield(np.array(pos), np.array(ori), montage_pos)
    lf *= rng.uniform(0.85, 1.15, (lf.shape[0], 1))
    return {"leadfield": lf, "iaf": rng.uniform(9.0, 11.0), "hrf_peak": rng.uniform(6.2, 6.9)}


def brain_grid() -> tuple[np.ndarray, np.ndarray]:
    """(affine, brain mask) of a 4 mm MNI-like box holding an ellipsoid brain."""
    lo = np.array([-72.0, -108.0, -44.0])
    shape = (37, 46, 34)
    aff = np.diag([VOX, VOX, VOX, 1.0])
    aff[:3, 3] = lo
    ijk = np.indices(shape).reshape(3, -1).T
    xyz = ijk * VOX + lo
    c, ax = np.array([0.0, -18.0, 14.0]), np.array([66.0, 84.0, 58.0])
    inside = (((xyz - c) / ax) ** 2).sum(1) <= 1.0
    return aff, inside.reshape(shape)


def write_subject(root: Path, truth: Path, sub: str, rng: np.random.Generator, head: dict,
                  montage: mne.channels.DigMontage, montage_pos: np.ndarray, minutes: float, aff: np.ndarray,
                  brain: np.ndarray, region_w: np.ndarray, with_bold: bool, session: str | None) -> dict:
    n_vol = int(round(minutes * 60 / TR))
    lead = rng.uniform(3.0, 8.0) if with_bold else 0.0
    tail = 5.0
    dur = lead + n_vol * TR + tail
    n = int(round(dur * SFREQ))
    data, gt = simulate_eeg(rng, head, n, rng, montage_pos)
    info = mne.create_info(CH_NAMES + ["ECG"], SFREQ, ["eeg"] * 32 + ["ecg"])
    raw = mne.io.RawArray(data, info, verbose="error")
    raw.set_montage(montage, on_missing="ignore", verbose="error")
    raw.info["line_freq"] = 50.0
    onsets = lead + np.arange(n_vol) * TR
    if with_bold:
        samp = np.round(onsets * SFREQ).astype(int) + rng.integers(-2, 3, n_vol)
        raw.set_annotations(mne.Annotations(samp / SFREQ, np.zeros(n_vol), ["Response/R128"] * n_vol))
    bp = BIDSPath(subject=sub, session=session, task="rest", datatype="eeg", root=root)
    write_raw_bids(raw, bp, format="BrainVision", allow_preload=True, overwrite=True, verbose="error")
    out = {"lead_s": lead, "n_vol": n_vol, "eeg_seconds": dur, "hrf_peak_s": head["hrf_peak"],
           "iaf_hz": head["iaf"]}
    # ground truth: chi at 10 Hz, the true BOLD drive (HRF * -z(chi)) at volume mid-acquisition
    t10 = gt["t10"]
    hrf = double_gamma(np.arange(0, 32, 0.1), head["hrf_peak"])
    chi_z = (gt["chi"] - 1.6) / 0.3
    drive10 = np.stack([np.convolve(-c, hrf)[:t10.size] for c in chi_z[:len(REGIONS)]])
    drive10 /= drive10.std(axis=1, keepdims=True)
    np.savez(truth / f"sub-{sub}{'_ses-' + session if session else ''}_truth.npz", t10=t10, chi=gt["chi"],
             alpha_logpow=gt["alpha_logpow"], drive10=drive10, onsets=onsets,
             region_names=np.array([r[0] for r in REGIONS]), hrf_peak=head["hrf_peak"])
    if not with_bold:
        return out
    tmid = onsets + TR / 2
    drive_vol = np.stack([np.interp(tmid, t10, d) for d in drive10])  # (n_regions, n_vol)
    # BOLD: baseline, region signal 1.5 % at blob centres, noise
    shape = brain.shape
    base = np.where(brain, rng.uniform(900, 1100) * (1 + 0.1 * gaussian_filter(rng.standard_normal(shape), 2)),
                    20.0)
    sig = np.tensordot(drive_vol.T, region_w, axes=(1, 0))  # (n_vol, *shape)
    thermal = 0.010 * rng.standard_normal((n_vol,) + shape)
    innov = np.stack([gaussian_filter(rng.standard_normal(shape), 1.5) for _ in range(n_vol)])
    innov /= innov[:, brain].std()
    ar = np.zeros_like(innov)
    for i in range(n_vol):
        ar[i] = (0.6 * ar[i - 1] if i else 0) + innov[i]
    ar *= 0.007 / ar[:, brain].std()
    drift = 0.01 * np.linspace(-1, 1, n_vol)[:, None, None, None] * rng.standard_normal()
    pct = 0.015 * sig + thermal + ar + drift
    bold = base[None] * (1 + pct * brain[None])
    bold[:, ~brain] = 20.0 + 3.0 * np.abs(rng.standard_normal((n_vol, int((~brain).sum()))))
    img = nib.Nifti1Image(np.moveaxis(bold, 0, -1).astype(np.float32), aff)
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = TR
    img.header.set_sform(aff, code=4)
    img.header.set_qform(aff, code=4)
    func = root / f"sub-{sub}" / "func"
    func.mkdir(parents=True, exist_ok=True)
    nib.save(img, func / f"sub-{sub}_task-rest_bold.nii.gz")
    (func / f"sub-{sub}_task-rest_bold.json").write_text(json.dumps(
        {"RepetitionTime": TR, "TaskName": "rest", "EchoTime": 0.03}, indent=1))
    np.save(truth / f"sub-{sub}_drive_vol.npy", drive_vol.astype(np.float32))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--subjects", type=int, default=4)
    p.add_argument("--minutes", type=float, default=6.0)
    args = p.parse_args()
    t0 = time.time()
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    root, truth, eeg_only = out / "bids", out / "truth", out / "eeg_only"
    truth.mkdir(parents=True)
    root.mkdir(parents=True)
    montage = mne.channels.make_standard_montage("standard_1005")
    pos = montage.get_positions()["ch_pos"]
    montage_pos = np.array([pos[c] for c in CH_NAMES]) * 1000.0  # mm
    montage = mne.channels.make_dig_montage({c: pos[c] for c in CH_NAMES}, coord_frame="head",
                                            nasion=montage.get_positions()["nasion"],
                                            lpa=montage.get_positions()["lpa"], rpa=montage.get_positions()["rpa"])
    aff, brain = brain_grid()
    ijk = np.indices(brain.shape).reshape(3, -1).T
    xyz = (ijk * VOX + aff[:3, 3]).reshape(brain.shape + (3,))
    region_w = np.stack([np.exp(-0.5 * (np.linalg.norm(xyz - np.array(c), axis=-1) / 7.0) ** 2) * brain
                         for _, c in REGIONS])
    region_w[region_w < 0.05] = 0.0
    labels = np.zeros(brain.shape, np.int16)
    for k in range(len(REGIONS)):
        labels[(region_w[k] >= 0.3)] = k + 1
    nib.save(nib.Nifti1Image(labels, aff), truth / "regions.nii.gz")
    (truth / "regions.tsv").write_text("index\tname\n" + "".join(f"{k + 1}\t{r[0]}\n"
                                                                for k, r in enumerate(REGIONS)))
    meta = {"seed": args.seed, "tr": TR, "sfreq": SFREQ, "voxel_mm": VOX, "regions": REGIONS,
            "uncoupled_aperiodic": UNCOUPLED, "alpha_source": ALPHA_SRC, "subjects": {}}
    heads = {}
    for s in range(1, args.subjects + 2):
        sub = f"{s:02d}"
        heads[sub] = make_head(np.random.default_rng([args.seed, s, 7]), montage_pos)
    for s in range(1, args.subjects + 1):
        sub = f"{s:02d}"
        meta["subjects"][sub] = write_subject(root, truth, sub, np.random.default_rng([args.seed, s]), heads[sub],
                                              montage, montage_pos, args.minutes, aff, brain, region_w, True,
                                              None)
    # EEG-only recordings for synthesis (no BOLD, no markers), in a BIDS folder of their own
    meta["eeg_only"] = {
        "sub-01_ses-2": write_subject(eeg_only, truth, "01", np.random.default_rng([args.seed, 1, 2]), heads["01"],
                                      montage, montage_pos, args.minutes, aff, brain, region_w, False, "2"),
        f"sub-{args.subjects + 1:02d}": write_subject(eeg_only, truth, f"{args.subjects + 1:02d}",
                                                      np.random.default_rng([args.seed, args.subjects + 1]),
                                                      heads[f"{args.subjects + 1:02d}"], montage, montage_pos,
                                                      args.minutes, aff, brain, region_w, False, None)}
    (truth / "meta.json").write_text(json.dumps(meta, indent=1))
    print(f"wrote {root} ({args.subjects} subjects x {args.minutes} min), {eeg_only}, truth in {truth}; "
          f"brain voxels {int(brain.sum())}, region voxels {[(labels == k + 1).sum() for k in range(len(REGIONS))]}; "
          f"{time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
