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

Images are ``(H, W, 3)`` uint8 RGB arrays (or PIL images, or paths); model inputs ``(1, 3, size, size)`` NCHW arrays.
Resizing uses Pillow's bilinear filter (antialiased when shrinking), as torchvision's ``Resize``
does on a PIL image. Pillow comes with matplotlib and is imported only when an image is read or
resized.
"""

from __future__ import annotations

import os
import struct
import sys
import warnings
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from .errors import LoadError
from .io import check_file

if TYPE_CHECKING:
    from PIL import Image

T = TypeVar("T")

#: What Pillow raises on a corrupt or truncated file besides ``OSError`` (found by fuzzing:
#: ``SyntaxError`` from a broken PNG chunk, ``TypeError`` from a TIFF's bad offset).
CORRUPT_IMAGE_ERRORS = (OSError, ValueError, SyntaxError, TypeError, EOFError, struct.error)

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

#: The most pixels :func:`preprocess_imagenet` resizes an image to before its crop (2 ** 26: a
#: 1-pixel-high image 2000 wide, a few bytes as a PNG, would otherwise become 256 x 512 000).
MAX_RESIZED_PIXELS = 2**26

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


def _read(path: str | os.PathLike, read: Callable[[Image.Image], T]) -> T:
    """``read(image)`` of the image file at ``path``; every failure a
    :class:`~npxai.errors.LoadError` naming ``path`` (see :func:`load_image`)."""
    from PIL import Image

    check_file(path, "image")  # also names a link loop, a name too long, a folder not searchable
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return read(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise LoadError(
            f"{path}: not read, too many pixels ({error}; PIL.Image.MAX_IMAGE_PIXELS sets the "
            "limit)"
        ) from None
    except CORRUPT_IMAGE_ERRORS as error:
        raise LoadError(f"{path}: not a readable image ({error})") from error


def load_image(path: str | os.PathLike) -> np.ndarray:
    """The image at ``path`` as an ``(H, W, 3)`` uint8 RGB array, upright as a photo viewer shows
    it: a JPEG's EXIF orientation tag is applied (``PIL.ImageOps.exif_transpose``; a camera held
    sideways stores the pixels sideways and says so in the tag). Grey images are repeated over
    the channels, an alpha channel is dropped; 16-bit, 32-bit integer and float grey images are
    scaled to 8 bits by their format's range (:func:`_grey_to_8_bit`: 0..65535 and 0..1 to
    0..255; other values are refused). A path that is not a readable image raises
    :class:`~npxai.errors.LoadError` naming it (:class:`~npxai.errors.MissingFileError`, also a
    ``FileNotFoundError``, when nothing is there; a directory, pipe or device is refused without
    being opened: :func:`npxai.io.check_file`; an image of more than Pillow's
    ``PIL.Image.MAX_IMAGE_PIXELS`` pixels is refused before it is decoded)."""
    return _read(path, _upright_rgb)


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(height, width)`` of the image at ``path`` as :func:`load_image` returns it (EXIF
    orientation applied), from the file's header alone; the same errors as :func:`load_image`."""
    from PIL import ExifTags

    def size(image: Image.Image) -> tuple[int, int]:
        width, height = image.size
        orientation = image.getexif().get(ExifTags.Base.Orientation)
        return (width, height) if orientation in (5, 6, 7, 8) else (height, width)  # 90° turns

    return _read(path, size)


def _upright_rgb(image: Image.Image) -> np.ndarray:
    """``image`` upright by its EXIF orientation as an ``(H, W, 3)`` uint8 RGB array: 16- and
    32-bit integer and float grey images by :func:`_grey_to_8_bit` (Pillow's own conversion
    would clip them to 255), others by Pillow's ``convert("RGB")``."""
    from PIL import ImageOps

    upright = ImageOps.exif_transpose(image)
    if upright.mode.startswith("I") or upright.mode == "F":
        grey = _grey_to_8_bit(np.asarray(upright), upright.mode)
        return np.repeat(grey[..., np.newaxis], 3, axis=2)
    return np.asarray(upright.convert("RGB"), dtype=np.uint8)


def _grey_to_8_bit(values: np.ndarray, mode: str) -> np.ndarray:
    """Grey values of a PIL image of ``mode`` ``"I;16"``, ``"I;16B"``, ... (16-bit), ``"I"``
    (32-bit integers) or ``"F"`` (32-bit floats) as uint8, by the format's range, so that a
    16-bit image looks as its 8-bit version does: integers in [0, 65535] become
    ``round(v * 255 / 65535)`` (``v8 * 257`` comes back as ``v8``), floats in [0, 1]
    ``round(255 * v)`` (0.5 is 128). Values outside that range (or NaN) raise ``ValueError``
    naming the mode and the range found: npxai does not guess a scale for them."""
    floats = values.dtype.kind == "f"
    top = 1.0 if floats else 65535
    low, high = values.min(), values.max()
    if not (0 <= low and high <= top):
        kind = "float" if floats else "integer"
        raise ValueError(
            f"{mode} image with values from {low} to {high}: {kind} images are read with "
            f"values in [0, {top}] (to 0..255), and npxai does not guess another scale"
        )
    return np.rint(values.astype(np.float64) * (255 / top)).astype(np.uint8)


