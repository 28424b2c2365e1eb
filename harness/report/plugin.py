"""pytest hooks that collect case records and write reports (``--report-dir``)."""
