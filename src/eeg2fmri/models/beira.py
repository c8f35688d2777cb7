"""BEIRA: BOLD from EEG Interpretable Regression Autoencoder (Kovalev, Ossadtchi et al.).

Raw EEG passes an interpretable front end -- a 1x1 spatial unmixing
convolution to ``n_virtual`` virtual channels, one learned band-pass filter
per virtual channel (depthwise temporal convolution), the absolute value as
an envelope detector and a depthwise low-pass (smoothing) convolution that
also decimates the envelopes -- then a strided convolutional encoder to a
bottleneck and a decoder to the target. Reimplemented from the description in
``systems.md`` section 3.

Adaptation: the original decodes a window of ROI samples with a convolutional
decoder; here one target per EEG window (``(batch, *output_shape)``) is
decoded by a linear head (vector outputs such as ROI values) or a low-rank
linear decoder (volumes), whose ``rank`` rows of the last weight are spatial
maps.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from eeg2fmri.datasets.spec import DataSpec
from eeg2fmri.models._bricman_common import (
    AdaptiveAvgPool1d,
    check_dropout,
    check_raw_batch,
    require_raw_spec,
    seeded_init,
    strided_conv_stack,
)
from eeg2fmri.models._dropout import Dropout
from eeg2fmri.models._fftconv import depthwise_conv1d
from eeg2fmri.models.base import register_model
from eeg2fmri.utils.validation import Eeg2fmriInputError, check_positive, check_positive_int


def _odd_length(seconds: float, sfreq: float, name: str) -> int:
    """Odd number of samples (>= 3) closest to ``seconds`` at ``sfreq``."""
    n = int(round(check_positive(seconds, name) * sfreq))
    n = max(n, 3)
    return n + 1 - n % 2


def _bandpass_bank(centres_hz: torch.Tensor, n_taps: int, sfreq: float) -> torch.Tensor:
    """Hann-windowed cosine (Gabor) band-pass filters with unit peak gain and zero DC gain.

    Parameters
    ----------
    centres_hz : torch.Tensor, shape (n_filters,)
    n_taps : int
        Odd filter length.
    sfreq : float
        Sampling frequency in Hz.

    Returns
    -------
    torch.Tensor, shape (n_filters, n_taps)
    """
    t = (torch.arange(n_taps, dtype=torch.float64) - (n_taps - 1) / 2) / sfreq
    win = torch.hann_window(n_taps + 2, periodic=False, dtype=torch.float64)[1:-1]
    h = win * torch.cos(2 * math.pi * centres_hz.double()[:, None] * t)
    h = h - win * (h.sum(1, keepdim=True) / win.sum())  # remove DC response
    # unit peak magnitude (removing DC shifts the peak of the lowest filters above their centre)
    n_fft = 1 << max(12, (8 * n_taps - 1).bit_length())
    gain = torch.fft.rfft(h, n=n_fft, dim=-1).abs().amax(-1)
    return (h / gain[:, None]).float()


@register_model("beira")
class BEIRA(nn.Module):
    """Interpretable spatial/band-pass/envelope front end + conv encoder + linear decoder.

    Pipeline for ``x`` of shape ``(batch, n_chans, n_times)``:

    1. ``unmix``: 1x1 conv ``n_chans -> n_virtual`` (spatial filters, no bias);
    2. ``bandpass``: depthwise conv, one filter of ``round(filter_len_s * sfreq)``
       taps (odd) per virtual channel, initialised as band-pass filters with
       centre frequencies spaced geometrically over ``freq_range_hz``;
    3. absolute value (envelope);
    4. ``lowpass``: depthwise conv of ``round(smooth_len_s * sfreq)`` taps,
       initialised as a moving average, with stride
       ``max(1, floor(sfreq / envelope_sfreq))`` (decimated envelopes);
    5. ``encoder``: strided convs (``kernel_size``, ``stride``, widths
       ``base_width * 2**i`` capped at ``max_width``) until the length is
       ``<= target_len``, adaptive average pooling to ``pool_len`` steps,
       linear to ``latent_dim`` (+ GELU): the bottleneck;
    6. decoder: vector output -> ``Linear(latent_dim, n_outputs)``;
       output with >= 2 axes -> ``Linear(latent_dim, rank)`` then
       ``Linear(rank, prod(output_shape))``.

    Parameters
    ----------
    spec : DataSpec
        Data specification; ``input_kind`` must be ``"raw"``; ``sfreq`` sets the
        filter lengths and initial centre frequencies.
    n_virtual : int
        Virtual (unmixed) channels.
    filter_len_s : float
        Band-pass filter length in seconds.
    freq_range_hz : tuple of float or None
        ``(low, high)`` initial centre frequencies; None:
        ``(min(1 / filter_len_s, 0.25 * nyquist), min(0.8 * nyquist, 100))``.
    smooth_len_s : float
        Low-pass (moving-average) length in seconds.
    envelope_sfreq : float
        Approximate rate of the decimated envelopes in Hz.
    base_width, max_width, kernel_size, stride, target_len : int
        Encoder convolutions.
    pool_len : int
        Steps kept by the adaptive pooling before the bottleneck (capped at the
        encoder output length).
    latent_dim : int
        Bottleneck size.
    rank : int
        Rank of the decoder for outputs with >= 2 axes (ignored for vectors).
    batch_norm : bool
        BatchNorm1d after each encoder convolution.
    dropout : float
        Dropout in the encoder and on the bottleneck.
    seed : int or None
        Seed for the parameter initialisation (the global RNG is left untouched).

    Attributes
    ----------
    centre_freqs_hz : tuple of float
        Initial centre frequency of each virtual channel's band-pass filter.
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
        n_virtual: int = 16,
        filter_len_s: float = 0.5,
        freq_range_hz: tuple[float, float] | None = None,
        smooth_len_s: float = 0.25,
        envelope_sfreq: float = 25.0,
        base_width: int = 32,
        max_width: int = 128,
        kernel_size: int = 7,
        stride: int = 4,
        target_len: int = 16,
        pool_len: int = 8,
        latent_dim: int = 128,
        rank: int = 32,
        batch_norm: bool = True,
        dropout: float = 0.0,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        require_raw_spec(spec, "beira")
        self.spec = spec
        n_chans, n_times = spec.input_shape
        sfreq = check_positive(spec.sfreq, "spec.sfreq")
        nyquist = sfreq / 2
        self.n_virtual = check_positive_int(n_virtual, "n_virtual")
        latent_dim = check_positive_int(latent_dim, "latent_dim")
        dropout = check_dropout(dropout)
        if freq_range_hz is None:
            low = min(1.0 / check_positive(filter_len_s, "filter_len_s"), 0.25 * nyquist)
            high = min(0.8 * nyquist, 100.0)
        else:
            try:
                low, high = (float(f) for f in freq_range_hz)
            except (TypeError, ValueError):
                low, high = float("nan"), float("nan")
            if not (0 < low <= high < nyquist):
                raise Eeg2fmriInputError(
                    f"beira: expected freq_range_hz=(low, high) with 0 < low <= high < Nyquist "
                    f"({nyquist:g} Hz), got {freq_range_hz!r}; e.g. freq_range_hz=(2, {0.8 * nyquist:g})."
                )
        self.filter_taps = _odd_length(filter_len_s, sfreq, "filter_len_s")
        self.smooth_taps = _odd_length(smooth_len_s, sfreq, "smooth_len_s")
        self.decimation = max(1, int(sfreq // check_positive(envelope_sfreq, "envelope_sfreq")))
        centres = torch.logspace(
            math.log10(low), math.log10(high), self.n_virtual, dtype=torch.float64
        )
        self.centre_freqs_hz = tuple(float(f) for f in centres)
        v = self.n_virtual
        with seeded_init(seed):
            self.unmix = nn.Conv1d(n_chans, v, 1, bias=False)
            self.bandpass = nn.Conv1d(
                v, v, self.filter_taps, padding=self.filter_taps // 2, groups=v, bias=False
            )
            self.lowpass = nn.Conv1d(
                v,
                v,
                self.smooth_taps,
                stride=self.decimation,
                padding=self.smooth_taps // 2,
                groups=v,
                bias=False,
            )
            env_len = (n_times - 1) // self.decimation + 1
            self.encoder, width, enc_len = strided_conv_stack(
                v,
                env_len,
                base_width=base_width,
                max_width=max_width,
                kernel_size=kernel_size,
                stride=stride,
                target_len=target_len,
                n_layers=None,
                batch_norm=bool(batch_norm),
                dropout=dropout,
            )
            self.pool_len = min(check_positive_int(pool_len, "pool_len"), enc_len)
            self.pool = AdaptiveAvgPool1d(self.pool_len)
            self.bottleneck = nn.Sequential(
                nn.Linear(width * self.pool_len, latent_dim),
                nn.GELU(),
                Dropout(dropout) if dropout > 0 else nn.Identity(),
            )
            if len(spec.output_shape) >= 2:
                rank = check_positive_int(rank, "rank")
                self.decoder = nn.Sequential(
                    nn.Linear(latent_dim, rank), nn.Linear(rank, spec.n_outputs)
                )
            else:
                self.decoder = nn.Sequential(nn.Linear(latent_dim, spec.n_outputs))
        with torch.no_grad():
            self.bandpass.weight.copy_(_bandpass_bank(centres, self.filter_taps, sfreq)[:, None, :])
            self.lowpass.weight.fill_(1.0 / self.smooth_taps)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Decimated band-limited envelopes of the virtual channels.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, n_chans, n_times)

        Returns
        -------
        torch.Tensor, shape (batch, n_virtual, (n_times - 1) // decimation + 1)
        """
        check_raw_batch(x, self.spec, "beira", check_times=False)
        # the two depthwise filters by FFT on the CPU (oneDNN's depthwise kernels are slow for long filters)
        return depthwise_conv1d(depthwise_conv1d(self.unmix(x), self.bandpass).abs(), self.lowpass)

    def forward(self, x: torch.Tensor, subject: torch.Tensor | None = None) -> torch.Tensor:
        """Predict the target from raw EEG.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, n_chans, n_times)
            Raw EEG windows at ``spec.sfreq``.
        subject : torch.Tensor or None
            Ignored (the model has no subject embedding); accepted for API compatibility.

        Returns
        -------
        torch.Tensor, shape (batch, *spec.output_shape)
        """
        h = self.pool(self.encoder(self.features(x)))  # (batch, width, pool_len)
        return self.decoder(self.bottleneck(h.flatten(1))).reshape(
            x.shape[0], *self.spec.output_shape
        )

    @torch.no_grad()
    def spatial_patterns(self, x: torch.Tensor | None = None) -> torch.Tensor:
        """Spatial unmixing weights, or the corresponding activation patterns.

        Parameters
        ----------
        x : torch.Tensor or None, shape (batch, n_chans, n_times) or (n_chans, n_times)
            Without data, return the unmixing (filter) weights ``W``. With EEG
            data, return the activation patterns ``A = C_x W^T (W C_x W^T)^+``
            (Haufe et al. 2014), which are the topographies to plot; ``C_x``
            is the channel covariance of ``x`` (each window demeaned).

        Returns
        -------
        torch.Tensor, shape (n_virtual, n_chans)
            Row ``k`` belongs to virtual channel ``k``.
        """
        w = self.unmix.weight[:, :, 0].detach().clone()  # (n_virtual, n_chans)
        if x is None:
            return w
        x = x.detach().to(w.dtype)
        if x.ndim == 2:
            x = x[None]
        check_raw_batch(x, self.spec, "beira.spatial_patterns", check_times=False)
        xc = x - x.mean(-1, keepdim=True)
        cov = torch.einsum("bct,bdt->cd", xc, xc) / (xc.shape[0] * xc.shape[-1])
        patterns = cov @ w.T @ torch.linalg.pinv(w @ cov @ w.T)  # (n_chans, n_virtual)
        return patterns.T.contiguous()

    @torch.no_grad()
    def filter_responses(self, n_freqs: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
        """Magnitude frequency responses of the learned band-pass filters.

        Parameters
        ----------
        n_freqs : int
            Frequencies evenly spaced from 0 to the Nyquist frequency (>= 2).

        Returns
        -------
        freqs_hz : torch.Tensor, shape (n_freqs,)
        magnitude : torch.Tensor, shape (n_virtual, n_freqs)
            ``|H(f)|`` of each virtual channel's filter (exact DTFT samples).
        """
        n_freqs = check_positive_int(n_freqs, "n_freqs")
        if n_freqs < 2:
            raise Eeg2fmriInputError(
                f"beira: expected n_freqs >= 2, got {n_freqs}; pass e.g. n_freqs=256."
            )
        h = self.bandpass.weight[:, 0, :].detach()  # (n_virtual, taps)
        step = 2 * (n_freqs - 1)
        m = -(-h.shape[-1] // step)  # zero-pad to a multiple of step >= taps, keep every m-th bin
        mag = torch.fft.rfft(h, n=step * m, dim=-1).abs()[:, ::m]
        freqs = torch.linspace(0.0, self.spec.sfreq / 2, n_freqs, dtype=h.dtype)
        return freqs, mag
