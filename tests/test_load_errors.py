"""Issue 16, class 6: every failure of a load is a LoadError (or UnsafePickleError) naming the
file, and the tensor or member where one is at fault: whatever zipfile, zlib, bz2, lzma or
NumPy's .npy header parser raise inside, and whatever the path is (a directory, a pipe,
/dev/zero, a loop of links). A seeded run of mutated files, in a memory-limited child, finds no
other exception."""

import lzma
import os
import struct
import tokenize
import zipfile
import zlib

import numpy as np
import pytest
import torch
from load_helpers import run_limited, safetensors_bytes, tensor_pickle, write_pickle_zip

import npxai
from npxai import LoadError
from npxai.errors import MissingFileError


def find_header(raw: bytes, signature: bytes, name_at: int, name: str) -> int:
    """Where the zip header with ``signature`` for member ``name`` starts."""
    at = raw.find(signature)
    while raw[at + name_at : at + name_at + len(name)] != name.encode():
        at = raw.find(signature, at + 1)
        assert at >= 0, name
    return at


def rewrite_member(path, name: str, flags: int | None = None, method: int | None = None,
                   keep: int | None = None) -> None:  # fmt: skip
    """Set member ``name``'s flags or compression method (in its local and central headers), or
    replace its compressed data, but for its first ``keep`` bytes, by garbage."""
    raw = bytearray(path.read_bytes())
    local, central = (
        find_header(raw, b"PK\x03\x04", 30, name),
        find_header(raw, b"PK\x01\x02", 46, name),
    )
    if flags is not None:
        raw[local + 6 : local + 8] = raw[central + 8 : central + 10] = struct.pack("<H", flags)
    if method is not None:
        raw[local + 8 : local + 10] = raw[central + 10 : central + 12] = struct.pack("<H", method)
    if keep is not None:
        size = struct.unpack("<I", raw[central + 20 : central + 24])[0]
        start = local + 30 + sum(struct.unpack("<HH", raw[local + 26 : local + 30]))
        raw[start + keep : start + size] = b"\xff" * (size - keep)
    path.write_bytes(bytes(raw))


def torch_zip(path, compression=zipfile.ZIP_STORED):
    """A torch-style archive (written by zipfile, so that any compression can be chosen)."""
    data = np.arange(64, dtype=np.float32).tobytes()
    with zipfile.ZipFile(path, "w", compression=compression) as z:
        z.writestr("archive/data.pkl", tensor_pickle({"w": ("0", 64, (64,), (1,), 0)}))
        z.writestr("archive/byteorder", b"little")
        z.writestr("archive/data/0", data)


