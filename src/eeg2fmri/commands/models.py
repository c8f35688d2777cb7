"""``eeg2fmri models``."""

from __future__ import annotations

NAME = "models"
ORDER = 90
HELP = "list the registered models"
DESCRIPTION = ("List every registered model with its one-line description and the inputs it reads; --configs also prints "
               "the training config `eeg2fmri benchmark` gives it (its recommended_train_config).")


def add_arguments(p) -> None:
    p.add_argument("--configs", action="store_true", help="also print each torch model's recommended training config")


def run(args) -> int:
    import json

    from eeg2fmri.models import get_model_class, list_models
    from eeg2fmri.models.base import model_input_kinds

    for name in list_models():
        cls = get_model_class(name)
        doc = (cls.__doc__ or "").strip().splitlines()
        print(f"{name:22s} {'/'.join(model_input_kinds(name)):18s} {doc[0] if doc else ''}")
        if getattr(args, "configs", False):
            cfg = getattr(cls, "recommended_train_config", None)
            what = "closed form (no training config)" if getattr(cls, "kind", "torch") == "sklearn" else json.dumps(cfg) if cfg else "the generic defaults"
            print(f"{'':22s} train: {what}")
    return 0
