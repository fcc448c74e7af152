"""The viewer's sessions: an API key exchanged once (``POST /session``) for a random token
in a cookie, kept in the server's memory for `SESSION_SECONDS` (a restart logs viewers out).
"""

from __future__ import annotations

import secrets
import time

from fastapi import Request

from medseg.serve.keys import Identity

SESSION_COOKIE = "medseg_session"
SESSION_SECONDS = 8 * 3600


def open_session_token(state, who: Identity) -> str:
    """A new session for ``who``; returns its token (the cookie's value)."""
    token = secrets.token_urlsafe(32)
    now = time.time()
    for old in [t for t, (_, until) in state.sessions.items() if until < now]:
        del state.sessions[old]
    state.sessions[token] = (who, now + SESSION_SECONDS)
    return token


def session_identity(state, request: Request) -> Identity | None:
    """The identity of the request's session cookie, if it is valid."""
    token = request.cookies.get(SESSION_COOKIE, "")
    found = state.sessions.get(token)
    if found is None or found[1] < time.time():
        state.sessions.pop(token, None)
        return None
    return found[0]
