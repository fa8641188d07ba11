"""The watcher: which tags a set of Dockerfiles uses (``targets``), what changed
(``detect``), what was seen and sent (``store``, ``store_pg``), one round of checks
(``watcher``), registry webhooks (``listener``) and the run modes (``service``).
"""
