"""First-epoch gradient ascent's claims over seeds (modality/text/claims.py): verdicts follow the interval, not the mean."""
import pandas as pd

from memunlearn.modality.text.claims import first_epoch_ga_claims


def rows(first_emb, last_emb, first_all=(9.0, 9.0, 9.0), head=(12.0, 12.1, 11.9), ppl=(0.02, 0.03, 0.04)):
    out = []
    for seed in range(3):
        for source, layers, exposure, mib in (("first_epoch", "embedding", first_emb[seed], 2.8),
                                              ("last_epoch", "embedding", last_emb[seed], 2.8),
                                              ("first_epoch", "all", first_all[seed], 226.7),
                                              ("first_epoch", "head", head[seed], 54.4)):
            out.append({"seed": seed, "source": source, "layers": layers, "exposure_16x": exposure,
                        "exposure_1x": 1.0, "val_ppl_change": ppl[seed] if layers == "embedding" else 0.3,
                        "stored_mib": mib})
    return pd.DataFrame(out)


def verdicts(table):
    return dict(zip(table["claim"], table["verdict"]))


def test_verdicts_follow_the_confidence_interval():
    original = pd.Series([12.0, 12.0, 12.0])
    clear = verdicts(first_epoch_ga_claims(rows((5.0, 5.2, 4.9), (9.0, 9.3, 8.8)), original))
    assert clear["first_epoch_beats_last_epoch[embedding]"] == "supported"
    assert clear["embedding_halves_space"] == "supported"
    assert clear["output_layer_has_no_impact"] == "supported"
    assert clear["calibration_keeps_validation"] == "supported"
    assert clear["embedding_on_par_with_all_layers"] == "supported"  # 4 bits lower than all layers
    reversed_ = verdicts(first_epoch_ga_claims(rows((9.0, 9.3, 8.8), (5.0, 5.2, 4.9), first_all=(4.0, 4.1, 3.9)), original))
    assert reversed_["first_epoch_beats_last_epoch[embedding]"] == "contradicted"
    assert reversed_["embedding_on_par_with_all_layers"] == "contradicted"  # 5 bits above all layers
    noisy = verdicts(first_epoch_ga_claims(rows((3.0, 12.0, 7.0), (7.0, 7.5, 6.5)), original))
    assert noisy["first_epoch_beats_last_epoch[embedding]"] == "inconclusive"


def test_finding_1_compares_first_with_all_epochs_and_keeps_the_last_epoch_control_apart():
    """The paper's comparison (first- vs all-epochs gradients) is its own row; last-epoch gradients stay a
    labelled control: each row reads its own source, so opposite results give opposite verdicts."""
    table = rows((5.0, 5.2, 4.9), (3.0, 3.1, 2.9))
    every = table[(table["source"] == "first_epoch") & (table["layers"] == "embedding")].assign(
        source="all_epochs", exposure_16x=[9.0, 9.4, 8.9])
    found = first_epoch_ga_claims(pd.concat([table, every]), pd.Series([12.0, 12.0, 12.0])).set_index("claim")
    assert found.loc["first_epoch_beats_all_epochs[embedding]", "verdict"] == "supported"
    assert abs(found.loc["first_epoch_beats_all_epochs[embedding]", "effect"] - (9.1 - 5.0333)) < 1e-3
    assert found.loc["first_epoch_beats_last_epoch[embedding]", "verdict"] == "contradicted"
    assert found.loc["first_epoch_beats_last_epoch[embedding]", "effect_means"].startswith(
        "control, not the paper's comparison")
    assert (found["finding"].loc[["first_epoch_beats_all_epochs[embedding]",
                                  "first_epoch_beats_last_epoch[embedding]"]] == 1).all()
    assert "first_epoch_beats_all_epochs[all]" not in found.index  # no all-epochs cell on that layer set
