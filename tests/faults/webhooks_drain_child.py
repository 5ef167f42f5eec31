"""One drain in a process of its own, as a webhooks worker runs it (the fault tests start it).

    python -m tests.faults.webhooks_drain_child GO_FILE

Prints "ready" once Django is set up, waits for GO_FILE, then drains until no
stored webhook waits any more (as a worker plus beat's tick would), and prints a
JSON line: how many deliveries it handled and how long it took.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main() -> None:
    import django

    django.setup()
    from campaigns.models import WebhookDelivery
    from campaigns.webhooks import webhooks_drain

    go = sys.argv[1]
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.01)
    started, handled = time.monotonic(), 0
    while WebhookDelivery.objects.filter(processed_at__isnull=True).exists():
        done = webhooks_drain()
        handled += done
        if not done:
            time.sleep(0.05)  # the rest is held by other drains (or waits for a retry)
    print(json.dumps({"handled": handled, "seconds": time.monotonic() - started}), flush=True)


if __name__ == "__main__":
    main()
