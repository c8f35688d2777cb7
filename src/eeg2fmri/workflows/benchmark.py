"""Train and evaluate several models under one protocol, and rank them in a leaderboard.

:func:`run_benchmark` fits every listed model with
:func:`eeg2fmri.training.fit_model` on each fold of a protocol
(``within``: each run's later span held out; ``loso``: every subject held out
in turn; ``kfold``: subject folds; ``cross``: train on one dataset, test on
another), scores them together on the same test windows
(:func:`~eeg2fmri.evaluation.protocol.evaluate_models`), merges the folds and
builds a leaderboard that always holds the reference ``ridge_hrf``, the
subject-mean baseline and the time-shifted null next to the models, with
CIs, the paired comparison with ``ridge_hrf``, training time and parameter
count.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from typing import Any

import numpy as np

from eeg2fmri.datasets.prepared import PreparedDataset, data_fingerprint, select_subjects
from eeg2fmri.datasets.targets import make_split, split_targets
from eeg2fmri.evaluation.protocol import (
    BASELINE,
    DEFAULT_N_BOOT,
    PHYSIOLOGY,
    REFERENCE,
    STIMULUS,
    _fit_reference,
    _OnView,
    evaluate_models,
    merge_results,
    physiology_model,
    physiology_notes,
    physiology_row,
)
from eeg2fmri.evaluation.reference import bandpower_view
from eeg2fmri.plotting.report import roi_at_chance
from eeg2fmri.utils.logs import logger, progress
from eeg2fmri.utils.parallel import n_cores
from eeg2fmri.utils.validation import (
    Eeg2fmriInputError,
    check_choice,
    check_like,
    check_positive_int,
)

__all__ = ["PROTOCOLS", "count_parameters", "fold_executor", "format_leaderboard", "leaderboard_rows", "run_benchmark"]

PROTOCOLS = ("within", "loso", "kfold", "cross")

_COLUMNS = [
    ("name", "model"),
    ("median_r", "median r"),
    ("median_r_ci", "95% CI"),
    ("diff_vs_reference", "Δr vs ridge_hrf"),
    ("diff_ci", "Δ 95% CI"),
    ("p_value", "p"),
    ("null_median_r", "shifted-null r"),
    ("r2", "R²"),
    ("rmse", "RMSE"),
    ("mae", "MAE"),
    ("ssim", "SSIM"),
    ("psnr", "PSNR dB"),
    ("calhas_rmse", "calhas_rmse†"),
    ("calhas_ssim", "calhas_ssim†"),
    ("coverage_80", "80% cover"),
    ("nll_laplace", "NLL"),
    ("fraction_of_oracle", "÷ oracle"),
    ("fit_seconds", "fit s"),
    ("n_params", "params"),
]


def count_parameters(model: Any) -> int | None:
    """Number of learned parameters.

    A model with ``n_fitted_values()`` (the flagship: the network's parameters unless its blend weight leaves
    it out, plus its closed-form linear path) says itself. Torch modules (or predictors wrapping one in
    ``.module``): the sum of ``numel`` over parameters. Closed-form models: the size of the fitted
    coefficients and intercepts (``ridge_hrf``) or of the stored means
    (``mean``). ``None`` when unknown.
    """
    mod = getattr(model, "module", model)
    if callable(getattr(mod, "n_fitted_values", None)):  # a model that counts what its predictions use (the flagship)
        return int(mod.n_fitted_values())
    params = getattr(mod, "parameters", None)
    if callable(params) and not hasattr(mod, "coef_"):
        try:
            return int(sum(p.numel() for p in params()))
        except TypeError:
            pass
    if hasattr(model, "coef_"):
        comp = getattr(model, "components_", None)  # a factored ridge: its components too (values its predictions use)
        return int(np.size(model.coef_) + np.size(getattr(model, "intercept_", 0)) + (0 if comp is None else np.size(comp)))
    if hasattr(model, "means_"):
        return int(sum(np.size(v) for v in model.means_.values()) + np.size(getattr(model, "grand_mean_", 0)))
    state = getattr(model, "state_dict", None)
    if callable(state):
        return int(sum(np.size(v) for v in state().values()))
    return None


#: Split options that a protocol sets itself for each fold (so a benchmark cannot take them).
_FOLD_OPTIONS = {"within": (), "loso": ("test_subjects", "n_folds", "fold"), "kfold": ("test_subjects", "n_folds", "fold"), "cross": ()}
#: The only split options the cross-dataset protocol uses.
_CROSS_OPTIONS = ("n_frames", "lag")


def _benchmark_train_config(train_config: dict[str, Any] | None, protocol: str, names: list[str]) -> tuple[dict | None, dict, list | None]:
    """Check a training config given to a benchmark; return (what fit_model takes, split options, subjects).

    A benchmark takes its data from its dataset argument and its models from
    ``models``/``hparams``; of a train config it uses ``seed``, ``optimizer``,
    ``loss`` and ``trainer`` (torch models), ``data.subjects`` and the
    ``split`` options that its protocol does not set itself. Anything else
    would be ignored, so it is refused.
    """
    if train_config is None:
        return None, {}, None
    from eeg2fmri.models.base import get_model_class
    from eeg2fmri.training.config import closed_form_unused, resolve_config

    where = "train_config"
    if not isinstance(train_config, dict):
        raise Eeg2fmriInputError(f"{where}: expected a mapping of config sections, got {type(train_config).__name__}; pass a train config (see docs/training.md).")
    cfg = resolve_config(train_config, source=where, require_model=False)
    if cfg["model"]["name"] is not None or cfg["model"]["hparams"]:
        raise Eeg2fmriInputError(f"{where}: model: expected no model section (a benchmark trains every model of --models), got {cfg['model']!r}; "
                                 "list the models with --models and give their hyperparameters with --hparams.")
    if cfg["out"] is not None:
        raise Eeg2fmriInputError(f"{where}: out: expected none (a benchmark writes into --out), got {cfg['out']!r}; remove it and pass --out.")
    if cfg["tune"]:
        raise Eeg2fmriInputError(f"{where}: tune: expected no search space (a benchmark does not search), got {sorted(cfg['tune'])}; "
                                 "remove it, or search with `eeg2fmri tune` and benchmark the best config's settings.")
    d = cfg["data"]
    for key in ("prepared", "bids"):
        if d[key] is not None:
            raise Eeg2fmriInputError(f"{where}: data.{key}: expected none (a benchmark reads the dataset it is given), got {d[key]!r}; "
                                     "remove it and pass the data as the DATASET argument.")
    raw_split = dict(train_config.get("split") or {})
    if "protocol" in raw_split and raw_split["protocol"] != protocol:
        raise Eeg2fmriInputError(f"{where}: split.protocol: expected the benchmark's protocol {protocol!r}, got {raw_split['protocol']!r}; "
                                 f"remove it or pass --protocol {raw_split['protocol']}.")
    split_options = {k: v for k, v in cfg["split"].items() if k != "protocol"}
    if isinstance(split_options.get("fractions"), list):
        split_options["fractions"] = tuple(split_options["fractions"])
    _check_benchmark_split_options(split_options, protocol, where=f"{where}: split")
    torch_models = [nm for nm in names if getattr(get_model_class(nm), "kind", "torch") != "sklearn"]
    if not torch_models:
        unused = closed_form_unused(cfg, used=())
        if cfg["seed"] != 0:
            unused.insert(0, "seed")
        if unused:
            raise Eeg2fmriInputError(
                f"{where}: {', '.join(unused)}: expected the defaults, since every benchmarked model ({', '.join(names)}) is fitted in closed form "
                "and takes no seed, optimiser, loss or trainer settings; add a torch model to --models or remove these settings."
            )
    # only the sections and keys given: fit_model merges them onto each model's recommended config (user test 31: the
    # resolved sections, every default filled in, replaced the recommended lr, epochs and stopping of every torch model)
    fit_config = {k: copy.deepcopy(train_config[k]) for k in ("seed", "optimizer", "loss", "trainer") if k in train_config}
    return fit_config, split_options, d["subjects"]


def _check_benchmark_split_options(split_options: dict[str, Any], protocol: str, *, where: str = "split_options") -> None:
    """Refuse split options that are not :func:`make_split`'s, and those the protocol sets per fold (or, for ``cross``,
    does not use)."""
    import difflib
    import inspect

    known = [p.name for p in inspect.signature(make_split).parameters.values() if p.kind is p.KEYWORD_ONLY]
    for key in split_options:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            raise Eeg2fmriInputError(f"{where}: unknown split option {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                                     + f"; expected some of {known} (make_split's options).")
    if protocol == "cross":
        bad = sorted(set(split_options) - set(_CROSS_OPTIONS))
        if bad:
            raise Eeg2fmriInputError(f"{where}: expected only {list(_CROSS_OPTIONS)} with protocol 'cross' (the training data is split 80/20 in time "
                                     f"and the test dataset is used whole), got {bad}; remove them.")
        return
    bad = sorted(set(split_options) & set(_FOLD_OPTIONS[protocol]))
    if bad:
        raise Eeg2fmriInputError(f"{where}: expected none of {bad} with protocol {protocol!r} (every fold sets them), got "
                                 f"{ {k: split_options[k] for k in bad} }; remove them (kfold: the number of folds is n_folds= / --n-folds).")


#: Fewer validation windows than this in a fold: benchmark warns (its choices rest on them) and leaves the fold's conformal
#: intervals out of the 80% cover and NLL (user test 10: 3 validation windows gave a coverage of 0.17 at 50 %).
MIN_VAL_WINDOWS = 10


def _warn_small_validation(ds: PreparedDataset, folds: list) -> None:
    """One warning naming the folds whose validation set is tiny (a short validation subject under val_subjects: next)."""
    small = []
    for sp in folds:
        n_val = sp.n_samples("val")
        if n_val < MIN_VAL_WINDOWS:
            val_subs = sorted({ds.runs[i].subject for i, v in sp.selections["val"].items() if len(v)})
            small.append(f"test {', '.join(sp.test_subjects) or '-'}: {n_val} validation window(s)"
                         + (f" of subject {', '.join(val_subs)}" if val_subs else ""))
    if small:
        logger.warning("benchmark: %d fold(s) validate on fewer than %d windows (%s): early stopping and every validation choice "
                       "rest on them, and their conformal intervals are left out of the 80%% cover and NLL columns; drop the short "
                       "subject (data.subjects) or validate on the later spans of the training runs (split option val_subjects: spans)",
                       len(small), MIN_VAL_WINDOWS, "; ".join(small))


def _refit_names(refit: dict | None) -> str:
    """``ridge_hrf, eeg2fmri_net's linear path`` for a ``refit`` record; ``none`` without one."""
    if not refit:
        return "none"
    return ", ".join(nm + ("'s linear path" if "linear_refit" in hp else "") for nm, hp in refit.items() if any(hp.values())) or "none"


