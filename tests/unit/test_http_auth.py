"""Authorization headers for the API server and Prometheus clients."""

from __future__ import annotations

import base64

from modelops.adapters.http_auth import client_headers


def test_a_token_is_sent_as_bearer_and_wins_over_a_password() -> None:
    headers = client_headers("t0k3n", "ops", "secret")
    assert headers["Authorization"] == "Bearer t0k3n"
    assert headers["Accept"] == "application/json"


def test_username_and_password_are_sent_as_basic_auth() -> None:
    headers = client_headers(None, "ops", "p:ss")
    scheme, value = headers["Authorization"].split(" ")
    assert scheme == "Basic" and base64.b64decode(value).decode() == "ops:p:ss"


def test_no_credentials_or_half_of_them_send_no_authorization() -> None:
    assert "Authorization" not in client_headers()
    assert "Authorization" not in client_headers(None, "ops", None)
