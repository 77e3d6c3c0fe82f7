"""A whole kommun of any size: its nämnder, cost centres, budgets and configuration.

``budgetvakt scenario --namnder N --cost-centres M`` builds a kommun design here and makes its
events with the demo's generator (``services.demo.scenario.generate_from_design``), so the
per-series amounts, the history's surprises and the overrun mechanics are the demo's own.

The kommun ("Storvik kommun", about 45 000 inhabitants) has up to eight nämnder, taken in this
order: Vård- och omsorgsnämnden (≈ 1 050 mnkr net, like Enköping's 2024, ``shared/domain``),
Socialnämnden (IFO and ekonomiskt bistånd), Barn- och utbildningsnämnden, Gymnasie- och
vuxenutbildningsnämnden, Kultur- och fritidsnämnden, Tekniska nämnden, Miljö- och
byggnadsnämnden and Kommunstyrelsen, ≈ 3,5 miljarder kronor together (the last year; each
earlier year 4 % lower). Each nämnd has one förvaltning and its avdelningar; the ``M`` cost
centres (enheter) are spread over the nämnder by budget weight and over each nämnd's
avdelningar by theirs; an enhet's budget is its avdelning's share times a random size, split
over the 12 kostnadsslag (``KOMMUN_CATEGORIES``) by the avdelning's cost mix (care is staff
heavy, IFO buys placements, ekonomiskt bistånd pays transfers, schools pay premises, …).

History years carry the demo's surprises (``HISTORY_SURPRISES``); the forecast year carries a
few designed overruns in some nämnder (``NamndTemplate.overruns``): vikarier, övertid and
sjuklön in äldreomsorgen, placements in barn och unga, vikarier in förskolan, winter overtime in
gata och park. Every nämnd closes every month (``period_close`` with ``org_unit`` = the nämnd).

``write_kommun_config`` writes the configuration to use with ``BUDGETVAKT_CONFIG_DIR``:
``org.yaml`` (``namnder:`` form), ``routing.yaml`` (an enhetschef per enhet, an avdelningschef
per avdelning, a förvaltningschef and a controller per nämnd; fictional names at
``storvik.example``), and the source configuration's ``categories.yaml``, ``accounts.yaml``,
``rules.yaml`` and ``checkpoints.yaml``. It is loaded back with ``services.config`` before it
replaces anything. Same seed, same kommun.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from core.domain import DomainConfig
from core.errors import ConfigError, UserError
from services.demo.scenario import (
    _HVB_SHORTFALL_RAMP,
    _OVERTIME_BOOKED_RAMP,
    _SICK_RAMP,
    _SUBSTITUTE_RAMP,
    Overrun,
    ScenarioDesign,
    VolumePlan,
    split_integer,
)

KOMMUN_NAME = "Storvik kommun"
MAIL_DOMAIN = "storvik.example"
#: The kostnadsslag of every cost centre (all of config/categories.yaml but revenue_other).
KOMMUN_CATEGORIES: tuple[str, ...] = (
    "salaries",
    "substitutes",
    "overtime",
    "sick_pay",
    "agency_staff",
    "purchased_care",
    "premises",
    "other_costs",
    "transfers",
    "capital",
    "revenue_fees",
    "revenue_grants",
)
#: Files copied from the source configuration as they are.
COPIED_CONFIG_FILES = ("categories.yaml", "accounts.yaml", "rules.yaml", "checkpoints.yaml")
#: The smallest amount of a kostnadsslag in an enhet's budget (mnkr): no all-zero series.
SMALLEST_MNKR = 0.001

# Cost mix per kind of avdelning, in shares of the net budget before scaling (revenue negative),
# in the order of KOMMUN_CATEGORIES.
MIXES: dict[str, tuple[float, ...]] = {
    # äldreomsorg, LSS: staff heavy (personnel ≈ 70 %, like Enköping's VON), fees from residents
    "care": (0.66, 0.10, 0.015, 0.025, 0.01, 0.02, 0.08, 0.06, 0.002, 0.01, -0.06, -0.02),
    # IFO barn och unga, vuxna: purchased placements (HVB, familjehem, SiS)
    "placements": (0.25, 0.02, 0.004, 0.006, 0.02, 0.55, 0.04, 0.05, 0.04, 0.003, -0.005, -0.03),
    # ekonomiskt bistånd: transfers to households
    "econ_aid": (0.15, 0.01, 0.002, 0.004, 0.005, 0.01, 0.02, 0.02, 0.78, 0.002, -0.001, -0.02),
    # förskola, grundskola, gymnasium: staff and premises, places bought from others
    "school": (0.62, 0.05, 0.005, 0.015, 0.003, 0.06, 0.17, 0.08, 0.003, 0.02, -0.02, -0.04),
    # bibliotek, kulturskola, idrottsanläggningar: premises and föreningsbidrag
    "culture": (0.45, 0.03, 0.01, 0.01, 0.002, 0.04, 0.25, 0.18, 0.06, 0.04, -0.05, -0.02),
    # gata, park, fastighet: contractors and capital costs
    "technical": (0.25, 0.01, 0.02, 0.006, 0.01, 0.30, 0.10, 0.25, 0.002, 0.15, -0.08, -0.01),
    # myndighetsutövning and administration: staff, consultants, fees
    "authority": (0.60, 0.02, 0.01, 0.01, 0.03, 0.08, 0.08, 0.17, 0.02, 0.02, -0.05, -0.02),
}

# Month weights of overruns the demo has no ramp for (January first).
_WINTER_RAMP = (2.0, 2.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 2.0)


@dataclass(frozen=True)
class EnhetTemplate:
    name: str  # with {place}
    volumes: str | None = None  # a key of _volume_series


@dataclass(frozen=True)
class AvdelningTemplate:
    code: str
    name: str
    kind: str  # a key of MIXES
    weight: float  # share of the nämnd's budget
    enheter: tuple[EnhetTemplate, ...]


@dataclass(frozen=True)
class OverrunTemplate:
    """A designed overrun of the forecast year: in ``share_of_units`` of the avdelning's
    enheter, the category's actual exceeds its budget by ``share_of_budget``."""

    avdelning: str
    category: str
    share_of_budget: float
    share_of_units: float
    ramp: tuple[float, ...]
    why: str


