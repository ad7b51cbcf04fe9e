"""Imports every family module so that each registers its builders (see registry.register).

One line per module; a helper adding a family adds its module here.
"""

from sparkzoo.models import lenet  # noqa: F401
