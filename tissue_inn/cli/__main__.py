"""``python -m tissue_inn.cli`` is the ``tissue-inn`` command."""

import sys

from tissue_inn.launcher import main

sys.exit(main())
