"""One StateStore suite, run against SQLite and against DynamoDB on a moto server.

What matters is what a user of the bot would notice: one operation per target, locks that
hold, adoption after a replica dies, deliveries handled once, history and audit in order.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.moto_server import threaded_moto_server
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.server import ThreadedMotoServer

from bot.domain.approvals import Approval
from bot.domain.records import GateEntry, Lock, OperationRecord
from bot.sandbox.fake_slack import wait_for
from bot.state.base import Fenced, StateStore
from bot.state.dynamodb import DynamoStore, StoreUnavailable
from bot.state.sqlite import SqliteStore

SHORT = 0.2  # seconds: a lease or lock that runs out while the test waits


class OneRequestAtATime(DomainDispatcherApplication):
    """moto checks a write's condition and applies it without a lock, so under CPU load two
    conditional writes to one item can both succeed; DynamoDB makes each one atomic."""

    serial = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        with self.serial:
            return super().__call__(environ, start_response)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.delenv("AWS_PROFILE", raising=False)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        with pytest.MonkeyPatch.context() as app:
            # Only for building this server's app: other moto servers in the run are untouched.
            app.setattr(threaded_moto_server, "DomainDispatcherApplication", OneRequestAtATime)
            server.start()
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()


# One session for every store's client (made on first use, inside moto_endpoint's environment):
# it loads DynamoDB's service model once, so a client costs milliseconds. Sessions are not
# thread-safe (clients are), hence the lock.
SESSIONS: list[boto3.session.Session] = []
SESSION_LOCK = threading.Lock()


def dynamo(endpoint: str, table: str) -> DynamoStore:
    def client() -> Any:
        with SESSION_LOCK:
            if not SESSIONS:
                SESSIONS.append(boto3.session.Session())
            return SESSIONS[0].client(
                "dynamodb",
                endpoint_url=endpoint,
                region_name="us-east-1",
                config=Config(retries={"mode": "standard", "max_attempts": 5}),
            )

    return DynamoStore(table, client_factory=client)


@pytest.fixture(params=["sqlite", "dynamodb"])
async def replicas(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[StateStore, StateStore]]:
    """Two handles on one shared state: the same SqliteStore, or two DynamoStores on a table."""
    if request.param == "sqlite":
        store = SqliteStore(tmp_path / "t.db")
        await store.open()
        yield store, store
        await store.close()
        return
    endpoint = request.getfixturevalue("moto_endpoint")
    table = f"tugboat-{uuid.uuid4().hex[:12]}"
    first, second = dynamo(endpoint, table), dynamo(endpoint, table)
    await first.create_table()
    await first.open()
    await second.open()
    yield first, second
    await first.close()
    await second.close()


@pytest.fixture
def store(replicas: tuple[StateStore, StateStore]) -> StateStore:
    return replicas[0]


def op(app: str = "api", env: str = "prod", **kwargs: Any) -> OperationRecord:
    fields: dict[str, Any] = {"action": "deploy", "actor": "U1", "subject": "v1", "owner": "r1"}
    return OperationRecord(app=app, env=env, **(fields | kwargs))


def copy(record: OperationRecord) -> OperationRecord:
    return dataclasses.replace(record, extra=dict(record.extra))


# -- claims ----------------------------------------------------------------------------------


async def test_concurrent_claims_exactly_one_wins(
    replicas: tuple[StateStore, StateStore],
) -> None:
    one, two = replicas
    a, b = op(actor="U1"), op(actor="U2")
    results = await asyncio.gather(one.claim_target(a, 30), two.claim_target(b, 30))
    assert sorted(r is None for r in results) == [False, True]
    winner, loser_saw = (a, results[1]) if results[0] is None else (b, results[0])
    assert loser_saw is not None
    assert (loser_saw.id, loser_saw.actor) == (winner.id, winner.actor)
    active = await one.active_on("api", "prod")
    assert active is not None and active.id == winner.id


async def test_many_concurrent_claims_exactly_one_wins(
    replicas: tuple[StateStore, StateStore],
) -> None:
    records = [op(actor=f"U{i}") for i in range(6)]
    results = await asyncio.gather(*(replicas[i % 2].claim_target(r, 30) for i, r in enumerate(records)))
    winners = [r for r, res in zip(records, results, strict=True) if res is None]
    assert len(winners) == 1
    assert {res.id for res in results if res is not None} == {winners[0].id}


async def test_claim_again_after_release(store: StateStore) -> None:
    a, b = op(), op()
    assert await store.claim_target(a, 30) is None
    holder = await store.claim_target(b, 30)
    assert holder is not None and holder.id == a.id
    await store.release_target(b)  # not the holder: changes nothing
    holder = await store.claim_target(b, 30)
    assert holder is not None and holder.id == a.id
    await store.release_target(a)
    assert await store.claim_target(b, 30) is None
    active = await store.active_on("api", "prod")
    assert active is not None and active.id == b.id


async def test_claim_by_its_holder_again_succeeds(store: StateStore) -> None:
    a = op()
    assert await store.claim_target(a, 30) is None
    assert await store.claim_target(a, 30) is None


async def test_expired_claim_can_be_taken(replicas: tuple[StateStore, StateStore]) -> None:
    one, two = replicas
    a, b = op(owner="r1"), op(owner="r2")
    assert await one.claim_target(a, 30) is None
    holder = await two.claim_target(b, 30)
    assert holder is not None and holder.id == a.id
    assert await one.renew_claim(a, SHORT) is True  # its owner's last heartbeat, then silence
    await wait_for(lambda: _claimed(two, b, 30), timeout=5.0)
    active = await one.active_on("api", "prod")
    assert active is not None and active.id == b.id


async def _claimed(store: StateStore, record: OperationRecord, lease_s: float) -> bool:
    return await store.claim_target(record, lease_s) is None


async def test_renew_keeps_the_claim(replicas: tuple[StateStore, StateStore]) -> None:
    one, two = replicas
    a, b = op(), op()
    assert await one.claim_target(a, SHORT) is None
    assert await one.renew_claim(a, 30) is True
    assert await two.renew_claim(b, 30) is False
    deadline = time.monotonic() + 2 * SHORT
    while time.monotonic() < deadline:  # well past the first lease: still held
        holder = await two.claim_target(b, 30)
        assert holder is not None and holder.id == a.id
        await asyncio.sleep(0.05)


async def test_finished_holder_does_not_block(store: StateStore) -> None:
    a, b = op(), op()
    assert await store.claim_target(a, 30) is None
    a.state = "succeeded"
    await store.save(a)  # finished but never released, e.g. crashed before release
    assert await store.active_on("api", "prod") is None
    assert await store.claim_target(b, 30) is None
    active = await store.active_on("api", "prod")
    assert active is not None and active.id == b.id


async def test_active_on(store: StateStore) -> None:
    assert await store.active_on("api", "prod") is None
    a = op(subject="v7")
    assert await store.claim_target(a, 30) is None
    active = await store.active_on("api", "prod")
    assert active is not None and (active.id, active.subject) == (a.id, "v7")
    assert await store.active_on("api", "staging") is None
    assert await store.active_on("web", "prod") is None
    a.state, a.phase = "failed", "done"
    await store.save(a)
    assert await store.active_on("api", "prod") is None


async def test_claims_on_different_targets_are_independent(store: StateStore) -> None:
    assert await store.claim_target(op("api", "prod"), 30) is None
    assert await store.claim_target(op("api", "staging"), 30) is None
    assert await store.claim_target(op("web", "prod"), 30) is None


# -- records ---------------------------------------------------------------------------------


async def test_save_get_round_trips_every_field(store: StateStore) -> None:
    record = OperationRecord(
        action="rollback",
        app="api",
        env="prod",
        actor="U123",
        subject="api:41 → api:40",
        id="op-roundtrip-1",
        trigger="github webhook",
        state="running",
        phase="rolling",
        previous_task_definition="arn:aws:ecs:us-east-1:1:task-definition/api:41",
        task_definition="arn:aws:ecs:us-east-1:1:task-definition/api:40",
        deployment_id="ecs-svc/1234567890",
        task_arn="arn:aws:ecs:us-east-1:1:task/cluster/abc",
        channel="C42",
        ts="1700000000.000100",
        permalink="https://example.slack.com/archives/C42/p1700000000000100",
        reason="health checks failed: 3 of 4 tasks stopped",
        owner="host-a:123",
        generation=3,
        created_at=1_700_000_000.123456,
        updated_at=1_700_000_001.5,
        ended_at=1_700_000_099.25,
        extra={"image": "repo:v1", "attempts": 3, "nested": {"ok": True, "list": [1, "2", None]}},
        running=2,
        desired=4,
        pending=1,
        task_name="migrate",
        rollback_to=40,
        service_deployment="arn:aws:ecs:us-east-1:1:service-deployment/prod/api/abc",
        stage="POST_TEST_TRAFFIC_SHIFT",
        gates=[
            GateEntry(
                "hook-1",
                "arn:aws:ecs:us-east-1:1:service-deployment/prod/api/abc",
                "POST_TEST_TRAFFIC_SHIFT",
                "production 0% · test 100%",
                expires_at=1_700_000_600.5,
                timeout_action="ROLLBACK",
                ts="1700000001.000200",
            )
        ],
    )
    assert all(getattr(record, f.name) not in (None, {}) for f in dataclasses.fields(record))
    await store.save(record)
    got = await store.get(record.id)
    assert got == record  # save stamps updated_at on the record it stores
    record.state, record.phase, record.owner, record.reason = "succeeded", "done", None, None
    await store.save(record)
    assert await store.get(record.id) == record
    assert await store.get("no-such-op") is None


async def test_unfinished_lists_only_running(store: StateStore) -> None:
    a = op("api", "prod", created_at=1000.0)
    b = op("web", "prod", created_at=2000.0)
    c = op("api", "staging", created_at=1500.0, state="succeeded")
    assert await store.claim_target(a, 30) is None
    assert await store.claim_target(b, 30) is None
    await store.save(c)
    assert [r.id for r in await store.unfinished()] == [a.id, b.id]
    a.state = "failed"
    await store.save(a)
    assert [r.id for r in await store.unfinished()] == [b.id]


async def test_adopt_waits_for_the_owners_lease(replicas: tuple[StateStore, StateStore]) -> None:
    one, two = replicas
    record = op(owner="r1")
    assert await one.claim_target(record, 30) is None
    mine = copy(record)
    assert await two.adopt(mine, "r2", 30) is False
    assert mine.owner == "r1"
    assert await one.renew_claim(record, SHORT) is True  # r1's last heartbeat, then it dies
    await wait_for(lambda: two.adopt(mine, "r2", 30), timeout=5.0)
    assert mine.owner == "r2"
    stored = await one.get(record.id)
    assert stored is not None and stored.owner == "r2"
    active = await one.active_on("api", "prod")
    assert active is not None and (active.id, active.owner) == (record.id, "r2")
    # The new owner's lease is live now: the old owner cannot take it back.
    assert await one.adopt(copy(record), "r1", 30) is False
    # Its own owner may re-adopt (e.g. after a restart with the same identity).
    assert await two.adopt(copy(mine), "r2", 30) is True


async def test_adopt_refuses_finished_operations(store: StateStore) -> None:
    record = op(owner="r1")
    assert await store.claim_target(record, -1) is None  # lease already over
    record.state = "succeeded"
    await store.save(record)
    assert await store.adopt(copy(record), "r2", 30) is False
    assert await store.adopt(op(id="never-saved"), "r2", 30) is False


async def test_concurrent_adopters_exactly_one_wins(
    replicas: tuple[StateStore, StateStore],
) -> None:
    one, two = replicas
    record = op(owner="dead-replica")
    assert await one.claim_target(record, -1) is None  # its owner's lease is already over
    candidates = [copy(record) for _ in range(4)]
    results = await asyncio.gather(*(replicas[i % 2].adopt(c, f"r{i}", 30) for i, c in enumerate(candidates)))
    assert results.count(True) == 1
    winner = f"r{results.index(True)}"
    stored = await two.get(record.id)
    assert stored is not None and stored.owner == winner


async def test_adopting_leaves_the_target_with_a_newer_live_operation(
    replicas: tuple[StateStore, StateStore],
) -> None:
    one, two = replicas
    orphan = op(owner="dead-replica")
    assert await one.claim_target(orphan, -1) is None  # its owner died; the lease is over
    newer = op(owner="r2")
    assert await two.claim_target(newer, 30) is None  # so the target could be taken
    assert await one.adopt(copy(orphan), "r1", 30) is True  # the orphan is still watched...
    active = await two.active_on("api", "prod")
    assert active is not None and active.id == newer.id
    await one.release_target(orphan)  # ...and ends, without freeing the target
    holder = await two.claim_target(op(owner="r3"), 30)
    assert holder is not None and holder.id == newer.id


async def test_history_newest_first_limited_to_target(store: StateStore) -> None:
    base = 1_700_000_000.0
    mine = [op("api", "prod", created_at=base + i, state="succeeded") for i in range(5)]
    others = [
        op("api", "staging", created_at=base + 10, state="succeeded"),
        op("web", "prod", created_at=base + 11, state="succeeded"),
        op("api-v2", "prod", created_at=base + 12, state="succeeded"),
    ]
    for record in [mine[2], others[0], mine[0], mine[4], others[1], mine[1], others[2], mine[3]]:
        await store.save(record)
    history = await store.history("api", "prod", limit=3)
    assert [r.id for r in history] == [mine[4].id, mine[3].id, mine[2].id]
    assert [r.id for r in await store.history("api", "prod")] == [r.id for r in mine[::-1]]
    assert [r.id for r in await store.history("web", "prod")] == [others[1].id]
    assert await store.history("nope", "prod") == []


# -- fencing: a replica that lost its lease cannot write the operation any more ---------------


async def _orphan(store: StateStore, owner: str = "r1") -> OperationRecord:
    """A claimed deploy whose owner's lease is already over: anyone may adopt it."""
    record = op(owner=owner)
    assert await store.claim_target(record, -1) is None
    return record


