"""Classification of SMS replies from on-call staff.

A reply is normalised first (Unicode NFKC, case-folded, whitespace and trailing punctuation
trimmed, emoji skin tones and variation selectors dropped), then matched on whole tokens, never
on substrings, so "yesterday" is not "yes" and "Disliked" is not a pass.

Rules, in order:

1. The whole message is an opt-out, opt-in or help keyword, or Twilio's Advanced Opt-Out sent an
   ``OptOutType``. "stop please" is not an opt-out because Twilio blocks only the bare keyword.
2. A four-digit dispatch code before or after one accept or pass word (``1 4821``,
   ``4821 yes``) applies the word to that dispatch. A bare code is ``code_only``.
3. Accept: the message is only affirmative tokens (``OK👍``), or it starts with an affirmative
   word of two letters or more followed by punctuation (``Yes, on my way``) or with any
   affirmative token followed by a line break (``1\\nSent from my iPhone``).
4. Pass: the same rules with the negative words. "no problem" is not a pass.
5. Everything else is ``other``: reactions (``Liked "…"``), automatic replies, questions,
   photos without text.

A question mark makes a message a question, so it is ``other``, when it appears anywhere in a
message of only accept or pass words and a code (``Yes?``, ``yes 4821?``) or right after a
leading word (``ok? who is this``). A wrong accept tells the caller that help is coming, while
``other`` only costs the member one more reply. A bare code with a question mark stays
``code_only``, because its reply asks for 1 or 2 anyway.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class ReplyKind(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    ACCEPT = "accept"
    PASS_ = "pass"
    CODE_ONLY = "code_only"
    OTHER = "other"


@dataclass(frozen=True)
class Reply:
    """A classified reply: its kind, the dispatch code it names, and the text before and after
    normalisation.

    ``code`` is a string so that codes with a leading zero (``0421``) keep all four digits.
    """

    kind: ReplyKind
    code: str | None
    normalized: str
    raw: str


# Twilio's default keywords. YES is also a Twilio opt-in keyword, but here it accepts an offer,
# so Twilio may send its own opt-in confirmation as well.
OPT_OUT_WORDS = frozenset(
    {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "revoke", "optout"}
)
OPT_IN_WORDS = frozenset({"start", "unstop"})
HELP_WORDS = frozenset({"help", "info"})

# Values of Twilio's OptOutType form field (Advanced Opt-Out), case-folded.
OPT_OUT_TYPES = {
    "stop": ReplyKind.OPT_OUT,
    "start": ReplyKind.OPT_IN,
    "help": ReplyKind.HELP,
}

# Phrases are tuples of tokens so that "on it" matches as two whole tokens.
ACCEPT_PHRASES: frozenset[tuple[str, ...]] = frozenset(
    {
        ("1",),
        ("y",),
        ("yes",),
        ("yep",),
        ("yup",),
        ("yeah",),
        ("ok",),
        ("okay",),
        ("k",),
        ("accept",),
        ("on", "it"),
        ("\N{THUMBS UP SIGN}",),
    }
)
PASS_PHRASES: frozenset[tuple[str, ...]] = frozenset(
    {("2",), ("no",), ("nope",), ("pass",), ("decline",)}
)

DISPATCH_CODE = re.compile(r"[0-9]{4}")

# Skin-tone modifiers U+1F3FB..U+1F3FF, text and emoji variation selectors, and invisible
# characters that some keyboards insert.
_DROPPED_CHARS = dict.fromkeys([*range(0x1F3FB, 0x1F400), 0xFE0E, 0xFE0F, 0x200B, 0x2060, 0xFEFF])
_STRAIGHT_QUOTES = str.maketrans(
    {
        "\N{LEFT SINGLE QUOTATION MARK}": "'",
        "\N{RIGHT SINGLE QUOTATION MARK}": "'",
        "\N{SINGLE HIGH-REVERSED-9 QUOTATION MARK}": "'",
        "\N{MODIFIER LETTER APOSTROPHE}": "'",
        "\N{LEFT DOUBLE QUOTATION MARK}": '"',
        "\N{RIGHT DOUBLE QUOTATION MARK}": '"',
        "\N{DOUBLE LOW-9 QUOTATION MARK}": '"',
    }
)
_LINE_BREAKS = re.compile(r"\r\n|[\r\v\f\x85\u2028\u2029]")

# A word is letters and digits, with inner apostrophes ("i'm"). Any other visible character
# (an emoji, a symbol, a punctuation mark) is a token of its own.
_WORD_JOINERS = "-'\N{HYPHEN}"
_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)*|[^\w\s]|_")


def normalize_reply(body: str) -> str:
    """Normalise a reply for matching and for the dispatch log.

    Line breaks between non-empty lines are kept as ``\\n`` because a line break after a
    leading accept or pass word ends that word's sentence.
    """
    return _trim_trailing_punctuation(_clean(body))


def classify_reply(body: str, opt_out_type: str | None = None, num_media: int = 0) -> Reply:
    """Classify an SMS reply by the rules in this module's docstring.

    ``opt_out_type`` is Twilio's ``OptOutType`` form field and wins over the body, because
    Advanced Opt-Out may use keywords other than the defaults. ``num_media`` is Twilio's
    ``NumMedia``. Attachments never change the kind, so a photo without text is ``other``.
    """
    cleaned = _clean(body)
    normalized = _trim_trailing_punctuation(cleaned)

    kind, code = _classify(cleaned, normalized, opt_out_type)
    return Reply(kind=kind, code=code, normalized=normalized, raw=body)


def _classify(
    cleaned: str, normalized: str, opt_out_type: str | None
) -> tuple[ReplyKind, str | None]:
    keyword_kind = _keyword_kind(normalized, opt_out_type)
    if keyword_kind is not None:
        return keyword_kind, None

    tokens = _words_and_symbols(normalized)
    coded = _coded_reply(tokens)
    if coded is not None:
        kind, code = coded
        if kind is not ReplyKind.CODE_ONLY and "?" in cleaned:
            return ReplyKind.OTHER, None
        return kind, code

    for kind, phrases in ((ReplyKind.ACCEPT, ACCEPT_PHRASES), (ReplyKind.PASS_, PASS_PHRASES)):
        if "?" not in cleaned and _only_phrases(tokens, phrases):
            return kind, None
        if _starts_with_phrase(cleaned, phrases):
            return kind, None

    return ReplyKind.OTHER, None


def _keyword_kind(normalized: str, opt_out_type: str | None) -> ReplyKind | None:
    if opt_out_type:
        kind = OPT_OUT_TYPES.get(opt_out_type.strip().casefold())
        if kind is not None:
            return kind

    if normalized in OPT_OUT_WORDS:
        return ReplyKind.OPT_OUT
    if normalized in OPT_IN_WORDS:
        return ReplyKind.OPT_IN
    if normalized in HELP_WORDS:
        return ReplyKind.HELP
    return None


def _coded_reply(tokens: Sequence[str]) -> tuple[ReplyKind, str] | None:
    """Find a dispatch code alone, or before or after one accept or pass phrase."""
    if not tokens:
        return None

    if len(tokens) == 1:
        if DISPATCH_CODE.fullmatch(tokens[0]):
            return ReplyKind.CODE_ONLY, tokens[0]
        return None

    for code, word in ((tokens[0], tokens[1:]), (tokens[-1], tokens[:-1])):
        if not DISPATCH_CODE.fullmatch(code):
            continue
        if tuple(word) in ACCEPT_PHRASES:
            return ReplyKind.ACCEPT, code
        if tuple(word) in PASS_PHRASES:
            return ReplyKind.PASS_, code
    return None


def _only_phrases(tokens: Sequence[str], phrases: frozenset[tuple[str, ...]]) -> bool:
    """Tell whether the tokens are a non-empty run of the given phrases and nothing else."""
    longest = max(len(phrase) for phrase in phrases)
    position = 0
    while position < len(tokens):
        for size in range(longest, 0, -1):
            if tuple(tokens[position : position + size]) in phrases:
                position += size
                break
        else:
            return False
    return position > 0


def _starts_with_phrase(cleaned: str, phrases: frozenset[tuple[str, ...]]) -> bool:
    """Tell whether the message starts with a phrase that ends its own sentence.

    A line break may follow any phrase. Punctuation other than "?" may follow only a phrase
    with two letters or more, so "y, not call B" does not count. A hyphen or apostrophe that
    joins the next word ("no-one", "ok-ish") keeps the phrase inside that word.
    """
    for phrase in phrases:
        text = " ".join(phrase)
        if not cleaned.startswith(text):
            continue

        rest = cleaned[len(text) :]
        if rest.startswith("\n"):
            return True

        rest = rest.lstrip(" ")
        if not rest or rest[0] == "?" or not _is_punctuation(rest[0]):
            continue
        if rest[0] in _WORD_JOINERS and rest[1:2].isalnum():
            continue
        if sum(char.isalpha() for char in text) >= 2:
            return True
    return False


def _words_and_symbols(text: str) -> list[str]:
    """Split text into words and single symbols such as emoji, dropping punctuation."""
    return [token for token in _TOKEN.findall(text) if not _is_punctuation(token)]


def _clean(body: str) -> str:
    text = unicodedata.normalize("NFKC", body)
    text = text.translate(_STRAIGHT_QUOTES).translate(_DROPPED_CHARS)
    # Case folding can leave a sequence that is no longer normalised: "\u01f0" folds to "j"
    # plus a combining caron, which NFKC composes again.
    text = unicodedata.normalize("NFKC", text.casefold())

    lines = (" ".join(line.split()) for line in _LINE_BREAKS.sub("\n", text).split("\n"))
    return "\n".join(line for line in lines if line)


def _trim_trailing_punctuation(text: str) -> str:
    end = len(text)
    while end > 0 and (text[end - 1].isspace() or _is_punctuation(text[end - 1])):
        end -= 1
    return text[:end]


def _is_punctuation(char: str) -> bool:
    return len(char) == 1 and unicodedata.category(char).startswith("P")
