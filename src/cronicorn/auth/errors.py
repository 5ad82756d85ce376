"""Typed failures of the accounts package; the API and the CLI map each one once."""

from __future__ import annotations


class AuthError(Exception):
    """Base of the errors the accounts package raises on purpose."""


class InvalidCredentials(AuthError):
    """Wrong email or password, or a disabled user (one message for all, no enumeration)."""

    def __init__(self) -> None:
        super().__init__("Invalid email or password")


class SignupDisabled(AuthError):
    def __init__(self) -> None:
        super().__init__("Sign-up is disabled on this server (ALLOW_SIGNUP=false)")


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
