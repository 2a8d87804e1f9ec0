"""Service tasks (服务任务, issue 17): the needs recorded at a visit worked to a care service.

* :mod:`~gridmap.tasks.lifecycle` — pure functions: tasks from a visit (receiver and due date from the
  rules ``service_needs``), the states 待处理 → 处理中 → 已完成 / 已取消, care services numbered per elder;
* :mod:`~gridmap.tasks.store` — the one module with their SQL (both backends, change feed on every write);
* :mod:`~gridmap.tasks.cli` — ``gridmap tasks list | update | serve``.
"""
