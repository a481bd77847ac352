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
    get more than their share. ``-s`` prints both, and the same for a ViT with random weights."""
    test = np.load(files("npxai.reference_models") / "digits_test.npz")
    x, y = test["x"], test["y"]
    ink, bright = x[:, 0] > 0, x[:, 0] > 0.5
    npxai.manual_seed(0)
    models = {"trained": zoo.ready_model("vit-digits").model,
              "random": npxai.models.vit(**zoo.VIT_DIGITS_CONFIG)}  # fmt: skip
    for name, model in models.items():
        relevance = npxai.LRP(model, "AttnLRP").attribute(x, target=y)
        positive = np.maximum(relevance[:, 0], 0)
        total = positive.sum(axis=(1, 2))
        strokes = x[:, 0] > 0.25
        share = (positive * strokes).sum(axis=(1, 2)) / total
        on_bright = (positive * bright).sum(axis=(1, 2)) / total
        bright_of_ink = bright.sum(axis=(1, 2)) / ink.sum(axis=(1, 2))
        print(f"\n{name} ViT: positive relevance on the strokes {share.mean():.3f} (uniform "
              f"{strokes.mean():.3f}), on the bright pixels {on_bright.mean():.3f} (of the inked "
              f"pixels {bright_of_ink.mean():.3f})")  # fmt: skip
        if name == "trained":
            assert share.mean() > 0.9 > strokes.mean() + 0.5
            assert on_bright.mean() > 0.75 > bright_of_ink.mean() + 0.15
            assert (on_bright > bright_of_ink).mean() > 0.95
