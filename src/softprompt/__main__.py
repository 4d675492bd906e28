"""``python -m softprompt ...`` (also what ``torchrun -m softprompt ...`` runs on every process)."""

from softprompt.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
