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

    rows = []
    for name in list_models():
        cls = get_model_class(name)
        doc = (cls.__doc__ or "").strip().splitlines()
        if not doc:  # (user test 34: a plugin class without a docstring got an empty column)
            doc = [f"(no docstring) {cls.__module__}.{cls.__qualname__}"]
        rows.append((name, "/".join(model_input_kinds(name)), doc[0], cls))
    # columns as wide as their longest entry (a model reading several inputs pushed the description out of line)
    w_name = max([len("model")] + [len(r[0]) for r in rows])
    w_in = max([len("inputs")] + [len(r[1]) for r in rows])
    print(f"{'model':{w_name}s}  {'inputs':{w_in}s}  description")
    for name, inputs, doc, cls in rows:
        print(f"{name:{w_name}s}  {inputs:{w_in}s}  {doc}")
        if getattr(args, "configs", False):
            cfg = getattr(cls, "recommended_train_config", None)
            what = "closed form (no training config)" if getattr(cls, "kind", "torch") == "sklearn" else json.dumps(cfg) if cfg else "the generic defaults"
            print(f"{'':{w_name}s}  train: {what}")
    return 0
