"""Immutable value classes, declared like dataclasses, without importing ``dataclasses``.

Why this exists: ``import dataclasses`` costs ~7-9 ms on every start (it imports
``inspect``, and with it ``ast``, ``dis``, ``tokenize``, ``copy``), and each
``@dataclass`` execs generated code at import time. ``Digest`` and ``Reference`` are on
every warm (cache-hit) ``portside`` run, whose whole budget is ~30 ms, so the
dataclass machinery alone was a quarter of it. :class:`Value` gives the same
behaviour for the small immutable records Portside needs, for the price of one class
definition::

    class Platform(Value, order=True):
        os: str
        architecture: str
        variant: str | None = None
        annotations: dict[str, str] = field(default_factory=dict, compare=False)

What a subclass gets, as ``@dataclass(frozen=True[, order=True])`` would give it:

- ``__slots__`` made from the annotated fields (defaults live in the class's field
  table, not as class attributes, which slots would forbid);
- ``__init__`` taking the fields positionally or by keyword, in declaration order,
  with defaults and ``default_factory`` (:func:`field`), then ``__post_init__`` when the
  class defines one (set fields there with ``object.__setattr__``, as with dataclasses);
- immutability: assigning or deleting an attribute raises :class:`FrozenInstanceError`
  (an ``AttributeError``);
- ``__eq__`` and ``__hash__`` over the fields not declared ``compare=False``, between
  instances of exactly the same class (anything else: ``NotImplemented``);
- with ``order=True``, ``<``, ``<=``, ``>``, ``>=`` over the same tuple of fields;
- ``__repr__`` ``Name(field=value, ...)``, ``__match_args__``, and ``__reduce__`` so that
  ``copy``, ``deepcopy`` and ``pickle`` work (they rebuild through ``__init__``, so
  validation runs again).

Fields are read from the class's annotations (``ClassVar`` ones excluded); only their
names are used, never evaluated. mypy understands the classes through
``dataclass_transform`` (PEP 681), which costs nothing at run time.
"""

from __future__ import annotations

import sys
from operator import attrgetter

TYPE_CHECKING = False  # avoids importing typing (~9 ms) on the warm path; mypy knows it
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from typing_extensions import Self, dataclass_transform
else:

    def dataclass_transform(**_kwargs: object) -> Callable[[type], type]:
        return lambda obj: obj


__all__ = ["FrozenInstanceError", "Value", "field"]


class FrozenInstanceError(AttributeError):
    """An attempt to assign to or delete an attribute of a :class:`Value`."""


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


_MISSING: Any = _Missing()


class Field:
    """What :func:`field` returns: a default, a default factory, whether it is compared."""

    __slots__ = ("compare", "default", "default_factory")

    def __init__(
        self, default: object, default_factory: Callable[[], object] | None, compare: bool
    ) -> None:
        self.default = default
        self.default_factory = default_factory
        self.compare = compare


def field(
    *,
    default: Any = _MISSING,
    default_factory: Callable[[], Any] | None = None,
    compare: bool = True,
) -> Any:
    """A field with a mutable default (``default_factory``) or left out of ``==``/hash.

    ``compare=False`` also leaves the field out of ``hash()``, as in dataclasses.
    """
    if default is not _MISSING and default_factory is not None:
        raise ValueError("field() takes default or default_factory, not both")
    return Field(default, default_factory, compare)


def _is_classvar(annotation: object) -> bool:
    text = annotation if isinstance(annotation, str) else repr(annotation)
    return text.startswith(("ClassVar", "typing.ClassVar", "t.ClassVar"))


def _own_annotations(namespace: dict[str, Any]) -> dict[str, Any]:
    if "__annotations__" in namespace:
        return dict(namespace["__annotations__"])
    annotate = namespace.get("__annotate__")
    if annotate is not None and sys.version_info >= (3, 14):  # PEP 649: lazy annotations
        import annotationlib

        return dict(annotationlib.call_annotate_function(annotate, annotationlib.Format.FORWARDREF))
    return {}


def _tuple_getter(names: tuple[str, ...]) -> Callable[[object], tuple[object, ...]]:
    """A fast ``obj -> (obj.a, obj.b, ...)``; always a tuple, whatever the count."""
    if len(names) >= 2:
        getter: Callable[[object], tuple[object, ...]] = attrgetter(*names)
        return getter
    if len(names) == 1:
        one = attrgetter(names[0])
        return lambda obj: (one(obj),)
    return lambda obj: ()


