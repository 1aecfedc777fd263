"""The ``okr-assets`` command line: generate demo data, run the pipeline headless."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path


def _generate(args: argparse.Namespace) -> int:
    from okr_assets.lib.generator import GeneratorConfig, generate, write_dataset

    as_of = dt.datetime.fromisoformat(args.as_of).astimezone(dt.UTC) if args.as_of else None
    config = GeneratorConfig(seed=args.seed, teams=args.teams, cycles=args.cycles, as_of=as_of,
                             bad_share=args.bad_share, files_per_cycle=args.files_per_cycle)
    data = generate(config)
    out = Path(args.out)
    paths = write_dataset(data, out, seed=args.seed)
    rows = sum(len(f) for f in data.files.values())
    print(f"wrote {len(paths)} CSV file(s), {rows} rows, to {out} "
          f"(ground truth: okr_ground_truth_s{args.seed}.json, never read by the pipeline)")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from okr_assets.demo import run_demo

    return run_demo(seed=args.seed, teams=args.teams, cycles=args.cycles, bad_share=args.bad_share)


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
    gen.add_argument("--as-of", default=None, help="RFC 3339 time of the export (default: now)")
    gen.add_argument("--files-per-cycle", type=int, default=3)
    gen.set_defaults(func=_generate)

    demo = sub.add_parser("demo", help="generate into the landing folder, materialize everything, "
                                       "print a summary")
    _add_generator_options(demo, bad_share=0.03)
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
