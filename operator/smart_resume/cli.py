"""The ``smart-resume`` command: ``operator`` (the kopf operator), ``worker`` (a stream's Job) and
``report`` (a run's streams, clients and tasks; also ``kubectl smart-resume report``)."""

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

    report = commands.add_parser("report", help="print a run's streams, clients and tasks")
    report.add_argument("run", help="name of the SmartResumeRun")
    report.add_argument("--namespace", "-n", default=None, help="default: the kubeconfig's")
    report.add_argument("--watch", "-w", action="store_true", help="follow the run until it ends")
    report.add_argument("--output", "-o", choices=("text", "json"), default="text")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "operator":
        return _operator(args)
    if args.command == "report":
        return _report(args)
    from smart_resume.logs import configure_logging
    from smart_resume.worker.main import run_worker

    configure_logging(args.log_format, verbose=args.verbose)
    return run_worker(run_name=args.run, stream=args.stream, namespace=args.namespace)


def _report(args: argparse.Namespace) -> int:
    from smart_resume.kube.connection import api_client, current_namespace
    from smart_resume.reporting import print_report

    return print_report(
        api_client(),
        args.namespace or current_namespace(),
        args.run,
        output=args.output,
        follow=args.watch,
    )


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
