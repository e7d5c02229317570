"""Hardware settings chosen by measurement: precision, threads, fused optimizer, torch.compile; their cache per
machine; the emulation warning; `finetext doctor`."""

from __future__ import annotations

import functools
import json
import logging
import os
import platform
import subprocess
import sys

import pytest
import torch
import yaml
from conftest import tiny_run
from transformers import AutoModelForSequenceClassification

import finetext
from finetext.cli import main
from finetext.hardware import calibrate, choices
from finetext.hardware.calibrate import Workload, choose_compile, choose_precision, choose_threads, emulation_warning


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Each test starts with no cached choice (the file and this process's memo)."""
    monkeypatch.setenv("FINETEXT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(choices, "_memo", {})


@pytest.fixture(scope="module")
def model(tiny_model):
    return AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=2)


def fake_timings(monkeypatch, forward: dict[str, float], step: dict[str, float] | None = None) -> list[tuple]:
    """Timings as this test's input: seconds of a forward pass and of a training pass per precision (or per thread
    count). Returns the passes 'run', as (precision, mode, threads)."""
    calls: list[tuple] = []

    def one_pass(model, batch, precision, mode):
        calls.append((precision, mode, torch.get_num_threads()))
        table = forward if mode == "inference" or step is None else step
        threads = f"threads={torch.get_num_threads()}"
        if threads in table:
            return table[threads]
        base = precision.split("+")[0]  # the math attention kernel: 1.5x slower unless the table says otherwise
        return table.get(precision, table[base] * 1.5)

    monkeypatch.setattr(calibrate, "one_pass", one_pass)
    return calls


LONG_TRAINING = Workload("train", batch_size=16, tokens_per_batch=16 * 256, passes=1000, max_length=512)
"""Sequences of 256 tokens: only the fused attention kernel is measured (see test_short_sequences_...)."""


def test_auto_takes_the_faster_precision_measured_and_a_second_run_reads_it_from_the_cache(model, monkeypatch):
    calls = fake_timings(monkeypatch, forward={"fp32": 0.1, "bf16": 0.05}, step={"fp32": 0.3, "bf16": 0.2})
    first = choose_precision(model, LONG_TRAINING)
    assert (first.value, first.source, first.seconds) == ("bf16", "measured", {"fp32": 0.3, "bf16": 0.2})
    assert first.shape == (16, 256)
    assert [c[:2] for c in calls] == [("fp32", "inference"), ("fp32", "train"), ("fp32", "train"),
                                      ("bf16", "inference"), ("bf16", "train"), ("bf16", "train")]
    calls.clear()
    monkeypatch.setattr(choices, "_memo", {})  # a new process: only the file remains
    second = choose_precision(model, LONG_TRAINING)
    assert (second.value, second.source, second.seconds) == ("bf16", "cached", first.seconds) and calls == []
    entry = next(iter(json.loads(choices.cache_file().read_text())["entries"].values()))
    assert entry["value"] == "bf16" and "torch" in entry["machine"]


def test_the_cache_is_per_machine_and_per_batch_size_bucket(model, monkeypatch):
    calls = fake_timings(monkeypatch, forward={"fp32": 0.1, "bf16": 0.05}, step={"fp32": 0.3, "bf16": 0.2})
    choose_precision(model, LONG_TRAINING)
    calls.clear()
    bigger = Workload("train", 16, 16 * 512, 1000, 512)  # 8,192 tokens per batch: another bucket
    choose_precision(model, bigger)
    assert calls and {c[0] for c in calls} == {"fp32", "bf16"}
    calls.clear()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # other kernels: another machine as far as timings go
    monkeypatch.setattr(choices, "_memo", {})
    choose_precision(model, LONG_TRAINING)
    assert calls


def test_an_emulated_precision_is_stopped_after_one_forward_pass(model, monkeypatch):
    calls = fake_timings(monkeypatch, forward={"fp32": 0.1, "bf16": 2.0}, step={"fp32": 0.3, "bf16": 6.0})
    choice = choose_precision(model, LONG_TRAINING)
    assert choice.value == "fp32" and choice.seconds == {"fp32": 0.3, "bf16": 2.0}
    assert choice.notes == {"bf16": "forward only, stopped"}
    assert [c[:2] for c in calls if c[0] == "bf16"] == [("bf16", "inference")]
    assert "bf16 2.000 s (forward only, stopped)" in choice.line()


def test_an_explicit_emulated_precision_is_measured_in_full_and_warned_about_with_its_factor(model, monkeypatch):
    fake_timings(monkeypatch, forward={"fp32": 0.1, "bf16": 2.0}, step={"fp32": 0.3, "bf16": 6.0})
    choose_precision(model, LONG_TRAINING)  # auto first: bf16 stopped early and cached so
    short = Workload("train", 16, 16 * 256, passes=3, max_length=512)  # explicit requests: measured however short
    choice = choose_precision(model, short, requested="bf16")
    assert choice.seconds == {"fp32": 0.3, "bf16": 6.0} and not choice.notes
    assert emulation_warning(choice, "bf16") == (
        "--precision bf16 runs 20.0x slower than fp32 on this machine (measured at 16 x 256 tokens: 6.000 s against "
        "0.300 s per pass); the hardware emulates it. --precision auto picks the faster.")
    assert emulation_warning(choice, "auto") is None and emulation_warning(choice, "fp32") is None


def test_a_run_too_short_to_matter_is_not_measured_and_stays_fp32(model, monkeypatch):
    calls = fake_timings(monkeypatch, forward={"fp32": 0.1, "bf16": 0.05}, step={"fp32": 0.3, "bf16": 0.2})
    short = Workload("train", 16, 16 * 256, passes=calibrate.MIN_TRAIN_STEPS - 1, max_length=512)
    choice = choose_precision(model, short)
    assert (choice.value, choice.source, calls) == ("fp32", "default", [])
    assert "99 steps: too short a run to measure" in choice.line()
    choose_precision(model, LONG_TRAINING)  # measured once by a long run ...
    assert choose_precision(model, short).source == "cached"  # ... a short one with the same shape uses it


def test_a_damaged_cache_file_is_only_a_cache(model, monkeypatch):
    fake_timings(monkeypatch, forward={"fp32": 0.1, "bf16": 0.05}, step={"fp32": 0.3, "bf16": 0.2})
    choices.cache_file().parent.mkdir(parents=True)
    choices.cache_file().write_text("{not json")
    assert choose_precision(model, LONG_TRAINING).source == "measured"
    assert json.loads(choices.cache_file().read_text())["version"] == choices.CACHE_VERSION


def test_short_sequences_also_try_the_math_attention_kernel_and_training_uses_the_winner(model, monkeypatch):
    fake_timings(monkeypatch, forward={"fp32": 0.1, "bf16": 0.05}, step={"fp32": 0.3, "bf16": 0.2, "bf16+math": 0.15})
    short = Workload("train", 16, 16 * 16, passes=1000, max_length=64)
    choice = choose_precision(model, short)
    assert list(choice.seconds) == ["fp32", "bf16", "fp32+math", "bf16+math"] and choice.value == "bf16+math"
    assert calibrate.split_choice(choice.value) == ("bf16", "math")
    assert "fp32+math" not in choose_precision(model, LONG_TRAINING).seconds  # 256 tokens: fused only


def test_the_math_kernel_context_really_selects_sdpas_math_backend():
    from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: F401 - the API the context relies on

    q = torch.randn(1, 2, 8, 16)
    with calibrate.attention_kernel("math"):
        math = torch.nn.functional.scaled_dot_product_attention(q, q, q)
    fused = torch.nn.functional.scaled_dot_product_attention(q, q, q)
    torch.testing.assert_close(math, fused, atol=1e-5, rtol=1e-5)
    from torch.nn.attention import _cur_sdpa_kernel_backends

    with calibrate.attention_kernel("math"):
        assert _cur_sdpa_kernel_backends() == [SDPBackend.MATH]
    assert SDPBackend.FLASH_ATTENTION in _cur_sdpa_kernel_backends()


def test_fewer_threads_are_kept_only_when_clearly_faster(model, monkeypatch):
    threads = torch.get_num_threads()
    if threads < 2:
        pytest.skip("one thread: nothing to choose")
    half = threads // 2
    fake_timings(monkeypatch, forward={"fp32": 0.1}, step={f"threads={threads}": 0.30, f"threads={half}": 0.29})
    assert choose_threads(model, LONG_TRAINING, "fp32").value == str(threads)  # 3% is noise
    monkeypatch.setattr(choices, "_memo", {})
    choices.cache_file().unlink()
    fake_timings(monkeypatch, forward={"fp32": 0.1}, step={f"threads={threads}": 0.30, f"threads={half}": 0.20})
    assert choose_threads(model, LONG_TRAINING, "fp32").value == str(half)
    assert torch.get_num_threads() == threads  # measuring put it back


def test_torch_compile_is_measured_only_for_long_runs(model):
    choice = choose_compile(model, LONG_TRAINING, "fp32", eager_seconds=0.3)  # 1,000 x 0.3 s = 5 min
    assert (choice.value, choice.source) == ("false", "default")
    assert "about 5 min in eager mode: too short for compiling to pay" in choice.line()


def test_measuring_on_the_real_model_leaves_the_run_as_it_was(model):
    """No fakes: real passes of the tiny model, and nothing of the run (weights, RNG, mode, grads, threads)
    changes."""
    model.eval()
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    rng, threads = torch.get_rng_state(), torch.get_num_threads()
    choice = choose_precision(model, Workload("train", 16, 16 * 64, 1000, max_length=64))
    assert set(choice.seconds) == {"fp32", "bf16", "fp32+math", "bf16+math"}
    assert all(s > 0 for s in choice.seconds.values())
    assert choice.value in choice.seconds and choice.source == "measured"
    assert torch.equal(torch.get_rng_state(), rng) and torch.get_num_threads() == threads
    assert not model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())


