"""The training config: one YAML/TOML/JSON file that fully describes a run.

Sections (every key optional unless marked; defaults in :data:`DEFAULTS`)::

    seed: 0                      # seeds model init, shuffling, dropout
    plugins: []                  # your own models/layouts: module names or .py paths (relative to this file), imported first
    out: runs/my_run             # output folder (or --out)
    data:                        # exactly one of prepared / bids
      prepared: path/to/prepared # a prepared dataset (eeg2fmri prepare)
      bids: path/to/bids         # or a BIDS root, prepared on the fly ...
      prepare: {}                # ... with these PrepareConfig options
      subjects: null             # subset of subjects (their runs only; prepared or bids)
      prepared_out: null         # where to keep the prepared data (bids only; default <out>/prepared)
      n_jobs: 1                  # runs prepared in parallel (bids only)
      layout: bids               # the folder's layout (bids only): bids, auto, a published dataset's (eeg2fmri datasets) or a plugin's
      layout_options: {}         # that layout's options (bids only), e.g. {variant: noGA}
    split:
      protocol: within           # within | loso | kfold, plus any keyword of make_split
    model:
      name: calhas2022           # required: a registered model
      hparams: {}
    optimizer:
      name: adamw                # adamw | adam
      lr: 0.001
      weight_decay: 0.0
      batch_size: 32
      max_epochs: 50
      patience: 10               # early stopping (epochs without improvement); null: off
      min_delta: 0.0             # needs patience (not null)
      monitor: val_loss          # val_loss | val_mse | val_r (validation split only)
      gradient_clip: null        # max gradient norm; null: off
      precision: "32"            # "32" | "bf16-mixed" | "16-mixed" | "auto" (bf16-mixed where native, else "32")
      scheduler: none            # none | cosine
      accumulate_grad_batches: 1
      refit: false               # after early stopping: a fresh model trained on training + validation windows for
                                 # the chosen number of epochs (the model's validation-chosen settings kept)
      floor: null                # [value, epochs]: stop when the monitored value has not reached value within the
                                 # first epochs epochs (eeg2fmri_net: [0.02, 10], the level its blend guard requires)
    loss:                        # weights; 0 switches a term off
      mse: 1.0
      mae: 0.0
      corr: 0.0
      ssim: 0.0
      latent_cosine: 0.0
      laplace_nll: 0.0
      gaussian_nll: 0.0
      organize_channels: 0.0
      kl: 0.0
    trainer:
      accelerator: auto          # auto | cpu | gpu | cuda | mps
      devices: 1                 # or "auto", or GPU indices such as [1]
      num_nodes: 1
      strategy: auto             # auto: "ddp" when devices * num_nodes > 1
      num_workers: 0             # DataLoader worker processes (not with loader_threads > 0)
      loader_threads: auto       # threads fetching batches instead of worker processes; auto: 4 on a GPU
                                 # when num_workers is 0, else 0
      log: auto                  # auto (csv + tensorboard if installed) | [csv, tensorboard]
      deterministic: auto        # auto: deterministic algorithms on CPU
      predict_batch_size: 256
      progress_bar: true         # -q switches it off
    tune:                        # search space for `eeg2fmri tune`
      lr: {low: 1.0e-4, high: 1.0e-2, log: true}

Errors name the key, what was expected and what was found. A key that a
run would not use is refused rather than recorded and ignored: the
bids-only data keys next to ``data.prepared``, ``optimizer.min_delta``
without early stopping, ``trainer.num_workers`` next to loader threads
(and, in ``eeg2fmri train``, optimizer/loss/trainer settings for a
closed-form model: :func:`closed_form_unused`).
"""

from __future__ import annotations

import copy
import inspect
import json
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from eeg2fmri.training.losses import LOSS_TERMS, PRED_TERMS
from eeg2fmri.utils.config import read_config
from eeg2fmri.utils.jsonable import to_jsonable
from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["CLOSED_FORM_USED", "DEFAULTS", "MONITORS", "apply_overrides", "closed_form_unused", "config_diff", "dump_config", "load_config",
           "resolve_config", "set_dotted", "tune_target"]

DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "out": None,
    "data": {"prepared": None, "bids": None, "prepare": {}, "subjects": None, "prepared_out": None, "n_jobs": 1, "layout": "bids",
             "layout_options": {}},
    "split": {"protocol": "within"},
    "model": {"name": None, "hparams": {}},
    "optimizer": {
        "name": "adamw",
        "lr": 1e-3,
        "weight_decay": 0.0,
        "batch_size": 32,
        "max_epochs": 50,
        "patience": 10,
        "min_delta": 0.0,
        "monitor": "val_loss",
        "gradient_clip": None,
        "precision": "32",
        "scheduler": "none",
        "accumulate_grad_batches": 1,
        "refit": False,
        "floor": None,
    },
    "loss": {**{k: 0.0 for k in LOSS_TERMS}, "mse": 1.0},
    "trainer": {
        "accelerator": "auto",
        "devices": 1,
        "num_nodes": 1,
        "strategy": "auto",
        "num_workers": 0,
        "loader_threads": "auto",
        "log": "auto",
        "deterministic": "auto",
        "predict_batch_size": 256,
        "progress_bar": True,
    },
    "tune": {},
}

PROTOCOLS = ("within", "loso", "kfold")
PRECISIONS = ("32", "bf16-mixed", "16-mixed", "auto")
MONITORS = {"val_loss": "min", "val_mse": "min", "val_r": "max"}
LOGGERS = ("csv", "tensorboard")


# ----------------------------------------------------------------------------- checks
class _Ctx:
    """Where a config came from, for messages."""

    def __init__(self, source: str | None) -> None:
        self.source = source

    def fail(self, key: str, expected: str, found: Any, fix: str = "") -> None:
        where = f"{self.source}: " if self.source else "config: "
        tail = f"; {fix}" if fix else ""
        raise Eeg2fmriInputError(f"{where}{key}: expected {expected}, found {found!r}{tail}.")


def _spelling(found: Any, names: Any) -> str:
    """``did you mean 'x'`` for a misspelt key (user test 9: 'split.protcol' got the list of options but no suggestion)."""
    import difflib

    close = difflib.get_close_matches(str(found), [str(n) for n in names], n=1, cutoff=0.6)
    return f"did you mean {close[0]!r} (see docs/training.md)" if close else "check the spelling (see docs/training.md)"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _num(lo: float | None = None, *, strict: bool = False, allow_none: bool = False, integer: bool = False) -> Callable:
    def check(ctx: _Ctx, key: str, v: Any) -> Any:
        if v is None and allow_none:
            return None
        if isinstance(v, str) and not integer:
            try:  # YAML reads 1e-3 (no dot) as a string
                v = float(v)
            except ValueError:
                pass
        ok = _is_int(v) if integer else _is_num(v)
        if ok and lo is not None:
            ok = v > lo if strict else v >= lo
        if not ok:
            kind = "an integer" if integer else "a number"
            bound = "" if lo is None else f" {'>' if strict else '>='} {lo:g}"
            ctx.fail(key, f"{kind}{bound}" + (" or null" if allow_none else ""), v)
        return None if v is None else (int(v) if integer else float(v))

    return check


def _choice(options: tuple | list, allow_none: bool = False) -> Callable:
    def check(ctx: _Ctx, key: str, v: Any) -> Any:
        if v is None and allow_none:
            return None
        if v not in options:
            ctx.fail(key, f"one of {list(options)}", v)
        return v

    return check


def _bool(ctx: _Ctx, key: str, v: Any) -> bool:
    if not isinstance(v, bool):
        ctx.fail(key, "true or false", v)
    return v


def _floor(ctx: _Ctx, key: str, v: Any) -> list | None:
    """``optimizer.floor``: null, or [value, epochs] -- stop when the monitored value has not reached ``value`` within the
    first ``epochs`` epochs."""
    if v is None:
        return None
    ok = (isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in v)
          and math.isfinite(float(v[0])) and math.isfinite(float(v[1])) and float(v[1]) == int(v[1]) and int(v[1]) >= 1)
    if not ok:
        ctx.fail(key, "null or [value, epochs] (a number and a whole number >= 1, e.g. [0.02, 10]: stop when the monitored value "
                 "has not reached 0.02 within the first 10 epochs)", v)
    return [float(v[0]), int(v[1])]


def _opt_str(ctx: _Ctx, key: str, v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, os.PathLike):
        v = os.fspath(v)
    if not isinstance(v, str) or not v:
        ctx.fail(key, "a non-empty string (a path) or null", v)
    return v


