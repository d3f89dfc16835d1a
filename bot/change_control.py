"""Change control over the state store: freeze refusals, and four-eyes approvals.

The values and the one counting rule are in `bot.domain.approvals` and `bot.domain.freezes`;
this module keeps approval requests in the store, so a press counts once whichever replica
takes it (each write is conditional on the version read), and audits every press, refusal and
expiry. It knows nothing of Slack: cards are the `Front`'s business.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from bot.domain.approvals import Approval, ApprovalRule, press
from bot.domain.catalog import Catalog
from bot.domain.freezes import FreezeWindow, active, when
from bot.domain.records import Target
from bot.domain.text import Span, Text, code, emoji, text
from bot.lifecycle import AuditTrail, Origin, TaskTracker
from bot.state import StateStore

log = logging.getLogger(__name__)

ExpiryHook = Callable[[Approval], Awaitable[None]]
"""What happens once a request expired by itself (its card says so)."""
Settled = Literal["cancelled", "expired", "superseded"]

MAX_RACES = 20
"""Presses that lost a race are judged again on what won; this many in a row is a fault."""


# -- freezes -------------------------------------------------------------------------------


def freeze_of(catalog: Catalog, target: Target, now: float | None = None) -> FreezeWindow | None:
    """The freeze window holding on `target` now, if any."""
    _, env = catalog.target(target.app, target.env)
    if not env.freeze:
        return None
    at = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    return active(env.freeze, env.timezone, at)


def frozen_text(catalog: Catalog, target: Target, window: FreezeWindow, *, forcible: bool = False) -> Text:
    """A freeze, as every refusal, skipped auto-deploy and status card words it."""
    _, env = catalog.target(target.app, target.env)
    hint = text(" (", code('--force "REASON"'), " deploys anyway.)") if forcible else text()
    return text(
        emoji("snowflake"),
        f" {target} is frozen until {when(window.ends, env.timezone)}: ",
        window.reason,
        ".",
        hint,
    )


# -- approvals -----------------------------------------------------------------------------


class Approvers(Protocol):
    """Who may approve: `groups` when the rule names some, else whoever may act on the target."""

    async def may_approve(
        self, target: Target, actor: str, channel: str | None, groups: list[str]
    ) -> Text | None: ...


Verdict = Literal["counted", "approved", "own", "twice", "closed", "expired", "denied", "unknown"]


@dataclass(frozen=True)
class Pressed:
    """What one press did, and the request as it stands after it (None: no such request)."""

    verdict: Verdict
    approval: Approval | None
    refusal: Text | None = None


def dump_lines(lines: list[Text]) -> list[list[list[str]]]:
    """A card's plan lines as JSON (kept in the request, so any replica can redraw the card)."""
    return [[[s.kind, s.value, s.extra, s.style] for s in line.spans] for line in lines]


def load_lines(data: object) -> list[Text]:
    lines: list[Text] = []
    for line in data if isinstance(data, list) else []:
        spans = tuple(Span(kind, value, extra, style) for kind, value, extra, style in line)
        lines.append(Text(spans))
    return lines


def plan_lines(approval: Approval) -> list[Text]:
    """The plan a request's card shows, as it was pinned when the request was opened."""
    return load_lines(approval.plan.get("lines"))


