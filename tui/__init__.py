"""The Textual cockpit: reads the journal (``kernel``) and folds handed in by ``cli``."""

from tui.app import TABS, CockpitApp
from tui.sources import COMMANDS_DISABLED_REASON, CockpitSources, ExecutionLike, SummaryLike

__all__ = ["COMMANDS_DISABLED_REASON", "TABS", "CockpitApp", "CockpitSources", "ExecutionLike", "SummaryLike"]
