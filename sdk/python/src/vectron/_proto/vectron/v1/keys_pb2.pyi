from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class KeyRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KEY_ROLE_UNSPECIFIED: _ClassVar[KeyRole]
    KEY_ROLE_ADMIN: _ClassVar[KeyRole]
    KEY_ROLE_READ: _ClassVar[KeyRole]
    KEY_ROLE_SCOPED: _ClassVar[KeyRole]

class Access(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACCESS_UNSPECIFIED: _ClassVar[Access]
    ACCESS_READ: _ClassVar[Access]
    ACCESS_READ_WRITE: _ClassVar[Access]
KEY_ROLE_UNSPECIFIED: KeyRole
KEY_ROLE_ADMIN: KeyRole
KEY_ROLE_READ: KeyRole
KEY_ROLE_SCOPED: KeyRole
ACCESS_UNSPECIFIED: Access
ACCESS_READ: Access
ACCESS_READ_WRITE: Access

class CollectionGrant(_message.Message):
    __slots__ = ("collection", "access")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    ACCESS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    access: Access
    def __init__(self, collection: _Optional[str] = ..., access: _Optional[_Union[Access, str]] = ...) -> None: ...

class KeyInfo(_message.Message):
    __slots__ = ("id", "role", "grants", "description", "created_at_unix_ms", "plan")
    ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    id: str
    role: KeyRole
    grants: _containers.RepeatedCompositeFieldContainer[CollectionGrant]
    description: str
    created_at_unix_ms: int
    plan: str
    def __init__(self, id: _Optional[str] = ..., role: _Optional[_Union[KeyRole, str]] = ..., grants: _Optional[_Iterable[_Union[CollectionGrant, _Mapping]]] = ..., description: _Optional[str] = ..., created_at_unix_ms: _Optional[int] = ..., plan: _Optional[str] = ...) -> None: ...

class CreateKeyRequest(_message.Message):
    __slots__ = ("role", "grants", "description", "plan")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    role: KeyRole
    grants: _containers.RepeatedCompositeFieldContainer[CollectionGrant]
    description: str
    plan: str
    def __init__(self, role: _Optional[_Union[KeyRole, str]] = ..., grants: _Optional[_Iterable[_Union[CollectionGrant, _Mapping]]] = ..., description: _Optional[str] = ..., plan: _Optional[str] = ...) -> None: ...

class CreateKeyResponse(_message.Message):
    __slots__ = ("key", "secret")
    KEY_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    key: KeyInfo
    secret: str
    def __init__(self, key: _Optional[_Union[KeyInfo, _Mapping]] = ..., secret: _Optional[str] = ...) -> None: ...

class ListKeysRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListKeysResponse(_message.Message):
    __slots__ = ("keys",)
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[KeyInfo]
    def __init__(self, keys: _Optional[_Iterable[_Union[KeyInfo, _Mapping]]] = ...) -> None: ...

class RevokeKeyRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class RevokeKeyResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CreateTokenRequest(_message.Message):
    __slots__ = ("subject", "role", "grants", "ttl_seconds", "plan")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    subject: str
    role: KeyRole
    grants: _containers.RepeatedCompositeFieldContainer[CollectionGrant]
    ttl_seconds: int
    plan: str
    def __init__(self, subject: _Optional[str] = ..., role: _Optional[_Union[KeyRole, str]] = ..., grants: _Optional[_Iterable[_Union[CollectionGrant, _Mapping]]] = ..., ttl_seconds: _Optional[int] = ..., plan: _Optional[str] = ...) -> None: ...

class CreateTokenResponse(_message.Message):
    __slots__ = ("token", "expires_at_unix_s")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    token: str
    expires_at_unix_s: int
    def __init__(self, token: _Optional[str] = ..., expires_at_unix_s: _Optional[int] = ...) -> None: ...
