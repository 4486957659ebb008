"""Delivery: destinations, routing, the outbox and the notifiers (Slack, email, console)."""
