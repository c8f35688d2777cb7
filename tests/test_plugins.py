"""Models of your own, outside the package: plugins (EEG2FMRI_PLUGINS), registration rules, strict loading of saved weights.

A tester extended the package with a model in their own module: no command could see it, a saved model of it could
not be loaded in a new process, and a model whose code changed after saving loaded silently half-initialised.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from eeg2fmri.utils.validation import Eeg2fmriInputError

PLUGIN = textwrap.dedent('''
    import numpy as np
    from torch import nn
    from eeg2fmri.models import register_model


    @register_model("plug_linear")
    class PlugLinear(nn.Module):
        """A linear map from band-power windows to every output."""

        input_kinds = ("bandpower",)

        def __init__(self, spec, rank: int = 4):
            super().__init__()
            self.spec = spec
            self.enc = nn.Linear(int(np.prod(spec.input_shape)), int(rank))
            self.dec = nn.Linear(int(rank), spec.n_outputs)

        def forward(self, x, subject=None):
            return self.dec(self.enc(x.flatten(1)))
''')


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """``mylab_models`` on sys.path, named in EEG2FMRI_PLUGINS; the registry is restored afterwards."""
    import eeg2fmri.models.base as base
    import eeg2fmri.utils.plugins as plugins

    (tmp_path / "mylab_models.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("EEG2FMRI_PLUGINS", "mylab_models")
    saved, loaded = dict(base._REGISTRY), set(plugins._loaded)
    yield tmp_path
    base._REGISTRY.clear()
    base._REGISTRY.update(saved)
    plugins._loaded.clear()
    plugins._loaded.update(loaded)
    sys.modules.pop("mylab_models", None)


def test_a_plugin_model_trains_saves_and_loads_in_a_new_process(plugin, tiny_prepared, tmp_path):
    from eeg2fmri.cli import main
    from eeg2fmri.models import list_models, load_model

    assert "plug_linear" in list_models()
    prep = tiny_prepared.save(tmp_path / "prep")
    cfg = tmp_path / "train.yaml"
    cfg.write_text(f"out: run\ndata: {{prepared: {prep}}}\nmodel: {{name: plug_linear, hparams: {{rank: 3}}}}\n"
                   "optimizer: {max_epochs: 2}\ntrainer: {progress_bar: false, log: [csv], accelerator: cpu}\n")
    assert main(["train", str(cfg), "-q"]) == 0
    meta = json.loads((tmp_path / "run" / "model" / "model.json").read_text())
    assert meta["model"] == "plug_linear" and meta["module"] == "mylab_models"
    w = load_model(tmp_path / "run" / "model").model.enc.weight.detach().clone()
    # a new process that knows nothing of the plugin (no EEG2FMRI_PLUGINS) imports the module model.json names
    env = {k: v for k, v in os.environ.items() if k != "EEG2FMRI_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join([str(plugin), env.get("PYTHONPATH", "")])
    code = (f"from eeg2fmri.models import load_model; m = load_model({str(tmp_path / 'run' / 'model')!r}).model; "
            "import numpy as np; np.save('w.npy', m.enc.weight.detach().numpy())")
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, check=True, capture_output=True)
    np.testing.assert_array_equal(np.load(tmp_path / "w.npy"), w.numpy())


def test_plugin_errors_name_what_failed(monkeypatch):
    import eeg2fmri.utils.plugins as plugins
    from eeg2fmri.models import list_models

    monkeypatch.setattr(plugins, "_loaded", set())
    monkeypatch.setenv("EEG2FMRI_PLUGINS", "no_such_module_here")
    with pytest.raises(Eeg2fmriInputError, match=r"EEG2FMRI_PLUGINS: expected an importable module or \.py file, got 'no_such_module_here', "
                                                 r"which failed: ModuleNotFoundError"):
        list_models()
    monkeypatch.setenv("EEG2FMRI_PLUGINS", "/no/such/plugin.py")
    with pytest.raises(Eeg2fmriInputError, match=r"got '/no/such/plugin\.py', which failed: FileNotFoundError"):
        list_models()


def test_a_plugin_file_path_registers_its_layouts_and_models(tmp_path, monkeypatch):
    import eeg2fmri.models.base as base
    import eeg2fmri.utils.plugins as plugins
    from eeg2fmri.models import list_models

    (tmp_path / "my_models.py").write_text(PLUGIN.replace("plug_linear", "plug_file_linear"))
    monkeypatch.setattr(plugins, "_loaded", set())
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))
    monkeypatch.setenv("EEG2FMRI_PLUGINS", str(tmp_path / "my_models.py"))
    assert "plug_file_linear" in list_models()


@pytest.mark.parametrize("path_first", [False, True])
def test_a_plugin_file_imported_by_path_and_by_module_name_registers_once(tmp_path, monkeypatch, path_first):
    """User test 16: EEG2FMRI_PLUGINS named the model file by its path and the script imported the same file by module
    name (for the class): registering it twice was refused as another class. Either order now registers one model, and
    a file already imported by name is not run again."""
    import importlib

    import eeg2fmri.models.base as base
    import eeg2fmri.utils.plugins as plugins
    from eeg2fmri.models import get_model_class, list_models

    (tmp_path / "my_twice.py").write_text(PLUGIN.replace("plug_linear", "plug_twice") + "\nRUNS = globals().get('RUNS', 0) + 1\n")
    monkeypatch.setattr(plugins, "_loaded", set())
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("EEG2FMRI_PLUGINS", str(tmp_path / "my_twice.py"))
    try:
        if path_first:
            assert "plug_twice" in list_models()
            mod = importlib.import_module("my_twice")  # a second execution of the file (another module name): replaces
            assert get_model_class("plug_twice") is mod.PlugLinear
        else:
            mod = importlib.import_module("my_twice")
            assert "plug_twice" in list_models() and get_model_class("plug_twice") is mod.PlugLinear
            assert "eeg2fmri_plugin_my_twice" not in sys.modules  # not run again under the plugin's module name
    finally:
        sys.modules.pop("my_twice", None)
        sys.modules.pop("eeg2fmri_plugin_my_twice", None)
    # a dataset layout file named by path and imported by module name registers once too (review)
    import eeg2fmri.io.layouts._base as lbase

    monkeypatch.setattr(lbase, "_REGISTRY", dict(lbase._REGISTRY))
    (tmp_path / "my_layout_twice.py").write_text(
        "from eeg2fmri.io.layouts import Layout, register_layout\n\n\n@register_layout('layout_twice')\nclass MyLayout(Layout):\n"
        "    def detect(self, root):\n        return False\n\n    def scan(self, root, subjects=None, **options):\n        return None  # never called\n")
    try:
        plugins.import_plugin(str(tmp_path / "my_layout_twice.py"))
        importlib.import_module("my_layout_twice")
        assert type(lbase._REGISTRY["layout_twice"]).__name__ == "MyLayout"
    finally:
        sys.modules.pop("my_layout_twice", None)
        sys.modules.pop("eeg2fmri_plugin_my_layout_twice", None)
    # a different class of the same name in another file is still refused
    (tmp_path / "other.py").write_text(PLUGIN.replace("plug_linear", "plug_twice"))
    with pytest.raises(Eeg2fmriInputError, match=r"register_model\('plug_twice'\): expected a free name, found it taken by"):
        plugins.import_plugin(str(tmp_path / "other.py"))


def test_registration_rules(monkeypatch):
    import eeg2fmri.models.base as base
    from eeg2fmri.models import build_model, get_model_class, register_model
    from eeg2fmri.models.base import DataSpec

    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))
    get_model_class("ridge_hrf")  # the package's models are registered
    with pytest.raises(Eeg2fmriInputError, match=r"register_model\('ridge_hrf'\): expected a free name, found it taken by "
                                                 r"eeg2fmri\.models\.ridge_hrf\.RidgeHRF; register tests\.test_plugins\..+Mine under another name"):
        @register_model("ridge_hrf")
        class Mine(nn.Module):
            def __init__(self, spec):
                super().__init__()

    with pytest.raises(Eeg2fmriInputError, match=r"expected tests\.test_plugins\..+NoSpec\.__init__\(self, spec, \*\*hyperparameters\) .* found \(n_in, n_out\)"):
        @register_model("_no_spec")
        class NoSpec(nn.Module):
            def __init__(self, n_in, n_out):
                super().__init__()

    def make(scale):
        class Net(nn.Module):  # the same module and name twice: a notebook's importlib.reload
            def __init__(self, spec, rank: int = 2):
                super().__init__()
                self.scale = scale
                self.lin = nn.Sequential(nn.Linear(int(np.prod(spec.input_shape)), rank), nn.Linear(rank, spec.n_outputs))

        return Net

    first, second = register_model("_reloaded")(make(1)), register_model("_reloaded")(make(2))
    assert first is not second and get_model_class("_reloaded") is second
    spec = DataSpec(input_kind="bandpower", input_shape=(3, 2, 4), output_shape=(5,), sfreq=250.0, tr=2.0)
    with pytest.raises(Eeg2fmriInputError, match=r"model '_reloaded': could not be built with hyperparameters \{'rank': 'four'\} for bandpower "
                                                 r"windows \(3, 2, 4\) -> outputs \(5,\): TypeError"):
        build_model("_reloaded", spec, rank="four")
    with pytest.raises(Eeg2fmriInputError, match=r"unknown model 'ridge_hfr' \(did you mean 'ridge_hrf'\?\); choose one of: .* "
                                                 r"EEG2FMRI_PLUGINS environment variable"):
        get_model_class("ridge_hfr")


def test_saved_weights_must_fit_the_model_as_defined_now(tiny_prepared, tmp_path):
    """Weights of a model whose code changed since saving (a layer renamed or resized) are refused, not loaded in part."""
    from safetensors.torch import load_file, save_file

    from eeg2fmri.datasets.targets import make_split
    from eeg2fmri.models import load_model, save_model
    from eeg2fmri.training import fit_model

    split = make_split(tiny_prepared, "within")
    res = fit_model(tiny_prepared, split, "eeg2fmri_net", {"n_members": 2}, train_config={"optimizer": {"max_epochs": 1},
                                                                                          "trainer": {"progress_bar": False, "accelerator": "cpu"}})
    assert res.model.registry_name == "eeg2fmri_net"  # evaluations label a fitted torch model by its registry name (they said "model")
    kw = dict(spec=res.spec, name="eeg2fmri_net", hparams={"n_members": 2}, mask=tiny_prepared.mask, affine=tiny_prepared.affine,
              window={"n_frames": split.n_frames, "lag": split.lag}, prepare={})
    out = save_model(res.model, tmp_path / "m", **kw)
    loaded = load_model(out)  # as saved: fine
    params = dict(loaded.model.named_parameters())
    # LoadedModel.predict: the fitted model's predictions, and windows of another shape refused with the expected one
    x = np.random.default_rng(0).standard_normal((3, *res.spec.input_shape)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(x), res.model.predict(x), atol=1e-5)
    with pytest.raises(Eeg2fmriInputError, match=r"eeg2fmri_net: expected windows of shape \(n, "):
        loaded.predict(x[:, :, :, :-1])
    w = load_file(str(out / "weights.safetensors"))
    key = next(k for k in w if k in params)
    renamed = dict(w)
    renamed["renamed." + key] = renamed.pop(key)
    save_file(renamed, str(out / "weights.safetensors"))
    k = re.escape(key)
    with pytest.raises(Eeg2fmriInputError, match=rf"weights\.safetensors: expected the weights of the model 'eeg2fmri_net' as its code defines it now, "
                                                 rf"found 1 missing \({k}\) and 1 unexpected \(renamed\.{k}\) tensor"):
        load_model(out)
    resized = dict(w)
    resized[key] = torch.zeros(tuple(s + 1 for s in w[key].shape))
    save_file(resized, str(out / "weights.safetensors"))
    with pytest.raises(Eeg2fmriInputError, match=r"the saved weights do not fit the model 'eeg2fmri_net' as its code defines it now \(.*size mismatch"):
        load_model(out)


def test_an_entry_point_plugin_is_imported_once(plugin, monkeypatch):
    """An installed distribution's `eeg2fmri.plugins` entry point names the module; the scan runs once per process."""
    import types

    import eeg2fmri.utils.plugins as plugins
    from eeg2fmri.models import list_models

    monkeypatch.delenv("EEG2FMRI_PLUGINS")
    calls = []

    def fake_entry_points(group):
        calls.append(group)
        return [types.SimpleNamespace(name="mylab", value="mylab_models:PlugLinear")]

    monkeypatch.setattr(plugins, "entry_points", fake_entry_points)
    monkeypatch.setattr(plugins, "_entry_points_read", False)
    assert "plug_linear" in list_models() and "plug_linear" in list_models()
    assert calls == ["eeg2fmri.plugins"]


