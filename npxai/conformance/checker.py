"""Another implementation's results checked against the suite, and each failure diagnosed.

:func:`check` reads a results folder in the suite's result format (``results.json`` and one
``.npz`` per case, :func:`npxai.conformance.suite.write_results`) and compares, case by case,
every array it holds with the expected one by :func:`relative_difference`; a case passes where
the largest difference is within the case's tolerance (the manifest's ``tolerance``, of the
case the results answer). For a failure it names the *parting layer*: walking the model's nodes
from the output, the first whose input relevance differs (its output relevance, what its
consumers pass back, still agrees), among the layers the results hold; and the *diagnosis*:
npxai recomputes the compared case under every known convention (:mod:`.variants`), single
ones, then pairs, and so on up to :data:`~.variants.MOST` of them, and names every combination
of the smallest size that reproduces the results within the tolerance (in the order of
:data:`~.variants.VARIANTS`), or none.

``convention`` (the command line's ``--convention``; any of the suite's conventions) compares
each result with its family's case in that convention instead of the case it answers: with
``"npxai"``, ``family@npxai``, so that a Zennit result is explained against npxai's convention.
A family the convention lacks is an error of that case.

Bad input is reported per case, the other cases still checked: a results file that names a case
the suite lacks, lists it as both answered and not run, or whose ``.npz`` is unreadable, lacks
``"input"``, has an array the case does not have, of another shape, not floating-point, with
NaN or inf, or another ``suite_version``; every case of the results' conventions that they
neither answer nor list as not run is ``missing``. A ``results.json`` that cannot be read, or of
another format or version, is a :class:`~npxai.errors.LoadError`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import LoadError
from .cases import CONVENTIONS, relevances
from .files import read_json, read_npz
from .suite import RESULTS_FORMAT, VERSION, Suite
from .variants import MOST, Variant, combinations

#: The format name of :meth:`Report.to_json`.
CHECK_FORMAT = "npxai-conformance-check"


def relative_difference(result: np.ndarray, expected: np.ndarray) -> float:
    """``max |result - expected| / max |expected|`` over the array; ``max |result|`` where
    ``expected`` is all zeros (the manifest's ``relative_difference``)."""
    result, expected = np.asarray(result, np.float64), np.asarray(expected, np.float64)
    difference = float(np.abs(result - expected).max(initial=0.0))
    scale = float(np.abs(expected).max(initial=0.0))
    return difference / scale if scale > 0 else difference


@dataclass
class CaseReport:
    """One case's outcome. ``status`` is ``"pass"``, ``"fail"``, ``"error"`` or ``"not run"``;
    ``compared_with`` the suite case whose expected arrays the results were compared with;
    ``difference`` the largest :func:`relative_difference` over the arrays, within ``tolerance``
    for a pass; for a failure ``parting_layer`` (``None`` where the results hold no layer that
    differs) and ``diagnosis``, every matching combination of variants (empty: none of the known
    conventions), and where none matches ``equal_to``, the suite's other cases of the same model
    and input whose expected arrays the results equal (another rule map, another method);
    ``message`` the error, or why the case was not run."""

    name: str
    status: str
    compared_with: str | None = None
    difference: float | None = None
    tolerance: float | None = None
    parting_layer: str | None = None
    diagnosis: list[tuple[Variant, ...]] = field(default_factory=list)
    equal_to: list[str] = field(default_factory=list)
    message: str | None = None

    def to_json(self) -> dict:
        """The case as ``--json`` writes it: a failure's diagnosis as lists of ``{name, text}``."""
        entry = {
            "name": self.name,
            "status": self.status,
            "compared_with": self.compared_with,
            "difference": self.difference,
            "tolerance": self.tolerance,
        }
        if self.status == "fail":
            entry["parting_layer"] = self.parting_layer
            entry["diagnosis"] = [[{"name": v.name, "text": v.text} for v in match]
                                  for match in self.diagnosis]  # fmt: skip
            entry["equal_to"] = self.equal_to
        if self.message is not None:
            entry["message"] = self.message
        return entry

    def __str__(self) -> str:
        head = f"{self.status.upper():<8} {self.name}"
        if self.status in ("error", "not run"):
            return f"{head}: {self.message}"
        against = "" if self.compared_with == self.name else f" against {self.compared_with}"
        line = f"{head}  (difference {self.difference:.3g}{against})"
        if self.status == "pass":
            return line
        layer = (
            self.parting_layer or "not located (the results hold no layer relevance that differs)"
        )
        lines = [line, f"         the relevances part at: {layer}"]
        if not self.diagnosis:
            lines.append("         diagnosis: none of the known conventions")
        if self.equal_to:
            lines.append(f"         equal to the suite's {', '.join(self.equal_to)}")
        for k, match in enumerate(self.diagnosis):
            lead = "diagnosis:" if k == 0 else "       or:"
            lines.append(f"         {lead} {' + '.join(v.name for v in match)}")
        named = {v.name: v.text for match in self.diagnosis for v in match}
        lines += [f"           {name}: {text}" for name, text in named.items()]
        return "\n".join(lines)


@dataclass
class Report:
    """The outcome of :func:`check`: the cases in the suite's order (then those the suite lacks);
    ``passed`` is whether none failed or had an error."""

    suite: str
    implementation: str
    convention: str | None
    cases: list[CaseReport]

    @property
    def passed(self) -> bool:
        return all(case.status in ("pass", "not run") for case in self.cases)

    def case(self, name: str) -> CaseReport:
        """The report of the case ``name``."""
        found = [case for case in self.cases if case.name == name]
        if not found:
            raise KeyError(f"the report has no case {name!r}")
        return found[0]

    def counts(self) -> dict[str, int]:
        """How many cases have each status."""
        statuses = ("pass", "fail", "error", "not run")
        return {s: sum(case.status == s for case in self.cases) for s in statuses}

    def to_json(self) -> dict:
        """The report as ``--json`` writes it: format, suite, implementation, convention,
        ``passed``, the counts and every case (:meth:`CaseReport.to_json`)."""
        return {
            "format": CHECK_FORMAT,
            "version": VERSION,
            "suite": self.suite,
            "implementation": self.implementation,
            "convention": self.convention,
            "passed": self.passed,
            "counts": self.counts(),
            "cases": [case.to_json() for case in self.cases],
        }

    def __str__(self) -> str:
        against = f", compared with {self.convention}'s convention" if self.convention else ""
        head = (
            f"npxai check: {self.implementation}'s results against the suite {self.suite}{against}"
        )
        counts = self.counts()
        summary = (f"{len(self.cases)} cases: {counts['pass']} passed, {counts['fail']} failed, "
                   f"{counts['error']} errors, {counts['not run']} not run")  # fmt: skip
        return "\n".join([head, *(str(case) for case in self.cases), summary])


def _read_results(folder: Path) -> dict:
    """``results.json`` of ``folder``, its format, version and entries checked."""
    path = folder / "results.json"
    results = read_json(path)
    if results.get("format") != RESULTS_FORMAT or results.get("version") != VERSION:
        raise LoadError(
            f"{path}: results of format {results.get('format')!r} version "
            f"{results.get('version')!r}; this npxai checks {RESULTS_FORMAT!r} version {VERSION}"
        )
    if not isinstance(results.get("implementation"), str):
        raise LoadError(f"{path}: 'implementation' must be a string")
    for key in ("cases", "not_run"):
        entries = results.get(key)
        if not isinstance(entries, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in entries.items()
        ):
            raise LoadError(f"{path}: {key!r} must be an object of strings (case name: "
                            + ("file)" if key == "cases" else "reason)"))  # fmt: skip
    return results


def _problems(arrays: dict[str, np.ndarray], shapes: dict[str, list[int]], where: str) -> list[str]:
    """What is wrong with a case's result arrays, each naming the file and the array; the
    ``suite_version`` entry is taken out of ``arrays``."""
    problems = []
    version = arrays.pop("suite_version", None)
    if version is None:
        problems.append(f"{where}: no 'suite_version' array")
    elif version.size != 1 or version.dtype.kind not in "iu" or int(version.item()) != VERSION:
        problems.append(
            f"{where}: suite_version {version.tolist()!r}, expected one integer, {VERSION}"
        )
    if "input" not in arrays:
        problems.append(f"{where}: no 'input' array")
    for name, array in arrays.items():
        if name not in shapes:
            problems.append(f"{where}: array {name!r} is not one of the case's "
                            f"({', '.join(shapes)})")  # fmt: skip
        elif list(array.shape) != shapes[name]:
            problems.append(f"{where}: array {name!r} has shape {tuple(array.shape)}, expected "
                            f"{tuple(shapes[name])}")  # fmt: skip
        elif array.dtype.kind != "f":
            problems.append(f"{where}: array {name!r} has dtype {array.dtype}, expected a "
                            "floating-point dtype")  # fmt: skip
        elif not np.isfinite(array).all():
            problems.append(f"{where}: array {name!r} holds NaN or inf")
    return problems


def _parting_layer(suite: Suite, entry: dict, differences: dict, tolerance: float) -> str | None:
    """The first node from the output whose input relevance differs, among those held."""
    for node in reversed(suite.manifest["models"][entry["model"]]["nodes"]):
        name = node["name"]
        held = [d for key, d in differences.items() if key == f"layer/{name}"
                or key.startswith(f"layer/{name}/")]  # fmt: skip
        if any(d > tolerance for d in held):
            return name
    return None


class _Checker:
    """One check's suite and what it reads once: the input batches."""

    def __init__(self, suite: Suite):
        self.suite = suite
        self._batches: dict[str, tuple] = {}

    def batch(self, entry: dict) -> tuple[np.ndarray, list[int]]:
        if entry["input"] not in self._batches:
            self._batches[entry["input"]] = self.suite.batch(entry)
        x, target, _ = self._batches[entry["input"]]
        return x, target

    def diagnose(self, entry: dict, arrays: dict, tolerance: float) -> list[tuple[Variant, ...]]:
        """Every combination of the fewest variants under which the case ``entry`` computes
        ``arrays`` (within ``tolerance``)."""
        case = self.suite.as_case(entry)
        model = self.suite.model(entry["model"])
        graph = self.suite.graph(entry["model"])
        x, target = self.batch(entry)
        for size in range(1, MOST + 1):
            matches = []
            for chosen, changed in combinations(case, model, size):
                computed = relevances(changed, graph, x, target)
                if all(name in computed and relative_difference(a, computed[name]) <= tolerance
                       for name, a in arrays.items()):  # fmt: skip
                    matches.append(chosen)
            if matches:
                return matches
        return []

    def equal_cases(self, entry: dict, arrays: dict, tolerance: float) -> list[str]:
        """The suite's other cases of ``entry``'s model and input whose expected arrays
        ``arrays`` equal (within ``tolerance``)."""
        return [
            name
            for name, other in self.suite.cases.items()
            if other["input"] == entry["input"] and name != entry["name"]
            and other["arrays"].keys() >= arrays.keys()
            and all(list(a.shape) == other["arrays"][key] for key, a in arrays.items())
            and all(relative_difference(a, self.suite.expected(other)[key]) <= tolerance
                    for key, a in arrays.items())
        ]  # fmt: skip

    def case(self, name: str, file: str, folder: Path, convention: str | None) -> CaseReport:
        entry = self.suite.cases[name]
        compared = name if convention is None else f"{entry['family']}@{convention}"
        if compared not in self.suite.cases:
            return CaseReport(name, "error", message=f"the suite has no case {compared} to "
                              f"compare it with (convention {convention!r})")  # fmt: skip
        target = self.suite.cases[compared]
        where = f"case {name}, file {folder / file}"
        try:
            arrays = read_npz(folder / file)
        except LoadError as error:
            return CaseReport(name, "error", compared, message=f"case {name}: {error}")
        problems = _problems(arrays, target["arrays"], where)
        if problems:
            return CaseReport(name, "error", compared, message="; ".join(problems))
        tolerance = entry["tolerance"]
        expected = self.suite.expected(target)
        differences = {key: relative_difference(a, expected[key]) for key, a in arrays.items()}
        difference = max(differences.values())
        if difference <= tolerance:
            return CaseReport(name, "pass", compared, difference, tolerance)
        diagnosis = self.diagnose(target, arrays, tolerance)
        return CaseReport(name, "fail", compared, difference, tolerance,
                          _parting_layer(self.suite, target, differences, tolerance), diagnosis,
                          [] if diagnosis else self.equal_cases(target, arrays, tolerance))  # fmt: skip


def check(
    suite: Suite | str | os.PathLike,
    results: str | os.PathLike,
    convention: str | None = None,
    model: str | None = None,
) -> Report:
    """Check the results in folder ``results`` against ``suite`` (a :class:`Suite` or its
    folder), each compared with the case it answers or, with ``convention``, with its family's
    case in that convention; ``model`` (a model of the suite) checks that model's cases only.
    Returns the :class:`Report`; see the module docstring."""
    if convention is not None and convention not in CONVENTIONS:
        raise ValueError(f"check: convention must be one of {', '.join(CONVENTIONS)} or None, "
                         f"got {convention!r}")  # fmt: skip
    suite = suite if isinstance(suite, Suite) else Suite(suite)
    if model is not None and model not in suite.manifest["models"]:
        raise ValueError(f"check: the suite has no model {model!r}; its models are "
                         f"{', '.join(suite.manifest['models'])}")  # fmt: skip
    folder = Path(results)
    read = _read_results(folder)
    answered, not_run = read["cases"], read["not_run"]
    checker, reports = _Checker(suite), {}

    def chosen(name: str) -> bool:
        return model is None or name not in suite.cases or suite.cases[name]["model"] == model

    for name in filter(chosen, [*answered, *not_run]):
        if name not in suite.cases:
            reports[name] = CaseReport(name, "error", message=f"{folder / 'results.json'}: "
                                       f"{name!r} is not a case of this suite")  # fmt: skip
        elif name in answered and name in not_run:
            reports[name] = CaseReport(name, "error", message=f"{folder / 'results.json'}: "
                                       f"{name!r} is both answered and listed as not run")  # fmt: skip
        elif name in not_run:
            reports[name] = CaseReport(name, "not run", message=not_run[name])
        else:
            reports[name] = checker.case(name, answered[name], folder, convention)
    conventions = {suite.cases[n]["convention"] for n in reports if n in suite.cases}
    for name, entry in suite.cases.items():
        if entry["convention"] in conventions and name not in reports and chosen(name):
            reports[name] = CaseReport(name, "error", message="missing: the results neither "
                                       "answer it nor list it as not run")  # fmt: skip
    order = {name: k for k, name in enumerate(suite.cases)}
    ordered = sorted(reports.values(), key=lambda r: order.get(r.name, len(order)))
    return Report(str(suite.folder), read["implementation"], convention, ordered)
