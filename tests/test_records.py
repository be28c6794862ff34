"""driver.records.Record makes the classes typing.NamedTuple makes (without its annotation checks)."""

from __future__ import annotations

import pickle
from typing import NamedTuple

import pytest

from driver.records import Record


class Typed(NamedTuple):
    """A typing.NamedTuple."""

    name: str
    value: float | None = None
    unit: str = "MiB"

    def label(self) -> str:
        return f"{self.name} ({self.unit})"

    @property
    def known(self) -> bool:
        return self.value is not None


class Cheap(Record):
    """A typing.NamedTuple."""

    name: str
    value: float | None = None
    unit: str = "MiB"

    def label(self) -> str:
        return f"{self.name} ({self.unit})"

    @property
    def known(self) -> bool:
        return self.value is not None


def test_a_record_behaves_as_the_same_typing_namedtuple() -> None:
    typed, cheap = Typed("rss", 1.5), Cheap("rss", 1.5)
    assert cheap == typed and tuple(cheap) == ("rss", 1.5, "MiB")
    assert isinstance(cheap, tuple) and not isinstance(cheap, Typed)
    assert Cheap._fields == Typed._fields and Cheap._field_defaults == Typed._field_defaults
    assert repr(cheap) == repr(typed).replace("Typed", "Cheap")
    assert cheap._replace(unit="GiB") == ("rss", 1.5, "GiB")
    assert cheap._asdict() == typed._asdict()
    assert cheap.label() == "rss (MiB)" and cheap.known and not Cheap("x").known
    assert Cheap.__doc__ == Typed.__doc__ and Cheap.__module__ == __name__
    assert Cheap.__qualname__ == "Cheap"
    assert hash(cheap) == hash(typed)
    with pytest.raises(AttributeError):
        cheap.name = "other"  # type: ignore[misc]


def test_a_record_pickles_by_reference_to_its_class() -> None:
    cheap = Cheap("rss", 2.0, "GiB")
    again = pickle.loads(pickle.dumps(cheap))
    assert again == cheap and type(again) is Cheap


def test_annotations_are_kept_as_written() -> None:
    assert Cheap.__annotations__ == {"name": "str", "value": "float | None", "unit": "str"}


def test_a_field_without_default_after_one_with_a_default_is_refused() -> None:
    with pytest.raises(TypeError, match="without a default follows"):
        class Bad(Record):  # noqa: F841
            first: int = 0
            second: int  # type: ignore[misc]


def test_namedtuple_attributes_cannot_be_overwritten() -> None:
    with pytest.raises(AttributeError, match="_replace"):
        class Bad(Record):  # noqa: F841
            first: int

            def _replace(self) -> None:  # type: ignore[misc]
                pass