def test_a_plugin_package_of_the_working_directory_imports_from_the_console_script(tmp_path):
    """EEG2FMRI_PLUGINS=mylab.models from the folder holding mylab/models.py, as the README's example does: the console
    script (unlike python -c) does not put the working directory on sys.path, and the import failed (docs audit)."""
    (tmp_path / "mylab").mkdir()
    (tmp_path / "mylab" / "__init__.py").write_text("")
    (tmp_path / "mylab" / "models.py").write_text(PLUGIN)
    env = {**os.environ, "EEG2FMRI_PLUGINS": "mylab.models"}
    env.pop("PYTHONPATH", None)
    code = "import sys; from eeg2fmri.cli import main; sys.exit(main(['models']))"
    # -P: no working directory on sys.path, as for the eeg2fmri console script
    done = subprocess.run([sys.executable, "-P", "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "plug_linear" in done.stdout
    # elsewhere the module is still not found, with the message that names it
    other = tmp_path / "elsewhere"
    other.mkdir()
    done = subprocess.run([sys.executable, "-P", "-c", code], cwd=other, env=env, capture_output=True, text=True)
    assert done.returncode == 2 and "got 'mylab.models', which failed: ModuleNotFoundError" in done.stderr


def test_registration_checks_the_calls_models_get(monkeypatch, tiny_prepared):
    """A torch model's forward must take subject (every command calls model(x, subject=...)); a closed-form one needs the
    methods train saves it with; a model that does not keep its DataSpec gets it from build_model (explain reads it)
    (user test 25: raw tracebacks after fitting, and explain refused the README's own example)."""
    import eeg2fmri.models.base as base
    from eeg2fmri.models import build_model, register_model
    from eeg2fmri.models.base import DataSpec

    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))
    with pytest.raises(Eeg2fmriInputError, match=r"register_model\('_no_subject'\): expected tests\.test_plugins\..+NoSubject\.forward\(self, x, "
                                                 r"subject=None\) .* found \(self, x\); add subject=None"):
        @register_model("_no_subject")
        class NoSubject(nn.Module):
            def __init__(self, spec):
                super().__init__()

            def forward(self, x):
                return x

    with pytest.raises(Eeg2fmriInputError, match=r"register_model\('_no_save'\): a closed-form model \(kind = 'sklearn'\) needs the methods .* "
                                                 r"lacks \['state_dict', 'load_state_dict'\]"):
        @register_model("_no_save")
        class NoSave:
            kind = "sklearn"

            def __init__(self, spec):
                pass

            def fit(self, x, y, x_val=None, y_val=None):
                return self

            def predict(self, x, subject=None):
                return x

            def get_params(self):
                return {}

    with pytest.raises(Eeg2fmriInputError, match=r"register_model\('_sk_fit'\): expected .*SkFit.fit\(self, x, y, x_val, y_val\) .*found \(x, y\); "
                                                 r"add x_val=None, y_val=None to its parameters"):
        @register_model("_sk_fit")  # (user test 41: scikit-learn's fit(X, y) registered, then train crashed with a TypeError)
        class SkFit:
            kind = "sklearn"

            def __init__(self, spec):
                pass

            def fit(self, x, y):
                return self

            def predict(self, x, subject=None):
                return x

            def state_dict(self):
                return {}

            def load_state_dict(self, state):
                pass

    @register_model("_keeps_no_spec")
    class KeepsNoSpec(nn.Module):
        def __init__(self, spec, width: int = 3):
            super().__init__()
            self.lin = nn.Linear(int(np.prod(spec.input_shape)), spec.n_outputs)

        def forward(self, x, subject=None):
            return self.lin(x.flatten(1))

    spec = DataSpec(input_kind="bandpower", input_shape=(3, 2, 4), output_shape=(5,), sfreq=250.0, tr=2.0)
    assert build_model("_keeps_no_spec", spec).spec is spec


