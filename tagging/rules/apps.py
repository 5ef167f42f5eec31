from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RulesConfig(AppConfig):
    """Rules that keep tags true: when (an event or a schedule), who (an expression), then."""

    name = "tagging.rules"
    verbose_name = _("Rules")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from crm.events import events_recorded
        from crm.jobs import register_job_kind
        from tagging.audiences.language import expressions_naming
        from tagging.insight import usage
        from tagging.roles import MARKETERS, TAG_ADMINISTRATORS, role_permissions_add
        from tagging.rules import services, tasks
        from tagging.rules.models import Rule
        from tagging.rules.receivers import on_events_recorded
        from tagging.rules.selectors import rule_tags_last_used
        from tagging.vocabulary import register_tag_reference

        # Event rules react to recorded events (the receiver only enqueues).
        events_recorded.connect(on_events_recorded, dispatch_uid="tagging.rules.events")
        # A worker that dies mid-run: the sweeper runs the rule again (crm.jobs).
        register_job_kind(services.RULE_JOB, task=tasks.rule_run_task.name,
                          give_up=services.rule_run_give_up)
        register_tag_reference(_("rules whose condition names it"), lambda tag: expressions_naming(
            tag, Rule.objects.exclude(segment="").values_list("segment", flat=True)))
        # A tag an enabled rule names is in use (insight's "inactive tags" leaves it out).
        usage.register_usage_provider("rules", rule_tags_last_used, _("a rule"))
        role_permissions_add(TAG_ADMINISTRATORS, [
            "rules.add_rule", "rules.change_rule", "rules.delete_rule", "rules.view_rule",
            "rules.view_rulerun"])
        role_permissions_add(MARKETERS, ["rules.view_rule", "rules.view_rulerun"])
