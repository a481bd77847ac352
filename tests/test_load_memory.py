"""Issue 16, class 4: a file cannot make the loader allocate far more than its size. What a
load allocates (storages read plus arrays returned) is bounded by ``max_bytes``, by default
8 times the file size plus 64 MiB, checked against the sizes the file declares before anything
is read or allocated; zip members are read with a bounded decompressor; error messages are made
of bounded pieces. The loads that could allocate run in a child limited to 1 GiB."""

import struct
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from load_helpers import body, run_limited, tensor_pickle, write_pickle_zip

import npxai
from npxai import LoadError
from npxai.io import BUDGET_PER_FILE_BYTE, MIN_BUDGET

MiB = 2**20


def load_in_child(path, **options) -> str:
    """``npxai.load(path, **options)`` in a child limited to 1 GiB: "loaded [(name, shape,
    sum)...]" or "LoadError <message>"."""
    return run_limited(
        f"""
        import npxai
        try:
            arrays = npxai.load({str(path)!r}, **{options!r})
            print("loaded", sorted((k, v.shape, float(v.sum())) for k, v in arrays.items()))
        except npxai.LoadError as error:
            print("LoadError", error)
        """,
        limit_bytes=2**30,
    )


def write_bomb(path, members: dict[str, bytes], bomb: str, head: bytes, zeros: int) -> None:
    """A zip of ``members`` (stored) plus ``bomb``: ``head`` then ``zeros`` zero bytes, deflated
    (a few hundred bytes per MiB), written in chunks so that this process never holds it."""
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
        info = zipfile.ZipInfo(bomb)
        info.compress_type = zipfile.ZIP_DEFLATED
        with z.open(info, "w", force_zip64=True) as f:
            f.write(head)
            chunk = bytes(MiB)
            for _ in range(zeros // MiB):
                f.write(chunk)
            f.write(bytes(zeros % MiB))


@pytest.fixture(scope="module")
def storage_bomb(tmp_path_factory):
    """128 MiB of zeros as the storage of a float32 tensor of 2**25 elements, in a 130 kB file."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.pt"
    pkl = tensor_pickle({"w": ("0", 2**25, (2**25,), (1,), 0)})
    members = {"archive/data.pkl": pkl, "archive/byteorder": b"little"}
    write_bomb(path, members, "archive/data/0", b"", 128 * MiB)
    assert path.stat().st_size < 200_000
    return path


def test_deflated_storage_is_refused_before_it_is_read(storage_bomb):
    budget = BUDGET_PER_FILE_BYTE * storage_bomb.stat().st_size + MIN_BUDGET
    left = budget - zipfile.ZipFile(storage_bomb).getinfo("archive/data.pkl").file_size
    out = load_in_child(storage_bomb)
    assert out.startswith(
        f"LoadError {storage_bomb}: storage '0' needs {128 * MiB} bytes, more than the {left} "
        f"left of max_bytes={budget}"
    ), out
    assert "pass a larger max_bytes=" in out
    out = load_in_child(storage_bomb, max_bytes=257 * MiB)  # the pickle, storage and array
    assert out == f"loaded [('w', ({2**25},), 0.0)]\n", out


@pytest.mark.parametrize("claimed", [2**31, 2**32 - 1])
def test_sizes_a_zip_claims_but_does_not_hold_are_caught_without_allocating(tmp_path, claimed):
    """The central directory claims ``claimed`` bytes for a 16-byte storage: refused by the
    budget, and with the budget lifted, by the bounded read (not by a 2 GiB allocation)."""
    path = tmp_path / "liar.pt"
    write_pickle_zip(path, tensor_pickle({"w": ("0", claimed // 4, (4,), (1,), 0)}),
                     {"0": np.arange(4, dtype=np.float32).tobytes()})  # fmt: skip
    raw = bytearray(path.read_bytes())
    entry = raw.rindex(b"PK\x01\x02", 0, raw.rindex(b"archive/data/0"))
    raw[entry + 24 : entry + 28] = struct.pack("<I", claimed)  # its uncompressed size
    path.write_bytes(bytes(raw))
    assert zipfile.ZipFile(path).getinfo("archive/data/0").file_size == claimed
    out = load_in_child(path)
    assert out.startswith(f"LoadError {path}: storage '0' needs {claimed // 4 * 4}"), out
    out = load_in_child(path, max_bytes=2**40)
    assert out.startswith(f"LoadError {path}: "), out


def test_storage_longer_than_its_header_declares_fails_its_crc(tmp_path):
    """A member's declared size is what is decompressed, never more; the rest fails the CRC."""
    pkl_small = tensor_pickle({"w": ("0", 4, (4,), (1,), 0)})
    members = {"archive/data.pkl": pkl_small, "archive/byteorder": b"little"}
    path = tmp_path / "long.pt"
    write_bomb(path, members, "archive/data/0", b"", 16 * MiB)
    raw = bytearray(path.read_bytes())
    entry = raw.rindex(b"PK\x01\x02", 0, raw.rindex(b"archive/data/0"))
    raw[entry + 24 : entry + 28] = struct.pack("<I", 16)  # its uncompressed size
    path.write_bytes(bytes(raw))
    assert zipfile.ZipFile(path).getinfo("archive/data/0").file_size == 16
    out = load_in_child(path)
    assert out.startswith(f"LoadError {path}: corrupt") and "CRC" in out, out


@pytest.mark.parametrize("member", ["archive/data.pkl", "archive/byteorder"])
def test_deflated_pickle_or_byteorder_is_refused_before_it_is_read(tmp_path, member):
    members = {"archive/data.pkl": b"\x80\x02}.", "archive/byteorder": b"little"}
    del members[member]
    head = b"\x80\x02}" if member.endswith("data.pkl") else b"little"
    write_bomb(tmp_path / "bomb.pt", members, member, head, 256 * MiB)
    out = load_in_child(tmp_path / "bomb.pt")
    want = "archive/data.pkl needs" if member.endswith("data.pkl") else "record archive/byteorder"
    assert out.startswith(f"LoadError {tmp_path / 'bomb.pt'}: {want}"), out


def test_zero_stride_views_are_bounded_in_total_in_a_child(tmp_path):
    """hypothesis draws how many zero-stride views of one element a file holds and how big each
    is; the load gives them (each the element repeated) while their total fits the budget, and
    refuses the file by name, before allocating, when it does not."""
    out = run_limited(
        f"""
        import sys
        sys.path.insert(0, {str(__file__.rsplit("/", 1)[0])!r})
        from pathlib import Path
        import numpy as np
        from hypothesis import given, settings, strategies as st
        from load_helpers import tensor_pickle, write_pickle_zip
        import npxai
        from npxai.io import BUDGET_PER_FILE_BYTE, MIN_BUDGET

        @settings(max_examples=25, deadline=None, database=None)
        @given(count=st.integers(1, 64), log_size=st.integers(0, 24), ndim=st.integers(1, 3))
        def check(count, log_size, ndim):
            size = (2**log_size,) + (1,) * (ndim - 1)
            tensors = {{f"t{{i}}": ("0", 1, size, (0,) * ndim, 0) for i in range(count)}}
            path = Path({str(tmp_path)!r}) / "views.pt"
            write_pickle_zip(path, tensor_pickle(tensors), {{"0": np.float32(3).tobytes()}})
            total = 4 + count * 4 * 2**log_size
            budget = BUDGET_PER_FILE_BYTE * path.stat().st_size + MIN_BUDGET
            try:
                arrays = npxai.load(path)
            except npxai.LoadError as error:
                assert total > budget and "max_bytes" in str(error) and str(path) in str(error)
            else:
                assert total <= budget and len(arrays) == count
                assert all(a.shape == size and (a == 3).all() for a in arrays.values())
        check()
        print("checked")
        """,
        limit_bytes=2**30,
    )
    assert out == "checked\n"


def npy_header(shape: tuple, descr: str = "<f4") -> bytes:
    text = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    text += b" " * (63 - (len(text) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text


@pytest.mark.parametrize("shape", [(2**21, 2**21), (2**62,), (2**40, 2**40, 2**40)])
def test_npz_header_claiming_more_than_its_member_holds_is_refused(tmp_path, shape):
    with zipfile.ZipFile(tmp_path / "claim.npz", "w") as z:
        z.writestr("w.npy", npy_header(shape) + b"\0" * 16)
    out = load_in_child(tmp_path / "claim.npz")
    assert out.startswith(f"LoadError {tmp_path / 'claim.npz'}: member 'w.npy' claims shape"), out


def test_deflated_npz_member_is_refused_before_it_is_read(tmp_path):
    shape = (32 * MiB,)
    write_bomb(tmp_path / "bomb.npz", {}, "w.npy", npy_header(shape), 128 * MiB)
    out = load_in_child(tmp_path / "bomb.npz")
    assert out.startswith(f"LoadError {tmp_path / 'bomb.npz'}: array 'w.npy' needs"), out
    out = load_in_child(tmp_path / "bomb.npz", max_bytes=2**28)
    assert out == f"loaded [('w', ({32 * MiB},), 0.0)]\n", out


def test_error_messages_are_bounded_whatever_the_file_holds(tmp_path):
    """A list of 100,000 references to a 10 kB string (a 1 GB repr) where the magic number goes,
    a megabyte-long global name, a megabyte-long dict key: messages stay short."""
    big = b"\x80\x02" + body("x" * 10_000) + b"q\x00(" + b"h\x00" * 100_000 + b"l."
    (tmp_path / "magic.pt").write_bytes(big)
    name = "m" * MiB
    write_pickle_zip(tmp_path / "global.pt", b"\x80\x02c" + name.encode() + b"\nx\n.")
    write_pickle_zip(tmp_path / "key.pt", b"\x80\x02}" + body(name) + b"Ns.")
    out = run_limited(
        f"""
        import npxai
        for name, key in (("magic.pt", None), ("global.pt", None), ("key.pt", None),
                          ("key.pt", "state_dict")):
            try:
                npxai.load({str(tmp_path)!r} + "/" + name, key=key)
            except npxai.LoadError as error:
                print(len(str(error)), str(error).split(": ", 1)[1][:60])
        """,
        limit_bytes=2**30,
    )
    lines = out.splitlines()
    assert len(lines) == 4, out
    assert lines[0].endswith("a pickle, but not a torch.save file (magic number a list of ")
    for line in lines:
        assert int(line.split()[0]) < 400 + len(str(tmp_path)), line


def test_max_bytes_counts_storages_and_arrays_exactly(tmp_path):
    """{"w": 1000 float32, "v": a 500-element view of it}: the pickle, 4000 bytes of storage,
    4000 + 2000 bytes of arrays."""
    import torch

    w = torch.arange(1000.0)
    torch.save({"w": w, "v": w[::2]}, tmp_path / "w.pt")
    with zipfile.ZipFile(tmp_path / "w.pt") as z:
        pkl = next(i.file_size for i in z.infolist() if i.filename.endswith("/data.pkl"))
    need = pkl + 4000 + 4000 + 2000
    assert npxai.load(tmp_path / "w.pt", max_bytes=need)["v"].shape == (500,)
    with pytest.raises(LoadError, match=r"w.pt: tensor '.' needs \d+ bytes, more than the"):
        npxai.load(tmp_path / "w.pt", max_bytes=need - 1)
    with pytest.raises(LoadError, match="w.pt: storage '0' needs 4000 bytes, more than the 3999"):
        npxai.load(tmp_path / "w.pt", max_bytes=pkl + 3_999)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "1000"])
def test_max_bytes_must_be_a_non_negative_int(tmp_path, bad):
    np.savez(tmp_path / "w.npz", w=np.ones(2))
    with pytest.raises(ValueError, match="max_bytes must be a non-negative int"):
        npxai.load(tmp_path / "w.npz", max_bytes=bad)


@settings(max_examples=10)
@given(log_ratio=st.integers(4, 10))
def test_drawn_compression_ratios(tmp_path_factory, log_ratio):
    """A storage of 64 kB of zeros times 2**log_ratio (at most 64 MiB), deflated: loaded while
    the pickle, the storage and the array fit the budget, refused by name past it."""
    nbytes = 2**16 * 2**log_ratio
    path = tmp_path_factory.mktemp("ratio") / "r.pt"
    pkl = tensor_pickle({"w": ("0", nbytes // 4, (nbytes // 4,), (1,), 0)})
    members = {"archive/data.pkl": pkl, "archive/byteorder": b"little"}
    write_bomb(path, members, "archive/data/0", bytes(2**16), nbytes - 2**16)
    budget = BUDGET_PER_FILE_BYTE * path.stat().st_size + MIN_BUDGET
    if len(pkl) + 2 * nbytes <= budget:
        assert npxai.load(path)["w"].shape == (nbytes // 4,)
    else:
        what = "storage '0'" if len(pkl) + nbytes > budget else "tensor 'w'"
        with pytest.raises(LoadError, match=f"r.pt: {what} needs {nbytes} bytes"):
            npxai.load(path)
