"""Predict with any fitted model: the :class:`Predictor` protocol and :func:`predict_windows`.

Every fitted model the package hands out predicts with ``predict(x)``:
closed-form models (``ridge_hrf``; ``mean`` takes ``predict(x, subjects=...)``
with subject labels), :class:`TorchPredictor` (``predict(x, subject=None)``
with subject indices) and anything following :class:`Predictor`.
:func:`predict_windows` calls each the right way, runs a bare
``torch.nn.Module`` in eval mode without gradients, and returns the masked
voxels as float32. Evaluation and synthesis both predict through it.
"""

from __future__ import annotations

import inspect
from typing import Any, Protocol, runtime_checkable

import numpy as np

from eeg2fmri.models.predictor import TorchPredictor
from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["Predictor", "TorchPredictor", "predict_windows", "predict_windows_uncertainty", "uncertainty_methods"]


@runtime_checkable
class Predictor(Protocol):
    """A fitted model that predicts targets for windows.

    ``predict(x, subject=None)`` takes windows of shape
    ``(n_windows, *spec.input_shape)`` and optional subject indices of shape
    ``(n_windows,)`` (into the training subjects, for models with subject
    embeddings) and returns an array of shape ``(n_windows, *output_shape)``.
    """

    def predict(self, x: np.ndarray, subject: np.ndarray | None = None) -> np.ndarray:
        """Predict targets for windows ``x`` (optionally of subjects ``subject``)."""
        ...


def _takes(fn: Any, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def predict_windows(
    model: Any,
    x: np.ndarray,
    *,
    n_outputs: int | None = None,
    mask: np.ndarray | None = None,
    subject: str | None = None,
    subject_index: int | None = None,
    batch_size: int = 256,
) -> np.ndarray:
    """Predict masked voxels for windows with any fitted model.

    Parameters
    ----------
    model : object
        A closed-form model with ``predict(x)`` (``predict(x, subjects=...)``
        for the subject-mean baseline), a predictor with
        ``predict(x, subject=...)`` or a ``torch.nn.Module`` (run in eval
        mode without gradients, in batches).
    x : array, shape (n_windows, *window_shape)
        Windows in the model's DataSpec layout.
    n_outputs : int | None
        Expected number of outputs per window (masked voxels); checked.
    mask : array of bool, shape (X, Y, Z) | None
        Brain mask; a model that predicts whole volumes ``(X, Y, Z)`` is
        reduced to the in-mask voxels.
    subject : str | None
        Subject label of all windows (for the subject-mean baseline).
    subject_index : int | None
        Index of that subject among the training subjects, for models with
        subject embeddings; ``None`` when the subject was not trained on.
    batch_size : int
        Windows per forward pass for torch modules.

    Returns
    -------
    pred : array, shape (n_windows, n_outputs), float32
    """
    n = len(x)
    pred_fn = getattr(model, "predict", None)
    if pred_fn is not None:
        if _takes(pred_fn, "subjects"):
            out = pred_fn(x, subjects=np.full(n, subject, dtype=object))
        elif _takes(pred_fn, "subject") and subject_index is not None:
            out = pred_fn(x, subject=np.full(n, subject_index, dtype=np.int64))
        else:
            out = pred_fn(x)
    else:
        import torch

        if not isinstance(model, torch.nn.Module):
            raise Eeg2fmriInputError(
                f"predict_windows: expected a fitted model with predict(x) or a torch.nn.Module, got {type(model).__name__}; "
                "pass FitResult.model or LoadedModel.model."
            )
        chunks = []
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                par = next(iter(model.parameters()), None)
                dev = par.device if par is not None else torch.device("cpu")
                for b0 in range(0, n, batch_size):
                    xb = torch.as_tensor(np.ascontiguousarray(x[b0 : b0 + batch_size], dtype=np.float32), device=dev)
                    sb = None if subject_index is None else torch.full((len(xb),), int(subject_index), dtype=torch.long, device=dev)
                    chunks.append(model(xb, subject=sb).float().cpu().numpy())
        finally:
            model.train(was_training)
        out = np.concatenate(chunks) if chunks else np.empty((0,), np.float32)
    if hasattr(out, "detach"):
        out = out.detach().cpu().numpy()
    out = np.asarray(out, dtype=np.float32)
    if mask is not None and out.ndim == 4 and out.shape[1:] == mask.shape:
        out = out[:, mask]
    out = out.reshape(n, -1)
    if n_outputs is not None and out.shape[1] != n_outputs:
        raise Eeg2fmriInputError(
            f"predict_windows: expected {n_outputs} outputs per window (the masked voxels), got {out.shape[1]}; "
            "evaluate the model on the dataset (grid and mask) it was trained for."
        )
    return out


def uncertainty_methods(model: Any) -> list[tuple[Any, str]]:
    """The uncertainty methods a model provides, in order of preference, with what their scale means.

    Parameters
    ----------
    model : object
        A fitted model, a ``torch.nn.Module`` or a :class:`TorchPredictor`
        (its module is asked).

    Returns
    -------
    list of (callable, str)
        ``predict_uncertainty(x) -> (mean, scale)`` (e.g. a Laplace scale),
        ``predict_mc(x) -> (mean, std)`` and ``predict_ensemble(x) -> (mean,
        std)`` (the flagship's members) where present; for any other torch
        module with dropout, Monte-Carlo dropout (``mc_dropout``: mean and
        standard deviation of :data:`MC_DROPOUT_SAMPLES` passes with dropout on).
    """
    module = getattr(model, "module", model)
    out = []
    for name, meaning in (("predict_uncertainty", "predictive scale returned by the model's predict_uncertainty (e.g. the Laplace scale b; std = sqrt(2) b)"),
                          ("predict_mc", "Monte-Carlo standard deviation from the model's predict_mc"),
                          ("predict_ensemble", "standard deviation over the model's ensemble members (epistemic) from predict_ensemble")):
        fn = getattr(module, name, None)
        if fn is not None:
            out.append((fn, meaning))
    if _dropout_layers(module):  # the fallback for any torch model with dropout (last: a model's own scale comes first)
        out.append((_MCDropout(module), f"Monte-Carlo dropout standard deviation ({MC_DROPOUT_SAMPLES} stochastic passes, dropout on)"))
    return out


#: Stochastic forward passes of Monte-Carlo dropout.
MC_DROPOUT_SAMPLES = 20


def _dropout_layers(module: Any) -> list:
    import torch

    if not isinstance(module, torch.nn.Module):
        return []
    return [m for m in module.modules() if isinstance(m, torch.nn.modules.dropout._DropoutNd) and m.p > 0]


class _MCDropout:
    """``fn(x) -> (mean, std)`` over stochastic passes with only the dropout layers in training mode (Gal & Ghahramani 2016)."""

    __name__ = "mc_dropout"

    def __init__(self, module: Any, n_samples: int = MC_DROPOUT_SAMPLES, seed: int = 0) -> None:
        self.module, self.n_samples, self.seed = module, int(n_samples), int(seed)

    def __call__(self, x: Any) -> tuple[Any, Any]:
        import torch

        layers = _dropout_layers(self.module)
        state = [m.training for m in layers]
        # a fixed seed per call: the same windows get the same draws, so a run is reproducible
        devices = [x.device] if getattr(x, "is_cuda", False) else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)
            try:
                for m in layers:
                    m.train(True)
                draws = torch.stack([self.module(x).float() for _ in range(self.n_samples)])
            finally:
                for m, t in zip(layers, state):
                    m.train(t)
        return draws.mean(0), draws.std(0)


