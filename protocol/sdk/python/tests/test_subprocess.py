"""The example extension and the probe as real processes over real pipes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from typing import Any, Callable, Dict, List

import pytest

from extproc import ORCHD_HELLO, PROBE, PYGREET, ExtProcess, of_type, outputs

Spawn = Callable[..., ExtProcess]
ADA = {"who": "Ada"}


# -- handshake (§5) --------------------------------------------------------

def test_handshake(spawn: Spawn) -> None:
    ext = spawn(PYGREET)
    hello = ext.hello()
    assert hello == {"type": "hello", "protocol": 1, "name": "pygreet", "version": "0.1.0",
                     "min_orchd_version": "0.1.0",
                     "actions": ["describe", "validate", "plan", "apply", "destroy"],
                     "features": ["files", "session"]}
    assert ext.finish() == 1  # no action: it cannot continue
    assert "end of input before the action" in ext.stderr


def test_handshake_picks_the_highest_common_version(spawn: Spawn) -> None:
    ext = spawn(PYGREET)
    assert ext.hello(1, 7)["protocol"] == 1


def test_handshake_refuses_incompatible_orchd(spawn: Spawn) -> None:
    ext = spawn(PYGREET)
    ext.send({"type": "hello", "protocol": {"min": 2, "max": 3}, "orchd_version": "9.0.0"})
    err = ext.expect("error")
    assert err == {"type": "error", "retryable": False,
                   "message": "extension pygreet speaks protocol 1..1, orchd offers 2..3"}
    assert ext.wait() == 1
    assert ext.read() is None
    assert "pygreet: extension pygreet speaks protocol 1..1, orchd offers 2..3" in ext.stderr


def test_usage_with_arguments(spawn: Spawn) -> None:
    ext = spawn(PYGREET, "--help")
    assert ext.wait() == 2
    assert ext.read() is None
    assert "an orchd extension" in ext.stderr


def test_manifest_matches_the_declaration() -> None:
    out = subprocess.run([PYGREET, "--manifest"], capture_output=True, check=True)
    with open(PYGREET + ".manifest.json", encoding="utf-8") as f:
        assert json.loads(out.stdout) == json.load(f)


# -- actions (§7) ----------------------------------------------------------

def test_describe(spawn: Spawn) -> None:
    ext = spawn(PYGREET)
    ext.hello()
    ext.action("describe")
    (res,) = ext.until_result()
    assert res["status"] == "success"
    d = res["describe"]
    assert d["type"] == "pygreet" and d["version"] == "0.1.0"
    assert d["actions"] == ["describe", "validate", "plan", "apply", "destroy"]
    assert d["config"]["required"] == ["who"]
    assert ext.finish() == 0


def test_validate_reports_every_error_by_path(spawn: Spawn) -> None:
    ext = spawn(PYGREET)
    ext.hello()
    ext.action("validate", {"whom": "Ada", "greeting": 3})
    msgs = ext.until_result()
    res = msgs[-1]
    assert res["status"] == "failure" and res["changed"] is False
    assert res["errors"] == [
        {"path": "who", "message": "is required"},
        {"path": "whom", "message": "unknown key 'whom' (did you mean 'who'?)"},
        {"path": "greeting", "message": "must be a string"},
    ]
    assert res["summary"] == "invalid configuration: who: is required (and 2 more)"
    # §7.2: each error is also logged at level error
    assert [m["message"] for m in of_type(msgs, "log") if m["level"] == "error"] == [
        "who: is required", "unknown key 'whom' (did you mean 'who'?)",
        "greeting: must be a string"]
    assert ext.finish() == 0


def test_validate_ok_and_unknown_values(spawn: Spawn) -> None:
    ext = spawn(PYGREET)
    ext.hello()
    ext.action("validate", {"who": "${{ exec.a.outputs.name }}"})
    assert ext.until_result()[-1] == {"type": "result", "status": "success", "changed": False,
                                      "summary": "configuration is valid"}
    assert ext.finish() == 0


def run_one(spawn: Spawn, action: str, config: Any, state: Any = None,
            path: str = PYGREET) -> List[Dict[str, Any]]:
    ext = spawn(path)
    ext.hello()
    ext.action(action, config, state)
    msgs = ext.until_result()
    assert ext.finish() == 0
    return msgs


def test_plan(spawn: Spawn) -> None:
    res = run_one(spawn, "plan", ADA)[-1]
    assert res["changed"] is True and res["summary"] == "would greet Ada"
    same = {"who": "Ada", "greeting": "hello", "runs": 1}
    res = run_one(spawn, "plan", ADA, same)[-1]
    assert res["changed"] is False and res["summary"] == "no change"


def test_apply_then_apply_again_is_idempotent(spawn: Spawn, tmp_path: Any) -> None:
    first = run_one(spawn, "apply", ADA)
    assert outputs(first) == {"message": "hello, Ada", "runs": 1}
    (state,) = of_type(first, "state")
    assert state["state"] == {"who": "Ada", "greeting": "hello", "runs": 1}
    assert first[-1] == {"type": "result", "status": "success", "changed": True,
                         "summary": "greeted Ada"}
    assert of_type(first, "progress")[0]["percent"] == 50
    assert (tmp_path / "greeting.txt").read_text() == "hello, Ada\n"

    second = run_one(spawn, "apply", ADA, state["state"])
    assert outputs(second) == {"message": "hello, Ada", "runs": 2}
    assert second[-1]["status"] == "success" and second[-1]["changed"] is False


def test_destroy_sends_null_state_and_is_idempotent(spawn: Spawn) -> None:
    msgs = run_one(spawn, "destroy", ADA, {"who": "Ada", "greeting": "hello", "runs": 2})
    assert of_type(msgs, "state") == [{"type": "state", "state": None}]
    assert msgs[-1]["changed"] is True
    again = run_one(spawn, "destroy", ADA, None)
    assert of_type(again, "state") == [{"type": "state", "state": None}]
    assert again[-1] == {"type": "result", "status": "success", "changed": False,
                         "summary": "nothing to destroy"}


def test_session_runs_actions_in_one_process(spawn: Spawn) -> None:
    ext = spawn(PYGREET)
    ext.hello()
    ext.action("validate", ADA)
    assert ext.until_result()[-1]["status"] == "success"
    time.sleep(0.2)
    assert ext.lines.empty()  # §7.6: nothing on stdout between actions
    ext.action("apply", ADA)
    msgs = ext.until_result()
    assert outputs(msgs)["runs"] == 1
    ext.action("plan", ADA, {"who": "Ada", "greeting": "hello", "runs": 1})
    assert ext.until_result()[-1]["changed"] is False
    assert ext.finish() == 0


def test_session_ends_on_cancel_between_actions(spawn: Spawn) -> None:
    ext = spawn(PYGREET)
    ext.hello()
    ext.action("validate", ADA)
    ext.until_result()
    ext.send({"type": "cancel", "reason": "interrupted"})
    assert ext.wait() == 0
    assert ext.read() is None


def test_signal_between_actions_ends_the_session(spawn: Spawn) -> None:
    ext = spawn(PYGREET)
    ext.hello()
    ext.action("validate", ADA)
    ext.until_result()
    ext.signal(signal.SIGTERM)
    assert ext.wait() == 0


def test_values_in_files(spawn: Spawn, tmp_path: Any) -> None:
    # §4.1 inbound: config and state in files of the workdir
    (tmp_path / "c.json").write_text(json.dumps({"who": "Bob", "greeting": "hi"}))
    (tmp_path / "s.json").write_text("\n  null \n")
    ext = spawn(PYGREET)
    ext.hello()
    ext.action("apply", config_file=str(tmp_path / "c.json"),
               state_file=str(tmp_path / "s.json"))
    assert outputs(ext.until_result())["message"] == "hi, Bob"
    assert ext.finish() == 0


def test_large_values_go_out_in_files(spawn: Spawn, tmp_path: Any) -> None:
    msgs = run_one(spawn, "apply", {"mode": "big", "size": 2 * 1024 * 1024}, path=PROBE)
    (state,) = of_type(msgs, "state")
    assert "state" not in state
    with open(os.path.join(str(tmp_path), state["file"]), encoding="utf-8") as f:
        assert json.load(f) == {"blob": "x" * 2 * 1024 * 1024}
    blob = [m for m in of_type(msgs, "output") if m["key"] == "blob"][0]
    assert "file" in blob and "value" not in blob
    assert outputs(msgs)["small"] == 2 * 1024 * 1024  # small ones stay inline


# -- outputs, secrets, errors ----------------------------------------------

def test_secrets_and_mask(spawn: Spawn) -> None:
    msgs = run_one(spawn, "apply", {"mode": "secret"}, path=PROBE)
    types = [m["type"] for m in msgs]
    assert types.index("mask") < types.index("log")  # masked before it is printed
    assert [m for m in of_type(msgs, "output") if m["key"] == "token"] == [
        {"type": "output", "key": "token", "value": "tok-123", "secret": True}]
    assert of_type(msgs, "state") == [
        {"type": "state", "state": {"token": "tok-123"}, "secret": True}]


def test_failure_retryable_with_state(spawn: Spawn) -> None:
    msgs = run_one(spawn, "apply", {"mode": "fail"}, path=PROBE)
    assert of_type(msgs, "state")[0]["state"] == {"half": True}
    assert of_type(msgs, "error") == [{"type": "error", "message": "boom", "retryable": True}]
    assert msgs[-1] == {"type": "result", "status": "failure", "changed": True,
                        "summary": "boom"}


def test_crash_is_a_failure_result(spawn: Spawn) -> None:
    ext = spawn(PROBE)
    ext.hello()
    ext.action("apply", {"mode": "crash"})
    res = ext.until_result()[-1]
    assert res["status"] == "failure" and res["summary"] == "KeyError: 'missing'"
    assert ext.finish() == 0
    assert "Traceback" in ext.stderr


def test_logging_module_becomes_log_messages(spawn: Spawn) -> None:
    msgs = run_one(spawn, "apply", {"mode": "logging"}, path=PROBE)
    assert [(m["level"], m["message"]) for m in of_type(msgs, "log")] == [
        ("info", "info via logging"), ("warning", "warning via logging"),
        ("error", "error via logging")]


def test_threads_may_log(spawn: Spawn) -> None:
    msgs = run_one(spawn, "apply", {"mode": "thread"}, path=PROBE)
    assert len(of_type(msgs, "log")) == 50


def test_nothing_but_protocol_on_stdout(spawn: Spawn) -> None:
    ext = spawn(PROBE)
    ext.hello()
    ext.action("apply", {"mode": "print"})
    msgs = ext.until_result()  # every stdout line is checked to be a message
    assert msgs[-1]["status"] == "success"
    assert outputs(msgs)["child_stdin"] == ""  # a child cannot read orchd's messages
    assert ext.finish() == 0
    for text in ("stray print from the author", "stray output of a child",
                 "raw write on fd 1", "to sys.stdout"):
        assert text in ext.stderr


def test_previous_outputs_and_state_reach_the_handler(spawn: Spawn) -> None:
    ext = spawn(PROBE)
    ext.hello()
    ext.action("apply", {}, state={"n": 1}, outputs={"b": 1, "a": 2})
    got = outputs(ext.until_result())
    assert got["outputs_seen"] == ["a", "b"] and got["state_seen"] == {"n": 1}
    assert ext.finish() == 0


# -- requests (§6.3) -------------------------------------------------------

SRC = {"url": "https://example.invalid/t.tgz", "sha256": "ab" * 32}


def test_fetch_request_and_response(spawn: Spawn) -> None:
    ext = spawn(PROBE)
    ext.hello()
    ext.action("apply", {"mode": "fetch", "source": SRC})
    req = ext.expect("request")
    assert req["op"] == "fetch" and req["source"] == SRC and req["id"] >= 0
    ext.send({"type": "response", "id": req["id"], "ok": True,
              "result": {"type": "url", "path": "t.tgz", "sha256": "ab" * 32}})
    msgs = ext.until_result()
    assert outputs(msgs)["fetched"] == {"type": "url", "path": "t.tgz", "sha256": "ab" * 32}
    assert ext.finish() == 0


def test_fetch_refused(spawn: Spawn) -> None:
    ext = spawn(PROBE)
    ext.hello()
    ext.action("apply", {"mode": "fetch", "source": {"git": "file:///etc", "ref": "main"}})
    req = ext.expect("request")
    ext.send({"type": "response", "id": req["id"], "ok": False,
              "error": "source not allowed: 'git' must start with http://, https:// or git://"})
    res = ext.until_result()[-1]
    assert res["status"] == "failure"
    assert res["summary"] == ("fetch refused: source not allowed: 'git' must start with "
                              "http://, https:// or git://")
    assert ext.finish() == 0


def test_cancel_while_waiting_for_a_response(spawn: Spawn) -> None:
    ext = spawn(PROBE)
    ext.hello()
    ext.action("apply", {"mode": "fetch", "source": SRC})
    ext.expect("request")
    ext.send({"type": "cancel", "reason": "interrupted"})
    assert ext.until_result(3)[-1] == {"type": "result", "status": "failure",
                                       "summary": "cancelled"}
    assert ext.wait() == 0


# -- cancellation (§9) -----------------------------------------------------

@pytest.mark.parametrize("how", ["cancel", "SIGTERM", "SIGINT", "both"])
def test_cancel_during_apply(spawn: Spawn, how: str) -> None:
    ext = spawn(PROBE)
    ext.hello()
    ext.action("apply", {"mode": "sleep"})
    assert ext.expect("log")["message"] == "started"
    start = time.monotonic()
    if how in ("cancel", "both"):
        ext.send({"type": "cancel", "reason": "timeout"})
    if how in ("SIGTERM", "both"):
        ext.signal(signal.SIGTERM)
    if how == "SIGINT":
        ext.signal(signal.SIGINT)
    msgs = ext.until_result(5)
    assert time.monotonic() - start < 2  # well within orchd's grace (10 s by default)
    assert msgs[-1] == {"type": "result", "status": "failure", "summary": "cancelled"}
    # the reason: the message's, even when the signal overtakes it (as under orchd)
    assert of_type(msgs, "log")[0]["message"] == "cleanup after %s" % (
        "timeout" if how in ("cancel", "both") else "interrupted")
    assert of_type(msgs, "state") == [{"type": "state", "state": {"half": True}}]
    assert ext.wait() == 0  # §9.2: then exit 0, without waiting for EOF


def test_cancel_stops_a_child_process(spawn: Spawn) -> None:
    ext = spawn(PROBE)
    ext.hello()
    ext.action("apply", {"mode": "child"})
    ext.expect("log")
    ext.send({"type": "cancel", "reason": "interrupted"})
    assert ext.until_result(5)[-1]["summary"] == "cancelled"
    assert ext.wait() == 0
    ps = subprocess.run(["ps", "-o", "pid=,args=", "-s", str(ext.proc.pid)],
                        capture_output=True, text=True)
    assert "sleep 60" not in ps.stdout


def test_signal_before_the_action(spawn: Spawn) -> None:
    ext = spawn(PYGREET)
    ext.hello()
    ext.signal(signal.SIGTERM)
    assert ext.wait() == 1
    assert ext.read() is None
    assert "cancelled before the action" in ext.stderr


# -- broken input ----------------------------------------------------------

def test_garbage_instead_of_hello(spawn: Spawn) -> None:
    ext = spawn(PYGREET)
    ext.send_raw(b"this is not JSON\n")
    assert ext.wait() == 1
    assert ext.read() is None  # not even a hello
    assert "protocol error: input is not a JSON object" in ext.stderr


def test_invalid_message_instead_of_hello(spawn: Spawn) -> None:
    ext = spawn(PYGREET)
    ext.send_raw(b'{"type":"hello","protocol":{"min":2,"max":1},"orchd_version":"0.1.0"}\n')
    assert ext.wait() == 1
    assert "protocol error: hello: field 'protocol' must satisfy 1 <= min <= max" in ext.stderr


def test_empty_lines_are_ignored(spawn: Spawn) -> None:
    ext = spawn(PYGREET)
    ext.send_raw(b"\n  \r\n\t\n")
    ext.hello()
    ext.send_raw(b"\n")
    ext.action("validate", ADA)
    assert ext.until_result()[-1]["status"] == "success"
    assert ext.finish() == 0


def test_line_too_long(spawn: Spawn) -> None:
    ext = spawn(PYGREET)
    ext.send_raw(b"x" * (1048576 + 10))
    assert ext.wait() == 1
    assert "protocol error: line exceeds 1048576 bytes" in ext.stderr


def test_garbage_during_an_action(spawn: Spawn) -> None:
    ext = spawn(PROBE)
    ext.hello()
    ext.action("apply", {"mode": "sleep"})
    ext.expect("log")
    ext.send_raw(b"[1, 2]\n")
    res = ext.until_result(5)[-1]
    assert res == {"type": "result", "status": "failure",
                   "summary": "protocol error: input is not a JSON object"}
    assert ext.wait() == 1
    assert "protocol error: input is not a JSON object" in ext.stderr


def test_unexpected_message_between_actions(spawn: Spawn) -> None:
    ext = spawn(PYGREET)
    ext.hello()
    ext.action("validate", ADA)
    ext.until_result()
    ext.send({"type": "hello", "protocol": {"min": 1, "max": 1}, "orchd_version": "0.1.0"})
    assert ext.wait() == 1
    assert "protocol error: expected action, got hello" in ext.stderr


# -- closed stdin ----------------------------------------------------------

def test_closed_stdin_before_hello(spawn: Spawn) -> None:
    ext = spawn(PYGREET)
    ext.close_stdin()
    assert ext.wait() == 1
    assert ext.read() is None
    assert "end of input before hello" in ext.stderr


def test_closed_stdin_during_an_action_is_a_cancel(spawn: Spawn) -> None:
    ext = spawn(PROBE)
    ext.hello()
    ext.action("apply", {"mode": "sleep"})
    ext.expect("log")
    ext.close_stdin()
    msgs = ext.until_result(5)
    assert of_type(msgs, "log")[0]["message"] == "cleanup after eof"
    assert msgs[-1]["summary"] == "cancelled"
    assert ext.wait() == 0


def test_closed_stdout_stops_the_extension(tmp_path: Any) -> None:
    # orchd stopped listening (§9.5): the next write fails, the action is
    # cancelled, the extension exits (no ExtProcess: its reader owns stdout)
    proc = subprocess.Popen([PROBE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, cwd=str(tmp_path))
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(json.dumps(ORCHD_HELLO).encode() + b"\n" + json.dumps(
            {"type": "action", "action": "apply", "instance": "t", "stack": "s",
             "config": {"mode": "sleep"}, "state": None, "outputs": {},
             "workdir": str(tmp_path)}).encode() + b"\n")
        proc.stdin.flush()
        assert json.loads(proc.stdout.readline())["type"] == "hello"
        assert json.loads(proc.stdout.readline())["message"] == "started"
        proc.stdout.close()
        proc.send_signal(signal.SIGTERM)  # its cleanup writes: EPIPE
        assert proc.wait(5) == 1
    finally:
        proc.kill()
        proc.wait()
