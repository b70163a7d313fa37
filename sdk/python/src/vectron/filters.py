"""Filter builders over point payloads and ids, mapping one to one onto ``filter.proto``.

>>> from vectron import Field, Filter, HasId
>>> f = Filter(
...     must=[Field("kind").keyword("moon"), Field("year").range(gte=1969, lt=1980)],
...     must_not=[HasId(["apollo-13"])],
... )

A point passes a filter when every ``must`` condition holds, at least one ``should``
condition holds (if any are given) and no ``must_not`` condition holds. A field holding
an array matches when any of its elements matches; a point without the field matches no
field condition. A :class:`Filter` is itself a condition, for ``(a AND b) OR c``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeAlias

from vectron._proto.vectron.v1 import filter_pb2
from vectron.errors import InvalidArgument

__all__ = ["Condition", "Field", "FieldCondition", "Filter", "HasId", "Range"]


def _strings(values: Iterable[str], what: str) -> tuple[str, ...]:
    """The values as a tuple of strings; a bare string is refused (it is no list)."""
    if isinstance(values, (str, bytes)):
        raise InvalidArgument(f"{what} takes a list of strings, not one string: {values!r}")
    out = tuple(values)
    for value in out:
        if not isinstance(value, str):
            raise InvalidArgument(f"{what} takes strings; got {value!r}")
    return out


@dataclass(frozen=True)
class Range:
    """Bounds on a number; absent bounds are open, at least one must be set."""

    #: Greater than.
    gt: float | None = None
    #: Greater than or equal.
    gte: float | None = None
    #: Less than.
    lt: float | None = None
    #: Less than or equal.
    lte: float | None = None

    def __post_init__(self) -> None:
        """Refuses a range without bounds, and bounds that are not numbers or NaN."""
        bounds: dict[str, object] = {"gt": self.gt, "gte": self.gte, "lt": self.lt, "lte": self.lte}
        if all(v is None for v in bounds.values()):
            raise InvalidArgument("a range needs at least one bound (gt, gte, lt or lte)")
        for name, value in bounds.items():
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise InvalidArgument(f"range bound {name} must be a number; got {value!r}")
            if math.isnan(float(value)):  # numbers.Real converts to float
                raise InvalidArgument(f"range bound {name} is NaN")

    def to_proto(self) -> filter_pb2.Range:
        """The ``vectron.v1.Range`` message."""
        message = filter_pb2.Range()
        if self.gt is not None:
            message.gt = float(self.gt)
        if self.gte is not None:
            message.gte = float(self.gte)
        if self.lt is not None:
            message.lt = float(self.lt)
        if self.lte is not None:
            message.lte = float(self.lte)
        return message


@dataclass(frozen=True)
class FieldCondition:
    """A condition on one payload field: exactly one of ``keyword``, ``any_of``, ``range``.

    Built with :class:`Field`: ``Field("kind").keyword("moon")``.
    """

    #: Payload key; a dot descends into nested objects (``author.name``).
    key: str
    #: The value equals this string exactly.
    keyword: str | None = None
    #: The value equals one of these strings.
    any_of: tuple[str, ...] | None = None
    #: The value is a number inside this range.
    range: Range | None = None

    def __post_init__(self) -> None:
        """Refuses a condition with no match or more than one."""
        if not isinstance(self.key, str) or not self.key:
            raise InvalidArgument(f"a field condition needs a non-empty key; got {self.key!r}")
        set_matches = [m for m in (self.keyword, self.any_of, self.range) if m is not None]
        if len(set_matches) != 1:
            raise InvalidArgument(
                f"field condition on {self.key!r} needs exactly one of keyword, any_of, range"
            )
        if self.keyword is not None and not isinstance(self.keyword, str):
            raise InvalidArgument(f"keyword of {self.key!r} must be a string; got {self.keyword!r}")

    def to_proto(self) -> filter_pb2.FieldCondition:
        """The ``vectron.v1.FieldCondition`` message."""
        message = filter_pb2.FieldCondition(key=self.key)
        if self.keyword is not None:
            message.keyword = self.keyword
        elif self.any_of is not None:
            message.any_of.keywords.extend(self.any_of)
        elif self.range is not None:
            message.range.CopyFrom(self.range.to_proto())
        return message


class Field:
    """Starts a condition on a payload field: ``Field("year").range(gte=1970)``."""

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        """A builder for conditions on the payload key `key` (dots descend)."""
        self.key = key

    def __repr__(self) -> str:
        """``Field('key')``."""
        return f"Field({self.key!r})"

    def keyword(self, value: str) -> FieldCondition:
        """The field equals `value` exactly (case-sensitive)."""
        return FieldCondition(self.key, keyword=value)

    def any_of(self, values: Iterable[str]) -> FieldCondition:
        """The field equals one of `values` (1 to 1024 strings)."""
        return FieldCondition(self.key, any_of=_strings(values, f"any_of on {self.key!r}"))

    def range(
        self,
        *,
        gt: float | None = None,
        gte: float | None = None,
        lt: float | None = None,
        lte: float | None = None,
    ) -> FieldCondition:
        """The field is a number within the bounds given (at least one)."""
        return FieldCondition(self.key, range=Range(gt=gt, gte=gte, lt=lt, lte=lte))


@dataclass(frozen=True, init=False)
class HasId:
    """The point's id is one of these: ``HasId(["a", "b", 3])``."""

    #: Point ids (integers are taken as their decimal string).
    ids: tuple[str, ...]

    def __init__(self, ids: Iterable[str | int]) -> None:
        """Matches the points with these ids (1 to 10000)."""
        if isinstance(ids, (str, bytes)):
            raise InvalidArgument(f"HasId takes a list of ids, not one string: {ids!r}")
        converted: list[str] = []
        for point_id in ids:
            if isinstance(point_id, str):
                converted.append(point_id)
            elif isinstance(point_id, int) and not isinstance(point_id, bool):
                converted.append(str(point_id))
            else:
                raise InvalidArgument(f"a point id is a string or an integer; got {point_id!r}")
        object.__setattr__(self, "ids", tuple(converted))

    def to_proto(self) -> filter_pb2.HasIdCondition:
        """The ``vectron.v1.HasIdCondition`` message."""
        return filter_pb2.HasIdCondition(ids=self.ids)


