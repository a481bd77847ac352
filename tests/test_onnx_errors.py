"""Bad ONNX input: each a LoadError naming the file, the node (name and op type), the initializer
or the value at fault, raised before anything large is allocated."""

import tracemalloc

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import npxai
from npxai.errors import LoadError, MissingFileError
from npxai.onnx import from_onnx

onnx = pytest.importorskip("onnx")


def model(nodes, initializers=(), inputs=None, opset=17, opset_imports=None, **kwargs):
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 4, 4])]
    graph = helper.make_graph(
        nodes, "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        list(initializers),
    )  # fmt: skip
    opset_imports = opset_imports or [helper.make_opsetid("", opset)]
    return helper.make_model(graph, opset_imports=opset_imports, **kwargs)


def conv_model() -> onnx.ModelProto:
    w = numpy_helper.from_array(np.ones((3, 2, 3, 3), np.float32), "conv.weight")
    return model(
        [helper.make_node("Conv", ["x", "conv.weight"], ["c"], "conv", pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["y"], "relu")],
        [w],
    )  # fmt: skip


def test_a_valid_model_imports_and_runs():
    graph = from_onnx(conv_model())
    x = np.random.default_rng(0).standard_normal((2, 2, 4, 4)).astype(np.float32)
    assert set(graph.state_dict()) == {"conv.weight"}
    assert graph(x).shape == (2, 3, 4, 4)


def test_truncated_and_corrupt_files_are_named(tmp_path):
    data = conv_model().SerializeToString()
    for cut in (len(data) // 3, len(data) // 2, len(data) - 7):
        path = tmp_path / f"cut{cut}.onnx"
        path.write_bytes(data[:cut])
        with pytest.raises(LoadError, match=str(path)):
            from_onnx(path)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\xff\xfe\x00garbage" * 10)
    with pytest.raises(LoadError, match="corrupt.onnx: not a readable ONNX file"):
        from_onnx(corrupt)
    with pytest.raises(MissingFileError, match="no such ONNX file"):
        from_onnx(tmp_path / "absent.onnx")
    with pytest.raises(LoadError, match="is a directory"):
        from_onnx(tmp_path)
    with pytest.raises(TypeError, match="from_onnx expects a path, bytes or an onnx.ModelProto"):
        from_onnx(3)


def test_a_cycle_and_a_dangling_input_are_named():
    cycle = model([helper.make_node("Add", ["x", "b"], ["a"], "first"),
                   helper.make_node("Relu", ["a"], ["b"], "second"),
                   helper.make_node("Relu", ["b"], ["y"], "third")])  # fmt: skip
    with pytest.raises(
        LoadError, match="the graph has a cycle through the nodes 'first', 'second'"
    ):
        from_onnx(cycle)
    dangling = model([helper.make_node("Add", ["x", "nowhere"], ["y"], "add")])
    with pytest.raises(LoadError, match="node 'add' \\(Add\\) reads 'nowhere', which no node"):
        from_onnx(dangling)
    missing = model([helper.make_node("Conv", ["x", "conv.weight"], ["y"], "conv")])
    with pytest.raises(LoadError, match="reads 'conv.weight'.*missing initializer"):
        from_onnx(missing)


def test_an_initializer_whose_data_does_not_match_its_dims_is_named():
    bad = numpy_helper.from_array(np.ones(4, np.float32), "conv.weight")
    bad.dims[:] = [3, 2, 3, 3]
    m = model([helper.make_node("Conv", ["x", "conv.weight"], ["y"], "conv")], [bad])
    with pytest.raises(LoadError, match="initializer 'conv.weight': dims \\[3, 2, 3, 3\\] \\(54 "
                       "values of float32\\) do not match the 4 values it holds"):  # fmt: skip
        from_onnx(m)


def test_dims_beyond_memory_are_refused_before_allocating():
    huge = numpy_helper.from_array(np.ones(4, np.float32), "conv.weight")
    huge.dims[:] = [1 << 20, 1 << 20, 3, 3]
    m = model([helper.make_node("Conv", ["x", "conv.weight"], ["y"], "conv")], [huge])
    tracemalloc.start()
    with pytest.raises(LoadError, match="dims \\[1048576, 1048576, 3, 3\\] need 39582418599936 "
                       "bytes, more than the"):  # fmt: skip
        from_onnx(m.SerializeToString())
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 16 << 20
    big_input = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 1 << 16, 1 << 16])]
    m = model([helper.make_node("Relu", ["x"], ["y"], "relu")], inputs=big_input)
    with pytest.raises(
        LoadError, match="needs more than 1073741824 bytes; pass a smaller input_shape"
    ):
        from_onnx(m)


def test_external_data_is_read_only_inside_the_models_folder(tmp_path):
    m = conv_model()
    onnx.save(m, tmp_path / "m.onnx", save_as_external_data=True, location="m.bin",
              size_threshold=0)  # fmt: skip
    graph = from_onnx(tmp_path / "m.onnx")
    np.testing.assert_array_equal(graph.state_dict()["conv.weight"], np.ones((3, 2, 3, 3)))
    for location in ("../m.bin", "/etc/passwd", "sub/../../m.bin"):
        loaded = onnx.load(tmp_path / "m.onnx", load_external_data=False)
        for entry in loaded.graph.initializer[0].external_data:
            if entry.key == "location":
                entry.value = location
        path = tmp_path / "escape.onnx"
        path.write_bytes(loaded.SerializeToString())
        with pytest.raises(LoadError, match=f"location '{location}' leaves the model's folder"):
            from_onnx(path)
    with pytest.raises(LoadError, match="keeps its data in an external file, which needs the"):
        from_onnx(onnx.load(tmp_path / "m.onnx", load_external_data=False))
    (tmp_path / "m.bin").write_bytes(b"\x00" * 8)  # shorter than the 54 floats it must hold
    with pytest.raises(LoadError, match="need 216 bytes at offset 0 of m.bin, which holds 8"):
        from_onnx(tmp_path / "m.onnx")


