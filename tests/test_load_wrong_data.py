"""Issue 16, class 3: no silent wrong data. Every load gives the dtypes and values that
``torch.load(weights_only=True)`` gives (bfloat16 widened to float32), or a named LoadError where
torch refuses too; .npz archives hold only .npy arrays. torch is the oracle throughout."""

import io
import pickletools

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from load_helpers import (
    assert_loads_like_torch,
    expected,
    safetensors_bytes,
    torch_members,
    write_zip,
)
from safetensors.torch import save_file

import npxai
from npxai import LoadError

DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32,
          torch.int16, torch.int8, torch.uint8, torch.bool, torch.complex64, torch.uint16,
          torch.uint32]  # fmt: skip


def values(dtype: torch.dtype, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if dtype == torch.bool:
        return torch.randint(0, 2, (n,), generator=g).bool()
    if dtype.is_floating_point or dtype.is_complex:
        return (torch.randn(n, generator=g, dtype=torch.float64) * 100).to(dtype)
    return torch.randint(0, 200, (n,), generator=g).to(dtype)


def big_endian(members: dict[str, bytes], dtype: torch.dtype) -> dict[str, bytes]:
    """The same archive as torch would write it on a big-endian machine."""
    disk = np.uint16 if dtype == torch.bfloat16 else torch.empty(0, dtype=dtype).numpy().dtype
    out = {}
    for name, data in members.items():
        if "/data/" in name and "/.data/" not in name:
            data = np.frombuffer(data, dtype=disk).byteswap().tobytes()
        out[name] = b"big" if name.endswith("/byteorder") else data
    return out


@given(
    dtype=st.sampled_from(DTYPES),
    n=st.integers(0, 24),
    size=st.lists(st.integers(0, 4), max_size=3),
    data=st.data(),
    layout=st.sampled_from(["zip", "legacy", "big-endian zip"]),
)
def test_drawn_geometries_and_dtypes_load_as_torch_loads_them(tmp_path_factory, dtype, n, size,
                                                              data, layout):  # fmt: skip
    stride = data.draw(st.lists(st.integers(0, 3), min_size=len(size), max_size=len(size)))
    offset = data.draw(st.integers(0, n))
    reach = offset + sum((k - 1) * s for k, s in zip(size, stride, strict=True))
    assume(0 in size or reach < n)
    assume(not (layout == "legacy" and dtype in (torch.uint16, torch.uint32)))  # torch can't
    base = values(dtype, n, seed=n)
    source = {"view": base.as_strided(size, stride, offset), "base": base}
    path = tmp_path_factory.mktemp("geometry") / "w.pt"
    if layout == "big-endian zip":
        write_zip(path, big_endian(torch_members(source), dtype))
    else:
        torch.save(source, path, _use_new_zipfile_serialization=layout == "zip")
    assert_loads_like_torch(path, npxai.load(path))


def test_zip_whose_central_directory_claims_size_zero_is_refused_as_torch_does(tmp_path):
    torch.save({"w": torch.arange(4.0)}, tmp_path / "w.pt")
    raw = (tmp_path / "w.pt").read_bytes()
    record = raw.rindex(b"PK\x06\x06")  # the zip64 end of central directory that torch writes
    size_at = record + 40  # signature, record size, versions, disks, entry counts
    assert int.from_bytes(raw[size_at : size_at + 8], "little") > 0
    (tmp_path / "cd0.pt").write_bytes(raw[:size_at] + bytes(8) + raw[size_at + 8 :])
    with pytest.raises(RuntimeError, match="zip archive"):
        torch.load(tmp_path / "cd0.pt", weights_only=True)
    with pytest.raises(LoadError, match="cd0.pt: a zip file whose central directory lists no"):
        npxai.load(tmp_path / "cd0.pt")
    np.savez(tmp_path / "empty.npz")  # a genuinely empty archive is still read, as NumPy does
    assert npxai.load(tmp_path / "empty.npz") == {} == dict(np.load(tmp_path / "empty.npz"))


@pytest.mark.parametrize("order", [b"middle", b"", b"LITTLE", b"little\n", b"big ", b"x" * 100])
def test_unknown_byteorder_is_refused_as_torch_does(tmp_path, order):
    members = torch_members({"w": torch.arange(4.0)})
    members[next(n for n in members if n.endswith("/byteorder"))] = order
    write_zip(tmp_path / "bo.pt", members)
    with pytest.raises(ValueError, match="Unknown endianness"):
        torch.load(tmp_path / "bo.pt", weights_only=True)
    with pytest.raises(LoadError, match="bo.pt: unknown endianness"):
        npxai.load(tmp_path / "bo.pt")


def legacy_pickles(raw: bytes) -> list[tuple[int, int]]:
    """(start, end) of each of the five pickles at the head of a legacy torch file."""
    spans, start = [], 0
    for _ in range(5):
        end = [pos for _op, _arg, pos in pickletools.genops(raw[start:])][-1] + start + 1
        spans.append((start, end))
        start = end
    return spans


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int16, torch.bfloat16])
def test_legacy_sys_info_is_ignored_as_torch_ignores_it(tmp_path, dtype):
    """Legacy storages are little-endian on disk whatever sys_info says."""
    torch.save({"w": values(dtype, 7, seed=3)}, tmp_path / "w.pt",
               _use_new_zipfile_serialization=False)  # fmt: skip
    raw = (tmp_path / "w.pt").read_bytes()
    start, end = legacy_pickles(raw)[2]
    sys_info = raw[start:end]
    assert b"little_endian" in sys_info and sys_info.count(b"\x88") == 1  # NEWTRUE
    flipped = sys_info.replace(b"\x88", b"\x89").replace(b"K\x04", b"K\x08")  # and type sizes
    (tmp_path / "flag.pt").write_bytes(raw[:start] + flipped + raw[end:])
    loaded = npxai.load(tmp_path / "flag.pt")
    assert_loads_like_torch(tmp_path / "flag.pt", loaded)
    np.testing.assert_array_equal(loaded["w"], expected(torch.load(tmp_path / "w.pt")["w"]))