@dataclass(frozen=True)
class NamndTemplate:
    id: str
    name: str
    forvaltning_id: str
    forvaltning_name: str
    budget_mnkr: float  # net, the forecast year, a kommun of ≈ 45 000 inhabitants
    avdelningar: tuple[AvdelningTemplate, ...]
    overruns: tuple[OverrunTemplate, ...] = ()


def _e(name: str, volumes: str | None = None) -> EnhetTemplate:
    return EnhetTemplate(name, volumes)


NAMND_TEMPLATES: tuple[NamndTemplate, ...] = (
    NamndTemplate(
        "VON",
        "Vård- och omsorgsnämnden",
        "VOF",
        "Vård- och omsorgsförvaltningen",
        1050.0,
        (
            AvdelningTemplate(
                "AO",
                "Äldreomsorg",
                "care",
                0.50,
                (
                    _e("Hemtjänst {place}", "home_care"),
                    _e("Särskilt boende {place}", "sabo"),
                    _e("Korttidsboende {place}"),
                    _e("Dagverksamhet {place}"),
                ),
            ),
            AvdelningTemplate(
                "LSS",
                "LSS och socialpsykiatri",
                "care",
                0.24,
                (
                    _e("LSS-boende {place}", "lss_home"),
                    _e("Daglig verksamhet {place}"),
                    _e("Personlig assistans {place}", "assistance"),
                    _e("Boendestöd {place}"),
                ),
            ),
            AvdelningTemplate(
                "HSV",
                "Hälso- och sjukvård",
                "care",
                0.12,
                (_e("Hemsjukvård {place}"), _e("Rehabilitering {place}")),
            ),
            AvdelningTemplate(
                "MYN",
                "Myndighet, kvalitet och utveckling",
                "authority",
                0.09,
                (_e("Biståndshandläggning {place}"), _e("Köpta platser {place}")),
            ),
            AvdelningTemplate(
                "VSS",
                "Verksamhetsstöd och service",
                "authority",
                0.05,
                (_e("Bemanningsenheten {place}"), _e("Måltider {place}")),
            ),
        ),
        (
            OverrunTemplate("AO", "substitutes", 0.30, 0.6, _SUBSTITUTE_RAMP, "vikarier"),
            OverrunTemplate("AO", "overtime", 0.50, 0.6, _OVERTIME_BOOKED_RAMP, "övertid"),
            OverrunTemplate("AO", "sick_pay", 0.15, 0.6, _SICK_RAMP, "sjuklön"),
        ),
    ),
    NamndTemplate(
        "SN",
        "Socialnämnden",
        "SOF",
        "Socialförvaltningen",
        330.0,
        (
            AvdelningTemplate(
                "BOU",
                "Barn och unga",
                "placements",
                0.40,
                (
                    _e("Barn och familj {place}", "placements_children"),
                    _e("Familjehemsenheten {place}", "placements_children"),
                    _e("Öppenvård barn {place}"),
                ),
            ),
            AvdelningTemplate(
                "VUX",
                "Vuxen",
                "placements",
                0.22,
                (_e("Vuxenenheten {place}", "placements_adult"), _e("Beroendeenheten {place}")),
            ),
            AvdelningTemplate(
                "EKB",
                "Ekonomiskt bistånd",
                "econ_aid",
                0.30,
                (_e("Försörjningsstöd {place}", "econ_aid"),),
            ),
            AvdelningTemplate(
                "AMI",
                "Arbetsmarknad och integration",
                "authority",
                0.08,
                (_e("Arbetsmarknadsenheten {place}"), _e("Flyktingmottagning {place}")),
            ),
        ),
        (OverrunTemplate("BOU", "purchased_care", 0.20, 0.5, _HVB_SHORTFALL_RAMP, "placeringar"),),
    ),
    NamndTemplate(
        "BUN",
        "Barn- och utbildningsnämnden",
        "BUF",
        "Barn- och utbildningsförvaltningen",
        1150.0,
        (
            AvdelningTemplate("FSK", "Förskola", "school", 0.32, (_e("Förskolan {place}"),)),
            AvdelningTemplate(
                "GRF",
                "Grundskola F–6",
                "school",
                0.36,
                (_e("{place}skolan F–6"), _e("Fritidshemmet {place}")),
            ),
            AvdelningTemplate("GR7", "Grundskola 7–9", "school", 0.22, (_e("{place}skolan 7–9"),)),
            AvdelningTemplate(
                "EHV",
                "Elevhälsa och stöd",
                "authority",
                0.10,
                (_e("Elevhälsan {place}"), _e("Resursskolan {place}")),
            ),
        ),
        (OverrunTemplate("FSK", "substitutes", 0.25, 0.4, _SICK_RAMP, "vikarier"),),
    ),
    NamndTemplate(
        "GVN",
        "Gymnasie- och vuxenutbildningsnämnden",
        "GVF",
        "Gymnasie- och vuxenutbildningsförvaltningen",
        330.0,
        (
            AvdelningTemplate(
                "GYM",
                "Gymnasieskola",
                "school",
                0.70,
                (_e("{place}gymnasiet"), _e("Interkommunala elever {place}")),
            ),
            AvdelningTemplate(
                "VUB",
                "Vuxenutbildning",
                "school",
                0.22,
                (_e("Komvux {place}"), _e("SFI {place}")),
            ),
            AvdelningTemplate(
                "AUT", "Gymnasiesärskola", "school", 0.08, (_e("Gymnasiesärskolan {place}"),)
            ),
        ),
    ),
    NamndTemplate(
        "KFN",
        "Kultur- och fritidsnämnden",
        "KFF",
        "Kultur- och fritidsförvaltningen",
        120.0,
        (
            AvdelningTemplate("BIB", "Bibliotek", "culture", 0.25, (_e("Biblioteket {place}"),)),
            AvdelningTemplate(
                "KUL",
                "Kultur",
                "culture",
                0.25,
                (_e("Kulturskolan {place}"), _e("Kulturhuset {place}")),
            ),
            AvdelningTemplate(
                "FRI",
                "Fritid och idrott",
                "culture",
                0.50,
                (_e("Idrottshallen {place}"), _e("Fritidsgården {place}"), _e("Badhuset {place}")),
            ),
        ),
    ),
    NamndTemplate(
        "TN",
        "Tekniska nämnden",
        "TF",
        "Tekniska förvaltningen",
        190.0,
        (
            AvdelningTemplate(
                "GAP",
                "Gata och park",
                "technical",
                0.45,
                (_e("Gatudrift {place}"), _e("Parkdrift {place}"), _e("Vinterväghållning {place}")),
            ),
            AvdelningTemplate(
                "FAS", "Fastighet", "technical", 0.35, (_e("Fastighetsförvaltning {place}"),)
            ),
            AvdelningTemplate(
                "KOS", "Kost och städ", "technical", 0.20, (_e("Kök {place}"), _e("Städ {place}"))
            ),
        ),
        (OverrunTemplate("GAP", "overtime", 0.60, 1.0, _WINTER_RAMP, "vinterväghållning"),),
    ),
    NamndTemplate(
        "MBN",
        "Miljö- och byggnadsnämnden",
        "MBF",
        "Miljö- och byggförvaltningen",
        45.0,
        (
            AvdelningTemplate("BYG", "Bygglov", "authority", 0.45, (_e("Bygglov {place}"),)),
            AvdelningTemplate(
                "MHS", "Miljö och hälsoskydd", "authority", 0.40, (_e("Miljöskydd {place}"),)
            ),
            AvdelningTemplate(
                "LMT", "Lantmäteri", "authority", 0.15, (_e("Kart och mät {place}"),)
            ),
        ),
    ),
    NamndTemplate(
        "KS",
        "Kommunstyrelsen",
        "KLK",
        "Kommunledningskontoret",
        380.0,
        (
            AvdelningTemplate("EKO", "Ekonomi", "authority", 0.15, (_e("Ekonomienheten {place}"),)),
            AvdelningTemplate("HR", "HR", "authority", 0.15, (_e("HR-enheten {place}"),)),
            AvdelningTemplate(
                "DIG", "Digitalisering och IT", "authority", 0.25, (_e("IT-enheten {place}"),)
            ),
            AvdelningTemplate(
                "SAM",
                "Samhällsutveckling",
                "authority",
                0.25,
                (_e("Näringsliv {place}"), _e("Räddningstjänst {place}")),
            ),
            AvdelningTemplate(
                "KAN", "Kansli och kommunikation", "authority", 0.20, (_e("Kansliet {place}"),)
            ),
        ),
    ),
)
MAX_NAMNDER = len(NAMND_TEMPLATES)

