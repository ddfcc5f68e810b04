"""Paging: wake a person through PagerDuty, Opsgenie and email (issue 12, `paging:`).

- channels: PagerDutyChannel, OpsgenieChannel, EmailChannel (delivery channels), Page
- pagers: Pagers, the Notifier that decides what pages and keeps one incident per episode
- factory: build_pagers(settings, journal, ...) from the config and the environment
"""
