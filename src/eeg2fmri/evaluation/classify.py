"""Decode labels (task condition, a participant variable) from synthesised BOLD, EEG band power or measured BOLD.

Only subject-wise grouped cross-validation is used (leave-one-subject-out, or
``GroupKFold`` with many subjects): no subject contributes to both the
training and the test samples of a fold. Model selection is nested: the
penalty of the logistic regression is chosen by a grid search with an inner
``GroupKFold`` on the outer training subjects only. Significance comes from
a label-permutation null that reruns the whole nested procedure, permuting
labels *within* each subject (when labels vary within subjects, e.g. task
blocks) or the subjects' labels between subjects (when each subject has one
label); the CI of the balanced accuracy comes from a bootstrap over subjects
of the out-of-fold predictions.

:func:`block_samples` turns prepared runs and per-volume labels into samples
(one per block of consecutive volumes with the same label).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from eeg2fmri.datasets.prepared import PreparedDataset
from eeg2fmri.utils.logs import logger, progress
from eeg2fmri.utils.validation import Eeg2fmriInputError, check_positive_int

__all__ = ["GroupedLogistic", "classify", "block_samples", "volume_labels_from_events", "participant_labels", "stored_volume_labels",
           "CLASSIFY_SOURCES"]

CLASSIFY_SOURCES = ("synth", "eeg", "bold")
_CS = (0.001, 0.01, 0.1, 1.0, 10.0)


def _balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Balanced accuracy (mean recall over the classes present in ``y_true``), without sklearn's warning for predicted
    classes absent from ``y_true``: routine with subject-wise folds, where a subject need not have every class (sleep
    stages), and already handled by the definition (a user test saw hundreds of these warnings)."""
    import warnings

    from sklearn.metrics import balanced_accuracy_score

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true", category=UserWarning)
        warnings.filterwarnings("ignore", message="A single label was found", category=UserWarning)  # (one subject, one class)
        return float(balanced_accuracy_score(y_true, y_pred))


