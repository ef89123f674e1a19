"""Endpoints: every endpoint's key numbers in a table; drill down, pause and resume."""

from __future__ import annotations

import time
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Static
from textual.widgets.data_table import ColumnKey

from rwconsole.snapshot import CredentialsSnapshot, EndpointSnapshot, Snapshot
from rwconsole.tui import format as fmt
from rwconsole.tui.estimates import send_breakdown
from rwconsole.tui.markup import escape
from rwconsole.tui.screens.base import ConsoleScreen, highlighted_key
from rwconsole.tui.widgets.status import out_rate, status_markup, window_label

COLUMNS = (
    ("name", "Endpoint"),
    ("status", "Status"),
    ("proto", "RW"),
    ("shards", "Shards"),
    ("desired", "Desired"),
    ("bounds", "Min–max"),
    ("pending", "Pending"),
    ("out", "Out/s"),
    ("sent", "Accepted"),
    ("retried", "Retried"),
    ("failed", "Rejected"),
    ("dropped", "Dropped"),
    ("lag", "Lag"),
)
SATURATED_SHARDS = 0.9
"""Shards busy this share of the time or more: more requests in flight could help."""
_STATUS_STYLE = {"healthy": "green", "retrying": "yellow", "failing": "red", "paused": "magenta"}


def row_values(endpoint: EndpointSnapshot, window: float = 1.0) -> dict[str, str | Text]:
    """The table cells: "Out/s" and "Accepted" count only samples the receiver accepted."""
    q = endpoint.queue_config
    return {
        "name": endpoint.name,
        "status": Text(endpoint.status, style=_STATUS_STYLE.get(endpoint.status, "")),
        "proto": _proto_cell(endpoint),
        "shards": str(endpoint.shards),
        "desired": fmt.desired_shards(endpoint.shards_desired),
        "bounds": f"{q.get('min_shards', '?')}–{q.get('max_shards', '?')}",
        "pending": fmt.number(endpoint.pending_samples),
        "out": fmt.number(out_rate(endpoint, window)),
        "sent": fmt.number(endpoint.samples_accepted),
        "retried": fmt.number(endpoint.samples_retried),
        "failed": fmt.number(endpoint.samples_failed),
        "dropped": fmt.number(endpoint.samples_dropped),
        "lag": fmt.seconds(endpoint.lag_seconds),
    }


def _configured(endpoint: EndpointSnapshot) -> str:
    return "2.0" if endpoint.protocol == 2 else "1.0"


def _proto_cell(endpoint: EndpointSnapshot) -> str | Text:
    """The configured version, or ``2.0→1.0`` while the endpoint fell back."""
    state = endpoint.protocol_state
    if not state or state == _configured(endpoint):
        return _configured(endpoint)
    return Text(f"{_configured(endpoint)}→{state.split(' ', 1)[0]}", style="yellow")


def detail_markup(
    endpoint: EndpointSnapshot,
    *,
    read_only: bool = False,
    now: float | None = None,
    window: float = 10.0,
) -> str:
    """The detail panel; credential expiry is counted from ``now`` (the snapshot's time),
    the send breakdown is averaged over ``window`` seconds."""
    q = endpoint.queue_config
    wal = (
        f"WAL read {fmt.position(endpoint.read_position)}  delivered "
        f"{fmt.position(endpoint.delivered_position)}  "
        f"{'live (memory)' if endpoint.live else 'catching up from WAL files'}"
    )
    if read_only:
        wal = f"WAL segment being read: {endpoint.read_position[0]} (offsets are not exposed)"
    elif endpoint.spool_batches:
        wal += (
            f" · {fmt.number(endpoint.spool_batches)} batches encoded ahead in the spool "
            f"({fmt.size(endpoint.spool_bytes)})"
        )
    lines = [
        f"[b]{escape(endpoint.name)}[/b]  {status_markup(endpoint.status)}  "
        f"{escape(endpoint.url)}"
        + ("" if read_only else f"  (remote write {'2.0' if endpoint.protocol == 2 else '1.0'})"),
        wal,
        f"accepted {fmt.number(endpoint.samples_accepted)} samples, "
        f"rejected {fmt.number(endpoint.samples_failed)}, "
        f"retried {fmt.number(endpoint.samples_retried)} · "
        f"sent {fmt.number(endpoint.samples_total)} counting every attempt · "
        f"{fmt.number(endpoint.exemplars_total)} exemplars, "
        f"{fmt.number(endpoint.histograms_total)} histograms, {fmt.size(endpoint.bytes_total)}",
        "queue_config: " + escape(fmt.queue_config(q)),
    ]
    if not read_only:
        lines.extend(sending_markup(endpoint, window))
    if endpoint.protocol_state and endpoint.protocol_state != _configured(endpoint):
        lines.append(f"[$warning]sending remote write {escape(endpoint.protocol_state)}[/]")
    if endpoint.last_status:
        lines.append(f"last response: HTTP {endpoint.last_status}")
    if endpoint.credentials is not None:
        lines.append(credentials_markup(endpoint.credentials, time.time() if now is None else now))
    if endpoint.last_error:
        # The error carries its own status (if it had one); last_status is the latest
        # response of any kind, so the two are shown apart.
        when = fmt.clock(endpoint.last_error_time) if endpoint.last_error_time else "?"
        lines.append(f"[$error]last error at {when}: {escape(endpoint.last_error)}[/]")
    return "\n".join(lines)


