"""npxai.load: round trips of files written by torch, safetensors and NumPy, and refusal of
malicious and damaged files. Every file here is written by the test itself."""

import io
import os
import pickle
import struct
import zipfile

import numpy as np
import pytest
import torch
from load_helpers import check_round_trip
from safetensors.numpy import save_file as save_safetensors_numpy
from safetensors.torch import save_file as save_safetensors_torch

import npxai
from npxai import LoadError, UnsafePickleError


def tensors() -> dict[str, torch.Tensor]:
    """Every dtype the loader promises, plus views, shared storage, a parameter and a scalar."""
    g = torch.Generator().manual_seed(0)
    base = torch.randn(4, 6, generator=g)
    return {
        "float32": torch.randn(2, 3, generator=g),
        "float64": torch.randn(3, generator=g, dtype=torch.float64),
        "float16": torch.randn(2, 2, generator=g).half(),
        "bfloat16": torch.randn(5, generator=g).bfloat16(),
        "int64": torch.arange(6).reshape(2, 3),
        "int32": torch.arange(4, dtype=torch.int32),
        "int16": torch.arange(3, dtype=torch.int16),
        "int8": torch.tensor([-3, 4], dtype=torch.int8),
        "uint8": torch.tensor([0, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False]),
        "base": base,
        "transposed_view": base.t(),
        "offset_view": base[1:3, 2:5],
        "strided_view": base[:, ::2],
        "parameter": torch.nn.Parameter(torch.ones(2, 2)),
        "scalar": torch.tensor(7),
        "empty": torch.zeros(0, 3),
    }


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_torch_files_round_trip(tmp_path, zip_format):
    source = tensors()
    path = tmp_path / "weights.pt"
    torch.save(source, path, _use_new_zipfile_serialization=zip_format)
    check_round_trip(npxai.load(path), source)


def test_untyped_storage_dtypes_round_trip(tmp_path):
    """Dtypes without a legacy storage class are written by torch with _rebuild_tensor_v3."""
    source = {"uint16": torch.tensor([1, 65535], dtype=torch.uint16),
              "uint32": torch.tensor([4_000_000_000], dtype=torch.uint32)}  # fmt: skip
    torch.save(source, tmp_path / "u.pt")
    loaded = npxai.load(tmp_path / "u.pt")
    np.testing.assert_array_equal(loaded["uint16"], np.array([1, 65535], np.uint16))
    np.testing.assert_array_equal(loaded["uint32"], np.array([4_000_000_000], np.uint32))


