"""``eeg2fmri tune CONFIG --trials N``: hyperparameter search with Optuna on validation data only.

The search space is the config's ``tune`` section: each key is a config
parameter (a bare optimizer/loss key such as ``lr``, a bare model
hyperparameter such as ``latent_dim``, or a dotted path such as
``model.hparams.latent_dim``) with ``{low, high, log, step}`` (float, or int
when ``low`` and ``high`` are integers) or ``{choices: [...]}``.

Every trial trains with :func:`~eeg2fmri.training.trainer.fit_torch` and is
scored by its best validation value of ``optimizer.monitor``; the test split
is never read. The study lives in an Optuna storage (default
``sqlite:///<out>/tune/study.db``), so a search resumes where it stopped:
``--trials N`` is the total number of finished trials wanted, and a second
call with a larger N adds the missing ones. The sampler of trial ``k`` is
seeded from ``(seed, k)``, so a resumed search proposes what an uninterrupted
one would have. Several processes may share one storage to search in
parallel (one device each). A trial whose process was killed is run again
(twice at most, with the same parameters) by the next ``tune`` on the same
storage: at once when it ran on this machine (its process id is recorded and
no longer alive), otherwise once its heartbeat is 120 s old; so is a trial
stopped by Ctrl-C. Neither counts towards ``--trials``, and the trials after
them are proposed as in an uninterrupted search (the sampler's seed counts
trials, not retries).

A trial's value is the best validation value of the monitor, except for a
model that blends its network with other paths after training
(``eeg2fmri_net``'s linear path): with monitor ``val_r`` its value is the
validation mean voxel r of the blended prediction -- the model that predicts
-- and the network's own best is kept as the trial's ``network_value``.

Outputs under ``out``: ``tune/study.db``, ``tune/trial_NNNN/`` (config,
metrics and logs of each trial; checkpoints removed unless kept),
``tune/trials.json`` and ``best_config.yaml`` (a complete train config with
the best parameters; train it with ``eeg2fmri train best_config.yaml``).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import socket
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl

from eeg2fmri.datasets.targets import split_targets
from eeg2fmri.models.base import get_model_class
from eeg2fmri.training.config import (
    MONITORS,
    apply_overrides,
    config_diff,
    dump_config,
    resolve_config,
)
from eeg2fmri.utils.atomic import atomic_file, process_alive
from eeg2fmri.utils.logs import logger
from eeg2fmri.utils.validation import Eeg2fmriInputError, check_positive_int
from eeg2fmri.workflows.train import _as_config, check_hparam_names, load_data

__all__ = ["TuneResult", "tune"]

STUDY_ATTR = "eeg2fmri_config"
STUDY_IGNORES = ("out", "trainer", "data.n_jobs")


@dataclass
class TuneResult:
    """Outcome of :func:`tune`."""

    study_name: str
    storage: str
    n_finished: int
    best_value: float | None
    best_params: dict
    best_config: Path | None
    monitor: str = "val_loss"
    #: a closed-form model's search: ``val_r`` is then train's validation mean r (per subject, then averaged)
    closed_form: bool = False


class _Pruning(pl.Callback):
    """Report the monitored validation value to Optuna each epoch; stop unpromising trials."""

    def __init__(self, trial: Any, monitor: str) -> None:
        self.trial, self.monitor = trial, monitor

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        import optuna

        epoch = int(trainer.current_epoch)
        self.trial.report(float(trainer.callback_metrics[self.monitor]), epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch}")


def _retry_dead_local_trials(study: Any, storage: Any, study_name: str) -> None:
    """Fail and re-queue the RUNNING trials of this machine whose process has ended (killed, out of memory).

    Optuna's heartbeat marks such a trial stale only after its grace period (120 s): a search resumed
    sooner would leave it RUNNING for ever and propose a new trial instead. Trials of other machines
    (several hosts on one storage) are left to the heartbeat.
    """
    import optuna

    host = socket.gethostname()
    study_id = storage.get_study_id_from_name(study_name)
    for tr in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        pid = tr.user_attrs.get("pid")
        if tr.user_attrs.get("host") != host or not isinstance(pid, int) or process_alive(pid):
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, tr.number)
        storage.set_trial_user_attr(trial_id, "error", f"its process ({host}, pid {pid}) ended before the trial finished; retried")
        if storage.set_trial_state_values(trial_id, state=optuna.trial.TrialState.FAIL):
            logger.warning("tune: trial %d was left running by a process that ended (pid %d); running it again", tr.number, pid)
            optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2)(study, storage.get_trial(trial_id))


def _retry_interrupted_trials(study: Any, storage: Any, study_name: str) -> None:
    """Re-queue the trials an earlier ``tune`` marked ``interrupted`` (Ctrl-C) that have no retry yet, with their parameters."""
    import optuna

    trials = study.get_trials(deepcopy=False)
    requeued = _requeued(trials)
    for tr in trials:
        if tr.state == optuna.trial.TrialState.FAIL and tr.user_attrs.get("interrupted") and tr.number not in requeued:
            logger.warning("tune: trial %d was interrupted; running it again with the same parameters", tr.number)
            optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2)(study, storage.get_trial(tr._trial_id))


def _requeued(trials: list) -> set:
    """Numbers of the trials that a retry was queued for (Optuna's ``failed_trial`` system attribute of the retry)."""
    return {tr.system_attrs.get("failed_trial") for tr in trials}


def _retried(trials: list) -> set:
    """Numbers of the failed trials that were queued again (their retry takes their place in the search)."""
    import optuna

    again = _requeued(trials)
    return {tr.number for tr in trials if tr.state == optuna.trial.TrialState.FAIL and tr.number in again}


class _TrialPrefix:
    """Prefix the package's messages during a trial with its number."""

    def __init__(self, number: int) -> None:
        self.number = number

    def filter(self, record: Any) -> bool:
        if not str(record.msg).startswith("tune trial "):
            record.msg = f"tune trial {self.number}: {record.msg}"
        return True


class _QuietFailures:
    """Optuna logs a failed trial with its traceback; for a refused setting (Eeg2fmriInputError) or Ctrl-C the message is
    enough (user test 9: 49 lines of tracebacks for two refused values)."""

    def filter(self, record: Any) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, (Eeg2fmriInputError, KeyboardInterrupt)):
            record.exc_info, record.exc_text = None, None
        return True


