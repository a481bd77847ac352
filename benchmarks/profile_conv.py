"""Where a CNN's convolution time goes (numba backend, float32): per layer of VGG16 (or, with
``--model resnet18`` / ``resnet50``, npxai's ResNet), the forward convolution by im2col + GEMM
and, for 3x3 stride-1 layers, by Winograd's F(2x2, 3x3), each timed alone, with the Winograd
path's parts (weight transform, input transform, the 16 GEMMs, output transform), and which path
``kernels/cpu/conv.py`` takes. With ``--depthwise``: the depthwise convolutions of
EfficientNet-Lite0 (npxai's, random weights) or, with ``--model mobilenet_v2``, of torchvision's
MobileNetV2 (random weights after ``torch.manual_seed(0)``), forward and input gradient, by both
depthwise kernels (the phase-split plane kernel and channels-last) beside torch's ``conv2d`` and
``convolution_backward`` (as many threads as Numba), and the path taken
(``DEPTHWISE_CHANNELS_LAST_MAX``).

    python benchmarks/profile_conv.py [--batch 1] [--model resnet18] [--depthwise [--model mobilenet_v2]]
"""

import argparse
from unittest import mock

import numpy as np
from npxai.kernels.cpu import conv as kernels
from npxai.kernels.cpu import winograd
from timing import median_time

import npxai

REPEATS = 7


def time_layer(record: npxai.Record) -> list[float]:
    """Seconds: im2col + GEMM, Winograd, and Winograd's weight, input, GEMM and output parts."""
    layer, x = record.layer, record.input
    n, c, h, w = x.shape
    weight, bias = layer.weight, layer.bias
    padding = layer.explicit_padding()
    args = (weight, bias, layer.stride, padding, layer.dilation, 1)
    with mock.patch.object(kernels, "WINOGRAD_MIN_TILES", 2**62):
        im2col = median_time(lambda: kernels.conv2d(x, *args), REPEATS)
    if layer.kernel_size != (3, 3) or layer.stride != (1, 1):
        return [im2col] + [float("nan")] * 5
    o = layer.out_channels
    th, tw = (h + 1) // 2, (w + 1) // 2
    u = np.empty((16, o, c), np.float32)
    v = np.empty((16, c, n * th * tw), np.float32)
    m = np.empty((16, o, n * th * tw), np.float32)
    y = np.empty((n, o, h, w), np.float32)
    top, _, left, _ = padding
    b = np.zeros(o, np.float32) if bias is None else bias
    return [
        im2col,
        median_time(lambda: winograd.conv3x3(x, weight, bias, padding), REPEATS),
        median_time(lambda: winograd._transform_weight(weight, u, False), REPEATS),
        median_time(lambda: winograd._transform_input(x, v, top, left, th, tw, 0), REPEATS),
        median_time(lambda: np.matmul(u, v, out=m), REPEATS),
        median_time(lambda: winograd._transform_output(m, b, y, th, tw, 0), REPEATS),
    ]


def time_depthwise(record: npxai.Record) -> list[float]:
    """Seconds: forward by the plane kernel, channels-last, torch; the input gradient the same."""
    import torch

    layer, x = record.layer, record.input
    padding = layer.explicit_padding()
    args = (layer.stride, padding, layer.dilation, layer.groups)
    g = np.random.default_rng(0).standard_normal(record.output.shape).astype(x.dtype)
    top, bottom, left, right = padding
    xt = torch.nn.functional.pad(torch.tensor(x), (left, right, top, bottom))
    wt, gt = torch.tensor(layer.weight), torch.tensor(g)
    bt = None if layer.bias is None else torch.tensor(layer.bias)
    stride, dilation, groups = layer.stride, layer.dilation, layer.groups
    size = x.shape[2:]
    forward, backward = [], []
    for limit in (-1, 2**62):  # the plane kernel, the channels-last one
        with mock.patch.object(kernels, "DEPTHWISE_CHANNELS_LAST_MAX", limit):
            forward.append(median_time(lambda: kernels.conv2d(x, layer.weight, layer.bias, *args),
                                       REPEATS))  # fmt: skip
            backward.append(median_time(lambda: kernels.conv2d_vjp(g, layer.weight, size, *args),
                                        REPEATS))  # fmt: skip
    forward.append(median_time(
        lambda: torch.nn.functional.conv2d(xt, wt, bt, stride, 0, dilation, groups), REPEATS
    ))  # fmt: skip
    backward.append(median_time(
        lambda: torch.ops.aten.convolution_backward(
            gt, xt, wt, None, stride, [0, 0], dilation, False, [0, 0], groups, [True, False, False]
        ), REPEATS,
    ))  # fmt: skip
    return forward + backward


