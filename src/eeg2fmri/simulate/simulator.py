"""Ground-truth simultaneous EEG-fMRI simulator writing a BIDS dataset.

Generative model (per subject and run; every parameter is saved):

1. **Anatomy.** A BOLD grid over nilearn's MNI152 templates at ``voxel_size``
   mm; the brain mask is grey + white matter > 0.5; ``n_regions`` grey-matter
   parcels (seeded k-means, the same for all subjects).
2. **Latent neural drive** per region at 10 Hz: slow (0.01-0.1 Hz)
   fluctuations with network structure (``n_networks`` shared time courses,
   each region loading mainly on one network) plus region-specific parts, in
   two independent components: one *visible* to EEG (it modulates oscillations)
   and one *invisible* (deep or non-oscillatory activity: BOLD only). The
   visible share falls with region depth. Optional task blocks add a boxcar to
   a task network.
3. **EEG.** Each region emits oscillations in ``bands`` whose amplitude
   envelopes follow ``exp(coupling[band] * gain * visible_drive)`` (alpha and
   beta power fall, gamma power rises with activity) plus 1/f background.
   Dipoles at the region centres (orientations per subject) are projected to
   a standard montage with a real MNE forward model (three-shell sphere),
   plus sensor noise and optional artifacts (blinks, ECG channel, line noise).
   A scanner marker (``R128``) is written at each volume onset; the EEG starts
   a few seconds before the first volume.
4. **BOLD.** The total drive is convolved with a double-gamma HRF whose delay
   and width vary per subject and region (or passed through the balloon
   model), mixed with a voxel-specific local component, scaled per voxel by
   grey-matter content, turned into a percent signal change on a baseline
   intensity, plus thermal noise, AR(1) physiological noise (partly global)
   and slow drift.

Ground truth (``derivatives/groundtruth``) holds the drives, envelopes, lead
field, noise-free BOLD (total and EEG-visible part), noise, and parameters,
so that the noise ceiling (``corr(clean, measured)``) and the oracle ceiling
(``corr(visible part, measured)``) can be computed on any time span.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eeg2fmri.simulate.anatomy import Anatomy, make_anatomy, write_anatomy_maps
from eeg2fmri.simulate.hrf import balloon_bold, double_gamma_hrf
from eeg2fmri.simulate.signals import (
    band_noise,
    blink_train,
    cardiac_train,
    pink_noise,
    slow_fluctuations,
)
from eeg2fmri.utils.atomic import atomic_dir
from eeg2fmri.utils.jsonable import to_jsonable
from eeg2fmri.utils.logs import logger, progress
from eeg2fmri.utils.stats import pearson_columns
from eeg2fmri.utils.validation import (
    Eeg2fmriInputError,
    check_choice,
    check_positive,
    check_positive_int,
)

__all__ = ["SimulationConfig", "simulate_dataset", "load_groundtruth", "ceilings", "CHANNEL_ORDER"]

#: Preferred 10-10 channel order (the BrainCap-MR order of public EEG-fMRI
#: data); the first ``n_channels`` present in the montage are used.
CHANNEL_ORDER = (
    "Fp1 Fp2 F3 F4 C3 C4 P3 P4 O1 O2 F7 F8 T7 T8 P7 P8 Fz Cz Pz Oz FC1 FC2 CP1 CP2 FC5 FC6 CP5 CP6 "
    "TP9 TP10 POz F1 F2 C1 C2 P1 P2 AF3 AF4 FC3 FC4 CP3 CP4 PO3 PO4 F5 F6 C5 C6 P5 P6 AF7 AF8 FT7 FT8 "
    "TP7 TP8 PO7 PO8 FT9 FT10 Fpz CPz AFz FCz"
).split()

NEURAL_RATE = 10.0  # Hz, time base of drives and haemodynamics
_PRE = 40.0  # s of neural history simulated before the first volume


@dataclass
class SimulationConfig:
    """Every setting of the simulator (defaults are documented in the README).

    Parameters
    ----------
    n_subjects : int
        Number of subjects.
    minutes : float
        Scan length of each run in minutes.
    seed : int
        Master seed; the whole dataset is reproducible from it.
    n_runs : int
        Runs per subject.
    tr : float
        Repetition time in seconds.
    sfreq : float
        EEG sampling frequency in Hz.
    n_channels : int
        EEG channels (the first ``n_channels`` of :data:`CHANNEL_ORDER` in the montage).
    montage : str
        An MNE standard montage name (e.g. ``"easycap-M1"``, ``"colin27_1005"``).
    voxel_size : float
        Isotropic BOLD voxel size in mm.
    n_regions, n_networks : int
        Number of source regions and of shared network time courses.
    bands : dict
        Band name -> (low, high) Hz.
    coupling : dict
        Band name -> coupling of the log-envelope to the visible drive (sign:
        power rises (+) or falls (-) with activity).
    band_amplitude : dict
        Band name -> relative source amplitude of the band.
    network_share : float
        Fraction of drive variance shared through networks (rest is regional).
    visible_max, visible_min : float
        Share of the drive variance visible to EEG at the cortex surface and in
        the deepest region (linear in depth).
    local_share : float
        Share of voxel BOLD variance from a voxel-specific (EEG-invisible) component.
    psc : float
        BOLD signal change (percent of baseline) of one standard deviation of drive.
    thermal_noise, physio_noise : float
        Noise standard deviations in percent of baseline.
    physio_ar : float
        AR(1) coefficient of physiological noise at a 2 s TR (scaled for other TRs).
    physio_global : float
        Share of physiological noise common to all voxels.
    drift : float
        Drift amplitude in percent of baseline.
    hrf_delay_sd_subject, hrf_delay_sd_region, hrf_width_sd : float
        Variation of the HRF peak delay (s) across subjects and regions, and
        relative variation of its width.
    coupling_sd : float
        Log-normal spread of coupling gains across subjects and regions.
    hrf_peak_range : (float, float) | None
        When given, every subject x region HRF peaks at a delay drawn uniformly
        from this range in seconds (e.g. ``(4, 9)``: far from canonical),
        replacing ``hrf_delay_sd_subject``/``hrf_delay_sd_region``.
    hrf_undershoot_range : (float, float) | None
        When given, every subject x region HRF undershoot ratio is drawn
        uniformly from this range (canonical: 1/6).
    bold_nonlinearity : {"linear", "saturating"}
        How the neural drive enters the haemodynamics: as is, or through a
        saturating ``tanh(1.5 x) / 1.5`` (the EEG envelopes stay log-linear in
        the drive, so the EEG-BOLD relation becomes non-linear).
    subject_variability : float
        0: every subject shares the group parcellation and network loadings.
        > 0: every subject gets its own parcellation (k-means of grey matter
        with a subject seed) and network loadings perturbed by this standard
        deviation, so that what is learnt from other subjects transfers less
        (leave-one-subject-out becomes harder than within-subject).
    driven_regions : float
        Fraction of the regions (at least one) whose BOLD carries their neural drive, drawn once per
        dataset; the other regions' voxels hold only their voxel-specific component and noise (their
        activity still reaches the EEG). 1.0 (default): every region; e.g. 0.15 simulates a focal
        EEG-BOLD relation, where the mean voxel r over the mask is mostly noise voxels' r. Recorded in
        the ground truth (``simulation.json`` ``group.driven``; per run ``driven`` per region).
    hemodynamics : {"gamma", "balloon"}
        Linear double-gamma convolution or the nonlinear balloon model.
    task : {None, "blocks"}
        Optional block design (on/off ``task_block`` seconds) added to a task network.
    task_block : float
        Block length in seconds.
    task_amplitude : float
        Task effect in drive standard deviations.
    artifacts : bool
        Add blinks (EOG and frontal leak), an ECG channel and line noise.
    line_freq : float
        Power-line frequency in Hz.
    sensor_noise : float
        Sensor noise in microvolts (white + 1/f).
    marker : str
        Scanner volume marker, written as a BrainVision "Response" marker (must be ``R<number>``).
    eeg_format : {"BrainVision", "EDF", "EEGLAB"}
        File format of the EEG.
    scanner_artifacts : list of {"gradient", "bcg"} | None
        MRI scanner artifacts in the EEG (:mod:`eeg2fmri.simulate.artifacts`): gradient
        bursts locked to every volume and slice (slice markers ``R2`` are written next to the
        volume markers) and/or pulse (BCG) artifacts locked to the R peaks of a new ECG
        channel. Drawn from their own random stream: the same seed without them gives the
        same, artifact-free dataset.
    n_slices : int
        Slice excitations per volume for the gradient artifact.
    """

    n_subjects: int = 4
    minutes: float = 6.0
    seed: int = 0
    n_runs: int = 1
    tr: float = 2.0
    sfreq: float = 250.0
    n_channels: int = 32
    montage: str = "easycap-M1"
    voxel_size: float = 6.0
    n_regions: int = 24
    n_networks: int = 5
    bands: dict = field(default_factory=lambda: {"theta": (4.0, 7.0), "alpha": (8.0, 12.0), "beta": (15.0, 25.0), "gamma": (30.0, 45.0)})
    coupling: dict = field(default_factory=lambda: {"theta": 0.2, "alpha": -0.6, "beta": -0.4, "gamma": 0.5})
    band_amplitude: dict = field(default_factory=lambda: {"theta": 0.6, "alpha": 1.0, "beta": 0.5, "gamma": 0.25})
    network_share: float = 0.7
    visible_max: float = 0.8
    visible_min: float = 0.2
    local_share: float = 0.15
    psc: float = 1.0
    thermal_noise: float = 0.8
    physio_noise: float = 0.8
    physio_ar: float = 0.5
    physio_global: float = 0.3
    drift: float = 1.0
    hrf_delay_sd_subject: float = 0.5
    hrf_delay_sd_region: float = 0.3
    hrf_width_sd: float = 0.1
    coupling_sd: float = 0.25
    hrf_peak_range: tuple | None = None
    hrf_undershoot_range: tuple | None = None
    bold_nonlinearity: str = "linear"
    subject_variability: float = 0.0
    driven_regions: float = 1.0
    hemodynamics: str = "gamma"
    task: str | None = None
    task_block: float = 20.0
    task_amplitude: float = 1.0
    artifacts: bool = True
    line_freq: float = 50.0
    sensor_noise: float = 2.0
    marker: str = "R128"
    eeg_format: str = "BrainVision"
    scanner_artifacts: list | None = None
    n_slices: int = 20

    def validate(self) -> SimulationConfig:
        """Check every setting; raise :class:`Eeg2fmriInputError` with the fix."""
        import mne

        check_positive_int(self.n_subjects, "n_subjects", fix="pass --subjects 1 or more")
        check_positive(self.minutes, "minutes", fix="pass --minutes greater than 0 (e.g. 5)")
        check_positive_int(self.n_runs, "n_runs", fix="pass --runs 1 or more")
        check_positive(self.tr, "tr")
        check_positive(self.sfreq, "sfreq")
        check_positive(self.voxel_size, "voxel_size")
        check_positive_int(self.n_channels, "n_channels")
        check_positive_int(self.n_regions, "n_regions")
        check_positive_int(self.n_networks, "n_networks")
        if not isinstance(self.seed, (int, np.integer)) or isinstance(self.seed, bool) or self.seed < 0:
            raise Eeg2fmriInputError(f"expected seed to be a non-negative integer, got {self.seed!r}.")
        check_choice(self.montage, "montage", mne.channels.get_builtin_montages())
        check_choice(self.hemodynamics, "hemodynamics", ("gamma", "balloon"))
        check_choice(self.bold_nonlinearity, "bold_nonlinearity", ("linear", "saturating"))
        for name, lo_ok, hi_ok in (("hrf_peak_range", 2.0, 12.0), ("hrf_undershoot_range", 0.0, 1.0)):
            v = getattr(self, name)
            if v is None:
                continue
            if not (isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v) and lo_ok <= v[0] <= v[1] <= hi_ok):
                raise Eeg2fmriInputError(f"expected {name} as (low, high) with {lo_ok} <= low <= high <= {hi_ok}, got {v!r}; fix it or leave it null.")
        if not (isinstance(self.subject_variability, (int, float)) and 0 <= self.subject_variability <= 5):
            raise Eeg2fmriInputError(f"expected subject_variability in [0, 5], got {self.subject_variability!r}.")
        if isinstance(self.driven_regions, bool) or not (isinstance(self.driven_regions, (int, float)) and 0 < self.driven_regions <= 1):
            raise Eeg2fmriInputError(f"expected driven_regions as a fraction in (0, 1], got {self.driven_regions!r}; e.g. 0.15 drives the BOLD "
                                     "of 15 % of the regions, 1.0 of all.")
        check_choice(self.task, "task", (None, "blocks"))
        check_choice(self.eeg_format, "eeg_format", ("BrainVision", "EDF", "EEGLAB"))
        if self.scanner_artifacts is not None:
            from eeg2fmri.simulate.artifacts import _check_kinds

            _check_kinds(self.scanner_artifacts)
            check_positive_int(self.n_slices, "n_slices")
        if self.minutes * 60 < 10 * self.tr:
            raise Eeg2fmriInputError(
                f"expected at least 10 volumes per run, got minutes={self.minutes} with tr={self.tr} "
                f"({int(self.minutes * 60 / self.tr)} volumes); increase --minutes."
            )
        nyq = self.sfreq / 2
        for name, (lo, hi) in self.bands.items():
            if not 0 < lo < hi < nyq:
                raise Eeg2fmriInputError(f"expected band {name!r} within (0, {nyq}) Hz with low < high, got {(lo, hi)}; fix bands or raise sfreq.")
            for d, what in ((self.coupling, "coupling"), (self.band_amplitude, "band_amplitude")):
                if name not in d:
                    raise Eeg2fmriInputError(f"band {name!r} has no {what} value; give one for every band.")
        if not (self.marker.startswith("R") and self.marker[1:].isdigit()):
            raise Eeg2fmriInputError(f"expected marker like 'R128' (a BrainVision response code), got {self.marker!r}.")
        for name in ("visible_max", "visible_min", "local_share", "network_share", "physio_global"):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise Eeg2fmriInputError(f"expected {name} in [0, 1], got {v!r}.")
        return self

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bands"] = {k: list(v) for k, v in self.bands.items()}
        return d


# ---------------------------------------------------------------------------------------
# EEG forward model


def _channel_names(montage_name: str, n_channels: int) -> list[str]:
    import mne

    mont = mne.channels.make_standard_montage(montage_name)
    available = [c for c in CHANNEL_ORDER if c in mont.ch_names]
    rest = [c for c in mont.ch_names if c not in available and not c.upper().startswith(("LPA", "RPA", "NAS", "IZ"))]
    names = (available + rest)[:n_channels]
    if len(names) < n_channels:
        raise Eeg2fmriInputError(
            f"montage {montage_name!r} has {len(names)} usable channels, expected at least n_channels={n_channels}; "
            "lower --channels or choose a larger montage (e.g. easycap-M1, biosemi64)."
        )
    return names


def _leadfield(info, centroids_mm: np.ndarray, brain_coords_mm: np.ndarray, orient: np.ndarray, shift_m: np.ndarray, scale: float) -> np.ndarray:
    """Fixed-orientation EEG lead field (n_chans, n_regions) for dipoles at the region centres."""
    import mne

    sphere = mne.make_sphere_model("auto", "auto", info, verbose=False)
    inner = min(layer["rad"] for layer in sphere["layers"])
    centre = brain_coords_mm.mean(axis=0)
    extent = np.percentile(np.linalg.norm(brain_coords_mm - centre, axis=1), 100)
    pos = (centroids_mm - centre) / extent * (0.8 * inner) * scale + sphere["r0"] + shift_m
    src = mne.setup_volume_source_space(pos=dict(rr=pos, nn=orient), sphere=sphere, mindist=0.0, verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fwd = mne.make_forward_solution(info, trans=None, src=src, bem=sphere, eeg=True, meg=False, verbose=False)
    if fwd["nsource"] != len(pos):
        raise RuntimeError("internal error: some simulated dipoles fell outside the head model")
    gain = fwd["sol"]["data"].reshape(len(info["ch_names"]), -1, 3)
    return np.einsum("crk,rk->cr", gain, orient)


# ---------------------------------------------------------------------------------------
# one subject/run


def _group_parameters(cfg: SimulationConfig, anat: Anatomy) -> dict[str, Any]:
    rng = np.random.default_rng([cfg.seed, 0])
    R, K = anat.n_regions, cfg.n_networks
    primary = rng.integers(0, K, R)
    loadings = 0.15 * rng.standard_normal((R, K))
    loadings[np.arange(R), primary] = rng.uniform(0.7, 1.0, R)
    depth = anat.depth()
    visible = cfg.visible_max - (cfg.visible_max - cfg.visible_min) * depth
    orient = rng.standard_normal((R, 3))
    centre = anat.coords.mean(0)
    radial = (anat.centroids - centre) / np.linalg.norm(anat.centroids - centre, axis=1, keepdims=True).clip(1e-6)
    orient = radial + 0.6 * orient
    orient /= np.linalg.norm(orient, axis=1, keepdims=True)
    band_amp = {b: cfg.band_amplitude[b] * np.exp(0.3 * rng.standard_normal(R)) for b in cfg.bands}
    group = dict(primary_network=primary, loadings=loadings, depth=depth, visible_share=visible, orientation=orient, band_amplitude_region=band_amp, task_network=int(rng.integers(0, K)))
    driven = np.ones(R, dtype=bool)
    if cfg.driven_regions < 1.0:  # drawn last, from its own stream: the default's draws are unchanged
        pick = np.random.default_rng([cfg.seed, 0, 1]).permutation(R)[: max(1, int(round(cfg.driven_regions * R)))]
        driven[:] = False
        driven[pick] = True
    group["driven"] = driven
    return group


def _network_drive(n: int, cfg: SimulationConfig, loadings: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    R, K = loadings.shape
    net = slow_fluctuations(n, K, NEURAL_RATE, rng) @ loadings.T
    net /= net.std(axis=0, keepdims=True)
    own = slow_fluctuations(n, R, NEURAL_RATE, rng)
    d = np.sqrt(cfg.network_share) * net + np.sqrt(1 - cfg.network_share) * own
    return d / d.std(axis=0, keepdims=True)


def _simulate_run(cfg: SimulationConfig, anat: Anatomy, group: dict, info, subj_params: dict, run_seed, rng_run_params: np.random.Generator) -> dict[str, Any]:
    rng = np.random.default_rng(run_seed)
    R = anat.n_regions
    n_vols = int(round(cfg.minutes * 60.0 / cfg.tr))
    scan_len = n_vols * cfg.tr
    eeg_pre = float(rng.uniform(3.0, 8.0))
    eeg_post = float(rng.uniform(2.0, 4.0))
    # neural time base: [-_PRE, scan_len + eeg_post]
    n_neural = int(np.ceil((_PRE + scan_len + eeg_post + 1.0) * NEURAL_RATE))
    t_neural = np.arange(n_neural) / NEURAL_RATE - _PRE
    drive_vis = _network_drive(n_neural, cfg, group["loadings"], rng)
    drive_inv = _network_drive(n_neural, cfg, group["loadings"], rng)
    task_box = np.zeros(n_neural)
    events = []
    if cfg.task == "blocks":
        on = (np.floor(np.maximum(t_neural, 0) / cfg.task_block) % 2 == 1) & (t_neural >= 0) & (t_neural < scan_len)
        task_box = on.astype(float)
        starts = np.arange(cfg.task_block, scan_len, 2 * cfg.task_block)
        events = [(float(s), float(min(cfg.task_block, scan_len - s)), "task") for s in starts]
        in_net = group["primary_network"] == group["task_network"]
        drive_vis[:, in_net] += cfg.task_amplitude * task_box[:, None]
        drive_inv[:, in_net] += 0.5 * cfg.task_amplitude * task_box[:, None]
    vis = group["visible_share"]
    drive_total = np.sqrt(vis) * drive_vis + np.sqrt(1 - vis) * drive_inv
    if cfg.bold_nonlinearity == "saturating":
        def hemo_in(x):
            return np.tanh(1.5 * x) / 1.5
    else:
        def hemo_in(x):
            return x

    # ---- EEG
    sf = cfg.sfreq
    n_eeg = int(round((eeg_pre + scan_len + eeg_post) * sf))
    t_eeg = np.arange(n_eeg) / sf - eeg_pre
    vis_eeg = np.empty((n_eeg, R))
    for r in range(R):
        vis_eeg[:, r] = np.interp(t_eeg, t_neural, drive_vis[:, r])
    sources = np.zeros((n_eeg, R))
    envelopes = np.empty((n_neural, R, len(cfg.bands)), dtype=np.float32)
    for b, (name, band) in enumerate(cfg.bands.items()):
        k = cfg.coupling[name] * subj_params["coupling_gain"][name]
        envelopes[:, :, b] = np.exp(k * drive_vis) * group["band_amplitude_region"][name]
        env = np.exp(k * vis_eeg) * group["band_amplitude_region"][name]
        sources += env * band_noise(n_eeg, R, sf, band, rng)
    sources += 0.8 * pink_noise(n_eeg, R, sf, rng)
    lf = subj_params["leadfield"]
    eeg = sources @ lf.T
    eeg *= 15.0 / np.median(eeg.std(axis=0))  # median channel ~15 uV
    eeg += cfg.sensor_noise * (0.7 * rng.standard_normal(eeg.shape) + 0.7 * pink_noise(n_eeg, eeg.shape[1], sf, rng))
    extra = {}
    if cfg.artifacts:
        blinks = blink_train(n_eeg, sf, rng)
        frontal = np.array([1.0 if n.startswith(("Fp", "AF")) else 0.3 if n.startswith("F") and not n.startswith("FT") else 0.05 for n in info["ch_names"]])
        eeg += 80.0 * blinks[:, None] * frontal[None, :]
        eeg += 1.5 * np.sin(2 * np.pi * cfg.line_freq * t_eeg + rng.uniform(0, 2 * np.pi))[:, None]
        ecg, _ = cardiac_train(n_eeg, sf, rng)
        extra["ECG"] = 800.0 * ecg + 10.0 * rng.standard_normal(n_eeg)
        extra["EOG"] = 200.0 * blinks + 5.0 * rng.standard_normal(n_eeg)
    onsets_eeg = eeg_pre + np.arange(n_vols) * cfg.tr
    markers_eeg, slices_eeg = onsets_eeg, None
    if cfg.scanner_artifacts:
        from eeg2fmri.simulate.artifacts import scanner_artifacts

        sa = scanner_artifacts(n_eeg, sf, eeg.shape[1], onsets_eeg, cfg.tr, np.random.default_rng([*run_seed, 7]), kinds=cfg.scanner_artifacts,
                               n_slices=cfg.n_slices)
        eeg += sa["eeg"].T
        extra["ECG"] = sa["ecg"] if sa["ecg"] is not None else extra.get("ECG", np.zeros(n_eeg)) + sa["ecg_gradient"]
        if "gradient" in cfg.scanner_artifacts:
            markers_eeg, slices_eeg = sa["volume_onsets"], sa["slice_onsets"]

    # ---- BOLD (region level at NEURAL_RATE)
    hp = subj_params["hrf"]
    if cfg.hemodynamics == "gamma":
        def conv(x):
            out = np.empty_like(x)
            for r in range(R):
                h = double_gamma_hrf(1.0 / NEURAL_RATE, peak_delay=hp["delay"][r], width=hp["width"][r], undershoot_ratio=hp["undershoot"][r])
                out[:, r] = np.convolve(x[:, r], h)[: len(x)]
            return out
        region_total = conv(hemo_in(drive_total))
        region_vis = conv(hemo_in(np.sqrt(vis) * drive_vis))
    else:
        u_tot = np.log1p(np.exp(hemo_in(drive_total)))  # softplus keeps the flow input positive
        region_total = balloon_bold(u_tot, 1.0 / NEURAL_RATE)
        # the visible part: response to the visible drive with the invisible part at its mean
        u_vis = np.log1p(np.exp(hemo_in(np.sqrt(vis) * drive_vis)))
        region_vis = balloon_bold(u_vis, 1.0 / NEURAL_RATE)
    acq = np.arange(n_vols) * cfg.tr + cfg.tr / 2.0  # mid-volume acquisition times
    idx = np.clip(np.round((acq + _PRE) * NEURAL_RATE).astype(int), 0, n_neural - 1)
    reg_tot = region_total[idx]
    reg_vis = region_vis[idx]
    scale = reg_tot[: max(n_vols, 2)].std(axis=0, keepdims=True)
    scale[scale == 0] = 1.0
    reg_tot = (reg_tot - reg_tot.mean(0)) / scale
    reg_vis = (reg_vis - reg_vis.mean(0)) / scale
    driven = np.asarray(group.get("driven", np.ones(R, dtype=bool)), dtype=bool)
    reg_tot[:, ~driven] = 0.0  # regions whose BOLD does not carry their drive (driven_regions < 1)
    reg_vis[:, ~driven] = 0.0

    # ---- voxels
    V = anat.n_voxels
    lab = anat.labels
    gain = subj_params["voxel_gain"]
    local = _local_component(n_vols, anat, cfg, rng)
    w = np.sqrt(cfg.local_share)
    clean = gain[None, :] * (np.sqrt(1 - cfg.local_share) * reg_tot[:, lab] + w * local)
    visible = gain[None, :] * np.sqrt(1 - cfg.local_share) * reg_vis[:, lab]
    rho = cfg.physio_ar ** (cfg.tr / 2.0)
    innov = rng.standard_normal((n_vols, V))
    glob = rng.standard_normal((n_vols, 1))
    g = np.sqrt(cfg.physio_global)
    innov = g * glob + np.sqrt(1 - g**2) * innov
    phys = np.empty_like(innov)
    phys[0] = innov[0]
    for t in range(1, n_vols):
        phys[t] = rho * phys[t - 1] + np.sqrt(1 - rho**2) * innov[t]
    baseline = subj_params["baseline"]
    noise_pct = cfg.physio_noise * phys + cfg.thermal_noise * 1000.0 / baseline[None, :] * rng.standard_normal((n_vols, V))
    tt = np.linspace(-1, 1, n_vols)[:, None]
    drift_pct = cfg.drift * (rng.standard_normal((1, V)) * tt + 0.5 * rng.standard_normal((1, V)) * np.cos(np.pi * (tt + 1)))
    measured_in = baseline[None, :] * (1.0 + (cfg.psc * clean + noise_pct + drift_pct) / 100.0)
    bold = np.zeros(anat.shape + (n_vols,), dtype=np.float32)
    outside = ~anat.mask
    bold[outside] = (30.0 + 10.0 * np.abs(rng.standard_normal((int(outside.sum()), n_vols)))).astype(np.float32)
    bold[anat.mask] = measured_in.T.astype(np.float32)
    return dict(
        n_vols=n_vols, eeg=eeg.T.astype(np.float64), extra=extra, onsets_eeg=onsets_eeg, eeg_pre=eeg_pre, markers_eeg=markers_eeg, slices_eeg=slices_eeg,
        bold=bold, events=events,
        gt=dict(
            t_neural=t_neural.astype(np.float32), drive_visible=drive_vis.astype(np.float32), drive_invisible=drive_inv.astype(np.float32),
            drive_total=drive_total.astype(np.float32), envelopes=envelopes, task=task_box.astype(np.float32),
            bold_clean=(cfg.psc * clean).astype(np.float32), bold_visible=(cfg.psc * visible).astype(np.float32),
            noise=noise_pct.astype(np.float32), drift=drift_pct.astype(np.float32), baseline=baseline.astype(np.float32),
            acquisition_times=acq.astype(np.float32), volume_onsets_eeg=onsets_eeg.astype(np.float64),
            leadfield=lf.astype(np.float32), labels=anat.labels.astype(np.int32), driven=driven,
        ),
    )


def _local_component(n_vols: int, anat: Anatomy, cfg: SimulationConfig, rng: np.random.Generator) -> np.ndarray:
    """Voxel-specific slow activity (spatially smooth), HRF-filtered at the TR, unit std."""
    from scipy.ndimage import gaussian_filter

    vol = np.zeros(anat.shape + (n_vols,))
    vol[anat.mask] = rng.standard_normal((anat.n_voxels, n_vols))
    vol = gaussian_filter(vol, sigma=(1.0, 1.0, 1.0, 0.0))
    x = vol[anat.mask].T
    h = double_gamma_hrf(cfg.tr)
    x = np.apply_along_axis(lambda s: np.convolve(s, h)[:n_vols], 0, x)
    x -= x.mean(0)
    return x / x.std(0).clip(1e-12)


def _subject_anatomy(cfg: SimulationConfig, anat: Anatomy, group: dict, subj: int) -> tuple[Anatomy, dict]:
    """The group anatomy and parameters, or with ``subject_variability`` the subject's own parcellation and loadings."""
    if not cfg.subject_variability:
        return anat, group
    anat_s = make_anatomy(cfg.voxel_size, cfg.n_regions, cfg.seed + 1000 * (subj + 1))
    group_s = _group_parameters(cfg, anat_s)  # the group's random draws, this subject's parcel depths and orientations
    rng = np.random.default_rng([cfg.seed, 6, subj])
    group_s["loadings"] = group["loadings"] + cfg.subject_variability * 0.5 * rng.standard_normal(group["loadings"].shape)
    return anat_s, group_s


