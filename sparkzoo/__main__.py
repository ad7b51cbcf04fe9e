import sys

from sparkzoo.cli import main

sys.exit(main())
