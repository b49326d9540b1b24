"""The serving snapshot: what dashboards and notebooks read, disclosure-controlled and immutable."""
