"""The ``nas`` command line: one module per group of subcommands, one registry of commands."""
