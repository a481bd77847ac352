"""A mutation fuzzer for ``npxai.load``: every outcome must be a named refusal or the peer's load.

Seeds are small but complete files of each format ``npxai.load`` reads, written by their own
libraries: torch zip and torch legacy (``torch.save``: several dtypes, bfloat16, a view with an
offset and strides, a storage shared by two tensors, an empty tensor, a nested checkpoint),
safetensors (``safetensors.numpy.save_file``) and ``.npz`` (``np.savez``). Each input is a seed
with one mutation:

- ``flip``: 1 to 8 bits flipped anywhere;
- ``truncate``: the file cut at a random length;
- ``insert``: 1 to 64 random bytes inserted;
- ``overwrite``: a run of 1 to 16 bytes set to a value from a list of interesting ones (0, 0xff,
  0x7f, 0x80) or random;
- ``member`` (zip-based formats): one member of the archive flipped, cut, grown or emptied and the
  archive written anew, so that its CRCs and sizes are right and only the content is hostile.

Each input is loaded by ``npxai.load`` and by the peer's own reader (``torch.load(...,
weights_only=True)``, ``safetensors.numpy.load_file``, ``np.load(..., allow_pickle=False)``).
Outcomes:

- ``refused``: npxai raised ``LoadError`` or ``UnsafePickleError`` naming the file: fine, whatever
  the peer did;
- ``same``: both loaded the same names, dtypes (bfloat16 read as float32, as npxai widens it) and
  values (NaN equal to NaN, bit for bit otherwise): fine;
- ``intact``: the peer refused the input or gave other values, and npxai loaded exactly the
  unmutated seed's arrays: the mutation hit bytes that no array depends on, which the peer
  checks and npxai does not (the entry counts of a zip64 end record: torch's miniz reader checks
  them, Python's zipfile ignores them), or which the peer misreads (torch 2.14.1 returned
  uninitialised memory for a shared int64 storage after four bytes of a central-directory
  entry of another member were overwritten, seed 1, input 39892); fine, and counted apart;
- ``unnamed``: npxai's error does not name the file: a failure;
- ``escaped``: another exception type left ``npxai.load``: a failure;
- ``differs``: npxai loaded something else than the peer (or the peer refused what npxai
  loaded): a failure.

``python tests/fuzz_load.py --inputs 100000 --seed 1`` is the long run by hand (the README gives
its last result); ``tests/test_fuzz_load.py`` runs a short seeded one. The process limits its own
address space (``--memory-gib`` above what it uses after the imports), so a load that explodes
fails as a ``MemoryError`` instead of swamping the machine.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import resource
import sys
import tempfile
import time
import traceback
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

FORMATS = ("torch-zip", "torch-legacy", "safetensors", "npz")
FAILURES = ("unnamed", "escaped", "differs")


def make_seeds(folder: Path) -> dict[str, bytes]:
    """One small file of each format, written by its own library, by format name."""
    import torch
    from safetensors.numpy import save_file

    generator = torch.Generator().manual_seed(0)
    base = torch.randn(6, 5, generator=generator, dtype=torch.float64)
    shared = torch.arange(12, dtype=torch.int64)
    state = {
        "conv.weight": torch.randn(2, 3, 3, 3, generator=generator),
        "conv.bias": torch.randn(2, generator=generator).half(),
        "bn.running_var": torch.rand(4, generator=generator).to(torch.bfloat16),
        "bn.num_batches_tracked": torch.tensor(7),
        "view": base[1:5:2, ::2],  # an offset and strides into a larger storage
        "shared.a": shared[:6],
        "shared.b": shared[6:],  # the same storage as shared.a
        "mask": torch.tensor([True, False, True]),
        "empty": torch.zeros(0, 3),
        "int8": torch.tensor([-3, 5, 127], dtype=torch.int8),
    }
    seeds = {}
    for name, zip_format in (("torch-zip", True), ("torch-legacy", False)):
        buffer = io.BytesIO()
        torch.save(state, buffer, _use_new_zipfile_serialization=zip_format)
        seeds[name] = buffer.getvalue()
    arrays = {
        "w": np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32),
        "b": np.arange(5, dtype=np.int64),
        "h": np.ones(2, np.float16),
    }
    save_file(arrays, str(folder / "seed.safetensors"))
    seeds["safetensors"] = (folder / "seed.safetensors").read_bytes()
    np.savez(folder / "seed.npz", **arrays)
    seeds["npz"] = (folder / "seed.npz").read_bytes()
    return seeds


# -- mutations ---------------------------------------------------------------------------------

INTERESTING = (0x00, 0xFF, 0x7F, 0x80, 0x01)


def flip(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(out))
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data))]


def insert(data: bytes, rng: random.Random) -> bytes:
    i = rng.randrange(len(data) + 1)
    return data[:i] + rng.randbytes(rng.randint(1, 64)) + data[i:]


def overwrite(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    start, n = rng.randrange(len(out)), rng.randint(1, 16)
    value = rng.choice(INTERESTING) if rng.random() < 0.7 else None
    for i in range(start, min(start + n, len(out))):
        out[i] = rng.randrange(256) if value is None else value
    return bytes(out)


def member(data: bytes, rng: random.Random) -> bytes:
    """One member of a zip archive mutated, the archive written anew with correct CRCs."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        entries = [(info, archive.read(info)) for info in archive.infolist()]
    index = rng.randrange(len(entries))
    info, content = entries[index]
    how = rng.choice(("flip", "truncate", "grow", "empty"))
    if how == "flip" and content:
        content = flip(content, rng)
    elif how == "truncate" and content:
        content = truncate(content, rng)
    elif how == "grow":
        content = content + rng.randbytes(rng.randint(1, 4096))
    else:
        content = b""
    entries[index] = (info, content)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for info, content in entries:
            archive.writestr(info, content)
    return buffer.getvalue()


