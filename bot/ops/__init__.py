"""Operating liqguard unattended: metrics, the status page, the watchdog (issue 12).

- journal_tail: the committed journal rows since start, read back as they land
- metrics: Prometheus metrics of the pipeline (metrics.listen, /metrics)
- http: the status page (http.listen), its live stream and its buttons
- watchdog: heartbeat, systemd notify, the dead-man's-switch ping, /healthz
- service: the hooks the runner calls (start, on_event, close)
"""
