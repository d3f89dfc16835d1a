"""DynamoDB state store: one table shared by every replica (`TUGBOAT_STATE=dynamodb://TABLE`).

Exclusivity comes from single-item conditional writes (never transactions), so each
check-and-set is atomic on DynamoDB itself. Single-table layout, keys `pk`/`sk` (strings):

    op#<id>            / op        body (JSON), state, owner, generation, lease_until, op_target,
                                   op_created
    claim#<app>/<env>  / claim     op_id, generation, lease_until, body (the holder as claimed)
    lock#<app>/<env>   / lock      body (JSON), expires_at (absent: held until unlocked)
    delivery#<id>      / delivery  expires_at
    audit#<yyyy-mm-dd> / <at>#<id> body (JSON), at   (UTC day; sk sorts by time)
    audit#meta         / first     first_day (where audit_entries stops walking back)
    approval#<id>      / approval  body (JSON), version, state, expires_at (a week after the
                                   request's)

GSI `by_target` (op_target S, op_created N, projection ALL) serves history(); unfinished()
is a filtered scan of the whole table, run at start and by each replica's takeover loop
every third of a lease (a sparse index of running operations would spare it; not done yet);
open_approvals() is one too, run at the same times.
TTL on `expires_at` lets DynamoDB drop old locks and deliveries; reads still check it,
since expired items linger for up to a few days.
Claims use `lease_until`, not the TTL attribute: like SqliteStore, active_on() keeps
reporting a running operation whose owner died until it is adopted or finished.
Every write of an existing operation is conditional on its owner and `generation` (bumped by
each adoption), so a replica that lost its lease gets Fenced instead of overwriting the
adopter's record. Items written before `generation` existed lack it: they count as 0.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from bot.domain.approvals import Approval
from bot.domain.records import Lock, OperationRecord, new_id
from bot.state.base import Fenced

# botocore is the store's one retry layer (DynamoStore has no loop of its own): throttling,
# 5xx and dropped connections get its full-jitter backoff, six attempts in all.
BOTO_CONFIG = Config(retries={"mode": "standard", "total_max_attempts": 6})
INDEX = "by_target"
TTL_ATTRIBUTE = "expires_at"
APPROVAL_KEPT_S = 7 * 86_400
"""How long a settled or expired approval request stays readable (its card may still be pressed)."""
# Each retry of a check-and-set loop follows a change someone else made; this many in a row
# means something is wrong rather than busy.
MAX_RACES = 20

AttrValue = dict[str, str]
Item = dict[str, AttrValue]


class StoreUnavailable(Exception):
    """The DynamoDB table cannot be used (missing, wrong shape, or AWS unreachable)."""


def _s(value: str) -> AttrValue:
    return {"S": value}


def _n(value: float) -> AttrValue:
    return {"N": repr(float(value))}


def _key(pk: str, sk: str) -> Item:
    return {"pk": _s(pk), "sk": _s(sk)}


def _str(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name)
    return str(value["S"]) if isinstance(value, dict) and "S" in value else None


def _float(item: dict[str, Any], name: str) -> float | None:
    value = item.get(name)
    return float(value["N"]) if isinstance(value, dict) and "N" in value else None


def _generation(item: dict[str, Any]) -> int:
    """An item's lease generation; items from before generations existed are at 0."""
    value = item.get("generation")
    return int(value["N"]) if isinstance(value, dict) and "N" in value else 0


def _gen(value: int) -> AttrValue:
    return {"N": str(value)}


def _generation_is(placeholder: str, generation: int) -> str:
    """The condition "stored generation == `generation`", a missing one counting as 0."""
    if generation == 0:
        return f"(attribute_not_exists(generation) OR generation = {placeholder})"
    return f"generation = {placeholder}"


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def _op_key(op_id: str) -> Item:
    return _key(f"op#{op_id}", "op")


def _claim_key(target: str) -> Item:
    return _key(f"claim#{target}", "claim")


def _lock_key(app: str, env: str) -> Item:
    return _key(f"lock#{app}/{env}", "lock")


