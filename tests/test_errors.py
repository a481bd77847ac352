"""Bad input gets an error that names what was wrong: the layer key, the argument, the state-dict
key with expected and found shapes, the unsupported submodule."""

import ast
import builtins
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

import npxai
from npxai import ConversionError, LayerInputError, StateDictError
from npxai.layers import BatchNorm2d, Conv2d, Flatten, Linear, MaxPool2d, ReLU, Softmax


@pytest.fixture(scope="module")
def model():
    return npxai.models.vgg11(num_classes=3)


def test_wrong_channel_count_names_the_layer(model):
    with pytest.raises(
        LayerInputError,
        match=r"layer 'features\.0' \(Conv2d\(3, 64.*expected 3 channels.*\(1, 4, 32, 32\)",
    ):
        model(np.zeros((1, 4, 32, 32), np.float32))


def test_missing_batch_axis_names_the_layer(model):
    with pytest.raises(
        LayerInputError,
        match=r"layer 'features\.0'.*expected input of shape \(N, C, H, W\), got shape \(3, 32, 32\)",
    ):
        model(np.zeros((3, 32, 32), np.float32))


def test_wrong_feature_count_names_a_nested_layer():
    model = npxai.Sequential(Flatten(), npxai.Sequential(Linear(12, 4), ReLU()))
    with pytest.raises(
        LayerInputError, match=r"layer '1\.0' .*\(N, \.\.\., 12\), got shape \(2, 10\)"
    ):
        model(np.zeros((2, 10)))


def test_input_smaller_than_kernel():
    with pytest.raises(LayerInputError, match="smaller than the"):
        Conv2d(1, 1, 5)(np.zeros((1, 1, 3, 3)))
    with pytest.raises(LayerInputError, match="smaller than the pooling window"):
        MaxPool2d(4)(np.zeros((1, 1, 3, 3)))


def test_residual_shapes_that_do_not_add_up():
    block = npxai.Residual(Conv2d(2, 3, 1))
    with pytest.raises(
        LayerInputError,
        match=r"layer 'add'.*branch output \(1, 3, 4, 4\).*shortcut output \(1, 2, 4, 4\)",
    ):
        block(np.zeros((1, 2, 4, 4)))


@pytest.mark.parametrize(
    "dtype", [np.int64, np.int32, np.uint8, np.bool_, np.complex128, np.float16]
)
def test_non_float_dtypes_are_refused(model, dtype):
    with pytest.raises(
        TypeError, match=f"x must be a float32 or float64 array, got dtype {np.dtype(dtype)}"
    ):
        model(np.zeros((1, 3, 32, 32), dtype))
    with pytest.raises(TypeError, match="float32 or float64"):
        npxai.gradient(model, np.zeros((1, 3, 32, 32), dtype))


