"""Split selections and BOLD targets prepared without leakage.

Targets are detrended (linear + cosine high-pass) separately on every span
(train, validation, test) of every run, so no span's trend estimate uses
another span's data, and z-scored with the scale of that run's *training*
span. A run without a training span (a subject held out by ``loso``/``kfold``/
``subjects``, or a validation subject) is put on the training subjects' scale
without using its own fluctuations: its detrended signal, as a fraction of its
own baseline (mean intensity), is divided by the training runs' median relative
standard deviation per voxel. Where a baseline is not usable (a mean that is not
clearly positive, e.g. demeaned or confound-regressed data without the mean),
that voxel falls back to the span's own standard deviation, and the log says
how many voxels did.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eeg2fmri.datasets.prepared import PreparedDataset
from eeg2fmri.datasets.splits import check_no_overlap, temporal_split
from eeg2fmri.datasets.windows import valid_volumes
from eeg2fmri.preprocessing.bold import detrend
from eeg2fmri.utils.logs import logger
from eeg2fmri.utils.validation import Eeg2fmriInputError, check_choice, check_like

__all__ = ["Split", "make_split", "split_targets", "default_window"]

HRF_SPAN = 16.0  # seconds of haemodynamic memory used for gaps


def default_window(tr: float, frame_rate: float, seconds: float = HRF_SPAN) -> int:
    """Window length (samples of the representation) covering ``seconds`` + one TR of EEG up to the volume's end."""
    return int(math.ceil((seconds + tr) * frame_rate - 1e-9))


@dataclass
class Split:
    """Volume selections per split: ``{"train"|"val"|"test": {run_index: volumes}}``."""

    protocol: str
    selections: dict[str, dict[int, np.ndarray]]
    n_frames: int
    lag: int
    gap: int
    test_subjects: list[str]
    #: Windows left out because their EEG overlaps a span the recording marks bad, per split name.
    excluded: dict[str, int] = field(default_factory=dict)
    #: Keys of the dataset's runs the split was made for (run indices in ``selections`` refer to them); empty: not checked.
    run_keys: tuple[str, ...] = ()
    #: The options :func:`make_split` was given that shape the split besides protocol, window and gap (``fractions``,
    #: ``val_subjects``, ``n_folds``, ``fold``), JSON-ready: a model card records them, so that ``evaluate`` rebuilds the split.
    options: dict = field(default_factory=dict)

    def n_samples(self, name: str) -> int:
        return int(sum(len(v) for v in self.selections[name].values()))

    def __repr__(self) -> str:
        """Counts, not index arrays (user test 31: print(split) printed every volume index)."""
        parts = ", ".join(f"{name}={self.n_samples(name)} windows in {sum(1 for v in sel.values() if len(v))} run(s)"
                          for name, sel in self.selections.items())
        extra = f", test_subjects={self.test_subjects}" if self.test_subjects else ""
        excl = f", excluded={self.excluded}" if self.excluded else ""
        return f"Split(protocol={self.protocol!r}, {parts}, n_frames={self.n_frames}, lag={self.lag}, gap={self.gap}{extra}{excl})"

    def subjects(self, ds: Any) -> dict[str, list[str]]:
        """The subjects with windows in each part, ``{"train": [...], "val": [...], "test": [...]}`` (``ds``: the dataset
        the split was made for) -- what a fold or a saved model says it trained, validated and was tested on."""
        return {name: sorted({ds.runs[i].subject for i, v in sel.items() if len(v)}) for name, sel in self.selections.items()}


def check_split_fits(ds: Any, split: Split, targets: dict | None = None, *, where: str,
                     names: tuple[str, ...] = ("train", "val", "test")) -> None:
    """Refuse a split made for another dataset, and targets made for another split (user test 8: the first trained on
    run 0 of three silently, the second failed with ``KeyError: 2``); ``names``: the parts compared (a fit reads no test
    windows, not even to check them)."""
    keys = tuple(r.key for r in ds.runs)
    if split.run_keys and split.run_keys != keys:
        raise Eeg2fmriInputError(f"{where}: the split was made for a dataset of {len(split.run_keys)} run(s) {list(split.run_keys)[:4]}"
                                 f"{' ...' if len(split.run_keys) > 4 else ''}, this one has {len(keys)} {list(keys)[:4]}"
                                 f"{' ...' if len(keys) > 4 else ''}; make the split from this dataset (make_split(ds, ...)).")
    if targets is None:
        return
    for name in names:
        sel = split.selections[name]
        got = targets.get(name) if isinstance(targets, dict) else None
        if got is None or set(got) != set(sel) or any(len(got[i]) != len(v) for i, v in sel.items()):
            raise Eeg2fmriInputError(f"{where}: the targets were not made for this split ({name!r} windows: the split selects runs "
                                     f"{sorted(sel)}, the targets hold {sorted(got) if got is not None else 'none'}); compute them from it: "
                                     "split_targets(ds, split).")


