"""Service discovery for scrape jobs: mechanisms that produce Prometheus target groups.

Public surface: ``TargetGroup`` and the ``Discoverer`` protocol (``common``),
``DiscoveryManager`` (``manager``: runs one job's discoverers, merges and
throttles their groups) and ``build_discoverers`` (``providers``: one job's
discoverers from its config). One module per mechanism: ``static``, ``file``,
``http``, ``dns``, ``kubernetes``.
"""