def autocast_seen(monkeypatch) -> list[bool]:
    from transformers import BertForSequenceClassification

    seen: list[bool] = []
    forward = BertForSequenceClassification.forward

    @functools.wraps(forward)
    def recording(self, *args, **kwargs):
        seen.append(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16)
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(BertForSequenceClassification, "forward", recording)
    return seen


@pytest.mark.slow
@pytest.mark.parametrize("faster", ["bf16", "fp32"])
def test_a_training_run_trains_in_the_precision_measured_faster(tiny_model, tmp_path, monkeypatch, caplog, faster):
    slower = {"bf16": "fp32", "fp32": "bf16"}[faster]
    fake_timings(monkeypatch, forward={faster: 0.05, slower: 0.08}, step={faster: 0.1, slower: 0.2})
    monkeypatch.setattr(calibrate, "MIN_TRAIN_STEPS", 1)
    seen = autocast_seen(monkeypatch)
    with caplog.at_level(logging.INFO, logger="finetext"):
        result = finetext.train(tiny_run(tiny_model, tmp_path / "run", dataset="sst2", epochs=1, report=False,
                                         quiet=False))
    saved = yaml.safe_load((result.output_dir / "finetext.yaml").read_text())["training"]
    assert saved["precision"] == faster and saved["fused_optimizer"] in (True, False)
    assert saved["threads"] >= 1 and saved["torch_compile"] is False
    training_passes = seen[:6]  # 96 examples / 16: the first 6 forward passes are training steps
    assert training_passes and set(training_passes) == {faster == "bf16"}
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("hardware: "))
    assert f"precision {faster}: measured at 16 x " in line and "fused_optimizer" in line