def _kfold_subjects(subjects: list[str], n_folds: int, fold: int) -> list[str]:
    if not 2 <= n_folds <= len(subjects):
        raise Eeg2fmriInputError(f"expected 2 <= n_folds <= {len(subjects)} (the number of subjects), got n_folds={n_folds}.")
    if not 0 <= fold < n_folds:
        raise Eeg2fmriInputError(f"expected fold in [0, {n_folds}), got {fold}.")
    return [s for k, s in enumerate(subjects) if k % n_folds == fold]


def _check_split_types(**given: object) -> None:
    """Split options of the wrong type, refused by name (a YAML ``n_frames: nine`` or ``test_subjects: '03'``)."""
    def whole(v: object) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    for key in ("n_frames", "gap", "n_folds"):
        v = given.get(key)
        if v is not None and (not whole(v) or v < (1 if key != "gap" else 0)):
            raise Eeg2fmriInputError(f"split option {key}: expected a whole number >= {1 if key != 'gap' else 0}, got {v!r}.")
    for key in ("lag", "fold"):
        v = given.get(key)
        if v is not None and not whole(v):
            raise Eeg2fmriInputError(f"split option {key}: expected a whole number, got {v!r}.")
    fr = given.get("fractions")
    if fr is not None and (isinstance(fr, str) or not hasattr(fr, "__len__") or len(fr) != 3
                           or not all(isinstance(f, (int, float)) and not isinstance(f, bool) and f >= 0 for f in fr)):
        raise Eeg2fmriInputError(f"split option fractions: expected three shares [train, validation, test] >= 0 (e.g. [0.6, 0.2, 0.2]), got {fr!r}.")
    for key in ("test_subjects", "val_subjects"):
        v = given.get(key)
        if isinstance(v, str) and not (key == "val_subjects" and v in ("next", "spans")):
            raise Eeg2fmriInputError(f"split option {key}: expected a list of subject labels{' or next or spans' if key == 'val_subjects' else ''}, "
                                     f"got the string {v!r}; write [{v!r}] (YAML: {key}: ['{v}']).")


def _check_split_options(protocol: str, **given: object) -> None:
    """Refuse split options that ``protocol`` would silently not use."""
    unused = {
        "within": ("test_subjects", "val_subjects", "n_folds", "fold"),
        "loso": ("n_folds", "fold"),
        "subjects": ("n_folds", "fold"),
        "kfold": ("test_subjects",),
    }[protocol]
    why = {
        "test_subjects": "a subject-wise protocol ('loso' or 'subjects')",
        "val_subjects": "a subject-wise protocol ('loso', 'kfold' or 'subjects')",
        "n_folds": "protocol 'kfold'",
        "fold": "protocol 'kfold'",
    }

    def is_given(v: object) -> bool:
        return v is not None and not (isinstance(v, (list, tuple)) and len(v) == 0)

    for key in unused:
        if is_given(given.get(key)):
            fix = ("drop it: the test fold is chosen with n_folds and fold (or use protocol 'subjects' for explicit test subjects)"
                   if protocol == "kfold" else f"drop {key} or use {why[key]}")
            raise Eeg2fmriInputError(f"split option {key}: expected none with protocol {protocol!r} (it does not use it), got {given[key]!r}; {fix}.")
    if is_given(given.get("val_subjects")) and given.get("val_subjects") != "spans" and protocol != "within":
        for key in ("fractions", "gap"):
            if is_given(given.get(key)):
                raise Eeg2fmriInputError(
                    f"split option {key}: expected none together with val_subjects (the validation set is then those subjects and every "
                    f"training run is used whole), got {given[key]!r}; drop {key} or val_subjects."
                )


