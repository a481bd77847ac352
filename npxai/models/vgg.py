"""VGG (Simonyan and Zisserman 2015) with torchvision's keys: ``features.*``, ``classifier.*``."""

from collections import OrderedDict

from ..containers import Sequential
from ..layers import (
    AdaptiveAvgPool2d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    Linear,
    MaxPool2d,
    ReLU,
)

#: Output channels of each 3x3 convolution, "M" for a 2x2 max-pool (torchvision's configs A-E).
CONFIGS = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],
}  # fmt: skip


def vgg(config: str, batch_norm: bool, num_classes: int = 1000, dropout: float = 0.5) -> Sequential:
    """``features -> avgpool (7x7) -> flatten -> classifier``, exactly torchvision's ``VGG``."""
    features, channels = [], 3
    for spec in CONFIGS[config]:
        if spec == "M":
            features.append(MaxPool2d(kernel_size=2, stride=2))
            continue
        features.append(Conv2d(channels, spec, kernel_size=3, padding=1))
        if batch_norm:
            features.append(BatchNorm2d(spec))
        features.append(ReLU(inplace=True))
        channels = spec
    classifier = Sequential(
        Linear(512 * 7 * 7, 4096), ReLU(True), Dropout(p=dropout),
        Linear(4096, 4096), ReLU(True), Dropout(p=dropout),
        Linear(4096, num_classes),
    )  # fmt: skip
    return Sequential(
        OrderedDict(
            features=Sequential(*features),
            avgpool=AdaptiveAvgPool2d((7, 7)),
            flatten=Flatten(1),
            classifier=classifier,
        )
    )


def vgg11(num_classes: int = 1000, dropout: float = 0.5) -> Sequential:
    """VGG-11 (configuration A)."""
    return vgg("vgg11", False, num_classes, dropout)


def vgg11_bn(num_classes: int = 1000, dropout: float = 0.5) -> Sequential:
    """VGG-11 with batch norm after every convolution."""
    return vgg("vgg11", True, num_classes, dropout)


def vgg13(num_classes: int = 1000, dropout: float = 0.5) -> Sequential:
    """VGG-13 (configuration B)."""
    return vgg("vgg13", False, num_classes, dropout)


def vgg13_bn(num_classes: int = 1000, dropout: float = 0.5) -> Sequential:
    """VGG-13 with batch norm after every convolution."""
    return vgg("vgg13", True, num_classes, dropout)


def vgg16(num_classes: int = 1000, dropout: float = 0.5) -> Sequential:
    """VGG-16 (configuration D)."""
    return vgg("vgg16", False, num_classes, dropout)


def vgg16_bn(num_classes: int = 1000, dropout: float = 0.5) -> Sequential:
    """VGG-16 with batch norm after every convolution."""
    return vgg("vgg16", True, num_classes, dropout)


def vgg19(num_classes: int = 1000, dropout: float = 0.5) -> Sequential:
    """VGG-19 (configuration E)."""
    return vgg("vgg19", False, num_classes, dropout)


def vgg19_bn(num_classes: int = 1000, dropout: float = 0.5) -> Sequential:
    """VGG-19 with batch norm after every convolution."""
    return vgg("vgg19", True, num_classes, dropout)