class GroupedLogistic(ClassifierMixin, BaseEstimator):
    """Standardise + L2 logistic regression whose penalty is chosen by grouped inner CV (scikit-learn estimator).

    liblinear solver (one-vs-rest for more than two classes), balanced class
    weights; ``fit(X, y, groups)`` runs the inner ``GroupKFold`` on ``groups``
    (without groups every sample is its own group).

    Parameters
    ----------
    Cs : sequence of float
        Inverse penalties searched.
    inner_splits : int
        Folds of the inner ``GroupKFold`` (capped at the number of groups).
    random_state : int
        Seed of liblinear's coordinate order.

    Attributes
    ----------
    classes_ : array
    best_C_ : float
    estimator_ : sklearn.pipeline.Pipeline
    """

    def __init__(self, Cs: tuple[float, ...] = _CS, inner_splits: int = 3, random_state: int = 0) -> None:
        self.Cs = Cs
        self.inner_splits = inner_splits
        self.random_state = random_state

    def _pipe(self, c: float, n_classes: int = 2, n_samples: int | None = None, n_features: int | None = None):
        from sklearn.decomposition import PCA
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        # more features than samples (voxel BOLD: thousands of voxels, tens of blocks): the L2-penalised solution lies in the
        # span of the (standardised, centred) training samples, so fitting on their principal-component scores gives the same
        # decision function at a fraction of the cost (a user test: 15 min for 20 permutations on 4,300 voxels)
        span = (PCA(svd_solver="full"),) if n_samples is not None and n_features is not None and n_features > n_samples else ()
        return make_pipeline(StandardScaler(), *span,
                             LogisticRegression(C=c, class_weight="balanced", solver="liblinear" if n_classes <= 2 else "lbfgs",
                                                max_iter=2000, random_state=self.random_state))

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> GroupedLogistic:
        """Fit on ``X`` (n_samples, n_features), labels ``y`` (n_samples,), choosing C by inner grouped CV."""
        from sklearn.model_selection import GroupKFold
        from sklearn.utils.multiclass import check_classification_targets
        from sklearn.utils.validation import check_X_y

        X, y = check_X_y(X, y)
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        self.n_features_in_ = X.shape[1]
        k = len(self.classes_)
        if k < 2:
            raise ValueError(f"GroupedLogistic: expected at least 2 classes in y, got 1 class ({self.classes_[0]!r}).")
        groups = np.arange(len(y)) if groups is None else np.asarray(groups)
        n_g = len(np.unique(groups))
        cs = list(self.Cs)
        if len(cs) > 1 and n_g >= 2:
            # inner out-of-fold predictions pooled over the folds, scored once per C (a fold may hold one class only)
            oof = np.empty((len(cs), len(y)), dtype=y.dtype)
            done = np.zeros(len(y), bool)
            for tr, te in GroupKFold(n_splits=min(int(self.inner_splits), n_g)).split(X, y, groups):
                if len(np.unique(y[tr])) < 2:
                    continue
                done[te] = True
                for j, c in enumerate(cs):
                    oof[j, te] = self._pipe(c, k, len(tr), X.shape[1]).fit(X[tr], y[tr]).predict(X[te])
            scores = np.array([_balanced_accuracy(y[done], oof[j, done]) if done.any() and len(np.unique(y[done])) > 1 else 0.0
                               for j in range(len(cs))])
            self.best_C_ = float(cs[int(np.argmax(scores))])
        else:
            self.best_C_ = float(cs[0])
        self.estimator_ = self._pipe(self.best_C_, k, len(X), X.shape[1]).fit(X, y)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        from sklearn.utils.validation import check_array, check_is_fitted

        check_is_fitted(self, "estimator_")
        X = check_array(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but GroupedLogistic is expecting {self.n_features_in_} features as input.")
        return self.estimator_.predict(X)


def _outer_cv(groups: np.ndarray, n_splits: int | None):
    from sklearn.model_selection import GroupKFold, LeaveOneGroupOut

    n_g = len(np.unique(groups))
    if n_splits is None or n_splits >= n_g:
        return LeaveOneGroupOut(), "leave-one-subject-out"
    return GroupKFold(n_splits=n_splits), f"GroupKFold({n_splits})"


def _cv_predict(X: np.ndarray, y: np.ndarray, groups: np.ndarray, cv, est: GroupedLogistic) -> tuple[np.ndarray, list[float]]:
    from sklearn.base import clone

    pred = np.empty_like(y)
    cs = []
    for tr, te in cv.split(X, y, groups):
        if len(np.unique(y[tr])) < 2:
            pred[te] = y[tr][0]
            continue
        m = clone(est).fit(X[tr], y[tr], groups[tr])
        pred[te] = m.predict(X[te])
        cs.append(m.best_C_)
    return pred, cs


def _permute(y: np.ndarray, groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Labels permuted within each group, or between groups when every group has one label."""
    out = y.copy()
    ug = np.unique(groups)
    if all(len(np.unique(y[groups == g])) == 1 for g in ug):
        lab = np.array([y[groups == g][0] for g in ug])
        perm = rng.permutation(lab)
        for g, lbl in zip(ug, perm):
            out[groups == g] = lbl
        return out
    for g in ug:
        i = np.flatnonzero(groups == g)
        out[i] = y[rng.permutation(i)]
    return out


def classify(
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    *,
    n_splits: int | None = None,
    n_permutations: int = 100,
    n_boot: int = 1000,
    estimator: GroupedLogistic | None = None,
    random_state: int = 0,
    progress_bar: bool = True,
) -> dict[str, Any]:
    """Subject-wise cross-validated balanced accuracy with a permutation null and a bootstrap CI.

    Parameters
    ----------
    X : array, shape (n_samples, n_features)
    y : array, shape (n_samples,)
        Labels (any hashable values; at least 2 classes).
    groups : array, shape (n_samples,)
        Subject of every sample (at least 2 subjects; 3+ for nested selection).
    n_splits : int | None
        Outer folds (``GroupKFold``); ``None`` or >= the number of subjects:
        leave-one-subject-out.
    n_permutations : int
        Label permutations (0: none); each reruns the nested CV.
    n_boot : int
        Bootstrap resamples of subjects for the CI.
    estimator : GroupedLogistic | None
        Default ``GroupedLogistic(random_state=random_state)``.
    random_state : int
    progress_bar : bool

    Returns
    -------
    dict
        ``balanced_accuracy``, ``ci95`` (subject bootstrap), ``p_value``
        (``(1 + #null >= observed) / (1 + n_permutations)``), ``null_mean``,
        ``null_95`` (95th percentile of the null), ``chance`` (1 / n_classes),
        ``per_subject`` balanced accuracy (``per_subject_measure``), ``cv``, ``chosen_C``, ``n_samples``,
        ``n_subjects``, ``classes``, ``permutation`` (how labels were permuted).
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    groups = np.asarray(groups)
    if X.ndim != 2 or len(X) != len(y) or len(y) != len(groups):
        raise Eeg2fmriInputError(f"classify: expected X (n_samples, n_features), y and groups of n_samples, got {X.shape}, {y.shape}, {groups.shape}.")
    if not np.isfinite(X).all():
        raise Eeg2fmriInputError("classify: X has non-finite values; drop or impute them first.")
    classes = np.unique(y)
    if len(classes) < 2:
        raise Eeg2fmriInputError(f"classify: expected at least 2 classes, got {classes.tolist()}; check the labels (events or participants column).")
    n_g = len(np.unique(groups))
    if n_g < 3:
        raise Eeg2fmriInputError(f"classify: expected samples from at least 3 subjects (subject-wise CV with nested selection), got {n_g}; add subjects.")
    n_permutations = int(n_permutations)
    if n_permutations < 0:
        raise Eeg2fmriInputError(f"classify: expected n_permutations >= 0, got {n_permutations}; pass e.g. 100.")
    n_boot = check_positive_int(n_boot, "n_boot", where="classify")
    est = estimator if estimator is not None else GroupedLogistic(random_state=random_state)
    cv, cv_name = _outer_cv(groups, n_splits)
    pred, cs = _cv_predict(X, y, groups, cv, est)
    obs = float(_balanced_accuracy(y, pred))
    rng = np.random.default_rng(random_state)
    ug = np.unique(groups)
    boots = []
    for _ in range(n_boot):
        pick = rng.choice(ug, len(ug), replace=True)
        idx = np.concatenate([np.flatnonzero(groups == g) for g in pick])
        if len(np.unique(y[idx])) < 2:
            continue
        boots.append(_balanced_accuracy(y[idx], pred[idx]))
    null = []
    within = not all(len(np.unique(y[groups == g])) == 1 for g in ug)
    for _ in progress(range(n_permutations), desc="permutations", total=n_permutations, enabled=progress_bar):
        yp = _permute(y, groups, rng)
        pp, _ = _cv_predict(X, yp, groups, cv, est)
        null.append(_balanced_accuracy(yp, pp))
    null_a = np.asarray(null)
    # the pooled score's measure per subject (user test 20: plain accuracy stood beside the pooled balanced accuracy); for a
    # subject with one class it is that class's recall, its accuracy
    per_subject = {str(g): _balanced_accuracy(y[groups == g], pred[groups == g]) for g in ug}
    return {
        "balanced_accuracy": obs,
        "ci95": [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))] if boots else [float("nan")] * 2,
        "p_value": float((1 + np.sum(null_a >= obs)) / (1 + len(null_a))) if len(null_a) else float("nan"),
        "null_mean": float(null_a.mean()) if len(null_a) else float("nan"),
        "null_95": float(np.percentile(null_a, 95)) if len(null_a) else float("nan"),
        "n_permutations": int(len(null_a)),
        "chance": 1.0 / len(classes),
        "per_subject": per_subject,
        "per_subject_measure": ("balanced accuracy of each subject's held-out predictions (accuracy for a subject with one "
                                "class only)"),
        "cv": cv_name,
        "chosen_C": cs,
        "n_samples": int(len(y)),
        "n_features": int(X.shape[1]),
        "n_subjects": int(n_g),
        "classes": [str(c) for c in classes],
        "permutation": "labels permuted within each subject" if within else "subjects' labels permuted between subjects",
    }


# ------------------------------------------------------------------------------------------------ labels and samples

def _events_candidates(bold, bids_root) -> list:
    """Where a run's ``*_events.tsv`` may be: beside its BOLD file; for fMRIPrep derivatives also under the name without the
    spatial entities (``space``, ``res``, ``desc``, ...) beside it and in the raw BIDS folder of the run."""
    from pathlib import Path

    from eeg2fmri.preprocessing.volumes import bold_stems

    bold = Path(bold)
    name, raw = bold_stems(bold) or (bold.name.split(".", 1)[0], bold.name.split(".", 1)[0])
    out = [bold.with_name(name + "_events.tsv")]
    if raw != name:
        out.append(bold.with_name(raw + "_events.tsv"))
        if bids_root:
            parts = dict(p.split("-", 1) for p in raw.split("_") if "-" in p)
            folder = Path(bids_root) / f"sub-{parts.get('sub', '')}" / (f"ses-{parts['ses']}" if "ses" in parts else "") / "func"
            out.append(folder / (raw + "_events.tsv"))
    if bids_root:  # BIDS inheritance: one events file at the dataset root for every run of a task (task-X[_acq-Y]_events.tsv)
        parts = dict(p.split("-", 1) for p in raw.split("_") if "-" in p)
        if "task" in parts:
            if "acq" in parts:
                out.append(Path(bids_root) / f"task-{parts['task']}_acq-{parts['acq']}_events.tsv")
            out.append(Path(bids_root) / f"task-{parts['task']}_events.tsv")
    return out

def volume_labels_from_events(ds: PreparedDataset, *, baseline: str = "rest") -> dict[int, np.ndarray]:
    """Condition of every volume of every run from the BIDS ``*_events.tsv`` next to its BOLD file, else next to its EEG file.

    A volume takes the ``trial_type`` of the event whose ``[onset, onset +
    duration)`` contains its acquisition start (seconds from the first
    volume of the BOLD file; for an events file beside the EEG, where an
    EEG-fMRI study keeps the events it took from the EEG's markers, seconds
    from the EEG file's first sample, compared with the volumes' onsets in
    the EEG), else ``baseline``; every volume of a run without an events
    file (a rest run) is ``baseline``.

    Returns
    -------
    dict of run index -> array of str, shape (n_volumes,)
    """
    from eeg2fmri.datasets.prepared import recorded_input

    out: dict[int, np.ndarray] = {}
    missing: list[Path] = []
    n_events = n_instant = 0  # (user test 48: an event-related design's zero-duration events labelled no volume)
    from eeg2fmri.io.sync import _match, with_default_markers

    scanner = with_default_markers(ds.config.marker if ds.config is not None else None)
    inputs = (ds.provenance or {}).get("inputs", {}) if isinstance(ds.provenance, dict) else {}
    for i, run in enumerate(ds.runs):
        info = inputs.get(run.key) or {}
        bold = recorded_input(ds, run.key, "bold")
        if bold is None or not str(bold):
            raise Eeg2fmriInputError(f"{run.key}: the prepared dataset records no BOLD file for this run, so its events are unknown; pass labels= per volume.")
        tried = _events_candidates(bold, (ds.provenance or {}).get("bids_root") if isinstance(ds.provenance, dict) else None)
        ev = next((c for c in tried if c.exists()), None)
        first = int((info.get("volumes") or [0])[0])
        t = (first + np.arange(run.n_volumes)) * ds.tr
        if info.get("volume_times_s"):  # a run resampled in time (prepare option resample_tr): its volumes' own times
            t0, step = (float(v) for v in info["volume_times_s"])
            t = t0 + np.arange(run.n_volumes) * step
        eeg = recorded_input(ds, run.key, "eeg")
        beside_eeg = eeg.with_name(eeg.name[: eeg.name.rindex("_eeg")] + "_events.tsv") if eeg is not None and "_eeg" in eeg.name else None
        if ev is None and beside_eeg is not None and beside_eeg.exists():  # (user test 48: kept beside the EEG, never found)
            ev = beside_eeg
            span = info.get("eeg_span_s") or [0.0]
            t = np.asarray(run.onsets, dtype=np.float64) + float(span[0])  # EEG time: the volumes' onsets in the EEG file
        elif beside_eeg is not None:
            tried = [*tried, beside_eeg]
        lab = np.full(run.n_volumes, baseline, dtype=object)
        if ev is None:  # a run without events (e.g. a rest run: ordinary BIDS): every volume is the baseline
            missing.append(tried[0])
            out[i] = lab
            continue
        used = 0
        with open(ev, newline="", encoding="utf-8-sig") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                try:
                    on, du = float(row["onset"]), float(row["duration"])
                except (KeyError, ValueError):
                    continue
                if ev == beside_eeg and any(_match(str(row.get("trial_type") or ""), m) for m in scanner):
                    continue  # (an EEG events file lists the scanner's volume markers too: they are no condition)
                used += 1
                n_instant += du <= 0
                lab[(t >= on) & (t < on + du)] = str(row.get("trial_type") or "event")
        n_events += used
        if ev == beside_eeg and not used:  # the EEG's events file holds the scanner's markers only: no events file of the task
            missing.append(tried[0])
        out[i] = lab
    if missing and len(missing) == len(ds.runs):
        raise Eeg2fmriInputError(f"{missing[0]}: expected the runs' events files (onset, duration, trial_type) beside their BOLD or EEG "
                                 "files, found none for any of the "
                                 f"{len(ds.runs)} run(s); add BIDS *_events.tsv files for the task runs, or classify subjects instead "
                                 "(--labels participants:COLUMN; Python: labels= per volume).")
    if missing:  # a warning: a task run whose events file was not found would be labelled all baseline
        logger.warning("events: %d of %d run(s) have no events file, every volume %r (a rest run; if one is a task run, add its "
                       "*_events.tsv): %s", len(missing), len(ds.runs), baseline, ", ".join(p.name for p in missing))
    if all(len(np.unique(v)) < 2 for v in out.values()) and len(np.unique(np.concatenate(list(out.values())))) < 2:
        if n_events and n_instant == n_events:
            raise Eeg2fmriInputError(f"events: all {n_events} events in the runs' events.tsv files have duration 0 (an event-related "
                                     "design), so no volume lies inside an event; classification labels volumes by conditions that last "
                                     "(task blocks): give the events their durations in events.tsv, or pass labels= per volume "
                                     "(or classify subjects: --labels participants:COLUMN).")
        raise Eeg2fmriInputError("events: every volume has the same condition (no events in the runs' events.tsv); "
                                 "classification needs task blocks (eeg2fmri simulate --task blocks) or a participants column.")
    return out


def stored_volume_labels(ds: PreparedDataset, name: str) -> dict[int, np.ndarray]:
    """Per-volume labels that ``prepare`` stored from the runs' layout (ds003768's ``sleep_stage``).

    Volumes without a label (no epoch, an unscorable epoch) are ``None`` and form no sample.

    Returns
    -------
    dict of run index -> array of object, shape (n_volumes,)
    """
    inputs = (ds.provenance or {}).get("inputs", {}) if isinstance(ds.provenance, dict) else {}
    have = sorted({k for info in inputs.values() for k in ((info or {}).get("volume_labels") or {})})
    out: dict[int, np.ndarray] = {}
    lacking = []
    for i, run in enumerate(ds.runs):
        got = ((inputs.get(run.key) or {}).get("volume_labels") or {}).get(name)
        if got is None:
            lacking.append(run.key)
            out[i] = np.full(run.n_volumes, None, dtype=object)
            continue
        if len(got) != run.n_volumes:
            raise Eeg2fmriInputError(f"{run.key}: the prepared dataset stores {len(got)} {name!r} labels for {run.n_volumes} volumes; "
                                     "prepare the dataset again with this version.")
        out[i] = np.asarray(got, dtype=object)
    if len(lacking) == len(ds.runs):
        raise Eeg2fmriInputError(f"labels: expected 'events', 'participants:COLUMN' or a per-volume label the prepared dataset stores, got "
                                 f"{name!r}; " + (f"this dataset stores {have}." if have else "this dataset stores none (layouts such as "
                                                  "ds003768 give them: its sleep stages are 'sleep_stage').") + " E.g. --labels participants:group.")
    if lacking:
        logger.warning("labels %r: %d of %d run(s) have none (e.g. rest runs without sleep stages); their volumes form no sample: %s",
                       name, len(lacking), len(ds.runs), ", ".join(lacking[:5]))
    n = {}
    for v in out.values():
        for x in v:
            if x is not None:
                n[x] = n.get(x, 0) + 1
    if len(n) < 2:
        raise Eeg2fmriInputError(f"labels {name!r}: expected at least two different labels across the runs' volumes, found {sorted(n) or 'none'}; "
                                 "classification needs two or more classes.")
    return out


def participant_labels(ds: PreparedDataset, column: str, *, participants: str | Path | None = None) -> dict[int, np.ndarray]:
    """A ``participants.tsv`` column as the label of every volume of each subject's runs."""
    path = Path(participants) if participants is not None else Path(str((ds.provenance or {}).get("bids_root", ""))) / "participants.tsv"
    if not path.is_file():
        raise Eeg2fmriInputError(f"{path}: expected a participants.tsv, found none; pass participants= (--participants FILE).")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    if not rows or column not in rows[0]:
        raise Eeg2fmriInputError(f"{path}: expected a column {column!r}, got {list(rows[0]) if rows else []}; pick one of them.")
    by = {str(r.get("participant_id", "")).removeprefix("sub-"): r[column] for r in rows}
    out = {}
    for i, run in enumerate(ds.runs):
        if run.subject not in by or by[run.subject] in ("", "n/a"):
            raise Eeg2fmriInputError(f"{path}: subject {run.subject!r} has no value in column {column!r}; fill it in or leave the subject out.")
        out[i] = np.full(run.n_volumes, by[run.subject], dtype=object)
    return out


def block_samples(
    ds: PreparedDataset,
    labels: dict[int, np.ndarray],
    series: dict[int, np.ndarray],
    *,
    delay_volumes: int = 0,
    max_block: int | None = None,
    standardize: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One sample per block of consecutive volumes with the same label: the mean of a per-volume series.

    Parameters
    ----------
    ds : PreparedDataset
    labels : dict of run index -> array, shape (n_volumes,)
    series : dict of run index -> array, shape (n_volumes, n_features)
        Per-volume features (rows of volumes without a value are NaN and skipped).
    delay_volumes : int
        Volumes by which the series lags the labels (BOLD: the haemodynamic
        delay); block ``[a, b)`` averages rows ``[a + d, b + d)``.
    max_block : int | None
        Split longer blocks into pieces of at most this many volumes.
    standardize : bool
        z-score every feature within each run first (removes per-run offsets).

    Returns
    -------
    X : array, shape (n_samples, n_features)
    y : array, shape (n_samples,)
    groups : array of str, shape (n_samples,)
        Subject of every sample.
    """
    xs, ys, gs = [], [], []
    for i, lab in labels.items():
        s = np.asarray(series[i], dtype=np.float64)
        if standardize:
            ok = np.isfinite(s).all(1)
            mu, sd = s[ok].mean(0), s[ok].std(0)
            s = (s - mu) / np.where(sd > 0, sd, 1.0)
        lab = np.asarray(lab)
        edges = np.flatnonzero(lab[1:] != lab[:-1]) + 1  # (None: a volume without a label, in no sample)
        for a, b in zip(np.r_[0, edges], np.r_[edges, len(lab)]):
            step = (b - a) if max_block is None else max(1, int(max_block))
            if lab[a] is None:
                continue
            for a2 in range(a, b, step):
                b2 = min(b, a2 + step)
                rows = s[min(a2 + delay_volumes, len(s)) : min(b2 + delay_volumes, len(s))]
                rows = rows[np.isfinite(rows).all(1)]
                if len(rows) < max(1, (b2 - a2) // 2):
                    continue
                xs.append(rows.mean(0))
                ys.append(lab[a2])
                gs.append(ds.runs[i].subject)
    if not xs:
        raise Eeg2fmriInputError("classify: no block has enough volumes with features; check the labels and the delay.")
    return np.stack(xs), np.asarray(ys), np.asarray(gs)
