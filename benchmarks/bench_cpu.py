"""npxai (numba backend) beside PyTorch on the CPU: forward and forward + input gradient.

    python benchmarks/bench_cpu.py [--repeats 5] [--quick]

One process, one run, the same weights (torchvision's models converted with npxai.from_torch) and
the same inputs; torch gets as many threads as Numba. Repeats alternate between the two libraries, each
after a pause and an untimed call (see paired_medians), so that both see the same machine noise
and neither sees the other's spinning threads; each time printed is a median. The floor of a row is its
multiply-adds x 2 over the GEMM rate measured in this run (the faster of NumPy's and torch's
2048^3 float32 matmul); the gradient's multiply-adds are the forward pass's plus the input
gradient's (the same count for every convolution and linear layer).

The last column compares the float32 results (max abs difference over max abs value); a float32
gradient through VGG16's 13 ReLU and 5 max-pool layers differs by percents between any two
correct implementations (ReLU and max-pool decisions flip on rounding), while in float64 npxai and
torch agree to 1e-14 (tests/test_models.py checks 1e-10).
"""

from __future__ import annotations

import argparse
from collections import OrderedDict

import numpy as np
import torch
import torchvision
from timing import match_threads, median_time, paired_medians, torch_gradient

import npxai


def multiply_adds(model: npxai.Module, x: np.ndarray) -> int:
    """Multiply-adds of the convolutions and linear layers of one forward pass."""
    total = 0
    for record in model.trace(x, backend="numpy").values():
        layer, y = record.layer, record.output
        if isinstance(layer, npxai.layers.Conv2d):
            kh, kw = layer.kernel_size
            total += y.size * (layer.in_channels // layer.groups) * kh * kw
        elif isinstance(layer, npxai.layers.Linear):
            total += y.size * layer.in_features
    return total


def gemm_rate(repeats: int) -> float:
    """FLOP/s of the faster of NumPy's and torch's float32 2048^3 matmul."""
    a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
    at = torch.tensor(a)
    best = min(median_time(lambda: a @ a, repeats), median_time(lambda: at @ at, repeats))
    return 2 * 2048**3 / best


def small_cnn() -> torch.nn.Module:
    """The torch twin of npxai.models.lenet(num_classes=10, in_channels=1, input_size=28)."""
    return torch.nn.Sequential(OrderedDict(
        conv1=torch.nn.Conv2d(1, 6, 3, padding=1), relu1=torch.nn.ReLU(), pool1=torch.nn.MaxPool2d(2),
        conv2=torch.nn.Conv2d(6, 16, 3, padding=1), relu2=torch.nn.ReLU(), pool2=torch.nn.MaxPool2d(2),
        flatten=torch.nn.Flatten(), fc1=torch.nn.Linear(16 * 7 * 7, 120), relu3=torch.nn.ReLU(),
        fc2=torch.nn.Linear(120, 84), relu4=torch.nn.ReLU(), fc3=torch.nn.Linear(84, 10),
    ))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="skip VGG16 at batch 8")
    args = parser.parse_args()
    header = match_threads()
    torch.manual_seed(0)
    rate = gemm_rate(args.repeats)
    threads, versions = header.split("\n")
    print(f"{threads}; GEMM rate: {rate / 1e9:.0f} GFLOP/s\n{versions}\n")
    cases = [
        ("VGG16", torchvision.models.vgg16, (1, 3, 224, 224)),
        ("VGG16", torchvision.models.vgg16, (8, 3, 224, 224)),
        ("ResNet18", torchvision.models.resnet18, (1, 3, 224, 224)),
        ("small CNN", small_cnn, (1, 1, 28, 28)),
        ("small CNN", small_cnn, (256, 1, 28, 28)),
    ]
    if args.quick:
        cases = [c for c in cases if c[2][0] != 8]
    print(
        "| model | input | pass | npxai (s) | torch (s) | npxai / torch | npxai / floor | torch / floor | max rel. diff |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, build, shape in cases:
        run_case(name, build, shape, rate, args.repeats)


def run_case(name: str, build, shape: tuple, rate: float, repeats: int) -> None:
    """Print the forward and gradient rows of one model and input shape."""
    theirs = build().eval()
    for p in theirs.parameters():
        p.requires_grad_(False)
    ours = npxai.from_torch(theirs)
    x = np.random.default_rng(1).random(shape, dtype=np.float32)
    xt = torch.tensor(x)
    macs = multiply_adds(ours, x[:1]) * shape[0]
    with torch.no_grad():
        expected = theirs(xt).numpy()
    target = expected.argmax(1)  # both explain torch's arg-max (near-ties could differ)
    expected_grad = torch_gradient(theirs, xt, target).numpy()
    diffs = {
        "forward": np.abs(ours(x) - expected).max() / np.abs(expected).max(),
        "gradient": np.abs(npxai.gradient(ours, x, target) - expected_grad).max()
        / np.abs(expected_grad).max(),
    }
    runs = {
        "forward": (lambda: ours(x), lambda: theirs(xt), 2 * macs),
        "gradient": (
            lambda: npxai.gradient(ours, x, target),
            lambda: torch_gradient(theirs, xt, target),
            4 * macs,
        ),
    }
    for kind, (f_ours, f_theirs, flops) in runs.items():
        with torch.no_grad() if kind == "forward" else torch.enable_grad():
            t_ours, t_theirs = paired_medians(f_ours, f_theirs, repeats)
        floor = flops / rate
        print(
            f"| {name} | {'x'.join(map(str, shape))} | {kind} | {t_ours:.4f} | {t_theirs:.4f} | "
            f"{t_ours / t_theirs:.2f} | {t_ours / floor:.2f} | {t_theirs / floor:.2f} | {diffs[kind]:.1e} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
