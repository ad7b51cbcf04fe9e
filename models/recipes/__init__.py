"""Recipes that train the shipped weights through the distributed trainer (one command each).

``python -m sparkzoo.models.recipes lenet5.mnist`` trains LeNet-5 on the real MNIST digits with
``KerasEstimator``, measures it on the held-out split beside a scikit-learn baseline, and
writes the weights and their card into ``sparkzoo/models/pretrained``. These modules use the
trainer (and so Spark); ``import sparkzoo.models`` never imports them.
"""

# tag -> module; each module has TAG, FAMILY, train(spark, args) and check_metric(model, limit).
RECIPES = {
    "lenet5.mnist": "sparkzoo.models.recipes.lenet5_mnist",
    "deepbit.mnist": "sparkzoo.models.recipes.deepbit_mnist",
    "vae.mnist": "sparkzoo.models.recipes.vae_mnist",
    "ssd_lite.scenes": "sparkzoo.models.recipes.ssd_lite_scenes",
    "yolo.scenes": "sparkzoo.models.recipes.yolo_scenes",
    "ncf.ml100k": "sparkzoo.models.recipes.ncf_ml100k",
    "text_cnn.rotten_tomatoes": "sparkzoo.models.recipes.text_cnn_rotten_tomatoes",
    "seq2seq.cmudict": "sparkzoo.models.recipes.seq2seq_cmudict",
    "lstm_forecaster.taylor": "sparkzoo.models.recipes.lstm_forecaster_taylor",
}
