"""``make run``: the web server, a Celery worker and beat, stopped together by one Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKER_QUEUES = "celery,webhooks,jobs"  # every queue of CELERY_TASK_ROUTES


def _wait_for(url: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status < 500
        except OSError:
            time.sleep(0.3)
    return False


def process_commands(python: str, port: str, var: Path) -> dict[str, list[str]]:
    """The command line of each process ``make run`` starts."""
    return {
        "web": [python, "manage.py", "runserver", f"127.0.0.1:{port}"],
        # Every queue: "celery" (sending, ticks), "webhooks" and "jobs" (CELERY_TASK_ROUTES).
        "worker": [python, "-m", "celery", "-A", "config", "worker", "-l", "info",
                   "--concurrency", "2", "-n", "worker@%h", "-Q", WORKER_QUEUES],
        "beat": [python, "-m", "celery", "-A", "config", "beat", "-l", "info",
                 "--pidfile", str(var / "beat.pid")],
    }


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    port = os.environ.get("PORT", "8000")
    var = Path(os.environ.get("TAGWERK_VAR_DIR", ROOT / "var"))
    (var / "broker").mkdir(parents=True, exist_ok=True)
    commands = process_commands(sys.executable, port, var)
    processes = {name: subprocess.Popen(cmd, cwd=ROOT) for name, cmd in commands.items()}

    def stop(*_args) -> None:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 10
        for process in processes.values():
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                process.kill()

    signal.signal(signal.SIGTERM, lambda *a: (stop(), sys.exit(0)))
    url = f"http://127.0.0.1:{port}/admin/"
    try:
        if _wait_for(url + "login/", 60):
            login = (var / "admin-password.txt")
            password = login.read_text().strip() if login.exists() else "(see ensure_admin)"
            print(f"\n  Tagwerk is running: {url}\n  Login: admin / {password}\n"
                  "  Worker and beat are running beside it. Ctrl-C stops everything.\n",
                  flush=True)
        while all(p.poll() is None for p in processes.values()):
            time.sleep(0.5)
        dead = [name for name, p in processes.items() if p.poll() is not None]
        print(f"Stopping: {', '.join(dead)} exited.", file=sys.stderr)
        stop()
        return 1
    except KeyboardInterrupt:
        stop()
        return 0


if __name__ == "__main__":
    sys.exit(main())