def make_split(
    ds: PreparedDataset,
    protocol: str = "within",
    *,
    n_frames: int | None = None,
    lag: int = 0,
    fractions: tuple[float, float, float] | None = None,
    gap: int | None = None,
    test_subjects: list[str] | None = None,
    val_subjects: list[str] | None = None,
    n_folds: int | None = None,
    fold: int | None = None,
) -> Split:
    """Leak-free split of a prepared dataset.

    Parameters
    ----------
    ds : PreparedDataset
    protocol : {"within", "loso", "kfold", "subjects"}
        ``"within"``: each run's later span is the test set and an earlier span
        the validation set, separated by ``gap`` volumes. ``"loso"``: the
        subjects in ``test_subjects`` (default: the last subject) are the test
        set. ``"kfold"``: fold ``fold`` of ``n_folds`` subject folds (subjects
        dealt round-robin in sorted order) is the test set. ``"subjects"``:
        explicit ``test_subjects`` (and optionally ``val_subjects``). For the
        subject-wise protocols, validation is ``val_subjects`` when given,
        otherwise the later span (with a gap) of each training run.
    n_frames : int | None
        EEG window length in samples of the representation (default: 16 s + 1 TR).
    lag : int
        Samples between the end of the volume and the end of its window.
    fractions : (float, float, float) | None
        Train/val/test shares within runs (default ``(0.6, 0.2, 0.2)``); for
        the subject-wise protocols the test share joins the training span.
    gap : int | None
        Volumes dropped between spans; default the window length plus the HRF
        span (16 s), in volumes.
    test_subjects, val_subjects : list of str | None
        Subject labels for the subject-wise protocols. ``val_subjects="next"`` (``"loso"``/``"subjects"`` with one
        test subject): the subject after the test subject, held out whole -- what ``benchmark --protocol loso`` does
        by default with >= 3 subjects (it then also refits the closed-form parts); ``"spans"`` or ``None``: the
        later span of every training run (this function's default).
    n_folds, fold : int | None
        For ``"kfold"`` (default 5 folds, fold 0).

    Raises
    ------
    Eeg2fmriInputError
        For unknown subjects, and for an option the protocol would not use
        (``test_subjects``/``val_subjects`` with ``"within"``, ``n_folds``/``fold``
        outside ``"kfold"``, ``test_subjects`` with ``"kfold"``,
        ``fractions``/``gap`` next to ``val_subjects``).
    """
    check_like(ds, ("runs", "ch_names"), "ds", "a PreparedDataset", where="make_split", fix="prepare_dataset(...) returns one, load_prepared(PATH) reads one from its folder; the order is make_split(ds, protocol, ...)")
    check_choice(protocol, "protocol", ("within", "loso", "kfold", "subjects"))
    _check_split_options(protocol, fractions=fractions, gap=gap, test_subjects=test_subjects, val_subjects=val_subjects, n_folds=n_folds, fold=fold)
    _check_split_types(n_frames=n_frames, lag=lag, gap=gap, n_folds=n_folds, fold=fold, fractions=fractions, test_subjects=test_subjects,
                       val_subjects=val_subjects)
    # the options as given (before defaults), recorded with the split: a model card keeps them for evaluate to rebuild it
    options: dict[str, Any] = {}
    if fractions is not None:
        options["fractions"] = [float(f) for f in fractions]
    if val_subjects is not None and val_subjects != "spans" and not (isinstance(val_subjects, (list, tuple)) and len(val_subjects) == 0):
        options["val_subjects"] = val_subjects if isinstance(val_subjects, str) else [str(v) for v in val_subjects]
    if protocol == "kfold":
        options["n_folds"], options["fold"] = int(5 if n_folds is None else n_folds), int(0 if fold is None else fold)
    fractions = (0.6, 0.2, 0.2) if fractions is None else tuple(fractions)
    n_folds = 5 if n_folds is None else n_folds
    fold = 0 if fold is None else fold
    fr = ds.frame_rate
    n_frames = default_window(ds.tr, fr) if n_frames is None else int(n_frames)
    if gap is None:
        gap = int(math.ceil((n_frames / fr + HRF_SPAN) / ds.tr))
    subjects = ds.subjects
    if val_subjects == "spans":  # (the later span of every training run: what no val_subjects gives)
        val_subjects = None
    if val_subjects == "next":  # as benchmark's LOSO default: the subject after the (one) test subject, held out whole
        tests = [subjects[-1]] if protocol == "loso" and test_subjects is None else list(test_subjects or [])
        if protocol not in ("loso", "subjects") or len(tests) != 1 or len(subjects) < 3:
            raise Eeg2fmriInputError(f"split option val_subjects='next': expected protocol 'loso' (or 'subjects') with one test subject and "
                                     f">= 3 subjects, got protocol {protocol!r}, test subjects {tests}, {len(subjects)} subjects; give "
                                     "val_subjects as a list of labels, or leave it out (validation on the later span of every training run).")
        val_subjects = [subjects[(list(subjects).index(tests[0]) + 1) % len(subjects)]] if tests[0] in subjects else []
    val_subjects = list(val_subjects or [])
    if protocol == "within":
        test_subjects = []
        val_subjects = []
    elif protocol == "loso":
        test_subjects = [subjects[-1]] if test_subjects is None else list(test_subjects)
    elif protocol == "kfold":
        test_subjects = _kfold_subjects(subjects, n_folds, fold)
    elif not test_subjects:
        raise Eeg2fmriInputError("protocol 'subjects' needs test_subjects=[...] (subject labels without 'sub-').")
    unknown = (set(test_subjects) | set(val_subjects)) - set(subjects)
    if unknown:
        raise Eeg2fmriInputError(f"subject(s) {sorted(unknown)} not in the dataset {subjects}; use labels without 'sub-'.")
    if set(test_subjects) & set(val_subjects):
        raise Eeg2fmriInputError(f"subject(s) {sorted(set(test_subjects) & set(val_subjects))} are in both test_subjects and val_subjects.")
    if protocol != "within" and not (set(subjects) - set(test_subjects) - set(val_subjects)):
        # (user test 38: the message named neither the data, the counts nor the command-line fix)
        raise Eeg2fmriInputError(
            f"split: expected at least one training subject besides the test {sorted(test_subjects)} and validation {sorted(val_subjects)} "
            f"subject(s), found {len(subjects)} subject(s) {list(subjects)} in the dataset: no training subject left; protocol "
            f"{protocol!r} needs at least {len(set(test_subjects) | set(val_subjects)) + 1} subjects. Add subjects, or split each "
            "subject's recording in time instead (--protocol within; protocol='within' in Python).")
    sel: dict[str, dict[int, np.ndarray]] = {"train": {}, "val": {}, "test": {}}
    for i, run in enumerate(ds.runs):
        valid = valid_volumes(run, n_frames, lag)
        if len(valid) == 0:
            raise Eeg2fmriInputError(f"{run.key}: no volume has a complete {n_frames}-sample EEG window (the run has {len(run.onsets)} volumes); "
                                     "use a shorter window (split option n_frames), or leave the subject out (data.subjects).")
        first, last = int(valid[0]), int(valid[-1]) + 1
        if run.subject in test_subjects:
            sel["test"][i] = np.arange(first, last)
            continue
        if run.subject in val_subjects:
            sel["val"][i] = np.arange(first, last)
            continue
        try:
            if protocol == "within":
                sp = temporal_split(last, first, fractions=fractions, gap=gap, test_gap=False)
            elif val_subjects:
                sp = {"train": np.arange(first, last), "val": np.array([], int), "test": np.array([], int)}
            else:
                # no gap for the empty test span: the validation span runs to the end of the run (until session 23 a
                # second gap was left unused there: ~19 % of a 3-minute run, and 30-volume subjects could not be split)
                sp = temporal_split(last, first, fractions=(fractions[0] + fractions[2], fractions[1], 0.0), gap=gap, test_gap=False)
        except Eeg2fmriInputError as err:  # name the run and the ways on (user test 10: the message named neither)
            how = ("its training/validation spans" if protocol != "within" else "its spans")
            ways = ("validate on a held-out subject instead (val_subjects: next, with >= 3 subjects), leave the subject out "
                    "(data.subjects), or shorten the window or gap (split options n_frames, gap)" if protocol != "within" else
                    "leave the subject out (data.subjects), or shorten the window or gap (split options n_frames, gap)")
            raise Eeg2fmriInputError(f"{run.key} (subject {run.subject}): {how}: {err} Or {ways}.") from None
        for k in sel:
            if len(sp[k]):
                sel[k][i] = sp[k]
        spans = {k: [(float(run.onsets[v]) + ds.tr - n_frames / fr, float(run.onsets[v]) + ds.tr) for v in sp[k]] for k in ("train", "val", "test")}
        check_no_overlap(spans["train"], spans["test"], where=run.key)
        check_no_overlap(spans["train"], spans["val"], where=run.key)
    excluded = drop_bad_windows(ds, sel, n_frames, lag)
    return Split(protocol, sel, n_frames, lag, gap, list(test_subjects), excluded, tuple(r.key for r in ds.runs), options)


