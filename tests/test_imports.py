"""Import hygiene of the whole project (read with ``ast``, nothing imported): no import cycle, no
private name of one module used by another, no try-import of our own modules. The checker itself
is tested first, on small module trees written here."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.import_hygiene import PROJECT_PACKAGES, check_imports, import_cycles, project_modules

REPO_ROOT = Path(__file__).resolve().parents[1]


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    return root


# ---------------------------------------------------------------------------- the checker itself

CLEAN = {
    "pkg/__init__.py": "from pkg.api import build\n",
    "pkg/api.py": """\
        from __future__ import annotations
        from typing import TYPE_CHECKING
        from . import helpers
        from .helpers import PUBLIC, __version__
        if TYPE_CHECKING:
            from pkg.late import Later
        def build():
            return helpers.public() + helpers.__name__
        """,
    "pkg/helpers.py": """\
        __version__ = "1"
        PUBLIC = 1
        def public():
            return _own()
        def _own():
            return 1
        """,
    "pkg/late.py": "from pkg.api import build\nclass Later: ...\n",
    "other/tool.py": """\
        try:
            import tomllib
        except ImportError:
            tomllib = None
        import pkg.helpers
        value = pkg.helpers.public()
        """,
}


def test_a_clean_tree_passes(tmp_path):
    root = _tree(tmp_path, CLEAN)
    assert set(project_modules(root, ["pkg", "other"])) == {"pkg", "pkg.api", "pkg.helpers",
                                                             "pkg.late", "other.tool"}
    problems = check_imports(root, ["pkg", "other"])
    assert not problems, problems.report()


def test_a_cycle_is_found_also_through_a_deferred_or_relative_import(tmp_path):
    root = _tree(tmp_path, {
        **CLEAN,
        "pkg/a.py": "from pkg import b\n",
        "pkg/b.py": "def f():\n    from .c import g\n",
        "pkg/c.py": "from . import a\ndef g(): ...\n",
    })
    problems = check_imports(root, ["pkg", "other"])
    assert problems.cycles == [["pkg.a", "pkg.b", "pkg.c"]]
    assert "import cycle: pkg.a -> pkg.b -> pkg.c -> pkg.a" in problems.report()
    assert not problems.private_names and not problems.guarded_imports


def test_cycles_are_strongly_connected_groups():
    graph = {"a": {"b"}, "b": {"a", "c"}, "c": {"d"}, "d": {"c"}, "e": {"e"}, "f": {"a"}}
    assert import_cycles(graph) == [["a", "b"], ["c", "d"], ["e"]]
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_a_private_name_imported_or_reached_as_an_attribute_is_found(tmp_path):
    root = _tree(tmp_path, {
        **CLEAN,
        "pkg/user.py": """\
            from pkg.helpers import _own
            from pkg import helpers as h
            import pkg.helpers
            def f():
                from .helpers import _own as again
                return h._own() + pkg.helpers._own() + again()
            """,
    })
    problems = check_imports(root, ["pkg", "other"])
    assert problems.private_names == [
        "pkg.user:1 imports pkg.helpers._own", "pkg.user:5 imports pkg.helpers._own",
        "pkg.user:6 uses pkg.helpers._own", "pkg.user:6 uses pkg.helpers._own"]
    assert not problems.cycles


def test_a_try_import_of_our_own_module_is_found(tmp_path):
    root = _tree(tmp_path, {
        **CLEAN,
        "other/fallback.py": """\
            def codes():
                try:
                    from pkg.helpers import PUBLIC
                except (ModuleNotFoundError, ValueError):
                    PUBLIC = 0
                return PUBLIC
            """,
    })
    problems = check_imports(root, ["pkg", "other"])
    assert problems.guarded_imports == [
        "other.fallback:3 imports pkg.helpers under except ImportError"]


# ---------------------------------------------------------------------------- the project


def test_the_checker_reads_every_project_package():
    modules = project_modules(REPO_ROOT)
    assert {name.split(".")[0] for name in modules} == set(PROJECT_PACKAGES)
    assert {"core.store", "precompute.cli", "dashboard.app"} <= set(modules)
    assert not any(".venv" in str(path) for path in modules.values())


def test_the_project_has_no_import_cycle_private_import_or_try_import():
    problems = check_imports(REPO_ROOT)
    assert not problems, "\n" + problems.report()
