"""Notifications: an outbox of messages written in their events' transactions, delivered by
the sweeping process to the employees (e-mail) and the departments' group robots (WeCom,
DingTalk, Feishu), with retries, dead letters and resends."""