PLACES: tuple[str, ...] = (
    "Ekbacken", "Lindgården", "Björkhagen", "Solbacken", "Tallbo", "Granlunda", "Ängsvik",
    "Sjöstaden", "Norrby", "Söderby", "Västerby", "Österby", "Kvarnbacken", "Bergsgården",
    "Rosenlund", "Lövsta", "Hagalund", "Strandvik", "Furuhöjd", "Backa", "Ekdalen", "Sörgården",
    "Mossen", "Källbo", "Åsen", "Lugnet", "Ljungby", "Vallby", "Kyrkbyn", "Skogsbo", "Brunnsvik",
    "Fridhem", "Tunbo", "Aspudden", "Lillgården", "Storgården", "Hällby", "Rönnbacka",
    "Vretarna", "Nybo",
)  # fmt: skip
FIRST_NAMES: tuple[str, ...] = (
    "Anna", "Eva", "Maria", "Karin", "Sara", "Lena", "Kerstin", "Emma", "Ingrid", "Malin",
    "Sofia", "Helena", "Linnea", "Elin", "Johanna", "Erik", "Lars", "Karl", "Anders", "Johan",
    "Per", "Mikael", "Jonas", "Peter", "Fredrik", "Mats", "Ahmed", "Omar", "Fatima", "Ali",
    "Nina", "Ida", "Hanna", "Oskar", "Viktor", "Amir", "Leila", "Jenny", "Ulf", "Björn",
)  # fmt: skip
LAST_NAMES: tuple[str, ...] = (
    "Andersson", "Johansson", "Karlsson", "Nilsson", "Eriksson", "Larsson", "Olsson",
    "Persson", "Svensson", "Gustafsson", "Pettersson", "Jonsson", "Lindberg", "Lindqvist",
    "Sjöberg", "Berglund", "Forsberg", "Sandberg", "Lindgren", "Holm", "Ek", "Lund", "Strand",
    "Nyberg", "Dahl", "Alm", "Öberg", "Wikström", "Haddad", "Karimi", "Hussein", "Ali",
    "Engström", "Håkansson", "Sundberg", "Björk", "Åberg", "Falk", "Hedlund", "Mattsson",
)  # fmt: skip