async def adopted(store: StateStore, record: OperationRecord, owner: str, lease_s: float) -> OperationRecord:
    """A copy of `record` that `owner` adopted through `store` (the adoption must succeed)."""
    mine = copy(record)
    assert await store.adopt(mine, owner, lease_s) is True
    return mine


async def assert_fenced(
    store: StateStore, stale: OperationRecord, renew_on: StateStore | None = None
) -> Fenced:
    """`stale` may neither save (on `store`) nor renew its claim (on `renew_on`, else `store`).

    Returns the refusal of the save."""
    with pytest.raises(Fenced) as fenced:
        await store.save(stale)
    assert await (renew_on or store).renew_claim(stale, 30) is False
    return fenced.value


async def assert_live(store: StateStore, record: OperationRecord) -> None:
    """`record` saves, and renews its claim."""
    await store.save(record)
    assert await store.renew_claim(record, 30) is True


async def test_a_stale_copy_cannot_save_renew_or_claim_after_adoption(
    replicas: tuple[StateStore, StateStore],
) -> None:
    one, two = replicas
    stale = await _orphan(one)
    mine = await adopted(two, stale, "r2", -1)  # adopted, and its new lease over at once
    assert (mine.owner, mine.generation) == ("r2", 1)
    stale.phase = "rolling back"
    with pytest.raises(Fenced) as fenced:
        await one.save(stale)
    assert (fenced.value.op_id, fenced.value.owner, fenced.value.generation) == (stale.id, "r2", 1)
    with pytest.raises(Fenced):
        await one.claim_target(stale, 30)
    assert await one.renew_claim(stale, 30) is False
    stored = await two.get(stale.id)
    assert stored is not None and (stored.owner, stored.generation, stored.phase) == ("r2", 1, mine.phase)
    # The refused renewal did not extend r2's (lapsed) lease: a third replica can adopt.
    assert await one.adopt(copy(mine), "r3", 30) is True