@pytest.mark.parametrize(
    "members, message",
    [
        ({"w.npy": b"not an array"}, "member 'w.npy'"),
        ({"notes.txt": b"hello"}, "member 'notes.txt' is not a .npy array"),
        ({"data/0": b"\0" * 16}, "member 'data/0' is not a .npy array"),
    ],
)
def test_zip_without_data_pkl_holds_only_npy_arrays(tmp_path, members, message):
    write_zip(tmp_path / "z.npz", members)
    name = next(iter(members))
    if not name.endswith(".npy"):  # what NumPy's own reader would have returned
        assert isinstance(np.load(tmp_path / "z.npz")[name], bytes)
    with pytest.raises(LoadError, match=f"z.npz: {message}"):
        npxai.load(tmp_path / "z.npz")


@pytest.mark.parametrize("fortran", [False, True])
@pytest.mark.parametrize("dtype", ["<f4", ">f8", "<i2", ">u4", "|b1", "<c8", "|u1"])
def test_npz_arrays_load_as_numpy_loads_them(tmp_path, dtype, fortran):
    a = np.arange(12).reshape(3, 4).astype(dtype)
    a = np.asfortranarray(a) if fortran else a
    np.savez(tmp_path / "a.npz", a=a, empty=np.zeros((0, 2), dtype))
    np.savez_compressed(tmp_path / "c.npz", a=a)
    for name in ("a.npz", "c.npz"):
        theirs, ours = dict(np.load(tmp_path / name)), npxai.load(tmp_path / name)
        assert set(ours) == set(theirs)
        for key in theirs:
            np.testing.assert_array_equal(ours[key], theirs[key])
            assert ours[key].dtype == theirs[key].dtype.newbyteorder("=")


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_empty_bfloat16_tensors_are_float32_like_the_others(tmp_path, zip_format):
    source = {"empty": torch.zeros(0, 3, dtype=torch.bfloat16), "full": torch.ones(2).bfloat16()}
    torch.save(source, tmp_path / "b.pt", _use_new_zipfile_serialization=zip_format)
    loaded = npxai.load(tmp_path / "b.pt")
    assert loaded["empty"].dtype == loaded["full"].dtype == np.float32
    assert loaded["empty"].shape == (0, 3)
    assert_loads_like_torch(tmp_path / "b.pt", loaded)
    save_file(source, tmp_path / "b.safetensors")
    loaded = npxai.load(tmp_path / "b.safetensors")
    assert loaded["empty"].dtype == loaded["full"].dtype == np.float32
    assert loaded["empty"].shape == (0, 3)


