"""Consent the caller understands (issue 11): the shipped prompts in Swedish, English and
Finnish; the language from a menu, a trunk's header or the route; receipts that say which
language and every prompt heard; the helpline told before it answers; a beep while recording."""

from __future__ import annotations

import hashlib
import os
import tomllib
import wave
from pathlib import Path

import pytest

from gateway.consent.language import LanguageChoice, language_from_header
from gateway.storage.rows import RecordingStatus
from gateway.telephony import prompts as pr
from tests.calls import CallLab
from tests.prompts_fixture import LANGUAGE_FREQ, write_prompts

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "ivr_prompts"
LANGUAGES = ("sv", "en", "fi")


# -- the shipped prompt sets -------------------------------------------------------------------


def test_every_prompt_exists_in_every_shipped_language() -> None:
    manifest = tomllib.loads((SHIPPED / "manifest.toml").read_text(encoding="utf-8"))["prompt"]
    by_lang: dict[str, set[str]] = {}
    for p in manifest:
        by_lang.setdefault(p["language"], set()).add(p["id"])
        assert (SHIPPED / p["file"]).is_file(), p["file"]
        assert p["transcript"].strip(), f"{p['language']}/{p['id']} has no transcript"
    assert set(by_lang) == set(LANGUAGES)
    ids = set(pr.REQUIRED) | {pr.MENU, *pr.WHISPERS}
    for lang, have in by_lang.items():
        assert have == ids, f"{lang}: missing {ids - have}, unexpected {have - ids}"


def test_notices_are_short_and_menu_keys_are_free() -> None:
    """Notice plus grace is time before the caller reaches the helpline: under 8 s each."""
    for lang in LANGUAGES:
        for mode in ("opt-out", "opt-in"):
            with wave.open(str(SHIPPED / lang / f"notice-{mode}.wav")) as w:
                seconds = w.getnframes() / w.getframerate()
            assert seconds < 8.0, f"{lang} notice-{mode} lasts {seconds:.1f} s"
    prompts = pr.load(SHIPPED, 8000)
    keys = prompts.menu_keys(list(LANGUAGES))
    assert sorted(keys.values()) == sorted(LANGUAGES)
    assert not set(keys) & {"9", "1"}, "menu keys never collide with the decline and accept keys"
    pr.check_route(
        prompts,
        where="test",
        language="sv",
        languages=list(LANGUAGES),
        helpline_language="sv",
        whisper=True,
        reserved_keys={"9": "decline key", "1": "accept key"},
    )


def test_a_menu_key_that_is_the_decline_key_is_refused() -> None:
    prompts = pr.load(SHIPPED, 8000)
    with pytest.raises(pr.PromptError, match="announces key 3, which is the decline key"):
        pr.check_route(
            prompts,
            where="route '1177'",
            language="sv",
            languages=list(LANGUAGES),
            helpline_language="sv",
            whisper=False,
            reserved_keys={"3": "decline key"},
        )
    with pytest.raises(pr.PromptError, match="whispering to the helpline in 'de'"):
        pr.check_route(
            prompts,
            where="x",
            language="sv",
            languages=[],
            helpline_language="de",
            whisper=True,
            reserved_keys={},
        )


@pytest.mark.parametrize(
    "value,expected",
    [
        ("sv-SE", "sv"),
        ("fi-FI, en;q=0.5", "fi"),
        ("de, en;q=0.3, sv;q=0.7", "sv"),
        ("de-DE", None),
        ("", None),
        ("sv;q=0", None),
        ("en;q=1, fi;q=1", "en"),
        ("x" * 10000, None),
        ("sv\r\nX-Evil: 1", None),
    ],
)
def test_language_from_a_trunks_header(value: str, expected: str | None) -> None:
    assert language_from_header(value, ["sv", "en", "fi"]) == expected


# -- calls through a real gateway -----------------------------------------------------------


def menu_lab(tmp_path: Path, **route: object) -> CallLab:
    tmp_path.mkdir(parents=True, exist_ok=True)
    lab = CallLab(tmp_path)
    write_prompts(tmp_path / "prompts", languages=LANGUAGES)
    fields = {"number": "1177", "language": "sv", "languages": list(LANGUAGES), **route}
    body = "".join(
        f"{k} = {str(v).lower() if isinstance(v, bool) else repr(v).replace(chr(39), chr(34))}\n"
        for k, v in fields.items()
    )
    lab.gw.config.write_text(lab.gw.config.read_text() + "\n[[routes]]\n" + body)
    lab.gw.set("consent", "menu_timeout_s", 1.0)
    return lab


def the_receipt(lab: CallLab) -> dict:
    gw = lab.gw.open()
    [(call_id,)] = gw.index._q("SELECT id FROM calls").fetchall()
    return gw.index.get_consent_receipt(call_id)


def pcm_sha(lab: CallLab, name: str) -> str:
    data = (lab.gw.dir.parent / "prompts" / name).read_bytes()
    return hashlib.sha256(data[44:]).hexdigest()


