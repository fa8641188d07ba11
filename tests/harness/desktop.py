"""A private D-Bus session bus and a desktop notification server on it.

``SessionBus`` runs Debian's ``dbus-daemon`` with its session configuration on a
socket in the work directory (what ``dbus-run-session`` starts);
``NotificationServer`` owns ``org.freedesktop.Notifications`` on it (with ``jeepney``)
and records every ``Notify`` call, as a desktop would show it: the application name,
the summary and the body. What ``notify-send`` sends is what the test sees.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

NAME = "org.freedesktop.Notifications"
PATH = "/org/freedesktop/Notifications"


def available() -> str | None:
    """Why the desktop tests cannot run here, or None when they can."""
    missing = [b for b in ("dbus-daemon", "notify-send") if shutil.which(b) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (scripts/test installs them)"
    return None


class SessionBus:
    """``dbus-daemon`` on a socket in ``workdir``; ``address`` for DBUS_SESSION_BUS_ADDRESS."""

    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.socket = workdir / "bus"
        self.address = ""
        self._proc: subprocess.Popen[str] | None = None

    def start(self) -> SessionBus:
        self._proc = subprocess.Popen(
            [
                "dbus-daemon",
                "--session",
                f"--address=unix:path={self.socket}",
                "--nofork",
                "--print-address",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        # The address is printed once the socket listens.
        self.address = self._proc.stdout.readline().strip()
        if not self.address:
            err = self._proc.stderr.read() if self._proc.stderr else ""
            self.stop()
            raise RuntimeError(f"dbus-daemon did not start: {err[-500:]}")
        return self

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
        if self._proc is not None:
            for stream in (self._proc.stdout, self._proc.stderr):
                if stream is not None:
                    stream.close()
        self._proc = None

    def __enter__(self) -> SessionBus:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass(frozen=True)
class Shown:
    """One ``Notify`` call as the desktop received it."""

    app_name: str
    summary: str
    body: str
    urgency: int | None


class NotificationServer:
    """Owns ``org.freedesktop.Notifications`` on ``bus`` in a thread; ``shown`` lists
    what it was asked to show. Answers ``GetServerInformation`` and ``GetCapabilities``
    as a minimal server does."""

    def __init__(self, bus: SessionBus) -> None:
        self.bus = bus
        self.shown: list[Shown] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name="notifications", daemon=True)
        self._changed = threading.Condition()

    def __enter__(self) -> NotificationServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the notification server did not start")
        if self._error is not None:
            raise RuntimeError(f"the notification server failed: {self._error!r}")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(10)

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Shown]:
        """The notifications shown, once there are ``count`` (a hang guard, not a timing)."""
        with self._changed:
            self._changed.wait_for(lambda: len(self.shown) >= count, timeout)
            return list(self.shown)

    def _serve(self) -> None:
        from jeepney import MessageType, new_error, new_method_return
        from jeepney.bus_messages import message_bus
        from jeepney.io.blocking import open_dbus_connection

        try:
            conn = open_dbus_connection(bus=self.bus.address)
        except BaseException as exc:  # reported by __enter__
            self._error = exc
            self._ready.set()
            return
        with contextlib.closing(conn):
            reply = conn.send_and_get_reply(message_bus.RequestName(NAME), timeout=10)
            if reply.body[0] != 1:  # DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER
                self._error = RuntimeError(f"could not own {NAME}: {reply.body}")
                self._ready.set()
                return
            self._ready.set()
            next_id = 1
            while not self._stop.is_set():
                try:
                    msg = conn.receive(timeout=0.1)
                except TimeoutError:
                    continue
                header = msg.header
                if header.message_type != MessageType.method_call:
                    continue
                member = header.fields.get(_field("member"))
                interface = header.fields.get(_field("interface"))
                if interface not in (NAME, None):
                    conn.send(new_error(msg, "org.freedesktop.DBus.Error.UnknownMethod"))
                elif member == "Notify":
                    app, _replaces, _icon, summary, body, _actions, hints, _timeout = msg.body
                    shown = Shown(app, summary, body, _urgency(hints))
                    conn.send(new_method_return(msg, "u", (next_id,)))
                    next_id += 1
                    with self._changed:
                        self.shown.append(shown)
                        self._changed.notify_all()
                elif member == "GetServerInformation":
                    info = ("portside-tests", "portside", "1", "1.2")
                    conn.send(new_method_return(msg, "ssss", info))
                elif member == "GetCapabilities":
                    conn.send(new_method_return(msg, "as", (["body"],)))
                else:
                    conn.send(new_error(msg, "org.freedesktop.DBus.Error.UnknownMethod"))


def _field(name: str) -> Any:
    from jeepney.low_level import HeaderFields

    return getattr(HeaderFields, name)


def _urgency(hints: dict[str, Any]) -> int | None:
    value = hints.get("urgency")
    # jeepney gives variants as (signature, value).
    if isinstance(value, tuple) and len(value) == 2:
        return int(value[1])
    return None


def session_env(bus: SessionBus) -> dict[str, str]:
    """The environment a desktop session gives its programs (this bus only)."""
    return {**os.environ, "DBUS_SESSION_BUS_ADDRESS": bus.address}
