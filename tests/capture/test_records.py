"""records.record behaves as the dataclasses it replaces on clearml-task's path, side by side with them."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from clearml_task import records


@records.record(frozen=True)
class Frozen:
    name: str
    tags: list[str] = records.field(default_factory=list)
    size: int = 3
    derived: str = records.field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "derived", f"{self.name}:{self.size}")


@dataclasses.dataclass(frozen=True)
class FrozenDC:
    name: str
    tags: list[str] = dataclasses.field(default_factory=list)
    size: int = 3
    derived: str = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "derived", f"{self.name}:{self.size}")


@records.record(frozen=True)
class Point:
    x: int
    y: int


@dataclasses.dataclass(frozen=True)
class PointDC:
    x: int
    y: int


@records.record
class Mutable:
    value: int
    note: str | None = None


def test_init_binds_positional_and_keyword_arguments_and_defaults_as_a_dataclass() -> None:
    for cls in (Frozen, FrozenDC):
        made = cls("a", ["x"], size=5)  # type: ignore[operator]
        assert (made.name, made.tags, made.size, made.derived) == ("a", ["x"], 5, "a:5")
        assert cls("b").tags == [] and cls("b").tags is not cls("b").tags  # a fresh list each time
    assert repr(Frozen("a", size=5)) == "Frozen(name='a', tags=[], size=5)"
    assert (
        repr(Frozen("a", size=5)).replace("Frozen", "FrozenDC") == repr(FrozenDC("a", size=5)).split(".")[-1]
    )


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((), {}),
        (("a",), {"name": "b"}),
        (("a", [], 1, "extra"), {}),
        (("a",), {"derived": "x"}),
        ((), {"nope": 1}),
    ],
)
def test_wrong_arguments_are_a_type_error_as_for_a_dataclass(args: tuple, kwargs: dict) -> None:
    with pytest.raises(TypeError):
        FrozenDC(*args, **kwargs)
    with pytest.raises(TypeError):
        Frozen(*args, **kwargs)


def test_frozen_records_refuse_assignment_and_hash_by_value() -> None:
    made = Frozen("a")
    with pytest.raises(records.FrozenInstanceError):
        made.name = "b"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del made.size  # type: ignore[misc]
    assert Frozen("a", ["x"]) == Frozen("a", ["x"]) and Frozen("a") != Frozen("b")
    assert Frozen("a") != FrozenDC("a")  # another class is never equal
    assert hash(Point(1, 2)) == hash(Point(1, 2)) == hash(PointDC(1, 2))  # both hash the tuple of values
    with pytest.raises(TypeError):
        hash(Frozen("a"))  # a list field, as with a dataclass


def test_mutable_records_assign_compare_and_are_unhashable_as_dataclasses() -> None:
    made = Mutable(1)
    made.note = "set"
    assert made == Mutable(1, "set") and made != Mutable(2, "set")
    with pytest.raises(TypeError):
        hash(made)


def test_replace_makes_a_new_record_through_init() -> None:
    made = Frozen("a", ["x"], size=2)
    changed = records.replace(made, size=4)
    assert (changed.name, changed.tags, changed.size, changed.derived) == ("a", ["x"], 4, "a:4")
    assert made.size == 2
    with pytest.raises(ValueError, match="derived"):
        records.replace(made, derived="x")


def test_a_required_field_after_a_defaulted_one_is_refused_when_the_class_is_made() -> None:
    with pytest.raises(TypeError, match="without a default follows"):

        @records.record
        class Wrong:
            first: int = 0
            second: int  # type: ignore[misc]


def test_clearml_task_does_not_import_dataclasses_to_submit() -> None:
    """The point of records: the submit path (request, source, requirements, arguments, config) is built
    without importing dataclasses (and inspect)."""
    code = (
        "import sys; import clearml_task.cli, clearml_task.submit, clearml_task.source, clearml_task.config;"
        "print(sorted(m for m in ('dataclasses', 'inspect') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
