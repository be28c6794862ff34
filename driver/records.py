"""``Record``: the base of the pipeline's small immutable values (``class RunRecord(Record)``).

To mypy and to a reader, ``Record`` *is* :class:`typing.NamedTuple`: the same class syntax, the
same checks. At run time it makes the same class (a :func:`collections.namedtuple` with the
body's methods, docstring and defaults) without one step of typing's: checking every field's
annotation. Under ``from __future__ import annotations`` each annotation is a string, and
typing compiles each one into a ``ForwardRef``: about 125,000 instructions per field, ~20M for
the ~30 records a run imports, 7% of a trivial run (benchmarks/startup_overhead.py, issue 13).
The annotations are kept as they were written (strings), as ``__annotations__``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["Record"]

if TYPE_CHECKING:
    from typing import NamedTuple as Record
else:
    import collections

    # what typing.NamedTuple refuses in a body, and what it does not copy onto the class
    _PROHIBITED = frozenset({"__new__", "__init__", "__slots__", "__getnewargs__", "_fields",
                             "_field_defaults", "_make", "_replace", "_asdict", "_source"})
    _SPECIAL = frozenset({"__module__", "__name__", "__annotations__"})

    class _RecordMeta(type):
        """Makes each ``class X(Record)`` a namedtuple, as ``typing.NamedTupleMeta`` does."""

        def __new__(mcs, name, bases, namespace):
            if not bases:  # Record itself
                return super().__new__(mcs, name, bases, namespace)
            if bases != (Record,):
                raise TypeError(f"{name}: a Record derives from Record alone")
            annotations = namespace.get("__annotations__", {})
            fields = list(annotations)
            defaults = [namespace[field] for field in fields if field in namespace]
            if defaults and any(field not in namespace for field in fields[-len(defaults):]):
                raise TypeError(f"{name}: a field without a default follows one with a default")
            made = collections.namedtuple(name, fields, defaults=defaults,
                                          module=namespace["__module__"])
            made.__annotations__ = dict(annotations)
            for key, value in namespace.items():
                if key in _PROHIBITED:
                    raise AttributeError(f"{name}: cannot overwrite the NamedTuple attribute "
                                         f"{key}")
                if key not in _SPECIAL and key not in made._fields:
                    setattr(made, key, value)
            return made

    class Record(metaclass=_RecordMeta):
        """Base of a NamedTuple made without checking annotations (see the module)."""