async def test_the_adopter_can_save_and_renew(replicas: tuple[StateStore, StateStore]) -> None:
    one, two = replicas
    orphan = await _orphan(one)
    mine = await adopted(two, orphan, "r2", 30)
    mine.phase = "rolling out"
    await assert_live(two, mine)
    stored = await one.get(orphan.id)
    assert stored is not None and (stored.owner, stored.generation, stored.phase) == ("r2", 1, "rolling out")
    active = await one.active_on("api", "prod")
    assert active is not None and active.id == orphan.id
    # Its renewed lease is live: nobody else can adopt, and a new deploy finds it holding the target.
    assert await one.adopt(copy(mine), "r3", 30) is False
    holder = await one.claim_target(op(owner="r3"), 30)
    assert holder is not None and holder.id == orphan.id


async def test_adopting_again_bumps_the_generation_each_time(
    replicas: tuple[StateStore, StateStore],
) -> None:
    one, two = replicas
    orphan = await _orphan(one)
    second = await adopted(two, orphan, "r2", -1)
    third = await adopted(one, second, "r3", 30)
    assert (second.generation, third.generation) == (1, 2)
    stored = await two.get(orphan.id)
    assert stored is not None and (stored.owner, stored.generation) == ("r3", 2)
    # Only from the generation the adopter read: an older copy cannot adopt, even its own owner's.
    assert await two.adopt(copy(second), "r2", 30) is False
    for stale in (orphan, second):
        await assert_fenced(one, stale, renew_on=two)
    await assert_live(one, third)


