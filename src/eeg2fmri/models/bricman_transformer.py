"""Bricman & Borst (2021) EEG2fMRI, channels-to-slices transformer variant.

EEG-to-fMRI is framed as sequence-to-sequence transduction: the source
sequence holds one token per EEG channel (a shared convolutional embedding of
that channel's raw series plus a learned channel position embedding), the
target sequence one token per output slice (learned slice queries), decoded by
an ``nn.Transformer`` encoder-decoder. Reimplemented from the description in
``systems.md`` section 2.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from eeg2fmri.datasets.spec import DataSpec
from eeg2fmri.models._bricman_common import (
    ConvChannelEmbedder,
    check_dropout,
    check_raw_batch,
    require_raw_spec,
    seeded_init,
)
from eeg2fmri.models._dropout import use_fast_dropout
from eeg2fmri.models.base import register_model
from eeg2fmri.utils.validation import Eeg2fmriInputError, check_positive_int


@register_model("bricman_transformer")
class BricmanTransformer(nn.Module):
    """EEG channels (source) to output slices (target) with ``nn.Transformer``.

    Target layout:

    * volume ``(X, Y, Z)`` (any output with >= 2 axes): ``Z`` slice tokens,
      each projected by one shared linear layer to the ``X * Y`` voxels of its
      slice;
    * vector ``(n_outputs,)``: ``n_chunks`` tokens, each projected to
      ``ceil(n_outputs / n_chunks)`` values; the concatenation is cut to ``n_outputs``.

    Parameters
    ----------
    spec : DataSpec
        Data specification; ``input_kind`` must be ``"raw"``.
    d_model : int
        Token size (also the per-channel embedding size).
    nhead : int
        Attention heads (must divide ``d_model``).
    num_encoder_layers, num_decoder_layers : int
        Transformer depth.
    dim_feedforward : int
        Hidden size of the transformer feed-forward blocks.
    dropout : float
        Dropout inside the transformer and the embedder.
    n_chunks : int or None
        Target tokens for a vector output; None: ``min(n_outputs, 32)``.
        Ignored for volume outputs.
    norm_first : bool
        Pre-layer-norm transformer blocks.
    base_width, max_width, kernel_size, stride, target_len, pool_len, batch_norm
        Convolutional channel embedder settings (see
        :class:`eeg2fmri.models._bricman_common.ConvChannelEmbedder`).
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
        d_model: int = 64,
        nhead: int = 4,
        num_encoder_layers: int = 2,
        num_decoder_layers: int = 2,
        dim_feedforward: int = 128,
        dropout: float = 0.1,
        n_chunks: int | None = None,
        norm_first: bool = True,
        base_width: int = 8,
        max_width: int = 64,
        kernel_size: int = 9,
        stride: int = 4,
        target_len: int = 32,
        pool_len: int = 4,
        batch_norm: bool = True,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        require_raw_spec(spec, "bricman_transformer")
        self.spec = spec
        d_model = check_positive_int(d_model, "d_model")
        nhead = check_positive_int(nhead, "nhead")
        if d_model % nhead:
            raise Eeg2fmriInputError(
                f"bricman_transformer: expected d_model divisible by nhead, got d_model={d_model}, "
                f"nhead={nhead}; pick e.g. nhead={math.gcd(d_model, 4) or 1}."
            )
        num_encoder_layers = check_positive_int(num_encoder_layers, "num_encoder_layers")
        num_decoder_layers = check_positive_int(num_decoder_layers, "num_decoder_layers")
        dim_feedforward = check_positive_int(dim_feedforward, "dim_feedforward")
        dropout = check_dropout(dropout)
        n_chans, n_times = spec.input_shape
        out_shape = tuple(int(s) for s in spec.output_shape)
        if len(out_shape) >= 2:
            self.n_tokens = out_shape[-1]
            self.token_size = spec.n_outputs // self.n_tokens
        else:
            n_out = out_shape[0]
            k = min(n_out, 32) if n_chunks is None else check_positive_int(n_chunks, "n_chunks")
            if k > n_out:
                raise Eeg2fmriInputError(
                    f"bricman_transformer: expected n_chunks <= n_outputs ({n_out}), got {k}; "
                    "use fewer chunks."
                )
            self.n_tokens = k
            self.token_size = -(-n_out // k)
        self.d_model = d_model
        with seeded_init(seed):
            self.embedder = ConvChannelEmbedder(
                n_times,
                emb_dim=d_model,
                base_width=base_width,
                max_width=max_width,
                kernel_size=kernel_size,
                stride=stride,
                target_len=target_len,
                pool_len=pool_len,
                batch_norm=bool(batch_norm),
                dropout=dropout,
            )
            self.channel_pos = nn.Parameter(0.02 * torch.randn(n_chans, d_model))
            self.slice_queries = nn.Parameter(0.02 * torch.randn(self.n_tokens, d_model))
            enc_layer = nn.TransformerEncoderLayer(
                d_model,
                nhead,
                dim_feedforward,
                dropout,
                activation="gelu",
                batch_first=True,
                norm_first=bool(norm_first),
            )
            encoder = nn.TransformerEncoder(
                enc_layer,
                num_encoder_layers,
                norm=nn.LayerNorm(d_model),
                enable_nested_tensor=False,
            )
            self.transformer = nn.Transformer(
                d_model=d_model,
                nhead=nhead,
                num_decoder_layers=num_decoder_layers,
                dim_feedforward=dim_feedforward,
                dropout=dropout,
                activation="gelu",
                custom_encoder=encoder,
                batch_first=True,
                norm_first=bool(norm_first),
            )
            use_fast_dropout(self.transformer)  # its layers' nn.Dropout draw CPU masks cheaply (models/_dropout.py)
            self.to_slice = nn.Linear(d_model, self.token_size)

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
        check_raw_batch(x, self.spec, "bricman_transformer", check_times=False)
        b = x.shape[0]
        src = self.embedder(x) + self.channel_pos  # (b, n_chans, d_model)
        tgt = self.slice_queries.expand(b, -1, -1)  # (b, n_tokens, d_model)
        tokens = self.transformer(src, tgt)  # (b, n_tokens, d_model)
        out = self.to_slice(tokens)  # (b, n_tokens, token_size)
        shape = self.spec.output_shape
        if len(shape) >= 2:
            # token k is slice k along the last axis: (b, Z, X, Y) -> (b, X, Y, Z)
            return out.reshape(b, shape[-1], *shape[:-1]).movedim(1, -1)
        return out.reshape(b, -1)[:, : shape[0]]
