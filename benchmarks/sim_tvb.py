"""A generator and a measurement nobody here wrote: The Virtual Brain's Jansen-Rit network, EEG projection and BOLD.

A probe of the robustness matrix (``bench_robustness.py --settings tvb_jr``), not part of the package: it needs
`The Virtual Brain <https://www.thevirtualbrain.org>`_'s simulator and data (``pip install tvb-library tvb-data``;
Sanz Leon et al. 2013, Front. Neuroinform. 7:10). Unlike ``sim_neurolib.py`` it uses nothing of
:mod:`eeg2fmri.simulate`: not our anatomy, lead field, voxel maps, noise or writers.

What comes from TVB, unchanged: the neural dynamics (``tvb.simulator.models.JansenRit`` with its default parameters, one
column per region of TVB's 76-region connectome ``connectivity_76``, ``SigmoidalJansenRit`` coupling, conduction delays
from the tract lengths, additive noise on the excitatory input as in TVB's Jansen-Rit tutorial, Heun integration at
1 ms), the EEG forward model (``projection_eeg_65_surface_16k``: 65 electrodes x 16,384 cortical vertices, summed over
the vertices of each region with ``regionMapping_16k_76``, applied to the pyramidal-cell potential ``y1 - y2``) and the
haemodynamics (``tvb.simulator.monitors.Bold``: its first-order Volterra kernel applied to the same potential).

Choices made here (the measurement's, none tuned on any model): a slow Ornstein-Uhlenbeck modulation of each region's
mean input ``mu`` (changed every 0.5 s of simulated time; in TVB's Jansen-Rit, raising ``mu`` from 0.12 to 0.30 takes
theta power down ~100x, moves the peak from ~5 to ~10.5 Hz and raises the mean potential, hence BOLD); a voxel grid
around the region centres (TVB's axes: x anterior, y left, z up; converted to RAS), each voxel a mixture of its
nearest (85 %) and second-nearest (15 %) region with a random gain, plus spatially smooth AR(1) noise, a slow drift and a
baseline of ~1000; sensor noise (white + 1/f); per-subject global coupling and electrode gains. EEG is written as EDF
(scanner markers ``R128`` as annotations), BOLD as float32 NIfTI, through MNE-BIDS and nibabel.

    python benchmarks/sim_tvb.py OUT [--subjects 4] [--minutes 6] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import warnings
from pathlib import Path

import numpy as np

TVB = dict(dt_ms=1.0, speed_mm_ms=4.0, coupling_a=1.0, mu_mean=0.20, mu_sd=0.04, mu_range=(0.10, 0.32), mu_tau_s=4.0,
           mu_global_share=0.3, chunk_s=0.5, signal_share=0.3, voxel_mm=6.0, mask_radius_mm=15.0, eeg_uv=20.0, sensor_noise=0.3)


def _tvb_data(name: str) -> Path:
    import tvb_data

    return Path(tvb_data.__file__).parent / name


def _ar1(n: int, m: int, rho: float, rng: np.random.Generator, share: float = 0.0) -> np.ndarray:
    """Unit-variance AR(1) series (n, m); ``share`` of the variance common to all columns."""
    innov = np.sqrt(share) * rng.standard_normal((n, 1)) + np.sqrt(1.0 - share) * rng.standard_normal((n, m))
    x = np.empty((n, m))
    x[0] = innov[0]
    for t in range(1, n):
        x[t] = rho * x[t - 1] + np.sqrt(1.0 - rho * rho) * innov[t]
    return x


def _pink(n: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance 1/f noise (n, m)."""
    spec = np.fft.rfft(rng.standard_normal((n, m)), axis=0)
    f = np.arange(spec.shape[0], dtype=float)
    f[0] = 1.0
    x = np.fft.irfft(spec / np.sqrt(f)[:, None], n=n, axis=0)
    return x / x.std(0)


def _region_gain(n_regions: int) -> tuple[np.ndarray, list[str]]:
    """EEG gain (65, n_regions) from TVB's surface projection summed over each region's vertices, and the electrodes."""
    proj = np.nan_to_num(np.load(_tvb_data("projectionMatrix/projection_eeg_65_surface_16k.npy")))
    mapping = np.loadtxt(_tvb_data("regionMapping/regionMapping_16k_76.txt")).astype(int)
    gain = np.stack([proj[:, mapping == r].sum(1) for r in range(n_regions)], 1)
    names = [line.split()[0].split("/")[0] for line in _tvb_data("sensors/eeg_brainstorm_65.txt").read_text().splitlines() if line.strip()]
    return gain, names


