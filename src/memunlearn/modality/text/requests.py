"""Deletion requests on a language model (docs/requests.md "Text runs"): the oracle-free gates for sequences and
canary exposure before and after, for the text modality's ``request_gates``; a version's plan scores without exact
ones (``final_model_scores``).

A sequence's membership score is its mean next-token log-likelihood under the model (−loss; its exp is the
geometric-mean token probability, a sequence's "true-class probability"). The gates, as requests/gates.py's on images:

(a) membership audit: AUC of −loss on F's distinct sequences (a canary's copies are one) against a reference sample,
    on the candidate; F must look like the reference: |AUC − 0.5| <= ``requests.audit_margin``, or 0.5 within the
    AUC's 95% bootstrap CI (a request of two canaries is two samples: a retrain's AUC on them is about as likely
    anywhere in [0, 1]); reported with the AUC the starting model had on the same samples and the attack's power
    there (retain vs held-out sequences);
(b) utility: validation perplexity after / before − 1 <= ``requests.max_perplexity_increase``;
(c) no over-forgetting: F's mean loss − the reference's mean loss <= ``requests.max_overforgetting_loss`` (nats);
(d) canary exposure, when the request names canaries: each one's exposure after is one a model that never saw its
    secret gives with chance at least ``requests.exposure_alpha`` / (2n), either way (``exposure_gate``).

The reference stands for F under a retrain, ``heldout_per_example`` sequences per forgotten one:
- a canary copy: the canary template filled with random secrets no canary of D holds. A retrain on D without the
  canary has seen the template (the other canaries) but not the secret, so it treats the forgotten canary as any
  unseen filling; no corpus sequence is as predictable as a template, so held-out text cannot stand in (a retrain of
  the text preset without two 16-copy canaries puts them at 1.0 nats, the most predictable held-out text at 2);
- a corpus sequence (``requests.reference: retrain``): the memorize stage's leave-group-out models give it an
  out-of-subset log-likelihood ``ll_out``; its rank in D by ``ll_out`` picks the held-out sequence at the same rank by
  the starting model's −loss (which never saw held-out sequences), as images match by out-of-subset accuracy
  (requests/gates.py ``retrain_matched``); without it (``reference: class``, memorize not run, a sequence in every
  subset model), held-out sequences at random. The report names the reference.

Exposure (Carlini et al. 2019, modality/text/evaluation.py) is measured for every canary one of whose copies the
request names; a canary's other copies, if the request leaves them, keep it exposed (gate (d) then fails).
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch

from ...config import ConfigError
from ...data.text import TextSplit
from ...requests.gates import Gate, OutOfSubset, auc, auc_ci, out_of_subset, retrain_matched
from ...seeding import derive_seed
from ..base import RequestCheck
from .evaluation import canary_exposures, metrics_of
from .lm import score_sequences

SEQUENCE_PROXIES = ("final_confidence", "final_loss")  # read p_y alone: a sequence's is exp(−mean token loss)
OUT_OF_SUBSET = "ll_out"  # the text memorize table's mean token log-likelihood of the models that left it out


def sequence_proxy(model, train, pad_id: int, proxy: str) -> pd.Series:
    """``proxy`` of ``model`` over ``train`` by example_id (higher = more memorized): the registered image proxy's
    formula and direction applied to each sequence's geometric-mean token probability."""
    from ...memorization.proxies.base import PROXIES

    if proxy not in SEQUENCE_PROXIES:
        raise ConfigError(f"requests.proxy: {proxy!r} reads class probabilities, which a language model has none of; "
                          f"on a text run choose one of: {', '.join(SEQUENCE_PROXIES)}")
    scores = score_sequences(model, train, pad_id)
    entry = PROXIES.get(proxy)
    raw = np.asarray(entry.compute(SimpleNamespace(final_true_prob=np.exp(-scores["loss"].to_numpy()))))
    return pd.Series(entry.direction * raw, index=pd.Index(scores["example_id"].to_numpy(), name="example_id"))


def random_heldout(count: int, heldout, per_example: int, seed: int) -> np.ndarray:
    """Indices into ``heldout``, ``per_example`` per forgotten sequence without a retrain stand-in, drawn at random
    (with replacement where the split is smaller): text has no class to match."""
    rng = np.random.default_rng(derive_seed(seed, "requests/random_heldout"))
    n = count * per_example
    return rng.choice(len(heldout), n, replace=len(heldout) < n) if n else np.zeros(0, dtype=np.int64)


