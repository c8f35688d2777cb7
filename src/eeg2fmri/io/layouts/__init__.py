"""Adapters for the on-disk layouts of published simultaneous EEG-fMRI datasets.

Each module of this package registers one :class:`Layout` (``@register_layout``):
NODDI, ds000116 (legacy), CWL, ds002336 (XP1), ds002338 (XP2), ds002158
(CN-EPFL), ds004000 (EEG only) and plain BIDS. A layout finds runs
(:class:`LayoutRun`, a :class:`~eeg2fmri.io.RunRecord` with reader hints);
:func:`read_layout_eeg`, :func:`read_layout_bold` and
:func:`layout_volume_onsets` read and synchronise them.

Typical use::

    runs = find_runs_layout(root, layout="auto")
    for run in runs:
        img, tr = read_layout_bold(run)
        raw = read_layout_eeg(run)
        sync = layout_volume_onsets(run, raw, img.shape[3], tr)
        # keep BOLD volumes sync.volumes; their onsets are sync.onsets
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import pkgutil
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from eeg2fmri.io.bids import RunRecord
from eeg2fmri.io.layouts._base import (
    NAMED_NON_EEG,
    FrozenDict,
    Layout,
    LayoutRun,
    Scan,
    get_layout,
    guess_channel_type,
    header_field,
    list_layouts,
    marker_matches,
    match_channels,
    norm_subjects,
    register_layout,
)
from eeg2fmri.io.layouts._readers import (
    brainvision_files,
    get_reader,
    list_readers,
    read_brainvision,
    read_ds000116_mat,
    register_reader,
)
from eeg2fmri.io.sync import DEFAULT_MARKERS, SyncReport, short_eeg_fix, volume_onsets
from eeg2fmri.utils.logs import logger
from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = [
    "check_runs",
    "FrozenDict",
    "Layout",
    "LayoutCheck",
    "LayoutRun",
    "LayoutSync",
    "Scan",
    "as_layout_run",
    "brainvision_files",
    "check_layout",
    "detect_layout",
    "find_runs_layout",
    "get_layout",
    "get_reader",
    "labels_of_volumes",
    "layout_volume_onsets",
    "run_eeg_span",
    "cut_run_eeg",
    "list_layouts",
    "list_readers",
    "read_brainvision",
    "read_ds000116_mat",
    "read_layout_bold",
    "read_layout_eeg",
    "segment_marker_volume",
    "register_layout",
    "register_reader",
]


def _import_layouts() -> None:
    for m in pkgutil.iter_modules(__path__):
        if not m.name.startswith("_"):
            importlib.import_module(f"{__name__}.{m.name}")


# ---------------------------------------------------------------------------------------------
# finding runs
# ---------------------------------------------------------------------------------------------
def detect_layout(root: str | os.PathLike) -> str:
    """Name of the layout of the dataset in ``root``.

    Published layouts are tried first; ``bids`` is the fallback.

    Parameters
    ----------
    root : path-like
        Dataset folder.

    Returns
    -------
    name : str
    """
    root = Path(root)
    if not root.is_dir():
        raise Eeg2fmriInputError(f"{root}: expected a dataset folder, found {'a file' if root.exists() else 'nothing: the path does not exist'}; check the path.")
    hits = [n for n in list_layouts() if n != "bids" and get_layout(n).detect(root)]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise Eeg2fmriInputError(f"{root}: looks like several layouts {hits}; pass layout=<one of them> (--layout) explicitly.")
    if get_layout("bids").detect(root):
        return "bids"
    raise Eeg2fmriInputError(
        f"{root}: expected a BIDS dataset (sub-*/[ses-*/]eeg/*_eeg.*) or one of the published layouts {[n for n in list_layouts() if n != 'bids']}, "
        "found none of them; run `eeg2fmri datasets` to see what each needs on disk, or `eeg2fmri datasets NAME --check ROOT`."
    )


def find_runs_layout(root: str | os.PathLike, layout: str = "bids", *, subjects: list[str] | None = None, strict: bool = False, **options: Any) -> list[LayoutRun]:
    """Pair EEG with BOLD runs of a dataset in a published or BIDS layout.

    Parameters
    ----------
    root : path-like
        Dataset folder.
    layout : str
        ``"bids"`` (default), a registered layout name (``eeg2fmri datasets``
        lists them) or ``"auto"`` (detect it from the folder content).
    subjects : list of str | None
        Restrict to these subject labels.
    strict : bool
        Raise when a piece cannot be paired (default: skip it and log a warning).
    **options
        Layout options, e.g. ``variant="noGA"`` for ds000116, ``eeg="raw"``
        for ds002336/ds002338, ``task="responder"`` for ds004000; ``bids``
        (and ds003768) take the pairing options of
        :func:`eeg2fmri.io.pairing.pair_bids_runs` (``bold_entities={"echo": "1"}``,
        ``derivatives=``, ``space=``, ``sessions=``, ``tasks=``) and ``require_bold``.

    Returns
    -------
    runs : list of LayoutRun
        ``run.layout`` names the layout; ``bold_path`` is ``None`` for EEG-only data.
    """
    name = detect_layout(root) if layout == "auto" else layout
    if layout == "auto":
        logger.info("%s: detected layout %r", root, name)
    return get_layout(name).find_runs(root, subjects, strict=strict, **options)


def as_layout_run(run: RunRecord, **hints: Any) -> LayoutRun:
    """A :class:`LayoutRun` from a plain :class:`RunRecord` (``layout="bids"``; ``hints`` set fields)."""
    if isinstance(run, LayoutRun) and not hints:
        return run
    base = {f.name: getattr(run, f.name) for f in fields(run)}
    base.update(hints)
    return LayoutRun(**base)


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------
def read_layout_eeg(run: RunRecord, *, preload: bool = True):
    """Read the EEG of a run the way its layout needs.

    Dispatches to the run's reader (``run.eeg_reader``; ``None`` is
    :func:`eeg2fmri.io.read_eeg`), types ``run.non_eeg_channels`` as
    ecg/eog/stim/emg/misc (so preprocessing drops them) and renames every
    spelling of the run's volume marker to ``run.marker[0]``.

    Parameters
    ----------
    run : LayoutRun | RunRecord
    preload : bool
        Load the data.

    Returns
    -------
    raw : mne.io.BaseRaw
    """
    run = as_layout_run(run)
    raw = get_reader(run.eeg_reader or "mne")(run, preload)
    types = dict(zip(raw.ch_names, raw.get_channel_types()))
    hit = match_channels(raw.ch_names, run.non_eeg_channels)
    mapping = {c: guess_channel_type(c) for c in hit if types[c] in ("eeg", "misc") and guess_channel_type(c) != types[c]}
    if mapping:
        raw.set_channel_types(mapping, on_unit_change="ignore", verbose=False)
        logger.info("%s: typed non-EEG channel(s) %s", run.eeg_path.name, mapping)
    # in every layout: channels the file types EEG whose names say ECG/EKG, EOG or EMG (BrainVision and EDF exports, and
    # channels.tsv files written from them, often type them EEG) are not EEG features
    named = {c: guess_channel_type(c) for c in match_channels(raw.ch_names, NAMED_NON_EEG) if types[c] == "eeg" and c not in mapping}
    if named:
        raw.set_channel_types(named, on_unit_change="ignore", verbose=False)
        logger.warning("%s: channel(s) %s are typed EEG but named as non-EEG; typed %s and not used as EEG (rename them, "
                       "e.g. raw.rename_channels, if they do record EEG).", run.eeg_path.name, sorted(named), sorted(set(named.values())))
    if run.marker:
        desc = np.array(raw.annotations.description, dtype=object)
        hitm = np.array([marker_matches(d, run.marker) and d != run.marker[0] for d in desc], dtype=bool)
        if hitm.any():
            desc[hitm] = run.marker[0]
            raw.annotations.description = desc.astype(str)
            logger.info("%s: %d volume marker(s) renamed to %r", run.eeg_path.name, int(hitm.sum()), run.marker[0])
    return raw


def read_layout_bold(run: RunRecord, *, marker: str | tuple[str, ...] | None = None):
    """Read the BOLD image of a run with the layout's TR override.

    Parameters
    ----------
    run : RunRecord
    marker : str | tuple of str | None
        Volume marker name(s) prepare uses; when the sidecar and the header disagree on the TR,
        the error also says how far apart these markers are in the run's EEG (default: the
        layout's marker, else the usual scanner names).

    Returns
    -------
    img : nibabel.Nifti1Image
    tr : float
        ``run.tr`` when the layout fixes it, else the sidecar/header TR.
    """
    from eeg2fmri.io.bold import TRDisagreementError, read_bold

    run = as_layout_run(run)
    if run.bold_path is None and run.meta.get("roi_targets"):  # NeuroBOLT: region tables instead of volumes
        run = dataclasses.replace(run, bold_path=Path(run.meta["roi_targets"]))
    if run.bold_path is None:
        raise Eeg2fmriInputError(f"{run.eeg_path}: run {run.key} of layout {run.layout!r} has no BOLD (EEG-only data); use it for EEG-only synthesis/classification, not for training.")
    from eeg2fmri.io.roi_tables import is_target_table, read_target_table, table_image

    if is_target_table(run.bold_path):  # region series (volumes x regions): one voxel per region
        if run.tr is None:
            raise Eeg2fmriInputError(f"{run.bold_path}: a region table has no header to give the TR; expected the run's tr, got none: give it "
                                     "(the runs table's tr column, {'tr': 2.0} in a run given as a mapping, or the prepare option tr).")
        values, _ = read_target_table(run.bold_path)
        return table_image(values, run.tr), float(run.tr)
    try:
        return read_bold(run.bold_path, tr=run.tr)
    except TRDisagreementError as err:
        hint = _marker_tr_hint(run, marker, err.sidecar_tr, err.header_tr)
        if not hint:
            raise
        raise TRDisagreementError(f"{err} {hint}", err.sidecar_tr, err.header_tr) from err


def _marker_tr_hint(run: LayoutRun, marker, sidecar_tr: float, header_tr: float) -> str:
    """Which of two disagreeing TRs the EEG's volume markers support ('' when the EEG or its markers cannot be read)."""
    from eeg2fmri.io.sync import DEFAULT_MARKERS, marker_times

    names = marker if marker else (run.marker or DEFAULT_MARKERS)
    try:
        raw = read_layout_eeg(run, preload=False)
        name, times = marker_times(raw, names)
    except Exception:  # noqa: BLE001  (only a hint: an unreadable EEG is reported where it is read)
        return ""
    if name is None or times is None or len(times) < 3:
        return ""
    step = float(np.median(np.diff(times)))
    found = f"The EEG's {len(times)} {name!r} markers ({run.eeg_path.name}) are a median {step:.4g} s apart"
    close = [(lab, v) for lab, v in (("sidecar", sidecar_tr), ("header", header_tr)) if abs(step - v) <= 0.01 * v]
    if len(close) == 1:
        lab, v = close[0]
        return f"{found}: they support the {lab}'s {v:g} s (--config '{{\"tr\": {v:g}}}')."
    if len(close) == 2:
        return f"{found}, within 1% of both: too close to tell which is right; pass the TR you know."
    return f"{found}, matching neither (slice markers? pass the TR you know)."


