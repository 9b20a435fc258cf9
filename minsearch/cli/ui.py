"""``minsearch ui RUN_DIR``: the MLflow UI of a run, on 127.0.0.1 only."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("ui", help="open the MLflow UI of a run (127.0.0.1)",
                              description="Start `mlflow ui` on the run's tracking store, bound "
                                          "to 127.0.0.1, with job execution disabled.")
    p.add_argument("run_dir")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--dry-run", action="store_true", help="print the command, do not start it")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os
    import signal
    import subprocess

    from minsearch.search.run_dir import RunDir
    from minsearch.tracking import ui_command

    command = ui_command(RunDir(args.run_dir).tracking, args.port)  # its store is enough
    print(" ".join(command))
    if args.dry_run:
        return 0
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    server = subprocess.Popen(command, env=env, start_new_session=True)

    def stop(*_: object) -> None:  # end the server's whole group (uvicorn and its workers)
        try:
            os.killpg(server.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, stop)
    try:
        return server.wait()
    except KeyboardInterrupt:
        stop()
        server.wait()
        return 0
