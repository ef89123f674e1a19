"""Outage catch-up benchmark: how fast a forwarder drains its backlog once the receiver is back.

Usage:
  python benchmarks/bench_catchup.py [--load 50x2000@1] [--outage 121] \\
      [--forwarders rwconsole,agent,vmagent] [--warmup 30] [--steady 15] \\
      [--drain-timeout 300] [--poll 0.1] [--pin CPU] [--baseline DIR] [--json FILE]

For each forwarder in turn (one at a time, same load generator): a null
receiver (``bench_forwarder.py``'s sink) on a fixed port, the forwarder
scraping the load, a warm-up, a steady window, then the receiver **process is
stopped** for ``--outage`` seconds (connections are refused, as when a
receiver is down or restarting) and started again on the same port. The
script polls the forwarder's /metrics and /proc every ``--poll`` seconds
(0.1 by default: a drain takes a few seconds, so polls half a second apart
would round it to their spacing) until its backlog is back under two scrape
intervals' worth of samples.

Reported per forwarder:
  backlog        samples taken in while the receiver was down
  drain s        receiver answering (its process takes 0.3-0.7 s to start, which
                 is no forwarder's doing) -> the first of two polls in a row
                 whose backlog is under 2 intervals' worth of samples. The backlog of rwconsole
                 and the agent: the larger of the lag of
                 ``bench_forwarder.lag_seconds`` (times the offered rate) and
                 ``samples_pending`` (the lag follows the highest timestamp any
                 shard sent, so it can read zero while other shards still hold
                 parked batches); vmagent: its persistent queue's pending bytes,
                 converted to samples at the bytes per sample it wrote during
                 the outage
  drain/s        samples taken in from the outage's start until drained, divided
                 by the drain time (what had to go out while draining)
  ×ingest        drain/s / steady ingest rate
  rx drain s     the drain timed by the receiver, the same way for every forwarder:
                 receiver answering -> the arrival of the last body whose first
                 sample is older than that (``arrivals.py``; a queue sends its
                 samples oldest first). The receiver stays up 1.5 s after the
                 forwarder's own figures read drained, for bodies still on the way
  rx drain/s     samples scraped before the receiver answered / rx drain s
  rx B/smp       compressed bytes of those backlog bodies per backlog sample
  RSS steady / outage / drain   VmRSS: the steady window's peak, the outage's
                 peak and the drain's peak (MiB)
  CPU%           the forwarder's CPU during the drain; ``idle%`` the machine's;
                 ``rcv%`` the receiver's (from when it answers; ``--trace``
                 prints every poll of the drain and when the receiver answered)
  µs/smp         the forwarder's CPU seconds during the drain / the samples it had
                 to send meanwhile (scraping included): on a machine whose CPUs
                 are saturated by other work the drain rate follows the CPU share
                 a forwarder gets, this figure much less
The background CPU use is printed before the runs: quote ratios of one run.
Forwarders: ``rwconsole``, ``rwconsole-5000``, ``agent``, ``agent-5000`` (as in
``bench_forwarder.py``), ``vmagent`` (its default remote-write settings: up to
10,000 samples a request), ``vmagent-2000`` (``-remoteWrite.maxRowsPerBlock=2000``,
the request size of rwconsole's and Alloy's defaults), and ``NAME@base`` with
``--baseline DIR``. With ``--pin`` every forwarder, vmagent included, runs on that
CPU alone.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from arrivals import backlog_delivered, read_arrivals
from bench_forwarder import (
    BASELINE_SUFFIX,
    FORWARDERS,
    HERE,
    Bench,
    BenchError,
    Load,
    P,
    R,
    _Proc,
    _Running,
    cpu_seconds,
    free_port,
    lag_seconds,
    machine_times,
    print_background_cpu,
    read_metrics,
    rss_bytes,
    run_guarded,
    top_functions,
    wait_http,
)

VMAGENT = "vmagent"
VMAGENT_ROWS = {VMAGENT: None, f"{VMAGENT}-2000": 2000}
"""vmagent variants by -remoteWrite.maxRowsPerBlock (None: its default, 10,000 samples)."""
VM_IN = "vmagent_remotewrite_global_rows_pushed_before_relabel_total"
VM_PENDING = "vmagent_remotewrite_pending_data_bytes"
VM_WRITTEN = "vm_persistentqueue_bytes_written_total"
IN_FLIGHT_SECONDS = R + "requests_in_flight_seconds_total"
RECEIVER_SETTLE = 1.5
"""Seconds the receiver stays up after the forwarder's figures read drained."""


