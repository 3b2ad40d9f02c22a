"""Report sinks: they consume a run's events (`pushinstall.events.Sink`).

Live: `console_live.make_console` picks `console_live.LiveConsole` (rich, on a terminal) or
`console.ConsoleSink` (plain timestamped lines, then the recap); `jsonl.JsonlSink` (one JSON line
per event, flushed as it happens). End of run: `files.ReportFiles` (JSON, `junit`, `html`) and
`history.History` (SQLite), both built on `collect.Collector`; `timeline` reads the history back.
"""
