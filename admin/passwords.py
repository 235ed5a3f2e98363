"""Password hashing for admin users with Argon2id (argon2-cffi's default parameters)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_PASSWORD_LENGTH = 12

_hasher = PasswordHasher()

# Verified against when the email is unknown, so a failed login takes as long either way.
_DUMMY_HASH = _hasher.hash("not-a-real-password-for-timing")


class PasswordPolicyError(ValueError):
    """A password that is too weak to store."""


def hash_password(password: str) -> str:
    """Hash a new password; raise PasswordPolicyError when it is shorter than the minimum."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordPolicyError(
            f"password is too short: use at least {MIN_PASSWORD_LENGTH} characters"
        )
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Return whether ``password`` matches; a missing hash still costs one verification."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)
