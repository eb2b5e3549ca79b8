"""The ``smart-resume`` command: ``operator`` (the kopf operator) and ``worker`` (a stream's
Job)."""

from __future__ import annotations

import argparse
import sys

from smart_resume import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smart-resume", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-format",
        choices=("json", "plain"),
        default="json",
        help="structured JSON logs (default) or plain text",
    )
    parser.add_argument("--verbose", action="store_true", help="debug-level logs")
    commands = parser.add_subparsers(dest="command", required=True)

    operator = commands.add_parser("operator", help="run the operator (one replica)")
    scope = operator.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        help="watch this namespace (repeatable; globs allowed); default: all",
    )
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="watch every namespace")
    operator.add_argument(
        "--liveness",
        metavar="URL",
        default=None,
        help="serve a liveness probe, e.g. http://0.0.0.0:8080/healthz",
    )

    worker = commands.add_parser("worker", help="process one stream of a run (the Job's command)")
    worker.add_argument("--run", required=True, help="name of the SmartResumeRun")
    worker.add_argument("--stream", required=True, type=int, help="stream number")
    worker.add_argument(
        "--namespace", default=None, help="namespace of the run (default: $SMART_RESUME_NAMESPACE)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "operator":
        return _operator(args)
    from smart_resume.logs import configure_logging
    from smart_resume.worker.main import run_worker

    configure_logging(args.log_format, verbose=args.verbose)
    return run_worker(run_name=args.run, stream=args.stream, namespace=args.namespace)


def _operator(args: argparse.Namespace) -> int:
    from smart_resume.config import Settings
    from smart_resume.core.errors import ConfigurationError
    from smart_resume.exit_codes import EXIT_CONFIGURATION

    try:
        Settings.from_env()  # refuse to start on a bad or misspelt variable, naming it
    except ConfigurationError as exc:
        print(f"smart-resume operator: {exc}", file=sys.stderr)
        return EXIT_CONFIGURATION

    import kopf

    import smart_resume.controller.handlers  # noqa: F401 - registers the handlers with kopf

    kopf.configure(
        verbose=args.verbose,
        log_format=kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.FULL,
    )
    kopf.run(
        standalone=True,
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        liveness_endpoint=args.liveness,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
