"""Home-safety devices (issue 17 part B): who is entitled by the document, each device's state and
installer, alarms from monitoring platforms turned into referrals or emergencies.

Pure domain in :mod:`gridmap.devices.domain`, the SQL in :mod:`gridmap.devices.store`, the commands
in :mod:`gridmap.devices.cli` (``gridmap devices list|worklist|add|update|alarms|coverage``).
"""
