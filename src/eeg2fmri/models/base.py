"""Model registry (the data specification every model is built from, :class:`DataSpec`, is in :mod:`eeg2fmri.datasets.spec`).

Every model is a plain :class:`torch.nn.Module` built from sizes derived from
the data (never hard-coded), described by a :class:`DataSpec`:

==============  ===========================================  =================================
input_kind      one window ``x`` (batch axis first)          meaning of the axes
==============  ===========================================  =================================
``"raw"``       ``(batch, n_chans, n_times)``                EEG samples at ``sfreq``
``"stft"``      ``(batch, n_chans, n_freqs, n_frames)``      STFT magnitude, ``freqs`` in Hz,
                                                             ``frame_rate`` frames per second
``"bandpower"`` ``(batch, n_chans, n_bands, n_frames)``      band-power envelopes
==============  ===========================================  =================================

The target ``y`` has shape ``(batch, *output_shape)``: a volume ``(X, Y, Z)``
or a vector ``(n_outputs,)`` (masked voxels or ROIs).

A model's ``forward(x, subject=None)`` returns the prediction of shape
``(batch, *output_shape)``. Models with extra training terms (latent
alignment, attention regulariser, Laplace scale) also implement
``training_terms(x, y, subject=None) -> dict[str, Tensor]`` returning at least
``"pred"`` plus named auxiliary losses (scalars) or tensors such as
``"log_scale"``; the training loop weights them from the config.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from eeg2fmri.datasets.spec import INPUT_KINDS, DataSpec  # noqa: F401  (re-exported for users)
from eeg2fmri.utils.validation import Eeg2fmriInputError

_REGISTRY: dict[str, type] = {}


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def register_model(name: str) -> Callable[[type], type]:
    """Class decorator adding a model to the registry under ``name``.

    The class is built as ``cls(spec, **hparams)`` (:func:`build_model`): its ``__init__`` takes the
    :class:`DataSpec` first. A model of your own lives in your own module; name that module in the
    ``EEG2FMRI_PLUGINS`` environment variable (or an ``eeg2fmri.plugins`` entry point) so that every
    command imports it (:mod:`eeg2fmri.utils.plugins`). Registering a name again with a class of the
    same module and name (``importlib.reload`` in a notebook), or of the same name in the same source file
    (one file imported by path and by module name), replaces it; another class is refused.
    """

    def deco(cls: type) -> type:
        import inspect

        from eeg2fmri.utils.plugins import same_definition

        old = _REGISTRY.get(name)
        if old is not None and old is not cls and _qualname(old) != _qualname(cls) and not same_definition(old, cls):
            raise Eeg2fmriInputError(f"register_model({name!r}): expected a free name, found it taken by {_qualname(old)}; register "
                                     f"{_qualname(cls)} under another name.")
        try:
            params = [p for p in inspect.signature(cls.__init__).parameters.values() if p.name != "self"]
        except (TypeError, ValueError):
            params = []
        if not params or params[0].name != "spec" or params[0].kind not in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
            raise Eeg2fmriInputError(f"register_model({name!r}): expected {_qualname(cls)}.__init__(self, spec, **hyperparameters) (models are built "
                                     f"as cls(spec, **hparams) from the data's DataSpec), found ({', '.join(p.name for p in params)}); take the "
                                     "DataSpec as the first argument and read sizes from it (spec.input_shape, spec.n_outputs, ...).")
        if getattr(cls, "kind", "torch") == "sklearn":  # closed-form: the methods fit/predict/save use (user test 25)
            missing = [m for m in ("fit", "predict", "state_dict", "load_state_dict") if not callable(getattr(cls, m, None))]
            if missing:
                raise Eeg2fmriInputError(f"register_model({name!r}): a closed-form model (kind = 'sklearn') needs the methods fit(x, y, x_val, "
                                         f"y_val), predict(x, subject=None), state_dict() and load_state_dict(state) (get_params() is "
                                         f"optional); {_qualname(cls)} lacks {missing} (train saves the fitted model with state_dict, "
                                         "load_model restores it with load_state_dict).")
            try:  # (user test 41: scikit-learn's fit(X, y) registered, then train crashed with a raw TypeError)
                fit_params = [q for q in inspect.signature(cls.fit).parameters.values() if q.name != "self"]
            except (TypeError, ValueError):
                fit_params = None
            positional = [q for q in (fit_params or []) if q.kind in (q.POSITIONAL_ONLY, q.POSITIONAL_OR_KEYWORD)]
            # (training calls fit(x, y, x_val, y_val) positionally: keyword-only validation arguments fail too -- a review)
            if fit_params is not None and not any(q.kind == q.VAR_POSITIONAL for q in fit_params) and len(positional) < 4:
                raise Eeg2fmriInputError(f"register_model({name!r}): expected {_qualname(cls)}.fit(self, x, y, x_val, y_val) (training passes the "
                                         f"validation windows and targets too, e.g. to choose a penalty; they may be ignored), found "
                                         f"({', '.join(q.name for q in fit_params)}); add x_val=None, y_val=None to its parameters.")
        else:  # a torch module is called as model(x, subject=...) (user test 25: forward(self, x) crashed inside torch)
            fwd = getattr(cls, "forward", None)
            if getattr(fwd, "__name__", "") == "_forward_unimplemented":  # (torch's placeholder: nothing defined yet to check)
                fwd = None
            try:
                fparams = list(inspect.signature(fwd).parameters.values()) if fwd is not None else []
            except (TypeError, ValueError):
                fparams = []
            if fparams and not any(q.name == "subject" or q.kind == q.VAR_KEYWORD for q in fparams):
                raise Eeg2fmriInputError(f"register_model({name!r}): expected {_qualname(cls)}.forward(self, x, subject=None) (the trainer and "
                                         f"every command call model(x, subject=...): subject indices, or None for unseen subjects), found "
                                         f"({', '.join(q.name for q in fparams)}); add subject=None to its parameters (it may ignore it).")
        cls.registry_name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def _registered() -> dict[str, type]:
    import eeg2fmri.models  # noqa: F401  (registers the package's models)
    from eeg2fmri.utils.plugins import load_plugins

    load_plugins()  # models of your own (EEG2FMRI_PLUGINS, entry points)
    return _REGISTRY


def list_models() -> list[str]:
    """Names of the registered models (the package's and those of plugins: :mod:`eeg2fmri.utils.plugins`)."""
    return sorted(_registered())


def model_input_kinds(name: str) -> tuple[str, ...]:
    """Input kinds a registered model reads, its preferred one first (class attribute ``input_kinds``)."""
    return tuple(getattr(get_model_class(name), "input_kinds", INPUT_KINDS))


def get_model_class(name: str, *, module: str | None = None) -> type:
    """Return the registered class for ``name`` or raise listing the choices.

    ``module``: where a saved model says its class was defined (``model.json``); imported when
    ``name`` is not registered yet, so a model of your own loads without naming its plugin.
    """
    reg = _registered()
    if name not in reg and module:
        from eeg2fmri.utils.plugins import import_plugin

        import_plugin(module, source=f"model {name!r} (its module, recorded in model.json)")
    if name not in reg:
        import difflib

        close = difflib.get_close_matches(str(name), sorted(reg), n=1)
        raise Eeg2fmriInputError(f"unknown model {name!r}{f' (did you mean {close[0]!r}?)' if close else ''}; choose one of: "
                                 f"{', '.join(map(repr, sorted(reg)))}. A model of your own: register it with @register_model in your "
                                 "module and name the module in the EEG2FMRI_PLUGINS environment variable (see ARCHITECTURE.md).")
    return reg[name]


def model_hparams(name: str) -> list[str]:
    """The hyperparameters (keyword arguments after ``spec``) of registered model ``name``."""
    import inspect

    params = inspect.signature(get_model_class(name).__init__).parameters
    return [p for p, v in params.items() if p not in ("self", "spec") and v.kind in (v.KEYWORD_ONLY, v.POSITIONAL_OR_KEYWORD)]


def effective_hparams(name: str, hparams: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every hyperparameter of registered model ``name`` as it is built: the constructor's defaults, then ``hparams``
    over them (user test 34: a run recorded only the hyperparameters given, so a changed default went unnoticed).
    A keyword without a default (none of the registered models has one) is left out."""
    import inspect

    params = inspect.signature(get_model_class(name).__init__).parameters
    out = {p: v.default for p, v in params.items() if p not in ("self", "spec") and v.kind in (v.KEYWORD_ONLY, v.POSITIONAL_OR_KEYWORD)
           and v.default is not inspect.Parameter.empty}
    out.update(dict(hparams or {}))
    return out


def build_model(name: str, spec: DataSpec, **hparams: Any):
    """Instantiate registered model ``name`` for data ``spec`` with hyperparameters (unknown ones are refused by name)."""
    import inspect

    cls = get_model_class(name)
    known = model_hparams(name)
    open_ended = any(v.kind == v.VAR_KEYWORD for v in inspect.signature(cls.__init__).parameters.values())
    unknown = [] if open_ended else sorted(set(hparams) - set(known))
    if unknown:
        import difflib

        hints = [f"{u!r} -> {close[0]!r}?" for u in unknown if (close := difflib.get_close_matches(u, known, n=1))]
        raise Eeg2fmriInputError(f"model {name!r}: unknown hyperparameter(s) {unknown}{' (' + ', '.join(hints) + ')' if hints else ''}; "
                                 f"expected some of {known} (model.hparams in a config).")
    try:
        model = cls(spec, **hparams)
    except Eeg2fmriInputError:
        raise
    except (TypeError, ValueError, RuntimeError) as err:  # e.g. a hyperparameter of the wrong type reaching torch
        raise Eeg2fmriInputError(f"model {name!r}: could not be built with hyperparameters {hparams} for {spec.input_kind} windows "
                                 f"{tuple(spec.input_shape)} -> outputs {tuple(spec.output_shape)}: {type(err).__name__}: {err}; check the "
                                 "hyperparameters' types and values (model.hparams in a config).") from err
    if not isinstance(getattr(model, "spec", None), DataSpec):  # what explain, insight and save read (user test 25: a model
        try:  # that did not keep it could not be explained); a class that keeps it elsewhere is left as it is
            model.spec = spec
        except (AttributeError, TypeError):
            pass
    return model


def held_out_residuals(module: Any, batches: Any) -> Any:
    """Residuals ``target - prediction`` of a torch model on validation batches, before a refit sees them.

    Models that refit on their validation windows (``ridge_hrf(refit=True)``, ``eeg2fmri_net(linear_refit=True)``,
    train config ``optimizer.refit``) keep them as ``val_residuals_``: conformal intervals calibrated on the refitted
    model's own validation residuals are too narrow (in-sample).

    Parameters
    ----------
    module : torch.nn.Module
        Called as ``module(x, subject=s)`` (``subject`` None where the batch has none), in eval mode, without gradients.
    batches : iterable of (x, y, s)
        The validation windows in order, as the trainer gives them to ``after_fit``.

    Returns
    -------
    residuals : array, shape (n_val, n_outputs), float32
    check : array, shape (2, n_outputs), float64
        :func:`target_fingerprint` of the validation targets: the calibration checks that it is given the same windows in
        the same order (``val_target_check_``).
    """
    import numpy as np
    import torch

    was_training = module.training
    module.eval()
    dev = next((t.device for t in module.parameters()), torch.device("cpu"))
    out, check, start = [], None, 0
    try:
        with torch.no_grad():
            for xb, yb, sb in batches:
                xb = torch.as_tensor(xb).float().to(dev)
                p = module(xb, subject=None if sb is None else torch.as_tensor(sb).to(dev)).reshape(len(xb), -1)
                y = torch.as_tensor(yb, dtype=torch.float32).reshape(len(xb), -1).numpy()
                out.append(y - p.float().cpu().numpy())
                part = target_fingerprint(y, start=start)  # batch by batch: no copy of every target kept
                check = part if check is None else check + part
                start += len(y)
    finally:
        module.train(was_training)
    if not out:
        return np.empty((0, 0), dtype=np.float32), np.zeros((2, 0))
    return np.concatenate(out).astype(np.float32, copy=False), check


def target_fingerprint(y: Any, *, start: int = 0) -> Any:
    """Two sums per output that tell the same target windows in the same order from others.

    ``w @ y`` with pseudo-random weights fixed by each window's position (a Weyl sequence, not linear in the position:
    a position-weighted or plain sum is ~0 for every detrended span) and ``sum(y**2)``, in float64.

    Parameters
    ----------
    y : array, shape (n_windows, ...)
        Targets; outputs flattened.
    start : int
        Position of ``y``'s first window (sums over consecutive batches add up to the sums over all windows).

    Returns
    -------
    array, shape (2, n_outputs), float64
    """
    import numpy as np

    y = np.asarray(y).reshape(len(y), -1)
    pos = np.arange(start, start + len(y), dtype=np.float64)
    w = np.mod(pos * 0.6180339887498949 + 0.5, 1.0) - 0.5
    y64 = y.astype(np.float64)
    return np.stack([w @ y64, np.einsum("ij,ij->j", y64, y64)])
