"""Every package directory ships: pyproject.toml lists each one (a missing entry breaks only
non-editable installs, which the rest of the suite does not exercise)."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_every_package_directory_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    mapping = {"npxai": "npxai", **config["package-dir"]}
    found = set()
    for package, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((package, *relative)))
    assert found == listed, (
        f"unlisted: {sorted(found - listed)}, listed but absent: {sorted(listed - found)}"
    )
