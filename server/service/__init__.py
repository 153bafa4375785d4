"""Use cases over ports: append, project, replay, review, query. No framework imports."""
