"""LIME against Captum's ``Lime`` fed the same coalitions (npxai's documented draw, through
Captum's ``perturb_func`` in its interpretable space) and kernel: Captum 0.9.0 casts its
training data to float32 (``.float()``, and its kernel weights are made with torch's default
dtype), so the test records the data Captum's ``Lime`` builds in float64 (``Tensor.float`` kept
float64 while it runs, torch's default dtype float64) and fits it with the scikit-learn
estimator that Captum's ``SkLearnRidge`` / ``SkLearnLinearRegression`` wrap: the coefficients
agree to 1e-10; Captum's whole float32 pipeline with ``SkLearnRidge`` to 1e-5. On a linear model
the surrogate is the model (1e-12); seeded runs repeat exactly; grid and SLIC superpixels; the
errors by name."""

from unittest import mock

import numpy as np
import pytest
import torch
from captum._utils.models.linear_model import SkLearnRidge
from captum._utils.models.model import Model
from captum.attr import Lime
from captum.attr._core.lime import get_exp_kernel_similarity_function
from conftest import float64_default, relative_error
from sklearn.linear_model import LinearRegression, Ridge

import npxai
from npxai.analyzers.features import grid_mask
from npxai.analyzers.lime import LIME


def torch_cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Tanh(), torch.nn.Flatten(),
        torch.nn.Linear(4 * 8 * 10, 3),
    ).double().eval()  # fmt: skip


class Recorder(Model):
    """A Captum surrogate that keeps the data Captum's ``Lime`` fits it to."""

    def fit(self, train_data, **kwargs):
        self.data = [t.numpy() for t in next(iter(train_data))]

    def representation(self):
        return torch.zeros(1, self.data[0].shape[1])

    def __call__(self, x):
        raise NotImplementedError


