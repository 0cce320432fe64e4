"""`python -m cifar_automl` is the `cifar-automl` command."""

import sys

from .cli import main

sys.exit(main())
