"""Models from outside netsight: SPEC forms, weights files, and the errors for each way they go wrong."""

import pickle
import textwrap

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from netsight.errors import NetsightError
from netsight.models.external import load_external_model, read_state_dict

SMALL_NET = textwrap.dedent("""
    import torch
    from torch import nn

    class SmallNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            return self.fc(torch.relu(self.conv(x)).mean((2, 3)))

    def build():
        return SmallNet()

    not_a_model = 42

    def returns_a_string():
        return "hello"
""")


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "mynet.py"
    path.write_text(SMALL_NET)
    return path


def test_torchvision_spec_carries_its_own_preprocessing_and_classes(tmp_path):
    m = load_external_model("torchvision:resnet18")
    assert isinstance(m.module, nn.Module) and not m.module.training
    assert (m.preprocessing.resize, m.preprocessing.crop) == (256, 224)
    assert m.preprocessing.mean == pytest.approx((0.485, 0.456, 0.406))
    assert len(m.categories) == 1000 and m.categories[1] == "goldfish" and m.input_channels == 3
    small = load_external_model("torchvision:resnet18", input_size=112)
    assert (small.preprocessing.resize, small.preprocessing.crop) == (128, 112)


def test_weights_fill_a_model_built_without_initialisation(tmp_path):
    torch.manual_seed(0)
    reference = load_external_model("torchvision:resnet18").module
    save_file(reference.state_dict(), str(tmp_path / "w.safetensors"))
    loaded = load_external_model("torchvision:resnet18", tmp_path / "w.safetensors").module
    assert not any(t.is_meta for t in list(loaded.parameters()) + list(loaded.buffers()))
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), reference(x))


def test_file_and_module_specs(user_file, tmp_path, monkeypatch):
    m = load_external_model(f"{user_file}:SmallNet")
    assert type(m.module).__name__ == "SmallNet" and m.input_channels == 1 and m.categories is None
    assert m.preprocessing.mean is None
    assert type(load_external_model(f"{user_file}:build").module).__name__ == "SmallNet"
    monkeypatch.syspath_prepend(str(tmp_path))
    assert type(load_external_model("mynet:build").module).__name__ == "SmallNet"
    norm = load_external_model("mynet:build", mean=(0.5,), std=(0.25,), input_size=20).preprocessing
    assert (norm.mean, norm.std, norm.resize, norm.crop) == ((0.5,), (0.25,), 20, 20)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("torchvision:resnet19", "did you mean resnet18"),
        ("resnet18", "expected torchvision:NAME"),
        ("no_such_package_xyz.models:build", "cannot import no_such_package_xyz.models"),
        ("missing/file.py:Net", "no such file"),
    ],
)
def test_specs_that_do_not_resolve(spec, message):
    with pytest.raises(NetsightError, match=message):
        load_external_model(spec)


def test_user_file_errors(user_file):
    with pytest.raises(NetsightError, match="has no SmalNet; did you mean SmallNet"):
        load_external_model(f"{user_file}:SmalNet")
    with pytest.raises(NetsightError, match="not a class or factory"):
        load_external_model(f"{user_file}:not_a_model")
    with pytest.raises(NetsightError, match="returned a str, not a torch.nn.Module"):
        load_external_model(f"{user_file}:returns_a_string")
    broken = user_file.with_name("broken.py")
    broken.write_text("import torch\nraise RuntimeError('boom')\n")
    with pytest.raises(NetsightError, match="importing .*broken.py failed: RuntimeError: boom"):
        load_external_model(f"{broken}:Net")


def test_state_dict_forms(user_file, tmp_path):
    torch.manual_seed(0)
    state = load_external_model(f"{user_file}:SmallNet").module.state_dict()
    torch.save(state, tmp_path / "plain.pt")
    torch.save({"epoch": 3, "state_dict": state}, tmp_path / "checkpoint.pth")
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "parallel.pt")
    for name in ("plain.pt", "checkpoint.pth", "parallel.pt"):
        loaded = load_external_model(f"{user_file}:SmallNet", tmp_path / name).module.state_dict()
        assert all(torch.equal(loaded[k], state[k]) for k in state), name


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_pickle_holding_code_is_never_run(tmp_path, capsys):
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"conv.weight": Payload()}, f, protocol=2)
    with pytest.raises(NetsightError, match="weights_only=True"):
        read_state_dict(tmp_path / "evil.pt")
    assert "must never run" not in capsys.readouterr().out