def volume_accounting(ds: PreparedDataset, split: Split) -> dict[str, int]:
    """Where every volume of the dataset went: used by a split, or left out and why.

    Parameters
    ----------
    ds : PreparedDataset
        The dataset ``split`` was made on.
    split : Split

    Returns
    -------
    dict
        ``total`` volumes; ``used``: volumes with a window in train, validation or test;
        ``no_full_window``: volumes at a run's start (or end) whose EEG window would begin
        before the recording (or end after it); ``bad_eeg``: volumes whose window overlaps
        EEG the recording marks bad; ``gaps``: the rest, volumes between spans (the gap that
        keeps training windows from overlapping validation/test ones). The counts add up to
        ``total``.
    """
    total = used = no_window = 0
    for i, run in enumerate(ds.runs):
        total += run.n_volumes
        no_window += run.n_volumes - len(valid_volumes(run, split.n_frames, split.lag))
        used += sum(len(sel.get(i, ())) for sel in split.selections.values())
    bad = int(sum(split.excluded.values()))
    return {"total": int(total), "used": int(used), "no_full_window": int(no_window), "bad_eeg": bad,
            "gaps": int(total - used - no_window - bad)}


def volumes_line(volumes: dict[str, int], tr: float | None = None) -> str:
    """One sentence saying where the volumes went (a :func:`volume_accounting` dict)."""
    v = volumes
    lost = v["total"] - v["used"]
    return (f"{v['used']} of {v['total']} volumes have a window in train/validation/test; {lost} left out: {v['no_full_window']} at run "
            f"starts/ends without a complete EEG window, {v['gaps']} in the gaps between spans, {v['bad_eeg']} over EEG marked bad"
            + (f" ({lost * tr / 60:.1f} min at TR {tr:g} s)" if tr else ""))


