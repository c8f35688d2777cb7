"""Bricman & Borst (2021) EEG2fMRI, fully connected variant.

A fully connected embedder is applied to each EEG channel's raw time series
with weights shared across channels; the channel embeddings are concatenated
and a fully connected network produces one output per element of the target
(one per voxel for a volume). Reimplemented from the description in
``systems.md`` section 2.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from eeg2fmri.datasets.spec import DataSpec
from eeg2fmri.models._bricman_common import (
    FCChannelEmbedder,
    check_dropout,
    check_int_sizes,
    check_raw_batch,
    make_mlp,
    require_raw_spec,
    seeded_init,
)
from eeg2fmri.models.base import register_model


@register_model("bricman_fc")
class BricmanFC(nn.Module):
    """Shared per-channel fully connected embedder + fully connected readout.

    Parameters
    ----------
    spec : DataSpec
        Data specification; ``input_kind`` must be ``"raw"`` with
        ``input_shape = (n_chans, n_times)``.
    emb_dim : int
        Embedding size per channel.
    embed_hidden : sequence of int
        Hidden layer sizes of the per-channel embedder (input: ``n_times // time_pool``).
    head_hidden : sequence of int
        Hidden layer sizes of the readout (input: ``n_chans * emb_dim``,
        output: ``prod(output_shape)``); empty for a linear readout.
    time_pool : int
        Average-pool each channel in blocks of ``time_pool`` samples before the
        embedder (1: use every sample, as in the original).
    dropout : float
        Dropout after hidden activations.
    seed : int or None
        Seed for the parameter initialisation (the global RNG is left untouched).

    Notes
    -----
    ``forward(x)`` maps ``x`` of shape ``(batch, n_chans, n_times)`` to
    ``(batch, *spec.output_shape)``; ``n_times`` must equal the spec's.
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
        embed_hidden: Sequence[int] = (256,),
        head_hidden: Sequence[int] = (256,),
        time_pool: int = 1,
        dropout: float = 0.0,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        require_raw_spec(spec, "bricman_fc")
        self.spec = spec
        dropout = check_dropout(dropout)
        head_hidden = check_int_sizes(head_hidden, "head_hidden")
        n_chans, n_times = spec.input_shape
        with seeded_init(seed):
            self.embedder = FCChannelEmbedder(
                n_times, emb_dim=emb_dim, hidden=embed_hidden, time_pool=time_pool, dropout=dropout
            )
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
        check_raw_batch(x, self.spec, "bricman_fc", check_times=True)
        emb = self.embedder(x)  # (batch, n_chans, emb_dim)
        return self.head(emb.flatten(1)).reshape(x.shape[0], *self.spec.output_shape)
