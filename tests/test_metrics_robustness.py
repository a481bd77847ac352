"""Infidelity and max-sensitivity against Captum 0.9.0 (fed the same perturbations, float64),
closed forms on linear and quadratic models, and bad input."""

import math

import numpy as np
import pytest
import quantus
import torch
from captum.attr import Saliency
from captum.metrics import infidelity as captum_infidelity
from captum.metrics import sensitivity_max as captum_sensitivity_max

import npxai
from npxai.metrics.robustness import infidelity, sensitivity_max

DTYPES = [np.float32, np.float64]


def torch_model():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(2, 3, 3), torch.nn.Tanh(), torch.nn.Flatten(), torch.nn.Linear(48, 3)
    )
    return model.double().eval()


@pytest.mark.parametrize("normalize", [False, True])
def test_infidelity_is_captum_given_the_same_perturbations(normalize):
    rng = np.random.default_rng(0)
    x = rng.random((3, 2, 6, 6))
    attribution = rng.standard_normal((3, 2, 6, 6))
    model, target = torch_model(), [0, 2, 1]
    ours = infidelity(
        model,
        x,
        attribution,
        target,
        stdev=0.1,
        n_perturb_samples=7,
        normalize=normalize,
        seed=4,
        batch_size=5,
    )
    # the documented draw: row n * 7 + s of one standard-normal stream
    noise = 0.1 * np.random.default_rng(4).standard_normal((21, 2, 6, 6))

    def perturb(inputs):
        return torch.from_numpy(noise), inputs - torch.from_numpy(noise)

    theirs = captum_infidelity(
        model,
        perturb,
        torch.from_numpy(x),
        torch.from_numpy(attribution),
        target=target,
        n_perturb_samples=7,
        normalize=normalize,
    )
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-10, atol=0)


def test_infidelity_with_a_perturbation_function_and_channel_summed_map():
    rng = np.random.default_rng(1)
    x = rng.random((2, 2, 6, 6))
    summed = rng.standard_normal((2, 1, 6, 6))
    model = torch_model()
    recorded = []

    def perturb(rows, generator):  # a binary perturbation (Sensitivity-n like), recorded
        keep = generator.random(rows.shape) < 0.7
        recorded.append(rows * ~keep)
        return rows * ~keep, rows * keep

    ours = infidelity(model, x, summed, [1, 0], perturbation=perturb, n_perturb_samples=4)
    perturbation = torch.from_numpy(np.concatenate(recorded))
    theirs = captum_infidelity(
        model,
        lambda inputs: (perturbation, inputs - perturbation),
        torch.from_numpy(x),
        torch.from_numpy(np.broadcast_to(summed, x.shape).copy()),
        target=[1, 0],
        n_perturb_samples=4,
    )
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-10, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_infidelity_of_a_linear_model(dtype):
    """f(x) = w.x: with Phi = w, I^T w = f(x) - f(x - I) for every I, so INFD = 0; with Phi =
    w * x (input times gradient) the error is sum_i I_i w_i (x_i - 1), whose mean square over
    the drawn I is the estimate, and whose expectation is stdev^2 sum_i w_i^2 (x_i - 1)^2."""
    rng = np.random.default_rng(2)
    w = rng.standard_normal(5)
    x = rng.random((2, 5)).astype(dtype)
    model = lambda rows: np.stack([rows @ w, rows @ -w], axis=1)  # noqa: E731
    tolerance = {np.float32: 1e-6, np.float64: 1e-12}[dtype]
    zero = infidelity(model, x, np.tile(w, (2, 1)), 0, stdev=0.5, seed=0)
    np.testing.assert_allclose(zero, 0, atol=tolerance)
    scaled = infidelity(model, x, np.tile(3 * w, (2, 1)), 0, stdev=0.5, normalize=True, seed=0)
    np.testing.assert_allclose(scaled, 0, atol=tolerance)
    samples = 4000
    estimate = infidelity(model, x, w * x, 0, stdev=0.5, n_perturb_samples=samples, seed=1)
    noise = 0.5 * np.random.default_rng(1).standard_normal((2, samples, 5))
    error = (noise * (w * (x.astype(np.float64) - 1))[:, None]).sum(axis=2)
    np.testing.assert_allclose(
        estimate, (error**2).mean(axis=1), rtol=1e-5 if dtype == np.float32 else 1e-10
    )
    expected = 0.25 * (w**2 * (x.astype(np.float64) - 1) ** 2).sum(axis=1)
    # the mean of z^2 (z normal with variance v) over m draws has standard error v sqrt(2 / m)
    assert np.all(np.abs(estimate - expected) < 5 * expected * math.sqrt(2 / samples))


@pytest.mark.parametrize("norm_ord", ["fro", 1, math.inf])
def test_sensitivity_max_is_captum_given_the_same_perturbations(norm_ord):
    rng = np.random.default_rng(3)
    x = rng.random((3, 2, 6, 6))
    model, target = torch_model(), [2, 1, 0]
    gradient = npxai.Gradient(npxai.from_torch(model))
    ours = sensitivity_max(
        model,
        x,
        gradient,
        target,
        perturb_radius=0.2,
        n_perturb_samples=6,
        norm_ord=norm_ord,
        seed=8,
        batch_size=4,
    )
    # the documented draw: row n * 6 + s of one uniform stream
    perturbed = x.repeat(6, axis=0) + np.random.default_rng(8).uniform(-0.2, 0.2, (18, 2, 6, 6))

    def saliency(inputs, target):  # Captum's Saliency takes |gradient| unless abs=False
        return Saliency(model).attribute(inputs, target=target, abs=False)

    theirs = captum_sensitivity_max(
        saliency,
        torch.from_numpy(x),
        perturb_func=lambda inputs: torch.from_numpy(perturbed),
        n_perturb_samples=6,
        norm_ord=norm_ord,
        target=target,
    )
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-10, atol=0)
    assert ours.min() > 0.01


