"""Read EEG recordings (paths or MNE Raw) through MNE / mne-bids."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np

from eeg2fmri.utils.logs import logger
from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["read_eeg"]

_READERS = {".vhdr": "read_raw_brainvision", ".edf": "read_raw_edf", ".bdf": "read_raw_bdf", ".set": "read_raw_eeglab", ".fif": "read_raw_fif", ".gdf": "read_raw_gdf", ".cnt": "read_raw_cnt"}


def read_eeg(eeg, *, preload: bool = True):
    """Read an EEG recording into an MNE ``Raw``.

    Parameters
    ----------
    eeg : path-like | mne.io.BaseRaw
        A recording (BrainVision ``.vhdr``, EDF/BDF, EEGLAB ``.set``, FIF, ...)
        or an already loaded ``Raw`` (returned as is, loaded if needed). Inside
        a BIDS dataset, channel types come from ``channels.tsv`` (so ECG/EOG
        are typed correctly and can be dropped).
    preload : bool
        Load the data into memory.

    Returns
    -------
    raw : mne.io.BaseRaw
    """
    import mne

    if isinstance(eeg, mne.io.BaseRaw):
        if preload and not eeg.preload:
            eeg.load_data(verbose=False)
        return eeg
    path = Path(os.fspath(eeg))
    if not path.exists():
        raise Eeg2fmriInputError(f"{path}: EEG file not found; check the path.")
    ext = path.suffix.lower()
    if ext == ".vhdr" and path.suffix != ".vhdr":  # MNE's BrainVision reader takes only the lower-case ending (user test 29)
        raise Eeg2fmriInputError(f"{path}: expected a BrainVision header ending in .vhdr, found {path.suffix!r}, which MNE's reader does not "
                                 "take; rename the header to .vhdr (its DataFile=/MarkerFile= lines name the other two files).")
    if ext not in _READERS:
        raise Eeg2fmriInputError(
            f"{path}: unsupported EEG format {ext!r}; expected one of {sorted(_READERS)}. Convert it with MNE "
            "(mne.io.read_raw(...).export(...)) or pass a loaded mne.io.Raw."
        )
    if ext == ".vhdr":  # a header whose DataFile=/MarkerFile= name files renamed since (user test 29: refused in BIDS folders)
        from eeg2fmri.io.layouts._readers import brainvision_files, read_brainvision

        if brainvision_files(path)[2]:
            raw = read_brainvision(path, preload=preload)  # (its own markers; the repairs are logged)
            tsv = _bids_sidecar(path, "channels.tsv") or _inherited_sidecar(path, "channels.tsv")
            if tsv is not None:
                _apply_channels_tsv(raw, tsv, path)
            if raw.info.get("line_freq") is None:
                line = _sidecar_line_freq(path)
                if line is not None:
                    raw.info["line_freq"] = line
            return raw
    caught: list[warnings.WarningMessage] = []
    channels_tsv = None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            channels_tsv = _bids_sidecar(path, "channels.tsv")
            if channels_tsv is not None:
                import mne_bids

                bp = mne_bids.get_bids_path_from_fname(path)
                raw = mne_bids.read_raw_bids(bp, verbose=False)
                _keep_own_joins(raw, path, ext)
                if preload:
                    raw.load_data(verbose=False)
            else:
                raw = getattr(mne.io, _READERS[ext])(path, preload=preload, verbose=False)
    except (ValueError, OSError, RuntimeError, KeyError) as err:
        if isinstance(err, Eeg2fmriInputError):
            raise
        if "Channel mismatch between" in str(err) and channels_tsv is not None:
            raise Eeg2fmriInputError(_channel_mismatch_message(path, channels_tsv, ext)) from err
        raise Eeg2fmriInputError(f"{path}: could not read EEG ({type(err).__name__}: {err}); is the file complete and in the format its extension says?") from err
    for w in caught:
        logger.debug("%s: reader warning: %s", path.name, w.message)
    if ext in (".edf", ".bdf"):
        _scale_nanovolts(raw, path)
        _keep_edf_plus_d_joins(raw, path)
    if channels_tsv is not None:
        _warn_ignored_channels_tsv(path, channels_tsv, [str(w.message) for w in caught], len(raw.ch_names))
    else:
        if raw.info.get("line_freq") is None:  # (mne-bids reads the sidecar; the plain reader does not: user test 12)
            line = _sidecar_line_freq(path)
            if line is not None:
                raw.info["line_freq"] = line
        inherited = _inherited_sidecar(path, "channels.tsv")  # (mne-bids reads only the one beside the file)
        if inherited is not None:
            _apply_channels_tsv(raw, inherited, path)
    return raw


#: BIDS channels.tsv types -> MNE channel types (the others are left as the file has them).
_BIDS_TYPES = {"EEG": "eeg", "ECG": "ecg", "EKG": "ecg", "EOG": "eog", "VEOG": "eog", "HEOG": "eog", "EMG": "emg", "MISC": "misc",
               "TRIG": "stim", "RESP": "resp", "GSR": "gsr", "TEMP": "temperature", "REF": "misc", "SYSCLOCK": "misc"}


def _apply_channels_tsv(raw, tsv: Path, path: Path) -> None:
    """Channel types and bad status from a ``channels.tsv`` inherited from a higher level of the dataset (BIDS inheritance;
    user test 17: ds002336's top-level ``task-*_channels.tsv``, the only file saying that channel 32 is ECG, was passed
    over in silence). Used only when it is a tab-separated table naming exactly the file's channels; otherwise a warning
    says why it is not used."""
    import csv

    try:
        with open(tsv, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh, delimiter="\t")
            rows = list(reader)
            cols = [str(c).strip() for c in (reader.fieldnames or [])]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        logger.warning("%s: could not read it (%s); channel types of %s come from the file alone (ECG/EOG/EMG typed by name).", tsv, err, path.name)
        return
    first = (cols[0] if len(cols) == 1 else "\t".join(cols))[:60]
    if "name" not in cols or "type" not in cols:
        logger.warning("%s: inherited by %s but not a BIDS channels table: expected tab-separated columns name, type (status), found the "
                       "header %r; it is not used, so channel types come from the EEG file alone (channels named ECG/EOG/EMG are still "
                       "typed by name). Fix the file (tabs between columns, unquoted names) to use it.", tsv, path.name, first)
        return
    rows = [{str(k).strip(): str(v or "").strip() for k, v in r.items() if k is not None} for r in rows]
    names = [r["name"] for r in rows]
    if sorted(names) != sorted(raw.ch_names):
        only_tsv = [n for n in names if n not in raw.ch_names]
        only_file = [n for n in raw.ch_names if n not in names]
        logger.warning("%s: inherited by %s but it names other channels (only in the table: %s; only in the file: %s); it is not used, so "
                       "channel types come from the EEG file alone (channels named ECG/EOG/EMG are still typed by name).", tsv, path.name,
                       only_tsv[:6], only_file[:6])
        return
    # a type without an MNE equivalent (PPG, AUDIO, OTHER, ...) is misc, as mne-bids sets it (review: kept as EEG, it
    # became a model input)
    types = {r["name"]: _BIDS_TYPES.get(r.get("type", "").upper(), "misc") for r in rows}
    current = dict(zip(raw.ch_names, raw.get_channel_types()))
    change = {c: t for c, t in types.items() if current.get(c) != t}
    if change:
        raw.set_channel_types(change, on_unit_change="ignore", verbose=False)
    bads = [r["name"] for r in rows if r.get("status", "").lower() == "bad"]
    if "status" in cols:  # the table's status replaces the file's bad channels, as mne-bids does
        raw.info["bads"] = sorted(bads, key=raw.ch_names.index)
    logger.info("%s: channel types%s from the inherited %s", path.name, " and bad channels" if bads else "", tsv)


def _scale_nanovolts(raw, path: Path) -> None:
    """EDF/BDF channels whose physical dimension is ``nV``: MNE's reader knows V, mV and uV only and reads any other unit
    as volts, i.e. nanovolts 1e9 times too large; scale them to volts (a model trained on a uV file and applied to an nV
    file saw power 1e18 times too high)."""
    units = getattr(raw, "_orig_units", None) or {}
    idx = [i for i, ch in enumerate(raw.ch_names) if str(units.get(ch, "")).strip().lower() == "nv"]
    if not idx:
        return
    if raw.preload:
        raw._data[idx] *= 1e-9
    else:  # read on demand: the calibration factors apply when the samples are read
        raw._cals[idx] *= 1e-9
    logger.info("%s: %d channel(s) in nV (MNE reads that unit as volts): scaled to volts", path.name, len(idx))


def _sidecar_line_freq(path: Path) -> float | None:
    """``PowerLineFrequency`` of the ``*_eeg.json`` sidecar next to a BIDS EEG file (a number > 0), else ``None``.

    Read when a run has no ``channels.tsv`` (RECOMMENDED in BIDS, so often absent): the file is then read without
    mne-bids, and its line frequency -- what the notch filter uses -- would otherwise be lost for that run only.
    """
    side = _bids_sidecar(path, "eeg.json") or _inherited_sidecar(path, "eeg.json")
    if side is None:
        return None
    try:
        value = json.loads(side.read_text(encoding="utf-8")).get("PowerLineFrequency")
    except (OSError, ValueError, AttributeError):
        logger.warning("%s: could not read it as JSON; its PowerLineFrequency is not used (fix the file).", side)
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


#: mne-bids warnings that mean it read nothing from channels.tsv (it does not raise for them).
_CHANNELS_TSV_IGNORED = ("TSV file is empty", "has no 'name' column", "does not match the number of channels")


def _warn_ignored_channels_tsv(path: Path, channels_tsv: Path, messages: list[str], n_file: int) -> None:
    """Warn when mne-bids skipped a channels.tsv (empty, no name column, another channel count): types and status unused."""
    hit = [m for m in messages if any(k in m for k in _CHANNELS_TSV_IGNORED)]
    if not hit:
        return
    why = "it is empty" if any("TSV file is empty" in m or "has no 'name' column" in m for m in hit) else None
    if why is None:
        import csv

        with open(channels_tsv, newline="", encoding="utf-8-sig") as fh:
            n_tsv = sum(1 for _ in csv.DictReader(fh, delimiter="\t"))
        why = f"it lists {n_tsv} channel(s) but the EEG file has {n_file}"
    logger.warning("%s: %s, so mne-bids ignored it: channel types and bad-channel status come from %s alone (channels named "
                   "ECG/EOG/EMG are still typed by name). List every channel of the file, in its order, in %s (name, type, status).",
                   channels_tsv, why, path.name, channels_tsv.name)


def _channel_mismatch_message(path: Path, channels_tsv: Path, ext: str) -> str:
    """Which names of the EEG file and its channels.tsv differ (mne-bids refuses the pair)."""
    import csv

    import mne

    try:
        in_file = list(getattr(mne.io, _READERS[ext])(path, preload=False, verbose=False).ch_names)
    except Exception:  # noqa: BLE001 -- the message is best effort; the file's own reading error comes later
        in_file = []
    with open(channels_tsv, newline="", encoding="utf-8-sig") as fh:
        in_tsv = [row.get("name", "") for row in csv.DictReader(fh, delimiter="\t")]
    only_file = [c for c in in_file if c not in in_tsv]
    only_tsv = [c for c in in_tsv if c not in in_file]
    what = (f"names only in the file: {only_file[:8]}{' ...' if len(only_file) > 8 else ''}; only in {channels_tsv.name}: "
            f"{only_tsv[:8]}{' ...' if len(only_tsv) > 8 else ''}" if only_file or only_tsv else "the same names in another order")
    return (f"{path}: its channel names and those of {channels_tsv.name} differ ({len(in_file)} vs {len(in_tsv)} channels; {what}); "
            "BIDS requires them to agree. Correct the name column of channels.tsv (or the file's labels) so that both list the "
            "same channels in the same order.")


def bad_spans(raw) -> np.ndarray:
    """Spans the recording marks bad, shape (n_spans, 2): start and end in seconds from the first sample.

    MNE's convention: annotations whose description starts with ``bad`` (any case; ``BAD_motion``, ``bad blink``, also
    after a ``Type/`` prefix) and that last longer than 0 s; joins (``BAD boundary``) are not spans.
    """
    t0 = raw.first_time  # annotation onsets include it, with or without a measurement date (mne's _sync_onset)
    out = []
    for d, onset, dur in zip(raw.annotations.description, raw.annotations.onset, raw.annotations.duration):
        parts = [p.strip() for p in str(d).casefold().split("/")]
        if dur > 0 and any(p.startswith("bad") for p in parts) and not any(p.endswith("boundary") for p in parts):
            out.append((float(onset) - t0, float(onset) - t0 + float(dur)))
    return np.array(sorted(out), dtype=np.float64).reshape(-1, 2)


def edf_plus_d_records(path: str | os.PathLike) -> tuple[list[float], float] | None:
    """An EDF+D / BDF+D file's data-record start times (s, from its annotation signal's time-keeping TALs) and the record
    duration; ``None`` for EDF+C, plain EDF/BDF, or a header this reader cannot follow (logged)."""
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(256)
        kind = head[192:236].decode("ascii", "replace").strip().upper() if len(head) >= 256 else ""
        bdf = kind.startswith("BDF+D")
        if not (bdf or kind.startswith("EDF+D")):
            return None
        bps, label = (3, "BDF Annotations") if bdf else (2, "EDF Annotations")
        try:
            hdr_bytes = int(head[184:192].decode("ascii").strip())
            n_rec = int(head[236:244].decode("ascii").strip())
            dur = float(head[244:252].decode("ascii").strip())
            ns = int(head[252:256].decode("ascii").strip())
        except ValueError:
            logger.debug("%s: EDF+D header fields not readable: record times not read", path.name)
            return None
        sig = fh.read(ns * 256)
        if len(sig) < ns * 256 or dur <= 0:
            return None
        labels = [sig[i * 16 : (i + 1) * 16].decode("ascii", "replace").strip() for i in range(ns)]
        base = ns * (16 + 80 + 8 + 8 + 8 + 8 + 8 + 80)
        samples = [int(sig[base + i * 8 : base + (i + 1) * 8].decode("ascii", "replace").strip() or 0) for i in range(ns)]
        if label not in labels:
            return None
        k = labels.index(label)
        offset, size, rec_bytes = bps * sum(samples[:k]), bps * samples[k], bps * sum(samples)
        if n_rec < 0 and rec_bytes > 0:  # -1: unknown (a file closed while recording): the records the file holds
            n_rec = (path.stat().st_size - hdr_bytes) // rec_bytes
        starts = []
        for r in range(max(n_rec, 0)):
            fh.seek(hdr_bytes + r * rec_bytes + offset)
            tal = fh.read(size)
            if len(tal) < size:
                break
            first = tal.split(b"\x14", 1)[0].split(b"\x15", 1)[0].decode("ascii", "replace").strip()  # "+<onset>[\x15<duration>]"
            try:
                starts.append(float(first))
            except ValueError:
                logger.debug("%s: record %d has no time-keeping annotation (%r): record times not read", path.name, r, first[:20])
                return None
    return starts, dur


def edf_plus_d_joins(path: str | os.PathLike) -> list[float]:
    """Times (s, from the first sample, as MNE lays the samples end to end) where an EDF+D (or BDF+D) file's data records
    do not follow each other: each record's start time against the previous record's start plus the record duration.
    MNE reads EDF+D as if it were continuous (user test 27: a 1-s pause shifted every later volume by 1 s, a 4-s pause by
    two volumes, without a word). ``[]`` for EDF+C and plain EDF/BDF."""
    rec = edf_plus_d_records(path)
    if rec is None:
        return []
    starts, dur = rec
    return [round(r * dur, 6) for r in range(1, len(starts)) if abs(starts[r] - (starts[r - 1] + dur)) > 1e-3]


def _keep_edf_plus_d_joins(raw, path: Path) -> None:
    """Mark the pauses of an EDF+D file (:func:`edf_plus_d_joins`) as ``EDGE boundary`` annotations, MNE's own convention,
    and move its annotations onto the samples' time axis: MNE times them from the first record's start in real time, so
    after a pause every marker would lie that much later than its samples (a review: a piece cut out after the pause
    kept markers shifted by the pause)."""
    import mne

    try:
        rec = edf_plus_d_records(path)
    except OSError as err:  # (only a check: an unreadable header is reported where the file is read)
        logger.debug("%s: EDF+D record times not read (%s)", path.name, err)
        return
    if rec is None or len(rec[0]) < 2:
        return
    starts, dur = rec
    joins = [round(r * dur, 6) for r in range(1, len(starts)) if abs(starts[r] - (starts[r - 1] + dur)) > 1e-3]
    if not joins:
        return
    s0 = np.asarray(starts, dtype=float) - starts[0]
    ann = raw.annotations
    on = np.asarray(ann.onset, dtype=float) - raw.first_time
    r = np.clip(np.searchsorted(s0, on, side="right") - 1, 0, len(s0) - 1)
    moved = r * dur + np.minimum(on - s0[r], dur)  # (an onset inside a pause goes to the end of the record before it)
    n_moved = int(np.sum(np.abs(moved - on) > 1e-6))
    have = set(discontinuities(raw))
    missing = [t for t in joins if t not in have and 0.0 < t < raw.times[-1]]
    raw.set_annotations(mne.Annotations(np.concatenate([moved, missing]) + raw.first_time,
                                        np.concatenate([np.asarray(ann.duration, float), np.zeros(len(missing))]),
                                        list(ann.description) + ["EDGE boundary"] * len(missing), orig_time=ann.orig_time))
    logger.info("%s: EDF+D with %d pause(s) between data records (at %s s of the samples laid end to end); %d annotation(s) moved "
                "onto the samples' time axis", path.name, len(joins), ", ".join(f"{t:.3f}" for t in joins[:5]), n_moved)


def _keep_own_joins(raw, path: Path, ext: str) -> None:
    """mne-bids replaces a file's annotations with its ``events.tsv``, which a lab's script often writes with the volume
    markers only: a recording pause (BrainVision ``New Segment``, EEGLAB ``boundary``, EDF+D) the file itself marks
    would then go unseen and every volume after it be paired with the wrong EEG (user test 24). The joins the file's
    own reader finds are added back (``New Segment/...``) where ``events.tsv`` lacks them."""
    import mne

    try:
        own = getattr(mne.io, _READERS[ext])(path, preload=False, verbose=False)
    except Exception as err:  # noqa: BLE001  (the BIDS reader read it; its own reader only adds what it can)
        logger.debug("%s: own reader for pauses/joins failed (%s)", path.name, err)
        return
    have = set(discontinuities(raw))
    missing = [t for t in discontinuities(own) if t not in have]
    if missing:
        raw.annotations.append([t + raw.first_time for t in missing], [0.0] * len(missing),
                               ["New Segment/in the EEG file, not in events.tsv"] * len(missing))
        logger.info("%s: the file marks %d join(s)/pause(s) (at %s s) that events.tsv does not list; kept", path.name, len(missing),
                    ", ".join(f"{t:.3f}" for t in missing[:5]))
    _keep_own_markers(raw, own, path)


def _marker_name(desc: str) -> str:
    """A marker's name without its ``Type/`` prefix, lower case, spaces dropped (``Response/R128``, ``R128`` and ``r 128`` are
    one marker; ``Stimulus/S  1`` and ``S1`` too), as :func:`eeg2fmri.io.sync.marker_times` matches names."""
    return "".join(str(desc).split("/")[-1].split()).lower()


#: Annotation names (or ``Type/`` parts) that mark a join or pause in a recording (:func:`discontinuities`).
_JOIN_KINDS = frozenset({"bad boundary", "edge boundary", "boundary", "new segment"})

_SAID_OWN_MARKERS: set[str] = set()


def _keep_own_markers(raw, own, path: Path) -> None:
    """Add back the file's own markers whose names ``events.tsv`` does not list at all (user test 45: an ``events.tsv``
    listing only a clinician's spike marks hid the 240 ``R128`` scanner markers of the ``.vmrk``, and a runs table of file
    pairs met the same end). A name ``events.tsv`` lists (with or without its ``Type/`` prefix) keeps ``events.tsv``'s
    events only; joins are :func:`_keep_own_joins`' business."""
    listed = {_marker_name(d) for d in raw.annotations.description}
    kinds = _JOIN_KINDS
    ann = own.annotations
    keep = [i for i, d in enumerate(ann.description)
            if _marker_name(d) not in listed and not (kinds & {part.strip() for part in str(d).lower().split("/")})]
    if not keep:
        return
    keep = _without_scanner_aliases(raw, own, keep, path)
    if not keep:
        return
    onsets = ann.onset[keep] - own.first_time + raw.first_time
    # kept markers at the time of an events.tsv row (within a sample): the same events under another name (user test 48: an
    # events.tsv listing the stimuli as standard/deviant, the file as Stimulus/S  1, S  2)
    listed_on = np.sort(np.asarray(raw.annotations.onset, dtype=float))
    same = 0
    if len(listed_on):
        same = int(np.sum(_nearest_gap(listed_on, onsets) <= 1.0 / raw.info["sfreq"]))
    raw.annotations.append(onsets, ann.duration[keep], [str(ann.description[i]) for i in keep])
    names = sorted({str(ann.description[i]) for i in keep})
    key = "|".join(names)  # said once per process for a set of marker names (user test 48: 8 runs, 8 identical warnings), then
    # at info level per file (a check reads a file thrice)
    say = logger.warning if key not in _SAID_OWN_MARKERS else logger.info
    _SAID_OWN_MARKERS.add(key)
    say("%s: events.tsv does not list the recording's own marker(s) %s (%d events); kept from the EEG file (events.tsv "
        "replaces a file's markers when read through mne-bids)%s", path.name, ", ".join(names[:6]) + (" ..." if len(names) > 6 else ""),
        len(keep), f"; {same} of them at the time of an events.tsv row: the same events under another name there (prepare's "
        "option events pools the two names into one condition, with the events.tsv row's duration)" if same else "")


