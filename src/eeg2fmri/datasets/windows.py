"""Paired windows: views into the continuous arrays of a prepared dataset.

For volume ``i`` of a run, the EEG window is the ``n_frames`` samples of the
continuous representation ending ``lag`` samples after the end of the
volume's acquisition: ``features[end - n_frames : end]`` with
``end = window_end[i] + lag``. A window is a slice of a
``numpy.lib.stride_tricks.sliding_window_view``: memory does not grow with
the overlap between windows, and memory-mapped arrays stay on disk.

Window layout (the :class:`~eeg2fmri.models.base.DataSpec` conventions):
``(n_chans, n_bands, n_frames)`` for band power, ``(n_chans, n_freqs,
n_frames)`` for STFT, ``(n_chans, n_times)`` for raw EEG.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from eeg2fmri.datasets.prepared import PreparedDataset, PreparedRun
from eeg2fmri.datasets.spec import DataSpec
from eeg2fmri.preprocessing.representations import get_representation
from eeg2fmri.utils.validation import Eeg2fmriInputError, check_positive_int

__all__ = ["ThreadedBatchLoader", "WindowDataset", "run_windows", "valid_volumes", "window_matrix", "dataset_spec"]


def _ends(run: PreparedRun, lag: int) -> np.ndarray:
    return np.asarray(run.window_end, dtype=np.int64) + int(lag)


def valid_volumes(run: PreparedRun, n_frames: int, lag: int = 0) -> np.ndarray:
    """Indices of the volumes whose whole window lies inside the recording."""
    end = _ends(run, lag)
    ok = (end - n_frames >= 0) & (end <= len(run.features))
    return np.where(ok)[0]


def _view(run: PreparedRun, n_frames: int) -> np.ndarray:
    return sliding_window_view(run.features, n_frames, axis=0)  # (n - n_frames + 1, C, [F,] n_frames)


def run_windows(run: PreparedRun, volumes: np.ndarray, n_frames: int, lag: int = 0) -> np.ndarray:
    """Windows for ``volumes``, shape (n_selected, *window_shape).

    A view (no copy) when the selected windows are evenly spaced; fancy
    indexing of an arbitrary selection copies only the selected windows.
    """
    check_positive_int(n_frames, "n_frames")
    volumes = np.asarray(volumes, dtype=int)
    ends = _ends(run, lag)
    if len(volumes) and (volumes.min() < 0 or volumes.max() >= run.n_volumes):
        raise Eeg2fmriInputError(f"{run.key}: volume indices must be in [0, {run.n_volumes}), got {volumes.min()}..{volumes.max()}.")
    starts = ends[volumes] - n_frames
    if len(starts) and (starts.min() < 0 or ends[volumes].max() > len(run.features)):
        bad = volumes[(starts < 0) | (ends[volumes] > len(run.features))]
        raise Eeg2fmriInputError(f"{run.key}: volumes {bad[:5].tolist()} have incomplete EEG windows of {n_frames} frames; select volumes from valid_volumes().")
    view = _view(run, n_frames)
    if len(starts) > 1:
        step = np.diff(starts)
        if np.all(step == step[0]) and step[0] > 0:
            return view[starts[0] : starts[-1] + 1 : int(step[0])]
    return view[starts]


def window_matrix(ds: PreparedDataset, selection: dict[int, np.ndarray], n_frames: int, lag: int = 0) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Stack (copy) the windows and raw targets of selected volumes of several runs.

    Returns
    -------
    x : array, shape (n_samples, *window_shape)
    y : array, shape (n_samples, n_voxels) | None
    run_of : array, shape (n_samples,)
    """
    xs, ys, rs = [], [], []
    for i, vols in selection.items():
        run = ds.runs[i]
        xs.append(run_windows(run, vols, n_frames, lag))
        if run.bold is not None:
            ys.append(np.asarray(run.bold[vols]))
        rs.append(np.full(len(vols), i))
    y = np.concatenate(ys) if len(ys) == len(xs) else None
    return np.concatenate(xs), y, np.concatenate(rs)


