"""Authentication and the admin calls (keys, plans, users) on a `vectron dev --auth`."""

from __future__ import annotations

import time
import uuid

import numpy as np
import pytest

import vectron
from conftest import Connect, DevServer
from vectron import Access, Client, KeyRole, Plan


def test_no_key_or_a_wrong_key_is_unauthenticated(auth_server: DevServer, connect: Connect) -> None:
    with connect(auth_server.grpc, timeout=30) as anonymous:
        with pytest.raises(vectron.Unauthenticated):
            anonymous.list_collections()
    with connect(auth_server.grpc, api_key="vk_notarealkey_" + "x" * 43, timeout=30) as wrong:
        with pytest.raises(vectron.Unauthenticated) as caught:
            wrong.create_collection("never", 4)
        assert caught.value.message


def test_the_admin_key_works(admin: Client, collection_name: str) -> None:
    created = admin.create_collection(collection_name, 4)
    try:
        assert created.owner == "admin key"
        admin.upsert(collection_name, np.eye(4), ids=["a", "b", "c", "d"])
        assert admin.count(collection_name) == 4
        assert admin.search(collection_name, [1, 0, 0, 0], k=1)[0].id == "a"
        assert collection_name in [c.name for c in admin.list_collections()]
        assert len(admin.core_stats().cores) == 1
    finally:
        admin.drop_collection(collection_name)


def test_keys_roles_and_revocation(
    auth_server: DevServer, admin: Client, connect: Connect, collection_name: str
) -> None:
    admin.create_collection(collection_name, 4)
    try:
        reader = admin.create_key("read", description="python sdk test reader")
        assert reader.secret.startswith(f"vk_{reader.key.id}_")
        assert reader.key.role is KeyRole.READ
        assert "secret" not in repr(reader) and reader.secret not in repr(reader)
        writer = admin.create_key(KeyRole.SCOPED, grants={collection_name: Access.READ_WRITE})
        assert [(g.collection, g.access) for g in writer.key.grants] == [
            (collection_name, Access.READ_WRITE)
        ]
        listed = {k.id: k for k in admin.list_keys()}
        assert listed[reader.key.id].description == "python sdk test reader"
        assert reader.key.id in listed and writer.key.id in listed

        with connect(auth_server.grpc, api_key=reader.secret, timeout=30) as as_reader:
            assert as_reader.count(collection_name) == 0
            with pytest.raises(vectron.PermissionDenied):
                as_reader.upsert(collection_name, np.ones((1, 4)), ids=["r"])
        with connect(auth_server.grpc, api_key=writer.secret, timeout=30) as as_writer:
            assert as_writer.upsert(collection_name, np.ones((1, 4)), ids=["w"]).count == 1
            assert [c.name for c in as_writer.list_collections()] == [collection_name]
            with pytest.raises(vectron.PermissionDenied):
                as_writer.core_stats()

        admin.revoke_key(reader.key.id)
        assert reader.key.id not in {k.id for k in admin.list_keys()}
        with connect(auth_server.grpc, api_key=reader.secret, timeout=30, retries=0) as revoked:
            deadline = time.monotonic() + 10
            while True:  # every gateway refuses a revoked key within a second
                try:
                    revoked.count(collection_name)
                except vectron.Unauthenticated:
                    break
                assert time.monotonic() < deadline, "the revoked key still works after 10 s"
                time.sleep(0.1)
        admin.revoke_key(writer.key.id)
    finally:
        admin.drop_collection(collection_name)


def test_plans_and_retry_after(auth_server: DevServer, admin: Client, connect: Connect) -> None:
    name = f"slow-{uuid.uuid4().hex[:8]}"
    plan = admin.set_plan(Plan(name, requests_per_second=1, burst=1, max_points=1000))
    assert plan == Plan(name, 1, 1, max_collections=None, max_points=1000)
    assert plan in admin.list_plans()
    key = admin.create_key("read", plan=name)
    try:
        assert key.key.plan == name
        with connect(auth_server.grpc, api_key=key.secret, retries=0, timeout=30) as impatient:
            impatient.list_collections()
            with pytest.raises(vectron.ResourceExhausted) as caught:
                impatient.list_collections()
            assert caught.value.retry_after is not None and caught.value.retry_after >= 1
        # The same calls with retries wait out the server's retry-after and succeed.
        with connect(auth_server.grpc, api_key=key.secret, retries=3, timeout=30) as patient:
            started = time.monotonic()
            for _ in range(3):
                patient.list_collections()
            assert time.monotonic() - started >= 1.0
        # A retry-after longer than the client will wait is raised, not waited out.
        with connect(
            auth_server.grpc, api_key=key.secret, retries=3, max_retry_after=0.5, timeout=30
        ) as brief:
            with pytest.raises(vectron.ResourceExhausted):
                for _ in range(3):
                    brief.list_collections()
        with pytest.raises(vectron.FailedPrecondition):
            admin.delete_plan(name)  # a key still names it
    finally:
        admin.revoke_key(key.key.id)
    admin.delete_plan(name)
    assert name not in [p.name for p in admin.list_plans()]


def test_users_login_and_tokens(auth_server: DevServer, admin: Client, connect: Connect) -> None:
    user = f"ada-{uuid.uuid4().hex[:6]}"
    created = admin.create_user(user, "correct horse battery", "read")
    assert created.name == user and created.role is KeyRole.READ
    assert user in [u.name for u in admin.list_users()]
    with connect(auth_server.grpc, timeout=30) as anonymous:
        token = anonymous.login(user, "correct horse battery", ttl_seconds=600)
        assert token.expires_at_unix_s > time.time()
        assert token.token not in repr(token)
        with pytest.raises(vectron.Unauthenticated):
            anonymous.login(user, "wrong password!")
    with connect(auth_server.grpc, api_key=token.token, timeout=30) as as_user:
        as_user.list_collections()
        with pytest.raises(vectron.PermissionDenied):
            as_user.create_collection(f"u{uuid.uuid4().hex[:8]}", 4)
    minted = admin.create_token("python-sdk-test", "read", ttl_seconds=60)
    with connect(auth_server.grpc, api_key=minted.token, timeout=30) as with_token:
        with_token.list_collections()
    admin.delete_user(user)
    assert user not in [u.name for u in admin.list_users()]
    with pytest.raises(vectron.NotFound):
        admin.delete_user(user)
