"""Shared pieces of the dataset layouts: ``LayoutRun``, the ``Layout`` base class, the registry."""

from __future__ import annotations

import fnmatch
import os
import re
import textwrap
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eeg2fmri.io.bids import RunRecord
from eeg2fmri.utils.logs import logger
from eeg2fmri.utils.plugins import same_definition
from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = [
    "FrozenDict",
    "Layout",
    "LayoutRun",
    "Scan",
    "get_layout",
    "list_layouts",
    "register_layout",
]


class FrozenDict(dict):
    """A read-only ``dict`` (pickles and copies like a dict; mutation raises ``TypeError``)."""

    def _readonly(self, *args, **kwargs):
        raise TypeError("LayoutRun.meta is read-only; build a new run with dataclasses.replace(run, meta={...}).")

    __setitem__ = __delitem__ = update = pop = popitem = clear = setdefault = __ior__ = _readonly  # type: ignore[assignment]

    def __reduce__(self):
        return (FrozenDict, (dict(self),))


@dataclass(frozen=True)
class LayoutRun(RunRecord):
    """A :class:`~eeg2fmri.io.RunRecord` plus what a published layout knows about the run.

    Attributes
    ----------
    layout : str
        Name of the layout that found the run (``"bids"`` for plain BIDS).
    marker : tuple of str | None
        Scanner volume-marker descriptions, best first (``None``: the caller's
        defaults, e.g. ``PrepareConfig.marker``). :func:`read_layout_eeg`
        renames every spelling of them (``Response/R128``, ``Comment/R128``,
        ``R128``) to ``marker[0]``.
    tr : float | None
        Repetition time (s) that overrides the BOLD header/sidecar (``None``:
        read it from the file).
    eeg_reader : str | None
        Name of an EEG reader in the layout reader registry (``None``: the
        generic :func:`eeg2fmri.io.read_eeg`).
    non_eeg_channels : tuple of str
        Channel names or shell patterns (``"EXG*"``) that are not scalp EEG;
        :func:`read_layout_eeg` types them ecg/eog/stim/emg/misc so that
        preprocessing drops them.
    first_onset : float | None
        For layouts without scanner markers: onset (s) of volume 0 in the EEG;
        volumes then follow every ``tr`` seconds.
    meta : mapping
        Read-only extra facts (e.g. ``group`` labels, the raw recording whose
        markers place a preprocessed one, notes).
    eeg_start, eeg_stop : float | None
        The part of the EEG file that is this run's, in seconds from the file's
        first sample (one continuous recording across several BOLD runs);
        ``None``: from the start / to the end.
    marker_block : int | None
        This run's block of scanner volume markers in its EEG file (1 = the
        first), blocks being parted by pauses longer than
        :data:`eeg2fmri.io.sync.BLOCK_GAP_TRS` TRs: the EEG is cut to that
        block (see :func:`eeg2fmri.io.layouts.run_eeg_span`).
    dummy_scans : str | None
        This run's choice for more scanner markers than volumes (``"auto"``,
        ``"drop-first"``, ``"drop-last"``, ``"error"``; see
        :func:`eeg2fmri.io.volume_onsets`); ``None``: the prepare option's.
    """

    layout: str = "bids"
    marker: tuple[str, ...] | None = None
    tr: float | None = None
    eeg_reader: str | None = None
    non_eeg_channels: tuple[str, ...] = ()
    first_onset: float | None = None
    meta: dict = field(default_factory=dict, hash=False)
    eeg_start: float | None = None
    eeg_stop: float | None = None
    marker_block: int | None = None
    dummy_scans: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.marker, str):
            object.__setattr__(self, "marker", (self.marker,))
        elif self.marker is not None:
            object.__setattr__(self, "marker", tuple(self.marker))
        object.__setattr__(self, "non_eeg_channels", tuple(self.non_eeg_channels))
        object.__setattr__(self, "eeg_path", Path(self.eeg_path))
        if self.bold_path is not None:
            object.__setattr__(self, "bold_path", Path(self.bold_path))
        object.__setattr__(self, "meta", FrozenDict(self.meta or {}))


