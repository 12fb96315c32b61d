"""Follow exams through the services' public REST APIs (and the event log) and act as the expert."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from sonobridge.api.events.v1 import topics
from sonobridge.common.auth import LocalIssuer
from sonobridge.common.bus.ports import EventBus
from sonobridge.common.envelope import unpack
from sonobridge.node.consortium import Consortium
from sonobridge.node.township import UploadedExam

log = logging.getLogger(__name__)

ALL_READ_STATES = ("queued", "claimed", "signed", "rescan_requested", "escalated", "cancelled")
WATCHED_TOPICS = (
    topics.EXAM_COMPLETED,
    topics.INFERENCE_COMPLETED,
    topics.REPORT_ROUTED,
    topics.REPORT_SIGNED,
    topics.FOLLOWUP_ALERTED,
    topics.TICKET_OPENED,
)


def _ts(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


@dataclass
class SeenEvent:
    """One event observed on the log: its id, when it was seen and the decoded message."""

    topic: str
    event_id: str
    seen_at: float
    message: Any


class EventWatch:
    """Read the public topics as an observer group; index events by study (or device serial)."""

    def __init__(self, bus: EventBus, group: str, topics_: tuple[str, ...] = WATCHED_TOPICS):
        self._bus = bus
        # A consumer only learns of a topic created after it joined at its next metadata refresh
        # (minutes on Kafka); create them first so the watch sees the very first event.
        bus.ensure_topics(list(topics_))
        self._subscription = bus.subscribe(group, list(topics_))
        self._lock = threading.Lock()
        self._events: dict[str, list[SeenEvent]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="event-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                records = self._subscription.poll(0.2)
            except Exception as exc:
                # A broker restart surfaces here; a watch that died on it would see nothing more.
                log.warning("event watch: poll failed (%s); retrying", type(exc).__name__)
                self._stop.wait(1.0)
                continue
            for record in records:
                try:
                    event = record.cloud_event()
                    message = unpack(event)
                except Exception:
                    # A foreign record is not ours to judge; the services dead-letter it.
                    log.debug("skipping an unreadable record on %s", record.topic)
                    continue
                key = (record.key or b"").decode(errors="replace")
                seen = SeenEvent(record.topic, event.id, time.time(), message)
                with self._lock:
                    self._events.setdefault(key, []).append(seen)

    def events(self, key: str, topic: str | None = None) -> list[SeenEvent]:
        """Return the events seen for a study (or device), optionally of one topic."""
        with self._lock:
            found = list(self._events.get(key, []))
        return [e for e in found if topic is None or e.topic == topic]

    def distinct(self, key: str, topic: str) -> int:
        """Count distinct event ids (a redelivered record counts once)."""
        return len({e.event_id for e in self.events(key, topic)})

    def close(self) -> None:
        """Stop reading."""
        self._stop.set()
        self._thread.join(timeout=5)
        self._subscription.close()


@dataclass
class Trail:
    """What happened to one exam, with wall-clock instants (seconds since the epoch)."""

    uploaded: UploadedExam
    completed_at: float | None = None
    ai_at: float | None = None
    routed_at: float | None = None
    signed_at: float | None = None
    alert_at: float | None = None
    ticket_at: float | None = None
    read: dict[str, Any] | None = None
    report: dict[str, Any] | None = None
    alert: dict[str, Any] | None = None
    ticket: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def study(self) -> str:
        """The exam's StudyInstanceUID."""
        return self.uploaded.study_instance_uid

    def done(self) -> bool:
        """True once every stage the scenario expects has been seen."""
        expect = self.uploaded.plan.expect
        if self.read is None:
            return False
        if self.read["state"] not in ("signed", "rescan_requested"):
            return False
        if expect.followup and self.alert is None:
            return False
        return not (expect.ticket_device and self.ticket is None)


Printer = Callable[[str], None]


