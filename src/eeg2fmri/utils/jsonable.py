"""One conversion of results, configs and metadata to plain JSON/YAML values."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["to_jsonable"]


def to_jsonable(obj: Any, *, drop_private: bool = False, finite: bool = False) -> Any:
    """A copy of ``obj`` made of plain Python values (dict, list, str, int, float, bool, None).

    Parameters
    ----------
    obj : object
        Mappings (keys become ``str``), lists and tuples (become lists),
        NumPy arrays (become nested lists), NumPy or torch scalars (their
        ``.item()``), paths (``os.fspath``); anything else is kept as it is.
    drop_private : bool
        Leave out mapping keys starting with ``_`` (arrays kept for figures).
    finite : bool
        Turn NaN and inf floats into ``None`` (strict JSON).

    Returns
    -------
    object
    """
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v, drop_private=drop_private, finite=finite) for k, v in obj.items()
                if not (drop_private and str(k).startswith("_"))}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v, drop_private=drop_private, finite=finite) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist(), drop_private=drop_private, finite=finite)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    if finite and isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
