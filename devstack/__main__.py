"""``python -m devstack`` (``make run``): the whole platform on embedded defaults;
``python -m devstack sim``: the channel simulators alone.

Development tooling: it lives beside paycore in a source checkout and is in
neither the production wheel nor the production image.
"""
from __future__ import annotations

import argparse
import sys

from devstack.run import run_dev, run_simulators
from paycore import runtime


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m devstack", description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=None, help="TOML config merged over the dev defaults")
    sub = ap.add_subparsers(dest="cmd")
    s = sub.add_parser("run", help="the whole platform on embedded defaults (the default)")
    s.add_argument("--var", default="var/dev", help="state directory")
    s.add_argument("--sim-latency-ms", type=float, default=0.0)
    s = sub.add_parser("sim", help="run the channel simulators alone")
    s.add_argument("--var", default="var/dev")
    s.add_argument("--base-port", type=int, default=9101)
    s.add_argument("--public-url", default="http://127.0.0.1:8080")
    s.add_argument("--latency-ms", type=float, default=0.0)
    args = ap.parse_args(argv)
    if args.cmd is None:
        args = ap.parse_args(["run", *(argv if argv is not None else sys.argv[1:])])
    return int(runtime.run(run_simulators(args) if args.cmd == "sim" else run_dev(args)) or 0)


if __name__ == "__main__":
    sys.exit(main())
