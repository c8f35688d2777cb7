"""Synchronise EEG and BOLD: volume onsets from scanner markers in the EEG."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

import numpy as np

from eeg2fmri.utils.logs import logger
from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["SyncReport", "volume_onsets"]

DEFAULT_MARKERS = ("R128", "Scanner/Scan Start", "Scan Start", "TR")


@dataclass
class SyncReport:
    """What synchronisation found and did.

    Attributes
    ----------
    onsets : array, shape (n_volumes,)
        Volume onsets in seconds from the EEG start.
    method : str
        ``"markers"`` or ``"regular"`` (fallback without markers).
    marker : str | None
        Marker description that was used.
    n_markers : int
        Markers found in the EEG.
    dropped : int
        Markers ignored (dummy scans before the recorded volumes, or extras).
    notes : list of str
        Human-readable notes.
    """

    onsets: np.ndarray
    method: str
    marker: str | None
    n_markers: int
    dropped: int = 0
    notes: list[str] = field(default_factory=list)


def _match(desc: str, marker: str) -> bool:
    """``desc`` is marker ``marker``: case-insensitive, spaces ignored, with or without a ``Type/`` prefix."""
    d, m = str(desc).strip().lower().replace(" ", ""), str(marker).strip().lower().replace(" ", "")
    return d == m or d.endswith("/" + m)


def stim_events(raw) -> dict[str, np.ndarray]:
    """Events of ``raw``'s trigger channels (BDF ``Status``, EDF/BrainVision ``STI``/``TRIG`` channels of type stim).

    Parameters
    ----------
    raw : mne.io.BaseRaw

    Returns
    -------
    dict
        ``"<channel>/<code>"`` -> onsets in seconds from the first sample, one entry per code
        (``mne.find_events``: onsets of each step to a non-zero value, ``shortest_event=1``).
    """
    import mne

    out: dict[str, list[float]] = {}
    for idx in mne.pick_types(raw.info, stim=True, exclude=[]):
        name = raw.ch_names[idx]
        try:
            ev = mne.find_events(raw, stim_channel=name, shortest_event=1, consecutive="increasing", verbose="error")
        except (ValueError, RuntimeError):  # a channel MNE cannot parse as a trigger line
            continue
        for sample, code in zip(ev[:, 0], ev[:, 2]):
            out.setdefault(f"{name}/{int(code)}", []).append((int(sample) - raw.first_samp) / raw.info["sfreq"])
    return {k: np.sort(np.asarray(v, dtype=float)) for k, v in out.items()}


def _stim_summary(events: dict[str, np.ndarray]) -> str:
    return ", ".join(f"{k} ({len(v)}x)" for k, v in sorted(events.items(), key=lambda kv: -len(kv[1]))[:8])


def with_default_markers(marker: str | tuple[str, ...] | None) -> tuple[str, ...]:
    """``marker``'s names (a training's, a prepare option's) followed by the usual scanner names (:data:`DEFAULT_MARKERS`),
    each once: the names a recording's volume markers are looked for under."""
    own = () if marker is None else (marker,) if isinstance(marker, str) else tuple(marker)
    return tuple(dict.fromkeys((*own, *DEFAULT_MARKERS)))


def marker_times(raw, marker: str | tuple[str, ...]) -> tuple[str | None, np.ndarray | None]:
    """Times of the first of ``marker``'s names found in ``raw``'s annotations (or trigger channels).

    Parameters
    ----------
    raw : mne.io.BaseRaw
    marker : str | tuple of str
        Marker names, tried in order (case and spaces ignored, with or without a ``Type/`` prefix).
        Events of a trigger channel (:func:`stim_events`) are named ``<channel>/<code>`` (BDF:
        ``Status/128``), so ``"128"`` or ``"Status/128"`` selects them; annotations are searched first.

    Returns
    -------
    name : str | None
        The name found (None: none is present).
    times : array, shape (n_markers,) | None
        Its onsets in seconds from the first sample, sorted.
    """
    wanted = (marker,) if isinstance(marker, str) else tuple(marker)
    descs = [str(d) for d in raw.annotations.description]
    # a Raw's annotation onsets include its first_time whether or not it has a measurement date (mne's _sync_onset)
    times = np.asarray(raw.annotations.onset, dtype=float) - raw.first_time
    for m in wanted:
        hit = np.array([_match(d, m) for d in descs], dtype=bool)
        if hit.any():
            t = np.sort(times[hit])
            # one marker listed twice at the same time (e.g. under two spellings) is one volume, not two a zero interval apart
            return m, t[np.r_[True, np.diff(t) > 1e-6]]
    stim = stim_events(raw)
    for m in wanted:
        for name, on in stim.items():
            if _match(name, m):
                return m, on
    return None, None


