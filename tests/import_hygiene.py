"""Reads the project's imports with ``ast`` (nothing is imported) and finds three faults:

- an import cycle between project modules, counting imports inside functions too (deferring an
  import to dodge a circle leaves the circle: the two modules still need each other), but not
  ``if TYPE_CHECKING:`` blocks (they never run);
- a private name (one leading underscore, not a dunder) of one project module used by another,
  whether imported (``from a import _x``) or reached as an attribute (``import a; a._x``);
- an import of the project's own modules inside ``try: ... except ImportError`` (our modules are
  always there: a fallback hides a broken import instead of failing).

Relative imports are resolved, and ``from package import module`` counts as importing the module.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: the folders whose modules make up the project (tests, .venv and data are not part of it)
PROJECT_PACKAGES = ("core", "precompute", "dashboard", "devtools", "bench", "scripts")
_IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError"}


@dataclass
class ImportProblems:
    """What ``check_imports`` found; each entry says where (module:line) and what."""

    cycles: list[list[str]] = field(default_factory=list)
    private_names: list[str] = field(default_factory=list)
    guarded_imports: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.cycles or self.private_names or self.guarded_imports)

    def report(self) -> str:
        lines = [f"import cycle: {' -> '.join([*cycle, cycle[0]])}" for cycle in self.cycles]
        lines += [f"private name: {entry}" for entry in self.private_names]
        lines += [f"try-import of our own module: {entry}" for entry in self.guarded_imports]
        return "\n".join(lines)


def project_modules(root: Path, packages: Sequence[str] = PROJECT_PACKAGES) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under ``root/<package>`` (``__init__.py``
    names its package)."""
    modules: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if any(part.startswith(".") or part == "__pycache__" for part in parts):
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def check_imports(root: Path, packages: Sequence[str] = PROJECT_PACKAGES) -> ImportProblems:
    modules = project_modules(root, packages)
    problems = ImportProblems()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        reader = _ModuleImports(name, path, modules)
        graph[name] = reader.runtime_targets
        problems.private_names += reader.private_names
        problems.guarded_imports += reader.guarded_imports
    problems.cycles = import_cycles(graph)
    return problems


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each strongly connected group of more than one module (or a module importing itself), as
    one cycle through it, starting at its alphabetically first module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1 or node in graph.get(node, ()):
                    groups.append(_cycle_through(sorted(group), graph))
    return sorted(groups)


def _cycle_through(group: list[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest path from the group's first module back to itself, inside the group."""
    members, start = set(group), group[0]
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph.get(node, ())):
                if child == start:
                    return paths[node]
                if child in members and child not in paths:
                    paths[child] = [*paths[node], child]
                    following.append(child)
        frontier = following
    return group


class _ModuleImports:
    """One module's imports, resolved to project modules."""

    def __init__(self, name: str, path: Path, modules: dict[str, Path]) -> None:
        self.name, self.modules = name, modules
        self.package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        self.runtime_targets: set[str] = set()
        self.private_names: list[str] = []
        self.guarded_imports: list[str] = []
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        self._bound: dict[str, str] = {}  # local name -> project module it stands for
        type_checking = {id(n) for block in tree.body if isinstance(block, ast.If)
                         and _is_type_checking(block.test) for n in ast.walk(block)}
        guarded: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                self._bind(node)
                self._check_private(node)
                if id(node) not in type_checking:
                    self.runtime_targets |= {m for m, _ in self.targets(node) if m != self.name}
            elif isinstance(node, ast.Try) and _catches_import_error(node):
                guarded |= self._guarded(node)
        self.guarded_imports = sorted(guarded)
        self._check_private_attributes(tree)

    # ---- resolving

    def _base(self, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        package = self.package.split(".") if self.package else []
        if node.level > 1:
            package = package[: len(package) - (node.level - 1)]
        return ".".join([*package, *([node.module] if node.module else [])])

    def _project_module(self, dotted: str) -> str | None:
        """``dotted`` or its longest prefix that is a project module."""
        parts = dotted.split(".")
        for end in range(len(parts), 0, -1):
            candidate = ".".join(parts[:end])
            if candidate in self.modules:
                return candidate
        return None

    def targets(self, node: ast.Import | ast.ImportFrom) -> list[tuple[str, str | None]]:
        """(project module imported, name taken from it or None) for each alias of ``node``."""
        found: list[tuple[str, str | None]] = []
        if isinstance(node, ast.Import):
            for alias in node.names:
                module = self._project_module(alias.name)
                if module is not None:
                    found.append((module, None))
            return found
        base = self._base(node)
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            if submodule in self.modules:
                found.append((submodule, None))
            elif base in self.modules:
                found.append((base, alias.name))
        return found

    # ---- the three checks

    def _bind(self, node: ast.Import | ast.ImportFrom) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname and alias.name in self.modules:
                    self._bound[alias.asname] = alias.name
                elif not alias.asname:
                    top = alias.name.split(".")[0]
                    if top in self.modules:
                        self._bound[top] = top
            return
        base = self._base(node)
        for alias in node.names:
            if f"{base}.{alias.name}" in self.modules:
                self._bound[alias.asname or alias.name] = f"{base}.{alias.name}"

    def _where(self, node: ast.AST) -> str:
        return f"{self.name}:{getattr(node, 'lineno', '?')}"

    def _check_private(self, node: ast.Import | ast.ImportFrom) -> None:
        for module, name in self.targets(node):
            if name is not None and is_private(name) and module != self.name:
                self.private_names.append(f"{self._where(node)} imports {module}.{name}")

    def _check_private_attributes(self, tree: ast.Module) -> None:
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute) or not is_private(node.attr):
                continue
            chain = _dotted(node.value)
            if chain is None or chain[0] not in self._bound:
                continue
            module = self._project_module(".".join([self._bound[chain[0]], *chain[1:]]))
            if module is not None and module != self.name and \
                    ".".join([self._bound[chain[0]], *chain[1:]]) == module:
                self.private_names.append(f"{self._where(node)} uses {module}.{node.attr}")

    def _guarded(self, node: ast.Try) -> set[str]:
        found = set()
        for statement in node.body:
            for inner in ast.walk(statement):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    found |= {f"{self._where(inner)} imports {module} under except ImportError"
                              for module, _ in self.targets(inner)}
        return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _catches_import_error(node: ast.Try) -> bool:
    for handler in node.handlers:
        caught = handler.type
        names = caught.elts if isinstance(caught, ast.Tuple) else [caught]
        if any(isinstance(n, ast.Name) and n.id in _IMPORT_ERRORS for n in names):
            return True
    return False


def _dotted(node: ast.expr) -> list[str] | None:
    """``a.b.c`` -> ["a", "b", "c"]; None for anything but names and attributes."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(parts)]