def sending_markup(endpoint: EndpointSnapshot, window: float) -> list[str]:
    """Requests in flight, shard utilisation, where a batch's time goes, and why desired
    shards is what it is."""
    lines = []
    phases = send_breakdown(endpoint.history, window)
    if phases is None:
        lines.append(
            f"in flight {endpoint.requests_in_flight} · [dim]no batch sent in the last "
            f"{fmt.duration_field(window)}[/]"
        )
    else:
        busy = f"{phases.utilisation:.0%}"
        if phases.utilisation >= SATURATED_SHARDS:
            busy = f"[$warning]{busy}[/]"
        lines.append(
            f"in flight {fmt.number(round(phases.in_flight, 1))} (mean) · shards busy {busy} · "
            f"{fmt.number(round(phases.batches_per_second, 1))} batches/s · per batch: "
            f"encode {fmt.millis(phases.encode)}, waiting for the loop "
            f"{fmt.millis(phases.loop_wait)}, network+receiver {fmt.millis(phases.network)} "
            f"({window_label(window).removeprefix('/s ').strip('()') or 'last second'})"
        )
    if endpoint.shards_reason:
        lines.append(f"shards: {escape(endpoint.shards_reason)}")
    return lines


def credentials_markup(status: CredentialsSnapshot, now: float) -> str:
    """The credential source in use and its expiry (never a secret value)."""
    source = escape(status.source) if status.source else "[dim]not fetched yet[/]"
    if status.expires_at is None:
        expiry = " (do not expire)" if status.source else ""
    elif status.expires_at > now:
        left = fmt.seconds(status.expires_at - now)
        expiry = f", expire at {fmt.clock(status.expires_at)} (in {left})"
    else:
        expiry = f", [$error]expired at {fmt.clock(status.expires_at)}[/]"
    text = f"credentials: {source}{expiry}"
    if status.last_error:
        text += f"\n[$error]credential refresh failed: {escape(status.last_error)}[/]"
    return text


class EndpointsScreen(ConsoleScreen):
    """A table of endpoints; enter drills down into the selected one."""

    SCREEN_TITLE = "Endpoints"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "drill_down", "Charts"),
        Binding("c", "queue_config", "Queue config"),
        Binding("p", "toggle_pause", "Pause/resume"),
    ]

    def compose_body(self) -> ComposeResult:
        table: DataTable[str | Text] = DataTable(id="endpoints-table", cursor_type="row")
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        yield table
        yield Static(id="endpoint-detail")

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()

    def _table(self) -> DataTable[str | Text]:
        return self.query_one("#endpoints-table", DataTable)

    def update_snapshot(self, snapshot: Snapshot) -> None:
        table = self._table()
        window = snapshot.rate_window_seconds
        self._label_out_column(table, window)
        names = [e.name for e in snapshot.endpoints]
        current = [str(key.value) for key in table.rows]
        if names != current:
            table.clear()
            for endpoint in snapshot.endpoints:
                values = row_values(endpoint, window)
                table.add_row(*(values[k] for k, _ in COLUMNS), key=endpoint.name)
            selected = self.console.selected_endpoint
            if selected in names:
                table.move_cursor(row=names.index(selected))
        else:
            for endpoint in snapshot.endpoints:
                values = row_values(endpoint, window)
                for key, _label in COLUMNS:
                    # update_width: a column grows with its widest value, not the first one.
                    table.update_cell(endpoint.name, key, values[key], update_width=True)
        self._show_detail(snapshot)

    def _label_out_column(self, table: DataTable[str | Text], window: float) -> None:
        """ "Out/s (10s avg)": the header says over which window the rate is averaged."""
        label = "Out" + window_label(window)
        column = table.columns.get(ColumnKey("out"))
        if column is not None and column.label.plain != label:
            column.label = Text(label)
            column.content_width = max(column.content_width, len(label))
            table.refresh()

    def _highlighted(self) -> str | None:
        return highlighted_key(self._table())

    def _show_detail(self, snapshot: Snapshot) -> None:
        name = self._highlighted()
        endpoint = snapshot.endpoint(name) if name else None
        text = (
            detail_markup(
                endpoint,
                read_only=snapshot.read_only,
                now=snapshot.time,
                window=snapshot.rate_window_seconds,
            )
            if endpoint
            else "[dim]no endpoints[/]"
        )
        self.query_one("#endpoint-detail", Static).update(text)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.console.selected_endpoint = str(event.row_key.value)
        self._show_detail(self.console.snapshot)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_drill_down()

    def action_drill_down(self) -> None:
        name = self._highlighted()
        if name:
            self.console.selected_endpoint = name
            self.console.action_show("overview")

    def action_queue_config(self) -> None:
        name = self._highlighted()
        if name:
            self.console.selected_endpoint = name
            self.console.action_show("queue")

    def action_toggle_pause(self) -> None:
        name = self._highlighted()
        if name:
            self.console.toggle_pause(name)
