"""Shared pieces of the raw-EEG models (Bricman & Borst EEG2fMRI variants, BEIRA).

Not a model itself (the leading underscore keeps it out of the registry loop).
It holds

* input checks (:func:`require_raw_spec`, :func:`check_raw_batch`) and
  hyperparameter checks (:func:`check_dropout`, :func:`check_int_sizes`);
* :func:`seeded_init`, which makes parameter initialisation reproducible
  without touching the global torch random state;
* the per-channel embedders shared across channels,
  :class:`FCChannelEmbedder` and :class:`ConvChannelEmbedder`, which map
  ``(batch, n_chans, n_times)`` to ``(batch, n_chans, emb_dim)`` by applying
  one network to every channel's time series;
* :func:`strided_conv_stack` (also used by the BEIRA encoder) and
  :func:`make_mlp`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from eeg2fmri.datasets.spec import DataSpec
from eeg2fmri.models._dropout import Dropout
from eeg2fmri.utils.validation import Eeg2fmriInputError, check_positive_int


class AdaptiveAvgPool1d(nn.AdaptiveAvgPool1d):
    """``nn.AdaptiveAvgPool1d`` that stays usable in deterministic mode on CUDA.

    PyTorch's CUDA adaptive-average-pool backward accumulates with atomics and
    raises under ``torch.use_deterministic_algorithms(True)``
    (``trainer.deterministic: true``). In that mode the pooling is a matrix
    product with the fixed averaging matrix of the same windows (start
    ``floor(i L / n)``, end ``ceil((i + 1) L / n)``), which gives the same
    values up to rounding; otherwise (and always on the CPU) it is the
    PyTorch layer unchanged. Same state dict as ``nn.AdaptiveAvgPool1d``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (x.is_cuda and torch.are_deterministic_algorithms_enabled() and x.requires_grad):
            return super().forward(x)
        n_out = int(self.output_size if isinstance(self.output_size, int) else self.output_size[0])
        return x @ adaptive_avg_matrix(x.shape[-1], n_out).to(device=x.device, dtype=x.dtype)


def adaptive_avg_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """Averaging matrix of adaptive average pooling, ``x @ M == adaptive_avg_pool1d(x, n_out)``.

    Returns
    -------
    Tensor, shape (n_in, n_out), float32
        Column ``i`` averages samples ``floor(i n_in / n_out)`` to
        ``ceil((i + 1) n_in / n_out) - 1`` (PyTorch's windows).
    """
    weights = torch.zeros(n_in, n_out)
    for i in range(n_out):
        start, end = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
        weights[start:end, i] = 1.0 / (end - start)
    return weights


# ----------------------------------------------------------------------------- checks


def require_raw_spec(spec: DataSpec, model_name: str) -> None:
    """Raise unless ``spec`` describes raw EEG windows.

    Parameters
    ----------
    spec : DataSpec
        Data specification the model is being built from.
    model_name : str
        Registry name of the model, used in the message.

    Raises
    ------
    Eeg2fmriInputError
        If ``spec.input_kind`` is not ``"raw"``.
    """
    if not isinstance(spec, DataSpec):
        raise Eeg2fmriInputError(
            f"{model_name}: expected a DataSpec, got {type(spec).__name__}; "
            "build one from the prepared data (eeg2fmri.models.DataSpec)."
        )
    if spec.input_kind != "raw":
        raise Eeg2fmriInputError(
            f"{model_name}: expected input_kind 'raw' (batch, n_chans, n_times), "
            f"got {spec.input_kind!r}; prepare the data with representation='raw'."
        )


def check_raw_batch(x: torch.Tensor, spec: DataSpec, model_name: str, *, check_times: bool) -> None:
    """Raise unless ``x`` is a raw EEG batch matching ``spec``.

    Parameters
    ----------
    x : torch.Tensor, shape (batch, n_chans, n_times)
        Input batch.
    spec : DataSpec
        Specification the model was built from.
    model_name : str
        Registry name of the model, used in the message.
    check_times : bool
        Also require ``x.shape[2] == spec.input_shape[1]`` (models whose
        weights depend on the window length).

    Raises
    ------
    Eeg2fmriInputError
        On a wrong number of axes, channels or (if checked) samples.
    """
    n_chans, n_times = spec.input_shape
    shape = tuple(x.shape)
    ok = len(shape) == 3 and shape[1] == n_chans and (not check_times or shape[2] == n_times)
    if not ok:
        want = f"(batch, {n_chans}, {n_times if check_times else 'n_times'})"
        raise Eeg2fmriInputError(
            f"{model_name}: expected x of shape {want} (batch, n_chans, n_times), got {shape}; "
            "pass windows prepared with the same channels and window length as the DataSpec "
            "(add a batch axis for a single window)."
        )


def check_dropout(p: float, name: str = "dropout") -> float:
    """Return ``p`` as a float if ``0 <= p < 1``, else raise :class:`Eeg2fmriInputError`."""
    try:
        out = float(p)
    except (TypeError, ValueError):
        out = float("nan")
    if not (0.0 <= out < 1.0):
        raise Eeg2fmriInputError(f"expected {name} in [0, 1), got {p!r}; pass e.g. {name}=0.1.")
    return out


