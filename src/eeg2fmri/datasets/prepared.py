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
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from eeg2fmri.io.bold import load_masked_bold
from eeg2fmri.io.sync import DEFAULT_MARKERS
from eeg2fmri.preprocessing import (
    DEFAULT_BANDS,
    band_envelopes,
    bin_frames,
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
    representation: str = "bandpower"
    work_sfreq: float | None = None
    stft_fmin: float = 0.5
    stft_fmax: float = 62.0
    stft_log: bool = False
    raw_sfreq: float = 100.0

    def needed_fmax(self) -> float:
        """Highest EEG frequency the representation uses (Hz)."""
        if self.representation == "stft":
            return float(self.stft_fmax)
        if self.representation == "raw":
            return float(self.raw_sfreq) / 2.5
        return float(max(hi for _, hi in self.bands.values()))

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


REPRESENTATIONS = ("bandpower", "stft", "raw")


@dataclass
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
    """

    key: str
    subject: str
    features: np.ndarray
    window_end: np.ndarray
    bold: np.ndarray | None
    onsets: np.ndarray

    @property
    def n_volumes(self) -> int:
        return len(self.onsets)


@dataclass
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

    @property
    def subjects(self) -> list[str]:
        return sorted({r.subject for r in self.runs})

    @property
    def bands(self) -> list[str]:
        return list(self.config.bands)

    @property
    def representation(self) -> str:
        return self.config.representation

    def subject_index(self, subject: str) -> int:
        return self.subjects.index(subject)

    def _manifest(self, runs_meta: list[dict]) -> dict:
        return dict(format_version=FORMAT_VERSION, kind="eeg2fmri-prepared", tr=self.tr, sfreq=self.sfreq, ch_names=self.ch_names,
                    frame_rate=self.frame_rate, freqs=self.freqs, representation=self.representation, n_voxels=int(self.mask.sum()),
                    grid_shape=list(self.mask.shape), affine=np.asarray(self.affine).tolist(), config=self.config.to_dict(), runs=runs_meta,
                    provenance=self.provenance)

    def save(self, out: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the dataset atomically: one ``.npy`` per array and ``manifest.json``."""
        with atomic_dir(out, overwrite=overwrite) as tmp:
            runs_meta = [_write_run(tmp, i, r) for i, r in enumerate(self.runs)]
            _write_common(tmp, self, runs_meta)
        return Path(out)


def _write_run(folder: Path, i: int, r: PreparedRun) -> dict:
    np.save(folder / f"run{i:03d}_features.npy", np.ascontiguousarray(r.features, dtype=np.float32))
    if r.bold is not None:
        np.save(folder / f"run{i:03d}_bold.npy", np.ascontiguousarray(r.bold, dtype=np.float32))
    np.save(folder / f"run{i:03d}_onsets.npy", np.asarray(r.onsets, dtype=np.float64))
    np.save(folder / f"run{i:03d}_window_end.npy", np.asarray(r.window_end, dtype=np.int64))
    return dict(index=i, key=r.key, subject=r.subject, n_volumes=r.n_volumes, features_shape=list(r.features.shape),
                bold_shape=None if r.bold is None else list(r.bold.shape))


def _write_common(folder: Path, ds: PreparedDataset, runs_meta: list[dict]) -> None:
    import nibabel as nib

    nib.save(nib.Nifti1Image(ds.mask.astype(np.uint8), np.asarray(ds.affine)), folder / "mask.nii.gz")
    (folder / "manifest.json").write_text(json.dumps(ds._manifest(runs_meta), indent=1))


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
        runs.append(PreparedRun(rm["key"], rm["subject"], np.load(path / f"run{i:03d}_features.npy", mmap_mode=mode),
                                np.load(path / f"run{i:03d}_window_end.npy"),
                                np.load(bold_p, mmap_mode=mode) if bold_p.exists() else None, np.load(path / f"run{i:03d}_onsets.npy")))
    mask = np.asarray(nib.load(path / "mask.nii.gz").dataobj) > 0
    return PreparedDataset(runs, mask, np.asarray(man["affine"]), man["tr"], man["sfreq"], man["ch_names"], PrepareConfig.from_dict(man["config"]),
                           float(man["frame_rate"]), man.get("freqs"), man.get("provenance", {}))


# ---------------------------------------------------------------------------------------
# EEG


def work_rate(sfreq: float, config: PrepareConfig) -> float:
    """Rate (Hz) at which EEG is filtered and turned into the representation."""
    want = config.work_sfreq if config.work_sfreq is not None else max(100.0, 2.5 * config.needed_fmax())
    return float(min(sfreq, want))


def load_eeg_lowrate(raw, config: PrepareConfig, *, where: str = "EEG", max_chunk_bytes: int = 1 << 27) -> tuple[np.ndarray, float, list[str]]:
    """Read EEG channels group by group, resample to the work rate and filter.

    Only EEG channels are kept (others and bad channels are dropped and
    reported). Each group of channels is read, checked (NaN/Inf, flat),
    resampled (polyphase, anti-aliased) and filtered, so peak memory is one
    group at the original rate plus the whole recording at the work rate.
    Re-referencing happens at the work rate (it commutes with these linear
    steps).

    Returns
    -------
    data : array, shape (n_chans, n_times), float32, volts
    sfreq : float
        The work rate.
    ch_names : list of str
    """
    import mne

    types = raw.get_channel_types()
    drop = [c for c, t in zip(raw.ch_names, types) if t != "eeg"] + [c for c in raw.info["bads"] if c in raw.ch_names]
    drop = list(dict.fromkeys(drop))
    if drop:
        logger.info("%s: dropping %d non-EEG/bad channel(s): %s", where, len(drop), ", ".join(drop))
    picks = [c for c in raw.ch_names if c not in drop]
    if not picks:
        raise Eeg2fmriInputError(f"{where}: no EEG channels left after dropping {drop}; check channel types (channels.tsv) or set them with raw.set_channel_types.")
    sf = float(raw.info["sfreq"])
    wsf = work_rate(sf, config)
    from fractions import Fraction

    frac = Fraction(wsf / sf).limit_denominator(1000)
    up, down = frac.numerator, frac.denominator
    n_out = int(np.ceil(raw.n_times * up / down))
    out = np.empty((len(picks), n_out), dtype=np.float32)
    group = max(1, int(max_chunk_bytes // (8 * max(raw.n_times, 1))))
    notch = raw.info.get("line_freq") if config.notch is None else config.notch
    nyq = wsf / 2
    for g0 in range(0, len(picks), group):
        names = picks[g0 : g0 + group]
        x = raw.get_data(picks=names)
        bad_nan = [names[i] for i in np.where(~np.isfinite(x).all(axis=1))[0]]
        if bad_nan:
            raise Eeg2fmriInputError(f"{where}: channel(s) {bad_nan} contain NaN/Inf; interpolate them (raw.interpolate_bads) or drop them first.")
        flat = [names[i] for i in np.where(np.ptp(x, axis=1) == 0)[0]]
        if flat:
            raise Eeg2fmriInputError(f"{where}: channel(s) {flat} are flat (constant); mark them bad and interpolate, or drop them.")
        if up != down:
            x = mne.filter.resample(x, up=up, down=down, method="polyphase", verbose=False)
        hf = config.h_freq if config.h_freq is not None and config.h_freq < nyq else None
        if config.l_freq is not None or hf is not None:
            x = mne.filter.filter_data(x, wsf, config.l_freq, hf, verbose=False)
        if notch:
            freqs = np.arange(notch, nyq - 1, notch)
            if len(freqs):
                x = mne.filter.notch_filter(x, wsf, freqs, verbose=False)
        out[g0 : g0 + len(names)] = x[:, :n_out]
    if config.reference == "average" and len(picks) > 1:
        out -= out.mean(axis=0, keepdims=True)
    return out, wsf, picks


def _frame_starts(onsets: np.ndarray, tr: float, m: int, dur: float, where: str) -> tuple[np.ndarray, int]:
    flen = tr / m
    n_pre = int(np.floor(onsets[0] / flen + 1e-9))
    starts_pre = onsets[0] - flen * np.arange(n_pre, 0, -1)
    starts_in = (onsets[:, None] + flen * np.arange(m)[None, :]).ravel()
    if starts_in[-1] + flen > dur + 1e-6:
        raise Eeg2fmriInputError(f"{where}: the EEG ({dur:.1f} s) ends before the last volume ({onsets[-1] + tr:.1f} s); trim the BOLD run or supply the full EEG.")
    return np.concatenate([starts_pre, starts_in]), n_pre


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
    data, wsf, ch = load_eeg_lowrate(raw, config, where=where)
    dur = data.shape[1] / wsf
    if onsets is None:
        onsets = np.arange(int(np.floor(dur / tr))) * tr
    onsets = np.asarray(onsets, dtype=np.float64)
    m = config.frames_per_tr
    rep_kind = config.representation
    if rep_kind == "bandpower":
        starts, n_pre = _frame_starts(onsets, tr, m, dur, where)
        power, prate = band_envelopes(data, wsf, config.bands, out_rate=max(8.0 * m / tr, 10.0))
        frames = bin_frames(power, prate, starts, tr / m)  # (n_frames, n_bands, n_chans)
        del power
        feats = standardize_features(np.transpose(frames, (0, 2, 1)))
        freqs = [float(np.mean(b)) for b in config.bands.values()]
        window_end = n_pre + (np.arange(len(onsets)) + 1) * m
        frame_rate = m / tr
    elif rep_kind == "stft":
        from eeg2fmri.preprocessing.representations import stft_frames

        fmax = min(config.stft_fmax, 0.99 * wsf / 2)
        feats, f, n_pre = stft_frames(data, wsf, onsets, tr / m, config.stft_fmin, fmax, frames_per_tr=m, log=config.stft_log)
        feats = standardize_features(feats, log=False) if config.stft_log else (feats / max(float(np.median(feats)), 1e-30)).astype(np.float32)
        freqs = [float(v) for v in f]
        window_end = n_pre + (np.arange(len(onsets)) + 1) * m
        frame_rate = m / tr
    else:
        import mne

        rsf = float(config.raw_sfreq)
        x = data if abs(rsf - wsf) < 1e-9 else mne.filter.resample(data.astype(np.float64), up=rsf, down=wsf, method="polyphase", verbose=False)
        med = np.median(x, axis=1, keepdims=True)
        q75, q25 = np.percentile(x, [75, 25], axis=1, keepdims=True)
        scale = (q75 - q25) / 1.349
        scale[scale <= 0] = 1.0
        feats = np.ascontiguousarray(((x - med) / scale).T, dtype=np.float32)  # (n_samples, n_chans)
        freqs = None
        window_end = np.round((onsets + tr) * rsf).astype(np.int64)
        if window_end[-1] > len(feats):
            raise Eeg2fmriInputError(f"{where}: the EEG ({dur:.1f} s) ends before the last volume ({onsets[-1] + tr:.1f} s); trim the BOLD run or supply the full EEG.")
        frame_rate = rsf
    return dict(features=feats, window_end=np.asarray(window_end, dtype=np.int64), frame_rate=float(frame_rate), freqs=freqs, ch_names=ch,
                onsets=onsets, sfreq=float(raw.info["sfreq"]))


def eeg_to_frames(raw, config: PrepareConfig, *, tr: float, onsets: np.ndarray | None = None, where: str = "EEG") -> tuple[np.ndarray, int, np.ndarray, list[str]]:
    """Band-power frames of one recording (kept for the quickstart's first version).

    Returns ``features, n_pre, onsets, ch_names`` with ``features`` of shape
    (n_frames, n_chans, n_bands).
    """
    cfg = PrepareConfig.from_dict({**config.to_dict(), "representation": "bandpower"})
    rep = eeg_representation(raw, cfg, tr=tr, onsets=onsets, where=where)
    n_pre = int(rep["window_end"][0] - cfg.frames_per_tr)
    return rep["features"], n_pre, rep["onsets"], rep["ch_names"]


# ---------------------------------------------------------------------------------------
# whole datasets


def _checksum(path: Path) -> str:
    h = hashlib.sha1()
    st = path.stat()
    h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    with open(path, "rb") as f:
        h.update(f.read(1 << 20))
    return h.hexdigest()


def _validate_config(cfg: PrepareConfig) -> None:
    from eeg2fmri.utils.validation import check_choice

    check_positive_int(cfg.frames_per_tr, "frames_per_tr")
    check_choice(cfg.representation, "representation", REPRESENTATIONS)


def _resolve_mask(cfg: PrepareConfig, img) -> tuple[np.ndarray, np.ndarray | None]:
    """The BOLD mask, and the first run's masked data when computing the mask needed it anyway."""
    import nibabel as nib

    if cfg.mask == "data":
        data, mask, _ = load_masked_bold(img, None, where=str(img.get_filename()))
        return mask, data
    if cfg.mask == "mni":
        from eeg2fmri.preprocessing.volumes import mni_mask

        return np.asarray(mni_mask(img), dtype=bool), None
    mimg = nib.load(cfg.mask)
    if mimg.shape[:3] != img.shape[:3]:
        raise Eeg2fmriInputError(f"{cfg.mask}: mask grid {mimg.shape[:3]} differs from the BOLD grid {img.shape[:3]}; resample it to the BOLD grid first.")
    return np.asarray(mimg.dataobj) > 0, None


def _prepare_one(rec, cfg: PrepareConfig, mask: np.ndarray, tr0: float, shape0: tuple, first: tuple | None = None) -> tuple[PreparedRun, dict, dict]:
    from eeg2fmri.io.layouts import layout_volume_onsets, read_layout_bold, read_layout_eeg

    img, tr = read_layout_bold(rec)
    where = str(rec.eeg_path)
    if abs(tr - tr0) > 1e-3 * tr0:
        raise Eeg2fmriInputError(f"{rec.bold_path}: TR {tr} s differs from the first run's {tr0} s; prepare runs with different TRs separately.")
    if img.shape[:3] != shape0:
        raise Eeg2fmriInputError(f"{rec.bold_path}: grid {img.shape[:3]} differs from the first run's {shape0}; resample all runs to one grid first.")
    raw = read_layout_eeg(rec, preload=False)
    sync = layout_volume_onsets(rec, raw, img.shape[3], tr, marker=cfg.marker, first_onset=cfg.first_onset)
    rep = eeg_representation(raw, cfg, tr=tr, onsets=sync.onsets, where=where)
    if first is not None and first[0] == rec.bold_path:
        bold = first[1]
    else:
        bold, _, _ = load_masked_bold(img, mask, where=str(rec.bold_path))
    bold = np.ascontiguousarray(bold[sync.volumes])
    run = PreparedRun(rec.key, rec.subject, rep["features"], rep["window_end"], bold, rep["onsets"])
    info = {"sfreq": rep["sfreq"], "ch_names": rep["ch_names"], "frame_rate": rep["frame_rate"], "freqs": rep["freqs"]}
    rp = sync.report
    prov = {"eeg": str(rec.eeg_path), "bold": str(rec.bold_path), "layout": getattr(rec, "layout", "bids"), "sync": rp.method, "sync_marker": rp.marker,
            "sync_dropped": rp.dropped, "sync_notes": rp.notes, "volumes": [sync.volumes.start, sync.volumes.stop]}
    logger.info("%s: %d volumes, %d EEG channels, features %s", rec.key, img.shape[3], len(rep["ch_names"]), rep["features"].shape)
    return run, info, prov


def _check_consistent(infos: list[dict], records) -> None:
    first = infos[0]
    for inf, rec in zip(infos[1:], records[1:]):
        if abs(inf["sfreq"] - first["sfreq"]) > 1e-6:
            raise Eeg2fmriInputError(f"{rec.eeg_path}: sampling rate {inf['sfreq']} Hz differs from the first run's {first['sfreq']} Hz; resample the recordings to one rate first.")
        if inf["ch_names"] != first["ch_names"]:
            raise Eeg2fmriInputError(f"{rec.eeg_path}: EEG channels {inf['ch_names']} differ from the first run's {first['ch_names']}; pick or reorder channels to one set.")


def prepare_dataset(
    bids_root: str | os.PathLike,
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
    bids_root : path-like
        BIDS root.
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
    cfg = config if isinstance(config, PrepareConfig) else PrepareConfig.from_dict(config)
    _validate_config(cfg)
    records = _records(bids_root, subjects, layout, layout_options)
    from eeg2fmri.io.layouts import read_layout_bold

    img0, tr0 = read_layout_bold(records[0])
    mask, first_bold = _resolve_mask(cfg, img0)
    shape0 = img0.shape[:3]
    first = (records[0].bold_path, first_bold) if first_bold is not None else None
    # the first run in this process (it may reuse the data read for the mask), the rest in parallel
    results = [_prepare_one(records[0], cfg, mask, tr0, shape0, first)]
    del first, first_bold
    results += _map(partial(_prepare_one, cfg=cfg, mask=mask, tr0=tr0, shape0=shape0), records[1:], n_jobs, progress_bar)
    runs = [r[0] for r in results]
    infos = [r[1] for r in results]
    _check_consistent(infos, records)
    prov = {"bids_root": str(Path(bids_root).absolute()), "layout": layout, "inputs": {}}
    for rec, (_, _, p) in zip(records, results):
        prov["inputs"][rec.key] = {**p, "eeg_sha1": _checksum(rec.eeg_path), "bold_sha1": _checksum(rec.bold_path)}
    return PreparedDataset(runs, mask, np.asarray(img0.affine), float(tr0), float(infos[0]["sfreq"]), list(infos[0]["ch_names"]), cfg,
                           float(infos[0]["frame_rate"]), infos[0]["freqs"], prov)


def _map(fn, items: list, n_jobs: int, progress_bar: bool) -> list:
    if n_jobs <= 1 or len(items) <= 1:
        return [fn(it) for it in progress(items, desc="prepare runs", enabled=progress_bar)]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    out = [None] * len(items)
    with ProcessPoolExecutor(max_workers=n_jobs, mp_context=mp.get_context("fork")) as ex:
        futs = {ex.submit(fn, it): i for i, it in enumerate(items)}
        from concurrent.futures import as_completed

        for fut in progress(as_completed(futs), desc="prepare runs", total=len(futs), enabled=progress_bar):
            out[futs[fut]] = fut.result()
    return out


def _records(root, subjects, layout: str, layout_options: dict | None) -> list:
    from eeg2fmri.io.layouts import find_runs_layout

    records = find_runs_layout(root, layout=layout, subjects=subjects, **(layout_options or {}))
    eeg_only = [r.key for r in records if r.bold_path is None]
    if eeg_only:
        raise Eeg2fmriInputError(f"{root}: runs {eeg_only[:5]} have EEG but no BOLD (an EEG-only layout?); preparing training data needs both. "
                                 "Use `eeg2fmri synthesize` for EEG-only recordings.")
    return records


def prepare(
    bids_root: str | os.PathLike,
    out: str | os.PathLike,
    config: PrepareConfig | dict | None = None,
    *,
    subjects: list[str] | None = None,
    overwrite: bool = False,
    progress_bar: bool = True,
    n_jobs: int = 1,
    layout: str = "bids",
    layout_options: dict | None = None,
) -> tuple[Path, bool]:
    """Prepare a dataset straight to disk; a re-run with the same inputs is a no-op.

    Returns
    -------
    out : Path
    written : bool
        ``False`` when ``out`` already held this dataset prepared from the same
        inputs (same checksums) with the same config.
    """
    cfg = config if isinstance(config, PrepareConfig) else PrepareConfig.from_dict(config)
    _validate_config(cfg)
    out = Path(out)
    man = out / "manifest.json"
    if man.exists():
        old = json.loads(man.read_text())
        records = _records(bids_root, subjects, layout, layout_options)
        same_inputs = {k: (v.get("eeg_sha1"), v.get("bold_sha1")) for k, v in old.get("provenance", {}).get("inputs", {}).items()} == {
            r.key: (_checksum(r.eeg_path), _checksum(r.bold_path)) for r in records}
        if same_inputs and old.get("config") == cfg.to_dict():
            logger.info("%s is up to date (same inputs and config): nothing to do", out)
            return out, False
    ds = prepare_dataset(bids_root, cfg, subjects=subjects, progress_bar=progress_bar, n_jobs=n_jobs, layout=layout, layout_options=layout_options)
    return ds.save(out, overwrite=overwrite), True