def test_safetensors_of_every_dtype_load_as_safetensors_loads_them(tmp_path):
    from safetensors.torch import load_file

    source = {str(d): values(d, 5, seed=i) for i, d in enumerate(DTYPES) if d != torch.complex64}
    save_file(source, tmp_path / "all.safetensors")
    ours, theirs = npxai.load(tmp_path / "all.safetensors"), load_file(tmp_path / "all.safetensors")
    assert set(ours) == set(theirs) == set(source)
    for key in source:
        want = expected(theirs[key])
        np.testing.assert_array_equal(ours[key], want)
        assert ours[key].dtype == want.dtype
    raw = safetensors_bytes(
        {"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4
    )
    (tmp_path / "one.safetensors").write_bytes(raw)
    assert npxai.load(tmp_path / "one.safetensors")["w"].tolist() == [0.0]


# -- where torch's and safetensors' readers are stricter than Python's zipfile: refused alike ----


def refused_by_both(path, torch_load) -> str:
    with pytest.raises(Exception):  # noqa: B017 - the peers raise what they raise
        torch_load(path)
    with pytest.raises(LoadError) as error:
        npxai.load(path)
    assert str(path) in str(error.value)
    return str(error.value)


@pytest.mark.parametrize("extra", [1, 64])
def test_a_storage_longer_than_its_elements_is_refused_as_torch_refuses_it(tmp_path, extra):
    members = torch_members({"w": torch.arange(4.0)})
    storage = next(n for n in members if "/data/" in n)
    members[storage] += b"\x00" * extra
    write_zip(tmp_path / "long.pt", members)
    message = refused_by_both(tmp_path / "long.pt", lambda p: torch.load(p, weights_only=True))
    assert f"holds {16 + extra} bytes, where its 4 elements of float32 take 16" in message


def test_members_outside_the_archive_folder_and_bad_records_are_refused(tmp_path):
    members = torch_members({"w": torch.arange(4.0)})
    write_zip(tmp_path / "stray.pt", {**members, "elsewhere/x": b"1"})
    message = refused_by_both(tmp_path / "stray.pt", lambda p: torch.load(p, weights_only=True))
    assert "member 'elsewhere/x' is not in the archive's folder" in message
    alignment = next(n for n in members if n.endswith("/.storage_alignment"))
    write_zip(tmp_path / "align.pt", {**members, alignment: b"\x1e4"})
    message = refused_by_both(tmp_path / "align.pt", lambda p: torch.load(p, weights_only=True))
    assert "storage_alignment is '\\x1e4', not an integer" in message
    serial = next(n for n in members if n.endswith("/.data/serialization_id"))
    write_zip(tmp_path / "id.pt", {**members, serial: b"\xff\xfe"})
    message = refused_by_both(tmp_path / "id.pt", lambda p: torch.load(p, weights_only=True))
    assert "serialization_id is not UTF-8 text" in message


def test_safetensors_data_not_tiled_by_its_tensors_is_refused_as_safetensors_refuses_it(tmp_path):
    from safetensors.numpy import load_file

    good = tmp_path / "good.safetensors"
    save_file({"a": torch.arange(3.0), "b": torch.ones(2)}, str(good))
    (tmp_path / "tail.safetensors").write_bytes(good.read_bytes() + b"\x00" * 4)
    message = refused_by_both(tmp_path / "tail.safetensors", lambda p: load_file(str(p)))
    assert "the tensors cover 20 of the 24 bytes of data" in message
    (length,) = np.frombuffer(good.read_bytes()[:8], "<u8")
    header = good.read_bytes()[8 : 8 + int(length)].replace(b'"data_offsets":[12,20]',
                                                            b'"data_offsets":[16,24]')  # fmt: skip
    assert header != good.read_bytes()[8 : 8 + int(length)]
    gap = tmp_path / "gap.safetensors"
    gap.write_bytes(
        good.read_bytes()[:8] + header + good.read_bytes()[8 + int(length) :] + b"\0" * 4
    )
    message = refused_by_both(gap, lambda p: load_file(str(p)))
    assert "starts at byte 16 of the data where 12 was expected" in message


@pytest.mark.parametrize("legacy", [True, False])
def test_a_storage_location_that_names_no_device_is_refused_as_torch_refuses_it(tmp_path, legacy):
    buffer = io.BytesIO()
    torch.save({"w": torch.arange(4.0)}, buffer, _use_new_zipfile_serialization=not legacy)
    raw = buffer.getvalue()
    assert raw.count(b"cpu") == 1
    if legacy:
        (tmp_path / "where.pt").write_bytes(raw.replace(b"cpu", b"c.u"))
    else:
        members = torch_members({"w": torch.arange(4.0)})
        pkl = next(n for n in members if n.endswith("/data.pkl"))
        write_zip(tmp_path / "where.pt", {**members, pkl: members[pkl].replace(b"cpu", b"c.u")})
    message = refused_by_both(tmp_path / "where.pt", lambda p: torch.load(p, weights_only=True))
    assert "has location 'c.u', not a device such as 'cpu' or 'cuda:0'" in message
