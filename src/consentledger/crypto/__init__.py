"""Cryptographic recipes and key files."""
