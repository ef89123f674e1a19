"""Configuration: schema mirroring Alloy's prometheus.remote_write, loading, validation, saving.

Modules: ``schema`` (dataclasses), ``load`` (``load_config``/``parse_config``),
``validate`` (rules), ``errors`` (``ConfigError`` with key paths), ``secrets``
(``Secret``), ``durations`` (Go-style durations), ``save``
(``update_config_file``/``dump_effective``), ``reference`` (README generator),
``cli`` (``check-config``), ``import_prometheus`` and ``import_cli``
(``import prometheus``: prometheus.yml to TOML).
"""
