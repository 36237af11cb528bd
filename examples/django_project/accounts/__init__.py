"""The example project's one app: log in, log out and a page that counts visits."""