# ---------------------------------------------------------------------------------------------
# synchronisation
# ---------------------------------------------------------------------------------------------
@dataclass
class LayoutSync:
    """Volume timing of one run.

    Attributes
    ----------
    onsets : array, shape (n_kept,)
        Onsets (s from the EEG start) of the BOLD volumes the EEG covers.
    volumes : slice
        Which BOLD volumes those are (keep ``bold[..., volumes]``).
    report : SyncReport
        Details (method, marker, counts, notes).
    """

    onsets: np.ndarray
    volumes: slice
    report: SyncReport = field(repr=False)


def _marker_times(annotations, names, first_time: float = 0.0) -> np.ndarray:
    """Sorted onsets of the markers ``names``, seconds from the first sample (``first_time``: a Raw's, whose annotation
    onsets include it with or without a measurement date; 0 for annotations read from a marker file)."""
    t = np.asarray(annotations.onset, dtype=float) - first_time
    hit = np.array([marker_matches(d, names) for d in annotations.description], dtype=bool)
    return np.sort(t[hit]) if len(t) else np.zeros(0)


def _regular(raw, n_volumes: int, tr: float, first_onset: float, where: str) -> LayoutSync:
    sf = raw.info["sfreq"]
    dur = raw.n_times / sf
    on = first_onset + np.arange(n_volumes) * tr
    if on[-1] + tr > dur + 0.5 / sf:
        raise Eeg2fmriInputError(f"{where}: EEG is {dur:.3f} s long but {n_volumes} volumes from {first_onset} s every {tr} s need {on[-1] + tr:.3f} s; the EEG is shorter than the BOLD run (wrong file or sampling rate?). "
                                 f"{short_eeg_fix(dur, first_onset, tr, n_volumes)}")
    rep = SyncReport(on, "regular", None, 0, 0, [f"no scanner markers in this layout: volume 0 at {first_onset} s, then every {tr} s."])
    return LayoutSync(on, slice(0, n_volumes), rep)