def _subject_parameters(cfg: SimulationConfig, anat: Anatomy, group: dict, info, subj: int) -> dict[str, Any]:
    rng = np.random.default_rng([cfg.seed, 1, subj])
    R = anat.n_regions
    delay = 6.0 + cfg.hrf_delay_sd_subject * rng.standard_normal() + cfg.hrf_delay_sd_region * rng.standard_normal(R)
    width = np.exp(cfg.hrf_width_sd * rng.standard_normal(R))
    # options draw from their own streams, so the defaults' random numbers are unchanged
    opt_rng = np.random.default_rng([cfg.seed, 5, subj])
    if cfg.hrf_peak_range is not None:
        delay = opt_rng.uniform(*cfg.hrf_peak_range, R)
    undershoot = np.full(R, 1.0 / 6.0) if cfg.hrf_undershoot_range is None else opt_rng.uniform(*cfg.hrf_undershoot_range, R)
    orient = group["orientation"] + 0.3 * rng.standard_normal((R, 3))
    orient /= np.linalg.norm(orient, axis=1, keepdims=True)
    shift = rng.normal(0, 0.004, 3)
    head_scale = float(rng.uniform(0.95, 1.05))
    lf = _leadfield(info, anat.centroids, anat.coords, orient, shift, head_scale)
    coupling_gain = {b: np.exp(cfg.coupling_sd * rng.standard_normal(R)) for b in cfg.bands}
    voxel_gain = (0.25 + 0.75 * anat.gm) * np.exp(0.15 * rng.standard_normal(anat.n_voxels))
    baseline = (400.0 + 700.0 * anat.gm + 500.0 * anat.wm) * float(rng.uniform(0.8, 1.2))
    return dict(hrf=dict(delay=np.clip(delay, 2.0, 12.0) if cfg.hrf_peak_range is not None else np.clip(delay, 3.0, 10.0), width=width,
                         undershoot=undershoot), orientation=orient, head_shift_m=shift, head_scale=head_scale, leadfield=lf, coupling_gain=coupling_gain, voxel_gain=voxel_gain, baseline=baseline)


