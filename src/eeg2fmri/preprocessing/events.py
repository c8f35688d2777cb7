"""Event regressors: a recording's stimulus/task markers as per-frame series beside the EEG features.

Band power sees induced (oscillatory) changes; it does not see evoked responses, and in an
event-related design the BOLD follows the stimuli (user test 48: every EEG model near chance where a
stimulus GLM from the same file's markers reached r = 0.22-0.42). With the prepare option ``events``
each condition becomes one series on the representation's frame grid -- the number of its events
whose onset falls in the frame (events shorter than a frame), or the share of the frame its events
cover (events of a frame or longer: blocks) -- stored after the EEG features of every channel
(:func:`append_events`), so that windows, batches and synthesis carry them unchanged and linear
models convolve them with their haemodynamic basis (a stimulus GLM when read alone).

Event times come from the recording itself (MNE annotations: the BrainVision ``.vmrk``, EDF+
annotations, EEGLAB events, BIDS ``events.tsv`` through mne-bids; and trigger channels), in seconds
from its first sample, as the scanner markers are read (:func:`eeg2fmri.io.sync.marker_times`), so
an EEG-only recording gives them to ``synthesize`` the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from eeg2fmri.io.sync import _match, stim_events, with_default_markers
from eeg2fmri.utils.logs import logger
from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["NOT_STIMULI", "append_events", "condition_durations", "contiguous_ends", "event_regressors", "event_times", "merged_events", "resolve_events",
           "run_marker_names", "stimulus_events", "stimulus_names", "stimulus_note"]

#: Annotation names (case and spaces ignored; with or without a ``Type/`` prefix; ``BAD``/``EDGE`` as prefixes), or
#: BrainVision marker types (``Comment/any text``), that are recorder bookkeeping, not stimuli: never a condition of
#: ``events="auto"``.
NOT_STIMULI = ("boundary", "new segment", "comment", "sync on", "sync off", "syncstatus", "dc correction", "impedance",
               "lostsamples", "buffer overflow", "time 0", "userdefined")

#: Events of one condition closer than this (s) are one event listed under two names (a BrainVision marker and its
#: ``events.tsv`` row or trigger-channel code): counted once.
SAME_EVENT_S = 2e-3

#: ``events="auto"``: a name needs this many events over all runs to be a condition (one-off markers are not a design).
MIN_AUTO_EVENTS = 2

#: ``events="auto"``: at most this many conditions (more is rarely a design: list the ones to use).
MAX_AUTO_CONDITIONS = 32


def _not_stimulus(desc: str, markers: Sequence[str]) -> bool:
    d = str(desc).strip().lower()
    base = d.split("/", 1)[-1].strip() if "/" in d else d
    if d.startswith(("bad", "edge")) or base.startswith(("bad", "edge")):
        return True
    if any(_match(d, n) for n in NOT_STIMULI) or ("/" in d and d.split("/", 1)[0].strip() in NOT_STIMULI):  # (BrainVision "Comment/...")
        return True
    return any(_match(desc, m) for m in markers)


def event_times(raw) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every named event of a recording: annotations and trigger-channel codes.

    Parameters
    ----------
    raw : mne.io.BaseRaw

    Returns
    -------
    dict
        name -> (onsets, durations), seconds from the first sample, sorted by onset; annotation names as the
        recording gives them, trigger codes as ``"<channel>/<code>"`` (duration 0).
    """
    out: dict[str, list[tuple[float, float]]] = {}
    ann = raw.annotations
    if len(ann):
        on = np.asarray(ann.onset, dtype=float) - raw.first_time  # (as marker_times: mne's onsets include first_time)
        for d, o, du in zip(ann.description, on, np.asarray(ann.duration, dtype=float)):
            out.setdefault(str(d), []).append((float(o), float(du)))
    for name, on in stim_events(raw).items():
        out.setdefault(name, []).extend((float(o), 0.0) for o in on)
    res = {}
    for k, v in out.items():
        a = np.asarray(sorted(v), dtype=float).reshape(-1, 2)
        res[k] = (a[:, 0], a[:, 1])
    return res


