"""``eeg2fmri datasets``: the supported dataset layouts, and checking a folder against one."""

from __future__ import annotations

from pathlib import Path

from eeg2fmri.commands._pairing import add_pairing_arguments, pairing_options

NAME = "datasets"
ORDER = 25
HELP = "list the supported dataset layouts (published EEG-fMRI datasets) and check a folder against one"
DESCRIPTION = (
    "Without arguments: list every layout and what it needs on disk. With NAME: show that layout in detail "
    "(files, volume timing, TR, channels dropped, options). With --check ROOT: find the runs of the folder ROOT "
    "(layout NAME, or detected) and report missing or unpaired pieces (for BIDS-style layouts a run-by-run pairing table: "
    "what was paired, what was left out and why) and every run's volume timing as prepare finds it (scanner markers, "
    "or --first-onset); exit status 0 when it is usable."
)


def add_arguments(p) -> None:
    p.add_argument("name", nargs="?", help="a layout name (see the list); with --check, 'auto' (default) detects it")
    p.add_argument("--check", metavar="ROOT", help="check the dataset folder ROOT against the layout")
    p.add_argument("--subjects", nargs="+", help="with --check only: only these subject labels")
    p.add_argument("--marker", nargs="+", metavar="NAME", help="with --check only: the scanner volume marker name(s) prepare will use "
                   "(default: R128, Scanner/Scan Start, Scan Start, TR)")
    p.add_argument("--first-onset", type=float, metavar="S", help="with --check only: no markers; volume 0 starts S seconds "
                   "after the EEG start (regular timing, as prepare's first_onset)")
    p.add_argument("--config", metavar="CONFIG", help="with --check only: the prepare config you will use (file or inline JSON, as "
                   "prepare --config); its marker, first_onset, channels, grid and dummy_scans are checked as prepare applies them")
    add_pairing_arguments(p)