@dataclass
class CatchupResult:
    forwarder: str
    load: str
    outage_seconds: float
    ingest_per_second: float
    backlog_samples: float
    drain_seconds: float
    drain_per_second: float
    drain_over_ingest: float
    rss_steady: int
    rss_outage: int
    rss_drain: int
    cpu_percent_drain: float
    cpu_us_per_sample_drain: float
    machine_idle_percent_drain: float
    receiver_cpu_percent_drain: float
    answering_after_seconds: float
    receiver_drain_seconds: float
    """Receiver answering -> the last body whose first sample is older than that arrived."""
    receiver_drain_per_second: float
    """Samples scraped before the receiver answered / ``receiver_drain_seconds``."""
    receiver_backlog_bodies: int
    receiver_bytes_per_sample: float
    """Compressed body bytes of those bodies per sample of the backlog."""
    shards_max: float | None
    drained: bool


@dataclass
class _Sample:
    t: float
    samples_in: float
    backlog_samples: float
    rss: int
    shards: float | None
    cpu: float = 0.0
    receiver_cpu: float = 0.0
    in_flight_seconds: float | None = None  # rwconsole: requests in flight x seconds so far


class CatchupBench(Bench):
    """Adds vmagent and a restartable receiver to ``bench_forwarder.Bench``."""

    def start_null_receiver(self, port: int, arrivals: Path | None = None) -> _Proc:
        command = [sys.executable, str(HERE / "bench_forwarder.py"), "--null-receiver", str(port)]
        if arrivals is not None:
            command.append(f"--arrivals={arrivals}")
        proc = self.procs.start("null-receiver", command)
        wait_http(f"http://127.0.0.1:{port}/", proc, 20, every=0.01)
        return proc

    def start_any(self, name: str, load: Load, targets: list[str], write_url: str) -> _Running:
        if name not in VMAGENT_ROWS:
            return self.start_forwarder(name, load, targets, write_url)
        binary = shutil.which("vmagent")
        if binary is None:
            raise BenchError("vmagent is not installed")
        data_dir = self._dir(name)
        port = free_port()
        config = data_dir / "scrape.yml"
        config.write_text(
            json.dumps(
                {
                    "global": {
                        "scrape_interval": f"{load.interval:g}s",
                        "scrape_timeout": f"{min(load.interval, 10.0):g}s",
                    },
                    "scrape_configs": [
                        {"job_name": "loadgen", "static_configs": [{"targets": targets}]}
                    ],
                }
            )
        )
        argv = [
            binary,
            f"-promscrape.config={config}",
            f"-remoteWrite.url={write_url}",
            f"-remoteWrite.tmpDataPath={data_dir / 'queue'}",
            f"-remoteWrite.label=forwarder={name}",
            f"-httpListenAddr=127.0.0.1:{port}",
        ]
        rows = VMAGENT_ROWS[name]
        if rows is not None:
            argv.append(f"-remoteWrite.maxRowsPerBlock={rows}")
        # Pinned like every forwarder: on the other CPUs it would share one with the
        # receiver and the load generator (Go sizes GOMAXPROCS to the CPUs it may use).
        pin = {self.args.pin} if self.args.pin is not None else None
        proc = self.procs.start(name, argv, cpus=pin, cwd=data_dir)
        metrics_url = f"http://127.0.0.1:{port}/metrics"
        wait_http(metrics_url, proc, 60)
        return _Running(name, VMAGENT, proc, metrics_url, data_dir)

    def start_profile(self, running: _Running) -> tuple[_Proc, Path] | None:
        """py-spy on an rwconsole process for the first seconds of the drain."""
        out_dir: Path | None = self.args.profile_dir
        binary = shutil.which("py-spy")
        if out_dir is None or running.kind != "rwconsole" or binary is None:
            return None
        out_dir.mkdir(parents=True, exist_ok=True)
        raw = out_dir / f"{running.name}-drain.txt"
        argv = [
            binary,
            "record",
            f"--pid={running.proc.popen.pid}",
            f"--duration={int(self.args.profile_seconds)}",
            f"--rate={self.args.profile_rate}",
            "--format=raw",
            f"--output={raw}",
            "--nonblocking",
        ]
        return self.procs.start("py-spy", argv), raw

    def print_profile(self, profile: tuple[_Proc, Path]) -> None:
        proc, raw = profile
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(self.args.profile_seconds + 30)
        self.procs.stop(proc)
        if not raw.exists():
            print("  py-spy wrote no profile")
            return
        print("  drain profile, top functions by own share (self% incl%):")
        for function, own, inclusive in top_functions(raw.read_text(), 25):
            print(f"  {own:>6.1f} {inclusive:>6.1f}  {function}")

    def run_one(self, name: str, load: Load, targets: list[str]) -> CatchupResult:
        args = self.args
        port = free_port()
        receiver = self.start_null_receiver(port)
        running = self.start_any(name, load, targets, f"http://127.0.0.1:{port}/api/v1/write")
        pid = running.proc.popen.pid
        per_byte = [0.0]  # vmagent: samples per pending byte, set when the outage ends

        def sample() -> _Sample:
            m = read_metrics(running.metrics_url)
            cpu = cpu_seconds(pid)
            receiver_cpu = 0.0
            if receiver.popen.poll() is None:  # down during the outage
                with contextlib.suppress(OSError):
                    receiver_cpu = cpu_seconds(receiver.popen.pid)
            if running.kind == VMAGENT:
                pending = m.get(VM_PENDING, 0.0) * per_byte[0]
                return _Sample(
                    time.monotonic(), m.get(VM_IN, 0.0), pending, rss_bytes(pid), None, cpu,
                    receiver_cpu,
                )  # fmt: skip
            backlog = max(lag_seconds(m) * load.offered, m.get(P + "samples_pending", 0.0))
            return _Sample(
                time.monotonic(), m.get(P + "samples_in_total", 0.0), backlog, rss_bytes(pid),
                m.get(P + "shards"), cpu, receiver_cpu, m.get(IN_FLIGHT_SECONDS),
            )  # fmt: skip

        def poll(
            seconds: float, until: Callable[[list[_Sample]], bool] | None = None
        ) -> list[_Sample]:
            out: list[_Sample] = []
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                if running.proc.popen.poll() is not None:
                    raise BenchError(f"{name} exited")
                with contextlib.suppress(httpx.HTTPError):
                    out.append(sample())
                    if until is not None and until(out):
                        break
                time.sleep(args.poll)
            return out

        try:
            print(f"- {name}: warm-up {args.warmup:g}s", flush=True)
            time.sleep(args.warmup)
            steady = poll(args.steady)
            ingest = (steady[-1].samples_in - steady[0].samples_in) / (steady[-1].t - steady[0].t)
            written_before = 0.0
            if running.kind == VMAGENT:
                written_before = read_metrics(running.metrics_url).get(VM_WRITTEN, 0.0)
            print(f"  receiver down {args.outage:g}s", flush=True)
            self.procs.stop(receiver)
            down = sample()
            outage = poll(args.outage)
            up_at = time.monotonic()
            arrivals = self.workdir / f"arrivals-{name}.jsonl"
            receiver = self.start_null_receiver(port, arrivals)
            answering = time.monotonic()  # its process starts in 0.3-0.7 s: not the forwarder's
            answering_ms = int(time.time() * 1000)
            receiver_cpu0 = cpu_seconds(receiver.popen.pid)
            if running.kind == VMAGENT:
                written = read_metrics(running.metrics_url).get(VM_WRITTEN, 0.0) - written_before
                taken = outage[-1].samples_in - down.samples_in
                per_byte[0] = taken / written if written else 0.0
            cpu0, (idle0, total0) = cpu_seconds(pid), machine_times()
            profile = self.start_profile(running)
            limit = 2 * load.interval * load.offered

            def drained_by(out: list[_Sample]) -> bool:
                return len(out) > 1 and all(s.backlog_samples < limit for s in out[-2:])

            # Two polls in a row: vmagent's pending bytes can read 0 for a moment.
            drain = poll(args.drain_timeout, drained_by)
            cpu1, (idle1, total1) = cpu_seconds(pid), machine_times()
            receiver_cpu1 = cpu_seconds(receiver.popen.pid)
            # The receiver stays up a while longer: a forwarder's own figure may read drained
            # before its last old body arrived, and the receiver's notes tell when it did.
            time.sleep(RECEIVER_SETTLE)
            if args.trace:
                print_trace(drain, up_at, answering)
            if profile is not None:
                self.print_profile(profile)
        finally:
            self.stop_forwarder(running)
            self.procs.stop(receiver)
        notes = read_arrivals(arrivals)
        delivered_at, old_bodies, old_bytes = backlog_delivered(notes, answering_ms)
        last = drain[-1]
        drained = drained_by(drain)
        end = drain[-2] if drained else last  # the second poll only confirms the first
        seconds = end.t - answering
        cleared = end.samples_in - down.samples_in
        cleared_by_last = last.samples_in - down.samples_in
        rate = cleared / seconds if seconds > 0 else math.nan
        # Everything scraped before the receiver answered, by the receiver's clock.
        before_answer = outage[-1].samples_in - down.samples_in
        before_answer += ingest * max(0.0, answering - outage[-1].t)
        rx_seconds = delivered_at - answering if delivered_at is not None else math.nan
        shards = [s.shards for s in steady + outage + drain if s.shards is not None]
        return CatchupResult(
            forwarder=name,
            load=str(load),
            outage_seconds=round(up_at - down.t, 1),
            ingest_per_second=ingest,
            backlog_samples=outage[-1].samples_in - down.samples_in,
            drain_seconds=round(seconds, 1),
            drain_per_second=rate,
            drain_over_ingest=rate / ingest if ingest else math.nan,
            rss_steady=max(s.rss for s in steady),
            rss_outage=max(s.rss for s in outage),
            rss_drain=max(s.rss for s in drain),
            cpu_percent_drain=100.0 * (cpu1 - cpu0) / max(1e-9, last.t - answering),
            cpu_us_per_sample_drain=1e6 * (cpu1 - cpu0) / max(1.0, cleared_by_last),
            machine_idle_percent_drain=100.0 * (idle1 - idle0) / max(1.0, total1 - total0),
            receiver_cpu_percent_drain=100.0
            * (receiver_cpu1 - receiver_cpu0)
            / max(1e-9, last.t - answering),
            answering_after_seconds=round(answering - up_at, 2),
            receiver_drain_seconds=round(rx_seconds, 2),
            receiver_drain_per_second=before_answer / rx_seconds if rx_seconds > 0 else math.nan,
            receiver_backlog_bodies=old_bodies,
            receiver_bytes_per_sample=old_bytes / before_answer if before_answer else math.nan,
            shards_max=max(shards) if shards else None,
            drained=drained,
        )

    def run(self, load: Load) -> list[CatchupResult]:
        print(f"\n== load {load}: {load.offered:,.0f} samples/s offered ==", flush=True)
        loadgen, targets = self.start_loadgen(load)
        results: list[CatchupResult] = []
        try:
            print_background_cpu()
            for name in self.args.forwarders:
                results.append(self.run_one(name, load, targets))
                print_results(results[-1:])
        finally:
            self.procs.stop(loadgen)
        return results


