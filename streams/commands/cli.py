"""The ``flowgauge`` command: watch a support backlog from ticket events. ``flowgauge COMMAND
--help`` tells more of each."""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from streams.commands.files import RefusedOutput, check_outputs, replacing
from streams.config import FlowgaugeConfig, SettingsError


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        command: int = args.run(args)
    except (SettingsError, RefusedOutput) as exc:  # said in one line, before any work
        print(f"flowgauge {args.command}: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader stopped (``| head``): the rest is not wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:  # every output is left as it was (``replacing``)
        return 130
    return command


def fewer_collections() -> None:
    """Run the cyclic garbage collector far less often.

    The state is millions of small, long-lived objects without cycles, and every full
    collection walks them all: ``report`` spent about a sixth of its time there (100,000
    events of the busy team: 7,301 and 7,497 events/s as is, 8,545 and 8,721 with this).
    Cycles from asyncio and aiokafka are still collected, on a larger allocation count.
    """
    gc.set_threshold(500_000, 100, 100)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowgauge", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND", dest="command")

    report = commands.add_parser("report", help="run the core over a JSONL file, write CSV")
    report.add_argument("events", type=Path)
    report.add_argument("--step", help="boundary step (default FLOWGAUGE_STEP or 5m)")
    report.add_argument("--output", type=Path, help="CSV file (default: standard output)")
    report.add_argument("--alerts", type=Path, help="also write alert transitions as CSV here")
    report.add_argument("--sla-events", type=Path, help="also write ticket.sla records as CSV here")
    report.add_argument("--indicators", type=Path, help="also write leading indicators as CSV here")
    report.add_argument(
        "--forecast", type=Path, help="also write the drain forecast (whole hours) as CSV here"
    )
    report.add_argument(
        "--pull", type=Path, help="also write each queue's pull list (whole hours) as CSV here"
    )
    report.set_defaults(run=_report)

    report.add_argument(
        "--html", type=Path, help="also write the web view of every scope as one HTML file here"
    )

    web = commands.add_parser("web", help="serve the live web view of the derived topics")
    _broker_option(web)
    web.add_argument("--host", help="address to listen on (env FLOWGAUGE_UI_HOST, 127.0.0.1)")
    web.add_argument("--port", type=int, help="port (env FLOWGAUGE_UI_PORT, 8080; 0: any free)")
    web.set_defaults(run=_web)

    evaluate = commands.add_parser(
        "evaluate",
        help="score the alert rules of a JSONL file against ground truth",
        description="Run the alert rules over EVENTS as report --alerts does, and score each "
        "rule and scope against TRUTH (flowgauge simulate --truth): true imbalances "
        "detected and the delays, false alarms, flaps, notifications per week, firings in "
        "the cold start.",
    )
    evaluate.add_argument("events", type=Path)
    evaluate.add_argument("truth", type=Path)
    evaluate.add_argument("--config", type=Path, help="TOML settings file, as FLOWGAUGE_CONFIG")
    evaluate.add_argument("--step", help="boundary step (default FLOWGAUGE_STEP or 5m)")
    evaluate.add_argument("--json", action="store_true", help="print the scores as JSON")
    evaluate.set_defaults(run=_evaluate)

    schemas = commands.add_parser("schemas", help="write schemas/ from the record models")
    schemas.add_argument("--dir", type=Path, default=Path("schemas"))
    schemas.set_defaults(run=_schemas)

    dashboards = commands.add_parser("dashboards", help="write the Grafana dashboards as JSON")
    dashboards.add_argument("--output", type=Path, default=Path("grafana/dashboards"))
    dashboards.set_defaults(run=_dashboards)

    docs = commands.add_parser("docs", help="rewrite the metrics and topics references")
    docs.add_argument("--page", type=Path, default=Path("docs/reference.md"))
    docs.set_defaults(run=_docs)

    broker = commands.add_parser("broker", help="run the embedded Tansu broker")
    broker.add_argument("--port", type=int, default=0, help="loopback port (default: a free one)")
    broker.set_defaults(run=_broker)

    worker = commands.add_parser("worker", help="run a stream worker")
    _broker_option(worker)
    worker.add_argument("--web-port", type=int, help="metrics port (env FLOWGAUGE_WEB_PORT)")
    worker.set_defaults(run=_worker)

    from streams.commands.scenarios import SCENARIOS

    simulate = commands.add_parser(
        "simulate",
        help="produce a realistic support stream",
        description="Produce a realistic support stream. With --scenario, one of the named "
        "scenarios, and its ground truth as JSON: to --truth, by default OUTPUT.truth.json "
        "next to --output; without --output (to the broker) --scenario needs --truth.",
    )
    _broker_option(simulate)
    simulate.add_argument("--speed", type=_positive, default=3600.0, help="simulated s per real s")
    simulate.add_argument(
        "--days", type=_positive, help="simulated days to produce (default 28, or the scenario's)"
    )
    simulate.add_argument("--seed", type=int, default=7)
    simulate.add_argument("--flat-out", action="store_true", help="ignore --speed, produce at once")
    simulate.add_argument("--output", type=Path, help="write JSONL here instead of the broker")
    simulate.add_argument(
        "--scenario", choices=list(SCENARIOS), help="a named scenario with ground truth"
    )
    simulate.add_argument(
        "--truth",
        type=Path,
        metavar="PATH",
        help="write the scenario's truth here (default OUTPUT.truth.json; needed without --output)",
    )
    simulate.add_argument(
        "--imbalance",
        type=float,
        help="truth: arrivals at least 1 + this times capacity (default 0.10)",
    )
    simulate.set_defaults(run=_simulate)

    from streams.config import KINDS

    gateway = commands.add_parser(
        "gateway",
        help="take helpdesk webhooks, publish ticket events",
        description="Serve POST /webhooks/NAME for each [[gateway.sources]] of the settings "
        "file (FLOWGAUGE_CONFIG), /healthz and /metrics (docs/connectors.md).",
    )
    _broker_option(gateway)
    gateway.add_argument("--host", help="address to listen on (default gateway.host, 127.0.0.1)")
    gateway.add_argument("--port", type=int, help="port (default gateway.port, 8090)")
    gateway.set_defaults(run=_gateway)

    convert = commands.add_parser(
        "convert",
        help="helpdesk payloads and history exports to events (JSONL)",
        description="Map saved webhook bodies and history exports of KIND to our events, "
        "sorted by occurred_at. Name the instance as the gateway does: --source NAME of the "
        "settings file, or --account ACCOUNT (ids are namespaced KIND:ACCOUNT:ID). Exit 0: "
        "all converted; 1: some items skipped (listed on standard error); 2: unreadable.",
    )
    convert.add_argument("kind", choices=list(KINDS))
    convert.add_argument("files", type=Path, nargs="+")
    convert.add_argument("--output", type=Path, help="JSONL file (default: standard output)")
    named = convert.add_mutually_exclusive_group(required=True)
    named.add_argument("--source", help="a [[gateway.sources]] name of FLOWGAUGE_CONFIG")
    named.add_argument("--account", help="the account that namespaces the ids")
    convert.add_argument(
        "--event", help="the event of bodies saved without their header (GitHub's X-GitHub-Event)"
    )
    convert.add_argument(
        "--ticket",
        help="the vendor's ticket of a per-ticket history whose items do not name it "
        "(GitHub: OWNER/REPO#NUMBER for an issue's events or timeline; Jira: the issue id)",
    )
    convert.set_defaults(run=_convert)

    replay = commands.add_parser("replay", help="publish a JSONL file to the input topic")
    _broker_option(replay)
    replay.add_argument("events", type=Path)
    replay.set_defaults(run=_replay)

    demo = commands.add_parser("demo", help="broker, worker and simulator with a live view")
    demo.add_argument("--duration", type=float, help="stop by itself after this many seconds")
    demo.add_argument("--web-port", type=int)
    demo.add_argument("--speed", type=float, default=3600.0)
    demo.set_defaults(run=_demo)
    return parser


