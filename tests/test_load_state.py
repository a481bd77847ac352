"""Issue 16, class 1: nothing a file does outlives its load. A pickle may not set the state of,
or fill, anything but the containers it made itself; allowed globals resolve to immutable
markers, so that a crafted file cannot change how a later, genuine file loads."""

import pickle

import numpy as np
import pytest
import torch
from load_helpers import (
    assert_loads_like_torch,
    body,
    global_op,
    pickle_name,
    torch_members,
    write_pickle_zip,
    write_zip,
)

import npxai
from npxai import UnsafePickleError
from npxai.io import ALLOWED_GLOBALS

#: States a BUILD might set: a storage type's dtype, a function's defaults and code, a class's
#: dict, as a plain state and as the (state, slotstate) pair that sets attributes one by one.
POISON = {"dtype": "float64", "name": "float64", "__defaults__": (True, None, None),
          "__kwdefaults__": {}, "__class__": None}  # fmt: skip
STATES = [POISON, (None, POISON), (POISON, POISON)]


def genuine(tmp_path, zip_format=True):
    """A checkpoint of every dtype whose values a poisoned loader would get wrong."""
    g = torch.Generator().manual_seed(1)
    source = {
        "float32": torch.randn(3, 4, generator=g),
        "float64": torch.randn(5, generator=g, dtype=torch.float64),
        "float16": torch.randn(2, 2, generator=g).half(),
        "bfloat16": torch.randn(3, generator=g).bfloat16(),
        "int64": torch.arange(4),
        "bool": torch.tensor([True, False]),
        "parameter": torch.nn.Parameter(torch.randn(2, generator=g)),
    }
    if zip_format:  # torch's weights_only reader fails on legacy files of untyped storages
        source["uint16"] = torch.tensor([1, 65535], dtype=torch.uint16)
    path = tmp_path / f"genuine-{zip_format}.pt"
    torch.save(source, path, _use_new_zipfile_serialization=zip_format)
    return path


@pytest.mark.parametrize("state", STATES, ids=["state", "slotstate", "both"])
@pytest.mark.parametrize("protocol", [2, 4])
def test_build_on_every_allowed_global_is_refused(tmp_path, state, protocol):
    for i, (module, name) in enumerate(ALLOWED_GLOBALS):
        if protocol == 2:
            target = global_op(module, name)
        else:  # STACK_GLOBAL: module and name pushed as strings
            target = body(module) + body(name) + b"\x93"
        payload = b"\x80\x02" + target + body(state) + b"b0}."
        write_pickle_zip(tmp_path / f"poison{i}.pt", payload)
        with pytest.raises(UnsafePickleError, match=f"poison{i}.pt: refusing to set the state"):
            npxai.load(tmp_path / f"poison{i}.pt")
    for zip_format in (True, False):
        path = genuine(tmp_path, zip_format)
        assert_loads_like_torch(path, npxai.load(path))


@pytest.mark.parametrize("opcodes", [b"X\x05\x00\x00\x00dtypeX\x07\x00\x00\x00float64s",
                                     b"X\x05\x00\x00\x00dtype}s", b"Na"],
                         ids=["SETITEM", "SETITEM-dict", "APPEND"])  # fmt: skip
def test_filling_an_allowed_global_is_refused(tmp_path, opcodes):
    for i, (module, name) in enumerate(ALLOWED_GLOBALS):
        payload = b"\x80\x02" + global_op(module, name) + opcodes + b"0}."
        write_pickle_zip(tmp_path / f"fill{i}.pt", payload)
        with pytest.raises(UnsafePickleError, match=f"fill{i}.pt: refusing (SETITEM|APPEND)"):
            npxai.load(tmp_path / f"fill{i}.pt")
    path = genuine(tmp_path)
    assert_loads_like_torch(path, npxai.load(path))


def test_state_of_a_state_dict_is_dropped_and_changes_nothing(tmp_path):
    """torch.save BUILDs a state dict (an OrderedDict the load made) with its _metadata: that is
    accepted, and whatever that state holds is dropped, not set."""
    sd = torch.nn.Linear(3, 2).state_dict()
    members = torch_members(sd)
    name = pickle_name(members)
    payload = members[name]
    assert payload.endswith(b"b.")  # ... EMPTY_DICT <_metadata> SETITEM BUILD STOP
    # Replace the metadata with a state that would shadow the dict's own methods and class.
    poison = body({"__class__": None, "items": None, "__getitem__": None, "_metadata": 1})
    members[name] = payload[: payload.index(b"u}") + 1] + poison + b"b."
    write_zip(tmp_path / "meta.pt", members)
    loaded = npxai.load(tmp_path / "meta.pt")
    assert set(loaded) == {"weight", "bias"}
    for key, t in sd.items():
        np.testing.assert_array_equal(loaded[key], t.numpy())
    path = genuine(tmp_path)
    assert_loads_like_torch(path, npxai.load(path))


def test_build_on_a_tensor_or_a_plain_dict_is_refused(tmp_path):
    members = torch_members({"w": torch.ones(2)})
    name = pickle_name(members)
    payload = members[name]
    cut = payload.rindex(b"s")  # after the tensor's REDUCE, before the dict's SETITEMS
    for state, what in ((b"}", "a tensor"), (body((None, {"size": (9,)})), "a tensor")):
        members[name] = payload[:cut] + state + b"b" + payload[cut:]
        write_zip(tmp_path / "bad.pt", members)
        with pytest.raises(UnsafePickleError, match=f"set the state of {what}"):
            npxai.load(tmp_path / "bad.pt")
    write_pickle_zip(tmp_path / "dict.pt", b"\x80\x02}" + body({"a": 1}) + b"b.")
    with pytest.raises(UnsafePickleError, match="set the state of a dict"):
        npxai.load(tmp_path / "dict.pt")


def test_loads_share_no_arrays(tmp_path):
    """Arrays are the load's own: writable, not views of one another nor of an earlier load."""
    base = torch.arange(12.0).reshape(3, 4)
    torch.save({"base": base, "view": base[1:, ::2], "again": base}, tmp_path / "s.pt")
    first = npxai.load(tmp_path / "s.pt")
    for array in first.values():
        array[...] = -1
    second = npxai.load(tmp_path / "s.pt")
    np.testing.assert_array_equal(second["base"], base.numpy())
    np.testing.assert_array_equal(second["view"], base[1:, ::2].numpy())
    assert not np.shares_memory(second["base"], second["again"])


def test_the_allow_list_cannot_be_changed_by_a_caller():
    with pytest.raises(TypeError):
        ALLOWED_GLOBALS[("os", "system")] = None  # type: ignore[index]
    marker = ALLOWED_GLOBALS[("torch", "FloatStorage")]
    with pytest.raises(AttributeError):
        marker.dtype = "float64"  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(1)) == 1  # the process's own pickle is untouched
