"""``npxai.from_torch``: a torch module tree as an npxai model with the same weights.

torch is imported only inside :func:`from_torch`; npxai never needs it otherwise.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np

from . import layers
from .containers import Residual, Sequential
from .errors import ConversionError
from .module import Module


def _leaf(module: Any) -> Module | None:
    """The npxai twin of a torch leaf layer (weights not yet copied), or ``None``."""
    name = type(module).__name__
    m = module
    if name == "Conv2d":
        if m.padding_mode != "zeros":
            raise ConversionError(f"Conv2d with padding_mode={m.padding_mode!r} (only 'zeros')")
        return layers.Conv2d(
            m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation,
            m.groups, m.bias is not None,
        )  # fmt: skip
    if name == "Linear":
        return layers.Linear(m.in_features, m.out_features, m.bias is not None)
    if name == "MaxPool2d":
        return layers.MaxPool2d(
            m.kernel_size, m.stride, m.padding, m.dilation, m.return_indices, m.ceil_mode
        )
    if name == "AvgPool2d":
        return layers.AvgPool2d(
            m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad, m.divisor_override
        )
    if name == "AdaptiveAvgPool2d":
        return layers.AdaptiveAvgPool2d(m.output_size)
    if name in ("BatchNorm1d", "BatchNorm2d"):
        cls = getattr(layers, name)
        return cls(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats)
    if name == "LeakyReLU":
        return layers.LeakyReLU(m.negative_slope)
    if name == "Softmax":
        return layers.Softmax(m.dim)
    if name == "Flatten":
        return layers.Flatten(m.start_dim, m.end_dim)
    if name == "Dropout":
        return layers.Dropout(m.p)
    if name == "GELU":
        return layers.GELU(m.approximate)
    if name == "LayerNorm":
        return layers.LayerNorm(m.normalized_shape, m.eps, m.elementwise_affine, m.bias is not None)
    if name == "RMSNorm":
        return layers.RMSNorm(m.normalized_shape, m.eps, m.elementwise_affine)
    if name == "Hardtanh":
        return layers.Hardtanh(m.min_val, m.max_val)
    if name == "ZeroPad2d":
        return layers.ZeroPad2d(tuple(m.padding))
    if name == "ConstantPad2d":
        return layers.ConstantPad2d(tuple(m.padding), m.value)
    if name == "Upsample":
        if m.recompute_scale_factor:
            raise ConversionError("Upsample with recompute_scale_factor=True")
        return layers.Upsample(m.size, m.scale_factor, m.mode, m.align_corners)
    if name in ("ReLU", "ReLU6", "Tanh", "Sigmoid", "SiLU", "Hardsigmoid", "Hardswish", "Identity"):
        return getattr(layers, name)()
    return None


def _children(module: Any, names: list[str], path: str) -> OrderedDict:
    return OrderedDict(
        (name, _convert(getattr(module, name), f"{path}.{name}" if path else name))
        for name in names
        if getattr(module, name) is not None
    )


def _convert(module: Any, path: str) -> Module:
    kind, origin = type(module).__name__, type(module).__module__
    where = f"submodule {path!r}" if path else "the module"
    if origin.startswith("torch.nn.modules"):
        if kind == "Sequential":
            return Sequential(
                OrderedDict(
                    (name, _convert(child, f"{path}.{name}" if path else name))
                    for name, child in module.named_children()
                )
            )
        try:
            twin = _leaf(module)
        except (ConversionError, ValueError) as error:
            raise ConversionError(f"cannot convert {where} ({kind}): {error}") from None
        if twin is not None:
            state = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
            twin.load_state_dict(state, allow_nonfinite=True)  # from_torch checks, by full key
            return twin
    if origin == "torchvision.models.vgg" and kind == "VGG":
        children = _children(module, ["features", "avgpool"], path)
        children["flatten"] = layers.Flatten(1)
        children.update(_children(module, ["classifier"], path))
        return Sequential(children)
    if origin == "torchvision.models.resnet" and kind == "ResNet":
        children = _children(module, ["conv1", "bn1", "relu", "maxpool"], path)
        children.update(
            _children(module, ["layer1", "layer2", "layer3", "layer4", "avgpool"], path)
        )
        children["flatten"] = layers.Flatten(1)
        children.update(_children(module, ["fc"], path))
        return Sequential(children)
    if origin == "torchvision.models.resnet" and kind in ("BasicBlock", "Bottleneck"):
        names = ["conv1", "bn1", "conv2", "bn2"] + (
            ["conv3", "bn3"] if kind == "Bottleneck" else []
        )
        convs = _children(module, names, path)
        branch = OrderedDict()
        for index, name in enumerate(names):
            branch[name] = convs[name]
            if name.startswith("bn") and index < len(names) - 1:
                branch[f"relu{index // 2 + 1}"] = layers.ReLU()
        shortcut = _children(module, ["downsample"], path)
        return Residual(branch, shortcut or None, {"relu": layers.ReLU()})
    if origin == "torchvision.models.vision_transformer" and kind == "VisionTransformer":
        return _vision_transformer(module, where)
    raise ConversionError(
        f"cannot convert {where} of type {origin}.{kind}: npxai supports torch.nn Sequential trees "
        "of its layer types and torchvision's VGG, ResNet and VisionTransformer"
    )


def _vision_transformer(module: Any, where: str) -> Module:
    """torchvision's ``VisionTransformer`` as :func:`npxai.models.vit` with its configuration
    and weights (a patch-embedding convolution and torchvision's LayerNorm eps 1e-6 only)."""
    from .models import vit

    conv = module.conv_proj
    if type(conv).__name__ != "Conv2d":
        raise ConversionError(f"cannot convert {where}: a ViT with a convolutional stem")
    blocks = list(module.encoder.layers)
    norms = [module.encoder.ln] + [n for b in blocks for n in (b.ln_1, b.ln_2)]
    if any(n.eps != 1e-6 for n in norms):
        raise ConversionError(f"cannot convert {where}: a ViT whose LayerNorm eps is not 1e-6")
    heads = module.heads
    model = vit(
        module.image_size, module.patch_size, len(blocks), blocks[0].num_heads,
        module.hidden_dim, module.mlp_dim, heads.head.out_features, module.representation_size,
        conv.in_channels,
    )  # fmt: skip
    state = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
    model.load_state_dict(state, allow_nonfinite=True)  # from_torch checks, by full key
    return model


def _example_shape(module: Any) -> tuple[int, ...] | None:
    """The per-sample input shape an export can use: ``(C, 224, 224)`` for a first ``Conv2d`` of
    ``C`` input channels, ``(F,)`` for a first ``Linear`` of ``F`` features."""
    import torch

    for layer in module.modules():
        if isinstance(layer, torch.nn.Conv2d):
            return (layer.in_channels, 224, 224)
        if isinstance(layer, torch.nn.Linear):
            return (layer.in_features,)
    return None


def _through_onnx(module: Any, input_shape: tuple[int, ...] | None, reason: str) -> Module:
    """``module`` exported to ONNX in memory (torch's TorchScript exporter, evaluation mode, a
    free batch axis) and imported with :func:`npxai.from_onnx`. The example requires grad (with
    autograd on), so that torch's ``MultiheadAttention`` and ``TransformerEncoderLayer`` skip
    their fused fast paths, which the exporter refuses, and write attention out as layers."""
    import io
    import warnings

    import torch

    from .errors import LoadError
    from .onnx import from_onnx

    shape = _example_shape(module) if input_shape is None else tuple(input_shape)
    if shape is None:
        raise ConversionError(
            f"{reason}; to export it to ONNX instead, pass input_shape= (the per-sample shape)"
        )
    dtype = next((p.dtype for p in module.parameters()), torch.float32)
    example = torch.zeros((1, *shape), dtype=dtype, requires_grad=True)
    buffer = io.BytesIO()
    training = module.training
    module.eval()
    try:
        with warnings.catch_warnings(), torch.enable_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (example,), buffer, dynamo=False, input_names=["input"],
                              dynamic_axes={"input": {0: "batch"}})  # fmt: skip
    except Exception as error:
        raise ConversionError(
            f"{reason}; exporting it to ONNX failed too: {type(error).__name__}: {error}"
        ) from None
    finally:
        module.train(training)
    try:
        return from_onnx(buffer.getvalue(), input_shape=shape)
    except LoadError as error:
        raise ConversionError(
            f"{reason}; its ONNX export does not import either: {error}"
        ) from None


