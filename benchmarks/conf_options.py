"""The conf options a benchmark takes, as `recsynth` itself does: --env, --conf-file, --set."""
from __future__ import annotations

import argparse


def conf_parser(description: str) -> argparse.ArgumentParser:
    """A parser with the conf options; the benchmark adds its own."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="local", help="conf environment (default: local)")
    parser.add_argument("--conf-file", dest="conf_files", action="append", default=[], metavar="YAML",
                        help="extra conf overlay, as for `recsynth --conf-file` (repeatable)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="conf override, as for `recsynth --set` (repeatable)")
    return parser


def load(args: argparse.Namespace):
    """The conf the options name."""
    from recsynth.config import load_conf

    return load_conf(args.env, args.overrides, files=args.conf_files)
