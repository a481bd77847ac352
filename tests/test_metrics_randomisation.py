"""The randomisation tests (npxai.metrics.randomisation) against Quantus 0.6.0 on the same torch
model given the same random draws, their known answers (Adebayo et al. 2018), and bad input."""

import copy

import numpy as np
import pytest
import quantus
import scipy.ndimage
import torch

import npxai
from npxai.metrics import randomisation
from npxai.metrics.randomisation import mprt, random_logit


def tiny_cnn() -> torch.nn.Module:
    """A small CNN in float64 (so that both sides compute the same gradients to ~1e-16 and rank
    them alike) with every kind of layer that MPRT randomises in a CNN."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3, padding=1),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Conv2d(4, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 6 * 6, 8),
        torch.nn.ReLU(),
        torch.nn.Linear(8, 5),
    )
    with torch.no_grad():  # batch-norm statistics that are not the reset values
        net[1].running_mean.uniform_(-1, 1)
        net[1].running_var.uniform_(0.5, 2)
        net[1].weight.uniform_(0.5, 2)
        net[1].bias.uniform_(-1, 1)
    return net.double().eval()


def inputs(n: int = 3) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, 2, 12, 12))


def torch_gradient(model, inputs, targets, **kwargs):
    """Quantus's explain_func: the gradient of the target logit, by torch autograd."""
    x = torch.tensor(inputs, dtype=torch.float64, requires_grad=True)
    out = model(x)
    out[torch.arange(len(x)), torch.as_tensor(targets)].sum().backward()
    return x.grad.numpy()


def record_draws(monkeypatch) -> list[dict[str, np.ndarray]]:
    """npxai's re-initialised Linear and Conv2d parameters, in the order it draws them."""
    draws = []
    original = randomisation.reinitialised

    def recording(layer, rng):
        values = original(layer, rng)
        if isinstance(layer, npxai.layers.Linear | npxai.layers.Conv2d):
            draws.append(values)
        return values

    monkeypatch.setattr(randomisation, "reinitialised", recording)
    return draws


def replay_draws(monkeypatch, draws: list[dict[str, np.ndarray]]) -> None:
    """torch's reset_parameters of Linear and Conv2d (what Quantus calls) writes npxai's draws,
    in order; batch norms keep torch's own reset (weight 1, bias 0, statistics 0 and 1)."""
    queue = iter(draws)

    def reset(module):
        values = next(queue)
        with torch.no_grad():
            for name, value in values.items():
                assert getattr(module, name).shape == value.shape
                getattr(module, name).copy_(torch.from_numpy(value))

    monkeypatch.setattr(torch.nn.Conv2d, "reset_parameters", reset)
    monkeypatch.setattr(torch.nn.Linear, "reset_parameters", reset)


def quantus_ssim(a, b, batched):
    """Quantus's ssim as its MPRT can use it (it returns a list, MPRT calls .tolist())."""
    return np.array(quantus.similarity_func.ssim(a, b, batched=batched))


@pytest.mark.parametrize(
    "layer_order, similarity, batch_size",
    [("top_down", "spearman", 3), ("independent", "spearman", 2), ("top_down", "ssim", 1)],
)
def test_mprt_is_quantus_given_the_same_draws(monkeypatch, layer_order, similarity, batch_size):
    # Quantus normalises each batch of explanations by its maximum; batch_size=1 makes that the
    # per-sample normalisation of npxai, which SSIM (unlike Spearman) depends on.
    net, x = tiny_cnn(), inputs()
    target = np.array([0, 3, 1])
    draws = record_draws(monkeypatch)
    ours = mprt(net, x, npxai.Gradient, target, layer_order=layer_order, similarity=similarity,
                seed=5)  # fmt: skip
    replay_draws(monkeypatch, draws)
    metric = quantus.MPRT(
        similarity_func=quantus_ssim if similarity == "ssim" else None,
        layer_order=layer_order,
        disable_warnings=True,
    )
    theirs = metric(net, x, target, explain_func=torch_gradient, softmax=False,
                    batch_size=batch_size)  # fmt: skip
    assert list(theirs) == ["original", *ours.layers]
    expected = np.array([theirs[key] for key in ours.layers]).T
    np.testing.assert_allclose(ours.scores, expected, rtol=0, atol=1e-10)
    np.testing.assert_allclose(ours.original, theirs["original"], rtol=0, atol=1e-10)
    # Quantus's average includes its "original" entry (see MPRTResult.average)
    average = quantus.MPRT(layer_order=layer_order, return_average_correlation=True,
                           disable_warnings=True)  # fmt: skip
    replay_draws(monkeypatch, draws)
    if similarity == "spearman":
        theirs = average(net, x, target, explain_func=torch_gradient, batch_size=batch_size)
        layers = len(ours.layers)
        np.testing.assert_allclose(
            ours.average, (np.array(theirs) * (layers + 1) - ours.original) / layers, atol=1e-10
        )


