"""Plotting (at the side of the data flow): report figures."""

from eeg2fmri.plotting.report import plot_slices, plot_timecourses, write_report

__all__ = ["plot_slices", "plot_timecourses", "write_report"]