# ---------------------------------------------------------------------------------------
# writing


_jsonable = to_jsonable


#: Parts of a path that mne_bids.write_raw_bids rewrites in the whole source path (".eeg" -> ".vhdr", ".fdt" -> ".set",
#: ".dat" -> ".lay", mne-bids 0.16), so that a recording written under a folder named e.g. "data" or "eeg_test" is not found.
_MNE_BIDS_REWRITES = (".eeg", ".fdt", ".dat")


@contextlib.contextmanager
def scratch_dir():
    """A temporary folder for the EEG files that mne_bids copies into the dataset, on a path it does not rewrite.

    Not inside the output folder: its temporary name (``.NAME.tmp-...``) holds ``.dat`` for an output named ``data``
    and ``.eeg`` for one named ``eeg...`` (user test 9: ``eeg2fmri simulate data`` failed with FileNotFoundError).
    """
    tmp = tempfile.mkdtemp(prefix="eeg2fmri_sim_")
    try:
        if any(part in tmp for part in _MNE_BIDS_REWRITES):
            raise Eeg2fmriInputError(f"simulate: the temporary folder {tmp} contains one of {list(_MNE_BIDS_REWRITES)}, which mne_bids rewrites "
                                     "in source paths; point TMPDIR at a folder whose path does not.")
        yield Path(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_eeg(root: Path, tmpdir: Path, sub: str, run: int, cfg: SimulationConfig, info, data_uv: np.ndarray, extra: dict, onsets: np.ndarray, task: str,
               slices: np.ndarray | None = None) -> None:
    import mne
    import mne_bids
    from pybv import write_brainvision

    ch_names = list(info["ch_names"]) + list(extra)
    data = np.vstack([data_uv] + [extra[k][None, :] for k in extra])  # microvolts; pybv takes volts
    code = int(cfg.marker[1:])
    markers = [{"onset": int(round(o * cfg.sfreq)), "duration": 1, "description": code, "type": "Response"} for o in onsets]
    if slices is not None:  # slice markers (eeg2fmri.simulate.artifacts.SLICE_MARKER), sorted in with the volume markers
        markers = sorted(markers + [{"onset": int(round(o * cfg.sfreq)), "duration": 1, "description": 2, "type": "Response"} for o in slices],
                         key=lambda m: (m["onset"], m["description"] != code))
    base = f"sub-{sub}_run-{run}"
    write_brainvision(data=data * 1e-6, sfreq=cfg.sfreq, ch_names=ch_names, fname_base=base, folder_out=str(tmpdir), events=markers, unit="µV", fmt="binary_float32", overwrite=True)
    raw = mne.io.read_raw_brainvision(tmpdir / f"{base}.vhdr", preload=False, verbose=False)
    types = {k: k.lower() for k in extra}
    if types:
        raw.set_channel_types(types, verbose=False)
    raw.set_montage(cfg.montage, on_missing="ignore", verbose=False)
    raw.info["line_freq"] = cfg.line_freq
    bp = mne_bids.BIDSPath(subject=sub, task=task, run=run, datatype="eeg", root=root)
    fmt = {"BrainVision": "auto", "EDF": "EDF", "EEGLAB": "EEGLAB"}[cfg.eeg_format]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mne_bids.write_raw_bids(raw, bp, format=fmt, allow_preload=fmt != "auto", verbose=False, overwrite=True)


def _write_bold(root: Path, sub: str, run: int, task: str, anat: Anatomy, bold: np.ndarray, tr: float, events: list) -> None:
    import nibabel as nib

    func = root / f"sub-{sub}" / "func"
    func.mkdir(parents=True, exist_ok=True)
    stem = f"sub-{sub}_task-{task}_run-{run}"
    img = nib.Nifti1Image(bold, anat.affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_zooms(tuple(np.abs(np.diag(anat.affine)[:3])) + (tr,))
    img.set_sform(anat.affine, code=4)  # the grid is nilearn's MNI152 grid: code 4 (MNI), so viewers and figures
    img.set_qform(anat.affine, code=4)  # place it on MNI anatomy (a scanner's data carry 1)
    nib.save(img, func / f"{stem}_bold.nii.gz")
    (func / f"{stem}_bold.json").write_text(json.dumps({"RepetitionTime": tr, "TaskName": task, "SkullStripped": False}, indent=2), encoding="utf-8")
    lines = ["onset\tduration\ttrial_type"] + [f"{o:.3f}\t{d:.3f}\t{t}" for o, d, t in events]
    (func / f"{stem}_events.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def simulate_dataset(
    out: str | os.PathLike,
    config: SimulationConfig | None = None,
    *,
    overwrite: bool = False,
    progress_bar: bool = True,
    **overrides: Any,
) -> Path:
    """Simulate a simultaneous EEG-fMRI BIDS dataset with ground truth.

    Parameters
    ----------
    out : path-like
        Output BIDS root (must not exist unless ``overwrite``); written to a
        temporary sibling and renamed at the end, so an interrupted run leaves nothing.
    config : SimulationConfig | None
        Settings; ``None`` uses the defaults.
    overwrite : bool
        Replace an existing ``out``.
    progress_bar : bool
        Show a progress bar over subjects.
    **overrides
        Fields of :class:`SimulationConfig` to change (e.g. ``n_subjects=2``).

    Returns
    -------
    root : Path
        The BIDS root.
    """
    import mne

    out = Path(out).expanduser()  # ('~/sim' is the home folder's, not a folder named '~': user test 29)
    cfg = SimulationConfig(**{**asdict(config or SimulationConfig()), **overrides}) if overrides or config is None else config
    cfg.validate()
    task = "blocks" if cfg.task == "blocks" else "rest"
    names = _channel_names(cfg.montage, cfg.n_channels)
    info = mne.create_info(names, cfg.sfreq, "eeg")
    info.set_montage(cfg.montage, verbose=False)
    logger.info("simulating %d subject(s) x %d run(s) of %.1f min", cfg.n_subjects, cfg.n_runs, cfg.minutes)
    anat = make_anatomy(cfg.voxel_size, cfg.n_regions, cfg.seed)
    group = _group_parameters(cfg, anat)
    with atomic_dir(out, overwrite=overwrite, marker="derivatives/groundtruth") as root, scratch_dir() as scratch:
        gt_root = root / "derivatives" / "groundtruth"
        gt_root.mkdir(parents=True)
        subjects = [f"{i + 1:02d}" for i in range(cfg.n_subjects)]
        for s_i, sub in progress(list(enumerate(subjects)), desc="simulate subjects", enabled=progress_bar):
            anat_s, group_s = _subject_anatomy(cfg, anat, group, s_i)
            sp = _subject_parameters(cfg, anat_s, group_s, info, s_i)
            gdir = gt_root / f"sub-{sub}"
            gdir.mkdir()
            for run in range(1, cfg.n_runs + 1):
                res = _simulate_run(cfg, anat_s, group_s, info, sp, [cfg.seed, 2, s_i, run], None)
                _write_eeg(root, scratch, sub, run, cfg, info, res["eeg"], res["extra"], res["markers_eeg"], task, res["slices_eeg"])
                _write_bold(root, sub, run, task, anat_s, res["bold"], cfg.tr, res["events"])
                np.savez_compressed(gdir / f"sub-{sub}_task-{task}_run-{run}_groundtruth.npz", **res["gt"])
            params = dict(subject=sub, **{k: v for k, v in sp.items()})
            (gdir / f"sub-{sub}_parameters.json").write_text(json.dumps(_jsonable(params)), encoding="utf-8")
        _write_groundtruth_common(gt_root, cfg, anat, group, names)
        _fix_dataset_description(root, cfg)
    logger.info("wrote %s", out)
    return Path(out).absolute()


def _write_groundtruth_common(gt_root: Path, cfg: SimulationConfig, anat: Anatomy, group: dict, names: list[str]) -> None:

    write_anatomy_maps(anat, gt_root)
    meta = dict(config=cfg.to_dict(), channels=names, neural_rate=NEURAL_RATE, pre_seconds=_PRE, group=_jsonable(group), region_centroids_mm=anat.centroids.tolist())
    (gt_root / "simulation.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    (gt_root / "dataset_description.json").write_text(json.dumps({
        "Name": "eeg2fmri simulator ground truth", "BIDSVersion": "1.9.0", "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "eeg2fmri.simulate", "Version": _version()}],
    }, indent=2), encoding="utf-8")


