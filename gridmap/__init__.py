"""gridmap: the Haidian programme of visiting and caring for older people with special difficulties.

海淀区特殊困难老年人探访关爱服务 — register (台账), grid map (网格化管理), weekly visit
routes, records and follow-up, dashboard.
"""

__version__ = "0.1.0"