def test_a_plugin_file_is_recorded_where_results_and_models_need_it(tmp_path, monkeypatch, tiny_prepared):
    """User test 25: a model of a .py plugin left no trace: config.yaml and load_model failed in a fresh shell, and no
    result said which code it ran. Now the resolved config lists the plugin, provenance has its file and sha256, and
    model.json the file that load_model imports."""
    import hashlib

    import eeg2fmri.models.base as base
    import eeg2fmri.utils.plugins as plugins
    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.training import fit_model, resolve_config, save_fit
    from eeg2fmri.utils.provenance import software

    src = tmp_path / "lab_file_models.py"
    src.write_text(PLUGIN.replace("plug_linear", "plug_recorded"))
    monkeypatch.setattr(plugins, "_loaded", set())
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))
    cfg = resolve_config({"data": {"prepared": "p"}, "model": {"name": "plug_recorded"}, "plugins": [str(src)]})
    assert cfg["plugins"] == [str(src)]
    rec = software()["plugins"]
    assert rec == [{"plugin": str(src), "file": str(src), "sha256": hashlib.sha256(src.read_bytes()).hexdigest()}]
    # in a config file, a relative plugin path is taken from the config's folder (a review: from the working directory)
    from eeg2fmri.training.config import load_config

    (tmp_path / "cfgdir").mkdir()
    (tmp_path / "cfgdir" / "c.yaml").write_text("data: {prepared: p}\nmodel: {name: plug_recorded}\nplugins: [../lab_file_models.py]\n")
    monkeypatch.chdir(tmp_path / "cfgdir" / "..")
    assert load_config(tmp_path / "cfgdir" / "c.yaml")["plugins"] == [str(src)]
    with pytest.raises(Eeg2fmriInputError, match=r"plugins: expected a list of module names or \.py file paths"):
        resolve_config({"data": {"prepared": "p"}, "model": {"name": "plug_recorded"}, "plugins": [3]})
    sp = make_split(tiny_prepared, "within")
    fitted = fit_model(tiny_prepared, sp, "plug_recorded", train_config={"optimizer": {"max_epochs": 1}, "trainer": {"accelerator": "cpu"}},
                       targets=split_targets(tiny_prepared, sp), progress_bar=False)
    model = save_fit(fitted, tmp_path / "model")
    meta = json.loads((model / "model.json").read_text())
    assert meta["plugin_file"] == str(src) and meta["software"]["plugins"][0]["plugin"] == str(src)
    # a new process that knows nothing of the plugin loads the model through the file model.json names
    env = {k: v for k, v in os.environ.items() if k != "EEG2FMRI_PLUGINS"}
    code = f"from eeg2fmri.models import load_model; print(type(load_model({str(model)!r}).model).__name__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "PlugLinear"
    # user test 41: model.json kept only the given hyperparameters, so a default changed in the plugin's code since
    # rebuilt another model silently; now every value is saved, a changed default is warned and the saved one used
    assert meta["hparams_effective"] == {"rank": 4} and meta["model_source"]["file"] == str(src)
    assert "## hyperparameters (as built, defaults included)\n```\n{\n \"rank\": 4\n}" in (model / "MODEL_CARD.md").read_text()
    src.write_text(PLUGIN.replace("plug_linear", "plug_recorded").replace("rank: int = 4", "rank: int = 6"))
    code = f"from eeg2fmri.models import load_model; print(load_model({str(model)!r}).model.enc.out_features)"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "4"
    assert "now has other defaults than when this model was saved (rank: saved 4, now 6); it is built with the saved values" in out.stderr
    assert f"the source file of model 'plug_recorded' ({src}) changed since this model was saved" in out.stderr


