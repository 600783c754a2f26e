"""Learning-event statistics (docs/methods.md §2.1), recorded during training.

At every optimizer step, from the train-mode logits of that step's forward
pass (no extra forward), accumulate per example: confidence p_y, max_c p_c,
entropy -sum_c p_c log p_c (the reference code stores sum p log p; we store
the entropy itself) and correctness. Proxies are running means over all
steps of all epochs.
"""
from __future__ import annotations

import time

import pandas as pd
import torch
import torch.nn.functional as F

EVENT_COLUMNS = ("confidence", "max_conf", "entropy", "binary_acc")


class LearningEventRecorder:
    def __init__(self, example_ids: torch.Tensor):
        self.example_ids = example_ids.cpu()
        n = len(example_ids)
        self.sums = torch.zeros(len(EVENT_COLUMNS), n, dtype=torch.float64)  # (4, N)
        self.counts = torch.zeros(n, dtype=torch.int64)
        self.seconds = 0.0  # time spent recording: this proxy family's whole cost

    def __call__(self, positions: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        start = time.perf_counter()
        with torch.no_grad():
            log_p = F.log_softmax(logits.float(), dim=1)  # (B, C)
            p = log_p.exp()
            stats = torch.stack(
                [
                    p.gather(1, labels.view(-1, 1)).squeeze(1),
                    p.max(1).values,
                    -(p * log_p).sum(1),
                    (p.argmax(1) == labels).float(),
                ]
            ).cpu().double()  # (4, B)
        self._add(positions, stats)
        self.seconds += time.perf_counter() - start

    def _add(self, positions: torch.Tensor, stats: torch.Tensor) -> None:
        """One event per example of the batch: ``stats`` (4, B) into the running sums of rows ``positions``."""
        positions = positions.cpu()
        self.sums.index_add_(1, positions, stats.cpu())
        self.counts.index_add_(0, positions, torch.ones_like(positions))

    def to_frame(self) -> pd.DataFrame:
        """One row per example_id: the running mean of each statistic and the count."""
        means = (self.sums / self.counts.clamp_min(1)).numpy()
        frame = pd.DataFrame({name: means[i] for i, name in enumerate(EVENT_COLUMNS)})
        frame.insert(0, "example_id", self.example_ids.numpy())
        frame["n_events"] = self.counts.numpy()
        return frame
