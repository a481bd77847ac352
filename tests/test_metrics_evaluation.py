"""``npxai.metrics.evaluate``: each cell is the metric itself, called with the settings its entry
states, on the method's explanation; the table, the curve plots, the metric names."""

from importlib.resources import files

import numpy as np
import pytest
from PIL import Image

import npxai
from npxai import metrics, zoo
from npxai.metrics.evaluation import DEFAULT_METRICS, METRICS, metric_names

DIGITS = npxai.load(files("npxai.reference_models") / "digits_test.npz")["x"][:3]


@pytest.fixture(scope="module")
def evaluation():
    model = zoo.lenet_digits().model
    explainers = {"Gradient": npxai.Gradient, "LRP": npxai.LRP}
    return model, metrics.evaluate(model, DIGITS, explainers, ["all"], seed=3, batch_size=20)


def test_each_cell_is_the_metric_with_its_stated_settings(evaluation):
    model, result = evaluation
    for method, make in (("Gradient", npxai.Gradient), ("LRP", npxai.LRP)):
        explainer = make(model)
        explanation = explainer(DIGITS)
        a, t = explanation.attribution, explanation.target
        pixels = a.sum(axis=1, keepdims=True)
        common = {"batch_size": 20, "seed": 3}
        expected = {
            "pixel-flipping": metrics.pixel_flipping(model, DIGITS, pixels, t, steps=64,
                                                     **common).auc,
            "region-perturbation": metrics.region_perturbation(model, DIGITS, pixels, t,
                                                               patch_size=1, **common).aopc,
            "deletion": metrics.deletion(model, DIGITS, pixels, t, **common).auc,
            "insertion": metrics.insertion(model, DIGITS, pixels, t, **common).auc,
            "srg": metrics.symmetric_relevance_gain(model, DIGITS, pixels, t, **common).score,
            "road": metrics.road(model, DIGITS, pixels, t, percentages=range(10, 100, 10),
                                 **common).mean(axis=1),
            "faithfulness-correlation": metrics.faithfulness_correlation(
                model, DIGITS, pixels, t, subset_size=16, softmax=True, **common),
            "infidelity": metrics.infidelity(model, DIGITS, a, t, **common),
            "sensitivity-max": metrics.sensitivity_max(model, DIGITS, explainer, t, **common),
            "mprt": metrics.mprt(model, DIGITS, make, t, **common).scores[:, -1],
            "random-logit": metrics.random_logit(model, DIGITS, explainer, t, **common),
            "sparseness": metrics.sparseness(None, DIGITS, a),
            "complexity": metrics.complexity(None, DIGITS, a),
            "effective-complexity": metrics.effective_complexity(None, DIGITS, a),
            "completeness": np.abs(metrics.completeness(model, DIGITS, a, t, batch_size=20)),
        }  # fmt: skip
        assert set(expected) == set(METRICS)
        for name, values in expected.items():
            np.testing.assert_array_equal(result.values[method][name], values, err_msg=name)


def test_the_table_holds_the_means_and_the_directions(evaluation):
    _, result = evaluation
    lines = result.table().splitlines()
    assert lines[0].split("|")[1:-1][0].strip() == "method"
    assert [c.strip() for c in lines[0].split("|")[2:-1]] == list(METRICS)
    directions = [c.strip() for c in lines[2].split("|")[2:-1]]
    assert directions[list(METRICS).index("insertion")] == "higher better"
    assert directions[list(METRICS).index("deletion")] == "lower better"
    row = [c.strip() for c in lines[3].split("|")[1:-1]]
    assert row[0] == "Gradient"
    for name, cell in zip(METRICS, row[1:], strict=True):
        assert float(cell) == pytest.approx(result.values["Gradient"][name].mean(), rel=1e-3)


def test_the_curve_plots_one_png_per_curve_metric(evaluation, tmp_path):
    _, result = evaluation
    written = result.save_curves(tmp_path / "plots")
    curved = [name for name, metric in METRICS.items() if metric.curve is not None]
    assert [path.name for path in written] == [f"curves_{name}.png" for name in curved]
    assert {"pixel-flipping", "insertion", "deletion", "srg", "road", "mprt"} <= set(curved)
    for path in written:
        with Image.open(path) as png:
            assert png.format == "PNG" and png.size == (640, 420)


def test_metric_names():
    assert metric_names(["Deletion, INSERTION", "pixel_flipping", "deletion"]) == [
        "deletion", "insertion", "pixel-flipping"]  # fmt: skip
    assert metric_names(["all"]) == list(METRICS)
    assert set(DEFAULT_METRICS) <= set(METRICS)
    with pytest.raises(ValueError, match="unknown metric 'aopc'; the metrics: pixel-flipping"):
        metric_names(["aopc"])


def test_bad_arguments():
    model = zoo.lenet_digits().model
    with pytest.raises(ValueError, match="evaluate: seed must be an int >= 0"):
        metrics.evaluate(model, DIGITS, {"Gradient": npxai.Gradient}, seed=-1)
    with pytest.raises(ValueError, match="evaluate: batch_size must be a positive int"):
        metrics.evaluate(model, DIGITS, {"Gradient": npxai.Gradient}, batch_size=0)


def test_the_default_batch_size_holds_8_imagenet_images():
    from npxai.metrics.base import rows_per_call

    assert rows_per_call(None, np.zeros((1, 3, 224, 224)), "m") == 8
    assert rows_per_call(None, np.zeros((1, 1, 8, 8)), "m") == 64
    assert rows_per_call(None, np.zeros((1, 3, 1000, 1000)), "m") == 1
    assert rows_per_call(5, np.zeros((1, 3, 224, 224)), "m") == 5
    with pytest.raises(ValueError, match="m: batch_size must be a positive int, got 0"):
        rows_per_call(0, np.zeros((1, 1, 8, 8)), "m")
    calls = []

    def model(rows):
        calls.append(len(rows))
        return rows.reshape(len(rows), -1)[:, :2]

    x = np.random.default_rng(0).random((9, 3, 224, 224), dtype=np.float32)
    metrics.pixel_flipping(model, x, x.sum(axis=1, keepdims=True), 0, steps=2, softmax=False)
    assert calls == [9, 8, 8, 2]  # x itself, then the 18 perturbed rows
