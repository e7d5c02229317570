"""The precision a PyTorch classifier predicts in: 'auto' measured (finetext.hardware.calibrate), an explicit
choice kept, with one warning per process when it measured slower than fp32."""

from __future__ import annotations

import logging

from torch import nn

from finetext.hardware.calibrate import Workload, choose_precision, emulation_warning, split_choice
from finetext.inference.classifier import Classifier

log = logging.getLogger("finetext")
_warned: set[str] = set()


def inference_precision(clf: Classifier, workload: Workload) -> str:
    """fp32 or bf16 for this batch shape. Backends other than PyTorch run the graph's own types (fp32)."""
    if clf.precision == "fp32" or not isinstance(clf.model, nn.Module):
        return "fp32"
    if "+" in clf.precision:  # resolved already (a server's, at start)
        return clf.precision
    choice = choose_precision(clf.model, workload, clf.precision)
    if clf.precision == "auto":
        if choice.source == "measured":
            log.info("inference %s", choice.line())
        return choice.value
    if (warning := emulation_warning(choice, clf.precision)) and warning not in _warned:
        _warned.add(warning)
        log.warning(warning)
    return clf.precision


def serving_precision(clf: Classifier, workload: Workload) -> str:
    """The precision a server keeps for its whole life: measured once at start on the workload (its requests
    are not known yet: backend_choice.serving_workload), or taken from the cache."""
    if clf.precision == "fp32" or not isinstance(clf.model, nn.Module):
        return "fp32"
    # With the kernel spelled out ('bf16+fused'), inference_precision takes it as resolved: no cache lookup per batch.
    precision, kernel = split_choice(inference_precision(clf, workload))
    return f"{precision}+{kernel}"
