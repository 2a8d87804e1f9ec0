"""Weekly visit routes: travel matrices, the OR-Tools planner, rebalancing, route lists."""
