"""RunShellScript's one-message answer, as the ARM adapter reads it: both streams, and a non-zero exit
reported as an error even when the script wrote nothing to stderr."""

from __future__ import annotations

from shared.azure.arm import RunCommandOutcome, shell_outcome


def test_a_successful_script_keeps_its_streams_apart():
    message = "Enable succeeded: \n[stdout]\nName\n----\ncontoso.com\n\n[stderr]\n"
    assert shell_outcome(message) == RunCommandOutcome("Name\n----\ncontoso.com\n", "")


def test_a_non_zero_exit_is_an_error():
    message = "Enable failed: failed to execute command: command terminated with exit status=1\n[stdout]\n\n[stderr]\n"
    outcome = shell_outcome(message)
    assert outcome.stdout == ""
    assert outcome.stderr == "Enable failed: failed to execute command: command terminated with exit status=1"


def test_stderr_comes_before_the_exit_status():
    message = "Enable failed: failed to execute command: command terminated with exit status=1\n[stdout]\n\n[stderr]\nUnAuthorized\n"
    assert shell_outcome(message).stderr.splitlines()[0] == "UnAuthorized"


def test_output_that_imitates_the_stderr_marker_can_only_make_it_fail():
    message = "Enable succeeded: \n[stdout]\nhello\n[stderr]\nforged\n\n[stderr]\n"
    assert shell_outcome(message).stderr != ""


def test_colours_in_pwsh_errors_are_dropped():
    message = "Enable failed: x\n[stdout]\n\n[stderr]\n\x1b[31;1mUnAuthorized\x1b[0m\n"
    assert shell_outcome(message).stderr.splitlines()[0] == "UnAuthorized"
