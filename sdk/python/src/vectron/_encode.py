"""The upsert fast path: checks vectors client-side and writes ``UpsertRequest`` wire
bytes directly.

A ``vectron.v1.Point`` is ``1: id (string)``, ``2: vector (packed float)``,
``3: payload (google.protobuf.Struct)``; an ``UpsertRequest`` is ``1: collection
(string)``, ``2: points (repeated Point)``, ``3: wait (optional bool)``. A packed float
field is the raw little-endian float32 bytes, so each vector is written with one
``tobytes()`` of its row instead of one Python float object per value; only payloads
go through protobuf. The bytes are sent by a multicallable without a request serializer.
``tests/test_encode.py`` checks that they parse to the message protobuf would build.
"""

from __future__ import annotations

import numbers
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from vectron._convert import payload_to_struct
from vectron.errors import InvalidArgument

__all__ = ["MAX_POINTS_PER_REQUEST", "PreparedPoints", "encode_upsert_requests", "prepare_points"]

#: Most points the server accepts in one upsert request or stream message.
MAX_POINTS_PER_REQUEST = 10_000

# Wire tags: (field number << 3) | wire type; 2 = length-delimited, 0 = varint.
_TAG_COLLECTION = b"\x0a"  # UpsertRequest.collection = 1
_TAG_POINT = b"\x12"  # UpsertRequest.points = 2
_TAG_WAIT = b"\x18"  # UpsertRequest.wait = 3
_TAG_ID = b"\x0a"  # Point.id = 1
_TAG_VECTOR = b"\x12"  # Point.vector = 2 (packed)
_TAG_PAYLOAD = b"\x1a"  # Point.payload = 3


def varint(value: int) -> bytes:
    """The base-128 varint encoding of a non-negative integer."""
    if value < 0:
        raise ValueError(f"varint of a negative number: {value}")
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


@dataclass(frozen=True)
class PreparedPoints:
    """Points checked and ready to encode."""

    #: Ids as strings, one per row.
    ids: list[str]
    #: The ids' UTF-8 bytes.
    id_bytes: list[bytes]
    #: A C-contiguous little-endian float32 array of shape (points, dimension).
    vectors: npt.NDArray[np.float32]
    #: Serialized ``Struct`` per row (``None`` for no payload), or ``None`` for none at all.
    payloads: list[bytes | None] | None

    def __len__(self) -> int:
        """Number of points."""
        return len(self.ids)

    def rows(self, start: int, stop: int) -> PreparedPoints:
        """The points of rows `start` to `stop` (exclusive), sharing this one's arrays."""
        return PreparedPoints(
            self.ids[start:stop],
            self.id_bytes[start:stop],
            self.vectors[start:stop],
            None if self.payloads is None else self.payloads[start:stop],
        )


def _point_ids(ids: Sequence[Any] | npt.NDArray[Any] | None, rows: int) -> list[str]:
    """The ids as strings; random UUIDs when none are given."""
    if ids is None:
        return [str(uuid.uuid4()) for _ in range(rows)]
    if isinstance(ids, (str, bytes)):
        raise InvalidArgument(f"ids must be a list of ids, not one string: {ids!r}")
    values = ids.tolist() if isinstance(ids, np.ndarray) else list(ids)
    if len(values) != rows:
        raise InvalidArgument(f"{len(values)} ids for {rows} vectors: give one id per row")
    out: list[str] = []
    for row, value in enumerate(values):
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
            out.append(str(int(value)))
        else:
            raise InvalidArgument(
                f"id of row {row} is {value!r}: a point id is a string or an integer"
            )
    return out


_NOT_2D = "vectors must be 2-D (points x dimension)"
_ONE_VECTOR_HINT = "; for one vector use [vector] or vector[None, :]"


def _row_count(vectors: Any) -> int:
    """Rows of `vectors`, refusing what cannot be a 2-D array of numbers."""
    if isinstance(vectors, np.ndarray):
        if vectors.ndim != 2:
            hint = _ONE_VECTOR_HINT if vectors.ndim == 1 else ""
            raise InvalidArgument(f"{_NOT_2D}; got shape {vectors.shape}{hint}")
        return int(vectors.shape[0])
    if isinstance(vectors, (str, bytes)) or not isinstance(vectors, Sequence):
        raise InvalidArgument(
            "vectors must be a 2-D numpy array or a list of lists of numbers; "
            f"got {type(vectors).__name__}"
        )
    if len(vectors) and isinstance(vectors[0], (numbers.Real, np.generic)):
        raise InvalidArgument(f"{_NOT_2D}; got a flat list of numbers{_ONE_VECTOR_HINT}")
    return len(vectors)


