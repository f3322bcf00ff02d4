"""Graceful SIGTERM for daphne: drain, then stop (SPEC §11, BRIDGE_SHUTDOWN_GRACE).

Works around daphne 4.2.3 on Twisted 26.10. SIGTERM and SIGINT stop Twisted's
reactor, which fires its "before shutdown" triggers; daphne's `Server.run`
registers one, `kill_all_applications`, which cancels every application
instance at once: WebSocket clients saw 1006, requests in flight died
unanswered and the process's connections stayed in presence until they
expired. Twisted waits for a Deferred that such a trigger returns, but it
calls every trigger before waiting on any, so a trigger of our own could not
run before daphne's. `GracefulServer` therefore overrides that method (and
`listen_success`, to keep the listening ports) and reads daphne's
`connections` table (protocol -> {"application_instance": future,
"disconnected": time}); `bridge_project.daphne_uvloop` runs daphne with it.
tests/test_daphne_shutdown.py fails if any of that changes upstream.

On SIGTERM, within BRIDGE_SHUTDOWN_GRACE:

1. stop listening: new connections are refused;
2. HTTP: idle keep-alive connections are closed; a request in flight is
   answered, with `Connection: close`, and its connection closed after;
3. every WebSocket gets `error` `going_away` with a spread `retry_after_ms`
   and close 1001, and leaves its groups and presence (messaging/realtime/shutdown.py);
4. once nothing is in flight (or at the grace minus a reserve), the instance
   record goes from Redis and what is still running is cancelled; Twisted then
   drops the connections that are left and the process exits 0;
5. a thread that still holds the process (a request stuck in a database call,
   say) cannot keep it past the grace: a watchdog exits it with status 1.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading

from daphne.cli import CommandLineInterface
from daphne.server import Server
from django.conf import settings
from twisted.internet import defer, reactor
from twisted.web import http

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.05


def reserve_seconds(grace: float) -> float:
    """What the grace keeps back, after draining, to clean up and exit."""
    return min(2.0, grace / 3)


def watchdog_seconds(grace: float) -> float:
    """When the watchdog ends the process: just inside the grace."""
    return grace - min(0.25, grace / 10)


class GracefulServer(Server):
    def listen_success(self, port):
        self.bridge_ports = [*getattr(self, "bridge_ports", ()), port]
        return super().listen_success(port)

    def kill_all_applications(self):
        """Twisted's before-shutdown trigger: drain first, then cancel what is
        left. The reactor keeps running until the returned Deferred fires."""
        grace = settings.BRIDGE_SHUTDOWN_GRACE
        start_watchdog(watchdog_seconds(grace))
        drained = defer.Deferred.fromFuture(
            asyncio.get_event_loop().create_task(self._drain(grace))
        )
        drained.addErrback(self._drain_failed)
        drained.addCallback(lambda _: self._cancel_applications())
        return drained

    async def _drain(self, grace: float) -> None:
        # Imported here: the application (and Django) is loaded by now.
        from messaging.realtime.shutdown import Departure

        loop = asyncio.get_running_loop()
        started = loop.time()
        reserve = reserve_seconds(grace)
        deadline = started + grace - reserve
        for port in getattr(self, "bridge_ports", ()):
            port.stopListening()
        logger.info("shutting down: not accepting; draining for up to %.1f s", grace)
        departure = Departure(grace=grace)
        told = 0
        while True:
            told += departure.send_away()
            http_connections = self._retire_http_connections()
            applications = self._running()
            if not (http_connections or applications or departure.connections_left):
                outcome = "drained"
                break
            if loop.time() >= deadline:
                logger.warning(
                    "still open after the shutdown grace (BRIDGE_SHUTDOWN_GRACE=%s): "
                    "%d HTTP connections, %d requests or WebSockets; closing them",
                    grace,
                    http_connections,
                    applications,
                )
                outcome = "stopped draining"
                break
            await asyncio.sleep(POLL_SECONDS)
        await departure.forget(timeout=reserve / 2)
        logger.info(
            "shutting down: %s after %.2f s; %d WebSocket clients sent elsewhere",
            outcome,
            loop.time() - started,
            told,
        )

    def _running(self) -> int:
        """Application instances still running, and requests still arriving."""
        running = 0
        for details in list(self.connections.values()):
            instance = details.get("application_instance")
            if instance is None:
                running += "disconnected" not in details  # body still arriving
            else:
                running += not instance.done()
        return running

    def _retire_http_connections(self) -> int:
        """Close idle keep-alive connections; let busy ones finish their
        requests, telling the client with `Connection: close`, and close after.
        Returns how many HTTP connections are still open.

        Repeated on every poll: a connection handling a request has stopped
        reading, so it is found through daphne's table of requests, and an idle
        one only among the reactor's readers."""
        channels = set(_reading_http_channels())
        for protocol, details in list(self.connections.items()):
            # "disconnected": finished, or upgraded to a WebSocket (whose old
            # channel still lists the request but no longer owns the socket).
            channel = getattr(protocol, "channel", None)
            if (
                isinstance(protocol, http.Request)
                and channel is not None
                and "disconnected" not in details
            ):
                channels.add(channel)
        for channel in channels:
            if not channel.requests:
                channel.transport.loseConnection()
                continue
            channel.persistent = False
            for request in channel.requests:
                if not request.startedWriting:
                    request.responseHeaders.setRawHeaders(b"connection", [b"close"])
        return len(channels)

    def _drain_failed(self, failure) -> None:
        logger.error(
            "graceful shutdown failed; stopping now",
            exc_info=(failure.type, failure.value, failure.getTracebackObject()),
        )

    def _cancel_applications(self):
        """daphne's kill_all_applications, for what the drain left running.

        daphne's own indexes details["application_instance"], which a request
        whose body is still arriving does not have yet (a KeyError that the
        Twisted log, off at verbosity 1, would swallow)."""
        running = []
        for details in list(self.connections.values()):
            instance = details.get("application_instance")
            if instance is not None and not instance.done():
                instance.cancel()
                running.append(instance)
        waiting = defer.Deferred.fromFuture(asyncio.gather(*running))
        waiting.addErrback(lambda _: None)
        return waiting


class GracefulCommandLineInterface(CommandLineInterface):
    server_class = GracefulServer


def _reading_http_channels() -> list[http.HTTPChannel]:
    """HTTP connections the reactor is reading from: idle ones and those still
    receiving a request. Twisted's HTTPFactory wraps each HTTPChannel in a
    `_GenericHTTPChannelProtocol` (for HTTP/2 negotiation) that keeps it in
    `_channel`; a WebSocket's transport has been handed to daphne's WebSocket
    protocol instead."""
    channels = []
    for reader in reactor.getReaders():
        protocol = getattr(reader, "protocol", None)
        protocol = getattr(protocol, "_channel", protocol)
        if isinstance(protocol, http.HTTPChannel):
            channels.append(protocol)
    return channels


def start_watchdog(seconds: float) -> threading.Timer:
    """End the process after `seconds`, whatever holds it: Python waits for
    every request thread at exit, and one stuck in a call could wait forever."""

    def expire() -> None:
        logger.error("still running %.1f s after shutdown began; exiting now", seconds)
        os._exit(1)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    return timer
