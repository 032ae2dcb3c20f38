import sys

if sys.argv[1:2] == ["plan"]:  # `python -m vpolib plan --profile full`: the GPU plan, nothing run
    from vpolib.plan import main

    raise SystemExit(main(sys.argv[2:]))
if sys.argv[1:2] == ["serve"]:  # python -m vpolib serve ...: a local llama.cpp server (vpolib/serve.py)
    from vpolib.serve import main as serve

    raise SystemExit(serve(sys.argv[2:]))

from vpolib.run import main  # noqa: E402

raise SystemExit(main())
