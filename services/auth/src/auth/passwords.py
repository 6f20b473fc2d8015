"""Password policy and argon2id hashing, always off the event loop.

Hashing runs in a dedicated, bounded thread pool: argon2-cffi releases the GIL, so a login storm
costs CPU but never stalls the event loop, and it cannot starve the default executor either.
"""

from __future__ import annotations

import asyncio
import os
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from common.errors import Unprocessable

T = TypeVar("T")


@dataclass(frozen=True)
class HashParameters:
    """OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1."""

    time_cost: int = 2
    memory_kib: int = 19 * 1024
    parallelism: int = 1


def _hasher_for(parameters: HashParameters) -> PasswordHasher:
    return PasswordHasher(time_cost=parameters.time_cost, memory_cost=parameters.memory_kib,
                          parallelism=parameters.parallelism)


class _State:
    def __init__(self) -> None:
        self.parameters = HashParameters()
        self.hasher = _hasher_for(self.parameters)
        self.dummy_hash: str | None = None
        self.executor: ThreadPoolExecutor | None = None
        # One core fewer than the machine has: the event loop (and the database driver) always keep one.
        self.threads = max(1, (os.cpu_count() or 1) - 1)


_state = _State()


def configure(parameters: HashParameters, threads: int | None = None) -> None:
    """Set the process's hashing parameters (auth start-up). New parameters make every stored hash
    with the old ones `needs_rehash`, so accounts move over at their next successful login."""
    if parameters != _state.parameters:
        _state.parameters = parameters
        _state.hasher = _hasher_for(parameters)
        _state.dummy_hash = None
    if threads and threads != _state.threads:
        _state.threads = threads
        if _state.executor is not None:
            _state.executor.shutdown(wait=False)
            _state.executor = None


def _executor() -> ThreadPoolExecutor:
    if _state.executor is None:
        _state.executor = ThreadPoolExecutor(max_workers=_state.threads, thread_name_prefix="argon2")
    return _state.executor


async def _off_loop(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(_executor(), fn, *args)


def normalise(password: str) -> str:
    """NFKC, so the same passphrase typed on two keyboards is the same password (NIST 800-63B)."""
    return unicodedata.normalize("NFKC", password)


async def hash_password(password: str) -> str:
    hasher = _state.hasher
    return await _off_loop(hasher.hash, normalise(password))


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Checks against a dummy hash with the same parameters when there is no account, so an unknown
    email costs the same time as a wrong password."""
    hasher = _state.hasher
    if password_hash is None and _state.dummy_hash is None:
        _state.dummy_hash = await _off_loop(hasher.hash, "timing-equaliser-not-a-password")
    target = password_hash or _state.dummy_hash or ""
    candidate = normalise(password)

    def check() -> bool:
        try:
            return bool(hasher.verify(target, candidate))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    valid: bool = await _off_loop(check)
    return valid and password_hash is not None


def needs_rehash(password_hash: str) -> bool:
    try:
        return _state.hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


# --- policy -------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """The 10,000 most common passwords (see data/common_passwords.txt for the source), loaded once."""
    text = resources.files("auth").joinpath("data/common_passwords.txt").read_text(encoding="utf-8")
    return frozenset(line for line in text.splitlines() if line and not line.startswith("#"))


def check_policy(password: str, *, email: str | None = None, min_length: int = 8,
                 max_length: int = 256) -> None:
    """ASVS 2.1: length 8..max (long passphrases welcome, spaces and any Unicode allowed, no
    composition rules), not one of the most common passwords, not the email address itself."""
    candidate = normalise(password)
    if len(candidate) < min_length:
        raise Unprocessable(f"the password must have at least {min_length} characters",
                            code="password_too_short")
    if len(candidate) > max_length:
        raise Unprocessable(f"the password must have at most {max_length} characters",
                            code="password_too_long")
    lowered = candidate.lower()
    if lowered in common_passwords() or lowered.strip() in common_passwords():
        raise Unprocessable("this password is too common; choose a longer or less predictable one",
                            code="password_too_common")
    if email and lowered in {email.lower(), email.lower().split("@", 1)[0]}:
        raise Unprocessable("the password must not be your email address", code="password_is_email")
