import sys

if sys.argv[1:2] == ["plan"]:  # `python -m vpolib plan --profile full`: the GPU plan, nothing run
    from vpolib.plan import main

    raise SystemExit(main(sys.argv[2:]))
from vpolib.runner import main

raise SystemExit(main())
