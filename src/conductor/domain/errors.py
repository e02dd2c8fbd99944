"""The one error type raised by the domain parsers (an `Invalid` refusal of conductor.errors)."""

from __future__ import annotations

from conductor.errors import Invalid


class SpecError(Invalid, ValueError):
    """A user-supplied value does not follow its grammar.

    ``field`` names the input as the caller knows it (an HTTP body key, a CLI flag, an
    ``#SBATCH`` option), so one parser can serve every front end and each of them can point
    the user at the exact thing to fix.
    """

    field: str
    message: str

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field=field)

    def __reduce__(self) -> tuple[type[SpecError], tuple[str, str]]:
        # The default reduction would replay ValueError's single formatted argument into our
        # two-argument constructor; errors cross process boundaries (worker pools, logging
        # handlers), so keep them picklable.
        return (type(self), (self.field, self.message))


# The longest time, size or signal a parser reads: far beyond any real one ("365-00:00:00"), and
# short enough that no number in it reaches int()'s own limit (4,300 digits, a ValueError).
MAX_VALUE_TEXT = 64


def check_length(text: str, field: str, what: str, limit: int = MAX_VALUE_TEXT) -> None:
    """Refuse `text` (a `what`: "time", "signal"...) longer than `limit`."""
    if len(text) > limit:
        raise SpecError(field, f"invalid {what} {text[:20]!r}...: longer than {limit} characters")
