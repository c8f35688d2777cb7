"""Save and load trained models safely: safetensors weights + JSON metadata.

A model directory holds ``model.json`` (registry name, :class:`DataSpec`,
hyperparameters, preprocessing, window, grid), ``weights.safetensors``,
``mask.nii.gz`` (target grid) and ``MODEL_CARD.md``. Nothing is unpickled.
Models trained from a config (:func:`save_trained_model`) also hold
``train_config.json`` (the resolved training config) and a card with the
split and the metrics. :func:`check_compatible` refuses EEG that differs
from the training data in channels, sampling rate or representation.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eeg2fmri.datasets.spec import DataSpec
from eeg2fmri.models.base import build_model, effective_hparams, get_model_class
from eeg2fmri.utils.atomic import _user_mode, atomic_dir, final_paths
from eeg2fmri.utils.jsonable import to_jsonable
from eeg2fmri.utils.logs import logger
from eeg2fmri.utils.provenance import software, software_line
from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["LoadedModel", "check_compatible", "load_model", "load_predictor", "save_model", "save_trained_model"]

FORMAT_VERSION = 6
#: formats this version reads (2: an ``eeg2fmri_net`` may hold its tangent ridge in factored form, ``ridge_tan_proj``;
#: 3: an ``eeg2fmri_net`` may hold a reduced-rank output, ``out_basis`` and ``out_centre``; 4: a per-output
#: shrinkage, ``voxel_gain`` and ``gain_centre``; 5: outputs that keep the full prediction under the reduced rank,
#: ``out_keep``; 6: its band-power ridge in factored form, ``ridge_proj``, and a ``ridge_hrf`` factored by default)
READABLE_FORMATS = (1, 2, 3, 4, 5, 6)


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

    def predict(self, x: np.ndarray, subject: np.ndarray | None = None) -> np.ndarray:
        """Predictions for windows ``x`` of shape ``(n, *spec.input_shape)``: ``(n, n_outputs)`` float32.

        A torch model goes through :class:`~eeg2fmri.models.predictor.TorchPredictor` (eval mode, no
        gradients, batches, a clear error for windows of another shape); a closed-form one predicts itself.
        """
        from eeg2fmri.models.predictor import TorchPredictor

        if self.meta.get("kind") == "sklearn":
            return np.asarray(self.model.predict(x), dtype=np.float32)
        if isinstance(self.model, TorchPredictor):  # load_predictor wrapped it already (user test 41: wrapped twice, crashed)
            return self.model.predict(x, subject)
        return TorchPredictor(self.model, self.spec, self.meta.get("hparams", {})).predict(x, subject)


def _model_meta(name: str, kind: str, spec: DataSpec, hparams: dict, window: dict, prepare: dict, mask: np.ndarray, affine: np.ndarray,
                card: dict, rois: dict | None, gradient_artifacts: dict | None = None, training_notch: dict | None = None) -> dict[str, Any]:
    """``model.json`` of a model directory."""
    # (a scikit-learn style get_params() lists the spec too: it is saved on its own, below)
    hparams = {k: v for k, v in dict(hparams or {}).items() if k != "spec"}
    meta = dict(format_version=FORMAT_VERSION, model=name, kind=kind, spec=spec.to_dict(), hparams=hparams, window=window, prepare=prepare,
                grid_shape=list(mask.shape), affine=np.asarray(affine).tolist(), card=card, software=software())
    # every hyperparameter as built, defaults included: load_model builds with the saved values and says when a default
    # changed in the code since (user test 41: a changed default silently doubled a loaded model's predictions)
    saved, other = json_hparams({k: v for k, v in effective_hparams(name, hparams).items() if k != "spec"})
    meta["hparams_effective"] = saved
    if other:  # (a class, a function, a torch dtype as a default: shown, never used to build -- a review: they crashed saving)
        meta["hparams_not_saved"] = other
    module = get_model_class(name).__module__
    import sys

    file = getattr(sys.modules.get(module), "__file__", None)
    if not module.startswith("eeg2fmri.") and not module.startswith("eeg2fmri_plugin_"):
        meta["module"] = module  # a model of your own: load_model imports it
    elif module.startswith("eeg2fmri_plugin_"):  # a .py plugin file (EEG2FMRI_PLUGINS): its path, so load_model finds it (user test 25)
        if file:
            meta["plugin_file"] = str(Path(file).absolute())
    if not module.startswith("eeg2fmri.") and module != "__main__" and file and Path(file).is_file():  # its code, checked at loading
        # (not a script's __main__: importing it at loading would run the script again -- a review)
        import hashlib

        meta["model_source"] = {"file": str(Path(file).absolute()), "sha256": hashlib.sha256(Path(file).read_bytes()).hexdigest()}
    if rois is not None:
        meta["rois"] = rois
    if gradient_artifacts is not None:  # prepare's gradient-artefact check on the training runs: {"runs": n, "detected": k}
        meta["training_gradient_artifacts"] = dict(gradient_artifacts)
    if training_notch:  # the power-line notch of every training run, {"50": n_runs, "none": n_runs}: synthesis warns from it
        meta["training_notch_hz"] = dict(training_notch)
    return meta


def _plain(value: Any) -> Any:
    """``value`` as model.json holds it (tuples as lists, NumPy values as Python ones), for comparisons with what was read."""
    return json.loads(json.dumps(to_jsonable(value), default=float))


def json_hparams(hp: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """``hp`` split into the values JSON holds (as :func:`_plain` writes them) and the others (their ``repr``)."""
    ok: dict[str, Any] = {}
    other: dict[str, str] = {}
    for k, v in hp.items():
        try:
            ok[k] = _plain(v)
        except (TypeError, ValueError, OverflowError):
            other[k] = repr(v)
    return ok, other


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON values (NaN equal to NaN)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _saved_hparams(meta: dict, where: Path) -> dict[str, Any]:
    """The hyperparameters to build a saved model with: those given at training, and the saved value of every default
    that the model's code has changed since (warned, by name); a warning too when the source file of a model of your own
    changed (its sha256)."""
    hp = dict(meta.get("hparams", {}))
    saved = meta.get("hparams_effective")
    name = meta["model"]
    if isinstance(saved, dict):
        now = effective_hparams(name, hp)
        changed = {}
        for k, v in saved.items():
            if k in now and k not in hp:
                try:
                    if not _same(_plain(now[k]), v):
                        changed[k] = v
                except (TypeError, ValueError, OverflowError):  # the default is no longer a JSON value: the code changed
                    changed[k] = v
        if changed:
            logger.warning("%s: the code of model %r now has other defaults than when this model was saved (%s); it is built with "
                           "the saved values", where, name, "; ".join(f"{k}: saved {v!r}, now {now[k]!r}" for k, v in changed.items()))
            hp.update(changed)
        gone = sorted(k for k in saved if k not in now and k not in hp)
        if gone:
            logger.warning("%s: model %r was saved with hyperparameter(s) %s that its code no longer has; it is built without them "
                           "(load it with the code that trained it to be sure of its predictions)", where, name, gone)
    src = meta.get("model_source")
    if isinstance(src, dict) and src.get("file") and Path(src["file"]).is_file():
        import hashlib

        if hashlib.sha256(Path(src["file"]).read_bytes()).hexdigest() != src.get("sha256"):
            logger.warning("%s: the source file of model %r (%s) changed since this model was saved; its predictions may differ from "
                           "the recorded ones (load it with the code that trained it)", where, name, src["file"])
    return hp


def save_model(model: Any, out: str | os.PathLike, *, spec: DataSpec, name: str, hparams: dict, mask: np.ndarray, affine: np.ndarray,
               window: dict, prepare: dict, card: dict | None = None, overwrite: bool = False, xform_code: int = 2,
               rois: dict | None = None, gradient_artifacts: dict | None = None, training_notch: dict | None = None) -> Path:
    """Write a model directory atomically (see module docstring); ``xform_code``: the grid's NIfTI space code
    (``PreparedDataset.xform_code``), which the mask and every synthesised image keep; ``rois``: a model of ROI targets
    keeps its atlas (``PreparedDataset.rois``: names, labels, voxel weights), so synthesis can name and paint its outputs."""
    kind = getattr(model, "kind", "torch")
    meta = _model_meta(name, kind, spec, hparams, window, prepare, mask, affine, card or {}, rois, gradient_artifacts, training_notch)
    with atomic_dir(out, overwrite=overwrite, marker="model.json") as tmp:
        _write_model_dir(tmp, model, meta, mask, affine, xform_code)
    return Path(out)


def _write_model_dir(tmp: Path, model: Any, meta: dict, mask: np.ndarray, affine: np.ndarray, xform_code: int = 2) -> None:
    """Weights, mask, ``model.json`` and ``MODEL_CARD.md`` into folder ``tmp``."""
    import nibabel as nib
    import torch
    from safetensors.numpy import save_file as save_np
    from safetensors.torch import save_file as save_torch

    if meta["kind"] == "sklearn":
        save_np({k: np.ascontiguousarray(v) for k, v in model.state_dict().items()}, str(tmp / "weights.safetensors"))
    else:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}
        save_torch(state, str(tmp / "weights.safetensors"))
    _user_mode(tmp / "weights.safetensors", directory=False)  # safetensors creates it 0600
    from eeg2fmri.io.bold import grid_image

    nib.save(grid_image(mask.astype(np.uint8), affine, xform_code), tmp / "mask.nii.gz")  # synthesis keeps its space code
    (tmp / "model.json").write_text(json.dumps(to_jsonable(final_paths(meta)), indent=1, default=float), encoding="utf-8")
    (tmp / "MODEL_CARD.md").write_text(_card_text(final_paths(meta)), encoding="utf-8")


def _card_text(meta: dict) -> str:
    card = meta.get("card", {})
    made_with = software_line(meta["software"]) if meta.get("software") else "eeg2fmri"
    lines = [f"# Model card: {meta['model']}", "", f"Trained with {made_with}. Predictions are the expected BOLD in per-voxel standardised (z) units of the training runs: they vary less than a measured z-scored run (at least by the model's r, more where penalties and per-voxel gains shrink them), so compare time courses, not amplitudes.", "",
             "## Inputs", f"- representation: {meta['spec']['input_kind']}, window {meta['spec']['input_shape']}",
             f"- EEG channels ({len(meta['spec']['ch_names'])}): {', '.join(meta['spec']['ch_names'])}",
             f"- EEG sampling rate at training: {meta['spec']['sfreq']} Hz; TR {meta['spec']['tr']} s",
             f"- preprocessing: {json.dumps(meta['prepare'])}", "", "## Output", f"- grid {meta['grid_shape']}, {meta['spec']['output_shape'][0] if len(meta['spec']['output_shape']) == 1 else meta['spec']['output_shape']} outputs", ""]
    if meta.get("hparams_effective"):  # every value as built, defaults included (user test 41: only the given ones were shown)
        lines += ["## hyperparameters (as built, defaults included)", "```", json.dumps(meta["hparams_effective"], indent=1, default=float), "```", ""]
    for k, v in card.items():
        lines += [f"## {k}", "```", json.dumps(to_jsonable(v), indent=1, default=float), "```", ""]
    return "\n".join(lines)


def load_model(path: str | os.PathLike) -> LoadedModel:
    """Load a model directory written by :func:`save_model` (no pickle involved)."""
    import nibabel as nib
    import torch

    path = Path(path)
    mj = path / "model.json"
    if not mj.exists():
        raise Eeg2fmriInputError(f"{path}: expected a model directory with model.json, found none; pass the folder written by training/quickstart.")
    meta = json.loads(mj.read_text(encoding="utf-8"))
    if meta.get("format_version") not in READABLE_FORMATS:
        raise Eeg2fmriInputError(f"{mj}: model format {meta.get('format_version')} is not supported (expected one of "
                                 f"{', '.join(map(str, READABLE_FORMATS))}); retrain or upgrade eeg2fmri.")
    spec = DataSpec.from_dict(meta["spec"])
    if meta.get("plugin_file") and Path(meta["plugin_file"]).is_file():  # a model of your own from a .py file, recorded at saving
        from eeg2fmri.models.base import _REGISTRY
        from eeg2fmri.utils.plugins import import_plugin

        if meta["model"] not in _REGISTRY:
            import_plugin(meta["plugin_file"], source=f"{path} (plugin_file)")
    src = meta.get("model_source") if isinstance(meta.get("model_source"), dict) else {}
    try:
        get_model_class(meta["model"], module=meta.get("module"))  # a model of your own: its module, recorded at saving, is imported
    except Eeg2fmriInputError:
        # its module is not importable here (found in the working directory at training: user test 41), but its file is
        # recorded: imported from there
        if not (meta.get("module") and src.get("file") and Path(src["file"]).is_file()):
            raise
        from eeg2fmri.models.base import _REGISTRY
        from eeg2fmri.utils.plugins import import_plugin

        if meta["model"] not in _REGISTRY:
            import_plugin(src["file"], source=f"{path} (model_source)")
        get_model_class(meta["model"])
    with torch.random.fork_rng(devices=[]):  # building initialises weights from the global generator: leave the caller's as it was
        model = build_model(meta["model"], spec, **_saved_hparams(meta, path))
    wpath = path / "weights.safetensors"
    if meta["kind"] == "sklearn":
        from safetensors.numpy import load_file

        model.load_state_dict(load_file(str(wpath)))
    else:
        from safetensors.torch import load_file

        try:
            missing, unexpected = model.load_state_dict(load_file(str(wpath)), strict=False)
        except RuntimeError as err:  # a tensor of another shape
            raise Eeg2fmriInputError(f"{wpath}: the saved weights do not fit the model {meta['model']!r} as its code defines it now ({' '.join(str(err).split())}); "
                                     "load it with the model code that trained it, or retrain.") from None
        if missing or unexpected:  # a layer renamed, added or removed since the model was saved: refuse rather than run half-initialised
            raise Eeg2fmriInputError(
                f"{wpath}: expected the weights of the model {meta['model']!r} as its code defines it now, found "
                f"{len(missing)} missing ({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}) and {len(unexpected)} unexpected "
                f"({', '.join(unexpected[:5])}{', ...' if len(unexpected) > 5 else ''}) tensor(s); the model's code changed since it was "
                "saved. Load it with the model code that trained it, or retrain.")
        model.eval()
    mask = np.asarray(nib.load(path / "mask.nii.gz").dataobj) > 0
    return LoadedModel(model, meta, mask, np.asarray(meta["affine"]))


def save_trained_model(model: Any, out: str | os.PathLike, *, spec: DataSpec, name: str, hparams: dict, mask: np.ndarray, affine: np.ndarray,
                       window: dict, prepare: dict, config: dict, split: dict, metrics: dict, overwrite: bool = False,
                       xform_code: int = 2, rois: dict | None = None, gradient_artifacts: dict | None = None,
                       training_notch: dict | None = None) -> Path:
    """Write a model directory like :func:`save_model`, plus the training config and a fuller card.

    Parameters
    ----------
    model : object with ``state_dict()``
        A torch module, a :class:`~eeg2fmri.models.predictor.TorchPredictor`
        or a closed-form model.
    out : path-like
        Model directory (written atomically; an existing one needs ``overwrite``).
    spec, name, hparams, mask, affine, window, prepare, gradient_artifacts, training_notch
        As in :func:`save_model` (``gradient_artifacts``: ``{"runs": n, "detected": k}`` of prepare's gradient-artefact
        check on the training runs, kept in model.json for synthesis; ``training_notch``: the training runs counted by the
        power-line frequency they were notched at, ``{"50": n, "60": m, "none": k}``, model.json's ``training_notch_hz``).
    config : dict
        The resolved training config (saved as ``train_config.json``).
    split : dict
        Split description (protocol, window, sizes, test subjects).
    metrics : dict
        ``{"validation": {...}, "test": {...}, "training": {...}}`` (any subset).
    """
    kind = getattr(model, "kind", "torch")
    data = config.get("data", {})
    card = {"training data": {"prepared": data.get("prepared"), "bids": data.get("bids"), "subjects": data.get("subjects")}, "split": split}
    for k, v in metrics.items():
        card[f"{k} metrics"] = v
    card["training config"] = {k: config[k] for k in ("seed", "model", "optimizer", "loss") if k in config}
    meta = _model_meta(name, kind, spec, hparams, window, prepare, mask, affine, card, rois, gradient_artifacts, training_notch)
    with atomic_dir(out, overwrite=overwrite, marker="model.json") as tmp:
        _write_model_dir(tmp, model, meta, mask, affine, xform_code)
        (tmp / "train_config.json").write_text(json.dumps(config, indent=1, default=str), encoding="utf-8")
    return Path(out)


def load_predictor(path: str | os.PathLike, *, batch_size: int = 256, device: str | None = None) -> LoadedModel:
    """:func:`load_model`, with torch models wrapped so that ``.model.predict(x)`` works for every kind.

    Torch models come back as a :class:`~eeg2fmri.models.predictor.TorchPredictor`
    (eval mode, no gradients, float32 out); closed-form models as they are.
    """
    lm = load_model(path)
    if lm.meta["kind"] != "sklearn":
        from eeg2fmri.models.predictor import TorchPredictor

        if device is not None:
            lm.model.to(device)
        lm.model = TorchPredictor(lm.model, lm.spec, lm.meta.get("hparams", {}), batch_size=batch_size, device=device)
    return lm


def check_compatible(meta: dict, ch_names: list[str] | tuple[str, ...], sfreq: float, representation: str, *, where: str = "EEG") -> None:
    """Refuse EEG whose channels, sampling rate or representation differ from the model's training data.

    Parameters
    ----------
    meta : dict
        ``model.json`` of a model directory (``LoadedModel.meta``).
    ch_names : sequence of str
        Channel names of the EEG to use, in order.
    sfreq : float
        Its sampling rate in Hz.
    representation : {"bandpower", "stft", "raw"}
        How it was (or will be) prepared.
    where : str
        Name of the recording for messages.

    Raises
    ------
    Eeg2fmriInputError
        Saying what differs and how to fix it (rename or pick/reorder
        channels, resample, prepare with the model's representation).
    """
    spec = meta["spec"]
    want = [str(c) for c in spec.get("ch_names", [])]
    got = [str(c) for c in ch_names]
    model = meta.get("model", "model")
    if representation != spec["input_kind"]:
        raise Eeg2fmriInputError(
            f"{where}: {model} was trained on {spec['input_kind']!r} EEG, got {representation!r}; "
            f"prepare the EEG with representation={spec['input_kind']!r} (the model's prepare options are in model.json)."
        )
    if want and got != want:
        missing = [c for c in want if c not in got]
        extra = [c for c in got if c not in want]
        if not missing and not extra:
            raise Eeg2fmriInputError(
                f"{where}: the channels are those of training but in another order; reorder them first, e.g. raw.reorder_channels({want})."
            )
        lower = {c.lower(): c for c in extra}
        rename = {lower[c.lower()]: c for c in missing if c.lower() in lower}
        hint = f"rename channels, e.g. raw.rename_channels({rename})" if rename else "map your channel names to the training names with raw.rename_channels({...})"
        raise Eeg2fmriInputError(
            f"{where}: expected the {len(want)} EEG channels of training, found {len(got)}: missing {missing[:10]}"
            f"{' ...' if len(missing) > 10 else ''}, not used in training {extra[:10]}{' ...' if len(extra) > 10 else ''}; "
            f"{hint}, drop extra channels with raw.pick({want[:3]}...), and interpolate missing ones (raw.info['bads'] + raw.interpolate_bads())."
        )
    train_sf = float(spec["sfreq"])
    if abs(float(sfreq) - train_sf) > 1e-6 * max(train_sf, 1.0):
        raise Eeg2fmriInputError(
            f"{where}: {model} was trained on EEG sampled at {train_sf:g} Hz, got {float(sfreq):g} Hz; resample first, e.g. raw.resample({train_sf:g})."
        )
