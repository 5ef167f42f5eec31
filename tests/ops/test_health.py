"""/healthz, /readyz and /metrics: what a load balancer and Prometheus see."""

import json

import pytest
from django.test import override_settings
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

pytestmark = pytest.mark.django_db

CLOSED = "redis://127.0.0.1:1/0"  # nothing listens on port 1


@pytest.fixture(autouse=True)
def _no_cache(settings):
    settings.HEALTH_CACHE_SECONDS = 0


def _ready(client):
    response = client.get("/readyz")
    return response.status_code, json.loads(response.content)


def test_healthz_answers_without_touching_anything(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert json.loads(response.content) == {"status": "ok"}


def test_readyz_is_ready_when_database_cache_and_broker_answer(client):
    status, body = _ready(client)
    assert status == 200
    assert body["status"] == "ready"
    assert {"database", "cache", "broker", "beat"} <= set(body["checks"])
    assert body["checks"]["database"]["ok"] is True


@override_settings(REDIS_URL=CLOSED)
def test_readyz_answers_503_when_redis_is_down(client):
    status, body = _ready(client)
    assert status == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["cache"]["ok"] is False
    assert "Error" in body["checks"]["cache"]["detail"]
    assert "cache" in body["failed"] and "database" not in body["failed"]


@override_settings(CELERY_BROKER_URL=CLOSED)
def test_readyz_answers_503_when_the_broker_is_down(client):
    status, body = _ready(client)
    assert status == 503
    assert body["checks"]["broker"]["ok"] is False
    assert "broker" in body["failed"] and "cache" not in body["failed"]


def test_beat_not_ticking_is_reported_but_keeps_the_web_ready(client, settings):
    every = IntervalSchedule.objects.create(every=1, period="hours")
    PeriodicTask.objects.create(name="old", task="x", interval=every,
                                last_run_at=timezone.now() - timezone.timedelta(hours=2))
    status, body = _ready(client)
    assert status == 200
    assert body["checks"]["beat"]["ok"] is False
    assert body["checks"]["beat"]["values"]["age_seconds"] > 7000


def test_readyz_says_no_secret(client, settings):
    settings.SECRET_KEY = "a-secret-that-must-not-leak-" + "x" * 40
    response = client.get("/readyz")
    assert settings.SECRET_KEY not in response.content.decode()
    assert "postgres://" not in response.content.decode()


def test_metrics_export_requests_and_checks(client):
    client.get("/healthz")
    text = client.get("/metrics").content.decode()
    assert 'tagwerk_check_ok{check="database"} 1.0' in text
    assert "django_http_requests_total_by_view_transport_method_total" in text


@override_settings(METRICS_TOKEN="s3cret")
def test_metrics_want_the_token_when_one_is_set(client):
    assert client.get("/metrics").status_code == 401
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret")
    assert response.status_code == 200


def test_a_webhook_backlog_older_than_a_minute_is_reported_while_the_web_stays_ready(client):
    from campaigns.models import WebhookDelivery

    WebhookDelivery.objects.create(body=b"{}", sha256="a" * 64,
                                   received_at=timezone.now() - timezone.timedelta(minutes=3))
    WebhookDelivery.objects.create(body=b"{}", sha256="b" * 64)
    status, body = _ready(client)
    assert status == 200  # pulling web processes would stop the intake too
    webhooks = body["checks"]["webhooks"]
    assert webhooks["ok"] is False
    assert webhooks["values"]["backlog"] == 2
    assert webhooks["values"]["lag_seconds"] >= 180


def test_readyz_answers_503_not_500_when_the_database_is_down(client, monkeypatch):
    from django.db import OperationalError, connections

    def refused(*args, **kwargs):
        raise OperationalError("connection to server at 127.0.0.1 port 5432 failed")

    monkeypatch.setattr(type(connections["default"]), "cursor", refused)
    status, body = _ready(client)
    assert status == 503
    assert body["checks"]["database"]["ok"] is False
    assert "OperationalError" in body["checks"]["database"]["detail"]
    assert "database" in body["failed"]
    # The checks that read tables fail with it, each on its own line.
    assert {"beat", "webhooks", "sending"} <= set(body["failed"])


@override_settings(REDIS_URL=CLOSED, CELERY_BROKER_URL=CLOSED)
def test_metrics_still_answer_with_redis_and_the_broker_down(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    text = response.content.decode()
    assert 'tagwerk_check_ok{check="cache"} 0.0' in text
    assert 'tagwerk_check_ok{check="broker"} 0.0' in text


def test_readyz_is_cheap_and_says_how_long_it_took(client):
    _ready(client)  # first request: URL resolver and connection warm
    timings = [_ready(client)[1]["ms"] for _ in range(5)]
    # The target is < 50 ms per call; a loaded CI machine gets slack, not a flaky test.
    assert min(timings) < 50, timings


def test_readyz_answers_from_its_memo_within_health_cache_seconds(client, settings,
                                                                  django_assert_num_queries):
    settings.HEALTH_CACHE_SECONDS = 60
    _ready(client)
    with django_assert_num_queries(0):
        status, _body = _ready(client)
    assert status == 200


def test_a_failing_check_never_quotes_credentials(client):
    from crm.health import CheckResult, _checks, register_check

    def leaky() -> CheckResult:
        raise ConnectionError("cannot reach redis://:hunter2@cache.internal:6379/0 or "
                              "amqp://tagwerk:hunter2@mq:5672//")

    saved = dict(_checks)
    register_check("leaky", leaky, critical=False)
    try:
        body = client.get("/readyz").content.decode()
    finally:
        _checks.clear()
        _checks.update(saved)
    assert "hunter2" not in body
    assert "redis://***@cache.internal:6379/0" in body
