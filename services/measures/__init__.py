"""Policing measures over the stored visits: compliance, officer time, signal loss, calibration, outcomes."""