def test_a_closed_form_plugin_on_sklearn_base_estimator_saves_and_reloads(tmp_path, monkeypatch, tiny_prepared):
    """User test 31: save_fit wrote model.get_params() to JSON, and a scikit-learn BaseEstimator lists its spec there
    (TypeError: ... not 'DataSpec'). The spec is left out; the reloaded model predicts the same."""
    from sklearn.base import BaseEstimator, clone
    from sklearn.linear_model import Ridge

    import eeg2fmri.models.base as base
    from eeg2fmri.datasets import WindowDataset
    from eeg2fmri.datasets.targets import make_split
    from eeg2fmri.models import load_model
    from eeg2fmri.models.base import register_model
    from eeg2fmri.training import fit_model, save_fit

    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))

    @register_model("_sk_ridge")
    class SkRidge(BaseEstimator):
        kind = "sklearn"

        def __init__(self, spec, alpha: float = 3.0):
            self.spec, self.alpha = spec, alpha

        def fit(self, x, y, x_val=None, y_val=None):
            self.ridge_ = Ridge(alpha=self.alpha).fit(np.asarray(x).reshape(len(x), -1), np.asarray(y).reshape(len(y), -1))
            return self

        def predict(self, x, subject=None):
            return self.ridge_.predict(np.asarray(x).reshape(len(x), -1)).astype(np.float32)

        def state_dict(self):
            return {"coef": self.ridge_.coef_, "intercept": self.ridge_.intercept_}

        def load_state_dict(self, state):
            self.ridge_ = Ridge(alpha=self.alpha)
            self.ridge_.coef_, self.ridge_.intercept_ = np.asarray(state["coef"]), np.asarray(state["intercept"])
            self.ridge_.n_features_in_ = self.ridge_.coef_.shape[1]
            return self

    split = make_split(tiny_prepared, "within")
    res = fit_model(tiny_prepared, split, "_sk_ridge", {"alpha": 7.0})
    assert set(clone(res.model).get_params()) == {"spec", "alpha"}
    save_fit(res, tmp_path / "sk")
    assert json.loads((tmp_path / "sk" / "model.json").read_text())["hparams"] == {"alpha": 7.0}
    again = load_model(tmp_path / "sk")
    wd = WindowDataset(tiny_prepared, selection=split.selections["test"], n_frames=split.n_frames, lag=split.lag)
    xb = np.stack([np.asarray(wd[i][0]) for i in range(5)])
    np.testing.assert_array_equal(again.predict(xb), res.model.predict(xb))


