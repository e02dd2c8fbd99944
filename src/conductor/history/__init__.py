"""The history of ended jobs: purging it from the database after a while, and archive files."""
