"""Queue config: edit the selected endpoint's queue_config live, with validation and estimates.

Every field gets an input checked as you type (integers, Go-style durations,
then ``queue_config_problems``, the rules the engine applies to a change). The
effect estimate uses the engine's history: maximum throughput = max_shards ×
max_samples_per_send ÷ average request latency. Changes apply to the running
queue; "apply & save" also writes them to the config file (not available for
the demo pipeline).
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.validation import Function, Integer
from textual.widgets import Button, Input, Static, Switch

from rwconsole.config import schema
from rwconsole.config.durations import DurationError, parse_duration
from rwconsole.config.validate import queue_config_problems
from rwconsole.snapshot import EndpointSnapshot, Snapshot
from rwconsole.tui import format as fmt
from rwconsole.tui.estimates import (
    MIN_SUGGESTED_MAX_SHARDS,
    SUGGEST_FACTOR,
    max_throughput,
    suggest_max_shards,
)
from rwconsole.tui.markup import escape
from rwconsole.tui.screens import peer_queue
from rwconsole.tui.screens.base import ConsoleScreen
from rwconsole.tui.screens.confirm import ConfirmScreen

FIELDS = fmt.QUEUE_FIELDS


def parse_value(kind: str, text: str) -> Any:
    """The typed value of an input's text; raises ValueError with a message."""
    text = text.strip()
    if kind == "duration":
        try:
            return parse_duration(text)
        except DurationError as err:
            raise ValueError(str(err)) from None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None


def _is_duration(text: str) -> bool:
    try:
        parse_duration(text.strip())
    except DurationError:
        return False
    return True


def _validators(kind: str) -> list[Any]:
    if kind == "duration":
        return [Function(_is_duration, "not a duration (e.g. 30ms, 5s, 1m30s)")]
    # Only the syntax here: the rules come from queue_config_problems in candidate().
    return [Integer(failure_description="not a whole number")]


