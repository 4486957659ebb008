"""Serving the API with uvicorn: on 127.0.0.1 by default, anywhere else only with MONITOR_API_TOKEN set;
in a thread of `monitor run`, or on its own for `monitor serve`."""

from __future__ import annotations

import ipaddress
import logging
import secrets
import threading
import time

import uvicorn

from monitor.api.app import create_app
from monitor.api.context import ApiContext
from monitor.errors import ConfigError

log = logging.getLogger(__name__)
START_TIMEOUT = 15.0


class ListenError(ConfigError):
    """The address could not be listened on (port in use, address not on this host)."""


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_token(ctx: ApiContext, host: str) -> tuple[str, bool]:
    """(token, generated). Without MONITOR_API_TOKEN the API may listen on a loopback address only, with a
    token made for this run; anywhere else it refuses to start."""
    configured = ctx.settings.api_token
    if configured is not None:
        return configured.get_secret_value(), False
    if not _loopback(host):
        raise ConfigError(f"refusing to serve the API on {host} without a token: set MONITOR_API_TOKEN "
                          "(16+ characters), or listen on 127.0.0.1")
    return secrets.token_urlsafe(24), True


class ApiServer:
    """uvicorn in a daemon thread; ``start`` returns once it listens (or raises ConfigError)."""

    def __init__(self, ctx: ApiContext, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.token, self.generated = api_token(ctx, host)
        config = uvicorn.Config(create_app(ctx, self.token), host=host, port=port, log_config=None,
                                access_log=False, lifespan="off", server_header=False, timeout_graceful_shutdown=5)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="api", daemon=True)
        self._failure: BaseException | None = None

    def _run(self) -> None:
        try:
            self._server.run()
        except BaseException as exc:  # uvicorn exits (SystemExit) when it cannot listen: report it to start()
            self._failure = exc

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self._server.started:
            self.stop()
            raise ListenError(f"cannot serve the API on {self.host}:{self.port} (port in use? "
                              "MONITOR_API_HOST / MONITOR_API_PORT)")
        sockets = [sock for server in self._server.servers for sock in server.sockets]
        if sockets:  # the port actually bound (MONITOR_API_PORT=0: any free one)
            self.port = int(sockets[0].getsockname()[1])
        log.info("event=api_listening url=%s", self.url)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def announce(self) -> str:
        """What to tell the person who started it (standard output, never the log)."""
        if self.generated:
            return (f"web page and API: {self.url}/login?token={self.token}\n"
                    "(a token made for this run; set MONITOR_API_TOKEN to choose a lasting one)")
        return f"web page and API: {self.url} (token: MONITOR_API_TOKEN)"

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
