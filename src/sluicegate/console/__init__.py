"""The web console: a static page and ES modules over the gateway's own APIs."""