def drop_bad_windows(ds: PreparedDataset, sel: dict[str, dict[int, np.ndarray]], n_frames: int, lag: int) -> dict[str, int]:
    """Leave out (in place) the volumes whose EEG window overlaps a span its recording marks bad; counts per split."""
    excluded: dict[str, int] = {}
    fr = ds.frame_rate
    for name, runs in sel.items():
        for i in list(runs):
            bad = ds.runs[i].bad_spans
            if bad is None or not len(bad):
                continue
            vols = runs[i]
            end = np.asarray(ds.runs[i].onsets, float)[vols] + ds.tr + lag / fr
            start = end - n_frames / fr
            hit = ((start[:, None] < bad[None, :, 1]) & (end[:, None] > bad[None, :, 0])).any(1)
            if hit.any():
                excluded[name] = excluded.get(name, 0) + int(hit.sum())
                if hit.all():
                    del runs[i]
                else:
                    runs[i] = vols[~hit]
    if excluded:
        logger.info("left out %s window(s) whose EEG overlaps a span marked bad (BAD_* annotations)",
                    ", ".join(f"{n} {name}" for name, n in excluded.items()))
    return excluded


#: a voxel's baseline is usable when its mean exceeds this many standard deviations of its signal
_BASELINE_MIN_SNR = 5.0


#: A voxel whose detrended standard deviation is at most this fraction of its mean magnitude (or of the run's median
#: standard deviation) is constant: rounding residue, not signal (e.g. background of a mask that reaches outside the head).
CONSTANT_REL_SD = 1e-6
_warned_constant: set = set()


def _constant_voxels(y: np.ndarray, raw_mean: np.ndarray) -> np.ndarray:
    """Voxels of a detrended span ``y`` (n_volumes, n_voxels) that are constant up to rounding."""
    sd = y.std(0)
    pos = sd[sd > 0]
    ref = float(np.median(pos)) if len(pos) else 0.0
    return sd <= CONSTANT_REL_SD * np.maximum(np.abs(raw_mean), ref)


