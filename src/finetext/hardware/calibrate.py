"""Hardware-dependent settings chosen by timing the run's own model at the run's shapes.

CPU flags do not say what runs fast: a CPU that reports AVX512-BF16 may still run bf16 matrix products through
reference kernels (oneDNN limited to AVX2: 0.9 against 181 GFLOP/s in fp32, training 17x slower), and where bf16
is native it pays only on large enough matrices. So each candidate runs a few forward (+ backward, for training)
passes on random token ids of the run's batch shape; the fastest wins. Choices are cached per machine
(choices.py), so only the first run on a machine, model and batch-size bucket pays; runs too short to matter are
not measured (the cached choice, or fp32, the setting that is never pathologically slow).

Measuring leaves the run untouched: the random number generators are restored, gradients cleared, thread
counts and the model's train/eval mode put back; no optimizer step touches the weights.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace

import torch
from torch import nn

from finetext.hardware.choices import Choice, cached_choice, entry_key, store_choice, tokens_bucket
from finetext.hardware.machine import Machine, current_machine

log = logging.getLogger("finetext")

MIN_TRAIN_STEPS = 100
"""Training runs with fewer optimizer steps are not measured: the ~6 measured steps would cost over 5% of them."""
MIN_INFERENCE_BATCHES = 16
"""Predictions over fewer batches are not measured."""
TIMED_PASSES = 2
"""Timed passes per candidate after one warm-up pass (the fastest counts: other processes only add time)."""
EMULATED_FACTOR = 1.15
"""An explicit precision measured this many times slower than fp32 gets a warning."""
MARGIN = 1.03
"""A precision other than fp32 is chosen only when at least this much faster: a tie keeps fp32's exact numbers."""
THREADS_GAIN = 1.05
"""Fewer threads are kept only when at least this much faster (noise is a few percent)."""
MATH_ATTENTION_MAX_LENGTH = 128
"""Batches of sequences this short also try SDPA's math attention kernel beside the fused (flash) one: at 16 tokens
the fused kernel made a bf16 training step slower here (0.091 against 0.075 s), at 512 tokens it is 2-3x faster, so
longer sequences are not measured for it."""
COMPILE_MIN_EAGER_SECONDS = 1800
"""torch.compile is measured only for runs expected to take this long in eager mode: compiling costs 30-90 s on a
CPU and recompiles as padded lengths change, so it cannot pay on shorter runs."""


@dataclass(frozen=True)
class Workload:
    """What will run: training steps or inference batches of a given size."""

    mode: str
    """'train' (forward + backward) or 'inference' (forward only)."""
    batch_size: int
    tokens_per_batch: float
    """Mean real tokens in a batch (padding excluded; dynamic padding keeps it close)."""
    passes: int
    """Optimizer steps (train) or batches (inference) the run will make."""
    max_length: int = 512

    def shape(self) -> tuple[int, int]:
        """(batch, length) of the timed batches: the batch size, and the tokens of the bucket spread over it."""
        length = round(tokens_bucket(self.tokens_per_batch) / self.batch_size)
        return self.batch_size, max(4, min(self.max_length, length))

    def worth_measuring(self) -> bool:
        return self.passes >= (MIN_TRAIN_STEPS if self.mode == "train" else MIN_INFERENCE_BATCHES)


def precision_candidates(device: str, model: nn.Module | None = None, length: int | None = None) -> list[str]:
    """fp32 first (the baseline every other candidate is compared with), then the faster formats it has; for a
    model on SDPA attention and short sequences, each also with the math attention kernel ('bf16+math')."""
    formats = ["fp32", "bf16" if device == "cpu" or torch.cuda.is_bf16_supported() else "fp16"]
    config = getattr(model, "config", None)
    sdpa = getattr(getattr(config, "encoder", None), "_attn_implementation", None) or getattr(
        config, "_attn_implementation", None)
    if sdpa == "sdpa" and length is not None and length <= MATH_ATTENTION_MAX_LENGTH:
        formats += [f"{name}+math" for name in formats]
    return formats


def split_choice(value: str) -> tuple[str, str]:
    """'bf16+math' -> ('bf16', 'math'); 'bf16' -> ('bf16', 'fused')."""
    precision, _, kernel = value.partition("+")
    return precision, kernel or "fused"


def attention_kernel(kernel: str | None):
    """SDPA restricted to its math kernel ('math'), or as PyTorch picks ('fused' or None)."""
    if kernel != "math":
        return nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.MATH])


def model_key(model: nn.Module) -> str:
    """Architecture and width: a timing holds for models of the same shape, whatever their weights."""
    config = getattr(model, "config", None)
    encoder = getattr(config, "encoder", None)
    config = encoder if encoder is not None and not isinstance(encoder, dict) else config
    width = getattr(config, "hidden_size", None) or getattr(config, "dim", None) or 0
    layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layers", None) or 0
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return f"{getattr(config, 'model_type', type(model).__name__)}-{layers}x{width}-{trainable}"


