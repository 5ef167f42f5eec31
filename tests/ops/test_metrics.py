"""Job, index and queue metrics move when their event happens; multiprocess mode sums
the processes of a machine (``crm.metrics``, ``tagging.audiences.metrics``, ``config.metrics``)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from tagging.audiences import index
from tagging.audiences.services import bulk_operation_start
from tagging.imports.models import ConsentBasis
from tagging.imports.services import ImportRefused, import_create, import_run
from tagging.models import TagAssignment
from tagging.rules.models import Rule
from tagging.rules.services import rule_run, rule_save
from tagging.services import tags_change
from tests.conftest import needs_postgresql, require_service

ROOT = Path(__file__).resolve().parents[2]
_CONFIGURED = os.environ.get("CELERY_BROKER_URL", "")
BROKER = _CONFIGURED if _CONFIGURED.startswith("redis://") else "redis://127.0.0.1:6379/5"


def jobs(kind: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("tagwerk_job_duration_seconds_count",
                                     {"kind": kind, "outcome": outcome}) or 0.0


def refreshes(kind: str) -> float:
    return REGISTRY.get_sample_value("tagwerk_audience_index_refresh_seconds_count",
                                     {"kind": kind}) or 0.0


@pytest.fixture
def import_file(tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path / "media"

    def run(content: str):
        path = tmp_path / "contacts.csv"
        path.write_text(content)
        job = import_create(path=path, consent_basis=ConsentBasis.OPTED_IN,
                            consent_source="shop checkout")
        return import_run(job=job)

    return run


@pytest.mark.django_db
def test_an_import_observes_its_duration_ok_or_refused(import_file):
    ok, refused = jobs("import_run", "ok"), jobs("import_run", "refused")
    import_file("phone,first_name\n+4915123000001,Anna\n")
    with pytest.raises(ImportRefused):
        import_file("name,city\nAnna,Bonn\n")  # no phone column
    assert jobs("import_run", "ok") == ok + 1
    assert jobs("import_run", "refused") == refused + 1


@pytest.mark.django_db
def test_a_bulk_operation_observes_its_duration(superuser, make_contact, make_tag):
    before = jobs("bulk_operation", "ok")
    bulk_operation_start(contacts=[make_contact().pk, make_contact().pk], add=[make_tag()],
                         actor=superuser, background=False)
    assert TagAssignment.objects.count() == 2
    assert jobs("bulk_operation", "ok") == before + 1


@pytest.mark.django_db
def test_a_rule_run_observes_its_duration_and_its_errors(make_contact, make_tag):
    tag = make_tag()
    make_contact(purchase_count=5)
    rule = rule_save(rule=Rule(name="Buyers", segment="purchases > 1"), add_tags=[tag],
                     remove_tags=[])
    ok, error = jobs("rule_run", "ok"), jobs("rule_run", "error")
    rule_run(rule=rule)
    rule_run(rule=rule, dry_run=True)  # a preview is not a job
    tag.is_archived = True
    tag.save()
    TagAssignment.objects.all().delete()
    assert rule_run(rule=rule).errors
    assert (jobs("rule_run", "ok"), jobs("rule_run", "error")) == (ok + 1, error + 1)


@pytest.mark.django_db(transaction=True)
def test_the_audience_index_observes_build_probe_and_catch_up(make_contact, make_tag):
    needs_postgresql("the audience index exists only on PostgreSQL")
    contact, tag = make_contact(), make_tag()
    index._index.snapshot = None  # as in a fresh process
    before = {kind: refreshes(kind) for kind in ("build", "probe", "catch_up")}
    index.current()
    index.current()
    tags_change(contacts=[contact.pk], add=[tag])
    assert contact.pk in index.current().tag(tag.pk)
    assert {kind: refreshes(kind) - before[kind] for kind in before} == \
        {"build": 1, "probe": 1, "catch_up": 1}


@pytest.mark.django_db
def test_metrics_show_queue_depths_of_a_redis_broker(client, settings):
    import redis

    client_redis = redis.Redis.from_url(BROKER, socket_connect_timeout=1)
    try:
        client_redis.ping()
    except redis.RedisError:
        require_service(False, f"Redis is not reachable at {BROKER}")
    settings.CELERY_BROKER_URL, settings.HEALTH_CACHE_SECONDS = BROKER, 0
    client_redis.delete("jobs")
    client_redis.rpush("jobs", "a", "b", "c")
    try:
        text = client.get("/metrics").content.decode()
        ready = client.get("/readyz").json()
    finally:
        client_redis.delete("jobs")
    assert 'tagwerk_queue_depth{queue="jobs"} 3.0' in text
    assert ready["checks"]["broker"]["values"]["queue_jobs"] == 3


WRITER = textwrap.dedent("""
    import sys
    from campaigns.metrics import SEND_RATE, SENDS, WEBHOOK_LAG
    SENDS.labels(status="sent", error_code="").inc(int(sys.argv[1]))
    WEBHOOK_LAG.observe(float(sys.argv[1]))
    SEND_RATE.labels(sender="n1").set(float(sys.argv[1]))
    print(__import__("os").getpid())
""")
READER = textwrap.dedent("""
    import django
    django.setup()
    from prometheus_client import generate_latest
    from config.metrics import processes_registry
    print(generate_latest(processes_registry()).decode())
""")


def test_multiprocess_mode_sums_every_process_and_drops_a_dead_ones_gauge(tmp_path):
    """Two processes (a web worker, a Celery pool process) count; a third reads them all."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
           "DJANGO_SETTINGS_MODULE": "config.settings.test", "PYTHONPATH": str(ROOT)}

    def run(code: str, *args: str) -> str:
        return subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=ROOT,
                              capture_output=True, text=True, check=True, timeout=60).stdout

    run(WRITER, "2")
    dead = int(run(WRITER, "5"))
    text = run(READER)
    assert 'tagwerk_sends_total{error_code="",status="sent"} 7.0' in text
    assert "tagwerk_webhook_lag_seconds_count 2.0" in text
    assert 'tagwerk_send_rate_achieved{sender="n1"} 7.0' in text

    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(dead, str(tmp_path))  # gunicorn's child_exit, Celery's too
    text = run(READER)
    assert 'tagwerk_send_rate_achieved{sender="n1"} 2.0' in text  # live processes only
    assert 'tagwerk_sends_total{error_code="",status="sent"} 7.0' in text  # counts stay
