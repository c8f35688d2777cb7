"""``python -m eeg2fmri`` runs the command-line interface."""

import sys

from eeg2fmri.cli import main

sys.exit(main())