def stimulus_events(raw, marker: str | Sequence[str] | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """:func:`event_times` of ``raw``'s events that may be stimuli (not scanner markers -- ``marker`` and the usual scanner
    names --, not recorder bookkeeping, :data:`NOT_STIMULI`): name -> (onsets, durations)."""
    markers = with_default_markers(tuple(marker) if isinstance(marker, (list, tuple)) else marker)
    return {k: v for k, v in event_times(raw).items() if not _not_stimulus(k, markers)}


def stimulus_names(raw, marker: str | Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """:func:`stimulus_events`' names with their onsets (s from the first sample)."""
    return {k: v[0] for k, v in stimulus_events(raw, marker).items()}


#: An event this short (s) or shorter carries no duration: a marker of one sample (recorded at >= 20 Hz) or an events.tsv
#: row of duration 0 / n/a. Only such events take a block condition's recorded duration (user test 53).
NO_DURATION_S = 0.05

#: A condition whose events last this long (median, s) or longer is a block condition: its duration is recorded, so that
#: a recording that gives its events without durations (BrainVision markers of one sample) gets them as blocks.
MIN_BLOCK_S = 1.0


def merged_events(events: Mapping[str, tuple[np.ndarray, np.ndarray]], names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The events of ``names`` (matched as markers are), one per onset (within :data:`SAME_EVENT_S`) with the longest
    duration any of its names gives, sorted."""
    ons, durs = [], []
    for k, (on, du) in events.items():
        if any(_match(k, n) for n in names):
            ons.append(np.asarray(on, dtype=float))
            durs.append(np.asarray(du, dtype=float))
    if not ons:
        return np.zeros(0), np.zeros(0)
    on, du = np.concatenate(ons), np.concatenate(durs)
    o_ = np.argsort(on, kind="stable")
    on, du = on[o_], du[o_]
    first = np.flatnonzero(np.r_[True, np.diff(on) > SAME_EVENT_S])
    return on[first], np.maximum.reduceat(du, first)


def condition_durations(found: Sequence[Mapping[str, tuple[np.ndarray, np.ndarray]]], conditions: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """The duration of each block condition: the median over the runs' events that carry a duration (longer than
    :data:`NO_DURATION_S`; :func:`stimulus_events` per run) where it is at least :data:`MIN_BLOCK_S` (events without a
    duration, e.g. a marker of one sample, then get it: see :func:`event_regressors`); conditions of brief events are
    left out. A condition mixing brief events and blocks (its events' durations spread over more than a factor of 4) is
    logged: give it its own durations, or split it."""
    out = {}
    for c, names in conditions.items():
        du = np.concatenate([merged_events(f, names)[1] for f in found] or [np.zeros(0)])
        du = du[du > NO_DURATION_S]  # the events that carry a duration
        if len(du) and float(np.median(du)) >= MIN_BLOCK_S:
            out[c] = round(float(np.median(du)), 6)
            if float(du.min()) < float(np.median(du)) / 4:
                logger.info("condition %r mixes brief events (%.3g s) and blocks (median %.3g s): only its events without a duration "
                            "take the median; split the condition if its brief events are a design of their own", c, float(du.min()),
                            float(np.median(du)))
    return out


def run_marker_names(run: Any, marker: Any = None) -> tuple[str, ...]:
    """The names of a run's scanner and segment markers: its layout's (``run.marker``, ``run.meta["segment_marker"]``) and
    ``marker`` (the prepare option) -- never a stimulus condition of ``events="auto"``."""
    own = getattr(run, "marker", None)
    names = [*((own,) if isinstance(own, str) else tuple(own or ())), *((marker,) if isinstance(marker, str) else tuple(marker or ()))]
    seg = (getattr(run, "meta", None) or {}).get("segment_marker")
    return tuple(dict.fromkeys([*names, *([seg] if isinstance(seg, str) else [])]))


def stimulus_note(runs: Sequence[Any], marker: Any = None) -> str | None:
    """For ``eeg2fmri datasets --check``: the stimulus-like markers the runs' recordings hold (names and counts over the
    runs, each file once) and how to use them -- the prepare option ``events`` -- or None without any. A run whose EEG
    cannot be read is left to the check's own problems."""
    from eeg2fmri.io.layouts import read_layout_eeg

    total: dict[str, int] = {}
    seen: set[str] = set()
    for run in runs:
        path = str(getattr(run, "eeg_path", ""))
        if path in seen:
            continue
        seen.add(path)
        try:
            found = stimulus_names(read_layout_eeg(run, preload=False), run_marker_names(run, marker))
        except Exception:  # noqa: BLE001  (a file that cannot be read is the check's own finding)
            continue
        for k, v in found.items():
            total[k] = total.get(k, 0) + len(v)
    if not total:
        return None
    top = ", ".join(f"{k!r} ({n}x)" for k, n in sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))[:8])
    return (f"stimulus markers in the recordings: {top}{' ...' if len(total) > 8 else ''}. In a task design the BOLD follows them: "
            "prepare --config '{\"events\": \"auto\"}' (or a list of their names) adds them as event regressors, and "
            "benchmark then shows the stimulus GLM (stimulus_glm) that the EEG models must beat")


