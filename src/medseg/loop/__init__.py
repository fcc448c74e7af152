"""The parts every training loop shares: the budget (epochs or minutes), the learning-rate
schedule, the per-epoch log and Ctrl-C taken at a step boundary.

Segmentation training (`medseg.train`) and registration training (`medseg.register`) both
build their loops from these. Of medseg it imports `medseg.io` only (atomic writes), so
either side may use it without knowing the other.
"""

from medseg.loop.budget import Budget
from medseg.loop.interrupt import StopRequest, deferred_interrupt
from medseg.loop.logbook import (
    CURVES_FILE,
    LOG_FILE,
    EpochRecord,
    TensorBoardWriter,
    log_text,
    table_text,
    write_log_rows,
    write_logs,
)
from medseg.loop.schedule import early_stop_due, poly_learning_rate, validation_due

__all__ = [
    "CURVES_FILE",
    "LOG_FILE",
    "Budget",
    "EpochRecord",
    "StopRequest",
    "TensorBoardWriter",
    "deferred_interrupt",
    "early_stop_due",
    "log_text",
    "poly_learning_rate",
    "table_text",
    "validation_due",
    "write_log_rows",
    "write_logs",
]
