"""``medseg serve keys`` and ``medseg serve``'s refusals, from the command line."""

from __future__ import annotations

from medseg.serve.keys import KeyStore


def test_keys_are_added_listed_and_revoked(tmp_path, run_cli):
    data = tmp_path / "data"
    code, out, err = run_cli(["serve", "keys", "add", "alice", "--data", data])
    assert code == 0, err
    key = out.strip().splitlines()[-1]
    assert key.startswith("msk_") and " " not in key
    assert KeyStore(data).verify(key).name == "alice"
    code, out, _ = run_cli(["serve-keys", "add", "ops", "--role", "admin", "--data", data])
    assert code == 0 and KeyStore(data).verify(out.strip().splitlines()[-1]).admin
    code, out, _ = run_cli(["serve", "keys", "list", "--data", data])
    assert code == 0 and "alice  user" in out and "ops  admin" in out and "msk_" not in out
    code, _, err = run_cli(["serve", "keys", "add", "alice", "--data", data])
    assert code == 2 and "exists" in err
    code, _, err = run_cli(["serve", "keys", "revoke", "--data", data])
    assert code == 2 and "give the key's NAME" in err
    assert run_cli(["serve", "keys", "revoke", "alice", "--data", data])[0] == 0
    assert KeyStore(data).verify(key) is None


def test_serve_refuses_what_it_cannot_serve(tmp_path, run_cli, untrained_run_dir):
    code, _, err = run_cli(["serve", tmp_path / "nope", "--data", tmp_path / "d"])
    assert code == 2 and "run folder not found" in err
    twice = [f"a={untrained_run_dir}", f"a={untrained_run_dir}"]
    code, _, err = run_cli(["serve", *twice, "--data", tmp_path / "d"])
    assert code == 2 and "two models named 'a'" in err