@dataclass(frozen=True, init=False)
class Filter:
    """A boolean combination of conditions; itself usable as a condition.

    An empty filter passes every point (and is refused by delete).
    """

    #: All of these must hold.
    must: tuple[Condition, ...]
    #: At least one of these must hold, when not empty.
    should: tuple[Condition, ...]
    #: None of these may hold.
    must_not: tuple[Condition, ...]

    def __init__(
        self,
        must: Iterable[Condition] = (),
        should: Iterable[Condition] = (),
        must_not: Iterable[Condition] = (),
    ) -> None:
        """Combines conditions: :class:`FieldCondition`, :class:`HasId` or :class:`Filter`."""
        for name, conditions in (("must", must), ("should", should), ("must_not", must_not)):
            items = tuple(conditions)
            for item in items:
                if not isinstance(item, (FieldCondition, HasId, Filter)):
                    raise InvalidArgument(
                        f"{name} holds {item!r}, which is not a condition "
                        "(Field(...).keyword/any_of/range, HasId or Filter)"
                    )
            object.__setattr__(self, name, items)

    def to_proto(self) -> filter_pb2.Filter:
        """The ``vectron.v1.Filter`` message."""
        return filter_pb2.Filter(
            must=[_condition_to_proto(c) for c in self.must],
            should=[_condition_to_proto(c) for c in self.should],
            must_not=[_condition_to_proto(c) for c in self.must_not],
        )


#: One condition of a :class:`Filter`.
Condition: TypeAlias = FieldCondition | HasId | Filter


def _condition_to_proto(condition: Condition) -> filter_pb2.Condition:
    """The ``vectron.v1.Condition`` holding `condition`."""
    if isinstance(condition, FieldCondition):
        return filter_pb2.Condition(field=condition.to_proto())
    if isinstance(condition, HasId):
        return filter_pb2.Condition(has_id=condition.to_proto())
    return filter_pb2.Condition(filter=condition.to_proto())