def short_eeg_fix(eeg_end: float, first_onset: float, tr: float, n_volumes: int) -> str:
    """How to go on when regular volume timing from ``first_onset`` runs past the EEG's end (``eeg_end``, s): the
    volumes the EEG covers and the ways to keep them (user test 12: the error gave no way on)."""
    k = int(np.floor((eeg_end - first_onset) / tr + 1e-9)) if eeg_end > first_onset else 0
    k = min(max(k, 0), n_volumes)
    if k == 0:
        return (f"No volume fits: volume 0 at {first_onset} s is {'after' if first_onset >= eeg_end else 'less than one TR before'} the EEG's "
                "end; check first_onset (seconds from the EEG's first sample), the TR and that this EEG belongs to this run.")
    return (f"The EEG covers the first {k} of the {n_volumes} volumes ({n_volumes - k} without EEG): check first_onset (seconds from the "
            f"EEG's first sample) and the TR, or keep the covered volumes: save the BOLD's first {k} volumes as the run's BOLD "
            f"(nibabel: img.slicer[..., :{k}]), or leave the run out.")


def repair_markers(on: np.ndarray, tr: float, *, tolerance: float = 0.05, max_missing: int = 3, where: str = "EEG") -> tuple[np.ndarray, list[str]]:
    """Drop spurious scanner markers and fill in missed ones, as real recordings need.

    Scanner markers jitter by a sample or two, an occasional one is lost (an
    interval of about two TRs) and an occasional spurious one appears (an interval
    far shorter than the TR). With ``step`` the median marker interval:

    * of markers less than ``0.5 * step`` apart, the one nearest a whole number of steps from the previous kept marker
      (the first ones: from the next marker) is kept, the others dropped;
    * an interval within ``tolerance * step`` of ``k * step`` (``2 <= k <=
      max_missing + 1``) gets ``k - 1`` evenly spaced markers inserted;
    * any other interval longer than ``1.5 * step`` is a real gap (the recording
      was paused or the markers are corrupt) and raises.

    Parameters
    ----------
    on : array, shape (n_markers,)
        Marker times in seconds, sorted.
    tr : float
        Repetition time in seconds (used only when there are fewer than 3 markers).
    tolerance : float
        Relative tolerance on the interval, of the median interval.
    max_missing : int
        Most consecutive missed markers filled in.
    where : str
        Name of the recording for messages.

    Returns
    -------
    onsets : array, shape (n_onsets,)
    notes : list of str
        What was dropped or filled in.
    """
    on = np.asarray(on, dtype=float)
    notes: list[str] = []
    if len(on) < 3:
        return on, notes
    step = float(np.median(np.diff(on)))
    # clusters of markers less than half a step apart: one of each is the volume's, the others spurious; the one kept is
    # the nearest to a whole number of steps from the previous kept marker (for the first cluster: from the next marker),
    # so that a glitch just before a real marker does not replace it (an audit: the first of the two was kept, so that
    # volume moved 0.6 s), also where a neighbouring marker was missed (a review)
    clusters = [[on[0]]]
    for t in on[1:]:
        if t - clusters[-1][-1] < 0.5 * step:
            clusters[-1].append(float(t))
        else:
            clusters.append([float(t)])
    kept: list[float] = []
    extra = []
    for c, members in enumerate(clusters):
        if len(members) == 1:
            kept.append(members[0])
            continue
        if kept:  # distance from the nearest whole number of steps after the previous kept marker (one between may be missed)
            ref, sign = kept[-1], 1.0
        elif c + 1 < len(clusters):  # the first cluster: before the next marker
            ref, sign = clusters[c + 1][0], -1.0
        else:
            ref = None
        if ref is None:
            best = members[0]
        else:
            best = min(members, key=lambda t: abs(sign * (t - ref) / step - round(sign * (t - ref) / step)))
        kept.append(best)
        extra.extend(t for t in members if t is not best)
    if extra:
        notes.append(f"{len(extra)} spurious marker(s) less than half a TR from a volume's marker dropped (at {', '.join(f'{t:.3f}' for t in extra[:5])} s; "
                     "of markers that close, the one in step with the others is kept).")
    out = [kept[0]]
    filled = 0
    odd: list[tuple[float, float]] = []
    for t0, t1 in zip(kept[:-1], kept[1:]):
        gap = t1 - t0
        # (user test 27: a 1.5-TR interval -- a 1-s pause in a TR of 2 s -- was neither filled in nor refused)
        if gap > 1.5 * step or gap > (1.0 + 2.0 * tolerance) * step:
            k = int(round(gap / step))
            if abs(gap - k * step) <= tolerance * step and k - 1 <= max_missing:
                out.extend(t0 + gap * np.arange(1, k) / k)
                filled += k - 1
            else:
                why = (f"{k} marker intervals ({step:.4f} s each): more than {max_missing} missed markers in a row are not filled in"
                       if abs(gap - k * step) <= tolerance * step else f"not a whole number of the marker interval ({step:.4f} s)")
                several = (f" If the file holds several BOLD runs (the scanner stopped and started again: {len(marker_blocks(on, step))} "
                           f"blocks of markers, {describe_blocks(on, marker_blocks(on, step), step)}), give each run its part: in a runs "
                           "table the columns marker_block (1 = the first block) or eeg_start/eeg_stop (s); a file listed for several "
                           "runs is given its blocks in the table's order." if gap > BLOCK_GAP_TRS * step else "")
                raise Eeg2fmriInputError(  # (user test 12: "7 intervals" was called "not a whole number")
                    f"{where}: the scanner markers at {t0:.3f} s and {t1:.3f} s are {gap:.3f} s apart, {why}: the recording was "
                    "interrupted or the markers are corrupt." + several + " Split the run at that point (two runs), or, if the scan "
                    "really was regular, ignore the markers and give volume 0's time (eeg2fmri prepare --config '{\"marker\": null, "
                    "\"first_onset\": <s>}'; Python: marker=None, first_onset=<s>)."
                )
        elif abs(gap - step) > tolerance * step:  # kept as it is, but more than a scanner's jitter of a sample or two
            odd.append((t0, gap))
        out.append(t1)
    if odd:  # (user test 27: intervals of 1.05-1.1 TR passed without a word)
        notes.append(f"{len(odd)} marker interval(s) differ from the median ({step:.4f} s) by more than {100 * tolerance:.0f}% "
                     f"({', '.join(f'{g:.3f} s after {t:.3f} s' for t, g in odd[:3])}{', ...' if len(odd) > 3 else ''}): more than a "
                     "scanner's jitter; the volume onsets follow the markers there. Check the recording at those times (a short "
                     "pause, a delayed trigger).")
    if filled:
        notes.append(f"{filled} missed marker(s) filled in at the midpoints of intervals of about 2-{max_missing + 1} TRs.")
    return np.asarray(out, dtype=float), notes


