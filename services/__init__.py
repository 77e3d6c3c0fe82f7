"""Runnable services of budgetvakt: the CLI, the stream worker's process wiring, the demo."""
