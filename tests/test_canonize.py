"""canonize folds batch norms without changing outputs; strip_softmax removes a trailing softmax."""

import numpy as np
import pytest
from conftest import assert_close

import npxai
from npxai import layers as L


def with_random_batch_norms(model, seed):
    rng = np.random.default_rng(seed)
    state = model.state_dict()
    for key, value in state.items():
        if key.endswith("running_var"):
            state[key] = rng.uniform(0.5, 2.0, value.shape)
        elif key.endswith(("running_mean", "bias")) or (key.endswith("weight") and value.ndim == 1):
            state[key] = rng.standard_normal(value.shape)
    model.load_state_dict(state)
    return model


@pytest.mark.parametrize("name", ["vgg11_bn", "resnet18", "resnet50"])
def test_canonize_folds_every_batch_norm_and_keeps_the_outputs(name):
    model = with_random_batch_norms(getattr(npxai.models, name)(num_classes=5), 1)
    folded = npxai.canonize(model)
    assert not any(isinstance(m, L.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, L.BatchNorm2d) for m in model.modules())  # the original is untouched
    x = np.random.default_rng(2).standard_normal((2, 3, 32, 32))
    assert_close(folded(x), model(x), np.float64)
    npxai.LRP(folded)  # every layer of the folded model has a rule


def test_batch_norm_that_follows_no_linear_layer_stays():
    model = npxai.Sequential(L.ReLU(), L.BatchNorm2d(3), L.Conv2d(3, 2, 1), L.BatchNorm2d(2))
    folded = npxai.canonize(model)
    assert isinstance(folded[1], L.BatchNorm2d) and isinstance(folded[3], L.Identity)
    assert folded[2].bias is not None


def test_strip_softmax():
    model = npxai.Sequential(
        L.Linear(3, 4), npxai.Sequential(L.ReLU(), L.Linear(4, 2), L.Softmax(1))
    )
    stripped = npxai.strip_softmax(model)
    x = np.random.default_rng(3).standard_normal((2, 3))
    np.testing.assert_array_equal(stripped(x), model[1][1](model[1][0](model[0](x))))
    assert not any(isinstance(m, L.Softmax) for m in stripped.modules())
    assert any(isinstance(m, L.Softmax) for m in model.modules())
    npxai.LRP(stripped)
