"""The gRPC channel of a client: address, TLS, message limits, keepalive, credentials."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeAlias

import grpc
import grpc.aio

from vectron.errors import InvalidArgument

#: Largest message sent or received by default: the server's limit.
DEFAULT_MAX_MESSAGE_BYTES = 64 << 20

#: A CA certificate: PEM bytes or text, or the path of a PEM file.
CaCert: TypeAlias = bytes | str | os.PathLike[str]


def resolve_target(address: str, tls: bool, ca_cert: CaCert | None) -> tuple[str, bool]:
    """The ``host:port`` to dial and whether to speak TLS.

    ``https://`` turns TLS on; ``http://`` with TLS asked for is refused rather than sent
    in the clear; an address without a scheme speaks TLS when `tls` or `ca_cert` is set.
    """
    if not isinstance(address, str) or not address:
        raise InvalidArgument(f"address must be 'host:port' or a URI; got {address!r}")
    wants_tls = tls or ca_cert is not None
    if "://" not in address:
        return address, wants_tls
    scheme, rest = address.split("://", 1)
    target = rest.rstrip("/")
    if scheme.lower() == "https":
        return target, True
    if scheme.lower() == "http":
        if wants_tls:
            raise InvalidArgument(
                f"TLS is set but the address {address!r} says http://; use https:// or no scheme"
            )
        return target, False
    raise InvalidArgument(f"unsupported scheme in {address!r}: use host:port, http:// or https://")


def read_ca_cert(ca_cert: CaCert) -> bytes:
    """PEM bytes of a CA certificate given as bytes, PEM text or a file path."""
    if isinstance(ca_cert, bytes):
        return ca_cert
    if isinstance(ca_cert, str) and ca_cert.lstrip().startswith("-----BEGIN"):
        return ca_cert.encode("ascii")
    return Path(ca_cert).read_bytes()


def channel_options(
    max_message_bytes: int, user_agent: str, tls_server_name: str | None
) -> list[tuple[str, int | str]]:
    """Channel arguments: message limits, keepalive (a ping every 30 s, dropped after
    10 s without an answer, as the Rust SDK does), reconnection backoff capped at 5 s
    (gRPC's default of 120 s would leave a client failing fast long after the server is
    back), user agent, TLS name override."""
    options: list[tuple[str, int | str]] = [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 5_000),
        ("grpc.primary_user_agent", user_agent),
    ]
    if tls_server_name is not None:
        options.append(("grpc.ssl_target_name_override", tls_server_name))
    return options


def open_channel(
    target: str,
    *,
    use_tls: bool,
    ca_cert: CaCert | None,
    options: list[tuple[str, int | str]],
) -> grpc.Channel:
    """A channel to `target`; it connects on first use and reconnects after failures."""
    if not use_tls:
        return grpc.insecure_channel(target, options=options)
    root = read_ca_cert(ca_cert) if ca_cert is not None else None
    credentials = grpc.ssl_channel_credentials(root_certificates=root)
    return grpc.secure_channel(target, credentials, options=options)


def open_aio_channel(
    target: str,
    *,
    use_tls: bool,
    ca_cert: CaCert | None,
    options: list[tuple[str, int | str]],
) -> grpc.aio.Channel:
    """An asyncio channel to `target` (``grpc.aio``), with the same settings as
    :func:`open_channel`; it belongs to the event loop it is first used in."""
    if not use_tls:
        return grpc.aio.insecure_channel(target, options=options)
    root = read_ca_cert(ca_cert) if ca_cert is not None else None
    credentials = grpc.ssl_channel_credentials(root_certificates=root)
    return grpc.aio.secure_channel(target, credentials, options=options)


def authorization_metadata(api_key: str | None) -> tuple[tuple[str, str], ...]:
    """The ``authorization: Bearer <key>`` header of every call, when there is a key."""
    if api_key is None:
        return ()
    if not isinstance(api_key, str) or not api_key:
        raise InvalidArgument("api_key must be a non-empty string")
    if any(not 0x20 < ord(ch) < 0x7F for ch in api_key):
        raise InvalidArgument("the API key holds characters a header cannot carry")
    return (("authorization", f"Bearer {api_key}"),)
