"""Entry point of the ``nas`` command: builds the parser from the command registry."""

from __future__ import annotations

import argparse
import os
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, NoReturn, TypeVar

from nas.errors import NasError, did_you_mean
from nas.registry import Registry


@dataclass(frozen=True)
class Command:
    """One subcommand: its help, its examples, how to add its arguments and how to run it."""

    name: str
    help: str
    description: str
    examples: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    #: Checks the arguments without importing anything heavy (raises NasError); run before
    #: Optuna and torch are imported, so a settings error costs a fraction of a second.
    check: Callable[[argparse.Namespace], None] | None = None


COMMANDS: Registry[Command] = Registry("command")

T = TypeVar("T")


def argtype(parse: Callable[[str], T], name: str) -> Callable[[str], T]:
    """An argparse ``type`` from a parser that raises :class:`NasError`, so a malformed value
    is an argument error (one line, exit 2) found before anything heavy is imported."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except NasError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = name  # argparse names the type in "invalid <name> value" messages
    return convert


DESCRIPTION = """\
Neural architecture search for attention-augmented ResNets under a hard parameter budget.

Every candidate is counted with fvcore before any weights exist; candidates over the limit
are rejected on the spot. The rest are trained as short proxies, and the Pareto winners
(accuracy against parameters, FLOPs, latency or peak memory) are trained for real."""

EPILOG = """\
typical session:
  nas presets                                        # the seed architectures
  nas count --preset enhanced-efficient-resnet       # params, FLOPs, breakdown
  nas sample --space search_spaces/attention_resnet.toml -n 300 --param-limit 5M
  nas search --dataset cifar10 --param-limit 5M --trials 50 --study demo
  nas train-winners --study demo --top-k 3 --epochs 200
  nas export --study demo --best --out best.json
  nas report --study demo --out report.html
  nas dashboard

Run 'nas COMMAND --help' for a command's options and examples."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: the problem, the closest valid word ("did you mean")
    and where to look, no usage dump."""

    #: The subcommands' parsers, by name (set on the top-level parser).
    commands: dict[str, argparse.ArgumentParser]
    #: The arguments being parsed (set by :func:`main` for every parser).
    argv: ClassVar[list[str]] = []

    def error(self, message: str) -> NoReturn:
        prog = self.prog
        unknown = re.match(r"unrecognized arguments: (.*)", message)
        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if unknown and hasattr(self, "commands"):
            message, prog = self._unknown_flags(unknown.group(1).split())
        elif message.startswith(("the following arguments are required", "one of the arguments")):
            flags = [o for action in self._actions for o in action.option_strings]
            typo = next((a for a in self.argv if a.startswith("--") and a not in flags), None)
            if typo is not None:
                message = f"unknown flag {typo}{did_you_mean(typo, flags)}"
        elif choice:
            options = re.findall(r"'([^']*)'", choice.group(2))
            message += did_you_mean(choice.group(1), options)
        elif missing := re.match(r"argument (--[\w-]+).*: expected one argument", message):
            message = self._dashed_value(missing.group(1)) or message
        self.exit(2, f"nas: error: {message} (see '{prog} --help')\n")

    def _dashed_value(self, flag: str) -> str | None:
        """When a flag's value starts with '-' (``--latency-limit -2ms``), argparse reads it
        as a flag and says only "expected one argument": the value's own problem, parsed as
        the flag parses it, or how to pass it (None: the flag really had no value)."""
        value = self._after(flag)
        if value is None or not value.startswith("-") or value.startswith("--"):
            return None
        action = next((a for a in self._actions if flag in a.option_strings), None)
        parse = getattr(action, "type", None)
        try:
            if callable(parse):
                parse(value)
        except (argparse.ArgumentTypeError, ValueError, NasError) as exc:
            return f"argument {flag}: {exc}"
        return (
            f"argument {flag}: {value!r} reads as a flag; a value that starts with '-' is "
            f"written {flag}=VALUE"
        )

    def _after(self, token: str) -> str | None:
        """The argument that follows ``token``'s first occurrence (None: none does)."""
        argv = self.argv
        at = argv.index(token) if token in argv else -1
        return argv[at + 1] if 0 <= at < len(argv) - 1 else None

    def _unknown_flags(self, tokens: list[str]) -> tuple[str, str]:
        """The message for arguments no parser took: each unknown flag with the closest
        flag of the command, and the value after it when a positional swallowed it (so
        ``--param-limt 5M`` is not reported as a study file named ``5M``)."""
        argv = self.argv
        name = next((a for a in argv if a in self.commands), None)
        parser = self.commands.get(name or "", self)
        flags = [o for action in parser._actions for o in action.option_strings]
        flag = next((t for t in tokens if t.startswith("-")), None)
        if flag is None:
            return f"unexpected argument(s) {' '.join(tokens)}", parser.prog
        after = self._after(flag)
        value = f" {after}" if after and not after.startswith("-") else ""
        key = flag.split("=", 1)[0]
        return f"unknown flag {key}{value}{did_you_mean(key, flags)}", parser.prog


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, one subparser per registered command."""
    _load_commands()
    parser = _Parser(
        prog="nas",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from nas import __version__

    parser.add_argument("--version", action="version", version=f"nas {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands: dict[str, argparse.ArgumentParser] = {}
    for name, cmd in COMMANDS.items():
        p = sub.add_parser(
            name,
            help=cmd.help,
            description=cmd.description,
            epilog="examples:\n" + cmd.examples,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        cmd.add_arguments(p)
        p.set_defaults(run=cmd.run, check=cmd.check)
        commands[name] = p
    parser.commands = commands
    return parser


#: The modules that register subcommands, in the order ``nas --help`` lists them.
COMMAND_MODULES = ("arch", "search", "fidelity", "winners", "export", "report")


def _load_commands() -> None:
    """Import the command modules, which register themselves (imports are idempotent)."""
    import importlib

    for module in COMMAND_MODULES:
        importlib.import_module(f"nas.cli.{module}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``nas`` command; returns the exit code."""
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*experimental.*")
    os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")
    parser = build_parser()
    given = list(sys.argv[1:] if argv is None else argv)
    _Parser.argv = given
    args = parser.parse_args(given)
    args.argv = given  # for commands that respawn
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        if args.check is not None:
            args.check(args)
        import optuna  # after the checks: --help and argument errors never import it (or torch)

        optuna.logging.set_verbosity(optuna.logging.ERROR)  # our monitors report trial events
        return int(args.run(args))
    except NasError as exc:
        print(f"nas: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("nas: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `nas presets | head`
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
