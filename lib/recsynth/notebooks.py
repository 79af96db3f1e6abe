"""Run the notebooks of notebooks/ headless, with parameters, the way the tests do.

    .venv/bin/python -m recsynth.notebooks notebooks/01_lake_quality.ipynb \\
        -p env=local --set lake.root=/path/to/warehouse -o /tmp/01_lake_quality.ipynb

Parameters are injected papermill-style: a cell tagged `injected-parameters` is added after the
cell tagged `parameters`, assigning each given name. `--set key=value` values are appended to
the notebook's `overrides` parameter (conf overrides, as `recsynth --set`). The kernel is this
interpreter (`sys.executable`), through a kernel spec written to a temporary folder, so the
notebook sees the same packages whatever Jupyter kernels the machine has registered. The kernel
starts in the notebook's folder, as in Jupyter.

Needs nbclient, nbformat and ipykernel (requirements-dev.txt).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from recsynth.errors import RecsynthError

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"
KERNEL_NAME = "recsynth-python"


class NotebookError(RecsynthError):
    """A notebook cannot be parameterised or failed while running (the message names the cell)."""


def parameter_cell_index(nb) -> int:
    """The index of the cell tagged `parameters`."""
    for index, cell in enumerate(nb.cells):
        if PARAMETERS_TAG in cell.get("metadata", {}).get("tags", []):
            return index
    raise NotebookError(f"no cell tagged {PARAMETERS_TAG!r}: nothing to inject parameters after")


def inject_parameters(nb, parameters: dict) -> None:
    """Add (or replace) the `injected-parameters` cell after the `parameters` cell, in place."""
    import nbformat

    nb.cells = [c for c in nb.cells if INJECTED_TAG not in c.get("metadata", {}).get("tags", [])]
    if not parameters:
        return
    for name in parameters:
        if not name.isidentifier():
            raise NotebookError(f"parameter {name!r} is not a Python identifier")
    source = "# Parameters\n" + "".join(f"{name} = {value!r}\n" for name, value in parameters.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": [INJECTED_TAG]})
    nb.cells.insert(parameter_cell_index(nb) + 1, cell)


def default_parameters(nb) -> dict:
    """The names and values the `parameters` cell assigns (evaluated without a kernel)."""
    namespace: dict = {}
    exec(nb.cells[parameter_cell_index(nb)].source, {}, namespace)  # noqa: S102 - the notebook's own cell
    return namespace


def _kernel_spec(folder: Path) -> None:
    spec = folder / KERNEL_NAME
    spec.mkdir()
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"recsynth ({sys.executable})",
        "language": "python",
    }))


def run_notebook(path, parameters: dict | None = None, *, output=None, cwd=None, timeout: int = 900):
    """Execute a notebook with `parameters`, return the executed notebook (nbformat node) and
    write it to `output` when given (also when a cell fails, so the failure can be read there).
    Raises NotebookError naming the cell that failed."""
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    inject_parameters(nb, dict(parameters or {}))
    with tempfile.TemporaryDirectory(prefix="recsynth-kernel-") as specs:
        _kernel_spec(Path(specs))
        manager = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=KernelSpecManager(kernel_dirs=[specs]))
        client = NotebookClient(nb, km=manager, timeout=timeout, kernel_name=KERNEL_NAME,
                                resources={"metadata": {"path": str(Path(cwd or path.parent).resolve())}})
        try:
            client.execute(cleanup_kc=True)  # a kernel manager of ours is otherwise left running, with its JVM
        except CellExecutionError as err:
            raise NotebookError(f"{path.name} failed: {err}") from None
        finally:
            if output is not None:
                nbformat.write(nb, str(output))
    return nb


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recsynth.notebooks", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE",
                        help="set a parameter (VALUE as a Python literal, else a string); repeatable")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="conf override appended to the notebook's `overrides`; repeatable")
    parser.add_argument("-o", "--output", type=Path, help="where to write the executed notebook "
                        "(default: <name>.out.ipynb beside it, which git ignores)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds a cell may run (default 900)")
    args = parser.parse_args(argv)
    parameters = dict(_parse_parameter(text) for text in args.parameter)
    if args.overrides:
        import nbformat

        defaults = default_parameters(nbformat.read(args.notebook, as_version=4))
        parameters["overrides"] = [*parameters.get("overrides", defaults.get("overrides", [])), *args.overrides]
    output = args.output or args.notebook.with_suffix(".out.ipynb")
    try:
        run_notebook(args.notebook, parameters, output=output, timeout=args.timeout)
    except NotebookError as err:
        print(f"{err}\nThe partly executed notebook is in {output}", file=sys.stderr)
        return 1
    print(f"ran {args.notebook}; executed notebook with outputs: {output}")
    return 0


def _parse_parameter(text: str) -> tuple[str, object]:
    import ast

    name, sep, raw = text.partition("=")
    if not sep:
        raise SystemExit(f"parameter {text!r}: expected NAME=VALUE")
    try:
        return name.strip(), ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return name.strip(), raw


if __name__ == "__main__":
    sys.exit(main())