def check_int_sizes(sizes: Sequence[int] | int, name: str) -> tuple[int, ...]:
    """Return ``sizes`` (an int or a sequence of ints >= 1, possibly empty) as a tuple."""
    if isinstance(sizes, (int, np.integer)) and not isinstance(sizes, bool):
        sizes = (sizes,)
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence):
        raise Eeg2fmriInputError(
            f"expected {name} to be a sequence of whole numbers >= 1, got {sizes!r}; pass e.g. {name}=(256,)."
        )
    return tuple(check_positive_int(s, f"{name}[{i}]") for i, s in enumerate(sizes))


def check_seed(seed: int | None) -> int | None:
    """Return ``seed`` if it is ``None`` or a non-negative int, else raise."""
    if seed is None:
        return None
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0:
        return int(seed)
    raise Eeg2fmriInputError(
        f"expected seed to be a non-negative int or None, got {seed!r}; pass e.g. seed=0."
    )


@contextmanager
def seeded_init(seed: int | None) -> Iterator[None]:
    """Context in which parameter initialisation draws from ``torch.manual_seed(seed)``.

    The global torch (CPU) random state is restored on exit, so building a
    seeded model does not change the random numbers drawn elsewhere. With
    ``seed=None`` the global state is used (and advanced) as usual.
    """
    seed = check_seed(seed)
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


# ----------------------------------------------------------------------------- builders


def n_strided_layers(n_times: int, stride: int, target_len: int, max_layers: int = 12) -> int:
    """Number of stride-``stride`` convolutions that bring ``n_times`` to ``<= target_len``.

    At least one layer is used; lengths follow ``L -> (L - 1) // stride + 1``
    (odd kernel, ``padding = kernel_size // 2``).
    """
    n, length = 0, int(n_times)
    while length > target_len and n < max_layers:
        length = (length - 1) // stride + 1
        n += 1
    return max(n, 1)


def strided_conv_stack(
    in_channels: int,
    n_times: int,
    *,
    base_width: int,
    max_width: int,
    kernel_size: int,
    stride: int,
    target_len: int,
    n_layers: int | None,
    batch_norm: bool,
    dropout: float,
) -> tuple[nn.Sequential, int, int]:
    """Build a stack of strided 1D convolutions (Conv1d -> [BatchNorm1d] -> GELU -> [Dropout]).

    Layer ``i`` has ``min(base_width * 2**i, max_width)`` output channels,
    ``padding = kernel_size // 2``, so any input length gives a length >= 1.

    Parameters
    ----------
    in_channels : int
        Channels of the input ``(N, in_channels, n_times)``.
    n_times : int
        Input length the number of layers is derived from (when ``n_layers`` is None).
    base_width, max_width, kernel_size, stride : int
        Layer sizes (``kernel_size`` is rounded up to an odd number).
    target_len : int
        With ``n_layers=None``, use as many layers as bring ``n_times`` to ``<= target_len``.
    n_layers : int or None
        Fixed number of layers.
    batch_norm : bool
        Insert ``BatchNorm1d`` after each convolution.
    dropout : float
        Dropout probability after each activation.

    Returns
    -------
    stack : torch.nn.Sequential
        Maps ``(N, in_channels, n_times)`` to ``(N, out_channels, out_len)``.
    out_channels : int
        Channels of the last layer.
    out_len : int
        Output length for an input of ``n_times`` samples.
    """
    kernel_size = check_positive_int(kernel_size, "kernel_size")
    kernel_size += 1 - kernel_size % 2
    stride = check_positive_int(stride, "stride")
    base_width = check_positive_int(base_width, "base_width")
    max_width = check_positive_int(max_width, "max_width")
    target_len = check_positive_int(target_len, "target_len")
    if n_layers is None:
        n_layers = n_strided_layers(n_times, stride, target_len)
    n_layers = check_positive_int(n_layers, "n_layers")
    layers: list[nn.Module] = []
    ch, length = in_channels, int(n_times)
    for i in range(n_layers):
        out = min(base_width * 2**i, max_width)
        layers.append(
            nn.Conv1d(
                ch, out, kernel_size, stride=stride, padding=kernel_size // 2, bias=not batch_norm
            )
        )
        if batch_norm:
            layers.append(nn.BatchNorm1d(out))
        layers.append(nn.GELU())
        if dropout > 0:
            layers.append(Dropout(dropout))
        ch, length = out, (length - 1) // stride + 1
    return nn.Sequential(*layers), ch, length