def _broker_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--broker", help="kafka://HOST:PORT (env FLOWGAUGE_BROKER)")


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is no number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not above 0")
    return value


def _config(**overrides: object) -> FlowgaugeConfig:
    return FlowgaugeConfig.load(**{k: v for k, v in overrides.items() if v is not None})


def _report(args: argparse.Namespace) -> int:
    from streams.commands.report import (
        ALERTS,
        FORECAST,
        INDICATORS,
        PULL,
        SLA_EVENTS,
        LocalPipeline,
        in_order,
        snapshot_rows,
        write_csv,
    )

    config = _config(step=args.step)
    fewer_collections()
    settings = config.core()
    # Its wall clock is "now": a file of history is never ahead of it (docs/semantics.md).
    pipeline = LocalPipeline(settings, config.grace_us, clock=config.wall_clock(time.time()))
    with ExitStack() as files:
        try:
            source = files.enter_context(args.events.open("rb"))
        except OSError as exc:
            print(f"flowgauge report: cannot read {args.events}: {exc.strerror}", file=sys.stderr)
            return 2
        named = (args.output, args.alerts, args.sla_events, args.indicators, args.forecast)
        check_outputs((*named, args.pull, args.html), inputs=[args.events])
        rows = files.enter_context(replacing(args.output)) if args.output else sys.stdout
        outputs = [(rows, snapshot_rows(settings))]
        extras = (
            (args.alerts, ALERTS),
            (args.sla_events, SLA_EVENTS),
            (args.indicators, INDICATORS),
            (args.forecast, FORECAST),
            (args.pull, PULL),
        )
        outputs += [
            (files.enter_context(replacing(path)), output) for path, output in extras if path
        ]
        # Read as it goes: the file is never held whole, nor are the rows.
        lines = (line.rstrip(b"\r\n") for line in source)
        emitted = in_order(lines, pipeline)
        if args.html:  # the web view's modules (aiohttp among them) only when asked for
            from streams.commands.web import recorded
            from streams.outputs.records import publisher
            from streams.web.service import history_of

            history = history_of(config)
            emitted = recorded(emitted, history, publisher(config, settings))
        write_csv(outputs, emitted)
    if args.html:
        from streams.commands.web import write_html

        size = write_html(args.html, history, config)
        print(f"wrote {args.html} ({size / 1e6:.1f} MB)", file=sys.stderr)
    counters = pipeline.counters
    for number, reason in counters.invalid:
        print(f"{args.events}:{number}: skipped: {reason}", file=sys.stderr)
    for dimension, folded in counters.folded.items():
        print(
            f"{dimension}: more than {settings.scope_cap} values; {folded} transitions counted"
            f" in {dimension}:other (FLOWGAUGE_SCOPE_CAP)",
            file=sys.stderr,
        )
    print(
        f"{counters.processed} events, {len(counters.invalid)} invalid, "
        f"{counters.duplicates} duplicates, {counters.late} late",
        file=sys.stderr,
    )
    if counters.invalid and not counters.processed:
        print(f"flowgauge report: no line of {args.events} is an event", file=sys.stderr)
        return 1
    return 0


