"""The demo's targets table: each target computed from the rows, met or not, never silently skipped."""

from interlingua.demo import _median, targets
from interlingua.translate.results import TranslationResult


def row(fid, fid_ood, rec, passed=(True, True)):
    controls = {"shuffled_pairing": {"kind": "must_fail", "passed": passed[0]},
                "label_shuffle": {"kind": "must_fail", "passed": passed[1]},
                "synthetic_target": {"kind": "positive", "passed": False}}
    return TranslationResult.from_json({"test": {"fidelity": fid, "recovery": rec}, "ood": {"fidelity": fid_ood},
                                        "controls": controls})


def test_targets_are_measured_from_the_rows():
    rows = [row(0.95, 0.85, 1.0), row(0.91, None, 0.9), row(0.5, 0.7, None, passed=(False, True))]
    t = {x.target: x for x in targets(rows)}
    assert t["median fidelity test"].measured == 0.91 and t["median fidelity test"].met
    assert t["median fidelity ood"].measured == (0.85 + 0.7) / 2 and t["median fidelity ood"].rows == "2 of 3"
    assert not t["median fidelity ood"].met
    assert t["median recovery test"].measured == 0.95 and t["median recovery test"].rows == "2 of 3"
    must = t["must-fail controls with p <= 0.01"]
    assert must.measured == "5/6" and not must.met  # the positive control is not counted among them


def test_median():
    assert _median([3, 1, 2]) == 2 and _median([4, 1, 2, 3]) == 2.5 and _median([None]) is None