def make_mlp(
    n_in: int, hidden: Sequence[int], n_out: int, *, dropout: float = 0.0
) -> nn.Sequential:
    """Fully connected network ``n_in -> hidden... -> n_out`` (GELU, dropout; linear last layer).

    Parameters
    ----------
    n_in, n_out : int
        Input and output features.
    hidden : sequence of int
        Hidden layer sizes (empty: a single linear layer).
    dropout : float
        Dropout after each hidden activation.

    Returns
    -------
    torch.nn.Sequential
        Maps ``(..., n_in)`` to ``(..., n_out)``.
    """
    layers: list[nn.Module] = []
    prev = n_in
    for h in hidden:
        layers += [nn.Linear(prev, h), nn.GELU()]
        if dropout > 0:
            layers.append(Dropout(dropout))
        prev = h
    layers.append(nn.Linear(prev, n_out))
    return nn.Sequential(*layers)


# ----------------------------------------------------------------------------- embedders


class FCChannelEmbedder(nn.Module):
    """Fully connected embedding of each channel's time series, shared across channels.

    The oldest ``n_times % time_pool`` samples are dropped, the rest averaged in
    non-overlapping blocks of ``time_pool`` samples, and a fully connected
    network ``n_times // time_pool -> hidden... -> emb_dim`` is applied to every
    channel with the same weights.

    Parameters
    ----------
    n_times : int
        Samples per channel (the weights depend on it).
    emb_dim : int
        Embedding size per channel.
    hidden : sequence of int
        Hidden layer sizes of the embedder.
    time_pool : int
        Average-pooling factor along time before the first layer (1: none).
    dropout : float
        Dropout after each hidden activation and on the embedding.
    """

    def __init__(
        self,
        n_times: int,
        *,
        emb_dim: int = 64,
        hidden: Sequence[int] = (256,),
        time_pool: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.n_times = check_positive_int(n_times, "n_times")
        self.time_pool = check_positive_int(time_pool, "time_pool")
        self.n_pooled = self.n_times // self.time_pool
        if self.n_pooled < 1:
            raise Eeg2fmriInputError(
                f"expected time_pool <= n_times ({self.n_times}), got {time_pool}; use a smaller time_pool."
            )
        self.emb_dim = check_positive_int(emb_dim, "emb_dim")
        hidden = check_int_sizes(hidden, "embed_hidden")
        self.net = make_mlp(self.n_pooled, hidden, self.emb_dim, dropout=dropout)
        self.act = nn.GELU()
        self.drop = Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embed every channel.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, n_chans, n_times)

        Returns
        -------
        torch.Tensor, shape (batch, n_chans, emb_dim)
        """
        if self.time_pool > 1:
            start = self.n_times - self.n_pooled * self.time_pool
            x = x[..., start:].reshape(*x.shape[:-1], self.n_pooled, self.time_pool).mean(-1)
        return self.drop(self.act(self.net(x)))


class ConvChannelEmbedder(nn.Module):
    """1D temporal convolution embedding of each channel, shared across channels.

    Every channel's series is treated as a one-channel signal: a stack of
    strided convolutions (see :func:`strided_conv_stack`), adaptive average
    pooling to ``pool_len`` steps (so the embedding size does not depend on
    ``n_times``), and a linear layer to ``emb_dim``.

    Parameters
    ----------
    n_times : int
        Samples per channel; only used to choose the number of layers when
        ``n_layers`` is None (the module accepts any length).
    emb_dim : int
        Embedding size per channel.
    base_width, max_width : int
        Feature maps of the first layer, doubling per layer up to ``max_width``.
    kernel_size, stride : int
        Convolution kernel length (made odd) and stride.
    n_layers : int or None
        Number of convolutions; None: as many as bring ``n_times`` to ``<= target_len``.
    target_len : int
        See ``n_layers``.
    pool_len : int
        Steps kept by the adaptive average pooling (capped at the conv output length).
    batch_norm : bool
        BatchNorm1d after each convolution.
    dropout : float
        Dropout after each activation.
    """

    def __init__(
        self,
        n_times: int,
        *,
        emb_dim: int = 64,
        base_width: int = 8,
        max_width: int = 64,
        kernel_size: int = 9,
        stride: int = 4,
        n_layers: int | None = None,
        target_len: int = 32,
        pool_len: int = 4,
        batch_norm: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.emb_dim = check_positive_int(emb_dim, "emb_dim")
        self.convs, width, out_len = strided_conv_stack(
            1,
            check_positive_int(n_times, "n_times"),
            base_width=base_width,
            max_width=max_width,
            kernel_size=kernel_size,
            stride=stride,
            target_len=target_len,
            n_layers=n_layers,
            batch_norm=batch_norm,
            dropout=dropout,
        )
        self.pool_len = min(check_positive_int(pool_len, "pool_len"), out_len)
        self.pool = AdaptiveAvgPool1d(self.pool_len)
        self.proj = nn.Linear(width * self.pool_len, self.emb_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embed every channel.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, n_chans, n_times)

        Returns
        -------
        torch.Tensor, shape (batch, n_chans, emb_dim)
        """
        b, c, t = x.shape
        h = self.pool(self.convs(x.reshape(b * c, 1, t)))  # (b*c, width, pool_len)
        return self.proj(h.flatten(1)).reshape(b, c, self.emb_dim)
