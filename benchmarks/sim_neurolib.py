"""A generator whose dynamics nobody here wrote: Wilson-Cowan masses and BOLD from neurolib.

A probe of the robustness matrix (``bench_robustness.py --settings neurolib_wc``), not part of the
package: it needs the optional `neurolib <https://github.com/neurolib-dev/neurolib>`_ library
(Cakan et al. 2023, Cogn. Comput. 15:1132-1152) and its numba, xarray and h5py dependencies
(``pip install neurolib numba xarray h5py dill "dpath<2.2"``; neurolib 0.6.2 imports ``dpath.util``,
which dpath 2.2 removed).

What comes from neurolib, unchanged: the neural dynamics (``neurolib.models.wc.WCModel``: one
excitatory and one inhibitory Wilson-Cowan population per region, delayed coupling through the
connectome with ``K_gl``, Ornstein-Uhlenbeck input noise, Euler integration at ``dt`` = 0.2 ms) and the
haemodynamics (``neurolib.models.bold.timeIntegration.simulateBOLD``: its Balloon-Windkessel model and
parameters, started at rest and driven by the excitatory activity relative to its mean). What comes from the
package (:mod:`eeg2fmri.simulate.neural_mass`): the anatomy, connectome, lead field, voxel maps, noise and
the BIDS writers -- the measurement, not the generator. The only choices made here: a slow
Ornstein-Uhlenbeck modulation of each region's external input ``exc_ext`` (knots every 0.5 s, linearly
interpolated; mean ``exc_mean``, std ``exc_sd``, time constant ``input_slow_tau``, a share common to all regions),
under which the isolated Wilson-Cowan oscillator moves from ~10 Hz (exc_ext 0.5) to ~50 Hz (0.7) and its
mean rate rises; and one global gain that scales the BOLD input so that the median region's BOLD
fluctuates by ``bold_psc`` percent. Nothing prescribes a band or a coupling sign.

    python benchmarks/sim_neurolib.py OUT [--subjects 4] [--minutes 6] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

#: signalV (m/s, with distances in mm: delays in ms) is neurolib's default conduction velocity.
WC = dict(exc_mean=0.6, exc_sd=0.06, sigma_ou=0.02, K_gl=1.0, signalV=20.0, dt_ms=0.2, chunk_s=0.5, bold_psc=1.0)


def _slow_ext(n: int, R: int, tau_steps: float, share: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance AR(1) series (n, R) with time constant ``tau_steps``, a share of the variance common to all regions."""
    a = np.exp(-1.0 / tau_steps)
    innov = np.sqrt(share) * rng.standard_normal((n, 1)) + np.sqrt(1.0 - share) * rng.standard_normal((n, R))
    x = np.empty((n, R))
    x[0] = innov[0]
    for t in range(1, n):
        x[t] = a * x[t - 1] + np.sqrt(1.0 - a * a) * innov[t]
    return x


