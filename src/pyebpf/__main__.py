"""``python -m pyebpf``: the same command as ``pyebpf``."""

from .cli import main

raise SystemExit(main())
