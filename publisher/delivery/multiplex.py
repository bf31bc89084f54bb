"""All of a run's SMTP connections driven by one thread, for publisher.delivery.sender.

With a thread per connection, every message cost several hand-offs of the GIL and of the run's
lock between threads: about a fifth of the sender's CPU on a fast server. Here one thread keeps
`delivery.concurrency` connections busy: each free slot records its last answer and claims its
next row (publisher.delivery.sender.Slot.step; the slots freed in the same round share one commit), then
starts the message on its connection (publisher.delivery.smtpchannel), and a selector tells which
connection can move on. The intent is still committed before a message leaves and the outcome
right after its answer, and at most one row per connection is ever `sending`, so the duplicate
window after a crash is unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import selectors
import sqlite3
import threading
import time

from publisher.delivery.mailer import SmtpTransport
from publisher.delivery.sender import _POLL, Answer, LinkMaker, Slot, _Run
from publisher.delivery.smtpchannel import Channel
from publisher.store import ledger
from publisher.store.db import transaction


class _Lane(Slot):
    """A slot with its connection, the row in flight and, once it is over, the answer."""

    def __init__(
        self, run: _Run, conn: sqlite3.Connection, links: LinkMaker, sender: str, transport: SmtpTransport
    ) -> None:
        super().__init__(run, conn, links, sender)
        self.channel = Channel(transport)
        self.row: ledger.Claimed | None = None  # in flight
        self.answer: Answer | None = None  # to record at the next step
        self.due = 0.0  # free, but nothing to claim before this time
        self.done = False
        self.watched: tuple[object, int] | None = None  # (socket, events) in the selector


class Multiplexer(threading.Thread):
    def __init__(
        self,
        run: _Run,
        conn: sqlite3.Connection,
        links: LinkMaker,
        sender: str,
        transports: list[SmtpTransport],
    ) -> None:
        super().__init__(daemon=True, name="publisher-sender")
        self.conn = conn
        self.lanes = [_Lane(run, conn, links, sender, transport) for transport in transports]
        self.selector = selectors.DefaultSelector()
        for lane in self.lanes:
            # A closed socket leaves the selector before its file descriptor is freed: another
            # lane's new connection may get the same number.
            lane.channel.on_close = functools.partial(self._unwatch, lane)

    def run(self) -> None:
        try:
            self._loop()
        except Exception as exc:
            self.lanes[0].failed(exc)
        finally:
            for lane in self.lanes:
                # QUIT where no message is half-way (a failure stopped the run mid-message).
                lane.channel.close(polite=lane.row is None)
            self.selector.close()

    def _loop(self) -> None:
        lanes = self.lanes
        while True:
            now = time.monotonic()
            ready = [lane for lane in lanes if lane.row is None and not lane.done and lane.due <= now]
            if len(ready) > 1:
                # Several connections answered since the last round: their outcomes and their
                # next claims share one commit, which is made before any of those messages starts.
                with transaction(self.conn):
                    claims = [(lane, self._claim(lane)) for lane in ready]
            else:
                claims = [(lane, self._claim(lane)) for lane in ready]
            for lane, row in claims:
                if row is not None:
                    self._start(lane, row)
            for lane in lanes:
                if lane.row is None and lane.watched is not None:
                    self._unwatch(lane)  # idle: an idle socket's hang-up is met at the next begin
            busy = [lane for lane in lanes if lane.row is not None]
            if not busy and all(lane.done for lane in lanes):
                return
            waits = [lane.due for lane in lanes if lane.row is None and not lane.done]
            waits += [lane.channel.deadline for lane in busy]
            timeout = min(max(min(waits, default=now + _POLL) - time.monotonic(), 0.0), _POLL)
            if busy:
                events = self.selector.select(timeout)
            else:
                time.sleep(timeout)
                events = []
            for key, mask in events:
                lane = key.data
                if lane.row is None:
                    continue  # finished earlier in this batch
                try:
                    if mask & selectors.EVENT_WRITE:
                        lane.channel.on_writable()
                    reply = lane.channel.on_readable() if mask & selectors.EVENT_READ else None
                    if reply is None:
                        self._watch(lane)  # the socket may be a new one (a transparent reconnect)
                except Exception as exc:
                    self._finish(lane, Answer(lane.row, error=exc))
                else:
                    if reply is not None:
                        self._finish(lane, Answer(lane.row, reply=reply))
            now = time.monotonic()
            for lane in busy:
                if lane.row is not None and lane.channel.deadline <= now:
                    try:
                        lane.channel.on_timeout()
                    except Exception as exc:
                        self._finish(lane, Answer(lane.row, error=exc))

    def _claim(self, lane: _Lane) -> ledger.Claimed | None:
        """Record the lane's answer and claim its next row (None: nothing to send yet, or ever)."""
        row, wait = lane.step(lane.answer)
        lane.answer = None
        if row is None:
            if wait is None:
                lane.done = True  # its connection says QUIT when the run ends (see `run`)
            else:
                lane.due = time.monotonic() + wait
        return row

    def _start(self, lane: _Lane, row: ledger.Claimed) -> None:
        """Start a claimed row's message on the lane's connection (its claim is committed)."""
        try:
            data = lane.run_state.template.render_wire(lane.recipient(row))
            lane.channel.begin(lane.sender, (row.email,), data)
            lane.row = row
            self._watch(lane)
        except Exception as exc:  # every failure is recorded; a bug must not hang the run
            lane.row = None
            lane.answer = Answer(row, error=exc)

    def _finish(self, lane: _Lane, answer: Answer) -> None:
        # Still watched: the next message usually starts on the same socket right away, and
        # `_loop` stops watching it if not.
        lane.row = None
        lane.answer = answer
        lane.due = 0.0

    def _watch(self, lane: _Lane) -> None:
        sock = lane.channel.sock
        if sock is None:
            self._unwatch(lane)
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if lane.channel.wants_write else 0)
        if lane.watched == (sock, events):
            return
        if lane.watched is not None and lane.watched[0] is sock:
            self.selector.modify(sock, events, lane)
        else:
            self._unwatch(lane)
            self.selector.register(sock, events, lane)
        lane.watched = (sock, events)

    def _unwatch(self, lane: _Lane) -> None:
        if lane.watched is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(lane.watched[0])  # type: ignore[arg-type]
            lane.watched = None
