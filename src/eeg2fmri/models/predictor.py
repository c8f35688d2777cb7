"""A trained torch model behind the ``predict(x, subject=None) -> array`` interface of the closed-form models.

:func:`eeg2fmri.models.load_predictor` wraps loaded torch models in it; the
:class:`~eeg2fmri.training.predictor.Predictor` protocol and
:func:`~eeg2fmri.training.predictor.predict_windows` are in
:mod:`eeg2fmri.training.predictor`, which re-exports :class:`TorchPredictor`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from eeg2fmri.datasets.spec import DataSpec
from eeg2fmri.utils.validation import Eeg2fmriInputError, check_positive_int

__all__ = ["TorchPredictor", "resolve_device", "place_model", "DEVICES"]

#: what ``--device`` accepts (``cuda:N`` picks one GPU)
DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str | torch.device | None = "auto", *, where: str = "device") -> torch.device:
    """The torch device to run on.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda"} | "cuda:N" | torch.device | None
        ``"auto"`` (or ``None``): the first CUDA GPU when one is visible, else
        the CPU. ``"cuda"`` refuses to fall back silently.
    where : str
        Named in the error message (e.g. ``"--device"``).

    Returns
    -------
    torch.device
    """
    if isinstance(device, torch.device):
        device = str(device)
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = str(device)
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        if not torch.cuda.is_available():
            raise Eeg2fmriInputError(f"{where}: expected a visible CUDA GPU for {name!r}, found none (torch.cuda.is_available() is False); "
                                     "use 'cpu' or 'auto'.")
        idx = int(name[5:]) if ":" in name else 0
        if idx >= torch.cuda.device_count():
            raise Eeg2fmriInputError(f"{where}: expected a GPU index below {torch.cuda.device_count()} (visible GPUs), got {name!r}.")
        return torch.device(name)
    raise Eeg2fmriInputError(f"{where}: expected one of 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}.")


def place_model(model: Any, device: str | torch.device | None) -> Any:
    """Move a torch model (a module or a :class:`TorchPredictor`) to ``device``; closed-form models are returned as they are.

    ``device=None`` leaves the model where it is.
    """
    if device is None:
        return model
    dev = resolve_device(device)
    if isinstance(model, TorchPredictor):
        model.module.to(dev)
        model.device = dev
    elif isinstance(model, nn.Module):
        model.to(dev)
    return model


class TorchPredictor:
    """Predict with a torch model from NumPy windows: batches, eval mode, no gradients, float32 out.

    Parameters
    ----------
    module : torch.nn.Module
        A registered model (``forward(x, subject=None)``).
    spec : DataSpec
        The data specification the model was built from.
    hparams : dict | None
        Hyperparameters it was built with (returned by :meth:`get_params`).
    batch_size : int
        Windows per forward pass.
    device : str | torch.device | None
        Where to run (default: where the module's parameters are).

    Notes
    -----
    ``kind = "torch"`` and :meth:`state_dict` make it a drop-in argument of
    :func:`eeg2fmri.models.save_model`.
    """

    kind = "torch"

    def __init__(self, module: nn.Module, spec: DataSpec, hparams: dict | None = None, *, batch_size: int = 256, device: str | torch.device | None = None) -> None:
        self.module = module
        self.spec = spec
        self.hparams = dict(hparams or {})
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.device = device

    @property
    def registry_name(self) -> str | None:
        """The wrapped model's registry name (how evaluations label it), ``None`` for an unregistered module."""
        return getattr(self.module, "registry_name", None)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Hyperparameters of the wrapped model (scikit-learn's signature; ``deep`` changes nothing: the module is not an
        estimator)."""
        return dict(self.hparams)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The wrapped module's state dict."""
        return self.module.state_dict()

    def _device(self) -> torch.device:
        if self.device is not None:
            return torch.device(self.device)
        p = next(iter(self.module.parameters()), None)
        return p.device if p is not None else torch.device("cpu")

    def predict(self, x: np.ndarray, subject: np.ndarray | None = None) -> np.ndarray:
        """Predict targets for windows.

        Parameters
        ----------
        x : array, shape (n_windows, *spec.input_shape)
            Windows in the layout of ``spec.input_kind``.
        subject : array of int, shape (n_windows,) | None
            Subject indices (into the training dataset's subjects) for models
            with subject embeddings; ``None`` lets the model decide.

        Returns
        -------
        array, shape (n_windows, *spec.output_shape), float32
        """
        x = np.asarray(x)
        want = tuple(int(s) for s in self.spec.input_shape)
        if x.ndim != len(want) + 1 or tuple(x.shape[1:]) != want:
            raise Eeg2fmriInputError(
                f"{getattr(self.module, 'registry_name', type(self.module).__name__)}: expected windows of shape (n, {', '.join(map(str, want))}) "
                f"({self.spec.input_kind}), got {x.shape}; prepare the EEG like the training data (see the model card)."
            )
        if subject is not None and len(subject) != len(x):
            raise Eeg2fmriInputError(f"predict: expected one subject index per window ({len(x)}), got {len(subject)}.")
        out = np.empty((len(x),) + tuple(int(s) for s in self.spec.output_shape), dtype=np.float32)
        device = self._device()
        if self.device is not None:
            self.module.to(device)
        was_training = self.module.training
        self.module.eval()
        try:
            with torch.inference_mode():
                for b0 in range(0, len(x), self.batch_size):
                    xb = torch.as_tensor(np.ascontiguousarray(x[b0 : b0 + self.batch_size], dtype=np.float32), device=device)
                    sb = None if subject is None else torch.as_tensor(np.asarray(subject[b0 : b0 + self.batch_size], dtype=np.int64), device=device)
                    pred = self.module(xb, subject=sb)
                    out[b0 : b0 + len(xb)] = pred.float().reshape(out[b0 : b0 + len(xb)].shape).cpu().numpy()
        finally:
            self.module.train(was_training)
        return out
