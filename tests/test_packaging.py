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


def package_folder(package: str, mapping: dict[str, str]) -> Path:
    """The directory of ``package`` under ``package-dir`` (the longest matching prefix)."""
    prefix = max((p for p in mapping if package == p or package.startswith(p + ".")), key=len)
    return ROOT / mapping[prefix] / Path(*package[len(prefix) :].split(".")[1:])


def in_subpackage_or_cache(path: Path, folder: Path) -> bool:
    """Whether ``path`` lies in a subpackage of ``folder`` (checked on its own) or a cache."""
    for parent in path.parents:
        if parent == folder:
            return False
        if parent.name == "__pycache__" or (parent / "__init__.py").exists():
            return True
    raise ValueError(f"{path} is not under {folder}")


def test_every_data_file_is_matched_by_package_data():
    """Each file of a package other than its Python modules (the ImageNet class names, the sample
    photos, the bundled weights) is matched by a ``package-data`` pattern, so wheels ship it."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = {"npxai": "npxai", **config["package-dir"]}
    for package in config["packages"]:
        folder = package_folder(package, mapping)
        patterns = config["package-data"].get(package, [])
        shipped = {path for pattern in patterns for path in folder.glob(pattern)}
        data = {
            path
            for path in folder.rglob("*")
            if path.is_file()
            and path.suffix not in (".py", ".pyc", ".nbi", ".nbc")
            and not in_subpackage_or_cache(path, folder)
        }
        assert data <= shipped, f"{package}: not shipped: {sorted(map(str, data - shipped))}"
    photos = package_folder("npxai.reference_models", mapping) / "images"
    assert {p.name for p in photos.glob("*.jpg")} == {
        "astronaut.jpg",
        "chelsea.jpg",
        "coffee.jpg",
        "rocket.jpg",
    }
