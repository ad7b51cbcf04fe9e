"""End-to-end reference applications, one sub-package each (``sparkzoo.apps.<name>``)."""

from sparkzoo import extras

# The apps read images, fit baselines and load the data that ships inside packages.
extras.require("apps", "sparkzoo.apps")
