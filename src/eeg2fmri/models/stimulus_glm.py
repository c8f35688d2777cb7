"""``stimulus_glm``: the event regressors alone -- the baseline an event-related design must beat.

In an event-related or block design the BOLD follows the stimuli; a model that reads only the
recording's stimulus markers (the conditions of the prepare option ``events``), convolved with a
haemodynamic basis and fitted by ridge regression per output, is the field's standard GLM
(SPM/FSL/nilearn's first-level model with a canonical HRF, its derivatives, or FIR lags). An EEG
model that does not beat it has learned nothing the experimenter's log did not already say (user
test 48: every EEG model near chance in an auditory oddball where this GLM reached ROI r 0.22-0.42).

It is :class:`~eeg2fmri.models.ridge_hrf.RidgeHRF` with ``inputs="events"``: the same bases
(``hrf="auto"`` chooses canonical, informed basis or FIR lags on validation), penalties and
factored storage; ``benchmark`` adds it as a row wherever the data carry event regressors.
"""

from __future__ import annotations

from eeg2fmri.datasets.spec import DataSpec
from eeg2fmri.models.base import register_model
from eeg2fmri.models.ridge_hrf import RidgeHRF
from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["StimulusGLM"]


@register_model("stimulus_glm")
class StimulusGLM(RidgeHRF):
    """Ridge regression of every output on the event regressors convolved with a haemodynamic basis.

    Parameters
    ----------
    spec : DataSpec
        Band-power or tangent windows with event regressors (``spec.event_names``; prepare option
        ``events``); the EEG features are not read.
    alphas, hrf, alpha_per_target, factored, refit, hrf_select
        As :class:`~eeg2fmri.models.ridge_hrf.RidgeHRF`.
    """

    def __init__(self, spec: DataSpec, *, alphas: tuple[float, ...] | None = None, hrf: str = "auto", alpha_per_target: bool | str = False,
                 factored: bool | str = "auto", refit: bool = False, hrf_select: str = "mse") -> None:
        if not getattr(spec, "event_names", ()):
            raise Eeg2fmriInputError("stimulus_glm: expected windows with event regressors (the conditions of a task design), got windows "
                                     "without; prepare the data with the prepare option events (eeg2fmri prepare ... --config "
                                     "'{\"events\": \"auto\"}', or a list of marker names), or leave stimulus_glm out.")
        super().__init__(spec, alphas=alphas, hrf=hrf, alpha_per_target=alpha_per_target, factored=factored, refit=refit,
                         hrf_select=hrf_select, inputs="events")
