"""Trigger sources of the local host: HTTP routes, queue listeners, timer schedules."""
