"""Index a v2-model function app the way the Python worker does.

Import the module, find exactly one ``FunctionRegister`` (``FunctionApp``, ``AsgiFunctionApp``, ...),
call ``get_functions()`` ONCE (it is not idempotent), and keep what the host learns from each function:
its raw bindings (the JSON strings the worker sends in ``RpcFunctionMetadata.raw_bindings``) and the
user function with the parameter checks the worker applies at load time.
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class AppLoadError(Exception):
    """The app cannot be indexed; the real worker reports "Worker failed to index functions"."""


@dataclass
class IndexedFunction:
    name: str
    raw_bindings: list[str]
    bindings: list[dict[str, Any]]
    user_function: Callable[..., Any]
    retry_policy: dict | None

    @property
    def trigger(self) -> dict[str, Any]:
        return next(b for b in self.bindings if b["type"].endswith("Trigger") and _is_in(b))

    @property
    def trigger_type(self) -> str:
        return self.trigger["type"]

    @property
    def outputs(self) -> list[dict[str, Any]]:
        """Output bindings passed to the function as ``func.Out`` parameters."""
        return [b for b in self.bindings if _is_out(b) and b["name"] != "$return"]

    @property
    def extra_inputs(self) -> list[dict[str, Any]]:
        """Input bindings other than the trigger (blob/table input, ...)."""
        return [b for b in self.bindings if _is_in(b) and b is not self.trigger]

    @property
    def return_binding(self) -> dict[str, Any] | None:
        return next((b for b in self.bindings if b["name"] == "$return"), None)

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.user_function)

    @property
    def requires_context(self) -> bool:
        return "context" in inspect.signature(self.user_function).parameters and "context" not in {
            b["name"] for b in self.bindings
        }


def _is_in(binding: dict) -> bool:
    return str(binding.get("direction", "")).upper() in ("IN", "INOUT")


def _is_out(binding: dict) -> bool:
    return str(binding.get("direction", "")).upper() in ("OUT", "INOUT")


def import_app_module(app_dir: Path, module_name: str) -> Any:
    """Import ``module_name`` from ``app_dir`` (first on sys.path, as the worker's script root)."""
    app_dir = app_dir.resolve()
    if str(app_dir) not in sys.path:
        sys.path.insert(0, str(app_dir))
    cached = sys.modules.get(module_name)
    if cached is not None and Path(getattr(cached, "__file__", "") or "").resolve().parent != app_dir:
        del sys.modules[module_name]  # a same-named module of another app (in-process tests)
    try:
        return importlib.import_module(module_name)
    except Exception as error:
        raise AppLoadError(f"Error in index_function_app: {type(error).__name__}: {error}") from error


def find_function_app(module: Any, script_file_name: str) -> Any:
    """Exactly one top-level FunctionRegister, with the worker's own error messages."""
    from azure.functions import FunctionRegister

    app = None
    for attribute in dir(module):
        candidate = getattr(module, attribute, None)
        if isinstance(candidate, FunctionRegister):
            if app is not None:
                raise AppLoadError(
                    f"More than one {app.__class__.__name__} or other top level function app instances are defined."
                )
            app = candidate
    if app is None:
        raise AppLoadError(f"Could not find top level function app instances in {script_file_name}.")
    return app


def _check_parameters(name: str, user_function: Callable, bindings: list[dict]) -> None:
    """The worker's load-time check: every binding is a parameter and every parameter a binding."""
    params = set(inspect.signature(user_function).parameters) - {"context"}
    declared = {b["name"] for b in bindings if b["name"] != "$return"}
    if params - declared:
        raise AppLoadError(
            f"FunctionLoadError: cannot load the {name} function: the following parameters are declared in "
            f"Python but not in the function definition (function.json or function decorators): {params - declared}"
        )
    if declared - params:
        raise AppLoadError(
            f"FunctionLoadError: cannot load the {name} function: the following parameters are declared in "
            f"the function definition (function.json or function decorators) but not in Python: {declared - params}"
        )


def index_functions(app: Any) -> list[IndexedFunction]:
    try:
        functions = app.get_functions()  # once per app instance: a second call raises
    except Exception as error:
        raise AppLoadError(f"Error in index_function_app: {type(error).__name__}: {error}") from error
    indexed = []
    for function in functions:
        name = function.get_function_name()
        raw = function.get_raw_bindings()
        bindings = [json.loads(text) for text in raw]
        user_function = function.get_user_function()
        if not any(b["type"].endswith("Trigger") and _is_in(b) for b in bindings):
            raise AppLoadError(f"Function {name} does not have a trigger.")
        _check_parameters(name, user_function, bindings)
        indexed.append(
            IndexedFunction(name, raw, bindings, user_function, function.get_settings_dict("retry_policy"))
        )
    return indexed


def load_functions(app_dir: Path, module_name: str = "function_app") -> list[IndexedFunction]:
    module = import_app_module(app_dir, module_name)
    return index_functions(find_function_app(module, f"{module_name}.py"))