def _same_events(a: Sequence[Mapping[str, Any]], n1: str, n2: str) -> bool:
    """Names ``n1`` and ``n2`` mark the same events in every run (onsets equal to 2 ms): one event under two names, e.g. a
    BrainVision marker and the ``trial_type`` of its ``events.tsv`` row."""
    for f in a:
        o1, o2 = f.get(n1), f.get(n2)
        if o1 is None and o2 is None:
            continue
        if o1 is None or o2 is None or np.ndim(o1) == 0 or len(o1) != len(o2) or not np.allclose(np.sort(o1), np.sort(o2), atol=SAME_EVENT_S):
            return False
    return True


def resolve_events(option: Any, found: Sequence[Mapping[str, int]], *, where: str = "prepare option events") -> dict[str, list[str]] | None:
    """The conditions of the prepare option ``events``, checked against the events the runs hold.

    Parameters
    ----------
    option : None | "auto" | list of str | dict
        ``None``: no event regressors. ``"auto"``: every stimulus-like name (:func:`stimulus_names`) with at least
        :data:`MIN_AUTO_EVENTS` events over all runs, one condition each, sorted. A list of names: one condition
        each. A mapping condition -> name or list of names (their events pooled).
    found : list of dict
        Per run, :func:`stimulus_names` (name -> onsets; or name -> count). With ``"auto"``, names that mark the
        same events in every run (a BrainVision marker and its ``events.tsv`` ``trial_type``) are one condition,
        named by the name without a ``Type/`` prefix (else the first in order).

    Returns
    -------
    dict | None
        condition -> the names pooled into it; ``None`` for no events.
    """
    if option is None or option is False:
        return None
    total: dict[str, int] = {}
    for f in found:
        for k, n in f.items():
            total[k] = total.get(k, 0) + (int(n) if np.ndim(n) == 0 else len(n))
    seen = ", ".join(f"{k!r} ({n}x)" for k, n in sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))[:12]) or "none"
    if isinstance(option, str):
        if option.strip().lower() != "auto":  # (user test 51: "Auto" was taken as a marker name)
            option = [option]
        else:
            names = sorted(k for k, n in total.items() if n >= MIN_AUTO_EVENTS)
            if not names:
                raise Eeg2fmriInputError(f"{where}='auto': expected stimulus markers in the recordings (annotations or events.tsv rows other "
                                         f"than scanner markers and recorder notes), found {seen}; give the names to use "
                                         "(events: ['Stimulus/S  1', ...]) or leave events out.")
            if len(names) > MAX_AUTO_CONDITIONS:
                raise Eeg2fmriInputError(f"{where}='auto': found {len(names)} marker names ({seen}, ...), expected at most "
                                         f"{MAX_AUTO_CONDITIONS} conditions; list the ones to use, or pool them: "
                                         "events: {\"target\": [\"S  1\"], \"standard\": [\"S  2\"]}.")
            kept: dict[str, list[str]] = {}
            for n in sorted(names, key=lambda n: ("/" in n, n)):  # plain names (events.tsv trial types) first
                same = next((k for k in kept if _same_events(found, n, k)), None)
                if same is None:
                    kept[n] = [n]
                else:  # an alias of the same events: pooled into that condition (counted once; a recording with only one of
                    kept[same].append(n)  # the two names -- an EEG-only file without its events.tsv -- still finds them)
            dup = {k: v[1:] for k, v in kept.items() if len(v) > 1}
            if dup:
                logger.info("%s='auto': %s", where, "; ".join(f"{v} mark the same events as {k!r} (one condition)" for k, v in dup.items()))
            return {n: kept[n] for n in sorted(kept)}
    if isinstance(option, Mapping):
        if not option:
            raise Eeg2fmriInputError(f"{where}: expected at least one condition, got an empty mapping {{}}; give condition -> marker names "
                                     "(e.g. {\"target\": [\"S  1\"]}), 'auto', or leave events out.")
        conds = {}
        for c, v in option.items():
            names = [v] if isinstance(v, str) else list(v) if isinstance(v, (list, tuple)) else None
            if not names or not all(isinstance(n, str) and n.strip() for n in names):
                raise Eeg2fmriInputError(f"{where}: expected condition -> marker name or list of names, got {c!r}: {v!r}; "
                                         "e.g. events: {\"target\": [\"S  1\"], \"standard\": [\"S  2\"]}.")
            conds[str(c)] = names
    elif isinstance(option, (list, tuple)) and option and all(isinstance(n, str) and n.strip() for n in option):
        conds = {str(n): [str(n)] for n in option}
    else:
        raise Eeg2fmriInputError(f"{where}: expected 'auto', a list of marker names or a mapping condition -> names, got {option!r}; "
                                 "e.g. events: auto, or events: ['S  1', 'S  2'].")
    for c, names in list(conds.items()):  # the same events under another name (a marker and its events.tsv row): pooled too
        hits = [k for k in total if any(_match(k, n) for n in names)]
        alias = [k for k in total if k not in hits and any(_same_events(found, h, k) for h in hits)]
        if alias:
            logger.info("%s: condition %r: %s mark the same events as %s (pooled: one event, the longer duration)", where, c, alias, hits)
            conds[c] = [*names, *alias]
    for c, names in conds.items():
        scanner = [n for n in names if any(_match(n, m) or _match(m, n) for m in with_default_markers(None))]
        if scanner:
            raise Eeg2fmriInputError(f"{where}: condition {c!r}: expected stimulus marker names, got the scanner marker name(s) {scanner} (volume "
                                     "markers time the BOLD volumes; they are no design); leave them out.")
        if not any(_match(k, n) for n in names for k in total):
            import difflib

            close = difflib.get_close_matches(names[0], list(total), n=3, cutoff=0.6)
            raise Eeg2fmriInputError(f"{where}: expected condition {c!r} ({names}) to match events of the recordings, found none; they "
                                     f"hold {seen}.{f' Did you mean {close}?' if close else ''} Correct the name or leave the condition "
                                     "out (names match without case, spaces or a 'Type/' prefix: 'S 1' finds 'Stimulus/S  1').")
    keys = {}
    for c, names in conds.items():  # (user test 51: two conditions of the same events were accepted)
        key = tuple(sorted(k for k in total if any(_match(k, n) for n in names)))
        if key in keys:
            raise Eeg2fmriInputError(f"{where}: conditions {keys[key]!r} and {c!r} name the same markers ({names}); expected each condition "
                                     "once: leave one out.")
        keys[key] = c
    return conds


