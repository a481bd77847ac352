"""npxai.conformance.checker: results compared with the suite, failures located and diagnosed.

The peers' results here are the suite's expected arrays of their cases (what npxai.compat
computes for each library, checked against the libraries by tests/test_lrp_{zennit,captum,
julia}.py); the diagnoses expected of them against npxai's convention are written from the
peers' source (/work/venv/lib/python3.11/site-packages/{zennit,captum}) and
npxai/compat/julia.py, as each test says, not from running the diagnosis.
"""

import dataclasses
import json
import shutil

import numpy as np
import pytest

from npxai.conformance.cases import relevances
from npxai.conformance.checker import check, relative_difference
from npxai.conformance.files import read_npz, write_json, write_npz
from npxai.conformance.suite import RESULTS_FORMAT, VERSION, file_name, npxai_results, write_results
from npxai.errors import LoadError
from npxai.lrp import rules as R
from npxai.lrp.composites import Composite, Keys


@pytest.fixture(scope="module")
def npxai_folder(conformance_suite, tmp_path_factory):
    """npxai's own results for every case of its convention, in the result format."""
    folder = tmp_path_factory.mktemp("results") / "npxai"
    return write_results(folder, "npxai", npxai_results(conformance_suite, "npxai"), {})


def peer_results(suite, folder, convention, names):
    """The expected arrays of ``names`` as a peer's results; its other cases listed as not run."""
    answered = {name: suite.expected(suite.cases[name]) for name in names}
    not_run = {n: "not in this test" for n, c in suite.cases.items()
               if c["convention"] == convention and n not in answered}  # fmt: skip
    return write_results(folder, convention, answered, not_run)


def by_name(report):
    return {case.name: case for case in report.cases}