def call_uncertainty(fn: Any, x: np.ndarray, model: Any) -> Any:
    """Call an uncertainty method on windows ``x`` (a tensor on the model's device for torch modules)."""
    import torch

    module = getattr(model, "module", model)
    if isinstance(module, torch.nn.Module):
        par = next(iter(module.parameters()), None)
        was_training = module.training
        module.eval()
        try:
            with torch.inference_mode():
                return fn(torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32), device=None if par is None else par.device))
        finally:
            module.train(was_training)
    return fn(x)


def as_masked(a: Any, n: int, mask: np.ndarray | None) -> np.ndarray:
    """``(n, X, Y, Z)`` volumes or ``(n, n_outputs)`` as float32 ``(n, n_outputs)`` masked outputs."""
    if hasattr(a, "detach"):
        a = a.detach().float().cpu().numpy()
    a = np.asarray(a, dtype=np.float32)
    if mask is not None and a.ndim == 4 and a.shape[1:] == mask.shape:
        a = a[:, mask]
    return a.reshape(n, -1)


def predict_windows_uncertainty(model: Any, x: np.ndarray, *, mask: np.ndarray | None = None,
                                batch_size: int = 64) -> tuple[np.ndarray, np.ndarray, str] | None:
    """Mean and predictive scale of windows from the model's own uncertainty method.

    Parameters
    ----------
    model : object
        See :func:`uncertainty_methods`.
    x : array, shape (n_windows, *window_shape)
    mask : array of bool, shape (X, Y, Z) | None
        Reduces whole-volume outputs to the in-mask voxels.
    batch_size : int
        Windows per call.

    Returns
    -------
    (mean, scale, meaning) | None
        ``mean`` and ``scale`` of shape (n_windows, n_outputs), float32, and
        what the scale means; None when the model has no uncertainty method
        or every method refused (e.g. a model built without its head).
    """
    for fn, meaning in uncertainty_methods(model):
        means, scales = [], []
        try:
            for b0 in range(0, len(x), batch_size):
                xb = x[b0 : b0 + batch_size]
                m, s = call_uncertainty(fn, xb, model)
                means.append(as_masked(m, len(xb), mask))
                scales.append(as_masked(s, len(xb), mask))
        except Eeg2fmriInputError:
            continue
        if means:
            return np.concatenate(means), np.concatenate(scales), meaning
    return None