class ApprovalDesk:
    """Opens, counts, cancels, supersedes and expires approval requests, in the shared store."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        store: StateStore,
        audit: AuditTrail,
        approvers: Approvers,
    ) -> None:
        self.catalog = catalog
        self.store = store
        self.audit = audit
        self.approvers = approvers
        self.timers = TaskTracker()
        """Expiry timers: tracked, but apart from the work `Tugboat.idle` waits for."""
        self._armed: set[str] = set()
        """Requests with an expiry timer on this replica (one each)."""

    def rule(self, target: Target, action: str) -> ApprovalRule | None:
        """The environment's approval rule when it covers `action`; None when none is needed."""
        _, env = self.catalog.target(target.app, target.env)
        rule = env.approval
        return rule if rule is not None and rule.covers(action) else None

    async def open(
        self,
        rule: ApprovalRule,
        action: str,
        target: Target,
        origin: Origin,
        *,
        subject: str,
        plan: dict[str, object],
        lines: list[Text],
    ) -> Approval:
        """Store a new request; the caller posts its card and saves `ts` with `placed`."""
        _, env = self.catalog.target(target.app, target.env)
        approval = Approval(
            action=action,
            app=target.app,
            env=target.env,
            requester=origin.actor,
            subject=subject,
            required=rule.required,
            groups=list(rule.groups),
            expires_at=time.time() + rule.timeout,
            channel=env.channel or origin.channel,
            origin_channel=origin.channel or env.channel or "",
            trigger=origin.trigger,
            plan={**plan, "lines": dump_lines(lines)},
        )
        await self.store.create_approval(approval)
        await self.audit.write(origin, f"{action} requested", target, f"awaiting approval {approval.id}")
        return approval

    async def placed(self, approval: Approval, ts: str | None) -> None:
        """Remember where the card is, so every replica can redraw it."""
        await self._amend(approval, lambda current: setattr(current, "ts", ts))

    async def _amend(self, approval: Approval, change: Callable[[Approval], None]) -> None:
        """Apply `change` and write it; after a lost race, to what won (read again into `approval`)."""
        for _ in range(MAX_RACES):
            change(approval)
            if await self.store.update_approval(approval):
                return
            fresh = await self.store.get_approval(approval.id)
            if fresh is None:
                return
            for name, value in vars(fresh).items():  # the caller's object follows the store
                setattr(approval, name, value)

    async def press(self, approval_id: str, origin: Origin) -> Pressed:
        """One Approve press: judged on the stored request, written only if nobody wrote first."""
        for _ in range(MAX_RACES):
            approval = await self.store.get_approval(approval_id)
            if approval is None:
                return Pressed("unknown", None)
            if approval.state == "open" and not approval.expired() and origin.actor != approval.requester:
                refusal = await self.approvers.may_approve(
                    approval.target, origin.actor, origin.channel, approval.groups
                )
                if refusal is not None:
                    await self.audit.write(origin, "approve refused", approval.target, refusal)
                    return Pressed("denied", approval, refusal)
            verdict = press(approval, origin.actor)
            changed = verdict in ("counted", "approved", "expired")
            if changed and not await self.store.update_approval(approval):
                continue  # another press (maybe on another replica) came first: judge again
            await self._audit_press(origin, approval, verdict)
            return Pressed(verdict, approval)
        raise RuntimeError(f"approval {approval_id} kept changing under us")

    async def _audit_press(self, origin: Origin, approval: Approval, verdict: Verdict) -> None:
        said = {
            "counted": f"counted; {approval.awaiting} more needed",
            "approved": "approved by " + ", ".join(approval.approvers),
            "own": "refused: the requester cannot approve their own request",
            "twice": "refused: already approved by this user",
            "closed": f"refused: the request is {approval.state}",
            "expired": "refused: the request expired",
        }
        what = "approve" if verdict in ("counted", "approved") else "approve refused"
        await self.audit.write(origin, what, approval.target, f"{approval.id}: {said.get(verdict, verdict)}")

    async def settle(self, approval: Approval, state: Settled, outcome: str) -> bool:
        """Close an open request (cancelled, expired, superseded); False when it was no longer open."""
        for _ in range(MAX_RACES):
            if approval.state != "open":
                return False
            approval.state, approval.outcome = state, outcome
            if await self.store.update_approval(approval):
                return True
            fresh = await self.store.get_approval(approval.id)
            if fresh is None:
                return False
            approval = fresh
        return False

    async def record_outcome(self, approval: Approval, outcome: str) -> None:
        """What became of an approved request (ran, or refused because the target changed)."""
        await self._amend(approval, lambda current: setattr(current, "outcome", outcome))

    def expire_later(self, approval: Approval, on_expiry: ExpiryHook) -> None:
        """Close the request when its time is up, and let the card say so (a tracked timer)."""
        if approval.id in self._armed:
            return
        self._armed.add(approval.id)
        self.timers.spawn(
            self._expire_at_timeout(approval.id, approval.expires_at, on_expiry), "approval-expiry"
        )

    async def rearm(self, on_expiry: ExpiryHook) -> int:
        """Arm the expiry of every open request (one another replica posted, or one from before a
        restart); how many were new here. Every replica may time the same request: the
        versioned write lets one of them expire it."""
        fresh = [a for a in await self.store.open_approvals() if a.id not in self._armed]
        for approval in fresh:
            self.expire_later(approval, on_expiry)
        return len(fresh)

    async def _expire_at_timeout(self, approval_id: str, at: float, on_expiry: ExpiryHook) -> None:
        try:
            await asyncio.sleep(max(0.0, at - time.time()))
            approval = await self.store.get_approval(approval_id)
            if approval is None or approval.state != "open":
                return
            if not await self.settle(approval, "expired", "expired: nothing ran"):
                return  # settled meanwhile: pressed, cancelled, or expired by another replica
            origin = Origin("tugboat", approval.channel, "timeout")
            await self.audit.write(origin, "approval expired", approval.target, f"{approval.id}: nothing ran")
            await on_expiry(approval)
        finally:
            self._armed.discard(approval_id)

    async def supersede(
        self, target: Target, kind: Callable[[Approval], bool], said: Callable[[Approval], Text]
    ) -> list[tuple[Approval, Text]]:
        """Close every open request of `kind` on `target` but the newest, with `said(newest)`;
        the ones this call closed. Any replica may sweep: the versioned write closes each once."""
        mine = [a for a in await self.store.open_approvals() if a.target == target and kind(a)]
        if len(mine) < 2:
            return []
        newest = max(mine, key=lambda a: (a.created_at, a.id))
        outcome = said(newest)
        closed: list[tuple[Approval, Text]] = []
        for older in mine:
            if older is newest or not await self.settle(older, "superseded", str(outcome)):
                continue
            origin = Origin("tugboat", older.channel, "superseded")
            await self.audit.write(
                origin, "approval superseded", target, f"{older.id}: by {newest.id} ({newest.subject})"
            )
            closed.append((older, outcome))
        return closed

    async def stop(self, timeout: float = 1.0) -> None:
        """Drop the expiry timers; the next replica to start (or each one's takeover pass)
        arms them again, and a press on an expired request is refused meanwhile."""
        await self.timers.cancel_all(timeout)
        self._armed.clear()
