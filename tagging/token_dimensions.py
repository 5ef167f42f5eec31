"""Dimensions as API tokens name them: the catalog ``crm.tokens`` asks (registered in
``TaggingConfig.ready()``), so that ``create_api_token --dimension`` and the token admin
speak of dimensions by name while a token stores their ids (renames keep the grant)."""

from __future__ import annotations

from collections.abc import Sequence

from crm.tokens import DimensionCatalog
from tagging.models import Dimension
from tagging.names import name_key


def _ids(names: Sequence[str]) -> tuple[dict[str, int], list[str]]:
    keys = {name_key(n): n for n in names}
    found = dict(Dimension.objects.filter(name_key__in=keys).values_list("name_key", "pk"))
    return ({keys[k]: pk for k, pk in found.items()},
            [n for k, n in keys.items() if k not in found])


def _names(ids: Sequence[int]) -> list[str]:
    return list(Dimension.objects.filter(pk__in=ids).order_by("order", "name")
                .values_list("name", flat=True))


def _choices() -> list[tuple[int, str]]:
    return list(Dimension.objects.order_by("order", "name").values_list("pk", "name"))


CATALOG = DimensionCatalog(ids=_ids, names=_names, choices=_choices)
