"""The perturbation-curve metrics against Quantus 0.6.0 (``PixelFlipping``, ``RegionPerturbation``)
on a tiny torch CNN, random continuous attributions (no ties) and deterministic baselines, to 1e-6
(Quantus runs the model in float32); Quantus's ``"uniform"`` fed the same draws as a patch-constant
imputer of ours; hand-derived curves of a model whose output is the sum of its input, for every
imputer, both orders, channel-summed maps and step rules; insertion, deletion and the symmetric
relevance gain on worked examples; the batching; errors by name."""

import math

import numpy as np
import pytest
import quantus
import torch
from conftest import assert_close
from scipy import ndimage

from npxai.metrics.faithfulness import (
    deletion,
    insertion,
    pixel_flipping,
    region_perturbation,
    symmetric_relevance_gain,
)
from npxai.metrics.imputers import IMPUTERS

DTYPES = (np.float32, np.float64)


def tiny_cnn(size: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(4 * size * size, 3),
    ).eval()  # fmt: skip


def batch(size: int, dtype, channels: int = 3):
    """Inputs, a map of x's shape, a channel-summed map (continuous: no ties), targets."""
    rng = np.random.default_rng(size)
    x = rng.standard_normal((3, 3, size, size)).astype(dtype)
    return x, rng.standard_normal(x.shape), rng.standard_normal((3, 1, size, size)), [0, 2, 1]


def quantus_kwargs() -> dict:
    return {"normalise": False, "abs": False, "disable_warnings": True}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("summed", [False, True])
