"""Text classification: Rotten Tomatoes reviews (or any text/label table) to word ids with
TextSet on Spark, ``text_cnn``/``text_rnn`` on Horovod, next to TF-IDF + logistic regression
and the majority class; ``score`` for new texts (``python -m sparkzoo.apps.text_classification``;
see its README)."""
