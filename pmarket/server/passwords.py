"""Which passwords are acceptable: NIST SP 800-63B's rules, no composition rules.

A password must be at least ``MIN_LENGTH`` characters, at most bcrypt's 72 bytes, and
not guessable from a list: not one of the 30,000 most common passwords (bundled in
``common-passwords.txt``) — nor one of them with a few digits or symbols tacked on —, not
one character repeated or a keyboard/alphabet/digit run, and not containing the local
part of the account's e-mail. No "one upper case, one digit" rules: length and
unpredictability matter, not character classes.

``password_problem`` says why a password is refused (one sentence for the user) or
returns None; sign-up answers 422 ``weak_password`` with it, and ``pmarket admin
create`` and the first-start admin (``PMARKET_ADMIN_PASSWORD``) are held to the same
rules.
"""

from __future__ import annotations

import functools
from importlib import resources

MIN_LENGTH = 10
MAX_BYTES = 72
MAX_PADDING = 4
"""Characters that may be added to a common password and still count as that password."""

_RUNS = ("0123456789", "1234567890", "abcdefghijklmnopqrstuvwxyz",
         "qwertyuiopasdfghjklzxcvbnm", "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p")
_PADDING = frozenset("0123456789 !@#$%^&*()-_=+.,?;:'\"~`")


@functools.cache
def common_passwords() -> frozenset[str]:
    """The bundled list of common passwords (lower case), read once."""
    text = resources.files(__package__).joinpath("common-passwords.txt").read_text("utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines()
                     if line.strip() and not line.startswith("#"))


def _is_run(text: str) -> bool:
    return any(text in run or text in run[::-1] for run in _RUNS)


def password_problem(password: str, email: str = "") -> str | None:
    """Why ``password`` may not be used for the account ``email``, or None if it may.

    Args:
        password: the candidate password.
        email: the account's e-mail (its local part may not appear in the password).
    """
    if len(password) < MIN_LENGTH:
        return f"password must be at least {MIN_LENGTH} characters long"
    if len(password.encode("utf-8")) > MAX_BYTES:
        return f"password must be at most {MAX_BYTES} bytes (bcrypt's limit)"
    lower = password.lower()
    if len(set(lower)) <= 2 or _is_run(lower):
        return "password is a repeated character or a keyboard or alphabet run"
    common = common_passwords()
    padded = (lower[:-k] for k in range(1, MAX_PADDING + 1)
              if k < len(lower) and _PADDING.issuperset(lower[-k:]))
    if lower in common or any(base in common for base in padded):
        return "password is too common: it appears in lists of leaked passwords"
    local = email.split("@", 1)[0].strip().lower()
    if len(local) >= 3 and local in lower:
        return "password must not contain your e-mail's name"
    return None
