"""Template content: variables from contact fields, the API components, pre-launch checks."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from django.utils.translation import gettext as _

from campaigns.backends.base import TemplateMessage
from campaigns.links import BUTTON, link_target, link_token, link_url, links_base
from campaigns.links import PREFIX as LINK_PREFIX
from campaigns.models import SensitiveWord, Template, TemplateCategory, TemplateStatus
from crm.models import Contact, Gender
from tagging.offers.models import Offer

BODY_MAX, FOOTER_MAX, IMAGE_MAX_BYTES = 1024, 60, 5 * 1024 * 1024
BUTTON_TEXT_MAX, BUTTON_URL_MAX = 25, 2000
PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")
LINK = re.compile(r"(https?://|www\.)\S+", re.I)
NEUTRAL = "Kundin/Kunde"


def _salutation(contact: Contact) -> str:
    if contact.salutation:
        return contact.salutation
    return {Gender.FEMALE: "Frau", Gender.MALE: "Herr"}.get(contact.gender, "")


def _salutation_last_name(contact: Contact) -> str:
    salutation = _salutation(contact)
    return f"{salutation} {contact.last_name}" if salutation and contact.last_name else ""


# source name -> (value from a contact, fallback when the value is empty)
SOURCES: dict[str, tuple[Callable[[Contact], str], str]] = {
    "salutation_last_name": (_salutation_last_name, NEUTRAL),
    "first_name": (lambda c: c.first_name, NEUTRAL),
    "last_name": (lambda c: c.last_name, NEUTRAL),
    "full_name": (lambda c: " ".join(p for p in (c.first_name, c.last_name) if p), NEUTRAL),
    "city": (lambda c: c.city, "–"),
    "last_purchase_at": (
        lambda c: c.last_purchase_at.strftime("%d.%m.%Y") if c.last_purchase_at else "", "–"),
    "total_spent": (lambda c: f"{c.total_spent:.2f}", "0.00"),
}


OFFER_FIELDS = ("code", "link", "name", "description")


def offer_value(source: str) -> str | None:
    """``offer:<slug>`` (its code, else its link) or ``offer:<slug>.link|code|name|
    description``; None when no offer has the slug. The same for every contact: who may
    use the offer is the audience's business (a journey or campaign sends it to them)."""
    slug, _dot, part = source.removeprefix("offer:").partition(".")
    if part and part not in OFFER_FIELDS:
        return None
    offer = Offer.objects.filter(slug=slug).first()
    if offer is None:
        return None
    return getattr(offer, part) if part else (offer.code or offer.link)


@dataclass(frozen=True)
class Variable:
    source: str
    fallback: str | None = None

    @classmethod
    def parse(cls, raw: str | dict) -> Variable:
        if isinstance(raw, dict):
            return cls(str(raw.get("source", "")).strip(), raw.get("fallback"))
        return cls(str(raw).strip())

    def known(self) -> bool:
        if self.source.startswith("offer:"):
            return offer_value(self.source) is not None
        if self.source.startswith(LINK_PREFIX):
            return link_target(self.source) is not None
        return (self.source in SOURCES or self.source.startswith("text:")
                or (self.source.startswith("attributes.") and len(self.source) > 11))

    def value(self, contact: Contact) -> str:
        if self.source.startswith("text:"):
            return self.source[5:]
        if self.source.startswith(LINK_PREFIX):
            # Previews and test sends have no send to track: they show the target itself.
            return link_target(self.source) or (self.fallback or "–")
        if self.source.startswith("offer:"):
            value = (offer_value(self.source) or "").strip()
            return value or (self.fallback if self.fallback is not None else "–")
        if self.source.startswith("attributes."):
            value, fallback = str((contact.attributes or {}).get(self.source[11:], "")), "–"
        elif self.source not in SOURCES:  # none or unknown: the checks block a launch
            value, fallback = "", "–"
        else:
            getter, fallback = SOURCES[self.source]
            value = getter(contact)
        value = (value or "").strip()
        return value or (self.fallback if self.fallback is not None else fallback)


def variables_of(template: Template) -> list[Variable]:
    return [Variable.parse(v) for v in template.variables or []]


def placeholders(text: str) -> list[str]:
    return list(dict.fromkeys(PLACEHOLDER.findall(text)))


def is_named(names: list[str]) -> bool:
    """True when the placeholders are names ({{first_name}}), not numbers ({{1}})."""
    return bool(names) and not any(name.isdigit() for name in names)


def render_values(template: Template, contact: Contact, send_id: int | None = None
                  ) -> list[str]:
    """The variables' values for ``contact``; with ``send_id``, ``link:`` variables become
    tracked links of that send (campaigns.links)."""
    return [link_url(send_id, index)
            if send_id is not None and link_target(v.source) is not None else v.value(contact)
            for index, v in enumerate(variables_of(template))]


