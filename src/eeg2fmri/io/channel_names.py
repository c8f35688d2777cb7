"""Channel names as recordings spell them: the key by which two names count as one channel.

EDF and clinical exports decorate names (``EEG Fp1-REF``, ``FP1-LE``); BrainVision and EEGLAB files of one lab
differ in case. :func:`channel_key` is the one comparison every reader, check and preparation step uses.
"""
from __future__ import annotations

import re

_PREFIX = re.compile(r"^eeg[\s_:-]*")
_SUFFIX = re.compile(r"[\s_-]*(ref|le|avg|ar)$|[\s_-]+(m1|m2|a1|a2)$|\.+$")  # mastoid/ear references only after a separator (Fp1-M1)


def channel_key(name: str) -> str:
    """A channel name as matched against training names: case folded, without a leading ``EEG`` (``EEG Fp1``,
    ``EEG-FP1``) or a trailing reference tag or padding (``Fp1-REF``, ``FP1-LE``, ``Fp1-M1``, ``Fp1-A2``, ``Fp1.``), as EDF and clinical exports write
    them; never empty (a name that is only a prefix stays as it is)."""
    k = str(name).strip().casefold()
    stripped = _SUFFIX.sub("", _PREFIX.sub("", k))
    return stripped or k