def test_mprt_skip_layers_and_last_are_quantus(monkeypatch):
    net, x = tiny_cnn(), inputs()
    draws = record_draws(monkeypatch)
    ours = mprt(net, x, npxai.Gradient, skip_layers=True, seed=1)
    full = mprt(net, x, npxai.Gradient, seed=1)
    assert ours.layers == ["0"] and ours.scores.shape == (3, 1)
    np.testing.assert_array_equal(ours.last, full.last)
    replay_draws(monkeypatch, draws)
    target = np.asarray(net(torch.from_numpy(x)).argmax(1))
    theirs = quantus.MPRT(skip_layers=True, return_last_correlation=True, disable_warnings=True)(
        net, x, target, explain_func=torch_gradient
    )
    np.testing.assert_allclose(ours.last, theirs, rtol=0, atol=1e-10)


def test_mprt_randomises_cascading_or_independently_on_a_copy():
    net = tiny_cnn()
    model = npxai.from_torch(net)
    before = copy.deepcopy(model.state_dict())
    seen = []

    def explainer(m):
        seen.append({k: v.copy() for k, v in m.state_dict().items()})
        return npxai.Gradient(m)

    for order in ("top_down", "independent"):
        seen.clear()
        result = mprt(model, inputs(), explainer, layer_order=order, seed=0)
        assert result.layers == (["9", "7", "3", "1", "0"] if order == "top_down"
                                 else ["0", "1", "3", "7", "9"])  # fmt: skip
        assert len(seen) == 2 + len(result.layers)  # the original twice, then each step
        for step, state in enumerate(seen[2:]):
            changed = {key.rsplit(".", 1)[0] for key in state if
                       not np.array_equal(state[key], before[key])}  # fmt: skip
            expected = result.layers[: step + 1] if order == "top_down" else [result.layers[step]]
            assert changed == set(expected)
        for key, value in model.state_dict().items():  # the caller's model is unchanged
            np.testing.assert_array_equal(value, before[key])
    again = mprt(model, inputs(), npxai.Gradient, seed=0).scores
    np.testing.assert_array_equal(again, mprt(model, inputs(), npxai.Gradient, seed=0).scores)


def sobel_explainer(model):
    """An edge detector: the Sobel gradient magnitude of the input, blind to the model."""

    def explain(x, target):
        return np.hypot(scipy.ndimage.sobel(x, axis=-1), scipy.ndimage.sobel(x, axis=-2))

    return explain


@pytest.mark.parametrize("similarity", ["spearman", "ssim", "hog"])
def test_mprt_known_answers(similarity):
    # Adebayo et al.: an edge detector's explanation does not change with the model, while the
    # gradient of a randomised CNN has little to do with the trained one's.
    torch.manual_seed(1)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 24 * 24, 4),
    ).eval()
    x = np.random.default_rng(2).normal(size=(2, 1, 24, 24)).astype(np.float32)
    edges = mprt(net, x, sobel_explainer, similarity=similarity, seed=0)
    np.testing.assert_allclose(edges.scores, 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(edges.original, 1.0, rtol=0, atol=1e-12)
    if similarity == "spearman":
        np.testing.assert_array_equal(edges.scores, 1.0)  # sqrt(s * s) == s exactly
    gradient = mprt(net, x, npxai.Gradient, similarity=similarity, seed=0)
    assert gradient.scores.shape == (2, 3)
    assert np.all(gradient.last < 0.5), gradient.scores


def test_random_logit_is_quantus_given_the_same_draws(monkeypatch):
    net, x = tiny_cnn(), inputs(4)
    target = np.array([0, 4, 2, 2])
    ours = random_logit(net, x, npxai.Gradient(npxai.from_torch(net)), target, seed=3)
    offsets = np.random.default_rng(3).integers(0, 4, 4)  # random_logit's documented draw
    other = offsets + (offsets >= target)
    assert np.all(other != target)
    # Quantus draws np.random.randint(0, num_classes - 1, batch_size) once per batch; with
    # batch_size=1 (its per-batch normalisation is then per sample) each call gets the next draw
    draws = iter(offsets)
    monkeypatch.setattr(np.random, "randint", lambda low, high, size: np.array([next(draws)]))
    theirs = quantus.RandomLogit(num_classes=5, disable_warnings=True)(
        net, x, target, explain_func=torch_gradient, batch_size=1
    )
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-10)
    expected = quantus.similarity_func.ssim(  # the class is the draw: compare with it directly
        np.stack([g / np.abs(g).max() for g in torch_gradient(net, x, target)]).reshape(4, -1),
        np.stack([g / np.abs(g).max() for g in torch_gradient(net, x, other)]).reshape(4, -1),
        batched=True,
    )
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-10)


