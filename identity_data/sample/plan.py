"""The sample's metadata: subjects, sessions and captures with their ground truth, no pixels.

Planning is separate from rendering so metadata can scale to millions of rows while only a
sample of blobs is drawn (see `reuse_blobs`). One `random.Random` drives the whole plan, in a fixed
order; each rendered blob gets its own seed derived from the capture id.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta

from identity_data.sample.documents import CardHolder
from identity_data.sample.faces import LFW_FACES, N_FACES
from identity_data.sample.transforms import BROKEN_KINDS, NEAR_DUP_TRANSFORMS

CAPTURE_TYPES = ("selfie", "id_front", "id_back")
DEVICES = (
    "iphone-15",
    "iphone-13",
    "pixel-8",
    "galaxy-s23",
    "galaxy-a54",
    "web-chrome",
    "web-safari",
)
CAMPAIGN_KINDS = ("replay", "print", "mask")
CAMPAIGN_SIZE = 40
LFW_DATASET = "lfw_subset"
LFW_IMAGES = 200
NEAR_DUP_RATE = 0.05
PRODUCTION_ATTACK_RATE = 0.08
QUALITY_WEIGHTS = {"ok": 0.8, "blurry": 0.07, "dark": 0.07, "occluded": 0.06}
_GIVEN = (
    "Ada",
    "Ben",
    "Chloe",
    "Dario",
    "Elif",
    "Femi",
    "Greta",
    "Hugo",
    "Ines",
    "Jonas",
    "Kaito",
    "Lena",
    "Mateo",
    "Nadia",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sven",
    "Tara",
    "Umar",
    "Vera",
    "Wen",
    "Yara",
    "Zoltan",
)
_SURNAMES = (
    "Okafor",
    "Lindqvist",
    "Moreau",
    "Tanaka",
    "Kowalski",
    "Haddad",
    "Fernandes",
    "Novak",
    "Brennan",
    "Achterberg",
    "Yilmaz",
    "Castillo",
    "Nakamura",
    "Oyelaran",
    "Petrov",
    "Quispe",
    "Rasmussen",
    "Silva",
    "Thorsen",
    "Ueda",
    "Varga",
    "Whitfield",
)


@dataclass(frozen=True, slots=True)
class Truth:
    attack_type: str
    document_type: str
    capture_quality: str
    has_face: bool


@dataclass(frozen=True, slots=True)
class Job:
    """How to draw one blob; `kind` is face / id_front / id_back / lfw / near_dup / broken."""

    kind: str
    seed: int
    face_id: int = -1
    attack_type: str = "genuine"
    quality: str = "ok"
    holder: CardHolder | None = None
    lfw_index: int = -1
    source_file: str = ""
    transform: str = ""
    broken_kind: str = ""


@dataclass(frozen=True, slots=True)
class Subject:
    subject_id: str
    customer_ref: str
    full_name: str
    holder: CardHolder
    face_id: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Session:
    session_id: str
    subject_id: str
    device: str
    started_at: datetime


@dataclass(frozen=True, slots=True)
class Capture:
    """One capture of any source. `file` is relative to the data root; `job` is None when the
    row reuses another capture's blob; `truth` is None for broken blobs."""

    capture_id: str
    source: str  # production | campaign | open_dataset
    group: str  # capture day (ISO), campaign id or dataset id
    session_id: str | None
    subject_ref: str
    capture_type: str
    device: str
    captured_at: datetime
    file: str
    truth: Truth | None
    job: Job | None
    source_label: str = ""


@dataclass
class Plan:
    subjects: list[Subject]
    sessions: list[Session]
    production: list[Capture]
    campaigns: dict[str, list[Capture]]
    open_dataset: list[Capture]
    broken: list[tuple[str, str]] = field(default_factory=list)
    near_duplicates: list[tuple[str, str, str]] = field(default_factory=list)

    def all_captures(self) -> list[Capture]:
        rows = list(self.production)
        for captures in self.campaigns.values():
            rows.extend(captures)
        rows.extend(self.open_dataset)
        return rows


