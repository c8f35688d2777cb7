"""Write a 4D NIfTI volume by volume, in bounded memory, atomically.

:class:`StreamingNifti` lays out a single-file NIfTI-1 (header, then
float32 data in Fortran order, so that every volume is one contiguous block)
and writes it in one of two ways:

* random access (default): a memory-mapped temporary ``.nii``, filled one
  block of volumes at a time in any order, and on :meth:`StreamingNifti.finish`
  renamed into place (``.nii``) or gzip-compressed into a temporary
  ``.nii.gz`` (level 1, members compressed in parallel threads) that is then
  renamed into place;
* ``sequential=True`` (what synthesis uses): volumes arrive in order and are
  appended to a temporary file next to the output with plain writes
  (``.nii``), or compressed as they arrive into a temporary ``.nii.gz``
  (gzip level 1, members of about 4 MB); a pool of threads lays the volumes
  out (and compresses them) while the caller computes the next volumes; no
  uncompressed intermediate file is written or read back. :meth:`StreamingNifti.finish` then only waits for the
  last members and renames.

Both produce the same bytes once decompressed (a ``.nii.gz`` of several
gzip members is one valid gzip stream for gzip, zlib and nibabel). Until
:meth:`StreamingNifti.finish` nothing exists at the output path, and
:meth:`StreamingNifti.abort` (or an exception inside the ``with`` block)
removes the temporary file.

Trade-off of the output name: ``.nii.gz`` (gzip level 1) is about 3.5x
smaller than ``.nii`` for synthesised series (zeros outside the mask, float32
noise-like values inside) and costs about one core-second per 150 MB of
uncompressed data, spread over the compression threads; ``.nii`` costs only
the disk write.
"""

from __future__ import annotations

import gzip
import os
import tempfile
from pathlib import Path

import numpy as np

from eeg2fmri.io.bold import set_qform_if_exact
from eeg2fmri.utils.atomic import _user_mode, remove_stale_temporaries, temp_prefix
from eeg2fmri.utils.parallel import n_cores
from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["StreamingNifti", "nifti_header"]

_VOX_OFFSET = 352  # 348-byte NIfTI-1 header + 4-byte extension flag
_COPY_CHUNK = 1 << 24
# Bytes per gzip member of the sequential writer, and its most compression threads.
_MEMBER_BYTES = 1 << 22
_MAX_GZIP_THREADS = 16


def nifti_header(shape: tuple[int, int, int, int], affine: np.ndarray, zooms: tuple[float, float, float], tr: float, *,
                 template=None, toffset: float = 0.0):
    """NIfTI-1 header of a float32 4D series on a grid.

    Parameters
    ----------
    shape : (X, Y, Z, T)
    affine : array, shape (4, 4)
        Voxel-to-world affine of the grid (written as qform and sform).
    zooms : (float, float, float)
        Voxel sizes in mm.
    tr : float
        Volume spacing in seconds (``pixdim[4]``, time unit seconds).
    template : nibabel header | None
        Header of the grid (e.g. the model's ``mask.nii.gz``) whose
        qform/sform codes are kept (``aligned`` when it has none).
    toffset : float
        Time of the first volume in seconds (``toffset``; synthesis: its onset
        after the first EEG sample).

    Returns
    -------
    header : nibabel.Nifti1Header
    """
    import nibabel as nib

    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(np.float32)
    hdr.set_data_shape(tuple(int(s) for s in shape))
    code = 2
    if template is not None:
        s_code = int(template.get_sform(coded=True)[1] or 0)
        q_code = int(template.get_qform(coded=True)[1] or 0)
        code = s_code or q_code or 2
    set_qform_if_exact(hdr, affine, code)  # (left unset for a sheared affine, which a qform cannot hold)
    hdr.set_sform(np.asarray(affine, dtype=np.float64), code=code)
    hdr.set_zooms(tuple(float(z) for z in zooms) + (float(tr),))
    hdr.set_xyzt_units("mm", "sec")
    hdr["toffset"] = float(toffset)
    hdr["vox_offset"] = _VOX_OFFSET
    return hdr


def _gzip_member(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=1, mtime=0)


def _masked_member(values: np.ndarray, fidx: np.ndarray, n_vox: int, compress: bool):
    """Volumes given as in-mask values ``(n, n_in_mask)``, laid out (zeros elsewhere), gzip-compressed when ``compress``."""
    rows = np.zeros((len(values), n_vox), dtype="<f4")
    rows[:, fidx] = values
    return _gzip_member(rows) if compress else rows