CASES = {
    "unknown compression method": (dict(method=99), zipfile.ZIP_STORED, NotImplementedError),
    "encrypted": (dict(flags=1), zipfile.ZIP_STORED, RuntimeError),
    "bad deflate stream": (dict(keep=0), zipfile.ZIP_DEFLATED, zlib.error),
    "bad bzip2 stream": (dict(keep=0), zipfile.ZIP_BZIP2, OSError),
    "bad lzma stream": (dict(keep=9), zipfile.ZIP_LZMA, lzma.LZMAError),  # after its header
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("member", ["archive/data.pkl", "archive/data/0", "w.npy"])
def test_damaged_zip_members_raise_load_error_naming_the_file(tmp_path, case, member):
    change, compression, cause = CASES[case]
    path = tmp_path / "damaged.pt"
    if member == "w.npy":
        with zipfile.ZipFile(path, "w", compression=compression) as z:
            with z.open("w.npy", "w") as f:
                np.lib.format.write_array(f, np.arange(64.0))
    else:
        torch_zip(path, compression)
    rewrite_member(path, member, **change)
    with pytest.raises(LoadError, match=f"^{path}: ") as raised:
        npxai.load(path)
    assert isinstance(raised.value.__cause__, cause), repr(raised.value.__cause__)
    if member == "w.npy":
        assert "member 'w.npy'" in str(raised.value)


def npy(header: str) -> bytes:
    text = header.encode()
    text += b" " * (63 - (len(text) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + bytes(12)


@pytest.mark.parametrize(
    "header, cause",
    [
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (3,", tokenize.TokenError),
        ("{'descr': '''<f4", tokenize.TokenError),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (3.5,)}", ValueError),
        ("{'descr': 'xx', 'fortran_order': False, 'shape': (3,)}", ValueError),
        ("\x00\xff", ValueError),
        ("1" * 100, ValueError),
    ],
)
def test_damaged_npy_headers_raise_load_error_naming_file_and_member(tmp_path, header, cause):
    with zipfile.ZipFile(tmp_path / "h.npz", "w") as z:
        z.writestr("w.npy", npy(header))
    with pytest.raises(LoadError, match=f"^{tmp_path / 'h.npz'}: member 'w.npy'") as raised:
        npxai.load(tmp_path / "h.npz")
    assert isinstance(raised.value.__cause__, cause)


@pytest.mark.parametrize(
    "geometry, message",
    [
        (
            ("0", 4, (1,), (1,), 100),
            "tensor 'w' of size (1,) reaches element 100 of a storage of 4",
        ),
        (("0", 4, (2,), (-1,), 0), "tensor 'w' has a bad geometry"),
        (("0", 4, (2, 2), (1,), 0), "tensor 'w' has a bad geometry"),
        (("0", 4, [2], (1,), 0), "tensor 'w' has size"),
    ],
)
def test_tensor_errors_name_the_file_and_the_tensor(tmp_path, geometry, message):
    key, numel, size, stride, offset = geometry
    pkl = tensor_pickle({"w": geometry})
    if isinstance(size, list):  # a list where torch writes a tuple
        pkl = tensor_pickle({"w": (key, numel, (2,), stride, offset)}).replace(
            b"K\x02\x85", b"]K\x02a"
        )
    write_pickle_zip(tmp_path / "t.pt", pkl, {"0": bytes(16)})
    with pytest.raises(
        LoadError, match=f"^{tmp_path / 't.pt'}: " + message.replace("(", r"\(").replace(")", r"\)")
    ):
        npxai.load(tmp_path / "t.pt")


def test_missing_storage_and_odd_persistent_ids_name_the_file(tmp_path):
    write_pickle_zip(tmp_path / "s.pt", tensor_pickle({"w": ("7", 4, (4,), (1,), 0)}))
    with pytest.raises(LoadError, match=f"^{tmp_path / 's.pt'}: storage '7' has no member"):
        npxai.load(tmp_path / "s.pt")
    write_pickle_zip(tmp_path / "p.pt", b"\x80\x02K\x01Q.")
    with pytest.raises(LoadError, match=f"^{tmp_path / 'p.pt'}: unknown persistent id 1"):
        npxai.load(tmp_path / "p.pt")


def test_paths_that_are_not_regular_files(tmp_path):
    (tmp_path / "loop_a").symlink_to(tmp_path / "loop_b")
    (tmp_path / "loop_b").symlink_to(tmp_path / "loop_a")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "file.pt").write_bytes(b"x")
    os.mkfifo(tmp_path / "fifo")
    expectations = {
        tmp_path / "loop_a": (LoadError, "cannot examine this weight file"),
        tmp_path / "dangling": (MissingFileError, "no such weight file"),
        tmp_path / "file.pt" / "inner.pt": (MissingFileError, "no such weight file"),
        tmp_path: (LoadError, "is a directory"),
        tmp_path / "fifo": (LoadError, "not a regular file"),
        "/dev/zero": (LoadError, "not a regular file"),
        "/dev/null": (LoadError, "not a regular file"),
    }
    for path, (kind, message) in expectations.items():
        with pytest.raises(kind, match=f"^{path}: {message}"):
            npxai.load(path)
        with pytest.raises(kind, match=f"^{path}: {message}"):
            npxai.io.check_file(path, "weight")


def test_seeded_mutations_give_only_load_errors_or_arrays(tmp_path):
    """Bit flips, truncations, insertions, overwritten runs and member rewrites (with correct
    CRCs) of a torch zip, a legacy torch file, a safetensors file and stored and compressed
    .npz archives: each load, in a child limited to 1 GiB, returns arrays or raises LoadError."""
    source = {"w": torch.randn(3, 4), "b": torch.arange(3), "h": torch.ones(2).half(),
              "v": torch.randn(4, 4)[1:, ::2]}  # fmt: skip
    torch.save(source, tmp_path / "seed-zip.pt")
    torch.save(source, tmp_path / "seed-legacy.pt", _use_new_zipfile_serialization=False)
    header = {"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
              "i": {"dtype": "I64", "shape": [2], "data_offsets": [24, 40]}}  # fmt: skip
    (tmp_path / "seed.safetensors").write_bytes(safetensors_bytes(header, bytes(range(40))))
    np.savez(tmp_path / "seed.npz", w=np.arange(6.0).reshape(2, 3), i=np.arange(3))
    np.savez_compressed(tmp_path / "seed-c.npz", w=np.arange(6.0).reshape(2, 3))
    out = run_limited(
        f"""
        import random, traceback, zipfile
        from pathlib import Path
        import npxai

        def mutate(raw, rng):
            kind = rng.randrange(5)
            at = rng.randrange(len(raw))
            if kind == 0:
                raw[at] ^= 1 << rng.randrange(8)
            elif kind == 1:
                del raw[at:]
            elif kind == 2:
                raw[at:at] = rng.randbytes(rng.randrange(1, 9))
            elif kind == 3:
                raw[at:at + 8] = rng.choice([b"\\xff" * 8, b"\\x00" * 8, rng.randbytes(8)])
            return raw

        def rewrite(path, out, rng):
            with zipfile.ZipFile(path) as z:
                members = {{i: z.read(i) for i in z.infolist()}}
            target = rng.choice(list(members))
            members[target] = bytes(mutate(bytearray(members[target] or b"x"), rng))
            with zipfile.ZipFile(out, "w") as z:
                for info, data in members.items():
                    z.writestr(info, data)

        rng = random.Random(16)
        counts = {{"arrays": 0, "LoadError": 0}}
        seeds = sorted(Path({str(tmp_path)!r}).glob("seed*"))
        for i in range(800):
            seed = seeds[i % len(seeds)]
            path = seed.with_name("mutant" + seed.suffix)
            if seed.suffix in (".pt", ".npz") and zipfile.is_zipfile(seed) and rng.random() < 0.3:
                rewrite(seed, path, rng)
            else:
                path.write_bytes(bytes(mutate(bytearray(seed.read_bytes()), rng)))
            try:
                arrays = npxai.load(path)
                assert all(hasattr(a, "dtype") for a in arrays.values())
                counts["arrays"] += 1
            except npxai.LoadError as error:
                assert str(error).startswith(str(path)), error
                counts["LoadError"] += 1
            except Exception:
                print("ESCAPED", seed.name, traceback.format_exc()[-800:])
        print(counts)
        """,
        limit_bytes=2**30,
        timeout=120,
    )
    assert "ESCAPED" not in out, out
    assert out.startswith("{'arrays': "), out


def test_a_key_for_a_flat_file_is_a_load_error_naming_it(tmp_path):
    np.savez(tmp_path / "flat.npz", w=np.ones(2))
    with pytest.raises(
        LoadError, match=r"flat\.npz: key='state_dict' applies to torch checkpoints"
    ):
        npxai.load(tmp_path / "flat.npz", key="state_dict")