def event_regressors(events: Mapping[str, tuple[np.ndarray, np.ndarray]], conditions: Mapping[str, Sequence[str]],
                     starts: np.ndarray, flen: float, ends: np.ndarray | None = None,
                     durations: Mapping[str, float] | None = None) -> np.ndarray:
    """Per-frame series of each condition.

    Parameters
    ----------
    events : dict
        :func:`event_times` of the recording (name -> (onsets, durations) in s from its first sample).
    conditions : dict
        condition -> names (matched as scanner markers are: case, spaces and a ``Type/`` prefix ignored).
    starts : array, shape (n_frames,)
        Frame starts in s from the first sample (frames may overlap: synthesis' finer hops).
    flen : float
        Frame length in s.
    ends : array, shape (n_frames,) | None
        Where each frame's events stop counting (s); ``None``: ``starts + flen``. Prepared runs pass the next
        frame's start (:func:`contiguous_ends`): frames anchored on jittered volume onsets then neither leave
        gaps (events lost) nor overlap (events counted twice).
    durations : dict | None
        condition -> duration (s) of a block condition (prepare option ``event_durations``, by default
        :func:`condition_durations` of the training recordings): its events that carry no duration (at most
        :data:`NO_DURATION_S`: markers of one sample, e.g. a BrainVision file without its ``events.tsv``) last that long.

    Returns
    -------
    array, shape (n_frames, n_conditions), float32
        Events shorter than ``flen``: the number whose onset lies in ``[start, start + flen)``; longer ones: the
        share of the frame they cover (a block of one frame or more counts as much as one short event per frame).
    """
    starts = np.asarray(starts, dtype=float)
    ends = starts + flen if ends is None else np.asarray(ends, dtype=float)
    out = np.zeros((len(starts), len(conditions)), dtype=np.float64)
    for j, (cond, names) in enumerate(conditions.items()):
        # one event under two names (a marker and its trigger code or events.tsv row): once, with the longest duration any of
        # its names gives (a BrainVision marker of one sample beside its events.tsv row of 20 s is a 20-s block: user test 51)
        on, du = merged_events(events, names)
        if not len(on):
            continue
        block = (durations or {}).get(cond)
        if block:  # only the events that carry no duration (markers of one sample): those with one keep it
            du = np.where(du <= NO_DURATION_S, float(block), du)
        short = du < flen
        o = np.sort(on[short])
        out[:, j] += np.searchsorted(o, ends, side="left") - np.searchsorted(o, starts, side="left")
        for a, d in zip(on[~short], du[~short]):
            out[:, j] += np.clip(np.minimum(ends, a + d) - np.maximum(starts, a), 0.0, None) / flen
    return out.astype(np.float32)


