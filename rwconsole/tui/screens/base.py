"""The base of every console screen: header, key bar and the snapshot hook."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import DataTable, Header

from rwconsole.snapshot import EndpointSnapshot, Snapshot
from rwconsole.tui.widgets.keybar import KeyBar

if TYPE_CHECKING:
    from rwconsole.tui.app import ConsoleApp


def highlighted_key(table: DataTable[Any]) -> str | None:
    """The key of the row under the table's cursor (None for an empty table)."""
    if table.row_count == 0:
        return None
    row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
    return str(row_key.value)


class ConsoleScreen(Screen[None]):
    """A screen that is redrawn from each new engine snapshot while it is visible."""

    SCREEN_TITLE = ""
    ready = False
    """True once the widgets exist (snapshots are only drawn from then on)."""

    @property
    def console(self) -> ConsoleApp:
        return cast("ConsoleApp", self.app)

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield from self.compose_body()
        yield KeyBar()

    def compose_body(self) -> ComposeResult:
        yield from ()

    # Textual runs the handlers of every class along the MRO, base classes last:
    # subclasses add their own ``on_mount``/``on_screen_resume`` without calling these.
    def on_mount(self) -> None:
        snapshot = self.console.snapshot
        self.title = (
            f"rwconsole · {snapshot.source_kind} (read-only)" if snapshot.read_only else "rwconsole"
        )
        self.sub_title = self.SCREEN_TITLE
        self.ready = True

    def on_screen_resume(self) -> None:
        # is_current: the console builds every screen at start by showing it for
        # an instant; those showings need no drawing.
        if self.ready and self.is_current:
            self.redraw()

    _drawn: tuple[Snapshot | None, tuple[object, ...]] = (None, ())

    def redraw(self) -> None:
        """Draw the console's snapshot, unless this screen shows that very state already.

        A screen shown again with nothing new (back within the same second, or
        the first screen after each step of the start-up warm-up) costs nothing.
        """
        console = self.console
        snapshot = console.snapshot
        view = (console.selected_endpoint, console.window_index, self.size)
        # The snapshot by identity: comparing two snapshots field by field costs more.
        if snapshot is not self._drawn[0] or view != self._drawn[1]:
            self._drawn = (snapshot, view)
            self.update_snapshot(snapshot)

    def update_snapshot(self, snapshot: Snapshot) -> None:
        """Redraw from ``snapshot`` (called on the UI thread, at most once a second)."""

    def selected(self, snapshot: Snapshot) -> EndpointSnapshot | None:
        """The endpoint the user selected (the first one until they choose)."""
        name = self.console.selected_endpoint
        found = snapshot.endpoint(name) if name else None
        if found is None and snapshot.endpoints:
            found = snapshot.endpoints[0]
        return found
