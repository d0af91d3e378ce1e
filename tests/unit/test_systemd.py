"""sd_notify against real unix datagram sockets: exact payloads, watchdog rules, no-ops."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotfolder.systemd import Notifier


class Receiver:
    """A datagram socket standing in for systemd's notify socket."""

    def __init__(self, sock: socket.socket, env_value: str) -> None:
        self.sock = sock
        self.env_value = env_value
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        sock.settimeout(5.0)

    def message(self) -> tuple[str, int]:
        """The next datagram's text and the sender's pid (from SCM_CREDENTIALS)."""
        data, ancdata, _flags, _addr = self.sock.recvmsg(65536, socket.CMSG_SPACE(12))
        pid = -1
        for level, kind, value in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = int.from_bytes(value[:4], "little")
        return data.decode(), pid

    def text(self) -> str:
        return self.message()[0]

    def assert_empty(self) -> None:
        self.sock.setblocking(False)
        try:
            with pytest.raises(BlockingIOError):
                self.sock.recv(65536)
        finally:
            self.sock.settimeout(5.0)


@pytest.fixture(params=["path", "abstract"])
def receiver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Receiver]:
    """A receiver on a filesystem socket, then on a Linux abstract one."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        path = tmp_path / "notify"
        sock.bind(str(path))
        value = str(path)
    else:
        name = f"hotfolder-test-{uuid.uuid4().hex}"
        sock.bind(b"\0" + name.encode())
        value = "@" + name
    with sock:
        yield Receiver(sock, value)


def notifier_for(receiver: Receiver, **extra: str) -> Notifier:
    return Notifier.from_env({"NOTIFY_SOCKET": receiver.env_value, **extra})


def test_exact_payloads(receiver: Receiver) -> None:
    """Each call is one datagram with exactly the documented fields, sent by this pid."""
    notifier = notifier_for(receiver)
    assert notifier.enabled
    notifier.ready()
    assert receiver.message() == ("READY=1", os.getpid())
    notifier.ready("watching 3 folders")
    assert receiver.text() == "READY=1\nSTATUS=watching 3 folders"
    notifier.status("2 queued, 1 running, 0 pending")
    assert receiver.text() == "STATUS=2 queued, 1 running, 0 pending"
    notifier.stopping()
    assert receiver.text() == "STOPPING=1"
    receiver.assert_empty()


def test_status_is_one_utf8_line(receiver: Receiver) -> None:
    """Line breaks would end STATUS= early: they fold into spaces; text stays UTF-8."""
    notifier_for(receiver).status("Übersetzung läuft\nzweite Zeile\r\ndritte")
    data = receiver.sock.recv(65536)
    assert data == "STATUS=Übersetzung läuft zweite Zeile dritte".encode()


def test_reloading_carries_a_plausible_monotonic_timestamp(receiver: Receiver) -> None:
    """RELOADING=1 and MONOTONIC_USEC share one datagram; the time is CLOCK_MONOTONIC in µs."""
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier_for(receiver).reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    lines = receiver.text().split("\n")
    assert lines[0] == "RELOADING=1"
    assert len(lines) == 2 and lines[1].startswith("MONOTONIC_USEC=")
    value = lines[1].removeprefix("MONOTONIC_USEC=")
    assert value.isdigit()
    assert before <= int(value) <= after


def test_watchdog_pings_every_half_period(receiver: Receiver) -> None:
    """WATCHDOG_USEC=30 s: ping every 15 s; WATCHDOG=1 is the payload."""
    notifier = notifier_for(receiver, WATCHDOG_USEC="30000000")
    assert notifier.watchdog_interval == 15.0
    notifier.watchdog()
    assert receiver.text() == "WATCHDOG=1"


def test_watchdog_for_this_pid(receiver: Receiver) -> None:
    """WATCHDOG_PID naming this process keeps the watchdog on."""
    notifier = notifier_for(receiver, WATCHDOG_USEC="2000000", WATCHDOG_PID=str(os.getpid()))
    assert notifier.watchdog_interval == 1.0
    notifier.watchdog()
    assert receiver.text() == "WATCHDOG=1"


@pytest.mark.parametrize(
    "extra",
    [
        {},  # no WatchdogSec=
        {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"},  # another process's watchdog
        {"WATCHDOG_USEC": "0"},
        {"WATCHDOG_USEC": "thirty"},
        {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "me"},
    ],
)
def test_watchdog_off(receiver: Receiver, extra: dict[str, str]) -> None:
    """Without a watchdog meant for this pid there is no interval and no ping is sent."""
    notifier = notifier_for(receiver, **extra)
    assert notifier.watchdog_interval is None
    notifier.watchdog()
    receiver.assert_empty()
    # Other notifications still go out.
    notifier.ready()
    assert receiver.text() == "READY=1"


def test_no_op_when_unset() -> None:
    """Outside systemd every method is a silent no-op."""
    notifier = Notifier.from_env({"WATCHDOG_USEC": "30000000"})
    assert not notifier.enabled
    assert notifier.watchdog_interval is None
    notifier.ready("x")
    notifier.reloading()
    notifier.status("x")
    notifier.watchdog()
    notifier.stopping()


@pytest.mark.parametrize("value", ["vsock:2:1234", "relative/socket", "@"])
def test_unsupported_address_disables(value: str) -> None:
    """Addresses that are not unix sockets (vsock, relative paths) turn notifying off."""
    notifier = Notifier.from_env({"NOTIFY_SOCKET": value, "WATCHDOG_USEC": "30000000"})
    assert not notifier.enabled
    assert notifier.watchdog_interval is None
    notifier.ready()


def test_unset_removes_the_variables(receiver: Receiver) -> None:
    """unset=True keeps children from inheriting the service's notify socket."""
    environ = {
        "NOTIFY_SOCKET": receiver.env_value,
        "WATCHDOG_USEC": "30000000",
        "WATCHDOG_PID": str(os.getpid()),
        "PATH": "/usr/bin",
    }
    notifier = Notifier.from_env(environ, unset=True)
    assert environ == {"PATH": "/usr/bin"}
    assert notifier.enabled and notifier.watchdog_interval == 15.0
    notifier.ready()
    assert receiver.text() == "READY=1"


