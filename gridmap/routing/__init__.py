"""Weekly visit routes: the JSON problem/plan contract, travel matrices, the OR-Tools planner and an independent checker."""

from gridmap.routing.check import Violation, check_plan
from gridmap.routing.plan import Plan, parse_plan
from gridmap.routing.problem import Problem, parse_problem
from gridmap.routing.solver import solve

__all__ = ["Plan", "Problem", "Violation", "check_plan", "parse_plan", "parse_problem", "solve"]
