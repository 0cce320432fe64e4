"""The comparison report of a study: tables first (`tables`, pandas), then figures (`figures`, plotly)
and the self-contained page with its CSV files (`html.write_report`)."""

from .html import write_report
from .tables import format_table, leaderboard, trials_frame

__all__ = ["format_table", "leaderboard", "trials_frame", "write_report"]
