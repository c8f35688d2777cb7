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
from eeg2fmri.utils.validation import check_choice

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


def build_model(name: str, spec: DataSpec, **hparams: Any):
    """Instantiate registered model ``name`` for data ``spec`` with hyperparameters."""
    cls = get_model_class(name)
    return cls(spec, **hparams)
