"""The conformance suite run through the peers themselves (npxai.conformance.peers): Zennit
0.5.1 and Captum 0.9 answer every case of their convention within the case's tolerance of the
suite's expected arrays (npxai.compat's reproduction of the peer), every layer's relevance
included; the torch models compute what npxai's do; the per-layer relevances read off the torch
graph are the peer's own (Captum's LayerLRP, the peer's input attribution)."""

import copy
import re

import numpy as np
import pytest
import torch

from npxai.conformance.checker import check
from npxai.conformance.peers import run
from npxai.conformance.suite import write_results
from npxai.conformance.torch_model import torch_model
from npxai.errors import StateDictError
from npxai.io import load

LIBRARIES = ("zennit", "captum")


def relative_difference(actual: np.ndarray, expected: np.ndarray) -> float:
    """``max |actual - expected| / max |expected|`` (``max |actual|`` where ``expected`` is all
    zeros; 0 where both are)."""
    scale = np.abs(expected).max(initial=0.0) or np.abs(actual).max(initial=0.0)
    return float(np.abs(actual - expected).max(initial=0.0) / scale) if scale else 0.0


@pytest.fixture(scope="module")
def answers(conformance_suite):
    """Each peer's answers to the suite, ``{library: (results, not_run)}``, and torch's global
    state before and after."""

    def state():
        return torch.get_default_dtype(), torch.is_grad_enabled(), torch.get_num_threads()

    before = state()
    made = {library: run(conformance_suite, library) for library in LIBRARIES}
    return made, before, state()


def weights_of(suite, name: str) -> dict:
    return load(suite.folder / suite.manifest["models"][name]["weights"])


@pytest.mark.parametrize("library", LIBRARIES)
def test_torch_model_computes_what_npxai_computes(conformance_suite, library):
    suite = conformance_suite
    for name in suite.manifest["models"]:
        module = torch_model(suite.model(name), weights_of(suite, name), library)
        graph = suite.graph(name)
        for entry in suite.manifest["inputs"]:
            if entry.split("/")[0] != name:
                continue
            x, _, _ = suite.batch({"input": entry})
            with torch.no_grad():
                theirs = module(torch.from_numpy(x)).numpy()
            assert theirs.dtype == np.float64
            assert relative_difference(theirs, graph(x)) <= 1e-12, (library, entry)


@pytest.mark.parametrize("library", LIBRARIES)
def test_peer_answers_every_case_of_its_convention_within_tolerance(
    conformance_suite, answers, library
):
    suite = conformance_suite
    results, not_run = answers[0][library]
    mine = {n for n, c in suite.cases.items() if c["peer"]["library"] == library}
    assert len(mine) > 100
    assert not_run == {}
    assert set(results) == mine
    failures = []
    for name, arrays in results.items():
        case = suite.cases[name]
        expected = suite.expected(case)
        assert set(arrays) == set(expected), name
        for key, value in expected.items():
            assert arrays[key].shape == value.shape, (name, key)
            assert arrays[key].dtype == np.float64, (name, key)
            difference = relative_difference(arrays[key], value)
            if difference > case["tolerance"]:
                failures.append(f"{name} {key}: {difference:.2e} > {case['tolerance']:.0e}")
    assert not failures, "\n".join(failures)


def test_run_leaves_torch_global_state_as_it_was(answers):
    _, before, after = answers
    assert after == before


@pytest.mark.parametrize("library", LIBRARIES)
def test_relevances_at_the_first_layers_add_up_to_the_peers_input_attribution(
    conformance_suite, answers, library
):
    """The relevance the runner reads off each view of the input (``retain_grad``, after the
    peer's hooks; Captum's times the logit) against the peer's own input attribution
    (``torch.autograd.grad`` of the input)."""
    suite = conformance_suite
    results, _ = answers[0][library]
    checked = 0
    for name, arrays in results.items():
        case = suite.cases[name]
        if case["method"] != "LRP":
            continue
        model = suite.model(case["model"])
        readers = [n.name for n in model.nodes if "input" in n.inputs]
        total = sum(arrays[f"layer/{n}"] for n in readers)
        assert relative_difference(total, arrays["input"]) <= 1e-12, name
        checked += len(readers) > 1  # the concat model's two branches
    assert checked >= 3


