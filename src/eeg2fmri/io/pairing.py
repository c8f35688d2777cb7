"""Pair the EEG runs of a BIDS dataset with their BOLD runs through mne-bids, with a table of the outcome.

EEG runs are found with :func:`mne_bids.find_matching_paths` (``datatype`` eeg,
suffix ``eeg``), subjects listed from the ``sub-*`` folders,
and expected paths spelled with :class:`mne_bids.BIDSPath`. BOLD files are globbed
(``func/*_bold.nii[.gz]``) and their entities parsed with
:func:`mne_bids.get_entities_from_fname`: the file-name pattern of
``find_matching_paths`` does not accept the ``echo-``, ``dir-``, ``ce-``,
``rec-`` or ``res-`` entities that BOLD (and fMRIPrep) names carry.

An EEG run pairs with the BOLD run of the same subject, session, task and run
(run indices compared as integers: ``run-1`` pairs with ``run-01``). An ``acq-``
label on the EEG must match the BOLD's (``acq-a`` EEG with ``acq-a`` BOLD; a BOLD
without ``acq-`` is taken when none has the EEG's label), and it is part of the
run key. When several BOLD files share those (they differ by ``acq-`` where the
EEG has none, ``echo-``, ``ce-``, ``dir-``, ``rec-`` or, for derivatives,
``space-``), ``bold_entities`` chooses among them, e.g. ``{"echo": "1"}``.

File names are checked first: BIDS labels are alphanumeric, so a name such as
``task-eyes-closed`` is refused with the file named (mne-bids would stop on it,
or read its task as ``eyes``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from eeg2fmri.utils.logs import logger
from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["BOLD_ENTITIES", "PairingRow", "PairingTable", "acquisition_candidates", "pair_bids_runs", "parse_bold_filter"]

#: Entities that can tell BOLD files of one sub/ses/task/run apart (short BIDS keys).
BOLD_ENTITIES = ("acq", "ce", "dir", "rec", "echo", "part", "space", "res", "den")
_EEG_EXT = (".vhdr", ".edf", ".bdf", ".set", ".fif")
#: mne-bids' long entity names -> the short keys used in file names and in ``bold_entities``.
_SHORT = {"subject": "sub", "session": "ses", "task": "task", "acquisition": "acq", "run": "run", "processing": "proc",
          "space": "space", "recording": "recording", "split": "split", "description": "desc", "tracking_system": "tracksys"}
_LONG = {"acquisition": "acq", "reconstruction": "rec", "contrast": "ce", "direction": "dir", "session": "ses", "subject": "sub"}


def _entities(path: Path) -> dict[str, str]:
    """Short-keyed entities of a BIDS file name (``None`` values dropped), parsed by mne-bids."""
    from mne_bids.path import get_entities_from_fname

    ent = get_entities_from_fname(path.name, on_error="ignore")
    return {_SHORT.get(k, k): str(v) for k, v in ent.items() if v is not None}


def parse_bold_filter(items: Iterable[str] | Mapping[str, str | None] | None) -> dict[str, str | None]:
    """``["echo=1", "acq=mb"]`` (or a mapping) -> ``{"echo": "1", "acq": "mb"}``.

    Keys may be short (``acq``, ``echo``, ``ce``, ``dir``, ``rec``, ``space``) or
    long (``acquisition``, ``reconstruction``, ``contrast``, ``direction``); a
    value ``none`` (any case) or ``None`` requires the entity to be absent.
    """
    if items is None:
        return {}
    pairs = list(items.items()) if isinstance(items, Mapping) else []
    if not isinstance(items, Mapping):
        for it in [items] if isinstance(items, str) else items:
            if "=" not in str(it):
                raise Eeg2fmriInputError(f"bold filter {it!r}: expected ENTITY=VALUE such as echo=1 or acq=mb; write it that way.")
            k, v = str(it).split("=", 1)
            pairs.append((k, v))
    out: dict[str, str | None] = {}
    for k, v in pairs:
        key = _LONG.get(str(k).strip(), str(k).strip())
        if key not in BOLD_ENTITIES:
            raise Eeg2fmriInputError(f"bold filter {k!r}: expected one of the entities {list(BOLD_ENTITIES)}; choose BOLD runs by those.")
        out[key] = None if v is None or str(v).strip().lower() == "none" else str(v).strip()
    return out


@dataclass(frozen=True)
class PairingRow:
    """One line of the pairing table.

    Attributes
    ----------
    key : str
        ``sub-01_ses-1_task-rest_run-1``.
    subject, session, task, run : str | None
        Entities of the run.
    eeg_path, bold_path : Path | None
        The paired files (either may be ``None`` for a file left out).
    status : str
        ``"paired"``, ``"eeg-only"`` (kept without BOLD), ``"left out"`` or ``"ambiguous"``.
    reason : str
        Why the run was left out (empty when paired).
    confounds_path : Path | None
        fMRIPrep confounds of the BOLD run (derivatives only).
    acquisition : str | None
        The EEG's ``acq-`` label (the BOLD's for a BOLD file without EEG);
        part of ``key``.
    marker_block, runs_in_eeg_file : int | None
        An EEG recording without a ``run-`` entity paired with several BOLD runs (the EEG ran on across the
        scanner's runs): this run's block of scanner markers in it (1 = the first, in run order) and how many runs
        share the recording; ``None`` otherwise.
    """

    key: str
    subject: str
    session: str | None
    task: str | None
    run: str | None
    eeg_path: Path | None
    bold_path: Path | None
    status: str
    reason: str = ""
    confounds_path: Path | None = None
    acquisition: str | None = None
    marker_block: int | None = None
    runs_in_eeg_file: int | None = None


@dataclass
class PairingTable:
    """What :func:`pair_bids_runs` paired and what it left out, and why.

    Attributes
    ----------
    root : Path
        The dataset.
    rows : list of PairingRow
        Sorted by subject, session, task, run.
    bold_root : Path
        Where the BOLD runs were taken from (``root`` or a derivatives folder).
    notes : list of str
        Decisions taken (a second format of an EEG run ignored, missing confounds).
    """

    root: Path
    rows: list[PairingRow] = field(default_factory=list)
    bold_root: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def paired(self) -> list[PairingRow]:
        """Rows with both EEG and BOLD."""
        return [r for r in self.rows if r.status == "paired"]

    @property
    def left_out(self) -> list[PairingRow]:
        """Rows not used (no BOLD, no EEG, ambiguous, filtered out)."""
        return [r for r in self.rows if r.status in ("left out", "ambiguous")]

    def lines(self) -> list[str]:
        """The table as text: one line per run (status, run, EEG file, BOLD file or reason)."""
        head = f"pairing of {self.root}" + (f" (BOLD from {self.bold_root})" if self.bold_root and self.bold_root != self.root else "")
        out = [f"{head}: {len(self.paired)} paired, {len(self.left_out)} left out"]
        w = max([len(r.key) for r in self.rows] + [3])
        out.append(f"  {'status':10s} {'run':{w}s}  eeg -> bold / why left out")
        for r in self.rows:
            eeg = r.eeg_path.name if r.eeg_path is not None else "-"
            if r.status == "paired":
                what = (f"{eeg}" + (f" [marker block {r.marker_block} of {r.runs_in_eeg_file}]" if r.marker_block is not None else "")
                        + f" -> {r.bold_path.name}" + (f" (+ {r.confounds_path.name})" if r.confounds_path is not None else ""))
            elif r.status == "eeg-only":
                what = f"{eeg} (no BOLD; kept for EEG-only use)"
            else:
                what = f"{eeg if r.eeg_path is not None else r.bold_path.name}: {r.reason}"
            out.append(f"  {r.status:10s} {r.key:{w}s}  {what}")
        out += [f"  note: {n}" for n in self.notes]
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


_KEY = ("sub", "ses", "task", "acq", "run")
_LABEL = re.compile(r"[A-Za-z0-9]+")


def _run_index(run: str | None) -> str | None:
    """A run index as compared between EEG and BOLD: ``"01"`` -> ``"1"`` (BIDS run indices are integers)."""
    return str(int(run)) if run is not None and run.isdigit() else run


def _key(ent: Mapping[str, str]) -> tuple[str | None, ...]:
    """``(sub, ses, task, acq, run)`` of a file, the run index normalised (``run-01`` is ``run-1``)."""
    return tuple(_run_index(ent.get(k)) if k == "run" else ent.get(k) for k in _KEY)


def _base(key: tuple[str | None, ...]) -> tuple[str | None, ...]:
    """The key without ``acq``: what EEG and BOLD must always share."""
    return tuple(v for k, v in zip(_KEY, key) if k != "acq")


def _label(ent: Mapping[str, str | None]) -> str:
    """``sub-01_task-rest_acq-a_run-1`` from the entities as written in the file name."""
    return "_".join(f"{k}-{ent[k]}" for k in _KEY if ent.get(k) is not None)


def natural_key(label: str | None) -> tuple:
    """Sort key of an entity label with numbers in numeric order (``run-2`` before ``run-10``; ``None`` first).

    Parameters
    ----------
    label : str or None
        An entity label (``"10"``, ``"rest"``, ``"01a"``).

    Returns
    -------
    key : tuple
        Digit runs compare as integers (then by their length, so ``"01"`` and ``"1"`` stay distinct), the rest as text.
    """
    if not label:
        return ()
    return tuple((0, int(p), len(p)) if p.isdecimal() else (1, p, 0) for p in re.split(r"(\d+)", label) if p)


def _sort(ent: Mapping[str, str | None]) -> tuple:
    return tuple(natural_key(ent.get(k)) for k in ("sub", "ses", "task", "run", "acq"))


def _check_name(path: Path) -> None:
    """Refuse a BIDS file name whose entity labels are not alphanumeric (``task-eyes-closed``)."""
    stem = path.name.split(".", 1)[0]
    for seg in stem.split("_")[:-1]:
        if "-" not in seg:
            continue
        key, label = seg.split("-", 1)
        if not (_LABEL.fullmatch(key) and _LABEL.fullmatch(label)):
            fixed = f"{re.sub('[^A-Za-z0-9]', '', key)}-{re.sub('[^A-Za-z0-9]', '', label) or 'LABEL'}"
            raise Eeg2fmriInputError(
                f"{path}: expected KEY-LABEL entities with alphanumeric labels (BIDS allows letters and digits only; '_' separates "
                f"entities), found {seg!r}; rename the run's files (EEG, BOLD and sidecars), e.g. to {fixed!r}.")


def _eeg_files(root: Path, subjects: set[str] | None) -> list[Path]:
    """The EEG files mne-bids will parse (``sub-*/[ses-*/]eeg/*_eeg.<ext>``), for checking their names first."""
    files = set()
    for mid in ("", "ses-*/"):
        for ext in _EEG_EXT:
            files |= set(root.glob(f"sub-*/{mid}eeg/*_eeg{ext}"))
    rel = sorted(files)
    return [p for p in rel if subjects is None or p.relative_to(root).parts[0][4:] in subjects]


def _expected_bold(root: Path, ent: Mapping[str, str | None]) -> Path:
    from mne_bids import BIDSPath

    return BIDSPath(subject=ent.get("sub"), session=ent.get("ses"), task=ent.get("task"), acquisition=ent.get("acq"), run=ent.get("run"),
                    datatype="func", suffix="bold", extension=".nii.gz", root=root, check=False).fpath


def _subject_advice(unknown: list[str], available: list[str]) -> str:
    """For labels such as ``1`` where the dataset has ``01``: which zero-padded label is meant (no remapping)."""
    hints = []
    for u in unknown:
        same = [a for a in available if u.isdigit() and a.isdigit() and int(a) == int(u)]
        if len(same) == 1:
            hints.append(f"{u!r} is not {same[0]!r}: labels are matched exactly, as written after 'sub-'; pass {same[0]}")
    return f" ({'; '.join(hints)})" if hints else ""


def _spaces_found(deriv: Path, label: str, subject: str) -> list[str]:
    """The ``space-`` labels of a run's preprocessed BOLD files in an fMRIPrep folder (for an error that names them)."""
    names = (p.name for p in (deriv / f"sub-{subject}").rglob(f"{label}*_desc-preproc_bold.nii*")) if (deriv / f"sub-{subject}").is_dir() else ()
    return sorted({m.group(1) for n in names if (m := re.search(r"_space-([A-Za-z0-9]+)", n))})


def _confounds(bold: Path) -> Path | None:
    """The fMRIPrep confounds beside a preprocessed BOLD (entities space/res/den/desc dropped)."""
    stem = bold.name.split("_bold.nii")[0]
    keep = [p for p in stem.split("_") if p.split("-", 1)[0] not in ("space", "res", "den", "desc")]
    for kind in ("timeseries", "regressors"):
        p = bold.with_name("_".join(keep) + f"_desc-confounds_{kind}.tsv")
        if p.is_file():
            return p
    return None


def _bold_files(src: Path, derivatives: bool, space: str | None, subjects: set[str] | None) -> list[tuple[Path, dict[str, str]]]:
    files = sorted(set(src.glob("sub-*/func/*_bold.nii*")) | set(src.glob("sub-*/ses-*/func/*_bold.nii*")))
    out = []
    for p in files:
        if not p.name.endswith(("_bold.nii", "_bold.nii.gz")):
            continue
        if subjects is not None and p.relative_to(src).parts[0][4:] not in subjects:
            continue
        ent = _entities(p)
        if "sub" not in ent or (subjects is not None and ent["sub"] not in subjects):
            continue
        if derivatives:
            if ent.get("desc") != "preproc" or (space is not None and ent.get("space") != space):
                continue
        elif "desc" in ent:
            continue
        _check_name(p)
        out.append((p, ent))
    return out


def acquisition_candidates(acq: str | None, bolds: Sequence[tuple[Path, Mapping[str, str]]]) -> tuple[list[tuple[Path, Mapping[str, str]]], list[Path]]:
    """The BOLD files of one sub/ses/task/run that an EEG file with ``acq-`` label ``acq`` may pair with.

    The rule of :func:`pair_bids_runs` (and of the layouts of BIDS-like published datasets): an ``acq-`` label on
    both files must be the same; a BOLD file without ``acq-`` serves an EEG file with one when no BOLD file has its
    label; an EEG file without ``acq-`` may pair with any of them (several candidates are then ambiguous).

    Parameters
    ----------
    acq : str | None
        The EEG file's ``acq-`` label.
    bolds : sequence of (Path, mapping)
        The BOLD files of the EEG's sub/ses/task/run and their entities (short keys: ``"acq"``).

    Returns
    -------
    candidates : list of (Path, mapping)
        The BOLD files it may pair with (one: paired; several: ambiguous; none: unpaired).
    other_acq : list of Path
        BOLD files left aside because they carry another ``acq-`` label.
    """
    if acq is None:
        return list(bolds), []
    cands = [(p, e) for p, e in bolds if e.get("acq") == acq] or [(p, e) for p, e in bolds if "acq" not in e]
    return cands, [p for p, e in bolds if e.get("acq") not in (None, acq)]


def _differing(cands: list[tuple[Path, dict[str, str]]]) -> dict[str, list[str | None]]:
    keys = [k for k in BOLD_ENTITIES if any(k in e for _, e in cands)]
    return {k: sorted({e.get(k) for _, e in cands}, key=lambda v: "" if v is None else v) for k in keys if len({e.get(k) for _, e in cands}) > 1}


def ambiguity_advice(differ: Mapping[str, list[str | None]]) -> str:
    """How to choose one BOLD run: ``bold_entities={...}`` / ``--bold-filter K=V`` for the first differing entity."""
    if not differ:
        return "remove the duplicate BOLD files"
    what = f"they differ in {', '.join(f'{e}-{vs}' for e, vs in differ.items())}"
    if "space" in differ:
        v = next(x for x in differ["space"] if x is not None)
        return f"choose the fMRIPrep output space with space={v!r} (command line: --space {v}); {what}"
    k, vals = next(iter(differ.items()))
    v = next((x for x in vals if x is not None), "none")
    return f"choose one with bold_entities={{{k!r}: {v!r}}} (command line: --bold-filter {k}={v}); {what}"


def _eeg_without_run(rows: list, eeg_by_key: dict, bold: list, claimed: set, filt: Mapping[str, str | None], deriv: Path | None,
                     table: PairingTable) -> list:
    """EEG recordings without a ``run-`` entity that found no BOLD run without one, paired with the BOLD runs of their
    subject/session/task that have one and no EEG of their own: with one such run, as its EEG (a file named without
    ``run-``); with several, each run takes the recording's blocks of scanner markers in run order (the EEG ran on
    across the scanner's runs; ``marker_block``). BOLD runs of one index that differ by another entity stay unpaired."""
    by_path = {p: e for p, e in eeg_by_key.values()}
    out = []
    for sort_key, row in rows:
        eent = by_path.get(row.eeg_path) if row.eeg_path is not None else None
        if eent is None or row.bold_path is not None or row.run is not None or row.status not in ("left out", "eeg-only"):
            out.append((sort_key, row))
            continue
        same = [(p, e) for p, e in bold if p not in claimed and e.get("run") is not None
                and all(e.get(k) == eent.get(k) for k in ("sub", "ses", "task"))]
        cands, _ = acquisition_candidates(eent.get("acq"), same)
        by_run: dict[str | None, list] = {}
        for p, e in cands:
            if all(e.get(fk) == fv for fk, fv in filt.items()):
                by_run.setdefault(_run_index(e.get("run")), []).append((p, e))
        if not by_run or any(len(v) > 1 for v in by_run.values()):
            out.append((sort_key, row))
            continue
        order = sorted(by_run, key=natural_key)
        n = len(order)
        for k, run in enumerate(order, start=1):
            p, e = by_run[run][0]
            ent = {**eent, "run": e["run"]}
            conf = _confounds(p) if deriv is not None else None
            out.append((_sort(ent), PairingRow(key=_label(ent), subject=eent["sub"], session=eent.get("ses"), task=eent.get("task"),
                                               run=e["run"], eeg_path=row.eeg_path, bold_path=p, status="paired", confounds_path=conf,
                                               acquisition=eent.get("acq"), marker_block=k if n > 1 else None,
                                               runs_in_eeg_file=n if n > 1 else None)))
            claimed.add(p)
        runs = ", ".join(f"run-{by_run[r][0][1]['run']}" for r in order)
        note = (f"{row.eeg_path.name}: an EEG recording without a run- entity, paired with the {'BOLD run ' + runs if n == 1 else f'{n} BOLD runs ' + runs}"
                + ("" if n == 1 else " of its subject/session/task: each run takes its block of scanner markers in the recording, in run order "
                   "(blocks parted by pauses; prepare refuses a recording with another number of blocks)"))
        table.notes.append(note)
        logger.info("%s", note)
    return out


def pair_bids_runs(
    bids_root: str | os.PathLike,
    *,
    subjects: Iterable[str] | None = None,
    sessions: Iterable[str] | None = None,
    tasks: Iterable[str] | None = None,
    bold_entities: Mapping[str, str | None] | Iterable[str] | None = None,
    derivatives: str | os.PathLike | None = None,
    space: str | None = None,
    keep_eeg_only: bool = False,
) -> PairingTable:
    """Pair every EEG run of a BIDS dataset with its BOLD run; never raises for unpaired runs.

    Parameters
    ----------
    bids_root : path-like
        BIDS root (``sub-*`` folders with ``eeg/`` and ``func/``).
    subjects, sessions, tasks : list of str | None
        Restrict to these labels (without ``sub-``/``ses-``/``task-``).
        Subject labels are matched exactly (``1`` is not ``01``): when none
        of them is in the dataset this raises, listing the available ones;
        unknown ones beside known ones are listed in ``table.notes``.
    bold_entities : mapping | list of "K=V" | None
        Keep only BOLD files with these entities, e.g. ``{"echo": "1"}``,
        ``{"acq": "mb"}``; a value ``None`` requires the entity to be absent.
        Needed when several BOLD files share one subject/session/task/run.
    derivatives : path-like | None
        An fMRIPrep derivatives folder (``sub-*/[ses-*/]func/
        *_space-<label>_desc-preproc_bold.nii.gz`` with
        ``*_desc-confounds_timeseries.tsv``); BOLD is taken from there instead
        of the raw ``func/`` folders. A relative path is taken below ``bids_root``.
    space : str | None
        With ``derivatives``: the output space to use (e.g.
        ``"MNI152NLin2009cAsym"``); needed when fMRIPrep wrote several.
    keep_eeg_only : bool
        List EEG runs without BOLD as ``"eeg-only"`` (kept) instead of ``"left out"``.

    Returns
    -------
    table : PairingTable
        ``table.paired`` / ``table.left_out`` rows; ``print(table)`` shows it.

    Raises
    ------
    Eeg2fmriInputError
        For inputs, not for unpaired runs: a file name whose entity labels
        are not alphanumeric (``task-eyes-closed``), subjects none of which is
        in the dataset, a bad ``bold_entities``/``derivatives``/``space``.
    """
    from mne_bids import find_matching_paths

    root = Path(bids_root)
    if not root.is_dir():
        raise Eeg2fmriInputError(f"{root}: expected a BIDS dataset folder, found {'a file' if root.exists() else 'nothing: the path does not exist'}; pass the folder that holds sub-*/.")
    subs = None if subjects is None else {s[4:] if s.startswith("sub-") else s for s in ([subjects] if isinstance(subjects, str) else subjects)}
    filt = parse_bold_filter(bold_entities)
    deriv = None
    if derivatives is not None:
        deriv = Path(derivatives)
        if not deriv.is_absolute() and not deriv.is_dir():
            deriv = root / deriv
        if not deriv.is_dir():
            raise Eeg2fmriInputError(f"{derivatives}: expected an fMRIPrep derivatives folder (sub-*/func/*_desc-preproc_bold.nii.gz), found nothing; pass its path (absolute or relative to {root}).")
    elif space is not None:
        raise Eeg2fmriInputError(f"space={space!r}: expected together with derivatives=<fMRIPrep folder> (--derivatives); raw BOLD has no space. Add the derivatives folder or drop space.")
    # the subject folders (mne_bids.get_entity_vals fails on a file at the root such as notes_sub-01.txt: user test 32)
    all_subs = sorted((p.name[4:] for p in root.iterdir() if p.is_dir() and re.fullmatch(r"sub-[A-Za-z0-9]+", p.name)), key=natural_key)
    table = PairingTable(root, bold_root=deriv or root)
    if subs is not None and all_subs:
        unknown = sorted(subs - set(all_subs))
        if unknown:
            what = f"subject(s) {', '.join(unknown)} not found in {root}; available: {', '.join(all_subs)}{_subject_advice(unknown, all_subs)}"
            if len(unknown) == len(subs):
                raise Eeg2fmriInputError(f"{what}; pass subject labels from that list (without 'sub-').")
            table.notes.append(what)
            logger.info("%s", what)
    for p in _eeg_files(root, subs):
        _check_name(p)
    try:
        eeg_paths = find_matching_paths(root, subjects=sorted(subs) if subs is not None else None, sessions=list(sessions) if sessions is not None else None,
                                        tasks=list(tasks) if tasks is not None else None, datatypes="eeg", suffixes="eeg",
                                        extensions=list(_EEG_EXT), ignore_json=True, ignore_nosub=True)
    except (ValueError, KeyError) as err:  # a name _check_name let through (outside the usual folders)
        raise Eeg2fmriInputError(f"{root}: expected BIDS file names with alphanumeric labels, found one mne-bids cannot read ({err}); rename that file.") from err
    eeg_by_key: dict[tuple, tuple[Path, dict[str, str]]] = {}
    for bp in sorted(eeg_paths, key=lambda b: str(b.fpath)):
        p = Path(bp.fpath)
        ent = _entities(p)
        if "sub" not in ent or "derivatives" in p.relative_to(root).parts:
            continue
        k = _key(ent)
        if k in eeg_by_key:
            table.notes.append(f"{_label(ent)}: {p.name} ignored (a second file of the run beside {eeg_by_key[k][0].name})")
            continue
        eeg_by_key[k] = (p, ent)
    bold = _bold_files(deriv or root, deriv is not None, space, subs)
    if sessions is not None:
        bold = [(p, e) for p, e in bold if e.get("ses") in set(sessions)]
    if tasks is not None:
        bold = [(p, e) for p, e in bold if e.get("task") in set(tasks)]
    bold_by_base: dict[tuple, list] = {}
    for p, e in bold:
        bold_by_base.setdefault(_base(_key(e)), []).append((p, e))
    rows: list[tuple[tuple, PairingRow]] = []
    claimed: set[Path] = set()  # BOLD files some EEG run considered
    for k, (eeg, eent) in eeg_by_key.items():
        acq = eent.get("acq")
        # acq on both must match; a BOLD without acq- serves when none has the EEG's label; an acq- label on the BOLD
        # only is chosen with bold_entities, as any other entity
        cands, other_acq = acquisition_candidates(acq, bold_by_base.get(_base(k), []))
        chosen = [(p, e) for p, e in cands if all(e.get(fk) == fv for fk, fv in filt.items())]
        claimed.update(p for p, _ in cands)
        row = dict(key=_label(eent), subject=eent["sub"], session=eent.get("ses"), task=eent.get("task"), run=eent.get("run"), eeg_path=eeg, acquisition=acq)
        if len(chosen) == 1:
            p = chosen[0][0]
            conf = _confounds(p) if deriv is not None else None
            if deriv is not None and conf is None:
                table.notes.append(f"{_label(eent)}: no *_desc-confounds_timeseries.tsv beside {p.name} (confound regression will fail for this run)")
            out = PairingRow(**row, bold_path=p, status="paired", confounds_path=conf)
        elif len(chosen) > 1:
            differ = _differing(chosen)
            reason = f"{len(chosen)} BOLD files match ({', '.join(p.name for p, _ in chosen)}); {ambiguity_advice(differ)}"
            out = PairingRow(**row, bold_path=None, status="ambiguous", reason=reason)
        else:
            if cands:
                reason = f"no BOLD run left: bold_entities {filt} excluded every BOLD file of the run ({', '.join(p.name for p, _ in cands)})"
            elif other_acq:
                reason = (f"no BOLD run with acq-{acq}: found only {', '.join(p.name for p in other_acq)}, with another acq- label (an acq- label on both "
                          f"the EEG and the BOLD file must be the same); rename the files so that their acq- labels agree")
            elif deriv is not None:
                reason = (f"no BOLD run: no preprocessed {_label(eent)}*" + (f"_space-{space}" if space else "_space-*") + f"*_desc-preproc_bold.nii.gz in {deriv}")
                found = _spaces_found(Path(deriv), _label(eent), eent["sub"])
                if space and found:
                    reason += f"; this run has the spaces {', '.join(found)} there: pick one (--space NAME)"
            else:
                reason = f"no BOLD run; expected {_expected_bold(root, eent)} (or .nii)"
            out = PairingRow(**row, bold_path=None, status="eeg-only" if keep_eeg_only else "left out", reason=reason)
        rows.append((_sort(eent), out))
    rows = _eeg_without_run(rows, eeg_by_key, bold, claimed, filt, deriv, table)
    eeg_acqs: dict[tuple, list[str]] = {}
    for k, (_, eent) in eeg_by_key.items():
        if eent.get("acq") is not None:
            eeg_acqs.setdefault(_base(k), []).append(eent["acq"])
    for p, e in bold:
        if p in claimed:
            continue
        acqs = eeg_acqs.get(_base(_key(e)))
        reason = "BOLD without an EEG run of the same sub/ses/task/run" + (f"/acq (the EEG has acq-{', acq-'.join(sorted(acqs))})" if acqs else "")
        row = dict(key=_label(e), subject=e["sub"], session=e.get("ses"), task=e.get("task"), run=e.get("run"), eeg_path=None, acquisition=e.get("acq"))
        rows.append((_sort(e), PairingRow(**row, bold_path=p, status="left out", reason=reason)))
    table.rows = [r for _, r in sorted(rows, key=lambda x: (x[0], x[1].eeg_path is None))]
    for p in sorted(claimed):
        paired_to = [r.key for r in table.paired if r.bold_path == p]
        if len(paired_to) > 1:
            table.notes.append(f"{p.name} is the BOLD of {len(paired_to)} EEG runs ({', '.join(paired_to)}); each is prepared with it")
    return table