# --------------------------------------------------------------------------------------------- timing


def random_batch(model: nn.Module, batch: int, length: int) -> dict[str, torch.Tensor]:
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    vocab = getattr(embeddings, "num_embeddings", 1000)
    device = next(model.parameters()).device
    ids = torch.randint(min(1000, vocab // 2), vocab, (batch, length), device=device)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def autocast_for(precision: str, device: str):
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def one_pass(model: nn.Module, batch: dict[str, torch.Tensor], precision: str, mode: str) -> float:
    """Seconds of one forward (inference) or forward + backward (train) pass."""
    device = batch["input_ids"].device.type
    precision, kernel = split_choice(precision)
    started = time.perf_counter()
    with attention_kernel(kernel):
        with torch.inference_mode(mode == "inference"), autocast_for(precision, device):
            logits = model(**batch).logits
        if mode == "train":
            logits.float().pow(2).mean().backward()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def one_forward(model: nn.Module, batch: dict[str, torch.Tensor], precision: str) -> float:
    return one_pass(model, batch, precision, "inference")


@contextmanager
def measuring(model: nn.Module, mode: str):
    """Leave the run as it was: RNG state, train/eval mode, gradients, threads."""
    was_training, threads = model.training, torch.get_num_threads()
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        model.train(mode == "train")
        try:
            yield
        finally:
            model.train(was_training)
            torch.set_num_threads(threads)
            for parameter in model.parameters():
                parameter.grad = None


def time_candidates(model: nn.Module, workload: Workload, candidates: list[str],
                    configure: Callable[[str], str], stop_slow: bool = True) -> tuple[dict[str, float], dict[str, str]]:
    """Seconds per pass of each candidate; configure(candidate) sets it up and returns the precision to run.

    The first candidate is the baseline. With stop_slow, a candidate whose warm-up forward pass alone takes longer
    than the best full pass so far is stopped there (its forward time is recorded, a lower bound): an emulated
    precision is found out in one forward pass instead of costing many slow steps."""
    seconds: dict[str, float] = {}
    notes: dict[str, str] = {}
    batch = random_batch(model, *workload.shape())
    for candidate in candidates:
        precision = configure(candidate)
        best = min(seconds.values(), default=None)
        warm = one_forward(model, batch, precision)
        if stop_slow and best is not None and warm > best:
            seconds[candidate], notes[candidate] = warm, "forward only, stopped"
            continue
        seconds[candidate] = min(one_pass(model, batch, precision, workload.mode) for _ in range(TIMED_PASSES))
    return seconds, notes


# --------------------------------------------------------------------------------------------- choices


def decide(setting: str, model: nn.Module, workload: Workload, measure: Callable[[], Choice],
           fallback: str, machine: Machine | None = None, force: bool = False, refresh: bool = False) -> Choice:
    """The cached choice for this machine, model and shape; else a fresh measurement (stored) when the run is long
    enough or force; else fallback, unmeasured. refresh: measure again and replace the cached entry."""
    machine = machine or current_machine()
    key = entry_key(machine, setting, model_key(model), tokens_bucket(workload.tokens_per_batch), workload.mode)
    if not refresh and (cached := cached_choice(key)) is not None:
        return cached
    force = force or refresh
    if not (force or workload.worth_measuring()):
        unit = "steps" if workload.mode == "train" else "batches"
        return Choice(setting, fallback, source="default",
                      notes={"why": f"{workload.passes} {unit}: too short a run to measure"})
    choice = measure()
    store_choice(key, choice, machine)
    return choice


def choose_precision(model: nn.Module, workload: Workload, requested: str = "auto") -> Choice:
    """The fastest precision for this model and shape ('auto'). For an explicit request on a CPU, the same
    measurement with the requested precision timed in full however slow, so that emulation_warning can say by
    how much (measured even for short runs: a slow precision costs most there relative to the run)."""
    device = next(model.parameters()).device.type
    candidates = precision_candidates(device, model, workload.shape()[1])
    if requested != "auto" and requested not in candidates:
        candidates = ["fp32", requested]
    explicit = requested not in ("auto", "fp32") and device == "cpu"

    def measure(stop_slow: bool = True) -> Choice:
        with measuring(model, workload.mode):
            seconds, notes = time_candidates(model, workload, candidates, lambda c: c, stop_slow)
        fastest = min(seconds, key=seconds.get)
        if seconds[fastest] * MARGIN > seconds["fp32"]:  # within noise of fp32: keep the exact one
            fastest = "fp32"
        return Choice("precision", fastest, seconds, notes, workload.shape())

    choice = decide("precision", model, workload, measure, fallback="fp32", force=explicit)
    if explicit and (requested in choice.notes or requested not in choice.seconds):
        choice = decide("precision", model, workload, lambda: measure(stop_slow=False), fallback="fp32",
                        refresh=True)
    return choice


def emulation_warning(choice: Choice, requested: str) -> str | None:
    """One line when an explicitly requested precision ran measurably slower than fp32."""
    if requested in ("auto", "fp32") or requested not in choice.seconds or "fp32" not in choice.seconds:
        return None
    factor = choice.seconds[requested] / choice.seconds["fp32"]
    if factor < EMULATED_FACTOR:
        return None
    bound = "at least " if requested in choice.notes else ""
    return (f"--precision {requested} runs {bound}{factor:.1f}x slower than fp32 on this machine (measured at "
            f"{choice.shape[0]} x {choice.shape[1]} tokens: {choice.seconds[requested]:.3f} s against "
            f"{choice.seconds['fp32']:.3f} s per pass); the hardware emulates it. --precision auto picks the faster.")


def choose_threads(model: nn.Module, workload: Workload, precision: str) -> Choice:
    """All of this process's threads, or half of them where that measured faster (hyper-threads sharing one
    core's vector units, a noisy neighbour)."""
    threads = torch.get_num_threads()
    if threads < 2:
        return Choice("threads", str(threads), source="default", notes={"why": "one thread available"})
    candidates = [str(threads), str(threads // 2)]

    def configure(candidate: str) -> str:
        torch.set_num_threads(int(candidate))
        return precision

    def measure() -> Choice:
        with measuring(model, workload.mode):
            seconds, notes = time_candidates(model, workload, candidates, configure)
        fewer = seconds[candidates[1]] * THREADS_GAIN < seconds[candidates[0]] and candidates[1] not in notes
        return Choice("threads", candidates[1] if fewer else candidates[0], seconds, notes, workload.shape())

    return decide("threads", model, workload, measure, fallback=str(threads))


def choose_fused_optimizer(model: nn.Module, workload: Workload) -> Choice:
    """AdamW's fused kernel or its foreach one, timed on copies of the trainable parameters (the weights are
    not touched)."""
    device = next(model.parameters()).device

    def measure() -> Choice:
        copies = [p.detach().clone().requires_grad_(True) for p in model.parameters() if p.requires_grad]
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):  # the run's RNG untouched
            for copy in copies:
                copy.grad = torch.randn_like(copy)
        seconds = {}
        for fused in ("fused", "foreach"):
            try:
                optimizer = torch.optim.AdamW(copies, lr=1e-5, fused=fused == "fused", foreach=fused == "foreach")
            except RuntimeError:
                continue
            optimizer.step()
            times = []
            for _ in range(3):
                started = time.perf_counter()
                optimizer.step()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - started)
            seconds[fused] = min(times)
        return Choice("fused_optimizer", min(seconds, key=seconds.get), seconds, {}, workload.shape())

    return decide("fused_optimizer", model, workload, measure, fallback="fused")


def choose_compile(model: nn.Module, workload: Workload, precision: str, eager_seconds: float | None) -> Choice:
    """torch.compile only where it was measured to pay over this run: its compile time plus the compiled steps
    against the eager steps. Measured only for runs expected to last COMPILE_MIN_EAGER_SECONDS in eager mode."""
    if eager_seconds is None or eager_seconds * workload.passes < COMPILE_MIN_EAGER_SECONDS:
        why = ("eager step time not measured" if eager_seconds is None else
               f"about {eager_seconds * workload.passes / 60:.0f} min in eager mode: too short for compiling to pay")
        return Choice("torch_compile", "false", source="default", notes={"why": why})

    def measure() -> Choice:
        with measuring(model, workload.mode):
            compiled = torch.compile(model, dynamic=True)
            batch = random_batch(model, *workload.shape())
            started = time.perf_counter()
            one_pass(compiled, batch, precision, workload.mode)
            compile_seconds = time.perf_counter() - started
            step = min(one_pass(compiled, batch, precision, workload.mode) for _ in range(TIMED_PASSES))
        return Choice("torch_compile", "false", {"eager": eager_seconds, "compiled": step,
                                                 "compile": compile_seconds}, {}, workload.shape())

    choice = decide("torch_compile", model, workload, measure, fallback="false")
    if choice.source == "default":
        return choice
    # The measurement is cached; whether it pays depends on this run's length. Twice the compile time: dynamic
    # padding brings a few more compilations.
    saved = (eager_seconds - choice.seconds["compiled"]) * workload.passes
    return replace(choice, value="true" if saved > 2 * choice.seconds["compile"] else "false")
