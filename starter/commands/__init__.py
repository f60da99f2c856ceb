"""The command groups of ``python -m starter`` (starter/cli.py registers them)."""
