"""Graceful shutdown pieces for uvicorn: a connection that answers what reached it before the signal, and a
supervisor of worker processes that stops taking connections before it stops its workers.

On shutdown uvicorn closes idle keep-alive connections at once. A request a client sent just before the signal may
then still sit unread in the socket's buffer, and closing drops it. DrainingH11Protocol lets the event loop turn a
few more times first, which reads such a request; a connection with a request in progress is closed after its
answer instead (which says `Connection: close`). uvicorn bounds the whole drain by timeout_graceful_shutdown
(--drain-timeout-s).
"""

from __future__ import annotations

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.supervisors.multiprocess import Multiprocess

SETTLE_TURNS = 3  # one turn reads what the socket holds and starts its request; the others are slack


class DrainingH11Protocol(H11Protocol):
    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if getattr(self.server_state, "draining", False):  # a TLS handshake that ended after the signal
            self.shutdown()

    def shutdown(self) -> None:
        state = self.server_state  # one per server, shared by its connections
        if not getattr(state, "draining", False):
            state.draining = True  # type: ignore[attr-defined]
            # Answers given while draining say so, and the client closes its side: a TLS close waits for that.
            state.default_headers.append((b"connection", b"close"))
        self._close_when_idle(SETTLE_TURNS)

    def _close_when_idle(self, turns: int) -> None:
        if self.transport.is_closing():
            return
        busy = self.cycle is not None and not self.cycle.response_complete
        if busy:
            super().shutdown()  # answer, then close
        elif turns > 0:
            self.loop.call_soon(self._close_when_idle, turns - 1)
        elif self.scheme == "https" and self.transport.get_write_buffer_size() == 0:
            # A TLS close waits for the client's close_notify, which an idle keep-alive client never sends: the
            # drain would last --drain-timeout-s. Nothing is left to send here, so end the connection at once.
            self.transport.abort()
        else:
            super().shutdown()


class Supervisor(Multiprocess):
    """uvicorn's worker supervisor, closing its copy of the listening socket before stopping the workers: a new
    connection is then refused at once instead of waiting unanswered in the backlog while they drain."""

    def terminate_all(self) -> None:
        for sock in self.sockets:
            sock.close()
        super().terminate_all()
