"""The default model: a two-block CNN that trains in seconds on a CPU."""
from __future__ import annotations

import torch
from torch import nn


class SmallCNN(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, image_size: int, width: int = 16, hidden: int = 256):
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)
            )

        self.features = nn.Sequential(block(in_channels, width), block(width, 2 * width))
        spatial = image_size // 4  # two 2x poolings
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(2 * width * spatial * spatial, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))  # (B, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))  # (B, num_classes)


def small_cnn(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return SmallCNN(in_channels, num_classes, image_size)
