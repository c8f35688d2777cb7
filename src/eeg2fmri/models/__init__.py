"""Model registry: one model per file, built from a :class:`DataSpec`.

Importing this package imports every module in it, which registers each model
(``@register_model("name")``); see :func:`list_models`. To add a model, drop a
file here that defines and registers one ``torch.nn.Module``.
"""

import importlib
import pkgutil

from eeg2fmri.datasets.spec import DataSpec
from eeg2fmri.models._persist import LoadedModel, load_model, save_model
from eeg2fmri.models.base import build_model, get_model_class, list_models, register_model

for _mod in pkgutil.iter_modules(__path__):
    if not _mod.name.startswith("_") and _mod.name != "base":
        importlib.import_module(f"{__name__}.{_mod.name}")

__all__ = ["DataSpec", "LoadedModel", "build_model", "get_model_class", "list_models", "load_model", "register_model", "save_model"]