def run(args) -> int:
    from eeg2fmri.io.layouts import check_layout, get_layout, list_layouts
    from eeg2fmri.utils.validation import Eeg2fmriInputError

    if args.subjects and not args.check:
        raise Eeg2fmriInputError(f"--subjects: expected only together with --check ROOT (it restricts the check), got {args.subjects}; "
                                 "add --check ROOT or drop --subjects.")
    for flag, val in (("--marker", args.marker), ("--first-onset", args.first_onset), ("--config", args.config)):
        if val is not None and not args.check:
            raise Eeg2fmriInputError(f"{flag}: expected only together with --check ROOT (it sets how the check times the volumes), got {val}; "
                                     f"add --check ROOT or drop {flag}.")
    if args.check:
        opts = {"subjects": args.subjects} if args.subjects else {}
        from eeg2fmri.datasets.prepared import PrepareConfig

        physio_cfg, physio_incomplete, drop_volumes, l_freq = None, "error", "auto", PrepareConfig().l_freq
        if args.config:  # (user test 54: the check refused the channels and grids prepare --config accepted)
            from eeg2fmri.utils.config import read_config

            cfg = read_config(args.config)
            if "marker" in cfg:
                opts["marker"] = cfg["marker"] if cfg["marker"] is None or isinstance(cfg["marker"], str) else tuple(cfg["marker"])
            if cfg.get("first_onset") is not None:
                opts.update(marker=None, first_onset=float(cfg["first_onset"]))
            prep = {k: cfg[k] for k in ("channels", "grid", "dummy_scans") if cfg.get(k) is not None}
            physio_cfg, physio_incomplete = cfg.get("physio"), cfg.get("physio_incomplete", "error")
            drop_volumes = cfg.get("drop_volumes", "auto")
            l_freq = cfg.get("l_freq", l_freq)
            if physio_cfg:
                from eeg2fmri.datasets.prepared import PHYSIO_INCOMPLETE
                from eeg2fmri.preprocessing.physio import check_physio_option
                from eeg2fmri.utils.validation import check_choice

                check_physio_option(physio_cfg, "--config physio")
                check_choice(physio_incomplete, "physio_incomplete", PHYSIO_INCOMPLETE, where="--config")
            if prep:
                opts["prepare"] = prep
        if args.first_onset is not None:
            opts.update(marker=None, first_onset=args.first_onset)
        elif args.marker:
            opts["marker"] = tuple(args.marker)
        opts.update(pairing_options(args))
        if Path(args.check).is_file() and Path(args.check).suffix.lower() in (".tsv", ".csv"):  # a runs table (eeg, bold, subject, ...)
            from eeg2fmri.datasets.prepared import read_runs_table, runs_from_files
            from eeg2fmri.io.layouts import check_runs

            layout_only = sorted(k for k in opts if k not in ("subjects", "marker", "first_onset", "prepare"))
            if args.name or layout_only:
                raise Eeg2fmriInputError(f"{args.check}: a runs table names every run's files itself, so a layout and its options "
                                         f"({', '.join(([args.name] if args.name else []) + layout_only)}) do not apply; expected only "
                                         "--subjects, --marker or --first-onset with it.")
            runs = runs_from_files(read_runs_table(args.check))
            if opts.get("subjects"):
                wanted = {str(x).removeprefix("sub-") for x in opts["subjects"]}
                runs = [r for r in runs if r.subject in wanted]
                if not runs:
                    raise Eeg2fmriInputError(f"{args.check}: no run of the table has subject(s) {sorted(wanted)}; check the subject column.")
            rep = check_runs(runs, **{k: v for k, v in opts.items() if k in ("marker", "first_onset", "prepare")})
        else:
            rep = check_layout(args.check, args.name or "auto", **opts)
        if rep.ok:  # what prepare's artefact check will say of each run (user test 20: "OK" of raw in-scanner EEG, nothing else)
            from eeg2fmri.preprocessing.artifacts import layout_gradient_notes

            rep.notes.extend(layout_gradient_notes(rep.runs, opts.get("marker")))
            from eeg2fmri.preprocessing.events import stimulus_note

            note = stimulus_note(rep.runs, opts.get("marker"))
            if note:
                rep.notes.append(note)
            from eeg2fmri.preprocessing.eeg import slow_band_note
            from eeg2fmri.preprocessing.physio import physio_check, physio_note

            note = slow_band_note(rep.runs, l_freq)  # (user test 59: a DC-coupled recording's slow band, filtered out in silence)
            if note:
                rep.notes.append(note)
            if physio_cfg:  # (user test 58 #6: "OK" for physio files prepare refuses)
                problems, notes = physio_check(rep.runs, physio_cfg, str(physio_incomplete), drop_volumes)
                rep.notes.extend(notes)
                if problems:
                    rep.problems.extend(problems)
                    rep.ok = False
            else:
                note = physio_note(rep.runs)  # (user test 57: the ECG, belt and BIDS physio files went unmentioned)
                if note:
                    rep.notes.append(note)
        print("\n".join(rep.lines()))
        if rep.ok:
            for r in rep.runs:
                print(f"  run {r.key}: eeg={r.eeg_path}" + (f" bold={r.bold_path}" if r.bold_path is not None else " (EEG only)"))
        return 0 if rep.ok else 1
    if args.name:
        print(get_layout(args.name).describe())
        return 0
    names = list_layouts()
    width = max(len(n) for n in names)
    print("Supported layouts (eeg2fmri.io.layouts.find_runs_layout(root, layout=NAME); 'auto' detects them):\n")
    for n in names:
        lay = get_layout(n)
        print(f"{n:{width}s}  {lay.TITLE}")
        for need in lay.NEEDS:
            print(f"{'':{width}s}    needs: {need}")
    print("\nDetails: eeg2fmri datasets NAME    Check a folder: eeg2fmri datasets [NAME] --check ROOT")
    return 0
