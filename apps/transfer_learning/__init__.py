"""Transfer learning: ``lenet5.mnist`` fine-tuned on the real UCI digits with K labels per class,
against the same network from scratch and a logistic regression (``python -m
sparkzoo.apps.transfer_learning``; see its README)."""
