"""DeepLift on VGG16 at 1x3x224x224, float32: npxai (numba backend) beside Captum 0.9.0.

    python benchmarks/bench_deeplift.py [--rounds 3] [--repeats 3] [--quick]

The model is torchvision's ``vgg16`` with its random initialisation after ``torch.manual_seed(0)``
(no pretrained weights are fetched), in evaluation mode; the input is uniform in [0, 1) (NumPy's
``default_rng(1)``), the baseline zero (both libraries' default), explaining class 0. The weights
and the input are written to a temporary folder once; npxai reads the weights with its own loader
(``npxai.load``) into ``npxai.models.vgg16``. Row: ``npxai.analyzers.deeplift.DeepLift(model,
backend="numba")(x, 0)`` beside Captum's ``DeepLift(net).attribute(x, target=0)``; both run the
forward pass on the stacked batch ``[x; x0]`` (two rows) and one backward walk. The issue's
target: npxai at most 1.2x Captum's time.

The two do not compute the same numbers on VGG16: every max pool there follows a ReLU directly,
where Captum's hooks replace the max pool's DeepLIFT rule by its gradient (see
``npxai.analyzers.deeplift``); the work per layer is the same.

Each library runs in a process of its own, which loads the model, warms up with one call and
times the median of ``--repeats`` calls; the processes alternate (npxai, Captum, npxai, ...) for
``--rounds`` rounds, as ../shared/notes/benchmarking.md advises, and the table shows the medians
over rounds, their range, and each process's peak resident memory (``ru_maxrss``, the model
included). torch gets as many threads as Numba (timing.match_threads). ``--quick``: 32x32
inputs, one round, one timed call, a check of the script.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
LIBRARIES = ("npxai", "captum")


def prepare(folder: Path, side: int) -> None:
    """The weights (a torch file) and the input (.npy), once."""
    import torch
    import torchvision

    torch.manual_seed(0)
    torch.save(torchvision.models.vgg16().eval().state_dict(), folder / "vgg16.pt")
    np.save(folder / "x.npy", np.random.default_rng(1).random((1, 3, side, side), np.float32))


def worker(folder: Path, library: str, repeats: int) -> dict:
    """Load, warm up, time ``repeats`` calls; the median and this process's peak memory."""
    import torch
    from timing import match_threads, median_time

    match_threads()
    x = np.load(folder / "x.npy")
    if library == "npxai":
        import npxai
        from npxai.analyzers.deeplift import DeepLift

        model = npxai.models.vgg16()
        model.load_state_dict(npxai.load(folder / "vgg16.pt"))
        analyzer = DeepLift(model, backend="numba")
        call = lambda: analyzer(x, 0).attribution  # noqa: E731
    else:
        import warnings

        import torchvision
        from captum.attr import DeepLift

        warnings.simplefilter("ignore")  # Captum's note that it sets hooks, at every call
        net = torchvision.models.vgg16().eval()
        net.load_state_dict(torch.load(folder / "vgg16.pt"))
        analyzer, xt = DeepLift(net), torch.tensor(x)
        call = lambda: analyzer.attribute(xt, target=0)  # noqa: E731
    seconds = median_time(call, repeats)  # one warm-up call, then the median of repeats
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "peak_mb": peak}


def run(folder: Path, library: str, repeats: int) -> dict:
    command = [sys.executable, __file__, "--worker", library, str(folder), "--repeats",
               str(repeats)]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=HERE)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating process rounds")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per process")
    parser.add_argument("--quick", action="store_true", help="32x32 inputs, 1 round, 1 call")
    parser.add_argument("--worker", nargs=2, metavar=("LIBRARY", "FOLDER"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args()
    if args.worker:
        library, folder = args.worker
        print(json.dumps(worker(Path(folder), library, args.repeats)))
        return
    sys.path.insert(0, str(HERE))
    from timing import match_threads

    print(match_threads() + "\n")
    side, rounds, repeats = (32, 1, 1) if args.quick else (224, args.rounds, args.repeats)
    results: dict = {library: [] for library in LIBRARIES}
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        prepare(folder, side)
        for _ in range(rounds):
            for library in LIBRARIES:
                results[library].append(run(folder, library, repeats))
    print(f"VGG16, 1x3x{side}x{side}, float32, zero baseline, target 0, {rounds} rounds x "
          f"{repeats} calls; medians over rounds (range)\n")  # fmt: skip
    print(
        "| row | npxai (s) | Captum (s) | npxai / Captum | target | peak RSS npxai / Captum (MB) |"
    )
    print("|---|---|---|---|---|---|")
    times = {library: [r["seconds"] for r in results[library]] for library in LIBRARIES}
    a, b = (statistics.median(times[library]) for library in LIBRARIES)
    cells = [f"{statistics.median(t):.3f} ({min(t):.3f}-{max(t):.3f})" for t in times.values()]
    verdict = f"<= 1.2: {'met' if a / b <= 1.2 else 'missed'}"
    peaks = " / ".join(f"{max(r['peak_mb'] for r in results[lib]):.0f}" for lib in LIBRARIES)
    print(f"| DeepLift | {cells[0]} | {cells[1]} | {a / b:.2f} | {verdict} | {peaks} |")


if __name__ == "__main__":
    main()
