"""``python -m devstack.openapi [--write]`` (``make openapi``): print the OpenAPI
document paycore serves, or write it to paycore/http/static/openapi.json and
the repo-root copy."""
from __future__ import annotations

import argparse
import sys

from paycore.http.openapi import ROOT_FILE, STATIC_FILE, render


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m devstack.openapi", description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help=f"write {STATIC_FILE.name} and the repo-root copy")
    args = ap.parse_args(argv)
    data = render()
    if not args.write:
        sys.stdout.buffer.write(data)
        return 0
    for path in (STATIC_FILE, ROOT_FILE):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
