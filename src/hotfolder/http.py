"""The HTTP endpoint: health and the jobs API (DESIGN.md §2.5).

One listener, loopback by default, off when ``listen = ""``. Served by the
standard library's threading HTTP server: the traffic is a scraper and a few
operators, and it keeps the daemon free of a web framework.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from hotfolder.control import ACTIONS, Answer
from hotfolder.journal import Journal
from hotfolder.metrics import CONTENT_TYPE

log = logging.getLogger("hotfolder.http")

#: Hands a cancel or retry request to the daemon.
Submit = Callable[[str, str], Future[Answer]]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _send(self, code: int, body: Any) -> None:
        data = (json.dumps(body, indent=2, ensure_ascii=False) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        """Route POST requests: ``/jobs/{jobId}/cancel`` and ``/jobs/{jobId}/retry``."""
        url = urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        token = self.server.token
        offered = self.headers.get("Authorization", "")
        if token and not hmac.compare_digest(offered.encode(), f"Bearer {token}".encode()):
            self.send_response(HTTPStatus.UNAUTHORIZED)
            self.send_header("WWW-Authenticate", 'Bearer realm="hotfolder"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if len(parts) != 3 or parts[0] != "jobs" or parts[2] not in ACTIONS:
            self._send(
                HTTPStatus.NOT_FOUND,
                {"error": {"code": "not_found", "message": "POST /jobs/{jobId}/cancel or /retry."}},
            )
            return
        try:
            answer = self.server.control(parts[2], parts[1]).result(timeout=30)
        except TimeoutError:
            self._send(
                HTTPStatus.SERVICE_UNAVAILABLE,
                {"error": {"code": "busy", "message": "The daemon did not answer in time."}},
            )
            return
        code = {
            "ok": HTTPStatus.OK,
            "not_found": HTTPStatus.NOT_FOUND,
        }.get(answer.result, HTTPStatus.CONFLICT)
        if answer.ok:
            self._send(code, {"jobId": parts[1], "status": answer.state, "message": answer.message})
        else:
            self._send(code, {"error": {"code": answer.result, "message": answer.message}})

    def do_GET(self) -> None:
        """Route GET requests."""
        url = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        try:
            if url.path == "/metrics":
                data = self.server.metrics()
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            elif url.path == "/healthz":
                problems = self.server.health()
                code = HTTPStatus.OK if not problems else HTTPStatus.SERVICE_UNAVAILABLE
                body = {"healthy": not problems, "problems": problems, **self.server.details()}
                self._send(code, body)
            elif url.path == "/status":
                self._send(HTTPStatus.OK, self.server.status())
            elif url.path == "/jobs":
                limit = min(1000, max(1, int(query.get("limit", "50"))))
                records = self.server.journal.recent(
                    folder=query.get("folder") or None,
                    state=query.get("status") or None,
                    limit=limit,
                )
                self._send(HTTPStatus.OK, {"jobs": [r.document() for r in records]})
            elif url.path.startswith("/jobs/"):
                record = self.server.journal.get(url.path.removeprefix("/jobs/"))
                if record is None:
                    self._send(
                        HTTPStatus.NOT_FOUND,
                        {"error": {"code": "not_found", "message": "No job with this id."}},
                    )
                else:
                    self._send(HTTPStatus.OK, record.document())
            else:
                self._send(
                    HTTPStatus.NOT_FOUND,
                    {
                        "error": {
                            "code": "not_found",
                            "message": "Known paths: /metrics, /healthz, /status, /jobs, "
                            "/jobs/{jobId}.",
                        }
                    },
                )
        except ValueError:
            self._send(
                HTTPStatus.BAD_REQUEST,
                {"error": {"code": "bad_request", "message": "limit must be a number."}},
            )


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        journal: Journal,
        health: Callable[[], list[str]],
        control: Submit,
        metrics: Callable[[], bytes],
        token: str,
    ) -> None:
        super().__init__(address, _Handler)
        self.journal = journal
        self.health = health
        self.control = control
        self.metrics = metrics
        self.token = token
        #: More about the daemon for /healthz (files settling and ignored per folder).
        self.details: Callable[[], dict[str, Any]] = dict
        #: The service status for GET /status (workers, health).
        self.status: Callable[[], dict[str, Any]] = dict


class HttpEndpoint:
    """Serves /healthz and /jobs on ``listen`` (``host:port``) in a thread."""

    def __init__(
        self,
        listen: str,
        journal: Journal,
        health: Callable[[], list[str]],
        control: Submit,
        metrics: Callable[[], bytes],
        token: str = "",
        *,
        details: Callable[[], dict[str, Any]] = dict,
        status: Callable[[], dict[str, Any]] = dict,
    ) -> None:
        host, _, port = listen.rpartition(":")
        self._server = _Server(
            (host.strip("[]"), int(port)), journal, health, control, metrics, token
        )
        self._server.details = details
        self._server.status = status
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="hotfolder-http", daemon=True
        )

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Start serving."""
        self._thread.start()
        log.info("HTTP endpoint on port %d", self.port)

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
