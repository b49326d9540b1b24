"""Dataupptäckt: analyses over the cross-unit zone that find patterns spanning units.

Every analysis reads person-level data only inside the cross-unit zone (the citizen-quarter panel,
``discovery.citizen_quarter``) or the aggregate marts, and writes group-level findings (effect size,
confidence interval, group sizes, method, data version) to the zone's ``discovery`` schema. Only
findings whose every group is at least the disclosure threshold reach the serving snapshot
(``pipelines/serving``): no per-person score or list ever leaves the zone.

- ``panel``: the panel as arrays, the service indicators and their units, strata, the data version.
- ``associations``: co-use of two units' services, Mantel–Haenszel odds ratios, Benjamini–Hochberg.
- ``counting``: how the associations count rows, per quarter, and the sums kept between runs.
- ``precedence``: which service comes first (sequence symmetry analysis), with the lag distribution.
- ``segments``: k-means segments of service-use profiles, their stability, a Swedish description.
- ``kpi``: KPI deviations, trends and slow case types per org unit, over the marts.
- ``findings``: the one findings schema all of them write, and what may be published.
"""
