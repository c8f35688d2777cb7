"""Prepared datasets: continuous per-run arrays stored once, plus a manifest.

A prepared dataset holds, per run, the EEG representation as continuous
frames (``features``, shape (n_frames, n_chans, n_bands)) and the masked BOLD
(``bold``, shape (n_volumes, n_voxels)), with the volume onsets used to align
them. Windows (see :mod:`eeg2fmri.datasets.windows`) are views into these
arrays, never copies.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from eeg2fmri.io.bold import load_masked_bold, reference_grid
from eeg2fmri.io.channel_names import channel_difference, channel_key, compare_run_channels
from eeg2fmri.io.sync import DEFAULT_MARKERS
from eeg2fmri.preprocessing.representations import get_representation, list_representations
from eeg2fmri.utils.atomic import atomic_dir, final_paths
from eeg2fmri.utils.logs import logger, progress, warn_once_per_process
from eeg2fmri.utils.provenance import software
from eeg2fmri.utils.timing import step
from eeg2fmri.utils.validation import (
    Eeg2fmriInputError,
    check_instance,
    check_positive,
    check_positive_int,
)

__all__ = ["LowratePlan", "PrepareConfig", "PreparedDataset", "PreparedRun", "RUN_KEYS", "eeg_representation", "load_eeg_lowrate", "load_prepared", "lowrate_plan", "model_prepare_config", "prepare", "read_runs_table", "reference_grid", "runs_from_files",
           "prepare_dataset", "select_subjects", "subject_labels"]

FORMAT_VERSION = 1


@dataclass
class PrepareConfig:
    """How raw recordings become a prepared dataset (saved in the manifest).

    Parameters
    ----------
    bands : dict | "auto"
        Band name -> (low, high) Hz for band-power envelopes. ``"auto"``
        (default): :func:`~eeg2fmri.preprocessing.eeg.auto_bands` of the
        lowest sampling rate among the recordings -- delta to gamma (1-45 Hz)
        plus high gamma (55-95 Hz) where the rate allows; the manifest records
        the bands used.
    frames_per_tr : int
        Feature frames per repetition time.
    l_freq, h_freq : float | None
        EEG band-pass in Hz before envelopes.
    notch : float | None
        Line frequency (``None``: from the recording's ``line_freq``).
    reference : str | None
        EEG re-reference (``"average"``).
    marker : list of str | None
        Scanner marker names tried in order.
    first_onset : float | dict | None
        Fallback volume-0 onset (s from the EEG's start) when there are no markers; a mapping run key
        (e.g. ``"sub-01_task-rest_run-1"``) -> onset for runs that started at different times.
    tr : float | None
        Repetition time (s) of every run, overriding the NIfTI header and the
        sidecars (for a header with a placeholder TR; ``None``: from the
        ``*_bold.json`` sidecar, a top-level ``task-<task>_bold.json`` it
        inherits from, or the header).
    resample_tr : float | None
        Resample every run's BOLD in time to this TR (s), so that runs of different TRs (sites, protocols) pool into
        one dataset: each run's volumes are first timed by its own markers (or ``first_onset``) at its own TR, then
        its voxel series are low-passed below the new Nyquist frequency (when the new TR is longer) and interpolated
        (cubic spline) from its volumes' acquisition middles (onset + TR/2) to new middles that step by ``resample_tr``
        within the run (:func:`eeg2fmri.preprocessing.volumes.resampled_times`); the EEG windows end at the new volumes' ends.
        :func:`eeg2fmri.preprocessing.volumes.resample_bold_time`. ``None`` (default): every run must have one TR.
    dummy_scans : {"auto", "drop-first", "drop-last", "error"}
        More scanner markers than BOLD volumes: the first extra markers are
        dummy scans the scanner did not save (``"drop-first"``), the last ones came
        after the last saved volume (``"drop-last"``), or raise. ``"auto"``
        (default): ``"drop-first"`` for up to 10 extra markers, else raise (a
        BOLD cut short would be paired with the wrong EEG). Logged as a warning.
    drop_volumes : int | "auto"
        Leading volumes of every run left out (before confound regression), as fMRIPrep calls them
        non-steady-state volumes: ``"auto"`` (default) detects them per run from the brain signal
        (:func:`eeg2fmri.preprocessing.bold.non_steady_state_volumes`: the first volumes are brighter
        until the magnetisation reaches its steady state; for fMRIPrep derivatives whose confounds have
        ``non_steady_state_outlier*`` columns, their leading flags decide), logged as a warning and recorded in the
        manifest (``provenance.inputs[run key].non_steady_state_volumes``); a number drops that many in every
        run; ``0`` keeps every volume. Their EEG still serves as the history of later windows.
    mask : str
        ``"fmriprep"`` (the intersection of every run's fMRIPrep ``*_desc-brain_mask.nii.gz``, for data
        prepared from its derivatives), ``"data"`` (EPI mask of the first run's mean image, used for all runs)
        or a path to a mask NIfTI on the BOLD grid.
    representation : {"bandpower", "stft", "raw"}
        EEG representation stored continuously: band-power frames
        ``(n_frames, n_chans, n_bands)``, STFT magnitude frames
        ``(n_frames, n_chans, n_freqs)`` (one frame per ``tr / frames_per_tr``,
        bins ``stft_fmin``..``stft_fmax`` Hz), or raw samples
        ``(n_samples, n_chans)`` at ``raw_sfreq``.
    work_sfreq : float | None
        EEG is filtered and resampled to this rate (Hz) channel group by
        channel group right after reading, which bounds memory and time;
        ``None`` picks ``max(100, 2.5 * highest frequency needed)`` (never above
        the recording's rate).
    stft_fmin, stft_fmax : float
        Frequency range of STFT bins in Hz (``stft_fmax`` is capped below Nyquist).
    stft_log : bool
        Log power instead of magnitude for STFT frames.
    raw_sfreq : float
        Sampling rate of the raw representation in Hz.
    check_artifacts : bool
        Warn when the EEG looks uncorrected for MRI gradient artifacts (large
        spectral lines at the volume/slice repetition frequencies).
    clean : dict | None
        Remove scanner artifacts from the raw EEG first: keyword arguments of
        :func:`eeg2fmri.preprocessing.cleaning.clean_raw`, e.g. ``{"gradient": "aas",
        "bcg": "pca_obs"}`` (missing keys: ``None``, i.e. that step off); the report
        (residual artifact power) is recorded in the manifest's provenance.
    grid : list of int | "first" | str | None
        Resample BOLD to this grid shape (same field of view), e.g. ``[64, 64, 30]``;
        ``"first"``: every run onto the first run's grid (runs already in one space,
        e.g. MNI, but with other boxes or voxel sizes; continuous interpolation);
        a NIfTI path: every run onto that image's grid (its shape and affine: another
        dataset's ``mask.nii.gz``, a model's, or any image in the runs' space), so that a
        second site's data can be prepared onto the first site's grid.
    voxel_size : float | None
        Or resample BOLD to this isotropic voxel size in mm.
    confounds : list of str | None
        Columns (names or glob patterns) of the run's fMRIPrep
        ``*_desc-confounds_timeseries.tsv`` regressed out of the BOLD.
    physio : "regress" | list of str | None
        Regress physiological noise from the BOLD, built from the recordings' own cardiac and
        respiratory traces (:mod:`eeg2fmri.preprocessing.physio`): the EEG file's channels typed
        ``ecg`` / ``resp``, else the run's BIDS ``*_physio.tsv.gz`` (``cardiac`` /
        ``respiratory`` columns). ``"regress"``: RETROICOR (2 harmonics of the cardiac and
        respiratory phase) and heart rate and respiration volume delayed by 0, 4, 8, 12 and 16 s,
        at every volume's middle; a list picks groups among ``"retroicor"``, ``"hr_lags"``,
        ``"rv_lags"``, ``"hr"`` (x CRF), ``"rv"`` (x RRF). Regressed together with ``confounds``;
        the manifest records each run's beats, breathing rate and the median share of BOLD
        variance the regressors explained.
    physio_incomplete : {"error", "trim", "unregressed"}
        A run whose physiological traces do not serve every kept volume (a recording shorter than
        the run, a gap of missing samples over 2 s, no trace at all): ``"error"`` (default) stops
        with the reason; ``"trim"`` leaves out the volumes at the run's start or end that a trace
        does not cover (a gap inside the run still stops); ``"unregressed"`` prepares that run
        without physiological regressors. Both warn and record it in the manifest
        (``physio_trimmed`` / ``physio_unregressed`` of the run).
    atlas : str | None
        Targets become ROI time series: ``"power_2011"`` (264 spheres, ships
        with nilearn) or a path to a labels (3D) or probabilistic (4D) atlas
        NIfTI (resampled to the BOLD grid, with a note, when grids differ).
    atlas_radius : float
        Sphere radius in mm for coordinate atlases.
    channels : list of str | None
        Give every run exactly these EEG channels, in this order: by name, else
        by electrode position (``channel_positions``), else interpolated
        (:func:`eeg2fmri.preprocessing.channels.map_channels_by_position`); the
        manifest records the mapping per run. ``None``: the runs' own EEG channels.
    channel_positions : str | None
        With ``channels``: ``"file"`` (the recordings' digitisation) or an MNE standard
        montage such as ``"biosemi64"``; ``None`` (default): the digitisation where a
        recording has one, else the 10-05 sites by channel name (as ``synthesize``).
    events : None | "auto" | list of str | dict
        Event regressors beside the EEG features (band power and tangent only; see
        :mod:`eeg2fmri.preprocessing.events`): ``None`` (default) none; ``"auto"`` one condition per stimulus-like
        marker name of the recordings (not scanner markers or recorder notes; at least 2 events); a list of
        marker names (one condition each); a mapping condition -> marker names. Each condition becomes one entry
        after the EEG features of every channel: the number of its events starting in each frame (events of a
        frame or longer: the share of the frame they cover). ``ridge_hrf`` and ``stimulus_glm`` convolve them
        with their haemodynamic basis (the flagship does not read them); ``synthesize`` reads them from the
        EEG-only recording's markers. The manifest records the conditions resolved.
    event_durations : dict | None
        condition -> duration (s) of its events where the recording gives them none (markers of one sample: a
        BrainVision file read without its ``events.tsv``). By default, for every block condition (the median duration of
        its events that carry one, at least 1 s) that median; durations given here replace those of their conditions (0:
        none). Recorded in the manifest, so that ``synthesize`` gives an EEG-only recording's block markers the
        training's duration.
    slow_potential : None | "auto" | [low, high]
        One more entry per channel after the bands: the channel's *signed* EEG band-passed to ``[low, high]`` Hz and
        averaged over each frame (band power is an envelope and loses the sign of a slow potential). ``"auto"``:
        ``[0.01, 0.1]`` (the infraslow potential of DC-coupled recordings). It is computed from the EEG before the
        ``l_freq`` high-pass (read a second time without it; same channels, notch and reference:
        :func:`slow_potential_features`), standardised per run like the bands but without the log; ``freqs`` gets the
        band's centre and ``bands`` the name ``"slow_potential"``. Band power only (not ``tangent``); each run must last
        at least ``1 / low`` s. ``None`` (default): off. The manifest records the band.
    """

    bands: dict | str = "auto"
    frames_per_tr: int = 1
    l_freq: float | None = 0.5
    h_freq: float | None = None
    notch: float | None = None
    reference: str | None = "average"
    marker: list | None = field(default_factory=lambda: list(DEFAULT_MARKERS))
    first_onset: float | dict | None = None
    dummy_scans: str = "auto"
    drop_volumes: int | str = "auto"
    tr: float | None = None
    resample_tr: float | None = None
    mask: str = "data"
    representation: str = "bandpower"
    work_sfreq: float | None = None
    stft_fmin: float = 0.5
    stft_fmax: float = 62.0
    stft_log: bool = False
    raw_sfreq: float = 100.0
    check_artifacts: bool = True
    clean: dict | None = None
    grid: list | None = None
    voxel_size: float | None = None
    confounds: list | None = None
    physio: Any = None
    physio_incomplete: str = "error"
    atlas: str | None = None
    atlas_radius: float = 5.0
    channels: list | None = None
    channel_positions: str | None = None
    events: Any = None
    event_durations: dict | None = None
    slow_potential: Any = None

    @property
    def event_names(self) -> list[str]:
        """The conditions of ``events`` once resolved (a mapping), else ``[]``."""
        return [str(k) for k in self.events] if isinstance(self.events, dict) else []

    @property
    def slow_band(self) -> tuple[float, float] | None:
        """``slow_potential`` as ``(low, high)`` Hz (``"auto"`` resolved), or ``None`` when off."""
        sp = self.slow_potential
        if sp is None:
            return None
        if isinstance(sp, str):
            from eeg2fmri.preprocessing.representations.bandpower import SLOW_POTENTIAL_AUTO

            return SLOW_POTENTIAL_AUTO
        return (float(sp[0]), float(sp[1]))

    def resolved(self, sfreq: float) -> PrepareConfig:
        """This config with ``bands="auto"`` replaced by the bands of EEG sampled at ``sfreq`` (Hz)
        (and worked at ``work_sfreq`` when that is lower)."""
        if isinstance(self.bands, str):
            from eeg2fmri.preprocessing.eeg import auto_bands

            rate = float(sfreq) if self.work_sfreq is None else min(float(sfreq), float(self.work_sfreq))
            return replace(self, bands=auto_bands(rate))
        return self

    def needed_fmax(self) -> float:
        """Highest EEG frequency the representation uses (Hz)."""
        return get_representation(self.representation).needed_fmax(self)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bands"] = self.bands if isinstance(self.bands, str) else {k: list(v) for k, v in self.bands.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> PrepareConfig:
        d = dict(d or {})
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise Eeg2fmriInputError(f"unknown prepare option(s) {sorted(unknown)}; valid: {sorted(cls.__dataclass_fields__)}.")
        if "bands" in d and not isinstance(d["bands"], str):
            if not isinstance(d["bands"], dict):
                raise Eeg2fmriInputError(f"prepare option bands: expected 'auto' or a mapping name -> [low, high] in Hz, got {d['bands']!r}.")
            d["bands"] = {k: tuple(v) for k, v in d["bands"].items()}
        return cls(**d)


#: Names of the registered representations (preprocessing/representations/).
REPRESENTATIONS = list_representations()


@dataclass(repr=False)
class PreparedRun:
    """Continuous arrays of one run.

    Attributes
    ----------
    key, subject : str
    features : array
        The EEG representation, continuous along axis 0: ``(n_frames, n_chans,
        n_bands)`` (bandpower), ``(n_frames, n_chans, n_freqs)`` (stft) or
        ``(n_samples, n_chans)`` (raw).
    window_end : array of int, shape (n_volumes,)
        For each volume, the index along axis 0 of ``features`` (exclusive) at
        which the volume's acquisition ends; a window of length ``n`` with lag
        ``lag`` is ``features[window_end[i] + lag - n : window_end[i] + lag]``.
    bold : array, shape (n_volumes, n_voxels) | None
        Masked BOLD intensities (``None`` for EEG-only runs).
    onsets : array, shape (n_volumes,)
        Volume onsets in seconds from the EEG start.
    bad_spans : array, shape (n_spans, 2) | None
        EEG spans the recording marks bad (``BAD_*`` annotations), seconds from the EEG start: windows that
        overlap one are left out of every split (:func:`~eeg2fmri.datasets.targets.make_split`).
    physio : array, shape (n_volumes, n_regressors) | None
        Physiological noise regressors (RETROICOR, lagged heart rate and respiration volume) at the volumes'
        middles, each standardised over the run, where the recordings hold a cardiac or respiration trace
        (built whether or not prepare option ``physio`` regressed them): the ``physiology only`` row of
        ``benchmark`` predicts the BOLD from them alone.
    physio_names : list of str | None
        Their names (``retroicor_c1_cos``, ``hr_lag4s``, ...).
    """

    key: str
    subject: str
    features: np.ndarray
    window_end: np.ndarray
    bold: np.ndarray | None
    onsets: np.ndarray
    bad_spans: np.ndarray | None = None
    physio: np.ndarray | None = None
    physio_names: list | None = None

    @property
    def n_volumes(self) -> int:
        return len(self.onsets)

    def __repr__(self) -> str:  # shapes, not the arrays
        bold = "none" if self.bold is None else "x".join(map(str, self.bold.shape))
        return (f"PreparedRun({self.key!r}, subject={self.subject!r}, volumes={self.n_volumes}, "
                f"features={'x'.join(map(str, self.features.shape))}, bold={bold})")


@dataclass(repr=False)
class PreparedDataset:
    """Runs plus what is common to them (grid, rates, channel names, config).

    Attributes
    ----------
    frame_rate : float
        Samples per second along axis 0 of every run's ``features``.
    freqs : list of float | None
        Frequencies (Hz) of the STFT bins or band centres.
    """

    runs: list[PreparedRun]
    mask: np.ndarray
    affine: np.ndarray
    tr: float
    sfreq: float
    ch_names: list[str]
    config: PrepareConfig
    frame_rate: float
    freqs: list[float] | None = None
    provenance: dict = field(default_factory=dict)
    rois: dict | None = None

    @property
    def subjects(self) -> list[str]:
        """The subject labels, numbers in numeric order (``2`` before ``10``, as the runs are)."""
        from eeg2fmri.io.pairing import natural_key

        return sorted({r.subject for r in self.runs}, key=natural_key)

    def __repr__(self) -> str:  # what it holds, not the arrays (print(ds) dumped every run's features)
        out = (f" -> {len(self.rois.get('labels', []))} ROIs" if isinstance(self.rois, dict) and self.rois.get("labels") is not None
               else f" -> {int(self.mask.sum())} voxels of a {'x'.join(map(str, self.mask.shape))} mask")
        return (f"PreparedDataset({self.representation}, {len(self.runs)} run(s) of {len(self.subjects)} subject(s), "
                f"{sum(r.n_volumes for r in self.runs)} volumes, TR {self.tr:g} s, {len(self.ch_names)} channels, "
                f"{len(self.config.bands)} bands{out})")

    @property
    def bands(self) -> list[str]:
        """Names of the entries per channel of band-power features: the bands, then ``"slow_potential"`` where prepared with it."""
        return list(self.config.bands) + (["slow_potential"] if getattr(self.config, "slow_potential", None) is not None else [])

    @property
    def representation(self) -> str:
        return self.config.representation

    @property
    def n_outputs(self) -> int:
        """Target columns: the ROIs of an atlas (``rois``), else the voxels of the mask."""
        if self.rois is not None and self.rois.get("names") is not None:
            return len(self.rois["names"])
        run = next((r for r in self.runs if r.bold is not None), None)
        return int(run.bold.shape[1]) if run is not None else int(self.mask.sum())

    @property
    def has_grid(self) -> bool:
        """Whether the targets lie on a voxel grid (BOLD volumes, or an atlas's ROIs on them); ``False`` for region tables
        (:mod:`eeg2fmri.io.roi_tables`): their mask is a stand-in with one element per region, nothing to draw as a volume."""
        return not (isinstance(self.rois, dict) and self.rois.get("source") == "table")

    def to_voxels(self, values: np.ndarray) -> np.ndarray:
        """Per-output values ``(..., n_outputs)`` as values of the mask's voxels ``(..., n_voxels)``: identity for voxel
        targets, :func:`rois_to_voxels` for ROI targets (maps and figures on the grid)."""
        if not self.rois or "weights" not in self.rois:
            return np.asarray(values)
        return rois_to_voxels(self.rois, values, int(self.mask.sum()))

    @property
    def xform_code(self) -> int:
        """NIfTI space code of the BOLD grid (4: MNI152, 2: aligned; :func:`eeg2fmri.io.bold.xform_code`), kept by the images
        written on it (mask, r maps, models, synthesised BOLD). Datasets prepared before 2026-12-04 (session 10) record
        none: 2."""
        return int((self.provenance or {}).get("bold_xform_code") or 2)

    @property
    def space(self) -> str | None:
        """``"mni"``, ``"native"`` or ``None``: the BOLD grid's space as its files say it (the BIDS ``space-`` entity of
        the first run's file name, else the NIfTI code; :func:`eeg2fmri.io.bold.grid_space`). Figures draw the MNI152
        template only behind ``"mni"`` (and, where nothing is said, behind a grid that lies where the MNI brain is)."""
        from eeg2fmri.io.bold import grid_space

        return grid_space(self.xform_code, (self.provenance or {}).get("bold_space"))

    def subject_index(self, subject: str) -> int:
        return self.subjects.index(subject)

    def _manifest(self, runs_meta: list[dict]) -> dict:
        return dict(format_version=FORMAT_VERSION, kind="eeg2fmri-prepared", tr=self.tr, sfreq=self.sfreq, ch_names=self.ch_names,
                    frame_rate=self.frame_rate, freqs=self.freqs, representation=self.representation, n_voxels=int(self.mask.sum()),
                    grid_shape=list(self.mask.shape), affine=np.asarray(self.affine).tolist(), config=self.config.to_dict(), runs=runs_meta,
                    provenance=self.provenance, rois=self.rois, software=software())

    def save(self, out: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the dataset atomically: one ``.npy`` per array and ``manifest.json``."""
        with atomic_dir(out, overwrite=overwrite, marker="manifest.json") as tmp:
            runs_meta = [_write_run(tmp, i, r) for i, r in enumerate(self.runs)]
            _write_common(tmp, self, runs_meta)
        return Path(out)


def data_fingerprint(ds: PreparedDataset) -> str | None:
    """A sha256 of what a prepared dataset was made from: its runs, their input files' checksums (manifest) and the prepare
    options -- equal for the same input files prepared again the same way, different when an input file (its size, its first
    MiB or its modification time: a copy that did not keep timestamps counts as changed) or an option changed
    (user test 41: a folder re-prepared in place from changed files gave another test error in silence). ``None`` for a
    dataset without recorded inputs (built in memory)."""
    import hashlib

    prov = ds.provenance if isinstance(ds.provenance, dict) else {}
    inputs = prov.get("inputs")
    if not isinstance(inputs, dict) or not inputs:
        return None
    keys = [r.key for r in ds.runs]
    # (a run's part of its EEG file and its own timing, where given: datasets without them keep their fingerprints)
    doc = {"runs": keys, "inputs": {k: [inputs.get(k, {}).get("eeg_sha1"), inputs.get(k, {}).get("bold_sha1"), inputs.get(k, {}).get("volumes")]
                                    + [inputs[k][x] for x in ("eeg_span_s", "given") if inputs.get(k, {}).get(x)]
                                    for k in keys}, "prepare": _fingerprint_options(ds.config)}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


#: Prepare options added after fingerprints were first recorded, left out of them at their default (the value every dataset
#: prepared before had): a new option must not make every earlier dataset and trained run read as changed.
_LATER_OPTIONS = {"physio_incomplete": "error", "slow_potential": None}


def _fingerprint_options(config: PrepareConfig | None) -> dict | None:
    if config is None:
        return None
    d = config.to_dict()
    return {k: v for k, v in d.items() if not (k in _LATER_OPTIONS and v == _LATER_OPTIONS[k])}


def recorded_input(ds: PreparedDataset, key: str, kind: str) -> Path | None:
    """The input file (``kind`` ``"eeg"`` or ``"bold"``) the manifest records for run ``key``, as a usable path.

    Manifests written before 2026-12-04 (session 10) hold these paths as given to ``prepare``, relative to the folder it
    ran in: such a path is looked up beside the recorded BIDS root (where that folder was, for a relative root) and, failing
    that, from the BIDS root down (``sub-...``).
    """
    prov = ds.provenance if isinstance(ds.provenance, dict) else {}
    info = (prov.get("inputs") or {}).get(key)
    value = info.get(kind) if isinstance(info, dict) else None
    if not value:
        return None
    path = Path(str(value))
    if path.is_absolute() or path.exists() or not prov.get("bids_root"):
        return path
    root = Path(prov["bids_root"])
    parts = path.parts
    for cand in (root.parent / path, *(root.joinpath(*parts[i:]) for i, part in enumerate(parts) if part.startswith("sub-"))):
        if cand.exists():
            return cand
    return path


def rois_to_voxels(rois: dict, values: np.ndarray, n_voxels: int) -> np.ndarray:
    """ROI values ``(..., n_rois)`` painted on the mask's voxels ``(..., n_voxels)``.

    Each voxel takes the mean of the values of the ROIs that cover it, weighted by its membership in each: its
    atlas weight relative to the ROI's largest (``rois["weights"]``: rows = ROIs, cols = voxels), so 1 for every
    voxel of a binary ROI; 0 where no ROI covers it. A labels atlas (no overlap) gives each voxel its ROI's value;
    overlapping spheres give a voxel the mean of its spheres' values, as nilearn's ``NiftiSpheresMasker``
    (``allow_overlap=True``) ``inverse_transform`` does.
    """
    values = np.asarray(values)
    w = rois["weights"]
    rows, cols, vals = (np.asarray(w[k]) for k in ("rows", "cols", "values"))
    n_rois = int(values.shape[-1])
    peak = np.zeros(max(n_rois, int(rows.max()) + 1 if len(rows) else 0))
    np.maximum.at(peak, rows, vals)
    member = np.where(peak[rows] > 0, vals / np.where(peak[rows] > 0, peak[rows], 1.0), 0.0)
    from scipy.sparse import csr_matrix

    m = csr_matrix((member, (cols, rows)), shape=(n_voxels, n_rois))  # voxels x ROIs memberships
    flat = values.reshape(-1, n_rois).astype(np.float64)
    ok = np.isfinite(flat)  # a NaN ROI value (e.g. the r of a constant ROI) leaves out that ROI, not its neighbours' overlap
    num = np.asarray(m @ np.where(ok, flat, 0.0).T).T  # (n, n_voxels)
    den = np.asarray(m @ ok.T.astype(np.float64)).T
    covered = np.asarray(m.sum(axis=1)).ravel() > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    out[:, ~covered] = 0.0
    dtype = values.dtype if values.dtype.kind == "f" else np.float32
    return out.reshape(values.shape[:-1] + (n_voxels,)).astype(dtype, copy=False)


def _write_run(folder: Path, i: int, r: PreparedRun) -> dict:
    np.save(folder / f"run{i:03d}_features.npy", np.ascontiguousarray(r.features, dtype=np.float32))
    if r.bold is not None:
        np.save(folder / f"run{i:03d}_bold.npy", np.ascontiguousarray(r.bold, dtype=np.float32))
    np.save(folder / f"run{i:03d}_onsets.npy", np.asarray(r.onsets, dtype=np.float64))
    np.save(folder / f"run{i:03d}_window_end.npy", np.asarray(r.window_end, dtype=np.int64))
    meta = dict(index=i, key=r.key, subject=r.subject, n_volumes=r.n_volumes, features_shape=list(r.features.shape),
                bold_shape=None if r.bold is None else list(r.bold.shape))
    if r.bad_spans is not None and len(r.bad_spans):
        meta["bad_spans"] = np.asarray(r.bad_spans, dtype=float).tolist()
    if r.physio is not None:
        np.save(folder / f"run{i:03d}_physio.npy", np.ascontiguousarray(r.physio, dtype=np.float32))
        meta["physio_names"] = list(r.physio_names or [])
    return meta


def _write_common(folder: Path, ds: PreparedDataset, runs_meta: list[dict]) -> None:
    import nibabel as nib

    from eeg2fmri.io.bold import grid_image

    nib.save(grid_image(ds.mask.astype(np.uint8), ds.affine, ds.xform_code), folder / "mask.nii.gz")
    (folder / "manifest.json").write_text(json.dumps(final_paths(ds._manifest(runs_meta)), indent=1), encoding="utf-8")


def load_prepared(path: str | os.PathLike, *, mmap: bool = True) -> PreparedDataset:
    """Open a prepared dataset; arrays are memory-mapped (read-only) by default."""
    import nibabel as nib

    path = Path(path).expanduser()
    man_path = path / "manifest.json"
    if not man_path.exists():
        raise Eeg2fmriInputError(f"{path}: expected a prepared dataset with manifest.json, found none; create it with `eeg2fmri prepare`.")
    man = json.loads(man_path.read_text(encoding="utf-8"))
    if man.get("kind") != "eeg2fmri-prepared" or man.get("format_version") != FORMAT_VERSION:
        raise Eeg2fmriInputError(f"{man_path}: not an eeg2fmri prepared dataset of format {FORMAT_VERSION}; re-run `eeg2fmri prepare`.")
    mode = "r" if mmap else None
    runs = []
    for rm in man["runs"]:
        i = rm["index"]
        bold_p = path / f"run{i:03d}_bold.npy"
        runs.append(PreparedRun(rm["key"], rm["subject"], np.load(path / f"run{i:03d}_features.npy", mmap_mode=mode),
                                np.load(path / f"run{i:03d}_window_end.npy"),
                                np.load(bold_p, mmap_mode=mode) if bold_p.exists() else None, np.load(path / f"run{i:03d}_onsets.npy"),
                                np.asarray(rm["bad_spans"], dtype=float).reshape(-1, 2) if rm.get("bad_spans") else None,
                                np.load(path / f"run{i:03d}_physio.npy") if rm.get("physio_names") is not None else None,
                                rm.get("physio_names")))
    mask = np.asarray(nib.load(path / "mask.nii.gz").dataobj) > 0
    # (a manifest from before drop_volumes kept every volume: not "auto")
    ds = PreparedDataset(runs, mask, np.asarray(man["affine"]), man["tr"], man["sfreq"], man["ch_names"], PrepareConfig.from_dict({"drop_volumes": 0, **man["config"]}),
                         float(man["frame_rate"]), man.get("freqs"), man.get("provenance", {}), man.get("rois"))
    art = training_artifact_summary(ds)
    if art and art["detected"]:  # (user test 20: after prepare's one warning nothing said it; EEG decoding 0.40 instead of 0.82)
        from eeg2fmri.utils.logs import warn_once_per_process

        warn_once_per_process(f"{path}: prepare found the EEG uncorrected for MRI gradient artefacts in {art['detected']} of its "
                              f"{art['runs']} run(s) (manifest: provenance.inputs.*.gradient_artifact_check): models trained on it learn "
                              "from the artefact and EEG features decode little; prepare again with --clean gradient (or gradient,bcg)")
    return ds


def model_prepare_config(ds: PreparedDataset) -> dict[str, Any]:
    """The preprocessing a model trained on ``ds`` must be given again at synthesis: ``ds.config`` with the line
    frequency every run was notched at (``notch=None`` takes it from each recording's ``line_freq``, which a BIDS
    sidecar or FIF file carries and a bare ``.vhdr``/``.edf`` does not), so that synthesis filters as training did."""
    cfg = ds.config.to_dict()
    if cfg.get("notch") is None:
        used = {v.get("notch_hz") for v in (ds.provenance or {}).get("inputs", {}).values()}
        if len(used) == 1 and None not in used:
            cfg["notch"] = used.pop()
    return cfg


def training_notch_summary(ds: PreparedDataset) -> dict[str, int] | None:
    """The training runs counted by the power-line frequency prepare notched them at (``{"50": 2, "60": 2}``; ``"none"``
    for runs not notched), from ``ds``'s provenance; ``None`` when it records no run. Saved with a model (model.json
    ``training_notch_hz``), so that synthesis can say when a recording declaring no line frequency is left unnotched
    while the training runs were notched (user test 54: sites at 50 and 60 Hz leave ``prepare.notch`` empty)."""
    inputs = (ds.provenance or {}).get("inputs", {})
    if not inputs:
        return None
    out: dict[str, int] = {}
    for v in inputs.values():
        hz = v.get("notch_hz") if isinstance(v, dict) else None
        key = "none" if hz is None else f"{float(hz):g}"
        out[key] = out.get(key, 0) + 1
    return out


#: Channel types of physiological recordings beside the EEG (MNE's names): their rhythms are in the EEG's artefacts too.
PHYSIOLOGY_TYPES = ("ecg", "resp", "bio")


def physiology_unregressed(ds: PreparedDataset) -> list[str]:
    """The physiological channel types (``ecg``, ``resp``, ``bio``) the recordings of ``ds`` carry beside the EEG (and
    ``"BIDS physio files"`` where runs have ``*_physio.tsv.gz`` files) when no
    confounds were regressed from its BOLD (prepare option ``confounds`` empty), else ``[]``: the pulse artefact and
    breathing drifts of the EEG share the cardiac and respiratory rhythms with the BOLD's physiological noise, so EEG
    features can predict that noise (user test 57: a whole-mask r 0.064 called above chance was 0.002 once physiological
    regressors were removed from the BOLD)."""
    if ds.config.confounds or getattr(ds.config, "physio", None):
        return []
    inputs = [v for v in (ds.provenance or {}).get("inputs", {}).values() if isinstance(v, dict)]
    found = {str(t) for v in inputs for t in ((v.get("channels_not_used") or {}).get("non_eeg") or {}).values()}
    files = ["BIDS physio files"] if any(v.get("physio_files") for v in inputs) else []  # (user test 58: scanner-recorded physiology)
    return sorted(found & set(PHYSIOLOGY_TYPES)) + files


def training_artifact_summary(ds: PreparedDataset) -> dict[str, int] | None:
    """How many of ``ds``'s runs prepare's gradient-artefact check ran on and how many it flagged (``None`` if it ran on
    none): saved with a model, so that synthesis knows whether its training EEG had such artefacts."""
    checks = [v["gradient_artifact_check"] for v in (ds.provenance or {}).get("inputs", {}).values() if isinstance(v.get("gradient_artifact_check"), dict)]
    if not checks:
        return None
    return {"runs": len(checks), "detected": int(sum(bool(c.get("detected")) for c in checks))}


def subject_labels(subjects: Sequence[str], *, where: str = "subjects") -> list[str]:
    """Subject labels without a ``sub-`` prefix, in the given order, duplicates dropped.

    Parameters
    ----------
    subjects : sequence of str | str
        Labels such as ``"01"`` or ``"sub-01"`` (one label may be given as a string).
    where : str
        Name used in error messages (e.g. ``"config: data.subjects"``).

    Returns
    -------
    list of str

    Raises
    ------
    Eeg2fmriInputError
        When ``subjects`` is empty or holds something other than non-empty strings.
    """
    if isinstance(subjects, str):
        subjects = [subjects]
    if not isinstance(subjects, Sequence):
        raise Eeg2fmriInputError(f"{where}: expected a list of subject labels, got {subjects!r}; pass e.g. ['01', '02'].")
    labels = []
    for s in subjects:
        if not isinstance(s, str) or not s.strip() or s.strip() == "sub-":
            raise Eeg2fmriInputError(f"{where}: expected subject labels (non-empty strings such as '01'), got {s!r}; fix the list.")
        s = s.strip()
        labels.append(s[4:] if s.startswith("sub-") else s)
    if not labels:
        raise Eeg2fmriInputError(f"{where}: expected at least one subject label, got an empty list; list the subjects to use, or give null for all.")
    return list(dict.fromkeys(labels))


def select_subjects(ds: PreparedDataset, subjects: Sequence[str] | None, *, where: str = "subjects") -> PreparedDataset:
    """The dataset restricted to the runs of ``subjects`` (no array is copied).

    Parameters
    ----------
    ds : PreparedDataset
    subjects : sequence of str | None
        Subject labels to keep (a ``sub-`` prefix is ignored); ``None`` keeps
        every subject and returns ``ds`` itself.
    where : str
        Name used in error messages (e.g. ``"config: data.subjects"``).

    Returns
    -------
    PreparedDataset
        Same grid, mask, channels and config; only the kept runs (in their
        original order), and the provenance of their inputs only, so that
        checks against other datasets see just these recordings.

    Raises
    ------
    Eeg2fmriInputError
        Naming the labels that are not in the dataset and listing those that are.
    """
    if subjects is None:
        return ds
    labels = subject_labels(subjects, where=where)
    available = ds.subjects
    unknown = [s for s in labels if s not in available]
    if unknown:
        raise Eeg2fmriInputError(
            f"{where}: expected subjects of the dataset {available}, got unknown subject(s) {unknown}; "
            "use labels from that list (with or without 'sub-')."
        )
    keep = set(labels)
    runs = [r for r in ds.runs if r.subject in keep]
    prov = dict(ds.provenance)
    if isinstance(prov.get("inputs"), dict):
        keys = {r.key for r in runs}
        prov["inputs"] = {k: v for k, v in prov["inputs"].items() if k in keys}
    return replace(ds, runs=runs, provenance=prov)


# ---------------------------------------------------------------------------------------
# EEG


def work_rate(sfreq: float, config: PrepareConfig) -> float:
    """Rate (Hz) at which EEG is filtered and turned into the representation."""
    want = config.work_sfreq if config.work_sfreq is not None else max(100.0, 2.5 * config.resolved(sfreq).needed_fmax())
    return float(min(sfreq, want))


@dataclass(frozen=True)
class LowratePlan:
    """What :func:`load_eeg_lowrate` does to a recording at ``sfreq`` (shared with the torch path of synthesis).

    Attributes
    ----------
    up, down : int
        Polyphase rate change to the work rate ``wsf = sfreq * up / down``.
    wsf : float
    h : array | None
        Anti-aliasing FIR of the rate change (``None`` when ``up == down``).
    l_freq, h_freq : float | None
        Band-pass edges applied at the work rate (``h_freq`` dropped at or above Nyquist).
    notch_freqs : array
        Line frequency and harmonics notched (empty: no notch).
    average_reference : bool
    """

    up: int
    down: int
    wsf: float
    h: np.ndarray | None
    l_freq: float | None
    h_freq: float | None
    notch_freqs: np.ndarray
    average_reference: bool


def lowrate_plan(sfreq: float, config: PrepareConfig, line_freq: float | None = None) -> LowratePlan:
    """The rate change, filters and reference :func:`load_eeg_lowrate` applies to EEG at ``sfreq`` Hz.

    Parameters
    ----------
    sfreq : float
    config : PrepareConfig
    line_freq : float | None
        The recording's ``info["line_freq"]`` (used when ``config.notch`` is ``None``).
    """
    from fractions import Fraction

    from scipy.signal import firwin

    sf = float(sfreq)
    wsf = work_rate(sf, config)
    frac = Fraction(wsf / sf).limit_denominator(1000)
    up, down = frac.numerator, frac.denominator
    wsf = sf * up / down
    # anti-aliasing FIR: shorter than scipy's default (the work rate leaves a guard band above
    # the highest frequency the representation uses), so resampling costs ~3x less
    h = firwin(2 * 6 * max(up, down) + 1, 1.0 / max(up, down), window=("kaiser", 5.0)) if up != down else None
    notch = line_freq if config.notch is None else config.notch
    nyq = wsf / 2
    hf = config.h_freq if config.h_freq is not None and config.h_freq < nyq else None
    freqs = np.arange(notch, nyq - 1, notch) if notch else np.array([])
    return LowratePlan(up, down, wsf, h, config.l_freq, hf, freqs, config.reference == "average")


def load_eeg_lowrate(raw, config: PrepareConfig, *, where: str = "EEG", block_seconds: float = 30.0, check_flat: bool = True,
                     padtype: str = "constant", check_filter_length: bool = True) -> tuple[np.ndarray, float, list[str]]:
    """Read EEG channels in time blocks, resample to the work rate and filter.

    Only EEG channels are kept (others and bad channels are dropped and
    reported). The recording is read once, sequentially, in blocks of
    ``block_seconds`` (with margins so block edges leave no trace), each
    block checked (NaN/Inf) and resampled (polyphase, anti-aliased); the
    band-pass and notch then run at the work rate, channel group by channel
    group. Peak memory is one block at the original rate plus the recording at
    the work rate. Re-referencing happens at the work rate (it commutes with
    these linear steps).

    With ``check_flat``, a channel constant over the whole recording is an
    error and one holding a value for :data:`~eeg2fmri.preprocessing.eeg.FLAT_SECONDS`
    or longer a warning (synthesis, which reads a recording in pieces, checks
    the whole recording itself and passes False).

    ``padtype`` is ``scipy.signal.resample_poly``'s assumption beyond the recording's ends: ``"constant"``
    (zeros, the default), or ``"line"`` for EEG that keeps its electrode offsets (the slow potential: zeros would
    make each offset a step at the ends). With ``check_filter_length`` (prepare), an ``l_freq`` whose high-pass FIR
    is longer than the recording is refused; synthesis's padded chunks skip it (the model fixes ``l_freq``).

    Returns
    -------
    data : array, shape (n_chans, n_times), float32, volts
    sfreq : float
        The work rate.
    ch_names : list of str
    """
    import mne
    from scipy.signal import resample_poly

    types = raw.get_channel_types()
    drop = [c for c, t in zip(raw.ch_names, types) if t != "eeg"] + [c for c in raw.info["bads"] if c in raw.ch_names]
    drop = list(dict.fromkeys(drop))
    if drop:
        logger.info("%s: dropping %d non-EEG/bad channel(s): %s", where, len(drop), ", ".join(drop))
    picks = [c for c in raw.ch_names if c not in drop]
    if not picks:
        raise Eeg2fmriInputError(f"{where}: no EEG channels left after dropping {drop}; check channel types (channels.tsv) or set them with raw.set_channel_types.")
    sf = float(raw.info["sfreq"])
    plan = lowrate_plan(sf, config, raw.info.get("line_freq"))
    up, down, wsf, h = plan.up, plan.down, plan.wsf, plan.h
    n_in = raw.n_times
    n_out = int(np.ceil(n_in * up / down))
    out = np.empty((len(picks), n_out), dtype=np.float32)
    block = max(down, int(block_seconds * sf) // down * down)
    margin = 0 if up == down else int(np.ceil(max(1.0 * sf, 40 * max(up, down) / up) / down)) * down
    from eeg2fmri.preprocessing.eeg import FlatScan, flat_message

    scan = FlatScan(picks, sf)
    pick_idx = [raw.ch_names.index(c) for c in picks]
    for a in range(0, n_in, block):
        s0, s1 = max(0, a - margin), min(n_in, a + block + margin)
        with step("read"):
            x = raw.get_data(picks=pick_idx, start=s0, stop=s1)
        with step("checks"):
            if not np.isfinite(x).all():
                bad = [picks[i] for i in np.where(~np.isfinite(x).all(axis=1))[0]]
                raise Eeg2fmriInputError(f"{where}: channel(s) {bad} contain NaN/Inf; interpolate them (raw.interpolate_bads) or drop them first.")
            if check_flat:
                scan.update(x[:, a - s0 : a - s0 + min(block, n_in - a)])
        with step("resample"):
            if up != down:
                x = resample_poly(x, up, down, axis=1, window=h) if padtype == "constant" else resample_poly(x, up, down, axis=1, window=h, padtype=padtype)
            o0 = (a - s0) * up // down
            o_start = a * up // down
            n_take = min(int(np.ceil(min(block, n_in - a) * up / down)), n_out - o_start)
            out[:, o_start : o_start + n_take] = x[:, o0 : o0 + n_take]
    if check_flat:
        if scan.constant:
            raise Eeg2fmriInputError(f"{where}: channel(s) {scan.constant} are flat (constant); mark them bad and interpolate, or drop them.")
        stretches = scan.stretches()
        if stretches:
            logger.warning("%s: %s", where, flat_message(stretches, n_in / sf))
    hf, freqs = plan.h_freq, plan.notch_freqs
    if plan.l_freq is not None and check_filter_length:  # MNE's high-pass FIR spans 3.3 / transition s (user test 59: its bare
        # warning named no run); not for synthesis's padded chunks (check_filter_length=False: the model fixes l_freq)
        span = 3.3 / min(max(0.25 * float(plan.l_freq), 2.0), float(plan.l_freq))
        if span > n_out / wsf:
            raise Eeg2fmriInputError(
                f"{where}: prepare option l_freq={plan.l_freq:g} Hz needs a {span:.0f}-s high-pass filter, the run lasts {n_out / wsf:.0f} s "
                f"(the filter would distort it); use l_freq >= {3.3 / (n_out / wsf):.3g} Hz, or null for no high-pass.")
    group = max(1, (1 << 22) // max(n_out, 1))
    with step("filter"):
        for g0 in range(0, len(picks), group):
            x = out[g0 : g0 + group].astype(np.float64)
            if plan.l_freq is not None or hf is not None:
                x = mne.filter.filter_data(x, wsf, plan.l_freq, hf, verbose=False)
            if len(freqs):
                x = mne.filter.notch_filter(x, wsf, freqs, verbose=False)
            out[g0 : g0 + group] = x
    if plan.average_reference and len(picks) > 1:
        with step("reference"):
            out -= out.mean(axis=0, keepdims=True)
    return out, wsf, picks


def with_event_regressors(raw, features: np.ndarray, onsets: np.ndarray, tr: float, config: PrepareConfig, *, where: str = "EEG") -> np.ndarray:
    """``features`` ``(n_frames, n_chans, n_feat)`` of a band-power-grid representation with ``config.events``'
    regressors appended (:func:`~eeg2fmri.preprocessing.events.event_regressors` on the frames anchored at ``onsets``);
    a condition without events in this recording is logged (its series is zero)."""
    from eeg2fmri.preprocessing.events import (
        append_events,
        contiguous_ends,
        event_regressors,
        event_times,
    )
    from eeg2fmri.preprocessing.representations.bandpower import frame_starts

    m = int(config.frames_per_tr)
    starts, _ = frame_starts(np.asarray(onsets, dtype=float), float(tr), m, np.inf, where)
    if len(starts) != len(features):
        raise RuntimeError(f"{where}: {len(starts)} frame starts for {len(features)} frames (a bug; please report it)")
    flen = float(tr) / m
    regs = event_regressors(event_times(raw), config.events, starts, flen, ends=contiguous_ends(starts, flen), durations=config.event_durations)
    empty = [c for c, v in zip(config.event_names, regs.T) if not v.any()]
    if empty:
        logger.info("%s: no events of condition(s) %s inside the run's frames (their regressors are zero)", where, empty)
    return append_events(features, regs)


def slow_potential_features(raw, config: PrepareConfig, starts: np.ndarray, flen: float, *, picks: list[str] | None = None,
                            where: str = "EEG") -> np.ndarray:
    """The prepare option ``slow_potential`` of one recording: per channel, the mean over every frame of its signed EEG
    band-passed to ``config.slow_band`` (:func:`~eeg2fmri.preprocessing.representations.bandpower.slow_potential_frames`),
    standardised within the recording.

    The EEG is read again by :func:`load_eeg_lowrate` with ``l_freq`` and ``h_freq`` off (the high-pass would remove the
    band) and otherwise as the other features: the same work rate, channels, notch and reference.

    Parameters
    ----------
    raw : mne.io.BaseRaw
    config : PrepareConfig
        With ``slow_potential`` set (``bands`` resolved when ``work_sfreq`` is ``None``).
    starts : array, shape (n_frames,)
        Frame starts (s from the first sample).
    flen : float
        Frame length (s).
    picks : list of str | None
        Channels in this order (the streaming synthesis' channels); ``None``: the EEG channels not marked bad, as
        :func:`load_eeg_lowrate` picks them.

    Returns
    -------
    frames : array, shape (n_frames, n_chans), float32
    """
    from eeg2fmri.preprocessing.representations.bandpower import slow_potential_frames

    if picks is not None:
        raw = raw.copy().pick(list(picks))
        raw.info["bads"] = []
    data, wsf, ch = load_eeg_lowrate(raw, replace(config, l_freq=None, h_freq=None), where=where, check_flat=False, padtype="line")
    if picks is not None and list(ch) != list(picks):
        raise Eeg2fmriInputError(f"{where}: prepare option slow_potential: expected the EEG channels {list(picks)}, found {list(ch)}; "
                                 "give every channel the model reads the type 'eeg' (raw.set_channel_types).")
    return slow_potential_frames(data, wsf, config.slow_band, starts, flen, where=where)


def eeg_representation(raw, config: PrepareConfig, *, tr: float, onsets: np.ndarray | None = None, where: str = "EEG") -> dict[str, Any]:
    """Turn one EEG recording into its continuous representation.

    Parameters
    ----------
    raw : mne.io.BaseRaw
    config : PrepareConfig
    tr : float
        Repetition time (s).
    onsets : array | None
        Volume onsets (s from EEG start); ``None`` (EEG-only use) takes a
        regular grid from the first sample.

    Returns
    -------
    rep : dict
        ``features`` (continuous array, see :class:`PreparedRun`),
        ``window_end`` (n_volumes,), ``frame_rate``, ``freqs``, ``ch_names``,
        ``onsets``, ``sfreq`` (original EEG rate).
    """
    config = config.resolved(float(raw.info["sfreq"]))
    data, wsf, ch = load_eeg_lowrate(raw, config, where=where)
    dur = data.shape[1] / wsf
    if onsets is None:
        onsets = np.arange(int(np.floor(dur / tr))) * tr
    onsets = np.asarray(onsets, dtype=np.float64)
    r = get_representation(config.representation).compute(data, wsf, onsets, tr, config, where=where)
    feats, freqs, window_end, frame_rate = r["features"], r["freqs"], r["window_end"], r["frame_rate"]
    if config.slow_band is not None:  # one more entry per channel: the signed slow potential, from EEG without the high-pass
        from eeg2fmri.preprocessing.representations.bandpower import frame_starts

        m = int(config.frames_per_tr)
        starts, _ = frame_starts(onsets, float(tr), m, dur, where)
        del data
        slow = slow_potential_features(raw, config, starts, float(tr) / m, where=where)
        feats = np.concatenate([feats, slow[:, :, None]], axis=2)
        freqs = list(freqs) + [float(np.mean(config.slow_band))]
    return dict(features=feats, window_end=np.asarray(window_end, dtype=np.int64), frame_rate=float(frame_rate), freqs=freqs, ch_names=ch,
                onsets=onsets, sfreq=float(raw.info["sfreq"]))


# ---------------------------------------------------------------------------------------
# whole datasets


def _checksum(path: Path) -> str:
    """Fingerprint of a run's input file *and its companions*: every file next to it that shares its name up to the
    BIDS suffix (``sub-01_task-rest_run-1_``: the ``.vmrk``/``.eeg`` of a ``.vhdr``, the ``.fdt`` of a ``.set``,
    ``channels.tsv``, ``events.tsv``, ``eeg.json``, ``bold.json``; for a BOLD file also fMRIPrep's
    ``*_desc-confounds_timeseries.tsv`` of the run) or, without one, its stem, plus the sidecars at the
    dataset's top level that BIDS lets runs inherit (``task-<task>_bold.json``); size, modification time and first
    MiB of each. A change to any of them makes ``prepare`` redo the work."""
    path = Path(path)
    name = path.name
    bids = re.search(r"_(eeg|bold)\.", name)  # a BIDS file: its companions share the entities (other suffixes, extensions)
    prefix = name[: bids.start() + 1] if bids else name.split(".", 1)[0] + "."  # else the same stem (.vhdr/.vmrk/.eeg)
    files = sorted(p for p in path.parent.iterdir() if p.is_file() and p.name.startswith(prefix)) if path.parent.is_dir() else []
    if path not in files:
        files.append(path)
    if bids and bids.group(1) == "bold":  # fMRIPrep's confounds of the run (their name drops space/res/desc, so no shared prefix)
        from eeg2fmri.preprocessing.volumes import find_confounds

        try:
            conf = find_confounds(path)
        except Eeg2fmriInputError:
            conf = None
        if conf is not None and conf not in files:
            files.append(conf)
    root = next((d for d in path.parents if (d / "dataset_description.json").is_file()), None)
    if root is not None and root != path.parent:
        files += sorted(p for p in root.iterdir() if p.is_file() and p.suffix in (".json", ".tsv") and p.name.startswith("task-"))
    h = hashlib.sha1()
    for f in files:
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
        with open(f, "rb") as fh:
            h.update(fh.read(1 << 20))
    return h.hexdigest()


#: Representations that can carry event regressors (the frame grid of band power).
EVENT_REPRESENTATIONS = ("bandpower", "tangent")


def _event_option_names(option: Any) -> list[str]:
    """The marker names of a list or mapping ``events`` option (as given; its form is checked by resolve_events)."""
    if isinstance(option, Mapping):
        return [n for v in option.values() for n in ([v] if isinstance(v, str) else list(v) if isinstance(v, (list, tuple)) else [])
                if isinstance(n, str)]
    return [n for n in option if isinstance(n, str)] if isinstance(option, (list, tuple)) else []


#: Values of the prepare option ``physio_incomplete``.
PHYSIO_INCOMPLETE = ("error", "trim", "unregressed")


def _check_slow_potential(cfg: PrepareConfig) -> None:
    """The prepare option ``slow_potential``: ``None``, ``"auto"`` or ``[low, high]`` Hz with ``0 < low < high``, band power only."""
    sp = cfg.slow_potential
    if sp is None:
        return
    fix = "e.g. --config '{\"slow_potential\": [0.01, 0.1]}' (or \"auto\": the same band)"
    if isinstance(sp, str):
        if sp != "auto":
            raise Eeg2fmriInputError(f"prepare option slow_potential: expected null, 'auto' or [low, high] in Hz, got {sp!r}; {fix}.")
    else:
        try:
            lo, hi = (float(v) for v in sp)
        except (TypeError, ValueError):
            raise Eeg2fmriInputError(f"prepare option slow_potential: expected null, 'auto' or [low, high] in Hz, got {sp!r}; {fix}.") from None
        if not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo < hi):
            raise Eeg2fmriInputError(f"prepare option slow_potential={[lo, hi]}: expected 0 < low < high (Hz; a low edge of 0 would "
                                     f"keep the electrodes' offsets and drift), got low {lo:g}, high {hi:g}; {fix}.")
    if cfg.representation != "bandpower":
        raise Eeg2fmriInputError(f"prepare option slow_potential: expected representation 'bandpower' (the slow potential is one more "
                                 f"entry after the bands), got {cfg.representation!r}; prepare with --representation bandpower, or "
                                 "leave slow_potential out.")


def _validate_config(cfg: PrepareConfig) -> None:
    from eeg2fmri.io.sync import DUMMY_SCANS
    from eeg2fmri.utils.validation import check_choice

    check_positive_int(cfg.frames_per_tr, "frames_per_tr")
    check_choice(cfg.representation, "representation", REPRESENTATIONS)
    check_choice(cfg.dummy_scans, "dummy_scans", DUMMY_SCANS)
    from eeg2fmri.preprocessing.physio import check_physio_option

    check_physio_option(cfg.physio)
    check_choice(cfg.physio_incomplete, "physio_incomplete", PHYSIO_INCOMPLETE)
    dv = cfg.drop_volumes
    if not (dv == "auto" or (isinstance(dv, (int, np.integer)) and not isinstance(dv, bool) and dv >= 0)):
        raise Eeg2fmriInputError(f"prepare option drop_volumes: expected 'auto' or a whole number >= 0 of leading volumes to leave out, "
                                 f"got {dv!r}; e.g. --config '{{\"drop_volumes\": 3}}' (0 keeps every volume).")
    if cfg.tr is not None:
        check_positive(cfg.tr, "tr")
    if cfg.resample_tr is not None:
        check_positive(cfg.resample_tr, "resample_tr")
    if cfg.events is not None:
        from eeg2fmri.preprocessing.events import resolve_events

        if cfg.representation not in EVENT_REPRESENTATIONS:
            raise Eeg2fmriInputError(f"prepare option events: expected representation one of {list(EVENT_REPRESENTATIONS)} (event regressors "
                                     f"are stored on their frame grid), got {cfg.representation!r}; prepare with --representation bandpower "
                                     "(or tangent), or leave events out.")
        if not isinstance(cfg.events, str):  # (a name list or mapping: its form checked here; names against the runs later)
            resolve_events(cfg.events, [{n: 1 for n in _event_option_names(cfg.events)}])
    ed = cfg.event_durations
    if ed is not None:
        if cfg.events is None:
            raise Eeg2fmriInputError(f"prepare option event_durations={ed!r}: expected together with the option events (durations of its "
                                     "conditions); add events or drop event_durations.")
        if not isinstance(ed, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) and v >= 0
                                                for v in ed.values()):
            raise Eeg2fmriInputError(f"prepare option event_durations: expected a mapping condition -> seconds >= 0, got {ed!r}; e.g. "
                                     "{\"checkerboard\": 20} (0: no block duration for that condition).")
    if cfg.channel_positions is not None and not cfg.channels:
        raise Eeg2fmriInputError(f"prepare option channel_positions={cfg.channel_positions!r}: expected together with channels=[training channel names]; add channels or drop channel_positions.")
    if isinstance(cfg.bands, str) and cfg.bands != "auto":
        raise Eeg2fmriInputError(f"prepare option bands: expected 'auto' or a mapping name -> [low, high] in Hz, got {cfg.bands!r}.")
    if cfg.clean is not None:
        from eeg2fmri.preprocessing.cleaning import check_clean_options

        check_clean_options(cfg.clean)
    if cfg.reference not in (None, "average"):
        raise Eeg2fmriInputError(
            f"prepare option reference: expected 'average' or null (keep the recordings' own reference), got {cfg.reference!r}; "
            "to use another reference (e.g. one channel), re-reference the recordings first (MNE: raw.set_eeg_reference(['Cz']))."
        )
    for name in ("l_freq", "h_freq", "notch", "work_sfreq"):
        if getattr(cfg, name) is not None:
            check_positive(getattr(cfg, name), name, where="prepare option", fix=f"or null to switch {name} off" if name != "work_sfreq" else "or null for the automatic rate")
    if cfg.l_freq is not None and cfg.h_freq is not None and float(cfg.h_freq) <= float(cfg.l_freq):
        raise Eeg2fmriInputError(f"prepare options l_freq={cfg.l_freq!r}, h_freq={cfg.h_freq!r}: expected h_freq above l_freq (a band-pass); swap or drop one.")
    if isinstance(cfg.bands, dict) and cfg.representation in ("bandpower", "tangent"):  # (user test 59: a band below the high-pass
        # was prepared as filter noise without a word; stft/raw read no bands: only the reference's view, which drops what it cannot use)
        for name, edges in cfg.bands.items():
            try:
                lo, hi = (float(v) for v in edges)
            except (TypeError, ValueError):
                raise Eeg2fmriInputError(f"prepare option bands[{name!r}]: expected [low, high] in Hz, got {edges!r}.") from None
            if not 0 < lo < hi:
                raise Eeg2fmriInputError(f"prepare option bands[{name!r}]={[lo, hi]}: expected 0 < low < high (Hz).")
            if cfg.l_freq is not None and hi <= float(cfg.l_freq):
                raise Eeg2fmriInputError(
                    f"prepare option bands[{name!r}]={[lo, hi]} Hz lies below l_freq={cfg.l_freq!r} Hz: the high-pass removes it, so its power "
                    "would be filter noise; lower l_freq below the band (null: no high-pass) or drop the band. Note that band power is an "
                    "envelope: the sign of a slow potential is lost either way.")
            if cfg.l_freq is not None and lo < float(cfg.l_freq):
                warn_once_per_process(f"prepare option bands[{name!r}]={[lo, hi]} Hz starts below l_freq={cfg.l_freq!r} Hz: its part below "
                                      "the high-pass is filtered out")
    _check_slow_potential(cfg)
    check_positive(cfg.raw_sfreq, "raw_sfreq", where="prepare option")
    for name in ("stft_fmin", "stft_fmax", "atlas_radius"):
        check_positive(getattr(cfg, name), name, where="prepare option")
    if cfg.first_onset is not None and not isinstance(cfg.first_onset, dict):
        _check_onset(cfg.first_onset, "first_onset")
    elif isinstance(cfg.first_onset, dict):
        for key, value in cfg.first_onset.items():
            _check_onset(value, f"first_onset[{key!r}]")
    if cfg.marker is not None and not isinstance(cfg.marker, str) and not (isinstance(cfg.marker, (list, tuple)) and all(isinstance(m, str) for m in cfg.marker)):
        raise Eeg2fmriInputError(f"prepare option marker: expected a list of marker names (e.g. ['R128', 'Volume']) or null, got {cfg.marker!r}.")
    if cfg.mask not in ("data", "mni", "fmriprep") and not Path(str(cfg.mask)).is_file():
        raise Eeg2fmriInputError(f"prepare option mask: expected 'data', 'mni', 'fmriprep' or the path of a mask NIfTI, got {cfg.mask!r} (no such file); check the path.")
    if isinstance(cfg.grid, os.PathLike) or (isinstance(cfg.grid, str) and cfg.grid != "first"):
        reference_grid(cfg.grid)  # a reference image: read (its header) now, so that a wrong path fails before any run is read
    if isinstance(cfg.grid, (str, os.PathLike)) and cfg.voxel_size is not None:
        raise Eeg2fmriInputError(f"prepare options grid={cfg.grid!r} and voxel_size={cfg.voxel_size!r}: expected one way of naming the grid; drop one.")
    resampled = cfg.voxel_size is not None or (cfg.grid is not None and cfg.grid != "first")
    if cfg.mask == "fmriprep" and resampled:  # (user test 47: refused only after minutes of resampling, and naming --derivatives)
        what = f"voxel_size={cfg.voxel_size!r}" if cfg.voxel_size is not None else f"grid={cfg.grid!r}"
        raise Eeg2fmriInputError(f"prepare options mask='fmriprep' and {what}: expected the BOLD's own grid with fMRIPrep's brain "
                                 "masks (they are on that grid); with a resampled grid use mask 'mni' (BOLD in MNI space) or 'data', "
                                 f"or drop {what.split('=')[0]}.")


def _check_onset(value: Any, name: str) -> float:
    """A volume-0 onset in seconds (a real number; negative: the EEG started after the first volume)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not np.isfinite(float(value)):
        raise Eeg2fmriInputError(f"prepare option {name}: expected the onset of volume 0 in seconds from the EEG's start (a number), got {value!r}.")
    return float(value)


def _headers(records: list, *, events: bool = False, marker: Any = None) -> list[tuple[float, list[str], list[str], float, dict]]:
    """Sampling rate, EEG channels (typed EEG, not marked bad), all EEG channels (bad ones too, in file order), the
    low-pass edge the recording declares (MNE's ``info["lowpass"]``: the Nyquist frequency when it declares none) and,
    with ``events``, its stimulus-like events (:func:`~eeg2fmri.preprocessing.events.stimulus_events`: name -> onsets,
    durations; else ``{}``) of every run, from its header.

    Read quietly: the runs are read again when they are prepared, and report there (once).
    """
    import mne

    from eeg2fmri.io.layouts import read_layout_eeg
    from eeg2fmri.preprocessing.events import run_marker_names, stimulus_events

    muted, logger.disabled = logger.disabled, True
    try:
        out = []
        for rec in records:
            raw = read_layout_eeg(rec, preload=False)
            good = [raw.ch_names[i] for i in mne.pick_types(raw.info, eeg=True, exclude="bads")]
            lowpass = raw.info.get("lowpass")
            lowpass = float(lowpass) if lowpass is not None and np.isfinite(lowpass) and lowpass > 0 else float(raw.info["sfreq"]) / 2.0
            out.append((float(raw.info["sfreq"]), good, [raw.ch_names[i] for i in mne.pick_types(raw.info, eeg=True, exclude=[])], lowpass,
                        stimulus_events(raw, run_marker_names(rec, marker)) if events else {}))
        return out
    finally:
        logger.disabled = muted


def _resolve_config(cfg: PrepareConfig, records: list) -> PrepareConfig:
    """``cfg`` checked against the runs found and completed from their headers: ``bands="auto"`` -> the bands of the
    lowest sampling rate; runs whose EEG channels differ only in order or in the spelling of their names (case, an ``EEG``
    prefix, a reference suffix: :func:`~eeg2fmri.preprocessing.channels.channel_key`) -> ``channels`` = the first run's,
    so every run is read in one order under one set of names."""
    if isinstance(cfg.first_onset, dict):
        unknown = sorted(set(cfg.first_onset) - {rec.key for rec in records})
        if unknown:
            raise Eeg2fmriInputError(f"prepare option first_onset names run(s) {unknown} that are not in the data set; the runs are "
                                     f"{sorted(rec.key for rec in records)}.")
    heads = _headers(records, events=cfg.events is not None, marker=cfg.marker)
    if cfg.events is not None:
        from eeg2fmri.preprocessing.events import condition_durations, resolve_events

        once = {}  # (one file listed for several runs: its events counted once)
        for h, rec in zip(heads, records):
            once.setdefault(str(rec.eeg_path), h[4])
        conds = resolve_events(cfg.events, [{k: v[0] for k, v in f.items()} for f in once.values()])
        # the recordings' block durations, with the ones given on top (a duration of 0 switches a condition's off)
        durations = {**condition_durations(list(once.values()), conds), **dict(cfg.event_durations or {})}
        durations = {c: d for c, d in durations.items() if d}
        unknown = sorted(set(durations) - set(conds))
        if unknown:
            raise Eeg2fmriInputError(f"prepare option event_durations: expected durations of the conditions {list(conds)}, got {unknown} "
                                     "as well; name the conditions of the option events.")
        logger.info("event regressors (prepare option events): %s", "; ".join(
            f"{c} = {' + '.join(map(repr, n))}" + (f" (blocks of {durations[c]:g} s)" if c in durations else "") for c, n in conds.items()))
        cfg = replace(cfg, events=conds, event_durations=durations or None)
    low, path = min((h[0], rec.eeg_path) for h, rec in zip(heads, records))
    if cfg.h_freq is not None and float(cfg.h_freq) >= low / 2.0:
        raise Eeg2fmriInputError(f"{path}: prepare option h_freq={cfg.h_freq} Hz is at or above the Nyquist frequency ({low / 2:g} Hz) of "
                                 f"this recording's {low:g} Hz, so it would filter nothing; choose h_freq below {low / 2:g} Hz or null.")
    if isinstance(cfg.bands, str):
        from eeg2fmri.preprocessing.eeg import auto_bands

        rate = low if cfg.work_sfreq is None else min(low, float(cfg.work_sfreq))
        # a recording low-pass filtered below its Nyquist frequency (e.g. ds002336's eeg_pp: 200 Hz, low-passed at 50 Hz,
        # declared in its header) has no signal above that edge: bands are chosen as for a rate of twice the edge
        # (user test 17: a 55-80 Hz band of filter noise)
        edge, edge_path = min((h[3], rec.eeg_path) for h, rec in zip(heads, records))
        if 2.0 * edge < rate - 1e-9:
            logger.info("%s declares a low-pass at %g Hz: the automatic bands stop below it (as for %g Hz sampling)", edge_path.name, edge, 2.0 * edge)
            rate = 2.0 * edge
        cfg = replace(cfg, bands=auto_bands(rate))
    rates = sorted({h[0] for h in heads})
    if len(rates) > 1:  # recordings at several rates: every run filtered and turned into features at one work rate
        if cfg.work_sfreq is not None and float(cfg.work_sfreq) > low:
            raise Eeg2fmriInputError(
                f"{path}: sampled at {low:g} Hz, below prepare option work_sfreq={cfg.work_sfreq} Hz, while other runs are sampled at "
                f"{', '.join(f'{r:g}' for r in rates[1:])} Hz: the runs would be worked at different rates. Choose work_sfreq at or "
                f"below {low:g} Hz, or null (the automatic rate)."
            )
        if cfg.work_sfreq is None:
            cfg = replace(cfg, work_sfreq=work_rate(low, cfg))
        logger.info("the runs are sampled at %s Hz: every run is filtered and turned into features at %g Hz",
                    ", ".join(f"{r:g}" for r in rates), float(cfg.work_sfreq))
    first = heads[0][1]
    kind = compare_run_channels([h[1] for h in heads], [h[2] for h in heads]) if cfg.channels is None else "same"
    if kind == "spelling":
        logger.info("the runs' EEG channels differ only in order or in the spelling of their names; every run is read in the "
                    "first run's order (%s)", records[0].eeg_path.name)
        cfg = replace(cfg, channels=list(first))
    elif kind == "bads":
        # channels a run marks bad (channels.tsv status, raw.info['bads']) that are good elsewhere: every run keeps the
        # whole cap (the first run's EEG channels, bad or not, in its file order), and a run's bad ones are interpolated
        # there from its electrode positions, as the prepare option channels does
        marked = {rec.eeg_path.name: [c for c in h[2] if c not in h[1]] for rec, h in zip(records, heads)}
        logger.info("the runs' EEG channels differ only by the channels some runs mark bad; every run keeps all %d and its "
                    "bad ones are interpolated from electrode positions (prepare option channels): %s", len(heads[0][2]),
                    "; ".join(f"{k}: {', '.join(v)}" for k, v in marked.items() if v))
        cfg = replace(cfg, channels=list(heads[0][2]))
    elif kind == "differ":  # refused before any run is prepared (the same check as after preparing them)
        _check_channel_lists([h[1] for h in heads], records)
    if cfg.slow_potential is not None:  # the band itself in the manifest ("auto" resolved)
        cfg = replace(cfg, slow_potential=[float(v) for v in cfg.slow_band])
    return cfg


def _fmriprep_brain_mask(img, which: str = "the first run") -> Path:
    """fMRIPrep's ``*_desc-brain_mask.nii.gz`` beside a ``*_desc-preproc_bold.nii.gz`` (prepare option ``mask="fmriprep"``)."""
    name = img if isinstance(img, (str, os.PathLike)) else img.get_filename()
    if not name or "_desc-preproc_bold" not in Path(name).name:
        raise Eeg2fmriInputError(f"{name or 'BOLD image'}: prepare option mask='fmriprep' needs fMRIPrep's preprocessed BOLD "
                                 "(*_desc-preproc_bold.nii.gz, read from its file, not resampled: no grid/voxel_size); prepare from "
                                 "the derivatives (--derivatives, --space) or use mask 'data'.")
    path = Path(name).with_name(Path(name).name.replace("_desc-preproc_bold", "_desc-brain_mask"))
    if not path.is_file():
        raise Eeg2fmriInputError(f"{path}: prepare option mask='fmriprep' expected fMRIPrep's brain mask of {which} here, "
                                 "found none; give a mask's path as mask, or use mask 'data'.")
    return path


def _check_mask_grid(mask_path, mimg, img) -> None:
    """A mask NIfTI must be on the BOLD's grid (same shape and voxel-to-world affine): it is applied by voxel index."""
    if mimg.shape[:3] != img.shape[:3]:
        raise Eeg2fmriInputError(f"{mask_path}: mask grid {mimg.shape[:3]} differs from the BOLD grid {img.shape[:3]}; resample it to the BOLD grid first, with nearest-neighbour interpolation (nilearn: resample_to_img(mask, bold, interpolation='nearest', force_resample=True, copy_header=True).to_filename(...)).")
    from eeg2fmri.io.bold import GRID_ATOL_MM, affine_difference_mm

    diff = affine_difference_mm(mimg.affine, img.affine)
    if diff > GRID_ATOL_MM:  # the same shape is not the same grid: the mask is applied by voxel index
        raise Eeg2fmriInputError(
            f"{mask_path}: voxel-to-world affine differs from the BOLD's ({img.get_filename()}) by up to {diff:.3g} (mm), although the grid "
            "shapes agree: the mask would select other places than it marks. Resample it onto the BOLD grid first "
            "(nilearn.image.resample_to_img(mask, bold, interpolation='nearest'))."
        )


def _mask_volume(mask_path, mimg) -> np.ndarray:
    """A mask NIfTI's voxels as a 3D bool array: a trailing singleton axis (``(X, Y, Z, 1)``, as FSL and AFNI tools
    write masks) is dropped, as nilearn does (an audit: it crashed with an IndexError); a mask that selects nothing, or
    one with more volumes, is refused with the file named."""
    data = np.asarray(mimg.dataobj)
    if data.ndim > 3 and all(n == 1 for n in data.shape[3:]):
        data = data.reshape(data.shape[:3])
    if data.ndim != 3:
        raise Eeg2fmriInputError(f"{mask_path}: expected a 3D mask (one volume), found shape {data.shape}; save the one volume to use "
                                 "(nibabel: img.slicer[..., 0]).")
    mask = data > 0
    if not mask.any():
        raise Eeg2fmriInputError(f"{mask_path}: the mask selects no voxel (no value above 0); pass a mask with the brain's voxels "
                                 "set to 1, or leave the prepare option mask out (the mask is then computed from the BOLD).")
    return mask


def _resolve_mask(cfg: PrepareConfig, img, records: list | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The BOLD mask, and the first run's masked data when computing the mask needed it anyway.

    ``mask="fmriprep"``: the intersection of every run's fMRIPrep brain mask (``records``: the runs; the first is ``img``'s),
    so that no run contributes voxels outside its own brain mask.
    """
    import nibabel as nib

    if cfg.mask == "data":
        data, mask, _ = load_masked_bold(img, None, where=str(img.get_filename()))
        return mask, data
    if cfg.mask == "mni":
        from eeg2fmri.io.bold import bids_space_entity, grid_space, xform_code
        from eeg2fmri.preprocessing.volumes import mni_mask

        where = str(img.get_filename() or "the first run's BOLD")
        ent = bids_space_entity(where) if img.get_filename() else None
        if grid_space(xform_code(img), ent) == "native":  # user test 19: accepted silently, 1,360 of 2,930 mask voxels outside the brain
            said = f"its file name's space-{ent}" if ent else f"its header (sform/qform code {xform_code(img)}: scanner space)"
            logger.warning("%s: prepare option mask='mni' places the MNI152 brain mask on this grid by its world coordinates, but %s "
                           "says the BOLD is not in MNI space, so the mask need not cover the brain. Expected BOLD in MNI space "
                           "(e.g. fMRIPrep's space-MNI152NLin2009cAsym); for native-space BOLD leave mask out (the data mask) or "
                           "pass a brain mask on the BOLD grid (mask: PATH).", where, said)
        return np.asarray(mni_mask(img), dtype=bool), None
    if cfg.mask != "fmriprep":
        mimg = nib.load(cfg.mask)
        _check_mask_grid(cfg.mask, mimg, img)
        return _mask_volume(cfg.mask, mimg), None
    paths = [_fmriprep_brain_mask(img)]
    paths += [_fmriprep_brain_mask(rec.bold_path, f"run {rec.key}") for rec in (records or [])[1:]]
    masks = []
    for path in paths:
        mimg = nib.load(path)
        _check_mask_grid(path, mimg, img)
        masks.append(_mask_volume(path, mimg))
    mask = np.logical_and.reduce(masks)
    if not mask.any():
        raise Eeg2fmriInputError(f"{paths[0]}: prepare option mask='fmriprep': the runs' fMRIPrep brain masks ({len(paths)}) have no voxel in "
                                 "common; check that every run is in the same --space, or give a mask's path as mask.")
    lost = int(masks[0].sum() - mask.sum())
    if lost:
        logger.info("mask='fmriprep': %d of the first run's %d brain-mask voxels lie outside another run's brain mask and are left out "
                    "(the intersection of %d runs' masks: %d voxels)", lost, int(masks[0].sum()), len(paths), int(mask.sum()))
    return mask, None


def _absolute_grid(cfg: PrepareConfig) -> PrepareConfig:
    """``cfg`` with a reference image's path (``grid``) as one absolute string: a ``pathlib.Path`` goes into the manifest's
    JSON, and the same file spelt relatively, absolutely or from another folder is one config (prepare's no-op check)."""
    if isinstance(cfg.grid, os.PathLike) or (isinstance(cfg.grid, str) and cfg.grid != "first"):
        return replace(cfg, grid=str(Path(os.path.expanduser(os.fspath(cfg.grid))).absolute()))
    return cfg


def _reference_grid_changed(cfg: PrepareConfig, manifest: dict) -> bool:
    """``grid`` names a reference image whose grid is no longer the one the prepared folder is on (its manifest's
    ``grid_shape`` and ``affine``): the file was replaced since, e.g. the first site prepared again at another voxel size."""
    if not isinstance(cfg.grid, str) or cfg.grid == "first":
        return False
    from eeg2fmri.io.bold import GRID_ATOL_MM, affine_difference_mm

    shape, affine = reference_grid(cfg.grid)
    old_affine = manifest.get("affine")
    return (list(shape) != list(manifest.get("grid_shape") or []) or old_affine is None
            or affine_difference_mm(np.asarray(old_affine, float), affine) > GRID_ATOL_MM)


def _warn_outside_fov(rec, cfg: PrepareConfig, bold: np.ndarray) -> None:
    """Warn about the mask voxels a run resampled onto one grid (``grid`` ``"first"`` or a reference image) has no data for."""
    outside = int(np.count_nonzero(~np.any(bold != 0, axis=0)))
    if outside:
        onto = "the first run's grid" if cfg.grid == "first" else f"the grid of {cfg.grid}"
        fix = "Put the run with the smallest field of view first, or pass" if cfg.grid == "first" else "Pass"
        logger.warning("%s: %d of %d mask voxels lie outside this run's field of view (zero after resampling onto %s); they carry "
                       "no signal for this run. %s a mask inside every run's box (prepare option mask).", rec.bold_path, outside,
                       bold.shape[1], onto, fix)


def _onto_one_grid(cfg: PrepareConfig) -> bool:
    """Every run is resampled onto one given grid (``grid`` is ``"first"`` or a reference image): some runs' mask voxels
    may then lie outside their own field of view."""
    return isinstance(cfg.grid, (str, os.PathLike))


def _read_bold_on_grid(rec, cfg: PrepareConfig, first_grid: tuple[tuple, np.ndarray] | None = None, source: dict | None = None):
    """A run's BOLD on the grid the config asks for; ``first_grid`` (shape, affine): the first run's, for ``grid="first"``.
    ``source``: filled with the file's own grid (``shape``, ``voxel_mm``, ``oblique``) where the run is resampled."""
    from eeg2fmri.io.layouts import read_layout_bold

    img, tr = read_layout_bold(rec, marker=cfg.marker)
    if source is not None:  # (user test 54: the prepare summary never said that two runs' BOLD were resampled)
        import nibabel as nib

        a = np.asarray(img.affine, float)
        own = {"shape": [int(v) for v in img.shape[:3]], "voxel_mm": [round(float(v), 3) for v in np.sqrt((a[:3, :3] ** 2).sum(0))],
               "oblique": bool(nib.affines.obliquity(a).max() > 1e-3)}
    if cfg.grid == "first":
        from eeg2fmri.io.bold import GRID_ATOL_MM, affine_difference_mm

        if first_grid is not None and (img.shape[:3] != tuple(first_grid[0]) or affine_difference_mm(img.affine, first_grid[1]) > GRID_ATOL_MM):
            from eeg2fmri.preprocessing.volumes import resample_bold

            img = resample_bold(img, target_shape=tuple(first_grid[0]), target_affine=np.asarray(first_grid[1], float), where=str(rec.bold_path))
            logger.info("%s: resampled onto the first run's grid %s", rec.bold_path, tuple(first_grid[0]))
            if source is not None:
                source.update(own)
    elif isinstance(cfg.grid, (str, os.PathLike)):  # a reference image's grid, for every run (user test 54: a second site onto the first's)
        from eeg2fmri.io.bold import GRID_ATOL_MM, affine_difference_mm

        shape, affine = reference_grid(cfg.grid)
        if img.shape[:3] != shape or affine_difference_mm(img.affine, affine) > GRID_ATOL_MM:
            from eeg2fmri.preprocessing.volumes import resample_bold

            img = resample_bold(img, target_shape=shape, target_affine=affine, where=str(rec.bold_path))
            logger.info("%s: resampled onto the grid of %s %s", rec.bold_path, cfg.grid, shape)
            if source is not None:
                source.update(own)
    elif cfg.grid is not None or cfg.voxel_size is not None:
        from eeg2fmri.preprocessing.volumes import resample_bold

        img = resample_bold(img, target_shape=tuple(cfg.grid) if cfg.grid is not None else None, voxel_size=cfg.voxel_size)
        if source is not None:
            source.update(own)
    return img, tr


def _prepare_eeg(rec, cfg: PrepareConfig, img, tr: float) -> dict:
    """EEG side of one run: artifact check, volume onsets, representation."""
    from eeg2fmri.io.layouts import layout_volume_onsets, read_layout_eeg

    where = str(rec.eeg_path)
    raw = read_layout_eeg(rec, preload=False)
    from eeg2fmri.io.eeg import check_continuous
    from eeg2fmri.io.layouts import cut_run_eeg

    first_onset = cfg.first_onset
    if isinstance(first_onset, dict):  # one onset per run (runs started at different times)
        if rec.key not in first_onset:
            raise Eeg2fmriInputError(f"{where}: prepare option first_onset gives onsets for runs {sorted(first_onset)} but not for this run "
                                     f"({rec.key!r}); add it (one entry per run key) or give one number for every run.")
        first_onset = float(first_onset[rec.key])
    # one EEG file across several BOLD runs: this run's part (times below count from its first sample; first_onset, given
    # from the file's, moved with them)
    given_onset = first_onset  # (for messages: seconds of the file, as the user gave it)
    raw, rec, first_onset, span = cut_run_eeg(rec, raw, tr, marker=cfg.marker, first_onset=first_onset)
    # windows across a join would mix data from two times, and volume onsets across it are shifted
    check_continuous(raw, where, ", so the EEG after a join is out of step with the BOLD volumes. Expected one continuous recording "
                                 "per BOLD run: use the recording before data were cut out; for a recording paused during the scan, prepare "
                                 "each continuous piece as a run of its own, with the BOLD volumes its markers cover (img.slicer[..., a:b]); "
                                 "for one recording paused between BOLD runs, list it once per run in a runs table (each run then takes "
                                 "its block of scanner markers; or columns marker_block, eeg_start/eeg_stop).")
    # what the file holds that is not read as EEG: channels typed non-EEG (channels.tsv, the file, or their names) and bad ones
    types = dict(zip(raw.ch_names, raw.get_channel_types()))
    not_used = {"non_eeg": {c: t for c, t in types.items() if t != "eeg"},
                "bad": [c for c in raw.info["bads"] if types.get(c) == "eeg"]}
    if not_used["non_eeg"] or not_used["bad"]:
        logger.info("%s: not used as EEG: %d non-EEG channel(s) %s, %d marked bad %s", where, len(not_used["non_eeg"]),
                    sorted(f"{c} ({t})" for c, t in not_used["non_eeg"].items()), len(not_used["bad"]), not_used["bad"])
    try:
        sync = layout_volume_onsets(rec, raw, img.shape[3], tr, marker=cfg.marker, first_onset=first_onset,
                                    dummy_scans=getattr(rec, "dummy_scans", None) or cfg.dummy_scans)
    except Eeg2fmriInputError as err:
        from eeg2fmri.io.roi_tables import is_target_table

        if not (is_target_table(rec.bold_path) and img.shape[0] > img.shape[3]):
            raise
        # (user test 26: a transposed table -- regions as rows -- got the dummy-scan advice, which would train on 6 "volumes")
        raise Eeg2fmriInputError(f"{err} Note: {Path(rec.bold_path).name} has {img.shape[3]} rows (volumes) and {img.shape[0]} columns "
                                 "(regions): if its rows are the regions, it is transposed; save it with one row per volume "
                                 "(pandas: df.T, numpy: array.T).") from None
    if first_onset is not None and getattr(sync.report, "method", None) == "markers":  # (user test 22: silently not used)
        from eeg2fmri.utils.logs import warn_once_per_process

        warn_once_per_process(f"{where}: prepare option first_onset ({given_onset}) is not used for this run: its volumes are timed "
                              f"by its {sync.report.n_markers} {sync.report.marker!r} scanner marker(s); to time them by first_onset "
                              "instead, pass marker: null as well")
    native_tr, onsets = float(tr), sync.onsets
    # resampled in time only where the TR differs (a run already at resample_tr keeps its own onsets and values)
    resample = cfg.resample_tr is not None and abs(native_tr - float(cfg.resample_tr)) > 1e-3 * float(cfg.resample_tr)
    if resample:  # the volumes of a run resampled in time: a regular grid of acquisition middles within the run
        from eeg2fmri.preprocessing.volumes import resampled_times

        # (a margin of 20 ms: the representation's work rate may end a sample earlier than the recording)
        onsets = resampled_times(sync.onsets, float(cfg.resample_tr), native_tr, end=float(raw.times[-1]) - 0.02)
        if not len(onsets):
            raise Eeg2fmriInputError(f"{where}: expected at least one volume at resample_tr={cfg.resample_tr} s within the run, got none "
                                     f"({len(sync.onsets)} volume(s) at TR {native_tr:g} s and the EEG around them); choose a "
                                     "resample_tr shorter than the run, or leave the run out.")
    cleaning = None
    if cfg.clean:
        from eeg2fmri.preprocessing.cleaning import clean_for_prepare

        beats = {}
        if cfg.clean.get("bcg"):  # the run's BIDS physio files (heartbeats of bcg_beats 'physio', or offered when no ECG is found)
            from eeg2fmri.preprocessing.physio import find_physio_files

            # their StartTime counts from the BOLD file's first volume, at this EEG time (as _physio_for_run's t0)
            beats = {"physio_files": find_physio_files(rec.bold_path, rec.eeg_path) if rec.bold_path is not None else [],
                     "bold_start": float(sync.onsets[0]) - (sync.volumes.start or 0) * float(tr)}
        raw, cleaning = clean_for_prepare(raw, cfg.clean, tr=tr, marker=cfg.marker, onsets=sync.onsets, where=where, **beats)
    # the cardiac and respiration traces the file holds, after the gradient AAS (which corrects the ECG too: an in-scanner ECG
    # is buried in gradient artefacts); regressors are built on the BOLD side, where a BIDS physio file may add what is missing
    physio = _physio_traces(raw, where)  # (also without the option: the physiology-only row)
    chmap = None
    if cfg.channels:
        from eeg2fmri.preprocessing.channels import default_positions, map_channels_by_position

        positions = cfg.channel_positions or default_positions(raw)
        if positions != "file" and not cfg.channel_positions:
            logger.info("%s: no electrode positions in the recording: channels placed at their 10-05 sites by name (%s); "
                        "prepare option channel_positions names another cap", where, positions)
        raw, chmap = map_channels_by_position(raw, [str(c) for c in cfg.channels], positions=positions, where=where)
    from eeg2fmri.preprocessing.eeg import amplitude_outliers, implausible_scale, outlier_message

    outliers = amplitude_outliers(raw)
    if outliers:
        logger.warning("%s: %s", where, outlier_message(outliers))
    scale = implausible_scale(raw)
    if scale:
        logger.warning("%s: %s", where, scale)
    art = None
    if cfg.check_artifacts:
        from eeg2fmri.preprocessing.artifacts import check_gradient_artifacts

        art = check_gradient_artifacts(raw, tr=tr, where=where)
    try:
        rep = eeg_representation(raw, cfg, tr=cfg.resample_tr or tr, onsets=onsets, where=where)
    except Eeg2fmriInputError as err:
        if not str(err).startswith("frames extend beyond the EEG recording"):
            raise
        # (user test 24: the bare message named no file, no volume and no fix)
        end = float(raw.times[-1])
        first, last = float(sync.onsets[0]), float(sync.onsets[-1]) + float(tr)
        raise Eeg2fmriInputError(
            f"{where}: the EEG ({end:.1f} s) does not cover every volume's window: volumes are timed from {first:.1f} s to {last:.1f} s "
            f"(first_onset or markers), and each needs the EEG of its window before it. If the EEG began after the scan, save the "
            "BOLD from the first volume the EEG covers (img.slicer[..., k:]) or give the volumes' true onsets; if it stopped early, "
            "cut the BOLD's last volumes (img.slicer[..., :n]).") from None
    if cfg.event_names:  # event regressors after the EEG features of every channel, on the same frames
        rep["features"] = with_event_regressors(raw, rep["features"], rep["onsets"], float(cfg.resample_tr or tr), cfg, where=where)
    notch = cfg.notch if cfg.notch is not None else raw.info.get("line_freq")  # what lowrate_plan notched
    if notch is None:  # (BIDS gives it from PowerLineFrequency; a bare file or another layout may not)
        logger.warning("%s: the recording declares no power-line frequency (BIDS PowerLineFrequency, MNE info['line_freq']), so no notch "
                       "filter was applied; set the prepare option notch to 50 or 60 (--config '{\"notch\": 50}') to filter the line "
                       "noise as for recordings that declare it", where)
    from eeg2fmri.io.eeg import bad_spans

    return {"rep": rep, "sync": sync, "art": art, "cleaning": cleaning, "chmap": chmap, "notch_hz": None if notch is None else float(notch),
            "bad_spans": bad_spans(raw), "not_used": not_used, "physio": physio, "tr": float(cfg.resample_tr or tr), "native_tr": native_tr,
            "resampled": resample, "eeg_span": None if span is None else [round(span[0], 6), round(span[1], 6)]}


def _physio_traces(raw, where: str) -> dict:
    """The EEG file's first channel typed ``ecg`` and first typed ``resp`` (MNE's types), anti-alias decimated to at most
    250 Hz (ECG) and 50 Hz (belt): ``{"cardiac": {...}, "respiratory": {...}}`` with ``values``, ``sfreq``, ``start``
    (0: the EEG's clock, on which the volume onsets are given) and ``source``; ``{}`` without them."""
    from scipy.signal import resample_poly

    types = dict(zip(raw.ch_names, raw.get_channel_types()))
    sf = float(raw.info["sfreq"])
    out = {}
    for kind, typ, top in (("cardiac", "ecg", 250.0), ("respiratory", "resp", 50.0)):
        names = [c for c, t in types.items() if t == typ]
        if not names:
            continue
        if len(names) > 1:
            logger.info("%s: %d channels typed %s (%s); physiological regressors use %r", where, len(names), typ, names, names[0])
        x = raw.get_data(picks=[names[0]])[0]
        q = max(1, int(sf // top))
        if q > 1:
            x = resample_poly(x - np.median(x), 1, q)
        out[kind] = {"values": np.asarray(x, dtype=np.float32), "sfreq": sf / q, "start": 0.0, "source": f"{names[0]} (EEG file)"}
    return out


def _physio_inputs(rec, cfg: PrepareConfig, eeg: dict, kept: slice, native_on: np.ndarray, *,
                   quiet: bool = False) -> tuple[tuple[str, ...], dict]:
    """The regressor groups of the physio option and the run's traces it needs: ``{kind: {values, sfreq, start, source}}``,
    each from the EEG file's channel, else from the run's BIDS ``*_physio.tsv.gz`` (its ``StartTime`` counts from the BOLD
    file's first volume; put on the EEG's clock here), else a clear error. A ``trigger`` column is checked against
    ``StartTime`` (user test 58 #10). ``quiet``: nothing warned (regressors nobody asked for: :func:`_physio_baseline`)."""
    from eeg2fmri.preprocessing.physio import (
        check_physio_option,
        find_physio_files,
        read_bids_physio,
        traces_needed,
        trigger_offset,
    )

    groups = check_physio_option(cfg.physio or "regress")
    need = traces_needed(groups)
    traces = {k: v for k, v in (eeg.get("physio") or {}).items() if k in need}
    tr = float(eeg["native_tr"])
    files = find_physio_files(rec.bold_path, rec.eeg_path) if rec.bold_path is not None and need - set(traces) else []
    t0 = float(native_on[0]) - kept.start * tr  # the EEG time of the BOLD file's first volume
    for f in files:
        found = read_bids_physio(f, quiet=quiet)
        used = [k for k in found if k in need and k not in traces]
        for kind in used:
            values, sfreq, start = found[kind]
            traces[kind] = {"values": values, "sfreq": sfreq, "start": start + t0, "source": f"{f.name} column"}
        if used and "trigger" in found and not quiet:
            off = trigger_offset(*found["trigger"], tr)
            if off is not None and abs(off[0]) > max(2.0 / found["trigger"][1], 0.02):
                from eeg2fmri.utils.logs import warn_once_per_process

                warn_once_per_process(f"{f}: its trigger column's {off[1]} scanner pulses fall {off[0]:+.3f} s (on average) from the volume "
                                      f"starts its StartTime ({found['trigger'][2]:g} s) implies (TR {tr:g} s; a shift is seen modulo the TR): "
                                      "StartTime is likely off by that much (BIDS: seconds from the first volume to the first sample), "
                                      "which shifts the cardiac and respiratory regressors in time; correct it in the sidecar")
    for kind in sorted(need - set(traces)) if traces and not quiet else ():  # (user test 58: a trigger-only file left them out in silence)
        from eeg2fmri.utils.logs import warn_once_per_process

        warn_once_per_process(f"{rec.eeg_path}: no {kind} trace for this run (no EEG channel typed {'ecg' if kind == 'cardiac' else 'resp'}, "
                              f"no '{kind}' column in {', '.join(f.name for f in files) or 'a BIDS physio file'}): its "
                              f"{kind} regressors are left out of the physio option's regression")
    if not traces:
        stem = Path(str(rec.bold_path)).name.replace("_bold.nii.gz", "").replace("_bold.nii", "")
        raise Eeg2fmriInputError(
            f"{rec.eeg_path}: prepare option physio={cfg.physio!r} needs a cardiac or respiration recording, found none: expected "
            "EEG channels typed 'ecg' / 'resp' (BIDS channels.tsv type ECG / RESP; or MNE raw.set_channel_types) or a BIDS "
            f"{stem}_physio.tsv.gz (+ .json) beside the BOLD; give one of them, leave the physio option out, or prepare such runs "
            "without it (prepare option physio_incomplete: 'unregressed').")
    return groups, traces


def _physio_covered(traces: dict, middles: np.ndarray) -> tuple[int, int]:
    """The first and one-past-last index of the volume ``middles`` that every trace covers (up to
    :data:`~eeg2fmri.preprocessing.physio.COVER_SLACK_S` past its ends); ``(k, k)`` when none."""
    from eeg2fmri.preprocessing.physio import COVER_SLACK_S

    lo = max(v["start"] for v in traces.values()) - COVER_SLACK_S
    hi = min(v["start"] + len(v["values"]) / float(v["sfreq"]) for v in traces.values()) + COVER_SLACK_S
    ok = (middles >= lo) & (middles <= hi)
    if not ok.any():
        return 0, 0
    idx = np.flatnonzero(ok)
    return int(idx[0]), int(idx[-1]) + 1


def _physio_for_run(rec, cfg: PrepareConfig, groups: tuple[str, ...], traces: dict, native_on: np.ndarray, tr: float) -> dict:
    """The physiological regressors of the run's kept volumes (their middles, on the EEG's clock) from ``traces``
    (:func:`_physio_inputs`), with what the manifest records of them."""
    from eeg2fmri.preprocessing.physio import regressors_from_traces

    sources = "; ".join(f"{k} from {v['source']}" for k, v in traces.items())
    x, names, summary = regressors_from_traces(np.asarray(native_on, dtype=np.float64) + tr / 2, traces, groups,
                                               where=f"{rec.key}: physiology ({sources})")
    out = {"regressors": x, "names": names, "source": {k: v["source"] for k, v in traces.items()},
           "sampling_hz": {k: round(float(v["sfreq"]), 3) for k, v in traces.items()}, **summary}
    logger.info("%s: physio: %d regressors (%s)%s", rec.key, len(names), sources, "".join(f", {k} {v}" for k, v in summary.items()))
    return out


def _physio_baseline(rec, cfg: PrepareConfig, eeg: dict, kept: slice, native_on: np.ndarray, onsets: np.ndarray,
                     regressed: tuple | None, used: tuple | None, skipped: str | None) -> tuple[np.ndarray, list[str]] | None:
    """The physiological regressors at the prepared volumes' middles, each column standardised over the run (float32), with
    their names -- for ``benchmark``'s physiology-only row -- or ``None`` where the run has no usable trace. Without the
    physio option they are built quietly (``physio: "regress"``'s groups; nothing warned, nothing refused: nobody asked for
    them); with it, they are those regressed (at the new volumes of a run resampled in time)."""
    if rec.bold_path is None or skipped is not None:
        return None
    import warnings

    try:
        if regressed is not None and not eeg.get("resampled"):
            x, names = regressed
        else:
            with warnings.catch_warnings():  # (unasked for: no warning of MNE's QRS detector on a short trace either)
                if used is None:
                    warnings.simplefilter("ignore")
                x, names = _physio_baseline_regressors(rec, cfg, eeg, kept, native_on, onsets, used)
    except Eeg2fmriInputError as err:
        logger.debug("%s: no physiological regressors for the physiology-only row: %s", rec.key, err)
        return None
    except (ValueError, RuntimeError, IndexError, TypeError, KeyError, OSError) as err:  # a trace no detector reads: no row, no failure
        logger.info("%s: no physiological regressors for the physiology-only row (%s: %s)", rec.key, type(err).__name__, err)
        return None
    x = np.asarray(x, dtype=np.float64)
    sd = x.std(axis=0)
    x = np.where(sd > 0, (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0), 0.0)
    return x.astype(np.float32), names


def _physio_baseline_regressors(rec, cfg: PrepareConfig, eeg: dict, kept: slice, native_on: np.ndarray, onsets: np.ndarray,
                                used: tuple | None) -> tuple[np.ndarray, list[str]]:
    """:func:`_physio_baseline`'s regressors at the prepared volumes' middles (unstandardised)."""
    from eeg2fmri.preprocessing.physio import regressors_from_traces

    groups, traces = used if used is not None else _physio_inputs(rec, cfg, eeg, kept, native_on, quiet=True)
    tr_out = float(cfg.resample_tr) if eeg.get("resampled") else float(eeg["native_tr"])
    x, names, _ = regressors_from_traces(np.asarray(onsets, dtype=np.float64) + tr_out / 2, traces, groups,
                                         where=f"{rec.key}: physiology", quiet=used is None)
    return x, names


def _trim_to_physio(rec, cfg: PrepareConfig, eeg: dict, traces: dict, bold: np.ndarray, native_on: np.ndarray, rep: dict,
                    kept: slice) -> tuple[np.ndarray, np.ndarray, dict, slice, dict | None]:
    """Prepare option ``physio_incomplete: "trim"``: the run's kept volumes (BOLD rows, onsets, the representation's
    windows, the slice of the BOLD file) cut to those whose middle every physiological trace covers; a warning and a
    manifest entry ``{"volumes_left_out": [at start, at end], "kept": [first, stop]}`` when some go (else ``None``)."""
    tr = float(eeg["native_tr"])
    mid = native_on + tr / 2
    a, b = _physio_covered(traces, mid)
    n = len(native_on)
    if (a, b) == (0, n):
        return bold, native_on, rep, kept, None
    spans = ", ".join(f"{k} {v['start']:.1f} to {v['start'] + len(v['values']) / float(v['sfreq']):.1f} s" for k, v in traces.items())
    if b - a < max(10, n // 4):
        raise Eeg2fmriInputError(
            f"{rec.key}: the physiological recordings ({spans}, on the EEG's clock) cover {b - a} of the run's {n} kept volumes "
            f"(middles {mid[0]:.1f} to {mid[-1]:.1f} s); expected at least {max(10, n // 4)} for prepare option physio_incomplete: 'trim'. "
            "Check the BIDS StartTime of the physio file, or prepare this run without physiological regressors "
            "(physio_incomplete: 'unregressed').")
    if eeg.get("resampled"):  # the new volumes whose middle lies within the covered native volumes' middles
        rtr = float(cfg.resample_tr)
        new_mid = np.asarray(rep["onsets"], dtype=np.float64) + rtr / 2
        keep = (new_mid >= mid[a] - 1e-6) & (new_mid <= mid[b - 1] + 1e-6)
        idx = np.flatnonzero(keep)
        sel = slice(int(idx[0]), int(idx[-1]) + 1)
    else:
        sel = slice(a, b)
    rep = {**rep, "onsets": np.asarray(rep["onsets"])[sel], "window_end": np.asarray(rep["window_end"])[sel]}
    start = kept.start or 0
    info = {"volumes_left_out": [a, n - b], "kept": [start + a, start + b]}
    warn_once_per_process(f"{rec.key}: the physiological recordings ({spans}) do not cover the first {a} and the last {n - b} of its "
                          f"{n} kept volumes (middles {mid[0]:.1f} to {mid[-1]:.1f} s): those volumes are left out (prepare option "
                          "physio_incomplete: 'trim')")
    return (np.ascontiguousarray(bold[a:b]), native_on[a:b], rep, slice(start + a, start + b), info)


def _median_variance_share(before: np.ndarray, after: np.ndarray) -> float:
    """Median over columns of the share of (demeaned) variance removed going from ``before`` to ``after``."""
    b = np.asarray(before, dtype=np.float64)
    a = np.asarray(after, dtype=np.float64)
    vb = b.var(axis=0)
    ok = vb > 0
    if not ok.any():
        return 0.0
    return round(float(np.median(1.0 - a.var(axis=0)[ok] / vb[ok])), 4)


def _check_finite_bold(bold: np.ndarray, mask: np.ndarray, first_volume: int, where: str) -> None:
    """Raise if the masked BOLD of a run holds NaN/Inf: which voxels (grid indices) and volumes."""
    bad = ~np.isfinite(bold)
    if not bad.any():
        return
    cols = np.flatnonzero(bad.any(0))
    vols = np.flatnonzero(bad.any(1)) + first_volume
    ijk = [tuple(int(v) for v in row) for row in np.argwhere(mask)[cols[:3]]]
    raise Eeg2fmriInputError(
        f"{where}: {len(cols)} voxel(s) inside the brain mask hold NaN or Inf ({int(bad.sum())} values; voxels {ijk}"
        f"{' ...' if len(cols) > 3 else ''} (i, j, k), in {len(vols)} volume(s) from volume {int(vols[0])}). Expected finite BOLD "
        "inside the mask: fix the image, or give a mask that leaves these voxels out (prepare option mask: PATH)."
    )


def _fmriprep_non_steady(bold_path, first: int) -> int | None:
    """Leading volumes (from BOLD volume ``first``) that fMRIPrep's confounds flag ``non_steady_state_outlier*``; None without them."""
    from eeg2fmri.preprocessing.volumes import find_confounds

    try:
        path = find_confounds(bold_path)
    except Eeg2fmriInputError:
        return None
    import pandas as pd

    table = pd.read_csv(path, sep="\t", na_values=["n/a"])
    cols = [c for c in table.columns if str(c).startswith("non_steady_state_outlier")]
    if not cols:
        return None
    flag = table[cols].fillna(0).to_numpy().any(axis=1)[first:]
    return int(len(flag) if flag.all() else np.argmin(flag))


def _leading_volumes_to_drop(cfg: PrepareConfig, bold: np.ndarray, sync, where: str, bold_path=None) -> int:
    """Leading volumes of a run (after synchronisation) that prepare leaves out: ``drop_volumes``, detected when "auto"."""
    from eeg2fmri.preprocessing.bold import non_steady_state_volumes

    n = len(bold)
    if cfg.drop_volumes == "auto":
        k = non_steady_state_volumes(bold)
        flagged = _fmriprep_non_steady(bold_path, sync.volumes.start or 0) if bold_path is not None else None
        if flagged is not None and flagged != k:  # fMRIPrep's own detector saw the raw data: its count wins
            warn_once_per_process(f"{where}: fMRIPrep's confounds flag the first {flagged} volume(s) as non-steady-state "
                                   f"(non_steady_state_outlier*), this package's check found {k}: {flagged} left out, as fMRIPrep says")
            k = flagged
        elif k:
            first = sync.volumes.start or 0
            g = bold[: k + 1].mean(axis=1, dtype=np.float64)
            rest = float(np.median(bold[k : k + 50].mean(axis=1, dtype=np.float64)))
            level = ", ".join(f"{v / rest:.2f}x" for v in g[:k]) if rest else "above"
            warn_once_per_process(f"{where}: the first {k} volume(s) (from volume {first}) are non-steady-state (brain signal {level} of "
                                   "the steady level): left out; prepare option drop_volumes sets how many (0 keeps them)")
    else:
        k = int(cfg.drop_volumes)
    if k >= n - 1:
        raise Eeg2fmriInputError(f"{where}: prepare option drop_volumes leaves out {k} of the run's {n} volumes; expected fewer, so that "
                                 "volumes remain to train on: give a smaller number (or 0).")
    return k


def _check_dummies_against_brightness(rec, cfg: PrepareConfig, rp, n_drop: int, bold: np.ndarray) -> None:
    """Refuse leading "dummy" markers (more markers than volumes, the first ones dropped by default) when the first saved
    volumes are non-steady-state: a scanner that saved its first, bright volumes discarded none before them, so the extra
    markers are at the end -- a BOLD file cut short -- and dropping the first ones would pair every volume with EEG that
    many TRs late (user test 24: prepared with a warning, 12 s late). A sidecar that declares discarded volumes decides
    instead (:func:`eeg2fmri.io.layouts.layout_volume_onsets`)."""
    from eeg2fmri.io.bold import declared_discarded_volumes

    if not (n_drop and cfg.drop_volumes == "auto" and (getattr(rec, "dummy_scans", None) or cfg.dummy_scans) == "auto"
            and getattr(rp, "method", None) == "markers"
            and getattr(rp, "dropped", 0) > 0) or declared_discarded_volumes(rec.bold_path) is not None:
        return
    from eeg2fmri.preprocessing.bold import non_steady_state_volumes

    n_drop = non_steady_state_volumes(bold)  # this package's brightness check itself (fMRIPrep's flags may count otherwise)
    if not n_drop:
        return
    raise Eeg2fmriInputError(
        f"{rec.eeg_path}: {rp.dropped} more '{rp.marker}' markers than the BOLD's volumes were taken as dummy scans before the first "
        f"saved volume, but the first {n_drop} saved volume(s) of {Path(rec.bold_path).name} are non-steady-state (brighter): the "
        f"scanner saved the run from its start, so the extra markers are not leading dummy scans. Likely the BOLD file lacks its last "
        f"{rp.dropped} volumes, and taking the first markers as dummies would pair every volume with EEG {rp.dropped} TRs late. Pass "
        "dummy_scans='drop-last' (prepare option) if the BOLD was cut at the end, or give the whole run; dummy_scans='drop-first' if "
        "the first markers really belong to no saved volume (or declare NumberOfVolumesDiscardedByScanner in the *_bold.json).")


def _finish_run(rec, cfg: PrepareConfig, eeg: dict, bold: np.ndarray, atlas, n_volumes: int, mask: np.ndarray) -> tuple[PreparedRun, dict, dict]:
    """BOLD side of one run (volumes kept by synchronisation, confounds, atlas) and the run record."""
    rep, sync, art = eeg["rep"], eeg["sync"], eeg["art"]
    bold = np.ascontiguousarray(bold[sync.volumes])
    _check_finite_bold(bold, mask, sync.volumes.start or 0, str(rec.bold_path))
    n_drop = _leading_volumes_to_drop(cfg, bold, sync, str(rec.bold_path), rec.bold_path)
    _check_dummies_against_brightness(rec, cfg, sync.report, n_drop, bold)
    kept = slice((sync.volumes.start or 0) + n_drop, sync.volumes.stop)
    native_on = np.asarray(sync.onsets, dtype=np.float64)[n_drop:]  # the kept volumes' own onsets (before any resampling)
    if n_drop:
        bold = np.ascontiguousarray(bold[n_drop:])
        # (resampled in time: the new volumes whose middle precedes the first kept one's go; the EEG features stay)
        m = (int(np.searchsorted(np.asarray(rep["onsets"]) + float(cfg.resample_tr) / 2, native_on[0] + float(eeg["native_tr"]) / 2 - 1e-6))
             if eeg.get("resampled") else n_drop)
        if m >= len(rep["onsets"]):
            raise Eeg2fmriInputError(f"{rec.bold_path}: expected at least one volume at resample_tr={cfg.resample_tr} s after the {n_drop} "
                                     "leading non-steady-state volume(s), got none; choose a shorter resample_tr, keep those volumes "
                                     "(drop_volumes: 0), or leave the run out.")
        rep = {**rep, "onsets": np.asarray(rep["onsets"])[m:], "window_end": np.asarray(rep["window_end"])[m:]}
    physio, physio_trim, physio_skipped, physio_in = None, None, None, None
    if cfg.physio:  # (before the confounds: "trim" may leave volumes out)
        try:
            groups, traces = physio_in = _physio_inputs(rec, cfg, eeg, kept, native_on)
            if cfg.physio_incomplete == "trim":
                bold, native_on, rep, kept, physio_trim = _trim_to_physio(rec, cfg, eeg, traces, bold, native_on, rep, kept)
            physio = _physio_for_run(rec, cfg, groups, traces, native_on, float(eeg["native_tr"]))
        except Eeg2fmriInputError as err:
            if cfg.physio_incomplete != "unregressed":
                raise
            physio_skipped = str(err)
            warn_once_per_process(f"{rec.key}: prepared WITHOUT physiological regressors (prepare option physio_incomplete: "
                                  f"'unregressed'), its BOLD keeps its physiological noise: {err}")
    regressors = []
    if cfg.confounds:
        from eeg2fmri.preprocessing.volumes import find_confounds, read_confounds

        conf_path = find_confounds(rec.bold_path)
        conf = read_confounds(conf_path, cfg.confounds).to_numpy()
        if len(conf) != n_volumes:  # the files themselves disagree (before any volume is left out)
            raise Eeg2fmriInputError(
                f"{conf_path}: {len(conf)} rows, but {rec.bold_path} has {n_volumes} volumes; expected one row per BOLD volume "
                "(fMRIPrep writes them so): use the confounds file of this run and this fMRIPrep output.")
        regressors.append(conf[kept])
    physio_x = None
    if physio is not None:
        physio_x = physio.pop("regressors")
        regressors.append(physio_x)
    if regressors:
        from eeg2fmri.preprocessing.bold import drift_basis
        from eeg2fmri.preprocessing.volumes import regress_confounds

        both = np.column_stack(regressors)
        before = bold
        # fitted with the slow drift the targets' detrending removes, and only their part removed: otherwise their slow part
        # fits the drift too and the detrended BOLD keeps its mirror image (a physiology-only ridge found it: ROI r 0.14)
        drift = drift_basis(len(bold), float(eeg["native_tr"]))
        bold = regress_confounds(bold, both, drift=drift, where=str(rec.bold_path))
        if physio is not None:  # the median share of a voxel's variance the physiological regressors alone explain
            alone = bold if len(regressors) == 1 else regress_confounds(before, regressors[-1], drift=drift, where=str(rec.bold_path))
            physio["variance_explained_median"] = _median_variance_share(before, alone)
        del before
    resampled = None
    if eeg.get("resampled"):  # after the confounds (regressed at the run's own TR)
        from eeg2fmri.preprocessing.volumes import resample_bold_time

        new_on = np.asarray(rep["onsets"], dtype=np.float64)
        # each volume is the sample of its acquisition's middle (onset + TR/2, the models' convention): old middles to new
        # middles (user test 32: onset to onset shifted the BOLD by half the TR difference against the EEG)
        bold = resample_bold_time(bold, native_on + float(eeg["native_tr"]) / 2, new_on + float(cfg.resample_tr) / 2,
                                  where=str(rec.bold_path))
        resampled = {"from_tr": float(eeg["native_tr"]), "to_tr": float(cfg.resample_tr), "volumes": [int(len(native_on)), int(len(new_on))]}
        logger.info("%s: BOLD resampled in time from TR %g s to %g s (%d -> %d volumes)", rec.key, eeg["native_tr"], cfg.resample_tr,
                    len(native_on), len(new_on))
    if atlas is not None:
        bold = np.ascontiguousarray(atlas.transform(bold), dtype=np.float32)
    bad = eeg.get("bad_spans")
    base = _physio_baseline(rec, cfg, eeg, kept, native_on, rep["onsets"], None if physio_x is None else (physio_x, physio["names"]),
                            physio_in, physio_skipped)
    run = PreparedRun(rec.key, rec.subject, rep["features"], rep["window_end"], bold, rep["onsets"], bad if bad is not None and len(bad) else None,
                      *(base or (None, None)))
    info = {"sfreq": rep["sfreq"], "ch_names": rep["ch_names"], "frame_rate": rep["frame_rate"], "freqs": rep["freqs"]}
    rp = sync.report
    # absolute paths: readers of the manifest (classify's events, explain's electrodes) may run from another directory
    prov = {"eeg": str(Path(rec.eeg_path).absolute()), "bold": str(Path(rec.bold_path).absolute()) if rec.bold_path is not None else None, "layout": getattr(rec, "layout", "bids"), "sync": rp.method, "sync_marker": rp.marker,
            "sync_dropped": rp.dropped, "sync_notes": rp.notes, "volumes": [kept.start, kept.stop], "non_steady_state_volumes": int(n_drop)}
    if eeg.get("eeg_span") is not None:  # the run's part of its EEG file (s); the run's onsets count from its start
        prov["eeg_span_s"] = eeg["eeg_span"]
    if physio is not None:
        prov["physio"] = physio
    if physio_skipped is not None:
        prov["physio_unregressed"] = physio_skipped
    if physio_trim is not None:
        prov["physio_trimmed"] = physio_trim
    if physio is None and rec.bold_path is not None:  # the run's BIDS physio files, unused (physiology_unregressed says so)
        from eeg2fmri.preprocessing.physio import find_physio_files

        files = find_physio_files(rec.bold_path, rec.eeg_path)
        if files:
            prov["physio_files"] = [f.name for f in files]
    if resampled is not None:
        prov["resampled_in_time"] = resampled
        # each prepared volume's time from the BOLD file's first saved volume (events.tsv onsets): first, step (s)
        prov["volume_times_s"] = [round(kept.start * float(eeg["native_tr"]) + float(rep["onsets"][0]) - float(native_on[0]), 6),
                                  float(cfg.resample_tr)]
    if rec.bold_path is not None:  # (user test 30: only datasets --check said that a run's SliceTiming is not read)
        from eeg2fmri.io.bold import slice_timing_note

        st = slice_timing_note(rec.bold_path, float(eeg.get("native_tr", eeg["tr"])))
        if st:
            prov["slice_timing"] = st
            prov["slice_time_corrected"] = "), slice-time corrected" in st
    if art is not None:
        prov["gradient_artifact_check"] = {"peak_ratio": float(art["peak_ratio"]), "detected": bool(art["detected"])}
    if eeg.get("cleaning") is not None:
        prov["cleaning"] = eeg["cleaning"]
    if eeg.get("chmap") is not None:
        prov["channel_mapping"] = eeg["chmap"].to_dict()
    if eeg.get("not_used") is not None:  # channels of the file not read as EEG (non-EEG types with their type, bad EEG channels)
        prov["channels_not_used"] = eeg["not_used"]
    prov["notch_hz"] = eeg.get("notch_hz")
    epochs = (getattr(rec, "meta", None) or {}).get("volume_label_epochs")
    if epochs:  # per-volume labels a layout gives in epochs (ds003768's sleep stages): stored for classify --labels NAME
        from eeg2fmri.io.layouts import labels_of_volumes

        # times from the BOLD file's first saved volume (a run resampled in time: its new volumes' times)
        t_vol = (np.arange(kept.start, kept.stop) * float(eeg.get("native_tr", eeg["tr"])) if resampled is None else
                 kept.start * float(eeg["native_tr"]) + np.asarray(rep["onsets"], float) - native_on[0])
        prov["volume_labels"] = {name: labels_of_volumes(ep, t_vol,
                                                         epoch_s=rec.meta.get("volume_label_epoch_s"))
                                 for name, ep in epochs.items()}
    if run.bad_spans is not None:
        prov["bad_spans_seconds"] = round(float(np.sum(run.bad_spans[:, 1] - run.bad_spans[:, 0])), 3)
    logger.info("%s: %d volumes, %d EEG channels, features %s", rec.key, n_volumes, len(rep["ch_names"]), rep["features"].shape)
    return run, info, prov


def _native_space_hint(rec, img, first: Any) -> str:
    """Where the run (or the first run) is in scanner space and belongs to another subject than the first run: why
    resampling by world coordinates is no fix, and what is (empty otherwise)."""
    from eeg2fmri.io.bold import bids_space_entity, grid_space, xform_code

    first_subject = re.match(r"sub-([A-Za-z0-9]+)", Path(str(first or "")).name)  # a BIDS file name starts with its subject
    subject = getattr(rec, "subject", None)
    if first_subject is None or subject is None or str(subject) == first_subject.group(1):
        return ""
    if grid_space(xform_code(img), bids_space_entity(rec.bold_path)) != "native":
        return ""
    layout = getattr(rec, "layout", "bids") or "bids"
    takes = _layout_takes_derivatives(layout)
    then = ("then prepare --derivatives DIR --space MNI152NLin2009cAsym" if takes else
            f"then prepare the normalised runs as a BIDS dataset or a runs table (the {layout} layout reads no derivatives)")
    return (f" These runs are in the scanner space of different subjects (sub-{subject} and sub-{first_subject.group(1)}): resampling "
            "by world coordinates does not line up their brains. Normalise every subject to one template first (e.g. fMRIPrep "
            f"with --output-spaces MNI152NLin2009cAsym, {then}), or prepare each subject on its own (prepare --subjects ID) for "
            "within-subject models.")


def _layout_takes_derivatives(layout: str) -> bool:
    """Whether a dataset layout takes the ``derivatives`` option (the bids layout and those built on it)."""
    if layout in ("bids", "auto"):
        return True
    try:
        from eeg2fmri.io.layouts import get_layout

        return "derivatives" in (getattr(get_layout(layout), "OPTIONS", None) or {})
    except Exception:  # noqa: BLE001  (an unknown layout name: say nothing about its options)
        return False


def _check_run_grid(rec, img, tr: float, tr0: float, shape0: tuple, affine0: np.ndarray | None = None, first: Any = None,
                    resample_tr: float | None = None) -> None:
    if resample_tr is None and abs(tr - tr0) > 1e-3 * tr0:  # (resample_tr: every run is resampled from its own TR)
        from eeg2fmri.io.layouts import different_tr_hint

        raise Eeg2fmriInputError(f"{rec.bold_path}: " + different_tr_hint(rec.key, tr, Path(str(first)).name if first else "run 1", tr0) + ".")
    if img.shape[:3] != shape0:
        raise Eeg2fmriInputError(f"{rec.bold_path}: grid {img.shape[:3]} differs from the first run's {shape0}; resample all runs to one grid first, "
                                 "or, for runs in one space (e.g. MNI), pass prepare option grid='first' (--config '{\"grid\": \"first\"}')."
                                 + _native_space_hint(rec, img, first))
    if affine0 is not None:  # the same shape is not the same grid: voxels are pooled by index across runs
        from eeg2fmri.io.bold import GRID_ATOL_MM, affine_difference_mm

        diff = affine_difference_mm(img.affine, affine0)
        if diff > GRID_ATOL_MM:
            raise Eeg2fmriInputError(
                f"{rec.bold_path}: voxel-to-world affine differs from the first run's ({first}) by up to {diff:.3g} (mm), although the "
                f"grid shapes agree: the same voxel index is a different place in the two runs. Expected every run on one grid; "
                "resample the runs to one grid first (nilearn.image.resample_to_img(run, first_run), or prepare option grid='first', "
                "for runs in one space such as MNI; grid=[...] and voxel_size resample each run within its own box), or, if an axis is only flipped "
                "(e.g. LAS vs RAS), reorient every run with nibabel.as_closest_canonical." + _native_space_hint(rec, img, first)
            )


def _prepare_one(rec, cfg: PrepareConfig, mask: np.ndarray, tr0: float, shape0: tuple, atlas=None, affine0: np.ndarray | None = None,
                 first: Any = None) -> tuple[PreparedRun, dict, dict]:
    """One run: the BOLD is streamed in a thread while the EEG is processed (both release the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    source: dict = {}
    img, tr = _read_bold_on_grid(rec, cfg, (shape0, affine0) if affine0 is not None else None, source)
    _check_run_grid(rec, img, tr, tr0, shape0, affine0, first, cfg.resample_tr)
    with ThreadPoolExecutor(1) as ex:
        fut = ex.submit(load_masked_bold, img, mask, where=str(rec.bold_path))
        eeg = _prepare_eeg(rec, cfg, img, tr)
        bold = fut.result()[0]
    if _onto_one_grid(cfg):  # a run resampled from a smaller box has no data for the mask voxels outside it
        _warn_outside_fov(rec, cfg, bold)
    elif len(bold) > 1:  # (user test 24: ten zeroed brain voxels of a later run passed without a word; the mask is the first run's)
        flat = int(np.count_nonzero(np.all(bold == bold[:1], axis=0)))
        if flat:
            logger.warning("%s: %d of %d mask voxels are constant over this run (e.g. zeroed, or outside its field of view); the mask "
                           "comes from %s, so they stay targets, with no signal in this run. Pass a mask that leaves them out "
                           "(prepare option mask: PATH), or leave the run out.", rec.bold_path, flat, bold.shape[1],
                           "the first run's data" if cfg.mask == "data" else f"the prepare option mask ({cfg.mask})")
    run, info, prov = _finish_run(rec, cfg, eeg, bold, atlas, img.shape[3], mask)
    if source:  # the file's own grid, where this run was resampled onto the dataset's
        prov["bold_grid_source"] = source
    return run, info, prov


def _check_consistent(infos: list[dict], records) -> None:
    """Every run has the first run's EEG channels (sampling rates may differ: _resolve_config gives them one work rate)."""
    _check_channel_lists([inf["ch_names"] for inf in infos], records)


def _check_channel_lists(names: list[list[str]], records) -> None:
    """Refuse runs whose EEG channels differ from the first run's: every run with other channels (as channels are
    matched: FP1 is fp1) is named, with what it lacks and what only it has, and the channels all runs share; only when
    no run has other channels, the first whose names differ in order or spelling (user test 16: a run that only spelled
    its names in upper case was blamed for another run's extra channel)."""
    first = names[0]
    diffs = [(rec, here, *channel_difference(first, here)) for here, rec in zip(names[1:], records[1:]) if here != first]
    if not diffs:
        return
    real = [d for d in diffs if d[2] or d[3]]
    rec, here, missing, extra = (real or diffs)[0]
    what = (f" (missing here: {missing}; only here: {extra})" if missing or extra else
            " (the same channels in another order)" if sorted(here) == sorted(first) else
            " (the same channels under names spelled differently)")
    others = "".join(f"; {r.eeg_path.name}: missing {m}, only there {e}" for r, _, m, e in real[1:])
    shared = ""
    if real:
        keys = [{channel_key(c) for c in n} for n in names]
        common = [c for c in first if all(channel_key(c) in k for k in keys)]
        shared = f" The EEG channels every run has ({len(common)}): {common}."
    raise Eeg2fmriInputError(
        f"{rec.eeg_path}: EEG channels {here} differ from the first run's {first}{what}"
        + (f". Other runs with other channels{others}" if others else "") + f".{shared} Give every run "
        "one channel set with the prepare option channels (--config '{\"channels\": [names]}'): channels a run lacks or "
        "marks bad are interpolated from its electrode positions (channel_positions: by default the file's digitisation, "
        "else the 10-05 sites by channel name; or the montage of the cap, such as 'biosemi64' or 'easycap-M1'). Or remove the channels that are not good in every run from all of them. Channels marked bad "
        f"(channels.tsv status, raw.info['bads']) or typed non-EEG are left out of a run ({records[0].eeg_path.name} is the first run)."
    )


#: Keys of one run given as a mapping to :func:`prepare_dataset` (instead of a dataset folder).
RUN_KEYS = {"eeg": "EEG file (any format MNE reads)",
            "bold": "4D BOLD NIfTI, or a region table (.tsv/.csv/.npy/.pkl: one row per volume, one column per region; give tr)", "subject": "subject label",
            "session": "session label", "task": "task label", "run": "run index", "acquisition": "acq- label",
            "tr": "TR in s (default: the NIfTI header)", "marker": "scanner marker name(s)", "first_onset": "s of volume 0 without markers",
            "eeg_start": "s of the EEG file where this run's part begins (one EEG file across several runs)",
            "eeg_stop": "s of the EEG file where this run's part ends",
            "marker_block": "this run's block of scanner markers in its EEG file (1 = the first; blocks are parted by pauses)",
            "dummy_scans": "this run's dummy_scans (auto, drop-first, drop-last, error): more scanner markers than volumes"}


def runs_from_files(runs: Any) -> list:
    """:class:`~eeg2fmri.io.layouts.LayoutRun` records from explicit EEG/BOLD file pairs.

    Parameters
    ----------
    runs : sequence of mapping or RunRecord
        One entry per simultaneous run: ``{"eeg": path, "bold": path, "subject": "01"}`` plus optional
        ``session``, ``task``, ``run``, ``acquisition``, ``tr``, ``marker``, ``first_onset``, ``eeg_start``,
        ``eeg_stop``, ``marker_block`` (:data:`RUN_KEYS`); a :class:`~eeg2fmri.io.RunRecord` / ``LayoutRun`` is taken
        as it is. One EEG file recorded across several BOLD runs is listed once per run: each with its part
        (``marker_block``: its block of scanner markers; or ``eeg_start``/``eeg_stop`` in seconds of the file), or, with
        neither on any of them, the runs take the file's blocks of markers in run order (every row with a ``run``
        label), else in the order they are listed (:func:`~eeg2fmri.io.layouts.run_eeg_span`; ``first_onset`` counts
        from the file's first sample either way).

    Returns
    -------
    list of LayoutRun

    Raises
    ------
    Eeg2fmriInputError
        A missing file, an unknown key, a missing subject or two runs with the same key (each named).
    """
    from eeg2fmri.io import RunRecord
    from eeg2fmri.io.layouts import LayoutRun, as_layout_run

    out = []
    for i, r in enumerate(runs):
        where = f"runs[{i}]"
        if isinstance(r, RunRecord):
            out.append(as_layout_run(r))
            continue
        if not isinstance(r, Mapping):
            raise Eeg2fmriInputError(f"{where}: expected a mapping such as {{'eeg': 'a.vhdr', 'bold': 'a_bold.nii.gz', 'subject': '01'}} "
                                     f"or a RunRecord, got {type(r).__name__}.")
        bad = sorted(set(r) - set(RUN_KEYS))
        if bad:
            raise Eeg2fmriInputError(f"{where}: unknown key(s) {bad}; expected some of {sorted(RUN_KEYS)} (eeg, bold and subject required).")
        miss = [k for k in ("eeg", "bold", "subject") if r.get(k) in (None, "")]
        if miss:
            raise Eeg2fmriInputError(f"{where}: expected {', '.join(miss)} ({'; '.join(RUN_KEYS[k] for k in miss)}), found none; add them.")
        files = {k: Path(r[k]).expanduser().absolute() for k in ("eeg", "bold")}
        for k, f in files.items():
            if not f.is_file():
                raise Eeg2fmriInputError(f"{where}: {k} file {f} does not exist; check the path.")
        labels = {k: (None if r.get(k) is None else str(r[k])) for k in ("subject", "session", "task", "run", "acquisition")}
        for k, v in labels.items():
            if v is not None and not v.replace("_", "").isalnum():
                raise Eeg2fmriInputError(f"{where}: expected an alphanumeric {k} label, got {v!r}; it becomes part of the run key "
                                         "(sub-<subject>_task-<task>_run-<run>).")
        part = {k: _run_number(r.get(k), f"{where}: {k}", integer=k == "marker_block") for k in ("eeg_start", "eeg_stop", "marker_block")}
        dummies = None if r.get("dummy_scans") in (None, "") else str(r["dummy_scans"]).strip()
        if dummies is not None:
            from eeg2fmri.io.sync import DUMMY_SCANS

            if dummies not in DUMMY_SCANS:
                raise Eeg2fmriInputError(f"{where}: dummy_scans: expected one of {list(DUMMY_SCANS)}, got {r['dummy_scans']!r}; e.g. "
                                         "drop-last for a BOLD file that lacks its last volumes.")
            part["dummy_scans"] = dummies
        out.append(LayoutRun(subject=labels["subject"], session=labels["session"], task=labels["task"], run=labels["run"], eeg_path=files["eeg"],
                             bold_path=files["bold"], acquisition=labels["acquisition"], layout="files",
                             tr=_run_number(r.get("tr"), f"{where}: tr"), marker=r.get("marker"),
                             first_onset=_run_number(r.get("first_onset"), f"{where}: first_onset"), **part))
    if not out:
        raise Eeg2fmriInputError("runs: expected at least one run, got an empty list.")
    out = _shared_eeg_files(out)
    keys = [rec.key for rec in out]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise Eeg2fmriInputError(f"runs: expected one run per key, found {dup} more than once; give them different run (or task, session) labels.")
    return out


def _run_number(value: Any, where: str, *, integer: bool = False) -> float | int | None:
    """A number of a run's mapping (a runs table gives text): ``None`` when absent, else a finite float (or an integer >= 1)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if integer:
        if not (np.isfinite(v) and v == int(v) and v >= 1):
            raise Eeg2fmriInputError(f"{where}: expected a whole number >= 1 (1 = the first block of scanner markers), got {value!r}.")
        return int(v)
    if not np.isfinite(v):
        raise Eeg2fmriInputError(f"{where}: expected a number (seconds), got {value!r}.")
    return v


def _shared_eeg_files(runs: list) -> list:
    """Runs listed with one EEG file each get its blocks of scanner markers in run order (else as listed), where none of them says
    which part of the file is its own (``marker_block``, ``eeg_start``/``eeg_stop``) or times its volumes itself
    (``first_onset``, seconds of the file: the run reads the whole file); mixed lists are refused."""
    import dataclasses

    by_file: dict[Path, list[int]] = {}
    for i, rec in enumerate(runs):
        by_file.setdefault(Path(rec.eeg_path).resolve(), []).append(i)  # (one file by two spellings: a/../b, a link)
    out = list(runs)
    for path, idx in by_file.items():
        if len(idx) < 2:
            continue
        told = [i for i in idx if any(getattr(runs[i], k) is not None for k in ("marker_block", "eeg_start", "eeg_stop", "first_onset"))]
        if told and len(told) < len(idx):
            missing = [runs[i].key for i in idx if i not in told]
            raise Eeg2fmriInputError(f"{path}: this EEG file is listed for {len(idx)} runs; expected each to say which part of it is its own "
                                     f"(marker_block, or eeg_start/eeg_stop) or when its first volume starts (first_onset, s of the "
                                     f"file), found none for {missing}; give them one too, or leave them out everywhere (the runs then "
                                     "take the file's blocks of scanner markers in run order).")
        if told:
            continue
        from eeg2fmri.io.pairing import natural_key

        # in run order where every row has a run label (user test 50: a table listing runs 3, 2, 1 paired run 3's BOLD with
        # the first block, without a word), else in the order listed
        numbered = all(runs[i].run is not None for i in idx)
        order = sorted(idx, key=lambda i: (natural_key(str(runs[i].session or "")), natural_key(str(runs[i].run)))) if numbered else idx
        for k, i in enumerate(order, start=1):
            out[i] = dataclasses.replace(runs[i], marker_block=k, meta={**dict(runs[i].meta), "runs_in_eeg_file": len(idx)})
        if order != idx:
            logger.warning("%s: listed for %d runs out of run order; each takes the file's block of scanner markers in run order (%s); "
                           "give a marker_block column to pair them otherwise", path, len(idx), ", ".join(runs[i].key for i in order))
        else:
            logger.info("%s: listed for %d runs (%s): each takes the file's block of scanner markers in %s order", path, len(idx),
                        ", ".join(runs[i].key for i in order), "run" if numbered else "listed")
    return out


def read_runs_table(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Runs as explicit file pairs from a table: a ``.tsv`` (or ``.csv``) with a header row of :data:`RUN_KEYS`.

    Columns ``eeg``, ``bold`` and ``subject`` are required; relative file paths are taken relative to
    the table's folder; empty cells are left out. The result goes to :func:`prepare_dataset` /
    :func:`prepare` (``eeg2fmri prepare runs.tsv --out DIR``).
    """
    import csv

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as err:
        raise Eeg2fmriInputError(f"{path}: expected a readable runs table, got {err.strerror or err}; check the path.") from None
    sep = "comma" if path.suffix.lower() == ".csv" else "tab"
    reader = csv.DictReader(text.splitlines(), delimiter="," if sep == "comma" else "\t")
    rows = list(reader)
    bad = sorted(set(reader.fieldnames or ()) - set(RUN_KEYS))
    if bad:
        raise Eeg2fmriInputError(f"{path}: unknown column(s) {bad}; expected some of {sorted(RUN_KEYS)} (eeg, bold and subject required; "
                                 f"{sep}-separated).")
    if not rows:
        raise Eeg2fmriInputError(f"{path}: expected a header row ({', '.join(RUN_KEYS)}) and one row per run, found no run; add the runs.")
    out = []
    for i, row in enumerate(rows, start=2):
        if None in row:  # more cells than header columns
            raise Eeg2fmriInputError(f"{path}: line {i}: expected {len(reader.fieldnames or ())} {sep}-separated cells (the header's), found "
                                     f"{len(reader.fieldnames or ()) + len(row[None])}; fix that line.")
        run = {k: v.strip() for k, v in row.items() if k and v is not None and v.strip() != ""}
        for k in ("eeg", "bold"):
            if k in run and not os.path.isabs(run[k]):
                run[k] = str(path.absolute().parent / run[k])
        out.append(run)
    return out


def _run_source(source: Any) -> Any:
    """A dataset folder as it is; a runs table (.tsv/.csv file) or a list of runs as :class:`LayoutRun` records."""
    if isinstance(source, (str, os.PathLike)):
        if Path(source).suffix.lower() in (".tsv", ".csv") and Path(source).is_file():
            return runs_from_files(read_runs_table(source))
        return source
    return runs_from_files(source)


def _has_objects(runs: Any) -> bool:
    """Whether a list of runs holds an MNE Raw or a nibabel image instead of a path."""
    if isinstance(runs, (str, os.PathLike)):
        return False
    return any(isinstance(r, Mapping) and any(v is not None and not isinstance(v, (str, os.PathLike)) for k, v in r.items() if k in ("eeg", "bold"))
               for r in runs)


def _objects_to_files(runs: Sequence, folder: Path) -> list:
    """Runs whose ``eeg`` is an MNE Raw or whose ``bold`` a nibabel image, with those written to ``folder`` (FIF, NIfTI)."""
    import mne
    import nibabel as nib

    out = []
    written: dict[int, str] = {}  # one Raw listed for several runs is written once (runs_from_files then gives each its part)
    for i, r in enumerate(runs):
        if not isinstance(r, Mapping):
            out.append(r)
            continue
        r = dict(r)
        if isinstance(r.get("eeg"), mne.io.BaseRaw):
            if id(r["eeg"]) not in written:
                path = folder / f"run{i}_raw.fif"
                r["eeg"].save(path, fmt="double", overwrite=True, verbose="error")  # (no float32 round-off of the samples)
                written[id(r["eeg"])] = str(path)
            r["eeg"] = written[id(r["eeg"])]
        elif r.get("eeg") is not None and not isinstance(r["eeg"], (str, os.PathLike)):
            raise Eeg2fmriInputError(f"runs[{i}]: eeg: expected a file path or an MNE Raw, got {type(r['eeg']).__name__}.")
        if isinstance(r.get("bold"), nib.spatialimages.SpatialImage):
            path = folder / f"run{i}_bold.nii"
            nib.save(r["bold"], path)
            r["bold"] = str(path)
        elif r.get("bold") is not None and not isinstance(r["bold"], (str, os.PathLike)):
            raise Eeg2fmriInputError(f"runs[{i}]: bold: expected a file path or a nibabel image, got {type(r['bold']).__name__}.")
        out.append(r)
    return out


class _RenameFilter(logging.Filter):
    """Rewrites each record's text with ``rename`` (a logging filter that lets every record through)."""

    def __init__(self, rename: Callable[[str], str]) -> None:
        super().__init__()
        self.rename = rename

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        new = self.rename(text)
        if new != text:
            record.msg, record.args = new, ()
        return True


@contextlib.contextmanager
def _messages_renamed(rename: Callable[[str], str]) -> Iterator[None]:
    """Within the block, the package's and MNE's log records (warnings included) read as ``rename`` rewrites them."""
    loggers = [logging.getLogger("eeg2fmri"), logging.getLogger("mne")]
    flt = _RenameFilter(rename)
    for lg in loggers:
        lg.addFilter(flt)
    try:
        yield
    finally:
        for lg in loggers:
            lg.removeFilter(flt)


def prepare_dataset(
    bids_root: str | os.PathLike | Sequence,
    config: PrepareConfig | dict | None = None,
    *,
    subjects: list[str] | None = None,
    progress_bar: bool = True,
    n_jobs: int = 1,
    layout: str = "bids",
    layout_options: dict | None = None,
) -> PreparedDataset:
    """Read, synchronise and preprocess every run of a BIDS EEG-fMRI dataset (in memory).

    Parameters
    ----------
    bids_root : path-like | sequence
        BIDS root (or a published dataset's folder, see ``layout``), or the runs themselves as explicit
        EEG/BOLD file pairs, ``[{"eeg": "s1/rec.vhdr", "bold": "s1/bold.nii.gz", "subject": "01"}, ...]``
        (:func:`runs_from_files`) or a ``.tsv``/``.csv`` table of them (:func:`read_runs_table`); ``layout``
        is then ignored: data in a layout of your own without an adapter. ``eeg`` may be an MNE ``Raw`` and
        ``bold`` a nibabel image instead of a path (written once to a temporary folder, FIF and NIfTI, and
        prepared like files; the TR then comes from the image header unless ``tr`` is given).
    config : PrepareConfig | dict | None
        Preprocessing settings.
    subjects : list of str | None
        Subset of subject labels.
    progress_bar : bool
        Show a progress bar over runs.
    n_jobs : int
        Runs processed in parallel (processes).
    layout : str
        ``"bids"`` (default), ``"auto"`` or a published dataset's own layout
        (``eeg2fmri datasets`` lists them).
    layout_options : dict | None
        Options of that layout (e.g. ``{"variant": "noGA"}``).

    Returns
    -------
    dataset : PreparedDataset
        Save it with :meth:`PreparedDataset.save` (or use :func:`prepare` to
        write straight to disk).
    """
    from collections.abc import Mapping

    if isinstance(bids_root, (str, os.PathLike)):
        bids_root = Path(bids_root).expanduser()  # (user test 29: '~/...' was read as a folder named '~')
        if (bids_root / "manifest.json").is_file() and '"eeg2fmri-prepared"' in (bids_root / "manifest.json").read_text(encoding="utf-8"):
            raise Eeg2fmriInputError(f"{bids_root}: expected a dataset of EEG and BOLD runs, found a prepared dataset (its manifest.json); "
                                     "it is ready: pass it to train, evaluate or benchmark (data.prepared in a config, "
                                     "load_prepared(PATH) in Python) -- prepare it again only from its raw data (user test 29).")
    check_instance(bids_root, (str, os.PathLike, list, tuple, Mapping), "bids_root", where="prepare_dataset",
                   fix="pass a BIDS folder, or a list of runs such as [{'eeg': raw_or_path, 'bold': img_or_path, 'subject': '01'}]")
    cfg = config if isinstance(config, PrepareConfig) else PrepareConfig.from_dict(config)
    _validate_config(cfg)
    cfg = _absolute_grid(cfg)
    if cfg.clean:  # (defaults written out, e.g. PCA-OBS's cross-fade: the manifest and a model say what ran)
        from eeg2fmri.preprocessing.cleaning import check_clean_options

        cfg = dataclasses.replace(cfg, clean=check_clean_options(cfg.clean))
    if _has_objects(bids_root):  # MNE Raw / nibabel images: written once to a temporary folder, then prepared like files
        import tempfile

        with tempfile.TemporaryDirectory(prefix="eeg2fmri-objects-") as tmp:
            def given(text: str) -> str:  # the temporary copies' paths mean nothing to the caller: name the objects given
                text = re.sub(rf"{re.escape(str(Path(tmp)))}/run(\d+)_raw\.fif", r"runs[\1]['eeg'] (the mne.io.Raw given)", text)
                return re.sub(rf"{re.escape(str(Path(tmp)))}/run(\d+)_bold\.nii", r"runs[\1]['bold'] (the nibabel image given)", text)

            try:
                with _messages_renamed(given):  # warnings and info lines too (user test 22)
                    ds = prepare_dataset(_objects_to_files(bids_root, Path(tmp)), cfg, subjects=subjects, progress_bar=progress_bar,
                                         n_jobs=n_jobs)
            except Eeg2fmriInputError as err:
                msg = given(str(err))
                if "TR is" in msg and "apart" in msg:
                    msg += " A nibabel image made in memory has the TR its header's zooms give (1.0 s unless set): pass the run's 'tr'."
                raise Eeg2fmriInputError(msg) from None
        ds.provenance["bids_root"] = "(MNE Raw / nibabel objects, written to a temporary folder while preparing)"
        return ds
    source = _run_source(bids_root)
    explicit = not isinstance(source, (str, os.PathLike))
    if explicit:  # runs as explicit file pairs: the folder holding them all stands for the dataset's root
        given = source
        bids_root, layout = Path(os.path.commonpath([str(p) for r in given for p in (r.eeg_path, r.bold_path)])), "files"
        if bids_root.is_file():
            bids_root = bids_root.parent
    records = _records(given if explicit else bids_root, subjects, layout, layout_options, cfg.tr, root=bids_root)
    table_names = _table_names(records, cfg)  # region tables instead of BOLD volumes: their regions' names (else None)
    cfg = _resolve_config(cfg, records)
    source0: dict = {}  # the first run's own grid where it was resampled (voxel_size, a grid shape or a reference image)
    img0, tr0 = _read_bold_on_grid(records[0], cfg, source=source0)
    shape0 = img0.shape[:3]
    # first run: for a data-derived mask the run's BOLD is read in a thread while this thread processes the run's EEG; the
    # mask is computed here afterwards. (The whole mask computation ran in the thread until session 31: its
    # warnings.catch_warnings block raced with the EEG reader's -- the module's filters are process-wide -- so a reader
    # warning meant to be recorded was raised or printed: a flaky CI failure. The thread now touches no warnings filter.)
    # (region tables: every region is a target, whatever its values)
    if table_names is None and cfg.mask == "data":
        from concurrent.futures import ThreadPoolExecutor

        from eeg2fmri.io.bold import data_masked_bold, stream_bold

        where0 = str(img0.get_filename())
        with ThreadPoolExecutor(1) as ex:
            fut = ex.submit(stream_bold, img0, where=where0)
            eeg0 = _prepare_eeg(records[0], cfg, img0, tr0)
            streamed = fut.result()
        first_bold, mask, _ = data_masked_bold(streamed, img0, where=where0)
        del streamed
    else:
        mask, first_bold = _resolve_mask(cfg, img0, records) if table_names is None else (np.ones(shape0, dtype=bool), None)
        eeg0 = _prepare_eeg(records[0], cfg, img0, tr0)
    atlas, rois = _fit_atlas(cfg, mask, img0.affine)
    if table_names is not None:
        from eeg2fmri.io.roi_tables import TABLE_SOURCE

        rois = {"names": table_names, "labels": list(range(1, len(table_names) + 1)), "source": TABLE_SOURCE}
    if first_bold is None:
        first_bold = load_masked_bold(img0, mask, where=str(records[0].bold_path))[0]
    if _onto_one_grid(cfg) and cfg.grid != "first":  # (a reference image's grid: the first run may not fill it either)
        _warn_outside_fov(records[0], cfg, first_bold)
    results = [_finish_run(records[0], cfg, eeg0, first_bold, atlas, img0.shape[3], mask)]
    if source0:
        results[0][2]["bold_grid_source"] = source0
    del first_bold, eeg0
    results += _map(partial(_prepare_one, cfg=cfg, mask=mask, tr0=tr0, shape0=shape0, atlas=atlas, affine0=np.asarray(img0.affine, float),
                            first=records[0].bold_path), records[1:], n_jobs, progress_bar,
                    desc=(f"prepare runs 2-{len(records)} of {len(records)}" if len(records) > 2 else f"prepare run 2 of {len(records)}")
                    + " (run 1 done with the mask)",
                    ) if len(records) > 1 else []  # (the first run is prepared with the mask, above)
    runs = [r[0] for r in results]
    infos = [r[1] for r in results]
    _check_consistent(infos, records)
    from eeg2fmri.io.bold import bids_space_entity, xform_code

    found = {getattr(r, "layout", None) for r in records} - {None}
    # the layout that found the runs ("auto" says only how it was chosen: user test 17)
    used = next(iter(found)) if layout == "auto" and len(found) == 1 else layout
    prov = {"bids_root": str(Path(bids_root).absolute()), "layout": used, **({"layout_requested": "auto"} if used != layout else {}),
            "bold_xform_code": xform_code(img0),
            "bold_space": bids_space_entity(records[0].bold_path), "inputs": {}}
    for rec, (_, _, p) in zip(records, results):
        given = _run_given(rec)
        prov["inputs"][rec.key] = {**p, "eeg_sha1": _checksum(rec.eeg_path), "bold_sha1": _checksum(rec.bold_path), **({"given": given} if given else {})}
    _unequal_leading_drops(records, prov["inputs"])
    return PreparedDataset(runs, mask, np.asarray(img0.affine), float(cfg.resample_tr or tr0), min(float(i["sfreq"]) for i in infos), list(infos[0]["ch_names"]), cfg,
                           float(infos[0]["frame_rate"]), infos[0]["freqs"], prov, rois)


def _table_names(records: list, cfg: PrepareConfig) -> list[str] | None:
    """The regions of runs whose targets are region tables (:mod:`eeg2fmri.io.roi_tables`), checked to be the same in
    every run and not mixed with BOLD images; ``None`` when the runs have BOLD images. Options that act on a voxel grid
    are refused with tables."""
    from eeg2fmri.io.roi_tables import is_target_table, read_target_table

    tables = [is_target_table(r.bold_path) for r in records]
    if not any(tables):
        return None
    if not all(tables):
        img = next(r for r, t in zip(records, tables) if not t)
        tab = next(r for r, t in zip(records, tables) if t)
        raise Eeg2fmriInputError(f"{tab.bold_path}: expected every run's targets in one form, found region tables (this run) and BOLD images "
                                 f"({img.bold_path}); prepare the runs with tables and those with images as two datasets, or extract the "
                                 "images' region series into tables of the same regions.")
    grid_options = {k: v for k, v in (("atlas", cfg.atlas), ("grid", cfg.grid), ("voxel_size", cfg.voxel_size), ("confounds", cfg.confounds))
                    if v not in (None, [], ())}
    if cfg.mask != "data":
        grid_options["mask"] = cfg.mask
    if grid_options:
        raise Eeg2fmriInputError(f"{records[0].bold_path}: the targets are region tables (one column per region, no voxel grid), but the "
                                 f"prepare options {sorted(grid_options)} act on BOLD volumes; leave them out (regress confounds and "
                                 "choose regions when you extract the tables).")
    first = None
    for rec in records:
        values, names = read_target_table(rec.bold_path)
        if first is None:
            first = (rec, names)
            centred = np.abs(values.mean(0)) < 0.1 * np.maximum(values.std(0), 1e-12)
            if cfg.drop_volumes == "auto" and centred.all():  # (user test 26: bright first volumes kept without a word)
                logger.warning("%s: the region series are centred (mean about 0, e.g. z-scored): the automatic non-steady-state check "
                               "(drop_volumes: auto) looks for bright first volumes in raw intensities and cannot see them here; "
                               "give drop_volumes (the scan's number of non-steady-state volumes) if the tables keep them",
                               rec.bold_path)
        elif names != first[1]:
            missing, extra = [n for n in first[1] if n not in names], [n for n in names if n not in first[1]]
            what = (f"missing here: {missing[:5]}; only here: {extra[:5]}" if missing or extra else "the same regions in another order")
            raise Eeg2fmriInputError(f"{rec.bold_path}: expected the regions of the first run's table {first[0].bold_path} in the same order "
                                     f"({len(first[1])} columns), found {len(names)} ({what}); give every run the same columns (one of "
                                     "the two files differs from the others: check both).")
    return first[1]


def _fit_atlas(cfg: PrepareConfig, mask: np.ndarray, affine: np.ndarray):
    """The fitted atlas (or None) and what the manifest records about its ROIs."""
    if cfg.atlas is None:
        return None, None
    from eeg2fmri.preprocessing.atlas import Atlas

    if cfg.atlas == "power_2011":
        atlas = Atlas.power_2011(cfg.atlas_radius, on_empty="drop")
    else:
        import nibabel as nib

        img = nib.load(cfg.atlas)
        atlas = Atlas.from_probabilistic(img) if img.ndim == 4 else Atlas.from_labels(cfg.atlas)  # (a path: names from a TSV beside it)
    atlas.fit((mask, affine))
    w = atlas.weights_.tocoo()
    rois = {"labels": [int(v) for v in atlas.labels_], "names": [str(n) for n in atlas.names_], "source": cfg.atlas,
            "weights": {"rows": w.row.tolist(), "cols": w.col.tolist(), "values": w.data.tolist()}}
    return atlas, rois


def _map(fn, items: list, n_jobs: int, progress_bar: bool, desc: str = "prepare runs") -> list:
    if n_jobs <= 1 or len(items) <= 1:
        return [fn(it) for it in progress(items, desc=desc, enabled=progress_bar)]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    out = [None] * len(items)
    with ProcessPoolExecutor(max_workers=n_jobs, mp_context=mp.get_context("fork")) as ex:
        futs = {ex.submit(fn, it): i for i, it in enumerate(items)}
        from concurrent.futures import as_completed

        for fut in progress(as_completed(futs), desc=desc, total=len(futs), enabled=progress_bar):
            out[futs[fut]] = fut.result()
    return out


def _published_layout_hint(root: Path) -> None:
    """Warn when a folder read as plain BIDS looks like a published dataset with a layout of its own (user test 17: ds002336
    read as BIDS took the raw 5 kHz EEG with its gradient artefacts; the layout reads the corrected eeg_pp)."""
    from eeg2fmri.io.layouts import get_layout, list_layouts

    hits = []
    for name in list_layouts():
        if name == "bids":
            continue
        try:
            if get_layout(name).detect(root):
                hits.append(name)
        except (OSError, Eeg2fmriInputError):
            continue
    if len(hits) == 1:
        lay = get_layout(hits[0])
        # once per process: prepare lists the runs twice (the stale-output check, then the real reading: review)
        warn_once_per_process(f"{root}: looks like {lay.TITLE}, read here as plain BIDS (--layout bids); --layout {hits[0]} (or --layout "
                              f"auto) reads it with that dataset's conventions (`eeg2fmri datasets {hits[0]}` says which); Python: "
                              f"layout={hits[0]!r}")


def _records(source, subjects, layout: str, layout_options: dict | None, tr: float | None = None, *, root=None) -> list:
    from eeg2fmri.io.layouts import find_runs_layout

    listed = not isinstance(source, (str, os.PathLike))  # runs given as explicit file pairs (runs_from_files)
    root = source if root is None else root
    if not listed and layout == "bids":
        _published_layout_hint(Path(source))
    every = (lambda: list(source)) if listed else (lambda: find_runs_layout(source, layout=layout, **(layout_options or {})))
    records = list(source) if listed else find_runs_layout(source, layout=layout, subjects=subjects, **(layout_options or {}))
    if subjects is not None:
        wanted = subject_labels(subjects, where="subjects")
        if listed:
            records = [r for r in records if r.subject in wanted]
        found = {r.subject for r in records}
        missing = [s for s in wanted if s not in found]
        if missing:
            available = sorted({r.subject for r in every()})
            raise Eeg2fmriInputError(
                f"{root}: expected subjects with complete runs {available}, got subject(s) {missing} without any; "
                "use labels from that list (with or without 'sub-'), or check the folder with `eeg2fmri datasets --check ROOT`."
            )
    from dataclasses import replace

    from eeg2fmri.io.layouts import as_layout_run

    if tr is not None:  # PrepareConfig.tr: every run's TR, whatever its header or sidecar says
        records = [replace(as_layout_run(r), tr=float(tr)) for r in records]
    # region tables instead of BOLD volumes (NeuroBOLT's DiFuMo-64 pickles): the table stands where the BOLD file would
    records = [replace(as_layout_run(r), bold_path=Path(r.meta["roi_targets"])) if r.bold_path is None and getattr(r, "meta", {}).get("roi_targets")
               else r for r in records]
    eeg_only = [r.key for r in records if r.bold_path is None]
    if eeg_only:
        raise Eeg2fmriInputError(f"{root}: runs {eeg_only[:5]} have EEG but no BOLD (an EEG-only layout?); preparing training data needs both. "
                                 "Use `eeg2fmri synthesize` for EEG-only recordings.")
    return records


def _unequal_leading_drops(records: list, inputs: dict) -> None:
    """Warn where runs cut from one EEG recording dropped different numbers of leading markers as dummy scans: a scanner
    discards as many in every run of a session, so a run with more is likely a BOLD file cut short whose extra markers
    were taken as leading dummies, every volume paired k TRs late (user test 50: only the run's "assumed" note said it)."""
    by_file: dict[str, list] = {}
    for rec in records:
        info = inputs.get(rec.key) or {}
        if getattr(rec, "marker_block", None) is not None and info.get("sync") == "markers":
            by_file.setdefault(str(Path(rec.eeg_path).resolve()), []).append((rec.key, int(info.get("sync_dropped") or 0)))
    for path, drops in by_file.items():
        counts = sorted({d for _, d in drops})
        if len(drops) > 1 and len(counts) > 1:
            most = max(d for _, d in drops)
            odd = [k for k, d in drops if d == most]
            warn_once_per_process(f"{Path(path).name}: runs cut from this recording dropped different numbers of leading scanner markers "
                                  f"as dummy scans ({', '.join(f'{k}: {d}' for k, d in drops)}); a scanner discards as many in every "
                                  f"run, so {', '.join(odd)} may be a BOLD file cut short whose extra markers were taken as dummies "
                                  f"(every volume {most - counts[0]} TR(s) late): check it; if so, give that run dummy_scans "
                                  "'drop-last' (a runs-table column) or declare NumberOfVolumesDiscardedByScanner in its *_bold.json")


def _run_given(rec) -> dict | None:
    """What a run was given beside its files that decides its timing: its part of the EEG file (``marker_block``,
    ``eeg_start``, ``eeg_stop``) and, for runs given as file pairs (a runs table), its own ``first_onset``, ``tr`` and
    ``marker``; ``None`` where nothing was (a manifest's runs then compare as before these were recorded)."""
    keys = ("marker_block", "eeg_start", "eeg_stop") + (("first_onset", "tr", "marker", "dummy_scans") if getattr(rec, "layout", None) == "files" else ())
    out = {k: (list(v) if isinstance(v, tuple) else v) for k in keys if (v := getattr(rec, k, None)) is not None}
    return out or None


def _what_differs(was: dict, now: dict, old_cfg: dict | None, new_cfg: dict) -> str:
    """`` (what differs: ...)`` between a prepared folder's manifest and this call: runs added or gone, runs whose EEG or
    BOLD file or a companion changed, config keys (user test 15: the message named neither)."""
    parts = []
    added, gone = sorted(set(now) - set(was)), sorted(set(was) - set(now))
    if added:
        parts.append(f"{len(added)} run(s) not in it: {', '.join(added[:3])}{' ...' if len(added) > 3 else ''}")
    if gone:
        parts.append(f"{len(gone)} of its run(s) not found now: {', '.join(gone[:3])}{' ...' if len(gone) > 3 else ''}")
    for kind, i in (("EEG", 0), ("BOLD", 1)):
        changed = sorted(k for k in set(was) & set(now) if was[k][i] != now[k][i])
        if changed:
            parts.append(f"the {kind} file or a companion of it (marker file, channels.tsv, events.tsv, sidecars) changed in {len(changed)} "
                         f"run(s): {', '.join(changed[:3])}{' ...' if len(changed) > 3 else ''}")
    moved = sorted(k for k in set(was) & set(now) if was[k][2:] != now[k][2:])
    if moved:
        parts.append(f"a run's part of its EEG file or its own timing (marker_block, eeg_start/eeg_stop, first_onset, tr, marker of a runs "
                     f"table) changed in {len(moved)} run(s): {', '.join(moved[:3])}{' ...' if len(moved) > 3 else ''}")
    if old_cfg is None:
        parts.append("its config could not be read")
    elif old_cfg != new_cfg:
        keys = sorted(k for k in set(old_cfg) | set(new_cfg) if old_cfg.get(k) != new_cfg.get(k))
        parts.append("config " + "; ".join(f"{k}: {old_cfg.get(k)!r} there, {new_cfg.get(k)!r} now" for k in keys[:5]) + (" ..." if len(keys) > 5 else ""))
    return f" (what differs: {'; '.join(parts)})" if parts else ""


def prepare(
    bids_root: str | os.PathLike,
    out: str | os.PathLike,
    config: PrepareConfig | dict | None = None,
    *,
    subjects: list[str] | None = None,
    overwrite: bool | str = False,
    progress_bar: bool = True,
    n_jobs: int = 1,
    layout: str = "bids",
    layout_options: dict | None = None,
) -> tuple[Path, bool]:
    """Prepare a dataset straight to disk; a re-run with the same inputs is a no-op.

    The inputs are every run's EEG and BOLD files with their companions (``.vmrk``, ``.fdt``, ``channels.tsv``,
    ``events.tsv``, sidecars; see :func:`_checksum`); with a changed input or config an existing ``out`` raises
    unless ``overwrite=True``, which always prepares again (``eeg2fmri prepare --overwrite``), or
    ``overwrite="stale"``, which keeps an up-to-date ``out`` and replaces a stale one (a folder the package owns,
    e.g. a training run's ``prepared/``).

    Returns
    -------
    out : Path
    written : bool
        ``False`` when ``out`` already held this dataset prepared from the same
        inputs (same checksums) with the same config.
    """
    cfg = config if isinstance(config, PrepareConfig) else PrepareConfig.from_dict(config)
    _validate_config(cfg)
    cfg = _absolute_grid(cfg)
    if cfg.clean:  # (defaults written out, e.g. PCA-OBS's cross-fade: the manifest and a model say what ran)
        from eeg2fmri.preprocessing.cleaning import check_clean_options

        cfg = dataclasses.replace(cfg, clean=check_clean_options(cfg.clean))
    out = Path(out)
    man = out / "manifest.json"
    if overwrite not in (True, False, "stale"):
        raise Eeg2fmriInputError(f"prepare: expected overwrite True, False or 'stale', got {overwrite!r}.")
    differs = ""
    if man.exists() and overwrite is not True and not _has_objects(bids_root):  # True (--overwrite) always redoes the work (objects: always)
        old = json.loads(man.read_text(encoding="utf-8"))
        records = _records(_run_source(bids_root), subjects, layout, layout_options, cfg.tr)
        was = {k: (v.get("eeg_sha1"), v.get("bold_sha1"), v.get("given")) for k, v in old.get("provenance", {}).get("inputs", {}).items()}
        now = {r.key: (_checksum(r.eeg_path), _checksum(r.bold_path), _run_given(r)) for r in records}
        try:  # keys added since the manifest was written take their defaults, so a newer eeg2fmri does not redo the same work
            # (a manifest from before drop_volumes dropped none: "auto" may leave volumes out, so it is not the same work)
            old_cfg = PrepareConfig.from_dict({"drop_volumes": 0, **(old.get("config") or {})}).to_dict()
        except (Eeg2fmriInputError, TypeError, ValueError):
            old_cfg = None
        new_cfg = _resolve_config(cfg, records).to_dict()
        regridded = _reference_grid_changed(cfg, old)
        if was == now and old_cfg == new_cfg and not regridded:
            logger.info("%s is up to date (same inputs and config): nothing to do", out)
            return out, False
        differs = _what_differs(was, now, old_cfg, new_cfg) or (f" (what differs: the grid of {cfg.grid}, replaced since)" if regridded else "")
    if out.exists() and overwrite is False:  # refuse before the work, not after it (the save would refuse)
        what = "a prepared dataset of other inputs or another config" if man.exists() else "a folder"
        raise Eeg2fmriInputError(f"{out}: already holds {what}{differs}; nothing was prepared. Choose another --out, or pass overwrite=True "
                                 "(--overwrite on the command line) to replace it.")
    ds = prepare_dataset(bids_root, cfg, subjects=subjects, progress_bar=progress_bar, n_jobs=n_jobs, layout=layout, layout_options=layout_options)
    return ds.save(out, overwrite=bool(overwrite)), True
