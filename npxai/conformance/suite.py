"""The suite on disk: :func:`export` writes it, :class:`Suite` reads it, :func:`write_results`
and :func:`read_results` hold an implementation's answers. The layout (``docs/conformance.md``)::

    manifest.json                 the format and version, conventions, models, inputs, cases
    models/<model>.onnx           the model as an ONNX graph (float64 weights)
    models/<model>.safetensors    the same weights under torch's state-dict keys
    inputs/<model>.npz            the input batches (mixed, positive, zeros) and SmoothGrad noise
    expected/<case>.npz           per case: "input", and for LRP "layer/<node>" ("layer/<node>/<k>")

A case's file name is its name with ``/`` written as ``.``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..compat import captum
from ..errors import LoadError
from ..io import load
from ..lrp import rules as R
from ..lrp.composites import Composite, Keys
from .cases import (
    CONVENTIONS,
    LIBRARY,
    SMOOTHGRAD,
    Case,
    all_cases,
    inputs,
    prepare,
    relevances,
    smoothgrad_noise,
)
from .files import read_json, read_npz, write_json, write_npz, write_safetensors
from .models import MODELS, Model, build, weights
from .onnx_export import to_onnx

FORMAT = "npxai-conformance"
RESULTS_FORMAT = "npxai-conformance-results"
#: The suite's version: a results file from another version is refused, case by case.
VERSION = 1

CONVENTION_TEXT = {
    "npxai": "npxai's rules and defaults (npxai.lrp.rules, npxai.composites)",
    "zennit": "Zennit 0.5.1's rules, presets and MergeBatchNorm canonizer (npxai.compat.zennit)",
    "captum": "Captum 0.9's LRP rules and attribution methods (npxai.compat.captum)",
    "julia": "RelevancePropagation.jl 3's rules and presets (npxai.compat.julia)",
}

#: Every rule a manifest may name, by class name.
RULE_CLASSES = {cls.__name__: cls for cls in (*R.RULES, captum.Alpha1Beta0Rule)}


def file_name(case_name: str) -> str:
    """The ``.npz`` file of a case: its name with ``/`` written as ``.``."""
    return case_name.replace("/", ".") + ".npz"


def describe_rule(rule: R.Rule) -> dict:
    """A rule as the manifest writes it: its class name and its parameters."""
    return {"rule": type(rule).__name__, **rule._parameters()}


def rule_from(entry: dict, where: str) -> R.Rule:
    """The rule a manifest entry names (see :func:`describe_rule`)."""
    parameters = dict(entry)
    name = parameters.pop("rule", None)
    if name not in RULE_CLASSES:
        raise LoadError(
            f"{where}: unknown rule {name!r}; the suite's rules are {', '.join(RULE_CLASSES)}"
        )
    try:
        return RULE_CLASSES[name](**parameters)
    except (TypeError, ValueError) as error:
        raise LoadError(f"{where}: bad parameters for {name}: {error}") from None


def _case_entry(case: Case, target: list[int], rules: dict, arrays: dict) -> dict:
    return {
        "name": case.name,
        "family": case.family,
        "convention": case.convention,
        "model": case.model,
        "input": f"{case.model}/{case.input}",
        "target": target,
        "method": case.method,
        "batch_norm": case.batch_norm if case.method == "LRP" else None,
        "output_relevance": case.output_relevance,
        "parameters": case.parameters,
        "absolute": case.absolute,
        "rules": {key: describe_rule(rule) for key, rule in rules.items()},
        "peer": case.peer,
        "tolerance": case.tolerance,
        "expected": f"expected/{file_name(case.name)}",
        "arrays": {name: list(a.shape) for name, a in arrays.items()},
    }


def export(folder: str | os.PathLike) -> Path:
    """Write the suite into ``folder`` (created; files already there are overwritten). Every
    expected relevance is computed by npxai's NumPy reference in float64. Returns the folder."""
    folder = Path(folder)
    for part in ("models", "inputs", "expected"):
        (folder / part).mkdir(parents=True, exist_ok=True)
    graphs, batches, manifest_inputs = {}, {}, {}
    models_entry = {}
    for name, model in MODELS.items():
        state = weights(model)
        graphs[name] = build(model, state)
        (folder / "models" / f"{name}.onnx").write_bytes(to_onnx(model, state))
        write_safetensors(folder / "models" / f"{name}.safetensors", state,
                          {"format": FORMAT, "model": name})  # fmt: skip
        models_entry[name] = {**model.describe(), "onnx": f"models/{name}.onnx",
                              "weights": f"models/{name}.safetensors"}  # fmt: skip
        arrays = {}
        for batch, (x, target) in inputs(model).items():
            batches[name, batch] = (x, target)
            arrays[batch] = x
            arrays[f"{batch}.smoothgrad_noise"] = smoothgrad_noise(x)
            manifest_inputs[f"{name}/{batch}"] = {
                "file": f"inputs/{name}.npz", "array": batch, "target": target,
                "smoothgrad_noise": f"{batch}.smoothgrad_noise"}  # fmt: skip
        write_npz(folder / "inputs" / f"{name}.npz", arrays)
    cases = []
    for case in all_cases():
        x, target = batches[case.model, case.input]
        arrays = relevances(case, graphs[case.model], x, target)
        rules = prepare(case, graphs[case.model]).rules if case.method == "LRP" else {}
        write_npz(folder / "expected" / file_name(case.name), arrays)
        cases.append(_case_entry(case, target, rules, arrays))
    write_json(folder / "manifest.json", {
        "format": FORMAT,
        "version": VERSION,
        "documentation": "docs/conformance.md of npxai",
        "dtype": "float64",
        "conventions": {c: {"library": LIBRARY[c], "text": CONVENTION_TEXT[c]} for c in CONVENTIONS},
        "relative_difference": "max |result - expected| / max |expected| over the array "
                               "(max |result| where expected is all zeros)",
        "smoothgrad": SMOOTHGRAD,
        "models": models_entry,
        "inputs": manifest_inputs,
        "cases": cases,
    })  # fmt: skip
    return folder


