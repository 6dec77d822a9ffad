"""The HTTP connector: one POST per journal entry to an external accounting API.

Standard library only (urllib): one JSON POST with two headers needs no more,
and it adds nothing to install on a caja's main server.

Every attempt for an entry carries the same `Idempotency-Key` (the entry's
key), so when a reply is lost — a time-out, a dropped connection after the
server saved it — the retry is recognised by the server and not posted twice.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from urllib.parse import urljoin, urlsplit, urlunsplit

from ..errors import ConfigError

TOKEN_ENV = "SYSCAFE_SYNC_ACCOUNTING_TOKEN"
# Worth another attempt: the server or a proxy is overloaded, restarting, or timed out.
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
_MAX_BACKOFF_S = 30.0


class DeliveryFailed(Exception):
    """The API did not take the entry; the message is the reason, never the token."""


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """Never follows a redirect: urllib would follow a 301/302/303 with a GET without the body, take the
    200 that comes back for delivered, and send the token to wherever the Location points."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # urllib then raises the 3xx as an HTTPError


def safe_url(url: str) -> str:
    """The URL without user, password or query, for messages and the log."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def resolve_token(config) -> str:
    token = config.get("accounting", "token") or os.environ.get(TOKEN_ENV, "")
    if not token:
        raise ConfigError(f"no token for the accounting API at {safe_url(config.get('accounting', 'url'))}: "
                          f"set accounting.token in {config.config_path} or the environment variable {TOKEN_ENV}.")
    return token


class HttpDestination:
    name = "http"

    def __init__(self, url: str, token: str, timeout_s: float, retries: int, backoff_s: float,
                 sleep: Callable[[float], None] = time.sleep):
        if urlsplit(url).scheme not in ("http", "https"):
            raise ConfigError(f"accounting.url = {safe_url(url) or url!r} must be an http:// or https:// URL; fix it in config.toml.")
        self.url, self._token, self.timeout_s = url, token, timeout_s
        self.retries, self.backoff_s, self.sleep = retries, backoff_s, sleep
        self._opener = urllib.request.build_opener(_RefuseRedirects)

    def __repr__(self) -> str:  # the token stays out of tracebacks
        return f"HttpDestination({safe_url(self.url)!r})"

    @property
    def where(self) -> str:
        return safe_url(self.url)

    def deliver(self, entries: list[dict]) -> list[str | None]:
        """One result per entry: None when the API has it, else the reason it failed."""
        out = []
        for entry in entries:
            try:
                self.send(entry)
                out.append(None)
            except DeliveryFailed as exc:
                out.append(str(exc))
        return out

    def send(self, entry: dict) -> None:
        body = json.dumps(entry, ensure_ascii=False).encode("utf-8")
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self.sleep(min(self.backoff_s * 2 ** (attempt - 1), _MAX_BACKOFF_S))
            try:
                retry, last = self._attempt(body, entry["key"])
            except (urllib.error.URLError, http.client.HTTPException, ConnectionError, socket.timeout, TimeoutError) as exc:
                retry, last = True, f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
            if not last:
                return
            if not retry:
                break
        raise DeliveryFailed(f"{self.where} did not take entry {entry['key']} after {attempt + 1} attempts: {last}")

    def _attempt(self, body: bytes, key: str) -> tuple[bool, str]:
        """(worth retrying, reason); an empty reason means the API has the entry."""
        request = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json; charset=utf-8",
            "Authorization": f"Bearer {self._token}",
            "Idempotency-Key": key,
        })
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                response.read()
                return False, ""
        except urllib.error.HTTPError as exc:
            text = exc.read(300).decode("utf-8", "replace").strip()
            if exc.code == 409:
                return False, ""  # the API says it already has this key: posted before
            if 300 <= exc.code < 400:
                # Not retried: the same address would answer the same; only the configuration can fix it.
                location = exc.headers.get("Location")
                to = f"to {safe_url(urljoin(self.url, location))}" if location else "without a Location"
                return False, (f"HTTP {exc.code} {exc.reason}, a redirect {to}, not followed: the entry is not delivered; "
                               f"set accounting.url in config.toml to the final address")
            return exc.code in _RETRY_STATUS, f"HTTP {exc.code} {exc.reason}" + (f": {text}" if text else "")
