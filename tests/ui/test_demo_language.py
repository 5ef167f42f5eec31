"""``seed_demo --language zh-hans`` builds the demo in the Chinese articles' vocabulary."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from tagging.models import Dimension, Tag, TagAssignment
from tagging.rules.models import Rule

pytestmark = pytest.mark.django_db


def test_the_chinese_demo_uses_the_chinese_vocabulary_and_rules_follow_it():
    out = StringIO()
    call_command("seed_demo", "--contacts", "300", "--language", "zh-hans", "--json",
                 stdout=out)
    assert json.loads(out.getvalue())["contacts_created"] == 300
    names = set(Dimension.objects.values_list("name", flat=True))
    assert {"消费", "特征", "目的", "渠道", "互动", "生命周期"} <= names
    assert not {"Kaufkraft", "Aktivität"} & names
    assert TagAssignment.objects.filter(tag__name="流失风险").exists()
    rule = Rule.objects.get(starter_key="starter-4")
    assert rule.name.startswith("4 ") and "流失风险" in rule.name
    assert [t.name for t in rule.add_tags.all()] == ["流失风险"]
    assert Rule.objects.get(starter_key="starter-5d").segment.endswith('"生命周期/*"')
    assert Rule.objects.get(starter_key="starter-3a").add_template.startswith("已购买")


def test_the_german_demo_is_the_default():
    call_command("seed_demo", "--contacts", "50", stdout=StringIO())
    assert Tag.objects.filter(name="Drohender Abwanderer").exists()
    assert Rule.objects.get(starter_key="starter-6").segment == \
        '"VIP" AND NOT last_interaction within 180d'