def _from_raw_markers(run: LayoutRun, raw, n_volumes: int, tr: float, where: str) -> LayoutSync:
    """Onsets for a preprocessed segment, placed with the markers of the raw recording."""
    import mne

    src = Path(run.meta["marker_source"])
    vmrk = _raw_marker_file(src)
    si = header_field(src, "SamplingInterval")
    if si is None:
        raise Eeg2fmriInputError(f"{src}: expected a SamplingInterval= line in the BrainVision header, found none; is it a complete .vhdr?")
    si = float(si)
    ann = mne.read_annotations(vmrk, sfreq=1e6 / si)
    t_vol = _marker_times(ann, run.marker)
    if len(t_vol) < n_volumes:
        raise Eeg2fmriInputError(f"{vmrk}: found {len(t_vol)} {run.marker[0]!r} markers in the raw recording for {n_volumes} BOLD volumes; expected at least one per volume. Check that the raw .vmrk is complete.")
    dropped = len(t_vol) - n_volumes
    t_vol = t_vol[dropped:]
    med = float(np.median(np.diff(t_vol))) if n_volumes > 1 else tr
    if abs(med - tr) > 0.05 * tr:
        raise Eeg2fmriInputError(f"{vmrk}: {run.marker[0]!r} markers are {med:.4f} s apart but TR is {tr} s; expected one marker per volume.")
    seg = run.meta.get("segment_marker")
    t_seg_raw = _marker_times(ann, (seg,))
    if not len(t_seg_raw):
        raise Eeg2fmriInputError(f"{vmrk}: expected a {seg!r} marker where the preprocessed segment starts, found none; use the raw EEG instead (eeg='raw').")
    t_seg_pp = _marker_times(raw.annotations, (seg,), raw.first_time)
    offset = float(t_seg_raw[0] - (t_seg_pp[0] if len(t_seg_pp) else 0.0))
    on = t_vol - offset
    sf = raw.info["sfreq"]
    dur = raw.n_times / sf
    inside = np.flatnonzero((on >= -0.5 / sf) & (on + tr <= dur + 0.5 / sf))
    if not len(inside):
        raise Eeg2fmriInputError(f"{where}: no BOLD volume lies inside the preprocessed EEG ({dur:.1f} s from {seg!r} at {t_seg_raw[0]:.2f} s of the raw recording); check that the files belong together.")
    keep = slice(int(inside[0]), int(inside[-1]) + 1)
    own = _marker_times(raw.annotations, run.marker, raw.first_time)
    if len(own):
        err = np.abs(own[:, None] - on[None, :]).min(axis=1)
        if err.max() > 2.0 / sf:
            raise Eeg2fmriInputError(f"{where}: its {run.marker[0]!r} markers are up to {err.max():.3f} s away from the raw recording's markers shifted by {offset:.3f} s; the segment start ({seg!r}) is ambiguous. Use eeg='raw'.")
    notes = [f"volumes placed with the raw recording's markers ({src.name}) shifted by {offset:.3f} s ({seg!r})."]
    if dropped:
        notes.append(f"{dropped} more raw marker(s) than volumes: the first {dropped} treated as dummy scans.")
    if keep.start or keep.stop < n_volumes:
        notes.append(f"the preprocessed EEG covers volumes {keep.start}..{keep.stop - 1} of {n_volumes}; the others are dropped.")
    for n in notes:
        logger.info("%s: %s", where, n)
    return LayoutSync(on[keep], keep, SyncReport(on[keep], "markers", run.marker[0], len(t_vol) + dropped, dropped, notes))


def segment_marker_volume(eeg_path: str | os.PathLike, raw, first_marker_s: float) -> tuple[int, str] | None:
    """The measured BOLD volume of a preprocessed segment's first scanner marker, where a layout places the segment.

    A ds002336/ds002338 ``eeg_pp`` file starts at its 'S 99' marker, after volume 0 of the scan: its first
    scanner marker is measured volume 1 or 2, not 0 (user test 17: synthesis printed it as volume 0, so every
    output volume was compared with the measured volume one TR earlier). The dataset is found as the folder above
    ``derivatives/`` holding the file; the segment is placed with the raw recording's markers as ``prepare`` places it.

    Parameters
    ----------
    eeg_path : path-like
        The EEG file being synthesised.
    raw : mne.io.BaseRaw
        Its recording (annotations read).
    first_marker_s : float
        The first scanner marker used to anchor the grid, seconds from the recording's first sample.

    Returns
    -------
    found : (int, str) | None
        The measured volume and a sentence saying how it was found; ``None`` when no layout places this file
        (plain recordings, EEG-only runs without a BOLD file to count volumes).
    """
    path = Path(eeg_path).resolve()
    # only a file a layout places as a segment: ds002336/ds002338's derivatives/sub-*/eeg_pp/ (a cleaned file under any
    # other derivatives/ folder must not set off a scan of the dataset, with its warnings: review)
    root = next((a.parent for a in path.parents if a.name == "derivatives"), None)
    if root is None or path.parent.name != "eeg_pp":
        return None
    name = "a layout"
    try:
        name = detect_layout(root)
        sub = re.search(r"sub-([A-Za-z0-9]+)", path.name)
        runs = get_layout(name).scan(root, {sub.group(1)} if sub else None).runs  # scan: no warnings about the dataset's other runs
        run = next((r for r in runs if r.meta.get("marker_source") and Path(r.eeg_path).resolve() == path), None)
        if run is None or run.bold_path is None:
            return None
        img, tr = read_layout_bold(run)
        sync = layout_volume_onsets(run, raw, int(img.shape[3]), tr)
    except Exception as err:  # noqa: BLE001  (synthesis goes on: the mapping is only not known)
        logger.info("%s: %s could not place this segment (%s: %s); its first marker is taken as volume 0 (pass "
                    "first_marker_volume to say otherwise)", path, name, type(err).__name__, err)
        return None
    on = np.asarray(sync.onsets, float)
    k = int(np.argmin(np.abs(on - first_marker_s)))  # the nearest placed volume (no drift over the dummy scans: review)
    steps = (first_marker_s - float(on[k])) / tr
    vol = int(sync.volumes.start) + k + int(round(steps))
    if vol < 0 or abs(steps - round(steps)) * tr > 2.0 / float(raw.info["sfreq"]) + 1e-3:
        return None
    return vol, (f"the {name} layout places this segment with the raw recording's markers ({Path(run.meta['marker_source']).name}): "
                 f"its first scanner marker is measured volume {vol}")


def labels_of_volumes(epochs, times: np.ndarray, *, epoch_s: float | None = None) -> list[str | None]:
    """The label of every volume from labelled epochs (sleep stages in 30-s epochs).

    Parameters
    ----------
    epochs : sequence of (float, str | None)
        ``(start_s, label)`` in time order; a label holds until the next epoch's start, at most ``epoch_s``
        (the last one: ``epoch_s``, default the median spacing of the starts). ``None`` marks an epoch without a usable label.
    times : array, shape (n_volumes,)
        Acquisition start of every volume, in the epochs' clock (seconds from the run's first volume for ds003768).
    epoch_s : float | None
        Length of the last epoch.

    Returns
    -------
    labels : list of str | None, length n_volumes
        ``None`` where no epoch covers the volume or its epoch has no label.
    """
    ep = sorted(((float(t), lab) for t, lab in epochs), key=lambda e: e[0])
    if not ep:
        return [None] * len(times)
    starts = np.array([t for t, _ in ep])
    last = float(epoch_s) if epoch_s else (float(np.median(np.diff(starts))) if len(starts) > 1 else np.inf)
    ends = np.r_[starts[1:], starts[-1] + last]
    if epoch_s:  # an epoch missing from the file is a gap, not the previous stage carried on (review)
        ends = np.minimum(ends, starts + float(epoch_s))
    idx = np.searchsorted(starts, np.asarray(times, float), side="right") - 1
    out: list[str | None] = []
    for t, i in zip(np.asarray(times, float), idx):
        out.append(ep[i][1] if i >= 0 and t < ends[i] else None)
    return out


def _raw_marker_file(vhdr: Path) -> Path:
    """The marker file of a raw BrainVision recording (its binary data need not be present)."""
    if not vhdr.is_file():
        raise Eeg2fmriInputError(f"{vhdr}: expected the raw recording's header (to place the preprocessed EEG in time), found nothing; download sub-*/eeg/*_eeg.vhdr and .vmrk (the .eeg is not needed) or use eeg='raw'.")
    named = header_field(vhdr, "MarkerFile")
    for cand in ([vhdr.parent / named] if named else []) + [vhdr.with_suffix(".vmrk")]:
        if cand.is_file():
            return cand
    raise Eeg2fmriInputError(f"{vhdr}: expected its marker file {named or vhdr.with_suffix('.vmrk').name} beside it, found none; download the .vmrk too.")