class _ValueMeta(type):
    """Builds each :class:`Value` subclass: slots, field table, comparison keys."""

    def __new__(
        mcs,
        name: str,
        bases: tuple[type, ...],
        namespace: dict[str, Any],
        *,
        order: bool = False,
    ) -> _ValueMeta:
        inherited: dict[str, tuple[object, Callable[[], object] | None, bool]] = {}
        for base in reversed(bases):
            inherited.update(getattr(base, "_value_specs", {}))
        specs = dict(inherited)
        own: list[str] = []
        for attr, annotation in _own_annotations(namespace).items():
            if _is_classvar(annotation):
                continue
            value = namespace.pop(attr, _MISSING)
            if isinstance(value, Field):
                specs[attr] = (value.default, value.default_factory, value.compare)
            else:
                specs[attr] = (value, None, True)
            if attr not in inherited:
                own.append(attr)
        seen_default = ""
        for attr, (default, factory, _compare) in specs.items():
            if default is not _MISSING or factory is not None:
                seen_default = attr
            elif seen_default:
                raise TypeError(
                    f"{name}: field {attr!r} without a default follows {seen_default!r}, "
                    "which has one"
                )
        namespace["__slots__"] = tuple(own)
        fields = tuple(specs)
        namespace["__match_args__"] = fields
        if order:
            namespace.update(__lt__=_lt, __le__=_le, __gt__=_gt, __ge__=_ge)
        cls = super().__new__(mcs, name, bases, namespace)
        cls._value_specs = specs
        cls._value_fields = fields
        cls._value_key = _tuple_getter(tuple(f for f, spec in specs.items() if spec[2]))
        cls._value_all = _tuple_getter(fields)
        return cls

    # Per class, set by __new__ (annotated here so that type(instance).<name> type-checks).
    _value_specs: dict[str, tuple[object, Callable[[], object] | None, bool]]
    _value_fields: tuple[str, ...]
    _value_key: Callable[[object], tuple[object, ...]]
    _value_all: Callable[[object], tuple[object, ...]]


# The order=True comparisons: field tuples of two instances of exactly the same class.
def _lt(self: Value, other: object) -> object:
    if other.__class__ is not self.__class__:
        return NotImplemented
    key = type(self)._value_key
    return key(self) < key(other)


def _le(self: Value, other: object) -> object:
    if other.__class__ is not self.__class__:
        return NotImplemented
    key = type(self)._value_key
    return key(self) <= key(other)


def _gt(self: Value, other: object) -> object:
    if other.__class__ is not self.__class__:
        return NotImplemented
    key = type(self)._value_key
    return key(self) > key(other)


def _ge(self: Value, other: object) -> object:
    if other.__class__ is not self.__class__:
        return NotImplemented
    key = type(self)._value_key
    return key(self) >= key(other)


@dataclass_transform(eq_default=True, frozen_default=True, field_specifiers=(field,))
class Value(metaclass=_ValueMeta):
    """Base of immutable value classes; see the module docstring."""

    __slots__ = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        cls = type(self)
        fields = cls._value_fields
        if len(args) > len(fields):
            raise TypeError(
                f"{cls.__qualname__}.__init__() takes {len(fields) + 1} positional "
                f"arguments but {len(args) + 1} were given"
            )
        set_ = object.__setattr__
        for attr, value in zip(fields, args, strict=False):
            set_(self, attr, value)
        if kwargs:
            for attr in kwargs:
                if attr not in cls._value_specs:
                    raise TypeError(
                        f"{cls.__qualname__}.__init__() got an unexpected keyword argument {attr!r}"
                    )
                if attr in fields[: len(args)]:
                    raise TypeError(
                        f"{cls.__qualname__}.__init__() got multiple values for argument {attr!r}"
                    )
        missing: list[str] = []
        specs = cls._value_specs
        for attr in fields[len(args) :]:
            if attr in kwargs:
                set_(self, attr, kwargs[attr])
                continue
            default, factory, _compare = specs[attr]
            if factory is not None:
                set_(self, attr, factory())
            elif default is not _MISSING:
                set_(self, attr, default)
            else:
                missing.append(attr)
        if missing:
            names = [repr(m) for m in missing]
            listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + f", and {names[-1]}"
            if len(names) == 2:
                listed = f"{names[0]} and {names[1]}"
            plural = "argument" if len(names) == 1 else "arguments"
            raise TypeError(
                f"{cls.__qualname__}.__init__() missing {len(names)} required positional "
                f"{plural}: {listed}"
            )
        post_init = getattr(self, "__post_init__", None)
        if post_init is not None:
            post_init()

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __repr__(self) -> str:
        cls = type(self)
        parts = ", ".join(
            f"{attr}={value!r}"
            for attr, value in zip(cls._value_fields, cls._value_all(self), strict=True)
        )
        return f"{cls.__qualname__}({parts})"

    def __reduce__(self) -> tuple[type[Self], tuple[object, ...]]:
        return type(self), type(self)._value_all(self)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        key = type(self)._value_key
        return key(self) == key(other)

    def __hash__(self) -> int:
        return hash(type(self)._value_key(self))
