"""Report sinks: they consume a run's events (`pushinstall.events.Sink`).

Live: `console.ConsoleSink` (plain lines, then the recap), `jsonl.JsonlSink` (one JSON line per
event, flushed as it happens). End of run: `files.ReportFiles` (JSON, JUnit XML, HTML) and
`history.History` (SQLite), both built on `collect.Collector`.
"""