def canary_fillings(count: int, data, seed: int) -> TextSplit:
    """``count`` sequences of the canary template filled with random secrets that no canary of D holds, encoded as
    the prepare stage encodes a canary: a canary as a model that never saw it (but saw the other canaries) sees it.
    Their example ids are negative: they are no example of D."""
    from ...data.corpus import load_tokenizer
    from ...data.text_prepare import record_sequences

    digits = data.canary_digits
    taken = {int(s) for s in data.canaries["secret"]}  # the CSV may have read "053" as 53: compare as numbers
    rng = np.random.default_rng(derive_seed(seed, "requests/canary_fillings"))
    secrets: list[int] = []
    while len(secrets) < count:  # rejection: D holds a handful of secrets among 10**digits
        draw = int(rng.integers(10 ** digits))
        if draw not in taken or len(taken) >= 10 ** digits:
            secrets.append(draw)
    texts = [data.canary_template.format(f"{s:0{digits}d}") for s in secrets]
    tokens, _ = record_sequences(texts, load_tokenizer(data.tokenizer_json), data.info.seq_len, data.info.pad_id,
                                 data.info.eos_id)
    return TextSplit(tokens, torch.arange(-count, 0, dtype=torch.int64))


def reference_of(forget, heldout, start_heldout_ll: np.ndarray, out: OutOfSubset | None, data, config
                 ) -> tuple[TextSplit, str]:
    """The sequences standing for F under a retrain, ``heldout_per_example`` per forgotten sequence, and what they
    are in words: for a canary copy, unseen fillings of its template; for corpus text, held-out sequences matched
    by out-of-subset log-likelihood (``reference: retrain`` where the exact scores have it), else at random."""
    per, seed = config.heldout_per_example, config.seed
    canary = np.isin(forget.example_ids.numpy(), data.canary_ids)  # (|F|,)
    known = ~canary & (np.isfinite(out.forget) if config.reference == "retrain" and out is not None
                       else np.zeros(len(forget), dtype=bool))  # (|F|,) corpus sequences with a retrain stand-in
    unknown = ~canary & ~known
    parts, words = [], []
    if canary.any():
        parts.append(canary_fillings(int(canary.sum()) * per, data, seed))
        words.append(f"unseen fillings of the canary template for {canary.sum()} canaries")
    if known.any():
        parts.append(heldout.take(retrain_matched(OutOfSubset(out.forget[known], out.train), start_heldout_ll, per,
                                                  seed)))
        words.append(f"held-out sequences matched by out-of-subset log-likelihood for {known.sum()}")
    if unknown.any():
        parts.append(heldout.take(random_heldout(int(unknown.sum()), heldout, per, seed)))
        words.append(f"random held-out sequences for {unknown.sum()} (no out-of-subset model)")
    reference = parts[0]
    for part in parts[1:]:
        reference = reference.concat(part)
    return reference, "; ".join(words)


def exposure_rows(start, candidate, forget, data) -> list[dict]:
    """Per canary with a copy in ``forget``: its copies, those forgotten now, exposure before and after (bits) and
    the chance that a model that never saw the secret exposes it at least as much (2^-exposure after)."""
    from ...data.corpus import load_tokenizer

    named = data.canaries[data.canaries["example_id"].isin(forget.example_ids.numpy())]
    if named.empty:
        return []
    tokenizer = load_tokenizer(data.tokenizer_json)
    canaries = data.canaries[data.canaries["canary"].isin(named["canary"])]
    before, after = (canary_exposures(m, tokenizer, canaries, data.canary_template, data.canary_digits)
                     .set_index("canary")["exposure"] for m in (start, candidate))
    forgotten = named.groupby("canary").size()
    copies = canaries.groupby("canary").size()
    # a model that never saw a secret ranks it uniformly among the fillings: exposure >= e with chance 2^-e
    return [{"canary": int(c), "copies": int(copies[c]), "copies_forgotten": int(forgotten[c]),
             "exposure_before": float(before[c]), "exposure_after": float(after[c]),
             "p_if_never_seen": float(2.0 ** -after[c])} for c in sorted(forgotten.index)]