def test_custom_domains_functions_and_unknown_ops_are_named():
    custom = model([helper.make_node("Fancy", ["x"], ["y"], "fancy", domain="com.example")],
                   opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])  # fmt: skip
    with pytest.raises(LoadError, match="node 'fancy' \\(Fancy\\) is in the custom domain "
                       "'com.example'"):  # fmt: skip
        from_onnx(custom)
    function = helper.make_function("local", "Twice", ["a"], ["b"],
                                    [helper.make_node("Add", ["a", "a"], ["b"])],
                                    [helper.make_opsetid("", 17)])  # fmt: skip
    calls = model([helper.make_node("Twice", ["x"], ["y"], "twice", domain="local")],
                  opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local", 1)],
                  functions=[function])  # fmt: skip
    with pytest.raises(LoadError, match="node 'twice' calls the ONNX function local.Twice"):
        from_onnx(calls)
    unknown = model([helper.make_node("Elu", ["x"], ["y"], "elu")])
    with pytest.raises(LoadError, match="node 'elu' \\(Elu\\): this op is not supported; npxai "
                       "imports .*BatchNormalization.*Conv"):  # fmt: skip
        from_onnx(unknown)


def test_opsets_inputs_and_shapes_that_npxai_does_not_take_are_named():
    with pytest.raises(LoadError, match="opset 9 of the default domain; npxai reads opsets 11 to"):
        from_onnx(model([helper.make_node("Relu", ["x"], ["y"], "relu")], opset=9))
    two = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 2]) for n in ("x", "z")]
    with pytest.raises(LoadError, match="graphs with one data input; this one has \\['x', 'z'\\]"):
        from_onnx(model([helper.make_node("Add", ["x", "z"], ["y"], "add")], inputs=two))
    free = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, "H", "W"])]
    relu = model([helper.make_node("Relu", ["x"], ["y"], "relu")], inputs=free)
    with pytest.raises(LoadError, match="has dims \\[None, 2, None, None\\]; pass input_shape"):
        from_onnx(relu)
    assert from_onnx(relu, input_shape=(2, 5, 5))(np.ones((1, 2, 5, 5), np.float32)).shape == (
        1, 2, 5, 5,
    )  # fmt: skip
    with pytest.raises(ValueError, match="input_shape=\\(3, 5, 5\\) does not fit the input 'x'"):
        from_onnx(relu, input_shape=(3, 5, 5))
    shape = numpy_helper.from_array(np.array([-1, 4], np.int64), "shape")
    mixes = model([helper.make_node("Reshape", ["x", "shape"], ["y"], "reshape")], [shape])
    with pytest.raises(LoadError, match="node 'reshape' \\(Reshape\\): reshaping \\(1, 2, 4, 4\\) "
                       "to \\(8, 4\\) mixes the batch axis 0"):  # fmt: skip
        from_onnx(mixes)


def test_npxai_exports_from_onnx():
    assert npxai.from_onnx is from_onnx


def test_a_model_with_two_outputs_is_a_graph_with_two():
    """Both outputs as onnxruntime computes them; each explained through ``with_output``, which
    shares the layers; explaining the two-output graph itself names the way."""
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((3, 2, 3, 3)).astype(np.float32), "conv.weight")
    fc = numpy_helper.from_array(rng.standard_normal((4, 3)).astype(np.float32), "fc.weight")
    graph_proto = helper.make_graph(
        [helper.make_node("Conv", ["x", "conv.weight"], ["c"], "conv", pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["r"], "relu"),
         helper.make_node("GlobalAveragePool", ["r"], ["p"], "pool"),
         helper.make_node("Flatten", ["p"], ["f"], "flat"),
         helper.make_node("Gemm", ["f", "fc.weight"], ["logits"], "fc", transB=1),
         helper.make_node("Sigmoid", ["f"], ["gates"], "gate")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 4, 4])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("logits", "gates")],
        [w, fc],
    )  # fmt: skip
    proto = helper.make_model(graph_proto, opset_imports=[helper.make_opsetid("", 17)],
                              ir_version=10)  # onnxruntime reads up to 13  # fmt: skip
    graph = from_onnx(proto)
    assert graph.outputs == ("fc", "gate")
    x = rng.standard_normal((2, 2, 4, 4)).astype(np.float32)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    for ours, theirs in zip(graph(x), session.run(None, {"x": x}), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="the model has 2 outputs; explain one of them"):
        npxai.Gradient(graph)(x)
    logits = graph.with_output("fc")
    assert logits["conv"] is graph["conv"] and logits.output == "fc"
    assert set(logits.state_dict()) == {"conv.weight", "fc.weight"}
    np.testing.assert_allclose(logits(x), graph(x)[0])
    e = npxai.Gradient(logits)(x.astype(np.float64), target=1)
    assert e.attribution.shape == x.shape
    with pytest.raises(ValueError, match="with_output: 'nope' is not a node"):
        graph.with_output("nope")