def test_a_metric_in_the_plugin_file_does_not_register_its_models_again(tmp_path, monkeypatch):
    """User test 31: extra_metrics={"m": "plugin.py:fn"} ran the plugin file a second time as another module, whose model
    was then refused as a clash with itself; the file imported as a plugin is reused."""
    import eeg2fmri.models.base as base
    import eeg2fmri.utils.plugins as plugins
    from eeg2fmri.workflows.evaluate import resolve_metrics

    monkeypatch.setattr(plugins, "_loaded", set())
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))
    src = tmp_path / "lab_metric_models.py"
    src.write_text(PLUGIN.replace("plug_linear", "plug_metric") + "\n\ndef spearman(y, p):\n    return 0.5\n")
    plugins.import_plugin(str(src))
    fn = resolve_metrics({"s": f"{src}:spearman"})["s"]
    assert fn(None, None) == 0.5 and fn.__module__ == "eeg2fmri_plugin_lab_metric_models"
    # a metric file of its own is imported once, as a module of its own
    other = tmp_path / "only_metrics.py"
    other.write_text("def mad(y, p):\n    return 1.5\n")
    assert resolve_metrics({"m": f"{other}:mad"})["m"](None, None) == 1.5
    with pytest.raises(Eeg2fmriInputError, match=r"metric 'b': could not import .*broken\.py:f' \(ZeroDivisionError"):
        (tmp_path / "broken.py").write_text("1 / 0\n")
        resolve_metrics({"b": f"{tmp_path / 'broken.py'}:f"})
    import sys

    assert "eeg2fmri_metric_broken" not in sys.modules
    sys.modules.pop("eeg2fmri_plugin_lab_metric_models", None)
    sys.modules.pop("eeg2fmri_metric_only_metrics", None)


