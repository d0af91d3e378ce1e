"""Tell systemd how the daemon is doing: the sd_notify protocol in plain stdlib.

systemd hands a service the address of a datagram socket in ``$NOTIFY_SOCKET``;
each notification is one datagram of newline-separated ``KEY=VALUE`` lines.
Linking libsystemd (or a wrapper package) for this is not worth it: the protocol
is small and documented as stable, and these few lines are testable against a
plain socket. Outside systemd (a terminal, the tests) :meth:`Notifier.from_env`
returns a notifier whose methods do nothing.

Notifications are advisory: a failed send is logged at debug level and never
raised, because a service must keep converting even if systemd cannot be told.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import MutableMapping

log = logging.getLogger("hotfolder.systemd")

#: The variables systemd sets for the notify protocol and the watchdog.
NOTIFY_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")

# A stuck manager must not stall the loop that sends: give up on a datagram after this.
_SEND_TIMEOUT = 1.0


def _address(value: str) -> str | bytes | None:
    """The socket address for ``$NOTIFY_SOCKET``, or None when it is not a usable unix one."""
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        # Linux abstract namespace: the name starts with a NUL byte instead of '@'.
        return b"\0" + value[1:].encode()
    return None


def _watchdog_usec(environ: MutableMapping[str, str]) -> int | None:
    """WATCHDOG_USEC when the watchdog is meant for this process, else None."""
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid = environ.get("WATCHDOG_PID")
    if pid is not None:
        # Set for a process that forked before exec'ing (a wrapper): the watchdog is
        # the main process's, and a child pinging for it would hide its death.
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    return usec


class Notifier:
    """Sends sd_notify messages to one socket; every method is a no-op when disabled."""

    def __init__(
        self, address: str | bytes | None = None, watchdog_usec: int | None = None
    ) -> None:
        """Notify ``address`` (a path or NUL-prefixed abstract name); None disables it."""
        self._address = address
        self._watchdog_usec = watchdog_usec if address is not None else None

    @classmethod
    def from_env(
        cls, environ: MutableMapping[str, str] | None = None, *, unset: bool = False
    ) -> Notifier:
        """Build the notifier systemd asked for through ``environ`` (default: os.environ).

        With ``unset=True`` the variables are removed from ``environ`` afterwards, so
        that no child process (worker, engine) inherits them and speaks for the
        service, as sd_notify's ``unset_environment`` does.
        """
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET", "")
        address = _address(raw) if raw else None
        if raw and address is None:
            log.warning("NOTIFY_SOCKET=%r is not a unix socket address; not notifying systemd", raw)
        notifier = cls(address, _watchdog_usec(env) if address is not None else None)
        if unset:
            for name in NOTIFY_ENV:
                env.pop(name, None)
        return notifier

    @property
    def enabled(self) -> bool:
        """True when there is a socket to notify."""
        return self._address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between watchdog pings (half of WatchdogSec=), None when it is off."""
        if self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2 / 1_000_000

    def ready(self, status: str = "") -> None:
        """Startup (or a reload) finished; optionally with a status line."""
        fields = ["READY=1"]
        if status:
            fields.append(f"STATUS={_one_line(status)}")
        self._send(fields)

    def reloading(self) -> None:
        """A reload began; :meth:`ready` must follow when it is done.

        MONOTONIC_USEC goes in the same datagram: with ``Type=notify-reload``
        systemd matches the reload to its signal by this timestamp and would wait
        until its timeout without it.
        """
        now_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self._send(["RELOADING=1", f"MONOTONIC_USEC={now_usec}"])

    def stopping(self) -> None:
        """Shutdown began (the stop timeout starts counting now)."""
        self._send(["STOPPING=1"])

    def status(self, text: str) -> None:
        """A one-line status shown by ``systemctl status``."""
        self._send([f"STATUS={_one_line(text)}"])

    def watchdog(self) -> None:
        """Ping the watchdog; call only after checking the daemon really works."""
        if self._watchdog_usec is not None:
            self._send(["WATCHDOG=1"])

    def _send(self, fields: list[str]) -> None:
        if self._address is None:
            return
        payload = "\n".join(fields).encode()
        try:
            # A fresh unconnected socket per message: nothing shared between the
            # threads that notify, and a socket recreated by systemd (daemon-reexec)
            # is found again by its address.
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.settimeout(_SEND_TIMEOUT)
                sock.sendto(payload, self._address)
        except OSError as exc:
            log.debug("could not notify systemd (%s): %s", fields[0], exc)


def _one_line(text: str) -> str:
    """STATUS= ends at the line break: fold the text onto one line."""
    return " ".join(text.splitlines())
