"""One exception family for every call, mapped from gRPC status codes.

Mirrors the error enum of the Rust SDK (`sdk/rust/src/error.rs`): one class per status
code the server uses, plus :class:`OtherError` for the codes it does not classify.
Server-side failures keep the server's message, which says what to change.
"""

from __future__ import annotations

import grpc

__all__ = [
    "AlreadyExists",
    "Cancelled",
    "DeadlineExceeded",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "OtherError",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "VectronError",
    "from_rpc_error",
]

#: Trailer (and header) that carries the seconds to wait after a refusal for load.
RETRY_AFTER_KEY = "retry-after"


class VectronError(Exception):
    """Base of every error the client raises for a call.

    Attributes:
        code: The gRPC status code of the failure (for errors the client raises itself,
            the code the server would have used).
        message: The server's message, or the client's own for errors found before
            anything was sent.
    """

    #: Code of the errors of this class when none is given.
    default_code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        """Makes an error with a status code and a message."""
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        """The code's name in words, then the message: ``not found: collection 'x'``."""
        return f"{self.code.value[1]}: {self.message}"

    def __repr__(self) -> str:
        """The class, code and message."""
        return f"{type(self).__name__}(code={self.code.name}, message={self.message!r})"

    def __reduce__(self) -> tuple[object, ...]:
        """Pickles every subclass alike, whatever its constructor takes."""
        return (_restore, (type(self), self.code, self.message, dict(self.__dict__)))


def _restore(
    cls: type[VectronError], code: grpc.StatusCode, message: str, state: dict[str, object]
) -> VectronError:
    """Rebuilds a pickled :class:`VectronError` without calling its constructor."""
    error = cls.__new__(cls)
    Exception.__init__(error, code, message)
    error.__dict__.update(state)
    return error


class _ClassifiedError(VectronError):
    """An error class bound to one family of status codes."""

    def __init__(self, message: str, *, code: grpc.StatusCode | None = None) -> None:
        """Makes the error with the message; `code` defaults to the class's own."""
        super().__init__(code if code is not None else self.default_code, message)


class InvalidArgument(_ClassifiedError, ValueError):
    """The request broke a rule: wrong dimension, NaN, bad id, bad filter, ``k = 0``, ...

    Also raised by the client before sending anything when the input cannot be valid
    (wrong shape, non-finite values, a payload that is not a JSON object). A subclass of
    :class:`ValueError`.
    """

    default_code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(_ClassifiedError):
    """Unknown collection (or other named resource: key, user, plan)."""

    default_code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(_ClassifiedError):
    """A collection (or user) with that name exists."""

    default_code = grpc.StatusCode.ALREADY_EXISTS


class Unauthenticated(_ClassifiedError):
    """Missing or invalid credentials."""

    default_code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(_ClassifiedError):
    """The caller's key may not do this."""

    default_code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(_ClassifiedError):
    """A size, rate or quota limit was reached.

    Attributes:
        retry_after: Seconds the server asked the client to wait before trying again
            (its ``retry-after`` trailer), or ``None`` when it named none, as for a
            message over the size limit or a quota that waiting does not lift.
    """

    default_code = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        code: grpc.StatusCode | None = None,
    ) -> None:
        """Makes the error with the message and the wait the server asked for."""
        super().__init__(message, code=code)
        self.retry_after = retry_after


class FailedPrecondition(_ClassifiedError):
    """The cluster cannot do this now (for example, shards cannot be placed)."""

    default_code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(_ClassifiedError):
    """The server, a shard or the control plane is unavailable.

    Idempotent calls were retried (``retries`` of :class:`vectron.Client`) before this
    was raised.
    """

    default_code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(_ClassifiedError, TimeoutError):
    """The deadline passed before the answer came. A subclass of :class:`TimeoutError`."""

    default_code = grpc.StatusCode.DEADLINE_EXCEEDED


class Cancelled(_ClassifiedError):
    """The call was cancelled."""

    default_code = grpc.StatusCode.CANCELLED


class Internal(_ClassifiedError):
    """A server bug or an unexpected failure."""

    default_code = grpc.StatusCode.INTERNAL


class OtherError(VectronError):
    """A status code this client does not classify further (``UNIMPLEMENTED``, ...)."""


_BY_CODE: dict[grpc.StatusCode, type[_ClassifiedError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.ABORTED: FailedPrecondition,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: Cancelled,
    grpc.StatusCode.INTERNAL: Internal,
    grpc.StatusCode.DATA_LOSS: Internal,
}


def _status_code(error: grpc.RpcError) -> grpc.StatusCode:
    """The status code of a failed call; ``UNKNOWN`` for an error that carries none."""
    code = getattr(error, "code", None)
    if callable(code):
        value = code()
        if isinstance(value, grpc.StatusCode):
            return value
    return grpc.StatusCode.UNKNOWN


def _details(error: grpc.RpcError) -> str:
    """The server's message of a failed call."""
    details = getattr(error, "details", None)
    if callable(details):
        value = details()
        if isinstance(value, str):
            return value
    return str(error)


def retry_after_of(error: grpc.RpcError) -> float | None:
    """The seconds of the ``retry-after`` trailer of a failed call, if it has one."""
    for getter_name in ("trailing_metadata", "initial_metadata"):
        getter = getattr(error, getter_name, None)
        if not callable(getter):
            continue
        metadata = getter()
        if not metadata:
            continue
        for key, value in metadata:
            if key.lower() != RETRY_AFTER_KEY:
                continue
            text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
            try:
                seconds = float(text.strip())
            except ValueError:
                return None
            return seconds if seconds >= 0 else None
    return None


def from_rpc_error(error: grpc.RpcError) -> VectronError:
    """Turns a failed gRPC call into the matching :class:`VectronError` subclass.

    The error keeps the status code the server sent and its message; a
    ``RESOURCE_EXHAUSTED`` keeps the ``retry-after`` the server named.
    """
    code = _status_code(error)
    message = _details(error)
    cls = _BY_CODE.get(code)
    if cls is None:
        return OtherError(code, message)
    if cls is ResourceExhausted:
        return ResourceExhausted(message, retry_after=retry_after_of(error), code=code)
    return cls(message, code=code)
