"""Save and load trained models safely: safetensors weights + JSON metadata.

A model directory holds ``model.json`` (registry name, :class:`DataSpec`,
hyperparameters, preprocessing, window, grid), ``weights.safetensors``,
``mask.nii.gz`` (target grid) and ``MODEL_CARD.md``. Nothing is unpickled.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eeg2fmri.models.base import DataSpec, build_model
from eeg2fmri.utils.atomic import atomic_dir
from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["LoadedModel", "load_model", "save_model"]

FORMAT_VERSION = 1


@dataclass
class LoadedModel:
    """A model read back from disk with its metadata and target grid."""

    model: Any
    meta: dict
    mask: np.ndarray
    affine: np.ndarray

    @property
    def spec(self) -> DataSpec:
        return DataSpec.from_dict(self.meta["spec"])


def save_model(model: Any, out: str | os.PathLike, *, spec: DataSpec, name: str, hparams: dict, mask: np.ndarray, affine: np.ndarray,
               window: dict, prepare: dict, card: dict | None = None, overwrite: bool = False) -> Path:
    """Write a model directory atomically (see module docstring)."""
    import nibabel as nib
    import torch
    from safetensors.numpy import save_file as save_np
    from safetensors.torch import save_file as save_torch

    kind = getattr(model, "kind", "torch")
    meta = dict(format_version=FORMAT_VERSION, model=name, kind=kind, spec=spec.to_dict(), hparams=hparams, window=window, prepare=prepare,
                grid_shape=list(mask.shape), affine=np.asarray(affine).tolist(), card=card or {})
    with atomic_dir(out, overwrite=overwrite) as tmp:
        if kind == "sklearn":
            save_np({k: np.ascontiguousarray(v) for k, v in model.state_dict().items()}, str(tmp / "weights.safetensors"))
        else:
            state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}
            save_torch(state, str(tmp / "weights.safetensors"))
        nib.save(nib.Nifti1Image(mask.astype(np.uint8), np.asarray(affine)), tmp / "mask.nii.gz")
        (tmp / "model.json").write_text(json.dumps(meta, indent=1, default=float))
        (tmp / "MODEL_CARD.md").write_text(_card_text(meta))
    return Path(out)


def _card_text(meta: dict) -> str:
    card = meta.get("card", {})
    lines = [f"# Model card: {meta['model']}", "", "Trained with eeg2fmri. Predictions are in per-voxel standardised (z) units.", "",
             "## Inputs", f"- representation: {meta['spec']['input_kind']}, window {meta['spec']['input_shape']}",
             f"- EEG channels ({len(meta['spec']['ch_names'])}): {', '.join(meta['spec']['ch_names'])}",
             f"- EEG sampling rate at training: {meta['spec']['sfreq']} Hz; TR {meta['spec']['tr']} s",
             f"- preprocessing: {json.dumps(meta['prepare'])}", "", "## Output", f"- grid {meta['grid_shape']}, {meta['spec']['output_shape'][0] if len(meta['spec']['output_shape']) == 1 else meta['spec']['output_shape']} outputs", ""]
    for k, v in card.items():
        lines += [f"## {k}", "```", json.dumps(v, indent=1, default=float), "```", ""]
    return "\n".join(lines)


def load_model(path: str | os.PathLike) -> LoadedModel:
    """Load a model directory written by :func:`save_model` (no pickle involved)."""
    import nibabel as nib

    path = Path(path)
    mj = path / "model.json"
    if not mj.exists():
        raise Eeg2fmriInputError(f"{path}: expected a model directory with model.json, found none; pass the folder written by training/quickstart.")
    meta = json.loads(mj.read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise Eeg2fmriInputError(f"{mj}: model format {meta.get('format_version')} is not supported (expected {FORMAT_VERSION}); retrain or upgrade eeg2fmri.")
    spec = DataSpec.from_dict(meta["spec"])
    model = build_model(meta["model"], spec, **meta.get("hparams", {}))
    wpath = path / "weights.safetensors"
    if meta["kind"] == "sklearn":
        from safetensors.numpy import load_file

        model.load_state_dict(load_file(str(wpath)))
    else:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(wpath)), strict=False)
        model.eval()
    mask = np.asarray(nib.load(path / "mask.nii.gz").dataobj) > 0
    return LoadedModel(model, meta, mask, np.asarray(meta["affine"]))
