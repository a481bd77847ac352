"""ImageNet helpers: class names, image loading, torchvision-style preprocessing, top-k.

::

    import npxai
    from npxai import imagenet

    model = npxai.models.efficientnet_lite0(pretrained=True)
    x = imagenet.preprocess_imagenet(
        imagenet.sample_image("chelsea"),
        mean=imagenet.EFFICIENTNET_LITE_MEAN,
        std=imagenet.EFFICIENTNET_LITE_STD,
    )  # (1, 3, 224, 224) float32
    for index, name, probability in imagenet.top_k(model(x)[0]):
        print(f"{index:4d} {name:20s} {probability:.3f}")

Images are ``(H, W, 3)`` uint8 RGB arrays; model inputs ``(1, 3, size, size)`` NCHW arrays.
Resizing uses Pillow's bilinear filter (antialiased when shrinking), as torchvision's ``Resize``
does on a PIL image. Pillow comes with matplotlib and is imported only when an image is read or
resized.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from .errors import LoadError

#: The 1000 ImageNet-1k class names in index order (torchvision's list; 281-285 are the cats).
CLASS_NAMES: tuple[str, ...] = tuple(
    resources.files("npxai.reference_models")
    .joinpath("imagenet_classes.txt")
    .read_text(encoding="utf-8")
    .splitlines()
)

#: torchvision's normalisation, on the [0, 1] scale: what torchvision's and most PyTorch
#: ImageNet weights expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: EfficientNet-Lite's normalisation, on the [0, 1] scale: ``(pixel - 127) / 128``, to about
#: [-1, 1] (TensorFlow's ``efficientnet_lite_builder``: MEAN_RGB 127, STDDEV_RGB 128). The
#: pretrained ``npxai.models.efficientnet_lite0`` needs these.
EFFICIENTNET_LITE_MEAN = (127 / 255,) * 3
EFFICIENTNET_LITE_STD = (128 / 255,) * 3

#: The sample photos shipped in ``npxai.reference_models/images`` (see the README there).
SAMPLE_IMAGES = ("astronaut", "chelsea", "coffee", "rocket")


def sample_image(name: str) -> Path:
    """The path of a shipped sample photo: one of :data:`SAMPLE_IMAGES` (``"chelsea"`` is a
    cat, ``"coffee"`` an espresso cup, ``"astronaut"`` Eileen Collins, ``"rocket"`` a Falcon 9
    on its launch pad)."""
    if name not in SAMPLE_IMAGES:
        raise ValueError(f"no sample image {name!r}; there are {', '.join(SAMPLE_IMAGES)}")
    images = resources.files("npxai.reference_models").joinpath("images")
    return Path(str(images.joinpath(f"{name}.jpg")))


def load_image(path: str | os.PathLike) -> np.ndarray:
    """The image at ``path`` as an ``(H, W, 3)`` uint8 RGB array (grey images are repeated over
    the channels, an alpha channel is dropped). A missing or unreadable file raises
    :class:`~npxai.errors.LoadError` naming it."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except FileNotFoundError:
        raise LoadError(f"{path}: no such image file") from None
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise LoadError(f"{path}: not a readable image ({error})") from error


def _as_image(image: np.ndarray | str | os.PathLike) -> np.ndarray:
    if isinstance(image, str | os.PathLike):
        return load_image(image)
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a path or an (H, W, 3) uint8 array, got {type(image)}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"image must be an (H, W, 3) uint8 RGB array, got dtype {image.dtype} and shape "
            f"{image.shape}"
        )
    return image


def _channel_triple(value: Sequence[float], name: str) -> tuple[float, float, float]:
    values = tuple(float(v) for v in value)
    if len(values) != 3 or not all(np.isfinite(values)):
        raise ValueError(f"{name} must be 3 finite numbers (R, G, B), got {value!r}")
    return values


def preprocess_imagenet(
    image: np.ndarray | str | os.PathLike,
    size: int = 224,
    resize: int = 256,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    dtype: type = np.float32,
) -> np.ndarray:
    """An image as a model input of shape ``(1, 3, size, size)``, as torchvision's
    ``Compose([Resize(resize), CenterCrop(size), ToTensor(), Normalize(mean, std)])`` makes it
    from a PIL image: the shorter side resized to ``resize`` (the longer to
    ``int(resize * long / short)``, bilinear), the centre ``size x size`` cropped (offsets
    ``round((resized - size) / 2)``), pixels scaled to [0, 1], then ``(x - mean) / std`` per
    channel.

    ``image`` is an ``(H, W, 3)`` uint8 RGB array or a path (read with :func:`load_image`).
    ``mean`` and ``std`` are on the [0, 1] scale; the defaults are torchvision's
    (:data:`IMAGENET_MEAN`, :data:`IMAGENET_STD`); the pretrained EfficientNet-Lite0 needs
    :data:`EFFICIENTNET_LITE_MEAN` and :data:`EFFICIENTNET_LITE_STD`. ``dtype`` is float32 or
    float64.
    """
    from PIL import Image

    pixels = _as_image(image)
    size, resize = int(size), int(resize)
    if not 1 <= size <= resize:
        raise ValueError(f"size and resize must satisfy 1 <= size <= resize, got {size}, {resize}")
    dtype = np.dtype(dtype).type
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {np.dtype(dtype).name}")
    mean = np.asarray(_channel_triple(mean, "mean"), dtype)
    std = np.asarray(_channel_triple(std, "std"), dtype)
    if not (std > 0).all():
        raise ValueError(f"std must be positive, got {tuple(std.tolist())}")
    height, width = pixels.shape[:2]
    if height <= width:
        new_height, new_width = resize, int(resize * width / height)
    else:
        new_height, new_width = int(resize * height / width), resize
    resized = Image.fromarray(pixels).resize((new_width, new_height), Image.Resampling.BILINEAR)
    top = int(round((new_height - size) / 2.0))
    left = int(round((new_width - size) / 2.0))
    crop = np.asarray(resized)[top : top + size, left : left + size]
    x = crop.astype(dtype) / dtype(255)
    x = (x - mean) / std
    return np.ascontiguousarray(x.transpose(2, 0, 1)[np.newaxis])


def top_k(logits: np.ndarray, k: int = 5) -> list[tuple[int, str, float]]:
    """The ``k`` most probable classes of one sample's 1000 ImageNet logits (shape ``(1000,)``
    or ``(1, 1000)``): ``[(index, class name, softmax probability), ...]``, most probable first
    (ties in index order)."""
    scores = np.asarray(logits, dtype=np.float64)
    if scores.ndim == 2 and scores.shape[0] == 1:
        scores = scores[0]
    if scores.shape != (len(CLASS_NAMES),):
        raise ValueError(
            f"logits must be one sample's {len(CLASS_NAMES)} ImageNet logits, shape "
            f"({len(CLASS_NAMES)},) or (1, {len(CLASS_NAMES)}), got shape {scores.shape}"
        )
    if not isinstance(k, int | np.integer) or not 1 <= k <= len(CLASS_NAMES):
        raise ValueError(f"k must be an int in [1, {len(CLASS_NAMES)}], got {k!r}")
    probabilities = np.exp(scores - scores.max())
    probabilities /= probabilities.sum()
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [(int(i), CLASS_NAMES[i], float(probabilities[i])) for i in order]