#: Seconds of EEG kept before a marker block's first volume and after its last (less where a neighbouring block is nearer:
#: at most half the pause, so that no marker of another run is in the cut; or where the recording was paused, a join):
#: more than the default window of EEG before a volume (lags to 16 s + 1 TR), so that the first volumes keep theirs.
BLOCK_MARGIN_S = 20.0
#: A block of scanner markers with fewer than this share of the longest block's markers (and never fewer than 3 counted as a
#: run) is a stray scan -- a localizer or shim -- where leaving such blocks out gives one block per run of the file.
STRAY_BLOCK_SHARE = 0.25


def run_eeg_span(run: RunRecord, raw, tr: float, *, marker: str | tuple[str, ...] | None = DEFAULT_MARKERS) -> tuple[float, float, str] | None:
    """The part of a run's EEG file that is this run's: ``eeg_start``/``eeg_stop``, or its block of scanner markers.

    One continuous EEG recording across several BOLD runs is listed once per run, each with its part: ``eeg_start`` /
    ``eeg_stop`` (s from the file's first sample) or ``marker_block`` (k: the k-th block of volume markers, blocks being
    parted by pauses longer than :data:`~eeg2fmri.io.sync.BLOCK_GAP_TRS` TRs; the cut keeps up to
    :data:`BLOCK_MARGIN_S` s before the block's first marker and after its last volume, at most half the pause to a
    neighbouring block and never across a join of the recording, such as BrainVision's ``New Segment`` where the
    recorder was paused between runs). A run listed with ``meta["runs_in_eeg_file"]`` (the runs table gave its file to that many
    runs without saying which part is whose) must find exactly that many blocks.

    Parameters
    ----------
    run : LayoutRun | RunRecord
    raw : mne.io.BaseRaw
        The whole file (:func:`read_layout_eeg`).
    tr : float
        The run's TR (s).
    marker : str | tuple of str | None
        Volume marker names when the run does not fix them (``run.marker``).

    Returns
    -------
    span : (float, float, str) | None
        ``(tmin, tmax, note)`` in seconds from the file's first sample for ``raw.crop(tmin, tmax)``, with a sentence
        saying what was cut; ``None`` for a run that is the whole file.
    """
    from eeg2fmri.io.sync import BLOCK_GAP_TRS, describe_blocks, marker_blocks, marker_times

    run = as_layout_run(run)
    where = str(run.eeg_path)
    start, stop, block = run.eeg_start, run.eeg_stop, run.marker_block
    if start is None and stop is None and block is None:
        return None
    end = float(raw.times[-1])
    if block is not None:
        if start is not None or stop is not None:
            raise Eeg2fmriInputError(f"{where}: expected either marker_block or eeg_start/eeg_stop for run {run.key}, got both; give one "
                                     "(marker_block: the k-th block of scanner markers; eeg_start/eeg_stop: seconds of the file).")
        names = run.marker if run.marker is not None else marker
        if names is None and run.meta.get("runs_in_eeg_file") is not None:  # the block comes from the listing, not the user
            raise Eeg2fmriInputError(f"{where}: listed for {run.meta['runs_in_eeg_file']} runs, so run {run.key} takes the file's block "
                                     f"{block} of scanner markers, but the prepare option marker is null; give each run its part in "
                                     "seconds (eeg_start/eeg_stop) or its own first_onset (s of the file), or name the markers.")
        if names is None:
            raise Eeg2fmriInputError(f"{where}: marker_block {block} for run {run.key} needs scanner volume markers, but the prepare "
                                     "option marker is null; give the run's part in seconds instead (eeg_start/eeg_stop), or name the "
                                     "markers (marker: [\"R128\"]).")
        name, on = marker_times(raw, names)
        if on is None or not len(on):
            present = sorted({str(d) for d in raw.annotations.description})[:15]
            raise Eeg2fmriInputError(f"{where}: marker_block {block} for run {run.key}: expected scanner volume markers "
                                     f"{list((names,) if isinstance(names, str) else names)}, found none (annotations present: {present}); "
                                     "name the markers (prepare option marker) or give the run's part in seconds (eeg_start/eeg_stop).")
        blocks = marker_blocks(on, tr)
        listing = describe_blocks(on, blocks, tr)
        want = run.meta.get("runs_in_eeg_file")
        if want is not None and len(blocks) > int(want):  # short blocks beside the runs' (a localizer or shim scan): left out
            # where that leaves one block per run (user test 50: a BIDS session with a 5-marker localizer was refused)
            longest = max(b - a for a, b in blocks)
            stray = [(a, b) for a, b in blocks if b - a < max(3.0, STRAY_BLOCK_SHARE * longest)]
            if len(blocks) - len(stray) == int(want):
                from eeg2fmri.utils.logs import warn_once_per_process

                warn_once_per_process(f"{where}: {len(stray)} short block(s) of {name!r} markers left out ("
                                      + "; ".join(f"{on[a]:.1f}-{on[b - 1] + tr:.1f} s, {b - a} markers" for a, b in stray)
                                      + f": a localizer or shim scan?); the {want} runs take the other blocks in order. If a run's "
                                      "scan is among them, give each run its part (a runs table with marker_block or eeg_start/eeg_stop)")
                blocks = [blk for blk in blocks if blk not in stray]
        if want is not None and len(blocks) != int(want):
            table = run.layout == "files"  # (a BIDS recording named without run-: no runs table to add a column to)
            raise Eeg2fmriInputError(
                f"{where}: " + ("the runs table gives this file to" if table else "this recording (named without run-) is paired with")
                + f" {want} runs, so its {name!r} markers should form {want} blocks (parted by pauses > {BLOCK_GAP_TRS:g} TRs), found "
                f"{len(blocks)} ({listing}). Say which block is each run's: " + (
                    "a marker_block column (1 = the first block), or eeg_start/eeg_stop columns (s from the file's first sample)."
                    if table else "list the runs in a runs table (tab-separated columns eeg, bold, subject, run and marker_block or "
                    "eeg_start/eeg_stop; eeg2fmri prepare runs.tsv)."))
        if not 1 <= int(block) <= len(blocks):
            raise Eeg2fmriInputError(f"{where}: marker_block {block} for run {run.key}: expected 1-{len(blocks)}, the file's blocks of "
                                     f"{name!r} markers being {listing}; give one of those numbers (or eeg_start/eeg_stop).")
        a, b = blocks[int(block) - 1]
        first, last_end = float(on[a]), float(on[b - 1]) + float(tr)
        before = (first - float(on[a - 1]) - float(tr)) / 2 if a > 0 else np.inf  # (from the previous block's last volume's end)
        after = (float(on[b]) - last_end) / 2 if b < len(on) else np.inf
        from eeg2fmri.io.eeg import discontinuities

        # the recorder paused between runs (New Segment): the cut never crosses a join, and where one lies between this block
        # and its neighbour, the EEG from it on is this run's alone (no half-pause limit; user test 50: the first volumes
        # lost their window)
        joins = np.asarray(discontinuities(raw), dtype=float)
        lo = float(joins[joins <= first].max()) if (joins <= first).any() else -np.inf
        hi = float(joins[joins >= last_end].min()) if (joins >= last_end).any() else np.inf
        prev_end = float(on[a - 1]) + float(tr) if a > 0 else -np.inf
        next_on = float(on[b]) if b < len(on) else np.inf
        tmin = max(0.0, lo, first - (BLOCK_MARGIN_S if lo > prev_end else min(BLOCK_MARGIN_S, before)))
        tmax = min(end, hi, last_end + (BLOCK_MARGIN_S if hi < next_on else min(BLOCK_MARGIN_S, after)))
        note = (f"EEG {tmin:.2f}-{tmax:.2f} s of the file used: marker block {block} of {len(blocks)} ({b - a} {name!r} markers; "
                f"the file's blocks: {listing})")
        return tmin, tmax, note
    tmin = 0.0 if start is None else float(start)
    tmax = end if stop is None else min(float(stop), end)
    if not (0.0 <= tmin < tmax) or tmin >= end:
        raise Eeg2fmriInputError(f"{where}: eeg_start/eeg_stop for run {run.key}: expected 0 <= eeg_start < eeg_stop within the recording "
                                 f"(0-{end:.1f} s), got {start}-{stop}; give seconds from the file's first sample.")
    return tmin, tmax, f"EEG {tmin:.2f}-{tmax:.2f} s of the file used (eeg_start/eeg_stop)"


