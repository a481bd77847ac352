"""CRP: the concepts of all channels add up to LRP, one channel equals a hand-built masked walk
(written here with ``npxai.lrp.step`` per layer, not through the CRP class), TopN picks what an
explicit sort picks, residual shortcuts are left out, bad arguments are named, and the concept
grid draws what it says."""

import numpy as np
import pytest
from conftest import assert_close, bias_free_relu_net
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

import npxai
from npxai import composites as C
from npxai import layers as L
from npxai import rules as R
from npxai.gradient import output_seed
from npxai.heatmaps import colorize

BACKENDS = ["numpy", "numba"]


def biased_net(seed: int) -> npxai.Sequential:
    npxai.manual_seed(seed)
    return npxai.Sequential(
        L.Conv2d(3, 6, 3, padding=1), L.ReLU(), L.Conv2d(6, 5, 3, stride=2, padding=1),
        L.ReLU(), L.Flatten(), L.Linear(80, 4),
    )  # fmt: skip


def residual_net(seed: int) -> npxai.Sequential:
    npxai.manual_seed(seed)
    branch = npxai.Sequential(L.Conv2d(4, 4, 3, padding=1), L.ReLU(), L.Conv2d(4, 4, 3, padding=1))
    return npxai.Sequential(
        L.Conv2d(2, 4, 3, padding=1), L.ReLU(), npxai.Residual(branch, post=L.ReLU()),
        L.AvgPool2d(2), L.Flatten(), L.Linear(16, 3),
    )  # fmt: skip


#: (composite name, composite) for the bias-free network, as the issue asks: LRP-0, tiny epsilon
CONSERVING = {
    "zero": C.Composite((C.ByType(L.Linear, L.Conv2d), R.ZeroRule())),
    "epsilon": C.Composite(
        (C.ByType(L.Linear, L.Conv2d), R.EpsilonRule(1e-12)),
        (C.ByType(L.AvgPool2d), R.NormRule(1e-12)),
    ),
}


def channels_of(model, key, x):
    return model.trace(x, "numpy")[key].output.shape[1]


@given(
    seed=st.integers(0, 2**16),
    batch=st.integers(1, 3),
    layer=st.sampled_from(["0", "1", "3", "5", "7", "9", 4, -2]),
    composite=st.sampled_from(sorted(CONSERVING)),
    backend=st.sampled_from(BACKENDS),
)
def test_the_concepts_of_all_channels_add_up_to_the_lrp_relevance(
    seed, batch, layer, composite, backend
):
    """``sum_c R^(c)_in = R_in`` on a chain (every step is linear in the relevance it gets)."""
    model = bias_free_relu_net(seed % 20, width=5)
    x = np.random.default_rng(seed).standard_normal((batch, 2, 8, 8))
    analyzer = npxai.LRP(model, CONSERVING[composite], backend=backend)
    key = layer if isinstance(layer, str) else [k for k, _ in model.named_modules()][1:][layer]
    everything = npxai.IndexedFeatures(range(channels_of(model, key, x)))
    concepts = npxai.CRP(analyzer, layer, everything)(x, target=1).attribution
    expected = analyzer(x, target=1).attribution
    assert concepts.shape[:2] == (batch, channels_of(model, key, x))
    scale = max(np.abs(expected).max(), np.abs(concepts).sum(axis=1).max())
    assert_close(concepts.sum(axis=1), expected, np.float64, scale=scale)


def hand_built(model, rules, x, target, key, channel, backend, output_relevance="one"):
    """Each sample's input relevance with only ``channel``'s relevance kept at ``key``'s output:
    the plain LRP walk over the chain's records, last to first, zeroing the other channels."""
    trace = model.trace(x, backend)
    relevance = output_seed(trace.output, np.full(len(x), target), output_relevance == "logit")
    for record in reversed(list(trace.values())):
        if record.key == key:
            keep = np.zeros(relevance.shape[1], bool)
            keep[channel] = True
            relevance = np.where(keep.reshape(-1, *[1] * (relevance.ndim - 2)), relevance, 0.0)
        relevance = npxai.lrp.step(record, rules[record.key], relevance, backend)
    return relevance


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("key", ["0", "1", "3", "5"])
def test_one_indexed_channel_equals_the_hand_built_masked_walk(key, backend):
    model = biased_net(1)
    composite = npxai.compat.zennit.EpsilonGammaBox(-3.0, 3.0)
    x = np.random.default_rng(1).standard_normal((3, 3, 8, 8))
    analyzer = npxai.LRP(model, composite, output_relevance="logit", backend=backend)
    e = npxai.CRP(analyzer, key, npxai.IndexedFeatures(3, 0))(x, target=2)
    assert e.attribution.shape == (3, 2, 3, 8, 8) and e.extras["layer"] == key
    assert e.extras["channels"].tolist() == [[3, 0]] * 3
    rules = composite.assign(model)
    for j, channel in enumerate([3, 0]):
        expected = hand_built(model, rules, x, 2, key, channel, "numpy", "logit")
        assert_close(e.attribution[:, j], expected, np.float64)


