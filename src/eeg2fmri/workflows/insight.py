"""What a trained torch model learned, drawn without attributions: spatial patterns, learned HRFs, attention.

:func:`write_insight` runs :func:`eeg2fmri.evaluation.explain.explain` with no
attribution method (so no Captum and no gradients): the flagship's Haufe
patterns per band as MNE topomaps on the training montage and its learned
HRFs as curves, BEIRA's spatial patterns, calhas2022's attention graph. The
quickstart and ``evaluate`` write them into ``insight/`` of their output
folder, where the HTML report picks them up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eeg2fmri.datasets.prepared import PreparedDataset
from eeg2fmri.datasets.targets import Split
from eeg2fmri.utils.logs import logger
from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["has_insight", "write_insight"]


def _module(model: Any) -> Any:
    return getattr(model, "module", model)


def has_insight(model: Any) -> bool:
    """Whether ``model`` (a torch module, a predictor wrapping one, or anything else) has patterns/HRFs/attention to draw."""
    m = _module(model)
    return (all(hasattr(m, a) for a in ("unmix", "hrf_kernels", "band_power")) or hasattr(m, "spatial_patterns")
            or hasattr(m, "attention_scores"))


def write_insight(model: Any, ds: PreparedDataset, split: Split, out: Path, *, window: dict | None = None) -> list[Path]:
    """Write the learned patterns/HRFs/attention of ``model`` into folder ``out``.

    Parameters
    ----------
    model : object
        A fitted model; only registered torch models with patterns, HRFs or
        attention give figures.
    ds : PreparedDataset
        The data the model was trained on (patterns need its training windows).
    split : Split
        Training windows for the Haufe patterns, test windows for attention.
    out : Path
        Folder to create (``explain.json``, ``explain.tsv`` and the figures).
    window : dict | None
        ``{"n_frames", "lag"}`` of the model (default: the split's).

    Returns
    -------
    list of Path
        The PNG files written; empty when the model has nothing to draw or
        the explanation is refused (the reason is logged).
    """
    if not has_insight(model):
        return []
    from eeg2fmri.evaluation.explain import dataset_montage, explain
    from eeg2fmri.workflows.explain import write_explanation

    try:
        res = explain(_module(model), ds, split, methods=(), window=window, progress_bar=False)
        if res.get("insight") is None:
            return []
        montage, source = dataset_montage(ds, list(res["channels"]))
        write_explanation(res, Path(out), montage=montage, montage_source=source, say_written=False)
    except (Eeg2fmriInputError, ValueError, RuntimeError) as err:  # e.g. channels without positions in any montage
        logger.info("insight figures skipped: %s", err)
        return []
    return sorted(Path(out).glob("*.png"))
