"""The ``rivetgreen`` command. ``rivetgreen serve MODULE:ATTRIBUTE`` serves a registry embedded: its actors run in
this one process, clients reach them over HTTP on ``--host``/``--port``. ``python -m rivetgreen`` is the same
command. A problem with the command line itself is one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import errno
import importlib
import inspect
import logging
import os
import socket
import sys
from collections.abc import Sequence
from typing import Any

from rivetgreen.registry import Registry
from rivetgreen.server import serve

EXIT_USAGE = 2  # argparse's status for a command line that cannot run
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 6420
DATA_DIR_VARIABLE = "RIVETGREEN_DATA_DIR"  # what setup() reads when it is not given data_dir=
# Errors of binding the listening socket that the user can fix (another process holds the port, a privileged port,
# an address this machine does not have).
LISTEN_ERRNOS = {errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL}


class CommandError(Exception):
    """What the user asked for cannot run; the message is printed as one line."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: the process's); the exit status."""
    options = build_parser().parse_args(argv)
    try:
        return options.command(options)
    except CommandError as error:
        return report(error)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rivetgreen", description="Stateful actors for Python on gevent.")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    serve_parser = commands.add_parser(
        "serve", help="serve a registry's actors to clients",
        description="Serve a registry embedded: its actors run in this process (data in SQLite files under the data "
                    "directory), clients reach them on http://HOST:PORT. SIGTERM or Ctrl-C stops it cleanly.",
    )
    serve_parser.add_argument(
        "target", metavar="MODULE:ATTRIBUTE",
        help="where the registry is: a module attribute holding it, or a function returning it (app:registry)",
    )
    serve_parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    serve_parser.add_argument(
        "--port", type=port_number, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT}; 0: any)"
    )
    serve_parser.add_argument(
        "--data-dir", help=f"where actors' data is stored (default: ${DATA_DIR_VARIABLE}, else ./.rivetgreen)"
    )
    # Distributed mode adds its options here (--engine URL, --pool NAME): with them the host joins a Rivet Engine as
    # an envoy instead of listening itself, so serve_command chooses between the two.
    serve_parser.set_defaults(command=serve_command)
    return parser


def port_number(text: str) -> int:
    """``--port``: a TCP port, 0 to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range (0 to 65535)")
    return port


def serve_command(options: argparse.Namespace) -> int:
    """``rivetgreen serve``: load the registry, then serve it embedded."""
    if options.data_dir is not None:
        # Set before the module is imported: a registry built at import time reads it there.
        os.environ[DATA_DIR_VARIABLE] = options.data_dir
    registry = load_registry(options.target)
    if options.data_dir is not None and not same_path(registry.data_dir, options.data_dir):
        registry.shutdown()
        raise CommandError(
            f"{options.target} keeps its data in {registry.data_dir!r} (it passes data_dir= to setup()), so "
            f"--data-dir {options.data_dir!r} cannot apply"
        )
    return serve_app(registry.flask_app(), options.host, options.port)


def load_registry(target: str) -> Registry:
    """The registry that ``MODULE:ATTRIBUTE`` names: the attribute's value, or what calling it returns."""
    module_name, separator, attribute = target.partition(":")
    if not separator or not is_dotted_name(module_name) or not attribute.isidentifier():
        raise CommandError(f"{target!r} is not MODULE:ATTRIBUTE (for example app:registry)")
    module = import_user_module(module_name)
    try:
        value = getattr(module, attribute)
    except AttributeError:
        raise CommandError(f"module {module_name!r} has no attribute {attribute!r}") from None
    if callable(value) and not isinstance(value, (Registry, type)):
        value = call_factory(target, value)
        if not isinstance(value, Registry):
            raise CommandError(f"{target}() returned {describe(value)}, not a rivetgreen Registry")
    if not isinstance(value, Registry):
        raise CommandError(f"{target} is {describe(value)}, not a rivetgreen Registry or a function returning one")
    return value


def import_user_module(module_name: str) -> Any:
    """Import the user's module, from the current directory too (as ``python -m`` would)."""
    if os.getcwd() not in sys.path and "" not in sys.path:
        # A console script's sys.path starts with the script's own folder, not the directory it runs in.
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        # Only the named module (or a package on its path) being absent is the user's spec; a module missing
        # inside their code is a bug there, best shown with its traceback.
        if error.name is None or not (module_name == error.name or module_name.startswith(error.name + ".")):
            raise
        raise CommandError(
            f"no module named {error.name!r} (run from the directory that holds it, or set PYTHONPATH)"
        ) from None


def call_factory(target: str, factory: Any) -> Any:
    """Call the function that builds the registry, which must take no arguments."""
    try:
        inspect.signature(factory).bind()
    except TypeError:
        raise CommandError(f"{target} must be callable without arguments to return the registry") from None
    except ValueError:
        pass  # no signature to check (some built-ins): let the call itself decide
    return factory()


def serve_app(app: Any, host: str, port: int) -> int:
    """Serve a Flask app until SIGTERM or Ctrl-C (``rivetgreen.server.serve``), logging to stderr; exit status 0,
    or 2 with one line when the address cannot be listened on."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        serve(app, host, port)
    except OSError as error:
        if not isinstance(error, socket.gaierror) and error.errno not in LISTEN_ERRNOS:
            raise
        # gevent's server appends the address to the reason, which the message already names.
        reason = (error.strerror or str(error)).partition(": (")[0]
        return report(CommandError(f"cannot listen on {host}:{port}: {reason}"))
    return 0


def report(error: CommandError) -> int:
    print(f"rivetgreen: error: {error}", file=sys.stderr)
    return EXIT_USAGE


def is_dotted_name(name: str) -> bool:
    return all(part.isidentifier() for part in name.split("."))


def same_path(first: str, second: str) -> bool:
    return os.path.realpath(first) == os.path.realpath(second)


def describe(value: Any) -> str:
    kind = type(value)
    return f"a {kind.__module__}.{kind.__qualname__}" if kind.__module__ != "builtins" else f"a {kind.__name__}"

