"""The GitHub workflow files are for users' CI (nothing here runs them): check that they parse and have the shape
GitHub Actions expects, and that they call the project's own scripts."""
from pathlib import Path

import pytest
import yaml

from repro.paths import REPO_ROOT

WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_has_the_shape_github_actions_expects(path: Path):
    doc = yaml.safe_load(path.read_text())
    triggers = doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on:` key as True
    assert doc["name"] and triggers and doc["jobs"]
    for name, job in doc["jobs"].items():
        assert "runs-on" in job and job["steps"], name
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), f"{name}: a step either uses an action or runs a command"
        for need in [job.get("needs")] if isinstance(job.get("needs"), str) else job.get("needs", []):
            assert need in doc["jobs"], f"{name} needs an unknown job {need}"


def test_workflows_call_the_projects_scripts():
    text = {p.name: p.read_text() for p in WORKFLOWS}
    assert "bash .ci/run" in text["ci.yml"] and "deploy-pages" in text["ci.yml"]
    assert "self-hosted" in text["gpu.yml"] and "tests/gpu/check.sh" in text["gpu.yml"]
    assert (REPO_ROOT / "tests" / "gpu" / "check.sh").exists()