@pytest.mark.slow
def test_explicit_bf16_that_measures_slower_trains_as_asked_with_one_warning(tiny_model, tmp_path, monkeypatch,
                                                                             caplog):
    fake_timings(monkeypatch, forward={"fp32": 0.1, "bf16": 0.9}, step={"fp32": 0.2, "bf16": 3.0})
    seen = autocast_seen(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="finetext"):
        result = finetext.train(tiny_run(tiny_model, tmp_path / "run", dataset="sst2", epochs=1, precision="bf16",
                                         report=False))
    warnings = [r.getMessage() for r in caplog.records if "slower than fp32" in r.getMessage()]
    assert warnings == ["--precision bf16 runs 15.0x slower than fp32 on this machine (measured at 16 x 16 tokens: "
                        "3.000 s against 0.200 s per pass); the hardware emulates it. --precision auto picks the "
                        "faster."]
    assert yaml.safe_load((result.output_dir / "finetext.yaml").read_text())["training"]["precision"] == "bf16"
    assert seen[0] is True


def test_predict_auto_uses_the_measured_precision_and_short_inputs_are_not_measured(tiny_model, tmp_path,
                                                                                    monkeypatch, caplog):
    from finetext.inference.loader import load_classifier_dir
    from finetext.inference.predict import predict_logits

    folder = tmp_path / "hf"
    AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=2).save_pretrained(folder)
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(folder)
    clf = load_classifier_dir(folder)
    calls = fake_timings(monkeypatch, forward={"fp32": 0.1, "bf16": 0.05})
    seen = autocast_seen(monkeypatch)
    texts = [f"text number {i} is fine" for i in range(calibrate.MIN_INFERENCE_BATCHES * 4)]
    predict_logits(clf, texts[:8], batch_size=4, progress=False)  # 2 batches: fp32, nothing measured
    assert calls == [] and set(seen) == {False}
    seen.clear()
    with caplog.at_level(logging.INFO, logger="finetext"):
        predict_logits(clf, texts, batch_size=4, progress=False)
    assert {c[1] for c in calls} == {"inference"} and set(seen) == {True}
    assert any(r.getMessage().startswith("inference precision bf16: measured") for r in caplog.records)