def test_sensitivity_max_is_quantus_max_sensitivity_given_the_same_draws(monkeypatch):
    rng = np.random.default_rng(5)
    x = rng.random((3, 2, 6, 6))
    model, target = torch_model(), np.array([0, 0, 2])
    gradient = npxai.Gradient(npxai.from_torch(model))
    ours = sensitivity_max(
        model, x, gradient, target, perturb_radius=0.2, n_perturb_samples=5, seed=1
    )
    u = np.random.default_rng(1).uniform(-0.2, 0.2, (3, 5, 72))
    steps = iter(range(5))  # Quantus draws the whole batch's noise once per step
    monkeypatch.setattr(np.random, "uniform", lambda low, high, size: u[:, next(steps)])

    def explain(model, inputs, targets, **kwargs):
        inputs = torch.from_numpy(np.asarray(inputs, np.float64)).requires_grad_()
        targets = torch.as_tensor(targets)
        return Saliency(model).attribute(inputs, target=targets, abs=False).detach().numpy()

    metric = quantus.MaxSensitivity(nr_samples=5, lower_bound=0.2, disable_warnings=True)
    theirs = metric(model, x, target, explain(model, x, target), explain_func=explain)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sensitivity_max_of_linear_and_quadratic_models(dtype):
    """A linear model's gradient w does not change: 0. For f(x) = sum_i x_i^2 the gradient is 2x,
    so the ratio is ||u|| / ||x|| for y = x + u, maximised over the drawn u."""
    rng = np.random.default_rng(4)
    x = rng.random((2, 6)).astype(dtype)
    w = rng.standard_normal(6)
    constant = lambda rows, target: np.tile(w, (len(rows), 1))  # noqa: E731
    linear = lambda rows: np.stack([rows @ w, -(rows @ w)], axis=1)  # noqa: E731
    assert np.all(sensitivity_max(linear, x, constant, 0, seed=0) == 0)
    square = lambda rows: np.stack([(rows**2).sum(1), rows.sum(1)], axis=1)  # noqa: E731
    gradient = lambda rows, target: 2 * rows  # noqa: E731
    ours = sensitivity_max(square, x, gradient, 0, perturb_radius=0.1, seed=6)
    u = np.random.default_rng(6).uniform(-0.1, 0.1, (2, 10, 6))
    y = (x[:, None] + u).astype(dtype).astype(np.float64)
    x64 = x.astype(np.float64)
    expected = (
        np.linalg.norm(y - x64[:, None], axis=2) / np.linalg.norm(x64, axis=1)[:, None]
    ).max(1)
    np.testing.assert_allclose(ours, expected, rtol={np.float32: 1e-5, np.float64: 1e-12}[dtype])


def test_bad_input():
    x = np.zeros((2, 4))
    model = lambda rows: rows[:, :3]  # noqa: E731
    explainer = lambda rows, target: rows  # noqa: E731
    with pytest.raises(ValueError, match="attribution of shape"):
        infidelity(model, x, np.ones((2, 3)))
    with pytest.raises(ValueError, match="perturbation must be 'gaussian' or a function"):
        infidelity(model, x, x, perturbation="uniform")
    with pytest.raises(ValueError, match="stdev must be a finite number >= 0"):
        infidelity(model, x, x, stdev=-0.1)
    with pytest.raises(ValueError, match="n_perturb_samples must be a positive int"):
        infidelity(model, x, x, n_perturb_samples=0)
    with pytest.raises(TypeError, match="normalize must be True or False"):
        infidelity(model, x, x, normalize=1)
    with pytest.raises(ValueError, match=r"perturbation must return \(I, x_perturbed\) of"):
        infidelity(model, x, x, perturbation=lambda rows, rng: (rows[:, :2], rows))
    with pytest.raises(ValueError, match="perturb_radius must be a finite number >= 0"):
        sensitivity_max(model, x, explainer, perturb_radius=float("nan"))
    with pytest.raises(ValueError, match="norm_ord must be 'fro' or a number p >= 1"):
        sensitivity_max(model, x, explainer, norm_ord=0.5)
    with pytest.raises(ValueError, match="n_perturb_samples must be a positive int"):
        sensitivity_max(model, x, explainer, n_perturb_samples=-1)
    with pytest.raises(TypeError, match="explainer must be an analyzer or a function"):
        sensitivity_max(model, x, np.ones((2, 4)))
    with pytest.raises(ValueError, match="perturb_func must return the rows' shape"):
        sensitivity_max(model, x, explainer, perturb_func=lambda rows, rng: rows[:1])
    with pytest.raises(ValueError, match="seed must be an int >= 0 or None"):
        sensitivity_max(model, x, explainer, seed=1.5)
