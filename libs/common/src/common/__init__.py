"""Shared infrastructure for Triple Academy services. No business logic lives here."""
