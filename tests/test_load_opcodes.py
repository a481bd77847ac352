"""Issue 16, class 2: no opcode gets around the allow-list. The EXT opcodes resolve through
copyreg's process-wide extension registry (and its cache) without asking ``find_class``; they,
and every other opcode outside ``npxai.io.PICKLE_OPCODES``, are refused before they do anything.
The opcodes that are carried out give what ``pickle.loads`` gives."""

import copyreg
import io
import pickle
import pickletools

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from load_helpers import assert_loads_like_torch, body, write_pickle_zip

import npxai
from npxai import UnsafePickleError
from npxai.io import PICKLE_OPCODES, _Unpickler

CALLS = []


def record(*args):
    """What a registered extension stands for: a function a file must never reach."""
    CALLS.append(args)
    return args


#: Every opcode npxai refuses, with argument bytes that make it well formed.
REFUSED = {
    "EXT1": b"\x82\xf1",
    "EXT2": b"\x83\xf1\x00",
    "EXT4": b"\x84\xf1\x00\x00\x00",
    "INST": b"(" + body("echo pwned") + b"ios\nsystem\n",
    "OBJ": b"(ccollections\nOrderedDict\no",
    "NEWOBJ": b"ccollections\nOrderedDict\n)\x81",
    "NEWOBJ_EX": b"ccollections\nOrderedDict\n)}\x92",
    "PERSID": b"P0\n",
    "BYTEARRAY8": b"\x96\x01\x00\x00\x00\x00\x00\x00\x00x",
    "NEXT_BUFFER": b"\x97",
    "READONLY_BUFFER": b"N\x98",
    "STRING": b"S'a'\n",
    "BINSTRING": b"T\x01\x00\x00\x00a",
    "SHORT_BINSTRING": b"U\x01a",
}


@pytest.fixture
def extension():
    """Extension code 241 registered for :func:`record`, and copyreg's cache filled by one
    ordinary unpickling of it, as a library in the same process might do."""
    copyreg.add_extension(__name__, "record", 241)
    try:
        assert pickle.loads(pickle.dumps(record, protocol=2)) is record
        assert 241 in copyreg._extension_cache
        yield
    finally:
        copyreg.remove_extension(__name__, "record", 241)
        CALLS.clear()


def test_ext_opcodes_bypass_find_class_in_the_c_unpickler(extension):
    """The danger is real: an unpickler whose find_class refuses everything still calls it."""

    class Refusing(pickle.Unpickler):
        def find_class(self, module, name):
            raise pickle.UnpicklingError(f"{module}.{name}")

    payload = b"\x80\x02\x82\xf1)R."
    assert Refusing(io.BytesIO(payload)).load() == ()
    assert CALLS == [()]


@pytest.mark.parametrize("name", ["EXT1", "EXT2", "EXT4"])
@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_ext_opcodes_are_refused_and_nothing_runs(tmp_path, extension, name, zip_format):
    call = REFUSED[name] + body(("pwned",)) + b"R"
    path = tmp_path / f"{name}.pt"
    if zip_format:
        write_pickle_zip(path, b"\x80\x02" + call + b".")
    else:  # as the first pickle of a legacy file, where the magic number goes
        path.write_bytes(b"\x80\x02" + call + b".")
    with pytest.raises(UnsafePickleError, match=f"{name}.pt: refusing pickle opcode {name}"):
        npxai.load(path)
    assert CALLS == []


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_every_opcode_outside_the_allow_list_is_refused(tmp_path, name):
    write_pickle_zip(tmp_path / "op.pt", b"\x80\x02" + REFUSED[name] + b"0}.")
    with pytest.raises(UnsafePickleError, match=f"op.pt: refusing pickle opcode {name} at byte"):
        npxai.load(tmp_path / "op.pt")


def test_the_refused_opcodes_are_exactly_the_complement_of_the_allowed_ones():
    every = {op.name for op in pickletools.opcodes}
    assert set(REFUSED) | PICKLE_OPCODES == every
    assert not set(REFUSED) & PICKLE_OPCODES


atoms = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=5)
)
hashable = st.recursive(
    atoms, lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3), max_leaves=8
)
plain = st.recursive(
    atoms | st.binary(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(hashable, inner, max_size=3)
        | st.sets(hashable, max_size=3)
        | st.frozensets(hashable, max_size=3)
    ),
    max_leaves=12,
)


def oldest_protocol(obj) -> int:
    """The oldest protocol that pickles obj without a global: protocols 0 to 2 write bytes as a
    call of _codecs.encode, 0 to 3 sets as a call of builtins.set (not on npxai's allow-list)."""
    if isinstance(obj, set | frozenset):
        return 4
    if isinstance(obj, dict):
        return max((oldest_protocol(v) for kv in obj.items() for v in kv), default=0)
    if isinstance(obj, list | tuple):
        return max((oldest_protocol(v) for v in obj), default=0)
    return 3 if isinstance(obj, bytes) else 0


@given(obj=plain, protocol=st.integers(0, 5), shared=st.booleans())
def test_allowed_opcodes_give_what_pickle_gives(tmp_path_factory, obj, protocol, shared):
    """Literals, containers and the memo (``shared``: one object referenced twice) of every
    protocol, against the standard library's own unpickler."""
    protocol = max(protocol, oldest_protocol(obj))
    value = [obj, obj] if shared else obj
    payload = pickle.dumps(value, protocol=protocol)
    ours = _Unpickler(tmp_path_factory.getbasetemp(), {}).load(io.BytesIO(payload))
    assert ours == pickle.loads(payload)
    if shared and isinstance(obj, list | dict | set):
        assert ours[0] is ours[1]


@pytest.mark.filterwarnings("ignore:Detected pickle protocol 3")
@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_torch_files_of_every_pickle_protocol_load(tmp_path, protocol):
    source = {"w": torch.randn(3, 2), "b": torch.arange(4), "h": torch.ones(2).half()}
    path = tmp_path / f"p{protocol}.pt"
    torch.save(source, path, pickle_protocol=protocol)
    # torch's weights-only reader refuses FRAME (protocols 4 and 5); this file is the test's own
    assert_loads_like_torch(path, npxai.load(path), weights_only=protocol < 4)
