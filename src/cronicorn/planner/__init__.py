"""The AI planner: reads what endpoints answered and steers their schedules with hints,
inside the bounds their owners set. `role.planner_role` is the entry point."""
