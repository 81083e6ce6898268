"""The harness: timing, contention, the machine record, the estimate, the report and plot, the case runner."""
