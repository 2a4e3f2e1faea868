"""Start, find and stop Azurite, the local Azure Storage emulator.

Azurite comes from ``node_modules`` (``npm ci`` installs the pinned version).
It listens on loopback only, with telemetry off: without ``--disableTelemetry``
it keeps trying to reach a telemetry endpoint, which fills the log with lookup
errors on a closed network and makes shutdown take ~20 s.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from durable_mgmt.taskhub.storage import StorageAccount

SERVICES = ("blob", "queue", "table")
KEEP_ALIVE_SECONDS = 120


class AzuriteError(RuntimeError):
    """Azurite could not be found, started or reached."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def is_listening(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to stop Azurite when the process that started it dies,
    so a killed test run or host (SIGKILL, timeout) leaves no emulator behind."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def find_azurite(start: Path | None = None) -> Path:
    """The azurite launcher in the nearest ``node_modules/.bin`` above ``start``."""
    here = (start or Path.cwd()).resolve()
    candidates = [d / "node_modules" / ".bin" / "azurite" for d in (here, *here.parents)]
    candidates.append(Path(__file__).resolve().parent.parent / "node_modules" / ".bin" / "azurite")
    for c in candidates:
        if c.exists():
            return c
    on_path = shutil.which("azurite")
    if on_path:
        return Path(on_path)
    raise AzuriteError(
        "Azurite is not installed: no node_modules/.bin/azurite was found. Run `npm ci` in the project "
        "(make run / make test do it for you)."
    )


@dataclass
class Azurite:
    """A running Azurite: either one this process started, or one found listening."""

    host: str
    ports: dict[str, int]
    process: subprocess.Popen | None = None
    log_path: Path | None = None
    _log_file: object = field(default=None, repr=False)

    @property
    def account(self) -> StorageAccount:
        return StorageAccount.development(self.host, self.ports)

    @property
    def connection_string(self) -> str:
        return self.account.connection_string

    @property
    def owned(self) -> bool:
        return self.process is not None

    @classmethod
    def start(
        cls,
        *,
        host: str = "127.0.0.1",
        ports: dict[str, int] | None = None,
        location: Path | None = None,
        in_memory: bool = True,
        cwd: Path | None = None,
        timeout: float = 30.0,
    ) -> "Azurite":
        """Start Azurite and wait until all three services accept connections.

        ``ports`` defaults to free ports chosen now; ``location`` persists data
        to a folder (``in_memory=False``), else everything lives in memory.
        """
        launcher = find_azurite(cwd)
        ports = dict(ports or {s: free_port(host) for s in SERVICES})
        # Azurite refuses --location together with --inMemoryPersistence; in memory,
        # it still writes its small debug files to the working directory.
        workdir = Path(location) if location and not in_memory else Path(tempfile.mkdtemp(prefix="azurite-"))
        workdir.mkdir(parents=True, exist_ok=True)
        args = [str(launcher), "--silent", "--disableTelemetry", "--skipApiVersionCheck", "--loose"]
        # Azurite closes idle keep-alive connections after 5 s by default, while aiohttp keeps them
        # for 15 s: a request sent on a connection Azurite is just closing fails with "connection
        # reset". Keeping them longer on Azurite's side than on ours removes that race.
        for s in SERVICES:
            args += [f"--{s}KeepAliveTimeout", str(KEEP_ALIVE_SECONDS)]
        args += ["--inMemoryPersistence"] if in_memory else ["--location", str(workdir)]
        for s in SERVICES:
            args += [f"--{s}Host", host, f"--{s}Port", str(ports[s])]
        log_path = workdir / "azurite.log"
        log = open(log_path, "ab")
        proc = subprocess.Popen(
            args, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # our own process group: Ctrl-C to the host does not reach it first
            preexec_fn=_die_with_parent,
        )
        me = cls(host, ports, proc, log_path, log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                me._close_log()
                tail = log_path.read_text(errors="replace")[-2000:]
                raise AzuriteError(f"Azurite exited with code {proc.returncode} at start:\n{tail}")
            if all(is_listening(host, ports[s]) for s in SERVICES):
                return me
            time.sleep(0.05)
        me.stop()
        raise AzuriteError(f"Azurite did not accept connections on {host} ports {ports} within {timeout:.0f} s.")

    @classmethod
    def find_running(cls, account: StorageAccount) -> "Azurite | None":
        """An Azurite already listening where ``account`` points, if any."""
        eps = account.endpoint_ports()
        hosts = {h for h, _ in eps.values()}
        if len(hosts) != 1:
            return None
        host = hosts.pop()
        ports = {s: p for s, (_, p) in eps.items()}
        if all(is_listening(host, p) for p in ports.values()):
            return cls(host, ports)
        return None

    @classmethod
    def ensure(cls, account: StorageAccount, *, location: Path | None = None, cwd: Path | None = None) -> "Azurite":
        """Reuse the Azurite ``account`` points at, or start one on its ports."""
        running = cls.find_running(account)
        if running:
            return running
        eps = account.endpoint_ports()
        host = eps["table"][0]
        if host not in ("127.0.0.1", "localhost"):
            raise AzuriteError(f"The development storage points at {host}, which is not this machine; cannot start Azurite there.")
        return cls.start(host="127.0.0.1", ports={s: p for s, (_, p) in eps.items()},
                         location=location, in_memory=location is None, cwd=cwd)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop Azurite if this process started it (by its own PID/process group)."""
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        self.process = None
        self._close_log()

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> "Azurite":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