def dataset_spec(ds: PreparedDataset, n_frames: int, output_shape: tuple[int, ...] | None = None) -> DataSpec:
    """The :class:`DataSpec` of windows of ``n_frames`` -> masked voxels (or ``output_shape``)."""
    rep = ds.representation
    representation = get_representation(rep)
    n_ch = len(ds.ch_names)
    if not representation.frame_based:
        shape: tuple[int, ...] = representation.input_shape(n_ch, None, n_frames)
    else:
        n_f = len(ds.freqs) if ds.freqs is not None else len(ds.bands)
        shape = representation.input_shape(n_ch, n_f, n_frames)
        shape = (shape[0], shape[1] + len(ds.config.event_names), shape[2])  # event regressors after the EEG features
    return DataSpec(
        input_kind=rep,
        input_shape=shape,
        output_shape=tuple(output_shape) if output_shape is not None else (ds.n_outputs,),
        sfreq=float(ds.sfreq if representation.frame_based else ds.frame_rate),
        tr=float(ds.tr),
        ch_names=tuple(ds.ch_names),
        freqs=None if ds.freqs is None else tuple(float(f) for f in ds.freqs),
        frame_rate=float(ds.frame_rate),
        n_subjects=len(ds.subjects),
        event_names=tuple(ds.config.event_names),
        band_names=tuple(ds.bands) if rep in ("bandpower", "tangent") else (),
        output_kind="regions" if isinstance(getattr(ds, "rois", None), dict) and ds.rois.get("names") is not None else "voxels",
    )


_POOL = None


