"""The demo's targets table: each target computed from the rows, met or not, never silently skipped."""

from interlingua.demo import _median, targets


def row(kind, rec, rec_ood, top1, shuffled=True, rand_rec=None):
    controls = {"shuffled_pairing": {"passed": shuffled}, "label_shuffle": {"passed": True}}
    if rand_rec is not None:
        controls["random_init_target"] = {"recovery": rand_rec, "passed": True}
    return {"kind": kind, "recovery_test": rec, "recovery_ood": rec_ood, "controls": controls,
            "retrieval": {"top1": top1, "chance_top1": 0.0435}}


def test_targets_are_measured_from_the_rows():
    rows = [row("lexical", 1.0, 0.9, True), row("lexical", 0.9, 0.8, False),
            row("order-sensitive", 0.3, None, False, shuffled=False, rand_rec=0.25),
            row("order-sensitive", 0.5, 0.1, False, rand_rec=0.05)]
    t = {x["target"]: x for x in targets(rows)}
    assert t["median recovery, test"]["measured"] == 0.7 and t["median recovery, test"]["met"]
    assert t["median recovery, OOD"]["measured"] == 0.8  # None (native at chance) is left out
    assert t["top-1 direction retrieval, lexical"]["measured"] == 0.5 and t["top-1 direction retrieval, lexical"]["met"]
    assert "top-1 direction retrieval, contextual" not in t  # no contextual rows: no made-up number
    assert t["must-fail controls inside their null band"]["measured"] == "7/8"
    assert not t["must-fail controls inside their null band"]["met"]
    assert t["random-init B recovery, order-sensitive"]["measured"] == 0.25
    assert not t["random-init B recovery, order-sensitive"]["met"]


def test_median():
    assert _median([3, 1, 2]) == 2 and _median([4, 1, 2, 3]) == 2.5 and _median([None]) is None
