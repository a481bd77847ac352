"""Where VGG16's convolution time goes (numba backend, float32): per layer, the forward convolution
by im2col + GEMM and by Winograd's F(2x2, 3x3), each timed alone, with the Winograd path's parts
(weight transform, input transform, the 16 GEMMs, output transform), and which path
``kernels/cpu/conv.py`` takes. With ``--depthwise``: EfficientNet-Lite0's depthwise
convolutions (random weights) by both depthwise kernels, per channel plane and channels-last,
beside torch's ``conv2d`` (as many threads as Numba), and the path taken
(``DEPTHWISE_CHANNELS_LAST_MAX``).

    python benchmarks/profile_conv.py [--batch 1] [--depthwise]
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
    o = layer.out_channels
    th, tw = (h + 1) // 2, (w + 1) // 2
    u = np.empty((16, o, c), np.float32)
    v = np.empty((16, c, n * th * tw), np.float32)
    m = np.empty((16, o, n * th * tw), np.float32)
    y = np.empty((n, o, h, w), np.float32)
    top, _, left, _ = padding
    return [
        im2col,
        median_time(lambda: winograd.conv3x3(x, weight, bias, padding), REPEATS),
        median_time(lambda: winograd._transform_weight(weight, u, False), REPEATS),
        median_time(lambda: winograd._transform_input(x, v, top, left, th, tw, 0), REPEATS),
        median_time(lambda: np.matmul(u, v, out=m), REPEATS),
        median_time(lambda: winograd._transform_output(m, bias, y, th, tw, 0), REPEATS),
    ]


def time_depthwise(record: npxai.Record) -> list[float]:
    """Seconds: the per-plane kernel, the channels-last one, torch's ``conv2d``."""
    import torch

    layer, x = record.layer, record.input
    padding = layer.explicit_padding()
    args = (layer.weight, layer.bias, layer.stride, padding, layer.dilation, layer.groups)
    times = []
    for limit in (-1, 2**62):  # the plane kernel, the channels-last one
        with mock.patch.object(kernels, "DEPTHWISE_CHANNELS_LAST_MAX", limit):
            times.append(median_time(lambda: kernels.conv2d(x, *args), REPEATS))
    top, bottom, left, right = padding
    xt = torch.nn.functional.pad(torch.tensor(x), (left, right, top, bottom))
    wt = torch.tensor(layer.weight)
    bt = None if layer.bias is None else torch.tensor(layer.bias)
    stride, dilation, groups = layer.stride, layer.dilation, layer.groups
    conv = lambda: torch.nn.functional.conv2d(xt, wt, bt, stride, 0, dilation, groups)  # noqa: E731
    return [*times, median_time(conv, REPEATS)]


def depthwise(batch: int) -> None:
    """EfficientNet-Lite0's depthwise layers: both kernels and torch's, ms."""
    from timing import match_threads

    print(match_threads())
    npxai.manual_seed(0)
    model = npxai.models.efficientnet_lite0()
    x = np.random.default_rng(0).random((batch, 3, 224, 224), dtype=np.float32)
    print(f"EfficientNet-Lite0, batch {batch}, float32, depthwise convolutions (ms, medians of "
          f"{REPEATS})\n| layer | channels | kernel, stride | size | per plane | channels-last "
          "| torch | taken |\n|---|---|---|---|---|---|---|---|")  # fmt: skip
    totals = np.zeros(3)
    for key, record in model.trace(x).items():
        layer = record.layer
        if not isinstance(layer, npxai.layers.Conv2d) or layer.groups == 1:
            continue
        times = time_depthwise(record)
        oh, ow = record.output.shape[2:]
        taken = "channels-last" if oh * ow <= kernels.DEPTHWISE_CHANNELS_LAST_MAX else "per plane"
        totals += times
        cells = " | ".join(f"{t * 1e3:.1f}" for t in times)
        print(f"| {key} | {layer.in_channels} | {layer.kernel_size[0]}, {layer.stride[0]} | "
              f"{oh}x{ow} | {cells} | {taken} |")  # fmt: skip
    print(f"\nall: per plane {totals[0] * 1e3:.0f} ms, channels-last {totals[1] * 1e3:.0f} ms, "
          f"torch {totals[2] * 1e3:.0f} ms")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--depthwise", action="store_true", help="EfficientNet-Lite0's depthwise")
    args = parser.parse_args()
    if args.depthwise:
        depthwise(args.batch)
        return
    npxai.manual_seed(0)
    model = npxai.models.vgg16()
    x = np.random.default_rng(0).random((args.batch, 3, 224, 224), dtype=np.float32)
    print(f"VGG16, batch {args.batch}, float32, forward convolutions (ms, medians of {REPEATS})")
    print(
        "| layer | channels | size | im2col + GEMM | Winograd | its weight transform | input "
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
        cells = " | ".join(f"{t * 1e3:.1f}" for t in times)
        print(f"| {key} | {c}->{layer.out_channels} | {h}x{w} | {cells} | {taken} |")
    print(
        f"\nall layers: im2col + GEMM {chosen_total[0] * 1e3:.0f} ms, "
        f"as taken {chosen_total[1] * 1e3:.0f} ms"
    )


if __name__ == "__main__":
    main()
