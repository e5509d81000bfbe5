"""The `streamproc` command."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from streamproc import __version__
from streamproc.settings import Settings, SettingsError


def _cmd_bench_kernel(args: argparse.Namespace) -> int:
    from streamproc.bench.kernel import run

    run(
        accounts=args.accounts,
        holdings=args.holdings,
        instruments=args.instruments,
        changed=args.changed,
        loop_sample=args.loop_sample,
        out=args.out,
    )
    return 0


def _cmd_bench_worker(args: argparse.Namespace) -> int:
    from streamproc.bench.worker import run

    return run(args)


def _cmd_bench_e2e(args: argparse.Namespace) -> int:
    from streamproc.bench import e2e

    return e2e.run(args)


def _cmd_demo(args: argparse.Namespace) -> int:
    from streamproc.demo import run

    return run(args)


def _cmd_simulate(args: argparse.Namespace) -> int:
    from streamproc.sim.simulate import main

    return main(args)


def _cmd_fill(args: argparse.Namespace) -> int:
    from streamproc.sim.fill import main

    return main(args)


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise SystemExit(f"streamproc: {exc}") from None


def _cmd_worker(args: argparse.Namespace) -> int:
    from streamproc.app.worker import run

    return run(_settings())


def _cmd_inspect(args: argparse.Namespace) -> int:
    from streamproc.inspect import inspect

    return inspect(_settings(), args.what, getattr(args, "id", ""))


def _quiet_kafka_client() -> None:
    """An operator command's output is its own: aiokafka's connection retries are not shown."""
    import logging

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


def _cmd_inspect_topics(args: argparse.Namespace) -> int:
    from streamproc.inspect import topics_view

    _quiet_kafka_client()
    return topics_view(_settings())


def _cmd_inspect_deadletters(args: argparse.Namespace) -> int:
    from streamproc.inspect import deadletters_view

    _quiet_kafka_client()
    return deadletters_view(_settings(), args.last)


def _cmd_backtest(args: argparse.Namespace) -> int:
    from streamproc.backtest.command import main

    return main(args)


def _cmd_storm_release(args: argparse.Namespace) -> int:
    from streamproc.inspect import storm_release

    return storm_release(_settings(), args.mute_s)


def _cmd_incident_report(args: argparse.Namespace) -> int:
    from streamproc.incidents.command import incident_report

    _quiet_kafka_client()
    return incident_report(_settings(), args.since, args.until, args.alert, args.format, args.grace_s)


def _cmd_inspect_accounts(args: argparse.Namespace) -> int:
    from streamproc.inspect_accounts import accounts_view

    return accounts_view(_settings(), args.state, args.limit)


def _cmd_namespace(args: argparse.Namespace) -> int:
    from streamproc.namespaces import list_view, remove

    if args.namespace_action == "list":
        return list_view(_settings())
    return remove(_settings(), args.name, args.force)


def _cmd_reconcile(args: argparse.Namespace) -> int:
    from streamproc.inspect import reconcile

    return reconcile(_settings(), args.account)


def _cmd_orders(args: argparse.Namespace) -> int:
    from streamproc.inspect import order_action

    return order_action(_settings(), args.orders, args.account)


def _trading_arguments(parser: argparse.ArgumentParser) -> None:
    """The scope of halt, reduce and resume (exactly one) and the reason for the audit trail."""
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument("--instrument", metavar="ID")
    scope.add_argument("--tier", metavar="NAME")
    scope.add_argument("--account", metavar="ID")
    scope.add_argument("--all", action="store_true", help="everything (the global state)")
    parser.add_argument("--reason", default="", help="why, for the audit trail (alerts topic)")


def _cmd_trading(args: argparse.Namespace) -> int:
    from streamproc.control import main
    from streamproc.core.trading import TradingState

    state = {"halt": TradingState.HALTED, "reduce": TradingState.REDUCING, "resume": TradingState.ACTIVE}
    return main(args, _settings(), state[args.command])


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand (the runbook tests read it too)."""
    from streamproc.demo import add_arguments as demo_options
    from streamproc.sim.fill import add_arguments as fill_options
    from streamproc.sim.simulate import add_arguments as simulate_options

    parser = argparse.ArgumentParser(prog="streamproc", description=__doc__)
    parser.add_argument("--version", action="version", version=f"streamproc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo", help="the README's run command: two workers, the simulator and the fill simulator, live view"
    )
    demo_options(demo)
    demo.set_defaults(func=_cmd_demo)

    sim = sub.add_parser(
        "simulate", help="a simulated market and accounts on model portfolios, quotes at a rate, faults"
    )
    simulate_options(sim)
    sim.set_defaults(func=_cmd_simulate)

    fills = sub.add_parser(
        "fill", help="a stand-in order management system: fills orders, publishes positions"
    )
    fill_options(fills)
    fills.set_defaults(func=_cmd_fill)

    worker = sub.add_parser("worker", help="run one worker (several share the work through Kafka's group)")
    worker.set_defaults(func=_cmd_worker)

    insp = sub.add_parser("inspect", help="live state from Redis: an instrument, an account, or the workers")
    insp_sub = insp.add_subparsers(dest="what", required=True)
    for what, text in (
        ("instrument", "last price, age, seq, flags, suppressed accounts and alerts of an instrument"),
        ("account", "holdings, targets, drift status, quarantine, last order and alerts of an account"),
    ):
        p = insp_sub.add_parser(what, help=text)
        p.add_argument("id")
        p.set_defaults(func=_cmd_inspect)
    insp_sub.add_parser(
        "status", help="workers, suppressed accounts, storm hold, alerts firing"
    ).set_defaults(func=_cmd_inspect)

    accts = insp_sub.add_parser("accounts", help="the accounts in a state, with since when and why")
    accts.add_argument(
        "--state",
        required=True,
        choices=(
            "held",
            "suppressed",
            "quarantined",
            "untradable",
            "throttled",
            "rejected",
            "unanswered",
            "ordered",
            "closed",
            "scheduled",
            "ok",
        ),
    )
    accts.add_argument("--limit", type=int, default=50, help="how many to list (50); all are counted")
    accts.set_defaults(func=_cmd_inspect_accounts)

    insp_sub.add_parser(
        "topics", help="records per topic and when the newest arrived (is a feed silent?)"
    ).set_defaults(func=_cmd_inspect_topics)
    dls = insp_sub.add_parser("deadletters", help="the newest dead letters with their reasons")
    dls.add_argument("--last", type=int, default=20, help="how many of the newest to show (20)")
    dls.set_defaults(func=_cmd_inspect_deadletters)

    storm = sub.add_parser("storm", help="the breach-storm order hold")
    storm_sub = storm.add_subparsers(dest="storm", required=True)
    release = storm_sub.add_parser("release", help="publish the held orders and mute detection for a while")
    release.add_argument(
        "--mute-s", type=float, default=300.0, help="seconds without storm detection after release (300)"
    )
    release.set_defaults(func=_cmd_storm_release)

    rec = sub.add_parser("reconcile", help="lift an account's position-gap quarantine (holdings verified)")
    rec.add_argument("account")
    rec.set_defaults(func=_cmd_reconcile)

    orders = sub.add_parser("orders", help="decide on an account whose orders went unanswered")
    orders_sub = orders.add_subparsers(dest="orders", required=True)
    for action, what in (
        ("retry", "issue another order (the unanswered count starts again)"),
        ("release", "forget its open orders (settled with order management) and start over"),
    ):
        p = orders_sub.add_parser(action, help=what)
        p.add_argument("account")
        p.set_defaults(func=_cmd_orders)

    for command, what in (
        ("halt", "draft no legs of an instrument, tier, account or everything"),
        ("reduce", "draft only legs that reduce a holding (sells) of an instrument, tier, account or all"),
        ("resume", "end a halt or reduce: trade as the bands say"),
    ):
        p = sub.add_parser(command, help=what)
        _trading_arguments(p)
        p.set_defaults(func=_cmd_trading)

    nsp = sub.add_parser("namespace", help="the namespaces on the stack; remove one")
    nsp_sub = nsp.add_subparsers(dest="namespace_action", required=True)
    nsp_sub.add_parser("list", help="namespaces with topics, and their live workers").set_defaults(
        func=_cmd_namespace
    )
    rm = nsp_sub.add_parser("rm", help="delete a namespace's topics and Redis keys")
    rm.add_argument("name")
    rm.add_argument("--force", action="store_true", help="even while workers of it are alive")
    rm.set_defaults(func=_cmd_namespace)

    inc = sub.add_parser("incident", help="reports of alert episodes, for the postmortem")
    inc_sub = inc.add_subparsers(dest="incident_action", required=True)
    rep = inc_sub.add_parser(
        "report",
        help="per episode: timeline, accounts kept from trading, orders withheld and published after "
        "recovery, dead letters, related alerts, the runbook",
    )
    rep.add_argument("--since", default="1d", help="30m, 2h, 1d (ago), epoch ms or ISO 8601 (default 1d)")
    rep.add_argument("--until", default=None, help="as --since (default: now)")
    rep.add_argument("--alert", default=None, metavar="ID", help="only this alert_id's episode")
    rep.add_argument("--format", choices=("markdown", "json"), default="markdown")
    rep.add_argument(
        "--grace-s",
        type=float,
        default=300.0,
        help="orders of the affected accounts this soon after recovery count as withheld (default 300)",
    )
    rep.set_defaults(func=_cmd_incident_report)

    bt = sub.add_parser("backtest", help="band vs calendar vs buy-and-hold through the live engine")
    bt.add_argument(
        "--scenario", default="all", help="calm, volatile, trending, crash-and-recover, sideways, all"
    )
    bt.add_argument("--csv", type=Path, help="a price history instead: date,instrument,price (or bid,ask)")
    bt.add_argument(
        "--portfolio", default="60-40", choices=("60-40", "micro-sleeve", "60-40-classes", "micro-stop")
    )
    bt.add_argument(
        "--targets", type=Path, help="a model as a targets document (JSON: weights, groups, sleeves)"
    )
    bt.add_argument("--years", type=int, default=10)
    bt.add_argument("--seeds", type=int, default=20, help="histories per scenario (seeds 1..N)")
    bt.add_argument("--fee", type=float, default=1.0, help="per leg")
    bt.add_argument("--min-notional", type=float, default=50.0, help="smaller legs are not traded")
    bt.add_argument("--capital", type=float, default=100_000.0)
    bt.add_argument("--out", type=Path, default=Path("bench-results/backtest"))
    bt.set_defaults(func=_cmd_backtest)

    bench = sub.add_parser("bench", help="benchmarks (figures and ratios measured side by side)")
    bench_sub = bench.add_subparsers(dest="bench", required=True)
    kernel = bench_sub.add_parser("kernel", help="vectorized drift kernel vs a per-account Python loop")
    kernel.add_argument("--accounts", type=int, default=1_000_000)
    kernel.add_argument("--holdings", type=int, default=10)
    kernel.add_argument("--instruments", type=int, default=5_000)
    kernel.add_argument("--changed", type=int, default=50, help="prices changed per batch")
    kernel.add_argument("--loop-sample", type=int, default=20_000, help="accounts timed in the Python loop")
    kernel.add_argument("--out", type=Path, default=Path("bench-results/kernel.json"))
    kernel.set_defaults(func=_cmd_bench_kernel)
    wbench = bench_sub.add_parser(
        "worker", help="one real worker's quote and position rates vs a bare consumer"
    )
    wbench.add_argument("--accounts", type=int, default=10_000)
    wbench.add_argument("--holdings", type=int, default=10)
    wbench.add_argument("--instruments", type=int, default=2_000)
    wbench.add_argument("--positions", type=int, default=50_000)
    wbench.add_argument("--quotes", type=int, default=200_000)
    wbench.add_argument("--partitions", type=int, default=8)
    wbench.add_argument("--out", type=Path, default=Path("bench-results/worker.json"))
    wbench.set_defaults(func=_cmd_bench_worker)
    e2e = bench_sub.add_parser(
        "e2e", help="the whole path: ingest vs a bare consumer, quote-to-order latency, restart, memory"
    )
    e2e.add_argument("--accounts", type=int, default=100_000)
    e2e.add_argument("--holdings", type=int, default=10)
    e2e.add_argument("--instruments", type=int, default=2_000)
    e2e.add_argument("--quotes", type=int, default=1_000_000, help="quote backlog for (b) and (a)")
    e2e.add_argument("--rate", type=int, default=10_000, help="offered quotes/s for the latency run (c)")
    e2e.add_argument("--latency-s", type=float, default=20.0, help="seconds of the latency run (c)")
    e2e.add_argument("--partitions", type=int, default=8)
    e2e.add_argument("--web-port", type=int, default=6099, help="the measured worker's web port")
    e2e.add_argument("--out", type=Path, default=Path("bench-results/e2e.json"))
    e2e.set_defaults(func=_cmd_bench_e2e)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except BrokenPipeError:
        # the reader of the output went away (`streamproc inspect ... | head`): stop quietly, as
        # shell tools do, instead of a traceback or a misleading connection error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:  # a broker that cannot be reached: one line, not a traceback
        from aiokafka.errors import KafkaError

        if not isinstance(exc, KafkaError | ConnectionError | TimeoutError):
            raise
        servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
        print(
            f"streamproc: Kafka is not reachable at KAFKA_BOOTSTRAP_SERVERS ({servers}): {exc!r}",
            file=sys.stderr,
        )
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
