"""Request headers for the HTTP servers the operator talks to (API server, Prometheus)."""

from __future__ import annotations

import base64


def client_headers(
    token: str | None = None,
    username: str | None = None,
    password: str | None = None,
    user_agent: str = "modelops",
) -> dict[str, str]:
    """JSON, our user agent, and a bearer token or else basic auth (when both parts are set)."""
    headers = {"Accept": "application/json", "User-Agent": user_agent}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    elif username is not None and password is not None:
        pair = base64.b64encode(f"{username}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {pair}"
    return headers