#: A pause between scanner markers longer than this many marker intervals parts two blocks of one recording (several BOLD
#: runs recorded into one EEG file): longer than any stretch of missed markers :func:`repair_markers` fills in (up to 3 in
#: a row: 4 intervals).
BLOCK_GAP_TRS = 4.5


def marker_blocks(on: np.ndarray, tr: float, *, gap_trs: float = BLOCK_GAP_TRS) -> list[tuple[int, int]]:
    """Blocks of scanner markers in one recording: runs of markers parted by pauses longer than ``gap_trs`` TRs.

    Parameters
    ----------
    on : array, shape (n_markers,)
        Marker times in seconds, sorted.
    tr : float
        Repetition time in seconds.
    gap_trs : float
        Shortest pause (in TRs) that parts two blocks.

    Returns
    -------
    blocks : list of (int, int)
        Index ranges ``[start, stop)`` into ``on``, in time order.
    """
    on = np.asarray(on, dtype=float)
    if not len(on):
        return []
    edges = np.r_[0, np.flatnonzero(np.diff(on) > gap_trs * tr) + 1, len(on)]
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def describe_blocks(on: np.ndarray, blocks: list[tuple[int, int]], tr: float) -> str:
    """One line per block for messages: ``1: 12.0-612.0 s, 300 markers``."""
    return "; ".join(f"{i}: {on[a]:.1f}-{on[b - 1] + tr:.1f} s, {b - a} markers" for i, (a, b) in enumerate(blocks, start=1))