def _gzip_file(src: Path, dst: Path, chunk: int = _COPY_CHUNK, workers: int | None = None) -> None:
    """Gzip ``src`` into ``dst`` as independent members compressed in parallel threads.

    A file of several gzip members is a valid gzip file (RFC 1952): gzip,
    zlib's ``gzread``, Python and nibabel read it as one stream. zlib releases
    the GIL, so the members compress on all cores; at most ``2 * workers``
    chunks are in memory at once.
    """
    from concurrent.futures import ThreadPoolExecutor

    workers = workers or max(1, min(4, os.cpu_count() or 1))
    with open(src, "rb") as fi, open(dst, "wb") as fo, ThreadPoolExecutor(max_workers=workers) as ex:
        pending = []
        while True:
            data = fi.read(chunk)
            if data:
                pending.append(ex.submit(_gzip_member, data))
            if pending and (len(pending) >= 2 * workers or not data):
                fo.write(pending.pop(0).result())
            if not data and not pending:
                break


class StreamingNifti:
    """A float32 4D NIfTI written block by block through a memory-mapped temporary file.

    Parameters
    ----------
    out : path-like
        Final ``.nii`` or ``.nii.gz`` path (must not exist unless ``overwrite``).
    header : nibabel.Nifti1Header
        From :func:`nifti_header`; its shape fixes the data size.
    overwrite : bool
        Replace an existing ``out`` at :meth:`finish`.
    tmp_dir : path-like | None
        Folder of the uncompressed temporary file (default: next to ``out``;
        not used with ``sequential``, whose temporary file is next to ``out``).
    sequential : bool
        Volumes are written in order, each once (:meth:`write` raises
        otherwise): they are appended (``.nii``) or compressed in background
        threads (``.nii.gz``) as they arrive, without a memory-mapped
        intermediate file; :meth:`finish` requires every volume.
    threads : int | None
        Threads of the sequential writer (default: the cores this process may
        use, at most 16); at most ``threads + 2`` blocks of about 4 MB are in
        flight.

    Notes
    -----
    Use as a context manager: leaving the block with an exception removes
    every temporary file and leaves ``out`` untouched.
    """

    def __init__(self, out: str | os.PathLike, header, *, overwrite: bool = False, tmp_dir: str | os.PathLike | None = None,
                 sequential: bool = False, threads: int | None = None) -> None:
        self.out = Path(out).absolute()
        if not (self.out.name.endswith(".nii") or self.out.name.endswith(".nii.gz")):
            raise Eeg2fmriInputError(f"{self.out}: expected an output name ending in .nii.gz or .nii.")
        if self.out.exists() and not overwrite:
            raise Eeg2fmriInputError(f"{self.out}: output file already exists; choose another path or pass overwrite=True (--overwrite on the command line).")
        self.overwrite = overwrite
        self.header = header
        self.shape = tuple(int(s) for s in header.get_data_shape())
        self._vol_bytes = int(np.prod(self.shape[:3])) * 4
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.sequential = bool(sequential)
        self._done = False
        self._next = 0
        self._fidx: tuple[int, np.ndarray] | None = None
        remove_stale_temporaries(self.out.parent, self.out.name.split(".")[0])
        if self.sequential:
            self._gz = self.out.name.endswith(".gz")
            fd, name = tempfile.mkstemp(prefix=temp_prefix(self.out.name.split(".")[0]), suffix=".nii.gz" if self._gz else ".nii", dir=self.out.parent)
            self.tmp = Path(name)
            self._file = os.fdopen(fd, "wb")
            self._pending: list = []
            from concurrent.futures import ThreadPoolExecutor

            self._threads = max(1, int(threads) if threads else min(_MAX_GZIP_THREADS, n_cores()))
            self._pool = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="eeg2fmri-nifti")
            import io

            buf = io.BytesIO()
            header.write_to(buf)
            head = buf.getvalue()
            self._emit(head + b"\x00" * (_VOX_OFFSET - len(head)))
            return
        folder = Path(tmp_dir) if tmp_dir is not None else self.out.parent
        fd, name = tempfile.mkstemp(prefix=temp_prefix(self.out.name.split(".")[0]), suffix=".nii", dir=folder)
        self.tmp = Path(name)
        with os.fdopen(fd, "wb") as f:
            header.write_to(f)
            f.write(b"\x00" * (_VOX_OFFSET - f.tell()))
            f.truncate(_VOX_OFFSET + self._vol_bytes * self.shape[3])

    # ------------------------------------------------------------------ sequential mode
    def _submit(self, fn, *args) -> None:
        """Queue a task whose result is the next bytes of the file; write finished ones in order, at most ``threads + 2`` in flight."""
        self._pending.append(self._pool.submit(fn, *args))
        while len(self._pending) > self._threads + 2 or (self._pending and self._pending[0].done()):
            self._file.write(self._pending.pop(0).result())

    def _emit(self, data) -> None:
        """Append bytes (sequential mode): written as they are (``.nii``), or compressed by the pool, in order."""
        if not self._gz:
            self._drain()
            self._file.write(data)
            return
        mv = memoryview(data).cast("B")
        for i in range(0, len(mv), _MEMBER_BYTES):
            self._submit(_gzip_member, mv[i : i + _MEMBER_BYTES])

    def _drain(self) -> None:
        while self._pending:
            self._file.write(self._pending.pop(0).result())

    def _close_sequential(self) -> None:
        for f in self._pending:
            f.cancel()
        self._pending = []
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if not self._file.closed:
            self._file.close()

    def _write_rows(self, start: int, rows: np.ndarray) -> None:
        """Volumes ``start, ...`` given as rows ``(n, X * Y * Z)`` in Fortran voxel order (sequential mode)."""
        n = rows.shape[0]
        if start != self._next or start + n > self.shape[3]:
            raise ValueError(f"sequential NIfTI writer: expected volumes from {self._next} (of {self.shape[3]}), got {n} from {start}")
        self._emit(np.ascontiguousarray(rows, dtype="<f4"))
        self._next += n

    def write(self, start: int, volumes: np.ndarray) -> None:
        """Write volumes ``start, start + 1, ...``.

        Parameters
        ----------
        start : int
            Index of the first volume.
        volumes : array, shape (X, Y, Z, n)
        """
        n = volumes.shape[3]
        if volumes.shape[:3] != self.shape[:3] or start < 0 or start + n > self.shape[3]:
            raise ValueError(f"volumes {volumes.shape} at {start} do not fit a series of shape {self.shape}")
        if self.sequential:
            self._write_rows(start, np.asarray(volumes, dtype="<f4").reshape(-1, n, order="F").T)
            return
        mm = np.memmap(self.tmp, dtype="<f4", mode="r+", offset=_VOX_OFFSET + start * self._vol_bytes, shape=self.shape[:3] + (n,), order="F")
        mm[...] = volumes
        mm.flush()
        del mm

    def write_masked(self, start: int, values: np.ndarray, mask: np.ndarray) -> None:
        """Write volumes given as in-mask values, zero outside the mask.

        Parameters
        ----------
        values : array, shape (n, n_voxels)
        mask : array of bool, shape (X, Y, Z)
        """
        if self.sequential:
            if self._fidx is None or self._fidx[0] != id(mask):  # in-mask voxels (C order, as vol[mask]) -> Fortran-order offsets
                self._fidx = (id(mask), np.ravel_multi_index(np.nonzero(mask), mask.shape, order="F"))
            n_vox = int(np.prod(self.shape[:3]))
            n = len(values)
            if start != self._next or start + n > self.shape[3]:
                raise ValueError(f"sequential NIfTI writer: expected volumes from {self._next} (of {self.shape[3]}), got {n} from {start}")
            # the threads lay the volumes out (and compress them), a few volumes (one gzip member) per task
            values = np.array(values, dtype="<f4")  # a copy: the caller may reuse its array
            per = max(1, _MEMBER_BYTES // self._vol_bytes)
            for v0 in range(0, n, per):
                self._submit(_masked_member, values[v0 : v0 + per], self._fidx[1], n_vox, self._gz)
            self._next += n
            return
        vol = np.zeros(self.shape[:3] + (len(values),), dtype=np.float32, order="F")
        vol[mask] = np.asarray(values, dtype=np.float32).T
        self.write(start, vol)

    def finish(self) -> Path:
        """Move the data into place (rename or gzip) and return the output path."""
        if self.sequential:
            if self._next != self.shape[3]:
                raise ValueError(f"sequential NIfTI writer: {self._next} of {self.shape[3]} volumes written")
            self._drain()
            self._close_sequential()
            self._check_target()
            _user_mode(self.tmp, directory=False)
            os.replace(self.tmp, self.out)
            self._done = True
            return self.out
        if self.out.name.endswith(".gz"):
            fd, name = tempfile.mkstemp(prefix=temp_prefix(self.out.name.split(".")[0]), suffix=".nii.gz", dir=self.out.parent)
            os.close(fd)
            gz = Path(name)
            try:
                _gzip_file(self.tmp, gz)
                _user_mode(gz, directory=False)
                self._check_target()
                os.replace(gz, self.out)
            except BaseException:
                gz.unlink(missing_ok=True)
                raise
            self.tmp.unlink(missing_ok=True)
        else:
            self._check_target()
            _user_mode(self.tmp, directory=False)
            os.replace(self.tmp, self.out)
        self._done = True
        return self.out

    def _check_target(self) -> None:
        if self.out.exists() and not self.overwrite:
            raise Eeg2fmriInputError(f"{self.out}: output file appeared while writing; choose another path or pass overwrite=True.")

    def abort(self) -> None:
        """Remove the temporary file (nothing is written at the output path)."""
        if self.sequential:
            self._close_sequential()
        self.tmp.unlink(missing_ok=True)
        self._done = True

    def __enter__(self) -> StreamingNifti:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or not self._done:
            self.abort()
