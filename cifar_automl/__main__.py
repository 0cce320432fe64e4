"""The `cifar-automl` command (and `python -m cifar_automl`): the backend chosen and TensorFlow
imported quietly before Keras is, then `cli.main`."""

import sys

from .errors import UserError
from .runtime import import_tensorflow_quietly, select_backend


def backend_flag(argv: list[str]) -> tuple[str | None, list[str]]:
    """`--backend NAME` (or `--backend=NAME`) anywhere on the command line, and the rest of it."""
    rest, name, args = [], None, iter(argv)
    for arg in args:
        if arg == "--":
            rest += [arg, *args]
            break
        if arg == "--backend":
            name = next(args, "")
        elif arg.startswith("--backend="):
            name = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    return name, rest


def main() -> int:
    name, argv = backend_flag(sys.argv[1:])
    try:
        select_backend(name)
    except UserError as e:
        print(f"cifar-automl: error: {e}", file=sys.stderr)
        return 2
    if "--debug" not in argv:
        import_tensorflow_quietly()
    # imported after the backend was chosen: the commands import Keras
    from .cli import main as run

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