def render_preview(template: Template, contact: Contact) -> str:
    """The body as ``contact`` will read it."""
    values = render_values(template, contact)

    names = placeholders(template.body)

    def fill(match: re.Match) -> str:
        key = match.group(1)
        index = int(key) - 1 if key.isdigit() else names.index(key)
        return values[index] if 0 <= index < len(values) else match.group(0)

    text = PLACEHOLDER.sub(fill, template.body)
    return f"{text}\n\n{template.footer}" if template.footer else text


def message_for(template: Template, contact: Contact, send_id: int | None = None
                ) -> TemplateMessage:
    """The Cloud API template object for one contact (reference §1.3); ``send_id`` turns
    ``link:`` variables into tracked links."""
    components: list[dict] = []
    link = template.header_image_link
    if not link and template.header_image:
        link = template.header_image.url
    if link:
        components.append({"type": "header",
                           "parameters": [{"type": "image", "image": {"link": link}}]})
    values = render_values(template, contact, send_id)
    if values:
        names = placeholders(template.body)
        if is_named(names):
            # Named templates ({{first_name}}): each parameter carries its placeholder's
            # name (reference §1.3, "Named parameters"); positional ones never do.
            parameters = [{"type": "text", "text": v, "parameter_name": name}
                          for name, v in zip(names, values, strict=False)]
        else:
            parameters = [{"type": "text", "text": v} for v in values]
        components.append({"type": "body", "parameters": parameters})
    components.extend(_button_components(template, contact, send_id))
    return TemplateMessage(name=template.name, language=template.language,
                           components=components)


def url_buttons(template: Template) -> list[tuple[int, dict]]:
    """(index among the buttons, button) of each URL button with a ``{{1}}`` suffix."""
    return [(i, b) for i, b in enumerate(template.buttons or [])
            if isinstance(b, dict) and b.get("type") == "url" and "{{1}}" in str(b.get("url", ""))]


def _button_components(template: Template, contact: Contact, send_id: int | None) -> list[dict]:
    """A dynamic URL button's suffix (reference §1.3): a ``link:`` source becomes the
    tracked link's token (a test send's token names the template and records nothing)."""
    components = []
    for index, button in url_buttons(template):
        variable = Variable.parse(button)
        if link_target(variable.source) is not None:
            value = link_token(send_id or 0, BUTTON + index,
                               template_id=None if send_id else template.pk)
        else:
            value = variable.value(contact)
        components.append({"type": "button", "sub_type": "url", "index": str(index),
                           "parameters": [{"type": "text", "text": value}]})
    return components


# --- Pre-launch checks ---------------------------------------------------------

BLOCK, WARN = "block", "warn"
SPAM_NOTE = _("Links must point at a registered domain relevant to your business; the same "
              "link sent daily for a week to many users raises the spam-classification risk "
              "by about 70% (PRODUCT.md §7). Plain text is safest.")


@dataclass(frozen=True)
class Check:
    level: str  # "block" or "warn"
    code: str
    message: str


def template_checks(template: Template, *, opt_out_words: list[str] | None = None) -> list[Check]:
    """What is wrong with ``template`` before anyone receives it."""
    checks: list[Check] = []
    if template.status != TemplateStatus.APPROVED:
        checks.append(Check(BLOCK, "not_approved", _(
            "Template “%(name)s” is %(status)s in WhatsApp Manager; only approved templates "
            "can be sent.") % {"name": template.name, "status": template.get_status_display()}))
    if len(template.body) > BODY_MAX:
        checks.append(Check(BLOCK, "body_too_long", _(
            "The body has %(n)d characters; WhatsApp allows %(max)d.")
            % {"n": len(template.body), "max": BODY_MAX}))
    if len(template.footer) > FOOTER_MAX:
        checks.append(Check(BLOCK, "footer_too_long", _(
            "The footer has %(n)d characters; WhatsApp allows %(max)d.")
            % {"n": len(template.footer), "max": FOOTER_MAX}))
    names = placeholders(template.body)
    variables = variables_of(template)
    if names and not is_named(names) and not all(n.isdigit() for n in names):
        checks.append(Check(BLOCK, "placeholders_mixed", _(
            "The body mixes numbered ({{1}}) and named ({{first_name}}) placeholders; "
            "WhatsApp accepts one kind per template.")))
    for name in names:
        if not name.isdigit() and not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            checks.append(Check(BLOCK, "placeholder_name", _(
                "The placeholder {{%(name)s}} is not a valid name; WhatsApp allows lowercase "
                "letters, digits and underscores, starting with a letter.") % {"name": name}))
    for index, name in enumerate(names, start=1):
        if name.isdigit() and name != str(index):
            checks.append(Check(BLOCK, "placeholders_not_sequential", _(
                "Placeholders must be {{1}}, {{2}} … in order; found {{%(name)s}} at "
                "position %(pos)d.") % {"name": name, "pos": index}))
            break
    if len(variables) < len(names):
        missing = ", ".join("{{" + n + "}}" for n in names[len(variables):])
        checks.append(Check(BLOCK, "unmapped_variables", _(
            "No contact field is mapped to %(missing)s; add a variable for each placeholder.")
            % {"missing": missing}))
    elif len(variables) > len(names):
        checks.append(Check(BLOCK, "extra_variables", _(
            "%(n)d variables are mapped but the body has only %(p)d placeholders; WhatsApp "
            "would refuse every message (error 132000).") % {"n": len(variables),
                                                             "p": len(names)}))
    for variable in variables:
        if not variable.known():
            checks.append(Check(BLOCK, "unknown_variable", _(
                "Unknown variable source “%(source)s”; use one of %(known)s, attributes.<key>, "
                "offer:<slug of an offer>, link:<https address> (a tracked link) or "
                "text:<fixed text>.") % {"source": variable.source,
                                             "known": ", ".join(SOURCES)}))
    checks.extend(button_checks(template))
    text = f"{template.body}\n{template.footer}".casefold()
    for word in SensitiveWord.objects.all():
        if word.word.casefold() in text:
            checks.append(Check(BLOCK if word.blocks else WARN, "sensitive_word", _(
                "The text contains the sensitive word “%(word)s”.") % {"word": word.word}))
    if LINK.search(template.body) or LINK.search(template.footer):
        checks.append(Check(WARN, "links", _("The message contains a link. ") + SPAM_NOTE))
    if template.category == TemplateCategory.MARKETING:
        words = [w.casefold() for w in (opt_out_words or [])]
        button_text = " ".join(str(b.get("text", "")) for b in template.buttons or []
                               if isinstance(b, dict)).casefold()
        if not any(w in text or w in button_text for w in words):
            checks.append(Check(WARN, "no_opt_out", _(
                "Marketing messages should say how to opt out, e.g. a footer “Antworte STOP zum "
                "Abmelden” or a “Stop” quick-reply button.")))
    checks.extend(image_checks(template))
    return checks


