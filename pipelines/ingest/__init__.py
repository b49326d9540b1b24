"""Reading unit deliveries and loading them through the border into unit zones."""
