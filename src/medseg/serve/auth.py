"""Who is calling: the API key of ``Authorization: Bearer`` (or, for reading, the viewer's
session cookie), with failed attempts counted per client address (`FailureLimiter`).

`Caller` and `Reader` are the FastAPI dependencies the endpoints declare.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from medseg.serve.keys import Identity
from medseg.serve.sessions import session_identity

LOG = logging.getLogger("medseg.serve")


def caller(request: Request) -> Identity:
    """The identity of the request's ``Authorization: Bearer`` key (401 without a valid one,
    429 after too many failures from the address)."""
    return check_key(request, _bearer(request))


def reader(request: Request) -> Identity:
    """As `caller`, or the viewer's session cookie (for reading only)."""
    return check_key(request, _bearer(request), session=True)


def check_key(request: Request, key: str | None, session: bool = False) -> Identity:
    """The identity of ``key`` (or, with ``session``, of the session cookie when there is
    no key); a wrong key is counted against the client's address and logged with the
    address, never the key."""
    state = request.app.state.service
    address = request.client.host if request.client else "unknown"
    if state.limiter.blocked(address):
        raise HTTPException(429, "too many failed authentications: wait a minute")
    if key:
        who = state.keys.verify(key)
        if who is None:  # a wrong key counts; a missing one (a first visit) does not
            state.limiter.failed(address)
            LOG.warning("authentication failed from %s", address)
    else:
        who = session_identity(state, request) if session else None
    if who is None:
        raise HTTPException(401, "a valid API key is needed: Authorization: Bearer KEY",
                            headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
    return who


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else None


#: An endpoint parameter: the identity of the caller's key.
Caller = Annotated[Identity, Depends(caller)]
#: An endpoint parameter: the identity of the caller's key or viewer session (reading only).
Reader = Annotated[Identity, Depends(reader)]
