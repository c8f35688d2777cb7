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

from collections.abc import Callable
from typing import Any

from eeg2fmri.datasets.spec import INPUT_KINDS, DataSpec  # noqa: F401  (re-exported for users)
from eeg2fmri.utils.validation import Eeg2fmriInputError, check_choice

_REGISTRY: dict[str, type] = {}


def register_model(name: str) -> Callable[[type], type]:
    """Class decorator adding a model to the registry under ``name``."""

    def deco(cls: type) -> type:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"model name {name!r} registered twice")
        cls.registry_name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def list_models() -> list[str]:
    """Names of the registered models (import side effects included)."""
    import eeg2fmri.models  # noqa: F401  (registers all models)

    return sorted(_REGISTRY)


def model_input_kinds(name: str) -> tuple[str, ...]:
    """Input kinds a registered model reads, its preferred one first (class attribute ``input_kinds``)."""
    return tuple(getattr(get_model_class(name), "input_kinds", INPUT_KINDS))


def get_model_class(name: str) -> type:
    """Return the registered class for ``name`` or raise listing the choices."""
    import eeg2fmri.models  # noqa: F401

    check_choice(name, "model", sorted(_REGISTRY))
    return _REGISTRY[name]


def model_hparams(name: str) -> list[str]:
    """The hyperparameters (keyword arguments after ``spec``) of registered model ``name``."""
    import inspect

    params = inspect.signature(get_model_class(name).__init__).parameters
    return [p for p, v in params.items() if p not in ("self", "spec") and v.kind in (v.KEYWORD_ONLY, v.POSITIONAL_OR_KEYWORD)]


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
    return cls(spec, **hparams)