def test_random_logit_spearman_and_float32():
    net, x = tiny_cnn(), inputs()
    explainer = npxai.Gradient(npxai.from_torch(net))
    ours = random_logit(net, x, explainer, similarity="spearman", seed=0, abs=True)
    target = np.asarray(net(torch.from_numpy(x)).argmax(1))
    offsets = np.random.default_rng(0).integers(0, 4, 3)
    other = offsets + (offsets >= target)
    a, b = (np.abs(torch_gradient(net, x, t)).reshape(3, -1) for t in (target, other))
    expected = quantus.similarity_func.correlation_spearman(a, b, batched=True)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-10)
    model32 = npxai.from_torch(net.float())
    single = random_logit(model32, x.astype(np.float32), npxai.Gradient(model32),
                          similarity="spearman", seed=0, abs=True)  # fmt: skip
    np.testing.assert_allclose(single, ours, rtol=0, atol=1e-3)


def test_bad_input():
    net, x = tiny_cnn(), inputs()
    with pytest.raises(ValueError, match=r"mprt: layer_order must be one of 'top_down', "):
        mprt(net, x, npxai.Gradient, layer_order="bottom_up")
    with pytest.raises(ValueError, match=r"mprt: similarity must be one of 'spearman', 'ssim'"):
        mprt(net, x, npxai.Gradient, similarity="pearson")
    with pytest.raises(TypeError, match=r"mprt: explainer must build the explainer of a model"):
        mprt(net, x, npxai.Gradient(npxai.from_torch(net)))
    with pytest.raises(ValueError, match=r"mprt: the model has no layer with parameters"):
        mprt(npxai.Sequential(npxai.layers.ReLU()), x, npxai.Gradient)
    with pytest.raises(TypeError, match=r"mprt: model must be an npxai Module or a torch"):
        mprt(lambda v: v.reshape(len(v), -1), x, npxai.Gradient)
    with pytest.raises(ValueError, match=r"mprt: attribution of shape \(3, 2, 6\) does not fit"):
        mprt(net, x, lambda m: lambda v, t: v[..., :6, 0])
    with pytest.raises(ValueError, match=r"mprt: similarity must return one value per sample"):
        mprt(net, x, npxai.Gradient, similarity=lambda a, b: a)
    with pytest.raises(ValueError, match=r"mprt: seed must be an int >= 0 or None"):
        mprt(net, x, npxai.Gradient, seed=-1)
    with pytest.raises(ValueError, match=r"hog_similarity: a and b must be 2-D maps"):
        mprt(net, x, npxai.Gradient, similarity="hog")
    explainer = npxai.Gradient(npxai.from_torch(net))
    with pytest.raises(ValueError, match=r"random_logit: target must be class indices"):
        random_logit(net, x, explainer, np.full((3, 5), 0.2))
    with pytest.raises(TypeError, match=r"random_logit: explainer must be an analyzer"):
        random_logit(net, x, np.zeros_like(x))
    with pytest.raises(ValueError, match=r"random_logit: the model must have at least 2 outputs"):
        single = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(288, 1)).double()
        random_logit(single, x, npxai.Gradient(npxai.from_torch(single)))
    with pytest.raises(ValueError, match=r"random_logit: similarity must be one of"):
        random_logit(net, x, explainer, similarity=None)


def test_unknown_parameterised_layer_is_named():
    model = npxai.Sequential(npxai.attention.MultiheadAttention(4, 2))
    with pytest.raises(ValueError, match=r"mprt: cannot randomise layer '0' \(MultiheadAttention"):
        mprt(model, np.zeros((1, 3, 4)), npxai.Gradient)
