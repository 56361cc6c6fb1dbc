from medchat.app.cli import main

raise SystemExit(main())