def _check_storage(storage: str) -> None:
    """Refuse a storage URL SQLAlchemy cannot use, before anything is created (a raw SQLAlchemy traceback otherwise)."""
    from sqlalchemy.engine import make_url

    try:
        make_url(storage).get_dialect()
    except Exception as err:  # ArgumentError (not a URL), NoSuchModuleError (unknown dialect), ImportError (no driver)
        raise Eeg2fmriInputError(
            f"--storage {storage!r}: expected an SQLAlchemy database URL such as sqlite:///runs/study.db (three slashes, then a path) or "
            f"postgresql://user@host/dbname, got one it cannot use ({type(err).__name__}: {' '.join(str(err).split())[:200]}); fix the URL, "
            "or leave --storage out for sqlite:///<out>/tune/study.db."
        ) from None


def _suggest(trial: Any, name: str, spec: Mapping[str, Any]) -> Any:
    if "choices" in spec:
        return trial.suggest_categorical(name, spec["choices"])
    if spec["type"] == "int":
        return trial.suggest_int(name, int(spec["low"]), int(spec["high"]), step=int(spec["step"] or 1), log=spec["log"])
    return trial.suggest_float(name, float(spec["low"]), float(spec["high"]), step=spec["step"], log=spec["log"])


def _not_completed(trials: Sequence[Any]) -> str:
    """``"; also 1 pruned, 2 failed"`` for the finished trials that did not complete (user test 34: the log counted 4
    finished trials, the header "best of 3 completed", and nothing said that one was pruned); ``""`` when none."""
    import optuna

    counts = {}
    for tr in trials:
        if tr.state in (optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL):
            key = "pruned" if tr.state == optuna.trial.TrialState.PRUNED else "failed"
            counts[key] = counts.get(key, 0) + 1
    return ("; also " + ", ".join(f"{n} {k}" for k, n in counts.items())) if counts else ""