@dataclass
class Scan:
    """What a layout found in a folder.

    Attributes
    ----------
    runs : list of LayoutRun
        Paired runs, sorted.
    skipped : list of str
        Pieces that could not be paired, one readable sentence each (the
        dataset's known missing files end up here; ``strict=True`` raises on them).
    notes : list of str
        Decisions taken on purpose (excluded subjects, repaired pairings,
        ignored stray files).
    table : eeg2fmri.io.pairing.PairingTable | None
        The run-by-run pairing table, for layouts that pair through
        :func:`eeg2fmri.io.pairing.pair_bids_runs` (BIDS, ds003768).
    """

    runs: list[LayoutRun] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    table: Any = None


def norm_subjects(subjects: Iterable[str] | None) -> set[str] | None:
    """Subject labels without a ``sub-`` prefix (``None`` stays ``None``)."""
    if subjects is None:
        return None
    if isinstance(subjects, str):
        subjects = [subjects]
    return {s[4:] if s.startswith("sub-") else s for s in subjects}


#: Channel names that say a channel is not EEG whatever type the file gives it (typed by :func:`guess_channel_type`).
#: Channel names that are never EEG features, whatever their type (BioSemi's external electrodes EXG1-8 record
#: EOG, ECG or mastoids and have no scalp position).
NAMED_NON_EEG: tuple[str, ...] = ("ecg*", "ekg*", "*eog*", "emg*", "exg*")


def guess_channel_type(name: str) -> str:
    """MNE channel type of a non-EEG channel from its name (ecg, eog, stim, emg or misc)."""
    n = name.strip().lower()
    if n.startswith(("ecg", "ekg")):
        return "ecg"
    if "eog" in n or n.startswith("exg"):
        return "eog"
    if n in ("stim", "status", "trigger", "behav") or n.startswith("sti"):
        return "stim"
    if n.startswith("emg"):
        return "emg"
    return "misc"


def match_channels(ch_names: Iterable[str], patterns: Iterable[str]) -> list[str]:
    """Channels whose name matches one of the names / shell patterns (case-insensitive)."""
    pats = [p.lower() for p in patterns]
    return [c for c in ch_names if any(fnmatch.fnmatchcase(c.strip().lower(), p) for p in pats)]


def _marker_key(desc: str) -> str:
    """``Response/R128`` -> ``r128``: the description without its type prefix, spaces or case."""
    return str(desc).rsplit("/", 1)[-1].replace(" ", "").lower()


def marker_matches(desc: str, names: Iterable[str]) -> bool:
    """Whether an annotation description is one of the marker ``names`` (type prefix ignored)."""
    k = _marker_key(desc)
    return bool(k) and any(k == _marker_key(n) for n in names)


def header_field(vhdr: Path, key: str) -> str | None:
    """Value of ``key=`` in a BrainVision header/marker file (``None`` when absent)."""
    text = Path(vhdr).read_bytes().decode("latin-1")
    m = re.search(rf"^\s*{re.escape(key)}\s*=\s*(.*?)\s*$", text, re.MULTILINE)
    return m.group(1) if m else None


_REGISTRY: dict[str, Layout] = {}


def register_layout(name: str) -> Callable[[type], type]:
    """Class decorator: register a :class:`Layout` subclass under ``name`` (an instance is stored)."""

    def deco(cls: type) -> type:
        old = type(_REGISTRY[name]) if name in _REGISTRY else None
        if (old is not None and old is not cls and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__)
                and not same_definition(old, cls)):  # (one file imported by path and by module name: user test 16, review)
            raise Eeg2fmriInputError(f"register_layout({name!r}): expected a free name, found it taken by {old.__module__}.{old.__qualname__}; "
                                     f"register {cls.__module__}.{cls.__qualname__} under another name.")
        cls.NAME = name
        _REGISTRY[name] = cls()
        return cls

    return deco


def list_layouts() -> list[str]:
    """Names of the registered layouts (``bids`` first, then alphabetical; layouts of plugins included: :mod:`eeg2fmri.utils.plugins`)."""
    from eeg2fmri.utils.plugins import load_plugins

    load_plugins()
    return sorted(_REGISTRY, key=lambda n: (n != "bids", n))