async def test_the_same_owner_with_an_older_generation_is_fenced(
    replicas: tuple[StateStore, StateStore],
) -> None:
    """A replica restarted under the same id adopts its own operation; the old process is out."""
    one, two = replicas
    old = op(owner="r1")
    assert await one.claim_target(old, 30) is None
    restarted = await adopted(two, old, "r1", 30)  # its own: no need to wait for the lease
    assert (restarted.owner, restarted.generation) == ("r1", 1)
    fenced = await assert_fenced(one, old)
    assert (fenced.owner, fenced.generation) == ("r1", 1)
    await assert_live(two, restarted)


async def test_a_stale_release_leaves_the_newer_generations_claim(
    replicas: tuple[StateStore, StateStore],
) -> None:
    one, two = replicas
    stale = await _orphan(one)
    mine = await adopted(two, stale, "r2", 30)
    await one.release_target(stale)
    active = await one.active_on("api", "prod")
    assert active is not None and (active.id, active.generation) == (stale.id, 1)
    holder = await one.claim_target(op(owner="r3"), 30)
    assert holder is not None and holder.id == stale.id
    await two.release_target(mine)
    assert await one.claim_target(op(owner="r3"), 30) is None


async def test_a_record_without_an_owner_is_fenced_by_generation_only(
    replicas: tuple[StateStore, StateStore],
) -> None:
    one, two = replicas
    fresh = op(owner=None, state="pending")
    await one.save(fresh)  # a new record: always written
    await two.save(copy(fresh))
    orphan = await _orphan(one)
    ownerless = dataclasses.replace(orphan, owner=None)
    await two.save(ownerless)  # no owner condition: it may clear the owner, as before
    stored = await one.get(orphan.id)
    assert stored is not None and stored.owner is None
    assert await one.renew_claim(orphan, 30) is False  # r1's lease went with the owner
    assert await one.adopt(copy(ownerless), "r2", 30) is True
    with pytest.raises(Fenced):
        await two.save(ownerless)  # but never over a newer generation


