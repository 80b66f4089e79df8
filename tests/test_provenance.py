"""The provenance record: which code made a result."""

import subprocess

from tsf import provenance


def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_code_names_the_commit_and_whether_tracked_files_changed(tmp_path):
    assert provenance.code(tmp_path) is None  # not a git checkout (an installed wheel)
    _git(tmp_path, "init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    _git(tmp_path, "add", "a.py")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert provenance.code(tmp_path) == {"commit": head.strip(), "modified": False}
    (tmp_path / "untracked.txt").write_text("not part of the code")
    assert provenance.code(tmp_path)["modified"] is False
    (tmp_path / "a.py").write_text("x = 2\n")
    assert provenance.code(tmp_path)["modified"] is True


def test_every_result_starts_with_the_same_fields():
    record = provenance.provenance(["python", "-m", "tsf", "bench"])
    assert set(record) == {"date", "command", "code", "machine"}
    assert record["command"] == "python -m tsf bench"
