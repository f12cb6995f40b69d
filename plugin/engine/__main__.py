"""The engine's command line.

    python -m <plugin>.plugin.engine worker             # one job line on stdin
    python -m <plugin>.plugin.engine worker --serve --idle 600   # job after job (what QGIS uses)
    python -m <plugin>.plugin.engine run OP KEY=VALUE ...
    python -m <plugin>.plugin.engine run OP --json params.json
    python -m <plugin>.plugin.engine list
    python -m <plugin>.plugin.engine check              # can this Python run the engine?
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid


def _parse_value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="patchflow-engine", description="PatchFlow engine (no QGIS needed)")
    commands = parser.add_subparsers(dest="command", required=True)
    worker = commands.add_parser("worker", help="run one job read from stdin, answering in JSON lines")
    worker.add_argument("--serve", action="store_true", help="then wait for the next job (a warm worker)")
    worker.add_argument("--idle", type=float, default=0.0, help="with --serve: end after this many seconds "
                        "without a job (0: never; stdin closing always ends it)")
    commands.add_parser("list", help="list the operations")
    commands.add_parser("check", help="print the versions of the engine's dependencies")
    run = commands.add_parser("run", help="run one operation")
    run.add_argument("operation")
    run.add_argument("parameters", nargs="*", help="KEY=VALUE (VALUE as JSON when it parses)")
    run.add_argument("--json", help="a JSON file of parameters")
    args = parser.parse_args(argv)

    if args.command == "worker":
        from .worker import main as worker_main

        return worker_main(args.serve, args.idle)
    if args.command == "check":
        return _check()
    from .operations import OPERATIONS

    if args.command == "list":
        for name, function in OPERATIONS.items():
            summary = (function.__doc__ or "").strip().partition("\n")[0]
            print(f"{name}: {summary}")
        return 0
    return _run(args)


def _check() -> int:
    import numpy
    from osgeo import gdal

    from .. import protocol

    print(protocol.strict_dumps({"python": sys.version.split()[0], "numpy": numpy.__version__,
                                 "gdal": gdal.__version__}))
    return 0


def _run(args) -> int:
    from .. import protocol
    from .errors import Cancelled, PatchFlowError
    from .reporting import ConsoleReporter
    from .worker import run_job

    parameters = {}
    if args.json:
        with open(args.json, encoding="utf-8") as handle:
            parameters.update(json.load(handle))
    given: dict = {}  # KEY=VALUE items override the file's values; a repeated KEY makes a list
    for item in args.parameters:
        key, _, value = item.partition("=")
        previous = given.get(key)
        value = _parse_value(value)
        if previous is not None:
            value = (previous if isinstance(previous, list) else [previous]) + [value]
        given[key] = value
    parameters.update(given)
    job = protocol.Job(args.operation, parameters, uuid.uuid4().hex[:12])
    try:
        outputs = run_job(job, ConsoleReporter())
    except PatchFlowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (Cancelled, KeyboardInterrupt):
        print("cancelled", file=sys.stderr)
        return 3
    print(protocol.strict_dumps(outputs, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
