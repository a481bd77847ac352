"""npxai.gradient: target selection, and agreement with a hand-derived formula."""

import numpy as np
import pytest
import torch
from conftest import assert_close

import npxai
from npxai.layers import Linear, ReLU, Softmax


def test_two_layer_network_matches_the_matrix_formula():
    """For ``y = W2 relu(W1 x + b1) + b2``: ``dy_t/dx = W1^T (1[W1 x + b1 > 0] * W2[t])``."""
    rng = np.random.default_rng(0)
    w1, b1, w2, b2 = (
        rng.standard_normal((5, 4)),
        rng.standard_normal(5),
        rng.standard_normal((3, 5)),
        rng.standard_normal(3),
    )
    model = npxai.Sequential(Linear(4, 5), ReLU(), Linear(5, 3))
    model.load_state_dict({"0.weight": w1, "0.bias": b1, "2.weight": w2, "2.bias": b2})
    x = rng.standard_normal((6, 4))
    target = np.array([0, 1, 2, 2, 1, 0])
    active = (x @ w1.T + b1) > 0
    expected = (active * w2[target]) @ w1
    assert_close(npxai.gradient(model, x, target), expected, np.float64)


@pytest.fixture
def model_and_input():
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 5)
    ).double()
    x = 3 * np.random.default_rng(2).standard_normal((3, 4))
    return theirs, npxai.from_torch(theirs), x


def torch_gradient(theirs, x, target):
    xt = torch.tensor(x, requires_grad=True)
    theirs(xt)[torch.arange(len(x)), torch.tensor(target)].sum().backward()
    return xt.grad.numpy()


def test_default_target_is_each_samples_argmax(model_and_input):
    theirs, ours, x = model_and_input
    argmax = theirs(torch.tensor(x)).argmax(1).numpy()
    assert len(set(argmax)) > 1, "the test needs samples with different arg-max classes"
    assert_close(npxai.gradient(ours, x), torch_gradient(theirs, x, argmax), np.float64)


def test_int_target_and_per_sample_targets(model_and_input):
    theirs, ours, x = model_and_input
    assert_close(
        npxai.gradient(ours, x, target=4), torch_gradient(theirs, x, [4, 4, 4]), np.float64
    )
    assert_close(
        npxai.gradient(ours, x, target=[0, 3, 1]), torch_gradient(theirs, x, [0, 3, 1]), np.float64
    )
    assert_close(
        npxai.gradient(ours, x, target=np.array([2, 2, 0])),
        torch_gradient(theirs, x, [2, 2, 0]),
        np.float64,
    )


def test_gradient_through_softmax_output():
    torch.manual_seed(3)
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Softmax(dim=1)).double()
    x = np.random.default_rng(3).standard_normal((2, 3))
    assert_close(
        npxai.gradient(npxai.from_torch(theirs), x, target=1),
        torch_gradient(theirs, x, [1, 1]),
        np.float64,
    )


def test_batch_of_one():
    model = npxai.Sequential(Linear(3, 2), Softmax(1))
    assert npxai.gradient(model, np.ones((1, 3)), target=0).shape == (1, 3)
