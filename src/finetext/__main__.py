from finetext.cli import main

raise SystemExit(main())
