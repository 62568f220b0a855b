"""The web console of `memlane serve`, at /console: server-rendered pages (Jinja2 templates, one
stylesheet, a little plain JavaScript) over the same library calls as the REST API. A browser
signs in with an API key; a tenant key sees its own users, the admin pages need an admin key."""

from memlane.server.console.app import install_console

__all__ = ["install_console"]
