"""MPRT on VGG16 with the gradient: npxai beside Quantus 0.6.0, the same model, inputs, settings
and randomised parameters, in one run.

    python benchmarks/bench_mprt.py [--n 2] [--side 64] [--repeats 1] [--profile]

The model is torchvision's ``vgg16`` with its random initialisation after ``torch.manual_seed(0)``
(no pretrained weights are fetched), float32, evaluation mode; npxai explains
``npxai.from_torch`` of it on the numba backend. The inputs are uniform in [0, 1) (NumPy's
``default_rng(1)``), ``--n`` images of ``--side`` pixels, explaining each one's arg-max class.
Both run the cascading (top-down) MPRT over VGG16's 16 Linear and Conv2d layers with Spearman's
rank correlation (both defaults), ``abs`` and ``normalise`` on: npxai's ``mprt(net, x,
npxai.Gradient, seed=0)`` beside ``quantus.MPRT(disable_warnings=True)`` with the gradient by
torch autograd as its ``explain_func``. Quantus's ``reset_parameters`` calls write npxai's draws
into the torch layers (as tests/test_metrics_randomisation.py does), so both compare the same
models; the values then differ only by the float32 gradients' rounding (near-ties may swap
ranks). torch gets as many threads as Numba (timing.match_threads). The times are medians of
``--repeats`` paired calls after a warm-up (timing.paired_long_medians). ``--profile``: the
20 costliest functions of one Quantus call (cProfile, cumulative time).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats

import numpy as np
import quantus
import torch
import torchvision
from timing import match_threads, paired_long_medians

import npxai
from npxai.metrics import randomisation


def gradient(model, inputs, targets, **kwargs):
    """Quantus's explain_func: the gradient of the target logit, by torch autograd."""
    x = torch.tensor(inputs, requires_grad=True)
    out = model(x)
    out[torch.arange(len(x)), torch.as_tensor(targets)].sum().backward()
    return x.grad.numpy()


def replay(draws: list[dict[str, np.ndarray]]) -> None:
    """torch's Linear and Conv2d ``reset_parameters`` write npxai's recorded draws, in order."""
    queue = iter(draws)

    def reset(module):
        with torch.no_grad():
            for name, value in next(queue).items():
                getattr(module, name).copy_(torch.from_numpy(value))

    torch.nn.Conv2d.reset_parameters = reset
    torch.nn.Linear.reset_parameters = reset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2)
    parser.add_argument("--side", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    print(match_threads())
    torch.manual_seed(0)
    net = torchvision.models.vgg16().eval()
    model = npxai.from_torch(net)
    x = np.random.default_rng(1).random((args.n, 3, args.side, args.side), np.float32)
    target = net(torch.from_numpy(x)).argmax(1).numpy()

    draws = []
    reinitialised = randomisation.reinitialised

    def recording(layer, rng):
        values = reinitialised(layer, rng)
        draws.append(values)
        return values

    randomisation.reinitialised = recording
    ours = quantus_scores = None  # set by run_ours and run_theirs

    def run_ours():
        nonlocal ours
        draws.clear()
        ours = randomisation.mprt(model, x, npxai.Gradient, target, seed=0, backend="numba")

    def run_theirs():
        nonlocal quantus_scores
        replay(list(draws))
        metric = quantus.MPRT(disable_warnings=True)
        quantus_scores = metric(net, x, target, explain_func=gradient, softmax=False, batch_size=64)

    run_ours()  # compiles the kernels; the draws for the first Quantus call
    run_theirs()
    seconds_ours, seconds_theirs = paired_long_medians(run_ours, run_theirs, args.repeats)
    theirs = np.array([quantus_scores[key] for key in ours.layers]).T
    print(f"MPRT, VGG16, {args.n}x3x{args.side}x{args.side}, gradient, spearman, 16 layers")
    print(f"npxai   {seconds_ours:8.3f} s")
    print(
        f"quantus {seconds_theirs:8.3f} s   ratio quantus / npxai {seconds_theirs / seconds_ours:.2f}"
    )
    print(f"max |npxai - quantus| of the scores: {np.abs(ours.scores - theirs).max():.2e}")
    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(run_theirs)
        pstats.Stats(profile).sort_stats("cumulative").print_stats(20)


if __name__ == "__main__":
    main()