# Volume series per kind of enhet, from its budget (unit prices of shared/domain/facts.md):
# (measure, flow or stock, the SEK a year per unit (a flow: per hour or day; a stock: per place
# or household), the categories whose budget pays for it).
_STAFF = ("salaries", "substitutes", "overtime", "sick_pay")
_VOLUME_SERIES: dict[str, tuple[tuple[str, str, float, tuple[str, ...]], ...]] = {
    "home_care": (
        ("home_care_hours", "flow", 640.0, _STAFF),
        ("home_care_clients", "stock", 640.0 * 550, _STAFF),
    ),
    "sabo": (("sabo_residents", "stock", 674_000.0, (*_STAFF, "premises")),),
    "lss_home": (("lss_residents", "stock", 897_000.0, (*_STAFF, "premises")),),
    "assistance": (("personal_assistance_hours", "flow", 330.0, _STAFF),),
    "placements_children": (
        ("placement_days_hvb", "flow", 4_000.0 / 0.45, ("purchased_care",)),
        ("placement_days_family_home", "flow", 1_230.0 / 0.55, ("purchased_care",)),
    ),
    "placements_adult": (("placement_days_adult", "flow", 2_500.0, ("purchased_care",)),),
    "econ_aid": (("econ_aid_households", "stock", 4_900.0 * 12, ("transfers",)),),
}
# Enheter whose staffing costs also come as hours (the demo's STAFF_HOURS).
_STAFF_HOUR_VOLUMES = ("home_care", "sabo")


