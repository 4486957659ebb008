"""Routing: which destinations an article's matches go to, as one outbox row per destination."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from monitor.models import Match
from monitor.notify.destinations import Destinations


@dataclass(frozen=True)
class PlannedDelivery:
    destination: str
    kind: str  # alert: sent at once | digest: collected by the destination's digest
    rules: tuple[str, ...]
    alert: bool = False  # one of the rules has severity alert (quiet hours never hold it)


def plan_deliveries(matches: Sequence[Match], destinations: Destinations) -> list[PlannedDelivery]:
    """A rule's matches go to its routes, or to the default routes when it names none. A digest destination
    collects every match routed to it; an immediate destination gets the ``alert`` rules at once and never
    the ``digest`` ones (those go only into digests). Several rules routed to one destination make one row
    that lists them all, in match order."""
    planned: dict[str, tuple[str, list[str]]] = {}
    alerts: set[str] = set()
    for match in matches:
        for name in destinations.routes_for(match.routes):
            destination = destinations.get(name)
            if destination is None:  # refused when rules and destinations load; kept out of the outbox
                continue
            if destination.mode == "immediate" and match.severity != "alert":
                continue
            kind = "alert" if destination.mode == "immediate" else "digest"
            rules = planned.setdefault(name, (kind, []))[1]
            if match.rule_id not in rules:
                rules.append(match.rule_id)
            if match.severity == "alert":
                alerts.add(name)
    return [PlannedDelivery(name, kind, tuple(rules), name in alerts) for name, (kind, rules) in planned.items()]
