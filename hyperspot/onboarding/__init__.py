"""``hyperspot onboard``: a guided Textual wizard from an empty folder to a running server."""
