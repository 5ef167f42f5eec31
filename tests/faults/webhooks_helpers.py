"""Shared pieces of the webhook fault tests: separate drain processes, sends, bodies.

The fault tests need a database that other processes see committed, so they are
transactional and run in the PostgreSQL pass (``DATABASE_URL=postgres://…``); on
SQLite, whose test database lives in memory, they skip with that reason. With
``TAGWERK_REQUIRE_SERVICES=1`` (CI) a missing Redis fails them instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
CHILD = "tests.faults.webhooks_drain_child"


def database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


# --- Drains in processes of their own -------------------------------------------------------

@dataclass
class Drains:
    """Drain processes, as separate workers run them; started together on ``go()``."""

    go_file: Path
    procs: list[subprocess.Popen] = field(default_factory=list)

    def start(self, count: int = 1) -> None:
        """Start ``count`` drains at once; return when each has Django set up."""
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test",
               "DATABASE_URL": database_url()}
        new = [subprocess.Popen([sys.executable, "-m", CHILD, str(self.go_file)], cwd=ROOT,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for _ in range(count)]
        for proc in new:
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        self.procs.extend(new)

    def go(self) -> None:
        self.go_file.write_text("go")

    def kill(self, index: int) -> None:
        self.procs[index].send_signal(signal.SIGKILL)
        self.procs[index].wait()

    def wait(self, timeout: float) -> list[dict]:
        """Wait for every drain to finish; their reports (killed ones report nothing)."""
        reports, deadline = [], time.monotonic() + timeout
        for proc in self.procs:
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            if proc.returncode == -signal.SIGKILL:
                continue
            assert proc.returncode == 0, err[-3000:]
            report = json.loads(out.strip().splitlines()[-1])
            report["transient"] = err.count("transient error")
            reports.append(report)
        return reports

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


# --- Sends and bodies -------------------------------------------------------------------------

BASE = int(datetime(2026, 3, 3, 11, 0, tzinfo=UTC).timestamp())


def sent_campaign(n: int):
    """A campaign whose ``n`` messages went out; returns (campaign, sends in id order)."""
    from campaigns.models import Campaign, CampaignStatus, Send, SendStatus
    from campaigns.services import template_create
    from crm.models import ConsentStatus
    from crm.services import contacts_insert

    template = template_create(name="fault_notice", language="de", category="utility",
                               body="Ihre Bestellung ist unterwegs.")
    sent_at = datetime.fromtimestamp(BASE, tz=UTC) - timedelta(minutes=5)
    campaign = Campaign.objects.create(name=f"Faults {n}", template=template,
                                       audience="purchases >= 0",
                                       status=CampaignStatus.COMPLETED, launched_at=sent_at,
                                       finished_at=sent_at)
    phones = [f"+4917{60000000 + i:08d}" for i in range(n)]
    ids = contacts_insert(rows=[{"phone": p, "country": "DE",
                                 "consent_status": ConsentStatus.OPTED_IN} for p in phones])
    Send.objects.bulk_create([
        Send(campaign=campaign, contact_id=ids[phone], phone=phone, status=SendStatus.SENT,
             wamid=f"wamid.fault.{n}.{i}", sent_at=sent_at, created_at=sent_at)
        for i, phone in enumerate(phones)], batch_size=2000)
    return campaign, list(Send.objects.filter(campaign=campaign).order_by("pk"))


def status_body(wamid: str, status: str, phone: str, timestamp: int, copy: int = 0,
                error_code: int | None = None) -> bytes:
    """A status webhook as WhatsApp sends it; ``copy`` > 0 makes a redelivery whose body
    differs (WhatsApp's retries and duplicates are not always byte-identical)."""
    from tests.campaigns.fake_cloud_api import status_payload

    payload = status_payload(wamid, status, phone, timestamp=timestamp, error_code=error_code)
    if copy:
        payload["entry"][0]["id"] = f"copy-{copy}"
    return json.dumps(payload).encode()


def store(bodies: list[bytes]) -> None:
    """Store bodies as the intake does (once per SHA-256), without queueing drains."""
    from campaigns.models import WebhookDelivery

    WebhookDelivery.objects.bulk_create(
        [WebhookDelivery(body=body, sha256=hashlib.sha256(body).hexdigest()) for body in bodies],
        batch_size=2000, ignore_conflicts=True)


def processed_so_far() -> int:
    from campaigns.models import WebhookDelivery

    return WebhookDelivery.objects.filter(processed_at__isnull=False).count()