def _voxel_map(centres_ras: np.ndarray, rng: np.random.Generator) -> dict:
    """A 6 mm grid around the region centres: mask, affine, each voxel's two nearest regions and gain."""
    vs, rad = TVB["voxel_mm"], TVB["mask_radius_mm"]
    lo = centres_ras.min(0) - rad
    shape = tuple(int(v) for v in np.ceil((centres_ras.max(0) + rad - lo) / vs) + 1)
    affine = np.diag([vs, vs, vs, 1.0])
    affine[:3, 3] = lo
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1).reshape(-1, 3)
    xyz = ijk * vs + lo
    d = np.linalg.norm(xyz[:, None, :] - centres_ras[None], axis=2)
    order = np.argsort(d, axis=1)
    inside = d[np.arange(len(d)), order[:, 0]] <= rad
    return dict(shape=shape, affine=affine, inside=inside.reshape(shape), first=order[inside, 0], second=order[inside, 1],
                gain=rng.lognormal(0.0, 0.3, int(inside.sum())))


def _smooth_noise(n: int, vmap: dict, rng: np.random.Generator) -> np.ndarray:
    """AR(1) (rho 0.3) noise, smoothed in space (Gaussian, 1 voxel), unit variance, at the mask's voxels (n, n_voxels)."""
    from scipy.ndimage import gaussian_filter

    vol = _ar1(n, int(np.prod(vmap["shape"])), 0.3, rng).reshape((n, *vmap["shape"]))
    vol = gaussian_filter(vol, sigma=(0, 1.0, 1.0, 1.0))
    out = vol.reshape(n, -1)[:, vmap["inside"].ravel()]
    return out / out.std(0)


def _simulate_subject(conn, gain: np.ndarray, n_vols: int, tr: float, pre: float, rng: np.random.Generator, seed_noise: int):
    """Region potentials at 250 Hz (n, R) from ``pre`` s before the first volume, and region BOLD at the volumes (n_vols, R)."""
    from tvb.simulator import coupling, integrators, models, monitors, noise, simulator

    R = conn.number_of_regions
    phi = (0.1 * 3.25 * (0.32 - 0.12) * 0.5) ** 2 / 2.0  # TVB's Jansen-Rit tutorial: input noise of the excitatory PSP
    sig = np.zeros(6)
    sig[4] = phi
    jr = models.JansenRit(mu=np.full(R, TVB["mu_mean"]), variables_of_interest=("y1", "y2"))
    integ = integrators.HeunStochastic(dt=TVB["dt_ms"], noise=noise.Additive(nsig=sig, noise_seed=seed_noise))
    a = TVB["coupling_a"] * rng.uniform(0.9, 1.1)
    sim = simulator.Simulator(model=jr, connectivity=conn, coupling=coupling.SigmoidalJansenRit(a=np.array([a])), integrator=integ,
                              monitors=(monitors.TemporalAverage(period=4.0), monitors.Bold(period=tr * 1000.0)),
                              simulation_length=TVB["chunk_s"] * 1000.0)
    sim.configure()
    total = pre + n_vols * tr + 5.0
    n_chunks = int(np.ceil(total / TVB["chunk_s"]))
    z = _ar1(n_chunks, R, np.exp(-TVB["chunk_s"] / TVB["mu_tau_s"]), rng, TVB["mu_global_share"])
    mu = np.clip(TVB["mu_mean"] + TVB["mu_sd"] * z, *TVB["mu_range"])
    eeg_t, eeg_x, bold_t, bold_x = [], [], [], []
    for c in range(n_chunks):
        sim.model.mu = mu[c]
        (t1, x1), (t2, x2) = sim.run()
        eeg_t.append(t1), eeg_x.append(x1[:, 0, :, 0] - x1[:, 1, :, 0])
        if t2 is not None and len(t2):
            bold_t.append(t2), bold_x.append(x2[:, 0, :, 0] - x2[:, 1, :, 0])
    t_eeg, v = np.concatenate(eeg_t) / 1000.0, np.concatenate(eeg_x)
    t_bold, b = np.concatenate(bold_t) / 1000.0, np.concatenate(bold_x)
    return t_eeg, v, t_bold, b, mu