async def test_an_operation_without_a_claim_keeps_its_lease(store: StateStore) -> None:
    task = op(action="run-task", subject="migrate")
    await store.save(task)
    assert await store.renew_claim(task, 30) is True  # run-tasks never claim their target
    assert await store.claim_target(op(owner="r2"), 30) is None
    assert await store.renew_claim(task, 30) is True
    queued = op()
    await store.save(queued)  # an auto-deploy waiting for its turn: no claim yet, still ours
    assert await store.renew_claim(queued, 30) is True
    assert await store.adopt(queued, "r3", 30) is False  # its lease holds: nobody takes it over


def test_a_record_from_before_generations_loads_at_zero() -> None:
    record = op()
    data = json.loads(record.to_json())
    del data["generation"]
    loaded = OperationRecord.from_json(json.dumps(data))
    assert loaded.generation == 0 and loaded == record


# -- locks -----------------------------------------------------------------------------------


def a_lock(holder: str = "U1", expires_at: float | None = None, env: str = "prod") -> Lock:
    return Lock("api", env, holder, f"{holder} is testing", time.time(), expires_at)


async def test_lock_returns_the_existing_active_lock(
    replicas: tuple[StateStore, StateStore],
) -> None:
    one, two = replicas
    first = a_lock("U1")
    assert await one.lock(first) is None
    assert await two.lock(a_lock("U2")) == first
    assert await two.get_lock("api", "prod") == first
    assert await one.lock(a_lock("U3", env="staging")) is None  # another target
    assert await two.unlock("api", "prod") == first
    assert await one.get_lock("api", "prod") is None
    assert await one.unlock("api", "prod") is None
    second = a_lock("U2", expires_at=time.time() + 60)
    assert await two.lock(second) is None
    assert await one.get_lock("api", "prod") == second