def _as_image(image: np.ndarray | Image.Image | str | os.PathLike) -> np.ndarray:
    if isinstance(image, str | os.PathLike):
        return load_image(image)
    pil = sys.modules.get("PIL.Image")  # a PIL image means PIL is imported already
    if pil is not None and isinstance(image, pil.Image):
        return _upright_rgb(image)
    if not isinstance(image, np.ndarray):
        raise TypeError(
            f"image must be a path, a PIL image or an (H, W, 3) uint8 array, got {type(image)}"
        )
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"image must be an (H, W, 3) uint8 RGB array, got dtype {image.dtype} and shape "
            f"{image.shape}"
        )
    return image


def _crop_geometry(height: int, width: int, size: int, resize: int) -> tuple[int, int, int, int]:
    """``(resized height, resized width, top, left)`` of :func:`preprocess_imagenet`'s resize and
    centre crop of a ``height x width`` image."""
    if not 1 <= size <= resize:
        raise ValueError(f"size and resize must satisfy 1 <= size <= resize, got {size}, {resize}")
    if height <= width:
        new_height, new_width = resize, int(resize * width / height)
    else:
        new_height, new_width = int(resize * height / width), resize
    top = int(round((new_height - size) / 2.0))
    left = int(round((new_width - size) / 2.0))
    return new_height, new_width, top, left


def crop_box(
    height: int, width: int, size: int = 224, resize: int = 256
) -> tuple[float, float, float, float]:
    """The part of a ``height x width`` image that :func:`preprocess_imagenet` keeps (with the
    same ``size`` and ``resize``), in the image's own pixel coordinates: ``(left, top, right,
    bottom)``, edges between pixels, ``(0, 0, width, height)`` being the whole image. With the
    image resized to ``new_height x new_width`` and the crop's offsets ``top, left`` there (see
    :func:`preprocess_imagenet`): ``(left * width / new_width, top * height / new_height,
    (left + size) * width / new_width, (top + size) * height / new_height)``. A 1024-wide,
    512-high image is resized to 512 x 256; its 224 x 224 crop starts at (144, 16): the box is
    ``(288.0, 32.0, 736.0, 480.0)``."""
    height, width, size, resize = int(height), int(width), int(size), int(resize)
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be positive, got {height}, {width}")
    new_height, new_width, top, left = _crop_geometry(height, width, size, resize)
    sx, sy = width / new_width, height / new_height
    return (left * sx, top * sy, (left + size) * sx, (top + size) * sy)


def _channel_triple(value: Sequence[float], name: str) -> tuple[float, float, float]:
    values = tuple(float(v) for v in value)
    if len(values) != 3 or not all(np.isfinite(values)):
        raise ValueError(f"{name} must be 3 finite numbers (R, G, B), got {value!r}")
    return values


def preprocess_imagenet(
    image: np.ndarray | Image.Image | str | os.PathLike,
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

    ``image`` is an ``(H, W, 3)`` uint8 RGB array, a PIL image (any mode, converted to RGB as
    :func:`load_image` converts a file's) or a path (read with :func:`load_image`). PIL images
    and paths are turned upright by their EXIF orientation tag first, as :func:`load_image`
    does (torchvision's pipeline does not: on a photo with that tag it sees the pixels
    sideways); :func:`crop_box` gives the cropped part.
    ``mean`` and ``std`` are on the [0, 1] scale; the defaults are torchvision's
    (:data:`IMAGENET_MEAN`, :data:`IMAGENET_STD`); the pretrained EfficientNet-Lite0 needs
    :data:`EFFICIENTNET_LITE_MEAN` and :data:`EFFICIENTNET_LITE_STD`. ``dtype`` is float32 or
    float64. An image whose resized version would have more than :data:`MAX_RESIZED_PIXELS`
    pixels (a side thousands of times the other) raises ``ValueError``.
    """
    from PIL import Image

    pixels = _as_image(image)
    size, resize = int(size), int(resize)
    new_height, new_width, top, left = _crop_geometry(*pixels.shape[:2], size, resize)
    if new_height * new_width > MAX_RESIZED_PIXELS:
        raise ValueError(
            f"a {pixels.shape[0]} x {pixels.shape[1]} image resized to {new_height} x {new_width} "
            f"has more than {MAX_RESIZED_PIXELS} pixels (MAX_RESIZED_PIXELS); crop it first"
        )
    dtype = np.dtype(dtype).type
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {np.dtype(dtype).name}")
    mean = np.asarray(_channel_triple(mean, "mean"), dtype)
    std = np.asarray(_channel_triple(std, "std"), dtype)
    if not (std > 0).all():
        raise ValueError(f"std must be positive, got {tuple(std.tolist())}")
    resized = Image.fromarray(pixels).resize((new_width, new_height), Image.Resampling.BILINEAR)
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