def _seed(seed: int, k: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(k), 7]).generate_state(1)[0])


def _relative_paths(cfg: dict[str, Any], folder: Path) -> dict[str, Any]:
    """The config's data paths and ``out`` relative to ``folder`` (where the config is written: :func:`load_config` reads
    relative paths from the config file's folder), so a tuned config keeps working when the project folder is moved or
    shared (user test 9: best_config.yaml held absolute paths); a path on another drive stays absolute."""
    folder = Path(folder).absolute()

    def rel(p: str) -> str:
        try:
            return Path(os.path.relpath(Path(p).absolute(), folder)).as_posix()
        except ValueError:  # another drive (Windows)
            return str(p)

    cfg = {**cfg, "data": dict(cfg["data"])}
    for key in ("prepared", "bids", "prepared_out"):
        if cfg["data"].get(key):
            cfg["data"][key] = rel(cfg["data"][key])
    if cfg.get("out"):
        cfg["out"] = rel(cfg["out"])
    return cfg


def tune(
    config: str | os.PathLike | Mapping[str, Any],
    *,
    trials: int,
    storage: str | None = None,
    out: str | os.PathLike | None = None,
    study_name: str = "eeg2fmri",
    pruner: str = "median",
    keep_checkpoints: bool = False,
    progress_bar: bool | None = None,
    verbose: bool = False,
) -> TuneResult:
    """Search the config's ``tune`` space with Optuna; write ``best_config.yaml``.

    Parameters
    ----------
    config : path-like | mapping
        A training config with a non-empty ``tune`` section.
    trials : int
        Total number of finished trials wanted in the study (resuming adds the missing ones).
    storage : str | None
        Optuna RDB storage URL; default ``sqlite:///<out>/tune/study.db``.
    out : path-like | None
        Output folder (overrides the config's ``out``).
    study_name : str
        Name of the study inside the storage.
    pruner : {"median", "none"}
        Stop trials whose validation curve falls below the median of earlier trials.
    keep_checkpoints : bool
        Keep every trial's checkpoints (otherwise removed after the trial).
    progress_bar : bool | None
        Progress bars (``None``: ``trainer.progress_bar`` of the config).
    verbose : bool
        Optuna's and Lightning's info messages.

    Returns
    -------
    TuneResult
    """
    import optuna

    trials = check_positive_int(trials, "trials", fix="pass --trials N with N >= 1")
    if pruner not in ("median", "none"):
        raise Eeg2fmriInputError(f"pruner: expected 'median' or 'none', got {pruner!r}.")
    cfg = _as_config(config)
    if out is not None:
        cfg["out"] = str(Path(out).absolute())
    if not cfg["tune"]:
        raise Eeg2fmriInputError("config: tune: expected a search space, e.g. tune: {lr: {low: 1.0e-4, high: 1.0e-2, log: true}}, found none.")
    if cfg["out"] is None:
        raise Eeg2fmriInputError("config: out: expected an output folder, found null; set out: in the config or pass --out.")
    name = cfg["model"]["name"]
    closed = getattr(get_model_class(name), "kind", "torch") == "sklearn"
    if closed:  # fitted in one step: a trial is one fit with its hyperparameters, scored on the validation windows
        from eeg2fmri.training.config import closed_form_unused, tune_target

        unused = closed_form_unused(cfg)
        unused += [k for k in cfg["tune"] if tune_target(k)[0] in ("optimizer", "loss", "trainer")]
        if unused:
            raise Eeg2fmriInputError(
                f"config: {', '.join(unused)}: expected only model hyperparameters (and split options) in the search of the closed-form "
                f"model {name!r} (it is fitted in one step, with no optimiser, loss weights or Lightning trainer); remove these "
                "settings, or choose a torch model.")
    check_hparam_names(name, cfg["tune"], cfg["model"]["hparams"], str(config) if isinstance(config, (str, os.PathLike)) else "config",
                       done="no trial was run")
    t = cfg["trainer"]
    if t["num_nodes"] != 1 or t["devices"] not in (1, "auto") and not (isinstance(t["devices"], list) and len(t["devices"]) == 1):
        raise Eeg2fmriInputError(
            f"trainer: expected one device per tuning process, found devices={t['devices']}, num_nodes={t['num_nodes']}; "
            "run several `eeg2fmri tune` processes with the same --storage instead (one GPU each)."
        )
    if not isinstance(t["devices"], list):
        cfg["trainer"]["devices"] = 1
    out_path = Path(cfg["out"]).absolute()
    tune_dir = out_path / "tune"
    if storage is not None:
        _check_storage(storage)
    tune_dir.mkdir(parents=True, exist_ok=True)
    storage = storage or f"sqlite:///{tune_dir / 'study.db'}"
    monitor = cfg["optimizer"]["monitor"]
    direction = "minimize" if MONITORS[monitor] == "min" else "maximize"
    base = copy.deepcopy(cfg)
    space = base.pop("tune")
    base["tune"] = {}

    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        rdb = optuna.storages.RDBStorage(storage, heartbeat_interval=60, grace_period=120,
                                         heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2))
        study = optuna.create_study(storage=rdb, study_name=study_name, direction=direction, load_if_exists=True,
                                    pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2) if pruner == "median" else optuna.pruners.NopPruner())
        _retry_dead_local_trials(study, rdb, study_name)
        _retry_interrupted_trials(study, rdb, study_name)
    stored = study.user_attrs.get(STUDY_ATTR)
    fingerprint = {**base, "tune_space": space}
    if stored is None or not study.get_trials(deepcopy=False):  # (a search that stopped before its first trial binds nothing)
        study.set_user_attr(STUDY_ATTR, json.loads(json.dumps(fingerprint, default=str)))
    else:
        diff = config_diff(stored, json.loads(json.dumps(fingerprint, default=str)), ignore=STUDY_IGNORES)
        if diff:
            raise Eeg2fmriInputError(
                f"{storage} (study {study_name!r}): was started from a config that differs in {diff[:8]}; "
                "resume with the same config, or use another --out / --study-name for a new search."
            )

    if progress_bar is None:
        progress_bar = cfg["trainer"]["progress_bar"]
    ds, split = load_data(cfg, out_path, progress_bar=progress_bar)
    tv_split = replace(split, selections={"train": split.selections["train"], "val": split.selections["val"], "test": {}})
    targets = split_targets(ds, tv_split)

    def closed_form_trial(tcfg: dict, tdir: Path) -> tuple[float, dict]:
        """One closed-form fit, scored on the validation windows as ``train`` scores it (mse, or each subject's mean voxel r
        over its own windows, then the mean over subjects)."""
        from eeg2fmri.datasets import WindowDataset
        from eeg2fmri.training import fit_model
        from eeg2fmri.workflows.train import score_windows

        sp = tv_split
        if tcfg["split"] != base["split"]:  # a split option searched: the split again, of the dataset already loaded
            from eeg2fmri.datasets.targets import make_split

            opts = {k: v for k, v in tcfg["split"].items() if k != "protocol"}  # (as load_data makes it)
            if isinstance(opts.get("fractions"), list):
                opts["fractions"] = tuple(opts["fractions"])
            sp = make_split(ds, tcfg["split"]["protocol"], **opts)
            sp = replace(sp, selections={"train": sp.selections["train"], "val": sp.selections["val"], "test": {}})
        tg = targets if sp is tv_split else split_targets(ds, sp)
        fit = fit_model(ds, sp, tcfg["model"]["name"], tcfg["model"]["hparams"], targets=tg)
        wd = WindowDataset(ds, selection=sp.selections["val"], n_frames=sp.n_frames, lag=sp.lag, targets=tg["val"])
        sc = score_windows(fit.model, wd, batch_size=tcfg["trainer"]["predict_batch_size"])
        value = float(sc["mean_r"] if monitor == "val_r" else sc["mse"])
        if not np.isfinite(value):
            raise Eeg2fmriInputError(f"{tdir.name}: expected a finite validation {'r' if monitor == 'val_r' else 'mse'}, got {value}; check "
                                     f"the hyperparameters {tcfg['model']['hparams']} (constant predictions?); this trial failed.")
        return value, {"validation": sc, "fit_seconds": fit.fit_seconds}

    def objective(trial: Any) -> float:
        from eeg2fmri.training.trainer import fit_torch

        trial.set_user_attr("host", socket.gethostname())  # a later tune retries it at once if this process dies
        trial.set_user_attr("pid", os.getpid())
        params = {k: _suggest(trial, k, spec) for k, spec in space.items()}
        tcfg = apply_overrides(base, params, source=f"trial {trial.number}")
        tdir = tune_dir / f"trial_{trial.number:04d}"
        if tdir.exists():
            shutil.rmtree(tdir)
        tdir.mkdir(parents=True)
        (tdir / "config.yaml").write_text(dump_config({**tcfg, "out": str(tdir)}), encoding="utf-8")
        trial.set_user_attr("out", str(tdir))
        prefix = _TrialPrefix(trial.number)  # a warning of the fit says which trial it is about (user test 9)
        logger.addFilter(prefix)
        try:
            # a trial is scored by its validation windows: a refit on them (optimizer.refit) would cost a second training
            # and change nothing the score reads; the best config keeps the user's setting
            if closed:
                value, scores = closed_form_trial(tcfg, tdir)
                (tdir / "metrics.json").write_text(json.dumps({"params": params, "value": value, "monitor": monitor, **scores}, indent=1,
                                                              default=float), encoding="utf-8")
                return value
            fit_cfg = {**tcfg, "optimizer": {**tcfg["optimizer"], "refit": False}} if tcfg["optimizer"].get("refit") else tcfg
            fit = fit_torch(ds, tv_split, tcfg["model"]["name"], tcfg["model"]["hparams"], targets, train_config=fit_cfg, out_dir=tdir,
                            progress_bar=progress_bar, verbose=verbose, callbacks=[_Pruning(trial, monitor)])
        except Eeg2fmriInputError as err:  # e.g. hyperparameters the model refuses: this trial fails, the search goes on
            trial.set_user_attr("error", str(err))
            raise
        except KeyboardInterrupt:  # run again by the next tune on this storage (_retry_interrupted_trials)
            trial.set_user_attr("interrupted", True)
            trial.set_user_attr("error", "interrupted (Ctrl-C); run again by the next tune")
            raise
        except optuna.TrialPruned:
            raise
        except SystemExit as err:  # SIGTERM (status 143): run again by the next tune, as after a Ctrl-C
            trial.set_user_attr("interrupted", True)
            trial.set_user_attr("error", f"terminated (exit status {err.code}); run again by the next tune")
            raise
        except Exception as err:  # noqa: BLE001  a model that fails at some settings (user test 41: one trial ended the search)
            if isinstance(err, (MemoryError, ImportError, OSError)):  # the machine or the install, not this trial's setting
                raise
            import traceback

            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()  # (a trial out of GPU memory: the next one gets it back)

            what = f"{type(err).__name__}: {err}"
            tdir.mkdir(parents=True, exist_ok=True)
            (tdir / "error.txt").write_text("".join(traceback.format_exception(err)), encoding="utf-8")
            trial.set_user_attr("error", what)
            logger.warning("trial %d failed with %s (traceback: %s); the search goes on", trial.number, what, tdir / "error.txt")
            raise Eeg2fmriInputError(f"trial {trial.number}: {what}") from err
        finally:
            logger.removeFilter(prefix)
            if not keep_checkpoints:
                shutil.rmtree(tdir / "checkpoints", ignore_errors=True)
        value = float(fit.info["best_score"])
        trial.set_user_attr("best_epoch", fit.info.get("best_epoch"))
        blended = fit.info.get("val_r_blend")
        if monitor == "val_r" and isinstance(blended, (int, float)) and np.isfinite(blended):
            # the model that predicts: the network blended with its linear path (eeg2fmri_net), not the network alone
            trial.set_user_attr("network_value", value)
            trial.set_user_attr("ridge_weight", fit.info.get("ridge_weight"))
            value = float(blended)
        (tdir / "metrics.json").write_text(json.dumps({"params": params, "value": value, "monitor": monitor, "history": fit.info["history"],
                                                       **({"network_value": trial.user_attrs["network_value"], "ridge_weight": fit.info.get("ridge_weight")}
                                                          if "network_value" in trial.user_attrs else {})}, indent=1), encoding="utf-8")
        return value

    def finished() -> int:
        # a failed trial that was queued again (its process died, Ctrl-C) is not one of the N: its retry is
        all_trials = study.get_trials(deepcopy=False)
        retried = _retried(all_trials)
        return sum(1 for tr in all_trials if tr.state.is_finished() and tr.number not in retried)

    quiet = _QuietFailures()
    optuna_log = __import__("logging").getLogger("optuna.study._optimize")
    optuna_log.addFilter(quiet)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
            while finished() < trials:
                # trial k of an uninterrupted search: the trials so far, less those run again (their retry took their place)
                all_trials = study.get_trials(deepcopy=False)
                study.sampler = optuna.samplers.TPESampler(seed=_seed(cfg["seed"], len(all_trials) - len(_retried(all_trials))))
                study.optimize(objective, n_trials=1, catch=(Eeg2fmriInputError,))
    finally:
        optuna_log.removeFilter(quiet)
    all_trials = study.get_trials(deepcopy=False)
    rows = [{"number": tr.number, "state": tr.state.name, "value": tr.value, "params": tr.params, "out": tr.user_attrs.get("out"),
             **({"error": tr.user_attrs["error"]} if "error" in tr.user_attrs else {})} for tr in all_trials]
    with atomic_file(tune_dir / "trials.json", overwrite=True) as tmp:
        tmp.write_text(json.dumps(rows, indent=1, default=str), encoding="utf-8")
    complete = [tr for tr in all_trials if tr.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        failed = [tr for tr in all_trials if tr.state == optuna.trial.TrialState.FAIL]
        if failed and len(failed) == len([tr for tr in all_trials if tr.state.is_finished()]):
            reason = failed[-1].user_attrs.get("error", "see the log above")
            raise Eeg2fmriInputError(f"{storage}: every trial failed; the last one with: {reason}")
        logger.warning("no trial of study %r completed; see %s", study_name, tune_dir / "trials.json")
        return TuneResult(study_name, storage, finished(), None, {}, None, monitor, closed)
    best = study.best_trial
    weights = [tr.user_attrs.get("ridge_weight") for tr in complete]
    if weights and all(w == 1.0 for w in weights):
        logger.warning("tune: in every completed trial %s's blend kept its linear path alone (weight 1): the network is not used, so its "
                       "hyperparameters did not change the predictions; the values differ only through the linear path's validation "
                       "choices. Compare with ridge_hrf before training the network further.", name)
    best_cfg = apply_overrides(base, best.params)
    best_cfg["out"] = str(out_path / "best")
    best_cfg = _relative_paths(resolve_config(best_cfg), out_path)
    path = out_path / "best_config.yaml"
    from eeg2fmri.utils.provenance import software_line

    header = (f"# written by {software_line()}\n"
              f"# eeg2fmri tune: best of {len(complete)} completed trial(s) of study {study_name!r} ({storage})"
              + _not_completed([t for t in all_trials if t.number not in _retried(all_trials)]) + "\n"
              f"# trial {best.number}: {monitor} = {best.value:.4f}; params {json.dumps(best.params, default=str)}\n"
              f"# paths are relative to this file's folder (move the folders together, or edit them)\n"
              f"# train it with: eeg2fmri train {path}\n")
    with atomic_file(path, overwrite=True) as tmp:
        tmp.write_text(header + dump_config(best_cfg), encoding="utf-8")
    logger.info("best trial %d: %s = %.4g (%s)", best.number, monitor, best.value, best.params)
    return TuneResult(study_name, storage, finished(), float(best.value), dict(best.params), path, monitor, closed)