class FlowTracker:
    """Poll the services for each exam's progress, sign county reads as the rostered expert."""

    def __init__(
        self,
        consortium: Consortium,
        issuer: LocalIssuer,
        urls: dict[str, str],
        *,
        watch: EventWatch | None = None,
        sign: bool = True,
        printer: Printer | None = None,
    ) -> None:
        self.consortium = consortium
        self.issuer = issuer
        self.urls = urls
        self.watch = watch
        self.sign = sign
        self.print = printer or (lambda _line: None)
        self._clients: dict[str, httpx.Client] = {}
        admins = consortium.with_role("admin")
        if not admins:
            raise ValueError("the consortium needs an admin to follow exams")
        self.admin = admins[0].user

    def client(self, user: str) -> httpx.Client:
        """An HTTP client carrying `user`'s token."""
        if user not in self._clients:
            self._clients[user] = httpx.Client(
                headers={"Authorization": f"Bearer {self.consortium.token(self.issuer, user)}"},
                timeout=30.0,
            )
        return self._clients[user]

    def close(self) -> None:
        """Close every client."""
        for c in self._clients.values():
            c.close()

    def _get(self, user: str, service: str, path: str, **params: Any) -> Any:
        response = self.client(user).get(f"{self.urls[service]}{path}", params=params or None)
        response.raise_for_status()
        return response.json()

    def reads_by_study(self) -> dict[str, list[dict[str, Any]]]:
        """Every read the admin can see, grouped by study."""
        found: dict[str, list[dict[str, Any]]] = {}
        cursor = None
        while True:
            params: dict[str, Any] = {"state": list(ALL_READ_STATES), "limit": 500}
            if cursor:
                params["cursor"] = cursor
            page = self._get(self.admin, "reporting", "/v1/reads", **params)
            for r in page["reads"]:
                found.setdefault(r["study_instance_uid"], []).append(r)
            cursor = page.get("next_cursor")
            if not cursor:
                return found

    def _expert_for(self, read: dict[str, Any]) -> str | None:
        if read.get("assigned_to"):
            return str(read["assigned_to"])
        for duty in self.consortium.duties:
            if duty.worklist == read["worklist"] and duty.role == "primary":
                return duty.user
        return None

    def sign_read(self, trail: Trail) -> dict[str, Any] | None:
        """Claim, draft, give verdicts on every AI finding and sign, as the rostered expert."""
        assert trail.read is not None
        expert = self._expert_for(trail.read)
        if expert is None:
            trail.notes.append(f"nobody on the {trail.read['worklist']} roster")
            return None
        c = self.client(expert)
        base = f"{self.urls['reporting']}/v1/reads/{trail.read['read_id']}"
        view = c.get(base)
        view.raise_for_status()
        if view.json()["state"] == "queued":
            c.post(f"{base}/claim").raise_for_status()
        c.post(f"{base}/draft", json={"language": "en"}).raise_for_status()
        c.patch(
            f"{base}/draft", json={"conclusion": trail.uploaded.plan.expert_conclusion}
        ).raise_for_status()
        findings = view.json().get("ai_findings") or []
        if findings:
            c.put(
                f"{base}/verdicts",
                json={
                    "verdicts": [
                        {
                            "finding_code": f.get("code", ""),
                            "model_name": f.get("model_name") or None,
                            "verdict": "agree",
                        }
                        for f in findings
                    ]
                },
            ).raise_for_status()
        signed = c.post(f"{base}/sign")
        signed.raise_for_status()
        return dict(signed.json())

    def _visible_alerts(self) -> list[dict[str, Any]]:
        return list(self._get(self.admin, "reporting", "/v1/alerts")["alerts"])

    def _tickets(self, serial: str) -> list[dict[str, Any]]:
        return list(
            self._get(self.admin, "maintenance", "/v1/tickets", device_serial=serial)["tickets"]
        )

    def exam_state(self, trail: Trail) -> str:
        """The exam's state according to ingest."""
        plan = trail.uploaded.plan
        body = self._get(plan.operator, "ingest", f"/v1/exams/{trail.uploaded.exam_id}")
        return str(body["state"])

    def step(self, trails: list[Trail]) -> None:
        """Look once at every unfinished exam and record (and print) what changed."""
        pending = [t for t in trails if not t.done()]
        if not pending:
            return
        reads = self.reads_by_study()
        alerts = None
        tickets: dict[str, list[dict[str, Any]]] = {}
        for t in pending:
            plan = t.uploaded.plan
            if t.completed_at is None:
                if self.exam_state(t) == "completed":
                    t.completed_at = t.uploaded.upload_completed
                    self._say(t, t.completed_at, f"exam completed in ingest ({t.uploaded.state})")
                else:
                    continue
            if t.ai_at is None and self.watch is not None:
                ai = self.watch.events(t.study, topics.INFERENCE_COMPLETED)
                if ai:
                    t.ai_at = ai[0].seen_at
                    self._say(t, t.ai_at, _describe_ai(ai[0].message))
            primary = [r for r in reads.get(t.study, []) if r["kind"] == "primary"]
            if primary and t.routed_at is None:
                view = self._get(self.admin, "reporting", f"/v1/reads/{primary[0]['read_id']}")
                t.read = view
                t.routed_at = _ts(view["created_at"]) or time.time()
                if t.ai_at is None:
                    t.ai_at = t.routed_at
                    self._say(t, t.ai_at, _describe_view_ai(view))
                who = view.get("assigned_to") or "-"
                self._say(
                    t,
                    t.routed_at,
                    f"routed: {view['route']} -> worklist {view['worklist']} "
                    f"(priority {view['priority']}, reader {who}; {view['reason']})",
                )
            elif primary:
                t.read = {**(t.read or {}), **primary[0]}
            if t.read is None:
                continue
            if t.read["state"] in ("queued", "claimed") and self.sign and t.signed_at is None:
                report = self.sign_read(t)
                if report is not None:
                    t.report = report
                    t.signed_at = time.time()
                    t.read = {**t.read, "state": "signed"}
                    self._say(
                        t,
                        t.signed_at,
                        f"report {report.get('report_id', '?')} v{report.get('version', 1)} "
                        f"signed by {report.get('signed_by') or self._expert_for(t.read)}: "
                        f"{plan.expert_conclusion}",
                    )
            if plan.expect.followup and t.alert is None and t.read["state"] == "signed":
                alerts = alerts if alerts is not None else self._visible_alerts()
                mine = [a for a in alerts if a["study_instance_uid"] == t.study]
                if mine:
                    t.alert = mine[0]
                    t.alert_at = _ts(mine[0]["raised_at"]) or time.time()
                    self._say(
                        t,
                        t.alert_at,
                        f"follow-up alert {mine[0]['alert_id'][:8]} for {mine[0]['institution_id']}"
                        f" (terms: {', '.join(mine[0]['matched_terms'])})",
                    )
            serial = plan.expect.ticket_device
            if serial and t.ticket is None:
                if serial not in tickets:
                    tickets[serial] = self._tickets(serial)
                if tickets[serial]:
                    t.ticket = tickets[serial][0]
                    t.ticket_at = _ts(t.ticket["opened_at"]) or time.time()
                    if t.ticket.get("study_instance_uid") not in (None, "", t.study):
                        t.notes.append(f"evidence for ticket {t.ticket['ticket_id']}")
                        continue
                    self._say(
                        t,
                        t.ticket_at,
                        f"maintenance ticket {t.ticket['ticket_id'][:8]} on {serial} "
                        f"({t.ticket['source']}, {t.ticket['state']}, assignee "
                        f"{t.ticket['assignee'] or '-'}; ack due {t.ticket['sla']['ack_due_at']}):"
                        f" {t.ticket['symptom']}",
                    )

    def _say(self, trail: Trail, at: float, text: str) -> None:
        delta = at - trail.uploaded.upload_completed
        self.print(f"  [{trail.uploaded.plan.label}] +{delta:6.2f}s  {text}")

    def follow(self, trails: list[Trail], timeout: float, interval: float = 0.3) -> bool:
        """Step until every exam is done or `timeout` passes; return True when all are done."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.step(trails)
            except httpx.HTTPError as exc:
                # A service restarting (restart-safety tests) answers nothing for a moment.
                self.print(f"  (waiting: {exc})")
            if all(t.done() for t in trails):
                return True
            time.sleep(interval)
        return all(t.done() for t in trails)


def _describe_ai(message: Any) -> str:
    quality = message.exam_quality
    verdict = "acceptable" if quality.acceptable else "rescan"
    parts = [f"quality {verdict} (score {quality.score:.2f}, confidence {quality.confidence:.2f})"]
    if quality.advice:
        parts.append(f"advice '{quality.advice}'")
    for f in message.findings:
        value = f" {f.value:.2f} {f.unit}" if f.HasField("value") else ""
        flag = (" ABNORMAL" if f.abnormal else "") + (", to expert" if f.low_confidence else "")
        dates = f.attributes.get("app_gestational_age_weeks")
        if dates:
            verdict = "disagree" if f.attributes.get("disagrees_with_app") == "true" else "agree"
            difference = f.attributes.get("difference_weeks", "?")
            flag += f"; app's dates {dates} wk, {difference} wk: {verdict}"
        parts.append(f"{f.display or f.code}{value} (confidence {f.confidence:.2f}{flag})")
    if message.HasField("probe_health") and message.probe_health.suspected_fault:
        ph = message.probe_health
        parts.append(
            f"probe {ph.device_serial}: {ph.dead_element_fraction:.1%} dead elements "
            f"({ph.dead_element_columns} dark scan lines)"
        )
    return "AI: " + "; ".join(parts)


def _describe_view_ai(view: dict[str, Any]) -> str:
    q = view.get("exam_quality") or {}
    verdict = "acceptable" if q.get("acceptable") else "rescan"
    parts = [f"quality {verdict} (score {float(q.get('score', 0)):.2f})"]
    for f in view.get("ai_findings") or []:
        parts.append(
            f"{f.get('display') or f.get('code')} (confidence {f.get('confidence', 0):.2f})"
        )
    return f"AI ({view.get('inference_status')}): " + "; ".join(parts)