MUTATIONS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "flip": flip,
    "truncate": truncate,
    "insert": insert,
    "overwrite": overwrite,
    "member": member,
}
ZIP_FORMATS = ("torch-zip", "npz")


# -- the peers' readers ------------------------------------------------------------------------


def peer_load(fmt: str, path: Path) -> dict[str, np.ndarray]:
    """The file read by its own library, as NumPy arrays (bfloat16 as float32); raises whatever
    that library raises."""
    if fmt.startswith("torch"):
        import torch

        obj = torch.load(path, weights_only=True)
        if not isinstance(obj, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
        ):
            raise ValueError("not a dict of named tensors")
        return {
            k: (v.float() if v.dtype == torch.bfloat16 else v).numpy(force=True)
            for k, v in obj.items()
        }
    if fmt == "safetensors":
        from safetensors.numpy import load_file

        return load_file(str(path))
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def same(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray]) -> bool:
    """Same names, shapes, dtypes and values (bit for bit, NaN payloads aside)."""
    if set(ours) != set(theirs):
        return False
    for name, a in ours.items():
        b = np.asarray(theirs[name])
        if not isinstance(a, np.ndarray) or a.dtype != b.dtype or a.shape != b.shape:
            return False
        if a.dtype.kind in "fc":
            if not np.array_equal(a, b, equal_nan=True):
                return False
        elif a.tobytes() != b.tobytes():
            return False
    return True


def outcome(fmt: str, path: Path, seed: dict[str, np.ndarray]) -> tuple[str, str]:
    """The outcome of one input (see the module docstring) and a detail for failures; ``seed``
    is the unmutated seed's arrays as its peer loads them."""
    import npxai

    try:
        ours = npxai.load(path)
    except (npxai.LoadError, npxai.UnsafePickleError) as error:
        message = str(error)
        return ("refused", "") if str(path) in message else ("unnamed", message[:300])
    except Exception as error:  # noqa: BLE001 - every other escape is what the fuzzer counts
        return "escaped", "".join(traceback.format_exception_only(error))[-300:].strip()
    try:
        theirs = peer_load(fmt, path)
    except Exception as error:  # noqa: BLE001 - the peer refusing is an outcome too
        if same(ours, seed):
            return "intact", ""
        return "differs", f"npxai loaded what the peer refused ({type(error).__name__})"
    if same(ours, theirs):
        return "same", ""
    return ("intact", "") if same(ours, seed) else ("differs", "npxai's arrays differ")


def limit_memory(gib: float) -> None:
    """Cap this process's address space at what it maps now plus ``gib`` GiB."""
    with open("/proc/self/statm") as f:
        mapped = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    cap = mapped + int(gib * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (cap, resource.getrlimit(resource.RLIMIT_AS)[1]))


def fuzz(inputs: int, seed: int, folder: Path, log: Callable[[str], None] = print) -> Counter:
    """Run ``inputs`` mutated files (formats and mutations drawn in turn from ``seed``); returns
    the count of each ``(format, mutation, outcome)`` and logs every failure."""
    import torch

    torch.set_num_threads(1)
    rng = random.Random(seed)
    seeds = make_seeds(folder)
    originals = {}
    for fmt, data in seeds.items():
        (folder / f"seed-{fmt}").write_bytes(data)
        originals[fmt] = peer_load(fmt, folder / f"seed-{fmt}")
    counts: Counter = Counter()
    path = folder / "input"
    for i in range(inputs):
        fmt = FORMATS[i % len(FORMATS)]
        names = [m for m in MUTATIONS if m != "member" or fmt in ZIP_FORMATS]
        mutation = rng.choice(names)
        data = MUTATIONS[mutation](seeds[fmt], rng)
        path.write_bytes(data)
        result, detail = outcome(fmt, path, originals[fmt])
        counts[fmt, mutation, result] += 1
        if result in FAILURES:
            kept = folder / f"failure-{i}-{fmt}-{mutation}"
            kept.write_bytes(data)
            log(f"input {i} ({fmt}, {mutation}): {result}: {detail} [kept as {kept}]")
    return counts


def summary(counts: Counter) -> str:
    """A table: per format, how many inputs ended in each outcome."""
    outcomes = ("refused", "same", "intact", *FAILURES)
    lines = [f"{'format':<14}" + "".join(f"{o:>10}" for o in outcomes)]
    for fmt in FORMATS:
        row = [
            sum(n for (f, _, o), n in counts.items() if f == fmt and o == out) for out in outcomes
        ]
        lines.append(f"{fmt:<14}" + "".join(f"{n:>10}" for n in row))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-gib", type=float, default=2.0)
    parser.add_argument("--keep", metavar="DIR", help="folder for failing inputs (default: temp)")
    args = parser.parse_args(argv)
    import torch  # noqa: F401

    import npxai  # noqa: F401 - imported before the memory cap, as torch is in fuzz()

    limit_memory(args.memory_gib)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(args.keep or temp)
        folder.mkdir(parents=True, exist_ok=True)
        counts = fuzz(args.inputs, args.seed, folder)
    failures = sum(n for (_, _, o), n in counts.items() if o in FAILURES)
    print(summary(counts))
    print(f"{args.inputs} inputs, seed {args.seed}, {failures} failures, "
          f"{time.perf_counter() - start:.0f} s")  # fmt: skip
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