def test_reads_os_environ_by_default(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """from_env() without arguments reads the process environment."""
    monkeypatch.setenv("NOTIFY_SOCKET", receiver.env_value)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    notifier = Notifier.from_env()
    notifier.status("ok")
    assert receiver.text() == "STATUS=ok"


def test_no_exception_when_the_socket_is_gone(tmp_path: Path) -> None:
    """A vanished or refusing socket is logged, never raised."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.close()  # the file stays, nobody listens: ECONNREFUSED
    stale = Notifier.from_env({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "30000000"})
    path.unlink()  # now the file is gone too: ENOENT
    missing = Notifier.from_env({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "30000000"})
    abstract = Notifier.from_env({"NOTIFY_SOCKET": f"@hotfolder-nobody-{uuid.uuid4().hex}"})
    too_long = Notifier.from_env({"NOTIFY_SOCKET": "/" + "x" * 200})
    for notifier in (stale, missing, abstract, too_long):
        notifier.ready("x")
        notifier.reloading()
        notifier.status("x")
        notifier.watchdog()
        notifier.stopping()


def test_stale_socket_refuses(tmp_path: Path) -> None:
    """The stale socket above really refuses a datagram, so that test proves something."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.close()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender, pytest.raises(OSError):
        sender.sendto(b"READY=1", str(path))


def test_send_errors_are_logged_at_debug(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The failure is visible at debug level, naming the message that was lost."""
    caplog.set_level("DEBUG", logger="hotfolder.systemd")
    Notifier.from_env({"NOTIFY_SOCKET": str(tmp_path / "absent")}).ready()
    assert [r.levelname for r in caplog.records] == ["DEBUG"]
    assert "READY=1" in caplog.records[0].getMessage()