#: What to do with more scanner markers than BOLD volumes (see :func:`volume_onsets`).
DUMMY_SCANS = ("auto", "drop-first", "drop-last", "error")
#: dummy scans a scanner discards before the first saved volume: more extra markers need an explicit choice
MAX_DUMMY_SCANS = 10


def volume_marker_candidates(raw, n_volumes: int, tr: float, tolerance: float = 0.05) -> list[tuple[str, int, float]]:
    """Annotations that look like volume markers: about one per volume (at most 3 fewer), a median interval within ``tolerance`` of ``tr``.

    Returns
    -------
    candidates : list of (description, count, median interval in s)
    """
    descs = np.array([str(d) for d in raw.annotations.description], dtype=object)
    onsets = np.asarray(raw.annotations.onset, dtype=float)
    hits = []
    for d in sorted(set(descs.tolist())):
        t = np.sort(onsets[descs == d])
        # (a few markers may be lost: repair_markers fills in up to 3 in a row)
        if len(t) >= max(n_volumes - 3, 2) and abs(float(np.median(np.diff(t))) - tr) <= tolerance * tr:
            hits.append((d, len(t), float(np.median(np.diff(t)))))
    return hits


def _events_tsv_note(where: str) -> str:
    """When a BIDS ``*_events.tsv`` sits beside the EEG file ``where``: it replaced the recording's own markers."""
    from pathlib import Path

    p = Path(str(where))
    i = p.name.rfind("_eeg")
    if i <= 0 or not (p.parent / (p.name[:i] + "_events.tsv")).is_file():
        return ""
    return (f" The annotations come from {p.name[:i]}_events.tsv, which replaces the recording's own markers (BrainVision .vmrk, "
            "EDF+/BDF+ annotations): the volume markers must be listed there, or be events of a trigger channel.")


def _likely_volume_marker(raw, descs: np.ndarray, n_volumes: int, tr: float, tolerance: float) -> str:
    """A hint naming annotations that look like volume markers: at least one per volume, about one TR apart."""
    hits = volume_marker_candidates(raw, n_volumes, tr, tolerance)
    if not hits:
        return ""
    d, n, step = hits[0]
    name = d.split("/")[-1]
    per = ("one per volume" if n == n_volumes else f"about one per volume ({n_volumes} volumes: {abs(n - n_volumes)} "
           + ("missed, filled in when used" if n < n_volumes else "extra, dropped as dummy scans when used") + ")")
    return (f"; {d!r} occurs {n} times every {step:.3f} s, {per} of TR {tr:g} s: likely the volume marker, "
            f"marker: [\"{name}\"] (eeg2fmri datasets --check: --marker {shlex.quote(name)})")


