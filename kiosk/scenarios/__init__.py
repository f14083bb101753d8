"""Shipped scenarios for the simulated reader (`kiosk precheck --reader sim:NAME`, `kiosk demo --scenario NAME`)."""
