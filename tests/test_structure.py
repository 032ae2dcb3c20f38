"""The house rules a reader relies on, read from the code itself: every vpolib module under 500 lines, no import
cycle between vpolib modules, and no vpolib import inside a function without a comment saying why."""

import ast
from pathlib import Path

from vpolib.paths import REPO_ROOT

PACKAGE = REPO_ROOT / "vpolib"
MAX_LINES = 500


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(node: ast.AST, here: str, known: set[str]) -> set[str]:
    """The vpolib modules one import statement names (``from vpolib import x`` counts x where x is a module)."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in known}
    if not isinstance(node, ast.ImportFrom) or node.module is None:
        return set()
    base = node.module
    if node.level:  # relative: resolve against this module's package
        base = ".".join(here.split(".")[: -node.level] + [node.module])
    out = {base} if base in known else set()
    return out | {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known}


def graph() -> dict[str, set[str]]:
    """Module -> the vpolib modules it imports at module level (function-local imports run later, if ever)."""
    mods = modules()
    known, edges = set(mods), {}
    for name, path in mods.items():
        tree = ast.parse(path.read_text())
        edges[name] = set().union(*(imported(n, name, known) for n in tree.body), set()) - {name}
        for n in tree.body:  # imports under `if TYPE_CHECKING:` or try/except at top level count too
            if isinstance(n, (ast.If, ast.Try)):
                for sub in ast.walk(n):
                    edges[name] |= imported(sub, name, known) - {name}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan), sorted."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(out)


def test_cycle_finder_on_a_hand_made_graph():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert cycles(edges) == [["a", "b", "c"]]  # d only points in; a self-import is no cycle


def test_no_import_cycle_between_vpolib_modules():
    edges = graph()
    assert "vpolib.evaluate" in edges and "vpolib.checkpoints" in edges["vpolib.evaluate"]  # the reader works
    assert cycles(edges) == []


def test_no_module_over_500_lines():
    long = {name: n for name, p in modules().items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_function_local_vpolib_imports_say_why():
    """An import inside a function hides a dependency from the reader: each one carries a comment on its line or
    the line above."""
    silent = []
    mods = modules()
    known = set(mods) | {"vpolib"}  # once: listing the package per AST node took ~90 s of the test run
    for name, path in mods.items():
        lines = path.read_text().splitlines()
        for fn in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if imported(node, name, known) or (
                    isinstance(node, ast.ImportFrom) and (node.module or "").startswith("vpolib")
                ):
                    around = lines[node.lineno - 2 : node.end_lineno]
                    if not any("#" in line for line in around):
                        silent.append(f"{path.name}:{node.lineno}")
    assert silent == []
