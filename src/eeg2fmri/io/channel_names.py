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


def compare_run_channels(good: list[list[str]], whole: list[list[str]]) -> str:
    """How the runs' EEG channels differ, as prepare resolves it.

    Parameters
    ----------
    good : list of list of str
        Every run's EEG channels not marked bad (file order).
    whole : list of list of str
        Every run's EEG channels, bad ones too (file order).

    Returns
    -------
    str
        ``"same"`` (the same names in the same order), ``"spelling"`` (the same channels in another order or spelled
        differently: :func:`channel_key`; prepare reads every run in the first run's order), ``"bads"`` (the same
        channels once the ones some runs mark bad are counted: prepare keeps them all and interpolates a run's bad ones)
        or ``"differ"`` (a run lacks channels or has others: prepare needs its option ``channels``).
    """
    if all(g == good[0] for g in good[1:]):
        return "same"

    def folded(names: list[str]) -> list[str]:  # case and EDF-style decorations ignored ("EEG Fp1-REF" is Fp1)
        return sorted(channel_key(n) for n in names)

    for kind, sets in (("spelling", good), ("bads", whole)):
        if len(set(folded(sets[0]))) == len(sets[0]) and all(folded(s) == folded(sets[0]) for s in sets[1:]):
            return kind
    return "differ"


def channel_difference(first: list[str], here: list[str]) -> tuple[list[str], list[str]]:
    """Channels of ``first`` that ``here`` lacks, and channels only ``here`` has, compared as channels are matched
    (:func:`channel_key`: FP1 is fp1, ``EEG Fp1-REF`` is Fp1)."""
    there, mine = {channel_key(c) for c in first}, {channel_key(c) for c in here}
    return [c for c in first if channel_key(c) not in mine], [c for c in here if channel_key(c) not in there]