def cut_run_eeg(run: RunRecord, raw, tr: float, *, marker: str | tuple[str, ...] | None = DEFAULT_MARKERS,
                first_onset: float | None = None) -> tuple[Any, LayoutRun, float | None, tuple[float, float, str] | None]:
    """Cut ``raw`` (in place) to the run's part of its EEG file (:func:`run_eeg_span`).

    Returns
    -------
    raw : mne.io.BaseRaw
        The run's part; its times (and every onset found in it) count from the part's first sample.
    run : LayoutRun
        The run, its ``first_onset`` (seconds from the file's first sample) moved to the part's time axis.
    first_onset : float | None
        ``first_onset`` likewise.
    span : (float, float, str) | None
        What :func:`run_eeg_span` returned.
    """
    run = as_layout_run(run)
    span = run_eeg_span(run, raw, tr, marker=marker)
    if span is None:
        return raw, run, first_onset, None
    samp0, sfreq, end = raw.first_samp, float(raw.info["sfreq"]), float(raw.times[-1])
    raw.crop(span[0], span[1], include_tmax=span[1] >= end)  # (to the file's end: its last sample stays)
    t0 = float(raw.first_samp - samp0) / sfreq  # crop snaps the start to a sample: the part's true start in the file
    span = (t0, t0 + float(raw.times[-1]) + 1.0 / sfreq, span[2])
    logger.info("%s: %s", run.eeg_path, span[2])
    if t0:
        first_onset = None if first_onset is None else float(first_onset) - t0
        if run.first_onset is not None:
            run = dataclasses.replace(run, first_onset=run.first_onset - t0)
    return raw, run, first_onset, span


def layout_volume_onsets(run: RunRecord, raw, n_volumes: int, tr: float, *, marker: str | tuple[str, ...] | None = DEFAULT_MARKERS, first_onset: float | None = None, tolerance: float = 0.05,
                         dummy_scans: str = "auto") -> LayoutSync:
    """Onsets of the BOLD volumes in the EEG time axis, with the layout's conventions.

    * markers (``run.marker``, or ``marker`` when the layout has none):
      :func:`eeg2fmri.io.volume_onsets`;
    * no markers (``run.first_onset`` set, ds000116): regular timing from
      that onset, checked against the EEG length to the sample;
    * a preprocessed segment placed with a raw recording's markers
      (``run.meta["marker_source"]``, ds002336/ds002338 ``eeg_pp``): raw
      marker times shifted to the segment, keeping the volumes it covers;
    * fewer markers than volumes with ``run.meta["fewer_markers"] ==
      "keep-first"`` (CWL): the first volumes, one per marker.

    Parameters
    ----------
    run : LayoutRun | RunRecord
    raw : mne.io.BaseRaw
        The run's EEG from :func:`read_layout_eeg`.
    n_volumes : int
        Volumes in the BOLD file.
    tr : float
        Repetition time (s).
    marker, first_onset :
        Fallbacks for runs whose layout does not fix them (plain BIDS).
    tolerance : float
        Relative deviation of the marker spacing from ``tr`` allowed.
    dummy_scans : {"auto", "drop-first", "drop-last", "error"}
        More markers than volumes: see :func:`eeg2fmri.io.volume_onsets`.

    Returns
    -------
    sync : LayoutSync
        ``sync.volumes`` selects the BOLD volumes to keep, ``sync.onsets``
        their onsets.
    """
    run = as_layout_run(run)
    where = str(run.eeg_path)
    # a layout that fixes the TR (cwl, ds000116, ds003768, ...): the marker/TR mismatch names it as the source (review)
    src = (f"the one the {run.layout} layout gives this run ({run.tr:g} s; pass tr to override it)"
           if getattr(run, "tr", None) and getattr(run, "layout", "bids") != "bids" else None)
    if run.marker is None and run.first_onset is not None:
        return _regular(raw, n_volumes, tr, run.first_onset, where)
    if run.meta.get("marker_source"):
        return _from_raw_markers(run, raw, n_volumes, tr, where)
    names = run.marker if run.marker is not None else marker
    if names is None:  # the caller's regular timing, exactly as eeg2fmri.io.volume_onsets does it
        rep = volume_onsets(raw, n_volumes, tr, marker=None, first_onset=first_onset, tolerance=tolerance, where=where, tr_source=src)
        return LayoutSync(rep.onsets, slice(0, n_volumes), rep)
    names = (names,) if isinstance(names, str) else tuple(names)
    if run.meta.get("fewer_markers") == "keep-first":
        n_found = len(_marker_times(raw.annotations, names, raw.first_time))
        if 2 <= n_found < n_volumes:
            rep = volume_onsets(raw, n_found, tr, marker=names, tolerance=tolerance, where=where, tr_source=src)
            note = f"{n_found} markers for {n_volumes} volumes: keeping the first {n_found} volumes (dataset convention)."
            rep.notes.append(note)
            logger.info("%s: %s", where, note)
            return LayoutSync(rep.onsets, slice(0, n_found), rep)
    from eeg2fmri.io.bold import declared_discarded_volumes

    declared = declared_discarded_volumes(run.bold_path) if run.bold_path is not None else None
    said = () if declared is None else tuple(sorted({declared["user"], declared["user"] + declared["scanner"]} - {0}))
    try:
        rep = volume_onsets(raw, n_volumes, tr, marker=names, first_onset=first_onset, tolerance=tolerance, dummy_scans=dummy_scans,
                            where=where, tr_source=src, declared_dummies=said)
    except Eeg2fmriInputError as err:
        # lost markers filled in and extra leading markers: where the sidecar declares exactly those dummy scans, they are
        # documented, not a pause (a review)
        if dummy_scans != "auto" or "were filled in mid-run" not in str(err) or declared is None:
            raise
        rep = volume_onsets(raw, n_volumes, tr, marker=names, first_onset=first_onset, tolerance=tolerance, dummy_scans="drop-first",
                            where=where, tr_source=src, declared_dummies=said)
        if rep.dropped not in {declared["user"], declared["user"] + declared["scanner"]}:
            raise
    if dummy_scans == "auto" and rep.method == "markers" and rep.dropped > 0:
        _check_declared_dummies(run, rep, where)
    return LayoutSync(rep.onsets, slice(0, n_volumes), rep)