def refit_hparams(names: list[str], hparams: dict[str, dict] | None) -> dict[str, dict]:
    """``hparams`` with every model that can fit its closed-form part again on training + validation windows told to.

    With a validation subject of its own (split option ``val_subjects: next``) a fold trains on one subject fewer; a
    model with a ``refit`` option (``ridge_hrf``: basis and penalties chosen on the validation subject, then fitted on
    every non-test subject) or ``linear_refit`` (``eeg2fmri_net``'s linear path, after all its validation choices)
    gets that subject back for its closed-form part. The user's own settings of these options win.
    """
    import inspect

    from eeg2fmri.models.base import get_model_class

    out = {k: dict(v or {}) for k, v in (hparams or {}).items()}
    for nm in dict.fromkeys(names):
        try:
            params = inspect.signature(get_model_class(nm).__init__).parameters
        except Eeg2fmriInputError:
            continue
        key = "refit" if "refit" in params else "linear_refit" if "linear_refit" in params else None
        if key is not None:
            out[nm] = {key: True, **out.get(nm, {})}
    return out


def loso_validation(ds: PreparedDataset, protocol: str, split_options: dict) -> dict:
    """``split_options`` with the LOSO validation made explicit: ``val_subjects: next`` (the default with >= 3 subjects:
    each fold validates on the subject after its test subject) unless ``val_subjects`` is given; ``"spans"`` (the later
    span of every training run, the default before 2026-12-06 and with 2 subjects) is dropped here."""
    opts = dict(split_options)
    if protocol != "loso":
        return opts
    if opts.get("val_subjects") == "spans":
        del opts["val_subjects"]
    elif "val_subjects" not in opts and len(ds.subjects) >= 3:
        opts["val_subjects"] = "next"
    elif "val_subjects" not in opts:  # (user test 38: two subjects switched the validation in silence)
        logger.warning("benchmark --protocol loso with %d subjects: no subject is left to validate on whole, so each fold validates on "
                       "the later span of its training subject's runs (the held-out-subject validation needs >= 3 subjects), and every "
                       "group number rests on %d test subject(s): read the intervals and p-values as very uncertain.",
                       len(ds.subjects), len(ds.subjects))
    return opts


def _folds(ds: PreparedDataset, protocol: str, n_folds: int, split_options: dict) -> list:
    val = split_options.get("val_subjects")
    if val == "spans" and protocol == "loso":
        return _folds(ds, protocol, n_folds, {k: v for k, v in split_options.items() if k != "val_subjects"})
    if isinstance(val, str) or (val is not None and protocol == "loso"):
        # val_subjects="next" (LOSO): each fold validates on the subject after its test subject, every other run trains
        # whole -- choices (early stopping, blend, tangent weight) made on an unseen subject, as the test subject is
        if protocol != "loso" or val != "next":
            fix = (f"drop it: protocol {protocol!r} validates on the later span of every training run" if protocol != "loso" else
                   "use one of those (a fixed list of validation subjects cannot serve every fold: each is some fold's test subject)")
            raise Eeg2fmriInputError(f"split option val_subjects: expected 'next' (each fold validates on the subject after its test "
                                     f"subject) or 'spans' (on the later span of every training run) with protocol 'loso', got {val!r} "
                                     f"with protocol {protocol!r}; {fix}.")
        subs = list(ds.subjects)
        if len(subs) < 3:
            raise Eeg2fmriInputError(f"split option val_subjects='next': expected >= 3 subjects (test, validation, training), got {len(subs)}.")
        rest = {k: v for k, v in split_options.items() if k != "val_subjects"}
        return [make_split(ds, "loso", test_subjects=[s], val_subjects=[subs[(i + 1) % len(subs)]], **rest) for i, s in enumerate(subs)]
    if protocol == "within":
        return [make_split(ds, "within", **split_options)]
    if protocol == "loso":
        return [make_split(ds, "loso", test_subjects=[s], **split_options) for s in ds.subjects]
    k = min(n_folds, len(ds.subjects))
    return [make_split(ds, "kfold", n_folds=k, fold=f, **split_options) for f in range(k)]


