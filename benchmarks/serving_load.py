"""The load generator of ``benchmarks/serving.py``: locust, headless, in its own process.

Run as ``python benchmarks/serving_load.py --host URL --rate R --model NAME --users-file
F --server-pid PID`` (``serving.py`` does). Locust is used as a library: ``R / 2``
users, each with ``constant_throughput(2)`` (one request every 0.5 s, a fixed rate as
long as a reply takes less than that), each first waiting a seeded random part of the
period, so their phases spread over it instead of firing together in bursts. Each request asks
``GET /users/{random known user}/recommendations?k=10&model=NAME`` (users drawn by a
seeded generator) and fails unless it returns 200 with k items. After the warm-up,
every request completed inside the measured window is kept with its full-precision
latency (locust's own statistics round to whole milliseconds); the worker prints one
JSON line: achieved requests/s, failures, p50/p95/p99 ms, the server's and the load
generator's CPU seconds in the window, and the load average at its end.

Locust's users wait for their reply before the next request, so a server slower than
0.5 s per reply would lower the rate (coordinated omission); the achieved rate is
reported beside the target so that would show.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import time
from pathlib import Path
from typing import Any

PERIOD_S = 0.5
K = 10


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(args: argparse.Namespace) -> dict[str, Any]:
    import gevent
    from locust import FastHttpUser, constant_throughput, events, task
    from locust.env import Environment

    user_ids = json.loads(Path(args.users_file).read_text())
    draws = random.Random(args.seed)
    users = max(1, round(args.rate * PERIOD_S))
    window: dict[str, Any] = {"open": False, "latencies": [], "failures": 0, "errors": {}}

    class Reader(FastHttpUser):
        host = args.host
        wait_time = constant_throughput(1 / PERIOD_S)

        def on_start(self) -> None:
            # A random phase per user: locust starts users in batches, and users started
            # together would keep firing together (bursts instead of an even rate).
            gevent.sleep(draws.uniform(0, PERIOD_S))

        @task
        def recommend(self) -> None:
            user = draws.choice(user_ids)
            path = f"/users/{user}/recommendations?k={K}&model={args.model}"
            with self.client.get(path, name="recommendations", catch_response=True) as reply:
                if reply.status_code != 200:
                    reply.failure(f"HTTP {reply.status_code}")
                elif len(reply.json().get("items", [])) != K:
                    reply.failure(f"fewer than {K} items")

    def on_request(response_time: float, exception: Exception | None, **_: Any) -> None:
        if not window["open"]:
            return
        if exception is None:
            window["latencies"].append(response_time)
        else:
            window["failures"] += 1
            text = str(exception)[:80]
            window["errors"][text] = window["errors"].get(text, 0) + 1

    events.request.add_listener(on_request)
    env = Environment(user_classes=[Reader], events=events)
    runner = env.create_local_runner()
    runner.start(users, spawn_rate=args.rate)
    gevent.sleep(args.warmup)
    server_cpu, own_cpu, start = cpu_seconds(args.server_pid), own_cpu_seconds(), time.monotonic()
    window["open"] = True
    gevent.sleep(args.duration)
    window["open"] = False
    elapsed = time.monotonic() - start
    server_cpu, own_cpu = cpu_seconds(args.server_pid) - server_cpu, own_cpu_seconds() - own_cpu
    load = os.getloadavg()[0]
    runner.quit()
    return summary("locust", args, users, window, elapsed, server_cpu, own_cpu, load)


def summary(
    generator: str,
    args: argparse.Namespace,
    users: int,
    window: dict[str, Any],
    elapsed: float,
    server_cpu: float,
    own_cpu: float,
    load: float,
) -> dict[str, Any]:
    """The JSON line of one measured window, whichever generator produced it."""
    latencies = sorted(window["latencies"])
    done = len(latencies) + window["failures"]
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [float("nan")] * 99
    return {
        "generator": generator,
        "model": args.model,
        "target_rps": args.rate,
        "locust_users": users,
        "duration_s": elapsed,
        "requests": done,
        "achieved_rps": done / elapsed,
        "failures": window["failures"],
        "errors": window.get("errors", {}),
        "p50_ms": statistics.median(latencies) if latencies else float("nan"),
        "p95_ms": cuts[94],
        "p99_ms": cuts[98],
        "max_ms": latencies[-1] if latencies else float("nan"),
        "server_cpu_s": server_cpu,
        "loadgen_cpu_s": own_cpu,
        "load_average_1m": load,
    }


def arguments(description: str) -> argparse.Namespace:
    """The command line both load generators take (``serving.py`` passes it)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", required=True, help="base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--rate", type=float, required=True, help="target requests/s")
    parser.add_argument("--model", required=True)
    parser.add_argument("--users-file", required=True, help="JSON list of known user ids")
    parser.add_argument("--server-pid", type=int, required=True)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def main() -> None:
    print(json.dumps(run(arguments(__doc__.splitlines()[0]))))


if __name__ == "__main__":
    main()
