from django.dispatch import Signal

# Sent once per tags_change() call (never per contact) with ``result`` (a
# TagChangeResult), ``actor`` and ``source``.
tags_changed = Signal()
