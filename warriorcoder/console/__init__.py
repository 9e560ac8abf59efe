"""What a person at a terminal sees of a run: progress bars and log lines. One module each, so
every command and service sets them up the same way."""
