"""Domain configuration as plain data: categories, measures, periodisation, account mapping.

Loaded and validated from ``config/*.yaml`` by ``services.config.domain``; pure so that
forecasts and stream processing can use it without touching files.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from core.hierarchy import OrgTree


@dataclass(frozen=True)
class Category:
    id: str
    name_sv: str
    kind: str  # "cost" | "revenue"
    profile: tuple[float, ...]  # 12 weights that sum to 1
    posting_lag_months: int = 0
    pay_revision_month: int | None = None
    volume_measure: str | None = None


@dataclass(frozen=True)
class Measure:
    id: str
    name_sv: str
    unit: str


@dataclass(frozen=True)
class AccountRange:
    start: int
    end: int
    category: str


@dataclass
class DomainConfig:
    org: OrgTree
    categories: dict[str, Category]
    measures: dict[str, Measure]
    accounts: list[AccountRange] = field(default_factory=list)
    municipality: str = ""

    def for_owner(self, owner: str) -> DomainConfig:
        """The same configuration restricted to one nämnd (or ``omappad``): what one worker's
        per-nämnd forecast, rules, snapshot and report see."""
        return replace(
            self,
            org=self.org.subtree(owner),
            municipality=self.org.municipality_of(owner) or self.municipality,
        )

    def category_for_account(self, account: int) -> str | None:
        for rng in self.accounts:
            if rng.start <= account <= rng.end:
                return rng.category
        return None

    def periodise(self, category: str, annual: float) -> list[float]:
        """Split an annual budget over the months by the category's profile (sums exactly)."""
        weights = self.categories[category].profile
        months = [annual * w for w in weights]
        months[-1] = annual - sum(months[:-1])
        return months