def test_rerun_warns_when_a_plugin_file_changed(tmp_path, monkeypatch, caplog):
    """User test 34: re-running a run's config.yaml after editing the plugin's default dropout moved the test r in silence
    (metrics.json recorded the plugin's sha256, nothing compared it)."""
    import json
    import logging

    import eeg2fmri.utils.plugins as plugins
    from eeg2fmri.workflows.train import changed_plugins

    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"software": {"plugins": [{"plugin": "mylab.models", "file": "/x/mylab/models.py", "sha256": "a" * 64}]}}))
    monkeypatch.setattr(plugins, "named_plugins", lambda: [{"plugin": "mylab.models", "file": "/x/mylab/models.py", "sha256": "b" * 64}])
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        assert changed_plugins(metrics) == ["mylab.models"]
    assert f"plugin mylab.models: its file /x/mylab/models.py differs from the one the run in {tmp_path} was trained with (sha256 aaaaaaaaaaaa..., " \
           "now bbbbbbbbbbbb...)" in caplog.text
    monkeypatch.setattr(plugins, "named_plugins", lambda: [{"plugin": "mylab.models", "file": "/x/mylab/models.py", "sha256": "a" * 64}])
    assert changed_plugins(metrics) == []
    assert changed_plugins(tmp_path / "none.json") == []