def simulate_neurolib_dataset(out: str | Path, *, n_subjects: int = 4, minutes: float = 6.0, seed: int = 0, n_channels: int = 32,
                              sfreq: float = 250.0, voxel_size: float = 6.0, tr: float = 2.0, overwrite: bool = False) -> Path:
    """Write a BIDS EEG-fMRI dataset from neurolib's Wilson-Cowan network and BOLD model (module docstring)."""
    import mne
    from neurolib.models.bold.timeIntegration import simulateBOLD
    from neurolib.models.wc import WCModel

    from eeg2fmri.simulate import neural_mass as nm
    from eeg2fmri.simulate.anatomy import make_anatomy
    from eeg2fmri.simulate.signals import pink_noise
    from eeg2fmri.simulate.simulator import (
        SimulationConfig,
        _channel_names,
        _write_bold,
        _write_eeg,
    )
    from eeg2fmri.utils.atomic import atomic_dir

    o = nm._check_options({}, n_subjects=n_subjects, minutes=minutes, seed=seed, n_channels=n_channels, sfreq=sfreq,
                          voxel_size=voxel_size, tr=tr, model="jansen_rit")
    names = _channel_names(o["montage"], n_channels)
    info = mne.create_info(names, sfreq, "eeg")
    info.set_montage(o["montage"], verbose=False)
    wcfg = SimulationConfig(sfreq=sfreq, n_channels=n_channels, montage=o["montage"], tr=tr, seed=seed)
    n_vols = int(round(minutes * 60.0 / tr))
    scan_len = n_vols * tr
    pre = nm._PRE
    dt = WC["dt_ms"] / 1000.0
    dec = int(round(1.0 / (sfreq * dt)))  # integration steps per EEG sample
    n_chunks = int(np.ceil((pre + scan_len + 5.0) / WC["chunk_s"]))  # knots of the slow input, every chunk_s seconds
    anat = make_anatomy(voxel_size, o["n_regions"], seed)
    R = anat.n_regions
    W, dist = nm._connectome(anat.centroids, o, np.random.default_rng([seed, 100]))
    k_bold = int(round(nm._BALLOON_DT / dt))
    with atomic_dir(out, overwrite=overwrite) as root:
        scratch = root / ".scratch"
        scratch.mkdir()
        gt_root = root / "derivatives" / "groundtruth"
        gt_root.mkdir(parents=True)
        for s in range(n_subjects):
            sub = f"{s + 1:02d}"
            sp = nm._subject_parameters(anat, info, W, dist, o, seed, s)
            rng_in = np.random.default_rng([seed, 202, s])
            ext = WC["exc_mean"] + WC["exc_sd"] * _slow_ext(n_chunks, R, o["input_slow_tau"] / WC["chunk_s"], o["input_global_share"], rng_in)
            m = WCModel(Cmat=sp["connectome"], Dmat=dist)
            m.params.dt, m.params.K_gl, m.params.sigma_ou, m.params.signalV = WC["dt_ms"], WC["K_gl"], WC["sigma_ou"], WC["signalV"]
            m.params.duration = n_chunks * WC["chunk_s"] * 1000.0
            m.params.seed = int(rng_in.integers(2**31 - 1))
            # one run for the whole recording (neurolib's continue_run does not continue the trajectory: chunks of a
            # noise-free run differ from one long run by 10x the signal's std, a periodic disturbance of the EEG);
            # the slow input interpolated linearly on the integration grid; neurolib aligns an input array to the
            # last time step (it cuts from the end), so the grid runs backwards from the end
            n_fine = int(round(m.params.duration / WC["dt_ms"])) + 2000
            t_fine = WC["chunk_s"] * n_chunks - (n_fine - 1 - np.arange(n_fine)) * dt
            t_knots = (np.arange(n_chunks) + 0.5) * WC["chunk_s"]
            m.params.exc_ext = np.stack([np.interp(t_fine, t_knots, ext[:, r]) for r in range(R)])
            m.run()
            x = m.exc.T  # (steps, R), the last step at the end of the recording
            n_keep = (len(x) // (dec * k_bold)) * dec * k_bold
            x = x[len(x) - n_keep :]
            del m
            shift = WC["chunk_s"] * n_chunks - n_keep * dt  # seconds not simulated at the start (a few steps)
            src = nm._block_mean(x, dec)  # (samples at sfreq, R), the first at shift - pre seconds from the first volume
            z = nm._block_mean(x, k_bold)  # (samples at 50 Hz, R)
            u = z / z[int(5.0 / nm._BALLOON_DT):].mean(0, keepdims=True) - 1.0  # rate relative to its mean
            # from the resting state (no vasodilatory signal, unit flow, volume and deoxyhaemoglobin)
            bold, *_ = simulateBOLD(u.T.copy(), nm._BALLOON_DT, 10000 * np.ones(R), X=np.zeros(R), F=np.ones(R), Q=np.ones(R), V=np.ones(R))
            region_bold = bold.T
            t_bold = shift + (np.arange(len(region_bold)) + 1) * nm._BALLOON_DT - pre
            keep = t_bold > -pre + 10.0  # after the haemodynamic transient
            fluct = region_bold[keep] - region_bold[keep].mean(0)
            region_bold = region_bold * (WC["bold_psc"] / 100.0 / max(np.median(fluct.std(0)), 1e-12))
            rng = np.random.default_rng([seed, 203, s])
            vols = nm._bold_volumes(region_bold, t_bold, anat, sp, o, n_vols, tr, rng)
            i0 = int(round((pre - sp["eeg_pre"] - shift) * sfreq))
            n_eeg = int(round((sp["eeg_pre"] + scan_len + sp["eeg_post"]) * sfreq))
            seg = src[i0 : i0 + n_eeg] - src[i0 : i0 + n_eeg].mean(0)
            eeg = seg @ sp["leadfield"].T
            eeg *= o["eeg_amplitude"] / np.median(eeg.std(axis=0))
            eeg += o["sensor_noise"] * (0.7 * rng.standard_normal(eeg.shape) + 0.7 * pink_noise(n_eeg, eeg.shape[1], sfreq, rng))
            onsets = np.arange(n_vols) * tr - (shift + i0 / sfreq - pre)
            _write_eeg(root, scratch, sub, 1, wcfg, info, eeg.T, {}, onsets, "rest")
            _write_bold(root, sub, 1, "rest", anat, vols["bold"], tr, [])
            gdir = gt_root / f"sub-{sub}"
            gdir.mkdir()
            clean = vols["clean"].astype(np.float32)
            np.savez_compressed(gdir / f"sub-{sub}_task-rest_run-1_groundtruth.npz", bold_clean=clean, bold_visible=clean,
                                noise=vols["noise"].astype(np.float32), drift=vols["drift"].astype(np.float32),
                                exc_ext=ext.astype(np.float32), labels=anat.labels.astype(np.int32))
        shutil.rmtree(scratch)
        nm._write_common(root, gt_root, anat, W, dist, dist / 1000.0 / WC["signalV"], o, names, dict(
            n_subjects=n_subjects, minutes=minutes, seed=seed, n_channels=n_channels, sfreq=sfreq, voxel_size=voxel_size,
            tr=tr, model="neurolib WCModel + simulateBOLD", neurolib=WC))
    return Path(out).absolute()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--subjects", type=int, default=4)
    ap.add_argument("--minutes", type=float, default=6.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    root = simulate_neurolib_dataset(args.out, n_subjects=args.subjects, minutes=args.minutes, seed=args.seed)
    print(json.dumps({"root": str(root)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
