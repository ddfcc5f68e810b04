"""Strategies by name: the built-ins plus plugins of the entry-point group `liqguard.strategies`.

Contents:
- register: class decorator used by the built-in planners (and usable by plugins)
- check_strategy: the load-time protocol check, with errors that say what to fix
- get_strategy, available: look-up by name (built-ins and entry points loaded on first use)
"""

from __future__ import annotations

import importlib
import inspect
from importlib.metadata import EntryPoint, entry_points
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from strategies.base import PluginError, Strategy, UnknownStrategyError

ENTRY_POINT_GROUP = "liqguard.strategies"
_BUILTIN_MODULES = (
    "strategies.reduce_exposure",
    "strategies.stop_loss",
    "strategies.hedge",
    "strategies.halt",
)

_registry: dict[str, type[Strategy]] = {}
_loaded = False

T = TypeVar("T")


def check_strategy(cls: object, origin: str = "") -> type[Strategy]:
    """Check a class against the Strategy protocol; raise PluginError naming the fix."""
    where = f" (from {origin})" if origin else ""
    label = getattr(cls, "__qualname__", repr(cls))
    if not inspect.isclass(cls):
        raise PluginError(f"strategy plugin {label}{where} must be a class, got {cls!r}")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name.strip():
        raise PluginError(
            f"strategy plugin {label}{where}: set a class attribute `name: ClassVar[str]` "
            "to a non-empty string (the name policies use)"
        )
    params = getattr(cls, "Params", None)
    if not (inspect.isclass(params) and issubclass(params, BaseModel)):
        raise PluginError(
            f"strategy plugin {name!r}{where}: set `Params` to a pydantic BaseModel subclass "
            "(with model_config = ConfigDict(extra='forbid'))"
        )
    if not isinstance(getattr(cls, "reduces_exposure", None), bool):
        raise PluginError(
            f"strategy plugin {name!r}{where}: set `reduces_exposure` to True (only reduce-only "
            "orders, enforced) or False"
        )
    plan = getattr(cls, "plan", None)
    if not callable(plan):
        raise PluginError(
            f"strategy plugin {name!r}{where}: define `def plan(self, ctx, params) -> Plan`"
        )
    try:
        inspect.signature(cls).bind()
    except TypeError:
        raise PluginError(
            f"strategy plugin {name!r}{where}: the class must be constructible with no "
            "arguments; take settings through `Params` instead"
        ) from None
    try:
        inspect.signature(plan).bind(None, None, None)
    except TypeError:
        raise PluginError(
            f"strategy plugin {name!r}{where}: `plan` must take (self, ctx, params)"
        ) from None
    try:
        params()
    except ValidationError:
        raise PluginError(
            f"strategy plugin {name!r}{where}: every field of `Params` needs a default, "
            "so a policy may omit params"
        ) from None
    return cls  # type: ignore[return-value]


def register(cls: type[T]) -> type[T]:
    """Add a strategy class to the registry under its `name` (checked now, not at call time)."""
    checked = check_strategy(cls, origin=cls.__module__)
    existing = _registry.get(checked.name)
    if existing is not None and existing is not checked:
        raise PluginError(
            f"strategy name {checked.name!r} is taken by {existing.__module__}."
            f"{existing.__qualname__}; give {cls.__qualname__} another name"
        )
    _registry[checked.name] = checked
    return cls


def _load_entry_point(ep: EntryPoint) -> None:
    origin = f"entry point {ep.name!r} = {ep.value!r} in group {ENTRY_POINT_GROUP!r}"
    try:
        obj = ep.load()
    except Exception as exc:
        raise PluginError(
            f"cannot load {origin}: {type(exc).__name__}: {exc}; check the module path and "
            "that the plugin package is installed"
        ) from exc
    cls = check_strategy(obj, origin)
    if cls.name != ep.name:
        raise PluginError(
            f"{origin}: the class is named {cls.name!r}; name the entry point the same"
        )
    if _registry.get(cls.name) not in (None, cls):
        raise PluginError(f"{origin}: the name {cls.name!r} is already a strategy; rename it")
    _registry[cls.name] = cls


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        _load_entry_point(ep)
    _loaded = True


def reload() -> None:
    """Forget loaded entry points and load again (tests, or after installing a plugin)."""
    global _loaded
    builtin = {n: c for n, c in _registry.items() if c.__module__ in _BUILTIN_MODULES}
    _registry.clear()
    _registry.update(builtin)
    _loaded = False
    _ensure_loaded()


def available() -> list[str]:
    """The names a policy may use, sorted."""
    _ensure_loaded()
    return sorted(_registry)


def get_strategy(name: str) -> type[Strategy]:
    """The strategy class registered under `name`; UnknownStrategyError lists the known ones."""
    _ensure_loaded()
    try:
        return _registry[name]
    except KeyError:
        known = ", ".join(sorted(_registry))
        raise UnknownStrategyError(
            f"unknown strategy {name!r}; known strategies: {known} (plugins register under "
            f"the entry-point group {ENTRY_POINT_GROUP!r})"
        ) from None
