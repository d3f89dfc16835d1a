"""Tugboat's actions, one module per verb. They emit progress events and know nothing of Slack."""
