"""The dashboard's pages, charts and state import without torch (checked in fresh interpreters).

Only the recording page's model code needs torch, and it loads it when a model is loaded
(``dashboard.live`` calls ``core.models.registry.load_model``), never at import: a page that
pulled torch in through a name constant (as ``core.metrics`` once did through its ``grid``
module) would pay seconds of start-up and gigabytes of memory for nothing.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = REPO_ROOT / "dashboard"
PAGES = sorted((DASHBOARD / "views").glob("*.py"))

#: imports each module in turn and prints the first after which torch is loaded (or null)
CHILD = """
import importlib, json, sys
for name in json.loads(sys.argv[1]):
    importlib.import_module(name)
    if "torch" in sys.modules:
        print(json.dumps(name))
        break
else:
    print(json.dumps(None))
"""


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_modules(path: Path) -> list[str]:
    """Every module an import statement anywhere in the file names (``from a import b`` gives
    ``a`` and, when ``b`` is a module of the project, ``a.b``): lazy imports run when the page
    draws, so they count too."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            for alias in node.names:
                candidate = REPO_ROOT.joinpath(*node.module.split("."), alias.name)
                if candidate.with_suffix(".py").is_file() or (candidate / "__init__.py").is_file():
                    names.append(f"{node.module}.{alias.name}")
    return list(dict.fromkeys(names))


def _first_to_load_torch(modules: list[str]) -> str | None:
    result = subprocess.run([sys.executable, "-c", CHILD, json.dumps(modules)], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_dashboard_modules_import_without_torch():
    """Every module of ``dashboard/`` (the views aside: they are scripts) and what each imports
    lazily, one after another in one fresh interpreter."""
    files = sorted(p for p in DASHBOARD.rglob("*.py") if "views" not in p.parts)
    modules = [_module_name(p) for p in files if p.name != "app.py"]
    for path in files:
        modules += _imported_modules(path)
    culprit = _first_to_load_torch(list(dict.fromkeys(modules)))
    assert culprit is None, f"importing {culprit} loads torch"


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_each_page_imports_without_torch(page):
    culprit = _first_to_load_torch(_imported_modules(page))
    assert culprit is None, f"page {page.name}: importing {culprit} loads torch"


def test_the_check_sees_torch_when_a_module_loads_it():
    """The child really reports a module that loads torch (here ``core.metrics.grid``)."""
    assert _first_to_load_torch(["core.metrics.similarity", "core.metrics.grid"]) == \
        "core.metrics.grid"
