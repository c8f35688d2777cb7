"""One module per ``eeg2fmri`` subcommand.

Each module defines ``NAME`` (the subcommand), ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. Modules are discovered
automatically; ``ORDER`` (optional, default 50) sorts them in ``--help``.
"""
