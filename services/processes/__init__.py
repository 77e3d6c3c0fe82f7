"""Child processes: ``supervised`` (start, readiness, log tail, stop), ``broker`` (the embedded
Tansu broker), ``budgetvakt`` (a ``budgetvakt worker``/``notifier`` process) and ``scrape``
(reading a process's ``/metrics``)."""
