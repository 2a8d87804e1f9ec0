"""The notification outbox (提醒子女等亲属): the SQL of queueing reminders and sending them.

Part of the follow-ups' store (:mod:`gridmap.followups.store` re-exports these): opening a
hazard or an emergency referral queues a reminder to the elder's first contact in the same
transaction; :func:`send_queued` (``gridmap jobs run`` and the server's scheduler) sends them
through a gateway (:mod:`gridmap.followups.notify`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, select, update

from gridmap.domain.enums import HazardKind
from gridmap.rules.config import Rules
from gridmap.store.models import FirstContact, Notification

if TYPE_CHECKING:
    import pandas as pd


def reminder_text_hazard(kind: HazardKind, owner: str | None, reopened: bool) -> str:
    again = "再次" if reopened else ""
    return (f"【探访关爱提醒】您关注的老人家中{again}发现{HazardKind(kind).label}隐患，"
            f"已转{owner or '责任单位'}整改。请多关注老人居家安全，配合整改。")


EMERGENCY_TEXT = "【探访关爱紧急提醒】探访中发现老人有危及生命安全的突发情况，请立即联系老人或前往，社区正在协助处置。"


def queue_reminders(conn: Connection, items: Sequence[tuple[int, int | None, int | None, str]], *,
                    rules: Rules, now: datetime) -> int:
    """Queue reminders to the first contacts (提醒子女等亲属) in the outbox; returns how many were queued.

    ``items``: (elder_id, hazard_id, referral_id, text). Elders without a valid first contact with a
    phone get none. The recipient is stored as the gateway needs it (personal data: shown masked only).
    """
    if not items or not rules.remind_first_contact:
        return 0
    elders = sorted({e for e, *_ in items})
    phone: dict[int, str] = {}
    for eid, ph in conn.execute(select(FirstContact.elder_id, FirstContact.phone).where(
            FirstContact.elder_id.in_(elders), FirstContact.valid.is_(True), FirstContact.phone.is_not(None))):
        phone.setdefault(int(eid), ph)
    rows = [{"elder_id": e, "hazard_id": h, "referral_id": r, "channel": rules.notify_channel,
             "recipient": phone[e], "text": t, "status": "queued", "created_at": now}
            for e, h, r, t in items if e in phone]
    for i in range(0, len(rows), 5000):
        conn.execute(Notification.__table__.insert(), rows[i:i + 5000])
    return len(rows)


def send_queued(engine: Engine, gateway: Any, *, now: datetime | None = None, limit: int = 1000) -> dict[str, int]:
    """Send the queued reminders through ``gateway`` (:class:`gridmap.followups.notify.Gateway`).

    Each is claimed first (``queued`` → ``sent`` only if still queued: two runners never send one
    twice), then sent; a gateway failure marks it ``failed`` with the error. Returns counts.
    """
    from gridmap.followups.notify import OutboundMessage

    now = (now or datetime.now(UTC)).astimezone(UTC)
    nt = Notification.__table__
    with engine.connect() as conn:
        queued = conn.execute(select(nt.c.id, nt.c.elder_id, nt.c.channel, nt.c.recipient, nt.c.text)
                              .where(nt.c.status == "queued").order_by(nt.c.id).limit(limit)).all()
    sent = failed = 0
    touched: list[int | None] = []
    for nid, elder_id, channel, recipient, text in queued:
        with engine.begin() as conn:
            claimed = conn.execute(update(nt).where(nt.c.id == nid, nt.c.status == "queued")
                                   .values(status="sent", sent_at=now)).rowcount
        if not claimed:
            continue
        result = gateway.send(OutboundMessage(id=int(nid), channel=channel, recipient=recipient or "", text=text))
        if not result.ok:
            failed += 1
            with engine.begin() as conn:
                conn.execute(update(nt).where(nt.c.id == nid).values(status="failed", error=str(result.error)[:500]))
        else:
            sent += 1
        touched.append(elder_id)
    if touched:  # one change-feed row for the run (the outbox's states changed)
        from gridmap.store.changes import record_change
        from gridmap.store.models import Elder, Street

        with engine.begin() as conn:
            ids = sorted({int(e) for e in touched if e is not None})
            streets = sorted(conn.execute(select(Street.name).join(Elder, Elder.street_id == Street.id)
                                          .where(Elder.id.in_(ids)).distinct()).scalars()) if ids else []
            record_change(conn, "followup", streets=streets, elders=ids, actor="jobs",
                          detail={"reminders_sent": sent, "reminders_failed": failed})
    return {"sent": sent, "failed": failed}


def read_notification_frame(engine: Engine, *, status: str | None = None) -> pd.DataFrame:
    """The outbox: id, elder_id, hazard_id, referral_id, channel, recipient (as stored: mask before showing),
    text, status, created_at, sent_at, error."""
    import pandas as pd
    nt = Notification.__table__
    q = select(*nt.c).order_by(nt.c.id)
    if status is not None:
        q = q.where(nt.c.status == status)
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(q).mappings()]
    return pd.DataFrame(rows, columns=[c.name for c in nt.c])



__all__ = ["EMERGENCY_TEXT", "queue_reminders", "read_notification_frame", "reminder_text_hazard", "send_queued"]
