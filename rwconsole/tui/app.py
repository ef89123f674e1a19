"""The console application: screens as modes, the snapshot timer, commands and themes.

The app never touches engine internals. Once per second it takes the
engine's latest immutable ``Snapshot`` (a reference swap, never a wait) and
hands it to the visible screen. Commands go through the engine's command API
(``rwconsole.snapshot.EngineControl``, the only view of the engine it has);
their futures are awaited with ``asyncio.wrap_future`` on the app's own loop,
so neither the UI thread nor the engine thread ever waits for the other.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

from textual.app import App, ScreenStackError, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen

from rwconsole.snapshot import EMPTY_SNAPSHOT, EngineControl, Snapshot
from rwconsole.tui import themes as theme_files
from rwconsole.tui.markup import escape
from rwconsole.tui.textual_fixes import apply_all as apply_textual_fixes
from rwconsole.wal.offload import ToolProcess

apply_textual_fixes()

WINDOWS: tuple[tuple[str, float], ...] = (
    ("1m", 60.0),
    ("5m", 300.0),
    ("15m", 900.0),
    ("1h", 3600.0),
)
COMMAND_TIMEOUT = 30.0
REFRESH_INTERVAL = 1.0
WARM_UP_PAUSE = 0.05

SCREENS: tuple[tuple[str, str, str], ...] = (
    # (mode, key, title)
    ("overview", "1", "Overview"),
    ("endpoints", "2", "Endpoints"),
    ("queue", "3", "Queue config"),
    ("wal", "4", "WAL"),
    ("demo", "5", "Demo"),
    ("logs", "6", "Logs"),
    ("targets", "7", "Targets"),
)


def _screen_factory(mode: str) -> Callable[[], Screen[Any]]:
    def make() -> Screen[Any]:
        from rwconsole.tui.screens import (
            demo,
            endpoints,
            logs,
            overview,
            queue_config,
            targets,
            wal,
        )

        classes: dict[str, type[Screen[Any]]] = {
            "overview": overview.OverviewScreen,
            "endpoints": endpoints.EndpointsScreen,
            "queue": queue_config.QueueConfigScreen,
            "wal": wal.WalScreen,
            "demo": demo.DemoScreen,
            "logs": logs.LogsScreen,
            "targets": targets.TargetsScreen,
        }
        return classes[mode]()

    return make


class ConsoleApp(App[int]):
    """rwconsole's operations console.

    ``engine`` is a running engine (or ``None`` for the WAL viewer alone).
    ``snapshot`` replaces the live engine's snapshots with a fixed, recorded
    one (commands are then unavailable). ``wal_dir`` is the WAL the WAL
    screen opens first (default: the engine's).
    """

    CSS_PATH = "app.tcss"
    TITLE = "rwconsole"
    BINDINGS: ClassVar[list[BindingType]] = [
        *(
            Binding(key, f"show('{mode}')", title, id=f"screen-{mode}")
            for mode, key, title in SCREENS
        ),
        Binding("t", "next_theme", "Theme", id="next-theme"),
        Binding("question_mark", "help", "Help", key_display="?", id="help"),
        Binding("ctrl+q", "quit", "Quit", priority=True, id="quit"),
        # In the command palette ("Reload config"), where its key is named.
        Binding("f5", "reload_config", show=False, id="reload-config"),
    ]

    def __init__(
        self,
        engine: EngineControl | None = None,
        *,
        snapshot: Snapshot | None = None,
        wal_dir: str | Path | None = None,
        config_path: str | Path | None = None,
        theme_dir: str | Path | None = None,
        start: str | None = None,
        refresh_interval: float = REFRESH_INTERVAL,
    ) -> None:
        super().__init__()
        self.engine = engine
        self.fixed_snapshot = snapshot
        self.snapshot: Snapshot = snapshot or EMPTY_SNAPSHOT
        self.wal_only = engine is None and snapshot is None
        self.wal_dir = Path(wal_dir) if wal_dir else None
        self.config_path = Path(config_path) if config_path else None
        self.selected_endpoint: str | None = None
        self.window_index = 1
        self.refresh_interval = refresh_interval
        self._start_mode = start or ("wal" if self.wal_only else "overview")
        self._theme_dir = theme_dir
        self._engine_lost = False
        self._own_themes: list[str] = []
        """Themes from theme files (ours and the user's): the ones ``t`` cycles through."""
        self._has_demo = False
        self.tools = ToolProcess()
        """Where slow read-only work (WAL inspect, verify, search) runs."""
        for mode, _key, _title in SCREENS:
            self.add_mode(mode, _screen_factory(mode))

    # ---- lifecycle ---------------------------------------------------------------------

    def on_mount(self) -> None:
        self._load_themes()
        self._poll()
        self.set_interval(self.refresh_interval, self._poll, name="snapshot-poll")
        self.switch_mode(self._start_mode)
        self.theme_changed_signal.subscribe(self, self._remember_theme)
        self.call_after_refresh(lambda: self.run_worker(self._warm_up_screens()))

    async def _warm_up_screens(self) -> None:
        """Build every other screen now, one at a time, while nobody waits for a key.

        A screen's first showing costs Textual its compose, a stylesheet rebuild
        for the widget types it brings and a restyle (a few hundred ms under
        load); paying that right after the first frame keeps later key presses
        fast. Each visit there and back happens in one step, so the other screens
        are never painted, and keys pressed meanwhile wait for one step at most.
        """
        home = self.current_mode
        others = [m for m, _k, _t in SCREENS if m != home and self.check_action("show", (m,))]
        # Twice: built on the first visit; restyled with the final stylesheet on the second.
        for mode in [*others, *others]:
            await asyncio.sleep(WARM_UP_PAUSE)
            if self._closing_down:
                return
            if len(self.screen_stack) > 1 or self.current_mode != home:
                return  # the user moved or opened a dialog: the rest comes on demand
            with self.batch_update():
                mounted = self.switch_mode(mode)
                self.switch_mode(home)
            await mounted

    @property
    def _closing_down(self) -> bool:
        return self._exit or not self.is_running

    def on_unmount(self) -> None:
        self.tools.close()

    def _load_themes(self) -> None:
        found, problems = theme_files.load_themes(self._theme_dir)
        for theme in found.values():
            self.register_theme(theme)
        self._own_themes = list(found)
        for problem in problems:
            self.notify(escape(str(problem)), title="Theme", severity="warning", timeout=10)
        wanted = theme_files.saved_theme() or theme_files.DEFAULT_THEME
        if wanted not in self.available_themes:
            wanted = theme_files.DEFAULT_THEME
        if wanted in self.available_themes:
            self.theme = wanted

    def _remember_theme(self, theme: Any) -> None:
        error = theme_files.save_theme(theme.name)
        if error:
            self.notify(escape(error), title="Theme", severity="warning")

    def _poll(self) -> None:
        if self.fixed_snapshot is not None or self.engine is None:
            snap = self.snapshot
        else:
            snap = self.engine.snapshot()
            if not self.engine.running and not self._engine_lost:
                self._engine_lost = True
                self.notify(
                    "The engine stopped; the console shows its last state.",
                    severity="error",
                    timeout=30,
                )
            self._show_connection(getattr(self.engine, "connection", None))
        changed = snap is not self.snapshot
        self.snapshot = snap
        if (snap.demo is not None) != self._has_demo:
            self._has_demo = snap.demo is not None
            self.refresh_bindings()  # the Demo key appears (or goes) with the demo receiver
        if self.selected_endpoint is None and snap.endpoints:
            self.selected_endpoint = snap.endpoints[0].name
        if changed or not self._polled_once:
            self._polled_once = True
            self.push_snapshot()

    _polled_once = False
    _link_state = ""

    def _show_connection(self, link: Any) -> None:
        """An attached console: the link (target, state, latency) in the header, changes noted."""
        if link is None:
            return
        title = f"rwconsole · attached to {link.describe()}"
        with contextlib.suppress(ScreenStackError):  # before the first screen
            screen = self.screen
            if getattr(screen, "ready", False) and screen.title != title:
                screen.title = title
        if link.state == self._link_state:
            return
        if link.state == "reconnecting" and self._link_state == "connected":
            self.notify(
                f"lost the connection to {link.target}; reconnecting…",
                severity="warning",
                timeout=10,
            )
        elif link.state == "connected" and link.connects > 1:
            self.notify(f"reconnected to {link.target}", title="Attached", timeout=8)
        self._link_state = link.state

    def push_snapshot(self) -> None:
        """Hand the current snapshot to the visible screen."""
        if self._closing_down:
            return  # the screens are being taken apart
        screen = self.screen
        redraw = getattr(screen, "redraw", None)
        if callable(redraw) and getattr(screen, "ready", False) and screen.is_running:
            redraw()

    # ---- state shared by the screens ---------------------------------------------------

    @property
    def window(self) -> tuple[str, float]:
        return WINDOWS[self.window_index]

    @property
    def commands_available(self) -> bool:
        return self.engine is not None and self.fixed_snapshot is None

    @property
    def endpoint_names(self) -> list[str]:
        return [e.name for e in self.snapshot.endpoints]

    def select_endpoint(self, name: str) -> None:
        self.selected_endpoint = name
        self.push_snapshot()

    def step_endpoint(self, step: int) -> None:
        names = self.endpoint_names
        if not names:
            return
        current = names.index(self.selected_endpoint) if self.selected_endpoint in names else 0
        self.select_endpoint(names[(current + step) % len(names)])

    def set_window(self, index: int) -> None:
        self.window_index = index % len(WINDOWS)
        self.push_snapshot()

    # ---- commands ----------------------------------------------------------------------

    async def run_command(
        self,
        what: str,
        start: Callable[[EngineControl], concurrent.futures.Future[Any]],
        *,
        notify_done: bool = True,
    ) -> tuple[bool, Any]:
        """Start an engine command and await its future without blocking anyone.

        Returns ``(ok, result_or_error_message)`` and notifies the user either way.
        """
        if not self.commands_available or self.engine is None:
            message = "no running engine: this console is read-only"
            self.notify(message, title=what, severity="warning")
            return False, message
        try:
            future = start(self.engine)
            result = await asyncio.wait_for(asyncio.wrap_future(future), COMMAND_TIMEOUT)
        except TimeoutError:
            message = f"no answer from the engine within {COMMAND_TIMEOUT:.0f}s"
            self.notify(message, title=what, severity="error")
            return False, message
        except Exception as err:  # the engine reports user errors as exceptions
            message = str(err) or type(err).__name__
            self.notify(escape(message), title=f"{what} failed", severity="error", timeout=10)
            return False, message
        if notify_done:
            self.notify(what, title="Done", timeout=4)
        return True, result

    def toggle_pause(self, name: str) -> None:
        endpoint = self.snapshot.endpoint(name)
        if endpoint is None:
            return
        if endpoint.paused:
            self.run_worker(self.run_command(f"resume {name}", lambda e: e.resume(name)))
        else:
            self.run_worker(self.run_command(f"pause {name}", lambda e: e.pause(name)))

    def action_reload_config(self) -> None:
        """Re-read the config file and apply what changed; the outcome is a notice."""

        async def reload() -> None:
            ok, report = await self.run_command(
                "reload config", lambda e: e.reload(), notify_done=False
            )
            if ok:
                severity = "information" if report.ok else "error"
                self.notify(
                    escape(report.summary()), title="Config reload", severity=severity, timeout=10
                )

        self.run_worker(reload())

    def inject_fault(self, mode: str, **options: Any) -> None:
        label = f"demo receiver fault: {mode}"
        self.run_worker(self.run_command(label, lambda e: e.set_fault(mode, **options)))

    # ---- actions -----------------------------------------------------------------------

    def action_show(self, mode: str) -> None:
        if self.current_mode != mode:
            self.switch_mode(mode)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # False hides a key: the key bar shows only keys that do something here.
        if action == "show" and self.wal_only and parameters and parameters[0] != "wal":
            return False
        if action == "show" and parameters and parameters[0] == "demo":
            return self.snapshot.demo is not None
        return True

    def action_next_theme(self) -> None:
        names = [n for n in self._own_themes if n in self.available_themes]
        if not names:
            return
        current = names.index(self.theme) if self.theme in names else -1
        self.theme = names[(current + 1) % len(names)]
        self.notify(f"theme: {self.theme}", timeout=2)

    def theme_names(self) -> list[str]:
        """Themes from files first (ours, then the user's), then Textual's own."""
        own = [n for n in self._own_themes if n in self.available_themes]
        rest = sorted(n for n in self.available_themes if n not in own and n != "textual-ansi")
        return own + rest

    def action_help(self) -> None:
        from rwconsole.tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        from rwconsole.tui.palette import console_commands

        yield from console_commands(self, screen)
        # Textual's own "Theme" entry would list the themes a second time.
        for command in super().get_system_commands(screen):
            if command.title != "Theme":
                yield command
