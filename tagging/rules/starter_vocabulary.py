"""The starter vocabulary in each demo language, and a map from role to name.

The German vocabulary is ``tagging.vocabulary.STARTER_VOCABULARY`` (the source documents'
German article); the Chinese one uses the dimensions and tag names of the Chinese articles
(``shared/seeds/001`` and ``004``: 渠道, 身份, 目的, 消费, 特征, 互动 …). The demo data and
the starter rules name tags by *role* (``"churn_risk"``), so both follow the language the
demo is built in.
"""

from __future__ import annotations

from tagging.models import TagKind
from tagging.vocabulary import STARTER_VOCABULARY

LANGUAGES = ("de", "zh-hans")

# Role keys in the order of STARTER_VOCABULARY's dimensions and tags.
DIMENSION_ROLES = ["purchasing_power", "interest", "stage", "source", "activity", "lifecycle",
                   "occasions"]
TAG_ROLES = [
    ["vip", "svip", "high_value", "historical", "reactivation"],
    ["interest_makeup", "interest_sport", "interest_food", "interest_travel", "lipstick",
     "interest_product_a"],
    ["browsing", "cart_abandoned", "ordered", "completed", "repeat_buyer"],
    ["source_offline_event", "source_group", "source_official", "source_tiktok",
     "source_parcel_card", "source_qr"],
    ["high_activity", "needs_watching", "inactive", "churn_risk", "high_potential"],
    ["new_customer", "growth_high", "growth_low"],
    ["birthday_soon"],
]

CHINESE_VOCABULARY = [
    ("消费", "#B8860B", False, "消费能力：前20%的客户带来60%的收入。", [
        ("VIP", "★", TagKind.STATIC, None),
        ("SVIP", "☀", TagKind.STATIC, None),
        ("高价值客户", "◆", TagKind.DYNAMIC, None),
        ("历史存量", "☾", TagKind.DYNAMIC, None),
        ("历史存量-需要重新激活", "☾!", TagKind.DYNAMIC, None),
    ]),
    ("特征", "#D6336C", False, "喜好与产品偏好。", [
        ("兴趣-美妆", "", TagKind.STATIC, None),
        ("兴趣-运动", "", TagKind.STATIC, None),
        ("兴趣-美食", "", TagKind.STATIC, None),
        ("兴趣-旅行", "", TagKind.STATIC, None),
        ("品类-口红", "", TagKind.STATIC, None),
        ("兴趣-产品A", "", TagKind.DYNAMIC, 90),
    ]),
    ("目的", "#2F9E44", True, "购买阶段：每位客户只处于一个阶段。", [
        ("浏览中", "1", TagKind.DYNAMIC, None),
        ("加购未付款", "2", TagKind.DYNAMIC, None),
        ("已下单", "3", TagKind.DYNAMIC, None),
        ("已完成购买", "4", TagKind.DYNAMIC, None),
        ("复购客户", "5", TagKind.DYNAMIC, None),
    ]),
    ("渠道", "#1C7ED6", True, "来源渠道：客户从哪里来。", [
        ("渠道-线下活动", "", TagKind.STATIC, None),
        ("渠道-微信群", "", TagKind.STATIC, None),
        ("渠道-官方账号", "", TagKind.STATIC, None),
        ("渠道-抖音", "", TagKind.STATIC, None),
        ("渠道-快递包裹", "", TagKind.STATIC, None),
        ("渠道-二维码", "", TagKind.STATIC, None),
    ]),
    ("互动", "#F08C00", False, "互动活跃度，由规则维护。", [
        ("高度活跃", "3", TagKind.DYNAMIC, None),
        ("需要关注", "1", TagKind.DYNAMIC, None),
        ("不活跃客户", "0", TagKind.DYNAMIC, None),
        ("流失风险", "!", TagKind.DYNAMIC, None),
        ("高潜力-需跟进", "↑", TagKind.DYNAMIC, 30),
    ]),
    ("生命周期", "#7048E8", True, "客户生命周期（AIPL）。", [
        ("新客户", "N", TagKind.DYNAMIC, None),
        ("成长期-高频", "G+", TagKind.DYNAMIC, None),
        ("成长期-低频", "G", TagKind.DYNAMIC, None),
    ]),
    ("时机", "#0CA678", False, "需要发消息的时机。", [
        ("生日将至", "🎂", TagKind.DYNAMIC, None),
    ]),
]

VOCABULARIES = {"de": STARTER_VOCABULARY, "zh-hans": CHINESE_VOCABULARY}

# What the starter rules write besides the vocabulary: the dimension of dated purchase tags
# and the tag template of rule 3a.
PURCHASES_DIMENSION = {
    "de": ("Käufe", "#495057", "Dated product tags written by rule 3a."),
    "zh-hans": ("购买记录", "#495057", "规则3a写入的带日期的购买标签。"),
}
PURCHASE_TAG_TEMPLATE = {"de": "Gekauft {date:%Y-%m} {product}",
                         "zh-hans": "已购买 {date:%Y-%m} {product}"}


def vocabulary(language: str) -> list:
    if language not in VOCABULARIES:
        raise ValueError(f"No starter vocabulary for {language!r}; choose one of "
                         f"{', '.join(LANGUAGES)}.")
    return VOCABULARIES[language]


def role_names(language: str) -> dict[str, str]:
    """Role → tag or dimension name in ``language`` (``{"churn_risk": "流失风险", …}``)."""
    names: dict[str, str] = {}
    for dim_role, tag_roles, (dim_name, _c, _s, _d, entries) in zip(
            DIMENSION_ROLES, TAG_ROLES, vocabulary(language), strict=True):
        names[dim_role] = dim_name
        for role, entry in zip(tag_roles, entries, strict=True):
            names[role] = entry[0]
    return names
