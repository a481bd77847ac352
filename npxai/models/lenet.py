"""A small LeNet-style CNN for small images (8x8 digits up to 32x32)."""

from collections import OrderedDict

from ..containers import Sequential
from ..layers import Conv2d, Flatten, Linear, MaxPool2d, ReLU


def lenet(num_classes: int = 10, in_channels: int = 1, input_size: int = 28) -> Sequential:
    """``conv3x3(6) relu maxpool2 conv3x3(16) relu maxpool2 flatten fc(120) relu fc(84) relu fc``.

    The 3x3 convolutions keep the size (padding 1), so ``input_size`` (square images, at least 4)
    fixes the width of the first fully connected layer: ``16 * (input_size // 4) ** 2``.
    """
    if input_size < 4:
        raise ValueError(f"lenet needs input_size >= 4 (two 2x2 poolings), got {input_size}")
    side = input_size // 4
    return Sequential(
        OrderedDict(
            conv1=Conv2d(in_channels, 6, 3, padding=1),
            relu1=ReLU(),
            pool1=MaxPool2d(2),
            conv2=Conv2d(6, 16, 3, padding=1),
            relu2=ReLU(),
            pool2=MaxPool2d(2),
            flatten=Flatten(1),
            fc1=Linear(16 * side * side, 120),
            relu3=ReLU(),
            fc2=Linear(120, 84),
            relu4=ReLU(),
            fc3=Linear(84, num_classes),
        )
    )
