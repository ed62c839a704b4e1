"""`python -m neuralband` is the `neuralband` command."""

import sys

from neuralband.cli import main

sys.exit(main())
