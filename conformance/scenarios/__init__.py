"""Scenarios, one module per service; every module here is imported by ``load_scenarios``."""
