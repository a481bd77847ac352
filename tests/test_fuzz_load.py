"""A short seeded run of the loader's mutation fuzzer (tests/fuzz_load.py; the long run is by
hand, see the README): every mutated torch zip, torch legacy, safetensors and npz file is either
refused with a LoadError or UnsafePickleError naming it, or loads as its own library loads it."""

import subprocess
import sys
from pathlib import Path

import fuzz_load
import numpy as np

HERE = Path(__file__).resolve().parent


def test_a_seeded_fuzz_run_has_no_failures():
    # in a process of its own: the fuzzer caps its address space (2 GiB above what it maps after
    # its imports), so an exploding load fails there as a MemoryError instead of here
    run = subprocess.run(
        [sys.executable, str(HERE / "fuzz_load.py"), "--inputs", "4000", "--seed", "0"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    assert "4000 inputs, seed 0, 0 failures" in run.stdout


def test_the_fuzzer_counts_what_it_should(tmp_path, monkeypatch):
    """The oracle side: a seed loads as its library loads it, and a difference is seen."""
    seeds = fuzz_load.make_seeds(tmp_path)
    originals = {}
    for fmt, data in seeds.items():
        path = tmp_path / f"unchanged-{fmt}"
        path.write_bytes(data)
        originals[fmt] = fuzz_load.peer_load(fmt, path)
        assert fuzz_load.outcome(fmt, path, originals[fmt]) == ("same", ""), fmt
    theirs = originals["npz"]
    changed = dict(theirs, w=theirs["w"] + 1)
    assert fuzz_load.same(theirs, theirs) and not fuzz_load.same(changed, theirs)
    assert not fuzz_load.same({**theirs, "w": b"bytes"}, theirs)
    assert not fuzz_load.same({**theirs, "b": theirs["b"].astype(np.int32)}, theirs)
    (tmp_path / "garbage").write_bytes(b"\x00" * 40)
    assert fuzz_load.outcome("npz", tmp_path / "garbage", theirs) == ("refused", "")

    def refuse(fmt, path):
        raise RuntimeError("the peer is stricter")

    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, **changed)  # stands for a peer that misreads the file: npxai gives the seed
    monkeypatch.setattr(fuzz_load, "peer_load", lambda fmt, path: changed)
    assert fuzz_load.outcome("npz", tmp_path / "unchanged-npz", theirs) == ("intact", "")
    assert fuzz_load.outcome("npz", wrong, theirs)[0] == "same"  # npxai and the peer agree
    monkeypatch.setattr(fuzz_load, "peer_load", refuse)
    npz = tmp_path / "unchanged-npz"
    assert fuzz_load.outcome("npz", npz, theirs) == ("intact", "")  # npxai gave the seed's arrays
    assert fuzz_load.outcome("npz", npz, changed)[0] == "differs"  # npxai gave other arrays
