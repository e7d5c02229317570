"""Cheap to start: the commands that only describe finetext load no ML library, the package root is lazy, and
the modules import each other in one direction only."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import finetext

SRC = Path(__file__).resolve().parents[1] / "src"
HEAVY = {"torch", "transformers", "sklearn"}


def imported_modules(args: list[str]) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run python with args in a fresh interpreter; every module it imported, from -X importtime's report
    (which lists each import as it happens, so it also sees a run that ends in SystemExit)."""
    result = subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True, text=True, timeout=120)
    names = {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines()
             if line.startswith("import time:") and "|" in line}
    return result, names


def heavy(names: set[str]) -> list[str]:
    return sorted({name.split(".")[0] for name in names} & HEAVY)


CONFIG = "dataset: sst2\nmodel:\n  strategy: lora\ntraining:\n  epochs: 2\n"


@pytest.mark.parametrize("argv", [["--help"], ["--version"], [], ["config", "--docs"], ["config", "CONFIG"],
                                  ["train", "--help"], ["serve", "--help"]], ids=" ".join)
def test_describing_commands_load_no_ml_library(argv, tmp_path):
    (tmp_path / "run.yaml").write_text(CONFIG)
    argv = [str(tmp_path / "run.yaml") if arg == "CONFIG" else arg for arg in argv]
    result, names = imported_modules(["-m", "finetext", *argv])
    assert result.returncode == (2 if not argv else 0), result.stderr[-2000:]
    assert "finetext.cli" in names
    assert heavy(names) == [], f"`finetext {' '.join(argv)}` imported {heavy(names)}"
    if argv == ["--version"]:
        assert result.stdout == f"finetext {finetext.__version__}\n"
    if argv[:1] == ["config"] and len(argv) == 2 and argv[1] != "--docs":
        assert "strategy: lora" in result.stdout and "epochs: 2" in result.stdout


def test_the_package_root_loads_its_names_on_first_use():
    probe = ("import finetext; names = dir(finetext); finetext.TrainConfig(); finetext.FinetextError; "
             "assert set(finetext.__all__) <= set(names), names; print(finetext.__version__)")
    result, names = imported_modules(["-c", probe])
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == finetext.__version__
    assert heavy(names) == [] and "finetext.api" not in names


def test_every_public_name_resolves():
    for name in finetext.__all__:
        assert getattr(finetext, name) is not None
    with pytest.raises(AttributeError, match="no_such_name"):
        finetext.no_such_name  # noqa: B018


def module_imports() -> dict[str, set[str]]:
    """finetext module -> the finetext modules it imports when it is imported (module level; imports inside
    functions and under `if TYPE_CHECKING:` run later or never, and are deliberate)."""
    modules = {}
    for path in (SRC / "finetext").rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("finetext"):
                found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                          for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("finetext")}
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def test_no_import_cycle():
    graph, state, path, cycles = module_imports(), {}, [], []

    def visit(module: str) -> None:
        state[module] = "open"
        path.append(module)
        for imported in sorted(graph[module]):
            if state.get(imported) == "open":
                cycles.append(" -> ".join([*path[path.index(imported):], imported]))
            elif imported not in state:
                visit(imported)
        path.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert cycles == []


def test_evaluation_and_lower_layers_never_import_inference_or_the_api():
    graph = module_imports()
    upward = {m: sorted(i for i in imported if i.startswith(("finetext.inference", "finetext.serving", "finetext.api")))
              for m, imported in graph.items()
              if m.startswith(("finetext.evaluation", "finetext.data", "finetext.config", "finetext.artifacts"))}
    assert {m: i for m, i in upward.items() if i} == {}
    assert all("finetext" not in imported for imported in graph.values()), "the package root imports the modules"
