"""Channels by position: map a recording's channels onto a model's training channels through electrode positions.

When a recording names its channels differently from the training data (BioSemi
``A1..B32`` against 10-20 names), each recording channel gets a position (the
file's digitisation, or a named MNE standard montage such as ``biosemi64``), each
training channel the position of its 10-20/10-05 site, and channels are paired
one to one, nearest first, within a distance tolerance. Training channels still
missing are interpolated from their neighbours with MNE's spherical splines
(:meth:`mne.io.Raw.interpolate_bads`). Positions of different montages are
compared after fitting a sphere to each set and scaling it to a 95 mm head.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

import numpy as np

from eeg2fmri.io.channel_names import channel_key
from eeg2fmri.utils.logs import logger
from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["ChannelMapping", "map_channels_by_position", "training_montage_name"]

_HEAD_MM = 95.0
_BIOSEMI = re.compile(r"^([A-H])(\d{1,2})$")


@dataclass
class ChannelMapping:
    """What :func:`map_channels_by_position` did (written to the synthesis sidecar).

    Attributes
    ----------
    positions : str
        Where recording positions came from (``"file"`` or a montage name).
    by_name : list of str
        Training channels found by name (case-insensitive).
    by_position : dict
        ``{training name: recording name}`` paired by position.
    distances_mm : dict
        ``{training name: distance in mm}`` of those pairs (after sphere normalisation).
    interpolated : list of str
        Training channels interpolated from neighbours (spherical splines).
    ignored : list of str
        Recording EEG channels not used.
    renamed : dict
        ``{recording name: training name}`` of the channels found by name under another spelling (``EEG FP1-REF`` ->
        ``Fp1``).
    """

    positions: str
    by_name: list[str] = field(default_factory=list)
    by_position: dict[str, str] = field(default_factory=dict)
    distances_mm: dict[str, float] = field(default_factory=dict)
    interpolated: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return asdict(self)


def training_montage_name() -> str:
    """The MNE montage with 10-05 site positions (``colin27_1005``, or ``standard_1005`` on older MNE)."""
    import mne

    return "colin27_1005" if "colin27_1005" in mne.channels.get_builtin_montages() else "standard_1005"


def default_positions(raw) -> str:
    """Where electrode positions come from when none are named: ``"file"`` (the recording's digitisation) if it has
    any, else the 10-05 sites by channel name (:func:`training_montage_name`), as ``prepare`` and ``synthesize`` both do."""
    mont = raw.get_montage()
    has_pos = mont is not None and any(v is not None and np.isfinite(v).all() and np.linalg.norm(v) > 0
                                       for v in mont.get_positions()["ch_pos"].values())
    return "file" if has_pos else training_montage_name()


def _fit_sphere(p: np.ndarray) -> tuple[np.ndarray, float]:
    a = np.c_[2 * p, np.ones(len(p))]
    x = np.linalg.lstsq(a, (p**2).sum(1), rcond=None)[0]
    c = x[:3]
    return c, float(np.sqrt(max(x[3] + c @ c, 1e-12)))


_WARNED_MONTAGES: set = set()


def _standard_montage(name: str):
    """MNE's standard montage ``name``: a built-in one, or an older name this MNE still accepts (its deprecation logged)."""
    import difflib
    import warnings

    import mne

    builtin = list(mne.channels.get_builtin_montages())
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mont = mne.channels.make_standard_montage(name)
    except (ValueError, KeyError, TypeError):
        mont = None
    else:
        for w in caught:
            if issubclass(w.category, (DeprecationWarning, FutureWarning)) and name not in _WARNED_MONTAGES:
                _WARNED_MONTAGES.add(name)  # once per process, not once per run
                logger.warning("channel_positions=%r: %s", name, w.message)
        return mont
    close = [m for m in builtin if str(name).casefold() == m.casefold()]
    close += [m for m in difflib.get_close_matches(str(name), builtin, n=4, cutoff=0.5) if m not in close]
    found = f"found no montage named {name!r}"
    if close:
        raise Eeg2fmriInputError(f"channel_positions={name!r}: expected 'file' or an MNE standard montage, {found}; "
                                 f"similar names: {', '.join(map(repr, close))} (all: mne.channels.get_builtin_montages()).")
    raise Eeg2fmriInputError(f"channel_positions={name!r}: expected 'file' or an MNE standard montage, {found}; pick the one that matches "
                             f"the cap from: {', '.join(builtin)}.")


def _recording_positions(raw, names: list[str], positions: str, where: str) -> dict[str, np.ndarray]:
    """``{recording channel: position (m, head frame)}`` from the file or a named montage."""
    if positions == "file":
        mont = raw.get_montage()
        pos = {} if mont is None else {k: np.asarray(v, float) for k, v in mont.get_positions()["ch_pos"].items() if v is not None and np.isfinite(v).all()}
        pos = {k: v for k, v in pos.items() if k in names and np.linalg.norm(v) > 0}
        if not pos:
            raise Eeg2fmriInputError(f"{where}: channel_positions='file' but the recording carries no electrode positions; "
                                     f"pass the cap's MNE montage instead, e.g. channel_positions={training_montage_name()!r} (10-05 names such as Fp1, "
                                     "TP10) or 'biosemi64' (BioSemi A1..B32) (--channel-positions).")
        return pos
    mont = _standard_montage(positions)
    mpos = mont.get_positions()["ch_pos"]
    lower = {channel_key(k): k for k in mpos}
    out = {}
    for c in names:
        if channel_key(c) in lower:
            out[c] = np.asarray(mpos[lower[channel_key(c)]], float)
            continue
        m = _BIOSEMI.match(c.strip())
        if m:  # BioSemi bank numbering A1..A32, B1..B32, ...: the montage's channels in cap order
            i = (ord(m.group(1)) - ord("A")) * 32 + int(m.group(2)) - 1
            if int(m.group(2)) <= 32 and i < len(mont.ch_names):
                out[c] = np.asarray(mpos[mont.ch_names[i]], float)
    if not out:
        raise Eeg2fmriInputError(f"{where}: none of the recording's channels {names[:8]} is in montage {positions!r} (by name or BioSemi A1..H32 "
                                 "numbering); choose the montage of the cap that recorded it, or channel_positions='file'.")
    return out


def _by_key(names: list[str]):
    """``(key -> name, key function)`` for ``names``: :func:`channel_key`, or only the case folded where two names
    share a key (``Fp1`` and ``EEG Fp1`` in one file)."""
    keys = [channel_key(c) for c in names]
    if len(set(keys)) == len(keys):
        return dict(zip(keys, names)), channel_key
    return {c.casefold(): c for c in names}, str.casefold


def map_channels_by_position(
    raw,
    wanted: list[str],
    *,
    positions: str = "file",
    tolerance_mm: float = 25.0,
    min_share: float = 0.5,
    where: str = "EEG",
):
    """Give a recording the model's training channels: by name, then by position, then by interpolation.

    Parameters
    ----------
    raw : mne.io.BaseRaw
        The recording (loaded into a copy; the original is not changed).
    wanted : list of str
        Training channel names (10-20/10-05 names), in the model's order.
    positions : str
        ``"file"`` (the recording's digitisation) or an MNE standard montage
        name (``"biosemi64"``: BioSemi ``A1..B32`` take its sites in cap order).
    tolerance_mm : float
        Largest distance (mm, on a 95 mm head) between a recording channel and
        a training site to pair them.
    min_share : float
        Smallest share of training channels that must be found by name or
        position; fewer raises (interpolating most of the head is not data).

    Returns
    -------
    raw : mne.io.BaseRaw
        A preloaded copy holding exactly ``wanted`` (renamed, interpolated),
        in that order, shape ``(len(wanted), n_times)``.
    mapping : ChannelMapping
        What was paired, at which distance, and what was interpolated.
    """
    import mne

    types = dict(zip(raw.ch_names, raw.get_channel_types()))
    # a channel marked bad counts as missing: interpolated at its site like a channel the recording lacks
    eeg = [c for c in raw.ch_names if types[c] == "eeg" and c not in raw.info["bads"]]
    # names matched case-insensitively and without EDF-style decorations (channel_key: "EEG Fp1-REF" is Fp1)
    by_key, key = _by_key(eeg)
    named = {w: by_key[key(w)] for w in wanted if key(w) in by_key}
    by_name = [w for w in wanted if w in named]
    todo = [w for w in wanted if w not in named]
    free = [c for c in eeg if c not in named.values()]
    rep = ChannelMapping(positions)
    rep.by_name = list(by_name)
    if not todo:  # every training channel by name: no positions needed
        out = raw.copy().load_data(verbose=False)
        out.drop_channels([c for c in out.ch_names if c not in set(named.values())])
        out.rename_channels({named[w]: w for w in wanted if named[w] != w})
        rep.ignored = [c for c in eeg if c not in named.values()]
        return out.reorder_channels(list(wanted)), rep
    rec_pos = _recording_positions(raw, eeg, positions, where)
    tm = mne.channels.make_standard_montage(training_montage_name())
    tpos_all = {k.lower(): np.asarray(v, float) for k, v in tm.get_positions()["ch_pos"].items()}
    # the training sites in the recording's frame: the recording's own montage when it names them, else the
    # 10-05 montage moved onto the sphere fitted to the recording's positions
    pts = np.array(list(rec_pos.values()))
    c_r, r_r = _fit_sphere(pts) if len(pts) >= 4 else (np.zeros(3), 0.095)
    known = [w for w in wanted if w.lower() in tpos_all]
    c_t, r_t = _fit_sphere(np.array([tpos_all[w.lower()] for w in known])) if len(known) >= 4 else _fit_sphere(np.array(list(tpos_all.values())))
    own = {}
    if positions != "file":
        own = {k.lower(): np.asarray(v, float) for k, v in _standard_montage(positions).get_positions()["ch_pos"].items()}
    site = {}
    for w in wanted:
        if w.lower() in own:
            site[w] = own[w.lower()]
        elif w.lower() in tpos_all:
            site[w] = c_r + (tpos_all[w.lower()] - c_t) * r_r / r_t
    pairs = []
    for w in todo:
        if w not in site:
            continue
        for c in free:
            if c in rec_pos:
                pairs.append((float(np.linalg.norm(rec_pos[c] - site[w]) / r_r * _HEAD_MM), w, c))
    used_w, used_c = set(), set()
    for d, w, c in sorted(pairs):
        if d <= tolerance_mm and w not in used_w and c not in used_c:
            rep.by_position[w] = c
            rep.distances_mm[w] = round(d, 2)
            used_w.add(w)
            used_c.add(c)
    missing = [w for w in todo if w not in rep.by_position]
    found = len(by_name) + len(rep.by_position)
    if found < min_share * len(wanted) or found == 0:
        raise Eeg2fmriInputError(
            f"{where}: only {found} of the model's {len(wanted)} training channels were found by name or position "
            f"(positions {positions!r}, tolerance {tolerance_mm:g} mm); expected at least {min_share:.0%}. Missing: {missing[:12]}"
            f"{' (and more)' if len(missing) > 12 else ''}. Use the montage of the cap that recorded it (channel_positions=...), "
            "a larger tolerance, or a model trained on this cap's channels."
        )
    unplaceable = [w for w in missing if w not in site]
    if unplaceable:
        raise Eeg2fmriInputError(f"{where}: training channel(s) {unplaceable} are missing and have no 10-05 position to interpolate them at; "
                                 "rename the recording's channels to the training names or use a model trained on them.")
    out = raw.copy().load_data(verbose=False)
    rep.ignored = [c for c in eeg if c not in used_c and c not in named.values()]
    # a missing channel is interpolated from every recorded EEG electrode with a position (as MNE's interpolate_bads
    # would use them), not only from the training channels found; the others are dropped after the interpolation
    helpers = [c for c in rep.ignored if c in rec_pos and c not in wanted] if missing else []
    drop = [c for c in out.ch_names if not (c in named.values() and types[c] == "eeg") and c not in used_c and c not in helpers]
    out.drop_channels(drop)
    rename = {c: w for w, c in rep.by_position.items()}
    rename.update({named[w]: w for w in by_name if named[w] != w})
    rep.renamed = {named[w]: w for w in by_name if named[w] != w}  # (user test 54: the sidecar never said EEG FP1-REF fed Fp1)
    out.rename_channels(rename)
    ch_pos = {}
    for c in out.ch_names:
        src = next((k for k, v in rename.items() if v == c), c)
        if src in rec_pos:
            ch_pos[c] = rec_pos[src]
        elif c in site:
            ch_pos[c] = site[c]
    if missing:
        info = mne.create_info(missing, out.info["sfreq"], "eeg")
        add = mne.io.RawArray(np.zeros((len(missing), out.n_times)), info, first_samp=out.first_samp, verbose=False)
        add.set_meas_date(out.info["meas_date"])
        out.add_channels([add], force_update_info=True)
        ch_pos.update({w: site[w] for w in missing})
        out.set_montage(mne.channels.make_dig_montage(ch_pos=ch_pos, coord_frame="head"), on_missing="ignore", verbose=False)
        out.info["bads"] = list(missing)
        out.interpolate_bads(reset_bads=True, origin=tuple(c_r), verbose=False)
        rep.interpolated = list(missing)
    out.reorder_channels(list(wanted))
    logger.info("%s: channels by position (%s): %d by name, %d by position %s, %d interpolated %s, %d ignored", where, positions,
                len(by_name), len(rep.by_position), rep.by_position, len(missing), missing, len(rep.ignored))
    return out, rep
