"""Command line: ``python -m fastdnn demo`` and ``python -m fastdnn warmup`` (also the ``fastdnn``
console script)."""

import argparse
import sys


def main(argv=None):
    """Entry point of the ``fastdnn`` command."""
    parser = argparse.ArgumentParser(prog="fastdnn", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="train an MLP on the bundled digits dataset")
    demo.add_argument("--epochs", type=int, default=80)
    demo.add_argument("--batch-size", type=int, default=32)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--plot", metavar="PNG", help="write the training curves to this file")
    warm = commands.add_parser(
        "warmup", help="compile the generic kernels into Numba's cache (for FASTDNN_SPECIALIZE=0)"
    )
    warm.add_argument("--dtypes", default="float32,float64", help="comma-separated dtypes")
    warm.add_argument("--no-sparse", action="store_true", help="skip the sparse-input kernels")
    warm.add_argument(
        "--portable", action="store_true",
        help="build the precompiled cache shipped with the package (for x86-64 levels, not "
        "this CPU) instead of filling Numba's cache",
    )  # fmt: skip
    warm.add_argument("--levels", default="x86-64-v3,x86-64-v4",
                      help="with --portable: comma-separated x86-64 levels")  # fmt: skip
    args = parser.parse_args(argv)
    if args.command == "warmup":
        return _warmup(args)

    from .demo import run_demo

    print(
        "fastdnn demo: 64-128-10 MLP (ReLU, softmax) on scikit-learn's digits, "
        "Adam, L2 1e-4, float32"
    )
    result = run_demo(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed)
    print(f"test accuracy: {result['test_accuracy']:.4f} (25 % stratified hold-out)")
    print(f"test loss: {result['test_loss']:.4f}")
    print(f"training throughput: {result['samples_per_second']:,.0f} samples/s")
    print(f"fit wall time: {result['seconds']:.2f} s (first epoch includes any compilation)")
    if args.plot:
        from .plotting import plot_history

        print(f"training curves: {plot_history(result['history'], args.plot)}")
    return 0


def _warmup(args):
    from .warmup import build_precompiled, warmup

    dtypes = tuple(args.dtypes.split(","))
    if args.portable:
        print("fastdnn warmup --portable: compiling the generic kernels for "
              f"{args.levels} into the precompiled cache")  # fmt: skip
        seconds = build_precompiled(tuple(args.levels.split(",")), dtypes,
                                    sparse=not args.no_sparse)  # fmt: skip
        print(f"done in {seconds:.1f} s; a wheel built now ships these kernels")
        return 0
    print("fastdnn warmup: compiling the generic kernels (every layer, activation, loss and "
          "optimizer) into Numba's cache")  # fmt: skip
    seconds = warmup(dtypes, sparse=not args.no_sparse)
    print(f"done in {seconds:.1f} s; run with FASTDNN_SPECIALIZE=0 to use these kernels for "
          "every network")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
