"""Accounts: sign-in options, API keys and connected devices (response and request models).

The auth routes follow better-auth's paths and bodies, so the reference's web client keeps
working: their request bodies ignore unknown fields (better-auth clients send extras such as
`rememberMe`) but are as strictly typed as every other body.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from cronicorn.schemas.common import NonBlank, Out, Text, UtcDatetime

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


class ApiKey(Out):
    id: str
    name: str
    prefix: str = Field(description="The key's first characters, to recognise it")
    start: str = Field(description="Same as prefix (better-auth's name for it)")
    enabled: bool
    created_at: UtcDatetime
    last_used_at: UtcDatetime | None
    expires_at: UtcDatetime | None = Field(description="null: never expires")


class CreatedApiKey(ApiKey):
    key: str = Field(description="The key itself, shown this once")


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
