from ghostfill.cli import main

raise SystemExit(main())
