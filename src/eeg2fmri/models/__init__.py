"""Model registry: one model per file, built from a :class:`DataSpec`.

Importing this package registers every model; see :func:`list_models`.
"""

from eeg2fmri.models.base import DataSpec, build_model, get_model_class, list_models, register_model

__all__ = ["DataSpec", "build_model", "get_model_class", "list_models", "register_model"]
