"""End-to-end forwarder benchmark: rwconsole vs Prometheus agent mode on the same workload.

Usage:
  python benchmarks/bench_forwarder.py --quick
  python benchmarks/bench_forwarder.py --load 50x2000@1 --load 50x5000@1 \\
      [--forwarders agent,rwconsole,rwconsole-5000] [--mode sequential|side-by-side|both] \\
      [--warmup 20] [--window 40] [--receiver vm|null] [--profile-dir DIR] [--json FILE]

A load ``KxS@I`` is K loopback scrape targets (``benchmarks/loadgen.py``) of S
series each, scraped every I seconds, so K*(S+5)/I samples/s are offered (the
5 are the report series ``up``, ``scrape_duration_seconds``… that both
forwarders add per target). Both forwarders scrape the same targets and
remote-write to the same loopback receiver: victoria-metrics (default) or, with
``--receiver null``, a minimal sink that reads each body and answers 204 (to
take the receiver's CPU out of the picture on a small machine).

Forwarders:
  agent           ``prometheus --enable-feature=agent`` with the default queue_config
  agent-5000      the agent with max_samples_per_send 5000, capacity 10000
  rwconsole       ``python -m rwconsole run`` with the agent's default queue_config
  rwconsole-5000  rwconsole with max_samples_per_send 5000, capacity 10000
  agent-2000, rwconsole-2000  Alloy's defaults (and rwconsole's): 2000 per send,
                  capacity 10000, max_shards 50

``--pin CPU`` runs every forwarder on that CPU alone (sched_setaffinity before
exec, so its threads stay there too) and the load generator, the receiver and
this script on the other CPUs: a forwarder's ``CPU%`` is then the share of its
one CPU it used, and the rest of the machine cannot take CPU from it.

Variants, appended to a name, so one run compares a forwarder with and without
a setting (e.g. ``--forwarders rwconsole,rwconsole+attach2 --mode side-by-side``):
  +attachN        (rwconsole) N consoles' links attached during the run, whatever ``--attach`` says
  +mrelabel3      three ``metric_relabel_configs`` rules that keep every series: a keep on
                  ``__name__`` matching ``.+``, a replace writing ``instance`` to itself, a
                  labeldrop of a label no series has
``@base`` goes last (``rwconsole-5000+mrelabel3@base``).

``--mode sequential`` runs the forwarders one after the other against a fresh
receiver process each; ``side-by-side`` runs them at the same time (they then
compete for the CPUs; each forwarder carries an external label ``forwarder``
so their series stay apart in the receiver).

For each forwarder, after the warm-up, over the steady window:
  in/s, out/s     samples appended (``prometheus_remote_storage_samples_in_total``)
                  and forwarded (``…_samples_total`` − ``…_samples_retried_total``)
                  per second, from the forwarder's own /metrics
  CPU µs/sample   utime+stime of the forwarder process (/proc/PID/stat) / forwarded
  RSS B/series    VmRSS at the end of the window / active series (K*(S+5))
  wire B/sample   ``…_bytes_total`` delta / forwarded
  lag             ``…_highest_timestamp_in_seconds`` − ``…_queue_highest_sent_timestamp_seconds``
  keeps up        out/s >= 95% of offered and the lag stays below 2*I + 10 s without growing
The CPU use of the receiver and the load generator and the machine's idle
share are printed too, so a saturated machine is visible.

With ``--profile-dir``, py-spy records each rwconsole process after its window
(so the window is not perturbed) and the top functions by CPU share are printed.
Every process started here is stopped at the end, also on Ctrl-C or an error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from arrivals import Arrivals

HERE = Path(__file__).resolve().parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
REPORT_SERIES = 5
P = "prometheus_remote_storage_"
AGENT_QUEUE = {
    "capacity": 2500,
    "max_shards": 200,
    "min_shards": 1,
    "max_samples_per_send": 500,
    "batch_send_deadline": 5,
}
BIG_BATCH_QUEUE = {**AGENT_QUEUE, "max_samples_per_send": 5000, "capacity": 10000}
ALLOY_QUEUE = {**AGENT_QUEUE, "max_samples_per_send": 2000, "capacity": 10000, "max_shards": 50}
"""Alloy's defaults, which are rwconsole's defaults too."""
FORWARDERS = {
    "agent": ("agent", AGENT_QUEUE),
    "agent-2000": ("agent", ALLOY_QUEUE),
    "agent-5000": ("agent", BIG_BATCH_QUEUE),
    "rwconsole": ("rwconsole", AGENT_QUEUE),
    "rwconsole-2000": ("rwconsole", ALLOY_QUEUE),
    "rwconsole-5000": ("rwconsole", BIG_BATCH_QUEUE),
}

BASELINE_SUFFIX = "@base"
"""``rwconsole@base`` runs the rwconsole of ``--baseline DIR`` with the same settings."""

# Three metric relabelling rules of three kinds that keep every series and change no label.
KEEP_ALL_METRIC_RELABEL: tuple[dict[str, Any], ...] = (
    {"source_labels": ["__name__"], "regex": ".+", "action": "keep"},
    {"source_labels": ["instance"], "target_label": "instance", "action": "replace"},
    {"regex": "bench_absent_label", "action": "labeldrop"},
)


@dataclass(frozen=True)
class ForwarderName:
    """A ``--forwarders`` entry: ``BASE[+attachN][+mrelabel3][@base]``."""

    text: str
    base: str
    attach: int | None = None
    """Consoles attached to this forwarder (None: ``--attach``)."""
    metric_relabel: bool = False
    baseline: bool = False

    @classmethod
    def parse(cls, text: str) -> ForwarderName:
        """The parsed name (``ValueError`` saying what is wrong)."""
        rest, baseline = text, text.endswith(BASELINE_SUFFIX)
        rest = rest.removesuffix(BASELINE_SUFFIX)
        base, *variants = rest.split("+")
        if base not in FORWARDERS:
            raise ValueError(f"{text}: unknown forwarder {base!r}")
        attach: int | None = None
        relabel = False
        for variant in variants:
            if match := re.fullmatch(r"attach(\d+)", variant):
                attach = int(match[1])
            elif variant == "mrelabel3":
                relabel = True
            else:
                raise ValueError(f"{text}: unknown variant +{variant} (+attachN, +mrelabel3)")
        kind = FORWARDERS[base][0]
        if kind == "agent" and (baseline or attach is not None):
            raise ValueError(f"{text}: {BASELINE_SUFFIX} and +attachN apply to rwconsole only")
        return cls(text, base, attach, relabel, baseline)

    @property
    def plain(self) -> str:
        """The name without variants (what a variant's ratio is taken against)."""
        return self.base + (BASELINE_SUFFIX if self.baseline else "")


class BenchError(Exception):
    """The benchmark cannot go on (message says why)."""


# ---- processes -----------------------------------------------------------------------------


@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path


class Processes:
    """Starts subprocesses in their own sessions and always stops them (newest first)."""

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self._procs: list[_Proc] = []
        self.others: set[int] | None = None
        """CPUs for every process but the forwarders (None: no pinning)."""

    def start(
        self, name: str, argv: Sequence[str], *, cpus: set[int] | None = None, **kwargs: Any
    ) -> _Proc:
        """Start ``argv``; on ``cpus`` if given, else on ``others`` when pinning is on."""
        log = self._log_dir / f"{name}.log"
        affinity = cpus if cpus is not None else self.others
        with log.open("ab") as out:
            popen = subprocess.Popen(
                list(argv),
                stdout=kwargs.pop("stdout", out),
                stderr=out,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=None if affinity is None else _pinned(affinity),
                **kwargs,
            )
        proc = _Proc(name, popen, log)
        self._procs.append(proc)
        return proc

    def stop(self, proc: _Proc, timeout: float = 20.0) -> None:
        if proc in self._procs:
            self._procs.remove(proc)
        if proc.popen.poll() is None:
            proc.popen.send_signal(signal.SIGTERM)
            try:
                proc.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait(10)

    def stop_all(self) -> None:
        for proc in reversed(list(self._procs)):
            with contextlib.suppress(Exception):
                self.stop(proc)


def _pinned(cpus: set[int]) -> Callable[[], None]:
    def pin() -> None:
        os.sched_setaffinity(0, cpus)

    return pin


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, proc: _Proc, timeout: float, every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise BenchError(f"{proc.name} exited early:\n{tail(proc.log)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code < 500:
                return
        time.sleep(every)
    raise BenchError(f"{proc.name} did not answer {url} within {timeout:.0f}s:\n{tail(proc.log)}")


def tail(path: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


# ---- /proc and /metrics ----------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of ``pid`` so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def machine_times() -> tuple[float, float]:
    """(idle, total) jiffies of all CPUs."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return float(values[3] + values[4]), float(sum(values[:8]))


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")
_PHASE = re.compile(r'phase="([a-z_]+)"')
R = "rwconsole_remote_"
PHASES = ("encode", "loop_wait", "network", "backoff")


def read_metrics(url: str) -> dict[str, float]:
    """Every metric of a /metrics page, summed over its label sets (a ``phase`` label
    is also kept apart, as ``name:phase``)."""
    text = httpx.get(url, timeout=10).text
    totals: dict[str, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None:
            continue
        with contextlib.suppress(ValueError):
            value = float(match[3])
            totals[match[1]] = totals.get(match[1], 0.0) + value
            phase = _PHASE.search(match[2] or "")
            if phase is not None:
                key = f"{match[1]}:{phase[1]}"
                totals[key] = totals.get(key, 0.0) + value
    return totals


def sending(m0: dict[str, float], m1: dict[str, float], seconds: float) -> dict[str, float]:
    """rwconsole's send instrumentation over a window: mean requests in flight, shard
    utilisation, batches/s and milliseconds per batch by phase (empty for the agent)."""
    if R + "send_batches_total" not in m1:
        return {}

    def delta(name: str) -> float:
        return m1.get(name, 0.0) - m0.get(name, 0.0)

    batches = delta(R + "send_batches_total")
    shards = m1.get(P + "shards", 0.0)
    found = {
        "in_flight": delta(R + "requests_in_flight_seconds_total") / seconds,
        "shards_busy": delta(R + "shard_busy_seconds_total") / seconds / shards if shards else 0,
        "batches_per_second": batches / seconds,
    }
    for phase in PHASES:
        spent = delta(f"{R}send_phase_seconds_total:{phase}")
        found[f"{phase}_ms"] = 1000 * spent / batches if batches else 0.0
    return found


def forwarded(m: dict[str, float]) -> float:
    return m.get(P + "samples_total", 0.0) - m.get(P + "samples_retried_total", 0.0)


def lag_seconds(m: dict[str, float]) -> float:
    highest_in = m.get(P + "highest_timestamp_in_seconds", 0.0)
    sent = m.get(P + "queue_highest_sent_timestamp_seconds", 0.0)
    if not sent:  # nothing sent yet: an unbounded lag once anything came in
        return math.inf if highest_in else 0.0
    return max(0.0, highest_in - sent)


# ---- workload --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    targets: int
    series: int
    interval: float

    @classmethod
    def parse(cls, text: str) -> Load:
        match = re.fullmatch(r"(\d+)x(\d+)@(\d+(?:\.\d+)?)s?", text.strip())
        if match is None:
            raise argparse.ArgumentTypeError(f"load {text!r}: expected KxS@SECONDS, e.g. 50x2000@1")
        load = cls(int(match[1]), int(match[2]), float(match[3]))
        if load.targets < 1 or load.series < 1 or load.interval <= 0:
            raise argparse.ArgumentTypeError(f"load {text!r}: K, S and the interval must be > 0")
        return load

    @property
    def active_series(self) -> int:
        return self.targets * (self.series + REPORT_SERIES)

    @property
    def offered(self) -> float:
        return self.active_series / self.interval

    def __str__(self) -> str:
        return f"{self.targets}x{self.series}@{self.interval:g}s"


@dataclass
class Result:
    forwarder: str
    load: str
    mode: str
    receiver: str
    window_seconds: float
    offered_per_second: float
    in_per_second: float
    out_per_second: float
    cpu_us_per_sample: float
    cpu_percent: float
    rss_bytes: int
    active_series: int
    rss_bytes_per_series: float
    wire_bytes_per_sample: float
    lag_start: float
    lag_end: float
    lag_max: float
    pending_end: float
    shards_end: float
    keeps_up: bool
    receiver_cpu_percent: float = 0.0
    receiver_rows_per_second: float | None = None
    loadgen_cpu_percent: float = 0.0
    machine_idle_percent: float = 0.0
    agent_active_series: float | None = None
    sending: dict[str, float] = field(default_factory=dict)
    profile_top: list[tuple[str, float, float]] = field(default_factory=list)


@dataclass
class _Running:
    name: str
    kind: str
    proc: _Proc
    metrics_url: str
    data_dir: Path
    consoles: list[_Proc] = field(default_factory=list)


# A console's link to the service without its screens: the snapshot stream and pings.
ATTACH_CLIENT = (
    "import sys, time; from rwconsole.admin.client import RemoteEngine, parse_target; "
    "e = RemoteEngine(parse_target(sys.argv[1])); e.start(60); time.sleep(1e9)"
)


class Bench:
    """One benchmark session: temp dir, processes, results."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.procs = Processes(workdir)
        self.results: list[Result] = []
        self._counter = 0
        self._receiver_metrics: str | None = None

    def _dir(self, name: str) -> Path:
        self._counter += 1
        path = self.workdir / f"{self._counter:02d}-{name}"
        path.mkdir(parents=True)
        return path

    # ---- receivers and load ----

    def receiver_rows(self) -> float | None:
        """Samples victoria-metrics has taken in by remote write so far (None: null sink)."""
        if self._receiver_metrics is None:
            return None
        try:
            text = httpx.get(self._receiver_metrics, timeout=10).text
        except httpx.HTTPError:
            return None
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith('vm_rows_inserted_total{type="promremotewrite"}')
        )

    def start_receiver(self) -> tuple[_Proc, str]:
        port = free_port()
        self._receiver_metrics = None
        if self.args.receiver == "null":
            proc = self.procs.start(
                "null-receiver", [sys.executable, str(Path(__file__)), "--null-receiver", str(port)]
            )
            wait_http(f"http://127.0.0.1:{port}/", proc, 20)
        else:
            binary = shutil.which("victoria-metrics")
            if binary is None:
                raise BenchError("victoria-metrics is not installed (use --receiver null)")
            proc = self.procs.start(
                "victoria-metrics",
                [
                    binary,
                    f"-httpListenAddr=127.0.0.1:{port}",
                    f"-storageDataPath={self._dir('vm')}",
                    "-retentionPeriod=1d",
                ],
            )
            wait_http(f"http://127.0.0.1:{port}/health", proc, 30)
            self._receiver_metrics = f"http://127.0.0.1:{port}/metrics"
        return proc, f"http://127.0.0.1:{port}/api/v1/write"

    def start_loadgen(self, load: Load) -> tuple[_Proc, list[str]]:
        ports_file = self.workdir / "loadgen-ports.json"
        ports_file.unlink(missing_ok=True)
        procs = self.args.loadgen_procs or (2 if load.targets * load.series >= 200_000 else 1)
        proc = self.procs.start(
            "loadgen",
            [
                sys.executable,
                str(HERE / "loadgen.py"),
                f"--targets={load.targets}",
                f"--series={load.series}",
                f"--procs={procs}",
                f"--ports-file={ports_file}",
                "--max-seconds=7200",
            ],
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                raise BenchError(f"the load generator exited:\n{tail(proc.log)}")
            with contextlib.suppress(OSError, ValueError):
                return proc, json.loads(ports_file.read_text())["targets"]
            time.sleep(0.2)
        raise BenchError("the load generator did not start within 120s")

    # ---- forwarders ----

    def start_forwarder(
        self, name: str, load: Load, targets: list[str], write_url: str
    ) -> _Running:
        spec = ForwarderName.parse(name)
        kind, queue = FORWARDERS[spec.base]
        data_dir = self._dir(name)
        port = free_port()
        timeout = min(load.interval, 10.0)
        if kind == "agent":
            binary = shutil.which("prometheus")
            if binary is None:
                raise BenchError("prometheus is not installed")
            config = data_dir / "prometheus.yml"
            config.write_text(
                json.dumps(
                    {
                        "global": {
                            "scrape_interval": f"{load.interval:g}s",
                            "scrape_timeout": f"{timeout:g}s",
                            "external_labels": {"forwarder": name},
                        },
                        "scrape_configs": [
                            {
                                "job_name": "loadgen",
                                "static_configs": [{"targets": targets}],
                                "metric_relabel_configs": list(
                                    KEEP_ALL_METRIC_RELABEL if spec.metric_relabel else ()
                                ),
                            }
                        ],
                        "remote_write": [
                            {
                                "url": write_url,
                                "name": "bench",
                                "queue_config": {
                                    **queue,
                                    "batch_send_deadline": f"{queue['batch_send_deadline']}s",
                                },
                            }
                        ],
                    }
                )
            )
            argv = [
                binary,
                "--enable-feature=agent",
                f"--config.file={config}",
                f"--storage.agent.path={data_dir / 'agent'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ]
        else:
            config = data_dir / "rwconsole.toml"
            queue_lines = "\n".join(
                f'{k} = "{v}s"' if k == "batch_send_deadline" else f"{k} = {v}"
                for k, v in queue.items()
            )
            target_list = ", ".join(f'"{t}"' for t in targets)
            config.write_text(
                f'external_labels = {{ forwarder = "{name}" }}\n\n'
                f'[http]\nlisten_address = "127.0.0.1:{port}"\n\n'
                f'[storage]\npath = "{data_dir / "data"}"\n\n'
                f'[[endpoint]]\nname = "bench"\nurl = "{write_url}"\n\n'
                f"[endpoint.queue_config]\n{queue_lines}\n\n"
                f'[[scrape]]\njob_name = "loadgen"\ntargets = [{target_list}]\n'
                f'scrape_interval = "{load.interval:g}s"\nscrape_timeout = "{timeout:g}s"\n'
                + (_toml_metric_relabel(KEEP_ALL_METRIC_RELABEL) if spec.metric_relabel else "")
            )
            argv = [sys.executable, "-m", "rwconsole", "run", "--config", str(config)]
        # Run the rwconsole of the checkout this script belongs to, or of --baseline.
        tree = self.args.baseline if spec.baseline else HERE.parent
        env = {**os.environ, "PYTHONPATH": str(tree)}
        pin = {self.args.pin} if self.args.pin is not None else None
        proc = self.procs.start(name, argv, cpus=pin, cwd=data_dir, env=env)
        metrics_url = f"http://127.0.0.1:{port}/metrics"
        wait_http(metrics_url, proc, 60)
        running = _Running(name, kind, proc, metrics_url, data_dir)
        if kind != "agent":
            socket = str(data_dir / "data" / "rwconsole.sock")
            running.consoles = [
                self.procs.start(
                    f"{name}-console{i}", [sys.executable, "-c", ATTACH_CLIENT, socket], env=env
                )
                for i in range(self.args.attach if spec.attach is None else spec.attach)
            ]
        return running

    def stop_forwarder(self, running: _Running) -> None:
        for console in running.consoles:
            self.procs.stop(console)
        self.procs.stop(running.proc, timeout=30)
        if not self.args.keep:
            shutil.rmtree(running.data_dir, ignore_errors=True)

    # ---- one measurement ----

    def measure(
        self,
        load: Load,
        mode: str,
        running: Sequence[_Running],
        receiver: _Proc,
        loadgen: _Proc,
    ) -> list[Result]:
        args = self.args
        print(f"  warm-up {args.warmup:g}s", flush=True)
        time.sleep(args.warmup)
        pids = {r.name: r.proc.popen.pid for r in running}
        for r in running:
            if r.proc.popen.poll() is not None:
                raise BenchError(f"{r.name} exited during the warm-up:\n{tail(r.proc.log)}")
        start_metrics = {r.name: read_metrics(r.metrics_url) for r in running}
        start_cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
        other_cpu = (cpu_seconds(receiver.popen.pid), _tree_cpu(loadgen.popen.pid))
        rows0 = self.receiver_rows()
        idle0, total0 = machine_times()
        t0 = time.monotonic()
        lag_max = dict.fromkeys(pids, 0.0)
        print(f"  window {args.window:g}s", flush=True)
        deadline = t0 + args.window
        while time.monotonic() < deadline:
            time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
            for r in running:
                with contextlib.suppress(httpx.HTTPError):
                    lag_max[r.name] = max(lag_max[r.name], lag_seconds(read_metrics(r.metrics_url)))
        elapsed = time.monotonic() - t0
        end_cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
        for r in running:
            for console in r.consoles:
                if console.popen.poll() is not None:
                    raise BenchError(f"{console.name} exited during the run:\n{tail(console.log)}")
        receiver_cpu = cpu_seconds(receiver.popen.pid) - other_cpu[0]
        loadgen_cpu = _tree_cpu(loadgen.popen.pid) - other_cpu[1]
        idle1, total1 = machine_times()
        rows1 = self.receiver_rows()
        end_metrics = {r.name: read_metrics(r.metrics_url) for r in running}
        rss = {name: rss_bytes(pid) for name, pid in pids.items()}
        idle_percent = 100.0 * (idle1 - idle0) / max(1.0, total1 - total0)
        results = []
        for r in running:
            m0, m1 = start_metrics[r.name], end_metrics[r.name]
            out = forwarded(m1) - forwarded(m0)
            samples_in = m1.get(P + "samples_in_total", 0) - m0.get(P + "samples_in_total", 0)
            cpu = end_cpu[r.name] - start_cpu[r.name]
            wire = m1.get(P + "bytes_total", 0) - m0.get(P + "bytes_total", 0)
            lag0, lag1 = lag_seconds(m0), lag_seconds(m1)
            lag_max[r.name] = max(lag_max[r.name], lag0, lag1)
            out_rate = out / elapsed
            lag_limit = 2 * load.interval + 10
            keeps_up = (
                out_rate >= 0.95 * load.offered
                and lag1 <= lag_limit
                and lag1 - lag0 <= load.interval + 5
            )
            results.append(
                Result(
                    forwarder=r.name,
                    load=str(load),
                    mode=mode,
                    receiver=args.receiver,
                    window_seconds=round(elapsed, 1),
                    offered_per_second=load.offered,
                    in_per_second=samples_in / elapsed,
                    out_per_second=out_rate,
                    cpu_us_per_sample=cpu * 1e6 / out if out else math.inf,
                    cpu_percent=100.0 * cpu / elapsed,
                    rss_bytes=rss[r.name],
                    active_series=load.active_series,
                    rss_bytes_per_series=rss[r.name] / load.active_series,
                    wire_bytes_per_sample=wire / out if out else math.nan,
                    lag_start=lag0,
                    lag_end=lag1,
                    lag_max=lag_max[r.name],
                    pending_end=m1.get(P + "samples_pending", 0.0),
                    shards_end=m1.get(P + "shards", 0.0),
                    keeps_up=keeps_up,
                    receiver_cpu_percent=100.0 * receiver_cpu / elapsed,
                    receiver_rows_per_second=_rate(rows0, rows1, elapsed),
                    loadgen_cpu_percent=100.0 * loadgen_cpu / elapsed,
                    machine_idle_percent=idle_percent,
                    agent_active_series=m1.get("prometheus_agent_active_series"),
                    sending=sending(m0, m1, elapsed),
                )
            )
        if args.profile_dir is not None:
            for r, result in zip(running, results, strict=True):
                if r.kind == "rwconsole":
                    result.profile_top = self.profile(r, load)
        return results

    def profile(self, running: _Running, load: Load) -> list[tuple[str, float, float]]:
        binary = shutil.which("py-spy")
        if binary is None:
            print("  py-spy is not installed (pip install py-spy): no profile")
            return []
        out_dir: Path = self.args.profile_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        stem = f"{running.name}-{load}".replace("@", "-at-")
        seconds = int(self.args.profile_seconds)
        print(f"  py-spy {seconds}s on {running.name}", flush=True)
        raw = out_dir / f"{stem}.txt"
        completed = subprocess.run(
            [
                binary,
                "record",
                f"--pid={running.proc.popen.pid}",
                f"--duration={seconds}",
                "--rate=200",
                "--format=raw",
                f"--output={raw}",
                "--nonblocking",
            ],
            capture_output=True,
            timeout=seconds + 60,
            check=False,
        )
        if completed.returncode != 0 or not raw.exists():
            print(f"  py-spy failed: {completed.stderr.decode(errors='replace')[-500:]}")
            return []
        return top_functions(raw.read_text(), self.args.profile_top)

    # ---- sessions ----

    def run_load(self, load: Load) -> None:
        print(
            f"\n== load {load}: {load.active_series} active series, "
            f"{load.offered:,.0f} samples/s offered ==",
            flush=True,
        )
        loadgen, targets = self.start_loadgen(load)
        try:
            print_background_cpu()
            modes = ["sequential", "side-by-side"] if self.args.mode == "both" else [self.args.mode]
            for mode in modes:
                groups = (
                    [[name] for name in self.args.forwarders]
                    if mode == "sequential"
                    else [list(self.args.forwarders)]
                )
                for group in groups:
                    print(f"- {mode}: {', '.join(group)}", flush=True)
                    receiver, write_url = self.start_receiver()
                    running: list[_Running] = []
                    try:
                        running = [self.start_forwarder(n, load, targets, write_url) for n in group]
                        self.results += self.measure(load, mode, running, receiver, loadgen)
                    finally:
                        for r in running:
                            self.stop_forwarder(r)
                        self.procs.stop(receiver)
        finally:
            self.procs.stop(loadgen)
        print_table([r for r in self.results if r.load == str(load)])


def _toml_metric_relabel(rules: Sequence[dict[str, Any]]) -> str:
    """``[[scrape.metric_relabel_configs]]`` tables for ``rules`` (strings and string lists)."""
    out = []
    for rule in rules:
        out.append("\n[[scrape.metric_relabel_configs]]")
        out.extend(f"{key} = {json.dumps(value)}" for key, value in rule.items())
    return "\n".join(out) + "\n"


def print_background_cpu(seconds: float = 3.0) -> None:
    """The machine's CPU use over ``seconds``, before a benchmark starts its forwarders."""
    idle0, total0 = machine_times()
    time.sleep(seconds)
    idle1, total1 = machine_times()
    busy = 100.0 * (1 - (idle1 - idle0) / max(1.0, total1 - total0))
    print(f"  background CPU use before the runs: {busy:.1f}% of all CPUs", flush=True)


def _tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and its direct children (the load generator's workers)."""
    total = cpu_seconds(pid)
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        for child in children:
            with contextlib.suppress(OSError):
                total += cpu_seconds(int(child))
    return total


# ---- profile summary --------------------------------------------------------------------------


def top_functions(raw: str, count: int) -> list[tuple[str, float, float]]:
    """(function, self %, inclusive %) from py-spy's collapsed stacks, by self share."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        samples = int(number)
        frames = [_frame_name(f) for f in stack.split(";")]
        frames = [f for f in frames if f]
        if not frames:
            continue
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    if not total:
        return []
    return [
        (name, 100.0 * samples / total, 100.0 * inclusive[name] / total)
        for name, samples in own.most_common(count)
    ]


def _frame_name(frame: str) -> str:
    # py-spy writes "function (path/to/file.py:LINE)"; keep the function and the file's tail.
    match = re.match(r"(.*?) \((.*?)(?::\d+)?\)$", frame.strip())
    if match is None:
        return frame.strip()
    function, path = match[1], match[2]
    parts = Path(path).parts
    short = "/".join(parts[-2:]) if len(parts) >= 2 else path
    return f"{function} ({short})"


# ---- output -----------------------------------------------------------------------------------


def print_table(results: Sequence[Result]) -> None:
    if not results:
        return
    header = (
        f"{'forwarder':<15} {'mode':<12} {'offered/s':>10} {'in/s':>10} {'out/s':>10} {'up':>3} "
        f"{'µs/smp':>7} {'CPU%':>6} {'RSS MiB':>8} {'B/series':>9} {'wireB/s':>8} "
        f"{'lag end/max':>12} {'pending':>8} {'shards':>6} {'recv/s':>9} {'recv%':>6} "
        f"{'gen%':>5} {'idle%':>6}"
    )
    print()
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.forwarder:<15} {r.mode:<12} {r.offered_per_second:>10,.0f} "
            f"{r.in_per_second:>10,.0f} {r.out_per_second:>10,.0f} "
            f"{'yes' if r.keeps_up else 'NO':>3} {r.cpu_us_per_sample:>7.2f} "
            f"{r.cpu_percent:>6.1f} {r.rss_bytes / 2**20:>8.1f} {r.rss_bytes_per_series:>9,.0f} "
            f"{r.wire_bytes_per_sample:>8.2f} {f'{r.lag_end:.1f}/{r.lag_max:.1f}':>12} "
            f"{r.pending_end:>8,.0f} {r.shards_end:>6.0f} {_rows(r.receiver_rows_per_second):>9} "
            f"{r.receiver_cpu_percent:>6.1f} "
            f"{r.loadgen_cpu_percent:>5.1f} {r.machine_idle_percent:>6.1f}"
        )
    for r in results:
        if r.agent_active_series is not None and r.agent_active_series != r.active_series:
            print(
                f"note: {r.forwarder} reports {r.agent_active_series:,.0f} active series "
                f"(expected {r.active_series:,})"
            )
    for r in results:
        if r.sending:
            x = r.sending
            print(
                f"sending {r.forwarder}: {x['in_flight']:.2f} requests in flight (mean), shards "
                f"busy {x['shards_busy']:.0%}, {x['batches_per_second']:.0f} batches/s; per "
                f"batch ms: encode {x['encode_ms']:.2f}, loop wait {x['loop_wait_ms']:.2f}, "
                f"network {x['network_ms']:.2f}, backoff {x['backoff_ms']:.2f}"
            )
    for mode in dict.fromkeys(r.mode for r in results):
        agents = [r for r in results if r.mode == mode and r.forwarder.startswith("agent")]
        if not agents:
            continue
        agent = agents[0]
        for r in results:
            if r.mode != mode or not r.forwarder.startswith("rwconsole"):
                continue
            print(
                f"ratio {r.forwarder}/agent ({mode}): "
                f"CPU/sample {_ratio(r.cpu_us_per_sample, agent.cpu_us_per_sample)}, "
                f"RSS/series {_ratio(r.rss_bytes_per_series, agent.rss_bytes_per_series)}, "
                f"wire B/sample {_ratio(r.wire_bytes_per_sample, agent.wire_bytes_per_sample)}, "
                f"out/s {_ratio(r.out_per_second, agent.out_per_second)}"
            )
    for r in results:
        plain = ForwarderName.parse(r.forwarder).plain
        if plain == r.forwarder:
            continue
        for other in results:
            if other.mode == r.mode and other.forwarder == plain:
                print(
                    f"ratio {r.forwarder}/{plain} ({r.mode}): "
                    f"CPU/sample {_ratio(r.cpu_us_per_sample, other.cpu_us_per_sample)}, "
                    f"RSS/series {_ratio(r.rss_bytes_per_series, other.rss_bytes_per_series)}, "
                    f"out/s {_ratio(r.out_per_second, other.out_per_second)}"
                )
    for r in results:
        if r.profile_top:
            print(f"\nprofile of {r.forwarder} ({r.load}), top functions by own CPU share:")
            print(f"  {'self%':>6} {'incl%':>6}  function")
            for name, own, inclusive in r.profile_top:
                print(f"  {own:>6.1f} {inclusive:>6.1f}  {name}")


def _rate(before: float | None, after: float | None, seconds: float) -> float | None:
    return None if before is None or after is None else (after - before) / seconds


def _rows(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:,.0f}"


def _ratio(a: float, b: float) -> str:
    if not b or math.isnan(a) or math.isnan(b) or math.isinf(a) or math.isinf(b):
        return "n/a"
    return f"{a / b:.2f}"


# ---- null receiver ----------------------------------------------------------------------------


async def _null_receiver(port: int, seconds: float, arrivals_file: Path | None = None) -> None:
    """Reads each request body and answers 204 (GET answers 200 for the readiness check).

    With ``arrivals_file``, each body's arrival and first sample's timestamp are noted
    (``arrivals.Arrivals``) and written there when the receiver stops."""
    arrivals = Arrivals() if arrivals_file is not None else None

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for _ in range(100_000_000):
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    body = await reader.readexactly(length)
                    if arrivals is not None:
                        arrivals.note(body)
                if head.startswith(b"GET"):
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
                else:
                    writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", port, limit=1 << 20)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    server.close()
    if arrivals is not None and arrivals_file is not None:
        arrivals.write(arrivals_file)


# ---- main -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--load",
        type=Load.parse,
        action="append",
        help="KxS@SECONDS: K targets of S series scraped every SECONDS (repeat to step up)",
    )
    parser.add_argument(
        "--forwarders",
        default="agent,rwconsole",
        help=", ".join(FORWARDERS) + "; variants +attachN, +mrelabel3 and @base (see above)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help=f"another checkout; forwarders named NAME{BASELINE_SUFFIX} run its rwconsole",
    )
    parser.add_argument("--mode", choices=("sequential", "side-by-side", "both"), default=None)
    parser.add_argument("--receiver", choices=("vm", "null"), default="vm")
    parser.add_argument("--warmup", type=float, default=None, help="seconds before the window")
    parser.add_argument("--window", type=float, default=None, help="seconds of the steady window")
    parser.add_argument("--loadgen-procs", type=int, default=0, help="load generator processes")
    parser.add_argument("--profile-dir", type=Path, help="py-spy each rwconsole run, save here")
    parser.add_argument("--profile-seconds", type=float, default=20.0)
    parser.add_argument("--profile-top", type=int, default=20)
    parser.add_argument("--json", type=Path, help="write all results here")
    parser.add_argument(
        "--attach",
        type=int,
        default=0,
        metavar="N",
        help="N consoles' links (snapshot stream) attached to each rwconsole during the run",
    )
    parser.add_argument(
        "--pin",
        type=int,
        metavar="CPU",
        help="run each forwarder on this CPU alone, everything else on the other CPUs",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--quick", action="store_true", help="a small load, about one minute")
    parser.add_argument("--null-receiver", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--arrivals", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.null_receiver is not None:
        return args
    names = [n.strip() for n in args.forwarders.split(",") if n.strip()]
    if not names:
        parser.error(f"--forwarders: none given; choose from {', '.join(FORWARDERS)}")
    if len(set(names)) != len(names):
        parser.error("--forwarders: a name is given twice")
    specs = []
    for n in names:
        try:
            specs.append(ForwarderName.parse(n))
        except ValueError as err:
            parser.error(f"--forwarders: {err}; choose from {', '.join(FORWARDERS)}")
    based = [s.text for s in specs if s.baseline]
    if based and (args.baseline is None or not (args.baseline / "rwconsole").is_dir()):
        parser.error(f"{', '.join(based)} need --baseline DIR, a checkout holding rwconsole/")
    args.forwarders = names
    if args.quick:
        args.load = args.load or [Load(10, 2000, 1.0)]
        args.warmup = 8.0 if args.warmup is None else args.warmup
        args.window = 15.0 if args.window is None else args.window
    args.load = args.load or [Load(50, 2000, 1.0)]
    args.mode = args.mode or "sequential"
    if args.warmup is None:
        args.warmup = max(20.0, 5 * max(load.interval for load in args.load))
    args.window = 40.0 if args.window is None else args.window
    if args.warmup < 0 or args.window <= 0:
        parser.error("--warmup must be >= 0 and --window > 0")
    if args.pin is not None:
        cpus = os.sched_getaffinity(0)
        if args.pin not in cpus or len(cpus) < 2:
            parser.error(f"--pin {args.pin}: needs one of {sorted(cpus)} and another CPU left")
    return args


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C, so the finally blocks stop every process."""

    def on_term(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_guarded(bench: Bench, work: Callable[[], object]) -> int:
    """Run ``work``; stop every process of ``bench`` whatever happens; the exit code."""
    code = 0
    with _interruptible():
        try:
            work()
        except KeyboardInterrupt:
            print("\ninterrupted: stopping every process", file=sys.stderr)
            code = 130
        except BenchError as err:
            print(f"\nerror: {err}", file=sys.stderr)
            code = 1
        finally:
            bench.procs.stop_all()
            if bench.args.keep or code:
                print(f"logs and data kept in {bench.workdir}", file=sys.stderr)
            else:
                shutil.rmtree(bench.workdir, ignore_errors=True)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.null_receiver is not None:
        asyncio.run(_null_receiver(args.null_receiver, 7200, args.arrivals))
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="bench-forwarder-"))
    bench = Bench(args, workdir)
    if args.pin is not None:
        bench.procs.others = os.sched_getaffinity(0) - {args.pin}
        os.sched_setaffinity(0, bench.procs.others)
    print(
        f"{time.strftime('%Y-%m-%d %H:%M')} · {os.cpu_count()} CPUs"
        f" · python {sys.version.split()[0]}"
        f" · mode {args.mode} · receiver {args.receiver} · warm-up {args.warmup:g}s"
        f" · window {args.window:g}s · work dir {workdir}"
        + (f" · forwarders pinned to CPU {args.pin}" if args.pin is not None else "")
    )
    code = run_guarded(bench, lambda: [bench.run_load(load) for load in args.load])
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in bench.results], indent=2) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
