"""Beat's 2-second tick is silent in the log unless it does something."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery.app import trace
from django.utils import timezone
from django.utils.module_loading import import_string

from campaigns.models import Campaign, CampaignStatus
from campaigns.tick import campaigns_tick
from config.logfilters import QuietTasks
from config.settings import base

TICK = "campaigns.tasks.campaigns_tick_task"


def celery_record(logger: str, msg: str, args, level: int = logging.INFO) -> logging.LogRecord:
    """A record as Celery's worker and beat log it (format arguments, not a message)."""
    return logging.getLogger(logger).makeRecord(logger, level, __file__, 1, msg, args, None)


def worker(task: str, fmt: str = trace.LOG_RECEIVED, level: int = logging.INFO):
    # Celery passes one dict of arguments, which logging keeps as ``record.args``.
    return celery_record("celery.worker.strategy", fmt, ({"id": "1", "name": task,
                                                          "runtime": 0.01, "return_value": None,
                                                          "description": "raised",
                                                          "exc": "boom"},), level)


def beat(entry: str, task: str):
    return celery_record("celery.beat", "Scheduler: Sending due task %s (%s)", (entry, task))


def test_the_ticks_routine_lines_are_dropped():
    quiet = QuietTasks(tasks=[TICK])
    assert not quiet.filter(worker(TICK))
    assert not quiet.filter(worker(TICK, trace.LOG_SUCCESS))
    assert not quiet.filter(beat("campaigns-tick", TICK))


def test_other_tasks_and_the_ticks_failures_are_kept():
    quiet = QuietTasks(tasks=[TICK])
    assert quiet.filter(worker("campaigns.tasks.campaign_send_task"))
    assert quiet.filter(beat("audiences-segment-counts",
                             "tagging.audiences.tasks.segment_counts_refresh_task"))
    assert quiet.filter(worker(TICK, trace.LOG_FAILURE, logging.ERROR))
    assert quiet.filter(celery_record("celery.beat", "beat: Starting...", ()))
    record = celery_record("celery.beat", "Scheduler: Sending due task %s (%s)",
                           ("campaigns-tick", TICK))
    assert record.getMessage() == f"Scheduler: Sending due task campaigns-tick ({TICK})"


def test_logging_puts_the_filter_on_celerys_three_loggers():
    config = base.LOGGING["filters"]["quiet_tasks"]
    assert import_string(config["()"]) is QuietTasks and TICK in config["tasks"]
    for name in ("celery.app.trace", "celery.worker.strategy", "celery.beat"):
        assert "quiet_tasks" in base.LOGGING["loggers"][name]["filters"]


def test_an_idle_tick_logs_nothing_a_busy_one_says_what_it_did(
        caplog, contacts, make_campaign):
    with caplog.at_level(logging.INFO, logger="campaigns.tick"):
        assert campaigns_tick() == []
    assert caplog.records == []

    contacts(2)
    campaign = make_campaign(scheduled_at=timezone.now() - timedelta(minutes=1))
    Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.SCHEDULED)
    with caplog.at_level(logging.INFO, logger="campaigns.tick"):
        due = campaigns_tick()
    assert len(due) == 1
    (line,) = [r.getMessage() for r in caplog.records if r.name == "campaigns.tick"]
    assert "started 1" in line and f"sending {due[0]}" in line
