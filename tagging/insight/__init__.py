"""Insight: the weekly tag health report, the dashboard and tag analytics.

Modules: ``conf`` (settings with defaults), ``usage`` (the registries other
apps plug into), ``selectors`` (reads and findings), ``services`` (writes:
reports, snapshots, mail, the sleeping-VIP move), ``tasks`` (beat wrappers),
``charts`` (server-side SVG), ``admin`` (dashboard, report and analytics pages).
"""