def _usable_baseline(mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    return np.isfinite(mean) & (mean > _BASELINE_MIN_SNR * sd) & (sd > 0)


def split_targets(ds: PreparedDataset, split: Split, *, unseen_scale: str = "train") -> dict[str, dict[int, np.ndarray]]:
    """Detrended, standardised targets per split and run.

    Parameters
    ----------
    ds : PreparedDataset
    split : Split
    unseen_scale : {"train", "own"}
        How runs without a training span (held-out or validation subjects) are
        scaled. ``"train"`` (default): relative signal change (detrended signal /
        the span's mean intensity) divided by the training runs' median relative
        standard deviation per voxel, so that the span's own variance is not
        used; voxels without a usable baseline fall back to ``"own"``.
        ``"own"``: the span's own standard deviation (the behaviour before
        2026-12-03; flatters R² and MSE across subjects).

    Returns
    -------
    dict
        ``{split_name: {run_index: array, shape (n_selected, n_voxels)}}``, float32.
        A voxel constant over a span (up to rounding: :data:`CONSTANT_REL_SD`) gets targets of exactly 0 there
        (its r is undefined and left out of the medians) instead of its standardised rounding residue; warned
        once per run.
    """
    check_choice(unseen_scale, "unseen_scale", ("train", "own"))
    out: dict[str, dict[int, np.ndarray]] = {k: {} for k in split.selections}
    scales: dict[int, np.ndarray] = {}
    rel_sd: list[np.ndarray] = []  # training runs' sd / mean per voxel (nan without a usable baseline)
    pending: list[tuple[str, int, np.ndarray, np.ndarray]] = []
    for name in ("train", "val", "test"):
        for i, vols in split.selections[name].items():
            run = ds.runs[i]
            if run.bold is None:
                raise Eeg2fmriInputError(f"{run.key}: no BOLD in this run; it cannot be used for training or evaluation.")
            vols = np.asarray(vols)
            if len(vols) and vols[-1] - vols[0] + 1 != len(vols):  # holes (windows left out over bad EEG): detrended
                span = np.asarray(run.bold[vols[0] : vols[-1] + 1], dtype=np.float64)  # over the span, as volumes in time
                y = detrend(span, ds.tr)[vols - vols[0]]
                raw = span[vols - vols[0]]
            else:
                raw = np.asarray(run.bold[vols], dtype=np.float64)
                y = detrend(raw, ds.tr)
            const = _constant_voxels(y, raw.mean(0))
            if const.any():
                y[:, const] = 0.0
                key = (id(ds), run.key)
                if key not in _warned_constant:
                    _warned_constant.add(key)
                    logger.warning("%s: %d of %d voxels of the mask are constant over the %s span (e.g. background or outside the "
                                   "field of view: a mask that reaches beyond the data); their targets are 0 and their r undefined "
                                   "(left out of the medians). %s", run.key, int(const.sum()), const.size, name,
                                   f"The span has {len(vols)} volume(s): too short for the slow voxels to vary; use longer spans."
                                   if len(vols) < 10 else "Leave them out with a mask: the data mask (prepare option mask: data, the default) comes from the "
                                   "first run alone, so voxels constant in another run need a mask of your own (mask: PATH).")
            sd = y.std(0)
            if name == "train":
                scales[i] = np.where(sd > 0, sd, 1.0).astype(np.float32)
                mean = raw.mean(0)
                rel_sd.append(np.where(_usable_baseline(mean, sd) & ~const, sd / np.where(mean > 0, mean, 1.0), np.nan))
            if i in scales:
                out[name][i] = (y / scales[i]).astype(np.float32)
            else:
                pending.append((name, i, y, raw.mean(0)))
    pooled = None
    if rel_sd and unseen_scale == "train":
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-nan voxels
            pooled = np.nanmedian(np.stack(rel_sd), axis=0)
    for name, i, y, mean in pending:
        own = y.std(0)
        own = np.where(own > 0, own, 1.0)
        if pooled is None:
            scale = own
        else:
            ok = np.isfinite(pooled) & (pooled > 0) & _usable_baseline(mean, y.std(0))
            scale = np.where(ok, pooled * np.where(ok, mean, 1.0), own)
            if not ok.all():
                logger.info("%s: %d of %d targets have no usable baseline; scaled by their own standard deviation.", ds.runs[i].key, int((~ok).sum()), ok.size)
        out[name][i] = (y / scale).astype(np.float32)
    return out