def simulate_tvb_dataset(out: str | Path, *, n_subjects: int = 4, minutes: float = 6.0, seed: int = 0, tr: float = 2.0, overwrite: bool = False) -> Path:
    """Write a BIDS EEG-fMRI dataset (EDF + NIfTI) from TVB's Jansen-Rit network (module docstring)."""
    import shutil

    import mne
    import mne_bids
    import nibabel as nib
    from tvb.datatypes import connectivity

    out = Path(out).absolute()
    if out.exists():
        if not overwrite:
            raise FileExistsError(out)
        shutil.rmtree(out)
    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        conn = connectivity.Connectivity.from_file("connectivity_76.zip")
        conn.speed = np.array([TVB["speed_mm_ms"]])
        conn.configure()
    R = conn.number_of_regions
    gain, names = _region_gain(R)
    c = conn.centres
    centres_ras = np.stack([-c[:, 1], c[:, 0], c[:, 2]], 1)  # TVB: x anterior, y left, z up -> RAS
    vmap = _voxel_map(centres_ras, np.random.default_rng([seed, 1]))
    n_vols = int(round(minutes * 60.0 / tr))
    pre, post, sfreq = 10.0, 5.0, 250.0
    gt = tmp / "derivatives" / "groundtruth"
    gt.mkdir(parents=True)
    for s in range(n_subjects):
        sub = f"{s + 1:02d}"
        rng = np.random.default_rng([seed, 2, s])
        t_eeg, v, t_bold, b, mu = _simulate_subject(conn, gain, n_vols, tr, pre, rng, seed_noise=int(rng.integers(2**31 - 1)))
        # volumes: the first Bold sample after the haemodynamic transient (pre seconds) ends volume 0's acquisition
        first = int(np.searchsorted(t_bold, pre + tr - 1e-9))
        b = b[first : first + n_vols]
        if len(b) < n_vols:
            raise RuntimeError(f"TVB gave {len(b)} BOLD samples after the transient, expected {n_vols}")
        onsets = t_bold[first : first + n_vols] - tr  # acquisition start of each volume, simulation time (s)
        sig = (b - b.mean(0)) / np.median(b.std(0))  # regions keep their relative amplitudes
        mix = 0.85 * sig[:, vmap["first"]] + 0.15 * sig[:, vmap["second"]]
        mix = vmap["gain"] * mix / mix.std(0).mean()
        share = TVB["signal_share"]
        noise = _smooth_noise(n_vols, vmap, rng) * np.sqrt((1 - share) / share)
        tt = np.linspace(-1, 1, n_vols)[:, None]
        drift = rng.normal(0, 0.5, len(mix.T)) * tt + rng.normal(0, 0.5, len(mix.T)) * np.cos(np.pi * (tt + 1) / 2)
        base = rng.uniform(800, 1200, len(mix.T))
        data = base * (1 + 0.01 * (mix + noise + drift))
        vol = np.zeros((*vmap["shape"], n_vols), dtype=np.float32)
        vol[vmap["inside"]] = data.T.astype(np.float32)
        func = tmp / f"sub-{sub}" / "func"
        func.mkdir(parents=True)
        img = nib.Nifti1Image(vol, vmap["affine"])
        img.header.set_xyzt_units("mm", "sec")
        img.header.set_zooms((TVB["voxel_mm"],) * 3 + (tr,))
        img.set_sform(vmap["affine"], code=1)
        img.set_qform(vmap["affine"], code=1)
        stem = f"sub-{sub}_task-rest"
        nib.save(img, func / f"{stem}_bold.nii.gz")
        (func / f"{stem}_bold.json").write_text(json.dumps({"RepetitionTime": tr, "TaskName": "rest"}))
        # EEG from (onset of volume 0 - 5 s) to (end of the last volume + post)
        t0, t1 = onsets[0] - 5.0, onsets[-1] + tr + post
        keep = (t_eeg >= t0) & (t_eeg < t1)
        x = v[keep] - v[keep].mean(0)
        eeg = x @ (gain * rng.uniform(0.8, 1.2, (len(gain), 1))).T
        eeg *= TVB["eeg_uv"] / np.median(eeg.std(0))
        n = len(eeg)
        eeg += TVB["sensor_noise"] * TVB["eeg_uv"] * (0.5 * rng.standard_normal(eeg.shape) + 0.85 * _pink(n, eeg.shape[1], rng))
        info = mne.create_info(names, sfreq, "eeg")
        raw = mne.io.RawArray(eeg.T * 1e-6, info, verbose=False)
        raw.set_annotations(mne.Annotations(onsets - t0, [0.0] * n_vols, ["R128"] * n_vols))
        raw.info["line_freq"] = 50.0
        bp = mne_bids.BIDSPath(subject=sub, task="rest", datatype="eeg", root=tmp)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mne_bids.write_raw_bids(raw, bp, format="EDF", allow_preload=True, verbose=False, overwrite=True)
        np.savez_compressed(gt / f"sub-{sub}_mu.npz", mu=mu.astype(np.float32), chunk_s=TVB["chunk_s"])
    (gt / "simulation.json").write_text(json.dumps({"generator": "TVB JansenRit connectivity_76 + Bold", "settings": {"tvb": {**TVB, "mu_range": list(TVB["mu_range"])}},
                                                    "n_subjects": n_subjects, "minutes": minutes, "seed": seed, "tr": tr}, indent=1))
    os.replace(tmp, out)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--subjects", type=int, default=4)
    ap.add_argument("--minutes", type=float, default=6.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(json.dumps({"root": str(simulate_tvb_dataset(args.out, n_subjects=args.subjects, minutes=args.minutes, seed=args.seed))}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
