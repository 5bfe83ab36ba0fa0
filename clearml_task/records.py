"""Record classes for clearml-task's path: what `@dataclass` gives them, without its cost at start-up.

A dataclass compiles its `__init__`, `__repr__`, `__eq__` (and, frozen, `__setattr__`, `__delattr__`,
`__hash__`) from generated source when the class is created, and `dataclasses` imports `inspect`. For the
18 records a submit builds its request, source, requirements and arguments from, that was 40-55 ms of a
250 ms run on the machine of bench/README.md. `record` gives a class the same methods as functions shared
by every record, reading its fields from the class's annotations: creating the class costs microseconds.
Type checkers read `record` as `dataclasses.dataclass` (PEP 681).

What is supported is what the records use: fields in annotation order, plain defaults, `field(default=,
default_factory=, init=, repr=, compare=)`, `__post_init__`, `frozen=True` (set through
`object.__setattr__`, as dataclasses do) and `replace`. Not inheritance between records, `InitVar`,
`kw_only`, `order` or slots: a record that needs them is a dataclass.
"""

from __future__ import annotations

TYPE_CHECKING = False  # as typing's, without importing typing (mypy reads the name so too)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    from typing_extensions import dataclass_transform

    T = TypeVar("T")
else:

    def dataclass_transform(**_options):
        return lambda decorator: decorator


_MISSING = object()


class FrozenInstanceError(AttributeError):
    """An assignment to a field of a frozen record (as dataclasses' error of that name)."""


class Field:
    """One field of a record: its name, default (or factory) and whether __init__, repr and == see it."""

    __slots__ = ("compare", "default", "default_factory", "init", "name", "repr")

    def __init__(
        self,
        default: Any = _MISSING,
        default_factory: Any = _MISSING,
        init: bool = True,
        repr: bool = True,
        compare: bool = True,
    ) -> None:
        if default is not _MISSING and default_factory is not _MISSING:
            raise ValueError("cannot give both default and default_factory")
        self.name = ""
        self.default, self.default_factory = default, default_factory
        self.init, self.repr, self.compare = init, repr, compare

    def fresh(self) -> Any:
        """The value of a field that was not given (the factory's new value, or the default)."""
        return self.default if self.default_factory is _MISSING else self.default_factory()


def field(
    *,
    default: Any = _MISSING,
    default_factory: Callable[[], Any] | Any = _MISSING,
    init: bool = True,
    repr: bool = True,
    compare: bool = True,
) -> Any:
    """A field with options, as `dataclasses.field`."""
    return Field(default, default_factory, init, repr, compare)


@dataclass_transform(field_specifiers=(field,))
def record(cls: Any = None, /, *, frozen: bool = False) -> Any:
    """The class with __init__, __repr__ and __eq__ (frozen: also no assignment, and a hash) of its fields."""

    def wrap(klass: type) -> type:
        return _make(klass, frozen)

    return wrap if cls is None else wrap(cls)


def replace(obj: T, /, **changes: Any) -> T:
    """A copy of the record `obj` with `changes`, made through __init__ (as `dataclasses.replace`)."""
    fields: tuple[Field, ...] = type(obj).__record_fields__  # type: ignore[attr-defined]
    for f in fields:
        if not f.init and f.name in changes:
            raise ValueError(f"field {f.name} cannot be given to replace(): it is not an __init__ field")
        if f.init and f.name not in changes:
            changes[f.name] = getattr(obj, f.name)
    return type(obj)(**changes)


def _make(cls: type, frozen: bool) -> type:
    """Collect the fields of `cls` from its annotations and give it the record's methods."""
    fields: list[Field] = []
    # the class's own annotations (strings: every record's module has `from __future__ import annotations`);
    # where the class dict has none (lazy annotations, Python 3.14), the attribute computes them
    own = cls.__dict__.get("__annotations__")  # noqa: RUF063 (inspect.get_annotations costs its import)
    for name, annotation in (own if own is not None else getattr(cls, "__annotations__", {})).items():
        if isinstance(annotation, str) and annotation.startswith(("ClassVar", "typing.ClassVar")):
            continue
        value = cls.__dict__.get(name, _MISSING)
        f = value if isinstance(value, Field) else Field(default=value)
        f.name = name
        if isinstance(value, Field):
            if f.default is _MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, f.default)
        fields.append(f)
    required_after_default = [
        f.name for f in fields if f.init and f.default is _MISSING and f.default_factory is _MISSING
    ]
    first_default = next((i for i, f in enumerate(fields) if f.init and _has_default(f)), len(fields))
    if any(f.name in required_after_default for f in fields[first_default:]):
        raise TypeError(f"{cls.__name__}: a field without a default follows one with a default")
    cls.__record_fields__ = tuple(fields)  # type: ignore[attr-defined]
    cls.__init__ = _init  # type: ignore[misc]
    cls.__repr__ = _repr  # type: ignore[assignment, method-assign]
    cls.__eq__ = _eq  # type: ignore[assignment, method-assign]
    if frozen:
        cls.__setattr__ = _frozen_setattr  # type: ignore[assignment, method-assign]
        cls.__delattr__ = _frozen_delattr  # type: ignore[assignment, method-assign]
        cls.__hash__ = _hash  # type: ignore[assignment, method-assign]
    else:
        cls.__hash__ = None  # type: ignore[assignment]  # as a dataclass with eq and not frozen
    return cls


def _has_default(f: Field) -> bool:
    return f.default is not _MISSING or f.default_factory is not _MISSING


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    fields: tuple[Field, ...] = type(self).__record_fields__
    init = [f for f in fields if f.init]
    name = type(self).__name__
    if len(args) > len(init):
        raise TypeError(f"{name}() takes {len(init)} positional arguments but {len(args)} were given")
    for f, value in zip(init, args, strict=False):  # fewer args than fields: the rest by name
        if f.name in kwargs:
            raise TypeError(f"{name}() got multiple values for argument {f.name!r}")
        kwargs[f.name] = value
    for f in fields:
        if f.init and f.name in kwargs:
            object.__setattr__(self, f.name, kwargs.pop(f.name))
        elif _has_default(f):
            object.__setattr__(self, f.name, f.fresh())
        elif f.init:
            raise TypeError(f"{name}() missing required argument: {f.name!r}")
    if kwargs:
        raise TypeError(f"{name}() got an unexpected keyword argument {next(iter(kwargs))!r}")
    post_init = getattr(self, "__post_init__", None)
    if post_init is not None:
        post_init()


def _repr(self: Any) -> str:
    shown = ", ".join(
        f"{f.name}={getattr(self, f.name, '<unset>')!r}" for f in type(self).__record_fields__ if f.repr
    )
    return f"{type(self).__qualname__}({shown})"


def _values(self: Any) -> tuple[Any, ...]:
    return tuple(getattr(self, f.name) for f in type(self).__record_fields__ if f.compare)


def _eq(self: Any, other: object) -> Any:
    if other.__class__ is not self.__class__:
        return NotImplemented
    return _values(self) == _values(other)


def _hash(self: Any) -> int:
    return hash(_values(self))


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r} of a frozen {type(self).__name__}")


def _frozen_delattr(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r} of a frozen {type(self).__name__}")