async def test_concurrent_lockers_exactly_one_wins(
    replicas: tuple[StateStore, StateStore],
) -> None:
    locks = [a_lock(f"U{i}") for i in range(5)]
    results = await asyncio.gather(*(replicas[i % 2].lock(lk) for i, lk in enumerate(locks)))
    assert results.count(None) == 1
    winner = locks[results.index(None)]
    assert all(r == winner for r in results if r is not None)


async def test_expired_lock_is_not_returned_and_can_be_replaced(store: StateStore) -> None:
    stale = a_lock("U1", expires_at=time.time() - 1)
    assert await store.lock(stale) is None
    assert await store.get_lock("api", "prod") is None
    fresh = a_lock("U2", expires_at=time.time() + 60)
    assert await store.lock(fresh) is None
    assert await store.get_lock("api", "prod") == fresh


async def test_lock_runs_out(store: StateStore) -> None:
    assert await store.lock(a_lock("U1", expires_at=time.time() + SHORT)) is None
    await wait_for(lambda: _unlocked(store), timeout=5.0)
    assert await store.unlock("api", "prod") is None  # removes the expired one, reports none
    replacement = a_lock("U2")
    assert await store.lock(replacement) is None
    assert await store.get_lock("api", "prod") == replacement


async def _unlocked(store: StateStore) -> bool:
    return await store.get_lock("api", "prod") is None


# -- deliveries and audit --------------------------------------------------------------------


async def test_first_delivery(replicas: tuple[StateStore, StateStore]) -> None:
    one, two = replicas
    assert await one.first_delivery("d-1") is True
    assert await two.first_delivery("d-1") is False
    assert await one.first_delivery("d-1") is False
    assert await two.first_delivery("d-2") is True
    results = await asyncio.gather(*(replicas[i % 2].first_delivery("d-3") for i in range(5)))
    assert sorted(results) == [False, False, False, False, True]


