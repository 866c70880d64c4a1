"""Reports of a run: Markdown with PNG plots."""

__all__ = ["write_report"]


def write_report(run_dir):
    """Write ``RUN_DIR/report/report.md`` (imports matplotlib only when called)."""
    from netadapt.report.markdown import write_report as _write

    return _write(run_dir)
