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
    sub = ap.add_subparsers(dest="cmd")
    s = sub.add_parser("run", help="the whole platform on embedded defaults (the default)")
    s.add_argument("--var", default="var/dev", help="state directory")
    s.add_argument("--sim-latency-ms", type=float, default=0.0)
    s = sub.add_parser("sim", help="run the channel simulators alone")
    s.add_argument("--var", default="var/dev")
    s.add_argument("--base-port", type=int, default=9101)
    s.add_argument("--public-url", default="http://127.0.0.1:8080")
    s.add_argument("--latency-ms", type=float, default=0.0)
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("run", "sim", "-h", "--help"):
        argv = ["run", *argv]   # `python -m devstack [--var D]` is `run`
    args = ap.parse_args(argv)
    return int(runtime.run(run_simulators(args) if args.cmd == "sim" else run_dev(args)) or 0)


if __name__ == "__main__":
    sys.exit(main())