def _web(args: argparse.Namespace) -> int:
    from streams.commands.web import run_web

    overrides = {"broker": args.broker, "ui_host": args.host, "ui_port": args.port}
    return run_web(_config(**overrides))


def _evaluate(args: argparse.Namespace) -> int:
    from streams.commands.evaluate import configured, evaluate_file

    if args.config is not None and not args.config.is_file():
        print(f"flowgauge evaluate: no settings file {args.config}", file=sys.stderr)
        return 2
    with configured(args.config):  # read as FLOWGAUGE_CONFIG is, only while read
        config = _config(step=args.step)
    fewer_collections()
    return evaluate_file(config, args.events, args.truth, args.json)


def _schemas(args: argparse.Namespace) -> int:
    from streams.outputs.records import write_schemas

    for path in write_schemas(args.dir):
        print(path)
    return 0


def _dashboards(args: argparse.Namespace) -> int:
    from streams.outputs.dashboards import write

    for path in write(args.output):
        print(path)
    return 0


def _docs(args: argparse.Namespace) -> int:
    from streams.commands.docs import update

    changed = update(args.page)
    print(f"{args.page}: {'rewritten' if changed else 'up to date'}")
    return 0


def _broker(args: argparse.Namespace) -> int:
    from streams.commands.broker import run_foreground

    return run_foreground(args.port)