CAPTUM_LAYER_CASES = [
    f"{model}/{family}/mixed@captum"
    for model in ("dense", "conv", "batchnorm", "residual", "concat")
    for family in ("epsilon", "gamma", "zplus")
]


@pytest.mark.parametrize("name", CAPTUM_LAYER_CASES)
def test_captum_layer_relevances_are_captums_layer_lrp(conformance_suite, answers, name):
    """Captum's own per-layer relevances, ``LayerLRP(model, layers).attribute(x, target,
    attribute_to_layer_input=True)`` (its rules' recorded relevances times the output), at every
    layer with a rule, against the runner's."""
    from captum.attr import LayerLRP
    from captum.attr._utils import lrp_rules

    suite = conformance_suite
    case = suite.cases[name]
    module = torch_model(suite.model(case["model"]), weights_of(suite, case["model"]), "captum")
    layers = []
    for node, rule in case["peer"]["rules"].items():
        if rule is not None:
            module.layers[node].rule = getattr(lrp_rules, rule[0])(**rule[1])
            layers.append(node)
    x, target, _ = suite.batch(case)
    xt = torch.from_numpy(x).requires_grad_()
    theirs = LayerLRP(module, [module.layers[n] for n in layers]).attribute(
        xt, target=target, attribute_to_layer_input=True
    )
    results, _ = answers[0]["captum"]
    for node, relevance in zip(layers, theirs, strict=True):
        relevance = relevance[0] if isinstance(relevance, tuple) else relevance
        mine = results[name][f"layer/{node}"]
        assert relative_difference(mine, relevance.detach().numpy()) <= 1e-12, node


def test_torch_model_refuses_a_state_dict_that_does_not_fit_and_an_unknown_library(
    conformance_suite,
):
    suite = conformance_suite
    state = weights_of(suite, "dense")
    model = suite.model("dense")
    with pytest.raises(StateDictError, match=r"missing \['fc2.bias'\], unexpected \[\]"):
        torch_model(model, {k: v for k, v in state.items() if k != "fc2.bias"}, "zennit")
    with pytest.raises(StateDictError, match=r"unexpected \['fc9.weight'\]"):
        torch_model(model, {**state, "fc9.weight": state["fc1.weight"]}, "captum")
    with pytest.raises(ValueError, match="library must be one of zennit, captum, got 'julia'"):
        torch_model(model, state, "julia")
    with pytest.raises(ValueError, match="library must be one of zennit, captum, got 'npxai'"):
        run(suite, "npxai")


def _with_case(suite, name: str, **changes):
    """A copy of ``suite`` holding only case ``name``, its ``peer`` entry updated."""
    case = copy.deepcopy(suite.cases[name])
    case["peer"].update(changes)
    changed = copy.copy(suite)
    changed.cases = {name: case}
    return changed


def test_cases_the_runner_cannot_compute_are_not_run_with_the_reason(conformance_suite):
    suite = conformance_suite
    name = "conv/epsilon/mixed@zennit"
    rules = suite.cases[name]["peer"]["rules"]
    for library, changed, reason in [
        ("zennit", _with_case(suite, name, rules={**rules, "flatten": ["Epsilon", {}]}),
         r"node flatten: a Flatten is no module here, so it takes no rule \['Epsilon', \{\}\]"),
        ("zennit", _with_case(suite, name, rules={**rules, "fc": ["Bogus", {}]}),
         "node fc: zennit.rules has no rule 'Bogus'"),
        ("zennit", _with_case(suite, name, rules={"fc": ["Epsilon", {}]}),
         r"peer\['rules'\] names \['fc'\], not the model's nodes"),
        ("zennit", _with_case(suite, "conv/preset/EpsilonPlus/mixed@zennit", composite="Oops"),
         "zennit.composites has no composite 'Oops'"),
        ("captum", _with_case(suite, "conv/gradient/mixed@captum", method="DeepLift"),
         "no captum runner for method 'DeepLift'"),
        ("captum", _with_case(suite, "conv/epsilon/mixed@captum",
                              rules={**suite.cases["conv/epsilon/mixed@captum"]["peer"]["rules"],
                                     "pool1": None}),
         "node pool1: Captum cannot leave a MaxPool2d without a rule"),
    ]:  # fmt: skip
        results, not_run = run(changed, library)
        assert results == {}
        ((case, why),) = not_run.items()
        assert case in changed.cases
        assert re.search(reason, why), why


