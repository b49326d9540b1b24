"""The disclosure policy: how small a group may be before it is withheld. Every number of it lives here.

Whatever decides what is too small reads it from here: disclosure control of the serving snapshot
(which records the threshold it was built under, so notebooks read it from the snapshot), the
discovery findings, aggregate contracts and the risk report of ``steward show``.
"""

DEFAULT_THRESHOLD = 5  # a published count below it is withheld (zero included), and whatever would reveal it
MIN_COUNT = 10  # an aggregate contract's default: cells whose count_column is below it are not shared
RISKY_K = 5  # ``steward show``: k-anonymity classes smaller than this are reported as re-identification risks
