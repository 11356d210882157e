"""``python -m nasviz.pipeline ...`` is the ``nasviz`` command."""

from nasviz.pipeline._cli import main

raise SystemExit(main())