def _check_declared_dummies(run: LayoutRun, rep: SyncReport, where: str) -> None:
    """More markers than volumes, the first ones taken as dummy scans: confirmed where the BOLD sidecar declares that many
    discarded volumes, refused where it declares another number (the extra markers are then likely at the end: a BOLD
    file cut short, whose every volume would be paired with EEG that many TRs late; user test 24)."""
    from eeg2fmri.io.bold import declared_discarded_volumes

    declared = declared_discarded_volumes(run.bold_path)
    if declared is None:
        rep.notes.append(f"the BOLD sidecar declares no discarded volumes (NumberOfVolumesDiscardedByScanner/ByUser): that the first "
                         f"{rep.dropped} markers are dummy scans is assumed, not confirmed")
        return
    fits = {declared["user"], declared["user"] + declared["scanner"]}
    said = f"NumberOfVolumesDiscardedByScanner {declared['scanner']}, NumberOfVolumesDiscardedByUser {declared['user']}"
    if rep.dropped in fits:
        rep.notes.append(f"the {rep.dropped} leading dummy markers agree with the BOLD sidecar ({said})")
        return
    lead = max([d for d in fits if 0 < d < rep.dropped], default=0)
    end = (f"If the BOLD file lacks its last {rep.dropped - lead} volumes (cut short), pass dummy_scans='drop-last'"
           + (f" (the {lead} declared leading markers are dropped first, the other {rep.dropped - lead} from the end)" if lead else "")
           + " for this run -- a dummy_scans column in a runs table (the prepare option dummy_scans sets it for every run) -- or give "
           "the whole run")
    raise Eeg2fmriInputError(
        f"{where}: {rep.n_markers} '{rep.marker}' markers for {len(rep.onsets)} volumes, {rep.dropped} more, but {run.bold_path.name}'s "
        f"sidecar declares {said}: the extra markers are not all dummy scans before the first saved volume. {end}; "
        f"if the first {rep.dropped} markers really belong to no saved volume, correct the sidecar or pass dummy_scans='drop-first'.")


# ---------------------------------------------------------------------------------------------
# checking a folder
# ---------------------------------------------------------------------------------------------
@dataclass
class LayoutCheck:
    """Result of :func:`check_layout`.

    Attributes
    ----------
    layout : str
        Layout checked (detected when ``"auto"`` was asked).
    ok : bool
        Runs were found and every one has its files.
    runs : list of LayoutRun
    problems : list of str
        Missing or unreadable pieces of the runs found (``ok`` is False).
    skipped : list of str
        Pieces that could not be paired and are left out (the dataset's known
        gaps end up here; they do not make ``ok`` False).
    notes : list of str
        Decisions taken on purpose and files repaired on the fly.
    table : eeg2fmri.io.pairing.PairingTable | None
        Run-by-run pairing (paired / left out and why) for BIDS-style layouts.
    """

    layout: str
    ok: bool
    runs: list[LayoutRun] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    table: Any = None

    def lines(self) -> list[str]:
        """Readable report lines (with the pairing table when the layout made one)."""
        out = [f"layout {self.layout}: {len(self.runs)} complete run(s); {'OK' if self.ok else 'PROBLEMS'}"]
        if self.table is not None:
            out += ["  " + line for line in self.table.lines() if not line.startswith("  note: ")]
        keys = [r.key for r in self.runs]
        out += [f"  problem: {p}" for p in _collapse(self.problems, keys)]
        out += [f"  skipped: {p}" for p in self.skipped]
        out += [f"  note: {n}" for n in _collapse(self.notes, keys)]
        return out


def _collapse(items: list[str], keys: list[str]) -> list[str]:
    """Items that say the same of several runs (the same text once each run's key and file names are taken out) as one:
    the first in full, then which other runs it holds for (user test 7: one 900-character paragraph per run)."""
    import re

    def generic(item: str) -> tuple[str, str | None]:
        for k in sorted(keys, key=len, reverse=True):
            if item.startswith(f"{k}: "):
                return re.sub(rf"\S*{re.escape(k)}\S*", "<run>", item), k
        return item, None

    groups: dict[str, list[tuple[str, str | None]]] = {}
    for item in items:
        g, k = generic(item)
        groups.setdefault(g if k is not None else f"\0{len(groups)}{item}", []).append((item, k))
    return [members[0][0] + (f"\n    (the same for {len(members) - 1} more run(s): {', '.join(str(k) for _, k in members[1:])})"
                             if len(members) > 1 else "") for members in groups.values()]


def _check_confounds(path: Path, n_volumes: int, key: str) -> tuple[list[str], list[str]]:
    """fMRIPrep confounds of a run against its BOLD: one row per volume (a problem otherwise) and missing values after the
    first row (a note naming the columns: regressing them out fails)."""
    import pandas as pd

    try:
        table = pd.read_csv(path, sep="\t", na_values=["n/a"])
    except Exception as err:  # noqa: BLE001  (any unreadable table is a problem of that file)
        return [f"{key}: {path}: cannot be read as a tab-separated table ({type(err).__name__}: {err})"], []
    problems, notes = [], []
    if len(table) != n_volumes:
        problems.append(f"{key}: {path.name}: {len(table)} rows for {n_volumes} BOLD volumes; expected one row per volume "
                        "(the confounds of another run or output?): use the confounds file of this run and this fMRIPrep output")
    gaps = [c for c in table.columns if table[c].iloc[1:].isna().any()]
    if gaps:
        notes.append(f"{key}: {path.name}: missing values after the first row in {', '.join(map(str, gaps[:8]))}"
                     + (" ..." if len(gaps) > 8 else "") + "; prepare refuses these columns as confounds")
    return problems, notes


