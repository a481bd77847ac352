"""ResNet (He et al. 2016) with torchvision's keys: ``conv1``, ``layer1.0.conv1``, ``fc``, ...

A block is a :class:`~npxai.containers.Residual` whose children carry torchvision's names. Where
torchvision reuses one ``relu`` module inside a block, npxai has one per use: ``relu1`` (and
``relu2``) inside the branch and ``relu`` after the sum. None of them has state-dict keys.
"""

from collections import OrderedDict

from ..containers import Residual, Sequential
from ..layers import AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Flatten, Linear, MaxPool2d, ReLU


def _downsample(in_channels: int, out_channels: int, stride: int) -> Sequential | None:
    """torchvision's shortcut projection (1x1 conv + batch norm) where the shape changes."""
    if stride == 1 and in_channels == out_channels:
        return None
    return Sequential(
        Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), BatchNorm2d(out_channels)
    )


def basic_block(in_channels: int, channels: int, stride: int = 1) -> Residual:
    """``relu(bn2(conv2(relu1(bn1(conv1(x))))) + downsample(x))`` with 3x3 convolutions."""
    branch = OrderedDict(
        conv1=Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False),
        bn1=BatchNorm2d(channels),
        relu1=ReLU(inplace=True),
        conv2=Conv2d(channels, channels, 3, padding=1, bias=False),
        bn2=BatchNorm2d(channels),
    )
    shortcut = _downsample(in_channels, channels, stride)
    return Residual(
        branch, None if shortcut is None else {"downsample": shortcut}, {"relu": ReLU(True)}
    )


def bottleneck(in_channels: int, channels: int, stride: int = 1) -> Residual:
    """1x1 reduce, 3x3 (stride here, as torchvision v1.5), 1x1 expand to ``4 * channels``."""
    width, out = channels, channels * 4
    branch = OrderedDict(
        conv1=Conv2d(in_channels, width, 1, bias=False),
        bn1=BatchNorm2d(width),
        relu1=ReLU(inplace=True),
        conv2=Conv2d(width, width, 3, stride=stride, padding=1, bias=False),
        bn2=BatchNorm2d(width),
        relu2=ReLU(inplace=True),
        conv3=Conv2d(width, out, 1, bias=False),
        bn3=BatchNorm2d(out),
    )
    shortcut = _downsample(in_channels, out, stride)
    return Residual(
        branch, None if shortcut is None else {"downsample": shortcut}, {"relu": ReLU(True)}
    )


def resnet(block: str, layers: list[int], num_classes: int = 1000) -> Sequential:
    """Stem (7x7 conv, batch norm, ReLU, 3x3 max-pool), four stages of blocks, pool, ``fc``."""
    make, expansion = (basic_block, 1) if block == "basic" else (bottleneck, 4)
    stages, in_channels = OrderedDict(), 64
    for index, (channels, count) in enumerate(zip((64, 128, 256, 512), layers, strict=True)):
        blocks = []
        for position in range(count):
            stride = 2 if index > 0 and position == 0 else 1
            blocks.append(make(in_channels, channels, stride))
            in_channels = channels * expansion
        stages[f"layer{index + 1}"] = Sequential(*blocks)
    return Sequential(
        OrderedDict(
            conv1=Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False),
            bn1=BatchNorm2d(64),
            relu=ReLU(inplace=True),
            maxpool=MaxPool2d(kernel_size=3, stride=2, padding=1),
            **stages,
            avgpool=AdaptiveAvgPool2d((1, 1)),
            flatten=Flatten(1),
            fc=Linear(512 * expansion, num_classes),
        )
    )


def resnet18(num_classes: int = 1000) -> Sequential:
    """ResNet-18: basic blocks ``[2, 2, 2, 2]``."""
    return resnet("basic", [2, 2, 2, 2], num_classes)


def resnet34(num_classes: int = 1000) -> Sequential:
    """ResNet-34: basic blocks ``[3, 4, 6, 3]``."""
    return resnet("basic", [3, 4, 6, 3], num_classes)


def resnet50(num_classes: int = 1000) -> Sequential:
    """ResNet-50: bottleneck blocks ``[3, 4, 6, 3]``."""
    return resnet("bottleneck", [3, 4, 6, 3], num_classes)