def test_relative_difference():
    assert relative_difference(np.array([1.0, 2.5]), np.array([1.0, 2.0])) == 0.25
    assert relative_difference(np.array([[0.0, -3.0]]), np.zeros((1, 2))) == 3.0
    assert relative_difference(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_difference(np.array([-1.0, -4.0]), np.array([1.0, -4.0])) == 0.5


def test_npxai_passes_every_case(conformance_suite, npxai_folder):
    report = check(conformance_suite, npxai_folder)
    ours = [n for n, c in conformance_suite.cases.items() if c["convention"] == "npxai"]
    assert [c.name for c in report.cases] == ours
    assert report.passed and all(c.status == "pass" for c in report.cases)
    assert max(c.difference for c in report.cases) <= 1e-12
    summary = str(report).splitlines()[-1]
    assert summary == f"{len(ours)} cases: {len(ours)} passed, 0 failed, 0 errors, 0 not run"
    assert json.loads(json.dumps(report.to_json()))["passed"] is True


# What each peer's case computes differently from npxai's family case (npxai: npxai/lrp/rules.py
# defaults, epsilon 1e-6, max pooling by the gradient, sums and average pools by NormRule(1e-6),
# batch norms folded exactly, relevance 1 at the target), keyed (results, compared with); and
# npxai's results against a peer's convention, the same differences the other way round.
PEER_DIAGNOSES = {
    ("zennit", "npxai"): {
        # zennit/rules.py: Gamma is the "Generalized LRP Gamma rule", sign-aware; the stabilizer
        # 1e-6 and the rest of the layer map are npxai's.
        "conv/gamma/mixed": ("gamma/sign-aware",),
        # zennit/canonizers.py MergeBatchNorm.merge_batch_norm: "change batch_norm parameters to
        # produce identity" (mean 0, var 1, weight 1, bias 0) but keeps its eps.
        "batchnorm/epsilon/mixed": ("batch-norm/zennit",),
        # Epsilon(1e-6), Norm(1e-6) on average pools, max pooling unhooked: npxai's numbers.
        "conv/epsilon/mixed": None,
    },
    ("julia", "npxai"): {
        # ZPlusRule stabilised with LRP_DEFAULT_STABILIZER = 1.0f-9 (npxai/compat/julia.py).
        "dense/zplus/mixed": ("epsilon/float32(1e-09)",),
        # WSquareRule: no bias, stabiliser 1.0f-9.
        "dense/wsquare/mixed": ("wsquare/no-bias", "epsilon/float32(1e-09)"),
        # Unfolded batch norms passed through; EpsilonRule(EPSILON) on the convolutions and the
        # dense layer, ZeroRule (STABILIZER) on the pooling.
        "batchnorm/epsilon/mixed": ("batch-norm/unfolded-pass", "epsilon/julia"),
    },
    ("captum", "npxai"): {
        # captum/attr/_core/saliency.py: Saliency.attribute(..., abs: bool = True).
        "conv/gradient/mixed": ("absolute",),
        # captum/attr/_core/layer/grad_cam.py: LayerGradCam.attribute(...,
        # relu_attributions: bool = False): the signed map.
        "conv/gradcam/mixed": ("gradcam/no-relu",),
        # captum/attr/_utils/lrp_rules.py EpsilonRule(epsilon=1e-9); captum/attr/_core/lrp.py
        # multiplies the relevances by the output.
        "dense/epsilon/mixed": ("output/logit", "epsilon/1e-09"),
        # Alpha1_Beta0_Rule: weight.data.clamp(min=0), bias kept, STABILITY_FACTOR 1e-9.
        "dense/zplus/mixed": ("zplus/clamped", "output/logit", "epsilon/1e-09"),
        "conv/zplus/mixed": ("zplus/clamped", "max-pool/epsilon", "output/logit", "epsilon/1e-09"),
        # captum/attr/_core/lrp.py SUPPORTED_LAYERS_WITH_RULES: nn.MaxPool2d: EpsilonRule.
        "conv/epsilon/mixed": ("max-pool/epsilon", "output/logit", "epsilon/1e-09"),
        # a + b is no module (only Addition_Module is hooked): its gradient hands the full
        # relevance to both summands.
        "residual/epsilon/mixed": ("sum/gradient", "output/logit", "epsilon/1e-09"),
        # GammaRule._manipulate_weights: weight + gamma * weight.clamp(min=0), the bias kept.
        "dense/gamma/mixed": ("gamma/no-bias", "output/logit", "epsilon/1e-09"),
        # nn.BatchNorm2d: EpsilonRule, no canonizer.
        "batchnorm/epsilon/mixed": ("batch-norm/unfolded-epsilon", "output/logit", "epsilon/1e-09"),
    },
    ("npxai", "captum"): {
        "conv/gradient/mixed": ("signed",),
        "conv/epsilon/mixed": ("max-pool/gradient", "output/one", "epsilon/1e-06"),
        "residual/epsilon/mixed": ("sum/z-rule", "output/one", "epsilon/1e-06"),
        "batchnorm/epsilon/mixed": ("batch-norm/folded", "output/one", "epsilon/1e-06"),
        "dense/gamma/mixed": ("gamma/bias", "output/one", "epsilon/1e-06"),
        "dense/zplus/mixed": ("zplus/split-b+", "output/one", "epsilon/1e-06"),
    },
    ("npxai", "julia"): {
        "dense/wsquare/mixed": ("wsquare/bias", "epsilon/1e-06"),
        "batchnorm/epsilon/mixed": ("batch-norm/folded", "epsilon/1e-06"),
    },
}


@pytest.mark.parametrize(("peer", "against"), list(PEER_DIAGNOSES))
def test_peer_results_diagnosed_against_another_convention(conformance_suite, tmp_path, peer,
                                                           against):  # fmt: skip
    expected = PEER_DIAGNOSES[peer, against]
    names = [f"{family}@{peer}" for family in expected]
    folder = peer_results(conformance_suite, tmp_path / peer, peer, names)
    report = check(conformance_suite, folder, convention=against)
    assert report.to_json()["convention"] == against
    cases = by_name(report)
    assert not report.passed
    for family, diagnosis in expected.items():
        case = cases[f"{family}@{peer}"]
        assert case.compared_with == f"{family}@{against}"
        if diagnosis is None:
            assert case.status == "pass", case
            continue
        assert case.status == "fail", case
        assert case.difference > case.tolerance
        found = [tuple(v.name for v in match) for match in case.diagnosis]
        assert diagnosis in found, (family, found)
        assert {len(match) for match in found} == {len(diagnosis)}, found  # the fewest only
        entry = case.to_json()
        assert [v["name"] for v in entry["diagnosis"][found.index(diagnosis)]] == list(diagnosis)
    others = [c for c in report.cases if c.name not in names]
    assert others and all(c.status == "not run" for c in others)
    assert str(report).count("\nFAIL") == sum(d is not None for d in expected.values())


def test_quadrature_diagnosed(conformance_suite, tmp_path):
    """Left Riemann sums answering the right Riemann sums' case (both npxai's)."""
    family = "conv/integrated_gradients/{}/mixed@npxai"
    left = conformance_suite.expected(conformance_suite.cases[family.format("riemann_left")])
    answered = {family.format("riemann_right"): left}
    not_run = {n: "-" for n, c in conformance_suite.cases.items()
               if c["convention"] == "npxai" and n not in answered}  # fmt: skip
    report = check(conformance_suite, write_results(tmp_path / "ig", "ig", answered, not_run))
    case = by_name(report)[family.format("riemann_right")]
    assert case.status == "fail"
    assert [tuple(v.name for v in m) for m in case.diagnosis] == [("quadrature/riemann_left",)]


def test_peer_against_its_own_convention_passes(conformance_suite, tmp_path):
    names = ["conv/gamma/mixed@zennit", "batchnorm/epsilon/mixed@zennit"]
    folder = peer_results(conformance_suite, tmp_path / "zennit", "zennit", names)
    report = check(conformance_suite, folder)
    assert report.passed
    assert [c.status for c in report.cases if c.name in names] == ["pass", "pass"]


def sgn0(z):
    return np.where(z >= 0, 1.0, -1.0)


def alpha_beta_full_bias(x, w, b, r):
    """iNNvestigate's alpha=2, beta=1 as the notes state it: the full bias in both."""
    xp, xn, wp, wn = np.maximum(x, 0), np.minimum(x, 0), np.maximum(w, 0), np.minimum(w, 0)
    zp, zn = xp @ wp.T + xn @ wn.T + b, xp @ wn.T + xn @ wp.T + b
    sp, sn = r / (zp + 1e-6 * sgn0(zp)), r / (zn + 1e-6 * sgn0(zn))
    return 2 * (xp * (sp @ wp) + xn * (sp @ wn)) - (xp * (sn @ wn) + xn * (sn @ wp))


def zplus_no_bias(x, w, b, r):
    """z+ with the inputs split by sign and no bias (iNNvestigate's ZPlus, notes)."""
    xp, xn, wp, wn = np.maximum(x, 0), np.minimum(x, 0), np.maximum(w, 0), np.minimum(w, 0)
    z = xp @ wp.T + xn @ wn.T
    s = r / (z + 1e-6 * sgn0(z))
    return xp * (s @ wp) + xn * (s @ wn)


def epsilon_zero_stabilizer(x, w, b, r):
    """The epsilon rule stabilised only where z = 0, z + 1e-7 [z = 0] (iNNvestigate's, notes)."""
    z = x @ w.T + b
    return x * ((r / (z + 1e-7 * (z == 0))) @ w)


# Hand-written LRP on the dense model (Linear, ReLU, Linear, ReLU, Linear; relevance 1 at the
# target, passed through the ReLUs), each rule on every Linear, and the fewest variants expected.
HAND_WRITTEN = {
    "dense/alpha2beta1/mixed": (alpha_beta_full_bias, [("alpha-beta/full-bias",)]),
    "dense/zplus/mixed": (zplus_no_bias, [("zplus/split-no-bias",)]),
    # Only z = 0 is stabilised: LRP-0 where a zero denominator passes nothing (npxai's ZeroRule);
    # so is the clip stabiliser sgn0(z) max(|z|, 1e-6) where no |z| < 1e-6 but z = 0, whose unit
    # (fc1's silent one) gets no relevance from the ReLU input 0 it feeds.
    "dense/epsilon/mixed": (
        epsilon_zero_stabilizer,
        [("epsilon/0",), ("stabilizer/clip",), ("stabilizer/zero",)],
    ),
}


def test_hand_written_conventions_diagnosed(conformance_suite, tmp_path):
    from npxai.conformance.models import MODELS, weights

    state = weights(MODELS["dense"])
    answered = {}
    for family, (rule, _) in HAND_WRITTEN.items():
        entry = conformance_suite.cases[f"{family}@npxai"]
        x, target, _ = conformance_suite.batch(entry)
        layers = [(state[f"fc{k}.weight"], state[f"fc{k}.bias"]) for k in (1, 2, 3)]
        inputs = [x]
        for w, b in layers[:-1]:
            inputs.append(np.maximum(inputs[-1] @ w.T + b, 0))
        r = np.eye(3)[target]
        for (w, b), a in zip(layers[::-1], inputs[::-1], strict=True):
            r = rule(a, w, b, r)
        answered[f"{family}@npxai"] = {"input": r}  # no per-layer relevances
    not_run = {n: "-" for n, c in conformance_suite.cases.items()
               if c["convention"] == "npxai" and n not in answered}  # fmt: skip
    report = check(conformance_suite, write_results(tmp_path / "hand", "hand", answered, not_run))
    cases = by_name(report)
    for family, (_, diagnosis) in HAND_WRITTEN.items():
        case = cases[f"{family}@npxai"]
        assert case.status == "fail" and case.parting_layer is None, case
        assert [tuple(v.name for v in match) for match in case.diagnosis] == diagnosis
        assert "the relevances part at: not located (the results hold" in str(case)


class Negated(R.EpsilonRule):
    """The epsilon rule with the wrong sign."""

    def groups(self):
        return [R.Group([R.Term()], coefficient=-1.0)]


class Biasless(R.EpsilonRule):
    """The epsilon rule without the layer's bias in the denominator."""

    def groups(self):
        return [R.Group([R.Term(R.identity, R.identity, None)])]


class Dropped(R.EpsilonRule):
    """The epsilon rule that passes no relevance on."""

    def groups(self):
        return [R.Group([R.Term()], coefficient=0.0)]


BROKEN = {
    "conv/epsilon/mixed@npxai": ("conv2", Negated()),
    "dense/epsilon/mixed@npxai": ("fc2", Biasless()),
    "residual/epsilon/mixed@npxai": ("conv3", Dropped()),
}


def test_broken_implementation_caught_at_its_layer(conformance_suite, tmp_path):
    suite, answered = conformance_suite, {}
    for name, (layer, rule) in BROKEN.items():
        entry = suite.cases[name]
        case = suite.as_case(entry)
        broken = Composite(*case.composite.entries, (Keys(layer), rule))  # the later entry wins
        x, target, _ = suite.batch(entry)
        answered[name] = relevances(dataclasses.replace(case, composite=broken),
                                    suite.graph(entry["model"]), x, target)  # fmt: skip
    not_run = {n: "-" for n, c in suite.cases.items() if c["convention"] == "npxai"
               and n not in answered}  # fmt: skip
    report = check(suite, write_results(tmp_path / "broken", "broken", answered, not_run))
    cases = by_name(report)
    assert not report.passed
    for name, (layer, _) in BROKEN.items():
        case = cases[name]
        assert case.status == "fail" and case.parting_layer == layer, case
        assert case.diagnosis == []
        assert f"the relevances part at: {layer}" in str(case)
        assert "none of the known conventions" in str(case)


def test_bad_results_named_and_the_other_cases_still_checked(conformance_suite, npxai_folder,
                                                             tmp_path):  # fmt: skip
    folder = shutil.copytree(npxai_folder, tmp_path / "bad")
    results = json.loads((folder / "results.json").read_text())

    def rewrite(name, change):
        path = folder / file_name(name)
        arrays = read_npz(path)
        change(arrays)
        write_npz(path, arrays)

    rewrite("dense/epsilon/mixed@npxai", lambda a: a.update(input=a["input"][:1]))
    rewrite("dense/zplus/mixed@npxai", lambda a: a.update({"layer/fc2": np.ones((2, 8), int)}))
    rewrite("dense/gamma/mixed@npxai", lambda a: a["input"].__setitem__((0, 0), np.nan))
    rewrite("dense/flat/mixed@npxai", lambda a: a.update(suite_version=np.array([VERSION + 1])))
    rewrite("dense/wsquare/mixed@npxai", lambda a: a.update({"layer/nowhere": np.zeros(2)}))
    rewrite("dense/zero/mixed@npxai", lambda a: a.pop("input"))
    rewrite(
        "conv/flat/mixed@npxai", lambda a: [a.pop(k) for k in list(a) if k.startswith("layer/")]
    )
    (folder / file_name("dense/zbox/mixed@npxai")).unlink()
    del results["cases"]["conv/epsilon/mixed@npxai"]
    del results["cases"]["conv/zplus/mixed@npxai"]
    results["not_run"]["conv/zplus/mixed@npxai"] = "no z+ here"
    results["cases"]["nowhere/epsilon/mixed@npxai"] = "nowhere.npz"
    write_json(folder / "results.json", results)

    report = check(conformance_suite, folder)
    cases = by_name(report)
    expected_errors = {
        "dense/epsilon/mixed@npxai": ["'input'", "shape (1, 6), expected (2, 6)"],
        "dense/zplus/mixed@npxai": ["'layer/fc2'", "dtype int64"],
        "dense/gamma/mixed@npxai": ["'input'", "NaN or inf"],
        "dense/flat/mixed@npxai": ["suite_version [2]"],
        "dense/wsquare/mixed@npxai": ["'layer/nowhere'", "not one of the case's"],
        "dense/zero/mixed@npxai": ["no 'input' array"],
        "dense/zbox/mixed@npxai": ["no such file"],
        "conv/epsilon/mixed@npxai": ["missing"],
        "nowhere/epsilon/mixed@npxai": ["not a case of this suite"],
    }
    for name, parts in expected_errors.items():
        case = cases[name]
        assert case.status == "error", case
        for part in [*parts, *([file_name(name)] if name.startswith("dense") else [])]:
            assert part in case.message, (part, case.message)
        assert f"ERROR    {name}: " in str(report)
    assert cases["conv/zplus/mixed@npxai"].status == "not run"
    assert cases["conv/zplus/mixed@npxai"].message == "no z+ here"
    assert cases["conv/flat/mixed@npxai"].status == "pass"  # per-layer arrays are optional
    rest = [c for c in report.cases if c.name not in expected_errors]
    assert len(rest) == len(report.cases) - len(expected_errors)
    assert all(c.status in ("pass", "not run") for c in rest)
    assert not report.passed and report.counts()["error"] == len(expected_errors)
    assert report.cases[-1].name == "nowhere/epsilon/mixed@npxai"  # the suite's order, then others


def test_comparison_case_missing_from_the_suite(conformance_suite, tmp_path):
    name = "dense/zero/mixed@npxai"  # Captum has no LRP-0
    answered = {name: conformance_suite.expected(conformance_suite.cases[name])}
    not_run = {n: "-" for n, c in conformance_suite.cases.items()
               if c["convention"] == "npxai" and n != name}  # fmt: skip
    folder = write_results(tmp_path / "r", "npxai", answered, not_run)
    case = by_name(check(conformance_suite, folder, convention="captum"))[name]
    assert case.status == "error" and "no case dense/zero/mixed@captum" in case.message


def test_unreadable_results_file(conformance_suite, tmp_path):
    with pytest.raises(LoadError, match="results.json: no such file"):
        check(conformance_suite, tmp_path)
    for change, message in (
        ({"format": "other"}, "results of format 'other' version 1"),
        ({"version": VERSION + 1}, f"version {VERSION + 1}; this npxai checks"),
        ({"cases": ["a"]}, "'cases' must be an object of strings"),
        ({"implementation": None}, "'implementation' must be a string"),
    ):
        write_json(tmp_path / "results.json", {"format": RESULTS_FORMAT, "version": VERSION,
                                               "implementation": "x", "cases": {},
                                               "not_run": {}, **change})  # fmt: skip
        with pytest.raises(LoadError, match=message):
            check(conformance_suite, tmp_path)
    with pytest.raises(ValueError, match="convention must be one of npxai, zennit"):
        check(conformance_suite, tmp_path, convention="innvestigate")
