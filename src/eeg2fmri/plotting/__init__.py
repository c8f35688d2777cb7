"""Plotting (at the side of the data flow): report figures and Markdown/HTML reports."""

from eeg2fmri.plotting.report import (
    plot_r_distributions,
    plot_r_map,
    plot_slices,
    plot_subject_r,
    plot_timecourses,
    plot_volumes_mni,
    write_evaluation_report,
    write_report,
)

__all__ = ["plot_r_distributions", "plot_r_map", "plot_slices", "plot_subject_r", "plot_timecourses", "plot_volumes_mni", "write_evaluation_report", "write_report"]
