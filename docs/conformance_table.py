"""The table of peer results in docs/conformance.md.

Exports the suite into a temporary folder, runs it through npxai, Zennit and Captum (as
``npxai conformance run`` does), checks each implementation's results in its own convention and
against npxai's (as ``npxai check`` does), and prints the table; ``--write`` puts it into
``docs/conformance.md`` between its markers. RelevancePropagation.jl's column is the suite's own
``@julia`` expected arrays (what ``npxai.compat.julia`` computes; there is no Julia here) checked
against npxai's convention::

    python docs/conformance_table.py [--write]
"""

from __future__ import annotations

import argparse
import collections
import tempfile
from pathlib import Path

from npxai.conformance import Suite, check, export, run, write_results

DOC = Path(__file__).with_name("conformance.md")
BEGIN = "<!-- the peer table: python docs/conformance_table.py --write -->"
END = "<!-- end of the peer table -->"


def method_of(family: str) -> str:
    """A family's method or rule: ``conv/preset/EpsilonPlus/mixed`` -> ``preset/EpsilonPlus``."""
    parts = family.split("/")[1:-1]
    return "/".join(p for p in parts if p != "unfolded")


def diagnosis(report) -> str:
    """A failure's first diagnosis; without one, the other suite case the results equal."""
    if report.diagnosis:
        return " + ".join(v.name for v in report.diagnosis[0])
    equal = [name for name in report.equal_to if name != report.name]
    return (
        f"equals {method_of(equal[0].rpartition('@')[0])}@{equal[0].rpartition('@')[2]}"
        if equal
        else "none known"
    )


def cell(reports: list) -> str:
    """``passed/total``, and the most frequent diagnoses of the failures."""
    passed = sum(r.status == "pass" for r in reports)
    text = f"{passed}/{len(reports)}"
    diagnoses = collections.Counter(diagnosis(r) for r in reports if r.status == "fail")
    if diagnoses:
        text += "; " + "; ".join(f"{d} ({n})" for d, n in diagnoses.most_common(2))
    return text


def table(folder: Path) -> str:
    suite = Suite(export(folder / "suite"))
    own, against = {}, {}
    for implementation in ("npxai", "zennit", "captum"):
        out = run(suite, implementation, folder / implementation)
        own[implementation] = check(suite, out)
        if implementation != "npxai":
            against[implementation] = check(suite, out, convention="npxai")
    julia = {name: suite.expected(case) for name, case in suite.cases.items()
             if case["convention"] == "julia"}  # fmt: skip
    julia_out = write_results(folder / "julia", "npxai.compat.julia", julia, {})
    against["julia"] = check(suite, julia_out, convention="npxai")

    lines = [
        "| implementation | cases of its convention passed | against npxai's convention |",
        "|---|---|---|",
    ]
    for implementation, report in own.items():
        versus = against.get(implementation)
        lines.append(f"| {report.implementation} | {cell(report.cases)} | "
                     f"{cell(versus.cases) if versus else '(its own)'} |")  # fmt: skip
    lines.append(
        f"| RelevancePropagation.jl (npxai.compat.julia) | - | {cell(against['julia'].cases)} |"
    )
    lines += [
        "",
        "Against npxai's convention, method by method (passed / cases; the first diagnosis of "
        "the failures, with how many cases it explains):",
        "",
        "| method or rule | Zennit | Captum | RelevancePropagation.jl |",
        "|---|---|---|---|",
    ]
    by_method: dict[str, dict[str, list]] = collections.defaultdict(
        lambda: collections.defaultdict(list)
    )
    for peer, report in against.items():
        for case in report.cases:
            by_method[method_of(case.name.rpartition("@")[0])][peer].append(case)
    for method, peers in by_method.items():
        cells = [cell(peers[p]) if peers[p] else "-" for p in ("zennit", "captum", "julia")]
        lines.append(f"| {method} | {' | '.join(cells)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write the table into {DOC}")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        text = table(Path(folder))
    print(text)
    if args.write:
        doc = DOC.read_text()
        head, rest = doc.split(BEGIN)
        _, tail = rest.split(END)
        DOC.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")


if __name__ == "__main__":
    main()
