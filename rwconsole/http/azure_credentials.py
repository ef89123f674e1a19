"""Azure credential sources beyond plain token requests: the Azure CLI.

Owns the Azure CLI credential of the ``sdk`` chain (``az account
get-access-token --output json --resource <resource> [--tenant <tenant>]``,
the signed-in user's or service principal's token, as the Azure SDK's
``AzureCliCredential`` gets it), ``Unavailable`` (a source that is not set up
here, so the chain moves on) and turning a ``Token`` into ``Fetched`` with its
expiry.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Mapping

from rwconsole.http.credential_cache import Clock, Fetched, run_credential_command
from rwconsole.http.errors import AuthError
from rwconsole.http.tokens import Token, now_monotonic

CLI_SOURCE = "Azure CLI (az account get-access-token)"


class Unavailable(AuthError):
    """The credential source is not available here (no IMDS, no ``az``): try the next."""


def fetched_token(token: Token, source: str, clock: Clock) -> Fetched[Token]:
    """``token`` with its expiry as Unix time (the issuer's, else its refresh time)."""
    ends = token.expires_at if token.expires_at is not None else token.refresh_at
    return Fetched(token, source, clock() + max(0.0, ends - now_monotonic()))


async def azure_cli_token(
    resource: str, tenant: str, environ: Mapping[str, str], clock: Clock
) -> Fetched[Token]:
    """A token from the Azure CLI; ``Unavailable`` when ``az`` is not installed."""
    program = shutil.which("az", path=environ.get("PATH"))
    if program is None:
        raise Unavailable("Azure CLI: 'az' is not on PATH")
    argv = [program, "account", "get-access-token", "--output", "json", "--resource", resource]
    if tenant:
        argv += ["--tenant", tenant]
    output = await run_credential_command(argv, what="Azure CLI", env=environ)
    try:
        payload = json.loads(output)
    except ValueError:
        raise AuthError(
            "Azure CLI: the output of az account get-access-token is not JSON"
        ) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("accessToken"), str):
        raise AuthError("Azure CLI: no accessToken in the output of az account get-access-token")
    expires_at = _cli_expiry(payload)
    lifetime = expires_at - clock()
    ends = now_monotonic() + lifetime
    token = Token(payload["accessToken"], "Bearer", ends, ends)
    return Fetched(token, CLI_SOURCE, expires_at)


def _cli_expiry(payload: dict[str, object]) -> float:
    """``expires_on`` (Unix time, newer CLIs) or ``expiresOn`` (local time, older ones)."""
    raw = payload.get("expires_on")
    if isinstance(raw, int | float | str) and str(raw).strip().isdigit():
        return float(raw)
    text = payload.get("expiresOn")
    if isinstance(text, str):
        try:
            return dt.datetime.fromisoformat(text.strip()).timestamp()
        except ValueError:
            pass
    raise AuthError("Azure CLI: no usable expires_on/expiresOn in the output")