def _record(item: dict[str, Any]) -> OperationRecord | None:
    body = _str(item, "body")
    return OperationRecord.from_json(body) if body is not None else None


def _lock_from(item: dict[str, Any]) -> Lock | None:
    body = _str(item, "body")
    if body is None:
        return None
    lock = Lock.from_json(body)
    return lock if lock.active() else None


def _day(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d")


def _default_client(region: str | None) -> Any:
    """A fresh session per store: boto3 sessions are not thread-safe, clients are."""
    session = boto3.session.Session(region_name=region)
    return session.client("dynamodb", config=BOTO_CONFIG)


class DynamoStore:
    """StateStore on one DynamoDB table, safe to share between any number of replicas."""

    def __init__(
        self,
        table: str,
        *,
        region: str | None = None,
        client_factory: Callable[[], Any] | None = None,
    ) -> None:
        self.table = table
        self._factory: Callable[[], Any] = client_factory or (lambda: _default_client(region))
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="dynamodb")
        self._audit_meta_written = False

    # -- plumbing --------------------------------------------------------------------------

    def _get_client(self) -> Any:
        with self._client_lock:
            if self._client is None:
                self._client = self._factory()
            return self._client

    async def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        """Run one boto3 call on the store's threads; the event loop never blocks on AWS."""

        def in_thread() -> dict[str, Any]:
            result = getattr(self._get_client(), operation)(TableName=self.table, **kwargs)
            return dict(result)

        return await asyncio.get_running_loop().run_in_executor(self._pool, in_thread)

    async def _try(self, operation: str, **kwargs: Any) -> dict[str, Any] | None:
        """A conditional write: its response, or None when the condition did not hold."""
        try:
            return await self._call(operation, **kwargs)
        except ClientError as exc:
            if _error_code(exc) == "ConditionalCheckFailedException":
                return None
            raise

    async def _get_item(self, key: Item) -> dict[str, Any] | None:
        response = await self._call("get_item", Key=key, ConsistentRead=True)
        item = response.get("Item")
        return dict(item) if item else None

    async def _describe(self) -> dict[str, Any]:
        response = await self._call("describe_table")
        return dict(response["Table"])

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Check the table is there and has our index; creating it is `tugboat init-state`."""
        try:
            table = await self._describe()
        except ClientError as exc:
            if _error_code(exc) == "ResourceNotFoundException":
                raise StoreUnavailable(
                    f"DynamoDB table {self.table!r} does not exist; create it with `tugboat init-state`"
                ) from exc
            raise StoreUnavailable(
                f"cannot use DynamoDB table {self.table!r}: {_error_code(exc)}: {exc}"
            ) from exc
        except BotoCoreError as exc:
            raise StoreUnavailable(f"cannot reach DynamoDB table {self.table!r}: {exc}") from exc
        indexes = {i.get("IndexName") for i in table.get("GlobalSecondaryIndexes", [])}
        if INDEX not in indexes:
            raise StoreUnavailable(
                f"DynamoDB table {self.table!r} has no {INDEX!r} index;"
                " was it created by `tugboat init-state`?"
            )

    async def close(self) -> None:
        def disconnect() -> None:
            with self._client_lock:
                if self._client is not None:
                    self._client.close()
                    self._client = None

        await asyncio.get_running_loop().run_in_executor(self._pool, disconnect)
        self._pool.shutdown(wait=True)

    async def create_table(self) -> None:
        """Create the table, its index and TTL if missing; safe to run again on a live table."""
        try:
            await self._call(
                "create_table",
                BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=[
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                    {"AttributeName": "op_target", "AttributeType": "S"},
                    {"AttributeName": "op_created", "AttributeType": "N"},
                ],
                KeySchema=[
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                GlobalSecondaryIndexes=[
                    {
                        "IndexName": INDEX,
                        "KeySchema": [
                            {"AttributeName": "op_target", "KeyType": "HASH"},
                            {"AttributeName": "op_created", "KeyType": "RANGE"},
                        ],
                        "Projection": {"ProjectionType": "ALL"},
                    }
                ],
            )
        except ClientError as exc:
            if _error_code(exc) != "ResourceInUseException":
                raise

        def wait_active() -> None:
            waiter = self._get_client().get_waiter("table_exists")
            waiter.wait(TableName=self.table, WaiterConfig={"Delay": 2, "MaxAttempts": 90})

        await asyncio.get_running_loop().run_in_executor(self._pool, wait_active)
        ttl = await self._call("describe_time_to_live")
        status = ttl.get("TimeToLiveDescription", {}).get("TimeToLiveStatus")
        if status not in ("ENABLED", "ENABLING"):
            await self._call(
                "update_time_to_live",
                TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
            )

    # -- operations ------------------------------------------------------------------------

    async def _put(self, record: OperationRecord, lease_until: float | None = None) -> None:
        """Write the record, fenced as StateStore.save says; a None lease keeps the stored one.

        A new record starts with lease 0: adoptable until its first claim or renewal.
        """
        record.updated_at = time.time()
        sets = [
            "body = :body",
            "#state = :state",
            "app = :app",
            "env = :env",
            "op_target = :target",
            "op_created = :created",
            "generation = :gen",
        ]
        values: Item = {
            ":body": _s(record.to_json()),
            ":state": _s(record.state),
            ":app": _s(record.app),
            ":env": _s(record.env),
            ":target": _s(record.target_key),
            ":created": _n(record.created_at),
            ":gen": _gen(record.generation),
        }
        fence = _generation_is(":gen", record.generation)
        if lease_until is None:
            sets.append("lease_until = if_not_exists(lease_until, :zero)")
            values[":zero"] = _n(0)
        else:
            sets.append("lease_until = :lease")
            values[":lease"] = _n(lease_until)
        expression = "SET " + ", ".join(sets)
        if record.owner is None:
            expression += " REMOVE #owner"
        else:
            expression = expression.replace("SET ", "SET #owner = :owner, ", 1)
            values[":owner"] = _s(record.owner)
            fence = f"(#owner = :owner AND {fence})"  # DynamoDB refuses redundant parentheses
        await self._fenced(
            record.id,
            "update_item",
            Key=_op_key(record.id),
            UpdateExpression=expression,
            ConditionExpression=f"attribute_not_exists(pk) OR {fence}",
            ExpressionAttributeNames={"#state": "state", "#owner": "owner"},
            ExpressionAttributeValues=values,
        )

    async def _fenced(self, op_id: str, operation: str, **kwargs: Any) -> dict[str, Any]:
        """A write fenced on the operation's owner and generation: Fenced when refused."""
        try:
            return await self._call(operation, ReturnValuesOnConditionCheckFailure="ALL_OLD", **kwargs)
        except ClientError as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise
            held = exc.response.get("Item")
            if held is None:  # not every DynamoDB look-alike returns the item
                held = await self._get_item(_op_key(op_id))
            if held is None:
                raise Fenced(op_id) from exc
            raise Fenced(op_id, _str(held, "owner"), _generation(held)) from exc

    def _claim_item(self, record: OperationRecord, lease_until: float) -> Item:
        return {
            **_claim_key(record.target_key),
            "op_id": _s(record.id),
            "generation": _gen(record.generation),
            "lease_until": _n(lease_until),
            "body": _s(record.to_json()),
        }

    async def _holder(self, claim: dict[str, Any]) -> OperationRecord | None:
        """The claim's operation; the claim's own copy while its record is being written."""
        op_id = _str(claim, "op_id")
        held = await self.get(op_id) if op_id else None
        return held if held is not None else _record(claim)

    async def _take_claim(self, record: OperationRecord, until: float) -> OperationRecord | None:
        """Point the target's claim at `record` unless another live operation holds it."""
        stale: str | None = None
        for _ in range(MAX_RACES):
            # Our own claim only from our generation or an older one: never the adopter's.
            condition = (
                "attribute_not_exists(pk) OR lease_until <= :now"
                " OR (op_id = :id AND (attribute_not_exists(generation) OR generation <= :gen))"
            )
            values: Item = {
                ":now": _n(time.time()),
                ":id": _s(record.id),
                ":gen": _gen(record.generation),
            }
            if stale is not None:
                condition += " OR op_id = :stale"
                values[":stale"] = _s(stale)
            taken = await self._try(
                "put_item",
                Item=self._claim_item(record, until),
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
            )
            if taken is not None:
                return None
            stale = None
            claim = await self._get_item(_claim_key(record.target_key))
            if claim is None or (_float(claim, "lease_until") or 0) <= time.time():
                continue
            held = await self._holder(claim)
            if held is None or held.finished:
                stale = _str(claim, "op_id")
                continue
            if held.id != record.id:
                return held
            if _generation(claim) > record.generation:
                raise Fenced(record.id, held.owner, _generation(claim))
        raise StoreUnavailable(f"claim on {record.target_key} kept changing under us")

    async def claim_target(self, record: OperationRecord, lease_s: float) -> OperationRecord | None:
        """Claim first, then write the record: a loser always finds a holder to report."""
        until = time.time() + lease_s
        holder = await self._take_claim(record, until)
        if holder is None:
            await self._put(record, until)
        return holder

    async def renew_claim(self, record: OperationRecord, lease_s: float) -> bool:
        """The operation's lease first, fenced; then its claim, if it still holds it."""
        until = time.time() + lease_s
        values: Item = {":until": _n(until), ":gen": _gen(record.generation)}
        if record.owner is None:
            owned = "attribute_not_exists(#owner)"
        else:
            owned, values[":owner"] = "#owner = :owner", _s(record.owner)
        mine = await self._try(
            "update_item",
            Key=_op_key(record.id),
            UpdateExpression="SET lease_until = :until",
            ConditionExpression=f"attribute_exists(pk) AND {owned} AND "
            + _generation_is(":gen", record.generation),
            ExpressionAttributeNames={"#owner": "owner"},
            ExpressionAttributeValues=values,
        )
        if mine is None:
            return False  # adopted by someone else (or by a newer us), or never saved
        await self._try(
            "update_item",
            Key=_claim_key(record.target_key),
            UpdateExpression="SET lease_until = :until, generation = :gen",
            ConditionExpression="op_id = :id AND (attribute_not_exists(generation) OR generation <= :gen)",
            ExpressionAttributeValues={
                ":until": _n(until),
                ":id": _s(record.id),
                ":gen": _gen(record.generation),
            },
        )
        return True  # the claim, where held, went with it

    async def release_target(self, record: OperationRecord) -> None:
        await self._try(
            "delete_item",
            Key=_claim_key(record.target_key),
            ConditionExpression="op_id = :id AND (attribute_not_exists(generation) OR generation <= :gen)",
            ExpressionAttributeValues={":id": _s(record.id), ":gen": _gen(record.generation)},
        )

    async def active_on(self, app: str, env: str) -> OperationRecord | None:
        claim = await self._get_item(_claim_key(f"{app}/{env}"))
        if claim is None:
            return None
        held = await self._holder(claim)
        return held if held is not None and not held.finished else None

    async def save(self, record: OperationRecord) -> None:
        await self._put(record)  # fenced: see _put

    async def get(self, op_id: str) -> OperationRecord | None:
        item = await self._get_item(_op_key(op_id))
        return _record(item) if item else None

    async def unfinished(self) -> list[OperationRecord]:
        items = await self._scan(
            "begins_with(pk, :op) AND #state = :running", {":op": _s("op#"), ":running": _s("running")}
        )
        records = (r for r in map(_record, items) if r is not None)
        return sorted(records, key=lambda r: r.created_at)

    async def _scan(self, where: str, values: dict[str, Any]) -> list[dict[str, Any]]:
        """Every item `where` holds for (a consistent, filtered scan, page after page);
        `#state` in `where` names the `state` attribute."""
        items: list[dict[str, Any]] = []
        start: dict[str, Any] | None = None
        while True:
            page = await self._call(
                "scan",
                ConsistentRead=True,
                FilterExpression=where,
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=values,
                **({"ExclusiveStartKey": start} if start else {}),
            )
            items.extend(page.get("Items", []))
            start = page.get("LastEvaluatedKey")
            if not start:
                return items

    async def adopt(self, record: OperationRecord, owner: str, lease_s: float) -> bool:
        now = time.time()
        until = now + lease_s
        adopted = dataclasses.replace(record, owner=owner, generation=record.generation + 1, updated_at=now)
        try:
            await self._call(
                "update_item",
                Key=_op_key(record.id),
                UpdateExpression="SET #owner = :owner, generation = :next, lease_until = :until,"
                " body = :body, #state = :state",
                ConditionExpression="#state = :running AND"
                " (lease_until < :now OR #owner = :owner OR attribute_not_exists(#owner)) AND "
                + _generation_is(":gen", record.generation),
                ExpressionAttributeNames={"#state": "state", "#owner": "owner"},
                ExpressionAttributeValues={
                    ":owner": _s(owner),
                    ":gen": _gen(record.generation),
                    ":next": _gen(adopted.generation),
                    ":until": _n(until),
                    ":body": _s(adopted.to_json()),
                    ":state": _s(adopted.state),
                    ":running": _s("running"),
                    ":now": _n(now),
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise
            # botocore retries a write whose answer was lost: the retry then finds our own
            # adoption already done, which is a success.
            held = exc.response.get("Item") or {}
            ours = (_str(held, "owner"), _generation(held), _float(held, "lease_until"))
            if ours != (owner, adopted.generation, until):
                return False
        # The claim too, unless another live operation took the target after our lease ran
        # out (SqliteStore takes it regardless, which lets a third operation start later).
        try:
            await self._take_claim(adopted, until)
        except Fenced:
            return False  # adopted again meanwhile, by a newer generation
        record.owner, record.generation, record.updated_at = owner, adopted.generation, adopted.updated_at
        return True

    async def history(self, app: str, env: str, limit: int = 10) -> list[OperationRecord]:
        """Newest first, from the by_target index (eventually consistent on real DynamoDB)."""
        records: list[OperationRecord] = []
        start: dict[str, Any] | None = None
        while len(records) < limit:
            page = await self._call(
                "query",
                IndexName=INDEX,
                KeyConditionExpression="op_target = :target",
                ExpressionAttributeValues={":target": _s(f"{app}/{env}")},
                ScanIndexForward=False,
                Limit=limit - len(records),
                **({"ExclusiveStartKey": start} if start else {}),
            )
            records.extend(r for r in map(_record, page.get("Items", [])) if r is not None)
            start = page.get("LastEvaluatedKey")
            if not start:
                break
        return records[: max(limit, 0)]

    # -- locks, deliveries, audit ----------------------------------------------------------

    async def lock(self, lock: Lock) -> Lock | None:
        item: Item = {
            **_lock_key(lock.app, lock.env),
            "body": _s(lock.to_json()),
        }
        if lock.expires_at is not None:
            item[TTL_ATTRIBUTE] = _n(lock.expires_at)
        for _ in range(MAX_RACES):
            taken = await self._try(
                "put_item",
                Item=item,
                ConditionExpression="attribute_not_exists(pk) OR expires_at <= :now",
                ExpressionAttributeValues={":now": _n(time.time())},
            )
            if taken is not None:
                return None
            existing = await self.get_lock(lock.app, lock.env)
            if existing is not None:
                return existing
        raise StoreUnavailable(f"lock on {lock.app}/{lock.env} kept changing under us")

    async def unlock(self, app: str, env: str) -> Lock | None:
        response = await self._call("delete_item", Key=_lock_key(app, env), ReturnValues="ALL_OLD")
        old = response.get("Attributes")
        return _lock_from(old) if old else None

    async def get_lock(self, app: str, env: str) -> Lock | None:
        item = await self._get_item(_lock_key(app, env))
        return _lock_from(item) if item else None

    async def first_delivery(self, delivery_id: str, ttl_s: float = 7 * 86_400) -> bool:
        now = time.time()
        first = await self._try(
            "put_item",
            Item={**_key(f"delivery#{delivery_id}", "delivery"), TTL_ATTRIBUTE: _n(now + ttl_s)},
            ConditionExpression="attribute_not_exists(pk) OR expires_at < :now",
            ExpressionAttributeValues={":now": _n(now)},
        )
        return first is not None

    async def audit(self, entry: dict[str, Any]) -> None:
        at = time.time()
        if not self._audit_meta_written:
            # Marks where audit_entries can stop walking back through days.
            await self._call(
                "update_item",
                Key=_key("audit#meta", "first"),
                UpdateExpression="SET first_day = if_not_exists(first_day, :day)",
                ExpressionAttributeValues={":day": _s(_day(at))},
            )
            self._audit_meta_written = True
        await self._call(
            "put_item",
            Item={
                **_key(f"audit#{_day(at)}", f"{at:017.6f}#{new_id()}"),
                "body": _s(json.dumps(entry)),
                "at": _n(at),
            },
        )

    # -- approvals -------------------------------------------------------------------------

    def _approval_item(self, approval: Approval) -> Item:
        return {
            **_key(f"approval#{approval.id}", "approval"),
            "body": _s(approval.to_json()),
            "version": _gen(approval.version),
            "state": _s(approval.state),
            TTL_ATTRIBUTE: _n(approval.expires_at + APPROVAL_KEPT_S),
        }

    async def create_approval(self, approval: Approval) -> None:
        await self._call(
            "put_item",
            Item=self._approval_item(approval),
            ConditionExpression="attribute_not_exists(pk)",
        )

    async def get_approval(self, approval_id: str) -> Approval | None:
        item = await self._get_item(_key(f"approval#{approval_id}", "approval"))
        body = _str(item, "body") if item else None
        return Approval.from_json(body) if body is not None else None

    async def open_approvals(self) -> list[Approval]:
        """A filtered scan; items written before `state` was kept are judged by their body."""
        items = await self._scan(
            "begins_with(pk, :approval) AND (#state = :open OR attribute_not_exists(#state))",
            {":approval": _s("approval#"), ":open": _s("open")},
        )
        bodies = (_str(item, "body") for item in items)
        found = (Approval.from_json(body) for body in bodies if body is not None)
        return sorted((a for a in found if a.state == "open"), key=lambda a: a.created_at)

    async def update_approval(self, approval: Approval) -> bool:
        """One conditional put on the version read: a press another replica counted first wins."""
        written = dataclasses.replace(approval, version=approval.version + 1)
        done = await self._try(
            "put_item",
            Item=self._approval_item(written),
            ConditionExpression="version = :read",
            ExpressionAttributeValues={":read": _gen(approval.version)},
        )
        if done is None:
            return False
        approval.version = written.version
        return True

    async def audit_entries(self, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first: one query per UTC day, back to the first day anything was audited."""
        meta = await self._get_item(_key("audit#meta", "first"))
        first_day = _str(meta, "first_day") if meta else None
        entries: list[dict[str, Any]] = []
        if first_day is None or limit <= 0:
            return entries
        # Start a day ahead: another replica's clock may already be past midnight.
        day = datetime.now(UTC) + timedelta(days=1)
        while len(entries) < limit and _day(day.timestamp()) >= first_day:
            start: dict[str, Any] | None = None
            while len(entries) < limit:
                page = await self._call(
                    "query",
                    KeyConditionExpression="pk = :pk",
                    ExpressionAttributeValues={":pk": _s(f"audit#{_day(day.timestamp())}")},
                    ScanIndexForward=False,
                    ConsistentRead=True,
                    Limit=limit - len(entries),
                    **({"ExclusiveStartKey": start} if start else {}),
                )
                for item in page.get("Items", []):
                    body = _str(item, "body")
                    if body is not None:
                        entries.append(json.loads(body))
                start = page.get("LastEvaluatedKey")
                if not start:
                    break
            day -= timedelta(days=1)
        return entries