async def test_delivery_seen_again_after_it_expires(store: StateStore) -> None:
    assert await store.first_delivery("d-short", ttl_s=SHORT) is True
    await wait_for(lambda: store.first_delivery("d-short", ttl_s=60), timeout=5.0)
    assert await store.first_delivery("d-short") is False


async def test_audit_entries_newest_first(store: StateStore) -> None:
    entries_of = store.audit_entries  # type: ignore[attr-defined]
    assert await entries_of() == []
    for i in range(4):
        await store.audit({"n": i, "actor": "U1", "text": f"deploy api prod v{i}"})
    entries = await entries_of()
    assert [e["n"] for e in entries] == [3, 2, 1, 0]
    assert entries[0] == {"n": 3, "actor": "U1", "text": "deploy api prod v3"}
    assert [e["n"] for e in await entries_of(limit=2)] == [3, 2]


# -- approvals -------------------------------------------------------------------------------


def request(created_at: float) -> Approval:
    expires = time.time() + 600
    return Approval("deploy", "api", "prod", "U0REQ", "v2", 1, [], expires, "C0PROD", created_at=created_at)


async def test_open_approvals_are_the_requests_still_open_oldest_first(
    replicas: tuple[StateStore, StateStore],
) -> None:
    one, two = replicas
    now = time.time()
    later, earlier, approved = request(now - 10), request(now - 20), request(now - 30)
    for approval in (later, earlier, approved):
        await one.create_approval(approval)
    approved.state = "approved"
    assert await one.update_approval(approved)
    assert [a.id for a in await two.open_approvals()] == [earlier.id, later.id]

    earlier.state = "expired"
    assert await one.update_approval(earlier)
    (still_open,) = await two.open_approvals()
    assert still_open == dataclasses.replace(later, version=0)


# -- SQLite only -----------------------------------------------------------------------------

OLD_SQLITE_SCHEMA = """
CREATE TABLE operations (
    id TEXT PRIMARY KEY, app TEXT NOT NULL, env TEXT NOT NULL, state TEXT NOT NULL,
    owner TEXT, lease_until REAL NOT NULL DEFAULT 0, created_at REAL NOT NULL, body TEXT NOT NULL
);
CREATE INDEX operations_target ON operations (app, env, created_at);
CREATE INDEX operations_state ON operations (state);
CREATE TABLE claims (target TEXT PRIMARY KEY, op_id TEXT NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE locks (target TEXT PRIMARY KEY, body TEXT NOT NULL, expires_at REAL);
CREATE TABLE deliveries (id TEXT PRIMARY KEY, expires_at REAL NOT NULL);
CREATE TABLE audit (at REAL NOT NULL, body TEXT NOT NULL);
"""


def _old_body(record: OperationRecord) -> str:
    data = json.loads(record.to_json())
    del data["generation"]
    return json.dumps(data, sort_keys=True)


async def test_sqlite_database_from_before_generations_opens_and_fences(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    running, other = op(owner="r1"), op("web", "prod", owner="r1")
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SQLITE_SCHEMA)
        for record, lease in ((running, time.time() + 30), (other, 0.0)):
            db.execute(
                "INSERT INTO operations VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id,
                    record.app,
                    record.env,
                    "running",
                    "r1",
                    lease,
                    record.created_at,
                    _old_body(record),
                ),
            )
            db.execute("INSERT INTO claims VALUES (?, ?, ?)", (record.target_key, record.id, lease))
    db.close()
    for _ in range(2):  # the migration runs once; opening again finds the columns there
        store = SqliteStore(path)
        await store.open()
        await store.close()
    store = SqliteStore(path)
    await store.open()
    try:
        loaded = await store.get(running.id)
        assert loaded is not None and (loaded.owner, loaded.generation) == ("r1", 0)
        assert await store.renew_claim(loaded, 30) is True
        loaded.phase = "rolling out"
        await store.save(loaded)
        holder = await store.claim_target(op(owner="r2"), 30)
        assert holder is not None and holder.id == running.id
        orphan = await store.get(other.id)
        assert orphan is not None
        assert await store.adopt(orphan, "r2", 30) is True and orphan.generation == 1
        with pytest.raises(Fenced):
            await store.save(copy(other))
        assert {r.id for r in await store.unfinished()} == {running.id, other.id}
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        for table in ("operations", "claims"):
            assert "generation" in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
    db.close()


