"""Results files: environment facts recorded next to every run."""


def test_results_record_the_git_commit_of_a_checkout():
    import re
    import subprocess
    from pathlib import Path

    import vecgen.reports.writer as w

    root = Path(w.__file__).resolve().parents[3]
    info = w.environment_info()
    if not (root / ".git").exists():  # installed from a wheel: nothing to record
        assert "vecgen_git_commit" not in info
        return
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", info["vecgen_git_commit"])
    assert info["vecgen_git_commit"].split("+")[0] == head
