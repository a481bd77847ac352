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


# --- targets as Zennit and torch users give them (issue 15) ---


def test_one_hot_targets_are_their_indices(model_and_input):
    theirs, ours, x = model_and_input
    expected = torch_gradient(theirs, x, [0, 3, 1])
    one_hot = torch.nn.functional.one_hot(torch.tensor([0, 3, 1]), 5)  # int64, as Zennit users
    for target in [one_hot.numpy(), one_hot.double().numpy(), one_hot.bool().numpy()]:
        assert_close(npxai.gradient(ours, x, target=target), expected, np.float64)
    e = npxai.Gradient(ours)(x, target=one_hot.float().numpy())
    assert e.target.dtype == np.int64 and e.target.tolist() == [0, 3, 1]
    assert_close(npxai.gradient(ours, x, np.eye(5)[4]), torch_gradient(theirs, x, [4] * 3),
                 np.float64)  # fmt: skip


def test_per_class_weights_seed_the_backward_pass(model_and_input):
    """torch's ``grad_outputs`` (Zennit's ``attr_output``): ``d sum_k w_k y_k / d x``."""
    theirs, ours, x = model_and_input
    weights = np.random.default_rng(4).standard_normal((3, 5))
    xt = torch.tensor(x, requires_grad=True)
    theirs(xt).backward(torch.tensor(weights))
    assert_close(npxai.gradient(ours, x, target=weights), xt.grad.numpy(), np.float64)
    e = npxai.Gradient(ours)(x, target=weights)
    np.testing.assert_array_equal(e.target, weights)
    xt = torch.tensor(x, requires_grad=True)
    theirs(xt).backward(torch.tensor(np.tile(weights[0], (3, 1))))
    assert_close(npxai.gradient(ours, x, target=weights[0]), xt.grad.numpy(), np.float64)


def test_weighted_targets_in_the_multi_pass_analyzers_are_the_weighted_sums(model_and_input):
    """Gradients are linear in the seed: SmoothGrad and IntegratedGradients with weights are
    the weighted sums of their one-class results."""
    _, ours, x = model_and_input
    weights = np.random.default_rng(5).standard_normal((3, 5))
    for analyzer in [npxai.SmoothGrad(ours, n=3, seed=1, batch_size=4),
                     npxai.IntegratedGradients(ours, n=4, batch_size=5)]:  # fmt: skip
        expected = sum(weights[:, [k]] * analyzer(x, target=k).attribution for k in range(5))
        assert_close(analyzer(x, target=weights).attribution, expected, np.float64)


def test_imagenet_class_names_as_targets():
    model = npxai.Sequential(Linear(4, 1000))
    x = np.random.default_rng(6).standard_normal((2, 4))
    by_index = npxai.gradient(model, x, target=[281, 282])
    np.testing.assert_array_equal(npxai.gradient(model, x, target=["tabby", "Tiger cat"]), by_index)
    np.testing.assert_array_equal(npxai.Gradient(model)(x, "tabby").target, [281, 281])
    with pytest.raises(
        ValueError, match="'tabbby' is not an ImageNet class name; near matches: 'tabby'"
    ):
        npxai.gradient(model, x, target="tabbby")
    with pytest.raises(
        ValueError, match=r"'cardigan' names 2 ImageNet classes \(indices 264, 474\)"
    ):
        npxai.gradient(model, x, target="cardigan")
    with pytest.raises(
        ValueError, match="needs a model with 1000 ImageNet outputs, this one has 3"
    ):
        npxai.gradient(npxai.Sequential(Linear(4, 3)), x, target="tabby")


def test_bad_weight_targets_are_named(model_and_input):
    _, ours, x = model_and_input
    with pytest.raises(ValueError, match=r"shape \(5,\) or \(3, 5\) for this output, got \(4,\)"):
        npxai.gradient(ours, x, target=np.ones(4))
    with pytest.raises(ValueError, match="must be finite"):
        npxai.gradient(ours, x, target=np.full(5, np.nan))
    with pytest.raises(TypeError, match="target must be None, an int"):
        npxai.gradient(ours, x, target=[{}, {}, {}])
