"""Load test (locust) and benchmark (``make bench``) for paycore; see loadtest/README.md."""
