"""Real offline data sets, generators and preprocessing (``sparkzoo.datasets``)."""
