"""The bundled ViT trained on the 8x8 digits: it loads into npxai.models.vit with the
configuration its file states, classifies the held-out digits as its training script measured,
and AttnLRP puts its positive relevance on the strokes."""

from importlib.resources import files

import numpy as np
from safetensors import safe_open

import npxai
from npxai import zoo

WEIGHTS = files("npxai.reference_models") / "vit_digits.safetensors"


def test_the_configuration_and_accuracy_are_the_files():
    with safe_open(str(WEIGHTS), "np") as f:
        meta = f.metadata()
    assert {k: int(meta[k]) for k in zoo.VIT_DIGITS_CONFIG} == zoo.VIT_DIGITS_CONFIG
    test = np.load(files("npxai.reference_models") / "digits_test.npz")
    model = zoo.ready_model("vit-digits").model
    for backend in ("numpy", "numba"):
        accuracy = (model(test["x"], backend=backend).argmax(axis=1) == test["y"]).mean()
        assert f"{accuracy:.4f}" == meta["test_accuracy"] == "0.9889"


def test_attnlrp_puts_positive_relevance_on_the_strokes():
    """The share of positive relevance on the digit's pixels (grey value above 0.25) against a
    uniform map's share, their fraction of the image; every held-out digit, its true class. The
    background is 0, so any rule that multiplies by the input gives it nothing: the measure
    checks where relevance is not, and among the stroke pixels, that the bright ones (above 0.5)
    get more than their share."""
    test = np.load(files("npxai.reference_models") / "digits_test.npz")
    x, y = test["x"], test["y"]
    relevance = npxai.LRP(zoo.ready_model("vit-digits").model, "AttnLRP").attribute(x, target=y)
    positive = np.maximum(relevance[:, 0], 0)
    total = positive.sum(axis=(1, 2))
    for threshold, least in ((0.25, 0.9), (0.5, 0.75)):
        strokes = x[:, 0] > threshold
        share = (positive * strokes).sum(axis=(1, 2)) / total
        uniform = strokes.mean(axis=(1, 2))
        assert share.mean() > least > uniform.mean() + 0.3
    ink, bright = x[:, 0] > 0, x[:, 0] > 0.5
    on_bright = (positive * bright).sum(axis=(1, 2)) / total
    assert (on_bright > bright.sum(axis=(1, 2)) / ink.sum(axis=(1, 2))).mean() > 0.95