@dataclass(frozen=True)
class Enhet:
    id: str
    name: str
    avdelning: str  # its avdelning's id
    kind: str
    volumes: str | None
    budget_mnkr: float


@dataclass
class Kommun:
    """A kommun's organisation, design (budgets, overruns, volumes) and recipients."""

    name: str
    namnder: list[NamndTemplate]
    avdelningar: dict[str, list[tuple[str, AvdelningTemplate]]]  # nämnd → (avdelning id, …)
    enheter: dict[str, list[Enhet]]  # avdelning id → its enheter
    design: ScenarioDesign
    routing: dict[str, Any] = field(default_factory=dict)

    @property
    def cost_centres(self) -> list[str]:
        return [e.id for enheter in self.enheter.values() for e in enheter]

    def org_yaml(self) -> dict[str, Any]:
        namnder: list[dict[str, Any]] = []
        for namnd in self.namnder:
            avdelningar = [
                {
                    "id": avd_id,
                    "name": avd.name,
                    "level": "avdelning",
                    "children": [
                        {"id": e.id, "name": e.name, "level": "enhet"} for e in self.enheter[avd_id]
                    ],
                }
                for avd_id, avd in self.avdelningar[namnd.id]
            ]
            namnder.append(
                {
                    "id": namnd.id,
                    "name": namnd.name,
                    "level": "namnd",
                    "children": [
                        {
                            "id": namnd.forvaltning_id,
                            "name": namnd.forvaltning_name,
                            "level": "forvaltning",
                            "children": avdelningar,
                        }
                    ],
                }
            )
        return {"municipality": self.name, "namnder": namnder}