def volume_onsets(
    raw,
    n_volumes: int,
    tr: float,
    *,
    marker: str | tuple[str, ...] | None = DEFAULT_MARKERS,
    first_onset: float | None = None,
    dummy_scans: str = "auto",
    tolerance: float = 0.05,
    where: str = "EEG",
    tr_source: str | None = None,
    declared_dummies: tuple[int, ...] = (),
) -> SyncReport:
    """Find the onset of every BOLD volume in the EEG time axis.

    Parameters
    ----------
    raw : mne.io.BaseRaw
        EEG with scanner markers as annotations (e.g. ``Response/R128``).
    n_volumes : int
        Volumes in the BOLD run.
    tr : float
        Repetition time in seconds.
    marker : str | tuple of str | None
        Marker description(s) to look for (matched case-insensitively, with or
        without a ``Type/`` prefix). The first one found is used. ``None``
        skips markers and uses ``first_onset``.
    first_onset : float | None
        Fallback without markers: volume ``k`` starts at ``first_onset + k * tr``
        seconds from the EEG start (documented, regular timing).
    dummy_scans : {"auto", "drop-first", "drop-last", "error"}
        When there are more markers than volumes: drop the first extra markers
        (``"drop-first"``: dummy scans the scanner did not save, the usual
        case), the last ones (``"drop-last"``: markers after the last saved
        volume) or raise. ``"auto"`` (default): ``"drop-first"`` for up to
        ``MAX_DUMMY_SCANS`` (10) extra markers, otherwise raise (a BOLD file
        holding part of the scan would be paired with the wrong EEG). The choice decides every
        onset (one TR per dropped marker), so the drop is logged as a warning.
    tolerance : float
        Allowed relative deviation of the median marker interval from ``tr``
        (and of a missed-marker gap from a whole number of intervals).
    where : str
        Name of the recording for messages.
    tr_source : str | None
        Where ``tr`` came from, for the message when the markers disagree with it (a layout that fixes the TR says so;
        ``None``: the run's BOLD sidecar or header).
    declared_dummies : tuple of int
        Numbers of leading dummy markers the run's BOLD sidecar declares (``NumberOfVolumesDiscardedByUser``, and with
        ``...ByScanner``): dropping that many is said at info level, without the drop-last hint (user test 27).

    Returns
    -------
    report : SyncReport
    """
    if dummy_scans not in DUMMY_SCANS:
        raise Eeg2fmriInputError(f"{where}: expected dummy_scans in {list(DUMMY_SCANS)}, got {dummy_scans!r}; pass e.g. dummy_scans='drop-first'.")
    notes: list[str] = []
    if marker is not None:
        wanted = (marker,) if isinstance(marker, str) else tuple(marker)
        descs = np.array([str(d) for d in raw.annotations.description], dtype=object)
        m, on = marker_times(raw, wanted)
        if on is None:
            if first_onset is None:
                present = sorted(set(descs.tolist()))[:15]
                guess = _likely_volume_marker(raw, descs, n_volumes, tr, tolerance)
                stim = stim_events(raw)
                trig = (f"; trigger-channel events present: {_stim_summary(stim)} (select one by its code, e.g. marker: "
                        f"[\"{min(stim, key=lambda k: abs(len(stim[k]) - n_volumes)).split('/')[-1]}\"])") if stim else ""
                raise Eeg2fmriInputError(
                    f"{where}: expected scanner volume markers {list(wanted)}, found none (annotations present: {present}{trig}{guess}); "
                    "pass marker=<the scanner marker name> or, with no markers, first_onset=<seconds of volume 0> for regular timing "
                    "(eeg2fmri prepare: --config '{\"marker\": [\"<name>\"]}' or '{\"marker\": null, \"first_onset\": <s>}'; "
                    "eeg2fmri train: data: {prepare: {marker: [<name>]}} in the train config; eeg2fmri benchmark: "
                    "--train-config '{\"data\": {\"prepare\": {\"marker\": [\"<name>\"]}}}')."
                    + _events_tsv_note(where)
                )
        else:
            n_found = len(on)
            on, fixes = repair_markers(on, tr, tolerance=tolerance, where=where)
            notes.extend(fixes)
            if len(on) < n_volumes:
                eeg_end = float(raw.times[-1])
                found = f"found {n_found} '{m}' markers{'' if len(on) == n_found else f' ({len(on)} after repairs)'} but the BOLD run has {n_volumes} volumes"
                if eeg_end - on[-1] < 2 * tr:  # the markers run to the end of the EEG: the EEG stopped before the scan (user test 12)
                    # the volumes whose whole acquisition the EEG holds (user test 54: the last marker's volume was half covered,
                    # so "save the first 177 volumes" failed again)
                    sf = float(raw.info["sfreq"])
                    n_cov = int(np.sum(on + tr <= eeg_end + 1.0 / sf + 1e-9))
                    scan_end = float(on[-1]) + (n_volumes - len(on) + 1) * tr
                    raise Eeg2fmriInputError(
                        f"{where}: {found}: the EEG ({eeg_end:.1f} s) ends {eeg_end - on[-1]:.1f} s after its last marker, so it stopped "
                        f"about {scan_end - eeg_end:.0f} s before the scan did ({n_volumes - n_cov} volumes without a whole acquisition of "
                        f"EEG). Use the volumes the EEG covers: save the BOLD's first {n_cov} volumes as the run's BOLD (nibabel: "
                        f"img.slicer[..., :{n_cov}])"
                        + (f" and prepare with dummy_scans 'drop-last' (its last {len(on) - n_cov} marker(s) then have no volume; a "
                           "runs table's dummy_scans column sets it for this run alone)" if n_cov < len(on) else "")
                        + ", or leave the run out.")
                raise Eeg2fmriInputError(
                    f"{where}: {found}; expected at least one marker per volume. "
                    "Check that the EEG covers the whole scan, trim the BOLD to the recorded volumes, or, if the scan was regular, ignore "
                    "the markers and give volume 0's time (eeg2fmri prepare --config '{\"marker\": null, \"first_onset\": <s>}')."
                )
            steps = np.diff(on)
            if len(steps):
                med = float(np.median(steps))
                if abs(med - tr) > tolerance * tr:
                    ratio = tr / med if med > 0 else float("nan")
                    hint = (" (the TR is 1000 times the markers' interval: a TR in milliseconds read as seconds, e.g. a NIfTI header "
                            "whose time units are not msec)" if abs(ratio - 1000.0) < 10.0 else
                            " (the markers' interval is 1000 times the TR: a TR in seconds read as milliseconds?)" if abs(ratio - 1e-3) < 1e-5 else "")
                    raise Eeg2fmriInputError(
                        f"{where}: '{m}' markers are {med:.4f} s apart but TR is {tr} s{hint}; expected one marker per volume. "
                        "If markers are per slice, pass the per-volume marker name. If they are one per volume, the TR is wrong: it "
                        + (f"is {tr_source}" if tr_source else "comes from the run's *_bold.json RepetitionTime, else the NIfTI header "
                           "(pixdim[4] in its time units), unless given")
                        + f"; pass the markers' interval as the TR (eeg2fmri prepare: --config '{{\"tr\": {med:.4g}}}'; "
                        f"prepare_dataset(..., {{\"tr\": {med:.4g}}}), or \"tr\" of the run in a runs table)."
                    )
                if abs(med - tr) > 0.005 * tr:  # accepted, but the volumes drift against the EEG by that much per volume
                    note = (f"'{m}' markers are {med:.4f} s apart but TR is {tr} s ({100 * (med - tr) / tr:+.2f}%): over {n_volumes} "
                            f"volumes the marker times and a TR grid part by {abs(med - tr) * (n_volumes - 1):.1f} s. The onsets follow the "
                            "markers; check the TR (header, *_bold.json) and the EEG's sampling rate.")
                    logger.warning("%s: %s", where, note)
                    notes.append(note)
                irregular = np.abs(steps - tr) > 0.5 * tr
                if irregular.any():
                    notes.append(f"{int(irregular.sum())} marker interval(s) deviate from the TR by > 50% (missed or extra markers).")
            dropped = len(on) - n_volumes
            info_notes = [n for n in notes if " apart but TR is " not in n]  # the drop, below, and a drift (above) are warnings instead
            if dropped:
                if dummy_scans == "auto" and any("missed marker(s) filled in" in n for n in notes):
                    # two repairs that cancel out: lost markers filled in mid-run, then as many extra markers dropped at the start
                    # (user test 27: a 4-s pause read as 2 lost markers + 2 dummy scans, every volume paired 2 TRs late)
                    raise Eeg2fmriInputError(
                        f"{where}: missed '{m}' markers were filled in mid-run, and then {dropped} more markers than volumes would be "
                        "dropped as dummy scans before the first volume: the two repairs cancel out, as a pause in the recording "
                        "does (the markers after it are then not the volumes they seem). Check the recording around the filled-in "
                        "markers (a pause: prepare each piece as its own run); if the scanner really sent markers for dummy scans "
                        "and lost some mid-run, pass dummy_scans='drop-first' (eeg2fmri prepare --config '{\"dummy_scans\": "
                        "\"drop-first\"}'; or 'drop-last' if the extra markers came after the last saved volume), or declare "
                        "NumberOfVolumesDiscardedByScanner in the run's *_bold.json.")
                if dummy_scans == "auto" and dropped > MAX_DUMMY_SCANS:
                    raise Eeg2fmriInputError(
                        f"{where}: {len(on)} '{m}' markers for {n_volumes} volumes: dropping the first {dropped} as dummy scans (volume 0 "
                        f"at {on[dropped]:.3f} s) is more than the {MAX_DUMMY_SCANS} a scanner discards. If the BOLD file holds only part of the scan (cut or truncated), give the whole run; if the first "
                        f"{dropped} markers really were not saved, pass dummy_scans='drop-first'; if the last {dropped} came after the "
                        "last saved volume, dummy_scans='drop-last' (prepare option dummy_scans).")
                if dummy_scans == "error":
                    raise Eeg2fmriInputError(f"{where}: {len(on)} markers for {n_volumes} volumes; pass dummy_scans='drop-first' if the first {dropped} "
                                             f"were dummy scans, or dummy_scans='drop-last' if the last {dropped} came after the last saved volume.")
                lead = max([d for d in declared_dummies if 0 < d < dropped], default=0)
                if dummy_scans == "drop-last" and lead:  # the sidecar's leading dummies first, then the file's missing end
                    # (user test 50: 2 declared dummies and a BOLD cut 2 volumes short were dropped all from the end, 2 TRs off)
                    note = (f"{dropped} more marker(s) than volumes: the first {lead} dropped as the dummy scans the BOLD sidecar declares, "
                            f"the last {dropped - lead} as volumes the BOLD file lacks (dummy_scans='drop-last'; volume 0 at {on[lead]:.3f} s).")
                    on = on[lead : lead + n_volumes]
                elif dummy_scans == "drop-last":
                    note = f"{dropped} more marker(s) than volumes: the last {dropped} dropped (dummy_scans='drop-last')."
                    on = on[:n_volumes]
                elif dropped in declared_dummies:
                    note = (f"{dropped} more marker(s) than volumes: the first {dropped} dropped as the dummy scans the BOLD sidecar "
                            f"declares (volume 0 at {on[dropped]:.3f} s).")
                    on = on[dropped:]
                else:
                    note = (f"{dropped} more marker(s) than volumes: the first {dropped} treated as dummy scans and dropped (volume 0 at "
                            f"{on[dropped]:.3f} s); if the extra markers came after the last saved volume, pass dummy_scans='drop-last'.")
                    on = on[dropped:]
                (logger.info if dropped in declared_dummies and dummy_scans != "drop-last" else logger.warning)("%s: %s", where, note)
                notes.append(note)
            if on[-1] + tr > raw.times[-1] + 1.0 / raw.info["sfreq"] + 1e-9:
                notes.append("the EEG ends before the last volume is complete.")
                info_notes.append(notes[-1])
            rep = SyncReport(on, "markers", m, n_found, dropped, notes)
            for n in info_notes:  # repairs of the marker train move onsets: said by default (user test 12: only with -v)
                logger.warning("%s: %s", where, n)
            return rep
    if first_onset is None:
        raise Eeg2fmriInputError(f"{where}: no markers requested and no first_onset given; pass one of them.")
    on = first_onset + np.arange(n_volumes) * tr
    if on[-1] + tr > raw.times[-1] + 1.0 / raw.info["sfreq"] + 1e-6:
        raise Eeg2fmriInputError(f"{where}: EEG is {raw.times[-1]:.1f} s long but {n_volumes} volumes from {first_onset} s need {on[-1] + tr:.1f} s; "
                                 f"the EEG is shorter than the BOLD. {short_eeg_fix(raw.times[-1] + 1.0 / raw.info['sfreq'], first_onset, tr, n_volumes)}")
    notes.append(f"no markers used: regular timing from {first_onset} s every {tr} s.")
    return SyncReport(on, "regular", None, 0, 0, notes)