def test_weights_that_do_not_fit_name_the_first_key(user_file, tmp_path):
    torch.manual_seed(0)
    state = load_external_model(f"{user_file}:SmallNet").module.state_dict()
    missing = {k: v for k, v in state.items() if k != "fc.bias"}
    save_file(missing, str(tmp_path / "missing.safetensors"))
    with pytest.raises(NetsightError, match=r"key fc\.bias \(shape \(3,\)\) is missing"):
        load_external_model(f"{user_file}:SmallNet", tmp_path / "missing.safetensors")
    shaped = dict(state, **{"fc.weight": torch.zeros(5, 4)})
    save_file(shaped, str(tmp_path / "shape.safetensors"))
    with pytest.raises(NetsightError, match=r"key fc\.weight has shape \(5, 4\) in the file, \(3, 4\) in the model"):
        load_external_model(f"{user_file}:SmallNet", tmp_path / "shape.safetensors")
    extra = dict(state, **{"head.weight": torch.zeros(1)})
    save_file(extra, str(tmp_path / "extra.safetensors"))
    with pytest.raises(NetsightError, match="key head.weight is not in the model"):
        load_external_model(f"{user_file}:SmallNet", tmp_path / "extra.safetensors")
    with pytest.raises(NetsightError, match=r"conv1\.weight .* is missing"):
        load_external_model("torchvision:resnet18", tmp_path / "extra.safetensors")


def test_damaged_or_foreign_weight_files(tmp_path, user_file):
    (tmp_path / "cut.safetensors").write_bytes(b"\x10\x00\x00")
    (tmp_path / "junk.pt").write_bytes(b"not a pickle at all")
    (tmp_path / "w.npz").write_bytes(b"")
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    for name, message in (
        ("cut.safetensors", "not a readable safetensors file"),
        ("junk.pt", "weights_only=True"),
        ("w.npz", "expected a .safetensors, .pt or .pth"),
        ("list.pt", "expected a state dict"),
        ("absent.pt", "absent.pt"),
    ):
        with pytest.raises(NetsightError, match=message):
            load_external_model(f"{user_file}:SmallNet", tmp_path / name)


def test_mean_and_std_are_checked(user_file):
    with pytest.raises(NetsightError, match="go together"):
        load_external_model(f"{user_file}:SmallNet", mean=(0.5,))
    with pytest.raises(NetsightError, match="takes 1 input channel"):
        load_external_model(f"{user_file}:SmallNet", mean=(0.5, 0.5, 0.5), std=(1, 1, 1))
    with pytest.raises(NetsightError, match="must be > 0"):
        load_external_model(f"{user_file}:SmallNet", mean=(0.5,), std=(0.0,))


# ------------------------------------------------------------------ the user's code raising: the user's error

FAILING = textwrap.dedent("""
    import torch
    from torch import nn

    class Base(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            return self.fc(torch.relu(self.conv(x)).mean((2, 3)))

    class InConstructor(Base):
        def __init__(self):
            super().__init__()
            raise ValueError("no config file found")

    class InForward(Base):
        def forward(self, x):
            return {"a": 1}["b"]

    class ShapeMismatch(Base):
        def forward(self, x):
            return self.fc(self.conv(x).flatten(1))

    class Pair(nn.Module):
        def forward(self, x):
            return x, x

    class WithPair(Base):
        def __init__(self):
            super().__init__()
            self.pair = Pair()

        def forward(self, x):
            return super().forward(self.pair(x)[0])

    def sequential():
        return nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(100, 3))
""")


def _line_of(source: str, text: str) -> int:
    return next(i for i, line in enumerate(source.splitlines(), 1) if text in line)


@pytest.fixture
def failing(tmp_path):
    path = tmp_path / "failing.py"
    path.write_text(FAILING)
    return path


def test_an_exception_in_the_constructor_names_the_users_line(failing):
    from netsight.errors import UserCodeError

    with pytest.raises(UserCodeError, match=r"calling InConstructor\(\) raised ValueError: no config file found") as e:
        load_external_model(f"{failing}:InConstructor")
    assert (e.value.filename, e.value.lineno) == (str(failing), _line_of(FAILING, "no config file found"))
    assert isinstance(e.value.__cause__, ValueError) and isinstance(e.value, NetsightError)


