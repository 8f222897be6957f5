import sys

from mesh_cli._main import main

sys.exit(main())
