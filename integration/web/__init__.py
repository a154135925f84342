"""The web tier: the Flask app factory, the webhook receiver, the generic intake, health."""

from integration.web.app import create_app

__all__ = ["create_app"]
