"""canonize folds batch norms without changing outputs; strip_softmax removes a trailing softmax."""

import numpy as np
import pytest
from conftest import assert_close, assert_same

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


def _trace_kinds(model, x, backend):
    """The layer types that an analyzer's forward pass ran, by recording them."""
    seen = []
    original = L.BatchNorm2d.forward

    def forward(self, x, backend=None):
        seen.append(self)
        return original(self, x, backend)

    L.BatchNorm2d.forward = forward
    try:
        npxai.gradient(model, x, backend=backend)
    finally:
        L.BatchNorm2d.forward = original
    return seen


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradient_on_numba_runs_folded_and_keeps_the_reference_gradient(dtype):
    npxai.manual_seed(3)
    model = with_random_batch_norms(npxai.models.resnet18(num_classes=5), 4)
    # float32 parameters, as loaded from a torch file: the fold must not round in float32
    model.load_state_dict({k: v.astype(np.float32) for k, v in model.state_dict().items()})
    x = np.random.default_rng(5).standard_normal((2, 3, 32, 32)).astype(dtype)
    assert len(_trace_kinds(model, x, "numpy")) == 20  # the reference runs every batch norm
    assert not _trace_kinds(model, x, "numba")  # the numba backend runs none: they are folded
    expected = npxai.gradient(model, x, backend="numpy")
    # folded in the input's dtype: float64 keeps the kernels' tolerance (folding in float32
    # would leave an error of about 1e-7)
    assert_same(npxai.gradient(model, x, backend="numba"), expected)
    for analyzer in (npxai.Gradient, npxai.InputTimesGradient):
        ours = analyzer(model, backend="numba")(x).attribution
        assert_same(ours, analyzer(model, backend="numpy")(x).attribution)


def test_folded_copy_is_made_again_after_any_change():
    from npxai.lrp.canonize import folded

    npxai.manual_seed(8)
    model = with_random_batch_norms(npxai.models.resnet18(num_classes=5), 6)
    x = np.random.default_rng(7).standard_normal((1, 3, 32, 32))
    first = folded(model, np.float64)
    assert folded(model, np.float64) is first and folded(model, np.float32) is not first
    assert folded(model, np.float64) is first  # a second dtype's copy leaves the first valid

    def gradients_agree():
        ours = npxai.gradient(model, x, backend="numba")
        assert_same(ours, npxai.gradient(model, x, backend="numpy"))

    model.layer1[0].bn1.running_mean = np.full(64, 0.3)  # a buffer assigned
    gradients_agree()
    model.layer2[0].bn2.eps = 0.5  # a plain attribute
    gradients_agree()
    state = model.state_dict()
    state["layer3.0.conv1.weight"] = -state["layer3.0.conv1.weight"]
    model.load_state_dict(state)  # loaded
    gradients_agree()
    model.layer4[1].add_module("bn2", L.BatchNorm2d(512, eps=0.25))  # a child replaced
    gradients_agree()
    assert folded(model, np.float64) is not first


def test_folded_is_the_model_itself_where_nothing_folds():
    from npxai.lrp.canonize import folded

    model = npxai.models.lenet()
    assert folded(model, np.float32) is model
    assert folded(model, np.int64) is model  # the forward pass rejects the dtype, not folding