def run_benchmark(
    ds: PreparedDataset,
    protocol: str,
    models: list[str],
    *,
    hparams: dict[str, dict] | None = None,
    test_ds: PreparedDataset | None = None,
    n_folds: int | None = None,
    split_options: dict | None = None,
    subjects: list[str] | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    random_state: int = 0,
    atlas: Any = None,
    min_channels: int | None = None,
    train_config: dict | None = None,
    model_train_configs: dict[str, dict | None] | None = None,
    progress_bar: bool = False,
    device: str | None = "auto",
    n_jobs: int = 1,
    executor: Any = None,
    extra_metrics: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fit and score models under one protocol; results and a leaderboard.

    Parameters
    ----------
    ds : PreparedDataset
        The (training) dataset.
    protocol : {"within", "loso", "kfold", "cross"}
        ``cross`` trains on ``ds`` and tests on ``test_ds``.
    models : list of str
        Registered model names; ``ridge_hrf`` and ``mean`` are always added.
    hparams : dict | None
        Model name -> hyperparameters for :func:`eeg2fmri.training.fit_model`.
    test_ds : PreparedDataset | None
        Test dataset for ``cross``.
    n_folds : int | None
        Subject folds for ``kfold`` (default 5); only with ``kfold``.
    split_options : dict | None
        Extra :func:`~eeg2fmri.datasets.targets.make_split` options (window, gap,
        fractions, val_subjects); not those each fold sets (``test_subjects``,
        ``n_folds``, ``fold``); with ``cross`` only ``n_frames`` and ``lag``.
    subjects : list of str | None
        Use only these subjects' runs of ``ds`` (every subject when ``None``;
        also taken from ``train_config``'s ``data.subjects``).
    n_boot, random_state, atlas
        As in :func:`~eeg2fmri.evaluation.protocol.evaluate_models`.
    min_channels : int | None
        Fewest common channels accepted for ``cross`` (default: 8 and half the smaller montage; a number given sets the
        fewest alone); only with ``cross``.
    train_config : dict | None
        A training config (see :mod:`eeg2fmri.training.config`): ``seed``,
        ``optimizer``, ``loss`` and ``trainer`` train the torch models
        (:func:`~eeg2fmri.training.fit_model`); ``data.subjects`` and ``split``
        options are used as ``subjects`` and ``split_options``. Sections a
        benchmark would not use (``model``, ``out``, ``tune``, data paths, a
        different ``split.protocol``) are refused; so are optimiser, loss and
        trainer settings when every model is fitted in closed form.
    model_train_configs : dict | None
        Model name -> its own training config (``seed``, ``optimizer``, ``loss``,
        ``trainer``; ``None`` or ``{}``: the generic defaults), used for that model
        instead of ``train_config``'s sections, e.g. each torch model's
        ``recommended_train_config`` (the command's groups: the models of one
        representation share one reference, baseline and null, and each trains
        with its own config). No ``data`` or ``split`` sections: every model of
        a benchmark is scored on the same folds (give those in ``train_config``).
    progress_bar : bool
        Progress bars of evaluation and of the torch models' training (Lightning's
        epoch bars; a ``trainer.progress_bar`` in ``train_config`` wins).
    device : {"auto", "cpu", "cuda"} | "cuda:N" | None
        Where torch models train (the trainer's ``accelerator``/``devices``,
        unless ``train_config`` sets them) and predict for scoring. ``"auto"``:
        a visible GPU, else the CPU.
    n_jobs : int
        Folds run at once, each in its own process with an equal share of the
        cores (``-1``: one per core, at most one per fold). Every fold is
        seeded as in a serial run; with a GPU the processes share it.
    executor : concurrent.futures.Executor | None
        Worker processes to run the folds in, shared with other benchmarks
        running at once (e.g. from :func:`fold_executor`; the command's
        groups of models per input representation); ``n_jobs`` is then
        ignored. The caller shuts it down.

    Returns
    -------
    bench : dict
        ``results`` (merged evaluation results), ``leaderboard`` (rows, best
        first), ``fits`` (per model: seconds summed over folds, parameter
        count, error if it could not be trained, epochs trained per fold
        for torch models), ``protocol``, ``n_folds``,
        ``subjects`` (the training dataset's subjects used),
        ``cross_dataset`` (channel/voxel mapping, for ``cross``),
        ``fold_seconds`` (per fold, in fold order: seconds spent fitting,
        scoring, calibrating and in total, in the process that ran it).
    """
    from eeg2fmri.models import get_model_class, list_models
    from eeg2fmri.models.predictor import resolve_device

    check_like(ds, ("runs", "ch_names"), "ds", "a PreparedDataset", where="run_benchmark",
               fix="prepare_dataset(...) returns one, load_prepared(PATH) reads one from its folder")
    check_choice(protocol, "protocol", PROTOCOLS)
    known = list_models()
    if isinstance(models, str):  # one model by name (it was read as a list of one-letter names)
        models = [models]
    for name in models:
        check_choice(name, "model", known)
    # data with event regressors (prepare option events): the stimulus GLM is a row too -- the baseline of a task design
    names = list(dict.fromkeys(list(models) + [REFERENCE, BASELINE] + ([STIMULUS] if getattr(ds.config, "event_names", None) else [])))
    hparams = dict(hparams or {})
    unknown_h = set(hparams) - set(names)
    if unknown_h:
        raise Eeg2fmriInputError(f"hparams given for model(s) {sorted(unknown_h)} that are not benchmarked; benchmark them with --models or drop them.")
    if n_folds is not None and protocol != "kfold":
        raise Eeg2fmriInputError(f"n_folds: expected only with protocol 'kfold', got n_folds={n_folds} with protocol {protocol!r}; "
                                 "drop --n-folds or use --protocol kfold.")
    if min_channels is not None and protocol != "cross":
        raise Eeg2fmriInputError(f"min_channels: expected only with protocol 'cross' (channels are matched across datasets), got "
                                 f"min_channels={min_channels} with protocol {protocol!r}; drop --min-channels or use --protocol cross.")
    n_folds_given = n_folds is not None
    n_folds = 5 if n_folds is None else n_folds
    given_config = train_config
    train_config, cfg_split, cfg_subjects = _benchmark_train_config(train_config, protocol, names)
    dev = resolve_device(device, where="benchmark: device") if device is not None else None

    def run_settings(given: dict | None, fit_config: dict | None) -> dict | None:
        """The progress bar and device of this benchmark, unless the config given sets them."""
        given_trainer = dict(given.get("trainer") or {}) if isinstance(given, dict) else {}
        if not progress_bar and "progress_bar" not in given_trainer:  # quiet means quiet: no Lightning epoch bars either, unless asked for
            fit_config = dict(fit_config or {})
            fit_config["trainer"] = {**dict(fit_config.get("trainer") or {}), "progress_bar": False}
        if dev is not None and device != "auto" and "accelerator" not in given_trainer:
            trainer = dict((fit_config or {}).get("trainer") or {})
            trainer["accelerator"] = "gpu" if dev.type == "cuda" else "cpu"
            if dev.type == "cuda":
                trainer["devices"] = [dev.index or 0]
            fit_config = {**dict(fit_config or {}), "trainer": trainer}
        return fit_config

    train_config = run_settings(given_config, train_config)
    own_configs: dict[str, dict | None] = {}
    for nm, mcfg in (model_train_configs or {}).items():
        where = f"model_train_configs[{nm!r}]"
        if nm not in names:
            raise Eeg2fmriInputError(f"{where}: expected a benchmarked model ({', '.join(names)}), got {nm!r}; benchmark it with --models or drop it.")
        if mcfg is not None and not isinstance(mcfg, dict):
            raise Eeg2fmriInputError(f"{where}: expected a mapping of config sections, got {type(mcfg).__name__}; pass a train config (see docs/training.md).")
        shared = sorted(set(mcfg or {}) & {"data", "split"})
        if shared:
            raise Eeg2fmriInputError(f"{where}: expected no {' or '.join(shared)} section (every model of a benchmark is scored on the same "
                                     f"folds), got {shared}; give data.subjects and split options in train_config.")
        fit_config = _benchmark_train_config(mcfg, protocol, [nm])[0] if mcfg else None
        own_configs[nm] = run_settings(mcfg, fit_config)
    split_options = dict(split_options or {})
    clash = sorted(k for k in set(split_options) & set(cfg_split) if split_options[k] != cfg_split[k])
    if clash:
        raise Eeg2fmriInputError(f"split_options: expected the same values as train_config's split, got {clash} set differently in both; keep one.")
    split_options = {**cfg_split, **split_options}
    _check_benchmark_split_options(split_options, protocol)
    if subjects is not None and cfg_subjects is not None and list(subjects) != list(cfg_subjects):
        raise Eeg2fmriInputError(f"subjects: expected the same subjects as train_config's data.subjects, got {list(subjects)} and {list(cfg_subjects)}; keep one.")
    if subjects is not None or cfg_subjects is not None:
        ds = select_subjects(ds, subjects if subjects is not None else cfg_subjects,
                             where="subjects" if subjects is not None else "train_config: data.subjects")
    cross_info = None
    if protocol == "cross":
        from eeg2fmri.evaluation.crossdata import MIN_CHANNELS, MIN_FRACTION, cross_dataset_split

        if test_ds is None:
            raise Eeg2fmriInputError("protocol 'cross': expected a test dataset (--test PREPARED_OR_BIDS), got none.")
        train_ds, split, test_view, test_split, cross_info = cross_dataset_split(
            ds, test_ds, min_channels=MIN_CHANNELS if min_channels is None else min_channels,
            min_fraction=MIN_FRACTION if min_channels is None else 0.0, n_frames=split_options.get("n_frames"),
            lag=split_options.get("lag", 0))
        folds = [(train_ds, split, test_view, test_split)]
    else:
        if test_ds is not None:
            raise Eeg2fmriInputError(f"protocol {protocol!r}: a test dataset is only used with protocol 'cross'; drop --test or use --protocol cross.")
        split_options = loso_validation(ds, protocol, split_options)
        if n_folds_given and n_folds > len(ds.subjects):  # (user test 11: --n-folds 5 on 3 subjects ran 3 folds silently)
            raise Eeg2fmriInputError(f"n_folds (--n-folds): expected at most {len(ds.subjects)} (the number of subjects: one or more "
                                     f"subjects per fold), got {n_folds}; pass --n-folds {len(ds.subjects)} or fewer "
                                     "(one subject per fold is leave-one-subject-out: --protocol loso).")
        folds = [(ds, sp, ds, sp) for sp in _folds(ds, protocol, n_folds, split_options)]
        _warn_small_validation(ds, [f[1] for f in folds])
        if folds:
            from eeg2fmri.training.fit import memory_check

            memory_check(ds, folds[0][1].n_frames, "benchmark")  # (user test 47: out of memory after 21 min, nothing said before)
    refit, no_refit = None, []
    if split_options.get("val_subjects") == "next":  # the closed-form parts get the validation subject back once it has chosen
        given = {k: dict(v or {}) for k, v in (hparams or {}).items()}
        hparams = refit_hparams([*names, REFERENCE], hparams)
        refit = {nm: {k: v for k, v in hp.items() if k in ("refit", "linear_refit")} for nm, hp in hparams.items()
                 if any(k in ("refit", "linear_refit") and k not in given.get(nm, {}) for k in hp)}
        nets = [nm for nm in names if getattr(get_model_class(nm), "kind", "torch") != "sklearn"]
        # closed-form models without a refit option (a plugin's) keep the fold's training subjects only, while the reference
        # is refitted with the validation subject too (user test 41: a plugin's Δr biased by about -0.025): said, not hidden
        no_refit = [nm for nm in dict.fromkeys(names) if nm not in (REFERENCE, BASELINE) and nm not in nets and not
                    any(k in ("refit", "linear_refit") for k in hparams.get(nm, {}))]
        if no_refit:
            logger.warning("benchmark: %s %s closed-form without a refit option: fitted on the fold's training subjects only, while %s is "
                           "refitted with the validation subject too (one subject more); give the model a refit hyperparameter (README: "
                           "models of your own) for equal data", ", ".join(no_refit), "is" if len(no_refit) == 1 else "are", REFERENCE)
        if nets and len(ds.subjects) == 3:
            logger.warning("benchmark: with 3 subjects and a validation subject per LOSO fold, the networks (%s) train on one subject in "
                           "each fold (the closed-form parts are refitted on two); validation on the later spans of the training runs "
                           "(split option val_subjects: spans) trains them on two", ", ".join(nets))
    fits: dict[str, dict[str, Any]] = {nm: {"fit_seconds": 0.0, "n_params": None, "error": None} for nm in names}
    for nm in no_refit:
        fits[nm]["no_refit"] = True
    if REFERENCE in fits:  # the reference's penalty rule, for the focal-signal note (user test 56)
        apt = ((hparams or {}).get(REFERENCE) or {}).get("alpha_per_target", "auto")
        fits[REFERENCE]["alpha_per_target"] = apt if isinstance(apt, (bool, str)) else str(apt)
        from eeg2fmri.datasets.prepared import physiology_unregressed

        physio = physiology_unregressed(ds)  # physiological channels beside the EEG, no confounds regressed (user test 57)
        if physio:
            fits[REFERENCE]["physiology_unregressed"] = physio
    jobs = check_positive_int(n_jobs, "n_jobs", where="benchmark") if n_jobs != -1 else _n_cores()
    jobs = 2 if executor is not None else min(jobs, len(folds))  # with an executor: never in this process
    if extra_metrics:  # checked here; each worker imports "module:function" values itself (functions need not pickle)
        from eeg2fmri.evaluation.protocol import _check_extra_metrics
        from eeg2fmri.workflows.evaluate import resolve_metrics

        if not isinstance(extra_metrics, dict):
            raise Eeg2fmriInputError(f"extra_metrics: expected a mapping name -> 'module:function', got {type(extra_metrics).__name__}.")
        taken = sorted(set(extra_metrics) & LEADERBOARD_FIELDS)
        if taken:  # (a review: --metric name=... replaced the model's name in its row)
            raise Eeg2fmriInputError(f"extra_metrics: expected names the leaderboard does not use, got {taken}; rename them.")
        extra_metrics = {k: absolute_metric(v) for k, v in extra_metrics.items()}
        if n_jobs != 1 or executor is not None:
            funcs = sorted(k for k, v in extra_metrics.items() if not isinstance(v, str))
            if funcs:
                raise Eeg2fmriInputError(f"extra_metrics{funcs}: expected 'module:function' (or 'file.py:function') with n_jobs != 1: the "
                                         "worker processes import it; got a function. Pass its module and name, or n_jobs=1.")
        _check_extra_metrics(resolve_metrics(extra_metrics))
    # the physiology-only row: where every run holds the same physiological regressors (prepare stores them from the ECG /
    # belt channels or BIDS physio files), a ridge from them alone, scored on the same test windows (user test 57 #3)
    physiology, no_physiology_row = physiology_row(ds, protocol)
    if no_physiology_row is not None and REFERENCE in fits:  # (a review: the row went in silence)
        fits[REFERENCE]["physiology_row"] = no_physiology_row
    fold_args = dict(names=names, hparams=hparams, train_config=train_config, model_train_configs=own_configs, atlas=atlas, n_boot=n_boot,
                     physiology=physiology,
                     random_state=random_state, extra_metrics=extra_metrics or None,
                     progress_bar=progress_bar and jobs == 1, device=None if dev is None else str(dev))
    parts = []
    fold_seconds: list[dict[str, float]] = []
    if jobs == 1:
        skip: set[str] = set()
        for k, fold in enumerate(folds):
            part, fold_fits = _run_fold(k, len(folds), *fold, skip=skip, **fold_args)
            fold_seconds.append(part.pop("fold_seconds"))
            _add_fits(fits, fold_fits)
            skip = {nm for nm, f in fits.items() if f["error"]}
            parts.append(part)
    else:
        import concurrent.futures as cf

        own = executor is None
        ex = fold_executor(jobs) if own else executor
        try:
            futs = {ex.submit(_run_fold, k, len(folds), *fold, skip=set(), **fold_args): k for k, fold in enumerate(folds)}
            if hasattr(ex, "done_submitting"):  # a shared pool taking groups in turn (OrderedSubmission)
                ex.done_submitting()
            done: dict[int, tuple] = {}
            for fut in progress(cf.as_completed(futs), desc="benchmark folds", total=len(futs), enabled=progress_bar and own):
                done[futs[fut]] = fut.result()
        finally:
            if own:
                ex.shutdown(cancel_futures=True)
        for k in range(len(folds)):  # in fold order, as a serial run merges them
            part, fold_fits = done[k]
            fold_seconds.append(part.pop("fold_seconds"))
            _add_fits(fits, fold_fits)
            parts.append(part)
    results = merge_results(parts)
    if cross_info is not None:
        results["cross_dataset"] = cross_info
    rows = leaderboard_rows(results, fits)
    if getattr(ds.config, "event_names", None):  # which rows read the stimulus markers (user test 51: the table did not say)
        for r in rows:
            base = str(r["name"]).split(" ")[0]
            eeg_only = base == REFERENCE and ((hparams or {}).get(REFERENCE) or {}).get("inputs") == "eeg"
            if r.get("role") in ("model", "reference") and base in (REFERENCE, STIMULUS, "eeg2fmri_net") and not eeg_only:
                if base == "eeg2fmri_net" and not any(float(w) > 0 for w in (r.get("ridge_weight") or [])):
                    continue  # no linear path, or a blend weight of 0 in every fold: the network alone reads no events
                r["reads_events"] = "its linear path" if base == "eeg2fmri_net" else "yes"
    retrained = sorted(nm for nm, f in fits.items() if any(e is not None for e in f.get("refit_epochs", [])))
    networks = ("the networks train on the other subjects" if not retrained else
                f"the networks train on the other subjects, and {', '.join(retrained)} again on every non-test subject for the "
                "epochs chosen (optimizer.refit)")
    from eeg2fmri.models._persist import json_hparams
    from eeg2fmri.models.base import effective_hparams

    # every hyperparameter each model was built with, defaults included (user test 41: a leaderboard recorded none); values
    # JSON cannot hold (a class as a default) are left out
    used = {nm: json_hparams({k: v for k, v in effective_hparams(nm, (hparams or {}).get(nm)).items() if k != "spec"})[0]
            for nm in dict.fromkeys([*names, REFERENCE, BASELINE])}
    return {"protocol": protocol, "n_folds": len(folds), "models": names, "subjects": list(ds.subjects), "results": results, "leaderboard": rows,
            "fits": fits, "cross_dataset": cross_info, "fold_seconds": fold_seconds, "model_hparams": used,
            "data_fingerprint": data_fingerprint(ds), **({"refit": refit} if refit else {}),
            **({"loso_validation": (f"each fold's next subject, held out whole (refitted on training + validation windows with the "
                                    f"choices made there: {_refit_names(refit)}; {networks})"
                                    if split_options.get("val_subjects") == "next" else "the later span of every training run")}
               if protocol == "loso" else {})}



#: Relative training cost of one torch model per input representation (raw windows are the largest inputs).
_REPRESENTATION_COST = {"raw": 3.0, "stft": 2.0, "bandpower": 1.0}
#: ... and, on a GPU, of models whose folds run longer than their input suggests there: the flagship's linear path (its
#: ridges, closed form on the CPU) does not speed up on a GPU as the convolutional networks do, and its early stopping ran
#: one fold to 112 epochs where the others took 39-53 (session 37's GPU leaderboard: its longest fold outlasted
#: calhas2022's, whose group was started before it). On the CPU calhas2022's folds take 4x the flagship's.
_MODEL_COST_GPU = {"eeg2fmri_net": 2.5}


def group_cost(representation: str, models: list[str], device: str | None = None) -> float:
    """A rough relative cost of fitting a group of models on one fold (for ordering work, not for reporting).

    Torch models count by their input representation (raw > STFT > band power) or, on a GPU
    (``device`` "cuda..."), the flagship by its own (:data:`_MODEL_COST_GPU`); closed-form models
    (``ridge_hrf``, ``mean``) count as nearly free.
    """
    from eeg2fmri.models import get_model_class

    own = _MODEL_COST_GPU if str(device or "").startswith("cuda") else {}
    torch_models = [m for m in models if getattr(get_model_class(m), "kind", "torch") != "sklearn"]
    return (sum(own.get(m, _REPRESENTATION_COST.get(representation, 1.0)) for m in torch_models)
            + 0.01 * (len(models) - len(torch_models)))


def _warm(device: str | None) -> int:
    """A worker's first task: import what a fold needs (torch, Lightning, the models, the scoring) and start CUDA where it
    will be used, so that its first fold does not wait for them. Returns the worker's process id."""
    import os

    import eeg2fmri.training  # noqa: F401  (torch, Lightning, the model registry)
    import eeg2fmri.workflows.evaluate  # noqa: F401

    if device != "cpu":
        import torch

        if torch.cuda.is_available():
            torch.zeros(1, device="cuda" if device in (None, "auto") else device)
    return os.getpid()


def warm_executor(executor: Any, n_workers: int, *, device: str | None = None) -> None:
    """Start the workers of ``executor`` now (one :func:`_warm` task per worker, not waited for): they import and start
    CUDA while this process prepares the data."""
    n = _n_cores() if int(n_workers) == -1 else int(n_workers)
    for _ in range(max(1, min(n, int(getattr(executor, "_max_workers", n) or n)))):
        executor.submit(_warm, device)


def stop_executor(executor: Any) -> None:
    """Cancel the pending tasks of a process pool and end its workers (their running folds included), without waiting."""
    # workers first: the pool then marks every unfinished task broken (shut down first, a running task's future stayed
    # pending for ever)
    for proc in list((getattr(executor, "_processes", None) or {}).values()):
        proc.terminate()
    executor.shutdown(wait=False, cancel_futures=True)


class OrderedSubmission:
    """One executor shared by several submitters that take turns: turn ``i`` submits once turns ``< i`` are done submitting.

    ``ProcessPoolExecutor`` runs work in submission order, so ordering the submitters
    (e.g. the costliest group of models first) orders the work, whatever the threads'
    timing. Each submitter gets :meth:`turn` ``(i)``, submits through it and calls
    ``done_submitting()`` (idempotent) when it has submitted everything -- also when it
    fails before submitting anything (e.g. in a ``finally``), or the later turns wait forever.
    """

    def __init__(self, executor: Any) -> None:
        import threading

        self._executor = executor
        self._next = 0
        self._cv = threading.Condition()

    def turn(self, i: int) -> _Turn:
        return _Turn(self, i)


class _Turn:
    def __init__(self, owner: OrderedSubmission, i: int) -> None:
        self._owner, self._i = owner, i

    def submit(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        o = self._owner
        with o._cv:
            o._cv.wait_for(lambda: o._next >= self._i)
        return o._executor.submit(fn, *args, **kwargs)

    def done_submitting(self) -> None:
        """Hand the turn on (waits for this turn first, so that a submitter that failed early cannot skip it)."""
        o = self._owner
        with o._cv:
            o._cv.wait_for(lambda: o._next >= self._i)
            if o._next == self._i:
                o._next += 1
                o._cv.notify_all()


def fold_executor(n_jobs: int) -> Any:
    """Worker processes for benchmark folds, each with an equal share of this process's cores.

    Parameters
    ----------
    n_jobs : int
        Processes (``-1``: one per core).

    Returns
    -------
    concurrent.futures.ProcessPoolExecutor
        Spawned workers (so CUDA can be used in them); shut it down when done.
    """
    import concurrent.futures as cf
    import multiprocessing as mp

    jobs = check_positive_int(n_jobs, "n_jobs", where="benchmark") if n_jobs != -1 else _n_cores()
    threads = max(1, _n_cores() // jobs)
    logger.info("benchmark: folds in %d processes of %d thread(s) each", jobs, threads)
    from eeg2fmri.utils.plugins import named_plugins

    # the plugins this process imported by name (EEG2FMRI_PLUGINS, or a --train-config's plugins: user test 41, whose
    # workers did not know the config's model), imported again in every worker
    plugins = [str(p["plugin"]) for p in named_plugins()]
    return cf.ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"), initializer=_worker_init, initargs=(threads, plugins))


def _n_cores() -> int:
    """Cores this process may run on (its affinity, e.g. under ``taskset``), else ``os.cpu_count()``."""
    return n_cores()


def _worker_init(threads: int, plugins: list[str] | None = None) -> None:
    """A benchmark worker process: its share of the cores for torch and BLAS, and the plugins the main process imported."""
    import torch

    from eeg2fmri.utils.plugins import import_plugin

    for spec in plugins or ():
        import_plugin(spec, source="benchmark worker (a plugin the main process imported)")

    torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    except ImportError:  # pragma: no cover - scikit-learn brings threadpoolctl
        pass


def _fold_calibration(fitted: dict[str, Any], ds: PreparedDataset, split, targets: dict, fits: dict[str, dict[str, Any]]) -> None:
    """Per-voxel conformal intervals of every model on this fold (validation windows), coverage and NLL on its test windows."""
    from eeg2fmri.evaluation.uncertainty import conformal_coverage

    if not split.selections.get("val"):
        return
    if split.n_samples("val") < MIN_VAL_WINDOWS:  # intervals calibrated on a handful of windows: left out of the averages
        logger.info("no conformal calibration on this fold: %d validation windows (< %d)", split.n_samples("val"), MIN_VAL_WINDOWS)
        return
    for nm, model in fitted.items():
        if nm in (BASELINE, PHYSIOLOGY):
            continue
        try:
            if hasattr(model, "view") and hasattr(model, "windows"):  # the reference on band-power windows of the same volumes
                c = conformal_coverage(model.model, model.view, model.split, split_targets(model.view, model.split))
            else:
                c = conformal_coverage(model, ds, split, targets)
        except (Eeg2fmriInputError, ValueError) as err:
            logger.info("%s: no conformal calibration on this fold (%s)", nm, err)
            continue
        fits[nm]["calibration_folds"] = [{"levels": c["levels"], "coverage": c["coverage"], "nll_laplace": c["nll_laplace"],
                                          "n_test": c["n_test"]}]


def _calibration_summary(folds: list[dict[str, Any]]) -> dict[str, float]:
    """Coverage of the 80% intervals and Laplace NLL, averaged over folds weighted by their test windows."""
    n = np.array([f["n_test"] for f in folds], dtype=float)
    if not len(folds) or n.sum() <= 0 or 0.8 not in folds[0]["levels"]:
        return {}
    i = folds[0]["levels"].index(0.8)
    return {"coverage_80": float(np.dot(n, [f["coverage"][i] for f in folds]) / n.sum()),
            "nll_laplace": float(np.dot(n, [f["nll_laplace"] for f in folds]) / n.sum())}


def _add_fits(total: dict[str, dict[str, Any]], fold: dict[str, dict[str, Any]]) -> None:
    for nm, f in fold.items():
        t = total[nm]
        if f.get("calibration_folds"):
            t.setdefault("calibration_folds", []).extend(f["calibration_folds"])
        t["fit_seconds"] += f["fit_seconds"]
        t["n_params"] = t["n_params"] if t["n_params"] is not None else f["n_params"]
        t["error"] = t["error"] or f["error"]
        if "epochs" in f:
            t.setdefault("epochs", []).extend(f["epochs"])
        if "ridge_weight" in f:
            t.setdefault("ridge_weight", []).extend(f["ridge_weight"])
        if "tangent_weight" in f:
            t.setdefault("tangent_weight", []).extend(f["tangent_weight"])
        if "slow_gain" in f:
            t.setdefault("slow_gain", []).extend(f["slow_gain"])
        if "at_epoch_limit" in f:
            t.setdefault("at_epoch_limit", []).extend(f["at_epoch_limit"])
        if "refit_epochs" in f:
            t.setdefault("refit_epochs", []).extend(f["refit_epochs"])
        if f.get("calibration_in_sample"):
            t["calibration_in_sample"] = True


def _run_fold(k: int, n_folds: int, train_ds: PreparedDataset, split, eval_ds: PreparedDataset, eval_split, *, names: list[str],
              hparams: dict, train_config: dict | None, atlas: Any, n_boot: int, random_state: int, progress_bar: bool,
              device: str | None, skip: set[str], model_train_configs: dict[str, dict | None] | None = None,
              extra_metrics: dict[str, Any] | None = None, physiology: bool = False) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Fit ``names`` on one fold's training windows and score them on its test windows (in this or a worker process);
    ``physiology``: also the physiology-only ridge (:func:`~eeg2fmri.evaluation.protocol.physiology_model`)."""
    from eeg2fmri.models.predictor import place_model
    from eeg2fmri.training import fit_model

    fits: dict[str, dict[str, Any]] = {nm: {"fit_seconds": 0.0, "n_params": None, "error": None} for nm in names}
    t_fold = time.perf_counter()
    targets = split_targets(train_ds, split)
    eval_targets = targets if eval_ds is train_ds else split_targets(eval_ds, eval_split)
    fitted: dict[str, Any] = {}
    for nm in names:
        if nm in skip:
            continue
        t0 = time.perf_counter()
        if nm == REFERENCE and train_ds.representation != "bandpower":
            # ridge_hrf on band-power windows derived from the same STFT/raw data (see evaluation.reference)
            model, reason = _fit_reference(train_ds, split, targets, REFERENCE, hparams.get(nm))
            if model is not None and eval_ds is not train_ds:
                try:
                    view, vsplit = bandpower_view(eval_ds, eval_split)
                except ValueError as err:
                    model, reason = None, f"no band-power windows for the test data: {err}"
                else:
                    model = _OnView(model.model, view, vsplit, model.note)
            if model is None:
                fits[nm]["error"] = reason
                continue
            fits[nm]["fit_seconds"] += time.perf_counter() - t0
            fits[nm]["n_params"] = count_parameters(model.model)
            fitted[nm] = model
            continue
        try:
            own = model_train_configs or {}
            with _epoch_limit_said_once():  # the leaderboard's notes name the folds (user test 38: said per fold, then again)
                res = fit_model(train_ds, split, nm, hparams.get(nm), targets=targets, train_config=own[nm] if nm in own else train_config)
        except Eeg2fmriInputError as err:
            if nm == BASELINE:
                raise
            fits[nm]["error"] = str(err)
            logger.warning("%s could not be trained: %s", nm, err)
            continue
        fits[nm]["fit_seconds"] += float(getattr(res, "fit_seconds", time.perf_counter() - t0))
        if isinstance(getattr(res, "info", None), dict) and "epochs" in res.info:
            fits[nm]["epochs"] = [int(res.info["epochs"])]
            fits[nm]["at_epoch_limit"] = [bool(res.info.get("at_epoch_limit", False))]
        if isinstance(getattr(res, "info", None), dict) and isinstance(res.info.get("refit"), dict):  # train config optimizer.refit
            fits[nm]["refit_epochs"] = [res.info["refit"].get("epochs")]  # None: skipped (e.g. the flagship's network unused)
        if isinstance(getattr(res, "info", None), dict) and isinstance(res.info.get("ridge_weight"), (int, float)):
            fits[nm]["ridge_weight"] = [float(res.info["ridge_weight"])]  # the flagship's stacked linear path's weight
            if isinstance(res.info.get("tangent_weight"), (int, float)):  # its linear path's share of the tangent-space ridge
                fits[nm]["tangent_weight"] = [float(res.info["tangent_weight"])]
        if isinstance(getattr(res, "info", None), dict) and "slow_gain" in res.info:  # ridge_hrf on data with slow_potential
            fits[nm]["slow_gain"] = [res.info["slow_gain"]]
        fits[nm]["n_params"] = count_parameters(res.model)
        if (hparams.get(nm) or {}).get("refit") is True and getattr(res.model, "kind", "torch") == "sklearn" and nm != REFERENCE:
            from eeg2fmri.evaluation.uncertainty import held_out_residuals_of

            if held_out_residuals_of(res.model) is None:  # refitted on its validation windows, keeping no residuals from before
                fits[nm]["calibration_in_sample"] = True
        fitted[nm] = res.model
    if physiology:
        model, reason = physiology_model(train_ds, split, targets)
        if model is None:  # (every run was checked to hold the regressors: only a split without training windows lands here)
            raise Eeg2fmriInputError(f"benchmark: the physiology-only row could not be fitted on fold {k + 1}: {reason}.")
        fitted[PHYSIOLOGY] = model
    for m in fitted.values():
        place_model(m, device)  # closed-form models (and the reference on a band-power view) stay as they are
    logger.info("fold %d/%d: fitted %s", k + 1, n_folds, ", ".join(fitted))
    t_score = time.perf_counter()
    from eeg2fmri.workflows.evaluate import resolve_metrics

    part = evaluate_models(eval_ds, eval_split, eval_targets, fitted, fit_missing=False, atlas=atlas, n_boot=n_boot,
                           random_state=random_state + k, progress_bar=progress_bar, extra_metrics=resolve_metrics(extra_metrics))
    for run in part.get("runs", {}).values():  # each test run's targets and predictions: no leaderboard reads them, and kept
        run.pop("_preds", None)                 # they held every fold's (n_test, n_voxels) arrays to the end (user test 40:
        run.pop("_y", None)                     # memory climbed from fold to fold)
    t_cal = time.perf_counter()
    _fold_calibration(fitted, eval_ds, eval_split, eval_targets, fits)
    t_end = time.perf_counter()
    # where a fold's time goes (leaderboard.json timings.folds): fitting, scoring, conformal calibration
    part["fold_seconds"] = {"fold": k, "fit": round(t_score - t_fold, 3), "score": round(t_cal - t_score, 3),
                            "calibration": round(t_end - t_cal, 3), "total": round(t_end - t_fold, 3)}
    if REFERENCE not in fitted:
        part["reference"] = {"name": REFERENCE, "available": False, "reason": fits[REFERENCE]["error"]}
    return part, fits

def leaderboard_rows(results: dict[str, Any], fits: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Leaderboard rows from (merged) evaluation results, best median r first.

    Every scored model gets a row; the reference ``ridge_hrf`` and the
    subject-mean baseline are marked by ``role``; a ``time-shifted null``
    row holds the reference's (or the first model's) shifted prediction;
    models that could not be trained get a row with their ``error``.
    """
    fits = fits or {}
    g = results["group"]
    ref = results["roles"]["reference"]
    rows = []
    for nm in results["models"]:
        m = g["models"][nm]
        row: dict[str, Any] = {"name": nm, "role": ("reference" if nm == ref else "baseline" if nm == BASELINE else
                                                     "physiology" if nm == PHYSIOLOGY else "model")}
        for key in ("median_r", "median_r_ci", "null_median_r", "null_p95_median_r", "median_r_subjects_with_null", "r2", "rmse", "mae", "ssim",
                    "psnr", "calhas_rmse", "calhas_ssim", "fraction_of_oracle", "fraction_of_noise", "roi_median_r", *results.get("_extra_metrics", ())):
            if key in m:
                row[key] = m[key]
        if nm in g.get("paired", {}):
            pr = g["paired"][nm]
            row.update(diff_vs_reference=pr["diff_median_r"], diff_ci=[pr["low"], pr["high"]], p_value=pr["p_value"])
        row.update({k: v for k, v in fits.get(nm, {}).items() if k in ("fit_seconds", "n_params", "ridge_weight", "tangent_weight", "slow_gain", "at_epoch_limit", "no_refit",
                                                                 "calibration_in_sample", "alpha_per_target", "physiology_unregressed",
                                                                 "physiology_row")})
        row.update(_calibration_summary(fits.get(nm, {}).get("calibration_folds", [])))
        row.update(_roi_means(results, nm))
        if results.get("_extra_metrics"):
            row["extra_metrics"] = list(results["_extra_metrics"])
        rows.append(row)
    null_src = ref if ref in g["models"] else next((nm for nm in results["models"] if nm != BASELINE), None)
    if null_src is not None and "null_median_r" in g["models"][null_src]:
        rows.append({"name": f"time-shifted null ({null_src})", "role": "null", "median_r": g["models"][null_src]["null_median_r"],
                     "null_p95_median_r": g["models"][null_src].get("null_p95_median_r")})
    for nm, f in fits.items():
        if f.get("error"):
            rows.append({"name": nm, "role": "model", "error": f["error"]})

    return sort_leaderboard(rows)


def sort_leaderboard(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Models and references by median r (best first), then nulls, the physiology-only row, baselines, and rows without an r."""

    def key(r: dict) -> tuple:
        v = r.get("median_r")
        order = {"model": 0, "reference": 0, "null": 1, "physiology": 1.5, "baseline": 2}[r["role"]]
        return (order if v is not None and math.isfinite(v) else 3, -(v if v is not None and math.isfinite(v) else 0.0))

    return sorted(rows, key=key)


def _fmt(key: str, v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt(key, x) for x in v) + "]"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "—"
        if key == "p_value":
            return f"{v:.3f}" if v >= 0.001 else "<0.001"
        if key in ("psnr", "fit_seconds"):
            return f"{v:.1f}" if key == "psnr" else f"{v:.2f}"
        return f"{v:.3f}"
    if isinstance(v, int) and key == "n_params":
        return f"{v:,}"
    return str(v)


def _roi_means(results: dict[str, Any], name: str) -> dict[str, Any]:
    """A model's ROI r and ROI null level per ROI, means over the test subjects that have them (the per-ROI table's numbers)."""
    per = results.get("per_subject") or {}
    rs: dict[str, list[float]] = {}
    ns: dict[str, list[float]] = {}
    for sub in per.values():
        m = (sub.get("models") or {}).get(name) or {}
        for k, v in (m.get("roi_r") or {}).items():
            if isinstance(v, float) and math.isfinite(v):
                rs.setdefault(k, []).append(v)
        for k, v in (m.get("roi_null_p95") or {}).items():
            if isinstance(v, float) and math.isfinite(v):
                ns.setdefault(k, []).append(v)
    if not rs:
        return {}
    return {"roi_r_mean": {k: float(np.mean(v)) for k, v in rs.items()}, "roi_null_mean": {k: float(np.mean(v)) for k, v in ns.items()},
            "roi_at_chance": roi_at_chance(results, name)}


def _focal_penalty_note(rows: list[dict[str, Any]]) -> list[str]:
    """A note where the atlas shows a focal signal -- the reference's ROI median r far above its whole-mask median r -- and
    the reference chose one penalty for every voxel: that penalty, chosen over thousands of noise voxels, shrinks the
    regions (user test 56: LOSO ROI r 0.41 with one penalty, 0.53 with alpha_per_target "guarded")."""
    ref = next((r for r in rows if r.get("role") == "reference"), None)
    if ref is None or not isinstance(ref.get("roi_median_r"), float) or not isinstance(ref.get("median_r"), float):
        return []
    apt = ref.get("alpha_per_target", "auto")
    if apt not in ("auto", False) or (apt == "auto" and ref.get("reads_events")) or ref["roi_median_r"] - ref["median_r"] < 0.1:
        return []
    return [f"{ref['name']}: the signal is focal here (ROI median r {ref['roi_median_r']:.3f} against {ref['median_r']:.3f} over the whole "
            "mask), and one ridge penalty was chosen for every voxel, mostly noise, which shrinks the regions' predictions; for region "
            "series try a penalty per voxel where it earns one: --hparams '{\"ridge_hrf\": {\"alpha_per_target\": \"guarded\"}, "
            "\"eeg2fmri_net\": {\"ridge_alpha_per_target\": \"guarded\"}}' (user test 56: LOSO ROI r 0.41 -> 0.53), or prepare "
            "with the atlas option (ROI targets; the flagship's share of its covariance (tangent) features and its blend weight "
            "are one number for all its outputs, chosen where most voxels are noise: on ROI targets they are chosen for the "
            "regions -- user test 59: tangent weight 0 in 8 of 8 voxel folds); per-voxel penalties favour any region the EEG "
            "features predict, physiological noise included (user test 57: ventricles 0.25 -> 0.29), so regress physiological "
            "confounds first where they may be"]


def _roi_disagreements(rows: list[dict[str, Any]]) -> list[str]:
    """Notes for models that the whole-mask median r ranks above the reference and the ROI r below it (or the reverse).

    The ROI side is the median ROI r over the ROIs above chance for the model or the reference (the per-ROI table's
    marks; user test 21: over every ROI, chance-level regions decided it and the note pointed to the weaker model);
    without ROI nulls, the ROI median r over every ROI."""
    refs = [r for r in rows if r.get("role") == "reference" and isinstance(r.get("roi_median_r"), float) and isinstance(r.get("median_r"), float)]
    if not refs:
        return []
    ref, out = refs[0], []
    for r in rows:
        if r.get("role") != "model" or not isinstance(r.get("roi_median_r"), float) or not isinstance(r.get("median_r"), float):
            continue
        mine, theirs, what = r["roi_median_r"], ref["roi_median_r"], "the ROI median r"
        rm, rr = r.get("roi_r_mean") or {}, ref.get("roi_r_mean") or {}
        cm, cr = r.get("roi_at_chance") or {}, ref.get("roi_at_chance") or {}
        nm, nr = r.get("roi_null_mean") or {}, ref.get("roi_null_mean") or {}
        if cm and cr:  # the per-ROI table's marks
            keys = [k for k in rm if k in rr and ((k in cm and not cm[k]) or (k in cr and not cr[k]))]
            if not keys:
                continue  # no ROI above chance for either: the ROI r ranks nothing
            mine, theirs = float(np.median([rm[k] for k in keys])), float(np.median([rr[k] for k in keys]))
            what = f"the median ROI r of the {len(keys)} ROI(s) above chance for either"
        elif nm and nr:
            keys = [k for k in rm if k in rr and ((k in nm and rm[k] > nm[k]) or (k in nr and rr[k] > nr[k]))]
            if not keys:
                continue  # no ROI above chance for either: the ROI r ranks nothing
            mine, theirs = float(np.median([rm[k] for k in keys])), float(np.median([rr[k] for k in keys]))
            what = f"the median ROI r of the {len(keys)} ROI(s) above chance for either"
        d_mask, d_roi = r["median_r"] - ref["median_r"], mine - theirs
        ci = r.get("diff_ci")
        if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(isinstance(c, (int, float)) and np.isfinite(c) for c in ci) and ci[0] <= 0 <= ci[1]:
            continue  # the whole-mask difference is within its paired CI: no ranking to contradict (user test 56: +0.002 [-0.029, +0.027])
        if d_mask * d_roi < 0 and min(abs(d_mask), abs(d_roi)) >= 0.0005:  # (not a difference that prints as +0.000)
            out.append(f"{r['name']}: {'ahead of' if d_mask > 0 else 'behind'} {ref['name']} on the whole-mask median r ({d_mask:+.3f}) but "
                       f"{'behind' if d_roi < 0 else 'ahead of'} it on {what} ({mine:.3f} vs {theirs:.3f}): "
                       "the ranking depends on where you look; if the atlas regions are what matters, go by the ROI r (per ROI in "
                       "the table below and metrics.json; it has no paired CI here)")
    return out


class _DropEpochLimitWarning(logging.Filter):
    """Drops fit_torch's per-fit "may be under-trained" warning: a benchmark's notes say it once, with the folds."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "may be under-trained" not in record.getMessage()


@contextlib.contextmanager
def _epoch_limit_said_once():
    flt = _DropEpochLimitWarning()
    logger.addFilter(flt)
    try:
        yield
    finally:
        logger.removeFilter(flt)


def _null_notes(rows: list[dict[str, Any]]) -> list[str]:
    """Notes for models whose whole-mask median r does not exceed the 5 % level of their own time-shifted null (every
    circular shift of the prediction; the table's null column is the half-run shift's r, which a model at chance level
    can still beat)."""
    out = []
    for r in rows:
        v, p95 = r.get("median_r"), r.get("null_p95_median_r")
        if isinstance(r.get("median_r_subjects_with_null"), float):  # the level is over the subjects with a null: their mean
            v = r["median_r_subjects_with_null"]
        if r.get("role") in ("model", "reference") and isinstance(v, float) and isinstance(p95, float) and math.isfinite(v) and v <= p95:
            out.append(f"{r['name']}: whole-mask median r {v:.3f}"
                       + (" (over the test subjects with a null)" if isinstance(r.get("median_r_subjects_with_null"), float) else "")
                       + " does not exceed the 5 % level of its time-shifted null "
                       f"({p95:.3f}, over every circular shift; the shifted-null column is the half-run shift's): not distinguishable from chance over the whole "
                       "mask on these data" + (" (compare the ROI median r)" if isinstance(r.get("roi_median_r"), float) else ""))
    for r in rows:  # (user test 37: -0.45 to -0.54 with 48-s task blocks; models looked far above "chance")
        v = r.get("median_r")
        if r.get("role") == "null" and isinstance(v, float) and v < -0.1:
            out.append(f"{r['name']}: {v:.3f} -- half a run's shift anti-aligns a periodic design (task blocks), so this r is no chance "
                       "level; the 5 % level column (every circular shift) is")
    scored = [r for r in rows if r.get("role") in ("model", "reference") and isinstance(r.get("median_r"), float) and math.isfinite(r["median_r"])]
    if scored and not any(isinstance(r.get("null_p95_median_r"), float) and math.isfinite(r["null_p95_median_r"]) for r in scored):
        # user test 8: 16 test windows per subject, the 95th percentile nan without a word
        out.append("the time-shifted null's 5 % level was not computed: a test span is too short (under 20 volumes) for a 5 % test "
                   "over its circular shifts; with longer recordings or a larger test share it says whether a median r is above chance")
    return out


#: Keys of a leaderboard row: a metric of the user's own may not take them.
LEADERBOARD_FIELDS = frozenset({"name", "role", "error", "extra_metrics", "diff_vs_reference", "diff_ci", "p_value", "fit_seconds", "n_params",
                                "ridge_weight", "tangent_weight", "slow_gain", "at_epoch_limit", "no_refit", "calibration_in_sample", "alpha_per_target",
                                "physiology_unregressed", "physiology_row", "epochs", "refit_epochs", "calibration_folds", "coverage_80",
                                "nll_laplace", "roi_r_mean", "roi_null_mean", "roi_at_chance", "median_r_subjects_with_null",
                                "reads_events"} | {k for k, _ in _COLUMNS})


def absolute_metric(value: Any) -> Any:
    """A ``"path/file.py:function"`` metric with its file made absolute (worker processes may run elsewhere); others as given."""
    if isinstance(value, str):
        mod, sep, fn = value.rpartition(":")
        if sep and mod.endswith(".py"):
            from pathlib import Path

            return f"{Path(mod).expanduser().absolute()}:{fn}"
    return value


def extra_metric_names(rows: list[dict[str, Any]]) -> list[str]:
    """The user's own metrics (``extra_metrics``, ``--metric``) the rows hold, in order of first appearance."""
    out: list[str] = []
    for r in rows:
        for k in r.get("extra_metrics", ()):
            if k not in out:
                out.append(k)
    return out


def format_leaderboard(rows: list[dict[str, Any]], *, markdown: bool = True) -> str:
    """The leaderboard as a Markdown table (or aligned plain text).

    Undefined values (the constant baseline's r, metrics a row does not
    have) show as an em dash; † marks the peers' own metric definitions.
    With an atlas (rows with ``roi_median_r``), a "ROI median r" column
    follows the whole-mask CI: a focal effect hides in the whole-mask median.
    """
    cols = list(_COLUMNS)
    cols += [(k, k) for k in extra_metric_names(rows)]  # --metric NAME: a column of the user's own (built-in names are refused)
    if any(isinstance(r.get("roi_median_r"), float) for r in rows):  # an atlas was given: ROI r next to the whole-mask r
        cols.insert(3, ("roi_median_r", "ROI median r"))
    head = [h for _, h in cols]
    body = []
    for r in rows:
        name = r["name"] + (" (reference)" if r["role"] == "reference" else " (baseline)" if r["role"] == "baseline" else "")
        if r.get("error"):
            err = str(r["error"])
            short = err if len(err) <= 80 else err[:80].rsplit(" ", 1)[0] + " ... (below)"
            body.append([name] + ["not trained: " + short] + [""] * (len(cols) - 2))
            continue
        body.append([name] + [_fmt(k, r.get(k)) for k, _ in cols[1:]])
    notes = leaderboard_notes(rows)
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        return "\n".join(lines + ([""] + [f"- {n}" for n in notes] if notes else []))
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    table = "\n".join("  ".join(str(x).ljust(w) if i == 0 else str(x).rjust(w) for i, (x, w) in enumerate(zip(row, widths))) for row in [head] + body)
    return "\n".join([table] + notes)


def leaderboard_notes(rows: list[dict[str, Any]]) -> list[str]:
    """The notes under a leaderboard (a model not trained, a blend that kept its linear path, training at its epoch limit,
    a ranking that depends on where you look, a median r at chance): the table's and the HTML report's."""
    notes = []
    for r in rows:
        name = r["name"] + (" (reference)" if r.get("role") == "reference" else " (baseline)" if r.get("role") == "baseline" else "")
        if r.get("error"):
            err = str(r["error"])
            if len(err) > 80:  # the whole reason under the table (a cut one hid the fix)
                notes.append(f"{name} not trained: {err}")
            continue
        w = r.get("ridge_weight")
        if w and all(x >= 1.0 for x in w):  # the flagship's blend chose its linear path alone: say so (it looked like a network)
            tw = [float(x) for x in (r.get("tangent_weight") or [])]
            what = ("a ridge on the same features as ridge_hrf, fitted and chosen on its own, so the rows can differ" if not any(tw) else
                    "a ridge on the same band power as ridge_hrf, mixed with a ridge on the tangent-space covariances (tangent_weight "
                    + ", ".join(f"{x:g}" for x in tw) + " per fold), so the rows differ")
            notes.append(f"{name}: the blend gave its stacked linear path all the weight in every fold (ridge_weight 1): its "
                         f"predictions are its own linear path's ({what}); the network adds nothing on these data (see ridge_weight"
                         f"{' and tangent_weight' if any(tw) else ''} in leaderboard.json)")
        sg = r.get("slow_gain")
        if sg and any(isinstance(g, dict) or float(g) != 1.0 for g in sg):  # (slow_potential: the slow entry's own penalty, per fold)
            per = [g if not isinstance(g, dict) else "per output " + ", ".join(f"{k} x {n}" for k, n in g["per_target"].items()) for g in sg]
            notes.append(f"{name}: the slow-potential columns' gain (penalty 1 / gain^2 times the bands') per fold: "
                         + "; ".join(f"{g:g}" if isinstance(g, (int, float)) else str(g) for g in per))
        if r.get("role") == "model" and str(r["name"]).startswith("eeg2fmri_net") and r.get("input") == "raw" and not w:
            # (user test 48: leaderboard.json held no ridge_weight for it, so whether the network was used could not be told)
            notes.append(f"{name}: on raw windows the flagship has no stacked linear path (its learned filter bank stands in for "
                         "band power): its predictions are the network's alone, so it records no ridge_weight")
        if r.get("no_refit"):
            notes.append(f"{name}: closed-form without a refit option, fitted on each fold's training subjects only, while the reference "
                         "is refitted with the fold's validation subject too (one subject more): its Δ is not on equal data; give the "
                         "model a refit hyperparameter (README: models of your own)")
        if r.get("calibration_in_sample"):  # (user test 56: a plugin's 80 % intervals covered 0.63, in-sample, without a word)
            notes.append(f"{name}: refitted on its validation windows (refit=True) without keeping its residuals from before the refit, "
                         "so its 80% cover and NLL are calibrated on in-sample residuals (too narrow); keep them as val_residuals_ "
                         "and val_target_check_ (README: models of your own)")
        limit = r.get("at_epoch_limit")
        if limit and any(limit):
            notes.append(f"{name}: training reached optimizer.max_epochs in fold(s) {[i for i, x in enumerate(limit) if x]} with its best "
                         "validation epoch among the last: it may be under-trained there; raise max_epochs (--train-config "
                         "'{\"optimizer\": {\"max_epochs\": N}}')")
    readers = [f"{r['name']}" + (" (its linear path; the network reads the EEG only)" if r["reads_events"] != "yes" else "")
               for r in rows if r.get("reads_events")]
    if readers:  # (user test 51: "Δr vs ridge_hrf" compared an EEG-only model with a reference that reads the design)
        ref_reads = any(r.get("role") == "reference" and r.get("reads_events") for r in rows)
        notes.append(f"event regressors (the stimulus markers, prepare option events) are read by: {', '.join(readers)}; the other rows "
                     "read the EEG only." + (" Δr vs ridge_hrf is against a reference that reads the design: a model of the EEG alone "
                                             "is compared with ridge_hrf on the same data prepared without events, or with hparams "
                                             "'{\"ridge_hrf\": {\"inputs\": \"eeg\"}}'" if ref_reads else ""))
    return notes + _roi_disagreements(rows) + _focal_penalty_note(rows) + list(physiology_notes(rows).values()) + _null_notes(rows)
