"""Turn an EEG-only recording into a 4D BOLD NIfTI with a trained model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from eeg2fmri.datasets.prepared import PrepareConfig, load_eeg_lowrate
from eeg2fmri.io import read_eeg
from eeg2fmri.models import load_model
from eeg2fmri.preprocessing import band_envelopes, bin_frames, standardize_features
from eeg2fmri.utils.atomic import atomic_file
from eeg2fmri.utils.logs import logger, progress
from eeg2fmri.utils.validation import Eeg2fmriInputError, check_positive

__all__ = ["synthesize"]


def _match_channels(raw, wanted: list[str], where: str):
    have = list(raw.ch_names)
    lower = {c.lower(): c for c in have}
    missing = [c for c in wanted if c.lower() not in lower]
    if missing:
        raise Eeg2fmriInputError(
            f"{where}: the model was trained on {len(wanted)} EEG channels but {len(missing)} are missing here: {missing[:10]}"
            f"{' ...' if len(missing) > 10 else ''}; rename channels to the training names (raw.rename_channels) or interpolate them "
            "(set a montage, mark them bad, raw.interpolate_bads)."
        )
    extra = [c for c in have if c.lower() not in {w.lower() for w in wanted}]
    if extra:
        logger.info("%s: ignoring %d channel(s) the model was not trained on: %s", where, len(extra), ", ".join(extra[:10]))
    return raw.pick([lower[c.lower()] for c in wanted])


def synthesize(
    eeg,
    model_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    tr: float | None = None,
    overwrite: bool = False,
    batch_size: int = 256,
    progress_bar: bool = True,
) -> Path:
    """Predict a 4D BOLD image from an EEG recording.

    Parameters
    ----------
    eeg : path-like | mne.io.BaseRaw
        EEG-only recording (any format MNE reads). Channels are matched to the
        training channels by name (case-insensitive); extra channels are
        ignored (reported), missing ones raise.
    model_dir : path-like
        A trained model directory.
    out : path-like
        Output ``.nii.gz`` (written atomically; an existing file needs ``overwrite``).
        A JSON sidecar with the same stem records TR, start time and the model.
    tr : float | None
        Output volume spacing in seconds; default the training TR. A finer
        step must divide the training frame length (e.g. 0.5 s for TR 2 s).
    overwrite : bool
        Replace existing outputs.
    batch_size : int
        Windows predicted at once.

    Returns
    -------
    out : Path

    Notes
    -----
    Volume ``j`` starts ``j * tr`` seconds after the first volume whose whole
    EEG window lies in the recording (``StartTime`` in the sidecar, seconds
    from the EEG start). Values are per-voxel standardised units.
    """
    import nibabel as nib

    out = Path(out)
    if not (out.name.endswith(".nii.gz") or out.name.endswith(".nii")):
        raise Eeg2fmriInputError(f"{out}: expected an output name ending in .nii.gz or .nii.")
    sidecar = Path(str(out)[: -len(".nii.gz")] if out.name.endswith(".nii.gz") else str(out)[: -len(".nii")]).with_suffix(".json")
    for p in (out, sidecar):
        if p.exists() and not overwrite:
            raise Eeg2fmriInputError(f"{p}: output already exists; choose another path or pass overwrite=True (--overwrite).")
    lm = load_model(model_dir)
    meta, spec = lm.meta, lm.spec
    if spec.input_kind != "bandpower":
        raise Eeg2fmriInputError(f"{model_dir}: synthesis from input_kind {spec.input_kind!r} is not available in this version; use a band-power model (e.g. ridge_hrf).")
    cfg = PrepareConfig.from_dict(meta["prepare"])
    where = str(eeg) if not hasattr(eeg, "info") else "EEG"
    raw = read_eeg(eeg)
    tr_train = float(spec.tr)
    tr_out = tr_train if tr is None else check_positive(tr, "tr")
    m = cfg.frames_per_tr
    flen = tr_train / m
    q = flen / tr_out
    if q < 1 - 1e-9 and abs(q - 1) > 1e-9 or abs(q - round(q)) > 1e-6:
        raise Eeg2fmriInputError(f"tr={tr_out} s must divide the training frame length {flen} s (e.g. {flen}, {flen / 2}, {flen / 4}).")
    q = int(round(q))
    raw = _match_channels(raw.copy(), list(spec.ch_names), where)
    raw.set_channel_types({c: "eeg" for c in raw.ch_names}, verbose=False)
    raw.info["bads"] = []
    data, sf, _ = load_eeg_lowrate(raw, cfg, where=where)
    dur = data.shape[1] / sf
    n_frames = int(meta["window"]["n_frames"])
    lag = int(meta["window"].get("lag", 0))
    starts = np.arange(0.0, dur - flen + 1e-9, tr_out)
    if len(starts) < n_frames * q:
        raise Eeg2fmriInputError(f"{where}: the recording lasts {dur:.1f} s but one window needs {n_frames * flen:.1f} s of EEG; use a longer recording.")
    power = band_envelopes(data, sf, cfg.bands)
    frames = bin_frames(power, sf, starts, flen)  # (n_hops, n_bands, n_chans)
    del power
    feats = standardize_features(np.transpose(frames, (0, 2, 1)))  # (n_hops, C, B)
    # output j: the window's last frame is hop e_j = first_end + j; frames e_j - q*(n_frames-1), ..., e_j (step q)
    first_end = q * (n_frames - 1)
    n_out = len(feats) - first_end
    if n_out <= 0:
        raise Eeg2fmriInputError(f"{where}: too short for one window; need at least {(n_frames + lag) * flen:.1f} s of EEG.")
    idx = first_end + np.arange(n_out)[:, None] - q * np.arange(n_frames - 1, -1, -1)[None, :]
    mask = lm.mask
    n_vox = int(mask.sum())
    data = np.zeros(mask.shape + (n_out,), dtype=np.float32)
    for b0 in progress(range(0, n_out, batch_size), desc="synthesize", total=(n_out + batch_size - 1) // batch_size, enabled=progress_bar):
        sel = idx[b0 : b0 + batch_size]
        x = np.transpose(feats[sel], (0, 2, 3, 1))  # (n, C, B, n_frames)
        pred = np.asarray(lm.model.predict(x)).reshape(len(sel), n_vox)
        data[mask, b0 : b0 + len(sel)] = pred.T
    # the window of a volume ends `lag` frames after the end of the volume's acquisition (as in training)
    start_time = float(starts[first_end] + flen - tr_train - lag * flen)
    img = nib.Nifti1Image(data, lm.affine)
    img.header.set_xyzt_units("mm", "sec")
    zooms = tuple(float(z) for z in np.sqrt((lm.affine[:3, :3] ** 2).sum(0)))
    img.header.set_zooms(zooms + (tr_out,))
    with atomic_file(out, overwrite=overwrite) as tmp:
        nib.save(img, tmp)
    with atomic_file(sidecar, overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps({"RepetitionTime": tr_out, "StartTime": start_time, "Units": "standardised (z) BOLD", "Model": meta["model"],
                                   "ModelDir": str(Path(model_dir).absolute()), "Source": where, "GeneratedBy": "eeg2fmri.synthesize"}, indent=2))
    logger.info("wrote %s (%d volumes, TR %.3f s)", out, n_out, tr_out)
    return out