def print_trace(drain: Sequence[_Sample], up_at: float, answering: float) -> None:
    """Each drain poll: seconds since the receiver started (and since it answered),
    the backlog, and what each side used of a CPU since the poll before."""
    print(f"  receiver answering {answering - up_at:.2f}s after its start (t = 0)")
    print("     t s      backlog  forwarder CPU%  receiver CPU%  requests in flight")
    for before, s in itertools.pairwise(drain):
        span = max(1e-9, s.t - before.t)
        in_flight = "-"
        if s.in_flight_seconds is not None and before.in_flight_seconds is not None:
            in_flight = f"{(s.in_flight_seconds - before.in_flight_seconds) / span:.1f}"
        print(
            f"  {s.t - up_at:>6.2f} {s.backlog_samples:>12,.0f} "
            f"{100 * (s.cpu - before.cpu) / span:>14.0f} "
            f"{100 * (s.receiver_cpu - before.receiver_cpu) / span:>14.0f} {in_flight:>19}"
        )


def print_results(results: Sequence[CatchupResult]) -> None:
    mib = 2**20
    header = (
        f"{'forwarder':<18} {'ingest/s':>9} {'backlog':>11} {'drain s':>8} {'drain/s':>9} "
        f"{'×ingest':>7} {'RSS steady/outage/drain MiB':>28} {'CPU%':>6} {'µs/smp':>6} "
        f"{'idle%':>6} {'rcv%':>5} {'shards':>6} {'rx drain s':>10} {'rx drain/s':>11} "
        f"{'rx B/smp':>8}"
    )
    print(header)
    for r in results:
        rss = f"{r.rss_steady / mib:.0f}/{r.rss_outage / mib:.0f}/{r.rss_drain / mib:.0f}"
        drain = f"{r.drain_seconds:.1f}" + ("" if r.drained else "+")
        shards = "-" if r.shards_max is None else f"{r.shards_max:.0f}"
        print(
            f"{r.forwarder:<18} {r.ingest_per_second:>9,.0f} {r.backlog_samples:>11,.0f} "
            f"{drain:>8} {r.drain_per_second:>9,.0f} {r.drain_over_ingest:>7.2f} {rss:>28} "
            f"{r.cpu_percent_drain:>6.1f} {r.cpu_us_per_sample_drain:>6.2f} "
            f"{r.machine_idle_percent_drain:>6.1f} {r.receiver_cpu_percent_drain:>5.0f} "
            f"{shards:>6} {r.receiver_drain_seconds:>10.2f} {r.receiver_drain_per_second:>11,.0f} "
            f"{r.receiver_bytes_per_sample:>8.1f}"
        )