def stable_id(prefix: str, seed: int, *parts: object) -> str:
    digest = hashlib.sha256(":".join(str(p) for p in (seed, prefix, *parts)).encode()).hexdigest()
    return f"{prefix}-{digest[:20]}"


def job_seed(seed: int, capture_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{capture_id}".encode()).digest()[:8], "big")


def _quality(rng: random.Random) -> str:
    return rng.choices(list(QUALITY_WEIGHTS), weights=list(QUALITY_WEIGHTS.values()))[0]


def face_truth(attack_type: str, quality: str) -> Truth:
    # Printed, replayed and masked faces still show a face.
    return Truth(attack_type, "none", quality, True)


def document_truth(capture_type: str, quality: str) -> Truth:
    # The front carries the holder's portrait; the back shows no face.
    return Truth("genuine", "td1_card", quality, capture_type == "id_front")


def _subjects(rng: random.Random, seed: int, n: int, first_day: date) -> list[Subject]:
    subjects = []
    for i in range(n):
        given = rng.choice(_GIVEN)
        if rng.random() < 0.3:
            given = f"{given} {rng.choice(_GIVEN)}"
        surname = rng.choice(_SURNAMES)
        if rng.random() < 0.5:
            ref = f"{given.split()[0].lower()}.{surname.lower()}{i}@example.com"
        else:
            ref = f"cust-{i:06d}"
        letters = "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(2))
        holder = CardHolder(
            surname=surname,
            given_names=given,
            document_number=f"{letters}{rng.randrange(10**7):07d}",
            birth_date=date(1950, 1, 1) + timedelta(days=rng.randrange(20_000)),
            sex=rng.choice("FMX"),
            expiry_date=first_day + timedelta(days=rng.randrange(60, 3650)),
        )
        created = datetime.combine(first_day, datetime.min.time(), tzinfo=UTC) - timedelta(
            seconds=rng.randrange(86_400, 700 * 86_400)
        )
        subjects.append(
            Subject(
                stable_id("subj", seed, i),
                ref,
                f"{given} {surname}",
                holder,
                rng.randrange(N_FACES),
                created,
            )
        )
    return subjects


def _face_job(rng: random.Random, seed: int, capture_id: str, face_id: int, attack: str) -> Job:
    quality = _quality(rng)
    return Job(
        "face", job_seed(seed, capture_id), face_id=face_id, attack_type=attack, quality=quality
    )


def _production(
    rng: random.Random, seed: int, days: list[date], per_day: int, subjects: list[Subject]
) -> tuple[list[Session], list[Capture]]:
    sessions: list[Session] = []
    captures: list[Capture] = []
    for day in days:
        midnight = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
        made = 0
        while made < per_day:
            subject = rng.choice(subjects)
            device = rng.choice(DEVICES)
            start = midnight + timedelta(seconds=rng.randrange(86_400 - 900))
            session = Session(
                stable_id("sess", seed, len(sessions)), subject.subject_id, device, start
            )
            sessions.append(session)
            shape = rng.random()
            if shape < 0.75:
                types = ["selfie", "id_front", "id_back"]
            elif shape < 0.9:
                types = ["selfie"]
            else:
                types = ["selfie", "selfie", "id_front", "id_back"]
            at = start
            for capture_type in types[: per_day - made]:
                at += timedelta(seconds=rng.randrange(10, 90))
                capture_id = stable_id("cap", seed, "production", len(captures))
                if capture_type == "selfie":
                    attack = "genuine"
                    if rng.random() < PRODUCTION_ATTACK_RATE:
                        attack = rng.choice(CAMPAIGN_KINDS)
                    job = _face_job(rng, seed, capture_id, subject.face_id, attack)
                    truth = face_truth(attack, job.quality)
                else:
                    job = Job(
                        capture_type,
                        job_seed(seed, capture_id),
                        face_id=subject.face_id,
                        quality=_quality(rng),
                        holder=subject.holder,
                    )
                    truth = document_truth(capture_type, job.quality)
                captures.append(
                    Capture(
                        capture_id,
                        "production",
                        day.isoformat(),
                        session.session_id,
                        subject.customer_ref,
                        capture_type,
                        device,
                        at,
                        f"capture-bucket/{day:%Y/%m/%d}/{capture_id}.jpg",
                        truth,
                        job,
                    )
                )
                made += 1
    return sessions, captures


def campaign_ids(n: int, end_date: date) -> list[str]:
    ids = []
    for i in range(n):
        kind = CAMPAIGN_KINDS[i % len(CAMPAIGN_KINDS)]
        suffix = f"-{i // len(CAMPAIGN_KINDS) + 1}" if i >= len(CAMPAIGN_KINDS) else ""
        ids.append(f"campaign-{end_date:%Y-%m}-{kind}-attacks{suffix}")
    return ids


def _campaigns(rng: random.Random, seed: int, n: int, days: list[date]) -> dict[str, list[Capture]]:
    out: dict[str, list[Capture]] = {}
    for c, campaign_id in enumerate(campaign_ids(n, days[-1])):
        kind = CAMPAIGN_KINDS[c % len(CAMPAIGN_KINDS)]
        rows = []
        for i in range(CAMPAIGN_SIZE):
            capture_id = stable_id("cap", seed, campaign_id, i)
            volunteer = rng.randrange(12)
            attack = kind if rng.random() < 0.8 else "genuine"
            # Attacks present a random victim's face; genuine captures show the volunteer.
            face_id = (
                rng.randrange(N_FACES) if attack != "genuine" else (c * 12 + volunteer) % N_FACES
            )
            job = _face_job(rng, seed, capture_id, face_id, attack)
            at = datetime.combine(rng.choice(days), datetime.min.time(), tzinfo=UTC) + timedelta(
                seconds=rng.randrange(8 * 3600, 18 * 3600)
            )
            rows.append(
                Capture(
                    capture_id,
                    "campaign",
                    campaign_id,
                    None,
                    f"volunteer{c:02d}{volunteer:02d}@campaign.example",
                    "selfie",
                    f"lab-rig-{rng.randrange(1, 4)}",
                    at,
                    f"lake/landing/campaigns/{campaign_id}/{capture_id}.jpg",
                    face_truth(attack, job.quality),
                    job,
                )
            )
        out[campaign_id] = rows
    return out


def _open_dataset(seed: int, days: list[date]) -> list[Capture]:
    imported = datetime.combine(days[0], datetime.min.time(), tzinfo=UTC)
    rows = []
    for i in range(LFW_IMAGES):
        capture_id = stable_id("cap", seed, LFW_DATASET, i)
        is_face = i < LFW_FACES
        rows.append(
            Capture(
                capture_id,
                "open_dataset",
                LFW_DATASET,
                None,
                f"lfw-{i:03d}",
                "selfie",
                "unknown",
                imported + timedelta(seconds=i),
                f"lake/landing/open-datasets/{LFW_DATASET}/{i:03d}.png",
                # Taxonomy v1 has no "not applicable": non-faces are genuine/none/ok too.
                Truth("genuine", "none", "ok", is_face),
                Job("lfw", job_seed(seed, capture_id), lfw_index=i),
                source_label="face" if is_face else "non_face",
            )
        )
    return rows


def reuse_blobs(captures: list[Capture], rendered: int) -> list[Capture]:
    """Keep the first `rendered` captures' own blobs; later rows point at a rendered blob of the
    same capture type (cycled) and inherit its truth, so DB rows can scale past what is drawn.
    Reused rows are byte-identical copies and are not listed as near-duplicates."""
    pools: dict[str, list[Capture]] = defaultdict(list)
    for row in captures[:rendered]:
        if row.truth is not None:  # never copy a broken blob
            pools[row.capture_type].append(row)
    out = list(captures[:rendered])
    counters: dict[str, int] = defaultdict(int)
    for row in captures[rendered:]:
        pool = pools[row.capture_type]
        if not pool:
            pools[row.capture_type].append(row)
            out.append(row)
            continue
        donor = pool[counters[row.capture_type] % len(pool)]
        counters[row.capture_type] += 1
        out.append(replace(row, file=donor.file, truth=donor.truth, job=None))
    return out


def _inject_broken(
    rng: random.Random, production: list[Capture], rendered: int
) -> list[tuple[str, str]]:
    eligible = [i for i, row in enumerate(production[:rendered]) if row.capture_type == "selfie"]
    picks = sorted(rng.sample(eligible, min(len(BROKEN_KINDS), len(eligible))))
    broken = []
    for index, kind in zip(picks, BROKEN_KINDS, strict=False):
        row = production[index]
        if row.job is None:
            raise ValueError(f"production capture {index} has no render job to break")
        job = replace(row.job, kind="broken", broken_kind=kind)
        production[index] = replace(row, truth=None, job=job)
        broken.append((row.capture_id, kind))
    return broken


def _inject_near_duplicates(rng: random.Random, seed: int, plan: Plan, days: list[date]) -> None:
    originals = [r for r in plan.production if r.job is not None and r.truth is not None]
    # Rated on drawn blobs: reused rows (see reuse_blobs) are exact copies already.
    n = max(3, round(NEAR_DUP_RATE * len(originals)))
    others = [r for rows in plan.campaigns.values() for r in rows] + plan.open_dataset
    by_subject = {s.customer_ref: s for s in plan.subjects}
    chosen: set[str] = set()
    for k in range(n):
        mode = ("same_day", "cross_day", "other_source")[k % 3]
        pool = [
            r
            for r in (others if mode == "other_source" else originals)
            if r.capture_id not in chosen
        ]
        if not pool:
            continue
        original = rng.choice(pool)
        chosen.add(original.capture_id)
        if mode == "same_day" or (mode == "cross_day" and len(days) == 1):
            subject = (
                by_subject[original.subject_ref]
                if original.source == "production"
                else (rng.choice(plan.subjects))
            )
            day = (
                original.captured_at.date()
                if original.source == "production"
                else (rng.choice(days))
            )
        else:
            # Someone else submits a copy of the image: a reused-photo fraud pattern.
            subject = rng.choice(plan.subjects)
            choices = [d for d in days if d != original.captured_at.date()] or days
            day = rng.choice(choices)
        midnight = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
        at = midnight + timedelta(seconds=rng.randrange(86_400))
        session = Session(
            stable_id("sess", seed, "dup", k), subject.subject_id, rng.choice(DEVICES), at
        )
        plan.sessions.append(session)
        capture_id = stable_id("cap", seed, "near_dup", k)
        # Cycles through every transform within each three, with a shifting pairing to `mode`.
        transform = NEAR_DUP_TRANSFORMS[(k + k // 3) % len(NEAR_DUP_TRANSFORMS)]
        job = Job(
            "near_dup", job_seed(seed, capture_id), source_file=original.file, transform=transform
        )
        plan.production.append(
            Capture(
                capture_id,
                "production",
                day.isoformat(),
                session.session_id,
                subject.customer_ref,
                original.capture_type,
                session.device,
                at,
                f"capture-bucket/{day:%Y/%m/%d}/{capture_id}.jpg",
                original.truth,
                job,
            )
        )
        plan.near_duplicates.append((capture_id, original.capture_id, transform))


def make_plan(
    seed: int,
    days: int,
    captures_per_day: int,
    end_date: date,
    campaigns: int = 2,
    images_sample: int | None = None,
) -> Plan:
    if days < 1 or captures_per_day < 1:
        raise ValueError("days and captures_per_day must be at least 1")
    rng = random.Random(seed)
    day_list = [end_date - timedelta(days=days - 1 - i) for i in range(days)]
    subjects = _subjects(rng, seed, max(8, days * captures_per_day // 4), day_list[0])
    sessions, production = _production(rng, seed, day_list, captures_per_day, subjects)
    rendered = (
        len(production) if images_sample is None else max(1, min(images_sample, len(production)))
    )
    broken = _inject_broken(rng, production, rendered)
    plan = Plan(
        subjects,
        sessions,
        reuse_blobs(production, rendered),
        _campaigns(rng, seed, campaigns, day_list),
        _open_dataset(seed, day_list),
        broken,
    )
    _inject_near_duplicates(rng, seed, plan, day_list)
    return plan
