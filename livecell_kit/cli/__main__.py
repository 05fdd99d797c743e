"""``python -m livecell_kit.cli ...``: the console script without the installed script."""
import sys

from livecell_kit.cli.launch import main

sys.exit(main())
