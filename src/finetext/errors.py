"""The one user-facing error type: a single line that names the problem and how to fix it."""


class FinetextError(Exception):
    """Bad input or an impossible request. The CLI prints it as one line and exits with code 2."""

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem} {fix}" if fix else problem)
