"""``python -m api.cli``: the same tool as ``cv``."""

from api.cli import main

if __name__ == "__main__":
    main()
