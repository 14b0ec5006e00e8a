"""Subcommands of the dcediff command line tool."""
