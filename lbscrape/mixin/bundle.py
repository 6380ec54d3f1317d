"""The whole mixin for one catalog, config and (optional) owner: dashboards, alert groups,
recording-rule groups, and notes on what was left out and why."""

from __future__ import annotations

from dataclasses import dataclass

from lbscrape.core.catalog import Catalog
from lbscrape.mixin import alerts as rules_mod
from lbscrape.mixin.alerts import Group, Rule
from lbscrape.mixin.dashboards import KIND_DEFS, Dashboard, lb_dashboard
from lbscrape.mixin.health import health_dashboard
from lbscrape.mixin.queries import Fetched
from lbscrape.mixin.records import recording_groups
from lbscrape.mixin.settings import DEFAULT_CONFIG, MixinConfig, OwnerRef

# Which dashboards an owner's mixin holds: a Service may get an NLB or a classic ELB
# (which one, the mixin cannot know without the cluster), an Ingress an ALB.
OWNER_DASHBOARDS = {"ingress": ("alb", "target-groups"),
                    "ingress-group": ("alb", "target-groups"),
                    "service": ("nlb", "classic", "target-groups")}


@dataclass(frozen=True)
class Bundle:
    dashboards: tuple[Dashboard, ...]
    alert_groups: tuple[Group, ...]
    rule_groups: tuple[Group, ...]
    """Empty for an owner: recorded series are fleet-wide, and one owner's copy loaded next
    to the fleet's would record the same series twice."""
    notes: tuple[str, ...]
    config: MixinConfig
    owner: OwnerRef | None

    @property
    def alerts(self) -> tuple[Rule, ...]:
        return tuple(r for g in self.alert_groups for r in g["rules"])

    @property
    def records(self) -> tuple[Rule, ...]:
        return tuple(r for g in self.rule_groups for r in g["rules"])


def build(catalog: Catalog, cfg: MixinConfig = DEFAULT_CONFIG, owner: OwnerRef | None = None
          ) -> Bundle:
    fetched = Fetched(catalog)
    keys = OWNER_DASHBOARDS[owner.kind] if owner else tuple(k.key for k in KIND_DEFS)
    found = [lb_dashboard(k, fetched, cfg, owner) for k in KIND_DEFS if k.key in keys]
    boards = [d for d in found if d is not None]
    notes = [f"dashboard {k.key}: left out, the catalog fetches none of its metrics"
             for k, d in zip((k for k in KIND_DEFS if k.key in keys), found, strict=True)
             if d is None]
    if owner is None:
        boards.append(health_dashboard(cfg))
    ctx = rules_mod.Ctx(fetched, cfg, owner)
    groups, alert_notes = rules_mod.alert_groups(ctx)
    rules = recording_groups(ctx) if owner is None else []
    return Bundle(tuple(boards), tuple(groups), tuple(rules), (*notes, *alert_notes), cfg,
                  owner)
