"""Headless operation (``rwconsole run``): signals, config reload, logging to stderr.

SIGINT/SIGTERM stop the engine cleanly (flush within the deadline, persist the
delivery progress, close the WAL). SIGHUP reloads the config file in place
(``Engine.reload``): only what changed is restarted, an invalid config or a
failing apply is logged and the running pipeline is kept; the process never
exits because of a reload.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import logging
import signal
import threading
from pathlib import Path
from types import FrameType

from rwconsole.cli import err_console
from rwconsole.config.errors import ConfigError, ConfigFileError
from rwconsole.config.load import load_config
from rwconsole.config.schema import Config
from rwconsole.engine import Engine, EngineError
from rwconsole.exitcodes import EXIT_BAD, EXIT_OK, EXIT_USAGE
from rwconsole.logcollapse import CollapsingHandler

log = logging.getLogger("rwconsole.runner")

RELOAD_TIMEOUT = 300.0
"""A reload waits for removed endpoints to flush; this bounds a stuck one."""


def load_or_report(path: str) -> Config | None:
    """Load a config, printing every problem (never a traceback) on failure."""
    try:
        return load_config(path)
    except ConfigError as err:
        err_console.print(str(err), markup=False, highlight=False)
        return None
    except ConfigFileError as err:
        err_console.print(f"cannot read config {err}", markup=False, highlight=False)
        return None


def setup_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("rwconsole")
    root.addHandler(CollapsingHandler(handler))
    root.setLevel(level)


def run_headless(args: argparse.Namespace) -> int:
    config_path: str = args.config
    if not Path(config_path).is_file():
        err_console.print(f"[bold red]error:[/] config file not found: {config_path}")
        return EXIT_USAGE
    config = load_or_report(config_path)
    if config is None:
        return EXIT_BAD
    setup_logging()
    events: list[str] = []
    wake = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        events.append("reload" if signum == signal.SIGHUP else "stop")
        wake.set()

    previous = {
        sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    }
    engine = Engine(config, config_path=config_path, data_dir=getattr(args, "data_dir", None))
    try:
        engine.start()
    except EngineError as err:
        err_console.print(f"[bold red]cannot start:[/] {err}")
        return EXIT_BAD
    try:
        while True:
            wake.wait(1.0)
            wake.clear()
            if not engine.running:
                log.error("the engine stopped unexpectedly")
                return EXIT_BAD
            while events:
                event = events.pop(0)
                if event == "stop":
                    log.info("stopping (signal)")
                    engine.stop()
                    return EXIT_OK
                log.info("reloading config %s (SIGHUP)", config_path)
                try:
                    engine.reload().result(RELOAD_TIMEOUT)
                except (EngineError, concurrent.futures.TimeoutError) as err:
                    # the engine logs the outcome; this is only a stuck or stopped loop
                    log.error("config reload did not finish: %s", err or "timed out")
    finally:
        engine.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
