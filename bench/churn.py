#!/usr/bin/env python3
"""Clients that hang up mid-request: each of CONCURRENCY clients opens a connection, sends
GET /auth/me with TOKEN, waits a moment (0 to 3 ms) and resets the connection, over and over
for SECONDS, as a load generator does to its connections when it stops, a thousand times over.
Prints how many requests it abandoned. Loopback only.

    python3 bench/churn.py PORT TOKEN SECONDS CONCURRENCY
"""
import asyncio
import random
import socket
import struct
import sys
import time


async def client(port, request, deadline, counts):
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.01)
            continue
        writer.write(request)
        await writer.drain()
        await asyncio.sleep(random.random() * 0.003)
        # SO_LINGER 0: the close is a reset, the abrupt end a client crash or a killed tool gives.
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()
        counts[0] += 1


async def main():
    port, token, seconds, concurrency = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    request = f"GET /auth/me HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
    deadline, counts = time.monotonic() + seconds, [0]
    await asyncio.gather(*(client(port, request, deadline, counts) for _ in range(concurrency)))
    print(counts[0])


asyncio.run(main())
