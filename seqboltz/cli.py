"""The ``seqboltz`` command. Subcommands import their dependencies lazily.

* ``seqboltz fit|validate|test|predict --config recipes/….yaml``: LightningCLI training.
* ``seqboltz evaluate CHECKPOINT``: test log-likelihood (exact or AIS) in nats.
* ``seqboltz demo``: the main job — the service on its embedded model, a client streaming from it.
* ``seqboltz demo-mnist``: train the MNIST recipe briefly, evaluate, draw pictures.
* ``seqboltz stack LAYER1 LAYER2 --out S.ckpt``: two CRBM layers as one model (Taylor 2007).
* ``seqboltz export CHECKPOINT --out M.onnx``: an ONNX artifact for :mod:`seqboltz.runtime`.
* ``seqboltz synthesize --model M.onnx …``: offline batch synthesis (torch-free).
* ``seqboltz view``: a web page drawing and steering a running service's motion (no torch).
* ``seqboltz fetch DATASET``: fetch a dataset into the cache (pinned sha256).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]

_USAGE = """usage: seqboltz COMMAND [ARGS]

commands:
  fit | validate | test | predict   train/evaluate a recipe with LightningCLI
                                    (seqboltz fit --config recipes/mnist_rbm.yaml)
  evaluate CHECKPOINT               average test log-likelihood in nats (exact log Z or AIS);
                                    sequence models: prediction and generation vs baselines
  stack LAYER1 LAYER2 --out S.ckpt  a CRBM and a second layer on its hidden units as one
                                    generating model (Taylor et al. 2007's two-layer CRBM)
  export CHECKPOINT --out M.onnx    a model's sampling step + model card as one ONNX file
  synthesize --model M.onnx ...     many sequences to BVH/WAV/NPY files, shardable (no torch)
  serve [--models DIR] [--port N]   the gRPC generation service (embedded models)
  generate [--server ADDR] ...      stream a sequence from a server; save NPY + BVH/WAV + PNG
  view [--server ADDR] [--port N]   a web page that draws a running server's motion in 3-D
                                    and steers it with sliders (http://127.0.0.1:8765/)
  demo                              start the service on its embedded motion model and stream
                                    a generated sequence from it (BVH + PNG in runs/demo)
  demo-mnist                        train MNIST briefly, report test log-likelihood, write PNGs
  fetch DATASET                     download and verify a dataset into the cache
                                    (mnist5k, cmu_take_asf, cmu_take_amc, asterisk_prompts)

Run `seqboltz COMMAND --help` for a command's options.
"""

_LIGHTNING = {"fit", "validate", "test", "predict"}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``seqboltz`` console script; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(_USAGE, end="")
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command in _LIGHTNING:
        from seqboltz.training._cli import run_cli

        run_cli(None if argv is None else [command, *rest])
        return 0
    if command == "evaluate":
        from seqboltz.eval._cli import evaluate_main

        return evaluate_main(rest)
    if command == "demo":
        from serving.demo import main as service_demo

        return service_demo(rest)
    if command == "demo-mnist":
        from seqboltz._demo import demo_main

        return demo_main(rest)
    if command == "stack":
        from seqboltz.training._stack import stack_main

        return stack_main(rest)
    if command == "export":
        from seqboltz.export._cli import export_main

        return export_main(rest)
    if command == "synthesize":
        from seqboltz.runtime._cli import synthesize_main

        return synthesize_main(rest)
    if command == "serve":
        from serving.grpc_log import quiet_grpc_core

        quiet_grpc_core(rest)  # before grpc is imported: it reads GRPC_VERBOSITY once
        from serving.server import main as serve_main

        return serve_main(rest)
    if command == "generate":
        from serving.client import main as generate_main

        return generate_main(rest)
    if command == "view":
        from serving.viewer.bridge import main as view_main

        return view_main(rest)
    if command == "fetch":
        from seqboltz.data._cli import fetch_main

        return fetch_main(rest)
    print(f"seqboltz: unknown command {command!r}\n\n{_USAGE}", end="", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
