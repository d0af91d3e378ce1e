"""Manifest callbacks: POST the final status JSON to the URL a manifest names.

A listener, so it can never change a job's result: every failure is logged
and counted, then retried with a doubling backoff a bounded number of times.
Only URLs that start with one of the folder's ``callback_allow`` prefixes are
called (no allowlist, no callbacks), redirects are not followed, and each
request carries an HMAC-SHA256 signature made with the folder's secret::

    X-Hotfolder-Timestamp: 1764068400
    X-Hotfolder-Signature: sha256=<hex of HMAC(secret, timestamp + "." + body)>

Receivers recompute the HMAC over the raw body and reject old timestamps.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from hotfolder.config import DaemonSettings, FolderSettings
from hotfolder.journal import JobRecord
from hotfolder.manifest import Manifest
from hotfolder.models import JobStatus

log = logging.getLogger("hotfolder.callbacks")

USER_AGENT = "hotfolder-callback/1"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def allowed(url: str, prefixes: list[str]) -> bool:
    """True when ``url`` is http(s) and starts with one of the allowed prefixes."""
    return url.startswith(("http://", "https://")) and any(url.startswith(p) for p in prefixes)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect could send the signed status somewhere the allowlist never approved.
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


@dataclass(order=True)
class _Delivery:
    due: float
    job_id: str = field(compare=False)
    url: str = field(compare=False)
    body: bytes = field(compare=False)
    secret: str = field(compare=False)
    attempt: int = field(default=1, compare=False)


@dataclass
class CallbackStats:
    """Counters for metrics and tests."""

    delivered: int = 0
    failed_attempts: int = 0
    given_up: int = 0
    refused: int = 0


class CallbackSender:
    """A dispatcher listener that delivers callbacks from a thread of its own."""

    def __init__(
        self,
        settings: DaemonSettings,
        folders: Mapping[str, FolderSettings],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.folders = folders
        self.stats = CallbackStats()
        self._clock = clock
        self._heap: list[_Delivery] = []
        self._cond = threading.Condition()
        self._stopping = False
        self._opener = urllib.request.build_opener(_NoRedirect)
        self._thread = threading.Thread(target=self._run, name="hotfolder-callbacks", daemon=True)

    def start(self) -> None:
        """Start the delivery thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop delivering; callbacks still queued are dropped (and logged)."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout=self.settings.callback_timeout + 1)
        if self._heap:
            log.warning("%d callback(s) not delivered before stop", len(self._heap))

    # --- listener hooks ---------------------------------------------------------------

    def job_started(self, record: JobRecord) -> None:
        """Callbacks are only sent when a job ends."""

    def job_finished(self, record: JobRecord, status: JobStatus) -> None:
        """Queue the callback of a manifest job that names one."""
        if not record.manifest:
            return
        url = Manifest.model_validate_json(record.manifest).callback
        if not url:
            return
        folder = self.folders.get(record.folder)
        if folder is None or not allowed(url, folder.callback_allow):
            self.stats.refused += 1
            log.warning(
                "callback URL not in folder %s's callback_allow; not called",
                record.folder,
                extra={"job_id": record.job_id},
            )
            return
        body = (record.status_json or status.to_json()).encode()
        delivery = _Delivery(self._clock(), record.job_id, url, body, folder.callback_secret)
        with self._cond:
            heapq.heappush(self._heap, delivery)
            self._cond.notify()

    # --- delivery ---------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping:
                    wait = self._heap[0].due - self._clock() if self._heap else None
                    if wait is not None and wait <= 0:
                        break
                    self._cond.wait(wait)
                if self._stopping:
                    return
                delivery = heapq.heappop(self._heap)
            self._deliver(delivery)

    def _deliver(self, delivery: _Delivery) -> None:
        timestamp = str(int(time.time()))
        # Only http(s) URLs reach this point: allowed() checked the scheme.
        request = urllib.request.Request(  # noqa: S310
            delivery.url,
            data=delivery.body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                "X-Hotfolder-Job-Id": delivery.job_id,
                "X-Hotfolder-Timestamp": timestamp,
                "X-Hotfolder-Signature": sign(delivery.secret, timestamp, delivery.body),
            },
        )
        try:
            with self._opener.open(request, timeout=self.settings.callback_timeout) as response:
                response.read(65536)
            self.stats.delivered += 1
            log.info(
                "callback delivered (attempt %d)",
                delivery.attempt,
                extra={"job_id": delivery.job_id},
            )
            return
        except urllib.error.HTTPError as exc:
            reason = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = str(getattr(exc, "reason", exc))
        self.stats.failed_attempts += 1
        if delivery.attempt > self.settings.callback_retries:
            self.stats.given_up += 1
            log.error(
                "callback failed %d time(s), giving up: %s",
                delivery.attempt,
                reason,
                extra={"job_id": delivery.job_id},
            )
            return
        backoff = self.settings.callback_backoff * 2 ** (delivery.attempt - 1)
        log.warning(
            "callback attempt %d failed (%s); retrying in %.1f s",
            delivery.attempt,
            reason,
            backoff,
            extra={"job_id": delivery.job_id},
        )
        delivery.attempt += 1
        delivery.due = self._clock() + backoff
        with self._cond:
            heapq.heappush(self._heap, delivery)
