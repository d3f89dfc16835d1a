"""Webhook response time: 500 signed pushes, 50 at a time, against a running bot.

The bot runs in this process, as `tugboat serve` would; the sandbox world (moto + rollout
simulator), the fake Slack and the client each run in a process of their own, as AWS, Slack
and GitHub are elsewhere in production. Most pushes go to an unmapped branch (the HTTP path:
read, verify, parse, route, answer); a handful go to `main`, so the accept path (dedupe in
the store, queue, 202) and the deploys it starts run during the measurement too. The bot's
AWS clients are created first (a bot that has been up a while has them), and the client's
connections are opened by an unmeasured warm-up round. Target: p99 < 50 ms.

    .venv/bin/python bench/webhook.py [--requests 500] [--concurrency 50] [--mapped 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the payload builders live with the tests

import aiohttp  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from bot.aws.watcher import PollTiming  # noqa: E402
from bot.domain.aws import ServiceRef  # noqa: E402
from bot.domain.catalog import parse_catalog  # noqa: E402
from bot.runtime import Tugboat, Tuning  # noqa: E402
from bot.sandbox.fake_slack import FakeSlack  # noqa: E402
from bot.sandbox.terminal import one_service_example  # noqa: E402
from bot.sandbox.world import SandboxWorld  # noqa: E402
from bot.settings import Settings  # noqa: E402
from tests.fixtures_github import push_payload, signed_headers  # noqa: E402

SECRET = "bench-webhook-secret"
TUNING = Tuning(
    poll=PollTiming.brisk(0.3),
    thread_interval_s=0.3,
    http_host="127.0.0.1",
)


# -- the client, in its own process ----------------------------------------------------------


def requests_to_send(count: int, mapped: int) -> list[tuple[bytes, dict[str, str]]]:
    """`count` signed pushes; `mapped` of them (spread out) to main, the rest to branches."""
    shas = SandboxWorld.EXAMPLE_SHAS
    every = count // mapped if mapped else count + 1
    out = []
    for i in range(count):
        if mapped and i % every == every // 2 and i // every < mapped:
            payload = push_payload(shas[(i // every) % len(shas)], message=f"Bench push {i}")
        else:
            payload = push_payload(f"{i:040x}", branch=f"feature/bench-{i}")
        body = json.dumps(payload).encode()
        out.append((body, signed_headers("push", body, SECRET)))
    return out


async def fire(url: str, count: int, concurrency: int, mapped: int) -> dict[str, object]:
    prepared = requests_to_send(count, mapped)
    latencies: list[float] = []
    statuses: collections.Counter[int] = collections.Counter()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        # Warm-up: open the pool's connections (not measured).
        warm = [requests_to_send(1, 0)[0] for _ in range(concurrency)]
        await asyncio.gather(*(post(http, url, body, headers) for body, headers in warm))
        queue: asyncio.Queue[tuple[bytes, dict[str, str]]] = asyncio.Queue()
        for item in prepared:
            queue.put_nowait(item)

        async def worker() -> None:
            while not queue.empty():
                body, headers = queue.get_nowait()
                began = time.perf_counter()
                status = await post(http, url, body, headers)
                latencies.append(time.perf_counter() - began)
                statuses[status] += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return {"latencies": latencies, "statuses": dict(statuses), "elapsed": elapsed}


async def post(http: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]) -> int:
    async with http.post(url, data=body, headers=headers) as answer:
        await answer.read()
        return answer.status


def client_process(url: str, count: int, concurrency: int, mapped: int, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    out.put(asyncio.run(fire(url, count, concurrency, mapped)))


# -- the rest of the world, each in its own process as in production ----------------------------


def fake_slack_process(out: multiprocessing.Queue, stop: Any) -> None:  # type: ignore[type-arg]
    with FakeSlack() as fake:
        out.put(fake.api_url)
        stop.wait()


@contextlib.contextmanager
def sandbox_world() -> Iterator[dict[str, str]]:
    """`python -m bot.sandbox.world`: moto and the rollout simulator, seeded like example.yml."""
    world = subprocess.Popen(
        [sys.executable, "-m", "bot.sandbox.world", "--rollout-seconds", "1", "--tick", "0.1"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert world.stdout is not None
        yield dict(json.loads(world.stdout.readline())["env"])
    finally:
        world.terminate()
        world.wait(10)


@contextlib.contextmanager
def fake_slack() -> Iterator[str]:
    ctx = multiprocessing.get_context("spawn")
    urls: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    stop = ctx.Event()
    process = ctx.Process(target=fake_slack_process, args=(urls, stop))
    process.start()
    try:
        yield str(urls.get(timeout=30))
    finally:
        stop.set()
        process.join(10)


# -- the bot, in this process ----------------------------------------------------------------


async def warm_up(bot: Tugboat) -> None:
    """A bot that has been up a while has its AWS clients; creating them costs ~100 ms of CPU."""
    staging = ServiceRef(bot.catalog.region, "staging", "api")
    await bot.ecs.describe_service(staging)
    await bot.ecs.image_exists(bot.catalog.region, SandboxWorld.EXAMPLE_REPOSITORY, "v1", None)


async def run(count: int, concurrency: int, mapped: int) -> dict[str, Any]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        os.environ.pop(name, None)
    with sandbox_world() as aws_env, fake_slack() as slack_url, tempfile.TemporaryDirectory() as tmp:
        os.environ.update(aws_env)
        settings = Settings(
            slack_bot_token=SecretStr(FakeSlack.bot_token),
            slack_app_token=SecretStr(FakeSlack.app_token),
            slack_api_url=slack_url,
            tugboat_state=f"sqlite:///{tmp}/bench.db",
            github_webhook_secret=SecretStr(SECRET),
            port=0,
        )
        # The example deploying `api` alone: the figures are per one-service auto-deploy, as before.
        catalog = parse_catalog(one_service_example(), "one-service.yml")
        bot = Tugboat(settings, catalog, tuning=TUNING)
        await bot.start()
        try:
            await warm_up(bot)
            url = f"http://127.0.0.1:{bot.port}/github/webhook"
            cpu_before = time.process_time()
            ctx = multiprocessing.get_context("spawn")
            results: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
            client = ctx.Process(target=client_process, args=(url, count, concurrency, mapped, results))
            client.start()
            loop = asyncio.get_running_loop()
            outcome = await loop.run_in_executor(None, results.get)
            cpu = time.process_time() - cpu_before
            await loop.run_in_executor(None, client.join)
            await asyncio.wait_for(bot.idle(), 120)
            finished = await bot.store.history("api", "staging", 50)
        finally:
            await bot.stop()

    ms = sorted(x * 1000 for x in outcome["latencies"])
    centiles = statistics.quantiles(ms, n=100)
    p50, p90, p99 = centiles[49], centiles[89], centiles[98]
    print(f"webhook bench: {len(ms)} signed pushes, {concurrency} at a time, {mapped} of them to main")
    print(f"  statuses: {outcome['statuses']}")
    print(f"  p50 {p50:.1f} ms · p90 {p90:.1f} ms · p99 {p99:.1f} ms · max {ms[-1]:.1f} ms")
    print(f"  throughput {len(ms) / outcome['elapsed']:.0f} requests/s")
    print(
        f"  bot CPU {cpu * 1000 / (len(ms) + concurrency):.2f} ms per request (all threads, warm-up included)"
    )
    states = collections.Counter(r.state for r in finished)
    print(f"  auto-deploys of api staging: {dict(states)} (latest wins; skipped ones end failed)")
    ok = p99 < 50
    print(f"  target p99 < 50 ms: {'met' if ok else 'MISSED'}")
    return {
        "requests": len(ms),
        "concurrency": concurrency,
        "mapped": mapped,
        "statuses": outcome["statuses"],
        "p50_ms": p50,
        "p90_ms": p90,
        "p99_ms": p99,
        "max_ms": ms[-1],
        "requests_per_s": len(ms) / outcome["elapsed"],
        "bot_cpu_ms_per_request": cpu * 1000 / (len(ms) + concurrency),
        "target_met": ok,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--mapped", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    result = asyncio.run(run(args.requests, args.concurrency, args.mapped))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if result["target_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
