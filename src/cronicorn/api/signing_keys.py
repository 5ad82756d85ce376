"""`/api/signing-keys`: the caller's outbound HMAC key. The raw key is returned once (on
create or rotate) and stored encrypted. A rotation keeps the old key signing for
`SIGNING_KEY_GRACE_HOURS`, so receivers can switch over without dropping a request."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter

from cronicorn.api.deps import ConnDep, RuntimeDep, UserDep
from cronicorn.api.params import NowDep
from cronicorn.runtime import Runtime
from cronicorn.schemas.dashboard import GraceKey, KeyInfo, NewKey
from cronicorn.store import signing_keys as key_store

router = APIRouter(tags=["Signing Keys"])


def _new_key(runtime: Runtime) -> tuple[str, bytes, str]:
    """(the key as shown once: 64 hex characters, its ciphertext, display prefix)."""
    from cronicorn.dispatch.signing import encrypt_signing_key, generate_signing_key

    raw, shown, prefix = generate_signing_key()
    return shown, encrypt_signing_key(raw, runtime.auth_secret), prefix


@router.get("/signing-keys", response_model=KeyInfo, summary="The signing key (never the raw key)")
async def get_key(user: UserDep, conn: ConnDep, now: NowDep) -> KeyInfo:
    keys = await key_store.list_live(conn, user.user_id, now)
    current = next((k for k in keys if k.retire_at is None), None)
    grace = [
        GraceKey(key_prefix=k.key_prefix, retire_at=k.retire_at)
        for k in keys
        if k.retire_at is not None
    ]
    return KeyInfo(
        has_key=current is not None,
        key_prefix=current.key_prefix if current else None,
        created_at=current.created_at if current else None,
        rotated_at=current.rotated_at if current else None,
        grace_keys=grace,
    )


@router.post(
    "/signing-keys",
    status_code=201,
    response_model=NewKey,
    summary="Create the signing key (409 if one exists)",
)
async def create_key(user: UserDep, conn: ConnDep, runtime: RuntimeDep, now: NowDep) -> NewKey:
    raw, encrypted, prefix = _new_key(runtime)
    await key_store.create(conn, user.user_id, encrypted=encrypted, prefix=prefix, now=now)
    return NewKey(raw_key=raw, key_prefix=prefix)


@router.post(
    "/signing-keys/rotate",
    response_model=NewKey,
    summary="Replace the signing key; the old one signs on during the grace period",
)
async def rotate_key(user: UserDep, conn: ConnDep, runtime: RuntimeDep, now: NowDep) -> NewKey:
    raw, encrypted, prefix = _new_key(runtime)
    grace = timedelta(hours=runtime.settings.signing_key_grace_hours)
    _, retire_at = await key_store.rotate(
        conn, user.user_id, encrypted=encrypted, prefix=prefix, now=now, grace=grace
    )
    return NewKey(raw_key=raw, key_prefix=prefix, previous_key_retire_at=retire_at)