def _as_float_matrix(
    vectors: Any, ids: list[str], dimension: int | None, dimension_is: str
) -> tuple[npt.NDArray[Any], bool]:
    """`vectors` as a 2-D numpy array of real numbers, and whether it was not float32.

    Rows of a list must all be as long as `dimension` (described by `dimension_is`),
    else as row 0; the first that is not is named.
    """
    if isinstance(vectors, np.ndarray):
        array = vectors
    else:
        expected, expected_is = dimension, dimension_is
        for row, item in enumerate(vectors):
            where = f"point {ids[row]!r} (row {row})"
            if isinstance(item, (str, bytes)) or not hasattr(item, "__len__"):
                raise InvalidArgument(f"{where}: the vector is not a list of numbers: {item!r}")
            if expected is None:
                expected, expected_is = len(item), f"point {ids[0]!r} (row 0) has"
            if len(item) != expected:
                raise InvalidArgument(
                    f"{where}: vector has {len(item)} values, {expected_is} {expected}"
                )
        try:
            array = np.array(vectors, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise InvalidArgument(f"vectors must hold numbers only: {error}") from None
        if array.ndim != 2:
            raise InvalidArgument(f"{_NOT_2D}; got shape {array.shape}")
    if array.dtype.kind not in "fiu":
        raise InvalidArgument(f"vectors must hold real numbers; got dtype {array.dtype}")
    return array, array.dtype != np.float32


def prepare_points(
    vectors: Any,
    ids: Sequence[Any] | npt.NDArray[Any] | None,
    payloads: Sequence[Mapping[str, Any] | None] | None,
    *,
    dimension: int | None,
    dimension_is: str = "the collection's dimension is",
) -> PreparedPoints:
    """Checks points before anything is sent, and converts them for encoding.

    `vectors` is a 2-D array (or list of lists) of real numbers, converted to float32;
    every value must be finite after that conversion. `dimension`, when known, is the
    width every vector must have (`dimension_is` says whose it is, in messages). Raises
    :class:`~vectron.InvalidArgument` naming the first bad point and row.
    """
    rows = _row_count(vectors)
    point_ids = _point_ids(ids, rows)
    if rows == 0:
        return PreparedPoints([], [], np.zeros((0, dimension or 0), dtype="<f4"), None)
    array, converted = _as_float_matrix(vectors, point_ids, dimension, dimension_is)
    width = int(array.shape[1])
    if width == 0:
        raise InvalidArgument("vectors have no values (dimension 0)")
    if dimension is not None and width != dimension:
        raise InvalidArgument(
            f"point {point_ids[0]!r} (row 0): vector has {width} values, {dimension_is} {dimension}"
        )
    source = array
    if converted:
        with np.errstate(over="ignore", invalid="ignore"):
            array = array.astype(np.float32)
    matrix: npt.NDArray[np.float32] = np.ascontiguousarray(array, dtype="<f4")
    finite = np.isfinite(matrix)
    if not finite.all():
        row = int(np.flatnonzero(~finite.all(axis=1))[0])
        column = int(np.flatnonzero(~finite[row])[0])
        original = source[row, column].item()
        raise InvalidArgument(
            f"point {point_ids[row]!r} (row {row}): value {original!r} at index {column} "
            + ("is not a finite float32" if converted else "is not finite")
        )
    id_bytes: list[bytes] = []
    for row, point_id in enumerate(point_ids):
        try:
            id_bytes.append(point_id.encode("utf-8"))
        except UnicodeEncodeError:
            raise InvalidArgument(f"id of row {row} ({point_id!r}) is not valid UTF-8") from None
    encoded_payloads: list[bytes | None] | None = None
    if payloads is not None:
        if isinstance(payloads, Mapping):
            raise InvalidArgument("payloads must be a list with one dict (or None) per vector")
        payload_list = list(payloads)
        if len(payload_list) != rows:
            raise InvalidArgument(f"{len(payload_list)} payloads for {rows} vectors")
        encoded_payloads = []
        for row, payload in enumerate(payload_list):
            if payload is None:
                encoded_payloads.append(None)
                continue
            where = f"point {point_ids[row]!r} (row {row})"
            struct = payload_to_struct(payload, where)
            encoded_payloads.append(struct.SerializeToString(deterministic=True))
    return PreparedPoints(point_ids, id_bytes, matrix, encoded_payloads)


def encode_point(id_bytes: bytes, vector_bytes: bytes, payload: bytes | None) -> bytes:
    """The wire bytes of one ``Point`` message (without its own tag and length)."""
    parts = [_TAG_ID, varint(len(id_bytes)), id_bytes]
    if vector_bytes:
        parts += [_TAG_VECTOR, varint(len(vector_bytes)), vector_bytes]
    if payload is not None:
        parts += [_TAG_PAYLOAD, varint(len(payload)), payload]
    return b"".join(parts)


def encode_upsert_requests(
    collection: str,
    points: PreparedPoints,
    *,
    wait: bool | None,
    batch_size: int,
    max_bytes: int,
) -> Iterator[bytes]:
    """The wire bytes of ``UpsertRequest`` messages holding `points`, in order.

    Each holds at most `batch_size` points (capped at :data:`MAX_POINTS_PER_REQUEST`) and,
    unless a single point is larger, at most `max_bytes` bytes.
    """
    if batch_size < 1:
        raise InvalidArgument(f"batch_size must be at least 1; got {batch_size}")
    batch_size = min(batch_size, MAX_POINTS_PER_REQUEST)
    name = collection.encode("utf-8")
    head = _TAG_COLLECTION + varint(len(name)) + name if name else b""
    tail = b"" if wait is None else _TAG_WAIT + (b"\x01" if wait else b"\x00")
    raw = points.vectors.tobytes()
    row_bytes = points.vectors.shape[1] * 4 if points.vectors.ndim == 2 else 0
    budget = max_bytes - len(head) - len(tail)
    batch: list[bytes] = []
    size = 0
    for row in range(len(points)):
        vector = raw[row * row_bytes : (row + 1) * row_bytes]
        payload = points.payloads[row] if points.payloads is not None else None
        point = encode_point(points.id_bytes[row], vector, payload)
        entry = b"".join((_TAG_POINT, varint(len(point)), point))
        if batch and (len(batch) >= batch_size or size + len(entry) > budget):
            yield b"".join([head, *batch, tail])
            batch, size = [], 0
        batch.append(entry)
        size += len(entry)
    if batch:
        yield b"".join([head, *batch, tail])