def _check_run(run: LayoutRun, marker: str | tuple[str, ...] | None = DEFAULT_MARKERS,
               first_onset: float | None = None, dummy_scans: str | None = None) -> tuple[list[str], list[str]]:
    problems, notes = [], []
    eeg = run.eeg_path
    if not eeg.is_file():
        problems.append(f"{run.key}: EEG file {eeg} does not exist")
    elif eeg.suffix.lower() == ".vhdr":
        try:
            data, _, n = brainvision_files(eeg)
            notes += [f"{run.key}: {eeg.name}: {x}" for x in n]
            if data.stat().st_size == 0:
                problems.append(f"{run.key}: {data} is empty")
        except Eeg2fmriInputError as err:
            problems.append(f"{run.key}: {err}")
    if run.meta.get("marker_source"):
        try:
            _raw_marker_file(Path(run.meta["marker_source"]))
        except Eeg2fmriInputError as err:
            problems.append(f"{run.key}: {err}")
    if run.bold_path is not None:
        if not run.bold_path.is_file():
            problems.append(f"{run.key}: BOLD file {run.bold_path} does not exist")
        else:
            try:
                img, tr = read_layout_bold(run, marker=marker)
            except Eeg2fmriInputError as err:
                problems.append(f"{run.key}: {err}")
            else:
                from eeg2fmri.io.bold import bold_file_size_problem

                size = bold_file_size_problem(run.bold_path, img)  # (user test 35: truncated files were reported OK)
                if size:
                    problems.append(f"{run.key}: {size}")
                if run.meta.get("confounds"):
                    p_, n_ = _check_confounds(Path(run.meta["confounds"]), int(img.shape[3]) if len(img.shape) == 4 else 1, run.key)
                    problems += p_
                    notes += n_
                if not problems:  # the volume timing as prepare finds it (markers read from the EEG header and events)
                    try:
                        raw = read_layout_eeg(run, preload=False)
                    except Exception as err:  # noqa: BLE001  (an unreadable EEG is a problem of its file, not of the timing)
                        why = str(err) if isinstance(err, Eeg2fmriInputError) else f"{eeg}: {type(err).__name__}: {err}"
                        problems.append(f"{run.key}: EEG file cannot be read: {why}")
                        return problems, notes
                    try:  # one EEG file across several runs: this run's part, as prepare cuts it
                        raw, run, first_onset, span = cut_run_eeg(run, raw, tr, marker=marker, first_onset=first_onset)
                    except Eeg2fmriInputError as err:
                        problems.append(f"{run.key}: {err}")
                        return problems, notes
                    if span is not None:
                        notes.append(f"{run.key}: {span[2]}")
                    from eeg2fmri.io.eeg import discontinuities

                    joins = discontinuities(raw)
                    if joins:  # prepare refuses it (user test 24: --check said OK)
                        problems.append(f"{run.key}: {eeg.name}: the recording is not continuous: joined or paused at "
                                        f"{', '.join(f'{t:.3f}' for t in joins[:5])} s, so prepare refuses it (the EEG after a join is "
                                        "out of step with the volumes); prepare each continuous piece as a run of its own, with the "
                                        "BOLD volumes its markers cover")
                        return problems, notes
                    try:
                        sync = layout_volume_onsets(run, raw, int(img.shape[3]) if len(img.shape) == 4 else 1, tr, marker=marker,
                                                    first_onset=first_onset, dummy_scans=run.dummy_scans or dummy_scans or "auto")
                    except Eeg2fmriInputError as err:
                        problems.append(f"{run.key}: volume timing: {err}")
                    else:
                        rep = sync.report
                        how = (f"{rep.n_markers} {rep.marker!r} marker(s)" if rep.method == "markers" else "regular timing")
                        notes.append(f"{run.key}: {len(sync.onsets)} volume(s) timed by {how}" + "".join(f"; {n}" for n in rep.notes))
                        if "the EEG ends before the last volume is complete." in rep.notes:  # prepare refuses it (user test 54: a note)
                            problems.append(f"{run.key}: volume timing: the EEG ({float(raw.times[-1]):.1f} s) ends before the last volume's "
                                            f"acquisition does ({float(sync.onsets[-1]) + tr:.1f} s), so prepare refuses the run: keep the "
                                            "BOLD volumes the EEG covers (nibabel: img.slicer[..., :N]; where extra markers then follow "
                                            "the last kept volume, prepare with dummy_scans 'drop-last'), or leave the run out")
                        from eeg2fmri.io.bold import slice_timing_note

                        st = slice_timing_note(run.bold_path, tr)  # (user test 27: the check said nothing of SliceTiming)
                        if st:
                            notes.append(f"{run.key}: {st}")
                        if rep.method == "regular":
                            notes += _markers_against_regular(run, raw, int(img.shape[3]) if len(img.shape) == 4 else 1, tr, sync.onsets)
    return problems, notes


def _compare_channels(runs: list[LayoutRun], channels: list[str] | None = None) -> tuple[list[str], list[str]]:
    """The runs' EEG channels as prepare compares them: one note where they differ by order or spelling only, or by the
    channels some runs mark bad (prepare reads or interpolates those); a problem where a run lacks channels or has
    others (prepare refuses that without its option channels). With ``channels`` (prepare's option) every run is
    mapped onto that set: a note names what each run lacks (interpolated) and a problem where a run holds under half."""
    import mne

    from eeg2fmri.io.channel_names import channel_difference, compare_run_channels

    heads = []
    for run in runs:
        try:
            raw = read_layout_eeg(run, preload=False)
        except Exception:  # noqa: BLE001  (an unreadable EEG is reported by _check_run; the others are still compared)
            continue
        good = [raw.ch_names[i] for i in mne.pick_types(raw.info, eeg=True, exclude="bads")]
        heads.append((run.key, good, [raw.ch_names[i] for i in mne.pick_types(raw.info, eeg=True, exclude=[])]))
    if channels:  # prepare maps each run onto these (user test 54: the check refused what prepare --config accepted)
        from eeg2fmri.io.channel_names import channel_key

        want = [str(c) for c in channels]
        problems, lacking = [], []
        for k, good, _ in heads:
            have = {channel_key(c) for c in good}
            missing = [c for c in want if channel_key(c) not in have]
            if len(want) - len(missing) < 0.5 * len(want):
                problems.append(f"{k}: holds {len(want) - len(missing)} of the {len(want)} channels of the prepare option channels (missing "
                                f"{missing[:12]}{' ...' if len(missing) > 12 else ''}); prepare maps a run by name and electrode position "
                                "and needs at least half of them: check the names, or leave the run out (--subjects)")
            elif missing:
                lacking.append(f"{k}: {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")
        notes = [f"prepare maps every run onto the {len(want)} channels of the option channels (by name, then by electrode position); "
                 + (f"interpolated where a run lacks them ({'; '.join(lacking)})" if lacking else "every run holds them all")]
        return problems, notes
    if len(heads) < 2:
        return [], []
    (key0, good0, whole0) = heads[0]
    kind = compare_run_channels([h[1] for h in heads], [h[2] for h in heads])
    if kind == "same":
        return [], []
    if kind == "spelling":
        return [], ["the runs' EEG channels differ only in order or in the spelling of their names: prepare reads every run in the "
                    f"first run's ({key0}) order"]
    if kind == "bads":
        marked = "; ".join(f"{k}: {', '.join(c for c in whole if c not in good)}" for k, good, whole in heads if len(good) < len(whole))
        return [], [f"the runs' EEG channels differ only by the channels some runs mark bad ({marked}): prepare keeps all "
                    f"{len(whole0)} in every run and interpolates a run's bad ones from electrode positions"]
    problems = []
    for k, good, _ in heads[1:]:
        missing, extra = channel_difference(good0, good)
        if missing or extra:
            problems.append(f"{k}: EEG channels differ from the first run's ({key0}): missing here {missing}, only here {extra}; "
                            "prepare refuses runs with different channels: give one set with the prepare option channels (a run's "
                            "missing ones are interpolated from electrode positions), or leave the run out (--subjects)")
    return problems, []


def different_tr_hint(key: str, tr: float, key0: str, tr0: float) -> str:
    """The message for a run whose TR differs from the first run's (prepare refuses it; ``datasets --check`` lists it)."""
    return (f"{key}: TR {tr:g} s differs from the first run's ({key0}) {tr0:g} s; prepare pools only runs of one TR (its windows and "
            "haemodynamic lags are counted in volumes): prepare the runs of each TR as a dataset of their own (--subjects, or the "
            "layout options sessions/tasks, e.g. --layout-option 'tasks=[...]'), or resample the BOLD in time: prepare option "
            "resample_tr (--config '{\"resample_tr\": " + f"{tr0:g}" + "}': every run's BOLD to one TR after its volumes are timed)")


