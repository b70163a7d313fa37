"""``Client`` and ``AsyncClient`` have the same public methods with the same signatures:
parameter names, kinds, defaults and annotations, and return annotations, the async ones
being coroutines. Only where the async client takes or yields async iterables do the
annotations differ, as listed here."""

from __future__ import annotations

import inspect
import typing
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import Any

import pytest

from vectron import AsyncClient, AsyncSearchStream, Client, SearchStream


def public_methods(cls: type) -> dict[str, Callable[..., Any]]:
    """The public methods of a class, by name (inherited ones included)."""
    return {
        name: member
        for name, member in inspect.getmembers(cls, callable)
        if not name.startswith("_")
    }


def async_iterable(annotation: Any) -> Any:
    """``Iterable[X]`` becomes ``Iterable[X] | AsyncIterable[X]``."""
    assert typing.get_origin(annotation) is Iterable, annotation
    generic: Any = AsyncIterable  # subscripted at run time, with the sync one's argument
    return annotation | generic[typing.get_args(annotation)]


def async_iterator(annotation: Any) -> Any:
    """``Iterator[X]`` becomes ``AsyncIterator[X]``."""
    assert typing.get_origin(annotation) is Iterator, annotation
    generic: Any = AsyncIterator
    return generic[typing.get_args(annotation)]


def async_search_stream(annotation: Any) -> Any:
    """``SearchStream`` becomes ``AsyncSearchStream``."""
    assert annotation is SearchStream, annotation
    return AsyncSearchStream


#: (method, parameter or "return") -> how the async annotation derives from the sync one.
ASYNC_ANNOTATIONS: dict[tuple[str, str], Callable[[Any], Any]] = {
    ("upsert_stream", "points"): async_iterable,
    ("iter_points", "return"): async_iterator,
    ("search_stream", "return"): async_search_stream,
}


def test_the_same_public_methods() -> None:
    sync, asynchronous = public_methods(Client), public_methods(AsyncClient)
    assert sorted(sync) == sorted(asynchronous)
    assert "upload_points" in sync and "close" in sync
    assert len(sync) >= 28


@pytest.mark.parametrize("name", ["__init__", *sorted(public_methods(Client))])
def test_the_same_signature(name: str) -> None:
    sync_method = getattr(Client, name)
    async_method = getattr(AsyncClient, name)
    sync = inspect.signature(sync_method, eval_str=True)
    asynchronous = inspect.signature(async_method, eval_str=True)
    assert list(asynchronous.parameters) == list(sync.parameters)
    for parameter in sync.parameters.values():
        twin = asynchronous.parameters[parameter.name]
        assert twin.kind == parameter.kind, parameter.name
        assert twin.default == parameter.default, parameter.name
        derive = ASYNC_ANNOTATIONS.get((name, parameter.name))
        expected = parameter.annotation if derive is None else derive(parameter.annotation)
        assert twin.annotation == expected, parameter.name
    derive = ASYNC_ANNOTATIONS.get((name, "return"))
    returns = sync.return_annotation
    assert asynchronous.return_annotation == (returns if derive is None else derive(returns))
    # The coroutine wrapper: async methods are coroutine functions (iter_points an async
    # generator), their twins are not.
    if name == "__init__":
        return
    if name == "iter_points":
        assert inspect.isasyncgenfunction(async_method)
        assert inspect.isgeneratorfunction(sync_method)
    else:
        assert inspect.iscoroutinefunction(async_method)
        assert not inspect.iscoroutinefunction(sync_method)
    assert async_method.__doc__, f"AsyncClient.{name} has no docstring"


def test_the_listed_differences_exist() -> None:
    for name, parameter in ASYNC_ANNOTATIONS:
        signature = inspect.signature(getattr(AsyncClient, name), eval_str=True)
        if parameter == "return":
            assert signature.return_annotation is not inspect.Signature.empty
        else:
            assert parameter in signature.parameters
