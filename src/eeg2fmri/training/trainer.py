"""PyTorch Lightning training of any registered torch model on windows of a prepared dataset.

:func:`fit_torch` trains on the training windows of a split, chooses the
checkpoint and stops early on the VALIDATION windows only (the test
selection is never read), and returns the best weights behind a
:class:`~eeg2fmri.training.predictor.TorchPredictor`. The same code runs on a
laptop CPU and on many GPUs/nodes (DDP): only ``trainer.devices`` /
``trainer.num_nodes`` change.

Reproducibility: the model is built after seeding, the training order is a
permutation drawn from ``(seed, epoch)``, and every epoch reseeds the global
generators from ``(seed, epoch, rank)``. A run resumed from ``last.ckpt``
therefore continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from eeg2fmri.datasets.prepared import PreparedDataset
from eeg2fmri.datasets.targets import Split, split_targets
from eeg2fmri.datasets.windows import ThreadedBatchLoader
from eeg2fmri.models.base import build_model
from eeg2fmri.training.config import MONITORS, resolve_config
from eeg2fmri.training.fit import check_input_kind
from eeg2fmri.training.losses import WeightedLoss
from eeg2fmri.training.predictor import TorchPredictor
from eeg2fmri.training.result import FitResult
from eeg2fmri.utils.logs import logger, progress
from eeg2fmri.utils.rng import preserve_global_rng
from eeg2fmri.utils.stats import pearson_from_sums
from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["EpochShuffleSampler", "LitModel", "WindowDataModule", "fit_torch", "global_rank", "train_val_datasets"]

CHECKPOINTS = "checkpoints"
LAST = "last.ckpt"
BEST = "best.ckpt"


# ----------------------------------------------------------------------------- data
class _EpochBatchSampler(torch.utils.data.BatchSampler):
    """A BatchSampler that forwards ``set_epoch`` to its sampler (Lightning calls it every epoch)."""

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)


class EpochShuffleSampler(Sampler[int]):
    """A permutation of ``range(n)`` drawn from ``(seed, epoch)``; Lightning calls :meth:`set_epoch`.

    Because the order depends only on the epoch number, a resumed run visits
    the windows in the same order as an uninterrupted one.
    """

    def __init__(self, n: int, seed: int) -> None:
        self.n = int(n)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(_derive_seed(self.seed, self.epoch, 0))
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


def _derive_seed(seed: int, epoch: int, rank: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(epoch), int(rank)]).generate_state(1)[0])


class WindowDataModule(pl.LightningDataModule):
    """Training and validation windows (no test windows exist here).

    Parameters
    ----------
    train, val : Dataset
        Map-style datasets yielding ``(x, y, subject)``.
    batch_size, num_workers, seed : int
    loader_threads : int
        If > 0 (and the datasets are :class:`~eeg2fmri.datasets.WindowDataset`),
        batches are fetched by this many threads of the training process
        (:class:`~eeg2fmri.datasets.windows.ThreadedBatchLoader`, page-locked
        batches when CUDA is available) instead of DataLoader worker processes.
    """

    def __init__(self, train: Dataset, val: Dataset, *, batch_size: int, num_workers: int, seed: int, loader_threads: int = 0) -> None:
        super().__init__()
        self.train_set, self.val_set = train, val
        self.batch_size, self.num_workers, self.seed = int(batch_size), int(num_workers), int(seed)
        self.loader_threads = int(loader_threads)

    def _loader(self, ds: Dataset, sampler: Sampler, drop_last: bool) -> DataLoader | ThreadedBatchLoader:
        if hasattr(ds, "get_batch"):
            # WindowDataset fetches a whole batch at once (contiguous block copies, no per-window collate):
            # the sampler's indices are grouped into batches here and each batch is one dataset item
            batches = _EpochBatchSampler(sampler, self.batch_size, drop_last)
            if self.loader_threads > 0 and hasattr(ds, "_fetch"):  # a WindowDataset (or subclass)
                return ThreadedBatchLoader(ds, batches, num_threads=self.loader_threads, pin_memory=torch.cuda.is_available())
            return DataLoader(ds, sampler=batches, batch_size=None, num_workers=self.num_workers, collate_fn=ds.collate,
                              persistent_workers=self.num_workers > 0, pin_memory=torch.cuda.is_available(),
                              generator=torch.Generator().manual_seed(self.seed))
        return DataLoader(ds, batch_size=self.batch_size, sampler=sampler, drop_last=drop_last, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0, pin_memory=torch.cuda.is_available(),
                          generator=torch.Generator().manual_seed(self.seed))

    def train_dataloader(self) -> DataLoader:
        n = len(self.train_set)
        world = self.trainer.world_size if self.trainer is not None else 1
        drop_last = n // world > self.batch_size  # no ragged last batch (BatchNorm needs > 1 window) unless one batch is all
        if world > 1:
            sampler = DistributedSampler(self.train_set, num_replicas=world, rank=self.trainer.global_rank, shuffle=True, seed=self.seed)
        else:
            sampler = EpochShuffleSampler(n, self.seed)
        return self._loader(self.train_set, sampler, drop_last)

    def val_dataloader(self) -> DataLoader:
        world = self.trainer.world_size if self.trainer is not None else 1
        if world > 1:
            sampler = DistributedSampler(self.val_set, num_replicas=world, rank=self.trainer.global_rank, shuffle=False)
        else:
            sampler = torch.utils.data.SequentialSampler(self.val_set)
        return self._loader(self.val_set, sampler, False)


def train_val_datasets(ds: PreparedDataset, split: Split, targets: dict | None = None, window_dataset: Callable | None = None) -> tuple[Dataset, Dataset]:
    """Window datasets of the training and validation selections of ``split``.

    The test selection is not read: when ``targets`` is ``None`` they are
    computed for the training and validation spans only.
    """
    if window_dataset is None:
        from eeg2fmri.datasets import WindowDataset as window_dataset
    if targets is None:
        targets = split_targets(ds, replace(split, selections={"train": split.selections["train"], "val": split.selections["val"], "test": {}}))
    if not split.selections["train"]:
        raise Eeg2fmriInputError("split: expected training windows, found none; use more data or other split fractions.")
    if not split.selections["val"]:
        raise Eeg2fmriInputError(
            "split: expected validation windows (early stopping and checkpoint choice use them), found none; "
            "give the split a validation share (fractions) or validation subjects."
        )
    out = []
    for name in ("train", "val"):
        out.append(window_dataset(ds, selection=split.selections[name], n_frames=split.n_frames, lag=split.lag, targets=targets[name]))
    return out[0], out[1]


# ----------------------------------------------------------------------------- module
class LitModel(pl.LightningModule):
    """LightningModule around a registered model.

    Parameters
    ----------
    model : torch.nn.Module
        ``forward(x, subject=None)``, optionally ``training_terms(x, y, subject=None)``.
    loss : WeightedLoss
    optimizer : dict
        The ``optimizer`` section of a resolved config.
    seed : int
    name : str
        Model name for messages.
    output_shape : tuple of int | None
        ``DataSpec.output_shape`` of the data: the first training and the first validation
        batch's predictions must be ``(batch, n_outputs)`` or ``(batch, *output_shape)``
        (``None``: the model's ``spec``, if it has one; otherwise not checked).
    """

    def __init__(self, model: torch.nn.Module, loss: WeightedLoss, optimizer: dict, seed: int, name: str = "model",
                 output_shape: Sequence[int] | None = None) -> None:
        super().__init__()
        self.model = model
        self.loss = loss
        self.opt = dict(optimizer)
        self.seed = int(seed)
        self.model_name = name
        self.use_terms = hasattr(model, "training_terms")
        self.history: list[dict[str, float]] = []
        # training seconds of the run(s) a resumed fit continues, and when this run started (perf_counter)
        self.seconds_before = 0.0
        self.started_at = time.perf_counter()
        self._train_sum: list[torch.Tensor] = []
        self._val: dict[str, torch.Tensor] = {}
        spec = getattr(model, "spec", None)
        if output_shape is None and spec is not None:
            output_shape = spec.output_shape
        self.expected_output = None if output_shape is None else tuple(int(v) for v in output_shape)
        self._checked: set[str] = set()  # stages whose first batch's output shape was checked (once per fit: no cost per step)

    def forward(self, x: torch.Tensor, subject: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(x, subject=subject)

    def _terms(self, x: torch.Tensor, y: torch.Tensor, s: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.use_terms:
            return self.model.training_terms(x, y.reshape((len(y),) + tuple(self.model_output_shape)), subject=s)
        return {"pred": self.model(x, subject=s)}

    def _check_output(self, pred: Any, n: int, stage: str) -> None:
        """Refuse predictions that are not ``(n, n_outputs)`` or ``(n, *output_shape)`` (the first batch of ``stage`` only)."""
        if stage in self._checked:
            return
        self._checked.add(stage)
        if not isinstance(pred, torch.Tensor):
            what = "training_terms(x, y, subject) to return a 'pred' tensor" if self.use_terms else "forward(x, subject=None) to return a tensor"
            raise Eeg2fmriInputError(f"model {self.model_name!r}: expected {what}, got {type(pred).__name__} on its first {stage} batch; "
                                     "return the predictions as one torch.Tensor.")
        if self.expected_output is None:
            return
        shape = self.expected_output
        n_out = int(np.prod(shape))
        ok = {(n, n_out), (n, *shape)}
        if tuple(pred.shape) not in ok:
            want = f"(batch, n_outputs) = {(n, n_out)}" + (f" or (batch, *output_shape) = {(n, *shape)}" if len(shape) > 1 else "")
            raise Eeg2fmriInputError(
                f"model {self.model_name!r}: expected predictions of shape {want} from its DataSpec, got {tuple(pred.shape)} on its first "
                f"{stage} batch of {n} windows; make forward(x, subject=None) return one row of spec.n_outputs ({n_out}) values per window "
                "(build the output layer from spec.n_outputs / spec.output_shape)."
            )

    @property
    def model_output_shape(self) -> tuple[int, ...]:
        spec = getattr(self.model, "spec", None)
        return tuple(spec.output_shape) if spec is not None else (-1,)

    # training ------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        pl.seed_everything(_derive_seed(self.seed, self.current_epoch, self.global_rank + 1), workers=True, verbose=False)
        # running (loss sum, count) kept on the device: no host-device sync per step
        dt = torch.float32 if self.device.type == "mps" else torch.float64
        self._train_sum = [torch.zeros((), dtype=dt, device=self.device), torch.zeros((), dtype=dt, device=self.device)]

    def training_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y, s = batch
        terms = self._terms(x, y, s)
        self._check_output(terms.get("pred"), len(x), "training")
        total, parts = self.loss(terms, y, model_name=self.model_name)
        b = len(x)
        self.log("train_loss", total, on_step=True, on_epoch=False, prog_bar=True, batch_size=b)
        for k, v in parts.items():
            self.log(f"train_{k}", v, on_step=False, on_epoch=True, batch_size=b, sync_dist=True)
        self._train_sum[0] += total.detach().to(self._train_sum[0].dtype) * b
        self._train_sum[1] += b
        return total

    # validation ------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._val = {}

    def validation_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> None:
        x, y, s = batch
        terms = self._terms(x, y, s)
        self._check_output(terms.get("pred"), len(x), "validation")
        total, parts = self.loss(terms, y, model_name=self.model_name)
        p = terms["pred"].detach().reshape(len(x), -1)
        t = y.detach().reshape(len(x), -1)
        dt = torch.float32 if p.device.type == "mps" else torch.float64
        p, t = p.to(dt), t.to(dt)
        stats = {"n": torch.tensor(float(len(x)), dtype=dt, device=p.device), "loss": total.detach().to(dt) * len(x), "sp": p.sum(0), "st": t.sum(0),
                 "spp": (p * p).sum(0), "stt": (t * t).sum(0), "spt": (p * t).sum(0),
                 "sse": ((p - t) ** 2).sum()}
        for k, v in parts.items():
            stats[f"part_{k}"] = v.to(dt) * len(x)
        for k, v in stats.items():
            self._val[k] = self._val[k] + v if k in self._val else v

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        red = {k: self.trainer.strategy.reduce(v, reduce_op="sum") for k, v in self._val.items()}
        n = red["n"]
        r, ok = pearson_from_sums(n, red["sp"], red["st"], red["spp"], red["stt"], red["spt"])
        mse = red["sse"] / (n * len(red["sp"]))
        metrics = {"val_loss": red["loss"] / n, "val_mse": mse, "val_r": torch.nanmean(r) if bool(ok.any()) else torch.zeros((), dtype=r.dtype, device=r.device)}
        for k, v in red.items():
            if k.startswith("part_"):
                metrics[f"val_{k[5:]}"] = v / n
        for k, v in metrics.items():
            self.log(k, v.float(), prog_bar=k in ("val_loss", "val_r"), sync_dist=False)
        if not self.trainer.sanity_checking:
            row = {"epoch": int(self.current_epoch), **{k: float(v) for k, v in metrics.items()}}
            if self._train_sum:
                tot = self.trainer.strategy.reduce(torch.stack(self._train_sum).to(n.device), reduce_op="sum")
                if float(tot[1]) > 0:
                    row["train_loss"] = float(tot[0] / tot[1])
            self.history.append(row)

    # optimisation ------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        params = [p for p in self.model.parameters() if p.requires_grad]
        cls = torch.optim.AdamW if self.opt["name"] == "adamw" else torch.optim.Adam
        kw = {"fused": True} if _fused_ok(params, self.opt.get("precision"), self.opt.get("gradient_clip")) else {}
        opt = cls(params, lr=self.opt["lr"], weight_decay=self.opt["weight_decay"], **kw)
        if self.opt["scheduler"] == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.opt["max_epochs"])
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
        return opt

    def configure_gradient_clipping(self, optimizer: Any, gradient_clip_val: float | None = None,
                                    gradient_clip_algorithm: str | None = None) -> None:
        """Clip as Lightning does, also for a fused optimizer under ``bf16-mixed`` (no gradient scaler).

        Lightning's mixed-precision plugin refuses to clip for any optimizer that unscales
        gradients itself (the fused Adam/AdamW), because under ``16-mixed`` the gradients are
        still scaled here. Under ``bf16-mixed`` there is no scaler: the gradients are the true
        ones, and ``torch.nn.utils.clip_grad_norm_`` / ``clip_grad_value_`` on the optimizer's
        parameters is exactly what Lightning's own clipping computes.
        """
        fused = bool(getattr(optimizer, "_step_supports_amp_scaling", False))
        if gradient_clip_val and fused and str(self.opt.get("precision")) == "bf16-mixed":
            params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
            if gradient_clip_algorithm == "value":
                torch.nn.utils.clip_grad_value_(params, float(gradient_clip_val))
            else:
                torch.nn.utils.clip_grad_norm_(params, float(gradient_clip_val))
            return
        self.clip_gradients(optimizer, gradient_clip_val=gradient_clip_val, gradient_clip_algorithm=gradient_clip_algorithm)

    # checkpoint extras (plain lists of floats: loadable with weights_only=True) ---------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["eeg2fmri_history"] = [dict(r) for r in self.history]
        checkpoint["eeg2fmri_fit_seconds"] = float(self.seconds_before + time.perf_counter() - self.started_at)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.history = [dict(r) for r in checkpoint.get("eeg2fmri_history", [])]
        self.seconds_before = float(checkpoint.get("eeg2fmri_fit_seconds", 0.0))


# ----------------------------------------------------------------------------- helpers
class _BestInMemory(pl.Callback):
    """Keep a copy of the weights of the best validation epoch (what ``ModelCheckpoint(save_top_k=1)`` keeps on disk).

    Same rule as the checkpoint: after each validation (not the sanity check), a finite
    monitored value strictly better than the best so far replaces it.
    """

    def __init__(self, monitor: str, mode: str) -> None:
        self.monitor, self.mode = monitor, mode
        self.best_score: float | None = None
        self.best_epoch: int | None = None
        self.state: dict[str, torch.Tensor] | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None or not math.isfinite(float(value)):
            return
        v = float(value)
        if self.best_score is None or (v > self.best_score if self.mode == "max" else v < self.best_score):
            self.best_score, self.best_epoch = v, int(trainer.current_epoch)
            self.state = {k: t.detach().to("cpu", copy=True) for k, t in pl_module.model.state_dict().items()}


class _FloorStop(pl.Callback):
    """``optimizer.floor = [value, epochs]``: stop training when the monitored value has not reached ``value`` (best so
    far, in the monitor's direction) by the end of epoch ``epochs - 1``: data whose validation score stays at the noise
    level (eeg2fmri_net: a network below the validation r its blend guard requires is not used, user tests 15-16 trained it
    for minutes). The decision is the same on every process (the validation metrics are reduced over them)."""

    def __init__(self, monitor: str, mode: str, value: float, epochs: int) -> None:
        self.monitor, self.mode, self.value, self.epochs = monitor, mode, float(value), int(epochs)
        self.best: float | None = None
        self.stopped_epoch: int | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.stopped_epoch is not None:
            return
        # every epoch's value, those of an interrupted run included (the history is restored on resume)
        values = [float(r[self.monitor]) for r in getattr(pl_module, "history", []) if math.isfinite(float(r.get(self.monitor, math.nan)))]
        if values:
            self.best = max(values) if self.mode == "max" else min(values)
        if trainer.current_epoch + 1 < self.epochs:
            return
        below = self.best is None or (self.best < self.value if self.mode == "max" else self.best > self.value)
        if trainer.strategy.reduce_boolean_decision(bool(below), all=True):
            self.stopped_epoch = int(trainer.current_epoch)
            trainer.should_stop = True


#: Exit status of a training run terminated by SIGTERM (128 + 15, what the shell reports for a process killed by it).
SIGTERM_STATUS = 143


def _fit_or_exit(trainer: Any, lit: Any, dm: Any, *, out: Path | None = None, **fit_kwargs: Any) -> None:
    """``trainer.fit``; a SIGTERM (a job scheduler's time limit, ``kill``) ends the process with status 143 and says how to
    go on. Lightning turns it into a ``SystemExit`` without a code, which exited with status 0 and no word (user test 41:
    a ``train && evaluate`` pipeline or a SLURM record took it for a success)."""
    try:
        trainer.fit(lit, datamodule=dm, **fit_kwargs)
    except SystemExit as err:
        if type(err).__name__ != "SIGTERMException":
            raise
        where = (f"the last completed epoch's checkpoint is in {out}: run the same command again (train: with --resume, Python: "
                 "resume=True; tune: it runs the trial again)" if out is not None else "nothing was saved")
        if getattr(trainer, "is_global_zero", True):  # (DDP: every rank gets the broadcast SIGTERM; one message)
            print(f"eeg2fmri: training terminated by SIGTERM at epoch {trainer.current_epoch}; {where}", file=sys.stderr)
        raise SystemExit(SIGTERM_STATUS) from err


def _fused_ok(params: list[torch.Tensor], precision: str | None, gradient_clip: float | None = None) -> bool:
    """Whether Adam/AdamW can take its fused single-kernel step for ``params``.

    The fused step does the whole update in one pass per tensor (about 10x faster than
    the default on the CPU for the flagship's 1M decoder weights; the same update up to
    rounding). It needs torch >= 2.4 on the CPU, floating-point parameters on one kind of
    device (CPU or CUDA), and is left out under ``16-mixed`` with gradient clipping (the
    gradients are still scaled where Lightning clips, and the fused step unscales them
    itself); under ``bf16-mixed`` (no scaler) the module's ``configure_gradient_clipping``
    clips them directly.
    """
    if not params or (str(precision) == "16-mixed" and gradient_clip):
        return False
    major, minor = (int(v) for v in torch.__version__.split(".")[:2])
    kinds = {p.device.type for p in params}
    if len(kinds) != 1 or not all(p.is_floating_point() for p in params):
        return False
    kind = kinds.pop()
    return kind == "cuda" or (kind == "cpu" and (major, minor) >= (2, 4))


def global_rank() -> int:
    """This process's rank in a (possibly not yet started) distributed run; 0 otherwise."""
    for var in ("RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if var in os.environ:
            return int(os.environ[var])
    local = int(os.environ.get("LOCAL_RANK", 0))
    node = int(os.environ.get("NODE_RANK", os.environ.get("GROUP_RANK", 0)))
    return node * int(os.environ.get("LOCAL_WORLD_SIZE", 1)) + local if node else local


def native_bf16(accelerator: str = "auto") -> bool:
    """Whether ``accelerator`` computes in bfloat16 natively.

    A CUDA GPU that supports bfloat16 (compute capability 8.0 and newer), or a CPU with
    AVX512-BF16 or AMX instructions (oneDNN's bfloat16 kernels). Elsewhere bfloat16 is emulated
    and slower than float32.

    Parameters
    ----------
    accelerator : str
        ``"cpu"``, ``"gpu"``/``"cuda"`` or ``"auto"`` (the GPU when one is visible), as in the
        training config's ``trainer.accelerator``.

    Returns
    -------
    bool
    """
    if _accelerator_is_cpu(accelerator):
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()) and bool(
                torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
        except (AttributeError, RuntimeError):  # private probes of this torch build; absent means not known to be native
            return False
    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False))


def resolve_precision(precision: str, accelerator: str = "auto") -> str:
    """The Lightning precision a training config's ``optimizer.precision`` means on ``accelerator``.

    ``"auto"`` is ``"bf16-mixed"`` where :func:`native_bf16` holds and ``"32"`` elsewhere; any
    other value is returned unchanged.
    """
    if precision != "auto":
        return precision
    return "bf16-mixed" if native_bf16(accelerator) else "32"


def _accelerator_is_cpu(acc: str) -> bool:
    if acc == "cpu":
        return True
    if acc == "auto":
        mps = getattr(torch.backends, "mps", None)
        return not torch.cuda.is_available() and not (mps is not None and mps.is_available())
    return False


def _loggers(kind: str | list, out: Path) -> list:
    from pytorch_lightning.loggers import CSVLogger

    kinds = list(kind) if kind != "auto" else ["csv", "tensorboard"]
    loggers = []
    have_tb = _tensorboard_available()
    for k in kinds:
        if k == "csv":
            loggers.append(CSVLogger(save_dir=str(out), name="logs"))
        elif have_tb:
            from pytorch_lightning.loggers import TensorBoardLogger

            loggers.append(TensorBoardLogger(save_dir=str(out), name="tensorboard"))
        elif kind != "auto":
            raise Eeg2fmriInputError("trainer.log: 'tensorboard' needs the tensorboard package, found none; `pip install tensorboard` or log: [csv].")
    return loggers


def _tensorboard_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None or importlib.util.find_spec("tensorboardX") is not None


#: PyTorch's deterministic mode (``trainer.deterministic``; on by default on the CPU) also fills every new tensor with
#: NaN (``torch.empty`` included), in case an op reads memory it did not write. No op of our models does: fits give
#: bit-identical weights either way (tested for every registered torch model), and the fills cost 6-25 % of a CPU fit
#: (``benchmarks/results/cpu_fill.txt``; bricman_conv and bricman_fc ~0-2 %). So training turns them off, and restores
#: the user's setting afterwards.
FILL_UNINITIALIZED_MEMORY = False


@contextlib.contextmanager
def _quiet_lightning(verbose: bool) -> Iterator[None]:
    """Lightning's info chatter only with ``verbose``; expected warnings of our layout silenced."""
    names = ("pytorch_lightning", "lightning_fabric", "lightning.pytorch", "lightning.fabric")
    levels = {n: logging.getLogger(n).level for n in names}
    det = torch.are_deterministic_algorithms_enabled()
    det_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    import torch.utils.deterministic as torch_det

    fill = torch_det.fill_uninitialized_memory
    torch_det.fill_uninitialized_memory = FILL_UNINITIALIZED_MEMORY
    if not verbose:
        for n in names:
            logging.getLogger(n).setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            from lightning_fabric.utilities.warnings import PossibleUserWarning

            # hints about worker counts / logging intervals on tiny data are not problems
            warnings.filterwarnings("ignore", category=PossibleUserWarning)
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
            # Lightning 2.6 on torch >= 2.9 uses a deprecated pytree class internally (third party, harmless)
            warnings.filterwarnings("ignore", message=r".*LeafSpec.* is deprecated", category=FutureWarning)
            yield
    finally:
        for n, lv in levels.items():
            logging.getLogger(n).setLevel(lv)
        torch.use_deterministic_algorithms(det, warn_only=det_warn)
        torch_det.fill_uninitialized_memory = fill


def _finite_row(row: dict[str, float], monitor: str) -> bool:
    return all(math.isfinite(row.get(k, 0.0)) for k in ("val_mse", "val_loss", monitor))


def _check_finite(name: str, history: list[dict[str, float]], best_epoch: int | None, monitor: str, lr: float) -> None:
    """Refuse a fit whose validation predictions are not finite: in every epoch, or at the chosen (best) epoch.

    ``val_mse`` sums every validation prediction, so it is finite exactly when they all are. A run
    that diverged after finite epochs (early stopping's ``check_finite`` stops it) keeps its best
    finite epoch and passes.
    """
    if not history:
        return
    fix = (f"check the model's forward for operations that give NaN or inf (a log or square root of a negative number, a division "
           f"by zero, an overflow) or lower the learning rate (optimizer.lr, now {lr:g})")

    def vals(r: dict[str, float]) -> str:
        return ", ".join(f"{k} {r[k]:.4g}" for k in dict.fromkeys(("val_mse", "val_loss", monitor)) if k in r)

    if not any(_finite_row(r, monitor) for r in history):
        first, last = history[0], history[-1]
        epochs = f"epoch {last['epoch']}" if len(history) == 1 else f"epochs {first['epoch']}-{last['epoch']}; epoch {last['epoch']}"
        raise Eeg2fmriInputError(f"model {name!r}: expected finite predictions on the validation windows, got NaN/inf in every epoch "
                                 f"({epochs}: {vals(last)}); {fix}.")
    chosen = next((r for r in history if r["epoch"] == best_epoch), None)
    if chosen is not None and not _finite_row(chosen, monitor):
        raise Eeg2fmriInputError(f"model {name!r}: expected finite predictions on the validation windows from the chosen checkpoint "
                                 f"(epoch {best_epoch}, chosen on {monitor}), got NaN/inf ({vals(chosen)}); {fix}.")


def _remove_checkpoints(ckpt_dir: Path) -> None:
    """Remove the checkpoint files a fit wrote (and their folder when that leaves it empty); nothing else."""
    for nm in (LAST, BEST):
        with contextlib.suppress(FileNotFoundError):
            (ckpt_dir / nm).unlink()
    with contextlib.suppress(OSError):
        ckpt_dir.rmdir()  # only when empty


def _load_state(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def _strip(state: dict[str, torch.Tensor], prefix: str = "model.") -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


# ----------------------------------------------------------------------------- entry point
def merged_train_val(ds: PreparedDataset, split: Split, targets: dict | None = None, window_dataset: Callable | None = None) -> Dataset:
    """One window dataset of ``split``'s training and validation selections together (volumes of a run in order), with
    their targets as :func:`split_targets` gives them for the split (the test selection is not read)."""
    if window_dataset is None:
        from eeg2fmri.datasets import WindowDataset as window_dataset
    if targets is None:
        targets = split_targets(ds, replace(split, selections={"train": split.selections["train"], "val": split.selections["val"], "test": {}}))
    sel: dict[int, np.ndarray] = {}
    tgt: dict[int, np.ndarray] = {}
    for i in sorted(set(split.selections["train"]) | set(split.selections["val"])):
        parts = [(np.asarray(split.selections[nm][i]), np.asarray(targets[nm][i])) for nm in ("train", "val") if i in split.selections[nm]]
        vols = np.concatenate([v for v, _ in parts])
        order = np.argsort(vols, kind="stable")
        sel[i], tgt[i] = vols[order], np.concatenate([t for _, t in parts])[order]
    return window_dataset(ds, selection=sel, n_frames=split.n_frames, lag=split.lag, targets=tgt)


def _check_refit_nodes(nodes: int) -> None:
    """``optimizer.refit`` runs on one node: every rank reads the refit's epoch count from the best checkpoint, which the
    ranks of other nodes may not see (they would skip the refit while the others wait for them)."""
    if nodes > 1:
        raise Eeg2fmriInputError("optimizer.refit: expected a single-node run (the refit's epoch count is read from the best "
                                 f"checkpoint, which other nodes may not see), got trainer.num_nodes={nodes}; drop refit or train on one node.")


def _refit(model: torch.nn.Module, ds: PreparedDataset, split: Split, targets: dict | None, window_dataset: Callable | None, name: str,
           hparams: dict, seed: int, loss: WeightedLoss, opt: dict, tcfg: dict, precision: str, strategy: str, deterministic: Any,
           best_epoch: int | None, progress_bar: bool, verbose: bool, loader_threads: int = 0) -> dict[str, Any]:
    """Train optimizer ``refit``: a fresh model of the same seed on the training and validation windows for the epochs
    early stopping chose (``best_epoch + 1``, no validation, the same optimizer and learning-rate schedule), whose
    parameters and buffers (batch-norm statistics) then replace ``model``'s -- except what the model lists in
    ``after_fit_state``, which its ``after_fit`` chose on the validation windows with the first network (``eeg2fmri_net``:
    output gain, blend weight, linear path, rank, per-output gain) and is kept. Skipped, with the reason, when the model
    says the network is not used (``network_used()`` false) or no epoch was chosen. Returns the ``info["refit"]`` record."""
    if best_epoch is None:
        return {"skipped": "no best epoch was recorded (no validation score)"}
    if hasattr(model, "network_used") and not model.network_used():
        return {"skipped": "the network is not used by the fitted model (e.g. eeg2fmri_net kept its linear path alone)"}
    t0 = time.perf_counter()
    merged = merged_train_val(ds, split, targets, window_dataset)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = build_model(name, merged.spec, **hparams)  # sized from the full windows, as the first fit's model
    n_feat = getattr(model, "training_features", None)
    if n_feat is not None and hasattr(merged, "with_features"):  # then trained on the block it reads, as the first fit
        merged = merged.with_features(n_feat)
    pl.seed_everything(seed, workers=True, verbose=False)
    n_epochs = int(best_epoch) + 1
    lit = LitModel(fresh, loss, opt, seed, name, output_shape=merged.spec.output_shape)
    dm = WindowDataModule(merged, merged, batch_size=opt["batch_size"], num_workers=tcfg["num_workers"], seed=seed, loader_threads=loader_threads)
    n_batches = max(1, len(merged) // opt["batch_size"])
    with _quiet_lightning(verbose):
        trainer = pl.Trainer(
            accelerator=tcfg["accelerator"], devices=tcfg["devices"], num_nodes=tcfg["num_nodes"], strategy=strategy, precision=precision,
            max_epochs=n_epochs, gradient_clip_val=opt["gradient_clip"], gradient_clip_algorithm="norm",
            accumulate_grad_batches=opt["accumulate_grad_batches"], deterministic=deterministic, callbacks=[], logger=False,
            enable_progress_bar=progress_bar, enable_model_summary=False, log_every_n_steps=min(50, n_batches), limit_val_batches=0,
            num_sanity_val_steps=0, use_distributed_sampler=False, benchmark=False if deterministic else None, enable_checkpointing=False,
        )
        _fit_or_exit(trainer, lit, dm)
    fresh = fresh.cpu()
    state = fresh.state_dict()
    keep = set(getattr(model, "after_fit_state", ()))  # what after_fit chose on the validation windows stays
    own = model.state_dict(keep_vars=True)
    with torch.no_grad():
        for nm, t in state.items():  # parameters and the network's own buffers (batch-norm statistics, ...) of the new fit
            if nm.split(".")[0] not in keep and nm in own:
                own[nm].copy_(t)
    return {"epochs": n_epochs, "n_windows": len(merged), "seconds": time.perf_counter() - t0}


@preserve_global_rng()
def fit_torch(
    ds: PreparedDataset,
    split: Split,
    name: str,
    hparams: dict | None = None,
    targets: dict | None = None,
    *,
    train_config: dict | None = None,
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
    progress_bar: bool | None = None,
    verbose: bool = False,
    callbacks: Sequence[pl.Callback] = (),
    window_dataset: Callable | None = None,
):
    """Train registered torch model ``name`` with Lightning; return the best (validation) weights.

    Parameters
    ----------
    ds : PreparedDataset
    split : Split
        Only ``selections["train"]`` and ``selections["val"]`` are read.
    name : str
        Registered torch model.
    hparams : dict | None
        Model hyperparameters.
    targets : dict | None
        From :func:`~eeg2fmri.datasets.targets.split_targets`; computed for
        the training and validation spans when ``None``.
    train_config : dict | None
        A training config (see :mod:`eeg2fmri.training.config`); its
        ``seed``, ``optimizer``, ``loss`` and ``trainer`` sections are used
        (``data``/``split``/``model`` are the caller's business). Keys it leaves
        out take the model's ``recommended_train_config`` (optimizer key by key;
        its loss where no ``loss`` section is given), then the generic defaults,
        as ``eeg2fmri train`` resolves a config file.
    out_dir : path-like | None
        Folder for ``checkpoints/{last,best}.ckpt`` and ``logs/``; ``None``
        uses a temporary folder that is removed afterwards.
    resume : bool
        Continue from ``out_dir/checkpoints/last.ckpt``.
    progress_bar : bool | None
        Lightning's progress bar (``None``: ``trainer.progress_bar`` of the config).
    verbose : bool
        Lightning's info messages and model summary.
    callbacks : sequence of pytorch_lightning.Callback
        Extra callbacks (e.g. Optuna pruning).
    window_dataset : callable | None
        Class/factory with the signature of :class:`eeg2fmri.datasets.WindowDataset`
        (default: that class).

    Raises
    ------
    Eeg2fmriInputError
        Besides configuration errors: the model does not read the dataset's representation (its
        ``input_kinds``), has no trainable parameters, returns predictions of another shape than
        ``(batch, n_outputs)`` / ``(batch, *output_shape)`` (checked on the first training and the first
        validation batch), or non-finite validation predictions in every epoch or at the chosen
        epoch (the checkpoints such a fresh fit wrote are removed: there is nothing to resume).

    The caller's global random state (``random``, ``numpy.random``, torch's generators and Lightning's
    ``PL_GLOBAL_SEED``/``PL_SEED_WORKERS``) is the same after the fit as before it: the fit seeds
    them from ``seed`` for itself.

    Returns
    -------
    FitResult
        ``model`` is a :class:`TorchPredictor` holding the best checkpoint's
        weights (on the CPU); ``info`` has ``best_epoch``, ``best_score``,
        ``monitor``, ``epochs``, ``stopped_early``, ``history`` (one row per
        epoch: ``train_loss``, ``val_loss``, ``val_mse``, ``val_r``, ...),
        ``n_train``, ``n_val``, ``rank``, with ``resume`` ``seconds_before_resume`` (the
        interrupted run's training seconds, counted in ``fit_seconds`` too), ``after_fit_seconds`` (the model's post-training
        step, also counted in ``fit_seconds``), what the model's ``after_fit`` returns (``eeg2fmri_net``:
        ``output_gain``) and, with ``out_dir``, the checkpoint paths.
    """
    # the model's recommended_train_config under the keys given, as `eeg2fmri train` and `benchmark` resolve it (user test 16:
    # fit_model(..., train_config=None or {"seed": 0}) trained every model with the generic settings, beira to ROI r 0.29
    # instead of 0.51, and said nothing)
    cfg = resolve_config({**{k: v for k, v in (train_config or {}).items() if k not in ("data", "split", "model")}, "model": {"name": name}},
                         require_model=False)
    hparams = dict(hparams or {})
    opt, tcfg = cfg["optimizer"], cfg["trainer"]
    progress_bar = tcfg["progress_bar"] if progress_bar is None else bool(progress_bar)
    seed = cfg["seed"]
    check_input_kind(name, getattr(ds, "representation", None))
    pl.seed_everything(seed, workers=True, verbose=False)
    if targets is None and opt.get("refit"):  # computed once for the fit and the refit (a second pass over the BOLD otherwise)
        targets = split_targets(ds, replace(split, selections={"train": split.selections["train"], "val": split.selections["val"], "test": {}}))
    train_ds, val_ds = train_val_datasets(ds, split, targets, window_dataset)
    spec = train_ds.spec
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(name, spec, **hparams)
    if getattr(model, "kind", "torch") != "torch":
        raise Eeg2fmriInputError(f"model {name!r} is fitted in closed form; use eeg2fmri.training.fit_model.")
    if not any(p.requires_grad for p in model.parameters()):
        raise Eeg2fmriInputError(
            f"model {name!r} has no trainable parameters: expected at least one torch.nn.Parameter with requires_grad for the optimizer, "
            "got none; create its weights in __init__ (submodules such as nn.Linear, or nn.Parameter), or make it a closed-form model "
            '(kind = "sklearn" with fit/predict).'
        )
    ds_mask = np.asarray(ds.mask, dtype=bool)
    on_mask = (len(spec.output_shape) == 1 and spec.n_outputs == int(ds_mask.sum())) or tuple(spec.output_shape) == ds_mask.shape
    mask = ds_mask if on_mask else None  # vectors of masked voxels, or volumes on the dataset's grid
    loss = WeightedLoss(cfg["loss"], mask=mask)
    if loss.needs_terms and not hasattr(model, "training_terms"):
        raise Eeg2fmriInputError(f"loss: {loss.needs_terms} need a model with training_terms(); {name!r} has none; set those weights to 0.")
    precision = resolve_precision(opt["precision"], tcfg["accelerator"])
    if opt["precision"] == "auto":
        logger.info("optimizer.precision auto: training %s in %s", name, precision)
    if precision == "16-mixed" and _accelerator_is_cpu(tcfg["accelerator"]):
        raise Eeg2fmriInputError('optimizer.precision: expected "32" or "bf16-mixed" on the CPU, found "16-mixed"; float16 mixed precision needs a GPU.')
    devices, nodes = tcfg["devices"], tcfg["num_nodes"]
    if opt.get("refit"):
        _check_refit_nodes(nodes)
    n_devices = len(devices) if isinstance(devices, list) else devices
    strategy = tcfg["strategy"]
    if strategy == "auto" and (nodes > 1 or (n_devices != "auto" and n_devices > 1)):
        strategy = "ddp"
    deterministic = tcfg["deterministic"]
    if deterministic == "auto":
        deterministic = _accelerator_is_cpu(tcfg["accelerator"])

    tmp = None
    if out_dir is None:
        if resume:
            raise Eeg2fmriInputError("resume=True needs out_dir (the folder holding checkpoints/last.ckpt).")
        tmp = tempfile.mkdtemp(prefix="eeg2fmri-train-")
        out = Path(tmp)
    else:
        out = Path(out_dir).absolute()
    ckpt_dir = out / CHECKPOINTS
    last = ckpt_dir / LAST
    if resume and not last.exists():
        raise Eeg2fmriInputError(f"{out}: expected {CHECKPOINTS}/{LAST} to resume from, found none; start without --resume.")
    if not resume and last.exists() and global_rank() == 0:  # other ranks of a launcher-less (srun/torchrun) start may see rank 0's files
        raise Eeg2fmriInputError(f"{out}: holds checkpoints of an earlier run; resume it (--resume) or choose a new output folder (or --overwrite).")

    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

    monitor, mode = opt["monitor"], MONITORS[opt["monitor"]]
    # a fit with no output folder and one process keeps its best weights in memory: nothing reads its
    # checkpoint files, and writing them (weights + optimizer state, up to twice an epoch) was a
    # large share of the flagship's CPU fit time (benchmarks/bench_flagship_fit.py)
    in_memory = tmp is not None and nodes == 1 and (n_devices == 1 or (isinstance(devices, list) and len(devices) == 1))
    if in_memory:
        ckpt: Any = _BestInMemory(monitor, mode)
    else:
        ckpt = ModelCheckpoint(dirpath=str(ckpt_dir), filename=BEST[: -len(".ckpt")], monitor=monitor, mode=mode, save_top_k=1, save_last=True,
                               auto_insert_metric_name=False, enable_version_counter=False)
    cbs: list[pl.Callback] = [ckpt]
    early = None
    if opt["patience"] is not None:
        early = EarlyStopping(monitor=monitor, mode=mode, patience=opt["patience"], min_delta=opt["min_delta"], check_finite=True)
        cbs.append(early)
    floor = None
    if opt.get("floor") is not None:
        floor = _FloorStop(monitor, mode, *opt["floor"])
        cbs.append(floor)
    cbs += list(callbacks)
    world_guess = nodes * (n_devices if n_devices != "auto" else 1)
    n_batches = max(1, len(train_ds) // max(1, world_guess) // opt["batch_size"])
    lit = LitModel(model, loss, {**opt, "precision": precision}, seed, name, output_shape=spec.output_shape)
    threads = tcfg["loader_threads"]
    if threads == "auto":  # threads beat worker processes for whole-batch copies (benchmarks/bench_dataloader.py)
        threads = 4 if tcfg["num_workers"] == 0 and torch.cuda.is_available() and not _accelerator_is_cpu(tcfg["accelerator"]) else 0
    # a model whose training steps read a leading block of the feature axis gets batches of that block only
    # (eeg2fmri_net on tangent windows: 1 / (n_chans + 1) of the copies); after_fit still sees full windows
    n_feat = getattr(model, "training_features", None)
    fit_train, fit_val = train_ds, val_ds
    if n_feat is not None and hasattr(train_ds, "with_features") and hasattr(val_ds, "with_features"):
        fit_train, fit_val = train_ds.with_features(n_feat), val_ds.with_features(n_feat)
    dm = WindowDataModule(fit_train, fit_val, batch_size=opt["batch_size"], num_workers=tcfg["num_workers"], seed=seed,
                          loader_threads=threads)
    t0 = lit.started_at = time.perf_counter()
    try:
        with _quiet_lightning(verbose):
            trainer = pl.Trainer(
                accelerator=tcfg["accelerator"], devices=devices, num_nodes=nodes, strategy=strategy, precision=precision,
                max_epochs=opt["max_epochs"], gradient_clip_val=opt["gradient_clip"], gradient_clip_algorithm="norm",
                accumulate_grad_batches=opt["accumulate_grad_batches"], deterministic=deterministic, callbacks=cbs,
                logger=_loggers(tcfg["log"], out) or False, enable_progress_bar=progress_bar, enable_model_summary=verbose,
                log_every_n_steps=min(50, n_batches), num_sanity_val_steps=1, default_root_dir=str(out), use_distributed_sampler=False,
                benchmark=False if deterministic else None, enable_checkpointing=not in_memory,
            )
            _fit_or_exit(trainer, lit, dm, out=None if in_memory else out, ckpt_path=str(last) if resume else None, weights_only=True)
        dt = time.perf_counter() - t0 + lit.seconds_before  # a resumed fit counts the interrupted run's training time too
        rank = trainer.global_rank
        best_path = Path(ckpt.best_model_path) if not in_memory and ckpt.best_model_path else last
        info: dict[str, Any] = {"n_train": len(train_ds), "n_val": len(val_ds), "monitor": monitor, "epochs": int(trainer.current_epoch),
                                "stopped_early": bool(early is not None and early.stopped_epoch > 0), "history": list(lit.history), "rank": int(rank),
                                "world_size": int(trainer.world_size), "precision": precision}
        if resume:
            info["seconds_before_resume"] = lit.seconds_before
        if floor is not None and floor.stopped_epoch is not None:
            info["stopped_at_floor"] = (f"the validation {monitor}'s best in the first {floor.epochs} epoch(s), {floor.best if floor.best is not None else math.nan:.4g}, "
                                        f"did not reach optimizer.floor {floor.value:g}")
            info["stopped_early"] = True
            logger.info("%s: stopped after epoch %d: %s", name, floor.stopped_epoch, info["stopped_at_floor"])
        model = model.cpu()
        if in_memory:
            if ckpt.state is not None:  # otherwise the last weights, as with a checkpoint folder
                model.load_state_dict(ckpt.state)
                info["best_epoch"] = ckpt.best_epoch
            info["best_score"] = ckpt.best_score
        elif trainer.is_global_zero or best_path.exists():
            state = _load_state(best_path)
            model.load_state_dict(_strip(state["state_dict"]))
            info["best_epoch"] = int(state["epoch"])
            score = ckpt.best_model_score
            info["best_score"] = None if score is None else float(score)
        best, n_ep = info.get("best_epoch"), info["epochs"]
        # the epoch limit stopped it while the validation score still improved: an under-trained model (warned below, once the
        # model's post-training step has said whether the network is used at all)
        info["at_epoch_limit"] = bool(not info["stopped_early"] and best is not None and n_ep >= opt["max_epochs"]
                                      and best >= n_ep - max(2, n_ep // 20))
        try:
            _check_finite(name, info["history"], info.get("best_epoch"), monitor, opt["lr"])
        except Eeg2fmriInputError:
            if tmp is None and not resume and trainer.is_global_zero:
                _remove_checkpoints(ckpt_dir)  # weights of non-finite outputs: nothing to resume, and a re-run may start over
            raise
        if hasattr(model, "after_fit") and len(val_ds) and hasattr(val_ds, "get_batch"):
            # a model's own post-training step (e.g. eeg2fmri_net's output calibration), on the
            # validation windows only: the test windows never reach this function
            bs, n_val = tcfg["predict_batch_size"], len(val_ds)
            val_batches = (val_ds.get_batch(np.arange(b0, min(b0 + bs, n_val))) for b0 in range(0, n_val, bs))
            kw = {}
            if getattr(model, "after_fit_uses_train", False) and len(train_ds) and hasattr(train_ds, "get_batch"):
                # e.g. eeg2fmri_net's stacked linear path, fitted on the training windows (its weight on the validation ones)
                n_tr = len(train_ds)
                kw["train_batches"] = (train_ds.get_batch(np.arange(b0, min(b0 + bs, n_tr))) for b0 in range(0, n_tr, bs))
            t_after = time.perf_counter()
            info["epoch_seconds"] = round(dt, 3)
            logger.info("%s: %d epoch(s) trained in %.1f s; its post-training steps on the training and validation windows follow", name,
                        info["epochs"], dt)
            # (user test 40: these steps took 113 s on a whole-brain grid with nothing on screen; one step shown while they run)
            for _ in progress([0], desc=f"{name}: post-training steps", enabled=bool(progress_bar) and trainer.is_global_zero):
                info.update(model.after_fit(val_batches, **kw) or {})
            info["after_fit_seconds"] = time.perf_counter() - t_after
            dt += info["after_fit_seconds"]  # part of fitting the model (eeg2fmri_net: its linear path, output gain and rank)
        if hasattr(model, "network_used") and not model.network_used():
            # eeg2fmri_net's blend kept its linear path alone: the network's epochs do not change a prediction (user test 16:
            # "raise max_epochs" for a network then discarded)
            logger.info("%s: the network is not used (linear-path weight %s: %s); its %d epochs (%.1f s) do not change the predictions",
                        name, info.get("ridge_weight"), info.get("ridge_weight_kept_linear", "chosen on the validation windows"), n_ep, dt)
            info["at_epoch_limit"] = False
        if info["at_epoch_limit"] and trainer.is_global_zero:
            logger.warning("%s: the validation %s had its best epoch among the last when training reached optimizer.max_epochs=%d (best epoch %d of "
                           "%d, 0-based): the model may be under-trained; raise optimizer.max_epochs (train config: optimizer: {max_epochs: %d}; "
                           "benchmark: --train-config '{\"optimizer\": {\"max_epochs\": %d}}')", name, monitor, opt["max_epochs"], best, n_ep,
                           2 * opt["max_epochs"], 2 * opt["max_epochs"])
        if opt.get("refit") and len(val_ds):
            kept_here = getattr(model, "val_residuals_", None) is None and hasattr(val_ds, "get_batch")
            if kept_here:
                # held-out residuals for conformal calibration, before the network is trained on these windows too
                from eeg2fmri.models.base import held_out_residuals

                bs, n_val = tcfg["predict_batch_size"], len(val_ds)
                model.val_residuals_, model.val_target_check_ = held_out_residuals(
                    model, (val_ds.get_batch(np.arange(b0, min(b0 + bs, n_val))) for b0 in range(0, n_val, bs)))
            info["refit"] = _refit(model, ds, split, targets, window_dataset, name, hparams, seed, loss, lit.opt, tcfg, precision, strategy,
                                   deterministic, info.get("best_epoch"), progress_bar, verbose, loader_threads=threads)
            if kept_here and not info["refit"].get("epochs"):  # skipped: the model's own validation residuals are held out
                model.val_residuals_ = model.val_target_check_ = None
            dt += info["refit"].get("seconds", 0.0)
        if tmp is None:
            info["checkpoints"] = {"best": str(best_path), "last": str(last)}
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    model.eval()
    logger.info("trained %s for %d epoch(s) in %.1f s%s; best %s %.4g at epoch %s", name, info["epochs"], dt,
                f" ({info['epoch_seconds']:.1f} s of epochs, {info['after_fit_seconds']:.1f} s of post-training steps)" if "after_fit_seconds" in info
                else "", monitor, info.get("best_score") if info.get("best_score") is not None else math.nan, info.get("best_epoch"))
    return FitResult(TorchPredictor(model, spec, hparams, batch_size=tcfg["predict_batch_size"]), spec, name, hparams, dt, info)
