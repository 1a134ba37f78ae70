"""The shape of the code (docs/architecture.md): every module belongs to one wing, imports run only along the
arrows the plan allows, models stay pure, the worker carries neither the workbench nor the lab, nothing imports
itself through others (a ``TYPE_CHECKING`` import counts: a dodge is still a loop), and no function outside the
tests runs past 80 lines without a written reason."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
PACKAGES = ("streams", "models", "connectors")

#: module prefix → its wing (the longest prefix wins)
WINGS = {
    "models": "models",  # the package's face only
    "models.contracts": "contracts",
    "models.engine": "engine",
    "models.rules": "rules",
    "connectors": "connectors",
    "streams": "streams",  # the package's face only
    "streams.settings": "settings",
    "streams.worker": "worker",
    "streams.workbench": "workbench",
    "streams.lab": "lab",
    "streams.cli": "cli",
}
#: wing → the wings it may import (besides itself). Data flows one way: connectors → topics → the worker
#: (engine and rules) → alerts → the workbench; the lab drives all of them from outside; the CLI starts them.
ALLOWED = {
    "models": set(),
    "streams": set(),
    "contracts": set(),
    "engine": {"contracts"},
    "rules": {"contracts", "engine"},
    "connectors": {"contracts"},
    "settings": {"connectors", "contracts", "rules"},
    "worker": {"contracts", "engine", "rules", "connectors", "settings"},
    "workbench": {"contracts", "rules", "connectors", "settings"},
    "lab": {"contracts", "engine", "rules", "connectors", "settings", "worker", "workbench"},
    "cli": {"contracts", "engine", "rules", "connectors", "settings", "worker", "workbench", "lab"},
}
#: the longest a function may be without a reason written beside it (``# long: …`` on its ``def`` line)
MAX_FUNCTION_LINES = 80


def modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def wing(module: str) -> str:
    prefix = max((p for p in WINGS if module == p or module.startswith(p + ".")), key=len)
    return WINGS[prefix]


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Project modules ``name`` imports anywhere in its body: function-level imports and ``TYPE_CHECKING`` ones
    count too."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for a in node.names:
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base)
    return {m for m in found if m in known and m != name}


def test_every_module_belongs_to_a_wing_and_imports_along_the_allowed_arrows():
    known = modules()
    wrong = []
    for name, path in known.items():
        mine = wing(name)
        for other in imports(name, path, known):
            theirs = wing(other)
            if theirs != mine and theirs not in ALLOWED[mine]:
                wrong.append(f"{name} ({mine}) → {other} ({theirs})")
    assert wrong == [], "imports against the house plan (docs/architecture.md):\n" + "\n".join(sorted(wrong))


#: modules that import by name, and why: arrows an AST cannot see, so they stay inside their own wing
IMPORT_BY_NAME = {"models/rules/registry.py": "finds every rule module under its own packages (models.rules.*)"}


def test_no_importlib_hides_an_arrow():
    hidden = [str(path.relative_to(ROOT)) for path in modules().values()
              if "import_module(" in path.read_text() or "__import__(" in path.read_text()]
    assert sorted(hidden) == sorted(IMPORT_BY_NAME)
    from models.rules import registry

    assert all(wing(p) == "rules" for p in registry.PACKAGES)


def test_the_worker_carries_neither_the_workbench_nor_the_lab():
    code = ("import sys, streams.worker.app, streams.cli; "
            "print('\\n'.join(sorted(m for m in sys.modules if m.split('.')[0] in ('streams', 'models', 'connectors'))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                            check=True).stdout.split()
    assert "models.engine.rekey" in loaded and "streams.worker.checkpoint" in loaded  # the probe saw the worker
    assert [m for m in loaded if wing(m) in ("lab", "workbench")] == []


def test_models_are_pure():
    for name, path in modules().items():
        if name.startswith("models"):
            tree = ast.parse(path.read_text())
            roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
            roots |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
            assert not roots & {"faust", "kafka", "aiokafka", "streams", "connectors"}, name


def test_no_import_cycles():
    known = modules()
    graph = {name: imports(name, path, known) for name, path in known.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            visit(v)
    assert graph["streams.worker.app"] and cycles == []


def test_no_function_runs_past_80_lines_without_a_reason():
    long = []
    for name, path in modules().items():
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES and "# long:" not in lines[node.lineno - 1]:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    assert long == []


def test_every_package_says_what_it_holds():
    silent = [str(p.relative_to(ROOT)) for name, p in modules().items()
              if p.name == "__init__.py" and not ast.get_docstring(ast.parse(p.read_text()))]
    assert silent == []