@pytest.mark.parametrize(
    "distance_mode, kernel_width, alpha",
    [("cosine", 0.7, 0.5), ("euclidean", 3.0, 1.0), ("cosine", 1.0, 0.0)],
)
def test_lime_equals_captums_fit_of_the_same_coalitions(distance_mode, kernel_width, alpha):
    net = torch_cnn()
    rng = np.random.default_rng(1)
    x, b = rng.standard_normal((1, 3, 8, 10)), 0.3 * rng.standard_normal((1, 3, 8, 10))
    mask = 5 + 2 * (np.arange(80).reshape(1, 1, 8, 10) // 7)  # 12 features, labels 5, 7, ..., 27
    samples, seed = 60, 3
    ours = LIME(net, samples, mask, b, kernel_width, distance_mode, alpha, seed=seed,
                batch_size=13)(x, 2)  # fmt: skip
    coalitions = np.random.default_rng(seed).random((samples, 12)) < 0.5  # the documented draw

    def perturb_func(original, **kwargs):
        for z in coalitions:
            yield torch.tensor(z[None].astype(np.int64))

    def captum_lime(surrogate):
        kernel = get_exp_kernel_similarity_function(distance_mode, kernel_width)
        return Lime(net, surrogate, kernel, perturb_func).attribute(
            torch.tensor(x), baselines=torch.tensor(b), target=2,
            feature_mask=torch.tensor(mask - 5) // 2, n_samples=samples,
        )  # fmt: skip

    recorder = Recorder()
    with float64_default(), mock.patch.object(torch.Tensor, "float", lambda self: self):
        captum_lime(recorder)
    z, y, weights = recorder.data
    assert np.array_equal(z, coalitions) and y.dtype == weights.dtype == np.float64
    estimator = Ridge(alpha=alpha) if alpha > 0 else LinearRegression()
    fitted = estimator.fit(z, y, sample_weight=weights)
    coefficients = ours.extras["feature_attribution"][0]
    assert relative_error(coefficients, fitted.coef_) < 1e-10
    assert abs(ours.extras["intercept"][0] - fitted.intercept_) < 1e-10 * np.abs(y).max()
    labels = (mask[0] - 5) // 2
    assert np.array_equal(ours.attribution[0], np.broadcast_to(coefficients[labels], (3, 8, 10)))
    if alpha > 0:
        float32 = captum_lime(SkLearnRidge(alpha=alpha)).numpy()
        assert relative_error(ours.attribution, float32) < 1e-5


def test_lime_recovers_a_linear_model():
    """``f(x) = x W``: ``v(z) = f(b)_t + sum_j z_j sum_{i in j} W_it (x_i - b_i)``, linear in
    ``z``, so the unpenalised surrogate is the model whatever the coalitions and weights."""
    rng = np.random.default_rng(2)
    w, x, b = rng.standard_normal((9, 2)), rng.standard_normal((2, 9)), rng.standard_normal(9)
    mask = np.array([2, 2, 0, 1, 1, 1, 3, 4, 4])

    def f(a):
        return a @ w

    for mode in ("cosine", "euclidean"):
        explanation = LIME(f, 40, mask, b, distance_mode=mode, alpha=0.0, seed=0)(x, 1)
        for n in range(2):
            expected = np.bincount(mask, w[:, 1] * (x[n] - b))
            assert relative_error(explanation.extras["feature_attribution"][n], expected) < 1e-12
            assert abs(explanation.extras["intercept"][n] - b @ w[:, 1]) < 1e-12
    ridged = LIME(f, 40, mask, b, alpha=5.0, seed=0)(x, 1).extras["feature_attribution"]
    assert np.abs(ridged).sum() < np.abs(explanation.extras["feature_attribution"]).sum()


def test_lime_is_seeded_and_keeps_the_dtype():
    net = npxai.from_torch(torch_cnn())
    x = np.random.default_rng(3).standard_normal((2, 3, 8, 10))
    first = LIME(net, 30, superpixel_size=4, seed=7)(x)
    assert first.attribution.dtype == np.float64
    again = LIME(net, 30, superpixel_size=4, seed=7, batch_size=9)(x)
    assert relative_error(again.attribution, first.attribution) < 1e-10
    assert np.array_equal(
        first.attribution, LIME(net, 30, superpixel_size=4, seed=7)(x).attribution
    )
    assert not np.array_equal(
        first.attribution, LIME(net, 30, superpixel_size=4, seed=8)(x).attribution
    )
    single = LIME(net, 30, superpixel_size=4, seed=7)(x.astype(np.float32))
    assert single.attribution.dtype == np.float32
    # the default grid: 4 x 4 cells over (8, 10), cut at the edge: 2 x 3 features, row-major
    cells = np.arange(8)[:, None] // 4 * 3 + np.arange(10)[None] // 4
    assert np.array_equal(first.extras["feature_mask"], np.broadcast_to(cells, (2, 3, 8, 10)))
    assert first.extras["n_features"].tolist() == [6, 6]


def test_lime_on_slic_superpixels_and_captums_call():
    from skimage.segmentation import slic

    net = torch_cnn()
    x = np.random.default_rng(4).standard_normal((2, 3, 8, 10))

    def segment(sample):
        return 3 + 4 * slic(sample, n_segments=5, channel_axis=0)  # labels 3, 7, ...

    explanation = LIME(net, 25, segment, seed=1)(x, 0)
    for n in range(2):
        labels = np.unique(segment(x[n]), return_inverse=True)[1].reshape(8, 10)
        assert np.array_equal(explanation.extras["feature_mask"][n, 0], labels)
        coefficients = explanation.extras["feature_attribution"][n]
        assert np.array_equal(explanation.attribution[n, 1], coefficients[labels])
    analyzer = LIME(net, 10, seed=1)
    ours = analyzer.attribute(torch.tensor(x), target=0, feature_mask=segment, n_samples=25,
                              perturbations_per_eval=3)  # fmt: skip
    assert relative_error(ours, explanation.attribution) < 1e-12
    coefficients = analyzer.attribute(x, 0, feature_mask=segment, n_samples=25,
                                      return_input_shape=False)  # fmt: skip
    assert np.array_equal(coefficients, explanation.extras["feature_attribution"])
    assert grid_mask((1, 5), 2).tolist() == grid_mask((5,), 2).tolist() == [0, 0, 1, 1, 2]
    assert grid_mask((3, 3, 5), 2).tolist() == [[0, 0, 1, 1, 2], [0, 0, 1, 1, 2], [3, 3, 4, 4, 5]]
    with pytest.raises(ValueError, match=r"grid_mask: size must be a positive int or one per axis"):
        grid_mask((3, 3, 5), (2, 0))


def test_lime_refuses_bad_input_by_name():
    net = torch_cnn()
    x = np.zeros((1, 3, 8, 10))
    with pytest.raises(ValueError, match=r"LIME: baselines of shape \(3, 8\) do not fit the input"):
        LIME(net, baselines=np.zeros((3, 8)))(x)
    with pytest.raises(ValueError, match=r"feature_mask of shape \(2, 8, 10\) does not cover"):
        LIME(net, feature_mask=np.zeros((2, 8, 10), int))(x)
    with pytest.raises(TypeError, match="LIME: feature_mask must hold integer labels, got bool"):
        LIME(net, feature_mask=np.zeros((8, 10), bool))
    with pytest.raises(TypeError, match="segmentation function's labels for sample 0 must hold"):
        LIME(net, feature_mask=lambda s: s[0])(x)
    with pytest.raises(ValueError, match="LIME: n_samples must be a positive int, got 0"):
        LIME(net, 0)
    with pytest.raises(ValueError, match="LIME.attribute: n_samples must be a positive int"):
        LIME(net).attribute(x, n_samples=0)
    with pytest.raises(ValueError, match="perturbations_per_eval must be a positive int"):
        LIME(net).attribute(x, perturbations_per_eval=0)
    with pytest.raises(ValueError, match="target 3 is out of range for an output of 3 classes"):
        LIME(net, 5)(x, target=3)
    with pytest.raises(ValueError, match="distance_mode must be 'cosine' or 'euclidean'"):
        LIME(net, distance_mode="manhattan")
    with pytest.raises(ValueError, match="LIME: kernel_width must be > 0"):
        LIME(net, kernel_width=0.0)
    with pytest.raises(ValueError, match="LIME: alpha must be a finite number >= 0"):
        LIME(net, alpha=-1.0)
    with pytest.raises(ValueError, match="LIME: seed must be an int >= 0 or None"):
        LIME(net, seed=1.5)
    with pytest.raises(ValueError, match="LIME: superpixel_size must be a positive int"):
        LIME(net, superpixel_size=0)
    with pytest.raises(TypeError, match="LIME.attribute got argument.*additional_forward_args"):
        LIME(net).attribute(x, additional_forward_args=(1,))
    with pytest.raises(ValueError, match=r"must return scores of shape \(N, K\) = \(1, K\)"):
        LIME(lambda a: a.sum(axis=(1, 2, 3)))(x)
