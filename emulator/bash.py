"""What Run Command (``RunShellScript``) does with the bash scripts exomi generates on a Linux VM.

This is not a shell. It understands the few constructs those scripts use: ``set -e`` (with ``-u``,
``-o pipefail``), ``if [!] <command>; then ... fi``, ``[ A = B ]`` / ``[ A != B ]``, ``$(command)``,
``a || b``, ``true``, ``echo``, ``exit``, ``command -v``, ``mkdir``, ``curl -o``, ``apt-get``, ``rm``,
redirections to /dev/null and ``>&2``, ``cat > FILE <<'TAG'`` (a quoted here-document) and
``pwsh -File FILE`` or ``pwsh -Command '...'`` (the PowerShell, run by ``emulator.powershell.run_script``
on the VM's PowerShell 7 host). Anything else is bash's ``command not found`` (exit 127). Exit codes
follow bash: the last command's, or the first failing one under ``set -e``. Sources of each behaviour:
emulator/README.md ("Linux VMs").
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field

from emulator.powershell import ScriptOutcome

# The pwsh releases the emulated GitHub release download serves (Linux x64 .deb packages).
PWSH_RELEASES = {"7.2.24", "7.4.6", "7.4.7", "7.6.0"}
PWSH_DEB_URL = re.compile(
    r"^https://github\.com/PowerShell/PowerShell/releases/download/v(?P<v>\d+\.\d+\.\d+)/"
    r"powershell_(?P<w>\d+\.\d+\.\d+)-1\.deb_amd64\.deb$"
)
# The programs of an Ubuntu image this shell knows (pwsh only once installed).
UBUNTU_COMMANDS = {"bash", "cat", "curl", "apt-get", "mkdir", "rm", "echo", "true", "false"}
# Where the Linux Run Command extension puts the script it runs with bash (bash names it in its errors).
SCRIPT_PATH = "/var/lib/waagent/run-command/download/0/script.sh"
HEREDOC = re.compile(r"<<-?\s*'(?P<tag>[A-Za-z_][A-Za-z0-9_]*)'\s*$")


@dataclass
class LinuxMachine:
    """What a script can see and change on the VM: the installed pwsh and a PowerShell runner."""

    pwsh_version: str | None  # None: no pwsh installed
    install_pwsh: Callable[[str], None]  # records an installed pwsh version on the VM
    run_powershell: Callable[[str, str], ScriptOutcome]  # (script, pwsh version) -> outcome
    downloads: dict[str, str] = field(default_factory=dict)  # downloaded .deb path -> pwsh version
    texts: dict[str, str] = field(default_factory=dict)  # file written by cat > path -> its text


@dataclass
class ShellOutcome:
    exit_code: int = 0
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


class BashRun:
    def __init__(self, machine: LinuxMachine) -> None:
        self.machine = machine
        self.errexit = False
        self.outcome = ShellOutcome()
        self.line_number = 0

    def run(self, script: str) -> ShellOutcome:
        lines = script.replace("\r\n", "\n").split("\n")
        try:
            self._block(lines, 0, len(lines))
        except _Exit as done:
            self.outcome.exit_code = done.code
        return self.outcome

    # ------------------------------------------------------------------ structure

    def _block(self, lines: list[str], start: int, end: int) -> None:
        index = start
        while index < end:
            self.line_number = index + 1
            line = lines[index].strip()
            index += 1
            if not line or line.startswith("#"):
                continue
            heredoc = HEREDOC.search(line)
            if heredoc:
                tag = heredoc["tag"]
                close = next((i for i in range(index, end) if lines[i].strip() == tag), None)
                if close is None:
                    self._error(
                        f"warning: here-document at line {index} delimited by end-of-file (wanted `{tag}')"
                    )
                    close = end
                body = "\n".join(lines[index:close])
                index = close + 1
                self._checked(self._command(line[: heredoc.start()].strip(), stdin=body))
                continue
            condition = re.match(r"^if\s+(?P<cond>.+?);\s*then$", line)
            if condition:
                fi = self._matching_fi(lines, index, end)
                # set -e does not apply to the condition; an if whose branch does not run exits 0.
                if self._list(condition["cond"]) == 0:
                    self._block(lines, index, fi)
                else:
                    self.outcome.exit_code = 0
                index = fi + 1
                continue
            self._checked(self._list(line))

    def _matching_fi(self, lines: list[str], start: int, end: int) -> int:
        depth = 0
        for index in range(start, end):
            text = lines[index].strip()
            if re.match(r"^if\s", text):
                depth += 1
            elif text == "fi":
                if depth == 0:
                    return index
                depth -= 1
        self._error(f"{SCRIPT_PATH}: line {end}: syntax error: unexpected end of file")
        raise _Exit(2)

    def _checked(self, status: int) -> None:
        self.outcome.exit_code = status
        if status != 0 and self.errexit:
            raise _Exit(status)

    def _list(self, text: str) -> int:
        """``a || b || c`` (bash runs the next one only when the previous failed); ``! cmd`` negates."""
        status = 1
        for part in (p.strip() for p in text.split("||")):
            negate = part.startswith("! ")
            status = self._command(part[2:].strip() if negate else part)
            if negate:
                status = 0 if status else 1
            if status == 0:
                break
        return status

    # ------------------------------------------------------------------ commands

    def _error(self, message: str) -> None:
        self.outcome.stderr.append(message)

    def _words(self, text: str) -> tuple[list[str], bool, bool, bool]:
        """The command's words with ``$(...)`` substituted, whether stdout / stderr go to /dev/null, and
        whether stdout goes to stderr (``>&2``)."""
        text = re.sub(r"\$\(([^()]*)\)", lambda m: self._capture(m.group(1)), text)
        try:
            words = shlex.split(text, posix=True)
        except ValueError:
            words = text.split()
        quiet_out = quiet_err = to_stderr = False
        kept = []
        for word in words:
            if word in (">/dev/null", "1>/dev/null"):
                quiet_out = True
            elif word == "2>/dev/null":
                quiet_err = True
            elif word == "2>&1":
                quiet_err = quiet_err or quiet_out
            elif word in (">&2", "1>&2"):
                to_stderr = True
            else:
                kept.append(word)
        return kept, quiet_out, quiet_err, to_stderr

    def _capture(self, inner: str) -> str:
        """Command substitution: the inner command's stdout (its stderr still goes to the script's)."""
        saved = self.outcome.stdout
        self.outcome.stdout = []
        self._list(inner)
        captured, self.outcome.stdout = self.outcome.stdout, saved
        return "\n".join(captured)  # exomi's scripts quote a substitution: "$(...)"

    def _command(self, text: str, stdin: str | None = None) -> int:
        words, quiet_out, quiet_err, to_stderr = self._words(text)
        if not words:
            return 0
        out_before, err_before = len(self.outcome.stdout), len(self.outcome.stderr)
        status = self._dispatch(words, stdin)
        if to_stderr:
            self.outcome.stderr.extend(self.outcome.stdout[out_before:])
        if quiet_out or to_stderr:
            del self.outcome.stdout[out_before:]
        if quiet_err:
            del self.outcome.stderr[err_before:]
        return status

    def _dispatch(self, words: list[str], stdin: str | None) -> int:
        name, args = words[0], words[1:]
        if name == "set":
            flags = "".join(a[1:] for a in args if a.startswith("-") and a != "-o")
            self.errexit = self.errexit or "e" in flags
            return 0
        if name in ("true", ":"):
            return 0
        if name == "false":
            return 1
        if name == "exit":
            raise _Exit(int(args[0]) if args and args[0].isdigit() else self.outcome.exit_code)
        if name == "echo":
            self.outcome.stdout.append(" ".join(args))
            return 0
        if name == "[" and args[-1:] == ["]"]:
            return self._test(args[:-1])
        if name == "command" and args[:1] == ["-v"] and len(args) == 2:
            found = args[1] in UBUNTU_COMMANDS or (
                args[1] == "pwsh" and self.machine.pwsh_version is not None
            )
            if found:
                self.outcome.stdout.append(f"/usr/bin/{args[1]}")
            return 0 if found else 1
        if name == "mkdir":
            return 0
        if name == "cat" and stdin is not None and args[:1] == [">"] and len(args) == 2:
            self.machine.texts[args[1]] = stdin
            return 0
        handler = {"curl": self._curl, "apt-get": self._apt_get, "rm": self._rm, "pwsh": self._pwsh}.get(name)
        if handler is None or (name == "pwsh" and self.machine.pwsh_version is None):
            self._error(f"{SCRIPT_PATH}: line {self.line_number}: {name}: command not found")
            return 127
        return handler(args, stdin)

    def _test(self, args: list[str]) -> int:
        if len(args) == 3 and args[1] in ("=", "==", "!="):
            equal = args[0] == args[2]
            return 0 if equal == (args[1] != "!=") else 1
        self._error(f"{SCRIPT_PATH}: line {self.line_number}: [: too many arguments")
        return 2

    def _curl(self, args: list[str], stdin: str | None) -> int:
        output = next((args[i + 1] for i, a in enumerate(args[:-1]) if a == "-o"), None)
        urls = [a for a in args if a.startswith("https://")]
        url = urls[0] if urls else ""
        match = PWSH_DEB_URL.match(url)
        if match is None or match["v"] != match["w"] or match["v"] not in PWSH_RELEASES:
            # curl -f: an HTTP error answer is exit code 22, with this text (-sS shows it).
            self._error("curl: (22) The requested URL returned error: 404")
            return 22
        if output is not None:
            self.machine.downloads[output] = match["v"]
        return 0

    def _apt_get(self, args: list[str], stdin: str | None) -> int:
        if args[:1] == ["update"]:
            return 0
        if args[:1] == ["install"]:
            packages = [a for a in args[1:] if not a.startswith("-")]
            for package in packages:
                version = self.machine.downloads.get(package) if "/" in package else None
                if version is None:
                    self._error(f"E: Unable to locate package {package}")
                    return 100
                self.machine.install_pwsh(version)
                self.machine.pwsh_version = version
                self.outcome.stdout.append(f"Setting up powershell ({version}-1.deb) ...")
            return 0
        self._error(f"E: Invalid operation {args[0] if args else ''}")
        return 100

    def _rm(self, args: list[str], stdin: str | None) -> int:
        for path in (a for a in args if not a.startswith("-")):
            self.machine.downloads.pop(path, None)
            self.machine.texts.pop(path, None)
        return 0

    def _pwsh(self, args: list[str], stdin: str | None) -> int:
        lowered = [a.lower() for a in args]
        if "--version" in lowered or "-version" in lowered or "-v" in lowered:
            self.outcome.stdout.append(f"PowerShell {self.machine.pwsh_version}")
            return 0
        if "-command" in lowered:
            script = args[lowered.index("-command") + 1] if lowered.index("-command") + 1 < len(args) else ""
        elif "-file" in lowered and lowered.index("-file") + 1 < len(args):
            path = args[lowered.index("-file") + 1]
            if path not in self.machine.texts:
                # pwsh's answer to a -File that does not exist (exit code 64, as for a bad argument).
                self._error(
                    f"The argument '{path}' is not recognized as the name of a script file. Check the spelling "
                    "of the name, or if a path was included, verify that the path is correct and try again."
                )
                return 64
            script = self.machine.texts[path]
        else:
            self._error("pwsh: exomi's scripts pass -Command '<script>' or -File <path>")
            return 64
        outcome = self.machine.run_powershell(script, self.machine.pwsh_version or "")
        self.outcome.stdout.extend([*outcome.output, *(f"WARNING: {w}" for w in outcome.warnings)])
        self.outcome.stderr.extend(outcome.errors)
        # pwsh exits 1 when the script ended with a terminating error, 0 otherwise.
        return 0 if outcome.succeeded else 1


def run_bash(script: str, machine: LinuxMachine) -> ShellOutcome:
    return BashRun(machine).run(script)
