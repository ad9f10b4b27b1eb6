"""How the simulator opens its target: a fresh in-process engine, or a running server.

Above both targets (``inprocess_target``, ``http_target``) and their interface
(``targets``), so that none of them needs to know the others.
"""

from __future__ import annotations

from ..client import ApiError, ServerUnavailable
from .http_target import HttpTarget
from .inprocess_target import InProcessTarget
from .targets import Target, TargetUnavailable


def open_target(url: str | None, admin_email: str | None = None,
                admin_password: str | None = None, api_keys: bool = False) -> Target:
    """The target for ``--target URL`` (None: a fresh in-process engine).

    Args:
        url: a running server's base URL, or None for the in-process engine.
        admin_email: an admin account's email (needed for a URL).
        admin_password: that admin's password.
        api_keys: over HTTP, users act with API keys rather than tokens.

    Raises:
        TargetUnavailable: for a URL without admin credentials, with credentials the
            server refuses, or where no server answers.
    """
    if url is None:
        return InProcessTarget()
    missing = [what for what, value in (
        ("--admin-email (or PMARKET_ADMIN_EMAIL)", admin_email),
        ("--admin-password (or PMARKET_ADMIN_PASSWORD)", admin_password)) if not value]
    if missing:
        raise TargetUnavailable(
            f"replaying against {url} needs an admin account to create events, resolve "
            f"them and read the audit; missing: {' and '.join(missing)}")
    try:
        return HttpTarget(url, str(admin_email), str(admin_password), api_keys=api_keys)
    except ServerUnavailable as exc:
        raise TargetUnavailable(f"no pmarket server answers at {url}: {exc}") from None
    except ApiError as exc:
        raise TargetUnavailable(
            f"{url} refused the admin sign-in of {admin_email}: {exc.message}") from None