def button_checks(template: Template) -> list[Check]:
    """Labels and URLs within WhatsApp's limits; every ``{{1}}`` suffix mapped; a tracked
    link's button approved with this server's link address."""
    checks: list[Check] = []
    for button in (b for b in template.buttons or [] if isinstance(b, dict)):
        label, url = str(button.get("text", "")), str(button.get("url", ""))
        if len(label) > BUTTON_TEXT_MAX:
            checks.append(Check(BLOCK, "button_text_too_long", _(
                "The button “%(text)s” has %(n)d characters; WhatsApp allows %(max)d.")
                % {"text": label, "n": len(label), "max": BUTTON_TEXT_MAX}))
        if len(url) > BUTTON_URL_MAX:
            checks.append(Check(BLOCK, "button_url_too_long", _(
                "The address of the button “%(text)s” has %(n)d characters; WhatsApp allows "
                "%(max)d.") % {"text": label, "n": len(url), "max": BUTTON_URL_MAX}))
    for _index, button in url_buttons(template):
        checks.extend(_url_button_checks(button))
    return checks


def _url_button_checks(button: dict) -> list[Check]:
    label, url = str(button.get("text", "")), str(button.get("url", ""))
    variable = Variable.parse(button)
    if not variable.source:
        return [Check(BLOCK, "button_unmapped", _(
            "The button “%(text)s” ends in {{1}} but names no source for it; add "
            "\"source\", e.g. \"link:https://…\" or \"attributes.order_id\".") % {"text": label})]
    if not variable.known():
        return [Check(BLOCK, "unknown_variable", _(
            "Unknown source “%(source)s” for the button “%(text)s”.")
            % {"source": variable.source, "text": label})]
    expected = links_base() + "{{1}}"
    if link_target(variable.source) is not None and url != expected:
        return [Check(BLOCK, "button_link_address", _(
            "The button “%(text)s” carries a tracked link, so its address in WhatsApp "
            "Manager must be %(expected)s, not %(url)s.")
            % {"text": label, "expected": expected, "url": url})]
    return []


def image_checks(template: Template) -> list[Check]:
    if not template.header_image:
        return []
    checks: list[Check] = []
    try:
        size = template.header_image.size
    except (OSError, ValueError):
        return [Check(BLOCK, "image_missing", _("The header image file cannot be read."))]
    if size > IMAGE_MAX_BYTES:
        checks.append(Check(BLOCK, "image_too_large", _(
            "The header image is %(mb).1f MB; WhatsApp accepts at most 5 MB.")
            % {"mb": size / 1024 / 1024}))
    try:
        from PIL import Image  # Pillow loads only for the few templates with an image

        template.header_image.open("rb")
        with Image.open(template.header_image) as image:
            kind, dimensions = image.format, image.size
    except Exception:
        return [*checks, Check(BLOCK, "image_unreadable", _(
            "The header image is not a readable JPEG or PNG."))]
    finally:
        template.header_image.close()
    if kind not in ("JPEG", "PNG"):
        checks.append(Check(BLOCK, "image_format", _(
            "The header image is %(kind)s; WhatsApp accepts JPEG or PNG.") % {"kind": kind}))
    if dimensions != (1920, 1080):
        checks.append(Check(WARN, "image_size", _(
            "The header image is %(w)d×%(h)d; 1920×1080 shows best on phones.")
            % {"w": dimensions[0], "h": dimensions[1]}))
    return checks

