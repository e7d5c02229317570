"""The package's shape: no import cycle between finetext's modules (imports inside functions included)."""

import importlib.util

from conftest import REPO


def load_code_shape():
    spec = importlib.util.spec_from_file_location("code_shape", REPO / "bench" / "code_shape.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_module_imports_itself_back_through_others():
    shape = load_code_shape()
    graph = shape.import_graph()
    assert "finetext.training.run" in graph and "finetext.config" in graph["finetext.training.run"]
    assert shape.cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    shape = load_code_shape()
    assert shape.cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_evaluation_and_lower_layers_never_import_inference_or_the_api():
    graph = load_code_shape().import_graph()
    upward = {m: sorted(i for i in imported if i.startswith(("finetext.inference", "finetext.serving", "finetext.api")))
              for m, imported in graph.items()
              if m.startswith(("finetext.evaluation", "finetext.data", "finetext.config", "finetext.artifacts"))}
    assert {m: i for m, i in upward.items() if i} == {}
    assert all("finetext" not in imported for imported in graph.values()), "the package root imports the modules"
