from medchat.cli import main

raise SystemExit(main())