def _fix_dataset_description(root: Path, cfg: SimulationConfig) -> None:
    p = root / "dataset_description.json"
    d = json.loads(p.read_text(encoding="utf-8")) if p.exists() else {}
    d.update({"Name": f"eeg2fmri simulated EEG-fMRI (seed {cfg.seed})", "BIDSVersion": d.get("BIDSVersion", "1.9.0"),
              "DatasetType": "raw", "GeneratedBy": [{"Name": "eeg2fmri.simulate", "Version": _version()}]})
    p.write_text(json.dumps(d, indent=2), encoding="utf-8")


def _version() -> str:
    from eeg2fmri import __version__

    return __version__


# ---------------------------------------------------------------------------------------
# reading ground truth


def load_groundtruth(root: str | os.PathLike, subject: str, run: int = 1, task: str | None = None) -> dict[str, np.ndarray]:
    """Load the ground-truth arrays of one simulated run.

    Returns
    -------
    gt : dict
        ``bold_clean``/``bold_visible``/``noise``/``drift`` of shape
        (n_volumes, n_voxels) in percent signal change (voxels in the order of
        ``mask.nii.gz``), drives (n_neural, n_regions) at 10 Hz, ``envelopes``
        (n_neural, n_regions, n_bands), ``leadfield`` (n_chans, n_regions), ...
    """
    gdir = Path(root) / "derivatives" / "groundtruth" / f"sub-{subject}"
    pattern = f"sub-{subject}_task-{task or '*'}_run-{run}_groundtruth.npz"
    found = sorted(gdir.glob(pattern))
    if not found:
        raise Eeg2fmriInputError(f"{gdir}: expected a ground-truth file {pattern}, found none; is {root} a dataset written by eeg2fmri simulate?")
    with np.load(found[0]) as z:
        return {k: z[k] for k in z.files}


def ceilings(gt: dict[str, np.ndarray], volumes: slice | np.ndarray | None = None, detrend: bool = True) -> dict[str, np.ndarray]:
    """Noise and oracle ceilings per voxel on a set of volumes.

    * noise ceiling = corr(noise-free BOLD, noise-free BOLD + noise): the best
      any predictor could reach;
    * oracle ceiling = corr(EEG-visible part of the BOLD, noise-free BOLD + noise):
      the best a predictor that knew the EEG-visible drive exactly could reach.

    Drift is excluded (preprocessing removes it); with ``detrend`` each series
    is linearly detrended on the span first.

    Returns
    -------
    dict with ``noise`` and ``oracle``, arrays of shape (n_voxels,).
    """
    from scipy.signal import detrend as _detrend

    sel = slice(None) if volumes is None else volumes
    clean = gt["bold_clean"][sel].astype(np.float64)
    vis = gt["bold_visible"][sel].astype(np.float64)
    meas = clean + gt["noise"][sel]
    if detrend:
        clean, vis, meas = (_detrend(a, axis=0) for a in (clean, vis, meas))

    return {"noise": pearson_columns(clean, meas, clip=False), "oracle": pearson_columns(vis, meas, clip=False)}
