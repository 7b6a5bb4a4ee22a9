"""The classifier head."""

from __future__ import annotations

from torch import Tensor, nn


class Head(nn.Module):
    """Global average pooling, dropout, linear classifier."""

    def __init__(self, channels: int, dropout: float, num_classes: int) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.fc(self.dropout(x.mean((2, 3))))
        return out