def test_doctor_lists_this_machines_cached_choices_and_versions(model, monkeypatch, capsys):
    fake_timings(monkeypatch, forward={"fp32": 0.1, "bf16": 0.05}, step={"fp32": 0.3, "bf16": 0.2})
    choose_precision(model, LONG_TRAINING)
    assert main(["doctor", "--no-measure", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["versions"]["torch"] == torch.__version__
    [row] = report["cached_choices"]
    assert (row["mode"], row["setting"], row["value"], row["tokens_per_batch"]) == ("train", "precision", "bf16", 4096)
    assert main(["doctor", "--no-measure"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("machine: ") and "precision       bf16" in text and "versions: python" in text


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="ONEDNN_MAX_CPU_ISA names x86 ISAs")
def test_doctor_measures_emulated_bf16_where_the_flags_would_say_native(tmp_path):
    """oneDNN limited to AVX2 runs bf16 matmuls through reference kernels, whatever the CPU's flags: the
    measured peak says so (this is the AMD EPYC case of the issue, reproduced on any x86 CPU)."""
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "FINETEXT_CACHE_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "finetext", "doctor", "--json"], env=env, capture_output=True,
                         text=True, timeout=300, check=True).stdout
    peaks = json.loads(out)["matmul_gflops"]
    assert peaks["bf16"] < peaks["fp32"] / 4
    assert "ONEDNN_MAX_CPU_ISA=AVX2" in json.loads(out)["machine"]


@pytest.mark.slow
def test_a_run_that_measures_trains_exactly_like_one_that_reads_the_cache(tiny_model, tmp_path, monkeypatch):
    """Measuring (real passes, no fakes) leaves no trace in the run: RNG, weights, optimizer all as without it."""
    from conftest import without_timing

    monkeypatch.setattr(calibrate, "MIN_TRAIN_STEPS", 1)
    histories = []
    for name in ("measures", "cached"):
        result = finetext.train(tiny_run(tiny_model, tmp_path / name, dataset="sst2", epochs=1, report=False))
        histories.append(without_timing(result.metrics["history"]))
        assert choices.cache_file().is_file()
    assert histories[0] == histories[1]