def request_gates(start, candidate, forget, retain, data, device, config, exact: pd.DataFrame | None
                  ) -> RequestCheck:
    """The gates on sequences ((d) when F holds canaries), their figures and the canaries' exposure table (module
    docstring). The audit and F's loss count each distinct sequence of F once (a canary's copies are one)."""
    pad = data.info.pad_id
    heldout = data.validation if data.validation is not None else data.test
    members = retain.take(np.random.default_rng(derive_seed(config.seed, "requests/members")).choice(
        len(retain), min(len(retain), len(heldout)), replace=False))
    scored = {}  # (model, split name) -> score_sequences table: each split forwarded once per model

    def table(which: str, name: str, split) -> pd.DataFrame:
        if (which, name) not in scored:
            scored[which, name] = score_sequences(start if which == "before" else candidate, split, pad)
        return scored[which, name]

    def ll(which, name, split) -> np.ndarray:  # (N,) −mean token loss: the attack's score, higher = member
        return -table(which, name, split)["loss"].to_numpy()

    heldout_ll = ll("before", "heldout", heldout)
    calibration = auc(ll("before", "members", members), heldout_ll)
    # F's distinct sequences: a canary's copies are one sequence with one loss, not independent samples
    distinct = forget.take(np.sort(np.unique(forget.tokens.numpy(), axis=0, return_index=True)[1]))
    matched, reference = reference_of(distinct, heldout, heldout_ll, out_of_subset(
        exact, distinct.example_ids.numpy(), OUT_OF_SUBSET), data, config)
    forget_ll, matched_ll = ll("after", "forget", distinct), ll("after", "matched", matched)
    audit = auc(forget_ll, matched_ll)
    low, high = auc_ci(forget_ll, matched_ll, config.seed)
    audit_before = auc(ll("before", "forget", distinct), ll("before", "matched", matched))
    ppl_before = metrics_of(table("before", "heldout", heldout))["perplexity"]
    ppl_after = metrics_of(table("after", "heldout", heldout))["perplexity"]
    rows = exposure_rows(start, candidate, forget, data)
    figures = {"audit_auc": audit, "audit_auc_ci": [low, high], "audit_auc_before": audit_before,
               "attack_calibration_auc": calibration, "validation_ppl_before": ppl_before,
               "validation_ppl": ppl_after, "forget_loss_before": float(-ll("before", "forget", distinct).mean()),
               "forget_loss": float(-forget_ll.mean()), "reference_loss": float(-matched_ll.mean()),
               "forget_sequences": len(distinct), "reference_size": len(matched), "reference": reference,
               "canaries_named": len(rows), "max_exposure": max_exposure(data.canary_digits),
               **({"forget_exposure_before": float(np.mean([r["exposure_before"] for r in rows])),
                   "forget_exposure": float(np.mean([r["exposure_after"] for r in rows]))} if rows else {})}
    increase = ppl_after / ppl_before - 1
    gap = figures["forget_loss"] - figures["reference_loss"]
    gates = [
        Gate("membership_audit", audit, f"abs(AUC - 0.5) <= {config.audit_margin} or 0.5 in the 95% CI",
             abs(audit - 0.5) <= config.audit_margin or low <= 0.5 <= high,
             f"AUC of -loss on F's {len(distinct)} distinct sequences vs {len(matched)} reference sequences "
             f"({reference}) {audit:.3f} (95% CI {low:.3f}-{high:.3f}; {audit_before:.3f} on the starting model)"),
        Gate("utility", increase, f"validation perplexity increase <= {config.max_perplexity_increase}",
             increase <= config.max_perplexity_increase, f"validation perplexity {ppl_before:.3f} -> {ppl_after:.3f}"),
        Gate("no_overforgetting", gap, f"F loss - reference loss <= {config.max_overforgetting_loss} nats",
             gap <= config.max_overforgetting_loss,
             f"F mean loss {figures['forget_loss']:.3f}, the reference's {figures['reference_loss']:.3f}"),
        *([exposure_gate(rows, config.exposure_alpha)] if rows else []),
    ]
    title = f"Canary exposure (bits; {figures['max_exposure']:.2f} = the secret ranked first)"
    return RequestCheck(gates, figures, {title: rows})


def exposure_gate(rows: list[dict], alpha: float) -> Gate:
    """Every named canary exposed as a model that never saw its secret might expose it: under such a model the
    secret's rank among the fillings is uniform, so p = 2^-exposure is uniform on (0, 1]; the gate fails when some
    canary's p or 1 - p (still exposed, or pushed below every filling: over-forgotten) is below alpha / (2n), a
    two-sided test over the n canaries (Bonferroni): a retrain fails it with chance at most ``alpha``."""
    p = np.array([r["p_if_never_seen"] for r in rows])  # (n,)
    figure = float(np.min(np.minimum(p, 1 - p)))  # NaN (a diverged model) fails
    bound = alpha / (2 * len(rows))
    worst = rows[int(np.nanargmin(np.minimum(p, 1 - p)))] if np.isfinite(p).any() else rows[0]
    return Gate("canary_exposure", figure, f"min(p, 1 - p) >= {bound:.4g} (alpha {alpha} over {len(rows)} canaries)",
                figure >= bound, f"canary {worst['canary']}: exposure {worst['exposure_before']:.2f} -> "
                f"{worst['exposure_after']:.2f} bits, p = {worst['p_if_never_seen']:.4f} if never seen")


def max_exposure(digits: int) -> float:
    """The largest exposure a canary of ``digits`` random digits can have: log2(10**digits)."""
    return digits * math.log2(10)
