"""``eeg2fmri datasets``: the supported dataset layouts, and checking a folder against one."""

from __future__ import annotations

from eeg2fmri.commands._pairing import add_pairing_arguments, pairing_options

NAME = "datasets"
ORDER = 25
HELP = "list the supported dataset layouts (published EEG-fMRI datasets) and check a folder against one"
DESCRIPTION = (
    "Without arguments: list every layout and what it needs on disk. With NAME: show that layout in detail "
    "(files, volume timing, TR, channels dropped, options). With --check ROOT: find the runs of the folder ROOT "
    "(layout NAME, or detected) and report missing or unpaired pieces (for BIDS-style layouts a run-by-run pairing table: "
    "what was paired, what was left out and why); exit status 0 when it is usable."
)


def add_arguments(p) -> None:
    p.add_argument("name", nargs="?", help="a layout name (see the list); with --check, 'auto' (default) detects it")
    p.add_argument("--check", metavar="ROOT", help="check the dataset folder ROOT against the layout")
    p.add_argument("--subjects", nargs="+", help="with --check only: only these subject labels")
    add_pairing_arguments(p)


def run(args) -> int:
    from eeg2fmri.io.layouts import check_layout, get_layout, list_layouts
    from eeg2fmri.utils.validation import Eeg2fmriInputError

    if args.subjects and not args.check:
        raise Eeg2fmriInputError(f"--subjects: expected only together with --check ROOT (it restricts the check), got {args.subjects}; "
                                 "add --check ROOT or drop --subjects.")
    if args.check:
        opts = {"subjects": args.subjects} if args.subjects else {}
        opts.update(pairing_options(args))
        rep = check_layout(args.check, args.name or "auto", **opts)
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
    print("Supported layouts (find_runs_layout(root, layout=NAME); 'auto' detects them):\n")
    for n in names:
        lay = get_layout(n)
        print(f"{n:{width}s}  {lay.TITLE}")
        for need in lay.NEEDS:
            print(f"{'':{width}s}    needs: {need}")
    print("\nDetails: eeg2fmri datasets NAME    Check a folder: eeg2fmri datasets [NAME] --check ROOT")
    return 0
