"""WAL: segments, checkpoint, endpoint positions, records, cardinality, series, verify, repair.

Works on the running engine's WAL and on any WAL directory (opened here or
with ``rwconsole wal open DIR``). Everything is read-only except repair, which
previews what it would drop and asks first; repairing the running engine's
own WAL is refused because the engine is writing to it. The WAL tools run
in the console's helper process, and not before the screen is first shown.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Static, TabbedContent, TabPane

from rwconsole.datadir import DataDirLocked, check_unlocked
from rwconsole.labels import Labels, format_labels
from rwconsole.selector import SelectorError, parse_selector
from rwconsole.snapshot import Snapshot
from rwconsole.tui import format as fmt
from rwconsole.tui.markup import escape
from rwconsole.tui.screens.base import ConsoleScreen
from rwconsole.tui.screens.confirm import ConfirmScreen
from rwconsole.tui.screens.wal_replay import ReplayTargetScreen, run_replay
from rwconsole.tui.widgets.disk import disk_banner, disk_line, loss_line
from rwconsole.wal import browse as walview
from rwconsole.wal import tools
from rwconsole.wal.offload import ToolError
from rwconsole.wal.segment import segment_name

TOP_N = 15


SERIES_COLUMNS = ("series", "samples", "exemplars", "histograms", "newest")
_SERIES_MIN_WIDTH = 24


def _table(table_id: str, *columns: str) -> DataTable[Any]:
    """A row-cursor table with its columns, made in compose.

    The columns exist from the start: setting them up in the screen's
    ``on_mount`` raced with the tabs composing their panes.
    """
    table: DataTable[Any] = DataTable(id=table_id, cursor_type="row")
    for name in columns:
        table.add_column(name, key=name)
    return table


class OpenWalScreen(ModalScreen[str | None]):
    """Asks for a WAL directory."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, current: str) -> None:
        super().__init__()
        self._current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog"):
            yield Static("Open a WAL directory", classes="panel-title")
            yield Static("A WAL directory, or a data directory holding wal/. Enter opens it.")
            yield Input(self._current, id="wal-path")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class WalScreen(ConsoleScreen):
    """Inspect, browse, verify and repair a WAL directory."""

    SCREEN_TITLE = "WAL"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("o", "open", "Open dir"),
        Binding("e", "engine_wal", "Engine's WAL"),
        Binding("r", "inspect", "Refresh"),
        Binding("v", "verify", "Verify"),
        Binding("R", "repair", "Repair", key_display="shift+r"),
        Binding("p", "replay", "Replay…"),
        Binding("slash", "focus_filter", "Series filter", key_display="/"),
        Binding("escape", "leave_input", "Leave field", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.directory: Path | None = None
        self.report: tools.InspectReport | None = None
        self.verify_report: tools.VerifyReport | None = None
        self.browse: walview.SeriesBrowse | None = None
        self._series_rows: list[walview.SeriesRow] = []
        self._engine_wal_key: tuple[Path | None, Path | None] = (None, None)
        self._engine_wal = False

    def compose_body(self) -> ComposeResult:
        yield Static(self._heading_text(), id="wal-heading")
        yield Static(id="wal-disk")
        with TabbedContent(id="wal-tabs"):
            with TabPane("Segments", id="tab-segments"):
                yield Static(id="wal-summary")
                yield _table(
                    "wal-segments",
                    "segment",
                    "size",
                    "records",
                    "first offset",
                    "last offset",
                    "oldest sample",
                    "newest sample",
                )
            with TabPane("Positions", id="tab-positions"):
                yield Static(id="positions-note")
                yield _table(
                    "wal-positions",
                    *("endpoint", "read", "delivered", "behind", "lag", "reading from"),
                )
            with TabPane("Records", id="tab-records"), Horizontal(id="records-tables"):
                yield _table("wal-records", "record type", "count")
                yield _table("wal-metrics", "metric", "series")
                yield _table("wal-labels", "label name", "series")
            with TabPane("Series", id="tab-series"):
                yield Input(
                    placeholder='selector, e.g. up{job=~"node.*"} — enter to search, '
                    "escape to leave",
                    id="series-filter",
                )
                yield Static(id="series-status")
                with Horizontal(id="series-panes"):
                    yield _table("series-table", *SERIES_COLUMNS)
                    yield _table("dump-table", "kind", "timestamp", "value")
            with TabPane("Verify", id="tab-verify"):
                yield Static("press v to verify, shift+r to repair", id="verify-summary")
                yield _table(
                    "verify-problems",
                    "kind",
                    "segment",
                    "offset",
                    "records lost",
                    "samples lost",
                    "problem",
                )

    def on_screen_resume(self) -> None:
        if self.ready and self.directory is None and self.is_current:
            start = self.console.wal_dir or self._engine_dir()
            if start is not None:
                self.open_directory(start)

    # ---- which WAL ----------------------------------------------------------------------

    def _engine_dir(self) -> Path | None:
        wal_dir = self.console.snapshot.wal_dir
        return Path(wal_dir) if wal_dir else None

    @property
    def is_engine_wal(self) -> bool:
        key = (self.directory, self._engine_dir())
        if self._engine_wal_key != key:  # resolve paths once per change, not per tick
            directory, engine_dir = key
            same = False
            if directory is not None and engine_dir is not None:
                try:
                    same = directory.resolve() == engine_dir.resolve()
                except OSError:
                    same = False
            self._engine_wal_key, self._engine_wal = key, same
        return self._engine_wal

    def open_directory(self, path: str | Path) -> bool:
        try:
            directory = self.console.tools.resolve_wal_dir(path)
        except (OSError, tools.NotAWalError) as err:
            self.notify(escape(str(err)), title="Cannot open WAL", severity="error", timeout=8)
            return False
        self.directory = directory
        self.report = None
        self.verify_report = None
        self.browse = None
        for table in ("#series-table", "#dump-table", "#verify-problems"):
            self.query_one(table, DataTable).clear()
        self.query_one("#verify-summary", Static).update("press v to verify, shift+r to repair")
        self.query_one("#series-status", Static).update("")
        self._heading()
        self.action_inspect()
        return True

    def _heading(self, extra: str = "") -> None:
        self.query_one("#wal-heading", Static).update(self._heading_text(extra))

    def _heading_text(self, extra: str = "") -> str:
        snapshot = self.console.snapshot
        if self.directory is None and snapshot.read_only:
            text = (
                f"[dim]{escape(snapshot.source_kind)}: its WAL is not open (attach with "
                "--wal DIR, or press o to open one)[/]"
            )
        elif self.directory is None:
            text = "[dim]no WAL directory: press o to open one[/]"
        elif self.is_engine_wal and snapshot.read_only:
            text = (
                f"[b]{escape(str(self.directory))}[/b]  ·  [$warning]the WAL of "
                f"{escape(snapshot.source_kind)} — read-only, repair refused[/]"
            )
        else:
            mode = (
                "[$warning]the running engine's WAL — read-only, repair refused[/]"
                if self.is_engine_wal and self.console.snapshot.running
                else "read-only until you repair"
            )
            text = f"[b]{escape(str(self.directory))}[/b]  ·  {mode}"
        if extra:
            text += f"  ·  {extra}"
        return text

    # ---- inspect ----------------------------------------------------------------------

    async def _offloaded(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a WAL tool in the console's helper process; a failure is a notice. None as
        well when the screen's widgets went away meanwhile (the console is closing)."""
        try:
            result = await self.console.tools.run(fn, *args, **kwargs)
        except ToolError as err:
            if not self._gone():
                self.notify(
                    escape(err.message), title=f"{what} failed", severity="error", timeout=12
                )
            return None
        return None if self._gone() else result

    def _gone(self) -> bool:
        """Whether the screen's widgets are gone: a tool that ends while the console
        closes has nothing left to show its result in."""
        return not self.query("#wal-heading")

    def action_inspect(self) -> None:
        if self.directory is None:
            return
        self._heading("[$accent]inspecting…[/]")
        self.run_worker(self._inspect(self.directory), exclusive=True, group="inspect")

    async def _inspect(self, directory: Path) -> None:
        report = await self._offloaded("Inspect", tools.inspect, directory, top=TOP_N)
        if report is None:
            if not self._gone():
                self._heading()
            return
        if directory != self.directory:
            return
        self.report = report
        self._heading(f"inspected at {fmt.clock(time.time())}")
        self._show_report(report)
        self.update_snapshot(self.console.snapshot)

    def _show_report(self, report: tools.InspectReport) -> None:
        lines = [
            f"checkpoint [b]{escape(report.checkpoint or 'none')}[/b]  ·  "
            f"{len(report.segments)} segment file(s), "
            f"{fmt.size(sum(s.size for s in report.segments))}  ·  "
            f"{fmt.number(report.series)} series, {fmt.number(report.samples)} samples, "
            f"{fmt.number(report.exemplars)} exemplars, {fmt.number(report.histograms)} histograms",
            f"samples from {fmt.timestamp_ms(report.min_time_ms)} to "
            f"{fmt.timestamp_ms(report.max_time_ms)}",
        ]
        if report.gaps:
            lines.append(
                "[$error]missing segments: "
                + ", ".join(segment_name(g) for g in report.gaps)
                + " (press v to verify)[/]"
            )
        if report.corruption is not None:
            lines.append(f"[$error]damage: {escape(report.corruption.describe())}[/]")
        for problem in report.undecodable[:3]:
            lines.append(f"[$warning]{escape(problem)}[/]")
        self.query_one("#wal-summary", Static).update("\n".join(lines))
        segments = self.query_one("#wal-segments", DataTable)
        segments.clear()
        for s in report.segments:
            segments.add_row(
                s.name,
                fmt.size(s.size),
                fmt.number(s.records),
                "-" if s.first_record_offset is None else str(s.first_record_offset),
                "-" if s.last_record_offset is None else str(s.last_record_offset),
                fmt.timestamp_ms(s.min_time_ms),
                fmt.timestamp_ms(s.max_time_ms),
            )
        records = self.query_one("#wal-records", DataTable)
        records.clear()
        for kind, count in sorted(report.records.items(), key=lambda kv: -kv[1]):
            records.add_row(kind, fmt.number(count))
        metrics = self.query_one("#wal-metrics", DataTable)
        metrics.clear()
        for name, count in report.top_metrics:
            metrics.add_row(Text(name or "(no name)"), fmt.number(count))
        labels = self.query_one("#wal-labels", DataTable)
        labels.clear()
        for name, count in report.top_label_names:
            labels.add_row(Text(name), fmt.number(count))

    # ---- live positions ---------------------------------------------------------------

    def update_snapshot(self, snapshot: Snapshot) -> None:
        if self.directory is None and snapshot.wal_dir and not self.console.wal_only:
            self.open_directory(snapshot.wal_dir)
            return
        self._show_disk(snapshot)
        table = self.query_one("#wal-positions", DataTable)
        note = self.query_one("#positions-note", Static)
        if snapshot.read_only:
            table.clear()
            note.update("[dim]the peer's metrics do not expose its queues' WAL positions[/]")
            return
        if not self.is_engine_wal or not snapshot.endpoints:
            table.clear()
            note.update("[dim]endpoint positions are shown for the running engine's WAL[/]")
            return
        note.update(
            f"WAL end {fmt.position(snapshot.wal_position)}  ·  "
            "behind = WAL bytes not yet delivered"
        )
        table.clear()
        assert self.directory is not None
        for endpoint in snapshot.endpoints:
            try:
                behind = walview.behind_bytes(
                    self.directory, endpoint.delivered_position, snapshot.wal_position
                )
                behind_text = fmt.size(behind)
            except OSError:
                behind_text = "?"
            table.add_row(
                endpoint.name,
                fmt.position(endpoint.read_position),
                fmt.position(endpoint.delivered_position),
                behind_text,
                fmt.seconds(endpoint.lag_seconds),
                "memory (live)" if endpoint.live else "WAL files",
            )

    def _show_disk(self, snapshot: Snapshot) -> None:
        widget = self.query_one("#wal-disk", Static)
        widget.display = self.is_engine_wal and snapshot.disk is not None
        if widget.display:
            lines = [disk_banner(snapshot.disk), disk_line(snapshot.disk)]
            lines.append(loss_line(snapshot.disk, snapshot.endpoints))
            widget.update("\n".join(line for line in lines if line))

    # ---- series browser ----------------------------------------------------------------

    def action_leave_input(self) -> None:
        """Take the focus off the selector field, so that the screen keys work again."""
        if isinstance(self.focused, Input):
            self.set_focus(None)

    def action_focus_filter(self) -> None:
        self.query_one(TabbedContent).active = "tab-series"
        self.query_one("#series-filter", Input).focus()

    @on(Input.Submitted, "#series-filter")
    def _search(self, event: Input.Submitted) -> None:
        if self.directory is None:
            return
        text = event.value.strip()
        try:
            selector = parse_selector(text) if text else None
        except SelectorError as err:
            self.query_one("#series-status", Static).update(f"[$error]{escape(str(err))}[/]")
            return
        self.query_one("#series-status", Static).update("[$accent]searching…[/]")
        self.run_worker(self._browse(self.directory, selector), exclusive=True, group="browse")

    async def _browse(self, directory: Path, selector: Any) -> None:
        browse = await self._offloaded("Search", walview.browse_series, directory, selector)
        if browse is None or directory != self.directory:
            return
        self.browse = browse
        self._series_rows = browse.rows
        table = self.query_one("#series-table", DataTable)
        table.clear()
        rows = [
            (
                Text(format_labels(row.labels)),
                fmt.number(row.samples),
                fmt.number(row.exemplars),
                fmt.number(row.histograms),
                fmt.timestamp_ms(row.last_ms),
            )
            for row in browse.rows
        ]
        self._fit_series_column(table, rows)
        for values in rows:
            table.add_row(*values)
        status = f"{len(browse.rows)} series, {fmt.number(browse.scanned)} entries scanned"
        if browse.truncated:
            status += f" ([$warning]{browse.truncated}[/])"
        if browse.problems:
            status += f"  [$warning]{escape(browse.problems[0])}[/]"
        status += "  ·  enter on a series shows its samples"
        self.query_one("#series-status", Static).update(status)

    @staticmethod
    def _fit_series_column(table: DataTable[Any], rows: list[tuple[str | Text, ...]]) -> None:
        """Give the label column what the number columns leave, so they stay on screen.

        Long label sets are cropped; the chosen series is shown in full above the tables.
        """
        padding = 2 * table.cell_padding
        others = sum(
            padding + max([len(name), *(len(values[index]) for values in rows)])
            for index, name in enumerate(SERIES_COLUMNS)
            if index > 0
        )
        column = next(c for c in table.columns.values() if c.key.value == "series")
        column.auto_width = False
        column.width = max(_SERIES_MIN_WIDTH, table.size.width - others - padding - 1)

    @on(DataTable.RowSelected, "#series-table")
    def _series_chosen(self, event: DataTable.RowSelected) -> None:
        index = event.cursor_row
        if self.directory is None or not 0 <= index < len(self._series_rows):
            return
        labels = self._series_rows[index].labels
        self.run_worker(self._dump(self.directory, labels), exclusive=True, group="dump")

    async def _dump(self, directory: Path, labels: Labels) -> None:
        dump = await self._offloaded("Dump", walview.series_dump, directory, labels)
        if dump is None or directory != self.directory:
            return
        items, total, problems = dump
        table = self.query_one("#dump-table", DataTable)
        table.clear()
        for item in items:
            if item.kind == "histogram" and item.histogram is not None:
                value = f"count={getattr(item.histogram, 'count', '?')}"
            elif item.kind == "exemplar":
                value = f"{item.value} {format_labels(item.exemplar_labels)}"
            else:
                value = repr(item.value)
            table.add_row(item.kind, fmt.timestamp_ms(item.timestamp), value)
        status = f"{escape(format_labels(labels))}: {total} entries" + (
            f", newest {len(items)} shown" if total > len(items) else ""
        )
        if problems:
            status += f"  [$warning]{escape(problems[0])}[/]"
        self.query_one("#series-status", Static).update(status)

    # ---- verify and repair ---------------------------------------------------------------

    def action_verify(self) -> None:
        if self.directory is None:
            return
        self.query_one(TabbedContent).active = "tab-verify"
        # The focus follows: left in another tab's field, the tabs would switch back to it.
        self.query_one("#verify-problems", DataTable).focus()
        self.query_one("#verify-summary", Static).update("[$accent]verifying…[/]")
        self.run_worker(self._verify(self.directory), exclusive=True, group="verify")

    async def _verify(self, directory: Path) -> None:
        report = await self._offloaded("Verify", tools.verify, directory)
        if report is None or directory != self.directory:
            return
        self.verify_report = report
        verdict = (
            "[$success]OK[/]" if report.ok else f"[$error]{len(report.problems)} problem(s)[/]"
        )
        lines = [
            f"verify: {verdict}  ·  {report.segments} segment(s), {fmt.number(report.records)} "
            f"records, {fmt.size(report.bytes_read)} in {report.seconds:.2f}s "
            f"({report.mb_per_second:.0f} MB/s)",
            *(f"note: {escape(n)}" for n in report.notes),
        ]
        if not report.ok:
            lines.append("shift+r previews a repair")
        self.query_one("#verify-summary", Static).update("\n".join(lines))
        table = self.query_one("#verify-problems", DataTable)
        table.clear()
        for p in report.problems:
            table.add_row(
                p.kind,
                p.segment,
                "-" if p.offset is None else str(p.offset),
                fmt.number(p.records_lost),
                fmt.number(p.samples_lost),
                Text(p.message),
            )

    def action_repair(self) -> None:
        if self.directory is None:
            return
        if self.is_engine_wal and self.console.snapshot.running:
            self.notify(
                "this is the running engine's own WAL: it is open for writing, so it cannot be "
                "repaired now. Stop rwconsole, then run `rwconsole wal repair` on it.",
                title="Repair refused",
                severity="error",
                timeout=12,
            )
            return
        if self._locked(self.directory):
            return
        self.run_worker(self._repair_preview(self.directory), exclusive=True, group="repair")

    def _locked(self, directory: Path) -> bool:
        """Refuse (with a notice) a WAL whose data directory another process holds."""
        try:
            check_unlocked(directory.parent)
        except (DataDirLocked, OSError) as err:
            self.notify(
                f"{escape(str(err))}; stop it before repairing this WAL.",
                title="Repair refused",
                severity="error",
                timeout=12,
            )
            return True
        return False

    async def _repair_preview(self, directory: Path) -> None:
        preview = await self._offloaded("Repair preview", tools.repair, directory, dry_run=True)
        if preview is None:
            return
        if (
            not preview.gaps_filled
            and not preview.checkpoint_gaps_filled
            and preview.corruption is None
        ):
            self.notify("nothing to repair: the WAL reads cleanly", title="Repair", timeout=5)
            return
        lines = []
        if preview.gaps_filled:
            lines.append(
                "create empty segment(s) for the gap(s): "
                + ", ".join(segment_name(g) for g in preview.gaps_filled)
            )
        if preview.checkpoint_gaps_filled:
            lines.append(
                "create empty checkpoint segment(s): "
                + ", ".join(segment_name(g) for g in preview.checkpoint_gaps_filled)
            )
        if preview.corruption is not None:
            c = preview.corruption
            lines.append(f"cut at the damage: {c.describe()}")
            lines.append(f"dropped: {c.records_lost} record(s), {c.samples_lost} sample(s)")
            if preview.segments_deleted:
                lines.append(
                    "later segments removed: "
                    + ", ".join(segment_name(s) for s in preview.segments_deleted)
                )
        lines.append("Removed files are moved to a backup directory next to the WAL.")
        lines.append("Nothing may be writing to this WAL. Repair now?")

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_worker(self._repair(directory), exclusive=True, group="repair")

        self.app.push_screen(
            ConfirmScreen(
                "Repair WAL " + str(directory), escape("\n".join(lines)), yes="Repair", no="Cancel"
            ),
            answered,
        )

    async def _repair(self, directory: Path) -> None:
        if self._locked(directory):
            return
        report = await self._offloaded(
            "Repair", tools.repair, directory, dry_run=False, backup=True
        )
        if report is None:
            return
        where = f"; backup in {report.backup_dir}" if report.backup_dir else ""
        self.notify(
            f"repaired: {len(report.gaps_filled)} gap(s) filled, "
            f"{len(report.segments_deleted)} segment(s) removed, "
            f"{report.records_kept} record(s) kept in the cut segment{where}",
            title="Repair",
            timeout=12,
        )
        self.action_inspect()
        self.action_verify()

    # ---- replay ----------------------------------------------------------------------------

    def action_replay(self) -> None:
        directory = self.directory
        if directory is None:
            return

        def chosen(target: str | None) -> None:
            if target:
                self.notify(
                    escape(f"replaying {directory} to {target}…"), title="Replay", timeout=5
                )
                self.run_worker(self._replay(directory, target), exclusive=True, group="replay")

        self.app.push_screen(ReplayTargetScreen(directory), chosen)

    async def _replay(self, directory: Path, target: str) -> None:
        code, text = await run_replay(directory, target)
        self.notify(
            escape(text),
            title="Replay finished" if code == 0 else "Replay incomplete",
            severity="information" if code == 0 else "error",
            timeout=30,
        )

    # ---- opening other directories -------------------------------------------------------

    def action_open(self) -> None:
        def chosen(path: str | None) -> None:
            if path:
                self.open_directory(Path(path).expanduser())

        self.app.push_screen(OpenWalScreen(str(self.directory or "")), chosen)

    def action_engine_wal(self) -> None:
        engine_dir = self._engine_dir()
        if engine_dir is None:
            self.notify("no engine is running: open a directory with o", severity="warning")
            return
        self.open_directory(engine_dir)
