"""Notifications: channels (Apprise URLs), events from the outbox, delivery by every
scheduler process. See docs/notifications.md."""
