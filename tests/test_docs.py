"""The tutorials in docs/ and the README's examples run, print what they show, and quote the source
as it is.

In a tutorial (and in README.md), a fenced block whose info string is exactly ``python`` is code: the blocks run in
order, in one namespace, and each one's standard output must equal the ``text`` block that
follows it (a code block with no ``text`` block after it must print nothing). Numbers are
compared to one unit in the last digit shown, so that float noise cannot flip a rounded digit;
everything else exactly. A block whose info string is ``python <file> <qualified name>`` quotes
the source: its lines (``...`` marks a gap) must appear, in order and contiguously between gaps,
inside that function, method or class of that file.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = [ROOT / "docs" / "lrp-tutorial.md"]
DOCUMENTS = [*TUTORIALS, ROOT / "docs" / "conformance.md", ROOT / "README.md"]
FENCE = re.compile(r"^```(.*)$")
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


@dataclass
class Block:
    info: str
    text: str
    line: int  # of the opening fence, 1-based


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown file, in order."""
    found, lines, current, start = [], path.read_text().splitlines(), None, 0
    for number, line in enumerate(lines, 1):
        match = FENCE.match(line)
        if not match:
            if current is not None:
                current.append(line)
            continue
        if current is None:
            info, current, start = match.group(1).strip(), [], number
        else:
            found.append(Block(info, "\n".join(current) + "\n", start))
            current = None
    assert current is None, f"{path.name}:{start}: unclosed code fence"
    return found


def examples(path: Path) -> list[tuple[Block, str]]:
    """Each ``python`` block with the output it shows ('' when no ``text`` block follows)."""
    found = blocks(path)
    pairs = []
    for i, block in enumerate(found):
        if block.info == "python":
            shown = found[i + 1] if i + 1 < len(found) else None
            pairs.append((block, shown.text if shown and shown.info == "text" else ""))
    return pairs


def unit(token: str) -> float:
    """One unit in the last digit of a printed number, ``0`` for an integer (compared exactly)."""
    if not re.search(r"[.eE]", token):
        return 0.0
    mantissa, _, exponent = token.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 10.0 ** (int(exponent or 0) - decimals)


def same_output(printed: str, shown: str) -> bool:
    """Equal text, numbers within one unit in the last digit shown."""
    if printed == shown:
        return True
    if NUMBER.split(printed) != NUMBER.split(shown):
        return False
    pairs = zip(NUMBER.findall(printed), NUMBER.findall(shown), strict=True)
    return all(abs(float(a) - float(b)) <= 1.0001 * unit(b) for a, b in pairs)


def test_parser_finds_the_examples():
    assert unit("0.1234") == pytest.approx(1e-4)
    assert unit("1.5e-05") == pytest.approx(1e-6)
    assert unit("12") == 0.0
    assert same_output("R = 0.1235, n = 3\n", "R = 0.1234, n = 3\n")
    assert not same_output("R = 0.1236, n = 3\n", "R = 0.1234, n = 3\n")
    assert not same_output("R = 0.1234, n = 4\n", "R = 0.1234, n = 3\n")
    assert not same_output("S = 0.1234\n", "R = 0.1234\n")
    for path in TUTORIALS:
        assert len(examples(path)) >= 10, path


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_document_runs_and_prints_what_it_shows(path: Path, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # files the examples write land here
    namespace: dict = {"__name__": "tutorial"}
    options = np.get_printoptions()
    try:
        for block, shown in examples(path):
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(block.text, f"{path.name}:{block.line}", "exec"), namespace)
            printed = out.getvalue()
            assert same_output(printed, shown), (
                f"{path.name}:{block.line}: the block prints\n{printed}\nbut the tutorial shows\n{shown}"
            )
    finally:
        np.set_printoptions(**options)


def quotes() -> list:
    return [
        pytest.param(path, block, id=f"{path.name}:{block.line} {block.info[7:]}")
        for path in DOCUMENTS
        for block in blocks(path)
        if block.info.startswith("python ")
    ]


def source_of(file: Path, qualified: str) -> list[str]:
    """The lines of the function, method or class ``qualified`` (``Class.method``) of ``file``."""
    text = file.read_text()
    nodes = ast.parse(text).body
    node = None
    for name in qualified.split("."):
        node = next(
            (n for n in nodes if getattr(n, "name", None) == name and hasattr(n, "body")), None
        )
        assert node is not None, f"{file.name} has no {qualified}"
        nodes = node.body
    return text.splitlines()[node.lineno - 1 : node.end_lineno]


@pytest.mark.parametrize("path, block", quotes())
def test_quoted_source_is_the_source(path: Path, block: Block):
    parts = block.info.split()
    assert len(parts) == 3, f"{path.name}:{block.line}: write ```python <file> <qualified name>"
    lines = source_of(ROOT / parts[1], parts[2])
    chunks = [c.strip("\n") for c in re.split(r"(?m)^\s*\.\.\.\s*$", block.text)]
    position = 0
    for chunk in chunks:
        quoted = textwrap.dedent(chunk).splitlines()
        n = len(quoted)
        for start in range(position, len(lines) - n + 1):
            if textwrap.dedent("\n".join(lines[start : start + n])).splitlines() == quoted:
                position = start + n
                break
        else:
            pytest.fail(f"{path.name}:{block.line}: not in {parts[1]} {parts[2]}:\n{chunk}")
