"""The installed package carries the files the code reads (issue #20 item 5): pyproject's package-data patterns
match real files, and every data file of a package (SQL, YAML, templates, static assets) is matched by one."""

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
PACKAGE_DATA: dict[str, list[str]] = PYPROJECT["tool"]["setuptools"]["package-data"]
PACKAGES = ("connectors", "pipelines", "kpi_models", "sandbox")


def data_files(package: str) -> set[Path]:
    """A package's files that are not Python: what setuptools installs only when package-data names them."""
    return {p for p in (REPO / package).rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts}


def test_every_package_data_pattern_matches_a_file():
    empty = [f"{package}: {pattern}" for package, patterns in PACKAGE_DATA.items() for pattern in patterns
             if not any(p.is_file() for p in (REPO / package).glob(pattern))]
    assert not empty, f"package-data patterns matching no file: {empty}"


def test_every_data_file_is_packaged():
    covered = {p for package, patterns in PACKAGE_DATA.items() for pattern in patterns
               for p in (REPO / package).glob(pattern)}
    left_out = sorted(str(p.relative_to(REPO)) for package in PACKAGES for p in data_files(package) - covered)
    assert not left_out, f"data files an installed package would lack (add them to package-data): {left_out}"

