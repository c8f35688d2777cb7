"""Bricman & Borst (2021) EEG2fMRI, convolutional-embedder variant.

Like :mod:`eeg2fmri.models.bricman_fc`, but each channel is embedded by a stack
of strided 1D temporal convolutions (shared across channels) pooled to a
fixed-size embedding, so the embedder's size does not grow with the window
length. Reimplemented from the description in ``systems.md`` section 2.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from eeg2fmri.datasets.spec import DataSpec
from eeg2fmri.models._bricman_common import (
    ConvChannelEmbedder,
    check_dropout,
    check_int_sizes,
    check_raw_batch,
    make_mlp,
    require_raw_spec,
    seeded_init,
)
from eeg2fmri.models.base import register_model


@register_model("bricman_conv")
class BricmanConv(nn.Module):
    """Shared per-channel convolutional embedder + fully connected readout.

    Parameters
    ----------
    spec : DataSpec
        Data specification; ``input_kind`` must be ``"raw"``.
    emb_dim : int
        Embedding size per channel.
    base_width, max_width : int
        Feature maps of the first convolution, doubling per layer up to ``max_width``.
    kernel_size, stride : int
        Temporal kernel length (made odd) and stride of each convolution.
    n_layers : int or None
        Number of convolutions; None: as many as bring ``n_times`` to ``<= target_len``
        (e.g. 5 for 30000 samples, 3 for 2048 with stride 4).
    target_len : int
        See ``n_layers``.
    pool_len : int
        Time steps kept by the adaptive average pooling before the embedding layer.
    head_hidden : sequence of int
        Hidden layer sizes of the readout ``n_chans * emb_dim -> prod(output_shape)``.
    batch_norm : bool
        BatchNorm1d after each convolution.
    dropout : float
        Dropout after hidden activations.
    seed : int or None
        Seed for the parameter initialisation (the global RNG is left untouched).

    Notes
    -----
    ``forward(x)`` maps ``(batch, n_chans, n_times)`` to ``(batch, *spec.output_shape)``.
    """

    input_kinds = ("raw",)
    #: The training setting ``eeg2fmri benchmark`` uses for this published model (our choice, not the paper's:
    #: a generic AdamW schedule with early stopping and the checkpoint on the validation windows' mean voxel r;
    #: bfloat16 mixed precision where the device computes it natively, ``precision: "auto"``).
    recommended_train_config: dict = {"optimizer": {"lr": 1e-3, "batch_size": 32, "max_epochs": 60, "patience": 10, "monitor": "val_r", "precision": "auto"}}

    def __init__(
        self,
        spec: DataSpec,
        *,
        emb_dim: int = 64,
        base_width: int = 8,
        max_width: int = 64,
        kernel_size: int = 9,
        stride: int = 4,
        n_layers: int | None = None,
        target_len: int = 32,
        pool_len: int = 4,
        head_hidden: Sequence[int] = (256,),
        batch_norm: bool = True,
        dropout: float = 0.0,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        require_raw_spec(spec, "bricman_conv")
        self.spec = spec
        dropout = check_dropout(dropout)
        head_hidden = check_int_sizes(head_hidden, "head_hidden")
        n_chans, n_times = spec.input_shape
        with seeded_init(seed):
            self.embedder = ConvChannelEmbedder(
                n_times,
                emb_dim=emb_dim,
                base_width=base_width,
                max_width=max_width,
                kernel_size=kernel_size,
                stride=stride,
                n_layers=n_layers,
                target_len=target_len,
                pool_len=pool_len,
                batch_norm=bool(batch_norm),
                dropout=dropout,
            )
            self.act = nn.GELU()
            self.head = make_mlp(
                n_chans * self.embedder.emb_dim, head_hidden, spec.n_outputs, dropout=dropout
            )

    def forward(self, x: torch.Tensor, subject: torch.Tensor | None = None) -> torch.Tensor:
        """Predict the target from raw EEG.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, n_chans, n_times)
            Raw EEG windows.
        subject : torch.Tensor or None
            Ignored (the model has no subject embedding); accepted for API compatibility.

        Returns
        -------
        torch.Tensor, shape (batch, *spec.output_shape)
        """
        check_raw_batch(x, self.spec, "bricman_conv", check_times=False)
        emb = self.act(self.embedder(x))  # (batch, n_chans, emb_dim)
        return self.head(emb.flatten(1)).reshape(x.shape[0], *self.spec.output_shape)
