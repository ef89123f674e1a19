"""The admin API: a running engine served to consoles (``attach``) and scripts (``ctl``)."""