@pytest.mark.parametrize("order", ["morf", "lerf"])
def test_pixel_flipping_equals_quantus(dtype, summed, order):
    net = tiny_cnn(6)
    x, full, summed_map, y = batch(6, dtype)
    a = summed_map if summed else full
    # Quantus flips entries of the broadcast map: 3 per pixel of a channel-summed one. It flips
    # in descending order only: least relevant first is the descending order of -a.
    step = 2 if summed else 4
    theirs_a = a if order == "morf" else -a
    for baseline, softmax in (("black", True), (0.3, False)):
        expected = quantus.PixelFlipping(
            features_in_step=3 * step if summed else step, perturb_baseline=baseline,
            **quantus_kwargs(),
        )(model=net, x_batch=x.astype(np.float32), y_batch=np.array(y), a_batch=theirs_a,
          softmax=softmax, device="cpu", channel_first=True)  # fmt: skip
        ours = pixel_flipping(net, x, a, y, features_in_step=step, order=order,
                              imputer=baseline, softmax=softmax, backend="numpy")  # fmt: skip
        assert ours.scores.shape == (3, len(expected[0]) + 1)
        assert np.abs(ours.scores[:, 1:] - np.array(expected)).max() < 1e-6
        features = a[0].size
        assert np.allclose(ours.fractions, np.minimum(np.arange(features // step + 1) * step,
                                                      features) / features)  # fmt: skip


def patch_order(a: np.ndarray, patch: int, order: str) -> np.ndarray:
    """The patches of each map in raster order, ranked by their attribution sum, patch by patch."""
    n, _, h, w = a.shape
    sums = np.array([[a[i, :, r : r + patch, c : c + patch].sum()
                      for r in range(0, h, patch) for c in range(0, w, patch)]
                     for i in range(n)])  # fmt: skip
    return np.argsort(-sums if order == "morf" else sums, axis=1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("order", ["morf", "lerf"])
def test_region_perturbation_equals_quantus(dtype, order):
    net = tiny_cnn(8)
    x, full, summed_map, y = batch(8, dtype)
    for a, baseline, regions in ((full, "black", 10), (summed_map, 0.3, 100), (full, 0.0, 7)):
        expected = quantus.RegionPerturbation(
            patch_size=2, regions_evaluation=regions, order=order, perturb_baseline=baseline,
            **quantus_kwargs(),
        )(model=net, x_batch=x.astype(np.float32), y_batch=np.array(y), a_batch=a,
          softmax=True, device="cpu", channel_first=True)  # fmt: skip
        ours = region_perturbation(net, x, a, y, patch_size=2, regions_evaluation=regions,
                                   order=order, imputer=baseline, backend="numpy")  # fmt: skip
        # Quantus's curve: y_0 - y_k after each of the min(regions, 16) patches
        assert ours.scores.shape == (3, min(regions, 16) + 1)
        assert np.abs(ours.scores[:, :1] - ours.scores[:, 1:] - np.array(expected)).max() < 1e-6
        assert np.allclose(ours.fractions, np.arange(min(regions, 16) + 1) / 16)


@pytest.mark.parametrize("order", ["morf", "lerf"])
def test_region_perturbation_equals_quantus_uniform_with_the_same_draws(order, monkeypatch):
    """Quantus's batched "uniform" draws one value per sample and step, np.random.uniform(size=N)
    (a call every step, whatever the baseline): fed u[n, p] for the patch p that sample n
    perturbs at that step, it must give our curve of a patch-constant imputer of those draws."""
    net = tiny_cnn(8)
    x, a, _, y = batch(8, np.float32)
    u = np.random.default_rng(5).uniform(0, 1, (3, 16))
    ranked = patch_order(a, 2, order)
    calls = iter(range(16))

    def fake_uniform(low=0.0, high=1.0, size=None):
        assert size == 3
        return u[np.arange(3), ranked[:, next(calls)]]

    def imputer(z):
        values = np.repeat(np.repeat(u.reshape(3, 4, 4), 2, axis=1), 2, axis=2)
        return np.broadcast_to(values[:, None], z.shape)

    monkeypatch.setattr(np.random, "uniform", fake_uniform)
    expected = quantus.RegionPerturbation(
        patch_size=2, regions_evaluation=16, order=order, perturb_baseline="uniform",
        **quantus_kwargs(),
    )(model=net, x_batch=x, y_batch=np.array(y), a_batch=a, softmax=True, device="cpu",
      channel_first=True)  # fmt: skip
    monkeypatch.undo()
    ours = region_perturbation(net, x, a, y, patch_size=2, regions_evaluation=16, order=order,
                               imputer=imputer, backend="numpy")  # fmt: skip
    assert np.abs(ours.scores[:, :1] - ours.scores[:, 1:] - np.array(expected)).max() < 1e-6


def total(z: np.ndarray) -> np.ndarray:
    """The sum model: one output, the sum of the input's entries."""
    return z.reshape(len(z), -1).sum(axis=1, keepdims=True)


def expected_imputed(x: np.ndarray, imputer, seed: int = 0) -> np.ndarray:
    """Each imputer's replacement values, written out sample by sample and channel by channel."""
    if imputer == "blur":
        return np.array([[ndimage.gaussian_filter(c.astype(np.float64), 5.0, mode="reflect")
                          for c in sample] for sample in x])  # fmt: skip
    if imputer == "uniform":
        return np.random.default_rng(seed).uniform(0.0, 1.0, x.shape)
    value = {"black": np.min, "white": np.max, "mean": np.mean}.get(imputer)
    per_sample = [np.full(s.shape, imputer if value is None else value(s)) for s in x]
    return np.array(per_sample, dtype=np.float64)


def deletion_by_hand(x, a, imputed, order, counts):
    """Sum model: y_k = sum(x) - the summed change (x - r) of the c_k features ranked first,
    a feature being an entry of a (its channels' changes summed for a channel-summed a)."""
    change = x.astype(np.float64) - imputed
    if a.shape[1] == 1:
        change = change.sum(axis=1, keepdims=True)
    change = change.reshape(len(x), -1)
    flat = a.reshape(len(a), -1)
    first = np.argsort(-flat if order == "morf" else flat, axis=1)
    removed = np.cumsum(np.take_along_axis(change, first, axis=1), axis=1)
    removed = np.concatenate([np.zeros((len(x), 1)), removed], axis=1)[:, counts]
    return x.reshape(len(x), -1).astype(np.float64).sum(axis=1, keepdims=True) - removed


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("imputer", [*IMPUTERS, 0.5])
def test_pixel_flipping_of_the_sum_model(dtype, imputer):
    x, full, summed_map, _ = batch(6, dtype)
    imputed = expected_imputed(x, imputer, seed=3)
    for order in ("morf", "lerf"):
        for a, step in ((full, 1), (summed_map, 3)):
            counts = np.minimum(np.arange(math.ceil(a[0].size / step) + 1) * step, a[0].size)
            curve = pixel_flipping(total, x, a, 0, features_in_step=step, order=order,
                                   imputer=imputer, seed=3, softmax=False)  # fmt: skip
            expected = deletion_by_hand(x, a, imputed, order, counts)
            assert_close(curve.scores, expected, dtype)
            fractions = counts / a[0].size
            assert np.array_equal(curve.fractions, fractions)
            trapezoid = ((expected[:, 1:] + expected[:, :-1]) / 2 * np.diff(fractions)).sum(1)
            assert_close(curve.auc, trapezoid, dtype, scale=np.abs(expected).max())
            assert_close(curve.score, curve.auc, np.float64)
            aopc = (expected[:, :1] - expected).sum(axis=1) / len(counts)
            assert_close(curve.aopc, aopc, dtype, scale=np.abs(expected).max())


@pytest.mark.parametrize("dtype", DTYPES)
def test_step_rules_of_the_sum_model(dtype):
    """36 pixels: features_in_step=5 flips 5 a step, the last step 1; steps=5 flips
    floor(36 k / 5) after step k; a callable imputer."""
    x, _, a, _ = batch(6, dtype)
    imputed = np.linspace(-1, 1, x.size).reshape(x.shape)
    for rule, counts in (({"features_in_step": 5}, [0, 5, 10, 15, 20, 25, 30, 35, 36]),
                         ({"steps": 5}, [0, 7, 14, 21, 28, 36])):  # fmt: skip
        curve = pixel_flipping(total, x, a, 0, imputer=lambda z: imputed, softmax=False, **rule)
        assert_close(curve.scores, deletion_by_hand(x, a, imputed, "morf", counts), dtype)
        assert np.array_equal(curve.fractions, np.array(counts) / 36)


@pytest.mark.parametrize("dtype", DTYPES)
def test_insertion_deletion_and_srg_worked_example(dtype):
    """x = (1, 2, 3, 4), attribution = x, imputer 0, four steps. Deletion (most relevant first):
    10, 6, 3, 1, 0, AUC = (8 + 4.5 + 2 + 0.5) / 4 = 3.75; least relevant first: 10, 9, 7, 4, 0,
    AUC = (9.5 + 8 + 5.5 + 2) / 4 = 6.25; SRG = 6.25 - 3.75 = 2.5. Insertion: 0, 4, 7, 9, 10,
    AUC = (2 + 5.5 + 8 + 9.5) / 4 = 6.25."""
    x = np.array([[1.0, 2.0, 3.0, 4.0]], dtype=dtype)
    kwargs = {"steps": 4, "imputer": 0.0, "softmax": False}
    gone = deletion(total, x, x, **kwargs)
    assert np.array_equal(gone.scores, [[10, 6, 3, 1, 0]])
    assert np.array_equal(gone.fractions, [0, 0.25, 0.5, 0.75, 1])
    assert gone.score == pytest.approx([3.75], abs=1e-12) and not gone.higher_is_better
    put = insertion(total, x, x, **kwargs)
    assert np.array_equal(put.scores, [[0, 4, 7, 9, 10]])
    assert put.score == pytest.approx([6.25], abs=1e-12) and put.higher_is_better
    gain = symmetric_relevance_gain(total, x, x, **kwargs)
    assert np.array_equal(gain.morf.scores, [[10, 6, 3, 1, 0]])
    assert np.array_equal(gain.lerf.scores, [[10, 9, 7, 4, 0]])
    assert gain.score == pytest.approx([2.5], abs=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("imputer", ["blur", "mean", 0.5])
def test_insertion_deletion_and_srg_of_the_sum_model(dtype, imputer):
    """Insertion from the imputed input: y_k = sum(r) + the summed (x - r) of the c_k features
    put back; deletion and SRG from the deletion curves of both orders."""
    x, _, a, _ = batch(6, dtype)
    imputed = expected_imputed(x, imputer)
    counts = np.arange(13) * 36 // 12
    kwargs = {"steps": 12, "imputer": imputer, "softmax": False}
    morf = deletion_by_hand(x, a, imputed, "morf", counts)
    lerf = deletion_by_hand(x, a, imputed, "lerf", counts)
    assert_close(deletion(total, x, a, **kwargs).scores, morf, dtype)
    inserted = imputed.reshape(3, -1).sum(1, keepdims=True) + morf[:, :1] - morf
    assert_close(insertion(total, x, a, **kwargs).scores, inserted, dtype)
    gain = symmetric_relevance_gain(total, x, a, **kwargs)
    assert_close(gain.morf.scores, morf, dtype)
    assert_close(gain.lerf.scores, lerf, dtype)
    # the shared end points cancel: SRG = (1 / S) sum_{k=1}^{S-1} (lerf_k - morf_k)
    assert_close(gain.score, (lerf - morf)[:, 1:-1].sum(1) / 12, dtype, scale=np.abs(morf).max())


@pytest.mark.parametrize("dtype", DTYPES)
def test_region_perturbation_of_the_sum_model(dtype):
    """A 4 x 4 image 0..15 of 2 x 2 patches with sums 10, 18, 42, 50 (raster order), attribution
    = x, imputer 0: most relevant first removes 50, 42, 18, 10: y = 120, 70, 28, 10, 0, AOPC =
    (0 + 50 + 92 + 110 + 120) / 5 = 74.4; least relevant first: y = 120, 110, 92, 50, 0, AOPC =
    (0 + 10 + 28 + 70 + 120) / 5 = 45.6; three regions: the curve stops after the third."""
    x = np.arange(16, dtype=dtype).reshape(1, 1, 4, 4)
    kwargs = {"patch_size": 2, "imputer": 0.0, "softmax": False}
    morf = region_perturbation(total, x, x, **kwargs)
    assert np.array_equal(morf.scores, [[120, 70, 28, 10, 0]])
    assert np.array_equal(morf.fractions, [0, 0.25, 0.5, 0.75, 1])
    assert morf.score == pytest.approx([74.4], abs=1e-12) and morf.higher_is_better
    lerf = region_perturbation(total, x, x, order="lerf", **kwargs)
    assert np.array_equal(lerf.scores, [[120, 110, 92, 50, 0]])
    assert lerf.score == pytest.approx([45.6], abs=1e-12) and not lerf.higher_is_better
    three = region_perturbation(total, x, x, regions_evaluation=3, **kwargs)
    assert np.array_equal(three.scores, [[120, 70, 28, 10]])
    # a (2, 4) patch: two patches, rows 0-1 (sum 28) and rows 2-3 (sum 92)
    tall = region_perturbation(total, x, x, **{**kwargs, "patch_size": (2, 4)})
    assert np.array_equal(tall.scores, [[120, 28, 0]])


def test_batches_of_batch_size_rows_across_samples_and_steps():
    """3 samples x 12 steps = 36 perturbed inputs (the unperturbed column is the model's first
    call): batch_size=10 runs them in 4 calls of 10, 10, 10, 6 rows; the curve does not depend on
    the batch size."""
    x, _, a, _ = batch(6, np.float64)
    rows = []

    def counted(z):
        rows.append(len(z))
        return total(z)

    curve = deletion(counted, x, a, steps=12, batch_size=10, softmax=False)
    assert rows == [3, 10, 10, 10, 6]
    again = deletion(total, x, a, steps=12, batch_size=64, softmax=False)
    assert np.array_equal(curve.scores, again.scores)


def test_softmax_and_targets():
    """softmax=True explains the target's probability; the default target is the arg-max."""
    net = tiny_cnn(6)
    x, _, a, _ = batch(6, np.float64)
    curve = pixel_flipping(net, x, a, features_in_step=12, backend="numpy")
    with torch.no_grad():
        p = torch.softmax(net(torch.tensor(x, dtype=torch.float32)), 1).numpy()
    assert np.abs(curve.scores[:, 0] - p.max(1)).max() < 1e-6


@pytest.mark.parametrize("dtype", DTYPES)
def test_bad_input(dtype):
    x, full, a, _ = batch(6, dtype)
    with pytest.raises(ValueError, match=r"pixel_flipping: attribution of shape \(3, 3, 6, 5\)"):
        pixel_flipping(total, x, full[..., :5])
    for name in ("features_in_step", "steps"):
        for value in (0, -2, 1.5):
            with pytest.raises(ValueError, match=f"deletion: {name} must be a positive int"):
                deletion(total, x, a, **{name: value})
    with pytest.raises(ValueError, match="insertion: steps must be at most the number of "
                                         r"features \(36\), got 37"):  # fmt: skip
        insertion(total, x, a, steps=37)
    with pytest.raises(ValueError, match="give features_in_step or steps, not both"):
        symmetric_relevance_gain(total, x, a, steps=4, features_in_step=2)
    with pytest.raises(ValueError, match="pixel_flipping: order must be one of 'morf', 'lerf', "
                                         "got 'random'"):  # fmt: skip
        pixel_flipping(total, x, a, order="random")
    with pytest.raises(ValueError, match="region_perturbation: imputer must be a finite number, "
                                         "one of 'black', 'white', 'mean', 'blur', 'uniform'"):  # fmt: skip
        region_perturbation(total, x, a, imputer="grey")
    for bad in (np.nan, True):
        with pytest.raises(ValueError, match="deletion: imputer must be"):
            deletion(total, x, a, imputer=bad)
    with pytest.raises(ValueError, match=r"the imputer callable must return numbers of x's shape"):
        deletion(total, x, a, imputer=lambda z: z[:1])
    with pytest.raises(ValueError, match="the imputer callable returned NaN"):
        deletion(total, x, a, imputer=lambda z: np.full(z.shape, np.inf))
    with pytest.raises(ValueError, match="imputer 'blur' needs inputs"):
        insertion(total, x.reshape(3, -1), full.reshape(3, -1))
    with pytest.raises(ValueError, match="pixel_flipping: seed must be an int >= 0 or None"):
        pixel_flipping(total, x, a, seed=-1)
    with pytest.raises(ValueError, match="region_perturbation: patch_size 4 does not tile the "
                                         r"input's spatial shape \(6, 6\)"):  # fmt: skip
        region_perturbation(total, x, a, patch_size=4)
    with pytest.raises(ValueError, match="region_perturbation: patch_size must be a positive int"):
        region_perturbation(total, x, a, patch_size=0)
    with pytest.raises(ValueError, match="patch_size must be an int or one int per spatial axis"):
        region_perturbation(total, x, a, patch_size=(2, 2, 2))
    with pytest.raises(ValueError, match="region_perturbation: regions_evaluation must be a "
                                         "positive int"):  # fmt: skip
        region_perturbation(total, x, a, patch_size=2, regions_evaluation=0)
    with pytest.raises(ValueError, match=r"region_perturbation: needs inputs \(N, C, \*spatial\)"):
        region_perturbation(total, x, a[..., :1], patch_size=2)


def test_an_explainer_runs_once_for_both_srg_curves():
    """An explainer given for the attribution runs once, on x and the resolved targets, and the
    curves equal those of its attribution given as an array."""
    x, _, a, _ = batch(6, np.float64)
    calls = []

    def explain(z, target):
        calls.append((z.shape, list(target)))
        return a

    gain = symmetric_relevance_gain(total, x, explain, steps=6, softmax=False)
    assert calls == [((3, 3, 6, 6), [0, 0, 0])]
    again = symmetric_relevance_gain(total, x, a, steps=6, softmax=False)
    assert np.array_equal(gain.score, again.score)


@pytest.mark.parametrize("dtype", DTYPES)
def test_noisy_linear_imputer_curve(dtype):
    # ROAD's imputation as a pixel-flipping imputer: step k of sample n is noisy_linear_imputation
    # of x_n with its k most relevant pixels removed, the noise drawn row after row (sample-major,
    # the unperturbed column left out) from default_rng(seed); the last step removes every
    # pixel (its imputation is 0 plus noise). The model is the sum of the input.
    from npxai.metrics.road import noisy_linear_imputation

    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 2, 3, 3)).astype(dtype)
    a = rng.standard_normal((2, 1, 3, 3))
    curve = pixel_flipping(lambda r: r.reshape(len(r), -1).sum(1, keepdims=True), x, a, 0,
                           features_in_step=3, imputer="noisy_linear", seed=4, batch_size=4,
                           softmax=False)  # fmt: skip
    draws = np.random.default_rng(4)
    for n in range(2):
        first = np.argsort(-a[n].ravel(), kind="stable")
        expected = [x[n].astype(np.float64).sum()]
        for k in (3, 6, 9):
            mask = np.zeros(9, bool)
            mask[first[:k]] = True
            row = noisy_linear_imputation(x[n : n + 1], mask.reshape(1, 1, 3, 3), draws)
            expected.append(row.astype(np.float64).sum())
        assert_close(curve.scores[n], np.array(expected), dtype)
