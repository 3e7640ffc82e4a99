"""Experiment records, the run queue and its executors (docs/experiments.md).

Every finished run leaves one small JSON record, results/<schedule>/<corruption>/<method>.json, that
holds everything the report needs; run directories (checkpoints, logs, data-derived splits) live
outside the work tree and are never committed.
"""