def _nearest_gap(sorted_times: np.ndarray, times: np.ndarray) -> np.ndarray:
    """For every one of ``times``, the distance (s) to the nearest of ``sorted_times`` (increasing, not empty)."""
    j = np.searchsorted(sorted_times, times)
    last = len(sorted_times) - 1
    return np.minimum(np.abs(sorted_times[np.clip(j - 1, 0, last)] - times), np.abs(sorted_times[np.clip(j, 0, last)] - times))


def _without_scanner_aliases(raw, own, keep: list[int], path: Path) -> list[int]:
    """``keep`` without the file's markers of a name whose events are (95 % or more, within a sample) at the times of
    ``events.tsv``'s scanner markers (``R128``, ``Scan Start``, ...), at nearly every one of them (90 %): the volume markers
    under the file's own name, as
    mne-bids/pybv writes ``R128`` annotations into a ``.vmrk`` (``Stimulus, S  1``) -- kept, they were offered as stimuli
    (user test 56: ``events: auto`` then built a regressor of one event per volume)."""
    from eeg2fmri.io.sync import DEFAULT_MARKERS, _match

    listed = raw.annotations
    scan_on = np.sort(np.asarray([o for o, d in zip(listed.onset, listed.description) if any(_match(d, m) for m in DEFAULT_MARKERS)], dtype=float))
    if not len(scan_on):
        return keep
    ann = own.annotations
    tol = 1.0 / raw.info["sfreq"]
    by_name: dict[str, list[int]] = {}
    for i in keep:
        by_name.setdefault(str(ann.description[i]), []).append(i)
    out: list[int] = []
    for name, idx in by_name.items():
        on = ann.onset[idx] - own.first_time + raw.first_time
        near = _nearest_gap(scan_on, on)
        # (and one at nearly every scanner marker: stimuli triggered by the scanner's pulse sit at some markers' times too,
        # but not at nearly all of them -- they stay events)
        if len(idx) >= 2 and np.mean(near <= tol) >= 0.95 and len(idx) >= 0.9 * len(scan_on):
            logger.info("%s: the recording's marker %r (%d events) marks the times of events.tsv's scanner markers: the volume markers "
                        "under the file's own name (as mne-bids writes them into a .vmrk); not kept as events", path.name, name, len(idx))
            continue
        out.extend(idx)
    return sorted(out)