@pytest.mark.parametrize("library", LIBRARIES)
def test_the_peers_own_results_are_diagnosed_against_npxai(conformance_suite, answers, library,
                                                           tmp_path):  # fmt: skip
    """The diagnoses written from the peers' source (test_conformance_check.PEER_DIAGNOSES), now
    of the peers' own answers; and a peer's different rule map (Captum's ``LRP(model)``), which no
    variant explains, named by the suite's case it equals."""
    from test_conformance_check import PEER_DIAGNOSES

    expected = dict(PEER_DIAGNOSES[library, "npxai"])
    if library == "captum":
        expected["conv/lrp_default/mixed"] = ()
    results, _ = answers[0][library]
    chosen = {f"{family}@{library}": results[f"{family}@{library}"] for family in expected}
    not_run = {name: "not in this test" for name in results if name not in chosen}
    folder = write_results(tmp_path, f"{library} (the peer)", chosen, not_run)
    report = check(conformance_suite, folder, convention="npxai")
    cases = {case.name: case for case in report.cases}
    for family, diagnosis in expected.items():
        case = cases[f"{family}@{library}"]
        assert case.compared_with == f"{family}@npxai"
        if diagnosis is None:
            assert case.status == "pass", case
            continue
        assert case.status == "fail", case
        found = [tuple(v.name for v in match) for match in case.diagnosis]
        if diagnosis:
            assert diagnosis in found and {len(m) for m in found} == {len(diagnosis)}, found
        else:
            assert found == [] and "conv/epsilon/mixed@captum" in case.equal_to, case
            assert "equal to the suite's conv/epsilon/mixed@captum" in str(case)


def torch_gradient(module, x: np.ndarray, target: list[int]) -> np.ndarray:
    """Plain autograd: the gradient of the target logits' sum with respect to ``x``."""
    inputs = torch.from_numpy(x).requires_grad_(True)
    output = module(inputs)
    output[torch.arange(len(x)), torch.tensor(target)].sum().backward()
    return inputs.grad.numpy()


def test_gradient_family_cases_are_torch_autograd(conformance_suite):
    """The npxai-convention gradient cases, recomputed with plain torch autograd: Gradient and
    Input x Gradient; SmoothGrad as the mean gradient at the inputs plus the noise stored with the
    inputs (so the file's noise is what the expected values were made with); LRP-0 from relevance 1
    at the target is Input x Gradient over the target's logit, on every suite model: ReLU networks
    whose max pooling takes the gradient and whose sums and average pools the z-rule, biases or
    not (by induction from the output, ``R = a * df/da`` at every layer; a bias absorbs relevance
    as Input x Gradient leaves it out): exactly on the dense models, up to the stabiliser of the
    sums' and average pools' NormRule (epsilon 1e-6) on the others."""
    suite = conformance_suite
    for name, case in suite.cases.items():
        if case["convention"] != "npxai" or case["method"] not in (
                "Gradient", "InputTimesGradient", "SmoothGrad") and case["family"].split("/")[1] != "zero":  # fmt: skip
            continue
        module = torch_model(suite.model(case["model"]), weights_of(suite, case["model"]), "zennit")
        x, target, noise = suite.batch(case)
        expected = suite.expected(case)["input"]
        if case["method"] == "SmoothGrad":
            assert len(noise) == case["parameters"]["n"]
            computed = np.mean([torch_gradient(module, x + e, target) for e in noise], axis=0)
        elif case["method"] == "Gradient":
            computed = torch_gradient(module, x, target)
        else:
            computed = x * torch_gradient(module, x, target)
        if case["method"] == "LRP":
            with torch.no_grad():
                logits = module(torch.from_numpy(x)).numpy()[np.arange(len(x)), target]
            logits = logits.reshape(-1, *(1,) * (x.ndim - 1))  # a zero logit passes nothing
            computed = np.divide(computed, logits, out=np.zeros_like(computed), where=logits != 0)
        exact = case["method"] != "LRP" or case["model"].startswith("dense")
        assert relative_difference(computed, expected) <= (1e-12 if exact else 1e-3), name
