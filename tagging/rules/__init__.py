"""Rules that keep tags true: When (event or schedule) → Who (segment) → Then (tag changes)."""
