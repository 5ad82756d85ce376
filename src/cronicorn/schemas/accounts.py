"""Accounts: sign-in options, users, API keys and connected devices (response and request
models). `UserView` and `ApiKey` are the one view of a user and of a key that every face shows
(the API's JSON, the admin and settings pages, the CLI), built from the store rows by `of`.

The auth routes follow better-auth's paths and bodies, so the reference's web client keeps
working: their request bodies ignore unknown fields (better-auth clients send extras such as
`rememberMe`) but are as strictly typed as every other body.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from cronicorn.schemas.common import Absent, NonBlank, Out, Text, UtcDatetime
from cronicorn.store.api_keys import ApiKeyRow
from cronicorn.store.users import UserRow

KeyName = Annotated[NonBlank, Field(min_length=1, max_length=200)]


class AuthBody(BaseModel):
    """A better-auth request body: unknown fields ignored, known ones strictly typed."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, strict=True)


class AuthConfig(Out):
    has_email_password: bool = Field(alias="hasEmailPassword")
    has_github_oauth: bool = Field(
        alias="hasGitHubOAuth", description="GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET are set"
    )
    allow_signup: bool = Field(description="ALLOW_SIGNUP: anyone may create an account")


class UserView(Out):
    """A user as every face shows one: never the password hash or the GitHub id, only
    whether they exist."""

    id: str
    email: str
    name: str
    is_admin: bool
    disabled: bool = Field(description="Every session and API key of the user is refused")
    disabled_at: UtcDatetime | None
    created_at: UtcDatetime
    has_password: bool = Field(description="Can sign in with email and password")
    github_linked: bool = Field(description="Can sign in with GitHub")

    @classmethod
    def of(cls, row: UserRow) -> UserView:
        return cls(
            id=row.id,
            email=row.email,
            name=row.name,
            is_admin=row.is_admin,
            disabled=row.disabled_at is not None,
            disabled_at=row.disabled_at,
            created_at=row.created_at,
            has_password=row.password_hash is not None,
            github_linked=row.github_id is not None,
        )


class UserList(Out):
    users: list[UserView]


class CreatedUser(Out):
    user: UserView
    password: Absent[str] = Field(
        default=None, description="The generated password, shown this once (absent if given)"
    )


class NewUser(BaseModel):
    """`POST /api/users` (administrators): camelCase or snake_case names, strict types."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)

    email: Text = Field(max_length=320)
    name: NonBlank | None = Field(default=None, max_length=200)
    password: Text | None = Field(
        default=None, max_length=1024, description="omit to generate one (returned once)"
    )
    is_admin: bool = Field(default=False, alias="isAdmin")


class ApiKey(Out):
    """An API key as every face shows one (never the key: only its first characters)."""

    id: str
    name: str
    prefix: str = Field(description="The key's first characters, to recognise it")
    start: str = Field(description="Same as prefix (better-auth's name for it)")
    enabled: bool
    created_at: UtcDatetime
    last_used_at: UtcDatetime | None
    expires_at: UtcDatetime | None = Field(description="null: never expires")

    @classmethod
    def fields_of(cls, row: ApiKeyRow) -> dict[str, Any]:
        return {
            "id": row.id,
            "name": row.name,
            "prefix": row.prefix,
            "start": row.prefix,
            "enabled": row.revoked_at is None,
            "created_at": row.created_at,
            "last_used_at": row.last_used_at,
            "expires_at": row.expires_at,
        }

    @classmethod
    def of(cls, row: ApiKeyRow) -> ApiKey:
        return cls(**cls.fields_of(row))


class CreatedApiKey(ApiKey):
    key: str = Field(description="The key itself, shown this once")

    @classmethod
    def issued(cls, key: str, row: ApiKeyRow) -> CreatedApiKey:
        return cls(**cls.fields_of(row), key=key)


class CreateKey(AuthBody):
    name: KeyName
    expires_in: int | None = Field(
        default=None, alias="expiresIn", gt=0, le=10 * 365 * 24 * 3600, description="seconds"
    )


class UpdateKey(AuthBody):
    """better-auth's `api-key/update`; only the name can change here."""

    key_id: Text = Field(alias="keyId", max_length=100)
    name: KeyName


class DeleteKey(AuthBody):
    key_id: Text = Field(alias="keyId", max_length=100)


class Device(Out):
    """A session of the caller: a browser's, or a device-flow token's (never the token)."""

    id: str
    kind: str = Field(description="`browser` or `device`")
    user_agent: str | None
    ip_address: str | None
    created_at: UtcDatetime
    last_seen_at: UtcDatetime | None
    expires_at: UtcDatetime
    current: bool = Field(description="The session making this request")


class DeviceList(Out):
    devices: list[Device]


class Success(Out):
    success: bool
