from vpolib.runner import main

raise SystemExit(main())