def test_menu_key_picks_english_and_silence_picks_the_default(tmp_path: Path) -> None:
    for case, args, lang, how in [
        ("key", ["--digits", "3@0.7"], "en", LanguageChoice.MENU),
        ("silent", [], "sv", LanguageChoice.MENU_TIMEOUT),
    ]:
        lab = menu_lab(tmp_path / case)
        try:
            caller, pbx = lab.one_call(*args, "--hangup-after", "9")
            r = the_receipt(lab)
            assert r["language"] == {
                "code": lang,
                "chosen_by": how.value,
                "menu": list(LANGUAGES),
                "key": "3" if case == "key" else None,
            }
            assert r["prompt"]["id"] == "notice-opt-out" and r["prompt"]["language"] == lang
            notice_file = "notice-opt-out.wav" if lang == "en" else f"{lang}-notice-opt-out.wav"
            assert r["prompt"]["sha256"] == pcm_sha(lab, notice_file)
            heard = [(p["id"], p["language"]) for p in r["prompts_heard"]]
            menu_heard = [h for h in heard if h[0] == "menu"]
            assert menu_heard[0] == ("menu", "sv"), "the menu starts with its first language"
            if case == "silent":
                assert menu_heard == [("menu", lang) for lang in LANGUAGES]
            assert heard[-1] == ("notice-opt-out", lang), "silence consents: no confirmation follows"
            notice = next(p for p in r["prompts_heard"] if p["id"] == "notice-opt-out")
            assert notice["played_ms"] == 1500 and notice["sha256"] == r["prompt"]["sha256"]
            # The notice began after the menu: silence counted from the notice, not the answer.
            assert r["decision"] == "granted" and r["decided_after_s"] > 1.5 + 1.0 + 0.5
            assert pbx.event("incoming")["headers"]["x-caller-language"] == lang
            assert len(lab.gw.open().index.list_recordings()) == 1
        finally:
            lab.close()


def test_declining_with_tones_after_the_menu_leaves_no_recording(tmp_path: Path) -> None:
    lab = menu_lab(tmp_path)
    try:
        # "4" picks Finnish, "9" (tones only, no event) declines during the Finnish notice.
        lab.one_call("--inband", "--digits", "4@0.7,9@1.6", "--hangup-after", "7")
        r = the_receipt(lab)
        assert r["language"]["code"] == "fi" and r["language"]["key"] == "4"
        assert r["decision"] == "declined"
        assert [(d["digit"], d["via"]) for d in r["digits"]] == [("9", "inband")]
        assert lab.gw.open().index.list_recordings() == []
        assert list((lab.gw.dir / "spool").iterdir()) == []
    finally:
        lab.close()


def test_the_trunks_language_header_skips_the_menu(tmp_path: Path) -> None:
    lab = menu_lab(tmp_path, language_header="Accept-Language")
    try:
        caller, pbx = lab.one_call("--header", "Accept-Language: fi-FI, en;q=0.5", "--hangup-after", "5")
        r = the_receipt(lab)
        assert r["language"]["code"] == "fi" and r["language"]["chosen_by"] == "header"
        assert [p["id"] for p in r["prompts_heard"]][0] == "notice-opt-out", "no menu"
        assert r["decided_after_s"] < 1.5 + 1.0 + 0.5
    finally:
        lab.close()


def test_the_helpline_hears_the_whisper_and_both_legs_hear_beeps(tmp_path: Path) -> None:
    lab = menu_lab(tmp_path, whisper=True, helpline_language="sv", beep_interval_s=5)
    try:
        caller, pbx = lab.one_call(
            "--digits",
            "3@0.7",
            "--tone",
            "440",
            "--listen",
            "--hangup-after",
            "17",
            pbx_args=(
                "--tone",
                "1000",
                "--listen",
            ),
        )
        # The first loud audio the helpline hears is the Swedish "recorded call" whisper, not
        # the caller: whisper-recorded is the 8th fixture prompt (300 + 400 + 7 * 20 Hz).
        whisper_hz = 300 + LANGUAGE_FREQ["sv"] + 7 * 20
        assert abs(pbx.event("heard")["first_hz"] - whisper_hz) < 10
        # Bridged from about 3.9 s to 17 s with a beep every 5 s: two beeps, heard by both.
        assert caller.event("heard")["bursts"] == 2 and pbx.event("heard")["bursts"] == 2
        [rec] = lab.gw.open().index.list_recordings()
        assert rec.status == RecordingStatus.COMPLETE
        events = [e for e in lab.gw.open().index.audit_entries() if e.action == "consent.decided"]
        assert events
    finally:
        lab.close()


def test_declined_calls_are_whispered_as_not_recorded_and_get_no_beep(tmp_path: Path) -> None:
    lab = menu_lab(
        tmp_path, whisper=True, helpline_language="en", beep_interval_s=5, languages=[], language="en"
    )
    try:
        caller, pbx = lab.one_call(
            "--digits",
            "9@0.5",
            "--listen",
            "--hangup-after",
            "12",
            pbx_args=(
                "--tone",
                "1000",
                "--listen",
            ),
        )
        not_recorded_hz = 300 + 8 * 20  # whisper-not-recorded, English
        assert abs(pbx.event("heard")["first_hz"] - not_recorded_hz) < 10
        assert caller.event("heard")["bursts"] == 0 and pbx.event("heard")["bursts"] == 0
        assert lab.gw.open().index.list_recordings() == []
    finally:
        lab.close()


def test_a_prompt_set_is_decoded_once_until_its_files_change(tmp_path: Path) -> None:
    """The fork server decodes the prompts and its workers reuse them; a changed file (a new
    studio recording) is decoded again."""
    from gateway.telephony import prompts as pr

    d = write_prompts(tmp_path / "p")
    first = pr.load(d, 8000)
    again = pr.load(d, 8000)
    assert again.get("notice-opt-out", "en").pcm is first.get("notice-opt-out", "en").pcm
    wav = next(d.glob("*.wav"))
    os.utime(wav, ns=(wav.stat().st_atime_ns, wav.stat().st_mtime_ns + 1_000_000_000))
    changed = pr.load(d, 8000)
    assert changed.get("notice-opt-out", "en").pcm is not first.get("notice-opt-out", "en").pcm
