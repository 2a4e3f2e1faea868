"""Import a Python v2 app's ``function_app.py`` and index its functions by trigger.

The Python worker does the same at start: it imports the script file, finds
the one ``FunctionApp`` (``func.FunctionApp``, ``df.DFApp``; blueprints are
registered into it), and calls ``app.get_functions()`` exactly once: a second
call raises on "duplicate" names, because the app remembers what it indexed.

Everything that would stop a function from being served is found here, before
any storage is touched, and reported at once as an ``AppLoadError``: a syntax
or import error with its file and line, or a problem naming the function
(duplicate names, a trigger or binding this host does not serve, a parameter
with no binding).
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import logging
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator, Mapping, TypeVar

from .errors import AppLoadError

DEFAULT_SCRIPT_FILE = "function_app.py"

HTTP_TRIGGER = "httpTrigger"
QUEUE_TRIGGER = "queueTrigger"
TIMER_TRIGGER = "timerTrigger"
ORCHESTRATION_TRIGGER = "orchestrationTrigger"
ACTIVITY_TRIGGER = "activityTrigger"
ENTITY_TRIGGER = "entityTrigger"
SUPPORTED_TRIGGERS = (HTTP_TRIGGER, QUEUE_TRIGGER, TIMER_TRIGGER, ORCHESTRATION_TRIGGER, ACTIVITY_TRIGGER,
                      ENTITY_TRIGGER)
# Non-trigger bindings this host serves: (type, direction).
SUPPORTED_BINDINGS = {("http", "out"), ("queue", "out"), ("table", "out"), ("blob", "out"), ("durableClient", "in")}
_SUPPORTED_TEXT = ("triggers " + ", ".join(SUPPORTED_TRIGGERS) + "; other bindings: http, queue, table and blob "
                   "outputs, and the durableClient input")
# The worker passes a func.Context to a parameter of this name, bound or not.
CONTEXT_PARAMETER = "context"


@dataclass(frozen=True)
class FunctionInfo:
    """One function of the app, as the host serves it.

    ``trigger`` and ``bindings`` are plain JSON-like dicts (the function.json
    shape: ``type``, ``direction`` in lower case, ``name`` and the binding's
    own keys); ``bindings`` includes the trigger. ``user_function`` is what
    the decorators left: for orchestrators the SDK's JSON-in/JSON-out handle,
    for durable client functions the SDK's async wrapper (client by keyword).
    """

    name: str
    trigger_type: str
    trigger: Mapping[str, Any]
    bindings: tuple[Mapping[str, Any], ...]
    user_function: Callable[..., Any]
    location: str = ""

    @property
    def trigger_parameter(self) -> str:
        """The parameter the trigger value is passed to (``context_name``, ``input_name``, ``arg_name``)."""
        return self.trigger["name"]

    @property
    def trigger_annotation(self) -> Any:
        """The trigger parameter's annotation (``str``, ``func.QueueMessage``...; a string under
        ``from __future__ import annotations``), or None."""
        try:
            return inspect.signature(self.user_function).parameters[self.trigger_parameter].annotation
        except (KeyError, TypeError, ValueError):
            return None

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.user_function)

    @property
    def outputs(self) -> tuple[Mapping[str, Any], ...]:
        return tuple(b for b in self.bindings if b.get("direction") == "out")

    @property
    def return_binding(self) -> Mapping[str, Any] | None:
        return next((b for b in self.outputs if b["name"] == "$return"), None)

    @property
    def durable_client(self) -> Mapping[str, Any] | None:
        return next((b for b in self.bindings if b.get("type") == "durableClient"), None)

    def describe(self) -> str:
        return f"function {self.name!r}" + (f" ({self.location})" if self.location else "")


F = TypeVar("F")


def find_ignoring_case(functions: Mapping[str, F], name: str) -> F | None:
    """``functions[name]``, else the one whose name differs only in case: the Functions host matches
    function names case-insensitively (orchestrators, activities and HTTP admin calls alike)."""
    exact = functions.get(name)
    if exact is not None:
        return exact
    lower = name.lower()
    return next((f for n, f in functions.items() if n.lower() == lower), None)


def _trigger_view(trigger_type: str) -> property:
    def view(index: "FunctionIndex") -> dict[str, FunctionInfo]:
        return index.by_trigger(trigger_type)

    return property(view, doc=f"The app's {trigger_type} functions by name.")


@dataclass(frozen=True)
class FunctionIndex:
    """The app's functions by name (registration order), with views by trigger type."""

    script_root: Path
    app_file: Path
    functions: Mapping[str, FunctionInfo]
    module: ModuleType | None = field(default=None, repr=False, compare=False)
    # What stops functions from being served (only when loaded with strict=False).
    problems: tuple[str, ...] = ()

    def by_trigger(self, trigger_type: str) -> dict[str, FunctionInfo]:
        return {n: f for n, f in self.functions.items() if f.trigger_type == trigger_type}

    # The functions of one trigger type, by name (a read-only view per type).
    http = _trigger_view(HTTP_TRIGGER)
    queues = _trigger_view(QUEUE_TRIGGER)
    timers = _trigger_view(TIMER_TRIGGER)
    orchestrators = _trigger_view(ORCHESTRATION_TRIGGER)
    activities = _trigger_view(ACTIVITY_TRIGGER)
    entities = _trigger_view(ENTITY_TRIGGER)

    @property
    def has_durable_functions(self) -> bool:
        return bool(self.orchestrators or self.activities or self.entities)

    def find(self, name: str, trigger_type: str | None = None) -> FunctionInfo | None:
        """The function called ``name``, ignoring case as the Functions host does."""
        exact = find_ignoring_case(self.functions, name)
        if exact is not None and trigger_type is not None and exact.trigger_type != trigger_type:
            return None
        return exact

    def __iter__(self) -> Iterator[FunctionInfo]:
        return iter(self.functions.values())

    def __len__(self) -> int:
        return len(self.functions)

    def __getitem__(self, name: str) -> FunctionInfo:
        return self.functions[name]


