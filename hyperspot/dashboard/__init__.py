"""A live terminal dashboard over the admin observability endpoints (``hyperspot dashboard``)."""
