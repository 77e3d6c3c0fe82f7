"""A small JSON client of ``/api/v1`` (stdlib only): one user's session with its cookie and CSRF
token. The demo acts through it as the chefs and the controller would; the tests use it too."""

from __future__ import annotations

import http.cookiejar
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass
class Answer:
    status: int
    body: Any


class ApiClient:
    def __init__(self, base_url: str, timeout_s: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))
        self.csrf_token: str | None = None

    def call(
        self, method: str, path: str, body: Any = None, *, csrf: str | bool | None = True
    ) -> Answer:
        """``csrf``: True sends the session's token, a text sends that text, False/None none."""
        data = json.dumps(body).encode("utf-8") if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        token = self.csrf_token if csrf is True else (csrf or None)
        if token:
            request.add_header("X-CSRF-Token", token)
        try:
            with self.opener.open(request, timeout=self.timeout_s) as response:
                return Answer(response.status, json.loads(response.read() or b"null"))
        except urllib.error.HTTPError as err:
            payload = err.read()
            try:
                parsed: Any = json.loads(payload)
            except ValueError:
                parsed = payload.decode("utf-8", "replace")
            return Answer(err.code, parsed)

    def login(self, username: str, password: str) -> Answer:
        answer = self.call(
            "POST", "/api/v1/login", {"username": username, "password": password}, csrf=False
        )
        if answer.status == 200:
            self.csrf_token = answer.body["csrf_token"]
        return answer

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        """The body of a 2xx answer; RuntimeError with the status and detail otherwise."""
        answer = self.call(method, path, body)
        if not 200 <= answer.status < 300:
            raise RuntimeError(f"{method} {path}: HTTP {answer.status} {answer.body}")
        return answer.body
