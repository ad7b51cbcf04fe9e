"""End-to-end reference applications, one sub-package each (``sparkzoo.apps.<name>``)."""
