"""What both clients' ``upload_points`` share: checking the arguments, cutting the rows
into batches, encoding a batch, and counting what was acknowledged.

The points are checked and converted whole (:func:`vectron._encode.prepare_points`)
before any batch is sent; a batch is encoded only when a worker takes it, straight to
``UpsertRequest`` wire bytes, and is sent on an ``UpsertStream`` of its own, so that a
refused batch can be sent again whole (upserts are idempotent by id). The clients run the
workers: threads for :class:`vectron.Client`, tasks for :class:`vectron.AsyncClient`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from vectron import _encode
from vectron._proto.vectron.v1 import points_pb2
from vectron.errors import InvalidArgument
from vectron.models import UpsertResult

__all__ = [
    "DEFAULT_MAX_RETRIES",
    "ProgressCallback",
    "UploadPlan",
    "UploadTally",
    "check_upload_args",
]

#: Retries ``upload_points`` allows each batch by default.
DEFAULT_MAX_RETRIES = 10

#: ``progress(done_points, total_points)``, called as batches are acknowledged.
ProgressCallback = Callable[[int, int], None]


def _whole(value: object, what: str, least: int) -> int:
    """`value` when it is an integer (not a bool) of at least `least`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise InvalidArgument(f"{what} must be an integer of at least {least}; got {value!r}")
    return value


def check_upload_args(
    batch_size: int, parallel: int, max_retries: int, progress: ProgressCallback | None
) -> None:
    """Refuses arguments of ``upload_points`` that cannot work, before anything else."""
    _whole(batch_size, "batch_size", 1)
    if batch_size > _encode.MAX_POINTS_PER_REQUEST:
        raise InvalidArgument(
            f"batch_size must be at most {_encode.MAX_POINTS_PER_REQUEST}; got {batch_size}"
        )
    _whole(parallel, "parallel", 1)
    _whole(max_retries, "max_retries", 0)
    if progress is not None and not callable(progress):
        raise InvalidArgument(f"progress must be a callable or None; got {progress!r}")


@dataclass(frozen=True)
class UploadPlan:
    """Checked points cut into batches of consecutive rows."""

    collection: str
    points: _encode.PreparedPoints
    batch_size: int
    parallel: int
    wait: bool | None
    max_retries: int
    #: Largest message to send (the client's limit less a margin).
    max_bytes: int

    @property
    def batch_count(self) -> int:
        """Number of batches."""
        return -(-len(self.points) // self.batch_size)

    @property
    def workers(self) -> int:
        """Concurrent streams to run: `parallel`, or fewer when there are fewer batches."""
        return min(self.parallel, self.batch_count)

    def bounds(self, index: int) -> tuple[int, int]:
        """The rows of batch `index`: start and stop (exclusive)."""
        start = index * self.batch_size
        return start, min(start + self.batch_size, len(self.points))

    def messages(self, index: int) -> list[bytes]:
        """The ``UpsertRequest`` wire bytes of batch `index`: one message, or more when it
        is larger than the message limit."""
        start, stop = self.bounds(index)
        return list(
            _encode.encode_upsert_requests(
                self.collection,
                self.points.rows(start, stop),
                wait=self.wait,
                batch_size=self.batch_size,
                max_bytes=self.max_bytes,
            )
        )


class UploadTally:
    """What has been acknowledged so far; reports progress as batches are."""

    def __init__(self, plan: UploadPlan, progress: ProgressCallback | None) -> None:
        """Starts at nothing acknowledged."""
        self._plan = plan
        self._progress = progress
        self._done = 0
        self._count = 0
        self._durable = True

    def acknowledged(self, index: int, response: points_pb2.UpsertResponse) -> None:
        """Counts batch `index` as acknowledged with `response`, and reports progress."""
        start, stop = self._plan.bounds(index)
        self._done += stop - start
        self._count += response.count
        self._durable = self._durable and response.durable
        if self._progress is not None:
            self._progress(self._done, len(self._plan.points))

    def result(self) -> UpsertResult:
        """The points acknowledged, whether durable, and every id in input order."""
        return UpsertResult(
            count=self._count, durable=self._durable, ids=tuple(self._plan.points.ids)
        )
