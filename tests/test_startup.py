"""Cheap to start: the commands that only describe finetext load no ML library, and the package root is lazy
(the direction of imports between modules: tests/test_layout.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import finetext

HEAVY = {"torch", "transformers", "sklearn", "peft", "accelerate"}  # config and the registries included


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
