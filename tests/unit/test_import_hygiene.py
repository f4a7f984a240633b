"""Import hygiene the linters do not state: no module of ours imports another module's private
(``_name``) names, and a private module (``pkg._mod``) is imported only from inside its package.
A ``_private`` import across modules means the public API is missing (import-linter's contract
"Kernel stages talk to the desk" in pyproject.toml keeps the stages off ``kernel.loop``)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("domain", "kernel", "lake", "sim", "venues", "models", "projections", "tui", "cli")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _violations(path: Path) -> list[str]:
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    return _violations_in(path.read_text(), module, package)


def _violations_in(text: str, module: str, package: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(text, module)):
        if not isinstance(node, ast.ImportFrom) or node.level or node.module in (None, "__future__"):
            continue
        source = node.module or ""
        private_parts = [i for i, part in enumerate(source.split(".")) if part.startswith("_")]
        if private_parts:
            owner = ".".join(source.split(".")[: private_parts[0]])
            if not (package == owner or package.startswith(owner + ".")):
                found.append(f"{module}:{node.lineno} imports private module {source}")
        for alias in node.names:
            name = alias.name
            if not name.startswith("_"):
                continue
            if f"{source}.{name}".startswith(package + ".") and _is_module(f"{source}.{name}"):
                continue  # a private module of the importer's own package
            found.append(f"{module}:{node.lineno} imports private name {name} from {source}")
    return found


def _is_module(dotted: str) -> bool:
    base = ROOT.joinpath(*dotted.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def test_no_module_imports_another_modules_private_names() -> None:
    files = sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))
    assert len(files) > 50, "the source tree was not found"
    violations = [v for path in files for v in _violations(path)]
    assert violations == []


def test_the_check_sees_a_private_import() -> None:
    """The check fails on the imports it forbids and passes package-internal private modules."""
    text = (
        "from lake.store import _DATA_FILES\n"
        "from kernel._lmdb import LmdbBackend\n"
        "from lake import _factors\n"
        "from kernel import _lmdb\n"
        "from domain.riskrules import _pretrade_nb\n"
    )
    assert _violations_in(text, "lake.probe", "lake") == [
        "lake.probe:1 imports private name _DATA_FILES from lake.store",
        "lake.probe:2 imports private module kernel._lmdb",
        "lake.probe:3 imports private name _factors from lake",
        "lake.probe:4 imports private name _lmdb from kernel",
        "lake.probe:5 imports private name _pretrade_nb from domain.riskrules",
    ]
    assert _violations_in(text.splitlines()[3] + "\n", "kernel.store", "kernel") == []
