import sys

# Each subcommand imports its module only when it is chosen: `plan` and `verify` stay light (no torch), and the
# default (`run`) loads only the runner.

if sys.argv[1:2] == ["plan"]:  # `python -m vpolib plan --profile full`: the GPU plan, nothing run
    from vpolib.plan import main

    raise SystemExit(main(sys.argv[2:]))
if sys.argv[1:2] == ["serve"]:  # python -m vpolib serve ...: a local llama.cpp server (vpolib/serve.py)
    from vpolib.serve import main as serve

    raise SystemExit(serve(sys.argv[2:]))

if sys.argv[1:2] == ["optimize"]:  # python -m vpolib optimize --run RUN "a query": use a trained optimizer
    from vpolib.optimize import main as optimize

    raise SystemExit(optimize(sys.argv[2:]))
if sys.argv[1:2] == [
    "export"
]:  # python -m vpolib export RUN OUT: Parquet datasets and a model dir, with cards
    from vpolib.export import main as export

    raise SystemExit(export(sys.argv[2:]))

if sys.argv[1:2] == ["verify"]:  # python -m vpolib verify RUN: the run against the committed reference
    from vpolib.verify import main as verify

    raise SystemExit(verify(sys.argv[2:]))

from vpolib.run import main  # noqa: E402

raise SystemExit(main())