def _mapping(ctx: _Ctx, key: str, v: Any) -> dict:
    if v is None:
        return {}
    if not isinstance(v, Mapping):
        ctx.fail(key, "a mapping of settings", v)
    return dict(v)


def _precision(ctx: _Ctx, key: str, v: Any) -> str:
    v = str(v) if _is_int(v) else v
    if v not in PRECISIONS:
        ctx.fail(key, f"one of {list(PRECISIONS)}", v, 'quote "32" in YAML, use "bf16-mixed" on recent GPUs/CPUs, or "auto" (bf16-mixed where the device computes in bfloat16 natively, else "32")')
    return v


def _devices(ctx: _Ctx, key: str, v: Any) -> int | str | list[int]:
    if v == "auto":
        return v
    if isinstance(v, (list, tuple)):  # GPU indices, as Lightning takes them: [1] is the second GPU
        if not v or not all(_is_int(i) and i >= 0 for i in v) or len(set(v)) != len(v):
            ctx.fail(key, 'an integer >= 1, "auto", or a list of distinct GPU indices >= 0 such as [1]', v)
        return [int(i) for i in v]
    if not _is_int(v) or v < 1:
        ctx.fail(key, 'an integer >= 1, "auto", or a list of distinct GPU indices >= 0 such as [1]', v)
    return v


def _loader_threads(ctx: _Ctx, key: str, v: Any) -> int | str:
    if v == "auto":
        return v
    if not _is_int(v) or v < 0:
        ctx.fail(key, 'an integer >= 0 or "auto"', v)
    return v


def _subjects(ctx: _Ctx, key: str, v: Any) -> list | None:
    if v is None:
        return None
    if not isinstance(v, (list, tuple)) or not v or not all(isinstance(s, str) and s.strip() for s in v):
        ctx.fail(key, "a non-empty list of subject labels (strings such as '01') or null for every subject", v)
    return list(v)


def _log(ctx: _Ctx, key: str, v: Any) -> str | list:
    if v == "auto":
        return v
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, (list, tuple)) or not all(x in LOGGERS for x in v):
        ctx.fail(key, f'"auto" or a list from {list(LOGGERS)}', v)
    return list(v)


def _deterministic(ctx: _Ctx, key: str, v: Any) -> str | bool:
    if v not in ("auto", True, False):
        ctx.fail(key, '"auto", true or false', v)
    return v


_SCHEMA: dict[str, dict[str, Callable]] = {
    "data": {"prepared": _opt_str, "bids": _opt_str, "prepare": _mapping, "subjects": _subjects, "prepared_out": _opt_str, "n_jobs": _num(1, integer=True),
             "layout": _opt_str, "layout_options": _mapping},
    "optimizer": {
        "name": _choice(("adamw", "adam")),
        "lr": _num(0, strict=True),
        "weight_decay": _num(0),
        "batch_size": _num(1, integer=True),
        "max_epochs": _num(1, integer=True),
        "patience": _num(1, integer=True, allow_none=True),
        "min_delta": _num(0),
        "monitor": _choice(tuple(MONITORS)),
        "gradient_clip": _num(0, strict=True, allow_none=True),
        "precision": _precision,
        "scheduler": _choice(("none", "cosine")),
        "accumulate_grad_batches": _num(1, integer=True),
        "refit": _bool,
        "floor": _floor,
    },
    "loss": {k: _num(0) for k in LOSS_TERMS},
    "trainer": {
        "accelerator": _choice(("auto", "cpu", "gpu", "cuda", "mps")),
        "devices": _devices,
        "num_nodes": _num(1, integer=True),
        "strategy": lambda ctx, key, v: v if isinstance(v, str) and v else ctx.fail(key, 'a strategy name such as "auto" or "ddp"', v),
        "num_workers": _num(0, integer=True),
        "loader_threads": _loader_threads,
        "log": _log,
        "deterministic": _deterministic,
        "predict_batch_size": _num(1, integer=True),
        "progress_bar": _bool,
    },
}


def _split_options() -> set[str]:
    from eeg2fmri.datasets.targets import make_split

    return {n for n, p in inspect.signature(make_split).parameters.items() if n not in ("ds", "protocol") and p.kind is not p.VAR_KEYWORD}


