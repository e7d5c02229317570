"""The shape of src/finetext: the longest functions, the largest modules, and import cycles between modules.

    .venv/bin/python bench/code_shape.py [--top 15]

Imports inside functions count too: a deferred import hides a cycle from Python, not from the reader.
Imports under `if TYPE_CHECKING:` do not: they name a type for the checker and never run (the registries
name config's types that way, while config reads the registries). tests/test_layout.py asserts no cycle.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "finetext"


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    found = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imported_modules(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules that `name` imports anywhere in its file (from X import Y: Y if it is a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_only = {id(n) for block in ast.walk(tree) if is_type_checking_block(block) for n in ast.walk(block)}
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in known}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).strip(".")
            for alias in node.names:
                target = f"{base}.{alias.name}"
                found.add(target if target in known else base)
    return {module for module in found if module in known and module != name}


def is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imported_modules(name, path, known) for name, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def function_lengths() -> list[tuple[int, str]]:
    """(lines, module:qualified name) of every function and method."""
    lengths = []
    for name, path in modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    owner = f"{node.name}." if isinstance(node, ast.ClassDef) else ""
                    lengths.append((child.end_lineno - child.lineno + 1, f"{name}:{owner}{child.name}"))
    return sorted(lengths, reverse=True)


def module_sizes() -> list[tuple[int, str]]:
    return sorted(((len(path.read_text(encoding="utf-8").splitlines()), name) for name, path in modules().items()),
                  reverse=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=15)
    top = parser.parse_args().top
    print(f"| lines | longest functions (top {top}) |\n| --- | --- |")
    print("\n".join(f"| {n} | `{name}` |" for n, name in function_lengths()[:top]))
    sizes = module_sizes()
    print(f"\n| lines | largest modules (top {top}; {len(sizes)} modules, {sum(n for n, _ in sizes):,} lines) |")
    print("| --- | --- |")
    print("\n".join(f"| {n} | `{name}` |" for n, name in sizes[:top]))
    found = cycles(import_graph())
    print("\nimport cycles: " + ("; ".join(" <-> ".join(c) for c in found) if found else "none"))


if __name__ == "__main__":
    main()
