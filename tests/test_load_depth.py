"""Issue 16, class 5: no file crashes the process by nesting. Hashing a tuple (or frozenset)
recurses in C without a guard, so a dict key nested 200,000 tuples deep overflowed the C stack
(SIGSEGV); tuples and frozensets nest at most ``npxai.io.MAX_DEPTH`` deep, refused as they are
made, before anything hashes them. Deep lists and dicts are never hashed and load harmlessly."""

import zipfile

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from load_helpers import pickle_name, run_limited, torch_members, write_zip

import npxai
from npxai import LoadError
from npxai.io import MAX_DEPTH

#: How each kind of level wraps what is inside it, as (opcodes before, opcodes after).
WRAP = {"TUPLE1": (b"", b"\x85"), "TUPLE": (b"(", b"t"), "TUPLE2": (b"", b"N\x86"),
        "FROZENSET": (b"(", b"\x91"), "LIST": (b"(", b"l"), "DICT": (b"(N", b"d")}  # fmt: skip


def nested(levels: list[str]) -> bytes:
    """Opcodes pushing ``0`` wrapped in ``levels`` (innermost first), without quadratic joins."""
    before = b"".join(WRAP[kind][0] for kind in reversed(levels))
    return before + b"K\x00" + b"".join(WRAP[kind][1] for kind in levels)


def checkpoint(tmp_path, extra: bytes, name="deep.pt"):
    """A torch checkpoint {"state_dict": {"w": tensor}, "extra": <extra>} (deflated: the
    200,000-deep key fits in a few hundred bytes, as in the issue)."""
    members = torch_members({"state_dict": {"w": torch.arange(3.0)}, "extra": 7})
    pkl = pickle_name(members)
    at = members[pkl].index(b"extra")
    value = members[pkl].index(b"K\x07", at)
    members[pkl] = members[pkl][:value] + extra + members[pkl][value + 2 :]
    write_zip(tmp_path / name, members, compression=zipfile.ZIP_DEFLATED)
    return tmp_path / name


def as_key(levels: list[str]) -> bytes:
    """A dict whose one key is the nested value: hashing it is where the C stack overflowed."""
    return b"}" + nested(levels) + b"K\x01s"


@pytest.mark.parametrize("kind", ["TUPLE1", "TUPLE", "FROZENSET"])
@pytest.mark.parametrize("depth", [200_000, 1_000_000])
def test_a_deeply_nested_key_is_refused_in_a_child_that_does_not_crash(tmp_path, kind, depth):
    path = checkpoint(tmp_path, as_key([kind] * depth))
    assert path.stat().st_size < 5000
    out = run_limited(
        f"""
        import npxai
        try:
            npxai.load({str(path)!r}, key="state_dict")
        except npxai.LoadError as error:
            print("LoadError", error)
        """,
        limit_bytes=2**30,
    )
    assert out.startswith(f"LoadError {path}: tuples nested deeper than {MAX_DEPTH}"), out


@pytest.mark.parametrize("kind", ["LIST", "DICT"])
def test_deep_lists_and_dicts_load_without_a_crash(tmp_path, kind):
    path = checkpoint(tmp_path, nested([kind] * 300_000))
    out = run_limited(
        f"""
        import npxai
        print(npxai.load({str(path)!r}, key="state_dict")["w"].tolist())
        """,
        limit_bytes=2**30,
    )
    assert out == "[0.0, 1.0, 2.0]\n"


@given(levels=st.lists(st.sampled_from(sorted(WRAP)), min_size=1, max_size=3 * MAX_DEPTH))
def test_hashable_nesting_up_to_the_bound_loads_and_past_it_is_refused(tmp_path_factory, levels):
    """Depth of a hashable value: its tuple and frozenset levels, counted up to the first list or
    dict (a key holding a list cannot be hashed at all: a LoadError too)."""
    path = checkpoint(tmp_path_factory.mktemp("depth"), as_key(levels))
    unhashable = next((i for i, k in enumerate(reversed(levels)) if k in ("LIST", "DICT")), None)
    hashed = list(reversed(levels))[:unhashable]
    if unhashable is None and len(hashed) <= MAX_DEPTH:
        assert npxai.load(path, key="state_dict")["w"].tolist() == [0.0, 1.0, 2.0]
    elif unhashable is None:
        with pytest.raises(LoadError, match=f"{path}: tuples nested deeper than {MAX_DEPTH}"):
            npxai.load(path, key="state_dict")
    else:
        with pytest.raises(LoadError, match=f"{path}: corrupt .*TypeError: unhashable"):
            npxai.load(path, key="state_dict")


@pytest.mark.parametrize("depth", [MAX_DEPTH, MAX_DEPTH + 1])
def test_the_bound_in_a_legacy_file(tmp_path, depth):
    torch.save({"w": torch.ones(1)}, tmp_path / "w.pt", _use_new_zipfile_serialization=False)
    raw = (tmp_path / "w.pt").read_bytes()
    # the first pickle is the magic number: prepend a pickle whose value is the nested key
    deep = tmp_path / "deep.pt"
    deep.write_bytes(b"\x80\x02" + nested(["TUPLE1"] * depth) + b"." + raw)
    with pytest.raises(LoadError) as raised:
        npxai.load(deep)
    if depth <= MAX_DEPTH:
        assert "not a torch.save file" in str(raised.value)
    else:
        assert f"{deep}: tuples nested deeper than {MAX_DEPTH}" in str(raised.value)
