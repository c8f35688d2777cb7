"""Prepared datasets: continuous per-run arrays stored once, plus a manifest.

A prepared dataset holds, per run, the EEG representation as continuous
frames (``features``, shape (n_frames, n_chans, n_bands)) and the masked BOLD
(``bold``, shape (n_volumes, n_voxels)), with the volume onsets used to align
them. Windows (see :mod:`eeg2fmri.datasets.windows`) are views into these
arrays, never copies.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eeg2fmri.io import find_runs, read_bold, read_eeg, volume_onsets
from eeg2fmri.io.bold import load_bold_data
from eeg2fmri.io.sync import DEFAULT_MARKERS
from eeg2fmri.preprocessing import (
    DEFAULT_BANDS,
    band_envelopes,
    bin_frames,
    clean_eeg,
    compute_mask,
    standardize_features,
)
from eeg2fmri.utils.atomic import atomic_dir
from eeg2fmri.utils.logs import logger, progress
from eeg2fmri.utils.validation import Eeg2fmriInputError, check_positive_int

__all__ = ["PrepareConfig", "PreparedDataset", "PreparedRun", "eeg_to_frames", "prepare_dataset", "load_prepared"]

FORMAT_VERSION = 1


@dataclass
class PrepareConfig:
    """How raw recordings become a prepared dataset (saved in the manifest).

    Parameters
    ----------
    bands : dict
        Band name -> (low, high) Hz for band-power envelopes.
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
    first_onset : float | None
        Fallback volume-0 onset (s) when there are no markers.
    mask : str
        ``"data"`` (EPI mask of the first run's mean image, used for all runs)
        or a path to a mask NIfTI on the BOLD grid.
    """

    bands: dict = field(default_factory=lambda: dict(DEFAULT_BANDS))
    frames_per_tr: int = 1
    l_freq: float | None = 0.5
    h_freq: float | None = None
    notch: float | None = None
    reference: str | None = "average"
    marker: list | None = field(default_factory=lambda: list(DEFAULT_MARKERS))
    first_onset: float | None = None
    mask: str = "data"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bands"] = {k: list(v) for k, v in self.bands.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> PrepareConfig:
        d = dict(d or {})
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise Eeg2fmriInputError(f"unknown prepare option(s) {sorted(unknown)}; valid: {sorted(cls.__dataclass_fields__)}.")
        if "bands" in d:
            d["bands"] = {k: tuple(v) for k, v in d["bands"].items()}
        return cls(**d)


@dataclass
class PreparedRun:
    """Continuous arrays of one run.

    Attributes
    ----------
    key, subject : str
    features : array, shape (n_frames, n_chans, n_bands)
        Standardised log band power, frames of ``tr / frames_per_tr`` seconds;
        frame ``frame_offset + i * frames_per_tr`` starts at volume ``i``'s onset.
    frame_offset : int
        Frames before volume 0 (EEG recorded before the scan).
    bold : array, shape (n_volumes, n_voxels) | None
        Masked BOLD intensities (``None`` for EEG-only runs).
    onsets : array, shape (n_volumes,)
        Volume onsets in seconds from the EEG start.
    """

    key: str
    subject: str
    features: np.ndarray
    frame_offset: int
    bold: np.ndarray | None
    onsets: np.ndarray

    @property
    def n_volumes(self) -> int:
        return len(self.onsets)


@dataclass
class PreparedDataset:
    """Runs plus what is common to them (grid, rates, channel names, config)."""

    runs: list[PreparedRun]
    mask: np.ndarray
    affine: np.ndarray
    tr: float
    sfreq: float
    ch_names: list[str]
    config: PrepareConfig
    provenance: dict = field(default_factory=dict)

    @property
    def subjects(self) -> list[str]:
        return sorted({r.subject for r in self.runs})

    @property
    def bands(self) -> list[str]:
        return list(self.config.bands)

    @property
    def frame_rate(self) -> float:
        return self.config.frames_per_tr / self.tr

    def save(self, out: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the dataset atomically: one ``.npy`` per array and ``manifest.json``."""
        import nibabel as nib

        with atomic_dir(out, overwrite=overwrite) as tmp:
            runs_meta = []
            for i, r in enumerate(self.runs):
                np.save(tmp / f"run{i:03d}_features.npy", np.ascontiguousarray(r.features, dtype=np.float32))
                if r.bold is not None:
                    np.save(tmp / f"run{i:03d}_bold.npy", np.ascontiguousarray(r.bold, dtype=np.float32))
                np.save(tmp / f"run{i:03d}_onsets.npy", np.asarray(r.onsets, dtype=np.float64))
                runs_meta.append(dict(index=i, key=r.key, subject=r.subject, frame_offset=int(r.frame_offset), n_volumes=r.n_volumes,
                                      features_shape=list(r.features.shape), bold_shape=None if r.bold is None else list(r.bold.shape)))
            nib.save(nib.Nifti1Image(self.mask.astype(np.uint8), self.affine), tmp / "mask.nii.gz")
            manifest = dict(format_version=FORMAT_VERSION, kind="eeg2fmri-prepared", tr=self.tr, sfreq=self.sfreq, ch_names=self.ch_names,
                            frame_rate=self.frame_rate, n_voxels=int(self.mask.sum()), grid_shape=list(self.mask.shape), affine=self.affine.tolist(),
                            config=self.config.to_dict(), runs=runs_meta, provenance=self.provenance)
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        return Path(out)


def load_prepared(path: str | os.PathLike, *, mmap: bool = True) -> PreparedDataset:
    """Open a prepared dataset; arrays are memory-mapped (read-only) by default."""
    import nibabel as nib

    path = Path(path)
    man_path = path / "manifest.json"
    if not man_path.exists():
        raise Eeg2fmriInputError(f"{path}: expected a prepared dataset with manifest.json, found none; create it with `eeg2fmri prepare`.")
    man = json.loads(man_path.read_text())
    if man.get("kind") != "eeg2fmri-prepared" or man.get("format_version") != FORMAT_VERSION:
        raise Eeg2fmriInputError(f"{man_path}: not an eeg2fmri prepared dataset of format {FORMAT_VERSION}; re-run `eeg2fmri prepare`.")
    mode = "r" if mmap else None
    runs = []
    for rm in man["runs"]:
        i = rm["index"]
        bold_p = path / f"run{i:03d}_bold.npy"
        runs.append(PreparedRun(rm["key"], rm["subject"], np.load(path / f"run{i:03d}_features.npy", mmap_mode=mode), rm["frame_offset"],
                                np.load(bold_p, mmap_mode=mode) if bold_p.exists() else None, np.load(path / f"run{i:03d}_onsets.npy")))
    mask = np.asarray(nib.load(path / "mask.nii.gz").dataobj) > 0
    return PreparedDataset(runs, mask, np.asarray(man["affine"]), man["tr"], man["sfreq"], man["ch_names"], PrepareConfig.from_dict(man["config"]), man.get("provenance", {}))


def eeg_to_frames(raw, config: PrepareConfig, *, tr: float, onsets: np.ndarray | None = None, where: str = "EEG") -> tuple[np.ndarray, int, np.ndarray, list[str]]:
    """Turn one EEG recording into standardised band-power frames.

    Parameters
    ----------
    raw : mne.io.BaseRaw
    config : PrepareConfig
    tr : float
        Repetition time (s); frames are ``tr / frames_per_tr`` long.
    onsets : array | None
        Volume onsets (s from EEG start). ``None`` (EEG-only use): a regular
        grid from the first sample.

    Returns
    -------
    features : array, shape (n_frames, n_chans, n_bands)
    frame_offset : int
        Frames before the first onset.
    onsets : array
        The onsets used (the regular grid when none were given).
    ch_names : list of str
    """
    clean = clean_eeg(raw, l_freq=config.l_freq, h_freq=config.h_freq, notch=config.notch, reference=config.reference, where=where)
    sf = clean.info["sfreq"]
    dur = clean.n_times / sf
    m = config.frames_per_tr
    flen = tr / m
    if onsets is None:
        onsets = np.arange(int(np.floor(dur / tr))) * tr
    n_pre = int(np.floor(onsets[0] / flen + 1e-9))
    starts_pre = onsets[0] - flen * np.arange(n_pre, 0, -1)
    starts_in = (onsets[:, None] + flen * np.arange(m)[None, :]).ravel()
    starts = np.concatenate([starts_pre, starts_in])
    keep = starts + flen <= dur + 1e-9
    if not keep[n_pre:].all():
        raise Eeg2fmriInputError(f"{where}: the EEG ({dur:.1f} s) ends before the last volume ({onsets[-1] + tr:.1f} s); trim the BOLD run or supply the full EEG.")
    power = band_envelopes(clean.get_data(), sf, config.bands)
    frames = bin_frames(power, sf, starts, flen)  # (n_frames, n_bands, n_chans)
    feats = standardize_features(np.transpose(frames, (0, 2, 1)))
    return feats, n_pre, onsets, list(clean.ch_names)


def _checksum(path: Path) -> str:
    h = hashlib.sha1()
    h.update(str(path.stat().st_size).encode())
    with open(path, "rb") as f:
        h.update(f.read(1 << 20))
    return h.hexdigest()


def prepare_dataset(
    bids_root: str | os.PathLike,
    config: PrepareConfig | dict | None = None,
    *,
    subjects: list[str] | None = None,
    progress_bar: bool = True,
) -> PreparedDataset:
    """Read, synchronise and preprocess every run of a BIDS EEG-fMRI dataset (in memory).

    Parameters
    ----------
    bids_root : path-like
        BIDS root.
    config : PrepareConfig | dict | None
        Preprocessing settings.
    subjects : list of str | None
        Subset of subject labels.
    progress_bar : bool
        Show a progress bar over runs.

    Returns
    -------
    dataset : PreparedDataset
        Save it with :meth:`PreparedDataset.save`.
    """
    import nibabel as nib

    cfg = config if isinstance(config, PrepareConfig) else PrepareConfig.from_dict(config)
    check_positive_int(cfg.frames_per_tr, "frames_per_tr")
    records = find_runs(bids_root, subjects=subjects)
    runs, mask, affine, tr0, sf0, ch0, shape0 = [], None, None, None, None, None, None
    prov = {"bids_root": str(Path(bids_root).absolute()), "inputs": {}}
    for rec in progress(records, desc="prepare runs", enabled=progress_bar):
        img, tr = read_bold(rec.bold_path)
        where = str(rec.eeg_path)
        if tr0 is None:
            tr0, shape0, affine = tr, img.shape[:3], img.affine
            if cfg.mask == "data":
                mask = compute_mask(img)
            else:
                mimg = nib.load(cfg.mask)
                if mimg.shape[:3] != shape0:
                    raise Eeg2fmriInputError(f"{cfg.mask}: mask grid {mimg.shape[:3]} differs from the BOLD grid {shape0}; resample it to the BOLD grid first.")
                mask = np.asarray(mimg.dataobj) > 0
        elif abs(tr - tr0) > 1e-3 * tr0:
            raise Eeg2fmriInputError(f"{rec.bold_path}: TR {tr} s differs from the first run's {tr0} s; prepare runs with different TRs separately.")
        elif img.shape[:3] != shape0:
            raise Eeg2fmriInputError(f"{rec.bold_path}: grid {img.shape[:3]} differs from the first run's {shape0}; resample all runs to one grid first.")
        raw = read_eeg(rec.eeg_path)
        if sf0 is None:
            sf0 = raw.info["sfreq"]
        elif abs(raw.info["sfreq"] - sf0) > 1e-6:
            raise Eeg2fmriInputError(f"{where}: sampling rate {raw.info['sfreq']} Hz differs from the first run's {sf0} Hz; resample the recordings to one rate first.")
        sync = volume_onsets(raw, img.shape[3], tr, marker=cfg.marker, first_onset=cfg.first_onset, where=where)
        feats, off, onsets, ch = eeg_to_frames(raw, cfg, tr=tr, onsets=sync.onsets, where=where)
        if ch0 is None:
            ch0 = ch
        elif ch != ch0:
            raise Eeg2fmriInputError(f"{where}: EEG channels {ch} differ from the first run's {ch0}; pick or reorder channels to one set.")
        data = load_bold_data(img, str(rec.bold_path))
        bold = np.ascontiguousarray(data[mask].T)
        runs.append(PreparedRun(rec.key, rec.subject, feats, off, bold, onsets))
        prov["inputs"][rec.key] = {"eeg": str(rec.eeg_path), "bold": str(rec.bold_path), "eeg_sha1": _checksum(rec.eeg_path), "bold_sha1": _checksum(rec.bold_path), "sync": sync.method, "sync_notes": sync.notes}
        logger.info("%s: %d volumes, %d EEG channels, %d frames", rec.key, img.shape[3], len(ch), len(feats))
    return PreparedDataset(runs, mask, np.asarray(affine), float(tr0), float(sf0), list(ch0), cfg, prov)