def _worker(args: argparse.Namespace) -> int:
    from streams.shell.worker import run_worker

    fewer_collections()
    return run_worker(_config(broker=args.broker, web_port=args.web_port))


def _simulate(args: argparse.Namespace) -> int:
    from streams.commands.scenarios import DEFAULT_IMBALANCE, named, truth, write_truth
    from streams.commands.simulate import Scenario, run_simulator

    speed = None if args.flat_out else args.speed
    if args.scenario is None:
        if args.truth is not None or args.imbalance is not None:
            print("flowgauge simulate: --truth and --imbalance need --scenario", file=sys.stderr)
            return 2
        scenario = Scenario(days=28.0 if args.days is None else args.days, seed=args.seed)
        check_outputs([args.output])
        return run_simulator(_config(broker=args.broker), scenario, speed, args.output)
    path: Path | None = args.truth
    if path is None and args.output is not None:
        path = args.output.with_name(f"{args.output.name}.truth.json")
    if path is None:
        print("flowgauge simulate: --scenario without --output needs --truth PATH", file=sys.stderr)
        return 2
    check_outputs([args.output, path])
    imbalance = DEFAULT_IMBALANCE if args.imbalance is None else args.imbalance
    if imbalance < 0:
        print("flowgauge simulate: --imbalance must not be negative", file=sys.stderr)
        return 2
    scenario = named(args.scenario, seed=args.seed, days=args.days)
    found = truth(args.scenario, scenario, imbalance)
    write_truth(path, found)
    intervals = sum(len(spans) for spans in found.scopes.values())
    print(
        f"wrote the truth of {args.scenario} ({intervals} intervals in {len(found.scopes)}"
        f" scopes) to {path}",
        file=sys.stderr,
    )
    return run_simulator(_config(broker=args.broker), scenario, speed, args.output)


def _gateway(args: argparse.Namespace) -> int:
    from streams.shell.gateway import run_gateway

    return run_gateway(_config(broker=args.broker), args.host, args.port)


def _convert(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from streams.commands.convert import run_convert
    from streams.config import GatewaySource

    config = _config()
    if args.source is not None:
        found = [source for source in config.gateway.sources if source.name == args.source]
        if not found or found[0].kind != args.kind:
            print(f"flowgauge convert: no {args.kind} source {args.source!r}", file=sys.stderr)
            return 2
        source = found[0]
    else:
        try:
            source = GatewaySource(name="convert", kind=args.kind, account=args.account)
        except ValidationError:  # generic: its mapping is configuration
            print(
                f"flowgauge convert: {args.kind} maps as its settings say: name its"
                " [[gateway.sources]] with --source",
                file=sys.stderr,
            )
            return 2
    check_outputs([args.output], inputs=args.files)
    return run_convert(source.connector(), args.files, args.event, args.ticket, args.output)


def _replay(args: argparse.Namespace) -> int:
    from streams.commands.replay import replay_file

    return replay_file(_config(broker=args.broker), args.events)


def _demo(args: argparse.Namespace) -> int:
    from streams.commands.demo import run_demo

    return run_demo(_config(web_port=args.web_port), args.duration, args.speed)


if __name__ == "__main__":
    sys.exit(main())