def test_effective_hparams_are_the_defaults_with_the_given_ones_over_them():
    """User test 34: a run recorded only the hyperparameters given (ridge_hrf: {}); metrics.json now holds them all."""
    import inspect

    from eeg2fmri.models import get_model_class
    from eeg2fmri.models.base import effective_hparams

    hp = effective_hparams("ridge_hrf", {"hrf": "canonical"})
    sig = inspect.signature(get_model_class("ridge_hrf").__init__).parameters
    assert hp["hrf"] == "canonical" and set(hp) == {p for p in sig if p not in ("self", "spec")}
    assert all(hp[k] == sig[k].default for k in hp if k != "hrf")


def test_models_command_names_a_plugin_without_docstring(monkeypatch, capsys):
    """User test 34: a plugin class without a docstring got an empty description in `eeg2fmri models`."""
    import eeg2fmri.models.base as base
    from eeg2fmri.cli import main
    from eeg2fmri.models import register_model

    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))

    @register_model("_undocumented")
    class Undocumented(nn.Module):
        input_kinds = ("bandpower",)

        def __init__(self, spec):
            super().__init__()

    assert main(["models"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("_undocumented"))
    assert "(no docstring) tests.test_plugins." in line and "Undocumented" in line


def test_benchmark_workers_import_the_plugins_of_a_config(tmp_path, monkeypatch):
    """User test 41: a plugin named only in --train-config's plugins was imported by the main process but not by the
    fold workers (--jobs > 1): every fold failed with "unknown model". The workers now import what the main process did."""
    import eeg2fmri.models.base as base
    import eeg2fmri.utils.plugins as plugins
    from eeg2fmri.models.base import list_models
    from eeg2fmri.workflows.benchmark import fold_executor

    src = tmp_path / "cfg_only_models.py"
    src.write_text(PLUGIN.replace("plug_linear", "plug_in_workers"))
    monkeypatch.delenv("EEG2FMRI_PLUGINS", raising=False)
    monkeypatch.setattr(plugins, "_loaded", set())
    monkeypatch.setattr(plugins, "_named", {})
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))
    plugins.import_plugin(str(src), source="train config plugins")
    with fold_executor(1) as pool:
        assert "plug_in_workers" in pool.submit(list_models).result(timeout=120)


