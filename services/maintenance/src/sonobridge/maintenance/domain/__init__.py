"""Maintenance rules and value types: devices, tickets, SLA clocks, health rules, utilisation."""
