"""A minimal asyncio SMTP server on 127.0.0.1 that reads every message and throws it away.

For bench/digest.py: aiosmtpd saturates near 350 messages/s on these machines, so the benchmark
needs a receiver that is not the bottleneck. It speaks just enough SMTP for smtplib (EHLO/HELO,
MAIL, RCPT, DATA with dot-terminated data, RSET, NOOP, QUIT), answers 250 to everything, prints
`listening PORT` once ready and, on SIGTERM/SIGINT, `received N` (messages) before exiting.

    python bench/smtp_discard.py [--port 0]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

END = b"\r\n.\r\n"


class Discard(asyncio.Protocol):
    count = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""
        self.in_data = False
        transport.write(b"220 discard ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        # Answers to pipelined commands go out in one write per read (RFC 2920 allows it).
        out: list[bytes] = []
        self.buffer += data
        while True:
            if self.in_data:
                at = self.buffer.find(END)
                if at < 0:
                    # Keep only what could be the start of the terminator.
                    self.buffer = self.buffer[-4:]
                    break
                self.buffer = self.buffer[at + len(END) :]
                self.in_data = False
                Discard.count += 1
                out.append(b"250 discarded\r\n")
                continue
            at = self.buffer.find(b"\r\n")
            if at < 0:
                break
            line, self.buffer = self.buffer[:at], self.buffer[at + 2 :]
            verb = line[:4].upper()
            if verb == b"EHLO":
                out.append(b"250-discard\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 100000000\r\n")
            elif verb == b"DATA":
                self.in_data = True
                self.buffer = b"\r\n" + self.buffer  # so END also matches an empty message
                out.append(b"354 go ahead\r\n")
            elif verb == b"QUIT":
                out.append(b"221 bye\r\n")
                self.transport.write(b"".join(out))
                self.transport.close()
                return
            else:
                out.append(b"250 OK\r\n")
        if out:
            self.transport.write(b"".join(out))


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Discard, "127.0.0.1", port)
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set_result, None)
    print(f"listening {server.sockets[0].getsockname()[1]}", flush=True)
    await stop
    server.close()
    print(f"received {Discard.count}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(main(parser.parse_args().port))
    sys.exit(0)