class Suite:
    """An exported suite, read from ``folder``: its manifest, models, inputs and expected
    results. A file of another format or version is a :class:`~npxai.errors.LoadError`."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        manifest = read_json(self.folder / "manifest.json")
        if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
            raise LoadError(
                f"{self.folder / 'manifest.json'}: a suite of format {manifest.get('format')!r} "
                f"version {manifest.get('version')!r}; this npxai reads {FORMAT!r} version {VERSION}"
            )
        for key, kind in (("models", dict), ("inputs", dict), ("cases", list)):
            if not isinstance(manifest.get(key), kind):
                raise LoadError(
                    f"{self.folder / 'manifest.json'}: {key!r} must be a JSON "
                    f"{'object' if kind is dict else 'array'}, got {type(manifest.get(key)).__name__}"
                )
        if not all(isinstance(case, dict) and isinstance(case.get("name"), str)
                   for case in manifest["cases"]):  # fmt: skip
            raise LoadError(
                f"{self.folder / 'manifest.json'}: every case must be an object with a name"
            )
        self.manifest = manifest
        self.cases: dict[str, dict] = {case["name"]: case for case in manifest["cases"]}
        self._graphs: dict = {}

    def model(self, name: str) -> Model:
        """The model as the manifest describes it."""
        return Model.from_description(name, self.manifest["models"][name])

    def graph(self, name: str):
        """The model as an :class:`npxai.Graph`, its weights read from its safetensors file."""
        if name not in self._graphs:
            path = self.folder / self.manifest["models"][name]["weights"]
            self._graphs[name] = build(self.model(name), load(path))
        return self._graphs[name]

    def batch(self, case: dict) -> tuple[np.ndarray, list[int], np.ndarray]:
        """The case's input batch, its targets and its SmoothGrad noise."""
        entry = self.manifest["inputs"][case["input"]]
        arrays = read_npz(self.folder / entry["file"])
        return arrays[entry["array"]], entry["target"], arrays[entry["smoothgrad_noise"]]

    def expected(self, case: dict) -> dict[str, np.ndarray]:
        """The case's expected arrays."""
        return read_npz(self.folder / case["expected"])

    def as_case(self, case: dict) -> Case:
        """The manifest's case as a :class:`Case` that npxai runs: its rules rebuilt from the
        manifest, one per layer."""
        composite = None
        if case["method"] == "LRP":
            where = f"{self.folder / 'manifest.json'}: case {case['name']}"
            composite = Composite(*((Keys(key), rule_from(rule, f"{where}, layer {key}"))
                                    for key, rule in case["rules"].items()), name=case["name"])  # fmt: skip
        family, _, convention = case["name"].rpartition("@")
        return Case(family, convention, case["model"], case["input"].split("/", 1)[1],
                    case["method"], case["peer"], composite=composite,
                    batch_norm=case["batch_norm"] or "folded",
                    output_relevance=case["output_relevance"],
                    parameters=case["parameters"], absolute=case["absolute"],
                    tolerance=case["tolerance"])  # fmt: skip


def write_results(
    folder: str | os.PathLike,
    implementation: str,
    results: dict[str, dict[str, np.ndarray]],
    not_run: dict[str, str],
) -> Path:
    """An implementation's results in the suite's result format: ``results.json`` (the format,
    the suite version, the implementation, the cases answered and those not run, with why) and
    per case ``<case>.npz`` with ``"input"`` and, where available, ``"layer/<node>"``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, arrays in results.items():
        write_npz(folder / file_name(name), {**arrays, "suite_version": np.array(VERSION)})
    write_json(folder / "results.json", {
        "format": RESULTS_FORMAT,
        "version": VERSION,
        "implementation": implementation,
        "cases": {name: file_name(name) for name in results},
        "not_run": not_run,
    })  # fmt: skip
    return folder


def npxai_results(suite: Suite, convention: str | None = None) -> dict[str, dict[str, np.ndarray]]:
    """npxai's own answers to the suite's cases (of one convention, or all), computed from the
    suite's files: the models rebuilt from the manifest and the safetensors weights, the rules
    from the manifest."""
    answers = {}
    for name, case in suite.cases.items():
        if convention is not None and case["convention"] != convention:
            continue
        x, target, _ = suite.batch(case)
        answers[name] = relevances(suite.as_case(case), suite.graph(case["model"]), x, target)
    return answers
