"""Model constructors with torchvision's state-dict key layout (random weights; load your own),
and EfficientNet-Lite0 with the keys of its PyTorch port (pretrained weights optional)."""

from .efficientnet import efficientnet_lite0
from .lenet import lenet
from .resnet import resnet18, resnet34, resnet50
from .vgg import vgg11, vgg11_bn, vgg13, vgg13_bn, vgg16, vgg16_bn, vgg19, vgg19_bn
from .vit import vit, vit_b_16, vit_b_32

__all__ = [
    "efficientnet_lite0",
    "lenet",
    "resnet18",
    "resnet34",
    "resnet50",
    "vgg11",
    "vgg11_bn",
    "vgg13",
    "vgg13_bn",
    "vgg16",
    "vgg16_bn",
    "vgg19",
    "vgg19_bn",
    "vit",
    "vit_b_16",
    "vit_b_32",
]
