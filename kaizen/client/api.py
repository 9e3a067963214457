"""Calls from the CLI and the recall client to the service's HTTP API, with the token from settings.

`KAIZEN_API_TOKEN` is sent as `Authorization: Bearer`; `KAIZEN_API_URL` names the service (default:
`http://KAIZEN_HTTP_HOST:KAIZEN_HTTP_PORT`). Errors carry the server's message and status, never
the token.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from kaizen.errors import KaizenError
from kaizen.settings import Settings


class ApiError(KaizenError):
    """The service answered with an error status (401 no / unknown token, 403 not allowed...)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


def api_base(settings: Settings) -> str:
    return (settings.api_url or f"http://{settings.http_host}:{settings.http_port}").rstrip("/")


def post_json(settings: Settings, path: str, body: dict[str, Any], timeout: float = 10.0
              ) -> dict[str, Any]:
    """POST `body` as JSON; the answer's JSON, `ApiError` for an error status, `URLError` when
    the service cannot be reached."""
    headers = {"Content-Type": "application/json"}
    if settings.api_token is not None:
        headers["Authorization"] = f"Bearer {settings.api_token.get_secret_value()}"
    request = urllib.request.Request(api_base(settings) + path,  # noqa: S310 - the user's URL
                                     json.dumps(body).encode(), headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as error:
        try:
            message = str(json.loads(error.read()).get("error", error.reason))
        except (ValueError, AttributeError):
            message = str(error.reason)
        raise ApiError(error.code, message) from None