def relevance_at(model, rules, x, target, key):
    """The LRP relevance arriving at ``key``'s output, by the same walk, stopped there."""
    trace = model.trace(x, "numpy")
    relevance = output_seed(trace.output, np.full(len(x), target))
    for record in reversed(list(trace.values())):
        if record.key == key:
            return relevance
        relevance = npxai.lrp.step(record, rules[record.key], relevance, "numpy")
    raise AssertionError(key)


@pytest.mark.parametrize("absolute", [False, True])
def test_top_n_picks_the_channels_of_an_explicit_sort(absolute):
    model = biased_net(2)
    composite = C.EpsilonPlus()
    x = np.random.default_rng(2).standard_normal((4, 3, 8, 8))
    e = npxai.CRP(npxai.LRP(model, composite), "1", npxai.TopNFeatures(3, absolute=absolute))(
        x, target=0
    )
    r = relevance_at(model, composite.assign(model), x, 0, "1")
    sums = [[float(r[n, c].sum()) for c in range(6)] for n in range(4)]
    for n in range(4):
        ranked = sorted(range(6), key=lambda c: -(abs(sums[n][c]) if absolute else sums[n][c]))
        assert e.extras["channels"][n].tolist() == ranked[:3]
        chosen = [sums[n][c] for c in ranked[:3]]
        assert_close(e.extras["concept_relevance"][n], chosen, np.float64)
        share = np.array(chosen) / sum(abs(s) for s in sums[n])
        assert_close(e.extras["concept_share"][n], share, np.float64)
        assert_close(e.extras["layer_relevance"][n], sums[n], np.float64)
        # each sample's maps are those of its own channels, in rank order
        one = npxai.CRP(npxai.LRP(model, composite), "1", npxai.IndexedFeatures(*ranked[:3]))
        assert_close(e.attribution[n], one(x[n : n + 1], target=0).attribution[0], np.float64)
    assert not absolute or any(
        e.extras["concept_relevance"][n].min() < 0 for n in range(4)
    )  # the absolute ranking did pick negative channels somewhere (else it tests nothing new)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_residual_shortcut_beside_the_layer_is_left_out(backend):
    """Conditioning inside a residual branch keeps only the relevance through the branch: the
    hand-built walk drops the shortcut's share at the sum; conditioning on the whole block (its
    output) keeps everything."""
    model = residual_net(3)
    composite = C.EpsilonPlus()
    analyzer = npxai.LRP(model, composite, backend=backend)
    x = np.random.default_rng(3).standard_normal((2, 2, 4, 4))
    key, channel = "2.branch.0", 1
    e = npxai.CRP(analyzer, key, npxai.IndexedFeatures(channel))(x, target=1)
    rules = composite.assign(model)

    def step(record, relevance):
        if record.key == key:
            relevance = relevance * (np.arange(4) == channel)[None, :, None, None]
        result = npxai.lrp.step(record, rules[record.key], relevance, "numpy")
        return (result[0], np.zeros_like(result[1])) if record.key == "2.add" else result

    trace = model.trace(x, "numpy")
    expected = model.backward(trace, output_seed(trace.output, np.array([1, 1])), step)
    assert_close(e.attribution[:, 0], expected, np.float64)
    block = npxai.CRP(analyzer, "2", npxai.IndexedFeatures(0, 1, 2, 3))(x, target=1)
    assert block.extras["layer"] == "2.post"
    assert_close(block.attribution.sum(axis=1), analyzer(x, target=1).attribution, np.float64)


