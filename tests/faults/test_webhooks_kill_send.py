"""A Celery worker killed with SIGKILL three times in the middle of a campaign (the sending
benchmark's kill row at a smaller size): the campaign completes within 60 s of the last
kill, every recipient gets exactly one message.

Real workers on the Redis broker (queues of this test's own), the fake Cloud API on
loopback posting signed ``sent`` webhooks to the live test server, and beat played
by this test (it publishes the 2-second tick, as beat does). Nothing waits for the
broker to redeliver the killed task (an hour with Redis's visibility timeout): the
tick queues the send task again, the killed loop's slot lease runs out, and the
sends it had claimed but not handed over go back to the queue.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from campaigns.models import Campaign, CampaignStatus, Send
from campaigns.selectors import SENT_OR_LATER
from campaigns.services import campaign_create, campaign_launch, template_create
from campaigns.tasks import campaigns_tick_task
from crm.models import ConsentStatus
from crm.services import contacts_insert
from tests.campaigns.fake_cloud_api import FakeCloudAPI
from tests.conftest import needs_postgresql, require_service
from tests.faults.webhooks_helpers import ROOT, database_url

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

_CONFIGURED = os.environ.get("CELERY_BROKER_URL", "")
BROKER = os.environ.get("TAGWERK_TEST_BROKER_URL") or (
    _CONFIGURED if _CONFIGURED.startswith("redis://") else "redis://127.0.0.1:6379/5")
TOKEN, SECRET = "fault-token", "fault-app-secret"
RECIPIENTS, RATE, KILLS = 400, 40, 3
# A message whose request the kill cut off may or may not have reached WhatsApp: only
# its webhook or this grace period can tell (600 s in production; docs/campaigns.md).
GRACE = 30


def redis_available() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(BROKER, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


class Worker:
    """One Celery worker process (two threads: both sending slots of the campaign)."""

    def __init__(self, queue: str, api_url: str, number: str, log: Path):
        self.log = log
        self.env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.faults.webhooks_worker_settings",
                    "DEBUG": "1", "LOG_LEVEL": "WARNING", "DATABASE_URL": database_url(),
                    "CELERY_BROKER_URL": BROKER, "TAGWERK_FAULT_QUEUE": queue,
                    "WHATSAPP_BACKEND": "campaigns.backends.cloud_api.CloudAPIBackend",
                    "WHATSAPP_GRAPH_BASE_URL": api_url, "WHATSAPP_ACCESS_TOKEN": TOKEN,
                    "WHATSAPP_PHONE_NUMBER_ID": number,
                    "WHATSAPP_INFLIGHT_GRACE_SECONDS": str(GRACE)}
        self.queues = f"{queue},{queue}-webhooks"
        self.proc: subprocess.Popen | None = None

    def start(self) -> float:
        """Start it; return the seconds it took to be ready."""
        started = time.monotonic()
        self.log.write_text("")
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "config", "worker", "-P", "threads",
                 "-c", "2", "-Q", self.queues, "-n", f"fault-{uuid.uuid4().hex[:6]}@%h",
                 "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "INFO"],
                cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        while " ready." not in self.log.read_text():
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            assert time.monotonic() - started < 60, "the worker did not start"
            time.sleep(0.1)
        return time.monotonic() - started

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def broker_queue():
    """This process publishes to the test's own queues on the Redis broker."""
    from config.celery import app

    queue = f"faults-{uuid.uuid4().hex[:8]}"
    keys = ("broker_url", "task_always_eager", "task_default_queue", "task_routes")
    saved = {k: app.conf[k] for k in keys}
    app.conf.update(broker_url=BROKER, task_always_eager=False, task_default_queue=queue,
                    task_routes={"campaigns.tasks.webhooks_drain_task":
                                 {"queue": f"{queue}-webhooks"}})
    app._pool = None
    app.amqp._producer_pool = None
    try:
        yield queue
    finally:
        app.conf.update(saved)
        app._pool = None
        app.amqp._producer_pool = None


def launch(number: str) -> Campaign:
    contacts_insert(rows=[{"phone": f"+4917{70000000 + i:08d}", "country": "DE",
                           "consent_status": ConsentStatus.OPTED_IN} for i in range(RECIPIENTS)])
    template = template_create(name="fault_update", language="de", category="utility",
                               body="Ihre Bestellung ist unterwegs.")
    campaign = campaign_create(name="Kill -9", template=template, audience="purchases >= 0",
                               rate_per_second=RATE, phone_number_id=number)
    campaign_launch(campaign=campaign)  # queues the first send task
    return campaign


def tick_until(condition, timeout: float) -> bool:
    """Publish beat's tick every 2 s (it expires after 5 s, as beat's does) until done."""
    deadline, last = time.monotonic() + timeout, 0.0
    while time.monotonic() < deadline:
        if condition():
            return True
        if time.monotonic() - last >= 2:
            campaigns_tick_task.apply_async(expires=5)
            last = time.monotonic()
        time.sleep(0.05)
    return condition()


def test_a_worker_killed_mid_send_completes_the_campaign_with_no_duplicate(
        live_server, settings, broker_queue, tmp_path):
    needs_postgresql()
    require_service(redis_available(), f"Redis is not reachable at {BROKER}")
    settings.WHATSAPP_APP_SECRET = SECRET  # the live server checks the webhooks with it
    number = f"fault-{uuid.uuid4().hex[:8]}"
    hook = f"{live_server.url}/webhooks/whatsapp/"
    with FakeCloudAPI(token=TOKEN, webhook_url=hook, app_secret=SECRET,
                      webhook_statuses=("sent",)) as api:
        worker = Worker(broker_queue, api.url, number, tmp_path / "worker.log")
        try:
            worker.start()
            campaign = launch(number)
            at_kills, restarts = [], []
            for k in range(1, KILLS + 1):  # at ¼, ½ and ¾ of the recipients
                assert tick_until(lambda k=k: len(api.accepted()) >= RECIPIENTS * k // 4, 60), \
                    f"sending did not go on before kill {k}"
                at_kills.append(len(api.accepted()))
                worker.kill()
                killed = time.monotonic()
                restarts.append(worker.start())  # as a supervisor restarts it
            done = tick_until(lambda: Campaign.objects.get(pk=campaign.pk).status
                              == CampaignStatus.COMPLETED, 60 - (time.monotonic() - killed))
            recovery = time.monotonic() - killed
            time.sleep(1)  # the last webhooks and requests settle
        finally:
            worker.stop()

    assert at_kills[-1] < RECIPIENTS, "the worker was not killed mid-send"
    statuses = Counter(Send.objects.filter(campaign=campaign).values_list("status", flat=True))
    assert done, f"not completed within 60 s of the last kill: {dict(statuses)}"
    per_recipient = Counter(r["to"] for r in api.accepted())
    recipients = {p.lstrip("+") for p in Send.objects.filter(campaign=campaign)
                  .values_list("phone", flat=True)}
    assert set(per_recipient) == recipients  # nobody lost
    assert max(per_recipient.values()) == 1  # nobody messaged twice
    assert Send.objects.filter(campaign=campaign, status__in=SENT_OR_LATER).count() == RECIPIENTS
    print(f"\nkill -9 at {at_kills} of {RECIPIENTS} accepted; worker back in "
          f"{', '.join(f'{r:.1f}' for r in restarts)} s; campaign completed {recovery:.1f} s "
          "after the last kill; duplicates 0, lost 0")
