"""A light open-loop load generator for ``benchmarks/serving.py``, beside locust.

Same arguments and JSON line as ``serving_load.py``. ``rate / 2`` keep-alive HTTP/1.1
connections on asyncio streams, each sending ``GET /users/{random known user}/
recommendations?k=10&model=M`` on a fixed schedule (one request per 0.5 s, seeded random
phase). Latency runs from the *scheduled* send time to the last byte of the reply, so a
slow reply that delays the next request counts against the server (no coordinated
omission). Its cost per request is a few tens of microseconds of the load generator's
CPU, where locust's gevent loop, sharing the same cores, adds its own scheduling delay
to every latency it reports; the two are reported side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from serving_load import PERIOD_S, K, arguments, cpu_seconds, own_cpu_seconds, summary


async def connection(
    host: str, port: int, paths: list[str], phase: float, window: dict[str, Any], end: float
) -> None:
    """One keep-alive connection sending on its schedule until ``end``."""
    reader, writer = await asyncio.open_connection(host, port)
    due = time.perf_counter() + phase
    try:
        while due < end:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            path = paths[window["sent"] % len(paths)]
            window["sent"] += 1
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            body = await reader.readexactly(length)
            if window["open"]:
                if status == 200 and len(json.loads(body)["items"]) == K:
                    window["latencies"].append((time.perf_counter() - due) * 1000.0)
                else:
                    window["failures"] += 1
            due += PERIOD_S
    finally:
        writer.close()


async def load(args: argparse.Namespace) -> dict[str, Any]:
    url = urlsplit(args.host)
    users = json.loads(Path(args.users_file).read_text())
    draws = random.Random(args.seed)
    paths = [
        f"/users/{draws.choice(users)}/recommendations?k={K}&model={args.model}"
        for _ in range(1000)
    ]
    n = max(1, round(args.rate * PERIOD_S))
    window: dict[str, Any] = {"open": False, "latencies": [], "failures": 0, "sent": 0}
    end = time.perf_counter() + args.warmup + args.duration
    tasks = [
        asyncio.create_task(
            connection(
                url.hostname or "127.0.0.1",
                url.port or 80,
                paths,
                draws.uniform(0, PERIOD_S),
                window,
                end,
            )
        )
        for _ in range(n)
    ]
    await asyncio.sleep(args.warmup)
    server_cpu, own_cpu, start = cpu_seconds(args.server_pid), own_cpu_seconds(), time.monotonic()
    window["open"] = True
    await asyncio.sleep(args.duration)
    window["open"] = False
    elapsed = time.monotonic() - start
    server_cpu, own_cpu = cpu_seconds(args.server_pid) - server_cpu, own_cpu_seconds() - own_cpu
    loadavg = os.getloadavg()[0]
    await asyncio.gather(*tasks)
    return summary("open-loop", args, n, window, elapsed, server_cpu, own_cpu, loadavg)


def main() -> None:
    print(json.dumps(asyncio.run(load(arguments(__doc__.splitlines()[0])))))


if __name__ == "__main__":
    main()
