"""Training: feature cache, the Lightning module and trainer set-up, optimizers and schedules, run orchestration."""
