"""hwnas's conformance kit on the openvino target: every listed spec this CPU can run."""

from __future__ import annotations

import pytest
from hwnas_openvino.target import OpenVinoTarget


@pytest.mark.parametrize("spec", OpenVinoTarget.listed_specs())
def test_openvino_target_conforms(hwnas_check_target, spec):
    report = hwnas_check_target(spec)
    assert all(m.standalone_error is not None for m in report.models)
