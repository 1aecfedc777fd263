"""The ``okr-assets`` command line: generate demo data, run the pipeline headless, show what the
warehouse holds."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path


def _generate(args: argparse.Namespace) -> int:
    from okr_assets.lib.generator import GeneratorConfig, generate, write_dataset

    as_of = dt.datetime.fromisoformat(args.as_of).astimezone(dt.UTC) if args.as_of else default_as_of()
    config = GeneratorConfig(seed=args.seed, teams=args.teams, cycles=args.cycles, as_of=as_of,
                             bad_share=args.bad_share, files_per_cycle=args.files_per_cycle)
    data = generate(config)
    out = Path(args.out)
    paths = write_dataset(data, out, seed=args.seed)
    rows = sum(len(f) for f in data.files.values())
    truth = [f"okr_ground_truth_s{args.seed}.json"]
    if args.reference_probabilities:
        truth.append(_write_reference_probabilities(data, out, args.seed).name)
    print(f"wrote {len(paths)} CSV file(s), {rows} rows, to {out} "
          f"(ground truth, never read by the pipeline: {', '.join(truth)})")
    return 0


def _write_reference_probabilities(data: object, out: Path, seed: int) -> Path:
    """Per key result and as-of week: the oracle and the Bayes-optimal probability of reaching
    the target, next to the CSVs (JSON lines, not *.csv, so the landing sensor ignores it)."""
    from okr_assets.lib.bayes import observed_checkins, reference_probabilities
    from okr_assets.lib.curation import curate_frame
    from okr_assets.lib.features import build_features

    checkins = observed_checkins(data)
    features = build_features(checkins, curate_frame(checkins, data.as_of.date()), data.as_of)
    probabilities = reference_probabilities(data, features, checkins)
    path = out / f"okr_reference_probabilities_s{seed}.jsonl"
    tmp = path.with_name("." + path.name + ".tmp")
    probabilities.to_json(tmp, orient="records", lines=True)
    tmp.replace(path)
    return path


def default_as_of() -> dt.datetime:
    """Now, floored to the hour: generating twice within the hour writes identical files."""
    return dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)


def _demo(args: argparse.Namespace) -> int:
    from okr_assets.demo import run_demo

    return run_demo(seed=args.seed, teams=args.teams, cycles=args.cycles, bad_share=args.bad_share)


def _summary(_args: argparse.Namespace) -> int:
    from okr_assets.resources import open_resources
    from okr_assets.summary import table_summary

    with open_resources("warehouse") as opened:
        summary = table_summary(opened.warehouse)
    print(summary.render())
    return 0 if summary.counts_add_up else 1


def _alerts(args: argparse.Namespace) -> int:
    from okr_assets.resources import open_resources

    with open_resources("warehouse") as opened:
        warehouse = opened.warehouse
        warehouse.setup()  # a warehouse no run has written to yet has no alerts table
        alerts = warehouse.query("SELECT raised_at, kind, severity, summary, webhook_status "
                                 "FROM okr_ops.okr_alerts ORDER BY raised_at DESC, alert_id LIMIT ?", [args.limit])
    print(alerts.to_string(index=False) if len(alerts) else "no alerts")
    return 0


def _produce(args: argparse.Namespace) -> int:
    import time

    from okr_assets.lib.stream import CheckinStream
    from okr_assets.resources import KafkaResource

    kafka = KafkaResource(bootstrap_servers=args.bootstrap, ingest_topic=args.topic)
    kafka.ensure_topics(partitions=3)
    stream = CheckinStream(seed=args.seed, bad_share=args.bad_share)
    interval = 1.0 / args.rate if args.rate > 0 else 0.0
    started = time.monotonic()
    last_report = started
    bad = 0
    with kafka.producer(linger_ms=5) as producer:
        for i in range(args.count):
            key, value, is_bad = stream.next_message()
            bad += is_bad
            producer.send(args.topic, key=key, value=value)
            now = time.monotonic()
            if not args.quiet and (now - last_report >= 2 or i + 1 == args.count):
                rate = (i + 1) / max(now - started, 1e-9)
                print(f"produced {i + 1:,}/{args.count:,} messages ({bad:,} bad) to {args.topic} "
                      f"at {rate:,.1f}/s", flush=True)
                last_report = now
            if interval:
                time.sleep(max(0.0, started + (i + 1) * interval - time.monotonic()))
    print(f"done: {args.count:,} messages ({bad:,} bad) in {time.monotonic() - started:,.1f}s", flush=True)
    return 0


def _dev(args: argparse.Namespace) -> int:
    from okr_assets.devstack import run_dev

    return run_dev(port=args.port, kafka_port=args.kafka_port, trickle_rate=args.trickle_rate)


def _init_home(_args: argparse.Namespace) -> int:
    from okr_assets import settings
    from okr_assets.instance import ensure_dagster_home

    existed = (settings.dagster_home() / "dagster.yaml").exists()
    path = ensure_dagster_home()
    print(f"{path}: {'kept (already there)' if existed else 'written (embedded SQLite configuration)'}")
    return 0


def _add_generator_options(p: argparse.ArgumentParser, bad_share: float) -> None:
    p.add_argument("--seed", type=int, default=42, help="random seed (deterministic output)")
    p.add_argument("--teams", type=int, default=6, help="number of teams")
    p.add_argument("--cycles", type=int, default=6, help="quarters, ending with the current one")
    p.add_argument("--bad-share", type=float, default=bad_share,
                   help="share of realistic bad rows to add (each reject reason)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="okr-assets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="write deterministic synthetic check-in CSVs")
    _add_generator_options(gen, bad_share=0.0)
    gen.add_argument("--out", required=True, help="folder to add the CSV files to")
    gen.add_argument("--as-of", default=None, help="RFC 3339 time of the export (default: now, floored to the hour)")
    gen.add_argument("--files-per-cycle", type=int, default=3)
    gen.add_argument("--reference-probabilities", action=argparse.BooleanOptionalAction, default=True,
                     help="also write the oracle and Bayes-optimal probability per key result and week")
    gen.set_defaults(func=_generate)

    demo = sub.add_parser("demo", help="generate into the landing folder, materialize everything, "
                                       "print a summary")
    _add_generator_options(demo, bad_share=0.03)
    demo.set_defaults(func=_demo)

    summary = sub.add_parser("summary", help="rows per table, rejects by reason and the row accounting of the "
                                             "configured warehouse (non-zero exit when the counts do not add up)")
    summary.set_defaults(func=_summary)

    alerts = sub.add_parser("alerts", help="the latest alerts recorded in the configured warehouse, newest first")
    alerts.add_argument("--limit", type=int, default=20, help="how many alerts to show")
    alerts.set_defaults(func=_alerts)

    produce = sub.add_parser("produce", help="stream generated check-ins to Kafka at a steady rate")
    produce.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap servers")
    produce.add_argument("--topic", default="okr_raw_ingest")
    produce.add_argument("--rate", type=float, default=10.0, help="messages per second (0 = as fast as possible)")
    produce.add_argument("--count", type=int, default=100)
    produce.add_argument("--bad-share", type=float, default=0.0, help="share of bad messages")
    produce.add_argument("--seed", type=int, default=42)
    produce.add_argument("--quiet", action="store_true", help="only print the final line")
    produce.set_defaults(func=_produce)

    dev = sub.add_parser("dev", help="what `make run` starts: broker, trickle producer, dagster dev")
    dev.add_argument("--port", type=int, default=int(os.environ.get("DAGSTER_PORT") or 3000))
    dev.add_argument("--kafka-port", type=int, default=9092)
    dev.add_argument("--trickle-rate", type=float, default=0.2, help="check-ins per second (0 = none)")
    dev.set_defaults(func=_dev)

    init = sub.add_parser("init-home", help="write the embedded Dagster instance config into $DAGSTER_HOME "
                                            "(default $OKR_HOME/dagster) unless it has a dagster.yaml")
    init.set_defaults(func=_init_home)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
