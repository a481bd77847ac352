"""The house of LRP: no import circle (lazy imports counted), one table of layer kinds from which the rules' layers, the
defaults and the error messages come, explicit registries of rules and presets, rule equality by
value, and the walk that stops at a layer."""

import ast
import inspect
from pathlib import Path

import numpy as np
import pytest

import npxai
import npxai.methods
from npxai import layers as L
from npxai.errors import LRPCompatibilityError
from npxai.lrp import composites as C
from npxai.lrp import kinds
from npxai.lrp import rules as R
from npxai.module import Layer, keys_within, leaf_key, vjp_step

ROOT = Path(__file__).resolve().parent.parent


def module_name(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    parts = list(relative.parts)
    if parts[0] == "kernels":  # installed as npxai.kernels
        parts = ["npxai", *parts]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def statements(tree: ast.AST):
    """Every node of ``tree`` but those under ``if TYPE_CHECKING:`` (which never run)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            continue
        yield node
        yield from statements(node)


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """The npxai modules that ``path`` imports, when it is loaded or inside a function (a lazy
    import back is a circle all the same). ``from a import b`` imports module ``a.b`` if there is
    one, else the name ``b`` of module ``a``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in statements(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            target = (
                (f"{base}.{node.module}" if node.module else base) if node.level else node.module
            )
            for alias in node.names:
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in known else target)
    modules = set()
    for target in found:
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != name:
            modules.add(target)
    return modules


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every circle a depth-first walk of ``graph`` meets (each once, from where it was met)."""
    found, state = [], {}  # state: 1 on the current path, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                found.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_the_package_has_no_import_circle():
    files = [*ROOT.joinpath("npxai").rglob("*.py"), *ROOT.joinpath("kernels").rglob("*.py")]
    names = {module_name(p): p for p in files}
    graph = {name: imports_of(path, name, set(names)) for name, path in names.items()}
    assert "npxai.kernels.cpu.lrp" in graph["npxai.backend"]  # imported where first used
    found = circles(graph)
    assert not found, "\n".join(" -> ".join(c) for c in found)


def test_the_circle_finder_sees_a_circle(tmp_path):
    """The test above can fail: npxai.lrp.step imports npxai.layers; were layers to import the
    step back, that would be a circle."""
    step = ROOT / "npxai" / "lrp" / "step.py"
    known = {"npxai", "npxai.layers", "npxai.lrp", "npxai.lrp.step", "npxai.lrp.rules"}
    graph = {"npxai.lrp.step": imports_of(step, "npxai.lrp.step", known)}
    assert "npxai.layers" in graph["npxai.lrp.step"]
    fake = tmp_path / "layers.py"
    fake.write_text("from .lrp import step\n")
    graph["npxai.layers"] = imports_of(fake, "npxai.layers", known)
    graph.update({k: set() for k in known - set(graph)})
    assert circles(graph) == [["npxai.layers", "npxai.lrp.step", "npxai.layers"]]


def test_every_layer_lrp_takes_is_in_one_kind_and_has_a_default_rule():
    every = [cls for _, cls in inspect.getmembers(L, inspect.isclass)
             if issubclass(cls, Layer) and cls.__module__ == L.__name__
             and not cls.__name__.startswith("_")]  # fmt: skip
    assert set(every) <= set(kinds.SUPPORTED)
    for cls in set(kinds.SUPPORTED) - {L.Softmax}:
        layer = {L.Linear: lambda: L.Linear(2, 2), L.Conv2d: lambda: L.Conv2d(1, 1, 1),
                 L.MaxPool2d: lambda: L.MaxPool2d(2), L.AvgPool2d: lambda: L.AvgPool2d(2),
                 L.AdaptiveAvgPool2d: lambda: L.AdaptiveAvgPool2d(1),
                 L.BatchNorm1d: lambda: L.BatchNorm1d(2),
                 L.BatchNorm2d: lambda: L.BatchNorm2d(2), L.Permute: lambda: L.Permute([0, 1]),
                 L.Reshape: lambda: L.Reshape((-1,)), L.Mean: lambda: L.Mean(1),
                 L.LayerNorm: lambda: L.LayerNorm(2), L.RMSNorm: lambda: L.RMSNorm(2),
                 L.LayerNorm2d: lambda: L.LayerNorm2d(2), L.ZeroPad2d: lambda: L.ZeroPad2d(1),
                 L.ConstantPad2d: lambda: L.ConstantPad2d(1, 0.5),
                 L.Upsample: lambda: L.Upsample(scale_factor=2), L.Slice: lambda: L.Slice(1, 1),
                 L.Select: lambda: L.Select(1, 0),
                 L.MultiheadAttention: lambda: L.MultiheadAttention(4, 2)}.get(cls, cls)()  # fmt: skip
        rule = C.default_rule(layer)
        assert rule is not None and rule.supports(layer), cls
        assert type(rule).__name__ in R.rules_for(layer)
    assert C.default_rule(L.Softmax(1)) is None  # a composite must name it (or strip it)


def test_the_registries_hold_every_rule_and_preset():
    concrete = {cls for _, cls in inspect.getmembers(R, inspect.isclass)
                if issubclass(cls, R.Rule) and cls.__module__ == R.__name__
                and cls not in (R.Rule, R.LinearRule) and not cls.__name__.startswith("_")}  # fmt: skip
    assert set(R.RULES) == concrete and len(R.RULES) == len(concrete)
    functions = {name for name, f in inspect.getmembers(C, inspect.isfunction)
                 if f.__module__ == C.__name__ and name[0].isupper()}  # fmt: skip
    assert set(C.PRESETS) == functions
    assert npxai.methods.presets() == C.PRESETS
    assert list(npxai.methods.rule_classes().values()) == list(R.RULES)


def test_which_rules_a_layer_takes_comes_from_the_rules():
    assert R.rules_for(L.Softmax(1)) == ["GradientRule", "SoftmaxRule"]
    assert R.rules_for(L.ReLU()) == ["GradientRule", "PassRule"]
    assert R.rules_for(L.Add()) == ["NormRule", "EpsilonRule", "ZeroRule", "GradientRule"]
    assert "ZBoxRule" in R.rules_for(L.Linear(2, 2))

    class Mine(R.LinearRule):  # a new rule: its formula and the kinds it takes, one place
        layers = kinds.PARAMETRIC + kinds.AVERAGE_POOLS

        def __init__(self):
            super().__init__(0.0, "sign")

        def groups(self):
            return [R.Group([R.Term(R.positive, R.identity, None)])]

    assert Mine.supports(L.AvgPool2d(2)) and not Mine.supports(L.MaxPool2d(2))
    model = npxai.Sequential(L.Conv2d(1, 2, 3), L.ReLU(), L.AvgPool2d(2), L.Flatten())
    x = np.random.default_rng(0).random((1, 1, 6, 6))
    for backend in ("numpy", "numba"):
        e = npxai.LRP(model, C.Composite((C.ByType(L.Conv2d, L.AvgPool2d), Mine())),
                      backend=backend)(x, target=0)  # fmt: skip
        assert np.isfinite(e.attribution).all()


def test_a_layer_without_a_rule_it_takes_is_a_typed_error():
    model = npxai.Sequential(L.Linear(3, 2), L.ReLU(), L.Softmax(1))
    with pytest.raises(LRPCompatibilityError) as error:
        npxai.LRP(model, C.Composite((C.ByType(L.ReLU), R.FlatRule())))
    assert isinstance(error.value, ValueError)
    assert (error.value.key, error.value.layer_type) == ("1", "ReLU")
    assert error.value.rule == R.FlatRule() and error.value.takes == ["GradientRule", "PassRule"]
    with pytest.raises(LRPCompatibilityError, match=r"no rule covers layer '2' \(Softmax\)") as e:
        npxai.LRP(model)
    assert e.value.rule is None and "Linear, Conv2d, MaxPool2d" in str(e.value)


def test_rules_are_equal_by_their_parameter_values():
    low = np.zeros((3, 1, 1))
    assert R.ZBoxRule(low, 1.0) == R.ZBoxRule(low.copy(), 1.0)
    assert R.ZBoxRule(low, 1.0) != R.ZBoxRule(low - 1, 1.0)  # same shape, other values
    assert R.ZBoxRule(low, 1.0) != R.ZBoxRule(0.0, 1.0)
    assert hash(R.ZBoxRule(low, 1.0)) == hash(R.ZBoxRule(low.copy(), 1.0))
    assert R.GammaRule(0.25) == R.GammaRule(0.25) and R.GammaRule(0.25) != R.GammaRule(0.5)
    assert R.EpsilonRule() != R.NormRule()  # one formula, two rules
    assert (
        repr(R.ZBoxRule(low, 1.0))
        == "ZBoxRule(low=array(3, 1, 1), high=1.0, epsilon=1e-06, stabilizer='sign')"
    )
    assert len({R.GammaRule(), R.GammaRule(), R.ZeroRule()}) == 2


def test_the_walk_stops_at_a_layer_and_leaf_keys_name_containers_by_their_last_leaf():
    model = npxai.Sequential(L.Linear(4, 3), npxai.Sequential(L.ReLU(), L.Linear(3, 2)))
    x = np.random.default_rng(1).standard_normal((2, 4))
    trace = model.trace(x, "numpy")
    seed = np.ones((2, 2))
    at_relu = model.backward_to(trace, seed, vjp_step("numpy"), "1.0")
    np.testing.assert_allclose(at_relu, seed @ model[1][1].weight)  # at its output: unmasked
    assert leaf_key(model, "1", "T") == "1.1" and leaf_key(model, -3, "T", index=True) == "0"
    assert keys_within("1", ["0", "1.0", "1.1", "10"]) == ["1.0", "1.1"]
    with pytest.raises(ValueError, match="T: the model has no layer '2'; its layers include 0, 1"):
        leaf_key(model, "2", "T")
    with pytest.raises(ValueError, match="the backward walk never reached layer 'nowhere'"):
        model.backward_to(trace, seed, vjp_step("numpy"), "nowhere")