def check_continuous(raw, where: str, tail: str) -> None:
    """Raise if ``raw`` is joined from pieces (:func:`discontinuities`): the times, then ``tail`` (what it breaks and the fix)."""
    joins = discontinuities(raw)
    if joins:
        raise Eeg2fmriInputError(
            f"{where}: the recording is not continuous: data are joined at {', '.join(f'{t:.3f}' for t in joins[:5])} s (boundary "
            f"annotations, e.g. from mne.concatenate_raws or EEGLAB's removed segments, or a pause: a BrainVision New Segment){tail}"
        )


def discontinuities(raw) -> list[float]:
    """Times (s from the first sample) where a recording is not continuous, strictly inside it: MNE's ``BAD boundary``/
    ``EDGE boundary`` annotations (``mne.concatenate_raws``, EDF+D), EEGLAB's ``boundary`` events (removed data), also as
    a BrainVision ``Comment`` marker, and BrainVision's ``New Segment`` markers (the recording was paused and resumed)."""
    kinds = _JOIN_KINDS
    onsets = raw.annotations.onset - raw.first_time
    end = raw.times[-1]
    return sorted({round(float(t), 6) for d, t in zip(raw.annotations.description, onsets)
                   if kinds & {part.strip() for part in str(d).lower().split("/")} and 0.0 < t < end})


def _inherited_sidecar(path: Path, suffix: str) -> Path | None:
    """The nearest BIDS sidecar ``*_<suffix>`` an ``*_eeg.*`` file inherits (:func:`eeg2fmri.io.bids.inherited_sidecars`), or
    ``None`` (user test 17: ds002336's top-level ``task-*_eeg.json`` gave PowerLineFrequency 50 and no notch was applied)."""
    from eeg2fmri.io.bids import inherited_sidecars

    found = inherited_sidecars(path, "eeg", suffix)
    return found[0] if found else None


def _bids_sidecar(path: Path, suffix: str) -> Path | None:
    """The BIDS sidecar (e.g. channels.tsv) next to an ``*_eeg.<ext>`` file, if any."""
    name = path.name
    if "_eeg" not in name:
        return None
    cand = path.with_name(name[: name.rindex("_eeg")] + "_" + suffix)
    return cand if cand.exists() else None
