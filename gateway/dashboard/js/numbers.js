// Telephone numbers as a data-subject search compares them: the same rules as the gateway's
// gateway/storage/pii.py (strip_number, e164, search_form, same_number, opened_numbers), for the
// officer's page, which decrypts the stored numbers itself. Pure functions; tests/test_subject_page.py
// checks them against the Python ones on the same cases.

const NOISE = /[\s\-().\u00a0/]/g;
const DIGITS = /^\+?[0-9]{2,20}$/;

export function stripNumber(number) {
  let text = number.trim();
  for (const scheme of ["tel:", "sip:", "sips:"]) {
    if (text.toLowerCase().startsWith(scheme)) {
      text = text.slice(scheme.length).split("@", 1)[0].split(";", 1)[0];
    }
  }
  return text.replace(NOISE, "");
}

// E.164 (+CC…) or null when it cannot be placed.
export function e164(number, numbering) {
  const n = stripNumber(number);
  if (!DIGITS.test(n)) return null;
  if (n.startsWith("+")) return n;
  const intl = numbering.international_prefix;
  if (intl && n.startsWith(intl)) return "+" + n.slice(intl.length);
  const nat = numbering.national_prefix;
  if (numbering.country_code && nat && n.startsWith(nat)) return "+" + numbering.country_code + n.slice(nat.length);
  return null;
}

// The form searched for, or an Error saying why there is none (never a guess).
export function searchForm(number, numbering) {
  const n = stripNumber(number);
  if (!DIGITS.test(n)) throw new Error(`"${number}" is not a telephone number`);
  const form = e164(n, numbering);
  if (form === null) {
    throw new Error(numbering.country_code
      ? `"${number}" is neither international (+${numbering.country_code}…) nor national (${numbering.national_prefix}…): give it in international form`
      : `"${number}" is not in international form: give it as +CC… (the gateway has no [numbers] country_code)`);
  }
  return form;
}

export function sameNumber(stored, target, numbering) {
  const form = e164(stored, numbering);
  if (form !== null) return form === target;
  return stripNumber(stored).replace(/^\++/, "") === target.replace(/^\++/, "");
}

// A caller's number is itself; a recording session's sealed participants are a JSON list.
export function openedNumbers(opened) {
  if (!opened.startsWith("[")) return [opened];
  let parties;
  try {
    parties = JSON.parse(opened);
  } catch {
    return [];
  }
  if (!Array.isArray(parties)) return [];
  return parties.filter((p) => p && typeof p === "object" && !Array.isArray(p) && p.number).map((p) => String(p.number));
}
