"""``eeg2fmri prepare``."""

from __future__ import annotations

from eeg2fmri.commands._pairing import add_pairing_arguments, pairing_options
from eeg2fmri.utils.config import read_config

NAME = "prepare"
ORDER = 30
HELP = "read, synchronise and preprocess a BIDS EEG-fMRI dataset into a prepared dataset"
DESCRIPTION = (
    "Pair EEG and BOLD runs, find volume onsets from scanner markers, preprocess EEG and mask BOLD; write continuous "
    "arrays once plus manifest.json."
)


def add_arguments(p) -> None:
    p.add_argument("bids_root", help="BIDS dataset folder (or a published dataset's, see --layout), or a runs table: a .tsv/.csv with "
                   "columns eeg, bold, subject (+ session, task, run, acquisition, tr, marker, first_onset), one row per run")
    p.add_argument("--out", required=True, help="output folder for the prepared dataset")
    p.add_argument("--config", help="JSON/YAML/TOML file of PrepareConfig fields, or the JSON itself, e.g. '{\"tr\": 2.0}'")
    p.add_argument("--subjects", nargs="*", help="subset of subject labels")
    p.add_argument("--layout", default="bids", help="dataset layout: bids (default), auto, or a published dataset's name (see `eeg2fmri datasets`)")
    add_pairing_arguments(p)
    p.add_argument("--jobs", type=int, default=1, help="runs prepared in parallel (default: %(default)s)")
    p.add_argument("--clean", help="remove scanner artifacts from the EEG first: 'gradient', 'bcg' or 'gradient,bcg' (AAS for gradient, "
                   "PCA-OBS for pulse; 'bcg=aas' picks average subtraction); overrides the config's clean")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--representation", help="EEG representation: bandpower (default), tangent (eeg2fmri_net's preferred input), stft or raw; "
                   "overrides the config's")


def run(args) -> int:
    from eeg2fmri.datasets import load_prepared, prepare

    config = read_config(args.config)
    if args.representation:
        config["representation"] = args.representation
    if args.clean:
        from eeg2fmri.preprocessing.cleaning import parse_clean_steps

        config["clean"] = parse_clean_steps(args.clean)
    out, written = prepare(args.bids_root, args.out, config, subjects=args.subjects, overwrite=args.overwrite,
                           progress_bar=not args.quiet, n_jobs=args.jobs, layout=args.layout,
                           layout_options=pairing_options(args) or None)
    ds = load_prepared(out)
    what = "wrote" if written else "up to date (same inputs and config):"
    targets = (f"{ds.n_outputs} regions (region tables)" if not ds.has_grid else
               f"{ds.n_outputs} ROIs ({int(ds.mask.sum())} voxels in the mask)" if ds.rois else f"{int(ds.mask.sum())} voxels")
    ev = ds.config.events or {}
    dur = ds.config.event_durations or {}
    events = ("; event regressors: " + ", ".join(f"{c} ({' + '.join(map(repr, n))}" + (f", blocks of {dur[c]:g} s" if c in dur else "") + ")"
                                                 for c, n in ev.items())) if ev else ""
    print(f"{what} {out}: {len(ds.runs)} run(s), {len(ds.ch_names)} EEG channels, {targets}, representation {ds.representation}{events}")
    for line in pooling_summary(ds):  # (user test 30: what pooling changed was said only with -v)
        print(line)
    from eeg2fmri.datasets.prepared import physiology_unregressed

    physio = physiology_unregressed(ds)
    if physio and ds.has_grid:  # (user test 57: the EEG's artefacts predicted the BOLD's physiological noise)
        print(f"note: the data include physiological recordings ({', '.join(physio)}), and no confounds were regressed from the BOLD: "
              "the EEG's pulse artefact and breathing drifts can predict the BOLD's physiological noise, which the scores then credit "
              "to the EEG; regress it where that matters: prepare option physio ('{\"physio\": \"regress\"}': RETROICOR, heart rate and "
              "respiration volume from those channels) or confounds (README: Evaluation)")
    return 0


def pooling_summary(ds) -> list[str]:
    """One line per kind of change prepare made to some runs (channels mapped or interpolated, BOLD resampled in time,
    leading volumes left out, notch frequencies), from the manifest's provenance; empty when it changed nothing."""
    inputs = (ds.provenance or {}).get("inputs") or {}
    mapped, interp, resampled, dropped, notch, sliced, regrid, ignored = [], [], [], [], {}, [], [], []
    trimmed, unregressed = [], []
    for key, p in inputs.items():
        if p.get("physio_trimmed"):  # (prepare option physio_incomplete; user test 58 #7)
            trimmed.append(f"{key} ({'+'.join(map(str, p['physio_trimmed']['volumes_left_out']))})")
        if p.get("physio_unregressed"):
            unregressed.append(key)
        cm = p.get("channel_mapping") or {}
        pairs = [f"{rec}->{train}" for train, rec in (cm.get("by_position") or {}).items() if rec != train]
        if pairs:
            mapped.append(f"{key} ({', '.join(pairs[:4])}{' ...' if len(pairs) > 4 else ''})")
        if cm.get("interpolated"):
            interp.append(f"{key} ({', '.join(cm['interpolated'][:4])}{' ...' if len(cm['interpolated']) > 4 else ''})")
        if cm.get("ignored"):  # (user test 54: a site's extra channels left out without a word)
            ignored.append(f"{key} ({', '.join(cm['ignored'][:4])}{' ...' if len(cm['ignored']) > 4 else ''})")
        src = p.get("bold_grid_source")
        if src:
            regrid.append(f"{key} ({'x'.join(map(str, src['shape']))} of {'x'.join(f'{v:g}' for v in src['voxel_mm'])} mm"
                          f"{', oblique' if src.get('oblique') else ''})")
        rs = p.get("resampled_in_time")
        if rs and abs(float(rs["from_tr"]) - float(rs["to_tr"])) > 1e-9:
            resampled.append(f"{key} (TR {rs['from_tr']:g} -> {rs['to_tr']:g} s)")
        if p.get("non_steady_state_volumes"):
            dropped.append(f"{key} ({p['non_steady_state_volumes']})")
        if p.get("notch_hz") is not None:
            notch.setdefault(float(p["notch_hz"]), []).append(key)
        if p.get("slice_timing") and not p.get("slice_time_corrected", "), slice-time corrected" in p["slice_timing"]):
            sliced.append(key)
    out = []

    def line(what: str, items: list[str]) -> None:
        if items:
            out.append(f"  {what} in {len(items)} run(s): {'; '.join(items[:3])}{'; ...' if len(items) > 3 else ''}")

    line("channels renamed by electrode position", mapped)
    line("training channels interpolated", interp)
    line("EEG channels left out (not in the channel set)", ignored)
    line("BOLD resampled onto the dataset's grid", regrid)
    line("BOLD resampled in time", resampled)
    line("leading non-steady-state volumes left out", dropped)
    line("volumes the physiological recordings do not cover left out (first+last; physio_incomplete: 'trim')", trimmed)
    line("physiological noise NOT regressed (physio_incomplete: 'unregressed'; the reason: manifest physio_unregressed)", unregressed)
    line("SliceTiming given but not read (volumes taken at marker + TR/2; README: SliceTiming)", sliced)
    if len(notch) > 1:
        out.append("  power-line notch: " + "; ".join(f"{hz:g} Hz in {len(keys)} run(s)" for hz, keys in sorted(notch.items())))
    return (["what prepare changed (details: manifest.json, provenance.inputs):"] + out) if out else []
