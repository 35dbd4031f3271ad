"""Thinking methods: the registry (:mod:`.registry`) and the built-in methods, one module each, registered in this
order: ``direct``, ``cot``, ``soft``, ``hidden``, ``switch``, ``gated``, then the methods of trained checkpoints
(``vecgen train``): ``coconut``, ``pause``."""

# isort: off  (the import order is the registration order, the order --methods lists them)
from . import direct  # noqa: F401  (each module registers its method)
from . import cot  # noqa: F401
from . import soft  # noqa: F401
from . import hidden  # noqa: F401
from . import switch  # noqa: F401
from . import gated  # noqa: F401
from . import coconut  # noqa: F401
from . import pause  # noqa: F401
# isort: on
from .registry import (
    MethodSettings,
    RowContext,
    StepRule,
    ThinkingMethod,
    check_method_settings,
    get_method,
    method_names,
    methods_with,
    register_method,
    setting_fields,
    split_settings,
    unregister_method,
)

__all__ = ["MethodSettings", "RowContext", "StepRule", "ThinkingMethod", "check_method_settings", "get_method",
           "method_names", "methods_with", "register_method", "setting_fields", "split_settings",
           "unregister_method"]