async def test_sqlite_approvals_from_before_their_state_column_are_listed_by_their_body(
    tmp_path: Path,
) -> None:
    path = tmp_path / "approvals.db"
    waiting, settled = request(time.time() - 20), request(time.time() - 10)
    settled.state = "cancelled"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE approvals (id TEXT PRIMARY KEY, version INTEGER NOT NULL, body TEXT NOT NULL)"
        )
        for approval in (waiting, settled):
            db.execute("INSERT INTO approvals VALUES (?, 0, ?)", (approval.id, approval.to_json()))
    db.close()
    store = SqliteStore(path)
    await store.open()
    try:
        assert [a.id for a in await store.open_approvals()] == [waiting.id]
        waiting.state = "expired"
        assert await store.update_approval(waiting)
        assert await store.open_approvals() == []
    finally:
        await store.close()


# -- DynamoDB only ---------------------------------------------------------------------------


async def test_dynamo_open_names_a_missing_table(moto_endpoint: str) -> None:
    store = dynamo(moto_endpoint, "tugboat-missing")
    with pytest.raises(StoreUnavailable, match="tugboat-missing"):
        await store.open()
    await store.close()


async def new_table(endpoint: str) -> tuple[str, DynamoStore, Any]:
    """A new table's name, the store that created it, and a plain boto3 client on `endpoint`."""
    table = f"tugboat-{uuid.uuid4().hex[:12]}"
    store = dynamo(endpoint, table)
    await store.create_table()
    client = boto3.session.Session().client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    return table, store, client


async def test_dynamo_create_table_is_idempotent_with_ttl(moto_endpoint: str) -> None:
    table, store, client = await new_table(moto_endpoint)
    await store.create_table()
    await store.open()
    ttl = client.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires_at")
    described = client.describe_table(TableName=table)["Table"]
    assert described["TableStatus"] == "ACTIVE"
    assert described["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    await store.close()


async def test_dynamo_items_from_before_generations_count_as_zero(moto_endpoint: str) -> None:
    table, store, client = await new_table(moto_endpoint)
    await store.open()
    record = op(owner="r1")
    lease = time.time() + 30
    client.put_item(
        TableName=table,
        Item={
            "pk": {"S": f"op#{record.id}"},
            "sk": {"S": "op"},
            "body": {"S": _old_body(record)},
            "state": {"S": "running"},
            "owner": {"S": "r1"},
            "lease_until": {"N": repr(lease)},
            "app": {"S": "api"},
            "env": {"S": "prod"},
            "op_target": {"S": record.target_key},
            "op_created": {"N": repr(record.created_at)},
        },
    )
    client.put_item(
        TableName=table,
        Item={
            "pk": {"S": f"claim#{record.target_key}"},
            "sk": {"S": "claim"},
            "op_id": {"S": record.id},
            "lease_until": {"N": repr(lease)},
            "body": {"S": _old_body(record)},
        },
    )
    try:
        loaded = await store.get(record.id)
        assert loaded is not None and loaded.generation == 0
        assert await store.renew_claim(loaded, 30) is True
        await store.save(loaded)
        assert await store.adopt(copy(loaded), "r1", 30) is True  # its own owner, after a restart
        with pytest.raises(Fenced) as fenced:
            await store.save(loaded)
        assert (fenced.value.owner, fenced.value.generation) == ("r1", 1)
    finally:
        await store.close()