def load_app(script_root: str | Path, script_file: str | None = None, *, strict: bool = True) -> FunctionIndex:
    """Import the app in ``script_root`` and index its functions.

    AppLoadError when the app cannot be imported or has no FunctionApp; also,
    with ``strict`` (the default), when any function cannot be served. With
    ``strict=False`` those are left in ``FunctionIndex.problems`` so a caller
    can report them together with its own checks.
    """
    root = Path(script_root).resolve()
    app_file = root / (script_file or DEFAULT_SCRIPT_FILE)
    if not app_file.is_file():
        raise AppLoadError([
            f"There is no {app_file.name} in {root}.\n"
            "funcpy start serves Python v2 apps: a function_app.py that creates `app = func.FunctionApp()` "
            "(or `df.DFApp()`) and declares functions with its decorators. Use --script-root to point at "
            "the folder that holds it."], app_file=app_file)
    module = _import(app_file, root)
    app = _find_app(module, app_file)
    previous_disable = logging.root.manager.disable
    # get_functions() warns "Auth level is not applied to non http function app": true and useless here.
    logging.disable(logging.WARNING)
    try:
        functions = app.get_functions()  # exactly once: a second call reports every name as a duplicate
    except (ValueError, TypeError) as e:
        raise AppLoadError([f"{type(e).__name__}: {e}"], app_file=app_file) from e
    finally:
        logging.disable(previous_disable)

    infos: dict[str, FunctionInfo] = {}
    problems: list[str] = []
    seen: dict[str, str] = {}
    for f in functions:
        info = _info(f, root)
        other = seen.get(info.name.lower())
        if other is not None:
            problems.append(f"Function names must be unique, ignoring case: {info.describe()} and function "
                            f"{other!r} clash. Rename one with @app.function_name(name=...).")
            continue
        seen[info.name.lower()] = info.name
        problems += check_function(info)
        infos[info.name] = info
    if problems and strict:
        raise AppLoadError(problems, app_file=app_file)
    return FunctionIndex(root, app_file, infos, module, tuple(problems))


def check_function(info: FunctionInfo) -> list[str]:
    """Problems that stop ``info`` from being served: unsupported bindings, unbound parameters."""
    problems = []
    if info.trigger_type not in SUPPORTED_TRIGGERS:
        problems.append(f"{info.describe()}: trigger type {info.trigger_type!r} is not supported by funcpy start. "
                        f"Supported: {_SUPPORTED_TEXT}.")
    for b in info.bindings:
        if b is info.trigger:
            continue
        if (b.get("type"), b.get("direction")) not in SUPPORTED_BINDINGS:
            problems.append(f"{info.describe()}: binding {b.get('name')!r} of type {b.get('type')!r} "
                            f"(direction {b.get('direction')}) is not supported by funcpy start. "
                            f"Supported: {_SUPPORTED_TEXT}.")
    if info.trigger_type not in (ORCHESTRATION_TRIGGER, ENTITY_TRIGGER):
        problems += _check_parameters(info)
    return problems


def _check_parameters(info: FunctionInfo) -> list[str]:
    # The SDK's orchestrator/entity handles take the context positionally whatever its name; other
    # functions get every binding by keyword, so names must match both ways (as the worker checks).
    try:
        params = inspect.signature(info.user_function).parameters
    except (TypeError, ValueError):
        return []
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return []
    bound = {b["name"] for b in info.bindings if b["name"] != "$return"}
    names = set(params)
    missing = sorted(bound - names)
    extra = sorted(n for n in names - bound - {CONTEXT_PARAMETER}
                   if params[n].default is inspect.Parameter.empty)
    problems = []
    if missing:
        problems.append(f"{info.describe()}: binding(s) {', '.join(missing)} have no parameter of that name. "
                        "Each binding's name (arg_name, client_name, input_name...) must be a parameter.")
    if extra:
        problems.append(f"{info.describe()}: parameter(s) {', '.join(extra)} are not bound to anything. "
                        f"Add a binding decorator for each, or remove them ({CONTEXT_PARAMETER!r} is the only "
                        "free name: it receives the invocation context).")
    return problems


