"""Vision Transformer (Dosovitskiy et al. 2021) with torchvision's keys: ``conv_proj``,
``class_token``, ``encoder.pos_embedding``, ``encoder.layers.encoder_layer_0.self_attention``,
``encoder.ln``, ``heads.head``, ...

The model is a :class:`~npxai.Graph`: the image cut into ``patch_size`` patches by
``conv_proj``, the patches as tokens (``Flatten``, ``Permute``), the class token put first
(``Concat`` of the graph's constant ``class_token``), the positional embedding added (``Add`` of
the encoder's constant ``pos_embedding``), the encoder blocks, the class token's output
(``Select``) through ``heads``. A block is torchvision's ``EncoderBlock``::

    x = x + self_attention(ln_1(x));   x = x + mlp(ln_2(x))      (mlp: Linear, GELU, Linear)
"""

from collections import OrderedDict

import numpy as np

from ..attention import MultiheadAttention
from ..checks import positive_int
from ..containers import Graph, Sequential
from ..errors import LayerInputError
from ..layers import (
    GELU,
    Add,
    Concat,
    Conv2d,
    Dropout,
    Flatten,
    LayerNorm,
    Linear,
    Permute,
    Select,
    Tanh,
)
from ..module import Trace


def encoder_block(hidden_dim: int, num_heads: int, mlp_dim: int, eps: float = 1e-6) -> Graph:
    """torchvision's ``EncoderBlock``: pre-norm self-attention and MLP, each with its residual."""
    mlp = Sequential(Linear(hidden_dim, mlp_dim), GELU(), Dropout(0.0), Linear(mlp_dim, hidden_dim),
                     Dropout(0.0))  # fmt: skip
    return Graph({
        "ln_1": (LayerNorm(hidden_dim, eps=eps), ["input"]),
        "self_attention": (MultiheadAttention(hidden_dim, num_heads, batch_first=True), ["ln_1"]),
        "dropout": (Dropout(0.0), ["self_attention"]),
        "attention_sum": (Add(), ["dropout", "input"]),
        "ln_2": (LayerNorm(hidden_dim, eps=eps), ["attention_sum"]),
        "mlp": (mlp, ["ln_2"]),
        "mlp_sum": (Add(), ["mlp", "attention_sum"]),
    })  # fmt: skip


class VisionTransformer(Graph):
    """torchvision's ``VisionTransformer``, as :func:`vit` builds it; an input whose size is not
    ``image_size`` is a :class:`~npxai.LayerInputError` (more patches than positional
    embeddings), as in torchvision."""

    def __init__(self, nodes, constants, image_size: int, in_channels: int):
        super().__init__(nodes, constants=constants)
        object.__setattr__(self, "image_size", image_size)
        object.__setattr__(self, "in_channels", in_channels)

    def _run(self, x, key: str, trace: Trace | None, backend: str) -> np.ndarray:
        size, channels = self.image_size, self.in_channels
        if x.ndim != 4 or x.shape[1] != channels or x.shape[2:] != (size, size):
            tokens = self["encoder"].pos_embedding.shape[1]
            raise LayerInputError(
                f"VisionTransformer: expected input of shape (N, {channels}, {size}, {size}) "
                f"(its positional embedding holds {tokens} tokens: the class token and "
                f"({size} / patch_size)^2 patches), got shape {x.shape}"
            )
        return super()._run(x, key, trace, backend)


def vit(
    image_size: int = 224,
    patch_size: int = 16,
    num_layers: int = 12,
    num_heads: int = 12,
    hidden_dim: int = 768,
    mlp_dim: int = 3072,
    num_classes: int = 1000,
    representation_size: int | None = None,
    in_channels: int = 3,
) -> VisionTransformer:
    """A ViT with torchvision's ``VisionTransformer`` arguments and keys (``vit_b_16`` by
    default; :func:`vit_b_16` and the others name torchvision's configurations); a torchvision
    ViT's state dict loads strictly. ``in_channels`` (npxai's, default 3 as torchvision's) is the
    patch embedding's input channels: 1 for grey images. ``image_size`` must be a multiple of
    ``patch_size`` and ``hidden_dim`` of ``num_heads`` (``ValueError``)."""
    for name, value in (("image_size", image_size), ("patch_size", patch_size),
                        ("num_layers", num_layers), ("num_heads", num_heads),
                        ("hidden_dim", hidden_dim), ("mlp_dim", mlp_dim),
                        ("num_classes", num_classes), ("in_channels", in_channels)):  # fmt: skip
        positive_int(value, f"vit: {name}")
    if image_size % patch_size:
        raise ValueError(
            f"vit: image_size ({image_size}) must be a multiple of patch_size ({patch_size})"
        )
    if hidden_dim % num_heads:
        raise ValueError(
            f"vit: hidden_dim ({hidden_dim}) must be divisible by num_heads ({num_heads})"
        )
    tokens = (image_size // patch_size) ** 2 + 1
    blocks = OrderedDict((f"encoder_layer_{i}", encoder_block(hidden_dim, num_heads, mlp_dim))
                         for i in range(num_layers))  # fmt: skip
    rng = np.random.default_rng(0)
    encoder = Graph(
        {
            "pos_sum": (Add(), ["input", "pos_embedding"]),
            "dropout": (Dropout(0.0), ["pos_sum"]),
            "layers": (Sequential(blocks), ["dropout"]),
            "ln": (LayerNorm(hidden_dim, eps=1e-6), ["layers"]),
        },
        constants={
            "pos_embedding": (0.02 * rng.standard_normal((1, tokens, hidden_dim))).astype(
                np.float32
            )
        },
    )
    if representation_size is None:
        heads = Sequential(OrderedDict(head=Linear(hidden_dim, num_classes)))
    else:
        positive_int(representation_size, "vit: representation_size")
        heads = Sequential(OrderedDict(pre_logits=Linear(hidden_dim, representation_size),
                                       act=Tanh(), head=Linear(representation_size, num_classes)))  # fmt: skip
    nodes = {
        "conv_proj": (Conv2d(in_channels, hidden_dim, patch_size, stride=patch_size), ["input"]),
        "patches": (Flatten(2), ["conv_proj"]),
        "tokens": (Permute((0, 2, 1)), ["patches"]),
        "class_and_tokens": (Concat(1), ["class_token", "tokens"]),
        "encoder": (encoder, ["class_and_tokens"]),
        "class_output": (Select(1, 0), ["encoder"]),
        "heads": (heads, ["class_output"]),
    }
    constants = {"class_token": np.zeros((1, 1, hidden_dim), np.float32)}
    return VisionTransformer(nodes, constants, image_size, in_channels)


def vit_b_16(num_classes: int = 1000) -> VisionTransformer:
    """torchvision's ``vit_b_16``: 224 x 224 images, 16 x 16 patches, 12 layers of 12 heads,
    768 features, MLP 3072."""
    return vit(224, 16, 12, 12, 768, 3072, num_classes)


def vit_b_32(num_classes: int = 1000) -> VisionTransformer:
    """torchvision's ``vit_b_32``: as ``vit_b_16`` with 32 x 32 patches."""
    return vit(224, 32, 12, 12, 768, 3072, num_classes)