def _copy_pool():
    """A one-thread executor (per process; recreated after fork in DataLoader workers)."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    global _POOL
    if _POOL is None or _POOL[0] != os.getpid():
        _POOL = (os.getpid(), ThreadPoolExecutor(1))
    return _POOL[1]


class WindowDataset:
    """A torch ``Dataset`` of (EEG window, target, subject index) triples.

    Parameters
    ----------
    ds : PreparedDataset
    selection : dict
        Run index -> volume indices (e.g. ``split.selections["train"]``).
    n_frames : int
        Window length along the representation's time axis.
    lag : int
        Samples between the end of the volume and the end of its window.
    targets : dict | None
        Run index -> array (n_selected_volumes, n_outputs) aligned with
        ``selection`` (e.g. ``split_targets(ds, split)["train"]``); ``None``
        serves the masked BOLD as stored.
    target_transform : callable | None
        Applied to each target vector (e.g. an atlas averaging to ROIs).

    Notes
    -----
    ``__getitem__`` returns ``(x, y, s)``: ``x`` float32 tensor in the
    DataSpec layout (a copy of one window, made from a view), ``y`` float32
    tensor (n_outputs,), ``s`` int64 subject index into ``ds.subjects``.
    Safe with DataLoader workers (arrays are memory-mapped when loaded from disk).
    """

    def __init__(self, ds: PreparedDataset, selection: dict[int, np.ndarray], n_frames: int, lag: int = 0,
                 targets: dict[int, np.ndarray] | None = None, target_transform: Any = None) -> None:
        self.ds = ds
        self.n_frames = check_positive_int(n_frames, "n_frames")
        self.lag = int(lag)
        self.targets = targets
        self.target_transform = target_transform
        runs, vols, rows = [], [], []
        for i, v in selection.items():
            v = np.asarray(v, dtype=np.int64)
            run_windows(ds.runs[i], v, self.n_frames, self.lag)[:0]  # validates the whole selection once
            if targets is not None and len(targets[i]) != len(v):
                raise Eeg2fmriInputError(f"{ds.runs[i].key}: {len(targets[i])} targets for {len(v)} selected volumes; pass targets aligned with the selection.")
            runs.append(np.full(len(v), i))
            vols.append(v)
            rows.append(np.arange(len(v)))
        self._run = np.concatenate(runs) if runs else np.empty(0, np.int64)
        self._vol = np.concatenate(vols) if vols else np.empty(0, np.int64)
        self._row = np.concatenate(rows) if rows else np.empty(0, np.int64)
        self._subj = np.array([ds.subject_index(ds.runs[i].subject) for i in self._run], dtype=np.int64)
        self._views = {i: _view(ds.runs[i], self.n_frames) for i in selection}
        self._ends = {i: _ends(ds.runs[i], self.lag) for i in selection}
        self._n_features: int | None = None  # every entry of the feature axis

    def with_features(self, n_features: int) -> WindowDataset:
        """The same windows, keeping only the first ``n_features`` entries of the feature axis.

        For models whose training steps read only a leading block of each
        frame's features (e.g. ``eeg2fmri_net`` reads the band-power block of
        ``tangent`` windows): batches copy only that block. The continuous
        arrays are shared, nothing is copied here.

        Parameters
        ----------
        n_features : int
            Entries kept on axis 1 of the windows ``(n_chans, n_features, n_frames)``.

        Returns
        -------
        WindowDataset
            A shallow copy; ``spec.input_shape`` is ``(n_chans, n_features, n_frames)``.
        """
        import copy

        feats0 = self.ds.runs[int(self._run[0]) if len(self) else 0].features
        if feats0.ndim != 3:
            raise Eeg2fmriInputError(f"WindowDataset.with_features: expected frame-based windows (n_chans, n_features, n_frames), "
                                     f"got {self.ds.representation!r} features of {feats0.ndim - 1} axes per sample; use it with band-like representations.")
        full = int(feats0.shape[2])
        n = check_positive_int(n_features, "n_features", where="WindowDataset.with_features")
        if n > full:
            raise Eeg2fmriInputError(f"WindowDataset.with_features: expected n_features <= {full} (the windows' feature axis), got {n}.")
        out = copy.copy(self)
        out._n_features = None if n == full else n
        return out

    def __len__(self) -> int:
        return len(self._run)

    @property
    def spec(self) -> DataSpec:
        import dataclasses

        y0 = self._target(0) if len(self) else np.zeros(self.ds.n_outputs)
        spec = dataset_spec(self.ds, self.n_frames, tuple(np.shape(y0)))
        if self._n_features is not None:
            c, _, t = spec.input_shape
            freqs = spec.freqs[: self._n_features] if spec.freqs is not None and len(spec.freqs) > self._n_features else spec.freqs
            events = spec.event_names if self._n_features > spec.n_eeg_features else ()  # (a leading block of EEG features only: no events)
            spec = dataclasses.replace(spec, input_shape=(c, self._n_features, t), freqs=freqs, event_names=events,
                                       band_names=spec.band_names[: self._n_features])
        return spec

    @property
    def subjects(self) -> np.ndarray:
        """Subject index of every sample, shape (n_samples,)."""
        return self._subj

    def _target(self, k: int) -> np.ndarray:
        i, v, row = self._run[k], self._vol[k], self._row[k]
        y = self.targets[i][row] if self.targets is not None else self.ds.runs[i].bold[v]
        return self.target_transform(y) if self.target_transform is not None else y

    def window(self, k: int) -> np.ndarray:
        """Window ``k`` as a read-only view (no copy)."""
        i = self._run[k]
        w = self._views[i][self._ends[i][self._vol[k]] - self.n_frames]
        return w if self._n_features is None else w[:, : self._n_features]

    def get_batch(self, indices, *, pin_memory: bool = False) -> tuple:
        """A whole batch at once (the fast path used by :meth:`loader`).

        Windows are copied as contiguous time-major blocks (a plain memory copy)
        and returned as a permuted view in the DataSpec layout, so ``x`` may be
        non-contiguous; models (or ``x.to(device).contiguous()``) handle that
        on the device, where the transpose is cheap.

        Parameters
        ----------
        indices : sequence of int
            Window indices.
        pin_memory : bool
            Allocate ``x`` and ``y`` in page-locked memory (for fast,
            asynchronous copies to a GPU); needs CUDA.

        Returns
        -------
        x : Tensor, shape (batch, *spec.input_shape), float32
        y : Tensor, shape (batch, *target_shape), float32
        s : Tensor, shape (batch,), int64
            Subject indices.
        """
        return self._fetch(indices, pin_memory=pin_memory, targets_in_thread=True)

    def _fetch(self, indices, *, pin_memory: bool, targets_in_thread: bool) -> tuple:
        import torch

        idx = np.asarray(indices, dtype=np.int64) % max(len(self), 1)
        feats0 = self.ds.runs[int(self._run[0])].features
        cut = self._n_features
        shape = feats0.shape[1:] if cut is None else feats0.shape[1:-1] + (cut,)
        block_t = torch.empty((len(idx), self.n_frames) + shape, dtype=torch.float32, pin_memory=pin_memory)
        block = block_t.numpy()
        runs = self._run[idx]

        def targets() -> torch.Tensor:
            if self.targets is None and self.target_transform is None:
                y_t = torch.empty((len(idx),) + np.shape(self._target(0)), dtype=torch.float32, pin_memory=pin_memory)
                y = y_t.numpy()
                vols = self._vol[idx]
                # one row copy per window: 2.5x faster than fancy indexing of the memory map, which
                # gathers into a temporary array first (benchmarks/results/loader_rows.txt)
                for j in range(len(idx)):
                    y[j] = self.ds.runs[runs[j]].bold[vols[j]]
                return y_t
            y_t = torch.from_numpy(np.stack([np.asarray(self._target(int(k)), dtype=np.float32) for k in idx]))
            return y_t.pin_memory() if pin_memory else y_t

        # targets are gathered in a second thread while this one copies the windows (both are
        # memory copies that release the GIL); loader threads gather them themselves
        fut = _copy_pool().submit(targets) if targets_in_thread else None
        for j, k in enumerate(idx):
            i = runs[j]
            e = self._ends[i][self._vol[k]]
            block[j] = self.ds.runs[i].features[e - self.n_frames : e] if cut is None else self.ds.runs[i].features[e - self.n_frames : e, :, :cut]
        y = fut.result() if fut is not None else targets()
        x = block_t.permute(0, *range(2, block_t.ndim), 1)  # (B, T, C[, F]) -> (B, C[, F], T)
        return x, y, torch.from_numpy(self._subj[idx].copy())

    @staticmethod
    def collate(batch):
        """Identity collate: batches from :meth:`get_batch` are already stacked."""
        return batch

    def loader(self, batch_size: int = 32, *, shuffle: bool = False, num_workers: int = 0, num_threads: int = 0, seed: int = 0,
               drop_last: bool = False, **kwargs):
        """A loader that fetches whole batches at once (fast path), with seeded shuffling.

        Each item of the loader is ``(x, y, s)`` with a leading batch axis.
        (A plain ``DataLoader(dataset, batch_size=...)`` works too, one window
        at a time.)

        Parameters
        ----------
        batch_size : int
        shuffle : bool
            A new seeded permutation every pass.
        num_workers : int
            DataLoader worker processes (0: batches are read in this process).
        num_threads : int
            If > 0, a :class:`ThreadedBatchLoader` with this many threads instead
            of a DataLoader (usually much faster than worker processes, see
            ``benchmarks/bench_dataloader.py``); ``pin_memory=True`` puts its
            batches in page-locked memory.
        seed : int
        drop_last : bool
        **kwargs
            More DataLoader arguments (``pin_memory`` only, with threads).
        """
        import torch

        gen = torch.Generator().manual_seed(int(seed))
        base = torch.utils.data.RandomSampler(self, generator=gen) if shuffle else torch.utils.data.SequentialSampler(self)
        batches = torch.utils.data.BatchSampler(base, batch_size=batch_size, drop_last=drop_last)
        if num_threads:
            extra = set(kwargs) - {"pin_memory"}
            if num_workers or extra:
                raise Eeg2fmriInputError(
                    f"WindowDataset.loader: num_threads={num_threads} replaces the DataLoader, so it takes no "
                    f"{'num_workers' if num_workers else ''}{' or ' if num_workers and extra else ''}{', '.join(sorted(extra))}; "
                    "pass either num_threads or DataLoader options.")
            return ThreadedBatchLoader(self, batches, num_threads=num_threads, pin_memory=bool(kwargs.get("pin_memory", False)))
        return torch.utils.data.DataLoader(self, sampler=batches, batch_size=None, num_workers=num_workers, collate_fn=self.collate,
                                           persistent_workers=num_workers > 0, **kwargs)

    def __getitem__(self, k):
        import torch

        if not np.isscalar(k):
            return self.get_batch(k)
        if not -len(self) <= k < len(self):
            raise IndexError(k)
        k = k % len(self)
        x = torch.from_numpy(np.array(self.window(k), dtype=np.float32))
        y = torch.from_numpy(np.asarray(self._target(k), dtype=np.float32).copy())
        return x, y, torch.tensor(self._subj[k])


class ThreadedBatchLoader:
    """Batches of a :class:`WindowDataset` fetched by threads of this process.

    An alternative to DataLoader worker processes: the batch copies (plain
    memory copies from memory-mapped arrays, which release the GIL) run in
    ``num_threads`` threads, optionally straight into page-locked memory, so a
    batch is written once and never passed between processes (worker
    processes write it into shared memory, then the main process copies it
    again into page-locked memory).

    Parameters
    ----------
    dataset : WindowDataset
    batch_sampler : iterable of sequences of int
        Yields the window indices of each batch (e.g. a
        ``torch.utils.data.BatchSampler``); its ``sampler.set_epoch`` is what
        Lightning calls every epoch.
    num_threads : int
        Threads fetching batches.
    prefetch : int | None
        Batches fetched ahead (default ``2 * num_threads``).
    pin_memory : bool
        Allocate batches in page-locked memory (needs CUDA).

    Notes
    -----
    Batches come in the order of ``batch_sampler`` whatever the number of
    threads, so training is as reproducible as with a plain loader.
    """

    def __init__(self, dataset: WindowDataset, batch_sampler, *, num_threads: int = 4, prefetch: int | None = None,
                 pin_memory: bool = False) -> None:
        if not hasattr(dataset, "_fetch"):
            raise Eeg2fmriInputError(f"ThreadedBatchLoader: expected a WindowDataset, got {type(dataset).__name__}; "
                                     "use a torch DataLoader for other datasets.")
        self.dataset = dataset
        self.batch_sampler = batch_sampler
        self.num_threads = check_positive_int(num_threads, "num_threads", where="ThreadedBatchLoader")
        self.prefetch = 2 * self.num_threads if prefetch is None else check_positive_int(prefetch, "prefetch", where="ThreadedBatchLoader")
        self.pin_memory = bool(pin_memory)
        if self.pin_memory:
            import torch

            if not torch.cuda.is_available():
                raise Eeg2fmriInputError("ThreadedBatchLoader: pin_memory=True needs CUDA (page-locked memory is for copies to a GPU), "
                                         "found no CUDA device; pass pin_memory=False.")

    @property
    def sampler(self):
        """The batch sampler's index sampler (Lightning sets its epoch through this)."""
        return getattr(self.batch_sampler, "sampler", None)

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def _fetch(self, indices) -> tuple:
        return self.dataset._fetch(indices, pin_memory=self.pin_memory, targets_in_thread=False)

    def __iter__(self):
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        batches = iter(self.batch_sampler)
        pool = ThreadPoolExecutor(self.num_threads, thread_name_prefix="eeg2fmri-loader")
        pending: deque = deque()
        try:
            for indices in batches:
                pending.append(pool.submit(self._fetch, list(indices)))
                if len(pending) >= self.prefetch:
                    break
            while pending:
                batch = pending.popleft().result()
                nxt = next(batches, None)
                if nxt is not None:
                    pending.append(pool.submit(self._fetch, list(nxt)))
                yield batch
        finally:
            for fut in pending:
                fut.cancel()
            pool.shutdown(wait=True)
