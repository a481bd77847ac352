"""The module tree: torch-style keys, containers, traces, dtype rules, printing."""

from collections import OrderedDict

import numpy as np
import torch
from conftest import assert_close

import npxai
from npxai.layers import BatchNorm2d, Conv2d, Flatten, Linear, ReLU


def small_model():
    return npxai.Sequential(OrderedDict(
        features=npxai.Sequential(Conv2d(1, 2, 3), BatchNorm2d(2), ReLU()),
        flatten=Flatten(),
        head=Linear(2 * 4 * 4, 3),
    ))  # fmt: skip


def small_torch_model():
    return torch.nn.Sequential(OrderedDict(
        features=torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.ReLU()),
        flatten=torch.nn.Flatten(),
        head=torch.nn.Linear(32, 3),
    ))  # fmt: skip


def test_state_dict_keys_follow_torch():
    ours = small_model()
    theirs = small_torch_model()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for key, value in ours.state_dict().items():
        assert value.shape == tuple(theirs.state_dict()[key].shape), key
    assert [k for k, _ in ours.named_modules()] == [k for k, _ in theirs.named_modules()]


def test_state_dict_round_trips_into_torch():
    ours = small_model()
    theirs = small_torch_model().eval()
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()}, strict=True)
    x = np.random.default_rng(0).standard_normal((2, 1, 6, 6)).astype(np.float32)
    assert_close(ours(x), theirs(torch.tensor(x)).detach().numpy(), np.float32)


def test_sequential_indexing_and_append():
    model = npxai.Sequential(Linear(2, 3), ReLU())
    assert isinstance(model[0], Linear) and isinstance(model[-1], ReLU) and len(model) == 2
    assert isinstance(model[1:][0], ReLU)
    model.append(Linear(3, 1))
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert model(np.ones((4, 2))).shape == (4, 1)


def test_trace_records_every_leaf_in_order():
    model = npxai.Sequential(Conv2d(1, 2, 3), npxai.Residual(OrderedDict(conv=Conv2d(2, 2, 1)), post=ReLU()),
                             Flatten(), Linear(2 * 4 * 4, 3))  # fmt: skip
    x = np.random.default_rng(0).standard_normal((2, 1, 6, 6))
    trace = model.trace(x)
    assert list(trace) == ["0", "1.conv", "1.add", "1.post", "2", "3"]
    assert trace["0"].input is trace.input
    np.testing.assert_array_equal(trace["1.add"].output, trace["1.conv"].output + trace["0"].output)
    branch, shortcut = trace["1.add"].input
    assert branch is trace["1.conv"].output and shortcut is trace["0"].output
    np.testing.assert_array_equal(trace.output, model(x))
    assert "Record('1.add', Add" in repr(trace)


def test_float64_weights_with_float32_input_compute_in_float32():
    layer = Linear(3, 2)
    layer.load_state_dict({"weight": np.ones((2, 3)), "bias": np.zeros(2)})
    assert layer.weight.dtype == np.float64
    assert layer(np.ones((1, 3), np.float32)).dtype == np.float32
    assert layer(np.ones((1, 3))).dtype == np.float64
    assert npxai.gradient(layer, np.ones((1, 3), np.float32)).dtype == np.float32


def test_repr_reads_like_torch():
    text = repr(small_model())
    assert (
        "(features): Sequential(\n    (0): Conv2d(1, 2, kernel_size=(3, 3), stride=(1, 1))" in text
    )
    assert "(head): Linear(in_features=32, out_features=3, bias=True)" in text
    assert repr(Conv2d(4, 4, 3, padding="same", groups=2, bias=False)) == (
        "Conv2d(4, 4, kernel_size=(3, 3), stride=(1, 1), padding='same', groups=2, bias=False)"
    )
