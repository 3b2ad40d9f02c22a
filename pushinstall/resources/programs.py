"""Arguments `package` and `command` share: how a program runs and how its exit code reads."""

from __future__ import annotations

from pushinstall.argspec import ANY, CODES, INTEGER, OBJECT, PATH, STRING_LIST, Arg
from pushinstall.resources.exit_codes import TABLES
from pushinstall.resources.schema import known_table_or_mapping

SECRET_FILE = (
    Arg("path", PATH, required=True, doc="Where the secret file goes on the target."),
    Arg("content", required=True, secret=True, doc="Its content (use a secret var)."),
)

RUN_ARGS = (
    Arg("path", PATH, required=True, doc="Executable on the target (msiexec.exe allowed)."),
    Arg("arguments", STRING_LIST, default=[],
        doc="Argument list; each item arrives as one argv entry."),
    Arg("working_directory", PATH, doc="Working directory of the process."),
    Arg("creates", PATH, doc="A path that exists once the program has done its work."),
    Arg("secret_file", OBJECT, fields=SECRET_FILE,
        doc="Written (SYSTEM and Administrators only) just before the run, removed after."),
    Arg("timeout", INTEGER, minimum=1, doc="Seconds before the process is killed."),
    Arg("log", PATH, doc="Log the program writes; on a failure its last 50 lines come back "
        "in the step's message (and so in every report)."),
)


MESSAGES_ARG = Arg("messages", ANY, default="",
                   doc="Exit-code messages: 'asr_unified_agent', 'msiexec', or a mapping "
                       "code -> text.")
MESSAGES_RULE = known_table_or_mapping("messages", TABLES)


def return_codes_arg(default: dict[int, str]) -> Arg:
    """The `return_codes` argument with a type-specific default."""
    return Arg("return_codes", CODES, default=default,
               doc="Exit code -> ok | reboot | failed; unlisted codes fail.")
