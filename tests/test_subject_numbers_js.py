"""The officer's page compares decrypted caller numbers with gateway/dashboard/js/numbers.js;
`gateway subject find` with gateway/storage/pii.py. They must agree, or the page would answer a
data subject differently from the command line. Both run here on the same cases (node, the
machine's Node.js, runs the module as the worker bundles it)."""

from __future__ import annotations

import itertools
import json
import subprocess
from dataclasses import dataclass
from typing import Any

from gateway.storage import pii
from tests.calls import ROOT
from tests.conftest import require_tool

NUMBERS = [
    "+46701234567",
    "0701234567",
    "0046701234567",
    "46701234567",
    "+46 70-123 45 67",
    "(070) 123 45 67",
    "tel:+46701234567;phone-context=x",
    "sip:0701234567@pbx.example;user=phone",
    "sips:+468123456@x",
    "anonymous",
    "",
    "+",
    "0",
    "070 123 45 67\u00a0",
    "+1 (555) 010-9999",
    "0015550109999",
    "12",
    "1",
    "+123456789012345678901",
    " 0701234567 ",
    "0701234567/89",
    "sip:anonymous@anonymous.invalid",
    "TEL:+46701234567",
    "+4670123456７",
]
OPENED = [
    '[{"number": "0701234567", "role": "caller"}, {"aor": "x"}, {"number": "+468123456"}]',
    "[1, 2]",
    "[not json",
    '[{"number": 0}]',
    "+46701234567",
    '{"number": "1"}',
]


@dataclass(frozen=True)
class Numbering:
    country_code: str
    national_prefix: str
    international_prefix: str


NUMBERINGS = [
    Numbering("46", "0", "00"),
    Numbering("", "0", "00"),
    Numbering("1", "1", "011"),
    Numbering("44", "", ""),
]

JS = """
import * as n from "./gateway/dashboard/js/numbers.js";
const cases = JSON.parse(process.argv[1]);
const out = cases.map(([op, a, b, numbering]) => {
  try {
    if (op === "e164") return n.e164(a, numbering);
    if (op === "search") return n.searchForm(a, numbering);
    if (op === "same") return n.sameNumber(a, b, numbering);
    if (op === "opened") return n.openedNumbers(a);
  } catch (e) { return "ERROR"; }
});
console.log(JSON.stringify(out));
"""


def python(op: str, a: str, b: str, numbering: Numbering) -> Any:
    try:
        if op == "e164":
            return pii.e164(a, numbering)
        if op == "search":
            return pii.search_form(a, numbering)
        if op == "same":
            return pii.same_number(a, b, numbering)
        return pii.opened_numbers(a)
    except pii.NumberError:
        return "ERROR"


def test_the_page_compares_numbers_exactly_as_the_cli_does() -> None:
    node = require_tool("node")
    cases: list[tuple[str, str, str, Numbering]] = []
    for nb in NUMBERINGS:
        cases += [("e164", x, "", nb) for x in NUMBERS] + [("search", x, "", nb) for x in NUMBERS]
        cases += [
            ("same", x, t, nb) for x, t in itertools.product(NUMBERS, ["+46701234567", "+15550109999", "+12"])
        ]
    cases += [("opened", x, "", NUMBERINGS[0]) for x in OPENED]
    payload = json.dumps([[op, a, b, nb.__dict__] for op, a, b, nb in cases])
    res = subprocess.run(
        [node, "--input-type=module", "-e", JS, payload], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    want = [python(*c) for c in cases]
    diffs = [(c, g, w) for c, g, w in zip(cases, got, want, strict=True) if g != w]
    assert diffs == [], diffs[:10]
    assert sum(1 for w in want if w is True) >= 10  # the cases do match, not only differ
