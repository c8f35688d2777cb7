"""The EEG representation of a recording, computed in time chunks with bounded memory.

:func:`stream_representation` gives the features that
:func:`eeg2fmri.datasets.prepared.eeg_representation` computes in one shot
(same reading, resampling, filters, re-reference, envelopes/spectra and
within-recording standardisation), without ever holding the whole recording:

1. the recording is read in chunks of ``chunk_seconds`` (at the work rate),
   each extended by ``pad_seconds`` on both sides so that the resampling and
   filter kernels and the Hilbert envelopes see the same neighbourhood as in
   the one-shot path; only the chunk's own (unpadded) frames are kept. Chunk
   starts lie on samples that map to whole samples at every rate involved, so
   the resampled grids coincide with the one-shot grids;
2. the frames (or raw samples) go to a memory-mapped array on disk;
3. the within-recording standardisation (per-channel/band median and IQR, or
   the global median for STFT magnitudes) is computed from the memory-mapped
   frames, channel block by channel block, and applied in place.

Peak memory is one padded chunk of EEG plus its envelopes, whatever the
length of the recording. The band-power envelopes, which the one-shot path
computes with one FFT of the whole recording (periodic at its ends) and
samples at a rate that depends on the recording's length, are reproduced by
extending the first and last chunks periodically and interpolating each
chunk's envelopes at the one-shot sample times. The results match the
one-shot path up to edge effects and that interpolation (about 1e-3 in
standardised units for band power, 1e-6 for STFT and raw), see the tests.

Frame grid
----------
Frames of length ``flen = tr / frames_per_tr`` start every ``hop`` seconds
(``hop = flen`` reproduces the prepared frames; a finer ``hop = flen / q``
gives overlapping frames for a finer output TR): frame ``k`` starts at
``(k // (frames_per_tr * q)) * tr + (k % (frames_per_tr * q)) * hop``
seconds from the first sample (the one-shot path's volume grid from time 0).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from eeg2fmri.datasets.prepared import (
    PrepareConfig,
    load_eeg_lowrate,
    lowrate_plan,
    slow_potential_features,
    work_rate,
)
from eeg2fmri.preprocessing import standardize_features
from eeg2fmri.preprocessing.eeg import FlatScan, flat_message
from eeg2fmri.preprocessing.representations import get_representation
from eeg2fmri.preprocessing.representations.bandpower import bandpower_frames as _bandpower_frames  # noqa: F401 (moved there)
from eeg2fmri.preprocessing.representations.bandpower import envelope_rate  # noqa: F401 (moved there)
from eeg2fmri.utils.logs import logger, progress
from eeg2fmri.utils.timing import step as _step
from eeg2fmri.utils.validation import Eeg2fmriInputError, check_positive

__all__ = ["StreamedEEG", "stream_representation"]

#: Default chunk length (s of EEG kept per chunk) and padding on each side.
CHUNK_SECONDS = 120.0
PAD_SECONDS = 15.0
# Channels standardised together in the normalisation pass.
_CHAN_BLOCK = 8
# Histogram bins of the exact streaming median.
_HIST_BINS = 1 << 14
# Values gathered at once when the median's bin is refined.
_GATHER_LIMIT = 1 << 22


@dataclass
class StreamedEEG:
    """Continuous EEG representation of a whole recording (memory-mapped when a folder was given).

    Attributes
    ----------
    features : array
        ``(n_frames, n_chans, n_bands)`` (bandpower), ``(n_frames, n_chans,
        n_freqs)`` (stft) or ``(n_samples, n_chans)`` (raw), float32,
        standardised within the recording as in the prepared datasets.
    representation : str
    step : float
        Seconds between consecutive rows of ``features`` (the frame hop, or
        ``1 / raw_sfreq``).
    frame_len : float
        Frame length in seconds (``tr / frames_per_tr``; ``step`` for raw).
    starts : array, shape (n_rows,)
        Start of every row in seconds from the first EEG sample.
    work_sfreq : float
        Rate at which the EEG was filtered (Hz).
    sfreq : float
        Rate of the recording (Hz).
    duration : float
        Seconds of EEG at the work rate.
    ch_names : list of str
    freqs : list of float | None
        STFT bin or band centre frequencies.
    info : dict
        Chunking and resampling details (for sidecars and logs).
    """

    features: np.ndarray
    representation: str
    step: float
    frame_len: float
    starts: np.ndarray
    work_sfreq: float
    sfreq: float
    duration: float
    ch_names: list[str]
    freqs: list[float] | None = None
    info: dict = field(default_factory=dict)


def _lcm(a: int, b: int) -> int:
    return a * b // math.gcd(a, b)


def _resample_mne(x: np.ndarray, up: int, down: int, n_out: int) -> np.ndarray:
    """Polyphase resampling by exactly ``up / down`` (the raw representation's second rate change).

    The same call as the one-shot path (:func:`eeg2fmri.datasets.prepared.eeg_representation`).
    """
    from scipy.signal import resample_poly

    if up == down:
        return x[:, :n_out]
    return resample_poly(x, up, down, axis=1)[:, :n_out]


def _frame_grid(duration: float, n_work: int, wsf: float, tr: float, m: int, q: int, flen: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Starts (s), first and end work samples of every frame that fits in the recording."""
    hop = flen / q
    per_tr = m * q
    k = np.arange(int(math.floor(duration / hop)) + 2)
    starts = (k // per_tr) * tr + (k % per_tr) * hop
    a = np.round(starts * wsf).astype(np.int64)
    b = np.round((starts + flen) * wsf).astype(np.int64)
    ok = (starts + flen <= duration + 1e-6) & (b <= n_work)
    n = int(np.argmin(ok)) if not ok.all() else len(ok)
    return starts[:n], a[:n], b[:n]


def _exact_median(arr: np.ndarray, rows: int) -> float:
    """``np.median`` of a (possibly memory-mapped) array, reading ``rows`` rows at a time.

    Histogram refinement: the bins holding the middle order statistics are
    narrowed until their values fit in memory, then sorted.
    """
    n = int(arr.size)
    ranks = sorted({(n - 1) // 2, n // 2})

    def blocks():
        for r0 in range(0, arr.shape[0], rows):
            yield np.asarray(arr[r0 : r0 + rows], dtype=np.float64).ravel()

    lo = min(float(b.min()) for b in blocks())
    hi = max(float(b.max()) for b in blocks())
    vals = []
    for rank in ranks:
        a, z, below = lo, hi, 0  # values < a: `below`; the answer lies in [a, z]
        while True:
            if a == z:
                vals.append(a)
                break
            counts = np.zeros(_HIST_BINS, dtype=np.int64)
            n_in = 0
            for b in blocks():
                sel = b[(b >= a) & (b <= z)]
                n_in += sel.size
                idx = np.minimum(((sel - a) / (z - a) * _HIST_BINS).astype(np.int64), _HIST_BINS - 1)
                counts += np.bincount(idx, minlength=_HIST_BINS)
            cum = np.cumsum(counts)
            j = int(np.searchsorted(cum, rank - below, side="right"))
            below_j = below + (int(cum[j - 1]) if j else 0)
            if counts[j] <= _GATHER_LIMIT:
                got = []
                for b in blocks():
                    sel = b[(b >= a) & (b <= z)]
                    idx = np.minimum(((sel - a) / (z - a) * _HIST_BINS).astype(np.int64), _HIST_BINS - 1)
                    got.append(sel[idx == j])
                g = np.sort(np.concatenate(got))
                vals.append(float(g[rank - below_j]))
                break
            edges_a = a + (z - a) * j / _HIST_BINS
            edges_z = a + (z - a) * (j + 1) / _HIST_BINS
            if edges_z <= edges_a or (edges_a == a and edges_z == z):
                vals.append(edges_a)
                break
            a, z, below = edges_a, np.nextafter(edges_z, -np.inf) if j < _HIST_BINS - 1 else z, below_j
    return float(np.mean(vals))


def _open_array(folder: Path | None, name: str, shape: tuple[int, ...]) -> np.ndarray:
    if folder is None:
        return np.empty(shape, dtype=np.float32)
    return np.lib.format.open_memmap(folder / f"{name}.npy", mode="w+", dtype=np.float32, shape=shape)


def _read_ahead(read, segments: list[tuple[int, int]], ahead: int):
    """Yield ``read(s0, s1)`` for every segment in order, ``ahead`` segments read in advance by a thread (0: none)."""
    if ahead <= 0:
        for s0, s1 in segments:
            yield read(s0, s1)
        return
    from concurrent.futures import ThreadPoolExecutor

    ex = ThreadPoolExecutor(max_workers=1, thread_name_prefix="eeg2fmri-read")
    pending = []
    try:
        nxt = 0
        for _ in segments:
            while nxt < len(segments) and len(pending) <= ahead:
                pending.append(ex.submit(read, *segments[nxt]))
                nxt += 1
            yield pending.pop(0).result()
    finally:
        for f in pending:
            f.cancel()
        ex.shutdown(wait=True)


def _standardise(feats: np.ndarray, n_chans: int, representation, config) -> None:
    """The within-recording standardisation of the one-shot path, in place, channel block by channel block."""
    rows_per_block = max(1, (1 << 22) // max(1, int(np.prod(feats.shape[1:]))))
    norm, log = representation.normalisation(config)
    if norm == "standardize":
        for c0 in range(0, n_chans, _CHAN_BLOCK):
            cs = slice(c0, min(n_chans, c0 + _CHAN_BLOCK))
            feats[:, cs] = standardize_features(np.asarray(feats[:, cs]), log=log)
    elif norm == "custom":  # the representation's own within-recording step
        representation.normalise(feats, n_chans, config)
    elif norm == "median":
        med = _exact_median(feats, rows_per_block)
        scale = np.float32(max(med, 1e-30))
        for r0 in range(0, len(feats), rows_per_block):
            feats[r0 : r0 + rows_per_block] = feats[r0 : r0 + rows_per_block] / scale
    else:
        for c0 in range(0, n_chans, _CHAN_BLOCK):
            cs = slice(c0, min(n_chans, c0 + _CHAN_BLOCK))
            xc = np.asarray(feats[:, cs])
            med = np.median(xc, axis=0, keepdims=True)
            q75, q25 = np.percentile(xc, [75, 25], axis=0, keepdims=True)
            scale = (q75 - q25) / 1.349
            scale[scale <= 0] = 1.0
            feats[:, cs] = ((xc - med) / scale).astype(np.float32)
    if isinstance(feats, np.memmap):
        feats.flush()


def stream_representation(
    raw,
    config: PrepareConfig,
    *,
    tr: float,
    picks: list[str] | None = None,
    hop: float | None = None,
    work_sfreq: float | None = None,
    chunk_seconds: float = CHUNK_SECONDS,
    pad_seconds: float = PAD_SECONDS,
    folder: str | os.PathLike | None = None,
    progress_bar: bool = False,
    where: str = "EEG",
    torch_device=None,
) -> StreamedEEG:
    """Continuous representation of a recording, computed chunk by chunk.

    Parameters
    ----------
    raw : mne.io.BaseRaw
        The recording; need not be preloaded (only one padded chunk is read
        at a time).
    config : PrepareConfig
        Preprocessing of the training data (``model.json["prepare"]``).
    tr : float
        Training repetition time in seconds (the frame grid).
    picks : list of str | None
        Channels to use, in order (e.g. the model's channels, mapped to the
        recording's names); default every EEG channel not marked bad.
    hop : float | None
        Seconds between frame starts; default the frame length
        ``tr / frames_per_tr``. Must divide the frame length. Ignored for the
        raw representation.
    work_sfreq : float | None
        Rate (Hz) the EEG is resampled to and filtered at; default as in
        :func:`eeg2fmri.datasets.prepared.work_rate` (the training work rate
        for a recording at the training sampling rate).
    chunk_seconds, pad_seconds : float
        Kept length and padding (each side) of a chunk, in seconds.
    folder : path-like | None
        Folder for the memory-mapped features, ``features.npy`` (created when missing; ``None`` keeps them in RAM).
    progress_bar : bool
    where : str
        Name of the recording in messages.
    torch_device : str | torch.device | None
        ``None`` (default): the signal processing runs in NumPy, SciPy and MNE
        on the CPU. A torch device (``"cuda"``, ``"cuda:1"``, also ``"cpu"``):
        resampling, filters, re-reference and (band power) envelopes and frame
        means run in torch there (:mod:`eeg2fmri.preprocessing.torch_dsp`),
        equal to the NumPy path to float32 rounding, while a thread reads the
        next chunk; the other representations' frames, and the
        standardisation, stay in NumPy.

    Returns
    -------
    streamed : StreamedEEG
    """
    import mne

    config = config.resolved(float(raw.info["sfreq"]))
    dev = None
    if torch_device is not None:
        import torch

        dev = torch.device(torch_device)
    rep = config.representation
    representation = get_representation(rep)
    tr = check_positive(tr, "tr", where=where)
    chunk_seconds = check_positive(chunk_seconds, "chunk_seconds", where=where)
    pad_seconds = float(pad_seconds)
    if not pad_seconds >= 0:
        raise Eeg2fmriInputError(f"{where}: expected pad_seconds >= 0, got {pad_seconds}.")
    sf = float(raw.info["sfreq"])
    if picks is None:
        types = raw.get_channel_types()
        picks = [c for c, t in zip(raw.ch_names, types) if t == "eeg" and c not in raw.info["bads"]]
    picks = list(picks)
    if not picks:
        raise Eeg2fmriInputError(f"{where}: no EEG channels to use; check channel types or pass picks=[...].")
    wsf = float(work_sfreq) if work_sfreq is not None else work_rate(sf, config)
    frac = Fraction(wsf / sf).limit_denominator(1000)
    up, down = frac.numerator, frac.denominator
    wsf = sf * up / down
    n_times = int(raw.n_times)
    n_work = -(-n_times * up // down)
    duration = n_work / wsf
    m = int(config.frames_per_tr)
    flen = tr / m
    folder = None if folder is None else Path(folder)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)  # (features.npy is written there; an existing one is replaced)
    # rate conversions after the work rate (raw representation only)
    slow = getattr(config, "slow_band", None) is not None
    if slow and rep != "bandpower":
        raise Eeg2fmriInputError(f"{where}: slow_potential is not supported by the streaming synthesis for the {rep!r} representation: "
                                 "expected 'bandpower' (the only representation prepare computes it for), got a model configuration with "
                                 f"representation {rep!r} and slow_potential {config.slow_potential!r}; retrain the model on data "
                                 "prepared with representation 'bandpower' (or without slow_potential).")
    if not representation.frame_based:  # raw samples: a second rate change, no frames
        rsf = float(config.raw_sfreq)
        frac2 = Fraction(rsf / wsf).limit_denominator(1000)
        up2, down2 = frac2.numerator, frac2.denominator
        align = _lcm(up, down2)
        n_rows = (n_work - 1) * up2 // down2 + 1
        step = 1.0 / rsf
        starts = np.arange(n_rows) / rsf
        q = 1
        freqs = None
        feats = _open_array(folder, "features", (n_rows, len(picks)))
    else:
        hop = flen if hop is None else check_positive(hop, "hop", where=where)
        q = int(round(flen / hop))
        if q < 1 or abs(q * hop - flen) > 1e-9 * flen:
            raise Eeg2fmriInputError(f"{where}: hop={hop} s must divide the frame length {flen} s (e.g. {flen}, {flen / 2}, {flen / 4}).")
        align = up
        starts, fa, fb = _frame_grid(duration, n_work, wsf, tr, m, q, flen)
        n_rows = len(starts)
        step = hop
        state = representation.stream_setup(config, wsf=wsf, n_work=n_work, tr=tr, where=where)
        freqs = representation.feature_freqs(state["freqs"], len(picks))
        if slow:  # prepare option slow_potential: one more entry after the bands (computed from the whole recording below)
            freqs = list(freqs) + [float(np.mean(config.slow_band))]
        feats = _open_array(folder, "features", (n_rows, len(picks), len(freqs)))
    if n_rows < 1:
        raise Eeg2fmriInputError(f"{where}: the recording ({n_times / sf:.1f} s) is shorter than one frame ({flen:g} s); use a longer recording.")
    main = feats[:, :, :-1] if slow else feats  # the representation's own entries (the slow potential is the last one)
    w_chunk = align * max(1, int(math.ceil(chunk_seconds * wsf / align)))
    # the padding also covers one frame, so that a chunk's last frame lies inside the segment
    w_pad = align * int(math.ceil(max(pad_seconds, flen + 1.0 / wsf) * wsf / align))
    n_chunks = max(1, int(math.ceil(n_work / w_chunk)))
    notch = raw.info.get("line_freq") if config.notch is None else config.notch
    # A recording sampled below the work rate is upsampled first (polyphase); otherwise the
    # one-shot code resamples it, with the work rate pinned so that both agree.
    upsample = up > down
    seg_info = mne.create_info(picks, wsf if upsample else sf, "eeg")
    seg_info["line_freq"] = raw.info.get("line_freq")
    cfg_seg = replace(config, work_sfreq=wsf)

    def segment_bounds(s0: int, s1: int) -> tuple[int, int]:
        """Recording samples of work samples [s0, s1) (s0 aligned, s1 aligned or the end)."""
        return s0 * down // up, n_times if s1 == n_work else s1 * down // up

    if dev is None:
        def lowrate(s0: int, s1: int, x: np.ndarray) -> np.ndarray:
            """Work-rate EEG of work samples [s0, s1) from their recording samples ``x``, by the one-shot code."""
            from scipy.signal import resample_poly

            if upsample:
                with _step("resample"):
                    x = resample_poly(x, up, down, axis=1)[:, : s1 - s0]
            seg_raw = mne.io.RawArray(x, seg_info, verbose=False)
            del x
            seg, _, _ = load_eeg_lowrate(seg_raw, cfg_seg, where=where, check_flat=False,  # the caller checks the whole recording
                                         check_filter_length=False)  # (a review: short padded chunks were refused)
            return seg[:, : s1 - s0]

        def read(s0: int, s1: int) -> np.ndarray:
            S0, S1 = segment_bounds(s0, s1)
            return scanned(S0, raw.get_data(picks=picks, start=S0, stop=S1))

        cat = np.concatenate
    else:
        import torch

        from eeg2fmri.preprocessing import torch_dsp

        plan = lowrate_plan(wsf if upsample else sf, cfg_seg, raw.info.get("line_freq"))
        kernels = [torch.tensor(h, dtype=torch.float64, device=dev) for h in torch_dsp.mne_fir_kernels(plan.wsf, plan.l_freq, plan.h_freq, plan.notch_freqs)]

        def lowrate(s0: int, s1: int, x):
            """Work-rate EEG of work samples [s0, s1) from their recording samples ``x`` (a tensor on ``dev``), in torch."""
            if upsample:
                with _step("resample", sync=dev):
                    x = torch_dsp.resample_poly_torch(x, up, down)[:, : s1 - s0]
            return torch_dsp.work_rate_eeg_torch(x, plan, kernels, picks, where=where, check_flat=False)[:, : s1 - s0]

        def read(s0: int, s1: int):
            S0, S1 = segment_bounds(s0, s1)
            x = scanned(S0, raw.get_data(picks=picks, start=S0, stop=S1))
            return torch.as_tensor(x, device=dev)

        def cat(parts, axis):
            return torch.cat(parts, dim=axis)

    # The one-shot band envelopes come from one FFT of the whole recording, which treats it as
    # periodic: its first frames see the recording's end and its last frames its start. The first
    # and last chunks are extended the same way (with `w_pad` samples from the other end).
    periodic = representation.periodic_edges and n_chunks > 1
    segments = []  # work-sample ranges in the order they are computed: [head, tail,] chunk 0, 1, ...
    if periodic:
        t0 = max(0, (n_work - 2 * w_pad) // align * align)
        segments += [(0, min(n_work, 2 * w_pad)), (t0, n_work)]
    for c in range(n_chunks):
        w0 = c * w_chunk
        w1 = min(n_work, w0 + w_chunk)
        s1 = n_work if (w1 >= n_work or w1 + w_pad >= n_work) else w1 + w_pad
        segments.append((max(0, w0 - w_pad), s1))
    # Flat channels are checked over the whole recording, on each chunk's own samples as they are read (in order, once;
    # not per chunk: a channel flat for a chunk but not for the recording is a stretch, said whatever the chunk length).
    n_head = len(segments) - n_chunks
    cores = iter([segment_bounds(c * w_chunk, min(n_work, (c + 1) * w_chunk)) for c in range(n_chunks)])
    n_read = [0]

    def scanned(S0: int, x: np.ndarray) -> np.ndarray:
        """Feed the chunk's own recording samples of segment read ``x`` (starting at sample ``S0``) to the flat scan."""
        k, n_read[0] = n_read[0], n_read[0] + 1
        if k >= n_head:  # the periodic head/tail segments are read again as parts of chunks
            c0, c1 = next(cores)
            with _step("flat check"):
                scan.update(x[:, c0 - S0 : c1 - S0])
        return x

    scan = FlatScan(picks, sf)
    # the torch path reads the next segment (and copies it to the device) in a thread while this one is computed
    reads = _read_ahead(read, segments, ahead=0 if dev is None else 1)
    try:
        head = tail = None
        if periodic:
            with _step("read"):
                x = next(reads)
            head = lowrate(*segments[0], x)[:, :w_pad]
            with _step("read"):
                x = next(reads)
            tail = lowrate(*segments[1], x)[:, -w_pad:]
            del x
        row = 0
        for c in progress(range(n_chunks), desc="EEG chunks", enabled=progress_bar):
            w0 = c * w_chunk
            w1 = min(n_work, w0 + w_chunk)
            last = w1 >= n_work
            s0, s1 = segments[c + (2 if periodic else 0)]
            with _step("read"):
                x = next(reads)
            seg = lowrate(s0, s1, x)
            del x
            t_seg = s0 / wsf
            if head is not None and s0 == 0 and s1 < n_work:
                seg = cat([tail, seg], axis=1)
                t_seg -= tail.shape[1] / wsf
            elif head is not None and s1 == n_work and s0 > 0:
                seg = cat([seg, head], axis=1)
            if dev is not None and not representation.frame_based:
                seg = seg.cpu().numpy()
            if not representation.frame_based:
                r0 = w0 * up2 // down2
                r1 = n_rows if last else w1 * up2 // down2
                if up2 != down2:
                    seg_r = _resample_mne(seg.astype(np.float64), up2, down2, (s1 - s0) * up2 // down2 if s1 != n_work else n_rows - s0 * up2 // down2)
                else:
                    seg_r = seg
                off = s0 * up2 // down2
                feats[r0:r1] = seg_r[:, r0 - off : r1 - off].T
                row = r1
                continue
            keep = np.where((fa >= w0) & ((fa < w1) | last))[0]
            if len(keep) == 0:
                continue
            if dev is None:
                out = representation.stream_frames(seg, wsf, t_seg, starts, keep, q, flen, config, state, where=where)
            else:
                out = representation.stream_frames_torch(seg, wsf, t_seg, starts, keep, q, flen, config, state, where=where)
            main[keep[0] : keep[-1] + 1] = out
            row = keep[-1] + 1
        if row < n_rows:
            raise Eeg2fmriInputError(f"{where}: could only compute {row} of {n_rows} frames; is the recording complete?")
    finally:
        reads.close()
    if scan.n_samples != n_times:  # every recording sample fed once, in order
        raise RuntimeError(f"{where}: the flat-channel scan saw {scan.n_samples} of {n_times} samples (a bug; please report it)")
    if scan.constant:
        raise Eeg2fmriInputError(f"{where}: channel(s) {scan.constant} are flat (constant); mark them bad and interpolate, or drop them.")
    flat_stretches = scan.stretches()
    if flat_stretches:
        logger.warning("%s: %s", where, flat_message(flat_stretches, n_times / sf))
    # within-recording standardisation, as in the one-shot path
    with _step("standardise"):
        _standardise(main, len(picks), representation, config)
    if slow:  # the whole recording at the work rate once more, without the high-pass (as prepare computes it)
        with _step("slow potential"):
            feats[:, :, -1] = slow_potential_features(raw, cfg_seg, np.asarray(starts), flen, picks=picks, where=where)
        if isinstance(feats, np.memmap):
            feats.flush()
    info = {"chunk_seconds": w_chunk / wsf, "pad_seconds": w_pad / wsf, "n_chunks": n_chunks, "work_sfreq": wsf, "resample": [up, down],
            "notch": notch or None, "dsp": "numpy" if dev is None else f"torch:{dev}", "flat_stretches": flat_stretches}
    logger.info("%s: %d channels, %.1f s, %d %s rows in %d chunk(s)", where, len(picks), duration, n_rows, rep, n_chunks)
    return StreamedEEG(feats, rep, float(step), float(flen if representation.frame_based else step), np.asarray(starts), wsf, sf, duration, picks, freqs, info)
