"""Typed failures of the accounts package; the faces map each one once (`error_table.py`,
`commands/common.py`). An error raised without a message says its docstring's first line."""

from __future__ import annotations


class AuthError(Exception):
    """Base of the errors the accounts package raises on purpose."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").split("\n", 1)[0])


class InvalidCredentials(AuthError):
    """Invalid email or password

    Wrong email or password, or a disabled user: one message for all, so a caller cannot
    tell which accounts exist."""


class SignupDisabled(AuthError):
    """Sign-up is disabled on this server (ALLOW_SIGNUP=false)"""


class UserExists(AuthError):
    def __init__(self, email: str) -> None:
        super().__init__(f"A user with email {email} already exists")
        self.email = email


class UserNotFound(AuthError):
    def __init__(self, what: str) -> None:
        super().__init__(f"No user {what}")


class InvalidInput(AuthError):
    """A value breaks a rule (bad email, short password, empty name)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class ApiKeyNotFound(AuthError):
    def __init__(self, key_id: str) -> None:
        super().__init__(f"No API key {key_id}")


class DeviceFlowError(AuthError):
    """An RFC 8628 error: `code` is the `error` value of the token response."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


class OAuthError(AuthError):
    """GitHub sign-in failed (state mismatch, GitHub error, user not allowed)."""