def test_batches_of_rows_give_the_same_maps():
    model = biased_net(4)
    x = np.random.default_rng(4).standard_normal((3, 3, 8, 8))
    analyzer = npxai.LRP(model, C.EpsilonAlpha2Beta1())
    whole = npxai.CRP(analyzer, "2", npxai.TopNFeatures(4))(x)
    chunked = npxai.CRP(analyzer, "2", npxai.TopNFeatures(4), batch_size=5)
    parts = chunked(x)
    np.testing.assert_array_equal(whole.extras["channels"], parts.extras["channels"])
    assert_close(parts.attribution, whole.attribution, np.float64)
    assert "CRP(EpsilonAlpha2Beta1, layer='2', TopNFeatures(4))" == repr(chunked)


def test_bad_layers_channels_and_counts_are_named():
    model = biased_net(5)
    analyzer = npxai.LRP(model)
    x = np.zeros((1, 3, 8, 8))
    with pytest.raises(
        ValueError, match=r"CRP: the model has no layer 'features.3'; expected a key"
    ):
        npxai.CRP(analyzer, "features.3", npxai.TopNFeatures(1))
    with pytest.raises(ValueError, match=r"layer index 6 is out of range for a model of 6 leaf"):
        npxai.CRP(analyzer, 6, npxai.TopNFeatures(1))
    with pytest.raises(ValueError, match=r"channel 6 is out of range for layer '0', which has 6"):
        npxai.CRP(analyzer, "0", npxai.IndexedFeatures(2, 6))
    relu = npxai.CRP(analyzer, "1", npxai.IndexedFeatures(7))  # a ReLU states no channel count
    with pytest.raises(ValueError, match=r"channel 7 is out of range for layer '1', which has 6"):
        relu(x)
    with pytest.raises(
        ValueError, match=r"TopNFeatures\(n=7\) asks for more channels than layer '2' has \(5\)"
    ):
        npxai.CRP(analyzer, "2", npxai.TopNFeatures(7))
    with pytest.raises(ValueError, match=r"TopNFeatures\(n=7\) .* layer '3' has \(5\)"):
        npxai.CRP(analyzer, 3, npxai.TopNFeatures(7))(x)
    with pytest.raises(ValueError, match="n must be a positive int, got 0"):
        npxai.TopNFeatures(0)
    with pytest.raises(ValueError, match="got -1"):
        npxai.IndexedFeatures(-1)
    with pytest.raises(TypeError, match="CRP needs an npxai LRP analyzer, got Gradient"):
        npxai.CRP(npxai.Gradient(model), "0", npxai.TopNFeatures(1))


def test_concept_grid_draws_each_concept_with_its_caption(tmp_path):
    model = biased_net(6)
    x = np.random.default_rng(6).standard_normal((2, 3, 8, 8))
    e = npxai.CRP(npxai.LRP(model), "0", npxai.TopNFeatures(5))(x)
    figure = npxai.concept_grid(e, sample=1, path=tmp_path / "grid.png")
    panels = [ax for ax in figure.axes if ax.images]
    assert len(panels) == 5 and len(figure.axes) == 6  # a 3 x 2 grid, one spare
    expected = npxai.heatmap(e.attribution[1], "attribution")
    for j, ax in enumerate(panels):
        np.testing.assert_array_equal(ax.images[0].get_array(), expected[j])
        channel, share = e.extras["channels"][1, j], e.extras["concept_share"][1, j]
        assert ax.get_title().startswith(f"channel {channel}\n")
        assert f"({100 * share:.1f}%)" in ax.get_title()
    with Image.open(tmp_path / "grid.png") as image:
        assert image.format == "PNG"
    shared = npxai.concept_grid(e, sample=1, same_scale=True, columns=5)
    maps = e.attribution[1].sum(axis=1)  # one scale for all panels: the largest |map| of the five
    expected = colorize(0.5 + maps / (2 * np.abs(maps).max()), "bwr")
    for j, ax in enumerate(shared.axes):
        np.testing.assert_array_equal(ax.images[0].get_array(), expected[j])
    assert len(shared.axes) == 5 and shared.axes[4].get_position().x0 > 0.75  # one row of five
    with pytest.raises(ValueError, match="concept_grid needs a CRP explanation"):
        npxai.concept_grid(npxai.LRP(model)(x))
    with pytest.raises(ValueError, match="sample 2 is out of range for a batch of 2"):
        npxai.concept_grid(e, sample=2)