def _info(function: Any, root: Path) -> FunctionInfo:
    bindings = tuple(_normalize(json.loads(raw)) for raw in function.get_raw_bindings())
    trigger_type = function.get_trigger().type
    trigger = next(b for b in bindings if b.get("type") == trigger_type)
    user = function.get_user_function()
    return FunctionInfo(function.get_function_name(), trigger_type, trigger, bindings, user, _where(user, root))


def _normalize(binding: dict[str, Any]) -> dict[str, Any]:
    # get_raw_bindings renders enums by name ("IN", "ANONYMOUS"); function.json uses lower case.
    out = dict(binding)
    if isinstance(out.get("direction"), str):
        out["direction"] = out["direction"].lower()
    if isinstance(out.get("authLevel"), str):
        out["authLevel"] = out["authLevel"].lower()
    if isinstance(out.get("methods"), list):
        out["methods"] = [str(m).upper() for m in out["methods"]]
    return out


def _where(fn: Callable, root: Path) -> str:
    target = inspect.unwrap(fn)
    try:
        file = Path(inspect.getsourcefile(target) or "")
        line = inspect.getsourcelines(target)[1]
    except (TypeError, OSError):
        return ""
    try:
        file = file.resolve().relative_to(root)
    except ValueError:
        return ""  # defined outside the app (e.g. the SDK's own wrappers): no useful location
    return f"{file}:{line}"


def _find_app(module: ModuleType, app_file: Path):
    from azure.functions import FunctionRegister

    apps = {id(v): (k, v) for k, v in vars(module).items() if isinstance(v, FunctionRegister)}
    if not apps:
        raise AppLoadError([
            f"{app_file.name} defines no function app. Create one at module level, e.g.\n"
            "    app = func.FunctionApp()      # or: app = df.DFApp()  for Durable Functions\n"
            "and declare functions with its decorators (@app.route, @app.queue_trigger, ...). "
            "Blueprints must be registered with app.register_functions(bp)."], app_file=app_file)
    if len(apps) > 1:
        names = ", ".join(sorted(k for k, _ in apps.values()))
        raise AppLoadError([f"{app_file.name} defines more than one function app ({names}); there must be "
                            "exactly one. Put extra functions in a func.Blueprint and register it."],
                           app_file=app_file)
    return next(iter(apps.values()))[1]


def _import(app_file: Path, root: Path) -> ModuleType:
    """Import ``app_file`` as module ``function_app`` with the script root on sys.path."""
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    name = app_file.stem
    spec = importlib.util.spec_from_file_location(name, app_file)
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(name)
    # Registered before running, as a normal import does: the SDK resolves decorated functions through it.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        _restore(name, previous)
        raise _syntax_error(e, app_file) from None
    except (Exception, SystemExit) as e:
        _restore(name, previous)
        raise _import_error(e, app_file, root) from None
    return module


def _restore(name: str, previous: ModuleType | None) -> None:
    if previous is None:
        sys.modules.pop(name, None)
    else:
        sys.modules[name] = previous


def _syntax_error(e: SyntaxError, app_file: Path) -> AppLoadError:
    file = e.filename or str(app_file)
    line = e.lineno or 0
    text = (e.text or "").rstrip("\n")
    caret = ""
    if text and e.offset:
        stripped = text.lstrip()
        caret = "\n    " + " " * max(0, e.offset - 1 - (len(text) - len(stripped))) + "^"
        text = stripped
    shown = f"\n    {text}{caret}" if text else ""
    return AppLoadError([f'File "{file}", line {line}{shown}\n{type(e).__name__}: {e.msg}'],
                        app_file=app_file, location=(file, line))


def _import_error(e: BaseException, app_file: Path, root: Path) -> AppLoadError:
    frames = traceback.extract_tb(e.__traceback__)
    mine = [f for f in frames if _within(f.filename, root)]
    shown = mine[-5:] or [f for f in frames if f.filename == str(app_file)][-1:]
    lines = []
    for f in shown:
        lines.append(f'File "{f.filename}", line {f.lineno}, in {f.name}')
        if f.line:
            lines.append(f"    {f.line.strip()}")
    lines.append(f"{type(e).__name__}: {e}")
    if isinstance(e, ModuleNotFoundError):
        lines.append(f"Install the package that provides {e.name!r} in this Python environment "
                     "(and list it in requirements.txt), or fix the import.")
    location = (shown[-1].filename, shown[-1].lineno or 0) if shown else (str(app_file), 0)
    return AppLoadError(["\n".join(lines)], app_file=app_file, location=location)


def _within(filename: str, root: Path) -> bool:
    """True for the app's own source files (not installed packages, even in a venv under the root)."""
    try:
        path = Path(filename).resolve()
        path.relative_to(root)
    except (ValueError, OSError):
        return False
    return "site-packages" not in path.parts and not path.is_relative_to(Path(sys.prefix).resolve())
