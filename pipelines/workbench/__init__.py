"""The steward workbench (``knutpunkt workbench``): stewards review, approve and revoke in a browser, in Swedish.

``app`` holds the pages, ``views`` words what the stewardship functions return, ``accounts`` the
stewards' generated passwords, ``sessions`` the signed session cookies and CSRF tokens.
"""
