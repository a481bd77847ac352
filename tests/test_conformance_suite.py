"""The conformance suite's files: complete, deterministic, and readable without npxai."""

import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from npxai.conformance import cases as C
from npxai.conformance.models import MODELS, Model, weights
from npxai.conformance.suite import Suite, export, file_name, npxai_results
from npxai.errors import LoadError


def test_export_is_deterministic(conformance_suite, tmp_path):
    again = export(tmp_path / "again")
    first = sorted(
        p.relative_to(conformance_suite.folder) for p in conformance_suite.folder.rglob("*")
    )
    second = sorted(p.relative_to(again) for p in again.rglob("*"))
    assert first == second
    for path in first:
        if (conformance_suite.folder / path).is_file():
            assert (conformance_suite.folder / path).read_bytes() == (again / path).read_bytes(), (
                path
            )


def test_weights_load_with_the_safetensors_package(conformance_suite):
    for name, model in MODELS.items():
        entry = conformance_suite.manifest["models"][name]
        loaded = load_file(conformance_suite.folder / entry["weights"])
        drawn = weights(model)
        assert loaded.keys() == drawn.keys()
        for key, value in drawn.items():
            assert loaded[key].dtype == np.float64
            np.testing.assert_array_equal(loaded[key], value, err_msg=f"{name}: {key}")


def test_the_manifest_describes_the_models_and_every_case(conformance_suite):
    manifest = json.loads((conformance_suite.folder / "manifest.json").read_text())
    assert manifest["format"] == "npxai-conformance" and manifest["version"] == 1
    for name, model in MODELS.items():
        assert Model.from_description(name, manifest["models"][name]) == model
    names = [case["name"] for case in manifest["cases"]]
    assert len(names) == len(set(names)) == len(C.all_cases())
    for case in manifest["cases"]:
        expected = np.load(conformance_suite.folder / case["expected"], allow_pickle=False)
        assert case["expected"].endswith(file_name(case["name"]))
        assert {k: list(expected[k].shape) for k in expected.files} == case["arrays"]
        assert all(expected[k].dtype == np.float64 for k in expected.files)
        x, target, noise = conformance_suite.batch(case)
        assert expected["input"].shape[0] == len(x) == len(target) == noise.shape[1]
        if case["method"] == "LRP":  # every layer's relevance, at each of its inputs
            nodes = manifest["models"][case["model"]]["nodes"]
            keys = {f"layer/{n['name']}" if len(n["inputs"]) == 1 else f"layer/{n['name']}/{k}"
                    for n in nodes for k in range(len(n["inputs"]))}  # fmt: skip
            assert set(expected.files) == {"input"} | keys, case["name"]


def test_every_convention_and_family_is_there(conformance_suite):
    conventions = {}
    for case in conformance_suite.cases.values():
        conventions.setdefault(case["family"].split("/", 1)[1], set()).add(case["convention"])
    grid = {f"{family}/mixed": set(spelled) for family, spelled in C.GRID.items()}
    for family, spelled in grid.items():
        assert conventions[family] == spelled
    assert conventions["preset/EpsilonGammaBox/mixed"] == {"npxai", "zennit", "julia"}
    assert conventions["lrp_default/zeros"] == {"npxai", "captum", "julia"}
    assert conventions["integrated_gradients/gauss_legendre/positive"] == {"npxai", "captum"}
    assert conventions["integrated_gradients/riemann_right/positive"] == {
        "npxai",
        "captum",
        "zennit",
    }


def test_npxai_answers_every_case_from_the_files_alone(conformance_suite):
    """The manifest's rules, one per layer, and the safetensors weights rebuild each case."""
    for name, arrays in npxai_results(conformance_suite).items():
        expected = conformance_suite.expected(conformance_suite.cases[name])
        assert arrays.keys() == expected.keys(), name
        for key, value in expected.items():
            np.testing.assert_array_equal(arrays[key], value, err_msg=f"{name}: {key}")


def test_a_suite_of_another_version_is_refused(conformance_suite, tmp_path):
    manifest = json.loads((conformance_suite.folder / "manifest.json").read_text())
    (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "version": 2}))
    with pytest.raises(
        LoadError, match="version 2; this npxai reads 'npxai-conformance' version 1"
    ):
        Suite(tmp_path)
    with pytest.raises(LoadError, match="manifest.json: no such file"):
        Suite(tmp_path / "nowhere")
    (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "cases": {}}))
    with pytest.raises(LoadError, match="manifest.json: 'cases' must be a JSON array, got dict"):
        Suite(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "cases": [{"model": "x"}]}))
    with pytest.raises(LoadError, match="every case must be an object with a name"):
        Suite(tmp_path)


def test_a_manifest_naming_an_unknown_rule_is_refused(conformance_suite):
    case = dict(conformance_suite.cases["dense/epsilon/mixed@npxai"])
    case["rules"] = {**case["rules"], "fc2": {"rule": "MagicRule"}}
    with pytest.raises(
        LoadError, match="case dense/epsilon/mixed@npxai, layer fc2: unknown rule 'MagicRule'"
    ):
        conformance_suite.as_case(case)
    case["rules"]["fc2"] = {"rule": "EpsilonRule", "epsilon": -1.0}
    with pytest.raises(LoadError, match="layer fc2: bad parameters for EpsilonRule"):
        conformance_suite.as_case(case)
