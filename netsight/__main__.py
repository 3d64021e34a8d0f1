"""`python -m netsight` is the `netsight` command."""

from .cli import main

raise SystemExit(main())