def _largest_remainder(total: int, weights: Sequence[float], least: int = 1) -> list[int]:
    """``total`` split over ``weights``, each part at least ``least`` (``total`` must allow it)."""
    base = [least] * len(weights)
    return [
        b + extra
        for b, extra in zip(base, split_integer(total - least * len(weights), weights), strict=True)
    ]


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c for c in folded.lower() if c.isalnum())


def build_kommun(namnder: int, cost_centres: int, seed: int = 2024) -> Kommun:
    """The first ``namnder`` nämnder with ``cost_centres`` enheter in all; deterministic."""
    if not 1 <= namnder <= MAX_NAMNDER:
        raise UserError(f"--namnder must be between 1 and {MAX_NAMNDER}, not {namnder}")
    if cost_centres < namnder:
        raise UserError(
            f"--cost-centres must be at least --namnder ({namnder}): every nämnd needs a cost "
            f"centre; got {cost_centres}"
        )
    rng = np.random.default_rng([seed, 15])
    chosen = list(NAMND_TEMPLATES[:namnder])
    per_namnd = _largest_remainder(cost_centres, [n.budget_mnkr for n in chosen])
    avdelningar: dict[str, list[tuple[str, AvdelningTemplate]]] = {}
    enheter: dict[str, list[Enhet]] = {}
    budget: dict[str, dict[str, float]] = {}
    for n_index, (namnd, count) in enumerate(zip(chosen, per_namnd, strict=True), start=1):
        used = list(namnd.avdelningar[:count])
        weight_sum = sum(a.weight for a in used)
        per_avd = _largest_remainder(count, [a.weight for a in used])
        avdelningar[namnd.id] = []
        for a_index, (avd, n_enheter) in enumerate(zip(used, per_avd, strict=True), start=1):
            avd_id = f"{namnd.id}-{avd.code}"
            avdelningar[namnd.id].append((avd_id, avd))
            avd_mnkr = namnd.budget_mnkr * avd.weight / weight_sum
            sizes = rng.lognormal(0.0, 0.5, n_enheter)
            sizes = sizes / sizes.sum()
            units: list[Enhet] = []
            for k in range(n_enheter):
                template = avd.enheter[k % len(avd.enheter)]
                round_no, place_no = divmod(k // len(avd.enheter), len(PLACES))
                name = template.name.format(place=PLACES[place_no])
                if round_no:
                    name = f"{name} {round_no + 1}"
                # A cost centre code: nämnd digit, avdelning digit, serial (unique, numeric).
                unit_id = f"{n_index}{a_index}{k + 1:04d}"
                enhet = Enhet(
                    unit_id, name, avd_id, avd.kind, template.volumes, avd_mnkr * sizes[k]
                )
                units.append(enhet)
                budget[unit_id] = _category_budget(enhet, rng)
            enheter[avd_id] = units
    design = ScenarioDesign(
        budget_mnkr=budget,
        overruns=_designed_overruns(chosen, enheter, budget, rng),
        volumes=_volume_plan(enheter, budget),
        closing_units=tuple(n.id for n in chosen),
    )
    kommun = Kommun(KOMMUN_NAME, chosen, avdelningar, enheter, design)
    kommun.routing = _routing(kommun, rng)
    return kommun


def _category_budget(enhet: Enhet, rng: np.random.Generator) -> dict[str, float]:
    """The enhet's net budget over the 12 kostnadsslag by its kind's mix, each share varied."""
    mix = np.array(MIXES[enhet.kind]) * rng.uniform(0.7, 1.3, len(KOMMUN_CATEGORIES))
    scaled = mix * enhet.budget_mnkr / mix.sum()
    out: dict[str, float] = {}
    for category, mnkr in zip(KOMMUN_CATEGORIES, scaled.tolist(), strict=True):
        sign = -1.0 if mnkr < 0 else 1.0
        out[category] = sign * max(SMALLEST_MNKR, round(abs(mnkr), 3))
    return out


def _designed_overruns(
    chosen: Sequence[NamndTemplate],
    enheter: Mapping[str, Sequence[Enhet]],
    budget: Mapping[str, Mapping[str, float]],
    rng: np.random.Generator,
) -> list[Overrun]:
    out: list[Overrun] = []
    for namnd in chosen:
        for spec in namnd.overruns:
            units = enheter.get(f"{namnd.id}-{spec.avdelning}", [])
            if not units:
                continue
            picked = max(1, round(spec.share_of_units * len(units)))
            chosen_units = sorted(
                rng.choice([u.id for u in units], size=picked, replace=False).tolist()
            )
            for unit in chosen_units:
                extra = round(spec.share_of_budget * budget[unit][spec.category] * 1e6)
                out.append(Overrun(unit, spec.category, extra, spec.ramp, spec.why))
    return out


def _volume_plan(
    enheter: Mapping[str, Sequence[Enhet]], budget: Mapping[str, Mapping[str, float]]
) -> VolumePlan:
    flow: dict[tuple[str, str], float] = {}
    stock: dict[tuple[str, str], float] = {}
    staff_hour_units: list[str] = []
    for units in enheter.values():
        for enhet in units:
            if enhet.volumes is None:
                continue
            for measure, kind, sek_per_unit, categories in _VOLUME_SERIES[enhet.volumes]:
                sek = sum(budget[enhet.id][c] for c in categories) * 1e6
                amount = max(1, round(sek / sek_per_unit))
                (flow if kind == "flow" else stock)[(enhet.id, measure)] = amount
            if enhet.volumes in _STAFF_HOUR_VOLUMES:
                staff_hour_units.append(enhet.id)
    return VolumePlan(flow, stock, staff_hour_units)


def _person(rng: np.random.Generator, taken: set[str]) -> tuple[str, str]:
    """A fictional name and its recipient id (unique: a number is added to a repeat)."""
    first = FIRST_NAMES[int(rng.integers(len(FIRST_NAMES)))]
    last = LAST_NAMES[int(rng.integers(len(LAST_NAMES)))]
    base = f"{_ascii(first)}.{_ascii(last)}"
    rid, n = base, 1
    while rid in taken:
        n += 1
        rid = f"{base}{n}"
    taken.add(rid)
    return f"{first} {last}", rid


def _routing(kommun: Kommun, rng: np.random.Generator) -> dict[str, Any]:
    recipients: dict[str, Any] = {}
    units: dict[str, list[str]] = {}
    controllers: dict[str, str] = {}
    taken: set[str] = set()

    def add(role: str, min_severity: str, levels: list[str] | None = None) -> str:
        name, rid = _person(rng, taken)
        spec: dict[str, Any] = {"name": name, "role": role, "min_severity": min_severity}
        if levels:
            spec["alert_levels"] = levels
        spec["channels"] = {"email": f"{rid}@{MAIL_DOMAIN}"}
        recipients[rid] = spec
        return rid

    for namnd in kommun.namnder:
        chef = add(
            f"Förvaltningschef {namnd.forvaltning_name}",
            "critical",
            ["avdelning", "forvaltning", "namnd"],
        )
        controller = add(f"Controller {namnd.name}", "warning")
        units[namnd.id] = [chef, controller]
        controllers[namnd.id] = controller
        for avd_id, avd in kommun.avdelningar[namnd.id]:
            units[avd_id] = [add(f"Avdelningschef {avd.name}", "warning")]
            for enhet in kommun.enheter[avd_id]:
                units[enhet.id] = [add(f"Enhetschef {enhet.name}", "info")]
    return {"recipients": recipients, "units": units, "controllers": controllers}


# --- Configuration files ---------------------------------------------------------------------

_HEADER = (
    "# Generated by `budgetvakt scenario --namnder {namnder} --cost-centres {cost_centres} "
    "--seed {seed}` (services/demo/kommun.py).\n# A fictional kommun; every name and address "
    "is made up.\n"
)


def write_kommun_config(
    kommun: Kommun,
    config_dir: Path,
    source_dir: Path,
    header_args: Mapping[str, int],
    replace: bool = False,
) -> list[Path]:
    """Write the kommun's configuration directory and check that it loads.

    Everything is written to a new directory beside ``config_dir`` and loaded with
    ``services.config`` (org, categories, accounts, rules, routing, checkpoints) before it
    takes ``config_dir``'s place, so an existing configuration is never half overwritten: a
    non-empty ``config_dir`` is refused unless ``replace``, which swaps it whole.
    """
    if config_dir.exists() and not config_dir.is_dir():
        raise UserError(f"{config_dir} exists and is not a directory")
    if config_dir.is_dir() and any(config_dir.iterdir()) and not replace:
        raise UserError(
            f"{config_dir} already holds a configuration; remove it or pass --force to replace "
            "it whole"
        )
    for name in COPIED_CONFIG_FILES:
        if not (source_dir / name).is_file():
            raise UserError(f"the source configuration {source_dir} has no {name}")
    config_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{config_dir.name}-", dir=config_dir.parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp makes it private; a config dir is not
    try:
        header = _HEADER.format(**header_args)
        _dump(staging / "org.yaml", kommun.org_yaml(), header)
        routing = {**kommun.routing}
        source_routing = yaml.safe_load((source_dir / "routing.yaml").read_text("utf-8")) or {}
        if isinstance(source_routing, dict) and "actions" in source_routing:
            routing["actions"] = source_routing["actions"]
        _dump(staging / "routing.yaml", routing, header)
        for name in COPIED_CONFIG_FILES:
            shutil.copyfile(source_dir / name, staging / name)
        check_config(staging, kommun)
        if config_dir.exists():
            retired = Path(
                tempfile.mkdtemp(prefix=f".{config_dir.name}-old-", dir=config_dir.parent)
            )
            os.replace(config_dir, retired / config_dir.name)
            os.replace(staging, config_dir)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, config_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return sorted(config_dir.iterdir())


def _dump(path: Path, data: Any, header: str) -> None:
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=100)
    path.write_text(header + text, encoding="utf-8")


def check_config(config_dir: Path, kommun: Kommun | None = None) -> DomainConfig:
    """Load the directory as the worker, the notifier and the reports do; a ConfigError is a
    bug of the generator, said as such."""
    from services.config.domain import load_domain_config
    from services.config.rules import load_rules
    from services.notifier.routing import load_routing
    from services.snapshots.checkpoints import load_checkpoints

    try:
        domain = load_domain_config(config_dir)
        load_rules(config_dir, domain)
        load_routing(config_dir / "routing.yaml", domain.org, environ={})
        load_checkpoints(config_dir)
    except ConfigError as err:
        raise UserError(f"the generated configuration does not load (a bug): {err}") from None
    if kommun is not None:
        missing = [c for c in KOMMUN_CATEGORIES if c not in domain.categories]
        if missing:
            raise UserError(
                f"categories.yaml of the source configuration lacks {', '.join(missing)}"
            )
    return domain