def get_layout(name: str) -> Layout:
    """The registered layout called ``name``."""
    if name not in _REGISTRY:
        from eeg2fmri.utils.plugins import load_plugins

        load_plugins()
    if name not in _REGISTRY:
        raise Eeg2fmriInputError(f"layout {name!r}: expected one of {list_layouts()} (or 'auto'); run `eeg2fmri datasets` to see them.")
    return _REGISTRY[name]


class Layout(ABC):
    """One on-disk layout of a published EEG-fMRI dataset.

    Subclasses set the class attributes and implement :meth:`detect` and
    :meth:`scan`; :meth:`find_runs` and :meth:`check` are shared.

    Attributes
    ----------
    NAME : str
        Registry name (set by :func:`register_layout`).
    TITLE : str
        One line: which dataset.
    DESCRIPTION : str
        One paragraph: what must be on disk and what the adapter does; facts
        the reference marks as inferred say so.
    NEEDS : tuple of str
        The on-disk pieces, one glob-like path per line.
    MARKER, TR, FIRST_ONSET, EEG_READER, NON_EEG :
        Reader hints copied into every :class:`LayoutRun`.
    HAS_BOLD : bool
        ``False`` for EEG-only datasets (``bold_path`` is ``None``).
    OPTIONS : dict
        Keyword arguments of :meth:`scan` and what they do.
    """

    NAME: str = ""
    TITLE: str = ""
    DESCRIPTION: str = ""
    NEEDS: tuple[str, ...] = ()
    MARKER: tuple[str, ...] | None = None
    TR: float | None = None
    FIRST_ONSET: float | None = None
    EEG_READER: str | None = None
    NON_EEG: tuple[str, ...] = ()
    HAS_BOLD: bool = True
    OPTIONS: dict[str, str] = {}

    # -- to implement ----------------------------------------------------------------------------
    @abstractmethod
    def detect(self, root: Path) -> bool:
        """Whether ``root`` looks like this layout (cheap: a few globs)."""

    @abstractmethod
    def scan(self, root: Path, subjects: set[str] | None = None, **options: Any) -> Scan:
        """Pair runs below ``root`` (structural problems raise; per-run gaps go to ``skipped``)."""

    # -- shared ----------------------------------------------------------------------------------
    def make_run(self, subject: str, session: str | None, task: str | None, run: str | None, eeg_path: Path, bold_path: Path | None, **kw: Any) -> LayoutRun:
        """A :class:`LayoutRun` with this layout's hints (``kw`` overrides them)."""
        base = dict(layout=self.NAME, marker=self.MARKER, tr=self.TR, eeg_reader=self.EEG_READER, non_eeg_channels=self.NON_EEG, first_onset=self.FIRST_ONSET)
        base.update(kw)
        return LayoutRun(subject, session, task, run, Path(eeg_path), None if bold_path is None else Path(bold_path), **base)

    def _root(self, root: str | os.PathLike) -> Path:
        p = Path(root)
        if not p.is_dir():
            raise Eeg2fmriInputError(f"{p}: expected a {self.NAME} dataset folder, found {'a file' if p.exists() else 'nothing: the path does not exist'}; pass the folder that holds {self.NEEDS[0].split('/')[0] if self.NEEDS else 'the data'}.")
        return p

    def _check_options(self, options: dict[str, Any]) -> None:
        unknown = sorted(set(options) - set(self.OPTIONS))
        if unknown:
            known = ", ".join(self.OPTIONS) or "none"
            raise Eeg2fmriInputError(f"layout {self.NAME!r}: unknown option(s) {unknown}; this layout takes: {known}.")

    def find_runs(self, root: str | os.PathLike, subjects: Iterable[str] | None = None, *, strict: bool = False, **options: Any) -> list[LayoutRun]:
        """Paired runs of a dataset in this layout.

        Parameters
        ----------
        root : path-like
            The dataset folder (see :attr:`NEEDS`).
        subjects : list of str | None
            Restrict to these subject labels (a ``sub-`` prefix is ignored).
        strict : bool
            Raise when anything could not be paired (by default such pieces,
            e.g. the dataset's known missing files, are skipped and logged).
        **options
            Layout options (:attr:`OPTIONS`).

        Returns
        -------
        runs : list of LayoutRun
        """
        self._check_options(options)
        root = self._root(root)
        subs = norm_subjects(subjects)
        sc = self.scan(root, subs, **options)
        if strict and sc.skipped:
            raise Eeg2fmriInputError(f"{root}: strict pairing failed for layout {self.NAME!r}: " + " | ".join(sc.skipped) + "; add the missing files or pass strict=False to skip them.")
        if sc.table is not None:
            logger.info("%s: %s", self.NAME, "\n".join(sc.table.lines()))
        for s in sc.notes:
            logger.info("%s: %s", self.NAME, s)
        for s in sc.skipped:
            logger.warning("%s: %s", self.NAME, s)
        if not sc.runs:
            what = f" for subjects {sorted(subs)}" if subs is not None else ""
            raise Eeg2fmriInputError(
                f"{root}: found no complete {self.NAME} runs{what}; expected {'; '.join(self.NEEDS)}. "
                + (f"Skipped: {' | '.join(sc.skipped)}. " if sc.skipped else "")
                + f"Check the folder with `eeg2fmri datasets {self.NAME} --check {root}{_check_flags(options)}`."
            )
        return sc.runs

    def hints(self) -> dict[str, Any]:
        """The reader hints as a plain dict (for display)."""
        return {"marker": self.MARKER, "tr": self.TR, "first_onset": self.FIRST_ONSET, "eeg_reader": self.EEG_READER or "mne", "non_eeg_channels": self.NON_EEG, "has_bold": self.HAS_BOLD}

    def describe(self, width: int = 100) -> str:
        """Multi-line description for ``eeg2fmri datasets NAME``."""
        h = self.hints()
        lines = [f"{self.NAME}: {self.TITLE}", ""]
        lines += textwrap.wrap(" ".join(self.DESCRIPTION.split()), width)
        lines += ["", "On disk:"] + [f"  {n}" for n in self.NEEDS]
        if h["marker"] is not None:
            sync = f"scanner marker {' | '.join(repr(m) for m in h['marker'])} (one per volume)"
        elif h["first_onset"] is not None:
            sync = f"no markers: volume 0 at {h['first_onset']} s, then every TR"
        else:
            sync = "scanner markers from the caller's defaults (PrepareConfig.marker)"
        lines += [
            "",
            "Adapter:",
            f"  volume timing  : {sync}",
            f"  TR             : {h['tr']} s (overrides the files)" if h["tr"] is not None else "  TR             : from the BOLD sidecar/header",
            f"  EEG reader     : {h['eeg_reader']}",
            f"  non-EEG (typed, dropped by preprocessing): {', '.join(h['non_eeg_channels']) or 'from the files'}",
            f"  BOLD           : {'yes' if h['has_bold'] else 'none (EEG-only dataset; bold_path is None)'}",
        ]
        if self.OPTIONS:
            lines += ["", "Options (find_runs_layout(root, layout=..., **options)):"] + [f"  {k}: {v}" for k, v in self.OPTIONS.items()]
        return "\n".join(lines)


def _check_flags(options: dict) -> str:
    """The ``datasets --check`` flags that repeat a scan's pairing options (fMRIPrep derivatives and space, and the layout's
    own options as ``--layout-option KEY=VALUE``: review, the suggested command paired runs differently)."""
    import json
    import shlex

    out = ""
    for key, flag in (("derivatives", "--derivatives"), ("space", "--space")):
        if options.get(key):
            out += f" {flag} {shlex.quote(str(options[key]))}"
    # the layout's own options (bold_entities is --bold-filter's; subjects is --subjects')
    rest = {k: v for k, v in options.items() if k not in ("derivatives", "space", "subjects", "bold_entities") and v is not None}
    if rest:
        out += " --layout-option " + " ".join(shlex.quote(f"{k}={v if isinstance(v, str) else json.dumps(v)}") for k, v in rest.items())
    return out
