"""The distributed trainer (``sparkzoo.trainer``): Horovod ranks run as Spark barrier tasks.

The pieces that bring a Horovod Gloo ring up inside a barrier stage live in
:mod:`sparkzoo.trainer.horovod_ring`.
"""
