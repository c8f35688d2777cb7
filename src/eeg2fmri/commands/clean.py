"""``eeg2fmri clean``: remove MRI gradient and pulse artifacts from one EEG file."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from eeg2fmri.utils.atomic import remove_stale_temporaries, temp_prefix
from eeg2fmri.utils.validation import Eeg2fmriInputError

NAME = "clean"
ORDER = 28
HELP = "remove MRI gradient (AAS) and pulse (BCG) artifacts from an in-scanner EEG file"
DESCRIPTION = (
    "Read one EEG recording, subtract the gradient artifact (average artifact subtraction locked to the volume or slice markers) "
    "and the pulse artifact (R peaks from the ECG channel, or the peaks of a pulse oximeter -- a channel of the file or a BIDS "
    "physio file -- moved by their estimated delay; then PCA-OBS or AAS), write the cleaned recording (FIF, or BrainVision for a "
    ".vhdr output) and print the residual artifact power at the volume and slice frequencies."
)


def add_arguments(p) -> None:
    p.add_argument("eeg_file", help="EEG recording (BrainVision .vhdr, EDF, EEGLAB .set, FIF, ...)")
    p.add_argument("--out", required=True, help="cleaned output: a .fif file, or a .vhdr (BrainVision: .vhdr/.vmrk/.eeg)")
    p.add_argument("--gradient", default="aas", choices=["aas", "none"], help="gradient-artifact removal (default: %(default)s)")
    p.add_argument("--bcg", default="pca_obs", choices=["pca_obs", "aas", "none"], help="pulse-artifact removal (default: %(default)s)")
    p.add_argument("--bcg-crossfade", default="0.5", metavar="F",
                   help="PCA-OBS: neighbouring beat fits cross-faded over F x half the median RR interval (0: edge to edge; "
                        "'mne': MNE's apply_pca_obs as it is; default: %(default)s)")
    p.add_argument("--marker", help="volume marker name (default: R128, Scanner/Scan Start, Scan Start or TR, the first found)")
    p.add_argument("--slice-marker", help="slice marker name: epochs per slice instead of per volume (e.g. R2)")
    p.add_argument("--ecg-channel", help="ECG channel name (default: the channel of type ecg)")
    p.add_argument("--pulse-channel", metavar="NAME",
                   help="take the heartbeats from this pulse-oximeter (PPG) channel of the file instead of an ECG ('auto': the one "
                        "channel named PPG*, Pulse* or Pleth*); their delay to the artifact is estimated")
    p.add_argument("--physio", metavar="FILE",
                   help="take the heartbeats from the cardiac column of this BIDS *_physio.tsv.gz (+ .json) instead of an ECG")
    p.add_argument("--physio-start", type=float, metavar="SECONDS",
                   help="with --physio: the EEG time (s from its first sample) of the physio file's time 0, the first BOLD volume "
                        "(BIDS StartTime counts from it; default: the first volume marker)")
    p.add_argument("--bcg-delay", default="auto", metavar="S",
                   help="seconds added to pulse-oximeter beats ('auto': the delay that puts the artifact 0-400 ms after them, as "
                        "after R peaks; default: %(default)s)")
    p.add_argument("--n-template", type=int, default=21, help="artifact epochs averaged per template (default: %(default)s)")
    p.add_argument("--report", help="also write the artifact report to this JSON file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")


def _outputs(out: Path) -> list[Path]:
    if out.suffix.lower() == ".vhdr":
        return [out, out.with_suffix(".vmrk"), out.with_suffix(".eeg")]
    return [out]


def write_cleaned(raw, out: str | os.PathLike, *, overwrite: bool = False, source: str | os.PathLike | None = None) -> list[Path]:
    """Write a cleaned recording atomically: FIF (``raw.save``) or BrainVision (``mne.export``) for ``.vhdr``.

    Parameters
    ----------
    raw : mne.io.BaseRaw
    out : path-like
        ``*.fif`` or ``*.vhdr``.
    overwrite : bool
        Replace existing output files.
    source : path-like | None
        The input file; writing over it (or its BrainVision companions) is refused.

    Returns
    -------
    paths : list of Path
        The files written.
    """
    import mne

    out = Path(out).absolute()
    suffix = out.suffix.lower()
    if suffix not in (".fif", ".vhdr") and not out.name.lower().endswith(".fif.gz"):
        raise Eeg2fmriInputError(f"{out}: expected an output ending in .fif (FIF) or .vhdr (BrainVision), got {out.suffix!r}; rename the output.")
    targets = _outputs(out)
    if source is not None:
        src = Path(source).absolute().resolve()
        srcs = {p.resolve() for p in _outputs(src)} | {src}
        same = [t for t in targets if t.resolve() in srcs]
        if same:
            raise Eeg2fmriInputError(f"{out}: the output would overwrite the input {src}; choose another --out (the input is never overwritten).")
    existing = [t for t in targets if t.exists()]
    if existing and not overwrite:
        raise Eeg2fmriInputError(f"{existing[0]}: output already exists; choose another --out or pass --overwrite.")
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out.parent, out.stem)
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(out.stem), dir=out.parent))
    try:
        if suffix == ".vhdr":
            mne.export.export_raw(tmp / out.name, raw, fmt="brainvision", overwrite=True, verbose=False)
        else:
            raw.save(tmp / "cleaned_raw.fif", overwrite=True, verbose=False)
            os.replace(tmp / "cleaned_raw.fif", tmp / out.name)
        mask = os.umask(0o022)
        os.umask(mask)
        for t in targets[::-1]:  # the header (.vhdr) last, so that it never points at missing data
            os.chmod(tmp / t.name, 0o666 & ~mask)
            os.replace(tmp / t.name, t)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return targets


def _print_report(rep: dict) -> None:
    g, b, p = rep.get("gradient"), rep.get("bcg"), rep.get("artifact_power")
    if g:
        print(f"gradient: AAS on {g['n_epochs']} {g['epochs']} epochs of {g['epoch_samples']} samples, {len(g['channels'])} channel(s), "
              f"template of {g['n_template']}, OBS {g['obs_components']} component(s)")
    if p:
        line = (f"residual artifact power (median over EEG channels, dB re 1 uV^2/Hz): volume comb ({p['volume_hz']:.4g} Hz x k) "
                f"{p['volume_db_before']:.1f} -> {p['volume_db_after']:.1f} dB (reduced {p['volume_reduction_db']:.1f} dB)")
        if p.get("slice_hz"):
            line += f"; slice comb ({p['slice_hz']:.4g} Hz x k) {p['slice_db_before']:.1f} -> {p['slice_db_after']:.1f} dB (reduced {p['slice_reduction_db']:.1f} dB)"
        print(line)
    if b:
        cf = b.get("crossfade")
        how = "" if b["method"] != "pca_obs" else " (MNE's apply_pca_obs)" if cf is None else f" (fits cross-faded over {cf:g} x half an RR)" if cf else " (fits edge to edge)"
        beats = "R peaks" if b.get("beat_kind", "ecg") == "ecg" and b.get("beat_delay", "none") == "none" else "beats"
        src = b.get("beat_source") or b.get("ecg_channel")
        print(f"bcg: {b['method']}{how} with {b['n_beats']} {beats} from {src} ({b['heart_rate_bpm']:.0f} bpm)")
        if b.get("beat_delay") in ("estimated", "given"):
            est = b.get("delay_estimate") or {}
            extra = f", score {est['peak_ratio']:.1f} x the mean over {est['search_s'][0]:g}..{est['search_s'][1]:g} s" if est else ""
            print(f"bcg: beats moved by {1e3 * b['beat_delay_s']:+.0f} ms ({b['beat_delay']}{extra})")
        c = b.get("coupling") or {}
        if c.get("raised"):  # (user test 57: cleaning made band power track breathing)
            print("bcg: band power tracks the physiology more after cleaning (median |r| over channels): " + ", ".join(
                f"{d['band']} vs {d['covariate'].replace('_', ' ')} {d['before']:.2f} -> {d['after']:.2f}" for d in c["raised"]))


def _crossfade(text: str) -> float | None:
    """``--bcg-crossfade``: a fraction 0-1, or 'mne' (None: MNE's apply_pca_obs)."""
    if str(text).strip().lower() == "mne":
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise Eeg2fmriInputError(f"--bcg-crossfade: expected a number from 0 to 1 or 'mne', got {text!r}; e.g. --bcg-crossfade 0.5 (the "
                                 "default), 0 for beat fits edge to edge, mne for MNE's apply_pca_obs.")
    return value


def _physio_beats(raw, physio: Path, start: float | None, marker: str | None, where: str) -> dict:
    """``clean_raw``'s beat arguments from a BIDS physio file: its time 0 at ``start`` s of the EEG, else at the first volume
    marker."""
    from eeg2fmri.preprocessing.cleaning import VOLUME_MARKERS, find_markers, physio_file_beats

    if not physio.is_file():
        raise Eeg2fmriInputError(f"{physio}: --physio file not found; expected a BIDS *_physio.tsv.gz (with its .json); check the path.")
    if not physio.name.endswith(".tsv.gz"):
        raise Eeg2fmriInputError(f"{physio}: --physio expected a BIDS *_physio.tsv.gz (with its .json), got {physio.name!r}; give the "
                                 "gzipped TSV.")
    if start is None:
        times, name = find_markers(raw, (marker,) if marker else VOLUME_MARKERS, where=where)
        if not len(times):
            raise Eeg2fmriInputError(f"{where}: --physio needs the EEG time of the first BOLD volume (the physio file's StartTime counts "
                                     f"from it), found no volume marker ({marker or ', '.join(VOLUME_MARKERS)}); pass --physio-start SECONDS "
                                     "(s from the EEG's first sample) or --marker NAME.")
        start = float(times[0])
        print(f"physio: {physio.name}'s time 0 placed at the first {name!r} marker, {start:.3f} s of the EEG (--physio-start sets it)")
    times, kind, source = physio_file_beats([physio], float(start), where=where, caller="clean")
    return dict(beat_times=times, beat_kind="qrs" if kind == "ecg" else "ppg", beat_source=f"{source} ({'QRS' if kind == 'ecg' else 'pulse'} detector)")


def run(args) -> int:
    from eeg2fmri.io.eeg import read_eeg
    from eeg2fmri.preprocessing.cleaning import VOLUME_MARKERS, _jsonable, clean_raw
    from eeg2fmri.utils.atomic import atomic_file

    src = Path(args.eeg_file)
    if not src.exists():
        raise Eeg2fmriInputError(f"{src}: EEG file not found; check the path.")
    gradient = None if args.gradient == "none" else args.gradient
    bcg = None if args.bcg == "none" else args.bcg
    if gradient is None and bcg is None:
        raise Eeg2fmriInputError("--gradient none and --bcg none: nothing to do; choose at least one step.")
    crossfade = _crossfade(args.bcg_crossfade)
    sources = [f for f, v in (("--ecg-channel", args.ecg_channel), ("--pulse-channel", args.pulse_channel), ("--physio", args.physio)) if v]
    if len(sources) > 1:
        raise Eeg2fmriInputError(f"{' and '.join(sources)}: expected one source of heartbeats, got {len(sources)}; keep one of them.")
    if sources and bcg is None:
        raise Eeg2fmriInputError(f"{sources[0]}: sets the heartbeats of the pulse-artifact removal, but --bcg is none; expected --bcg aas "
                                 f"or pca_obs with it, or leave {sources[0]} out.")
    if args.physio_start is not None and not args.physio:
        raise Eeg2fmriInputError("--physio-start: expected together with --physio FILE (the physio file whose time 0 it places), got no "
                                 "--physio; add it or leave --physio-start out.")
    from eeg2fmri.preprocessing.cleaning import _check_delay

    delay = _check_delay(args.bcg_delay, "--bcg-delay", "--bcg-delay")
    raw = read_eeg(src, preload=True)
    beats = {}
    if args.physio:
        beats = _physio_beats(raw, Path(args.physio), args.physio_start, args.marker, str(src))
    cleaned, rep = clean_raw(raw, gradient=gradient, bcg=bcg, marker=args.marker or VOLUME_MARKERS, slice_marker=args.slice_marker,
                             ecg_channel=args.ecg_channel, pulse_channel=args.pulse_channel, bcg_delay=delay, n_template=args.n_template,
                             bcg_crossfade=crossfade, caller="clean", where=str(src), **beats)
    paths = write_cleaned(cleaned, args.out, overwrite=args.overwrite, source=src)
    _print_report(rep)
    if args.report:
        with atomic_file(args.report, overwrite=args.overwrite) as tmp:
            tmp.write_text(json.dumps(_jsonable(rep), indent=1), encoding="utf-8")
    print(f"wrote {paths[0]}")
    return 0
