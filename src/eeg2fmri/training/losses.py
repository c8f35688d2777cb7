"""Differentiable training losses and their weighted combination.

Every function takes batches with the batch axis first and returns a scalar
tensor computed in float32 (also under mixed precision). The prediction
losses compare ``pred`` with the target ``y``, both of shape
``(batch, *output_shape)``:

==================  ==========================================================
``mae``             mean absolute error
``mse``             mean squared error
``corr``            ``1 - r``: Pearson r of every output across the batch,
                    averaged over outputs (needs batches of >= 2 windows)
``ssim``            ``1 - SSIM``: 3D structural similarity (Gaussian window,
                    sigma 1.5 voxels) averaged over in-mask voxels; vector
                    outputs are placed on the grid with the brain mask
``laplace_nll``     Laplace negative log-likelihood, needs ``log_scale``
``gaussian_nll``    Gaussian negative log-likelihood, needs ``log_scale``
==================  ==========================================================

The auxiliary terms ``latent_cosine``, ``organize_channels`` and ``kl`` (and
any other scalar a model's ``training_terms`` returns) are used as they come.
:class:`WeightedLoss` adds everything up with the weights of the config.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from eeg2fmri.utils.stats import laplace_nll
from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = [
    "AUX_TERMS",
    "LOSS_TERMS",
    "PRED_TERMS",
    "WeightedLoss",
    "corr_loss",
    "gaussian_nll",
    "laplace_nll",
    "mae_loss",
    "mse_loss",
    "ssim3d_loss",
]

#: Losses computed from the prediction (and the target).
PRED_TERMS = ("mse", "mae", "corr", "ssim", "laplace_nll", "gaussian_nll")
#: Scalar terms a model's ``training_terms`` returns.
AUX_TERMS = ("latent_cosine", "organize_channels", "kl")
LOSS_TERMS = PRED_TERMS + AUX_TERMS
_SCALE_TERMS = ("laplace_nll", "gaussian_nll")

_SSIM_K1, _SSIM_K2 = 0.01, 0.03
_SSIM_SIGMA, _SSIM_TRUNCATE = 1.5, 3.5  # as eeg2fmri.evaluation.metrics.ssim3d


def mae_loss(pred: Tensor, y: Tensor) -> Tensor:
    """Mean absolute error over every element, shape ()."""
    return (pred.float() - y.float()).abs().mean()


def mse_loss(pred: Tensor, y: Tensor) -> Tensor:
    """Mean squared error over every element, shape ()."""
    return (pred.float() - y.float()).square().mean()


def corr_loss(pred: Tensor, y: Tensor, eps: float = 1e-8) -> Tensor:
    """``1 - Pearson r`` per output across the batch, averaged over outputs.

    Parameters
    ----------
    pred, y : Tensor, shape (batch, *output_shape)

    Returns
    -------
    Tensor, shape ()
        In [0, 2]. Outputs that are constant across the batch contribute
        ``1`` (r = 0) and no gradient; a batch of one window gives ``1``.
    """
    p = pred.float().reshape(pred.shape[0], -1)
    t = y.float().reshape(y.shape[0], -1)
    p = p - p.mean(0, keepdim=True)
    t = t - t.mean(0, keepdim=True)
    r = (p * t).sum(0) / torch.sqrt((p * p).sum(0) * (t * t).sum(0) + eps)
    return 1.0 - r.mean()


def gaussian_nll(pred: Tensor, log_scale: Tensor, y: Tensor) -> Tensor:
    """Gaussian negative log-likelihood with ``log_scale = log sigma``.

    ``mean(0.5 * (y - mu)^2 / sigma^2 + log sigma) + 0.5 * log(2 pi)``;
    shapes as in :func:`laplace_nll`.
    """
    s = log_scale.float()
    return (0.5 * (y.float() - pred.float()).square() * torch.exp(-2.0 * s) + s).mean() + 0.5 * math.log(2.0 * math.pi)


def _gaussian_kernel(sigma: float, truncate: float, device: torch.device) -> Tensor:
    radius = int(truncate * sigma + 0.5)
    t = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def _reflect_index(n: int, r: int, device: torch.device) -> Tensor:
    """Indices of a length-``n`` axis padded by ``r`` on both sides as scipy.ndimage's ``mode="reflect"``
    (``d c b a | a b c d | d c b a``, repeated when ``r > n``)."""
    i = torch.arange(-r, n + r, device=device) % (2 * n)
    return torch.where(i >= n, 2 * n - 1 - i, i)


def _blur3d(v: Tensor, kernel: Tensor) -> Tensor:
    """Separable Gaussian blur of ``(n, 1, X, Y, Z)``, edges reflected as in scipy.ndimage (and skimage's SSIM)."""
    r = (len(kernel) - 1) // 2
    for axis in range(3):
        shape = [1, 1, 1, 1, 1]
        shape[2 + axis] = len(kernel)
        padded = v.index_select(2 + axis, _reflect_index(v.shape[2 + axis], r, v.device))
        v = F.conv3d(padded, kernel.reshape(shape))
    return v


def ssim3d_loss(pred: Tensor, y: Tensor, mask: Tensor, *, data_range: float | Tensor | None = None) -> Tensor:
    """``1 - SSIM`` of 3D volumes, averaged over in-mask voxels and the batch.

    Local moments use a Gaussian window (sigma 1.5 voxels, truncated at 3.5
    sigma, edges reflected) as in :func:`eeg2fmri.evaluation.metrics.ssim3d` and skimage;
    the volume is cropped to the mask's bounding box (plus the window radius)
    first, which does not change the in-mask values.

    Parameters
    ----------
    pred, y : Tensor, shape (batch, X, Y, Z) or (batch, n_voxels)
        Volumes, or masked voxels in C order of ``mask``.
    mask : Tensor of bool, shape (X, Y, Z)
        Voxels the SSIM map is averaged over (and where vectors are placed).
    data_range : float | Tensor | None
        Intensity range for the SSIM constants; ``None`` uses the range of
        ``y`` inside the mask (detached).

    Returns
    -------
    Tensor, shape ()
    """
    mask = mask.to(device=pred.device, dtype=torch.bool)
    n_vox = int(mask.sum())
    p, t = pred.float(), y.float()
    if p.dim() == 2:
        if p.shape[1] != n_vox:
            raise Eeg2fmriInputError(
                f"ssim loss: expected {n_vox} outputs (voxels in the mask), got {p.shape[1]}; the ssim loss needs outputs on the dataset's brain mask."
            )
        vol_p = p.new_zeros((p.shape[0],) + tuple(mask.shape))
        vol_t = t.new_zeros((t.shape[0],) + tuple(mask.shape))
        vol_p = vol_p.masked_scatter(mask.expand_as(vol_p), p)
        vol_t = vol_t.masked_scatter(mask.expand_as(vol_t), t)
        p, t = vol_p, vol_t
    elif tuple(p.shape[1:]) != tuple(mask.shape):
        raise Eeg2fmriInputError(f"ssim loss: expected volumes of shape (batch, {', '.join(map(str, mask.shape))}), got {tuple(p.shape)}.")
    kernel = _gaussian_kernel(_SSIM_SIGMA, _SSIM_TRUNCATE, p.device)
    r = (len(kernel) - 1) // 2
    idx = torch.nonzero(mask)
    lo = (idx.min(0).values - r).clamp_min(0).tolist()
    hi = [min(int(h) + r + 1, s) for h, s in zip(idx.max(0).values.tolist(), mask.shape)]
    sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    p, t, m = p[(slice(None),) + sl], t[(slice(None),) + sl], mask[sl]
    if data_range is None:
        tm = t[:, m]
        data_range = (tm.max() - tm.min()).detach().clamp_min(1e-6)
    c1 = (_SSIM_K1 * data_range) ** 2
    c2 = (_SSIM_K2 * data_range) ** 2
    stack = torch.cat([p, t, p * p, t * t, p * t], 0).unsqueeze(1)
    mu_p, mu_t, e_pp, e_tt, e_pt = _blur3d(stack, kernel).squeeze(1).chunk(5, 0)
    mu_pt = mu_p * mu_t
    num = (2.0 * mu_pt + c1) * (2.0 * (e_pt - mu_pt) + c2)
    den = (mu_p * mu_p + mu_t * mu_t + c1) * ((e_pp - mu_p * mu_p) + (e_tt - mu_t * mu_t) + c2)
    return 1.0 - (num / den)[:, m].mean()


class WeightedLoss:
    """Weighted sum of prediction losses and a model's auxiliary terms.

    Parameters
    ----------
    weights : mapping of str to float
        Weight of each term of :data:`LOSS_TERMS` (missing: 0).
    mask : array of bool, shape (X, Y, Z) | None
        Brain mask for the ``ssim`` term with vector outputs.

    Notes
    -----
    Call the instance with the model's ``terms`` (``{"pred": ..., ...}``,
    from ``training_terms`` or ``{"pred": model(x)}``) and the target; it
    returns ``(total, parts)`` with every weighted term's unweighted value in
    ``parts`` (detached), for logging.
    """

    def __init__(self, weights: Mapping[str, float], mask: np.ndarray | None = None) -> None:
        unknown = set(weights) - set(LOSS_TERMS)
        if unknown:
            raise Eeg2fmriInputError(f"loss: unknown term(s) {sorted(unknown)}; choose from {list(LOSS_TERMS)}.")
        self.weights = {k: float(v) for k, v in weights.items() if float(v) != 0.0}
        self.mask = None if mask is None else torch.as_tensor(np.asarray(mask, dtype=bool))

    @property
    def needs_terms(self) -> list[str]:
        """Terms that only a model's ``training_terms`` can provide."""
        return [k for k in self.weights if k in AUX_TERMS or k in _SCALE_TERMS]

    def __call__(self, terms: Mapping[str, Tensor], y: Tensor, *, model_name: str = "model") -> tuple[Tensor, dict[str, Tensor]]:
        pred = terms["pred"]
        if tuple(pred.shape) != tuple(y.shape):
            y = y.reshape(pred.shape)
        parts: dict[str, Tensor] = {}
        for name in self.weights:
            if name == "mse":
                parts[name] = mse_loss(pred, y)
            elif name == "mae":
                parts[name] = mae_loss(pred, y)
            elif name == "corr":
                parts[name] = corr_loss(pred, y)
            elif name == "ssim":
                if self.mask is None:
                    if pred.dim() != 4:
                        raise Eeg2fmriInputError("loss.ssim: needs volume outputs (batch, X, Y, Z) or a brain mask for vector outputs; set loss.ssim: 0.")
                    mask = torch.ones(pred.shape[1:], dtype=torch.bool)
                else:
                    mask = self.mask
                parts[name] = ssim3d_loss(pred, y, mask)
            elif name in _SCALE_TERMS:
                if "log_scale" not in terms:
                    raise Eeg2fmriInputError(
                        f"loss.{name}: {model_name} returned no 'log_scale' (it returns {sorted(terms)}); "
                        f"build it with a scale head (e.g. aleatoric: true) or set loss.{name}: 0."
                    )
                fn = laplace_nll if name == "laplace_nll" else gaussian_nll
                parts[name] = fn(pred, terms["log_scale"], y)
            else:
                if name not in terms:
                    raise Eeg2fmriInputError(
                        f"loss.{name}: {model_name} returned no {name!r} term (it returns {sorted(terms)}); "
                        f"set loss.{name}: 0 or configure the model to produce it."
                    )
                parts[name] = terms[name].float()
        total = sum((self.weights[k] * v for k, v in parts.items()), torch.zeros((), device=pred.device))
        return total, {k: v.detach() for k, v in parts.items()}
