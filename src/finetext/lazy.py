"""What registries name by "module:attribute" and import only when used, so that reading a registry (the CLI's
choices, config checks, `finetext --help`) loads no ML library."""

from __future__ import annotations

import importlib
from typing import Any


def import_object(spec: str) -> Any:
    """The attribute named by "package.module:attribute", importing its module now."""
    module, _, attribute = spec.partition(":")
    return getattr(importlib.import_module(module), attribute)
