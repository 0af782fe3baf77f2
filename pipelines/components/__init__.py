"""Dagster Components of the pipeline: what a `defs.yaml` under `pipelines/defs/` can name as its `type`."""
