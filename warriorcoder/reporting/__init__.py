"""What the arena reports to people: the leaderboard as JSON, Markdown and a plot."""