def depthwise_model(name: str) -> npxai.Module:
    """EfficientNet-Lite0 (npxai's) or torchvision's MobileNetV2 through ONNX, random weights."""
    if name == "efficientnet_lite0":
        npxai.manual_seed(0)
        return npxai.models.efficientnet_lite0()
    import io

    import torch
    import torchvision

    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.onnx.export(torchvision.models.mobilenet_v2().eval(), (torch.zeros(1, 3, 224, 224),),
                      buffer, dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "n"}})  # fmt: skip
    return npxai.from_onnx(buffer.getvalue())


def depthwise(name: str, batch: int) -> None:
    """The model's depthwise layers: both kernels and torch's, forward and input gradient, ms."""
    from timing import match_threads

    print(match_threads())
    model = depthwise_model(name)
    x = np.random.default_rng(0).random((batch, 3, 224, 224), dtype=np.float32)
    print(f"{name}, batch {batch}, float32, depthwise convolutions (ms, medians of {REPEATS})\n"
          "| layer | channels | kernel, stride | output | forward: plane | channels-last | torch "
          "| input gradient: plane | channels-last | torch | taken |\n" + "|---" * 11 + "|")  # fmt: skip
    totals = np.zeros(6)
    for key, record in model.trace(x).items():
        layer = record.layer
        if not isinstance(layer, npxai.layers.Conv2d) or layer.groups == 1:
            continue
        times = time_depthwise(record)
        oh, ow = record.output.shape[2:]
        small = oh * ow <= kernels.DEPTHWISE_CHANNELS_LAST_MAX
        small_input = (
            layer.stride == (1, 1)
            and record.input[0, 0].size <= kernels.DEPTHWISE_CHANNELS_LAST_MAX
        )
        taken = f"{'channels-last' if small else 'plane'}, {'channels-last' if small_input else 'plane'}"
        totals += times
        cells = " | ".join(f"{t * 1e3:.2f}" for t in times)
        print(f"| {key} | {layer.in_channels} | {layer.kernel_size[0]}, {layer.stride[0]} | "
              f"{oh}x{ow} | {cells} | {taken} |")  # fmt: skip
    print(f"\nall (ms): forward plane {totals[0] * 1e3:.1f}, channels-last {totals[1] * 1e3:.1f}, "
          f"torch {totals[2] * 1e3:.1f}; input gradient plane {totals[3] * 1e3:.1f}, "
          f"channels-last {totals[4] * 1e3:.1f}, torch {totals[5] * 1e3:.1f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--depthwise", action="store_true", help="a model's depthwise layers")
    parser.add_argument("--model", help="depthwise: efficientnet_lite0 (default), mobilenet_v2; "
                        "else vgg16 (default), resnet18, resnet50")  # fmt: skip
    args = parser.parse_args()
    if args.depthwise:
        depthwise(args.model or "efficientnet_lite0", args.batch)
        return
    name = args.model or "vgg16"
    if name not in ("vgg16", "resnet18", "resnet50"):
        parser.error(f"--model {name}: expected vgg16, resnet18 or resnet50 without --depthwise")
    npxai.manual_seed(0)
    model = getattr(npxai.models, name)()
    x = np.random.default_rng(0).random((args.batch, 3, 224, 224), dtype=np.float32)
    print(f"{name}, batch {args.batch}, float32, forward convolutions (ms, medians of {REPEATS})")
    print(
        "| layer | channels, kernel/stride | input | im2col + GEMM | Winograd | its weight transform | input "
        "transform | 16 GEMMs | output transform | taken |"
    )
    print("|---" * 10 + "|")
    chosen_total = np.zeros(2)
    for key, record in model.trace(x).items():
        layer = record.layer
        if not isinstance(layer, npxai.layers.Conv2d):
            continue
        times = time_layer(record)
        n, c, h, w = record.input.shape
        out = (n, *record.output.shape[2:])
        shape = (layer.kernel_size, layer.stride, layer.dilation, (c, layer.out_channels), out)
        taken = "Winograd" if kernels._winograd_applies(*shape) else "im2col"
        chosen_total += [times[0], times[1 if taken == "Winograd" else 0]]
        cells = " | ".join("-" if np.isnan(t) else f"{t * 1e3:.1f}" for t in times)
        kernel = f"{layer.kernel_size[0]}x{layer.kernel_size[1]}/{layer.stride[0]}"
        print(f"| {key} | {c}->{layer.out_channels} {kernel} | {h}x{w} | {cells} | {taken} |")
    print(
        f"\nall layers: im2col + GEMM {chosen_total[0] * 1e3:.0f} ms, "
        f"as taken {chosen_total[1] * 1e3:.0f} ms"
    )


if __name__ == "__main__":
    main()
