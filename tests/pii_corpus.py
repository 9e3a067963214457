"""A seeded corpus of personal data of every built-in kind, in the places users put it.

Values are generated (valid Luhn cards, valid IBAN check digits), so a detector that only knows a
few famous test numbers fails. Shared by the unit tests and the broker/store integration test.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass


def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    for check in string.digits:
        digits = [int(c) for c in body + check]
        total = sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2)
                    for i, d in enumerate(reversed(digits)))
        if total % 10 == 0:
            return body + check
    raise AssertionError("unreachable")


def _iban(country: str, bban: str) -> str:
    moved = bban + country + "00"
    check = 98 - int("".join(str(int(c, 36)) for c in moved)) % 97
    return f"{country}{check:02d}{bban}"


def _group4(text: str) -> str:
    return " ".join(text[i:i + 4] for i in range(0, len(text), 4))


@dataclass(frozen=True)
class Sample:
    kind: str
    value: str  # the secret part that must not survive
    text: str  # how it appears in a sentence


def corpus(seed: int, n: int = 4) -> list[Sample]:
    """`n` samples of each built-in kind, in varied phrasings."""
    rng, out = random.Random(seed), []
    word = lambda k: "".join(rng.choice(string.ascii_lowercase) for _ in range(k))  # noqa: E731
    digits = lambda k: "".join(rng.choice(string.digits) for _ in range(k))  # noqa: E731
    for i in range(n):
        email = f"{word(6)}.{word(4)}{i}@{word(7)}.{rng.choice(['com', 'de', 'co.uk'])}"
        out.append(Sample("email", email, f"please mail {email} the receipt"))
        nanp = f"({rng.randint(201, 989)}) {rng.randint(200, 999)}-{digits(4)}"
        out.append(Sample("phone", nanp, f"call me at {nanp} tomorrow"))
        intl = f"+{rng.choice(['44', '49', '33'])} {digits(3)} {digits(3)} {digits(4)}"
        out.append(Sample("phone", intl, f"my number is {intl}"))
        card = _luhn_complete(rng.choice(["4", "51", "37", "6011"]), 16, rng)
        shown = _group4(card) if i % 2 else card
        out.append(Sample("card", shown, f"charge card {shown} exp 09/29"))
        ssn = f"{rng.randint(100, 665)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}"
        out.append(Sample("ssn", ssn, f"SSN {ssn} on file"))
        bare = f"{rng.randint(100, 665)}{rng.randint(10, 99)}{rng.randint(1000, 9999)}"
        out.append(Sample("ssn", bare, f"my social security number is {bare}"))
        nino = f"{rng.choice('ABCEGH')}{rng.choice('ABCEGH')}{digits(6)}{rng.choice('ABCD')}"
        out.append(Sample("national_id", nino, f"NI number {nino}"))
        iban = _iban(rng.choice(["DE", "GB", "FR"]), digits(18))
        shown_iban = _group4(iban) if i % 2 else iban
        out.append(Sample("iban", shown_iban, f"refund to {shown_iban} please"))
        key = "sk-proj-" + word(12) + digits(12)
        out.append(Sample("token", key, f"the api key {key} stopped working"))
        ghp = "ghp_" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(36))
        out.append(Sample("token", ghp, f"token={ghp}"))
        upper = string.ascii_uppercase + string.digits
        aws = "AKIA" + "".join(rng.choice(upper) for _ in range(16))
        out.append(Sample("token", aws, f"aws id {aws}"))
        pin = digits(4)
        out.append(Sample("pin", pin, f"my PIN is {pin}, do not share"))
        password = word(5) + digits(3) + "!"
        out.append(Sample("secret", password, f"password: {password}"))
    return out
