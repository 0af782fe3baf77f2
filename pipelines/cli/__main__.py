"""`python -m pipelines.cli`: the same as the `mkpi` console script."""

from pipelines.cli import main

raise SystemExit(main())
