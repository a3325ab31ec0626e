"""``lmjepa audit SPEC``: the audit's runs, then its report (``analysis.audit``).

The runs are a sweep (``pipeline.sweep``) whose rows also carry each trained model's geometry, computed as
each run finishes, where its model is; ``report_only`` skips the runs and reports on the store as it is.
"""

from __future__ import annotations

from pathlib import Path

from ..analysis.audit import audit_report, check_spec
from .sweep import run_sweep, store_path


def run_audit(spec_path: str | Path, report_only: bool = False, out: str | Path | None = None, **options) -> Path:
    """Check the spec's ``audit:`` section (before anything trains), run the
    sweep (``run_sweep(spec_path, **options)`` with the spec's ``geometry_rows``) unless ``report_only``, and
    write the report. Returns the report path (``out``, default ``<store folder>/audit``, holds report.md,
    stats.json and the plots). Raises ConfigError on a bad spec, RunFolderError when runs failed."""
    settings = check_spec(spec_path)
    store = (store_path(spec_path, options.get("output_dir")) if report_only
             else run_sweep(spec_path, geometry_rows=settings["geometry_rows"], **options))
    return audit_report(spec_path, store, out or store.parent / "audit")
