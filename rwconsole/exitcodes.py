"""Process exit codes of every ``rwconsole`` command (documented in the README).

This module imports nothing, so any layer can use the codes without importing
the command line.
"""

EXIT_OK = 0  # success
EXIT_BAD = 1  # the thing checked is bad (invalid config, corrupt WAL) or the run failed
EXIT_USAGE = 2  # usage error (unknown option, missing file argument)
EXIT_UNREACHABLE = 3  # attach/ctl: the admin API cannot be reached or refused the credentials
EXIT_INTERRUPTED = 130  # interrupted
