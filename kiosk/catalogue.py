"""The error-code catalogue: model, loader and validation. Pure (JSON files in, objects out).

Files under the catalogue root (see catalogue/README.md):
  catalogue.json               version, facility section headers, illustration ids
  codes.json                   cleaned official text per code (title, tags, audience, message, conditions, steps)
  corrections.json             every correction made to the seed text, auditable against the verbatim part
  guidance.json                language-neutral patient guidance: call_staff, illustrations
  locales/<lang>/guidance.json patient guidance texts per language (title, ≤ 3 steps); a language = a folder
                               that has one; `ja` is the fallback
  source/verbatim.json         the seed cells byte for byte with their line numbers (kiosk.catalogue_import)

`load_catalogue()` validates all of it and raises one `CatalogueError` naming file, code and field.
`audit_against_source()` additionally proves the cleaned text equals the verbatim text plus the listed
corrections (run by `kiosk catalogue validate` and the tests).
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, RootModel

from kiosk.datafile import NO_VALUE, DataFileError, Model, Problem, field_name
from kiosk.jsondata import parse_json
from kiosk.paths import catalogue_root

FALLBACK_LANGUAGE = "ja"
MAX_GUIDANCE_STEPS = 3
SectionId = Literal["common", "clinic_eprescription", "pharmacy_eprescription", "clinic_ekarte"]
SECTION_ORDER: tuple[SectionId, ...] = ("common", "clinic_eprescription", "pharmacy_eprescription", "clinic_ekarte")
CODE_PATTERN = re.compile(r"\d{3}")


def normalize_code(text: str) -> str:
    """A code as typed, NFKC-normalised and trimmed: full-width digits from a Japanese IME ("０２１") -> "021"."""
    return unicodedata.normalize("NFKC", text).strip()

Code = Annotated[str, Field(pattern=r"^\d{3}$")]
Text = Annotated[str, Field(min_length=1)]


class CatalogueError(Exception):
    """A catalogue file that cannot be used. `problems` holds (file, code, field, message) tuples."""

    def __init__(self, problems: list[tuple[str, str, str, str]]):
        self.problems = problems
        self.file, self.code, self.field, _ = problems[0]
        lines = [f"{file}: code {code or '-'}: field {field or '-'}: {message}"
                 for file, code, field, message in problems]
        super().__init__("\n".join(lines))


class UnknownCode(LookupError):
    """No such code in the catalogue; `nearest` names the closest known codes."""

    def __init__(self, code: str, nearest: list[str]):
        self.code = code
        self.nearest = nearest
        hint = f"; nearest known codes: {', '.join(nearest)}" if nearest else ""
        what = "unknown code" if CODE_PATTERN.fullmatch(code) else "not a three-digit code"
        super().__init__(f"{what}: {code!r}{hint}")


class Facility(Protocol):
    """What `steps_for` needs to know about the facility (kiosk.config.FacilitySection fits)."""

    @property
    def type(self) -> str: ...  # "clinic" | "pharmacy"
    @property
    def e_prescription(self) -> bool: ...
    @property
    def e_karte(self) -> bool: ...


def sections_for(facility: Facility) -> tuple[SectionId, ...]:
    """The facility sections of the official cause/action text that apply to this facility."""
    clinic = facility.type == "clinic"
    wanted: dict[SectionId, bool] = {
        "common": True,
        "clinic_eprescription": clinic and facility.e_prescription,
        "pharmacy_eprescription": facility.type == "pharmacy" and facility.e_prescription,
        "clinic_ekarte": clinic and facility.e_karte,
    }
    return tuple(section for section in SECTION_ORDER if wanted[section])


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Step(_Model):
    """One staff action of the official cause/action text; depth 0 is a main step, deeper ones are sub-items."""

    text: Text
    depth: int = Field(default=0, ge=0, le=3)


class SourceCondition(_Model):
    """The verbatim cells of one condition: one entry per seed row (page-break continuations add rows)."""

    rows: list[int]
    check: list[str]
    cause: list[str]
    documents: list[str]
    outage: list[str]


class SourceCode(_Model):
    """The verbatim cells of one code as the seed has them (provenance)."""

    rows: list[int]
    heading: str
    message: str
    conditions: list[SourceCondition]


class Condition(_Model):
    """What staff should check (お調べください) and, per facility section, what to do."""

    check: Text
    outage: bool  # ○ in the last column: a system failure, interim operation needed
    documents: list[Text] = []
    steps: dict[SectionId, list[Step]]
    source: SourceCondition | None = None

    def steps_for(self, facility: Facility) -> list[Step]:
        """The steps that apply to this facility, common ones first."""
        return [step for section in sections_for(facility) for step in self.steps.get(section, [])]


class CodeEntry(_Model):
    code: Code
    title: Text
    tags: list[Text]
    audience: Literal["patient", "staff"]
    message: Text  # the official on-screen message; placeholders like {remaining} are listed in params
    params: list[str] = []
    conditions: list[Condition] = Field(min_length=1)
    source: SourceCode | None = None

    @property
    def outage(self) -> bool:
        return any(condition.outage for condition in self.conditions)

    @property
    def documents(self) -> list[str]:
        seen: dict[str, None] = {}
        for condition in self.conditions:
            seen.update(dict.fromkeys(condition.documents))
        return list(seen)

    def format_message(self, values: Mapping[str, object] | None = None) -> str:
        return _fill(self.message, values)


class Guidance(_Model):
    """What the patient screen shows for a code, in one language."""

    title: Text
    steps: list[Text] = Field(min_length=1, max_length=MAX_GUIDANCE_STEPS)
    call_staff: bool
    illustrations: list[str] = []

    @property
    def params(self) -> set[str]:
        return placeholders(self.title, *self.steps)

    def format(self, values: Mapping[str, object] | None = None) -> Guidance:
        """Fill placeholders such as {remaining}; an unknown value shows as "n", as on the official screen."""
        return self.model_copy(update={"title": _fill(self.title, values),
                                       "steps": [_fill(step, values) for step in self.steps]})


class Correction(_Model):
    """One change made to the seed text: where, original → corrected, and why."""

    code: Code
    field: Annotated[str, Field(pattern=r"^(heading|message|conditions\[\d+\]\.(check|cause|documents))$")]
    original: Text
    corrected: str
    kind: Literal["typo", "wrong_term", "format", "spacing", "page_break", "extraction", "parameter"]
    reason: Text
    unsure: bool = False  # the most likely reading, but the seed alone cannot prove it


# --- file models -------------------------------------------------------------------------------------------

class CatalogueInfo(_Model):
    version: Annotated[str, Field(pattern=r"^\d{4}\.\d{2}\.\d{2}(\.\d+)?$")]
    source: Text
    sections: dict[SectionId, Text]  # the section header as the official text writes it
    illustrations: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]]


class CodeData(_Model):
    title: Text
    tags: list[Text]
    audience: Literal["patient", "staff"]
    message: Text
    params: list[Annotated[str, Field(pattern=r"^[a-z_]+$")]] = []
    conditions: list[Condition] = Field(min_length=1)


class GuidanceMeta(_Model):
    call_staff: bool
    illustrations: list[str] = []


class GuidanceText(_Model):
    title: Text
    steps: list[Text] = Field(min_length=1, max_length=MAX_GUIDANCE_STEPS)


class SourceFile(_Model):
    source: dict[str, str]
    columns: list[str]
    codes: dict[Code, SourceCode]


CodesFile = RootModel[dict[Code, CodeData]]
CorrectionsFile = RootModel[list[Correction]]
GuidanceMetaFile = RootModel[dict[Code, GuidanceMeta]]
GuidanceTextFile = RootModel[dict[Code, GuidanceText]]


class Catalogue:
    """The loaded catalogue. Immutable; reload by calling `load_catalogue()` again."""

    def __init__(self, root: Path, info: CatalogueInfo, codes: dict[str, CodeEntry], corrections: list[Correction],
                 guidance_meta: dict[str, GuidanceMeta], texts: dict[str, dict[str, GuidanceText]]):
        self.root = root
        self.info = info
        self.codes = codes
        self.corrections = corrections
        self._guidance_meta = guidance_meta
        self._texts = texts

    @property
    def version(self) -> str:
        return self.info.version

    @property
    def languages(self) -> tuple[str, ...]:
        """Languages with patient guidance, the fallback (ja) first."""
        return (FALLBACK_LANGUAGE, *sorted(lang for lang in self._texts if lang != FALLBACK_LANGUAGE))

    def get(self, code: str) -> CodeEntry:
        code = normalize_code(code)
        try:
            return self.codes[code]
        except KeyError:
            raise UnknownCode(code, self.nearest(code)) from None

    def nearest(self, code: str) -> list[str]:
        """The known code itself, or the closest known codes below and above the number typed."""
        digits = re.sub(r"\D", "", normalize_code(code))
        if not digits:
            return []
        wanted = int(digits)
        if f"{wanted:03d}" in self.codes:
            return [f"{wanted:03d}"]
        below = [known for known in self.codes if int(known) < wanted]
        above = [known for known in self.codes if int(known) > wanted]
        return [known for known in (max(below, default=None), min(above, default=None)) if known]

    def resolve_language(self, lang: str) -> str:
        """`lang` if it has guidance, else its base language (pt-BR → pt), else ja."""
        for candidate in (lang, lang.split("-")[0]):
            if candidate in self._texts:
                return candidate
        return FALLBACK_LANGUAGE

    def guidance(self, code: str, lang: str = FALLBACK_LANGUAGE) -> Guidance:
        self.get(code)
        text = self._texts[self.resolve_language(lang)][code]
        meta = self._guidance_meta[code]
        return Guidance(title=text.title, steps=text.steps, call_staff=meta.call_staff,
                        illustrations=meta.illustrations)

    def section_header(self, section: SectionId) -> str:
        return self.info.sections[section]


# --- loading -----------------------------------------------------------------------------------------------

def load_catalogue(root: Path | None = None) -> Catalogue:
    """Load and validate the whole catalogue; any problem raises one CatalogueError."""
    root = Path(root) if root is not None else catalogue_root()
    info = _read(root, "catalogue.json", CatalogueInfo)
    source = _read(root, "source/verbatim.json", SourceFile)
    codes_data = _read(root, "codes.json", CodesFile).root
    corrections = _read(root, "corrections.json", CorrectionsFile).root
    meta = _read(root, "guidance.json", GuidanceMetaFile).root
    texts = {folder.name: _read(root, f"locales/{folder.name}/guidance.json", GuidanceTextFile).root
             for folder in sorted((root / "locales").glob("*/")) if (folder / "guidance.json").is_file()}
    if FALLBACK_LANGUAGE not in texts:
        raise CatalogueError([(str(root / "locales" / FALLBACK_LANGUAGE / "guidance.json"), "", "",
                               "the fallback language's guidance file is missing")])

    problems: list[tuple[str, str, str, str]] = []
    _same_codes(problems, root / "codes.json", codes_data, source.codes, "source/verbatim.json")
    _same_codes(problems, root / "guidance.json", meta, codes_data, "codes.json")
    for lang, by_code in texts.items():
        _same_codes(problems, root / f"locales/{lang}/guidance.json", by_code, codes_data, "codes.json")
    for code, data in codes_data.items():
        file = str(root / "codes.json")
        if placeholders(data.message) != set(data.params):
            problems.append((file, code, "message", f"placeholders {sorted(placeholders(data.message))} do not match "
                                                   f"params {data.params}"))
        src = source.codes.get(code)
        if src is not None and len(src.conditions) != len(data.conditions):
            problems.append((file, code, "conditions", f"{len(data.conditions)} conditions, but the seed has "
                                                      f"{len(src.conditions)} (source/verbatim.json)"))
    for code, item in meta.items():
        for index, name in enumerate(item.illustrations):
            if name not in info.illustrations:
                problems.append((str(root / "guidance.json"), code, f"illustrations[{index}]",
                                 f"unknown illustration {name!r}; known: {', '.join(info.illustrations)}"))
    for code, text in texts[FALLBACK_LANGUAGE].items():
        if code in codes_data and not text_params(text) <= set(codes_data[code].params):
            problems.append((str(root / "locales/ja/guidance.json"), code, "steps",
                             f"placeholders {sorted(text_params(text))} are not params of the code "
                             f"{codes_data[code].params}"))
    for lang, by_code in texts.items():
        for code, text in by_code.items():
            expected = texts[FALLBACK_LANGUAGE].get(code)
            if expected is not None and text_params(text) != text_params(expected):
                problems.append((str(root / f"locales/{lang}/guidance.json"), code, "title/steps",
                                 f"placeholders {sorted(text_params(text))} differ from ja's "
                                 f"{sorted(text_params(expected))}"))
    for index, correction in enumerate(corrections):
        if correction.code not in codes_data:
            problems.append((str(root / "corrections.json"), correction.code, f"[{index}].code", "no such code"))
    if problems:
        raise CatalogueError(problems)

    codes = {}
    for code, data in codes_data.items():
        src = source.codes[code]
        conditions = [condition.model_copy(update={"source": src.conditions[i]})
                      for i, condition in enumerate(data.conditions)]
        codes[code] = CodeEntry(code=code, **{**data.model_dump(exclude={"conditions"}), "conditions": conditions},
                                source=src)
    return Catalogue(root, info, codes, corrections, meta, texts)


def _read(root: Path, name: str, model: type[Model]) -> Model:
    path = root / name
    try:
        return parse_json(path, model, "catalogue file")
    except DataFileError as exc:
        raise CatalogueError([_problem(str(path), problem) for problem in exc.problems]) from None


def _problem(file: str, problem: Problem) -> tuple[str, str, str, str]:
    """(file, code, field, message): the code taken out of the location, where there is one."""
    loc = list(problem.loc)
    if loc and loc[0] == "codes":  # verbatim.json nests codes one level down
        loc = loc[1:]
    code = ""
    if loc and isinstance(loc[0], str) and CODE_PATTERN.fullmatch(loc[0].split(".")[0]):
        code = str(loc.pop(0))
    value = problem.value
    shown = "" if value is NO_VALUE or isinstance(value, (dict, list)) else f" (value: {value!r})"
    return file, code, field_name(tuple(loc)), f"{problem.message}{shown}"


def _same_codes(problems: list[tuple[str, str, str, str]], file: Path, have: Mapping[str, object],
                want: Mapping[str, object], other: str) -> None:
    for code in sorted(set(want) - set(have)):
        problems.append((str(file), code, "", f"missing (the code is in {other})"))
    for code in sorted(set(have) - set(want)):
        problems.append((str(file), code, "", f"not a code of the catalogue ({other} has no {code})"))


def placeholders(*texts: str) -> set[str]:
    """Named placeholders ({remaining}) used in the texts."""
    return {name for text in texts for _, name, _, _ in string.Formatter().parse(text) if name}


def text_params(text: GuidanceText) -> set[str]:
    return placeholders(text.title, *text.steps)


class _Unknown(dict[str, object]):
    def __missing__(self, key: str) -> str:
        return "n"


def _fill(text: str, values: Mapping[str, object] | None) -> str:
    return text.format_map(_Unknown({key: value for key, value in (values or {}).items() if value is not None}))


# --- audit against the seed --------------------------------------------------------------------------------

HTML_TAG = re.compile(r"</?(?:p|ul|ol|li|br|span|div|a)\b[^>]*>", re.IGNORECASE)
STRUCTURE_MARKS = re.compile(r"[\s○●・<>（）()]")


def extract_text(cells: str | list[str]) -> str:
    """The mechanical clean-up: join a cell's fragments, drop HTML tags, collapse whitespace."""
    joined = " ".join([cells] if isinstance(cells, str) else cells)
    return re.sub(r"\s+", " ", HTML_TAG.sub(" ", joined)).strip()


