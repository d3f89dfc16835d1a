"""Tugboat's runtime: settings, Slack wiring, the webhook server, the ECS gateway, state."""
