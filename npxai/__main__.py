"""``python -m npxai``: build a small CNN, load its trained weights without torch, and classify.

Uses the LeNet-style model and the held-out 8x8 digits shipped in ``npxai.reference_models``.
"""

from __future__ import annotations

import argparse
from importlib.resources import files

import numpy as np

from . import gradient, load, models

DIGIT_SHADES = " .:-=+*#%@"


def ascii_digit(image: np.ndarray) -> list[str]:
    """An 8x8 image in [0, 1] as 8 lines of characters, darker for higher values."""
    levels = np.clip(
        (image * (len(DIGIT_SHADES) - 1)).round().astype(int), 0, len(DIGIT_SHADES) - 1
    )
    return ["".join(DIGIT_SHADES[v] * 2 for v in row) for row in levels]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="npxai", description=__doc__)
    parser.add_argument("--show", type=int, default=3, help="how many digits to draw (default 3)")
    args = parser.parse_args(argv)

    bundled = files("npxai.reference_models")
    model = models.lenet(num_classes=10, in_channels=1, input_size=8)
    model.load_state_dict(load(bundled / "lenet_digits.safetensors"))
    test = load(bundled / "digits_test.npz")
    x, y = test["x"], test["y"]

    logits = model(x)
    predicted = logits.argmax(axis=1)
    print(model)
    print(f"\naccuracy on {len(y)} held-out digits: {(predicted == y).mean():.4f}\n")
    grads = gradient(model, x[: args.show])
    for i in range(min(args.show, len(y))):
        e = np.exp(logits[i] - logits[i].max())
        saliency = np.abs(grads[i, 0]) / max(np.abs(grads[i, 0]).max(), 1e-12)
        print(
            f"digit {i}: label {y[i]}, predicted {predicted[i]} (p = {e[predicted[i]] / e.sum():.3f})"
        )
        print("  image              |grad| of the predicted logit")
        for left, right in zip(ascii_digit(x[i, 0]), ascii_digit(saliency), strict=True):
            print(f"  {left}   {right}")


if __name__ == "__main__":
    main()