def test_model_state_dict_loads_into_npxai_model(tmp_path):
    theirs = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.Flatten(),
                                 torch.nn.Linear(2 * 4 * 4, 3))  # fmt: skip
    torch.save(theirs.state_dict(), tmp_path / "model.pt")
    ours = npxai.Sequential(npxai.layers.Conv2d(1, 2, 3), npxai.layers.BatchNorm2d(2),
                            npxai.layers.Flatten(), npxai.layers.Linear(32, 3))  # fmt: skip
    ours.load_state_dict(npxai.load(tmp_path / "model.pt"))
    x = np.random.default_rng(0).standard_normal((2, 1, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(
        ours(x), theirs.eval()(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6
    )


def test_checkpoint_sub_dict_is_selected_by_key(tmp_path):
    sd = {"w": torch.ones(2)}
    torch.save({"state_dict": sd, "epoch": 3}, tmp_path / "ckpt.pt")
    with pytest.raises(LoadError, match=r"'epoch'\].*key=.*'state_dict'"):
        npxai.load(tmp_path / "ckpt.pt")
    np.testing.assert_array_equal(npxai.load(tmp_path / "ckpt.pt", key="state_dict")["w"], [1, 1])
    with pytest.raises(LoadError, match="no entry 'model'"):
        npxai.load(tmp_path / "ckpt.pt", key="model")


def test_single_tensor_file_is_refused_clearly(tmp_path):
    torch.save(torch.ones(3), tmp_path / "t.pt")
    with pytest.raises(LoadError, match="single tensor"):
        npxai.load(tmp_path / "t.pt")


def test_safetensors_round_trip(tmp_path):
    source = {
        k: v
        for k, v in tensors().items()
        if k not in ("transposed_view", "offset_view", "strided_view")
    }
    source = {k: v.detach().contiguous() for k, v in source.items()}
    save_safetensors_torch(source, tmp_path / "w.safetensors", metadata={"format": "pt"})
    check_round_trip(npxai.load(tmp_path / "w.safetensors"), source)
    arrays = {"a": np.arange(6, dtype=np.float64).reshape(2, 3), "b": np.ones(3, np.float32)}
    save_safetensors_numpy(arrays, tmp_path / "n.safetensors")
    loaded = npxai.load(tmp_path / "n.safetensors")
    for k in arrays:
        np.testing.assert_array_equal(loaded[k], arrays[k])
        assert loaded[k].dtype == arrays[k].dtype


def test_npz_round_trip_and_pickled_npz_refused(tmp_path):
    arrays = {"w": np.arange(4.0), "b": np.ones((2, 2), np.float32)}
    np.savez(tmp_path / "w.npz", **arrays)
    loaded = npxai.load(tmp_path / "w.npz")
    for k in arrays:
        np.testing.assert_array_equal(loaded[k], arrays[k])
    np.savez(tmp_path / "obj.npz", o=np.array([{"a": 1}], dtype=object))
    with pytest.raises(LoadError, match="obj.npz.*never pickled objects"):
        npxai.load(tmp_path / "obj.npz")


# --- malicious files ----------------------------------------------------------------------------


class RunsCommand:
    """An object whose unpickling would run a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class CallsEval:
    def __reduce__(self):
        return eval, ("__import__('os').getcwd()",)


def write_zip_pickle(path, payload: bytes) -> None:
    """A torch-style zip archive whose data.pkl is ``payload``."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", payload)
        z.writestr("archive/byteorder", "little")


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_pickled_shell_command_is_refused_and_not_run(tmp_path, zip_format):
    marker = tmp_path / "pwned"
    torch.save(
        {"w": RunsCommand(marker)}, tmp_path / "evil.pt", _use_new_zipfile_serialization=zip_format
    )
    with pytest.raises(UnsafePickleError, match=r"global '(posix|os)\.system'.*executed nothing"):
        npxai.load(tmp_path / "evil.pt")
    assert not marker.exists()


def test_builtins_eval_is_refused(tmp_path):
    write_zip_pickle(tmp_path / "eval.pt", pickle.dumps({"w": CallsEval()}, protocol=4))
    with pytest.raises(UnsafePickleError, match=r"'builtins\.eval'"):
        npxai.load(tmp_path / "eval.pt")


def test_whole_pickled_module_is_refused_with_advice(tmp_path):
    torch.save(torch.nn.Sequential(torch.nn.Linear(2, 2)), tmp_path / "module.pt")
    with pytest.raises(UnsafePickleError, match=r"torch\.nn\.modules\..*state_dict\(\)"):
        npxai.load(tmp_path / "module.pt")


def test_plain_pickle_with_global_is_refused(tmp_path):
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps(RunsCommand(tmp_path / "x"), protocol=2))
    with pytest.raises(UnsafePickleError):
        npxai.load(tmp_path / "plain.pkl")
    assert not (tmp_path / "x").exists()


def test_pickle_that_sets_state_of_a_tensor_is_refused(tmp_path):
    """BUILD on a rebuilt tensor could rewrite its geometry; the loader refuses it."""
    torch.save({"w": torch.ones(2)}, tmp_path / "ok.pt")
    with zipfile.ZipFile(tmp_path / "ok.pt") as z:
        names = z.namelist()
        payload = z.read(next(n for n in names if n.endswith("data.pkl")))
        storage = {n: z.read(n) for n in names if "/data/" in n}
    # Insert "EMPTY_DICT BUILD" after the tensor's REDUCE (the last 'R' before SETITEM 's').
    cut = payload.rindex(b"s")
    tampered = payload[:cut] + b"}b" + payload[cut:]
    with zipfile.ZipFile(tmp_path / "bad.pt", "w") as z:
        z.writestr("archive/data.pkl", tampered)
        for n, data in storage.items():
            z.writestr("archive/data/" + n.split("/data/")[1], data)
    with pytest.raises(LoadError, match="set the state of a tensor"):
        npxai.load(tmp_path / "bad.pt")


# --- damaged files ------------------------------------------------------------------------------


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
@pytest.mark.parametrize("fraction", [0.3, 0.7, 0.95])
def test_truncated_torch_file_gives_load_error(tmp_path, zip_format, fraction):
    torch.save(
        {"w": torch.randn(64, 64)}, tmp_path / "w.pt", _use_new_zipfile_serialization=zip_format
    )
    raw = (tmp_path / "w.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(raw[: int(len(raw) * fraction)])
    with pytest.raises(LoadError, match="cut.pt"):
        npxai.load(tmp_path / "cut.pt")


def test_zip_storage_shorter_than_its_tensor(tmp_path):
    torch.save({"w": torch.ones(10)}, tmp_path / "w.pt")
    with zipfile.ZipFile(tmp_path / "w.pt") as z:
        files = {n: z.read(n) for n in z.namelist()}
    with zipfile.ZipFile(tmp_path / "short.pt", "w") as z:
        for n, data in files.items():
            z.writestr(n, data[:8] if n.endswith("/data/0") else data)
    with pytest.raises(LoadError, match="storage '0' holds 8 bytes"):
        npxai.load(tmp_path / "short.pt")


def test_legacy_storage_claiming_more_than_the_file(tmp_path):
    torch.save({"w": torch.ones(4)}, tmp_path / "w.pt", _use_new_zipfile_serialization=False)
    raw = (tmp_path / "w.pt").read_bytes()
    count_at = len(raw) - 4 * 4 - 8
    assert struct.unpack("<q", raw[count_at : count_at + 8]) == (4,)
    bad = raw[:count_at] + struct.pack("<q", 2**60) + raw[count_at + 8 :]
    (tmp_path / "huge.pt").write_bytes(bad)
    with pytest.raises(LoadError, match="claims 1152921504606846976 elements"):
        npxai.load(tmp_path / "huge.pt")


def test_unknown_and_empty_files(tmp_path):
    (tmp_path / "noise.bin").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "empty.pt").write_bytes(b"")
    for name in ("noise.bin", "empty.pt"):
        with pytest.raises(LoadError, match=f"{name}: unknown format"):
            npxai.load(tmp_path / name)


def test_missing_files_folders_and_pipes_raise_load_error_naming_them(tmp_path):
    missing = tmp_path / "missing.pt"
    with pytest.raises(LoadError, match=f"{missing}: no such weight file") as raised:
        npxai.load(missing)
    assert isinstance(raised.value, FileNotFoundError)  # except FileNotFoundError still works
    with pytest.raises(LoadError, match=f"{tmp_path}: is a directory, not a weight file"):
        npxai.load(tmp_path)
    fifo = tmp_path / "pipe.pt"
    os.mkfifo(fifo)  # opening it would wait for a writer forever
    with pytest.raises(LoadError, match=f"{fifo}: not a regular file") as raised:
        npxai.load(fifo)
    assert not isinstance(raised.value, FileNotFoundError)


def safetensors_bytes(header: dict, data: bytes) -> bytes:
    import json

    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


@pytest.mark.parametrize(
    "header, data, message",
    [
        ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8, "does not fit"),
        (
            {"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}},
            b"\0" * 16,
            "does not fit",
        ),
        (
            {"w": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}},
            b"\0" * 8,
            "unsupported dtype",
        ),
        ({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4, "bad shape"),
    ],
)
def test_damaged_safetensors(tmp_path, header, data, message):
    (tmp_path / "bad.safetensors").write_bytes(safetensors_bytes(header, data))
    with pytest.raises(LoadError, match=message):
        npxai.load(tmp_path / "bad.safetensors")


def test_safetensors_header_longer_than_file(tmp_path):
    raw = struct.pack("<Q", 10**12) + b"{}"
    (tmp_path / "long.safetensors").write_bytes(raw)
    with pytest.raises(LoadError, match="header of 1000000000000 bytes"):
        npxai.load(tmp_path / "long.safetensors")


def test_tensor_reaching_past_its_storage(tmp_path):
    """A tensor whose size and stride point beyond its storage is refused, not read out of bounds."""
    buffer = io.BytesIO()
    torch.save({"w": torch.ones(4)}, buffer)
    with zipfile.ZipFile(buffer) as z:
        files = {n: z.read(n) for n in z.namelist()}
    pkl = next(n for n in files if n.endswith("data.pkl"))
    # size (4,) -> (9,): BININT1 4 inside TUPLE1 becomes BININT1 9
    files[pkl] = files[pkl].replace(b"K\x04\x85", b"K\x09\x85", 1)
    with zipfile.ZipFile(tmp_path / "far.pt", "w") as z:
        for n, data in files.items():
            z.writestr(n, data)
    with pytest.raises(LoadError, match="reaches element 8 of a storage of 4"):
        npxai.load(tmp_path / "far.pt")