def print_ratios(results: Sequence[CatchupResult]) -> None:
    for ref in results:
        for r in results:
            if r is ref or not r.forwarder.startswith("rwconsole"):
                continue
            if ref.forwarder.startswith("rwconsole") and not ref.forwarder.endswith(
                BASELINE_SUFFIX
            ):
                continue
            print(
                f"ratio {r.forwarder}/{ref.forwarder}: drain/s "
                f"{r.drain_per_second / ref.drain_per_second:.2f} (at the receiver "
                f"{r.receiver_drain_per_second / ref.receiver_drain_per_second:.2f}), "
                "peak drain RSS "
                f"{r.rss_drain / ref.rss_drain:.2f}, CPU per sample while draining "
                f"{r.cpu_us_per_sample_drain / ref.cpu_us_per_sample_drain:.2f}; "
                f"{r.forwarder} drain RSS / steady "
                f"{r.rss_drain / r.rss_steady:.2f}"
            )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--load", type=Load.parse, default=Load(50, 2000, 1.0))
    parser.add_argument("--outage", type=float, default=121.0, help="seconds the receiver is down")
    parser.add_argument("--forwarders", default="rwconsole,agent,vmagent")
    parser.add_argument("--baseline", type=Path, help="checkout run by NAME@base forwarders")
    parser.add_argument("--warmup", type=float, default=30.0)
    parser.add_argument("--steady", type=float, default=15.0, help="seconds before the outage")
    parser.add_argument("--drain-timeout", type=float, default=300.0)
    parser.add_argument("--poll", type=float, default=0.1, help="seconds between polls")
    parser.add_argument("--loadgen-procs", type=int, default=0)
    parser.add_argument("--profile-dir", type=Path, help="py-spy rwconsole's drain, save here")
    parser.add_argument("--profile-seconds", type=float, default=20.0)
    parser.add_argument("--profile-rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--trace", action="store_true", help="print every poll of the drain")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--pin",
        type=int,
        metavar="CPU",
        help="run each forwarder on this CPU alone, everything else on the others",
    )
    parser.set_defaults(attach=0)  # bench_forwarder's console links: none here
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.forwarders.split(",") if n.strip()]
    unknown = [
        n
        for n in names
        if n not in VMAGENT_ROWS and n.removesuffix(BASELINE_SUFFIX) not in FORWARDERS
    ]
    if unknown or not names:
        choices = ", ".join([*VMAGENT_ROWS, *FORWARDERS])
        parser.error(f"--forwarders: unknown {unknown}; choose from {choices}")
    if any(n.endswith(BASELINE_SUFFIX) for n in names) and args.baseline is None:
        parser.error(f"forwarders named NAME{BASELINE_SUFFIX} need --baseline DIR")
    if args.outage <= 0 or args.steady < 2 or args.warmup < 0:
        parser.error("--outage must be > 0, --steady >= 2 and --warmup >= 0")
    if not args.poll > 0:
        parser.error(f"--poll {args.poll:g}: must be more than 0 seconds")
    if args.pin is not None:
        cpus = os.sched_getaffinity(0)
        if args.pin not in cpus or len(cpus) < 2:
            parser.error(f"--pin {args.pin}: needs one of {sorted(cpus)} and another CPU left")
    args.forwarders = names
    args.receiver = "null"
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bench-catchup-"))
    bench = CatchupBench(args, workdir)
    if args.pin is not None:
        bench.procs.others = os.sched_getaffinity(0) - {args.pin}
        os.sched_setaffinity(0, bench.procs.others)
    print(
        f"{time.strftime('%Y-%m-%d %H:%M')} · {os.cpu_count()} CPUs · python "
        f"{sys.version.split()[0]} · outage {args.outage:g}s (receiver process stopped) · "
        f"null receiver · work dir {workdir}"
    )
    results: list[CatchupResult] = []
    code = run_guarded(bench, lambda: results.extend(bench.run(args.load)))
    if results:
        print()
        print_results(results)
        print_ratios(results)
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
