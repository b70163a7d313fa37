from vectron._proto.vectron.v1 import keys_pb2 as _keys_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class UserInfo(_message.Message):
    __slots__ = ("name", "role", "grants", "created_at_unix_ms", "plan")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    name: str
    role: _keys_pb2.KeyRole
    grants: _containers.RepeatedCompositeFieldContainer[_keys_pb2.CollectionGrant]
    created_at_unix_ms: int
    plan: str
    def __init__(self, name: _Optional[str] = ..., role: _Optional[_Union[_keys_pb2.KeyRole, str]] = ..., grants: _Optional[_Iterable[_Union[_keys_pb2.CollectionGrant, _Mapping]]] = ..., created_at_unix_ms: _Optional[int] = ..., plan: _Optional[str] = ...) -> None: ...

class CreateUserRequest(_message.Message):
    __slots__ = ("name", "password", "role", "grants", "plan")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    name: str
    password: str
    role: _keys_pb2.KeyRole
    grants: _containers.RepeatedCompositeFieldContainer[_keys_pb2.CollectionGrant]
    plan: str
    def __init__(self, name: _Optional[str] = ..., password: _Optional[str] = ..., role: _Optional[_Union[_keys_pb2.KeyRole, str]] = ..., grants: _Optional[_Iterable[_Union[_keys_pb2.CollectionGrant, _Mapping]]] = ..., plan: _Optional[str] = ...) -> None: ...

class ListUsersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListUsersResponse(_message.Message):
    __slots__ = ("users",)
    USERS_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedCompositeFieldContainer[UserInfo]
    def __init__(self, users: _Optional[_Iterable[_Union[UserInfo, _Mapping]]] = ...) -> None: ...

class DeleteUserRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteUserResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LoginRequest(_message.Message):
    __slots__ = ("name", "password", "ttl_seconds")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    password: str
    ttl_seconds: int
    def __init__(self, name: _Optional[str] = ..., password: _Optional[str] = ..., ttl_seconds: _Optional[int] = ...) -> None: ...

class LoginResponse(_message.Message):
    __slots__ = ("token", "expires_at_unix_s")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    token: str
    expires_at_unix_s: int
    def __init__(self, token: _Optional[str] = ..., expires_at_unix_s: _Optional[int] = ...) -> None: ...
