"""Synthesis: EEG-only recordings -> 4D BOLD NIfTI, streamed in time chunks with bounded memory."""

from eeg2fmri.synthesis.nifti import StreamingNifti, nifti_header
from eeg2fmri.synthesis.stream import StreamedEEG, stream_representation
from eeg2fmri.synthesis.synthesize import match_channels, output_paths, synthesize

__all__ = ["StreamedEEG", "StreamingNifti", "match_channels", "nifti_header", "output_paths", "stream_representation", "synthesize"]
