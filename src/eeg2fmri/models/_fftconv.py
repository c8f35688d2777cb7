"""Depthwise 1D convolution by FFT for long kernels on the CPU.

oneDNN's CPU kernels for a depthwise ``nn.Conv1d`` (``groups == channels``) are slow
for long filters: in ``beira``'s band-pass bank (16 virtual channels, 51 taps, 1800
samples, batch 32) forward + backward took 60 ms per step on one core, the bulk of
a training step. The same cross-correlation computed through ``torch.fft.rfft`` /
``irfft`` takes 13 ms (forward and backward, the gradients by autograd through the
transforms) and matches ``F.conv1d`` to float32 rounding (about 1e-6 relative). CUDA
keeps cuDNN's kernel (fast there), and short kernels keep ``F.conv1d``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["FFT_MIN_TAPS", "depthwise_conv1d"]

#: Kernels shorter than this keep ``F.conv1d`` (a direct convolution of a few taps is cheap).
FFT_MIN_TAPS = 16


def _fft_ok(x: Tensor, conv: nn.Conv1d) -> bool:
    k = int(conv.kernel_size[0])
    c = int(conv.in_channels)
    return (
        x.device.type == "cpu"
        and x.dim() == 3
        and k >= FFT_MIN_TAPS
        and k % 2 == 1
        and conv.groups == c == conv.out_channels
        and conv.padding_mode == "zeros"
        and not isinstance(conv.padding, str)
        and int(conv.padding[0]) == k // 2
        and int(conv.dilation[0]) == 1
    )


def depthwise_conv1d(x: Tensor, conv: nn.Conv1d) -> Tensor:
    """``conv(x)`` for a depthwise ``nn.Conv1d`` with an odd kernel and "same" zero padding, by FFT on the CPU.

    Parameters
    ----------
    x : Tensor, shape (batch, channels, n_times)
    conv : nn.Conv1d
        ``groups == in_channels == out_channels``, ``padding == kernel_size // 2``,
        no dilation, any stride, with or without a bias. Any other convolution (or a
        kernel shorter than :data:`FFT_MIN_TAPS`, or a tensor off the CPU) is applied as
        ``conv(x)``.

    Returns
    -------
    Tensor, shape (batch, channels, (n_times - 1) // stride + 1)
        float32 (also for a bfloat16 input under autocast: the transform runs in float32).
    """
    if not _fft_ok(x, conv):
        return conv(x)
    k = int(conv.kernel_size[0])
    n = int(x.shape[-1])
    n_fft = 1 << (n + k - 2).bit_length()  # >= n + k - 1: no circular wrap-around
    xf = torch.fft.rfft(x.float(), n_fft)
    # cross-correlation (what F.conv1d computes) = convolution with the reversed taps
    wf = torch.fft.rfft(conv.weight[:, 0, :].float().flip(-1), n_fft)
    y = torch.fft.irfft(xf * wf, n_fft)[..., k // 2: k // 2 + n]
    stride = int(conv.stride[0])
    if stride > 1:
        y = y[..., ::stride]
    if conv.bias is not None:
        y = y + conv.bias.float()[:, None]
    return y