def _model_defaults(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults of each section for the config's model: its ``recommended_train_config`` over :data:`DEFAULTS`.

    The optimizer keys the model recommends replace the generic defaults one by one; its loss
    weights replace the generic loss only when the config has no ``loss`` section (a loss given
    is the user's whole choice of terms). ``input_kinds`` is the model's inputs, preferred first.
    """
    out: dict[str, Any] = {k: copy.deepcopy(v) for k, v in DEFAULTS.items()}
    out["input_kinds"] = ()
    model = cfg.get("model")
    name = model.get("name") if isinstance(model, Mapping) else None
    if not isinstance(name, str):
        return out
    from eeg2fmri.models import get_model_class, list_models

    if name not in list_models():
        return out  # refused with the list of models below
    cls = get_model_class(name)
    out["input_kinds"] = tuple(getattr(cls, "input_kinds", None) or ())
    rec = getattr(cls, "recommended_train_config", None) or {}
    out["optimizer"].update(rec.get("optimizer", {}))
    given = cfg.get("optimizer") if isinstance(cfg.get("optimizer"), Mapping) else {}
    if "floor" not in given and given.get("monitor", out["optimizer"]["monitor"]) != out["optimizer"]["monitor"]:
        # a recommended floor is a value of the recommended monitor (eeg2fmri_net: a validation r of 0.02); under another
        # monitor it would stop every fit (a loss never falls below 0.02): dropped unless given with that monitor
        out["optimizer"]["floor"] = None
    if "loss" in rec and cfg.get("loss") is None:
        out["loss"] = {**{k: 0.0 for k in LOSS_TERMS}, **rec["loss"]}
    return out


def _check_section(ctx: _Ctx, name: str, given: Any, defaults: dict, schema: dict[str, Callable]) -> dict:
    given = _mapping(ctx, name, given)
    unknown = sorted(set(given) - set(schema))
    if unknown:
        ctx.fail(f"{name}.{unknown[0]}", f"one of the keys {sorted(schema)}", unknown[0], _spelling(unknown[0], schema))
    out = dict(defaults)
    for k, v in given.items():
        out[k] = schema[k](ctx, f"{name}.{k}", v)
    return out


def _check_tune(ctx: _Ctx, space: Any) -> dict:
    space = _mapping(ctx, "tune", space)
    out = {}
    for name, spec in space.items():
        key = f"tune.{name}"
        target = tune_target(name)
        if target[0] not in ("optimizer", "loss", "model", "split") or (target[0] == "model" and (len(target) != 3 or target[1] != "hparams")):
            ctx.fail(key, "a parameter of optimizer, loss, split or model.hparams (bare, or dotted such as model.hparams.latent_dim)", name)
        if target[0] in ("optimizer", "loss") and target[1] not in DEFAULTS[target[0]]:
            ctx.fail(key, f"a key of {target[0]}: {sorted(DEFAULTS[target[0]])}", target[1])
        if not isinstance(spec, Mapping):
            ctx.fail(key, "{low: .., high: .., log: false, step: null} or {choices: [...]}", spec)
        spec = dict(spec)
        if "choices" in spec:
            if set(spec) != {"choices"} or not isinstance(spec["choices"], (list, tuple)) or not spec["choices"]:
                ctx.fail(key, "{choices: [a non-empty list]} and nothing else", spec)
            out[name] = {"choices": list(spec["choices"])}
            continue
        extra = set(spec) - {"low", "high", "log", "step", "type"}
        if extra or "low" not in spec or "high" not in spec:
            ctx.fail(key, "{low: .., high: .., log: false, step: null} or {choices: [...]}", spec)
        low, high = spec["low"], spec["high"]
        for bound, v in (("low", low), ("high", high)):
            if isinstance(v, str):
                try:
                    v = float(v)
                except ValueError:
                    pass
            if not _is_num(v):
                ctx.fail(f"{key}.{bound}", "a number", v)
            spec[bound] = v
        low, high = spec["low"], spec["high"]
        if not low < high:
            ctx.fail(key, "low < high", f"low={low}, high={high}")
        log = spec.get("log", False)
        if not isinstance(log, bool):
            ctx.fail(f"{key}.log", "true or false", log)
        if log and low <= 0:
            ctx.fail(f"{key}.low", "a number > 0 with log: true", low)
        step = spec.get("step")
        if step is not None and (not _is_num(step) or step <= 0 or log):
            ctx.fail(f"{key}.step", "a number > 0 (and log: false) or null", step)
        kind = spec.get("type")
        if kind is None:
            kind = "int" if _is_int(low) and _is_int(high) and (step is None or _is_int(step)) else "float"
        elif kind not in ("int", "float"):
            ctx.fail(f"{key}.type", "int or float", kind)
        out[name] = {"low": low, "high": high, "log": log, "step": step, "type": kind}
    return out


#: Keys a closed-form model (``kind = "sklearn"``) uses in ``eeg2fmri train``; every other optimizer,
#: loss and trainer key belongs to gradient training. ``seed`` is accepted: closed-form fits draw no
#: random numbers, so every seed gives the same model. ``optimizer.monitor`` is what ``eeg2fmri tune`` ranks
#: a closed-form model's trials by (validation mse, or ``val_r``: the validation mean r).
CLOSED_FORM_USED = ("trainer.predict_batch_size", "trainer.progress_bar", "optimizer.monitor")


def closed_form_unused(cfg: Mapping[str, Any], *, used: tuple[str, ...] = CLOSED_FORM_USED) -> list[str]:
    """Dotted keys of a resolved config that a closed-form model would not use, set to other than their defaults.

    Parameters
    ----------
    cfg : mapping
        A resolved config (:func:`resolve_config`).
    used : tuple of str
        Dotted optimizer/loss/trainer keys that the caller does use for
        closed-form models (default: :data:`CLOSED_FORM_USED`, as ``eeg2fmri train``).

    Returns
    -------
    list of str
        E.g. ``["optimizer.lr", "trainer.devices"]``; empty when the config
        only sets what a closed-form fit uses.
    """
    out = []
    for sect in ("optimizer", "loss", "trainer"):
        for key, default in DEFAULTS[sect].items():
            dotted = f"{sect}.{key}"
            if dotted not in used and json.dumps(to_jsonable(cfg[sect][key])) != json.dumps(to_jsonable(default)):
                out.append(dotted)
    return out


def tune_target(name: str) -> list[str]:
    """Config path of a search-space key: dotted paths as written, bare names resolved.

    A bare name is an optimizer key (``lr``), a loss term (``corr``) or else a
    model hyperparameter (``latent_dim`` -> ``model.hparams.latent_dim``).
    """
    if "." in name:
        return name.split(".")
    if name in DEFAULTS["optimizer"]:
        return ["optimizer", name]
    if name in DEFAULTS["loss"]:
        return ["loss", name]
    return ["model", "hparams", name]


def resolve_config(config: Mapping[str, Any] | None, *, source: str | None = None, require_model: bool = True) -> dict[str, Any]:
    """Validate a config and fill every default.

    Parameters
    ----------
    config : mapping | None
        The config as read from a file (see the module docstring).
    source : str | None
        Name used in error messages (the file).
    require_model : bool
        Require ``model.name`` (not needed when the caller passes the model).

    Returns
    -------
    dict
        The resolved config: every section and key present.

    Raises
    ------
    Eeg2fmriInputError
        Naming the key, what was expected and what was found.
    """
    ctx = _Ctx(source)
    cfg = _mapping(ctx, "config", copy.deepcopy(dict(config or {})))
    # plugins: modules or .py files of the user's own models/layouts, imported before the model is looked up, so that the
    # config (and the config.yaml train writes) runs in a fresh shell without EEG2FMRI_PLUGINS (user test 25)
    plugins = cfg.pop("plugins", None)
    if plugins is not None:
        if isinstance(plugins, str):
            plugins = [plugins]
        if not isinstance(plugins, list) or not all(isinstance(x, str) and x.strip() for x in plugins):
            ctx.fail("plugins", "a list of module names or .py file paths (your own models/layouts)", plugins)
        from eeg2fmri.utils.plugins import import_plugin

        for spec in plugins:
            import_plugin(spec, source=f"{source or 'config'}: plugins")
    unknown = sorted(set(cfg) - set(DEFAULTS))
    if unknown:
        ctx.fail(unknown[0], f"one of the top-level sections {sorted(DEFAULTS)}", unknown[0], _spelling(unknown[0], DEFAULTS))
    out: dict[str, Any] = {}
    seed = cfg.get("seed", DEFAULTS["seed"])
    if not _is_int(seed) or seed < 0:
        ctx.fail("seed", "an integer >= 0", seed)
    out["seed"] = seed
    out["out"] = _opt_str(ctx, "out", cfg.get("out"))
    defaults = _model_defaults(cfg)
    for name, schema in _SCHEMA.items():
        out[name] = _check_section(ctx, name, cfg.get(name), defaults[name], schema)
    # data
    d = out["data"]
    if d["prepared"] is not None and d["bids"] is not None:
        ctx.fail("data", "one of data.prepared or data.bids", "both", "keep the one you want")
    if d["prepare"] and d["bids"] is None:
        ctx.fail("data.prepare", "options only together with data.bids", d["prepare"], "a prepared dataset already fixes its preprocessing")
    if d["bids"] is None:
        if d["prepared_out"] is not None:
            ctx.fail("data.prepared_out", "a folder only together with data.bids (where to prepare it)", d["prepared_out"],
                     "remove it: a prepared dataset (data.prepared) is read where it is")
        if d["n_jobs"] != 1:
            ctx.fail("data.n_jobs", "1 unless data.bids is prepared (runs prepared in parallel)", d["n_jobs"],
                     "remove it: a prepared dataset (data.prepared) needs no preparing")
        for key, default in (("layout", "bids"), ("layout_options", {})):
            if d[key] != default:
                ctx.fail(f"data.{key}", f"{default!r} unless data.bids is prepared (how its folder is laid out)", d[key],
                         "remove it: a prepared dataset (data.prepared) is read as it is")
    kinds = defaults["input_kinds"]
    if d["bids"] is not None and kinds and "representation" not in d["prepare"]:
        # a BIDS root is prepared in the model's preferred input (eeg2fmri_net: tangent windows), as benchmark does
        d["prepare"] = {**d["prepare"], "representation": kinds[0]}
    if d["prepare"]:
        from eeg2fmri.datasets.prepared import PrepareConfig

        fields = set(PrepareConfig.__dataclass_fields__)
        bad = sorted(set(d["prepare"]) - fields)
        if bad:
            ctx.fail(f"data.prepare.{bad[0]}", f"one of the PrepareConfig fields {sorted(fields)}", bad[0])
    o, t = out["optimizer"], out["trainer"]
    if o["patience"] is None and o["min_delta"] != 0:
        ctx.fail("optimizer.min_delta", "0 while early stopping is off (patience: null)", o["min_delta"],
                 "set optimizer.patience to an integer to stop early, or remove min_delta")
    if t["num_workers"] > 0 and _is_int(t["loader_threads"]) and t["loader_threads"] > 0:
        ctx.fail("trainer.num_workers", f"0 when trainer.loader_threads is {t['loader_threads']} (threads replace the worker processes)", t["num_workers"],
                 'keep one of them: num_workers (with loader_threads: 0 or "auto") or loader_threads')
    # split
    split = _mapping(ctx, "split", cfg.get("split"))
    split = {**DEFAULTS["split"], **split}
    if split["protocol"] not in PROTOCOLS:
        ctx.fail("split.protocol", f"one of {list(PROTOCOLS)}", split["protocol"])
    allowed = _split_options()
    bad = sorted(set(split) - allowed - {"protocol"})
    if bad:
        ctx.fail(f"split.{bad[0]}", f"protocol or an option of make_split: {sorted(allowed)}", bad[0], _spelling(bad[0], allowed | {"protocol"}))
    out["split"] = split
    # model
    model = _mapping(ctx, "model", cfg.get("model"))
    bad = sorted(set(model) - {"name", "hparams"})
    if bad:
        ctx.fail(f"model.{bad[0]}", "only the keys name and hparams", bad[0])
    name = model.get("name")
    if name is None and require_model:
        ctx.fail("model.name", "a registered model name", None, "list them with `eeg2fmri models`")
    if name is not None:
        from eeg2fmri.models import list_models

        if name not in list_models():
            import difflib

            close = difflib.get_close_matches(str(name), list_models(), n=1, cutoff=0.6)
            ctx.fail("model.name", f"a registered model ({', '.join(list_models())})", name,
                     f"did you mean {close[0]!r}?" if close else "list them with `eeg2fmri models`")
    out["model"] = {"name": name, "hparams": _mapping(ctx, "model.hparams", model.get("hparams"))}
    # loss
    if not any(out["loss"][k] > 0 for k in PRED_TERMS):
        ctx.fail("loss", f"a weight > 0 for at least one of {list(PRED_TERMS)}", {k: out["loss"][k] for k in PRED_TERMS}, "e.g. loss: {mse: 1.0}")
    out["tune"] = _check_tune(ctx, cfg.get("tune"))
    resolved = {k: out[k] for k in DEFAULTS}
    from eeg2fmri.utils.plugins import named_plugins

    named = [p["plugin"] for p in named_plugins()]  # the config's and EEG2FMRI_PLUGINS': config.yaml re-runs with them
    if named:
        resolved["plugins"] = named
    return resolved


def load_config(path: str | os.PathLike, *, require_model: bool = True) -> dict[str, Any]:
    """Read a YAML/TOML/JSON training config and :func:`resolve_config` it.

    Relative paths in ``data``, ``out`` and ``plugins`` (.py files) are taken relative to the config
    file's folder.
    """
    path = Path(path)
    raw = read_config(str(path))
    base = path.absolute().parent
    plugins = raw.get("plugins") if isinstance(raw, dict) else None
    if isinstance(plugins, (str, list)):  # a plugin file's relative path: from the config's folder, as data and out (a review)
        raw = {**raw, "plugins": [str(base / p_) if isinstance(p_, str) and (p_.endswith(".py") or "/" in p_) and not os.path.isabs(
            os.path.expanduser(p_)) else p_ for p_ in ([plugins] if isinstance(plugins, str) else plugins)]}
    cfg = resolve_config(raw, source=str(path), require_model=require_model)
    for sect, key in (("data", "prepared"), ("data", "bids"), ("data", "prepared_out")):
        if cfg[sect][key] is not None:
            val = os.path.expanduser(cfg[sect][key])  # (user test 29: '~/x' became CONFIG_FOLDER/~/x)
            cfg[sect][key] = str((base / val).resolve()) if not os.path.isabs(val) else val
    prep = cfg["data"].get("prepare") or {}
    if isinstance(prep.get("grid"), str) and prep["grid"] != "first":  # a reference image, as data.bids: from the config's folder
        val = os.path.expanduser(prep["grid"])
        prep["grid"] = str((base / val).resolve()) if not os.path.isabs(val) else val
    if cfg["out"] is not None:
        val = os.path.expanduser(cfg["out"])
        cfg["out"] = str((base / val).resolve()) if not os.path.isabs(val) else val
    return cfg


def dump_config(cfg: Mapping[str, Any]) -> str:
    """YAML text of a (resolved) config; :func:`load_config` reads it back unchanged."""
    import yaml

    return yaml.safe_dump(to_jsonable(cfg), sort_keys=False, default_flow_style=False)


def set_dotted(cfg: dict[str, Any], path: list[str] | str, value: Any) -> dict[str, Any]:
    """Set ``cfg[a][b][c] = value`` for ``path = "a.b.c"`` (creating mappings), in place."""
    keys = path.split(".") if isinstance(path, str) else list(path)
    node = cfg
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value
    return cfg


def apply_overrides(cfg: Mapping[str, Any], overrides: Mapping[str, Any], *, source: str | None = None) -> dict[str, Any]:
    """Copy of ``cfg`` with ``{"dotted.key": value}`` set, validated again."""
    new = copy.deepcopy(dict(cfg))
    for k, v in overrides.items():
        set_dotted(new, tune_target(k), v)
    return resolve_config(new, source=source)


def config_diff(a: Mapping[str, Any], b: Mapping[str, Any], *, ignore: tuple[str, ...] = ()) -> list[str]:
    """Dotted keys whose values differ between two resolved configs."""
    out: list[str] = []

    def walk(x: Any, y: Any, prefix: str) -> None:
        if prefix in ignore:
            return
        if isinstance(x, Mapping) and isinstance(y, Mapping):
            for k in sorted(set(x) | set(y)):
                walk(x.get(k), y.get(k), f"{prefix}.{k}" if prefix else str(k))
        elif json.dumps(to_jsonable(x), sort_keys=True) != json.dumps(to_jsonable(y), sort_keys=True):
            out.append(prefix)

    walk(a, b, "")
    return out
