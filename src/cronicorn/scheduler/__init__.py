"""The scheduler role: claims due endpoints with row leases, calls them through `dispatch`,
writes runs and next plans back in batches, recovers dead workers' leases and prunes run
history. Entry points: `role.scheduler_role` (for `cronicorn up` / `cronicorn scheduler`)
and `loop.Scheduler` (for tests and embedding)."""
