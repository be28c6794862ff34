"""The plugin boundary: every call into plugin code passes :func:`call`.

An exception raised by plugin code, or a value of the wrong kind, becomes a
:class:`driver.errors.PluginError` that names the plugin, its file, the hook and the name it
registered (an :class:`Origin`). Errors a plugin raises on purpose (:class:`ConfigError` to refuse
a run, any :class:`BenchDriverError`) pass through unchanged; so do KeyboardInterrupt and
SystemExit. :class:`Guarded` wraps a registered object so that each of its methods is called
through the guard too: consumers never call plugin code directly.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from driver.errors import BenchDriverError, PluginError
from driver.records import Record

#: ``check(value) -> problem``: None when *value* is of the right kind, else what is wrong with it.
Check = Callable[[Any], "str | None"]


class Origin(Record):
    """Where a piece of plugin code comes from, for error messages."""

    plugin: str
    path: str | None
    hook: str
    kind: str | None = None  # the registry ("compute_methods"), None for a call hook
    name: str | None = None  # the name it registered

    def __str__(self) -> str:
        where = f" ({self.path})" if self.path else ""
        what = f"{self.kind[:-1].replace('_', ' ')} {self.name!r} from " if self.kind else ""
        return f"{what}plugin {self.plugin!r}{where}, hook {self.hook}"


def call(origin: Origin, what: str, fn: Callable[..., Any], *args: Any,
         returns: Check | None = None, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` as plugin code: its failures become a PluginError naming *origin*;
    *what* says which call (``"report()"``); *returns* checks the value returned."""
    try:
        value = fn(*args, **kwargs)
    except BenchDriverError:
        raise
    except Exception as exc:
        raise PluginError(f"{origin}: {what} raised {type(exc).__name__}: {exc}") from exc
    if returns is not None:
        problem = returns(value)
        if problem is not None:
            raise PluginError(f"{origin}: {what} returned {_short(value)}: {problem}")
    return value


class Guarded:
    """A registered object whose every method call goes through :func:`call`.

    Attribute reads are plain (``sampler.columns``); calling the object itself (a factory or a
    class) is guarded too, and :meth:`create` wraps what it makes in the same guard.
    """

    def __init__(self, target: Any, origin: Origin) -> None:
        self._target = target
        self.origin = origin

    @property
    def target(self) -> Any:
        """The plugin's own object (for type checks and listings)."""
        return self._target

    def __getattr__(self, attr: str) -> Any:
        value = call(self.origin, f".{attr}", getattr, self._target, attr)
        if callable(value) and not isinstance(value, type):
            return lambda *args, returns=None, **kwargs: call(
                self.origin, f"{attr}()", value, *args, returns=returns, **kwargs)
        return value

    def has(self, attr: str) -> bool:
        """Whether the object offers *attr* (an optional lifecycle method, say)."""
        return callable(getattr(self._target, attr, None))

    def __call__(self, *args: Any, returns: Check | None = None, **kwargs: Any) -> Any:
        return call(self.origin, f"{_name(self._target)}()", self._target, *args,
                    returns=returns, **kwargs)

    def create(self, *args: Any, returns: Check | None = None, **kwargs: Any) -> Guarded:
        """Call the factory (or class) and guard what it returns the same way."""
        return Guarded(self(*args, returns=returns, **kwargs), self.origin)


def finite_number(value: Any) -> str | None:
    """A compute method's value: a finite real number (not a bool, a string, None or NaN)."""
    if isinstance(value, bool) or not hasattr(value, "__float__") or isinstance(value, str):
        return "expected a finite number (float)"
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return "expected a finite number (float)"
    return None if math.isfinite(number) else "expected a finite number, not NaN or infinity"


def instance_of(kind: type, allow_none: bool = False) -> Check:
    """A check that the value is an instance of *kind* (or None when *allow_none*)."""

    def check(value: Any) -> str | None:
        if value is None and allow_none:
            return None
        if isinstance(value, kind):
            return None
        return f"expected a {kind.__name__}{' or None' if allow_none else ''}"

    return check


def _name(target: Any) -> str:
    return str(getattr(target, "__name__", type(target).__name__))


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
