"""Pieces shared by the whole library: exceptions, tags and stream helpers."""