def from_torch(
    module: Any, allow_nonfinite: bool = False, input_shape: tuple[int, ...] | None = None
) -> Module:
    """Convert a ``torch.nn.Module`` into an npxai model with the same weights.

    Walked module by module (same structure and keys): ``torch.nn.Sequential`` trees of the
    layers in :mod:`npxai.layers`, torchvision's ``VGG`` and ``ResNet`` (with ``BasicBlock``
    or ``Bottleneck``) and ``VisionTransformer`` (as :func:`npxai.models.vit`). Any other module is exported to ONNX in memory (torch's exporter, in
    evaluation mode: batch norms after convolutions are folded into them) and imported with
    :func:`npxai.from_onnx` into an :class:`npxai.Graph`, whose keys are torch's module paths
    where the exporter kept them; ``input_shape`` is the per-sample shape of the export's example
    input (by default ``(C, 224, 224)`` for a first ``Conv2d`` of ``C`` channels, ``(F,)`` for a
    first ``Linear``). This needs the ``onnx`` package (``pip install 'npxai[onnx]'``).

    Weights keep their dtype. A :class:`~npxai.errors.ConversionError` names the first
    unsupported submodule and, where the export was tried, why it failed; NaN or Inf parameters
    and buffers raise :class:`~npxai.errors.StateDictError` naming their keys, as
    ``load_state_dict`` does, unless ``allow_nonfinite=True``.
    """
    import torch

    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"from_torch expects a torch.nn.Module, got {type(module).__name__}")
    try:
        model = _convert(module, "")
    except ConversionError as error:
        model = _through_onnx(module, input_shape, str(error))
        if not allow_nonfinite:
            model.load_state_dict(model.state_dict())  # refuses NaN and Inf by their keys
        return model
    expected = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
    missing = set(expected) - set(model.state_dict())
    if missing:
        raise ConversionError(f"conversion lost the keys {sorted(missing)[:5]}")
    for key, value in model.state_dict().items():
        if not np.array_equal(value, expected[key], equal_nan=value.dtype.kind in "fc"):
            raise ConversionError(f"conversion changed the weights under {key!r}")
    if not allow_nonfinite:
        model.load_state_dict(expected)  # the same values; refuses NaN and Inf by their full keys
    return model
