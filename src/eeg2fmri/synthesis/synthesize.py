"""Turn an EEG-only recording into a 4D BOLD NIfTI with a trained model, in bounded memory.

Steps (see :func:`synthesize`):

1. the recording is opened lazily (any format MNE reads) and its channels are
   matched to the model's by name, case-insensitively (extra channels are
   ignored and reported, missing ones are an error naming them);
2. the EEG representation the model was trained on (band power, STFT or raw,
   with the preprocessing recorded in ``model.json``) is computed in time
   chunks by :func:`~eeg2fmri.synthesis.stream.stream_representation` into a
   memory-mapped temporary file; a recording at another sampling rate is
   resampled to the training work rate (reported). With ``dsp_device`` on a
   GPU (the default when ``device`` is one), resampling, filters and
   band-power envelopes run there in torch
   (:mod:`eeg2fmri.preprocessing.torch_dsp`);
3. windows are predicted in batches and written volume block by volume block
   (:class:`~eeg2fmri.synthesis.nifti.StreamingNifti`, sequential): appended to
   a temporary ``.nii``, or gzip-compressed by background threads into a
   temporary ``.nii.gz`` while the next batch is predicted, renamed into place
   at the end, with a JSON sidecar; an uncertainty NIfTI is written too when
   the model provides one.

Peak memory does not grow with the length of the recording, and an interrupted
synthesis leaves no output file behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eeg2fmri.datasets.prepared import PrepareConfig, work_rate
from eeg2fmri.io import read_eeg
from eeg2fmri.models import load_model
from eeg2fmri.models.predictor import place_model, resolve_device
from eeg2fmri.preprocessing.representations import get_representation
from eeg2fmri.synthesis.nifti import StreamingNifti, nifti_header
from eeg2fmri.synthesis.stream import CHUNK_SECONDS, PAD_SECONDS, stream_representation
from eeg2fmri.training.predictor import (
    as_masked,
    call_uncertainty,
    predict_windows,
    uncertainty_methods,
)
from eeg2fmri.utils.atomic import atomic_file, final_paths, remove_stale_temporaries, temp_prefix
from eeg2fmri.utils.logs import logger, progress
from eeg2fmri.utils.timing import step
from eeg2fmri.utils.validation import (
    Eeg2fmriInputError,
    check_instance,
    check_positive,
    check_positive_int,
)

__all__ = ["match_channels", "output_paths", "synthesize"]

# Window elements (float32) fetched per prediction batch at most (64 MiB).
_BATCH_ELEMS = 1 << 24
# Output volume elements (float32) written per batch at most (16 MiB).
_VOLUME_ELEMS = 1 << 22


def output_paths(out: str | os.PathLike) -> tuple[Path, Path, Path]:
    """The BOLD, sidecar and uncertainty paths of an output name.

    Parameters
    ----------
    out : path-like
        ``NAME.nii.gz`` or ``NAME.nii``.

    Returns
    -------
    bold, sidecar, uncertainty : Path
        ``NAME.nii[.gz]``, ``NAME.json`` and ``NAME_uncertainty.nii[.gz]``.
    """
    out = Path(out)
    for ext in (".nii.gz", ".nii"):
        if out.name.endswith(ext):
            stem = out.name[: -len(ext)]
            return out, out.with_name(stem + ".json"), out.with_name(stem + "_uncertainty" + ext)
    raise Eeg2fmriInputError(f"{out}: expected an output name ending in .nii.gz or .nii, got {out.name!r}; e.g. --out sub-01_desc-synth_bold.nii.gz.")


def match_channels(available: list[str], wanted: list[str], where: str = "EEG") -> tuple[list[str], list[str]]:
    """Map the model's channel names onto a recording's, case-insensitively, then without EDF-style decorations.

    A training name matches a recording name that differs only in case, else
    one that equals it without a leading ``EEG`` or a trailing reference tag
    (:func:`~eeg2fmri.preprocessing.channels.channel_key`: ``EEG FP1-REF`` is
    ``Fp1``), as ``prepare`` matches the runs' channels.

    Parameters
    ----------
    available : list of str
        Channel names of the recording.
    wanted : list of str
        Channel names the model was trained on, in input order.

    Returns
    -------
    picks : list of str
        The recording's names of the model's channels, in the model's order.
    extra : list of str
        Recording channels the model does not use (ignored).

    Raises
    ------
    Eeg2fmriInputError
        A model channel is missing (the message names them and how to fix
        it) or a name matches several channels that differ only in case.
    """
    from eeg2fmri.preprocessing.channels import _by_key

    by_lower: dict[str, list[str]] = {}
    for c in available:
        by_lower.setdefault(c.lower(), []).append(c)
    # then without EDF-style decorations, as prepare matches them (channel_key: "EEG FP1-REF" is Fp1)
    keyed, key = _by_key(list(available))
    for c in wanted:
        if c.lower() not in by_lower and key(c) in keyed:
            by_lower[c.lower()] = [keyed[key(c)]]
    missing = [c for c in wanted if c.lower() not in by_lower]
    if missing:
        matched = {by_lower[c.lower()][0] for c in wanted if c.lower() in by_lower}
        unused = [c for c in available if c not in matched]
        raise Eeg2fmriInputError(
            f"{where}: the model was trained on {len(wanted)} EEG channels and {len(missing)} are missing here: "
            f"{missing[:12]}{' ...' if len(missing) > 12 else ''} (channels of the recording the model does not use: "
            f"{unused[:12]}{' ...' if len(unused) > 12 else ''}); map them by electrode position with --channel-positions file "
            "(the recording's own positions) or a montage name such as biosemi64 (channel_positions= in Python), or rename the "
            "channels to the training names (matching ignores case and EDF-style decorations such as 'EEG Fp1-REF') or interpolate "
            "the missing ones in MNE (raw.rename_channels, raw.interpolate_bads) and pass the fixed recording."
        )
    ambiguous = [c for c in wanted if len(by_lower[c.lower()]) > 1]
    if ambiguous:
        raise Eeg2fmriInputError(
            f"{where}: channel name(s) {ambiguous[:5]} match several channels that differ only in case "
            f"({[by_lower[c.lower()] for c in ambiguous[:3]]}); rename or drop the duplicates."
        )
    picks = [by_lower[c.lower()][0] for c in wanted]
    used = set(picks)
    extra = [c for c in available if c not in used]
    return picks, extra


def _hop_for(tr_out: float, tr_train: float, flen: float, kind: str) -> int:
    """Frame hops per frame for ``tr_out`` (1 for a sample-based representation such as raw, and for a step of several
    frames: the training TR of a model prepared with ``frames_per_tr`` > 1, whose windows are then taken every
    ``tr_out / flen`` frames, :func:`_frames_per_step`)."""
    if not get_representation(kind).frame_based:
        if tr_out > tr_train + 1e-9:
            raise Eeg2fmriInputError(f"tr={tr_out} s: expected at most the training TR {tr_train} s (finer steps are allowed); omit --tr for the training TR.")
        return 1
    q = flen / tr_out
    if _frames_per_step(tr_out, flen) > 1:
        return 1
    if q < 1 - 1e-9 or abs(q - round(q)) > 1e-6:
        raise Eeg2fmriInputError(
            f"tr={tr_out} s: expected the training TR, a whole number of training frames ({flen:g} s each) or a step that divides "
            f"the frame length (e.g. {flen:g}, {flen / 2:g}, {flen / 4:g}); omit --tr for the training TR."
        )
    return int(round(q))


def _frames_per_step(tr_out: float, flen: float) -> int:
    """Frames per output step where ``tr_out`` is a whole number (> 1) of frames of ``flen`` s (``frames_per_tr`` > 1 at the
    training TR: user test 52 found every such model refused by default), else 1."""
    k = tr_out / flen
    return int(round(k)) if k > 1 + 1e-9 and abs(k - round(k)) <= 1e-6 else 1


def _dsp_device(dsp_device: str | None, dev: torch.device | None) -> torch.device | None:
    """The torch device of the signal processing, ``None`` for the NumPy/SciPy/MNE path."""
    if dsp_device is None or dsp_device == "cpu":
        return None
    if dsp_device == "auto":
        return dev if dev is not None and dev.type == "cuda" else None
    name = str(dsp_device)
    if name == "cuda" or name.startswith("cuda:"):
        return resolve_device(name, where="synthesize: dsp_device")
    raise Eeg2fmriInputError(f"synthesize: dsp_device: expected one of 'auto', 'cpu', 'cuda' or 'cuda:N', got {dsp_device!r}.")


def _grid_phase(raw, first_onset: float | str | None, tr: float, cfg: PrepareConfig, where: str,
                dummy_scans: int = 0, frame_len: float | None = None, max_step: float | None = None,
                marker_block: int | None = None) -> tuple[dict, float, np.ndarray | None]:
    """Where the output's volume grid is anchored: a description for the sidecar and the grid's offset from the first sample.

    Returns
    -------
    anchor : dict
        ``{"anchor": ..., "anchor_time_s": ..., "offset_s": ...}`` (``anchor``: "first EEG sample", "first_onset" or the marker).
    offset : float
        Seconds from the first sample to the first grid point, ``anchor_time mod tr`` rounded to a sample.
    marker_times : array | None
        The scanner markers' times (``first_onset="markers"``), seconds from the first sample.
    """
    sf = float(raw.info["sfreq"])
    times = None
    if first_onset is None:  # (a recording with scanner markers is anchored on them before: _default_first_onset)
        return {"anchor": "first EEG sample", "anchor_time_s": 0.0, "offset_s": 0.0}, 0.0, None
    if isinstance(first_onset, str):
        if first_onset.strip().lower() != "markers":
            raise Eeg2fmriInputError(f"{where}: expected first_onset to be a time in seconds or 'markers', got {first_onset!r}; "
                                     "pass e.g. first_onset=12.5 (--first-onset 12.5) or first_onset='markers'.")
        from eeg2fmri.io.sync import DEFAULT_MARKERS, marker_times, with_default_markers

        names = cfg.marker if cfg.marker is not None else DEFAULT_MARKERS
        names = (names,) if isinstance(names, str) else tuple(names)
        descs = [str(d) for d in raw.annotations.description]
        found, times = marker_times(raw, names)
        if found is None and set(names) != set(DEFAULT_MARKERS):
            # the training recordings' marker may have been renamed (mne-bids names events.tsv markers by trial_type,
            # e.g. 'scanner'), while an EEG-only file keeps the scanner's own name (R128, ...)
            found, times = marker_times(raw, DEFAULT_MARKERS)
            if found is not None:
                logger.info("%s: none of the training marker names %s in the recording; using its %r markers", where, list(names), found)
            names = with_default_markers(names)
        blocks: list = []
        if found is not None and marker_block is not None:  # one scan of several: its markers only
            from eeg2fmri.io.sync import describe_blocks, marker_blocks

            step_b = float(np.median(np.diff(times))) if len(times) > 1 else tr
            blocks = marker_blocks(times, step_b)
            if marker_block > len(blocks):
                raise Eeg2fmriInputError(f"{where}: marker_block={marker_block}, but the recording holds {len(blocks)} block(s) of {found!r} "
                                         f"scanner markers ({describe_blocks(times, blocks, step_b)}); pass a block from 1 to {len(blocks)}.")
            a, b = blocks[marker_block - 1]
            logger.info("%s: block %d of %d of %r scanner markers (%s): the output is that scan's volumes", where, marker_block, len(blocks),
                        found, describe_blocks(times, [(a, b)], step_b).split(": ", 1)[1])
            times = times[a:b]
        if found is not None and dummy_scans:
            if dummy_scans >= len(times):
                raise Eeg2fmriInputError(f"{where}: dummy_scans={dummy_scans} but "
                                         + (f"block {marker_block} has" if marker_block is not None else "the recording has")
                                         + f" only {len(times)} {found!r} marker(s); "
                                         "pass the number of markers before the first saved volume.")
            logger.info("%s: the first %d %r marker(s) dropped as dummy scans; volume 0 at %.3f s", where, dummy_scans, found,
                        float(times[dummy_scans]))
            times = times[dummy_scans:]
        if found is not None and len(times) > 2 and marker_block is None:  # several scans in one recording (user test 50): said
            from eeg2fmri.io.sync import describe_blocks, marker_blocks

            step_b = float(np.median(np.diff(times)))
            blocks = marker_blocks(times, step_b)
            if len(blocks) > 1:
                logger.warning("%s: the recording holds %d blocks of %r scanner markers, parted by pauses (separate scans: %s): the "
                               "output's grid follows the first marker, so the volumes of later scans are off their scan's volumes "
                               "(a pause is no whole number of TRs). To write one scan's volumes on its own grid, pass --marker-block K "
                               "(K = 1..%d; marker_block=K), with --dummy-scans for that scan's dummy-scan markers.", where, len(blocks),
                               found, describe_blocks(times, blocks, step_b), len(blocks))
        if found is not None:
            label, t0 = f"marker {found!r}" + (f" (after {dummy_scans} dummy scans)" if dummy_scans else ""), float(times[0])
            step_s = float(np.median(np.diff(times))) if len(times) > 1 else None
            ratio = step_s / tr if step_s else 1.0
            if step_s is not None and abs(ratio - round(ratio)) > 0.01 * max(1.0, ratio):  # a grid that drifts off the scan
                # (a whole number of output volumes per marker, e.g. --tr half the scan's TR, stays on it: user test 15)
                if frame_len is None:  # a sample-based model (raw windows): any step up to the training TR (_hop_for)
                    writable = max_step is None or step_s <= max_step + 1e-9
                else:  # a step that divides the frame, or a whole number of frames (frames_per_tr > 1: user test 53)
                    q = frame_len / step_s
                    writable = (q >= 1 - 1e-9 and abs(q - round(q)) < 1e-6) or _frames_per_step(step_s, frame_len) > 1
                if writable:  # a step the model can write
                    fix = f"pass --tr {step_s:.3g} for one volume per marker"
                elif frame_len is None:
                    fix = (f"the model writes steps up to its training TR ({max_step:g} s), so the output cannot follow this scan's "
                           f"{step_s:.3g} s: to compare volume by volume, resample the scan's BOLD in time to the output's times "
                           "(sidecar VolumeGrid), or train on data of this TR (prepare option resample_tr)")
                else:  # (user test 30: --tr 2.16 was advised, then refused: it does not divide the training frame length)
                    fix = (f"the model writes only steps that divide its frame length ({frame_len:g} s), so the output cannot follow "
                           f"this scan's {step_s:.3g} s: to compare volume by volume, resample the scan's BOLD in time to the output's "
                           "times (sidecar VolumeGrid), or train on data of this TR (prepare option resample_tr)")
                logger.warning("%s: the recording's %r markers come every %.3f s, but the output's volumes every %g s (the training TR, "
                               "or --tr): only the first lines up with a marker; %s.", where, found, step_s, tr, fix)
        else:
            raise Eeg2fmriInputError(f"{where}: first_onset='markers' but none of the scanner markers {list(names)} (the model's training "
                                     f"marker names and the usual scanner names) is in the recording (annotations present: {sorted(set(descs))[:15]}); pass the first "
                                     "volume's time in seconds instead (--first-onset SECONDS).")
    else:
        try:
            t0 = float(first_onset)
        except (TypeError, ValueError):
            t0 = float("nan")
        if not (np.isfinite(t0) and t0 >= 0):
            raise Eeg2fmriInputError(f"{where}: expected first_onset >= 0 (seconds from the first EEG sample) or 'markers', got {first_onset!r}; "
                                     "pass e.g. first_onset=12.5 (--first-onset 12.5).")
        label = "first_onset" if t0 else "first EEG sample"  # (--first-onset 0: the first sample, as without markers)
        if t0 >= raw.n_times / sf:
            raise Eeg2fmriInputError(f"{where}: first_onset={t0:g} s lies after the recording's end ({raw.n_times / sf:.1f} s); pass a time inside it.")
    offset = _grid_offset(t0, tr, sf)
    if offset >= raw.n_times / sf:
        offset = 0.0
    out = {"anchor": label, "anchor_time_s": t0, "offset_s": offset}
    if times is not None and len(blocks) > 1 and marker_block is None:
        out["marker_blocks"] = len(blocks)
    if marker_block is not None:
        out["marker_block"] = int(marker_block)
    return out, offset, times


def _default_first_onset(raw, cfg: PrepareConfig, where: str) -> str | None:
    """``"markers"`` for a recording with scanner markers (the model's training marker names, else the usual scanner names),
    so that by default the output's volumes are the scan's (user test 48: a held-out run was synthesised 0.18 s off its
    volumes unless --first-onset markers was given; user test 30 had asked for a warning); ``None`` (the first EEG sample)
    for a recording without them -- an EEG-only session outside the scanner."""
    from eeg2fmri.io.sync import marker_times, with_default_markers

    found, mk = marker_times(raw, with_default_markers(cfg.marker))
    if found is None or len(mk) < 2:
        return None
    logger.info("%s: the recording has %d %r scanner markers: the output's volumes are timed by them (pass --first-onset 0 to time "
                "them from the first EEG sample instead)", where, len(mk), found)
    return "markers"


def _grid_offset(t0: float, tr: float, sf: float) -> float:
    """Time of the first volume of the grid through ``t0`` (s), on the sample grid: ``t0`` minus whole TRs, in ``[0, tr)``.

    A ``t0`` that is a whole number of TRs gives 0 (``16.2 % 1.8`` is 1.7999... in floating point, which put the
    first volume one TR late).
    """
    k = math.floor(t0 / tr + 1e-6)  # whole TRs before t0, with a tolerance for the float error of t0 / tr
    n = max(0, round((t0 - k * tr) * sf))
    return 0.0 if n >= round(tr * sf) else n / sf


def _refuse_gradient_artifacts(raw, picks: list[str], tr: float, cfg: PrepareConfig, where: str, trained: dict | None = None) -> dict:
    """The gradient-artefact check of ``prepare`` on the channels the model reads (the middle 120 s of at most 16 of them,
    read by name whatever their type); a recording that fails it is refused (user test 17: raw in-scanner EEG
    synthesised for a model trained on cleaned EEG gave noise, without a word), unless the model's own training runs
    failed it too (``trained``, model.json's ``training_gradient_artifacts``): then it is said in a warning."""
    import warnings

    from eeg2fmri.preprocessing.artifacts import check_gradient_artifacts

    sf = float(raw.info["sfreq"])
    n = min(raw.n_times, int(round(120.0 * sf)))
    start = (raw.n_times - n) // 2
    chans = [picks[i] for i in np.unique(np.linspace(0, len(picks) - 1, min(16, len(picks))).round().astype(int))]
    data = raw.get_data(picks=chans, start=start, stop=start + n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # said below, with the fixes for synthesis
        report = check_gradient_artifacts(data, sfreq=sf, tr=tr, where=where)
    if not report.get("detected"):
        return report
    what = (f"{where}: strong periodic power at multiples of {report['comb_hz']:.4g} Hz (the spectral lines {report['peak_ratio']:.3g} times the "
            f"power next to them; clean EEG is about 1, threshold {report['threshold']:g}): the recording looks uncorrected for MRI "
            "gradient artefacts")
    if trained and trained.get("detected"):
        logger.warning("%s, as %d of the model's %d training runs did: it is synthesised as such EEG was learned from; a model trained "
                       "on corrected EEG (prepare --clean gradient,bcg, or eeg2fmri clean) would expect this recording cleaned", what,
                       int(trained["detected"]), int(trained.get("runs", 0)))
        return report
    if cfg.clean:
        how = f"the model was trained on EEG cleaned with prepare option clean={cfg.clean!r}"
    elif trained:
        how = f"the model's {int(trained.get('runs', 0))} training run(s) passed this check"
    else:
        how = "the model does not record such artefacts in its training EEG"
    raise Eeg2fmriInputError(
        f"{what}, and {how}, so its predictions would be noise. Clean it first -- `eeg2fmri clean {Path(where).name if where != 'EEG (Raw object)' else 'REC'} "
        "--out cleaned.fif` (gradient artefacts by average artifact subtraction, pulse artefacts by PCA-OBS from the ECG channel; "
        "clean_raw in Python) or your own pipeline -- and synthesise the cleaned file; if the check is wrong for this recording, pass "
        "check_artifacts=False (--no-artifact-check).")


#: A synthesised image whose median per-output SD (training z units) is below this is warned about (user test 45: 3e-5).
SMALL_AMPLITUDE = 0.01


def _interpolate_bads(raw, spec, chmap, picks: list[str], extra, bads: list[str], channel_positions: str | None, tolerance_mm: float, min_share: float,
                      where: str):
    """Interpolate the training channels ``bads`` that the recording marks bad (loads the recording).

    Positions: ``channel_positions``, else the file's digitisation, else the standard 10-05 sites of the channel names.

    Returns
    -------
    raw, chmap, picks, extra, interpolated, why
        The recording with the training channels (interpolated ones included), the mapping, the channels to use, those
        ignored, the bad channels handled (training names); or the inputs unchanged, ``interpolated`` empty and ``why``
        the reason, when no positions are available.
    """
    from eeg2fmri.preprocessing.channels import default_positions, map_channels_by_position

    positions = default_positions(raw) if channel_positions is None else channel_positions
    wanted = [str(c) for c in spec.ch_names]
    try:
        new_raw, new_map = map_channels_by_position(raw, wanted, positions=positions, tolerance_mm=tolerance_mm, min_share=min_share, where=where)
    except Eeg2fmriInputError as err:
        return raw, chmap, picks, extra, [], f"{err} Pass channel_positions (--channel-positions) naming the cap's montage to interpolate them."
    new_picks, _ = match_channels(list(new_raw.ch_names), wanted, where)
    # the bad channels under their training names: interpolated, or (dense caps) replaced by a good channel at the site
    train_name = dict(zip(picks, wanted))
    done = [train_name[b] for b in bads if train_name[b] in new_map.interpolated or train_name[b] in new_map.by_position]
    return new_raw, new_map, new_picks, new_map.ignored, done, ""


def resolve_model_dir(model_dir: str | os.PathLike) -> Path:
    """The model directory of ``model_dir``: itself when it holds ``model.json``, else its ``model/`` (a training run folder).

    Raises
    ------
    Eeg2fmriInputError
        When neither holds ``model.json``.
    """
    check_instance(model_dir, (str, os.PathLike), "model_dir", where="synthesize",
                   fix="pass the folder the model was saved to (save_fit(result, FOLDER), eeg2fmri train's RUN/model) or what fit_model returned; the "
                       "order is synthesize(eeg, model_dir, out)")
    path = Path(model_dir)
    if (path / "model.json").is_file():
        return path
    if (path / "model" / "model.json").is_file():
        logger.info("%s is a training run folder; using its model directory %s", path, path / "model")
        return path / "model"
    if not path.is_dir():
        raise Eeg2fmriInputError(f"{path}: expected a model directory with model.json, found no such folder; check the path given to --model.")
    raise Eeg2fmriInputError(f"{path}: expected a model directory with model.json, found a folder without it (nor model/model.json); "
                             "pass RUN/model, the model/ folder that eeg2fmri train or quickstart wrote.")


def _trailing_skip(raw, duration: float) -> float:
    """Seconds at the end of ``raw`` that an annotation marks ``BAD_ACQ_SKIP`` (e.g. the padding of an EDF file's last
    data record, which MNE reads as samples; user test 13: the too-short message counted it as recording)."""
    ann = getattr(raw, "annotations", None)
    if ann is None or not len(ann):
        return 0.0
    t0 = float(getattr(raw, "first_time", 0.0) or 0.0)
    pad = 0.0
    for on, dur, desc in zip(ann.onset, ann.duration, ann.description):
        start = float(on) - t0
        if str(desc).upper().startswith("BAD_ACQ_SKIP") and start + float(dur) >= duration - 1e-3:
            pad = max(pad, duration - max(start, 0.0))
    return pad


def _region_file_only(eeg, model_dir, out: Path, *, overwrite: bool, **kw: Any) -> Path:
    """``synthesize(..., out="NAME.tsv")``: the region series alone (``NAME.tsv`` and its sidecar ``NAME.json``), for a model
    whose outputs are regions (of region tables, or of an atlas) or a voxel model with ``atlas``; no image is kept."""
    import shutil

    sidecar = out.with_suffix(".json")
    for p in (out, sidecar):
        if p.exists() and not overwrite:
            raise Eeg2fmriInputError(f"{p}: output already exists; choose another path or pass overwrite=True (--overwrite).")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=temp_prefix(out.stem), dir=out.parent) as tmp:
        img = synthesize(eeg, model_dir, Path(tmp) / "regions.nii", overwrite=True, **kw)
        side = json.loads(img.with_name("regions.json").read_text(encoding="utf-8"))
        if "RoiFile" not in side:
            raise Eeg2fmriInputError(f"{out}: an output ending in .tsv holds region series, but this model's outputs are voxels and no atlas "
                                     "was given; pass atlas (--atlas LABELS.nii.gz) for the series of its regions, or write a .nii.gz.")
        side["RoiFile"] = out.name
        if "Targets" in side:
            side["Targets"] = re.sub(r": the series are in regions_rois\.tsv; the image is a stand-in.*$", "", str(side["Targets"]))
        side.pop("AboveChanceMask", None)
        side["Image"] = "none: the output was asked as a .tsv of region series (one row per volume: onset, then one column per region)"
        shutil.move(str(Path(tmp) / "regions_rois.tsv"), str(out))
        with atomic_file(sidecar, overwrite=True) as tmp_json:
            tmp_json.write_text(json.dumps(final_paths(side), indent=2), encoding="utf-8")
    return out


def synthesize(
    eeg,
    model_dir,
    out: str | os.PathLike,
    *,
    tr: float | None = None,
    overwrite: bool = False,
    uncertainty: bool | None = None,
    batch_size: int = 256,
    chunk_seconds: float = CHUNK_SECONDS,
    pad_seconds: float = PAD_SECONDS,
    progress_bar: bool = True,
    device: str | None = "auto",
    channel_positions: str | None = None,
    channel_tolerance_mm: float = 25.0,
    min_channel_share: float = 0.5,
    dsp_device: str | None = "auto",
    first_onset: float | str | None = None,
    volumes: str | None = None,
    dummy_scans: int = 0,
    check_artifacts: bool = True,
    first_marker_volume: int | None = None,
    atlas: Any = None,
    interpolate_outliers: bool = True,
    clean: str | dict | None = None,
    marker_block: int | None = None,
    notch: float | None = None,
) -> Path:
    """Predict a 4D BOLD image from an EEG recording, streaming it in time chunks.

    Parameters
    ----------
    eeg : path-like | mne.io.BaseRaw
        EEG-only recording in any format MNE reads (``.vhdr``, ``.edf``,
        ``.bdf``, ``.set``, ``.fif``, ...), or a Raw object (need not be
        preloaded). Its channels are matched to the training channels by
        name, case-insensitively; extra channels are ignored (reported),
        missing ones raise. Another sampling rate is resampled to the
        training work rate (reported).
    model_dir : path-like | FitResult
        A trained model directory (``model.json``, weights, ``mask.nii.gz``), or a training run folder
        whose ``model/`` is one, or what :func:`~eeg2fmri.training.fit_model` returned (saved with its
        dataset and split into a temporary folder first, as ``save_fit(result, FOLDER)`` would; the sidecar's
        ``ModelDir`` then says so).
    out : path-like
        Output ``.nii.gz`` or ``.nii`` (or ``.tsv``: the region series alone, with ``NAME.json``, for a model of region
        outputs or with ``atlas``); written volume block by volume block
        into a temporary file next to it (``.nii.gz``: gzip level 1,
        compressed by background threads while the next volumes are
        predicted) and renamed at the end (an existing file needs
        ``overwrite``). ``.nii`` skips the compression (fastest; about 3.5x
        larger files). A JSON sidecar ``NAME.json`` records TR, start time,
        channels, resampling and the model.
    tr : float | None
        Output volume spacing in seconds; default the training TR. A finer
        step must divide the training frame length (e.g. 1 or 0.5 s for a TR
        of 2 s with one frame per TR).
    overwrite : bool
        Replace existing outputs.
    uncertainty : bool | None
        Also write ``NAME_uncertainty.nii[.gz]``, a predictive Laplace scale
        per voxel and volume (the ``level`` interval is ``+/- scale *
        log(1 / (1 - level))``). A model with its own scale
        (``predict_uncertainty(x) -> (mean, scale)`` or ``predict_mc(x) ->
        (mean, std)``) gives that scale times the temperature fitted on the
        validation windows (``calibration.json`` of the model folder, written
        by ``eeg2fmri train`` and quickstart; without it the raw scale,
        marked uncalibrated in the sidecar); the flagship's ensemble spread
        (``predict_ensemble``) only when ``uncertainty=True``. Any other model with a
        ``calibration.json`` gives its per-voxel Laplace scale (mean absolute
        validation residual), the same in every volume. ``None`` writes it
        when the model has a scale of its own, ``True`` requires one of the
        two, ``False`` never writes it.
    batch_size : int
        Windows predicted at once (fewer for large windows).
    chunk_seconds, pad_seconds : float
        EEG kept per chunk and the padding on each side (seconds); memory
        grows with these, not with the recording.
    progress_bar : bool
    device : {"auto", "cpu", "cuda"} | "cuda:N" | None
        Where a torch model runs (``"auto"``: a visible GPU, else the CPU;
        ``None``: where it was loaded, the CPU). Closed-form models run in
        NumPy on the CPU whatever the device.
    channel_positions : str | None
        When training channels are missing by name: map them by electrode
        position (:func:`eeg2fmri.preprocessing.channels.map_channels_by_position`),
        taking the recording's positions from its digitisation (``"file"``) or
        a named MNE montage (``"biosemi64"``: BioSemi ``A1..B32`` in cap order);
        training channels still missing are interpolated (spherical splines).
        The sidecar's ``ChannelMapping`` records pairs, distances and
        interpolated channels. The recording is then loaded into memory.
    channel_tolerance_mm, min_channel_share : float
        Largest electrode-to-site distance paired (mm) and the smallest share
        of training channels found by name or position (fewer raises).
    dsp_device : {"auto", "cpu", "cuda"} | "cuda:N" | None
        Where the EEG signal processing runs (resampling, band-pass and notch
        filters, re-reference, band-power envelopes and frame means).
        ``"cpu"`` (or ``None``): NumPy, SciPy and MNE, as in training.
        ``"cuda"``: the same computations in torch on that GPU
        (:mod:`eeg2fmri.preprocessing.torch_dsp`; equal to the CPU path to
        float32 rounding, about 1e-4 in standardised feature units), while
        the next chunk is read from disk. ``"auto"`` (default): the GPU that
        ``device`` resolves to, else the CPU path. The sidecar records it
        (``SignalProcessing``).
    first_onset : float | "markers" | None
        Where the volume grid is anchored. ``None`` (default): ``"markers"``
        where the recording has scanner volume markers (two or more, under
        the training's or the usual scanner names), else the first EEG sample
        (``0``). A time in seconds from the first sample: volumes start at
        that time plus whole multiples of ``tr`` (e.g. the first volume of a
        scan, to compare the output with it volume by volume). ``"markers"``:
        at the first scanner volume marker of the recording, found under the
        marker names of the model's training (``model.json["prepare"]["marker"]``).
        The sidecar records it (``VolumeGrid``; with markers also which output
        volumes the first and last marker are, ``marker_volumes``, and how many
        volumes lie before the first and after the last).
    volumes : {"all", "markers"} | None
        ``"all"`` (``None``, the default; ``"markers"`` with ``marker_block``): every volume the recording allows. ``"markers"``
        (with ``first_onset="markers"``): only the volumes from the first to
        the last scanner marker, one per marker of a regular scan: the output
        lines up volume by volume with the measured run (markers before the
        first complete EEG window get none; a warning says how many).
    check_artifacts : bool
        Refuse a recording whose spectrum shows the comb of uncorrected MRI gradient artefacts at the model's TR
        (the check ``prepare`` runs, :func:`~eeg2fmri.preprocessing.artifacts.check_gradient_artifacts`), when the
        model's preparation ran it too: a model trained on clean EEG turns such a recording into noise (a user test:
        region r 0.62-0.82 after ``eeg2fmri clean``, -0.03 to 0.14 on the raw file). ``False`` skips the check.
    dummy_scans : int
        With ``first_onset="markers"``: the first ``dummy_scans`` scanner markers belong to volumes the scanner
        did not save (as ``prepare`` drops them: ``dummy_scans='drop-first'``); they are left out, so that the grid
        is anchored on the first *saved* volume and ``volumes="markers"`` output volume ``k`` lines up with measured
        volume ``k`` (from the first one with a complete EEG window). Count them as the measured run's markers minus
        its volumes.
    interpolate_outliers : bool
        Interpolate (spherical splines, as bad channels) channels whose amplitude is 20 times above or below the median
        channel's (:func:`~eeg2fmri.preprocessing.eeg.amplitude_outliers`: other units, a lifted or dead electrode);
        ``False`` uses them as recorded, with a warning.
    atlas : path-like | nibabel image | array | None
        Integer ROI labels (on the model's grid, or resampled to it like ``evaluate --atlas``): the mean of every ROI's
        voxels is written as region series beside the NIfTI (``NAME_rois.tsv``, one column per label; names from a
        ``<atlas>.tsv`` with ``index`` and ``name`` columns beside a labels file, else the labels) -- what a model of ROI
        targets writes by itself.
    first_marker_volume : int | None
        With ``first_onset="markers"``: the measured run's volume of the recording's first scanner marker (after
        ``dummy_scans``), for a recording cut after the scan began (a preprocessed segment). ``None`` (default): found
        by the layout for a file it places (ds002336/ds002338 ``eeg_pp``: volume 1 or 2, the segment starts after
        volume 0), else 0. The sidecar's ``VolumeGrid`` gives ``measured_volumes``: the measured volumes of the first
        and last output volume, on the scan's volume grid extended both ways (output volumes before the first marker or
        after the last map to indices outside the scan: ``volumes_before_first_marker``/``volumes_after_last_marker``
        of them; ``volumes="markers"`` writes only the scan's).

    marker_block : int | None
        For a recording that holds several scans (blocks of scanner markers parted by pauses, as ``prepare`` finds
        them for one EEG file across several BOLD runs): write the volumes of block ``marker_block`` (1 = the first),
        on that scan's own volume grid (the grid anchored on its first marker, after ``dummy_scans`` of its markers;
        ``volumes="markers"``). Times in the sidecar still count from the file's first sample. ``None`` (default):
        the grid follows the recording's first marker, and several blocks are warned about.
    clean : str | dict | None
        Remove scanner artefacts from the recording first (:func:`eeg2fmri.preprocessing.cleaning.clean_raw`, with the
        volume markers of the model's training): ``"training"`` as the model's training runs were cleaned (its
        ``model.json`` ``prepare.clean``), or steps as ``prepare`` takes them (``"gradient,bcg"``, ``{"gradient": "aas",
        "bcg": "pca_obs"}``). The whole recording is read into memory for it. The sidecar's ``Cleaning`` gives the report.
    notch : float | None
        The recording's power-line frequency in Hz: it and its harmonics are notched, in place of the model's notch
        (``model.json`` ``prepare.notch``) or, where that is empty, the recording's own (``info["line_freq"]``); ``0``: no
        notch. ``None`` (default): as training. When the training runs were notched at several frequencies (sites at 50
        and 60 Hz) and the recording declares none (a bare ``.edf``), nothing is notched and a warning says to give it.

    Returns
    -------
    out : Path
        The BOLD NIfTI, shape ``(X, Y, Z, n_volumes)`` on the training grid
        (its affine, zooms, ``xyzt`` units mm/s and the TR in ``pixdim[4]``),
        float32 in per-voxel standardised (z) units, zero outside the mask.

    Notes
    -----
    Volume ``j`` starts ``StartTime + j * tr`` seconds after the first EEG
    sample (``StartTime`` in the sidecar): the first volume whose whole EEG
    window lies in the recording, placed as in training (the window ends
    with the volume's own acquisition, plus the model's lag).
    """
    if _is_fit_result(model_dir):  # a fitted model in memory: through the model folder it would be saved as
        options = {k: v for k, v in locals().items() if k not in ("eeg", "model_dir", "out")}  # the keyword arguments
        from eeg2fmri.training.fit import save_fit

        with tempfile.TemporaryDirectory(prefix="eeg2fmri-fit-") as tmp:
            folder = save_fit(model_dir, Path(tmp) / "model")
            return _synthesize(eeg, folder, out, model_label=f"(in memory: fit_model result of {model_dir.name!r})", **options)
    return _synthesize(eeg, model_dir, out, tr=tr, overwrite=overwrite, uncertainty=uncertainty, batch_size=batch_size, chunk_seconds=chunk_seconds,
                       pad_seconds=pad_seconds, progress_bar=progress_bar, device=device, channel_positions=channel_positions,
                       channel_tolerance_mm=channel_tolerance_mm, min_channel_share=min_channel_share, dsp_device=dsp_device,
                       first_onset=first_onset, volumes=volumes, dummy_scans=dummy_scans, check_artifacts=check_artifacts,
                       first_marker_volume=first_marker_volume, atlas=atlas, interpolate_outliers=interpolate_outliers, clean=clean,
                       marker_block=marker_block, notch=notch)


def _hrf_basis_note(model: Any) -> dict | None:
    """The HRF basis a model's linear predictions use (``ridge_hrf``'s, or the flagship's linear path where its blend weight
    is above 0) and what it means for timing (user test 56: a region whose HRF peaked at 6.2-6.9 s came out 0.5-2.5 s early
    from a canonical-basis model, without a word); None for other models."""
    basis = getattr(model, "hrf_", None)
    if basis is None and hasattr(model, "linear_hrf") and float(getattr(model, "ridge_weight", 0.0)) > 0:
        basis = model.linear_hrf
    if basis not in ("canonical", "basis", "lags"):
        return None
    meaning = {"canonical": "one canonical double-gamma HRF (peak about 5 s): a region whose response peaks later comes out early "
                            "by about the difference (earlier: late)",
               "basis": "the canonical HRF and its time and dispersion derivatives: peak shifts of about +/-1 s are followed, "
                        "larger ones come out early or late",
               "lags": "one weight per lag (FIR): each output's response shape and delay were learnt from its training BOLD"}[basis]
    return {"basis": basis, "meaning": meaning}


def _clean_like_training(eeg: Any, clean: str | dict, cfg: PrepareConfig, tr: float, where: str, model_dir: Path) -> tuple[Any, dict]:
    """The recording with scanner artefacts removed (a corrected copy, in memory) and the cleaning report (JSON-ready)."""
    from eeg2fmri.preprocessing.cleaning import clean_for_prepare, parse_clean_steps

    if isinstance(clean, str) and clean.strip().lower() == "training":
        if not cfg.clean:
            raise Eeg2fmriInputError(f"{Path(model_dir) / 'model.json'}: clean='training', but the model's training runs were not cleaned "
                                     "(prepare.clean is empty); pass the steps (clean='gradient,bcg', --clean gradient,bcg) or leave clean out.")
        opts = dict(cfg.clean)
        if opts.get("bcg") == "pca_obs" and "bcg_crossfade" not in opts:  # a model prepared before session 38: MNE's PCA-OBS
            opts["bcg_crossfade"] = None
            logger.info("%s: the model's training runs were cleaned before PCA-OBS was cross-faded: MNE's apply_pca_obs, as then", where)
    else:
        why = ""
        try:
            opts = parse_clean_steps(clean) if isinstance(clean, str) else clean if isinstance(clean, dict) else None
        except Eeg2fmriInputError as err:
            opts, why = None, f" ({err})"
        if not opts:
            raise Eeg2fmriInputError(f"synthesize: clean: expected 'training', steps such as 'gradient,bcg' or a mapping such as "
                                     f"{{'gradient': 'aas'}}, got {clean!r}{why}.")
    # the volume markers of the model's training (prepare's marker names), as prepare cleaned its runs
    cleaned, report = clean_for_prepare(read_eeg(eeg, preload=False), opts, tr=tr, marker=cfg.marker, onsets=np.zeros(0), where=where)
    logger.info("%s: cleaned (%s) before synthesis", where, ", ".join(f"{k} {v}" for k, v in opts.items() if k in ("gradient", "bcg") and v))
    return cleaned, {"steps": {k: v for k, v in opts.items() if v is not None}, "report": report}


def _event_rows(raw, cfg: PrepareConfig, starts: np.ndarray, flen: float, where: str, *, reads_events: bool = True) -> tuple[np.ndarray, dict[str, int]]:
    """The event regressors of a model trained with the prepare option ``events``, on the streamed frames ``starts``
    (s from ``raw``'s first sample): ``(n_rows, n_conditions)`` float32, and the events of each condition found. A
    condition with no events in the recording is warned where the model reads the regressors (its regressor is zero: the
    model predicts as for no stimulus)."""
    from eeg2fmri.preprocessing.events import (
        NO_DURATION_S,
        event_regressors,
        event_times,
        merged_events,
    )

    times = event_times(raw)
    rows = event_regressors(times, cfg.events, starts, flen, durations=cfg.event_durations)
    # each condition's events as the regressors count them (one event under two names once, with the longer duration)
    merged = {c: merged_events(times, names) for c, names in cfg.events.items()}
    for c, d in (cfg.event_durations or {}).items():  # block markers without their durations (a .vhdr without events.tsv): said
        du = merged[c][1]
        if len(du) and (du <= NO_DURATION_S).any():
            logger.info("%s: %d event(s) of condition %r carry no duration here: taken as blocks of %g s, the training's", where,
                        int((du <= NO_DURATION_S).sum()), c, d)
    counts = {c: int(len(on)) for c, (on, _) in merged.items()}
    missing = [c for c, n in counts.items() if not n]
    if missing and reads_events:
        logger.warning("%s: the model reads event regressors of condition(s) %s (marker names %s), and this recording holds none of "
                       "their events: those regressors are zero, so the synthesised BOLD has no response to them. If the recording "
                       "names its stimuli otherwise, rename its annotations (raw.annotations.rename) to the training's names.", where,
                       missing, sorted({n for c in missing for n in cfg.events[c]}))
    return rows, counts


def _say_notch(where: str, notch: float | None, line: float | None, trained: dict | None, *, given: bool, wsf: float = math.inf) -> None:
    """Warn when the recording is left unnotched although the model's training runs were notched: the model's notch is
    empty (its training runs were notched at several frequencies, or at each recording's own) and the recording declares
    no power-line frequency (a bare ``.edf``/``.vhdr``); ``trained`` is model.json's ``training_notch_hz``."""
    if given or notch is not None or line:
        return
    # (a line at or above the work rate's Nyquist frequency - 1 Hz was never filtered: lowrate_plan notches nothing there)
    used = {k: int(n) for k, n in (trained or {}).items() if k != "none" and float(k) < wsf / 2 - 1}
    if not used:
        return
    runs = "; ".join(f"{k} Hz in {n} run(s)" for k, n in sorted(used.items(), key=lambda kv: float(kv[0])))
    logger.warning("%s: the recording declares no power-line frequency (MNE info['line_freq']; a BIDS sidecar's PowerLineFrequency), so no "
                   "notch filter is applied, but the model's training runs were notched (%s). Give the recording's line frequency: "
                   "synthesize(..., notch=50) (--notch 50), or 0 to keep it unnotched and silence this.", where, runs)


def _is_fit_result(value) -> bool:
    return all(hasattr(value, a) for a in ("model", "spec", "name", "hparams")) and not isinstance(value, (str, os.PathLike))


def _synthesize(eeg, model_dir, out, *, model_label: str | None = None, tr, overwrite, uncertainty, batch_size, chunk_seconds, pad_seconds,
                progress_bar, device, channel_positions, channel_tolerance_mm, min_channel_share, dsp_device, first_onset, volumes,
                dummy_scans, check_artifacts: bool = True, first_marker_volume: int | None = None, atlas: Any = None,
                interpolate_outliers: bool = True, clean: str | dict | None = None, marker_block: int | None = None,
                notch: float | None = None) -> Path:
    """:func:`synthesize` from a model folder (``model_label`` names the model in the sidecar instead of the folder)."""
    import mne
    import nibabel as nib

    if isinstance(out, (str, os.PathLike)) and Path(out).suffix.lower() == ".tsv":  # region series only (user test 26)
        kw = dict(tr=tr, uncertainty=False, batch_size=batch_size, chunk_seconds=chunk_seconds, pad_seconds=pad_seconds,
                  progress_bar=progress_bar, device=device, channel_positions=channel_positions, channel_tolerance_mm=channel_tolerance_mm,
                  min_channel_share=min_channel_share, dsp_device=dsp_device, first_onset=first_onset, volumes=volumes,
                  dummy_scans=dummy_scans, check_artifacts=check_artifacts, first_marker_volume=first_marker_volume, atlas=atlas,
                  interpolate_outliers=interpolate_outliers, clean=clean, marker_block=marker_block, notch=notch)
        return _region_file_only(eeg, model_dir, Path(out), overwrite=overwrite, **kw)
    volumes_given = volumes is not None  # (None: "all", or "markers" with marker_block)
    volumes = "all" if volumes is None else volumes
    check_instance(eeg, (str, os.PathLike, mne.io.BaseRaw), "eeg", where="synthesize",
                   fix="pass an EEG file (any format MNE reads) or an mne.io.Raw; the order is synthesize(eeg, model_dir, out)")
    check_instance(out, (str, os.PathLike), "out", where="synthesize", fix="pass the output path, e.g. 'synth_bold.nii.gz'")
    bold_out, sidecar, unc_out = output_paths(out)
    batch_size = check_positive_int(batch_size, "batch_size", where="synthesize")
    if channel_positions not in (None, "file"):  # a misspelt montage is refused even when every channel matches by name
        from eeg2fmri.preprocessing.channels import _standard_montage

        _standard_montage(channel_positions)
    chance_out = bold_out.with_name(bold_out.name.split(".")[0] + "_abovechance_mask.nii.gz")
    for p in (bold_out, sidecar, chance_out) + ((unc_out,) if uncertainty else ()):
        if p.exists() and not overwrite:
            raise Eeg2fmriInputError(f"{p}: output already exists; choose another path or pass overwrite=True (--overwrite).")
    # an above-chance mask an earlier synthesis wrote beside this output goes with the output it belonged to (a review)
    stale_chance = False
    if overwrite and chance_out.exists() and sidecar.exists():
        try:
            stale_chance = (json.loads(sidecar.read_text(encoding="utf-8")).get("AboveChanceMask") or {}).get("file") == chance_out.name
        except (OSError, ValueError, AttributeError):
            stale_chance = False
    # an uncertainty file an earlier synthesis wrote beside this output (its sidecar names it) goes with the output it
    # belonged to when that output is overwritten; one this run does not rewrite would otherwise pair with the new output
    stale_unc = False
    if overwrite and unc_out.exists() and sidecar.exists():
        try:
            stale_unc = json.loads(sidecar.read_text(encoding="utf-8")).get("UncertaintyFile") == unc_out.name
        except (OSError, ValueError):
            stale_unc = False
    dev = resolve_device(device, where="synthesize: device") if device is not None else None
    dsp_dev = _dsp_device(dsp_device, dev)
    with step("load model", sync=dev):
        model_dir = resolve_model_dir(model_dir)
        lm = load_model(model_dir)
        place_model(lm.model, dev)
    meta, spec = lm.meta, lm.spec
    cfg = PrepareConfig.from_dict(meta["prepare"])
    if notch is not None:  # the power-line frequency given for this recording (0: none), in place of the model's / the recording's
        if isinstance(notch, bool) or not isinstance(notch, (int, float, np.integer, np.floating)) or not math.isfinite(notch) or notch < 0 or 0 < notch < 10:
            raise Eeg2fmriInputError(f"synthesize: expected notch to be the power-line frequency in Hz (50 or 60) or 0 for no notch, got {notch!r}.")
        cfg = dataclasses.replace(cfg, notch=float(notch))
    kind = spec.input_kind
    if kind != cfg.representation:
        raise Eeg2fmriInputError(f"{Path(model_dir) / 'model.json'}: the model takes {kind!r} windows but its preprocessing says {cfg.representation!r}; re-save the model.")
    frame_based = get_representation(kind).frame_based
    where = str(eeg) if not hasattr(eeg, "info") else "EEG (Raw object)"
    tr_train = float(spec.tr)
    m = int(cfg.frames_per_tr)
    flen = tr_train / m
    tr_out = tr_train if tr is None else check_positive(tr, "tr", where="synthesize", fix="pass the output volume spacing in seconds")
    q = _hop_for(tr_out, tr_train, flen, kind)
    n_frames = int(meta["window"]["n_frames"])
    lag = int(meta["window"].get("lag", 0))
    mask = lm.mask
    n_vox = int(mask.sum())
    # a model of ROI targets (trained with an atlas): its outputs are painted on the voxels of their ROIs in the NIfTI and
    # written as region series beside it (NAME_rois.tsv)
    rois = meta.get("rois")
    n_model = int(np.prod(lm.spec.output_shape)) if len(lm.spec.output_shape) == 1 else n_vox
    if n_model != n_vox and not (rois and "weights" in rois and len(rois.get("names", [])) == n_model):
        raise Eeg2fmriInputError(f"{model_dir}: the model predicts {n_model} outputs but its mask has {n_vox} voxels and model.json records no "
                                 "atlas for them; re-train it with this version of eeg2fmri (it records the atlas of ROI targets).")

    # a model of region tables (prepare's targets were region series, no grid): its NIfTI is a stand-in with one voxel per
    # region along the first axis; the series are written as NAME_rois.tsv
    table = isinstance(rois, dict) and rois.get("source") == "table"
    regions = n_model != n_vox or table  # outputs that are regions (of an atlas, or of tables)

    def on_voxels(a: np.ndarray) -> np.ndarray:  # (b, n_model) -> (b, n_vox)
        if n_model == n_vox:
            return a
        from eeg2fmri.datasets.prepared import rois_to_voxels

        return rois_to_voxels(rois, a, n_vox).astype(np.float32, copy=False)

    roi_rows: list[np.ndarray] = []
    side_written: list[Path] = []  # files beside the image, removed again if the image is not finished
    atlas_lab, atlas_ids, atlas_names = None, None, None
    if atlas is not None:  # region series of a voxel model's output (user test 18: extracted by hand with nilearn)
        if regions:
            raise Eeg2fmriInputError(f"{model_dir}: the model's outputs are already the ROIs of its own {'region tables' if table else 'atlas'} ({rois.get('source')}); "
                                     "it writes their series by itself (NAME_rois.tsv): drop the atlas.")
        from eeg2fmri.preprocessing.atlas import atlas_roi_names, load_labels

        atlas_lab = load_labels(atlas, mask, lm.affine)
        atlas_ids = np.array([v for v in np.unique(atlas_lab) if v != 0])
        if not len(atlas_ids):
            raise Eeg2fmriInputError(f"{atlas}: no ROI label inside the model's mask; pass labels on (or overlapping) the model's grid.")
        atlas_names = atlas_roi_names(atlas, atlas_ids)

    def atlas_means(rows: np.ndarray) -> np.ndarray:  # (b, n_vox) -> (b, n_rois)
        return np.stack([rows[:, atlas_lab == v].mean(1) for v in atlas_ids], 1).astype(np.float32)
    unc_fns = uncertainty_methods(lm.model) if uncertainty is not False else []
    if not uncertainty:  # the ensemble spread and MC dropout cost many full outputs per window: only on request
        unc_fns = [(fn, meaning) for fn, meaning in unc_fns if getattr(fn, "__name__", "") not in ("predict_ensemble", "mc_dropout")]
    from eeg2fmri.models.calibration import CALIBRATION_NAME, load_calibration

    calib = load_calibration(model_dir, n_model) if uncertainty is not False else None
    if uncertainty and not unc_fns and calib is None:
        raise Eeg2fmriInputError(f"{model_dir}: {meta['model']} provides no uncertainty (no predict_uncertainty, predict_mc, predict_ensemble or dropout layers, and no "
                                 f"{CALIBRATION_NAME} with per-voxel scales); re-train with eeg2fmri train (it writes {CALIBRATION_NAME}) "
                                 "or omit --uncertainty.")
    temperature = None if calib is None else calib.get("temperature")
    legacy = calib is not None and temperature is not None and "scale" not in calib
    if legacy and unc_fns:  # written before session 15: the own scale was never compared with the residual scale
        logger.warning("%s: %s predates the choice between the model's own scale and the per-voxel validation residual scale "
                       "(the better predictor of the validation errors); the own scale is written. Re-run eeg2fmri train to choose.",
                       model_dir, CALIBRATION_NAME)
    own_set_aside = calib is not None and temperature is None and bool(unc_fns)
    if own_set_aside:
        # the calibration chose the per-voxel residual scale (the model's own scale predicted the validation errors worse,
        # or was ~0): not the model's uncalibrated spread
        logger.info("%s: uncertainty from %s's per-voxel residual scale (%s)", where, CALIBRATION_NAME,
                    calib.get("own_scale_not_chosen") and "the model's own scale predicted the validation errors worse"
                    or calib.get("own_scale_unavailable") or "no temperature for the model's own scale")
        unc_fns = []

    cleaning = None
    if clean is not None:  # (user test 20: an EEG-only in-scanner recording had to be cleaned in a separate step, where it
        # could be cleaned otherwise than the training runs were)
        eeg, cleaning = _clean_like_training(eeg, clean, cfg, tr_train, where, model_dir)
    with step("open EEG"):
        raw = read_eeg(eeg, preload=False)
    from eeg2fmri.io.eeg import check_continuous

    # the output's volumes are a regular grid: across a join every later volume would be misplaced in time
    check_continuous(raw, where, "; expected one continuous recording. Synthesize each continuous piece separately (raw.crop(tmin, tmax) "
                                 "between the joins).")
    if first_onset is None:  # by default: on the scanner markers where the recording has them
        first_onset = _default_first_onset(raw, cfg, where)
    if not isinstance(dummy_scans, (int, np.integer)) or isinstance(dummy_scans, bool) or dummy_scans < 0:
        raise Eeg2fmriInputError(f"{where}: expected dummy_scans to be a whole number >= 0, got {dummy_scans!r}; pass the number of scanner "
                                 "markers before the first saved volume (markers minus volumes of the measured run).")
    if dummy_scans and (not isinstance(first_onset, str) or first_onset.strip().lower() != "markers"):
        raise Eeg2fmriInputError(f"{where}: dummy_scans={dummy_scans} drops scanner markers, so it needs first_onset='markers' "
                                 "(--first-onset markers); without markers, give the first saved volume's time (--first-onset SECONDS).")
    if first_marker_volume is not None:
        if not isinstance(first_marker_volume, (int, np.integer)) or isinstance(first_marker_volume, bool) or first_marker_volume < 0:
            raise Eeg2fmriInputError(f"{where}: expected first_marker_volume to be a whole number >= 0, got {first_marker_volume!r}; pass the "
                                     "measured run's volume of the recording's first scanner marker (e.g. 1 for a segment cut after volume 0).")
        if not isinstance(first_onset, str) or first_onset.strip().lower() != "markers":
            raise Eeg2fmriInputError(f"{where}: first_marker_volume={first_marker_volume} numbers the scanner markers, so it needs "
                                     "first_onset='markers' (--first-onset markers).")
    if marker_block is not None:  # one scan of a session recording: its markers anchor the grid, its volumes are written
        if isinstance(marker_block, bool) or not isinstance(marker_block, (int, np.integer)) or marker_block < 1:
            raise Eeg2fmriInputError(f"{where}: expected marker_block as a whole number >= 1 (1 = the recording's first block of scanner "
                                     f"markers), got {marker_block!r}; e.g. --marker-block 2.")
        if first_onset is not None and not (isinstance(first_onset, str) and first_onset.strip().lower() == "markers"):
            raise Eeg2fmriInputError(f"{where}: marker_block={marker_block} picks a block of scanner markers, so the volumes are timed by "
                                     f"them; expected no first_onset (or 'markers'), got {first_onset!r}: drop --first-onset.")
        if volumes == "all" and volumes_given:
            raise Eeg2fmriInputError(f"{where}: marker_block={marker_block} writes that scan's volumes only; expected volumes='markers' (the "
                                     "default with marker_block), got 'all': drop --volumes.")
        first_onset, volumes = "markers", "markers"
    anchor, phase, marker_t = _grid_phase(raw, first_onset, tr_out, cfg, where, dummy_scans=int(dummy_scans),
                                          frame_len=flen if frame_based else None, max_step=None if frame_based else tr_train,
                                          marker_block=marker_block)
    if marker_t is not None and len(marker_t):
        marker_volume_source = "given" if first_marker_volume is not None else None
        src = eeg if isinstance(eeg, (str, os.PathLike)) else next(iter(getattr(eeg, "filenames", None) or ()), None)
        if first_marker_volume is None and src is not None:
            from eeg2fmri.io.layouts import segment_marker_volume

            found = segment_marker_volume(src, raw, float(marker_t[0]))
            if found is not None:
                first_marker_volume, marker_volume_source = found
                logger.info("%s: %s (pass first_marker_volume / --first-marker-volume to override)", where, marker_volume_source)
        anchor["first_marker_volume"] = int(first_marker_volume or 0)
        anchor["first_marker_volume_source"] = marker_volume_source or (
            "assumed: no layout places this recording and first_marker_volume was not given (right when the recording began "
            "before the scan's first saved volume" + (f", after the {dummy_scans} dummy-scan markers dropped)" if dummy_scans else ")"))
    if volumes not in ("all", "markers"):
        raise Eeg2fmriInputError(f"{where}: expected volumes 'all' or 'markers', got {volumes!r}.")
    if volumes == "markers" and marker_t is None:
        raise Eeg2fmriInputError(f"{where}: volumes='markers' needs first_onset='markers' (--first-onset markers): the output keeps the "
                                 "volumes of the scanner markers, so they must anchor the grid.")
    from eeg2fmri.io.eeg import bad_spans

    bad = bad_spans(raw)  # seconds from the recording's first sample (before the crop to the grid's phase)
    if phase > 0:  # the grid starts `phase` s after the first sample: the recording is read from there
        raw = raw.copy().crop(tmin=phase)
    sf = float(raw.info["sfreq"])
    chmap = None
    try:
        picks, extra = match_channels(list(raw.ch_names), [str(c) for c in spec.ch_names], where)
    except Eeg2fmriInputError as err:
        from eeg2fmri.preprocessing.channels import default_positions, map_channels_by_position

        auto = channel_positions is None
        if auto:
            # as prepare's channels option does (user test 30: prepare mapped T3 -> T7 by their 10-05 sites, synthesize refused
            # the same recording): the recording's own positions, else the 10-05 sites by name
            channel_positions = default_positions(raw)
        how = "the recording's own positions" if channel_positions == "file" else f"the 10-05 sites of their names ({channel_positions})"
        try:
            raw, chmap = map_channels_by_position(raw, [str(c) for c in spec.ch_names], positions=channel_positions,
                                                  tolerance_mm=channel_tolerance_mm, min_share=min_channel_share, where=where)
        except Eeg2fmriInputError as err2:
            if not auto:
                raise
            why = str(err2).split(": ", 1)[-1].split(". ")[0]
            raise Eeg2fmriInputError(f"{err} Mapped by {how} as prepare does, {why}: name the montage it was recorded with (e.g. "
                                     "--channel-positions biosemi64; channel_positions= in Python).") from None
        if auto:
            interp = list(getattr(chmap, "interpolated", []) or [])
            logger.warning("%s: the recording's channels differ from the model's; mapped by %s as prepare does (sidecar "
                           "ChannelMapping)%s; --channel-positions names the cap, --channel-tolerance-mm the distance allowed", where, how,
                           # (user test 44: the Python warning did not name the missing channel it interpolated)
                           f"; interpolated from their neighbours: {', '.join(map(str, interp))}" if interp else "")
        picks, extra = match_channels(list(raw.ch_names), [str(c) for c in spec.ch_names], where)
        extra = chmap.ignored
    if extra:
        logger.info("%s: ignoring %d channel(s) the model was not trained on: %s", where, len(extra), ", ".join(extra[:20]))
    renamed = {p: w for p, w in zip(picks, spec.ch_names) if p != w}
    if chmap is not None:  # the mapping renamed the recording's channels already: its own record says which fed which
        renamed = {**chmap.renamed, **{rec: w for w, rec in chmap.by_position.items() if rec != w}, **renamed}
    bad_used = [c for c in picks if c in raw.info["bads"]]
    bads_interpolated: list[str] = []
    if bad_used:  # channels the recording marks bad are interpolated at their sites, as prepare's channel mapping does
        raw, chmap, picks, extra, bads_interpolated, why = _interpolate_bads(raw, spec, chmap, picks, extra, bad_used, channel_positions,
                                                                              channel_tolerance_mm, min_channel_share, where)
        if bads_interpolated:
            logger.warning("%s: channel(s) %s are marked bad in the recording; interpolated from the others (spherical splines, positions %r)",
                           where, bads_interpolated, chmap.positions)
            bad_used = []
        else:
            logger.warning("%s: channel(s) %s are marked bad in the recording but the model needs them; they are used as recorded, since "
                           "they could not be interpolated: %s", where, bad_used, why)
    art = (_refuse_gradient_artifacts(raw, picks, tr_train, cfg, where, meta.get("training_gradient_artifacts"))
           if check_artifacts and cfg.check_artifacts else None)
    from eeg2fmri.preprocessing.eeg import amplitude_outliers, implausible_scale, outlier_message

    scale = implausible_scale(raw, picks)
    if scale:
        logger.warning("%s: %s", where, scale)
    outliers = amplitude_outliers(raw, picks)
    outliers_interpolated: list[str] = []
    ratio_of: dict[str, float] = {}
    if outliers and interpolate_outliers:
        # a channel 20x off the others (other units, a lifted or dead electrode) is interpolated like a bad one (user test 18:
        # one channel x1000 took a region's r from 0.53 to -0.02, with only a warning)
        out_ch = [c for c in picks if c in outliers]
        ratio_of = {w: outliers[c] for c, w in zip(picks, spec.ch_names) if c in outliers}  # by training name
        marked = raw.copy()
        marked.info["bads"] = sorted(set(marked.info["bads"]) | set(out_ch), key=marked.ch_names.index)
        new = _interpolate_bads(marked, spec, chmap, picks, extra, out_ch, channel_positions, channel_tolerance_mm, min_channel_share, where)
        if new[4]:
            raw, chmap, picks, extra, outliers_interpolated, _ = new
            logger.warning("%s: %s -- %s interpolated from the other channels (spherical splines, positions %r); interpolate_outliers=False "
                           "(--keep-outlying-channels) uses them as recorded", where,
                           outlier_message(outliers).split("; through the average reference")[0], outliers_interpolated, chmap.positions)
        else:
            logger.warning("%s: %s They could not be interpolated: %s", where, outlier_message(outliers), new[5])
    elif outliers:  # used as recorded, but said
        logger.warning("%s: %s", where, outlier_message(outliers))
    # the training work rate: features must be computed at the same rate as in training
    train_sf = float(spec.sfreq) if frame_based else math.inf
    wsf_train = work_rate(train_sf, cfg)
    if sf / 2 <= cfg.needed_fmax():
        raise Eeg2fmriInputError(
            f"{where}: sampled at {sf:g} Hz, but the model's features use EEG up to {cfg.needed_fmax():g} Hz (the training work rate is "
            f"{wsf_train:g} Hz); use a recording sampled above {2 * cfg.needed_fmax():g} Hz."
        )
    # "resampled": the recording's rate differs from the training recordings' (for raw models, whose
    # DataSpec keeps only the raw rate, from the work rate); the usual work-rate conversion is not reported
    resampled = abs(sf - (train_sf if math.isfinite(train_sf) else wsf_train)) > 1e-6 * sf
    if resampled:
        logger.info("%s: sampled at %g Hz (training recordings: %g Hz, the lowest rate among them); resampled to the training work rate %g Hz", where, sf,
                    train_sf if math.isfinite(train_sf) else wsf_train, wsf_train)
    line = raw.info.get("line_freq")
    _say_notch(where, cfg.notch, line, meta.get("training_notch_hz"), given=notch is not None, wsf=wsf_train)
    if notch is None and cfg.notch is not None and line and abs(float(line) - float(cfg.notch)) > 0.5:
        logger.warning("%s: the recording declares a %g Hz power line, but the model's training runs were notched at %g Hz, which "
                       "synthesis applies as training did; the recording's line noise is not notched (the sidecar records NotchFrequency).",
                       where, float(line), float(cfg.notch))
    duration = raw.n_times / sf
    need = (n_frames - 1) * flen + flen if frame_based else n_frames / float(cfg.raw_sfreq)
    if duration < need + max(0, lag) * (flen if frame_based else 1.0 / float(cfg.raw_sfreq)):
        pad = _trailing_skip(raw, duration)
        raise Eeg2fmriInputError(
            f"{where}: the recording lasts {duration:.1f} s" + (f" ({pad:.1f} s of it at the end marked BAD_ACQ_SKIP: a file's "
                                                                 "padding, no data)" if pad else "")
            + f" but one EEG window of the model needs {need:.1f} s; use a longer recording (or a model trained with a shorter window)."
        )
    out_dir = bold_out.absolute().parent
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out_dir, bold_out.name.split(".")[0])
    with tempfile.TemporaryDirectory(prefix=temp_prefix(bold_out.name.split(".")[0], "synth"), dir=out_dir) as tmp:
        st = stream_representation(raw, cfg, tr=tr_train, picks=picks, hop=None if not frame_based else flen / q, work_sfreq=wsf_train,
                                   chunk_seconds=chunk_seconds, pad_seconds=pad_seconds, folder=tmp, progress_bar=progress_bar, where=where,
                                   torch_device=dsp_dev)
        feats = st.features
        ev_rows, ev_counts, ev_reads = None, None, False
        if getattr(spec, "event_names", ()):  # the model reads event regressors: from this recording's markers, on the same frames
            reads = getattr(lm.model, "_reads", None)  # (ridge_hrf, the flagship: (EEG, events) -- its network reads no events)
            ev_reads = bool(reads[1]) if reads is not None else True
            ev_rows, ev_counts = _event_rows(raw, cfg, st.starts, flen, where, reads_events=ev_reads)
            if reads is not None and not reads[0] and not any(ev_counts.values()):  # (user test 51: a constant NIfTI, exit 0)
                raise Eeg2fmriInputError(f"{where}: expected events of the model's conditions {list(ev_counts)} (marker names "
                                         f"{sorted({n for v in cfg.events.values() for n in v})}): the model reads only them (a stimulus "
                                         "GLM) and this recording holds none, so its output would be constant; rename the recording's "
                                         "stimulus annotations to those names (raw.annotations.rename), or use a model that reads the EEG.")
        if get_representation(kind).rate_dependent_freqs and spec.freqs is not None and (len(st.freqs) != len(spec.freqs) or not np.allclose(st.freqs, spec.freqs, atol=1e-6)):
            raise Eeg2fmriInputError(f"{where}: the STFT bins ({len(st.freqs)}) differ from the model's ({len(spec.freqs)}); use a recording at the training sampling rate.")
        # windows: indices of the rows of every output volume's window
        if not frame_based:
            rsf = float(cfg.raw_sfreq)
            n_rows = len(feats)
            j = np.arange(int(math.floor(st.duration / tr_out)) + 2)
            ends = np.round((j * tr_out + tr_train) * rsf).astype(np.int64) + lag
            ok = (ends - n_frames >= 0) & (ends <= n_rows)
            j, ends = j[ok], ends[ok]
            onsets = j * tr_out
        else:
            first_end = q * (n_frames - 1)
            ends = np.arange(first_end, len(feats)) + 1  # exclusive end (hop index + 1) of each window's last frame
            onsets = st.starts[ends - 1] + flen - lag * flen - tr_train
            if _frames_per_step(tr_out, flen) > 1:  # a step of several frames: the windows whose volumes lie on the output grid
                on_grid = np.abs(onsets / tr_out - np.round(onsets / tr_out)) < 1e-6
                ends, onsets = ends[on_grid], onsets[on_grid]
        if marker_t is not None and len(onsets):
            # output volume j <-> marker k: the grid is anchored on the first marker, so marker times fall on grid points
            start = float(onsets[0]) + phase
            mj = np.round((marker_t - start) / tr_out).astype(np.int64)
            first_j, last_j = int(mj[0]), int(mj[-1])
            n_all = len(ends)
            anchor.update(n_markers=int(len(marker_t)), marker_volumes=[first_j, last_j],
                          volumes_before_first_marker=max(0, min(first_j, n_all)), volumes_after_last_marker=max(0, min(n_all - 1 - last_j, n_all)))
            # output volumes per marker interval (2 with --tr half the scan's TR: user test 15 counted 299 markers missing);
            # a whole number within 1 % (as the grid check above), else markers and volumes do not line up one to one
            step_m = float(np.median(np.diff(marker_t))) if len(marker_t) > 1 else tr_out
            ratio = step_m / tr_out
            whole = int(round(ratio)) >= 1 and abs(ratio - round(ratio)) <= 0.01 * max(1.0, ratio)
            if whole:
                per_marker = int(round(ratio))
                missing = (last_j - first_j) // per_marker + 1 - len(np.unique(mj))
                if per_marker != 1:  # marker k is output volume first_j + per_marker * k
                    anchor["volumes_per_marker"] = per_marker
            else:  # missing markers from the gaps between them; no volume formula
                missing = int(np.sum(np.maximum(np.round(np.diff(marker_t) / step_m) - 1, 0)))
                anchor["volumes_per_marker"] = round(ratio, 4)
            if missing > 0 and anchor.get("marker_blocks", 1) == 1:  # lost markers: their volumes lie on the regular grid all the same
                # (several scans: the gaps are pauses between them, not lost markers -- said above; user test 50)
                anchor["markers_missing"] = int(missing)
                logger.warning("%s: %d scanner marker(s) missing between the first and the last (no marker a TR after the previous one); "
                               "their volumes are written on the regular grid, so output volume k stays the scan's volume k", where, missing)
            if first_j < 0:
                early = int((mj < 0).sum())  # markers, not output steps (a finer --tr has several steps per marker)
                anchor["markers_without_volume"] = early
                with_volume = marker_t[mj >= 0]
                logger.warning("%s: the first %d scanner marker(s) come before the first volume whose whole EEG window lies in the "
                               "recording (the model needs %.1f s of EEG up to the end of a volume's acquisition; on the markers' grid the first "
                               "volume with a whole window starts at %.2f s; %s); they get no output volume", where, early, need, start,
                               f"the first marker with a volume is at {float(with_volume[0]):.2f} s" if len(with_volume) else "no marker has one")
            if volumes == "markers":
                keep = (np.arange(n_all) >= first_j) & (np.arange(n_all) <= last_j)
                ends, onsets = ends[keep], np.asarray(onsets)[keep]
                lo = max(first_j, 0)  # indices into the written volumes from here on
                first_j, last_j = first_j - lo, last_j - lo
                anchor.update(volumes="markers: only the volumes of the scanner markers' span", marker_volumes=[first_j, last_j],
                              volumes_before_first_marker=0, volumes_after_last_marker=0)
            # output volume j is measured volume j - first_j + first_marker_volume (the first marker's volume)
            if "volumes_per_marker" not in anchor:  # one output volume per marker (a finer --tr has no such formula)
                m0 = int(anchor["first_marker_volume"]) - first_j
                anchor["measured_volumes"] = [m0, m0 + len(ends) - 1]
                # an events.tsv of the scan is timed from its first saved volume: this shift times it from this file's volume 0
                # (user test 23: a task GLM with the events as they are found nothing; shifted by -10 s it found the regions)
                anchor["events_shift_s"] = round(-m0 * float(tr_out), 6)
            logger.info("%s: scanner markers %d: output volumes %d..%d of %d%s", where, len(marker_t), first_j, last_j, len(ends),
                        "" if volumes == "markers" else f" ({anchor['volumes_before_first_marker']} before the first marker, "
                        f"{anchor['volumes_after_last_marker']} after the last; --volumes markers keeps only the marked ones)")
        n_out = len(ends)
        if n_out <= 0:
            if marker_block is not None:  # (user test 53: a short test scan at the recording's start read as "too short")
                raise Eeg2fmriInputError(f"{where}: marker_block={marker_block}: expected volumes with a whole EEG window ({need:.1f} s of EEG "
                                         "up to each volume's end), found none: every volume of that block comes before the first whole "
                                         "window; pick another block (--marker-block).")
            raise Eeg2fmriInputError(f"{where}: too short for one window; need at least {need:.1f} s of EEG.")
        # the first output volume's index on the grid whose volume 0 starts at the anchor (user test 7: --first-onset 10 wrote
        # volumes from 17.2 s, and only StartTime told which): StartTime = anchor_time_s + first_volume * RepetitionTime
        anchor["first_volume"] = int(round((float(onsets[0]) + phase - float(anchor["anchor_time_s"])) / tr_out))
        if anchor["first_volume"] > 0 and anchor["anchor"] == "first_onset":
            # (user test 31: compared volume by volume with the scan from first_onset, every volume was 3 TRs off: only the
            # sidecar and the NIfTI toffset said where output volume 0 lies)
            k = anchor["first_volume"]
            logger.warning("%s: output volume 0 is volume %d of the scan timed from first_onset %.2f s (at %.2f s): the %d volume(s) "
                           "before it lack a whole EEG window (%.1f s of EEG up to the end of a volume's acquisition), so output volume "
                           "j is scan volume j + %d (sidecar VolumeGrid.first_volume, StartTime). To compare volume by volume, drop the "
                           "scan's first %d volumes (nibabel: img.slicer[..., %d:]).", where, k, float(anchor["anchor_time_s"]),
                           float(onsets[0]) + phase, k, need, k, k, k)
        win_end = np.asarray(onsets, float) + phase + tr_train + lag * (flen if frame_based else 1.0 / float(cfg.raw_sfreq))
        over_bad = np.flatnonzero(((win_end[:, None] - need < bad[None, :, 1]) & (win_end[:, None] > bad[None, :, 0])).any(1)) if len(bad) else np.array([], int)
        if len(over_bad):
            logger.warning("%s: %d of %d output volumes are computed from EEG the recording marks bad (BAD_* annotations); they are "
                           "written like the others and listed in the sidecar (VolumesOverBadEEG)", where, len(over_bad), n_out)
        win_elems = int(np.prod(spec.input_shape))
        # windows fetched and volumes written per batch are bounded (memory independent of the recording)
        bs = max(1, min(batch_size, _BATCH_ELEMS // max(win_elems, 1), _VOLUME_ELEMS // int(np.prod(mask.shape))))
        zooms = tuple(float(z) for z in np.sqrt((lm.affine[:3, :3] ** 2).sum(0)))
        template = nib.load(Path(model_dir) / "mask.nii.gz").header
        # toffset: the first volume's onset, seconds after the first EEG sample (the sidecar's grid anchor, in the header)
        hdr = nifti_header(mask.shape + (n_out,), lm.affine, zooms, tr_out, template=template, toffset=float(onsets[0]) + phase)
        amp = [0, None, None]  # rows, sum, sum of squares per output: the synthesised series' SD (user test 45: 3e-5, unsaid)

        def track(rows: Any) -> None:
            a = np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)
            amp[0] += len(a)
            amp[1] = a.sum(0) if amp[1] is None else amp[1] + a.sum(0)
            amp[2] = (a * a).sum(0) if amp[2] is None else amp[2] + (a * a).sum(0)

        with contextlib.ExitStack() as stack:
            w_bold = stack.enter_context(StreamingNifti(bold_out, hdr, overwrite=overwrite, sequential=True))
            w_unc, unc_kind = None, None
            for b0 in progress(range(0, n_out, bs), desc="synthesize", total=(n_out + bs - 1) // bs, enabled=progress_bar):
                e = ends[b0 : b0 + bs]
                with step("windows"):
                    if not frame_based:
                        x = np.stack([feats[k - n_frames : k].T for k in e])  # (b, C, n_frames)
                    else:
                        idx = e[:, None] - 1 - q * np.arange(n_frames - 1, -1, -1)[None, :]
                        x = np.transpose(np.asarray(feats[idx]), (0, 2, 3, 1))  # (b, C, F, n_frames)
                        if ev_rows is not None:  # (b, C, F + E, n_frames): the event regressors after the EEG features, every channel
                            ev = np.broadcast_to(np.transpose(ev_rows[idx], (0, 2, 1))[:, None], (len(x), x.shape[1], ev_rows.shape[1], x.shape[3]))
                            x = np.concatenate([x, ev], axis=2)
                while unc_fns:
                    fn, meaning = unc_fns[0]
                    try:
                        with step("model", sync=dev):
                            mean, scale = call_uncertainty(fn, x, lm.model)
                    except Eeg2fmriInputError as err:  # e.g. a model built without the head this method needs
                        if w_unc is not None:
                            raise
                        logger.info("%s: %s unavailable (%s)", meta["model"], getattr(fn, "__name__", "uncertainty"), err)
                        unc_fns.pop(0)
                        continue
                    if w_unc is None:
                        w_unc = stack.enter_context(StreamingNifti(unc_out, hdr, overwrite=overwrite, sequential=True))
                        unc_kind = "own" if temperature is not None else None
                        unc_meaning = (f"{meaning}, times temperature {temperature:.4g} fitted on the validation windows ({CALIBRATION_NAME}): "
                                       "calibrated, read as a Laplace scale"
                                       + (" (not compared with the per-voxel residual scale: the calibration predates that choice; "
                                          "re-run eeg2fmri train)" if legacy else "") if temperature is not None else
                                       f"{meaning}; UNCALIBRATED (the model folder has no {CALIBRATION_NAME} with a temperature)")
                    with step("nifti volumes"):
                        m_rows = as_masked(mean, len(e), mask)
                        track(m_rows)
                        if regions:
                            roi_rows.append(m_rows)
                        elif atlas_lab is not None:
                            roi_rows.append(atlas_means(m_rows))
                        w_bold.write_masked(b0, on_voxels(m_rows), mask)
                        w_unc.write_masked(b0, on_voxels(as_masked(scale, len(e), mask)) * np.float32(1.0 if temperature is None else temperature), mask)
                    break
                else:
                    if uncertainty and calib is None:
                        raise Eeg2fmriInputError(f"{model_dir}: {meta['model']} provides no usable uncertainty (its methods refused, see -v); omit --uncertainty.")
                if w_unc is not None and unc_fns:
                    continue
                with step("model", sync=dev):
                    pred = predict_windows(lm.model, x, n_outputs=n_model, mask=mask)
                track(pred)
                if regions:
                    roi_rows.append(pred)
                elif atlas_lab is not None:
                    roi_rows.append(atlas_means(np.asarray(pred).reshape(len(pred), -1)))
                with step("nifti volumes"):
                    w_bold.write_masked(b0, on_voxels(pred), mask)
                    # on request, or by default where the model's own scale (written by default) was set aside for this one
                    if (uncertainty or (uncertainty is None and own_set_aside)) and calib is not None:
                        if w_unc is None:
                            w_unc = stack.enter_context(StreamingNifti(unc_out, hdr, overwrite=overwrite, sequential=True))
                            unc_kind = "residuals"
                            unc_meaning = (f"per-voxel Laplace scale from the validation residuals (mean |residual|, {CALIBRATION_NAME}), the same "
                                           "in every volume; the level-p interval is prediction +/- scale * log(1 / (1 - p))")
                        w_unc.write_masked(b0, on_voxels(np.broadcast_to(np.asarray(calib["laplace_scale"], dtype=np.float32), (len(e), n_model))), mask)
            amp_note = None
            if amp[0] > 1 and amp[1] is not None:
                sd = np.sqrt(np.maximum(amp[2] / amp[0] - (amp[1] / amp[0]) ** 2, 0.0))
                med_sd = float(np.median(sd)) if sd.size else float("nan")
                if np.isfinite(med_sd) and med_sd < SMALL_AMPLITUDE:
                    amp_note = {"median_sd": med_sd, "max_sd": float(np.max(sd)),
                                "meaning": (f"the synthesised series vary by {med_sd:.2g} (median SD over outputs; largest {float(np.max(sd)):.2g}) "
                                            "in the training runs' z units, under 1 % of a z-scored run: the model's penalties and gains, "
                                            "chosen on its validation windows over every output, shrink its predictions (a focal signal "
                                            "among many unpredictable outputs: r is unaffected, the amplitude is not meaningful); "
                                            "compare time courses (r), or train on region targets (prepare option atlas) for region "
                                            "series of a usable scale")}
                    logger.warning("%s: %s", where, amp_note["meaning"])
            side = {
                **({"SmallAmplitude": amp_note} if amp_note else {}),
                "RepetitionTime": tr_out,
                "StartTime": float(onsets[0]) + phase,
                "VolumeGrid": anchor,
                "TrainingRepetitionTime": tr_train,
                # what time a volume stands for (user test 19: the README said "at its marker"; a canonical-HRF model's
                # output followed the continuous BOLD 1.0-1.25 s after it at TR 2 s)
                "VolumeTiming": {
                    "acquisition_s": [0.0, tr_train],
                    "fixed_hrf_reference_s": tr_train / 2.0,
                    "meaning": "each volume is the BOLD of one training-TR acquisition starting at its onset (StartTime + k * "
                               "RepetitionTime), predicted from the EEG up to the end of that acquisition; models with a fixed HRF "
                               "(ridge_hrf's canonical and informed bases, the flagship's HRF start) place it at mid-acquisition, "
                               "onset + fixed_hrf_reference_s; models that learn their lags (ridge_hrf hrf: lags) follow the timing "
                               "of the training BOLD (e.g. its slice-time reference)"},
                **({"HrfBasis": hrf_basis} if (hrf_basis := _hrf_basis_note(lm.model)) else {}),
                **({"GradientArtifactCheck": {k: (v if not isinstance(v, float) or math.isfinite(v) else None)
                                              for k, v in art.items() if k in ("peak_ratio", "threshold", "detected")}} if art else {}),
                "Units": "the predicted (expected) BOLD in per-voxel standardised (z) units of the training runs; a prediction varies less than a measured z-scored run (at least by the model's r where it follows it, more where ridge penalties and per-voxel gains shrink it), so compare time courses, not amplitudes; 0 outside the model's mask",
                "Model": meta["model"],
                "ModelDir": model_label or str(Path(model_dir).absolute()),
                "Source": where,
                "SamplingFrequency": sf,
                "TrainingSamplingFrequency": train_sf if math.isfinite(train_sf) else None,
                "WorkSamplingFrequency": st.work_sfreq,
                "Resampled": bool(resampled),
                "Representation": kind,
                "Device": str(dev) if dev is not None and isinstance(lm.model, torch.nn.Module) else "cpu",
                "SignalProcessing": "cpu (NumPy, SciPy, MNE)" if dsp_dev is None else f"{dsp_dev} (torch)",
                "ChannelsUsed": picks,
                "ChannelsIgnored": extra,
                "ChannelsRenamed": renamed,
                "ChannelsMarkedBadButUsed": bad_used,
                "ChannelsMarkedBadInterpolated": bads_interpolated,
                "ChannelsOutlyingInterpolated": {c: round(float(ratio_of.get(c, float("nan"))), 4) for c in outliers_interpolated},
                "ChannelsWithOutlyingAmplitude": outliers,
                # seconds from the recording's first sample (the streamed recording starts `phase` s later)
                "ChannelsWithFlatStretches": {c: {"start_s": round(a + phase, 3), "duration_s": round(d, 3)} for c, (a, d) in st.info.get("flat_stretches", {}).items()},
                "ChannelMapping": None if chmap is None else chmap.to_dict(),
                "EEGSpansMarkedBad": [[round(a, 3), round(b, 3)] for a, b in bad],  # seconds from the recording's first sample
                "VolumesOverBadEEG": [int(v) for v in over_bad],
                # conditions of the event regressors the model reads -> events of each found in this recording (None: none read)
                "EventRegressors": ev_counts,
                "Streaming": {k: v for k, v in st.info.items() if k in ("chunk_seconds", "pad_seconds", "n_chunks")},
                "NotchFrequency": st.info.get("notch"),
                "GeneratedBy": "eeg2fmri.synthesize",
                # (user test 23: z maps of a task GLM on a synthesised run: 2,445 voxels above z 3.1 outside the driven regions
                # against 60 on the measured run)
                "StatisticalUse": ("a prediction, not a measurement: every voxel's series is a smooth function of the same EEG "
                                   "features, without the measurement noise a GLM's statistics assume, so t/z/p values and cluster "
                                   "inference computed on it are not valid (far too many voxels pass); read effect sizes, peaks and the "
                                   "spatial pattern, restrict analyses to the outputs above chance (AboveChanceMask, written where the model folder "
                                   "has a calibration), and test across subjects (a group model "
                                   "on per-subject effects). Values are standardised units of the training runs, not percent signal "
                                   "change: analyse without intensity scaling (nilearn: signal_scaling=False)"
                                   + ("; this model reads the recording's stimulus markers (event regressors "
                                      f"{list(ev_counts)}): its output holds the design's response by construction, so a GLM of these "
                                      "conditions on it is circular -- it shows what the model learned of the design, not evidence "
                                      "from this recording's EEG" if ev_reads else "")),
                **({"Cleaning": cleaning} if cleaning is not None else {}),
            }
            if w_unc is not None:
                side["UncertaintyFile"] = unc_out.name
                side["UncertaintyMeaning"] = unc_meaning
                mult = ((calib or {}).get("interval_multipliers") or {}).get(unc_kind) if unc_kind else None
                if mult is not None and len(mult) == len(calib.get("levels") or ()):
                    # factors calibrated at each level on the validation windows (user test 15: the Laplace reading covered 0.41 at
                    # 50 % and 0.98 at 95 % where the errors were Gaussian)
                    side["UncertaintyIntervals"] = {f"{100 * lv:g}%": (round(float(k), 4) if k is not None else None)
                                                    for lv, k in zip(calib["levels"], mult)}
                    side["UncertaintyMeaning"] = unc_meaning.replace("; the level-p interval is prediction +/- scale * log(1 / (1 - p))", "") + (
                        "; the level-p interval is prediction +/- scale * k_p with k_p from UncertaintyIntervals (the share p of the "
                        "validation windows x voxels inside; the Laplace reading log(1 / (1 - p)) holds only for Laplace-shaped errors)")
            try:  # (with --no-uncertainty the calibration was not loaded above)
                vcal = calib if calib is not None else load_calibration(model_dir, n_model)
            except Eeg2fmriInputError:
                vcal = None
            vr, vn = (vcal or {}).get("val_r"), (vcal or {}).get("val_r_null95")
            if vr is not None and vn is not None and len(vr) == n_model:
                # which outputs the model predicts at all on its validation windows (user test 18: an unpredictable region's series
                # was written like the driven ones, nothing said so)
                above = np.isfinite(vr) & np.isfinite(vn) & (vr > vn)
                side["ValidationR"] = {
                    "meaning": "per output: Pearson r of the model's held-out predictions with the validation targets, against the level "
                               "a 5 % test sets under every circular shift of the predictions (null_p95: the floor(0.05 n)-th largest r "
                               "of the n - 1 shifts of n validation windows; one uncorrected test per output: about 5 % of unpredictable "
                               "outputs pass by chance, more where the validation windows that chose the model's settings flatter it); "
                               "an output not above it shows no evidence on validation that its synthesised series follows the EEG",
                    **({} if (vcal or {}).get("val_r_null") else {
                        "earlier_level": "this model's calibration was written by an earlier eeg2fmri version, which set the level "
                                         "from far circular shifts only and so passes about 10 % of unpredictable outputs, not 5 %; "
                                         "re-run eeg2fmri train for the exact test"}),
                    "outputs_above_null": int(above.sum()), "n_outputs": int(n_model),
                    "median_r": float(np.nanmedian(vr)) if np.isfinite(vr).any() else None}
                missing = [c for c, k in (ev_counts or {}).items() if not k] if ev_reads else []
                if missing:  # (user test 51: "evidence" for a region driven by a condition this recording lacks)
                    side["ValidationR"]["conditions_missing_here"] = {
                        "conditions": missing,
                        "meaning": "the validation r above was measured with every event regressor present; this recording has no "
                                   f"events of {missing}, so outputs the model predicts through those conditions are flat here and "
                                   "their validation evidence does not carry over to this synthesis"}
                if not np.isfinite(vn).any():  # (user test 38: 16 validation windows; "no evidence above chance" for a region at r 0.65)
                    side["ValidationR"]["not_testable"] = ("the model's validation span is too short for a 5 % test over circular shifts "
                                                           "(under 20 windows): no output could be tested, which is no evidence either way")
                if regions:
                    side["ValidationR"]["rois"] = {str(nm): {"r": round(float(a), 4), "null_p95": round(float(b), 4), "above_null": bool(c)}
                                                   for nm, a, b, c in zip(rois["names"], vr, vn, above)}
                elif atlas_lab is not None:  # a voxel model's region series (user test 20: a control region's looked like the driven ones')
                    from scipy.stats import binom

                    from eeg2fmri.utils.stats import validation_r_and_null

                    vt, vp = (vcal or {}).get("val_true"), (vcal or {}).get("val_pred")
                    series = vt is not None and vp is not None and vt.shape == vp.shape and vt.ndim == 2 and vt.shape[1] == n_model

                    def roi_entry(v):
                        sel = atlas_lab == v
                        n_v, k_v = int(sel.sum()), int(above[sel].sum())
                        share = float(above[sel].mean())
                        p_v = float(binom.sf(k_v - 1, n_v, 0.05)) if k_v > 0 else 1.0
                        entry = {"voxels": n_v, "voxels_above_null": k_v, "share_above_null": round(share, 4), "binomial_p": round(p_v, 4),
                                 "median_r": round(float(np.nanmedian(vr[sel])), 4) if np.isfinite(vr[sel]).any() else None}
                        if series:
                            # the region's mean series against its own circular-shift null, as evaluate tests an ROI (user test 44:
                            # voxels counted as independent passed a control region whose noise was wider than the region)
                            r_roi, n_roi = validation_r_and_null(np.asarray(vt[:, sel], np.float64).mean(1, keepdims=True),
                                                                 np.asarray(vp[:, sel], np.float64).mean(1, keepdims=True))
                            entry.update({"roi_r": round(float(r_roi[0]), 4) if np.isfinite(r_roi[0]) else None,
                                          "roi_null_p95": round(float(n_roi[0]), 4) if np.isfinite(n_roi[0]) else None,
                                          "evidence": bool(np.isfinite(r_roi[0]) and np.isfinite(n_roi[0]) and r_roi[0] > n_roi[0]),
                                          "test": "roi_mean"})
                        else:
                            # (user test 37: 3 of 22 voxels, 13.6 %, passed the 10 % share and a control region's series was written
                            # as evidenced; 3 of 22 happen by chance with p = 0.09): a share above 10 % AND more voxels than 5 %
                            # chance gives (binomial p < 0.05; neighbouring voxels share noise, so that alone is too lenient)
                            entry.update({"evidence": bool(share > 0.1 and p_v < 0.05), "test": "voxel_count"})
                        return entry

                    side["ValidationR"]["atlas_rois"] = {str(nm): roi_entry(v) for nm, v in zip(atlas_names, atlas_ids)}
                    side["ValidationR"]["atlas_rois_meaning"] = (
                        "per ROI of --atlas: how many of its voxels the model predicts above chance on its validation windows "
                        "(about 5 % pass by chance, more where neighbouring voxels share noise), and (test roi_mean) the r of the ROI's "
                        "mean prediction with its mean validation target against that pair's own circular-shift null (roi_r, "
                        "roi_null_p95): evidence that its series follows the EEG where roi_r passes that 5 % level. Models whose "
                        "calibration holds no validation series (written before eeg2fmri 2026-12-07, or over 10 M validation values) "
                        "use the voxel count (test voxel_count): more than 10 % of its voxels pass and more than 5 % chance would give "
                        "(binomial_p < 0.05), which neighbouring voxels sharing noise can pass"
                        + ("" if series else "; this model's calibration holds no validation series: the voxel count was used, re-run "
                           "eeg2fmri train for the ROI-mean test"))
                if not regions:  # the voxels above chance, as a mask a GLM or a viewer can take (user test 23)
                    stale_chance = False
                    vol = np.zeros(mask.shape, np.uint8)
                    vol[mask] = above.astype(np.uint8)
                    from eeg2fmri.io.bold import grid_image

                    side_written.append(chance_out)
                    with atomic_file(chance_out, overwrite=overwrite) as tmp_mask:
                        nib.save(grid_image(vol, lm.affine, int(hdr.get_sform(coded=True)[1] or 2)), tmp_mask)
                    side["AboveChanceMask"] = {
                        "file": chance_out.name, "voxels": int(above.sum()), "of": int(n_model),
                        "meaning": "1 where the output's validation r is above its 5 % chance level (ValidationR), 0 elsewhere in the model's "
                                   "mask and outside it: the voxels whose synthesised series the model showed it predicts; pass it as the "
                                   "mask of an analysis of this image (e.g. nilearn's mask_img)",
                        # (user test 30: on focal data 1,162 of the mask's 2,951 voxels lay far from any driven region: the 5 %
                        # an uncorrected test passes)
                        "false_positives": f"uncorrected, voxel by voxel: up to about {int(round(0.05 * n_model))} of these voxels (5 % of the "
                                           f"{int(n_model)} in the model's mask) pass by chance alone where the EEG predicts nothing; "
                                           "read it as a region of interest for a cluster- or ROI-level analysis, not as voxel-wise "
                                           "evidence"}
            if regions or atlas_lab is not None:  # region series, one column per ROI, one row per volume
                roi_out = bold_out.with_name(bold_out.name.split(".")[0] + "_rois.tsv")
                if table:
                    side["Targets"] = (f"{n_model} region series, as the training runs' region tables had them (no voxel grid): the "
                                       f"series are in {roi_out.name}; the image is a stand-in with one voxel per region along its first "
                                       "axis, in the tables' column order")
                    names = [str(n).replace("\t", " ") for n in rois["names"]]
                elif n_model != n_vox:
                    side["Targets"] = f"{n_model} ROIs of the training atlas ({rois.get('source')}); each voxel of the image shows its ROI's series"
                    names = [str(n).replace("\t", " ") for n in rois["names"]]
                else:
                    side["RoiAtlas"] = {"source": str(atlas) if isinstance(atlas, (str, os.PathLike)) else type(atlas).__name__,
                                        "labels": [int(v) for v in atlas_ids], "voxels": [int((atlas_lab == v).sum()) for v in atlas_ids],
                                        "series": "the mean of the ROI's voxels of the synthesised image"}
                    names = [str(n).replace("\t", " ") for n in atlas_names]
                side["RoiFile"] = roi_out.name
                series = np.concatenate(roi_rows) if roi_rows else np.zeros((0, len(names)), np.float32)
                lines = ["onset\t" + "\t".join(names)] + [f"{float(onsets[k]) + phase:.4f}\t" + "\t".join(f"{v:.6g}" for v in row) for k, row in enumerate(series)]
                side_written.append(roi_out)
                with atomic_file(roi_out, overwrite=overwrite) as tmp_tsv:
                    tmp_tsv.write_text("\n".join(lines) + "\n", encoding="utf-8")
            try:
                with atomic_file(sidecar, overwrite=overwrite) as tmp_json:
                    tmp_json.write_text(json.dumps(final_paths(side), indent=2), encoding="utf-8")
                    with step("nifti finish"):
                        w_bold.finish()
                        if w_unc is not None:
                            w_unc.finish()
            except BaseException:  # the image was not finished: its side files go too (user test 29: a full disk left a mask)
                for f in side_written:
                    f.unlink(missing_ok=True)
                raise
        del feats, st
    if stale_unc and w_unc is None:
        unc_out.unlink(missing_ok=True)
        logger.info("%s: removed the uncertainty file of the output this run replaced", unc_out)
    if stale_chance:  # (rewritten above where this run has one)
        chance_out.unlink(missing_ok=True)
        logger.info("%s: removed the above-chance mask of the output this run replaced", chance_out)
    logger.info("wrote %s (%d volumes, TR %.3f s)", bold_out, n_out, tr_out)
    return bold_out