def skeleton(text: str) -> str:
    """Text without whitespace, bullets and brackets: what must survive splitting into steps unchanged."""
    return STRUCTURE_MARKS.sub("", text)


def audit_against_source(catalogue: Catalogue) -> list[str]:
    """Prove every cleaned field is its verbatim cell plus the listed corrections; returns the problems found."""
    problems: list[str] = []
    pending: dict[tuple[str, str], list[Correction]] = {}
    for correction in catalogue.corrections:
        pending.setdefault((correction.code, correction.field), []).append(correction)
    headers = sorted(catalogue.info.sections.values(), key=len, reverse=True)

    def corrected(code: str, field: str, text: str) -> str:
        for correction in pending.pop((code, field), []):
            if correction.original not in text:
                problems.append(f"corrections.json: code {code}: field {field}: original {correction.original!r} "
                                f"not found in the seed text")
            text = text.replace(correction.original, correction.corrected)
        return text

    for code, entry in catalogue.codes.items():
        src = entry.source
        if src is None:
            problems.append(f"codes.json: code {code}: field source: missing (no verbatim seed cells to audit against)")
            continue
        heading = corrected(code, "heading", extract_text(src.heading))
        if heading != "".join(f"【{tag}】" for tag in entry.tags) + entry.title:
            problems.append(f"codes.json: code {code}: field title/tags: differ from the seed heading {heading!r}")
        message = corrected(code, "message", extract_text(src.message))
        if message != entry.message:
            problems.append(f"codes.json: code {code}: field message: differs from the seed {message!r}")
        speaker = {"患者": "patient", "職員": "staff"}.get(message[:2])
        if speaker and speaker != entry.audience:
            problems.append(f"codes.json: code {code}: field audience: the message addresses {speaker}")
        for index, (condition, cells) in enumerate(zip(entry.conditions, src.conditions, strict=False)):
            where = f"conditions[{index}]"
            check = corrected(code, f"{where}.check", extract_text(cells.check))
            if check != condition.check:
                problems.append(f"codes.json: code {code}: field {where}.check: differs from the seed {check!r}")
            documents = corrected(code, f"{where}.documents", extract_text(cells.documents))
            if documents != " ".join(condition.documents):
                problems.append(f"codes.json: code {code}: field {where}.documents: differ from the seed {documents!r}")
            if condition.outage != any("○" in cell for cell in cells.outage):
                problems.append(f"codes.json: code {code}: field {where}.outage: differs from the seed {cells.outage}")
            cause = corrected(code, f"{where}.cause", extract_text(cells.cause))
            for header in headers:
                cause = cause.replace(header, " ")
            steps = " ".join(step.text for section in SECTION_ORDER for step in condition.steps.get(section, []))
            if skeleton(steps) != skeleton(cause.removeprefix("-")):
                problems.append(f"codes.json: code {code}: field {where}.steps: the steps' text differs from the seed "
                                f"cause/action cell plus corrections")
    for (code, field), left in pending.items():
        problems.append(f"corrections.json: code {code}: field {field}: {len(left)} correction(s) point at nothing")
    return problems
