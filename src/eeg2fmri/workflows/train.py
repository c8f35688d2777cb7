"""``eeg2fmri train CONFIG``: a whole training run from one config file.

Output folder (``out``)::

    config.yaml          the resolved config (every training default filled in; the model's defaults: metrics.json
                         model_hparams); --resume checks it
                         (a run that stopped before its first checkpoint starts over in place, config.yaml rewritten)
    checkpoints/         last.ckpt (resume) and best.ckpt (lowest validation loss / highest r)
    logs/version_N/      metrics.csv per (re)start; tensorboard/ when installed
    prepared/            the prepared dataset (only when the config gives a BIDS root)
    model/               the best checkpoint as a model directory (safetensors, model.json,
                         MODEL_CARD.md, train_config.json, mask.nii.gz)
    metrics.json         validation and test metrics of the best model, training history

The trainer sees the training and validation windows only; the test split is
scored once, after training, with the chosen weights (``evaluate_test``).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eeg2fmri.datasets.prepared import (
    PrepareConfig,
    PreparedDataset,
    data_fingerprint,
    load_prepared,
    model_prepare_config,
    select_subjects,
    training_artifact_summary,
    training_notch_summary,
)
from eeg2fmri.datasets.targets import Split, make_split, split_targets, volume_accounting
from eeg2fmri.models.base import get_model_class, model_hparams
from eeg2fmri.models.predictor import TorchPredictor
from eeg2fmri.training.config import (
    DEFAULTS,
    closed_form_unused,
    config_diff,
    dump_config,
    load_config,
    resolve_config,
    tune_target,
)
from eeg2fmri.training.fit import FitResult, check_input_kind, fit_model
from eeg2fmri.utils.atomic import atomic_file, final_paths
from eeg2fmri.utils.jsonable import to_jsonable
from eeg2fmri.utils.logs import logger
from eeg2fmri.utils.provenance import software, software_line
from eeg2fmri.utils.stats import pearson_from_sums
from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["TrainRun", "check_hparam_names", "load_data", "score_windows", "split_info", "train"]

CONFIG_NAME = "config.yaml"
METRICS_NAME = "metrics.json"
#: Keys that may differ between a run and its resumption (hardware and the output path).
RESUME_IGNORES = ("out", "trainer", "data.n_jobs", "tune")


@dataclass
class TrainRun:
    """What :func:`train` produced."""

    out: Path
    fit: FitResult | None
    metrics: dict


def check_hparam_names(name: str, space: Mapping[str, Any], hparams: Mapping[str, Any], source: str, *, done: str = "nothing was written") -> None:
    """Refuse model hyperparameters the model does not take, in ``model.hparams`` and in a ``tune`` search space, naming
    the config ``source`` and the key, before anything runs (``done`` says so in the message).

    Otherwise every tune trial would fail on the same name (``build_model`` refuses it), and ``train`` refused it only
    after writing its output folder, without naming the config (user test 11).
    """
    import difflib
    import inspect

    seen: dict[tuple[str, ...], str] = {}
    for k in space:  # two keys of one setting (rank and model.hparams.rank): a trial would record both and train with one
        target = tuple(tune_target(k))
        if target in seen:
            raise Eeg2fmriInputError(
                f"{source}: tune: {seen[target]!r} and {k!r} both search {'.'.join(target)}; expected each setting once (a trial would "
                f"record both values and train with one of them); keep one of the two keys ({done})."
            )
        seen[target] = k
    cls = get_model_class(name)
    if any(v.kind == v.VAR_KEYWORD for v in inspect.signature(cls.__init__).parameters.values()):
        return  # takes any keyword: nothing to check by name
    known = model_hparams(name)
    keys = [(f"model.hparams.{k}", k, False) for k in hparams]
    keys += [(f"tune.{k}", tune_target(k)[2], "." not in k) for k in space if tune_target(k)[:2] == ["model", "hparams"]]
    for key, hp, bare in keys:
        if hp in known:
            continue
        # a bare name may also have been meant as an optimizer or loss key
        candidates = known + (sorted(DEFAULTS["optimizer"]) + sorted(DEFAULTS["loss"]) if bare else [])
        close = difflib.get_close_matches(hp, candidates, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        also = " or an optimizer/loss key" if bare else ""
        raise Eeg2fmriInputError(
            f"{source}: {key}: expected a hyperparameter of model {name!r} ({', '.join(known) or 'it takes none'}){also}, got {hp!r}{hint}; "
            f"fix the name ({done})."
        )


def _as_config(config: str | os.PathLike | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(config, Mapping):
        return resolve_config(config)
    cfg = load_config(config)
    changed_plugins(Path(config).absolute().parent / METRICS_NAME)
    return cfg


def changed_plugins(metrics_path: Path) -> list[str]:
    """Plugins of the user's own code whose file differs from the one a finished run recorded (its ``metrics.json``
    ``software.plugins`` sha256), each warned: re-running that run's ``config.yaml`` then runs other code (user test 34:
    a plugin's default dropout changed, the re-run's test r moved from 0.0587 to 0.0533 in silence). No run beside the
    config, or no plugin recorded: nothing to compare."""
    from eeg2fmri.utils.plugins import named_plugins

    if not metrics_path.is_file():
        return []
    try:
        recorded = (json.loads(metrics_path.read_text(encoding="utf-8")).get("software") or {}).get("plugins") or []
    except (OSError, ValueError, AttributeError):
        return []
    now = {p["plugin"]: p for p in named_plugins()}
    out = []
    for rec in recorded:
        cur = now.get(rec.get("plugin"))
        if cur is not None and rec.get("sha256") and cur.get("sha256") and cur["sha256"] != rec["sha256"]:
            out.append(rec["plugin"])
            logger.warning("plugin %s: its file %s differs from the one the run in %s was trained with (sha256 %s..., now %s...): this "
                           "run uses the current code, so its results may differ", rec["plugin"], cur.get("file"), metrics_path.parent,
                           rec["sha256"][:12], cur["sha256"][:12])
    return out


def changed_data(metrics_path: Path, ds: PreparedDataset) -> bool:
    """Warn when a finished run beside the config (its ``metrics.json``) was trained on other data than ``ds`` (another
    :func:`~eeg2fmri.datasets.prepared.data_fingerprint`: an input file or a prepare option changed since), as
    :func:`changed_plugins` does for code. Returns whether it differs."""
    if not metrics_path.is_file():
        return False
    try:
        recorded = json.loads(metrics_path.read_text(encoding="utf-8")).get("data_fingerprint")
    except (OSError, ValueError, AttributeError):
        return False
    now = data_fingerprint(ds)
    if not recorded or not now or recorded == now:
        return False
    logger.warning("the prepared data differ from those the run in %s was trained on (data fingerprint %s..., now %s...: an input file or a "
                   "prepare option changed since, or the input files were copied with new modification times): this run's results may differ", metrics_path.parent, recorded[:12], now[:12])
    return True


def load_data(cfg: Mapping[str, Any], out: Path | None, *, progress_bar: bool = True) -> tuple[PreparedDataset, Split]:
    """The prepared dataset and split a resolved config describes.

    A ``data.bids`` root is prepared into ``data.prepared_out`` (default
    ``<out>/prepared``) once; later runs reuse it when inputs and options
    are unchanged. ``data.subjects`` keeps only those subjects' runs (of a
    prepared dataset or of the BIDS root) before the split is made.

    Parameters
    ----------
    cfg : mapping
        A resolved config.
    out : Path | None
        The run's output folder (where a BIDS root is prepared by default).
    progress_bar : bool
        Progress bar while preparing a BIDS root.

    Returns
    -------
    ds, split : PreparedDataset, Split

    Raises
    ------
    Eeg2fmriInputError
        No data given, or ``data.subjects`` naming subjects the data does not hold.
    """
    d = cfg["data"]
    if d["prepared"] is None and d["bids"] is None:
        raise Eeg2fmriInputError("config: data: expected data.prepared (a prepared dataset) or data.bids (a BIDS root), found neither.")
    if d["prepared"] is not None:
        try:
            ds = load_prepared(d["prepared"])
        except Eeg2fmriInputError as err:  # name the config key; a BIDS root given as a prepared dataset gets the key it belongs to
            src = Path(d["prepared"])
            bids = (src / "dataset_description.json").is_file() or any(src.glob("sub-*"))
            raise Eeg2fmriInputError(f"config data.prepared: {err}" + (f" {src} looks like a BIDS dataset: give it as data.bids: {src} "
                                     "(prepared into data.prepared_out, default <out>/prepared)." if bids else "")) from None
    else:
        from eeg2fmri.datasets.prepared import prepare

        dest = d["prepared_out"] or (None if out is None else str(out / "prepared"))
        if dest is None:
            raise Eeg2fmriInputError("config: data.prepared_out: expected a folder for the prepared data (or an out folder), found null.")
        try:
            prepare(d["bids"], dest, d["prepare"], subjects=d["subjects"], progress_bar=progress_bar, n_jobs=d["n_jobs"], overwrite="stale",
                    layout=d["layout"] or "bids", layout_options=d["layout_options"] or None)
        except Eeg2fmriInputError as err:
            if Path(d["bids"]).exists():
                raise
            raise Eeg2fmriInputError(f"config data.bids: {err}") from None  # (a wrong path: say which key holds it)
        ds = load_prepared(dest)
    ds = select_subjects(ds, d["subjects"], where=f"config: data.subjects ({d['prepared'] or d['bids']})")
    opts = {k: v for k, v in cfg["split"].items() if k != "protocol"}
    if isinstance(opts.get("fractions"), list):
        opts["fractions"] = tuple(opts["fractions"])
    split = make_split(ds, cfg["split"]["protocol"], **opts)
    from eeg2fmri.training.fit import memory_check

    memory_check(ds, split.n_frames, "train")  # (user test 47: 11.6 GB for one fit at 2 mm, nothing said before)
    return ds, split


def split_info(split: Split, ds: PreparedDataset | None = None) -> dict[str, Any]:
    """Plain description of a split (sizes only; no data is read).

    Parameters
    ----------
    split : Split
    ds : PreparedDataset | None
        The dataset the split was made on; adds ``subjects``: the subjects
        whose runs are in each of ``train``, ``val`` and ``test``.

    Returns
    -------
    dict
    """
    info = {"protocol": split.protocol, "n_frames": int(split.n_frames), "lag": int(split.lag), "gap_volumes": int(split.gap),
            "test_subjects": list(split.test_subjects), **{f"n_{k}": split.n_samples(k) for k in ("train", "val", "test")}}
    if split.excluded:  # windows left out over EEG the recordings mark bad
        info["excluded_bad_eeg"] = dict(split.excluded)
    if getattr(split, "options", None):  # fractions / val_subjects / n_folds, fold as given: evaluate rebuilds the split from them
        info["options"] = dict(split.options)
    if ds is not None:
        info["subjects"] = {k: sorted({ds.runs[i].subject for i, v in sel.items() if len(v)}) for k, sel in split.selections.items()}
        info["volumes"] = volume_accounting(ds, split)
        info["tr"] = float(ds.tr)
    return info



def score_windows(model: Any, dataset: Any, *, batch_size: int = 256) -> dict[str, Any]:
    """MSE and voxel-wise Pearson r of ``model.predict`` on every window of ``dataset``, r per subject as ``evaluate`` does.

    Parameters
    ----------
    model : object with ``predict(x)``
    dataset : WindowDataset
        Yields ``(x, y, subject)``.

    Returns
    -------
    dict
        ``n``, ``mse`` (over every window and output), and ``mean_r`` / ``median_r``: each subject's voxel-wise r
        over its own windows (outputs with non-constant targets and predictions), its mean / median over
        outputs, then the mean over subjects -- the definition of ``eeg2fmri evaluate``'s group ``median_r``
        (r over windows pooled across subjects would also count differences between the subjects' means);
        ``per_subject``: each subject's ``n``, ``mean_r`` and ``median_r``.
    """
    n, sse = 0, 0.0
    acc: dict[Any, dict[str, np.ndarray]] = {}
    counts: dict[Any, int] = {}
    idx = np.arange(len(dataset))
    takes_subject = isinstance(model, TorchPredictor)
    for b0 in range(0, len(idx), batch_size):
        sel = idx[b0 : b0 + batch_size].tolist()
        if hasattr(dataset, "__getitems__"):
            xb, yb, sb = dataset.__getitems__(sel)
        else:
            items = [dataset[i] for i in sel]
            xb, yb, sb = (np.stack([np.asarray(it[j]) for it in items]) for j in range(3))
        x = np.asarray(xb, dtype=np.float32)
        t = np.asarray(yb, dtype=np.float64).reshape(len(sel), -1)
        sb = np.asarray(sb)
        p = model.predict(x, subject=sb) if takes_subject else model.predict(x)
        p = np.asarray(p, dtype=np.float64).reshape(len(sel), -1)
        sse += float(((p - t) ** 2).sum())
        for subj in np.unique(sb):
            rows = sb == subj
            ps, ts = p[rows], t[rows]
            a = acc.setdefault(subj.item(), {})
            for k, v in (("sp", ps.sum(0)), ("st", ts.sum(0)), ("spp", (ps * ps).sum(0)), ("stt", (ts * ts).sum(0)), ("spt", (ps * ts).sum(0))):
                a[k] = a[k] + v if k in a else v
            counts[subj.item()] = counts.get(subj.item(), 0) + int(rows.sum())
        n += len(sel)
    if n == 0:
        return {"n": 0}
    labels = getattr(getattr(dataset, "ds", None), "subjects", None)  # WindowDataset: subject indices into ds.subjects
    per_subject = {}
    for subj, a in sorted(acc.items()):
        r, ok = pearson_from_sums(counts[subj], a["sp"], a["st"], a["spp"], a["stt"], a["spt"])
        r = r[ok]
        per_subject[str(labels[subj]) if labels is not None else str(subj)] = {"n": counts[subj], "mean_r": float(r.mean()) if len(r) else math.nan, "median_r": float(np.median(r)) if len(r) else math.nan}
    n_out = len(next(iter(acc.values()))["sp"])
    mean_over = lambda key: float(np.mean([v[key] for v in per_subject.values()]))  # noqa: E731
    return {"n": int(n), "mse": sse / (n * n_out), "mean_r": mean_over("mean_r"), "median_r": mean_over("median_r"), "per_subject": per_subject}


def _dotted(cfg: Mapping[str, Any], key: str) -> Any:
    node: Any = cfg
    for k in key.split("."):
        node = node[k]
    return node


#: What ``train`` writes into its folder before the first checkpoint: the config, the prepared data of a BIDS root,
#: Lightning's loggers (``logs/version_N``, ``tensorboard/version_N``) and the (empty) checkpoint folder.
_BEFORE_CHECKPOINT = (CONFIG_NAME, "prepared", "logs", "tensorboard", "checkpoints")


def _stopped_without_checkpoint(out: Path, names: set[str]) -> bool:
    """Whether ``out`` holds only what a train run writes before its first checkpoint (so nothing to resume)."""
    if CONFIG_NAME not in names or not names <= set(_BEFORE_CHECKPOINT):
        return False
    ckpt = out / "checkpoints"
    if ckpt.exists() and (not ckpt.is_dir() or any(ckpt.iterdir())):
        return False
    for logs in ("logs", "tensorboard"):  # Lightning's version_N folders only, nothing else
        d = out / logs
        if d.exists() and (not d.is_dir() or any(not (p.is_dir() and p.name.startswith("version_")) for p in d.iterdir())):
            return False
    return True


def _saved_config_diff(out: Path, cfg: Mapping[str, Any]) -> list[str]:
    """Settings in which ``cfg`` differs from the run saved in ``out`` (as for --resume); ``["config.yaml"]`` if unreadable."""
    try:
        old = load_config(out / CONFIG_NAME)
    except (Eeg2fmriInputError, OSError, ValueError):
        return [CONFIG_NAME]
    return config_diff(old, cfg, ignore=RESUME_IGNORES)


def _prepare_out(cfg: dict, out: Path, *, resume: bool, overwrite: bool) -> dict | None:
    """Check/create the output folder; return saved metrics when a resumed run had already finished."""
    saved = out / CONFIG_NAME
    if resume:
        if not saved.exists():
            raise Eeg2fmriInputError(f"{out}: expected a training folder with {CONFIG_NAME} to resume, found none; start without --resume.")
        old = load_config(saved)
        diff = config_diff(old, cfg, ignore=RESUME_IGNORES)
        if diff:
            raise Eeg2fmriInputError(
                f"{saved}: the run to resume used other settings for {diff[:8]}; resume with the same config "
                f"(only trainer settings and out may change) or start a new run in another folder."
            )
        if (out / METRICS_NAME).exists():
            return json.loads((out / METRICS_NAME).read_text(encoding="utf-8"))
    elif out.exists() and any(out.iterdir()):
        from eeg2fmri.utils.atomic import check_replaceable

        names = {p.name for p in out.iterdir()}
        if names <= {CONFIG_NAME, "prepared"} and not (out / METRICS_NAME).exists():
            # a run that stopped before training (a config or data error after the folder was made): start it again, reusing
            # its prepared data when they are up to date
            logger.info("%s: holds a run that stopped before training (only %s); starting it again", out, ", ".join(sorted(names)))
        elif not overwrite and _stopped_without_checkpoint(out, names):
            # a run that failed during training before its first checkpoint (nothing to resume): only its config.yaml and
            # logs/ are there; it starts again in place, with this config (the usual next step after such a failure is a fixed
            # config: a lower lr, a corrected model), its logs kept as logs/version_N per start
            diff = _saved_config_diff(out, cfg)
            logger.warning("%s: holds a run that stopped during training before its first checkpoint (%s); starting it again%s", out,
                           ", ".join(sorted(names)), f" with other settings for {diff[:8]}" if diff else "")
        elif not overwrite:
            raise Eeg2fmriInputError(f"{out}: output folder exists and is not empty; resume it (--resume), choose another --out, or pass --overwrite.")
        else:
            check_replaceable(out, CONFIG_NAME, "training run folder")
            shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_file(saved, overwrite=True) as tmp:
        tmp.write_text(f"# written by {software_line()}; `eeg2fmri train {CONFIG_NAME}` runs it again\n" + dump_config(final_paths(cfg)), encoding="utf-8")
    return None


def train(
    config: str | os.PathLike | Mapping[str, Any],
    *,
    out: str | os.PathLike | None = None,
    devices: int | None = None,
    num_nodes: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress_bar: bool | None = None,
    verbose: bool = False,
    callbacks: Sequence[Any] = (),
    evaluate_test: bool = True,
) -> TrainRun:
    """Train the model a config describes; write the output folder described in the module docstring.

    Parameters
    ----------
    config : path-like | mapping
        A YAML/TOML/JSON file or the config as a mapping.
    out : path-like | None
        Output folder (overrides ``out`` of the config).
    devices, num_nodes : int | None
        Override ``trainer.devices`` / ``trainer.num_nodes`` (DDP when > 1).
    resume : bool
        Continue an interrupted run in ``out`` from ``checkpoints/last.ckpt``;
        the config must match the saved one (trainer settings may differ).
    overwrite : bool
        Replace a non-empty ``out``.
    progress_bar : bool | None
        Progress bars (``None``: ``trainer.progress_bar`` of the config).
    verbose : bool
        Info messages.
    callbacks : sequence of pytorch_lightning.Callback
        Extra Lightning callbacks (torch models).
    evaluate_test : bool
        After training, score the chosen model once on the test split
        (MSE, voxel-wise r). Nothing is chosen with these numbers.

    Returns
    -------
    TrainRun
        ``fit`` is ``None`` on DDP ranks other than 0 and when a resumed run
        had already finished.
    """
    from eeg2fmri.training.trainer import fit_torch, global_rank

    cfg = _as_config(config)
    if out is not None:
        cfg["out"] = str(Path(out).absolute())
    if devices is not None:
        cfg["trainer"]["devices"] = devices
    if num_nodes is not None:
        cfg["trainer"]["num_nodes"] = num_nodes
    cfg = resolve_config(cfg)
    if cfg["out"] is None:
        raise Eeg2fmriInputError("config: out: expected an output folder, found null; set out: in the config or pass --out.")
    name = cfg["model"]["name"]
    check_hparam_names(name, {}, cfg["model"]["hparams"], str(config) if isinstance(config, (str, os.PathLike)) else "config")
    if getattr(get_model_class(name), "kind", "torch") == "sklearn":
        unused = closed_form_unused(cfg)
        if unused:
            raise Eeg2fmriInputError(
                f"config: {', '.join(unused)}: expected the defaults for the closed-form model {name!r} (it is fitted in one step, with no "
                f"optimiser, loss weights or Lightning trainer), found {', '.join(f'{k}={_dotted(cfg, k)!r}' for k in unused)}; "
                "remove these settings (and --devices/--num-nodes), or choose a torch model."
            )
    out_path = Path(cfg["out"]).absolute()
    rank0 = global_rank() == 0
    if progress_bar is None:
        progress_bar = cfg["trainer"]["progress_bar"]
    # a new run opens (memory-maps) and splits a prepared dataset before the output folder is touched, so that
    # bad data.subjects or split options leave nothing behind; a BIDS root is prepared into that folder
    data = load_data(cfg, out_path) if cfg["data"]["prepared"] is not None and not resume else None
    # a model that does not read the data's representation (its input_kinds) is refused before the folder is touched too
    if data is not None:
        check_input_kind(name, data[0].representation)
    elif cfg["data"]["bids"] is not None:  # the representation the BIDS root will be prepared in
        check_input_kind(name, (cfg["data"]["prepare"] or {}).get("representation") or PrepareConfig().representation)
    if rank0:
        done = _prepare_out(cfg, out_path, resume=resume, overwrite=overwrite)
        if done is not None:
            logger.info("%s: this run had already finished; nothing to resume", out_path)
            return TrainRun(out_path, None, done)
    # DDP workers (ranks > 0) re-run this command with the same arguments; only rank 0 touches the folder
    ds, split = data if data is not None else load_data(cfg, out_path, progress_bar=progress_bar and rank0)
    if isinstance(config, (str, os.PathLike)) and rank0:
        changed_data(Path(config).absolute().parent / METRICS_NAME, ds)
    cls = get_model_class(name)
    is_torch = getattr(cls, "kind", "torch") != "sklearn"
    kinds = tuple(getattr(cls, "input_kinds", None) or ())
    # (a closed-form model reads the same numbers from every input it takes: ridge_hrf the band-power block of tangent windows)
    if rank0 and is_torch and len(kinds) > 1 and ds.representation != kinds[0] and ds.representation in kinds:
        logger.warning("%s: %s reads %r windows best (its preferred input; benchmark and quickstart prepare them for it); this dataset "
                       "holds %r windows. Prepare the data with representation: %s (eeg2fmri prepare ROOT --out DIR --representation %s) "
                       "to train it as benchmark does.", cfg["data"]["prepared"] or cfg["data"]["bids"], name, kinds[0], ds.representation,
                       kinds[0], kinds[0])
    hparams = cfg["model"]["hparams"]
    if is_torch:
        fitted = fit_torch(ds, split, name, hparams, train_config=cfg, out_dir=out_path, resume=resume, progress_bar=progress_bar,
                           verbose=verbose, callbacks=callbacks)
    else:
        fitted = fit_model(ds, split, name, hparams)
    if not rank0:
        return TrainRun(out_path, None, {})
    return _finish(cfg, ds, split, fitted, out_path, evaluate_test=evaluate_test)


def in_sample_reason(fitted: FitResult) -> str | None:
    """Why a fitted model's validation windows are not held out (they are in its training data), or None.

    ``ridge_hrf(refit=True)`` and ``eeg2fmri_net(linear_refit=True)`` fit their closed-form parts on the training and
    validation windows; train config ``optimizer.refit`` trains the network again on them.
    """
    hp = fitted.hparams or {}
    refit = (fitted.info or {}).get("refit")
    if isinstance(refit, dict) and refit.get("epochs"):
        return "optimizer.refit trained the network on the validation windows too"
    if hp.get("refit"):
        return "refit=True fitted the model on the validation windows too"
    if hp.get("linear_refit"):
        return "linear_refit=True fitted the linear path on the validation windows too"
    return None


def _save_calibration(model, ds: PreparedDataset, split: Split, targets: dict, model_dir: Path, in_sample: str | None = None) -> None:
    """Validation calibration for ``synthesize --uncertainty`` (conformal half-widths, Laplace scale, temperature)."""
    from eeg2fmri.evaluation.uncertainty import calibrate_uncertainty, save_calibration

    if not split.selections.get("val"):
        logger.info("no validation windows: no calibration.json (synthesize --uncertainty needs one)")
        return
    from eeg2fmri.evaluation.uncertainty import held_out_residuals_of

    if in_sample and held_out_residuals_of(model) is not None:
        logger.info("calibration.json (synthesize --uncertainty) is calibrated on the validation residuals of the fit before the "
                    "refit (%s): held out", in_sample)
    elif in_sample:  # residuals of windows the model was fitted on: intervals too narrow (a review of optimizer.refit)
        logger.warning("calibration.json (synthesize --uncertainty) comes from in-sample residuals: %s, so its intervals are too "
                       "narrow; calibrate a model trained without it", in_sample)
    try:
        save_calibration(model_dir, calibrate_uncertainty(model, ds, split, targets))
    except Eeg2fmriInputError as err:
        logger.info("no calibration.json: %s", err)


def _finish(cfg: dict, ds: PreparedDataset, split: Split, fitted: FitResult, out: Path, *, evaluate_test: bool) -> TrainRun:
    from eeg2fmri.datasets import WindowDataset
    from eeg2fmri.models._persist import save_trained_model

    bs = cfg["trainer"]["predict_batch_size"]
    names = ["val"] + (["test"] if evaluate_test and split.selections["test"] else [])
    targets = split_targets(ds, split)
    scores = {}
    module = getattr(fitted.model, "module", None)
    on_gpu = module is not None and torch.cuda.is_available() and cfg["trainer"]["accelerator"] in ("auto", "gpu", "cuda")
    if on_gpu:
        module.to("cuda")
    try:
        for nm in names:
            wd = WindowDataset(ds, selection=split.selections[nm], n_frames=split.n_frames, lag=split.lag, targets=targets[nm])
            scores[nm] = score_windows(fitted.model, wd, batch_size=bs)
    finally:
        if on_gpu:
            module.to("cpu")
    info = {k: v for k, v in fitted.info.items() if k not in ("history", "checkpoints")}
    # every hyperparameter as the model was built, defaults included (config.yaml holds the ones given)
    from eeg2fmri.models._persist import json_hparams
    from eeg2fmri.models.base import effective_hparams

    metrics = {"model": fitted.name, "model_hparams": json_hparams(effective_hparams(fitted.name, fitted.hparams))[0], "split": split_info(split, ds),
               "validation": scores["val"], "training": {**info, "fit_seconds": fitted.fit_seconds}}
    in_sample = in_sample_reason(fitted)
    if in_sample:
        metrics["validation_in_sample"] = in_sample
    if "test" in scores:
        metrics["test"] = scores["test"]
    if "history" in fitted.info:
        metrics["history"] = fitted.info["history"]
    card_metrics = {"validation": scores["val"], **({"test": scores["test"]} if "test" in scores else {}), "training": metrics["training"]}
    save_trained_model(fitted.model, out / "model", spec=fitted.spec, name=fitted.name, hparams=fitted.hparams, mask=ds.mask, affine=ds.affine,
                       window={"n_frames": int(split.n_frames), "lag": int(split.lag)}, prepare=model_prepare_config(ds), config=cfg,
                       split=metrics["split"], metrics=card_metrics, overwrite=True, xform_code=ds.xform_code, rois=ds.rois,
                       gradient_artifacts=training_artifact_summary(ds), training_notch=training_notch_summary(ds))
    _save_calibration(fitted.model, ds, split, targets, out / "model", in_sample)
    metrics["software"] = software()
    metrics["data_fingerprint"] = data_fingerprint(ds)
    with atomic_file(out / METRICS_NAME, overwrite=True) as tmp:
        tmp.write_text(json.dumps(to_jsonable(final_paths(metrics), finite=True), indent=1, default=float), encoding="utf-8")  # strict JSON: NaN -> null
    logger.info("wrote %s (model/, metrics.json)", out)
    return TrainRun(out, fitted, metrics)