def test_a_model_of_a_working_directory_plugin_loads_from_another_folder(tmp_path):
    """User test 41: a plugin module found in the working directory (mylab.models) was recorded by name only, so its saved
    model did not load from another folder; model.json now records the module's file (model_source), imported when the
    module name is not importable."""
    (tmp_path / "mylab").mkdir()
    (tmp_path / "mylab" / "__init__.py").write_text("")
    (tmp_path / "mylab" / "models.py").write_text(PLUGIN)
    env = {**os.environ, "EEG2FMRI_PLUGINS": "mylab.models"}
    env.pop("PYTHONPATH", None)
    save = textwrap.dedent(f"""
        import numpy as np
        from eeg2fmri.models import DataSpec, build_model, save_model
        spec = DataSpec(input_kind="bandpower", input_shape=(3, 2, 4), output_shape=(5,), sfreq=250.0, tr=2.0)
        save_model(build_model("plug_linear", spec), {str(tmp_path / 'm')!r}, spec=spec, name="plug_linear", hparams={{}},
                   mask=np.ones((5, 1, 1), bool), affine=np.eye(4), window={{"n_frames": 4, "lag": 0}}, prepare={{}})
    """)
    done = subprocess.run([sys.executable, "-P", "-c", save], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    other = tmp_path / "elsewhere"
    other.mkdir()
    env.pop("EEG2FMRI_PLUGINS")
    load = f"from eeg2fmri.models import load_model; print(type(load_model({str(tmp_path / 'm')!r}).model).__name__)"
    done = subprocess.run([sys.executable, "-P", "-c", load], cwd=other, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "PlugLinear"


def test_defaults_json_cannot_hold_save_and_nan_defaults_load_quietly(tmp_path, monkeypatch, caplog):
    """A review: saving every default (hparams_effective) crashed for a model whose default is a class, and a NaN default
    was warned as changed at every load. Such defaults are listed (repr) but not saved; NaN equals NaN."""
    import logging

    import eeg2fmri.models.base as base
    from eeg2fmri.models import DataSpec, build_model, load_model, register_model, save_model

    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))

    @register_model("_odd_defaults")
    class OddDefaults(nn.Module):
        def __init__(self, spec, act=nn.GELU, thr: float = float("nan"), width: int = 2):
            super().__init__()
            self.lin = nn.Linear(int(np.prod(spec.input_shape)), spec.n_outputs)

        def forward(self, x, subject=None):
            return self.lin(x.flatten(1))

    spec = DataSpec(input_kind="bandpower", input_shape=(3, 2, 4), output_shape=(5,), sfreq=250.0, tr=2.0)
    out = save_model(build_model("_odd_defaults", spec), tmp_path / "m", spec=spec, name="_odd_defaults", hparams={}, mask=np.ones((5, 1, 1), bool),
                     affine=np.eye(4), window={"n_frames": 4, "lag": 0}, prepare={})
    meta = json.loads((out / "model.json").read_text())
    assert set(meta["hparams_effective"]) == {"thr", "width"} and meta["hparams_effective"]["width"] == 2
    assert np.isnan(meta["hparams_effective"]["thr"])
    assert "act" not in meta["hparams_effective"] and "GELU" in meta["hparams_not_saved"]["act"]
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        load_model(out)
    assert "other defaults" not in caplog.text