def _compare_trs(runs: list[LayoutRun], marker: str | tuple[str, ...] | None = DEFAULT_MARKERS, grid_option: Any = None) -> list[str]:
    """A problem for every run whose TR or voxel grid differs from the first run's, as prepare would refuse it (user test
    19: the check passed a dataset that prepare then refused; user test 30: the same for grids)."""
    from eeg2fmri.io.bold import GRID_ATOL_MM, affine_difference_mm
    from eeg2fmri.io.roi_tables import is_target_table

    heads = []
    for run in runs:
        if run.bold_path is None or not run.bold_path.is_file():
            continue
        try:
            img, tr = read_layout_bold(run, marker=marker)
        except Eeg2fmriInputError:  # (reported by _check_run)
            continue
        grid = None if is_target_table(run.bold_path) else (tuple(img.shape[:3]), np.asarray(img.affine, float))
        heads.append((run.key, float(tr), grid))
    if not heads:
        return []
    key0, tr0, grid0 = heads[0]
    out = [different_tr_hint(k, tr, key0, tr0) for k, tr, _ in heads[1:] if abs(tr - tr0) > 1e-3 * tr0]
    for k, _, grid in heads[1:]:
        if grid is None or grid0 is None or grid_option is not None:  # (the prepare option grid puts every run on one grid)
            continue
        if grid[0] != grid0[0]:
            out.append(f"{k}: BOLD grid {grid[0]} differs from the first run's ({key0}) {grid0[0]}; prepare refuses it unless the runs are "
                       "put on one grid: prepare option grid='first' (--config '{\"grid\": \"first\"}') for runs in one space such as "
                       "MNI, or resample them yourself first")
        elif affine_difference_mm(grid[1], grid0[1]) > GRID_ATOL_MM:  # (as prepare's _check_run_grid)
            out.append(f"{k}: BOLD voxel-to-world affine differs from the first run's ({key0}) by up to "
                       f"{affine_difference_mm(grid[1], grid0[1]):.3g} mm although the grid shapes agree; prepare refuses it unless the "
                       "runs are put on one grid: prepare option grid='first' for runs in one space such as MNI")
    return out


def _markers_against_regular(run: LayoutRun, raw, n_volumes: int, tr: float, onsets: np.ndarray) -> list[str]:
    """With regular timing (--first-onset): a note when the recording has volume-like markers that put volume 0 elsewhere."""
    from eeg2fmri.io.sync import volume_marker_candidates

    out = []
    for desc, n, _ in volume_marker_candidates(raw, n_volumes, tr)[:1]:
        level = logger.level
        logger.setLevel(logging.ERROR)  # (its dummy-scan warning is about timing this check does not use)
        try:
            mk = volume_onsets(raw, n_volumes, tr, marker=desc, where=str(run.eeg_path)).onsets
        except Eeg2fmriInputError:
            continue
        finally:
            logger.setLevel(level)
        gap = float(mk[0] - onsets[0])
        if abs(gap) > 0.25 * tr:
            name = desc.split("/")[-1]
            out.append(f"{run.key}: regular timing puts volume 0 at {onsets[0]:.3f} s, but the recording's {n} {desc!r} markers put it at "
                       f"{mk[0]:.3f} s ({gap:+.3f} s, dummy scans dropped): check --first-onset, or time by the markers (--marker {name})")
    return out


def check_layout(root: str | os.PathLike, layout: str = "auto", **options: Any) -> LayoutCheck:
    """Check a folder against a layout: detection, pairing, and every run's files.

    Parameters
    ----------
    root : path-like
        Dataset folder.
    layout : str
        Layout name or ``"auto"``.
    **options
        Layout options (as for :func:`find_runs_layout`), and ``subjects``;
        ``marker`` (default: the usual scanner marker names) and
        ``first_onset`` are the volume-timing settings prepare would use for
        runs whose layout does not fix them: every run's volumes are timed as
        prepare times them, and a run prepare would refuse (no scanner
        markers, fewer markers than volumes, markers a TR apart that is not
        the BOLD's) is a problem. ``prepare``: prepare options the check
        applies as prepare will (``channels``: every run mapped onto that
        set; ``grid``: runs on other grids resampled, so not compared;
        ``dummy_scans``).

    Returns
    -------
    check : LayoutCheck
        Never raises for missing data: problems are listed.
    """
    root = Path(root)
    if not root.is_dir():
        return LayoutCheck(layout, False, problems=[f"{root}: no such folder"])
    if layout == "auto":
        try:
            layout = detect_layout(root)
        except Eeg2fmriInputError as err:
            return LayoutCheck("auto", False, problems=[str(err)])
    lay = get_layout(layout)
    problems, notes = [], []
    if not lay.detect(root):
        problems.append(f"{root} does not look like {layout!r}: expected " + "; ".join(lay.NEEDS))
    subjects = norm_subjects(options.pop("subjects", None))
    marker = options.pop("marker", DEFAULT_MARKERS)
    first_onset = options.pop("first_onset", None)
    prepare = options.pop("prepare", None)
    try:
        lay._check_options(options)
        sc = lay.scan(root, subjects, **options)
    except Eeg2fmriInputError as err:
        return LayoutCheck(layout, False, problems=problems + [str(err)])
    notes += sc.notes
    p, n = _check_runs(sc.runs, marker, first_onset, prepare)
    problems += p
    notes += n
    if not sc.runs and not problems:
        problems.append(f"no complete runs; expected {'; '.join(lay.NEEDS)}")
    return LayoutCheck(layout, bool(sc.runs) and not problems, sc.runs, problems, sc.skipped, notes, sc.table)


def _check_runs(runs: list, marker: Any, first_onset: float | None, prepare: dict | None = None) -> tuple[list[str], list[str]]:
    """Every run's files and volume timing, then the runs against each other (channels, TRs), under prepare's options
    ``prepare`` (``channels``, ``grid``, ``dummy_scans``) as prepare will apply them."""
    prepare = prepare or {}
    problems, notes = [], []
    for r in runs:
        p, n = _check_run(r, marker, first_onset, dummy_scans=prepare.get("dummy_scans"))
        problems += p
        notes += n
    if len(runs) > 1 or prepare.get("channels"):  # (user test 30: found only once every run's own problems were fixed, one layer at a time)
        p, n = _compare_channels(runs, prepare.get("channels"))
        problems += p
        notes += n
    grid = prepare.get("grid")
    if isinstance(grid, str) and grid != "first":  # a reference image: as prepare reads it (user test 54: the check passed, prepare refused)
        from eeg2fmri.io.bold import reference_grid

        try:
            reference_grid(grid)
        except Eeg2fmriInputError as err:
            problems.append(str(err))
    if len(runs) > 1:
        problems += _compare_trs(runs, marker, prepare.get("grid"))
        if prepare.get("grid") is not None:
            notes.append(f"prepare puts every run's BOLD on one grid (option grid {prepare['grid']!r}); the runs' own grids are not compared")
    return problems, notes


def check_runs(runs: list, *, marker: str | tuple[str, ...] | None = DEFAULT_MARKERS, first_onset: float | None = None,
               prepare: dict | None = None) -> LayoutCheck:
    """:func:`check_layout` for runs given as file pairs (a runs table, ``LayoutRun`` records): every run's files, volume
    timing, channels and TRs as prepare will find them (user test 26: a runs table could not be checked)."""
    runs = [as_layout_run(r) for r in runs]
    problems, notes = _check_runs(runs, marker, first_onset, prepare)
    if not runs:
        problems.append("no runs given")
    return LayoutCheck("files", bool(runs) and not problems, runs, problems, [], notes, None)


_import_layouts()