def contiguous_ends(starts: np.ndarray, flen: float) -> np.ndarray:
    """Each frame's end for counting events: the next frame's start (the last frame: its start + ``flen``), where the
    frames are in time order; a frame that would otherwise overlap the next or leave a gap before it (volume onsets a
    few samples off the TR) then shares no event with it and loses none."""
    starts = np.asarray(starts, dtype=float)
    ends = starts + float(flen)
    if len(starts) > 1 and np.all(np.diff(starts) > 0):
        ends[:-1] = starts[1:]
    return ends


def append_events(features: np.ndarray, regressors: np.ndarray) -> np.ndarray:
    """Frame features ``(n_frames, n_chans, n_feat)`` with the event regressors ``(n_frames, n_events)`` appended to every
    channel: ``(n_frames, n_chans, n_feat + n_events)`` float32 (the same values on every channel; models read them from
    channel 0, :func:`eeg2fmri.datasets.spec.DataSpec.event_names`)."""
    f = np.asarray(features)
    r = np.asarray(regressors, dtype=np.float32)
    if f.ndim != 3 or r.shape != (f.shape[0], r.shape[1] if r.ndim == 2 else -1):
        raise ValueError(f"append_events: expected features (n_frames, n_chans, n_feat) and regressors (n_frames, n_events), got {f.shape} and {r.shape}")
    out = np.empty((f.shape[0], f.shape[1], f.shape[2] + r.shape[1]), dtype=np.float32)
    out[:, :, : f.shape[2]] = f
    out[:, :, f.shape[2]:] = r[:, None, :]
    return out
