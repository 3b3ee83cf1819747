"""The Dagster layer: assets, checks, sensors, schedules and resources, by concern."""
