"""Production settings refuse to start insecurely."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _check(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SECRET_KEY"))}
    clean.update({"DJANGO_SETTINGS_MODULE": "config.settings.base", **env})
    return subprocess.run([sys.executable, "manage.py", "check", *args], cwd=ROOT, env=clean,
                          capture_output=True, text=True, timeout=120)


def test_debug_off_without_secret_key_refuses_to_start():
    result = _check({"DEBUG": "0", "ALLOWED_HOSTS": "tagwerk.example.com"})
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_debug_off_with_a_short_secret_key_refuses_to_start():
    result = _check({"DEBUG": "0", "SECRET_KEY": "short", "ALLOWED_HOSTS": "x.example.com"})
    assert result.returncode != 0
    assert "at least 50 characters" in result.stderr


def test_documented_production_environment_passes_check_deploy(tmp_path):
    env = {
        "DEBUG": "0",
        "SECRET_KEY": "k" * 20 + "Zq8!xT2@pL9#rW4$mN6%bV1^cX3&" + "y" * 20,
        "ALLOWED_HOSTS": "tagwerk.example.com",
        "SECURE_HSTS_PRELOAD": "1",
        "TAGWERK_VAR_DIR": str(tmp_path),
    }
    result = _check(env, "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_malformed_boolean_is_named():
    result = _check({"DEBUG": "maybe"})
    assert result.returncode != 0
    assert "DEBUG='maybe' is not a boolean" in result.stderr


def test_the_embedded_broker_keeps_every_file_under_var(tmp_path):
    """``make run`` must leave nothing in the checkout but ``var/`` (kombu's filesystem
    transport would otherwise write its exchange tables to ./control)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_"))}
    env.update({"DJANGO_SETTINGS_MODULE": "config.settings.base",
                "TAGWERK_VAR_DIR": str(tmp_path / "var")})
    code = ("import django; django.setup(); from django.conf import settings; "
            "print('\\n'.join(settings.CELERY_BROKER_TRANSPORT_OPTIONS[k] for k in "
            "('data_folder_in', 'data_folder_out', 'control_folder')))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    folders = result.stdout.split()
    assert len(folders) == 3
    assert all(Path(f).is_relative_to(tmp_path / "var") for f in folders)


def _celery_conf(env: dict[str, str]) -> dict:
    """The broker options a worker started with ``env`` would use."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("DJANGO_", "CELERY_", "TAGWERK_JOB"))}
    clean.update({"DJANGO_SETTINGS_MODULE": "config.settings.base", **env})
    code = ("import json, django; django.setup(); from config.celery import app; "
            "print(json.dumps(app.conf.broker_transport_options or {}))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_killed_workers_task_comes_back_from_redis_within_a_minute():
    options = _celery_conf({"CELERY_BROKER_URL": "redis://127.0.0.1:6379/0"})
    assert options["visibility_timeout"] == 45  # kombu's default: an hour
    assert options["unacked_restore_interval"] * options["unacked_restore_throttle"] <= 10
    assert _celery_conf({"CELERY_BROKER_URL": "redis://x:6379/0",
                         "CELERY_VISIBILITY_TIMEOUT": "30"})["visibility_timeout"] == 30
