"""The `cifar-automl` command (and `python -m cifar_automl`): quiet start-up, then `cli.main`."""

import sys

from .runtime import import_tensorflow_quietly


def main() -> int:
    if "--debug" not in sys.argv:
        import_tensorflow_quietly()
    # imported after TensorFlow was imported quietly: the commands import Keras, which imports it
    from .cli import main as run

    return run(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