@pytest.mark.parametrize("value, name", [(np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf")])
def test_non_finite_input_is_refused_with_its_index(model, value, name):
    x = np.zeros((2, 3, 32, 32), np.float32)
    x[1, 2, 5, 7] = value
    with pytest.raises(ValueError, match=rf"x contains {name} at index \(1, 2, 5, 7\)"):
        model(x)


def test_state_dict_problems_are_reported_all_at_once(model):
    state = dict(model.state_dict())
    del state["features.0.bias"]
    state["classifier.6.weight"] = np.zeros((5, 4096), np.float32)
    state["features.99.weight"] = np.zeros(3, np.float32)
    with pytest.raises(StateDictError) as error:
        model.load_state_dict(state)
    message = str(error.value)
    assert "3 problems" in message
    assert "classifier.6.weight: expected shape (3, 4096), found (5, 4096)" in message
    assert "missing key: features.0.bias" in message
    assert "unexpected key: features.99.weight" in message


def test_non_strict_load_reports_but_still_refuses_wrong_shapes():
    layer = Linear(2, 3)
    result = layer.load_state_dict({"weight": np.ones((3, 2)), "extra": np.ones(1)}, strict=False)
    assert result.missing_keys == ["bias"] and result.unexpected_keys == ["extra"]
    np.testing.assert_array_equal(layer.weight, np.ones((3, 2)))
    with pytest.raises(StateDictError, match=r"weight: expected shape \(3, 2\), found \(2, 3\)"):
        layer.load_state_dict({"weight": np.ones((2, 3))}, strict=False)


def test_integer_weights_for_a_float_parameter_are_refused():
    with pytest.raises(StateDictError, match="bias: expected a floating-point array, found int64"):
        Linear(2, 3).load_state_dict({"weight": np.ones((3, 2)), "bias": np.arange(3)})


def test_batch_norm_accepts_a_state_dict_without_num_batches_tracked():
    bn = BatchNorm2d(2)
    bn.load_state_dict({"weight": np.ones(2), "bias": np.zeros(2), "running_mean": np.zeros(2),
                        "running_var": np.full(2, 4.0)})  # fmt: skip
    np.testing.assert_allclose(bn(np.full((1, 2, 1, 1), 2.0)).ravel(), 2 / np.sqrt(4 + 1e-5))


def test_unsupported_torch_layer_is_named():
    module = torch.nn.Sequential(
        torch.nn.Linear(2, 2), torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Mish())
    )
    with pytest.raises(
        ConversionError, match=r"submodule '1\.1' of type torch\.nn\.modules\.activation\.Mish"
    ):
        npxai.from_torch(module)


def test_custom_torch_module_is_named_where_its_export_does_not_help():
    class Custom(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.softplus(x) * 2

    module = torch.nn.Sequential(OrderedDict(body=torch.nn.Identity(), head=Custom()))
    with pytest.raises(
        ConversionError, match=r"submodule 'head' of type .*Custom.*pass input_shape"
    ):
        npxai.from_torch(module)
    with pytest.raises(ConversionError, match=r"submodule 'head' of type .*Custom.*its ONNX export "
                       r"does not import either.*\(Softplus\): this op is not supported"):  # fmt: skip
        npxai.from_torch(module, input_shape=(3,))


def test_a_custom_torch_module_converts_through_onnx():
    class Custom(torch.nn.Module):
        def forward(self, x):
            return torch.relu(x) * 2

    module = torch.nn.Sequential(OrderedDict(body=torch.nn.Linear(3, 4), head=Custom()))
    model = npxai.from_torch(module)
    assert isinstance(model, npxai.Graph)
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    np.testing.assert_allclose(model(x), module(torch.tensor(x)).detach().numpy(), rtol=1e-6)


def test_unsupported_torch_layer_options_are_named():
    with pytest.raises(ConversionError, match=r"submodule '0' \(Conv2d\).*padding_mode='reflect'"):
        npxai.from_torch(torch.nn.Sequential(torch.nn.Conv2d(1, 1, 3, padding_mode="reflect")))
    with pytest.raises(TypeError, match="expects a torch.nn.Module"):
        npxai.from_torch(np.zeros(3))


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: Conv2d(3, 4, 3, groups=2), r"divisible by groups \(2\)"),
        (lambda: Conv2d(3, 4, 0), "kernel_size must be an int >= 1"),
        (lambda: Conv2d(3, 4, 3, stride=2, padding="same"), "padding='same' needs stride 1"),
        (lambda: Conv2d(3, 4, 3, padding="full"), "padding must be 'same', 'valid'"),
        (lambda: Conv2d(3, 4, 3, padding_mode="circular"), "padding_mode must be 'zeros'"),
        (lambda: Linear(0, 3), "in_features must be a positive int"),
        (lambda: MaxPool2d(2, return_indices=True), r"return_indices=True\) is not supported"),
        (lambda: MaxPool2d(2, padding=2), "at most half the kernel size"),
        (
            lambda: BatchNorm2d(3, track_running_stats=False),
            "track_running_stats=False is not supported",
        ),
        (lambda: Softmax(), "explicit int dim"),
        (lambda: npxai.layers.Dropout(1.5), r"p must be in \[0, 1\]"),
        (lambda: npxai.layers.AdaptiveAvgPool2d(0), "output_size must be a positive int"),
    ],
)
def test_bad_constructor_arguments_are_named(build, message):
    with pytest.raises((ValueError, TypeError), match=message):
        build()


def test_bad_targets(model):
    x = np.zeros((2, 3, 32, 32), np.float32)
    with pytest.raises(ValueError, match="target 3 is out of range for an output of 3 classes"):
        npxai.gradient(model, x, target=3)
    with pytest.raises(ValueError, match=r"one index per sample \(2\), got shape \(3,\)"):
        npxai.gradient(model, x, target=[0, 1, 2])
    with pytest.raises(TypeError, match="target must be None, an int or a sequence of ints"):
        npxai.gradient(model, x, target=1.5)


ROOT = Path(__file__).resolve().parent.parent
ERRORS_MODULE = ROOT / "npxai" / "errors.py"
BUILTIN_EXCEPTIONS = {
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException)
}


def exception_classes(paths: list[Path]) -> dict[Path, list[str]]:
    """Per source file, the classes that derive from an exception: a builtin one, or (directly
    or through others) a class of these files deriving from one. Bases are matched by name."""
    classes = [
        (path, node.name, {ast.unparse(base).rpartition(".")[2] for base in node.bases})
        for path in paths
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.ClassDef)
    ]
    exceptions = set(BUILTIN_EXCEPTIONS)
    while grown := {name for _, name, bases in classes if bases & exceptions} - exceptions:
        exceptions |= grown
    found: dict[Path, list[str]] = {}
    for path, name, bases in classes:
        if bases & exceptions:
            found.setdefault(path, []).append(name)
    return found


def test_public_exceptions_live_in_errors_and_are_exported():
    """npxai's exceptions have one home, :mod:`npxai.errors`, and all are at the top level; a
    class deriving from an exception anywhere else in npxai or its kernels is private."""
    paths = sorted([*(ROOT / "npxai").rglob("*.py"), *(ROOT / "kernels").rglob("*.py")])
    found = exception_classes(paths)
    ours = set(found.pop(ERRORS_MODULE, []))
    assert ours, "npxai/errors.py defines no exceptions"
    assert ours <= set(npxai.__all__), f"not in npxai.__all__: {sorted(ours - set(npxai.__all__))}"
    public = [
        f"{path.relative_to(ROOT)}: {name}"
        for path, names in found.items()
        for name in names
        if not name.startswith("_")
    ]
    assert not public, f"public exceptions outside npxai/errors.py: {public}"