class QueueConfigScreen(ConsoleScreen):
    """Edit, estimate and apply queue_config for the selected endpoint."""

    SCREEN_TITLE = "Queue config"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "apply(False)", "Apply live", priority=True),
        Binding("ctrl+o", "apply(True)", "Apply & save", priority=True),
        Binding("ctrl+g", "suggest", "Suggest max_shards", priority=True),
        Binding("ctrl+r", "reset", "Reset", priority=True),
        Binding("escape", "leave_input", "Leave field", show=False),
        # ctrl+[ is Escape in terminals: the endpoint keys are [ and ] (outside a field,
        # like on the Overview) and alt+left / alt+right (anywhere, also inside a field).
        # Named in the heading and in help; the key bar keeps its room for the screen keys.
        Binding(
            "left_square_bracket", "step_endpoint(-1)", "Prev endpoint", key_display="[", show=False
        ),
        Binding(
            "right_square_bracket", "step_endpoint(1)", "Next endpoint", key_display="]", show=False
        ),
        Binding("alt+left", "step_endpoint(-1)", "Prev endpoint", show=False, priority=True),
        Binding("alt+right", "step_endpoint(1)", "Next endpoint", show=False, priority=True),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._endpoint: str | None = None
        self._base: dict[str, Any] = {}

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # A watched peer's values cannot be edited here: no apply or reset keys.
        return not (action in ("apply", "reset") and self.console.snapshot.read_only)

    def compose_body(self) -> ComposeResult:
        yield Static(id="qc-heading")
        with VerticalScroll(id="qc-body"):
            with Grid(id="qc-grid"):
                for text in ("field", "current", "new", ""):
                    yield Static(text, classes="qc-head")
                for field in FIELDS:
                    kind = fmt.field_kind(field)
                    yield Static(field.name, classes="qc-name")
                    yield Static("", id=f"cur-{field.name}", classes="qc-current")
                    if kind == "bool":
                        yield Switch(id=f"new-{field.name}")
                    else:
                        yield Input(
                            id=f"new-{field.name}",
                            validators=_validators(kind),
                            validate_on=["changed", "submitted"],
                        )
                    yield Static(
                        escape(str(field.metadata.get("doc", ""))),
                        id=f"msg-{field.name}",
                        classes="qc-msg",
                    )
            yield Static(id="qc-estimate")
            with Horizontal(id="qc-buttons"):
                yield Button("Apply live (ctrl+s)", id="apply", variant="primary")
                yield Button("Apply & save (ctrl+o)", id="save")
                yield Button("Suggest max_shards (ctrl+g)", id="suggest")
                yield Button("Reset (ctrl+r)", id="reset")

    # ---- snapshot ----------------------------------------------------------------------

    def update_snapshot(self, snapshot: Snapshot) -> None:
        endpoint = self.selected(snapshot)
        if endpoint is None:
            self.query_one("#qc-heading", Static).update("[dim]no endpoints[/]")
            return
        if snapshot.read_only:
            self._show_read_only(snapshot, endpoint)
            return
        heading = (
            f"queue_config of [b]{escape(endpoint.name)}[/b] ({escape(endpoint.url)})  ·  "
            "other endpoint: [ / ] (escape leaves a field first), alt+← / alt+→, "
            "or the Endpoints screen"
        )
        self.query_one("#qc-heading", Static).update(heading)
        config = endpoint.queue_config
        if endpoint.name != self._endpoint:
            self._endpoint = endpoint.name
            self._fill(config, only_unedited=False)
        elif config != self._base:
            self._fill(config, only_unedited=True)
        for field in FIELDS:
            value = fmt.config_value(fmt.field_kind(field), config.get(field.name))
            self.query_one(f"#cur-{field.name}", Static).update(value)
        saving = self.console.config_path is not None and self.console.commands_available
        self.query_one("#save", Button).disabled = not saving
        self._refresh_estimate()

    def _show_read_only(self, snapshot: Snapshot, endpoint: EndpointSnapshot) -> None:
        self._endpoint = endpoint.name
        self.query_one("#qc-grid").display = False
        self.query_one("#qc-buttons").display = False
        self.query_one("#qc-heading", Static).update(peer_queue.heading(snapshot, endpoint))
        text = peer_queue.body(snapshot, endpoint, self.console.window)
        self.query_one("#qc-estimate", Static).update(text)

    def _fill(self, config: dict[str, Any], *, only_unedited: bool) -> None:
        for field in FIELDS:
            kind = fmt.field_kind(field)
            old = self._base.get(field.name)
            new = config.get(field.name)
            widget = self.query_one(f"#new-{field.name}")
            if isinstance(widget, Switch):
                if not only_unedited or widget.value == bool(old):
                    widget.value = bool(new)
            elif isinstance(widget, Input) and (
                not only_unedited or widget.value == fmt.config_value(kind, old)
            ):
                widget.value = fmt.config_value(kind, new)
        self._base = dict(config)

    # ---- the form ----------------------------------------------------------------------

    def candidate(self) -> tuple[dict[str, Any], dict[str, str]]:
        """The values in the form and the per-field problems."""
        values: dict[str, Any] = dict(self._base)
        problems: dict[str, str] = {}
        for field in FIELDS:
            kind = fmt.field_kind(field)
            widget = self.query_one(f"#new-{field.name}")
            if isinstance(widget, Switch):
                values[field.name] = widget.value
                continue
            assert isinstance(widget, Input)
            try:
                value = parse_value(kind, widget.value)
            except ValueError as err:
                problems[field.name] = str(err)
                continue
            values[field.name] = value
        if not problems and values:
            known = {f.name: values[f.name] for f in FIELDS if f.name in values}
            for problem in queue_config_problems(schema.QueueConfig(**known)):
                name = str(problem.path[-1]) if problem.path else "queue_config"
                problems.setdefault(name, problem.message)
        return values, problems

    def changes(self) -> dict[str, Any]:
        values, _ = self.candidate()
        return self._diff(values)

    def _diff(self, values: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in values.items() if self._base.get(k) != v}

    @on(Input.Changed)
    @on(Switch.Changed)
    def _edited(self) -> None:
        self._refresh_estimate()

    def _refresh_estimate(self) -> None:
        if not self._base:
            return
        values, problems = self.candidate()
        for field in FIELDS:
            message = self.query_one(f"#msg-{field.name}", Static)
            if field.name in problems:
                message.update(f"[$error]✖ {escape(problems[field.name])}[/]")
            elif values.get(field.name) != self._base.get(field.name):
                old = fmt.config_value(fmt.field_kind(field), self._base.get(field.name))
                new = fmt.config_value(fmt.field_kind(field), values.get(field.name))
                message.update(f"[$accent]{escape(old)} → {escape(new)}[/]")
            else:
                message.update(escape(str(field.metadata.get("doc", ""))))
        self.query_one("#qc-estimate", Static).update(self._estimate_text(values, problems))

    def _estimate_text(self, values: dict[str, Any], problems: dict[str, str]) -> str:
        endpoint = self._current_endpoint()
        if endpoint is None:
            return ""
        latency, incoming, figures = peer_queue.window_figures(
            endpoint, self.console.snapshot.time, self.console.window
        )
        lines = [peer_queue.ESTIMATE_TITLE, figures]
        if latency is not None:
            now = max_throughput(self._base, latency) or 0.0
            new = max_throughput(values, latency) or 0.0
            lines.append(
                f"current: {self._base.get('max_shards')} × "
                f"{self._base.get('max_samples_per_send')} ÷ {fmt.seconds(latency)} = "
                f"[b]{fmt.number(now)}[/b] samples/s"
            )
            lines.append(
                f"new:     {values.get('max_shards')} × {values.get('max_samples_per_send')} ÷ "
                f"{fmt.seconds(latency)} = [b]{fmt.number(new)}[/b] samples/s"
                + ("  ([$warning]below the incoming rate[/])" if incoming > new else "")
            )
        changed = self._diff(values)
        if problems:
            lines.append(f"[$error]{len(problems)} problem(s): fix them before applying[/]")
        elif changed:
            lines.append("pending changes: " + fmt.queue_config(dict(sorted(changed.items()))))
        else:
            lines.append("[dim]no changes[/]")
        return "\n".join(lines)

    def _current_endpoint(self) -> EndpointSnapshot | None:
        return self.console.snapshot.endpoint(self._endpoint) if self._endpoint else None

    # ---- actions -----------------------------------------------------------------------

    def on_button_pressed(self, event: Button.Pressed) -> None:
        actions = {
            "apply": "apply(False)",
            "save": "apply(True)",
            "suggest": "suggest",
            "reset": "reset",
        }
        if event.button.id in actions:
            self.run_action(actions[event.button.id])

    def action_step_endpoint(self, step: int) -> None:
        self.console.step_endpoint(step)

    def action_leave_input(self) -> None:
        """Take the focus off the form so that the screen keys (1-6, t, ?) work again."""
        self.set_focus(None)

    def action_reset(self) -> None:
        self._fill(self._base, only_unedited=False)
        self._refresh_estimate()

    def action_apply(self, save: bool) -> None:
        name = self._endpoint
        if name is None:
            return
        if self.console.snapshot.read_only:
            self.notify(
                f"read-only: {self.console.snapshot.source_kind} is not operated by rwconsole; "
                "change its queue_config in its own config",
                severity="warning",
            )
            return
        if save and self.console.config_path is None:
            self.notify("this pipeline has no config file to save to (demo)", severity="warning")
            return
        _values, problems = self.candidate()
        if problems:
            field, message = next(iter(sorted(problems.items())))
            self.notify(f"{field}: {message}", title="Cannot apply", severity="error")
            return
        changes = self.changes()
        if not changes:
            self.notify("nothing to apply: the values are the current ones", timeout=3)
            return
        self._apply(name, changes, save)

    def _apply(self, name: str, changes: dict[str, Any], save: bool) -> None:
        what = (
            f"queue_config of {name}: "
            + fmt.queue_config(dict(sorted(changes.items())))
            + (" (saved)" if save else "")
        )
        self.run_worker(
            self.console.run_command(
                what, lambda e: e.apply_queue_config(name, changes, save=save)
            ),
            group="apply",
        )

    def action_suggest(self) -> None:
        endpoint = self._current_endpoint()
        if endpoint is None:
            return
        current = int(endpoint.queue_config.get("max_shards", 0)) or None
        advice = suggest_max_shards(endpoint.history, current, endpoint.shard_hours)
        if advice is None:
            self.notify("no history yet: wait a few seconds", severity="warning")
            return
        if self.console.snapshot.read_only and advice.change != "keep":
            # The peer refuses with the change written in its own config syntax.
            self._apply(endpoint.name, {"max_shards": advice.max_shards}, save=False)
            return
        if advice.hours:
            basis = (
                f"{advice.hours} hourly 90th percentiles of {advice.points} one-second points, "
                "kept across restarts for 7 days"
            )
        else:
            basis = f"{advice.points} one-second points, the last hour the console keeps"
        rule = (
            f"Rule of thumb: 4 × the 90th percentile of desired shards, at least "
            f"{MIN_SUGGESTED_MAX_SHARDS}; lowering only when 4 × p90 is under half the "
            "current max.\n"
            f"90th percentile of desired shards, taken over the last "
            f"{fmt.seconds(advice.window_seconds)} of history ({basis}): "
            f"{advice.percentile_desired:.2f}"
            f" → 4 × p90 = {SUGGEST_FACTOR * advice.percentile_desired:.2f}\n\n"
        )
        if advice.change == "keep":
            self.notify(
                rule + f"max_shards {current} already fits: nothing to change.",
                title="Suggested max_shards",
                timeout=12,
            )
            return
        message = (
            rule + f"{advice.change} max_shards {current} → [b]{advice.max_shards}[/b]. "
            "Apply it now?"
        )
        name = endpoint.name

        def answered(yes: bool | None) -> None:
            widget = self.query_one("#new-max_shards", Input)
            widget.value = str(advice.max_shards)
            if yes:
                changes: dict[str, Any] = {"max_shards": advice.max_shards}
                min_shards = endpoint.queue_config["min_shards"]
                if min_shards > advice.max_shards:
                    changes["min_shards"] = advice.max_shards
                self._apply(name, changes, save=False)

        self.app.push_screen(ConfirmScreen("Suggested max_shards", message), answered)
