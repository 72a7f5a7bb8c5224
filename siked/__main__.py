import sys

from siked.cli import main

sys.exit(main())