@pytest.mark.parametrize(
    "name, kind, line",
    [
        ("InForward", "KeyError: 'b'", 'return {"a": 1}["b"]'),
        ("ShapeMismatch", "RuntimeError: mat1 and mat2 shapes cannot be multiplied", "self.fc(self.conv(x).flatten(1))"),
    ],
)
def test_an_exception_in_forward_names_the_users_line(failing, name, kind, line):
    from netsight.errors import UserCodeError
    from netsight.models.external import is_guarded

    m = load_external_model(f"{failing}:{name}").module
    assert is_guarded(m)
    with pytest.raises(UserCodeError, match=rf"the model's forward pass raised {kind}.* on input \[2, 1, 8, 8\]") as e:
        m(torch.rand(2, 1, 8, 8))
    assert (e.value.filename, e.value.lineno) == (str(failing), _line_of(FAILING, line))  # torch's frames skipped


def test_a_model_made_of_torch_layers_only_is_still_the_models_error(failing):
    from netsight.errors import UserCodeError

    m = load_external_model(f"{failing}:sequential").module
    with pytest.raises(
        UserCodeError, match=r"mat1 and mat2 .* no line of the model's own code is in the traceback\); the error is in the model"
    ):
        m(torch.rand(2, 1, 8, 8))


def test_netsights_own_exceptions_and_interrupts_pass_unchanged(failing, monkeypatch):
    from netsight.ops.deconvnet_graph import forward_to
    from netsight.ops.hooks import capture_outputs

    m = load_external_model(f"{failing}:WithPair").module
    x = torch.rand(2, 1, 8, 8)
    assert forward_to(m, "conv", x).shape == (2, 4, 6, 6)  # its hook's control-flow exception went through the guard
    with pytest.raises(AttributeError, match="'tuple' object has no attribute 'detach'"):
        with capture_outputs(m, ["pair"]):  # netsight's hook fails on a tuple: a bug of netsight's, not the user's
            m(x)

    def interrupt(self, x):
        raise KeyboardInterrupt

    monkeypatch.setattr(type(m), "forward", interrupt)
    with pytest.raises(KeyboardInterrupt):
        m(x)


def test_the_guard_keeps_hooks_copies_and_torchvision_models_as_they_were(failing, user_file):
    import copy

    from netsight.ops.hooks import capture_outputs, count_hooks
    from netsight.models.external import is_guarded

    m = load_external_model(f"{user_file}:SmallNet").module
    x = torch.rand(2, 1, 8, 8)
    with capture_outputs(m, ["conv"]) as seen:
        y = m(x)
    assert seen["conv"].shape == (2, 4, 6, 6) and count_hooks(m) == 0 and "forward" not in m.state_dict()
    twin = copy.deepcopy(m)
    assert twin.forward.__self__ is twin and is_guarded(twin)
    torch.testing.assert_close(twin(x), y)
    assert not is_guarded(load_external_model("torchvision:resnet18").module)  # torchvision is not user code


def test_import_errors_name_the_users_line(tmp_path, monkeypatch):
    from netsight.errors import UserCodeError

    cases = {
        "syntax.py": ("import torch\ndef f(:\n", "SyntaxError: invalid syntax", 2),
        "dependency.py": ("import torch\nimport no_such_dependency_xyz\n", "ModuleNotFoundError: No module named", 2),
        "exits.py": ("import sys\n\nsys.exit('usage: exits.py FILE')\n", "SystemExit: usage: exits.py FILE", 3),
    }
    for name, (source, message, line) in cases.items():
        (tmp_path / name).write_text(source)
        with pytest.raises(UserCodeError, match=f"importing .*{name} failed: {message}") as e:
            load_external_model(f"{tmp_path / name}:Net")
        assert (e.value.filename, e.value.lineno) == (str(tmp_path / name), line), name
    (tmp_path / "pkg_xyz").mkdir()
    (tmp_path / "pkg_xyz" / "__init__.py").write_text("")
    (tmp_path / "pkg_xyz" / "nets.py").write_text(
        "from torch import nn\n\ndef build():\n    return nn.Conv2d(1, 2, 3, bias='x')()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UserCodeError, match=r"calling build\(\) raised .*nets.py:4"):
        load_external_model("pkg_xyz.nets:build")
    with pytest.raises(NetsightError, match="cannot import pkg_xyz.absent"):  # the SPEC's own module: not a user error
        load_external_model("pkg_xyz.absent:build")
